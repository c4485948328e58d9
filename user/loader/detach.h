/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Removing everything pinned under a pin root (detach.c). */
#ifndef SL_DETACH_H
#define SL_DETACH_H

/* Remove every link, program and pin sidelane made under pin_root (fast
 * path, capture, inbound); rmdir pin_root. 0, -ENOENT if nothing was
 * there, or -errno.
 */
int sl_detach(const char *pin_root);

#endif /* SL_DETACH_H */
