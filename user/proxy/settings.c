// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The proxy: the settings each connection keeps for its life, and their
 * change by a config reload (see internal.h, struct sl_settings), which
 * also carries each worker's share of the ambassadors' changes
 * (listeners.c).
 *
 * A reload builds one copy per worker on the reloading thread and leaves it
 * in the worker's pending slot; the worker takes it at the top of its loop,
 * so nothing a loop reads is ever written by another thread. The next
 * reload waits until every worker has taken the last one: the listener
 * changes it carries are computed from the last ones.
 */
#define _GNU_SOURCE
#include "proxy/internal.h"

#define SL_TAKE_WAIT_MS 2000 /* for every worker to take the last settings */

static void settings_free(struct sl_settings *set)
{
	if (!set)
		return;
	listeners_changes_free(set); /* sockets of a reload not taken */
	free(set->mesh);
	free(set->ids);
	free(set);
}

/* The parts of cfg a connection keeps. NULL when out of memory. */
static struct sl_settings *settings_new(const struct sl_config *cfg)
{
	struct sl_settings *set = calloc(1, sizeof(*set));

	if (!set)
		return NULL;
	set->connect_ms = cfg->proxy.connect_timeout_ms;
	set->idle_ms = cfg->proxy.idle_timeout_ms;
	set->drain_ms = cfg->admin.drain_timeout_ms;
	set->max_conns = cfg->proxy.max_conns;
	set->bufsz = cfg->proxy.buffer_bytes ? cfg->proxy.buffer_bytes :
					       SL_DEFAULT_BUFFER;
	set->app_port = cfg->inbound.app_port;
	set->hs_ms = cfg->tls.handshake_timeout_ms;
	set->reload_ms = cfg->tls.reload_interval_ms;
	set->id_default = cfg->inbound.id_default ? cfg->inbound.id_default :
						    SL_ACTION_ALLOW;
	set->n_mesh = cfg->tls.n_mesh;
	set->n_ids = cfg->inbound.n_ids;
	set->mesh = calloc(set->n_mesh + 1, sizeof(*set->mesh));
	set->ids = calloc(set->n_ids + 1, sizeof(*set->ids));
	if (!set->mesh || !set->ids) {
		settings_free(set);
		return NULL;
	}
	memcpy(set->mesh, cfg->tls.mesh, set->n_mesh * sizeof(*set->mesh));
	memcpy(set->ids, cfg->inbound.ids, set->n_ids * sizeof(*set->ids));
	return set;
}

int settings_init(struct sl_worker *p, const struct sl_config *cfg)
{
	p->set = settings_new(cfg);
	return p->set ? 0 : -ENOMEM;
}

/* Unlink set from the worker's list and free it: the last connection
 * holding it is gone and new ones get newer settings.
 */
static void settings_drop(struct sl_worker *p, struct sl_settings *set)
{
	struct sl_settings **pp;

	for (pp = &p->set; *pp; pp = &(*pp)->next)
		if (*pp == set) {
			*pp = set->next;
			break;
		}
	settings_free(set);
}

void settings_release(struct sl_worker *p, struct sl_conn *c)
{
	struct sl_settings *set = c->set;

	c->set = NULL;
	if (set && !--set->conns && set != p->set)
		settings_drop(p, set);
}

void settings_take(struct sl_worker *p)
{
	struct sl_settings *set, *old;

	set = __atomic_exchange_n(&p->pending, NULL, __ATOMIC_ACQUIRE);
	if (!set)
		return;
	old = p->set;
	set->next = old;
	p->set = set;
	listeners_take(p, set);
	/* the TLS files' check comes at the new interval from now */
	p->reload_at = p->now + set->reload_ms;
	buf_pool_size(p, set->bufsz);
	if (old && !old->conns)
		settings_drop(p, old);
}

void settings_fini(struct sl_worker *p)
{
	struct sl_settings *set;

	settings_free(__atomic_exchange_n(&p->pending, NULL, __ATOMIC_ACQUIRE));
	while ((set = p->set)) {
		p->set = set->next;
		settings_free(set);
	}
}

/* Each worker has taken what the last reload handed it (within
 * SL_TICK_MS, unless it is stuck or stopping): a reload's listener
 * changes are computed from the last ones, so none may be dropped
 * untaken. 0 or -EBUSY after SL_TAKE_WAIT_MS.
 */
static int all_taken(struct sl_proxy *g, char *why, size_t len)
{
	unsigned int i, t;

	for (t = 0; t < SL_TAKE_WAIT_MS; t += 5) {
		for (i = 0; i < g->n; i++)
			if (__atomic_load_n(&g->w[i]->pending, __ATOMIC_ACQUIRE))
				break;
		if (i == g->n)
			return 0;
		usleep(5000);
	}
	snprintf(why, len, "proxy: worker %u has not taken the last version's "
		 "settings in %d ms", i, SL_TAKE_WAIT_MS);
	return -EBUSY;
}

int sl_proxy_reconfigure(struct sl_proxy *g, const struct sl_config *cfg,
			 char *why, size_t len)
{
	struct sl_settings **sets;
	unsigned int i;
	int err;

	err = all_taken(g, why, len);
	if (err)
		return err;
	sets = calloc(g->n, sizeof(*sets));
	if (!sets)
		return -ENOMEM;
	/* all or none: built (new listeners bound) first, then handed over */
	for (i = 0; i < g->n && !err; i++) {
		sets[i] = settings_new(cfg);
		err = sets[i] ? 0 : -ENOMEM;
	}
	if (!err)
		err = listeners_prepare(g, cfg, sets, why, len);
	if (!err)
		err = listeners_commit(g, cfg);
	for (i = 0; i < g->n; i++) {
		if (err)
			settings_free(sets[i]);
		else
			__atomic_store_n(&g->w[i]->pending, sets[i],
					 __ATOMIC_RELEASE);
	}
	free(sets);
	/* applied means taken: a connection accepted after this returns
	 * gets the new settings (a worker's loop turns every SL_TICK_MS)
	 */
	if (!err && all_taken(g, why, len))
		pr_warn("%s; it takes them when it turns\n", why);
	return err;
}
