/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Connection accounting shared by the BPF programs and user space: why a
 * socket is or is not accelerated, and the events that reach user space
 * through the SL_MAP_EVENTS ring buffer (bpf/events.bpf.h) when a socket
 * closes or a connect is denied (user/acct.c turns them into access log
 * lines).
 */
#ifndef ACCT_H
#define ACCT_H

#include "fastpath.h"

/* sl_conn.reason: accelerated, or why not. */
enum sl_acc_reason {
	SL_ACC_ACCELERATED = 0, /* in the sockhash */
	SL_ACC_NOT_LOCAL, /* peer on another host */
	SL_ACC_EXCLUDED, /* an excluded service port */
	SL_ACC_PEER_PLAIN, /* peer not accelerated (outside our cgroups, TFO) */
	SL_ACC_REDIRECT_OFF, /* redirect switched off (self-test failed) */
	SL_ACC_INSERT_FAILED, /* sockhash full or refused the socket */
	SL_ACC_FELL_BACK, /* a message found no peer: on TCP for good */
	SL_ACC_NR
};

enum sl_event_type {
	SL_EV_CLOSE = 1, /* a socket of ours reached TCP_CLOSE */
	SL_EV_DENIED = 2, /* connect() refused by policy (capture.bpf.c) */
};

/* One ring buffer record. For SL_EV_DENIED only conn.key (remote end =
 * the destination), pid, comm, cgroup_id, start_ns and rule_id are set.
 */
struct sl_event {
	__u32 type; /* enum sl_event_type */
	__u32 close_state; /* BPF_TCP_* the socket left for TCP_CLOSE */
	__u64 cookie; /* socket cookie */
	__u64 end_ns; /* bpf_ktime_get_ns() at close / denial */
	__u64 tcp_bytes_received; /* payload received through TCP */
	__u64 tcp_bytes_acked; /* payload sent through TCP and acknowledged */
	__u32 rule_id; /* denied: the policy rule */
	__u32 pad;
	struct sl_conn conn;
};

#define SL_EVENTS_BYTES (256 * 1024) /* ring buffer size: ~1400 events */

#endif /* ACCT_H */
