/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The proxy's and TLS counters in the pinned SL_MAP_PROXY_STATS map
 * (user/report/proxy_stats.c): written by `sidelane run`, read by `sidelane status`.
 */
#ifndef SL_PROXY_STATS_H
#define SL_PROXY_STATS_H

#include <linux/types.h>
#include <stdio.h>
#include "stats.h"
#include "report/counters.h"

struct sl_proxy;
struct sl_tls_ctx;

/* What sl_stats_publish would write now, without writing it: p's and
 * tls's live counters (either may be NULL) plus the totals an earlier
 * process left. Safe beside the event loop, from any thread.
 */
void sl_stats_collect(const char *pin_root, const struct sl_proxy *p,
		      struct sl_tls_ctx *tls, struct sl_proxy_counters *out);
/* Snapshot p's and tls's counters (either may be NULL) into the map. */
int sl_stats_publish(const char *pin_root, const struct sl_proxy *p,
		     struct sl_tls_ctx *tls);
/* 0, or -errno (-ENOENT: nothing pinned there). */
int sl_stats_read(const char *pin_root, struct sl_proxy_counters *out);
/* The tables of them /stats and /metrics render (report/counters.h). */
extern const struct sl_ctr sl_proxy_ctrs[], sl_tls_ctrs[];
extern const size_t sl_proxy_ctrs_n, sl_tls_ctrs_n;
/* Print them as `status` does: text lines, or a ,"proxy":{..},"tls":{..}
 * JSON fragment.
 */
void sl_stats_print(const struct sl_proxy_counters *c, int external,
		    int json, FILE *f);

#endif /* SL_PROXY_STATS_H */
