// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Integration test (tests/integ): the admin HTTP endpoint (user/report/admin.c) of
 * the real `sidelane -v run --config`, with an ambassador listener relaying
 * to an echo server of this test. An app process in the app's cgroup makes
 * N echo connections through the ambassador and M connects that policy
 * rule 7 denies; then /metrics (parsed by prometheus_client's own parser)
 * and /stats (json.loads) must show exactly those numbers, the same in both.
 * Then the HTTP surface (404, 405 with Allow, a browser's POST refused), the
 * socket bound to 127.0.0.1 only, a second sidelane on the same admin port
 * (warned, runs on), and POST /drain: /ready 503, new connections refused,
 * an open one still flows until admin.drain_timeout_ms, then is closed.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "lib/util.h"
#include "sidelane.h"
#include "harness.h"

#define N_CONNS 5 /* echo connections through the ambassador */
#define CONN_BYTES 3000 /* each way, each */
#define M_DENIED 3 /* connects refused by rule 7 */
#define DENY_RULE 7
#define DENY_IP "198.18.99.1" /* TEST-NET: never leaves the host (EPERM) */
#define PAIR_OUT 5000 /* a local app<->app pair: client sends this */
#define PAIR_IN 7000 /* and the server answers this */
/* the pair's connect is one more loopback connect (default allow) */
#define DRAIN_MS 1500 /* admin.drain_timeout_ms */
#define IO_MS 5000
#define PY "/usr/bin/python3" /* a pyenv python3 may lack prometheus_client */

static struct th_env app, side, app2, side2;
static char cfg1[64], cfg2[64], alog_path[64];
static int echo_port;
static int admin_port, amb_port, out_port;

/* ---- helpers ---- */

static void remove_files(void *arg)
{
	(void)arg;
	if (cfg1[0])
		unlink(cfg1);
	if (cfg2[0])
		unlink(cfg2);
	if (alog_path[0])
		unlink(alog_path);
}

/* Wait up to ms for fd to become readable; 0, or -ETIMEDOUT. */
static int wait_in(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, ms) == 1 ? 0 : -ETIMEDOUT;
}

/* One HTTP/1.0 request to the admin endpoint (th_http). */
static int http(const char *method, const char *path, const char *headers,
		char *resp, size_t len)
{
	return th_http(admin_port, method, path, headers, resp, len);
}

static const char *http_body(const char *resp)
{
	const char *b = strstr(resp, "\r\n\r\n");

	return b ? b + 4 : "";
}

/* ---- sidelane ---- */

/* `sidelane -v run --config cfg` for env, its output into env's log. */
static int start_sidelane(struct th_env *env, const struct th_env *sidecar,
			  const char *cfg)
{
	th_env_log_path(env);
	env->sidelane = fork();
	if (env->sidelane < 0)
		return -errno;
	if (!env->sidelane) {
		int fd = open(env->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
			      0644);

		if (fd >= 0)
			dup2(fd, 1), dup2(fd, 2);
		execl(th_sidelane_bin(), "sidelane", "-v", "run", "--config", cfg,
		      "--cgroup", env->cgroup, "--sidecar-cgroup",
		      sidecar->cgroup, "--pin-root", env->pin_root, (char *)NULL);
		_exit(127);
	}
	env->pins_made = true;
	env->detached = false;
	return 0;
}

static bool alive(const struct th_env *env)
{
	return env->sidelane > 0 && waitpid(env->sidelane, NULL, WNOHANG) == 0;
}

/* Lines of env's log holding what. */
static int log_has(const struct th_env *env, const char *what)
{
	FILE *f = fopen(env->log, "re");
	char line[1024];
	int n = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		n += strstr(line, what) != NULL;
	fclose(f);
	return n;
}

/* ---- /metrics and /stats, read by Python ---- */

/* Fetches both, checks that every family has HELP and TYPE and that every
 * counter ends in _total, then prints "M name{labels} value" per sample
 * (labels sorted) and "J a.b.c value" per JSON leaf (policy rules keyed
 * by id). Exits non-zero when either does not parse.
 */
static const char py_scrape[] =
	"import json, sys, urllib.request\n"
	"from prometheus_client.parser import text_string_to_metric_families\n"
	"base = sys.argv[1]\n"
	"def get(p):\n"
	"    with urllib.request.urlopen(base + p, timeout=5) as r:\n"
	"        return r.headers.get('Content-Type'), r.read().decode()\n"
	"ct, text = get('/metrics')\n"
	"print('C metrics', ct)\n"
	"for line in text.splitlines():\n"
	"    w = line.split()\n"
	"    if line.startswith('# TYPE') and w[3] == 'counter' and not w[2].endswith('_total'):\n"
	"        sys.exit('counter without _total: ' + line)\n"
	"for f in text_string_to_metric_families(text):\n"
	"    if not f.documentation or f.type == 'unknown':\n"
	"        sys.exit('no HELP or TYPE: ' + f.name)\n"
	"    for s in f.samples:\n"
	"        l = ','.join('%s=\"%s\"' % kv for kv in sorted(s.labels.items()))\n"
	"        print('M %s{%s} %d' % (s.name, l, s.value))\n"
	"ct, text = get('/stats')\n"
	"print('C stats', ct)\n"
	"def leaves(p, o):\n"
	"    if isinstance(o, dict):\n"
	"        for k, v in o.items():\n"
	"            leaves(p + [k], v)\n"
	"    elif isinstance(o, list):\n"
	"        for i, v in enumerate(o):\n"
	"            leaves(p + [str(v['id'] if isinstance(v, dict) else i)], v)\n"
	"    else:\n"
	"        print('J %s %s' % ('.'.join(p), json.dumps(o)))\n"
	"leaves([], json.loads(text))\n";

#define SCRAPE_LEN (256 * 1024)
static char scraped[SCRAPE_LEN];

static int scrape(void)
{
	char url[64];
	char *argv[] = { PY, "-c", (char *)py_scrape, url, NULL };

	snprintf(url, sizeof(url), "http://127.0.0.1:%d", admin_port);
	return th_run(NULL, NULL, argv, scraped, sizeof(scraped), 20000);
}

/* Value of the line "<kind> <key> <value>" in what scrape() printed; -1
 * when absent. JSON true/false read as 1/0.
 */
static long long value_of(char kind, const char *key)
{
	char want[256];
	const char *p = scraped, *v;
	size_t n;

	n = snprintf(want, sizeof(want), "%c %s ", kind, key);
	while ((p = strstr(p, want))) {
		if (p == scraped || p[-1] == '\n') {
			v = p + n;
			if (!strncmp(v, "true", 4))
				return 1;
			if (!strncmp(v, "false", 5))
				return 0;
			return strtoll(v, NULL, 10);
		}
		p += n;
	}
	return -1;
}

static long long M(const char *key)
{
	return value_of('M', key);
}

static long long J(const char *key)
{
	return value_of('J', key);
}

/* ---- subtests ---- */

/* In the app's cgroup: N echo connections through the ambassador, each
 * byte checked, and M connects to the denied destination (EPERM).
 */
/* Two sockets of the app's cgroup talking to each other: accelerated, and
 * each gets its own access log line.
 */
static int local_pair(void)
{
	static char out[PAIR_IN], in[PAIR_IN];
	int c = -1, sv = -1, err = -1;

	th_fill(out, sizeof(out), 9);
	if (th_tcp_pair("127.0.0.1", "127.0.0.1", &c, &sv))
		goto out;
	usleep(20 * 1000); /* both in the sockhash */
	if (send(c, out, PAIR_OUT, MSG_NOSIGNAL) != PAIR_OUT ||
	    sl_io_full(sv, in, PAIR_OUT, true, IO_MS) || memcmp(in, out, PAIR_OUT) ||
	    send(sv, out, PAIR_IN, MSG_NOSIGNAL) != PAIR_IN ||
	    sl_io_full(c, in, PAIR_IN, true, IO_MS) || memcmp(in, out, PAIR_IN))
		goto out;
	err = 0;
out:
	if (c >= 0)
		close(c);
	if (sv >= 0)
		close(sv);
	return err;
}

static int app_traffic(void)
{
	struct sockaddr_in deny = { .sin_family = AF_INET, .sin_port = htons(80) };
	static char out[CONN_BYTES], in[CONN_BYTES];
	int i, fd;

	if (th_enter(&app))
		return 2;
	th_fill(out, sizeof(out), 42);
	for (i = 0; i < N_CONNS; i++) {
		fd = th_connect("127.0.0.1", amb_port);
		if (fd < 0)
			return 3;
		/* both ends in the sockhash before the first byte */
		usleep(20 * 1000);
		if (send(fd, out, sizeof(out), MSG_NOSIGNAL) != sizeof(out) ||
		    shutdown(fd, SHUT_WR) || sl_io_full(fd, in, sizeof(in), true, IO_MS) ||
		    memcmp(in, out, sizeof(in)))
			return 4;
		/* then EOF: the proxy relayed the upstream's FIN */
		if (wait_in(fd, IO_MS) || recv(fd, in, 1, 0) != 0)
			return 5;
		close(fd);
	}
	if (local_pair())
		return 7;
	inet_pton(AF_INET, DENY_IP, &deny.sin_addr);
	for (i = 0; i < M_DENIED; i++) {
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0 || !connect(fd, (struct sockaddr *)&deny, sizeof(deny)) ||
		    errno != EPERM)
			return 6;
		close(fd);
	}
	return 0;
}

static bool check_traffic(void)
{
	const char *name = "admin: traffic: N echo connections via the ambassador, M connects denied";
	pid_t pid = fork();
	int st;

	if (!pid)
		_exit(app_traffic());
	st = th_wait(pid, 30000);
	if (!TH_CHECK(st == 0, name, "app process exit %d", st))
		return false;
	th_pass(name);
	return true;
}

/* /metrics until the proxy has closed all N (it may lag the app's EOF). */
static int scrape_settled(void)
{
	__u64 end = th_now_ms() + 5000;
	int st;

	do {
		st = scrape();
		if (!st && M("sidelane_proxy_connections_closed_total{direction=\"ambassador\",reason=\"done\"}") == N_CONNS &&
		    M("sidelane_proxy_connections_active{direction=\"ambassador\"}") == 0)
			return 0;
		usleep(100 * 1000);
	} while (th_now_ms() < end);
	return st ?: -ETIMEDOUT;
}

static void check_metrics(void)
{
	const char *name = "admin: /metrics parses (prometheus_client), HELP and TYPE everywhere";
	const char *name2 = "admin: /metrics has exactly the connections, bytes, hits and reasons caused";
	const char *name3 = "admin: /stats is valid JSON with the same numbers";
	const struct {
		const char *metric, *json;
		long long want; /* -1: > 0, -2: no fixed value */
	} want[] = {
		{ "sidelane_proxy_connections_accepted_total{direction=\"ambassador\"}", "proxy.accepted", N_CONNS },
		{ "sidelane_proxy_connections_closed_total{direction=\"ambassador\",reason=\"done\"}", "proxy.closed.done", N_CONNS },
		{ "sidelane_proxy_connections_closed_total{direction=\"ambassador\",reason=\"shutdown\"}", "proxy.closed.shutdown", 0 },
		{ "sidelane_proxy_connections_active{direction=\"ambassador\"}", "proxy.active", 0 },
		{ "sidelane_bytes_total{direction=\"up\",path=\"relay\"}", "proxy.bytes_up", N_CONNS * CONN_BYTES },
		{ "sidelane_bytes_total{direction=\"down\",path=\"relay\"}", "proxy.bytes_down", N_CONNS * CONN_BYTES },
		{ "sidelane_policy_hits_total{action=\"deny\",rule=\"7\"}", "policy.rules.7.hits", M_DENIED },
		{ "sidelane_policy_hits_total{action=\"allow\",rule=\"8\"}", "policy.rules.8.hits", 0 },
		/* every other connect of the app: the N to the ambassador */
		{ "sidelane_policy_hits_total{action=\"allow\",rule=\"default\"}", "policy.default_hits", N_CONNS + 1 },
		{ "sidelane_policy_configured{}", "policy.configured", 1 },
		{ "sidelane_capture_connects_total{reason=\"denied\"}", "capture.reasons.denied", M_DENIED },
		{ "sidelane_capture_connects_total{reason=\"loopback\"}", "capture.reasons.loopback", N_CONNS + 1 },
		{ "sidelane_capture_connects_total{reason=\"captured\"}", "capture.reasons.captured", 0 },
		{ "sidelane_capture_attached{}", "capture.attached", 1 },
		{ "sidelane_fastpath_attached{}", "attached", 1 },
		/* the app<->proxy hop: both ends in cgroups sidelane serves */
		{ "sidelane_fastpath_redirect_ok_total{}", "counters.redirect_ok", -1 },
		/* each echo both ways over that hop, and the local pair */
		{ "sidelane_fastpath_redirect_bytes_total{}", "counters.redirect_bytes",
		  2 * N_CONNS * CONN_BYTES + PAIR_OUT + PAIR_IN },
		{ "sidelane_fastpath_sock_inserted_total{}", NULL, -1 },
		{ "sidelane_admission_mode{app_sockets=\"all\"}", NULL, 1 },
		{ "sidelane_admission_mode{app_sockets=\"safe\"}", NULL, 0 },
		{ "sidelane_admission_sockets_total{reason=\"accelerated\"}",
		  "admission.sockets.accelerated", -1 },
		/* sized by limits.max_conns (its default): two sockets each */
		{ "sidelane_map_max_entries{map=\"" SL_MAP_SOCKHASH "\"}", "maps." SL_MAP_SOCKHASH ".max", 2 * SL_LIMIT_CONNS_DEFAULT },
		{ "sidelane_map_max_entries{map=\"" SL_MAP_CONNS "\"}", "maps." SL_MAP_CONNS ".max", 3 * SL_LIMIT_CONNS_DEFAULT },
		/* the pinned maps' kernel memory, total and per map */
		{ "sidelane_maps_memory_bytes{}", "footprint.memlock_bytes", -1 },
		{ "sidelane_map_memory_bytes{map=\"" SL_MAP_SOCKHASH "\"}",
		  "footprint.by_map." SL_MAP_SOCKHASH ".memlock_bytes", -1 },
		{ "sidelane_map_memory_bytes{map=\"" SL_MAP_CONNS "\"}",
		  "footprint.by_map." SL_MAP_CONNS ".memlock_bytes", -1 },
		{ "sidelane_inbound_attached{}", "inbound.sk_lookup", 0 },
		{ "sidelane_inbound_lookups_total{result=\"steered\"}", "inbound.steered", 0 },
		{ "sidelane_tls_enabled{}", "tls.enabled", 0 },
		{ "sidelane_tls_handshakes_total{}", "tls.handshakes_ok", 0 },
		{ "sidelane_tls_ktls_available{}", "tls.ktls", -2 },
		{ "sidelane_ready{}", "admin.ready", 1 },
		{ "sidelane_draining{}", "admin.draining", 0 },
		{ "sidelane_build_info{version=\"" SL_VERSION "\"}", NULL, 1 },
		/* proxy.workers auto: one per CPU; their counts sum below */
		{ "sidelane_proxy_workers{}", NULL, -1 },
	};
	int st = scrape_settled(), bad = 0;
	size_t i;

	if (!TH_CHECK(st == 0 && strstr(scraped, "C metrics text/plain; version=0.0.4"),
		      name, "scrape: %d: %.2000s", st, scraped))
		return;
	th_pass(name);
	th_info("%.*s", (int)(strchr(scraped, '\n') - scraped), scraped);
	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		long long m = M(want[i].metric);
		bool ok = want[i].want == -1 ? m > 0 :
			  want[i].want == -2 ? m >= 0 : m == want[i].want;

		if (!ok) {
			th_info("%s = %lld, want %lld", want[i].metric, m,
				want[i].want);
			bad++;
		}
	}
	{
		long long nw = M("sidelane_proxy_workers{}"), sum = 0, w;
		char metric[128];

		for (w = 0; w < nw; w++) {
			snprintf(metric, sizeof(metric),
				 "sidelane_proxy_worker_accepted_total{worker=\"%lld\"}",
				 w);
			sum += M(metric) > 0 ? M(metric) : 0;
		}
		if (sum != N_CONNS) {
			th_info("per-worker accepted sum %lld over %lld workers, "
				"want %d", sum, nw, N_CONNS);
			bad++;
		}
	}
	TH_RESULT(!bad, name2, "%d values wrong (see above)", bad);
	bad = 0;
	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		if (!want[i].json)
			continue;
		if (J(want[i].json) != M(want[i].metric) || J(want[i].json) < 0) {
			th_info("/stats %s = %lld, /metrics %s = %lld",
				want[i].json, J(want[i].json), want[i].metric,
				M(want[i].metric));
			bad++;
		}
	}
	TH_RESULT(strstr(scraped, "C stats application/json") && !bad, name3,
		  "%d values differ (see above)", bad);
}

/* Slowloris on the admin endpoint: SLOW_PEERS connections each holding a
 * request begun and never finished (more than any small connection limit).
 * /healthz and /metrics still answer at once, and the slow ones are closed
 * by the endpoint's timeout.
 */
#define SLOW_PEERS 64
static void check_slowloris(void)
{
	const char *name = "admin: " SL_XSTR(SLOW_PEERS) " slowloris peers: "
			   "/healthz and /metrics answer at once meanwhile";
	static char r[256 * 1024];
	int fds[SLOW_PEERS], i, n = 0, code1 = 0, code2 = 0;
	__u64 t0, took = 0;

	for (i = 0; i < SLOW_PEERS; i++) {
		fds[i] = th_connect("127.0.0.1", admin_port);
		if (fds[i] >= 0 && send(fds[i], "GET /metrics HTTP/1.1\r\nHo", 25,
					MSG_NOSIGNAL) == 25)
			n++;
	}
	usleep(100 * 1000);
	/* one more byte each: still not a request */
	for (i = 0; i < SLOW_PEERS; i++)
		if (fds[i] >= 0)
			send(fds[i], "s", 1, MSG_NOSIGNAL);
	t0 = th_now_ms();
	code1 = http("GET", "/healthz", NULL, r, sizeof(r));
	code2 = http("GET", "/metrics", NULL, r, sizeof(r));
	took = th_now_ms() - t0;
	for (i = 0; i < SLOW_PEERS; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	th_info("slowloris: %d peers holding, /healthz %d and /metrics %d in %llu ms",
		n, code1, code2, (unsigned long long)took);
	if (TH_CHECK(n == SLOW_PEERS, name, "%d of %d peers connected", n,
		     SLOW_PEERS) &&
	    TH_CHECK(code1 == 200 && code2 == 200 && took < 1000, name,
		     "/healthz %d, /metrics %d after %llu ms", code1, code2,
		     (unsigned long long)took))
		th_pass(name);
}

/* The CPU time pid has used (user + system), in ms, or -1. */
static long proc_cpu_ms(pid_t pid)
{
	unsigned long ut, st;
	char path[64], buf[1024], *p;
	FILE *f;
	int n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	p = fgets(buf, sizeof(buf), f);
	fclose(f);
	p = p ? strrchr(buf, ')') : NULL; /* the name may hold spaces */
	n = p ? sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
		       &ut, &st) : 0;
	return n == 2 ? (long)((ut + st) * 1000 / sysconf(_SC_CLK_TCK)) : -1;
}

/* A scrape's cost stays a scrape's: Prometheus asks every few seconds, so
 * neither /metrics nor /stats may keep memory behind or redo work whose
 * answer cannot change while the process runs (the vmlinux BTF parse, some
 * MiB and 8 ms of CPU, was done on every status read once, and glibc
 * kept the second parse's memory). The CPU is said, not checked: a shared
 * machine's figure.
 */
#define SCRAPES 20
#define SCRAPE_ANON_KIB TH_MEM_SLACK_KIB(2048)
static void check_scrape_cost(const char *when)
{
	static char r[256 * 1024];
	long a0, a1, c0, c1;
	int i, bad = 0;
	char name[192];

	snprintf(name, sizeof(name), "admin: " SL_XSTR(SCRAPES) " scrapes of "
		 "/metrics and /stats leave the sidecar's anonymous memory as "
		 "it was (%s)", when);

	a0 = th_proc_kib(app.sidelane, "RssAnon");
	c0 = proc_cpu_ms(app.sidelane);
	for (i = 0; i < SCRAPES; i++) {
		bad += http("GET", "/metrics", NULL, r, sizeof(r)) != 200;
		bad += http("GET", "/stats", NULL, r, sizeof(r)) != 200;
	}
	a1 = th_proc_kib(app.sidelane, "RssAnon");
	c1 = proc_cpu_ms(app.sidelane);
	th_info("scrapes, %s: RssAnon %ld -> %ld KiB, %ld ms CPU for %d", when,
		a0, a1, c1 - c0, 2 * SCRAPES);
	TH_RESULT(!bad && a0 > 0 && a1 - a0 < SCRAPE_ANON_KIB, name,
		  "%d failed; RssAnon %ld -> %ld KiB", bad, a0, a1);
}

static void check_http(void)
{
	const char *name = "admin: /healthz 200 ok, /ready 200 once attached";
	const char *name2 = "admin: unknown path 404; wrong method 405 with Allow";
	const char *name3 = "admin: POST /drain from a web page (Origin) refused 403, still ready";
	char r[4096], r2[4096], r3[4096], r4[4096];
	int a, b, c, d;

	a = http("GET", "/healthz", NULL, r, sizeof(r));
	b = http("GET", "/ready", NULL, r2, sizeof(r2));
	TH_RESULT(a == 200 && !strcmp(http_body(r), "ok\n") && b == 200, name,
		  "/healthz %d '%s', /ready %d '%s'", a, http_body(r), b,
		  http_body(r2));
	a = http("GET", "/nope", NULL, r, sizeof(r));
	b = http("GET", "/drain", NULL, r2, sizeof(r2));
	c = http("POST", "/metrics", NULL, r3, sizeof(r3));
	d = http("DELETE", "/ready", NULL, r4, sizeof(r4));
	TH_RESULT(a == 404 && b == 405 && strstr(r2, "\r\nAllow: POST\r\n") &&
			  c == 405 && strstr(r3, "\r\nAllow: GET, HEAD\r\n") &&
			  d == 405,
		  name2, "404: %d, GET /drain %d, POST /metrics %d, DELETE /ready %d:\n%s\n%s",
		  a, b, c, d, r2, r3);
	a = http("POST", "/drain", "Origin: http://example.com\r\n", r, sizeof(r));
	b = http("GET", "/ready", NULL, r2, sizeof(r2));
	TH_RESULT(a == 403 && b == 200, name3, "POST %d, then /ready %d", a, b);
}

/* The running configuration's version is its file's: the first 16 hex
 * digits of the SHA-256 of cfg1, in /stats and /metrics.
 */
static void check_config_version(void)
{
	const char *name = "admin: /stats and /metrics name the running config's "
			   "version (its file's SHA-256) and load time";
	static char r[256 * 1024], m[256 * 1024];
	char hex[17], want_s[64], want_m[96];
	char *text = NULL;
	size_t len = 0;
	int a, b;

	if (!TH_CHECK(!sl_read_file(cfg1, 1 << 20, &text, &len, NULL), name,
		      "reading %s", cfg1))
		return;
	th_config_version(text, len, hex);
	free(text);
	snprintf(want_s, sizeof(want_s), "\"config\":{\"version\":\"%s\",\"loaded_ms\":", hex);
	snprintf(want_m, sizeof(want_m), "sidelane_config_info{version=\"%s\"} 1", hex);
	a = http("GET", "/stats", NULL, r, sizeof(r));
	b = http("GET", "/metrics", NULL, m, sizeof(m));
	TH_RESULT(a == 200 && b == 200 && strstr(r, want_s) && strstr(m, want_m) &&
			  strstr(m, "sidelane_config_loaded_timestamp_seconds 1"),
		  name, "/stats %d, /metrics %d; want %s and %s", a, b, want_s,
		  want_m);
}

/* The listening socket: 127.0.0.1 only, owned by our sidelane. */
static void check_bound(void)
{
	const char *name = "admin: the socket is bound to 127.0.0.1 only (ss)";
	char filter[32], out[4096], want[64], pid[32];
	char *argv[] = { "ss", "-Hltnp", filter, NULL };
	int st, lines = 0;
	char *p;

	snprintf(filter, sizeof(filter), "sport = :%d", admin_port);
	snprintf(want, sizeof(want), "127.0.0.1:%d ", admin_port);
	snprintf(pid, sizeof(pid), "pid=%d,", (int)app.sidelane);
	st = th_run(NULL, NULL, argv, out, sizeof(out), 5000);
	for (p = out; (p = strchr(p, '\n')); p++)
		lines++;
	TH_RESULT(st == 0 && lines == 1 && strstr(out, want) && strstr(out, pid),
		  name, "ss exit %d, %d line(s), want one with '%s' and '%s': %s",
		  st, lines, want, pid, out);
}

/* A second sidelane (its own cgroups and pins) given the same admin port. */
static void check_second(void)
{
	const char *name = "admin: a second sidelane on the same admin port warns and runs on";
	char link[PATH_MAX + 32], r[4096];
	bool warned = false, attached = false;
	__u64 end = th_now_ms() + 15000;
	int code;

	if (!TH_CHECK(!start_sidelane(&app2, &side2, cfg2), name, "fork: %s",
		      strerror(errno)))
		return;
	snprintf(link, sizeof(link), "%s/%s", app2.pin_root, SL_PIN_LINK_SOCKOPS);
	while (th_now_ms() < end && alive(&app2) && !(warned && attached)) {
		warned = log_has(&app2, "admin: cannot listen on 127.0.0.1:") &&
			 log_has(&app2, "Address already in use");
		attached = log_has(&app2, "running;") && !access(link, F_OK);
		usleep(50 * 1000);
	}
	usleep(300 * 1000); /* still there a moment later */
	code = http("GET", "/healthz", NULL, r, sizeof(r));
	if (TH_CHECK(warned && attached && alive(&app2), name,
		     "warned %d, running %d, alive %d (log %s)", warned, attached,
		     alive(&app2), app2.log) &&
	    TH_CHECK(code == 200, name, "the first one's /healthz: %d", code))
		th_pass(name);
	th_env_detach(&app2);
}

/* Echo msg over fd (the ambassador's echo upstream), checked. */
static bool echo_ok(int fd, const char *msg)
{
	char in[64];
	size_t n = strlen(msg);

	return send(fd, msg, n, MSG_NOSIGNAL) == (ssize_t)n &&
	       !sl_io_full(fd, in, n, true, IO_MS) && !memcmp(in, msg, n);
}

/* kill -9 of sidelane during traffic (issue 5): what ends in sidelane fails
 * fast, what does not keeps redirecting, and a restart carries on.
 */
static void check_kill9(void)
{
	const char *n1 = "admin: kill -9: a connection relayed by sidelane is reset "
			 "within 1 s, a new one is refused at once";
	const char *n2 = "admin: kill -9: a local app<->app connection keeps redirecting";
	const char *n3 = "admin: kill -9, restart: totals continue, new connections "
			 "relayed and accelerated again";
	struct sl_counters c0 = {}, c1 = {}, c2 = {};
	int fd = -1, nfd, pc = -1, ps = -1, err, rerr;
	long long acc0, acc1;
	char r[4096], buf[16];
	__u64 t0, took, end;
	ssize_t n;

	if (th_enter(&app) || th_tcp_pair("127.0.0.1", "127.0.0.1", &pc, &ps) ||
	    th_leave(&app)) {
		th_fail(n2, "pair in the app cgroup: %s", strerror(errno));
		goto out;
	}
	usleep(20 * 1000);
	fd = th_connect("127.0.0.1", amb_port);
	if (!TH_CHECK(fd >= 0 && echo_ok(fd, "before"), n1, "relay before the kill"))
		goto out;
	usleep(1200 * 1000); /* published: the restart continues from here */
	if (!TH_CHECK(!scrape(), n3, "scrape"))
		goto out;
	acc0 = M("sidelane_proxy_connections_accepted_total{direction=\"ambassador\"}");
	th_counters(&app, &c0);
	kill(app.sidelane, SIGKILL);
	th_wait(app.sidelane, 5000);
	app.sidelane = 0;
	t0 = th_now_ms();
	err = wait_in(fd, 1500);
	n = err ? 1 : recv(fd, buf, sizeof(buf), 0);
	rerr = n < 0 ? errno : 0;
	took = th_now_ms() - t0;
	nfd = th_connect("127.0.0.1", amb_port);
	if (nfd >= 0)
		close(nfd);
	/* a clean EOF would read as a whole answer: the cut must be an RST */
	if (TH_CHECK(!err && n < 0 && rerr == ECONNRESET && took < 1000, n1,
		     "the relayed connection: %s after %llu ms",
		     err ? "no end" : n > 0 ? "data" : n == 0 ? "a clean EOF" :
		     strerror(rerr), (unsigned long long)took) &&
	    TH_CHECK(nfd == -ECONNREFUSED, n1, "new connect: %s",
		     nfd >= 0 ? "accepted" : strerror(-nfd)))
		th_pass(n1);
	if (TH_CHECK(write(pc, "x", 1) == 1 && read(ps, buf, 1) == 1 &&
			     write(ps, "y", 1) == 1 && read(pc, buf, 1) == 1,
		     n2, "the pair broke") &&
	    (th_counters(&app, &c1), TH_CHECK(c1.redirect_ok >= c0.redirect_ok + 2, n2,
					      "redirect_ok %llu -> %llu",
					      (unsigned long long)c0.redirect_ok,
					      (unsigned long long)c1.redirect_ok)))
		th_pass(n2);

	err = start_sidelane(&app, &side, cfg1);
	end = th_now_ms() + 15000;
	while (!err && alive(&app) && http("GET", "/ready", NULL, r, sizeof(r)) != 200 &&
	       th_now_ms() < end)
		usleep(50 * 1000);
	close(fd);
	fd = -1;
	if (!TH_CHECK(!err && alive(&app), n3, "restart (log %s)", app.log) ||
	    !TH_CHECK(!th_enter(&app), n3, "enter"))
		goto out;
	fd = th_connect("127.0.0.1", amb_port);
	usleep(20 * 1000);
	err = fd >= 0 && echo_ok(fd, "after restart") ? 0 : -EIO;
	th_leave(&app);
	th_counters(&app, &c2);
	/* a restart reuses the pins: no load, so the first status read
	 * happens on the admin thread
	 */
	check_scrape_cost("after kill -9 and a restart");
	usleep(1200 * 1000);
	scrape();
	acc1 = M("sidelane_proxy_connections_accepted_total{direction=\"ambassador\"}");
	if (TH_CHECK(!err, n3, "relay after the restart") &&
	    TH_CHECK(acc1 >= acc0 + 1, n3, "accepted total %lld -> %lld", acc0, acc1) &&
	    TH_CHECK(c2.redirect_ok > c1.redirect_ok, n3,
		     "the app->proxy hop was not redirected"))
		th_pass(n3);
out:
	if (fd >= 0)
		close(fd);
	if (pc >= 0)
		close(pc);
	if (ps >= 0)
		close(ps);
}

static void check_drain(void)
{
	const char *name = "admin: POST /drain 202, then /ready 503 with a reason";
	const char *name2 = "admin: draining: a new connection to the ambassador is refused";
	const char *name3 = "admin: draining: an open connection keeps flowing";
	const char *name4 = "admin: draining: the open connection is closed after drain_timeout_ms";
	const char *name5 = "admin: drained: /metrics says draining, /healthz 200, sidelane runs";
	char r[4096], r2[4096], buf[100], echo[100];
	int fd, code, code2, nfd = 0, err;
	__u64 t0, t_closed;
	ssize_t n;

	/* opened and used before the drain */
	fd = th_connect("127.0.0.1", amb_port);
	th_fill(buf, sizeof(buf), 7);
	if (!TH_CHECK(fd >= 0 && send(fd, buf, sizeof(buf), MSG_NOSIGNAL) == sizeof(buf) &&
			      !sl_io_full(fd, echo, sizeof(echo), true, IO_MS),
		      name, "connection before the drain: %s", strerror(errno))) {
		if (fd >= 0)
			close(fd);
		return;
	}
	t0 = th_now_ms();
	code = http("POST", "/drain", NULL, r, sizeof(r));
	code2 = http("GET", "/ready", NULL, r2, sizeof(r2));
	TH_RESULT(code == 202 && code2 == 503 &&
			  !strncmp(http_body(r2), "not ready: draining", 19) &&
			  strchr(http_body(r2), '\n') == http_body(r2) + strlen(http_body(r2)) - 1,
		  name, "POST /drain %d, /ready %d '%s'", code, code2, http_body(r2));
	/* the loop closes its listeners within a tick */
	do {
		nfd = th_connect("127.0.0.1", amb_port);
		if (nfd >= 0) {
			close(nfd);
			usleep(20 * 1000);
		}
	} while (nfd >= 0 && th_now_ms() - t0 < 1000);
	TH_RESULT(nfd == -ECONNREFUSED, name2, "connect: %s",
		  nfd >= 0 ? "accepted" : strerror(-nfd));
	th_fill(buf, sizeof(buf), 8);
	err = send(fd, buf, sizeof(buf), MSG_NOSIGNAL) == sizeof(buf) ? 0 : -errno;
	err = err ?: sl_io_full(fd, echo, sizeof(echo), true, IO_MS);
	TH_RESULT(!err && !memcmp(buf, echo, sizeof(buf)) &&
			  th_now_ms() - t0 < DRAIN_MS,
		  name3, "%s after %llu ms", strerror(-err),
		  (unsigned long long)(th_now_ms() - t0));
	/* then nothing until the proxy closes it */
	err = wait_in(fd, DRAIN_MS + 3000);
	t_closed = th_now_ms();
	n = err ? -1 : recv(fd, echo, sizeof(echo), 0);
	close(fd);
	th_info("drain: open connection ended %llu ms after POST /drain (recv %zd%s%s)",
		(unsigned long long)(t_closed - t0), n, n < 0 ? ": " : "",
		n < 0 ? strerror(errno) : "");
	TH_RESULT(!err && n <= 0 && t_closed - t0 >= DRAIN_MS - 100 &&
			  t_closed - t0 < DRAIN_MS + 2000,
		  name4, "ended after %llu ms with %zd (want EOF or reset at ~%d ms)",
		  (unsigned long long)(t_closed - t0), n, DRAIN_MS);
	code = http("GET", "/healthz", NULL, r, sizeof(r));
	err = scrape();
	TH_RESULT(!err && code == 200 && alive(&app) &&
			  M("sidelane_draining{}") == 1 && M("sidelane_ready{}") == 0 &&
			  J("admin.draining") == 1 &&
			  M("sidelane_proxy_connections_closed_total{direction=\"ambassador\",reason=\"shutdown\"}") == 1 &&
			  M("sidelane_proxy_connections_active{direction=\"ambassador\"}") == 0,
		  name5, "scrape %d, /healthz %d, alive %d, draining %lld, ready %lld, shutdown %lld",
		  err, code, alive(&app), M("sidelane_draining{}"),
		  M("sidelane_ready{}"),
		  M("sidelane_proxy_connections_closed_total{direction=\"ambassador\",reason=\"shutdown\"}"));
}

/* Issue 5's forced self-test failure: a restart with the self-test told to
 * fail keeps the proxy relaying while no socket is redirected, and says why
 * in the log, /metrics and status.
 */
static void check_fallback(void)
{
	const char *name = "admin: self-test forced to fail: the proxy relays, nothing "
			   "is redirected, log, /metrics and status say why";
	char r[4096], out[8192];
	char *argv[] = { (char *)th_sidelane_bin(), "status", "--pin-root",
			 app.pin_root, NULL };
	long long inserted0;
	__u64 end;
	pid_t pid;
	int st;

	th_env_detach(&app); /* a fresh start: nothing accelerated before */
	setenv("SIDELANE_SELFTEST_FAIL", "any", 1);
	st = start_sidelane(&app, &side, cfg1);
	unsetenv("SIDELANE_SELFTEST_FAIL");
	end = th_now_ms() + 15000;
	while (!st && alive(&app) && http("GET", "/ready", NULL, r, sizeof(r)) != 200 &&
	       th_now_ms() < end)
		usleep(50 * 1000);
	if (!TH_CHECK(!st && alive(&app), name, "sidelane not ready (log %s)", app.log))
		return;
	if (!TH_CHECK(!scrape(), name, "scrape"))
		return;
	inserted0 = M("sidelane_fastpath_sock_inserted_total{}");
	pid = fork();
	if (!pid)
		_exit(app_traffic());
	st = th_wait(pid, 30000);
	if (!TH_CHECK(st == 0, name, "app traffic through the proxy: exit %d", st))
		return;
	usleep(1200 * 1000); /* one publish of the proxy's counters */
	if (!TH_CHECK(!scrape(), name, "scrape"))
		return;
	if (!TH_CHECK(M("sidelane_fastpath_redirect_enabled{}") == 0 &&
			      M("sidelane_fastpath_redirect_ok_total{}") == 0 &&
			      M("sidelane_fastpath_sock_inserted_total{}") == inserted0 &&
			      M("sidelane_fastpath_redirect_off_total{}") >= 2 * N_CONNS,
		      name, "redirect enabled %lld, ok %lld, inserted %lld -> %lld, off %lld",
		      M("sidelane_fastpath_redirect_enabled{}"),
		      M("sidelane_fastpath_redirect_ok_total{}"), inserted0,
		      M("sidelane_fastpath_sock_inserted_total{}"),
		      M("sidelane_fastpath_redirect_off_total{}")) ||
	    !TH_CHECK(log_has(&app, "self-test failed") == 1, name,
		      "no self-test line in %s", app.log))
		return;
	st = th_run(NULL, NULL, argv, out, sizeof(out), 10000);
	TH_RESULT(st == 0 && strstr(out, "redirect: OFF") &&
			  strstr(out, "SIDELANE_SELFTEST_FAIL"),
		  name, "status %d: %s", st, out);
}

/* ---- golden shapes: what operators and their tools read ---- */

#define GOLDEN_DIR "tests/golden"

/* One output against its golden shape (tests/golden/shape.py): `kind` of
 * src, the rest replacements for the text form. SIDELANE_GOLDEN_UPDATE=1
 * rewrites the golden file instead.
 */
static bool golden(const char *file, const char *kind, const char *src,
		   const char *sub1, const char *sub2, const char *sub3)
{
	char path[128], out[8192];
	char *argv[] = { PY,	     GOLDEN_DIR "/shape.py", path, (char *)kind,
			 (char *)src, (char *)sub1, (char *)sub2, (char *)sub3,
			 NULL };
	int st;

	snprintf(path, sizeof(path), GOLDEN_DIR "/%s", file);
	st = th_run(NULL, NULL, argv, out, sizeof(out), 10000);
	if (st)
		th_info("%s differs from what sidelane shows now (review, then "
			"SIDELANE_GOLDEN_UPDATE=1 make integ):\n%s", path, out);
	return !st;
}

/* Names, not values: metric families and label sets, the JSON keys of
 * /stats and `status --json`, the lines of `status`, the keys of each kind
 * of access-log line. A renamed or lost counter, or a moved key, fails
 * here; a deliberate change is a change to tests/golden/.
 */
static void check_golden(void)
{
	const char *name = "admin: outputs keep their golden shape: /metrics, "
			   "/stats, status, status --json, access log";
	char url[64], st_txt[96], st_json[128], sub_pin[PATH_MAX + 32],
		sub_cg[PATH_MAX + 32], sub_side[PATH_MAX + 32];
	char *argv[] = { (char *)th_sidelane_bin(), "status", "--pin-root",
			 app.pin_root, NULL, NULL };
	static char out[64 * 1024];
	bool ok = true;

	snprintf(st_txt, sizeof(st_txt), "/tmp/sidelane-test-admin-%d.status",
		 (int)getpid());
	snprintf(st_json, sizeof(st_json), "%s.json", st_txt);
	if (!TH_CHECK(!th_run(NULL, NULL, argv, out, sizeof(out), 10000) &&
			      !th_write_text(st_txt, out),
		      name, "sidelane status failed: %s", out))
		goto out;
	argv[4] = "--json";
	if (!TH_CHECK(!th_run(NULL, NULL, argv, out, sizeof(out), 10000) &&
			      !th_write_text(st_json, out),
		      name, "sidelane status --json failed: %s", out))
		goto out;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", admin_port);
	snprintf(sub_pin, sizeof(sub_pin), "%s=<pin_root>", app.pin_root);
	snprintf(sub_cg, sizeof(sub_cg), "%s=<cgroup>", app.cgroup);
	snprintf(sub_side, sizeof(sub_side), "%s=<sidecar_cgroup>", side.cgroup);
	strcat(url, "metrics");
	ok &= golden("metrics.txt", "metrics", url, NULL, NULL, NULL);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/stats", admin_port);
	ok &= golden("stats.txt", "json", url, NULL, NULL, NULL);
	ok &= golden("status-json.txt", "json", st_json, NULL, NULL, NULL);
	/* the sidecar cgroup's path holds the app's: replaced first */
	ok &= golden("status.txt", "text", st_txt, sub_side, sub_cg, sub_pin);
	ok &= golden("access-log.txt", "alog", alog_path, NULL, NULL, NULL);
	TH_RESULT(ok, name, "see the differences above");
out:
	unlink(st_txt);
	unlink(st_json);
}

/* The access log, summed up by python: every line a JSON object, and the
 * counts of the lines the traffic above must have produced.
 */
static const char py_alog[] =
	"import json, sys\n"
	"amb, deny, n, cb, pout, pin = (int(x) for x in sys.argv[2:8])\n"
	"relay = sock = denied = pair_c = pair_s = 0\n"
	"for l in open(sys.argv[1]):\n"
	"    e = json.loads(l)\n"
	"    k = e['kind']\n"
	"    if k == 'relay' and e['listener'] == 'ambassador' and e['reason'] == 'done' \\\n"
	"       and e['bytes_up'] == cb and e['bytes_down'] == cb: relay += 1\n"
	"    if k == 'denied' and e['rule'] == deny and e['dst'].endswith(':80') \\\n"
	"       and e['pid'] > 0 and e['comm']: denied += 1\n"
	"    if k == 'socket' and e['remote'] == '127.0.0.1:%d' % amb and e['accelerated'] \\\n"
	"       and e['bytes_out'] == cb and e['bytes_in'] == cb and e['pid'] > 0: sock += 1\n"
	"    if k == 'socket' and e['accelerated'] and e['close'] == 'fin':\n"
	"        if e['direction'] == 'outbound' and e['bytes_out'] == pout and e['bytes_in'] == pin: pair_c += 1\n"
	"        if e['direction'] == 'inbound' and e['bytes_out'] == pin and e['bytes_in'] == pout: pair_s += 1\n"
	"print('relay %d socket %d denied %d pair %d %d' % (relay, sock, denied, pair_c, pair_s))\n";

static void check_accounting(void)
{
	const char *name = "admin: access log: one JSON line per relayed, accelerated and "
			   "denied connection, bytes as sent";
	char a[5][16], out[512], want[128];
	char *argv[] = { PY, "-c", (char *)py_alog, alog_path, a[0], a[1], a[2],
			 a[3], a[4], NULL, NULL };
	char pout[16];
	__u64 end = th_now_ms() + 5000;
	int st;

	snprintf(a[0], sizeof(a[0]), "%d", amb_port);
	snprintf(a[1], sizeof(a[1]), "%d", DENY_RULE);
	snprintf(a[2], sizeof(a[2]), "%d", N_CONNS);
	snprintf(a[3], sizeof(a[3]), "%d", CONN_BYTES);
	snprintf(a[4], sizeof(a[4]), "%d", PAIR_OUT);
	snprintf(pout, sizeof(pout), "%d", PAIR_IN);
	argv[9] = pout;
	snprintf(want, sizeof(want), "relay %d socket %d denied %d pair 1 1", N_CONNS,
		 N_CONNS, M_DENIED);
	/* the writer thread and the ring consumer run on their own time */
	do {
		st = th_run(NULL, NULL, argv, out, sizeof(out), 10000);
		if (!st && strstr(out, want))
			break;
		usleep(200 * 1000);
	} while (th_now_ms() < end);
	if (st || !strstr(out, want)) { /* the log, for the reader of the failure */
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "sed 's/^/# /' %s >&2", alog_path);
		if (system(cmd))
			th_info("cannot show %s", alog_path);
	}
	TH_RESULT(!st && strstr(out, want), name, "exit %d: %s (want %s)", st, out,
		  want);
}

static int write_configs(void)
{
	char text[1024];
	int err;

	/* rule 7 denies DENY_IP:80; rule 8 is never hit. app_sockets all:
	 * what is checked here is how redirected bytes are counted (the
	 * default admits no blocking socket: tests/integ/admission.c)
	 */
	snprintf(text, sizeof(text),
		 "capture:\n  outbound: \"127.0.0.1:%d\"\n"
		 "fastpath:\n  app_sockets: all\n"
		 "proxy:\n  ambassadors:\n"
		 "    - listen: \"127.0.0.1:%d\"\n      upstream: \"127.0.0.1:%d\"\n"
		 "admin:\n  listen: \"127.0.0.1:%d\"\n  drain_timeout_ms: %d\n"
		 "accounting:\n  access_log: \"%s\"\n"
		 "policy:\n  rules:\n"
		 "    - id: %d\n      action: deny\n      cidr: %s/32\n      ports: [\"80\"]\n"
		 "    - id: 8\n      action: allow\n      cidr: 10.0.0.0/8\n",
		 out_port, amb_port, echo_port, admin_port, DRAIN_MS, alog_path,
		 DENY_RULE, DENY_IP);
	err = th_write_text(cfg1, text);
	if (err)
		return err;
	/* the second: fast path and policy only, the same admin port */
	snprintf(text, sizeof(text),
		 "capture:\n  enabled: false\n"
		 "fastpath:\n  app_sockets: all\n"
		 "admin:\n  listen: \"127.0.0.1:%d\"\n", admin_port);
	return th_write_text(cfg2, text);
}

int main(void)
{
	const char *setup = "admin: setup: cgroups, echo server, sidelane run with admin.listen";
	char r[4096];
	__u64 end;
	int err;

	setvbuf(stdout, NULL, _IOLBF, 0);
	th_watchdog(120, "admin");
	if (access(PY, X_OK) ||
	    system(PY " -c 'import prometheus_client.parser' 2>/dev/null")) {
		th_skip("admin", PY " with prometheus_client is missing (make deps)");
		return th_summary();
	}
	snprintf(cfg1, sizeof(cfg1), "/tmp/sidelane-test-admin-%d.yaml", (int)getpid());
	snprintf(cfg2, sizeof(cfg2), "/tmp/sidelane-test-admin-%d-2.yaml", (int)getpid());
	snprintf(alog_path, sizeof(alog_path), "/tmp/sidelane-test-admin-%d.log",
		 (int)getpid());
	err = th_cleanup_push(remove_files, NULL);
	err = err ?: th_env_setup(&app, "admin", false);
	err = err ?: th_env_setup(&side, "admin-side", false);
	err = err ?: th_env_setup(&app2, "admin2", false);
	err = err ?: th_env_setup(&side2, "admin2-side", false);
	err = err ?: th_echo_server(64, &echo_port);
	if (!err) {
		admin_port = th_free_port();
		amb_port = th_free_port();
		out_port = th_free_port();
		err = admin_port < 0 || amb_port < 0 || out_port < 0 ? -EADDRINUSE : 0;
	}
	err = err ?: write_configs();
	if (!TH_CHECK(!err, setup, "%s", strerror(-err)))
		goto out;
	if (access(th_sidelane_bin(), X_OK)) {
		th_skip(setup, "no sidelane binary (make first)");
		goto out;
	}
	err = start_sidelane(&app, &side, cfg1);
	/* ready: programs attached and listeners open */
	end = th_now_ms() + 15000;
	while (!err && alive(&app) && http("GET", "/ready", NULL, r, sizeof(r)) != 200 &&
	       th_now_ms() < end)
		usleep(50 * 1000);
	if (!TH_CHECK(!err && alive(&app) && http("GET", "/ready", NULL, r, sizeof(r)) == 200,
		      setup, "sidelane not ready (log %s)", app.log))
		goto out;
	th_pass(setup);
	th_info("admin on 127.0.0.1:%d, ambassador 127.0.0.1:%d -> echo :%d",
		admin_port, amb_port, echo_port);

	if (check_traffic()) {
		check_metrics();
		check_accounting();
		check_golden();
	}
	check_http();
	check_config_version();
	check_slowloris();
	check_scrape_cost("its first start");
	check_bound();
	check_second();
	check_kill9();
	check_drain();
	check_fallback();
out:
	th_env_detach(&app);
	th_env_detach(&app2);
	err = th_env_teardown(&app);
	err = th_env_teardown(&app2) ?: err;
	err = th_env_teardown(&side) ?: err;
	err = th_env_teardown(&side2) ?: err;
	th_cleanup_pop(remove_files, NULL, true);
	TH_RESULT(!err && access(cfg1, F_OK) && access(cfg2, F_OK),
		  "admin: teardown: sidelanes stopped, cgroups, pins and files removed",
		  "%s", strerror(-err));
	return th_summary();
}
