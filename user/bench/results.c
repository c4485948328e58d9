// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* `sidelane bench`, tables, JSON and charts (see bench.c). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench/internal.h"

/* ---- results ---------------------------------------------------------- */

/* results[w][m][metric][round] */
double *results;
unsigned int res_rounds;

double *bench_res(size_t w, int m, int k, unsigned int r)
{
	return &results[((w * NR_MODES + m) * NR_METRICS + k) * res_rounds + r];
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Median of the rounds that produced a value; NAN when none did. */
static double median(size_t w, int m, int k)
{
	double v[BENCH_ROUNDS_MAX];
	unsigned int r, n = 0;

	for (r = 0; r < res_rounds; r++)
		if (!isnan(*bench_res(w, m, k, r)))
			v[n++] = *bench_res(w, m, k, r);
	if (!n)
		return NAN;
	qsort(v, n, sizeof(v[0]), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double ratio(double a, double b)
{
	return isnan(a) || isnan(b) || b == 0 ? NAN : a / b;
}

static const char *fmt(char *buf, size_t len, double v, int prec)
{
	if (isnan(v))
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%.*f", prec, v);
	return buf;
}

/* The exact command line, from /proc/self/cmdline, into buf. */
static const char *cmdline(char *buf, size_t len)
{
	ssize_t n = -1, i;
	int fd;

	fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, buf, len - 1);
		close(fd);
	}
	if (n <= 0)
		n = 0;
	for (i = 0; i < n - 1; i++)
		if (!buf[i])
			buf[i] = ' ';
	buf[n] = '\0';
	return buf;
}

/* The sidecar suite's set-up, in words above its table. */
static void about_sidecar(const struct bench_opts *o)
{
	int m;

	printf("app -> sidecar -> upstream " BENCH_NS_IP ":%d, the far end "
	       "of a veth into namespace %s\n",
	       BENCH_UPSTREAM_PORT, bs.netns);
	printf("CPU: the whole host's busy time (/proc/stat), so kernel "
	       "work no process is charged for counts too (kworkers, "
	       "softirqs); the sidecar itself is not pinned\n");
	printf("clients: %s sockets; sidelane: fastpath.app_sockets %s\n",
	       bs.client_nb ? "non-blocking (poll)" : "blocking",
	       sl_app_sockets_name[bs.app_sockets]);
	for (m = MODE_HAPROXY; m <= MODE_HAPROXY1; m++)
		if (o->modes[m])
			printf("%s: mode tcp, %s, %u thread%s (show info), "
			       "default buffers, on 127.0.0.1:%u\n",
			       mode_name[m],
			       m == MODE_HAPROXY1 ? "nbthread 1" :
						    "no nbthread line",
			       bs.nbthread[mode_run[m].proc[0]],
			       bs.nbthread[mode_run[m].proc[0]] == 1 ? "" : "s",
			       bs.front_port[m]);
	if (o->modes[MODE_HAPROXY] || o->modes[MODE_HAPROXY1])
		printf("  the client connects to haproxy explicitly (no "
		       "transparent capture without iptables; sidelane "
		       "captures the client's connect)\n");
}

/* The TLS suite's set-up, in words above its table. */
static void about_tls(void)
{
	printf("client -> A on 127.0.0.1 -> mutual TLS 1.3 over a veth -> "
	       "B on " BENCH_NS_IP " in namespace %s -> server "
	       "127.0.0.1:%d there\n",
	       bs.netns, BENCH_UPSTREAM_PORT);
	printf("certificates: one CA, A " BENCH_ID_A ", B " BENCH_ID_B
	       ", EC P-256, the same files for every pair; each B "
	       "refused a client without one\n");
	printf("TLS 1.3, " BENCH_TLS_SUITE " (sidelane's preference; set "
	       "for haproxy and stunnel), each proxy's default session "
	       "resumption\n");
	printf("conn: %d clients at once, closed loops of connect, 64 B "
	       "request, 64 B response, close (one mTLS handshake "
	       "between A and B each); p50/p99 from connect() to the "
	       "whole response\n",
	       BENCH_CONN_CLIENTS);
	printf("CPU: the proxies' cgroups (cpu.stat), A + B, none for "
	       "direct; sidelane and haproxy (nbthread 1) one thread "
	       "each, stunnel a thread per connection\n");
}

/* What the many-connection workloads do, in words. */
static void about_workloads(const struct bench_opts *o)
{
	size_t w;

	for (w = 0; w < NR_WORKLOADS; w++)
		if (o->workloads[w] && workloads[w].kind == WL_RR &&
		    workloads[w].clients > 1 && workloads[w].conns <= 1)
			printf("%s: %d clients at once, a connection each, closed "
			       "loops of %zu B request/response; p50/p99 over all "
			       "their transactions, tx/s their sum\n",
			       workloads[w].label, workloads[w].clients,
			       workloads[w].size);
		else if (o->workloads[w] && workloads[w].conns > 1)
			printf("%s: %d connections at once, %d client processes "
			       "each driving %d with one epoll loop (as many "
			       "servers), closed loops of %zu B request/response\n",
			       workloads[w].label,
			       workloads[w].clients * workloads[w].conns,
			       workloads[w].clients, workloads[w].conns,
			       workloads[w].size);
}

/* One row per workload and metric: the modes' medians and the ratios. */
static void table_rows(const struct bench_opts *o)
{
	const struct suite_desc *su = &suites[o->suite];
	double med[NR_MODES];
	char v[32];
	size_t w;
	int k, i;

	printf("%-14s %-14s %-6s", "workload", "metric", "better");
	for (i = 0; i < su->nmodes; i++)
		printf(" %10s", mode_name[su->modes[i]]);
	for (i = 0; i < su->nratios; i++)
		printf(" %8s", su->ratios[i].label);
	printf("\n");
	for (w = 0; w < NR_WORKLOADS; w++) {
		if (!o->workloads[w])
			continue;
		for (k = 0; k < NR_METRICS; k++) {
			bool any = false;

			if (!(metrics[k].kinds & KIND(workloads[w].kind)))
				continue;
			/* a row no mode has (relay RSS without relays) */
			for (i = 0; i < su->nmodes; i++)
				any |= !isnan(median(w, su->modes[i], k));
			if (!any)
				continue;
			printf("%-14s %-14s %-6s", workloads[w].label,
			       metrics[k].label,
			       metrics[k].lower_better ? "lower" : "higher");
			for (i = 0; i < su->nmodes; i++) {
				med[su->modes[i]] = median(w, su->modes[i], k);
				printf(" %10s", fmt(v, sizeof(v), med[su->modes[i]],
						    metrics[k].prec));
			}
			for (i = 0; i < su->nratios; i++)
				printf(" %8s",
				       fmt(v, sizeof(v),
					   ratio(med[su->ratios[i].num],
						 med[su->ratios[i].den]),
					   2));
			printf("\n");
		}
	}
}

void results_table(const struct bench_opts *o)
{
	const struct suite_desc *su = &suites[o->suite];
	char cmd[1024];
	int i;

	printf("sidelane bench%s%s: %u round%s x %u ms per measurement, medians; "
	       "modes interleaved in rotating order; CPU pinning: %s\n",
	       o->suite ? " --suite " : "", o->suite ? su->name : "", o->rounds,
	       o->rounds == 1 ? "" : "s", o->duration_ms, pin_name[o->pin]);
	printf("command: %s\n", cmdline(cmd, sizeof(cmd)));
	for (i = 0; i < bs.nver; i++)
		printf("%s  %-9s %s\n", i ? "" : "versions:\n", bs.ver[i].name,
		       bs.ver[i].text);
	if (o->suite == SUITE_SIDECAR)
		about_sidecar(o);
	about_workloads(o);
	if (o->suite == SUITE_TLS)
		about_tls();
	printf("better: latency and CPU lower (ratio < 1 is better), tx/s, "
	       "conn/s and Gbit/s higher (ratio > 1 is better)\n\n");
	table_rows(o);
}

static void json_num(double v)
{
	if (isnan(v))
		printf("null");
	else
		printf("%.6g", v);
}

/* ,"key":v */
static void json_u64(const char *key, uint64_t v)
{
	printf(",\"%s\":%llu", key, (unsigned long long)v);
}

/* --plot DIR: a latency CDF per rr and conn workload, and throughput and
 * CPU bars relative to the suite's first mode (each metric in its own unit
 * would need a chart per workload).
 */
/* The latency CDF of workload w: each measured mode's quantiles, their
 * mean over the rounds. 0 or -errno.
 */
static int plot_cdf(const struct bench_opts *o, unsigned int w)
{
	static double mean[SL_PLOT_SERIES_MAX][BENCH_CDF_POINTS];
	const struct suite_desc *su = &suites[o->suite];
	char stem[64], title[160];
	struct sl_plot_cdf c = { .stem = stem, .title = title,
				 .npoints = BENCH_CDF_POINTS, .q = cdf_q };
	unsigned int i, k;
	int m;

	for (i = 0; i < (unsigned int)su->nmodes; i++) {
		m = su->modes[i];
		if (!o->modes[m] || !cdf_n[w][m] ||
		    c.nseries == SL_PLOT_SERIES_MAX)
			continue;
		for (k = 0; k < BENCH_CDF_POINTS; k++)
			mean[c.nseries][k] = cdf_sum[w][m][k] / cdf_n[w][m];
		c.us[c.nseries] = mean[c.nseries];
		c.series[c.nseries++] = mode_name[m];
	}
	snprintf(stem, sizeof(stem), "%s-latency-%s", su->name,
		 workloads[w].name);
	snprintf(title, sizeof(title),
		 "%s: %s latency (quantiles, mean over %u rounds)", su->name,
		 workloads[w].label, res_rounds);
	return c.nseries ? sl_plot_cdf(o->plot_dir, &c) : 0;
}

/* Throughput (cpu false) or CPU bars of every workload, each mode relative
 * to the first mode that has the figure (the tls suite's direct has no
 * proxy CPU). 0 or -errno.
 */
static int plot_bars(const struct bench_opts *o, bool cpu)
{
	static const int tput_m[] = { [WL_RR] = M_TPS, [WL_STREAM] = M_GBITS,
				      [WL_CONN] = M_CONNS,
				      [WL_DUPLEX] = M_GBITS };
	static const int cpu_m[] = { [WL_RR] = M_CPU_100K,
				     [WL_STREAM] = M_CPU_GIB,
				     [WL_CONN] = M_CPU_CONN,
				     [WL_DUPLEX] = M_CPU_GIB };
	const struct suite_desc *su = &suites[o->suite];
	static struct sl_plot_bars bars;
	struct sl_plot_bars *b = &bars;
	char stem[64], title[160];
	unsigned int i, w;
	int base = -1, m;

	memset(b, 0, sizeof(*b));
	for (i = 0; i < (unsigned int)su->nmodes; i++) {
		m = su->modes[i];
		if (!o->modes[m] || b->nseries == SL_PLOT_SERIES_MAX)
			continue;
		for (w = 0; w < NR_WORKLOADS && base < 0; w++)
			if (o->workloads[w] &&
			    !isnan(median(w, m, cpu ? cpu_m[workloads[w].kind] :
						      tput_m[workloads[w].kind])))
				base = m;
		b->series[b->nseries++] = mode_name[m];
	}
	snprintf(stem, sizeof(stem), "%s-%s", su->name,
		 cpu ? "cpu" : "throughput");
	snprintf(title, sizeof(title), "%s: %s relative to %s, median of %u rounds",
		 su->name, cpu ? "CPU per unit of work" : "throughput",
		 base < 0 ? "-" : mode_name[base], res_rounds);
	b->stem = stem;
	b->title = title;
	b->ylabel = cpu ? "CPU per transaction, GiB or connection (x; lower is better)" :
			  "tx/s, Gbit/s or conn/s (x; higher is better)";
	for (w = 0; w < NR_WORKLOADS && base >= 0; w++) {
		int metric = cpu ? cpu_m[workloads[w].kind] :
				   tput_m[workloads[w].kind];
		double d = median(w, base, metric);
		unsigned int col = 0;

		if (!o->workloads[w] || b->ncats == SL_PLOT_CATS_MAX)
			continue;
		for (i = 0; i < (unsigned int)su->nmodes; i++) {
			m = su->modes[i];
			if (o->modes[m] && col < b->nseries)
				b->v[b->ncats][col++] = ratio(median(w, m, metric), d);
		}
		b->cats[b->ncats++] = workloads[w].label;
	}
	return b->ncats ? sl_plot_bars(o->plot_dir, b) : 0;
}

int bench_plot(const struct bench_opts *o)
{
	unsigned int w;
	int err = 0;

	if (mkdir(o->plot_dir, 0755) && errno != EEXIST) {
		pr_warn("bench: --plot %s: %s\n", o->plot_dir, strerror(errno));
		return -errno;
	}
	for (w = 0; w < NR_WORKLOADS && !err; w++)
		if (o->workloads[w] && (workloads[w].kind == WL_RR ||
					workloads[w].kind == WL_CONN))
			err = plot_cdf(o, w);
	if (!err)
		err = plot_bars(o, false);
	if (!err)
		err = plot_bars(o, true);
	return err;
}

/* "name":{...} of workload w: every metric's medians, ratios and rounds. */
static void json_workload(const struct bench_opts *o, size_t w)
{
	static const char *const kind_name[] = { "rr", "stream", "conn" };
	const struct suite_desc *su = &suites[o->suite];
	double med[NR_MODES];
	int k, i, m, first_k = 1;
	unsigned int r;

	printf("{\"name\":\"%s\",\"kind\":\"%s\",\"size\":%zu,"
	       "\"clients\":%d,\"connections\":%d,\"metrics\":{",
	       workloads[w].name, kind_name[workloads[w].kind], workloads[w].size,
	       workloads[w].clients, workloads[w].clients * workloads[w].conns);
	for (k = 0; k < NR_METRICS; k++) {
		if (!(metrics[k].kinds & KIND(workloads[w].kind)))
			continue;
		printf("%s\"%s\":{\"better\":\"%s\"", first_k ? "" : ",",
		       metrics[k].key, metrics[k].lower_better ? "lower" : "higher");
		first_k = 0;
		for (i = 0; i < su->nmodes; i++) {
			m = su->modes[i];
			med[m] = median(w, m, k);
			printf(",\"%s\":", mode_name[m]);
			json_num(med[m]);
		}
		for (i = 0; i < su->nratios; i++) {
			printf(",\"%s\":", su->ratios[i].key);
			json_num(ratio(med[su->ratios[i].num],
				       med[su->ratios[i].den]));
		}
		printf(",\"rounds\":{");
		for (i = 0; i < su->nmodes; i++) {
			m = su->modes[i];
			printf("%s\"%s\":[", i ? "," : "", mode_name[m]);
			for (r = 0; r < o->rounds; r++) {
				printf(r ? "," : "");
				json_num(*bench_res(w, m, k, r));
			}
			printf("]");
		}
		printf("}}");
	}
	printf("}}");
}

/* The suite's own evidence that each mode carried the traffic, closing the
 * object.
 */
static void json_fastpath(const struct bench_opts *o, const struct accel *acc,
			  const int *accel_ok)
{
	int m;

	printf("],\"redirect\":{");
	for (m = MODE_BARE; m <= MODE_SIDELANE; m++)
		printf("%s\"%s\":{\"measured\":%s,\"redirected\":%llu,"
		       "\"passed\":%llu,\"ok\":%s}",
		       m == MODE_BARE ? "" : ",", mode_name[m],
		       o->modes[m] ? "true" : "false",
		       (unsigned long long)acc[m].redirected,
		       (unsigned long long)acc[m].passed,
		       accel_ok[m] ? "true" : "false");
	printf("}}\n");
}

static void json_tls(const struct bench_opts *o, const struct accel *acc,
		     const int *accel_ok)
{
	struct sl_proxy_counters pc = {};
	int m;

	m = MODE_TLS_SL;
	if (o->modes[m])
		sl_stats_read(bs.pin_ab[1], &pc);
	printf("],\"tls\":{\"mtls_required_by_b\":true,"
	       "\"sidelane\":{\"measured\":%s",
	       o->modes[m] ? "true" : "false");
	json_u64("client_a_hop_redirected", acc[m].redirected);
	json_u64("client_a_hop_passed", acc[m].passed);
	json_u64("b_server_hop_redirected", acc[m].redirected_b);
	json_u64("b_server_hop_passed", acc[m].passed_b);
	json_u64("b_tls_handshakes", pc.tls_ok);
	json_u64("b_tls_resumed", pc.tls_resumed);
	m = MODE_TLS_HAP;
	printf("},\"haproxy\":{\"measured\":%s,\"ok\":%s",
	       o->modes[m] ? "true" : "false",
	       accel_ok[m] ? "true" : "false");
	json_u64("served", acc[m].served);
	printf("},\"stunnel\":{\"measured\":%s}}}\n",
	       o->modes[MODE_TLS_ST] ? "true" : "false");
}

static void json_sidecar(const struct bench_opts *o, const struct accel *acc,
			 const int *accel_ok)
{
	char link[PATH_MAX + 32];
	int m;

	m = MODE_SIDECAR;
	snprintf(link, sizeof(link), "%s/" SL_PIN_LINK_SOCKOPS_SIDECAR,
		 bs.pin_root);
	printf("],\"upstream\":\"" BENCH_NS_IP ":%d\",\"sidelane\":{"
	       "\"measured\":%s,\"captured\":%llu,\"ok\":%s,"
	       "\"hop_sockops_sidecar\":%s,"
	       "\"hop_sockets_inserted\":%llu,\"hop_redirected\":%llu,"
	       "\"hop_passed\":%llu,\"hop_backlog_fallback\":%llu},",
	       BENCH_UPSTREAM_PORT, o->modes[m] ? "true" : "false",
	       (unsigned long long)acc[m].captured,
	       accel_ok[m] ? "true" : "false",
	       o->modes[m] && !access(link, F_OK) ? "true" : "false",
	       (unsigned long long)acc[m].inserted,
	       (unsigned long long)acc[m].redirected,
	       (unsigned long long)acc[m].passed,
	       (unsigned long long)acc[m].fallback);
	for (m = MODE_HAPROXY; m <= MODE_HAPROXY1; m++)
		printf("%s\"%s\":{\"measured\":%s,\"listen\":\"127.0.0.1:%u\","
		       "\"nbthread\":%u,\"served\":%llu,\"ok\":%s}",
		       m == MODE_HAPROXY ? "" : ",", mode_name[m],
		       o->modes[m] ? "true" : "false", bs.front_port[m],
		       bs.nbthread[mode_run[m].proc[0]],
		       (unsigned long long)acc[m].served,
		       accel_ok[m] ? "true" : "false");
	printf("}\n");
}

void results_json(const struct bench_opts *o, const struct accel *acc,
		  const int *accel_ok, int inherited)
{
	const struct suite_desc *su = &suites[o->suite];
	char cmd[1024];
	int i, first_w = 1;
	size_t w;

	printf("{");
	if (o->suite != SUITE_FASTPATH)
		printf("\"suite\":\"%s\",", su->name);
	printf("\"command\":");
	sl_json_str(stdout, cmdline(cmd, sizeof(cmd)));
	printf(",\"versions\":{");
	for (i = 0; i < bs.nver; i++) {
		printf("%s\"%s\":", i ? "," : "", bs.ver[i].name);
		sl_json_str(stdout, bs.ver[i].text);
	}
	printf("},\"rounds\":%u,\"duration_ms\":%u,\"pin\":\"%s\","
	       "\"cgroup_mount\":\"%s\",\"inherited_sockops\":%d,"
	       "\"workloads\":[",
	       o->rounds, o->duration_ms, pin_name[o->pin], bs.cg_mount,
	       inherited);
	for (w = 0; w < NR_WORKLOADS; w++) {
		if (!o->workloads[w])
			continue;
		printf(first_w ? "" : ",");
		first_w = 0;
		json_workload(o, w);
	}
	if (o->suite == SUITE_FASTPATH)
		json_fastpath(o, acc, accel_ok);
	else if (o->suite == SUITE_TLS)
		json_tls(o, acc, accel_ok);
	else
		json_sidecar(o, acc, accel_ok);
}
