/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* `sidelane run` (daemon.c): the sidecar's start, serving and stop. */
#ifndef SL_DAEMON_H
#define SL_DAEMON_H

#include <stdbool.h>
#include "reload.h"

struct sl_config;

struct sl_daemon_opts {
	const char *sidecar_cgroup; /* --sidecar-cgroup, joined; NULL: ours */
	bool detach_on_exit; /* remove the kernel side on the way out */
	/* --config, followed while running (reload.h); NULL: the default */
	const char *config_path;
	sl_config_load_fn load; /* how cfg was loaded: again at a reload */
	void *load_arg;
};

/* Run the sidecar cfg describes (the command line already applied) until
 * SIGTERM/SIGINT. The exit status: 0, 1 a runtime failure, 2 bad TLS
 * material. cfg may be changed (capture off in the root cgroup).
 */
int sl_daemon_main(struct sl_config *cfg, const struct sl_daemon_opts *o);

#endif /* SL_DAEMON_H */
