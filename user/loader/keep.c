// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The running sidecar's hold on its pins: see keep.h. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include "loader/keep.h"
#include "loader/pins.h"
#include "sidelane.h"

struct keep_pin {
	int fd;
	bool cgroup_link; /* detached when its cgroup_id reads 0 */
	char name[NAME_MAX + 1];
};

struct sl_keep {
	char root[PATH_MAX];
	mode_t mode; /* of the folder, to make it again */
	unsigned int n;
	struct keep_pin *pins;
};

void sl_keep_close(struct sl_keep *k)
{
	unsigned int i;

	if (!k)
		return;
	for (i = 0; i < k->n; i++)
		close(k->pins[i].fd);
	free(k->pins);
	free(k);
}

static int keep_add(struct sl_keep *k, const char *name, unsigned int *cap)
{
	struct bpf_link_info info;
	char path[PATH_MAX];
	struct keep_pin *p;
	int fd;

	if (k->n == *cap) {
		*cap = *cap ? *cap * 2 : 64;
		p = realloc(k->pins, *cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		k->pins = p;
	}
	if (sl_pin_path(path, sizeof(path), k->root, name))
		return -ENAMETOOLONG;
	fd = bpf_obj_get(path);
	if (fd < 0)
		return -errno;
	p = &k->pins[k->n++];
	p->fd = fd;
	snprintf(p->name, sizeof(p->name), "%s", name);
	/* a map's or a program's fd fails the link info call */
	p->cgroup_link = !sl_link_info(fd, &info) &&
			 info.type == BPF_LINK_TYPE_CGROUP;
	return 0;
}

int sl_keep_open(const char *pin_root, struct sl_keep **out)
{
	struct sl_keep *k = calloc(1, sizeof(*k));
	unsigned int cap = 0;
	struct dirent *e;
	struct stat st;
	DIR *dir = NULL;
	int err = 0;

	*out = NULL;
	if (!k)
		return -ENOMEM;
	snprintf(k->root, sizeof(k->root), "%s", pin_root);
	if (stat(pin_root, &st) || !(dir = opendir(pin_root))) {
		err = -errno;
		goto out;
	}
	k->mode = st.st_mode & 07777;
	while (!err && (e = readdir(dir)))
		if (e->d_type == DT_REG)
			err = keep_add(k, e->d_name, &cap);
out:
	if (dir)
		closedir(dir);
	if (err) {
		sl_keep_close(k);
		return err;
	}
	*out = k;
	return 0;
}

int sl_keep_check(struct sl_keep *k, const char **what)
{
	struct bpf_link_info info;
	char path[PATH_MAX];
	unsigned int i;
	int put = 0;

	for (i = 0; i < k->n; i++) {
		struct keep_pin *p = &k->pins[i];

		if (p->cgroup_link && !sl_link_info(p->fd, &info) &&
		    !info.cgroup.cgroup_id) {
			*what = p->name;
			return -ENOLINK;
		}
	}
	for (i = 0; i < k->n; i++) {
		struct keep_pin *p = &k->pins[i];

		sl_pin_path(path, sizeof(path), k->root, p->name);
		if (!access(path, F_OK))
			continue;
		/* the folder too, the first time a pin is missing */
		if (!put && !mkdir(k->root, k->mode))
			chmod(k->root, k->mode); /* mkdir's mode went through umask */
		else if (!put && errno != EEXIST)
			return -errno;
		if (bpf_obj_pin(p->fd, path)) {
			*what = p->name;
			return -errno;
		}
		put++;
	}
	return put;
}
