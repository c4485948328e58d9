/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Coexistence with other BPF programs (user/loader/coexist.c): what else is
 * attached around sidelane's programs (another mesh, an observability or
 * security agent), and what sidelane does about it. Used by `sidelane run`
 * (one log line per foreign program at start), `sidelane status` (text and
 * "coexist" in --json, also in the admin endpoint's /stats) and the tests.
 *
 * The rule, by what the other program is:
 *
 * - A sock_ops program of another owner attached directly to the app's or
 *   the sidecar's cgroup: REFUSE. `sidelane run` does not attach there
 *   (user/loader/fastpath.c, check_conflicts()). Two sock_ops on one cgroup are
 *   usually two meshes each filling its own sockhash; whose sk_msg handles a
 *   socket would then depend on attach order. One attached after sidelane
 *   (the check runs at the first attach only) is reported as a conflict.
 *
 * - An sk_msg or sk_skb program on a sockmap or sockhash that is not ours
 *   but is fed by a foreign sock_ops program that runs for our cgroups (one
 *   that references the map), or any foreign program on sidelane's own
 *   sockhash: WARN, loudly. A socket takes the sk_msg/sk_skb programs of the
 *   first map it enters; inserting it into a second map that has programs
 *   fails with EBUSY (net/core/sock_map.c, sock_map_link()). So one of the
 *   two meshes silently does not accelerate a connection, and which one is
 *   decided by whose sock_ops runs first. A foreign sockmap without
 *   programs can hold our sockets as well; ours then still redirects them.
 *   Sockmaps with programs that no sock_ops of our cgroups feeds are listed
 *   as unrelated (a socket could still be added from user space by fd).
 *
 * - Every other cgroup program (connect4/6, getpeername, getsockopt,
 *   setsockopt, sock_create/release, bind, post_bind, sendmsg/recvmsg,
 *   ingress/egress skb), an inherited sock_ops and other sk_lookup programs
 *   of the network namespace: ALONGSIDE. bpf_links are multi-attach; both
 *   run, and the report says in which order. Semantics (kernel/bpf/cgroup.c,
 *   bpf_prog_run_array_cg()):
 *   - Order, by default: the programs of the cgroup itself in attach order,
 *     then its parent's, up to the root. Since 6.15 an ancestor's program
 *     attached with BPF_F_PREORDER runs before its descendants', and since
 *     6.16 an attacher can place a program before or after another one. The
 *     report does not guess: it gives the order of the kernel's effective
 *     array (BPF_F_QUERY_EFFECTIVE, which lists programs in run order)
 *     relative to ours: "before", "after", "between" (when ours are two).
 *   - Every program runs, whatever the earlier ones returned. For
 *     connect4/6 they share one sockaddr: a later program sees the rewrite
 *     of an earlier one (ours: to the outbound listener, 127.0.0.1:15001)
 *     and its own rewrite wins, and one program returning 0 (deny) fails
 *     connect() with EPERM. So a program that runs before ours and
 *     rewrites (a socket load balancer turning a service IP into a
 *     backend) is seen by ours, which captures and judges the backend's
 *     address; one that runs after ours and rewrites again takes the
 *     connection away from the sidecar, past the policy ours applied.
 *   - sock_ops callback flags (bpf_sock_ops_cb_flags_set()) are per socket:
 *     a program that sets them without keeping the bits already set turns
 *     off the others' callbacks (ours needs the state callback).
 *   - Bytes sidelane redirects socket to socket never pass through the TCP
 *     stack: ingress/egress skb programs (traffic accounting) do not see
 *     accelerated connections' payload.
 *   - sk_lookup: all run in attach order; a socket selected by one stands
 *     unless a later one replaces it (BPF_SK_LOOKUP_F_REPLACE); a drop
 *     counts only if no program selected a socket.
 *
 * "Ours" means the program ids of the links (and programs) pinned under the
 * pin root, and the maps pinned there. Another sidelane's pins (another pin
 * root) are foreign: two sidelanes on one cgroup path conflict like two
 * meshes.
 */
#ifndef SL_COEXIST_H
#define SL_COEXIST_H

#include <limits.h>
#include <stdio.h>
#include <linux/types.h>

/* Programs reported at most (the rest are counted in n_dropped). */
#define SL_COEXIST_MAX 64
/* Maps of a foreign sock_ops program looked at for a sockmap it feeds. */
#define SL_COEXIST_MAX_MAP_IDS 16

/* Where a foreign program is attached. */
enum sl_cx_where {
	SL_CX_OWN, /* directly on the app's or the sidecar's cgroup */
	SL_CX_INHERITED, /* on an ancestor of one of them */
	SL_CX_ABOVE, /* runs for them, attached above the visible cgroup tree */
	SL_CX_SOCKMAP, /* on a sockmap/sockhash */
	SL_CX_NETNS, /* sk_lookup on this network namespace */
};

/* What sidelane does about it (the rule above). */
enum sl_cx_action { SL_CX_ALONGSIDE, SL_CX_WARN, SL_CX_REFUSE };

/* Run order relative to ours of the same attach type. */
enum sl_cx_order {
	SL_CX_ORDER_NONE, /* none of ours of that type there */
	SL_CX_BEFORE,
	SL_CX_AFTER,
	SL_CX_BETWEEN,
};

/* sl_coexist_prog.applies / .runs: which of our cgroups. */
#define SL_CX_APP 0x1
#define SL_CX_SIDECAR 0x2

struct sl_coexist_prog {
	__u32 id;
	char name[16]; /* BPF_OBJ_NAME_LEN; "" if unreadable (no CAP_SYS_ADMIN) */
	__u8 tag[8];
	__u32 prog_type; /* enum bpf_prog_type */
	__u32 attach_type; /* enum bpf_attach_type */
	enum sl_cx_where where;
	enum sl_cx_action action;
	enum sl_cx_order order;
	unsigned int applies; /* SL_CX_APP|SL_CX_SIDECAR: on the path of */
	unsigned int runs; /* in the effective array of (0: overridden) */
	/* Cgroup: id, and how many levels above the app's (or, with base
	 * SL_CX_SIDECAR, the sidecar's) cgroup it is: the path is that one's
	 * with levels_up components removed (sl_coexist_where()).
	 */
	__u64 cgroup_id;
	unsigned int base;
	unsigned int levels_up;
	__u32 attach_flags; /* of the cgroup: BPF_F_ALLOW_MULTI/OVERRIDE */
	/* SL_CX_SOCKMAP: the map; fed_by: a foreign sock_ops of our cgroups
	 * that references it (0: none), on_ours: it is sidelane's sockhash.
	 */
	__u32 map_id, map_type, fed_by;
	char map_name[16];
	int on_ours;
	/* SL_CX_OWN/INHERITED/ABOVE sock_ops: the maps it references. */
	__u32 n_map_ids;
	__u32 map_ids[SL_COEXIST_MAX_MAP_IDS];
	/* sock_ops: a sockmap with sk_msg/sk_skb programs it references (0:
	 * none); feeds_ours: that map is one of sidelane's.
	 */
	__u32 feeds_map;
	int feeds_ours;
};

struct sl_coexist {
	char app_cgroup[PATH_MAX]; /* resolved; "" if none */
	char sidecar_cgroup[PATH_MAX]; /* "" if none or the app's */
	unsigned int n_ours; /* our program ids found in the pins */
	unsigned int n; /* foreign programs in progs[] */
	unsigned int n_dropped; /* more than SL_COEXIST_MAX */
	/* First error met (the scan goes on): -EPERM means names, tags and
	 * sockmaps need CAP_SYS_ADMIN (the admin endpoint runs without it).
	 */
	int err;
	struct sl_coexist_prog progs[SL_COEXIST_MAX];
};

/* List the programs attached to the app's cgroup, the sidecar's (NULL: none)
 * and every ancestor up to the cgroup2 root, for the attach types that
 * matter to sockets; the sockmaps/sockhashes of the system with sk_msg or
 * sk_skb programs; sk_lookup programs of this network namespace (unless the
 * pinned sk_lookup link serves another one). Ours (pinned under pin_root,
 * which may be NULL or absent) are left out. Cgroups are absolute paths or
 * relative to the cgroup2 mount; nothing is logged. The scan goes on past
 * errors: out holds what was found, and the first error (also returned,
 * as -errno; 0 if none) is in out->err.
 */
int sl_coexist_scan(const char *app_cgroup, const char *sidecar_cgroup,
		    const char *pin_root, struct sl_coexist *out);

/* The cgroup path of p into buf ("" for a sockmap or the netns). */
const char *sl_coexist_where(const struct sl_coexist *cx,
			     const struct sl_coexist_prog *p, char *buf,
			     size_t len);

/* One line on p, as `run` logs it (no newline): what, where, action, why. */
void sl_coexist_describe(const struct sl_coexist *cx,
			 const struct sl_coexist_prog *p, char *buf, size_t len);

/* Names for reports: "sock_ops", "connect4", "sk_msg", ... (bpftool's);
 * "alongside"/"warn"/"refuse"; "own"/"inherited"/...; "before"/"after"/...
 */
const char *sl_cx_attach_name(__u32 attach_type);
const char *sl_cx_action_name(enum sl_cx_action a);
const char *sl_cx_where_name(enum sl_cx_where w);
const char *sl_cx_order_name(enum sl_cx_order o);

/* `sidelane run` at start: scan, then one log line per foreign program
 * (warning for warn/refuse, info for alongside; unrelated sockmaps at debug
 * level and summed up in one line). Number of foreign programs or -errno.
 */
int sl_coexist_report(const char *app_cgroup, const char *sidecar_cgroup,
		      const char *pin_root);

/* `sidelane status`: text, or as JSON the member ,"coexist":[...] (and
 * ,"coexist_error":"..." when the scan was partial).
 */
void sl_coexist_print(FILE *f, const struct sl_coexist *cx, int json);

#endif /* SL_COEXIST_H */
