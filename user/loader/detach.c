// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* `sidelane detach`, `gc` and a bench's clean-up: remove what every loader
 * pinned under one pin root, in the order the kernel needs.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "loader/capture_user.h"
#include "loader/detach.h"
#include "loader/fastpath_user.h"
#include "loader/inbound_user.h"
#include "lib/log.h"

int sl_detach(const char *pin_root)
{
	struct stat st;
	int err, e;

	if (stat(pin_root, &st))
		return -errno;
	/* Programs first, each loader's links; capture's and inbound's links
	 * and maps live in the same folder. Maps go last: the sockhash is
	 * freed once its last reference drops.
	 */
	err = sl_fp_detach_links(pin_root);
	if (!err)
		err = sl_cap_detach(pin_root);
	if (!err)
		err = sl_in_detach(pin_root);
	e = sl_fp_unpin_maps(pin_root);
	if (!err)
		err = e;
	if (!err && rmdir(pin_root)) {
		err = -errno;
		pr_warn("%s is not empty after removing sidelane's pins: %s\n",
			pin_root, strerror(-err));
	}
	return err;
}
