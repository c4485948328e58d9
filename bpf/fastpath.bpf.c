// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The local fast path (kernel side): sockops puts established TCP sockets whose
 * peer is on this host into a sockhash; sk_msg redirects each message straight
 * into the peer socket's receive queue, skipping the loopback TCP stack.
 * Loaded and attached by user/loader/fastpath.c.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include "sidelane.h"
#include "fastpath.h"
#include "stats.h"
#include "acct.h"
#include "sockkey.bpf.h"
#include "admission.bpf.h"

/* 4-tuple (+netns) of a local socket -> the socket; sk_msg looks up peers here */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, SL_MAX_SOCKETS);
	__type(key, struct sl_sock_key);
	__type(value, __u64);
} sl_sockhash SEC(".maps");

/* socket cookie -> accounting record of that socket */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SL_MAX_CONNS);
	__type(key, __u64);
	__type(value, struct sl_conn);
} sl_conns SEC(".maps");

/* socket -> struct sl_sk_state: its cookie and its peer's address; sockops
 * creates it, sk_msg completes and reads it.
 */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sl_sk_state);
} sl_sk_state SEC(".maps");

/* 4-tuple key of a socket in the sockhash -> its struct tcp_sock address and
 * cookie.
 * sk_msg cannot look a socket up in the sockhash itself (that takes a
 * reference only bpf_sk_release() drops, which sk_msg may not call); this is
 * how a sender finds its peer's psock to bound the backlog.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SL_MAX_SOCKETS);
	__type(key, struct sl_sock_key);
	__type(value, struct sl_sock_ref);
} sl_sk_by_key SEC(".maps");

/* 0 -> global counters, one copy per CPU */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sl_counters);
} sl_counters SEC(".maps");

/* 0 -> runtime switches (redirect off after a failed self-test) */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sl_fp_cfg);
} sl_fp_cfg SEC(".maps");

/* 0 -> the proxy's and TLS counters: written by user space only (the BPF
 * side never touches it), pinned with the rest for `status` and bpftool
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sl_proxy_counters);
} sl_proxy_stats SEC(".maps");

/* 0 -> the running configuration's version and reloads: user space only */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sl_config_info);
} sl_config_info SEC(".maps");

#include "local_addrs.bpf.h"
#include "events.bpf.h"

/* service port (host order) -> 1: connections kept off the fast path */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SL_MAX_EXCLUDED_PORTS);
	__type(key, __u16);
	__type(value, __u8);
} sl_excluded_ports SEC(".maps");

static __always_inline struct sl_counters *counters(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&sl_counters, &zero);
}

static __always_inline int peer_on_this_host(const struct sl_sock_key *key)
{
	if (sl_is_loopback(key->remote_ip))
		return 1;
	return bpf_map_lookup_elem(&sl_local_addrs, key->remote_ip) != NULL;
}

extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;

/* sk_user_data of a sockmap socket is its psock, with flag bits in the low
 * bits (SK_USER_DATA_NOCOPY | SK_USER_DATA_BPF | SK_USER_DATA_PSOCK).
 */
#define SL_SK_USER_DATA_PTRMASK (~7UL)

/* Bytes redirected to this socket that its app has not read yet: its
 * psock's msg_tot_len (Linux 6.15+, the FIONREAD fix; before, 0). Loads go
 * through bpf_rdonly_cast(), so a socket just freed reads as zeroes.
 */
static __always_inline __u32 psock_backlog(struct tcp_sock *tp)
{
	struct sk_psock *psock;

	if (!tp || !bpf_core_field_exists(struct sk_psock, msg_tot_len))
		return 0;
	psock = bpf_rdonly_cast(
		(void *)((unsigned long)tp->inet_conn.icsk_inet.sk.sk_user_data &
			 SL_SK_USER_DATA_PTRMASK),
		bpf_core_type_id_kernel(struct sk_psock));
	return psock ? psock->msg_tot_len : 0;
}

/* The peer's app has read every byte we ever wrote: its copied_seq (in our
 * sequence space) has reached our write_seq, so nothing sent through TCP is
 * left unread, queued or in flight, and the next redirected byte cannot be
 * read before an older one. No wait for the ACK (delayed up to 40 ms).
 */
static __always_inline int plain_drained(struct bpf_sock *sk,
					 struct tcp_sock *peer)
{
	struct tcp_sock *me = bpf_skc_to_tcp_sock(sk);

	return me && peer && peer->copied_seq == me->write_seq;
}

#define SL_RCV_SHUTDOWN 1 /* sk_shutdown bits (include/net/sock.h) */
#define SL_SEND_SHUTDOWN 2

#include "splice.bpf.h"

/* Is the connecting peer of this accepted socket in the sockhash? The
 * connecting side is established first (SYN-ACK, then the ACK that
 * establishes the accepted side), so an accepted socket whose peer is not
 * in the sockhash has a peer outside our cgroups or one that was not
 * admitted: it would get no redirect, and in the sockhash its FIONREAD would
 * miss every byte that arrives over TCP. (TCP Fast Open establishes the
 * accepted side first: such connections go plain.)
 */
static __always_inline int peer_in_sockhash(struct bpf_sock_ops *skops,
					    const struct sl_conn *conn)
{
	struct sl_sock_key peer = {};

	peer.netns_cookie = conn->key.netns_cookie;
	return !sl_key_peer(skops, &peer) &&
	       bpf_map_lookup_elem(&sl_sk_by_key, &peer);
}

/* Why this socket stays off the sockhash, or SL_ACC_ACCELERATED; sets
 * SL_CONN_F_SIDECAR / SL_CONN_F_SEND_ONLY in conn->flags for what it
 * admits under the safe and send modes (include/admission.h).
 */
static __always_inline __u16 acc_reason(struct bpf_sock_ops *skops,
					struct sl_conn *conn,
					struct sl_counters *cnt,
					struct tcp_sock *tp, __u32 opts)
{
	const struct sl_adm_cfg *adm = adm_cfg();
	int passive = conn->flags & SL_CONN_F_PASSIVE;
	struct sl_fp_cfg *cfg;
	__u32 zero = 0, mode;
	__u16 svc_port, r;

	/* A peer elsewhere can never be in our sockhash: keep its socket off
	 * the sk_msg path entirely rather than pay a failed lookup per
	 * message.
	 */
	if (!peer_on_this_host(&conn->key)) {
		cnt->not_local++;
		return SL_ACC_NOT_LOCAL;
	}
	/* The service port is the listener's: local on the accepted side,
	 * remote on the connecting side, so both ends decide alike.
	 */
	svc_port = passive ? conn->key.local_port : conn->key.remote_port;
	if (bpf_map_lookup_elem(&sl_excluded_ports, &svc_port)) {
		cnt->excluded++;
		return SL_ACC_EXCLUDED;
	}
	/* Redirect off (failed self-test): not even in the sockhash, since
	 * a sockhash socket's FIONREAD counts only redirected bytes (6.18).
	 */
	cfg = bpf_map_lookup_elem(&sl_fp_cfg, &zero);
	if (cfg && cfg->redirect_off) {
		cnt->redirect_off++;
		return SL_ACC_REDIRECT_OFF;
	}
	mode = adm_mode(adm);
	if (mode == SL_APP_NONE)
		return SL_ACC_MODE_NONE;
	if (mode == SL_APP_ALL) {
		if (passive && !peer_in_sockhash(skops, conn)) {
			cnt->peer_plain++;
			return SL_ACC_PEER_PLAIN;
		}
		return SL_ACC_ACCELERATED;
	}
	/* safe and send: the sidecar's accepted socket goes in when the app
	 * socket that connected to it was admitted; the sidecar's own
	 * connects (upstreams, app ports) never: their local peers are
	 * accepted app sockets, which are not.
	 */
	if (adm_is_sidecar(adm, tp)) {
		if (!passive || !peer_in_sockhash(skops, conn)) {
			cnt->peer_plain++;
			return SL_ACC_PEER_PLAIN;
		}
		conn->flags |= SL_CONN_F_SIDECAR;
		return SL_ACC_ACCELERATED;
	}
	r = adm_app_reason(adm, tp, opts, passive);
	if (r == SL_ACC_ACCELERATED)
		conn->flags |= SL_CONN_F_SEND_ONLY;
	return r;
}

/* connect(): the one sockops callback in the connecting process's context;
 * who it is goes into the socket's storage for the record at established.
 */
static __always_inline void on_connect(struct bpf_sock_ops *skops)
{
	struct bpf_sock *sk = skops->sk;
	struct sl_sk_state *st;

	if (!sk)
		return;
	st = bpf_sk_storage_get(&sl_sk_state, sk, NULL,
				BPF_SK_STORAGE_GET_F_CREATE);
	if (!st)
		return;
	st->pid = bpf_get_current_pid_tgid() >> 32;
	st->cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(st->comm, sizeof(st->comm));
}

static __always_inline void on_established(struct bpf_sock_ops *skops,
					   __u32 flags)
{
	struct sl_counters *cnt = counters();
	struct sl_conn conn = {};
	struct sl_sk_state *st;
	struct tcp_sock *tp;
	struct bpf_sock *sk;
	__u64 cookie;

	if (!cnt)
		return;
	/* A socket seen already: the same sockops program is attached to
	 * nested cgroups (sidecar at pod level, app below) and runs once per
	 * level. A record that was deleted at TCP_CLOSE (disconnect, then
	 * connect again) lets a re-established socket start afresh.
	 */
	cookie = bpf_get_socket_cookie(skops);
	if (bpf_map_lookup_elem(&sl_conns, &cookie))
		return;
	if (sl_key_own(skops, &conn.key))
		return;
	conn.key.netns_cookie = bpf_get_netns_cookie(skops);
	conn.flags = flags;
	conn.start_ns = bpf_ktime_get_ns();
	conn.tcp_acked0 = skops->bytes_acked;
	conn.tcp_rx0 = skops->bytes_received;
	sk = skops->sk; /* one read: a second one would not be NULL-checked */
	st = sk ? bpf_sk_storage_get(&sl_sk_state, sk, NULL, 0) : NULL;
	tp = sk ? bpf_skc_to_tcp_sock(sk) : NULL;
	conn.reason = acc_reason(skops, &conn, cnt, tp, st ? st->opts : 0);
	adm_count(conn.reason, 0);
	if (st && st->pid) { /* the connecting process (on_connect) */
		conn.pid = st->pid;
		conn.cgroup_id = st->cgroup_id;
		__builtin_memcpy(conn.comm, st->comm, sizeof(conn.comm));
	}
	if (conn.reason == SL_ACC_ACCELERATED)
		conn.flags |= SL_CONN_F_IN_SOCKHASH;
	/* The sidecar's own connects (upstreams) may become splice targets:
	 * sk_msg finds their tcp_sock in sl_up_by_key to see whether they
	 * have room (bpf/splice.bpf.h). on_close() drops the entry.
	 */
	else if (!(flags & SL_CONN_F_PASSIVE) && tp &&
		 adm_is_sidecar(adm_cfg(), tp))
		conn.flags |= SL_CONN_F_UPSTREAM;
	/* Every connection gets its record (accounting); the record comes
	 * before the insert: sk_msg needs it to keep the byte stream in order
	 * (SL_CONN_F_PLAIN), so a socket without one stays off the fast path.
	 */
	if (bpf_map_update_elem(&sl_conns, &cookie, &conn, BPF_ANY)) {
		cnt->conn_map_full++;
		return;
	}
	/* Ask for state changes so the record is sent and dropped at close */
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags |
						 BPF_SOCK_OPS_STATE_CB_FLAG);
	if (conn.flags & SL_CONN_F_UPSTREAM) {
		struct sl_sock_ref ref = { .tp = (__u64)tp, .cookie = cookie };

		bpf_map_update_elem(&sl_up_by_key, &conn.key, &ref, BPF_ANY);
	}
	if (conn.reason != SL_ACC_ACCELERATED)
		return;
	/* BPF_ANY: a key still held by a dead socket (reset, fd not closed yet)
	 * is taken over by the new socket with the same 4-tuple; otherwise the
	 * peer's messages would be redirected into the dead one.
	 */
	if (bpf_sock_hash_update(skops, &sl_sockhash, &conn.key, BPF_ANY)) {
		struct sl_conn *c = bpf_map_lookup_elem(&sl_conns, &cookie);

		cnt->sock_insert_failed++;
		if (c) {
			c->flags &= ~SL_CONN_F_IN_SOCKHASH;
			c->reason = SL_ACC_INSERT_FAILED;
		}
		return;
	}
	cnt->sock_inserted++;
	/* Storage after the insert is safe: sockops runs under the socket's
	 * lock (softirq at ACTIVE_ESTABLISHED, before accept() hands the socket
	 * out at PASSIVE_ESTABLISHED), so no sendmsg, and so no sk_msg, can run on
	 * this socket in between.
	 */
	if (sk) {
		struct sl_sk_state init = { .cookie = cookie };
		struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);
		struct sl_sock_ref ref = { .tp = (__u64)tp, .cookie = cookie };

		/* An existing storage (the socket connected before) is reset:
		 * its cached peer belongs to the old connection.
		 */
		st = bpf_sk_storage_get(&sl_sk_state, sk, &init,
					BPF_SK_STORAGE_GET_F_CREATE);
		if (st) {
			st->cookie = cookie;
			st->peer_tp = 0;
		}
		if (tp)
			bpf_map_update_elem(&sl_sk_by_key, &conn.key, &ref,
					    BPF_ANY);
	}
	/* A connecting socket also wants its next received segment, which
	 * tells whether its peer joined (see on_first_segment); a send-only
	 * one every segment it transmits (see on_tx_segment).
	 */
	if (!(flags & SL_CONN_F_PASSIVE))
		bpf_sock_ops_cb_flags_set(
			skops, skops->bpf_sock_ops_cb_flags |
				       BPF_SOCK_OPS_PARSE_ALL_HDR_OPT_CB_FLAG |
				       (conn.flags & SL_CONN_F_SEND_ONLY ?
						BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG :
						0));
}

/* Take an admitted socket out of the sockhash; from here on it is a plain
 * TCP socket again. Only for send-only sockets: nothing was ever redirected
 * into them, so their psock holds no data to lose.
 */
static __always_inline void evict(struct bpf_sock_ops *skops,
				  struct sl_conn *conn, __u16 reason)
{
	bpf_sock_ops_cb_flags_set(skops,
				  skops->bpf_sock_ops_cb_flags &
					  ~BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG);
	if (bpf_map_delete_elem(&sl_sockhash, &conn->key))
		return;
	bpf_map_delete_elem(&sl_sk_by_key, &conn->key);
	conn->flags = (conn->flags & ~(SL_CONN_F_IN_SOCKHASH | SL_CONN_F_EVICT)) |
		      SL_CONN_F_PLAIN;
	conn->reason = reason;
	adm_count(reason, 1);
}

/* Every segment a send-only socket transmits, its ACKs included
 * (HDR_OPT_LEN_CB runs from tcp_established_options(), on the fast path
 * too, unlike PARSE_HDR_OPT_CB, which header prediction skips): a socket
 * made blocking since it was admitted (fcntl, FIONBIO), or flagged by
 * sk_msg or cgroup/setsockopt, leaves the sockhash here, under the socket
 * lock. A blocking recv() in the sockmap's receive path would fail EAGAIN
 * on a wakeup without data. No BPF runs at fcntl() here (BPF LSM and fentry
 * are not available everywhere), so this is the first moment after it that
 * sockops sees the socket: its next send (sk_msg passes it to TCP) or the
 * ACK of the next bytes it receives.
 */
static __always_inline void on_tx_segment(struct bpf_sock_ops *skops)
{
	struct sl_conn *conn;
	struct bpf_sock *sk;
	__u64 cookie;

	cookie = bpf_get_socket_cookie(skops);
	conn = bpf_map_lookup_elem(&sl_conns, &cookie);
	if (!conn || !(conn->flags & SL_CONN_F_SEND_ONLY) ||
	    !(conn->flags & SL_CONN_F_IN_SOCKHASH)) {
		bpf_sock_ops_cb_flags_set(
			skops, skops->bpf_sock_ops_cb_flags &
				       ~BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG);
		return;
	}
	if (conn->flags & SL_CONN_F_EVICT) {
		evict(skops, conn, conn->reason);
		return;
	}
	sk = skops->sk;
	if (sk && adm_blocking(bpf_skc_to_tcp_sock(sk)) == 1)
		evict(skops, conn, SL_ACC_BECAME_BLOCKING);
}

/* A connecting socket is inserted before its peer is established (the
 * peer's ACK comes after ours), so at that point nobody knows whether the
 * peer will join. The first TCP segment it receives afterwards tells:
 * peers that both redirect exchange none until close, so this runs once
 * per connection at most. If the peer is not in the sockhash (a server
 * outside our cgroups) and nothing redirected to us is unread, our socket
 * leaves the sockhash: there its FIONREAD would count only redirected
 * bytes and miss every byte TCP brings (seen on 6.18), and it could never
 * redirect anyway. sockops may delete from a sockhash (sk_msg may not).
 */
static __always_inline void on_first_segment(struct bpf_sock_ops *skops)
{
	struct sl_sock_key peer = {};
	struct sl_counters *cnt;
	struct sl_conn *conn;
	struct bpf_sock *sk;
	__u64 cookie;

	bpf_sock_ops_cb_flags_set(skops,
				  skops->bpf_sock_ops_cb_flags &
					  ~BPF_SOCK_OPS_PARSE_ALL_HDR_OPT_CB_FLAG);
	cookie = bpf_get_socket_cookie(skops);
	conn = bpf_map_lookup_elem(&sl_conns, &cookie);
	cnt = counters();
	if (!conn || !cnt || !(conn->flags & SL_CONN_F_IN_SOCKHASH))
		return;
	peer.netns_cookie = conn->key.netns_cookie;
	if (sl_key_peer(skops, &peer) ||
	    bpf_map_lookup_elem(&sl_sk_by_key, &peer))
		return;
	sk = skops->sk;
	if (!sk || psock_backlog(bpf_skc_to_tcp_sock(sk)))
		return;
	if (bpf_map_delete_elem(&sl_sockhash, &conn->key))
		return;
	bpf_map_delete_elem(&sl_sk_by_key, &conn->key);
	conn->flags = (conn->flags & ~SL_CONN_F_IN_SOCKHASH) | SL_CONN_F_PLAIN;
	conn->reason = SL_ACC_PEER_PLAIN;
	cnt->peer_plain++;
	adm_count(SL_ACC_PEER_PLAIN, 1);
}


/* What each end of a local pair redirected into the other, copied into
 * both records while both exist: the first of the two to close does it, so
 * the second finds its count in its own record.
 */
static __always_inline void swap_rx(struct bpf_sock_ops *skops,
				    struct sl_conn *conn)
{
	struct sl_sock_key peer = {};
	struct sl_sock_ref *ref;
	struct sl_conn *pc;

	peer.netns_cookie = conn->key.netns_cookie;
	if (sl_key_peer(skops, &peer))
		return;
	ref = bpf_map_lookup_elem(&sl_sk_by_key, &peer);
	pc = ref ? bpf_map_lookup_elem(&sl_conns, &ref->cookie) : NULL;
	if (!pc)
		return;
	conn->rx_redir_bytes = pc->redir_bytes;
	conn->rx_redir_msgs = pc->redir_msgs;
	pc->rx_redir_bytes = conn->redir_bytes;
	pc->rx_redir_msgs = conn->redir_msgs;
}

/* The record goes to user space once, at TCP_CLOSE (sl_events); a full
 * ring is counted in sl_events_lost.
 */
static __always_inline void emit_close(struct bpf_sock_ops *skops,
				       struct sl_conn *conn, __u64 cookie,
				       struct sl_counters *cnt)
{
	__u32 old_state = skops->args[0];
	__u64 rx = skops->bytes_received, acked = skops->bytes_acked;
	struct bpf_sock *sk = skops->sk;
	struct tcp_sock *tp = sk ? bpf_skc_to_tcp_sock(sk) : NULL;
	struct sl_event *ev;

	/* payload only: the handshake's share (tcp_acked0/tcp_rx0) and a FIN
	 * each way take one sequence number in these counters
	 */
	acked -= conn->tcp_acked0;
	rx -= conn->tcp_rx0;
	if (tp) {
		__u8 shut = tp->inet_conn.icsk_inet.sk.sk_shutdown;

		if ((shut & SL_RCV_SHUTDOWN) && rx)
			rx--; /* the peer's FIN */
		/* write_seq counts the FIN once queued: all acked, FIN too */
		if ((shut & SL_SEND_SHUTDOWN) && tp->snd_una == tp->write_seq &&
		    acked)
			acked--; /* our FIN, acknowledged */
	}
	if (conn->flags & SL_CONN_F_IN_SOCKHASH)
		swap_rx(skops, conn);
	ev = bpf_ringbuf_reserve(&sl_events, sizeof(*ev), 0);
	if (!ev) {
		sl_event_lost();
		return;
	}
	ev->type = SL_EV_CLOSE;
	ev->close_state = old_state;
	ev->cookie = cookie;
	ev->end_ns = bpf_ktime_get_ns();
	ev->tcp_bytes_received = rx;
	ev->tcp_bytes_acked = acked;
	ev->rule_id = 0;
	ev->pad = 0;
	__builtin_memcpy(&ev->conn, conn, sizeof(ev->conn));
	bpf_ringbuf_submit(ev, sl_event_flags());
	if (cnt)
		cnt->records_closed++;
}

static __always_inline void on_close(struct bpf_sock_ops *skops)
{
	struct sl_counters *cnt;
	struct sl_conn *conn;
	struct bpf_sock *sk;
	__u64 cookie;

	/* Since Linux 6.4 sockmap no longer hooks unhash for TCP: a socket
	 * leaves the sockhash at close() or destroy, not at TCP_CLOSE. Unlink it
	 * here when nothing redirected to it is unread (dropping the psock
	 * would discard that); otherwise it stays until close(), and a new
	 * socket with the same 4-tuple takes its key over (BPF_ANY above).
	 */
	cookie = bpf_get_socket_cookie(skops);
	conn = bpf_map_lookup_elem(&sl_conns, &cookie);
	if (!conn)
		return;
	cnt = counters();
	emit_close(skops, conn, cookie, cnt);
	/* Without msg_tot_len (before 6.15) unread data cannot be seen: the
	 * entry is then left for close() to remove, never dropped here.
	 */
	sk = skops->sk;
	if (sk && bpf_core_field_exists(struct sk_psock, msg_tot_len) &&
	    !psock_backlog(bpf_skc_to_tcp_sock(sk)))
		bpf_map_delete_elem(&sl_sockhash, &conn->key);
	bpf_map_delete_elem(&sl_sk_by_key, &conn->key);
	if (conn->flags & SL_CONN_F_UPSTREAM)
		bpf_map_delete_elem(&sl_up_by_key, &conn->key);
	if (bpf_map_delete_elem(&sl_conns, &cookie))
		return;
	if (cnt)
		cnt->sock_removed++;
}

SEC("sockops")
int sl_sockops(struct bpf_sock_ops *skops)
{
	switch (skops->op) {
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
		on_connect(skops);
		break;
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		on_established(skops, 0);
		break;
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		on_established(skops, SL_CONN_F_PASSIVE);
		break;
	case BPF_SOCK_OPS_STATE_CB:
		if (skops->args[1] == BPF_TCP_CLOSE)
			on_close(skops);
		break;
	case BPF_SOCK_OPS_PARSE_HDR_OPT_CB:
		on_first_segment(skops);
		break;
	case BPF_SOCK_OPS_HDR_OPT_LEN_CB:
		on_tx_segment(skops);
		break;
	}
	return 1;
}

/* The peer's tcp_sock, looked up by key once and kept in our socket storage.
 * Every load through it goes via bpf_rdonly_cast(), so a peer that has just
 * been freed reads as zeroes instead of faulting (the redirect to it fails
 * then anyway, and the message takes the plain path).
 */
static __always_inline struct tcp_sock *
peer_tcp_sock(struct sl_sk_state *st, const struct sl_sock_key *peer)
{
	struct sl_sock_ref *ref;

	if (!st->peer_tp) {
		ref = bpf_map_lookup_elem(&sl_sk_by_key, peer);
		if (!ref)
			return NULL;
		st->peer_tp = ref->tp;
	}
	return bpf_rdonly_cast((void *)st->peer_tp,
			       bpf_core_type_id_kernel(struct tcp_sock));
}

/* safe and send modes: may this message be redirected into the peer? Only
 * a send-only app socket's, only into a sidecar socket (the peer's record
 * says so; checked once), and only while the socket stays non-blocking: one
 * made blocking is flagged here, its message takes TCP, and the segment
 * that carries it takes the socket out of the sockhash (on_tx_segment).
 */
static __always_inline int adm_may_redirect(struct bpf_sock *sk,
					    struct sl_conn *conn,
					    const struct sl_sock_key *peer)
{
	struct sl_sock_ref *ref;
	struct sl_conn *pc;

	if ((conn->flags & (SL_CONN_F_SEND_ONLY | SL_CONN_F_EVICT)) !=
	    SL_CONN_F_SEND_ONLY)
		return 0;
	if (adm_blocking(bpf_skc_to_tcp_sock(sk)) == 1) {
		conn->flags |= SL_CONN_F_EVICT;
		conn->reason = SL_ACC_BECAME_BLOCKING;
		return 0;
	}
	if (conn->flags & SL_CONN_F_PEER_SIDECAR)
		return 1;
	ref = bpf_map_lookup_elem(&sl_sk_by_key, peer);
	pc = ref ? bpf_map_lookup_elem(&sl_conns, &ref->cookie) : NULL;
	if (!pc || !(pc->flags & SL_CONN_F_SIDECAR))
		return 0;
	conn->flags |= SL_CONN_F_PEER_SIDECAR;
	return 1;
}

SEC("sk_msg")
int sl_sk_msg(struct sk_msg_md *msg)
{
	struct sl_sock_key peer = {};
	struct sl_counters *cnt;
	struct sl_fp_cfg *cfg;
	struct tcp_sock *peer_tp;
	__u32 zero = 0;
	struct sl_sk_state *st;
	struct sl_conn *conn;
	struct bpf_sock *sk;
	__u32 size, state;

	/* Read once up front: clang merges the two uses below into one load
	 * from a computed ctx offset, which the verifier rejects.
	 */
	size = msg->size;
	sk = msg->sk;
	if (!sk)
		return SK_PASS;
	state = sk->state;
	st = bpf_sk_storage_get(&sl_sk_state, sk, NULL, 0);
	if (!st)
		return SK_PASS;
	cnt = counters();
	conn = bpf_map_lookup_elem(&sl_conns, &st->cookie);
	if (!cnt || !conn)
		return SK_PASS;
	/* sk_msg runs in the sender's context, unlike sockops at established
	 * (softirq for the passive side): this is where the owner is known.
	 */
	if (!conn->pid) {
		conn->pid = bpf_get_current_pid_tgid() >> 32;
		conn->cgroup_id = bpf_get_current_cgroup_id();
		bpf_get_current_comm(conn->comm, sizeof(conn->comm));
	}
	if (conn->flags & SL_CONN_F_PLAIN)
		goto plain;
	/* Bytes may have gone through TCP before the socket had its psock:
	 * TCP Fast Open data in the SYN, or a send racing the insert. They sit
	 * in the peer's sk_receive_queue, which the peer reads after the psock
	 * queue: start behind the drain gate as if the backlog bound had hit.
	 */
	if (!(conn->flags & SL_CONN_F_SEEN)) {
		struct tcp_sock *me = bpf_skc_to_tcp_sock(sk);

		conn->flags |= SL_CONN_F_SEEN;
		if (me && (me->bytes_sent || me->write_seq != me->snd_nxt))
			conn->flags |= SL_CONN_F_BACKLOG;
	}
	/* Redirect switched off (the start-up self-test failed on this
	 * kernel): TCP from here, behind the drain gate, so bytes already
	 * redirected are read first and a later switch back on cannot
	 * reorder either. An ARRAY lookup is inlined by the verifier.
	 */
	cfg = bpf_map_lookup_elem(&sl_fp_cfg, &zero);
	if (cfg && cfg->redirect_off) {
		conn->flags |= SL_CONN_F_BACKLOG;
		goto plain;
	}
	/* After shutdown(SHUT_WR) a redirect would still deliver, after the FIN
	 * the peer has seen; the plain path fails the send with EPIPE instead.
	 */
	if (state != BPF_TCP_ESTABLISHED && state != BPF_TCP_CLOSE_WAIT)
		goto plain;

	peer.netns_cookie = conn->key.netns_cookie;
	if (sl_key_peer(msg, &peer))
		goto plain;
	/* Outside the all mode nothing is redirected into an app socket, and
	 * an app socket redirects only while admitted. TCP then, behind the
	 * drain gate: switching to TCP never reorders (the reader drains the
	 * psock first), switching back waits until TCP has nothing left (a
	 * peer that joins late, a restart in the all mode).
	 */
	if (adm_mode(adm_cfg()) != SL_APP_ALL &&
	    !adm_may_redirect(sk, conn, &peer)) {
		conn->flags |= SL_CONN_F_BACKLOG;
		goto plain;
	}
	/* A spliced pair: straight into the upstream's send queue once the
	 * proxy has caught up (bpf/splice.bpf.h); else into the sidecar.
	 */
	peer_tp = peer_tcp_sock(st, &peer);
	if ((conn->flags & SL_CONN_F_PEER_SIDECAR) &&
	    splice_push(msg, sk, &peer, peer_tp, size) == SK_PASS) {
		conn->redir_bytes += size;
		conn->redir_msgs++;
		return SK_PASS;
	}
	/* Bound what a slow reader lets pile up (see SL_CONN_F_BACKLOG). */
	if (conn->flags & SL_CONN_F_BACKLOG) {
		if (!plain_drained(sk, peer_tp))
			goto plain;
		conn->flags &= ~SL_CONN_F_BACKLOG;
		cnt->backlog_resumed++;
	} else if (psock_backlog(peer_tp) + size > SL_MAX_BACKLOG) {
		conn->flags |= SL_CONN_F_BACKLOG;
		cnt->backlog_fallback++;
		goto plain;
	}
	/* bpf_msg_redirect_hash() returns SK_DROP when the peer is missing;
	 * dropping would lose the app's bytes, so that case takes the plain path.
	 */
	if (bpf_msg_redirect_hash(msg, &sl_sockhash, &peer, BPF_F_INGRESS) ==
	    SK_PASS) {
		conn->redir_bytes += size;
		conn->redir_msgs++;
		cnt->redirect_ok++;
		cnt->redirect_bytes += size;
		return SK_PASS;
	}
	cnt->redirect_failed++;
	/* Only safe before the first redirected byte: later the peer is gone
	 * (closing) and plain TCP gives the app the error it would have had.
	 */
	conn->flags |= SL_CONN_F_PLAIN;
	conn->reason = SL_ACC_FELL_BACK;
plain:
	conn->pass_bytes += size;
	conn->pass_msgs++;
	cnt->pass_plain++;
	cnt->plain_bytes += size;
	return SK_PASS;
}

/* The download half of a spliced pair (bpf/splice.bpf.h). Attached to
 * sl_down, whose only sockets are the proxy's upstream sockets; whatever it
 * does not redirect it passes to the proxy.
 */
SEC("sk_skb/stream_verdict")
int sl_down_verdict(struct __sk_buff *skb)
{
	return splice_down(skb);
}

/* The admission sweep, run by `sidelane run` at start and again while some
 * socket waits (user/loader/admission.c): every socket of the sockhash that the
 * mode in force would not admit (adm_keeps) leaves it, once nothing
 * redirected to it is unread (a psock dropped with data would lose it).
 * That covers sockets an older build admitted both ways, and a restart in
 * a stricter mode. The programs in force redirect nothing into such a
 * socket, so its psock only drains. One struct sl_sweep_rec per socket
 * taken out or left waiting.
 * A TCP iterator (the sockets of the reader's network namespace, the
 * pod's), not a sockmap one: Linux 6.18 as built here refuses to load
 * map-element iterators (EPERM, iter/sockmap and iter/bpf_map_elem alike)
 * but loads iter/tcp, which also runs each socket's turn under its lock.
 * Iterators may delete from a sockmap (may_update_sockmap()); sk_msg may
 * not.
 */
SEC("iter/tcp")
int sl_adm_sweep(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	struct sl_sweep_rec rec = {};
	struct sl_sock_ref *ref;
	struct sl_conn *conn;

	if (!skc)
		return 0;
	rec.cookie = bpf_get_socket_cookie(skc);
	conn = bpf_map_lookup_elem(&sl_conns, &rec.cookie);
	if (!conn || !(conn->flags & SL_CONN_F_IN_SOCKHASH))
		return 0;
	rec.reason = adm_keeps(adm_cfg(), conn);
	if (rec.reason == SL_ACC_ACCELERATED)
		return 0;
	/* its key may have passed to a newer socket of the same 4-tuple */
	ref = bpf_map_lookup_elem(&sl_sk_by_key, &conn->key);
	if (!ref || ref->cookie != rec.cookie)
		return 0;
	/* Without msg_tot_len (before the FIONREAD fix) nothing tells an
	 * empty psock: such a socket stays until it closes.
	 */
	if (!bpf_core_field_exists(struct sk_psock, msg_tot_len) ||
	    psock_backlog(bpf_skc_to_tcp_sock(skc))) {
		rec.what = SL_SWEEP_WAITING;
		goto out;
	}
	if (bpf_map_delete_elem(&sl_sockhash, &conn->key))
		return 0; /* gone meanwhile */
	bpf_map_delete_elem(&sl_sk_by_key, &conn->key);
	conn->flags = (conn->flags & ~(SL_CONN_F_IN_SOCKHASH |
				       SL_CONN_F_SEND_ONLY)) |
		      SL_CONN_F_PLAIN;
	conn->reason = rec.reason;
	adm_count(rec.reason, 1);
	rec.what = SL_SWEEP_EVICTED;
out:
	bpf_seq_write(ctx->meta->seq, &rec, sizeof(rec));
	return 0;
}

/* On the app's cgroup: note the send-side options a redirect would skip
 * (adm_opt_bit), from before the socket is established, so that sockops
 * leaves it out; a socket admitted already is flagged, and its next segment
 * takes it out of the sockhash (on_tx_segment). The option itself is always
 * applied: the call goes on to the kernel unchanged.
 */
SEC("cgroup/setsockopt")
int sl_setsockopt(struct bpf_sockopt *ctx)
{
	struct sl_sk_state *st;
	struct sl_conn *conn;
	struct bpf_sock *sk;
	__u32 bit;

	sk = ctx->sk;
	if (!sk || sk->protocol != SL_IPPROTO_TCP)
		return 1;
	bit = adm_opt_bit(ctx);
	if (!bit)
		return 1;
	st = bpf_sk_storage_get(&sl_sk_state, sk, NULL,
				BPF_SK_STORAGE_GET_F_CREATE);
	if (!st)
		return 1;
	st->opts |= bit;
	/* st->cookie is set for sockets in the sockhash only */
	conn = st->cookie ? bpf_map_lookup_elem(&sl_conns, &st->cookie) : NULL;
	if (conn && (conn->flags & SL_CONN_F_SEND_ONLY) &&
	    (conn->flags & SL_CONN_F_IN_SOCKHASH)) {
		conn->flags |= SL_CONN_F_EVICT;
		conn->reason = adm_opt_reason(bit);
	}
	return 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
