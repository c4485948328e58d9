// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Integration test (tests/integ): socket-semantics conformance of the fast
 * path as an application sees it. Every case runs in a plain cgroup and
 * under `sidelane run` in the app-sockets modes safe (the default), send and
 * all; for each placement of the app's socket (app<->app; app<->sidecar with
 * the app reading, with the app writing, or both talking), over IPv4 and
 * IPv6, with blocking sockets and with non-blocking ones driven like an
 * event loop. Each run records what the application observes (return
 * values, errno, byte counts, readiness, data checks) as one line, and the
 * accelerated line must equal the plain one of the same combination.
 * Differences print "# DIFF ..", go to build/tests/conformance.md, and fail
 * unless known_differences[] holds that exact accelerated line for the mode
 * (never for safe). The admission counters must show that each run
 * exercised what its mode promises (admitted and redirected, or kept out
 * for the stated reason): a comparison that proves nothing fails too.
 *
 * Spliced pairs (include/splice.h): the app's socket connects to an
 * ambassador of `sidelane run` whose upstream is this test's listener, so
 * the other end is the proxy's upstream connection (placements proxy-*).
 * Mode spliced (app_sockets send, proxy.splice true) must equal mode relay
 * (the same with proxy.splice false): the splice may change nothing the
 * app sees through the proxy. A non-blocking run must have been spliced
 * (the pair's entry in sl_splice_idx, or the splice counters moved); a
 * blocking one must not (not admitted). Where the proxy itself differs from
 * a direct connection (mode plain, proxy-* placements) the report says so.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include "loader/pins.h"
#include "sidelane.h"
#include "loader/admission_user.h"
#include "loader/fastpath_user.h"
#include "splice.h"
#include "harness.h"

#define KiB 1024UL
#define MiB (1024 * KiB)
#define IO_TIMEOUT_S 5 /* SO_RCVTIMEO/SO_SNDTIMEO, and an event loop's wait */
#define CASE_TIMEOUT_S 30 /* watchdog per case */
#define RES_LEN 640
#define REPORT "build/tests/conformance.md"

/* What an application saw in one case: "key=value" tokens. */
struct res {
	char s[RES_LEN];
};

static void add(struct res *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void add(struct res *r, const char *fmt, ...)
{
	size_t n = strlen(r->s);
	va_list ap;

	if (n && n < sizeof(r->s) - 1)
		r->s[n++] = ' ';
	va_start(ap, fmt);
	vsnprintf(r->s + n, sizeof(r->s) - n, fmt, ap);
	va_end(ap);
}

static const char *ename(int e)
{
	static __thread char buf[16];

	switch (e) {
	case EAGAIN: return "EAGAIN";
	case ECONNRESET: return "ECONNRESET";
	case EPIPE: return "EPIPE";
	case ENOTCONN: return "ENOTCONN";
	case EINVAL: return "EINVAL";
	case EINTR: return "EINTR";
	case ETIMEDOUT: return "ETIMEDOUT";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	}
	snprintf(buf, sizeof(buf), "E%d", e);
	return buf;
}

/* "what=N", or "what=-1/ERRNO" for a failed call (errno read right away). */
static void add_ret(struct res *r, const char *what, ssize_t ret)
{
	if (ret < 0)
		add(r, "%s=-1/%s", what, ename(errno));
	else
		add(r, "%s=%zd", what, ret);
}

static void add_events(struct res *r, const char *what, int ev)
{
	static const struct {
		int bit;
		const char *name;
	} bits[] = { { POLLIN, "IN" },	   { POLLOUT, "OUT" },
		     { POLLRDHUP, "RDHUP" }, { POLLHUP, "HUP" },
		     { POLLERR, "ERR" },   { POLLPRI, "PRI" } };
	char buf[64] = "";
	size_t i;

	for (i = 0; i < sizeof(bits) / sizeof(bits[0]); i++)
		if (ev & bits[i].bit)
			snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf),
				 "%s%s", buf[0] ? "|" : "", bits[i].name);
	add(r, "%s=%s", what, buf[0] ? buf : "0");
}

static void sleep_ms(int ms)
{
	usleep(ms * 1000);
}

/* poll fd for events until one of mask is set or ms passed; revents. */
static int wait_ev(int fd, short events, short mask, int ms)
{
	__u64 deadline = th_now_ms() + ms;
	struct pollfd p = { fd, events, 0 };

	for (;;) {
		p.revents = 0;
		if (poll(&p, 1, 10) < 0 && errno != EINTR)
			return -1;
		if (p.revents & mask || th_now_ms() >= deadline)
			return p.revents;
	}
}

static int poll_now(int fd, short events)
{
	struct pollfd p = { fd, events, 0 };

	poll(&p, 1, 0);
	return p.revents;
}

static int set_nonblock(int fd)
{
	return fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static bool is_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl >= 0 && (fl & O_NONBLOCK);
}

/* One call the way the socket's file flags make it: a blocking socket
 * blocks in the kernel (bounded by SO_RCVTIMEO/SO_SNDTIMEO); a non-blocking
 * one waits in poll() and retries on EAGAIN, an event loop's call, for up
 * to ms.
 */
static ssize_t io_call(int fd, void *buf, size_t len, int flags, bool tx,
		       int ms)
{
	__u64 deadline;
	ssize_t n;

	if (!is_nonblock(fd))
		return tx ? send(fd, buf, len, flags | MSG_NOSIGNAL) :
			    recv(fd, buf, len, flags);
	deadline = th_now_ms() + ms;
	for (;;) {
		struct pollfd p = { fd, tx ? POLLOUT : POLLIN, 0 };
		__u64 now = th_now_ms();

		if (now >= deadline) {
			errno = EAGAIN;
			return -1;
		}
		if (poll(&p, 1, deadline - now) < 0 && errno != EINTR)
			return -1;
		n = tx ? send(fd, buf, len, flags | MSG_NOSIGNAL) :
			 recv(fd, buf, len, flags);
		if (n >= 0 || (errno != EAGAIN && errno != EINTR))
			return n;
	}
}

static ssize_t io_recv(int fd, void *buf, size_t len, int flags)
{
	return io_call(fd, buf, len, flags, false, IO_TIMEOUT_S * 1000);
}

/* Write all of buf; bytes written. Not sl_io_full(): these are the app's
 * own calls under test (send()/recv() with its flags, blocking or not as
 * the case set the socket), and a case reports how far they got.
 */
static size_t send_all(int fd, const void *buf, size_t len)
{
	size_t off = 0;
	ssize_t r;

	while (off < len) {
		r = io_call(fd, (char *)buf + off, len - off, 0, true,
			    IO_TIMEOUT_S * 1000);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		off += r;
	}
	return off;
}

/* Read exactly len bytes or until EOF/error/deadline; bytes read. */
static size_t recv_all(int fd, void *buf, size_t len, int ms)
{
	__u64 deadline = th_now_ms() + ms;
	size_t off = 0;
	ssize_t r;

	while (off < len && th_now_ms() < deadline) {
		r = io_call(fd, (char *)buf + off, len - off, 0, false, ms);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r <= 0)
			break;
		off += r;
	}
	return off;
}

/* Bytes the python client checks: byte i is (i % 251 + i / 251) & 0xff. */
static void pat_fill(char *buf, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		buf[i] = (i % 251 + i / 251) & 0xff;
}

/* ---- what a run is ---- */

enum mode { M_PLAIN, M_SAFE, M_SEND, M_ALL, M_RELAY, M_SPLICED, M_NR };
static const char *const mode_name[M_NR] = { "plain", "safe", "send",
					     "all", "relay", "spliced" };

/* The modes through sidelane's proxy: app_sockets send, with and without
 * the splice.
 */
static bool via_proxy(enum mode m)
{
	return m == M_RELAY || m == M_SPLICED;
}

/* Where the app's socket (always the connecting end, made in the app's
 * cgroup) sits. A case about one direction runs app-app (the app's socket
 * writes to another app's accepted one), app-reads (the sidecar's accepted
 * socket writes) and app-writes (the sidecar's reads); a case where both
 * ends talk runs app-app and app-sidecar. The proxy-* placements put
 * sidelane's proxy between the app and the other end, an upstream outside
 * sidelane's cgroups (a direct connection to it in mode plain).
 */
enum place { P_APP_APP, P_APP_READS, P_APP_WRITES, P_APP_SIDECAR,
	     P_PROXY_READS, P_PROXY_WRITES, P_PROXY_BOTH, P_NR };
static const char *const place_name[P_NR] = {
	"app-app",     "app-reads",    "app-writes", "app-sidecar",
	"proxy-reads", "proxy-writes", "proxy-both"
};

static bool proxy_place(enum place p)
{
	return p >= P_PROXY_READS;
}

static const struct family {
	const char *name, *addr;
} families[] = { { "ipv4", "127.0.0.1" }, { "ipv6", "::1" } };
#define N_FAM 2

/* block: blocking calls, SO_RCVTIMEO/SO_SNDTIMEO; nonblock: both ends
 * non-blocking from before connect()/at accept(), every call poll() first.
 */
static const char *const var_name[2] = { "block", "nonblock" };

/* A listener of the env: one per [sidecar?][family], made once, the
 * sidecar's while this process is in the sidecar cgroup (an accepted socket
 * belongs to its listener's cgroup, whoever accepts it).
 */
struct lsn {
	int fd, port;
	struct sockaddr_storage ss;
	socklen_t len;
};

static struct lsn lsn[2][N_FAM];
/* the proxy-* placements: the upstream's listener (this process's cgroup,
 * made once) and the ambassadors' addresses (fd -1)
 */
static struct lsn up_lsn[N_FAM], amb_lsn[N_FAM];

struct ccase;

struct combo {
	enum mode mode;
	enum place place;
	int fam;
	bool nb;
	const struct ccase *cc;
	const struct lsn *l; /* where the other end is accepted */
	const struct lsn *dst; /* where the app connects: l or an ambassador */
};

/* What a case gets: role cases use r/w, the others app/peer. */
struct cctx {
	const struct combo *cb;
	int r, w; /* the reading end and the writing end */
	int app, peer; /* the app's socket and its other end */
};

struct ccase {
	const char *name;
	void (*fn)(struct cctx *x, struct res *r);
	unsigned int flags;
	int (*prep)(int fd); /* on the app's socket before connect() */
	/* safe and send, non-blocking app socket to the sidecar: it is kept
	 * out for this reason, or taken out again (evicted[]); 0: neither
	 */
	__u16 keep_out, evicts;
};

#define C_BOTH 0x1 /* both ends talk: app-app and app-sidecar, app/peer */
#define C_OWN 0x2 /* makes its own connections: app/peer are -1 */
#define C_APP_WRITES 0x4 /* C_BOTH: the app writes, admitted means redirected */

/* The runner's connection; a case that closes an end does it through
 * close_end(), so the runner does not close a number reused meanwhile.
 */
static int conn[2] = { -1, -1 };

static void close_end(int fd)
{
	if (conn[0] == fd)
		conn[0] = -1;
	if (conn[1] == fd)
		conn[1] = -1;
	close(fd);
}

static bool sa_same(const struct sockaddr_storage *a,
		    const struct sockaddr_storage *b)
{
	const struct sockaddr_in *a4 = (const void *)a, *b4 = (const void *)b;
	const struct sockaddr_in6 *a6 = (const void *)a, *b6 = (const void *)b;

	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET)
		return a4->sin_port == b4->sin_port &&
		       a4->sin_addr.s_addr == b4->sin_addr.s_addr;
	return a6->sin6_port == b6->sin6_port &&
	       !memcmp(&a6->sin6_addr, &b6->sin6_addr, 16);
}

static void set_timeouts(int fd)
{
	struct timeval tv = { IO_TIMEOUT_S, 0 };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static struct th_env *cur_env; /* the mode's, while it runs */
static bool last_spliced; /* open_conn() saw its pair spliced */

/* Wait up to ms until the proxy has spliced fd's connection (its entry in
 * sl_splice_idx, keyed by the sidecar's end): 0 or -ETIMEDOUT.
 */
static int wait_spliced(int fd, int ms)
{
	struct sl_sock_key me, side;
	struct sl_splice_ref ref;
	int map, err = -ETIMEDOUT;
	__u64 end = th_now_ms() + ms;

	map = sl_pin_open(cur_env->pin_root, SL_MAP_SPLICE_IDX);
	if (map < 0 || th_sock_key(fd, &me))
		goto out;
	sl_sock_key_swap(&me, &side);
	do {
		if (!bpf_map_lookup_elem(map, &side, &ref)) {
			err = 0;
			break;
		}
		usleep(1000);
	} while (th_now_ms() < end);
out:
	if (map >= 0)
		close(map);
	return err;
}

/* accept4() on the shared listener, within ms; -1 with errno. */
static int accept_ms(int lfd, int flags, struct sockaddr_storage *from, int ms)
{
	socklen_t len = sizeof(*from);

	if (!(wait_ev(lfd, POLLIN, POLLIN, ms) & POLLIN)) {
		errno = ETIMEDOUT;
		return -1;
	}
	return accept4(lfd, (void *)from, &len, flags | SOCK_CLOEXEC);
}

/* A connection to the combo's listener: *app the client (non-blocking from
 * before connect() in the nonblock variant, the case's prep() applied
 * before connect()), *peer its accepted end (non-blocking likewise).
 * 0 or -errno.
 */
static int open_conn(const struct combo *cb, int *app, int *peer)
{
	int fl = cb->nb ? SOCK_NONBLOCK : 0, c, s = -1, err, i;
	struct sockaddr_storage me, from;
	socklen_t len = sizeof(me);

	c = socket(cb->dst->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | fl, 0);
	if (c < 0)
		return -errno;
	if (cb->cc->prep && cb->cc->prep(c))
		goto err;
	if (connect(c, (void *)&cb->dst->ss, cb->dst->len) &&
	    errno != EINPROGRESS)
		goto err;
	if (cb->nb) {
		/* loopback: EINPROGRESS, then writable once established */
		if (!(wait_ev(c, POLLOUT, POLLOUT | POLLERR | POLLHUP, 2000) &
		      POLLOUT)) {
			errno = ETIMEDOUT;
			goto err;
		}
		len = sizeof(err);
		if (getsockopt(c, SOL_SOCKET, SO_ERROR, &err, &len))
			goto err;
		if (err) {
			errno = err;
			goto err;
		}
	}
	len = sizeof(me);
	if (getsockname(c, (void *)&me, &len))
		goto err;
	/* The listener is shared: take our connection, not a leftover.
	 * Through the proxy, the one the proxy opened: the next.
	 */
	for (i = 0; i < 8; i++) {
		s = accept_ms(cb->l->fd, fl, &from, 2000);
		if (s < 0)
			goto err;
		if (cb->dst != cb->l || sa_same(&me, &from))
			break;
		close(s);
		s = -1;
	}
	if (s < 0) {
		errno = ENOENT;
		goto err;
	}
	set_timeouts(c);
	set_timeouts(s);
	*app = c;
	*peer = s;
	/* spliced: the case starts past the splice point, when admitted */
	if (cb->mode == M_SPLICED)
		last_spliced = !wait_spliced(c, cb->nb && !cb->cc->keep_out ?
							2000 : 20);
	return 0;
err:
	err = errno ? -errno : -EIO;
	close(c);
	return err;
}

/* ---- readers and writers shared by the cases ---- */

/* Read until len bytes (0: until EOF), an error or EOF, into buf while it
 * has room (cap). A blocking recv() failing EAGAIN long before SO_RCVTIMEO
 * (a wakeup without data; CPython raises BlockingIOError for it) is
 * counted and retried.
 */
struct reader {
	int fd;
	char *buf;
	size_t cap, len;
	int slow_us; /* pause between reads */
	size_t got;
	unsigned int early;
	int err; /* what ended it early, 0 for EOF or len */
	bool eof;
};

static void *read_thread(void *arg)
{
	struct reader *rd = arg;
	char scratch[16 * KiB];
	size_t chunk;
	__u64 t0;
	ssize_t n;
	char *dst;

	for (;;) {
		if (rd->len && rd->got >= rd->len)
			break;
		chunk = 64 * KiB;
		if (rd->len && rd->len - rd->got < chunk)
			chunk = rd->len - rd->got;
		if (rd->buf && rd->got < rd->cap) {
			dst = rd->buf + rd->got;
			chunk = chunk < rd->cap - rd->got ? chunk :
							    rd->cap - rd->got;
		} else {
			dst = scratch;
			chunk = chunk < sizeof(scratch) ? chunk : sizeof(scratch);
		}
		t0 = th_now_ms();
		n = io_recv(rd->fd, dst, chunk, 0);
		if (n < 0 && errno == EAGAIN &&
		    th_now_ms() - t0 < IO_TIMEOUT_S * 1000 / 2 &&
		    rd->early < 1000) {
			rd->early++;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rd->err = errno;
			break;
		}
		if (!n) {
			rd->eof = true;
			break;
		}
		rd->got += n;
		if (rd->slow_us)
			usleep(rd->slow_us);
	}
	return NULL;
}

/* Echo until EOF, then shut down: the sidecar (or other app) end of the
 * request/response cases.
 */
static void echo(int fd)
{
	char buf[64 * KiB];
	ssize_t n;

	for (;;) {
		n = io_recv(fd, buf, sizeof(buf), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || send_all(fd, buf, n) != (size_t)n)
			break;
	}
	shutdown(fd, SHUT_WR);
}

static void *echo_thread(void *arg)
{
	echo(*(int *)arg);
	return NULL;
}

static void drain(int fd)
{
	struct reader rd = { .fd = fd };

	read_thread(&rd);
}

/* ---- the cases ---- */

/* FIONREAD (== SIOCINQ) after the peer wrote 1000 bytes in three writes, and
 * after reading 100 of them; SIOCOUTQ of the writer.
 */
static void case_fionread(struct cctx *x, struct res *r)
{
	int c = x->w, s = x->r, v = -1;
	char buf[1000];

	th_fill(buf, sizeof(buf), 1);
	send_all(c, buf, 300);
	send_all(c, buf + 300, 300);
	send_all(c, buf + 600, 400);
	wait_ev(s, POLLIN, POLLIN, 1000);
	sleep_ms(20); /* every write has landed */
	add_ret(r, "fionread", ioctl(s, FIONREAD, &v) ? -1 : v);
	add_ret(r, "recv", io_recv(s, buf, 100, 0));
	add_ret(r, "siocinq", ioctl(s, SIOCINQ, &v) ? -1 : v);
	add_ret(r, "writer_siocoutq", ioctl(c, SIOCOUTQ, &v) ? -1 : v);
}

static void case_msg_peek(struct cctx *x, struct res *r)
{
	int c = x->w, s = x->r;
	char buf[64];
	ssize_t n;

	send_all(c, "hello world", 11);
	wait_ev(s, POLLIN, POLLIN, 1000);
	sleep_ms(10);
	n = io_recv(s, buf, 5, MSG_PEEK);
	add_ret(r, "peek5", n);
	add(r, "peek5_data=%s", n == 5 && !memcmp(buf, "hello", 5) ? "ok" : "bad");
	add_ret(r, "peek64", io_recv(s, buf, sizeof(buf), MSG_PEEK));
	n = io_recv(s, buf, sizeof(buf), 0);
	add_ret(r, "recv", n);
	add(r, "data=%s", n == 11 && !memcmp(buf, "hello world", 11) ? "ok" : "bad");
	add_ret(r, "peek_empty", recv(s, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT));
}

struct slow_writer {
	int fd, chunks, gap_ms;
	size_t chunk;
	const char *buf;
	bool shut;
};

static void *slow_write(void *arg)
{
	struct slow_writer *w = arg;
	int i;

	for (i = 0; i < w->chunks; i++) {
		sleep_ms(w->gap_ms);
		send_all(w->fd, w->buf + i * w->chunk, w->chunk);
	}
	if (w->shut)
		shutdown(w->fd, SHUT_WR);
	return NULL;
}

/* The writer's gap between chunks: a blocking MSG_WAITALL waits for them
 * all, so any gap does; a non-blocking one returns what is there when
 * poll() wakes the reader, so the gap must outlast a loaded machine's
 * wake-up (20 ms did not, once, under ASan beside a soak: both plain and
 * accelerated can then read two chunks at once, and differ by chance).
 */
#define WAITALL_GAP_MS(nb) ((nb) ? 80 : 20)

/* MSG_WAITALL waits for all 4000 bytes written in 4 chunks; with the
 * writer shutting down after 1500 bytes it returns those 1500. (An event
 * loop's MSG_WAITALL returns what is there once poll() says so: the first
 * chunk.)
 */
static void case_msg_waitall(struct cctx *x, struct res *r)
{
	static char out[4000], in[4000];
	int gap = WAITALL_GAP_MS(x->cb->nb);
	struct slow_writer w = { x->w, 4, gap, 1000, out, false };
	int s = x->r;
	pthread_t t;
	size_t rest;
	ssize_t n;

	th_fill(out, sizeof(out), 2);
	if (pthread_create(&t, NULL, slow_write, &w)) {
		add(r, "thread=failed");
		return;
	}
	n = io_recv(s, in, sizeof(in), MSG_WAITALL);
	pthread_join(t, NULL);
	add_ret(r, "waitall", n);
	/* what a short return left behind, so the second part starts clean */
	rest = n >= 0 && n < 4000 ? recv_all(s, in + n, 4000 - n, 1000) : 0;
	add(r, "rest=%zu", rest);
	add(r, "stream=%s", n >= 0 && !memcmp(in, out, n + rest) ? "ok" : "bad");
	w = (struct slow_writer){ x->w, 3, gap, 500, out, true };
	if (pthread_create(&t, NULL, slow_write, &w)) {
		add(r, "thread=failed");
		return;
	}
	n = io_recv(s, in, sizeof(in), MSG_WAITALL);
	pthread_join(t, NULL);
	add_ret(r, "waitall_shut", n);
}

/* SO_RCVLOWAT 1000: 500 bytes do not make the socket readable, 1100 do. */
static void case_so_rcvlowat(struct cctx *x, struct res *r)
{
	int c = x->w, s = x->r, lowat = 1000;
	char buf[2048];

	add_ret(r, "setsockopt",
		setsockopt(s, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof(lowat)));
	th_fill(buf, sizeof(buf), 3);
	send_all(c, buf, 500);
	add_events(r, "poll_500", wait_ev(s, POLLIN, POLLIN, 100));
	send_all(c, buf + 500, 600);
	add_events(r, "poll_1100", wait_ev(s, POLLIN, POLLIN, 1000));
	add_ret(r, "recv", io_recv(s, buf, sizeof(buf), 0));
}

/* poll() readiness through data, read, half-close, close and reset. */
static void case_poll(struct cctx *x, struct res *r)
{
	const short ev = POLLIN | POLLOUT | POLLRDHUP;
	int c = x->w, s = x->r;
	char buf[128] = { 0 };

	add_events(r, "idle", poll_now(s, ev));
	send_all(c, buf, 100);
	wait_ev(s, POLLIN, POLLIN, 1000);
	add_events(r, "data", poll_now(s, ev));
	add_ret(r, "recv", io_recv(s, buf, sizeof(buf), 0));
	add_events(r, "drained", poll_now(s, ev));
	shutdown(c, SHUT_WR);
	wait_ev(s, POLLIN, POLLIN | POLLRDHUP, 1000);
	add_events(r, "peer_shut_wr", poll_now(s, ev));
	add_ret(r, "recv_eof", io_recv(s, buf, sizeof(buf), 0));
	close_end(c);
	sleep_ms(20);
	add_events(r, "peer_closed", poll_now(s, ev));
	/* the closed peer answers with a reset */
	add_ret(r, "send", send(s, buf, 10, MSG_NOSIGNAL));
	wait_ev(s, ev, POLLERR | POLLHUP, 1000);
	add_events(r, "after_rst", poll_now(s, ev));
	add_ret(r, "recv_after_rst", recv(s, buf, sizeof(buf), MSG_DONTWAIT));
}

/* epoll_wait: count and events (0 when nothing is ready). */
static void add_epoll(struct res *r, const char *what, int ep, int ms)
{
	struct epoll_event e = {};
	int n = epoll_wait(ep, &e, 1, ms);

	if (n <= 0) {
		add_ret(r, what, n);
		return;
	}
	/* EPOLL* bits equal the POLL* ones */
	add_events(r, what, e.events);
}

static void epoll_case(struct cctx *x, struct res *r, bool et)
{
	struct epoll_event e = { .events = EPOLLIN | EPOLLRDHUP };
	int c = x->w, s = x->r, ep = epoll_create1(EPOLL_CLOEXEC);
	char buf[256] = { 0 };

	if (ep < 0) {
		add_ret(r, "epoll_create", ep);
		return;
	}
	if (et)
		e.events |= EPOLLET;
	epoll_ctl(ep, EPOLL_CTL_ADD, s, &e);
	add_epoll(r, "idle", ep, 0);
	send_all(c, buf, 100);
	add_epoll(r, "data", ep, 1000);
	add_ret(r, "recv50", io_recv(s, buf, 50, 0));
	add_epoll(r, "half_read", ep, 0);
	if (et) {
		send_all(c, buf, 100);
		add_epoll(r, "more_data", ep, 1000);
	}
	add_ret(r, "recv_rest", io_recv(s, buf, sizeof(buf), 0));
	add_epoll(r, "drained", ep, 0);
	shutdown(c, SHUT_WR);
	add_epoll(r, "peer_shut_wr", ep, 1000);
	add_epoll(r, "again", ep, 0);
	close(ep);
}

static void case_epoll_lt(struct cctx *x, struct res *r)
{
	epoll_case(x, r, false);
}

static void case_epoll_et(struct cctx *x, struct res *r)
{
	epoll_case(x, r, true);
}

/* shutdown(SHUT_WR): the peer reads all data then EOF, and can still answer. */
static void case_half_close(struct cctx *x, struct res *r)
{
	static char out[10000], back[5000], in[16384];
	int c = x->w, s = x->r;
	size_t got = 0;
	ssize_t n;

	th_fill(out, sizeof(out), 4);
	th_fill(back, sizeof(back), 5);
	add(r, "sent=%zu", send_all(c, out, sizeof(out)));
	add_ret(r, "shutdown", shutdown(c, SHUT_WR));
	for (;;) {
		n = io_recv(s, in + got, sizeof(in) - got, 0);
		if (n <= 0)
			break;
		got += n;
	}
	add(r, "received=%zu", got);
	add_ret(r, "end", n);
	add(r, "data=%s",
	    got == sizeof(out) && !memcmp(in, out, got) ? "ok" : "bad");
	add(r, "sent_back=%zu", send_all(s, back, sizeof(back)));
	got = recv_all(c, in, sizeof(back), 2000);
	add(r, "received_back=%zu", got);
	add(r, "data_back=%s",
	    got == sizeof(back) && !memcmp(in, back, got) ? "ok" : "bad");
	add_ret(r, "send_after_shut", send(c, "x", 1, MSG_NOSIGNAL));
	sleep_ms(10);
	/* the peer already read EOF: nothing may follow it */
	add_ret(r, "peer_recv_after_eof", recv(s, in, sizeof(in), MSG_DONTWAIT));
	close_end(s);
	add_ret(r, "recv_after_close", io_recv(c, in, sizeof(in), 0));
}

/* Closing with unread data resets the connection (RFC 2525 2.17). */
static void case_rst_unread(struct cctx *x, struct res *r)
{
	int c = x->w, s = x->r;
	char buf[128] = { 0 };

	send_all(c, buf, 100);
	wait_ev(s, POLLIN, POLLIN, 1000);
	sleep_ms(10);
	close_end(s);
	add_events(r, "peer_revents",
		   wait_ev(c, POLLIN | POLLRDHUP, POLLIN | POLLERR | POLLHUP |
							  POLLRDHUP, 1000));
	sleep_ms(10);
	add_ret(r, "recv", recv(c, buf, sizeof(buf), MSG_DONTWAIT));
	add_ret(r, "recv2", recv(c, buf, sizeof(buf), MSG_DONTWAIT));
	add_ret(r, "send", send(c, buf, 10, MSG_NOSIGNAL));
}

/* splice() socket -> pipe of 64 KiB the peer wrote. */
static void case_splice_to_pipe(struct cctx *x, struct res *r)
{
	static char out[64 * KiB], in[64 * KiB];
	int c = x->w, s = x->r, p[2], first_err = 0;
	size_t got = 0, rest;
	__u64 deadline;
	ssize_t n;

	if (pipe2(p, O_CLOEXEC)) {
		add(r, "pipe=failed");
		return;
	}
	fcntl(p[1], F_SETPIPE_SZ, 1 * MiB);
	th_fill(out, sizeof(out), 6);
	add(r, "sent=%zu", send_all(c, out, sizeof(out)));
	/* SPLICE_F_NONBLOCK only covers the pipe: a blocking socket with
	 * nothing in its receive queue would wait for ever
	 */
	set_nonblock(s);
	/* waits until readable, so EAGAIN would be a readiness that lied:
	 * a short wait timing out on a loaded machine is no finding
	 */
	deadline = th_now_ms() + 2000;
	while (got < sizeof(out) && th_now_ms() < deadline) {
		wait_ev(s, POLLIN, POLLIN, (int)(deadline - th_now_ms()));
		n = splice(s, NULL, p[1], NULL, sizeof(out) - got,
			   SPLICE_F_NONBLOCK);
		if (n < 0 && !first_err)
			first_err = errno;
		if (n <= 0)
			continue;
		got += n;
	}
	add(r, "spliced=%zu", got);
	if (first_err)
		add(r, "splice_err=%s", ename(first_err));
	if (read(p[0], in, got) != (ssize_t)got || memcmp(in, out, got))
		add(r, "pipe_data=bad");
	else
		add(r, "pipe_data=ok");
	/* whatever splice could not take is still readable as a stream */
	rest = recv_all(s, in + got, sizeof(out) - got, 500);
	add(r, "recv_rest=%zu", rest);
	add(r, "stream=%s", !memcmp(in, out, got + rest) ? "ok" : "bad");
	close(p[0]);
	close(p[1]);
}

/* splice() pipe -> socket. */
static void case_splice_from_pipe(struct cctx *x, struct res *r)
{
	static char out[64 * KiB], in[64 * KiB];
	int c = x->w, s = x->r, p[2];
	size_t sent = 0, got;
	__u64 deadline;
	ssize_t n;

	if (pipe2(p, O_CLOEXEC)) {
		add(r, "pipe=failed");
		return;
	}
	fcntl(p[1], F_SETPIPE_SZ, 1 * MiB);
	th_fill(out, sizeof(out), 7);
	if (write(p[1], out, sizeof(out)) != sizeof(out))
		add(r, "pipe_write=short");
	deadline = th_now_ms() + 2000;
	while (sent < sizeof(out) && th_now_ms() < deadline) {
		n = splice(p[0], NULL, c, NULL, sizeof(out) - sent, 0);
		if (n < 0 && errno == EAGAIN) { /* a full non-blocking socket */
			wait_ev(c, POLLOUT, POLLOUT, 100);
			continue;
		}
		if (n <= 0) {
			add_ret(r, "splice", n);
			break;
		}
		sent += n;
	}
	add(r, "spliced=%zu", sent);
	got = recv_all(s, in, sizeof(out), 2000);
	add(r, "received=%zu", got);
	add(r, "data=%s", got == sizeof(out) && !memcmp(in, out, got) ? "ok" : "bad");
	close(p[0]);
	close(p[1]);
}

/* sendfile() of a 256 KiB file into the socket. */
static void case_sendfile(struct cctx *x, struct res *r)
{
	static char out[256 * KiB], in[256 * KiB];
	struct reader rd = { .fd = x->r, .buf = in, .cap = sizeof(in),
			     .len = sizeof(in) };
	int c = x->w, fd;
	__u64 deadline;
	off_t off = 0;
	pthread_t t;
	ssize_t n;

	fd = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	th_fill(out, sizeof(out), 8);
	if (fd < 0 || write(fd, out, sizeof(out)) != sizeof(out)) {
		add(r, "tmpfile=failed");
		goto out;
	}
	if (pthread_create(&t, NULL, read_thread, &rd)) {
		add(r, "thread=failed");
		goto out;
	}
	deadline = th_now_ms() + 5000;
	while (off < (off_t)sizeof(out) && th_now_ms() < deadline) {
		n = sendfile(c, fd, &off, sizeof(out) - off);
		if (n < 0 && errno == EAGAIN) { /* a full non-blocking socket */
			wait_ev(c, POLLOUT, POLLOUT, 100);
			continue;
		}
		if (n <= 0) {
			add_ret(r, "sendfile", n);
			break;
		}
	}
	pthread_join(t, NULL);
	add(r, "sent=%lld received=%zu", (long long)off, rd.got);
	add(r, "data=%s", rd.got == sizeof(out) && !memcmp(in, out, rd.got) ?
				  "ok" : "bad");
out:
	if (fd >= 0)
		close(fd);
}

#define BP_MAX (32 * MiB)
/* Above this much in flight a writer is not held back by anything. */
#define BP_BOUND (24 * MiB)
#define BP_SETTLE_MS 3000 /* for a writer to stop, on a loaded host */

/* bp_out is filled once (th_fill seed 9); the cases only read it. */
static char bp_out[BP_MAX], bp_in[BP_MAX];

/* 32 MiB where the app writes over IPv4 or through the proxy, 8 MiB
 * elsewhere: the same property, a quarter of the time.
 */
static size_t bp_total(const struct cctx *x)
{
	/* through the proxy, 8 MiB may fit in its buffers and sockets' */
	if (proxy_place(x->cb->place))
		return BP_MAX;
	return x->cb->fam == 0 && x->cb->place != P_APP_READS ? BP_MAX :
								 8 * MiB;
}

struct bp_writer {
	int fd;
	size_t total;
	volatile size_t done;
};

static void *bp_write(void *arg)
{
	struct bp_writer *w = arg;
	ssize_t n;

	while (w->done < w->total) {
		n = io_call(w->fd, bp_out + w->done, 64 * KiB, 0, true,
			    20 * 1000);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		w->done += n;
	}
	return NULL;
}

/* A writer against a reader that does not read is held back with a bounded
 * amount queued; a slow blocking reader then gets everything intact.
 */
static void case_backpressure_block(struct cctx *x, struct res *r)
{
	size_t total = bp_total(x), p1 = 0, p2;
	struct bp_writer w = { x->w, total, 0 };
	unsigned int waited;
	struct reader rd = { .fd = x->r, .buf = bp_in, .cap = total,
			     .len = total, .slow_us = 200 };
	struct timeval tv = { 20, 0 };
	pthread_t t;

	setsockopt(x->w, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (pthread_create(&t, NULL, bp_write, &w)) {
		add(r, "thread=failed");
		return;
	}
	/* Blocked: no progress over 100 ms short of the total. How soon the
	 * buffers on the way (sockets', the proxy's) fill varies with the
	 * host's load, so the first look comes after 150 ms and the verdict
	 * waits up to BP_SETTLE_MS for the writer to stop.
	 */
	sleep_ms(150);
	p2 = w.done;
	for (waited = 0; waited < BP_SETTLE_MS; waited += 100) {
		sleep_ms(100);
		p1 = p2;
		p2 = w.done;
		if (p1 == p2)
			break;
	}
	add(r, "writer_blocked=%s", p1 == p2 && p1 < total ? "yes" : "no");
	add(r, "queued_bounded=%s", p2 <= BP_BOUND ? "yes" : "no");
	th_info("backpressure_block: %zu bytes written before the writer blocked",
		p2);
	read_thread(&rd);
	pthread_join(t, NULL);
	add(r, "written=%zu received=%zu", w.done, rd.got);
	add(r, "early_eagain=%s", rd.early ? "yes" : "no");
	add(r, "data=%s", rd.got == total && !memcmp(bp_in, bp_out, total) ?
				  "ok" : "bad");
}

/* A non-blocking writer gets EAGAIN with a bounded amount queued; a poll
 * loop with a slow reader then moves everything intact.
 */
static void case_backpressure_nonblock(struct cctx *x, struct res *r)
{
	size_t total = bp_total(x), sent = 0, got = 0, queued;
	int c = x->w, s = x->r, eagain = 0;
	__u64 deadline;
	ssize_t n;

	set_nonblock(c);
	set_nonblock(s);
	while (sent < total) {
		n = send(c, bp_out + sent, 64 * KiB, MSG_NOSIGNAL);
		if (n < 0) {
			eagain = errno;
			break;
		}
		sent += n;
	}
	queued = sent;
	add(r, "first_error=%s", eagain ? ename(eagain) : "none");
	add(r, "queued_bounded=%s", queued <= BP_BOUND ? "yes" : "no");
	th_info("backpressure_nonblock: %zu bytes accepted before %s", queued,
		eagain ? ename(eagain) : "the end");
	deadline = th_now_ms() + 10000;
	while ((sent < total || got < sent) && th_now_ms() < deadline) {
		struct pollfd p[2] = { { c, sent < total ? POLLOUT : 0, 0 },
				       { s, POLLIN, 0 } };

		poll(p, 2, 100);
		if (p[0].revents & POLLOUT) {
			n = send(c, bp_out + sent,
				 total - sent < 64 * KiB ? total - sent :
							   64 * KiB,
				 MSG_NOSIGNAL);
			if (n > 0)
				sent += n;
		}
		if (p[1].revents & POLLIN) {
			/* slow: one 16 KiB read per round */
			n = recv(s, bp_in + got, 16 * KiB, 0);
			if (n > 0)
				got += n;
		}
	}
	add(r, "written=%zu received=%zu", sent, got);
	add(r, "data=%s", got == total && !memcmp(bp_in, bp_out, total) ?
				  "ok" : "bad");
}

struct duplex_end {
	int fd;
	pthread_t tw, tr;
	struct reader rd;
};

static void *duplex_write(void *arg)
{
	struct duplex_end *e = arg;
	int i;

	/* 200 one-byte messages, then FIN */
	for (i = 0; i < 200; i++)
		if (send_all(e->fd, "x", 1) != 1)
			break;
	shutdown(e->fd, SHUT_WR);
	return NULL;
}

/* Blocking recv() (SO_RCVTIMEO 5 s) on both ends while both ends' other
 * threads send 200 one-byte messages and shut down, like a blocking
 * request/response client. A blocking recv() must return data, EOF or, after
 * 5 s, EAGAIN; never EAGAIN early. Ten rounds on fresh connections: the
 * early EAGAIN is a race, seen in some rounds only.
 */
static void case_blocking_duplex(struct cctx *x, struct res *r)
{
	unsigned int early = 0, bytes_ok = 0, rounds = 0, i, k;
	int fds[2] = { x->app, x->peer };
	struct duplex_end e[2];

	for (i = 0; i < 10; i++) {
		if (i && open_conn(x->cb, &fds[0], &fds[1]))
			break;
		rounds++;
		for (k = 0; k < 2; k++) {
			e[k] = (struct duplex_end){ .fd = fds[k] };
			e[k].rd = (struct reader){ .fd = fds[k] };
			pthread_create(&e[k].tr, NULL, read_thread, &e[k].rd);
		}
		for (k = 0; k < 2; k++)
			pthread_create(&e[k].tw, NULL, duplex_write, &e[k]);
		for (k = 0; k < 2; k++) {
			pthread_join(e[k].tw, NULL);
			pthread_join(e[k].tr, NULL);
		}
		if (e[0].rd.got == 200 && e[1].rd.got == 200 && e[0].rd.eof &&
		    e[1].rd.eof)
			bytes_ok++;
		if (e[0].rd.early || e[1].rd.early)
			th_info("blocking_duplex: round %u: early EAGAIN from recv() "
				"%u+%u times (app+peer)", i, e[0].rd.early,
				e[1].rd.early);
		early += e[0].rd.early + e[1].rd.early;
		if (i) {
			close(fds[0]);
			close(fds[1]);
		}
	}
	add(r, "rounds=%u complete=%u early_eagain=%s", rounds, bytes_ok,
	    early ? "yes" : "no");
}

#define DX_LEN (8 * MiB)

/* dx_out[k] is what end k writes (filled once); dx_in[k] what it reads. */
static char dx_out[2][DX_LEN], dx_in[2][DX_LEN];

struct dx_writer {
	int fd;
	const char *buf;
	size_t len, sent;
	int err;
};

static void *dx_write(void *arg)
{
	struct dx_writer *w = arg;

	w->sent = send_all(w->fd, w->buf, w->len);
	if (w->sent < w->len)
		w->err = errno;
	shutdown(w->fd, SHUT_WR);
	return NULL;
}

/* Full duplex with a reader thread and a writer thread on each end, 8 MiB
 * each way then FIN, every byte checked: what a blocking client with one
 * thread per direction does (the BlockingIOError).
 */
static void case_duplex_threads(struct cctx *x, struct res *r)
{
	int fds[2] = { x->app, x->peer }, k, werr = 0, rerr = 0;
	struct reader rd[2];
	struct dx_writer w[2];
	pthread_t tr[2], tw[2];
	unsigned int early = 0;
	bool ok = true, eof = true, started[2] = { false, false };

	for (k = 0; k < 2; k++) {
		rd[k] = (struct reader){ .fd = fds[k], .buf = dx_in[k],
					 .cap = DX_LEN };
		w[k] = (struct dx_writer){ .fd = fds[k], .buf = dx_out[k],
					   .len = DX_LEN };
		if (pthread_create(&tr[k], NULL, read_thread, &rd[k]))
			continue;
		if (pthread_create(&tw[k], NULL, dx_write, &w[k])) {
			/* the reader ends when the peer's writer does */
			shutdown(fds[k], SHUT_WR);
			pthread_join(tr[k], NULL);
			continue;
		}
		started[k] = true;
	}
	for (k = 0; k < 2; k++) {
		if (!started[k]) {
			ok = false;
			continue;
		}
		pthread_join(tw[k], NULL);
		pthread_join(tr[k], NULL);
	}
	for (k = 0; k < 2; k++) {
		ok = ok && w[k].sent == DX_LEN && rd[!k].got == DX_LEN &&
		     !memcmp(dx_in[!k], dx_out[k], DX_LEN);
		eof = eof && rd[k].eof;
		early += rd[k].early;
		werr = werr ?: w[k].err;
		rerr = rerr ?: rd[k].err;
	}
	if (early)
		th_info("duplex_threads: early EAGAIN from recv() %u+%u times "
			"(app+peer)", rd[0].early, rd[1].early);
	add(r, "app_to_peer=%zu peer_to_app=%zu data=%s eof=%s", rd[1].got,
	    rd[0].got, ok ? "ok" : "bad", eof ? "yes" : "no");
	add(r, "early_eagain=%s read_error=%s write_error=%s",
	    early ? "yes" : "no", rerr ? ename(rerr) : "none",
	    werr ? ename(werr) : "none");
}

#define RR_ROUNDS 300
#define RR_MSG 64

struct rr_writer {
	int fd;
	sem_t go; /* one request per post */
	volatile bool stop;
};

static void *rr_write(void *arg)
{
	struct rr_writer *w = arg;
	char msg[RR_MSG];
	int i;

	for (i = 0; i < RR_ROUNDS; i++) {
		while (sem_wait(&w->go) && errno == EINTR)
			;
		if (w->stop)
			break;
		memset(msg, 'a' + i % 26, sizeof(msg));
		if (send_all(w->fd, msg, sizeof(msg)) != sizeof(msg))
			break;
	}
	shutdown(w->fd, SHUT_WR);
	return NULL;
}

/* The app's socket, connected non-blocking (nonblock variant), is made
 * blocking with fcntl(); then a writer thread sends 300 requests, each when
 * the main thread, blocked in recv(), has read the echo of the last one. A
 * blocking recv() must never fail EAGAIN early; in send mode the socket
 * leaves the sockhash (evicted[became-blocking]).
 */
static void case_became_blocking(struct cctx *x, struct res *r)
{
	struct rr_writer w = { .fd = x->app };
	unsigned int complete = 0, early = 0, i;
	int fl = fcntl(x->app, F_GETFL);
	char buf[RR_MSG], want[RR_MSG];
	pthread_t te, tw;
	size_t got;
	__u64 t0;
	ssize_t n;

	add_ret(r, "fcntl", fcntl(x->app, F_SETFL, fl & ~O_NONBLOCK));
	if (sem_init(&w.go, 0, 0)) {
		add(r, "sem=failed");
		return;
	}
	if (pthread_create(&te, NULL, echo_thread, &x->peer)) {
		add(r, "thread=failed");
		goto out;
	}
	if (pthread_create(&tw, NULL, rr_write, &w)) {
		add(r, "thread=failed");
		shutdown(x->app, SHUT_WR); /* ends the echo */
		pthread_join(te, NULL);
		goto out;
	}
	for (i = 0; i < RR_ROUNDS; i++) {
		sem_post(&w.go);
		memset(want, 'a' + i % 26, sizeof(want));
		for (got = 0; got < sizeof(buf);) {
			t0 = th_now_ms();
			n = recv(x->app, buf + got, sizeof(buf) - got, 0);
			if (n < 0 && errno == EAGAIN &&
			    th_now_ms() - t0 < IO_TIMEOUT_S * 1000 / 2 &&
			    early < 1000) {
				early++;
				continue;
			}
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			got += n;
		}
		if (got < sizeof(buf) || memcmp(buf, want, sizeof(buf)))
			break;
		complete++;
	}
	w.stop = true;
	sem_post(&w.go);
	pthread_join(tw, NULL);
	/* the echo answers our FIN with its own */
	n = recv(x->app, buf, sizeof(buf), 0);
	pthread_join(te, NULL);
	if (early)
		th_info("became_blocking: early EAGAIN from recv() %u times",
			early);
	add(r, "blocking=%s rounds=%d complete=%u early_eagain=%s",
	    is_nonblock(x->app) ? "no" : "yes", RR_ROUNDS, complete,
	    early ? "yes" : "no");
	add_ret(r, "eof", n);
out:
	sem_destroy(&w.go);
}

#define NOTSENT_LOWAT (16 * KiB)

static int prep_notsent_lowat(int fd)
{
	int v = NOTSENT_LOWAT;

	return setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &v, sizeof(v));
}

/* TCP_NOTSENT_LOWAT 16 KiB on the app's socket, set before connect(): it
 * is writable while idle; with a peer that reads nothing sends end in
 * EAGAIN and it stays unwritable; once the peer has read everything it is
 * writable again. (send and safe keep such a socket out.)
 */
static void case_tcp_notsent_lowat(struct cctx *x, struct res *r)
{
	int a = x->app, v = -1, err = 0;
	socklen_t len = sizeof(v);
	size_t sent = 0, got;
	ssize_t n;

	add_ret(r, "lowat",
		getsockopt(a, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &v, &len) ? -1 : v);
	add_events(r, "idle", poll_now(a, POLLOUT));
	while (sent < 16 * MiB) {
		n = send(a, bp_out + sent, 64 * KiB, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0) {
			err = errno;
			break;
		}
		sent += n;
	}
	add(r, "full=%s", err ? ename(err) : "none");
	add(r, "accepted_bounded=%s", sent <= 8 * MiB ? "yes" : "no");
	th_info("tcp_notsent_lowat: %zu bytes accepted", sent);
	add_events(r, "full_pollout", wait_ev(a, POLLOUT, POLLOUT, 100));
	got = recv_all(x->peer, bp_in, sent, 3000);
	add(r, "received=%s",
	    got == sent && !memcmp(bp_in, bp_out, sent) ? "all" : "short");
	add_events(r, "drained_pollout", wait_ev(a, POLLOUT, POLLOUT, 1000));
}

/* ---- real programs: python3 ---- */

/* The client, CPython's socket module: "block" is a socket without timeout
 * (a blocking fd), "timeout" one with settimeout() (CPython makes the fd
 * non-blocking and polls). A blocking call that may never return under the
 * fast path is bounded by an interval timer. One line on stdout.
 */
static const char py_client[] =
	"import faulthandler, fcntl, os, select, signal, socket, sys, threading, time\n"
	"faulthandler.dump_traceback_later(15, exit=True)\n"
	"case, host, port, var = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]\n"
	"fam = socket.AF_INET6 if ':' in host else socket.AF_INET\n"
	"def on_alarm(sig, frame):\n"
	"    raise TimeoutError('alarm')\n"
	"signal.signal(signal.SIGALRM, on_alarm)\n"
	"def guarded(t, fn, *args):\n"
	"    signal.setitimer(signal.ITIMER_REAL, t)\n"
	"    try:\n"
	"        return fn(*args)\n"
	"    finally:\n"
	"        signal.setitimer(signal.ITIMER_REAL, 0)\n"
	"def conn():\n"
	"    s = socket.socket(fam, socket.SOCK_STREAM)\n"
	"    if var == 'timeout':\n"
	"        s.settimeout(5)\n"
	"    s.connect((host, port))\n"
	"    return s\n"
	"def pat(n):\n"
	"    return bytes(((i % 251) + (i // 251)) & 0xff for i in range(n))\n"
	"def echo():\n"
	"    rounds, size, done, err = 4, 1 << 20, 0, 'none'\n"
	"    for i in range(rounds):\n"
	"        s = conn()\n"
	"        data = os.urandom(size)\n"
	"        werr = []\n"
	"        def writer():\n"
	"            try:\n"
	"                for off in range(0, size, 65536):\n"
	"                    s.sendall(data[off:off + 65536])\n"
	"                s.shutdown(socket.SHUT_WR)\n"
	"            except Exception as e:\n"
	"                werr.append(type(e).__name__)\n"
	"        t = threading.Thread(target=writer)\n"
	"        t.start()\n"
	"        got = bytearray()\n"
	"        try:\n"
	"            while True:\n"
	"                b = guarded(3, s.recv, 65536)\n"
	"                if not b:\n"
	"                    break\n"
	"                got += b\n"
	"        except Exception as e:\n"
	"            err = type(e).__name__\n"
	"            try:\n"
	"                s.shutdown(socket.SHUT_RDWR)\n"
	"            except OSError:\n"
	"                pass\n"
	"        t.join()\n"
	"        s.close()\n"
	"        if werr and err == 'none':\n"
	"            err = 'writer-' + werr[0]\n"
	"        if err != 'none':\n"
	"            break\n"
	"        done += got == data\n"
	"    print('rounds=%d complete=%s error=%s' % (rounds,\n"
	"          'all' if done == rounds else 'no', err))\n"
	"def splice():\n"
	"    s = conn()\n"
	"    want, got, err = 65536, 0, 'none'\n"
	"    r, w = os.pipe()\n"
	"    fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, 1 << 20)\n"
	"    deadline = time.monotonic() + 2  # select waits: see case_splice_to_pipe\n"
	"    while got < want and time.monotonic() < deadline:\n"
	"        try:\n"
	"            if var == 'timeout':\n"
	"                select.select([s], [], [], max(0, deadline - time.monotonic()))\n"
	"                n = os.splice(s.fileno(), w, want - got)\n"
	"            else:\n"
	"                n = guarded(0.5, os.splice, s.fileno(), w, want - got)\n"
	"        except (BlockingIOError, TimeoutError) as e:\n"
	"            if err == 'none':\n"
	"                err = type(e).__name__\n"
	"            if var == 'block':\n"
	"                break\n"
	"            continue\n"
	"        if not n:\n"
	"            break\n"
	"        got += n\n"
	"    piped = b''\n"
	"    while len(piped) < got:\n"
	"        piped += os.read(r, got - len(piped))\n"
	"    stream = piped\n"
	"    while len(stream) < want:\n"
	"        b = guarded(2, s.recv, want - len(stream))\n"
	"        if not b:\n"
	"            break\n"
	"        stream += b\n"
	"    data = pat(want)\n"
	"    print('spliced=%d err=%s pipe_data=%s rest=%d stream=%s' % (got, err,\n"
	"          'ok' if piped == data[:got] else 'bad', len(stream) - got,\n"
	"          'ok' if stream == data else 'bad'))\n"
	"def waitall():\n"
	"    s = conn()\n"
	"    b = guarded(2, s.recv, 4000, socket.MSG_WAITALL)\n"
	"    n1 = len(b)\n"
	"    while len(b) < 4000:\n"
	"        more = guarded(2, s.recv, 4000 - len(b))\n"
	"        if not more:\n"
	"            break\n"
	"        b += more\n"
	"    s.sendall(b'n')\n"
	"    b2 = guarded(2, s.recv, 4000, socket.MSG_WAITALL)\n"
	"    print('waitall=%d rest=%d stream=%s waitall_shut=%d' % (n1, len(b) - n1,\n"
	"          'ok' if b == pat(4000) else 'bad', len(b2)))\n"
	"try:\n"
	"    {'echo': echo, 'splice': splice, 'waitall': waitall}[case]()\n"
	"except Exception as e:\n"
	"    print('error=%s' % type(e).__name__)\n";

/* The C end of a python case: accepts on the listener until told to stop,
 * serving one connection at a time.
 */
struct py_srv {
	int lfd;
	bool nb;
	void (*serve)(int fd);
	volatile bool stop;
};

static void *py_srv_main(void *arg)
{
	struct py_srv *sv = arg;
	struct sockaddr_storage from;
	int fd;

	while (!sv->stop) {
		fd = accept_ms(sv->lfd, sv->nb ? SOCK_NONBLOCK : 0, &from, 50);
		if (fd < 0)
			continue;
		set_timeouts(fd);
		sv->serve(fd);
		close(fd);
	}
	return NULL;
}

/* 64 KiB, then read to EOF. */
static void serve_splice(int fd)
{
	static char out[64 * KiB];

	pat_fill(out, sizeof(out));
	send_all(fd, out, sizeof(out));
	drain(fd);
}

/* 4 x 1000 bytes, gap ms apart; after the client's "n", 3 x 500 and
 * FIN.
 */
static void serve_waitall_gap(int fd, int gap)
{
	static char out[4000];
	struct slow_writer w = { fd, 4, gap, 1000, out, false };
	char c;

	pat_fill(out, sizeof(out));
	slow_write(&w);
	if (io_recv(fd, &c, 1, 0) != 1)
		return;
	w = (struct slow_writer){ fd, 3, gap, 500, out, true };
	slow_write(&w);
	drain(fd);
}

static void serve_waitall(int fd)
{
	serve_waitall_gap(fd, WAITALL_GAP_MS(false));
}

static void serve_waitall_nb(int fd)
{
	serve_waitall_gap(fd, WAITALL_GAP_MS(true));
}

/* The interpreter itself (sys.executable): a "python3" found on PATH may
 * be a wrapper script (pyenv's shim) that costs 300 ms a start.
 */
static char py_exe[PATH_MAX];

static int py_resolve(void)
{
	char *argv[] = { "python3", "-I", "-S", "-c",
			 "import sys; print(sys.executable)", NULL };
	int rc;

	rc = th_run(NULL, NULL, argv, py_exe, sizeof(py_exe), 10000);
	py_exe[strcspn(py_exe, "\n")] = '\0';
	if (rc || py_exe[0] != '/')
		return rc < 0 ? rc : -ENOENT;
	return 0;
}

/* python3 as the app (this process is in the app's cgroup, the child
 * stays there), its output line as the result.
 */
static void py_case(struct cctx *x, struct res *r, const char *what,
		    void (*serve)(int fd))
{
	const struct combo *cb = x->cb;
	char port[16], out[2048];
	char *argv[] = { py_exe,
			 "-I",
			 "-S",
			 "-c",
			 (char *)py_client,
			 (char *)what,
			 (char *)families[cb->fam].addr,
			 port,
			 cb->nb ? "timeout" : "block",
			 NULL };
	struct py_srv sv = { cb->l->fd, cb->nb, serve, false };

	pthread_t t;
	int rc;

	if (!py_exe[0]) {
		add(r, "python3=missing");
		return;
	}
	snprintf(port, sizeof(port), "%d", cb->dst->port);
	if (pthread_create(&t, NULL, py_srv_main, &sv)) {
		add(r, "thread=failed");
		return;
	}
	rc = th_run(NULL, NULL, argv, out, sizeof(out), 20000);
	sv.stop = true;
	pthread_join(t, NULL);
	if (rc)
		th_info("python3 %s exited %d: %s", what, rc, out);
	out[strcspn(out, "\n")] = '\0';
	add(r, "%s exit=%d", out, rc);
}

/* A blocking (or timeout) socket whose writer thread sends 1 MiB while the
 * main thread reads the echo; four connections.
 */
static void case_py_echo(struct cctx *x, struct res *r)
{
	py_case(x, r, "echo", echo);
}

static void case_py_splice(struct cctx *x, struct res *r)
{
	py_case(x, r, "splice", serve_splice);
}

static void case_py_waitall(struct cctx *x, struct res *r)
{
	py_case(x, r, "waitall", x->cb->nb ? serve_waitall_nb : serve_waitall);
}

static const struct ccase cases[] = {
	{ .name = "fionread", .fn = case_fionread },
	{ .name = "msg_peek", .fn = case_msg_peek },
	{ .name = "msg_waitall", .fn = case_msg_waitall },
	{ .name = "so_rcvlowat", .fn = case_so_rcvlowat },
	{ .name = "poll", .fn = case_poll },
	{ .name = "epoll_lt", .fn = case_epoll_lt },
	{ .name = "epoll_et", .fn = case_epoll_et },
	{ .name = "half_close", .fn = case_half_close },
	{ .name = "rst_unread", .fn = case_rst_unread },
	{ .name = "splice_to_pipe", .fn = case_splice_to_pipe },
	{ .name = "splice_from_pipe", .fn = case_splice_from_pipe },
	{ .name = "sendfile", .fn = case_sendfile },
	{ .name = "backpressure_block", .fn = case_backpressure_block },
	{ .name = "backpressure_nonblock", .fn = case_backpressure_nonblock },
	{ .name = "blocking_duplex", .fn = case_blocking_duplex,
	  .flags = C_BOTH | C_APP_WRITES },
	{ .name = "duplex_threads", .fn = case_duplex_threads,
	  .flags = C_BOTH | C_APP_WRITES },
	{ .name = "became_blocking", .fn = case_became_blocking,
	  .flags = C_BOTH, .evicts = SL_ACC_BECAME_BLOCKING },
	{ .name = "tcp_notsent_lowat", .fn = case_tcp_notsent_lowat,
	  .flags = C_BOTH, .prep = prep_notsent_lowat,
	  .keep_out = SL_ACC_OPT_NOTSENT_LOWAT },
	{ .name = "py_echo", .fn = case_py_echo,
	  .flags = C_BOTH | C_OWN | C_APP_WRITES },
	{ .name = "py_splice", .fn = case_py_splice, .flags = C_BOTH | C_OWN },
	{ .name = "py_waitall", .fn = case_py_waitall, .flags = C_BOTH | C_OWN },
};

#define N_CASES (sizeof(cases) / sizeof(cases[0]))

static bool runs_in(const struct ccase *cc, enum mode m, enum place p)
{
	bool both = cc->flags & C_BOTH;

	if (proxy_place(p))
		return (m == M_PLAIN || via_proxy(m)) &&
		       (both ? p == P_PROXY_BOTH : p != P_PROXY_BOTH);
	if (via_proxy(m))
		return false;
	if (p == P_APP_APP)
		return true;
	return both ? p == P_APP_SIDECAR : p != P_APP_SIDECAR;
}

/* Known differences: accelerated behaviour that is not plain TCP's, observed
 * on Linux 6.18 (sk_msg redirect to the peer's ingress, tcp_bpf receive
 * path), with the exact accelerated result and why, for the opt-in modes
 * only: the safe mode (the default) may have none, and known() is not asked
 * for it. place and var < 0 match any; the family is never part of it. An
 * entry still prints its "# DIFF" line and is marked in the report; it only
 * stops failing the run, and only while the accelerated result is exactly
 * this one. Whether the product accepts each one is the lead's decision:
 * delete an entry to make it fail again.
 */
static const struct known_diff {
	enum mode mode;
	const char *name;
	int place, var;
	const char *accel; /* exact accelerated result */
	const char *reason;
} known_differences[] = {
	/* send: the app's socket is admitted send-only */
	{ M_SEND, "fionread", P_APP_READS, 1,
	  "fionread=0 recv=100 siocinq=0 writer_siocoutq=0",
	  "the app's socket is in the sockhash: this kernel's tcp_bpf_ioctl() "
	  "counts only bytes queued in the psock, none of what TCP brought "
	  "(why safe admits nothing on such a kernel)" },
	/* send, app-writes: what differs is the sidecar's own socket, a
	 * redirect target read by sidelane's proxy only
	 */
	{ M_SEND, "so_rcvlowat", P_APP_WRITES, 1,
	  "setsockopt=0 poll_500=IN poll_1100=IN recv=1100",
	  "the sidecar's socket: poll() ignores SO_RCVLOWAT for redirected "
	  "bytes; the proxy sets no SO_RCVLOWAT, the app cannot see it" },
	{ M_SEND, "splice_to_pipe", P_APP_WRITES, 1,
	  "sent=65536 spliced=0 splice_err=EAGAIN pipe_data=ok recv_rest=65536 "
	  "stream=ok",
	  "the sidecar's socket: splice() does not see redirected bytes; the "
	  "proxy reads with recv(), the app cannot see it" },
	{ M_SEND, "rst_unread", P_APP_WRITES, 1,
	  "peer_revents=IN|RDHUP recv=0 recv2=0 send=10",
	  "the sidecar's socket closed with unread redirected bytes sends a "
	  "FIN; the proxy looks for unread bytes before it closes and resets "
	  "(SO_LINGER 0) when there are any, as TCP would (proxy.c, "
	  "close_fd())" },
	/* all (opt-in): bytes redirected into app sockets; every one of these
	 * is printed by `sidelane run` when the mode is chosen
	 */
	{ M_ALL, "msg_waitall", -1, 0,
	  "waitall=1000 rest=3000 stream=ok waitall_shut=500",
	  "MSG_WAITALL returns what was redirected so far (tcp_bpf_recvmsg)" },
	{ M_ALL, "py_waitall", -1, 0,
	  "waitall=1000 rest=3000 stream=ok waitall_shut=500 exit=0",
	  "MSG_WAITALL returns what was redirected so far (tcp_bpf_recvmsg)" },
	{ M_ALL, "so_rcvlowat", -1, -1,
	  "setsockopt=0 poll_500=IN poll_1100=IN recv=1100",
	  "poll() ignores SO_RCVLOWAT for redirected bytes (sk_msg_is_readable)" },
	{ M_ALL, "rst_unread", -1, -1,
	  "peer_revents=IN|RDHUP recv=0 recv2=0 send=10",
	  "close() with unread redirected bytes sends a FIN, not an RST: they "
	  "are in the psock, not the receive queue tcp_close() looks at" },
	{ M_ALL, "splice_to_pipe", -1, -1,
	  "sent=65536 spliced=0 splice_err=EAGAIN pipe_data=ok recv_rest=65536 "
	  "stream=ok",
	  "splice() from the socket reads the receive queue only: redirected "
	  "bytes are not there" },
	{ M_ALL, "py_splice", -1, 0,
	  "spliced=0 err=TimeoutError pipe_data=ok rest=65536 stream=ok exit=0",
	  "splice() from the socket reads the receive queue only (a blocking "
	  "one waits until its timeout)" },
	{ M_ALL, "py_splice", -1, 1,
	  "spliced=0 err=BlockingIOError pipe_data=ok rest=65536 stream=ok "
	  "exit=0",
	  "splice() from the socket reads the receive queue only" },
	{ M_ALL, "blocking_duplex", -1, 0,
	  "rounds=10 complete=10 early_eagain=yes",
	  "a blocking recv() woken without data (the writer thread's own "
	  "wakeups) fails EAGAIN at once (tcp_bpf_recvmsg)" },
	{ M_ALL, "became_blocking", -1, -1,
	  "fcntl=0 blocking=yes rounds=300 complete=300 early_eagain=yes eof=0",
	  "a blocking recv() woken without data fails EAGAIN at once; all "
	  "mode does not take a socket made blocking out" },
	{ M_ALL, "duplex_threads", -1, 0,
	  "app_to_peer=8388608 peer_to_app=8388608 data=ok eof=yes "
	  "early_eagain=yes read_error=none write_error=none",
	  "a blocking recv() woken without data (the writer thread's own "
	  "wakeups) fails EAGAIN at once (tcp_bpf_recvmsg)" },
	{ M_ALL, "py_echo", -1, 0,
	  "rounds=4 complete=no error=BlockingIOError exit=0",
	  "CPython raises BlockingIOError for the EAGAIN of a blocking recv() "
	  "woken without data" },
	{ .name = NULL },
};

static const struct known_diff *known(enum mode m, const struct combo *cb,
				      const char *accel)
{
	const struct known_diff *k;

	for (k = known_differences; k->name; k++)
		if (k->mode == m && !strcmp(k->name, cb->cc->name) &&
		    (k->place < 0 || k->place == (int)cb->place) &&
		    (k->var < 0 || k->var == cb->nb) && !strcmp(k->accel, accel))
			return k;
	return NULL;
}

/* ---- the runs ---- */

/* Counter movement over one case (accelerated modes). */
struct delta {
	__u64 sockets[SL_ACC_NR], evicted[SL_ACC_NR];
	__u64 redirect_ok, pass_plain, inserted;
	/* the splice, each way: moved by the kernel, relayed while spliced */
	__u64 spl_moved[SL_SPD_NR], spl_relayed[SL_SPD_NR];
	bool spliced; /* open_conn() saw the pair spliced */
};

struct snap {
	struct sl_counters c;
	struct sl_adm_stats a;
	struct sl_splice_stats sp;
};

struct outcome {
	struct res res;
	bool ran;
	struct delta d;
	char proof[160]; /* why the counters prove nothing, "" if they do */
};

static struct outcome results[M_NR][N_CASES][P_NR][N_FAM][2];
static bool mode_ran[M_NR];
static __u32 kernel_flags; /* SL_KERNEL_* of the accelerated runs */

static int snap(const struct th_env *env, struct snap *s)
{
	int fd, err;

	memset(s, 0, sizeof(*s));
	err = th_counters(env, &s->c) ?: th_adm_stats(env, &s->a);
	if (err)
		return err;
	fd = sl_pin_open(env->pin_root, SL_MAP_SPLICE_STATS);
	if (fd < 0)
		return fd;
	err = sl_percpu_sum_u64(fd, 0, &s->sp, sizeof(s->sp));
	close(fd);
	return err;
}

static void diff_snaps(const struct snap *a, const struct snap *b,
		       struct delta *d)
{
	int i;

	for (i = 0; i < SL_ACC_NR; i++) {
		d->sockets[i] = b->a.sockets[i] - a->a.sockets[i];
		d->evicted[i] = b->a.evicted[i] - a->a.evicted[i];
	}
	d->redirect_ok = b->c.redirect_ok - a->c.redirect_ok;
	d->pass_plain = b->c.pass_plain - a->c.pass_plain;
	d->inserted = b->c.sock_inserted - a->c.sock_inserted;
	for (i = 0; i < SL_SPD_NR; i++) {
		int w;

		d->spl_moved[i] = b->sp.dir[i].pushed_bytes -
				  a->sp.dir[i].pushed_bytes;
		d->spl_relayed[i] = 0;
		for (w = 0; w < SL_SPW_NR; w++)
			d->spl_relayed[i] += b->sp.dir[i].relay[w] -
					     a->sp.dir[i].relay[w];
	}
}

/* "accelerated+2 blocking-socket+1 evicted:became-blocking+1 redirect_ok+9" */
static void fmt_delta(const struct delta *d, char *buf, size_t len)
{
	size_t n = 0;
	int i;

	buf[0] = '\0';
	for (i = 0; i < SL_ACC_NR && n < len; i++)
		if (d->sockets[i])
			n += snprintf(buf + n, len - n, "%s+%llu ",
				      sl_acc_reason_name[i],
				      (unsigned long long)d->sockets[i]);
	for (i = 0; i < SL_ACC_NR && n < len; i++)
		if (d->evicted[i])
			n += snprintf(buf + n, len - n, "evicted:%s+%llu ",
				      sl_acc_reason_name[i],
				      (unsigned long long)d->evicted[i]);
	if (n < len)
		n += snprintf(buf + n, len - n, "redirect_ok+%llu pass_plain+%llu",
			      (unsigned long long)d->redirect_ok,
			      (unsigned long long)d->pass_plain);
	if (n < len && (d->spliced || d->spl_moved[0] || d->spl_moved[1]))
		snprintf(buf + n, len - n,
			 " spliced%s up+%lluB/%llu down+%lluB/%llu",
			 d->spliced ? "" : "?",
			 (unsigned long long)d->spl_moved[SL_SPD_UP],
			 (unsigned long long)d->spl_relayed[SL_SPD_UP],
			 (unsigned long long)d->spl_moved[SL_SPD_DOWN],
			 (unsigned long long)d->spl_relayed[SL_SPD_DOWN]);
}

#define NEED(cond, ...)                                                        \
	do {                                                                   \
		if (!(cond)) {                                                 \
			snprintf(why, len, __VA_ARGS__);                       \
			return false;                                          \
		}                                                              \
	} while (0)

/* Did the counters move as the mode promises for this combination? A run
 * that was meant to be redirected and was not, or meant to be kept out
 * for a reason that was never counted, proves nothing.
 */
static bool proof(const struct combo *cb, const struct delta *d, char *why,
		  size_t len)
{
	const struct ccase *cc = cb->cc;
	bool admits, app_writes;
	__u64 acc = d->sockets[SL_ACC_ACCELERATED];

	/* relay: the reference of spliced; the app reached the upstream
	 * through the ambassador or its case failed to connect
	 */
	if (cb->mode == M_RELAY)
		return true;
	if (cb->mode == M_SPLICED) {
		bool moved = d->spl_moved[0] || d->spl_moved[1] ||
			     d->spl_relayed[0] || d->spl_relayed[1];

		if (!cb->nb || cc->keep_out) {
			NEED(!d->spliced && !d->spl_moved[0] && !d->spl_moved[1],
			     "not admitted, yet spliced");
			return true;
		}
		NEED(d->spliced || moved, "non-blocking: never spliced");
		return true;
	}
	if (cb->mode == M_ALL) {
		NEED(d->redirect_ok, "all: redirect_ok did not grow");
		return true;
	}
	/* safe admits like send where the kernel keeps FIONREAD */
	admits = cb->mode == M_SEND ||
		 (kernel_flags & SL_KERNEL_TCP_FIONREAD);
	/* nothing is ever redirected into an app socket */
	if (cb->place == P_APP_APP) {
		NEED(d->sockets[SL_ACC_ACCEPTED],
		     "app<->app: the accepted end was not counted accepted-socket");
		NEED(!d->redirect_ok, "app<->app: %llu messages redirected",
		     (unsigned long long)d->redirect_ok);
		if (!cb->nb)
			NEED(d->sockets[SL_ACC_BLOCKING],
			     "blocking: blocking-socket not counted");
		else if (cc->keep_out)
			NEED(d->sockets[cc->keep_out], "%s not counted",
			     sl_acc_reason_name[cc->keep_out]);
		else if (!admits)
			NEED(d->sockets[SL_ACC_KERNEL_FIONREAD],
			     "non-blocking: kernel-fionread not counted");
		/* a connecting socket is admitted before its peer is
		 * established; a peer that stays out takes it out again
		 */
		NEED(d->evicted[SL_ACC_PEER_PLAIN] +
				     d->evicted[SL_ACC_BECAME_BLOCKING] >= acc,
		     "%llu app<->app clients admitted, fewer evicted",
		     (unsigned long long)acc);
		return true;
	}
	if (!cb->nb) {
		NEED(d->sockets[SL_ACC_BLOCKING],
		     "blocking: blocking-socket not counted");
		NEED(!acc && !d->redirect_ok,
		     "blocking: %llu admitted, %llu redirected",
		     (unsigned long long)acc,
		     (unsigned long long)d->redirect_ok);
		return true;
	}
	if (cc->keep_out) {
		NEED(d->sockets[cc->keep_out], "%s not counted",
		     sl_acc_reason_name[cc->keep_out]);
		NEED(!acc && !d->redirect_ok, "%s: %llu admitted, %llu redirected",
		     sl_acc_reason_name[cc->keep_out], (unsigned long long)acc,
		     (unsigned long long)d->redirect_ok);
		return true;
	}
	if (!admits) {
		NEED(d->sockets[SL_ACC_KERNEL_FIONREAD],
		     "non-blocking: kernel-fionread not counted");
		NEED(!acc && !d->redirect_ok,
		     "safe on this kernel: %llu admitted, %llu redirected",
		     (unsigned long long)acc,
		     (unsigned long long)d->redirect_ok);
		return true;
	}
	/* the app's socket and the sidecar's end of it */
	NEED(acc >= 2, "non-blocking: %llu sockets admitted, want 2",
	     (unsigned long long)acc);
	if (cc->evicts) {
		NEED(d->evicted[cc->evicts], "evicted:%s not counted",
		     sl_acc_reason_name[cc->evicts]);
		return true;
	}
	app_writes = cb->place == P_APP_WRITES ||
		     (cb->place == P_APP_SIDECAR && (cc->flags & C_APP_WRITES));
	if (app_writes)
		NEED(d->redirect_ok, "the app wrote, redirect_ok did not grow");
	return true;
}

static void case_name(char *buf, size_t len, const struct combo *cb)
{
	snprintf(buf, len, "conformance/%s/%s/%s/%s/%s", mode_name[cb->mode],
		 cb->cc->name, place_name[cb->place], families[cb->fam].name,
		 var_name[cb->nb]);
}

static void run_one(struct th_env *env, struct combo *cb, struct outcome *o)
{
	struct cctx x = { .cb = cb, .r = -1, .w = -1, .app = -1, .peer = -1 };
	bool accel = cb->mode != M_PLAIN;
	char name[128], d[256] = "";
	struct snap s0, s1;
	__u64 t0;
	int err;

	case_name(name, sizeof(name), cb);
	th_watchdog(CASE_TIMEOUT_S, name);
	last_spliced = false;
	if (accel && snap(env, &s0)) {
		th_fail(name, "reading the counters failed");
		return;
	}
	if (!(cb->cc->flags & C_OWN)) {
		err = open_conn(cb, &x.app, &x.peer);
		if (!TH_CHECK(!err, name, "connection: %s", strerror(-err)))
			return;
		conn[0] = x.app;
		conn[1] = x.peer;
		/* app-app and app-writes: the app writes */
		bool reads = cb->place == P_APP_READS ||
			     cb->place == P_PROXY_READS;

		x.w = reads ? x.peer : x.app;
		x.r = reads ? x.app : x.peer;
	}
	t0 = th_now_ms();
	cb->cc->fn(&x, &o->res);
	t0 = th_now_ms() - t0;
	if (conn[0] >= 0)
		close(conn[0]);
	if (conn[1] >= 0)
		close(conn[1]);
	conn[0] = conn[1] = -1;
	o->ran = true;
	if (accel) {
		if (snap(env, &s1)) {
			snprintf(o->proof, sizeof(o->proof),
				 "reading the counters failed");
		} else {
			diff_snaps(&s0, &s1, &o->d);
			o->d.spliced = last_spliced;
			proof(cb, &o->d, o->proof, sizeof(o->proof));
		}
		fmt_delta(&o->d, d, sizeof(d));
	}
	printf("# %s: %s%s%s%s (%llu ms)\n", name, o->res.s, accel ? " [" : "",
	       d, accel ? "]" : "", (unsigned long long)t0);
}

static void close_listeners(void)
{
	int t, f;

	for (t = 0; t < 2; t++)
		for (f = 0; f < N_FAM; f++) {
			if (lsn[t][f].fd >= 0)
				close(lsn[t][f].fd);
			lsn[t][f].fd = -1;
		}
}

/* The four listeners; the sidecar's made from inside its cgroup. */
static int open_listeners(struct th_env *env)
{
	int t, f, err;

	for (t = 0; t < 2; t++) {
		err = t ? th_enter_sidecar(env) : 0;
		for (f = 0; !err && f < N_FAM; f++) {
			struct lsn *l = &lsn[t][f];

			l->fd = th_listen(families[f].addr, 64, &l->port);
			if (l->fd < 0) {
				err = l->fd;
				break;
			}
			l->len = sizeof(l->ss);
			if (getsockname(l->fd, (void *)&l->ss, &l->len))
				err = -errno;
		}
		if (t)
			err = th_enter(env) ?: err;
		if (err)
			return err;
	}
	return 0;
}

/* The app_sockets mode's index in sl_adm_cfg (enum sl_app_mode). */
static __u32 adm_mode_of(enum mode m)
{
	return via_proxy(m) ? M_SEND - 1 : (__u32)m - 1;
}

/* Modes relay and spliced: cgroups, then `sidelane run` with an ambassador
 * per family whose upstream is up_lsn, then this process into the app's
 * cgroup. 0 or -errno.
 */
static int start_proxy_mode(struct th_env *env, enum mode m)
{
	char cfg[PATH_MAX], text[1024];
	int f, err;

	err = th_env_setup_opts(env, "conformance",
				&(struct th_env_opts){ .sidecar = true });
	for (f = 0; !err && f < N_FAM; f++) {
		struct lsn *a = &amb_lsn[f];
		struct sockaddr_in *a4 = (void *)&a->ss;
		struct sockaddr_in6 *a6 = (void *)&a->ss;

		memset(a, 0, sizeof(*a));
		a->fd = -1;
		a->port = th_free_port();
		if (a->port < 0) {
			err = a->port;
			break;
		}
		a->ss.ss_family = up_lsn[f].ss.ss_family;
		if (a->ss.ss_family == AF_INET) {
			inet_pton(AF_INET, families[f].addr, &a4->sin_addr);
			a4->sin_port = htons(a->port);
			a->len = sizeof(*a4);
		} else {
			inet_pton(AF_INET6, families[f].addr, &a6->sin6_addr);
			a6->sin6_port = htons(a->port);
			a->len = sizeof(*a6);
		}
	}
	if (err)
		return err;
	th_env_log_path(env);
	snprintf(cfg, sizeof(cfg), "/tmp/sidelane-test-conformance-%d.yaml",
		 (int)getpid());
	snprintf(text, sizeof(text),
		 "capture:\n  enabled: false\n"
		 "proxy:\n  splice: %s\n  ambassadors:\n"
		 "    - listen: \"127.0.0.1:%d\"\n      upstream: \"127.0.0.1:%d\"\n"
		 "    - listen: \"[::1]:%d\"\n      upstream: \"[::1]:%d\"\n"
		 "admin:\n  listen: \"\"\n  drain_timeout_ms: 0\n"
		 "fastpath:\n  app_sockets: send\n",
		 m == M_SPLICED ? "true" : "false", amb_lsn[0].port,
		 up_lsn[0].port, amb_lsn[1].port, up_lsn[1].port);
	err = th_env_run_config(env, cfg, text);
	unlink(cfg); /* read at start only */
	return err ?: th_enter(env);
}

static bool run_mode(enum mode m)
{
	struct th_env_opts opts = { .accelerated = m != M_PLAIN,
				    .app_sockets = m == M_PLAIN || via_proxy(m) ?
							   NULL :
							   mode_name[m],
				    .sidecar = true };
	__u64 t0 = th_now_ms();
	struct sl_adm_status st;
	struct th_env env;
	char name[96];
	bool ok = false;
	size_t i;
	int p, f, v, err;

	snprintf(name, sizeof(name), "conformance/%s: setup", mode_name[m]);
	th_watchdog(30, name);
	memset(lsn, 0xff, sizeof(lsn)); /* fd -1 */
	cur_env = &env;
	if (via_proxy(m)) {
		memset(&env, 0, sizeof(env));
		err = start_proxy_mode(&env, m);
		if (!TH_CHECK(!err, name, "%s (log %s)", strerror(-err),
			      env.log))
			goto out;
		th_pass(name);
	} else if (!th_env_start_opts(&env, "conformance", mode_name[m],
				      &opts)) {
		goto out;
	}
	err = open_listeners(&env);
	if (!TH_CHECK(!err, name, "listeners: %s", strerror(-err)))
		goto out;
	if (m != M_PLAIN) {
		err = sl_adm_read(env.pin_root, &st);
		if (!TH_CHECK(!err && st.present &&
				      st.cfg.mode == adm_mode_of(m),
			      name, "admission config: %s, mode %u",
			      strerror(-err), st.cfg.mode))
			goto out;
		kernel_flags = st.cfg.kernel;
		th_info("%s: kernel flags 0x%x (%s FIONREAD for TCP bytes on "
			"a sockmap socket)", mode_name[m], kernel_flags,
			kernel_flags & SL_KERNEL_TCP_FIONREAD ? "keeps" :
								"loses");
	}
	for (i = 0; i < N_CASES; i++)
		for (p = 0; p < P_NR; p++)
			for (f = 0; f < N_FAM; f++)
				for (v = 0; v < 2; v++) {
					struct combo cb = {
						.mode = m,
						.place = p,
						.fam = f,
						.nb = v,
						.cc = &cases[i],
						.l = proxy_place(p) ?
							     &up_lsn[f] :
							     &lsn[p != P_APP_APP][f],
					};

					cb.dst = proxy_place(p) && m != M_PLAIN ?
							 &amb_lsn[f] :
							 cb.l;
					if (runs_in(&cases[i], m, p))
						run_one(&env, &cb,
							&results[m][i][p][f][v]);
				}
	ok = true;
out:
	close_listeners();
	th_watchdog(30, "conformance teardown");
	snprintf(name, sizeof(name), "conformance/%s: teardown", mode_name[m]);
	err = th_env_teardown(&env);
	TH_RESULT(!err, name, "%s", strerror(-err));
	th_watchdog(0, NULL);
	th_info("mode %s: %llu ms", mode_name[m],
		(unsigned long long)(th_now_ms() - t0));
	return ok;
}

/* ---- the comparison ---- */

static void md_escape(FILE *f, const char *s)
{
	for (; *s; s++)
		fputs(*s == '|' ? "\\|" : (char[]){ *s, 0 }, f);
}

static bool used[sizeof(known_differences) / sizeof(known_differences[0])];

/* a (mode cb->mode) against p (mode ref: plain, or relay for spliced).
 * info: relay against plain, what the proxy itself changes: reported, not
 * judged here.
 */
static void compare_one(FILE *md, const struct combo *cb, enum mode ref,
			const struct outcome *p, const struct outcome *a,
			bool info)
{
	const struct known_diff *k = NULL;
	const char *verdict;
	char name[128], d[256] = "";
	bool same;

	case_name(name, sizeof(name), cb);
	if (info) {
		same = p->ran && a->ran && !strcmp(p->res.s, a->res.s);
		if (p->ran && a->ran && !same)
			printf("# PROXY-DIFF case=%s place=%s family=%s variant=%s "
			       "direct=\"%s\" relay=\"%s\"\n", cb->cc->name,
			       place_name[cb->place], families[cb->fam].name,
			       var_name[cb->nb], p->res.s, a->res.s);
		verdict = !p->ran || !a->ran ? "not run" :
			  same		    ? "same" :
					      "DIFFERENT (the proxy)";
		goto row;
	}
	if (!p->ran || !mode_ran[cb->mode] || !a->ran) {
		if (!p->ran)
			th_fail(name, "%s run did not complete", mode_name[ref]);
		else if (mode_ran[cb->mode])
			th_fail(name, "accelerated run did not complete");
		else
			th_skip(name, "no accelerated run");
		verdict = "not run";
		goto row;
	}
	fmt_delta(&a->d, d, sizeof(d));
	same = !strcmp(p->res.s, a->res.s);
	if (!same) {
		/* safe, the default, must be plain TCP: nothing is known */
		k = cb->mode == M_SAFE ? NULL : known(cb->mode, cb, a->res.s);
		if (k)
			used[k - known_differences] = true;
		printf("# DIFF mode=%s case=%s place=%s family=%s variant=%s "
		       "%s=\"%s\" accel=\"%s\"%s\n", mode_name[cb->mode],
		       cb->cc->name, place_name[cb->place],
		       families[cb->fam].name, var_name[cb->nb],
		       mode_name[ref], p->res.s, a->res.s,
		       k ? " (known difference)" : "");
	}
	if (a->proof[0]) {
		th_fail(name, "counters prove nothing: %s [%s]", a->proof, d);
		verdict = "NOT EXERCISED";
	} else if (same) {
		th_pass(name);
		verdict = "same";
	} else if (k) {
		printf("# known difference (%s): %s\n", name, k->reason);
		th_pass(name);
		verdict = "DIFFERENT (known)";
	} else {
		th_fail(name, "%s \"%s\" != accelerated \"%s\"",
			mode_name[ref], p->res.s, a->res.s);
		verdict = "DIFFERENT";
	}
row:
	if (!md)
		return;
	fprintf(md, "| %s | %s | %s | %s | %s vs %s | `", cb->cc->name,
		place_name[cb->place], families[cb->fam].name,
		var_name[cb->nb], mode_name[cb->mode], mode_name[ref]);
	md_escape(md, p->res.s);
	fprintf(md, "` | `");
	md_escape(md, a->res.s);
	fprintf(md, "` | %s | %s%s%s%s%s |\n", d, verdict,
		a->proof[0] ? ": " : "", a->proof, k ? ": " : "",
		k ? k->reason : "");
}

static void compare(void)
{
	const struct known_diff *k;
	size_t i;
	int m, p, f, v;
	FILE *md;

	mkdir("build/tests", 0755);
	md = fopen(REPORT, "w");
	if (md)
		fprintf(md, "# Socket-semantics conformance: plain TCP vs sidelane fast path\n\n"
			    "Generated by `build/tests/integ_conformance` (tests/integ/conformance.c).\n"
			    "One row per case, placement of the app's socket, family, variant and\n"
			    "app-sockets mode. `counters` is how the admission counters moved over the\n"
			    "accelerated run (sockets by reason at established, evictions, redirected\n"
			    "messages): a run they do not show exercised fails as NOT EXERCISED.\n\n"
			    "Modes relay and spliced put sidelane's proxy between the app and an\n"
			    "upstream (placements proxy-*): spliced must equal relay; relay against a\n"
			    "direct connection shows what the proxy itself changes (not judged here).\n\n"
			    "| case | placement | family | variant | mode vs reference | reference | accelerated | counters | result |\n"
			    "|---|---|---|---|---|---|---|---|---|\n");
	for (m = M_SAFE; m < M_NR; m++) {
		/* spliced against relay; relay against a direct connection
		 * only for the report
		 */
		enum mode ref = m == M_SPLICED ? M_RELAY : M_PLAIN;

		for (i = 0; i < N_CASES; i++)
			for (p = 0; p < P_NR; p++)
				for (f = 0; f < N_FAM; f++)
					for (v = 0; v < 2; v++) {
						struct combo cb = { m, p, f, v,
								    &cases[i],
								    NULL, NULL };

						if (runs_in(&cases[i], m, p))
							compare_one(md, &cb, ref,
								    &results[ref][i][p][f][v],
								    &results[m][i][p][f][v],
								    m == M_RELAY);
					}
	}
	for (k = known_differences; k->name; k++)
		if (!used[k - known_differences])
			th_info("known difference not seen: %s %s \"%s\"",
				mode_name[k->mode], k->name, k->accel);
	if (md) {
		fprintf(md, "\nKnown differences are listed in `known_differences[]` of\n"
			    "tests/integ/conformance.c with their reasons; the safe mode has none.\n");
		fclose(md);
		th_info("report written to " REPORT);
	}
}

int main(void)
{
	__u64 t0 = th_now_ms();
	int m, f, err;

	setvbuf(stdout, NULL, _IOLBF, 0);
	err = py_resolve();
	if (err) {
		th_fail("conformance: python3", "no python3 interpreter: %s",
			strerror(-err));
		py_exe[0] = '\0';
	}
	th_fill(bp_out, sizeof(bp_out), 9);
	th_fill(dx_out[0], DX_LEN, 11);
	th_fill(dx_out[1], DX_LEN, 12);
	/* the upstream of the proxy-* placements, in this process's cgroup
	 * (outside sidelane's), for every mode
	 */
	for (f = 0; f < N_FAM; f++) {
		struct lsn *l = &up_lsn[f];

		l->fd = th_listen(families[f].addr, 64, &l->port);
		l->len = sizeof(l->ss);
		if (!TH_CHECK(l->fd >= 0 &&
				      !getsockname(l->fd, (void *)&l->ss, &l->len),
			      "conformance: upstream listeners", "%s",
			      strerror(l->fd < 0 ? -l->fd : errno)))
			return th_summary();
	}
	for (m = 0; m < M_NR; m++)
		mode_ran[m] = run_mode(m);
	for (f = 0; f < N_FAM; f++)
		close(up_lsn[f].fd);
	compare();
	th_info("total %llu ms", (unsigned long long)(th_now_ms() - t0));
	return th_summary();
}
