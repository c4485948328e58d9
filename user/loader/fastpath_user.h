/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* User side of the local fast path (user/loader/fastpath.c): load, attach, pin, read
 * back and detach. Used by `sidelane run|status|detach|bench` and the tests.
 */
#ifndef FASTPATH_USER_H
#define FASTPATH_USER_H

#include <stdbool.h>
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
	int proxy_external; /* proxy.external: said in sl_fp_cfg for status */
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

/* Detach and unpin the fast path's links (sockops, the sidecar's sockops,
 * setsockopt, sk_msg and sk_skb on their maps). 0 or the first -errno.
 */
int sl_fp_detach_links(const char *pin_root);
/* Unpin the fast path's maps: after every program that uses them is gone
 * (the sockhash is freed with its last reference). 0 or the first -errno.
 */
int sl_fp_unpin_maps(const char *pin_root);

/* Does this kernel's psock have msg_tot_len (6.15+), which the backlog
 * bound needs? Without it a slow reader's queue is not bounded.
 */
bool sl_fp_backlog_supported(void);
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

/* Sum the per-CPU sl_counters of a pinned map. */
int sl_fp_read_counters(const char *pin_root, struct sl_counters *out);

/* The sl_sock_key of a connected TCP socket, as bpf/sockkey.bpf.h builds
 * it: own end first, IPv4 as ::ffff:a.b.c.d, ports in host order, the
 * network namespace's cookie. 0 or -errno.
 */
int sl_fd_sock_key(int fd, struct sl_sock_key *key);
/* The key the peer socket has: in's with both ends swapped (in == out is
 * fine).
 */
void sl_sock_key_swap(const struct sl_sock_key *in, struct sl_sock_key *out);

#endif /* FASTPATH_USER_H */
