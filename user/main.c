// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* sidelane: the command table. `sidelane run|status|detach|policy|conns|
 * bench|gc|config`, in the style of ip(8) and bpftool(8); each command lives
 * in user/cli/ (bench in user/bench/).
 */
#include <stdio.h>
#include <string.h>
#include "sidelane.h"
#include "bench/bench.h"
#include "cli/cli.h"
#include "lib/log.h"

static int cmd_version(int argc, char **argv)
{
	(void)argc, (void)argv;
	printf("sidelane %s\n", SL_VERSION);
	return 0;
}

static int cmd_help(int argc, char **argv)
{
	(void)argc, (void)argv;
	usage(stdout);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} cmds[] = {
		{ "run", cmd_run },
		{ "status", cmd_status },
		{ "detach", cmd_detach },
		{ "policy", cmd_policy },
		{ "conns", cmd_conns },
		{ "bench", cmd_bench },
		{ "gc", cmd_gc },
		{ "config", cmd_config },
		{ "reload", cmd_reload },
		{ "version", cmd_version },
		{ "--version", cmd_version },
		{ "help", cmd_help },
		{ "--help", cmd_help },
		{ "-h", cmd_help },
	};
	size_t i;

	/* Global -v before the command. */
	while (argc > 1 && !strcmp(argv[1], "-v")) {
		sl_verbosity++;
		argc--;
		argv++;
	}
	sl_log_init_libbpf();
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(argv[1], cmds[i].name))
			return cmds[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "sidelane: unknown command '%s'\n\n", argv[1]);
	usage(stderr);
	return EXIT_USAGE;
}
