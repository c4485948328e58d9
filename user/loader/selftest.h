/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Start-up self-test of the fast path (user/loader/selftest.c): before redirect is
 * enabled on a cgroup, a private copy of the fastpath programs is run over
 * loopback on this kernel; when it fails, `sidelane run` goes on without
 * the sk_msg fast path.
 */
#ifndef SELFTEST_H
#define SELFTEST_H

#include <stdint.h>
#include "fastpath.h" /* SL_FP_REASON_LEN */

/* Test hook: SIDELANE_SELFTEST_FAIL=<check> makes that check report a
 * failure after it has run ("any": the first check), so tests can exercise
 * the fallback on a kernel where everything passes. A value that names no
 * check fails the run too, with a reason saying so. Checks, in order:
 *   sockhash    sockops put both ends of each pair in the sockhash
 *   transfer    1 B, 100 B, 4 KiB, 64 KiB, 1 MiB, 4 MiB each way, byte-exact
 *   fionread    FIONREAD equals the bytes sent, before and after a read
 *   msg_peek    MSG_PEEK returns the data and leaves it queued
 *   poll        poll() readability follows the data
 *   epoll       epoll readability, level- and edge-triggered
 *   half_close  shutdown(SHUT_WR): the peer reads all data, then EOF, and
 *               can still answer
 *   epipe       send() after shutdown(SHUT_WR) fails EPIPE, nothing follows
 *               the EOF
 *   redirect    the private sl_counters.redirect_ok grew by at least the
 *               number of messages sent (the bytes really took sk_msg)
 */
#define SL_SELFTEST_ENV_FAIL "SIDELANE_SELFTEST_FAIL"
/* The private cgroup: <cgroup2 mount>/sidelane-selftest-<pid>-<n>. */
#define SL_SELFTEST_CGROUP_PREFIX "sidelane-selftest-"
/* Time the forked checks may take before they are killed; the whole call
 * (load, attach, checks, cleanup) stays under about twice this.
 */
#define SL_SELFTEST_BUDGET_MS 1000

struct sl_selftest_result {
	int ok; /* 1: every check passed; 0: failed, or could not run */
	char check[16]; /* the failing check (names above); "" if ok or not run */
	/* One line, e.g. "FIONREAD after 4 KiB redirected: 0, want 4096"; it
	 * fits sl_fp_cfg.reason, so it can be passed as sl_fp_opts.off_reason.
	 */
	char why[SL_FP_REASON_LEN];
	uint32_t elapsed_ms; /* the whole call */
	uint32_t checks_ms; /* the forked checks only */
	uint64_t msgs; /* send() calls that should have been redirected */
	uint64_t redirected; /* sl_counters.redirect_ok of the private copy */
	/* What admission may rely on (SL_KERNEL_*, include/admission.h):
	 * found by a probe after the checks, 0 when they did not pass. The
	 * probe's FIONREAD answer for 1000 bytes TCP brought (-1: no answer).
	 */
	uint32_t kernel;
	int probe_fionread;
	int sk_msg_link; /* 1: sockmap bpf_link, 0: BPF_PROG_ATTACH (before 6.10) */
	/* sock_ops programs inherited from the temporary cgroup's ancestors:
	 * they ran on the test's sockets too (after ours). 0 on a host, where
	 * the cgroup sits right under the root.
	 */
	uint32_t inherited_sockops;
	/* What the run loaded and attached, all gone on return (for logs and
	 * tests): programs sl_sockops and sl_sk_msg, their links (sk_msg 0 on
	 * the BPF_PROG_ATTACH path), the private sockhash.
	 */
	uint32_t prog_ids[2], link_ids[2], sockhash_id;
};

/* Run the self-test: create a temporary cgroup, load a private copy of the
 * fastpath object (no pin paths: nothing under /sys/fs/bpf is read or
 * written), attach it to that cgroup and its own sockhash, and fork a
 * child into the cgroup that runs the checks above over 127.0.0.1, each
 * bounded by poll() timeouts within SL_SELFTEST_BUDGET_MS. Everything it
 * created is removed on every path. Must run before privileges are dropped
 * (it needs CAP_BPF, CAP_NET_ADMIN and write access to the cgroup2 mount);
 * the verdict comes through a pipe, so an ignored SIGCHLD does no harm.
 *
 * Returns 0 with r->ok 1 (passed) or 0 (r->check and r->why say which check
 * failed and what it saw), or -errno when the test could not run (no
 * cgroup2, load or attach refused, fork failed); r->ok is then 0 and r->why
 * says why, so a caller can treat both alike. Logs one line: pr_info on a
 * pass, pr_warn otherwise.
 */
int sl_selftest_run(struct sl_selftest_result *r);

/* The check names, in the order they run, NULL-terminated. */
extern const char *const sl_selftest_checks[];

#endif /* SELFTEST_H */
