// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Mutual TLS between sidecars on OpenSSL 3 (see tls.h): material loaded and
 * checked from files, rotated for new connections, SPIFFE identities,
 * non-blocking handshake/read/write/shutdown wrappers, a client session cache,
 * the kTLS probe and the counters.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include "lib/log.h"
#include "lib/util.h"
#include "tls/tls.h"

/* TLS 1.2 only when allowed: ECDHE key exchange and AEAD ciphers. */
#define TLS12_CIPHERS                                                          \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"          \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"          \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define TLS13_SUITES                                                           \
	"TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"                     \
	"TLS_CHACHA20_POLY1305_SHA256"
#define SID_CTX "sidelane" /* server session id context (resumption) */
#define FILE_MAX (1 << 20) /* a PEM file larger than this is refused */
#define VERIFY_DEPTH 8

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

enum { F_CERT, F_KEY, F_CA, F_NR };
static const char *const file_kind[F_NR] = { "cert", "key", "CA bundle" };

/* Which version of a file was loaded: any change of these means a new one. */
struct stamp {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtim, ctim;
	bool valid;
};

/* One generation of certificate material: both SSL_CTX and what they came
 * from. Connections hold their SSL_CTX by reference, not the material.
 */
struct material {
	SSL_CTX *client, *server;
	struct stamp st[F_NR];
	char id[SL_SPIFFE_MAX + 1];
};

struct sess {
	char *key; /* destination */
	SSL_SESSION *s;
	uint64_t used; /* ctx->tick at the last store or use */
};

struct sl_tls_ctx {
	pthread_mutex_t lock; /* mat and cache */
	pthread_mutex_t reload_lock; /* one reload at a time */
	struct material *mat;
	char *files[F_NR];
	char td[SL_SPIFFE_TD_MAX + 1]; /* peers' trust domain */
	unsigned char *alpn; /* wire format, NULL when none */
	size_t alpn_len;
	bool allow_tls12, ktls;
	/* Stamps of the last rejected files: not retried until they change. */
	struct stamp rejected[F_NR];
	int rejected_err;
	struct sess cache[SL_TLS_SESS_CACHE];
	uint64_t tick;
	struct sl_tls_stats st; /* updated with atomics */
	char err[SL_TLS_ERR_MAX];
};

struct sl_tls_conn {
	struct sl_tls_ctx *ctx;
	SSL *ssl;
	int fd;
	enum sl_tls_role role;
	bool established, fatal, shut_sent;
	bool resumed, ktls_tx, ktls_rx;
	enum sl_tls_fail fail;
	char *key; /* client: session cache key */
	char *peer_id;
	bool (*expect)(void *arg, const char *id); /* extra identity check */
	void *expect_arg;
	char alpn[256];
	char err[SL_TLS_ERR_MAX];
};

static pthread_once_t idx_once = PTHREAD_ONCE_INIT;
static int conn_idx = -1; /* SSL ex_data slot holding the sl_tls_conn */

static void idx_init(void)
{
	conn_idx = SSL_get_ex_new_index(0, "sl_tls_conn", NULL, NULL, NULL);
}

#define STAT_ADD(ctx, field, v)                                                \
	__atomic_fetch_add(&(ctx)->st.field, (v), __ATOMIC_RELAXED)

/* ---- errors ---- */

static void __attribute__((format(printf, 3, 4)))
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
static enum sl_tls_fail drain_errors(char *buf, size_t len)
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
static enum sl_tls_fail cert_identity(X509 *x, const char *want_td, char **id,
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

/* ---- material ---- */

static void stamp_of(const struct stat *s, struct stamp *st)
{
	st->dev = s->st_dev;
	st->ino = s->st_ino;
	st->size = s->st_size;
	st->mtim = s->st_mtim;
	st->ctim = s->st_ctim;
	st->valid = true;
}

static bool stamp_eq(const struct stamp *a, const struct stamp *b)
{
	return a->valid && b->valid && a->dev == b->dev && a->ino == b->ino &&
	       a->size == b->size && a->mtim.tv_sec == b->mtim.tv_sec &&
	       a->mtim.tv_nsec == b->mtim.tv_nsec &&
	       a->ctim.tv_sec == b->ctim.tv_sec &&
	       a->ctim.tv_nsec == b->ctim.tv_nsec;
}

/* Read a whole file and the stamp of the file read. 0 or -errno. */
static int read_file(const char *path, char **buf, size_t *len,
		     struct stamp *st)
{
	struct stat s;
	int err = sl_read_file(path, FILE_MAX, buf, len, &s);

	if (!err)
		stamp_of(&s, st);
	return err;
}

/* Never prompt for a pass phrase: an encrypted key is an error. */
static int no_pass(char *buf, int size, int rw, void *u)
{
	(void)buf, (void)size, (void)rw, (void)u;
	return 0;
}

/* Read further certificates from bio until its end; only "no more PEM
 * blocks" counts as the end. 0 or -EINVAL (error queue left set).
 */
static int pem_certs(BIO *bio, STACK_OF(X509) *sk, X509_STORE *store, int *n)
{
	unsigned long e;
	X509 *x;

	*n = 0;
	while ((x = PEM_read_bio_X509(bio, NULL, no_pass, NULL))) {
		int ok = sk ? sk_X509_push(sk, x) > 0 :
			      X509_STORE_add_cert(store, x) == 1;

		if (!ok || !sk)
			X509_free(x);
		if (!ok)
			return -EINVAL;
		(*n)++;
	}
	e = ERR_peek_last_error();
	if (ERR_GET_LIB(e) == ERR_LIB_PEM &&
	    ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
		ERR_clear_error();
		return 0;
	}
	return -EINVAL;
}

static void material_free(struct material *m)
{
	if (!m)
		return;
	SSL_CTX_free(m->client); /* connections still using them hold a ref */
	SSL_CTX_free(m->server);
	free(m);
}

static int verify_cb(int ok, X509_STORE_CTX *xs);
static int new_session_cb(SSL *ssl, SSL_SESSION *sess);
static int alpn_select_cb(SSL *ssl, const unsigned char **out,
			  unsigned char *outlen, const unsigned char *in,
			  unsigned int inlen, void *arg);

/* One SSL_CTX with the policy of tls.h and the parsed material. */
static SSL_CTX *ssl_ctx_new(struct sl_tls_ctx *ctx, enum sl_tls_role role,
			    X509 *leaf, STACK_OF(X509) *chain, EVP_PKEY *pkey,
			    X509_STORE *store)
{
	bool client = role == SL_TLS_CLIENT;
	uint64_t opts = SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
			SSL_OP_CIPHER_SERVER_PREFERENCE;
	SSL_CTX *s;

	s = SSL_CTX_new(client ? TLS_client_method() : TLS_server_method());
	if (!s)
		return NULL;
	if (ctx->ktls && sl_tls_ktls_available())
		opts |= SSL_OP_ENABLE_KTLS;
	SSL_CTX_set_options(s, opts);
	/* partial writes and a moving buffer: the proxy's ring buffers;
	 * buffers freed while idle (a sidecar holds many quiet connections)
	 */
	SSL_CTX_set_mode(s, SSL_MODE_ENABLE_PARTIAL_WRITE |
				    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
				    SSL_MODE_RELEASE_BUFFERS);
	/* Read what the socket has, not a record header then its body: two
	 * read() per 16 KiB record cost the stream about a tenth of its
	 * throughput (bench --suite tls). sl_tls_pending() covers what is
	 * read ahead; kTLS, where present, ignores it.
	 */
	SSL_CTX_set_read_ahead(s, 1);
	SSL_CTX_set_default_read_buffer_len(s, SL_TLS_READ_BUF);
	SSL_CTX_set_verify(s,
			   SSL_VERIFY_PEER |
				   (client ? 0 : SSL_VERIFY_FAIL_IF_NO_PEER_CERT),
			   verify_cb);
	SSL_CTX_set_verify_depth(s, VERIFY_DEPTH);
	if (!SSL_CTX_set_min_proto_version(
		    s, ctx->allow_tls12 ? TLS1_2_VERSION : TLS1_3_VERSION) ||
	    !SSL_CTX_set_max_proto_version(s, TLS1_3_VERSION) ||
	    !SSL_CTX_set_cipher_list(s, TLS12_CIPHERS) ||
	    !SSL_CTX_set_ciphersuites(s, TLS13_SUITES) ||
	    SSL_CTX_use_certificate(s, leaf) != 1 ||
	    !SSL_CTX_set1_chain(s, chain) ||
	    SSL_CTX_use_PrivateKey(s, pkey) != 1)
		goto fail;
	SSL_CTX_set1_cert_store(s, store);
	if (client) {
		/* sessions live in our per-destination cache, not OpenSSL's */
		SSL_CTX_set_session_cache_mode(
			s, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
		SSL_CTX_sess_set_new_cb(s, new_session_cb);
		/* SSL_CTX_set_alpn_protos returns 0 on success */
		if (ctx->alpn && SSL_CTX_set_alpn_protos(s, ctx->alpn,
							 ctx->alpn_len))
			goto fail;
	} else {
		/* Resumption is by TLS 1.3 tickets, which carry the session:
		 * no internal cache to insert every session into and sweep
		 * every 255 handshakes (OPENSSL_LH_doall in the conn profile),
		 * nor the memory it holds.
		 */
		SSL_CTX_set_session_cache_mode(
			s, SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL_STORE);
		/* resuming a session with a verified client cert needs it */
		if (!SSL_CTX_set_session_id_context(
			    s, (const unsigned char *)SID_CTX,
			    sizeof(SID_CTX) - 1) ||
		    !SSL_CTX_set_num_tickets(s, 1))
			goto fail;
		SSL_CTX_set_alpn_select_cb(s, alpn_select_cb, ctx);
	}
	return s;
fail:
	SSL_CTX_free(s);
	return NULL;
}

static void asn1_time_str(const ASN1_TIME *t, char *buf, size_t len)
{
	BIO *b = BIO_new(BIO_s_mem());
	int n = 0;

	if (b && ASN1_TIME_print(b, t))
		n = BIO_read(b, buf, (int)len - 1);
	buf[n > 0 ? n : 0] = '\0';
	BIO_free(b);
}

/* Load and check the three files into a new material. On failure err names
 * the file and the reason. td: the trust domain it must be in ("" = take the
 * one of the cert, written back). 0 or -errno.
 */
/* The parsed PEM files of one material. */
struct pems {
	X509 *leaf;
	STACK_OF(X509) *chain; /* intermediates */
	EVP_PKEY *pkey;
	X509_STORE *store; /* the CA bundle */
};

static void pems_free(struct pems *p)
{
	X509_STORE_free(p->store);
	EVP_PKEY_free(p->pkey);
	sk_X509_pop_free(p->chain, X509_free);
	X509_free(p->leaf);
}

/* Parse the three files' bytes; the key must match the certificate. 0 or
 * -errno, *bad the file at fault and why what is wrong with it.
 */
static int pems_parse(char *const files[F_NR], char *const buf[F_NR],
		      const size_t len[F_NR], struct pems *p, int *bad,
		      char *why, size_t wl)
{
	char ossl[SL_TLS_ERR_MAX - 32]; /* room for the words around it */
	BIO *bio;
	int n, err = 0;

	/* cert: leaf, then intermediates */
	*bad = F_CERT;
	bio = BIO_new_mem_buf(buf[F_CERT], (int)len[F_CERT]);
	p->chain = sk_X509_new_null();
	if (!bio || !p->chain) {
		err = -ENOMEM;
		goto out;
	}
	p->leaf = PEM_read_bio_X509(bio, NULL, no_pass, NULL);
	if (!p->leaf || pem_certs(bio, p->chain, NULL, &n))
		goto unparseable;
	BIO_free(bio);
	*bad = F_KEY;
	bio = BIO_new_mem_buf(buf[F_KEY], (int)len[F_KEY]);
	if (!bio) {
		err = -ENOMEM;
		goto out;
	}
	p->pkey = PEM_read_bio_PrivateKey(bio, NULL, no_pass, NULL);
	if (!p->pkey)
		goto unparseable;
	BIO_free(bio);
	*bad = F_CA;
	bio = BIO_new_mem_buf(buf[F_CA], (int)len[F_CA]);
	p->store = X509_STORE_new();
	if (!bio || !p->store) {
		err = -ENOMEM;
		goto out;
	}
	if (pem_certs(bio, NULL, p->store, &n))
		goto unparseable;
	if (!n) {
		snprintf(why, wl, "no certificate in it");
		err = -EINVAL;
		goto out;
	}
	if (X509_check_private_key(p->leaf, p->pkey) != 1) {
		ERR_clear_error();
		*bad = F_KEY;
		snprintf(why, wl, "does not match the certificate in %s",
			 files[F_CERT]);
		err = -EKEYREJECTED;
	}
	goto out;
unparseable:
	drain_errors(ossl, sizeof(ossl));
	snprintf(why, wl, "unparseable: %s", ossl);
	err = -EINVAL;
out:
	if (err == -ENOMEM)
		snprintf(why, wl, "out of memory");
	BIO_free(bio);
	return err;
}

/* Our own chain must verify against the bundle, now: an expired or
 * foreign certificate is refused at load, not at the first handshake.
 */
static int chain_verify(const struct pems *p, char *const files[F_NR],
			char *why, size_t wl)
{
	X509_STORE_CTX *xs = X509_STORE_CTX_new();
	int e, depth, err = 0;
	char when[64];
	X509 *cur;

	if (!xs || !X509_STORE_CTX_init(xs, p->store, p->leaf, p->chain)) {
		snprintf(why, wl, "out of memory");
		err = -ENOMEM;
		goto out;
	}
	if (X509_verify_cert(xs) == 1)
		goto out;
	e = X509_STORE_CTX_get_error(xs);
	depth = X509_STORE_CTX_get_error_depth(xs);
	cur = X509_STORE_CTX_get_current_cert(xs);
	if (!cur)
		cur = p->leaf;
	ERR_clear_error();
	err = -EKEYREJECTED;
	if (e == X509_V_ERR_CERT_HAS_EXPIRED ||
	    e == X509_V_ERR_CERT_NOT_YET_VALID) {
		bool exp = e == X509_V_ERR_CERT_HAS_EXPIRED;

		asn1_time_str(exp ? X509_get0_notAfter(cur) :
				    X509_get0_notBefore(cur),
			      when, sizeof(when));
		snprintf(why, wl, "%s%s (%s %s)",
			 depth ? "a certificate of the chain " : "",
			 exp ? "expired" : "not yet valid",
			 exp ? "notAfter" : "notBefore", when);
		err = -EKEYEXPIRED;
	} else if (e == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY ||
		   e == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT ||
		   e == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT ||
		   e == X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN ||
		   e == X509_V_ERR_CERT_SIGNATURE_FAILURE) {
		snprintf(why, wl, "not signed by a CA in %s (%s)", files[F_CA],
			 X509_verify_cert_error_string(e));
	} else {
		snprintf(why, wl, "does not verify against %s: %s (depth %d)",
			 files[F_CA], X509_verify_cert_error_string(e), depth);
	}
out:
	X509_STORE_CTX_free(xs);
	return err;
}

static int material_load(char *const files[F_NR], struct sl_tls_ctx *ctx,
			 char *td, size_t tdlen, struct material **out,
			 char *err, size_t errlen)
{
	char *buf[F_NR] = {}, why[SL_TLS_ERR_MAX] = "";
	char ossl[SL_TLS_ERR_MAX] = ""; /* OpenSSL's errors, or the identity's */
	char own_td[SL_SPIFFE_TD_MAX + 1], *id = NULL;
	size_t len[F_NR] = {};
	struct material *m = NULL;
	struct pems p = {};
	int err_code = 0, bad = F_CERT, i;

	ERR_clear_error();
	m = calloc(1, sizeof(*m));
	if (!m) {
		err_code = -ENOMEM;
		snprintf(why, sizeof(why), "out of memory");
		goto out;
	}
	for (i = 0; i < F_NR && !err_code; i++) {
		err_code = read_file(files[i], &buf[i], &len[i], &m->st[i]);
		if (err_code) {
			bad = i;
			snprintf(why, sizeof(why), "%s", strerror(-err_code));
		}
	}
	if (!err_code)
		err_code = pems_parse(files, buf, len, &p, &bad, why, sizeof(why));
	if (!err_code) {
		bad = F_CERT;
		err_code = chain_verify(&p, files, why, sizeof(why));
	}
	if (err_code)
		goto out;
	switch (cert_identity(p.leaf, *td ? td : NULL, &id, ossl, sizeof(ossl))) {
	case SL_TLS_FAIL_NONE:
		break;
	case SL_TLS_FAIL_TRUST_DOMAIN:
		err_code = -EINVAL;
		snprintf(why, sizeof(why), "wrong trust domain: %s", ossl);
		goto out;
	default:
		err_code = -EINVAL;
		snprintf(why, sizeof(why), "no SPIFFE ID: %s", ossl);
		goto out;
	}
	snprintf(m->id, sizeof(m->id), "%s", id);
	if (!*td) {
		sl_spiffe_parse(id, own_td, sizeof(own_td));
		snprintf(td, tdlen, "%s", own_td);
	}
	m->client = ssl_ctx_new(ctx, SL_TLS_CLIENT, p.leaf, p.chain, p.pkey,
				p.store);
	m->server = m->client ? ssl_ctx_new(ctx, SL_TLS_SERVER, p.leaf, p.chain,
					    p.pkey, p.store) :
				NULL;
	if (!m->server) {
		drain_errors(ossl, sizeof(ossl));
		err_code = -EINVAL;
		snprintf(why, sizeof(why), "OpenSSL refused it: %s", ossl);
		goto out;
	}
	*out = m;
	m = NULL;
out:
	if (err_code)
		snprintf(err, errlen, "%s %s: %s", file_kind[bad], files[bad],
			 why);
	free(id);
	pems_free(&p);
	material_free(m);
	for (i = 0; i < F_NR; i++)
		free(buf[i]);
	return err_code;
}

/* "h2,http/1.1" to ALPN wire format. 0 or -EINVAL/-ENOMEM. */
static int alpn_wire(const char *csv, unsigned char **out, size_t *outlen)
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

static void cache_flush(struct sl_tls_ctx *ctx)
{
	int i;

	for (i = 0; i < SL_TLS_SESS_CACHE; i++) {
		SSL_SESSION_free(ctx->cache[i].s);
		free(ctx->cache[i].key);
		memset(&ctx->cache[i], 0, sizeof(ctx->cache[i]));
	}
}

int sl_tls_ctx_new(const struct sl_tls_opts *opts, struct sl_tls_ctx **out,
		   char *err, size_t errlen)
{
	struct sl_tls_ctx *ctx;
	char why[SL_TLS_ERR_MAX] = "";
	int r = -ENOMEM, i;

	pthread_once(&idx_once, idx_init);
	if (conn_idx < 0)
		return -ENOMEM;
	if (!opts->cert_file || !opts->key_file || !opts->ca_file)
		return -EINVAL;
	ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return -ENOMEM;
	pthread_mutex_init(&ctx->lock, NULL);
	pthread_mutex_init(&ctx->reload_lock, NULL);
	ctx->files[F_CERT] = strdup(opts->cert_file);
	ctx->files[F_KEY] = strdup(opts->key_file);
	ctx->files[F_CA] = strdup(opts->ca_file);
	if (!ctx->files[F_CERT] || !ctx->files[F_KEY] || !ctx->files[F_CA]) {
		snprintf(why, sizeof(why), "out of memory");
		goto fail;
	}
	ctx->allow_tls12 = opts->allow_tls12;
	ctx->ktls = opts->ktls;
	if (opts->trust_domain) {
		char id[SL_SPIFFE_TD_MAX + 16];

		/* a trust domain is valid when td/x is a valid ID */
		snprintf(id, sizeof(id), "spiffe://%.*s/x", SL_SPIFFE_TD_MAX,
			 opts->trust_domain);
		r = sl_spiffe_parse(id, ctx->td, sizeof(ctx->td));
		if (r || strcmp(ctx->td, opts->trust_domain)) {
			r = -EINVAL;
			snprintf(why, sizeof(why), "invalid trust domain %.300s",
				 opts->trust_domain);
			goto fail;
		}
	}
	r = alpn_wire(opts->alpn, &ctx->alpn, &ctx->alpn_len);
	if (r) {
		snprintf(why, sizeof(why), "invalid ALPN list %.300s",
			 opts->alpn);
		goto fail;
	}
	r = material_load(ctx->files, ctx, ctx->td, sizeof(ctx->td),
			  &ctx->mat, why, sizeof(why));
	if (r)
		goto fail;
	pr_debug("tls: loaded %s (identity %s, trust domain %s)\n",
		 ctx->files[F_CERT], ctx->mat->id, ctx->td);
	*out = ctx;
	return 0;
fail:
	pr_warn("tls: %s\n", why);
	if (err)
		snprintf(err, errlen, "%s", why);
	for (i = 0; i < F_NR; i++)
		free(ctx->files[i]);
	free(ctx->alpn);
	pthread_mutex_destroy(&ctx->reload_lock);
	pthread_mutex_destroy(&ctx->lock);
	free(ctx);
	return r;
}

void sl_tls_ctx_free(struct sl_tls_ctx *ctx)
{
	int i;

	if (!ctx)
		return;
	cache_flush(ctx);
	material_free(ctx->mat);
	for (i = 0; i < F_NR; i++)
		free(ctx->files[i]);
	free(ctx->alpn);
	pthread_mutex_destroy(&ctx->reload_lock);
	pthread_mutex_destroy(&ctx->lock);
	free(ctx);
}

static bool recently_changed(char *const files[F_NR])
{
	struct timespec now;
	int i;

	clock_gettime(CLOCK_REALTIME, &now);
	for (i = 0; i < F_NR; i++) {
		struct stat s;
		long long ms;

		if (stat(files[i], &s))
			continue;
		ms = (long long)(now.tv_sec - s.st_mtim.tv_sec) * 1000 +
		     (now.tv_nsec - s.st_mtim.tv_nsec) / 1000000;
		if (ms >= 0 && ms < SL_TLS_SETTLE_MS)
			return true;
	}
	return false;
}

int sl_tls_reload(struct sl_tls_ctx *ctx)
{
	struct stamp now[F_NR] = {};
	struct material *m = NULL, *old;
	char why[SL_TLS_ERR_MAX] = "";
	bool same = true, same_bad;
	int r, i;

	pthread_mutex_lock(&ctx->reload_lock);
	same_bad = ctx->rejected_err != 0;
	for (i = 0; i < F_NR; i++) {
		struct stat s;

		if (!stat(ctx->files[i], &s))
			stamp_of(&s, &now[i]);
		same = same && stamp_eq(&now[i], &ctx->mat->st[i]);
		same_bad = same_bad && stamp_eq(&now[i], &ctx->rejected[i]);
	}
	if (same || same_bad) {
		r = same ? 0 : ctx->rejected_err;
		goto out;
	}
	/* A rotation that writes the cert and then the key (or renames them
	 * one by one) is briefly half done; files that changed within the
	 * last SL_TLS_SETTLE_MS are read at a later check, whole, instead of
	 * being refused and counted as a bad rotation.
	 */
	if (recently_changed(ctx->files)) {
		r = 0;
		goto out;
	}
	r = material_load(ctx->files, ctx, ctx->td, sizeof(ctx->td), &m, why,
			  sizeof(why));
	if (r) {
		memcpy(ctx->rejected, now, sizeof(now));
		ctx->rejected_err = r;
		pthread_mutex_lock(&ctx->lock);
		snprintf(ctx->err, sizeof(ctx->err), "%s", why);
		pthread_mutex_unlock(&ctx->lock);
		STAT_ADD(ctx, reloads_rejected, 1);
		pr_warn("tls: reload rejected, the current material stays: %s\n",
			why);
		goto out;
	}
	pthread_mutex_lock(&ctx->lock);
	old = ctx->mat;
	ctx->mat = m;
	/* sessions were made under the old trust: new material, full handshakes */
	cache_flush(ctx);
	ctx->err[0] = '\0';
	pthread_mutex_unlock(&ctx->lock);
	ctx->rejected_err = 0;
	material_free(old);
	STAT_ADD(ctx, reloads, 1);
	pr_info("tls: reloaded %s (identity %s)\n", ctx->files[F_CERT], m->id);
	r = 1;
out:
	pthread_mutex_unlock(&ctx->reload_lock);
	return r;
}

const char *sl_tls_ctx_error(const struct sl_tls_ctx *ctx)
{
	return ctx->err;
}

void sl_tls_ctx_identity(struct sl_tls_ctx *ctx, char *buf, size_t len)
{
	pthread_mutex_lock(&ctx->lock);
	snprintf(buf, len, "%s", ctx->mat->id);
	pthread_mutex_unlock(&ctx->lock);
}

const char *sl_tls_trust_domain(const struct sl_tls_ctx *ctx)
{
	return ctx->td;
}

void sl_tls_stats(const struct sl_tls_ctx *ctx, struct sl_tls_stats *out)
{
	const uint64_t *src = (const uint64_t *)&ctx->st;
	uint64_t *dst = (uint64_t *)out;
	size_t i;

	_Static_assert(sizeof(struct sl_tls_stats) % sizeof(uint64_t) == 0,
		       "sl_tls_stats is all uint64_t");
	for (i = 0; i < sizeof(*out) / sizeof(uint64_t); i++)
		dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}

/* ---- callbacks ---- */

static struct sl_tls_conn *conn_of(SSL *ssl)
{
	return ssl ? SSL_get_ex_data(ssl, conn_idx) : NULL;
}

static enum sl_tls_fail verify_fail(int e)
{
	switch (e) {
	case X509_V_ERR_CERT_HAS_EXPIRED:
	case X509_V_ERR_CERT_NOT_YET_VALID:
		return SL_TLS_FAIL_EXPIRED;
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
		return SL_TLS_FAIL_UNKNOWN_CA;
	default:
		return SL_TLS_FAIL_BAD_CERT;
	}
}

/* OpenSSL's chain verification, then our identity check on the leaf, so a
 * bad identity fails the handshake with an alert like a bad chain does.
 */
static int verify_cb(int ok, X509_STORE_CTX *xs)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(
		xs, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct sl_tls_conn *c = conn_of(ssl);
	int depth = X509_STORE_CTX_get_error_depth(xs);
	char why[SL_TLS_ERR_MAX];
	enum sl_tls_fail f;
	char *id;

	if (!c)
		return ok;
	if (!ok) {
		int e = X509_STORE_CTX_get_error(xs);

		if (!c->fail) {
			c->fail = verify_fail(e);
			snprintf(c->err, sizeof(c->err),
				 "peer certificate (depth %d): %s", depth,
				 X509_verify_cert_error_string(e));
		}
		return 0;
	}
	if (depth > 0)
		return 1;
	f = cert_identity(X509_STORE_CTX_get_current_cert(xs), c->ctx->td, &id,
			  why, sizeof(why));
	if (f) {
		if (!c->fail) {
			c->fail = f;
			snprintf(c->err, sizeof(c->err), "peer certificate: %.400s",
				 why);
		}
		/* the error whose alert is bad_certificate: the peer then
		 * knows its certificate, not the handshake, was refused
		 */
		X509_STORE_CTX_set_error(xs, X509_V_ERR_HOSTNAME_MISMATCH);
		return 0;
	}
	if (c->expect && !c->expect(c->expect_arg, id)) {
		if (!c->fail) {
			c->fail = SL_TLS_FAIL_IDENTITY;
			snprintf(c->err, sizeof(c->err),
				 "peer identity %.400s is not one this "
				 "connection accepts", id);
		}
		/* kept: the caller names the refused peer */
		free(c->peer_id);
		c->peer_id = id;
		X509_STORE_CTX_set_error(xs, X509_V_ERR_APPLICATION_VERIFICATION);
		return 0;
	}
	free(c->peer_id);
	c->peer_id = id;
	return 1;
}

void sl_tls_conn_expect_peer(struct sl_tls_conn *c,
			     bool (*match)(void *arg, const char *id),
			     void *arg)
{
	c->expect = match;
	c->expect_arg = arg;
}

static struct sess *cache_find(struct sl_tls_ctx *ctx, const char *key)
{
	int i;

	for (i = 0; i < SL_TLS_SESS_CACHE; i++)
		if (ctx->cache[i].key && !strcmp(ctx->cache[i].key, key))
			return &ctx->cache[i];
	return NULL;
}

/* A client got a session (a TLS 1.3 ticket): keep a copy under the
 * connection's destination, replacing the older one or the least recently
 * used entry. A copy, because OpenSSL marks the connection's own session not
 * resumable when it is freed without close_notify (a reset, a timeout),
 * which says nothing about the ticket. Returns 0: OpenSSL keeps its ref.
 */
static int new_session_cb(SSL *ssl, SSL_SESSION *orig)
{
	struct sl_tls_conn *c = conn_of(ssl);
	struct sl_tls_ctx *ctx;
	SSL_SESSION *sess;
	struct sess *e;
	int i;

	if (!c || !c->key || !SSL_SESSION_is_resumable(orig))
		return 0;
	sess = SSL_SESSION_dup(orig);
	if (!sess)
		return 0;
	ctx = c->ctx;
	pthread_mutex_lock(&ctx->lock);
	e = cache_find(ctx, c->key);
	if (!e) {
		e = &ctx->cache[0];
		for (i = 1; i < SL_TLS_SESS_CACHE && e->key; i++)
			if (!ctx->cache[i].key || ctx->cache[i].used < e->used)
				e = &ctx->cache[i];
		SSL_SESSION_free(e->s);
		free(e->key);
		e->s = NULL;
		e->key = strdup(c->key);
		if (!e->key) {
			pthread_mutex_unlock(&ctx->lock);
			SSL_SESSION_free(sess);
			return 0;
		}
	}
	SSL_SESSION_free(e->s);
	e->s = sess;
	e->used = ++ctx->tick;
	pthread_mutex_unlock(&ctx->lock);
	return 0;
}

/* Server: the first of our protocols the client offers; with none
 * configured, the client's first offer. No match: no ALPN (not fatal).
 */
static int alpn_select_cb(SSL *ssl, const unsigned char **out,
			  unsigned char *outlen, const unsigned char *in,
			  unsigned int inlen, void *arg)
{
	struct sl_tls_ctx *ctx = arg;

	(void)ssl;
	if (!ctx->alpn) {
		if (inlen < 2 || !in[0] || in[0] + 1u > inlen)
			return SSL_TLSEXT_ERR_NOACK;
		*out = in + 1;
		*outlen = in[0];
		return SSL_TLSEXT_ERR_OK;
	}
	if (SSL_select_next_proto((unsigned char **)out, outlen, ctx->alpn,
				  ctx->alpn_len, in,
				  inlen) != OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_NOACK;
	return SSL_TLSEXT_ERR_OK;
}

/* ---- connections ---- */

int sl_tls_conn_new(struct sl_tls_ctx *ctx, int fd, enum sl_tls_role role,
		    const char *peer_key, struct sl_tls_conn **out)
{
	struct sl_tls_conn *c;
	SSL *ssl;
	int err = -ENOMEM;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->ctx = ctx;
	c->fd = fd;
	c->role = role;
	if (role == SL_TLS_CLIENT && peer_key) {
		c->key = strdup(peer_key);
		if (!c->key)
			goto fail;
	}
	ERR_clear_error();
	pthread_mutex_lock(&ctx->lock);
	/* SSL_new takes a reference on the SSL_CTX current right now */
	ssl = SSL_new(role == SL_TLS_CLIENT ? ctx->mat->client :
					      ctx->mat->server);
	if (ssl && c->key) {
		struct sess *e = cache_find(ctx, c->key);

		if (e && (!SSL_SESSION_is_resumable(e->s) ||
			  SSL_SESSION_get_time(e->s) +
					  SSL_SESSION_get_timeout(e->s) <
				  time(NULL))) {
			SSL_SESSION_free(e->s);
			free(e->key);
			memset(e, 0, sizeof(*e));
		} else if (e) {
			SSL_set_session(ssl, e->s);
			e->used = ++ctx->tick;
		}
	}
	pthread_mutex_unlock(&ctx->lock);
	if (!ssl)
		goto fail;
	c->ssl = ssl;
	if (!SSL_set_ex_data(ssl, conn_idx, c) || !SSL_set_fd(ssl, fd)) {
		err = -EINVAL;
		goto fail;
	}
	if (role == SL_TLS_CLIENT)
		SSL_set_connect_state(ssl);
	else
		SSL_set_accept_state(ssl);
	STAT_ADD(ctx, active, 1);
	*out = c;
	return 0;
fail:
	drain_errors(c->err, sizeof(c->err));
	pr_warn("tls: new connection: %s%s\n", strerror(-err), c->err);
	SSL_free(c->ssl);
	free(c->key);
	free(c);
	return err;
}

void sl_tls_conn_free(struct sl_tls_conn *c)
{
	if (!c)
		return;
	SSL_free(c->ssl); /* drops its reference on the SSL_CTX */
	__atomic_fetch_sub(&c->ctx->st.active, 1, __ATOMIC_RELAXED);
	free(c->key);
	free(c->peer_id);
	free(c);
}

int sl_tls_conn_set_alpn(struct sl_tls_conn *c, const char *alpn)
{
	unsigned char *w;
	size_t len;
	int err;

	if (c->role != SL_TLS_CLIENT || c->established)
		return -EINVAL;
	err = alpn_wire(alpn, &w, &len);
	if (err)
		return err;
	/* 0 on success; an empty list offers nothing */
	err = SSL_set_alpn_protos(c->ssl, w, (unsigned int)len) ? -EINVAL : 0;
	free(w);
	return err;
}

static const char *role_name(const struct sl_tls_conn *c)
{
	return c->role == SL_TLS_CLIENT ? "client" : "server";
}

static void handshake_failed(struct sl_tls_conn *c, enum sl_tls_fail f)
{
	c->fatal = true;
	if (!c->fail)
		c->fail = f ? f : SL_TLS_FAIL_PROTOCOL;
	STAT_ADD(c->ctx, handshakes_failed[c->fail], 1);
	pr_info("tls: %s handshake%s%s failed (%s): %s\n", role_name(c),
		c->key ? " with " : "", c->key ? c->key : "",
		sl_tls_fail_name[c->fail], c->err);
}

/* Handshake finished at the TLS level: identity (a resumed session skipped
 * the verify callback; its peer certificate came with the session), ALPN,
 * kTLS, counters.
 */
static enum sl_tls_io handshake_done(struct sl_tls_conn *c)
{
	const unsigned char *proto;
	unsigned int plen;
	X509 *peer;

	c->resumed = SSL_session_reused(c->ssl);
	if (!c->peer_id) {
		char why[SL_TLS_ERR_MAX];
		enum sl_tls_fail f;

		peer = SSL_get0_peer_certificate(c->ssl);
		if (!peer) {
			snprintf(c->err, sizeof(c->err), "no peer certificate");
			handshake_failed(c, SL_TLS_FAIL_NO_CERT);
			return SL_TLS_ERROR;
		}
		f = cert_identity(peer, c->ctx->td, &c->peer_id, why,
				  sizeof(why));
		if (f) {
			snprintf(c->err, sizeof(c->err), "peer certificate: %.400s",
				 why);
			handshake_failed(c, f);
			return SL_TLS_ERROR;
		}
	}
	SSL_get0_alpn_selected(c->ssl, &proto, &plen);
	snprintf(c->alpn, sizeof(c->alpn), "%.*s", (int)plen,
		 proto ? (const char *)proto : "");
	c->ktls_tx = BIO_get_ktls_send(SSL_get_wbio(c->ssl));
	c->ktls_rx = BIO_get_ktls_recv(SSL_get_rbio(c->ssl));
	c->established = true;
	STAT_ADD(c->ctx, handshakes_ok, 1);
	STAT_ADD(c->ctx, resumed, c->resumed);
	STAT_ADD(c->ctx, ktls_tx, c->ktls_tx);
	STAT_ADD(c->ctx, ktls_rx, c->ktls_rx);
	pr_debug("tls: %s handshake done: peer %s, %s, %s%s\n", role_name(c),
		 c->peer_id, SSL_get_version(c->ssl),
		 SSL_get_cipher_name(c->ssl), c->resumed ? ", resumed" : "");
	return SL_TLS_OK;
}

/* SSL_get_error of a failed call; fatal ones drain the error queue into
 * c->err. sys_errno: errno right after the call.
 */
static enum sl_tls_io io_error(struct sl_tls_conn *c, int ret, int sys_errno,
			       const char *op)
{
	enum sl_tls_fail f = SL_TLS_FAIL_NONE;
	int e = SSL_get_error(c->ssl, ret);
	char ossl[SL_TLS_ERR_MAX] = "";

	switch (e) {
	case SSL_ERROR_WANT_READ:
		return SL_TLS_WANT_READ;
	case SSL_ERROR_WANT_WRITE:
		return SL_TLS_WANT_WRITE;
	case SSL_ERROR_ZERO_RETURN:
		return SL_TLS_EOF;
	case SSL_ERROR_SYSCALL:
		f = drain_errors(ossl, sizeof(ossl));
		append(c->err, sizeof(c->err), "%s%s: %s%s%s",
		       *c->err ? "; " : "", op,
		       sys_errno ? strerror(sys_errno) :
				   "connection closed without close_notify",
		       *ossl ? "; " : "", ossl);
		if (!f)
			f = SL_TLS_FAIL_IO;
		break;
	default:
		f = drain_errors(ossl, sizeof(ossl));
		append(c->err, sizeof(c->err), "%s%s: %s", *c->err ? "; " : "",
		       op, *ossl ? ossl : "failed");
		break;
	}
	if (!c->established) {
		handshake_failed(c, f);
	} else {
		c->fatal = true;
		pr_debug("tls: %s connection error: %s\n", role_name(c),
			 c->err);
	}
	return SL_TLS_ERROR;
}

enum sl_tls_io sl_tls_handshake(struct sl_tls_conn *c)
{
	int r, saved;

	if (c->fatal)
		return SL_TLS_ERROR;
	if (c->established)
		return SL_TLS_OK;
	ERR_clear_error();
	errno = 0;
	r = SSL_do_handshake(c->ssl);
	saved = errno;
	if (r == 1)
		return handshake_done(c);
	return io_error(c, r, saved, "handshake");
}

void sl_tls_handshake_timeout(struct sl_tls_conn *c)
{
	if (c->fatal || c->established)
		return;
	c->fail = SL_TLS_FAIL_TIMEOUT;
	snprintf(c->err, sizeof(c->err), "handshake timed out");
	handshake_failed(c, SL_TLS_FAIL_TIMEOUT);
}

enum sl_tls_io sl_tls_read(struct sl_tls_conn *c, void *buf, size_t len,
			   size_t *n)
{
	size_t got = 0;
	int r, saved;

	*n = 0;
	if (!c->established || c->fatal) {
		enum sl_tls_io io = sl_tls_handshake(c);

		if (io != SL_TLS_OK)
			return io;
	}
	if (!len)
		return SL_TLS_OK;
	ERR_clear_error();
	errno = 0;
	r = SSL_read_ex(c->ssl, buf, len, &got);
	saved = errno;
	if (r == 1) {
		*n = got;
		STAT_ADD(c->ctx, bytes_in, got);
		return SL_TLS_OK;
	}
	return io_error(c, r, saved, "read");
}

enum sl_tls_io sl_tls_write(struct sl_tls_conn *c, const void *buf, size_t len,
			    size_t *n)
{
	size_t put = 0;
	int r, saved;

	*n = 0;
	if (!c->established || c->fatal) {
		enum sl_tls_io io = sl_tls_handshake(c);

		if (io != SL_TLS_OK)
			return io;
	}
	if (!len)
		return SL_TLS_OK;
	ERR_clear_error();
	errno = 0;
	r = SSL_write_ex(c->ssl, buf, len, &put);
	saved = errno;
	if (r == 1) {
		*n = put;
		STAT_ADD(c->ctx, bytes_out, put);
		return SL_TLS_OK;
	}
	return io_error(c, r, saved, "write");
}

bool sl_tls_pending(const struct sl_tls_conn *c)
{
	return !c->fatal && SSL_has_pending(c->ssl);
}

enum sl_tls_io sl_tls_shutdown(struct sl_tls_conn *c)
{
	int r, saved;

	if (c->fatal) /* OpenSSL: no SSL_shutdown after a fatal error */
		return SL_TLS_ERROR;
	if (!c->established || c->shut_sent)
		return SL_TLS_OK;
	ERR_clear_error();
	errno = 0;
	r = SSL_shutdown(c->ssl);
	saved = errno;
	if (r >= 0) { /* 0: ours sent, the peer's not yet seen; 1: both */
		c->shut_sent = true;
		return SL_TLS_OK;
	}
	return io_error(c, r, saved, "shutdown");
}

const char *sl_tls_peer_id(const struct sl_tls_conn *c)
{
	/* before the handshake completes, only an identity it refused */
	return c->established || c->fail == SL_TLS_FAIL_IDENTITY ? c->peer_id :
								    NULL;
}

const char *sl_tls_alpn(const struct sl_tls_conn *c)
{
	return c->alpn;
}

bool sl_tls_resumed(const struct sl_tls_conn *c)
{
	return c->resumed;
}

bool sl_tls_ktls_tx(const struct sl_tls_conn *c)
{
	return c->ktls_tx;
}

bool sl_tls_ktls_rx(const struct sl_tls_conn *c)
{
	return c->ktls_rx;
}

void sl_tls_describe(const struct sl_tls_conn *c, char *buf, size_t len)
{
	snprintf(buf, len, "%s %s %s%s%s", SSL_get_version(c->ssl),
		 SSL_get_cipher_name(c->ssl),
		 c->ktls_tx || c->ktls_rx ? "ktls " : "user-space",
		 c->ktls_tx ? (c->ktls_rx ? "tx+rx" : "tx") : "",
		 !c->ktls_tx && c->ktls_rx ? "rx" : "");
}

enum sl_tls_fail sl_tls_fail_reason(const struct sl_tls_conn *c)
{
	return c->fail;
}

const char *sl_tls_conn_error(const struct sl_tls_conn *c)
{
	return c->err;
}

struct ssl_st *sl_tls_ssl(struct sl_tls_conn *c)
{
	return c->ssl;
}
