/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* What the libFuzzer harnesses share (tests/fuzz/README.md): the fuzzed
 * bytes as a C string, or as a file for the loaders that take a path.
 */
#ifndef SL_FUZZ_H
#define SL_FUZZ_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* data as a NUL-terminated string (malloc'ed; NUL bytes in data end it
 * early, as they would for any C-string input).
 */
static inline char *fuzz_str(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (!s)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

/* data in an anonymous file; *path names it ("/proc/self/fd/N"). The fd,
 * to close after use.
 */
static inline int fuzz_file(const uint8_t *data, size_t size, char path[64])
{
	int fd = memfd_create("fuzz", MFD_CLOEXEC);

	if (fd < 0 || (size && write(fd, data, size) != (ssize_t)size))
		abort();
	snprintf(path, 64, "/proc/self/fd/%d", fd);
	return fd;
}

/* A loader's refusal names the file first: "path:line: reason" or
 * "path: reason".
 */
static inline bool fuzz_names_file(const char *err, const char *path)
{
	size_t n = strlen(path);

	return !strncmp(err, path, n) && err[n] == ':';
}

/* Split data at '\n' into at most max NUL-terminated fields in buf (size
 * + 1 bytes). The number of fields.
 */
static inline int fuzz_fields(const uint8_t *data, size_t size, char *buf,
			      char **f, int max)
{
	int n = 0;
	size_t i;

	memcpy(buf, data, size);
	buf[size] = '\0';
	f[n++] = buf;
	for (i = 0; i < size && n < max; i++)
		if (buf[i] == '\n') {
			buf[i] = '\0';
			f[n++] = buf + i + 1;
		}
	return n;
}

#endif /* SL_FUZZ_H */
