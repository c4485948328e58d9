// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* A policy file (`sidelane policy load`, sl_policy_load): rules and a
 * default, or a refusal that names the file and says why.
 */
#include "fuzz.h"
#include "config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct sl_policy *pol;
	char path[64], err[1024] = "";
	unsigned int i;
	int fd, r;

	if (!pol && !(pol = malloc(sizeof(*pol))))
		abort();
	fd = fuzz_file(data, size, path);
	r = sl_policy_load(path, pol, err, sizeof(err));
	close(fd);
	if (r) {
		if (!fuzz_names_file(err, path))
			abort();
		return 0;
	}
	/* what was accepted is what the maps can hold */
	if (pol->n_rules > SL_CFG_MAX_RULES)
		abort();
	for (i = 0; i < pol->n_rules; i++)
		if (pol->rules[i].n_ports > SL_CFG_MAX_RULE_PORTS ||
		    pol->rules[i].cidr.prefixlen > 128)
			abort();
	return 0;
}
