/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Splice (kernel side, include/splice.h): sk_msg pushes an admitted app
 * socket's messages straight into the upstream socket of its relayed
 * connection; an sk_skb verdict on that upstream socket redirects what it
 * receives to the egress of the sidecar's socket towards the app. Included
 * once, by bpf/fastpath.bpf.c, after the helpers and maps it uses
 * (psock_backlog, plain_drained, SL_SEND_SHUTDOWN, sl_sockhash,
 * sl_sk_by_key).
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

/* The download half: upstream sockets of spliced pairs, their own key ->
 * the proxy's socket. sl_down_verdict is attached to this map, so its
 * sockets' receive path is the verdict's, and the proxy reads what it
 * passes from their psock. A second map beside sl_relay: a socket takes
 * the programs of every map it is in, and sl_relay's sockets must keep
 * TCP's receive path when the download half is not spliced.
 */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, SL_MAX_SPLICES);
	__type(key, struct sl_sock_key);
	__type(value, __u64);
} sl_down SEC(".maps");

/* the upstream socket's cookie -> its splice (the verdict knows its
 * socket's cookie, not its netns)
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SL_MAX_SPLICES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, struct sl_splice_ref);
} sl_down_idx SEC(".maps");

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
					   __u32 dir, __u32 why, __u32 size)
{
	struct sl_splice_stats *st;
	__u32 zero = 0;

	dir &= SL_SPD_NR - 1;
	s->half[dir].relayed++;
	s->half[dir].relayed_bytes += size;
	st = bpf_map_lookup_elem(&sl_splice_stats, &zero);
	if (st)
		st->dir[dir].relay[why & (SL_SPLICE_WHY_SLOTS - 1)]++;
}

static __always_inline void splice_pushed(struct sl_splice_slot *s,
					  __u32 dir, __u32 size)
{
	struct sl_splice_stats *st;
	__u32 zero = 0;

	dir &= SL_SPD_NR - 1;
	s->half[dir].bytes += size;
	s->half[dir].msgs++;
	st = bpf_map_lookup_elem(&sl_splice_stats, &zero);
	if (st) {
		st->dir[dir].pushed_msgs++;
		st->dir[dir].pushed_bytes += size;
	}
}

static __always_inline struct tcp_sock *ref_tcp_sock(struct sl_sock_ref *ref)
{
	return ref ? bpf_rdonly_cast((void *)ref->tp,
				     bpf_core_type_id_kernel(struct tcp_sock)) :
		     NULL;
}

/* Can the target socket take size more bytes now, beyond queued ones on
 * their way to it? Upload: tcp_bpf_push() with nothing taken would hand
 * the app an EAGAIN while its own socket polls writable, and no
 * write-space edge would ever come (edge-triggered apps stall,
 * level-triggered ones spin). TCP checks sk_wmem_queued < sk_sndbuf before
 * each skb it adds, so within that bound the push takes at least part,
 * and a short write is ordinary TCP. Download: the bound on what waits in
 * the target's psock, which nothing else limits.
 */
static __always_inline int target_can_take(struct tcp_sock *tp, __u32 size,
					   __u64 queued, __u32 *why)
{
	struct sock *s;

	if (!tp) {
		*why = SL_SPW_NO_UPSTREAM;
		return 0;
	}
	s = &tp->inet_conn.icsk_inet.sk;
	if ((s->__sk_common.skc_state != TCP_ESTABLISHED &&
	     s->__sk_common.skc_state != TCP_CLOSE_WAIT) ||
	    (s->sk_shutdown & SL_SEND_SHUTDOWN) || s->sk_err) {
		*why = SL_SPW_UP_STATE;
		return 0;
	}
	/* both are ints, never negative */
	if ((__u64)(__u32)s->sk_wmem_queued + queued + size >
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
	struct sl_splice_slot *s;
	struct sl_splice_ref *ref;
	struct sl_sock_ref *up;
	__u64 owner, seq;
	__u32 why;

	ref = bpf_map_lookup_elem(&sl_splice_idx, peer);
	if (!ref)
		return -1;
	owner = ref->owner;
	s = bpf_map_lookup_elem(&sl_splice, &ref->slot);
	if (!s || SL_READ_ONCE(s->owner) != owner)
		return -1; /* ended; the slot may serve another pair */
	seq = SL_READ_ONCE(s->half[SL_SPD_UP].seq);
	if ((seq & 1) || !plain_drained(sk, peer_tp) || psock_backlog(peer_tp) ||
	    SL_READ_ONCE(s->half[SL_SPD_UP].seq) != seq) {
		splice_relayed(s, SL_SPD_UP, SL_SPW_BEHIND, size);
		return -1;
	}
	up = bpf_map_lookup_elem(&sl_up_by_key, &ref->up);
	if (!target_can_take(ref_tcp_sock(up), size, 0, &why)) {
		splice_relayed(s, SL_SPD_UP, why, size);
		return -1;
	}
	/* the slot may have changed hands since the first check */
	if (SL_READ_ONCE(s->owner) != owner)
		return -1;
	if (bpf_msg_redirect_hash(msg, &sl_relay, &ref->up, 0) != SK_PASS) {
		splice_relayed(s, SL_SPD_UP, SL_SPW_NO_UPSTREAM, size);
		return -1;
	}
	splice_pushed(s, SL_SPD_UP, size);
	return SK_PASS;
}

/* Is the upstream's psock holding nothing the proxy has yet to read: no
 * skb in its own queue (passed ones waiting to enter ingress_msg: the
 * verdict's fallback when ingress_msg could not take one at once) and no
 * byte in ingress_msg?
 * The order of the two loads matters. The psock's work (sk_psock_backlog)
 * peeks an skb, queues it on ingress_msg (msg_tot_len grows) and only then
 * dequeues it (qlen drops). Read msg_tot_len first and the work may move
 * the whole queue between the loads: both read 0 while those bytes sit in
 * ingress_msg, and this skb overtakes them (a span of the download came
 * back after later bytes, about one splice test run in 15). Read qlen
 * first: once it reads 0 the bytes it held are counted in msg_tot_len
 * (the work's stores are ordered by its locks; these loads are volatile,
 * so kept in this order). A proxy read in between changes seq, which the
 * caller checks after.
 */
static __always_inline bool psock_empty(struct tcp_sock *tp)
{
	struct sk_psock *psock;

	if (!tp)
		return true;
	psock = bpf_rdonly_cast(
		(void *)((unsigned long)tp->inet_conn.icsk_inet.sk.sk_user_data &
			 SL_SK_USER_DATA_PTRMASK),
		bpf_core_type_id_kernel(struct sk_psock));
	if (!psock)
		return true;
	if (SL_READ_ONCE(psock->ingress_skb.qlen))
		return false;
	return !bpf_core_field_exists(struct sk_psock, msg_tot_len) ||
	       !SL_READ_ONCE(psock->msg_tot_len);
}

/* Bytes ever queued on the socket for sending: write_seq less the ISN
 * (snd_una - bytes_acked). The proxy reads the same as tcpi_bytes_acked +
 * SIOCOUTQ (user/proxy/splice.c).
 */
static __always_inline __u64 tcp_queued_total(struct tcp_sock *tp)
{
	return (__u32)(tp->write_seq - tp->snd_una) + tp->bytes_acked;
}

extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;

#define SL_TCPHDR_FIN 0x01
/* sk_skb_adjust_room() shrinks by at most this much a call */
#define SL_ADJ_ROOM_MAX 0xfff
/* calls, enough for a 64 KiB GRO skb and then some (BIG TCP) */
#define SL_TRIM_CALLS 64

/* One sk_skb_adjust_room() call of the trim, under bpf_loop(): an
 * unrolled loop over a shrinking length gives the verifier a state per
 * length.
 */
struct sl_trim {
	struct __sk_buff *skb;
	__u32 over; /* bytes still to cut from the head */
	int err;
};

static int trim_step(__u32 i, struct sl_trim *t)
{
	__u32 step = t->over > SL_ADJ_ROOM_MAX ? SL_ADJ_ROOM_MAX : t->over;

	if (bpf_skb_adjust_room(t->skb, -(__s32)step, 0, 0)) {
		t->err = 1;
		return 1;
	}
	t->over -= step;
	return t->over ? 0 : 1;
}

/* Linux 6.18 quirk: tcp_data_queue() queues a segment that overlaps bytes
 * already received (a retransmission partly received before, seq <
 * rcv_nxt < end_seq) as it is, for tcp_recvmsg() to skip by copied_seq;
 * tcp_read_skb(), which feeds a verdict program, hands over whole skbs and
 * skips nothing. Unchecked, the overlap reaches the app twice (seen over a
 * veth under load: whole MSS multiples repeated). So the verdict keeps the
 * next sequence number it expects (the slot's rcv_next, from the
 * upstream's copied_seq at the first skb) and cuts what came before it:
 * 0, the skb fits (trimmed if need be); 1, all of it was delivered before
 * (drop it); -1, it could not be trimmed.
 */
static __always_inline int splice_down_dedup(struct __sk_buff *skb,
					     struct sl_splice_slot *s,
					     struct tcp_sock *up_tp)
{
	struct sk_buff *kskb = bpf_cast_to_kern_ctx(skb);
	struct sl_splice_stats *st;
	struct tcp_skb_cb *cb;
	struct sl_trim t = { .skb = skb };
	__u32 zero = 0, seq, end, len = skb->len;
	__s32 over;

	cb = bpf_rdonly_cast(kskb->cb, bpf_core_type_id_kernel(struct tcp_skb_cb));
	seq = cb->seq;
	end = seq + len; /* the data's end; a FIN takes no room here */
	if (s->rcv_set == SL_RCV_UNSET) {
		s->rcv_next = up_tp ? up_tp->copied_seq : seq;
		s->rcv_set = SL_RCV_SET;
	}
	over = (__s32)(s->rcv_next - seq);
	if ((__s32)(end - s->rcv_next) > 0)
		s->rcv_next = end;
	if (over <= 0 || !len)
		return 0;
	st = bpf_map_lookup_elem(&sl_splice_stats, &zero);
	if (st) {
		st->dup_skbs++;
		st->dup_bytes += (__u32)over < len ? (__u32)over : len;
	}
	if ((__u32)over >= len)
		return 1;
	t.over = over;
	bpf_loop(SL_TRIM_CALLS, trim_step, &t, 0);
	if (t.err || t.over) {
		if (st)
			st->trim_failed++;
		return -1;
	}
	return 0;
}

/* The upstream socket received skb: redirect it
 * to the egress of the sidecar's socket towards the app when the pair is
 * spliced, nothing earlier is on the relay's way (the upstream's psock is
 * empty, the proxy holds nothing: include/splice.h) and that socket can
 * take it; SK_PASS leaves it to the proxy (the upstream's psock, read as a
 * plain recv()). Nothing is dropped: a failed lookup would make
 * bpf_sk_redirect_hash() return SK_DROP, and these bytes are acknowledged
 * already. The redirect has no flow control (__SK_REDIRECT frees the
 * upstream's receive buffer at once), so the bound is what the app's side
 * still has room for, counting what is in flight to it.
 */
static __always_inline int splice_down(struct __sk_buff *skb)
{
	__u64 cookie = bpf_get_socket_cookie(skb);
	__u32 len;
	int dup;
	struct sl_splice_slot *s;
	struct sl_splice_ref *ref;
	struct tcp_sock *up_tp, *app_tp;
	__u64 owner, seq, sent, inflight;
	__u32 why;

	ref = bpf_map_lookup_elem(&sl_down_idx, &cookie);
	if (!ref)
		return SK_PASS;
	owner = ref->owner;
	s = bpf_map_lookup_elem(&sl_splice, &ref->slot);
	if (!s || SL_READ_ONCE(s->owner) != owner)
		return SK_PASS;
	up_tp = ref_tcp_sock(bpf_map_lookup_elem(&sl_up_by_key, &ref->up));
	/* bytes delivered before: dropped, they are acknowledged and in
	 * the app's stream already; one that cannot be cut is dropped too and
	 * the pair marked broken (the proxy resets it: a cut stream, never
	 * a corrupt one)
	 */
	dup = splice_down_dedup(skb, s, up_tp);
	if (dup) {
		if (dup < 0)
			s->rcv_set = SL_RCV_BROKEN;
		return SK_DROP;
	}
	len = skb->len;
	/* a FIN without data: the proxy's read returns the EOF */
	if (!len)
		return SK_PASS;
	seq = SL_READ_ONCE(s->half[SL_SPD_DOWN].seq);
	if ((seq & 1) || !psock_empty(up_tp) ||
	    SL_READ_ONCE(s->half[SL_SPD_DOWN].seq) != seq) {
		splice_relayed(s, SL_SPD_DOWN, SL_SPW_BEHIND, len);
		return SK_PASS;
	}
	app_tp = ref_tcp_sock(bpf_map_lookup_elem(&sl_sk_by_key, &ref->side));
	inflight = 0;
	if (app_tp) {
		sent = SL_READ_ONCE(s->app_written) +
		       s->half[SL_SPD_DOWN].bytes;
		inflight = sent - tcp_queued_total(app_tp);
		if ((__s64)inflight < 0)
			inflight = 0;
	}
	if (!target_can_take(app_tp, len, inflight, &why)) {
		splice_relayed(s, SL_SPD_DOWN, why, len);
		return SK_PASS;
	}
	if (SL_READ_ONCE(s->owner) != owner)
		return SK_PASS;
	if (bpf_sk_redirect_hash(skb, &sl_sockhash, &ref->side, 0) !=
	    SK_PASS) {
		splice_relayed(s, SL_SPD_DOWN, SL_SPW_NO_UPSTREAM, len);
		return SK_PASS;
	}
	splice_pushed(s, SL_SPD_DOWN, len);
	return SK_PASS;
}

#endif /* SPLICE_BPF_H */
