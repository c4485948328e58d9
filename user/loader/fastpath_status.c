// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The fast path read back from its pins, for `status`, /stats and /metrics
 * (see fastpath_user.h): links, programs, map fill, counters.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include "loader/pins.h"
#include "sidelane.h"
#include "fastpath.h"
#include "loader/acct_user.h"
#include "loader/fastpath_user.h"

#include "lib/cgroup.h"
#include "lib/log.h"

int sl_fp_read_counters(const char *pin_root, struct sl_counters *out)
{
	int fd, err;

	fd = sl_pin_open(pin_root, SL_MAP_COUNTERS);
	if (fd < 0)
		return fd;
	err = sl_percpu_sum_u64(fd, 0, out, sizeof(*out));
	close(fd);
	return err;
}

/* Entries and capacity of a pinned map (walks the keys: for status only). */
static int map_fill(const char *pin_root, const char *name, __u32 *entries,
		    __u32 *max)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info), n = 0;
	char key[64], next[64];
	void *prev = NULL;
	int fd;

	fd = sl_pin_open(pin_root, name);
	if (fd < 0)
		return fd;
	if (!bpf_obj_get_info_by_fd(fd, &info, &len) &&
	    info.key_size <= sizeof(key)) {
		while (!bpf_map_get_next_key(fd, prev, next) &&
		       n < info.max_entries) {
			memcpy(key, next, info.key_size);
			prev = key;
			n++;
		}
	}
	*entries = n;
	*max = info.max_entries;
	close(fd);
	return 0;
}

static __u32 link_prog_id(int fd)
{
	struct bpf_link_info info;

	return sl_link_info(fd, &info) ? 0 : info.prog_id;
}

int sl_fp_status(const char *pin_root, struct sl_fp_status *st)
{
	struct bpf_link_info info;
	__u32 dummy;
	int fd;

	memset(st, 0, sizeof(*st));
	fd = sl_pin_open(pin_root, SL_PIN_LINK_SOCKOPS);
	if (fd >= 0) {
		if (!sl_link_info(fd, &info)) {
			st->attached = 1;
			st->cgroup_id = info.cgroup.cgroup_id;
			st->sockops_prog_id = info.prog_id;
			sl_cgroup_path_by_id(st->cgroup_id, st->cgroup_path,
					     sizeof(st->cgroup_path));
		}
		close(fd);
	}
	fd = sl_pin_open(pin_root, SL_PIN_LINK_SK_MSG);
	if (fd >= 0) {
		st->sk_msg_link = 1;
		st->sk_msg_prog_id = link_prog_id(fd);
		close(fd);
	} else if ((fd = sl_pin_open(pin_root, SL_PIN_PROG_SK_MSG)) >= 0) {
		struct bpf_prog_info pinfo = {};
		__u32 len = sizeof(pinfo);

		if (!bpf_obj_get_info_by_fd(fd, &pinfo, &len))
			st->sk_msg_prog_id = pinfo.id;
		close(fd);
	}
	st->backlog_bound = sl_fp_backlog_supported();
	if (map_fill(pin_root, SL_MAP_SOCKHASH, &st->sockhash_entries,
		     &st->sockhash_max))
		return st->attached ? 0 : -ENOENT;
	map_fill(pin_root, SL_MAP_CONNS, &st->conns_entries, &st->conns_max);
	map_fill(pin_root, SL_MAP_LOCAL_ADDRS, &st->local_addrs_entries, &dummy);
	fd = sl_pin_open(pin_root, SL_MAP_EXCLUDED_PORTS);
	if (fd >= 0) {
		__u16 port, *prev = NULL;

		while (st->n_excluded_ports < SL_MAX_EXCLUDED_PORTS &&
		       !bpf_map_get_next_key(fd, prev, &port)) {
			st->excluded_ports[st->n_excluded_ports++] = port;
			prev = &st->excluded_ports[st->n_excluded_ports - 1];
		}
		close(fd);
	}
	sl_fp_read_counters(pin_root, &st->counters);
	fd = sl_pin_open(pin_root, SL_MAP_FP_CFG);
	if (fd >= 0) {
		__u32 zero = 0;

		bpf_map_lookup_elem(fd, &zero, &st->cfg);
		close(fd);
	}
	sl_acct_lost(pin_root, &st->events_lost);
	return 0;
}
