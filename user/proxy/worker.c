// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The proxy: the workers, their listeners and loops, the public API (see
 * proxy.c).
 */
#define _GNU_SOURCE
#include "proxy/internal.h"

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
	[SL_CLOSE_TLS_EVICTED] = "tls-evicted",
};

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
static int listener_upstream_set(struct sl_listener *l,
				 const struct sl_ambassador *a)
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

/* The worker's epoll and listeners: outbound (and its IPv6 twin), inbound
 * (and its twin), one per ambassador, and the resolver threads if an
 * ambassador's upstream is a name.
 */
static int listeners_open(struct sl_worker *p, const struct sl_config *cfg)
{
	unsigned int i, n = cfg->proxy.n_ambassadors;
	bool names = false;
	int err;

	p->ls = calloc(n + 4, sizeof(*p->ls));
	if (!p->ls)
		return -ENOMEM;
	for (i = 0; i < n + 4; i++)
		p->ls[i].fd = -1;
	p->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (p->epfd < 0)
		return -errno;
	if (cfg->capture.enabled) {
		struct sl_listener *l = &p->ls[p->n_ls++];

		l->transparent = true;
		err = listener_open(p, l, &cfg->capture.outbound);
		if (err)
			return err;
		if (!listener_open_v6_twin(p, &p->ls[p->n_ls], l))
			p->n_ls++;
	}
	if (cfg->inbound.enabled) {
		err = inbound_open(p, &cfg->inbound.listen);
		if (err)
			return err;
	}
	for (i = 0; i < n; i++) {
		const struct sl_ambassador *a = &cfg->proxy.ambassadors[i];
		struct sl_listener *l = &p->ls[p->n_ls++];

		err = listener_upstream_set(l, a);
		if (err) {
			pr_warn("proxy: ambassador %u: bad upstream \"%s\" %u\n",
				i, a->upstream_host, a->upstream_port);
			return err;
		}
		names |= !l->numeric;
		err = listener_open(p, l, &a->listen);
		if (err)
			return err;
	}
	err = names ? resolver_init(p) : 0;
	if (err)
		pr_warn("proxy: resolver: %s\n", strerror(-err));
	return err;
}

static int worker_new(const struct sl_config *cfg, struct sl_tls_ctx *tls,
		      sl_policy_check_fn check, void *check_ctx,
		      struct sl_proxy *g, unsigned int idx,
		      struct sl_worker **out)
{
	struct sl_worker *p;
	int err;

	*out = NULL;
	if (cfg->proxy.n_ambassadors > SL_CFG_MAX_AMBASSADORS)
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
	p->max_conns = cfg->proxy.max_conns;
	p->bufsz = cfg->proxy.buffer_bytes ? cfg->proxy.buffer_bytes :
					     SL_DEFAULT_BUFFER;
	p->mark = cfg->capture.mark;
	p->check = check;
	p->check_ctx = check_ctx;
	p->now = now_ms();
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
	p->tls = tls;
	err = settings_init(p, cfg);
	p->reload_at = p->now + (p->set ? p->set->reload_ms : 0);
	if (!err)
		err = listeners_open(p, cfg);
	if (err) {
		worker_free(p);
		return err;
	}
	*out = p;
	return 0;
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

	struct sl_settings *set;

	for (set = p->set; set; set = set->next)
		for (i = 0; i < T_NR; i++)
			while ((c = set->timers[i].head))
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
		p->drain_end = p->now + p->set->drain_ms;
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
				p->set->drain_ms);
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
		settings_take(p); /* a reload's, for new connections */
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
	unsigned int i;

	if (!p)
		return;
	if (p->rs.n_th || p->rs.efd >= 0)
		resolver_fini(p);
	/* connections left if sl_proxy_run never ran to its end */
	close_all(p);
	for (i = 0; p->ls && i < p->n_ls; i++)
		close_fd(p->ls[i].fd, false);
	free(p->ls);
	settings_fini(p);
	sl_splicer_close(p->splicer);
	while (p->n_pool)
		free(p->pool[--p->n_pool]);
	if (p->epfd >= 0)
		close(p->epfd);
	pthread_mutex_destroy(&p->rs.mu);
	pthread_cond_destroy(&p->rs.cv);
	free(p);
}
