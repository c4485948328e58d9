/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Small helpers of the sidelane binary (user/lib/util.c); unit-tested. */
#ifndef UTIL_H
#define UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>

/* Parse a whole string as an unsigned decimal in [min, max]. 0 or
 * -EINVAL/-ERANGE.
 */
int sl_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* Parse "80,443,8080" into ports[] (at most max, each 1..65535, no repeats).
 * Sets *n. 0, or -EINVAL/-ERANGE/-E2BIG with *bad pointing at the culprit.
 */
int sl_parse_ports(const char *s, uint16_t *ports, size_t max, size_t *n,
		   const char **bad);

/* Find the first cgroup2 mount point in a /proc/mounts-format stream
 * (octal escapes such as \040 decoded). 0, -ENOENT if none, -ENAMETOOLONG.
 */
int sl_find_fs_mount(FILE *mounts, const char *fstype, char *buf, size_t len);

/* Read (rx) or write exactly len bytes on fd, blocking or not. With
 * timeout_ms >= 0 each wait for the fd is bounded by poll(); -1 waits as
 * long as it takes. EINTR is retried. 0, -EPIPE when the peer ended first,
 * -ETIMEDOUT, or -errno. Writes use write(): ignore SIGPIPE (run and the
 * tests do) or the caller dies with a closed peer.
 */
int sl_io_full(int fd, void *buf, size_t len, bool rx, int timeout_ms);

/* Read the whole file at path into *buf (malloc'ed, NUL-terminated; *len
 * without the NUL): a regular file, a pipe or /dev/stdin alike, up to max
 * bytes (-EFBIG past that). st (may be NULL) gets the open file's fstat(),
 * which matches the bytes even if the path is replaced meanwhile. 0 or
 * -errno.
 */
int sl_read_file(const char *path, size_t max, char **buf, size_t *len,
		 struct stat *st);

/* n bytes as 2n lowercase hex digits and a NUL into out (2n + 1 bytes). */
/* Open files for max_conns relayed connections (two descriptors each, and
 * a margin): the soft limit raised to it, and the hard one while the
 * privilege to lasts. 0, or -EMFILE when it stays below (*limit: what it
 * is, *want: what it takes).
 */
int sl_nofile_raise(unsigned int max_conns, unsigned long long *limit,
		    unsigned long long *want);
void sl_hex(char *out, const uint8_t *in, size_t n);

/* "2026-11-25T14:30:00.123Z" (UTC, ms) for a CLOCK_REALTIME time in ns. */
void sl_time_str(uint64_t real_ns, char *buf, size_t len);

#endif /* UTIL_H */
