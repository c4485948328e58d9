/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The self-test's two halves (selftest.c runs it, selftest_checks.c is the
 * forked child that runs the checks): what they share.
 */
#ifndef SL_SELFTEST_INT_H
#define SL_SELFTEST_INT_H

#include <stdbool.h>
#include <time.h>
#include <linux/types.h>
#include "fastpath.h"

#define KiB 1024UL
#define MiB (1024 * KiB)
/* The private maps: a few pairs at a time, not the product's 64k sockets
 * (sl_conns is preallocated: 8 MB at full size).
 */
#define ST_MAP_ENTRIES 128
/* Largest transfer, and the chunk a sender writes before the receiver
 * drains: the backlog stays far below SL_MAX_BACKLOG, so every message is
 * redirected and none legitimately takes TCP.
 */
#define ST_MAX_XFER (4 * MiB)
#define ST_CHUNK (64 * KiB)
#define ST_PAT_LEN (ST_MAX_XFER + ST_CHUNK)
/* After the child's budget: time to report a hang before it is killed. */
#define ST_GRACE_MS 250
/* A verdict line: "<word> <check> <why>". */
#define ST_LINE 256

static inline __u64 now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000ULL + ts.tv_nsec / 1000000;
}

/* The child's state, set up by the parent before the fork. */
struct st_ctx {
	int out; /* write end of the verdict pipe */
	int conns_fd; /* the private sl_conns */
	int fp_cfg_fd; /* the private sl_fp_cfg (the FIONREAD probe) */
	__u64 deadline; /* CLOCK_MONOTONIC ms: every wait ends by then */
	__u64 msgs; /* successful send() calls, all meant to be redirected */
	char *pat; /* ST_PAT_LEN deterministic bytes */
	char *rbuf; /* ST_MAX_XFER */
	int c, s; /* the current pair: client, accepted end */
	const char *fail_check; /* set when a failure belongs to another check */
	char why[SL_FP_REASON_LEN];
};

/* The forked child: join cgroup, run the checks, report on x->out (see
 * selftest_checks.c). Never returns.
 */
void __attribute__((noreturn)) child_main(struct st_ctx *x, const char *cgroup);
/* SL_SELFTEST_ENV_FAIL's value, or NULL: a check to fail on purpose. */
const char *forced(void);
/* The named check, or any check, was asked to fail (first check for any). */
bool force_hits(const char *name, bool first);

#endif /* SL_SELFTEST_INT_H */
