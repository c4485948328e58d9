// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The configuration file (sl_config_load): any bytes are either a config
 * that prints as JSON or a refusal that says where and why. A config that
 * loads is also what a reload would read with the default running
 * (sl_config_diff): changes, or a refusal that names the file.
 */
#include "fuzz.h"
#include "config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct sl_config *cfg, *def;
	char path[64], err[1024] = "";
	unsigned int changes;
	FILE *null;
	int fd, r;

	if (!cfg && !(cfg = malloc(sizeof(*cfg))))
		abort();
	if (!def && (!(def = malloc(sizeof(*def))) ||
		     sl_config_load(NULL, def, err, sizeof(err))))
		abort();
	fd = fuzz_file(data, size, path);
	r = sl_config_load(path, cfg, err, sizeof(err));
	if (!r) {
		/* the file is still there: a refusal finds the key's line */
		r = sl_config_diff(def, cfg, path, &changes, err, sizeof(err));
		if (r && (r != -EBUSY || !fuzz_names_file(err, path)))
			abort();
		r = 0;
	}
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
