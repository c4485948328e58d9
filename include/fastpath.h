/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The local fast path: types shared by bpf/fastpath.bpf.c and user space.
 * Fixed-width fields only, explicit padding, so both sides and bpftool agree.
 */
#ifndef FASTPATH_H
#define FASTPATH_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#include "sockkey.h"

/* Key of sl_local_addrs: an address of this host (v4 in v4-mapped form). */
struct sl_addr {
	__u8 ip[16];
};

/* sl_conn.flags */
#define SL_CONN_F_PASSIVE 0x1 /* accepted (server) side */
#define SL_CONN_F_IN_SOCKHASH 0x2 /* insertion into the sockhash succeeded */
/* The socket sent bytes down the normal TCP path once (peer was not in the
 * sockhash yet). From then on it is never redirected: redirected bytes land in
 * the peer's psock queue, which tcp_bpf_recvmsg() reads before sk_receive_queue,
 * so mixing the two paths would reorder the stream.
 */
#define SL_CONN_F_PLAIN 0x4
/* The peer let more than SL_MAX_BACKLOG pile up: messages take TCP (and its
 * flow control) until the peer has read all of them, then redirect again.
 * Both switches keep the order: the reader drains the psock queue before
 * sk_receive_queue, and redirecting resumes only once TCP has nothing left.
 */
#define SL_CONN_F_BACKLOG 0x8
/* sk_msg has seen this socket's first message (see the TCP Fast Open check). */
#define SL_CONN_F_SEEN 0x10
/* A socket of the sidecar's cgroup (include/admission.h): its reader is
 * sidelane's own proxy, so bytes may be redirected into it.
 */
#define SL_CONN_F_SIDECAR 0x20
/* An app socket admitted send-only (safe and send modes): its messages may
 * be redirected into a sidecar socket, nothing is redirected into it, so
 * its psock never holds data and it can leave the sockhash at any moment.
 */
#define SL_CONN_F_SEND_ONLY 0x40
/* Its peer was checked to be a sidecar socket (first message). */
#define SL_CONN_F_PEER_SIDECAR 0x80
/* Leaves the sockhash at its next segment (became blocking, or an option
 * set after admission); messages take TCP meanwhile. reason says why.
 */
#define SL_CONN_F_EVICT 0x100
/* A socket the sidecar connected (an upstream): its tcp_sock is in
 * sl_up_by_key for the splice (bpf/splice.bpf.h), dropped at close.
 */
#define SL_CONN_F_UPSTREAM 0x200

/* Per-socket accounting record, keyed by socket cookie; created by sockops at
 * established for every TCP socket of our cgroups (accelerated or not: reason
 * says), updated by sk_msg, sent to user space (sl_events) and deleted by
 * sockops when the socket closes.
 */
struct sl_conn {
	struct sl_sock_key key;
	__u32 flags; /* SL_CONN_F_* */
	__u16 reason; /* enum sl_acc_reason (include/acct.h) */
	__u16 pad;
	__u64 start_ns; /* bpf_ktime_get_ns() at established */
	__u64 cgroup_id; /* owner's cgroup: the connecting process, else the first sender */
	__u32 pid; /* tgid of the same */
	__u32 pad2;
	char comm[16]; /* and its command name */
	__u64 redir_bytes; /* bytes redirected socket-to-socket */
	__u64 redir_msgs;
	__u64 pass_bytes; /* bytes sent down the normal TCP path */
	__u64 pass_msgs;
	/* redirected into this socket by its peer, copied at either one's close */
	__u64 rx_redir_bytes;
	__u64 rx_redir_msgs;
	/* tcp_sock bytes_acked / bytes_received at established: the handshake's
	 * share (an acked SYN counts one), taken off at close
	 */
	__u64 tcp_acked0;
	__u64 tcp_rx0;
};

/* Socket-local state (sl_sk_state), freed with the socket. */
struct sl_sk_state {
	__u64 cookie; /* sk_msg has no bpf_get_socket_cookie() (6.18 still) */
	__u64 peer_tp; /* peer's struct tcp_sock address, from sl_sk_by_key */
	/* the process that called connect() (TCP_CONNECT_CB runs in its
	 * context; the established callbacks run in softirq)
	 */
	__u64 cgroup_id;
	__u32 pid;
	__u32 opts; /* SL_OPT_* set by the app (include/admission.h) */
	char comm[16];
};

/* sl_sk_by_key value: a socket of the sockhash. */
struct sl_sock_ref {
	__u64 tp; /* its struct tcp_sock address (read via bpf_rdonly_cast) */
	__u64 cookie; /* its sl_conns key */
};

#define SL_FP_REASON_LEN 120

/* Slot 0 of sl_fp_cfg: runtime switches of the fast path, set by user space.
 * Zero (a fresh map) means redirect on.
 */
struct sl_fp_cfg {
	__u32 redirect_off; /* 1: sk_msg sends everything over TCP */
	/* 1: proxy.external, a foreign proxy serves the listeners (for
	 * `status` and /metrics; no program reads it)
	 */
	__u32 proxy_external;
	char reason[SL_FP_REASON_LEN]; /* why it is off (self-test finding) */
};

/* Global counters: one slot of a per-CPU array; user space sums the CPUs. */
struct sl_counters {
	__u64 sock_inserted; /* sockets added to the sockhash */
	__u64 sock_insert_failed; /* sockhash full or socket not eligible */
	__u64 sock_removed; /* accounted sockets that closed */
	__u64 conn_map_full; /* sockets without an accounting record */
	__u64 redirect_ok; /* messages redirected to the peer */
	__u64 redirect_failed; /* peer not in the sockhash: sent on the plain path */
	__u64 pass_plain; /* messages of sockets pinned to the plain path */
	__u64 not_local; /* established sockets whose peer is not on this host */
	__u64 excluded; /* sockets of an excluded service port */
	__u64 backlog_fallback; /* switches to TCP: the peer read too slowly */
	__u64 backlog_resumed; /* switches back: TCP drained, redirecting again */
	__u64 redirect_off; /* sockets left out: redirect switched off */
	__u64 records_closed; /* close events sent to sl_events */
	__u64 redirect_bytes; /* bytes of the redirected messages */
	__u64 plain_bytes; /* bytes of sockhash sockets' messages sent over TCP */
	__u64 peer_plain; /* sockets left out or taken out: their peer is not in
			   * the sockhash (outside the cgroups, or TFO) */
};

#endif /* FASTPATH_H */
