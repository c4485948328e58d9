// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The running configuration's version and reloads (config_info.h). */
#include <stddef.h>
#include <string.h>
#include "sidelane.h"
#include "lib/json.h"
#include "loader/pins.h"
#include "report/config_info.h"
#include "report/counters.h"

#define CI(fld) offsetof(struct sl_config_info, fld)

static const struct sl_ctr ci_ctrs[] = {
	/* /metrics: sidelane_config_loaded_timestamp_seconds */
	{ "loaded_ms", NULL, NULL, SL_CTR_GAUGE, NULL, CI(loaded_ms) },
	{ "reloads", "sidelane_config_reloads_total", "result=\"applied\"",
	  SL_CTR_COUNTER, "Configuration versions taken from the file while "
	  "running, and versions refused (each counted once; the running "
	  "one stayed).", CI(reloads) },
	{ "reloads_refused", "sidelane_config_reloads_total",
	  "result=\"refused\"", SL_CTR_COUNTER, NULL, CI(reloads_refused) },
	{ "refused_ms", NULL, NULL, SL_CTR_GAUGE, NULL, CI(refused_ms) },
	{ "checks", NULL, NULL, SL_CTR_COUNTER, NULL, CI(checks) },
	{ "pending", "sidelane_config_refused", NULL, SL_CTR_FLAG,
	  "1 while the file holds a version that was refused (the running "
	  "one differs from it; tried again every 10 s).", CI(pending) },
};

int sl_cfg_info_write(const char *pin_root, const struct sl_config_info *ci)
{
	return sl_pin_slot0(pin_root, SL_MAP_CONFIG_INFO,
			    (struct sl_config_info *)ci, true);
}

int sl_cfg_info_read(const char *pin_root, struct sl_config_info *ci)
{
	int err = sl_pin_slot0(pin_root, SL_MAP_CONFIG_INFO, ci, false);

	if (err)
		memset(ci, 0, sizeof(*ci));
	/* written by user space: NUL-terminated by us, but read defensively */
	ci->version[sizeof(ci->version) - 1] = '\0';
	ci->refused_version[sizeof(ci->refused_version) - 1] = '\0';
	ci->refused[sizeof(ci->refused) - 1] = '\0';
	return err;
}

void sl_cfg_info_print(FILE *f, const struct sl_config_info *ci, int json)
{
	if (!ci->pid)
		return;
	if (json) {
		fputs(",\"config\":{\"version\":", f);
		sl_json_str(f, ci->version);
		fputc(',', f);
		sl_ctr_json(f, ci_ctrs, SL_CTR_N(ci_ctrs), ci);
		fputs(",\"refused_version\":", f);
		sl_json_str(f, ci->refused_version);
		fputs(",\"refused\":", f);
		sl_json_str(f, ci->refused);
		fputc('}', f);
		return;
	}
	fprintf(f, "config: version %s, %llu reload(s) applied, %llu refused\n",
		ci->version, (unsigned long long)ci->reloads,
		(unsigned long long)ci->reloads_refused);
	if (ci->refused[0])
		fprintf(f, "  %s refused: version %s: %s\n",
			ci->pending ? "the file's version is" : "last",
			ci->refused_version, ci->refused);
}

void sl_cfg_info_metrics(FILE *f, const struct sl_config_info *ci)
{
	if (!ci->pid)
		return;
	sl_prom_family(f, "sidelane_config_info", SL_PROM_GAUGE,
		       "Always 1; the running configuration's version (the "
		       "first hex digits of its file's SHA-256) as a label.");
	sl_prom_sample(f, "sidelane_config_info", "version", ci->version, NULL,
		       NULL, 1);
	sl_prom_one(f, "sidelane_config_loaded_timestamp_seconds",
		    SL_PROM_GAUGE, "When the running configuration was loaded "
		    "(Unix time).", ci->loaded_ms / 1000);
	sl_ctr_prom(f, ci_ctrs, SL_CTR_N(ci_ctrs), ci);
}
