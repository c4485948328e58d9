/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The sidecar proxy (user/proxy/proxy.c): proxy.workers epoll loops sharing
 * nothing, non-blocking sockets, one struct per connection, one buffer per
 * direction with back-pressure, half-close both ways, connect and idle
 * timeouts.
 */
#ifndef PROXY_H
#define PROXY_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include "config/config.h"
#include "proxy/splice_user.h"

/* Why a connection ended or was refused; logged and counted. */
enum sl_close_reason {
	SL_CLOSE_DONE = 0, /* both directions finished (FIN both ways) */
	SL_CLOSE_NO_ORIG_DST, /* transparent accept without SO_ORIGINAL_DST */
	SL_CLOSE_DENIED, /* policy */
	SL_CLOSE_LOOP, /* original destination is our own listener */
	SL_CLOSE_CONNECT_FAILED,
	SL_CLOSE_CONNECT_TIMEOUT,
	SL_CLOSE_IDLE_TIMEOUT,
	SL_CLOSE_RESET, /* a side reset; the other gets what it sent, then RST */
	SL_CLOSE_RESOLVE_FAILED,
	SL_CLOSE_TOO_MANY,
	SL_CLOSE_SHUTDOWN, /* proxy stopping */
	SL_CLOSE_TLS_FAILED, /* handshake or TLS record error (see the tls log) */
	SL_CLOSE_TLS_TIMEOUT, /* handshake not done within its timeout */
	SL_CLOSE_IDENTITY, /* peer's SPIFFE ID refused by identity policy */
	SL_CLOSE_TLS_EVICTED, /* unauthenticated, its slot taken at max_conns */
	SL_CLOSE_NR
};
extern const char *const sl_close_reason_name[SL_CLOSE_NR];

/* Policy hook for a connection about to be relayed to dst: 0 allow,
 * -EPERM deny (rule id in *rule_id). NULL hook = allow everything.
 */
typedef int (*sl_policy_check_fn)(void *ctx, const struct sockaddr *dst,
				  uint32_t *rule_id);

/* Which listener a connection came in on. */
enum sl_direction {
	SL_DIR_OUTBOUND = 0, /* the app's captured outbound connections */
	SL_DIR_INBOUND, /* peers of other hosts, for the app */
	SL_DIR_AMBASSADOR, /* the app's explicit local listeners */
	SL_DIR_NR
};
extern const char *const sl_direction_name[SL_DIR_NR];

struct sl_proxy_stats {
	uint64_t accepted, active, closed[SL_CLOSE_NR];
	/* the same by direction */
	uint64_t accepted_dir[SL_DIR_NR], active_dir[SL_DIR_NR];
	uint64_t closed_dir[SL_DIR_NR][SL_CLOSE_NR];
	/* app->upstream, upstream->app, through the proxy; what the kernel
	 * moved of spliced pairs is in sl_splice_stats
	 */
	uint64_t bytes_up, bytes_down;
	/* relayed connections by whether they were spliced, or why not */
	uint64_t splice[SL_SPLICE_NR];
	uint64_t buffered; /* bytes held in the proxy's buffers right now */
};

struct sl_proxy;

struct sl_tls_ctx;

/* Open cfg->proxy.workers loops (0: one per usable CPU), each with the
 * listeners of cfg (the transparent outbound one if
 * cfg->capture.enabled, the inbound one(s) if cfg->inbound.enabled, and
 * every ambassador). Upstream sockets get SO_MARK cfg->capture.mark so the
 * capture hook leaves them alone. With tls (owned by the caller, outliving
 * the proxy): connections to cfg->tls.mesh destinations originate mutual
 * TLS, the inbound listener terminates it and applies cfg->inbound's
 * identity rules. 0 or -errno.
 */
int sl_proxy_new(const struct sl_config *cfg, struct sl_tls_ctx *tls,
		 sl_policy_check_fn check, void *check_ctx,
		 struct sl_proxy **out);
/* A config reload: new connections get cfg's timeouts, mesh destinations,
 * inbound identity rules and app port, and the drain time and TLS files'
 * check interval change; open connections keep what they were accepted
 * under. Ambassadors come, go, move (the new port is bound here, before
 * the old one closes) or change upstream; the other listeners stay. One
 * thread at a time; returns once every worker has taken its part (within
 * SL_TICK_MS), so new connections from then on get the new settings. 0,
 * or -errno with why said and nothing changed (a port in use, say).
 */
int sl_proxy_reconfigure(struct sl_proxy *p, const struct sl_config *cfg,
			 char *why, size_t len);
/* The inbound listeners' fds (-1 if none), for sk_lookup steering. */
void sl_proxy_inbound_fds(const struct sl_proxy *p, int *fd4, int *fd6);
struct sl_alog;
/* One access log line per relayed connection when it ends (any thread; the
 * log must outlive the proxy).
 */
void sl_proxy_set_alog(struct sl_proxy *p, struct sl_alog *alog);
/* *flag set (e.g. by SIGHUP): the loop checks the TLS files at once. */
void sl_proxy_reload_flag(struct sl_proxy *p, volatile sig_atomic_t *flag);
/* Run the event loops (the first in the calling thread, which alone takes
 * signals; one thread each for the others) until *stop is set (checked at
 * least every 100 ms). Then stop accepting, close what is open, return 0
 * (or -errno on a fatal epoll error in any loop, which stops them all).
 */
int sl_proxy_run(struct sl_proxy *p, volatile sig_atomic_t *stop);
/* Drain from any thread (admin POST /drain): stop accepting, close what is
 * still open after cfg->admin.drain_timeout_ms; the loop keeps running
 * until *stop. Setting *stop drains the same way, then sl_proxy_run returns.
 */
void sl_proxy_drain(struct sl_proxy *p);
bool sl_proxy_draining(const struct sl_proxy *p);
/* Counters so far, summed over the workers; safe to call from another
 * thread while sl_proxy_run runs.
 */
void sl_proxy_stats(const struct sl_proxy *p, struct sl_proxy_stats *out);
unsigned int sl_proxy_workers(const struct sl_proxy *p);
/* One worker's counters (i < sl_proxy_workers), to see how the kernel
 * spreads connections over the SO_REUSEPORT group.
 */
void sl_proxy_worker_stats(const struct sl_proxy *p, unsigned int i,
			   struct sl_proxy_stats *out);
void sl_proxy_free(struct sl_proxy *p);

#endif /* PROXY_H */
