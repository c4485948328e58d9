// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* `sidelane bench`, what both ends of a measurement (server.c, client.c)
 * use: the child's start, socket timeouts, full reads and writes, worker
 * processes (see bench.c).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench/internal.h"

/* ---- the two ends of a measurement (children) --------------------------- */

/* Record what failed for the parent; returns the child's exit status. */
int side_fail(struct side_result *r, int err, const char *what)
{
	r->err = err;
	snprintf(r->msg, sizeof(r->msg), "%s: %s", what, strerror(err));
	return 1;
}

/* Move the calling process into cgroup: its sockets will belong to it. */
int enter_cgroup(const char *cgroup)
{
	char path[PATH_MAX + 16];
	int fd, n, err = 0;

	snprintf(path, sizeof(path), "%s/cgroup.procs", cgroup);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return errno;
	n = dprintf(fd, "%d\n", (int)getpid());
	if (n < 0)
		err = errno;
	close(fd);
	return err;
}

void set_timeouts(int fd, int nodelay)
{
	struct timeval tv = { .tv_sec = BENCH_IO_TIMEOUT_S };
	int one = 1;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (nodelay)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* A non-blocking socket's EAGAIN: wait in poll() for events, as an event
 * loop would. 0 to retry, else a positive errno (ETIMEDOUT).
 */
int io_wait(int fd, short events)
{
	struct pollfd p = { .fd = fd, .events = events };
	int n;

	if (!(fcntl(fd, F_GETFL) & O_NONBLOCK))
		return EAGAIN; /* a blocking socket's SO_*TIMEO ran out */
	do
		n = poll(&p, 1, BENCH_IO_TIMEOUT_S * 1000);
	while (n < 0 && errno == EINTR && !bench_stop);
	return n > 0 ? 0 : n ? errno : ETIMEDOUT;
}

/* 0, or a positive errno (EPIPE when the peer closed, EINTR on a stop).
 * Not sl_io_full(): a bench stop (SIGINT) must end the wait at once.
 */
int write_full(int fd, const char *buf, size_t len)
{
	ssize_t n;

	while (len) {
		n = write(fd, buf, len);
		if (n < 0) {
			if (errno == EINTR && !bench_stop)
				continue;
			if (errno == EAGAIN && !io_wait(fd, POLLOUT))
				continue;
			return errno;
		}
		buf += n;
		len -= n;
	}
	return 0;
}

/* 0, EPIPE on a premature EOF, or a positive errno. */
int read_full(int fd, char *buf, size_t len)
{
	ssize_t n;

	while (len) {
		n = read(fd, buf, len);
		if (n < 0) {
			if (errno == EINTR && !bench_stop)
				continue;
			if (errno == EAGAIN && !io_wait(fd, POLLIN))
				continue;
			return errno;
		}
		if (n == 0)
			return EPIPE;
		buf += n;
		len -= n;
	}
	return 0;
}

/* Run fn(i, arg) in n (at most BENCH_CLIENTS_MAX) processes: this one
 * (i = 0) and n - 1 children that die with it. 0 when every one returned 0,
 * else 1.
 */
int run_workers(int n, int (*fn)(int, void *), void *arg)
{
	pid_t pid[BENCH_CLIENTS_MAX], self = getpid();
	int i, st, ret;

	fflush(NULL);
	for (i = 1; i < n; i++) {
		pid[i] = fork();
		if (pid[i] < 0) {
			n = i;
			ret = 1;
			goto reap;
		}
		if (!pid[i]) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			_exit(getppid() == self ? fn(i, arg) : 1);
		}
	}
	ret = fn(0, arg);
reap:
	for (i = 1; i < n; i++)
		if (waitpid(pid[i], &st, 0) < 0 || !WIFEXITED(st) ||
		    WEXITSTATUS(st))
			ret = 1;
	return ret;
}
