// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* A peer's certificate (DER, as it comes off the wire) and the identity
 * sidelane reads from it (cert_identity: exactly one URI SAN, a valid
 * SPIFFE ID, in the trust domain). What it accepts is a SPIFFE ID of that
 * trust domain; what it refuses it says why.
 */
#include <openssl/x509.h>
#include "fuzz.h"
#include "tls/internal.h"
#include "tls/spiffe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const unsigned char *p = data;
	char why[512], td[SL_SPIFFE_TD_MAX + 1], *id;
	enum sl_tls_fail r;
	X509 *x = d2i_X509(NULL, &p, (long)size);

	if (!x)
		return 0;
	why[0] = '\0';
	r = cert_identity(x, NULL, &id, why, sizeof(why));
	if (r == SL_TLS_FAIL_NONE) {
		if (!id || sl_spiffe_parse(id, td, sizeof(td)))
			abort();
		free(id);
		/* the same certificate in another trust domain: refused */
		why[0] = '\0';
		if (strcmp(td, "other.test") &&
		    (cert_identity(x, "other.test", &id, why, sizeof(why)) !=
			     SL_TLS_FAIL_TRUST_DOMAIN || id || !why[0]))
			abort();
	} else if (id || !why[0]) {
		abort();
	}
	X509_free(x);
	return 0;
}
