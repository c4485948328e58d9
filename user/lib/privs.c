// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Privilege drop after start-up (see privs.h). Loading BPF programs,
 * attaching to cgroups and namespaces and mounting bpffs need CAP_SYS_ADMIN
 * and more; none of that happens after start-up, so none of it is kept.
 *
 * Capabilities are per thread in Linux: cap_set_proc() alone would change
 * only the calling thread and leave the proxy's resolver and the admin
 * server threads with everything. Linked with libpsx (and pthread_create
 * wrapped, see the Makefile), libcap applies the change to every thread of
 * the process at once.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <sys/psx_syscall.h>
#include <sys/syscall.h>
#include "lib/log.h"
#include "lib/privs.h"

static const cap_value_t keep[] = { CAP_BPF, CAP_NET_ADMIN };
#define N_KEEP (int)(sizeof(keep) / sizeof(keep[0]))

int sl_drop_privileges(char *kept, size_t len)
{
	cap_t caps = NULL;
	char *text = NULL;
	cap_value_t c;
	int err = 0;

	/* the bounding set first: dropping from it needs CAP_SETPCAP, which
	 * goes with the rest below
	 */
	for (c = 0; c <= CAP_LAST_CAP; c++) {
		int i, wanted = 0;

		for (i = 0; i < N_KEEP; i++)
			wanted |= keep[i] == c;
		if (!wanted && CAP_IS_SUPPORTED(c) && cap_drop_bound(c) &&
		    errno != EINVAL) {
			err = -errno;
			pr_warn("privileges: dropping %s from the bounding set: %s\n",
				cap_to_name(c), strerror(errno));
			goto out;
		}
	}
	if (cap_reset_ambient() && errno != EINVAL) {
		err = -errno;
		goto out;
	}
	caps = cap_init(); /* all three sets empty */
	if (!caps ||
	    cap_set_flag(caps, CAP_PERMITTED, N_KEEP, keep, CAP_SET) ||
	    cap_set_flag(caps, CAP_EFFECTIVE, N_KEEP, keep, CAP_SET) ||
	    cap_set_proc(caps)) {
		err = -errno;
		pr_warn("privileges: setting %s: %s\n", "CAP_BPF,CAP_NET_ADMIN",
			strerror(errno));
		goto out;
	}
	/* per thread as well: through libpsx, like cap_set_proc() */
	if (psx_syscall6(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0, 0)) {
		err = -errno;
		goto out;
	}
	text = cap_to_text(caps, NULL);
	if (kept && len)
		snprintf(kept, len, "%s", text ? text : "?");
out:
	cap_free(text);
	cap_free(caps);
	return err;
}
