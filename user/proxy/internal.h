/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* What the files of the proxy share (user/proxy/): a worker, its
 * listeners, a connection and its two sides and buffers, and each file's
 * functions the others call. proxy.c has the design.
 */
#ifndef SL_PROXY_INTERNAL_H
#define SL_PROXY_INTERNAL_H

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
#define SL_EVICT_SCAN 64 /* handshakes looked at for one to evict (hs_evict) */
#define SL_MAX_ADDRS 8 /* upstream candidates per connection */
#define SL_RESOLVERS 2 /* resolver threads, only if a name needs them */
#define SL_DEFAULT_BUFFER (64 * 1024)
#define SL_BUF_POOL 32 /* empty buffers a worker keeps for reuse */
#define SL_TRIM_IDLE_MS 1000 /* no connection this long: memory back */
/* listener slots of a worker: outbound, inbound and their twins, the
 * ambassadors, and as many again closed by reloads but still held by
 * connections
 */
#define SL_LS_MAX (4 + 4 * SL_CFG_MAX_AMBASSADORS)

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
	/* connections accepted on it still open (c->l); a listener a reload
	 * closed (retired, fd -1) goes with the last
	 */
	unsigned long conns;
	bool retired;
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
struct sl_settings;

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
	struct sl_settings *set; /* what it was accepted under (holds it) */
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

/* An ambassador listener changed by a reload, for one worker
 * (listeners.c).
 */
struct sl_lchange {
	enum { LC_ADD, LC_DEL, LC_REPOINT } op;
	struct sl_ambassador a; /* the new one (LC_DEL: the old one) */
	int fd; /* LC_ADD: this worker's bound socket, -1 once taken */
};

/* The settings a connection keeps for its life: those in force when it was
 * accepted. A config reload (sl_proxy_reconfigure) hands each worker new
 * ones for its new connections; older ones go when their last connection
 * has. Each has its own timer lists: every connection in one has the same
 * timeout, so appending keeps a list in deadline order. Copies of the
 * config's parts: the config may go away.
 */
struct sl_settings {
	unsigned int connect_ms, idle_ms, hs_ms;
	unsigned int drain_ms, reload_ms; /* the worker's, taken with them */
	unsigned int max_conns; /* for its accepts: open in all workers */
	size_t bufsz; /* each direction's buffer */
	uint16_t app_port; /* inbound listener mode */
	enum sl_action id_default;
	unsigned int n_mesh, n_ids;
	struct sl_mesh_dst *mesh;
	struct sl_id_rule_cfg *ids;
	struct sl_list timers[T_NR];
	/* the ambassadors a reload changes, done as the worker takes these */
	struct sl_lchange *lchg;
	unsigned int n_lchg;
	unsigned long conns; /* connections holding it */
	struct sl_settings *next; /* the worker's older ones still held */
};

/* A name to resolve for a connection; owned by the resolver lists. */
struct sl_resolve {
	struct sl_resolve *next;
	struct sl_conn *c; /* loop thread only; NULL once the conn ended */
	char host[256];
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
	struct sl_listener **ls; /* SL_LS_MAX slots, n_ls in use */
	unsigned int n_ls;
	/* for new connections; then the older ones still held */
	struct sl_settings *set;
	struct sl_settings *pending; /* from sl_proxy_reconfigure, not yet taken */
	size_t pool_size; /* of the buffers in pool: the current settings' */
	uint32_t mark;
	bool mark_warned;
	sl_policy_check_fn check;
	void *check_ctx;
	uint64_t now;
	struct sl_list dead;
	bool accept_paused;
	uint64_t accept_resume;
	uint64_t accept_warned, accept_pauses; /* rate of the warning */
	/* drain: listeners closed, open connections get until drain_end
	 * (set->drain_ms after it began)
	 */
	int drain_req; /* set by sl_proxy_drain() from any thread */
	bool draining;
	uint64_t drain_end;
	struct sl_proxy_stats st; /* written by the loop, read by anyone */
	char *pool[SL_BUF_POOL]; /* empty buffers of pool_size bytes */
	unsigned int n_pool;
	uint64_t idle_since; /* ms: no connection open since (0: some are) */
	struct sl_alog *alog; /* access log (NULL: none) */
	struct sl_splicer *splicer; /* NULL: the splice maps are not pinned */
	bool splice; /* proxy.splice */
	struct sl_conn *down_waiters; /* see sl_conn.down_waiting */
	struct sl_tls_ctx *tls; /* NULL: none */
	uint64_t reload_at;
	volatile sig_atomic_t *reload_now;
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
	/* the ambassadors as configured (the reloading thread's) */
	struct sl_ambassador *amb;
	unsigned int n_amb;
};

#define STAT_ADD(p, f, v) __atomic_fetch_add(&(p)->st.f, (v), __ATOMIC_RELAXED)
#define STAT_SUB(p, f, v) __atomic_fetch_sub(&(p)->st.f, (v), __ATOMIC_RELAXED)

/* proxy.c: the connection state machine (sockets, teardown, the download's
 * gate, relay, connecting upstream, timers)
 */
uint64_t now_ms(void);
bool sa_eq(const struct sockaddr_storage *a,
	   const struct sockaddr_storage *b);
bool is_own_listener(const struct sl_worker *p,
		     const struct sockaddr_storage *dst);
/* c into its settings' list which (-1: none), at the tail */
void timer_set(struct sl_conn *c, int which);
/* settings.c: the worker's settings for new connections (cfg's), the
 * pending ones of a reload taken, c done with its own (older ones go with
 * their last connection), all freed at the end
 */
int settings_init(struct sl_worker *p, const struct sl_config *cfg);
void settings_take(struct sl_worker *p);
void settings_release(struct sl_worker *p, struct sl_conn *c);
void settings_fini(struct sl_worker *p);
/* Every proxy socket closes with an RST until a graceful close_fd(fd,
 * false) disarms it: when sidelane dies (kill -9, the OOM killer) the
 * kernel closes its sockets, and a FIN there would read to the app as a
 * whole answer; an RST says the stream was cut.
 */
void reset_on_close(int fd, bool on);
void close_fd(int fd, bool abort);
void set_nodelay(int fd);
void side_arm(struct sl_worker *p, struct sl_side *s, uint32_t want);
void listeners_arm(struct sl_worker *p, uint32_t events);
enum sl_direction dir_of(const struct sl_listener *l);
void count_close(struct sl_worker *p, const struct sl_listener *l,
		 enum sl_close_reason reason);
void conn_close(struct sl_worker *p, struct sl_conn *c,
		enum sl_close_reason reason, const char *why);
void reap_dead(struct sl_worker *p);
void conn_update(struct sl_worker *p, struct sl_conn *c);
void conn_established(struct sl_worker *p, struct sl_conn *c);
void conn_connect(struct sl_worker *p, struct sl_conn *c);
void side_event(struct sl_worker *p, struct sl_side *s, uint32_t ev);
int timers_run(struct sl_worker *p);

/* accept.c: the policy check of the destinations the proxy connects to */
bool dst_allowed(struct sl_worker *p, struct sl_conn *c);

/* handshake.c: mTLS on a side, then the identity policy */
void hs_start(struct sl_worker *p, struct sl_conn *c, struct sl_side *s);
void hs_step(struct sl_worker *p, struct sl_conn *c);
bool hs_evict(struct sl_worker *p);
const struct sl_mesh_dst *mesh_find(const struct sl_worker *p,
				    const struct sl_settings *set,
				    const struct sockaddr_storage *dst);

/* buf.c: the relay buffers, taken from a per-worker pool only while bytes
 * wait
 */
int buf_take(struct sl_worker *p, struct sl_buf *b);
void buf_give(struct sl_worker *p, struct sl_buf *b);
void buf_trim(struct sl_worker *p);
/* The pool keeps buffers of this size from now on (the others go). */
void buf_pool_size(struct sl_worker *p, size_t size);
ssize_t buf_read(struct sl_buf *b, int fd);
ssize_t buf_write(struct sl_buf *b, int fd);
ssize_t tls_buf_read(struct sl_buf *b, struct sl_side *s);
ssize_t tls_buf_write(struct sl_buf *b, struct sl_side *s);

/* resolve.c: resolver threads for ambassador upstream names */
int resolve_start(struct sl_worker *p, struct sl_conn *c);
void resolver_event(struct sl_worker *p);
int resolver_init(struct sl_worker *p);
void resolver_fini(struct sl_worker *p);

/* accept.c: accepting on the listeners, a new connection's start */
void listener_event(struct sl_worker *p, struct sl_listener *l);

/* listeners.c: open at start; closed; freed; a connection done with its
 * listener; a reload's ambassador changes prepared (sockets bound for
 * every worker in sets[k]), made the running ones, taken by a worker,
 * dropped untaken
 */
int listeners_open(struct sl_worker *p, const struct sl_config *cfg);
void close_listeners(struct sl_worker *p);
void listeners_free(struct sl_worker *p);
void listener_release(struct sl_worker *p, struct sl_listener *l);
int listeners_prepare(struct sl_proxy *g, const struct sl_config *cfg,
		      struct sl_settings **sets, char *why, size_t len);
int listeners_commit(struct sl_proxy *g, const struct sl_config *cfg);
void listeners_take(struct sl_worker *p, struct sl_settings *set);
void listeners_changes_free(struct sl_settings *set);

#endif /* SL_PROXY_INTERNAL_H */
