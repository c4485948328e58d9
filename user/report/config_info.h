/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The running configuration's version and reloads in the pinned
 * SL_MAP_CONFIG_INFO map (user/report/config_info.c): written by `sidelane
 * run` (user/reload.c), read by `status`, /stats and /metrics.
 */
#ifndef SL_CONFIG_INFO_H
#define SL_CONFIG_INFO_H

#include <linux/types.h>
#include <stdio.h>
#include "stats.h"

/* 0, or -errno (-ENOENT: an older build's pins have no such map). */
int sl_cfg_info_write(const char *pin_root, const struct sl_config_info *ci);
int sl_cfg_info_read(const char *pin_root, struct sl_config_info *ci);
/* As `status` prints it: a "config:" line, or a ,"config":{..} JSON
 * member; nothing when no process wrote it.
 */
void sl_cfg_info_print(FILE *f, const struct sl_config_info *ci, int json);
/* sidelane_config_info{version}, its load time and the reload counters. */
void sl_cfg_info_metrics(FILE *f, const struct sl_config_info *ci);

#endif /* SL_CONFIG_INFO_H */
