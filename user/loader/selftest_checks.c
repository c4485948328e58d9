// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The self-test's checks (see selftest.c): the forked child, in the
 * temporary cgroup, moves bytes between two sockets in the private
 * sockhash and checks what an application sees: the bytes, FIONREAD,
 * MSG_PEEK, poll, epoll, half-close and EPIPE as on plain TCP.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include "sidelane.h"
#include "fastpath.h"
#include "admission.h"
#include "loader/selftest.h"
#include "lib/cgroup.h"
#include "lib/log.h"
#include "loader/selftest_int.h"

/* ---- the child: the checks, in the temporary cgroup ---- */


static int left_ms(const struct st_ctx *x)
{
	__u64 now = now_ms();

	return now < x->deadline ? (int)(x->deadline - now) : 0;
}

static bool fail(struct st_ctx *x, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static bool fail(struct st_ctx *x, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(x->why, sizeof(x->why), fmt, ap);
	va_end(ap);
	return false;
}

/* poll one fd until an event of events or the deadline; revents, 0 on
 * timeout (the child's whole budget bounds every wait).
 */
static int wait_fd(struct st_ctx *x, int fd, short events, int max_ms)
{
	struct pollfd p = { .fd = fd, .events = events };
	int ms, n;

	for (;;) {
		ms = left_ms(x);
		if (max_ms >= 0 && max_ms < ms)
			ms = max_ms;
		n = poll(&p, 1, ms);
		if (n > 0)
			return p.revents;
		if (n == 0 || errno != EINTR)
			return 0;
	}
}

/* One non-blocking send of up to len bytes, waiting for room if needed.
 * Bytes sent (counted as one message), or -1 with errno (ETIMEDOUT).
 */
static ssize_t send_some(struct st_ctx *x, int fd, const void *buf, size_t len)
{
	ssize_t n;

	for (;;) {
		n = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			x->msgs++;
			return n;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN)
			return -1;
		if (!wait_fd(x, fd, POLLOUT, -1)) {
			errno = ETIMEDOUT;
			return -1;
		}
	}
}

/* Send all of len bytes. Not sl_io_full(): every send() is counted as one
 * message and every wait is bounded by the self-test's whole budget.
 */
static bool send_all(struct st_ctx *x, int fd, const void *buf, size_t len,
		     const char *what)
{
	size_t off = 0;
	ssize_t n;

	while (off < len) {
		n = send_some(x, fd, (const char *)buf + off, len - off);
		if (n < 0)
			return fail(x, "%s: send after %zu of %zu bytes: %s", what,
				    off, len, strerror(errno));
		off += n;
	}
	return true;
}

/* Read exactly len bytes, waiting for each; false on EOF, error or timeout. */
static bool recv_exact(struct st_ctx *x, int fd, char *buf, size_t len,
		       const char *what)
{
	size_t got = 0;
	ssize_t n;

	while (got < len) {
		n = recv(fd, buf + got, len - got, MSG_DONTWAIT);
		if (n > 0) {
			got += n;
			continue;
		}
		if (n == 0)
			return fail(x, "%s: EOF after %zu of %zu bytes", what, got,
				    len);
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return fail(x, "%s: recv after %zu of %zu bytes: %s", what,
				    got, len, strerror(errno));
		if (!wait_fd(x, fd, POLLIN, -1))
			return fail(x, "%s: %zu of %zu bytes, then none until the deadline", what,
				    got, len);
	}
	return true;
}

/* buf equals want over len bytes; else *bad is the first that differs. */
static bool same_bytes(const char *buf, const char *want, size_t len,
		       size_t *bad)
{
	size_t i;

	if (!memcmp(buf, want, len))
		return true;
	for (i = 0; i < len && buf[i] == want[i]; i++)
		;
	*bad = i;
	return false;
}

static void close_pair(struct st_ctx *x)
{
	if (x->c >= 0)
		close(x->c);
	if (x->s >= 0)
		close(x->s);
	x->c = x->s = -1;
}

static __u64 sock_cookie(int fd)
{
	socklen_t len = sizeof(__u64);
	__u64 cookie = 0;

	getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &len);
	return cookie;
}

static bool in_sockhash(struct st_ctx *x, int fd)
{
	__u64 cookie = sock_cookie(fd);
	struct sl_conn conn;

	return cookie && !bpf_map_lookup_elem(x->conns_fd, &cookie, &conn) &&
	       (conn.flags & SL_CONN_F_IN_SOCKHASH);
}

/* A connected 127.0.0.1 pair, both ends non-blocking, and both in the
 * private sockhash (sockops ran for them): without that the checks would
 * only test plain TCP.
 */
static bool open_pair(struct st_ctx *x, const char *check)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int lfd, err = 0, n = 0;
	const char *step;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	step = "socket";
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		goto sys_err;
	step = "listen";
	if (bind(lfd, (struct sockaddr *)&sa, len) || listen(lfd, 1) ||
	    getsockname(lfd, (struct sockaddr *)&sa, &len))
		goto sys_err;
	step = "socket";
	x->c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (x->c < 0)
		goto sys_err;
	step = "connect";
	if (connect(x->c, (struct sockaddr *)&sa, len) && errno != EINPROGRESS)
		goto sys_err;
	step = "accept";
	if (!wait_fd(x, lfd, POLLIN, -1)) {
		errno = ETIMEDOUT;
		goto sys_err;
	}
	x->s = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (x->s < 0)
		goto sys_err;
	step = "connect";
	len = sizeof(err);
	if (!wait_fd(x, x->c, POLLOUT, -1) ||
	    getsockopt(x->c, SOL_SOCKET, SO_ERROR, &err, &len) || err) {
		errno = err ?: ETIMEDOUT;
		goto sys_err;
	}
	close(lfd);
	/* sockops runs before connect() completes on the client and under
	 * the child socket's lock on the server; give it a moment anyway.
	 */
	while (!(in_sockhash(x, x->c) && in_sockhash(x, x->s)) && left_ms(x) &&
	       n++ < 200)
		usleep(500);
	if (in_sockhash(x, x->c) && in_sockhash(x, x->s))
		return true;
	x->fail_check = "sockhash";
	return fail(x, "sockops put %d of 2 loopback sockets in the sockhash (%s)",
		    in_sockhash(x, x->c) + in_sockhash(x, x->s), check);
sys_err:
	err = errno;
	if (lfd >= 0)
		close(lfd);
	return fail(x, "loopback TCP pair (%s): %s: %s", check, step,
		    strerror(err));
}

static bool check_sockhash(struct st_ctx *x)
{
	return open_pair(x, "sockhash");
}

static const char *size_name(size_t n, char *buf, size_t len)
{
	if (n >= MiB)
		snprintf(buf, len, "%zu MiB", n / MiB);
	else if (n >= KiB)
		snprintf(buf, len, "%zu KiB", n / KiB);
	else
		snprintf(buf, len, "%zu B", n);
	return buf;
}

/* Every size each way on one connection, a distinct slice of the pattern
 * each time (stale or reordered bytes cannot match by chance). The sender
 * writes one chunk, the receiver reads all of it, and so on.
 */
static bool check_transfer(struct st_ctx *x)
{
	static const size_t sizes[] = { 1, 100, 4 * KiB, 64 * KiB, 1 * MiB,
					4 * MiB };
	char what[64], sz[24], extra;
	size_t i, sent, got, bad;
	int dir, k = 0, from, to;
	ssize_t n;

	if (!open_pair(x, "transfer"))
		return false;
	for (dir = 0; dir < 2; dir++) {
		from = dir ? x->s : x->c;
		to = dir ? x->c : x->s;
		for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++, k++) {
			const char *src = x->pat + (k * 4099) % ST_CHUNK;

			snprintf(what, sizeof(what), "transfer %s %s",
				 size_name(sizes[i], sz, sizeof(sz)),
				 dir ? "server->client" : "client->server");
			for (sent = got = 0; got < sizes[i]; got = sent) {
				n = send_some(x, from, src + sent,
					      sizes[i] - sent < ST_CHUNK ?
						      sizes[i] - sent : ST_CHUNK);
				if (n < 0)
					return fail(x, "%s: send after %zu bytes: %s",
						    what, sent, strerror(errno));
				sent += n;
				if (!recv_exact(x, to, x->rbuf + got, sent - got,
						what))
					return false;
			}
			if (!same_bytes(x->rbuf, src, sizes[i], &bad))
				return fail(x, "%s: byte %zu differs (0x%02x, want 0x%02x)",
					    what, bad, (__u8)x->rbuf[bad],
					    (__u8)src[bad]);
			n = recv(to, &extra, 1, MSG_DONTWAIT);
			if (n != -1 || errno != EAGAIN)
				return fail(x, "%s: %s after the data", what,
					    n > 0 ? "extra bytes" :
					    n == 0 ? "EOF" : strerror(errno));
		}
	}
	return true;
}

/* FIONREAD of fd, waiting up to 100 ms for it to reach want (bytes already
 * sent may still be on their way through plain loopback).
 */
static int fionread_wait(struct st_ctx *x, int fd, int want)
{
	__u64 until = now_ms() + 100;
	int v = -1;

	for (;;) {
		if (ioctl(fd, FIONREAD, &v))
			return -errno;
		if (v == want || now_ms() >= until || !left_ms(x))
			return v;
		usleep(500);
	}
}

static bool check_fionread(struct st_ctx *x)
{
	int v;

	if (!open_pair(x, "fionread") ||
	    !send_all(x, x->c, x->pat, 4 * KiB, "FIONREAD"))
		return false;
	if (!wait_fd(x, x->s, POLLIN, -1))
		return fail(x, "FIONREAD: 4 KiB sent, the peer never became readable");
	v = fionread_wait(x, x->s, 4 * KiB);
	if (v != 4 * KiB)
		return fail(x, "FIONREAD after 4 KiB redirected: %d, want 4096", v);
	if (!recv_exact(x, x->s, x->rbuf, 1000, "FIONREAD"))
		return false;
	v = fionread_wait(x, x->s, 4 * KiB - 1000);
	if (v != 4 * KiB - 1000)
		return fail(x, "FIONREAD after reading 1000 of 4096: %d, want 3096",
			    v);
	return true;
}

static bool check_msg_peek(struct st_ctx *x)
{
	const char *src = x->pat + 7;
	__u64 until;
	size_t bad;
	ssize_t n;

	if (!open_pair(x, "msg_peek") ||
	    !send_all(x, x->c, src, 4 * KiB, "MSG_PEEK"))
		return false;
	if (!wait_fd(x, x->s, POLLIN, -1))
		return fail(x, "MSG_PEEK: 4 KiB sent, the peer never became readable");
	n = recv(x->s, x->rbuf, 100, MSG_PEEK | MSG_DONTWAIT);
	if (n != 100 || !same_bytes(x->rbuf, src, 100, &bad))
		return fail(x, "MSG_PEEK of 100 bytes: %zd%s", n,
			    n == 100 ? ", wrong data" : ", want 100");
	/* everything still there: a peek of all of it (it may still be on
	 * its way on plain loopback: retry for up to 100 ms)
	 */
	until = now_ms() + 100;
	for (;;) {
		n = recv(x->s, x->rbuf, 4 * KiB, MSG_PEEK | MSG_DONTWAIT);
		if (n < 0 || n == 4 * KiB || now_ms() >= until)
			break;
		usleep(500);
	}
	if (n != 4 * KiB)
		return fail(x, "MSG_PEEK after a peek of 100: %zd bytes queued, want 4096",
			    n);
	if (!recv_exact(x, x->s, x->rbuf, 4 * KiB, "recv after MSG_PEEK"))
		return false;
	if (!same_bytes(x->rbuf, src, 4 * KiB, &bad))
		return fail(x, "recv after MSG_PEEK: byte %zu differs", bad);
	n = recv(x->s, x->rbuf, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n != -1 || errno != EAGAIN)
		return fail(x, "MSG_PEEK on a drained socket: %zd (%s), want EAGAIN",
			    n, n < 0 ? strerror(errno) : "data");
	return true;
}

static bool check_poll(struct st_ctx *x)
{
	struct pollfd p;

	if (!open_pair(x, "poll"))
		return false;
	p = (struct pollfd){ .fd = x->s, .events = POLLIN };
	if (poll(&p, 1, 0) != 0)
		return fail(x, "poll before any data: revents 0x%x, want none",
			    p.revents);
	if (!send_all(x, x->c, x->pat, 100, "poll"))
		return false;
	if (!(wait_fd(x, x->s, POLLIN, -1) & POLLIN))
		return fail(x, "poll after 100 bytes redirected: not readable");
	if (!recv_exact(x, x->s, x->rbuf, 100, "poll"))
		return false;
	p.revents = 0;
	if (poll(&p, 1, 0) != 0)
		return fail(x, "poll after reading everything: revents 0x%x, want none",
			    p.revents);
	return true;
}

/* epoll_wait() on ep: events of the one fd, 0 when nothing (-1: error). */
static int ep_wait(struct st_ctx *x, int ep, int max_ms)
{
	struct epoll_event e = {};
	int ms = left_ms(x), n;

	if (max_ms < ms)
		ms = max_ms;
	do
		n = epoll_wait(ep, &e, 1, ms);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -1 : n ? (int)e.events : 0;
}

static bool check_epoll(struct st_ctx *x)
{
	struct epoll_event e = { .events = EPOLLIN };
	int lt = -1, et = -1, ev;
	bool ok = false;

	if (!open_pair(x, "epoll"))
		return false;
	lt = epoll_create1(EPOLL_CLOEXEC);
	et = epoll_create1(EPOLL_CLOEXEC);
	if (lt < 0 || et < 0 || epoll_ctl(lt, EPOLL_CTL_ADD, x->s, &e)) {
		fail(x, "epoll: %s", strerror(errno));
		goto out;
	}
	e.events = EPOLLIN | EPOLLET;
	if (epoll_ctl(et, EPOLL_CTL_ADD, x->s, &e)) {
		fail(x, "epoll: %s", strerror(errno));
		goto out;
	}
	if ((ev = ep_wait(x, lt, 0))) {
		fail(x, "epoll before any data: events 0x%x, want none", ev);
		goto out;
	}
	if (!send_all(x, x->c, x->pat, 100, "epoll"))
		goto out;
	if (!((ev = ep_wait(x, lt, INT_MAX)) & EPOLLIN)) {
		fail(x, "epoll (level) after 100 bytes redirected: events 0x%x", ev);
		goto out;
	}
	if (!((ev = ep_wait(x, et, INT_MAX)) & EPOLLIN)) {
		fail(x, "epoll (edge) after 100 bytes redirected: events 0x%x", ev);
		goto out;
	}
	if ((ev = ep_wait(x, et, 0))) {
		fail(x, "epoll (edge) reported the same 100 bytes twice: 0x%x", ev);
		goto out;
	}
	if (!recv_exact(x, x->s, x->rbuf, 50, "epoll"))
		goto out;
	if (!((ev = ep_wait(x, lt, 0)) & EPOLLIN)) {
		fail(x, "epoll (level) with 50 bytes left: events 0x%x", ev);
		goto out;
	}
	if (!send_all(x, x->c, x->pat, 100, "epoll"))
		goto out;
	if (!((ev = ep_wait(x, et, INT_MAX)) & EPOLLIN)) {
		fail(x, "epoll (edge) after 100 more bytes: events 0x%x", ev);
		goto out;
	}
	if (!recv_exact(x, x->s, x->rbuf, 150, "epoll"))
		goto out;
	if ((ev = ep_wait(x, lt, 0))) {
		fail(x, "epoll (level) after reading everything: events 0x%x", ev);
		goto out;
	}
	ok = true;
out:
	if (lt >= 0)
		close(lt);
	if (et >= 0)
		close(et);
	return ok;
}

/* Read until EOF: bytes before it, -1 on error or timeout. */
static ssize_t recv_to_eof(struct st_ctx *x, int fd, char *buf, size_t len)
{
	size_t got = 0;
	ssize_t n;

	for (;;) {
		n = recv(fd, buf + got, len - got, MSG_DONTWAIT);
		if (n > 0) {
			got += n;
			if (got == len) /* more than expected */
				return got;
			continue;
		}
		if (n == 0)
			return got;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN || !wait_fd(x, fd, POLLIN, -1))
			return -1;
	}
}

static bool check_half_close(struct st_ctx *x)
{
	const char *out = x->pat + 11, *back = x->pat + 13;
	size_t bad;
	ssize_t n;

	if (!open_pair(x, "half_close") ||
	    !send_all(x, x->c, out, 10000, "half-close"))
		return false;
	if (shutdown(x->c, SHUT_WR))
		return fail(x, "half-close: shutdown: %s", strerror(errno));
	n = recv_to_eof(x, x->s, x->rbuf, 10000 + 1);
	if (n != 10000)
		return fail(x, "half-close: the peer read %zd of 10000 bytes, then %s",
			    n, n < 0 ? "no EOF in time" : "EOF");
	if (!same_bytes(x->rbuf, out, 10000, &bad))
		return fail(x, "half-close: byte %zu differs", bad);
	/* the other direction stays open */
	if (!send_all(x, x->s, back, 5000, "half-close: reply") ||
	    !recv_exact(x, x->c, x->rbuf, 5000, "half-close: reply"))
		return false;
	if (!same_bytes(x->rbuf, back, 5000, &bad))
		return fail(x, "half-close: reply byte %zu differs", bad);
	return true;
}

static bool check_epipe(struct st_ctx *x)
{
	ssize_t n;
	int err;

	if (!open_pair(x, "epipe") || !send_all(x, x->c, x->pat, 100, "EPIPE"))
		return false;
	if (shutdown(x->c, SHUT_WR))
		return fail(x, "EPIPE: shutdown: %s", strerror(errno));
	n = recv_to_eof(x, x->s, x->rbuf, 101);
	if (n != 100)
		return fail(x, "EPIPE: the peer read %zd of 100 bytes before EOF", n);
	n = send(x->c, "x", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	err = errno;
	if (n != -1 || err != EPIPE)
		return fail(x, "send after shutdown(SHUT_WR): %zd (%s), want EPIPE", n,
			    n < 0 ? strerror(err) : "sent");
	/* a redirect would land it behind the EOF the peer already read */
	n = recv(x->s, x->rbuf, 16, MSG_DONTWAIT);
	if (n != 0)
		return fail(x, "recv after EOF and a send after SHUT_WR: %zd, want 0 (EOF)",
			    n);
	return true;
}

static void say(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Not a check: what the safe mode of admission needs to know. A socket in
 * the sockhash that receives over TCP, as an app socket admitted
 * send-only does: does its FIONREAD count those bytes? The pair is in the
 * private sockhash; with redirect switched off there, sk_msg passes the
 * bytes to TCP. Linux 6.18 answers 0 (tcp_bpf_ioctl() counts the psock
 * only). One line "kernel <SL_KERNEL_* flags> <FIONREAD seen>".
 */
static void probe_tcp_fionread(struct st_ctx *x)
{
	struct sl_fp_cfg off = { .redirect_off = 1 };
	__u64 msgs = x->msgs; /* not a redirected message */
	__u32 zero = 0;
	int v = -1;

	if (open_pair(x, "probe") &&
	    !bpf_map_update_elem(x->fp_cfg_fd, &zero, &off, BPF_ANY) &&
	    send_all(x, x->c, x->pat, 1000, "probe") &&
	    wait_fd(x, x->s, POLLIN, -1))
		v = fionread_wait(x, x->s, 1000);
	x->msgs = msgs;
	close_pair(x);
	say(x->out, "kernel %u %d", v == 1000 ? SL_KERNEL_TCP_FIONREAD : 0, v);
}

struct st_check {
	const char *name;
	bool (*fn)(struct st_ctx *x);
	const char *what; /* for a forced failure: what passed */
};

/* In sl_selftest_checks[] order; "redirect" is the parent's. */
static const struct st_check checks[] = {
	{ "sockhash", check_sockhash, "sockops put both ends in the sockhash" },
	{ "transfer", check_transfer, "byte-exact transfers 1 B..4 MiB both ways" },
	{ "fionread", check_fionread, "FIONREAD after 4 KiB redirected" },
	{ "msg_peek", check_msg_peek, "MSG_PEEK leaves the data queued" },
	{ "poll", check_poll, "poll readability" },
	{ "epoll", check_epoll, "epoll readability, level and edge" },
	{ "half_close", check_half_close, "half-close: data, EOF, reply" },
	{ "epipe", check_epipe, "send after shutdown(SHUT_WR) fails EPIPE" },
	{ NULL, NULL, NULL },
};

const char *forced(void)
{
	const char *f = getenv(SL_SELFTEST_ENV_FAIL);

	return f && *f ? f : NULL;
}

/* The named check, or any check, was asked to fail (first check for any). */
bool force_hits(const char *name, bool first)
{
	const char *f = forced();

	return f && (!strcmp(f, name) || (first && !strcmp(f, "any")));
}

static void say(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(int fd, const char *fmt, ...)
{
	char line[ST_LINE];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (n > (int)sizeof(line) - 2)
		n = sizeof(line) - 2;
	for (int i = 0; i < n; i++)
		if (line[i] == '\n')
			line[i] = ' ';
	line[n++] = '\n';
	/* one write under PIPE_BUF: the parent never sees half a line */
	if (write(fd, line, n) != n)
		_exit(3);
}

/* The forked child: join the cgroup first (sockets belong to the cgroup
 * that creates them), then the checks. Verdict lines on the pipe:
 * "run <check>", "fail <check> <why>", "msgs <n>", "done", or
 * "error <errno> <why>" when it could not even start. Never returns.
 */
void __attribute__((noreturn)) child_main(struct st_ctx *x, const char *cgroup)
{
	const struct st_check *c;
	__u64 seed = 0x9e3779b97f4a7c15ULL;
	size_t i;
	int err;

	err = sl_cgroup_join(cgroup);
	if (err) {
		say(x->out, "error %d joining %s: %s", -err, cgroup, strerror(-err));
		_exit(2);
	}
	x->pat = malloc(ST_PAT_LEN);
	x->rbuf = malloc(ST_MAX_XFER);
	if (!x->pat || !x->rbuf) {
		say(x->out, "error %d allocating buffers", ENOMEM);
		_exit(2);
	}
	for (i = 0; i < ST_PAT_LEN / 8; i++) { /* xorshift64 */
		seed ^= seed << 13;
		seed ^= seed >> 7;
		seed ^= seed << 17;
		memcpy(x->pat + i * 8, &seed, 8);
	}
	for (c = checks; c->name; c++) {
		say(x->out, "run %s", c->name);
		x->fail_check = NULL;
		if (!c->fn(x)) {
			close_pair(x);
			say(x->out, "fail %s %s", x->fail_check ?: c->name, x->why);
			_exit(1);
		}
		close_pair(x);
		if (force_hits(c->name, c == checks)) {
			say(x->out, "fail %s %s: passed, failed on purpose (%s=%s)",
			    c->name, c->what, SL_SELFTEST_ENV_FAIL, forced());
			_exit(1);
		}
	}
	probe_tcp_fionread(x);
	say(x->out, "msgs %llu", (unsigned long long)x->msgs);
	say(x->out, "done");
	_exit(0);
}
