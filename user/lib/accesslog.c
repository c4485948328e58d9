// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The access log (see accesslog.h): producers copy lines into a bounded
 * queue; one writer thread writes them out in batches, rotates the file by
 * size and gzip-compresses the rotated file with zlib, a chunk at a time
 * between two batches so that the queue never waits for a whole file.
 *
 * The queue is two buffers under one mutex: producers append to the front
 * one (a memcpy under the lock), the writer swaps them and writes the back
 * one with one write(2) per run of lines. Lines are of any length, so a
 * lock-free MPSC ring would need a reservation scheme or one allocation per
 * line; with two producers and a critical section of a memcpy, the mutex is
 * not where the time goes, and it is the one simple thing that is clearly
 * correct. The writer holds the lock only to swap two pointers.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>
#include "lib/util.h"
#include "lib/accesslog.h"
#include "lib/log.h"

#define ZCHUNK (64 * 1024) /* compressed per step: about a millisecond */
#define QUEUE_MAX (1U << 20)
/* the longest rotated-name suffix: leftovers() looks one past keep */
#define SUFFIX_MAX sizeof(".1000.gz.tmp")

/* One of the two queue buffers: lines back to back, each with its '\n'. */
struct alog_buf {
	char *data;
	uint32_t *lens; /* newline included */
	size_t bytes;
	unsigned int n;
};

/* A switch sl_alog_reconfigure asked for: opened there, so a bad path is
 * refused at once; taken by the writer with the next batch.
 */
struct alog_next {
	char *path;
	int fd, dirfd;
	uint64_t max_bytes;
	unsigned int keep;
	/* lines of the front buffer queued before the switch was asked:
	 * those go to the old file, the rest to the new one
	 */
	unsigned int before;
};

/* Compressing path.1 into path.1.gz.tmp, renamed path.1.gz when complete. */
struct gz_job {
	z_stream zs;
	int in, out;
	int zinit, active;
};

struct sl_alog {
	char *path;
	uint64_t max_bytes;
	unsigned int keep, cap_lines;
	size_t cap_bytes;

	pthread_mutex_t mu;
	pthread_cond_t wake; /* to the writer: lines queued, or quit */
	pthread_cond_t done_cv; /* to sl_alog_close: the writer is done */
	int sync_init;
	struct alog_buf bufs[2];
	struct alog_buf *front; /* the producers', under mu */
	struct alog_next *next; /* under mu; NULL: no switch asked */
	/* under mu: a reload turned the log off: no file, lines not taken */
	int off;
	int quit, done, orphan; /* under mu */
	pthread_t th;

	/* the writer thread's own (set up before it starts) */
	int fd, dirfd;
	int regular; /* a regular file: rotated; a fifo or a tty is not */
	dev_t dev;
	ino_t ino;
	uint64_t size;
	int failing; /* warned about an I/O error, not recovered since */
	int recover; /* a crash left path.1 uncompressed */
	struct gz_job job;
	unsigned char *zin, *zout;

	struct sl_alog_stats st; /* __atomic: read by sl_alog_stats */
};

static void count(uint64_t *c, uint64_t v)
{
	__atomic_fetch_add(c, v, __ATOMIC_RELAXED);
}

/* path.<n><suffix>; the length was checked at open. */
static void rot_name(const struct sl_alog *a, char *buf, unsigned int n,
		     const char *suffix)
{
	snprintf(buf, PATH_MAX, "%s.%u%s", a->path, n, suffix);
}

/* Warn once, then count: a full disk would otherwise log per batch. */
static void io_failed(struct sl_alog *a, const char *what, const char *name,
		      int err)
{
	count(&a->st.write_errors, 1);
	if (!a->failing)
		pr_warn("access log: %s %s: %s (further errors are counted, "
			"not shown)\n", what, name, strerror(-err));
	a->failing = 1;
}

static void io_ok(struct sl_alog *a)
{
	if (a->failing)
		pr_info("access log: writing %s again\n", a->path);
	a->failing = 0;
}

/* Open path and make it the live file (the old one is closed on success). */
static int live_open(struct sl_alog *a)
{
	struct stat st;
	int fd, err;

	/* O_NONBLOCK so that a fifo nobody reads fails (ENXIO) instead of
	 * hanging the opener; the writes may block: they are the writer's
	 */
	fd = open(a->path,
		  O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0640);
	if (fd < 0)
		return -errno;
	if (fcntl(fd, F_SETFL, O_APPEND) || fstat(fd, &st)) {
		err = -errno;
		close(fd);
		return err;
	}
	if (a->fd >= 0)
		close(a->fd);
	a->fd = fd;
	a->dev = st.st_dev;
	a->ino = st.st_ino;
	a->regular = S_ISREG(st.st_mode);
	a->size = a->regular ? (uint64_t)st.st_size : 0;
	return 0;
}

/* Before each batch: moved or deleted behind our back (logrotate's way),
 * open path anew; truncated (copytruncate), count from its new size.
 */
static void live_check(struct sl_alog *a)
{
	struct stat st;
	int err;

	if (a->fd >= 0) {
		if (stat(a->path, &st)) {
			if (errno != ENOENT)
				return; /* can't tell: keep what we have */
		} else if (st.st_dev == a->dev && st.st_ino == a->ino) {
			if (a->regular)
				a->size = (uint64_t)st.st_size;
			return;
		}
	}
	err = live_open(a);
	if (err)
		io_failed(a, "opening", a->path, err);
}

static int job_start(struct sl_alog *a)
{
	struct gz_job *j = &a->job;
	char one[PATH_MAX], tmp[PATH_MAX];

	rot_name(a, one, 1, "");
	rot_name(a, tmp, 1, ".gz.tmp");
	j->in = open(one, O_RDONLY | O_CLOEXEC);
	if (j->in < 0)
		return -errno;
	j->out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (j->out < 0)
		return -errno;
	memset(&j->zs, 0, sizeof(j->zs));
	/* windowBits 15 + 16: a gzip header and trailer, as gzip(1) writes */
	if (deflateInit2(&j->zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8,
			 Z_DEFAULT_STRATEGY) != Z_OK)
		return -ENOMEM;
	j->zinit = 1;
	j->active = 1;
	return 0;
}

/* Release the job; after a failure (err), path.1 stays as it is. */
static void job_end(struct sl_alog *a, int err)
{
	struct gz_job *j = &a->job;
	char name[PATH_MAX];

	if (j->zinit)
		deflateEnd(&j->zs);
	if (j->in >= 0)
		close(j->in);
	if (j->out >= 0)
		close(j->out);
	if (err) {
		rot_name(a, name, 1, ".gz.tmp");
		unlink(name);
		rot_name(a, name, 1, "");
		io_failed(a, "compressing", name, err);
	}
	memset(j, 0, sizeof(*j));
	j->in = j->out = -1;
}

/* Compress one chunk of path.1; at its end, put path.1.gz in place and
 * remove path.1. 1 when done, 0 when there is more, or -errno.
 */
static int job_step(struct sl_alog *a)
{
	struct gz_job *j = &a->job;
	char one[PATH_MAX], tmp[PATH_MAX], gz[PATH_MAX];
	int flush, err;
	ssize_t n;

	n = read(j->in, a->zin, ZCHUNK);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	j->zs.next_in = a->zin;
	j->zs.avail_in = (uInt)n;
	flush = n ? Z_NO_FLUSH : Z_FINISH;
	do {
		j->zs.next_out = a->zout;
		j->zs.avail_out = ZCHUNK;
		if (deflate(&j->zs, flush) == Z_STREAM_ERROR)
			return -EIO;
		err = sl_io_full(j->out, a->zout, ZCHUNK - j->zs.avail_out, false, -1);
		if (err)
			return err;
	} while (!j->zs.avail_out);
	if (flush != Z_FINISH)
		return 0;

	/* The data on disk before the final name, and that name on disk
	 * before path.1 goes: a crash never leaves a truncated .gz under the
	 * final name nor loses both copies (leftovers() sorts out the rest).
	 */
	rot_name(a, one, 1, "");
	rot_name(a, tmp, 1, ".gz.tmp");
	rot_name(a, gz, 1, ".gz");
	if (fsync(j->out) || rename(tmp, gz) || fsync(a->dirfd))
		return -errno;
	if (unlink(one))
		return -errno;
	return 1;
}

static void job_finish(struct sl_alog *a)
{
	int err;

	while (!(err = job_step(a)))
		;
	job_end(a, err < 0 ? err : 0);
}

/* path -> path.1 (path.N.gz -> path.N+1.gz first, the oldest dropped), a
 * new live file, and path.1's compression under way. With keep 0, the
 * live file just starts over.
 */
static int rotate(struct sl_alog *a)
{
	char from[PATH_MAX], to[PATH_MAX];
	unsigned int n;
	int err;

	if (a->job.active)
		job_finish(a); /* it owns path.1 and the path.1.gz to be */
	if (a->keep) {
		rot_name(a, to, a->keep, ".gz");
		if (unlink(to) && errno != ENOENT)
			io_failed(a, "removing", to, -errno);
		for (n = a->keep - 1; n >= 1; n--) {
			rot_name(a, from, n, ".gz");
			rot_name(a, to, n + 1, ".gz");
			if (rename(from, to) && errno != ENOENT)
				io_failed(a, "renaming", from, -errno);
		}
		rot_name(a, to, 1, "");
		err = rename(a->path, to) ? -errno : 0;
	} else {
		err = unlink(a->path) && errno != ENOENT ? -errno : 0;
	}
	if (err) {
		io_failed(a, "rotating", a->path, err);
		return err;
	}
	count(&a->st.rotations, 1);
	close(a->fd); /* it is path.1 now */
	a->fd = -1;
	err = live_open(a);
	if (err)
		io_failed(a, "opening", a->path, err);
	if (a->keep) {
		int jerr = job_start(a);

		if (jerr)
			job_end(a, jerr);
	}
	return err;
}

/* No fsync: a line write(2) returned is in the page cache and survives the
 * process crashing; only a kernel crash or a power cut loses the last few
 * seconds, an acceptable loss for an access log, whereas an fsync per batch
 * would put the disk's flush latency into the writer's loop, and so lines
 * into the drop counter. (The rotated .gz files are fsync'ed: see
 * job_step.)
 */
static void seg_write(struct sl_alog *a, const char *p, const uint32_t *lens,
		      unsigned int n, size_t len)
{
	unsigned int done = 0;
	size_t off = 0, acc = 0;
	int err = 0;

	if (!n)
		return;
	if (a->fd < 0) {
		count(&a->st.dropped, n);
		return;
	}
	while (off < len) {
		ssize_t w = write(a->fd, p + off, len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			err = w ? -errno : -EIO;
			break;
		}
		off += (size_t)w;
	}
	for (; done < n && acc + lens[done] <= off; done++)
		acc += lens[done];
	/* a write cut short (ENOSPC) leaves part of a line: the file goes
	 * back to its last whole line, so a reader never meets a torn JSON
	 * line (a fifo or a tty cannot be cut: what went, went)
	 */
	if (err && off > acc && !ftruncate(a->fd, (off_t)(a->size + acc)))
		off = acc;
	count(&a->st.written, done);
	count(&a->st.bytes, off);
	a->size += off;
	if (err) {
		count(&a->st.dropped, n - done);
		io_failed(a, "writing", a->path, err);
	} else {
		io_ok(a);
	}
}

/* Write a batch, rotating wherever the next line would take the live file
 * past max_bytes (a line longer than that still goes, alone, into a fresh
 * file: the bound is max_bytes plus one line).
 */
static void batch_write(struct sl_alog *a, const struct alog_buf *b)
{
	unsigned int i, first = 0;
	size_t start = 0, len = 0;

	live_check(a);
	for (i = 0; i < b->n; i++) {
		uint64_t after = a->size + len + b->lens[i];

		if (a->regular && a->fd >= 0 && after > a->max_bytes &&
		    a->size + len > 0) {
			seg_write(a, b->data + start, b->lens + first,
				  i - first, len);
			if (rotate(a)) {
				/* drop rather than grow past the bound */
				count(&a->st.dropped, b->n - i);
				return;
			}
			start += len;
			len = 0;
			first = i;
		}
		len += b->lens[i];
	}
	seg_write(a, b->data + start, b->lens + first, b->n - first, len);
}

static void next_free(struct alog_next *n)
{
	if (!n)
		return;
	if (n->fd >= 0)
		close(n->fd);
	if (n->dirfd >= 0)
		close(n->dirfd);
	free(n->path);
	free(n);
}

static void alog_free(struct sl_alog *a)
{
	int i;

	next_free(a->next);
	if (a->sync_init) {
		pthread_cond_destroy(&a->done_cv);
		pthread_cond_destroy(&a->wake);
		pthread_mutex_destroy(&a->mu);
	}
	if (a->fd >= 0)
		close(a->fd);
	if (a->dirfd >= 0)
		close(a->dirfd);
	for (i = 1; i >= 0; i--) {
		free(a->bufs[i].lens);
		free(a->bufs[i].data);
	}
	free(a->zout);
	free(a->zin);
	free(a->path);
	free(a);
}

/* A burst filled b past its first SL_ALOG_HOT_BYTES: give those pages back
 * (the next burst faults them in again), so a sidecar's RSS returns to its
 * size after the burst instead of keeping the whole queue resident.
 */
static void release_tail(const struct alog_buf *b)
{
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t start = ((uintptr_t)b->data + SL_ALOG_HOT_BYTES + page - 1) &
			  ~(page - 1);
	uintptr_t end = ((uintptr_t)b->data + b->bytes) & ~(page - 1);

	if (b->bytes > SL_ALOG_HOT_BYTES && end > start)
		madvise((void *)start, end - start, MADV_DONTNEED);
}

static void leftovers(struct sl_alog *a);

/* The writer takes a switch: what it compresses for the old path is
 * finished first (its rotated files stay beside it), then the new path is
 * the live file, with its own leftovers looked after as at open.
 */
static void switch_to(struct sl_alog *a, struct alog_next *n)
{
	struct stat st;
	char *old;
	int err;

	if (a->job.active)
		job_finish(a);
	if (a->fd >= 0)
		close(a->fd);
	if (a->dirfd >= 0)
		close(a->dirfd);
	pthread_mutex_lock(&a->mu); /* sl_alog_close may name the path */
	old = a->path;
	a->path = n->path;
	pthread_mutex_unlock(&a->mu);
	free(old);
	a->fd = n->fd;
	a->dirfd = n->dirfd;
	a->max_bytes = n->max_bytes;
	a->keep = n->keep;
	free(n);
	if (!a->path) {
		pr_info("access log: off\n");
		return;
	}
	a->failing = 0;
	if (!fstat(a->fd, &st)) {
		a->dev = st.st_dev;
		a->ino = st.st_ino;
		a->regular = S_ISREG(st.st_mode);
		a->size = a->regular ? (uint64_t)st.st_size : 0;
	}
	leftovers(a);
	if (a->recover) {
		a->recover = 0;
		err = job_start(a);
		if (err)
			job_end(a, err);
	}
	pr_info("access log: now %s (rotated at %llu bytes, %u gzip files "
		"kept)\n", a->path, (unsigned long long)a->max_bytes, a->keep);
}

static void *writer_main(void *arg)
{
	struct sl_alog *a = arg;
	struct alog_next *n;
	struct alog_buf *b;
	int err, orphan;

	if (a->recover) {
		err = job_start(a);
		if (err)
			job_end(a, err);
	}
	pthread_mutex_lock(&a->mu);
	for (;;) {
		while (!a->front->n && !a->quit && !a->job.active && !a->next)
			pthread_cond_wait(&a->wake, &a->mu);
		if (!a->front->n && a->quit)
			break;
		n = a->next;
		a->next = NULL;
		b = a->front;
		a->front = b == &a->bufs[0] ? &a->bufs[1] : &a->bufs[0];
		pthread_mutex_unlock(&a->mu);

		/* lines queued before a switch go to the old file, those
		 * after it to the new one
		 */
		if (n) {
			struct alog_buf head = *b, tail = *b;
			unsigned int i;

			head.n = n->before < b->n ? n->before : b->n;
			for (head.bytes = 0, i = 0; i < head.n; i++)
				head.bytes += b->lens[i];
			tail.data += head.bytes;
			tail.lens += head.n;
			tail.n -= head.n;
			tail.bytes -= head.bytes;
			if (head.n)
				batch_write(a, &head);
			switch_to(a, n);
			if (tail.n)
				batch_write(a, &tail);
		} else if (b->n) {
			batch_write(a, b);
		}
		release_tail(b);
		b->n = 0;
		b->bytes = 0;
		/* one chunk of compression between two batches */
		if (a->job.active && (err = job_step(a)))
			job_end(a, err < 0 ? err : 0);

		pthread_mutex_lock(&a->mu);
	}
	pthread_mutex_unlock(&a->mu);
	if (a->job.active)
		job_finish(a);

	pthread_mutex_lock(&a->mu);
	a->done = 1;
	pthread_cond_signal(&a->done_cv);
	orphan = a->orphan;
	pthread_mutex_unlock(&a->mu);
	if (orphan) /* sl_alog_close gave up on us: ours to free */
		alog_free(a);
	return NULL;
}

/* The directory must exist (we don't create it); kept open to fsync it. */
static int dir_open(struct sl_alog *a)
{
	char dir[PATH_MAX], *slash;
	int err;

	strcpy(dir, a->path); /* length checked */
	slash = strrchr(dir, '/');
	if (!slash)
		strcpy(dir, ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	a->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (a->dirfd >= 0)
		return 0;
	err = -errno;
	if (err == -ENOENT)
		pr_warn("access log: directory %s does not exist (sidelane "
			"does not create it)\n", dir);
	else if (err == -ENOTDIR)
		pr_warn("access log: %s is not a directory\n", dir);
	else
		pr_warn("access log: directory %s: %s\n", dir, strerror(-err));
	return err;
}

/* What a crash or a smaller keep left behind: a partial .gz (removed),
 * rotated files beyond keep (removed), path.1 whose path.1.gz is complete
 * (removed) or missing (compressed by the writer).
 */
static void leftovers(struct sl_alog *a)
{
	char one[PATH_MAX], name[PATH_MAX];
	unsigned int n;

	rot_name(a, name, 1, ".gz.tmp");
	unlink(name);
	for (n = a->keep + 1; n <= SL_ALOG_KEEP_MAX + 1; n++) {
		rot_name(a, name, n, ".gz");
		if (unlink(name) && errno == ENOENT)
			break;
	}
	rot_name(a, one, 1, "");
	if (access(one, F_OK))
		return;
	rot_name(a, name, 1, ".gz");
	if (a->keep && access(name, F_OK))
		a->recover = 1;
	else
		unlink(one);
}

/* The queue's lock and conditions, and the writer thread. Signals stay
 * with the thread that acts on their flags; SIGPIPE (a fifo whose reader
 * left) becomes EPIPE in the writer. 0 or -errno (said).
 */
static int writer_start(struct sl_alog *a)
{
	pthread_condattr_t ca;
	sigset_t all, old;
	int err;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* close's deadline */
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->wake, NULL);
	pthread_cond_init(&a->done_cv, &ca);
	pthread_condattr_destroy(&ca);
	a->sync_init = 1;
	sigfillset(&all);
	sigdelset(&all, SIGSYS); /* libpsx's: the privilege drop reaches us */
	pthread_sigmask(SIG_BLOCK, &all, &old);
	err = -pthread_create(&a->th, NULL, writer_main, a);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err) {
		pr_warn("access log: thread: %s\n", strerror(-err));
		return err;
	}
	pthread_setname_np(a->th, "sl-alog");
	return 0;
}

int sl_alog_open(const struct sl_alog_opts *o, struct sl_alog **out)
{
	struct sl_alog *a = NULL;
	int i, err;

	*out = NULL;
	if (!o->path || !*o->path)
		return 0;
	if (!o->max_bytes || !o->queue_lines || o->queue_lines > QUEUE_MAX ||
	    o->keep > SL_ALOG_KEEP_MAX) {
		pr_warn("access log: max_bytes must be > 0, queue_lines in "
			"1..%u, keep in 0..%u\n", QUEUE_MAX, SL_ALOG_KEEP_MAX);
		return -EINVAL;
	}
	if (strlen(o->path) + SUFFIX_MAX > PATH_MAX) {
		pr_warn("access log: path too long: %s\n", o->path);
		return -ENAMETOOLONG;
	}

	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->fd = a->dirfd = a->job.in = a->job.out = -1;
	a->max_bytes = o->max_bytes;
	a->keep = o->keep;
	a->cap_lines = o->queue_lines;
	a->cap_bytes = (size_t)o->queue_lines * SL_ALOG_AVG_LINE;
	if (a->cap_bytes < SL_ALOG_LINE_MAX + 1)
		a->cap_bytes = SL_ALOG_LINE_MAX + 1;
	err = -ENOMEM;
	a->path = strdup(o->path);
	a->zin = malloc(ZCHUNK);
	a->zout = malloc(ZCHUNK);
	if (!a->path || !a->zin || !a->zout)
		goto err;
	for (i = 0; i < 2; i++) {
		a->bufs[i].data = malloc(a->cap_bytes);
		a->bufs[i].lens = calloc(a->cap_lines, sizeof(uint32_t));
		if (!a->bufs[i].data || !a->bufs[i].lens)
			goto err;
	}
	a->front = &a->bufs[0];

	err = dir_open(a);
	if (err)
		goto err;
	leftovers(a);
	err = live_open(a);
	if (err) {
		pr_warn("access log: cannot open %s: %s\n", a->path,
			strerror(-err));
		goto err;
	}

	err = writer_start(a);
	if (err)
		goto err;
	pr_debug("access log: %s, rotated at %llu bytes, %u kept\n", a->path,
		 (unsigned long long)a->max_bytes, a->keep);
	*out = a;
	return 0;
err:
	alog_free(a);
	return err;
}

int sl_alog_reconfigure(struct sl_alog *a, const struct sl_alog_opts *o)
{
	struct sl_alog tmp = { .fd = -1, .dirfd = -1 };
	struct alog_next *n, *old;
	int err;

	bool off = !o->path || !*o->path;

	if (!o->max_bytes || o->keep > SL_ALOG_KEEP_MAX)
		return -EINVAL;
	if (!off && strlen(o->path) + SUFFIX_MAX > PATH_MAX)
		return -ENAMETOOLONG;
	n = calloc(1, sizeof(*n));
	tmp.path = off ? NULL : strdup(o->path);
	if (!n || (!off && !tmp.path)) {
		free(n);
		free(tmp.path);
		return -ENOMEM;
	}
	/* the folder and the file, here: a bad path is refused now */
	err = off ? 0 : dir_open(&tmp);
	if (!err && !off)
		err = live_open(&tmp);
	n->path = tmp.path;
	n->fd = tmp.fd;
	n->dirfd = tmp.dirfd;
	n->max_bytes = o->max_bytes;
	n->keep = o->keep;
	if (err) {
		pr_warn("access log: cannot open %s: %s\n", o->path,
			strerror(-err));
		next_free(n);
		return err;
	}
	pthread_mutex_lock(&a->mu);
	old = a->next; /* asked before and not taken yet: this one wins */
	n->before = old ? old->before : a->front->n;
	a->next = n;
	a->off = off; /* lines from now on are the new file's, or none */
	pthread_cond_signal(&a->wake);
	pthread_mutex_unlock(&a->mu);
	next_free(old);
	return 0;
}

void sl_alog_write(struct sl_alog *a, const char *line, size_t len)
{
	char *dst, *end, *q, *nl;
	struct alog_buf *b;

	if (!a)
		return;
	if (len > SL_ALOG_LINE_MAX) {
		count(&a->st.dropped, 1);
		return;
	}
	pthread_mutex_lock(&a->mu);
	if (a->off) {
		pthread_mutex_unlock(&a->mu);
		return;
	}
	b = a->front;
	if (b->n == a->cap_lines || b->bytes + len + 1 > a->cap_bytes) {
		pthread_mutex_unlock(&a->mu);
		count(&a->st.dropped, 1);
		return;
	}
	dst = b->data + b->bytes;
	memcpy(dst, line, len);
	end = dst + len;
	for (q = dst; (nl = memchr(q, '\n', (size_t)(end - q))); q = nl + 1)
		*nl = ' '; /* one line is one line, whatever the caller did */
	*end = '\n';
	b->lens[b->n++] = (uint32_t)len + 1;
	b->bytes += len + 1;
	if (b->n == 1) /* the writer sleeps only on an empty queue */
		pthread_cond_signal(&a->wake);
	pthread_mutex_unlock(&a->mu);
}

void sl_alog_stats(const struct sl_alog *a, struct sl_alog_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (!a)
		return;
	out->written = __atomic_load_n(&a->st.written, __ATOMIC_RELAXED);
	out->dropped = __atomic_load_n(&a->st.dropped, __ATOMIC_RELAXED);
	out->rotations = __atomic_load_n(&a->st.rotations, __ATOMIC_RELAXED);
	out->write_errors = __atomic_load_n(&a->st.write_errors,
					    __ATOMIC_RELAXED);
	out->bytes = __atomic_load_n(&a->st.bytes, __ATOMIC_RELAXED);
}

void sl_alog_close(struct sl_alog *a)
{
	struct timespec dl;
	pthread_t th;
	int orphan = 0;

	if (!a)
		return;
	clock_gettime(CLOCK_MONOTONIC, &dl);
	dl.tv_sec += SL_ALOG_CLOSE_TIMEOUT_MS / 1000;
	dl.tv_nsec += (SL_ALOG_CLOSE_TIMEOUT_MS % 1000) * 1000000L;
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	th = a->th;
	pthread_mutex_lock(&a->mu);
	a->quit = 1;
	pthread_cond_signal(&a->wake);
	while (!a->done && !orphan)
		if (pthread_cond_timedwait(&a->done_cv, &a->mu, &dl) ==
			    ETIMEDOUT &&
		    !a->done) {
			orphan = a->orphan = 1;
			/* under mu: once we let go, a may be freed */
			pr_warn("access log: %s: the writer is stuck (a hung "
				"disk, or a fifo nobody reads); left behind\n",
				a->path ? a->path : "(off)");
		}
	pthread_mutex_unlock(&a->mu);
	if (orphan) {
		pthread_detach(th);
		return;
	}
	pthread_join(th, NULL);
	alog_free(a);
}

