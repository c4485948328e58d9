// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* `sidelane bench` (user side): latency, throughput and CPU cost of three
 * modes measured in one run, from one process tree. Two suites:
 *   fastpath (default), node-local over loopback:
 *     plain     loopback TCP, a cgroup with nothing attached;
 *     bare      bpf/bench_bare.bpf.c, a textbook sockops + sk_msg redirect,
 *               attached in-process to a second cgroup (nothing pinned);
 *     sidelane  the product (sl_fp_attach) on a third cgroup, own pin root,
 *               fastpath.app_sockets all: the opt-in app<->app redirect
 *               (the default admits no blocking or app<->app socket).
 *   sidecar, app -> sidecar -> upstream, the upstream on the far end of a
 *   veth into a network namespace the bench creates:
 *     direct    the client connects straight to the upstream;
 *     sidelane  the real `sidelane run` (this binary) captures the client's
 *               connect and relays it through its proxy (the upload half
 *               spliced where the client's socket is admitted);
 *     sl-relay  the same with proxy.splice false;
 *     haproxy   haproxy in mode tcp, which the client connects to explicitly,
 *               at its default thread count (a thread per CPU);
 *     haproxy1  the same with nbthread 1.
 *   tls, client -> proxy A -> mutual TLS 1.3 over the veth -> proxy B (in the
 *   namespace) -> server, for a pair of each of:
 *     sidelane  `sidelane run` twice: A's ambassador originates mTLS (a
 *               tls.mesh destination), B's inbound listener terminates it;
 *     haproxy   mode tcp, `server ... ssl` on A, `bind ... ssl` on B;
 *     stunnel   client mode on A, server mode on B;
 *   plus direct (plaintext, no proxy) for context. One set of certificates
 *   (a CA and two P-256 leaves with SPIFFE URI SANs, made with the openssl
 *   CLI) serves all three; each B is checked to refuse a client without one.
 * Every measurement forks a server and a client that move themselves into
 * their cgroups before creating sockets; their CPU time comes from wait4(),
 * a proxy's from its cgroup's cpu.stat, the sidecar suite's from the host's
 * /proc/stat (kworkers too). Rounds interleave the modes in
 * rotating order; the table shows medians.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench/internal.h"

/* Column, JSON key and --modes name; unique within a suite. */
const char *const mode_name[NR_MODES] = {
	"plain",    "bare",    "sidelane", "direct", "sidelane", "sl-relay",
	"haproxy",  "haproxy1", "sidelane", "haproxy", "stunnel",
};

const char *const cg_name[NR_CGS] = {
	"plain",      "bare",	   "sidelane",	 "direct",     "app",
	"haproxy-client", "upstream", "sidecar", "app-relay", "sidecar-relay",
	"haproxy",    "haproxy1",
	"tls-app-a",
	"tls-app-b",  "tls-client", "sidelane-a", "sidelane-b", "haproxy-a",
	"haproxy-b",  "stunnel-a",  "stunnel-b",
};

const struct proc_desc procs[NR_PROCS] = {
	[PROC_SIDELANE] = { CG_SIDECAR, 0 }, [PROC_RELAY] = { CG_SIDECAR_RELAY, 0 },
	[PROC_HAPROXY] = { CG_HAPROXY, 0 },
	[PROC_HAPROXY1] = { CG_HAPROXY1, 0 },
	[PROC_SL_A] = { CG_SL_A, 0 },	     [PROC_SL_B] = { CG_SL_B, 1 },
	[PROC_HAP_A] = { CG_HAP_A, 0 },	     [PROC_HAP_B] = { CG_HAP_B, 1 },
	[PROC_ST_A] = { CG_ST_A, 0 },	     [PROC_ST_B] = { CG_ST_B, 1 },
};

const struct mode_run_desc mode_run[NR_MODES] = {
	[MODE_PLAIN] = { CG_PLAIN, CG_PLAIN, { -1, -1 }, 0 },
	[MODE_BARE] = { CG_BARE, CG_BARE, { -1, -1 }, 0 },
	[MODE_SIDELANE] = { CG_SIDELANE, CG_SIDELANE, { -1, -1 }, 0 },
	[MODE_DIRECT] = { CG_DIRECT, CG_UPSTREAM, { -1, -1 }, 1 },
	[MODE_SIDECAR] = { CG_APP, CG_UPSTREAM, { PROC_SIDELANE, -1 }, 1 },
	[MODE_RELAY] = { CG_APP_RELAY, CG_UPSTREAM, { PROC_RELAY, -1 }, 1 },
	[MODE_HAPROXY] = { CG_HAP_CLIENT, CG_UPSTREAM, { PROC_HAPROXY, -1 }, 1 },
	[MODE_HAPROXY1] = { CG_HAP_CLIENT, CG_UPSTREAM, { PROC_HAPROXY1, -1 }, 1 },
	[MODE_TLS_SL] = { CG_TLS_APP_A, CG_TLS_APP_B, { PROC_SL_A, PROC_SL_B }, 1 },
	[MODE_TLS_HAP] = { CG_TLS_CLIENT, CG_UPSTREAM, { PROC_HAP_A, PROC_HAP_B }, 1 },
	[MODE_TLS_ST] = { CG_TLS_CLIENT, CG_UPSTREAM, { PROC_ST_A, PROC_ST_B }, 1 },
};

const struct suite_desc suites[NR_SUITES] = {
	[SUITE_FASTPATH] = {
		"fastpath", 3, 3, 0, 0,
		{ MODE_PLAIN, MODE_BARE, MODE_SIDELANE },
		{ { "sl/plain", "sidelane_over_plain", MODE_SIDELANE, MODE_PLAIN },
		  { "bare/pl", "bare_over_plain", MODE_BARE, MODE_PLAIN },
		  { "sl/bare", "sidelane_over_bare", MODE_SIDELANE, MODE_BARE } },
	},
	[SUITE_SIDECAR] = {
		"sidecar", 5, 5, 0, 1,
		{ MODE_DIRECT, MODE_SIDECAR, MODE_RELAY, MODE_HAPROXY,
		  MODE_HAPROXY1 },
		{ { "sl/dir", "sidelane_over_direct", MODE_SIDECAR, MODE_DIRECT },
		  { "sl/relay", "sidelane_over_relay", MODE_SIDECAR, MODE_RELAY },
		  { "hap/dir", "haproxy_over_direct", MODE_HAPROXY, MODE_DIRECT },
		  { "sl/hap", "sidelane_over_haproxy", MODE_SIDECAR, MODE_HAPROXY },
		  { "sl/hap1", "sidelane_over_haproxy1", MODE_SIDECAR,
		    MODE_HAPROXY1 } },
	},
	[SUITE_TLS] = {
		"tls", 4, 2, 1, 0,
		{ MODE_DIRECT, MODE_TLS_SL, MODE_TLS_HAP, MODE_TLS_ST },
		{ { "sl/hap", "sidelane_over_haproxy", MODE_TLS_SL, MODE_TLS_HAP },
		  { "sl/stun", "sidelane_over_stunnel", MODE_TLS_SL, MODE_TLS_ST } },
	},
};

const struct workload workloads[NR_WORKLOADS] = {
	{ "rr_64", "rr 64 B", WL_RR, 64, 1, SU_PLAIN, 1 },
	{ "rr_1k", "rr 1 KiB", WL_RR, 1024, 1, SU_PLAIN, 1 },
	{ "rr_1k_c" SL_XSTR(BENCH_RR_CLIENTS), "rr 1 KiB x" SL_XSTR(BENCH_RR_CLIENTS),
	  WL_RR, 1024, BENCH_RR_CLIENTS, SU_PLAIN, 1 },
	{ "rr_1k_c" SL_XSTR(BENCH_RR_CLIENTS_MANY),
	  "rr 1 KiB x" SL_XSTR(BENCH_RR_CLIENTS_MANY), WL_RR, 1024,
	  BENCH_RR_CLIENTS_MANY, 1u << SUITE_SIDECAR, 1 },
	{ "rr_1k_c" SL_XSTR(BENCH_RR_CONNS), "rr 1 KiB x" SL_XSTR(BENCH_RR_CONNS), WL_RR,
	  1024, BENCH_RR_PROCS, 1u << SUITE_SIDECAR,
	  BENCH_RR_CONNS / BENCH_RR_PROCS },
	{ "rr_16k", "rr 16 KiB", WL_RR, 16384, 1, SU_PLAIN, 1 },
	{ "stream_64k", "stream 64 KiB", WL_STREAM, BENCH_STREAM_CHUNK, 1,
	  SU_PLAIN | SU_TLS, 1 },
	/* both ways at once: the server echoes a stream of 64 KiB writes */
	{ "duplex_64k", "duplex 64 KiB", WL_DUPLEX, BENCH_STREAM_CHUNK, 1,
	  1u << SUITE_SIDECAR, 1 },
	/* a new connection per request: connect, request, response, close */
	{ "conn_64", "conn 64 B", WL_CONN, 64, BENCH_CONN_CLIENTS,
	  SU_TLS | (1u << SUITE_SIDECAR), 1 },
};

_Static_assert(sizeof(workloads) / sizeof(workloads[0]) == NR_WORKLOADS,
	       "NR_WORKLOADS counts the workloads");

const struct metric_desc metrics[NR_METRICS] = {
	/* conn: from connect() to the whole response */
	[M_P50] = { "p50_us", "p50 us", KIND(WL_RR) | KIND(WL_CONN), 1, 1 },
	[M_P99] = { "p99_us", "p99 us", KIND(WL_RR) | KIND(WL_CONN), 1, 1 },
	[M_TPS] = { "tps", "tx/s", KIND(WL_RR), 0, 0 },
	[M_CPU_100K] = { "cpu_s_per_100k_tx", "CPU s/100k tx", KIND(WL_RR), 1, 3 },
	[M_GBITS] = { "gbit_s", "Gbit/s", KIND(WL_STREAM) | KIND(WL_DUPLEX), 0, 2 },
	[M_CPU_GIB] = { "cpu_s_per_gib", "CPU s/GiB", KIND(WL_STREAM) | KIND(WL_DUPLEX),
			1, 3 },
	[M_CONNS] = { "conns_per_s", "conn/s", KIND(WL_CONN), 0, 0 },
	[M_CPU_CONN] = { "cpu_us_per_conn", "CPU us/conn", KIND(WL_CONN), 1, 1 },
	/* the relays' resident memory with the workload's connections open */
	[M_RSS] = { "relay_rss_mib", "relay RSS MiB", KIND(WL_RR), 1, 1 },
};

const char *const pin_name[NR_PINS] = { "none", "same", "split" };

struct bench_state bs = { .bare_msg_link = -1, .ns_fd = -1 };

volatile sig_atomic_t bench_stop;

void on_signal(int sig)
{
	(void)sig;
	bench_stop = 1;
}

/* ---- the command ------------------------------------------------------- */

/* Did one measurement of mode m take the path the mode stands for? */
static int carried(enum mode m, const struct accel *a)
{
	switch (m) {
	case MODE_BARE:
	case MODE_SIDELANE:
		return a->redirected > 0;
	case MODE_SIDECAR:
	case MODE_RELAY:
		return a->captured > 0;
	case MODE_HAPROXY:
	case MODE_HAPROXY1:
	case MODE_TLS_HAP:
		return a->served > 0;
	default:
		return 1;
	}
}

static int run_rounds(const struct bench_opts *o, struct accel *acc,
		      int *accel_ok)
{
	int order[NR_MODES], n = 0, i, m, err;
	struct measurement meas = {};
	unsigned int r;
	size_t w;

	for (m = 0; m < NR_MODES; m++)
		if (o->modes[m])
			order[n++] = m;
	for (r = 0; r < o->rounds; r++) {
		if (!o->json || sl_verbosity)
			pr_info("round %u/%u\n", r + 1, o->rounds);
		for (w = 0; w < NR_WORKLOADS; w++) {
			if (!o->workloads[w])
				continue;
			/* rotate so no mode always runs first or last */
			for (i = 0; i < n; i++) {
				m = order[(i + r + w) % n];
				if (bench_stop)
					return -EINTR;
				err = bench_measure(m, &workloads[w], o, &meas);
				if (err)
					return err;
				for (int k = 0; k < NR_METRICS; k++)
					*bench_res(w, m, k, r) = meas.v[k];
				accel_add(&acc[m], &meas.accel, 1);
				pr_debug("%s %s: redirected %llu, passed %llu, "
					 "captured %llu, served %llu\n",
					 mode_name[m], workloads[w].label,
					 (unsigned long long)meas.accel.redirected,
					 (unsigned long long)meas.accel.passed,
					 (unsigned long long)meas.accel.captured,
					 (unsigned long long)meas.accel.served);
				/* each measurement of a mode must have taken
				 * its path
				 */
				if (!carried(m, &meas.accel))
					accel_ok[m] = 0;
			}
		}
	}
	return 0;
}

/* What the fastpath suite's redirect counters say; its exit code. */
static int report_fastpath(const struct bench_opts *o, const struct accel *acc,
			   const int *accel_ok)
{
	int m, ret = 0;

	if (!o->json) {
		printf("\n");
		for (m = MODE_BARE; m <= MODE_SIDELANE; m++)
			if (o->modes[m])
				printf("%-8s redirected %llu messages, %llu on the "
				       "normal path\n",
				       mode_name[m],
				       (unsigned long long)acc[m].redirected,
				       (unsigned long long)acc[m].passed);
	}
	for (m = MODE_BARE; m <= MODE_SIDELANE; m++) {
		if (o->modes[m] && acc[m].passed * 100 > acc[m].redirected)
			pr_warn("%s: more than 1%% of the messages took the normal "
				"path\n",
				mode_name[m]);
		if (!o->modes[m] || accel_ok[m])
			continue;
		pr_warn("%s: a measurement redirected no message: that mode "
			"was not accelerated, its figures are plain TCP\n",
			mode_name[m]);
		ret = BENCH_EXIT_NOT_ACCEL;
	}
	return ret;
}

/* The session count of mode m's haproxy (who names it); the exit code. */
static int report_haproxy(const struct bench_opts *o, const struct accel *acc,
			  const int *accel_ok, enum mode m, const char *who)
{
	if (!o->modes[m])
		return 0;
	if (!o->json)
		printf("%s served %llu connections (frontend sessions, stats "
		       "socket)\n",
		       who, (unsigned long long)acc[m].served);
	if (accel_ok[m])
		return 0;
	pr_warn("%s: a measurement's connection was not served by %s\n",
		mode_name[m], who);
	return BENCH_EXIT_NOT_ACCEL;
}

/* What capture, the fast path on the app <-> proxy hop and haproxy's
 * session count say; the exit code.
 */
static int report_sidecar(const struct bench_opts *o, const struct accel *acc,
			  const int *accel_ok)
{
	const struct accel *sl = &acc[MODE_SIDECAR];
	char link[PATH_MAX + 32];
	int ret = 0, side_sockops;

	snprintf(link, sizeof(link), "%s/" SL_PIN_LINK_SOCKOPS_SIDECAR,
		 bs.pin_root);
	side_sockops = !access(link, F_OK);
	if (!o->json && o->modes[MODE_SIDECAR]) {
		printf("\nsidelane captured %llu connections to the upstream "
		       "(capture reason \"captured\")\n",
		       (unsigned long long)sl->captured);
		printf("sidelane app <-> proxy hop: %llu sockets into the "
		       "sockhash (sockops on the sidecar's cgroup: %s), %llu "
		       "messages redirected, %llu on the normal path, %llu "
		       "switches to TCP for a lagging reader\n",
		       (unsigned long long)sl->inserted,
		       side_sockops ? "yes" : "no",
		       (unsigned long long)sl->redirected,
		       (unsigned long long)sl->passed,
		       (unsigned long long)sl->fallback);
		printf("sidelane splice: up, %llu messages (%llu B) pushed "
		       "from the app's socket straight to the upstream, %llu "
		       "relayed (%llu as the upstream was full); down, %llu "
		       "skbs (%llu B) redirected from the upstream towards the "
		       "app, %llu relayed (%llu as the app's side was full), "
		       "%llu cut as retransmitted repeats\n",
		       (unsigned long long)sl->pushed,
		       (unsigned long long)sl->pushed_bytes,
		       (unsigned long long)sl->relayed_up,
		       (unsigned long long)sl->full_up,
		       (unsigned long long)sl->down,
		       (unsigned long long)sl->down_bytes,
		       (unsigned long long)sl->relayed_down,
		       (unsigned long long)sl->full_down,
		       (unsigned long long)sl->overlaps);
		if (!sl->redirected && !sl->pushed)
			printf("  the hop was not accelerated: no message was "
			       "redirected%s\n",
			       side_sockops ? "" :
					      " (the proxy's accepted socket is "
					      "in the sidecar's cgroup, never "
					      "in the sockhash)");
	}
	if (!o->json && o->modes[MODE_RELAY])
		printf("sl-relay (proxy.splice false) captured %llu connections, "
		       "pushed %llu messages past its proxy\n",
		       (unsigned long long)acc[MODE_RELAY].captured,
		       (unsigned long long)acc[MODE_RELAY].pushed);
	if ((o->modes[MODE_SIDECAR] && !accel_ok[MODE_SIDECAR]) ||
	    (o->modes[MODE_RELAY] && !accel_ok[MODE_RELAY])) {
		pr_warn("sidelane: a measurement's connection was not captured: "
			"its figures are the direct path\n");
		ret = BENCH_EXIT_NOT_ACCEL;
	}
	ret = report_haproxy(o, acc, accel_ok, MODE_HAPROXY, "haproxy") ?: ret;
	return report_haproxy(o, acc, accel_ok, MODE_HAPROXY1, "haproxy1") ?: ret;
}

/* What the fast paths on either side of sidelane's TLS hop and haproxy A's
 * session count say; the exit code. stunnel has no count to read: its
 * client reached the server through nothing but stunnel's listener.
 */
static int report_tls(const struct bench_opts *o, const struct accel *acc,
		      const int *accel_ok)
{
	const struct accel *sl = &acc[MODE_TLS_SL];
	struct sl_proxy_counters pc;

	if (!o->json)
		printf("\n");
	/* B's counters as its `sidelane status` shows them (a second old at
	 * most); setup's probes and the mTLS check are among them
	 */
	if (!o->json && o->modes[MODE_TLS_SL] && !sl_stats_read(bs.pin_ab[1], &pc))
		printf("sidelane B: %llu TLS handshakes, %llu of them resumed "
		       "(%.0f%%); kTLS %s\n",
		       (unsigned long long)pc.tls_ok,
		       (unsigned long long)pc.tls_resumed,
		       pc.tls_ok ? 100.0 * pc.tls_resumed / pc.tls_ok : 0.0,
		       pc.tls_ktls ? "available" : "unavailable");
	if (!o->json && o->modes[MODE_TLS_SL])
		printf("sidelane fast path beside the TLS hop: client <-> A %llu "
		       "messages redirected, %llu on the normal path; B <-> "
		       "server %llu redirected, %llu on the normal path\n",
		       (unsigned long long)sl->redirected,
		       (unsigned long long)sl->passed,
		       (unsigned long long)sl->redirected_b,
		       (unsigned long long)sl->passed_b);
	return report_haproxy(o, acc, accel_ok, MODE_TLS_HAP, "haproxy A");
}

/* The results table (NAN: not measured, "-" and null) and the mapping
 * the ends of a measurement share. 0 or -errno.
 */
static int alloc_results(const struct bench_opts *o)
{
	size_t n = (size_t)NR_WORKLOADS * NR_MODES * NR_METRICS * o->rounds;
	size_t i, cap;

	res_rounds = o->rounds;
	results = calloc(n, sizeof(*results));
	if (!results)
		return -ENOMEM;
	for (i = 0; i < n; i++)
		results[i] = NAN;
	cap = (size_t)o->duration_ms * BENCH_MAX_TPS / 1000;
	bs.shm_len = sizeof(struct bench_shm) + cap * sizeof(uint32_t);
	bs.shm = mmap(NULL, bs.shm_len, PROT_READ | PROT_WRITE,
		      MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (bs.shm == MAP_FAILED) {
		bs.shm = NULL;
		return -errno;
	}
	return 0;
}

/* Sockops programs inherited from an ancestor cgroup run in every mode:
 * said, and how many (for --json).
 */
static int check_inherited(const struct bench_opts *o)
{
	int m, inherited = 0;

	for (m = 0; m < NR_MODES && !inherited; m++)
		if (o->modes[m])
			inherited = inherited_sockops(bs.cgroup[mode_run[m].client]);
	if (inherited < 0) {
		pr_debug("query sockops programs: %s\n", strerror(-inherited));
		return 0;
	}
	if (inherited > 0) {
		m = suites[o->suite].modes[0];
		pr_warn("%d sockops program(s) inherited from an ancestor cgroup "
			"of %s run in every mode: %s is not %s\n",
			inherited, bs.cg_mount, mode_name[m], mode_name[m]);
	}
	return inherited;
}

int cmd_bench(int argc, char **argv)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP };
	struct sigaction sa = { .sa_handler = on_signal }, old_sa[3];
	struct accel acc[NR_MODES] = {};
	int accel_ok[NR_MODES];
	static int atexit_done;
	struct bench_opts o;
	int err, inherited = 0, ret = 1, m, plot_err = 0;
	size_t i;

	bench_stop = 0;
	err = parse_args(argc, argv, &o);
	if (err)
		return err > 0 ? 0 : BENCH_EXIT_USAGE;
	if (geteuid() != 0) {
		pr_warn("bench must run as root (loads BPF, creates cgroups)\n");
		return 1;
	}
	bs.owner = getpid();
	if (!atexit_done && !atexit(bench_cleanup))
		atexit_done = 1;
	/* no SA_RESTART: a blocking wait returns EINTR and sees the flag */
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, &old_sa[i]);
	for (m = 0; m < NR_MODES; m++)
		accel_ok[m] = 1;
	err = alloc_results(&o);
	if (err) {
		pr_warn("allocate results: %s\n", strerror(-err));
		goto out;
	}
	err = make_cgroups(&o);
	if (err)
		goto out;
	inherited = check_inherited(&o);
	if (o.modes[MODE_BARE] && (err = bare_attach()))
		goto out;
	if (o.modes[MODE_SIDELANE] && (err = sidelane_attach()))
		goto out;
	if (o.suite != SUITE_FASTPATH)
		err = relays_setup(&o);
	if (!err) {
		pr_debug("cgroups under %s, pin root %s\n", bs.cg_mount,
			 bs.pin_root);
		err = run_rounds(&o, acc, accel_ok);
	}
	if (err == -EINTR || bench_stop) {
		pr_warn("interrupted; cleaning up\n");
		ret = 130;
		goto out;
	}
	if (err)
		goto out;
	if (o.json)
		results_json(&o, acc, accel_ok, inherited);
	else
		results_table(&o);
	if (o.plot_dir)
		plot_err = bench_plot(&o);
	ret = o.suite == SUITE_FASTPATH ? report_fastpath(&o, acc, accel_ok) :
	      o.suite == SUITE_SIDECAR	? report_sidecar(&o, acc, accel_ok) :
					  report_tls(&o, acc, accel_ok);
	/* charts that could not be drawn fail the run, unless worse did */
	if (plot_err && !ret)
		ret = 1;
out:
	bench_cleanup();
	free(results);
	results = NULL;
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &old_sa[i], NULL);
	return ret;
}
