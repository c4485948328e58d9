// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The sidecar proxy of the sidelane binary (see proxy.h), hitch's design on
 * epoll: level-triggered epoll loops, non-blocking sockets.
 *
 * - Workers: proxy.workers loops, each a thread with its own epoll, its own
 *   listening sockets (one SO_REUSEPORT group per address: the kernel spreads
 *   new connections by their 4-tuple), its own connections, timers, splice
 *   slots, resolver and counters. Nothing on the data path is shared; the
 *   only shared word is the count of open connections (proxy.max_conns).
 *   The first worker binds (a port 0 becomes a port); the others join its
 *   addresses. A drain or a stop closes every worker's listeners.
 *
 * - Level-triggered: interest is recomputed from the connection's state after
 *   every event (read while the buffer towards the other side has room, write
 *   while the buffer towards this side has data), so back-pressure is just
 *   "EPOLLIN not armed"; nothing has to be drained to EAGAIN, one read per
 *   event keeps connections fair, and a missed edge cannot stall a stream.
 *   epoll_ctl is only called when the wanted set changes.
 * - Timers: both timeouts are the same for every connection, so a FIFO list
 *   per timeout is already sorted by deadline (connect: by start; idle: by
 *   last activity, a connection moves to the tail when bytes move). The loop
 *   pops expired heads: O(1) per event, O(expired) per tick, no wheel needed.
 * - Ambassador upstreams: a numeric address is parsed once in sl_proxy_new; a
 *   name is resolved per connection (so DNS changes are seen) by a small
 *   resolver thread pool that hands results back through an eventfd. The
 *   connect timeout covers resolution and connect; every address returned is
 *   tried in turn.
 * - Teardown: conn_close() only. Refusals and failures end with an RST (the
 *   client sees the stream was cut, not an empty answer); done, idle and
 *   shutdown close with FIN unless data would be lost. Closed connections are
 *   freed after the epoll batch, so later events of the batch never touch
 *   freed memory.
 * - A side that resets does not take down what it sent before: the other
 *   side still gets it, then the RST (conn_drain), as a direct peer would.
 *
 * Files: this one is the connection's state machine (sockets, teardown,
 * the spliced download's gate, relay, connecting upstream, timers);
 * accept.c starts a connection and checks its destinations against policy,
 * handshake.c runs mTLS and the identity policy, resolve.c resolves
 * ambassador names, buf.c owns the buffers, worker.c the workers, their listeners and
 * loops and the public functions, splice.c the hand-off to the kernel.
 * internal.h is what they share.
 */
#define _GNU_SOURCE
#include "proxy/internal.h"

uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool sa_eq(const struct sockaddr_storage *a,
	   const struct sockaddr_storage *b)
{
	uint8_t ia[16], ib[16];
	uint16_t pa, pb;

	if (sl_sockaddr_key(a, ia, &pa) || sl_sockaddr_key(b, ib, &pb))
		return false;
	return pa == pb && !memcmp(ia, ib, 16);
}

/* Is dst one of our own listeners? Relaying there would loop forever. */
bool is_own_listener(const struct sl_worker *p,
		     const struct sockaddr_storage *dst)
{
	unsigned int i;

	for (i = 0; i < p->n_ls; i++)
		if (p->ls[i]->fd >= 0 && sa_eq(dst, &p->ls[i]->addr))
			return true;
	return false;
}

/* ---- lists ---- */

static void list_append(struct sl_list *l, struct sl_conn *c)
{
	c->next = NULL;
	c->prev = l->tail;
	if (l->tail)
		l->tail->next = c;
	else
		l->head = c;
	l->tail = c;
}

static void list_del(struct sl_list *l, struct sl_conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		l->head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		l->tail = c->prev;
	c->prev = c->next = NULL;
}

void timer_set(struct sl_conn *c, int which)
{
	if (c->tlist >= 0)
		list_del(&c->set->timers[c->tlist], c);
	c->tlist = which;
	if (which >= 0)
		list_append(&c->set->timers[which], c);
}

/* Bytes moved: the idle deadline starts again (tail of the idle list). */
static void conn_touch(struct sl_worker *p, struct sl_conn *c)
{
	if (c->t_last == p->now)
		return;
	c->t_last = p->now;
	if (c->tlist == T_IDLE)
		timer_set(c, T_IDLE);
}

/* ---- sockets ---- */

/* Unread bytes: TCP's close() resets (RFC 2525 2.17), but bytes an app
 * socket redirected into the app side's socket sit in its psock, where
 * tcp_close() does not look, and it would send a FIN. Reset ourselves, so
 * the app sees the same either way. (The upstream side is never a
 * redirect target.)
 */
static bool has_unread(int fd)
{
	char b;

	return fd >= 0 && recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

void reset_on_close(int fd, bool on)
{
	struct linger lg = { .l_onoff = on, .l_linger = 0 };

	/* linger {1, 0}: close() sends an RST instead of a FIN */
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

void close_fd(int fd, bool abort)
{
	if (fd < 0)
		return;
	reset_on_close(fd, abort);
	close(fd);
}

static int sock_error(int fd)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len))
		return errno;
	return err;
}

void set_nodelay(int fd)
{
	int one = 1;

	/* we forward what we read at once; the app's own batching already
	 * shaped the stream, Nagle here would only add a round trip
	 */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Register s for want; a side that is finished (written shut, nothing left
 * to read) leaves epoll: level-triggered EPOLLHUP would otherwise fire on
 * every wait while the other direction still drains.
 */
void side_arm(struct sl_worker *p, struct sl_side *s, uint32_t want)
{
	struct epoll_event ev = { .events = want, .data.ptr = s };

	if (s->fd < 0)
		return;
	if (!want && s->wr_shut) {
		if (s->registered)
			epoll_ctl(p->epfd, EPOLL_CTL_DEL, s->fd, NULL);
		s->registered = false;
		return;
	}
	if (s->registered && s->armed == want)
		return;
	if (epoll_ctl(p->epfd, s->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD,
		      s->fd, &ev)) {
		pr_warn("proxy: epoll_ctl: %s\n", strerror(errno));
		return; /* the connection will time out */
	}
	s->registered = true;
	s->armed = want;
}

/* Accept on every listener (EPOLLIN), or pause them (0). */
void listeners_arm(struct sl_worker *p, uint32_t events)
{
	unsigned int i;

	for (i = 0; i < p->n_ls; i++) {
		struct epoll_event ev = { .events = events,
					  .data.ptr = p->ls[i] };

		if (p->ls[i]->fd >= 0)
			epoll_ctl(p->epfd, EPOLL_CTL_MOD, p->ls[i]->fd, &ev);
	}
}

/* ---- teardown: the one way a connection ends ---- */

const char *const sl_direction_name[SL_DIR_NR] = {
	[SL_DIR_OUTBOUND] = "outbound",
	[SL_DIR_INBOUND] = "inbound",
	[SL_DIR_AMBASSADOR] = "ambassador",
};

enum sl_direction dir_of(const struct sl_listener *l)
{
	return l->inbound ? SL_DIR_INBOUND :
	       l->transparent ? SL_DIR_OUTBOUND :
				SL_DIR_AMBASSADOR;
}

void count_close(struct sl_worker *p, const struct sl_listener *l,
		 enum sl_close_reason reason)
{
	STAT_ADD(p, closed[reason], 1);
	STAT_ADD(p, closed_dir[dir_of(l)][reason], 1);
}

/* After a failure, s already has its FIN (the failed side sent one first
 * and we passed it on): a plain close lets s's kernel still deliver what
 * it queued, and a later write of its peer gets the RST, as from a direct
 * peer that closed. An RST now would throw the queued bytes away.
 */
static bool keeps_fin(const struct sl_conn *c, const struct sl_side *s)
{
	return c->failed && s != c->failed && s->wr_shut && !s->err;
}

/* ---- the spliced download's gate ---- */

static void down_unwait(struct sl_worker *p, struct sl_conn *c)
{
	struct sl_conn **pp;

	for (pp = &p->down_waiters; *pp; pp = &(*pp)->wnext)
		if (*pp == c) {
			*pp = c->wnext;
			break;
		}
	c->down_waiting = false;
}

/* Must what the proxy writes into the app's socket, or a FIN or RST it
 * passes on, wait for bytes the download half redirected there? They go by
 * the psock's work queue and no event says when they are in: the
 * connection is looked at again on the next tick (1 ms) while any wait.
 */
static bool down_wait(struct sl_worker *p, struct sl_conn *c)
{
	if (!c->sp.down || !sl_splice_down_inflight(p->splicer, &c->sp,
						      c->app.fd))
		return false;
	if (!c->down_waiting) {
		c->down_waiting = true;
		c->wnext = p->down_waiters;
		p->down_waiters = c;
	}
	return true;
}

/* The access log's line for a relayed connection (user/lib/accesslog.c only
 * queues it: no I/O here).
 */
static void log_relay(struct sl_worker *p, const struct sl_conn *c,
		      enum sl_close_reason reason, const char *why,
		      const char *dst, const char *id, bool tls)
{
	char line[2048], ts[40], peer[64], jdst[320], jwhy[300], jid[600];
	const char *kind = c->l && c->l->inbound	   ? "inbound" :
			   c->l && c->l->transparent ? "outbound" :
						       "ambassador";
	/* a reload may turn the log on (sl_proxy_set_alog) */
	struct sl_alog *alog = __atomic_load_n(&p->alog, __ATOMIC_ACQUIRE);
	struct timespec now;
	int n;

	if (!alog)
		return;
	clock_gettime(CLOCK_REALTIME, &now);
	sl_time_str((uint64_t)now.tv_sec * 1000000000ULL + now.tv_nsec, ts,
		    sizeof(ts));
	sl_sockaddr_str(&c->peer, peer, sizeof(peer));
	if (sl_json_escape(jdst, sizeof(jdst), dst) < 0 ||
	    sl_json_escape(jwhy, sizeof(jwhy), why ? why : "") < 0 ||
	    sl_json_escape(jid, sizeof(jid), id ? id : "") < 0)
		return;
	n = snprintf(line, sizeof(line),
		     "{\"ts\":\"%s\",\"kind\":\"relay\",\"listener\":\"%s\","
		     "\"peer\":\"%s\",\"dst\":%s,\"bytes_up\":%llu,"
		     "\"bytes_down\":%llu,\"tls\":\"%s\",\"tls_peer\":%s,"
		     "\"rule\":%u,\"reason\":\"%s\",\"detail\":%s,"
		     "\"splice\":\"%s\",\"bytes_up_spliced\":%llu,"
		     "\"bytes_up_fallback\":%llu,\"msgs_up_spliced\":%llu,"
		     "\"msgs_up_fallback\":%llu,\"bytes_down_spliced\":%llu,"
		     "\"bytes_down_fallback\":%llu,\"msgs_down_spliced\":%llu,"
		     "\"msgs_down_fallback\":%llu,\"duration_ms\":%llu}",
		     ts, kind, peer, jdst, (unsigned long long)c->bytes_up,
		     (unsigned long long)c->bytes_down,
		     !tls ? "none" : c->app.tls ? "terminated" : "originated", jid,
		     c->rule_id, sl_close_reason_name[reason], jwhy,
		     c->sp_tried ? sl_splice_result_name[c->sp_result] : "none",
		     (unsigned long long)c->sp_counts.half[SL_SPD_UP].bytes,
		     (unsigned long long)c->sp_counts.half[SL_SPD_UP].relayed_bytes,
		     (unsigned long long)c->sp_counts.half[SL_SPD_UP].msgs,
		     (unsigned long long)c->sp_counts.half[SL_SPD_UP].relayed,
		     (unsigned long long)c->sp_counts.half[SL_SPD_DOWN].bytes,
		     (unsigned long long)c->sp_counts.half[SL_SPD_DOWN].relayed_bytes,
		     (unsigned long long)c->sp_counts.half[SL_SPD_DOWN].msgs,
		     (unsigned long long)c->sp_counts.half[SL_SPD_DOWN].relayed,
		     (unsigned long long)(p->now - c->t_start));
	if (n > 0 && (size_t)n < sizeof(line))
		sl_alog_write(alog, line, (size_t)n);
}

void conn_close(struct sl_worker *p, struct sl_conn *c,
		enum sl_close_reason reason, const char *why)
{
	char peer[64], dst[300];
	unsigned int last = c->dst_i ? c->dst_i - 1 : 0;
	size_t pending = c->to_up.len + c->to_app.len;
	struct sl_tls_conn *tls;
	const char *id;
	bool quiet, abort;

	if (c->state == ST_DEAD)
		return;
	if (c->sp.slot >= 0) {
		sl_splice_counts(p->splicer, &c->sp, &c->sp_counts);
		c->bytes_up += c->sp_counts.half[SL_SPD_UP].bytes;
		c->bytes_down += c->sp_counts.half[SL_SPD_DOWN].bytes;
	}
	if (c->down_waiting)
		down_unwait(p, c);
	if (c->dst.n)
		sl_sockaddr_str(&c->dst.a[last], dst, sizeof(dst));
	else if (c->l && !c->l->transparent)
		snprintf(dst, sizeof(dst), "%s:%u", c->l->host, c->l->port);
	else /* transparent, no original destination: say where it came in */
		snprintf(dst, sizeof(dst), "? via %s",
			 sl_sockaddr_str(&c->l->addr, peer, sizeof(peer)));
	sl_sockaddr_str(&c->peer, peer, sizeof(peer));
	tls = c->app.tls ? c->app.tls : c->up.tls;
	id = tls ? sl_tls_peer_id(tls) : NULL;
	/* one line per refused or failed connection; normal ends under -v */
	quiet = reason == SL_CLOSE_DONE || reason == SL_CLOSE_IDLE_TIMEOUT ||
		reason == SL_CLOSE_SHUTDOWN;
	sl_log(quiet ? SL_LOG_DEBUG : SL_LOG_INFO,
	       "proxy: %s: %s -> %s%s%s%s, up %llu B, down %llu B, %llu ms%s%s\n",
	       sl_close_reason_name[reason], peer, dst, why ? " (" : "",
	       why ? why : "", why ? ")" : "", (unsigned long long)c->bytes_up,
	       (unsigned long long)c->bytes_down,
	       (unsigned long long)(p->now - c->t_start),
	       id ? ", tls peer " : tls ? ", tls" : "", id ? id : "");
	log_relay(p, c, reason, why, dst, id, tls != NULL);
	/* frees only OpenSSL's state: what follows is the TCP close */
	sl_tls_conn_free(c->app.tls);
	sl_tls_conn_free(c->up.tls);
	c->app.tls = c->up.tls = NULL;
	c->hs = NULL;

	/* FIN for a finished stream, and for idle/shutdown when nothing is
	 * lost; RST for everything else, so the app does not take a cut
	 * stream for a complete one
	 */
	abort = reason != SL_CLOSE_DONE &&
		(c->failed || pending ||
		 (reason != SL_CLOSE_IDLE_TIMEOUT &&
		  reason != SL_CLOSE_SHUTDOWN));
	sl_splice_stop(p->splicer, &c->sp);
	close_fd(c->app.fd,
		 (abort && !keeps_fin(c, &c->app)) || has_unread(c->app.fd));
	close_fd(c->up.fd, abort && !keeps_fin(c, &c->up));
	c->app.fd = c->up.fd = -1;
	if (c->res)
		c->res->c = NULL; /* the resolver's answer will be dropped */
	c->res = NULL;
	timer_set(c, -1);
	STAT_SUB(p, buffered, pending);
	STAT_SUB(p, active, 1);
	STAT_SUB(p, active_dir[dir_of(c->l)], 1);
	__atomic_fetch_sub(&p->grp->active, 1, __ATOMIC_RELAXED);
	count_close(p, c->l, reason);
	c->reason = reason;
	c->state = ST_DEAD;
	list_append(&p->dead, c); /* freed after this epoll batch */
}

static void conn_free(struct sl_worker *p, struct sl_conn *c)
{
	settings_release(p, c);
	listener_release(p, c->l);
	free(c->to_up.data);
	free(c->to_app.data);
	free(c);
}

void reap_dead(struct sl_worker *p)
{
	struct sl_conn *c;

	while ((c = p->dead.head)) {
		list_del(&p->dead, c);
		conn_free(p, c);
	}
}

/* End a connection after c->failed failed, counted as a reset: RSTs both
 * ways (but see keeps_fin). In relay, conn_drain() calls it once the other
 * side has all the failed one sent.
 */
static void conn_reset(struct sl_worker *p, struct sl_conn *c)
{
	struct sl_side *s = c->failed;
	char why[128];

	snprintf(why, sizeof(why), "%s: %s", s == &c->app ? "app" : "upstream",
		 strerror(s->err));
	conn_close(p, c, SL_CLOSE_RESET, why);
}

/* ---- relay ---- */

static struct sl_side *other(struct sl_conn *c, struct sl_side *s)
{
	return s == &c->app ? &c->up : &c->app;
}

/* The buffer s reads into / writes from. */
static struct sl_buf *buf_from(struct sl_conn *c, struct sl_side *s)
{
	return s == &c->app ? &c->to_up : &c->to_app;
}

static struct sl_buf *buf_to(struct sl_conn *c, struct sl_side *s)
{
	return s == &c->app ? &c->to_app : &c->to_up;
}

/* s failed (RST, EPIPE, ...). What was on its way to s is lost, as it would
 * be on a direct connection. s leaves epoll (a reset socket is ready
 * forever) and is only read from now on, for what its kernel still holds;
 * conn_update() then drains all that s sent to the other side.
 */
static void side_failed(struct sl_worker *p, struct sl_conn *c,
			struct sl_side *s, int err)
{
	struct sl_buf *b = buf_to(c, s);

	if (s->err)
		return;
	s->err = err ? err : EIO;
	if (!c->failed)
		c->failed = s;
	STAT_SUB(p, buffered, b->len);
	b->len = b->head = 0;
	buf_give(p, b);
	if (s->registered)
		epoll_ctl(p->epfd, EPOLL_CTL_DEL, s->fd, NULL);
	s->registered = false;
}

/* Has everything written to s been sent (SIOCOUTQNSD == 0)? Then an RST no
 * longer throws away bytes still queued. Sent is not acknowledged: on a
 * lossy path a tail in the retransmit queue can still be lost to the RST
 * (the loopback and veth hops sidelane serves do not lose segments).
 */
static bool side_sent(const struct sl_side *s)
{
	int unsent = 0;

	return ioctl(s->fd, SIOCOUTQNSD, &unsent) || !unsent;
}

/* Write what is waiting for s; for a failed s, drop it. */
static void side_flush(struct sl_worker *p, struct sl_conn *c, struct sl_side *s)
{
	struct sl_buf *b = buf_to(c, s);
	ssize_t n;

	if (!b->len || s->fd < 0 || c->state != ST_RELAY)
		return;
	if (s->err) {
		STAT_SUB(p, buffered, b->len);
		b->len = b->head = 0;
		buf_give(p, b);
		return;
	}
	/* behind what the download half redirected, never before it */
	if (s == &c->app && down_wait(p, c))
		return;
	n = s->tls ? tls_buf_write(b, s) : buf_write(b, s->fd);
	if (n < 0) {
		if (errno != EAGAIN && errno != EINTR)
			side_failed(p, c, s, errno);
		return;
	}
	STAT_SUB(p, buffered, n);
	if (s == &c->up) {
		c->bytes_up += n;
		STAT_ADD(p, bytes_up, n);
	} else {
		c->bytes_down += n;
		STAT_ADD(p, bytes_down, n);
		sl_splice_app_written(p->splicer, &c->sp, c->bytes_down);
	}
	buf_give(p, b);
	conn_touch(p, c);
}

/* Read from s into the buffer towards the other side, then try to pass it
 * on at once (saves a wakeup). A failed s gives what its kernel kept, then
 * ends.
 */
static void side_fill(struct sl_worker *p, struct sl_conn *c, struct sl_side *s)
{
	struct sl_buf *b = buf_from(c, s);
	struct sl_side *o = other(c, s);
	ssize_t n, got = 0;
	int err = 0;

	if (s->rd_eof || b->len == b->size)
		return; /* back-pressure: the kernel keeps it for now */
	if (buf_take(p, b)) {
		side_failed(p, c, s, ENOMEM);
		return;
	}
	/* spliced: nothing may overtake what this read takes */
	sl_splice_hold(p->splicer, &c->sp,
		       s == &c->app ? SL_SPD_UP : SL_SPD_DOWN);
	/* TLS: what OpenSSL already decrypted gets no EPOLLIN, so take it
	 * while there is room; a plain socket gets one read per event
	 */
	do {
		n = s->tls ? tls_buf_read(b, s) : buf_read(b, s->fd);
		if (n > 0)
			got += n;
	} while (n > 0 && s->tls && b->len < b->size && sl_tls_pending(s->tls));
	if (n < 0)
		err = errno;
	if (got) {
		STAT_ADD(p, buffered, got);
		/* what goes nowhere (o failed) does not keep it alive */
		if (!o->err)
			conn_touch(p, c);
	}
	if (n < 0 && (err == EAGAIN || err == EINTR) && !s->err)
		goto out;
	if (n <= 0) {
		if (n < 0)
			side_failed(p, c, s, err);
		else if (!s->err)
			s->fin = true;
		s->rd_eof = true;
	}
out:
	if (got)
		side_flush(p, c, o);
	else
		buf_give(p, b);
}

/* Our half-close towards s: on TLS a close_notify first, which may have to
 * wait for the socket (s->sh_want; called again from conn_update).
 */
static void side_shut(struct sl_worker *p, struct sl_conn *c, struct sl_side *s)
{
	if (s->tls && !s->err) {
		enum sl_tls_io r = sl_tls_shutdown(s->tls);

		s->sh_want = 0;
		if (r == SL_TLS_WANT_READ || r == SL_TLS_WANT_WRITE) {
			s->sh_want = r == SL_TLS_WANT_READ ? EPOLLIN : EPOLLOUT;
			return;
		}
		if (r != SL_TLS_OK)
			side_failed(p, c, s, EPROTO);
	}
	if (!s->err && shutdown(s->fd, SHUT_WR))
		side_failed(p, c, s, errno);
	s->wr_shut = true;
}

/* c->failed failed: the other side o gets what the failed one sent before
 * (our buffer, then what its kernel kept), at o's pace, bounded by the idle
 * timeout; then an RST that follows the data, as from a direct peer. If the
 * failed side had sent a FIN, o gets that instead (see keeps_fin). What o
 * sends meanwhile can go nowhere: read and dropped, so a peer that writes
 * before it reads is not stuck.
 */
static void conn_drain(struct sl_worker *p, struct sl_conn *c)
{
	struct sl_side *s = c->failed, *o = other(c, s);
	struct sl_buf *b = buf_from(c, s);
	uint32_t want = o->wr_want ? o->wr_want : EPOLLOUT;
	int one = 1;

	/* one read per event, as everywhere: o's EPOLLOUT brings the next */
	side_fill(p, c, s);
	if (o->err || o->fd < 0) {
		conn_reset(p, c);
		return;
	}
	if (!b->len && s->rd_eof) {
		/* the upstream's last bytes, redirected, go before its end */
		if (s == &c->up && down_wait(p, c))
			return;
		if (s->fin && !o->wr_shut)
			side_shut(p, c, o);
		if (o->err) {
			conn_reset(p, c);
			return;
		}
		if (o->sh_want && !o->wr_shut) { /* close_notify waits */
			side_arm(p, o, o->sh_want | (o->rd_eof ? 0 : EPOLLIN));
			return;
		}
		if (o->wr_shut || side_sent(o)) {
			conn_reset(p, c);
			return;
		}
		/* the last bytes wait in o's kernel (its peer's window is
		 * shut): EPOLLOUT once they have all left, not before
		 */
		if (!o->lowat && setsockopt(o->fd, IPPROTO_TCP,
					    TCP_NOTSENT_LOWAT, &one,
					    sizeof(one))) {
			conn_reset(p, c); /* no way to wait but spinning */
			return;
		}
		o->lowat = true;
	}
	if (!o->rd_eof)
		want |= EPOLLIN;
	side_arm(p, o, want);
}

/* After any event: pass EOFs on, end a finished connection, re-arm. */
void conn_update(struct sl_worker *p, struct sl_conn *c)
{
	struct sl_side *sides[2] = { &c->app, &c->up };
	int i;

	if (c->state == ST_DEAD)
		return;
	if (sl_splice_broken(p->splicer, &c->sp)) {
		conn_close(p, c, SL_CLOSE_RESET,
			   "download: an overlapping retransmission could not "
			   "be cut");
		return;
	}
	if (c->state == ST_RELAY) {
		/* bytes OpenSSL holds for a side whose buffer was full: now
		 * that it may have room, no EPOLLIN will announce them
		 */
		for (i = 0; i < 2 && !c->failed; i++)
			if (sides[i]->tls && !sides[i]->rd_eof &&
			    buf_from(c, sides[i])->len < buf_from(c, sides[i])->size &&
			    sl_tls_pending(sides[i]->tls))
				side_fill(p, c, sides[i]);
		for (i = 0; i < 2 && !c->failed; i++) {
			struct sl_side *s = sides[i], *o = other(c, s);

			/* s said EOF and all it sent is out: half-close o */
			if (!s->rd_eof || buf_from(c, s)->len || o->wr_shut)
				continue;
			if (s == &c->up && down_wait(p, c))
				continue;
			side_shut(p, c, o);
		}
		if (c->failed) {
			conn_drain(p, c);
			return;
		}
		if (c->app.wr_shut && c->up.wr_shut) {
			conn_close(p, c, SL_CLOSE_DONE, NULL);
			return;
		}
		/* spliced: all we held is written, the kernel's way is open */
		if (!c->to_up.len)
			sl_splice_release(p->splicer, &c->sp, SL_SPD_UP);
		if (!c->to_app.len)
			sl_splice_release(p->splicer, &c->sp, SL_SPD_DOWN);
	} else if (c->failed) {
		/* nothing was relayed yet: nothing to deliver first */
		conn_reset(p, c);
		return;
	}
	for (i = 0; i < 2; i++) {
		struct sl_side *s = sides[i];
		struct sl_buf *in = buf_from(c, s), *out = buf_to(c, s);
		uint32_t want = 0;

		if (s == &c->up && c->state != ST_RELAY)
			continue; /* not connected yet: armed by conn_connect */
		if (s == c->hs)
			continue; /* armed by hs_step */
		if (!s->rd_eof && in->len < in->size)
			want |= s->rd_want ? s->rd_want : EPOLLIN;
		/* a waiting download is looked at by timers_run() */
		if (out->len && !(s == &c->app && c->down_waiting))
			want |= s->wr_want ? s->wr_want : EPOLLOUT;
		if (!s->wr_shut)
			want |= s->sh_want;
		side_arm(p, s, want);
	}
}

void conn_established(struct sl_worker *p, struct sl_conn *c)
{
	c->state = ST_RELAY;
	c->t_last = p->now;
	timer_set(c, T_IDLE);
	set_nodelay(c->up.fd);
	/* what the app sent while we connected goes out now */
	side_flush(p, c, &c->up);
	/* plaintext both ways: the upload half may leave user space */
	c->sp_tried = true;
	c->sp_result = !p->splice		   ? SL_SPLICE_DISABLED :
		       c->app.tls || c->up.tls ? SL_SPLICE_TLS :
						 sl_splice_start(p->splicer,
								 c->app.fd,
								 c->up.fd,
								 p->st.active <=
									 SL_SPLICE_DOWN_BUSY,
								 &c->sp);
	STAT_ADD(p, splice[c->sp_result], 1);
	sl_splice_app_written(p->splicer, &c->sp, c->bytes_down);
	conn_update(p, c);
}

/* ---- connecting upstream, socket events ---- */

/* The upstream is connected: mTLS first for a mesh destination. */
static void up_ready(struct sl_worker *p, struct sl_conn *c)
{
	if (c->mesh)
		hs_start(p, c, &c->up);
	else
		conn_established(p, c);
}

static void set_mark(struct sl_worker *p, int fd)
{
	if (!p->mark)
		return;
	/* the capture hook skips marked sockets: without the mark our own
	 * upstream connection would be captured again (needs CAP_NET_ADMIN)
	 */
	if (setsockopt(fd, SOL_SOCKET, SO_MARK, &p->mark, sizeof(p->mark)) &&
	    !p->mark_warned) {
		pr_warn("proxy: SO_MARK %#x: %s; upstream sockets unmarked\n",
			p->mark, strerror(errno));
		p->mark_warned = true;
	}
}

/* Connect to the next candidate of c->dst; on failure try the one after. */
void conn_connect(struct sl_worker *p, struct sl_conn *c)
{
	int err = EHOSTUNREACH;

	c->state = ST_CONNECTING;
	while (c->dst_i < c->dst.n) {
		unsigned int i = c->dst_i++;
		const struct sockaddr_storage *sa = &c->dst.a[i];
		int fd;

		if (is_own_listener(p, sa)) {
			conn_close(p, c, SL_CLOSE_LOOP, NULL);
			return;
		}
		fd = socket(sa->ss_family,
			    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			err = errno;
			continue;
		}
		set_mark(p, fd);
		reset_on_close(fd, true);
		c->mesh = c->l->inbound ? NULL : mesh_find(p, c->set, sa);
		err = 0;
		if (connect(fd, (const struct sockaddr *)sa, c->dst.len[i]))
			err = errno;
		if (!err || err == EINPROGRESS) {
			c->up.fd = fd;
			c->up.registered = false;
			side_arm(p, &c->up, EPOLLOUT);
			if (!err) /* loopback may connect at once */
				up_ready(p, c);
			return;
		}
		close(fd);
	}
	conn_close(p, c, SL_CLOSE_CONNECT_FAILED, strerror(err));
}

/* The upstream socket became writable (or failed) while connecting. */
static void up_connected(struct sl_worker *p, struct sl_conn *c)
{
	int err = sock_error(c->up.fd);

	if (!err) {
		up_ready(p, c);
		return;
	}
	close(c->up.fd); /* also leaves epoll */
	c->up.fd = -1;
	c->up.registered = false;
	if (c->dst_i < c->dst.n) {
		conn_connect(p, c);
		return;
	}
	conn_close(p, c, SL_CLOSE_CONNECT_FAILED, strerror(err));
}

void side_event(struct sl_worker *p, struct sl_side *s, uint32_t ev)
{
	struct sl_conn *c = s->c;

	if (c->state == ST_DEAD || s->err)
		return; /* closed, or failed, earlier in this batch */
	if (s == &c->up && c->state == ST_CONNECTING) {
		up_connected(p, c);
		return;
	}
	if (s == c->hs) {
		hs_step(p, c);
		return;
	}
	if (ev & EPOLLERR) {
		int err = sock_error(s->fd);

		/* what s sent before the error is still readable */
		if (err)
			side_failed(p, c, s, err);
	}
	/* a TLS side may wait for either event in either direction (a
	 * read wanting a write, ...): try both, each is cheap when idle
	 */
	if ((s->tls || (ev & EPOLLOUT)) && !s->err)
		side_flush(p, c, s);
	if ((s->tls || (ev & (EPOLLIN | EPOLLHUP))) && !s->err)
		side_fill(p, c, s);
	conn_update(p, c);
}

/* ---- timers ---- */

/* Spliced downloads waiting for their redirected bytes (down_wait): each
 * is looked at again and re-queued if it still waits. Any still waiting?
 */
static bool down_waiters_run(struct sl_worker *p)
{
	struct sl_conn *c, *w = p->down_waiters;

	p->down_waiters = NULL;
	while ((c = w)) {
		w = c->wnext;
		c->down_waiting = false;
		if (c->state != ST_RELAY)
			continue;
		side_flush(p, c, &c->app);
		conn_update(p, c);
	}
	return p->down_waiters;
}

/* c's idle time is up: closed, unless the kernel moved bytes past us
 * since (activity too: its timer restarts) or its splice broke (the
 * relay takes over).
 */
static void idle_expired(struct sl_worker *p, struct sl_conn *c)
{
	struct sl_splice_slot n;
	uint64_t moved;

	sl_splice_counts(p->splicer, &c->sp, &n);
	moved = n.half[SL_SPD_UP].bytes + n.half[SL_SPD_DOWN].bytes;
	if (sl_splice_broken(p->splicer, &c->sp)) {
		conn_update(p, c); /* resets it */
		return;
	}
	if (moved != c->sp.seen) {
		c->sp.seen = moved;
		conn_touch(p, c);
		return;
	}
	conn_close(p, c, SL_CLOSE_IDLE_TIMEOUT, NULL);
}

/* One settings' timer lists: close what expired, *next the nearest
 * deadline left.
 */
static void settings_timers_run(struct sl_worker *p, struct sl_settings *set,
				uint64_t *next)
{
	struct sl_conn *c;

	if (set->connect_ms) {
		while ((c = set->timers[T_CONNECT].head) &&
		       c->t_conn + set->connect_ms <= p->now)
			conn_close(p, c, SL_CLOSE_CONNECT_TIMEOUT,
				   c->state == ST_RESOLVING ? "resolving" :
							      NULL);
		if (c && c->t_conn + set->connect_ms < *next)
			*next = c->t_conn + set->connect_ms;
	}
	if (set->hs_ms) {
		while ((c = set->timers[T_HANDSHAKE].head) &&
		       c->t_hs + set->hs_ms <= p->now) {
			sl_tls_handshake_timeout(c->hs->tls);
			conn_close(p, c, SL_CLOSE_TLS_TIMEOUT, NULL);
		}
		if (c && c->t_hs + set->hs_ms < *next)
			*next = c->t_hs + set->hs_ms;
	}
	if (set->idle_ms) {
		while ((c = set->timers[T_IDLE].head) &&
		       c->t_last + set->idle_ms <= p->now)
			idle_expired(p, c);
		if (c && c->t_last + set->idle_ms < *next)
			*next = c->t_last + set->idle_ms;
	}
}

/* Close what expired; the ms until the next deadline (at most SL_TICK_MS). */
int timers_run(struct sl_worker *p)
{
	uint64_t next = p->now + SL_TICK_MS;
	struct sl_settings *set;

	if (down_waiters_run(p))
		next = p->now + 1;
	/* a connection closed here stays on the dead list, holding its
	 * settings, until reap_dead(): the walk is safe
	 */
	for (set = p->set; set; set = set->next)
		settings_timers_run(p, set, &next);
	/* rotation: new connections get new files; a bad file is refused
	 * by sl_tls_reload, which keeps and says so
	 */
	if (p->tls && !p->idx &&
	    (p->now >= p->reload_at || (p->reload_now && *p->reload_now))) {
		if (p->reload_now)
			*p->reload_now = 0;
		sl_tls_reload(p->tls);
		p->reload_at = p->now + p->set->reload_ms;
	}
	if (p->tls && !p->idx && p->reload_at < next)
		next = p->reload_at;
	if (p->accept_paused) {
		if (p->accept_resume <= p->now) {
			listeners_arm(p, EPOLLIN);
			p->accept_paused = false;
		} else if (p->accept_resume < next) {
			next = p->accept_resume;
		}
	}
	return (int)(next - p->now);
}
