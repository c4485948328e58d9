/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Finding and naming cgroup v2 directories (user/lib/cgroup.c). */
#ifndef CGROUP_H
#define CGROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The cgroup v2 mount point, read from /proc/mounts: it is not always
 * /sys/fs/cgroup (hybrid hosts mount it at /sys/fs/cgroup/unified).
 */
int sl_cgroup2_mount(char *buf, size_t len);
/* Resolve a --cgroup argument (absolute path on the cgroup2 mount, or a path
 * relative to it) to an absolute path of an existing non-root cgroup.
 * Errors are logged; returns 0 or -errno.
 */
int sl_cgroup_resolve(const char *arg, char *out, size_t len);
/* The cgroup id the kernel reports (bpf_link_info, bpf_get_current_cgroup_id):
 * the inode number of the cgroup2 directory.
 */
int sl_cgroup_id(const char *path, uint64_t *id);
/* The calling process's cgroup v2, as an absolute path ("0::" line of
 * /proc/self/cgroup under the mount). 0 or -errno.
 */
int sl_cgroup_self(char *buf, size_t len);
/* Move the calling process into the cgroup at path. 0 or -errno. */
int sl_cgroup_join(const char *path);
/* CPUs the calling process's cgroup may use by its cpu.max quota (and its
 * ancestors'), rounded up; 0 when none sets a quota.
 */
unsigned int sl_cgroup_cpu_quota(void);
/* A new cgroup parent/<prefix><pid>-<n>, its path in path. 0 or -errno. */
int sl_cgroup_make(const char *parent, const char *prefix, char *path,
		   size_t len);
/* Remove a cgroup we made. A child just reaped can still be leaving it
 * (EBUSY): retried; from kill_ms on, what is still in it (only a child of
 * ours can be) is killed with cgroup.kill; -EBUSY after timeout_ms. 0 (also
 * when it is gone already) or -errno.
 */
int sl_cgroup_remove(const char *path, unsigned int kill_ms,
		     unsigned int timeout_ms);
/* Find the path of a cgroup id under the cgroup2 mount. 0 or -ENOENT. */
int sl_cgroup_path_by_id(uint64_t id, char *buf, size_t len);

#endif /* CGROUP_H */
