/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* BPF-only helpers to build struct sl_sock_key from sockops and sk_msg
 * contexts, which expose the same fields under the same names.
 */
#ifndef SOCKKEY_BPF_H
#define SOCKKEY_BPF_H

#include <bpf/bpf_endian.h>

#define SL_AF_INET 2
#define SL_AF_INET6 10

/* Write an IPv4 address (network order) as ::ffff:a.b.c.d. */
static __always_inline void sl_v4mapped(__u8 *dst, __u32 addr_be)
{
	__u32 *w = (__u32 *)dst;

	w[0] = 0;
	w[1] = 0;
	w[2] = bpf_htonl(0x0000ffff);
	w[3] = addr_be;
}

static __always_inline void sl_copy_v6(__u8 *dst, const __u32 *src)
{
	__u32 *w = (__u32 *)dst;

	w[0] = src[0];
	w[1] = src[1];
	w[2] = src[2];
	w[3] = src[3];
}

/* remote_port of bpf_sock_ops and sk_msg_md is the be16 port shifted left by
 * 16 on little-endian hosts (kept that way for old programs); local_port is
 * host order. Both are 32-bit fields.
 */
static __always_inline __u16 sl_remote_port(__u32 ctx_port)
{
	return bpf_ntohs((__u16)(ctx_port >> 16));
}

/* Fill both ends of a key from a ctx with local_ip4/6, remote_ip4/6 and ports.
 * Every ctx field is read once, unconditionally, into a local: the verifier
 * rewrites each ctx access, and clang 14 otherwise merges the v4/v6 branches
 * into one load from a computed ctx offset ("dereference of modified ctx ptr").
 * Returns 0, or -1 for a family that is neither IPv4 nor IPv6.
 */
#define SL_FILL_KEY(ctx, key, lo, re)                                          \
	({                                                                     \
		__u32 __fam = (ctx)->family;                                   \
		__u32 __l4 = (ctx)->local_ip4, __r4 = (ctx)->remote_ip4;      \
		__u32 __l6[4] = { (ctx)->local_ip6[0], (ctx)->local_ip6[1],    \
				  (ctx)->local_ip6[2], (ctx)->local_ip6[3] };  \
		__u32 __r6[4] = { (ctx)->remote_ip6[0], (ctx)->remote_ip6[1],  \
				  (ctx)->remote_ip6[2], (ctx)->remote_ip6[3] };\
		__u32 __lp = (ctx)->local_port, __rp = (ctx)->remote_port;    \
		int __ret = 0;                                                 \
		barrier_var(__fam);                                            \
		if (__fam == SL_AF_INET) {                                     \
			sl_v4mapped((key)->lo##_ip, __l4);                      \
			sl_v4mapped((key)->re##_ip, __r4);                      \
		} else if (__fam == SL_AF_INET6) {                             \
			sl_copy_v6((key)->lo##_ip, __l6);                       \
			sl_copy_v6((key)->re##_ip, __r6);                       \
		} else {                                                       \
			__ret = -1;                                            \
		}                                                              \
		(key)->lo##_port = (__u16)__lp;                                \
		(key)->re##_port = sl_remote_port(__rp);                       \
		__ret;                                                         \
	})

/* The socket's own key: local end first. */
#define sl_key_own(ctx, key) SL_FILL_KEY(ctx, key, local, remote)
/* The key under which the peer socket on this host was inserted. */
#define sl_key_peer(ctx, key) SL_FILL_KEY(ctx, key, remote, local)

/* 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104 */
static __always_inline int sl_is_loopback(const __u8 *ip)
{
	const __u32 *w = (const __u32 *)ip;

	if (w[0] || w[1])
		return 0;
	if (w[2] == bpf_htonl(0x0000ffff))
		return ip[12] == 127;
	return !w[2] && w[3] == bpf_htonl(1);
}

#endif /* SOCKKEY_BPF_H */
