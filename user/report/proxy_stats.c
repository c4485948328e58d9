// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Mirror of the proxy's and TLS counters into a pinned map, so another
 * process (`sidelane status`, bpftool) sees what the running proxy did.
 * Written from the housekeeping thread: sl_proxy_stats() and sl_tls_stats()
 * are safe to call beside the event loop.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include "loader/pins.h"
#include "lib/json.h"
#include "sidelane.h"
#include "loader/fastpath_user.h"
#include "proxy/proxy.h"
#include "report/counters.h"
#include "report/proxy_stats.h"
#include "tls/tls.h"

_Static_assert(SL_CLOSE_NR <= SL_STATS_CLOSE_SLOTS, "closed[] too small");
_Static_assert(SL_TLS_FAIL_NR <= SL_STATS_TLS_FAIL_SLOTS,
	       "tls_failed[] too small");
_Static_assert(SL_DIR_NR <= SL_STATS_DIR_SLOTS, "*_dir[] too small");

/* What an earlier process published: a restart continues from there. */
static struct sl_proxy_counters base;
static int base_read;
static pthread_mutex_t base_lock = PTHREAD_MUTEX_INITIALIZER;

/* Totals continue across restarts; gauges (active, settings) are ours. */
static void add_base(struct sl_proxy_counters *c)
{
	int i;

	c->accepted += base.accepted;
	c->bytes_up += base.bytes_up;
	c->bytes_down += base.bytes_down;
	for (i = 0; i < SL_STATS_CLOSE_SLOTS; i++)
		c->closed[i] += base.closed[i];
	for (i = 0; i < SL_STATS_DIR_SLOTS; i++) {
		int r;

		c->accepted_dir[i] += base.accepted_dir[i];
		for (r = 0; r < SL_STATS_CLOSE_SLOTS; r++)
			c->closed_dir[i][r] += base.closed_dir[i][r];
	}
	c->tls_ok += base.tls_ok;
	c->tls_resumed += base.tls_resumed;
	for (i = 0; i < SL_STATS_TLS_FAIL_SLOTS; i++)
		c->tls_failed[i] += base.tls_failed[i];
	c->tls_bytes_in += base.tls_bytes_in;
	c->tls_bytes_out += base.tls_bytes_out;
	c->tls_ktls_tx += base.tls_ktls_tx;
	c->tls_ktls_rx += base.tls_ktls_rx;
	c->tls_reloads += base.tls_reloads;
	c->tls_reloads_rejected += base.tls_reloads_rejected;
}

void sl_stats_collect(const char *pin_root, const struct sl_proxy *p,
		      struct sl_tls_ctx *tls, struct sl_proxy_counters *out)
{
	struct sl_proxy_counters c = { .pid = (__u64)getpid() };
	struct timespec ts;
	int i;

	pthread_mutex_lock(&base_lock);
	if (!base_read) {
		/* once per process: another pid's numbers are the base */
		base_read = 1;
		if (sl_stats_read(pin_root, &base) || base.pid == c.pid)
			memset(&base, 0, sizeof(base));
	}
	pthread_mutex_unlock(&base_lock);

	clock_gettime(CLOCK_REALTIME, &ts);
	c.updated_ms = (__u64)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	if (p) {
		struct sl_proxy_stats ps;

		sl_proxy_stats(p, &ps);
		c.accepted = ps.accepted;
		c.active = ps.active;
		c.bytes_up = ps.bytes_up;
		c.bytes_down = ps.bytes_down;
		for (i = 0; i < SL_CLOSE_NR; i++)
			c.closed[i] = ps.closed[i];
		for (i = 0; i < SL_DIR_NR; i++) {
			int r;

			c.accepted_dir[i] = ps.accepted_dir[i];
			c.active_dir[i] = ps.active_dir[i];
			for (r = 0; r < SL_CLOSE_NR; r++)
				c.closed_dir[i][r] = ps.closed_dir[i][r];
		}
	}
	c.tls_ktls = sl_tls_ktls_available();
	if (tls) {
		struct sl_tls_stats ts2;

		sl_tls_stats(tls, &ts2);
		c.tls_enabled = 1;
		c.tls_ok = ts2.handshakes_ok;
		c.tls_resumed = ts2.resumed;
		for (i = 0; i < SL_TLS_FAIL_NR; i++)
			c.tls_failed[i] = ts2.handshakes_failed[i];
		c.tls_active = ts2.active;
		c.tls_bytes_in = ts2.bytes_in;
		c.tls_bytes_out = ts2.bytes_out;
		c.tls_ktls_tx = ts2.ktls_tx;
		c.tls_ktls_rx = ts2.ktls_rx;
		c.tls_reloads = ts2.reloads;
		c.tls_reloads_rejected = ts2.reloads_rejected;
	}
	add_base(&c);
	*out = c;
}

int sl_stats_publish(const char *pin_root, const struct sl_proxy *p,
		     struct sl_tls_ctx *tls)
{
	struct sl_proxy_counters c;

	sl_stats_collect(pin_root, p, tls, &c);
	return sl_pin_slot0(pin_root, SL_MAP_PROXY_STATS, &c, true);
}

int sl_stats_read(const char *pin_root, struct sl_proxy_counters *out)
{
	return sl_pin_slot0(pin_root, SL_MAP_PROXY_STATS, out, false);
}

#define PC(fld) offsetof(struct sl_proxy_counters, fld)

/* The proxy's totals (JSON; /metrics has them by direction) and the bytes
 * it relayed.
 */
const struct sl_ctr sl_proxy_ctrs[] = {
	{ "pid", NULL, NULL, SL_CTR_GAUGE, NULL, PC(pid) },
	{ "updated_ms", NULL, NULL, SL_CTR_GAUGE, NULL, PC(updated_ms) },
	{ "accepted", NULL, NULL, SL_CTR_COUNTER, NULL, PC(accepted) },
	{ "active", NULL, NULL, SL_CTR_GAUGE, NULL, PC(active) },
	{ "bytes_up", "sidelane_bytes_total",
	  "path=\"relay\",direction=\"up\"", SL_CTR_COUNTER,
	  "Bytes relayed by the proxy (path relay), app to upstream (up) and "
	  "back (down); the fast path's are sidelane_fastpath_redirect_bytes_total "
	  "and sidelane_fastpath_plain_bytes_total.",
	  PC(bytes_up) },
	{ "bytes_down", "sidelane_bytes_total",
	  "path=\"relay\",direction=\"down\"", SL_CTR_COUNTER, NULL,
	  PC(bytes_down) },
};
const size_t sl_proxy_ctrs_n = SL_CTR_N(sl_proxy_ctrs);

const struct sl_ctr sl_tls_ctrs[] = {
	{ "enabled", "sidelane_tls_enabled", NULL, SL_CTR_FLAG,
	  "1 when mutual TLS is configured.", PC(tls_enabled) },
	{ "ktls", "sidelane_tls_ktls_available", NULL, SL_CTR_FLAG,
	  "1 when the kernel takes TCP_ULP tls (kTLS).", PC(tls_ktls) },
	{ "handshakes_ok", "sidelane_tls_handshakes_total", NULL, SL_CTR_COUNTER,
	  "TLS handshakes completed, resumed ones included.", PC(tls_ok) },
	{ "resumed", "sidelane_tls_handshakes_resumed_total", NULL,
	  SL_CTR_COUNTER, "TLS handshakes that resumed a session.",
	  PC(tls_resumed) },
	{ "active", "sidelane_tls_connections_active", NULL, SL_CTR_GAUGE,
	  "TLS connections open right now.", PC(tls_active) },
	{ "bytes_in", "sidelane_tls_bytes_total", "direction=\"in\"",
	  SL_CTR_COUNTER,
	  "Application bytes carried over TLS, received (in) and sent (out).",
	  PC(tls_bytes_in) },
	{ "bytes_out", "sidelane_tls_bytes_total", "direction=\"out\"",
	  SL_CTR_COUNTER, NULL, PC(tls_bytes_out) },
	{ "ktls_tx", "sidelane_tls_ktls_connections_total", "direction=\"tx\"",
	  SL_CTR_COUNTER,
	  "TLS connections whose record layer went into the kernel, per "
	  "direction.",
	  PC(tls_ktls_tx) },
	{ "ktls_rx", "sidelane_tls_ktls_connections_total", "direction=\"rx\"",
	  SL_CTR_COUNTER, NULL, PC(tls_ktls_rx) },
	{ "reloads", "sidelane_tls_rotations_total", "result=\"taken\"",
	  SL_CTR_COUNTER,
	  "Changed certificate, key or CA files: taken, or refused (the old "
	  "material stays).",
	  PC(tls_reloads) },
	{ "reloads_rejected", "sidelane_tls_rotations_total",
	  "result=\"refused\"", SL_CTR_COUNTER, NULL,
	  PC(tls_reloads_rejected) },
};
const size_t sl_tls_ctrs_n = SL_CTR_N(sl_tls_ctrs);

static void print_json(const struct sl_proxy_counters *c, int external,
		       FILE *f)
{
	fprintf(f, ",\"proxy\":{\"external\":%s,", external ? "true" : "false");
	sl_ctr_json(f, sl_proxy_ctrs, sl_proxy_ctrs_n, c);
	fputc(',', f);
	sl_json_by_name(f, "closed", sl_close_reason_name, c->closed, 0,
			SL_CLOSE_NR);
	fputs("},\"tls\":{", f);
	sl_ctr_json(f, sl_tls_ctrs, sl_tls_ctrs_n, c);
	fputs(",\"ktls_reason\":", f);
	sl_json_str(f, sl_tls_ktls_reason());
	fputc(',', f);
	/* index 0 is "none" */
	sl_json_by_name(f, "failed", sl_tls_fail_name, c->tls_failed, 1,
			SL_TLS_FAIL_NR);
	fputc('}', f);
}

void sl_stats_print(const struct sl_proxy_counters *c, int external,
		    int json, FILE *f)
{
	int i;

	if (json) {
		print_json(c, external, f);
		return;
	}
	if (external) {
		fprintf(f, "proxy: external (proxy.external): a foreign proxy in "
			   "the sidecar cgroup serves capture and inbound\n");
	} else if (!c->pid) {
		fprintf(f, "proxy: no counters yet (not running with a proxy)\n");
	} else {
		fprintf(f, "proxy: pid %llu, accepted %llu, active %llu, "
			   "relayed up %llu B, down %llu B\n  closed:",
			(unsigned long long)c->pid,
			(unsigned long long)c->accepted,
			(unsigned long long)c->active,
			(unsigned long long)c->bytes_up,
			(unsigned long long)c->bytes_down);
		for (i = 0; i < SL_CLOSE_NR; i++)
			if (c->closed[i])
				fprintf(f, " %s=%llu", sl_close_reason_name[i],
					(unsigned long long)c->closed[i]);
		fprintf(f, "\n");
	}
	if (!c->tls_enabled) {
		fprintf(f, "tls: off; kTLS: %s\n", sl_tls_ktls_reason());
		return;
	}
	fprintf(f, "tls: handshakes %llu ok (%llu resumed), active %llu, "
		   "rotations %llu taken, %llu refused\n  kTLS: %s\n"
		   "  handshake failures:",
		(unsigned long long)c->tls_ok,
		(unsigned long long)c->tls_resumed,
		(unsigned long long)c->tls_active,
		(unsigned long long)c->tls_reloads,
		(unsigned long long)c->tls_reloads_rejected,
		sl_tls_ktls_reason());
	for (i = 1; i < SL_TLS_FAIL_NR; i++)
		if (c->tls_failed[i])
			fprintf(f, " %s=%llu", sl_tls_fail_name[i],
				(unsigned long long)c->tls_failed[i]);
	fprintf(f, "\n");
}
