/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The one definition of sl_local_addrs, for every BPF object that asks "is
 * this address one of ours?" (fastpath.bpf.c, inbound.bpf.c): each object
 * declares it, the loader pins the first and reuses that pin for the rest,
 * which only works while the definitions are equal.
 */
#ifndef LOCAL_ADDRS_BPF_H
#define LOCAL_ADDRS_BPF_H

/* address of this host / network namespace (non-loopback, v4-mapped form)
 * -> 1; user space keeps it current (sl_fp_sync_local_addrs, every 5 s and
 * on SIGHUP in `sidelane run`)
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SL_MAX_LOCAL_ADDRS);
	__type(key, struct sl_addr);
	__type(value, __u8);
} sl_local_addrs SEC(".maps");

#endif /* LOCAL_ADDRS_BPF_H */
