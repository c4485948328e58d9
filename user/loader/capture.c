// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Capture and policy (user side): load bpf/capture.bpf.c, pin its maps and
 * links next to the fast path's, attach the app-side programs to the app's
 * cgroup and getsockopt to the sidecar's, and write configuration and policy
 * into the maps. Policy reloads are atomic (see struct sl_policy_state).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "lib/addr.h"
#include "loader/pins.h"
#include "sidelane.h"
#include "capture.h"
#include "capture.skel.h"
#include "loader/capture_user.h"
#include "loader/fastpath_user.h"
#include "lib/cgroup.h"
#include "lib/log.h"
#include "lib/util.h"

const char *const sl_capture_reason_name[SL_CR_NR] = {
	[SL_CR_CAPTURED] = "captured",
	[SL_CR_DENIED] = "denied",
	[SL_CR_SIDECAR_OWN] = "sidecar_own",
	[SL_CR_LOOPBACK] = "loopback",
	[SL_CR_OWN_LISTENER] = "own_listener_port",
	[SL_CR_EXCLUDED_CIDR] = "excluded_cidr",
	[SL_CR_NOT_INCLUDED_CIDR] = "not_included_cidr",
	[SL_CR_EXCLUDED_PORT] = "excluded_port",
	[SL_CR_NOT_INCLUDED_PORT] = "not_included_port",
	[SL_CR_DISABLED] = "capture_disabled",
	[SL_CR_NOT_TCP] = "not_tcp",
	[SL_CR_TABLE_FULL] = "table_full",
};

/* Links pinned under the pin root, and the cgroup each goes to.
 * ON_SIDECAR_ONLY: not when the sidecar shares the app's cgroup, where the
 * ON_APP link of the same program already runs (and a second link of one
 * program to one cgroup is refused with EEXIST).
 */
enum { ON_APP, ON_SIDECAR, ON_SIDECAR_ONLY };
static const struct {
	const char *pin;
	int where;
} cap_links[] = {
	{ SL_PIN_LINK_CONNECT4, ON_APP },
	{ SL_PIN_LINK_CONNECT6, ON_APP },
	{ SL_PIN_LINK_GETPEERNAME4, ON_APP },
	{ SL_PIN_LINK_GETPEERNAME6, ON_APP },
	{ SL_PIN_LINK_CAPTURE_SOCKOPS, ON_APP },
	{ SL_PIN_LINK_GETSOCKOPT, ON_SIDECAR },
	{ SL_PIN_LINK_CAPTURE_SOCKOPS_SIDECAR, ON_SIDECAR_ONLY },
};
#define N_CAP_LINKS (sizeof(cap_links) / sizeof(cap_links[0]))

static struct bpf_program *cap_prog(struct capture_bpf *skel, size_t i)
{
	struct bpf_program *progs[N_CAP_LINKS] = {
		skel->progs.sl_connect4,	skel->progs.sl_connect6,
		skel->progs.sl_getpeername4,	skel->progs.sl_getpeername6,
		skel->progs.sl_capture_sockops, skel->progs.sl_getsockopt,
		skel->progs.sl_capture_sockops,
	};

	return progs[i];
}

/* Map names of this object, for detach (the object is the authority). The
 * socket storage maps (sl_cap_sk, sl_origdst_sk) are not pinned: user space
 * can only read them through a socket of its own, and their programs hold
 * them.
 */
static const char *const cap_maps[] = {
	SL_MAP_CAPTURE_CFG, SL_MAP_CAPTURE_PORTS, SL_MAP_CAP_INCL4,	SL_MAP_CAP_EXCL4,
	SL_MAP_CAP_INCL6,	  SL_MAP_CAP_EXCL6,     SL_MAP_POLICY4_0,	SL_MAP_POLICY4_1,
	SL_MAP_POLICY6_0,	  SL_MAP_POLICY6_1,     SL_MAP_POLICY_STATE, SL_MAP_POLICY_HITS,
	SL_MAP_ORIG_BY_COOKIE, SL_MAP_ORIG_BY_ADDR, SL_MAP_CAPTURE_STATS,
	SL_MAP_CONNECT_REASON,
};

int sl_cap_detach(const char *pin_root)
{
	int err = 0, e;
	size_t i;

	for (i = 0; i < N_CAP_LINKS; i++) {
		e = sl_pin_link_detach(pin_root, cap_links[i].pin);
		err = err ?: e;
	}
	for (i = 0; i < sizeof(cap_maps) / sizeof(cap_maps[0]); i++) {
		e = sl_pin_unlink(pin_root, cap_maps[i]);
		err = err ?: e;
	}
	return err;
}

static int map_fd(const char *pin_root, const char *name)
{
	int fd = sl_pin_open(pin_root, name);

	if (fd < 0)
		pr_warn("%s/%s: %s (is capture attached?)\n", pin_root, name,
			strerror(-fd));
	return fd;
}

/* Empty a pinned map (keys of at most 64 bytes). */
static void map_clear(int fd)
{
	char key[64];

	while (!bpf_map_get_next_key(fd, NULL, key))
		if (bpf_map_delete_elem(fd, key))
			break;
}

static int cidr_trie_fill(const char *pin_root, const char *name4,
			  const char *name6, const struct sl_cidr *c,
			  unsigned int n)
{
	int fd4 = map_fd(pin_root, name4), fd6 = map_fd(pin_root, name6);
	int err = 0;
	unsigned int i;
	__u8 one = 1;

	if (fd4 < 0 || fd6 < 0) {
		err = fd4 < 0 ? fd4 : fd6;
		goto out;
	}
	map_clear(fd4);
	map_clear(fd6);
	for (i = 0; i < n && !err; i++) {
		if (c[i].family == AF_INET) {
			struct sl_lpm4 k = { .prefixlen = c[i].prefixlen };

			memcpy(k.addr, c[i].addr, 4);
			err = bpf_map_update_elem(fd4, &k, &one, BPF_ANY) ? -errno : 0;
		} else {
			struct sl_lpm6 k = { .prefixlen = c[i].prefixlen };

			memcpy(k.addr, c[i].addr, 16);
			err = bpf_map_update_elem(fd6, &k, &one, BPF_ANY) ? -errno : 0;
		}
	}
out:
	if (fd4 >= 0)
		close(fd4);
	if (fd6 >= 0)
		close(fd6);
	return err;
}

static void set_port_bits(__u64 *words, const struct sl_port_range *r,
			  unsigned int n)
{
	unsigned int i, p;

	for (i = 0; i < n; i++)
		for (p = r[i].lo; p <= r[i].hi; p++)
			words[p >> 6] |= 1ULL << (p & 63);
}

static void endpoint_ip(const struct sl_endpoint *e, __u8 out[16])
{
	if (e->addr.ss_family == AF_INET)
		sl_addr_to_key(AF_INET,
			       &((const struct sockaddr_in *)&e->addr)->sin_addr, out);
	else
		sl_addr_to_key(AF_INET6,
			       &((const struct sockaddr_in6 *)&e->addr)->sin6_addr,
			       out);
}

static uint16_t endpoint_port(const struct sl_endpoint *e)
{
	return ntohs(e->addr.ss_family == AF_INET ?
			     ((const struct sockaddr_in *)&e->addr)->sin_port :
			     ((const struct sockaddr_in6 *)&e->addr)->sin6_port);
}

/* Write cfg->capture into the maps. The include list being empty means all
 * ports; the IPv6 listener is [::1] on the same port as the IPv4 one.
 */
static int capture_maps_write(const char *pin_root,
			      const struct sl_config *cfg, int same_cgroup)
{
	static const __u8 v6_loopback[16] = { [15] = 1 };
	struct sl_port_bits *bits = NULL;
	struct sl_capture_cfg cc = {};
	int fd = -1, err;
	__u32 zero = 0;

	/* connect4 rewrites to an IPv4 address; IPv6 goes to [::1] on the
	 * same port.
	 */
	if (cfg->capture.outbound.addr.ss_family != AF_INET) {
		pr_warn("capture.outbound must be an IPv4 loopback address "
			"(IPv6 captures go to [::1] on the same port)\n");
		return -EINVAL;
	}
	cc.enabled = cfg->capture.enabled;
	cc.mark = cfg->capture.mark;
	cc.mark_exempts = same_cgroup;
	endpoint_ip(&cfg->capture.outbound, cc.outbound_ip4);
	memcpy(cc.outbound_ip6, v6_loopback, 16);
	cc.outbound_port = endpoint_port(&cfg->capture.outbound);
	cc.include_all_ports = !cfg->capture.n_include_ports;

	err = cidr_trie_fill(pin_root, SL_MAP_CAP_INCL4, SL_MAP_CAP_INCL6,
			     cfg->capture.include_cidrs,
			     cfg->capture.n_include_cidrs);
	if (!err)
		err = cidr_trie_fill(pin_root, SL_MAP_CAP_EXCL4, SL_MAP_CAP_EXCL6,
				     cfg->capture.exclude_cidrs,
				     cfg->capture.n_exclude_cidrs);
	if (err)
		return err;
	bits = calloc(1, sizeof(*bits));
	if (!bits)
		return -ENOMEM;
	set_port_bits(bits->include, cfg->capture.include_ports,
		      cfg->capture.n_include_ports);
	set_port_bits(bits->exclude, cfg->capture.exclude_ports,
		      cfg->capture.n_exclude_ports);
	fd = map_fd(pin_root, SL_MAP_CAPTURE_PORTS);
	if (fd < 0) {
		err = fd;
		goto out;
	}
	err = bpf_map_update_elem(fd, &zero, bits, BPF_ANY) ? -errno : 0;
	close(fd);
	/* The switch goes last: capture starts with its settings in place. */
	fd = map_fd(pin_root, SL_MAP_CAPTURE_CFG);
	if (!err && fd >= 0)
		err = bpf_map_update_elem(fd, &zero, &cc, BPF_ANY) ? -errno : 0;
	if (fd >= 0)
		close(fd);
out:
	free(bits);
	return err;
}

/* Attach or verify one link: pinned ones are reused if they serve the right
 * cgroup (a changed cgroup is refused; detach first).
 */
static int ensure_link(const char *pin_root, struct bpf_program *prog,
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

/* The app's and the sidecar's cgroups as paths, and whether the sidecar is
 * in (or under) the app's: then the proxy's own connects would be captured
 * too, and only SO_MARK tells them apart. 0 or -errno.
 */
static int resolve_cgroups(const char *app_cgroup, const char *sidecar_cgroup,
			   const struct sl_config *cfg, char *app, char *side,
			   bool *same)
{
	uint64_t app_id, side_id = 0;
	int err;

	err = sl_cgroup_resolve(app_cgroup, app, PATH_MAX);
	/* No sidecar cgroup: policy only, nothing answers SO_ORIGINAL_DST. */
	side[0] = '\0';
	if (!err && sidecar_cgroup)
		err = sl_cgroup_resolve(sidecar_cgroup, side, PATH_MAX);
	if (err)
		return err;
	if (!side[0] && cfg->capture.enabled) {
		pr_warn("capture needs the sidecar's cgroup\n");
		return -EINVAL;
	}
	/* By id, not by path: two spellings can name one cgroup. */
	err = sl_cgroup_id(app, &app_id);
	if (!err && side[0])
		err = sl_cgroup_id(side, &side_id);
	if (err)
		return err;
	/* The connect hooks also run for every cgroup below the app's: a
	 * sidecar there (app cgroup = the pod, sidecar container under it) is
	 * as exposed as one in the same cgroup, and needs the mark as much.
	 * realpath()ed by sl_cgroup_resolve, so a prefix test is exact.
	 */
	*same = side[0] && (app_id == side_id ||
			    (!strncmp(side, app, strlen(app)) &&
			     side[strlen(app)] == '/'));
	/* SO_MARK is honoured only in this case. Say it: it is rarely meant,
	 * and any app process with CAP_NET_RAW can then opt out of capture
	 * (not of policy) by setting the mark.
	 */
	if (*same)
		pr_info("note: the sidecar is in (or under) the app's cgroup; its upstream "
			"connects are told apart by SO_MARK only\n");
	return 0;
}

/* Never mix: pinned maps of another layout are refused first. */
static int pins_check(const char *pin_root)
{
	struct capture_bpf *skel = capture_bpf__open();
	int err;

	if (!skel)
		return -errno;
	sl_obj_size_maps(skel->obj, pin_root);
	err = sl_obj_check_pins(skel->obj, pin_root);
	capture_bpf__destroy(skel);
	return err;
}

/* On a restart the config's policy is the declared state and replaces the
 * live one; a config that declares none keeps the live rules (edited with
 * `sidelane policy`), and the log says which happened.
 */
static int policy_restore(const char *pin_root, const struct sl_config *cfg,
			  bool restart)
{
	int err;

	if (!restart)
		return sl_policy_apply(pin_root, &cfg->policy, NULL, 0);
	if (!cfg->policy.n_rules && cfg->policy.default_action != SL_ACTION_DENY) {
		pr_info("policy: the config declares none; the live rules stay "
			"(`sidelane policy list`)\n");
		return 0;
	}
	err = sl_policy_apply(pin_root, &cfg->policy, NULL, 0);
	if (!err)
		pr_info("policy: the config's %u rules replace the live ones\n",
			cfg->policy.n_rules);
	return err;
}

/* Links that do not apply: those on the sidecar's cgroup without one, and
 * the sidecar-only ones when the sidecar shares the app's cgroup.
 */
static bool link_skipped(size_t i, const char *side, bool same)
{
	return (cap_links[i].where != ON_APP && !side[0]) ||
	       (cap_links[i].where == ON_SIDECAR_ONLY && same);
}

int sl_cap_attach(const char *pin_root, const char *app_cgroup,
		  const char *sidecar_cgroup, const struct sl_config *cfg)
{
	char app[PATH_MAX], side[PATH_MAX];
	struct capture_bpf *skel = NULL;
	bool reuse = true, same = false;
	int err, created;
	size_t i;

	err = sl_pin_root_ensure(pin_root, &created);
	if (!err)
		err = resolve_cgroups(app_cgroup, sidecar_cgroup, cfg, app, side,
				      &same);
	if (!err)
		err = pins_check(pin_root);
	if (err)
		return err;
	/* All pinned: only the settings are (re)applied. */
	for (i = 0; i < N_CAP_LINKS && reuse; i++) {
		if (link_skipped(i, side, same))
			continue;
		err = ensure_link(pin_root, NULL, cap_links[i].pin,
				  cap_links[i].where == ON_APP ? app : side);
		if (err && err != -ENOENT)
			return err;
		reuse = !err;
	}
	if (!reuse) {
		skel = capture_bpf__open();
		if (!skel)
			return -errno;
		sl_obj_size_maps(skel->obj, pin_root);
		err = sl_obj_pin_maps(skel->obj, pin_root, 1);
		if (!err)
			err = capture_bpf__load(skel);
		if (err) {
			pr_warn("loading the capture programs failed: %s\n",
				strerror(-err));
			goto out;
		}
	}
	/* Settings before links: no connect is captured with half a config. */
	err = capture_maps_write(pin_root, cfg, same);
	if (!err)
		err = policy_restore(pin_root, cfg, reuse);
	for (i = 0; i < N_CAP_LINKS && !err && !reuse; i++)
		if (!link_skipped(i, side, same))
			err = ensure_link(pin_root, cap_prog(skel, i),
					  cap_links[i].pin,
					  cap_links[i].where == ON_APP ? app : side);
	if (err)
		goto out;
	pr_info("capture %s for %s, SO_ORIGINAL_DST in %s\n",
		cfg->capture.enabled ? "on" : "off (policy only)", app,
		side[0] ? side : "no cgroup");
out:
	if (err && !reuse)
		sl_cap_detach(pin_root);
	capture_bpf__destroy(skel);
	return err;
}

/* ---- policy ----------------------------------------------------------- */

static const char *const policy_maps[2][2] = {
	{ SL_MAP_POLICY4_0, SL_MAP_POLICY6_0 },
	{ SL_MAP_POLICY4_1, SL_MAP_POLICY6_1 },
};

static void cidr_str(const struct sl_cidr *c, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];

	inet_ntop(c->family, c->addr, a, sizeof(a));
	snprintf(buf, len, "%s/%u", a, c->prefixlen);
}

static int same_cidr(const struct sl_cidr *a, const struct sl_cidr *b)
{
	return a->family == b->family && a->prefixlen == b->prefixlen &&
	       !memcmp(a->addr, b->addr, a->family == AF_INET ? 4 : 16);
}

/* One trie value per distinct prefix, holding that prefix's rules in file
 * order. Grouped here: a trie lookup returns the longest match, not the
 * exact prefix, so it cannot tell whether a prefix is already stored.
 */
static int fill_generation(int fd4, int fd6, const struct sl_policy *pol,
			   char *err, size_t errlen)
{
	unsigned int i, j, k;

	map_clear(fd4);
	map_clear(fd6);
	for (i = 0; i < pol->n_rules; i++) {
		const struct sl_cidr *c = &pol->rules[i].cidr;
		struct sl_policy_val val = {};
		union {
			struct sl_lpm4 k4;
			struct sl_lpm6 k6;
		} key = {};
		char buf[64];

		for (j = 0; j < i && !same_cidr(&pol->rules[j].cidr, c); j++)
			;
		if (j < i)
			continue; /* written with the first rule of its prefix */
		for (j = i; j < pol->n_rules; j++) {
			const struct sl_rule *r = &pol->rules[j];
			unsigned int nr = r->n_ports ? r->n_ports : 1;

			if (!same_cidr(&r->cidr, c))
				continue;
			if (val.n + nr > SL_POLICY_PER_PREFIX) {
				cidr_str(c, buf, sizeof(buf));
				if (err)
					snprintf(err, errlen,
						 "rule %u: more than %d port ranges share prefix %s",
						 r->id, SL_POLICY_PER_PREFIX, buf);
				return -E2BIG;
			}
			for (k = 0; k < nr; k++) {
				struct sl_policy_ent *e = &val.ent[val.n++];

				e->rule_id = r->id;
				e->action = r->action == SL_ACTION_DENY ?
						    SL_ACTION_DENY_V :
						    SL_ACTION_ALLOW_V;
				e->lo = r->n_ports ? r->ports[k].lo : 0;
				e->hi = r->n_ports ? r->ports[k].hi : 0;
			}
		}
		if (c->family == AF_INET) {
			key.k4.prefixlen = c->prefixlen;
			memcpy(key.k4.addr, c->addr, 4);
		} else {
			key.k6.prefixlen = c->prefixlen;
			memcpy(key.k6.addr, c->addr, 16);
		}
		if (bpf_map_update_elem(c->family == AF_INET ? fd4 : fd6, &key,
					&val, BPF_ANY)) {
			if (err)
				snprintf(err, errlen, "rule %u: %s",
					 pol->rules[i].id, strerror(errno));
			return -errno;
		}
	}
	return 0;
}

int sl_policy_lock(const char *pin_root)
{
	int fd = open(pin_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC), err;

	if (fd < 0)
		return -errno;
	/* Blocking: a writer holds it for milliseconds, and polling with
	 * LOCK_NB would let a busy writer starve the others. flock belongs to
	 * the open file: the same process taking it again through another fd
	 * waits for itself forever (see capture_user.h).
	 */
	while (flock(fd, LOCK_EX)) {
		if (errno == EINTR)
			continue;
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

void sl_policy_unlock(int lock)
{
	if (lock >= 0)
		close(lock); /* drops the flock */
}

int sl_policy_apply(const char *pin_root, const struct sl_policy *pol,
		    char *err, size_t errlen)
{
	int lock = sl_policy_lock(pin_root), ret;

	if (lock < 0) {
		if (err)
			snprintf(err, errlen, "%s: policy lock: %s", pin_root,
				 strerror(-lock));
		return lock;
	}
	ret = sl_policy_apply_locked(pin_root, pol, err, errlen);
	sl_policy_unlock(lock);
	return ret;
}

static bool policy_has_rule(const struct sl_policy *pol, __u32 id)
{
	unsigned int i;

	for (i = 0; i < pol->n_rules; i++)
		if (pol->rules[i].id == id)
			return true;
	return false;
}

/* Drop the counters of rules the swap removed: sl_policy_hits has room for
 * two sets only. A connect still deciding by the old set finds no counter
 * and counts nothing, for a rule status no longer lists.
 */
static void prune_hits(int hits_fd, const struct sl_policy *pol)
{
	__u32 key, next, *prev = NULL;

	while (!bpf_map_get_next_key(hits_fd, prev, &next)) {
		key = next;
		if (key && !policy_has_rule(pol, key) &&
		    !bpf_map_delete_elem(hits_fd, &key))
			continue; /* deleted: prev, still there, leads on */
		prev = &key;
	}
}

int sl_policy_apply_locked(const char *pin_root, const struct sl_policy *pol,
			   char *err, size_t errlen)
{
	int fd4 = -1, fd6 = -1, st_fd, hits_fd = -1, ret;
	struct sl_policy_state ps = {};
	__u32 zero = 0, next, id;
	__u64 none = 0;
	unsigned int i;

	st_fd = map_fd(pin_root, SL_MAP_POLICY_STATE);
	if (st_fd < 0)
		return st_fd;
	if (bpf_map_lookup_elem(st_fd, &zero, &ps)) {
		ret = -errno;
		goto out;
	}
	next = (ps.gen + 1) & 1; /* idle: no reader trusts a lookup in it */
	fd4 = map_fd(pin_root, policy_maps[next][0]);
	fd6 = map_fd(pin_root, policy_maps[next][1]);
	hits_fd = map_fd(pin_root, SL_MAP_POLICY_HITS);
	if (fd4 < 0 || fd6 < 0 || hits_fd < 0) {
		ret = -ENOENT;
		goto out;
	}
	/* The live generation is untouched until the flip below. */
	ret = fill_generation(fd4, fd6, pol, err, errlen);
	if (ret)
		goto out;
	/* Hit counters exist for every rule (and 0, the default) before any
	 * connect can reach them; counts of rules that stay are kept.
	 */
	for (i = 0; i <= pol->n_rules; i++) {
		id = i < pol->n_rules ? pol->rules[i].id : 0;
		bpf_map_update_elem(hits_fd, &id, &none, BPF_NOEXIST);
	}
	/* Two writes, so no reader pairs the new gen with an old default:
	 * first the default of the generation not yet live, then the flip
	 * (gen + 1: readers that started before it retry, see
	 * struct sl_policy_state).
	 */
	ps.default_action[next] = pol->default_action == SL_ACTION_DENY ?
					  SL_ACTION_DENY_V :
					  SL_ACTION_ALLOW_V;
	if (bpf_map_update_elem(st_fd, &zero, &ps, BPF_ANY)) {
		ret = -errno;
		goto out;
	}
	ps.gen++;
	/* An empty allow-all set is "no policy", and status says so. */
	ps.configured = pol->n_rules || pol->default_action == SL_ACTION_DENY;
	ret = bpf_map_update_elem(st_fd, &zero, &ps, BPF_ANY) ? -errno : 0;
	if (!ret)
		prune_hits(hits_fd, pol);
out:
	if (fd4 >= 0)
		close(fd4);
	if (fd6 >= 0)
		close(fd6);
	if (hits_fd >= 0)
		close(hits_fd);
	close(st_fd);
	return ret;
}

/* Append the rules stored in one trie to pol, rebuilding sl_rule entries. */
static void read_trie(int fd, int family, struct sl_policy *pol)
{
	union {
		struct sl_lpm4 k4;
		struct sl_lpm6 k6;
	} key, next;
	struct sl_policy_val val;
	void *prev = NULL;
	unsigned int i;

	while (!bpf_map_get_next_key(fd, prev, &next)) {
		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(fd, &key, &val))
			continue;
		for (i = 0; i < val.n && i < SL_POLICY_PER_PREFIX; i++) {
			const struct sl_policy_ent *e = &val.ent[i];
			struct sl_rule *r = pol->n_rules ?
						    &pol->rules[pol->n_rules - 1] :
						    NULL;

			/* Consecutive entries of one rule are its port ranges. */
			if (!r || r->id != e->rule_id || i == 0) {
				if (pol->n_rules == SL_CFG_MAX_RULES)
					return;
				r = &pol->rules[pol->n_rules++];
				memset(r, 0, sizeof(*r));
				r->id = e->rule_id;
				r->action = e->action == SL_ACTION_DENY_V ?
						    SL_ACTION_DENY :
						    SL_ACTION_ALLOW;
				r->cidr.family = family;
				r->cidr.prefixlen = family == AF_INET ?
							    key.k4.prefixlen :
							    key.k6.prefixlen;
				memcpy(r->cidr.addr,
				       family == AF_INET ? key.k4.addr : key.k6.addr,
				       family == AF_INET ? 4 : 16);
			}
			if (e->hi && r->n_ports < SL_CFG_MAX_RULE_PORTS)
				r->ports[r->n_ports++] =
					(struct sl_port_range){ e->lo, e->hi };
		}
	}
}

int sl_policy_read(const char *pin_root, struct sl_policy *pol, int *configured,
		   struct sl_policy_hit *hits, unsigned int max_hits,
		   unsigned int *n_hits)
{
	struct sl_policy_state ps = {};
	int st_fd, fd4, fd6, hits_fd, err = 0;
	__u32 zero = 0, key, *prev = NULL;

	memset(pol, 0, sizeof(*pol));
	*n_hits = 0;
	st_fd = map_fd(pin_root, SL_MAP_POLICY_STATE);
	if (st_fd < 0)
		return st_fd;
	if (bpf_map_lookup_elem(st_fd, &zero, &ps))
		err = -errno;
	close(st_fd);
	if (err)
		return err;
	*configured = ps.configured;
	pol->default_action = ps.default_action[ps.gen & 1] == SL_ACTION_DENY_V ?
				      SL_ACTION_DENY :
				      SL_ACTION_ALLOW;
	if (!ps.configured)
		return 0;
	fd4 = map_fd(pin_root, policy_maps[ps.gen & 1][0]);
	fd6 = map_fd(pin_root, policy_maps[ps.gen & 1][1]);
	if (fd4 >= 0)
		read_trie(fd4, AF_INET, pol);
	if (fd6 >= 0)
		read_trie(fd6, AF_INET6, pol);
	if (fd4 >= 0)
		close(fd4);
	if (fd6 >= 0)
		close(fd6);
	hits_fd = map_fd(pin_root, SL_MAP_POLICY_HITS);
	if (hits_fd < 0)
		return 0;
	while (*n_hits < max_hits && !bpf_map_get_next_key(hits_fd, prev, &key)) {
		hits[*n_hits].rule_id = key;
		if (bpf_map_lookup_elem(hits_fd, &key, &hits[*n_hits].hits))
			hits[*n_hits].hits = 0;
		prev = &hits[(*n_hits)++].rule_id;
	}
	close(hits_fd);
	return 0;
}

int sl_cap_status(const char *pin_root, struct sl_cap_status *st)
{
	struct sl_policy_state ps = {};
	struct bpf_link_info info = {};
	__u32 zero = 0, len = sizeof(info);
	__u64 key, next, *prev = NULL;
	int fd;

	memset(st, 0, sizeof(*st));
	fd = sl_pin_open(pin_root, SL_PIN_LINK_CONNECT4);
	if (fd < 0)
		return fd;
	st->attached = 1;
	close(fd);
	fd = sl_pin_open(pin_root, SL_PIN_LINK_GETSOCKOPT);
	if (fd >= 0) {
		if (!bpf_obj_get_info_by_fd(fd, &info, &len))
			sl_cgroup_path_by_id(info.cgroup.cgroup_id,
					     st->sidecar_cgroup,
					     sizeof(st->sidecar_cgroup));
		close(fd);
	}
	fd = sl_pin_open(pin_root, SL_MAP_CAPTURE_CFG);
	if (fd >= 0) {
		bpf_map_lookup_elem(fd, &zero, &st->cfg);
		close(fd);
	}
	fd = sl_pin_open(pin_root, SL_MAP_CAPTURE_STATS);
	if (fd >= 0) {
		sl_percpu_sum_u64(fd, 0, &st->stats, sizeof(st->stats));
		close(fd);
	}
	fd = sl_pin_open(pin_root, SL_MAP_ORIG_BY_COOKIE);
	if (fd >= 0) {
		/* Sockets whose SYN went out and that have not closed. */
		while (!bpf_map_get_next_key(fd, prev, &next)) {
			key = next;
			prev = &key;
			st->captured_live++;
		}
		close(fd);
	}
	fd = sl_pin_open(pin_root, SL_MAP_POLICY_STATE);
	if (fd >= 0) {
		if (!bpf_map_lookup_elem(fd, &zero, &ps))
			st->policy_configured = ps.configured;
		close(fd);
	}
	return 0;
}

/* ---- the proxy's policy check ----------------------------------------- */

void sl_policy_checker_close(struct sl_policy_checker *c)
{
	int i;

	if (c->st_fd >= 0)
		close(c->st_fd);
	for (i = 0; i < 4; i++)
		if (c->trie_fd[i / 2][i % 2] >= 0)
			close(c->trie_fd[i / 2][i % 2]);
	memset(c, 0xff, sizeof(*c));
}

int sl_policy_checker_open(const char *pin_root, struct sl_policy_checker *c)
{
	int i;

	memset(c, 0xff, sizeof(*c));
	c->st_fd = map_fd(pin_root, SL_MAP_POLICY_STATE);
	for (i = 0; i < 4 && c->st_fd >= 0; i++)
		c->trie_fd[i / 2][i % 2] =
			map_fd(pin_root, policy_maps[i / 2][i % 2]);
	for (i = 0; i < 4 && c->st_fd >= 0; i++)
		if (c->trie_fd[i / 2][i % 2] < 0)
			break;
	if (c->st_fd < 0 || i < 4) {
		sl_policy_checker_close(c);
		return -ENOENT;
	}
	return 0;
}

/* Same decision as the connect hooks: v4-mapped judged as IPv4, the live
 * generation read as a seqcount (see struct sl_policy_state),
 * sl_policy_match() on the longest prefix. Fails closed: -EPERM when the
 * state cannot be read or a reload overtook both attempts.
 */
int sl_policy_check(void *ctx, const struct sockaddr *dst, uint32_t *rule_id)
{
	struct sl_policy_checker *c = ctx;
	struct sl_policy_state ps = {}, ps2 = {};
	struct sl_policy_val val;
	union {
		struct sl_lpm4 k4;
		struct sl_lpm6 k6;
	} k = {};
	__u32 zero = 0, gen, id = 0;
	__u8 ip[16];
	int v4, action = 0, fam, try;
	uint16_t port;

	*rule_id = 0;
	if (dst->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const void *)dst;

		sl_addr_to_key(AF_INET, &s4->sin_addr, ip);
		port = ntohs(s4->sin_port);
	} else {
		const struct sockaddr_in6 *s6 = (const void *)dst;

		sl_addr_to_key(AF_INET6, &s6->sin6_addr, ip);
		port = ntohs(s6->sin6_port);
	}
	v4 = sl_addr_is_v4mapped(ip);
	fam = v4 ? 0 : 1;
	if (v4) {
		k.k4.prefixlen = 32;
		memcpy(k.k4.addr, ip + 12, 4);
	} else {
		k.k6.prefixlen = 128;
		memcpy(k.k6.addr, ip, 16);
	}
	for (try = 0; try < 2; try++) {
		if (bpf_map_lookup_elem(c->st_fd, &zero, &ps))
			return -EPERM;
		if (!ps.configured)
			return 0;
		gen = ps.gen & 1;
		action = 0;
		id = 0;
		if (!bpf_map_lookup_elem(c->trie_fd[gen][fam], &k, &val))
			action = sl_policy_match(&val, port, &id);
		if (!action) {
			action = ps.default_action[gen] ?: SL_ACTION_ALLOW_V;
			id = 0;
		}
		/* Each lookup is a syscall: the reads are ordered. */
		if (bpf_map_lookup_elem(c->st_fd, &zero, &ps2))
			return -EPERM;
		if (ps2.gen == ps.gen) {
			*rule_id = id;
			return action == SL_ACTION_DENY_V ? -EPERM : 0;
		}
	}
	return -EPERM; /* two reloads overtook us: fail closed */
}

/* From the LRU index: a socket's storage cannot be read by cookie. */
int sl_cap_orig(const char *pin_root, uint64_t cookie, struct sl_orig *out)
{
	int fd = sl_pin_open(pin_root, SL_MAP_ORIG_BY_COOKIE), err;

	if (fd < 0)
		return fd;
	err = bpf_map_lookup_elem(fd, &cookie, out) ? -errno : 0;
	close(fd);
	return err;
}

