/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* What the coexistence scan and its reports share (coexist_types.c). */
#ifndef SL_COEXIST_INT_H
#define SL_COEXIST_INT_H

#include <stddef.h>
#include <linux/types.h>

struct cx_type {
	__u32 type;
	const char *name; /* as bpftool names it */
	const char *how; /* what running beside ours means */
};

/* cgroup attach types, sockmap attach types, sk_lookup */
extern const struct cx_type cg_types[], map_types[], lookup_type;
extern const size_t n_cg_types, n_map_types;
/* the sockmap rule: a socket takes the programs of its first sockmap */
extern const char *const map_note;
/* The entry of an attach type, or NULL. */
const struct cx_type *type_of(__u32 attach_type);

#endif /* SL_COEXIST_INT_H */
