// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The configuration file (sl_config_load): any bytes are either a config
 * that prints as JSON or a refusal that says where and why.
 */
#include "fuzz.h"
#include "config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct sl_config *cfg;
	char path[64], err[1024] = "";
	FILE *null;
	int fd, r;

	if (!cfg && !(cfg = malloc(sizeof(*cfg))))
		abort();
	fd = fuzz_file(data, size, path);
	r = sl_config_load(path, cfg, err, sizeof(err));
	close(fd);
	if (r) {
		/* "file:line: reason" (or "file: reason" for the whole file) */
		if (!fuzz_names_file(err, path))
			abort();
		return 0;
	}
	null = fopen("/dev/null", "we");
	if (!null)
		abort();
	sl_config_print_json(null, cfg);
	fclose(null);
	return 0;
}
