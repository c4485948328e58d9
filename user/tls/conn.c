// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* TLS connections: new, handshake, read, write, shutdown, what they
 * negotiated (see tls.c).
 */
#define _GNU_SOURCE
#include "tls/internal.h"

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

/* One record call either way; a handshake not yet done is stepped first
 * (and a failed connection answers SL_TLS_ERROR again).
 */
static enum sl_tls_io tls_io(struct sl_tls_conn *c, bool wr, void *buf,
			     size_t len, size_t *n)
{
	size_t done = 0;
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
	r = wr ? SSL_write_ex(c->ssl, buf, len, &done) :
		 SSL_read_ex(c->ssl, buf, len, &done);
	saved = errno;
	if (r == 1) {
		*n = done;
		if (wr)
			STAT_ADD(c->ctx, bytes_out, done);
		else
			STAT_ADD(c->ctx, bytes_in, done);
		return SL_TLS_OK;
	}
	return io_error(c, r, saved, wr ? "write" : "read");
}

enum sl_tls_io sl_tls_read(struct sl_tls_conn *c, void *buf, size_t len,
			   size_t *n)
{
	return tls_io(c, false, buf, len, n);
}

enum sl_tls_io sl_tls_write(struct sl_tls_conn *c, const void *buf, size_t len,
			    size_t *n)
{
	return tls_io(c, true, (void *)buf, len, n);
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
