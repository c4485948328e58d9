/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Transparent capture: types shared by bpf/capture.bpf.c and
 * user/loader/capture.c (the policy its connect hooks enforce: policy.h).
 * Addresses are 16 bytes, IPv4 in v4-mapped form, as in fastpath.h; ports
 * in host order.
 */
#ifndef CAPTURE_H
#define CAPTURE_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif
#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

#include "policy.h"

#define SL_MAX_CAPTURE_CIDRS 256 /* per family, include and exclude each */
#define SL_MAX_CAPTURED 65536 /* live captured connections user space indexes */
#define SL_MAX_CONNECT_REASONS 65536 /* uncaptured connects remembered (LRU) */
#define SL_PORT_WORDS (65536 / 64) /* one bit per port */

/* sl_capture_cfg[0]: set by `sidelane run`, read at every connect(). */
struct sl_capture_cfg {
	__u32 enabled;
	__u32 mark; /* SO_MARK of sidelane's own sockets (see mark_exempts) */
	__u8 outbound_ip4[16]; /* transparent listener for IPv4 (v4-mapped) */
	__u8 outbound_ip6[16]; /* and for IPv6 */
	__u16 outbound_port;
	__u16 include_all_ports; /* 1: sl_capture_ports.include is ignored */
	/* 1: the sidecar runs in the app's cgroup, so the connect hooks see
	 * its upstream connects and the mark tells them apart. 0: the mark
	 * is ignored (any app with CAP_NET_RAW can set SO_MARK; it must not
	 * buy an exemption from capture).
	 */
	__u32 mark_exempts;
};

/* sl_capture_ports[0]: one bit per port. */
struct sl_port_bits {
	__u64 include[SL_PORT_WORDS];
	__u64 exclude[SL_PORT_WORDS];
};

/* Why the kernel side did what it did with a connect(); counted in
 * sl_capture_stats and kept in the capture record.
 */
enum sl_capture_reason {
	SL_CR_CAPTURED = 0,
	SL_CR_DENIED, /* policy: EPERM to the app */
	SL_CR_SIDECAR_OWN, /* SO_MARK of sidelane: loop avoidance */
	SL_CR_LOOPBACK, /* loopback destination */
	SL_CR_OWN_LISTENER, /* the outbound listener itself */
	SL_CR_EXCLUDED_CIDR,
	SL_CR_NOT_INCLUDED_CIDR,
	SL_CR_EXCLUDED_PORT,
	SL_CR_NOT_INCLUDED_PORT,
	SL_CR_DISABLED, /* capture off: policy only */
	SL_CR_NOT_TCP,
	SL_CR_TABLE_FULL, /* no memory for the socket's capture record */
	SL_CR_NR,
};

/* sl_capture_stats[0] (per CPU): connects by reason, SO_ORIGINAL_DST answers. */
struct sl_capture_stats {
	__u64 reason[SL_CR_NR];
	__u64 origdst_answered;
	__u64 origdst_missed; /* asked on a socket we know nothing of */
	__u64 peername_rewritten;
};

/* Original destination of a captured connection. The authority is socket
 * storage, freed with its socket: sl_cap_sk on the app socket from
 * connect() on, sl_origdst_sk on the sidecar's accepted socket from its
 * establishment on. In between, sl_orig_by_addr carries it from one to the
 * other, keyed by the app socket's own address (the sidecar's peer).
 * sl_orig_by_cookie indexes live ones (SYN sent, not closed) by cookie for
 * `sidelane conns` and status only.
 */
struct sl_orig {
	__u8 ip[16];
	__u16 port;
	__u16 family; /* AF_INET or AF_INET6 as the app asked; 0: none */
	__u32 rule_id; /* policy rule that allowed it, 0: default */
	__u64 cookie; /* app socket */
};

/* Why a TCP connect of the app was not captured (sl_connect_reason). */
struct sl_connect_rec {
	__u8 ip[16]; /* destination, v4-mapped for IPv4 */
	__u16 port;
	__u16 reason; /* enum sl_capture_reason */
	__u32 pad;
};

struct sl_addr_key {
	__u64 netns_cookie;
	__u8 ip[16];
	__u16 port;
	__u16 pad;
	__u32 pad2;
};

#endif /* CAPTURE_H */
