/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Splice (issue 10): a relayed connection's bytes leave user space. Shared
 * by bpf/splice.bpf.h (sk_msg for the upload, an sk_skb verdict for the
 * download, in bpf/fastpath.bpf.c) and user/proxy/splice.c (the proxy's side).
 *
 * Upload. An app socket admitted send-only (include/admission.h) has its
 * messages redirected into the sidecar's accepted socket, whose reader is
 * the proxy. Once the proxy has connected upstream, it puts the upstream
 * socket into sl_relay and gives the pair a slot: from then on sk_msg
 * pushes the app's messages straight into the upstream socket's send
 * queue, inside the app's own send().
 *
 * Download. The upstream socket also joins sl_down, whose sk_skb verdict
 * redirects what the upstream receives to the egress of the sidecar's
 * accepted socket: the app keeps receiving over plain TCP (nothing is ever
 * redirected into an app socket), and the proxy is not woken. That egress
 * is asynchronous (the target psock's work queue sends it), so the proxy
 * writes to that socket, or passes a FIN or RST on, only once every
 * redirected byte has entered its send queue (sl_splice_down_inflight()).
 *
 * Order, per direction (half[] of the slot): a message or skb may take the
 * kernel's way only when nothing sent earlier is still on the relay's way:
 * nothing unread at the socket the relay reads and nothing held by the
 * proxy. The proxy makes that half's seq odd before it reads and even
 * again once it has written all it holds (the slot in sl_splice, mmap()ed:
 * plain stores). BPF reads seq, checks the socket, reads seq again: even
 * and unchanged, the bytes go the kernel's way. Otherwise they take the
 * relay and are counted, by why. The splice point is the slot's creation:
 * from then on every byte either way is spliced or a counted fallback.
 */
#ifndef SPLICE_H
#define SPLICE_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif
#include "sockkey.h"

/* Slots of sl_splice: pairs spliced at once by one sidelane. */
#define SL_MAX_SPLICES 16384

/* The two halves of a slot. */
enum sl_splice_dir {
	SL_SPD_UP = 0, /* app -> upstream: sk_msg on the app's socket */
	SL_SPD_DOWN, /* upstream -> app: sk_skb on the upstream socket */
	SL_SPD_NR
};

/* One direction of a spliced pair: the proxy writes seq with a store, BPF
 * the counts (one writer each).
 */
struct sl_splice_half {
	__u64 seq; /* odd: the proxy is reading this direction, or holds bytes */
	__u64 bytes; /* taken the kernel's way */
	__u64 msgs; /* messages (upload) or skbs (download) */
	/* what took the relay while spliced, each counted by why in
	 * sl_splice_stats
	 */
	__u64 relayed, relayed_bytes;
};

/* sl_splice (an mmap-able ARRAY): owner and app_written are the proxy's. */
struct sl_splice_slot {
	__u64 owner; /* cookie of the sidecar socket using the slot; 0: free */
	/* bytes the proxy has written into the sidecar's socket towards the
	 * app, over the connection's life: with what the kernel redirected,
	 * what that socket must have queued once nothing is in flight
	 */
	__u64 app_written;
	struct sl_splice_half half[SL_SPD_NR];
	/* the download's next upstream sequence number (the verdict's own:
	 * see splice_down_dedup() in bpf/splice.bpf.h), and its state
	 */
	__u32 rcv_next, rcv_set; /* enum sl_rcv_state */
};

enum sl_rcv_state {
	SL_RCV_UNSET = 0,
	SL_RCV_SET,
	/* an overlap could not be cut: a byte was dropped, the proxy must
	 * reset the pair (a cut stream, never a corrupt one)
	 */
	SL_RCV_BROKEN,
};

/* sl_splice_idx: the sidecar's accepted socket (its own 4-tuple, the key
 * sk_msg builds as the app socket's peer) -> its splice; sl_down_idx: the
 * upstream socket's cookie -> the same.
 */
struct sl_splice_ref {
	struct sl_sock_key up; /* the upstream socket's key (sl_relay) */
	struct sl_sock_key side; /* the sidecar's accepted socket's (sockhash) */
	__u64 owner; /* == the slot's owner while the slot is ours */
	__u32 slot;
	__u32 pad;
};

/* Why bytes of a spliced pair took the relay (sl_splice_stats.relay[]);
 * the target is the upstream's socket for the upload, the sidecar's
 * accepted socket for the download.
 */
enum sl_splice_why {
	SL_SPW_BEHIND = 0, /* earlier bytes are unread or held by the proxy */
	SL_SPW_FULL, /* the target's send queue had no room for them */
	SL_SPW_UP_STATE, /* the target is closing, shut or failed */
	SL_SPW_NO_UPSTREAM, /* the target left its sockhash (closed) */
	SL_SPW_NR
};
#define SL_SPLICE_WHY_SLOTS 8

/* Slot 0 of sl_splice_stats, one copy per CPU, per direction. */
struct sl_splice_stats {
	struct {
		__u64 pushed_msgs, pushed_bytes;
		__u64 relay[SL_SPLICE_WHY_SLOTS]; /* by enum sl_splice_why */
	} dir[SL_SPD_NR];
	/* the download's skbs that repeated bytes already delivered (a
	 * retransmission overlapping what arrived): dropped whole, or
	 * trimmed; trim_failed: could not be trimmed, the pair is broken
	 */
	__u64 dup_skbs, dup_bytes, trim_failed;
};

#endif /* SPLICE_H */
