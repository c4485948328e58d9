// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Integration test (tests/integ): many connections through the real
 * `sidelane run`, and churn. An app in its cgroup (this process) holds
 * SIDELANE_SCALE_CONNS connections (default 2000; `make scale`: 10000) at
 * once to an echo server of this test outside sidelane's cgroups, a mix:
 * - half through a plaintext ambassador from non-blocking app sockets
 *   (admitted with fastpath.app_sockets send: spliced),
 * - a quarter the same from blocking ones (not admitted: relayed),
 * - a quarter over mutual TLS: an ambassador whose upstream is a tls.mesh
 *   destination, the inbound listener (127.0.0.2) of a second sidelane (B,
 *   the upstream pod's sidecar), which terminates it and relays to the echo
 *   server. (One sidelane refuses its own listener as a loop.)
 * Checked:
 * - every connection opens, and every byte of three rounds of messages of
 *   varied sizes comes back right on every connection, all open at once;
 * - the access log has one "done" line per plaintext connection and two per
 *   mTLS one (originated, terminated), each kind with exactly the bytes sent;
 * - the proxy's workers (proxy.workers auto) and RSS at that load;
 * - churn: SIDELANE_CHURN short connections (default 5000; `make soak`:
 *   1000000), 64 at a time, each echoing 64 bytes right; afterwards no map
 *   entry, no descriptor of sidelane is left over, and its RSS is back near
 *   its idle size.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include "sidelane.h"
#include "harness.h"

#define ROUNDS 3
#define MSG_MAX 2048
#define CHURN_AT_ONCE 64
#define OPEN_BATCH 256 /* connects in flight while opening */
#define IO_MS 30000
/* tls.handshake_timeout_ms: the default, stretched in a sanitizer build
 * (500 handshakes at once under ASan on 2 CPUs outlast 10 s)
 */
#define HS_MS (10000 * TH_SLOW)
#define NOFILE_SPARE 512 /* sidelane's descriptors besides connections' */
#define TLS_EVERY 4 /* connection i with i % TLS_EVERY == 3 is mTLS */
#define TLS_TD "scale.test"
#define TLS_ID "spiffe://" TLS_TD "/ns/scale/sa/echo"
#define TLS_IP "127.0.0.2" /* the inbound listener */

enum kind { K_SPLICED, K_RELAYED, K_TLS, K_NR };
static const char *const kind_name[K_NR] = { "spliced", "relayed", "mTLS" };

static enum kind kind_of(int i)
{
	return i % TLS_EVERY == TLS_EVERY - 1 ? K_TLS : i & 1 ? K_RELAYED : K_SPLICED;
}

static struct th_env env;
static char cfg_path[PATH_MAX], alog_path[PATH_MAX];
static struct th_env env_b; /* sidelane B: the mTLS inbound listener */
static char cfg_b_path[PATH_MAX], alog_b_path[PATH_MAX];
static int amb_port, srv_port, srv_fd = -1;
static int amb_tls_port, tls_port; /* mTLS ambassador, inbound listener */
static char pki[64]; /* the test's CA and leaf (th_pki_dir) */
static int srv_err; /* the echo server's first accept error */
static long rss_idle; /* sidelane's VmRSS before the first connection */
/* What churn may add to RSS. */
#define RSS_SLACK_KIB TH_MEM_SLACK_KIB(2048)

#define rss_kib(pid) th_proc_kib(pid, "VmRSS")

/* ---- the echo server: a child process (its own descriptor table) outside
 * sidelane's cgroups, one epoll loop; killed at the end ----
 */

static void srv_main(void)
{
	struct epoll_event ev = { .events = EPOLLIN }, evs[256];
	int ep = epoll_create1(EPOLL_CLOEXEC), n, i;
	char buf[16384];

	ev.data.fd = srv_fd;
	fcntl(srv_fd, F_SETFL, fcntl(srv_fd, F_GETFL) | O_NONBLOCK);
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, srv_fd, &ev))
		_exit(1);
	for (;;) {
		n = epoll_wait(ep, evs, 256, 100);
		for (i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			ssize_t r, off, w;

			if (fd == srv_fd) {
				while ((fd = accept4(srv_fd, NULL, NULL,
						     SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
					ev.data.fd = fd;
					epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
				}
				if (errno != EAGAIN && !srv_err) {
					srv_err = errno;
					th_info("echo server: accept: %s", strerror(errno));
				}
				continue;
			}
			r = recv(fd, buf, sizeof(buf), 0);
			if (r <= 0) {
				if (r < 0 && errno == EAGAIN)
					continue;
				close(fd); /* leaves the epoll set */
				continue;
			}
			/* messages are small and answered before the next:
			 * the socket has room; wait for it if not
			 */
			for (off = 0; off < r; off += w) {
				w = send(fd, buf + off, r - off, MSG_NOSIGNAL);
				if (w < 0 && errno == EAGAIN) {
					struct pollfd p = { fd, POLLOUT, 0 };

					poll(&p, 1, 1000);
					w = 0;
				} else if (w < 0) {
					break;
				}
			}
		}
	}
}

/* ---- the app ---- */

struct conn {
	int fd;
	size_t want, got; /* this round's message */
	unsigned long long sent;
	char buf[MSG_MAX];
};

static size_t msg_len(int i, int round)
{
	return 1 + ((size_t)i * 7919 + (size_t)round * 104729) % MSG_MAX;
}

static void msg_fill(char *buf, size_t len, int i, int round)
{
	th_fill(buf, len, (__u64)i << 8 | (__u64)round);
}

/* Blocking sockets connect blocking (not admitted: relayed); non-blocking
 * ones are admitted and spliced. Source addresses spread over 127.0.0.0/24
 * so churn does not run one address out of ports.
 */
static int app_connect(int i, bool blocking, bool tls)
{
	struct sockaddr_in dst = { .sin_family = AF_INET,
				   .sin_port = htons(tls ? amb_tls_port : amb_port),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sockaddr_in src = { .sin_family = AF_INET,
				   .sin_addr.s_addr = htonl(0x7f000002 + i % 250) };
	int fd, one = 1;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC |
				     (blocking ? 0 : SOCK_NONBLOCK), 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&src, sizeof(src)) ||
	    (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) &&
	     errno != EINPROGRESS)) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

/* Wait until every fd of c[from..to) is connected (or failed). */
static int wait_connected(struct conn *c, int from, int to)
{
	int i, err;
	socklen_t len;

	for (i = from; i < to; i++) {
		struct pollfd p = { c[i].fd, POLLOUT, 0 };

		len = sizeof(err);
		if (poll(&p, 1, IO_MS) != 1 ||
		    getsockopt(c[i].fd, SOL_SOCKET, SO_ERROR, &err, &len))
			return -ETIMEDOUT;
		if (err)
			return -err;
	}
	return 0;
}

/* One round: every connection sends its message, then all echoes are read
 * back and compared. Returns the index of the first wrong connection, or -1.
 */
static int round_trip(struct conn *c, int n, int round, int ep, char *msg)
{
	struct epoll_event evs[256];
	int i, left = n, k;
	__u64 end = th_now_ms() + IO_MS;

	for (i = 0; i < n; i++) {
		c[i].want = msg_len(i, round);
		c[i].got = 0;
		msg_fill(msg, c[i].want, i, round);
		if (send(c[i].fd, msg, c[i].want, MSG_NOSIGNAL | MSG_DONTWAIT) !=
		    (ssize_t)c[i].want)
			return i;
		c[i].sent += c[i].want;
	}
	while (left && th_now_ms() < end) {
		k = epoll_wait(ep, evs, 256, 1000);
		for (int e = 0; e < k; e++) {
			struct conn *x = evs[e].data.ptr;
			ssize_t r;

			r = recv(x->fd, x->buf + x->got, x->want - x->got,
				 MSG_DONTWAIT);
			if (r < 0 && errno == EAGAIN)
				continue;
			if (r <= 0)
				return (int)(x - c);
			x->got += r;
			if (x->got < x->want)
				continue;
			i = (int)(x - c);
			msg_fill(msg, x->want, i, round);
			if (memcmp(msg, x->buf, x->want))
				return i;
			x->want = 0; /* done: more would be wrong */
			left--;
		}
	}
	if (!left)
		return -1;
	k = -1;
	for (i = 0; i < n; i++) {
		if (!c[i].want)
			continue;
		if (k < 0)
			k = i;
		th_info("round %d: connection %d (%s) got %zu of %zu B", round, i,
			i & 1 ? "blocking" : "non-blocking", c[i].got, c[i].want);
	}
	return k < 0 ? 0 : k;
}

/* The access log's relay lines by kind (n: lines, up/down: their bytes): a
 * plaintext line is spliced or relayed by its "splice"; an mTLS connection
 * has two lines, the ambassador's "originated" and the inbound listener's
 * "terminated" (counted apart: not_done, lines that did not end "done").
 */
struct alog_count {
	long n[K_NR], terminated, not_done, busy;
	unsigned long long up[K_NR], down[K_NR], up_term, down_term;
};

static unsigned long long field_u64(const char *line, const char *key)
{
	const char *p = strstr(line, key);

	return p ? strtoull(p + strlen(key), NULL, 10) : 0;
}

/* Add path's lines to a. */
static void alog_add(struct alog_count *a, const char *path)
{
	char line[4096];
	FILE *f = fopen(path, "re");

	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long u, d;
		int k;

		if (!strstr(line, "\"kind\":\"relay\""))
			continue;
		u = field_u64(line, "\"bytes_up\":");
		d = field_u64(line, "\"bytes_down\":");
		if (!strstr(line, "\"reason\":\"done\"")) {
			a->not_done++;
			continue;
		}
		if (strstr(line, "\"tls\":\"terminated\"")) {
			a->terminated++;
			a->up_term += u;
			a->down_term += d;
			continue;
		}
		/* past SL_SPLICE_DOWN_BUSY a worker splices the upload
		 * half only: spliced too
		 */
		a->busy += !!strstr(line, "\"splice\":\"upload-busy\"");
		k = strstr(line, "\"tls\":\"originated\"")	 ? K_TLS :
		    strstr(line, "\"splice\":\"spliced\"") ||
				    strstr(line, "\"splice\":\"upload-busy\"") ?
								    K_SPLICED :
		    strstr(line, "\"splice\":\"not-admitted\"") ? K_RELAYED :
								    -1;
		if (k < 0) {
			a->not_done++;
			continue;
		}
		a->n[k]++;
		a->up[k] += u;
		a->down[k] += d;
	}
	fclose(f);
}

/* A's lines and B's. */
static void alog_sum(struct alog_count *a)
{
	memset(a, 0, sizeof(*a));
	alog_add(a, alog_path);
	alog_add(a, alog_b_path);
}

static void check_many(int n)
{
	char name[256], msg[MSG_MAX];
	struct conn *c = calloc(n, sizeof(*c));
	unsigned long long sent[K_NR] = {};
	long want[K_NR] = {}, rss;
	int i, k, err = 0, bad = -1, round, ep = -1, opened = 0, lines;
	struct alog_count a;
	bool ok;
	__u64 t0, end;

	for (i = 0; i < n; i++)
		want[kind_of(i)]++;
	snprintf(name, sizeof(name),
		 "scale: %d connections at once (%ld spliced, %ld relayed, %ld "
		 "mTLS): %d rounds of 1..%d B messages echoed byte-exact on each",
		 n, want[K_SPLICED], want[K_RELAYED], want[K_TLS], ROUNDS, MSG_MAX);
	if (!TH_CHECK(c, name, "calloc"))
		return;
	ep = epoll_create1(EPOLL_CLOEXEC);
	t0 = th_now_ms();
	for (i = 0; i < n && !err; i++) {
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &c[i] };

		c[i].fd = app_connect(i, kind_of(i) != K_SPLICED,
				      kind_of(i) == K_TLS);
		if (c[i].fd < 0) {
			err = c[i].fd;
			break;
		}
		opened++;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, c[i].fd, &ev))
			err = -errno;
		if ((i + 1) % OPEN_BATCH == 0 || i + 1 == n)
			err = err ?: wait_connected(c, i + 1 - ((i % OPEN_BATCH) + 1), i + 1);
	}
	if (!TH_CHECK(!err, name, "opening connection %d or one before: %s", i,
		      strerror(-err))) {
		th_dump_log(env.log);
		goto out;
	}
	th_info("scale: %d connections open in %llu ms", n,
		(unsigned long long)(th_now_ms() - t0));
	for (round = 0; round < ROUNDS && bad < 0; round++)
		bad = round_trip(c, n, round, ep, msg);
	rss = rss_kib(env.sidelane);
	th_info("scale: sidelane RSS %ld KiB (anonymous %ld KiB) with %d connections "
		"open; over idle: %.1f KiB each", rss,
		th_proc_kib(env.sidelane, "RssAnon"), n,
		(double)(rss - rss_idle) / n);
	if (!TH_CHECK(bad < 0, name, "round %d: connection %d wrong, short or closed",
		      round - 1, bad)) {
		th_dump_log(env.log);
		goto out;
	}
	th_pass(name);
out:
	for (i = 0; i < opened; i++) {
		sent[kind_of(i)] += c[i].sent;
		close(c[i].fd);
	}
	if (ep >= 0)
		close(ep);
	free(c);
	if (bad >= 0 || err)
		return;
	/* one line per plaintext connection, two per mTLS one, written when
	 * each ends
	 */
	lines = n + (int)want[K_TLS];
	snprintf(name, sizeof(name),
		 "scale: the access log has %d lines, each done, each kind with "
		 "exactly the bytes sent", lines);
	end = th_now_ms() + IO_MS;
	do {
		usleep(50 * 1000);
		alog_sum(&a);
	} while (a.n[K_SPLICED] + a.n[K_RELAYED] + a.n[K_TLS] + a.terminated +
			 a.not_done < lines &&
		 th_now_ms() < end);
	ok = !a.not_done && a.terminated == want[K_TLS] &&
	     a.up_term == sent[K_TLS] && a.down_term == sent[K_TLS];
	for (k = 0; k < K_NR; k++) {
		th_info("scale: access log: %s %ld lines of %ld, up %llu B, down "
			"%llu B, sent %llu B", kind_name[k], a.n[k], want[k],
			a.up[k], a.down[k], sent[k]);
		ok &= a.n[k] == want[k] && a.up[k] == sent[k] &&
		      a.down[k] == sent[k];
	}
	th_info("scale: access log: terminated %ld, up %llu B, down %llu B; "
		"not done or unknown %ld; spliced upload only (worker busy) %ld",
		a.terminated, a.up_term, a.down_term, a.not_done, a.busy);
	TH_RESULT(ok, name, "see the lines above");
}

struct churn_res {
	long done, failed;
	int first_err;
};

/* total short connections, CHURN_AT_ONCE in flight: connect, 64 B out, the
 * same 64 B back, close.
 */
static void churn(long total, struct churn_res *r)
{
	struct {
		int fd;
		size_t got;
		long id;
	} s[CHURN_AT_ONCE];
	int ep = epoll_create1(EPOLL_CLOEXEC), i;
	long next = 0;
	char want[64], buf[64];
	__u64 end = th_now_ms() + (__u64)IO_MS + (__u64)total / 2;

	memset(r, 0, sizeof(*r));
	for (i = 0; i < CHURN_AT_ONCE; i++)
		s[i].fd = -1;
	while ((r->done + r->failed < total) && th_now_ms() < end) {
		struct epoll_event evs[CHURN_AT_ONCE];
		int k;

		for (i = 0; i < CHURN_AT_ONCE && next < total; i++) {
			struct epoll_event ev = { .events = EPOLLOUT };

			if (s[i].fd >= 0)
				continue;
			s[i].id = next++;
			s[i].got = 0;
			s[i].fd = app_connect((int)(s[i].id % 100000), s[i].id & 1,
					      false);
			ev.data.u32 = i;
			if (s[i].fd < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, s[i].fd, &ev)) {
				if (!r->first_err)
					r->first_err = s[i].fd < 0 ? -s[i].fd : errno;
				if (s[i].fd >= 0)
					close(s[i].fd);
				s[i].fd = -1;
				r->failed++;
			}
		}
		k = epoll_wait(ep, evs, CHURN_AT_ONCE, 1000);
		for (int e = 0; e < k; e++) {
			int j = (int)evs[e].data.u32;
			ssize_t n = -1;

			th_fill(want, sizeof(want), (__u64)s[j].id);
			if (evs[e].events & EPOLLOUT) {
				struct epoll_event ev = { .events = EPOLLIN,
							  .data.u32 = (__u32)j };

				errno = EPIPE;
				if (send(s[j].fd, want, sizeof(want),
					 MSG_NOSIGNAL | MSG_DONTWAIT) != sizeof(want))
					goto fail;
				epoll_ctl(ep, EPOLL_CTL_MOD, s[j].fd, &ev);
				continue;
			}
			n = recv(s[j].fd, buf + s[j].got, sizeof(buf) - s[j].got,
				 MSG_DONTWAIT);
			if (n < 0 && errno == EAGAIN)
				continue;
			if (n <= 0)
				goto fail;
			s[j].got += n;
			if (s[j].got < sizeof(buf))
				continue;
			if (memcmp(buf, want, sizeof(want)))
				goto fail;
			r->done++;
			close(s[j].fd);
			s[j].fd = -1;
			continue;
fail:
			if (!r->first_err)
				r->first_err = n < 0 ? errno : n ? EBADMSG : EPIPE;
			r->failed++;
			close(s[j].fd);
			s[j].fd = -1;
		}
	}
	for (i = 0; i < CHURN_AT_ONCE; i++)
		if (s[i].fd >= 0)
			close(s[i].fd);
	close(ep);
}

static void check_churn(long total)
{
	char name[256];
	int fds0, fds1 = -1, conns0, conns1 = -1, sock0, sock1 = -1;
	long rss0, rss1 = -1;
	struct churn_res r;
	__u64 t0, ms, end;

	snprintf(name, sizeof(name),
		 "churn: %ld short connections, %d at once, each echoed right; then "
		 "no map entry, descriptor or RSS left over", total, CHURN_AT_ONCE);
	/* the idle baseline: after check_many's connections are gone and the
	 * proxy had time to give its memory back
	 */
	th_wait_entries(&env, SL_MAP_CONNS, 0, 5000);
	usleep(1500 * 1000);
	fds0 = th_proc_fds(env.sidelane);
	rss0 = rss_kib(env.sidelane);
	conns0 = th_map_entries(&env, SL_MAP_CONNS);
	sock0 = th_map_entries(&env, SL_MAP_SOCKHASH);
	t0 = th_now_ms();
	churn(total, &r);
	ms = th_now_ms() - t0;
	th_info("churn: %ld done, %ld failed in %llu ms (%.0f connections/s)",
		r.done, r.failed, (unsigned long long)ms,
		ms ? r.done * 1000.0 / ms : 0.0);
	/* records go when sockets close; memory after SL_TRIM_IDLE_MS idle */
	end = th_now_ms() + 10000;
	do {
		usleep(200 * 1000);
		fds1 = th_proc_fds(env.sidelane);
		rss1 = rss_kib(env.sidelane);
		conns1 = th_map_entries(&env, SL_MAP_CONNS);
		sock1 = th_map_entries(&env, SL_MAP_SOCKHASH);
	} while ((fds1 > fds0 || conns1 > conns0 || sock1 > sock0 ||
		  rss1 > rss0 + RSS_SLACK_KIB) && th_now_ms() < end);
	th_info("churn: sidelane fds %d -> %d, RSS %ld -> %ld KiB (idle %ld, "
		"anonymous now %ld), %s %d -> %d, %s %d -> %d", fds0, fds1, rss0,
		rss1, rss_idle, th_proc_kib(env.sidelane, "RssAnon"), SL_MAP_CONNS,
		conns0, conns1, SL_MAP_SOCKHASH, sock0, sock1);
	if (TH_CHECK(r.done == total && !r.failed, name,
		     "%ld done, %ld failed (first: %s)", r.done, r.failed,
		     strerror(r.first_err)) &&
	    TH_CHECK(fds1 <= fds0, name, "sidelane's descriptors %d -> %d",
		     fds0, fds1) &&
	    TH_CHECK(conns1 <= conns0 && sock1 <= sock0, name,
		     "map entries left: %s %d -> %d, %s %d -> %d",
		     SL_MAP_CONNS, conns0, conns1, SL_MAP_SOCKHASH, sock0, sock1) &&
	    TH_CHECK(rss1 <= rss0 + RSS_SLACK_KIB, name,
		     "RSS %ld KiB -> %ld KiB (%d KiB slack)", rss0, rss1,
		     RSS_SLACK_KIB))
		th_pass(name);
}

/* A log and what rotation made of it (a million connections pass 1 GiB):
 * path.1 while it is compressed, path.N.gz kept.
 */
static void unlink_logs(const char *path)
{
	char rot[PATH_MAX + 16];
	int i;

	unlink(path);
	snprintf(rot, sizeof(rot), "%s.1", path);
	unlink(rot);
	for (i = 1; i <= 5; i++) {
		snprintf(rot, sizeof(rot), "%s.%d.gz", path, i);
		unlink(rot);
	}
}

static void remove_files(void *arg)
{
	(void)arg;
	if (getenv("SL_KEEP"))
		return;
	unlink(cfg_path);
	unlink(cfg_b_path);
	unlink_logs(alog_path);
	unlink_logs(alog_b_path);
}

/* sidelane A's descriptors for n connections of the mix: two each (B
 * holds the other two of an mTLS one)
 */
static rlim_t fds_for(int n)
{
	return (rlim_t)n * 2;
}

static long env_num(const char *name, long def, long min, long max)
{
	const char *s = getenv(name);
	long v = s && *s ? strtol(s, NULL, 10) : def;

	return v < min ? min : v > max ? max : v;
}

int main(void)
{
	const char *setup = "scale: setup: cgroups, PKI, echo server, sidelane run "
			    "(app_sockets send, a plaintext and an mTLS ambassador, "
			    "an mTLS inbound listener)";
	int n = (int)env_num("SIDELANE_SCALE_CONNS", 2000, 10, 100000);
	long total = env_num("SIDELANE_CHURN", 5000, 0, 100000000);
	char text[PATH_MAX * 4 + 1024];
	struct rlimit rl;
	pid_t srv_pid = -1;
	int err;

	setvbuf(stdout, NULL, _IOLBF, 0);
	th_watchdog(120 + (unsigned int)(n / 200) + (unsigned int)(total / 2000),
		    "scale");
	/* sidelane holds two descriptors a connection (the app's side and
	 * the upstream); it can raise its soft limit, not a hard one it has
	 * no CAP_SYS_RESOURCE for: ask for no more than that allows
	 */
	rl.rlim_cur = rl.rlim_max = fds_for(n) + NOFILE_SPARE;
	if (setrlimit(RLIMIT_NOFILE, &rl) && !getrlimit(RLIMIT_NOFILE, &rl) &&
	    rl.rlim_max < fds_for(n) + NOFILE_SPARE) {
		int fit = n;

		while (fit > 10 && fds_for(fit) + NOFILE_SPARE > rl.rlim_max)
			fit -= fit / 100 + 1;

		th_info("scale: %d connections asked; the hard open files limit "
			"%llu (no CAP_SYS_RESOURCE to raise it) leaves sidelane "
			"room for %d at two descriptors each: %d it is", n,
			(unsigned long long)rl.rlim_max, fit, fit);
		n = fit;
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	snprintf(cfg_path, sizeof(cfg_path), "/tmp/sidelane-test-scale-%d.yaml", (int)getpid());
	snprintf(alog_path, sizeof(alog_path), "/tmp/sidelane-test-scale-%d.log", (int)getpid());
	snprintf(cfg_b_path, sizeof(cfg_b_path), "/tmp/sidelane-test-scale-b-%d.yaml", (int)getpid());
	snprintf(alog_b_path, sizeof(alog_b_path), "/tmp/sidelane-test-scale-b-%d.log", (int)getpid());
	err = th_cleanup_push(remove_files, NULL);
	err = err ?: th_env_setup_opts(&env, "scale",
				       &(struct th_env_opts){ .sidecar = true });
	err = err ?: th_env_setup_opts(&env_b, "scale-b",
				       &(struct th_env_opts){ .sidecar = true });
	/* the upstream listens from our own cgroup, outside sidelane's */
	if (!err) {
		srv_fd = th_listen("127.0.0.1", 4096, &srv_port);
		err = srv_fd;
	}
	if (srv_fd >= 0) {
		srv_pid = fork();
		if (!srv_pid)
			srv_main();
		err = srv_pid < 0 ? -errno : 0;
	}
	/* one leaf for both TLS roles: its SPIFFE ID is what each side wants */
	err = err ?: th_pki_dir(pki, sizeof(pki), "scale");
	err = err ?: th_pki_ca(pki, "ca");
	err = err ?: th_pki_leaf(pki, "s", "ca", 1, "URI:" TLS_ID);
	amb_port = err ? -1 : th_free_port();
	amb_tls_port = err ? -1 : th_free_port();
	tls_port = err ? -1 : th_free_port();
	if (!err && (amb_port < 0 || amb_tls_port < 0 || tls_port < 0))
		err = -EADDRINUSE;
	if (!err) {
		th_env_log_path(&env);
		snprintf(env_b.log, sizeof(env_b.log),
			 "build/tests/logs/sidelane-%s.log", env_b.name);
		/* B: the upstream pod's sidecar, terminating mTLS */
		snprintf(text, sizeof(text),
			 "capture:\n  enabled: false\n"
			 "proxy:\n  max_conns: %d\n"
			 "tls:\n  cert: \"%s\"\n  key: \"%s\"\n  ca: \"%s\"\n"
			 "  handshake_timeout_ms: %d\n"
			 "inbound:\n  enabled: true\n  listen: \"" TLS_IP ":%d\"\n"
			 "  mode: listener\n  app_port: %d\n  default: deny\n"
			 "  identities:\n    - id: \"spiffe://" TLS_TD "/*\"\n"
			 "      action: allow\n"
			 "admin:\n  listen: \"\"\n  drain_timeout_ms: 0\n"
			 "accounting:\n  access_log: \"%s\"\n  max_bytes: 1073741824\n",
			 n / TLS_EVERY + CHURN_AT_ONCE, th_pki_path(pki, "s", "pem"),
			 th_pki_path(pki, "s", "key"), th_pki_path(pki, "ca", "pem"),
			 HS_MS, tls_port, srv_port, alog_b_path);
		err = th_env_run_config(&env_b, cfg_b_path, text);
	}
	if (!err) {
		/* A: the app's sidecar, a plaintext ambassador and one to B
		 * over mTLS
		 */
		snprintf(text, sizeof(text),
			 "capture:\n  enabled: false\n"
			 "proxy:\n  max_conns: %d\n  ambassadors:\n"
			 "    - listen: \"127.0.0.1:%d\"\n      upstream: \"127.0.0.1:%d\"\n"
			 "    - listen: \"127.0.0.1:%d\"\n      upstream: \"" TLS_IP ":%d\"\n"
			 "tls:\n  cert: \"%s\"\n  key: \"%s\"\n  ca: \"%s\"\n"
			 "  handshake_timeout_ms: %d\n"
			 "  mesh:\n    - cidr: \"" TLS_IP "/32\"\n      ports: [\"%d\"]\n"
			 "      identities: [\"spiffe://" TLS_TD "/*\"]\n"
			 "admin:\n  listen: \"\"\n  drain_timeout_ms: 0\n"
			 "accounting:\n  access_log: \"%s\"\n  max_bytes: 1073741824\n"
			 "fastpath:\n  app_sockets: send\n"
			 "limits:\n  max_conns: %d\n",
			 n + CHURN_AT_ONCE * 4, amb_port, srv_port, amb_tls_port,
			 tls_port, th_pki_path(pki, "s", "pem"),
			 th_pki_path(pki, "s", "key"), th_pki_path(pki, "ca", "pem"),
			 HS_MS, tls_port, alog_path, n + CHURN_AT_ONCE * 4);
		err = th_env_run_config(&env, cfg_path, text);
	}
	err = err ?: th_enter(&env);
	if (!TH_CHECK(!err, setup, "%s (log %s)", strerror(-err), env.log))
		goto out;
	rss_idle = rss_kib(env.sidelane);
	th_info("scale: sidelane idle RSS %ld KiB (anonymous %ld KiB), %d descriptors",
		rss_idle, th_proc_kib(env.sidelane, "RssAnon"),
		th_proc_fds(env.sidelane));
	th_pass(setup);
	check_many(n);
	if (total)
		check_churn(total);
out:
	th_leave(&env);
	if (srv_pid > 0) {
		kill(srv_pid, SIGKILL);
		th_wait(srv_pid, 5000);
	}
	if (srv_fd >= 0)
		close(srv_fd);
	err = th_env_teardown(&env);
	err = th_env_teardown(&env_b) ?: err;
	TH_RESULT(!err, "scale: teardown: sidelane stopped, cgroups and pins removed",
		  "%s", strerror(-err));
	th_cleanup_pop(remove_files, NULL, true);
	if (pki[0])
		th_pki_dir_remove(pki);
	return th_summary();
}
