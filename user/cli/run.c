// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* `sidelane run` (the configuration, then daemon.c) and `sidelane config`. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <unistd.h>
#include "cli/cli.h"
#include "daemon.h"
#include "config/config.h"
#include "report/config_info.h"
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

/* `sidelane reload`: SIGHUP to the process that published the running
 * version, then its next look at the file, within SL_RELOAD_WAIT_MS.
 */
#define SL_RELOAD_WAIT_MS 5000
int cmd_reload(int argc, char **argv)
{
	struct sl_config_info before, now;
	struct cli cli = {};
	int i, err;

	if (parse_opts(argc, argv, &cli, ALLOW(OPT_PIN_ROOT)))
		return EXIT_USAGE;
	if (need_root())
		return 1;
	err = sl_cfg_info_read(cli.pin_root, &before);
	if (err == -ENOENT)
		return nothing_pinned(cli.pin_root);
	if (!err && (!before.pid || kill((pid_t)before.pid, 0)))
		err = -ESRCH;
	if (!err && kill((pid_t)before.pid, SIGHUP))
		err = -errno;
	if (err) {
		fprintf(stderr, "sidelane reload: no running sidelane for %s: "
			"%s\n", cli.pin_root, strerror(-err));
		return 1;
	}
	for (i = 0; i < SL_RELOAD_WAIT_MS / 50; i++) {
		usleep(50 * 1000);
		if (!sl_cfg_info_read(cli.pin_root, &now) &&
		    now.checks != before.checks)
			break;
	}
	if (i == SL_RELOAD_WAIT_MS / 50) {
		fprintf(stderr, "sidelane reload: pid %llu did not read its "
			"config within %d ms (started without --config?)\n",
			(unsigned long long)before.pid, SL_RELOAD_WAIT_MS);
		return 1;
	}
	if (now.pending) {
		fprintf(stderr, "sidelane reload: version %s refused, %s runs "
			"on: %s\n", now.refused_version, now.version,
			now.refused);
		return 1;
	}
	printf("version %s%s\n", now.version,
	       now.reloads != before.reloads ? " (applied)" : " (unchanged)");
	return 0;
}

/* The file (or the embedded default) first, then the command line over
 * it: at start, and again at every reload (reload.h).
 */
static int run_load(const char *path, struct sl_config *cfg, char *err,
		    size_t errlen, void *arg)
{
	const struct cli *cli = arg;
	int ret;

	ret = sl_config_load(path, cfg, err, errlen);
	if (ret)
		return ret;
	if (cli->pin_root_given || !cfg->pin_root[0])
		snprintf(cfg->pin_root, sizeof(cfg->pin_root), "%s",
			 cli->pin_root);
	if (cli->cgroup)
		snprintf(cfg->cgroup, sizeof(cfg->cgroup), "%s", cli->cgroup);
	if (cli->excluded_given) {
		cfg->fastpath.n_exclude_ports = cli->n_excluded_ports;
		memcpy(cfg->fastpath.exclude_ports, cli->excluded_ports,
		       cli->n_excluded_ports * sizeof(cli->excluded_ports[0]));
	}
	if (cli->app_sockets_given)
		cfg->fastpath.app_sockets = cli->app_sockets;
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
	if (run_load(cli.config, cfg, cerr, sizeof(cerr), &cli)) {
		fprintf(stderr, "sidelane: %s\n", cerr);
		ret = EXIT_USAGE;
		goto out;
	}
	if (!cfg->cgroup[0]) {
		fprintf(stderr, "sidelane run: --cgroup PATH (or cgroup: in the config) is required\n");
		ret = EXIT_USAGE;
		goto out;
	}
	ret = need_root() ? 1 : sl_daemon_main(cfg, &(struct sl_daemon_opts){
		.sidecar_cgroup = cli.sidecar_cgroup,
		.detach_on_exit = cli.detach_on_exit,
		.config_path = cli.config,
		.load = run_load,
		.load_arg = &cli,
	});
out:
	free(cfg);
	return ret;
}
