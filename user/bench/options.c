// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* `sidelane bench`, the command line (see bench.c). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench/internal.h"

/* ---- command line ----------------------------------------------------- */

/* The whole --help text, one string. */
static void bench_usage(FILE *f)
{
	fprintf(f,
		"Usage: sidelane bench [--suite fastpath|sidecar|tls] [--rounds N]\n"
		"                      [--duration-ms MS] [--quick] [--modes LIST]\n"
		"                      [--workloads LIST] [--pin none|same|split] [--json]\n"
		"                      [--plot DIR]\n"
		"\n"
		"Three or four modes measured in one run, interleaved. Suites:\n"
		"fastpath (default): node-local over 127.0.0.1\n"
		"  plain     loopback TCP, nothing attached\n"
		"  bare      a textbook sockops + sk_msg redirect (bench_bare)\n"
		"  sidelane  the product's fast path (own pin root, removed after)\n"
		"            with fastpath.app_sockets all: app<->app redirect is\n"
		"            opt-in (the default admits no such pair)\n"
		"sidecar: app -> sidecar -> upstream. The upstream server listens on\n"
		"" BENCH_NS_IP ", the far end of a veth into a network namespace the\n"
		"bench creates and removes (198.18.79.0/30 must be unused here).\n"
		"  direct    the client connects straight to the upstream\n"
		"  sidelane  `sidelane run` (this binary, own cgroups and pin root)\n"
		"            captures the client's connect and relays it through its\n"
		"            proxy, the upload half spliced where the client's socket\n"
		"            is admitted\n"
		"  sl-relay  the same with proxy.splice false: every byte through\n"
		"            the proxy\n"
		"  haproxy   haproxy (Debian package, `make deps`) in mode tcp on\n"
		"            127.0.0.1 at its default thread count, default buffers;\n"
		"            the client connects to it explicitly: haproxy has no\n"
		"            transparent capture without iptables\n"
		"  haproxy1  the same with nbthread 1\n"
		"tls: client -> proxy A (127.0.0.1) -> mutual TLS 1.3 over the same\n"
		"veth -> proxy B (" BENCH_NS_IP ", in the namespace) -> server there.\n"
		"Certificates made with the openssl CLI (a CA, P-256 leaves with\n"
		"SPIFFE IDs) serve every pair; each B must refuse a client without one.\n"
		"  direct    plaintext, straight to the server (context, no proxy)\n"
		"  sidelane  two `sidelane run`: A's ambassador originates mTLS to a\n"
		"            tls.mesh destination, B's inbound listener terminates it\n"
		"  haproxy   mode tcp, nbthread 1: `server ... ssl ... verify\n"
		"            required` on A, `bind ... ssl ... verify required` on B\n"
		"  stunnel   (Debian package stunnel4) client mode on A, server mode\n"
		"            with verifyChain and requireCert on B\n"
		"Workloads: request/response (one outstanding, echo) of 64 B, 1 KiB\n"
		"and 16 KiB: p50/p99 latency, tx/s, CPU s per 100k tx; streaming\n"
		"64 KiB writes: Gbit/s, CPU s per GiB; tls only, a connection per\n"
		"request (" SL_XSTR(BENCH_CONN_CLIENTS) " closed-loop clients: connect, 64 B request, 64 B\n"
		"response, close): conn/s, p50/p99 from connect() to the response,\n"
		"CPU us per connection. CPU is both ends' user+sys time (wait4); in\n"
		"the sidecar suite the whole host's busy time (/proc/stat: it holds\n"
		"the kworkers that send spliced bytes); in the tls suite the two\n"
		"proxies' cgroups alone. On a busy host it is steadier than\n"
		"wall-clock figures (but for the sidecar suite's).\n"
		"\n"
		"Options:\n"
		"  --suite S         fastpath (default), sidecar or tls\n"
		"  --rounds N        interleaved rounds; medians shown (1-%d, default %d)\n"
		"  --duration-ms MS  length of each measurement (%d-%d, default %d)\n"
		"  --quick           smoke test: %d rounds of %d ms unless given\n"
		"  --modes LIST      comma-separated subset of the suite's modes\n"
		"                    (plain,bare,sidelane; direct,sidelane,sl-relay,\n"
		"                    haproxy,haproxy1;\n"
		"                    direct,sidelane,haproxy,stunnel)\n"
		"  --workloads LIST  comma-separated subset of the suite's workloads\n"
		"                    (rr_64,rr_1k,rr_1k_c16,rr_16k,stream_64k; sidecar also\n"
		"                    rr_1k_c64, duplex_64k; tls: stream_64k,\n"
		"                    conn_64)\n"
		"  --pin none|same|split  server and client CPUs: scheduler's choice\n"
		"                    (default), both on one CPU, or on two CPUs; a\n"
		"                    sidecar or TLS proxy is never pinned\n"
		"  --json            one JSON object on stdout (medians, ratios, rounds)\n"
		"  SIDELANE_BENCH_KEEP=1 (environment) keeps the relays' configs\n"
		"                    and logs in the run's temporary folder\n"
		"  --plot DIR        also SVG charts in DIR, drawn by gnuplot\n"
		"                    (gnuplot-nox): a latency CDF per rr and conn\n"
		"                    workload (each mode a line), throughput and CPU\n"
		"                    bars relative to the first mode; each chart's\n"
		"                    .dat and .gp beside it\n"
		"  --client block|nonblock  clients' sockets: blocking (default) or\n"
		"                    non-blocking from before connect(), driven by\n"
		"                    poll() (what admission may accelerate)\n"
		"  --app-sockets M   sidecar: the sidelane mode's fastpath.app_sockets\n"
		"                    (default safe; send admits a non-blocking client\n"
		"                    on any kernel, and its upload half is spliced)\n"
		"  -v                more logging (repeatable)\n"
		"\n"
		"Examples:\n"
		"  sidelane bench\n"
		"  sidelane bench --quick\n"
		"  sidelane bench --rounds 9 --duration-ms 2000 --json > bench.json\n"
		"  sidelane bench --modes plain,bare --workloads rr_1k,stream_64k\n"
		"  sidelane bench --pin split     # steadier rr latency on a small VM\n"
		"  sidelane bench --suite sidecar\n"
		"  make bench BENCH_ARGS='--suite sidecar --quick'\n"
		"  sidelane bench --suite tls --modes direct,haproxy,stunnel --quick\n"
		"\n"
		"Exit codes: 0 ok, 1 failure, 2 usage error, 3 a mode did not carry\n"
		"the traffic: a bare or sidelane fastpath measurement redirected no\n"
		"message, a sidecar measurement was not captured by sidelane or\n"
		"not served by haproxy, or a tls measurement not served by haproxy A.\n",
		BENCH_ROUNDS_MAX, BENCH_ROUNDS_DEFAULT, BENCH_DURATION_MIN_MS,
		BENCH_DURATION_MAX_MS, BENCH_DURATION_DEFAULT_MS,
		BENCH_QUICK_ROUNDS, BENCH_QUICK_DURATION_MS);
}

/* Parse a comma-separated subset of the n names[] into sel[].
 * 0, or -EINVAL for an unknown name or an empty set.
 */
static int parse_set(const char *arg, const char *const *names, int n,
		     int *sel)
{
	char *copy = strdup(arg), *tok, *save = NULL;
	int i, found, err = 0;

	if (!copy)
		return -ENOMEM;
	memset(sel, 0, n * sizeof(*sel));
	for (tok = strtok_r(copy, ",", &save); tok && !err;
	     tok = strtok_r(NULL, ",", &save)) {
		for (i = 0, found = 0; i < n; i++)
			if (!strcmp(tok, names[i]))
				sel[i] = found = 1;
		if (!found)
			err = -EINVAL;
	}
	free(copy);
	for (i = 0, found = 0; i < n; i++)
		found |= sel[i];
	return err ? err : found ? 0 : -EINVAL;
}

/* The first two CPUs this process may run on: server, then client. */
static int pick_cpus(struct bench_opts *o)
{
	cpu_set_t set;
	int cpu, n = 0;

	if (sched_getaffinity(0, sizeof(set), &set))
		return -errno;
	for (cpu = 0; cpu < CPU_SETSIZE && n < 2; cpu++)
		if (CPU_ISSET(cpu, &set))
			o->pin_cpu[n++] = cpu;
	if (n == 0 || (o->pin == PIN_SPLIT && n < 2)) {
		pr_warn("--pin %s: not enough CPUs allowed\n", pin_name[o->pin]);
		return -EINVAL;
	}
	if (o->pin == PIN_SAME)
		o->pin_cpu[1] = o->pin_cpu[0];
	return 0;
}

enum {
	OPT_ROUNDS = 256,
	OPT_DURATION,
	OPT_QUICK,
	OPT_MODES,
	OPT_WORKLOADS,
	OPT_PIN,
	OPT_JSON,
	OPT_PLOT,
	OPT_SUITE,
	OPT_CLIENT,
	OPT_APP_SOCKETS
};

/* arg (NULL: all), a comma-separated subset of the n names[], into sel[];
 * what names the option. 0 or -EINVAL, said with the names to choose from.
 */
static int parse_subset(const char *what, const char *arg,
			const char *const *names, int n, int *sel)
{
	char list[256] = "";
	size_t len = 0;
	int i, err = 0;

	for (i = 0; i < n; i++)
		sel[i] = 1;
	if (arg)
		err = parse_set(arg, names, n, sel);
	if (!err)
		return 0;
	for (i = 0; i < n && len < sizeof(list); i++)
		len += snprintf(list + len, sizeof(list) - len, "%s%s",
				i ? "," : "", names[i]);
	pr_warn("%s: '%s': give a comma-separated subset of %s\n", what, arg,
		list);
	return err;
}

/* The suite's modes named in arg (NULL: all of them) into o->modes. */
static int parse_modes(const char *arg, struct bench_opts *o)
{
	const struct suite_desc *su = &suites[o->suite];
	const char *names[SUITE_MODES_MAX] = {};
	int sel[SUITE_MODES_MAX], i;

	for (i = 0; i < su->nmodes; i++)
		names[i] = mode_name[su->modes[i]];
	if (parse_subset("--modes", arg, names, su->nmodes, sel))
		return -EINVAL;
	memset(o->modes, 0, sizeof(o->modes));
	for (i = 0; i < su->nmodes; i++)
		o->modes[su->modes[i]] = sel[i];
	return 0;
}

/* The suite's workloads named in arg (NULL: all of them) into
 * o->workloads.
 */
static int parse_workloads(const char *arg, struct bench_opts *o)
{
	int idx[NR_WORKLOADS], sel[NR_WORKLOADS], i, n = 0;
	const char *names[NR_WORKLOADS] = {};

	for (i = 0; i < (int)NR_WORKLOADS; i++)
		if (workloads[i].suites & (1u << o->suite)) {
			idx[n] = i;
			names[n++] = workloads[i].name;
		}
	if (parse_subset("--workloads", arg, names, n, sel))
		return -EINVAL;
	memset(o->workloads, 0, sizeof(o->workloads));
	for (i = 0; i < n; i++)
		o->workloads[idx[i]] = sel[i];
	return 0;
}

/* Long, but flat: one case per option, then their combinations checked. */
int parse_args(int argc, char **argv, struct bench_opts *o)
{
	static const struct option longopts[] = {
		{ "rounds", required_argument, NULL, OPT_ROUNDS },
		{ "duration-ms", required_argument, NULL, OPT_DURATION },
		{ "quick", no_argument, NULL, OPT_QUICK },
		{ "modes", required_argument, NULL, OPT_MODES },
		{ "workloads", required_argument, NULL, OPT_WORKLOADS },
		{ "pin", required_argument, NULL, OPT_PIN },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "plot", required_argument, NULL, OPT_PLOT },
		{ "suite", required_argument, NULL, OPT_SUITE },
		{ "client", required_argument, NULL, OPT_CLIENT },
		{ "app-sockets", required_argument, NULL, OPT_APP_SOCKETS },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	const char *modes_arg = NULL, *wl_arg = NULL;
	int have_rounds = 0, have_dur = 0, quick = 0, c, i;
	uint64_t v;

	*o = (struct bench_opts){ .rounds = BENCH_ROUNDS_DEFAULT,
				  .duration_ms = BENCH_DURATION_DEFAULT_MS };
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "hv", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_ROUNDS:
			if (sl_parse_u64(optarg, 1, BENCH_ROUNDS_MAX, &v)) {
				pr_warn("--rounds: '%s' is not a whole number in 1-%d\n",
					optarg, BENCH_ROUNDS_MAX);
				return -EINVAL;
			}
			o->rounds = v;
			have_rounds = 1;
			break;
		case OPT_DURATION:
			if (sl_parse_u64(optarg, BENCH_DURATION_MIN_MS,
					 BENCH_DURATION_MAX_MS, &v)) {
				pr_warn("--duration-ms: '%s' is not a whole number "
					"in %d-%d\n",
					optarg, BENCH_DURATION_MIN_MS,
					BENCH_DURATION_MAX_MS);
				return -EINVAL;
			}
			o->duration_ms = v;
			have_dur = 1;
			break;
		case OPT_QUICK:
			quick = 1;
			break;
		case OPT_MODES:
			/* checked against the suite, which may come after */
			modes_arg = optarg;
			break;
		case OPT_SUITE:
			for (i = 0; i < NR_SUITES; i++)
				if (!strcmp(optarg, suites[i].name))
					break;
			if (i == NR_SUITES) {
				pr_warn("--suite: '%s': give fastpath, sidecar or "
					"tls\n",
					optarg);
				return -EINVAL;
			}
			o->suite = i;
			break;
		case OPT_WORKLOADS:
			wl_arg = optarg; /* like --modes */
			break;
		case OPT_PIN:
			for (i = 0; i < NR_PINS; i++)
				if (!strcmp(optarg, pin_name[i]))
					break;
			if (i == NR_PINS) {
				pr_warn("--pin: '%s': give none, same or split\n",
					optarg);
				return -EINVAL;
			}
			o->pin = i;
			break;
		case OPT_JSON:
			o->json = 1;
			break;
		case OPT_PLOT:
			o->plot_dir = optarg;
			break;
		case OPT_CLIENT:
			if (strcmp(optarg, "block") && strcmp(optarg, "nonblock")) {
				pr_warn("--client: '%s': give block or nonblock\n",
					optarg);
				return -EINVAL;
			}
			bs.client_nb = !strcmp(optarg, "nonblock");
			break;
		case OPT_APP_SOCKETS:
			if (sl_app_sockets_parse(optarg, &o->app_sockets)) {
				pr_warn("--app-sockets: '%s': give safe, send, all or "
					"none\n", optarg);
				return -EINVAL;
			}
			bs.app_sockets = o->app_sockets;
			break;
		case 'v':
			sl_verbosity++;
			break;
		case 'h':
			bench_usage(stdout);
			return 1;
		default:
			pr_warn("bench: unknown option '%s'\n", argv[optind - 1]);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		pr_warn("bench: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	if (parse_modes(modes_arg, o) || parse_workloads(wl_arg, o))
		return -EINVAL;
	if (o->pin && pick_cpus(o))
		return -EINVAL;
	if (quick && !have_rounds)
		o->rounds = BENCH_QUICK_ROUNDS;
	if (quick && !have_dur)
		o->duration_ms = BENCH_QUICK_DURATION_MS;
	return 0;
}
