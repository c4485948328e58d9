/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Inbound capture with sk_lookup: types shared by bpf/inbound.bpf.c and
 * user/loader/inbound.c. Ports in host order.
 */
#ifndef INBOUND_H
#define INBOUND_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* Slots of sl_in_listeners. An IPv4 lookup takes slot 0 and, when that is
 * empty, slot 1 (bpf_sk_assign() gives an IPv4 connection to an AF_INET6
 * listener unless it is IPV6_V6ONLY). An IPv6 lookup takes slot 1 only.
 */
#define SL_IN_SLOT_V4 0
#define SL_IN_SLOT_V6 1
#define SL_IN_N_SLOTS 2

/* Index of the loopback device in every network namespace (the kernel's
 * LOOPBACK_IFINDEX, include/net/flow.h; a macro, so not in vmlinux.h).
 */
#define SL_IN_LOOPBACK_IFINDEX 1

#define SL_IN_PORT_WORDS (65536 / 64)

/* sl_in_ports[0]: bit p set = TCP to local port p is steered. */
struct sl_in_ports {
	__u64 bits[SL_IN_PORT_WORDS];
};

/* sl_in_cfg[0]: runtime settings. */
struct sl_in_cfg {
	/* Captured port, no usable listener: 0 drops the SYN (the client gets
	 * a RST), 1 lets the app's own listener take it.
	 */
	__u32 fail_open;
	/* proxy.external: the port (host order) of inbound.listen, whose
	 * listener sl_in_listen takes into sl_in_listeners when the foreign
	 * proxy calls listen(); 0: sidelane's own listener is put there
	 */
	__u32 listen_port;
};

/* sl_in_stats[0], per CPU: what the program did with TCP listener lookups.
 * UDP lookups are passed without being counted.
 */
struct sl_in_stats {
	__u64 steered; /* handed to the sidecar's listener */
	__u64 passed; /* port not captured */
	__u64 loopback; /* captured, came in on lo: left alone */
	/* captured, not on lo's ifindex but from a loopback address or one of
	 * this namespace's (podIP to podIP, over lo): left alone
	 */
	__u64 local_src;
	__u64 no_listener; /* captured, no listener in the map */
	__u64 assign_err; /* bpf_sk_assign() refused the listener */
};

#endif /* INBOUND_H */
