// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* SPIFFE IDs (see spiffe.h): no OpenSSL here, so the configuration checks
 * identity patterns with the same code the handshake uses.
 */
#include <errno.h>
#include <string.h>
#include "tls/spiffe.h"

static bool td_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
	       c == '-' || c == '_';
}

static bool path_char(char c)
{
	return td_char(c) || (c >= 'A' && c <= 'Z');
}

int sl_spiffe_parse(const char *id, char *td, size_t tdlen)
{
	static const char scheme[] = "spiffe://";
	const char *p, *seg;
	size_t n, i;

	if (!id || strncmp(id, scheme, sizeof(scheme) - 1) ||
	    strlen(id) > SL_SPIFFE_MAX)
		return -EINVAL;
	p = id + sizeof(scheme) - 1;
	/* ':' (port), '@' (userinfo), '?', '#', '%' and upper case all fail */
	n = strcspn(p, "/");
	if (!n || n > SL_SPIFFE_TD_MAX)
		return -EINVAL;
	for (i = 0; i < n; i++)
		if (!td_char(p[i]))
			return -EINVAL;
	if (p[n] != '/') /* a workload ID has a path; the bare td is not one */
		return -EINVAL;
	for (seg = p + n; *seg == '/'; seg += 1 + strcspn(seg + 1, "/")) {
		size_t len = strcspn(seg + 1, "/");

		if (!len || (len == 1 && seg[1] == '.') ||
		    (len == 2 && seg[1] == '.' && seg[2] == '.'))
			return -EINVAL;
		for (i = 1; i <= len; i++)
			if (!path_char(seg[i]))
				return -EINVAL;
	}
	if (td) {
		if (n >= tdlen)
			return -ENAMETOOLONG;
		memcpy(td, p, n);
		td[n] = '\0';
	}
	return 0;
}

bool sl_spiffe_match(const char *pattern, const char *id)
{
	size_t n;

	if (!pattern || !id)
		return false;
	if (!strcmp(pattern, "*"))
		return true;
	n = strlen(pattern);
	/* a trailing "/" + "*": the prefix keeps its '/', so the match ends
	 * on a segment boundary, and something must follow it
	 */
	if (n >= 2 && !strcmp(pattern + n - 2, "/*"))
		return !strncmp(pattern, id, n - 1) && id[n - 1];
	return !strcmp(pattern, id);
}
