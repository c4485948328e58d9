/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The command line (user/cli/): one option parser and one exit-code
 * convention for every command, and the commands main.c's table runs.
 */
#ifndef SL_CLI_H
#define SL_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "sidelane.h"

/* Exit codes: 0 ok, 1 runtime failure, 2 usage error, 3 nothing found. */
enum { EXIT_USAGE = 2, EXIT_NOTFOUND = 3 };

enum {
	OPT_PIN_ROOT = 256,
	OPT_CGROUP,
	OPT_DETACH,
	OPT_JSON,
	OPT_EXCLUDE,
	OPT_CONFIG,
	OPT_SIDECAR,
	OPT_WATCH,
	OPT_APP_SOCKETS,
	OPT_DRY_RUN,
	OPT_BPFFS,
	OPT_PREFIX,
};

struct cli {
	const char *pin_root;
	const char *cgroup;
	int detach_on_exit;
	int json;
	uint16_t excluded_ports[SL_MAX_EXCLUDED_PORTS];
	size_t n_excluded_ports;
	int excluded_given;
	int pin_root_given;
	const char *config;
	const char *sidecar_cgroup;
	int watch;
	uint32_t app_sockets;
	int app_sockets_given;
	int dry_run;
	const char *bpffs, *prefix; /* gc */
};

/* Parse the options of a subcommand; `allowed` lists the OPT_* it takes
 * (ALLOW()). With SL_OPTS_ARGS, operands are left at argv[optind..]
 * (getopt moves them to the end), otherwise they are an error. -h prints
 * the usage and exits. 0 or -EINVAL (said).
 */
#define SL_OPTS_ARGS (1u << 31)
#define ALLOW(o) (1u << ((o) - OPT_PIN_ROOT))
int parse_opts(int argc, char **argv, struct cli *cli, unsigned int allowed);
/* 0 as root, else -EPERM (said). */
int need_root(void);
/* No pin folder: "nothing pinned under DIR" on stderr; EXIT_NOTFOUND. */
int nothing_pinned(const char *pin_root);
void usage(FILE *f);

/* The commands: argv[0] is the command's name; an exit status. */
int cmd_run(int argc, char **argv); /* run.c */
int cmd_config(int argc, char **argv);
int cmd_reload(int argc, char **argv);
int cmd_status(int argc, char **argv); /* pins.c */
int cmd_detach(int argc, char **argv);
int cmd_gc(int argc, char **argv);
int cmd_policy(int argc, char **argv); /* policy.c */
/* `policy add`'s "ID allow|deny CIDR [PORTS]" from argv into r; what is
 * wrong goes to stderr. 0 or -EINVAL. (tests/fuzz/fuzz_policy_args.c)
 */
struct sl_rule;
int policy_rule_parse(char **argv, int argc, struct sl_rule *r);
int cmd_conns(int argc, char **argv); /* conns.c */

#endif /* SL_CLI_H */
