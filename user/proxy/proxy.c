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
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <linux/netfilter_ipv4.h> /* SO_ORIGINAL_DST */
#include <linux/netfilter_ipv6/ip6_tables.h> /* IP6T_SO_ORIGINAL_DST */
#include <linux/sockios.h> /* SIOCOUTQNSD */
#include "lib/addr.h"
#include "lib/json.h"
#include "lib/log.h"
#include "proxy/proxy.h"
#include "tls/tls.h"
#include "lib/accesslog.h"
#include "lib/cgroup.h"
#include "proxy/splice_user.h"
#include "lib/util.h"

#define SL_TICK_MS 100 /* longest epoll_wait: *stop and timers */
#define SL_EPOLL_BATCH 256
#define SL_ACCEPT_BATCH 64 /* accepts per listener event */
#define SL_ACCEPT_PAUSE_MS 100 /* after EMFILE/ENFILE/ENOMEM */
#define SL_ACCEPT_WARN_MS 10000 /* at most one such warning in this long */
#define SL_MAX_ADDRS 8 /* upstream candidates per connection */
#define SL_RESOLVERS 2 /* resolver threads, only if a name needs them */
#define SL_DEFAULT_BUFFER (64 * 1024)
#define SL_BUF_POOL 32 /* empty buffers a worker keeps for reuse */
#define SL_TRIM_IDLE_MS 1000 /* no connection this long: memory back */

const char *const sl_close_reason_name[SL_CLOSE_NR] = {
	[SL_CLOSE_DONE] = "done",
	[SL_CLOSE_NO_ORIG_DST] = "no-orig-dst",
	[SL_CLOSE_DENIED] = "denied",
	[SL_CLOSE_LOOP] = "loop",
	[SL_CLOSE_CONNECT_FAILED] = "connect-failed",
	[SL_CLOSE_CONNECT_TIMEOUT] = "connect-timeout",
	[SL_CLOSE_IDLE_TIMEOUT] = "idle-timeout",
	[SL_CLOSE_RESET] = "reset",
	[SL_CLOSE_RESOLVE_FAILED] = "resolve-failed",
	[SL_CLOSE_TOO_MANY] = "too-many",
	[SL_CLOSE_SHUTDOWN] = "shutdown",
	[SL_CLOSE_TLS_FAILED] = "tls-failed",
	[SL_CLOSE_TLS_TIMEOUT] = "tls-timeout",
	[SL_CLOSE_IDENTITY] = "identity-denied",
};

/* What an epoll event's data.ptr points at: each of these starts with it. */
enum ep_tag { TAG_LISTENER, TAG_SIDE, TAG_RESOLVER };

struct sl_addrs {
	unsigned int n;
	struct sockaddr_storage a[SL_MAX_ADDRS];
	socklen_t len[SL_MAX_ADDRS];
};

struct sl_listener {
	enum ep_tag tag;
	int fd;
	bool transparent;
	/* inbound: peers of other hosts; TLS terminated when configured, then
	 * relayed to the app on loopback at app_port, or (sk_lookup steering)
	 * at the port the peer dialed
	 */
	bool inbound;
	struct sockaddr_storage addr; /* bound address (port filled in) */
	socklen_t addrlen;
	/* ambassador only */
	char host[256];
	uint16_t port;
	bool numeric; /* up holds the address; else resolve per connection */
	struct sl_addrs up;
};

/* One direction's bytes in flight: a ring of size bytes, its memory taken
 * from the worker when bytes arrive and given back when it is empty (data
 * NULL): an idle or spliced connection holds no buffer.
 */
struct sl_buf {
	char *data;
	size_t size, head, len;
};

struct sl_conn;

/* One socket of a connection. */
struct sl_side {
	enum ep_tag tag;
	int fd; /* -1 when not open */
	uint32_t armed; /* events registered */
	bool registered;
	bool rd_eof; /* read returned 0, or nothing is left of a failed side */
	bool fin; /* rd_eof from a FIN the peer sent before any failure */
	bool wr_shut; /* we sent shutdown(SHUT_WR) */
	bool lowat; /* TCP_NOTSENT_LOWAT 1: EPOLLOUT means "all sent" */
	int err; /* it failed (RST, EPIPE, ...): the errno; out of epoll */
	struct sl_conn *c;
	/* TLS sides: what the last read / write / close_notify asked to wait
	 * for (EPOLLIN or EPOLLOUT; 0: the natural one)
	 */
	struct sl_tls_conn *tls;
	uint32_t rd_want, wr_want, sh_want;
};

/* ST_HANDSHAKE: c->hs runs its TLS handshake; inbound before the upstream
 * connect (nothing reaches the app unauthenticated), outbound after it.
 */
enum conn_state {
	ST_RESOLVING,
	ST_CONNECTING,
	ST_HANDSHAKE,
	ST_RELAY,
	ST_DEAD
};
enum { T_CONNECT, T_IDLE, T_HANDSHAKE, T_NR }; /* timer lists */

struct sl_resolve;

/* A connection: both sockets, a buffer per direction, its state. */
struct sl_conn {
	struct sl_side app, up;
	struct sl_buf to_up, to_app;
	enum conn_state state;
	enum sl_close_reason reason;
	uint64_t t_start, t_last; /* ms, monotonic */
	/* both include what the kernel moved, added at the end */
	uint64_t bytes_up, bytes_down;
	/* spliced: what sk_msg pushed, and what it sent the relay's way
	 * while spliced (user/proxy/splice.c); read at the end
	 */
	struct sl_splice_slot sp_counts;
	struct sl_conn *prev, *next; /* in a timer list, or the dead list */
	int tlist; /* T_CONNECT, T_IDLE or -1 */
	struct sl_listener *l;
	struct sockaddr_storage peer;
	socklen_t peerlen;
	struct sl_addrs dst; /* the original destination, or the upstream's */
	unsigned int dst_i; /* next candidate of dst to try */
	uint32_t rule_id; /* policy rule that decided (0: default) */
	struct sl_resolve *res; /* pending resolution */
	struct sl_side *failed; /* the side that failed first, or NULL */
	struct sl_side *hs; /* the side in ST_HANDSHAKE */
	uint64_t t_hs; /* ms, handshake start */
	uint64_t t_conn; /* ms, start of the connect phase (T_CONNECT) */
	const struct sl_mesh_dst *mesh; /* outbound mTLS to this destination */
	uint16_t app_port; /* inbound: the app port (host order) */
	/* both halves in the kernel (user/proxy/splice.c), or why not */
	struct sl_splice sp;
	enum sl_splice_result sp_result;
	bool sp_tried;
	/* in p->down_waiters: redirected bytes are still on their way into
	 * app.fd, and what the proxy would write, shut or reset there waits
	 */
	bool down_waiting;
	struct sl_conn *wnext;
};

struct sl_list {
	struct sl_conn *head, *tail;
};

/* A name to resolve for a connection; owned by the resolver lists. */
struct sl_resolve {
	struct sl_resolve *next;
	struct sl_conn *c; /* loop thread only; NULL once the conn ended */
	const char *host;
	uint16_t port;
	int gai_err;
	struct sl_addrs out;
};

struct sl_worker {
	struct sl_proxy *grp;
	unsigned int idx; /* 0: binds first, reloads the TLS files */
	const struct sl_worker *first; /* workers > 0: whose addresses to join */
	bool reuseport; /* more than one worker */
	pthread_t th;
	int err; /* what its loop returned */
	int epfd;
	struct sl_listener *ls;
	unsigned int n_ls;
	unsigned int connect_ms, idle_ms, max_conns;
	size_t bufsz;
	uint32_t mark;
	bool mark_warned;
	sl_policy_check_fn check;
	void *check_ctx;
	uint64_t now;
	struct sl_list timers[T_NR], dead;
	bool accept_paused;
	uint64_t accept_resume;
	uint64_t accept_warned, accept_pauses; /* rate of the warning */
	/* drain: listeners closed, open connections get until drain_end */
	unsigned int drain_ms;
	int drain_req; /* set by sl_proxy_drain() from any thread */
	bool draining;
	uint64_t drain_end;
	struct sl_proxy_stats st; /* written by the loop, read by anyone */
	char *pool[SL_BUF_POOL]; /* empty buffers of bufsz bytes */
	unsigned int n_pool;
	uint64_t idle_since; /* ms: no connection open since (0: some are) */
	struct sl_alog *alog; /* access log (NULL: none) */
	struct sl_splicer *splicer; /* NULL: the splice maps are not pinned */
	bool splice; /* proxy.splice */
	struct sl_conn *down_waiters; /* see sl_conn.down_waiting */
	/* TLS (NULL: none); copies of the config parts it needs */
	struct sl_tls_ctx *tls;
	unsigned int hs_ms, reload_ms;
	uint64_t reload_at;
	volatile sig_atomic_t *reload_now;
	unsigned int n_mesh, n_ids;
	struct sl_mesh_dst *mesh;
	struct sl_id_rule_cfg *ids;
	enum sl_action id_default;
	uint16_t app_port; /* inbound listener mode */
	struct {
		enum ep_tag tag;
		int efd; /* eventfd: results are waiting in done */
		pthread_mutex_t mu;
		pthread_cond_t cv;
		pthread_t th[SL_RESOLVERS];
		unsigned int n_th;
		bool quit;
		struct sl_resolve *todo, *todo_tail, *done;
	} rs;
};

/* The workers; what the public functions take. */
struct sl_proxy {
	unsigned int n;
	struct sl_worker **w;
	volatile sig_atomic_t *stop;
	int fatal; /* a loop failed: every worker stops */
	uint64_t active; /* open connections of all workers: proxy.max_conns */
};

#define STAT_ADD(p, f, v) __atomic_fetch_add(&(p)->st.f, (v), __ATOMIC_RELAXED)
#define STAT_SUB(p, f, v) __atomic_fetch_sub(&(p)->st.f, (v), __ATOMIC_RELAXED)

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool sa_eq(const struct sockaddr_storage *a,
		  const struct sockaddr_storage *b)
{
	uint8_t ia[16], ib[16];
	uint16_t pa, pb;

	if (sl_sockaddr_key(a, ia, &pa) || sl_sockaddr_key(b, ib, &pb))
		return false;
	return pa == pb && !memcmp(ia, ib, 16);
}

/* Is dst one of our own listeners? Relaying there would loop forever. */
static bool is_own_listener(const struct sl_worker *p,
			    const struct sockaddr_storage *dst)
{
	unsigned int i;

	for (i = 0; i < p->n_ls; i++)
		if (sa_eq(dst, &p->ls[i].addr))
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

static void timer_set(struct sl_worker *p, struct sl_conn *c, int which)
{
	if (c->tlist >= 0)
		list_del(&p->timers[c->tlist], c);
	c->tlist = which;
	if (which >= 0)
		list_append(&p->timers[which], c);
}

/* Bytes moved: the idle deadline starts again (tail of the idle list). */
static void conn_touch(struct sl_worker *p, struct sl_conn *c)
{
	if (c->t_last == p->now)
		return;
	c->t_last = p->now;
	if (c->tlist == T_IDLE)
		timer_set(p, c, T_IDLE);
}

/* ---- buffers ---- */

static int buf_take(struct sl_worker *p, struct sl_buf *b)
{
	if (b->data)
		return 0;
	b->data = p->n_pool ? p->pool[--p->n_pool] : malloc(p->bufsz);
	b->head = 0;
	return b->data ? 0 : -ENOMEM;
}

static void buf_give(struct sl_worker *p, struct sl_buf *b)
{
	if (!b->data || b->len)
		return;
	if (p->n_pool < SL_BUF_POOL)
		p->pool[p->n_pool++] = b->data;
	else
		free(b->data);
	b->data = NULL;
	b->head = 0;
}

/* Nothing open for SL_TRIM_IDLE_MS: the pool and what malloc keeps of
 * freed buffers go back to the system, so RSS returns to its idle size.
 */
static void buf_trim(struct sl_worker *p)
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
static ssize_t buf_read(struct sl_buf *b, int fd)
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
static ssize_t buf_write(struct sl_buf *b, int fd)
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

static ssize_t tls_buf_read(struct sl_buf *b, struct sl_side *s)
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
static ssize_t tls_buf_write(struct sl_buf *b, struct sl_side *s)
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

static void close_fd(int fd, bool abort)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	if (fd < 0)
		return;
	/* linger {1, 0}: close() sends an RST instead of a FIN */
	if (abort)
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
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

static void set_nodelay(int fd)
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
static void side_arm(struct sl_worker *p, struct sl_side *s, uint32_t want)
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

/* ---- teardown: the one way a connection ends ---- */

const char *const sl_direction_name[SL_DIR_NR] = {
	[SL_DIR_OUTBOUND] = "outbound",
	[SL_DIR_INBOUND] = "inbound",
	[SL_DIR_AMBASSADOR] = "ambassador",
};

static enum sl_direction dir_of(const struct sl_listener *l)
{
	return l->inbound ? SL_DIR_INBOUND :
	       l->transparent ? SL_DIR_OUTBOUND :
				SL_DIR_AMBASSADOR;
}

static void count_close(struct sl_worker *p, const struct sl_listener *l,
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
	struct timespec now;
	int n;

	if (!p->alog)
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
		sl_alog_write(p->alog, line, (size_t)n);
}

static void conn_close(struct sl_worker *p, struct sl_conn *c,
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
	sl_splice_stop(p->splicer, &c->sp, c->app.fd, c->up.fd);
	close_fd(c->app.fd,
		 (abort && !keeps_fin(c, &c->app)) || has_unread(c->app.fd));
	close_fd(c->up.fd, abort && !keeps_fin(c, &c->up));
	c->app.fd = c->up.fd = -1;
	if (c->res)
		c->res->c = NULL; /* the resolver's answer will be dropped */
	c->res = NULL;
	timer_set(p, c, -1);
	STAT_SUB(p, buffered, pending);
	STAT_SUB(p, active, 1);
	STAT_SUB(p, active_dir[dir_of(c->l)], 1);
	__atomic_fetch_sub(&p->grp->active, 1, __ATOMIC_RELAXED);
	count_close(p, c->l, reason);
	c->reason = reason;
	c->state = ST_DEAD;
	list_append(&p->dead, c); /* freed after this epoll batch */
}

static void conn_free(struct sl_conn *c)
{
	free(c->to_up.data);
	free(c->to_app.data);
	free(c);
}

static void reap_dead(struct sl_worker *p)
{
	struct sl_conn *c;

	while ((c = p->dead.head)) {
		list_del(&p->dead, c);
		conn_free(c);
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
static void conn_update(struct sl_worker *p, struct sl_conn *c)
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
			    buf_from(c, sides[i])->len < p->bufsz &&
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

static void conn_established(struct sl_worker *p, struct sl_conn *c)
{
	c->state = ST_RELAY;
	c->t_last = p->now;
	timer_set(p, c, T_IDLE);
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

/* ---- TLS ---- */

/* The mesh entry dst falls in (first match), or NULL: plain TCP. */
static const struct sl_mesh_dst *mesh_find(const struct sl_worker *p,
					   const struct sockaddr_storage *dst)
{
	uint8_t ip[16];
	uint16_t port;
	unsigned int i;

	if (!p->tls || sl_sockaddr_key(dst, ip, &port))
		return NULL;
	for (i = 0; i < p->n_mesh; i++)
		if (sl_cidr_contains(&p->mesh[i].cidr, AF_INET6, ip) &&
		    sl_ports_match(p->mesh[i].ports, p->mesh[i].n_ports,
				   ntohs(port)))
			return &p->mesh[i];
	return NULL;
}

/* The server of an outbound connection must be one of its mesh entry's
 * identities (none listed: any of the trust domain).
 */
static bool mesh_id_ok(void *arg, const char *id)
{
	const struct sl_mesh_dst *m = arg;
	unsigned int i;

	for (i = 0; i < m->n_ids; i++)
		if (sl_spiffe_match(m->ids[i], id))
			return true;
	return !m->n_ids;
}

/* An outbound connection's server is not one its mesh entry allows. */
static void id_refused(struct sl_worker *p, struct sl_conn *c, const char *id)
{
	char why[SL_CFG_ID_LEN + 64];

	snprintf(why, sizeof(why), "server %s is none of mesh %u's identities",
		 id ? id : "(none)", (unsigned int)(c->mesh - p->mesh) + 1);
	conn_close(p, c, SL_CLOSE_IDENTITY, why);
}

/* Identity policy, once per connection after its handshake: the server of
 * an outbound connection must be one of its mesh entry's identities (none
 * listed: any of the trust domain, which the handshake checked); the
 * client of an inbound one is judged by inbound.identities for the app
 * port. Closes c and returns false on a refusal.
 */
static bool identity_allowed(struct sl_worker *p, struct sl_conn *c)
{
	const char *id = sl_tls_peer_id(c->hs->tls);
	enum sl_action act = p->id_default;
	char why[SL_CFG_ID_LEN + 64];
	int i;

	if (c->hs == &c->up) {
		/* checked during the handshake already, but not for a
		 * resumed session
		 */
		if (mesh_id_ok((void *)c->mesh, id))
			return true;
		id_refused(p, c, id);
		return false;
	}
	i = sl_id_rules_decide(p->ids, p->n_ids, c->app_port, id, &act);
	if (act == SL_ACTION_ALLOW)
		return true;
	if (i >= 0)
		snprintf(why, sizeof(why), "client %s denied by identity rule "
			 "%d for port %u", id, i + 1, c->app_port);
	else
		snprintf(why, sizeof(why), "client %s: no identity rule for "
			 "port %u, default deny", id ? id : "(none)",
			 c->app_port);
	conn_close(p, c, SL_CLOSE_IDENTITY, why);
	return false;
}

static void conn_connect(struct sl_worker *p, struct sl_conn *c);

/* Drive c->hs's handshake one step; once done and allowed, go on: outbound
 * to relay, inbound to connecting the app.
 */
static void hs_step(struct sl_worker *p, struct sl_conn *c)
{
	struct sl_side *s = c->hs;

	switch (sl_tls_handshake(s->tls)) {
	case SL_TLS_WANT_READ:
		side_arm(p, s, EPOLLIN);
		return;
	case SL_TLS_WANT_WRITE:
		side_arm(p, s, EPOLLOUT);
		return;
	case SL_TLS_OK:
		break;
	default: /* counted and logged by tls.c, with the reason */
		if (sl_tls_fail_reason(s->tls) == SL_TLS_FAIL_IDENTITY)
			id_refused(p, c, sl_tls_peer_id(s->tls));
		else
			conn_close(p, c, SL_CLOSE_TLS_FAILED,
				   sl_tls_fail_name[sl_tls_fail_reason(s->tls)]);
		return;
	}
	if (!identity_allowed(p, c))
		return;
	c->hs = NULL;
	if (s == &c->up) {
		conn_established(p, c);
		return;
	}
	c->t_conn = p->now;
	timer_set(p, c, T_CONNECT);
	conn_connect(p, c);
	conn_update(p, c); /* the app side may read while we connect */
}

/* Start a handshake on s (an accepted inbound socket, or a connected
 * upstream to a mesh destination), with its own deadline.
 */
static void hs_start(struct sl_worker *p, struct sl_conn *c, struct sl_side *s)
{
	char key[64];
	int err;

	if (s == &c->up)
		sl_sockaddr_str(&c->dst.a[c->dst_i - 1], key, sizeof(key));
	err = sl_tls_conn_new(p->tls, s->fd,
			      s == &c->up ? SL_TLS_CLIENT : SL_TLS_SERVER,
			      s == &c->up ? key : NULL, &s->tls);
	if (err) {
		conn_close(p, c, SL_CLOSE_TLS_FAILED, strerror(-err));
		return;
	}
	if (s == &c->up)
		sl_tls_conn_expect_peer(s->tls, mesh_id_ok, (void *)c->mesh);
	c->state = ST_HANDSHAKE;
	c->hs = s;
	c->t_hs = p->now;
	timer_set(p, c, T_HANDSHAKE);
	hs_step(p, c);
}

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
static void conn_connect(struct sl_worker *p, struct sl_conn *c)
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
		c->mesh = c->l->inbound ? NULL : mesh_find(p, sa);
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

static void side_event(struct sl_worker *p, struct sl_side *s, uint32_t ev)
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

/* The proxy applies the kernel's policy to what it connects to on its own
 * (ambassador upstreams; the transparent path's single original destination
 * the same way): denied candidates are dropped, and with none left the
 * connection ends. Fails closed: any non-zero answer denies.
 */
static bool dst_allowed(struct sl_worker *p, struct sl_conn *c)
{
	uint32_t rule = 0, denied_rule = 0;
	unsigned int i, n = 0;
	bool denied = false;
	char why[64];

	if (!p->check)
		return true;
	for (i = 0; i < c->dst.n; i++) {
		if (p->check(p->check_ctx, (struct sockaddr *)&c->dst.a[i],
			     &rule)) {
			if (!denied)
				denied_rule = rule;
			denied = true;
			continue;
		}
		if (!n)
			c->rule_id = rule; /* the rule that allowed it */
		c->dst.a[n] = c->dst.a[i];
		c->dst.len[n] = c->dst.len[i];
		n++;
	}
	c->dst.n = n;
	if (n)
		return true;
	c->rule_id = denied_rule;
	snprintf(why, sizeof(why), "rule %u", denied_rule);
	conn_close(p, c, SL_CLOSE_DENIED, why);
	return false;
}

/* ---- resolver (ambassador names) ---- */

static void resolve_one(struct sl_resolve *r)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC,
				  .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICSERV };
	struct addrinfo *res = NULL, *ai;
	char port[8];

	snprintf(port, sizeof(port), "%u", r->port);
	r->gai_err = getaddrinfo(r->host, port, &hints, &res);
	if (r->gai_err)
		return;
	for (ai = res; ai && r->out.n < SL_MAX_ADDRS; ai = ai->ai_next) {
		if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
			continue;
		memcpy(&r->out.a[r->out.n], ai->ai_addr, ai->ai_addrlen);
		r->out.len[r->out.n++] = ai->ai_addrlen;
	}
	freeaddrinfo(res);
}

static void *resolver_main(void *arg)
{
	struct sl_worker *p = arg;
	uint64_t one = 1;

	pthread_mutex_lock(&p->rs.mu);
	for (;;) {
		struct sl_resolve *r;

		while (!p->rs.todo && !p->rs.quit)
			pthread_cond_wait(&p->rs.cv, &p->rs.mu);
		if (p->rs.quit)
			break;
		r = p->rs.todo;
		p->rs.todo = r->next;
		if (!p->rs.todo)
			p->rs.todo_tail = NULL;
		pthread_mutex_unlock(&p->rs.mu);

		resolve_one(r); /* blocking: the reason for this thread */

		pthread_mutex_lock(&p->rs.mu);
		r->next = p->rs.done;
		p->rs.done = r;
		if (write(p->rs.efd, &one, sizeof(one)) < 0)
			pr_warn("proxy: resolver eventfd: %s\n",
				strerror(errno));
	}
	pthread_mutex_unlock(&p->rs.mu);
	return NULL;
}

static int resolve_start(struct sl_worker *p, struct sl_conn *c)
{
	struct sl_resolve *r = calloc(1, sizeof(*r));

	if (!r)
		return -ENOMEM;
	r->c = c;
	r->host = c->l->host; /* lives as long as the proxy */
	r->port = c->l->port;
	c->res = r;
	c->state = ST_RESOLVING;
	pthread_mutex_lock(&p->rs.mu);
	if (p->rs.todo_tail)
		p->rs.todo_tail->next = r;
	else
		p->rs.todo = r;
	p->rs.todo_tail = r;
	pthread_cond_signal(&p->rs.cv);
	pthread_mutex_unlock(&p->rs.mu);
	return 0;
}

/* Answers are in: connect the connections that are still there. */
static void resolver_event(struct sl_worker *p)
{
	struct sl_resolve *r, *next;
	uint64_t cnt;

	if (read(p->rs.efd, &cnt, sizeof(cnt)) < 0 && errno != EAGAIN)
		pr_warn("proxy: resolver eventfd: %s\n", strerror(errno));
	pthread_mutex_lock(&p->rs.mu);
	r = p->rs.done;
	p->rs.done = NULL;
	pthread_mutex_unlock(&p->rs.mu);
	for (; r; r = next) {
		struct sl_conn *c = r->c;

		next = r->next;
		if (c) {
			c->res = NULL;
			if (r->gai_err || !r->out.n) {
				const char *why =
					r->gai_err ? gai_strerror(r->gai_err) :
						     "no IPv4/IPv6 address";

				conn_close(p, c, SL_CLOSE_RESOLVE_FAILED, why);
			} else {
				c->dst = r->out;
				if (dst_allowed(p, c))
					conn_connect(p, c);
			}
		}
		free(r);
	}
}

static int resolver_init(struct sl_worker *p)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &p->rs.tag };
	unsigned int i;
	int err;

	p->rs.tag = TAG_RESOLVER;
	p->rs.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (p->rs.efd < 0)
		return -errno;
	if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->rs.efd, &ev))
		return -errno;
	for (i = 0; i < SL_RESOLVERS; i++) {
		err = pthread_create(&p->rs.th[i], NULL, resolver_main, p);
		if (err)
			return -err;
		p->rs.n_th++;
	}
	return 0;
}

static void resolver_fini(struct sl_worker *p)
{
	struct sl_resolve *r, *next;
	unsigned int i;

	pthread_mutex_lock(&p->rs.mu);
	p->rs.quit = true;
	pthread_cond_broadcast(&p->rs.cv);
	pthread_mutex_unlock(&p->rs.mu);
	/* waits for a lookup in progress: at most the resolver's own timeout */
	for (i = 0; i < p->rs.n_th; i++)
		pthread_join(p->rs.th[i], NULL);
	for (r = p->rs.todo; r; r = next) {
		next = r->next;
		free(r);
	}
	for (r = p->rs.done; r; r = next) {
		next = r->next;
		free(r);
	}
	p->rs.todo = p->rs.todo_tail = p->rs.done = NULL;
	if (p->rs.efd >= 0)
		close(p->rs.efd);
	p->rs.efd = -1;
}

/* ---- accept ---- */

/* The destination the app asked for, from the capture hook's answer. */
static int orig_dst(int fd, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_storage local;
	socklen_t llen = sizeof(local);
	int level, opt;

	if (getsockname(fd, (struct sockaddr *)&local, &llen))
		return -errno;
	memset(ss, 0, sizeof(*ss));
	if (local.ss_family == AF_INET6) {
		level = SOL_IPV6;
		opt = IP6T_SO_ORIGINAL_DST;
		*len = sizeof(struct sockaddr_in6);
	} else {
		level = SOL_IP;
		opt = SO_ORIGINAL_DST;
		*len = sizeof(struct sockaddr_in);
	}
	if (getsockopt(fd, level, opt, ss, len))
		return -errno;
	if (ss->ss_family != AF_INET && ss->ss_family != AF_INET6)
		return -EAFNOSUPPORT;
	/* a connection made straight to us (no redirect) reads back as us */
	if (sa_eq(ss, &local))
		return -ELOOP;
	return 0;
}

/* An inbound connection goes to the app on loopback: at the port the peer
 * dialed (sk_lookup steered it here, the local address is still the one
 * it asked for), or at inbound.app_port when it dialed our listener.
 */
static int inbound_dst(struct sl_worker *p, const struct sl_listener *l,
		       int fd, struct sl_conn *c)
{
	struct sockaddr_storage local;
	struct sockaddr_in *in = (struct sockaddr_in *)&c->dst.a[0];
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&c->dst.a[0];
	socklen_t llen = sizeof(local);
	uint8_t ip[16];
	uint16_t port, own;

	if (getsockname(fd, (struct sockaddr *)&local, &llen) ||
	    sl_sockaddr_key(&local, ip, &port))
		return -EINVAL;
	sl_sockaddr_key(&l->addr, ip, &own);
	port = ntohs(port);
	if (port == ntohs(own))
		port = p->app_port;
	if (!port)
		return -ENOENT;
	if (port == ntohs(own))
		return -ELOOP;
	memset(&c->dst, 0, sizeof(c->dst));
	if (local.ss_family == AF_INET6) {
		in6->sin6_family = AF_INET6;
		in6->sin6_addr = in6addr_loopback;
		in6->sin6_port = htons(port);
		c->dst.len[0] = sizeof(*in6);
	} else {
		in->sin_family = AF_INET;
		in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		in->sin_port = htons(port);
		c->dst.len[0] = sizeof(*in);
	}
	c->dst.n = 1;
	c->app_port = port;
	return 0;
}

static void conn_accepted(struct sl_worker *p, struct sl_listener *l, int fd,
			  const struct sockaddr_storage *peer,
			  socklen_t peerlen)
{
	struct sl_conn *c;
	int err;

	STAT_ADD(p, accepted, 1);
	STAT_ADD(p, accepted_dir[dir_of(l)], 1);
	c = calloc(1, sizeof(*c));
	if (!c) {
		/* nothing to hang the usual teardown on */
		pr_warn("proxy: out of memory, refusing a connection\n");
		close_fd(fd, true);
		count_close(p, l, SL_CLOSE_TOO_MANY);
		return;
	}
	c->app.tag = c->up.tag = TAG_SIDE;
	c->app.c = c->up.c = c;
	c->app.fd = fd;
	c->up.fd = -1;
	c->tlist = -1;
	sl_splice_init(&c->sp);
	c->l = l;
	c->peer = *peer;
	c->peerlen = peerlen;
	c->t_start = c->t_last = c->t_conn = p->now;
	c->state = ST_CONNECTING;
	STAT_ADD(p, active, 1);
	STAT_ADD(p, active_dir[dir_of(l)], 1);

	if (__atomic_add_fetch(&p->grp->active, 1, __ATOMIC_RELAXED) >
		    p->max_conns &&
	    p->max_conns) {
		conn_close(p, c, SL_CLOSE_TOO_MANY, NULL);
		return;
	}
	if (l->transparent) {
		err = orig_dst(fd, &c->dst.a[0], &c->dst.len[0]);
		if (err == -ELOOP) {
			c->dst.n = 1;
			conn_close(p, c, SL_CLOSE_LOOP, NULL);
			return;
		}
		if (err) {
			conn_close(p, c, SL_CLOSE_NO_ORIG_DST, strerror(-err));
			return;
		}
		c->dst.n = 1;
		if (is_own_listener(p, &c->dst.a[0])) {
			conn_close(p, c, SL_CLOSE_LOOP, NULL);
			return;
		}
		if (!dst_allowed(p, c))
			return;
	} else if (l->inbound) {
		err = inbound_dst(p, l, fd, c);
		if (err) {
			conn_close(p, c, err == -ELOOP ? SL_CLOSE_LOOP :
					 SL_CLOSE_NO_ORIG_DST,
				   err == -ELOOP ? "app port is ours" :
				   "dialed the inbound listener itself and no "
				   "inbound.app_port");
			return;
		}
	} else if (l->numeric) {
		c->dst = l->up;
		if (!dst_allowed(p, c))
			return;
	}
	c->to_up.size = c->to_app.size = p->bufsz; /* memory on demand */
	set_nodelay(fd);
	if (l->inbound && p->tls) {
		/* nothing reaches the app before the peer is authenticated
		 * and allowed: the app connect waits for the handshake
		 */
		hs_start(p, c, &c->app);
		return;
	}
	timer_set(p, c, T_CONNECT);
	/* the app may send while we connect: that fills to_up, no further */
	side_arm(p, &c->app, EPOLLIN);
	if (!l->transparent && !l->numeric) {
		if (resolve_start(p, c))
			conn_close(p, c, SL_CLOSE_RESOLVE_FAILED,
				   strerror(ENOMEM));
		return;
	}
	conn_connect(p, c);
}

static void listeners_arm(struct sl_worker *p, uint32_t events)
{
	unsigned int i;

	for (i = 0; i < p->n_ls; i++) {
		struct epoll_event ev = { .events = events,
					  .data.ptr = &p->ls[i] };

		if (p->ls[i].fd >= 0)
			epoll_ctl(p->epfd, EPOLL_CTL_MOD, p->ls[i].fd, &ev);
	}
}

static void listener_event(struct sl_worker *p, struct sl_listener *l)
{
	int i;

	for (i = 0; i < SL_ACCEPT_BATCH; i++) {
		struct sockaddr_storage peer;
		socklen_t len = sizeof(peer);
		int fd;

		fd = accept4(l->fd, (struct sockaddr *)&peer, &len,
			     SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			conn_accepted(p, l, fd, &peer, len);
			continue;
		}
		if (errno == EAGAIN || errno == EINTR)
			return;
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
		    errno == ENOMEM) {
			/* level-triggered: the backlog would wake us at once
			 * again; pause accepting instead of spinning
			 */
			/* once in SL_ACCEPT_WARN_MS, with how often since */
			p->accept_pauses++;
			if (!p->accept_warned ||
			    p->now - p->accept_warned >= SL_ACCEPT_WARN_MS) {
				pr_warn("proxy: accept: %s; pausing %d ms (%llu "
					"time(s) since the last warning)\n",
					strerror(errno), SL_ACCEPT_PAUSE_MS,
					(unsigned long long)p->accept_pauses);
				p->accept_warned = p->now;
				p->accept_pauses = 0;
			}
			listeners_arm(p, 0);
			p->accept_paused = true;
			p->accept_resume = p->now + SL_ACCEPT_PAUSE_MS;
			return;
		}
		/* ECONNABORTED and such: that peer is gone, take the next */
	}
}

/* ---- timers ---- */

/* Close what expired; the ms until the next deadline (at most SL_TICK_MS). */
static int timers_run(struct sl_worker *p)
{
	uint64_t next = p->now + SL_TICK_MS;
	struct sl_conn *c, *w;

	/* spliced downloads waiting for their redirected bytes (down_wait):
	 * each is looked at again and re-queued if it still waits
	 */
	w = p->down_waiters;
	p->down_waiters = NULL;
	while ((c = w)) {
		w = c->wnext;
		c->down_waiting = false;
		if (c->state != ST_RELAY)
			continue;
		side_flush(p, c, &c->app);
		conn_update(p, c);
	}
	if (p->down_waiters)
		next = p->now + 1;

	if (p->connect_ms) {
		while ((c = p->timers[T_CONNECT].head) &&
		       c->t_conn + p->connect_ms <= p->now)
			conn_close(p, c, SL_CLOSE_CONNECT_TIMEOUT,
				   c->state == ST_RESOLVING ? "resolving" :
							      NULL);
		if (c && c->t_conn + p->connect_ms < next)
			next = c->t_conn + p->connect_ms;
	}
	if (p->hs_ms) {
		while ((c = p->timers[T_HANDSHAKE].head) &&
		       c->t_hs + p->hs_ms <= p->now) {
			sl_tls_handshake_timeout(c->hs->tls);
			conn_close(p, c, SL_CLOSE_TLS_TIMEOUT, NULL);
		}
		if (c && c->t_hs + p->hs_ms < next)
			next = c->t_hs + p->hs_ms;
	}
	/* rotation: new connections get new files; a bad file is refused
	 * by sl_tls_reload, which keeps and says so
	 */
	if (p->tls && !p->idx &&
	    (p->now >= p->reload_at || (p->reload_now && *p->reload_now))) {
		if (p->reload_now)
			*p->reload_now = 0;
		sl_tls_reload(p->tls);
		p->reload_at = p->now + p->reload_ms;
	}
	if (p->tls && !p->idx && p->reload_at < next)
		next = p->reload_at;
	if (p->idle_ms) {
		while ((c = p->timers[T_IDLE].head) &&
		       c->t_last + p->idle_ms <= p->now) {
			/* bytes the kernel moved past us are activity too */
			struct sl_splice_slot n;
			uint64_t moved;

			sl_splice_counts(p->splicer, &c->sp, &n);
			moved = n.half[SL_SPD_UP].bytes +
				n.half[SL_SPD_DOWN].bytes;
			if (sl_splice_broken(p->splicer, &c->sp)) {
				conn_update(p, c); /* resets it */
				continue;
			}
			if (moved != c->sp.seen) {
				c->sp.seen = moved;
				conn_touch(p, c);
				continue;
			}
			conn_close(p, c, SL_CLOSE_IDLE_TIMEOUT, NULL);
		}
		if (c && c->t_last + p->idle_ms < next)
			next = c->t_last + p->idle_ms;
	}
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

/* ---- public ---- */

static int listener_open(struct sl_worker *p, struct sl_listener *l,
			 const struct sl_endpoint *ep)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = l };
	const struct sockaddr_storage *addr = &ep->addr;
	socklen_t addrlen = ep->addrlen;
	char name[64];
	int one = 1;

	if (p->first) {
		/* the same listener of the first worker, whose port is bound:
		 * join its SO_REUSEPORT group, or have none if it has none
		 */
		size_t i = (size_t)(l - p->ls);
		const struct sl_listener *f = i < p->first->n_ls ?
						      &p->first->ls[i] : NULL;

		if (!f || f->fd < 0 || f->inbound != l->inbound ||
		    f->transparent != l->transparent ||
		    f->addr.ss_family != ep->addr.ss_family)
			return -ENOENT;
		addr = &f->addr;
		addrlen = f->addrlen;
	}
	l->tag = TAG_LISTENER;
	l->fd = socket(ep->addr.ss_family,
		       SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (l->fd < 0)
		return -errno;
	setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (p->reuseport &&
	    setsockopt(l->fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)))
		return -errno;
	/* [::]:port is the IPv6 twin of 0.0.0.0:port, not a second claim on
	 * IPv4 (and fails to bind as one)
	 */
	if (ep->addr.ss_family == AF_INET6)
		setsockopt(l->fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	l->addrlen = sizeof(l->addr);
	if (bind(l->fd, (const struct sockaddr *)addr, addrlen) ||
	    listen(l->fd, SOMAXCONN) ||
	    getsockname(l->fd, (struct sockaddr *)&l->addr, &l->addrlen) ||
	    epoll_ctl(p->epfd, EPOLL_CTL_ADD, l->fd, &ev)) {
		int err = -errno;

		pr_warn("proxy: listen on %s: %s\n",
			sl_sockaddr_str(addr, name, sizeof(name)), strerror(-err));
		return err;
	}
	if (p->first)
		return 0; /* said once, by the first */
	pr_info("proxy: listening on %s (%s)\n",
		sl_sockaddr_str(&l->addr, name, sizeof(name)),
		l->transparent ? "transparent" :
		l->inbound     ? (p->tls ? "inbound, mutual TLS" : "inbound") :
				 l->host);
	return 0;
}

/* A numeric upstream is parsed here once (getaddrinfo does not block for
 * AI_NUMERICHOST); a name is left for the resolver threads.
 */
static int listener_upstream_set(struct sl_listener *l, const struct sl_ambassador *a)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV };
	struct addrinfo *res;
	char port[8];
	int err;

	snprintf(l->host, sizeof(l->host), "%s", a->upstream_host);
	l->port = a->upstream_port;
	if (!l->host[0] || !l->port)
		return -EINVAL;
	snprintf(port, sizeof(port), "%u", l->port);
	err = getaddrinfo(l->host, port, &hints, &res);
	if (err == EAI_NONAME)
		return 0; /* a name */
	if (err)
		return -EINVAL;
	memcpy(&l->up.a[0], res->ai_addr, res->ai_addrlen);
	l->up.len[0] = res->ai_addrlen;
	l->up.n = 1;
	l->numeric = true;
	freeaddrinfo(res);
	return 0;
}

/* connect6 sends native IPv6 captures to [::1] on the outbound port (v4 and
 * v4-mapped ones go to the IPv4 listener): open that twin. A host without
 * IPv6 only loses IPv6 capture, and says so.
 */
static int listener_open_v6_twin(struct sl_worker *p, struct sl_listener *l,
				 const struct sl_listener *v4)
{
	struct sl_endpoint ep = { .addrlen = sizeof(struct sockaddr_in6) };
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ep.addr;
	int err;

	s6->sin6_family = AF_INET6;
	s6->sin6_addr = in6addr_loopback;
	s6->sin6_port = ((const struct sockaddr_in *)&v4->addr)->sin_port;
	l->transparent = true;
	err = listener_open(p, l, &ep);
	if (err && !p->first) {
		pr_warn("proxy: no IPv6 outbound listener (%s): IPv6 destinations "
			"will not be relayed\n", strerror(-err));
		if (l->fd >= 0)
			close(l->fd);
		l->fd = -1;
	}
	return err;
}

/* The inbound listener, and its IPv6 twin [::]:port when it listens on
 * 0.0.0.0 (a host without IPv6 only loses IPv6 inbound, and says so).
 */
static int inbound_open(struct sl_worker *p, const struct sl_endpoint *ep)
{
	const struct sockaddr_in *in = (const struct sockaddr_in *)&ep->addr;
	struct sl_endpoint ep6 = { .addrlen = sizeof(struct sockaddr_in6) };
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ep6.addr;
	struct sl_listener *l = &p->ls[p->n_ls];
	int err;

	l->inbound = true;
	p->n_ls++; /* closed by sl_proxy_free even if the open fails */
	err = listener_open(p, l, ep);
	if (err)
		return err;
	if (ep->addr.ss_family != AF_INET || in->sin_addr.s_addr != INADDR_ANY)
		return 0;
	l = &p->ls[p->n_ls];
	l->inbound = true;
	s6->sin6_family = AF_INET6;
	s6->sin6_addr = in6addr_any;
	s6->sin6_port = in->sin_port;
	if (listener_open(p, l, &ep6)) {
		if (!p->first)
			pr_warn("proxy: no IPv6 inbound listener: IPv6 peers "
				"will not be served\n");
		if (l->fd >= 0)
			close(l->fd);
		l->fd = -1;
		l->inbound = false;
		return 0;
	}
	p->n_ls++;
	return 0;
}

/* The parts of cfg the loop needs, copied: cfg may go away. */
static int tls_config(struct sl_worker *p, const struct sl_config *cfg,
		      struct sl_tls_ctx *tls)
{
	p->tls = tls;
	if (!tls)
		return 0;
	p->hs_ms = cfg->tls.handshake_timeout_ms;
	p->reload_ms = cfg->tls.reload_interval_ms;
	p->reload_at = p->now + p->reload_ms;
	p->n_mesh = cfg->tls.n_mesh;
	p->n_ids = cfg->inbound.n_ids;
	p->id_default = cfg->inbound.id_default ? cfg->inbound.id_default :
						  SL_ACTION_ALLOW;
	p->mesh = calloc(p->n_mesh + 1, sizeof(*p->mesh));
	p->ids = calloc(p->n_ids + 1, sizeof(*p->ids));
	if (!p->mesh || !p->ids)
		return -ENOMEM;
	memcpy(p->mesh, cfg->tls.mesh, p->n_mesh * sizeof(*p->mesh));
	memcpy(p->ids, cfg->inbound.ids, p->n_ids * sizeof(*p->ids));
	return 0;
}

/* The first worker's: sk_lookup steers to it, and the kernel then picks a
 * socket of its SO_REUSEPORT group (unless BPF_SK_LOOKUP_F_NO_REUSEPORT).
 */
void sl_proxy_inbound_fds(const struct sl_proxy *g, int *fd4, int *fd6)
{
	const struct sl_worker *p = g->w[0];
	unsigned int i;

	*fd4 = *fd6 = -1;
	for (i = 0; i < p->n_ls; i++) {
		if (!p->ls[i].inbound)
			continue;
		if (p->ls[i].addr.ss_family == AF_INET)
			*fd4 = p->ls[i].fd;
		else
			*fd6 = p->ls[i].fd;
	}
}

/* sl_alog_write is safe from every worker (it queues under a lock). */
void sl_proxy_set_alog(struct sl_proxy *g, struct sl_alog *alog)
{
	unsigned int i;

	for (i = 0; i < g->n; i++)
		g->w[i]->alog = alog;
}

/* The first worker reloads the TLS files for all: the context is shared. */
void sl_proxy_reload_flag(struct sl_proxy *g, volatile sig_atomic_t *flag)
{
	g->w[0]->reload_now = flag;
}

static void worker_free(struct sl_worker *p);

static int worker_new(const struct sl_config *cfg, struct sl_tls_ctx *tls,
		      sl_policy_check_fn check, void *check_ctx,
		      struct sl_proxy *g, unsigned int idx,
		      struct sl_worker **out)
{
	unsigned int i, n = cfg->proxy.n_ambassadors;
	bool names = false;
	struct sl_worker *p;
	int err;

	*out = NULL;
	if (n > SL_CFG_MAX_AMBASSADORS)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->grp = g;
	p->idx = idx;
	p->first = idx ? g->w[0] : NULL;
	p->reuseport = g->n > 1;
	p->rs.efd = -1;
	p->epfd = -1;
	pthread_mutex_init(&p->rs.mu, NULL);
	pthread_cond_init(&p->rs.cv, NULL);
	p->connect_ms = cfg->proxy.connect_timeout_ms;
	p->idle_ms = cfg->proxy.idle_timeout_ms;
	p->max_conns = cfg->proxy.max_conns;
	p->bufsz = cfg->proxy.buffer_bytes ? cfg->proxy.buffer_bytes :
					     SL_DEFAULT_BUFFER;
	p->mark = cfg->capture.mark;
	p->drain_ms = cfg->admin.drain_timeout_ms;
	p->check = check;
	p->check_ctx = check_ctx;
	p->now = now_ms();
	p->app_port = cfg->inbound.app_port;
	/* an older build's pins have no splice maps: every connection is
	 * then relayed, counted "unavailable"
	 */
	p->splice = cfg->proxy.splice;
	err = p->splice ? sl_splicer_open(cfg->pin_root, idx, g->n,
					  &p->splicer) :
			  0;
	if (err && !idx)
		pr_info("proxy: splice unavailable (%s): every connection is "
			"relayed in user space\n", strerror(-err));
	err = tls_config(p, cfg, tls);
	if (err)
		goto err;
	/* outbound + its IPv6 twin, inbound + its twin, the ambassadors */
	p->ls = calloc(n + 4, sizeof(*p->ls));
	if (!p->ls) {
		err = -ENOMEM;
		goto err;
	}
	for (i = 0; i < n + 4; i++)
		p->ls[i].fd = -1;
	p->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (p->epfd < 0) {
		err = -errno;
		goto err;
	}
	if (cfg->capture.enabled) {
		struct sl_listener *l = &p->ls[p->n_ls++];

		l->transparent = true;
		err = listener_open(p, l, &cfg->capture.outbound);
		if (err)
			goto err;
		err = listener_open_v6_twin(p, &p->ls[p->n_ls], l);
		if (!err)
			p->n_ls++;
	}
	if (cfg->inbound.enabled) {
		err = inbound_open(p, &cfg->inbound.listen);
		if (err)
			goto err;
	}
	for (i = 0; i < n; i++) {
		const struct sl_ambassador *a = &cfg->proxy.ambassadors[i];
		struct sl_listener *l = &p->ls[p->n_ls++];

		err = listener_upstream_set(l, a);
		if (err) {
			pr_warn("proxy: ambassador %u: bad upstream \"%s\" %u\n",
				i, a->upstream_host, a->upstream_port);
			goto err;
		}
		names |= !l->numeric;
		err = listener_open(p, l, &a->listen);
		if (err)
			goto err;
	}
	if (names) {
		err = resolver_init(p);
		if (err) {
			pr_warn("proxy: resolver: %s\n", strerror(-err));
			goto err;
		}
	}
	*out = p;
	return 0;
err:
	worker_free(p);
	return err;
}

/* CPUs this process may run on: its affinity, and its cgroup's quota. */
static unsigned int workers_auto(void)
{
	unsigned int n = 0, q = sl_cgroup_cpu_quota();
	cpu_set_t set;

	if (!sched_getaffinity(0, sizeof(set), &set))
		n = (unsigned int)CPU_COUNT(&set);
	if (!n)
		n = (unsigned int)sysconf(_SC_NPROCESSORS_ONLN);
	if (q && q < n)
		n = q;
	return n < 1 ? 1 : n > SL_CFG_MAX_WORKERS ? SL_CFG_MAX_WORKERS : n;
}

int sl_proxy_new(const struct sl_config *cfg, struct sl_tls_ctx *tls,
		 sl_policy_check_fn check, void *check_ctx,
		 struct sl_proxy **out)
{
	struct sl_proxy *g;
	unsigned int i;
	int err = 0;

	*out = NULL;
	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->n = cfg->proxy.workers ? cfg->proxy.workers : workers_auto();
	g->w = calloc(g->n, sizeof(*g->w));
	if (!g->w) {
		free(g);
		return -ENOMEM;
	}
	/* in order: the first binds what the others join */
	for (i = 0; i < g->n && !err; i++)
		err = worker_new(cfg, tls, check, check_ctx, g, i, &g->w[i]);
	if (err) {
		sl_proxy_free(g);
		return err;
	}
	pr_info("proxy: %u worker%s%s\n", g->n, g->n == 1 ? "" : "s",
		cfg->proxy.workers ? "" : " (auto: the CPUs this process may use)");
	*out = g;
	return 0;
}

static void close_listeners(struct sl_worker *p)
{
	unsigned int i;

	for (i = 0; i < p->n_ls; i++) {
		close_fd(p->ls[i].fd, false);
		p->ls[i].fd = -1;
	}
}

static void close_all(struct sl_worker *p)
{
	struct sl_conn *c;
	unsigned int i;

	for (i = 0; i < T_NR; i++)
		while ((c = p->timers[i].head))
			conn_close(p, c, SL_CLOSE_SHUTDOWN, NULL);
	reap_dead(p);
}

/* Drain (asked for, or stopping with a drain time): no new connections
 * (listeners closed: connects are refused, and a closed inbound listener
 * leaves the sk_lookup map, which then refuses too), open ones may finish
 * until the deadline, then are closed. Returns true when stopping may
 * proceed (drained or past the deadline).
 */
static bool drain_step(struct sl_worker *p, bool stopping, int *timeout)
{
	if (!p->draining) {
		if (!stopping && !__atomic_load_n(&p->drain_req, __ATOMIC_RELAXED))
			return false;
		unsigned int i;

		p->draining = true;
		p->drain_end = p->now + p->drain_ms;
		/* What completed its handshake is served, not reset by the
		 * close (each worker's listener has its own accept queue).
		 */
		for (i = 0; i < p->n_ls; i++)
			if (p->ls[i].fd >= 0 && !p->accept_paused)
				listener_event(p, &p->ls[i]);
		close_listeners(p);
		if (!p->idx)
			pr_info("proxy: draining: %llu connection(s) open, up "
				"to %u ms\n",
				(unsigned long long)__atomic_load_n(
					&p->grp->active, __ATOMIC_RELAXED),
				p->drain_ms);
	}
	if (p->st.active && p->now < p->drain_end) {
		if ((int)(p->drain_end - p->now) < *timeout)
			*timeout = (int)(p->drain_end - p->now);
		return false;
	}
	if (p->st.active)
		pr_info("proxy: drain time is up: closing %llu connection(s)\n",
			(unsigned long long)p->st.active);
	close_all(p);
	return true;
}

void sl_proxy_drain(struct sl_proxy *g)
{
	unsigned int i;

	for (i = 0; i < g->n; i++)
		__atomic_store_n(&g->w[i]->drain_req, 1, __ATOMIC_RELAXED);
}

bool sl_proxy_draining(const struct sl_proxy *g)
{
	const struct sl_worker *p = g->w[0];

	return __atomic_load_n(&p->drain_req, __ATOMIC_RELAXED) ||
	       __atomic_load_n(&p->draining, __ATOMIC_RELAXED);
}

static int worker_run(struct sl_worker *p)
{
	struct epoll_event evs[SL_EPOLL_BATCH];
	unsigned int i;
	int n, timeout = SL_TICK_MS, err = 0;

	for (;;) {
		bool stopping = *p->grp->stop ||
				__atomic_load_n(&p->grp->fatal, __ATOMIC_RELAXED);

		p->now = now_ms();
		if (drain_step(p, stopping, &timeout) && stopping)
			break;
		n = epoll_wait(p->epfd, evs, SL_EPOLL_BATCH, timeout);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
			pr_warn("proxy: epoll_wait: %s\n", strerror(errno));
			__atomic_store_n(&p->grp->fatal, 1, __ATOMIC_RELAXED);
			break;
		}
		p->now = now_ms();
		for (i = 0; i < (unsigned int)n; i++) {
			enum ep_tag *tag = evs[i].data.ptr;

			if (*tag == TAG_SIDE)
				side_event(p, (struct sl_side *)tag,
					   evs[i].events);
			else if (*tag == TAG_LISTENER)
				listener_event(p, (struct sl_listener *)tag);
			else
				resolver_event(p);
		}
		timeout = timers_run(p);
		reap_dead(p);
		buf_trim(p);
	}

	/* stop accepting, then end what is open */
	p->now = now_ms();
	close_listeners(p);
	close_all(p);
	return err;
}

static void *worker_main(void *arg)
{
	struct sl_worker *p = arg;
	char name[16];

	snprintf(name, sizeof(name), "sl-proxy/%u", p->idx);
	pthread_setname_np(pthread_self(), name);
	p->err = worker_run(p);
	return NULL;
}

int sl_proxy_run(struct sl_proxy *g, volatile sig_atomic_t *stop)
{
	unsigned int i, started = 1;
	sigset_t all, old;
	int err = 0;

	g->stop = stop;
	/* signals stay with the calling thread, whose handlers set *stop;
	 * but SIGSYS, which libpsx broadcasts to every thread for a
	 * process-wide privilege change (main.c's housekeeping thread too)
	 */
	sigfillset(&all);
	sigdelset(&all, SIGSYS);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (; started < g->n; started++) {
		err = -pthread_create(&g->w[started]->th, NULL, worker_main,
				      g->w[started]);
		if (err) {
			pr_warn("proxy: worker %u: %s: stopping\n", started,
				strerror(-err));
			__atomic_store_n(&g->fatal, 1, __ATOMIC_RELAXED);
			break;
		}
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	g->w[0]->err = worker_run(g->w[0]);
	for (i = 1; i < started; i++)
		pthread_join(g->w[i]->th, NULL);
	for (i = 0; i < started && !err; i++)
		err = g->w[i]->err;
	return err;
}

/* Field by field: the worker's loop may be running. */
static void stats_add(const struct sl_worker *p, struct sl_proxy_stats *out)
{
	const uint64_t *in = (const uint64_t *)&p->st;
	uint64_t *o = (uint64_t *)out;
	size_t i;

	for (i = 0; i < sizeof(*out) / sizeof(uint64_t); i++)
		o[i] += __atomic_load_n(&in[i], __ATOMIC_RELAXED);
}

void sl_proxy_stats(const struct sl_proxy *g, struct sl_proxy_stats *out)
{
	unsigned int i;

	memset(out, 0, sizeof(*out));
	for (i = 0; i < g->n; i++)
		stats_add(g->w[i], out);
}

unsigned int sl_proxy_workers(const struct sl_proxy *g)
{
	return g->n;
}

void sl_proxy_worker_stats(const struct sl_proxy *g, unsigned int i,
			   struct sl_proxy_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (i < g->n)
		stats_add(g->w[i], out);
}

void sl_proxy_free(struct sl_proxy *g)
{
	unsigned int i;

	if (!g)
		return;
	for (i = 0; g->w && i < g->n; i++)
		worker_free(g->w[i]);
	free(g->w);
	free(g);
}

static void worker_free(struct sl_worker *p)
{
	struct sl_conn *c;
	unsigned int i;

	if (!p)
		return;
	if (p->rs.n_th || p->rs.efd >= 0)
		resolver_fini(p);
	/* connections left if sl_proxy_run never ran to its end */
	for (i = 0; i < T_NR; i++)
		while ((c = p->timers[i].head))
			conn_close(p, c, SL_CLOSE_SHUTDOWN, NULL);
	reap_dead(p);
	for (i = 0; p->ls && i < p->n_ls; i++)
		close_fd(p->ls[i].fd, false);
	free(p->ls);
	free(p->mesh);
	free(p->ids);
	sl_splicer_close(p->splicer);
	while (p->n_pool)
		free(p->pool[--p->n_pool]);
	if (p->epfd >= 0)
		close(p->epfd);
	pthread_mutex_destroy(&p->rs.mu);
	pthread_cond_destroy(&p->rs.cv);
	free(p);
}
