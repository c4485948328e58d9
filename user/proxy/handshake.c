// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The proxy: a connection's mTLS handshake and its identity policy (see
 * proxy.c). An inbound connection's handshake runs before the app is
 * connected; an outbound one's after the upstream connects, to a mesh
 * destination only.
 */
#define _GNU_SOURCE
#include "proxy/internal.h"

/* ---- TLS: a connection's handshake and identity policy ---- */

/* The mesh entry dst falls in (first match), or NULL: plain TCP. */
const struct sl_mesh_dst *mesh_find(const struct sl_worker *p,
				    const struct sl_settings *set,
				    const struct sockaddr_storage *dst)
{
	uint8_t ip[16];
	uint16_t port;
	unsigned int i;

	if (!p->tls || sl_sockaddr_key(dst, ip, &port))
		return NULL;
	for (i = 0; i < set->n_mesh; i++)
		if (sl_cidr_contains(&set->mesh[i].cidr, AF_INET6, ip) &&
		    sl_ports_match(set->mesh[i].ports, set->mesh[i].n_ports,
				   ntohs(port)))
			return &set->mesh[i];
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
		 id ? id : "(none)", (unsigned int)(c->mesh - c->set->mesh) + 1);
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
	enum sl_action act = c->set->id_default;
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
	i = sl_id_rules_decide(c->set->ids, c->set->n_ids, c->app_port, id,
			       &act);
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

/* Drive c->hs's handshake one step; once done and allowed, go on: outbound
 * to relay, inbound to connecting the app.
 */
void hs_step(struct sl_worker *p, struct sl_conn *c)
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
	timer_set(c, T_CONNECT);
	conn_connect(p, c);
	conn_update(p, c); /* the app side may read while we connect */
}

/* Start a handshake on s (an accepted inbound socket, or a connected
 * upstream to a mesh destination), with its own deadline.
 */
void hs_start(struct sl_worker *p, struct sl_conn *c, struct sl_side *s)
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
	timer_set(c, T_HANDSHAKE);
	hs_step(p, c);
}

/* At proxy.max_conns a new connection takes the slot of this worker's
 * oldest inbound handshake: a peer that has not yet proved who it is has
 * no claim on a slot, and without this a crowd of silent peers would shut
 * every client out until their handshake deadline. Outbound handshakes
 * belong to the app's own connections and are never taken. A handshake
 * list is in start order, so the oldest is the first inbound one of a
 * list, the oldest of those of the worker's settings.
 */
bool hs_evict(struct sl_worker *p)
{
	struct sl_conn *c, *oldest = NULL;
	struct sl_settings *set;
	int n;

	for (set = p->set; set; set = set->next)
		for (c = set->timers[T_HANDSHAKE].head, n = 0;
		     c && n < SL_EVICT_SCAN; c = c->next, n++) {
			if (c->hs != &c->app)
				continue;
			if (!oldest || c->t_hs < oldest->t_hs)
				oldest = c;
			break;
		}
	if (!oldest)
		return false;
	conn_close(p, oldest, SL_CLOSE_TLS_EVICTED, "proxy.max_conns reached");
	return true;
}
