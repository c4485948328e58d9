/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* L3/L4 policy in the pinned maps (user/loader/policy.c): applied in one
 * step, read back, and checked by the proxy.
 */
#ifndef POLICY_USER_H
#define POLICY_USER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include "config/config.h"

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

#endif /* POLICY_USER_H */
