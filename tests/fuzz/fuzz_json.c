// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The one JSON string escaper (sl_json_escape, sl_json_str) behind status,
 * /stats, bench --json and the access log, whose strings can come from a
 * peer (SNI, identities, host names). Whatever the bytes, the output is a
 * JSON string any parser takes: quoted, no raw control byte, valid UTF-8,
 * only the escapes JSON knows; valid UTF-8 in comes back out unchanged
 * once decoded, and the FILE and buffer forms write the same bytes.
 */
#include "fuzz.h"
#include "lib/json.h"

/* Length of the valid UTF-8 sequence at p (as RFC 3629), 0 if none:
 * written apart from json.c's, so the two check each other.
 */
static size_t u8len(const unsigned char *p, size_t left)
{
	uint32_t cp;
	size_t n, i;

	if (p[0] < 0x80)
		return 1;
	n = (p[0] & 0xe0) == 0xc0 ? 2 : (p[0] & 0xf0) == 0xe0 ? 3 :
	    (p[0] & 0xf8) == 0xf0 ? 4 : 0;
	if (!n || n > left)
		return 0;
	cp = p[0] & (0x7f >> n);
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) ||
	    (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

static bool utf8_valid(const unsigned char *s, size_t len)
{
	size_t i = 0, n;

	while (i < len) {
		n = u8len(s + i, len - i);
		if (!n)
			return false;
		i += n;
	}
	return true;
}

/* Decode the JSON string out (quotes included) into dec; its length, or
 * abort() on anything a JSON parser would refuse.
 */
static size_t decode(const char *out, size_t len, char *dec)
{
	const unsigned char *p = (const unsigned char *)out;
	size_t i, n = 0;
	unsigned int v;

	if (len < 2 || p[0] != '"' || p[len - 1] != '"' ||
	    !utf8_valid(p, len))
		abort();
	for (i = 1; i < len - 1; i++) {
		if (p[i] < 0x20 || p[i] == '"')
			abort();
		if (p[i] != '\\') {
			dec[n++] = (char)p[i];
			continue;
		}
		switch (p[++i]) {
		case '"': case '\\': case '/':
			dec[n++] = (char)p[i];
			break;
		case 'n': dec[n++] = '\n'; break;
		case 'r': dec[n++] = '\r'; break;
		case 't': dec[n++] = '\t'; break;
		case 'b': dec[n++] = '\b'; break;
		case 'f': dec[n++] = '\f'; break;
		case 'u':
			if (i + 4 >= len - 1 || sscanf(out + i + 1, "%4x", &v) != 1)
				abort();
			if (v >= 0x80) { /* only control bytes come escaped */
				if (v != 0xfffd)
					abort();
				memcpy(dec + n, "\xef\xbf\xbd", 3);
				n += 3;
			} else {
				dec[n++] = (char)v;
			}
			i += 4;
			break;
		default:
			abort();
		}
	}
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_str(data, size), *out, *dec, *mem = NULL;
	size_t slen = strlen(s), cap = slen * 6 + 3, mlen = 0, dlen;
	FILE *f;
	int n;

	out = malloc(cap);
	dec = malloc(cap);
	if (!out || !dec)
		abort();
	n = sl_json_escape(out, cap, s);
	if (n < 0 || (size_t)n != strlen(out))
		abort();
	dlen = decode(out, n, dec);
	if (utf8_valid((const unsigned char *)s, slen) &&
	    (dlen != slen || memcmp(dec, s, slen)))
		abort();
	/* too small a buffer: -ENOSPC and "", never a cut string */
	if (n > 0 && (sl_json_escape(out, n, s) != -ENOSPC || out[0]))
		abort();
	f = open_memstream(&mem, &mlen);
	if (!f)
		abort();
	sl_json_str(f, s);
	fclose(f);
	if (sl_json_escape(out, cap, s) != n || mlen != (size_t)n ||
	    memcmp(mem, out, n))
		abort();
	free(mem);
	free(out);
	free(dec);
	free(s);
	return 0;
}
