// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* sidelane: the command line. `sidelane run|status|detach|bench`, in the
 * style of ip(8) and bpftool(8).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "sidelane.h"
#include "fastpath_user.h"
#include "bench.h"
#include "log.h"
#include "util.h"

/* Exit codes: 0 ok, 1 runtime failure, 2 usage error, 3 nothing found. */
enum { EXIT_USAGE = 2, EXIT_NOTFOUND = 3 };

/* How often `run` re-reads the host's addresses (also on SIGHUP). */
#define SL_ADDR_SYNC_SEC 5

static volatile sig_atomic_t stop_flag, resync_flag;

static void on_stop(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static void on_hup(int sig)
{
	(void)sig;
	resync_flag = 1;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: sidelane [-v] COMMAND [OPTIONS]\n"
		"\n"
		"Commands:\n"
		"  run --cgroup PATH [--pin-root DIR] [--exclude-ports P,P..] [--detach-on-exit]\n"
		"        load (or reuse what is pinned), attach to the cgroup v2 PATH\n"
		"        (absolute, or relative to the cgroup2 mount), stay in the\n"
		"        foreground. SIGTERM/SIGINT leave the pinned fast path in place\n"
		"        unless --detach-on-exit; SIGHUP re-reads host addresses.\n"
		"        --exclude-ports keeps connections to those service ports on\n"
		"        plain loopback (apps relying on what the fast path changes:\n"
		"        see README, \"Socket semantics\").\n"
		"  status [--pin-root DIR] [--json]\n"
		"        what is loaded and attached where, map fill levels, counters.\n"
		"  detach [--pin-root DIR]\n"
		"        remove every link, program and pin sidelane created.\n"
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

enum { OPT_PIN_ROOT = 256, OPT_CGROUP, OPT_DETACH, OPT_JSON, OPT_EXCLUDE };

static const struct option long_opts[] = {
	{ "pin-root", required_argument, NULL, OPT_PIN_ROOT },
	{ "cgroup", required_argument, NULL, OPT_CGROUP },
	{ "detach-on-exit", no_argument, NULL, OPT_DETACH },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "exclude-ports", required_argument, NULL, OPT_EXCLUDE },
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
};

/* Parse the options of a subcommand; `allowed` lists the OPT_* it takes. */
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
			break;
		}
		default:
			return -EINVAL;
		}
	}
	if (optind != argc) {
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

static int cmd_run(int argc, char **argv)
{
	struct cli cli = {};
	struct sigaction sa = {};
	int err;

	if (parse_opts(argc, argv, &cli,
		       ALLOW(OPT_PIN_ROOT) | ALLOW(OPT_CGROUP) | ALLOW(OPT_DETACH) |
			       ALLOW(OPT_EXCLUDE)))
		return EXIT_USAGE;
	if (!cli.cgroup) {
		fprintf(stderr, "sidelane run: --cgroup PATH is required\n");
		return EXIT_USAGE;
	}
	if (need_root())
		return 1;
	/* Signals only set flags; the loop below acts on them. */
	sa.sa_handler = on_stop;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = on_hup;
	sigaction(SIGHUP, &sa, NULL);

	err = sl_fp_attach(&(struct sl_fp_opts){
		.pin_root = cli.pin_root,
		.cgroup = cli.cgroup,
		.excluded_ports = cli.excluded_ports,
		.n_excluded_ports = cli.n_excluded_ports,
	});
	if (err)
		return 1;
	pr_info("running; SIGTERM leaves the fast path %s\n",
		cli.detach_on_exit ? "detached" : "pinned");
	while (!stop_flag) {
		struct timespec ts = { .tv_sec = SL_ADDR_SYNC_SEC };

		/* A signal cuts the sleep short with EINTR. */
		nanosleep(&ts, NULL);
		if (stop_flag)
			break;
		resync_flag = 0;
		err = sl_fp_sync_local_addrs(cli.pin_root);
		if (err == -ENOENT) {
			pr_warn("pins under %s are gone (detached by someone else?)\n",
				cli.pin_root);
			return 1;
		}
	}
	if (!cli.detach_on_exit) {
		pr_info("exiting; fast path stays pinned under %s\n", cli.pin_root);
		return 0;
	}
	err = sl_fp_detach(cli.pin_root);
	pr_info("exiting; fast path %s\n", err ? "detach failed" : "detached");
	return err ? 1 : 0;
}

#define COUNTER_FIELDS(X)                                                      \
	X(sock_inserted) X(sock_insert_failed) X(sock_removed)                 \
	X(conn_map_full) X(redirect_ok) X(redirect_failed) X(pass_plain)       \
	X(not_local) X(excluded) X(backlog_fallback) X(backlog_resumed)

static void print_status_json(const char *pin_root, const struct sl_fp_status *st)
{
	const struct sl_counters *c = &st->counters;
	uint32_t i;

	printf("{\"version\":\"%s\",\"pin_root\":\"%s\",\"attached\":%s,"
	       "\"cgroup\":\"%s\",\"cgroup_id\":%llu,"
	       "\"sockops_prog_id\":%u,\"sk_msg_prog_id\":%u,"
	       "\"sk_msg_attach\":\"%s\",\"backlog_bound\":%s,",
	       SL_VERSION, pin_root, st->attached ? "true" : "false",
	       st->cgroup_path, (unsigned long long)st->cgroup_id,
	       st->sockops_prog_id, st->sk_msg_prog_id,
	       st->sk_msg_link ? "link" : "prog_attach",
	       st->backlog_bound ? "true" : "false");
	printf("\"maps\":{\"%s\":{\"entries\":%u,\"max\":%u},"
	       "\"%s\":{\"entries\":%u,\"max\":%u},\"%s\":{\"entries\":%u}},",
	       SL_MAP_SOCKHASH, st->sockhash_entries, st->sockhash_max,
	       SL_MAP_CONNS, st->conns_entries, st->conns_max,
	       SL_MAP_LOCAL_ADDRS, st->local_addrs_entries);
	printf("\"excluded_ports\":[");
	for (i = 0; i < st->n_excluded_ports; i++)
		printf("%s%u", i ? "," : "", st->excluded_ports[i]);
	printf("],\"counters\":{");
#define X(f) printf("\"%s\":%llu%s", #f, (unsigned long long)c->f, \
		    strcmp(#f, "backlog_resumed") ? "," : "");
	COUNTER_FIELDS(X)
#undef X
	printf("}}\n");
}

static void print_status(const char *pin_root, const struct sl_fp_status *st)
{
	const struct sl_counters *c = &st->counters;
	uint32_t i;

	printf("sidelane %s, pin root %s\n", SL_VERSION, pin_root);
	if (st->attached)
		printf("fast path: attached to %s (cgroup id %llu)\n",
		       st->cgroup_path[0] ? st->cgroup_path : "?",
		       (unsigned long long)st->cgroup_id);
	else
		printf("fast path: NOT attached (maps pinned, no sockops link)\n");
	printf("  sockops prog id %u (cgroup link), sk_msg prog id %u (%s)\n",
	       st->sockops_prog_id, st->sk_msg_prog_id,
	       st->sk_msg_link ? "sockmap link" : "attached to map");
	if (st->backlog_bound)
		printf("  backlog bound: on, messages take TCP while over %u MiB unread\n",
		       SL_MAX_BACKLOG >> 20);
	else
		printf("  backlog bound: OFF (kernel before 6.15: no psock->msg_tot_len)\n");
	printf("maps:\n  %-16s %u/%u\n  %-16s %u/%u\n  %-16s %u\n",
	       SL_MAP_SOCKHASH, st->sockhash_entries, st->sockhash_max,
	       SL_MAP_CONNS, st->conns_entries, st->conns_max,
	       SL_MAP_LOCAL_ADDRS, st->local_addrs_entries);
	printf("excluded ports:");
	for (i = 0; i < st->n_excluded_ports; i++)
		printf(" %u", st->excluded_ports[i]);
	printf("%s\ncounters:\n", st->n_excluded_ports ? "" : " none");
#define X(f) printf("  %-20s %llu\n", #f, (unsigned long long)c->f);
	COUNTER_FIELDS(X)
#undef X
}

static int cmd_status(int argc, char **argv)
{
	struct sl_fp_status st;
	struct cli cli = {};
	int err;

	if (parse_opts(argc, argv, &cli, ALLOW(OPT_PIN_ROOT) | ALLOW(OPT_JSON)))
		return EXIT_USAGE;
	if (need_root())
		return 1;
	err = sl_fp_status(cli.pin_root, &st);
	if (err == -ENOENT) {
		if (cli.json)
			printf("{\"version\":\"%s\",\"pin_root\":\"%s\",\"attached\":false}\n",
			       SL_VERSION, cli.pin_root);
		else
			printf("sidelane: nothing pinned under %s\n", cli.pin_root);
		return EXIT_NOTFOUND;
	}
	if (err) {
		pr_warn("reading %s: %s\n", cli.pin_root, strerror(-err));
		return 1;
	}
	if (cli.json)
		print_status_json(cli.pin_root, &st);
	else
		print_status(cli.pin_root, &st);
	return 0;
}

static int cmd_detach(int argc, char **argv)
{
	struct cli cli = {};
	int err;

	if (parse_opts(argc, argv, &cli, ALLOW(OPT_PIN_ROOT)))
		return EXIT_USAGE;
	if (need_root())
		return 1;
	err = sl_fp_detach(cli.pin_root);
	if (err == -ENOENT) {
		printf("sidelane: nothing pinned under %s\n", cli.pin_root);
		return EXIT_NOTFOUND;
	}
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
		{ "bench", cmd_bench },
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
