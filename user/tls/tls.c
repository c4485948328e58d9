// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Mutual TLS between sidecars on OpenSSL 3 (see tls.h): material loaded and
 * checked from files, rotated for new connections, SPIFFE identities,
 * non-blocking handshake/read/write/shutdown wrappers, a client session cache,
 * the kTLS probe and the counters.
 *
 * Files: material.c loads and rotates the material and makes the contexts
 * (with OpenSSL's callbacks and the session cache), conn.c drives
 * connections, spiffe.c parses and matches SPIFFE IDs; this one holds what
 * they share: errors, a certificate's identity, the kTLS probe, ALPN.
 */
#define _GNU_SOURCE
#include "tls/internal.h"

const char *const sl_tls_fail_name[SL_TLS_FAIL_NR] = {
	[SL_TLS_FAIL_NONE] = "none",
	[SL_TLS_FAIL_BAD_CERT] = "bad-cert",
	[SL_TLS_FAIL_UNKNOWN_CA] = "unknown-ca",
	[SL_TLS_FAIL_EXPIRED] = "expired",
	[SL_TLS_FAIL_NO_CERT] = "no-cert",
	[SL_TLS_FAIL_NO_IDENTITY] = "no-identity",
	[SL_TLS_FAIL_TRUST_DOMAIN] = "wrong-trust-domain",
	[SL_TLS_FAIL_TIMEOUT] = "timeout",
	[SL_TLS_FAIL_PROTOCOL] = "protocol",
	[SL_TLS_FAIL_IO] = "io",
	[SL_TLS_FAIL_IDENTITY] = "identity",
};

static pthread_once_t idx_once = PTHREAD_ONCE_INIT;
int conn_idx = -1; /* SSL ex_data slot holding the sl_tls_conn */

static void idx_init(void)
{
	conn_idx = SSL_get_ex_new_index(0, "sl_tls_conn", NULL, NULL, NULL);
}

int conn_idx_get(void)
{
	pthread_once(&idx_once, idx_init);
	return conn_idx;
}

/* ---- errors ---- */

void __attribute__((format(printf, 3, 4)))
append(char *buf, size_t len, const char *fmt, ...)
{
	size_t used = strnlen(buf, len);
	va_list ap;

	if (used + 1 >= len)
		return;
	va_start(ap, fmt);
	vsnprintf(buf + used, len - used, fmt, ap);
	va_end(ap);
}

static enum sl_tls_fail classify(unsigned long e)
{
	if (ERR_GET_LIB(e) != ERR_LIB_SSL)
		return SL_TLS_FAIL_NONE;
	switch (ERR_GET_REASON(e)) {
	case SSL_R_CERTIFICATE_VERIFY_FAILED:
	case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
	case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
	case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
		return SL_TLS_FAIL_BAD_CERT;
	case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
		return SL_TLS_FAIL_UNKNOWN_CA;
	case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
		return SL_TLS_FAIL_EXPIRED;
	case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
	case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
		return SL_TLS_FAIL_NO_CERT;
	case SSL_R_UNEXPECTED_EOF_WHILE_READING:
		return SL_TLS_FAIL_IO;
	default:
		return SL_TLS_FAIL_PROTOCOL;
	}
}

/* Empty OpenSSL's (thread-local) error queue into buf, "; "-separated, and
 * classify the first libssl error in it.
 */
enum sl_tls_fail drain_errors(char *buf, size_t len)
{
	enum sl_tls_fail why = SL_TLS_FAIL_NONE;
	const char *data;
	unsigned long e;
	char one[256];
	int flags;

	while ((e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags))) {
		if (!why)
			why = classify(e);
		ERR_error_string_n(e, one, sizeof(one));
		append(buf, len, "%s%s", *buf ? "; " : "", one);
		if ((flags & ERR_TXT_STRING) && data && *data)
			append(buf, len, " (%s)", data);
	}
	return why;
}

/* ---- SPIFFE IDs (spiffe.c parses and matches them) ---- */

/* The SPIFFE ID of cert x: exactly one URI SAN, a valid SPIFFE ID, in trust
 * domain want_td (any if NULL). SL_TLS_FAIL_NONE with *id (malloc'ed) set,
 * or the reason with why filled in.
 */
enum sl_tls_fail cert_identity(X509 *x, const char *want_td, char **id,
			       char *why, size_t len)
{
	char td[SL_SPIFFE_TD_MAX + 1], *uri = NULL;
	GENERAL_NAMES *gens;
	int i, n_uri = 0;

	*id = NULL;
	gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	for (i = 0; gens && i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		const ASN1_IA5STRING *s;

		if (g->type != GEN_URI)
			continue;
		s = g->d.uniformResourceIdentifier;
		if (!n_uri++ && s->length > 0 &&
		    memchr(s->data, '\0', s->length) == NULL)
			uri = strndup((const char *)s->data, s->length);
	}
	GENERAL_NAMES_free(gens);
	if (n_uri != 1) {
		free(uri);
		snprintf(why, len,
			 n_uri ? "%d URI SANs (a SPIFFE certificate has exactly one)" :
				 "no URI SAN (no SPIFFE ID)",
			 n_uri);
		return SL_TLS_FAIL_NO_IDENTITY;
	}
	if (!uri || sl_spiffe_parse(uri, td, sizeof(td))) {
		snprintf(why, len, "URI SAN %s is not a valid SPIFFE ID",
			 uri ? uri : "(unreadable)");
		free(uri);
		return SL_TLS_FAIL_NO_IDENTITY;
	}
	if (want_td && strcmp(td, want_td)) {
		snprintf(why, len, "SPIFFE ID %s is not in trust domain %s", uri,
			 want_td);
		free(uri);
		return SL_TLS_FAIL_TRUST_DOMAIN;
	}
	*id = uri;
	return SL_TLS_FAIL_NONE;
}

/* ---- kTLS probe ---- */

static pthread_once_t ktls_once = PTHREAD_ONCE_INIT;
static bool ktls_ok;
static char ktls_why[192];

/* Attach the "tls" ULP to a loopback TCP socket of our own: the kernel
 * answers ENOENT without the tls module (CONFIG_TLS off or not loadable),
 * ENOPROTOOPT without TCP_ULP at all.
 */
static void ktls_probe(void)
{
	struct sockaddr_in in = { .sin_family = AF_INET };
	socklen_t alen = sizeof(in);
	int lfd = -1, cfd = -1, sfd = -1;
	const char *step;

#ifdef OPENSSL_NO_KTLS
	snprintf(ktls_why, sizeof(ktls_why),
		 "unavailable: OpenSSL built without kTLS; TLS in user space");
	return;
#endif
	in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	step = "socket";
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || cfd < 0)
		goto fail;
	step = "listen";
	if (bind(lfd, (void *)&in, sizeof(in)) || listen(lfd, 1) ||
	    getsockname(lfd, (void *)&in, &alen))
		goto fail;
	step = "connect";
	if (connect(cfd, (void *)&in, sizeof(in)))
		goto fail;
	sfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (sfd < 0)
		goto fail;
	if (!setsockopt(cfd, SOL_TCP, TCP_ULP, "tls", sizeof("tls"))) {
		ktls_ok = true;
		snprintf(ktls_why, sizeof(ktls_why),
			 "available: kernel tls ULP present, OpenSSL kTLS enabled");
	} else if (errno == ENOENT) {
		snprintf(ktls_why, sizeof(ktls_why),
			 "unavailable: kernel has no tls module (CONFIG_TLS; "
			 "TCP_ULP \"tls\": ENOENT); TLS in user space");
	} else if (errno == ENOPROTOOPT) {
		snprintf(ktls_why, sizeof(ktls_why),
			 "unavailable: kernel without TCP_ULP (ENOPROTOOPT); TLS in user space");
	} else {
		snprintf(ktls_why, sizeof(ktls_why),
			 "unavailable: TCP_ULP \"tls\": %s; TLS in user space",
			 strerror(errno));
	}
	goto out;
fail:
	snprintf(ktls_why, sizeof(ktls_why),
		 "unknown: loopback probe failed at %s: %s; TLS in user space",
		 step, strerror(errno));
out:
	if (sfd >= 0)
		close(sfd);
	if (cfd >= 0)
		close(cfd);
	if (lfd >= 0)
		close(lfd);
}

bool sl_tls_ktls_available(void)
{
	pthread_once(&ktls_once, ktls_probe);
	return ktls_ok;
}

const char *sl_tls_ktls_reason(void)
{
	pthread_once(&ktls_once, ktls_probe);
	return ktls_why;
}

/* "h2,http/1.1" to ALPN wire format. 0 or -EINVAL/-ENOMEM. */
int alpn_wire(const char *csv, unsigned char **out, size_t *outlen)
{
	size_t total = 0, len;
	unsigned char *w;
	const char *p;

	*out = NULL;
	*outlen = 0;
	if (!csv || !*csv)
		return 0;
	w = malloc(strlen(csv) + 1);
	if (!w)
		return -ENOMEM;
	for (p = csv;; p += len + 1) {
		len = strcspn(p, ",");
		if (!len || len > 255) {
			free(w);
			return -EINVAL;
		}
		w[total++] = (unsigned char)len;
		memcpy(w + total, p, len);
		total += len;
		if (!p[len])
			break;
	}
	*out = w;
	*outlen = total;
	return 0;
}
