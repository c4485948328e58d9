/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* struct sl_sock_key, the key of every map that names a socket by its
 * 4-tuple: built by bpf/sockkey.bpf.h in the kernel and by sl_fd_sock_key()
 * (user/loader/fastpath.c) from a file descriptor.
 */
#ifndef SOCKKEY_H
#define SOCKKEY_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* One key layout for IPv4 and IPv6: addresses are 16 bytes, IPv4 stored in its
 * v4-mapped form (::ffff:a.b.c.d), so a v6 socket talking to a v4-mapped peer
 * and the v4 socket on the other end produce mirror-image keys. Ports in host
 * byte order. "local" is the socket's own end. The netns cookie keeps equal
 * tuples of different namespaces apart.
 */
struct sl_sock_key {
	__u64 netns_cookie; /* one map can serve several network namespaces */
	__u8 local_ip[16];
	__u8 remote_ip[16];
	__u16 local_port;
	__u16 remote_port;
	__u32 pad;
};

#endif /* SOCKKEY_H */
