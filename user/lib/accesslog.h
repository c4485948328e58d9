/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The access log (user/lib/accesslog.c): one JSON line per closed connection,
 * written to a file by a thread of its own, rotated by size into
 * gzip-compressed files. Producers (the proxy's loop, the ring buffer
 * consumer) only ever copy a line into a bounded queue.
 */
#ifndef SL_ACCESSLOG_H
#define SL_ACCESSLOG_H

#include <stddef.h>
#include <stdint.h>

#define SL_ALOG_DEF_MAX_BYTES (10ULL << 20)
#define SL_ALOG_DEF_KEEP 5
#define SL_ALOG_DEF_QUEUE 8192
#define SL_ALOG_KEEP_MAX 999
/* A longer line is dropped (and counted): it is a bug, not a log line. */
#define SL_ALOG_LINE_MAX (16 * 1024)
/* The queue holds at most queue_lines lines and queue_lines times this
 * many bytes (at least SL_ALOG_LINE_MAX), whichever fills first.
 */
#define SL_ALOG_AVG_LINE 512
#define SL_ALOG_HOT_BYTES (256 * 1024) /* of each queue buffer, kept resident */
/* sl_alog_close waits this long for the writer, then leaves it behind. */
#define SL_ALOG_CLOSE_TIMEOUT_MS 5000

struct sl_alog;

struct sl_alog_opts {
	const char *path; /* /var/log/sidelane/access.log; "" or NULL: off */
	uint64_t max_bytes; /* rotate when the live file would exceed this */
	unsigned int keep; /* path.1.gz .. path.<keep>.gz kept; 0: none */
	unsigned int queue_lines; /* beyond them, lines are dropped */
};

struct sl_alog_stats {
	uint64_t written; /* lines in the file */
	uint64_t dropped; /* queue full, too long, or lost to an I/O error */
	uint64_t rotations;
	uint64_t write_errors; /* failed writes, renames, compressions */
	uint64_t bytes; /* written to the live file, newlines included */
};

/* Open (create, mode 0640 less the umask) path for appending and start the
 * writer thread. The directory must exist: a missing one is -ENOENT, with a
 * message saying so. A path that is not a regular file (/dev/stdout, a
 * fifo) is written to but never rotated. Left over from a crash: a
 * path.1 not yet compressed is compressed, a partial .gz is removed, and
 * rotated files beyond keep are removed.
 * With no path, *out = NULL and 0: every sl_alog_* call takes NULL as "off".
 * 0, -EINVAL (bad options), -ENAMETOOLONG, or -errno.
 */
int sl_alog_open(const struct sl_alog_opts *o, struct sl_alog **out);
/* A config reload: o's path (a regular file, a fifo), max_bytes and keep
 * (o->queue_lines is ignored). The folder and file are opened here, so a
 * bad path is refused now and nothing changes. Lines written before the
 * call go to the old file, lines after it to the new one; the writer
 * finishes compressing for the old path first. No path turns the log off
 * (lines written meanwhile are not taken, nor counted) until a path
 * comes again. 0 or -errno.
 */
int sl_alog_reconfigure(struct sl_alog *a, const struct sl_alog_opts *o);
/* Never blocks and never does I/O on the caller's thread: copies the line
 * (one JSON object, no newline; the writer adds it, and a stray '\n' in
 * it becomes ' ') into the queue, or counts a drop. Thread-safe.
 */
void sl_alog_write(struct sl_alog *a, const char *line, size_t len);
void sl_alog_stats(const struct sl_alog *a, struct sl_alog_stats *out);
/* Write what is queued (at most queue_lines lines, then at most one
 * compression of max_bytes), stop the writer thread and close. If the
 * writer is still stuck after SL_ALOG_CLOSE_TIMEOUT_MS (a hung disk or a
 * fifo nobody reads), returns anyway: the writer frees everything when it
 * gets out.
 */
void sl_alog_close(struct sl_alog *a);

#endif /* SL_ACCESSLOG_H */
