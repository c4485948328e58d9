// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Inbound capture (kernel side), without iptables: an sk_lookup program on
 * the pod's network namespace. When a TCP SYN from outside the namespace is
 * for one of the app's ports, the kernel's listener lookup is answered with
 * the sidecar's inbound listener instead of the app's. The sidecar's
 * accepted socket keeps the address the client asked for: getsockname()
 * gives podIP:8080, which is how the sidecar learns the app port. With
 * proxy.external the listener is a foreign proxy's, taken into the map by a
 * sockops program on the sidecar's cgroup when it listens. Loaded and
 * attached by user/loader/inbound.c.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "sidelane.h"
#include "fastpath.h"
#include "inbound.h"
#include "sockkey.bpf.h"

#define SL_EEXIST 17 /* errno values are macros, not in vmlinux.h */

/* 0 -> the captured ports, one bit each. A bitmap in one array element, as
 * sl_capture_ports: one inlined lookup like an ARRAY of 65536 __u8, but 8 KiB
 * instead of 512 KiB (array values are rounded up to 8 bytes), and user space
 * replaces the whole set with one update.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sl_in_ports);
} sl_in_ports SEC(".maps");

/* SL_IN_SLOT_V4 / SL_IN_SLOT_V6 -> the sidecar's listening socket. Closing
 * the socket removes it from the map: that is how a dead sidecar is noticed.
 */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, SL_IN_N_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} sl_in_listeners SEC(".maps");

/* 0 -> runtime settings (fail_open) */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sl_in_cfg);
} sl_in_cfg SEC(".maps");

/* 0 -> what was done with TCP lookups; per CPU */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sl_in_stats);
} sl_in_stats SEC(".maps");

#include "local_addrs.bpf.h"

static __always_inline struct sl_in_stats *stats(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&sl_in_stats, &zero);
}

/* A captured port that cannot be steered. Fail closed by default: SK_DROP
 * makes the lookup find no socket at all, so TCP answers the SYN with a RST
 * and the client's connect() fails at once with ECONNREFUSED (measured by
 * tests/integ/inbound.c); the app is not reached without its sidecar.
 */
static __always_inline int unsteerable(void)
{
	__u32 zero = 0;
	struct sl_in_cfg *cfg = bpf_map_lookup_elem(&sl_in_cfg, &zero);

	return cfg && cfg->fail_open ? SK_PASS : SK_DROP;
}

/* Did a SYN that did not come in on lo come from a socket of this
 * namespace all the same? ingress_ifindex (Linux 5.17+) is lo only for
 * loopback destinations (127.0.0.1, ::1). A connection from inside the
 * namespace to one of its other addresses (podIP:8080) travels over lo too,
 * but the kernel reports the device that owns the destination address, the
 * same ifindex as the network's SYNs carry (seen on 6.18): for IPv4, a local
 * route's rt_iif is its FIB result device (ip_route_output_key_hash_rcu);
 * for IPv6, ip6_rcv_core() takes the iif from the route's inet6_dev. What
 * tells them apart is the source: a socket of ours sends from loopback or
 * from one of our addresses.
 */
static __always_inline int own_source(const struct sl_addr *remote)
{
	if (sl_is_loopback(remote->ip))
		return 1;
	return bpf_map_lookup_elem(&sl_local_addrs, remote) != NULL;
}

/* Runs for every listener lookup in the namespace, loopback included (the
 * sidecar's own connect to 127.0.0.1:8080 too), and for every UDP datagram
 * to an unconnected socket: the common answer is SK_PASS without a choice,
 * which leaves the kernel's own lookup in charge.
 */
SEC("sk_lookup")
int sl_in_lookup(struct bpf_sk_lookup *ctx)
{
	/* Each ctx field read once, unconditionally (clang 14 would otherwise
	 * merge the v4/v6 reads into one load from a computed ctx offset,
	 * which the verifier refuses).
	 */
	__u32 proto = ctx->protocol, family = ctx->family;
	__u32 port = ctx->local_port, ifindex = ctx->ingress_ifindex;
	__u32 r4 = ctx->remote_ip4;
	__u32 r6[4] = { ctx->remote_ip6[0], ctx->remote_ip6[1],
			ctx->remote_ip6[2], ctx->remote_ip6[3] };
	struct sl_addr remote;
	__u32 zero = 0, slot;
	struct sl_in_ports *ports;
	struct sl_in_stats *st;
	struct bpf_sock *sk;
	long err;

	if (proto != IPPROTO_TCP)
		return SK_PASS;
	st = stats();
	ports = bpf_map_lookup_elem(&sl_in_ports, &zero);
	port &= 0xffff;
	if (!ports || !((ports->bits[port >> 6] >> (port & 63)) & 1)) {
		if (st)
			st->passed++;
		return SK_PASS;
	}
	/* The sidecar's own connect to the app (127.0.0.1:8080) among them:
	 * it must not come back to the sidecar.
	 */
	if (ifindex == SL_IN_LOOPBACK_IFINDEX) {
		if (st)
			st->loopback++;
		return SK_PASS;
	}
	if (family == SL_AF_INET)
		sl_v4mapped(remote.ip, r4);
	else
		sl_copy_v6(remote.ip, r6);
	if (own_source(&remote)) {
		if (st)
			st->local_src++;
		return SK_PASS;
	}
	slot = family == SL_AF_INET ? SL_IN_SLOT_V4 : SL_IN_SLOT_V6;
	sk = bpf_map_lookup_elem(&sl_in_listeners, &slot);
	if (!sk && slot == SL_IN_SLOT_V4) {
		/* A dual-stack AF_INET6 listener serves IPv4 too. */
		slot = SL_IN_SLOT_V6;
		sk = bpf_map_lookup_elem(&sl_in_listeners, &slot);
	}
	if (!sk) {
		if (st)
			st->no_listener++;
		return unsteerable();
	}
	err = bpf_sk_assign(ctx, sk, 0);
	bpf_sk_release(sk);
	if (err) {
		/* -EAFNOSUPPORT: an IPV6_V6ONLY listener for an IPv4 SYN.
		 * -EEXIST: a program attached before ours already chose a
		 * socket; its choice stands.
		 */
		if (st)
			st->assign_err++;
		return err == -SL_EEXIST ? SK_PASS : unsteerable();
	}
	if (st)
		st->steered++;
	return SK_PASS;
}

/* proxy.external: sidelane has no descriptor of the foreign proxy's
 * listener, so the kernel hands it over. On the sidecar's cgroup, a socket
 * that starts listening on inbound.listen's port goes into the slot of its
 * family: TCP_LISTEN_CB runs right after the move to TCP_LISTEN, and is
 * one of the three sockops callbacks allowed to update a sockmap. A
 * listener that closes leaves the map by itself; a restarted proxy listens
 * again and is taken again. With SO_REUSEPORT each listener of the group
 * replaces the last: bpf_sk_assign() then picks within the group.
 */
SEC("sockops")
int sl_in_listen(struct bpf_sock_ops *skops)
{
	struct sl_in_cfg *cfg;
	__u32 zero = 0, slot;

	if (skops->op != BPF_SOCK_OPS_TCP_LISTEN_CB)
		return 1;
	cfg = bpf_map_lookup_elem(&sl_in_cfg, &zero);
	if (!cfg || !cfg->listen_port || skops->local_port != cfg->listen_port)
		return 1;
	slot = skops->family == SL_AF_INET6 ? SL_IN_SLOT_V6 : SL_IN_SLOT_V4;
	bpf_sock_map_update(skops, &sl_in_listeners, &slot, BPF_ANY);
	return 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
