/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Splice (issue 10): the upload half of a relayed connection leaves user
 * space. Shared by bpf/splice.bpf.h (the sk_msg side, in
 * bpf/fastpath.bpf.c) and user/splice.c (the proxy's side).
 *
 * An app socket admitted send-only (include/admission.h) has its messages
 * redirected into the sidecar's accepted socket, whose reader is the proxy.
 * Once the proxy has connected upstream, it puts the upstream socket into
 * sl_relay and gives the pair a slot: from then on sk_msg pushes the app's
 * messages straight into the upstream socket's send queue, inside the
 * app's own send(). The download half stays with the proxy, so the app
 * keeps receiving over plain TCP.
 *
 * Order: a message may be pushed only when nothing the app sent earlier
 * is still on the relay's way: nothing unread at the sidecar's socket
 * (its psock is empty and its copied_seq has reached the app's write_seq)
 * and nothing held by the proxy. The proxy makes its slot's seq odd before
 * it reads from the app's side and even again once it has written all it
 * holds into the upstream (the slot in sl_splice, mmap()ed: plain
 * stores). sk_msg reads seq, checks the socket, reads seq again: even and
 * unchanged, the push lands behind the last relayed byte (both writers
 * take the upstream's socket lock). Otherwise the message takes the relay
 * and is counted, by why. The splice point is the slot's creation: from
 * then on every message of the app is pushed or a counted fallback.
 */
#ifndef SPLICE_H
#define SPLICE_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif
#include "sockkey.h"

/* Slots of sl_splice: pairs spliced at once by one sidelane. */
#define SL_MAX_SPLICES 16384

/* sl_splice (an mmap-able ARRAY): the proxy writes owner and seq with a
 * store, sk_msg the counts; one writer each.
 */
struct sl_splice_slot {
	__u64 owner; /* cookie of the sidecar socket using the slot; 0: free */
	__u64 seq; /* odd: the proxy is reading the app's side, or holds bytes */
	__u64 bytes; /* pushed straight to the upstream */
	__u64 msgs;
	/* messages (and their bytes) that took the relay while spliced, each
	 * counted by why in sl_splice_stats
	 */
	__u64 relayed, relayed_bytes;
	__u64 pad2[2];
};

/* sl_splice_idx: the sidecar's accepted socket (its own 4-tuple, the key
 * sk_msg builds as the app socket's peer) -> its splice.
 */
struct sl_splice_ref {
	struct sl_sock_key up; /* the upstream socket's key in sl_relay */
	__u64 owner; /* == the slot's owner while the slot is ours */
	__u32 slot;
	__u32 pad;
};

/* Why a message of a spliced pair took the relay (sl_splice_stats.relay[]). */
enum sl_splice_why {
	SL_SPW_BEHIND = 0, /* earlier bytes are unread or held by the proxy */
	SL_SPW_FULL, /* the upstream's send queue had no room for it */
	SL_SPW_UP_STATE, /* the upstream is closing, shut or failed */
	SL_SPW_NO_UPSTREAM, /* the upstream left sl_relay (closed) */
	SL_SPW_NR
};
#define SL_SPLICE_WHY_SLOTS 8

/* Slot 0 of sl_splice_stats, one copy per CPU (sk_msg). */
struct sl_splice_stats {
	__u64 pushed_msgs, pushed_bytes;
	__u64 relay[SL_SPLICE_WHY_SLOTS]; /* by enum sl_splice_why */
};

#endif /* SPLICE_H */
