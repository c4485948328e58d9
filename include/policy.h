/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* L3/L4 policy: the tries bpf/capture.bpf.c's connect hooks look up and
 * user/loader/policy.c fills, and the one matcher both use.
 */
#ifndef POLICY_H
#define POLICY_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif
#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif
#include "sidelane.h"

#define SL_POLICY_PER_PREFIX 8 /* rules sharing one prefix */
#define SL_MAX_POLICY_RULES 1024 /* rules in one policy set */
#define SL_MAX_POLICY_PREFIXES 4096 /* per family and generation */

#define SL_ACTION_ALLOW_V 1
#define SL_ACTION_DENY_V 2

struct sl_policy_ent {
	__u32 rule_id;
	__u16 lo, hi; /* port range, inclusive; 0,0: every port */
	__u8 action; /* SL_ACTION_*_V */
	__u8 pad[3];
};

/* Value of the policy tries: the rules of one prefix, in file order. */
struct sl_policy_val {
	__u32 n;
	__u32 pad;
	struct sl_policy_ent ent[SL_POLICY_PER_PREFIX];
};

/* The one matcher, compiled into the BPF programs and into user space (the
 * proxy judges explicit connections with the same rules): the first entry of
 * the most specific prefix whose port range holds port. Returns the
 * SL_ACTION_*_V, or 0 when none matches (the default action applies).
 */
static __always_inline int sl_policy_match(const struct sl_policy_val *val,
					   __u16 port, __u32 *rule_id)
{
	int i;

	for (i = 0; i < SL_POLICY_PER_PREFIX; i++) {
		const struct sl_policy_ent *e = &val->ent[i];

		if (i >= (int)val->n)
			break;
		if (e->hi && (port < e->lo || port > e->hi))
			continue;
		*rule_id = e->rule_id;
		return e->action;
	}
	return 0;
}

/* sl_policy_state[0]: which generation of tries is live. gen is a counter
 * and the live generation is gen & 1. A writer (one at a time: flock on the
 * pin root, see sl_policy_apply) fills generation (gen + 1) & 1, then
 * increments gen with one 4-byte write. A reader works like a seqcount:
 * read gen, look up tries[gen & 1], read gen again; if it moved, the idle
 * generation it read may have been refilled under it, so it retries once
 * and then denies (fails closed). A connect() thus sees either the whole
 * old rule set or the whole new one.
 */
struct sl_policy_state {
	__u32 gen; /* counter; live generation gen & 1 */
	__u32 configured; /* 0: no policy loaded (default allow, said in status) */
	__u32 default_action[2]; /* per generation */
};

#endif /* POLICY_H */
