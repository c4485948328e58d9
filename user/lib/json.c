// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* JSON strings: the one escaper behind every JSON sidelane prints (status,
 * /stats, the access log, bench --json). What it escapes can come from a
 * peer (SNI, host names, a process name), so invalid UTF-8 becomes U+FFFD:
 * a consumer's parser never sees a byte it would refuse.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "lib/json.h"

/* Length of the valid UTF-8 sequence at p (RFC 3629: no overlong forms, no
 * surrogates, nothing past U+10FFFF), 0 if there is none. Stops at the
 * first bad byte, so never reads past a NUL.
 */
static size_t utf8_len(const unsigned char *p)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n, i;

	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4;
	else
		return 0;
	if (p[0] == 0xe0)
		lo = 0xa0; /* overlong */
	else if (p[0] == 0xed)
		hi = 0x9f; /* surrogates */
	else if (p[0] == 0xf0)
		lo = 0x90; /* overlong */
	else if (p[0] == 0xf4)
		hi = 0x8f; /* past U+10FFFF */
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (i = 2; i < n; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return n;
}

/* The escaped form of the character at p (not NUL): *rep and its length;
 * returns how many input bytes it stands for. esc holds a short form.
 */
static size_t json_char(const unsigned char *p, char esc[8], const char **rep,
			size_t *rlen)
{
	size_t adv = 1;

	*rep = esc;
	switch (*p) {
	case '"':
		*rep = "\\\"";
		break;
	case '\\':
		*rep = "\\\\";
		break;
	case '\n':
		*rep = "\\n";
		break;
	case '\r':
		*rep = "\\r";
		break;
	case '\t':
		*rep = "\\t";
		break;
	default:
		if (*p < 0x20) {
			snprintf(esc, 8, "\\u%04x", *p);
		} else if (*p < 0x80) {
			esc[0] = (char)*p;
			esc[1] = '\0';
		} else if ((adv = utf8_len(p))) {
			*rep = (const char *)p;
			*rlen = adv;
			return adv;
		} else {
			*rep = "\\ufffd";
			adv = 1;
		}
	}
	*rlen = strlen(*rep);
	return adv;
}

int sl_json_escape(char *out, size_t outlen, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = 0;
	char esc[8];

	if (outlen < 3)
		goto nospace;
	out[n++] = '"';
	while (*p) {
		const char *rep;
		size_t rlen, adv = json_char(p, esc, &rep, &rlen);

		if (n + rlen + 2 > outlen) /* room for '"' and NUL */
			goto nospace;
		memcpy(out + n, rep, rlen);
		n += rlen;
		p += adv;
	}
	out[n++] = '"';
	out[n] = '\0';
	return (int)n;
nospace:
	if (outlen)
		out[0] = '\0';
	return -ENOSPC;
}

void sl_json_str(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	char esc[8];

	fputc('"', f);
	while (*p) {
		const char *rep;
		size_t rlen;

		p += json_char(p, esc, &rep, &rlen);
		fwrite(rep, 1, rlen, f);
	}
	fputc('"', f);
}

void sl_json_by_name(FILE *f, const char *key, const char *const *names,
		     const __u64 *vals, int first, int n)
{
	int i;

	fprintf(f, "\"%s\":{", key);
	for (i = first; i < n; i++)
		fprintf(f, "%s\"%s\":%llu", i > first ? "," : "", names[i],
			(unsigned long long)vals[i]);
	fputc('}', f);
}
