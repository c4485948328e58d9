// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* `sidelane bench`, the server end of a measurement: echo, stream sink,
 * connection per request, many connections over one epoll loop (see
 * bench.c).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench/internal.h"

/* Servers that accept until told end only once nothing new came for
 * BENCH_SETTLE_MS: connects the client made before it ended may still sit
 * in a relay's accept queue and reach the fixed upstream port later; they
 * must land here, not on the next measurement's server.
 */
static bool srv_done(const struct bench_shm *shm)
{
	return (__atomic_load_n(&shm->stop, __ATOMIC_RELAXED) &&
		now_ns() - __atomic_load_n(&shm->srv_last_ns, __ATOMIC_RELAXED) >
			BENCH_SETTLE_MS * 1000000ull) ||
	       bench_stop;
}

static void srv_accepted(struct bench_shm *shm)
{
	__atomic_store_n(&shm->srv_last_ns, now_ns(), __ATOMIC_RELAXED);
}

/* A server of the conn workload: accept, echo one request, close first (the
 * client's end keeps no TIME_WAIT, so its ports last), until shm->stop.
 */
static int conn_server(int idx, void *arg)
{
	const struct worker_args *a = arg;
	struct pollfd pfd = { .fd = a->lfd, .events = POLLIN };
	struct side_result *r = &a->shm->server;
	char buf[64];
	int fd, err;

	(void)idx;
	if (a->wl->size > sizeof(buf))
		return side_fail(r, EMSGSIZE, "conn request size");
	while (!srv_done(a->shm)) {
		if (poll(&pfd, 1, 20) != 1)
			continue;
		/* all servers wake; one gets the connection */
		fd = accept4(a->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0 && (errno == EAGAIN || errno == EINTR ||
			       errno == ECONNABORTED))
			continue;
		if (fd < 0)
			return side_fail(r, errno, "accept");
		srv_accepted(a->shm);
		set_timeouts(fd, 1);
		err = read_full(fd, buf, a->wl->size);
		if (!err)
			err = write_full(fd, buf, a->wl->size);
		close(fd);
		/* past the client's end, a cut connection is its leftover */
		if (err && !__atomic_load_n(&a->shm->stop, __ATOMIC_RELAXED))
			return side_fail(r, err, "server conn");
	}
	return 0;
}

/* A server of one connection of rr or stream: echo each request until the
 * client closes (rr), or count the stream's chunks up to the end chunk,
 * answer with the byte count and close only after the client did (stream).
 */
/* rr: echo each request until the client closes (it ends after its
 * duration).
 */
static int serve_echo(int fd, char *buf, const struct workload *wl,
		      struct side_result *r)
{
	int err;

	for (;;) {
		err = read_full(fd, buf, wl->size);
		if (err == EPIPE)
			return 0; /* client done */
		if (!err)
			err = write_full(fd, buf, wl->size);
		if (err)
			return side_fail(r, err, "server echo");
	}
}

/* duplex: echo until the client's half-close, then ours. */
static int serve_duplex(int fd, char *buf, const struct workload *wl,
			struct bench_shm *shm)
{
	uint64_t total = 0;
	ssize_t n;
	int err;

	while ((n = read(fd, buf, wl->size)) > 0) {
		err = write_full(fd, buf, n);
		if (err)
			return side_fail(&shm->server, err, "server echo");
		total += n;
	}
	shm->bytes_all = total;
	shutdown(fd, SHUT_WR);
	return n ? side_fail(&shm->server, errno, "server read") : 0;
}

/* stream: take chunks until the end chunk (the client sends it after its
 * duration), answer with the count, wait for the client's close.
 */
static int serve_stream(int fd, char *buf, const struct workload *wl,
			struct bench_shm *shm)
{
	struct side_result *r = &shm->server;
	uint64_t total = 0;
	ssize_t n;
	int err;

	do {
		err = read_full(fd, buf, wl->size);
		if (!err && buf[0] != STREAM_DATA && buf[0] != STREAM_END)
			err = EBADMSG;
		if (err)
			return side_fail(r, err, "server read");
		total += wl->size;
		shm->bytes_recv = total;
	} while (buf[0] == STREAM_DATA);
	shm->bytes_all = total;
	err = write_full(fd, (char *)&total, sizeof(total));
	if (err)
		return side_fail(r, err, "server reply");
	/* wait for the client's close (EOF): closing first could drop the
	 * redirected reply with the client's psock
	 */
	n = read(fd, buf, 1);
	return n ? side_fail(r, n < 0 ? errno : EBADMSG, "server wait EOF") : 0;
}

static int serve_one(int idx, void *arg)
{
	const struct worker_args *a = arg;
	const struct workload *wl = a->wl;
	struct bench_shm *shm = a->shm;
	int fd, ret;
	char *buf;

	(void)idx;
	buf = malloc(wl->size);
	if (!buf)
		return side_fail(&shm->server, ENOMEM, "malloc");
	/* each server takes one of the clients' connections */
	fd = accept4(a->lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0) {
		ret = side_fail(&shm->server, errno == EAGAIN ? ETIMEDOUT : errno,
				"accept");
		free(buf);
		return ret;
	}
	close(a->lfd);
	set_timeouts(fd, wl->kind == WL_RR);
	ret = wl->kind == WL_RR	    ? serve_echo(fd, buf, wl, &shm->server) :
	      wl->kind == WL_DUPLEX ? serve_duplex(fd, buf, wl, shm) :
				      serve_stream(fd, buf, wl, shm);
	close(fd);
	free(buf);
	return ret;
}

/* A server of an rr workload with many connections a client: echo what
 * comes on every connection it accepts, one epoll loop, until shm->stop.
 */
static int serve_many(int idx, void *arg)
{
	const struct worker_args *a = arg;
	struct side_result *r = &a->shm->server;
	struct epoll_event ev = { .events = EPOLLIN }, evs[64];
	int ep, k, e, fd, err, ret = 1;
	char *buf = malloc(BENCH_STREAM_CHUNK);
	ssize_t n;

	(void)idx;
	ep = epoll_create1(EPOLL_CLOEXEC);
	ev.data.fd = a->lfd;
	if (!buf || ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, a->lfd, &ev)) {
		ret = side_fail(r, buf ? errno : ENOMEM, "server setup");
		goto out;
	}
	while (!srv_done(a->shm)) {
		k = epoll_wait(ep, evs, 64, 20);
		for (e = 0; e < k; e++) {
			fd = evs[e].data.fd;
			if (fd == a->lfd) {
				/* the other servers race for it: EAGAIN */
				while ((fd = accept4(a->lfd, NULL, NULL,
						     SOCK_CLOEXEC)) >= 0) {
					srv_accepted(a->shm);
					set_timeouts(fd, 1);
					ev.data.fd = fd;
					epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
				}
				continue;
			}
			n = recv(fd, buf, BENCH_STREAM_CHUNK, MSG_DONTWAIT);
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			err = n > 0 ? write_full(fd, buf, n) : 0;
			if (n <= 0 || err)
				close(fd); /* the client's close, or its end */
		}
	}
	ret = 0;
out:
	if (ep >= 0)
		close(ep);
	free(buf);
	return ret;
}

/* Server: listen on sa (port 0: any), report the port on port_pipe, then
 * serve with wl->clients processes: one connection each (rr, stream), or
 * connections until the parent says stop (conn).
 */
int run_server(const struct workload *wl, struct sockaddr_in sa,
	       int port_pipe, struct side_result *r,
	       struct bench_shm *shm)
{
	socklen_t salen = sizeof(sa);
	int lfd, one = 1;
	uint16_t port;

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	/* a fixed port: the last round's connection may be in TIME_WAIT */
	if (lfd >= 0 && sa.sin_port)
		setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    listen(lfd, wl->kind == WL_CONN ? 128 :
			wl->conns > 1	   ? SOMAXCONN :
					     wl->clients) ||
	    getsockname(lfd, (struct sockaddr *)&sa, &salen))
		return side_fail(r, errno, "server listen");
	port = ntohs(sa.sin_port);
	if (write(port_pipe, &port, sizeof(port)) != sizeof(port))
		return side_fail(r, errno, "report port");
	close(port_pipe);

	/* conn polls, to see the stop; serve_one's accept() waits
	 * BENCH_IO_TIMEOUT_S at most (SO_RCVTIMEO)
	 */
	if ((wl->kind == WL_CONN || wl->conns > 1) &&
	    fcntl(lfd, F_SETFL, O_NONBLOCK))
		return side_fail(r, errno, "listener O_NONBLOCK");
	set_timeouts(lfd, 0);
	return run_workers(wl->clients,
			   wl->kind == WL_CONN ? conn_server :
			   wl->conns > 1       ? serve_many :
						 serve_one,
			   &(struct worker_args){ .wl = wl, .lfd = lfd,
						  .shm = shm });
}
