/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Connection accounting shared by the BPF programs and user space: why a
 * socket is or is not accelerated, and the events that reach user space
 * through the SL_MAP_EVENTS ring buffer (bpf/events.bpf.h) when a socket
 * closes or a connect is denied (user/loader/acct.c turns them into access log
 * lines).
 */
#ifndef ACCT_H
#define ACCT_H

#include "fastpath.h"

/* sl_conn.reason: accelerated, or why not; the one table every output
 * (conns, status, /metrics, the access log) takes its names from.
 * X(enum suffix, name, what it means). The values are counter slots of
 * struct sl_adm_stats too (include/admission.h): append, never reorder.
 */
#define SL_ACC_REASONS(X)                                                      \
	X(ACCELERATED, "accelerated", "in the sockhash")                        \
	X(NOT_LOCAL, "peer-not-local", "the peer is on another host")          \
	X(EXCLUDED, "excluded-port", "an excluded service port")               \
	X(PEER_PLAIN, "peer-not-accelerated",                                   \
	  "the peer is not in the sockhash (outside our cgroups, TFO, or an "   \
	  "app socket that may not be a redirect target)")                      \
	X(REDIRECT_OFF, "redirect-off", "redirect switched off (self-test)")   \
	X(INSERT_FAILED, "sockhash-refused", "the sockhash was full or refused it") \
	X(FELL_BACK, "fell-back-to-tcp", "a message found no peer: TCP for good") \
	X(BLOCKING, "blocking-socket",                                          \
	  "a blocking app socket (the sockmap receive path changes blocking reads)") \
	X(BECAME_BLOCKING, "became-blocking",                                   \
	  "made blocking after admission: taken out of the sockhash")           \
	X(ACCEPTED, "accepted-socket",                                          \
	  "an app's accepted socket: its file flags are unknown when it is established") \
	X(KERNEL_FIONREAD, "kernel-fionread",                                   \
	  "this kernel answers FIONREAD on a sockmap socket with redirected bytes only") \
	X(OPT_NOTSENT_LOWAT, "option-tcp_notsent_lowat",                        \
	  "TCP_NOTSENT_LOWAT: writability would ignore redirected bytes")       \
	X(OPT_ZEROCOPY, "option-so_zerocopy",                                   \
	  "SO_ZEROCOPY: redirected sends complete no MSG_ZEROCOPY notification") \
	X(OPT_TIMESTAMPING, "option-so_timestamping",                           \
	  "SO_TIMESTAMPING with TX flags: redirected bytes get no TX timestamps") \
	X(OPT_ULP, "option-tcp_ulp", "TCP_ULP (kTLS): an upper layer owns the socket") \
	X(OPT_REPAIR, "option-tcp_repair", "TCP_REPAIR (checkpoint/restore)")   \
	X(MODE_NONE, "app-sockets-none", "fastpath.app_sockets is none")      \
	X(MODE_CHANGED, "admitted-before",                                      \
	  "admitted under another app_sockets mode or by an older build: taken " \
	  "out once nothing redirected to it was unread")

#define SL_ACC_ENUM(id, name, help) SL_ACC_##id,
enum sl_acc_reason { SL_ACC_REASONS(SL_ACC_ENUM) SL_ACC_NR };
#undef SL_ACC_ENUM

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
/* waiting bytes that wake the reader at once; below it, its next poll
 * (SL_ACCT_POLL_MS, user/loader/acct.c) takes them
 */
#define SL_EVENTS_WAKE_BYTES (SL_EVENTS_BYTES / 4)

#endif /* ACCT_H */
