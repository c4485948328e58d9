// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* `sidelane policy add ID allow|deny CIDR [PORTS]` (policy_rule_parse):
 * the fuzzed bytes are its arguments, one per line. An accepted rule is
 * one the maps can hold.
 */
#include "fuzz.h"
#include "cli/cli.h"
#include "config/config.h"

#define MAX_ARGS 6

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 1), *argv[MAX_ARGS];
	struct sl_rule r;
	unsigned int i;
	int argc;

	if (!buf)
		abort();
	argc = fuzz_fields(data, size, buf, argv, MAX_ARGS);
	if (!policy_rule_parse(argv, argc, &r)) {
		if (argc < 3 || argc > 4 || !r.id ||
		    (r.action != SL_ACTION_ALLOW && r.action != SL_ACTION_DENY) ||
		    r.n_ports > SL_CFG_MAX_RULE_PORTS ||
		    r.cidr.prefixlen > (r.cidr.family == AF_INET ? 32 : 128))
			abort();
		for (i = 0; i < r.n_ports; i++)
			if (!r.ports[i].lo || r.ports[i].lo > r.ports[i].hi)
				abort();
	}
	free(buf);
	return 0;
}
