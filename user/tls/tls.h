/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Mutual TLS between sidecars (user/tls/tls.c), for the epoll proxy: one
 * sl_tls_ctx per identity holds the current client + server SSL_CTX built from
 * cert/key/CA files (OpenSSL 3) and swaps them on sl_tls_reload(); one
 * sl_tls_conn per TLS connection wraps a connected non-blocking fd.
 *
 * Policy: TLS 1.3 only unless allow_tls12 (then TLS 1.2 with ECDHE + AEAD
 * suites only: no CBC, no RSA key exchange); no renegotiation, no compression;
 * both sides present and verify certificates against the CA bundle; a peer
 * must carry exactly one URI SAN, a valid SPIFFE ID (spiffe://td/path) in the
 * configured trust domain. TLS 1.3 tickets resume sessions; the client keeps
 * them per destination key, the cache is flushed when new material loads.
 *
 * kTLS: sl_tls_ktls_available() probes once, on a loopback TCP pair of its
 * own (never a real connection), whether the kernel takes TCP_ULP "tls". When
 * it does, SSL_OP_ENABLE_KTLS is set and each connection reports whether
 * OpenSSL moved TX/RX into the kernel; when not, TLS stays in user space.
 * Tested on the development machine (kernel 6.18 without CONFIG_TLS, OpenSSL
 * 3.0.19 built with kTLS): the probe answering ENOENT, the user-space
 * fallback and every other path in tests/integ/tls.c. Not exercised there:
 * the kTLS-present path (SSL_OP_ENABLE_KTLS taking effect, the per-connection
 * TX/RX flags reading 1); it is the same OpenSSL calls, but unverified.
 *
 * Threads: one thread drives a given connection. sl_tls_reload(), new
 * connections and sl_tls_stats() may run on different threads (a mutex
 * guards the current material and the session cache; counters are atomic).
 *
 * Driving it from an epoll loop (user/proxy/proxy.c does):
 *   accept/connect, O_NONBLOCK -> sl_tls_conn_new(ctx, fd, role, key) and a
 *   handshake deadline. Until sl_tls_handshake() returns OK, call it on each
 *   event; WANT_READ/WANT_WRITE arm EPOLLIN/EPOLLOUT; ERROR tears down
 *   (already logged and counted); past the deadline call
 *   sl_tls_handshake_timeout() and tear down; once OK, judge
 *   sl_tls_peer_id() (inbound.identities: sl_id_rules_decide(), config.h).
 *   Then the read and write
 *   directions each keep their own want, the epoll interest being both:
 *   read while the buffer has room (OK: append, loop; EOF: half-close the
 *   other side; WANT_x: stop, arm x), and when the buffer is full but
 *   sl_tls_pending() is true, read again as soon as room frees (no EPOLLIN
 *   will come for those bytes); write while data is buffered, retrying after
 *   a WANT_x with the same front bytes. The other side's FIN with our buffer
 *   drained: sl_tls_shutdown(). Teardown: sl_tls_conn_free(), then close the
 *   fd. Rotation: sl_tls_reload() on SIGHUP or a timer.
 * Note a TLS 1.3 client learns that the server refused its certificate only
 * at its first read (ERROR), after its handshake already returned OK.
 */
#ifndef TLS_H
#define TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "tls/spiffe.h"

#define SL_TLS_SESS_CACHE 256 /* client sessions kept, least recently used out */
#define SL_TLS_ERR_MAX 512 /* error strings kept per connection / context */
#define SL_TLS_READ_BUF (64 * 1024) /* OpenSSL's read-ahead buffer per connection */
#define SL_TLS_SETTLE_MS 500 /* rotated files younger than this: read later */

struct sl_tls_opts {
	const char *cert_file; /* PEM: leaf first, then intermediates */
	const char *key_file; /* PEM, unencrypted */
	const char *ca_file; /* PEM bundle of trusted roots */
	/* Peers must be in this trust domain; NULL: the one of our own cert. */
	const char *trust_domain;
	/* "h2,http/1.1": what a client offers; what a server accepts, in its
	 * order of preference (NULL/empty: the client's first offer).
	 */
	const char *alpn;
	bool allow_tls12; /* else TLS 1.3 only */
	bool ktls; /* use kTLS where the kernel has it */
};

enum sl_tls_role { SL_TLS_CLIENT, SL_TLS_SERVER };

/* What an I/O call asks of the caller. */
enum sl_tls_io {
	SL_TLS_OK = 0, /* done: handshake complete, bytes moved, close_notify sent */
	SL_TLS_WANT_READ, /* arm EPOLLIN, call the same function again */
	SL_TLS_WANT_WRITE, /* arm EPOLLOUT, call the same function again */
	SL_TLS_EOF, /* peer sent close_notify: no more data from it */
	SL_TLS_ERROR, /* fatal: free the connection; sl_tls_conn_error() says why */
};

/* Why a handshake failed; counted, and the reason of sl_tls_fail_reason(). */
enum sl_tls_fail {
	SL_TLS_FAIL_NONE = 0,
	SL_TLS_FAIL_BAD_CERT, /* peer cert malformed, wrong usage, rejected by peer */
	SL_TLS_FAIL_UNKNOWN_CA, /* not issued by a CA of our bundle */
	SL_TLS_FAIL_EXPIRED, /* expired or not yet valid */
	SL_TLS_FAIL_NO_CERT, /* peer presented no certificate */
	SL_TLS_FAIL_NO_IDENTITY, /* no (single, valid) SPIFFE URI SAN */
	SL_TLS_FAIL_TRUST_DOMAIN, /* SPIFFE ID of another trust domain */
	SL_TLS_FAIL_TIMEOUT, /* sl_tls_handshake_timeout() called */
	SL_TLS_FAIL_PROTOCOL, /* version, cipher, ALPN, malformed messages */
	SL_TLS_FAIL_IO, /* connection closed or reset mid-handshake */
	SL_TLS_FAIL_IDENTITY, /* a valid SPIFFE ID the expect callback refused */
	SL_TLS_FAIL_NR
};
extern const char *const sl_tls_fail_name[SL_TLS_FAIL_NR];

struct sl_tls_stats {
	uint64_t handshakes_ok, resumed; /* resumed counts within ok */
	uint64_t handshakes_failed[SL_TLS_FAIL_NR];
	uint64_t bytes_in, bytes_out; /* application bytes, both roles */
	uint64_t active; /* connections not yet freed */
	uint64_t ktls_tx, ktls_rx; /* connections that got kTLS per direction */
	uint64_t reloads, reloads_rejected;
};

struct sl_tls_ctx;
struct sl_tls_conn;

/* Load the files of opts (copied) and build both SSL_CTX. On failure err
 * (may be NULL) names the file and the reason, also logged. 0 or -errno:
 * -ENOENT/-EACCES (file), -EINVAL (unparseable, no SPIFFE ID, wrong trust
 * domain), -EKEYREJECTED (key mismatch, not signed by the CA),
 * -EKEYEXPIRED (expired or not yet valid).
 */
int sl_tls_ctx_new(const struct sl_tls_opts *opts, struct sl_tls_ctx **out,
		   char *err, size_t errlen);
/* Free after every connection made from it is freed. */
void sl_tls_ctx_free(struct sl_tls_ctx *ctx);
/* If any of the three files changed (inode, size, mtime), load and check them
 * and swap them in for new connections; established ones keep their old
 * SSL_CTX (reference counted) until freed. 1 swapped, 0 unchanged, -errno
 * rejected: the old material stays, sl_tls_ctx_error() says why (the same
 * rejected files are not retried, logged or counted again). Files changed
 * less than SL_TLS_SETTLE_MS ago are left for a later call (0): a rotation
 * caught half done is neither loaded nor refused.
 */
int sl_tls_reload(struct sl_tls_ctx *ctx);
const char *sl_tls_ctx_error(const struct sl_tls_ctx *ctx);
/* Other files (a config reload): loaded and checked like a rotation's,
 * then used for new connections and by later sl_tls_reload() calls. On
 * failure nothing changes and err says why. 0 or -errno as sl_tls_ctx_new.
 */
int sl_tls_ctx_set_files(struct sl_tls_ctx *ctx, const char *cert,
			 const char *key, const char *ca, char *err,
			 size_t errlen);
/* Our own SPIFFE ID / trust domain (of the material in use). */
void sl_tls_ctx_identity(struct sl_tls_ctx *ctx, char *buf, size_t len);
const char *sl_tls_trust_domain(const struct sl_tls_ctx *ctx);
void sl_tls_stats(const struct sl_tls_ctx *ctx, struct sl_tls_stats *out);

/* kTLS in this kernel (probed once, thread-safe) and why / why not, one
 * line.
 */
bool sl_tls_ktls_available(void);
const char *sl_tls_ktls_reason(void);

/* Wrap a connected non-blocking TCP fd (not closed by sl_tls_conn_free).
 * A client resumes a session cached under peer_key (e.g. "10.0.0.5:443" or
 * the expected SPIFFE ID; NULL: no resumption). 0 or -errno.
 */
int sl_tls_conn_new(struct sl_tls_ctx *ctx, int fd, enum sl_tls_role role,
		    const char *peer_key, struct sl_tls_conn **out);
/* Before the handshake: the peer's SPIFFE ID must also pass match(arg, id),
 * checked while its certificate is verified, so a refused server never sees
 * our Finished (a TLS 1.3 server would otherwise count the connection as
 * accepted and act on it). A resumed session skips certificate checks: the
 * caller re-checks sl_tls_peer_id() after the handshake. After a refusal
 * (SL_TLS_FAIL_IDENTITY) sl_tls_peer_id() names the refused identity.
 */
void sl_tls_conn_expect_peer(struct sl_tls_conn *c,
			     bool (*match)(void *arg, const char *id),
			     void *arg);
/* Frees the SSL object; never sends anything. Safe on NULL. */
void sl_tls_conn_free(struct sl_tls_conn *c);
/* Client: offer these protocols ("h2,http/1.1") instead of opts.alpn.
 * Before the handshake. 0 or -EINVAL.
 */
int sl_tls_conn_set_alpn(struct sl_tls_conn *c, const char *alpn);

/* Drive the handshake; SL_TLS_OK once done (peer verified, identity set).
 * On SL_TLS_ERROR the reason is counted and logged.
 */
enum sl_tls_io sl_tls_handshake(struct sl_tls_conn *c);
/* The caller's handshake deadline passed: counts a timeout failure. */
void sl_tls_handshake_timeout(struct sl_tls_conn *c);
/* Read/write up to len bytes, *n = bytes moved (> 0 only with SL_TLS_OK).
 * Before the handshake completed they drive it first (same return values).
 * Either may ask for the other direction (a read WANT_WRITE, a write
 * WANT_READ): arm what it asks for, not what the call was about.
 * A write retried after WANT_READ/WANT_WRITE must pass the same bytes first
 * (more may follow; the buffer may move). EOF from read = close_notify; a TCP
 * FIN without one is an error (truncation).
 */
enum sl_tls_io sl_tls_read(struct sl_tls_conn *c, void *buf, size_t len,
			   size_t *n);
enum sl_tls_io sl_tls_write(struct sl_tls_conn *c, const void *buf, size_t len,
			    size_t *n);
/* Decrypted bytes held inside OpenSSL that no EPOLLIN will announce: read
 * again when buffer space frees, without waiting for the fd.
 */
bool sl_tls_pending(const struct sl_tls_conn *c);
/* Send close_notify (our half-close; reads keep working until EOF). OK once
 * sent (then shutdown(fd, SHUT_WR) if wanted); OK at once before the
 * handshake completed; ERROR after a fatal error.
 */
enum sl_tls_io sl_tls_shutdown(struct sl_tls_conn *c);

/* After the handshake: the peer's SPIFFE ID (NULL before), the negotiated
 * ALPN protocol ("" if none), resumed or not, kTLS per direction.
 */
const char *sl_tls_peer_id(const struct sl_tls_conn *c);
const char *sl_tls_alpn(const struct sl_tls_conn *c);
bool sl_tls_resumed(const struct sl_tls_conn *c);
bool sl_tls_ktls_tx(const struct sl_tls_conn *c);
bool sl_tls_ktls_rx(const struct sl_tls_conn *c);
/* "TLSv1.3 TLS_AES_128_GCM_SHA256 user-space|ktls tx+rx" */
void sl_tls_describe(const struct sl_tls_conn *c, char *buf, size_t len);
enum sl_tls_fail sl_tls_fail_reason(const struct sl_tls_conn *c);
/* Last error: OpenSSL's error queue drained into one line, "" if none. */
const char *sl_tls_conn_error(const struct sl_tls_conn *c);
/* The OpenSSL object, for diagnostics and tests (owned by c). */
struct ssl_st *sl_tls_ssl(struct sl_tls_conn *c);

#endif /* TLS_H */
