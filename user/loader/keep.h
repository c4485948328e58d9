/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The running sidecar's hold on its pins (keep.c).
 *
 * A pinned bpf_link whose pin is removed and that nobody else holds is
 * released at once: an `rm -r` of the pin folder (or another tool's
 * clean-up) would take sidelane's programs off the app's cgroup, and with
 * them capture, policy and the fast path, while the proxy ran on. So `run`
 * holds an fd on every pin under its pin root: removed pins change nothing
 * in the kernel, and sl_keep_check() puts them back. What it cannot put
 * back is a link taken off its cgroup (`sidelane detach`, or the cgroup
 * removed): that it reports, and `run` stops.
 */
#ifndef SL_KEEP_H
#define SL_KEEP_H

struct sl_keep;

/* Hold an fd on every pin directly under pin_root. 0 or -errno. */
int sl_keep_open(const char *pin_root, struct sl_keep **out);
/* Pins missing under the pin root are pinned again (the folder made again
 * with its mode if it went too): the number put back (0: nothing was
 * missing), -ENOLINK when a held cgroup link is detached (*what names it),
 * or -errno when pinning failed.
 */
int sl_keep_check(struct sl_keep *k, const char **what);
/* k may be NULL. */
void sl_keep_close(struct sl_keep *k);

#endif /* SL_KEEP_H */
