// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Unit tests (cmocka) for the access log (user/lib/accesslog.c): order and
 * completeness, rotation into gzip files that decompress to exactly what
 * was written, the bound on files and disk, drops that never block, close
 * flushing, crash leftovers, concurrent producers, and the JSON escaping.
 * Each test works in its own mkdtemp directory, removed at the end.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>
#include "lib/json.h"
#include "lib/accesslog.h"

struct tdir {
	char dir[64];
	char path[128]; /* dir/access.log */
};

static int dir_setup(void **state)
{
	struct tdir *t = calloc(1, sizeof(*t));

	if (!t)
		return -1;
	strcpy(t->dir, "/tmp/sl-alog-XXXXXX");
	if (!mkdtemp(t->dir)) {
		free(t);
		return -1;
	}
	snprintf(t->path, sizeof(t->path), "%s/access.log", t->dir);
	umask(022);
	*state = t;
	return 0;
}

static int dir_teardown(void **state)
{
	struct tdir *t = *state;
	char name[512];
	struct dirent *e;
	DIR *d;

	d = opendir(t->dir);
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(name, sizeof(name), "%s/%s", t->dir, e->d_name);
		unlink(name);
	}
	if (d)
		closedir(d);
	rmdir(t->dir);
	free(t);
	return 0;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* A JSON line with the hostile bits a peer may send in its host name. */
static size_t make_line(char *buf, size_t len, unsigned int t, unsigned int seq)
{
	static const char host[] = "h\"o\\st\n\x01\xc3\xa9\xff.example";
	char esc[128];
	int n;

	assert_true(sl_json_escape(esc, sizeof(esc), host) > 0);
	n = snprintf(buf, len, "{\"t\":%u,\"seq\":%u,\"host\":%s,\"bytes\":%u}",
		     t, seq, esc, seq * 7);
	assert_true(n > 0 && (size_t)n < len);
	return (size_t)n;
}

/* Poll until the writer has dealt with n lines (written or dropped). */
static void wait_done(struct sl_alog *a, uint64_t n, struct sl_alog_stats *st)
{
	uint64_t end = now_ns() + 10ULL * 1000000000ULL;

	for (;;) {
		sl_alog_stats(a, st);
		if (st->written + st->dropped >= n)
			return;
		if (now_ns() > end)
			fail_msg("writer stuck: %llu of %llu lines",
				 (unsigned long long)(st->written + st->dropped),
				 (unsigned long long)n);
		usleep(1000);
	}
}

struct blob {
	char *p;
	size_t len, cap;
};

static void blob_add(struct blob *b, const void *p, size_t len)
{
	if (b->len + len + 1 > b->cap) {
		b->cap = (b->len + len + 1) * 2;
		b->p = realloc(b->p, b->cap);
		assert_non_null(b->p);
	}
	memcpy(b->p + b->len, p, len);
	b->len += len;
	b->p[b->len] = '\0';
}

static void slurp(const char *path, struct blob *b)
{
	char buf[8192];
	ssize_t n;
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		fail_msg("%s: %s", path, strerror(errno));
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		blob_add(b, buf, (size_t)n);
	assert_int_equal(n, 0);
	close(fd);
}

/* Decompress a whole gzip file with zlib; a bad CRC or a cut fails. */
static void gunzip(const char *path, struct blob *b)
{
	unsigned char magic[2] = { 0 };
	char buf[8192];
	gzFile gz;
	int n, fd, errnum;

	fd = open(path, O_RDONLY);
	if (fd < 0)
		fail_msg("%s: %s", path, strerror(errno));
	assert_int_equal(read(fd, magic, 2), 2);
	close(fd);
	assert_true(magic[0] == 0x1f && magic[1] == 0x8b);
	gz = gzopen(path, "rb");
	assert_non_null(gz);
	while ((n = gzread(gz, buf, sizeof(buf))) > 0)
		blob_add(b, buf, (size_t)n);
	if (n < 0)
		fail_msg("%s: %s", path, gzerror(gz, &errnum));
	assert_int_equal(gzdirect(gz), 0);
	assert_int_equal(gzclose(gz), Z_OK);
}

static int exists(const char *path)
{
	return !access(path, F_OK);
}

/* Every line one JSON object: python3's json.loads when there is one, a
 * structural check otherwise.
 */
static void check_json_lines(const char *dir, const struct blob *b)
{
	char file[256], cmd[512];
	const char *p = b->p, *nl;
	FILE *f;

	for (; p && *p; p = nl + 1) {
		nl = strchr(p, '\n');
		assert_non_null(nl);
		assert_true(nl > p && p[0] == '{' && nl[-1] == '}');
	}
	if (access("/usr/bin/python3", X_OK))
		return;
	snprintf(file, sizeof(file), "%s/json-check", dir);
	f = fopen(file, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(b->p, 1, b->len, f), b->len);
	fclose(f);
	snprintf(cmd, sizeof(cmd),
		 "/usr/bin/python3 -c 'import json,sys\n"
		 "for l in open(sys.argv[1], encoding=\"utf-8\"):\n"
		 "    assert isinstance(json.loads(l), dict)' %s", file);
	assert_int_equal(system(cmd), 0);
	unlink(file);
}

static void off_and_bad_options(void **state)
{
	struct sl_alog_opts o = { .max_bytes = 4096, .keep = 2,
				  .queue_lines = 16 };
	struct tdir *t = *state;
	struct sl_alog_stats st;
	struct sl_alog *a = (void *)1;

	assert_int_equal(sl_alog_open(&o, &a), 0); /* no path: off */
	assert_null(a);
	o.path = "";
	assert_int_equal(sl_alog_open(&o, &a), 0);
	assert_null(a);
	sl_alog_write(NULL, "{}", 2);
	sl_alog_stats(NULL, &st);
	assert_true(st.written == 0 && st.dropped == 0);
	sl_alog_close(NULL);

	o.path = t->path;
	o.queue_lines = 0;
	assert_int_equal(sl_alog_open(&o, &a), -EINVAL);
	o.queue_lines = 16;
	o.max_bytes = 0;
	assert_int_equal(sl_alog_open(&o, &a), -EINVAL);
	o.max_bytes = 4096;
	o.keep = SL_ALOG_KEEP_MAX + 1;
	assert_int_equal(sl_alog_open(&o, &a), -EINVAL);
	assert_null(a);
	assert_false(exists(t->path));
}

/* Call sl_alog_open with stderr captured into msg. */
static int open_capturing(const struct sl_alog_opts *o, struct sl_alog **a,
			  const char *dir, struct blob *msg)
{
	char file[256];
	int fd, saved, err;

	snprintf(file, sizeof(file), "%s/stderr", dir);
	fd = open(file, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	fflush(stderr);
	saved = dup(2);
	dup2(fd, 2);
	err = sl_alog_open(o, a);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	close(fd);
	slurp(file, msg);
	unlink(file);
	return err;
}

static void missing_directory_is_a_clear_error(void **state)
{
	struct sl_alog_opts o = { .max_bytes = 4096, .keep = 2,
				  .queue_lines = 16 };
	struct tdir *t = *state;
	struct blob msg = { 0 };
	char path[256], dir[200];
	struct sl_alog *a = NULL;
	int fd;

	snprintf(dir, sizeof(dir), "%s/nope", t->dir);
	snprintf(path, sizeof(path), "%s/access.log", dir);
	o.path = path;
	assert_int_equal(open_capturing(&o, &a, t->dir, &msg), -ENOENT);
	assert_null(a);
	assert_non_null(strstr(msg.p, dir));
	assert_non_null(strstr(msg.p, "does not exist"));
	assert_false(exists(dir)); /* not created either */

	/* a file where the directory should be */
	msg.len = 0;
	assert_int_equal(mkdir(dir, 0700), 0);
	rmdir(dir);
	fd = creat(dir, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(open_capturing(&o, &a, t->dir, &msg), -ENOTDIR);
	assert_non_null(strstr(msg.p, "not a directory"));
	free(msg.p);
}

static void lines_arrive_in_order_and_complete(void **state)
{
	struct sl_alog_opts o = { .max_bytes = 1 << 20, .keep = 2,
				  .queue_lines = 4096 };
	struct tdir *t = *state;
	struct blob want = { 0 }, got = { 0 };
	struct sl_alog_stats st;
	struct sl_alog *a;
	struct stat sb;
	char line[256];
	unsigned int i;
	size_t n;

	o.path = t->path;
	assert_int_equal(sl_alog_open(&o, &a), 0);
	assert_int_equal(stat(t->path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0640);
	for (i = 0; i < 1000; i++) {
		n = make_line(line, sizeof(line), 0, i);
		sl_alog_write(a, line, n);
		blob_add(&want, line, n);
		blob_add(&want, "\n", 1);
		if (i % 100 == 0)
			usleep(100); /* several batches, not one */
	}
	wait_done(a, 1000, &st);
	assert_int_equal(st.written, 1000);
	assert_int_equal(st.dropped, 0);
	assert_int_equal(st.bytes, want.len);
	assert_int_equal(st.rotations, 0);
	assert_int_equal(st.write_errors, 0);
	sl_alog_close(a);

	slurp(t->path, &got);
	assert_int_equal(got.len, want.len);
	assert_memory_equal(got.p, want.p, want.len);
	check_json_lines(t->dir, &got);
	free(want.p);
	free(got.p);
}

static void a_line_stays_one_line(void **state)
{
	struct sl_alog_opts o = { .max_bytes = 1 << 20, .keep = 1,
				  .queue_lines = 16 };
	static char big[SL_ALOG_LINE_MAX + 1];
	struct tdir *t = *state;
	struct blob got = { 0 };
	struct sl_alog_stats st;
	struct sl_alog *a;

	o.path = t->path;
	assert_int_equal(sl_alog_open(&o, &a), 0);
	sl_alog_write(a, "{\"a\":1,\n\"b\":2}", 14);
	memset(big, 'x', sizeof(big));
	sl_alog_write(a, big, sizeof(big)); /* too long: dropped */
	sl_alog_write(a, "{}", 2);
	wait_done(a, 3, &st);
	assert_int_equal(st.written, 2);
	assert_int_equal(st.dropped, 1);
	sl_alog_close(a);
	slurp(t->path, &got);
	assert_string_equal(got.p, "{\"a\":1, \"b\":2}\n{}\n");
	free(got.p);
}

static void close_flushes_everything_queued(void **state)
{
	struct sl_alog_opts o = { .max_bytes = 64 << 20, .keep = 1,
				  .queue_lines = 20000 };
	struct tdir *t = *state;
	struct blob got = { 0 };
	struct sl_alog *a;
	char line[256];
	unsigned int i, seq, lines = 0;
	const char *p;

	o.path = t->path;
	assert_int_equal(sl_alog_open(&o, &a), 0);
	for (i = 0; i < 20000; i++)
		sl_alog_write(a, line, make_line(line, sizeof(line), 0, i));
	sl_alog_close(a); /* straight away: most of it still queued */

	slurp(t->path, &got);
	for (p = got.p; p && *p; p = strchr(p, '\n') + 1) {
		assert_int_equal(sscanf(p, "{\"t\":0,\"seq\":%u,", &seq), 1);
		assert_int_equal(seq, lines++);
	}
	assert_int_equal(lines, 20000);
	free(got.p);
}

/* Lines of one size written through sizes of max_bytes: the rotated files,
 * oldest first, then the live one, are exactly what was written.
 */
static void rotation_gives_gzip_files_of_the_lines(void **state)
{
	struct sl_alog_opts o = { .max_bytes = 4096, .keep = 100,
				  .queue_lines = 4096 };
	struct tdir *t = *state;
	struct blob want = { 0 }, all = { 0 }, live = { 0 };
	struct sl_alog_stats st;
	unsigned int i, nfiles;
	char line[256], name[256];
	struct sl_alog *a;
	size_t n = 0;

	o.path = t->path;
	assert_int_equal(sl_alog_open(&o, &a), 0);
	for (i = 0; i < 600; i++) {
		n = make_line(line, sizeof(line), 1, i);
		sl_alog_write(a, line, n);
		blob_add(&want, line, n);
		blob_add(&want, "\n", 1);
		if (i % 50 == 0)
			usleep(200);
	}
	wait_done(a, 600, &st);
	assert_int_equal(st.written, 600);
	assert_true(st.rotations >= want.len / 4096);
	sl_alog_close(a);

	for (nfiles = 0;; nfiles++) {
		snprintf(name, sizeof(name), "%s.%u.gz", t->path, nfiles + 1);
		if (!exists(name))
			break;
	}
	assert_int_equal(nfiles, st.rotations);
	for (i = nfiles; i >= 1; i--) {
		struct blob one = { 0 };

		snprintf(name, sizeof(name), "%s.%u.gz", t->path, i);
		gunzip(name, &one);
		/* rotated at the bound: full up to less than one more line */
		assert_true(one.len <= o.max_bytes);
		assert_true(one.len + (n + 1) > o.max_bytes);
		blob_add(&all, one.p, one.len);
		free(one.p);
	}
	slurp(t->path, &live);
	assert_true(live.len > 0 && live.len <= o.max_bytes);
	blob_add(&all, live.p, live.len);
	assert_int_equal(all.len, want.len);
	assert_memory_equal(all.p, want.p, want.len);
	check_json_lines(t->dir, &all);

	snprintf(name, sizeof(name), "%s.1", t->path);
	assert_false(exists(name)); /* the uncompressed copy is gone */
	snprintf(name, sizeof(name), "%s.1.gz.tmp", t->path);
	assert_false(exists(name));
	free(want.p);
	free(all.p);
	free(live.p);
}

/* Total size of the files in dir, and how many there are. */
static uint64_t dir_usage(const char *dir, unsigned int *files)
{
	char name[512];
	struct dirent *e;
	uint64_t sum = 0;
	struct stat sb;
	DIR *d = opendir(dir);

	assert_non_null(d);
	*files = 0;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(name, sizeof(name), "%s/%s", dir, e->d_name);
		assert_int_equal(stat(name, &sb), 0);
		sum += (uint64_t)sb.st_size;
		(*files)++;
	}
	closedir(d);
	return sum;
}

static void keep_bounds_files_and_disk(void **state)
{
	struct sl_alog_opts o = { .max_bytes = 8192, .keep = 3,
				  .queue_lines = 8192 };
	struct tdir *t = *state;
	struct blob want = { 0 }, all = { 0 };
	struct sl_alog_stats st;
	unsigned int i, files;
	char line[256], name[256];
	struct sl_alog *a;
	size_t n = 0;

	o.path = t->path;
	assert_int_equal(sl_alog_open(&o, &a), 0);
	for (i = 0; i < 3000; i++) {
		n = make_line(line, sizeof(line), 2, i);
		sl_alog_write(a, line, n);
		blob_add(&want, line, n);
		blob_add(&want, "\n", 1);
	}
	wait_done(a, 3000, &st);
	assert_int_equal(st.written, 3000);
	assert_true(st.rotations > 10);
	sl_alog_close(a);

	/* the live file and path.1.gz .. path.3.gz, nothing else */
	assert_true(dir_usage(t->dir, &files) <=
		    o.max_bytes + (n + 1) + 3 * o.max_bytes);
	assert_int_equal(files, 4);
	for (i = 3; i >= 1; i--) {
		snprintf(name, sizeof(name), "%s.%u.gz", t->path, i);
		gunzip(name, &all);
	}
	slurp(t->path, &all);
	/* and they hold the newest lines */
	assert_true(all.len < want.len);
	assert_memory_equal(all.p, want.p + want.len - all.len, all.len);
	assert_true(all.len == want.len ||
		    want.p[want.len - all.len - 1] == '\n');

	/* a smaller keep at the next open removes what it no longer keeps */
	o.keep = 1;
	assert_int_equal(sl_alog_open(&o, &a), 0);
	sl_alog_close(a);
	snprintf(name, sizeof(name), "%s.1.gz", t->path);
	assert_true(exists(name));
	dir_usage(t->dir, &files);
	assert_int_equal(files, 2);
	free(want.p);
	free(all.p);
}

struct drain {
	int fd;
	uint64_t bytes, lines;
	unsigned int last_seq, out_of_order;
};

/* Read the fifo to its end: the lines must come in order. */
/* A write cut short (ENOSPC, or here the file size limit, which cuts a
 * write the same way): the file keeps whole lines only, the rest is counted
 * dropped, and once there is room again lines follow on a line boundary.
 */
static void full_disk_keeps_whole_lines_and_counts(void **state)
{
	struct sl_alog_opts o = { .max_bytes = 1 << 20, .keep = 0,
				  .queue_lines = 4096 };
	struct rlimit old, lim = { .rlim_cur = 10000, .rlim_max = RLIM_INFINITY };
	struct tdir *t = *state;
	struct blob got = { 0 };
	struct sl_alog_stats st;
	struct sl_alog *a;
	void (*old_xfsz)(int);
	char line[256];
	unsigned int i;
	size_t n;

	o.path = t->path;
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim.rlim_max = old.rlim_max;
	old_xfsz = signal(SIGXFSZ, SIG_IGN); /* EFBIG instead of death */
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	assert_int_equal(sl_alog_open(&o, &a), 0);
	for (i = 0; i < 400; i++) {
		n = make_line(line, sizeof(line), 0, i);
		sl_alog_write(a, line, n);
		if (i % 50 == 0)
			usleep(2000); /* several batches: some cut mid-line */
	}
	wait_done(a, 400, &st);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, old_xfsz);
	assert_true(st.written > 0 && st.dropped > 0);
	assert_int_equal(st.written + st.dropped, 400);
	assert_true(st.write_errors > 0);
	/* room again: the next line starts on a line of its own */
	n = make_line(line, sizeof(line), 1, 400);
	sl_alog_write(a, line, n);
	wait_done(a, 401, &st);
	assert_int_equal(st.written + st.dropped, 401);
	sl_alog_close(a);

	slurp(t->path, &got);
	assert_true(got.len <= 10000 + n + 1);
	assert_int_equal(got.len, st.bytes);
	check_json_lines(t->dir, &got);
	assert_non_null(strstr(got.p, "\"seq\":400,"));
	free(got.p);
}

static void *drain_main(void *arg)
{
	struct drain *d = arg;
	char buf[65536], line[512];
	size_t ll = 0;
	ssize_t n, i;
	unsigned int seq;

	while ((n = read(d->fd, buf, sizeof(buf))) > 0) {
		d->bytes += (uint64_t)n;
		for (i = 0; i < n; i++) {
			if (buf[i] != '\n') {
				if (ll < sizeof(line) - 1)
					line[ll++] = buf[i];
				continue;
			}
			line[ll] = '\0';
			ll = 0;
			if (sscanf(line, "{\"t\":3,\"seq\":%u,", &seq) != 1 ||
			    (d->lines && seq <= d->last_seq))
				d->out_of_order++;
			d->last_seq = seq;
			d->lines++;
		}
	}
	return NULL;
}

static int cmp_u64(const void *x, const void *y)
{
	uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;

	return a < b ? -1 : a > b;
}

/* A fifo nobody reads stalls the writer for good: writes must still come
 * back at once, and drop.
 */
static void full_queue_drops_and_never_blocks(void **state)
{
	struct sl_alog_opts o = { .max_bytes = 4096, .keep = 2,
				  .queue_lines = 64 };
	enum { N = 20000 };
	static uint64_t lat[N];
	struct tdir *t = *state;
	struct drain d = { 0 };
	struct sl_alog_stats st;
	struct sl_alog *a;
	char line[256];
	unsigned int i;
	pthread_t th;

	o.path = t->path;
	assert_int_equal(mkfifo(t->path, 0600), 0);
	d.fd = open(t->path, O_RDONLY | O_NONBLOCK);
	assert_true(d.fd >= 0);
	assert_int_equal(sl_alog_open(&o, &a), 0);
	for (i = 0; i < N; i++) {
		size_t n = make_line(line, sizeof(line), 3, i);
		uint64_t t0 = now_ns();

		sl_alog_write(a, line, n);
		lat[i] = now_ns() - t0;
	}
	sl_alog_stats(a, &st);
	assert_true(st.dropped > 0);
	/* The pipe holds 64 KiB, the queue 64 lines, the writer another 64 */
	assert_true(st.dropped > N - 2000);
	qsort(lat, N, sizeof(lat[0]), cmp_u64);
	print_message("sl_alog_write with the writer stalled: median %llu ns, "
		      "p99 %llu ns, max %llu ns\n",
		      (unsigned long long)lat[N / 2],
		      (unsigned long long)lat[N * 99 / 100],
		      (unsigned long long)lat[N - 1]);
	assert_true(lat[N * 99 / 100] < 100000); /* 100 us, loaded machine */
	assert_true(lat[N - 1] < 100000000); /* no call waited on the fifo */

	/* now read it: everything not dropped arrives, in order */
	assert_int_equal(fcntl(d.fd, F_SETFL, 0), 0);
	assert_int_equal(pthread_create(&th, NULL, drain_main, &d), 0);
	wait_done(a, N, &st);
	assert_int_equal(st.written + st.dropped, N);
	assert_int_equal(st.rotations, 0); /* a fifo is never rotated */
	sl_alog_close(a);
	pthread_join(th, NULL);
	close(d.fd);
	assert_int_equal(d.lines, st.written);
	assert_int_equal(d.bytes, st.bytes);
	assert_int_equal(d.out_of_order, 0);
}

/* close gives up on a writer stuck for good, and the writer frees itself
 * once it gets out (EPIPE when the reader leaves).
 */
static void close_is_bounded_with_a_stuck_writer(void **state)
{
	struct sl_alog_opts o = { .max_bytes = 4096, .keep = 2,
				  .queue_lines = 64 };
	struct tdir *t = *state;
	struct sl_alog_stats st;
	struct sl_alog *a;
	char line[256];
	unsigned int i;
	uint64_t t0, took;
	int rfd;

	o.path = t->path;
	assert_int_equal(mkfifo(t->path, 0600), 0);
	rfd = open(t->path, O_RDONLY | O_NONBLOCK);
	assert_true(rfd >= 0);
	assert_int_equal(sl_alog_open(&o, &a), 0);
	/* ~1 MB offered in a tenth of a second: the 64 KiB pipe fills */
	for (i = 0; i < 10000; i++) {
		sl_alog_write(a, line, make_line(line, sizeof(line), 3, i));
		if (i % 64 == 63)
			usleep(600);
	}
	sl_alog_stats(a, &st);
	assert_true(st.written < 1000 && st.dropped > 8000);
	t0 = now_ns();
	sl_alog_close(a);
	took = (now_ns() - t0) / 1000000;
	assert_true(took >= SL_ALOG_CLOSE_TIMEOUT_MS - 100);
	assert_true(took < SL_ALOG_CLOSE_TIMEOUT_MS + 2000);
	close(rfd); /* the writer's write fails with EPIPE; it frees itself */
	usleep(200000);
}

struct producer {
	struct sl_alog *a;
	unsigned int t;
};

static void *producer_main(void *arg)
{
	struct producer *p = arg;
	char line[256];
	unsigned int i;

	for (i = 0; i < 10000; i++)
		sl_alog_write(p->a, line,
			      make_line(line, sizeof(line), p->t, i));
	return NULL;
}

static void concurrent_producers_lose_nothing(void **state)
{
	struct sl_alog_opts o = { .max_bytes = 64 << 20, .keep = 1,
				  .queue_lines = 40000 };
	struct tdir *t = *state;
	struct producer p[4];
	struct blob got = { 0 };
	struct sl_alog_stats st;
	unsigned int next[4] = { 0 }, i, tid, seq;
	struct sl_alog *a;
	pthread_t th[4];
	const char *l;

	o.path = t->path;
	assert_int_equal(sl_alog_open(&o, &a), 0);
	for (i = 0; i < 4; i++) {
		p[i].a = a;
		p[i].t = 10 + i;
		assert_int_equal(pthread_create(&th[i], NULL, producer_main,
						&p[i]), 0);
	}
	for (i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	wait_done(a, 40000, &st);
	assert_int_equal(st.dropped, 0);
	assert_int_equal(st.written, 40000);
	sl_alog_close(a);

	/* every line whole, each producer's in its order */
	slurp(t->path, &got);
	for (l = got.p; l && *l; l = strchr(l, '\n') + 1) {
		assert_int_equal(sscanf(l, "{\"t\":%u,\"seq\":%u,", &tid,
					&seq), 2);
		assert_true(tid >= 10 && tid < 14);
		assert_int_equal(seq, next[tid - 10]++);
	}
	for (i = 0; i < 4; i++)
		assert_int_equal(next[i], 10000);
	check_json_lines(t->dir, &got);
	free(got.p);
}

static void write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0640);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, s, strlen(s)), (ssize_t)strlen(s));
	close(fd);
}

/* What a crash in the middle of a rotation leaves is sorted out at open. */
static void crash_leftovers_are_recovered(void **state)
{
	struct sl_alog_opts o = { .max_bytes = 4096, .keep = 2,
				  .queue_lines = 16 };
	struct tdir *t = *state;
	char one[256], gz[256], tmp[256];
	struct blob got = { 0 };
	struct sl_alog *a;

	o.path = t->path;
	snprintf(one, sizeof(one), "%s.1", t->path);
	snprintf(gz, sizeof(gz), "%s.1.gz", t->path);
	snprintf(tmp, sizeof(tmp), "%s.1.gz.tmp", t->path);

	/* cut during compression: path.1 and a partial .gz.tmp */
	write_file(one, "{\"old\":1}\n{\"old\":2}\n");
	write_file(tmp, "\x1f\x8b partial");
	assert_int_equal(sl_alog_open(&o, &a), 0);
	sl_alog_close(a);
	assert_false(exists(one));
	assert_false(exists(tmp));
	gunzip(gz, &got);
	assert_string_equal(got.p, "{\"old\":1}\n{\"old\":2}\n");

	/* cut after the .gz was in place, before path.1 went */
	write_file(one, "{\"stale\":1}\n");
	assert_int_equal(sl_alog_open(&o, &a), 0);
	sl_alog_close(a);
	assert_false(exists(one));
	got.len = 0;
	gunzip(gz, &got);
	assert_string_equal(got.p, "{\"old\":1}\n{\"old\":2}\n");
	free(got.p);
}

/* logrotate moved the live file away: the next lines go to a new one. */
static void reopens_after_an_external_move(void **state)
{
	struct sl_alog_opts o = { .max_bytes = 1 << 20, .keep = 2,
				  .queue_lines = 16 };
	struct tdir *t = *state;
	struct blob moved = { 0 }, live = { 0 };
	struct sl_alog_stats st;
	char away[256];
	struct sl_alog *a;

	o.path = t->path;
	snprintf(away, sizeof(away), "%s/moved.log", t->dir);
	assert_int_equal(sl_alog_open(&o, &a), 0);
	sl_alog_write(a, "{\"n\":1}", 7);
	wait_done(a, 1, &st);
	assert_int_equal(rename(t->path, away), 0);
	sl_alog_write(a, "{\"n\":2}", 7);
	wait_done(a, 2, &st);
	assert_int_equal(unlink(t->path), 0); /* deleted this time */
	sl_alog_write(a, "{\"n\":3}", 7);
	wait_done(a, 3, &st);
	assert_int_equal(st.write_errors, 0);
	sl_alog_close(a);
	slurp(away, &moved);
	slurp(t->path, &live);
	assert_string_equal(moved.p, "{\"n\":1}\n");
	assert_string_equal(live.p, "{\"n\":3}\n");
	free(moved.p);
	free(live.p);
}

static void json_escape_cases(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "", "\"\"" },
		{ "plain.example", "\"plain.example\"" },
		{ "q\"b\\", "\"q\\\"b\\\\\"" },
		{ "\n\r\t\x01\x1f", "\"\\n\\r\\t\\u0001\\u001f\"" },
		{ "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
		  "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"" },
		{ "bad\xff", "\"bad\\ufffd\"" },
		{ "\xc0\xaf", "\"\\ufffd\\ufffd\"" }, /* overlong '/' */
		{ "\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\"" }, /* surrogate */
		{ "\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\"" },
		{ "cut\xe2\x82", "\"cut\\ufffd\\ufffd\"" },
	};
	char out[64], fout[64];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int n = sl_json_escape(out, sizeof(out), cases[i].in);
		FILE *f = fmemopen(fout, sizeof(fout), "w");

		if (n < 0 || strcmp(out, cases[i].out) ||
		    (size_t)n != strlen(cases[i].out))
			fail_msg("case %zu: got %d '%s', want '%s'", i, n, out,
				 cases[i].out);
		/* the FILE form writes the same bytes */
		assert_non_null(f);
		sl_json_str(f, cases[i].in);
		assert_int_equal(fclose(f), 0);
		if (strcmp(fout, cases[i].out))
			fail_msg("case %zu: FILE form '%s', want '%s'", i, fout,
				 cases[i].out);
	}
	/* exactly fits, one short */
	assert_int_equal(sl_json_escape(out, 6, "abc"), 5);
	assert_string_equal(out, "\"abc\"");
	assert_int_equal(sl_json_escape(out, 5, "abc"), -ENOSPC);
	assert_string_equal(out, "");
	assert_int_equal(sl_json_escape(out, 7, "\x01"), -ENOSPC);
	assert_int_equal(sl_json_escape(out, 0, "a"), -ENOSPC);
}

/* A reload's switch: a path in a missing folder is refused and nothing
 * changes; another path takes the lines written after the switch, the old
 * file keeps those before it, both whole; rotation follows the new limits.
 */
static void reconfigure_switches_files(void **state)
{
	struct sl_alog_opts o = { .max_bytes = 1 << 20, .keep = 2,
				  .queue_lines = 4096 };
	struct tdir *t = *state;
	struct blob want1 = { 0 }, want2 = { 0 }, got = { 0 };
	char line[256], other[PATH_MAX + 8], gone[PATH_MAX + 16];
	char third[PATH_MAX + 8];
	struct sl_alog_stats st;
	struct sl_alog *a;
	unsigned int i;
	size_t n;

	o.path = t->path;
	snprintf(other, sizeof(other), "%s.2", t->path);
	snprintf(third, sizeof(third), "%s.3", t->path);
	snprintf(gone, sizeof(gone), "%s/nodir/x.log", t->dir);
	assert_int_equal(sl_alog_open(&o, &a), 0);
	for (i = 0; i < 100; i++) {
		n = make_line(line, sizeof(line), 1, i);
		sl_alog_write(a, line, n);
		blob_add(&want1, line, n);
		blob_add(&want1, "\n", 1);
	}
	wait_done(a, 100, &st);
	o.path = gone;
	assert_int_equal(sl_alog_reconfigure(a, &o), -ENOENT);
	o.path = other;
	o.max_bytes = 4096; /* the new limit: rotations follow */
	assert_int_equal(sl_alog_reconfigure(a, &o), 0);
	for (i = 100; i < 200; i++) {
		n = make_line(line, sizeof(line), 2, i);
		sl_alog_write(a, line, n);
		blob_add(&want2, line, n);
		blob_add(&want2, "\n", 1);
		usleep(200);
	}
	wait_done(a, 200, &st);
	assert_int_equal(st.written, 200);
	assert_true(st.rotations > 0);
	/* off: a line is not taken (nor counted); on again, in a third file,
	 * the next one is
	 */
	o.path = "";
	assert_int_equal(sl_alog_reconfigure(a, &o), 0);
	n = make_line(line, sizeof(line), 3, 0);
	sl_alog_write(a, line, n);
	usleep(20 * 1000);
	sl_alog_stats(a, &st);
	assert_int_equal(st.written + st.dropped, 200);
	o.path = third;
	assert_int_equal(sl_alog_reconfigure(a, &o), 0);
	n = make_line(line, sizeof(line), 4, 0);
	sl_alog_write(a, line, n);
	wait_done(a, 201, &st);
	sl_alog_close(a);
	got = (struct blob){ 0 };
	slurp(third, &got);
	assert_int_equal(got.len, n + 1);
	assert_memory_equal(got.p, line, n);
	free(got.p);
	unlink(third);
	got = (struct blob){ 0 };
	slurp(t->path, &got);
	assert_int_equal(got.len, want1.len);
	assert_memory_equal(got.p, want1.p, want1.len);
	/* the new file holds the tail of want2; its start went to .gz files */
	free(got.p);
	got = (struct blob){ 0 };
	slurp(other, &got);
	assert_true(got.len > 0 && got.len <= want2.len);
	assert_memory_equal(got.p, want2.p + want2.len - got.len, got.len);
	free(want1.p);
	free(want2.p);
	free(got.p);
	unlink(other);
	snprintf(other, sizeof(other), "%s.2.1.gz", t->path);
	unlink(other);
	snprintf(other, sizeof(other), "%s.2.2.gz", t->path);
	unlink(other);
}

#define T(f) cmocka_unit_test_setup_teardown(f, dir_setup, dir_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(off_and_bad_options),
		T(missing_directory_is_a_clear_error),
		T(lines_arrive_in_order_and_complete),
		T(a_line_stays_one_line),
		T(close_flushes_everything_queued),
		T(rotation_gives_gzip_files_of_the_lines),
		T(keep_bounds_files_and_disk),
		T(full_queue_drops_and_never_blocks),
		T(full_disk_keeps_whole_lines_and_counts),
		T(close_is_bounded_with_a_stuck_writer),
		T(concurrent_producers_lose_nothing),
		T(crash_leftovers_are_recovered),
		T(reopens_after_an_external_move),
		T(reconfigure_switches_files),
		cmocka_unit_test(json_escape_cases),
	};

	return cmocka_run_group_tests_name("accesslog", tests, NULL, NULL);
}
