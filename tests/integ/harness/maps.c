// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Pinned maps read back with libbpf: counters, entries, a socket's record. */
#define _GNU_SOURCE
#include "harness/internal.h"

/* ---- pinned maps ---- */

static int map_fd(const struct th_env *env, const char *map_name)
{
	char path[PATH_MAX];
	int fd;

	if (path_fmt(path, sizeof(path), "%s/%s", env->pin_root, map_name))
		return -ENAMETOOLONG;
	fd = bpf_obj_get(path);
	return fd < 0 ? -errno : fd;
}

int th_counters(const struct th_env *env, struct sl_counters *out)
{
	/* The product's own reader: the tests see what `status` shows. */
	memset(out, 0, sizeof(*out));
	return sl_fp_read_counters(env->pin_root, out);
}

int th_adm_stats(const struct th_env *env, struct sl_adm_stats *out)
{
	struct sl_adm_status st;
	int err;

	err = sl_adm_read(env->pin_root, &st);
	*out = st.stats;
	return err;
}

int th_map_entries(const struct th_env *env, const char *map_name)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	unsigned char key[256], next[256];
	int fd, n = 0, err;
	void *prev = NULL;

	fd = map_fd(env, map_name);
	if (fd < 0)
		return fd;
	err = bpf_obj_get_info_by_fd(fd, &info, &len);
	if (err || info.key_size > sizeof(key)) {
		n = err ? -errno : -E2BIG;
		goto out;
	}
	/* bounded: a map never holds more than max_entries keys */
	while (n <= (int)info.max_entries) {
		if (bpf_map_get_next_key(fd, prev, next)) {
			if (errno != ENOENT)
				n = -errno;
			break;
		}
		memcpy(key, next, info.key_size);
		prev = key;
		n++;
	}
out:
	close(fd);
	return n;
}

int th_wait_entries(const struct th_env *env, const char *map_name, int want,
		    int timeout_ms)
{
	__u64 deadline = th_now_ms() + timeout_ms;
	int n;

	for (;;) {
		n = th_map_entries(env, map_name);
		if (n == want || n < 0 || th_now_ms() >= deadline)
			return n;
		sleep_ms(10);
	}
}

int th_sockhash_cookie(const struct th_env *env, const struct sl_sock_key *key,
		       __u64 *cookie)
{
	int fd, err = 0;

	fd = map_fd(env, SL_MAP_SOCKHASH);
	if (fd < 0)
		return fd;
	if (bpf_map_lookup_elem(fd, key, cookie))
		err = -errno;
	close(fd);
	return err;
}

int th_conn(const struct th_env *env, __u64 cookie, struct sl_conn *out)
{
	int fd, err = 0;

	fd = map_fd(env, SL_MAP_CONNS);
	if (fd < 0)
		return fd;
	if (bpf_map_lookup_elem(fd, &cookie, out))
		err = -errno;
	close(fd);
	return err;
}

int th_cgroup_prog_count(const struct th_env *env, int attach_type)
{
	__u32 cnt = 0, flags = 0;
	int fd, err;

	fd = open(env->cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	err = bpf_prog_query(fd, attach_type, 0, &flags, NULL, &cnt);
	err = err ? -errno : (int)cnt;
	close(fd);
	return err;
}
