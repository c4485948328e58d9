/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Dropping privileges once `sidelane run` has loaded and attached
 * everything (user/lib/privs.c, libcap with libpsx: every thread).
 */
#ifndef PRIVS_H
#define PRIVS_H

#include <stddef.h>

/* Keep only what the running sidecar uses: CAP_BPF (the housekeeping
 * thread updates pinned maps) and CAP_NET_ADMIN (SO_MARK on the proxy's
 * upstream sockets; detaching on exit), in the effective and permitted
 * sets of every thread; empty the inheritable and ambient sets and the
 * bounding set, and set no_new_privs, so nothing started later regains
 * more. 0 or -errno; what is kept is written to kept (may be NULL).
 */
int sl_drop_privileges(char *kept, size_t len);

#endif /* PRIVS_H */
