/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* SPIFFE IDs (spiffe.c): the identities mTLS certificates carry, and the
 * patterns of tls.mesh and inbound.identities.
 */
#ifndef SL_SPIFFE_H
#define SL_SPIFFE_H

#include <stdbool.h>
#include <stddef.h>

#define SL_SPIFFE_MAX 2048 /* SPIFFE ID length limit (the spec's URI limit) */
#define SL_SPIFFE_TD_MAX 255 /* trust domain length limit */

/* Validate a SPIFFE ID (spiffe://<td>/<path>: td lowercase
 * [a-z0-9.-_], path segments [A-Za-z0-9.-_] neither empty nor "." or "..",
 * no trailing slash, no query/fragment/port/userinfo) and copy its trust
 * domain into td (may be NULL). 0 or -EINVAL.
 */
int sl_spiffe_parse(const char *id, char *td, size_t tdlen);
/* Does id match pattern: exact; a prefix wildcard, the pattern ending in
 * "/" "*" as in spiffe://td/ns/x/<star> (anything below that path, at a
 * segment boundary, not the path itself); or "*" alone (any)?
 */
bool sl_spiffe_match(const char *pattern, const char *id);

#endif /* SL_SPIFFE_H */
