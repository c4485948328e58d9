/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Admission: which app sockets may enter the sockhash, shared by
 * bpf/admission.bpf.h (the decision, in sockops and sk_msg) and
 * user/loader/admission.c (the mode, the kernel's findings, the counters).
 *
 * An app socket is admitted only where the app cannot tell. A socket in a
 * sockmap gets the tcp_bpf receive path: a blocking recv() woken without
 * data returns EAGAIN, and bytes redirected into it sit in its psock, out of
 * reach of splice(), SO_RCVLOWAT, MSG_WAITALL and the RST that close() with
 * unread data sends. So by default (safe) nothing is redirected into an app
 * socket: only non-blocking app sockets that connect to the sidecar are
 * admitted, send-only (app -> sidecar is redirected, sidecar -> app stays
 * TCP), and only where this kernel answers FIONREAD on such a socket with
 * what TCP brought (checked at start: Linux 6.18 does not, so there safe
 * admits none). Send side options whose effect a redirect would skip keep
 * a socket out (include/acct.h has the reasons).
 */
#ifndef ADMISSION_H
#define ADMISSION_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* fastpath.app_sockets. 0 is safe: a fresh (zeroed) map is the default. */
enum sl_app_sockets {
	SL_APP_SAFE = 0, /* admitted where the app cannot tell (see above) */
	SL_APP_SEND = 1, /* safe's rule without the kernel's FIONREAD check */
	SL_APP_ALL = 2, /* every local socket, both ways, app<->app too */
	SL_APP_NONE = 3, /* no app socket ever enters the sockhash */
	SL_APP_NR
};

/* sl_adm_cfg.kernel: what the start-up self-test found on this kernel. */
/* A socket in a sockmap answers FIONREAD/SIOCINQ with the bytes TCP brought
 * (Linux 6.18 counts only redirected ones: tcp_bpf_ioctl()).
 */
#define SL_KERNEL_TCP_FIONREAD 0x1

/* Slot 0 of sl_adm_cfg: set by `sidelane run` at every start. */
struct sl_adm_cfg {
	__u32 mode; /* enum sl_app_sockets */
	__u32 kernel; /* SL_KERNEL_* */
	/* The sidecar's cgroup (its sockets are redirect targets); 0 when
	 * there is none or it is the app's, where they cannot be told apart.
	 */
	__u64 sidecar_cgroup_id;
};

/* Counter slots per reason; more than SL_ACC_NR so that reasons can be
 * added without changing the pinned map's layout.
 */
#define SL_ADM_SLOTS 32

/* Slot 0 of sl_adm_stats, one copy per CPU. */
struct sl_adm_stats {
	/* established sockets of our cgroups by enum sl_acc_reason, counted
	 * once, at established (SL_ACC_ACCELERATED: admitted)
	 */
	__u64 sockets[SL_ADM_SLOTS];
	/* admitted sockets taken out again, by the reason */
	__u64 evicted[SL_ADM_SLOTS];
};

/* One record of the admission sweep (the iter/tcp program sl_adm_sweep,
 * run by `sidelane run`): a socket of the sockhash that the
 * mode in force would not admit, one admitted under another mode or by an
 * older build (which admitted app sockets both ways).
 */
enum sl_sweep_what {
	SL_SWEEP_EVICTED = 1, /* taken out: a plain TCP socket from now on */
	SL_SWEEP_WAITING = 2, /* bytes redirected to it are unread: next sweep */
};

struct sl_sweep_rec {
	__u64 cookie; /* its sl_conns key */
	__u32 what; /* enum sl_sweep_what */
	__u32 reason; /* enum sl_acc_reason it leaves for */
};

/* sl_sk_state.opts: send-side options an app set on a socket (cgroup
 * setsockopt), from before it is established.
 */
#define SL_OPT_NOTSENT_LOWAT 0x1
#define SL_OPT_ZEROCOPY 0x2
#define SL_OPT_TIMESTAMPING 0x4
#define SL_OPT_ULP 0x8
#define SL_OPT_REPAIR 0x10

#endif /* ADMISSION_H */
