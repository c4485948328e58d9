// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Unit tests for user/bench/bench_plot.c: the .dat tables and .gp scripts it
 * writes, and the SVGs gnuplot draws from them (make deps installs
 * gnuplot-nox; without it the draw is an error, -ENOENT).
 */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "bench/bench_plot.h"

static char dir[64];

static char *slurp(const char *stem, const char *ext)
{
	char path[256];
	FILE *f;
	char *buf;
	long n;

	snprintf(path, sizeof(path), "%s/%s.%s", dir, stem, ext);
	f = fopen(path, "r");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = calloc(1, (size_t)n + 1);
	if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	return buf;
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/sidelane-test-plot-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd);
}

static void cdf_files(void **state)
{
	static const double q[3] = { 0.5, 0.99, 0.999 };
	static const double a[3] = { 100.0, 200.5, 300.25 };
	static const double b[3] = { 110.0, NAN, 400.0 };
	struct sl_plot_cdf c = { .stem = "lat", .title = "rr 1 KiB: a mode's",
				 .nseries = 2, .npoints = 3, .q = q,
				 .series = { "direct", "sidelane" },
				 .us = { a, b } };
	char *dat, *gp, *svg;

	(void)state;
	assert_int_equal(sl_plot_cdf(dir, &c), 0);
	dat = slurp("lat", "dat");
	gp = slurp("lat", "gp");
	svg = slurp("lat", "svg");
	assert_non_null(dat);
	assert_non_null(gp);
	assert_non_null(svg);
	/* a header, then a row per quantile; a missing value is NaN */
	assert_string_equal(dat, "quantile\t\"direct\"\t\"sidelane\"\n"
				 "0.5000\t100.00\t110.00\n"
				 "0.9900\t200.50\tNaN\n"
				 "0.9990\t300.25\t400.00\n");
	/* the title's quote cannot end gnuplot's single-quoted string */
	assert_non_null(strstr(gp, "set title 'rr 1 KiB: a mode\"s'"));
	assert_non_null(strstr(gp, "set logscale x"));
	assert_non_null(strstr(gp, "title columnhead(i)"));
	/* gnuplot drew a line per series, named after it */
	assert_non_null(strstr(svg, "<svg"));
	assert_non_null(strstr(svg, ">direct</tspan>"));
	assert_non_null(strstr(svg, ">sidelane</tspan>"));
	free(dat);
	free(gp);
	free(svg);
}

static void bar_files(void **state)
{
	struct sl_plot_bars b = { .stem = "tput", .title = "throughput",
				  .ylabel = "x direct", .nseries = 2, .ncats = 2,
				  .series = { "direct", "haproxy" },
				  .cats = { "rr 1 KiB", "stream 64 KiB" },
				  .v = { { 1.0, 0.5 }, { 1.0, NAN } } };
	char *dat, *svg;

	(void)state;
	assert_int_equal(sl_plot_bars(dir, &b), 0);
	dat = slurp("tput", "dat");
	svg = slurp("tput", "svg");
	assert_non_null(dat);
	assert_non_null(svg);
	assert_string_equal(dat, "category\t\"direct\"\t\"haproxy\"\n"
				 "\"rr 1 KiB\"\t1.0000\t0.5000\n"
				 "\"stream 64 KiB\"\t1.0000\tNaN\n");
	assert_non_null(strstr(svg, ">haproxy</tspan>"));
	assert_non_null(strstr(svg, ">stream 64 KiB</tspan>"));
	free(dat);
	free(svg);
}

/* A folder that is not there: an error, not a crash or a silent skip. */
static void missing_dir(void **state)
{
	static const double q[1] = { 0.5 }, v[1] = { 1.0 };
	struct sl_plot_cdf c = { .stem = "x", .title = "x", .nseries = 1,
				 .npoints = 1, .q = q, .series = { "a" },
				 .us = { v } };

	(void)state;
	assert_true(sl_plot_cdf("/nonexistent/sidelane-plot", &c) < 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(cdf_files),
		cmocka_unit_test(bar_files),
		cmocka_unit_test(missing_dir),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
