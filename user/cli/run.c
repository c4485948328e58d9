// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* `sidelane run` (the configuration, then daemon.c) and `sidelane config`. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli/cli.h"
#include "daemon.h"
#include "config/config.h"
#include "lib/log.h"

/* `sidelane config [check FILE [--json]]` */
int cmd_config(int argc, char **argv)
{
	char err[SL_CFG_ERR_LEN];
	struct sl_config *cfg;
	int json;

	if (argc == 1) {
		fputs(sl_config_default_yaml, stdout);
		return 0;
	}
	json = argc == 4 && !strcmp(argv[3], "--json");
	if (strcmp(argv[1], "check") || (argc != 3 && !json)) {
		fprintf(stderr, "usage: sidelane config [check FILE [--json]]\n");
		return EXIT_USAGE;
	}
	cfg = calloc(1, sizeof(*cfg));
	if (!cfg)
		return 1;
	if (sl_config_load(argv[2], cfg, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		free(cfg);
		return EXIT_USAGE;
	}
	if (json)
		sl_config_print_json(stdout, cfg);
	else
		printf("%s: ok, version %s\n", argv[2], cfg->version);
	free(cfg);
	return 0;
}

int cmd_run(int argc, char **argv)
{
	char cerr[SL_CFG_ERR_LEN];
	struct sl_config *cfg;
	struct cli cli = {};
	int ret;

	if (parse_opts(argc, argv, &cli,
		       ALLOW(OPT_PIN_ROOT) | ALLOW(OPT_CGROUP) | ALLOW(OPT_DETACH) |
			       ALLOW(OPT_EXCLUDE) | ALLOW(OPT_CONFIG) |
			       ALLOW(OPT_SIDECAR) | ALLOW(OPT_APP_SOCKETS)))
		return EXIT_USAGE;
	cfg = calloc(1, sizeof(*cfg));
	if (!cfg)
		return 1;
	/* The file (or the embedded default) first, then the command line. */
	if (sl_config_load(cli.config, cfg, cerr, sizeof(cerr))) {
		fprintf(stderr, "sidelane: %s\n", cerr);
		ret = EXIT_USAGE;
		goto out;
	}
	if (cli.pin_root_given || !cfg->pin_root[0])
		snprintf(cfg->pin_root, sizeof(cfg->pin_root), "%s", cli.pin_root);
	if (cli.cgroup)
		snprintf(cfg->cgroup, sizeof(cfg->cgroup), "%s", cli.cgroup);
	if (cli.excluded_given) {
		cfg->fastpath.n_exclude_ports = cli.n_excluded_ports;
		memcpy(cfg->fastpath.exclude_ports, cli.excluded_ports,
		       cli.n_excluded_ports * sizeof(cli.excluded_ports[0]));
	}
	if (cli.app_sockets_given)
		cfg->fastpath.app_sockets = cli.app_sockets;
	if (!cfg->cgroup[0]) {
		fprintf(stderr, "sidelane run: --cgroup PATH (or cgroup: in the config) is required\n");
		ret = EXIT_USAGE;
		goto out;
	}
	ret = need_root() ? 1 : sl_daemon_main(cfg, &(struct sl_daemon_opts){
		.sidecar_cgroup = cli.sidecar_cgroup,
		.detach_on_exit = cli.detach_on_exit,
	});
out:
	free(cfg);
	return ret;
}
