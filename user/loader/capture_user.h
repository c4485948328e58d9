/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* User side of capture and policy (user/loader/capture.c). */
#ifndef CAPTURE_USER_H
#define CAPTURE_USER_H

#include <stdint.h>
#include <sys/socket.h>
#include "capture.h"
#include "config/config.h"

/* Attach capture to the app's cgroup (connect4/6, getpeername4/6, sockops)
 * and SO_ORIGINAL_DST to the sidecar's (getsockopt, and the same sockops,
 * which hands the original destination to the accepted socket); pin under
 * pin_root;
 * reuse what is pinned; apply cfg->capture and cfg->policy. sidecar_cgroup
 * NULL: policy only (cfg->capture.enabled must be 0). 0 or -errno.
 */
int sl_cap_attach(const char *pin_root, const char *app_cgroup,
		  const char *sidecar_cgroup, const struct sl_config *cfg);
/* A config reload: cfg->capture's destinations and ports replace those in
 * force (a prefix in both is never missing meanwhile); the rest was set at
 * attach and stays. 0 or -errno (-ENOENT: nothing pinned).
 */
int sl_cap_update(const char *pin_root, const struct sl_config *cfg);
/* Detach and unpin everything capture pinned under pin_root (called by
 * sl_detach before the pin folder goes).
 */
int sl_cap_detach(const char *pin_root);

struct sl_cap_status {
	int attached;
	char sidecar_cgroup[4096];
	struct sl_capture_cfg cfg;
	struct sl_capture_stats stats; /* summed over CPUs */
	/* entries of sl_orig_by_cookie: captured sockets whose SYN went out
	 * and that have not closed
	 */
	uint32_t captured_live;
	int policy_configured;
};
int sl_cap_status(const char *pin_root, struct sl_cap_status *st);

extern const char *const sl_capture_reason_name[SL_CR_NR];

/* The capture record of an app socket, by cookie, from the LRU index (a
 * socket's storage cannot be read by cookie). 0, -ENOENT, or -errno.
 */
int sl_cap_orig(const char *pin_root, uint64_t cookie, struct sl_orig *out);

#endif /* CAPTURE_USER_H */
