// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The proxy: the relay buffers, taken from a per-worker pool only while
 * bytes wait (see proxy.c).
 */
#define _GNU_SOURCE
#include "proxy/internal.h"

/* ---- buffers ---- */

int buf_take(struct sl_worker *p, struct sl_buf *b)
{
	if (b->data)
		return 0;
	/* a connection accepted before a reload changed the size has its own */
	b->data = p->n_pool && b->size == p->pool_size ? p->pool[--p->n_pool] :
							 malloc(b->size);
	b->head = 0;
	return b->data ? 0 : -ENOMEM;
}

void buf_give(struct sl_worker *p, struct sl_buf *b)
{
	if (!b->data || b->len)
		return;
	if (p->n_pool < SL_BUF_POOL && b->size == p->pool_size)
		p->pool[p->n_pool++] = b->data;
	else
		free(b->data);
	b->data = NULL;
	b->head = 0;
}

void buf_pool_size(struct sl_worker *p, size_t size)
{
	if (size == p->pool_size)
		return;
	while (p->n_pool)
		free(p->pool[--p->n_pool]);
	p->pool_size = size;
}

/* Nothing open for SL_TRIM_IDLE_MS: the pool and what malloc keeps of
 * freed buffers go back to the system, so RSS returns to its idle size.
 */
void buf_trim(struct sl_worker *p)
{
	if (p->st.active) {
		p->idle_since = 0;
		return;
	}
	if (!p->idle_since) {
		p->idle_since = p->now;
		return;
	}
	if (p->idle_since == UINT64_MAX ||
	    p->now - p->idle_since < SL_TRIM_IDLE_MS)
		return;
	while (p->n_pool)
		free(p->pool[--p->n_pool]);
	malloc_trim(0);
	p->idle_since = UINT64_MAX; /* done until a connection comes */
}

/* Read from fd into the free part of b. What read(2) returns. */
ssize_t buf_read(struct sl_buf *b, int fd)
{
	size_t tail = (b->head + b->len) % b->size, room = b->size - b->len;
	size_t first = room < b->size - tail ? room : b->size - tail;
	struct iovec iov[2] = { { b->data + tail, first },
				{ b->data, room - first } };
	ssize_t n;

	n = readv(fd, iov, room > first ? 2 : 1);
	if (n > 0)
		b->len += n;
	return n;
}

/* Write b's bytes to fd (no SIGPIPE). What send(2) returns. */
ssize_t buf_write(struct sl_buf *b, int fd)
{
	size_t first = b->len < b->size - b->head ? b->len : b->size - b->head;
	struct iovec iov[2] = { { b->data + b->head, first },
				{ b->data, b->len - first } };
	struct msghdr msg = { .msg_iov = iov,
			      .msg_iovlen = b->len > first ? 2 : 1 };
	ssize_t n;

	n = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n > 0) {
		b->head = (b->head + n) % b->size;
		b->len -= n;
		if (!b->len)
			b->head = 0; /* next read lands in one piece */
	}
	return n;
}

/* The same for a TLS side, one record call on the contiguous part: bytes
 * moved, 0 for close_notify, or -1 with errno EAGAIN (s->rd_want/wr_want
 * say which event to wait for) or EPROTO (fatal; already logged).
 */
static ssize_t tls_io_result(enum sl_tls_io r, size_t n, uint32_t *want)
{
	*want = 0;
	switch (r) {
	case SL_TLS_OK:
		return (ssize_t)n;
	case SL_TLS_EOF:
		return 0;
	case SL_TLS_WANT_READ:
	case SL_TLS_WANT_WRITE:
		*want = r == SL_TLS_WANT_READ ? EPOLLIN : EPOLLOUT;
		errno = EAGAIN;
		return -1;
	default:
		errno = EPROTO;
		return -1;
	}
}

ssize_t tls_buf_read(struct sl_buf *b, struct sl_side *s)
{
	size_t tail = (b->head + b->len) % b->size, room = b->size - b->len;
	size_t first = room < b->size - tail ? room : b->size - tail, n = 0;
	enum sl_tls_io r;
	ssize_t ret;

	r = sl_tls_read(s->tls, b->data + tail, first, &n);
	ret = tls_io_result(r, n, &s->rd_want);
	if (ret > 0)
		b->len += ret;
	return ret;
}

/* A write retried after a WANT passes the same front bytes, as OpenSSL
 * requires; the second part of a wrapped ring goes in a second record.
 */
ssize_t tls_buf_write(struct sl_buf *b, struct sl_side *s)
{
	ssize_t ret, done = 0;
	int i;

	for (i = 0; i < 2 && b->len; i++) {
		size_t first = b->len < b->size - b->head ? b->len :
							     b->size - b->head;
		size_t n = 0;

		enum sl_tls_io r;

		r = sl_tls_write(s->tls, b->data + b->head, first, &n);
		ret = tls_io_result(r, n, &s->wr_want);
		if (ret <= 0)
			return done ? done : -1;
		b->head = (b->head + ret) % b->size;
		b->len -= ret;
		if (!b->len)
			b->head = 0;
		done += ret;
	}
	return done;
}
