/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The accounting ring buffer, defined once for every BPF object that emits
 * events (fastpath.bpf.c at close, capture.bpf.c at a denied connect); the
 * loaders pin the first and reuse that pin for the others.
 */
#ifndef EVENTS_BPF_H
#define EVENTS_BPF_H

#include "acct.h"

/* close and denial events -> user space (user/acct.c) */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, SL_EVENTS_BYTES);
} sl_events SEC(".maps");

/* 0 -> events dropped because the ring was full (per CPU): a burst is
 * counted, never silent
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} sl_events_lost SEC(".maps");

static __always_inline void sl_event_lost(void)
{
	__u32 zero = 0;
	__u64 *lost = bpf_map_lookup_elem(&sl_events_lost, &zero);

	if (lost)
		(*lost)++;
}

#endif /* EVENTS_BPF_H */
