// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The benchmark's reference (kernel side): a bare sockops + sk_msg redirect,
 * the minimal textbook version with no accounting, so `sidelane bench` can
 * show the product's overhead over it. sockops puts established IPv4 loopback
 * sockets in a sockhash keyed by their 4-tuple; sk_msg redirects each message
 * to the peer's ingress and passes it on the normal path when the peer is
 * missing. Loaded and attached in-process (nothing pinned) by user/bench/bench.c.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define BARE_AF_INET 2
#define BARE_MAX_SOCKETS 4096 /* the benchmark holds one connection at a time */

/* A socket's 4-tuple, its own end first; IPv4 in network order, ports in host
 * order. BPF-only: user space never builds one.
 */
struct bare_key {
	__u32 local_ip4;
	__u32 remote_ip4;
	__u32 local_port;
	__u32 remote_port;
};

/* 4-tuple of an established loopback socket -> the socket */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, BARE_MAX_SOCKETS);
	__type(key, struct bare_key);
	__type(value, __u64);
} bare_sockhash SEC(".maps");

/* The benchmark's only evidence that the redirect happened: one counter per
 * map, so user space reads each by name without sharing an index layout.
 */
/* 0 -> sockets inserted into bare_sockhash, per CPU */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} bare_inserted SEC(".maps");

/* 0 -> messages redirected to the peer's ingress, per CPU */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} bare_redirected SEC(".maps");

/* 0 -> messages sent on the normal path (peer not in the sockhash), per CPU */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} bare_passed SEC(".maps");

static __always_inline void count(void *map)
{
	__u32 zero = 0;
	__u64 *val = bpf_map_lookup_elem(map, &zero);

	if (val)
		(*val)++;
}

/* remote_port of bpf_sock_ops and sk_msg_md holds the be16 port shifted left
 * by 16 on little-endian hosts, so bpf_ntohl() yields it in host order;
 * local_port is already in host order.
 */
static __always_inline __u32 remote_port(__u32 ctx_port)
{
	return bpf_ntohl(ctx_port);
}

SEC("sockops")
int bare_sockops(struct bpf_sock_ops *skops)
{
	struct bare_key key = {};

	if (skops->op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB &&
	    skops->op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
		return 1;
	/* IPv4 loopback only: the peer of such a socket is always on this host */
	if (skops->family != BARE_AF_INET ||
	    (bpf_ntohl(skops->remote_ip4) >> 24) != 127)
		return 1;
	key.local_ip4 = skops->local_ip4;
	key.remote_ip4 = skops->remote_ip4;
	key.local_port = skops->local_port;
	key.remote_port = remote_port(skops->remote_port);
	if (!bpf_sock_hash_update(skops, &bare_sockhash, &key, BPF_NOEXIST))
		count(&bare_inserted);
	return 1;
}

SEC("sk_msg")
int bare_sk_msg(struct sk_msg_md *msg)
{
	/* the peer's own key is this socket's key with both ends swapped */
	struct bare_key peer = {
		.local_ip4 = msg->remote_ip4,
		.remote_ip4 = msg->local_ip4,
		.local_port = remote_port(msg->remote_port),
		.remote_port = msg->local_port,
	};

	/* SK_DROP here only means the peer is missing: send the bytes normally */
	if (bpf_msg_redirect_hash(msg, &bare_sockhash, &peer, BPF_F_INGRESS) ==
	    SK_PASS)
		count(&bare_redirected);
	else
		count(&bare_passed);
	return SK_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
