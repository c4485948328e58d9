/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* `sidelane bench --plot DIR` (user/bench/bench_plot.c): SVG charts of one bench
 * run drawn by gnuplot (Debian gnuplot-nox). Each chart is written as
 * DIR/<stem>.dat (the numbers), DIR/<stem>.gp (the script) and, by gnuplot,
 * DIR/<stem>.svg, so a chart can be redrawn or restyled from its files.
 */
#ifndef BENCH_PLOT_H
#define BENCH_PLOT_H

#include <stddef.h>

#define SL_PLOT_SERIES_MAX 8
#define SL_PLOT_CATS_MAX 16

/* Latency distributions: one line per series, x the latency (µs, log
 * scale), y the fraction of transactions at or below it.
 */
struct sl_plot_cdf {
	const char *stem, *title;
	unsigned int nseries, npoints;
	const char *series[SL_PLOT_SERIES_MAX];
	const double *q; /* npoints quantiles, 0..1, ascending */
	const double *us[SL_PLOT_SERIES_MAX]; /* npoints latencies each */
};

/* Grouped bars: a group per category, a bar per series; NAN: no bar. */
struct sl_plot_bars {
	const char *stem, *title, *ylabel;
	unsigned int nseries, ncats;
	const char *series[SL_PLOT_SERIES_MAX];
	const char *cats[SL_PLOT_CATS_MAX];
	double v[SL_PLOT_CATS_MAX][SL_PLOT_SERIES_MAX];
};

/* Write the chart's files under dir and run gnuplot on them. 0 or -errno
 * (-ENOENT: no gnuplot; logged with what to install).
 */
int sl_plot_cdf(const char *dir, const struct sl_plot_cdf *c);
int sl_plot_bars(const char *dir, const struct sl_plot_bars *b);

#endif /* BENCH_PLOT_H */
