// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Inbound capture (user side): load bpf/inbound.bpf.c, pin its maps and its
 * sk_lookup link under the pin folder, attach the link to the caller's
 * network namespace, fill the captured ports and the sidecar's listeners;
 * read it back for status; remove it for detach. A restart reuses the
 * pinned link and only refills the maps.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "config/config.h"
#include "lib/cgroup.h"
#include "loader/pins.h"
#include "sidelane.h"
#include "inbound.h"
#include "inbound.skel.h"
#include "loader/inbound_user.h"
#include "loader/fastpath_user.h"
#include "lib/log.h"

/* The calling thread's namespace: /proc/self would be the main thread's,
 * which a thread that called setns() has left.
 */
#define NETNS_SELF "/proc/thread-self/ns/net"

/* Map pins of this object, for detach (the object is the authority), but
 * for sl_local_addrs, which the fast path shares (see unpin_all).
 */
static const char *const in_maps[] = {
	SL_MAP_IN_PORTS,
	SL_MAP_IN_LISTENERS,
	SL_MAP_IN_CFG,
	SL_MAP_IN_STATS,
};

static int check_ranges(const struct sl_port_range *r, unsigned int n,
			const char *what)
{
	unsigned int i;

	if (n && !r)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		if (!r[i].lo || r[i].lo > r[i].hi) {
			pr_warn("inbound %s: bad port range %u-%u\n", what,
				r[i].lo, r[i].hi);
			return -EINVAL;
		}
	}
	return 0;
}

/* fd must be a listening TCP socket of family (or -1: none). */
static int check_listener(int fd, int family, const char *what)
{
	int dom = 0, proto = 0, acc = 0;
	socklen_t l1 = sizeof(dom), l2 = sizeof(proto), l3 = sizeof(acc);

	if (fd < 0)
		return 0;
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &dom, &l1) ||
	    getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &l2) ||
	    getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &l3)) {
		int err = -errno;

		pr_warn("inbound %s (fd %d): %s\n", what, fd, strerror(-err));
		return err;
	}
	if (dom != family || proto != IPPROTO_TCP || !acc) {
		pr_warn("inbound %s (fd %d) must be a listening TCP %s socket\n",
			what, fd, family == AF_INET ? "AF_INET" : "AF_INET6");
		return -EINVAL;
	}
	return 0;
}

/* The pinned link: 0 if it serves the namespace of inode ino; -ENOENT if
 * there is none (one whose namespace is gone is unpinned: the kernel has
 * detached it); -EEXIST if it serves another namespace.
 */
static int pinned_link(const char *pin_dir, __u64 ino)
{
	struct bpf_link_info info = {};
	__u32 len = sizeof(info);
	int fd, err;

	fd = sl_pin_open(pin_dir, SL_PIN_LINK_SK_LOOKUP);
	if (fd < 0)
		return fd;
	err = bpf_obj_get_info_by_fd(fd, &info, &len) ? -errno : 0;
	close(fd);
	if (err)
		return err;
	if (!info.netns.netns_ino) {
		pr_info("%s/%s served a network namespace that is gone: replacing it\n",
			pin_dir, SL_PIN_LINK_SK_LOOKUP);
		err = sl_pin_unlink(pin_dir, SL_PIN_LINK_SK_LOOKUP);
		return err ?: -ENOENT;
	}
	if (info.netns.netns_ino != ino) {
		pr_warn("%s/%s is attached to network namespace inode %u, not to this "
			"thread's (%llu): an sk_lookup link serves one namespace; detach "
			"it from there or use another pin folder\n", pin_dir,
			SL_PIN_LINK_SK_LOOKUP, info.netns.netns_ino,
			(unsigned long long)ino);
		return -EEXIST;
	}
	return 0;
}

static void set_bits(__u64 *bits, const struct sl_port_range *r,
		     unsigned int n, int on)
{
	unsigned int i, p;

	for (i = 0; i < n; i++)
		for (p = r[i].lo; p <= r[i].hi; p++) {
			if (on)
				bits[p >> 6] |= 1ULL << (p & 63);
			else
				bits[p >> 6] &= ~(1ULL << (p & 63));
		}
}

/* Settings, then listeners, then ports: a newly captured port has its
 * listener before its first SYN. The port set is one array element written
 * in one update: a port captured before and after never reads as clear (its
 * bit is set in the old and in the new content), a dropped port stops being
 * steered, a new one starts. The sockmap holds no reference: a slot whose fd
 * is -1 is emptied, and a listener's close() empties its slot by itself.
 */
static int fill_maps(const char *pin_dir, const struct sl_in_opts *o)
{
	const int lfd[SL_IN_N_SLOTS] = { o->listen_fd4, o->listen_fd6 };
	struct sl_in_cfg cfg = { .fail_open = o->fail_open,
				 .listen_port = o->external_port };
	int cfg_fd, lis_fd = -1, ports_fd = -1, err = 0;
	struct sl_in_ports *ports;
	__u32 zero = 0, slot;

	ports = calloc(1, sizeof(*ports));
	if (!ports)
		return -ENOMEM;
	set_bits(ports->bits, o->ports, o->n_ports, 1);
	set_bits(ports->bits, o->exclude, o->n_exclude, 0);
	cfg_fd = sl_pin_open(pin_dir, SL_MAP_IN_CFG);
	if (cfg_fd >= 0)
		lis_fd = sl_pin_open(pin_dir, SL_MAP_IN_LISTENERS);
	if (lis_fd >= 0)
		ports_fd = sl_pin_open(pin_dir, SL_MAP_IN_PORTS);
	if (ports_fd < 0) {
		err = cfg_fd < 0 ? cfg_fd : lis_fd < 0 ? lis_fd : ports_fd;
		pr_warn("inbound maps under %s: %s (a partial attach? `sidelane detach`)\n",
			pin_dir, strerror(-err));
		goto out;
	}
	if (bpf_map_update_elem(cfg_fd, &zero, &cfg, BPF_ANY))
		err = -errno;
	/* external: the slots hold what the kernel took at the foreign
	 * proxy's listen(), maybe before this start
	 */
	for (slot = 0; slot < SL_IN_N_SLOTS && !err && !o->external_port;
	     slot++) {
		__u64 val = lfd[slot];

		if (lfd[slot] >= 0 &&
		    bpf_map_update_elem(lis_fd, &slot, &val, BPF_ANY))
			err = -errno;
		/* A sockmap answers the delete of an empty slot with EINVAL. */
		else if (lfd[slot] < 0 && bpf_map_delete_elem(lis_fd, &slot) &&
			 errno != EINVAL && errno != ENOENT)
			err = -errno;
	}
	if (!err && bpf_map_update_elem(ports_fd, &zero, ports, BPF_ANY))
		err = -errno;
	if (err)
		pr_warn("filling the inbound maps failed: %s\n", strerror(-err));
out:
	if (ports_fd >= 0)
		close(ports_fd);
	if (lis_fd >= 0)
		close(lis_fd);
	if (cfg_fd >= 0)
		close(cfg_fd);
	free(ports);
	return err;
}

/* Other sk_lookup programs of the namespace run too, in attach order; the
 * first to choose a socket wins (ours then passes). Say so.
 */
static void note_others(int ns_fd)
{
	__u32 ids[64], cnt = 64, flags = 0, i;

	if (bpf_prog_query(ns_fd, BPF_SK_LOOKUP, 0, &flags, ids, &cnt))
		return;
	for (i = 0; i < cnt; i++)
		pr_info("note: sk_lookup program id %u is already attached to this "
			"network namespace and runs before ours\n", ids[i]);
}

/* Unpin the link (detaching it now, whoever else holds it) and the maps;
 * sl_local_addrs only when no fast path shares it.
 */
static int unpin_all(const char *pin_dir)
{
	int fd, err = 0, e;
	size_t i;

	err = sl_pin_link_detach(pin_dir, SL_PIN_LINK_SK_LOOKUP);
	e = sl_pin_link_detach(pin_dir, SL_PIN_LINK_IN_LISTEN);
	err = err ?: (e == -ENOENT ? 0 : e);
	for (i = 0; i < sizeof(in_maps) / sizeof(in_maps[0]); i++) {
		e = sl_pin_unlink(pin_dir, in_maps[i]);
		err = err ?: e;
	}
	fd = sl_pin_open(pin_dir, SL_PIN_LINK_SOCKOPS);
	if (fd >= 0) {
		close(fd);
	} else {
		e = sl_pin_unlink(pin_dir, SL_MAP_LOCAL_ADDRS);
		err = err ?: e;
	}
	return err;
}

/* The sk_lookup program on the network namespace ns_fd, its link pinned
 * (the pin keeps it). 0 or -errno (said).
 */
static int link_pin(struct inbound_bpf *skel, const char *pin_dir, int ns_fd)
{
	struct bpf_link *link;
	char path[PATH_MAX];
	int err;

	link = bpf_program__attach_netns(skel->progs.sl_in_lookup, ns_fd);
	if (!link) {
		err = -errno;
		pr_warn("attaching sk_lookup to the network namespace failed: %s\n",
			strerror(-err));
		return err;
	}
	err = sl_pin_path(path, sizeof(path), pin_dir, SL_PIN_LINK_SK_LOOKUP);
	if (!err)
		err = bpf_link__pin(link, path);
	if (err)
		pr_warn("pinning %s failed: %s\n", path, strerror(-err));
	bpf_link__destroy(link); /* closes our fd; the pin keeps the link */
	return err;
}

/* proxy.external: sl_in_listen on the sidecar's cgroup (the programs are
 * loaded here if this start reuses a pinned sk_lookup link); else no such
 * link. 0 or -errno (said).
 */
static int listen_link(struct inbound_bpf *skel, const char *pin_dir,
		       const struct sl_in_opts *o, bool loaded)
{
	char cg[PATH_MAX];
	__u64 cookie;
	__u32 slot;
	int err, fd;

	if (!o->external_port) {
		err = sl_pin_link_detach(pin_dir, SL_PIN_LINK_IN_LISTEN);
		return err == -ENOENT ? 0 : err;
	}
	if (!o->sidecar_cgroup) {
		pr_warn("inbound: proxy.external needs --sidecar-cgroup, the "
			"cgroup the foreign proxy runs in\n");
		return -EINVAL;
	}
	err = sl_cgroup_resolve(o->sidecar_cgroup, cg, sizeof(cg));
	if (!err)
		err = sl_cgroup_link_ensure(pin_dir, NULL, SL_PIN_LINK_IN_LISTEN,
					    cg);
	if (err != -ENOENT)
		return err;
	if (!loaded) {
		err = sl_obj_pin_maps(skel->obj, pin_dir, 0);
		err = err ?: inbound_bpf__load(skel);
		if (err) {
			pr_warn("loading the inbound programs failed: %s\n",
				strerror(-err));
			return err;
		}
	}
	err = sl_cgroup_link_ensure(pin_dir, skel->progs.sl_in_listen,
				    SL_PIN_LINK_IN_LISTEN, cg);
	if (err)
		return err;
	/* a proxy that listened before this link existed was not seen */
	fd = sl_pin_open(pin_dir, SL_MAP_IN_LISTENERS);
	slot = SL_IN_SLOT_V4;
	if (fd >= 0 && bpf_map_lookup_elem(fd, &slot, &cookie)) {
		slot = SL_IN_SLOT_V6;
		if (bpf_map_lookup_elem(fd, &slot, &cookie))
			pr_warn("inbound: no foreign listener on port %u yet: "
				"the one the proxy opens from now on is taken; a "
				"proxy already listening must be restarted\n",
				o->external_port);
	}
	if (fd >= 0)
		close(fd);
	return 0;
}

int sl_in_attach(const char *pin_dir, const struct sl_in_opts *o)
{
	struct inbound_bpf *skel = NULL;
	int ns_fd, created = 0, fresh = 0, err;
	struct stat st;

	err = check_ranges(o->ports, o->n_ports, "ports");
	if (!err)
		err = check_ranges(o->exclude, o->n_exclude, "exclude");
	if (!err)
		err = check_listener(o->listen_fd4, AF_INET, "listen_fd4");
	if (!err)
		err = check_listener(o->listen_fd6, AF_INET6, "listen_fd6");
	if (err)
		return err;
	ns_fd = open(NETNS_SELF, O_RDONLY | O_CLOEXEC);
	if (ns_fd < 0 || fstat(ns_fd, &st)) {
		err = -errno;
		pr_warn("%s: %s\n", NETNS_SELF, strerror(-err));
		goto out;
	}
	err = sl_pin_root_ensure(pin_dir, &created);
	if (err)
		goto out;
	skel = inbound_bpf__open();
	if (!skel) {
		err = -errno;
		goto out;
	}
	/* Never mix: pinned maps of another layout are refused first. */
	err = sl_obj_check_pins(skel->obj, pin_dir);
	if (!err)
		err = pinned_link(pin_dir, st.st_ino);
	if (err && err != -ENOENT)
		goto out;
	fresh = err == -ENOENT;
	if (fresh) {
		err = sl_obj_pin_maps(skel->obj, pin_dir, 0);
		if (!err)
			err = inbound_bpf__load(skel);
		if (err) {
			pr_warn("loading the sk_lookup program failed: %s (maps pinned "
				"under %s from another build? `sidelane detach`)\n",
				strerror(-err), pin_dir);
			goto out;
		}
	}
	/* Settings before the link: its first lookup already sees them. The
	 * addresses are this thread's namespace's (getifaddrs() asks over a
	 * netlink socket of the calling thread).
	 */
	err = fill_maps(pin_dir, o);
	if (!err) {
		err = sl_fp_sync_local_addrs(pin_dir);
		if (err)
			pr_warn("reading this namespace's addresses failed: %s\n",
				strerror(-err));
	}
	if (!err)
		err = listen_link(skel, pin_dir, o, fresh);
	if (err || !fresh)
		goto out;
	note_others(ns_fd);
	err = link_pin(skel, pin_dir, ns_fd);
	if (!err)
		pr_info("inbound capture attached to network namespace %llu, pinned under %s\n",
			(unsigned long long)st.st_ino, pin_dir);
out:
	inbound_bpf__destroy(skel);
	/* A failed first attach leaves nothing behind. */
	if (err && fresh)
		unpin_all(pin_dir);
	if (err && created)
		rmdir(pin_dir);
	if (ns_fd >= 0)
		close(ns_fd);
	return err;
}

void sl_in_opts_from(struct sl_in_opts *o, const struct sl_config *cfg)
{
	*o = (struct sl_in_opts){
		.ports = cfg->inbound.ports,
		.n_ports = cfg->inbound.n_ports,
		.exclude = cfg->inbound.exclude_ports,
		.n_exclude = cfg->inbound.n_exclude_ports,
		.fail_open = cfg->inbound.fail_open,
		.listen_fd4 = -1,
		.listen_fd6 = -1,
	};
}

int sl_in_update(const char *pin_dir, const struct sl_in_opts *o)
{
	struct sl_in_cfg cfg;
	struct sl_in_ports *ports = NULL;
	int cfg_fd, ports_fd = -1, err;
	__u32 zero = 0;

	err = check_ranges(o->ports, o->n_ports, "ports");
	if (!err)
		err = check_ranges(o->exclude, o->n_exclude, "exclude");
	if (err)
		return err;
	cfg_fd = sl_pin_open(pin_dir, SL_MAP_IN_CFG);
	if (cfg_fd < 0)
		return cfg_fd;
	ports_fd = sl_pin_open(pin_dir, SL_MAP_IN_PORTS);
	ports = calloc(1, sizeof(*ports));
	if (ports_fd < 0 || !ports) {
		err = ports_fd < 0 ? ports_fd : -ENOMEM;
		goto out;
	}
	set_bits(ports->bits, o->ports, o->n_ports, 1);
	set_bits(ports->bits, o->exclude, o->n_exclude, 0);
	/* the listener slots and the external port stay as they are */
	if (bpf_map_lookup_elem(cfg_fd, &zero, &cfg))
		err = -errno;
	cfg.fail_open = o->fail_open;
	if (!err && bpf_map_update_elem(cfg_fd, &zero, &cfg, BPF_ANY))
		err = -errno;
	if (!err && bpf_map_update_elem(ports_fd, &zero, ports, BPF_ANY))
		err = -errno;
out:
	free(ports);
	if (ports_fd >= 0)
		close(ports_fd);
	close(cfg_fd);
	return err;
}

int sl_in_detach(const char *pin_dir)
{
	return unpin_all(pin_dir);
}

int sl_in_status(const char *pin_dir, struct sl_in_status *st)
{
	struct bpf_link_info info = {};
	struct sl_in_ports *ports = NULL;
	struct sl_in_stats s = {};
	__u32 len = sizeof(info), zero = 0, slot, i;
	int fd, found = 0;
	__u64 cookie;

	memset(st, 0, sizeof(*st));
	fd = sl_pin_open(pin_dir, SL_PIN_LINK_SK_LOOKUP);
	if (fd >= 0) {
		found = 1;
		st->attached = !bpf_obj_get_info_by_fd(fd, &info, &len) &&
			       info.netns.netns_ino;
		close(fd);
	}
	fd = sl_pin_open(pin_dir, SL_MAP_IN_PORTS);
	if (fd >= 0) {
		found = 1;
		ports = malloc(sizeof(*ports));
		if (ports && !bpf_map_lookup_elem(fd, &zero, ports))
			for (i = 0; i < SL_IN_PORT_WORDS; i++)
				st->n_ports += __builtin_popcountll(ports->bits[i]);
		free(ports);
		close(fd);
	}
	fd = sl_pin_open(pin_dir, SL_MAP_IN_LISTENERS);
	if (fd >= 0) {
		/* A lookup from user space returns the socket's cookie. */
		slot = SL_IN_SLOT_V4;
		st->listener4 = !bpf_map_lookup_elem(fd, &slot, &cookie);
		slot = SL_IN_SLOT_V6;
		st->listener6 = !bpf_map_lookup_elem(fd, &slot, &cookie);
		close(fd);
	}
	fd = sl_pin_open(pin_dir, SL_MAP_IN_STATS);
	if (fd >= 0) {
		if (!sl_percpu_sum_u64(fd, 0, &s, sizeof(s))) {
			st->steered = s.steered;
			st->passed = s.passed;
			st->loopback = s.loopback;
			st->local_src = s.local_src;
			st->no_listener = s.no_listener;
			st->assign_err = s.assign_err;
		}
		close(fd);
	}
	return found ? 0 : -ENOENT;
}

/* ---- probe ------------------------------------------------------------ */

/* A thread's own throwaway namespace: unshare() moves only the calling
 * thread, and the fd keeps the namespace alive after the thread is gone.
 */
static void *netns_thread(void *arg)
{
	int *fd = arg;

	if (unshare(CLONE_NEWNET))
		*fd = -errno;
	else if ((*fd = open(NETNS_SELF, O_RDONLY | O_CLOEXEC)) < 0)
		*fd = -errno;
	return NULL;
}

int sl_in_probe(char *why, size_t len)
{
	struct inbound_bpf *skel = NULL;
	struct bpf_link *link = NULL;
	pthread_t th;
	int ns_fd = -EINVAL, err;

	if (len)
		why[0] = '\0';
	err = libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_SK_LOOKUP, NULL);
	if (err <= 0) {
		err = err ?: -EOPNOTSUPP;
		snprintf(why, len, "the kernel has no sk_lookup programs (Linux 5.9+): %s",
			 strerror(-err));
		return err;
	}
	skel = inbound_bpf__open_and_load();
	if (!skel) {
		err = -errno;
		snprintf(why, len, "the sk_lookup program does not load (ctx->ingress_ifindex "
			 "needs Linux 5.17+): %s", strerror(-err));
		goto out;
	}
	err = -pthread_create(&th, NULL, netns_thread, &ns_fd);
	if (!err)
		err = -pthread_join(th, NULL);
	if (!err && ns_fd < 0)
		err = ns_fd;
	if (err) {
		snprintf(why, len, "no throwaway network namespace to try the attach in: %s",
			 strerror(-err));
		goto out;
	}
	link = bpf_program__attach_netns(skel->progs.sl_in_lookup, ns_fd);
	if (!link) {
		err = -errno;
		snprintf(why, len, "attaching sk_lookup to a network namespace failed: %s",
			 strerror(-err));
	}
out:
	bpf_link__destroy(link);
	if (ns_fd >= 0)
		close(ns_fd);
	inbound_bpf__destroy(skel);
	return err;
}
