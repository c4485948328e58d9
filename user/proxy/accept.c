// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The proxy: accepting on the listeners, a new connection's start (see
 * proxy.c).
 */
#define _GNU_SOURCE
#include "proxy/internal.h"

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
static int inbound_dst(const struct sl_listener *l, int fd, struct sl_conn *c)
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
		port = c->set->app_port;
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

/* Where an accepted connection goes, by its listener: the original
 * destination (outbound capture; not one of ours, and allowed), the app's
 * port (inbound), or the ambassador's numeric upstream (allowed); a name
 * is resolved later. False when c was closed (counted, why given).
 */
static bool dst_decide(struct sl_worker *p, struct sl_listener *l, int fd,
		       struct sl_conn *c)
{
	int err;

	if (l->transparent) {
		err = orig_dst(fd, &c->dst.a[0], &c->dst.len[0]);
		if (err == -ELOOP) {
			c->dst.n = 1;
			conn_close(p, c, SL_CLOSE_LOOP, NULL);
			return false;
		}
		if (err) {
			conn_close(p, c, SL_CLOSE_NO_ORIG_DST, strerror(-err));
			return false;
		}
		c->dst.n = 1;
		if (is_own_listener(p, &c->dst.a[0])) {
			conn_close(p, c, SL_CLOSE_LOOP, NULL);
			return false;
		}
		return dst_allowed(p, c);
	}
	if (l->inbound) {
		err = inbound_dst(l, fd, c);
		if (err)
			conn_close(p, c, err == -ELOOP ? SL_CLOSE_LOOP :
					 SL_CLOSE_NO_ORIG_DST,
				   err == -ELOOP ? "app port is ours" :
				   "dialed the inbound listener itself and no "
				   "inbound.app_port");
		return !err;
	}
	if (l->numeric) {
		c->dst = l->up;
		return dst_allowed(p, c);
	}
	return true;
}

static void conn_accepted(struct sl_worker *p, struct sl_listener *l, int fd,
			  const struct sockaddr_storage *peer,
			  socklen_t peerlen)
{
	struct sl_conn *c;

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
	c->set = p->set;
	c->set->conns++;
	c->app.tag = c->up.tag = TAG_SIDE;
	c->app.c = c->up.c = c;
	c->app.fd = fd;
	reset_on_close(fd, true);
	c->up.fd = -1;
	c->tlist = -1;
	sl_splice_init(&c->sp);
	c->l = l;
	l->conns++;
	c->peer = *peer;
	c->peerlen = peerlen;
	c->t_start = c->t_last = c->t_conn = p->now;
	c->state = ST_CONNECTING;
	STAT_ADD(p, active, 1);
	STAT_ADD(p, active_dir[dir_of(l)], 1);

	if (__atomic_add_fetch(&p->grp->active, 1, __ATOMIC_RELAXED) >
		    p->set->max_conns &&
	    p->set->max_conns && !hs_evict(p)) {
		conn_close(p, c, SL_CLOSE_TOO_MANY, NULL);
		return;
	}
	if (!dst_decide(p, l, fd, c))
		return;
	c->to_up.size = c->to_app.size = c->set->bufsz; /* memory on demand */
	set_nodelay(fd);
	if (l->inbound && p->tls) {
		/* nothing reaches the app before the peer is authenticated
		 * and allowed: the app connect waits for the handshake
		 */
		hs_start(p, c, &c->app);
		return;
	}
	timer_set(c, T_CONNECT);
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

void listener_event(struct sl_worker *p, struct sl_listener *l)
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

/* The proxy applies the kernel's policy to what it connects to on its own
 * (ambassador upstreams; the transparent path's single original destination
 * the same way): denied candidates are dropped, and with none left the
 * connection ends. Fails closed: any non-zero answer denies.
 */
bool dst_allowed(struct sl_worker *p, struct sl_conn *c)
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
