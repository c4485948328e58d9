// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The proxy: resolver threads for ambassador upstream names (see proxy.c). */
#define _GNU_SOURCE
#include "proxy/internal.h"

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

int resolve_start(struct sl_worker *p, struct sl_conn *c)
{
	struct sl_resolve *r = calloc(1, sizeof(*r));

	if (!r)
		return -ENOMEM;
	r->c = c;
	/* a copy: a reload may retire the listener before the answer */
	snprintf(r->host, sizeof(r->host), "%s", c->l->host);
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
void resolver_event(struct sl_worker *p)
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

int resolver_init(struct sl_worker *p)
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

void resolver_fini(struct sl_worker *p)
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
