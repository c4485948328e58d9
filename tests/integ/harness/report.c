// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* TAP-like reporting: ok, not ok, skip (a failure under CI=true), the
 * summary.
 */
#define _GNU_SOURCE
#include "harness/internal.h"

int n_pass, n_fail, n_skip, n_test;
/* The check that failed last: a th_pass() of the same name after it is
 * a test that went on past a failed TH_CHECK, which must not read as ok.
 */
static char last_failed[256];

/* ---- reporting ---- */

void th_pass(const char *name)
{
	if (last_failed[0] && !strncmp(name, last_failed, sizeof(last_failed) - 1)) {
		th_fail(name, "reported ok after it failed: the test went on "
			      "past a failed TH_CHECK");
		return;
	}
	printf("ok %d - %s\n", ++n_test, name);
	fflush(stdout);
	n_pass++;
}

void th_fail(const char *name, const char *fmt, ...)
{
	va_list ap;

	snprintf(last_failed, sizeof(last_failed), "%s", name);
	printf("not ok %d - %s # ", ++n_test, name);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	n_fail++;
}

void th_skip(const char *name, const char *why)
{
	if (th_ci()) {
		/* every CI machine can load BPF: a skip there hides a breakage */
		th_fail(name, "SKIP under CI=true is a failure: %s", why);
		return;
	}
	printf("ok %d - %s # SKIP %s\n", ++n_test, name, why);
	fflush(stdout);
	n_skip++;
}

void th_info(const char *fmt, ...)
{
	va_list ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

int th_failed(void)
{
	return n_fail;
}

int th_summary(void)
{
	printf("1..%d\n", n_test);
	if (n_skip)
		printf("%d passed, %d failed, %d skipped\n", n_pass, n_fail,
		       n_skip);
	else
		printf("%d passed, %d failed\n", n_pass, n_fail);
	fflush(stdout);
	return n_fail ? 1 : 0;
}
