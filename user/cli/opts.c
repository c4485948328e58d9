// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The option parser, the usage text and the conventions every command
 * shares (see cli.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli/cli.h"
#include "config/config.h"
#include "loader/gc.h"
#include "lib/log.h"
#include "lib/util.h"

/* Every command that finds no pin folder says so the same way: on stderr,
 * exit 3 (`status --json` also prints its "attached":false object).
 */
int nothing_pinned(const char *pin_root)
{
	fprintf(stderr, "sidelane: nothing pinned under %s\n", pin_root);
	return EXIT_NOTFOUND;
}

void usage(FILE *f)
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
		"        pinned unless --detach-on-exit. --config FILE is followed: a\n"
		"        changed file is applied without a restart, or refused whole\n"
		"        (README, \"Live configuration\"). SIGHUP re-reads it, the TLS\n"
		"        files and the host addresses.\n"
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
		"  reload [--pin-root DIR]\n"
		"        have the running sidelane read its --config now; print the\n"
		"        version it runs, or why the file's was refused (exit 1).\n"
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

int need_root(void)
{
	if (geteuid() == 0)
		return 0;
	pr_warn("must run as root (needs CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN "
		"to load programs, attach to cgroups and pin in the bpffs)\n");
	return -EPERM;
}

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

/* Long, but flat: one case per option of every command. */
int parse_opts(int argc, char **argv, struct cli *cli,
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
