// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* `sidelane run` following its configuration file (see reload.h).
 *
 * Kubernetes facts this is built on: a ConfigMap volume's file is a
 * symlink through "..data", which the kubelet swaps for a new folder
 * (create ..data_tmp, rename it over ..data: IN_MOVED_TO in the watched
 * folder); a watch on the file itself would follow the old inode and never
 * fire again. A subPath mount is a copy and never changes. The ConfigMap
 * and a Secret holding the TLS files update independently, a minute or so
 * apart, and no event may follow the second one: a version refused because
 * its files are not there yet is tried again every SL_RELOAD_RETRY_MS.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/inotify.h>
#include "config/config.h"
#include "lib/accesslog.h"
#include "lib/log.h"
#include "lib/util.h"
#include "loader/acct_user.h"
#include "loader/capture_user.h"
#include "loader/inbound_user.h"
#include "loader/policy_user.h"
#include "proxy/proxy.h"
#include "reload.h"
#include "report/admin.h"
#include "report/config_info.h"
#include "tls/tls.h"

#define K8S_DATA "..data" /* the symlink a ConfigMap volume swaps */

struct sl_reload {
	char path[PATH_MAX], dir[PATH_MAX], base[NAME_MAX + 1];
	sl_config_load_fn load;
	void *load_arg;
	struct sl_config *cur; /* the running version */
	bool capture_off;
	struct sl_tls_ctx *tls;
	struct sl_proxy *proxy;
	struct sl_alog **alog; /* the daemon's: closed by it at the end */
	struct sl_acct *acct;
	struct sl_admin *admin;
	int ifd; /* inotify on dir; -1: not watching */
	uint64_t due; /* CLOCK_MONOTONIC ms to read the file at; 0: not due */
	uint64_t retry_at; /* the same after a refusal; 0: none pending */
	struct sl_config_info info; /* as published */
};

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void publish(struct sl_reload *r)
{
	int err = sl_cfg_info_write(r->cur->pin_root, &r->info);

	if (err && err != -ENOENT) /* an older build's pins: not shown */
		pr_debug("config: publishing the version: %s\n", strerror(-err));
}

/* ---- applying a version: each part, in this order ---- */

/* The TLS files first: the part most likely to fail (a Secret not yet
 * updated), before anything else changed.
 */
static int apply_tls(struct sl_reload *r, const struct sl_config *cfg,
		     char *why, size_t len)
{
	if (!r->tls)
		return 0;
	return sl_tls_ctx_set_files(r->tls, cfg->tls.cert, cfg->tls.key,
				    cfg->tls.ca, why, len);
}

static int apply_capture(struct sl_reload *r, const struct sl_config *cfg,
			 char *why, size_t len)
{
	int err = sl_cap_update(r->cur->pin_root, cfg);

	if (err)
		snprintf(why, len, "writing the capture maps: %s",
			 strerror(-err));
	return err;
}

/* Steered ports: only where sk_lookup steers (not in listener mode). */
static int apply_inbound(struct sl_reload *r, const struct sl_config *cfg,
			 char *why, size_t len)
{
	struct sl_in_opts o;
	int err;

	sl_in_opts_from(&o, cfg);
	if (!cfg->inbound.enabled || cfg->inbound.mode == SL_INBOUND_LISTENER)
		return 0;
	err = sl_in_update(r->cur->pin_root, &o);
	if (err == -ENOENT) /* sk_lookup was unavailable: listener mode */
		return 0;
	if (err)
		snprintf(why, len, "writing the inbound maps: %s",
			 strerror(-err));
	return err;
}

/* The config's rules as declared, none included: a policy removed from
 * the file goes. (Unchanged, the live rules stay, `sidelane policy`
 * edits too.)
 */
static int apply_policy(struct sl_reload *r, const struct sl_config *cfg,
			char *why, size_t len)
{
	return sl_policy_apply(r->cur->pin_root, &cfg->policy, why, len);
}

/* Another path or rotation; none turns it off. The first path of a run
 * started without one opens the log and hands it to every producer; it is
 * then never freed before the end (a producer may hold it).
 */
static int apply_alog(struct sl_reload *r, const struct sl_config *cfg,
		      char *why, size_t len)
{
	struct sl_alog_opts o = { .path = cfg->accounting.access_log,
				  .max_bytes = cfg->accounting.max_bytes,
				  .keep = cfg->accounting.keep,
				  .queue_lines = SL_ALOG_DEF_QUEUE };
	struct sl_alog *a = *r->alog;
	int err;

	if (!a && !o.path[0])
		return 0;
	err = a ? sl_alog_reconfigure(a, &o) : sl_alog_open(&o, &a);
	if (err) {
		snprintf(why, len, "accounting.access_log %s: %s", o.path,
			 strerror(-err));
		return err;
	}
	if (!*r->alog) {
		*r->alog = a;
		sl_proxy_set_alog(r->proxy, a);
		sl_acct_set_alog(r->acct, a);
		sl_admin_set_alog(r->admin, a);
		pr_info("access log: %s (rotated at %u bytes, %u gzip files "
			"kept)\n", o.path, cfg->accounting.max_bytes,
			cfg->accounting.keep);
	}
	return 0;
}

static int apply_proxy(struct sl_reload *r, const struct sl_config *cfg,
		       char *why, size_t len)
{
	unsigned long long limit, want;
	int err;

	why[0] = '\0';
	if (!r->proxy)
		return 0;
	/* more connections need more open files: within the hard limit
	 * raised at start (raising it needs a privilege since dropped)
	 */
	if (cfg->proxy.max_conns > r->cur->proxy.max_conns &&
	    sl_nofile_raise(cfg->proxy.max_conns, &limit, &want)) {
		snprintf(why, len, "proxy.max_conns %u needs %llu open files, "
			 "the limit is %llu (raised at start for %u; raising "
			 "it further needs a privilege dropped since): restart "
			 "to apply it", cfg->proxy.max_conns, want, limit,
			 r->cur->proxy.max_conns);
		return -EMFILE;
	}
	err = sl_proxy_reconfigure(r->proxy, cfg, why, len);
	if (err && !why[0])
		snprintf(why, len, "proxy: %s", strerror(-err));
	return err;
}

static const struct part {
	unsigned int change; /* SL_CFG_CH_* */
	const char *name;
	const char *key; /* where in the file a failure points */
	int (*apply)(struct sl_reload *r, const struct sl_config *cfg,
		     char *why, size_t len);
} parts[] = {
	{ SL_CFG_CH_TLS_FILES, "tls files", "tls.cert", apply_tls },
	{ SL_CFG_CH_ALOG, "access log", "accounting.access_log", apply_alog },
	{ SL_CFG_CH_CAPTURE, "capture", "capture", apply_capture },
	{ SL_CFG_CH_INBOUND, "inbound ports", "inbound.ports", apply_inbound },
	{ SL_CFG_CH_POLICY, "policy", "policy", apply_policy },
	{ SL_CFG_CH_PROXY, "proxy", "proxy", apply_proxy },
};
#define N_PARTS (sizeof(parts) / sizeof(parts[0]))

/* Apply what changed from r->cur to next; on a failure put back what was
 * applied (r->cur's) and say why. 0 or -errno.
 */
static int apply(struct sl_reload *r, const struct sl_config *next,
		 unsigned int changes, char *why, size_t len)
{
	char back[SL_CFG_ERR_LEN], reason[SL_CFG_ERR_LEN], at[16] = "";
	unsigned int line;
	size_t i, n;
	int err = 0;

	for (n = 0; n < N_PARTS && !err; n++)
		if (changes & parts[n].change)
			err = parts[n].apply(r, next, reason, sizeof(reason));
	if (!err)
		return 0;
	/* file:line of the part, then what went wrong */
	line = sl_config_key_line(r->path, parts[n - 1].key);
	if (line)
		snprintf(at, sizeof(at), ":%u", line);
	if (snprintf(why, len, "%s%s: %s", r->path, at, reason) >= (int)len)
		why[len - 1] = '\0'; /* a long path: the reason cut short */
	/* parts[n - 1] failed and changed nothing */
	for (i = 0; i + 1 < n; i++)
		if ((changes & parts[i].change) &&
		    parts[i].apply(r, r->cur, back, sizeof(back)))
			pr_warn("config: putting back %s failed: %s\n",
				parts[i].name, back);
	return err;
}

/* "capture, policy" */
static void changes_str(unsigned int changes, char *buf, size_t len)
{
	size_t i, at = 0;

	buf[0] = '\0';
	for (i = 0; i < N_PARTS; i++)
		if (changes & parts[i].change && at < len)
			at += snprintf(buf + at, len - at, "%s%s",
				       at ? ", " : "", parts[i].name);
	if (!at)
		snprintf(buf, len, "nothing sidelane uses");
}

/* Counted and logged once per version and reason; tried again later. */
static void refuse(struct sl_reload *r, const char *version, const char *why)
{
	r->retry_at = mono_ms() + SL_RELOAD_RETRY_MS;
	r->info.pending = 1;
	if (!strcmp(version, r->info.refused_version) &&
	    !strcmp(why, r->info.refused))
		return;
	r->info.reloads_refused++;
	r->info.refused_ms = wall_ms();
	snprintf(r->info.refused_version, sizeof(r->info.refused_version), "%s",
		 version);
	snprintf(r->info.refused, sizeof(r->info.refused), "%s", why);
	pr_warn("config: version %s refused, %s runs on: %s\n", version,
		r->cur->version, why);
}

/* Read the file; apply it if it is a new version. */
static void check(struct sl_reload *r)
{
	char why[SL_CFG_ERR_LEN], what[128];
	char version[SL_CFG_VERSION_LEN + 1] = "unreadable";
	struct sl_config *next;
	unsigned int changes;
	int err;

	r->info.checks++;
	r->info.pending = 0;
	next = calloc(1, sizeof(*next));
	if (!next) {
		r->retry_at = mono_ms() + SL_RELOAD_RETRY_MS;
		return;
	}
	sl_config_file_version(r->path, version);
	err = r->load(r->path, next, why, sizeof(why), r->load_arg);
	if (err)
		goto refused;
	/* as at start: capture stays off where `run` turned it off */
	if (r->capture_off)
		next->capture.enabled = 0;
	if (!strcmp(next->version, r->cur->version)) {
		r->retry_at = 0; /* back to the running one: nothing pending */
		goto out;
	}
	err = sl_config_diff(r->cur, next, r->path, &changes, why, sizeof(why));
	if (!err)
		err = apply(r, next, changes, why, sizeof(why));
	if (err)
		goto refused;
	changes_str(changes, what, sizeof(what));
	pr_info("config: version %s applied (was %s): %s\n", next->version,
		r->cur->version, what);
	memcpy(r->cur, next, sizeof(*next));
	snprintf(r->info.version, sizeof(r->info.version), "%s", next->version);
	r->info.loaded_ms = next->loaded_ms;
	r->info.reloads++;
	r->retry_at = 0;
	goto out;
refused:
	refuse(r, version, why);
out:
	publish(r);
	free(next);
}

/* ---- watching ---- */

/* The folder of the file (symlinks in the name itself are the point:
 * the ConfigMap's one is swapped), IN_MOVED_TO and IN_CREATE for renames
 * and symlink swaps, IN_CLOSE_WRITE for a file written in place.
 */
static int watch_open(struct sl_reload *r)
{
	char tmp[PATH_MAX];
	int fd;

	snprintf(tmp, sizeof(tmp), "%s", r->path);
	snprintf(r->dir, sizeof(r->dir), "%s", dirname(tmp));
	snprintf(tmp, sizeof(tmp), "%s", r->path);
	snprintf(r->base, sizeof(r->base), "%s", basename(tmp));
	fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (inotify_add_watch(fd, r->dir, IN_MOVED_TO | IN_CREATE |
					      IN_CLOSE_WRITE | IN_ONLYDIR) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	r->ifd = fd;
	return 0;
}

/* Events for the file or ..data: read it once they settle. */
static void watch_read(struct sl_reload *r)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	const struct inotify_event *ev;
	ssize_t n;
	char *p;

	while ((n = read(r->ifd, buf, sizeof(buf))) > 0)
		for (p = buf; p < buf + n; p += sizeof(*ev) + ev->len) {
			ev = (const struct inotify_event *)p;
			if ((ev->mask & IN_Q_OVERFLOW) ||
			    (ev->len && (!strcmp(ev->name, r->base) ||
					 !strcmp(ev->name, K8S_DATA))))
				r->due = mono_ms() + SL_RELOAD_SETTLE_MS;
		}
}

int sl_reload_open(const struct sl_reload_opts *o, struct sl_reload **out)
{
	struct sl_reload *r;
	int err;

	*out = NULL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->cur = malloc(sizeof(*r->cur));
	if (!r->cur) {
		free(r);
		return -ENOMEM;
	}
	memcpy(r->cur, o->cfg, sizeof(*r->cur));
	r->load = o->load;
	r->load_arg = o->load_arg;
	r->capture_off = o->capture_off;
	r->tls = o->tls;
	r->proxy = o->proxy;
	r->alog = o->alog;
	r->acct = o->acct;
	r->admin = o->admin;
	r->ifd = -1;
	r->info.pid = (uint64_t)getpid();
	r->info.loaded_ms = r->cur->loaded_ms;
	snprintf(r->info.version, sizeof(r->info.version), "%s",
		 r->cur->version);
	publish(r);
	*out = r;
	if (!o->path || !o->load) {
		pr_info("config: the embedded default; nothing to follow\n");
		return 0;
	}
	snprintf(r->path, sizeof(r->path), "%s", o->path);
	err = watch_open(r);
	if (err)
		pr_warn("config: cannot watch %s: %s; SIGHUP or `sidelane "
			"reload` reads it\n", r->dir, strerror(-err));
	else
		pr_info("config: following %s (its folder %s, SIGHUP, `sidelane "
			"reload`)\n", r->path, r->dir);
	return 0;
}

void sl_reload_wait(struct sl_reload *r, int timeout_ms,
		    volatile sig_atomic_t *hup)
{
	struct pollfd pfd = { .fd = r ? r->ifd : -1, .events = POLLIN };
	uint64_t now;

	if (!r || !r->path[0]) {
		usleep((useconds_t)timeout_ms * 1000);
		if (hup)
			*hup = 0;
		return;
	}
	if (poll(&pfd, 1, timeout_ms) > 0)
		watch_read(r);
	now = mono_ms();
	if (hup && *hup) {
		*hup = 0;
		r->due = now;
	}
	if (r->retry_at && now >= r->retry_at && !r->due)
		r->due = now;
	if (r->due && now >= r->due) {
		r->due = 0;
		check(r);
	}
}

void sl_reload_close(struct sl_reload *r)
{
	if (!r)
		return;
	if (r->ifd >= 0)
		close(r->ifd);
	free(r->cur);
	free(r);
}
