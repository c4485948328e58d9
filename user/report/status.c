// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* `sidelane status` and `sidelane policy list`: read back from the pins and
 * printed as text or JSON. The CLI prints to stdout; the admin endpoint
 * (admin.c) serves the same JSON as /stats.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "loader/policy_user.h"
#include "lib/addr.h"
#include "lib/json.h"
#include "sidelane.h"
#include "report/status.h"
#include "lib/util.h"

#define X(fld, help)                                                           \
	{ #fld, "sidelane_fastpath_" #fld "_total", NULL, SL_CTR_COUNTER, help, \
	  offsetof(struct sl_counters, fld) },
const struct sl_ctr sl_fp_ctrs[] = { SL_FP_COUNTERS(X) };
#undef X
const size_t sl_fp_ctrs_n = SL_CTR_N(sl_fp_ctrs);

const struct sl_ctr sl_cap_ctrs[] = {
	{ "origdst_answered", "sidelane_capture_origdst_total",
	  "result=\"answered\"", SL_CTR_COUNTER,
	  "SO_ORIGINAL_DST queries answered, or missed (a socket capture "
	  "knows nothing of).",
	  offsetof(struct sl_capture_stats, origdst_answered) },
	{ "origdst_missed", "sidelane_capture_origdst_total",
	  "result=\"missed\"", SL_CTR_COUNTER, NULL,
	  offsetof(struct sl_capture_stats, origdst_missed) },
};
const size_t sl_cap_ctrs_n = SL_CTR_N(sl_cap_ctrs);

#define IN_LOOKUPS "sidelane_inbound_lookups_total"
const struct sl_ctr sl_in_ctrs[] = {
	{ "steered", IN_LOOKUPS, "result=\"steered\"", SL_CTR_COUNTER,
	  "TCP listener lookups seen by sk_lookup: steered to the sidecar, "
	  "passed (port not captured), loopback and local_src (from inside: "
	  "left alone), no_listener (refused or let through, per fail_open), "
	  "assign_err.",
	  offsetof(struct sl_in_status, steered) },
	{ "passed", IN_LOOKUPS, "result=\"passed\"", SL_CTR_COUNTER, NULL,
	  offsetof(struct sl_in_status, passed) },
	{ "loopback", IN_LOOKUPS, "result=\"loopback\"", SL_CTR_COUNTER, NULL,
	  offsetof(struct sl_in_status, loopback) },
	{ "local_src", IN_LOOKUPS, "result=\"local_src\"", SL_CTR_COUNTER, NULL,
	  offsetof(struct sl_in_status, local_src) },
	{ "no_listener", IN_LOOKUPS, "result=\"no_listener\"", SL_CTR_COUNTER,
	  NULL, offsetof(struct sl_in_status, no_listener) },
	{ "assign_err", IN_LOOKUPS, "result=\"assign_err\"", SL_CTR_COUNTER,
	  NULL, offsetof(struct sl_in_status, assign_err) },
};
const size_t sl_in_ctrs_n = SL_CTR_N(sl_in_ctrs);

int sl_status_read(const char *pin_root, struct sl_status *st)
{
	int err;

	memset(st, 0, sizeof(*st));
	err = sl_fp_status(pin_root, &st->fp);
	if (err)
		return err;
	sl_cap_status(pin_root, &st->cap);
	/* maps pinned by an older build have no proxy counters: zeros */
	if (sl_stats_read(pin_root, &st->pc))
		memset(&st->pc, 0, sizeof(st->pc));
	if (sl_in_status(pin_root, &st->in))
		memset(&st->in, 0, sizeof(st->in));
	sl_adm_read(pin_root, &st->adm); /* older pins: adm.present 0 */
	sl_splice_status_read(pin_root, &st->splice); /* likewise */
	sl_footprint_read(pin_root, &st->footprint);
	sl_cfg_info_read(pin_root, &st->ci); /* older pins: pid 0, not shown */
	/* the cgroups the pinned links serve; a partial scan says so itself */
	sl_coexist_scan(st->fp.cgroup_path[0] ? st->fp.cgroup_path : NULL,
			st->cap.sidecar_cgroup[0] ? st->cap.sidecar_cgroup : NULL,
			pin_root, &st->cx);
	return 0;
}

static void print_capture(FILE *f, const struct sl_cap_status *cs, int json)
{
	char ip[INET6_ADDRSTRLEN];
	int i;

	sl_addr_str(cs->cfg.outbound_ip4, ip, sizeof(ip));
	if (json) {
		fprintf(f, ",\"capture\":{\"attached\":%s,\"enabled\":%s,"
			   "\"outbound\":\"%s:%u\",\"sidecar_cgroup\":",
			cs->attached ? "true" : "false",
			cs->cfg.enabled ? "true" : "false", ip,
			cs->cfg.outbound_port);
		sl_json_str(f, cs->sidecar_cgroup);
		fprintf(f, ",\"live\":%u,\"policy\":\"%s\",",
			cs->captured_live,
			cs->policy_configured ? "configured" : "none (default allow)");
		sl_json_by_name(f, "reasons", sl_capture_reason_name,
				cs->stats.reason, 0, SL_CR_NR);
		fputc(',', f);
		sl_ctr_json(f, sl_cap_ctrs, sl_cap_ctrs_n, &cs->stats);
		fputc('}', f);
		return;
	}
	if (!cs->attached) {
		fprintf(f, "capture: not attached\n");
		return;
	}
	if (cs->cfg.enabled)
		fprintf(f, "capture: on, outbound listener %s:%u, SO_ORIGINAL_DST in %s\n",
			ip, cs->cfg.outbound_port, cs->sidecar_cgroup);
	else
		fprintf(f, "capture: off (connect-time policy only)\n");
	fprintf(f, "  policy: %s (`sidelane policy list`)\n",
		cs->policy_configured ? "configured" :
					"none loaded: every destination allowed");
	fprintf(f, "  live captured connections %u; SO_ORIGINAL_DST answered %llu, "
		   "missed %llu\n  connects by reason:", cs->captured_live,
		(unsigned long long)cs->stats.origdst_answered,
		(unsigned long long)cs->stats.origdst_missed);
	for (i = 0; i < SL_CR_NR; i++)
		if (cs->stats.reason[i])
			fprintf(f, " %s=%llu", sl_capture_reason_name[i],
				(unsigned long long)cs->stats.reason[i]);
	fprintf(f, "\n");
}

static void print_fastpath_json(FILE *f, const char *pin_root,
				const struct sl_fp_status *st)
{
	uint32_t i;

	fprintf(f, "\"version\":\"%s\",\"pin_root\":", SL_VERSION);
	sl_json_str(f, pin_root);
	fprintf(f, ",\"attached\":%s,\"cgroup\":", st->attached ? "true" : "false");
	sl_json_str(f, st->cgroup_path);
	fprintf(f, ",\"cgroup_id\":%llu,"
		   "\"sockops_prog_id\":%u,\"sk_msg_prog_id\":%u,"
		   "\"sk_msg_attach\":\"%s\",\"backlog_bound\":%s,",
		(unsigned long long)st->cgroup_id, st->sockops_prog_id,
		st->sk_msg_prog_id, st->sk_msg_link ? "link" : "prog_attach",
		st->backlog_bound ? "true" : "false");
	fprintf(f, "\"redirect\":{\"enabled\":%s,\"off_reason\":",
		st->cfg.redirect_off ? "false" : "true");
	sl_json_str(f, st->cfg.redirect_off ? st->cfg.reason : "");
	fprintf(f, "},");
	fprintf(f, "\"maps\":{\"%s\":{\"entries\":%u,\"max\":%u},"
		   "\"%s\":{\"entries\":%u,\"max\":%u},\"%s\":{\"entries\":%u}},",
		SL_MAP_SOCKHASH, st->sockhash_entries, st->sockhash_max,
		SL_MAP_CONNS, st->conns_entries, st->conns_max,
		SL_MAP_LOCAL_ADDRS, st->local_addrs_entries);
	fprintf(f, "\"excluded_ports\":[");
	for (i = 0; i < st->n_excluded_ports; i++)
		fprintf(f, "%s%u", i ? "," : "", st->excluded_ports[i]);
	fprintf(f, "],\"events_lost\":%llu,\"counters\":{",
		(unsigned long long)st->events_lost);
	sl_ctr_json(f, sl_fp_ctrs, sl_fp_ctrs_n, &st->counters);
	fprintf(f, "}");
}

static void print_fastpath(FILE *f, const char *pin_root,
			   const struct sl_fp_status *st)
{
	uint32_t i;

	fprintf(f, "sidelane %s, pin root %s\n", SL_VERSION, pin_root);
	if (st->attached)
		fprintf(f, "fast path: attached to %s (cgroup id %llu)\n",
			st->cgroup_path[0] ? st->cgroup_path : "?",
			(unsigned long long)st->cgroup_id);
	else
		fprintf(f, "fast path: NOT attached (maps pinned, no sockops link)\n");
	fprintf(f, "  sockops prog id %u (cgroup link), sk_msg prog id %u (%s)\n",
		st->sockops_prog_id, st->sk_msg_prog_id,
		st->sk_msg_link ? "sockmap link" : "attached to map");
	if (st->cfg.redirect_off)
		fprintf(f, "  redirect: OFF, every socket on plain TCP (%.*s)\n",
			(int)sizeof(st->cfg.reason), st->cfg.reason);
	else
		fprintf(f, "  redirect: on (start-up self-test passed)\n");
	if (st->backlog_bound)
		fprintf(f, "  backlog bound: on, messages take TCP while over %u MiB unread\n",
			SL_MAX_BACKLOG >> 20);
	else
		fprintf(f, "  backlog bound: OFF (kernel before 6.15: no psock->msg_tot_len)\n");
	fprintf(f, "  accounting: %llu connection records sent, %llu lost to a "
		   "full ring buffer\n",
		(unsigned long long)st->counters.records_closed,
		(unsigned long long)st->events_lost);
	fprintf(f, "maps:\n  %-16s %u/%u\n  %-16s %u/%u\n  %-16s %u\n",
		SL_MAP_SOCKHASH, st->sockhash_entries, st->sockhash_max,
		SL_MAP_CONNS, st->conns_entries, st->conns_max,
		SL_MAP_LOCAL_ADDRS, st->local_addrs_entries);
	fprintf(f, "excluded ports:");
	for (i = 0; i < st->n_excluded_ports; i++)
		fprintf(f, " %u", st->excluded_ports[i]);
	fprintf(f, "%s\ncounters:\n", st->n_excluded_ports ? "" : " none");
	sl_ctr_text(f, sl_fp_ctrs, sl_fp_ctrs_n, &st->counters, 20);
}

static void print_inbound(FILE *f, const struct sl_in_status *is, int json)
{
	if (json) {
		fprintf(f, ",\"inbound\":{\"sk_lookup\":%s,\"ports\":%u,"
			   "\"listener4\":%s,\"listener6\":%s,",
			is->attached ? "true" : "false", is->n_ports,
			is->listener4 ? "true" : "false",
			is->listener6 ? "true" : "false");
		sl_ctr_json(f, sl_in_ctrs, sl_in_ctrs_n, is);
		fputc('}', f);
		return;
	}
	if (!is->attached) {
		fprintf(f, "inbound: no sk_lookup steering\n");
		return;
	}
	fprintf(f, "inbound: sk_lookup steers %u port(s) to the listener (IPv4 %s, "
		   "IPv6 %s)\n  steered %llu, not captured %llu, loopback %llu, "
		   "from this host %llu, refused without listener %llu, assign "
		   "errors %llu\n",
		is->n_ports, is->listener4 ? "up" : "down",
		is->listener6 ? "up" : "down", (unsigned long long)is->steered,
		(unsigned long long)is->passed, (unsigned long long)is->loopback,
		(unsigned long long)is->local_src,
		(unsigned long long)is->no_listener,
		(unsigned long long)is->assign_err);
}

void sl_status_print(FILE *f, const char *pin_root, const struct sl_status *st,
		     int json)
{
	if (json)
		print_fastpath_json(f, pin_root, &st->fp);
	else
		print_fastpath(f, pin_root, &st->fp);
	sl_footprint_print(f, &st->footprint, json);
	if (json)
		fputc(',', f);
	sl_adm_print(f, &st->adm, json);
	if (json)
		fputc(',', f);
	sl_splice_print(f, &st->splice, json);
	print_capture(f, &st->cap, json);
	print_inbound(f, &st->in, json);
	sl_stats_print(&st->pc, st->fp.cfg.proxy_external, json, f);
	sl_cfg_info_print(f, &st->ci, json);
	sl_coexist_print(f, &st->cx, json);
}

/* ---- sidelane policy list ---- */

const char *sl_action_name(enum sl_action a)
{
	return a == SL_ACTION_DENY ? "deny" : "allow";
}

static void print_rule(FILE *f, const struct sl_rule *r, uint64_t hits, int json)
{
	char a[INET6_ADDRSTRLEN], cidr[INET6_ADDRSTRLEN + 8];
	unsigned int i;

	inet_ntop(r->cidr.family, r->cidr.addr, a, sizeof(a));
	snprintf(cidr, sizeof(cidr), "%s/%u", a, r->cidr.prefixlen);
	if (json)
		fprintf(f, "{\"id\":%u,\"action\":\"%s\",\"cidr\":\"%s\",\"ports\":[",
			r->id, sl_action_name(r->action), cidr);
	else
		fprintf(f, "  %-6u %-5s %-28s ports ", r->id,
			sl_action_name(r->action), cidr);
	for (i = 0; i < r->n_ports; i++) {
		if (r->ports[i].lo == r->ports[i].hi)
			fprintf(f, json ? "%s\"%u\"" : "%s%u", i ? "," : "",
				r->ports[i].lo);
		else
			fprintf(f, json ? "%s\"%u-%u\"" : "%s%u-%u", i ? "," : "",
				r->ports[i].lo, r->ports[i].hi);
	}
	if (json)
		fprintf(f, "],\"hits\":%llu}", (unsigned long long)hits);
	else
		fprintf(f, "%s  hits %llu\n", r->n_ports ? "" : "all",
			(unsigned long long)hits);
}

uint64_t sl_policy_hits_of(const struct sl_policy_hit *h, unsigned int n,
			   uint32_t id)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		if (h[i].rule_id == id)
			return h[i].hits;
	return 0;
}

int sl_policy_print(FILE *f, const char *pin_root, int json)
{
	const unsigned int max_hits = SL_CFG_MAX_RULES + 1;
	struct sl_policy_hit *hits;
	struct sl_policy *pol;
	unsigned int n_hits, i;
	int configured, err;

	/* heap, not static: the admin thread prints too */
	pol = malloc(sizeof(*pol));
	hits = calloc(max_hits, sizeof(*hits));
	err = pol && hits ? 0 : -ENOMEM;
	if (!err)
		err = sl_policy_read(pin_root, pol, &configured, hits, max_hits,
				     &n_hits);
	if (err)
		goto out;
	if (json) {
		fprintf(f, "{\"configured\":%s,\"default\":\"%s\",\"default_hits\":%llu,\"rules\":[",
			configured ? "true" : "false",
			sl_action_name(pol->default_action),
			(unsigned long long)sl_policy_hits_of(hits, n_hits, 0));
		for (i = 0; i < pol->n_rules; i++) {
			fprintf(f, i ? "," : "");
			print_rule(f, &pol->rules[i],
				   sl_policy_hits_of(hits, n_hits, pol->rules[i].id),
				   1);
		}
		fprintf(f, "]}");
		goto out;
	}
	if (!configured) {
		fprintf(f, "policy: none loaded: every destination is allowed\n");
		goto out;
	}
	fprintf(f, "policy: default %s (hits %llu); most specific prefix wins, then the first matching ports\n",
		sl_action_name(pol->default_action),
		(unsigned long long)sl_policy_hits_of(hits, n_hits, 0));
	for (i = 0; i < pol->n_rules; i++)
		print_rule(f, &pol->rules[i],
			   sl_policy_hits_of(hits, n_hits, pol->rules[i].id), 0);
out:
	free(hits);
	free(pol);
	return err;
}
