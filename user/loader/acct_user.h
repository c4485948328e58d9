/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Connection accounting, user side (user/loader/acct.c): a thread drains the
 * pinned sl_events ring buffer (include/acct.h) and writes one access log
 * line per closed or denied connection. The proxy writes its own relay
 * lines (sl_proxy_set_alog); both go through user/lib/accesslog.c.
 */
#ifndef ACCT_USER_H
#define ACCT_USER_H

#include <stddef.h>
#include <stdint.h>
#include "acct.h"

struct sl_alog;
struct sl_acct;

struct sl_acct_stats {
	uint64_t closed, denied; /* events read */
	uint64_t lost; /* events the ring had no room for (sl_events_lost) */
};

/* Start draining pin_root's ring buffer into alog (may be NULL: events are
 * read and counted only). Skips the records of our own sockets (pid ours):
 * the proxy logs those connections as relays. 0 or -errno.
 */
int sl_acct_start(const char *pin_root, struct sl_alog *alog,
		  struct sl_acct **out);
/* Lines to alog from now on (a reload turned the log on; any thread). */
void sl_acct_set_alog(struct sl_acct *a, struct sl_alog *alog);
/* Read what is left in the ring, stop the thread, free. Safe on NULL. */
void sl_acct_stop(struct sl_acct *a);
void sl_acct_stats(const struct sl_acct *a, struct sl_acct_stats *out);
/* Events the ring had no room for, summed over CPUs (pinned map). */
int sl_acct_lost(const char *pin_root, uint64_t *out);

/* One event as an access log line (JSON, no newline) into buf; the length
 * or -ENOSPC. real_off_ns: CLOCK_REALTIME - CLOCK_MONOTONIC (BPF time is
 * monotonic).
 */
int sl_acct_format(const struct sl_event *ev, int64_t real_off_ns, char *buf,
		   size_t len);
/* CLOCK_REALTIME - CLOCK_MONOTONIC, ns. */
int64_t sl_acct_real_offset(void);

#endif /* ACCT_USER_H */
