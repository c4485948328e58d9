// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* What running beside another owner's program means, per attach type: the
 * kernel's semantics the coexistence scan (coexist.c) and its reports
 * (coexist_report.c) cite.
 */
#include <stddef.h>
#include <bpf/bpf.h>
#include "loader/coexist.h"
#include "loader/coexist_int.h"

#define HOW_ALL_RUN "all run whatever the others return; one returning 0 fails the call with EPERM"

/* What running beside ours means, per attach type (kernel semantics: see
 * coexist.h).
 */
const struct cx_type cg_types[] = {
	{ BPF_CGROUP_SOCK_OPS, "sock_ops",
	  "every sock_ops program runs for each TCP event; callback flags are per "
	  "socket: one that sets them without keeping the bits already set turns "
	  "off the others' callbacks" },
	{ BPF_CGROUP_INET4_CONNECT, "connect4",
	  "all run on one shared address: a later one sees an earlier one's "
	  "rewrite and its own rewrite wins; one returning 0 fails connect() "
	  "with EPERM" },
	{ BPF_CGROUP_INET6_CONNECT, "connect6",
	  "all run on one shared address: a later one sees an earlier one's "
	  "rewrite and its own rewrite wins; one returning 0 fails connect() "
	  "with EPERM" },
	{ BPF_CGROUP_INET4_GETPEERNAME, "getpeername4",
	  "all run on one shared address: the last rewrite is what the app sees" },
	{ BPF_CGROUP_INET6_GETPEERNAME, "getpeername6",
	  "all run on one shared address: the last rewrite is what the app sees" },
	{ BPF_CGROUP_GETSOCKOPT, "getsockopt",
	  "all run after the kernel's getsockopt, each on the value and return "
	  "code the previous left: the last writer wins (ours answers "
	  "SO_ORIGINAL_DST)" },
	{ BPF_CGROUP_SETSOCKOPT, "setsockopt",
	  "all run before the kernel's setsockopt, each on the options the "
	  "previous left; one returning 0 fails it with EPERM" },
	{ BPF_CGROUP_INET_SOCK_CREATE, "sock_create", HOW_ALL_RUN },
	{ BPF_CGROUP_INET_SOCK_RELEASE, "sock_release", HOW_ALL_RUN },
	{ BPF_CGROUP_INET4_BIND, "bind4",
	  "all run on one shared address; " HOW_ALL_RUN },
	{ BPF_CGROUP_INET6_BIND, "bind6",
	  "all run on one shared address; " HOW_ALL_RUN },
	{ BPF_CGROUP_INET4_POST_BIND, "post_bind4", HOW_ALL_RUN },
	{ BPF_CGROUP_INET6_POST_BIND, "post_bind6", HOW_ALL_RUN },
	{ BPF_CGROUP_UDP4_SENDMSG, "sendmsg4",
	  "all run on one shared address; " HOW_ALL_RUN },
	{ BPF_CGROUP_UDP6_SENDMSG, "sendmsg6",
	  "all run on one shared address; " HOW_ALL_RUN },
	{ BPF_CGROUP_UDP4_RECVMSG, "recvmsg4",
	  "all run on one shared address: the last rewrite is what the app sees" },
	{ BPF_CGROUP_UDP6_RECVMSG, "recvmsg6",
	  "all run on one shared address: the last rewrite is what the app sees" },
	{ BPF_CGROUP_INET_INGRESS, "ingress",
	  "all run; a packet is dropped if one returns 0. Bytes sidelane "
	  "redirects socket to socket never pass here: a traffic counter misses "
	  "accelerated connections" },
	{ BPF_CGROUP_INET_EGRESS, "egress",
	  "all run; a packet is dropped if one returns 0. Bytes sidelane "
	  "redirects socket to socket never pass here: a traffic counter misses "
	  "accelerated connections" },
};

const struct cx_type map_types[] = {
	{ BPF_SK_MSG_VERDICT, "sk_msg", NULL },
	{ BPF_SK_SKB_STREAM_PARSER, "sk_skb_stream_parser", NULL },
	{ BPF_SK_SKB_STREAM_VERDICT, "sk_skb_stream_verdict", NULL },
	{ BPF_SK_SKB_VERDICT, "sk_skb_verdict", NULL },
};

const struct cx_type lookup_type = {
	BPF_SK_LOOKUP, "sk_lookup",
	"all run in attach order; a socket selected by one stands unless a "
	"later one replaces it (BPF_SK_LOOKUP_F_REPLACE); a drop counts only "
	"if none selected a socket",
};

const size_t n_cg_types = sizeof(cg_types) / sizeof(cg_types[0]);
const size_t n_map_types = sizeof(map_types) / sizeof(map_types[0]);

const char *const map_note =
	"a socket takes the sk_msg/sk_skb programs of the first sockmap it "
	"enters and inserting it into a second one with programs fails (EBUSY): "
	"which of the two accelerates a connection depends on whose sock_ops "
	"runs first";

const struct cx_type *type_of(__u32 attach_type)
{
	size_t i;

	for (i = 0; i < n_cg_types; i++)
		if (cg_types[i].type == attach_type)
			return &cg_types[i];
	for (i = 0; i < n_map_types; i++)
		if (map_types[i].type == attach_type)
			return &map_types[i];
	return attach_type == BPF_SK_LOOKUP ? &lookup_type : NULL;
}

const char *sl_cx_attach_name(__u32 attach_type)
{
	const struct cx_type *t = type_of(attach_type);

	return t ? t->name : "other";
}

const char *sl_cx_action_name(enum sl_cx_action a)
{
	return a == SL_CX_REFUSE ? "refuse" : a == SL_CX_WARN ? "warn" : "alongside";
}

const char *sl_cx_where_name(enum sl_cx_where w)
{
	static const char *const names[] = {
		[SL_CX_OWN] = "own",	     [SL_CX_INHERITED] = "inherited",
		[SL_CX_ABOVE] = "above",     [SL_CX_SOCKMAP] = "sockmap",
		[SL_CX_NETNS] = "netns",
	};

	return (unsigned int)w < sizeof(names) / sizeof(names[0]) ? names[w] : "?";
}

const char *sl_cx_order_name(enum sl_cx_order o)
{
	static const char *const names[] = {
		[SL_CX_ORDER_NONE] = "none", [SL_CX_BEFORE] = "before",
		[SL_CX_AFTER] = "after",     [SL_CX_BETWEEN] = "between",
	};

	return (unsigned int)o < sizeof(names) / sizeof(names[0]) ? names[o] : "?";
}
