/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Splice (kernel side, include/splice.h): sk_msg pushes an admitted app
 * socket's messages straight into the upstream socket of its relayed
 * connection. Included once, by bpf/fastpath.bpf.c, after the helpers it
 * uses (psock_backlog, plain_drained, SL_SEND_SHUTDOWN).
 */
#ifndef SPLICE_BPF_H
#define SPLICE_BPF_H

#include "splice.h"

/* upstream's key (struct sl_sock_key) -> the proxy's upstream socket, put
 * here by the proxy once connected. No program is attached to this map: its
 * sockets keep TCP's receive path for the proxy (a verdict program would
 * give them tcp_bpf_recvmsg_parser); it only names redirect targets.
 */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, SL_MAX_SPLICES);
	__type(key, struct sl_sock_key);
	__type(value, __u64);
} sl_relay SEC(".maps");

/* a socket the sidecar connected (an upstream, its own key) -> its tcp_sock
 * and cookie; sockops keeps it from established to close, sk_msg reads
 * whether the upstream has room. Apart from sl_sk_by_key, whose entries
 * mean "in the sockhash".
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SL_MAX_CONNS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sl_sock_key);
	__type(value, struct sl_sock_ref);
} sl_up_by_key SEC(".maps");

/* the sidecar's accepted socket (its own key) -> upstream key and slot */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SL_MAX_SPLICES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sl_sock_key);
	__type(value, struct sl_splice_ref);
} sl_splice_idx SEC(".maps");

/* slot -> its owner, the proxy's seq, what was pushed or relayed;
 * mmap()ed by the proxy
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SL_MAX_SPLICES);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct sl_splice_slot);
} sl_splice SEC(".maps");

/* 0 -> pushed messages and bytes, relayed ones by why; per CPU */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sl_splice_stats);
} sl_splice_stats SEC(".maps");

/* One load each time: the proxy writes owner and seq from user space
 * (mmap) while sk_msg runs.
 */
#define SL_READ_ONCE(x) (*(volatile typeof(x) *)&(x))


static __always_inline void splice_relayed(struct sl_splice_slot *s,
					   __u32 why, __u32 size)
{
	struct sl_splice_stats *st;
	__u32 zero = 0;

	s->relayed++;
	s->relayed_bytes += size;
	st = bpf_map_lookup_elem(&sl_splice_stats, &zero);
	if (st)
		st->relay[why & (SL_SPLICE_WHY_SLOTS - 1)]++;
}

/* Can the upstream take size more bytes now? tcp_bpf_push() with nothing
 * taken would hand the app an EAGAIN while its own socket polls writable,
 * and no write-space edge would ever come (edge-triggered apps stall,
 * level-triggered ones spin). TCP checks sk_wmem_queued < sk_sndbuf before
 * each skb it adds, so within that bound the push takes at least part,
 * and a short write is ordinary TCP.
 */
static __always_inline int up_can_take(struct tcp_sock *up, __u32 size,
				       __u32 *why)
{
	struct sock *s;

	if (!up) {
		*why = SL_SPW_NO_UPSTREAM;
		return 0;
	}
	s = &up->inet_conn.icsk_inet.sk;
	if ((s->__sk_common.skc_state != TCP_ESTABLISHED &&
	     s->__sk_common.skc_state != TCP_CLOSE_WAIT) ||
	    (s->sk_shutdown & SL_SEND_SHUTDOWN) || s->sk_err) {
		*why = SL_SPW_UP_STATE;
		return 0;
	}
	/* both are ints, never negative */
	if ((__u64)(__u32)s->sk_wmem_queued + size >
	    (__u64)(__u32)s->sk_sndbuf) {
		*why = SL_SPW_FULL;
		return 0;
	}
	return 1;
}

/* The app socket sk (admitted send-only; its peer the sidecar's socket
 * with key peer and tcp_sock peer_tp) sends size bytes: push them to the
 * upstream if the pair is spliced and nothing earlier is on the relay's
 * way (include/splice.h), SK_PASS then; -1 for the usual path (the relay).
 * A failed lookup in sl_relay would make bpf_msg_redirect_hash() return
 * SK_DROP, and dropping would lose the app's bytes: that takes the relay.
 */
static __always_inline int splice_push(struct sk_msg_md *msg,
				       struct bpf_sock *sk,
				       const struct sl_sock_key *peer,
				       struct tcp_sock *peer_tp, __u32 size)
{
	struct sl_splice_stats *st;
	struct sl_splice_slot *s;
	struct sl_splice_ref *ref;
	struct sl_sock_ref *up;
	__u32 why, zero = 0;
	__u64 owner, seq;

	ref = bpf_map_lookup_elem(&sl_splice_idx, peer);
	if (!ref)
		return -1;
	owner = ref->owner;
	s = bpf_map_lookup_elem(&sl_splice, &ref->slot);
	if (!s || SL_READ_ONCE(s->owner) != owner)
		return -1; /* ended; the slot may serve another pair */
	seq = SL_READ_ONCE(s->seq);
	if ((seq & 1) || !plain_drained(sk, peer_tp) || psock_backlog(peer_tp) ||
	    SL_READ_ONCE(s->seq) != seq) {
		splice_relayed(s, SL_SPW_BEHIND, size);
		return -1;
	}
	up = bpf_map_lookup_elem(&sl_up_by_key, &ref->up);
	if (!up_can_take(up ? bpf_rdonly_cast((void *)up->tp,
					      bpf_core_type_id_kernel(
						      struct tcp_sock)) :
			      NULL,
			 size, &why)) {
		splice_relayed(s, why, size);
		return -1;
	}
	/* the slot may have changed hands since the first check */
	if (SL_READ_ONCE(s->owner) != owner)
		return -1;
	if (bpf_msg_redirect_hash(msg, &sl_relay, &ref->up, 0) != SK_PASS) {
		splice_relayed(s, SL_SPW_NO_UPSTREAM, size);
		return -1;
	}
	s->bytes += size;
	s->msgs++;
	st = bpf_map_lookup_elem(&sl_splice_stats, &zero);
	if (st) {
		st->pushed_msgs++;
		st->pushed_bytes += size;
	}
	return SK_PASS;
}

#endif /* SPLICE_BPF_H */
