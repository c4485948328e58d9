/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Logging for the sidelane binary: pr_warn/pr_info/pr_debug to stderr. */
#ifndef LOG_H
#define LOG_H

enum sl_log_level { SL_LOG_WARN, SL_LOG_INFO, SL_LOG_DEBUG, SL_LOG_LIBBPF };

/* Raised by each -v: 1 shows pr_debug, 2 also libbpf's debug output. */
extern int sl_verbosity;

void sl_log(enum sl_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Route libbpf's messages through sl_log, one level quieter than ours. */
void sl_log_init_libbpf(void);

#define pr_warn(fmt, ...) sl_log(SL_LOG_WARN, fmt, ##__VA_ARGS__)
#define pr_info(fmt, ...) sl_log(SL_LOG_INFO, fmt, ##__VA_ARGS__)
#define pr_debug(fmt, ...) sl_log(SL_LOG_DEBUG, fmt, ##__VA_ARGS__)

#endif /* LOG_H */
