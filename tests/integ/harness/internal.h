/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* What the harness's files share (tests/integ/harness/): its limits, its
 * state (counts, live environments, cleanups), small helpers. The tests
 * see harness.h only.
 */
#ifndef TH_INTERNAL_H
#define TH_INTERNAL_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <openssl/evp.h>
#include "sidelane.h"
#include "lib/cgroup.h"
#include "loader/admission_user.h"
#include "harness.h"
#include "loader/fastpath_user.h"

#define TH_MAX_ENVS 16
#define TH_MAX_CLEANUPS 16
#define TH_READY_MS 15000 /* `sidelane run` until link_sockops is pinned */
#define TH_STOP_MS 5000 /* SIGTERM until SIGKILL */
#define TH_DETACH_MS 10000
#define TH_LOG_DIR "build/tests/logs"

/* report.c: the counts */
extern int n_pass, n_fail, n_skip, n_test;

/* env.c: environments, cleanups, the watchdog */
struct th_cleanup {
	void (*fn)(void *arg);
	void *arg;
};
extern unsigned int env_seq;
extern pid_t owner_pid;
extern struct th_env *live[TH_MAX_ENVS];
extern char watch_what[160];
extern char cg_mount[PATH_MAX];
extern struct th_cleanup cleanups[TH_MAX_CLEANUPS];

/* snprintf into a path buffer; -ENAMETOOLONG rather than a silent cut. */
static inline int __attribute__((format(printf, 3, 4)))
path_fmt(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static inline void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static inline bool path_exists(const char *path)
{
	struct stat st;

	return !lstat(path, &st);
}

#endif /* TH_INTERNAL_H */
