/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The proxy's and TLS layer's counters as a pinned map (SL_MAP_PROXY_STATS,
 * declared in bpf/fastpath.bpf.c, written only by user space): the running
 * `sidelane run` mirrors them there every second (user/report/proxy_stats.c), so
 * `sidelane status` and `bpftool map dump` in another process see them.
 * Totals continue across restarts: a new process adds what it counts to
 * what the previous one published (gauges such as active are its own).
 */
#ifndef STATS_H
#define STATS_H

#define SL_STATS_CLOSE_SLOTS 16 /* >= SL_CLOSE_NR (user/proxy/proxy.h) */
#define SL_STATS_TLS_FAIL_SLOTS 12 /* >= SL_TLS_FAIL_NR (user/tls/tls.h) */
#define SL_STATS_DIR_SLOTS 3 /* >= SL_DIR_NR (user/proxy/proxy.h) */

/* Slot 0. Indexes of closed[] are enum sl_close_reason, of tls_failed[]
 * enum sl_tls_fail; `sidelane status` prints their names.
 */
struct sl_proxy_counters {
	__u64 pid; /* the sidelane process that wrote them; 0: none yet */
	__u64 updated_ms; /* CLOCK_REALTIME of the last write */
	__u64 accepted; /* connections accepted on every listener */
	__u64 active; /* open right now */
	__u64 bytes_up, bytes_down; /* relayed app->upstream, upstream->app */
	__u64 closed[SL_STATS_CLOSE_SLOTS]; /* ended, by reason */
	__u64 tls_enabled; /* 1: tls configured */
	__u64 tls_ktls; /* 1: the kernel takes TCP_ULP "tls" */
	__u64 tls_ok, tls_resumed; /* handshakes done (resumed within) */
	__u64 tls_failed[SL_STATS_TLS_FAIL_SLOTS]; /* handshakes failed, by reason */
	__u64 tls_active; /* TLS connections open */
	__u64 tls_bytes_in, tls_bytes_out; /* application bytes over TLS */
	__u64 tls_ktls_tx, tls_ktls_rx; /* connections that got kTLS */
	__u64 tls_reloads, tls_reloads_rejected; /* rotations taken / refused */
	/* by direction (outbound, inbound, ambassador) */
	__u64 accepted_dir[SL_STATS_DIR_SLOTS];
	__u64 active_dir[SL_STATS_DIR_SLOTS];
	__u64 closed_dir[SL_STATS_DIR_SLOTS][SL_STATS_CLOSE_SLOTS];
};

/* The running configuration (SL_MAP_CONFIG_INFO, slot 0, also written by
 * user space only): written by `sidelane run` at start and at every
 * reload, read by `status`, /stats and /metrics.
 */
#define SL_CONFIG_VERSION_SLOT 24 /* >= SL_CFG_VERSION_LEN + 1 (config.h) */
#define SL_CONFIG_REFUSED_LEN 512 /* the last refusal's "file:line: reason" */
struct sl_config_info {
	__u64 pid; /* the sidelane process that wrote it */
	__u64 loaded_ms; /* CLOCK_REALTIME the running version was loaded */
	__u64 checks; /* times the file was read since the process started */
	__u64 reloads; /* new versions applied since the process started */
	__u64 reloads_refused; /* versions refused (each counted once) */
	__u64 refused_ms; /* when the last one was refused; 0: none */
	__u64 pending; /* 1: the last check refused the file's version */
	char version[SL_CONFIG_VERSION_SLOT]; /* "default" or 16 hex digits */
	char refused_version[SL_CONFIG_VERSION_SLOT];
	char refused[SL_CONFIG_REFUSED_LEN];
};

#endif /* STATS_H */
