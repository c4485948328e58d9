/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* User side of the local fast path (user/fastpath.c): load, attach, pin, read
 * back and detach. Used by `sidelane run|status|detach|bench` and the tests.
 */
#ifndef FASTPATH_USER_H
#define FASTPATH_USER_H

#include <stdint.h>
#include "sidelane.h"
#include "fastpath.h"

struct sl_fp_opts {
	const char *pin_root; /* NULL: SL_PIN_ROOT_DEFAULT */
	const char *cgroup; /* cgroup v2 path (absolute, or relative to the mount) */
	const char *sidecar_cgroup; /* also accelerate the sidecar's sockets; NULL: no */
	const uint16_t *excluded_ports; /* service ports kept on the plain path */
	size_t n_excluded_ports;
	/* Redirect off (sockops still accounts, sk_msg sends over TCP), e.g.
	 * after a failed self-test; reason says why, for status.
	 */
	int redirect_off;
	const char *off_reason;
	/* Admission (include/admission.h): fastpath.app_sockets, and what
	 * the start-up self-test found this kernel keeps (SL_KERNEL_*).
	 */
	uint32_t app_sockets;
	uint32_t kernel;
};

/* Load the programs (or reuse what is pinned under pin_root), attach them to
 * the cgroup with bpf_links and pin everything. Idempotent: a second call for
 * the same cgroup reuses the pinned links. Returns 0 or -errno (message logged).
 */
int sl_fp_attach(const struct sl_fp_opts *opts);

/* The admission sweep (bpf/fastpath.bpf.c, sl_adm_sweep) as a TCP
 * iterator link on the pinned maps, not pinned: run it with sl_adm_sweep()
 * (admission_user.h) from the pod's network namespace, close it when done.
 * The fd, or -errno.
 */
int sl_fp_sweep_open(const char *pin_root);

/* Remove every link, program and pin under pin_root; rmdir pin_root.
 * Returns 0, -ENOENT if nothing was there, or -errno.
 */
int sl_fp_detach(const char *pin_root);

/* Refresh sl_local_addrs from the host's interface addresses. */
int sl_fp_sync_local_addrs(const char *pin_root);

struct sl_fp_status {
	int attached; /* link_sockops pinned and alive */
	uint64_t cgroup_id; /* cgroup the sockops link is attached to */
	char cgroup_path[4096]; /* resolved path, "" if not found */
	int sk_msg_link; /* 1: sockmap bpf_link, 0: BPF_PROG_ATTACH fallback */
	int backlog_bound; /* this kernel lets sk_msg bound a slow reader's backlog */
	uint32_t sockops_prog_id, sk_msg_prog_id;
	uint32_t sockhash_entries, sockhash_max;
	uint32_t conns_entries, conns_max;
	uint32_t local_addrs_entries;
	uint32_t n_excluded_ports;
	uint16_t excluded_ports[SL_MAX_EXCLUDED_PORTS];
	struct sl_counters counters; /* summed over CPUs */
	struct sl_fp_cfg cfg; /* redirect switch and why */
	uint64_t events_lost; /* accounting events the full ring dropped */
};

/* Read what is pinned under pin_root. -ENOENT when nothing is. */
int sl_fp_status(const char *pin_root, struct sl_fp_status *st);

/* Call fn for every entry of the pinned map pin_root/name keyed by a u64
 * (cookie-keyed: sl_conns, sl_connect_reason); val is the caller's buffer
 * for one value. Stops at the first non-zero return. 0 or -errno.
 */
int sl_pin_foreach_u64(const char *pin_root, const char *name, void *val,
		       int (*fn)(uint64_t key, const void *val, void *ctx),
		       void *ctx);

/* Sum the per-CPU sl_counters of a pinned map. */
int sl_fp_read_counters(const char *pin_root, struct sl_counters *out);

/* A pinned cgroup link whose cgroup is gone (its container restarted: the
 * new one has a new cgroup) is detached and its pin removed, so the next
 * attach replaces it. 1 dropped, 0 kept (alive), -ENOENT none, -errno.
 */
int sl_link_drop_if_orphaned(const char *pin_root, const char *name);
/* Build "<pin_root>/<name>" into buf. Returns 0 or -ENAMETOOLONG. */
int sl_pin_path(char *buf, size_t len, const char *pin_root, const char *name);
struct bpf_object;
/* Compare every map of obj (opened, not loaded) that is already pinned under
 * pin_root with its definition here: type, key and value size, max entries,
 * flags. 0 when all match or are not pinned yet (an added map is simply
 * created: an additive upgrade), -EPROTO with a message naming the map and
 * the way out when one differs.
 */
int sl_obj_check_pins(struct bpf_object *obj, const char *pin_root);
/* Sizing (limits.max_conns): the tables that grow with connections take
 * their max_entries from max_conns in every object opened after this; 0
 * keeps the sizes compiled in. Called once by `run`, before it attaches.
 */
void sl_sizing_set(uint32_t max_conns);
/* Right after opening obj: its sized maps get their max_entries, a map
 * already pinned under pin_root (NULL: none) keeps its own, since pinned
 * maps are reused as they are; a configured size it does not have is
 * said once per map (it applies after `sidelane detach`).
 */
void sl_obj_size_maps(struct bpf_object *obj, const char *pin_root);
/* Give every map of obj its pin path pin_root/<map name> before load, so
 * libbpf reuses a pinned map whose definition matches (state survives a
 * restart) and pins new ones. Socket-storage maps are skipped when
 * skip_sk_storage (their data lives with the sockets). 0 or -errno.
 */
int sl_obj_pin_maps(struct bpf_object *obj, const char *pin_root,
		    int skip_sk_storage);
/* Make sure pin_root exists on a bpffs (mounting /sys/fs/bpf if that is
 * where it goes and nothing is mounted); *created: it is new. 0 or -errno.
 */
int sl_pin_root_ensure(const char *pin_root, int *created);
/* bpf_obj_get() of pin_root/name (fd or -errno); unlink it (0 if absent). */
int sl_pin_open(const char *pin_root, const char *name);
/* Call fn for every pin directly under pin_root with its name and an fd
 * of it (closed after the call). 0, or -errno when the folder cannot be
 * read.
 */
int sl_pin_foreach(const char *pin_root,
		   void (*fn)(const char *name, int fd, void *ctx), void *ctx);
int sl_pin_unlink(const char *pin_root, const char *name);
/* The sl_sock_key of a connected TCP socket, as bpf/sockkey.bpf.h builds
 * it: own end first, IPv4 as ::ffff:a.b.c.d, ports in host order, the
 * network namespace's cookie. 0 or -errno.
 */
int sl_fd_sock_key(int fd, struct sl_sock_key *key);
/* The key the peer socket has: in's with both ends swapped (in == out is
 * fine).
 */
void sl_sock_key_swap(const struct sl_sock_key *in, struct sl_sock_key *out);
/* Detach the link pinned as pin_root/name now (whoever else holds it) and
 * unpin it; 0 if absent, else the first -errno.
 */
int sl_pin_link_detach(const char *pin_root, const char *name);
/* Sum, over CPUs, a per-CPU value made only of __u64 counters. 0 or -errno. */
int sl_percpu_sum_u64(int fd, __u32 key, void *out, size_t size);

#endif /* FASTPATH_USER_H */
