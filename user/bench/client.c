// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* `sidelane bench`, the client end of a measurement: closed loops of
 * request/response, streams, full duplex, a connection per request (see
 * bench.c).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench/internal.h"

int client_connect(struct sockaddr_in sa, int nodelay,
		   struct side_result *r)
{
	socklen_t len = sizeof(int);
	int fd, err = 0;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC |
				     (bs.client_nb ? SOCK_NONBLOCK : 0), 0);
	if (fd < 0) {
		side_fail(r, errno, "client socket");
		return -1;
	}
	set_timeouts(fd, nodelay);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		err = errno;
		if (err == EINPROGRESS) {
			err = io_wait(fd, POLLOUT);
			if (!err && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len))
				err = errno;
		}
	}
	if (err) {
		side_fail(r, err, "connect");
		close(fd);
		return -1;
	}
	return fd;
}

/* Client idx's transaction from t0 to t1 is done: counted, and timed into
 * the client's slice of lat_ns when it began in the measured window.
 */
static void tx_done(const struct worker_args *a, int idx, struct tx_count *c,
		    uint64_t t0, uint64_t t1)
{
	c->tx_all++;
	if (t0 < a->measure)
		return;
	c->tx++;
	c->end_ns = t1;
	if (c->nlat < a->slice)
		a->shm->lat_ns[idx * a->slice + c->nlat++] =
			t1 - t0 > UINT32_MAX ? UINT32_MAX : t1 - t0;
}

/* A client of rr, on a connection of its own: one outstanding request of
 * wl->size bytes, echoed back. Every byte of a request carries its sequence
 * number, checked at both ends of the echo.
 */
static int rr_client(int idx, void *arg)
{
	const struct worker_args *a = arg;
	struct side_result *r = &a->shm->client;
	size_t size = a->wl->size;
	struct tx_count c = {};
	uint64_t t0, t1;
	int fd, err, ret = 1;
	uint8_t seq;
	char *buf;

	buf = malloc(size);
	if (!buf)
		return side_fail(r, ENOMEM, "malloc");
	fd = client_connect(a->dst, 1, r);
	if (fd < 0)
		goto out;
	for (t1 = now_ns(); !bench_stop && t1 < a->end;) {
		seq = (uint8_t)c.tx_all;
		memset(buf, seq, size);
		t0 = now_ns();
		err = write_full(fd, buf, size);
		if (!err)
			err = read_full(fd, buf, size);
		t1 = now_ns();
		if (!err && ((uint8_t)buf[0] != seq || (uint8_t)buf[size - 1] != seq))
			err = EBADMSG;
		if (err) {
			ret = side_fail(r, err, "client request");
			goto out;
		}
		tx_done(a, idx, &c, t0, t1);
	}
	a->shm->clients[idx] = c;
	ret = bench_stop ? 1 : 0;
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return ret;
}

/* A client of rr over wl->conns connections of its own, one epoll loop:
 * each connection a closed loop of one request of wl->size bytes and its
 * echo, every byte of which carries the request's sequence number.
 */
struct rr_conn {
	int fd;
	uint8_t seq;
	size_t got;
	uint64_t t0;
};

static int rr_send(struct rr_conn *x, char *req, size_t size)
{
	memset(req, x->seq, size);
	x->got = 0;
	x->t0 = now_ns();
	return write_full(x->fd, req, size);
}

static int rr_many_client(int idx, void *arg)
{
	const struct worker_args *a = arg;
	struct side_result *r = &a->shm->client;
	size_t size = a->wl->size, i, j, n = (size_t)a->wl->conns;
	struct rr_conn *cs = calloc(n, sizeof(*cs));
	char *req = malloc(size), *buf = malloc(size);
	struct epoll_event evs[64];
	struct tx_count c = {};
	int ep = epoll_create1(EPOLL_CLOEXEC), k, e, err = 0, ret = 1;
	ssize_t got;

	if (!cs || !req || !buf || ep < 0) {
		side_fail(r, ENOMEM, "client setup");
		goto out;
	}
	for (i = 0; i < n; i++)
		cs[i].fd = -1;
	for (i = 0; i < n; i++) {
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = i };

		cs[i].fd = client_connect(a->dst, 1, r);
		if (cs[i].fd < 0)
			goto out;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev)) {
			side_fail(r, errno, "epoll_ctl");
			goto out;
		}
	}
	for (i = 0; i < n && !err; i++)
		err = rr_send(&cs[i], req, size);
	while (!err && !bench_stop && now_ns() < a->end) {
		k = epoll_wait(ep, evs, 64, 1000);
		for (e = 0; e < k && !err; e++) {
			struct rr_conn *x = &cs[evs[e].data.u64];

			got = recv(x->fd, buf, size - x->got, MSG_DONTWAIT);
			if (got < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (got <= 0) {
				err = got ? errno : EPIPE;
				break;
			}
			for (j = 0; j < (size_t)got; j++)
				if ((uint8_t)buf[j] != x->seq)
					err = EBADMSG;
			x->got += (size_t)got;
			if (err || x->got < size)
				continue;
			tx_done(a, idx, &c, x->t0, now_ns());
			x->seq++;
			err = rr_send(x, req, size);
		}
	}
	if (err) {
		side_fail(r, err, "client request");
		goto out;
	}
	a->shm->clients[idx] = c;
	ret = bench_stop ? 1 : 0;
out:
	for (i = 0; cs && i < n; i++)
		if (cs[i].fd >= 0)
			close(cs[i].fd);
	if (ep >= 0)
		close(ep);
	free(cs);
	free(req);
	free(buf);
	return ret;
}

/* Client, streaming: wl->size writes for the duration, then an end chunk; the
 * window ends when the server's byte count comes back, so it covers delivery.
 * No half-close: with sockmap redirects, a reply racing the FIN and the
 * sockets' teardown was lost about once in 300 runs (kernel 6.18).
 */
/* The duplex stream's content: each aligned 8 bytes hold their own offset
 * in the stream, so the echo is checked byte for byte and a byte out of
 * place names where it came from.
 */
static void duplex_fill(uint64_t *w, size_t len, uint64_t at)
{
	size_t i;

	for (i = 0; i < len / 8; i++)
		w[i] = at + i * 8;
}

/* The echo's n bytes at stream offset at, in (scratch: room for n + 16):
 * 0 or -1, with *bad the first offset that differs and *from what it holds.
 */
static int duplex_check(const char *in, size_t n, uint64_t at, uint64_t *want,
			uint64_t *bad, uint64_t *from)
{
	uint64_t base = at & ~7ULL;
	size_t skip = at - base, i;

	duplex_fill(want, skip + n + 8, base);
	if (!memcmp((char *)want + skip, in, n))
		return 0;
	for (i = 0; i < n && in[i] == ((char *)want)[skip + i]; i++)
		;
	*bad = at + i;
	/* the whole word at or after it, if the echo holds one */
	i = (8 - (at + i) % 8) % 8 + i;
	*from = ~0ULL;
	if (i + 8 <= n)
		memcpy(from, in + i, 8);
	return -1;
}

/* Client, full duplex: wl->size writes for the duration while reading the
 * echo, from one poll() loop (non-blocking, whatever --client says: two
 * blocked writers would deadlock); then a half-close and the rest of the
 * echo to EOF. The window's figure is the bytes echoed back in it, one way.
 * Every byte of the echo is checked (duplex_fill).
 */
int run_client_duplex(const struct workload *wl, struct sockaddr_in dst,
		      uint64_t warmup_ns, uint64_t dur_ns,
		      struct bench_shm *shm)
{
	struct side_result *r = &shm->client;
	uint64_t t, measure = 0, end, warm = 0, sent = 0, got = 0, bad, from;
	uint64_t *want;
	size_t off = 0;
	char *buf, *in;
	int fd, shut = 0;
	ssize_t n;

	buf = malloc(wl->size);
	in = malloc(wl->size);
	want = malloc(wl->size + 24);
	if (!buf || !in || !want)
		return side_fail(r, ENOMEM, "malloc");
	fd = client_connect(dst, 0, r);
	if (fd < 0 || fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK))
		return side_fail(r, errno, "client socket");
	t = now_ns();
	end = t + warmup_ns + dur_ns;
	while (!bench_stop) {
		struct pollfd p = { .fd = fd, .events = POLLIN | (shut ? 0 : POLLOUT) };

		if (!measure && t >= end - dur_ns) {
			measure = t;
			warm = got;
		}
		if (!shut && t >= end) {
			shutdown(fd, SHUT_WR);
			shut = 1;
		}
		if (poll(&p, 1, BENCH_IO_TIMEOUT_S * 1000) != 1)
			return side_fail(r, ETIMEDOUT, "client poll");
		if (!shut && (p.revents & POLLOUT)) {
			if (!off) /* wl->size is a multiple of 8 */
				duplex_fill((uint64_t *)buf, wl->size, sent);
			n = write(fd, buf + off, wl->size - off);
			if (n > 0) {
				sent += n;
				off = (off + n) % wl->size;
			} else if (n < 0 && errno != EAGAIN) {
				return side_fail(r, errno, "client write");
			}
		}
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			n = read(fd, in, wl->size);
			if (n < 0 && errno != EAGAIN)
				return side_fail(r, errno, "client read");
			if (!n)
				break; /* the server's half-close after the echo */
			if (n > 0 && duplex_check(in, n, got, want, &bad, &from)) {
				snprintf(r->msg, sizeof(r->msg),
					 "echo differs at byte %llu of %llu "
					 "sent: it holds byte %llu's",
					 (unsigned long long)bad,
					 (unsigned long long)sent,
					 (unsigned long long)from);
				r->err = EBADMSG;
				return 1;
			}
			if (n > 0)
				got += n;
		}
		shm->bytes_sent = sent;
		shm->bytes_recv = got;
		t = now_ns();
	}
	t = now_ns();
	if (got != sent)
		return side_fail(r, EBADMSG, "echo shorter than what was sent");
	if (!measure)
		measure = t;
	/* the window ends when the last byte is back */
	shm->bytes = got - warm;
	shm->elapsed_ns = t - measure;
	close(fd);
	free(buf);
	free(in);
	free(want);
	return bench_stop ? 1 : 0;
}

int run_client_stream(const struct workload *wl, struct sockaddr_in dst,
		      uint64_t warmup_ns, uint64_t dur_ns,
		      struct bench_shm *shm)
{
	struct side_result *r = &shm->client;
	uint64_t t, measure = 0, end, warm_bytes = 0, sent = 0, total;
	char *buf;
	int fd, err;

	buf = malloc(wl->size);
	if (!buf)
		return side_fail(r, ENOMEM, "malloc");
	memset(buf, STREAM_DATA, wl->size);
	fd = client_connect(dst, 0, r);
	if (fd < 0)
		return 1;
	t = now_ns();
	end = t + warmup_ns + dur_ns;
	while (!bench_stop && t < end) {
		if (!measure && t >= end - dur_ns) {
			measure = t;
			warm_bytes = sent;
		}
		err = write_full(fd, buf, wl->size);
		if (err)
			return side_fail(r, err, "client write");
		sent += wl->size;
		shm->bytes_sent = sent;
		t = now_ns();
	}
	buf[0] = STREAM_END;
	err = write_full(fd, buf, wl->size);
	if (err)
		return side_fail(r, err, "client write end");
	sent += wl->size;
	shm->bytes_sent = sent;
	err = read_full(fd, (char *)&total, sizeof(total));
	if (err)
		return side_fail(r, err, "read byte count");
	t = now_ns();
	if (total != sent)
		return side_fail(r, EBADMSG, "server byte count differs");
	if (!measure)
		measure = t;
	shm->bytes = sent - warm_bytes;
	shm->elapsed_ns = t - measure;
	close(fd);
	free(buf);
	return bench_stop ? 1 : 0;
}

/* A client of the conn workload, closed loop: connect, request, response
 * (timed from the connect), the server's EOF, close. Every byte of a
 * request carries its sequence number, checked in the echo.
 */
static int conn_client(int idx, void *arg)
{
	const struct worker_args *a = arg;
	struct side_result *r = &a->shm->client;
	size_t size = a->wl->size;
	struct tx_count c = {};
	uint64_t t0, t1 = now_ns();
	char buf[64], eof;
	int fd, err;
	uint8_t seq;
	ssize_t n;

	if (size > sizeof(buf))
		return side_fail(r, EMSGSIZE, "conn request size");
	for (seq = idx; !bench_stop && t1 < a->end; seq++) {
		memset(buf, seq, size);
		t0 = now_ns();
		fd = client_connect(a->dst, 1, r);
		if (fd < 0)
			return 1;
		err = write_full(fd, buf, size);
		if (!err)
			err = read_full(fd, buf, size);
		t1 = now_ns();
		if (!err) {
			/* the server's close: a non-blocking client waits */
			do
				n = read(fd, &eof, 1);
			while (n < 0 && errno == EAGAIN && !io_wait(fd, POLLIN));
			err = n < 0 ? errno : n ? EBADMSG : 0;
		}
		close(fd);
		if (err)
			return side_fail(r, err, "conn request");
		if ((uint8_t)buf[0] != seq || (uint8_t)buf[size - 1] != seq)
			return side_fail(r, EBADMSG, "echo mismatch");
		tx_done(a, idx, &c, t0, t1);
	}
	a->shm->clients[idx] = c;
	return bench_stop ? 1 : 0;
}

/* Client of rr and conn: wl->clients closed loops at once, their counts
 * summed and their latency slices joined; the window ends with the last
 * response.
 */
int run_client_loops(const struct workload *wl, struct sockaddr_in dst,
		     uint64_t warmup_ns, uint64_t dur_ns,
		     struct bench_shm *shm)
{
	struct worker_args a = { .wl = wl, .dst = dst, .shm = shm };
	const struct tx_count *c;
	uint64_t last = 0;
	int i, ret;

	a.slice = shm->lat_cap / wl->clients;
	a.measure = now_ns() + warmup_ns;
	a.end = a.measure + dur_ns;
	ret = run_workers(wl->clients,
			  wl->kind != WL_RR ? conn_client :
			  wl->conns > 1	    ? rr_many_client :
					      rr_client,
			  &a);
	for (i = 0; i < wl->clients; i++) {
		c = &shm->clients[i];
		shm->tx += c->tx;
		shm->tx_all += c->tx_all;
		memmove(shm->lat_ns + shm->nlat, shm->lat_ns + i * a.slice,
			c->nlat * sizeof(shm->lat_ns[0]));
		shm->nlat += c->nlat;
		if (c->end_ns > last)
			last = c->end_ns;
	}
	shm->elapsed_ns = last > a.measure ? last - a.measure : 0;
	return ret;
}
