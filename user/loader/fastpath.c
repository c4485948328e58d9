// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The local fast path (user side): load bpf/fastpath.bpf.c, pin its maps by
 * name under the pin root, attach sockops to a cgroup and sk_msg to the
 * sockhash with bpf_links, pin the links so the fast path outlives this
 * process; read it back for `status`; remove it all for `detach`.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <limits.h>
#include <malloc.h>
#include <netinet/in.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include "lib/addr.h"
#include "loader/pins.h"
#include "sidelane.h"
#include "fastpath.h"
#include "admission.h"
#include "fastpath.skel.h"
#include "loader/fastpath_user.h"

#include "lib/cgroup.h"
#include "lib/log.h"

static const char *const map_names[] = {
	SL_MAP_SOCKHASH,    SL_MAP_CONNS,     SL_MAP_COUNTERS,
	SL_MAP_LOCAL_ADDRS, SL_MAP_SK_STATE,  SL_MAP_EXCLUDED_PORTS,
	SL_MAP_SK_BY_KEY,   SL_MAP_PROXY_STATS, SL_MAP_FP_CFG,
	SL_MAP_EVENTS,      SL_MAP_EVENTS_LOST, SL_MAP_ADM_CFG,
	SL_MAP_ADM_STATS,   SL_MAP_RELAY,     SL_MAP_SPLICE_IDX,
	SL_MAP_SPLICE,      SL_MAP_SPLICE_STATS, SL_MAP_UP_BY_KEY,
	SL_MAP_DOWN,        SL_MAP_DOWN_IDX,  SL_MAP_CONFIG_INFO,
};


/* Another program of the same kind on this very cgroup could be a second mesh
 * doing its own redirect: sockets would then sit in two sockhashes and whose
 * sk_msg wins is an accident. Refuse that; programs inherited from an ancestor
 * run as well, so name them.
 */
static int check_conflicts(int cg_fd, const char *cgpath)
{
	__u32 ids[64], cnt = 64, flags = 0, i;
	int err = 0;

	if (bpf_prog_query(cg_fd, BPF_CGROUP_SOCK_OPS, 0, &flags, ids, &cnt))
		return -errno;
	for (i = 0; i < cnt; i++) {
		pr_warn("cgroup %s already has sock_ops program id %u attached: "
			"another mesh or agent? detach it first (`bpftool cgroup show %s`)\n",
			cgpath, ids[i], cgpath);
		err = -EBUSY;
	}
	if (err)
		return err;
	cnt = 64;
	if (bpf_prog_query(cg_fd, BPF_CGROUP_SOCK_OPS, BPF_F_QUERY_EFFECTIVE,
			   &flags, ids, &cnt))
		return 0;
	for (i = 0; i < cnt; i++)
		pr_info("note: sock_ops program id %u is inherited from a parent of %s and also runs\n",
			ids[i], cgpath);
	return 0;
}

/* Make a set-like map (key -> 1) hold exactly keys[0..n): add the missing,
 * then delete the rest. Deleting the current key would restart the walk, so
 * a key is deleted only after the walk has moved past it.
 */
static int map_sync_set(int fd, const void *keys, unsigned int n,
			size_t key_size)
{
	char key[64], next[64];
	unsigned int i;
	__u8 one = 1;

	if (key_size > sizeof(key))
		return -EINVAL;
	for (i = 0; i < n; i++)
		if (bpf_map_update_elem(fd, (const char *)keys + i * key_size,
					&one, BPF_ANY))
			return -errno;
	if (bpf_map_get_next_key(fd, NULL, key))
		return 0;
	for (;;) {
		int more = !bpf_map_get_next_key(fd, key, next);
		int keep = 0;

		for (i = 0; i < n && !keep; i++)
			keep = !memcmp((const char *)keys + i * key_size, key,
				       key_size);
		if (!keep)
			bpf_map_delete_elem(fd, key);
		if (!more)
			return 0;
		memcpy(key, next, key_size);
	}
}

/* sl_local_addrs := the host's non-loopback addresses (loopback the BPF side
 * knows by itself).
 */
static int sync_local_addrs(int map_fd)
{
	struct sl_addr want[SL_MAX_LOCAL_ADDRS];
	struct ifaddrs *ifa_list, *ifa;
	unsigned int n = 0;

	if (getifaddrs(&ifa_list))
		return -errno;
	for (ifa = ifa_list; ifa && n < SL_MAX_LOCAL_ADDRS; ifa = ifa->ifa_next) {
		const void *a;
		int fam;

		if (!ifa->ifa_addr)
			continue;
		fam = ifa->ifa_addr->sa_family;
		if (fam == AF_INET)
			a = &((struct sockaddr_in *)ifa->ifa_addr)->sin_addr;
		else if (fam == AF_INET6)
			a = &((struct sockaddr_in6 *)ifa->ifa_addr)->sin6_addr;
		else
			continue;
		sl_addr_to_key(fam, a, want[n].ip);
		if (!sl_addr_is_loopback(want[n].ip))
			n++;
	}
	freeifaddrs(ifa_list);
	return map_sync_set(map_fd, want, n, sizeof(want[0]));
}

static int sync_excluded_ports(const char *pin_root,
			       const struct sl_fp_opts *opts)
{
	int fd, err;

	fd = sl_pin_open(pin_root, SL_MAP_EXCLUDED_PORTS);
	if (fd < 0)
		return fd;
	err = map_sync_set(fd, opts->excluded_ports, opts->n_excluded_ports,
			   sizeof(opts->excluded_ports[0]));
	close(fd);
	if (err)
		pr_warn("setting the excluded ports failed: %s\n", strerror(-err));
	return err;
}

int sl_fp_sync_local_addrs(const char *pin_root)
{
	int fd, err;

	fd = sl_pin_open(pin_root, SL_MAP_LOCAL_ADDRS);
	if (fd < 0)
		return fd;
	err = sync_local_addrs(fd);
	close(fd);
	return err;
}

/* A sockmap program (sk_msg on the sockhash, sk_skb on sl_down): its link
 * pinned as link_name, or, before 6.10, the program attached to the map and
 * pinned as prog_name. Detached and unpinned either way.
 */
struct map_prog {
	const char *map, *link_name, *prog_name;
	enum bpf_attach_type type;
};

static const struct map_prog map_progs[] = {
	{ SL_MAP_SOCKHASH, SL_PIN_LINK_SK_MSG, SL_PIN_PROG_SK_MSG,
	  BPF_SK_MSG_VERDICT },
	/* stream_verdict without a stream_parser: each skb as it comes (the
	 * same path as sk_skb/verdict, which older libbpf cannot name)
	 */
	{ SL_MAP_DOWN, SL_PIN_LINK_SK_SKB, SL_PIN_PROG_SK_SKB,
	  BPF_SK_SKB_STREAM_VERDICT },
};

static void map_prog_drop(const char *pin_root, const struct map_prog *mp)
{
	int fd = sl_pin_open(pin_root, mp->link_name);

	if (fd >= 0) {
		bpf_link_detach(fd);
		close(fd);
	}
	sl_pin_unlink(pin_root, mp->link_name);
	fd = sl_pin_open(pin_root, mp->prog_name);
	if (fd >= 0) {
		int map_fd = sl_pin_open(pin_root, mp->map);

		if (map_fd >= 0) {
			bpf_prog_detach2(fd, map_fd, mp->type);
			close(map_fd);
		}
		close(fd);
	}
	sl_pin_unlink(pin_root, mp->prog_name);
}

/* Remove link/program pins left without link_sockops by an attach that died
 * half-way; they are ours (under our pin root) and would block a new attach.
 */
static void drop_partial_pins(const char *pin_root)
{
	size_t i;

	for (i = 0; i < sizeof(map_progs) / sizeof(map_progs[0]); i++)
		map_prog_drop(pin_root, &map_progs[i]);
}

/* A sockmap program belongs to the map, not to a cgroup: its link is
 * pinned, or where the kernel has no sockmap link (before 6.10) the program
 * itself, for detach.
 */
static int map_prog_attach(const struct map_prog *mp, int prog_fd,
			   int map_fd, const char *pin_root)
{
	char path[PATH_MAX];
	int fd, err;

	err = sl_map_prog_attach(prog_fd, map_fd, mp->type, &fd);
	if (err)
		return err;
	if (fd >= 0) {
		err = sl_pin_path(path, sizeof(path), pin_root, mp->link_name);
		if (!err && bpf_obj_pin(fd, path))
			err = -errno;
		close(fd); /* the pin holds the link; on error, this frees it */
		return err;
	}
	err = sl_pin_path(path, sizeof(path), pin_root, mp->prog_name);
	if (!err && bpf_obj_pin(prog_fd, path))
		err = -errno;
	if (err)
		bpf_prog_detach2(prog_fd, map_fd, mp->type);
	return err;
}

static int attach_sk_msg(struct fastpath_bpf *skel, const char *pin_root)
{
	return map_prog_attach(&map_progs[0],
			       bpf_program__fd(skel->progs.sl_sk_msg),
			       bpf_map__fd(skel->maps.sl_sockhash), pin_root);
}

/* The download half's verdict on sl_down (bpf/splice.bpf.h). Not fatal:
 * without it the proxy relays the download half (user/proxy/splice.c checks for
 * the pin), and says so here.
 */
static void attach_sk_skb(struct fastpath_bpf *skel, const char *pin_root)
{
	int fd = sl_pin_open(pin_root, SL_PIN_LINK_SK_SKB), err;

	if (fd < 0)
		fd = sl_pin_open(pin_root, SL_PIN_PROG_SK_SKB);
	if (fd >= 0) { /* there already (a restart) */
		close(fd);
		return;
	}
	err = map_prog_attach(&map_progs[1],
			      bpf_program__fd(skel->progs.sl_down_verdict),
			      bpf_map__fd(skel->maps.sl_down), pin_root);
	if (err)
		pr_warn("attaching the sk_skb verdict to %s failed: %s; the "
			"download half of a spliced connection stays with the "
			"proxy\n", SL_MAP_DOWN, strerror(-err));
}

/* The backlog bound needs psock->msg_tot_len (Linux 6.15+); without it the
 * fast path still works, only a slow reader's queue is not bounded. The
 * answer is the running kernel's, so it is looked up once a process: the
 * parse of vmlinux BTF takes several MiB and tens of ms, and status (so
 * every /metrics scrape) asks.
 */
static bool backlog_ok;
static pthread_once_t backlog_once = PTHREAD_ONCE_INIT;

static void backlog_probe(void)
{
	struct btf *btf = btf__load_vmlinux_btf();
	int id;

	if (!btf)
		return;
	id = btf__find_by_name_kind(btf, "sk_psock", BTF_KIND_STRUCT);
	if (id > 0) {
		const struct btf_type *t = btf__type_by_id(btf, id);
		const struct btf_member *m = btf_members(t);
		int i;

		for (i = 0; i < btf_vlen(t) && !backlog_ok; i++, m++)
			backlog_ok = !strcmp(btf__name_by_offset(btf, m->name_off),
					     "msg_tot_len");
	}
	btf__free(btf);
	/* the parse's smaller pieces stay in the malloc arena (glibc's trim
	 * threshold rose with its big piece): give them back. That works for
	 * the main thread's arena only, so the daemon asks first there.
	 */
	malloc_trim(0);
}

bool sl_fp_backlog_supported(void)
{
	pthread_once(&backlog_once, backlog_probe);
	return backlog_ok;
}

/* A pinned sockops link: reuse it if it serves this cgroup, else refuse. */
static int reuse_pinned(const char *pin_root, uint64_t cgid, const char *cgpath)
{
	struct bpf_link_info info;
	int err;

	err = sl_pinned_link_info(pin_root, SL_PIN_LINK_SOCKOPS, &info);
	if (err)
		return err;
	if (info.cgroup.cgroup_id != cgid) {
		char other[PATH_MAX] = "?";

		sl_cgroup_path_by_id(info.cgroup.cgroup_id, other,
				     sizeof(other));
		pr_warn("%s already serves cgroup %s (id %llu), not %s: "
			"`sidelane detach --pin-root %s` or use another --pin-root\n",
			pin_root, other, (unsigned long long)info.cgroup.cgroup_id,
			cgpath, pin_root);
		return -EEXIST;
	}
	pr_info("reusing the pinned fast path under %s (cgroup %s)\n", pin_root,
		cgpath);
	return 0;
}

/* The sockops program of the pinned app link, attached to the sidecar's
 * cgroup as well (own pinned link); kept if already there for that cgroup.
 */
static int attach_sidecar_sockops(const char *pin_root, const char *sidecar,
				  uint64_t app_cgid)
{
	char cgpath[PATH_MAX], path[PATH_MAX];
	struct bpf_link_info info;
	int prog_fd = -1, cg_fd = -1, link_fd = -1, err;
	uint64_t cgid;

	err = sl_cgroup_resolve(sidecar, cgpath, sizeof(cgpath));
	if (!err)
		err = sl_cgroup_id(cgpath, &cgid);
	if (err || cgid == app_cgid) /* same cgroup: already covered */
		return err;
	err = sl_link_drop_if_orphaned(pin_root, SL_PIN_LINK_SOCKOPS_SIDECAR);
	if (err < 0 && err != -ENOENT)
		return err;
	err = sl_pinned_link_info(pin_root, SL_PIN_LINK_SOCKOPS_SIDECAR, &info);
	if (err != -ENOENT) {
		if (!err && info.cgroup.cgroup_id != cgid) {
			pr_warn("%s serves another sidecar cgroup (id %llu): `sidelane detach` first\n",
				pin_root, (unsigned long long)info.cgroup.cgroup_id);
			return -EEXIST;
		}
		return err;
	}
	err = sl_pinned_link_info(pin_root, SL_PIN_LINK_SOCKOPS, &info);
	if (err)
		return err;
	prog_fd = bpf_prog_get_fd_by_id(info.prog_id);
	cg_fd = open(cgpath, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (prog_fd < 0 || cg_fd < 0) {
		err = -errno;
		goto out;
	}
	err = check_conflicts(cg_fd, cgpath);
	if (err)
		goto out;
	link_fd = bpf_link_create(prog_fd, cg_fd, BPF_CGROUP_SOCK_OPS, NULL);
	if (link_fd < 0) {
		err = -errno;
		pr_warn("attaching sockops to the sidecar cgroup %s failed: %s\n",
			cgpath, strerror(-err));
		goto out;
	}
	err = sl_pin_path(path, sizeof(path), pin_root, SL_PIN_LINK_SOCKOPS_SIDECAR);
	if (!err && bpf_obj_pin(link_fd, path))
		err = -errno;
out:
	if (link_fd >= 0)
		close(link_fd);
	if (cg_fd >= 0)
		close(cg_fd);
	if (prog_fd >= 0)
		close(prog_fd);
	return err;
}

/* The redirect switch: written before sk_msg is attached on a first start,
 * and again on every restart (a passing self-test turns it back on).
 */
static int sync_fp_cfg(const char *pin_root, const struct sl_fp_opts *opts)
{
	struct sl_fp_cfg cfg = { .redirect_off = !!opts->redirect_off,
				 .proxy_external = !!opts->proxy_external };
	__u32 zero = 0;
	int fd, err = 0;

	if (opts->redirect_off)
		snprintf(cfg.reason, sizeof(cfg.reason), "%s",
			 opts->off_reason ? opts->off_reason : "asked for");
	fd = sl_pin_open(pin_root, SL_MAP_FP_CFG);
	if (fd < 0)
		return fd;
	if (bpf_map_update_elem(fd, &zero, &cfg, BPF_ANY))
		err = -errno;
	close(fd);
	if (!err && opts->redirect_off)
		pr_warn("fast path: redirect off (%s): new sockets stay on "
			"plain TCP, the proxy works as usual\n", cfg.reason);
	return err;
}

/* Admission settings (include/admission.h), written like the redirect
 * switch: before sockops is attached on a first start, again on every
 * restart. The sidecar's sockets are told apart by their cgroup, so a
 * sidecar sharing the app's cgroup has none: its sockets are then app
 * sockets, and none is a redirect target.
 */
static int sync_adm_cfg(const char *pin_root, const struct sl_fp_opts *opts,
			uint64_t app_cgid)
{
	struct sl_adm_cfg cfg = { .mode = opts->app_sockets,
				  .kernel = opts->kernel };
	char cgpath[PATH_MAX];
	__u32 zero = 0;
	uint64_t id;
	int fd, err = 0;

	if (opts->sidecar_cgroup &&
	    !sl_cgroup_resolve(opts->sidecar_cgroup, cgpath, sizeof(cgpath)) &&
	    !sl_cgroup_id(cgpath, &id) && id != app_cgid)
		cfg.sidecar_cgroup_id = id;
	fd = sl_pin_open(pin_root, SL_MAP_ADM_CFG);
	if (fd < 0)
		return fd;
	if (bpf_map_update_elem(fd, &zero, &cfg, BPF_ANY))
		err = -errno;
	close(fd);
	return err;
}

/* cgroup/setsockopt on the app's cgroup (admission's option watch), pinned
 * as link_setsockopt; kept if it is there already. A kernel that refuses
 * it leaves app sockets to the other rules: a socket whose option is set
 * after admission then stays admitted, which the log says.
 */
static int attach_setsockopt(struct fastpath_bpf *skel, const char *pin_root,
			     int cg_fd)
{
	struct bpf_link *link;
	char path[PATH_MAX];
	int fd, err;

	fd = sl_pin_open(pin_root, SL_PIN_LINK_SETSOCKOPT);
	if (fd >= 0) {
		close(fd);
		return 0;
	}
	link = bpf_program__attach_cgroup(skel->progs.sl_setsockopt, cg_fd);
	if (!link) {
		err = -errno;
		pr_warn("attaching cgroup/setsockopt failed: %s; options set "
			"after a socket was admitted are not seen\n",
			strerror(-err));
		return err;
	}
	err = sl_pin_path(path, sizeof(path), pin_root, SL_PIN_LINK_SETSOCKOPT);
	if (!err)
		err = bpf_link__pin(link, path);
	bpf_link__destroy(link); /* the pin holds it */
	return err;
}

/* Pinned link name -> the program of this build it should run. */
static int upgrade_link(const char *pin_root, const char *name,
			struct bpf_program *prog, int *upgraded)
{
	struct bpf_prog_info old = {}, cur = {};
	__u32 olen = sizeof(old), clen = sizeof(cur);
	struct bpf_link_info info;
	int fd, old_fd = -1, err;

	fd = sl_pin_open(pin_root, name);
	if (fd < 0)
		return fd == -ENOENT ? 0 : fd;
	err = sl_link_info(fd, &info);
	if (!err) {
		old_fd = bpf_prog_get_fd_by_id(info.prog_id);
		if (old_fd < 0 ||
		    bpf_obj_get_info_by_fd(old_fd, &old, &olen) ||
		    bpf_obj_get_info_by_fd(bpf_program__fd(prog), &cur, &clen))
			err = -errno;
	}
	/* same tag: the same instructions, nothing to do */
	if (!err && memcmp(old.tag, cur.tag, sizeof(old.tag))) {
		if (bpf_link_update(fd, bpf_program__fd(prog), NULL))
			err = -errno;
		else
			(*upgraded)++;
	}
	if (old_fd >= 0)
		close(old_fd);
	close(fd);
	return err;
}

/* A restart by a newer build with the same map layout: its programs take
 * over the pinned links in place (BPF_LINK_UPDATE swaps them atomically),
 * so established sockets stay in the sockhash and keep redirecting. The
 * pre-6.10 sk_msg attachment (no link) keeps the program it has.
 */
static int upgrade_programs(const char *pin_root, struct fastpath_bpf *skel)
{
	int n = 0, err;

	err = upgrade_link(pin_root, SL_PIN_LINK_SOCKOPS, skel->progs.sl_sockops,
			   &n);
	if (!err)
		err = upgrade_link(pin_root, SL_PIN_LINK_SOCKOPS_SIDECAR,
				   skel->progs.sl_sockops, &n);
	if (!err)
		err = upgrade_link(pin_root, SL_PIN_LINK_SK_MSG,
				   skel->progs.sl_sk_msg, &n);
	if (!err)
		err = upgrade_link(pin_root, SL_PIN_LINK_SETSOCKOPT,
				   skel->progs.sl_setsockopt, &n);
	if (!err)
		err = upgrade_link(pin_root, SL_PIN_LINK_SK_SKB,
				   skel->progs.sl_down_verdict, &n);
	if (err)
		pr_warn("updating the pinned links to this build's programs "
			"failed: %s; the pinned programs stay\n", strerror(-err));
	else if (n)
		pr_info("fast path: this build's programs replaced the pinned "
			"ones in %d link(s); connections stay accelerated\n", n);
	return err;
}

/* The pinned maps against this build's, before anything is reused. With
 * add_missing (a restart reusing the pinned links), maps this build has and
 * the pins lack are created and pinned (loading the object against the pin
 * paths reuses every pinned map and pins the new ones), and this build's
 * programs replace the pinned links' where they differ.
 */
static int check_layout(const char *pin_root, const char *cgpath,
			int add_missing)
{
	struct fastpath_bpf *skel = fastpath_bpf__open();
	int err, cg_fd;

	if (!skel)
		return -errno;
	sl_obj_size_maps(skel->obj, pin_root);
	err = sl_obj_check_pins(skel->obj, pin_root);
	if (!err && add_missing)
		err = sl_obj_pin_maps(skel->obj, pin_root, 0);
	if (!err && add_missing)
		err = fastpath_bpf__load(skel);
	if (!err && add_missing)
		err = upgrade_programs(pin_root, skel);
	/* An older build pinned no sk_skb or setsockopt link: add ours. */
	if (!err && add_missing)
		attach_sk_skb(skel, pin_root);
	if (!err && add_missing) {
		cg_fd = open(cgpath, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (cg_fd >= 0) {
			attach_setsockopt(skel, pin_root, cg_fd);
			close(cg_fd);
		}
	}
	fastpath_bpf__destroy(skel);
	return err;
}

int sl_fp_sweep_open(const char *pin_root)
{
	struct fastpath_bpf *skel;
	struct bpf_link *link;
	int err, fd;

	skel = fastpath_bpf__open();
	if (!skel)
		return -errno;
	sl_obj_size_maps(skel->obj, pin_root ?: SL_PIN_ROOT_DEFAULT);
	err = sl_obj_pin_maps(skel->obj, pin_root ?: SL_PIN_ROOT_DEFAULT, 0);
	if (!err)
		err = fastpath_bpf__load(skel);
	if (err)
		goto out;
	link = bpf_program__attach_iter(skel->progs.sl_adm_sweep, NULL);
	if (!link) {
		err = -errno;
		goto out;
	}
	/* the caller owns the fd: destroy frees the struct, closes nothing */
	fd = bpf_link__fd(link);
	bpf_link__disconnect(link);
	bpf_link__destroy(link);
	err = fd;
out:
	fastpath_bpf__destroy(skel);
	return err;
}

/* A restart over pins that serve this cgroup: the runtime settings (ports,
 * addresses, modes) are written again, the programs stay.
 */
static int restart(const char *pin_root, const struct sl_fp_opts *opts,
		   uint64_t cgid, const char *cgpath)
{
	int err = check_layout(pin_root, cgpath, 1);

	if (!err)
		err = sync_adm_cfg(pin_root, opts, cgid);
	if (!err)
		err = sync_fp_cfg(pin_root, opts);
	if (!err)
		err = sync_excluded_ports(pin_root, opts);
	if (!err)
		err = sl_fp_sync_local_addrs(pin_root);
	if (!err && opts->sidecar_cgroup)
		err = attach_sidecar_sockops(pin_root, opts->sidecar_cgroup, cgid);
	return err;
}

/* Open and load the programs, their maps sized and pinned under pin_root
 * (reusing what is pinned there already).
 */
static int load(const char *pin_root, struct fastpath_bpf **out)
{
	struct fastpath_bpf *skel = fastpath_bpf__open();
	int err;

	if (!skel) {
		err = -errno;
		pr_warn("cannot open the BPF object: %s\n", strerror(-err));
		return err;
	}
	sl_obj_size_maps(skel->obj, pin_root);
	err = sl_obj_pin_maps(skel->obj, pin_root, 0);
	if (err)
		goto fail;
	if (!sl_fp_backlog_supported())
		pr_warn("this kernel's psock has no msg_tot_len (before 6.15): "
			"a slow reader's backlog is not bounded\n");
	err = fastpath_bpf__load(skel);
	if (err) {
		pr_warn("loading the BPF programs failed: %s (a map pinned under %s "
			"from another build? `sidelane detach --pin-root %s`)\n",
			strerror(-err), pin_root, pin_root);
		goto fail;
	}
	*out = skel;
	return 0;
fail:
	fastpath_bpf__destroy(skel);
	return err;
}

/* sk_msg first: a socket gets the map's programs when it is inserted, so
 * the verdict program must be there before sockops inserts any. Then
 * sockops on the cgroup (its link pinned), setsockopt and the download's
 * verdict (not fatal), and the host's addresses.
 */
static int attach_programs(struct fastpath_bpf *skel, const char *pin_root,
			   int cg_fd, const char *cgpath)
{
	struct bpf_link *link;
	char path[PATH_MAX];
	int err;

	err = attach_sk_msg(skel, pin_root);
	if (err) {
		pr_warn("attaching sk_msg to the sockhash failed: %s\n",
			strerror(-err));
		return err;
	}
	link = bpf_program__attach_cgroup(skel->progs.sl_sockops, cg_fd);
	if (!link) {
		err = -errno;
		pr_warn("attaching sockops to %s failed: %s\n", cgpath,
			strerror(-err));
		return err;
	}
	err = sl_pin_path(path, sizeof(path), pin_root, SL_PIN_LINK_SOCKOPS);
	if (!err)
		err = bpf_link__pin(link, path);
	bpf_link__destroy(link); /* closes our fd; the pin keeps the link */
	if (err) {
		pr_warn("pinning %s failed: %s\n", path, strerror(-err));
		return err;
	}
	attach_setsockopt(skel, pin_root, cg_fd); /* logs; not fatal */
	attach_sk_skb(skel, pin_root);
	err = sync_local_addrs(bpf_map__fd(skel->maps.sl_local_addrs));
	if (err)
		pr_warn("reading the host's addresses failed: %s; only loopback "
			"peers are accelerated\n", strerror(-err));
	return 0;
}

int sl_fp_attach(const struct sl_fp_opts *opts)
{
	const char *pin_root = opts->pin_root ?: SL_PIN_ROOT_DEFAULT;
	struct fastpath_bpf *skel = NULL;
	int cg_fd = -1, created = 0, err;
	char cgpath[PATH_MAX];
	uint64_t cgid;

	err = sl_cgroup_resolve(opts->cgroup, cgpath, sizeof(cgpath));
	if (!err)
		err = sl_cgroup_id(cgpath, &cgid);
	if (!err)
		err = sl_pin_root_ensure(pin_root, &created);
	if (!err)
		err = check_layout(pin_root, cgpath, 0);
	if (err)
		return err;
	err = reuse_pinned(pin_root, cgid, cgpath);
	if (err != -ENOENT)
		return err ?: restart(pin_root, opts, cgid, cgpath);
	drop_partial_pins(pin_root);
	err = load(pin_root, &skel);
	if (err)
		goto out;
	cg_fd = open(cgpath, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cg_fd < 0) {
		err = -errno;
		goto out;
	}
	err = check_conflicts(cg_fd, cgpath);
	/* Maps are pinned by now: settings first, so no socket is inserted
	 * before an exclusion is in force.
	 */
	if (!err)
		err = sync_excluded_ports(pin_root, opts);
	if (!err)
		err = sync_adm_cfg(pin_root, opts, cgid);
	if (!err)
		err = sync_fp_cfg(pin_root, opts);
	if (err)
		goto out;
	err = attach_programs(skel, pin_root, cg_fd, cgpath);
	if (!err && opts->sidecar_cgroup)
		err = attach_sidecar_sockops(pin_root, opts->sidecar_cgroup, cgid);
	if (err)
		drop_partial_pins(pin_root);
	else
		pr_info("fast path attached to %s, pinned under %s\n", cgpath,
			pin_root);
out:
	if (cg_fd >= 0)
		close(cg_fd);
	fastpath_bpf__destroy(skel);
	/* A failed first attach leaves nothing behind (a folder we made holds
	 * only what it pinned); maps pinned before this call (and their
	 * counters) stay.
	 */
	if (err && created && !sl_fp_detach_links(pin_root) &&
	    !sl_fp_unpin_maps(pin_root))
		rmdir(pin_root);
	return err;
}

int sl_fp_detach_links(const char *pin_root)
{
	int fd, err = 0;

	/* bpf_link_detach() takes the program off now, whoever else still
	 * holds the link.
	 */
	fd = sl_pin_open(pin_root, SL_PIN_LINK_SOCKOPS);
	if (fd >= 0) {
		if (bpf_link_detach(fd))
			err = -errno;
		close(fd);
	}
	err = sl_pin_link_detach(pin_root, SL_PIN_LINK_SOCKOPS_SIDECAR) ?: err;
	err = sl_pin_link_detach(pin_root, SL_PIN_LINK_SETSOCKOPT) ?: err;
	drop_partial_pins(pin_root);
	return err ?: sl_pin_unlink(pin_root, SL_PIN_LINK_SOCKOPS);
}

int sl_fp_unpin_maps(const char *pin_root)
{
	int err = 0;
	size_t i;

	for (i = 0; i < sizeof(map_names) / sizeof(map_names[0]); i++) {
		int e = sl_pin_unlink(pin_root, map_names[i]);

		if (e && !err)
			err = e;
	}
	return err;
}
