// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* What is pinned: `sidelane status`, `detach` and `gc`. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli/cli.h"
#include "lib/log.h"
#include "loader/detach.h"
#include "loader/gc.h"
#include "report/status.h"

int cmd_status(int argc, char **argv)
{
	struct sl_status *st;
	struct cli cli = {};
	int err;

	if (parse_opts(argc, argv, &cli, ALLOW(OPT_PIN_ROOT) | ALLOW(OPT_JSON)))
		return EXIT_USAGE;
	if (need_root())
		return 1;
	st = malloc(sizeof(*st));
	if (!st)
		return 1;
	err = sl_status_read(cli.pin_root, st);
	if (err == -ENOENT) {
		if (cli.json)
			printf("{\"version\":\"%s\",\"pin_root\":\"%s\",\"attached\":false}\n",
			       SL_VERSION, cli.pin_root);
		else
			nothing_pinned(cli.pin_root);
		free(st);
		return EXIT_NOTFOUND;
	}
	if (err) {
		pr_warn("reading %s: %s\n", cli.pin_root, strerror(-err));
		free(st);
		return 1;
	}
	printf(cli.json ? "{" : "");
	sl_status_print(stdout, cli.pin_root, st, cli.json);
	printf(cli.json ? "}\n" : "");
	free(st);
	return 0;
}

int cmd_detach(int argc, char **argv)
{
	struct cli cli = {};
	int err;

	if (parse_opts(argc, argv, &cli, ALLOW(OPT_PIN_ROOT)))
		return EXIT_USAGE;
	if (need_root())
		return 1;
	err = sl_detach(cli.pin_root);
	if (err == -ENOENT)
		return nothing_pinned(cli.pin_root);
	if (err) {
		pr_warn("detach %s: %s\n", cli.pin_root, strerror(-err));
		return 1;
	}
	pr_info("detached; removed %s\n", cli.pin_root);
	return 0;
}

/* `sidelane gc`: every failure is in its report already. */
int cmd_gc(int argc, char **argv)
{
	struct cli cli = { .bpffs = SL_BPFFS_DEFAULT,
			   .prefix = SL_GC_PREFIX_DEFAULT };
	const char *bad = NULL;

	if (parse_opts(argc, argv, &cli,
		       ALLOW(OPT_DRY_RUN) | ALLOW(OPT_BPFFS) | ALLOW(OPT_PREFIX)))
		return EXIT_USAGE;
	if (cli.bpffs[0] != '/')
		bad = "--bpffs takes an absolute path";
	else if (!cli.prefix[0] || strchr(cli.prefix, '/'))
		bad = "--prefix takes a non-empty name without '/'";
	if (bad) {
		fprintf(stderr, "sidelane gc: %s\n", bad);
		return EXIT_USAGE;
	}
	if (need_root())
		return 1;
	return sl_gc(cli.bpffs, cli.prefix, cli.dry_run, stdout) < 0 ? 1 : 0;
}
