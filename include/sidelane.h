/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Names and limits of sidelane, defined once; included by the BPF programs and
 * by user space, which builds every pin path from these macros.
 */
#ifndef SIDELANE_H
#define SIDELANE_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define SL_VERSION "0.1.0"

/* Default pin folder; `--pin-root` overrides it (tests use their own). */
#define SL_PIN_ROOT_DEFAULT "/sys/fs/bpf/sidelane"
/* Where bpffs is conventionally mounted; `sidelane run` mounts it if absent. */
#define SL_BPFFS_DEFAULT "/sys/fs/bpf"

/* Map names: the BPF object's map names, and the file names under the pin root. */
#define SL_MAP_SOCKHASH "sl_sockhash"
#define SL_MAP_CONNS "sl_conns"
#define SL_MAP_COUNTERS "sl_counters"
#define SL_MAP_LOCAL_ADDRS "sl_local_addrs"
#define SL_MAP_SK_STATE "sl_sk_state"
#define SL_MAP_SK_BY_KEY "sl_sk_by_key"
#define SL_MAP_PROXY_STATS "sl_proxy_stats" /* include/stats.h */
#define SL_MAP_CONFIG_INFO "sl_config_info" /* include/stats.h */
#define SL_MAP_FP_CFG "sl_fp_cfg"
#define SL_MAP_EVENTS "sl_events" /* ring buffer of include/acct.h events */
#define SL_MAP_EVENTS_LOST "sl_events_lost"
#define SL_MAP_CONNECT_REASON "sl_connect_reason"

/* Capture and policy maps (bpf/capture.bpf.c), pinned beside the above. */
#define SL_MAP_POLICY_STATE "sl_policy_state"
#define SL_MAP_POLICY_HITS "sl_policy_hits"
#define SL_MAP_ORIG_BY_COOKIE "sl_orig_by_cookie"
#define SL_MAP_ORIG_BY_ADDR "sl_orig_by_addr"
#define SL_MAP_CAPTURE_CFG "sl_capture_cfg"
#define SL_MAP_CAPTURE_STATS "sl_capture_stats"
#define SL_MAP_CAPTURE_PORTS "sl_capture_ports"
#define SL_MAP_CAP_INCL4 "sl_cap_incl4"
#define SL_MAP_CAP_EXCL4 "sl_cap_excl4"
#define SL_MAP_CAP_INCL6 "sl_cap_incl6"
#define SL_MAP_CAP_EXCL6 "sl_cap_excl6"
#define SL_MAP_POLICY4_0 "sl_policy4_0"
#define SL_MAP_POLICY4_1 "sl_policy4_1"
#define SL_MAP_POLICY6_0 "sl_policy6_0"
#define SL_MAP_POLICY6_1 "sl_policy6_1"
/* Capture links: connect4/6, getpeername4/6 and sockops on the app's
 * cgroup, getsockopt (SO_ORIGINAL_DST) on the sidecar's.
 */
#define SL_PIN_LINK_CAPTURE_SOCKOPS "link_capture_sockops"
#define SL_PIN_LINK_CONNECT4 "link_connect4"
#define SL_PIN_LINK_CONNECT6 "link_connect6"
#define SL_PIN_LINK_GETPEERNAME4 "link_getpeername4"
#define SL_PIN_LINK_GETPEERNAME6 "link_getpeername6"
#define SL_PIN_LINK_GETSOCKOPT "link_getsockopt"
/* Capture's sockops on the sidecar's cgroup too (unless it is the app's):
 * the original destination moves to the sidecar's accepted socket.
 */
#define SL_PIN_LINK_CAPTURE_SOCKOPS_SIDECAR "link_capture_sockops_sidecar"
#define SL_MAP_EXCLUDED_PORTS "sl_excluded_ports"
/* Admission (include/admission.h): the mode and what the kernel allows, the
 * counters by reason, and the cgroup/setsockopt program on the app's cgroup
 * that notes send-side options.
 */
#define SL_MAP_ADM_CFG "sl_adm_cfg"
#define SL_MAP_ADM_STATS "sl_adm_stats"
#define SL_PIN_LINK_SETSOCKOPT "link_setsockopt"
/* Splice (include/splice.h): the proxy's upstream sockets, the pairs' gates
 * (mmap()ed by the proxy) and what sk_msg pushed.
 */
#define SL_MAP_RELAY "sl_relay"
#define SL_MAP_SPLICE_IDX "sl_splice_idx"
#define SL_MAP_SPLICE "sl_splice"
#define SL_MAP_SPLICE_STATS "sl_splice_stats"
#define SL_MAP_UP_BY_KEY "sl_up_by_key"
/* The download half: the upstream sockets with the sk_skb verdict, and
 * their cookie -> splice.
 */
#define SL_MAP_DOWN "sl_down"
#define SL_MAP_DOWN_IDX "sl_down_idx"

/* Links and programs pinned under the pin root, so the fast path outlives the
 * process that attached it.
 */
#define SL_PIN_LINK_SOCKOPS "link_sockops"
#define SL_PIN_LINK_SK_MSG "link_sk_msg"
/* The same sockops program on the sidecar's cgroup: the proxy's end of an
 * app<->sidecar connection must be in the sockhash for that hop to redirect.
 */
#define SL_PIN_LINK_SOCKOPS_SIDECAR "link_sockops_sidecar"
/* Kernels before 6.10 have no sockmap bpf_link: the sk_msg program is then
 * attached to the map with BPF_PROG_ATTACH and pinned here instead.
 */
#define SL_PIN_PROG_SK_MSG "prog_sk_msg"
/* The download half's sk_skb verdict on sl_down: link, or (before 6.10)
 * the program attached to the map.
 */
#define SL_PIN_LINK_SK_SKB "link_sk_skb"
#define SL_PIN_PROG_SK_SKB "prog_sk_skb"

/* Limits. */
/* limits.max_conns: what the kernel tables are sized for (sl_sizing_set()) */
#define SL_LIMIT_CONNS_MIN 64
#define SL_LIMIT_CONNS_MAX 1048576
#define SL_LIMIT_CONNS_DEFAULT 4096 /* one pod: about 8 MiB of kernel memory */
#define SL_XSTR_(x) #x
#define SL_XSTR(x) SL_XSTR_(x) /* a number macro as a string literal */
#define SL_MAX_SOCKETS 65536 /* sockhash entries: two per accelerated connection */
#define SL_MAX_CONNS 65536 /* per-socket accounting records */
#define SL_MAX_LOCAL_ADDRS 256 /* host addresses treated as "this host" */
#define SL_MAX_EXCLUDED_PORTS 256 /* service ports kept on the plain path */
/* Redirected bytes land in the peer's psock queue, which no SO_RCVBUF bounds:
 * past this much unread, messages take TCP and its flow control until the
 * peer has caught up (plain loopback buffers about as much).
 */
#define SL_MAX_BACKLOG (4U << 20)

/* Inbound capture (bpf/inbound.bpf.c, user/loader/inbound.c): an sk_lookup program
 * on the pod's network namespace steers connections for the app's ports to
 * the sidecar's inbound listener. Maps and link pinned beside the above.
 */
#define SL_MAP_IN_PORTS "sl_in_ports"
#define SL_MAP_IN_LISTENERS "sl_in_listeners"
#define SL_MAP_IN_STATS "sl_in_stats"
#define SL_MAP_IN_CFG "sl_in_cfg"
#define SL_PIN_LINK_SK_LOOKUP "link_sk_lookup"
/* proxy.external: sockops on the sidecar's cgroup that takes the foreign
 * proxy's inbound listener into sl_in_listeners at listen()
 */
#define SL_PIN_LINK_IN_LISTEN "link_in_listen"

/* LPM trie keys, IPv4 and IPv6 (prefixlen first, as LPM_TRIE requires):
 * capture's CIDR lists and the policy tries.
 */
struct sl_lpm4 {
	__u32 prefixlen;
	__u8 addr[4];
};

struct sl_lpm6 {
	__u32 prefixlen;
	__u8 addr[16];
};

#endif /* SIDELANE_H */
