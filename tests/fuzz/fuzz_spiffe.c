// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* SPIFFE IDs and patterns (tls/spiffe.c): the first line an ID, the second
 * a pattern. An accepted ID names its trust domain and matches itself.
 */
#include "fuzz.h"
#include "tls/spiffe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 1), *f[2] = { NULL, NULL };
	char td[SL_SPIFFE_TD_MAX + 1];
	const char *id, *pattern;

	if (!buf)
		abort();
	if (fuzz_fields(data, size, buf, f, 2) < 2)
		f[1] = (char *)"*";
	id = f[0];
	pattern = f[1];
	if (!sl_spiffe_parse(id, td, sizeof(td))) {
		if (!td[0] || strncmp(id, "spiffe://", 9) ||
		    strncmp(id + 9, td, strlen(td)) ||
		    !sl_spiffe_match(id, id) || !sl_spiffe_match("*", id))
			abort();
	}
	sl_spiffe_match(pattern, id);
	free(buf);
	return 0;
}
