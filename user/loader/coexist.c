// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Coexistence report (user side; the rule is in coexist.h): the programs of
 * other owners on the app's and the sidecar's cgroups and their ancestors,
 * on sockmaps, and sk_lookup on the network namespace, each with where it
 * is attached, the order it runs in relative to ours, and what sidelane does
 * about it. Read-only: nothing is attached or detached here.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "loader/pins.h"
#include "lib/json.h"
#include "sidelane.h"
#include "loader/coexist.h"
#include "loader/fastpath_user.h"
#include "lib/cgroup.h"
#include "lib/log.h"
#include "loader/coexist_int.h"

/* Kernel limit on programs per cgroup and attach type (BPF_CGROUP_MAX_PROGS),
 * times the levels an effective array can sum up.
 */
#define CX_QUERY_MAX 64
#define CX_EFFECTIVE_MAX 512
#define CX_OURS_MAX 64


/* ---- what is ours: the ids behind the pins ---- */

struct ours {
	__u32 progs[CX_OURS_MAX], maps[CX_OURS_MAX];
	unsigned int n_progs, n_maps;
	int has_lookup; /* link_sk_lookup pinned; on netns lookup_netns */
	__u64 lookup_netns;
};

static int in_set(const __u32 *set, unsigned int n, __u32 id)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		if (set[i] == id)
			return 1;
	return 0;
}

static void add_id(__u32 *set, unsigned int *n, __u32 id)
{
	if (id && *n < CX_OURS_MAX && !in_set(set, *n, id))
		set[(*n)++] = id;
}

/* Pins are named by kind (include/sidelane.h): link_*, prog_*, and maps. */
static void collect_pin(const char *name, int fd, void *ctx)
{
	struct ours *o = ctx;

	if (!strncmp(name, "link_", 5)) {
		struct bpf_link_info li = {};
		__u32 len = sizeof(li);

		if (!bpf_obj_get_info_by_fd(fd, &li, &len)) {
			add_id(o->progs, &o->n_progs, li.prog_id);
			if (li.type == BPF_LINK_TYPE_NETNS &&
			    !strcmp(name, SL_PIN_LINK_SK_LOOKUP)) {
				o->has_lookup = 1;
				o->lookup_netns = li.netns.netns_ino;
			}
		}
	} else if (!strncmp(name, "prog_", 5)) {
		struct bpf_prog_info pi = {};
		__u32 len = sizeof(pi);

		if (!bpf_obj_get_info_by_fd(fd, &pi, &len))
			add_id(o->progs, &o->n_progs, pi.id);
	} else {
		struct bpf_map_info mi = {};
		__u32 len = sizeof(mi);

		if (!bpf_obj_get_info_by_fd(fd, &mi, &len))
			add_id(o->maps, &o->n_maps, mi.id);
	}
}

static void collect_ours(const char *pin_root, struct ours *o)
{
	if (pin_root)
		sl_pin_foreach(pin_root, collect_pin, o);
}

/* ---- the scan ---- */

struct scan {
	struct sl_coexist *cx;
	struct ours ours;
	char mnt[PATH_MAX];
};

static void note_err(struct sl_coexist *cx, int err)
{
	if (err && !cx->err)
		cx->err = err;
}

static struct sl_coexist_prog *add_prog(struct sl_coexist *cx)
{
	struct sl_coexist_prog *p;

	if (cx->n >= SL_COEXIST_MAX) {
		cx->n_dropped++;
		return NULL;
	}
	p = &cx->progs[cx->n++];
	memset(p, 0, sizeof(*p));
	return p;
}

/* Like sl_cgroup_resolve(), without its messages (run's attach gives them):
 * an absolute path on the mount is taken as is, anything else is relative
 * to the mount.
 */
static int resolve(const char *mnt, const char *arg, char *out)
{
	char joined[PATH_MAX];
	size_t m = strlen(mnt);
	int n;

	if (arg[0] == '/' && !strncmp(arg, mnt, m) &&
	    (arg[m] == '/' || !arg[m]))
		n = snprintf(joined, sizeof(joined), "%s", arg);
	else
		n = snprintf(joined, sizeof(joined), "%s/%s", mnt,
			     arg[0] == '/' ? arg + 1 : arg);
	if (n < 0 || (size_t)n >= sizeof(joined))
		return -ENAMETOOLONG;
	if (!realpath(joined, out))
		return -errno;
	/* a path outside the mount (a symlink out) is not a cgroup of it */
	if (strncmp(out, mnt, m) || (out[m] && out[m] != '/'))
		return -EINVAL;
	return 0;
}

/* Programs attached directly to the cgroup at path and each ancestor up to
 * the mount (the root cgroup included).
 */
static void scan_chain(struct scan *s, unsigned int base, const char *path)
{
	struct sl_coexist *cx = s->cx;
	size_t mlen = strlen(s->mnt);
	char cur[PATH_MAX];
	unsigned int level;
	size_t t;

	snprintf(cur, sizeof(cur), "%s", path);
	for (level = 0;; level++) {
		struct stat st;
		char *slash;
		int fd;

		fd = open(cur, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &st)) {
			note_err(cx, -errno);
			if (fd >= 0)
				close(fd);
			return;
		}
		for (t = 0; t < n_cg_types; t++) {
			__u32 ids[CX_QUERY_MAX], cnt = CX_QUERY_MAX, flags = 0, i;

			if (bpf_prog_query(fd, cg_types[t].type, 0, &flags, ids,
					   &cnt)) {
				/* EINVAL: an attach type this kernel lacks */
				if (errno != EINVAL)
					note_err(cx, -errno);
				continue;
			}
			for (i = 0; i < cnt; i++) {
				struct sl_coexist_prog *p = NULL;
				unsigned int k;

				if (in_set(s->ours.progs, s->ours.n_progs, ids[i]))
					continue;
				/* the same attachment seen from the other base */
				for (k = 0; k < cx->n && !p; k++)
					if (cx->progs[k].id == ids[i] &&
					    cx->progs[k].attach_type == cg_types[t].type &&
					    cx->progs[k].cgroup_id == st.st_ino)
						p = &cx->progs[k];
				if (p) {
					p->applies |= base;
					if (!level && p->where != SL_CX_OWN) {
						p->where = SL_CX_OWN;
						p->base = base;
						p->levels_up = 0;
					}
					continue;
				}
				p = add_prog(cx);
				if (!p)
					continue;
				p->id = ids[i];
				p->attach_type = cg_types[t].type;
				p->where = level ? SL_CX_INHERITED : SL_CX_OWN;
				p->applies = base;
				p->cgroup_id = st.st_ino;
				p->base = base;
				p->levels_up = level;
				p->attach_flags = flags;
			}
		}
		close(fd);
		if (strlen(cur) <= mlen)
			return; /* the root cgroup was the last */
		slash = strrchr(cur, '/');
		if (!slash || (size_t)(slash - cur) < mlen)
			return;
		*slash = '\0';
	}
}

static enum sl_cx_order order_of(int i, int first, int last)
{
	if (first < 0)
		return SL_CX_ORDER_NONE;
	return i < first ? SL_CX_BEFORE : i > last ? SL_CX_AFTER : SL_CX_BETWEEN;
}

/* The effective arrays of the cgroup at path: which programs run for it, in
 * which order relative to ours; programs inherited from above the visible
 * tree (a cgroup namespace) only show here.
 */
static void scan_effective(struct scan *s, unsigned int base, const char *path)
{
	struct sl_coexist *cx = s->cx;
	size_t t;
	int fd;

	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		note_err(cx, -errno);
		return;
	}
	for (t = 0; t < n_cg_types; t++) {
		__u32 cnt = CX_EFFECTIVE_MAX, flags = 0, type = cg_types[t].type;
		/* 2 KiB: on the heap, the admin endpoint's thread reads it too */
		__u32 *v = malloc(CX_EFFECTIVE_MAX * sizeof(*v));
		int first = -1, last = -1, i;

		if (!v) {
			note_err(cx, -ENOMEM);
			break;
		}
		if (bpf_prog_query(fd, type, BPF_F_QUERY_EFFECTIVE, &flags, v,
				   &cnt)) {
			if (errno != EINVAL)
				note_err(cx, -errno);
			free(v);
			continue;
		}
		for (i = 0; i < (int)cnt; i++) {
			if (in_set(s->ours.progs, s->ours.n_progs, v[i])) {
				if (first < 0)
					first = i;
				last = i;
			}
		}
		for (i = 0; i < (int)cnt; i++) {
			struct sl_coexist_prog *p = NULL, *any = NULL;
			unsigned int k;

			if (in_set(s->ours.progs, s->ours.n_progs, v[i]))
				continue;
			/* one program can be attached at two levels: it is then
			 * in the array twice; match them one by one
			 */
			for (k = 0; k < cx->n && !p; k++) {
				struct sl_coexist_prog *c = &cx->progs[k];

				/* from above the visible tree: one entry for both */
				if (c->id != v[i] || c->attach_type != type ||
				    c->where > SL_CX_ABOVE ||
				    (!(c->applies & base) && c->where != SL_CX_ABOVE))
					continue;
				if (!any)
					any = c;
				if (!(c->runs & base))
					p = c;
			}
			p = p ?: any;
			if (!p) {
				p = add_prog(cx);
				if (!p)
					continue;
				p->id = v[i];
				p->attach_type = type;
				p->where = SL_CX_ABOVE;
				p->applies = base;
				p->base = base;
			}
			p->runs |= base;
			p->applies |= base;
			if (p->order == SL_CX_ORDER_NONE)
				p->order = order_of(i, first, last);
		}
		free(v);
	}
	close(fd);
}

/* Is map id referenced by a foreign sock_ops that runs for our cgroups?
 * (cgroup entries have their details by now)
 */
static int fed_from_here(const struct sl_coexist *cx, __u32 map_id)
{
	unsigned int k;

	for (k = 0; k < cx->n; k++) {
		const struct sl_coexist_prog *p = &cx->progs[k];

		if (p->where <= SL_CX_ABOVE && p->runs &&
		    p->attach_type == BPF_CGROUP_SOCK_OPS &&
		    in_set(p->map_ids, p->n_map_ids, map_id))
			return 1;
	}
	return 0;
}

#define CX_SOCKMAP_MAX 256

/* Sockmaps and sockhashes of the system that carry sk_msg/sk_skb programs
 * other than ours. Those that matter (fed from our cgroups, or ours) go in
 * first, so unrelated ones (other pods' sidelanes) never crowd them out.
 */
static void scan_sockmaps(struct scan *s)
{
	struct sl_coexist_prog *found, *p;
	struct sl_coexist *cx = s->cx;
	unsigned int n = 0, k, pass;
	__u32 id = 0;
	size_t t;

	found = calloc(CX_SOCKMAP_MAX, sizeof(*found));
	if (!found) {
		note_err(cx, -ENOMEM);
		return;
	}
	while (!bpf_map_get_next_id(id, &id)) {
		struct bpf_map_info mi = {};
		__u32 len = sizeof(mi);
		int fd = bpf_map_get_fd_by_id(id);

		if (fd < 0) {
			if (errno != ENOENT) /* ENOENT: freed meanwhile */
				note_err(cx, -errno);
			continue;
		}
		if (bpf_obj_get_info_by_fd(fd, &mi, &len) ||
		    (mi.type != BPF_MAP_TYPE_SOCKMAP &&
		     mi.type != BPF_MAP_TYPE_SOCKHASH)) {
			close(fd);
			continue;
		}
		for (t = 0; t < n_map_types; t++) {
			__u32 ids[4], cnt = 4, flags = 0, i;

			/* one program per attach type and map */
			if (bpf_prog_query(fd, map_types[t].type, 0, &flags, ids,
					   &cnt))
				continue;
			for (i = 0; i < cnt; i++) {
				if (in_set(s->ours.progs, s->ours.n_progs, ids[i]))
					continue;
				if (n == CX_SOCKMAP_MAX) {
					cx->n_dropped++;
					continue;
				}
				p = &found[n++];
				p->id = ids[i];
				p->attach_type = map_types[t].type;
				p->where = SL_CX_SOCKMAP;
				p->map_id = mi.id;
				p->map_type = mi.type;
				memcpy(p->map_name, mi.name, sizeof(p->map_name));
				p->map_name[sizeof(p->map_name) - 1] = '\0';
				p->on_ours = in_set(s->ours.maps, s->ours.n_maps, mi.id);
			}
		}
		close(fd);
	}
	if (errno != ENOENT)
		note_err(cx, -errno); /* EPERM: no CAP_SYS_ADMIN */
	for (pass = 0; pass < 2; pass++) {
		for (k = 0; k < n; k++) {
			int related = found[k].on_ours ||
				      fed_from_here(cx, found[k].map_id);

			if (related != !pass)
				continue;
			p = add_prog(cx);
			if (p)
				*p = found[k];
		}
	}
	free(found);
}

/* sk_lookup programs of this network namespace, unless our pinned link
 * serves another one (status run from outside the pod).
 */
static void scan_netns(struct scan *s)
{
	__u32 ids[CX_QUERY_MAX], cnt = CX_QUERY_MAX, flags = 0;
	struct sl_coexist *cx = s->cx;
	int fd, first = -1, last = -1, i;
	struct stat st;

	if (stat("/proc/self/ns/net", &st))
		return;
	if (s->ours.has_lookup && s->ours.lookup_netns != st.st_ino)
		return;
	fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	if (bpf_prog_query(fd, BPF_SK_LOOKUP, 0, &flags, ids, &cnt)) {
		if (errno != EINVAL)
			note_err(cx, -errno);
		close(fd);
		return;
	}
	close(fd);
	for (i = 0; i < (int)cnt; i++) {
		if (in_set(s->ours.progs, s->ours.n_progs, ids[i])) {
			if (first < 0)
				first = i;
			last = i;
		}
	}
	for (i = 0; i < (int)cnt; i++) {
		struct sl_coexist_prog *p;

		if (in_set(s->ours.progs, s->ours.n_progs, ids[i]))
			continue;
		p = add_prog(cx);
		if (!p)
			continue;
		p->id = ids[i];
		p->attach_type = BPF_SK_LOOKUP;
		p->where = SL_CX_NETNS;
		p->order = order_of(i, first, last);
	}
}

/* Name, tag, type, and for sock_ops the maps it references. Needs
 * CAP_SYS_ADMIN (BPF_PROG_GET_FD_BY_ID); without it the ids stay alone.
 */
static void fill_details(struct sl_coexist *cx, unsigned int from)
{
	unsigned int k;

	for (k = from; k < cx->n; k++) {
		struct sl_coexist_prog *p = &cx->progs[k];
		__u32 map_ids[SL_COEXIST_MAX_MAP_IDS];
		struct bpf_prog_info pi = {};
		__u32 len = sizeof(pi);
		int fd = bpf_prog_get_fd_by_id(p->id);

		if (fd < 0) {
			if (errno != ENOENT) /* ENOENT: detached and freed */
				note_err(cx, -errno);
			continue;
		}
		pi.nr_map_ids = SL_COEXIST_MAX_MAP_IDS;
		pi.map_ids = (__u64)(unsigned long)map_ids;
		if (!bpf_obj_get_info_by_fd(fd, &pi, &len)) {
			memcpy(p->name, pi.name, sizeof(p->name));
			p->name[sizeof(p->name) - 1] = '\0';
			memcpy(p->tag, pi.tag, sizeof(p->tag));
			p->prog_type = pi.type;
			p->n_map_ids = pi.nr_map_ids < SL_COEXIST_MAX_MAP_IDS ?
					       pi.nr_map_ids :
					       SL_COEXIST_MAX_MAP_IDS;
			memcpy(p->map_ids, map_ids, p->n_map_ids * sizeof(__u32));
		}
		close(fd);
	}
}

/* Which foreign sock_ops of our cgroups feeds which sockmap, then the rule. */
static void classify(struct scan *s)
{
	struct sl_coexist *cx = s->cx;
	unsigned int k, j, m;

	for (k = 0; k < cx->n; k++) {
		struct sl_coexist_prog *p = &cx->progs[k];

		if (p->where > SL_CX_ABOVE || p->attach_type != BPF_CGROUP_SOCK_OPS ||
		    !p->runs)
			continue;
		for (m = 0; m < p->n_map_ids && !p->feeds_map; m++) {
			/* one of our maps (the sockhash, most likely) */
			if (in_set(s->ours.maps, s->ours.n_maps, p->map_ids[m])) {
				p->feeds_map = p->map_ids[m];
				p->feeds_ours = 1;
			}
			for (j = 0; j < cx->n; j++) {
				struct sl_coexist_prog *q = &cx->progs[j];

				if (q->where != SL_CX_SOCKMAP ||
				    q->map_id != p->map_ids[m])
					continue;
				p->feeds_map = q->map_id;
				if (!q->fed_by)
					q->fed_by = p->id;
			}
		}
	}
	for (k = 0; k < cx->n; k++) {
		struct sl_coexist_prog *p = &cx->progs[k];

		p->action = SL_CX_ALONGSIDE;
		if (p->attach_type == BPF_CGROUP_SOCK_OPS && p->where == SL_CX_OWN)
			p->action = SL_CX_REFUSE;
		else if (p->attach_type == BPF_CGROUP_SOCK_OPS && p->feeds_map)
			p->action = SL_CX_WARN;
		else if (p->where == SL_CX_SOCKMAP && (p->on_ours || p->fed_by))
			p->action = SL_CX_WARN;
	}
}

int sl_coexist_scan(const char *app_cgroup, const char *sidecar_cgroup,
		    const char *pin_root, struct sl_coexist *out)
{
	struct scan *s = calloc(1, sizeof(*s));
	unsigned int n;
	int err;

	memset(out, 0, sizeof(*out));
	if (!s)
		return out->err = -ENOMEM;
	s->cx = out;
	collect_ours(pin_root, &s->ours);
	out->n_ours = s->ours.n_progs;
	err = (app_cgroup || sidecar_cgroup) ? sl_cgroup2_mount(s->mnt, sizeof(s->mnt)) : 0;
	note_err(out, err);
	if (!err && app_cgroup)
		note_err(out, resolve(s->mnt, app_cgroup, out->app_cgroup));
	if (!err && sidecar_cgroup &&
	    !resolve(s->mnt, sidecar_cgroup, out->sidecar_cgroup) &&
	    !strcmp(out->sidecar_cgroup, out->app_cgroup))
		out->sidecar_cgroup[0] = '\0'; /* the app's: scanned as that */
	if (out->app_cgroup[0])
		scan_chain(s, SL_CX_APP, out->app_cgroup);
	if (out->sidecar_cgroup[0])
		scan_chain(s, SL_CX_SIDECAR, out->sidecar_cgroup);
	if (out->app_cgroup[0])
		scan_effective(s, SL_CX_APP, out->app_cgroup);
	if (out->sidecar_cgroup[0])
		scan_effective(s, SL_CX_SIDECAR, out->sidecar_cgroup);
	scan_netns(s);
	fill_details(out, 0);
	n = out->n;
	scan_sockmaps(s); /* needs the sock_ops' maps from fill_details() */
	fill_details(out, n);
	classify(s);
	free(s);
	return out->err;
}
