/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The kernel memory sidelane's pinned maps hold (issue 11, sizing): every
 * map under the pin root, with what the kernel charges for it (memlock in
 * its fdinfo: the same figure `bpftool map show` prints). A sidecar runs
 * once per pod, so this is multiplied by every pod on the node; `status`,
 * /metrics and the start-up log show it.
 */
#ifndef FOOTPRINT_USER_H
#define FOOTPRINT_USER_H

#include <stdint.h>
#include <stdio.h>
#include <linux/bpf.h>

#define SL_FOOTPRINT_MAPS 64 /* more than sidelane pins */

struct sl_map_footprint {
	char name[64]; /* its pin name (the map's own is cut at 15 characters) */
	uint32_t type, max_entries;
	uint64_t memlock; /* bytes */
};

/* CPU counts the per-CPU maps are also reported for: their memory grows
 * with the node's possible CPUs, and is charged to the sidecar container's
 * memory cgroup.
 */
#define SL_FOOTPRINT_CPUS(X) X(2) X(64) X(128)

struct sl_footprint {
	unsigned int n; /* maps in map[], largest first */
	unsigned int more; /* maps beyond SL_FOOTPRINT_MAPS, not counted */
	uint64_t memlock; /* their sum */
	uint64_t percpu; /* of it, per-CPU maps' values: what grows with CPUs */
	int ncpus; /* possible CPUs here */
	struct sl_map_footprint map[SL_FOOTPRINT_MAPS];
};

/* memlock on a node with ncpus possible CPUs: the per-CPU maps' share
 * scaled, the rest as it is (an estimate: per-CPU overheads are small)
 */
uint64_t sl_footprint_at(const struct sl_footprint *fp, int ncpus);

/* Every map pinned directly under pin_root. 0 (n may be 0) or -errno. */
int sl_footprint_read(const char *pin_root, struct sl_footprint *out);
/* status: text, or the JSON member "footprint":{...} */
void sl_footprint_print(FILE *f, const struct sl_footprint *fp, int json);
/* The start-up log line: the total and the largest maps. */
void sl_footprint_log(const char *pin_root);

#endif /* FOOTPRINT_USER_H */
