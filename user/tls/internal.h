/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* What the files of user/tls/ share: a context (material, the session
 * cache, counters), a connection, and each file's functions the others
 * call. tls.c has the overview.
 */
#ifndef SL_TLS_INTERNAL_H
#define SL_TLS_INTERNAL_H

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


enum { F_CERT, F_KEY, F_CA, F_NR };

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


#define STAT_ADD(ctx, field, v)                                                \
	__atomic_fetch_add(&(ctx)->st.field, (v), __ATOMIC_RELAXED)

/* tls.c: errors, a certificate's identity, the kTLS probe, ALPN */
/* the SSL ex_data slot holding a connection's sl_tls_conn, made once */
int conn_idx_get(void);
/* printf onto what buf holds already */
void __attribute__((format(printf, 3, 4)))
append(char *buf, size_t len, const char *fmt, ...);
extern int conn_idx;
enum sl_tls_fail drain_errors(char *buf, size_t len);
enum sl_tls_fail cert_identity(X509 *x, const char *want_td, char **id,
			       char *why, size_t len);
int alpn_wire(const char *csv, unsigned char **out, size_t *outlen);

/* material.c: material, contexts, rotation, the session cache, callbacks */
struct sess *cache_find(struct sl_tls_ctx *ctx, const char *key);

#endif /* SL_TLS_INTERNAL_H */
