/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Admission, user side (user/loader/admission.c; include/admission.h has the rule):
 * the fastpath.app_sockets modes by name, what each one changes for an app,
 * and the pinned sl_adm_cfg and sl_adm_stats read back for status and
 * /metrics (user/loader/fastpath.c writes sl_adm_cfg when it attaches).
 */
#ifndef ADMISSION_USER_H
#define ADMISSION_USER_H

#include <stdint.h>
#include <stdio.h>
#include "admission.h"
#include "acct.h"
#include "config/config.h" /* sl_app_sockets_name */

/* Reason names and what they mean, index enum sl_acc_reason (acct.h). */
extern const char *const sl_acc_reason_name[SL_ACC_NR];
extern const char *const sl_acc_reason_help[SL_ACC_NR];

/* What `sidelane status` shows of admission. */
struct sl_adm_status {
	int present; /* the maps are pinned (older builds have none) */
	struct sl_adm_cfg cfg;
	struct sl_adm_stats stats; /* summed over CPUs */
};

/* Read it from the pins. 0, or -errno (st->present 0). */
int sl_adm_read(const char *pin_root, struct sl_adm_status *st);

/* Log, at start, which app sockets mode admits on this kernel and every
 * way an admitted app can tell the difference (README, "Socket
 * semantics"): one pr_info per line, pr_warn for the opt-in modes.
 */
void sl_adm_explain(uint32_t mode, uint32_t kernel);

/* One run of the admission sweep (sl_fp_sweep_open()'s link): sockets
 * the mode in force would not admit are taken out of the sockhash, those
 * with unread redirected bytes are left for the next run.
 */
struct sl_sweep_result {
	unsigned int evicted, waiting;
};

/* Run it once. 0 or -errno. */
int sl_adm_sweep(int link_fd, struct sl_sweep_result *res);

/* status: text or the members of a JSON object ("admission":{...}). */
void sl_adm_print(FILE *f, const struct sl_adm_status *st, int json);
#endif /* ADMISSION_USER_H */
