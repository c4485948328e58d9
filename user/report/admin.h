/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The admin HTTP endpoint of `sidelane run` (user/report/admin.c, libmicrohttpd),
 * on a loopback address only (admin.listen, default 127.0.0.1:15000):
 *   GET  /metrics  Prometheus text format 0.0.4
 *   GET  /stats    the same as JSON (`sidelane status --json`, plus the
 *                  policy and the admin's own state)
 *   GET  /healthz  200 "ok" while the process runs
 *   GET  /ready    200 once sl_admin_set_ready(true), 503 before that and
 *                  while draining, with a one-line reason
 *   POST /drain    sl_proxy_drain(): 202
 * Anything else: 404; a known path with another method: 405 with Allow.
 * HEAD is taken wherever GET is.
 */
#ifndef SL_ADMIN_H
#define SL_ADMIN_H

#include <stdbool.h>
#include "config/config.h"

struct sl_proxy;
struct sl_tls_ctx;
struct sl_admin;
struct sl_alog;

struct sl_admin_opts {
	const struct sl_endpoint *listen; /* a loopback address and port */
	const char *pin_root; /* where the counters are read from */
	struct sl_proxy *proxy; /* live counters and drain; may be NULL */
	struct sl_tls_ctx *tls; /* live TLS counters; may be NULL */
	struct sl_alog *alog; /* the access log's counters; NULL: off */
};

/* Listen and serve from a thread of our own. The proxy and tls must
 * outlive sl_admin_stop(). Not ready until sl_admin_set_ready(). 0, or
 * -errno with a warning logged (-EADDRINUSE: another process has the port;
 * -EINVAL: not a loopback address), in which case nothing is left running.
 */
int sl_admin_start(const struct sl_admin_opts *o, struct sl_admin **out);
/* What /ready answers (draining aside). a may be NULL. */
void sl_admin_set_ready(struct sl_admin *a, bool ready);
/* The access log's counters from now on (a reload turned the log on). */
void sl_admin_set_alog(struct sl_admin *a, struct sl_alog *alog);
/* Stop serving, close the socket, free a. a may be NULL. */
void sl_admin_stop(struct sl_admin *a);

#endif /* SL_ADMIN_H */
