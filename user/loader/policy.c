// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* L3/L4 policy in the capture's maps (see capture_user.h): a rule set is
 * written into the generation not in use and made live by one switch, so
 * a reload is atomic (struct sl_policy_state); read back for `policy list`
 * and status; and the check the proxy makes before it connects upstream.
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
#include "policy.h"
#include "loader/policy_user.h"
#include "loader/fastpath_user.h"
#include "lib/cgroup.h"
#include "lib/log.h"
#include "lib/util.h"

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

	sl_map_clear(fd4);
	sl_map_clear(fd6);
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

	st_fd = sl_pin_open_said(pin_root, SL_MAP_POLICY_STATE);
	if (st_fd < 0)
		return st_fd;
	if (bpf_map_lookup_elem(st_fd, &zero, &ps)) {
		ret = -errno;
		goto out;
	}
	next = (ps.gen + 1) & 1; /* idle: no reader trusts a lookup in it */
	fd4 = sl_pin_open_said(pin_root, policy_maps[next][0]);
	fd6 = sl_pin_open_said(pin_root, policy_maps[next][1]);
	hits_fd = sl_pin_open_said(pin_root, SL_MAP_POLICY_HITS);
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
	st_fd = sl_pin_open_said(pin_root, SL_MAP_POLICY_STATE);
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
	fd4 = sl_pin_open_said(pin_root, policy_maps[ps.gen & 1][0]);
	fd6 = sl_pin_open_said(pin_root, policy_maps[ps.gen & 1][1]);
	if (fd4 >= 0)
		read_trie(fd4, AF_INET, pol);
	if (fd6 >= 0)
		read_trie(fd6, AF_INET6, pol);
	if (fd4 >= 0)
		close(fd4);
	if (fd6 >= 0)
		close(fd6);
	hits_fd = sl_pin_open_said(pin_root, SL_MAP_POLICY_HITS);
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
	c->st_fd = sl_pin_open_said(pin_root, SL_MAP_POLICY_STATE);
	for (i = 0; i < 4 && c->st_fd >= 0; i++)
		c->trie_fd[i / 2][i % 2] =
			sl_pin_open_said(pin_root, policy_maps[i / 2][i % 2]);
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
