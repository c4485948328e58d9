// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* sidelane: the command line. `sidelane run|status|detach|bench`, in the
 * style of ip(8) and bpftool(8).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include "loader/detach.h"
#include "loader/pins.h"
#include "sidelane.h"
#include "loader/fastpath_user.h"
#include "loader/capture_user.h"
#include "loader/inbound_user.h"
#include "report/admin.h"
#include "lib/cgroup.h"
#include "config/config.h"
#include "proxy/proxy.h"
#include "tls/tls.h"
#include "report/stats_user.h"
#include "report/status.h"
#include "loader/coexist.h"
#include "loader/gc.h"
#include "lib/privs.h"
#include "loader/selftest.h"
#include "lib/accesslog.h"
#include "loader/acct_user.h"
#include "loader/admission_user.h"
#include "proxy/splice_user.h"
#include "bench/bench.h"
#include "lib/log.h"
#include "lib/util.h"

/* Exit codes: 0 ok, 1 runtime failure, 2 usage error, 3 nothing found. */
enum { EXIT_USAGE = 2, EXIT_NOTFOUND = 3 };

/* Every command that finds no pin folder says so the same way: on stderr,
 * exit 3 (`status --json` also prints its "attached":false object).
 */
static int nothing_pinned(const char *pin_root)
{
	fprintf(stderr, "sidelane: nothing pinned under %s\n", pin_root);
	return EXIT_NOTFOUND;
}

/* How often `run` re-reads the host's addresses (also on SIGHUP). */
#define SL_ADDR_SYNC_SEC 5

static volatile sig_atomic_t stop_flag, resync_flag, tls_reload_flag;

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
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: sidelane [-v] COMMAND [OPTIONS]\n"
		"\n"
		"Commands:\n"
		"  run [--config FILE] --cgroup PATH [--sidecar-cgroup PATH] [--pin-root DIR]\n"
		"      [--exclude-ports P,P..] [--app-sockets safe|send|all|none]\n"
		"      [--detach-on-exit]\n"
		"        load (or reuse what is pinned), attach the fast path, capture and\n"
		"        policy to the app's cgroup v2 PATH (absolute, or relative to the\n"
		"        cgroup2 mount), run the proxy in the sidecar cgroup (joined; default:\n"
		"        our own), stay in the foreground. No --config: the embedded\n"
		"        default (`sidelane config`). SIGTERM/SIGINT leave the kernel side\n"
		"        pinned unless --detach-on-exit; SIGHUP re-reads host addresses.\n"
		"        --exclude-ports keeps connections to those service ports on\n"
		"        plain loopback (apps relying on what the fast path changes:\n"
		"        see README, \"Socket semantics\"). --app-sockets overrides\n"
		"        fastpath.app_sockets: which app sockets may enter the fast\n"
		"        path (default safe: only where the app cannot tell).\n"
		"  policy list|load FILE|add ID allow|deny CIDR [PORTS]|del ID [--pin-root DIR]\n"
		"        the live L3/L4 rules; every change replaces the set atomically.\n"
		"  conns [--pin-root DIR] [--json | --watch]\n"
		"        live sockets of the fast path with why each is or is not\n"
		"        redirected, and where captured ones meant to go.\n"
		"  config [check FILE [--json]]\n"
		"        print the embedded default configuration (every field commented);\n"
		"        check: validate FILE as run would (file:line: reason, exit 2),\n"
		"        --json: print the resolved values.\n"
		"  status [--pin-root DIR] [--json]\n"
		"        what is loaded and attached where, map fill levels, counters.\n"
		"  detach [--pin-root DIR]\n"
		"        remove every link, program and pin sidelane created.\n"
		"  gc [--dry-run] [--bpffs DIR] [--prefix P]\n"
		"        remove the pin roots of deleted pods (their cgroups are gone).\n"
		"  bench [--help]\n"
		"        plain loopback vs bare redirect vs sidelane, same run.\n"
		"  version\n"
		"\n"
		"Options: -v (repeatable) more logging; --pin-root defaults to %s\n"
		"\n"
		"Examples:\n"
		"  sidelane run --cgroup /sys/fs/cgroup/unified/app\n"
		"  sidelane run --cgroup app --exclude-ports 5432,6379\n"
		"  sidelane status --json\n"
		"  bpftool map dump pinned %s/%s\n"
		"  sidelane detach\n"
		"\n"
		"Exit codes: 0 ok, 1 failure, 2 usage error, 3 nothing attached.\n",
		SL_PIN_ROOT_DEFAULT, SL_PIN_ROOT_DEFAULT, SL_MAP_CONNS);
}

static int need_root(void)
{
	if (geteuid() == 0)
		return 0;
	pr_warn("must run as root (needs CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN "
		"to load programs, attach to cgroups and pin in the bpffs)\n");
	return -EPERM;
}

enum {
	OPT_PIN_ROOT = 256,
	OPT_CGROUP,
	OPT_DETACH,
	OPT_JSON,
	OPT_EXCLUDE,
	OPT_CONFIG,
	OPT_SIDECAR,
	OPT_WATCH,
	OPT_APP_SOCKETS,
};

static const struct option long_opts[] = {
	{ "pin-root", required_argument, NULL, OPT_PIN_ROOT },
	{ "cgroup", required_argument, NULL, OPT_CGROUP },
	{ "detach-on-exit", no_argument, NULL, OPT_DETACH },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "exclude-ports", required_argument, NULL, OPT_EXCLUDE },
	{ "config", required_argument, NULL, OPT_CONFIG },
	{ "sidecar-cgroup", required_argument, NULL, OPT_SIDECAR },
	{ "watch", no_argument, NULL, OPT_WATCH },
	{ "app-sockets", required_argument, NULL, OPT_APP_SOCKETS },
	{ "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	{},
};

struct cli {
	const char *pin_root;
	const char *cgroup;
	int detach_on_exit;
	int json;
	uint16_t excluded_ports[SL_MAX_EXCLUDED_PORTS];
	size_t n_excluded_ports;
	int excluded_given;
	int pin_root_given;
	const char *config;
	const char *sidecar_cgroup;
	int watch;
	uint32_t app_sockets;
	int app_sockets_given;
};

/* Parse the options of a subcommand; `allowed` lists the OPT_* it takes.
 * With SL_OPTS_ARGS, operands are left at argv[optind..] (getopt moves them
 * to the end), otherwise they are an error.
 */
#define SL_OPTS_ARGS (1u << 31)
static int parse_opts(int argc, char **argv, struct cli *cli,
		      unsigned int allowed)
{
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "vh", long_opts, NULL)) != -1) {
		if (c >= OPT_PIN_ROOT && !(allowed & (1u << (c - OPT_PIN_ROOT)))) {
			fprintf(stderr, "sidelane %s: option --%s not valid here\n",
				argv[0], long_opts[c - OPT_PIN_ROOT].name);
			return -EINVAL;
		}
		switch (c) {
		case 'v':
			sl_verbosity++;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case OPT_PIN_ROOT:
			cli->pin_root = optarg;
			cli->pin_root_given = 1;
			break;
		case OPT_CONFIG:
			cli->config = optarg;
			break;
		case OPT_SIDECAR:
			cli->sidecar_cgroup = optarg;
			break;
		case OPT_CGROUP:
			cli->cgroup = optarg;
			break;
		case OPT_DETACH:
			cli->detach_on_exit = 1;
			break;
		case OPT_JSON:
			cli->json = 1;
			break;
		case OPT_WATCH:
			cli->watch = 1;
			break;
		case OPT_APP_SOCKETS:
			if (sl_app_sockets_parse(optarg, &cli->app_sockets)) {
				fprintf(stderr, "sidelane %s: --app-sockets: '%s' is "
					"not one of safe, send, all, none\n",
					argv[0], optarg);
				return -EINVAL;
			}
			cli->app_sockets_given = 1;
			break;
		case OPT_EXCLUDE: {
			const char *bad;

			if (sl_parse_ports(optarg, cli->excluded_ports,
					   SL_MAX_EXCLUDED_PORTS,
					   &cli->n_excluded_ports, &bad)) {
				fprintf(stderr, "sidelane %s: --exclude-ports: bad port list at '%s' "
					"(comma-separated, 1-65535, no repeats, at most %d)\n",
					argv[0], bad, SL_MAX_EXCLUDED_PORTS);
				return -EINVAL;
			}
			cli->excluded_given = 1;
			break;
		}
		default:
			return -EINVAL;
		}
	}
	if (optind != argc && !(allowed & SL_OPTS_ARGS)) {
		fprintf(stderr, "sidelane %s: unexpected argument '%s'\n", argv[0],
			argv[optind]);
		return -EINVAL;
	}
	if (cli->pin_root && cli->pin_root[0] != '/') {
		fprintf(stderr, "sidelane: --pin-root must be an absolute path\n");
		return -EINVAL;
	}
	if (!cli->pin_root)
		cli->pin_root = SL_PIN_ROOT_DEFAULT;
	return 0;
}

#define ALLOW(o) (1u << ((o) - OPT_PIN_ROOT))

struct hk_ctx {
	const char *pin_root;
	struct sl_proxy *proxy; /* may be NULL */
	struct sl_tls_ctx *tls; /* may be NULL */
	int sweep_fd; /* the admission sweep's iterator link, or -1 */
	unsigned int sweep_waiting; /* sockets its last run left waiting */
};

/* Take out of the sockhash what the mode in force would not admit
 * (sockets an older build or another app_sockets mode admitted), and say
 * what moved. Those whose reader has redirected bytes unread wait: the
 * housekeeping thread runs it again every second until none is left.
 */
static void admission_sweep(struct hk_ctx *hk)
{
	struct sl_sweep_result res;
	int err;

	if (hk->sweep_fd < 0)
		return;
	err = sl_adm_sweep(hk->sweep_fd, &res);
	if (err) {
		pr_warn("admission sweep failed: %s\n", strerror(-err));
		return;
	}
	if (res.evicted || res.waiting)
		pr_info("admission: %u socket(s) admitted before (another "
			"app_sockets mode or an older build) taken out of the "
			"sockhash, %u wait until their reader has read what was "
			"redirected to it\n", res.evicted, res.waiting);
	if (!res.waiting && hk->sweep_waiting)
		pr_info("admission: every socket admitted before is out\n");
	hk->sweep_waiting = res.waiting;
}

/* Re-reads the host's addresses every SL_ADDR_SYNC_SEC and on SIGHUP, and
 * publishes the proxy's counters every second, beside the proxy's event
 * loop. Stops the process if the pins vanish.
 */
static void *housekeeping(void *arg)
{
	struct hk_ctx *hk = arg;
	const char *pin_root = hk->pin_root;

	while (!stop_flag) {
		int i;

		for (i = 0; i < SL_ADDR_SYNC_SEC * 10 && !stop_flag && !resync_flag; i++) {
			usleep(100 * 1000);
			if (i % 10 != 9)
				continue;
			sl_stats_publish(pin_root, hk->proxy, hk->tls);
			if (hk->sweep_waiting)
				admission_sweep(hk);
		}
		if (stop_flag)
			break;
		resync_flag = 0;
		if (sl_fp_sync_local_addrs(pin_root) == -ENOENT) {
			pr_warn("pins under %s are gone (detached by someone else?)\n",
				pin_root);
			stop_flag = 1;
		}
	}
	return NULL;
}

/* The cgroup the proxy runs in, where getsockopt answers SO_ORIGINAL_DST:
 * --sidecar-cgroup (joined), else our own. Returns 0, -errno (any problem
 * with an explicit --sidecar-cgroup is fatal), or 1 when we run in the root
 * cgroup, which would answer for every process of the host: capture stays
 * off then.
 */
static int sidecar_cgroup(const struct cli *cli, char *buf, size_t len)
{
	char mnt[PATH_MAX];
	int err;

	if (cli->sidecar_cgroup) {
		err = sl_cgroup_resolve(cli->sidecar_cgroup, buf, len);
		if (!err)
			err = sl_cgroup_join(buf);
		if (err)
			pr_warn("cannot run in sidecar cgroup %s: %s\n",
				cli->sidecar_cgroup, strerror(-err));
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
static int inbound_start(const struct sl_config *cfg, struct sl_proxy *proxy)
{
	const char *pin_root = cfg->pin_root;
	struct sl_in_opts o = {
		.ports = cfg->inbound.ports,
		.n_ports = cfg->inbound.n_ports,
		.exclude = cfg->inbound.exclude_ports,
		.n_exclude = cfg->inbound.n_exclude_ports,
		.fail_open = cfg->inbound.fail_open,
	};
	char why[256], at[64];
	int err;

	if (!cfg->inbound.enabled || cfg->inbound.mode == SL_INBOUND_LISTENER) {
		err = sl_in_detach(pin_root);
		if (cfg->inbound.enabled)
			pr_info("inbound: listener mode: peers dial the inbound "
				"listener, relayed to app port %u\n",
				cfg->inbound.app_port);
		return err;
	}
	err = sl_in_probe(why, sizeof(why));
	if (!err) {
		sl_proxy_inbound_fds(proxy, &o.listen_fd4, &o.listen_fd6);
		err = sl_in_attach(pin_root, &o);
		if (err)
			snprintf(why, sizeof(why), "attach: %s", strerror(-err));
	}
	if (!err) {
		pr_info("inbound: sk_lookup steers %u port range(s) of this "
			"network namespace to the inbound listener (%s)\n",
			o.n_ports, o.fail_open ? "fail open" : "fail closed");
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

/* `sidelane config [check FILE [--json]]` */
static int cmd_config(int argc, char **argv)
{
	char err[SL_CFG_ERR_LEN];
	struct sl_config *cfg;
	int json;

	if (argc == 1) {
		fputs(sl_config_default_yaml, stdout);
		return 0;
	}
	json = argc == 4 && !strcmp(argv[3], "--json");
	if (strcmp(argv[1], "check") || (argc != 3 && !json)) {
		fprintf(stderr, "usage: sidelane config [check FILE [--json]]\n");
		return EXIT_USAGE;
	}
	cfg = calloc(1, sizeof(*cfg));
	if (!cfg)
		return 1;
	if (sl_config_load(argv[2], cfg, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		free(cfg);
		return EXIT_USAGE;
	}
	if (json)
		sl_config_print_json(stdout, cfg);
	else
		printf("%s: ok\n", argv[2]);
	free(cfg);
	return 0;
}

/* Two descriptors per relayed connection, and the rest: raise the soft
 * limit to what proxy.max_conns needs (and the hard one while we may, before
 * privileges are dropped). Short of it, accept() fails EMFILE and the proxy
 * pauses accepting: say so now rather than then.
 */
static void raise_nofile(unsigned int max_conns)
{
	rlim_t want = 2 * (rlim_t)max_conns + 1024;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return;
	if (rl.rlim_max < want) {
		struct rlimit hi = { want, want };

		if (!setrlimit(RLIMIT_NOFILE, &hi))
			return;
	}
	rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
	if (setrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur < want)
		pr_warn("open files limit %llu is below the %llu that "
			"proxy.max_conns %u needs: past it connections are "
			"refused\n",
			(unsigned long long)rl.rlim_cur, (unsigned long long)want,
			max_conns);
}

static int cmd_run(int argc, char **argv)
{
	struct sl_policy_checker checker = { .st_fd = -1 };
	struct sl_tls_ctx *tls = NULL;
	struct sl_proxy *proxy = NULL;
	struct sl_admin *admin = NULL;
	char side[PATH_MAX], cerr[SL_CFG_ERR_LEN];
	struct sigaction sa = {};
	struct sl_config *cfg;
	struct cli cli = {};
	sigset_t mask, old;
	struct sl_selftest_result stres;
	struct sl_alog *alog = NULL;
	struct sl_acct *acct = NULL;
	char kept[128];
	struct hk_ctx hkc = { .sweep_fd = -1 };
	pthread_t hk;
	int err, ret = 1, hk_started = 0;

	if (parse_opts(argc, argv, &cli,
		       ALLOW(OPT_PIN_ROOT) | ALLOW(OPT_CGROUP) | ALLOW(OPT_DETACH) |
			       ALLOW(OPT_EXCLUDE) | ALLOW(OPT_CONFIG) |
			       ALLOW(OPT_SIDECAR) | ALLOW(OPT_APP_SOCKETS)))
		return EXIT_USAGE;
	cfg = calloc(1, sizeof(*cfg));
	if (!cfg)
		return 1;
	/* The file (or the embedded default) first, then the command line. */
	if (sl_config_load(cli.config, cfg, cerr, sizeof(cerr))) {
		fprintf(stderr, "sidelane: %s\n", cerr);
		ret = EXIT_USAGE;
		goto out;
	}
	if (cli.pin_root_given || !cfg->pin_root[0])
		snprintf(cfg->pin_root, sizeof(cfg->pin_root), "%s", cli.pin_root);
	if (cli.cgroup)
		snprintf(cfg->cgroup, sizeof(cfg->cgroup), "%s", cli.cgroup);
	if (cli.excluded_given) {
		cfg->fastpath.n_exclude_ports = cli.n_excluded_ports;
		memcpy(cfg->fastpath.exclude_ports, cli.excluded_ports,
		       cli.n_excluded_ports * sizeof(cli.excluded_ports[0]));
	}
	if (cli.app_sockets_given)
		cfg->fastpath.app_sockets = cli.app_sockets;
	if (!cfg->cgroup[0]) {
		fprintf(stderr, "sidelane run: --cgroup PATH (or cgroup: in the config) is required\n");
		ret = EXIT_USAGE;
		goto out;
	}
	if (need_root())
		goto out;
	/* TLS material is checked before anything is attached: a bad file
	 * is a start-up error, not a half-started sidecar
	 */
	if (cfg->tls.enabled) {
		err = tls_open(cfg, &tls);
		if (err) {
			ret = EXIT_USAGE;
			goto out;
		}
	}
	/* Signals only set flags; the loops below act on them. */
	sa.sa_handler = on_stop;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = on_hup;
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);

	/* Join the sidecar cgroup before any socket exists: a socket belongs
	 * to the cgroup it was created in.
	 */
	err = sidecar_cgroup(&cli, side, sizeof(side));
	if (err == 1) {
		if (cfg->capture.enabled)
			pr_warn("capture off: sidelane runs in the root cgroup; give "
				"--sidecar-cgroup (its own, not the app's) to capture. "
				"Fast path and policy stay on\n");
		cfg->capture.enabled = 0;
		side[0] = '\0';
	} else if (err) {
		goto out;
	}
	/* Redirect only where this kernel passes the self-test (a private
	 * copy of the programs on a throwaway cgroup): otherwise every
	 * socket stays on TCP and the proxy works as without the fast path.
	 */
	sl_selftest_run(&stres); /* logs its finding */
	/* the kernel tables take their size from limits.max_conns */
	sl_sizing_set(cfg->limits.max_conns);
	err = sl_fp_attach(&(struct sl_fp_opts){
		.pin_root = cfg->pin_root,
		.cgroup = cfg->cgroup,
		.sidecar_cgroup = side[0] ? side : NULL,
		.excluded_ports = cfg->fastpath.exclude_ports,
		.n_excluded_ports = cfg->fastpath.n_exclude_ports,
		.redirect_off = !stres.ok,
		.off_reason = stres.why,
		.app_sockets = cfg->fastpath.app_sockets,
		.kernel = stres.kernel,
	});
	if (!err) {
		sl_adm_explain(cfg->fastpath.app_sockets, stres.kernel);
		hkc.sweep_fd = sl_fp_sweep_open(cfg->pin_root);
		if (hkc.sweep_fd < 0)
			pr_warn("admission sweep unavailable (%s): sockets admitted "
				"under another mode stay until they close\n",
				strerror(-hkc.sweep_fd));
		admission_sweep(&hkc);
	}
	if (!err)
		err = sl_cap_attach(cfg->pin_root, cfg->cgroup,
				    side[0] ? side : NULL, cfg);
	/* Other owners' programs around ours, one line each (coexist.h);
	 * also when a sock_ops on our cgroup made the attach refuse (EBUSY).
	 */
	if (!err || err == -EBUSY)
		sl_coexist_report(cfg->cgroup, side[0] ? side : NULL,
				  cfg->pin_root);
	if (err)
		goto out_detach;
	if (cfg->capture.enabled || cfg->proxy.n_ambassadors ||
	    cfg->inbound.enabled) {
		raise_nofile(cfg->proxy.max_conns);
		err = sl_policy_checker_open(cfg->pin_root, &checker);
		if (!err)
			err = sl_proxy_new(cfg, tls, sl_policy_check, &checker,
					   &proxy);
		if (err) {
			pr_warn("starting the proxy failed: %s\n", strerror(-err));
			goto out_detach;
		}
		sl_proxy_reload_flag(proxy, &tls_reload_flag);
	}
	/* Without it (port taken, say) the sidecar runs on: logged. */
	if (cfg->admin.enabled)
		sl_admin_start(&(struct sl_admin_opts){ &cfg->admin.listen,
							cfg->pin_root, proxy,
							tls },
			       &admin);
	err = inbound_start(cfg, proxy);
	if (err)
		goto out_detach;
	/* Accounting: the access log (if configured) gets the proxy's relay
	 * lines and, through the ring buffer, every other connection's
	 */
	err = sl_alog_open(&(struct sl_alog_opts){
				   .path = cfg->accounting.access_log,
				   .max_bytes = cfg->accounting.max_bytes,
				   .keep = cfg->accounting.keep,
				   .queue_lines = SL_ALOG_DEF_QUEUE },
			   &alog);
	if (!err && proxy)
		sl_proxy_set_alog(proxy, alog);
	if (!err)
		err = sl_acct_start(cfg->pin_root, alog, &acct);
	if (err)
		goto out_detach;
	if (alog)
		pr_info("accounting: access log %s (rotated at %u bytes, %u "
			"gzip files kept)\n", cfg->accounting.access_log,
			cfg->accounting.max_bytes, cfg->accounting.keep);
	/* Everything is loaded, attached and listening: from here on only
	 * CAP_BPF and CAP_NET_ADMIN are used, in every thread.
	 */
	err = sl_drop_privileges(kept, sizeof(kept));
	if (err) {
		pr_warn("dropping privileges failed: %s\n", strerror(-err));
		goto out_detach;
	}
	pr_info("privileges: kept %s only\n", kept);
	sl_footprint_log(cfg->pin_root);
	/* Signals go to this thread only: the housekeeping one blocks them. */
	sigfillset(&mask);
	sigdelset(&mask, SIGSYS); /* libpsx's, for sl_drop_privileges() */
	pthread_sigmask(SIG_BLOCK, &mask, &old);
	hkc.pin_root = cfg->pin_root;
	hkc.proxy = proxy;
	hkc.tls = tls;
	sl_stats_publish(cfg->pin_root, proxy, tls);
	hk_started = !pthread_create(&hk, NULL, housekeeping, &hkc);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	sl_admin_set_ready(admin, true); /* attached, listeners open */
	/* Loading parsed the kernel's BTF and the self-test moved megabytes:
	 * what malloc kept of it goes back, the idle RSS is the sidecar's own.
	 */
	malloc_trim(0);
	pr_info("running; SIGTERM leaves the kernel side %s\n",
		cli.detach_on_exit ? "detached" : "pinned");
	if (proxy) {
		err = sl_proxy_run(proxy, &stop_flag);
		if (err)
			pr_warn("proxy stopped: %s\n", strerror(-err));
	} else {
		while (!stop_flag)
			usleep(100 * 1000);
	}
	stop_flag = 1;
	if (hk_started)
		pthread_join(hk, NULL);
	sl_stats_publish(cfg->pin_root, proxy, tls); /* the final counts */
	ret = 0;
out_detach:
	sl_admin_stop(admin);
	sl_acct_stop(acct); /* what the ring still holds goes to the log */
	if (proxy)
		sl_proxy_free(proxy);
	sl_alog_close(alog); /* after the last producer */
	if (checker.st_fd >= 0)
		sl_policy_checker_close(&checker);
	sl_tls_ctx_free(tls);
	if (hkc.sweep_fd >= 0)
		close(hkc.sweep_fd);
	/* What a failed start attached stays pinned, like a stopped run's:
	 * `sidelane detach` removes it.
	 */
	if (cli.detach_on_exit) {
		err = sl_detach(cfg->pin_root);
		pr_info("exiting; %s\n", err ? "detach failed" : "detached");
		if (err)
			ret = 1;
	} else if (!ret) {
		pr_info("exiting; the kernel side stays pinned under %s\n",
			cfg->pin_root);
	}
out:
	free(cfg);
	return ret;
}

static int cmd_status(int argc, char **argv)
{
	struct sl_status *st;
	struct cli cli = {};
	int err;

	if (parse_opts(argc, argv, &cli, ALLOW(OPT_PIN_ROOT) | ALLOW(OPT_JSON)))
		return EXIT_USAGE;
	if (need_root())
		return 1;
	st = malloc(sizeof(*st));
	if (!st)
		return 1;
	err = sl_status_read(cli.pin_root, st);
	if (err == -ENOENT) {
		if (cli.json)
			printf("{\"version\":\"%s\",\"pin_root\":\"%s\",\"attached\":false}\n",
			       SL_VERSION, cli.pin_root);
		else
			nothing_pinned(cli.pin_root);
		free(st);
		return EXIT_NOTFOUND;
	}
	if (err) {
		pr_warn("reading %s: %s\n", cli.pin_root, strerror(-err));
		free(st);
		return 1;
	}
	printf(cli.json ? "{" : "");
	sl_status_print(stdout, cli.pin_root, st, cli.json);
	printf(cli.json ? "}\n" : "");
	free(st);
	return 0;
}

/* ---- sidelane policy ------------------------------------------------- */

/* "ID allow|deny CIDR [PORTS]" from argv; what is wrong goes to stderr. */
static int parse_rule_args(char **argv, int argc, struct sl_rule *r)
{
	const char *why = NULL, *what = NULL;
	char *p, *save = NULL, buf[256];
	uint64_t id;

	memset(r, 0, sizeof(*r));
	if (argc < 3 || argc > 4)
		return -EINVAL;
	if (sl_parse_u64(argv[0], 1, UINT32_MAX, &id)) {
		what = argv[0];
		why = "a rule id is 1..4294967295";
		goto bad;
	}
	r->id = id;
	if (!strcmp(argv[1], "allow"))
		r->action = SL_ACTION_ALLOW;
	else if (!strcmp(argv[1], "deny"))
		r->action = SL_ACTION_DENY;
	else
		return -EINVAL;
	if (sl_cidr_parse(argv[2], &r->cidr, &why)) {
		what = argv[2];
		goto bad;
	}
	if (argc == 4) {
		snprintf(buf, sizeof(buf), "%s", argv[3]);
		for (p = strtok_r(buf, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
			what = p;
			why = "more than " SL_XSTR(SL_CFG_MAX_RULE_PORTS) " port ranges";
			if (r->n_ports == SL_CFG_MAX_RULE_PORTS ||
			    sl_port_range_parse(p, &r->ports[r->n_ports++], &why))
				goto bad;
		}
	}
	return 0;
bad:
	fprintf(stderr, "sidelane policy add: %s: %s\n", what, why);
	return -EINVAL;
}

static int cmd_policy(int argc, char **argv)
{
	static struct sl_policy pol;
	static struct sl_policy_hit hits[SL_CFG_MAX_RULES + 1];
	char err[SL_CFG_ERR_LEN] = "";
	const char *verb = argc > 1 ? argv[1] : "list";
	unsigned int n_hits, i;
	struct cli cli = {};
	int configured, ret, lock = -1, nargs;
	struct sl_rule r;

	/* sidelane policy VERB [ARGS..] [--pin-root DIR] [--json] */
	if (argc > 1) {
		argc--;
		argv++;
	}
	if (parse_opts(argc, argv, &cli,
		       ALLOW(OPT_PIN_ROOT) | ALLOW(OPT_JSON) | SL_OPTS_ARGS))
		return EXIT_USAGE;
	nargs = argc - optind;
	if (need_root())
		return 1;
	if (!strcmp(verb, "list")) {
		ret = sl_policy_print(stdout, cli.pin_root, cli.json);
		printf(!ret && cli.json ? "\n" : "");
		goto done;
	}
	/* The whole read-modify-apply holds the policy lock, so two
	 * concurrent `policy add` cannot lose each other's rule.
	 */
	lock = sl_policy_lock(cli.pin_root);
	if (lock < 0) {
		fprintf(stderr, "sidelane policy: %s: %s (is sidelane running?)\n",
			cli.pin_root, strerror(-lock));
		return EXIT_NOTFOUND;
	}
	if (!strcmp(verb, "load")) {
		if (nargs != 1)
			goto usage;
		/* A bad file stops here: the live rules are not touched. */
		ret = sl_policy_load(argv[optind], &pol, err, sizeof(err));
		if (ret) {
			fprintf(stderr, "sidelane policy load: %s\n", err);
			ret = -EINVAL;
			goto done_usage;
		}
	} else if (!strcmp(verb, "add") || !strcmp(verb, "del")) {
		ret = sl_policy_read(cli.pin_root, &pol, &configured, hits,
				     SL_CFG_MAX_RULES + 1, &n_hits);
		if (ret)
			goto done;
		if (!strcmp(verb, "add")) {
			if (parse_rule_args(argv + optind, nargs, &r))
				goto usage;
			for (i = 0; i < pol.n_rules; i++)
				if (pol.rules[i].id == r.id) {
					fprintf(stderr, "sidelane policy add: rule %u exists\n", r.id);
					ret = -EEXIST;
					goto done_usage;
				}
			if (pol.n_rules == SL_CFG_MAX_RULES) {
				ret = -E2BIG;
				goto done;
			}
			pol.rules[pol.n_rules++] = r;
		} else {
			uint64_t id;

			if (nargs != 1 || sl_parse_u64(argv[optind], 1, UINT32_MAX, &id))
				goto usage;
			for (i = 0; i < pol.n_rules && pol.rules[i].id != id; i++)
				;
			if (i == pol.n_rules) {
				fprintf(stderr, "sidelane policy del: no rule %llu\n",
					(unsigned long long)id);
				ret = -ENOENT;
				goto done_usage;
			}
			memmove(&pol.rules[i], &pol.rules[i + 1],
				(pol.n_rules - i - 1) * sizeof(pol.rules[0]));
			pol.n_rules--;
		}
	} else {
		goto usage;
	}
	ret = sl_policy_apply_locked(cli.pin_root, &pol, err, sizeof(err));
	if (ret)
		fprintf(stderr, "sidelane policy %s: %s; the previous rules stay in force\n",
			verb, err[0] ? err : strerror(-ret));
	else
		pr_info("policy %s: %u rules in force\n", verb, pol.n_rules);
done:
	if (lock >= 0)
		sl_policy_unlock(lock);
	return ret ? 1 : 0;
done_usage:
	if (lock >= 0)
		sl_policy_unlock(lock);
	return EXIT_USAGE;
usage:
	if (lock >= 0)
		sl_policy_unlock(lock);
	fprintf(stderr,
		"Usage: sidelane policy list [--json]\n"
		"       sidelane policy load FILE\n"
		"       sidelane policy add ID allow|deny CIDR [PORTS]   e.g. add 10 deny 10.0.0.0/8 80,8000-8080\n"
		"       sidelane policy del ID\n"
		"       (each takes --pin-root DIR)\n");
	return EXIT_USAGE;
}

/* ---- sidelane conns --------------------------------------------------- */

/* Why a socket is or is not on the fast path, from its record's flags. */
static const char *conn_reason(const struct sl_conn *c)
{
	if (c->reason != SL_ACC_ACCELERATED)
		return c->reason < SL_ACC_NR ? sl_acc_reason_name[c->reason] : "?";
	if (c->flags & SL_CONN_F_BACKLOG)
		return "tcp_while_peer_catches_up";
	return c->redir_msgs ? "accelerated" : "accelerated_idle";
}

/* `conns --watch`: the busiest live connections, refreshed every second,
 * like top(1). Bytes per second from two readings of sl_conns.
 */
#define SL_TOP_N 20
#define SL_TOP_MAX 4096

struct top_row {
	uint64_t cookie, bytes, rate;
	struct sl_conn c;
};

struct top_ctx {
	struct top_row *rows, *prev;
	size_t n, n_prev;
};

static int top_collect(uint64_t cookie, const void *val, void *arg)
{
	const struct sl_conn *c = val;
	struct top_ctx *t = arg;
	struct top_row *r;
	size_t i;

	if (t->n >= SL_TOP_MAX)
		return 1;
	r = &t->rows[t->n++];
	r->cookie = cookie;
	r->c = *c;
	r->bytes = c->redir_bytes + c->pass_bytes;
	r->rate = 0;
	for (i = 0; i < t->n_prev; i++)
		if (t->prev[i].cookie == cookie && r->bytes >= t->prev[i].bytes) {
			r->rate = r->bytes - t->prev[i].bytes;
			break;
		}
	return 0;
}

static int top_cmp(const void *a, const void *b)
{
	const struct top_row *x = a, *y = b;

	if (x->rate != y->rate)
		return x->rate < y->rate ? 1 : -1;
	return x->bytes < y->bytes ? 1 : x->bytes > y->bytes ? -1 : 0;
}

static int conns_watch(const char *pin_root)
{
	struct top_ctx t = {};
	struct sl_conn conn;
	int err = 0;

	t.rows = calloc(SL_TOP_MAX, sizeof(*t.rows));
	t.prev = calloc(SL_TOP_MAX, sizeof(*t.prev));
	if (!t.rows || !t.prev) {
		err = -ENOMEM;
		goto out;
	}
	while (!stop_flag) {
		char l[INET6_ADDRSTRLEN], r[INET6_ADDRSTRLEN];
		size_t i;

		t.n = 0;
		err = sl_pin_foreach_u64(pin_root, SL_MAP_CONNS, &conn,
					 top_collect, &t);
		if (err)
			break;
		qsort(t.rows, t.n, sizeof(*t.rows), top_cmp);
		printf("\033[H\033[2J%zu live sockets under %s; busiest first "
		       "(bytes sent per second, then in all); ^C quits\n"
		       "%-8s %-7s %-22s %-22s %-6s %-12s %12s %14s  %s\n",
		       t.n, pin_root, "pid", "comm", "local", "remote", "role",
		       "path", "B/s", "bytes", "why");
		for (i = 0; i < t.n && i < SL_TOP_N; i++) {
			const struct sl_conn *c = &t.rows[i].c;
			char la[64], ra[64], comm[sizeof(c->comm) + 1];

			sl_addr_str(c->key.local_ip, l, sizeof(l));
			sl_addr_str(c->key.remote_ip, r, sizeof(r));
			snprintf(la, sizeof(la), "%s:%u", l, c->key.local_port);
			snprintf(ra, sizeof(ra), "%s:%u", r, c->key.remote_port);
			memcpy(comm, c->comm, sizeof(c->comm));
			comm[sizeof(c->comm)] = '\0';
			printf("%-8u %-7.7s %-22s %-22s %-6s %-12s %12llu %14llu  %s\n",
			       c->pid, comm[0] ? comm : "-", la, ra,
			       c->flags & SL_CONN_F_PASSIVE ? "server" : "client",
			       c->reason == SL_ACC_ACCELERATED ? "redirect" : "tcp",
			       (unsigned long long)t.rows[i].rate,
			       (unsigned long long)t.rows[i].bytes, conn_reason(c));
		}
		fflush(stdout);
		memcpy(t.prev, t.rows, t.n * sizeof(*t.rows));
		t.n_prev = t.n;
		sleep(1);
	}
out:
	free(t.rows);
	free(t.prev);
	return err;
}

struct conns_ctx {
	const char *pin_root;
	int json, n;
	struct sl_splice_view splice;
};

static int print_conn(uint64_t cookie, const void *val, void *arg)
{
	const struct sl_conn *c = val;
	struct conns_ctx *x = arg;
	char l[INET6_ADDRSTRLEN], r[INET6_ADDRSTRLEN], o[INET6_ADDRSTRLEN] = "";
	struct sl_splice_slot sp;
	struct sl_orig orig;
	int captured, spliced;

	spliced = sl_splice_view_get(&x->splice, &c->key, &sp);
	sl_addr_str(c->key.local_ip, l, sizeof(l));
	sl_addr_str(c->key.remote_ip, r, sizeof(r));
	captured = !sl_cap_orig(x->pin_root, cookie, &orig);
	if (captured)
		sl_addr_str(orig.ip, o, sizeof(o));
	if (x->json) {
		printf("%s{\"cookie\":%llu,\"local\":\"%s:%u\",\"remote\":\"%s:%u\","
		       "\"role\":\"%s\",\"pid\":%u,\"cgroup_id\":%llu,\"reason\":\"%s\","
		       "\"redir_bytes\":%llu,\"redir_msgs\":%llu,\"pass_bytes\":%llu,"
		       "\"pass_msgs\":%llu",
		       x->n ? "," : "", (unsigned long long)cookie, l, c->key.local_port,
		       r, c->key.remote_port,
		       c->flags & SL_CONN_F_PASSIVE ? "server" : "client", c->pid,
		       (unsigned long long)c->cgroup_id, conn_reason(c),
		       (unsigned long long)c->redir_bytes,
		       (unsigned long long)c->redir_msgs,
		       (unsigned long long)c->pass_bytes,
		       (unsigned long long)c->pass_msgs);
		if (captured)
			printf(",\"captured_to\":\"%s:%u\",\"rule_id\":%u", o,
			       orig.port, orig.rule_id);
		if (spliced)
			printf(",\"spliced\":{\"pushed_bytes\":%llu,"
			       "\"relayed_bytes\":%llu,"
			       "\"down_redirected_bytes\":%llu,"
			       "\"down_relayed_bytes\":%llu}",
			       (unsigned long long)sp.half[SL_SPD_UP].bytes,
			       (unsigned long long)sp.half[SL_SPD_UP].relayed_bytes,
			       (unsigned long long)sp.half[SL_SPD_DOWN].bytes,
			       (unsigned long long)sp.half[SL_SPD_DOWN].relayed_bytes);
		printf("}");
	} else {
		printf("%-20llu %-6s %s:%u -> %s:%u  pid %u  %s  redirected %llu B/%llu msgs, plain %llu B",
		       (unsigned long long)cookie,
		       c->flags & SL_CONN_F_PASSIVE ? "server" : "client", l,
		       c->key.local_port, r, c->key.remote_port, c->pid,
		       conn_reason(c), (unsigned long long)c->redir_bytes,
		       (unsigned long long)c->redir_msgs,
		       (unsigned long long)c->pass_bytes);
		if (captured)
			printf("  captured, meant for %s:%u (rule %u)", o, orig.port,
			       orig.rule_id);
		if (spliced)
			printf("  spliced: up %llu B pushed, %llu B relayed; "
			       "down %llu B redirected, %llu B relayed",
			       (unsigned long long)sp.half[SL_SPD_UP].bytes,
			       (unsigned long long)sp.half[SL_SPD_UP].relayed_bytes,
			       (unsigned long long)sp.half[SL_SPD_DOWN].bytes,
			       (unsigned long long)sp.half[SL_SPD_DOWN].relayed_bytes);
		printf("\n");
	}
	x->n++;
	return 0;
}

static int print_uncaptured(uint64_t cookie, const void *val, void *arg)
{
	const struct sl_connect_rec *r = val;
	struct conns_ctx *x = arg;
	char ip[INET6_ADDRSTRLEN];
	const char *why = r->reason < SL_CR_NR ? sl_capture_reason_name[r->reason] : "?";

	sl_addr_str(r->ip, ip, sizeof(ip));
	if (x->json)
		printf("%s{\"cookie\":%llu,\"dst\":\"%s:%u\",\"reason\":\"%s\"}",
		       x->n ? "," : "", (unsigned long long)cookie, ip, r->port, why);
	else
		printf("%-20llu connect to %s:%u not captured: %s\n",
		       (unsigned long long)cookie, ip, r->port, why);
	x->n++;
	return 0;
}

static int cmd_conns(int argc, char **argv)
{
	struct sl_connect_rec rec;
	struct conns_ctx x = {};
	struct sl_conn conn;
	struct cli cli = {};
	int err;

	if (parse_opts(argc, argv, &cli,
		       ALLOW(OPT_PIN_ROOT) | ALLOW(OPT_JSON) | ALLOW(OPT_WATCH)))
		return EXIT_USAGE;
	if (need_root())
		return 1;
	if (cli.watch) {
		signal(SIGINT, on_stop);
		err = conns_watch(cli.pin_root);
		if (err == -ENOENT)
			return nothing_pinned(cli.pin_root);
		return err ? 1 : 0;
	}
	x.pin_root = cli.pin_root;
	x.json = cli.json;
	sl_splice_view_open(cli.pin_root, &x.splice);
	if (x.json)
		printf("{\"sockets\":[");
	err = sl_pin_foreach_u64(cli.pin_root, SL_MAP_CONNS, &conn, print_conn, &x);
	sl_splice_view_close(&x.splice);
	if (!err) {
		int n = x.n;

		printf(x.json ? "],\"uncaptured_connects\":[" :
				"%d sockets on the fast path's books\n", n);
		x.n = 0;
		/* Absent without capture (an older pin folder): not an error. */
		sl_pin_foreach_u64(cli.pin_root, SL_MAP_CONNECT_REASON, &rec,
				   print_uncaptured, &x);
		printf(x.json ? "]}\n" : "%d open connects of the app left uncaptured\n",
		       x.n);
	}
	if (err == -ENOENT)
		return nothing_pinned(cli.pin_root);
	return err ? 1 : 0;
}

static int cmd_detach(int argc, char **argv)
{
	struct cli cli = {};
	int err;

	if (parse_opts(argc, argv, &cli, ALLOW(OPT_PIN_ROOT)))
		return EXIT_USAGE;
	if (need_root())
		return 1;
	err = sl_detach(cli.pin_root);
	if (err == -ENOENT)
		return nothing_pinned(cli.pin_root);
	if (err) {
		pr_warn("detach %s: %s\n", cli.pin_root, strerror(-err));
		return 1;
	}
	pr_info("detached; removed %s\n", cli.pin_root);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} cmds[] = {
		{ "run", cmd_run },
		{ "status", cmd_status },
		{ "detach", cmd_detach },
		{ "policy", cmd_policy },
		{ "conns", cmd_conns },
		{ "bench", cmd_bench },
		{ "gc", sl_gc_main },
	};
	size_t i;

	/* Global -v before the command. */
	while (argc > 1 && !strcmp(argv[1], "-v")) {
		sl_verbosity++;
		argc--;
		argv++;
	}
	sl_log_init_libbpf();
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "help") || !strcmp(argv[1], "--help") ||
	    !strcmp(argv[1], "-h")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "config"))
		return cmd_config(argc - 1, argv + 1);
	if (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version")) {
		printf("sidelane %s\n", SL_VERSION);
		return 0;
	}
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(argv[1], cmds[i].name))
			return cmds[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "sidelane: unknown command '%s'\n\n", argv[1]);
	usage(stderr);
	return EXIT_USAGE;
}
