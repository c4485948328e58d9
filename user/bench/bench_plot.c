// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* SVG charts of a bench run (see bench_plot.h): the numbers go to a .dat
 * file, the drawing to a gnuplot script next to it, and gnuplot (run with
 * the script as its only argument, no shell) writes the .svg.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "bench/bench_plot.h"
#include "lib/log.h"

#define PLOT_SIZE "900,520"

static int plot_path(char *buf, size_t len, const char *dir, const char *stem,
		     const char *ext)
{
	int n = snprintf(buf, len, "%s/%s.%s", dir, stem, ext);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* gnuplot strings are single-quoted: labels here never hold a quote */
static void quoted(FILE *f, const char *s)
{
	fputc('\'', f);
	for (; *s; s++)
		fputc(*s == '\'' ? '"' : *s, f);
	fputc('\'', f);
}

static int run_gnuplot(const char *gp)
{
	pid_t pid;
	int st;

	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (!pid) {
		execlp("gnuplot", "gnuplot", gp, (char *)NULL);
		_exit(errno == ENOENT ? 127 : 126);
	}
	if (waitpid(pid, &st, 0) < 0)
		return -errno;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 127) {
		pr_warn("bench: --plot needs gnuplot (Debian: gnuplot-nox; `make "
			"deps` installs it)\n");
		return -ENOENT;
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st)) {
		pr_warn("bench: gnuplot %s failed\n", gp);
		return -EIO;
	}
	return 0;
}

/* Open stem.dat and stem.gp under dir; the .gp starts with the terminal. */
static int open_pair(const char *dir, const char *stem, FILE **dat, FILE **gp,
		     char *gp_path, size_t gp_len)
{
	char path[PATH_MAX];
	int err;

	*dat = *gp = NULL;
	err = plot_path(path, sizeof(path), dir, stem, "dat");
	err = err ?: plot_path(gp_path, gp_len, dir, stem, "gp");
	if (err)
		return err;
	*dat = fopen(path, "we");
	*gp = *dat ? fopen(gp_path, "we") : NULL;
	if (!*gp) {
		err = -errno;
		pr_warn("bench: --plot: %s: %s\n", *dat ? gp_path : path,
			strerror(-err));
		if (*dat)
			fclose(*dat);
		*dat = NULL;
		return err;
	}
	fprintf(*gp, "# sidelane bench --plot: redraw with `gnuplot %s.gp`\n",
		stem);
	fprintf(*gp, "set terminal svg size " PLOT_SIZE
		     " dynamic font 'sans,12' background '#ffffff'\n");
	fprintf(*gp, "set output '%s/%s.svg'\n", dir, stem);
	fprintf(*gp, "set grid\nset key outside right top\n");
	return 0;
}

static int close_pair(FILE *dat, FILE *gp, const char *gp_path)
{
	int err = 0;

	if (ferror(dat) || ferror(gp))
		err = -EIO;
	if (fclose(dat))
		err = -errno;
	if (fclose(gp))
		err = -errno;
	return err ?: run_gnuplot(gp_path);
}

/* The .dat header: the first column's name, then one per series, quoted
 * (gnuplot's columnhead takes the words between the quotes).
 */
static void dat_header(FILE *dat, const char *first,
		       const char *const *series, unsigned int n)
{
	unsigned int s;

	fprintf(dat, "%s", first);
	for (s = 0; s < n; s++)
		fprintf(dat, "\t\"%s\"", series[s]);
	fprintf(dat, "\n");
}

/* One value, NaN for none ("set datafile missing"). */
static void dat_value(FILE *dat, double v, int prec)
{
	if (isnan(v))
		fprintf(dat, "\tNaN");
	else
		fprintf(dat, "\t%.*f", prec, v);
}

/* Title and label lines, each a single-quoted string. */
static void gp_text(FILE *gp, const char *what, const char *text)
{
	fprintf(gp, "set %s ", what);
	quoted(gp, text);
	fprintf(gp, "\n");
}

int sl_plot_cdf(const char *dir, const struct sl_plot_cdf *c)
{
	char gp_path[PATH_MAX];
	FILE *dat, *gp;
	unsigned int i, s;
	int err;

	err = open_pair(dir, c->stem, &dat, &gp, gp_path, sizeof(gp_path));
	if (err)
		return err;
	/* a header line, then one row per quantile: q, then each series */
	dat_header(dat, "quantile", c->series, c->nseries);
	for (i = 0; i < c->npoints; i++) {
		fprintf(dat, "%.4f", c->q[i]);
		for (s = 0; s < c->nseries; s++)
			dat_value(dat, c->us[s][i], 2);
		fprintf(dat, "\n");
	}
	gp_text(gp, "title", c->title);
	fprintf(gp, "set logscale x\nset xlabel 'latency, us (log)'\n"
		    "set ylabel 'fraction of transactions at or below'\n"
		    "set yrange [0:1]\nset key autotitle columnhead\n"
		    "set datafile missing 'NaN'\n");
	fprintf(gp, "plot for [i=2:%u] '%s/%s.dat' using i:1 with lines lw 2 "
		    "title columnhead(i)\n",
		c->nseries + 1, dir, c->stem);
	return close_pair(dat, gp, gp_path);
}

int sl_plot_bars(const char *dir, const struct sl_plot_bars *b)
{
	char gp_path[PATH_MAX];
	FILE *dat, *gp;
	unsigned int i, s;
	int err;

	err = open_pair(dir, b->stem, &dat, &gp, gp_path, sizeof(gp_path));
	if (err)
		return err;
	dat_header(dat, "category", b->series, b->nseries);
	for (i = 0; i < b->ncats; i++) {
		fprintf(dat, "\"%s\"", b->cats[i]);
		for (s = 0; s < b->nseries; s++)
			dat_value(dat, b->v[i][s], 4);
		fprintf(dat, "\n");
	}
	gp_text(gp, "title", b->title);
	gp_text(gp, "ylabel", b->ylabel);
	fprintf(gp, "set style data histograms\n"
		    "set style histogram clustered gap 1\n"
		    "set style fill solid 0.8 border -1\n"
		    "set boxwidth 0.9\nset yrange [0:*]\nset xtics rotate by -30\n"
		    "set key autotitle columnhead\nset datafile missing 'NaN'\n");
	fprintf(gp, "plot for [i=2:%u] '%s/%s.dat' using i:xtic(1) "
		    "title columnhead(i)\n",
		b->nseries + 1, dir, b->stem);
	return close_pair(dat, gp, gp_path);
}
