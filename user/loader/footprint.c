// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The pinned maps' kernel memory (footprint_user.h). */
#include <stdbool.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "loader/pins.h"
#include "lib/json.h"
#include "loader/footprint_user.h"
#include "loader/fastpath_user.h"
#include "lib/log.h"

/* memlock of a map fd, from /proc/self/fdinfo; -ENOENT when the fd is not
 * a map (links and programs are pinned in the same folder: their fdinfo
 * has no map_type line).
 */
static int fd_memlock(int fd, uint64_t *out)
{
	char path[64], line[256];
	unsigned long long v;
	bool map = false, got = false;
	unsigned int t;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "map_type: %u", &t) == 1)
			map = true;
		else if (sscanf(line, "memlock: %llu", &v) == 1)
			got = true;
	}
	fclose(f);
	if (!map || !got)
		return -ENOENT;
	*out = v;
	return 0;
}

static int by_memlock(const void *a, const void *b)
{
	const struct sl_map_footprint *x = a, *y = b;

	return x->memlock < y->memlock ? 1 : x->memlock > y->memlock ? -1 :
		strcmp(x->name, y->name);
}

static void add_map(const char *name, int fd, void *ctx)
{
	struct sl_footprint *out = ctx;
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	struct sl_map_footprint *m;

	if (out->n == SL_FOOTPRINT_MAPS) {
		out->more += !fd_memlock(fd, &(uint64_t){ 0 });
		return;
	}
	m = &out->map[out->n];
	if (fd_memlock(fd, &m->memlock) ||
	    bpf_obj_get_info_by_fd(fd, &info, &len))
		return; /* not a map */
	snprintf(m->name, sizeof(m->name), "%.63s", name);
	m->type = info.type;
	m->max_entries = info.max_entries;
	out->memlock += m->memlock;
	/* The values of a per-CPU map are allocated per possible CPU, 8-byte
	 * aligned, for every entry (preallocated or, at most, when full); its
	 * elements and buckets are not, so only this part grows with CPUs.
	 */
	if (m->type == BPF_MAP_TYPE_PERCPU_ARRAY ||
	    m->type == BPF_MAP_TYPE_PERCPU_HASH ||
	    m->type == BPF_MAP_TYPE_LRU_PERCPU_HASH) {
		int ncpus = libbpf_num_possible_cpus();
		uint64_t v = (uint64_t)info.max_entries *
			     ((info.value_size + 7) & ~7U) *
			     (ncpus > 0 ? ncpus : 1);

		out->percpu += v < m->memlock ? v : m->memlock;
	}
	out->n++;
}

int sl_footprint_read(const char *pin_root, struct sl_footprint *out)
{
	int err;

	memset(out, 0, sizeof(*out));
	err = sl_pin_foreach(pin_root, add_map, out);
	if (err)
		return err;
	qsort(out->map, out->n, sizeof(out->map[0]), by_memlock);
	out->ncpus = libbpf_num_possible_cpus();
	return 0;
}

uint64_t sl_footprint_at(const struct sl_footprint *fp, int ncpus)
{
	if (fp->ncpus <= 0)
		return fp->memlock;
	return fp->memlock - fp->percpu + fp->percpu / fp->ncpus * ncpus;
}

static void mib(char *buf, size_t len, uint64_t bytes)
{
	snprintf(buf, len, "%.1f MiB", bytes / 1048576.0);
}

void sl_footprint_print(FILE *f, const struct sl_footprint *fp, int json)
{
	char a[32];
	unsigned int i;

	if (json) {
		fprintf(f, ",\"footprint\":{\"maps\":%u,\"memlock_bytes\":%llu,"
			   "\"possible_cpus\":%d,\"percpu_bytes\":%llu,"
			   "\"memlock_bytes_at_cpus\":{",
			fp->n, (unsigned long long)fp->memlock, fp->ncpus,
			(unsigned long long)fp->percpu);
#define AT(n) fprintf(f, "%s\"%d\":%llu", n == 2 ? "" : ",", n, \
		      (unsigned long long)sl_footprint_at(fp, n));
		SL_FOOTPRINT_CPUS(AT)
#undef AT
		fputs("},\"by_map\":{", f);
		for (i = 0; i < fp->n; i++) {
			fprintf(f, "%s", i ? "," : "");
			sl_json_str(f, fp->map[i].name);
			fprintf(f, ":{\"memlock_bytes\":%llu,\"max_entries\":%u}",
				(unsigned long long)fp->map[i].memlock,
				fp->map[i].max_entries);
		}
		fputs("}}", f);
		return;
	}
	mib(a, sizeof(a), fp->memlock);
	fprintf(f, "kernel memory: %s in %u pinned maps (memlock)%s; with %d "
		   "possible CPUs; per-CPU maps grow with them, about:",
		a, fp->n, fp->more ? ", more not counted" : "", fp->ncpus);
#define AT(n) mib(a, sizeof(a), sl_footprint_at(fp, n)); \
	fprintf(f, " %s at %d", a, n);
	SL_FOOTPRINT_CPUS(AT)
#undef AT
	fputc('\n', f);
	for (i = 0; i < fp->n && i < 5; i++) {
		mib(a, sizeof(a), fp->map[i].memlock);
		fprintf(f, "  %-22s %9s  %u entries max\n", fp->map[i].name, a,
			fp->map[i].max_entries);
	}
}

void sl_footprint_log(const char *pin_root)
{
	struct sl_footprint fp;
	char a[32], b[32], c[32];

	if (sl_footprint_read(pin_root, &fp) || fp.n < 3)
		return;
	mib(a, sizeof(a), fp.memlock);
	mib(b, sizeof(b), fp.map[0].memlock);
	mib(c, sizeof(c), fp.map[1].memlock);
	pr_info("kernel memory: %s in %u pinned maps; largest %s %s, %s %s\n",
		a, fp.n, fp.map[0].name, b, fp.map[1].name, c);
}
