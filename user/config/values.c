// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Typed values at a path of a document (see values.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "config/values.h"
#include "lib/addr.h"
#include "lib/util.h"

/* ---- Value parsers ---------------------------------------------------- */

/* Strict decimal, or 0x hex when hex_ok. 0 or -EINVAL/-ERANGE. */
int parse_num(const char *s, uint64_t min, uint64_t max, int hex_ok,
	      uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (!hex_ok || strncasecmp(s, "0x", 2))
		return sl_parse_u64(s, min, max, out);
	s += 2;
	if (!*s || strspn(s, "0123456789abcdefABCDEF") != strlen(s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 16);
	if (errno == ERANGE || v < min || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

int get_num(struct doc *d, const char *path, const char *s,
	    uint64_t min, uint64_t max, int hex_ok, uint64_t *out)
{
	int err = parse_num(s, min, max, hex_ok, out);

	if (err == -ERANGE)
		return doc_fail(d, doc_line(d, path), path,
				 "%s out of range %llu..%llu", s,
				 (unsigned long long)min,
				 (unsigned long long)max);
	if (err)
		return doc_fail(d, doc_line(d, path), path,
				 "\"%s\" is not a %snumber", s,
				 hex_ok ? "decimal or 0x hex " : "decimal ");
	return 0;
}

int get_uint(struct doc *d, const char *path, const char *s,
	     unsigned int min, unsigned int max, unsigned int *out)
{
	uint64_t v;
	int err;

	if (!s)
		return 0; /* not in this document: keep the default */
	err = get_num(d, path, s, min, max, 0, &v);
	if (!err)
		*out = (unsigned int)v;
	return err;
}

int get_bool(struct doc *d, const char *path, const char *s, int *out)
{
	static const char *const yes[] = { "true", "yes", "on" };
	static const char *const no[] = { "false", "no", "off" };
	size_t i;

	if (!s)
		return 0;
	for (i = 0; i < 3; i++) {
		if (!strcasecmp(s, yes[i]) || !strcasecmp(s, no[i])) {
			*out = !strcasecmp(s, yes[i]);
			return 0;
		}
	}
	return doc_fail(d, doc_line(d, path), path,
			 "\"%s\" is not true or false", s);
}

int get_string(struct doc *d, const char *path, const char *s,
	       char *out, size_t len)
{
	if (!s)
		return 0;
	if (strlen(s) >= len)
		return doc_fail(d, doc_line(d, path), path,
				 "longer than %zu bytes", len - 1);
	strcpy(out, s);
	return 0;
}

int get_action(struct doc *d, const char *path, const char *what,
	       const char *s, enum sl_action *out)
{
	if (!strcmp(s, "allow"))
		*out = SL_ACTION_ALLOW;
	else if (!strcmp(s, "deny"))
		*out = SL_ACTION_DENY;
	else
		return doc_fail(d, doc_line(d, path), what,
				 "unknown action \"%s\" (allow or deny)", s);
	return 0;
}

int get_cidrs(struct doc *d, const char *path, char **items,
	      unsigned int n, struct sl_cidr *out, unsigned int *n_out)
{
	char ipath[PATH_LEN];
	const char *why;
	unsigned int i;

	if (!doc_has(d, path))
		return 0;
	for (i = 0; i < n; i++) {
		if (sl_cidr_parse(items[i], &out[i], &why)) {
			doc_path_index(ipath, path, i);
			return doc_fail(d, doc_line(d, ipath), path,
					 "bad cidr \"%s\" (%s)", items[i], why);
		}
	}
	*n_out = n;
	return 0;
}

int get_port_ranges(struct doc *d, const char *path, char **items,
		    unsigned int n, struct sl_port_range *out,
		    unsigned int *n_out)
{
	char ipath[PATH_LEN];
	const char *why;
	unsigned int i;

	if (!doc_has(d, path))
		return 0;
	for (i = 0; i < n; i++) {
		if (sl_port_range_parse(items[i], &out[i], &why)) {
			doc_path_index(ipath, path, i);
			return doc_fail(d, doc_line(d, ipath), path,
					 "bad port range \"%s\" (%s)", items[i],
					 why);
		}
	}
	*n_out = n;
	return 0;
}

/* A listener: numeric and loopback. label names the key in messages. */
int get_endpoint(struct doc *d, const char *path, const char *what,
		 const char *label, const char *s,
		 struct sl_endpoint *out)
{
	const char *why;

	if (sl_endpoint_parse(s, out, &why))
		return doc_fail(d, doc_line(d, path), what,
				 "bad %s \"%s\" (%s)", label, s, why);
	if (!sl_endpoint_is_loopback(out))
		return doc_fail(d, doc_line(d, path), what,
				 "%s \"%s\" is not a loopback address "
				 "(listeners must not be reachable from other "
				 "hosts)",
				 label, s);
	return 0;
}
