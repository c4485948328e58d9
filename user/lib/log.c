// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Logging for the sidelane binary (see log.h). */
#include <stdarg.h>
#include <stdio.h>
#include <bpf/libbpf.h>
#include "lib/log.h"

int sl_verbosity;

static void vlog(enum sl_log_level level, const char *fmt, va_list ap)
{
	static const char *const tag[] = { "warning: ", "", "debug: ",
					   "libbpf: " };

	/* info is shown by default, debug from -v, libbpf debug from -vv */
	if ((int)level > sl_verbosity + 1)
		return;
	fprintf(stderr, "sidelane: %s", tag[level]);
	vfprintf(stderr, fmt, ap);
}

void sl_log(enum sl_log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(level, fmt, ap);
	va_end(ap);
}

static int libbpf_print(enum libbpf_print_level level, const char *fmt,
			va_list ap)
{
	/* One level quieter than ours: libbpf's warnings show as info (a failed
	 * load explains itself by default), its info from -v, its debug from -vv.
	 */
	static const enum sl_log_level map[] = {
		[LIBBPF_WARN] = SL_LOG_INFO,
		[LIBBPF_INFO] = SL_LOG_DEBUG,
		[LIBBPF_DEBUG] = SL_LOG_LIBBPF,
	};

	vlog(map[level], fmt, ap);
	return 0;
}

void sl_log_init_libbpf(void)
{
	libbpf_set_print(libbpf_print);
}
