// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Unit tests (cmocka) for the pure helpers of user/lib/util.c: number parsing,
 * /proc/mounts parsing, and the address key form shared with the BPF side.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>
#include <sys/socket.h>
#include "lib/addr.h"
#include "lib/util.h"

static void parse_u64_accepts_range(void **state)
{
	uint64_t v = 0;

	(void)state;
	assert_int_equal(sl_parse_u64("0", 0, 10, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(sl_parse_u64("10", 0, 10, &v), 0);
	assert_int_equal(v, 10);
	assert_int_equal(sl_parse_u64("18446744073709551615", 0, UINT64_MAX, &v), 0);
	assert_true(v == UINT64_MAX);
}

static void parse_u64_rejects_junk(void **state)
{
	uint64_t v = 7;

	(void)state;
	assert_int_equal(sl_parse_u64("", 0, 10, &v), -EINVAL);
	assert_int_equal(sl_parse_u64("-1", 0, 10, &v), -EINVAL);
	assert_int_equal(sl_parse_u64("+1", 0, 10, &v), -EINVAL);
	assert_int_equal(sl_parse_u64(" 1", 0, 10, &v), -EINVAL);
	assert_int_equal(sl_parse_u64("1x", 0, 10, &v), -EINVAL);
	assert_int_equal(sl_parse_u64("11", 0, 10, &v), -ERANGE);
	assert_int_equal(sl_parse_u64("4", 5, 10, &v), -ERANGE);
	assert_int_equal(sl_parse_u64("18446744073709551616", 0, UINT64_MAX, &v),
			 -ERANGE);
	assert_int_equal(v, 7); /* untouched on error */
}

static void ports_list_parses(void **state)
{
	uint16_t ports[4];
	const char *bad;
	size_t n;

	(void)state;
	assert_int_equal(sl_parse_ports("80", ports, 4, &n, &bad), 0);
	assert_int_equal(n, 1);
	assert_int_equal(ports[0], 80);
	assert_int_equal(sl_parse_ports("1,65535,8080", ports, 4, &n, &bad), 0);
	assert_int_equal(n, 3);
	assert_int_equal(ports[1], 65535);
	assert_int_equal(ports[2], 8080);
}

static void ports_list_rejects_with_position(void **state)
{
	static const struct {
		const char *in;
		int err;
		const char *bad; /* where the error points */
	} cases[] = {
		{ "", -EINVAL, "" },
		{ "0", -ERANGE, "0" },
		{ "80,65536", -ERANGE, "65536" },
		{ "80,,81", -EINVAL, ",81" },
		{ "80,", -EINVAL, "" },
		{ "80,x", -EINVAL, "x" },
		{ "80,80", -EINVAL, "80" },
		{ "1,2,3,4,5", -E2BIG, "5" },
		{ "123456789", -EINVAL, "123456789" },
	};
	uint16_t ports[4];
	const char *bad;
	size_t i, n;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int err = sl_parse_ports(cases[i].in, ports, 4, &n, &bad);

		if (err != cases[i].err || strcmp(bad, cases[i].bad))
			fail_msg("'%s': got %d at '%s', want %d at '%s'",
				 cases[i].in, err, bad, cases[i].err,
				 cases[i].bad);
		assert_int_equal(n, 0);
	}
}

static int find_in(const char *text, const char *type, char *buf, size_t len)
{
	FILE *f = fmemopen((void *)text, strlen(text), "r");
	int err;

	assert_non_null(f);
	err = sl_find_fs_mount(f, type, buf, len);
	fclose(f);
	return err;
}

static void mounts_finds_hybrid_cgroup2(void **state)
{
	/* A hybrid host, as on this project's machines: v1 controllers at
	 * /sys/fs/cgroup/<ctrl>, v2 at /sys/fs/cgroup/unified.
	 */
	const char *mounts =
		"tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0\n"
		"cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0\n"
		"cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0\n";
	char buf[256];

	(void)state;
	assert_int_equal(find_in(mounts, "cgroup2", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/sys/fs/cgroup/unified");
}

static void mounts_decodes_escapes_and_misses(void **state)
{
	const char *mounts = "none /mnt/with\\040space cgroup2 rw 0 0\n";
	char buf[256], tiny[4];

	(void)state;
	assert_int_equal(find_in(mounts, "cgroup2", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/mnt/with space");
	assert_int_equal(find_in(mounts, "bpf", buf, sizeof(buf)), -ENOENT);
	assert_int_equal(find_in(mounts, "cgroup2", tiny, sizeof(tiny)),
			 -ENAMETOOLONG);
	assert_int_equal(find_in("", "cgroup2", buf, sizeof(buf)), -ENOENT);
}

static void addr_key_v4_is_v4mapped(void **state)
{
	struct in_addr a4;
	struct in6_addr a6;
	uint8_t k4[16], k6[16];
	char s[64];

	(void)state;
	/* The v4 socket's view and a v6 socket's v4-mapped view must match:
	 * that is what lets their sockhash keys mirror each other.
	 */
	inet_pton(AF_INET, "127.0.0.1", &a4);
	inet_pton(AF_INET6, "::ffff:127.0.0.1", &a6);
	sl_addr_to_key(AF_INET, &a4, k4);
	sl_addr_to_key(AF_INET6, &a6, k6);
	assert_memory_equal(k4, k6, 16);
	assert_string_equal(sl_addr_str(k4, s, sizeof(s)), "127.0.0.1");
	inet_pton(AF_INET6, "fd00::1", &a6);
	sl_addr_to_key(AF_INET6, &a6, k6);
	assert_string_equal(sl_addr_str(k6, s, sizeof(s)), "fd00::1");
}

static void addr_loopback_classification(void **state)
{
	static const struct {
		int family;
		const char *addr;
		int loopback;
	} cases[] = {
		{ AF_INET, "127.0.0.1", 1 },   { AF_INET, "127.255.0.9", 1 },
		{ AF_INET, "128.0.0.1", 0 },   { AF_INET, "10.0.0.1", 0 },
		{ AF_INET6, "::1", 1 },	       { AF_INET6, "::2", 0 },
		{ AF_INET6, "::ffff:127.0.0.5", 1 },
		{ AF_INET6, "::ffff:10.0.0.1", 0 },
		{ AF_INET6, "fe80::1", 0 },    { AF_INET6, "::", 0 },
	};
	unsigned char raw[16];
	uint8_t key[16];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(inet_pton(cases[i].family, cases[i].addr, raw), 1);
		sl_addr_to_key(cases[i].family, raw, key);
		if (sl_addr_is_loopback(key) != cases[i].loopback)
			fail_msg("%s: expected loopback=%d", cases[i].addr,
				 cases[i].loopback);
	}
}

struct dribble {
	int fd;
	const char *msg;
};

/* writes its message a byte at a time, then closes: reads see short
 * counts and then EOF
 */
static void *dribble(void *arg)
{
	struct dribble *d = arg;
	size_t i;

	for (i = 0; d->msg[i]; i++) {
		usleep(1000);
		if (write(d->fd, d->msg + i, 1) != 1)
			break;
	}
	close(d->fd);
	return NULL;
}

static void io_full_reads_writes_ends_and_times_out(void **state)
{
	struct dribble d = { .msg = "0123456789" };
	char buf[64] = "";
	pthread_t t;
	int sv[2];

	(void)state;
	signal(SIGPIPE, SIG_IGN);
	/* short reads are joined, on a non-blocking fd too; then EOF */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
	d.fd = sv[1];
	assert_int_equal(pthread_create(&t, NULL, dribble, &d), 0);
	assert_int_equal(sl_io_full(sv[0], buf, 6, true, -1), 0);
	assert_memory_equal(buf, "012345", 6);
	assert_int_equal(sl_io_full(sv[0], buf, 8, true, 2000), -EPIPE);
	pthread_join(t, NULL);
	close(sv[0]);
	/* a bounded wait with nothing coming; a write to a closed peer */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(sl_io_full(sv[0], buf, 1, true, 50), -ETIMEDOUT);
	assert_int_equal(sl_io_full(sv[1], "abc", 3, false, -1), 0);
	assert_int_equal(sl_io_full(sv[0], buf, 3, true, 1000), 0);
	assert_memory_equal(buf, "abc", 3);
	close(sv[0]);
	assert_int_equal(sl_io_full(sv[1], "x", 1, false, 1000), -EPIPE);
	close(sv[1]);
}

static void read_file_regular_pipe_proc_and_bound(void **state)
{
	char path[] = "/tmp/sl-read-XXXXXX", *buf = NULL;
	static char big[10000];
	struct stat st;
	size_t len;
	int fd, p[2];

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	memset(big, 'x', sizeof(big));
	assert_int_equal(write(fd, big, sizeof(big)), sizeof(big));
	close(fd);
	/* a regular file, bigger than the first guess; its stat comes back */
	assert_int_equal(sl_read_file(path, sizeof(big), &buf, &len, &st), 0);
	assert_int_equal(len, sizeof(big));
	assert_int_equal(st.st_size, sizeof(big));
	assert_int_equal(buf[len], '\0');
	free(buf);
	assert_int_equal(sl_read_file(path, sizeof(big) - 1, &buf, &len, NULL),
			 -EFBIG);
	unlink(path);
	assert_int_equal(sl_read_file(path, 100, &buf, &len, NULL), -ENOENT);
	/* /proc says 0 bytes and has more */
	assert_int_equal(sl_read_file("/proc/self/status", 1 << 20, &buf, &len,
				      NULL), 0);
	assert_true(len > 100 && strstr(buf, "Name:"));
	free(buf);
	/* a pipe: read to EOF, bounded too */
	assert_int_equal(pipe(p), 0);
	assert_int_equal(write(p[1], "abc", 3), 3);
	close(p[1]);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", p[0]);
	assert_int_equal(sl_read_file(path, 100, &buf, &len, NULL), 0);
	assert_int_equal(len, 3);
	assert_string_equal(buf, "abc");
	free(buf);
	close(p[0]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parse_u64_accepts_range),
		cmocka_unit_test(parse_u64_rejects_junk),
		cmocka_unit_test(ports_list_parses),
		cmocka_unit_test(ports_list_rejects_with_position),
		cmocka_unit_test(mounts_finds_hybrid_cgroup2),
		cmocka_unit_test(mounts_decodes_escapes_and_misses),
		cmocka_unit_test(addr_key_v4_is_v4mapped),
		cmocka_unit_test(addr_loopback_classification),
		cmocka_unit_test(io_full_reads_writes_ends_and_times_out),
		cmocka_unit_test(read_file_regular_pipe_proc_and_bound),
	};

	return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
