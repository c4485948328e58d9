// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Finding and naming cgroup v2 directories (see cgroup.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <linux/magic.h>
#include "lib/cgroup.h"
#include "lib/log.h"
#include "lib/util.h"

int sl_cgroup2_mount(char *buf, size_t len)
{
	FILE *f = fopen("/proc/mounts", "re");
	int err;

	if (!f)
		return -errno;
	err = sl_find_fs_mount(f, "cgroup2", buf, len);
	fclose(f);
	return err;
}

int sl_cgroup_resolve(const char *arg, char *out, size_t len)
{
	char mnt[PATH_MAX], joined[PATH_MAX], real[PATH_MAX];
	struct statfs sfs;
	int err;

	err = sl_cgroup2_mount(mnt, sizeof(mnt));
	if (err) {
		pr_warn("no cgroup v2 mount in /proc/mounts; mount one with "
			"`mount -t cgroup2 none /sys/fs/cgroup/unified`\n");
		return err;
	}
	/* An absolute path is taken as is; anything else is under the mount. */
	if (arg[0] == '/' && !strncmp(arg, mnt, strlen(mnt)))
		err = snprintf(joined, sizeof(joined), "%s", arg);
	else
		err = snprintf(joined, sizeof(joined), "%s/%s", mnt,
			       arg[0] == '/' ? arg + 1 : arg);
	if (err < 0 || (size_t)err >= sizeof(joined))
		return -ENAMETOOLONG;
	if (!realpath(joined, real)) {
		err = -errno;
		pr_warn("cgroup %s: %s (create it with `mkdir %s`)\n", joined,
			strerror(errno), joined);
		return err;
	}
	if (statfs(real, &sfs) || sfs.f_type != CGROUP2_SUPER_MAGIC) {
		pr_warn("%s is not on the cgroup v2 mount %s\n", real, mnt);
		return -EINVAL;
	}
	/* The root cgroup would capture every socket of the host. */
	if (!strcmp(real, mnt)) {
		pr_warn("refusing the root cgroup %s: give the app's subtree\n",
			real);
		return -EINVAL;
	}
	if (strlen(real) >= len)
		return -ENAMETOOLONG;
	strcpy(out, real);
	return 0;
}

int sl_cgroup_id(const char *path, uint64_t *id)
{
	struct stat st;

	if (stat(path, &st))
		return -errno;
	*id = st.st_ino;
	return 0;
}

/* nftw has no user pointer: the search state lives here for its duration. */
static uint64_t want_id;
static char *found_buf;
static size_t found_len;

static int match_id(const char *path, const struct stat *st, int type,
		    struct FTW *ftw)
{
	(void)ftw;
	if (type != FTW_D || st->st_ino != want_id)
		return 0;
	snprintf(found_buf, found_len, "%s", path);
	return 1;
}

int sl_cgroup_path_by_id(uint64_t id, char *buf, size_t len)
{
	char mnt[PATH_MAX];
	int err;

	err = sl_cgroup2_mount(mnt, sizeof(mnt));
	if (err)
		return err;
	want_id = id;
	found_buf = buf;
	found_len = len;
	err = nftw(mnt, match_id, 16, FTW_PHYS | FTW_MOUNT);
	return err == 1 ? 0 : -ENOENT;
}

int sl_cgroup_self(char *buf, size_t len)
{
	char mnt[PATH_MAX], line[PATH_MAX];
	FILE *f;
	int err = -ENOENT, n;

	err = sl_cgroup2_mount(mnt, sizeof(mnt));
	if (err)
		return err;
	f = fopen("/proc/self/cgroup", "re");
	if (!f)
		return -errno;
	err = -ENOENT;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "0::", 3))
			continue;
		line[strcspn(line, "\n")] = '\0';
		n = snprintf(buf, len, "%s%s", mnt, strcmp(line + 3, "/") ? line + 3 : "");
		err = n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
		break;
	}
	fclose(f);
	return err;
}

int sl_cgroup_join(const char *path)
{
	char procs[PATH_MAX];
	FILE *f;
	int err = 0;

	if (snprintf(procs, sizeof(procs), "%s/cgroup.procs", path) >=
	    (int)sizeof(procs))
		return -ENAMETOOLONG;
	f = fopen(procs, "we");
	if (!f)
		return -errno;
	/* "0" is the writing process itself. */
	if (fputs("0\n", f) < 0)
		err = -EIO;
	if (fclose(f) && !err)
		err = -errno;
	return err;
}

unsigned int sl_cgroup_cpu_quota(void)
{
	char path[PATH_MAX], mnt[PATH_MAX];
	unsigned int best = 0;
	size_t mlen;

	if (sl_cgroup2_mount(mnt, sizeof(mnt)) || sl_cgroup_self(path, sizeof(path)))
		return 0;
	mlen = strlen(mnt);
	/* the tightest cpu.max on the way up: a parent's quota binds too */
	for (;;) {
		char file[PATH_MAX + 16], max[32];
		unsigned long long quota, period;
		char *slash;
		FILE *f;

		snprintf(file, sizeof(file), "%s/cpu.max", path);
		f = fopen(file, "re");
		if (f) {
			if (fscanf(f, "%31s %llu", max, &period) == 2 &&
			    strcmp(max, "max") && period &&
			    sscanf(max, "%llu", &quota) == 1) {
				unsigned long long n = (quota + period - 1) / period;

				if (!n)
					n = 1;
				if (!best || n < best)
					best = n > UINT_MAX ? UINT_MAX : (unsigned int)n;
			}
			fclose(f);
		}
		slash = strrchr(path, '/');
		if (!slash || (size_t)(slash - path) < mlen)
			break;
		*slash = '\0';
	}
	return best;
}

int sl_cgroup_make(const char *parent, const char *prefix, char *path,
		   size_t len)
{
	static unsigned int seq;
	int tries, n;

	for (tries = 0; tries < 16; tries++) {
		n = snprintf(path, len, "%s/%s%d-%u", parent, prefix,
			     (int)getpid(),
			     __atomic_fetch_add(&seq, 1, __ATOMIC_RELAXED));
		if (n < 0 || (size_t)n >= len)
			return -ENAMETOOLONG;
		if (!mkdir(path, 0755))
			return 0;
		if (errno != EEXIST) /* EEXIST: a crashed run of a reused pid */
			return -errno;
	}
	return -EEXIST;
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int sl_cgroup_remove(const char *path, unsigned int kill_ms,
		     unsigned int timeout_ms)
{
	uint64_t t0 = mono_ms(), now;
	char kill_path[PATH_MAX];
	bool killed = false;
	int fd;

	for (;;) {
		if (!rmdir(path) || errno == ENOENT)
			return 0;
		if (errno != EBUSY)
			return -errno;
		now = mono_ms();
		if (now - t0 >= timeout_ms)
			return -EBUSY;
		/* what is still in it can only be a child of ours */
		if (!killed && now - t0 >= kill_ms &&
		    snprintf(kill_path, sizeof(kill_path), "%s/cgroup.kill",
			     path) < (int)sizeof(kill_path)) {
			killed = true;
			fd = open(kill_path, O_WRONLY | O_CLOEXEC);
			if (fd >= 0) {
				if (write(fd, "1", 1) != 1)
					pr_debug("%s: %s\n", kill_path,
						 strerror(errno));
				close(fd);
			}
		}
		usleep(1000);
	}
}
