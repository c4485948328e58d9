// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* sidelane: the command line. `sidelane run|status|detach|bench`, in the
 * style of ip(8) and bpftool(8).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "sidelane.h"
#include "daemon.h"
#include "bench/bench.h"
#include "config/config.h"
#include "lib/log.h"
#include "lib/util.h"
#include "loader/admission_user.h"
#include "loader/capture_user.h"
#include "loader/detach.h"
#include "loader/fastpath_user.h"
#include "loader/gc.h"
#include "loader/pins.h"
#include "proxy/splice_user.h"
#include "report/status.h"

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

/* `conns --watch` runs until SIGINT. */
static volatile sig_atomic_t stop_flag;

static void on_stop(int sig)
{
	(void)sig;
	stop_flag = 1;
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
		"        remove the pin roots of deleted pods: each folder directly\n"
		"        under DIR (default " SL_BPFFS_DEFAULT ") named P... (default\n"
		"        \"" SL_GC_PREFIX_DEFAULT "\") whose sockops link serves a cgroup\n"
		"        that is gone and none of whose other links serves a live cgroup\n"
		"        or network namespace; every other folder is listed as skipped.\n"
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
	OPT_DRY_RUN,
	OPT_BPFFS,
	OPT_PREFIX,
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
	{ "dry-run", no_argument, NULL, OPT_DRY_RUN },
	{ "bpffs", required_argument, NULL, OPT_BPFFS },
	{ "prefix", required_argument, NULL, OPT_PREFIX },
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
	int dry_run;
	const char *bpffs, *prefix; /* gc */
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
		case OPT_DRY_RUN:
			cli->dry_run = 1;
			break;
		case OPT_BPFFS:
			cli->bpffs = optarg;
			break;
		case OPT_PREFIX:
			cli->prefix = optarg;
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

static int cmd_run(int argc, char **argv)
{
	char cerr[SL_CFG_ERR_LEN];
	struct sl_config *cfg;
	struct cli cli = {};
	int ret;

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
	ret = need_root() ? 1 : sl_daemon_main(cfg, &(struct sl_daemon_opts){
		.sidecar_cgroup = cli.sidecar_cgroup,
		.detach_on_exit = cli.detach_on_exit,
	});
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

static void policy_usage(void)
{
	fprintf(stderr,
		"Usage: sidelane policy list [--json]\n"
		"       sidelane policy load FILE\n"
		"       sidelane policy add ID allow|deny CIDR [PORTS]   e.g. add 10 deny 10.0.0.0/8 80,8000-8080\n"
		"       sidelane policy del ID\n"
		"       (each takes --pin-root DIR)\n");
}

/* `policy add|del` on the live rules read into pol. 0, or the exit status
 * (what is wrong said).
 */
static int policy_edit(const char *pin_root, const char *verb, char **args,
		       int nargs, struct sl_policy *pol)
{
	static struct sl_policy_hit hits[SL_CFG_MAX_RULES + 1];
	unsigned int n_hits, i;
	struct sl_rule r;
	int configured;
	uint64_t id;

	if (sl_policy_read(pin_root, pol, &configured, hits,
			   SL_CFG_MAX_RULES + 1, &n_hits))
		return 1;
	if (!strcmp(verb, "add")) {
		if (parse_rule_args(args, nargs, &r)) {
			policy_usage();
			return EXIT_USAGE;
		}
		for (i = 0; i < pol->n_rules; i++)
			if (pol->rules[i].id == r.id) {
				fprintf(stderr, "sidelane policy add: rule %u exists\n",
					r.id);
				return EXIT_USAGE;
			}
		if (pol->n_rules == SL_CFG_MAX_RULES) {
			fprintf(stderr, "sidelane policy add: %u rules already\n",
				SL_CFG_MAX_RULES);
			return 1;
		}
		pol->rules[pol->n_rules++] = r;
		return 0;
	}
	if (nargs != 1 || sl_parse_u64(args[0], 1, UINT32_MAX, &id)) {
		policy_usage();
		return EXIT_USAGE;
	}
	for (i = 0; i < pol->n_rules && pol->rules[i].id != id; i++)
		;
	if (i == pol->n_rules) {
		fprintf(stderr, "sidelane policy del: no rule %llu\n",
			(unsigned long long)id);
		return EXIT_USAGE;
	}
	memmove(&pol->rules[i], &pol->rules[i + 1],
		(pol->n_rules - i - 1) * sizeof(pol->rules[0]));
	pol->n_rules--;
	return 0;
}

static int cmd_policy(int argc, char **argv)
{
	static struct sl_policy pol;
	char err[SL_CFG_ERR_LEN] = "";
	const char *verb = argc > 1 ? argv[1] : "list";
	struct cli cli = {};
	int ret, lock, nargs;

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
		return ret ? 1 : 0;
	}
	if (strcmp(verb, "load") && strcmp(verb, "add") && strcmp(verb, "del")) {
		policy_usage();
		return EXIT_USAGE;
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
	if (!strcmp(verb, "load") && nargs != 1) {
		policy_usage();
		ret = EXIT_USAGE;
	} else if (!strcmp(verb, "load")) {
		/* A bad file stops here: the live rules are not touched. */
		ret = sl_policy_load(argv[optind], &pol, err, sizeof(err));
		if (ret)
			fprintf(stderr, "sidelane policy load: %s\n", err);
		ret = ret ? EXIT_USAGE : 0;
	} else {
		ret = policy_edit(cli.pin_root, verb, argv + optind, nargs, &pol);
	}
	if (!ret) {
		ret = sl_policy_apply_locked(cli.pin_root, &pol, err, sizeof(err));
		if (ret)
			fprintf(stderr, "sidelane policy %s: %s; the previous rules stay in force\n",
				verb, err[0] ? err : strerror(-ret));
		else
			pr_info("policy %s: %u rules in force\n", verb, pol.n_rules);
		ret = ret ? 1 : 0;
	}
	sl_policy_unlock(lock);
	return ret;
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

/* `sidelane gc`: every failure is in its report already. */
static int cmd_gc(int argc, char **argv)
{
	struct cli cli = { .bpffs = SL_BPFFS_DEFAULT,
			   .prefix = SL_GC_PREFIX_DEFAULT };
	const char *bad = NULL;

	if (parse_opts(argc, argv, &cli,
		       ALLOW(OPT_DRY_RUN) | ALLOW(OPT_BPFFS) | ALLOW(OPT_PREFIX)))
		return EXIT_USAGE;
	if (cli.bpffs[0] != '/')
		bad = "--bpffs takes an absolute path";
	else if (!cli.prefix[0] || strchr(cli.prefix, '/'))
		bad = "--prefix takes a non-empty name without '/'";
	if (bad) {
		fprintf(stderr, "sidelane gc: %s\n", bad);
		return EXIT_USAGE;
	}
	if (need_root())
		return 1;
	return sl_gc(cli.bpffs, cli.prefix, cli.dry_run, stdout) < 0 ? 1 : 0;
}

static int cmd_version(int argc, char **argv)
{
	(void)argc, (void)argv;
	printf("sidelane %s\n", SL_VERSION);
	return 0;
}

static int cmd_help(int argc, char **argv)
{
	(void)argc, (void)argv;
	usage(stdout);
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
		{ "gc", cmd_gc },
		{ "config", cmd_config },
		{ "version", cmd_version },
		{ "--version", cmd_version },
		{ "help", cmd_help },
		{ "--help", cmd_help },
		{ "-h", cmd_help },
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
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(argv[1], cmds[i].name))
			return cmds[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "sidelane: unknown command '%s'\n\n", argv[1]);
	usage(stderr);
	return EXIT_USAGE;
}
