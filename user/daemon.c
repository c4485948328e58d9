// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* `sidelane run`: start the sidecar step by step, serve until a signal,
 * stop. Every step that holds something has its stop beside its start in
 * one table; a failed start stops what was started, in reverse, the same
 * way a clean exit does. What is pinned in the kernel stays unless asked
 * (--detach-on-exit): a restart picks it up.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "loader/policy_user.h"
#include "sidelane.h"
#include "daemon.h"
#include "config/config.h"
#include "lib/accesslog.h"
#include "lib/cgroup.h"
#include "lib/log.h"
#include "lib/privs.h"
#include "lib/util.h"
#include "loader/acct_user.h"
#include "loader/admission_user.h"
#include "loader/keep.h"
#include "loader/capture_user.h"
#include "loader/coexist.h"
#include "loader/detach.h"
#include "loader/fastpath_user.h"
#include "loader/footprint_user.h"
#include "loader/inbound_user.h"
#include "loader/pins.h"
#include "loader/selftest.h"
#include "proxy/proxy.h"
#include "report/admin.h"
#include "report/proxy_stats.h"
#include "tls/tls.h"

/* How often `run` re-reads the host's addresses (also on SIGHUP). */
#define SL_ADDR_SYNC_SEC 5

static volatile sig_atomic_t stop_flag, resync_flag, tls_reload_flag,
	cfg_reload_flag;

static void on_stop(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static void on_hup(int sig)
{
	(void)sig;
	resync_flag = 1;
	tls_reload_flag = 1;
	cfg_reload_flag = 1;
}

/* What a running sidecar holds; each step fills its part. */
struct daemon {
	struct sl_config *cfg;
	const struct sl_daemon_opts *o;
	char side[PATH_MAX]; /* the sidecar cgroup, "" in the root cgroup */
	struct sl_selftest_result stres;
	struct sl_tls_ctx *tls;
	int sweep_fd; /* the admission sweep's iterator link, or -1 */
	unsigned int sweep_waiting; /* sockets its last run left waiting */
	struct sl_alog *alog;
	struct sl_acct *acct;
	struct sl_policy_checker checker;
	struct sl_proxy *proxy;
	struct sl_admin *admin;
	pthread_t hk;
	bool hk_started;
	bool bad_input; /* a failure the operator's files caused: exit 2 */
	bool detach_failed; /* --detach-on-exit could not: exit 1 */
	struct sl_keep *keep; /* an fd on every pin: see loader/keep.h */
	bool capture_off; /* turned off at start: we run in the root cgroup */
	struct sl_reload *reload; /* following the config file */
	bool lost; /* our programs were taken off the cgroup: exit 1 */
};

/* Take out of the sockhash what the mode in force would not admit
 * (sockets an older build or another app_sockets mode admitted), and say
 * what moved. Those whose reader has redirected bytes unread wait: the
 * housekeeping thread runs it again every second until none is left.
 */
static void admission_sweep(struct daemon *d)
{
	struct sl_sweep_result res;
	int err;

	if (d->sweep_fd < 0)
		return;
	err = sl_adm_sweep(d->sweep_fd, &res);
	if (err) {
		pr_warn("admission sweep failed: %s\n", strerror(-err));
		return;
	}
	if (res.evicted || res.waiting)
		pr_info("admission: %u socket(s) admitted before (another "
			"app_sockets mode or an older build) taken out of the "
			"sockhash, %u wait until their reader has read what was "
			"redirected to it\n", res.evicted, res.waiting);
	if (!res.waiting && d->sweep_waiting)
		pr_info("admission: every socket admitted before is out\n");
	d->sweep_waiting = res.waiting;
}

/* Every second: pins removed under us are put back; programs taken off
 * the cgroup (`sidelane detach`, the cgroup removed) stop the process.
 */
static void keep_check(struct daemon *d)
{
	const char *what = NULL;
	int r = sl_keep_check(d->keep, &what);

	if (r > 0)
		pr_warn("%d pin(s) under %s were removed and are put back; the "
			"programs stayed attached throughout (sidelane holds "
			"them)\n", r, d->cfg->pin_root);
	else if (r == -ENOLINK)
		pr_warn("%s/%s is detached from its cgroup (`sidelane detach`, "
			"or the cgroup was removed): stopping\n",
			d->cfg->pin_root, what);
	else if (r < 0)
		pr_warn("pins under %s were removed and %s cannot be put back: "
			"%s; stopping\n", d->cfg->pin_root, what ? what : "the folder",
			strerror(-r));
	if (r < 0) {
		d->lost = true;
		stop_flag = 1;
	}
}

/* Re-reads the host's addresses every SL_ADDR_SYNC_SEC and on SIGHUP,
 * publishes the proxy's counters and checks the pins every second, and
 * follows the config file (reload.h), beside the proxy's event loop.
 */
static void *housekeeping(void *arg)
{
	struct daemon *d = arg;
	const char *pin_root = d->cfg->pin_root;

	while (!stop_flag) {
		int i;

		for (i = 0; i < SL_ADDR_SYNC_SEC * 10 && !stop_flag && !resync_flag; i++) {
			sl_reload_wait(d->reload, 100, &cfg_reload_flag);
			if (i % 10 != 9)
				continue;
			keep_check(d);
			sl_stats_publish(pin_root, d->proxy, d->tls);
			if (d->sweep_waiting)
				admission_sweep(d);
		}
		if (stop_flag)
			break;
		resync_flag = 0;
		sl_fp_sync_local_addrs(pin_root);
	}
	return NULL;
}

/* The cgroup the proxy runs in, where getsockopt answers SO_ORIGINAL_DST:
 * --sidecar-cgroup (joined when join: our own proxy's sockets must be
 * made there), else our own. Returns 0, -errno (any problem with an
 * explicit --sidecar-cgroup is fatal), or 1 when we run in the root cgroup,
 * which would answer for every process of the host: capture stays off then.
 */
static int sidecar_cgroup(const char *arg, bool join, char *buf, size_t len)
{
	char mnt[PATH_MAX];
	int err;

	if (arg) {
		err = sl_cgroup_resolve(arg, buf, len);
		if (!err && join)
			err = sl_cgroup_join(buf);
		if (err)
			pr_warn("cannot run in sidecar cgroup %s: %s\n",
				arg, strerror(-err));
		return err;
	}
	err = sl_cgroup_self(buf, len);
	if (!err)
		err = sl_cgroup2_mount(mnt, sizeof(mnt));
	if (!err && !strcmp(buf, mnt))
		return 1;
	return err;
}

/* The TLS context of cfg; says what identity we have and where TLS runs. */
static int tls_open(const struct sl_config *cfg, struct sl_tls_ctx **out)
{
	struct sl_tls_opts o = {
		.cert_file = cfg->tls.cert,
		.key_file = cfg->tls.key,
		.ca_file = cfg->tls.ca,
		.trust_domain = cfg->tls.trust_domain[0] ? cfg->tls.trust_domain :
							   NULL,
		.alpn = cfg->tls.alpn,
		.allow_tls12 = cfg->tls.allow_tls12,
		.ktls = true,
	};
	char err[SL_TLS_ERR_MAX], id[SL_SPIFFE_MAX + 1];
	int ret;

	ret = sl_tls_ctx_new(&o, out, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "sidelane: tls: %s\n", err);
		return ret;
	}
	sl_tls_ctx_identity(*out, id, sizeof(id));
	pr_info("tls: identity %s, trust domain %s, TLS %s; kTLS: %s\n", id,
		sl_tls_trust_domain(*out), o.allow_tls12 ? "1.2+" : "1.3",
		sl_tls_ktls_reason());
	return 0;
}

/* Steer the app's inbound ports to the proxy's inbound listener with
 * sk_lookup, or say why peers must dial the listener itself. Steering left
 * pinned by an earlier run that this config does not want is removed: a
 * fail-closed program with no listener would refuse the app's ports.
 */
static int inbound_start(const struct sl_config *cfg, struct sl_proxy *proxy,
			 const char *side)
{
	const char *pin_root = cfg->pin_root;
	char why[256], at[64];
	struct sl_in_opts o;
	int err;

	sl_in_opts_from(&o, cfg);
	if (!cfg->inbound.enabled || cfg->inbound.mode == SL_INBOUND_LISTENER) {
		err = sl_in_detach(pin_root);
		if (cfg->inbound.enabled)
			pr_info("inbound: listener mode: peers dial the inbound "
				"listener, relayed to app port %u\n",
				cfg->inbound.app_port);
		return err;
	}
	err = sl_in_probe(why, sizeof(why));
	if (!err && cfg->proxy.external) {
		o.listen_fd4 = o.listen_fd6 = -1;
		o.external_port = sl_endpoint_port(&cfg->inbound.listen);
		o.sidecar_cgroup = side;
	} else if (!err) {
		sl_proxy_inbound_fds(proxy, &o.listen_fd4, &o.listen_fd6);
	}
	if (!err) {
		err = sl_in_attach(pin_root, &o);
		if (err)
			snprintf(why, sizeof(why), "attach: %s", strerror(-err));
	}
	if (!err) {
		pr_info("inbound: sk_lookup steers %u port range(s) of this "
			"network namespace to the %sinbound listener (%s)\n",
			o.n_ports, o.external_port ? "foreign proxy's " : "",
			o.fail_open ? "fail open" : "fail closed");
		return 0;
	}
	if (cfg->inbound.mode == SL_INBOUND_SK_LOOKUP) {
		pr_warn("inbound: sk_lookup unavailable: %s (inbound.mode: "
			"sk_lookup)\n", why);
		return err;
	}
	sl_in_detach(pin_root);
	snprintf(at, sizeof(at), "app port %u", cfg->inbound.app_port);
	pr_warn("inbound: sk_lookup unavailable: %s; listener mode: peers must "
		"dial the inbound listener, relayed to %s\n", why,
		cfg->inbound.app_port ? at : "nothing (no inbound.app_port)");
	return 0;
}

/* Short of open files, accept() fails EMFILE and the proxy pauses
 * accepting: say so now rather than then.
 */
static void raise_nofile(unsigned int max_conns)
{
	unsigned long long limit, want;

	if (sl_nofile_raise(max_conns, &limit, &want))
		pr_warn("open files limit %llu is below the %llu that "
			"proxy.max_conns %u needs: past it connections are "
			"refused\n", limit, want, max_conns);
}

/* ---- the steps ---- */

/* TLS material is checked before anything is attached: a bad file is a
 * start-up error, not a half-started sidecar.
 */
static int tls_start(struct daemon *d)
{
	int err;

	if (!d->cfg->tls.enabled)
		return 0;
	err = tls_open(d->cfg, &d->tls);
	d->bad_input = !!err;
	return err;
}

static void tls_stop(struct daemon *d)
{
	sl_tls_ctx_free(d->tls);
}

/* Signals only set flags; the loops act on them. */
static int signals_start(struct daemon *d)
{
	struct sigaction sa = {};

	(void)d;
	sa.sa_handler = on_stop;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = on_hup;
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	return 0;
}

/* Join the sidecar cgroup before any socket exists: a socket belongs to
 * the cgroup it was created in. With proxy.external it is the foreign
 * proxy's, and we stay where we are: we make no proxy socket, and the
 * cgroup may be one no process may join (a pod's, which holds containers).
 */
static int cgroup_start(struct daemon *d)
{
	int err = sidecar_cgroup(d->o->sidecar_cgroup, !d->cfg->proxy.external,
				 d->side, sizeof(d->side));

	if (err != 1)
		return err;
	if (d->cfg->capture.enabled)
		pr_warn("capture off: sidelane runs in the root cgroup; give "
			"--sidecar-cgroup (its own, not the app's) to capture. "
			"Fast path and policy stay on\n");
	d->cfg->capture.enabled = 0;
	d->capture_off = true;
	d->side[0] = '\0';
	return 0;
}

/* The kernel side: the fast path where this kernel passes the self-test (a
 * private copy of the programs on a throwaway cgroup; otherwise every
 * socket stays on TCP and the proxy works as without it), capture and
 * policy, and a word on other owners' programs around ours.
 */
static int kernel_start(struct daemon *d)
{
	const struct sl_config *cfg = d->cfg;
	const char *side = d->side[0] ? d->side : NULL;
	int err;

	sl_selftest_run(&d->stres); /* logs its finding */
	/* status (so every /metrics scrape) asks this too: answered once,
	 * here on the main thread, whose arena a BTF parse leaves as it was
	 * (on the admin thread's it stayed 6 MiB larger)
	 */
	sl_fp_backlog_supported();
	/* the kernel tables take their size from limits.max_conns */
	sl_sizing_set(cfg->limits.max_conns);
	err = sl_fp_attach(&(struct sl_fp_opts){
		.pin_root = cfg->pin_root,
		.cgroup = cfg->cgroup,
		.sidecar_cgroup = side,
		.excluded_ports = cfg->fastpath.exclude_ports,
		.n_excluded_ports = cfg->fastpath.n_exclude_ports,
		.redirect_off = !d->stres.ok,
		.off_reason = d->stres.why,
		.proxy_external = cfg->proxy.external,
		.app_sockets = cfg->fastpath.app_sockets,
		.kernel = d->stres.kernel,
	});
	if (!err) {
		sl_adm_explain(cfg->fastpath.app_sockets, d->stres.kernel);
		d->sweep_fd = sl_fp_sweep_open(cfg->pin_root);
		if (d->sweep_fd < 0)
			pr_warn("admission sweep unavailable (%s): sockets "
				"admitted under another mode stay until they "
				"close\n", strerror(-d->sweep_fd));
		admission_sweep(d);
		err = sl_cap_attach(cfg->pin_root, cfg->cgroup, side, cfg);
	}
	/* also when a sock_ops on our cgroup made the attach refuse (EBUSY) */
	if (!err || err == -EBUSY)
		sl_coexist_report(cfg->cgroup, side, cfg->pin_root);
	return err;
}

/* What a failed start attached stays pinned, like a stopped run's:
 * `sidelane detach` removes it.
 */
static void kernel_stop(struct daemon *d)
{
	int err;

	if (d->sweep_fd >= 0)
		close(d->sweep_fd);
	if (!d->o->detach_on_exit)
		return;
	err = sl_detach(d->cfg->pin_root);
	d->detach_failed = !!err;
	pr_info("exiting; %s\n", err ? "detach failed" : "detached");
}

/* The access log (if configured) gets the proxy's relay lines and, through
 * the accounting ring, every other connection's.
 */
static int alog_start(struct daemon *d)
{
	const struct sl_config *cfg = d->cfg;
	int err;

	err = sl_alog_open(&(struct sl_alog_opts){
				   .path = cfg->accounting.access_log,
				   .max_bytes = cfg->accounting.max_bytes,
				   .keep = cfg->accounting.keep,
				   .queue_lines = SL_ALOG_DEF_QUEUE },
			   &d->alog);
	if (!err && d->alog)
		pr_info("accounting: access log %s (rotated at %u bytes, %u "
			"gzip files kept)\n", cfg->accounting.access_log,
			cfg->accounting.max_bytes, cfg->accounting.keep);
	return err;
}

static void alog_stop(struct daemon *d)
{
	sl_alog_close(d->alog); /* after the last producer */
}

static int acct_start(struct daemon *d)
{
	return sl_acct_start(d->cfg->pin_root, d->alog, &d->acct);
}

static void acct_stop(struct daemon *d)
{
	sl_acct_stop(d->acct); /* what the ring still holds goes to the log */
}

/* The proxy, when something is to be relayed and no foreign proxy does. */
static int proxy_start(struct daemon *d)
{
	const struct sl_config *cfg = d->cfg;
	char out[64], in[64];
	int err;

	if (cfg->proxy.external) {
		sl_sockaddr_str(&cfg->capture.outbound.addr, out, sizeof(out));
		sl_sockaddr_str(&cfg->inbound.listen.addr, in, sizeof(in));
		pr_info("proxy: external: a foreign proxy in %s serves capture "
			"at %s%s, inbound at %s%s; no listener of ours\n",
			d->side[0] ? d->side : "(no sidecar cgroup)", out,
			cfg->capture.enabled ? "" : " (capture off)", in,
			cfg->inbound.enabled ? "" : " (inbound off)");
		return 0;
	}
	if (!cfg->capture.enabled && !cfg->proxy.n_ambassadors &&
	    !cfg->inbound.enabled)
		return 0;
	raise_nofile(cfg->proxy.max_conns);
	err = sl_policy_checker_open(cfg->pin_root, &d->checker);
	if (!err)
		err = sl_proxy_new(cfg, d->tls, sl_policy_check, &d->checker,
				   &d->proxy);
	if (err) {
		pr_warn("starting the proxy failed: %s\n", strerror(-err));
		return err;
	}
	sl_proxy_reload_flag(d->proxy, &tls_reload_flag);
	sl_proxy_set_alog(d->proxy, d->alog);
	return 0;
}

static void proxy_stop(struct daemon *d)
{
	if (d->proxy)
		sl_proxy_free(d->proxy);
	if (d->checker.st_fd >= 0)
		sl_policy_checker_close(&d->checker);
}

/* Without it (port taken, say) the sidecar runs on: logged. */
static int admin_start(struct daemon *d)
{
	if (d->cfg->admin.enabled)
		sl_admin_start(&(struct sl_admin_opts){
				       .listen = &d->cfg->admin.listen,
				       .pin_root = d->cfg->pin_root,
				       .proxy = d->proxy,
				       .tls = d->tls,
				       .alog = d->alog,
			       },
			       &d->admin);
	return 0;
}

static void admin_stop(struct daemon *d)
{
	sl_admin_stop(d->admin);
}

static int inbound_step(struct daemon *d)
{
	return inbound_start(d->cfg, d->proxy, d->side[0] ? d->side : NULL);
}

/* Once everything runs: the version is published, then followed. */
static int reload_start(struct daemon *d)
{
	pr_info("config: version %s\n", d->cfg->version);
	return sl_reload_open(&(struct sl_reload_opts){
				      .path = d->o->config_path,
				      .load = d->o->load,
				      .load_arg = d->o->load_arg,
				      .cfg = d->cfg,
				      .capture_off = d->capture_off,
				      .tls = d->tls,
				      .proxy = d->proxy,
				      .alog = &d->alog,
				      .acct = d->acct,
				      .admin = d->admin,
			      },
			      &d->reload);
}

static void reload_stop(struct daemon *d)
{
	sl_reload_close(d->reload);
	d->reload = NULL;
}

/* Once everything is pinned, and before the privileges go (bpf_obj_get
 * of a pin needs them).
 */
static int keep_start(struct daemon *d)
{
	int err = sl_keep_open(d->cfg->pin_root, &d->keep);

	if (err)
		pr_warn("holding the pins under %s: %s\n", d->cfg->pin_root,
			strerror(-err));
	return err;
}

static void keep_stop(struct daemon *d)
{
	sl_keep_close(d->keep);
	d->keep = NULL;
}

/* Everything is loaded, attached and listening: from here on only CAP_BPF
 * and CAP_NET_ADMIN are used, in every thread.
 */
static int privs_start(struct daemon *d)
{
	char kept[128];
	int err = sl_drop_privileges(kept, sizeof(kept));

	if (err) {
		pr_warn("dropping privileges failed: %s\n", strerror(-err));
		return err;
	}
	pr_info("privileges: kept %s only\n", kept);
	sl_footprint_log(d->cfg->pin_root);
	return 0;
}

static int hk_start(struct daemon *d)
{
	sigset_t mask, old;

	/* Signals go to the main thread only: housekeeping blocks them. */
	sigfillset(&mask);
	sigdelset(&mask, SIGSYS); /* libpsx's, for sl_drop_privileges() */
	pthread_sigmask(SIG_BLOCK, &mask, &old);
	sl_stats_publish(d->cfg->pin_root, d->proxy, d->tls);
	d->hk_started = !pthread_create(&d->hk, NULL, housekeeping, d);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return 0;
}

static void hk_stop(struct daemon *d)
{
	stop_flag = 1;
	if (d->hk_started)
		pthread_join(d->hk, NULL);
	sl_stats_publish(d->cfg->pin_root, d->proxy, d->tls); /* final counts */
}

/* In start order; a NULL stop holds nothing to undo. */
static const struct step {
	const char *name;
	int (*start)(struct daemon *d);
	void (*stop)(struct daemon *d);
} steps[] = {
	{ "tls", tls_start, tls_stop },
	{ "signals", signals_start, NULL },
	{ "sidecar cgroup", cgroup_start, NULL },
	/* before anything is attached: a log that cannot be opened is
	 * refused with the kernel side as it was
	 */
	{ "access log", alog_start, alog_stop },
	{ "kernel", kernel_start, kernel_stop },
	{ "accounting", acct_start, acct_stop },
	{ "proxy", proxy_start, proxy_stop },
	{ "admin", admin_start, admin_stop },
	{ "inbound", inbound_step, NULL },
	{ "config", reload_start, reload_stop },
	{ "pins held", keep_start, keep_stop },
	{ "privileges", privs_start, NULL },
	{ "housekeeping", hk_start, hk_stop },
};
#define NR_STEPS (sizeof(steps) / sizeof(steps[0]))

/* Serve until a signal (or a fatal proxy error, or the pins vanishing). */
static int serve(struct daemon *d)
{
	int err = 0;

	sl_admin_set_ready(d->admin, true); /* attached, listeners open */
	/* Loading parsed the kernel's BTF and the self-test moved megabytes:
	 * what malloc kept of it goes back, the idle RSS is the sidecar's own.
	 */
	malloc_trim(0);
	pr_info("running; SIGTERM leaves the kernel side %s\n",
		d->o->detach_on_exit ? "detached" : "pinned");
	if (d->proxy) {
		err = sl_proxy_run(d->proxy, &stop_flag);
		if (err)
			pr_warn("proxy stopped: %s\n", strerror(-err));
	} else {
		while (!stop_flag)
			usleep(100 * 1000);
	}
	return 0; /* a stop, as a signal's: the steps undo the rest */
}

int sl_daemon_main(struct sl_config *cfg, const struct sl_daemon_opts *o)
{
	struct daemon d = { .cfg = cfg, .o = o, .sweep_fd = -1,
			    .checker = { .st_fd = -1 } };
	size_t n;
	int err = 0;

	for (n = 0; n < NR_STEPS && !err; n++) {
		err = steps[n].start(&d);
		if (err)
			pr_debug("run: %s failed: %s\n", steps[n].name,
				 strerror(-err));
	}
	if (!err)
		err = serve(&d);
	/* n: the steps started, the failed one too (its stop undoes what
	 * it did before failing)
	 */
	while (n-- > 0)
		if (steps[n].stop)
			steps[n].stop(&d);
	if (!err && !o->detach_on_exit && !d.lost)
		pr_info("exiting; the kernel side stays pinned under %s\n",
			cfg->pin_root);
	return d.bad_input ? 2 : err || d.detach_failed || d.lost ? 1 : 0;
}
