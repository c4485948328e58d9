// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* sidelane's configuration and policy files (see config.h), user side only.
 *
 * A file goes through three passes:
 *  1. libyaml's event stream, walked once: YAML syntax errors, and an index
 *     of every node's path ("policy.rules[2].cidr") and line, since libcyaml
 *     gives its caller no line numbers (doc.c);
 *  2. libcyaml against the schema (schema.c): structure, key names, required
 *     keys, list lengths; its log messages are captured and its backtrace
 *     turned back into a path, hence a line (doc.c);
 *  3. validation of every value into the plain structs of config.h (here).
 * Defaults are sl_config_default_yaml itself (default.c): it is loaded first
 * and a file only overrides the keys it has, so the documented default and
 * the real one cannot drift apart. A load that fails leaves the caller's
 * struct as it was.
 *
 * CIDRs: a v4-mapped prefix (::ffff:10.0.0.0/104, any length >= 96) is
 * stored as the IPv4 prefix it spells (AF_INET 10.0.0.0/8), so a policy
 * cannot be bypassed by spelling; bits set after the prefix length
 * (10.0.0.1/8) are rejected, not masked. Endpoints [::ffff:a.b.c.d]:p
 * likewise become AF_INET socket addresses.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <cyaml/cyaml.h>
#include "sidelane.h"
#include "config/config.h"
#include "config/doc.h"
#include "config/schema.h"
#include "config/values.h"
#include "tls/spiffe.h"
#include "lib/util.h"

/* fastpath.app_sockets (include/admission.h has what each admits) */
const char *const sl_app_sockets_name[SL_APP_NR] = {
	[SL_APP_SAFE] = "safe",
	[SL_APP_SEND] = "send",
	[SL_APP_ALL] = "all",
	[SL_APP_NONE] = "none",
};

int sl_app_sockets_parse(const char *name, uint32_t *mode)
{
	uint32_t i;

	for (i = 0; i < SL_APP_NR; i++)
		if (!strcmp(name, sl_app_sockets_name[i])) {
			*mode = i;
			return 0;
		}
	return -EINVAL;
}

int sl_id_rules_decide(const struct sl_id_rule_cfg *rules, unsigned int n,
		       uint16_t port, const char *id, enum sl_action *act)
{
	unsigned int i;

	for (i = 0; id && i < n; i++)
		if (sl_ports_match(rules[i].ports, rules[i].n_ports, port) &&
		    sl_spiffe_match(rules[i].id, id)) {
			*act = rules[i].action;
			return (int)i;
		}
	return -1;
}

/* Host names: letters, digits, '-', '_' and '.'; IPv6 addresses bracketed. */
static int upstream_parse(const char *s, struct sl_ambassador *amb,
			  const char **why)
{
	struct in6_addr a6;

	if (sl_hostport_split(s, amb->upstream_host, sizeof(amb->upstream_host),
			   &amb->upstream_port, why))
		return -EINVAL;
	if (*s == '[' && inet_pton(AF_INET6, amb->upstream_host, &a6) != 1) {
		*why = "not an IPv6 address in the brackets";
		return -EINVAL;
	}
	if (*s != '[' &&
	    strspn(amb->upstream_host,
		   "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		   "0123456789-_.") != strlen(amb->upstream_host)) {
		*why = "not a host name or address";
		return -EINVAL;
	}
	return 0;
}


/* ---- Pass 3: values into config.h's structs ----------------------------- */

static int apply_fastpath(struct doc *d, const struct raw_fastpath *r,
			  struct sl_config *cfg)
{
	const char *path = "fastpath.exclude_ports", *why;
	char ipath[PATH_LEN];
	unsigned int i, j;

	if (r->app_sockets &&
	    sl_app_sockets_parse(r->app_sockets, &cfg->fastpath.app_sockets))
		return doc_fail(d, doc_line(d, "fastpath.app_sockets"),
				 "fastpath.app_sockets",
				 "\"%s\" is not safe, send, all or none",
				 r->app_sockets);
	if (!doc_has(d, path))
		return 0;
	for (i = 0; i < r->exclude_ports_count; i++) {
		uint16_t *p = &cfg->fastpath.exclude_ports[i];

		doc_path_index(ipath, path, i);
		if (sl_port_parse(r->exclude_ports[i], p, &why))
			return doc_fail(d, doc_line(d, ipath), path,
					 "bad port \"%s\" (%s)",
					 r->exclude_ports[i],
					 strchr(r->exclude_ports[i], '-') ?
						 "single ports here, not ranges" :
						 why);
		for (j = 0; j < i; j++)
			if (cfg->fastpath.exclude_ports[j] == *p)
				return doc_fail(d, doc_line(d, ipath), path,
						 "port %u listed twice", *p);
	}
	cfg->fastpath.n_exclude_ports = r->exclude_ports_count;
	return 0;
}

static int apply_capture(struct doc *d, const struct raw_capture *r,
			 struct sl_config *cfg)
{
	uint64_t mark;
	int err;

	err = get_bool(d, "capture.enabled", r->enabled, &cfg->capture.enabled);
	if (!err && r->outbound)
		err = get_endpoint(d, "capture.outbound", "capture",
				   "outbound", r->outbound,
				   &cfg->capture.outbound);
	/* connect4 rewrites to an IPv4 address; IPv6 captures go to [::1] on
	 * the same port. Said here, before anything is attached.
	 */
	if (!err && r->outbound &&
	    cfg->capture.outbound.addr.ss_family != AF_INET)
		err = doc_fail(d, doc_line(d, "capture.outbound"), "capture",
				"outbound \"%s\" must be an IPv4 loopback address "
				"(IPv6 captures go to [::1] on the same port)",
				r->outbound);
	if (!err && r->mark) {
		err = get_num(d, "capture.mark", r->mark, 1, UINT32_MAX, 1, &mark);
		if (!err)
			cfg->capture.mark = (uint32_t)mark;
	}
	if (!err)
		err = get_cidrs(d, "capture.include_cidrs", r->include_cidrs,
				r->include_cidrs_count, cfg->capture.include_cidrs,
				&cfg->capture.n_include_cidrs);
	if (!err)
		err = get_cidrs(d, "capture.exclude_cidrs", r->exclude_cidrs,
				r->exclude_cidrs_count, cfg->capture.exclude_cidrs,
				&cfg->capture.n_exclude_cidrs);
	if (!err)
		err = get_port_ranges(d, "capture.include_ports", r->include_ports,
				      r->include_ports_count,
				      cfg->capture.include_ports,
				      &cfg->capture.n_include_ports);
	if (!err)
		err = get_port_ranges(d, "capture.exclude_ports", r->exclude_ports,
				      r->exclude_ports_count,
				      cfg->capture.exclude_ports,
				      &cfg->capture.n_exclude_ports);
	return err;
}

/* After capture is applied: an ambassador cannot take the outbound port. */
static int apply_ambassadors(struct doc *d, const struct raw_proxy *r,
			     struct sl_config *cfg)
{
	const char *list = "proxy.ambassadors", *why;
	char path[PATH_LEN], fpath[PATH_LEN], what[PATH_LEN];
	unsigned int i, j;
	int err;

	if (!doc_has(d, list))
		return 0;
	for (i = 0; i < r->ambassadors_count; i++) {
		const struct raw_ambassador *ra = &r->ambassadors[i];
		struct sl_ambassador *a = &cfg->proxy.ambassadors[i];
		unsigned int line;

		doc_path_index(path, list, i);
		snprintf(what, sizeof(what), "ambassador %u", i + 1);
		doc_path_join(fpath, path, "listen");
		err = get_endpoint(d, fpath, what, "listen", ra->listen,
				   &a->listen);
		if (err)
			return err;
		line = doc_line(d, fpath);
		if (cfg->capture.enabled &&
		    sl_endpoint_equal(&a->listen, &cfg->capture.outbound))
			return doc_fail(d, line, what,
					 "listen \"%s\" is capture.outbound's "
					 "address",
					 ra->listen);
		for (j = 0; j < i; j++)
			if (sl_endpoint_equal(&a->listen,
					   &cfg->proxy.ambassadors[j].listen))
				return doc_fail(d, line, what,
						 "listen \"%s\" already used "
						 "by ambassador %u",
						 ra->listen, j + 1);
		doc_path_join(fpath, path, "upstream");
		if (upstream_parse(ra->upstream, a, &why))
			return doc_fail(d, doc_line(d, fpath), what,
					 "bad upstream \"%s\" (%s)",
					 ra->upstream, why);
	}
	cfg->proxy.n_ambassadors = r->ambassadors_count;
	return 0;
}

static int apply_proxy(struct doc *d, const struct raw_proxy *r,
		       struct sl_config *cfg)
{
	int err;

	err = get_uint(d, "proxy.connect_timeout_ms", r->connect_timeout_ms, 1,
		       86400000, &cfg->proxy.connect_timeout_ms);
	if (!err)
		err = get_uint(d, "proxy.idle_timeout_ms", r->idle_timeout_ms, 1,
			       86400000, &cfg->proxy.idle_timeout_ms);
	if (!err)
		err = get_uint(d, "proxy.buffer_bytes", r->buffer_bytes, 4096,
			       16u << 20, &cfg->proxy.buffer_bytes);
	if (!err)
		err = get_uint(d, "proxy.max_conns", r->max_conns, 1, 1000000,
			       &cfg->proxy.max_conns);
	if (!err && r->workers) {
		if (!strcmp(r->workers, "auto"))
			cfg->proxy.workers = 0;
		else if (r->workers[0] < '0' || r->workers[0] > '9')
			err = doc_fail(d, doc_line(d, "proxy.workers"),
					"proxy.workers",
					"\"%s\" is not auto or a number (1..%u)",
					r->workers, SL_CFG_MAX_WORKERS);
		else
			err = get_uint(d, "proxy.workers", r->workers, 1,
				       SL_CFG_MAX_WORKERS, &cfg->proxy.workers);
	}
	if (!err)
		err = get_bool(d, "proxy.splice", r->splice, &cfg->proxy.splice);
	if (!err)
		err = get_bool(d, "proxy.external", r->external,
			       &cfg->proxy.external);
	if (!err)
		err = apply_ambassadors(d, r, cfg);
	return err;
}

/* A SPIFFE ID pattern: "*", an exact ID, or an ID prefix ending in a slash
 * and a star.
 */
static int id_pattern_check(const char *s, const char **why)
{
	char buf[SL_CFG_ID_LEN];
	size_t n = strlen(s);

	*why = "not a SPIFFE ID (spiffe://trust-domain/path), a prefix "
	       "ending in /*, or *";
	if (!strcmp(s, "*"))
		return 0;
	if (n >= sizeof(buf)) {
		*why = "too long";
		return -EINVAL;
	}
	strcpy(buf, s);
	/* a prefix pattern is valid when the same with "x" for its star is */
	if (n >= 2 && !strcmp(buf + n - 2, "/*"))
		buf[n - 1] = 'x';
	return sl_spiffe_parse(buf, NULL, 0) ? -EINVAL : 0;
}

static int get_id_pattern(struct doc *d, const char *path, const char *what,
			  const char *s, char *out)
{
	const char *why;

	if (id_pattern_check(s, &why))
		return doc_fail(d, doc_line(d, path), what,
				 "bad identity \"%s\" (%s)", s, why);
	strcpy(out, s);
	return 0;
}

static int apply_mesh(struct doc *d, const struct raw_tls *r,
		      struct sl_config *cfg)
{
	const char *list = "tls.mesh", *why;
	char path[PATH_LEN], fpath[PATH_LEN], what[32];
	unsigned int i, j;
	int err;

	if (!doc_has(d, list))
		return 0;
	for (i = 0; i < r->mesh_count; i++) {
		const struct raw_mesh *rm = &r->mesh[i];
		struct sl_mesh_dst *m = &cfg->tls.mesh[i];

		memset(m, 0, sizeof(*m));
		doc_path_index(path, list, i);
		snprintf(what, sizeof(what), "mesh %u", i + 1);
		doc_path_join(fpath, path, "cidr");
		if (sl_cidr_parse(rm->cidr, &m->cidr, &why))
			return doc_fail(d, doc_line(d, fpath), what,
					 "bad cidr \"%s\" (%s)", rm->cidr, why);
		doc_path_join(fpath, path, "ports");
		err = get_port_ranges(d, fpath, rm->ports, rm->ports_count,
				      m->ports, &m->n_ports);
		for (j = 0; !err && j < rm->identities_count; j++) {
			char ipath[PATH_LEN];

			doc_path_join(fpath, path, "identities");
			doc_path_index(ipath, fpath, j);
			err = get_id_pattern(d, ipath, what, rm->identities[j],
					     m->ids[j]);
		}
		if (err)
			return err;
		m->n_ids = rm->identities_count;
	}
	cfg->tls.n_mesh = r->mesh_count;
	return 0;
}

static int apply_tls(struct doc *d, const struct raw_tls *r,
		     struct sl_config *cfg)
{
	int err, given;

	err = get_string(d, "tls.cert", r->cert, cfg->tls.cert,
			 sizeof(cfg->tls.cert));
	if (!err)
		err = get_string(d, "tls.key", r->key, cfg->tls.key,
				 sizeof(cfg->tls.key));
	if (!err)
		err = get_string(d, "tls.ca", r->ca, cfg->tls.ca,
				 sizeof(cfg->tls.ca));
	if (!err)
		err = get_string(d, "tls.trust_domain", r->trust_domain,
				 cfg->tls.trust_domain,
				 sizeof(cfg->tls.trust_domain));
	if (!err && r->trust_domain && r->trust_domain[0]) {
		char id[300];

		snprintf(id, sizeof(id), "spiffe://%s/x", r->trust_domain);
		if (strchr(r->trust_domain, '/') ||
		    sl_spiffe_parse(id, NULL, 0))
			err = doc_fail(d, doc_line(d, "tls.trust_domain"),
					"tls.trust_domain",
					"\"%s\" is not a trust domain (lower "
					"case letters, digits, '.', '-', '_')",
					r->trust_domain);
	}
	if (!err && r->min_version) {
		if (!strcmp(r->min_version, "1.2") ||
		    !strcmp(r->min_version, "1.3"))
			cfg->tls.allow_tls12 = !strcmp(r->min_version, "1.2");
		else
			err = doc_fail(d, doc_line(d, "tls.min_version"),
					"tls.min_version",
					"\"%s\" is not \"1.2\" or \"1.3\"",
					r->min_version);
	}
	if (!err)
		err = get_string(d, "tls.alpn", r->alpn, cfg->tls.alpn,
				 sizeof(cfg->tls.alpn));
	if (!err)
		err = get_uint(d, "tls.handshake_timeout_ms",
			       r->handshake_timeout_ms, 1, 600000,
			       &cfg->tls.handshake_timeout_ms);
	if (!err)
		err = get_uint(d, "tls.reload_interval_ms", r->reload_interval_ms,
			       100, 3600000, &cfg->tls.reload_interval_ms);
	if (!err)
		err = apply_mesh(d, r, cfg);
	if (err)
		return err;
	given = !!cfg->tls.cert[0] + !!cfg->tls.key[0] + !!cfg->tls.ca[0];
	if (given && given < 3)
		return doc_fail(d, doc_line(d, "tls"), "tls",
				 "cert, key and ca go together (%s missing)",
				 !cfg->tls.cert[0] ? "cert" :
				 !cfg->tls.key[0]  ? "key" :
						     "ca");
	cfg->tls.enabled = given == 3;
	return 0;
}

static int apply_inbound(struct doc *d, const struct raw_inbound *r,
			 struct sl_config *cfg)
{
	const char *list = "inbound.identities", *why;
	char path[PATH_LEN], fpath[PATH_LEN], what[32];
	unsigned int i;
	uint64_t v;
	int err;

	err = get_bool(d, "inbound.enabled", r->enabled, &cfg->inbound.enabled);
	if (!err && r->listen && sl_endpoint_parse(r->listen, &cfg->inbound.listen,
						&why))
		err = doc_fail(d, doc_line(d, "inbound.listen"), "inbound",
				"bad listen \"%s\" (%s)", r->listen, why);
	if (!err && r->mode) {
		if (!strcmp(r->mode, "auto"))
			cfg->inbound.mode = SL_INBOUND_AUTO;
		else if (!strcmp(r->mode, "sk_lookup"))
			cfg->inbound.mode = SL_INBOUND_SK_LOOKUP;
		else if (!strcmp(r->mode, "listener"))
			cfg->inbound.mode = SL_INBOUND_LISTENER;
		else
			err = doc_fail(d, doc_line(d, "inbound.mode"),
					"inbound.mode",
					"\"%s\" is not auto, sk_lookup or "
					"listener",
					r->mode);
	}
	if (!err)
		err = get_port_ranges(d, "inbound.ports", r->ports,
				      r->ports_count, cfg->inbound.ports,
				      &cfg->inbound.n_ports);
	if (!err)
		err = get_port_ranges(d, "inbound.exclude_ports",
				      r->exclude_ports, r->exclude_ports_count,
				      cfg->inbound.exclude_ports,
				      &cfg->inbound.n_exclude_ports);
	if (!err && r->app_port) {
		err = get_num(d, "inbound.app_port", r->app_port, 0, 65535, 0,
			      &v);
		if (!err)
			cfg->inbound.app_port = (uint16_t)v;
	}
	if (!err)
		err = get_bool(d, "inbound.fail_open", r->fail_open,
			       &cfg->inbound.fail_open);
	if (!err && r->default_action)
		err = get_action(d, "inbound.default", "inbound.default",
				 r->default_action, &cfg->inbound.id_default);
	if (err || !doc_has(d, list))
		return err;
	for (i = 0; i < r->identities_count; i++) {
		const struct raw_id_rule *rr = &r->identities[i];
		struct sl_id_rule_cfg *ir = &cfg->inbound.ids[i];

		memset(ir, 0, sizeof(*ir));
		doc_path_index(path, list, i);
		snprintf(what, sizeof(what), "identity rule %u", i + 1);
		ir->line = doc_line(d, path);
		doc_path_join(fpath, path, "id");
		err = get_id_pattern(d, fpath, what, rr->id, ir->id);
		if (!err) {
			doc_path_join(fpath, path, "action");
			err = get_action(d, fpath, what, rr->action,
					 &ir->action);
		}
		if (!err) {
			doc_path_join(fpath, path, "ports");
			err = get_port_ranges(d, fpath, rr->ports,
					      rr->ports_count, ir->ports,
					      &ir->n_ports);
		}
		if (err)
			return err;
	}
	cfg->inbound.n_ids = r->identities_count;
	return 0;
}

static int apply_admin(struct doc *d, const struct raw_admin *r,
		       struct sl_config *cfg)
{
	int err = 0;

	if (r->listen) {
		cfg->admin.enabled = r->listen[0] != '\0';
		if (cfg->admin.enabled)
			err = get_endpoint(d, "admin.listen", "admin", "listen",
					   r->listen, &cfg->admin.listen);
	}
	if (!err)
		err = get_uint(d, "admin.drain_timeout_ms", r->drain_timeout_ms,
			       0, 3600000, &cfg->admin.drain_timeout_ms);
	return err;
}

/* What only sidelane's own proxy can do. */
static int check_external(struct doc *d, const struct sl_config *cfg)
{
	if (cfg->proxy.n_ambassadors)
		return doc_fail(d, doc_line(d, "proxy.ambassadors"),
				 "proxy.ambassadors",
				 "ambassadors are listeners of sidelane's own "
				 "proxy; with proxy.external the foreign proxy "
				 "serves them");
	if (cfg->tls.enabled)
		return doc_fail(d, doc_line(d, "tls"), "tls",
				 "mutual TLS is done by sidelane's own proxy; "
				 "with proxy.external the foreign proxy does TLS");
	if (cfg->inbound.enabled && cfg->inbound.mode == SL_INBOUND_LISTENER)
		return doc_fail(d, doc_line(d, "inbound.mode"), "inbound.mode",
				 "listener mode with proxy.external leaves "
				 "sidelane nothing to do (peers dial the foreign "
				 "proxy); use sk_lookup or auto, or "
				 "inbound.enabled: false");
	return 0;
}

/* Checks across sections, once the whole file is applied. */
static int check_config(struct doc *d, struct sl_config *cfg)
{
	int err = cfg->proxy.external ? check_external(d, cfg) : 0;

	if (err)
		return err;
	if (cfg->tls.n_mesh && !cfg->tls.enabled)
		return doc_fail(d, doc_line(d, "tls.mesh"), "tls.mesh",
				 "mesh destinations need tls.cert, tls.key "
				 "and tls.ca");
	if (!cfg->inbound.enabled)
		return 0;
	if (cfg->inbound.n_ids && !cfg->tls.enabled)
		return doc_fail(d, doc_line(d, "inbound.identities"),
				 "inbound.identities",
				 "identity rules need tls (plaintext peers have "
				 "no identity)");
	if (cfg->inbound.mode == SL_INBOUND_LISTENER && !cfg->inbound.app_port)
		return doc_fail(d, doc_line(d, "inbound"), "inbound",
				 "mode listener needs app_port");
	if (cfg->inbound.mode != SL_INBOUND_LISTENER && !cfg->inbound.n_ports)
		return doc_fail(d, doc_line(d, "inbound"), "inbound",
				 "no ports to steer (inbound.ports), or use "
				 "mode listener with app_port");
	if (cfg->capture.enabled &&
	    sl_endpoint_equal(&cfg->inbound.listen, &cfg->capture.outbound))
		return doc_fail(d, doc_line(d, "inbound.listen"), "inbound",
				 "listen is capture.outbound's address");
	return 0;
}

static int apply_rule(struct doc *d, const struct raw_rule *rr,
		      const char *path, unsigned int line, unsigned int idx,
		      struct sl_policy *pol)
{
	struct sl_rule *rule = &pol->rules[idx];
	char fpath[PATH_LEN], what[32];
	const char *why;
	uint64_t id;
	unsigned int i;
	int err;

	snprintf(what, sizeof(what), "rule %u", idx + 1);
	memset(rule, 0, sizeof(*rule));
	rule->line = line;

	doc_path_join(fpath, path, "id");
	err = parse_num(rr->id, 1, UINT32_MAX, 0, &id);
	if (err)
		return doc_fail(d, doc_line(d, fpath), what,
				 "bad id \"%s\" (a number 1..4294967295)",
				 rr->id);
	rule->id = (uint32_t)id;
	for (i = 0; i < idx; i++)
		if (pol->rules[i].id == rule->id)
			return doc_fail(d, doc_line(d, fpath), what,
					 "id %u already used by rule %u (line %u)",
					 rule->id, i + 1, pol->rules[i].line);

	doc_path_join(fpath, path, "action");
	err = get_action(d, fpath, what, rr->action, &rule->action);
	if (err)
		return err;

	doc_path_join(fpath, path, "cidr");
	if (sl_cidr_parse(rr->cidr, &rule->cidr, &why))
		return doc_fail(d, doc_line(d, fpath), what,
				 "bad cidr \"%s\" (%s)", rr->cidr, why);

	for (i = 0; i < rr->ports_count; i++) {
		char ppath[PATH_LEN];

		if (sl_port_range_parse(rr->ports[i], &rule->ports[i], &why)) {
			doc_path_join(fpath, path, "ports");
			doc_path_index(ppath, fpath, i);
			return doc_fail(d, doc_line(d, ppath), what,
					 "bad port range \"%s\" (%s)",
					 rr->ports[i], why);
		}
	}
	rule->n_ports = rr->ports_count;
	return 0;
}

/* prefix: "policy" in a config file, "" in a policy file. */
static int apply_policy(struct doc *d, const struct raw_policy *r,
			const char *prefix, struct sl_policy *pol)
{
	char path[PATH_LEN], list[PATH_LEN];
	unsigned int i;
	size_t cursor = 0; /* rules are indexed in order: one pass for all */
	long at;
	int err;

	if (r->default_action) {
		doc_path_join(path, prefix, "default");
		err = get_action(d, path, path, r->default_action,
				 &pol->default_action);
		if (err)
			return err;
	}
	doc_path_join(list, prefix, "rules");
	if (!doc_has(d, list))
		return 0;
	for (i = 0; i < r->rules_count; i++) {
		doc_path_index(path, list, i);
		at = doc_find(d, path, &cursor);
		err = apply_rule(d, &r->rules[i], path,
				 at >= 0 ? d->nodes[at].line : doc_line(d, path),
				 i, pol);
		if (err)
			return err;
	}
	pol->n_rules = r->rules_count;
	return 0;
}

static int apply_config(struct doc *d, const struct raw_config *r,
			struct sl_config *cfg)
{
	int err;

	err = get_string(d, "pin_root", r->pin_root, cfg->pin_root,
			 sizeof(cfg->pin_root));
	if (!err && r->pin_root && r->pin_root[0] != '/')
		err = doc_fail(d, doc_line(d, "pin_root"), "pin_root",
				"\"%s\" is not an absolute path", r->pin_root);
	if (!err)
		err = get_string(d, "cgroup", r->cgroup, cfg->cgroup,
				 sizeof(cfg->cgroup));
	if (!err && r->fastpath)
		err = apply_fastpath(d, r->fastpath, cfg);
	if (!err && r->capture)
		err = apply_capture(d, r->capture, cfg);
	if (!err && r->proxy)
		err = apply_proxy(d, r->proxy, cfg);
	if (!err && r->tls)
		err = apply_tls(d, r->tls, cfg);
	if (!err && r->inbound)
		err = apply_inbound(d, r->inbound, cfg);
	if (!err && r->admin)
		err = apply_admin(d, r->admin, cfg);
	if (!err && r->limits)
		err = get_uint(d, "limits.max_conns", r->limits->max_conns,
			       SL_LIMIT_CONNS_MIN, SL_LIMIT_CONNS_MAX,
			       &cfg->limits.max_conns);
	if (!err && r->accounting) {
		const struct raw_accounting *a = r->accounting;

		err = get_string(d, "accounting.access_log", a->access_log,
				 cfg->accounting.access_log,
				 sizeof(cfg->accounting.access_log));
		if (!err && a->access_log && a->access_log[0] &&
		    a->access_log[0] != '/')
			err = doc_fail(d, doc_line(d, "accounting.access_log"),
					"accounting.access_log",
					"\"%s\" is not an absolute path",
					a->access_log);
		if (!err)
			err = get_uint(d, "accounting.max_bytes", a->max_bytes,
				       4096, 1U << 30, &cfg->accounting.max_bytes);
		if (!err)
			err = get_uint(d, "accounting.keep", a->keep, 0, 100,
				       &cfg->accounting.keep);
	}
	if (!err && r->policy)
		err = apply_policy(d, r->policy, "policy", &cfg->policy);
	if (!err)
		err = check_config(d, cfg);
	return err;
}

/* Load one config document over *cfg; cfg is left as is on error. */
static int config_apply_doc(const char *path, struct sl_config *cfg, char *err,
			    size_t errlen)
{
	const cyaml_config_t cy = { .mem_fn = cyaml_mem };
	struct doc d = { .name = path ? path : "<default>", .err = err,
			 .errlen = errlen };
	struct raw_config *raw = NULL;
	struct sl_config *tmp;
	int ret;

	tmp = malloc(sizeof(*tmp));
	if (!tmp)
		return -ENOMEM;
	memcpy(tmp, cfg, sizeof(*tmp));
	ret = doc_load(&d, path, sl_config_default_yaml, &sl_cfg_schema,
		       (void **)&raw);
	if (!ret && raw)
		ret = apply_config(&d, raw, tmp);
	if (!ret && path)
		sl_hex(tmp->version, d.sha256, SL_CFG_VERSION_LEN / 2);
	if (!ret)
		memcpy(cfg, tmp, sizeof(*cfg));
	if (raw)
		cyaml_free(&cy, &sl_cfg_schema, raw, 0);
	doc_free(&d);
	free(tmp);
	return ret;
}

int sl_config_load(const char *path, struct sl_config *cfg, char *err,
		   size_t errlen)
{
	struct sl_config *tmp;
	int ret;

	if (err && errlen)
		err[0] = '\0';
	tmp = calloc(1, sizeof(*tmp));
	if (!tmp)
		return -ENOMEM;
	/* The default document first, then the file's keys over it. */
	snprintf(tmp->version, sizeof(tmp->version), "default");
	ret = config_apply_doc(NULL, tmp, err, errlen);
	if (!ret && path)
		ret = config_apply_doc(path, tmp, err, errlen);
	if (!ret) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		tmp->loaded_ms = (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
		memcpy(cfg, tmp, sizeof(*cfg));
	}
	free(tmp);
	return ret;
}

int sl_policy_load(const char *path, struct sl_policy *pol, char *err,
		   size_t errlen)
{
	const cyaml_config_t cy = { .mem_fn = cyaml_mem };
	struct doc d = { .name = path, .err = err, .errlen = errlen };
	struct raw_policy *raw = NULL;
	struct sl_config *def;
	struct sl_policy *tmp;
	int ret;

	if (err && errlen)
		err[0] = '\0';
	def = malloc(sizeof(*def));
	if (!def)
		return -ENOMEM;
	/* Start from the default's policy (path NULL: that is the result). */
	ret = sl_config_load(NULL, def, err, errlen);
	if (ret || !path)
		goto out;
	tmp = &def->policy;
	ret = doc_load(&d, path, NULL, &sl_policy_file_schema, (void **)&raw);
	if (!ret && !raw)
		ret = doc_fail(&d, 0, NULL,
				"empty policy (write \"rules: []\" for none)");
	if (!ret)
		ret = apply_policy(&d, raw, "", tmp);
out:
	if (!ret)
		memcpy(pol, &def->policy, sizeof(*pol));
	if (raw)
		cyaml_free(&cy, &sl_policy_file_schema, raw, 0);
	doc_free(&d);
	free(def);
	return ret;
}
