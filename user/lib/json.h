/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* JSON strings (json.c): quoted and escaped, invalid UTF-8 as U+FFFD. */
#ifndef SL_JSON_H
#define SL_JSON_H

#include <stddef.h>
#include <stdio.h>
#include <linux/types.h>

/* s as a JSON string, quotes included, into out (NUL-terminated): its
 * length, or -ENOSPC (out then holds "").
 */
int sl_json_escape(char *out, size_t outlen, const char *s);
/* the same, written to f */
void sl_json_str(FILE *f, const char *s);
/* "key":{"names[i]":vals[i],...} for i from first to n - 1. */
void sl_json_by_name(FILE *f, const char *key, const char *const *names,
		     const __u64 *vals, int first, int n);

#endif
