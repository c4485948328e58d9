/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* `sidelane gc` (user/loader/gc.c): remove the pin roots of deleted pods. pod.yaml
 * gives every pod its own pin root (/sys/fs/bpf/sidelane-<pod uid>) and does
 * not detach on exit (a liveness restart must keep connections accelerated),
 * so nothing else frees a deleted pod's maps: about 44 MiB of kernel memory
 * each. Used by the CLI (main.c) and tests/integ/gc.c.
 *
 * A folder directly under the bpffs whose name starts with the prefix is
 * removed (sl_detach(): every link detached, every pin unlinked, the
 * folder removed) only when
 * - it holds a link_sockops pin, a cgroup link whose cgroup is gone (the
 *   kernel reports cgroup id 0 once a removed cgroup is released), and
 * - no other link pinned there still serves a live cgroup or network
 *   namespace. This second test keeps a pod whose app container restarted
 *   (new cgroup) while its sidecar lives: its next `sidelane run` replaces
 *   the link. When the pod is deleted, all of its cgroups and its network
 *   namespace go.
 * Anything else is skipped and said so: "not a sidelane pin root" (no
 * link_sockops) or "alive".
 */
#ifndef SL_GC_H
#define SL_GC_H

#include <stdbool.h>
#include <stdio.h>

#define SL_GC_PREFIX_DEFAULT "sidelane"

/* Apply the rule above to every folder of bpffs_dir (NULL: SL_BPFFS_DEFAULT)
 * whose name starts with prefix (NULL: SL_GC_PREFIX_DEFAULT); with dry_run
 * only say what would be removed. One line per folder into report
 * ("removed", "would remove", "skipped", "failed"), then a summary line.
 * Returns the number of pin roots removed (or that would be), or -errno:
 * bpffs_dir unreadable or not a bpffs, or the first removal that failed
 * (the others are still tried).
 */
int sl_gc(const char *bpffs_dir, const char *prefix, bool dry_run, FILE *report);

#endif /* SL_GC_H */
