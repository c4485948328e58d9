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

/* sl_alog_write is safe from every worker (it queues under a lock). Any
 * thread: a reload may turn the log on while the loops run.
 */
void sl_proxy_set_alog(struct sl_proxy *g, struct sl_alog *alog)
{
	unsigned int i;

	for (i = 0; g && i < g->n; i++)
		__atomic_store_n(&g->w[i]->alog, alog, __ATOMIC_RELEASE);
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
	if (!err)
		p->pool_size = p->set->bufsz;
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
	err = listeners_commit(g, cfg);
	if (err) {
		sl_proxy_free(g);
		return err;
	}
	pr_info("proxy: %u worker%s%s\n", g->n, g->n == 1 ? "" : "s",
		cfg->proxy.workers ? "" : " (auto: the CPUs this process may use)");
	*out = g;
	return 0;
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
			if (p->ls[i]->fd >= 0 && !p->accept_paused)
				listener_event(p, p->ls[i]);
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
	free(g->amb);
	free(g);
}

static void worker_free(struct sl_worker *p)
{
	if (!p)
		return;
	if (p->rs.n_th || p->rs.efd >= 0)
		resolver_fini(p);
	/* connections left if sl_proxy_run never ran to its end */
	close_all(p);
	listeners_free(p);
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
