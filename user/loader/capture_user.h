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
/* Detach and unpin everything capture pinned under pin_root (called by
 * sl_detach before the pin folder goes).
 */
int sl_cap_detach(const char *pin_root);

/* Replace the live rule set with pol in one step: the other generation of
 * tries is filled, then the live generation flips. On error the old rules
 * stay in force. err gets a reason. 0 or -errno.
 * sl_policy_apply takes the writers' lock (sl_policy_lock) itself, so it must
 * not be called while this process holds it: flock belongs to the open file,
 * and a second open of the directory would wait on the first forever. A
 * read-modify-apply (`policy add`) holds the lock across all three steps and
 * calls sl_policy_apply_locked.
 */
int sl_policy_apply(const char *pin_root, const struct sl_policy *pol,
		    char *err, size_t errlen);
int sl_policy_apply_locked(const char *pin_root, const struct sl_policy *pol,
			   char *err, size_t errlen);
/* The policy writers' lock: flock(LOCK_EX) on the pin root directory,
 * waited for. Lock fd, or -errno.
 */
int sl_policy_lock(const char *pin_root);
void sl_policy_unlock(int lock);
/* Read the live rule set back (file order within a prefix), with hits. */
struct sl_policy_hit {
	uint32_t rule_id;
	uint64_t hits;
};
int sl_policy_read(const char *pin_root, struct sl_policy *pol, int *configured,
		   struct sl_policy_hit *hits, unsigned int max_hits,
		   unsigned int *n_hits);

/* The proxy's check of explicit connections against the live rules (the
 * sl_policy_check_fn of proxy.h, ctx = the checker). Not counted in
 * sl_policy_hits: those count kernel decisions only.
 */
struct sl_policy_checker {
	int st_fd;
	int trie_fd[2][2]; /* [generation][0: IPv4, 1: IPv6] */
};
int sl_policy_checker_open(const char *pin_root, struct sl_policy_checker *c);
void sl_policy_checker_close(struct sl_policy_checker *c);
int sl_policy_check(void *ctx, const struct sockaddr *dst, uint32_t *rule_id);

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
