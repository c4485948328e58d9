// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Integration test (tests/integ): the user-space proxy (user/proxy/proxy.c) on
 * loopback, no BPF. Each proxy runs sl_proxy_run in a thread with a config
 * filled in here, ambassador listeners on free ports, upstream = a listener
 * of this test. Cases: byte-exact relay (SHA-256) 0 B .. 4 MiB both ways with
 * a 64 KiB and a 1000 B buffer, 256 concurrent connections, a name resolved
 * per connection, half-close both ways, RST both ways (also after data the
 * proxy still holds: delivered, then the RST), back-pressure (the
 * writer blocks, the proxy holds at most its buffer), connect refused,
 * connect timeout (full backlog), idle timeout, max_conns, a transparent
 * accept without an original destination, and stop with open connections.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <linux/sockios.h> /* SIOCOUTQ */
#include <unistd.h>
#include "lib/log.h"
#include "proxy/proxy.h"
#include "harness.h"

#define KiB 1024UL
#define MiB (1024 * KiB)
#define IO_MS 10000 /* bound of every wait for data */
#define N_CONC 256 /* concurrent connections */
#define CONC_BYTES (32 * KiB) /* each way, each concurrent connection */
#define BP_LIMIT (96 * MiB) /* the writer must block before this */
#define SMALL_BUF 1000 /* odd on purpose: ring wrap-around */
#define T_CONNECT_MS 300 /* proxy "timeouts" */
#define T_IDLE_MS 400
#define SLOW_RCVBUF 4096 /* SO_RCVBUF of the rst-after-data readers */

/* A proxy running in a thread. */
struct tproxy {
	const char *name;
	struct sl_config *cfg;
	struct sl_proxy *p;
	pthread_t th;
	volatile sig_atomic_t stop;
	int err;
	bool running;
};

static int up_lfd = -1, up_port; /* the upstream every ambassador uses */
/* An upstream listener whose accepted sockets have a small receive buffer:
 * what the proxy relays to them stays in the proxy, not in their kernel.
 */
static int slow_lfd = -1, slow_port;

/* ---- helpers ---- */

static void ep_set(struct sl_endpoint *ep, const char *ip, int port)
{
	struct sockaddr_in *in = (void *)&ep->addr;

	memset(ep, 0, sizeof(*ep));
	in->sin_family = AF_INET;
	in->sin_port = htons(port);
	inet_pton(AF_INET, ip, &in->sin_addr);
	ep->addrlen = sizeof(*in);
}

static int ep_port(const struct sl_endpoint *ep)
{
	return ntohs(((const struct sockaddr_in *)&ep->addr)->sin_port);
}

static struct sl_config *cfg_new(unsigned int bufsz, unsigned int connect_ms,
				 unsigned int idle_ms)
{
	struct sl_config *cfg = calloc(1, sizeof(*cfg));

	if (!cfg)
		return NULL;
	cfg->proxy.buffer_bytes = bufsz;
	cfg->proxy.connect_timeout_ms = connect_ms;
	cfg->proxy.idle_timeout_ms = idle_ms;
	return cfg;
}

/* Ambassador on a free loopback port (picked at start) to host:port. */
static void cfg_amb(struct sl_config *cfg, const char *host, int port)
{
	struct sl_ambassador *a =
		&cfg->proxy.ambassadors[cfg->proxy.n_ambassadors++];

	ep_set(&a->listen, "127.0.0.1", 0);
	snprintf(a->upstream_host, sizeof(a->upstream_host), "%s", host);
	a->upstream_port = port;
}

static void *tp_main(void *arg)
{
	struct tproxy *tp = arg;

	tp->err = sl_proxy_run(tp->p, &tp->stop);
	return NULL;
}

/* Pick free ports for the listeners, create the proxy, run it. Retries when
 * a picked port was taken in between.
 */
static int tp_start(struct tproxy *tp, const char *name, struct sl_config *cfg)
{
	int err = -EADDRINUSE, tries, i;

	memset(tp, 0, sizeof(*tp));
	tp->name = name;
	tp->cfg = cfg;
	for (tries = 0; tries < 5 && err == -EADDRINUSE; tries++) {
		for (i = 0; i < (int)cfg->proxy.n_ambassadors; i++)
			ep_set(&cfg->proxy.ambassadors[i].listen, "127.0.0.1",
			       th_free_port());
		if (cfg->capture.enabled)
			ep_set(&cfg->capture.outbound, "127.0.0.1",
			       th_free_port());
		err = sl_proxy_new(cfg, NULL, NULL, NULL, &tp->p);
	}
	if (err)
		return err;
	err = pthread_create(&tp->th, NULL, tp_main, tp);
	if (err) {
		sl_proxy_free(tp->p);
		tp->p = NULL;
		return -err;
	}
	tp->running = true;
	return 0;
}

/* Stop the loop and wait for it; stats stay readable until tp_free. */
static int tp_stop(struct tproxy *tp)
{
	if (!tp->running)
		return 0;
	tp->stop = 1;
	pthread_join(tp->th, NULL);
	tp->running = false;
	return tp->err;
}

static void tp_free(struct tproxy *tp)
{
	tp_stop(tp);
	sl_proxy_free(tp->p);
	free(tp->cfg);
	tp->p = NULL;
	tp->cfg = NULL;
}

static void tp_stats(const struct tproxy *tp, struct sl_proxy_stats *st)
{
	sl_proxy_stats(tp->p, st);
}

static int amb_port(const struct tproxy *tp, int i)
{
	return ep_port(&tp->cfg->proxy.ambassadors[i].listen);
}

/* Wait until the proxy counted want closes for reason (since base). */
static bool wait_closed(const struct tproxy *tp,
			const struct sl_proxy_stats *base,
			enum sl_close_reason reason, uint64_t want, int ms)
{
	struct sl_proxy_stats st;
	__u64 end = th_now_ms() + ms;

	for (;;) {
		tp_stats(tp, &st);
		if (st.closed[reason] - base->closed[reason] >= want)
			return true;
		if (th_now_ms() > end)
			return false;
		usleep(5000);
	}
}

static int accept_to(int lfd, int ms)
{
	struct pollfd pfd = { .fd = lfd, .events = POLLIN };
	int fd;

	if (poll(&pfd, 1, ms) <= 0)
		return -ETIMEDOUT;
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* Client through ambassador port, and the upstream's accepted end. */
static int open_pair(int port, int *cfd, int *ufd)
{
	int c, u;

	c = th_connect("127.0.0.1", port);
	if (c < 0)
		return c;
	u = accept_to(up_lfd, 3000);
	if (u < 0) {
		close(c);
		return u;
	}
	*cfd = c;
	*ufd = u;
	return 0;
}

static void set_nonblock(int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* Read until EOF into buf (at most cap). Length, or -errno (-ETIMEDOUT). */
static ssize_t read_to_eof(int fd, char *buf, size_t cap, int ms)
{
	__u64 end = th_now_ms() + ms;
	size_t len = 0;

	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int left = (int)(end - th_now_ms());
		ssize_t n;

		if (left <= 0 || poll(&pfd, 1, left) <= 0)
			return -ETIMEDOUT;
		n = recv(fd, buf + len, cap - len, MSG_DONTWAIT);
		if (n < 0 && errno == EAGAIN)
			continue;
		if (n < 0)
			return -errno;
		if (!n)
			return len;
		len += n;
		if (len == cap)
			return -E2BIG;
	}
}

/* Read exactly n bytes. 0 or -errno (-ETIMEDOUT, -EPIPE on an early EOF). */
static int read_n(int fd, char *buf, size_t n, int ms)
{
	__u64 end = th_now_ms() + ms;
	size_t len = 0;

	while (len < n) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int left = (int)(end - th_now_ms());
		ssize_t r;

		if (left <= 0 || poll(&pfd, 1, left) <= 0)
			return -ETIMEDOUT;
		r = recv(fd, buf + len, n - len, MSG_DONTWAIT);
		if (r < 0 && errno == EAGAIN)
			continue;
		if (r < 0)
			return -errno;
		if (!r)
			return -EPIPE;
		len += r;
	}
	return 0;
}

/* Wait for the connection to end: 0 for EOF, -ECONNRESET for an RST,
 * -ETIMEDOUT, or 1 if data came instead.
 */
static int wait_end(int fd, int ms)
{
	char c;
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	ssize_t n;

	if (poll(&pfd, 1, ms) <= 0)
		return -ETIMEDOUT;
	n = recv(fd, &c, 1, MSG_DONTWAIT);
	return n < 0 ? -errno : n ? 1 : 0;
}

static const char *end_str(int r)
{
	return r == 0		? "EOF" :
	       r == -ECONNRESET ? "RST" :
	       r == 1		? "data" :
	       r == -ETIMEDOUT	? "nothing (timeout)" :
				  strerror(-r);
}

/* ---- streams: both ends send, then SHUT_WR, and read until EOF ---- */

struct end {
	int fd;
	const unsigned char *tx;
	size_t tx_len, tx_off;
	unsigned char *rx;
	size_t rx_cap, rx_len, extra;
	bool shut, eof;
	int err;
};

static int run_ends(struct end *e, int n, int ms)
{
	struct pollfd *pfd = calloc(n, sizeof(*pfd));
	__u64 end = th_now_ms() + ms;
	unsigned char scratch[4096];
	int i, ret = -ETIMEDOUT;

	if (!pfd)
		return -ENOMEM;
	for (i = 0; i < n; i++)
		set_nonblock(e[i].fd);
	while (th_now_ms() < end) {
		int busy = 0;

		for (i = 0; i < n; i++) {
			pfd[i].fd = e[i].fd;
			pfd[i].events = 0;
			if (e[i].err)
				pfd[i].fd = -1;
			if (!e[i].shut)
				pfd[i].events |= POLLOUT;
			if (!e[i].eof)
				pfd[i].events |= POLLIN;
			busy += pfd[i].fd >= 0 && pfd[i].events;
		}
		if (!busy) {
			ret = 0;
			break;
		}
		if (poll(pfd, n, 50) < 0 && errno != EINTR) {
			ret = -errno;
			break;
		}
		for (i = 0; i < n; i++) {
			struct end *x = &e[i];
			ssize_t r;

			if (pfd[i].fd < 0)
				continue;
			if ((pfd[i].revents & (POLLOUT | POLLERR)) &&
			    !x->shut) {
				size_t len = x->tx_len - x->tx_off;

				if (len > 256 * KiB)
					len = 256 * KiB;
				r = len ? send(x->fd, x->tx + x->tx_off, len,
					       MSG_NOSIGNAL | MSG_DONTWAIT) :
					  0;
				if (r < 0 && errno != EAGAIN)
					x->err = errno;
				else if (r > 0)
					x->tx_off += r;
				if (!x->err && x->tx_off == x->tx_len) {
					shutdown(x->fd, SHUT_WR);
					x->shut = true;
				}
			}
			if ((pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) &&
			    !x->eof && !x->err) {
				bool over = x->rx_len == x->rx_cap;

				r = recv(x->fd,
					 over ? scratch : x->rx + x->rx_len,
					 over ? sizeof(scratch) :
						x->rx_cap - x->rx_len,
					 MSG_DONTWAIT);
				if (r < 0 && errno != EAGAIN)
					x->err = errno;
				else if (!r)
					x->eof = true;
				else if (r > 0 && over)
					x->extra += r;
				else if (r > 0)
					x->rx_len += r;
			}
		}
	}
	free(pfd);
	for (i = 0; i < n && !ret; i++)
		if (e[i].err)
			ret = -e[i].err;
	return ret;
}

/* Did e receive exactly what from sent? */
static bool end_check(const struct end *e, const struct end *from, char *why,
		      size_t len)
{
	unsigned char a[32], b[32];

	if (e->err) {
		snprintf(why, len, "%s", strerror(e->err));
		return false;
	}
	if (!e->eof || e->extra || e->rx_len != from->tx_len) {
		snprintf(why, len, "got %zu B (+%zu extra, eof %d) of %zu",
			 e->rx_len, e->extra, e->eof, from->tx_len);
		return false;
	}
	th_sha256(e->rx, e->rx_len, a);
	th_sha256(from->tx, from->tx_len, b);
	if (memcmp(a, b, 32)) {
		snprintf(why, len, "SHA-256 differs (%zu B)", e->rx_len);
		return false;
	}
	return true;
}

/* n connections through ambassador amb, up bytes one way and down the
 * other, all at once; each end checked by SHA-256; every one ends "done".
 */
static void relay_case(const struct tproxy *tp, int amb, int n, size_t up,
		       size_t down, const char *name)
{
	struct end *e = calloc(2 * n, sizeof(*e));
	struct sl_proxy_stats base, st;
	char why[160] = "";
	int i, err = 0, opened = 0;

	if (!e) {
		th_fail(name, "out of memory");
		return;
	}
	for (i = 0; i < 2 * n; i++)
		e[i].fd = -1;
	tp_stats(tp, &base);
	for (i = 0; i < n && !err; i++) {
		struct end *c = &e[2 * i], *u = &e[2 * i + 1];
		unsigned char *txu = malloc(up ? up : 1),
			      *txd = malloc(down ? down : 1);

		c->tx = txu;
		u->tx = txd;
		c->rx = malloc(down ? down : 1);
		u->rx = malloc(up ? up : 1);
		if (!txu || !txd || !c->rx || !u->rx) {
			err = -ENOMEM;
			break;
		}
		th_fill(txu, up, 2 * i + 1);
		th_fill(txd, down, 2 * i + 2);
		c->tx_len = u->rx_cap = up;
		u->tx_len = c->rx_cap = down;
		err = open_pair(amb_port(tp, amb), &c->fd, &u->fd);
		opened += !err;
	}
	if (err) {
		snprintf(why, sizeof(why), "opening connection %d: %s", opened,
			 strerror(-err));
		goto out;
	}
	err = run_ends(e, 2 * n, IO_MS + n * 20);
	if (err) {
		snprintf(why, sizeof(why), "transfer: %s", strerror(-err));
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (!end_check(&e[2 * i + 1], &e[2 * i], why, sizeof(why)) ||
		    !end_check(&e[2 * i], &e[2 * i + 1], why, sizeof(why))) {
			err = -EIO;
			snprintf(why + strlen(why), sizeof(why) - strlen(why),
				 " (connection %d)", i);
			goto out;
		}
	}
	if (!wait_closed(tp, &base, SL_CLOSE_DONE, n, 2000)) {
		tp_stats(tp, &st);
		err = -EIO;
		snprintf(why, sizeof(why), "proxy counted %llu done of %d",
			 (unsigned long long)(st.closed[SL_CLOSE_DONE] -
					      base.closed[SL_CLOSE_DONE]),
			 n);
	}
out:
	if (err)
		th_fail(name, "%s", why);
	else
		th_pass(name);
	for (i = 0; i < 2 * n; i++) {
		if (e[i].fd >= 0)
			close(e[i].fd);
		free((void *)e[i].tx);
		free(e[i].rx);
	}
	free(e);
}

/* ---- cases ---- */

static void test_sizes(const struct tproxy *tp, unsigned int bufsz)
{
	static const size_t sizes[] = {
		0,    1,     100,   999,   1000, 1001,
		4096, 65535, 65536, 65537, MiB,	 4 * MiB
	};
	char name[96];
	size_t i;

	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		snprintf(name, sizeof(name), "relay/buf=%u/%zu B each way",
			 bufsz, sizes[i]);
		relay_case(tp, 0, 1, sizes[i], sizes[i], name);
	}
	snprintf(name, sizeof(name), "relay/buf=%u/4 MiB up, 1 B down", bufsz);
	relay_case(tp, 0, 1, 4 * MiB, 1, name);
	snprintf(name, sizeof(name), "relay/buf=%u/1 B up, 4 MiB down", bufsz);
	relay_case(tp, 0, 1, 1, 4 * MiB, name);
}

/* Client SHUT_WR first: the upstream sees EOF, still answers, the client
 * gets the answer and then EOF. Then the same the other way round.
 */
static void test_half_close(const struct tproxy *tp)
{
	const char *name[2] = { "half-close/client first",
				"half-close/upstream first" };
	int dir;

	for (dir = 0; dir < 2; dir++) {
		struct sl_proxy_stats base;
		int cfd = -1, ufd = -1, first, second, err;
		char buf[64];
		ssize_t n;

		tp_stats(tp, &base);
		err = open_pair(amb_port(tp, 0), &cfd, &ufd);
		if (err) {
			th_fail(name[dir], "open: %s", strerror(-err));
			continue;
		}
		first = dir ? ufd : cfd;
		second = dir ? cfd : ufd;
		if (send(first, "request", 7, MSG_NOSIGNAL) != 7 ||
		    shutdown(first, SHUT_WR)) {
			th_fail(name[dir], "send: %s", strerror(errno));
			goto next;
		}
		n = read_to_eof(second, buf, sizeof(buf), IO_MS);
		if (!TH_CHECK(n == 7 && !memcmp(buf, "request", 7), name[dir],
			      "other end read %zd (want \"request\" then EOF)",
			      n))
			goto next;
		/* the half-closed direction must not stop the other one */
		if (send(second, "answer-1 ", 9, MSG_NOSIGNAL) != 9 ||
		    (usleep(50000),
		     send(second, "answer-2", 8, MSG_NOSIGNAL) != 8) ||
		    shutdown(second, SHUT_WR)) {
			th_fail(name[dir], "answer: %s", strerror(errno));
			goto next;
		}
		n = read_to_eof(first, buf, sizeof(buf), IO_MS);
		if (!TH_CHECK(n == 17 && !memcmp(buf, "answer-1 answer-2", 17),
			      name[dir],
			      "first end read %zd (want the answer, EOF)", n))
			goto next;
		TH_RESULT(wait_closed(tp, &base, SL_CLOSE_DONE, 1, 2000),
			  name[dir], "proxy did not count it done");
	next:
		close(cfd);
		close(ufd);
	}
}

/* One side resets: the other side must see ECONNRESET, not a clean EOF. */
static void test_reset(const struct tproxy *tp)
{
	static const char *const names[] = {
		"rst/upstream SO_LINGER 0 -> client ECONNRESET",
		"rst/upstream closes with unread data -> client ECONNRESET",
		"rst/client SO_LINGER 0 -> upstream ECONNRESET",
	};
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	int k;

	for (k = 0; k < 3; k++) {
		struct sl_proxy_stats base;
		int cfd = -1, ufd = -1, err, r, *victim, *killer;
		char buf[1000];

		tp_stats(tp, &base);
		err = open_pair(amb_port(tp, 0), &cfd, &ufd);
		if (err) {
			th_fail(names[k], "open: %s", strerror(-err));
			continue;
		}
		killer = k == 2 ? &cfd : &ufd;
		victim = k == 2 ? &ufd : &cfd;
		memset(buf, 'x', sizeof(buf));
		if (send(cfd, buf, sizeof(buf), MSG_NOSIGNAL) != sizeof(buf)) {
			th_fail(names[k], "send: %s", strerror(errno));
			goto next;
		}
		/* the data is at the upstream: read (k 0, 2) or not (k 1) */
		if (k != 1) {
			err = read_n(ufd, buf, sizeof(buf), IO_MS);
		} else {
			struct pollfd pfd = { .fd = ufd, .events = POLLIN };

			err = poll(&pfd, 1, IO_MS) == 1 ? 0 : -ETIMEDOUT;
		}
		if (err) {
			th_fail(names[k], "upstream did not get the data: %s",
				strerror(-err));
			goto next;
		}
		if (k != 1)
			setsockopt(*killer, SOL_SOCKET, SO_LINGER, &lg,
				   sizeof(lg));
		close(*killer);
		*killer = -1;
		r = wait_end(*victim, 3000);
		if (TH_CHECK(r == -ECONNRESET, names[k], "other end saw %s",
			     end_str(r)) &&
		    TH_CHECK(wait_closed(tp, &base, SL_CLOSE_RESET, 1, 2000),
			     names[k], "proxy did not count a reset"))
			th_pass(names[k]);
	next:
		if (cfd >= 0)
			close(cfd);
		if (ufd >= 0)
			close(ufd);
	}
}

/* Client with a small receive buffer (set before connect, so the window
 * it announces stays small) through port, and the accepted end from lfd.
 */
static int open_slow_pair(int port, int lfd, int *cfd, int *ufd)
{
	struct sockaddr_in in = { .sin_family = AF_INET,
				  .sin_port = htons(port) };
	int rcvbuf = SLOW_RCVBUF, c, u;

	in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c < 0)
		return -errno;
	if (setsockopt(c, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)) ||
	    connect(c, (void *)&in, sizeof(in))) {
		u = -errno;
		close(c);
		return u;
	}
	u = accept_to(lfd, 3000);
	if (u < 0) {
		close(c);
		return u;
	}
	*cfd = c;
	*ufd = u;
	return 0;
}

/* Take what fd has now (non-blocking) into buf. 0, or -errno (-EPIPE on
 * EOF, -E2BIG past cap).
 */
static int take(int fd, char *buf, size_t cap, size_t *len)
{
	for (;;) {
		ssize_t n;

		if (*len == cap)
			return -E2BIG;
		n = recv(fd, buf + *len, cap - *len, MSG_DONTWAIT);
		if (n < 0)
			return errno == EAGAIN ? 0 : -errno;
		if (!n)
			return -EPIPE;
		*len += n;
	}
}

/* w sends all of tx and waits until the proxy's kernel has acked all of it
 * (SIOCOUTQ 0): an RST from w can no longer discard any. r reads only when
 * w is stuck, so the proxy holds as much as it can when the RST comes.
 */
static int send_acked(int w, const char *tx, size_t n, int r, char *rx,
		      size_t cap, size_t *got, int ms)
{
	__u64 end = th_now_ms() + ms;
	size_t off = 0, last_off = 0;
	int outq = 0, last_outq = -1, err;

	for (;;) {
		ssize_t k = 0;

		while (off < n && (k = send(w, tx + off, n - off,
					    MSG_NOSIGNAL | MSG_DONTWAIT)) > 0)
			off += k;
		if (k < 0 && errno != EAGAIN)
			return -errno;
		if (ioctl(w, SIOCOUTQ, &outq))
			return -errno;
		if (off == n && !outq)
			return 0;
		if (th_now_ms() > end)
			return -ETIMEDOUT;
		if (off == last_off && outq == last_outq) {
			/* no progress in 10 ms: the reader takes some */
			err = take(r, rx, cap, got);
			if (err)
				return err;
		}
		last_off = off;
		last_outq = outq;
		usleep(10000);
	}
}

/* The reader takes nothing: w sends from tx (cap bytes at most) until the
 * whole path is full and nothing moves for 100 ms. *acked: what the proxy's
 * kernel acked (sent less what w still holds), which an RST from w cannot
 * take back.
 */
static int send_stuck(int w, const char *tx, size_t cap, size_t *acked,
		      int ms)
{
	__u64 end = th_now_ms() + ms;
	size_t off = 0;
	int outq = 0, q, still = 0;

	while (still < 10) {
		ssize_t k = 0;
		bool moved = false;

		while (off < cap && (k = send(w, tx + off, cap - off,
					      MSG_NOSIGNAL | MSG_DONTWAIT)) > 0) {
			off += k;
			moved = true;
		}
		if (k < 0 && errno != EAGAIN)
			return -errno;
		if (off == cap)
			return -E2BIG;
		if (ioctl(w, SIOCOUTQ, &q))
			return -errno;
		moved |= q != outq;
		outq = q;
		still = moved ? 0 : still + 1;
		if (th_now_ms() > end)
			return -ETIMEDOUT;
		usleep(10000);
	}
	*acked = off - outq;
	return 0;
}

/* Read into buf until the stream ends: 0 for EOF, -ECONNRESET for an RST,
 * -ETIMEDOUT, -E2BIG past cap.
 */
static int read_to_end(int fd, char *buf, size_t cap, size_t *len, int ms)
{
	__u64 end = th_now_ms() + ms;
	int err;

	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int left = (int)(end - th_now_ms());

		if (left <= 0 || poll(&pfd, 1, left) <= 0)
			return -ETIMEDOUT;
		err = take(fd, buf, cap, len);
		if (err)
			return err == -EPIPE ? 0 : err;
	}
}

#define RST_FILL 0 /* n for rst_after_data: as much as the path holds */
#define RST_FILL_MAX (48 * MiB)

/* One side writes n bytes, the proxy holds what the small-window reader
 * has no room for, then the writer resets (SO_LINGER 0, with unread data
 * too): like on a direct connection the reader gets all n bytes, then
 * ECONNRESET. up: the client writes and resets, else the upstream does.
 * amb -1: a direct connection, what the proxy has to look like. n
 * RST_FILL: the reader takes nothing until the writer is stuck (the proxy's
 * buffer and its kernel's queues both ways full), then gets every byte the
 * proxy's side acked. fin: the writer sends a FIN before the RST; then the
 * reader's stream ends with EOF, as it does on a direct connection.
 */
static void rst_after_data(const struct tproxy *tp, int amb, bool up, size_t n,
			   bool fin)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	size_t txlen = n == RST_FILL ? RST_FILL_MAX : n;
	size_t cap = txlen + 64 * KiB, got = 0;
	char *tx = malloc(txlen), *rx = malloc(cap), name[160], size[32],
	     junk[1000];
	struct sl_proxy_stats base;
	int cfd = -1, ufd = -1, w, r, err, end, k;

	if (n == RST_FILL)
		snprintf(size, sizeof(size), "until stuck");
	else
		snprintf(size, sizeof(size), "%zu B", n);
	snprintf(name, sizeof(name),
		 "rst after data/%s%s writes %s%s then resets -> %s reads "
		 "them all, then %s",
		 amb < 0 ? "direct, no proxy/" : "", up ? "client" : "upstream",
		 size, fin ? ", FIN," : "", up ? "upstream" : "client",
		 fin ? "EOF" : "ECONNRESET");
	if (!tx || !rx) {
		th_fail(name, "out of memory");
		goto out;
	}
	th_fill(tx, txlen, txlen + up);
	tp_stats(tp, &base);
	err = open_slow_pair(amb < 0 ? slow_port : amb_port(tp, amb), slow_lfd,
			     &cfd, &ufd);
	if (err) {
		th_fail(name, "open: %s", strerror(-err));
		goto out;
	}
	w = up ? cfd : ufd;
	r = up ? ufd : cfd;
	/* the reader sends what the writer leaves unread (a 413 with the
	 * request body unread, say): its close resets even without linger
	 */
	memset(junk, 'j', sizeof(junk));
	if (send(r, junk, sizeof(junk), MSG_NOSIGNAL) != sizeof(junk)) {
		th_fail(name, "send: %s", strerror(errno));
		goto out;
	}
	{
		struct pollfd pfd = { .fd = w, .events = POLLIN };

		if (!TH_CHECK(poll(&pfd, 1, IO_MS) == 1, name,
			      "the writer did not get the reader's bytes"))
			goto out;
	}
	if (n == RST_FILL)
		err = send_stuck(w, tx, txlen, &n, IO_MS);
	else
		err = send_acked(w, tx, n, r, rx, cap, &got, IO_MS);
	if (!err && fin && shutdown(w, SHUT_WR))
		err = -errno;
	for (k = 0; !err && fin; k++) { /* until the FIN is acked */
		int outq = 1;

		if (ioctl(w, SIOCOUTQ, &outq))
			err = -errno;
		else if (!outq)
			break;
		else if (k == IO_MS / 2)
			err = -ETIMEDOUT;
		usleep(2000);
	}
	if (!TH_CHECK(!err, name, "writing (reader had %zu B): %s", got,
		      strerror(-err)))
		goto out;
	th_info("%s: %zu B acked, reader had %zu B when the writer reset", name,
		n, got);
	setsockopt(w, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(w);
	if (up)
		cfd = -1;
	else
		ufd = -1;
	/* the proxy sees the RST at once; the reader makes room only after
	 * that, so what the proxy holds then is what is at stake
	 */
	usleep(50000);
	end = read_to_end(r, rx, cap, &got, IO_MS);
	if (TH_CHECK(got == n && !memcmp(rx, tx, n), name,
		     "reader got %zu B of %zu%s, then %s", got, n,
		     got == n ? " (bytes differ)" : "", end_str(end)) &&
	    TH_CHECK(end == (fin ? 0 : -ECONNRESET), name,
		     "after the data: %s", end_str(end)) &&
	    TH_CHECK(amb < 0 || wait_closed(tp, &base, SL_CLOSE_RESET, 1, 2000),
		     name, "proxy did not count a reset"))
		th_pass(name);
out:
	if (cfd >= 0)
		close(cfd);
	if (ufd >= 0)
		close(ufd);
	free(tx);
	free(rx);
}

static void test_reset_after_data(const struct tproxy *tp, int amb,
				  unsigned int bufsz)
{
	const size_t sizes[] = { 1, 50 * KiB, bufsz, 4 * bufsz, RST_FILL };
	size_t i;
	int up;

	/* the kernel's own behaviour first: the expectation below */
	rst_after_data(tp, -1, false, 50 * KiB, false);
	rst_after_data(tp, -1, true, 50 * KiB, false);
	rst_after_data(tp, -1, false, RST_FILL, false);
	rst_after_data(tp, -1, false, 50 * KiB, true);
	for (up = 0; up < 2; up++)
		for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
			rst_after_data(tp, amb, up, sizes[i], false);
	rst_after_data(tp, amb, false, 50 * KiB, true);
}

static __u64 cpu_ms(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000ULL +
	       (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000;
}

/* The upstream writes and resets, the client never reads: the proxy waits
 * for it without spinning, until the idle timeout ends the connection
 * with an RST (the client must not take the cut stream for a whole one).
 */
static void test_drain_idle(const struct tproxy *tp)
{
	const char *name = "rst after data/client never reads: idle timeout, "
			   "no spinning, RST";
	size_t n = 50 * KiB, cap = n + 64 * KiB, got = 0;
	char *tx = malloc(n), *rx = malloc(cap);
	struct sl_proxy_stats base;
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	int cfd = -1, ufd = -1, err, end, ms, cpu;
	__u64 t0, c0;

	if (!tx || !rx) {
		th_fail(name, "out of memory");
		goto out;
	}
	th_fill(tx, n, 5);
	tp_stats(tp, &base);
	err = open_slow_pair(amb_port(tp, 0), up_lfd, &cfd, &ufd);
	if (!err)
		err = send_acked(ufd, tx, n, cfd, rx, cap, &got, IO_MS);
	if (!TH_CHECK(!err && !got, name, "setup: %s (client read %zu B)",
		      strerror(-err), got))
		goto out;
	t0 = th_now_ms();
	c0 = cpu_ms();
	setsockopt(ufd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(ufd);
	ufd = -1;
	err = !wait_closed(tp, &base, SL_CLOSE_IDLE_TIMEOUT, 1,
			   T_IDLE_MS + 2000);
	ms = (int)(th_now_ms() - t0);
	cpu = (int)(cpu_ms() - c0);
	th_info("drain: ended after %d ms, %d ms CPU meanwhile", ms, cpu);
	if (!TH_CHECK(!err, name, "not closed as idle-timeout") ||
	    !TH_CHECK(ms >= T_IDLE_MS - 50, name,
		      "closed after %d ms, idle timeout %d", ms, T_IDLE_MS) ||
	    !TH_CHECK(cpu < ms / 4, name, "%d ms CPU in %d ms: spinning", cpu,
		      ms))
		goto out;
	end = read_to_end(cfd, rx, cap, &got, IO_MS);
	TH_RESULT(end == -ECONNRESET && got < n && !memcmp(rx, tx, got),
		  name, "client read %zu B of %zu, then %s", got, n,
		  end_str(end));
out:
	if (cfd >= 0)
		close(cfd);
	if (ufd >= 0)
		close(ufd);
	free(tx);
	free(rx);
}

/* An upstream that accepts and never reads: once the client's writes
 * block, nothing moves, and the idle timeout ends the connection with an
 * RST (the bytes held are lost, so never a clean close), counted
 * idle-timeout, without spinning meanwhile.
 */
static void test_upstream_never_reads(const struct tproxy *tp)
{
	const char *name = "upstream accepts and never reads: the writer blocks, "
			   "then the idle timeout resets it, no spinning";
	unsigned char *tx = malloc(BP_LIMIT);
	struct sl_proxy_stats base;
	int cfd = -1, ufd = -1, err, r, ms, cpu;
	__u64 t0, c0;
	ssize_t off;

	if (!tx) {
		th_fail(name, "out of memory");
		return;
	}
	th_fill(tx, BP_LIMIT, 78);
	tp_stats(tp, &base);
	err = open_pair(amb_port(tp, 0), &cfd, &ufd);
	if (!TH_CHECK(!err, name, "open: %s", strerror(-err)))
		goto out;
	set_nonblock(cfd);
	/* the proxy's idle clock runs from the last byte it moved, while the
	 * client may still be filling the kernel's buffers: the reset can
	 * reach the writer itself
	 */
	off = th_send_until_blocked(cfd, tx, BP_LIMIT, BP_LIMIT);
	if (!TH_CHECK(off != (ssize_t)BP_LIMIT, name, "the writer never blocked") ||
	    !TH_CHECK(off >= 0 || off == -ECONNRESET || off == -EPIPE, name,
		      "send: %s", strerror((int)-off)))
		goto out;
	/* the proxy's last byte moved before the client's: how long before is
	 * not seen from here, so the timeout's own length is test_idle's
	 * check; this one asks that it comes, as a reset, without spinning
	 */
	t0 = th_now_ms();
	c0 = cpu_ms();
	err = !wait_closed(tp, &base, SL_CLOSE_IDLE_TIMEOUT, 1, T_IDLE_MS + 2000);
	ms = (int)(th_now_ms() - t0);
	cpu = (int)(cpu_ms() - c0);
	r = off < 0 ? -ECONNRESET : wait_end(cfd, 2000);
	th_info("never reads: the writer %s after %zd B; closed %d ms later "
		"(%d ms CPU), the client saw %s",
		off < 0 ? "was reset while sending" : "blocked",
		off < 0 ? (ssize_t)0 : off, ms, cpu, end_str(r));
	if (TH_CHECK(!err, name, "not closed as idle-timeout within %d ms",
		     T_IDLE_MS + 2000) &&
	    TH_CHECK(cpu < ms / 4 + 20, name, "%d ms CPU in %d ms: spinning",
		     cpu, ms) &&
	    TH_CHECK(r == -ECONNRESET, name, "the client saw %s", end_str(r)))
		th_pass(name);
out:
	if (cfd >= 0)
		close(cfd);
	if (ufd >= 0)
		close(ufd);
	free(tx);
}

/* The upstream does not read: the client's writes must block once the
 * kernel buffers and the proxy's one buffer are full; the proxy holds at
 * most buffer_bytes. Then the upstream reads everything, byte-exact.
 */
static void test_backpressure(const struct tproxy *tp, unsigned int bufsz)
{
	const char *name = "back-pressure/slow reader blocks the writer";
	struct sl_proxy_stats st1, st2;
	unsigned char *tx = malloc(BP_LIMIT), *rx = malloc(BP_LIMIT);
	struct end e[2] = {};
	ssize_t off;
	int cfd = -1, ufd = -1, err;
	char why[160];

	if (!tx || !rx) {
		th_fail(name, "out of memory");
		goto out;
	}
	th_fill(tx, BP_LIMIT, 77);
	err = open_pair(amb_port(tp, 0), &cfd, &ufd);
	if (err) {
		th_fail(name, "open: %s", strerror(-err));
		goto out;
	}
	set_nonblock(cfd);
	off = th_send_until_blocked(cfd, tx, BP_LIMIT, BP_LIMIT);
	if (!TH_CHECK(off >= 0, name, "send: %s", strerror((int)-off)) ||
	    !TH_CHECK(off < (ssize_t)BP_LIMIT, name,
		      "the writer never blocked: the proxy read %zd B ahead",
		      off))
		goto out;
	tp_stats(tp, &st1);
	usleep(200000);
	tp_stats(tp, &st2);
	th_info("back-pressure: writer blocked after %zd B; proxy holds %llu B "
		"(buffer %u)",
		off, (unsigned long long)st2.buffered, bufsz);
	if (!TH_CHECK(st2.buffered <= bufsz && st2.buffered > 0, name,
		      "proxy holds %llu B, buffer is %u",
		      (unsigned long long)st2.buffered, bufsz) ||
	    !TH_CHECK(st1.bytes_up == st2.bytes_up &&
			      st1.buffered == st2.buffered,
		      name, "proxy kept moving data while stuck"))
		goto out;
	/* now the upstream reads: everything arrives, nothing else */
	e[0] = (struct end){ .fd = cfd, .tx = tx, .tx_len = off, .tx_off = off };
	e[1] = (struct end){ .fd = ufd, .rx = rx, .rx_cap = off };
	err = run_ends(e, 2, IO_MS);
	e[1].tx = NULL;
	if (!TH_CHECK(!err, name, "drain: %s", strerror(-err)))
		goto out;
	TH_RESULT(end_check(&e[1], &e[0], why, sizeof(why)), name, "%s",
		  why);
out:
	if (cfd >= 0)
		close(cfd);
	if (ufd >= 0)
		close(ufd);
	free(tx);
	free(rx);
}

/* The client gets closed promptly (RST or EOF) and reason is counted. */
static void expect_refused(const struct tproxy *tp, int port,
			   enum sl_close_reason reason, int min_ms, int max_ms,
			   const char *name)
{
	struct sl_proxy_stats base;
	__u64 t0;
	int cfd, r, ms;

	tp_stats(tp, &base);
	t0 = th_now_ms();
	cfd = th_connect("127.0.0.1", port);
	if (cfd < 0) {
		th_fail(name, "connect: %s", strerror(-cfd));
		return;
	}
	r = wait_end(cfd, max_ms + 2000);
	ms = (int)(th_now_ms() - t0);
	close(cfd);
	th_info("%s: client saw %s after %d ms", name, end_str(r), ms);
	/* the app's own connect succeeded: a refusal is an RST, never a
	 * clean EOF that reads as an empty answer
	 */
	if (TH_CHECK(r == -ECONNRESET, name, "client saw %s", end_str(r)) &&
	    TH_CHECK(ms >= min_ms && ms <= max_ms, name,
		     "closed after %d ms, want %d..%d", ms, min_ms, max_ms) &&
	    TH_CHECK(wait_closed(tp, &base, reason, 1, 1000), name,
		     "reason %s not counted", sl_close_reason_name[reason]))
		th_pass(name);
}

/* Traffic every 150 ms keeps a connection alive past the idle timeout;
 * silence closes it about T_IDLE_MS later.
 */
static void test_idle(const struct tproxy *tp)
{
	const char *name = "idle timeout/activity keeps it, silence ends it";
	struct sl_proxy_stats base;
	int cfd = -1, ufd = -1, err, i, r;
	char c;
	__u64 t0;

	tp_stats(tp, &base);
	err = open_pair(amb_port(tp, 0), &cfd, &ufd);
	if (err) {
		th_fail(name, "open: %s", strerror(-err));
		return;
	}
	for (i = 0; i < 6; i++) { /* 900 ms > T_IDLE_MS */
		struct pollfd pfd = { .fd = ufd, .events = POLLIN };

		usleep(150000);
		if (send(cfd, "k", 1, MSG_NOSIGNAL) != 1 ||
		    poll(&pfd, 1, 1000) != 1 || recv(ufd, &c, 1, 0) != 1) {
			th_fail(name, "keep-alive byte %d did not get through",
				i);
			goto out;
		}
	}
	t0 = th_now_ms();
	r = wait_end(cfd, T_IDLE_MS + 2000);
	i = (int)(th_now_ms() - t0);
	th_info("idle: client saw %s %d ms after the last byte", end_str(r), i);
	if (TH_CHECK(r == 0 || r == -ECONNRESET, name, "client saw %s",
		     end_str(r)) &&
	    TH_CHECK(i >= T_IDLE_MS - 50 && i <= T_IDLE_MS + 600, name,
		     "closed after %d ms, idle timeout %d", i, T_IDLE_MS) &&
	    TH_CHECK((r = wait_end(ufd, 1000)) == 0 || r == -ECONNRESET, name,
		     "upstream saw %s", end_str(r)) &&
	    TH_CHECK(wait_closed(tp, &base, SL_CLOSE_IDLE_TIMEOUT, 1, 1000),
		     name, "idle-timeout not counted"))
		th_pass(name);
out:
	close(cfd);
	close(ufd);
}

/* max_conns 2: the third is refused and never reaches the upstream; once
 * one ends there is room again.
 */
static void test_max_conns(const struct tproxy *tp)
{
	const char *name = "max_conns/third refused, room again after a close";
	int c[3] = { -1, -1, -1 }, u[3] = { -1, -1, -1 }, i, err;
	struct sl_proxy_stats st;
	__u64 end;

	for (i = 0; i < 2; i++) {
		err = open_pair(amb_port(tp, 0), &c[i], &u[i]);
		if (err) {
			th_fail(name, "open %d: %s", i, strerror(-err));
			goto out;
		}
	}
	expect_refused(tp, amb_port(tp, 0), SL_CLOSE_TOO_MANY, 0, 1000,
		       "max_conns/third connection refused");
	if (!TH_CHECK(accept_to(up_lfd, 100) == -ETIMEDOUT, name,
		      "the refused connection reached the upstream"))
		goto out;
	close(c[0]);
	close(u[0]);
	c[0] = u[0] = -1;
	end = th_now_ms() + 2000;
	do {
		usleep(5000);
		tp_stats(tp, &st);
	} while (st.active > 1 && th_now_ms() < end);
	err = open_pair(amb_port(tp, 0), &c[2], &u[2]);
	if (!TH_CHECK(!err, name, "after a close: %s", strerror(-err)))
		goto out;
	/* wait_end() reads the one byte: 1 = data came through */
	TH_RESULT(send(c[2], "x", 1, MSG_NOSIGNAL) == 1 &&
			  wait_end(u[2], 2000) == 1,
		  name, "no data through the new connection");
out:
	for (i = 0; i < 3; i++) {
		if (c[i] >= 0)
			close(c[i]);
		if (u[i] >= 0)
			close(u[i]);
	}
}

/* ---- proxies ---- */

static void run_main(int closed_port)
{
	const char *stop = "stop/open connections closed";
	struct sl_config *cfg = cfg_new(64 * KiB, 2000, 10000);
	struct sl_proxy_stats st;
	struct tproxy tp;
	int err, cfd = -1, ufd = -1, r;

	th_watchdog(60, "proxy main");
	if (!cfg) {
		th_fail("main proxy: start", "out of memory");
		return;
	}
	cfg->capture.mark = 0x5e1; /* SO_MARK on upstream sockets (root) */
	cfg_amb(cfg, "127.0.0.1", up_port);
	cfg_amb(cfg, "localhost", up_port); /* per-connection resolution */
	cfg_amb(cfg, "127.0.0.1", closed_port);
	cfg_amb(cfg, "no-such-host.invalid", up_port);
	cfg_amb(cfg, "127.0.0.1", slow_port);
	err = tp_start(&tp, "main", cfg);
	if (!TH_RESULT(!err, "main proxy: start", "%s", strerror(-err))) {
		free(cfg);
		return;
	}

	test_sizes(&tp, 64 * KiB);
	relay_case(&tp, 0, N_CONC, CONC_BYTES, CONC_BYTES,
		   "concurrent/256 connections, 32 KiB each way");
	relay_case(&tp, 1, 20, 10 * KiB, 10 * KiB,
		   "resolver/upstream \"localhost\", 20 connections");
	test_half_close(&tp);
	test_reset(&tp);
	test_reset_after_data(&tp, 4, 64 * KiB);
	expect_refused(&tp, amb_port(&tp, 2), SL_CLOSE_CONNECT_FAILED, 0, 1000,
		       "connect failed/closed port: client closed at once");
	expect_refused(&tp, amb_port(&tp, 3), SL_CLOSE_RESOLVE_FAILED, 0, 3000,
		       "resolve failed/unknown name: client closed");

	/* stop with a connection open: it ends, counted "shutdown" */
	err = open_pair(amb_port(&tp, 0), &cfd, &ufd);
	err = err ?: tp_stop(&tp);
	r = err ? -1 : wait_end(cfd, 2000);
	tp_stats(&tp, &st);
	if (TH_CHECK(!err, stop, "%s", strerror(-err)) &&
	    TH_CHECK(r == 0 || r == -ECONNRESET, stop, "client saw %s",
		     end_str(r)) &&
	    TH_CHECK(st.active == 0 && st.closed[SL_CLOSE_SHUTDOWN] >= 1 &&
			     st.buffered == 0, stop,
		     "active %llu, shutdown %llu, buffered %llu",
		     (unsigned long long)st.active,
		     (unsigned long long)st.closed[SL_CLOSE_SHUTDOWN],
		     (unsigned long long)st.buffered))
		th_pass(stop);
	th_info("main proxy: accepted %llu, done %llu, bytes up %llu down %llu",
		(unsigned long long)st.accepted,
		(unsigned long long)st.closed[SL_CLOSE_DONE],
		(unsigned long long)st.bytes_up,
		(unsigned long long)st.bytes_down);
	if (cfd >= 0)
		close(cfd);
	if (ufd >= 0)
		close(ufd);
	tp_free(&tp);
}

static void run_small(void)
{
	struct sl_config *cfg = cfg_new(SMALL_BUF, 2000, 10000);
	struct tproxy tp;
	int err;

	th_watchdog(60, "proxy small buffer");
	if (!cfg) {
		th_fail("small-buffer proxy: start", "out of memory");
		return;
	}
	cfg_amb(cfg, "127.0.0.1", up_port);
	err = tp_start(&tp, "small", cfg);
	if (!TH_CHECK(!err, "small-buffer proxy: start", "%s",
		      strerror(-err))) {
		free(cfg);
		return;
	}
	test_sizes(&tp, SMALL_BUF);
	test_backpressure(&tp, SMALL_BUF);
	tp_free(&tp);
}

static void run_timeouts(void)
{
	struct sl_config *cfg = cfg_new(64 * KiB, T_CONNECT_MS, T_IDLE_MS);
	int blfd, blport, filler = -1, err;
	struct tproxy tp;

	th_watchdog(30, "proxy timeouts");
	/* backlog 0 holds one connection; SYNs after it are dropped, so a
	 * connect to it hangs: a local stand-in for an unreachable host
	 */
	blfd = th_listen("127.0.0.1", 0, &blport);
	if (blfd >= 0)
		filler = th_connect("127.0.0.1", blport);
	if (!cfg || blfd < 0 || filler < 0) {
		th_fail("timeouts proxy: start", "setup: %s",
			strerror(blfd < 0   ? -blfd :
				 filler < 0 ? -filler :
					      ENOMEM));
		goto out;
	}
	cfg_amb(cfg, "127.0.0.1", up_port);
	cfg_amb(cfg, "127.0.0.1", blport);
	err = tp_start(&tp, "timeouts", cfg);
	if (!TH_CHECK(!err, "timeouts proxy: start", "%s", strerror(-err)))
		goto out;
	cfg = NULL; /* tp owns it */
	expect_refused(&tp, amb_port(&tp, 1), SL_CLOSE_CONNECT_TIMEOUT,
		       T_CONNECT_MS - 50, T_CONNECT_MS + 600,
		       "connect timeout/full backlog");
	test_idle(&tp);
	test_drain_idle(&tp);
	test_upstream_never_reads(&tp);
	tp_free(&tp);
out:
	free(cfg);
	if (filler >= 0)
		close(filler);
	if (blfd >= 0)
		close(blfd);
}

static void run_limits(void)
{
	struct sl_config *cfg = cfg_new(64 * KiB, 2000, 10000);
	struct tproxy tp;
	int err;

	th_watchdog(30, "proxy limits");
	if (!cfg) {
		th_fail("limits proxy: start", "out of memory");
		return;
	}
	cfg->proxy.max_conns = 2;
	cfg_amb(cfg, "127.0.0.1", up_port);
	err = tp_start(&tp, "limits", cfg);
	if (!TH_CHECK(!err, "limits proxy: start", "%s", strerror(-err))) {
		free(cfg);
		return;
	}
	test_max_conns(&tp);
	tp_free(&tp);
}

#define W_WORKERS 4
#define W_CONNS 200

static bool exchange(int fd, const char *send_tag, int peer, const char *want)
{
	char buf[16] = "";

	return send(fd, send_tag, 8, MSG_NOSIGNAL) == 8 &&
	       recv(peer, buf, 8, MSG_WAITALL) == 8 && !memcmp(buf, want, 8);
}

/* A drain reaches every worker: a new connect is refused once their
 * listeners are closed, and the connections each of them holds go on
 * carrying bytes both ways (drain_timeout_ms is long).
 */
static void check_workers_drain(struct tproxy *tp, const int *c, const int *u)
{
	const char *name = "workers/drain: every worker's listener closed, every open connection still flows";
	int i, fd = -1, bad = -1, refused = 0, probes = 0;
	char tag[16];
	__u64 end;

	sl_proxy_drain(tp->p);
	end = th_now_ms() + 2000;
	while (!refused && th_now_ms() < end) {
		fd = th_connect("127.0.0.1", amb_port(tp, 0));
		/* a listener still open accepts; a closed one refuses */
		refused = fd < 0;
		if (fd >= 0) {
			close(fd);
			probes++;
			usleep(20 * 1000);
		}
	}
	/* twice: a connect could land on a worker not yet drained */
	usleep(300 * 1000);
	fd = th_connect("127.0.0.1", amb_port(tp, 0));
	refused &= fd < 0;
	if (fd >= 0) {
		close(fd);
		probes++;
	}
	/* a probe a worker took before its listener closed is relayed (the
	 * drain serves what arrived): end its upstream side too
	 */
	for (i = 0; i < probes; i++) {
		fd = accept_to(up_lfd, 500);
		if (fd >= 0)
			close(fd);
	}
	for (i = 0; i < W_CONNS && bad < 0; i++) {
		char back[16];

		snprintf(tag, sizeof(tag), "d%07d", i);
		snprintf(back, sizeof(back), "e%07d", i);
		if (!exchange(c[i], tag, u[i], tag) ||
		    !exchange(u[i], back, c[i], back))
			bad = i;
	}
	if (TH_CHECK(refused, name, "a new connect was accepted while draining") &&
	    TH_CHECK(bad < 0, name, "connection %d stopped during the drain", bad))
		th_pass(name);
}

/* proxy.workers 4: 200 connections open at once, each with its own bytes
 * both ways; every worker took some (the kernel spreads SO_REUSEPORT
 * listeners by 4-tuple), the sums add up, and all close.
 */
static void run_workers(void)
{
	const char *name = "workers/4 loops: 200 connections at once, bytes right both ways, every worker took some";
	struct sl_config *cfg = cfg_new(64 * KiB, 2000, 10000);
	int c[W_CONNS], u[W_CONNS], i, err = 0, bad = -1;
	struct sl_proxy_stats st, ws;
	unsigned int w, idle = 0;
	uint64_t sum = 0;
	struct tproxy tp;
	char tag[16];
	__u64 end;

	th_watchdog(60, "proxy workers");
	for (i = 0; i < W_CONNS; i++)
		c[i] = u[i] = -1;
	if (!cfg) {
		th_fail(name, "out of memory");
		return;
	}
	cfg->proxy.workers = W_WORKERS;
	cfg->admin.drain_timeout_ms = 10000; /* check_workers_drain */
	cfg_amb(cfg, "127.0.0.1", up_port);
	err = tp_start(&tp, "workers", cfg);
	if (!TH_CHECK(!err, name, "start: %s", strerror(-err))) {
		free(cfg);
		return;
	}
	for (i = 0; i < W_CONNS && !err && bad < 0; i++) {
		struct timeval tv = { .tv_sec = 3 };
		char want[16];

		err = open_pair(amb_port(&tp, 0), &c[i], &u[i]);
		if (err)
			break;
		setsockopt(c[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(u[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		snprintf(tag, sizeof(tag), "c%07d", i);
		snprintf(want, sizeof(want), "u%07d", i);
		if (!exchange(c[i], tag, u[i], tag) ||
		    !exchange(u[i], want, c[i], want))
			bad = i;
	}
	tp_stats(&tp, &st);
	for (w = 0; w < sl_proxy_workers(tp.p); w++) {
		sl_proxy_worker_stats(tp.p, w, &ws);
		th_info("workers: worker %u accepted %llu", w,
			(unsigned long long)ws.accepted);
		sum += ws.accepted;
		idle += !ws.accepted;
	}
	if (TH_CHECK(!err, name, "connection %d: %s", i, strerror(-err)) &&
	    TH_CHECK(bad < 0, name, "connection %d: wrong or missing bytes", bad) &&
	    TH_CHECK(sl_proxy_workers(tp.p) == W_WORKERS, name, "%u workers",
		     sl_proxy_workers(tp.p)) &&
	    TH_CHECK(st.accepted == W_CONNS && st.active == W_CONNS &&
			     sum == W_CONNS,
		     name, "accepted %llu active %llu, per worker sum %llu",
		     (unsigned long long)st.accepted,
		     (unsigned long long)st.active, (unsigned long long)sum) &&
	    TH_CHECK(!idle, name, "%u worker(s) took no connection", idle))
		th_pass(name);
	if (!err && bad < 0)
		check_workers_drain(&tp, c, u);
	for (i = 0; i < W_CONNS; i++) {
		if (c[i] >= 0)
			close(c[i]);
		if (u[i] >= 0)
			close(u[i]);
	}
	end = th_now_ms() + 3000;
	do {
		usleep(5000);
		tp_stats(&tp, &st);
	} while (st.active && th_now_ms() < end);
	/* and the drain's probes that a worker took */
	TH_RESULT(!st.active && st.closed[SL_CLOSE_DONE] >= W_CONNS,
		  "workers/all 200 closed as done", "active %llu, done %llu",
		  (unsigned long long)st.active,
		  (unsigned long long)st.closed[SL_CLOSE_DONE]);
	tp_free(&tp);
}

/* A connection made straight to the transparent listener has no original
 * destination from the capture hook (none here): refused as no-orig-dst,
 * or as a loop where conntrack answers with the listener itself.
 */
static void run_transparent(void)
{
	const char *name = "transparent/direct connection refused";
	struct sl_config *cfg = cfg_new(64 * KiB, 2000, 10000);
	struct sl_proxy_stats base, st;
	struct tproxy tp;
	int err, cfd, r;

	th_watchdog(30, "proxy transparent");
	if (!cfg) {
		th_fail(name, "out of memory");
		return;
	}
	cfg->capture.enabled = 1;
	cfg->capture.mark = 0x5e1;
	err = tp_start(&tp, "transparent", cfg);
	if (!TH_CHECK(!err, name, "start: %s", strerror(-err))) {
		free(cfg);
		return;
	}
	tp_stats(&tp, &base);
	cfd = th_connect("127.0.0.1", ep_port(&cfg->capture.outbound));
	r = cfd < 0 ? cfd : wait_end(cfd, 2000);
	usleep(20000);
	tp_stats(&tp, &st);
	if (TH_CHECK(r == -ECONNRESET || r == 0, name, "client saw %s",
		     end_str(r)) &&
	    TH_CHECK(st.closed[SL_CLOSE_NO_ORIG_DST] +
				     st.closed[SL_CLOSE_LOOP] ==
			     base.closed[SL_CLOSE_NO_ORIG_DST] +
				     base.closed[SL_CLOSE_LOOP] + 1,
		     name, "no-orig-dst/loop not counted"))
		th_pass(name);
	if (cfd >= 0)
		close(cfd);
	tp_free(&tp);
}

int main(void)
{
	struct rlimit rl;
	int closed_port;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (getenv("SL_DEBUG")) /* the proxy's per-connection lines */
		sl_verbosity = 1;
	/* 256 connections are 1024 descriptors in this one process */
	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	up_lfd = th_listen("127.0.0.1", 1024, &up_port);
	slow_lfd = th_listen("127.0.0.1", 16, &slow_port);
	closed_port = th_free_port();
	if (slow_lfd >= 0) { /* inherited by the accepted sockets */
		int rcvbuf = SLOW_RCVBUF;

		setsockopt(slow_lfd, SOL_SOCKET, SO_RCVBUF, &rcvbuf,
			   sizeof(rcvbuf));
	}
	if (up_lfd < 0 || slow_lfd < 0 || closed_port < 0) {
		th_fail("setup/upstream listener", "%s",
			strerror(up_lfd < 0 ? -up_lfd : slow_lfd < 0 ? -slow_lfd :
								 -closed_port));
		return th_summary();
	}
	run_main(closed_port);
	run_small();
	run_timeouts();
	run_limits();
	run_workers();
	run_transparent();
	th_watchdog(0, NULL);
	close(slow_lfd);
	close(up_lfd);
	return th_summary();
}
