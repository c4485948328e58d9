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

/* Kernel limit on programs per cgroup and attach type (BPF_CGROUP_MAX_PROGS),
 * times the levels an effective array can sum up.
 */
#define CX_QUERY_MAX 64
#define CX_EFFECTIVE_MAX 512
#define CX_OURS_MAX 64

#define HOW_ALL_RUN "all run whatever the others return; one returning 0 fails the call with EPERM"

/* What running beside ours means, per attach type (kernel semantics: see
 * coexist.h).
 */
static const struct cx_type {
	__u32 type;
	const char *name; /* as bpftool names it */
	const char *how;
} cg_types[] = {
	{ BPF_CGROUP_SOCK_OPS, "sock_ops",
	  "every sock_ops program runs for each TCP event; callback flags are per "
	  "socket: one that sets them without keeping the bits already set turns "
	  "off the others' callbacks" },
	{ BPF_CGROUP_INET4_CONNECT, "connect4",
	  "all run on one shared address: a later one sees an earlier one's "
	  "rewrite and its own rewrite wins; one returning 0 fails connect() "
	  "with EPERM" },
	{ BPF_CGROUP_INET6_CONNECT, "connect6",
	  "all run on one shared address: a later one sees an earlier one's "
	  "rewrite and its own rewrite wins; one returning 0 fails connect() "
	  "with EPERM" },
	{ BPF_CGROUP_INET4_GETPEERNAME, "getpeername4",
	  "all run on one shared address: the last rewrite is what the app sees" },
	{ BPF_CGROUP_INET6_GETPEERNAME, "getpeername6",
	  "all run on one shared address: the last rewrite is what the app sees" },
	{ BPF_CGROUP_GETSOCKOPT, "getsockopt",
	  "all run after the kernel's getsockopt, each on the value and return "
	  "code the previous left: the last writer wins (ours answers "
	  "SO_ORIGINAL_DST)" },
	{ BPF_CGROUP_SETSOCKOPT, "setsockopt",
	  "all run before the kernel's setsockopt, each on the options the "
	  "previous left; one returning 0 fails it with EPERM" },
	{ BPF_CGROUP_INET_SOCK_CREATE, "sock_create", HOW_ALL_RUN },
	{ BPF_CGROUP_INET_SOCK_RELEASE, "sock_release", HOW_ALL_RUN },
	{ BPF_CGROUP_INET4_BIND, "bind4",
	  "all run on one shared address; " HOW_ALL_RUN },
	{ BPF_CGROUP_INET6_BIND, "bind6",
	  "all run on one shared address; " HOW_ALL_RUN },
	{ BPF_CGROUP_INET4_POST_BIND, "post_bind4", HOW_ALL_RUN },
	{ BPF_CGROUP_INET6_POST_BIND, "post_bind6", HOW_ALL_RUN },
	{ BPF_CGROUP_UDP4_SENDMSG, "sendmsg4",
	  "all run on one shared address; " HOW_ALL_RUN },
	{ BPF_CGROUP_UDP6_SENDMSG, "sendmsg6",
	  "all run on one shared address; " HOW_ALL_RUN },
	{ BPF_CGROUP_UDP4_RECVMSG, "recvmsg4",
	  "all run on one shared address: the last rewrite is what the app sees" },
	{ BPF_CGROUP_UDP6_RECVMSG, "recvmsg6",
	  "all run on one shared address: the last rewrite is what the app sees" },
	{ BPF_CGROUP_INET_INGRESS, "ingress",
	  "all run; a packet is dropped if one returns 0. Bytes sidelane "
	  "redirects socket to socket never pass here: a traffic counter misses "
	  "accelerated connections" },
	{ BPF_CGROUP_INET_EGRESS, "egress",
	  "all run; a packet is dropped if one returns 0. Bytes sidelane "
	  "redirects socket to socket never pass here: a traffic counter misses "
	  "accelerated connections" },
}, map_types[] = {
	{ BPF_SK_MSG_VERDICT, "sk_msg", NULL },
	{ BPF_SK_SKB_STREAM_PARSER, "sk_skb_stream_parser", NULL },
	{ BPF_SK_SKB_STREAM_VERDICT, "sk_skb_stream_verdict", NULL },
	{ BPF_SK_SKB_VERDICT, "sk_skb_verdict", NULL },
}, lookup_type = {
	BPF_SK_LOOKUP, "sk_lookup",
	"all run in attach order; a socket selected by one stands unless a "
	"later one replaces it (BPF_SK_LOOKUP_F_REPLACE); a drop counts only "
	"if none selected a socket",
};

#define N_CG_TYPES (sizeof(cg_types) / sizeof(cg_types[0]))
#define N_MAP_TYPES (sizeof(map_types) / sizeof(map_types[0]))

static const char *const map_note =
	"a socket takes the sk_msg/sk_skb programs of the first sockmap it "
	"enters and inserting it into a second one with programs fails (EBUSY): "
	"which of the two accelerates a connection depends on whose sock_ops "
	"runs first";

static const struct cx_type *type_of(__u32 attach_type)
{
	size_t i;

	for (i = 0; i < N_CG_TYPES; i++)
		if (cg_types[i].type == attach_type)
			return &cg_types[i];
	for (i = 0; i < N_MAP_TYPES; i++)
		if (map_types[i].type == attach_type)
			return &map_types[i];
	return attach_type == BPF_SK_LOOKUP ? &lookup_type : NULL;
}

const char *sl_cx_attach_name(__u32 attach_type)
{
	const struct cx_type *t = type_of(attach_type);

	return t ? t->name : "other";
}

const char *sl_cx_action_name(enum sl_cx_action a)
{
	return a == SL_CX_REFUSE ? "refuse" : a == SL_CX_WARN ? "warn" : "alongside";
}

const char *sl_cx_where_name(enum sl_cx_where w)
{
	static const char *const names[] = {
		[SL_CX_OWN] = "own",	     [SL_CX_INHERITED] = "inherited",
		[SL_CX_ABOVE] = "above",     [SL_CX_SOCKMAP] = "sockmap",
		[SL_CX_NETNS] = "netns",
	};

	return (unsigned int)w < sizeof(names) / sizeof(names[0]) ? names[w] : "?";
}

const char *sl_cx_order_name(enum sl_cx_order o)
{
	static const char *const names[] = {
		[SL_CX_ORDER_NONE] = "none", [SL_CX_BEFORE] = "before",
		[SL_CX_AFTER] = "after",     [SL_CX_BETWEEN] = "between",
	};

	return (unsigned int)o < sizeof(names) / sizeof(names[0]) ? names[o] : "?";
}

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
		for (t = 0; t < N_CG_TYPES; t++) {
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
	for (t = 0; t < N_CG_TYPES; t++) {
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
		for (t = 0; t < N_MAP_TYPES; t++) {
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

/* ---- reports ---- */

const char *sl_coexist_where(const struct sl_coexist *cx,
			     const struct sl_coexist_prog *p, char *buf,
			     size_t len)
{
	unsigned int up;

	buf[0] = '\0';
	if (p->where > SL_CX_INHERITED)
		return buf;
	snprintf(buf, len, "%s",
		 p->base == SL_CX_SIDECAR ? cx->sidecar_cgroup : cx->app_cgroup);
	for (up = 0; up < p->levels_up; up++) {
		char *slash = strrchr(buf, '/');

		if (!slash)
			break;
		*slash = '\0';
	}
	return buf;
}

static const char *base_name(unsigned int bits)
{
	switch (bits) {
	case SL_CX_APP:
		return "the app's";
	case SL_CX_SIDECAR:
		return "the sidecar's";
	default:
		return "the app's and the sidecar's";
	}
}

/* "runs after ours", or why there is no order to give. */
static const char *order_phrase(const struct sl_coexist_prog *p)
{
	if (p->where != SL_CX_NETNS && p->where != SL_CX_SOCKMAP && !p->runs)
		return "not run (a program below overrides it)";
	switch (p->order) {
	case SL_CX_BEFORE:
		return "runs before ours";
	case SL_CX_AFTER:
		return "runs after ours";
	case SL_CX_BETWEEN:
		return "runs between ours";
	default:
		return "none of ours of that type";
	}
}

static void tag_hex(const __u8 tag[8], char out[17])
{
	int i;

	for (i = 0; i < 8; i++)
		snprintf(out + 2 * i, 3, "%02x", tag[i]);
}

void sl_coexist_describe(const struct sl_coexist *cx,
			 const struct sl_coexist_prog *p, char *buf, size_t len)
{
	const struct cx_type *t = type_of(p->attach_type);
	char where[PATH_MAX + 160], path[PATH_MAX], tag[17];
	const char *how = t && t->how ? t->how : "";

	sl_coexist_where(cx, p, path, sizeof(path));
	tag_hex(p->tag, tag);
	switch (p->where) {
	case SL_CX_OWN:
		snprintf(where, sizeof(where), "on %s cgroup %s",
			 base_name(p->base), path);
		break;
	case SL_CX_INHERITED:
		snprintf(where, sizeof(where),
			 "inherited from %s (%u level%s above %s cgroup)", path,
			 p->levels_up, p->levels_up == 1 ? "" : "s",
			 base_name(p->base));
		break;
	case SL_CX_ABOVE:
		snprintf(where, sizeof(where),
			 "inherited from above the visible cgroup tree (runs for %s cgroup)",
			 base_name(p->applies));
		break;
	case SL_CX_SOCKMAP:
		snprintf(where, sizeof(where), "on %s %u \"%s\"%s",
			 p->map_type == BPF_MAP_TYPE_SOCKHASH ? "sockhash" : "sockmap",
			 p->map_id, p->map_name,
			 p->on_ours ? ", sidelane's own" :
			 p->fed_by ? "" : ", not fed by a sock_ops of these cgroups");
		if (p->fed_by && !p->on_ours) {
			size_t n = strlen(where);

			snprintf(where + n, sizeof(where) - n,
				 ", fed by sock_ops program %u of these cgroups",
				 p->fed_by);
		}
		break;
	case SL_CX_NETNS:
		snprintf(where, sizeof(where), "on this network namespace");
		break;
	}
	switch (p->action) {
	case SL_CX_REFUSE:
		snprintf(buf, len,
			 "%s program %u \"%s\" (tag %s) %s: CONFLICT: sidelane does not "
			 "attach beside another sock_ops on its own cgroup (another "
			 "mesh?); detach one of them (`bpftool cgroup detach %s sock_ops "
			 "id %u`)",
			 sl_cx_attach_name(p->attach_type), p->id, p->name, tag, where,
			 path, p->id);
		return;
	case SL_CX_WARN:
		if (p->where == SL_CX_SOCKMAP)
			snprintf(buf, len,
				 "%s program %u \"%s\" (tag %s) %s: WARNING: sockets of "
				 "these cgroups are offered to this sockmap too; %s",
				 sl_cx_attach_name(p->attach_type), p->id, p->name, tag,
				 where, p->on_ours ? "it runs on sidelane's sockets "
						     "instead of or with ours" : map_note);
		else if (p->feeds_ours)
			snprintf(buf, len,
				 "%s program %u \"%s\" (tag %s) %s, %s: WARNING: it uses "
				 "sidelane's map %u",
				 sl_cx_attach_name(p->attach_type), p->id, p->name, tag,
				 where, order_phrase(p), p->feeds_map);
		else
			snprintf(buf, len,
				 "%s program %u \"%s\" (tag %s) %s, %s: WARNING: it feeds "
				 "sockmap %u, which has sk_msg/sk_skb programs: %s",
				 sl_cx_attach_name(p->attach_type), p->id, p->name, tag,
				 where, order_phrase(p), p->feeds_map, map_note);
		return;
	case SL_CX_ALONGSIDE:
		break;
	}
	if (p->where == SL_CX_SOCKMAP) {
		snprintf(buf, len, "%s program %u \"%s\" (tag %s) %s: alongside (unrelated)",
			 sl_cx_attach_name(p->attach_type), p->id, p->name, tag,
			 where);
		return;
	}
	snprintf(buf, len, "%s program %u \"%s\" (tag %s) %s: alongside, %s; %s",
		 sl_cx_attach_name(p->attach_type), p->id, p->name, tag, where,
		 order_phrase(p), how);
}

int sl_coexist_report(const char *app_cgroup, const char *sidecar_cgroup,
		      const char *pin_root)
{
	struct sl_coexist *cx = malloc(sizeof(*cx));
	unsigned int k, unrelated = 0;
	char line[PATH_MAX + 1024];
	int n;

	if (!cx)
		return -ENOMEM;
	sl_coexist_scan(app_cgroup, sidecar_cgroup, pin_root, cx);
	for (k = 0; k < cx->n; k++) {
		const struct sl_coexist_prog *p = &cx->progs[k];

		sl_coexist_describe(cx, p, line, sizeof(line));
		if (p->where == SL_CX_SOCKMAP && p->action == SL_CX_ALONGSIDE) {
			unrelated++;
			pr_debug("coexist: %s\n", line);
		} else if (p->action == SL_CX_ALONGSIDE) {
			pr_info("coexist: %s\n", line);
		} else {
			pr_warn("coexist: %s\n", line);
		}
	}
	if (unrelated)
		pr_info("coexist: %u sk_msg/sk_skb program(s) on other sockmaps that "
			"no sock_ops of these cgroups feeds (`sidelane status` lists "
			"them)\n", unrelated);
	if (cx->n_dropped)
		pr_warn("coexist: %u more foreign program(s) not listed\n",
			cx->n_dropped);
	if (!cx->n && !cx->n_dropped)
		pr_info("coexist: no other program on these cgroups, their "
			"sockmaps or this network namespace\n");
	if (cx->err)
		pr_debug("coexist: scan incomplete: %s\n", strerror(-cx->err));
	n = (int)(cx->n + cx->n_dropped);
	free(cx);
	return n;
}

static void print_json(FILE *f, const struct sl_coexist *cx)
{
	char path[PATH_MAX], tag[17];
	unsigned int k;

	fprintf(f, ",\"coexist\":[");
	for (k = 0; k < cx->n; k++) {
		const struct sl_coexist_prog *p = &cx->progs[k];
		const char *pt = libbpf_bpf_prog_type_str(p->prog_type);

		tag_hex(p->tag, tag);
		fprintf(f, "%s{\"id\":%u,\"name\":", k ? "," : "", p->id);
		sl_json_str(f, p->name);
		fprintf(f, ",\"tag\":\"%s\",\"prog_type\":\"%s\",\"attach_type\":\"%s\","
			   "\"where\":\"%s\",\"action\":\"%s\"",
			tag, p->name[0] && pt ? pt : "", sl_cx_attach_name(p->attach_type),
			sl_cx_where_name(p->where), sl_cx_action_name(p->action));
		if (p->where <= SL_CX_ABOVE) {
			fprintf(f, ",\"cgroup\":");
			sl_json_str(f, sl_coexist_where(cx, p, path, sizeof(path)));
			fprintf(f, ",\"cgroup_id\":%llu,\"levels_up\":%u,"
				   "\"applies_to\":[%s%s%s],\"runs\":%s",
				(unsigned long long)p->cgroup_id, p->levels_up,
				p->applies & SL_CX_APP ? "\"app\"" : "",
				p->applies == (SL_CX_APP | SL_CX_SIDECAR) ? "," : "",
				p->applies & SL_CX_SIDECAR ? "\"sidecar\"" : "",
				p->runs ? "true" : "false");
		}
		if (p->where != SL_CX_SOCKMAP)
			fprintf(f, ",\"order\":\"%s\"", sl_cx_order_name(p->order));
		if (p->where == SL_CX_SOCKMAP) {
			fprintf(f, ",\"map_id\":%u,\"map_type\":\"%s\",\"map_name\":",
				p->map_id,
				p->map_type == BPF_MAP_TYPE_SOCKHASH ? "sockhash" : "sockmap");
			sl_json_str(f, p->map_name);
			fprintf(f, ",\"fed_by\":%u,\"sidelane_map\":%s", p->fed_by,
				p->on_ours ? "true" : "false");
		}
		if (p->attach_type == BPF_CGROUP_SOCK_OPS)
			fprintf(f, ",\"feeds_map\":%u", p->feeds_map);
		fprintf(f, "}");
	}
	fprintf(f, "]");
	if (cx->n_dropped)
		fprintf(f, ",\"coexist_more\":%u", cx->n_dropped);
	if (cx->err) {
		fprintf(f, ",\"coexist_error\":");
		sl_json_str(f, strerror(-cx->err));
	}
}

void sl_coexist_print(FILE *f, const struct sl_coexist *cx, int json)
{
	char line[PATH_MAX + 1024];
	unsigned int k;

	if (json) {
		print_json(f, cx);
		return;
	}
	if (!cx->n && !cx->n_dropped)
		fprintf(f, "coexist: no other program on these cgroups, their "
			   "sockmaps or this network namespace\n");
	else
		fprintf(f, "coexist: %u other program(s) (rule: README, "
			   "\"Coexistence\")\n", cx->n + cx->n_dropped);
	for (k = 0; k < cx->n; k++) {
		sl_coexist_describe(cx, &cx->progs[k], line, sizeof(line));
		fprintf(f, "  %s\n", line);
	}
	if (cx->n_dropped)
		fprintf(f, "  ... and %u more\n", cx->n_dropped);
	if (cx->err)
		fprintf(f, "  (scan incomplete: %s%s)\n", strerror(-cx->err),
			cx->err == -EPERM ? ": names and sockmaps need CAP_SYS_ADMIN" : "");
}
