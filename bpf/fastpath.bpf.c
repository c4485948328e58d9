// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The local fast path (kernel side): sockops puts established TCP sockets whose
 * peer is on this host into a sockhash; sk_msg redirects each message straight
 * into the peer socket's receive queue, skipping the loopback TCP stack.
 * Loaded and attached by user/fastpath.c.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "sidelane.h"
#include "fastpath.h"
#include "sockkey.bpf.h"

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

/* socket -> its cookie. sk_msg has no bpf_get_socket_cookie() (6.18 still),
 * so sockops leaves the cookie in socket-local storage, freed with the socket.
 */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u64);
} sl_sk_cookie SEC(".maps");

/* 0 -> global counters, one copy per CPU */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sl_counters);
} sl_counters SEC(".maps");

/* address of this host (non-loopback; filled by user space) -> 1 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SL_MAX_LOCAL_ADDRS);
	__type(key, struct sl_addr);
	__type(value, __u8);
} sl_local_addrs SEC(".maps");

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

static __always_inline void on_established(struct bpf_sock_ops *skops,
					   __u32 flags)
{
	struct sl_counters *cnt = counters();
	struct sl_conn conn = {};
	struct bpf_sock *sk;
	__u16 svc_port;
	__u64 cookie;

	if (!cnt)
		return;
	if (sl_key_own(skops, &conn.key))
		return;
	/* A peer elsewhere can never be in our sockhash: keep its socket off the
	 * sk_msg path entirely rather than pay a failed lookup per message.
	 */
	if (!peer_on_this_host(&conn.key)) {
		cnt->not_local++;
		return;
	}
	/* The service port is the listener's: local on the accepted side,
	 * remote on the connecting side, so both ends decide alike.
	 */
	svc_port = (flags & SL_CONN_F_PASSIVE) ? conn.key.local_port :
						 conn.key.remote_port;
	if (bpf_map_lookup_elem(&sl_excluded_ports, &svc_port)) {
		cnt->excluded++;
		return;
	}
	conn.key.netns_cookie = bpf_get_netns_cookie(skops);
	conn.flags = flags | SL_CONN_F_IN_SOCKHASH;
	conn.start_ns = bpf_ktime_get_ns();
	cookie = bpf_get_socket_cookie(skops);

	/* The record comes first: sk_msg needs it to keep the byte stream in
	 * order (SL_CONN_F_PLAIN), so a socket without one stays off the fast path.
	 */
	if (bpf_map_update_elem(&sl_conns, &cookie, &conn, BPF_ANY)) {
		cnt->conn_map_full++;
		return;
	}
	if (bpf_sock_hash_update(skops, &sl_sockhash, &conn.key, BPF_NOEXIST)) {
		cnt->sock_insert_failed++;
		bpf_map_delete_elem(&sl_conns, &cookie);
		return;
	}
	cnt->sock_inserted++;
	sk = skops->sk; /* one read: a second one would not be NULL-checked */
	if (sk)
		bpf_sk_storage_get(&sl_sk_cookie, sk, &cookie,
				   BPF_SK_STORAGE_GET_F_CREATE);
	/* Ask for state changes so the record is dropped at close. */
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags |
						 BPF_SOCK_OPS_STATE_CB_FLAG);
}

static __always_inline void on_close(struct bpf_sock_ops *skops)
{
	struct sl_counters *cnt;
	__u64 cookie;

	/* The kernel already unlinks the socket from the sockhash when it goes to
	 * TCP_CLOSE (sock_map_unhash); only our own record needs deleting.
	 */
	cookie = bpf_get_socket_cookie(skops);
	if (bpf_map_delete_elem(&sl_conns, &cookie))
		return;
	cnt = counters();
	if (cnt)
		cnt->sock_removed++;
}

SEC("sockops")
int sl_sockops(struct bpf_sock_ops *skops)
{
	switch (skops->op) {
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
	}
	return 1;
}

SEC("sk_msg")
int sl_sk_msg(struct sk_msg_md *msg)
{
	struct sl_sock_key peer = {};
	struct sl_counters *cnt;
	struct sl_conn *conn;
	struct bpf_sock *sk;
	__u64 *cookie;
	__u32 size;

	/* Read once up front: clang merges the two uses below into one load
	 * from a computed ctx offset, which the verifier rejects.
	 */
	size = msg->size;
	sk = msg->sk;
	if (!sk)
		return SK_PASS;
	cookie = bpf_sk_storage_get(&sl_sk_cookie, sk, NULL, 0);
	if (!cookie)
		return SK_PASS;
	cnt = counters();
	conn = bpf_map_lookup_elem(&sl_conns, cookie);
	if (!cnt || !conn)
		return SK_PASS;
	/* sk_msg runs in the sender's context, unlike sockops at established
	 * (softirq for the passive side): this is where the owner is known.
	 */
	if (!conn->pid) {
		conn->pid = bpf_get_current_pid_tgid() >> 32;
		conn->cgroup_id = bpf_get_current_cgroup_id();
	}
	if (conn->flags & SL_CONN_F_PLAIN)
		goto plain;

	peer.netns_cookie = conn->key.netns_cookie;
	if (sl_key_peer(msg, &peer))
		goto plain;
	/* bpf_msg_redirect_hash() returns SK_DROP when the peer is missing;
	 * dropping would lose the app's bytes, so that case takes the plain path.
	 */
	if (bpf_msg_redirect_hash(msg, &sl_sockhash, &peer, BPF_F_INGRESS) ==
	    SK_PASS) {
		conn->redir_bytes += size;
		conn->redir_msgs++;
		cnt->redirect_ok++;
		return SK_PASS;
	}
	cnt->redirect_failed++;
	/* Only safe before the first redirected byte: later the peer is gone
	 * (closing) and plain TCP gives the app the error it would have had.
	 */
	conn->flags |= SL_CONN_F_PLAIN;
plain:
	conn->pass_bytes += size;
	conn->pass_msgs++;
	cnt->pass_plain++;
	return SK_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
