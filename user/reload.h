/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* `sidelane run` following its configuration file (user/reload.c): the
 * file's folder is watched the way a Kubernetes ConfigMap volume changes
 * (its ..data symlink swapped), SIGHUP asks too, and a refused version is
 * tried again on a timer (its TLS files may arrive later, from a Secret).
 * A new version is parsed and checked whole, compared with the running one,
 * and applied part by part; any failure puts back what was applied, keeps
 * the running version and logs one line with file:line and the reason.
 * The version, its load time and the reloads are published for `status`,
 * /stats and /metrics (report/config_info.h).
 */
#ifndef SL_RELOAD_H
#define SL_RELOAD_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

struct sl_acct;
struct sl_admin;
struct sl_alog;
struct sl_config;
struct sl_proxy;
struct sl_tls_ctx;

#define SL_RELOAD_SETTLE_MS 200 /* quiet after the last event before reading */
#define SL_RELOAD_RETRY_MS 10000 /* a refused version is tried again */

/* Load path the way `run` did at start (the command line over the file).
 * 0, or -errno with "file:line: reason" in err.
 */
typedef int (*sl_config_load_fn)(const char *path, struct sl_config *cfg,
				 char *err, size_t errlen, void *arg);

struct sl_reload_opts {
	const char *path; /* --config; NULL: the embedded default, not followed */
	sl_config_load_fn load;
	void *load_arg;
	const struct sl_config *cfg; /* what `run` started with (copied) */
	bool capture_off; /* capture was turned off at start (root cgroup) */
	struct sl_tls_ctx *tls; /* NULL: no TLS */
	struct sl_proxy *proxy; /* NULL: no proxy of ours */
	/* the access log (*alog NULL: none yet; a reload that turns it on
	 * opens it there, and hands it to the proxy, accounting and admin)
	 */
	struct sl_alog **alog;
	struct sl_acct *acct;
	struct sl_admin *admin;
};

struct sl_reload;

/* Publish the running version, and watch path's folder. A folder that
 * cannot be watched leaves SIGHUP and `sidelane reload` (logged). 0 or
 * -ENOMEM.
 */
int sl_reload_open(const struct sl_reload_opts *o, struct sl_reload **out);
/* Wait up to timeout_ms for the file to change (or *hup to be set, which
 * this clears, or a retry to fall due), then read and apply it. One
 * thread (the housekeeping one).
 */
void sl_reload_wait(struct sl_reload *r, int timeout_ms,
		    volatile sig_atomic_t *hup);
void sl_reload_close(struct sl_reload *r);

#endif /* SL_RELOAD_H */
