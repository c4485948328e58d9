// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* TLS material (certificate, key, CA bundle), the contexts made from it
 * and their rotation, the client session cache, OpenSSL's callbacks (see
 * tls.c).
 */
#define _GNU_SOURCE
#include "tls/internal.h"

static const char *const file_kind[F_NR] = { "cert", "key", "CA bundle" };

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
	int r = -ENOMEM;

	if (conn_idx_get() < 0)
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
	sl_tls_ctx_free(ctx); /* no material, an empty cache: the rest */
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

/* New material in for new connections (reload_lock held). */
static void material_swap(struct sl_tls_ctx *ctx, struct material *m)
{
	struct material *old;

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
}

int sl_tls_reload(struct sl_tls_ctx *ctx)
{
	struct stamp now[F_NR] = {};
	struct material *m = NULL;
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
	material_swap(ctx, m);
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

struct sess *cache_find(struct sl_tls_ctx *ctx, const char *key)
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

int sl_tls_ctx_set_files(struct sl_tls_ctx *ctx, const char *cert,
			 const char *key, const char *ca, char *err,
			 size_t errlen)
{
	char *files[F_NR] = { strdup(cert), strdup(key), strdup(ca) };
	struct material *m = NULL;
	int r = -ENOMEM, i;

	pthread_mutex_lock(&ctx->reload_lock);
	if (files[F_CERT] && files[F_KEY] && files[F_CA])
		r = material_load(files, ctx, ctx->td, sizeof(ctx->td), &m,
				  err, errlen);
	if (r == -ENOMEM && err && errlen)
		snprintf(err, errlen, "%s", strerror(ENOMEM));
	if (!r) {
		for (i = 0; i < F_NR; i++) {
			char *t = ctx->files[i];

			ctx->files[i] = files[i];
			files[i] = t; /* the old names go below */
		}
		memset(ctx->rejected, 0, sizeof(ctx->rejected));
		material_swap(ctx, m);
		pr_info("tls: now %s (identity %s)\n", ctx->files[F_CERT],
			m->id);
	}
	pthread_mutex_unlock(&ctx->reload_lock);
	for (i = 0; i < F_NR; i++)
		free(files[i]);
	return r;
}
