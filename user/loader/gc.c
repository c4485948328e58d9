// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* `sidelane gc` (user side; the rule is in gc.h): find the pin roots under
 * the bpffs whose cgroups are gone and remove them with sl_detach().
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include "loader/detach.h"
#include "loader/pins.h"
#include "sidelane.h"
#include "loader/gc.h"
#include "loader/fastpath_user.h"
#include "lib/log.h"

enum verdict { GC_REMOVE, GC_ALIVE, GC_NOT_OURS };

static int link_info(const char *dir, const char *name,
		     struct bpf_link_info *info)
{
	__u32 len = sizeof(*info);
	int fd = sl_pin_open(dir, name), err = 0;

	if (fd < 0)
		return fd;
	memset(info, 0, sizeof(*info));
	if (bpf_obj_get_info_by_fd(fd, info, &len))
		err = -errno;
	close(fd);
	return err;
}

/* Does any link pinned in dir, but link_sockops, still serve something
 * alive? Unknown link types count as alive: never guess in favour of
 * removing.
 */
static bool other_link_alive(const char *dir, char *why, size_t len)
{
	struct bpf_link_info info;
	struct dirent *de;
	bool alive = false;
	DIR *d = opendir(dir);

	if (!d) {
		snprintf(why, len, "alive? cannot list it: %s", strerror(errno));
		return true;
	}
	while (!alive && (de = readdir(d))) {
		if (strncmp(de->d_name, "link_", 5) ||
		    !strcmp(de->d_name, SL_PIN_LINK_SOCKOPS) ||
		    link_info(dir, de->d_name, &info))
			continue;
		if (info.type == BPF_LINK_TYPE_CGROUP && info.cgroup.cgroup_id) {
			snprintf(why, len,
				 "alive: its app cgroup is gone but %s still serves "
				 "cgroup id %llu (a restarting container? the next "
				 "`sidelane run` replaces the link)",
				 de->d_name, (unsigned long long)info.cgroup.cgroup_id);
			alive = true;
		} else if (info.type == BPF_LINK_TYPE_NETNS && info.netns.netns_ino) {
			snprintf(why, len,
				 "alive: its app cgroup is gone but %s still serves "
				 "network namespace %u",
				 de->d_name, info.netns.netns_ino);
			alive = true;
		} else if (info.type != BPF_LINK_TYPE_CGROUP &&
			   info.type != BPF_LINK_TYPE_NETNS &&
			   strcmp(de->d_name, SL_PIN_LINK_SK_MSG) &&
			   strcmp(de->d_name, SL_PIN_LINK_SK_SKB)) {
			snprintf(why, len, "alive? %s is a link of type %u", de->d_name,
				 info.type);
			alive = true;
		}
	}
	closedir(d);
	return alive;
}

static enum verdict judge(const char *dir, char *why, size_t len)
{
	struct bpf_link_info info;
	int err = link_info(dir, SL_PIN_LINK_SOCKOPS, &info);

	if (err == -ENOENT) {
		snprintf(why, len, "not a sidelane pin root (no %s)",
			 SL_PIN_LINK_SOCKOPS);
		return GC_NOT_OURS;
	}
	if (err || info.type != BPF_LINK_TYPE_CGROUP) {
		snprintf(why, len, "not a sidelane pin root (%s: %s)",
			 SL_PIN_LINK_SOCKOPS,
			 err ? strerror(-err) : "not a cgroup link");
		return GC_NOT_OURS;
	}
	if (info.cgroup.cgroup_id) {
		snprintf(why, len, "alive (%s serves cgroup id %llu)",
			 SL_PIN_LINK_SOCKOPS,
			 (unsigned long long)info.cgroup.cgroup_id);
		return GC_ALIVE;
	}
	if (other_link_alive(dir, why, len))
		return GC_ALIVE;
	snprintf(why, len, "the cgroup of its %s is gone", SL_PIN_LINK_SOCKOPS);
	return GC_REMOVE;
}

/* Pins in dir and the memory their maps hold (memlock in fdinfo). */
static void usage_of(const char *dir, unsigned int *pins,
		     unsigned long long *bytes)
{
	struct dirent *de;
	DIR *d = opendir(dir);

	*pins = 0;
	*bytes = 0;
	if (!d)
		return;
	while ((de = readdir(d))) {
		char path[64], line[128];
		unsigned long long m;
		FILE *f;
		int fd;

		if (de->d_name[0] == '.')
			continue;
		(*pins)++;
		if (!strncmp(de->d_name, "link_", 5))
			continue;
		fd = sl_pin_open(dir, de->d_name);
		if (fd < 0)
			continue;
		snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
		f = fopen(path, "re");
		while (f && fgets(line, sizeof(line), f))
			if (sscanf(line, "memlock: %llu", &m) == 1)
				*bytes += m;
		if (f)
			fclose(f);
		close(fd);
	}
	closedir(d);
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names under bpffs_dir that start with prefix, sorted: read first,
 * since the folder changes under us as pin roots go. Their count, or
 * -errno (said in report).
 */
static int names_read(const char *bpffs_dir, const char *prefix, char ***out,
		      FILE *report)
{
	unsigned int n = 0, cap = 0;
	size_t plen = strlen(prefix);
	char **names = NULL;
	struct statfs sfs;
	struct dirent *de;
	int err;
	DIR *d;

	if (statfs(bpffs_dir, &sfs) || !(d = opendir(bpffs_dir))) {
		err = -errno;
		fprintf(report, "gc: cannot read %s: %s\n", bpffs_dir,
			strerror(-err));
		return err;
	}
	if (sfs.f_type != BPF_FS_MAGIC) {
		closedir(d);
		fprintf(report, "gc: %s is not a bpffs\n", bpffs_dir);
		return -EINVAL;
	}
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, prefix, plen) || de->d_name[0] == '.')
			continue;
		if (n == cap) {
			char **more = realloc(names, (cap = cap * 2 + 16) * sizeof(*names));

			if (!more)
				break;
			names = more;
		}
		names[n] = strdup(de->d_name);
		if (names[n])
			n++;
	}
	closedir(d);
	if (n)
		qsort(names, n, sizeof(*names), by_name);
	*out = names;
	return (int)n;
}

/* One folder: skipped, (would be) removed or failed, said in report. */
enum gc_outcome { GC_SKIPPED, GC_REMOVED, GC_FAILED, GC_NOT_ROOT };

static enum gc_outcome collect(const char *dir, bool dry_run, FILE *report,
			       int *err)
{
	char why[512];
	unsigned long long bytes;
	unsigned int pins;
	struct stat st;

	if (lstat(dir, &st) || !S_ISDIR(st.st_mode))
		return GC_NOT_ROOT; /* a pin, not a pin root */
	if (judge(dir, why, sizeof(why)) != GC_REMOVE) {
		fprintf(report, "skipped %s: %s\n", dir, why);
		return GC_SKIPPED;
	}
	usage_of(dir, &pins, &bytes);
	if (dry_run) {
		fprintf(report, "would remove %s: %s (%u pins, %.1f MiB of maps)\n",
			dir, why, pins, bytes / 1048576.0);
		return GC_REMOVED;
	}
	*err = sl_detach(dir);
	if (*err) {
		fprintf(report, "failed %s: %s (`sidelane detach --pin-root %s`)\n",
			dir, strerror(-*err), dir);
		return GC_FAILED;
	}
	fprintf(report, "removed %s: %s (%u pins, %.1f MiB of maps freed)\n",
		dir, why, pins, bytes / 1048576.0);
	return GC_REMOVED;
}

int sl_gc(const char *bpffs_dir, const char *prefix, bool dry_run, FILE *report)
{
	unsigned int count[GC_NOT_ROOT + 1] = { 0 };
	char **names = NULL, dir[PATH_MAX];
	int n, i, err, first_err = 0;

	bpffs_dir = bpffs_dir ?: SL_BPFFS_DEFAULT;
	prefix = prefix ?: SL_GC_PREFIX_DEFAULT;
	n = names_read(bpffs_dir, prefix, &names, report);
	if (n < 0)
		return n;
	for (i = 0; i < n; i++) {
		err = 0;
		if (snprintf(dir, sizeof(dir), "%s/%s", bpffs_dir, names[i]) <
		    (int)sizeof(dir))
			count[collect(dir, dry_run, report, &err)]++;
		first_err = first_err ?: err;
	}
	fprintf(report, "gc: %u %s, %u skipped, %u failed (folders in %s starting "
			"with \"%s\")\n",
		count[GC_REMOVED], dry_run ? "would be removed" : "removed",
		count[GC_SKIPPED], count[GC_FAILED], bpffs_dir, prefix);
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return first_err ?: (int)count[GC_REMOVED];
}
