// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Pins under the pin root, shared by every loader (fastpath, capture,
 * inbound, gc, status): paths, opening and removing pins, the bpffs check,
 * pinned links and sockmap attachment, and what an object's maps get
 * before load (sizes from limits.max_conns, pin paths, the layout check
 * against what is pinned).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <linux/magic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "sidelane.h"
#include "lib/log.h"
#include "lib/cgroup.h"
#include "loader/pins.h"

static uint32_t sizing_conns; /* limits.max_conns; 0: compiled sizes */

/* The tables that grow with connections: entries per connection. */
static const struct {
	const char *name;
	uint32_t per_conn;
} sized_maps[] = {
	/* the two sockets of a pair; a relayed connection has three with a
	 * record and key: the app's and the sidecar's two
	 */
	{ SL_MAP_SOCKHASH, 2 },	      { SL_MAP_SK_BY_KEY, 3 },
	{ SL_MAP_CONNS, 3 },
	/* the sidecar's upstream sockets and the spliced pairs */
	{ SL_MAP_UP_BY_KEY, 1 },      { SL_MAP_RELAY, 1 },
	{ SL_MAP_DOWN, 1 },	      { SL_MAP_SPLICE_IDX, 1 },
	{ SL_MAP_DOWN_IDX, 1 },	      { SL_MAP_SPLICE, 1 },
	/* capture: connections in flight to the proxy, and why */
	{ SL_MAP_ORIG_BY_COOKIE, 1 }, { SL_MAP_ORIG_BY_ADDR, 1 },
	{ SL_MAP_CONNECT_REASON, 1 },
};

int sl_pin_path(char *buf, size_t len, const char *pin_root, const char *name)
{
	int n = snprintf(buf, len, "%s/%s", pin_root, name);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* bpf_obj_get() of pin_root/name; -errno if absent. */
int sl_pin_open(const char *pin_root, const char *name)
{
	char path[PATH_MAX];
	int fd, err;

	err = sl_pin_path(path, sizeof(path), pin_root, name);
	if (err)
		return err;
	fd = bpf_obj_get(path);
	return fd < 0 ? -errno : fd;
}

int sl_pin_slot0(const char *pin_root, const char *name, void *value,
		 bool put)
{
	__u32 zero = 0;
	int fd, err;

	fd = sl_pin_open(pin_root, name);
	if (fd < 0)
		return fd;
	err = put ? bpf_map_update_elem(fd, &zero, value, BPF_ANY) :
		    bpf_map_lookup_elem(fd, &zero, value);
	err = err ? -errno : 0;
	close(fd);
	return err;
}

int sl_pin_foreach(const char *pin_root,
		   void (*fn)(const char *name, int fd, void *ctx), void *ctx)
{
	struct dirent *de;
	DIR *d = opendir(pin_root);
	int fd;

	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		fd = sl_pin_open(pin_root, de->d_name);
		if (fd < 0)
			continue;
		fn(de->d_name, fd, ctx);
		close(fd);
	}
	closedir(d);
	return 0;
}

int sl_pin_unlink(const char *pin_root, const char *name)
{
	char path[PATH_MAX];
	int err;

	err = sl_pin_path(path, sizeof(path), pin_root, name);
	if (err)
		return err;
	return unlink(path) && errno != ENOENT ? -errno : 0;
}

int sl_pin_link_detach(const char *pin_root, const char *name)
{
	int fd, err = 0, e;

	/* bpf_link_detach() takes the program off now, whoever else still
	 * holds the link
	 */
	fd = sl_pin_open(pin_root, name);
	if (fd >= 0) {
		if (bpf_link_detach(fd))
			err = -errno;
		close(fd);
	}
	e = sl_pin_unlink(pin_root, name);
	return err ?: e;
}

static int is_bpffs(const char *path)
{
	struct statfs sfs;

	return !statfs(path, &sfs) && sfs.f_type == BPF_FS_MAGIC;
}

/* The pin root must sit on a bpffs. If the conventional /sys/fs/bpf is not
 * mounted (as on this project's CI hosts), mount it: a privileged sidecar
 * is expected to; anywhere else say how. *created tells whether the pin root
 * is new, so a failed attach can remove it again.
 */
int sl_pin_root_ensure(const char *pin_root, int *created)
{
	char parent[PATH_MAX], *slash;

	if (strlen(pin_root) >= sizeof(parent))
		return -ENAMETOOLONG;
	strcpy(parent, pin_root);
	slash = strrchr(parent, '/');
	if (!slash || slash == parent) {
		pr_warn("pin root %s must be a folder inside a bpffs\n",
			pin_root);
		return -EINVAL;
	}
	*slash = '\0';
	if (!is_bpffs(parent)) {
		if (strcmp(parent, SL_BPFFS_DEFAULT)) {
			pr_warn("%s is not on a bpffs; mount one with `mount -t bpf bpf %s`\n",
				parent, parent);
			return -ENOTSUP;
		}
		if (mount("bpf", parent, "bpf", 0, "mode=0700")) {
			int err = -errno;

			pr_warn("no bpffs at %s and mounting one failed: %s\n",
				parent, strerror(-err));
			return err;
		}
		pr_info("mounted bpffs at %s\n", parent);
	}
	*created = !mkdir(pin_root, 0700);
	if (!*created && errno != EEXIST) {
		int err = -errno;

		pr_warn("cannot create pin root %s: %s\n", pin_root,
			strerror(-err));
		return err;
	}
	return 0;
}

int sl_link_info(int link_fd, struct bpf_link_info *info)
{
	__u32 len = sizeof(*info);

	memset(info, 0, len);
	return bpf_obj_get_info_by_fd(link_fd, info, &len) ? -errno : 0;
}

/* Info of a pinned link. 0 or -errno (-ENOENT: not pinned). */
int sl_pinned_link_info(const char *pin_root, const char *name,
			    struct bpf_link_info *info)
{
	int fd = sl_pin_open(pin_root, name), err;

	if (fd < 0)
		return fd;
	err = sl_link_info(fd, info);
	close(fd);
	return err;
}

int sl_link_drop_if_orphaned(const char *pin_root, const char *name)
{
	struct bpf_link_info info;
	int fd = sl_pin_open(pin_root, name), err;

	if (fd < 0)
		return fd;
	err = sl_link_info(fd, &info);
	if (!err && info.type == BPF_LINK_TYPE_CGROUP && !info.cgroup.cgroup_id) {
		bpf_link_detach(fd);
		err = sl_pin_unlink(pin_root, name);
		if (!err) {
			pr_info("%s/%s served a cgroup that is gone (a restarted "
				"container's): replaced\n", pin_root, name);
			err = 1;
		}
	}
	close(fd);
	return err;
}

int sl_cgroup_link_ensure(const char *pin_root, struct bpf_program *prog,
			  const char *pin, const char *cgpath)
{
	struct bpf_link_info info = {};
	__u32 len = sizeof(info);
	char path[PATH_MAX];
	struct bpf_link *link;
	uint64_t cgid;
	int fd, cg_fd, err;

	err = sl_cgroup_id(cgpath, &cgid);
	if (err)
		return err;
	err = sl_link_drop_if_orphaned(pin_root, pin);
	if (err < 0 && err != -ENOENT)
		return err;
	fd = sl_pin_open(pin_root, pin);
	if (fd >= 0) {
		err = bpf_obj_get_info_by_fd(fd, &info, &len) ? -errno : 0;
		close(fd);
		if (!err && info.cgroup.cgroup_id != cgid) {
			pr_warn("%s/%s is attached to another cgroup (id %llu), not %s: "
				"`sidelane detach` first\n", pin_root, pin,
				(unsigned long long)info.cgroup.cgroup_id, cgpath);
			return -EEXIST;
		}
		return err;
	}
	if (!prog) /* reuse only */
		return -ENOENT;
	cg_fd = open(cgpath, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cg_fd < 0)
		return -errno;
	link = bpf_program__attach_cgroup(prog, cg_fd);
	err = link ? 0 : -errno;
	close(cg_fd);
	if (err) {
		pr_warn("attaching %s to %s failed: %s\n", bpf_program__name(prog),
			cgpath, strerror(-err));
		return err;
	}
	err = sl_pin_path(path, sizeof(path), pin_root, pin);
	if (!err)
		err = bpf_link__pin(link, path);
	bpf_link__destroy(link);
	return err;
}

void sl_sizing_set(uint32_t max_conns)
{
	sizing_conns = max_conns;
}

void sl_obj_size_maps(struct bpf_object *obj, const char *pin_root)
{
	static bool said; /* one line per process is enough */
	struct bpf_map *map;
	size_t i;

	bpf_object__for_each_map(map, obj) {
		struct bpf_map_info info = {};
		__u32 len = sizeof(info), want;
		int fd;

		for (i = 0; i < sizeof(sized_maps) / sizeof(sized_maps[0]); i++)
			if (!strcmp(bpf_map__name(map), sized_maps[i].name))
				break;
		if (i == sizeof(sized_maps) / sizeof(sized_maps[0]))
			continue;
		want = sizing_conns ? sizing_conns * sized_maps[i].per_conn :
				      bpf_map__max_entries(map);
		fd = pin_root ? sl_pin_open(pin_root, bpf_map__name(map)) : -1;
		if (fd >= 0) {
			if (!bpf_obj_get_info_by_fd(fd, &info, &len)) {
				if (sizing_conns && info.max_entries != want &&
				    !said) {
					pr_warn("limits.max_conns %u sizes %s for "
						"%u entries; the pinned map keeps "
						"%u until `sidelane detach`\n",
						sizing_conns, bpf_map__name(map),
						want, info.max_entries);
					said = true;
				}
				want = info.max_entries;
			}
			close(fd);
		}
		bpf_map__set_max_entries(map, want);
	}
}

int sl_obj_pin_maps(struct bpf_object *obj, const char *pin_root,
		    int skip_sk_storage)
{
	char path[PATH_MAX];
	struct bpf_map *map;
	int err;

	bpf_object__for_each_map(map, obj) {
		if (skip_sk_storage &&
		    bpf_map__type(map) == BPF_MAP_TYPE_SK_STORAGE)
			continue;
		err = sl_pin_path(path, sizeof(path), pin_root,
				  bpf_map__name(map));
		if (!err)
			err = bpf_map__set_pin_path(map, path);
		if (err)
			return err;
	}
	return 0;
}

int sl_obj_check_pins(struct bpf_object *obj, const char *pin_root)
{
	struct bpf_map *map;
	int err = 0;

	bpf_object__for_each_map(map, obj) {
		struct bpf_map_info info = {};
		__u32 len = sizeof(info);
		const char *what = NULL;
		__u32 want = 0, have = 0;
		int fd;

		if (bpf_map__is_internal(map))
			continue; /* .rodata/.bss: per load, never pinned */
		fd = sl_pin_open(pin_root, bpf_map__name(map));
		if (fd < 0)
			continue; /* not pinned yet: created by this build */
		if (bpf_obj_get_info_by_fd(fd, &info, &len)) {
			err = -errno;
			close(fd);
			return err;
		}
		close(fd);
#define SL_CMP(field, val)                                                     	if (!what && info.field != (val)) {                                    		what = #field;                                                 		want = (val);                                                  		have = info.field;                                             	}
		SL_CMP(type, (__u32)bpf_map__type(map));
		SL_CMP(key_size, bpf_map__key_size(map));
		SL_CMP(value_size, bpf_map__value_size(map));
		SL_CMP(max_entries, bpf_map__max_entries(map));
		SL_CMP(map_flags, bpf_map__map_flags(map));
#undef SL_CMP
		if (!what)
			continue;
		pr_warn("%s/%s was pinned by a build with another map layout "
			"(%s %u pinned, %u in this build): not mixing them. To "
			"upgrade: `sidelane detach --pin-root %s` (accelerated "
			"connections go on over TCP, counters restart), then run; "
			"or run the build that pinned it\n",
			pin_root, bpf_map__name(map), what, have, want, pin_root);
		err = -EPROTO;
	}
	return err;
}

int sl_percpu_sum_u64(int fd, __u32 key, void *out, size_t size)
{
	int ncpu = libbpf_num_possible_cpus(), c, err = 0;
	__u64 *percpu, *sum = out;
	size_t f, words = size / sizeof(__u64);

	if (ncpu < 0)
		return ncpu;
	/* Per-CPU values come back rounded up to 8 bytes each. */
	percpu = calloc(ncpu, words * sizeof(__u64));
	if (!percpu)
		return -ENOMEM;
	if (bpf_map_lookup_elem(fd, &key, percpu)) {
		err = -errno;
		goto out;
	}
	memset(out, 0, size);
	for (c = 0; c < ncpu; c++)
		for (f = 0; f < words; f++)
			sum[f] += percpu[c * words + f];
out:
	free(percpu);
	return err;
}

int sl_pin_foreach_u64(const char *pin_root, const char *name, void *val,
		       int (*fn)(uint64_t key, const void *val, void *ctx),
		       void *ctx)
{
	__u64 key, next, *prev = NULL;
	int fd, err = 0;

	fd = sl_pin_open(pin_root, name);
	if (fd < 0)
		return fd;
	while (!err && !bpf_map_get_next_key(fd, prev, &next)) {
		key = next;
		prev = &key;
		/* Gone between the two calls: the socket just closed. */
		if (!bpf_map_lookup_elem(fd, &key, val))
			err = fn(key, val, ctx);
	}
	close(fd);
	return err;
}

int sl_map_prog_attach(int prog_fd, int map_fd, enum bpf_attach_type type,
		       int *link_fd)
{
	/* libbpf 1.1 has no sockmap link wrapper (bpf_program__attach_sockmap
	 * is 1.5), but bpf_link_create() passes the attach type through
	 */
	*link_fd = bpf_link_create(prog_fd, map_fd, type, NULL);
	if (*link_fd >= 0)
		return 0;
	pr_debug("no sockmap bpf_link (%s): attaching to the map\n",
		 strerror(errno));
	*link_fd = -1;
	return bpf_prog_attach(prog_fd, map_fd, type, 0) ? -errno : 0;
}

int sl_pin_open_said(const char *pin_root, const char *name)
{
	int fd = sl_pin_open(pin_root, name);

	if (fd < 0)
		pr_warn("%s/%s: %s (is it attached?)\n", pin_root, name,
			strerror(-fd));
	return fd;
}

void sl_map_clear(int fd)
{
	char key[64];

	while (!bpf_map_get_next_key(fd, NULL, key))
		if (bpf_map_delete_elem(fd, key))
			break;
}
