// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Transparent capture and L3/L4 policy (kernel side), without iptables:
 * - cgroup/connect4|6 on the app's cgroup: policy first (a denied
 *   destination fails with EPERM), then the app's outbound TCP connect is
 *   rewritten to sidelane's outbound listener and the original destination
 *   kept in the socket's storage (sl_cap_sk), which dies with the socket;
 * - sockops on the app's cgroup: at established, the record is also keyed by
 *   the app socket's own address (what the sidecar sees as its peer); at
 *   TCP_CLOSE that entry goes;
 * - the same sockops on the sidecar's cgroup: when the sidecar's end of such
 *   a connection is established, the record is copied into that socket's
 *   storage (sl_origdst_sk), so it outlives the app socket;
 * - cgroup/getsockopt on the sidecar's cgroup answers SO_ORIGINAL_DST and
 *   IP6T_SO_ORIGINAL_DST like iptables REDIRECT would;
 * - cgroup/getpeername4|6 on the app's cgroup returns the original.
 * Loaded and attached by user/loader/capture.c.
 */
#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include "sidelane.h"
#include "fastpath.h"
#include "capture.h"
#include "sockkey.bpf.h"
#include "events.bpf.h"

#define SL_SOCK_STREAM 1
#define SL_SOL_IP 0
#define SL_SOL_IPV6 41
#define SL_SO_ORIGINAL_DST 80 /* linux/netfilter_ipv4.h */
#define SL_IP6T_SO_ORIGINAL_DST 80 /* linux/netfilter_ipv6/ip6_tables.h */

/* 0 -> capture settings */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sl_capture_cfg);
} sl_capture_cfg SEC(".maps");

/* 0 -> ports to capture / never capture, one bit each */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sl_port_bits);
} sl_capture_ports SEC(".maps");

/* prefix -> 1: destinations to capture (include) or never to (exclude) */
#define SL_CIDR_TRIE(name, keytype)                                            \
	struct {                                                               \
		__uint(type, BPF_MAP_TYPE_LPM_TRIE);                            \
		__uint(max_entries, SL_MAX_CAPTURE_CIDRS);                      \
		__uint(map_flags, BPF_F_NO_PREALLOC);                           \
		__type(key, keytype);                                           \
		__type(value, __u8);                                            \
	} name SEC(".maps")
SL_CIDR_TRIE(sl_cap_incl4, struct sl_lpm4);
SL_CIDR_TRIE(sl_cap_excl4, struct sl_lpm4);
SL_CIDR_TRIE(sl_cap_incl6, struct sl_lpm6);
SL_CIDR_TRIE(sl_cap_excl6, struct sl_lpm6);

/* prefix -> the policy rules of that prefix; two generations per family */
#define SL_POLICY_TRIE(name, keytype)                                          \
	struct {                                                               \
		__uint(type, BPF_MAP_TYPE_LPM_TRIE);                            \
		__uint(max_entries, SL_MAX_POLICY_PREFIXES);                    \
		__uint(map_flags, BPF_F_NO_PREALLOC);                           \
		__type(key, keytype);                                           \
		__type(value, struct sl_policy_val);                            \
	} name SEC(".maps")
SL_POLICY_TRIE(sl_policy4_0, struct sl_lpm4);
SL_POLICY_TRIE(sl_policy4_1, struct sl_lpm4);
SL_POLICY_TRIE(sl_policy6_0, struct sl_lpm6);
SL_POLICY_TRIE(sl_policy6_1, struct sl_lpm6);

/* 0 -> live generation and default actions */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sl_policy_state);
} sl_policy_state SEC(".maps");

/* rule id (0: the default action) -> connects it decided. Sized for the
 * live set and the one replacing it (ids of rules that went are removed
 * after each swap). One shared counter, added to atomically, not one per
 * CPU: a connect is rare next to a packet, and a per-CPU map would cost
 * its size again for every possible CPU of the node (2.1 MiB at 128).
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2 * SL_MAX_POLICY_RULES + 1);
	__type(key, __u32);
	__type(value, __u64);
} sl_policy_hits SEC(".maps");

/* app socket -> its capture record, from connect() for the socket's life.
 * Socket storage, not a hash by cookie: a connect that fails after the hook
 * but before the SYN (IPV6_V6ONLY to ::ffff:x is ENETUNREACH, bind conflicts
 * EADDRNOTAVAIL) never reaches sockops, and nothing could remove its entry.
 */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* required for SK_STORAGE */
	__type(key, int);
	__type(value, struct sl_orig);
} sl_cap_sk SEC(".maps");

/* sidecar's accepted socket -> original destination it stands for, from its
 * establishment for its life. The app may close, and its socket reach
 * TCP_CLOSE, before the proxy gets to accept() and ask.
 */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sl_orig);
} sl_origdst_sk SEC(".maps");

/* app socket cookie -> copy of its capture record, from the SYN
 * (TCP_CONNECT, which arms the close callback) to TCP_CLOSE: the live
 * captured connections. An index for user space (`sidelane conns`, status),
 * which cannot read socket storage by cookie; nothing is decided from it.
 * A connect that fails before its SYN never enters it. An LRU all the same,
 * so that anything that ever escaped the close callback would age out
 * rather than stay.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SL_MAX_CAPTURED);
	__type(key, __u64);
	__type(value, struct sl_orig);
} sl_orig_by_cookie SEC(".maps");

/* app socket's own address -> original destination, from the app's
 * established until the sidecar's end has copied it (or the app's close).
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SL_MAX_CAPTURED);
	__type(key, struct sl_addr_key);
	__type(value, struct sl_orig);
} sl_orig_by_addr SEC(".maps");

/* app socket cookie -> why its connect was not captured. An LRU: a connect
 * that fails before its SYN never reaches the close callback, and this is
 * a diagnostic, so old entries may go (the exact maps above never evict).
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SL_MAX_CONNECT_REASONS);
	__type(key, __u64);
	__type(value, struct sl_connect_rec);
} sl_connect_reason SEC(".maps");

/* 0 -> connects by reason, SO_ORIGINAL_DST answers; per CPU */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sl_capture_stats);
} sl_capture_stats SEC(".maps");

static __always_inline struct sl_capture_stats *stats(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&sl_capture_stats, &zero);
}

static __always_inline void count(enum sl_capture_reason r)
{
	struct sl_capture_stats *s = stats();

	if (s && r < SL_CR_NR)
		s->reason[r]++;
}

static __always_inline int port_bit(const __u64 *words, __u16 port)
{
	return (words[(port >> 6) & (SL_PORT_WORDS - 1)] >> (port & 63)) & 1;
}

/* A destination, whichever way the app spelled it: v4 and v4-mapped v6 both
 * become the IPv4 address, so policy and capture cannot be bypassed through
 * the other family.
 */
struct dest {
	__u8 ip[16]; /* v4-mapped for IPv4 */
	__u16 port;
	__u16 is_v4;
};

static __always_inline int is_v4mapped(const __u8 *ip)
{
	const __u32 *w = (const __u32 *)ip;

	return !w[0] && !w[1] && w[2] == bpf_htonl(0x0000ffff);
}

/* The decision of generation gen & 1, not counted. */
static __always_inline int policy_lookup(const struct sl_policy_state *ps,
					 __u32 gen, const struct dest *d,
					 __u32 *rule_id)
{
	struct sl_policy_val *val = NULL;
	int action;

	gen &= 1;
	if (d->is_v4) {
		struct sl_lpm4 k = { .prefixlen = 32 };

		__builtin_memcpy(k.addr, d->ip + 12, 4);
		val = bpf_map_lookup_elem(gen ? (void *)&sl_policy4_1 :
						(void *)&sl_policy4_0, &k);
	} else {
		struct sl_lpm6 k = { .prefixlen = 128 };

		__builtin_memcpy(k.addr, d->ip, 16);
		val = bpf_map_lookup_elem(gen ? (void *)&sl_policy6_1 :
						(void *)&sl_policy6_0, &k);
	}
	*rule_id = 0;
	action = val ? sl_policy_match(val, d->port, rule_id) : 0;
	if (!action) {
		action = ps->default_action[gen] ?: SL_ACTION_ALLOW_V;
		*rule_id = 0;
	}
	return action;
}

/* Returns SL_ACTION_ALLOW_V or SL_ACTION_DENY_V, the deciding rule in
 * *rule_id (0: the default); counts it. Seqcount read of the live
 * generation (see struct sl_policy_state): the volatile reads keep clang
 * from merging or moving the two reads of gen around the lookups, and x86
 * (the only target built, -D__TARGET_ARCH_x86) keeps loads in order.
 */
static __always_inline int policy_verdict(const struct dest *d, __u32 *rule_id)
{
	struct sl_policy_state *ps;
	__u32 zero = 0, gen;
	__u64 *hits;
	int action, i;

	*rule_id = 0;
	ps = bpf_map_lookup_elem(&sl_policy_state, &zero);
	if (!ps) /* an array's slot 0 always exists: unreachable */
		return SL_ACTION_DENY_V;
	if (!ps->configured)
		return SL_ACTION_ALLOW_V;
	action = SL_ACTION_DENY_V; /* gen moved under both tries: fail closed */
	for (i = 0; i < 2; i++) {
		int a;

		gen = *(volatile __u32 *)&ps->gen;
		a = policy_lookup(ps, gen, d, rule_id);
		if (*(volatile __u32 *)&ps->gen == gen) {
			action = a;
			break;
		}
	}
	if (i == 2)
		*rule_id = 0;
	hits = bpf_map_lookup_elem(&sl_policy_hits, rule_id);
	if (hits)
		__sync_fetch_and_add(hits, 1);
	return action;
}

static __always_inline int in_trie(const struct dest *d, void *trie4,
				   void *trie6)
{
	if (d->is_v4) {
		struct sl_lpm4 k = { .prefixlen = 32 };

		__builtin_memcpy(k.addr, d->ip + 12, 4);
		return bpf_map_lookup_elem(trie4, &k) != NULL;
	} else {
		struct sl_lpm6 k = { .prefixlen = 128 };

		__builtin_memcpy(k.addr, d->ip, 16);
		return bpf_map_lookup_elem(trie6, &k) != NULL;
	}
}

/* A socket connecting again (after a failed connect) must not keep the
 * record of its earlier captured attempt.
 */
static __always_inline void forget(struct bpf_sock_addr *ctx)
{
	struct bpf_sock *sk = ctx->sk;
	struct sl_orig *o;

	if (!sk)
		return;
	o = bpf_sk_storage_get(&sl_cap_sk, sk, 0, 0);
	if (o && o->family) {
		o->family = 0;
		bpf_map_delete_elem(&sl_orig_by_cookie, &o->cookie);
	}
}

/* Count a connect left uncaptured, and note why under its cookie. */
static __always_inline void uncaptured(struct bpf_sock_addr *ctx,
				       const struct dest *d,
				       enum sl_capture_reason r)
{
	struct sl_connect_rec rec = { .port = d->port, .reason = r };
	__u64 cookie = bpf_get_socket_cookie(ctx);

	count(r);
	forget(ctx);
	__builtin_memcpy(rec.ip, d->ip, 16);
	bpf_map_update_elem(&sl_connect_reason, &cookie, &rec, BPF_ANY);
}

/* A denied connect is a connection the data plane saw: its record goes to
 * user space like a closed one's (the access log's "denied" lines).
 */
static __always_inline void emit_denied(const struct dest *d, __u32 rule_id)
{
	struct sl_event *ev = bpf_ringbuf_reserve(&sl_events, sizeof(*ev), 0);

	if (!ev) {
		sl_event_lost();
		return;
	}
	__builtin_memset(ev, 0, sizeof(*ev));
	ev->type = SL_EV_DENIED;
	ev->rule_id = rule_id;
	ev->end_ns = bpf_ktime_get_ns();
	ev->conn.start_ns = ev->end_ns;
	__builtin_memcpy(ev->conn.key.remote_ip, d->ip, 16);
	ev->conn.key.remote_port = d->port;
	ev->conn.pid = bpf_get_current_pid_tgid() >> 32;
	ev->conn.cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(ev->conn.comm, sizeof(ev->conn.comm));
	bpf_ringbuf_submit(ev, sl_event_flags());
}

/* Decide for one connect(): 0 deny (EPERM), 1 go on. *cfgp set when the
 * connect is to be sent to the outbound listener; *rule_id is the policy
 * rule that allowed it.
 */
static __always_inline int on_connect(struct bpf_sock_addr *ctx,
				      const struct dest *d,
				      const struct sl_capture_cfg **cfgp,
				      __u32 *rule_id)
{
	const struct sl_capture_cfg *cfg;
	struct sl_port_bits *ports;
	struct bpf_sock *sk;
	__u32 zero = 0;

	*cfgp = NULL;
	*rule_id = 0;
	if (ctx->type != SL_SOCK_STREAM) {
		count(SL_CR_NOT_TCP);
		return 1;
	}
	cfg = bpf_map_lookup_elem(&sl_capture_cfg, &zero);
	if (!cfg)
		return 1;
	/* Policy before anything a process can choose for its own socket:
	 * SO_MARK only needs CAP_NET_RAW, which containers get by default.
	 * The proxy checks its upstreams against the same rules anyway.
	 */
	if (policy_verdict(d, rule_id) == SL_ACTION_DENY_V) {
		count(SL_CR_DENIED);
		forget(ctx);
		emit_denied(d, *rule_id);
		return 0;
	}
	/* Loop avoidance: sidelane marks its own upstream sockets (SO_MARK
	 * before connect). Normally it runs outside the app's cgroup, where
	 * this program is not attached, and the mark is then ignored: an app
	 * setting it must still be captured. Only a sidecar sharing the app's
	 * cgroup (mark_exempts, set by sl_cap_attach) needs it.
	 */
	sk = ctx->sk;
	if (sk && cfg->mark_exempts && cfg->mark && sk->mark == cfg->mark) {
		uncaptured(ctx, d, SL_CR_SIDECAR_OWN);
		return 1;
	}
	if (!cfg->enabled) {
		uncaptured(ctx, d, SL_CR_DISABLED);
		return 1;
	}
	if (d->port == cfg->outbound_port) {
		uncaptured(ctx, d, SL_CR_OWN_LISTENER);
		return 1;
	}
	if (sl_is_loopback(d->ip)) {
		uncaptured(ctx, d, SL_CR_LOOPBACK);
		return 1;
	}
	if (in_trie(d, &sl_cap_excl4, &sl_cap_excl6)) {
		uncaptured(ctx, d, SL_CR_EXCLUDED_CIDR);
		return 1;
	}
	if (!in_trie(d, &sl_cap_incl4, &sl_cap_incl6)) {
		uncaptured(ctx, d, SL_CR_NOT_INCLUDED_CIDR);
		return 1;
	}
	ports = bpf_map_lookup_elem(&sl_capture_ports, &zero);
	if (!ports)
		return 1;
	if (port_bit(ports->exclude, d->port)) {
		uncaptured(ctx, d, SL_CR_EXCLUDED_PORT);
		return 1;
	}
	if (!cfg->include_all_ports && !port_bit(ports->include, d->port)) {
		uncaptured(ctx, d, SL_CR_NOT_INCLUDED_PORT);
		return 1;
	}
	*cfgp = cfg;
	return 1;
}

/* Remember where the app meant to go, in the socket's storage; 0, or -1
 * when there is no memory for it (the connect then goes direct: policy has
 * already been applied).
 */
static __always_inline int remember(struct bpf_sock_addr *ctx,
				    const struct dest *d, __u32 rule_id)
{
	struct bpf_sock *sk = ctx->sk;
	struct sl_orig *o = NULL;

	if (sk)
		o = bpf_sk_storage_get(&sl_cap_sk, sk, 0,
				       BPF_SK_STORAGE_GET_F_CREATE);
	if (!o) {
		uncaptured(ctx, d, SL_CR_TABLE_FULL);
		return -1;
	}
	__builtin_memcpy(o->ip, d->ip, 16);
	o->port = d->port;
	o->family = d->is_v4 ? SL_AF_INET : SL_AF_INET6;
	o->rule_id = rule_id;
	o->cookie = bpf_get_socket_cookie(ctx);
	count(SL_CR_CAPTURED);
	return 0;
}

SEC("cgroup/connect4")
int sl_connect4(struct bpf_sock_addr *ctx)
{
	const struct sl_capture_cfg *cfg;
	struct dest d = { .is_v4 = 1 };
	__u32 rule_id;

	sl_v4mapped(d.ip, ctx->user_ip4);
	d.port = bpf_ntohs((__u16)ctx->user_port);
	if (!on_connect(ctx, &d, &cfg, &rule_id))
		return 0;
	if (!cfg || remember(ctx, &d, rule_id))
		return 1;
	ctx->user_ip4 = ((const __u32 *)cfg->outbound_ip4)[3];
	ctx->user_port = bpf_htons(cfg->outbound_port);
	return 1;
}

SEC("cgroup/connect6")
int sl_connect6(struct bpf_sock_addr *ctx)
{
	const struct sl_capture_cfg *cfg;
	struct dest d = {};
	const __u32 *to;
	__u32 w[4], rule_id;

	/* Each user_ip6 word is its own ctx access: read them one by one. */
	w[0] = ctx->user_ip6[0];
	w[1] = ctx->user_ip6[1];
	w[2] = ctx->user_ip6[2];
	w[3] = ctx->user_ip6[3];
	sl_copy_v6(d.ip, w);
	d.is_v4 = is_v4mapped(d.ip);
	d.port = bpf_ntohs((__u16)ctx->user_port);
	if (!on_connect(ctx, &d, &cfg, &rule_id))
		return 0;
	if (!cfg || remember(ctx, &d, rule_id))
		return 1;
	/* A v4-mapped destination goes to the IPv4 listener through the same
	 * mapping; a native IPv6 one to the IPv6 listener.
	 */
	to = (const __u32 *)(d.is_v4 ? cfg->outbound_ip4 : cfg->outbound_ip6);
	ctx->user_ip6[0] = to[0];
	ctx->user_ip6[1] = to[1];
	ctx->user_ip6[2] = to[2];
	ctx->user_ip6[3] = to[3];
	ctx->user_port = bpf_htons(cfg->outbound_port);
	return 1;
}

/* An address as the other end of a connection on this host sees it: own
 * (local) or peer (remote) end of skops.
 */
static __always_inline int sock_addr_key(struct bpf_sock_ops *skops, int peer,
					 struct sl_addr_key *k)
{
	struct sl_sock_key key = {};

	if (sl_key_own(skops, &key))
		return -1;
	k->netns_cookie = bpf_get_netns_cookie(skops);
	__builtin_memcpy(k->ip, peer ? key.remote_ip : key.local_ip, 16);
	k->port = peer ? key.remote_port : key.local_port;
	return 0;
}

/* The sidecar's end of a captured connection is established: its peer is
 * the app socket, whose record moves into this socket's storage. The app's
 * ACTIVE_ESTABLISHED (which keyed the record by address) ran before the app
 * sent the ACK that establishes this end, so the entry is there; the app's
 * TCP_CLOSE can only follow this end's ACK of its FIN, so it is still there.
 */
static __always_inline void sidecar_established(struct bpf_sock_ops *skops)
{
	const struct sl_capture_cfg *cfg;
	struct sl_addr_key ak = {};
	struct sl_orig rec, *o;
	struct bpf_sock *sk;
	__u32 zero = 0;

	/* skops->sk is read once into a local and checked there: each ctx
	 * read is a fresh sock_or_null for the verifier (6.18), so a check of
	 * one read does not cover another.
	 */
	sk = skops->sk;
	cfg = bpf_map_lookup_elem(&sl_capture_cfg, &zero);
	if (!cfg || !sk || skops->local_port != cfg->outbound_port ||
	    sock_addr_key(skops, 1, &ak))
		return;
	o = bpf_map_lookup_elem(&sl_orig_by_addr, &ak);
	if (!o)
		return;
	/* Through the stack: the helper's init value must be memory of the
	 * storage map's value size, and a value of another map is refused as
	 * such by some verifiers.
	 */
	rec = *o;
	if (bpf_sk_storage_get(&sl_origdst_sk, sk, &rec,
			       BPF_SK_STORAGE_GET_F_CREATE))
		bpf_map_delete_elem(&sl_orig_by_addr, &ak);
}

SEC("sockops")
int sl_capture_sockops(struct bpf_sock_ops *skops)
{
	struct sl_addr_key ak = {};
	struct sl_orig *o = NULL;
	struct bpf_sock *sk;
	__u64 cookie;
	__u32 op = skops->op;

	if (op == BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB) {
		sidecar_established(skops);
		return 1;
	}
	if (op != BPF_SOCK_OPS_TCP_CONNECT_CB &&
	    op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB &&
	    op != BPF_SOCK_OPS_STATE_CB)
		return 1;
	cookie = bpf_get_socket_cookie(skops);
	sk = skops->sk; /* once: see sidecar_established() */
	if (sk)
		o = bpf_sk_storage_get(&sl_cap_sk, sk, 0, 0);
	if (!o || !o->family) {
		/* An uncaptured connect's reason goes at close too. */
		if (op == BPF_SOCK_OPS_TCP_CONNECT_CB &&
		    bpf_map_lookup_elem(&sl_connect_reason, &cookie))
			bpf_sock_ops_cb_flags_set(skops,
						  skops->bpf_sock_ops_cb_flags |
							  BPF_SOCK_OPS_STATE_CB_FLAG);
		else if (op == BPF_SOCK_OPS_STATE_CB &&
			 skops->args[1] == BPF_TCP_CLOSE)
			bpf_map_delete_elem(&sl_connect_reason, &cookie);
		return 1;
	}
	switch (op) {
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
		/* From the SYN on, a close (also a failed connect) reaches us:
		 * only now can the index entry be sure to be removed. If the
		 * update failed, only user space's view would miss it.
		 */
		bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags |
							 BPF_SOCK_OPS_STATE_CB_FLAG);
		bpf_map_update_elem(&sl_orig_by_cookie, &cookie, o, BPF_ANY);
		break;
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		if (!sock_addr_key(skops, 0, &ak))
			bpf_map_update_elem(&sl_orig_by_addr, &ak, o, BPF_ANY);
		break;
	case BPF_SOCK_OPS_STATE_CB:
		if (skops->args[1] != BPF_TCP_CLOSE)
			break;
		/* Normally gone already (moved to the sidecar's socket); not
		 * if the sidecar never got this connection.
		 */
		if (!sock_addr_key(skops, 0, &ak))
			bpf_map_delete_elem(&sl_orig_by_addr, &ak);
		bpf_map_delete_elem(&sl_orig_by_cookie, &cookie);
		break;
	}
	return 1;
}

/* On the sidecar's accepted socket: the record copied into its storage when
 * it was established; else (sockops not on the sidecar's cgroup) by its
 * peer's address, the app socket's. The answer always replaces the
 * kernel's: the program runs after it, and where conntrack is loaded the
 * kernel itself answers, with the listener's own address (nothing was
 * NATed), which is not what the proxy needs.
 */
SEC("cgroup/getsockopt")
int sl_getsockopt(struct bpf_sockopt *ctx)
{
	struct sl_capture_stats *st;
	struct sl_addr_key k = {};
	struct bpf_sock *sk;
	struct sl_orig *o;
	int level = ctx->level, v6;
	__u32 w[4];

	if (ctx->optname != SL_SO_ORIGINAL_DST ||
	    (level != SL_SOL_IP && level != SL_SOL_IPV6))
		return 1;
	v6 = level == SL_SOL_IPV6;
	sk = ctx->sk;
	if (!sk)
		return 1;
	st = stats();
	o = bpf_sk_storage_get(&sl_origdst_sk, sk, 0, 0);
	if (!o) {
		/* Every field read unconditionally into a local, as in
		 * SL_FILL_KEY: clang otherwise turns the v4/v6 branches into
		 * one load from a computed offset, which the verifier refuses
		 * on a sock pointer ("pointer arithmetic on sock prohibited").
		 */
		__u32 fam = sk->family, d4 = sk->dst_ip4;
		__u16 dport = sk->dst_port;

		w[0] = sk->dst_ip6[0];
		w[1] = sk->dst_ip6[1];
		w[2] = sk->dst_ip6[2];
		w[3] = sk->dst_ip6[3];
		barrier_var(fam);
		if (fam == SL_AF_INET)
			sl_v4mapped(k.ip, d4);
		else
			sl_copy_v6(k.ip, w);
		k.port = bpf_ntohs(dport);
		k.netns_cookie = bpf_get_netns_cookie(ctx);
		o = bpf_map_lookup_elem(&sl_orig_by_addr, &k);
	}
	if (!o) {
		if (st)
			st->origdst_missed++;
		return 1;
	}
	if (!v6) {
		struct sockaddr_in *sin = ctx->optval;

		/* SOL_IP answers only for IPv4 destinations, as iptables does. */
		if (o->family != SL_AF_INET || (void *)(sin + 1) > ctx->optval_end)
			return 1;
		sin->sin_family = SL_AF_INET;
		sin->sin_port = bpf_htons(o->port);
		sin->sin_addr.s_addr = ((const __u32 *)o->ip)[3];
		ctx->optlen = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = ctx->optval;

		if ((void *)(sin6 + 1) > ctx->optval_end)
			return 1;
		__builtin_memset(sin6, 0, sizeof(*sin6));
		sin6->sin6_family = SL_AF_INET6;
		sin6->sin6_port = bpf_htons(o->port);
		__builtin_memcpy(&sin6->sin6_addr, o->ip, 16);
		ctx->optlen = sizeof(*sin6);
	}
	ctx->retval = 0;
	if (st)
		st->origdst_answered++;
	return 1;
}

/* The app asks whom it is connected to: the original, not the listener. */
static __always_inline struct sl_orig *captured(struct bpf_sock_addr *ctx)
{
	struct bpf_sock *sk = ctx->sk;
	struct sl_orig *o;

	if (!sk)
		return NULL;
	o = bpf_sk_storage_get(&sl_cap_sk, sk, 0, 0);
	return o && o->family ? o : NULL;
}

SEC("cgroup/getpeername4")
int sl_getpeername4(struct bpf_sock_addr *ctx)
{
	struct sl_capture_stats *st;
	struct sl_orig *o = captured(ctx);

	if (!o || o->family != SL_AF_INET)
		return 1;
	ctx->user_ip4 = ((const __u32 *)o->ip)[3];
	ctx->user_port = bpf_htons(o->port);
	st = stats();
	if (st)
		st->peername_rewritten++;
	return 1;
}

SEC("cgroup/getpeername6")
int sl_getpeername6(struct bpf_sock_addr *ctx)
{
	struct sl_capture_stats *st;
	struct sl_orig *o = captured(ctx);
	const __u32 *w;

	if (!o)
		return 1;
	/* A v6 socket that asked for ::ffff:a.b.c.d gets exactly that back. */
	w = (const __u32 *)o->ip;
	ctx->user_ip6[0] = w[0];
	ctx->user_ip6[1] = w[1];
	ctx->user_ip6[2] = w[2];
	ctx->user_ip6[3] = w[3];
	ctx->user_port = bpf_htons(o->port);
	st = stats();
	if (st)
		st->peername_rewritten++;
	return 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
