/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* User side of inbound capture (user/loader/inbound.c): steer connections that
 * arrive from the network for the app's ports to the sidecar's inbound
 * listener with an sk_lookup program on the pod's network namespace.
 * Used by `sidelane run|status|detach` and tests/integ/inbound.c.
 *
 * What the sidecar sees: its accepted socket keeps the address the client
 * connected to, so getsockname() on it gives podIP:8080 (not :15006); that
 * port is the app port to connect to (127.0.0.1:8080, which is not steered:
 * only connections from outside the namespace are).
 */
#ifndef INBOUND_USER_H
#define INBOUND_USER_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>
#include "config/config.h"
#include "inbound.h"

struct sl_in_opts {
	const struct sl_port_range *ports; /* captured local ports */
	unsigned int n_ports;
	const struct sl_port_range *exclude; /* never captured; wins */
	unsigned int n_exclude;
	/* Listening TCP sockets, -1 if none: listen_fd4 AF_INET (slot 0),
	 * listen_fd6 AF_INET6 (slot 1; if not IPV6_V6ONLY it also takes IPv4
	 * when there is no listen_fd4). The map does not keep them open.
	 */
	int listen_fd4, listen_fd6;
	/* Captured port, no usable listener (the sidecar is gone): false
	 * refuses the connection (RST), true lets the app take it.
	 */
	bool fail_open;
	/* proxy.external: the listener is a foreign proxy's on this port of
	 * the sidecar cgroup (sidecar_cgroup); listen_fd4/6 are then -1 and
	 * the slots are left as the kernel filled them. 0: ours.
	 */
	uint16_t external_port;
	const char *sidecar_cgroup;
};

struct sl_config;
/* o's ports, exclude and fail_open from cfg->inbound; the rest zero, the
 * listeners -1.
 */
void sl_in_opts_from(struct sl_in_opts *o, const struct sl_config *cfg);

/* Can sk_lookup inbound capture work on this kernel? Loads the program
 * (unpinned) and attaches it to a throwaway network namespace, so the
 * caller's traffic is never touched. 0, or -errno with a one-line reason in
 * why.
 */
int sl_in_probe(char *why, size_t len);

/* Load the program and maps (or reuse those pinned under pin_dir), fill the
 * maps (settings, listeners, then the port set, which replaces the old one in
 * one write), and attach to the calling thread's network namespace
 * (/proc/thread-self/ns/net) with a bpf_link pinned as SL_PIN_LINK_SK_LOOKUP.
 * A restart finds the pinned link and only refills the maps. A pinned link
 * on another namespace is refused with -EEXIST. 0 or -errno (logged).
 */
int sl_in_attach(const char *pin_dir, const struct sl_in_opts *o);

/* A config reload: the captured ports (o->ports, o->exclude) and
 * o->fail_open replace those in force, in one write each; the listeners
 * stay. -ENOENT when sk_lookup is not pinned under pin_dir (listener mode).
 */
int sl_in_update(const char *pin_dir, const struct sl_in_opts *o);

/* Detach the link and remove the pins sl_in_attach made under pin_dir,
 * leaving every other pin and the folder itself (sl_detach removes that;
 * call this before it, as sl_cap_detach is). 0 if nothing was there.
 */
int sl_in_detach(const char *pin_dir);

struct sl_in_status {
	bool attached; /* link pinned and its namespace alive */
	unsigned int n_ports; /* captured ports */
	bool listener4, listener6; /* slot filled (an open listening socket) */
	/* Counters summed over CPUs, as struct sl_in_stats (include/inbound.h). */
	__u64 steered, passed, loopback, local_src, no_listener, assign_err;
};

/* Read what is pinned under pin_dir. -ENOENT when nothing is. */
int sl_in_status(const char *pin_dir, struct sl_in_status *st);

#endif /* INBOUND_USER_H */
