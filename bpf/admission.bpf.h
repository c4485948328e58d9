/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Admission (kernel side, include/admission.h): which sockets enter the
 * sockhash and which may be redirect targets, decided in sockops at
 * established and kept in sk_msg and at every segment a send-only socket
 * transmits. Included once, by bpf/fastpath.bpf.c (maps and the
 * cgroup/setsockopt helper live with the sockhash they guard).
 */
#ifndef ADMISSION_BPF_H
#define ADMISSION_BPF_H

#include "admission.h"
#include "acct.h"

/* O_NONBLOCK of include/uapi/asm-generic/fcntl.h (x86, arm64, riscv;
 * alpha, mips, parisc and sparc have their own values)
 */
#define SL_O_NONBLOCK 04000

#define SL_SOL_SOCKET 1
#define SL_SOL_TCP 6
#define SL_IPPROTO_TCP 6
#define SL_SO_TIMESTAMPING_OLD 37
#define SL_SO_ZEROCOPY 60
#define SL_SO_TIMESTAMPING_NEW 65
#define SL_TCP_REPAIR 19
#define SL_TCP_NOTSENT_LOWAT 25
#define SL_TCP_ULP 31
/* SOF_TIMESTAMPING_TX_HARDWARE | TX_SOFTWARE | TX_SCHED | TX_ACK */
#define SL_SOF_TX_FLAGS (0x1 | 0x2 | 0x100 | 0x200)

/* 0 -> the mode, the kernel's findings, the sidecar's cgroup */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sl_adm_cfg);
} sl_adm_cfg SEC(".maps");

/* 0 -> sockets by admission reason, and evictions by reason; per CPU */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sl_adm_stats);
} sl_adm_stats SEC(".maps");

/* An ARRAY lookup the verifier inlines. NULL only if the map is broken:
 * callers treat that as the default, safe.
 */
static __always_inline const struct sl_adm_cfg *adm_cfg(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&sl_adm_cfg, &zero);
}

static __always_inline __u32 adm_mode(const struct sl_adm_cfg *cfg)
{
	return cfg ? cfg->mode : SL_APP_SAFE;
}

static __always_inline void adm_count(__u16 reason, int evicted)
{
	struct sl_adm_stats *s;
	__u32 zero = 0;

	s = bpf_map_lookup_elem(&sl_adm_stats, &zero);
	if (!s)
		return;
	reason &= SL_ADM_SLOTS - 1;
	if (evicted)
		s->evicted[reason]++;
	else
		s->sockets[reason]++;
}

/* Is the socket's file blocking? 1 yes, 0 no, -1 no file (an accepted
 * socket until accept() gives it one). The loads walk BTF pointers from a
 * trusted tcp_sock; a NULL link reads as absent.
 */
static __always_inline int adm_blocking(struct tcp_sock *tp)
{
	struct socket *so;
	struct file *f;

	if (!tp)
		return -1;
	so = tp->inet_conn.icsk_inet.sk.sk_socket;
	if (!so)
		return -1;
	f = so->file;
	if (!f)
		return -1;
	return !(f->f_flags & SL_O_NONBLOCK);
}

/* The socket's cgroup v2 id (its kernfs node id, the cgroup folder's inode
 * number): the cgroup of the task that created it, or of the listener an
 * accepted socket was cloned from.
 */
static __always_inline __u64 adm_sock_cgroup(struct tcp_sock *tp)
{
	struct cgroup *cg;

	if (!tp)
		return 0;
	cg = tp->inet_conn.icsk_inet.sk.sk_cgrp_data.cgroup;
	return cg ? cg->kn->id : 0;
}

static __always_inline int adm_is_sidecar(const struct sl_adm_cfg *cfg,
					  struct tcp_sock *tp)
{
	return cfg && cfg->sidecar_cgroup_id &&
	       adm_sock_cgroup(tp) == cfg->sidecar_cgroup_id;
}

/* The first SL_OPT_* of opts as a reason, or SL_ACC_ACCELERATED. */
static __always_inline __u16 adm_opt_reason(__u32 opts)
{
	if (opts & SL_OPT_NOTSENT_LOWAT)
		return SL_ACC_OPT_NOTSENT_LOWAT;
	if (opts & SL_OPT_ZEROCOPY)
		return SL_ACC_OPT_ZEROCOPY;
	if (opts & SL_OPT_TIMESTAMPING)
		return SL_ACC_OPT_TIMESTAMPING;
	if (opts & SL_OPT_ULP)
		return SL_ACC_OPT_ULP;
	if (opts & SL_OPT_REPAIR)
		return SL_ACC_OPT_REPAIR;
	return SL_ACC_ACCELERATED;
}

/* Why an app socket is not admitted in safe or send mode, or
 * SL_ACC_ACCELERATED (admitted send-only). Socket reasons come before the
 * kernel's, so that kernel-fionread counts exactly the sockets a kernel
 * that keeps FIONREAD would admit.
 */
static __always_inline __u16 adm_app_reason(const struct sl_adm_cfg *cfg,
					    struct tcp_sock *tp, __u32 opts,
					    int passive)
{
	__u16 r;

	if (passive)
		return SL_ACC_ACCEPTED;
	/* No file yet counts as blocking: nothing says it is not. */
	if (adm_blocking(tp))
		return SL_ACC_BLOCKING;
	r = adm_opt_reason(opts);
	if (r != SL_ACC_ACCELERATED)
		return r;
	if (adm_mode(cfg) == SL_APP_SAFE &&
	    !(cfg && (cfg->kernel & SL_KERNEL_TCP_FIONREAD)))
		return SL_ACC_KERNEL_FIONREAD;
	return SL_ACC_ACCELERATED;
}

/* Does the mode in force keep this socket in the sockhash? SL_ACC_ACCELERATED
 * if so, else the reason it leaves for. For the sweep of sockets admitted
 * under another mode or by an older build (sl_adm_sweep).
 */
static __always_inline __u16 adm_keeps(const struct sl_adm_cfg *cfg,
				       const struct sl_conn *conn)
{
	__u32 mode = adm_mode(cfg);

	if (mode == SL_APP_ALL)
		return SL_ACC_ACCELERATED;
	if (mode == SL_APP_NONE)
		return SL_ACC_MODE_NONE;
	/* the sidecar's sockets: their reader is our proxy */
	if (conn->flags & SL_CONN_F_SIDECAR)
		return SL_ACC_ACCELERATED;
	if (conn->flags & SL_CONN_F_SEND_ONLY)
		return mode == SL_APP_SEND ||
				       (cfg && (cfg->kernel & SL_KERNEL_TCP_FIONREAD)) ?
			       SL_ACC_ACCELERATED :
			       SL_ACC_KERNEL_FIONREAD;
	return SL_ACC_MODE_CHANGED;
}

/* The SL_OPT_* bit a setsockopt() call turns on, or 0. Only options whose
 * effect a redirected send would skip; the value is read where it says
 * whether the option is on.
 */
static __always_inline __u32 adm_opt_bit(struct bpf_sockopt *ctx)
{
	__s32 level = ctx->level, name = ctx->optname;
	int *val = ctx->optval;

	if ((void *)(val + 1) > ctx->optval_end)
		return 0;
	if (level == SL_SOL_TCP) {
		if (name == SL_TCP_NOTSENT_LOWAT)
			return SL_OPT_NOTSENT_LOWAT;
		if (name == SL_TCP_ULP)
			return SL_OPT_ULP;
		if (name == SL_TCP_REPAIR && *val)
			return SL_OPT_REPAIR;
		return 0;
	}
	if (level != SL_SOL_SOCKET)
		return 0;
	if (name == SL_SO_ZEROCOPY && *val)
		return SL_OPT_ZEROCOPY;
	if ((name == SL_SO_TIMESTAMPING_OLD || name == SL_SO_TIMESTAMPING_NEW) &&
	    (*val & SL_SOF_TX_FLAGS))
		return SL_OPT_TIMESTAMPING;
	return 0;
}

#endif /* ADMISSION_BPF_H */
