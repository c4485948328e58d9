// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The proxy's listeners (see proxy.c): opened at start, each worker its
 * own socket of every listener (the first binds, the others join its
 * SO_REUSEPORT group); and the ambassadors' changed by a config reload.
 *
 * A reload's ambassador changes are prepared on the reloading thread: new
 * sockets are bound there for every worker, so a port that cannot be had
 * refuses the reload before any worker changes, and a listener that moves
 * is open before the old one closes. Each worker then takes its part with
 * its settings (settings.c), at the top of its loop: it accepts what the
 * old socket still queues, closes it, and registers the new one. A
 * listener a connection came in on stays (closed, retired) until that
 * connection has ended.
 */
#define _GNU_SOURCE
#include "proxy/internal.h"

/* A fresh listener in slot i of p->ls (reused if there is one). */
static struct sl_listener *ls_slot(struct sl_worker *p, unsigned int i)
{
	struct sl_listener *l = p->ls[i];

	if (!l && !(l = p->ls[i] = malloc(sizeof(*l))))
		return NULL;
	memset(l, 0, sizeof(*l));
	l->tag = TAG_LISTENER;
	l->fd = -1;
	return l;
}

/* The next free slot, counted; NULL when none is left (SL_LS_MAX). */
static struct sl_listener *ls_add(struct sl_worker *p)
{
	struct sl_listener *l;

	if (p->n_ls == SL_LS_MAX)
		return NULL;
	l = ls_slot(p, p->n_ls);
	if (l)
		p->n_ls++;
	return l;
}

/* l is closed and nothing holds it: its slot goes (the last moves in). */
static void ls_remove(struct sl_worker *p, struct sl_listener *l)
{
	unsigned int i;

	for (i = 0; i < p->n_ls && p->ls[i] != l; i++)
		;
	if (i == p->n_ls)
		return;
	free(l);
	p->ls[i] = p->ls[--p->n_ls];
	p->ls[p->n_ls] = NULL;
}

void listener_release(struct sl_worker *p, struct sl_listener *l)
{
	if (l && !--l->conns && l->retired)
		ls_remove(p, l);
}

/* A listening socket on addr: SO_REUSEPORT when workers share it. The fd,
 * its bound address in *bound, or -errno.
 */
static int listener_socket(const struct sockaddr_storage *addr,
			   socklen_t addrlen, bool reuseport,
			   struct sockaddr_storage *bound, socklen_t *blen)
{
	int fd, one = 1, err;

	fd = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* [::]:port is the IPv6 twin of 0.0.0.0:port, not a second claim on
	 * IPv4 (and fails to bind as one)
	 */
	if (addr->ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	*blen = sizeof(*bound);
	if ((reuseport &&
	     setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one))) ||
	    bind(fd, (const struct sockaddr *)addr, addrlen) ||
	    listen(fd, SOMAXCONN) ||
	    getsockname(fd, (struct sockaddr *)bound, blen)) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

static void listener_said(const struct sl_worker *p, const struct sl_listener *l)
{
	char name[64];

	pr_info("proxy: listening on %s (%s)\n",
		sl_sockaddr_str(&l->addr, name, sizeof(name)),
		l->transparent ? "transparent" :
		l->inbound     ? (p->tls ? "inbound, mutual TLS" : "inbound") :
				 l->host);
}

/* Slot i of a worker > 0 joins the same slot of the first worker, whose
 * port is bound: its SO_REUSEPORT group, or none if it has none.
 */
static int listener_open(struct sl_worker *p, unsigned int i,
			 const struct sl_endpoint *ep)
{
	struct sl_listener *l = p->ls[i];
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = l };
	const struct sockaddr_storage *addr = &ep->addr;
	socklen_t addrlen = ep->addrlen;
	char name[64];
	int fd;

	if (p->first) {
		const struct sl_listener *f = i < p->first->n_ls ?
						      p->first->ls[i] : NULL;

		if (!f || f->fd < 0 || f->inbound != l->inbound ||
		    f->transparent != l->transparent ||
		    f->addr.ss_family != ep->addr.ss_family)
			return -ENOENT;
		addr = &f->addr;
		addrlen = f->addrlen;
	}
	fd = listener_socket(addr, addrlen, p->reuseport, &l->addr, &l->addrlen);
	if (fd >= 0) {
		l->fd = fd;
		if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, l->fd, &ev))
			fd = -errno;
	}
	if (fd < 0) {
		pr_warn("proxy: listen on %s: %s\n",
			sl_sockaddr_str(addr, name, sizeof(name)), strerror(-fd));
		return fd;
	}
	if (!p->first) /* said once, by the first */
		listener_said(p, l);
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
	l->numeric = false;
	memset(&l->up, 0, sizeof(l->up));
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
 * v4-mapped ones go to the IPv4 listener): open that twin in slot i. A host
 * without IPv6 only loses IPv6 capture, and says so. Counted on success.
 */
static void listener_open_v6_twin(struct sl_worker *p, unsigned int i,
				  const struct sl_listener *v4)
{
	struct sl_endpoint ep = { .addrlen = sizeof(struct sockaddr_in6) };
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ep.addr;
	struct sl_listener *l = ls_slot(p, i);
	int err;

	if (!l)
		return;
	s6->sin6_family = AF_INET6;
	s6->sin6_addr = in6addr_loopback;
	s6->sin6_port = ((const struct sockaddr_in *)&v4->addr)->sin_port;
	l->transparent = true;
	err = listener_open(p, i, &ep);
	if (!err) {
		p->n_ls++;
		return;
	}
	if (!p->first)
		pr_warn("proxy: no IPv6 outbound listener (%s): IPv6 destinations "
			"will not be relayed\n", strerror(-err));
	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
}

/* The inbound listener, and its IPv6 twin [::]:port when it listens on
 * 0.0.0.0 (a host without IPv6 only loses IPv6 inbound, and says so).
 */
static int inbound_open(struct sl_worker *p, const struct sl_endpoint *ep)
{
	const struct sockaddr_in *in = (const struct sockaddr_in *)&ep->addr;
	struct sl_endpoint ep6 = { .addrlen = sizeof(struct sockaddr_in6) };
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ep6.addr;
	struct sl_listener *l = ls_add(p); /* closed by sl_proxy_free even if
					    * the open fails
					    */
	int err;

	if (!l)
		return -ENOMEM;
	l->inbound = true;
	err = listener_open(p, p->n_ls - 1, ep);
	if (err)
		return err;
	if (ep->addr.ss_family != AF_INET || in->sin_addr.s_addr != INADDR_ANY)
		return 0;
	l = ls_slot(p, p->n_ls);
	if (!l)
		return -ENOMEM;
	l->inbound = true;
	s6->sin6_family = AF_INET6;
	s6->sin6_addr = in6addr_any;
	s6->sin6_port = in->sin_port;
	if (listener_open(p, p->n_ls, &ep6)) {
		if (!p->first)
			pr_warn("proxy: no IPv6 inbound listener: IPv6 peers "
				"will not be served\n");
		if (l->fd >= 0)
			close(l->fd);
		l->fd = -1;
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
		if (!p->ls[i]->inbound)
			continue;
		if (p->ls[i]->addr.ss_family == AF_INET)
			*fd4 = p->ls[i]->fd;
		else
			*fd6 = p->ls[i]->fd;
	}
}

int listeners_open(struct sl_worker *p, const struct sl_config *cfg)
{
	unsigned int i, n = cfg->proxy.n_ambassadors;
	struct sl_listener *l;
	bool names = false;
	int err;

	p->ls = calloc(SL_LS_MAX, sizeof(*p->ls));
	if (!p->ls)
		return -ENOMEM;
	p->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (p->epfd < 0)
		return -errno;
	if (cfg->capture.enabled) {
		l = ls_add(p);
		if (!l)
			return -ENOMEM;
		l->transparent = true;
		err = listener_open(p, p->n_ls - 1, &cfg->capture.outbound);
		if (err)
			return err;
		listener_open_v6_twin(p, p->n_ls, l);
	}
	if (cfg->inbound.enabled) {
		err = inbound_open(p, &cfg->inbound.listen);
		if (err)
			return err;
	}
	for (i = 0; i < n; i++) {
		const struct sl_ambassador *a = &cfg->proxy.ambassadors[i];

		l = ls_add(p);
		if (!l)
			return -ENOMEM;
		err = listener_upstream_set(l, a);
		if (err) {
			pr_warn("proxy: ambassador %u: bad upstream \"%s\" %u\n",
				i, a->upstream_host, a->upstream_port);
			return err;
		}
		names |= !l->numeric;
		err = listener_open(p, p->n_ls - 1, &a->listen);
		if (err)
			return err;
	}
	err = names ? resolver_init(p) : 0;
	if (err)
		pr_warn("proxy: resolver: %s\n", strerror(-err));
	return err;
}

void close_listeners(struct sl_worker *p)
{
	unsigned int i;

	for (i = 0; i < p->n_ls; i++) {
		close_fd(p->ls[i]->fd, false);
		p->ls[i]->fd = -1;
	}
}

void listeners_free(struct sl_worker *p)
{
	unsigned int i;

	for (i = 0; p->ls && i < SL_LS_MAX; i++) {
		if (p->ls[i] && i < p->n_ls)
			close_fd(p->ls[i]->fd, false);
		free(p->ls[i]);
	}
	free(p->ls);
	p->ls = NULL;
}

/* ---- ambassadors changed by a reload ---- */

static bool amb_same_listen(const struct sl_ambassador *a,
			    const struct sl_ambassador *b)
{
	return sa_eq(&a->listen.addr, &b->listen.addr);
}

static bool amb_same_upstream(const struct sl_ambassador *a,
			      const struct sl_ambassador *b)
{
	return a->upstream_port == b->upstream_port &&
	       !strcmp(a->upstream_host, b->upstream_host);
}

static const struct sl_ambassador *amb_find(const struct sl_ambassador *set,
					    unsigned int n,
					    const struct sl_ambassador *a)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		if (amb_same_listen(&set[i], a))
			return &set[i];
	return NULL;
}

static void lchanges_free(struct sl_lchange *ch, unsigned int n)
{
	unsigned int i;

	for (i = 0; ch && i < n; i++)
		if (ch[i].fd >= 0)
			close(ch[i].fd);
	free(ch);
}

void listeners_changes_free(struct sl_settings *set)
{
	lchanges_free(set->lchg, set->n_lchg);
	set->lchg = NULL;
	set->n_lchg = 0;
}

/* What the ambassadors of cfg change for worker k, given those running:
 * removed, re-pointed (same listener, other upstream), added (with a
 * socket of its own, bound on the first worker's address). *out gets the
 * changes of every worker (sets[k]). 0, or -errno with why said.
 */
int listeners_prepare(struct sl_proxy *g, const struct sl_config *cfg,
		      struct sl_settings **sets, char *why, size_t len)
{
	const struct sl_ambassador *old = g->amb, *nw = cfg->proxy.ambassadors;
	unsigned int no = g->n_amb, nn = cfg->proxy.n_ambassadors;
	unsigned int i, k, max = no + nn;
	char name[64];
	int fd = 0;

	for (k = 0; k < g->n; k++) {
		sets[k]->lchg = calloc(max + 1, sizeof(*sets[k]->lchg));
		if (!sets[k]->lchg)
			return -ENOMEM;
	}
	for (i = 0; i < no; i++) {
		const struct sl_ambassador *n = amb_find(nw, nn, &old[i]);

		if (n && amb_same_upstream(n, &old[i]))
			continue;
		for (k = 0; k < g->n; k++) {
			struct sl_lchange *ch = &sets[k]->lchg[sets[k]->n_lchg++];

			ch->op = n ? LC_REPOINT : LC_DEL;
			ch->fd = -1;
			ch->a = n ? *n : old[i];
		}
	}
	for (i = 0; i < nn; i++) {
		struct sockaddr_storage bound;
		socklen_t blen = nw[i].listen.addrlen;

		if (amb_find(old, no, &nw[i]))
			continue;
		memcpy(&bound, &nw[i].listen.addr, sizeof(bound));
		for (k = 0; k < g->n; k++) {
			struct sl_lchange *ch = &sets[k]->lchg[sets[k]->n_lchg++];

			ch->op = LC_ADD;
			ch->a = nw[i];
			/* the first binds, the others join its port */
			ch->fd = fd = listener_socket(&bound, blen, g->n > 1,
						      &bound, &blen);
			if (fd < 0)
				break;
		}
		if (fd < 0) {
			snprintf(why, len, "proxy.ambassadors: listen on %s: %s",
				 sl_sockaddr_str(&nw[i].listen.addr, name,
						 sizeof(name)),
				 strerror(-fd));
			return fd;
		}
	}
	return 0;
}

/* The running ambassadors are cfg's from now on (after a successful
 * listeners_prepare and hand-over). 0 or -ENOMEM.
 */
int listeners_commit(struct sl_proxy *g, const struct sl_config *cfg)
{
	size_t n = cfg->proxy.n_ambassadors;
	struct sl_ambassador *a = calloc(n + 1, sizeof(*a));

	if (!a)
		return -ENOMEM;
	memcpy(a, cfg->proxy.ambassadors, n * sizeof(*a));
	free(g->amb);
	g->amb = a;
	g->n_amb = (unsigned int)n;
	return 0;
}

/* The running ambassador listening where a does. */
static struct sl_listener *amb_listener(struct sl_worker *p,
					const struct sl_ambassador *a)
{
	unsigned int i;

	for (i = 0; i < p->n_ls; i++) {
		struct sl_listener *l = p->ls[i];

		if (l->fd >= 0 && !l->retired && !l->inbound && !l->transparent &&
		    sa_eq(&l->addr, &a->listen.addr))
			return l;
	}
	return NULL;
}

/* Closed for good: what it queued is accepted first (those peers finished
 * their handshake with us); it stays until its last connection ends.
 */
static void listener_retire(struct sl_worker *p, struct sl_listener *l,
			    bool close_it)
{
	if (close_it && l->fd >= 0) {
		if (!p->accept_paused && !p->draining)
			listener_event(p, l);
		epoll_ctl(p->epfd, EPOLL_CTL_DEL, l->fd, NULL);
		close_fd(l->fd, false);
	}
	l->fd = -1;
	l->retired = true;
	if (!l->conns)
		ls_remove(p, l);
}

/* A new listener struct for ambassador a on fd (already bound). */
static struct sl_listener *amb_take(struct sl_worker *p,
				    const struct sl_ambassador *a, int fd)
{
	struct sl_listener *l = ls_add(p);

	if (!l) {
		pr_warn("proxy: worker %u: no listener slot left for %s:%u\n",
			p->idx, a->upstream_host, a->upstream_port);
		return NULL;
	}
	l->addrlen = sizeof(l->addr);
	if (listener_upstream_set(l, a) ||
	    getsockname(fd, (struct sockaddr *)&l->addr, &l->addrlen) ||
	    (!l->numeric && !p->rs.n_th && resolver_init(p))) {
		pr_warn("proxy: worker %u: ambassador to %s:%u not taken\n",
			p->idx, a->upstream_host, a->upstream_port);
		ls_remove(p, l);
		return NULL;
	}
	l->fd = fd;
	return l;
}

void listeners_take(struct sl_worker *p, struct sl_settings *set)
{
	struct epoll_event ev = { .events = p->accept_paused ? 0 : EPOLLIN };
	struct sl_listener *l, *n;
	unsigned int i;

	for (i = 0; i < set->n_lchg; i++) {
		struct sl_lchange *ch = &set->lchg[i];

		switch (ch->op) {
		case LC_DEL:
			l = amb_listener(p, &ch->a);
			if (l) {
				if (!p->idx)
					pr_info("proxy: ambassador %s:%u closed\n",
						l->host, l->port);
				listener_retire(p, l, true);
			}
			break;
		case LC_REPOINT:
			/* the same socket; the old struct stays for the
			 * connections made through it
			 */
			l = amb_listener(p, &ch->a);
			n = l ? amb_take(p, &ch->a, l->fd) : NULL;
			if (!n)
				break;
			ev.data.ptr = n;
			epoll_ctl(p->epfd, EPOLL_CTL_MOD, n->fd, &ev);
			listener_retire(p, l, false);
			if (!p->idx)
				listener_said(p, n);
			break;
		case LC_ADD:
			if (p->draining)
				break; /* closed with the settings */
			n = amb_take(p, &ch->a, ch->fd);
			if (!n)
				break;
			ch->fd = -1;
			ev.data.ptr = n;
			if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, n->fd, &ev)) {
				pr_warn("proxy: worker %u: epoll: %s\n", p->idx,
					strerror(errno));
				listener_retire(p, n, true);
				break;
			}
			if (!p->idx)
				listener_said(p, n);
			break;
		}
	}
	listeners_changes_free(set);
}
