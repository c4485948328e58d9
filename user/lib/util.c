// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Small pure helpers of the sidelane binary (see util.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include "lib/util.h"

int sl_io_full(int fd, void *buf, size_t len, bool rx, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = rx ? POLLIN : POLLOUT };
	char *p = buf;
	ssize_t n;
	int r;

	while (len) {
		if (timeout_ms >= 0) {
			r = poll(&pfd, 1, timeout_ms);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				return r ? -errno : -ETIMEDOUT;
		}
		n = rx ? read(fd, p, len) : write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		/* a non-blocking fd, or a sockmap socket's blocking read
		 * that returns EAGAIN early: wait for it
		 */
		if (n < 0 && errno == EAGAIN) {
			if (timeout_ms < 0 && poll(&pfd, 1, -1) < 0 &&
			    errno != EINTR)
				return -errno;
			continue;
		}
		if (n < 0)
			return -errno;
		if (!n)
			return rx ? -EPIPE : -EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int sl_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (*end)
		return -EINVAL;
	if (errno == ERANGE || v < min || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

int sl_parse_ports(const char *s, uint16_t *ports, size_t max, size_t *n,
		   const char **bad)
{
	char item[8];
	size_t cnt = 0, i;

	*n = 0;
	*bad = s;
	if (!*s)
		return -EINVAL;
	while (*s) {
		size_t len = strcspn(s, ",");
		uint64_t v;
		int err;

		*bad = s;
		if (!len || len >= sizeof(item))
			return -EINVAL;
		memcpy(item, s, len);
		item[len] = '\0';
		err = sl_parse_u64(item, 1, 65535, &v);
		if (err)
			return err;
		for (i = 0; i < cnt; i++)
			if (ports[i] == v)
				return -EINVAL;
		if (cnt == max)
			return -E2BIG;
		ports[cnt++] = (uint16_t)v;
		s += len;
		if (*s == ',' && !*++s) {
			*bad = s; /* trailing comma: nothing after it */
			return -EINVAL;
		}
	}
	*n = cnt;
	return 0;
}

/* Decode the \ooo escapes the kernel uses for spaces and such in mounts. */
static int unescape(const char *in, char *out, size_t len)
{
	size_t n = 0;

	while (*in) {
		char c = *in++;

		if (c == '\\' && in[0] >= '0' && in[0] <= '3' && in[1] >= '0' &&
		    in[1] <= '7' && in[2] >= '0' && in[2] <= '7') {
			c = (char)((in[0] - '0') * 64 + (in[1] - '0') * 8 +
				   (in[2] - '0'));
			in += 3;
		}
		if (n + 1 >= len)
			return -ENAMETOOLONG;
		out[n++] = c;
	}
	out[n] = '\0';
	return 0;
}

int sl_find_fs_mount(FILE *mounts, const char *fstype, char *buf, size_t len)
{
	char line[4096];

	while (fgets(line, sizeof(line), mounts)) {
		char *save = NULL, *dev, *dir, *type;

		dev = strtok_r(line, " \t\n", &save);
		dir = strtok_r(NULL, " \t\n", &save);
		type = strtok_r(NULL, " \t\n", &save);
		if (!dev || !dir || !type || strcmp(type, fstype))
			continue;
		return unescape(dir, buf, len);
	}
	return -ENOENT;
}

int sl_read_file(const char *path, size_t max, char **buf, size_t *len,
		 struct stat *st)
{
	size_t cap = 4096, n = 0;
	char *b = NULL, *nb;
	struct stat s;
	ssize_t r;
	int fd, err = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &s)) {
		err = -errno;
		goto out;
	}
	if (S_ISREG(s.st_mode)) {
		if ((uint64_t)s.st_size > max) {
			err = -EFBIG;
			goto out;
		}
		/* + 1: EOF seen in one pass; /proc files say 0 bytes */
		if ((size_t)s.st_size + 1 > cap)
			cap = (size_t)s.st_size + 1;
	}
	for (;;) {
		if (n + 1 >= cap || !b) {
			if (b)
				cap *= 2;
			nb = realloc(b, cap);
			if (!nb) {
				err = -ENOMEM;
				goto out;
			}
			b = nb;
		}
		r = read(fd, b + n, cap - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			err = -errno;
			goto out;
		}
		if (!r)
			break;
		n += (size_t)r;
		if (n > max) {
			err = -EFBIG;
			goto out;
		}
	}
	b[n] = '\0';
	if (st)
		*st = s;
	*buf = b;
	*len = n;
	b = NULL;
out:
	free(b);
	close(fd);
	return err;
}

void sl_hex(char *out, const uint8_t *in, size_t n)
{
	static const char digit[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digit[in[i] >> 4];
		out[2 * i + 1] = digit[in[i] & 15];
	}
	out[2 * n] = '\0';
}

void sl_time_str(uint64_t real_ns, char *buf, size_t len)
{
	time_t sec = (time_t)(real_ns / 1000000000ULL);
	struct tm tm;
	char day[32];

	gmtime_r(&sec, &tm);
	strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, len, "%s.%03uZ", day,
		 (unsigned int)(real_ns / 1000000ULL % 1000));
}

int sl_nofile_raise(unsigned int max_conns, unsigned long long *limit,
		    unsigned long long *want)
{
	rlim_t need = 2 * (rlim_t)max_conns + 1024;
	struct rlimit rl;

	*want = need;
	*limit = 0;
	if (getrlimit(RLIMIT_NOFILE, &rl))
		return -errno;
	if (rl.rlim_max < need) {
		struct rlimit hi = { need, need };

		if (!setrlimit(RLIMIT_NOFILE, &hi)) {
			*limit = need;
			return 0;
		}
	}
	rl.rlim_cur = rl.rlim_max < need ? rl.rlim_max : need;
	if (setrlimit(RLIMIT_NOFILE, &rl))
		getrlimit(RLIMIT_NOFILE, &rl);
	*limit = rl.rlim_cur;
	return rl.rlim_cur < need ? -EMFILE : 0;
}
