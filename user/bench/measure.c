// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* `sidelane bench`, one measurement (parent) (see bench.c). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench/internal.h"

/* ---- one measurement (parent) ----------------------------------------- */

static double tv_sec(struct timeval tv)
{
	return tv.tv_sec + tv.tv_usec / 1e6;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted samples, in µs. */
static double pct_us(const uint32_t *s, uint64_t n, double p)
{
	uint64_t i = (uint64_t)ceil(p / 100.0 * n);

	if (!n)
		return NAN;
	return s[i ? i - 1 : 0] / 1000.0;
}

double cdf_q[BENCH_CDF_POINTS];
double cdf_sum[NR_WORKLOADS][NR_MODES][BENCH_CDF_POINTS];
unsigned int cdf_n[NR_WORKLOADS][NR_MODES];

static void cdf_add(size_t w, enum mode m, const uint32_t *sorted, uint64_t n)
{
	unsigned int i;

	if (!n)
		return;
	for (i = 0; i < BENCH_CDF_POINTS; i++) {
		uint64_t k;

		cdf_q[i] = i < 99 ? (i + 1) / 100.0 : i == 99 ? 0.995 : 0.999;
		k = (uint64_t)ceil(cdf_q[i] * (double)n);
		cdf_sum[w][m][i] += sorted[k ? k - 1 : 0] / 1e3;
	}
	cdf_n[w][m]++;
}

/* Wait for a child until deadline (CLOCK_MONOTONIC ns); kill it past that or
 * on a stop. Its rusage goes to ru. 0, or a positive errno.
 */
static int reap(pid_t *pid, uint64_t deadline, struct rusage *ru, int *status)
{
	struct pollfd pfd = { .events = POLLIN };
	uint64_t t;
	int err = 0;

	pfd.fd = syscall(SYS_pidfd_open, *pid, 0);
	while (pfd.fd >= 0 && !bench_stop) {
		t = now_ns();
		if (t >= deadline) {
			err = ETIMEDOUT;
			break;
		}
		if (poll(&pfd, 1, (deadline - t) / 1000000 + 1) == 1)
			break;
	}
	if (pfd.fd >= 0)
		close(pfd.fd);
	if (err || bench_stop)
		kill(*pid, SIGKILL);
	if (wait4(*pid, status, 0, ru) < 0 && !err)
		err = errno;
	*pid = 0;
	return err;
}

static void child_start(const char *cgroup, int cpu, struct side_result *r)
{
	cpu_set_t set;
	int err;

	/* a child never outlives the bench */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != bs.owner)
		_exit(1);
	/* before any socket exists: a socket belongs to its creator's cgroup */
	err = enter_cgroup(cgroup);
	if (err) {
		side_fail(r, err, "join cgroup");
		_exit(1);
	}
	if (cpu >= 0) {
		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		if (sched_setaffinity(0, sizeof(set), &set)) {
			side_fail(r, errno, "pin to CPU");
			_exit(1);
		}
	}
}

/* VmRSS of a process in KiB, -1 if gone. */
static long rss_kib(pid_t pid)
{
	char path[64], line[128];
	long kib = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	if (f)
		fclose(f);
	return kib;
}

/* The resident memory of mode m's relays near the end of the window (at),
 * while the client's connections are open: MiB, NAN for none. Returns
 * early if the client ends first.
 */
static double relays_rss_mib(enum mode m, pid_t client, uint64_t at)
{
	struct pollfd pfd = { .events = POLLIN };
	long kib, sum = 0;
	uint64_t t = now_ns();
	int i, n = 0;

	if (mode_run[m].proc[0] < 0)
		return NAN;
	pfd.fd = syscall(SYS_pidfd_open, client, 0);
	if (pfd.fd >= 0 && t < at)
		poll(&pfd, 1, (int)((at - t) / 1000000));
	if (pfd.fd >= 0)
		close(pfd.fd);
	for (i = 0; i < 2; i++) {
		if (mode_run[m].proc[i] < 0 || bs.pid[mode_run[m].proc[i]] <= 0)
			continue;
		kib = rss_kib(bs.pid[mode_run[m].proc[i]]);
		if (kib < 0)
			return NAN;
		sum += kib;
		n++;
	}
	return n ? sum / 1024.0 : NAN;
}

/* Fork the server in its cgroup (and the namespace); its port once it
 * listens, 0 if it did not start.
 */
static uint16_t server_start(enum mode m, const struct workload *wl,
			     const struct bench_opts *o, struct sockaddr_in srv)
{
	struct bench_shm *shm = bs.shm;
	uint16_t port = 0;
	struct pollfd pp;
	int pfd[2];

	if (pipe2(pfd, O_CLOEXEC))
		return 0;
	fflush(NULL);
	bs.child[0] = fork();
	if (bs.child[0] < 0) {
		bs.child[0] = 0;
		close(pfd[0]);
		close(pfd[1]);
		return 0;
	}
	if (!bs.child[0]) {
		close(pfd[0]);
		child_start(bs.cgroup[mode_run[m].server],
			    o->pin ? o->pin_cpu[0] : -1, &shm->server);
		if (mode_run[m].netns && setns(bs.ns_fd, CLONE_NEWNET))
			_exit(side_fail(&shm->server, errno, "enter namespace"));
		_exit(run_server(wl, srv, pfd[1], &shm->server, shm));
	}
	close(pfd[1]);
	pp = (struct pollfd){ .fd = pfd[0], .events = POLLIN };
	if (poll(&pp, 1, BENCH_IO_TIMEOUT_S * 1000) != 1 ||
	    read(pfd[0], &port, sizeof(port)) != sizeof(port))
		port = 0;
	close(pfd[0]);
	return port;
}

/* Fork the client in its cgroup against dst. 0 or -errno. */
static int client_start(enum mode m, const struct workload *wl,
			const struct bench_opts *o, struct sockaddr_in dst,
			uint64_t warmup_ns, uint64_t dur_ns)
{
	struct bench_shm *shm = bs.shm;

	bs.child[1] = fork();
	if (bs.child[1] < 0) {
		bs.child[1] = 0;
		return -errno;
	}
	if (!bs.child[1]) {
		child_start(bs.cgroup[mode_run[m].client],
			    o->pin ? o->pin_cpu[1] : -1, &shm->client);
		_exit(wl->kind == WL_STREAM ?
			      run_client_stream(wl, dst, warmup_ns, dur_ns, shm) :
		      wl->kind == WL_DUPLEX ?
			      run_client_duplex(wl, dst, warmup_ns, dur_ns, shm) :
			      run_client_loops(wl, dst, warmup_ns, dur_ns, shm));
	}
	return 0;
}

/* What went wrong in a measurement: the client's finding first, a
 * server's error can follow from it.
 */
static void measure_failed(enum mode m, const struct workload *wl,
			   uint16_t port, int err)
{
	const struct bench_shm *shm = bs.shm;

	pr_warn("%s %s: %s\n", mode_name[m], wl->label,
		shm->client.err ? shm->client.msg :
		shm->server.err ? shm->server.msg :
		!port		? "server did not start" :
		err		? strerror(err) :
				  "a child failed");
	if (wl->kind == WL_STREAM)
		pr_warn("stream: client sent %llu bytes, server received %llu\n",
			(unsigned long long)shm->bytes_sent,
			(unsigned long long)shm->bytes_recv);
	if (wl->kind == WL_DUPLEX)
		pr_warn("duplex: client sent %llu bytes and received %llu back; "
			"the server received (and echoed) %llu\n",
			(unsigned long long)shm->bytes_sent,
			(unsigned long long)shm->bytes_recv,
			(unsigned long long)shm->bytes_all);
	relays_alive(m);
}

/* The figures of a measurement from what the ends counted and the CPU. */
static void figures(enum mode m, const struct workload *wl,
		    const struct bench_opts *o, double cpu,
		    struct measurement *out)
{
	struct bench_shm *shm = bs.shm;

	if (wl->kind == WL_RR || wl->kind == WL_CONN) {
		qsort(shm->lat_ns, shm->nlat, sizeof(shm->lat_ns[0]), cmp_u32);
		if (o->plot_dir)
			cdf_add((size_t)(wl - workloads), m, shm->lat_ns,
				shm->nlat);
		out->v[M_P50] = pct_us(shm->lat_ns, shm->nlat, 50);
		out->v[M_P99] = pct_us(shm->lat_ns, shm->nlat, 99);
	}
	/* CPU covers the warm-up too, so does the count it is divided by */
	if (wl->kind == WL_RR) {
		out->v[M_TPS] = shm->tx * 1e9 / shm->elapsed_ns;
		out->v[M_CPU_100K] = shm->tx_all ? cpu / (shm->tx_all / 1e5) : NAN;
	} else if (wl->kind == WL_CONN) {
		out->v[M_CONNS] = shm->tx * 1e9 / shm->elapsed_ns;
		out->v[M_CPU_CONN] = shm->tx_all ? cpu * 1e6 / shm->tx_all : NAN;
	} else {
		out->v[M_GBITS] = shm->bytes * 8.0 / shm->elapsed_ns;
		out->v[M_CPU_GIB] = shm->bytes_all ?
					    cpu / (shm->bytes_all / 1073741824.0) :
					    NAN;
	}
}

/* CPU of a measurement: the two ends' (wait4), plus the relays between
 * them when there are any (the caller adds them); the tls suite counts the
 * relays alone (none: no figure), the sidecar suite the whole host.
 */
static double ends_cpu(const struct rusage *c, const struct rusage *s)
{
	return tv_sec(c->ru_utime) + tv_sec(c->ru_stime) + tv_sec(s->ru_utime) +
	       tv_sec(s->ru_stime);
}

/* What a mode's relays and the host have used so far: sampled before and
 * after a run, the difference is the run's.
 */
struct sample {
	struct accel accel;
	double proxy_cpu, host_cpu;
};

static int sample_take(enum mode m, const struct bench_opts *o,
		       struct sample *s)
{
	int err = read_accel(m, &s->accel);

	if (!err)
		err = proxy_cpu(m, &s->proxy_cpu);
	if (!err && suites[o->suite].host_cpu)
		err = host_busy(&s->host_cpu);
	return err;
}

/* Start wl's server and client for m, wait for both and fill the run's
 * rusage of each end. 0, or -errno (the failure already said).
 */
static int run_ends(enum mode m, const struct workload *wl,
		    const struct bench_opts *o, struct rusage *ru_c,
		    struct rusage *ru_s, struct measurement *out)
{
	uint64_t dur_ns = o->duration_ms * 1000000ull;
	uint64_t warm_ms = o->duration_ms / 5 < BENCH_WARMUP_MAX_MS ?
				   o->duration_ms / 5 : BENCH_WARMUP_MAX_MS;
	uint64_t warmup_ns = warm_ms * 1000000ull, deadline;
	struct bench_shm *shm = bs.shm;
	struct sockaddr_in srv, dst;
	int err = 0, st_c = 0, st_s = 0;
	uint16_t port;

	/* the upstream listens on a fixed port of every address in the
	 * namespace (the relays' configs name it), else on any port of
	 * loopback
	 */
	srv = mode_run[m].netns ? addr_in("0.0.0.0", BENCH_UPSTREAM_PORT) :
				  addr_in("127.0.0.1", 0);
	port = server_start(m, wl, o, srv);
	/* haproxy's client and the TLS pairs' connect to them explicitly;
	 * sidecar sidelane's connects to the upstream and is captured
	 */
	dst = bs.front_port[m] ? addr_in("127.0.0.1", bs.front_port[m]) :
	      mode_run[m].netns ? addr_in(BENCH_NS_IP, port) :
				  addr_in("127.0.0.1", port);
	if (port) {
		err = client_start(m, wl, o, dst, warmup_ns, dur_ns);
		if (err) {
			kill_children();
			return err;
		}
	}
	deadline = now_ns() + warmup_ns + dur_ns + BENCH_GRACE_MS * 1000000ull;
	if (bs.child[1] && wl->kind == WL_RR)
		out->v[M_RSS] = relays_rss_mib(m, bs.child[1],
					       now_ns() + warmup_ns + dur_ns * 9 / 10);
	if (bs.child[1])
		err = reap(&bs.child[1], deadline, ru_c, &st_c);
	/* the server ends on the client's close, or (conn) when told; give it
	 * a moment after that, none if the client failed
	 */
	__atomic_store_n(&shm->stop, 1, __ATOMIC_RELAXED);
	deadline = now_ns() + (err ? 0 : BENCH_IO_TIMEOUT_S * 1000000000ull);
	if (bs.child[0] && reap(&bs.child[0], deadline, ru_s, &st_s) && !err)
		err = ETIMEDOUT;
	if (bench_stop)
		return -EINTR;
	if (shm->server.err || shm->client.err || !port || err ||
	    !WIFEXITED(st_c) || WEXITSTATUS(st_c) || !WIFEXITED(st_s) ||
	    WEXITSTATUS(st_s)) {
		measure_failed(m, wl, port, err);
		return -EIO;
	}
	return 0;
}

int bench_measure(enum mode m, const struct workload *wl,
		  const struct bench_opts *o, struct measurement *out)
{
	struct bench_shm *shm = bs.shm;
	struct rusage ru_c = {}, ru_s = {};
	struct sample before = {}, after = {};
	double cpu, proxy;
	int err, i;

	memset(out, 0, sizeof(*out));
	for (i = 0; i < NR_METRICS; i++)
		out->v[i] = NAN;
	memset(shm, 0, sizeof(*shm));
	shm->lat_cap = (bs.shm_len - sizeof(*shm)) / sizeof(shm->lat_ns[0]);
	if (!relays_alive(m))
		return -ESRCH;
	err = sample_take(m, o, &before);
	if (!err)
		err = run_ends(m, wl, o, &ru_c, &ru_s, out);
	if (!err)
		err = sample_take(m, o, &after);
	if (err)
		return err;
	out->accel = after.accel;
	accel_add(&out->accel, &before.accel, -1);
	proxy = after.proxy_cpu - before.proxy_cpu;
	if (mode_run[m].proc[0] >= 0)
		pr_debug("%s %s: the relays used %.3f s of CPU\n", mode_name[m],
			 wl->label, proxy);
	cpu = suites[o->suite].host_cpu ? after.host_cpu - before.host_cpu :
	      suites[o->suite].proxy_cpu ?
		      (mode_run[m].proc[0] >= 0 ? proxy : NAN) :
		      ends_cpu(&ru_c, &ru_s) + proxy;
	if (!shm->elapsed_ns)
		return -EIO;
	figures(m, wl, o, cpu, out);
	return 0;
}
