// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The admin HTTP endpoint of `sidelane run` (see admin.h), served with
 * libmicrohttpd.
 *
 * One thread of ours drives MHD (external polling with epoll). It is not
 * MHD's internal thread because of two things:
 * - capabilities are per thread, and sidelane drops them in every thread
 *   with libpsx (user/lib/privs.c), which only knows threads created through
 *   the wrapped pthread_create of our own objects. A thread created inside
 *   libmicrohttpd.so would keep them all.
 * - select() breaks past fd 1023, and the proxy may hold thousands of fds.
 * The thread reads pinned maps and the proxy's atomic counters and takes no
 * lock the proxy holds, so a slow or stuck client cannot stall the proxy;
 * connections are bounded in number and time.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <microhttpd.h>
#include "loader/policy_user.h"
#include "lib/accesslog.h"
#include "lib/addr.h"
#include "sidelane.h"
#include "report/admin.h"
#include "report/counters.h"
#include "lib/log.h"
#include "proxy/proxy.h"
#include "report/status.h"
#include "tls/tls.h"
#include "lib/util.h"

/* At once; more wait in the backlog. Enough that clients which begin a
 * request and never finish it (slowloris) cannot take every slot before the
 * timeout closes them; each holds at most SL_ADMIN_CONN_MEM of the pool.
 */
#define SL_ADMIN_MAX_CONNS 256
#define SL_ADMIN_CONN_MEM (16 * 1024) /* a request's head: ours are short */
#define SL_ADMIN_BACKLOG 64
#define SL_ADMIN_TIMEOUT_S 10 /* an idle or slow connection is closed */
#define SL_ADMIN_POLL_MS 100 /* how soon sl_admin_stop() is noticed */

#define CT_TEXT "text/plain; charset=utf-8"
#define CT_METRICS "text/plain; version=0.0.4; charset=utf-8"
#define CT_JSON "application/json"

struct sl_admin {
	struct MHD_Daemon *d;
	pthread_t th;
	int stop, ready, draining; /* atomics */
	char pin_root[PATH_MAX];
	char where[INET6_ADDRSTRLEN + 8]; /* "127.0.0.1:15000" */
	struct sl_proxy *proxy;
	struct sl_tls_ctx *tls;
	struct sl_alog *alog;
};

#define AL(fld) offsetof(struct sl_alog_stats, fld)

/* The access log's own counters: what a full disk or an unwritable file
 * costs is lines dropped, counted here, never the data path.
 */
static const struct sl_ctr alog_ctrs[] = {
	{ "lines_written", "sidelane_access_log_lines_total", "result=\"written\"",
	  SL_CTR_COUNTER,
	  "Access log lines written (written) and dropped (dropped: the queue "
	  "full, a line too long, or lost to a write error such as ENOSPC).",
	  AL(written) },
	{ "lines_dropped", "sidelane_access_log_lines_total", "result=\"dropped\"",
	  SL_CTR_COUNTER, NULL, AL(dropped) },
	{ "bytes", "sidelane_access_log_bytes_total", NULL, SL_CTR_COUNTER,
	  "Bytes written to the live access log file.", AL(bytes) },
	{ "rotations", "sidelane_access_log_rotations_total", NULL,
	  SL_CTR_COUNTER, "Access log rotations.", AL(rotations) },
	{ "write_errors", "sidelane_access_log_errors_total", NULL,
	  SL_CTR_COUNTER,
	  "Failed writes, renames and compressions of the access log.",
	  AL(write_errors) },
};

static bool draining(const struct sl_admin *a)
{
	return __atomic_load_n(&a->draining, __ATOMIC_RELAXED) ||
	       (a->proxy && sl_proxy_draining(a->proxy));
}

/* The proxy's and TLS counters as `run` would publish them now (live, plus
 * what an earlier process counted), else what the map holds.
 */
static void proxy_counters(const struct sl_admin *a, struct sl_status *st)
{
	if (a->proxy || a->tls)
		sl_stats_collect(a->pin_root, a->proxy, a->tls, &st->pc);
}

/* ---- /metrics: Prometheus text format 0.0.4 (counters.h) ---- */

#define COUNTER SL_PROM_COUNTER
#define GAUGE SL_PROM_GAUGE

/* One sample per proxy worker (label worker="N"): accepted or active. */
static void m_workers(FILE *f, const struct sl_proxy *p, const char *name,
		      const char *type, const char *help, bool active)
{
	unsigned int w, nw = sl_proxy_workers(p);
	struct sl_proxy_stats ps;
	char id[16];

	sl_prom_family(f, name, type, help);
	for (w = 0; w < nw; w++) {
		sl_proxy_worker_stats(p, w, &ps);
		snprintf(id, sizeof(id), "%u", w);
		sl_prom_sample(f, name, "worker", id, NULL, NULL,
			       active ? ps.active : ps.accepted);
	}
}

static void metrics_proxy(FILE *f, const struct sl_admin *a,
			  const struct sl_proxy_counters *c)
{
	int i;

	int d;

	sl_prom_family(f, "sidelane_proxy_connections_accepted_total", COUNTER,
		       "Connections the proxy accepted, by direction (outbound: "
		       "captured, inbound: from peers, ambassador).");
	for (d = 0; d < SL_DIR_NR; d++)
		sl_prom_sample(f, "sidelane_proxy_connections_accepted_total",
			       "direction", sl_direction_name[d], NULL, NULL,
			       c->accepted_dir[d]);
	sl_prom_family(f, "sidelane_proxy_connections_active", GAUGE,
		       "Connections the proxy relays right now, by direction.");
	for (d = 0; d < SL_DIR_NR; d++)
		sl_prom_sample(f, "sidelane_proxy_connections_active", "direction",
			       sl_direction_name[d], NULL, NULL, c->active_dir[d]);
	sl_prom_family(f, "sidelane_proxy_connections_closed_total", COUNTER,
		       "Connections the proxy ended or refused, by direction and "
		       "reason.");
	for (d = 0; d < SL_DIR_NR; d++)
		for (i = 0; i < SL_CLOSE_NR; i++)
			sl_prom_sample(f, "sidelane_proxy_connections_closed_total",
				       "direction", sl_direction_name[d], "reason",
				       sl_close_reason_name[i], c->closed_dir[d][i]);
	sl_ctr_prom(f, sl_proxy_ctrs, sl_proxy_ctrs_n, c);
	if (a->proxy) {
		struct sl_proxy_stats ps;

		unsigned int nw = sl_proxy_workers(a->proxy);

		sl_proxy_stats(a->proxy, &ps);
		sl_prom_one(f, "sidelane_proxy_buffered_bytes", GAUGE,
			    "Bytes held in the proxy's buffers right now.",
			    ps.buffered);
		sl_prom_one(f, "sidelane_proxy_workers", GAUGE,
			    "Proxy event loops (proxy.workers), one thread each.", nw);
		m_workers(f, a->proxy, "sidelane_proxy_worker_accepted_total",
			  COUNTER,
			  "Connections each worker accepted: how the kernel "
			  "spreads them over the workers' SO_REUSEPORT listeners.",
			  false);
		m_workers(f, a->proxy, "sidelane_proxy_worker_connections_active",
			  GAUGE, "Connections each worker holds open right now.",
			  true);
	}
}

static void metrics_tls(FILE *f, const struct sl_proxy_counters *c)
{
	sl_ctr_prom(f, sl_tls_ctrs, sl_tls_ctrs_n, c);
	/* index 0 is "none" */
	sl_prom_by_name(f, "sidelane_tls_handshake_failures_total", COUNTER,
			"TLS handshakes that failed, by reason.", "reason",
			sl_tls_fail_name + 1, c->tls_failed + 1,
			SL_TLS_FAIL_NR - 1);
}

static void metrics_admission(FILE *f, const struct sl_adm_status *adm)
{
	int i;

	if (!adm->present)
		return;
	sl_prom_family(f, "sidelane_admission_mode", GAUGE,
		       "1 for the fastpath.app_sockets mode in force.");
	for (i = 0; i < SL_APP_NR; i++)
		sl_prom_sample(f, "sidelane_admission_mode", "app_sockets",
			       sl_app_sockets_name[i], NULL, NULL,
			       adm->cfg.mode == (uint32_t)i);
	sl_prom_one(f, "sidelane_admission_kernel_tcp_fionread", GAUGE,
		    "1 when a sockmap socket on this kernel answers FIONREAD with the "
		    "bytes TCP brought (the safe mode admits only then).",
		    !!(adm->cfg.kernel & SL_KERNEL_TCP_FIONREAD));
	sl_prom_by_name(f, "sidelane_admission_sockets_total", COUNTER,
			"Established sockets of the app and sidecar cgroups by "
			"admission reason (accelerated: admitted).",
			"reason", sl_acc_reason_name, adm->stats.sockets, SL_ACC_NR);
	sl_prom_by_name(f, "sidelane_admission_evicted_total", COUNTER,
			"Admitted sockets taken out of the sockhash again, by reason.",
			"reason", sl_acc_reason_name, adm->stats.evicted, SL_ACC_NR);
}

static void metrics_splice(FILE *f, const struct sl_admin *a,
			   const struct sl_splice_status *sp)
{
	int d, i;

	if (a->proxy) {
		struct sl_proxy_stats ps;

		sl_proxy_stats(a->proxy, &ps);
		sl_prom_family(f, "sidelane_splice_connections_total", COUNTER,
			       "Relayed connections by whether they were spliced into the "
			       "kernel (both halves, or the upload only), or why not.");
		for (i = 0; i < SL_SPLICE_NR; i++)
			sl_prom_sample(f, "sidelane_splice_connections_total", "result",
				       sl_splice_result_name[i], NULL, NULL,
				       ps.splice[i]);
	}
	if (!sp->present)
		return;
	sl_prom_family(f, "sidelane_splice_pushed_bytes_total", COUNTER,
		       "Bytes of spliced connections the kernel moved past the proxy: "
		       "dir up, sk_msg from an app socket into its upstream; dir down, "
		       "sk_skb from an upstream to the sidecar's socket towards the app.");
	for (d = 0; d < SL_SPD_NR; d++)
		sl_prom_sample(f, "sidelane_splice_pushed_bytes_total", "dir",
			       sl_splice_dir_name[d], NULL, NULL,
			       sp->st.dir[d].pushed_bytes);
	sl_prom_family(f, "sidelane_splice_pushed_messages_total", COUNTER,
		       "Messages (up) or skbs (down) the kernel moved past the proxy.");
	for (d = 0; d < SL_SPD_NR; d++)
		sl_prom_sample(f, "sidelane_splice_pushed_messages_total", "dir",
			       sl_splice_dir_name[d], NULL, NULL,
			       sp->st.dir[d].pushed_msgs);
	sl_prom_one(f, "sidelane_splice_overlap_skbs_total", COUNTER,
		    "Download skbs that repeated bytes already delivered (a "
		    "retransmission partly received before); the repeat is cut.",
		    sp->st.dup_skbs);
	sl_prom_one(f, "sidelane_splice_overlap_bytes_total", COUNTER,
		    "Bytes cut from the download as repeats.", sp->st.dup_bytes);
	sl_prom_one(f, "sidelane_splice_overlap_trim_failed_total", COUNTER,
		    "Overlapping download skbs that could not be cut: their pair "
		    "was reset.", sp->st.trim_failed);
	sl_prom_family(f, "sidelane_splice_relayed_messages_total", COUNTER,
		       "Messages or skbs of spliced connections that took the proxy's "
		       "relay, by direction and why.");
	for (d = 0; d < SL_SPD_NR; d++)
		for (i = 0; i < SL_SPW_NR; i++)
			sl_prom_sample(f, "sidelane_splice_relayed_messages_total",
				       "dir", sl_splice_dir_name[d], "why",
				       sl_splice_why_name[d][i],
				       sp->st.dir[d].relay[i]);
}

static void metrics_fastpath(FILE *f, const struct sl_fp_status *fp)
{
	sl_prom_one(f, "sidelane_fastpath_attached", GAUGE,
		    "1 when the sockops link is pinned and alive.", fp->attached);
	sl_prom_one(f, "sidelane_accounting_events_lost_total", COUNTER,
		    "Connection records the full ring buffer dropped.",
		    fp->events_lost);
	sl_prom_one(f, "sidelane_fastpath_redirect_enabled", GAUGE,
		    "1 when sk_msg redirects, 0 when it is switched to TCP.",
		    !fp->cfg.redirect_off);
	sl_prom_one(f, "sidelane_proxy_external", GAUGE,
		    "1 when a foreign proxy serves capture and inbound "
		    "(proxy.external), 0 when sidelane's own does.",
		    fp->cfg.proxy_external);
	sl_ctr_prom(f, sl_fp_ctrs, sl_fp_ctrs_n, &fp->counters);
	sl_prom_family(f, "sidelane_map_entries", GAUGE,
		       "Entries in a pinned map right now.");
	sl_prom_sample(f, "sidelane_map_entries", "map", SL_MAP_SOCKHASH, NULL, NULL,
		       fp->sockhash_entries);
	sl_prom_sample(f, "sidelane_map_entries", "map", SL_MAP_CONNS, NULL, NULL,
		       fp->conns_entries);
	sl_prom_sample(f, "sidelane_map_entries", "map", SL_MAP_LOCAL_ADDRS, NULL,
		       NULL, fp->local_addrs_entries);
	sl_prom_family(f, "sidelane_map_max_entries", GAUGE,
		       "Capacity of a pinned map.");
	sl_prom_sample(f, "sidelane_map_max_entries", "map", SL_MAP_SOCKHASH, NULL,
		       NULL, fp->sockhash_max);
	sl_prom_sample(f, "sidelane_map_max_entries", "map", SL_MAP_CONNS, NULL, NULL,
		       fp->conns_max);
}

static void metrics_footprint(FILE *f, const struct sl_footprint *fp)
{
	unsigned int i;

	sl_prom_one(f, "sidelane_maps_memory_bytes", GAUGE,
		    "Kernel memory of all pinned maps (memlock), what this sidecar "
		    "costs the node whatever its traffic.", fp->memlock);
	sl_prom_family(f, "sidelane_map_memory_bytes", GAUGE,
		       "Kernel memory of one pinned map (memlock).");
	for (i = 0; i < fp->n; i++)
		sl_prom_sample(f, "sidelane_map_memory_bytes", "map", fp->map[i].name,
			       NULL, NULL, fp->map[i].memlock);
}

static void metrics_capture(FILE *f, const struct sl_cap_status *cs)
{
	sl_prom_one(f, "sidelane_capture_attached", GAUGE,
		    "1 when the connect hooks are attached.", cs->attached);
	sl_prom_one(f, "sidelane_capture_enabled", GAUGE,
		    "1 when connects are captured (0: connect-time policy only).",
		    cs->cfg.enabled);
	sl_prom_by_name(f, "sidelane_capture_connects_total", COUNTER,
			"TCP connects of the app seen by the connect hooks, by what "
			"was done and why.",
			"reason", sl_capture_reason_name, cs->stats.reason, SL_CR_NR);
	sl_ctr_prom(f, sl_cap_ctrs, sl_cap_ctrs_n, &cs->stats);
	sl_prom_one(f, "sidelane_capture_live_connections", GAUGE,
		    "Captured connections open right now.", cs->captured_live);
}

/* Hits of the live rules and of the default action, counted by the
 * connect hooks. Pins without the policy maps: nothing.
 */
static void metrics_policy(FILE *f, const char *pin_root)
{
	const unsigned int max_hits = SL_CFG_MAX_RULES + 1;
	struct sl_policy_hit *hits = calloc(max_hits, sizeof(*hits));
	struct sl_policy *pol = malloc(sizeof(*pol));
	unsigned int n_hits, i;
	int configured;
	char id[16];

	if (!hits || !pol ||
	    sl_policy_read(pin_root, pol, &configured, hits, max_hits, &n_hits))
		goto out;
	sl_prom_one(f, "sidelane_policy_configured", GAUGE,
		    "1 when a policy is loaded (0: every destination allowed).",
		    configured);
	sl_prom_family(f, "sidelane_policy_hits_total", COUNTER,
		       "Connects decided by a policy rule (rule id), or by the "
		       "default action (rule \"default\").");
	sl_prom_sample(f, "sidelane_policy_hits_total", "rule", "default", "action",
		       sl_action_name(pol->default_action),
		       sl_policy_hits_of(hits, n_hits, 0));
	for (i = 0; i < pol->n_rules; i++) {
		snprintf(id, sizeof(id), "%u", pol->rules[i].id);
		sl_prom_sample(f, "sidelane_policy_hits_total", "rule", id, "action",
			       sl_action_name(pol->rules[i].action),
			       sl_policy_hits_of(hits, n_hits, pol->rules[i].id));
	}
out:
	free(pol);
	free(hits);
}

static void metrics_inbound(FILE *f, const struct sl_in_status *is)
{
	sl_prom_one(f, "sidelane_inbound_attached", GAUGE,
		    "1 when sk_lookup steers inbound connections.", is->attached);
	sl_prom_family(f, "sidelane_inbound_listener_up", GAUGE,
		       "1 when the inbound listener of that family is in the "
		       "sk_lookup map.");
	sl_prom_sample(f, "sidelane_inbound_listener_up", "family", "ipv4", NULL,
		       NULL, is->listener4);
	sl_prom_sample(f, "sidelane_inbound_listener_up", "family", "ipv6", NULL,
		       NULL, is->listener6);
	sl_ctr_prom(f, sl_in_ctrs, sl_in_ctrs_n, is);
}

static void metrics(FILE *f, const struct sl_admin *a,
		    const struct sl_status *st)
{
	struct sl_alog *alog;

	sl_prom_family(f, "sidelane_build_info", GAUGE,
		       "Always 1; the version of this sidelane as a label.");
	sl_prom_sample(f, "sidelane_build_info", "version", SL_VERSION, NULL, NULL,
		       1);
	sl_prom_one(f, "sidelane_ready", GAUGE,
		    "1 once programs are attached and listeners open, until a drain.",
		    __atomic_load_n(&a->ready, __ATOMIC_RELAXED) && !draining(a));
	sl_prom_one(f, "sidelane_draining", GAUGE,
		    "1 after POST /drain or SIGTERM: no new connections.",
		    draining(a));
	sl_cfg_info_metrics(f, &st->ci);
	metrics_proxy(f, a, &st->pc);
	metrics_tls(f, &st->pc);
	metrics_fastpath(f, &st->fp);
	metrics_footprint(f, &st->footprint);
	metrics_admission(f, &st->adm);
	metrics_splice(f, a, &st->splice);
	metrics_capture(f, &st->cap);
	metrics_policy(f, a->pin_root);
	metrics_inbound(f, &st->in);
	if ((alog = __atomic_load_n(&a->alog, __ATOMIC_ACQUIRE))) {
		struct sl_alog_stats al;

		sl_alog_stats(alog, &al);
		sl_ctr_prom(f, alog_ctrs, SL_CTR_N(alog_ctrs), &al);
	}
}

static void stats_json(FILE *f, const struct sl_admin *a,
		       const struct sl_status *st)
{
	struct sl_alog *alog;

	fputc('{', f);
	sl_status_print(f, a->pin_root, st, 1);
	fputs(",\"policy\":", f);
	if (sl_policy_print(f, a->pin_root, 1))
		fputs("null", f);
	if ((alog = __atomic_load_n(&a->alog, __ATOMIC_ACQUIRE))) {
		struct sl_alog_stats al;

		sl_alog_stats(alog, &al);
		fputs(",\"access_log\":{", f);
		sl_ctr_json(f, alog_ctrs, SL_CTR_N(alog_ctrs), &al);
		fputc('}', f);
	}
	fprintf(f, ",\"admin\":{\"listen\":\"%s\",\"ready\":%s,\"draining\":%s}}\n",
		a->where,
		__atomic_load_n(&a->ready, __ATOMIC_RELAXED) ? "true" : "false",
		draining(a) ? "true" : "false");
}

/* ---- HTTP ---- */

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned int code,
			     const char *type, char *body, size_t len,
			     enum MHD_ResponseMemoryMode mode, const char *allow)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(len, body, mode);
	if (!r) {
		if (mode == MHD_RESPMEM_MUST_FREE)
			free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (allow)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
	ret = MHD_queue_response(conn, code, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result reply_text(struct MHD_Connection *conn,
				  unsigned int code, const char *text)
{
	return reply(conn, code, CT_TEXT, (char *)text, strlen(text),
		     MHD_RESPMEM_PERSISTENT, NULL);
}

/* /metrics and /stats: the pins read once, printed by gen. */
static enum MHD_Result serve_counters(struct sl_admin *a,
				      struct MHD_Connection *conn, bool json)
{
	struct sl_status *st = malloc(sizeof(*st));
	char *body = NULL, msg[PATH_MAX + 64];
	size_t len = 0;
	FILE *f = NULL;
	int err;

	err = st ? sl_status_read(a->pin_root, st) : -ENOMEM;
	if (!err) {
		f = open_memstream(&body, &len);
		err = f ? 0 : -errno;
	}
	if (err) {
		free(st);
		snprintf(msg, sizeof(msg), "reading %s: %s\n", a->pin_root,
			 strerror(-err));
		return reply(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, CT_TEXT, msg,
			     strlen(msg), MHD_RESPMEM_MUST_COPY, NULL);
	}
	proxy_counters(a, st);
	if (json)
		stats_json(f, a, st);
	else
		metrics(f, a, st);
	free(st);
	if (fclose(f)) {
		free(body);
		return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
				  "out of memory\n");
	}
	return reply(conn, MHD_HTTP_OK, json ? CT_JSON : CT_METRICS, body, len,
		     MHD_RESPMEM_MUST_FREE, NULL);
}

static enum MHD_Result serve_metrics(struct sl_admin *a,
				     struct MHD_Connection *conn)
{
	return serve_counters(a, conn, false);
}

static enum MHD_Result serve_stats(struct sl_admin *a,
				   struct MHD_Connection *conn)
{
	return serve_counters(a, conn, true);
}

static enum MHD_Result serve_healthz(struct sl_admin *a,
				     struct MHD_Connection *conn)
{
	(void)a;
	return reply_text(conn, MHD_HTTP_OK, "ok\n");
}

static enum MHD_Result serve_ready(struct sl_admin *a,
				   struct MHD_Connection *conn)
{
	if (draining(a))
		return reply_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE,
				  "not ready: draining, new connections are refused\n");
	if (!__atomic_load_n(&a->ready, __ATOMIC_RELAXED))
		return reply_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE,
				  "not ready: starting\n");
	return reply_text(conn, MHD_HTTP_OK, "ready\n");
}

static enum MHD_Result serve_drain(struct sl_admin *a,
				   struct MHD_Connection *conn)
{
	/* Any web page open in a browser on this host may POST to loopback
	 * (a form needs no CORS preflight); browsers say so with these
	 * headers, curl and orchestrators do not send them.
	 */
	if (MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin") ||
	    MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Sec-Fetch-Site"))
		return reply_text(conn, MHD_HTTP_FORBIDDEN,
				  "refused: a request from a web page\n");
	if (!__atomic_exchange_n(&a->draining, 1, __ATOMIC_RELAXED))
		pr_info("admin: POST /drain: no new connections; open ones "
			"get admin.drain_timeout_ms\n");
	if (a->proxy)
		sl_proxy_drain(a->proxy);
	return reply_text(conn, MHD_HTTP_ACCEPTED,
			  "draining: new connections are refused, open ones "
			  "closed after admin.drain_timeout_ms\n");
}

static const struct route {
	const char *path;
	bool post; /* POST only; else GET and HEAD */
	enum MHD_Result (*serve)(struct sl_admin *a, struct MHD_Connection *c);
} routes[] = {
	{ "/metrics", false, serve_metrics },
	{ "/stats", false, serve_stats },
	{ "/healthz", false, serve_healthz },
	{ "/ready", false, serve_ready },
	{ "/drain", true, serve_drain },
};

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
				  const char *url, const char *method,
				  const char *version, const char *upload,
				  size_t *upload_len, void **req)
{
	static int seen; /* marks a request whose headers are in */
	struct sl_admin *a = cls;
	const struct route *r = NULL;
	bool post = !strcmp(method, MHD_HTTP_METHOD_POST);
	size_t i;

	(void)version;
	(void)upload;
	/* First call: headers only. Then any body, which no route uses. */
	if (!*req) {
		*req = &seen;
		return MHD_YES;
	}
	if (*upload_len) {
		*upload_len = 0;
		return MHD_YES;
	}
	for (i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		if (!strcmp(url, routes[i].path))
			r = &routes[i];
	if (!r)
		return reply_text(conn, MHD_HTTP_NOT_FOUND,
				  "not found: /metrics /stats /healthz /ready, "
				  "POST /drain\n");
	if (r->post != post || (!post && strcmp(method, MHD_HTTP_METHOD_GET) &&
				strcmp(method, MHD_HTTP_METHOD_HEAD)))
		return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, CT_TEXT,
			     "method not allowed\n", strlen("method not allowed\n"),
			     MHD_RESPMEM_PERSISTENT, r->post ? "POST" : "GET, HEAD");
	return r->serve(a, conn);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[256];

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	pr_debug("admin: %s%s", msg, msg[0] && msg[strlen(msg) - 1] == '\n' ? "" : "\n");
}

static void *serve(void *arg)
{
	struct sl_admin *a = arg;

	while (!__atomic_load_n(&a->stop, __ATOMIC_RELAXED))
		MHD_run_wait(a->d, SL_ADMIN_POLL_MS);
	return NULL;
}

/* A listening TCP socket on ep, or -errno. */
static int listen_on(const struct sl_endpoint *ep)
{
	int fd, one = 1, err;

	fd = socket(ep->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    0);
	if (fd < 0)
		return -errno;
	/* a restart while the last run's connections are in TIME_WAIT;
	 * another live listener on the port still fails with EADDRINUSE
	 */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ep->addr.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&ep->addr, ep->addrlen) ||
	    listen(fd, SL_ADMIN_BACKLOG)) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

static bool is_loopback(const struct sl_endpoint *ep, char *where, size_t len)
{
	sl_sockaddr_str(&ep->addr, where, len);
	return sl_endpoint_is_loopback(ep);
}

int sl_admin_start(const struct sl_admin_opts *o, struct sl_admin **out)
{
	struct sl_admin *a;
	sigset_t all, old;
	int fd, err;

	*out = NULL;
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->proxy = o->proxy;
	a->tls = o->tls;
	a->alog = o->alog;
	snprintf(a->pin_root, sizeof(a->pin_root), "%s", o->pin_root);
	if (!is_loopback(o->listen, a->where, sizeof(a->where))) {
		pr_warn("admin: %s is not a loopback address; running without "
			"the admin endpoint\n", a->where);
		free(a);
		return -EINVAL;
	}
	fd = listen_on(o->listen);
	if (fd < 0) {
		pr_warn("admin: cannot listen on %s: %s%s; running without the "
			"admin endpoint\n", a->where, strerror(-fd),
			fd == -EADDRINUSE ? " (another sidelane? set admin.listen, "
					    "or \"\" to turn it off)" : "");
		free(a);
		return fd;
	}
	a->d = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, NULL, NULL,
				on_request, a,
				MHD_OPTION_EXTERNAL_LOGGER, mhd_log, a,
				MHD_OPTION_LISTEN_SOCKET, fd,
				MHD_OPTION_CONNECTION_LIMIT,
				(unsigned int)SL_ADMIN_MAX_CONNS,
				MHD_OPTION_CONNECTION_MEMORY_LIMIT,
				(size_t)SL_ADMIN_CONN_MEM,
				MHD_OPTION_CONNECTION_TIMEOUT,
				(unsigned int)SL_ADMIN_TIMEOUT_S,
				MHD_OPTION_END);
	if (!a->d) {
		err = errno ? -errno : -EIO;
		pr_warn("admin: starting libmicrohttpd on %s failed; running "
			"without the admin endpoint\n", a->where);
		close(fd);
		free(a);
		return err;
	}
	/* signals stay with the thread that acts on their flags */
	sigfillset(&all);
	sigdelset(&all, SIGSYS); /* libpsx's: the privilege drop reaches us */
	pthread_sigmask(SIG_BLOCK, &all, &old);
	err = -pthread_create(&a->th, NULL, serve, a);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err) {
		pr_warn("admin: thread: %s; running without the admin endpoint\n",
			strerror(-err));
		MHD_stop_daemon(a->d); /* closes fd */
		free(a);
		return err;
	}
	pthread_setname_np(a->th, "sl-admin");
	pr_info("admin: http://%s/ (/metrics /stats /healthz /ready, POST "
		"/drain)\n", a->where);
	*out = a;
	return 0;
}

void sl_admin_set_alog(struct sl_admin *a, struct sl_alog *alog)
{
	if (a)
		__atomic_store_n(&a->alog, alog, __ATOMIC_RELEASE);
}

void sl_admin_set_ready(struct sl_admin *a, bool ready)
{
	if (a)
		__atomic_store_n(&a->ready, ready, __ATOMIC_RELAXED);
}

void sl_admin_stop(struct sl_admin *a)
{
	if (!a)
		return;
	__atomic_store_n(&a->stop, 1, __ATOMIC_RELAXED);
	pthread_join(a->th, NULL);
	MHD_stop_daemon(a->d); /* closes the listening socket too */
	free(a);
}
