// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Integration test (tests/integ): transparent capture, SO_ORIGINAL_DST,
 * getpeername and connect-time policy with the real programs.
 *
 * This process plays the sidecar: it sits in a "side" cgroup and owns the
 * outbound listeners. The app is a child forked into an "app" cgroup. Every
 * destination used is either captured (rewritten to our loopback listener)
 * or denied at connect(): no packet leaves the host. 198.18.0.0/15 is the
 * benchmarking range, 2001:db8::/32 the documentation one.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include "loader/policy_user.h"
#include "sidelane.h"
#include "capture.h"
#include "loader/capture_user.h"
#include "config/config.h"
#include "loader/fastpath_user.h"
#include "harness.h"

#define SO_ORIGINAL_DST 80
#define IP6T_SO_ORIGINAL_DST 80
#define MARK 0x534c

#define DST4 "198.18.77.2"
#define DST6 "2001:db8:77::2"
#define DENY_NET4 "198.18.99.0" /* /24 denied on port 9090 (rule 7) */
#define DENY_NET6 "2001:db8:99::" /* /48 denied on every port (rule 8) */

static struct th_env app, side;
static int lis4 = -1, lis6 = -1;
static uint16_t lport;
static int app_mark; /* SO_MARK the app sets on its sockets, 0: none */

/* What the app child saw for one connect. */
struct app_res {
	int connect_errno; /* 0: connected */
	char peer[INET6_ADDRSTRLEN];
	uint16_t peer_port;
};

static void sockaddr_of(const char *ip, uint16_t port, struct sockaddr_storage *ss,
			socklen_t *len)
{
	memset(ss, 0, sizeof(*ss));
	if (strchr(ip, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		inet_pton(AF_INET6, ip, &s6->sin6_addr);
		*len = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		inet_pton(AF_INET, ip, &s4->sin_addr);
		*len = sizeof(*s4);
	}
}

/* In the app's cgroup: connect to ip:port (a v6 socket when ip has ':'),
 * then getpeername. Runs in the calling process.
 */
static void app_connect(const char *ip, uint16_t port, struct app_res *r)
{
	struct sockaddr_storage ss, peer;
	socklen_t len, plen = sizeof(peer);
	int fd;

	memset(r, 0, sizeof(*r));
	sockaddr_of(ip, port, &ss, &len);
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && app_mark) {
		/* A connect that escaped capture would wait for a SYN-ACK from
		 * nowhere: bound it (SO_SNDTIMEO bounds a blocking connect).
		 */
		struct timeval tv = { .tv_sec = 1 };

		if (setsockopt(fd, SOL_SOCKET, SO_MARK, &app_mark, sizeof(app_mark)) ||
		    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv))) {
			r->connect_errno = errno;
			goto out;
		}
	}
	if (fd < 0 || connect(fd, (struct sockaddr *)&ss, len)) {
		r->connect_errno = errno;
		goto out;
	}
	if (!getpeername(fd, (struct sockaddr *)&peer, &plen)) {
		if (peer.ss_family == AF_INET) {
			struct sockaddr_in *s4 = (struct sockaddr_in *)&peer;

			inet_ntop(AF_INET, &s4->sin_addr, r->peer, sizeof(r->peer));
			r->peer_port = ntohs(s4->sin_port);
		} else {
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&peer;

			inet_ntop(AF_INET6, &s6->sin6_addr, r->peer,
				  sizeof(r->peer));
			r->peer_port = ntohs(s6->sin6_port);
		}
	}
	/* Hold the connection until the sidecar has asked SO_ORIGINAL_DST. */
	usleep(100 * 1000);
out:
	if (fd >= 0)
		close(fd);
}

/* Fork an app child that joins the app cgroup and runs app_connect. */
static int app_fork(const char *ip, uint16_t port, struct app_res *r)
{
	int p[2], st;
	pid_t pid;

	if (pipe(p))
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (!pid) {
		struct app_res res;

		close(p[0]);
		if (th_enter(&app))
			_exit(2);
		app_connect(ip, port, &res);
		_exit(write(p[1], &res, sizeof(res)) == sizeof(res) ? 0 : 3);
	}
	close(p[1]);
	st = read(p[0], r, sizeof(*r)) == sizeof(*r) ? 0 : -EIO;
	close(p[0]);
	if (th_wait(pid, 5000) != 0 && !st)
		st = -ECHILD;
	return st;
}

/* As the sidecar: accept one captured connection, return what
 * SO_ORIGINAL_DST says (SOL_IP on AF_INET, SOL_IPV6 otherwise).
 */
static int sidecar_accept(int lis, char *ip, size_t iplen, uint16_t *port)
{
	struct pollfd pfd = { .fd = lis, .events = POLLIN };
	struct sockaddr_storage o;
	socklen_t olen = sizeof(o);
	int fd, err = 0;

	if (poll(&pfd, 1, 3000) != 1)
		return -ETIMEDOUT;
	fd = accept4(lis, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (!getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &o, &olen)) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&o;

		inet_ntop(AF_INET, &s4->sin_addr, ip, iplen);
		*port = ntohs(s4->sin_port);
	} else if (olen = sizeof(o),
		   !getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &o, &olen)) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&o;

		inet_ntop(AF_INET6, &s6->sin6_addr, ip, iplen);
		*port = ntohs(s6->sin6_port);
	} else {
		err = -errno;
	}
	close(fd);
	return err;
}

static int listen_on(const char *ip, uint16_t *port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, one = 1;

	sockaddr_of(ip, *port, &ss, &len);
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) || listen(fd, 512)) {
		close(fd);
		return -errno;
	}
	if (!*port) {
		len = sizeof(ss);
		getsockname(fd, (struct sockaddr *)&ss, &len);
		*port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	}
	return fd;
}

static void set_rule(struct sl_rule *r, uint32_t id, enum sl_action a,
		     const char *net, uint8_t plen, uint16_t lo, uint16_t hi)
{
	memset(r, 0, sizeof(*r));
	r->id = id;
	r->action = a;
	r->cidr.family = strchr(net, ':') ? AF_INET6 : AF_INET;
	inet_pton(r->cidr.family, net, r->cidr.addr);
	r->cidr.prefixlen = plen;
	if (hi) {
		r->n_ports = 1;
		r->ports[0] = (struct sl_port_range){ lo, hi };
	}
}

static void make_config_policy(struct sl_policy *pol)
{
	pol->default_action = SL_ACTION_ALLOW;
	pol->n_rules = 3;
	set_rule(&pol->rules[0], 7, SL_ACTION_DENY, DENY_NET4, 24, 9090, 9090);
	set_rule(&pol->rules[1], 8, SL_ACTION_DENY, DENY_NET6, 48, 0, 0);
	/* Nested inside rule 7's /24: the most specific prefix wins. */
	set_rule(&pol->rules[2], 5, SL_ACTION_ALLOW, "198.18.99.7", 32, 9090, 9090);
}

static void make_config(struct sl_config *cfg)
{
	struct sockaddr_in *o = (struct sockaddr_in *)&cfg->capture.outbound.addr;

	memset(cfg, 0, sizeof(*cfg));
	cfg->capture.enabled = 1;
	cfg->capture.mark = MARK;
	o->sin_family = AF_INET;
	o->sin_port = htons(lport);
	inet_pton(AF_INET, "127.0.0.1", &o->sin_addr);
	cfg->capture.outbound.addrlen = sizeof(*o);
	cfg->capture.n_include_cidrs = 2;
	cfg->capture.include_cidrs[0] = (struct sl_cidr){ .family = AF_INET };
	cfg->capture.include_cidrs[1] = (struct sl_cidr){ .family = AF_INET6 };
	make_config_policy(&cfg->policy);
}

/* One captured connect: app sees the original as its peer; the sidecar's
 * SO_ORIGINAL_DST says the same.
 */
static void check_captured(const char *tag, const char *ip, uint16_t port,
			   int lis, const char *want_orig, const char *want_peer)
{
	char name[192], orig[INET6_ADDRSTRLEN] = "";
	struct app_res r;
	uint16_t oport = 0;
	int err, aerr;
	pid_t pid;
	int p[2];

	snprintf(name, sizeof(name), "capture/%s: %s:%u captured, SO_ORIGINAL_DST and getpeername", tag, ip, port);
	/* The child connects while we accept: run it in the background. */
	if (pipe(p)) {
		th_fail(name, "pipe");
		return;
	}
	pid = fork();
	if (!pid) {
		close(p[0]);
		if (th_enter(&app))
			_exit(2);
		app_connect(ip, port, &r);
		_exit(write(p[1], &r, sizeof(r)) == sizeof(r) ? 0 : 3);
	}
	close(p[1]);
	err = sidecar_accept(lis, orig, sizeof(orig), &oport);
	aerr = read(p[0], &r, sizeof(r)) == sizeof(r) ? 0 : -EIO;
	close(p[0]);
	th_wait(pid, 5000);
	if (TH_CHECK(!aerr && !r.connect_errno, name, "app connect: %s",
		     strerror(aerr ? -aerr : r.connect_errno)) &&
	    TH_CHECK(!err, name, "SO_ORIGINAL_DST: %s", strerror(-err)) &&
	    TH_CHECK(!strcmp(orig, want_orig) && oport == port, name,
		     "SO_ORIGINAL_DST %s:%u, want %s:%u", orig, oport, want_orig,
		     port) &&
	    TH_CHECK(!strcmp(r.peer, want_peer) && r.peer_port == port, name,
		     "getpeername %s:%u, want %s:%u", r.peer, r.peer_port,
		     want_peer, port))
		th_pass(name);
}

static void check_denied(const char *tag, const char *ip, uint16_t port)
{
	char name[128];
	struct app_res r;
	int err;

	snprintf(name, sizeof(name), "policy/%s: %s:%u refused with EPERM", tag, ip,
		 port);
	err = app_fork(ip, port, &r);
	if (TH_CHECK(!err, name, "app child: %s", strerror(-err)) &&
	    TH_CHECK(r.connect_errno == EPERM, name, "connect: %s",
		     r.connect_errno ? strerror(r.connect_errno) : "succeeded"))
		th_pass(name);
}

/* A thread of the app: the same connect, the same refusal. */
static void *thread_connect(void *arg)
{
	app_connect(DENY_NET4 "", 9090, arg);
	return NULL;
}

static void check_denied_from_thread(void)
{
	const char *name = "policy/bypass: a new thread of the app is refused too";
	struct app_res r;
	pid_t pid;
	int p[2];

	if (pipe(p)) {
		th_fail(name, "pipe");
		return;
	}
	pid = fork();
	if (!pid) {
		pthread_t t;
		struct app_res res = {};

		close(p[0]);
		if (th_enter(&app))
			_exit(2);
		/* Address of the denied /24, as a thread started after entry. */
		pthread_create(&t, NULL, thread_connect, &res);
		pthread_join(t, NULL);
		_exit(write(p[1], &res, sizeof(res)) == sizeof(res) ? 0 : 3);
	}
	close(p[1]);
	if (read(p[0], &r, sizeof(r)) != sizeof(r))
		r.connect_errno = -1;
	close(p[0]);
	th_wait(pid, 5000);
	TH_RESULT(r.connect_errno == EPERM, name, "connect: %d", r.connect_errno);
}

/* The proxy's user-space check must decide as the connect hooks did. */
static void check_userspace_verdicts(void)
{
	static const struct {
		const char *ip;
		uint16_t port;
		int deny;
		uint32_t rule;
	} cases[] = {
		{ "198.18.99.1", 9090, 1, 7 },	   { "::ffff:198.18.99.1", 9090, 1, 7 },
		{ "198.18.99.1", 9091, 0, 0 },	   { DST4, 8080, 0, 0 },
		{ "198.18.99.7", 9090, 0, 5 },
		{ "2001:db8:99::5", 443, 1, 8 }, { DST6, 8443, 0, 0 },
	};
	const char *name = "policy: the proxy's user-space check agrees with the kernel";
	struct sl_policy_checker c;
	struct sockaddr_storage ss;
	socklen_t len;
	uint32_t rule;
	size_t i;
	int v;

	if (!TH_CHECK(!sl_policy_checker_open(app.pin_root, &c), name, "open"))
		return;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		sockaddr_of(cases[i].ip, cases[i].port, &ss, &len);
		v = sl_policy_check(&c, (struct sockaddr *)&ss, &rule);
		if (!TH_CHECK((v == -EPERM) == cases[i].deny && rule == cases[i].rule,
			      name, "%s:%u: verdict %d rule %u, want deny=%d rule %u",
			      cases[i].ip, cases[i].port, v, rule, cases[i].deny,
			      cases[i].rule))
			break;
	}
	sl_policy_checker_close(&c);
	if (i == sizeof(cases) / sizeof(cases[0]))
		th_pass(name);
}

/* A checker that cannot read the policy state refuses (fails closed). */
static void check_userspace_fail_closed(void)
{
	const char *name = "policy: the proxy's check refuses when it cannot read the state";
	struct sl_policy_checker c;
	struct sockaddr_storage ss;
	socklen_t len;
	uint32_t rule;
	int v;

	memset(&c, 0xff, sizeof(c)); /* every fd -1 */
	sockaddr_of(DST4, 8080, &ss, &len);
	v = sl_policy_check(&c, (struct sockaddr *)&ss, &rule);
	TH_RESULT(v == -EPERM, name, "verdict %d", v);
}

/* An app process that sets sidelane's own SO_MARK (CAP_NET_RAW suffices,
 * and container runtimes grant it by default) is still judged by policy,
 * and, the sidecar being in a cgroup of its own, still captured: the mark
 * only exempts when the sidecar shares the app's cgroup.
 */
static void check_mark_no_bypass(void)
{
	app_mark = MARK;
	check_denied("mark: an app socket with sidelane's SO_MARK", "198.18.99.1", 9090);
	check_captured("mark: an app socket with sidelane's SO_MARK, sidecar in its own cgroup",
		       DST4, 8082, lis4, DST4, DST4);
	app_mark = 0;
}

/* Connects that fail after the connect hook but before the SYN: an
 * IPV6_V6ONLY socket is rewritten to the v4-mapped listener and refused
 * with ENETUNREACH. More of them than the old cookie table held: none may
 * leave a record behind, and capture must go on.
 */
#define V6ONLY_FAILS (SL_MAX_CAPTURED + 64)

static void check_failed_connects(void)
{
	const char *name = "capture: connects failing before the SYN leave no record";
	struct sl_cap_status st0, st1;
	int p[2], n[2] = { -1, -1 };
	pid_t pid;

	sl_cap_status(app.pin_root, &st0);
	if (pipe(p)) {
		th_fail(name, "pipe");
		return;
	}
	pid = fork();
	if (!pid) {
		struct sockaddr_storage ss;
		int res[2] = { 0, 0 }, i, fd, one = 1; /* ENETUNREACH, other */
		socklen_t len;

		close(p[0]);
		if (th_enter(&app))
			_exit(2);
		sockaddr_of("::ffff:" DST4, 8083, &ss, &len);
		for (i = 0; i < V6ONLY_FAILS; i++) {
			fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
			if (fd < 0 ||
			    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one))) {
				res[1]++;
			} else if (connect(fd, (struct sockaddr *)&ss, len)) {
				res[errno == ENETUNREACH ? 0 : 1]++;
			} else {
				res[1]++;
			}
			if (fd >= 0)
				close(fd);
		}
		_exit(write(p[1], res, sizeof(res)) == sizeof(res) ? 0 : 3);
	}
	close(p[1]);
	if (read(p[0], n, sizeof(n)) != sizeof(n))
		n[0] = n[1] = -1;
	close(p[0]);
	th_wait(pid, 30000);
	sl_cap_status(app.pin_root, &st1);
	th_info("v6only: %d connects ENETUNREACH, %d otherwise; captured +%llu, "
		"table_full +%llu, live records %u -> %u", n[0], n[1],
		(unsigned long long)(st1.stats.reason[SL_CR_CAPTURED] -
				     st0.stats.reason[SL_CR_CAPTURED]),
		(unsigned long long)(st1.stats.reason[SL_CR_TABLE_FULL] -
				     st0.stats.reason[SL_CR_TABLE_FULL]),
		st0.captured_live, st1.captured_live);
	if (TH_CHECK(n[0] == V6ONLY_FAILS, name, "see the line above") &&
	    TH_CHECK(st1.stats.reason[SL_CR_TABLE_FULL] == st0.stats.reason[SL_CR_TABLE_FULL],
		     name, "table_full grew") &&
	    TH_CHECK(st1.captured_live <= st0.captured_live, name,
		     "live records %u -> %u", st0.captured_live, st1.captured_live))
		th_pass(name);
	check_captured("still, after connects that failed before the SYN", DST4, 8084,
		       lis4, DST4, DST4);
}

/* ---- policy reload under load ---------------------------------------- */

#define HAMMER_CONNECTS 3000 /* at least */
#define HAMMER_CONNECTS_MAX (20 * HAMMER_CONNECTS)

static volatile int draining;

static void *drain(void *arg)
{
	struct pollfd pfd = { .fd = *(int *)arg, .events = POLLIN };

	while (draining) {
		int fd;

		if (poll(&pfd, 1, 50) != 1)
			continue;
		while ((fd = accept4(pfd.fd, NULL, NULL, SOCK_CLOEXEC)) >= 0)
			close(fd);
	}
	return NULL;
}

struct hammer_res {
	int x_refused, x_through, y_ok, y_refused, other;
	int n; /* connects made */
};

/* Shared by the connecting child, the second writer and the test: the
 * connects go on (past HAMMER_CONNECTS) until both writers have reloaded
 * enough times while they ran, however the machine's load splits the CPU.
 */
static struct hammer_shared {
	volatile int writer2; /* the second writer's reloads so far */
	volatile int enough; /* set by the test: the child may stop */
} *hsh;

#define FILLER_RULES 100

/* Two rule sets that agree on X (denied) and Y (allowed) but say it through
 * different prefixes, ids and orders, so every swap rewrites the tries.
 * Filler rules (10.k.v.0/24, never connected to) make each fill take long
 * enough for two unserialised writers to overlap, as they could before
 * sl_policy_apply took the lock.
 */
static void policy_variant(struct sl_policy *pol, int v)
{
	char net[32];
	unsigned int k;

	memset(pol, 0, sizeof(*pol));
	pol->default_action = SL_ACTION_ALLOW;
	/* First in file order, so a refill puts X's prefix back last. */
	for (k = 0; k < FILLER_RULES; k++) {
		snprintf(net, sizeof(net), "10.%u.%d.0", k, v);
		set_rule(&pol->rules[pol->n_rules++], 1000 + k,
			 v ? SL_ACTION_ALLOW : SL_ACTION_DENY, net, 24, 0, 0);
	}
	if (!v) {
		set_rule(&pol->rules[k++], 20, SL_ACTION_ALLOW, "198.18.50.0", 24, 0, 0);
		set_rule(&pol->rules[k++], 7, SL_ACTION_DENY, DENY_NET4, 24, 9090, 9090);
		set_rule(&pol->rules[k++], 8, SL_ACTION_DENY, DENY_NET6, 48, 0, 0);
	} else {
		set_rule(&pol->rules[k++], 9, SL_ACTION_DENY, DENY_NET4, 25, 0, 0);
		set_rule(&pol->rules[k++], 30, SL_ACTION_DENY, "198.18.60.0", 24, 0, 0);
		set_rule(&pol->rules[k++], 31, SL_ACTION_ALLOW, "198.18.77.0", 24, 8080, 8080);
	}
	pol->n_rules = k;
}

/* A second writer, as `sidelane policy` next to `sidelane run`: reloads
 * until stop becomes readable, then writes its count there.
 */
static pid_t second_writer(int stop[2], int done[2])
{
	pid_t pid = fork();
	struct sl_policy *pol;
	char err[256];
	int n = 0;

	if (pid)
		return pid;
	close(stop[1]);
	close(done[0]);
	pol = calloc(1, sizeof(*pol));
	for (;;) {
		struct pollfd pfd = { .fd = stop[0], .events = POLLIN };

		if (!pol || poll(&pfd, 1, 0) == 1)
			break;
		policy_variant(pol, n & 1);
		if (sl_policy_apply(app.pin_root, pol, err, sizeof(err))) {
			n = -1;
			break;
		}
		n++;
		hsh->writer2 = n;
	}
	_exit(write(done[1], &n, sizeof(n)) == sizeof(n) ? 0 : 3);
}

static void check_reload_under_load(void)
{
	const char *name = "policy/reload under load, two writers at once: no denied connect through, no allowed one refused";
	struct sl_policy *pol = calloc(1, sizeof(*pol));
	struct hammer_res r = {};
	int p[2], stop[2] = { -1, -1 }, done[2] = { -1, -1 };
	int reloads = 0, reloads2 = -1, st;
	char err[256] = "";
	pid_t pid, wpid = -1;
	pthread_t t;

	if (!hsh) {
		hsh = mmap(NULL, sizeof(*hsh), PROT_READ | PROT_WRITE,
			   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (hsh == MAP_FAILED)
			hsh = NULL;
	}
	if (!pol || !hsh || pipe(p)) {
		th_fail(name, "setup");
		free(pol);
		return;
	}
	hsh->writer2 = hsh->enough = 0;
	if (pipe(stop) || pipe(done)) {
		th_fail(name, "setup");
		close(p[0]);
		close(p[1]);
		goto out_pipes;
	}
	wpid = second_writer(stop, done);
	close(stop[0]);
	close(done[1]);
	stop[0] = done[1] = -1;
	draining = 1;
	pthread_create(&t, NULL, drain, &lis4);
	pid = fork();
	if (!pid) {
		struct hammer_res res = {};
		int i;

		close(p[0]);
		if (th_enter(&app))
			_exit(2);
		for (i = 0; i < HAMMER_CONNECTS ||
			    (!hsh->enough && i < HAMMER_CONNECTS_MAX); i++) {
			struct sockaddr_storage ss;
			socklen_t len;
			int fd, x = i & 1, rc;

			sockaddr_of(x ? "198.18.99.1" : DST4, x ? 9090 : 8080, &ss,
				    &len);
			fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
			rc = connect(fd, (struct sockaddr *)&ss, len) ? errno : 0;
			close(fd);
			if (x)
				rc == EPERM ? res.x_refused++ :
				rc == 0 ? res.x_through++ : res.other++;
			else
				rc == 0 ? res.y_ok++ :
				rc == EPERM ? res.y_refused++ : res.other++;
		}
		res.n = i;
		_exit(write(p[1], &res, sizeof(res)) == sizeof(res) ? 0 : 3);
	}
	close(p[1]);
	/* Swap rule sets as fast as the loader goes while the child runs. */
	for (;;) {
		struct pollfd pfd = { .fd = p[0], .events = POLLIN };

		if (poll(&pfd, 1, 0) == 1)
			break;
		policy_variant(pol, reloads & 1);
		if (sl_policy_apply(app.pin_root, pol, err, sizeof(err))) {
			th_fail(name, "reload %d: %s", reloads, err);
			break;
		}
		reloads++;
		if (reloads >= 20 && hsh->writer2 >= 20)
			hsh->enough = 1;
	}
	st = read(p[0], &r, sizeof(r)) == sizeof(r) ? 0 : -EIO;
	close(p[0]);
	th_wait(pid, 10000);
	if (write(stop[1], "x", 1) != 1 ||
	    read(done[0], &reloads2, sizeof(reloads2)) != sizeof(reloads2))
		reloads2 = -1;
	th_wait(wpid, 15000);
	draining = 0;
	pthread_join(t, NULL);
	th_info("reload: %d + %d reloads during %d connects: X refused %d through %d, "
		"Y ok %d refused %d, other %d", reloads, reloads2, r.n,
		r.x_refused, r.x_through, r.y_ok, r.y_refused, r.other);
	if (TH_CHECK(!st, name, "child") &&
	    TH_CHECK(reloads >= 20 && reloads2 >= 20, name,
		     "only %d + %d reloads overlapped", reloads, reloads2) &&
	    TH_CHECK(!r.x_through && !r.y_refused && !r.other, name,
		     "X through %d, Y refused %d, other errors %d", r.x_through,
		     r.y_refused, r.other) &&
	    TH_CHECK(r.n >= HAMMER_CONNECTS && r.x_refused + r.y_ok == r.n, name,
		     "counts"))
		th_pass(name);
	/* Back to the test's own rule set. */
	make_config_policy(pol);
	sl_policy_apply(app.pin_root, pol, err, sizeof(err));
out_pipes:
	if (stop[1] >= 0)
		close(stop[1]);
	if (done[0] >= 0)
		close(done[0]);
	if (stop[0] >= 0)
		close(stop[0]);
	if (done[1] >= 0)
		close(done[1]);
	free(pol);
}

/* Full sets with disjoint ids, swapped a few times: sl_policy_hits holds two
 * sets only, so every swap must apply and the counters of the set that went
 * must be removed; a connect decided by the new set is counted.
 */
static void check_full_sets(void)
{
	const char *name = "policy: full 1024-rule sets with new ids swapped 5 times: each applies, old counters removed";
	struct sl_policy *pol = calloc(1, sizeof(*pol));
	struct sl_policy_hit *hits = calloc(SL_CFG_MAX_RULES + 2, sizeof(*hits));
	unsigned int round, k, n_hits = 0, stale = 0;
	uint64_t hit = 0;
	char err[256], net[32];
	int configured, ret = 0;

	if (!TH_CHECK(pol && hits, name, "calloc"))
		goto out;
	for (round = 0; round < 5 && !ret; round++) {
		memset(pol, 0, sizeof(*pol));
		pol->default_action = SL_ACTION_ALLOW;
		/* Rule 1 of each set allows DST4:8080 (ids 50000, 51024, ...). */
		set_rule(&pol->rules[0], 50000 + round * SL_CFG_MAX_RULES,
			 SL_ACTION_ALLOW, DST4, 32, 8080, 8080);
		for (k = 1; k < SL_CFG_MAX_RULES; k++) {
			snprintf(net, sizeof(net), "10.%u.%u.0", 100 + k / 256,
				 k % 256);
			set_rule(&pol->rules[k],
				 50000 + round * SL_CFG_MAX_RULES + k,
				 SL_ACTION_DENY, net, 24, 0, 0);
		}
		pol->n_rules = SL_CFG_MAX_RULES;
		ret = sl_policy_apply(app.pin_root, pol, err, sizeof(err));
	}
	if (!TH_CHECK(!ret, name, "round %u: %s (%s)", round, strerror(-ret), err))
		goto out;
	check_captured("policy: a connect under the last full set", DST4, 8080,
		       lis4, DST4, DST4);
	ret = sl_policy_read(app.pin_root, pol, &configured, hits,
			     SL_CFG_MAX_RULES + 2, &n_hits);
	for (k = 0; k < n_hits; k++) {
		if (hits[k].rule_id == 50000 + 4 * SL_CFG_MAX_RULES)
			hit = hits[k].hits;
		else if (hits[k].rule_id &&
			 hits[k].rule_id < 50000 + 4 * SL_CFG_MAX_RULES)
			stale++;
	}
	if (TH_CHECK(!ret, name, "sl_policy_read: %s", strerror(-ret)) &&
	    TH_CHECK(n_hits == SL_CFG_MAX_RULES + 1 && !stale, name,
		     "%u counters, %u of sets that went", n_hits, stale) &&
	    TH_CHECK(hit == 1, name, "the allowing rule counted %llu",
		     (unsigned long long)hit))
		th_pass(name);
	/* Back to the test's own rule set. */
	make_config_policy(pol);
	sl_policy_apply(app.pin_root, pol, err, sizeof(err));
out:
	free(hits);
	free(pol);
}

int main(void)
{
	const char *setup = "capture: setup: programs attached to app and sidecar cgroups";
	struct sl_cap_status st0, st1;
	struct sl_config *cfg = calloc(1, sizeof(*cfg));
	int err, i;

	setvbuf(stdout, NULL, _IOLBF, 0);
	th_watchdog(60, "capture");
	if (!cfg || th_env_setup(&app, "cap-app", false) ||
	    th_env_setup(&side, "cap-side", false) || th_enter(&side)) {
		th_fail(setup, "cgroups: %s", strerror(errno));
		goto out;
	}
	lis4 = listen_on("127.0.0.1", &lport);
	lis6 = listen_on("::1", &lport);
	if (!TH_CHECK(lis4 >= 0 && lis6 >= 0, setup, "listeners on port %u",
		      lport))
		goto out;
	make_config(cfg);
	/* The harness detaches this pin root on every exit path. */
	app.pins_made = true;
	err = sl_cap_attach(app.pin_root, app.cgroup, side.cgroup, cfg);
	if (!TH_CHECK(!err, setup, "sl_cap_attach: %s", strerror(-err)))
		goto out;
	th_pass(setup);
	sl_cap_status(app.pin_root, &st0);

	check_captured("v4", DST4, 8080, lis4, DST4, DST4);
	check_captured("v6", DST6, 8443, lis6, DST6, DST6);
	check_captured("v4-mapped", "::ffff:" DST4, 8081, lis4, DST4,
		       "::ffff:" DST4);

	check_denied("v4", "198.18.99.1", 9090);
	check_denied("bypass: v4-mapped spelling", "::ffff:198.18.99.1", 9090);
	check_denied("v6 whole prefix", "2001:db8:99::5", 443);
	check_denied_from_thread();
	check_captured("policy: more specific /32 allows inside a denied /24",
		       "198.18.99.7", 9090, lis4, "198.18.99.7", "198.18.99.7");
	/* Same /24, other port: rule 7 is port 9090 only. */
	check_captured("policy port range", "198.18.99.1", 9091, lis4,
		       "198.18.99.1", "198.18.99.1");

	sl_cap_status(app.pin_root, &st1);
	th_info("reasons: captured +%llu denied +%llu; SO_ORIGINAL_DST answered +%llu",
		(unsigned long long)(st1.stats.reason[SL_CR_CAPTURED] -
				     st0.stats.reason[SL_CR_CAPTURED]),
		(unsigned long long)(st1.stats.reason[SL_CR_DENIED] -
				     st0.stats.reason[SL_CR_DENIED]),
		(unsigned long long)(st1.stats.origdst_answered -
				     st0.stats.origdst_answered));
	TH_RESULT(st1.stats.reason[SL_CR_CAPTURED] - st0.stats.reason[SL_CR_CAPTURED] == 5 &&
		  st1.stats.reason[SL_CR_DENIED] - st0.stats.reason[SL_CR_DENIED] == 4 &&
		  st1.stats.origdst_answered - st0.stats.origdst_answered == 5,
		  "capture: counters by reason match what was done",
		  "see the line above");
	check_userspace_verdicts();
	check_userspace_fail_closed();
	check_mark_no_bypass();
	check_failed_connects();
	check_reload_under_load();
	check_full_sets();
	/* Every captured connection has closed: no record may remain. */
	for (i = 0; i < 100 && sl_cap_status(app.pin_root, &st1) == 0 &&
		    st1.captured_live; i++)
		usleep(20 * 1000);
	TH_RESULT(!st1.captured_live, "capture: records gone after close",
		  "%u left in sl_orig_by_cookie", st1.captured_live);
out:
	if (lis4 >= 0)
		close(lis4);
	if (lis6 >= 0)
		close(lis6);
	th_env_teardown(&side);
	err = th_env_teardown(&app);
	TH_RESULT(!err, "capture: teardown: cgroups and pins removed", "%s",
		  strerror(-err));
	free(cfg);
	return th_summary();
}
