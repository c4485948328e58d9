/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The accounting ring buffer, defined once for every BPF object that emits
 * events (fastpath.bpf.c at close, capture.bpf.c at a denied connect); the
 * loaders pin the first and reuse that pin for the others.
 */
#ifndef EVENTS_BPF_H
#define EVENTS_BPF_H

#include "acct.h"

/* close and denial events -> user space (user/loader/acct.c) */
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

/* Submit flags: wake the reader only once SL_EVENTS_WAKE_BYTES wait in the
 * ring. It polls every SL_ACCT_POLL_MS anyway; a wake-up per record (one
 * per closed socket, three a relayed connection) cost every new connection
 * three context switches of the accounting thread.
 */
static __always_inline __u64 sl_event_flags(void)
{
	return bpf_ringbuf_query(&sl_events, BPF_RB_AVAIL_DATA) >=
			       SL_EVENTS_WAKE_BYTES ?
		       BPF_RB_FORCE_WAKEUP :
		       BPF_RB_NO_WAKEUP;
}

#endif /* EVENTS_BPF_H */
