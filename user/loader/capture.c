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
#include "loader/policy_user.h"
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

/* The trie's key of c (an sl_lpm4 or sl_lpm6, by family). */
static size_t cidr_key(const struct sl_cidr *c, void *key)
{
	struct sl_lpm6 *k6 = key;
	struct sl_lpm4 *k4 = key;

	if (c->family == AF_INET) {
		memset(k4, 0, sizeof(*k4));
		k4->prefixlen = c->prefixlen;
		memcpy(k4->addr, c->addr, 4);
		return sizeof(*k4);
	}
	memset(k6, 0, sizeof(*k6));
	k6->prefixlen = c->prefixlen;
	memcpy(k6->addr, c->addr, 16);
	return sizeof(*k6);
}

/* Make the trie of family hold exactly the prefixes of c of that family:
 * the new ones are added first, then those no longer wanted go, so a
 * prefix in both the old and the new set is never missing (a reload
 * changes them under live connects).
 */
static int cidr_trie_set(int fd, int family, const struct sl_cidr *c,
			 unsigned int n)
{
	struct sl_lpm6 key, next, want, *gone;
	unsigned int i, n_gone = 0, max_gone = SL_CFG_MAX_CIDRS * 4;
	void *prev = NULL;
	size_t klen;
	__u8 one = 1;
	int err = 0;

	for (i = 0; i < n && !err; i++)
		if (c[i].family == family) {
			cidr_key(&c[i], &key);
			err = bpf_map_update_elem(fd, &key, &one, BPF_ANY) ?
				      -errno : 0;
		}
	gone = calloc(max_gone, sizeof(*gone));
	if (!gone)
		return err ?: -ENOMEM;
	klen = family == AF_INET ? sizeof(struct sl_lpm4) : sizeof(key);
	/* the keys to delete first: a delete would restart the walk */
	while (!err && n_gone < max_gone &&
	       !bpf_map_get_next_key(fd, prev, &next)) {
		bool keep = false;

		for (i = 0; i < n && !keep; i++)
			keep = c[i].family == family &&
			       cidr_key(&c[i], &want) == klen &&
			       !memcmp(&want, &next, klen);
		if (!keep)
			memcpy(&gone[n_gone++], &next, klen);
		key = next;
		prev = &key;
	}
	for (i = 0; i < n_gone && !err; i++)
		if (bpf_map_delete_elem(fd, &gone[i]) && errno != ENOENT)
			err = -errno;
	free(gone);
	return err;
}

static int cidr_trie_fill(const char *pin_root, const char *name4,
			  const char *name6, const struct sl_cidr *c,
			  unsigned int n)
{
	int fd4 = sl_pin_open_said(pin_root, name4), fd6 = sl_pin_open_said(pin_root, name6);
	int err;

	err = fd4 < 0 ? fd4 : fd6 < 0 ? fd6 : 0;
	if (!err)
		err = cidr_trie_set(fd4, AF_INET, c, n);
	if (!err)
		err = cidr_trie_set(fd6, AF_INET6, c, n);
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
	cc.outbound_port = sl_endpoint_port(&cfg->capture.outbound);
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
	fd = sl_pin_open_said(pin_root, SL_MAP_CAPTURE_PORTS);
	if (fd < 0) {
		err = fd;
		goto out;
	}
	err = bpf_map_update_elem(fd, &zero, bits, BPF_ANY) ? -errno : 0;
	close(fd);
	/* The switch goes last: capture starts with its settings in place. */
	fd = sl_pin_open_said(pin_root, SL_MAP_CAPTURE_CFG);
	if (!err && fd >= 0)
		err = bpf_map_update_elem(fd, &zero, &cc, BPF_ANY) ? -errno : 0;
	if (fd >= 0)
		close(fd);
out:
	free(bits);
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
		err = sl_cgroup_link_ensure(pin_root, NULL, cap_links[i].pin,
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
			err = sl_cgroup_link_ensure(pin_root, cap_prog(skel, i),
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

int sl_cap_update(const char *pin_root, const struct sl_config *cfg)
{
	struct sl_capture_cfg cc;
	int err;

	/* whether the sidecar shares the app's cgroup was found at attach */
	err = sl_pin_slot0(pin_root, SL_MAP_CAPTURE_CFG, &cc, false);
	return err ?: capture_maps_write(pin_root, cfg, cc.mark_exempts);
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

