// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* `sidelane bench`, --suite tls: certificates and the three pairs (see
 * bench.c).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench/internal.h"

/* ---- --suite tls: certificates and the three pairs ---------------------- */

/* B's listener of TLS mode m, in the namespace. */
static struct sockaddr_in tls_b_addr(enum mode m)
{
	return addr_in(BENCH_NS_IP, BENCH_TLS_B_PORT + (m - MODE_TLS_SL));
}

/* The certificates, made in tmpdir with the openssl CLI: a CA, and leaves
 * for A (a client) and B (a server) with their SPIFFE IDs as URI SAN; EC
 * P-256 keys. <leaf>.crt.key links to <leaf>.key, where haproxy looks for a
 * key its certificate file lacks.
 */
static int make_certs(void)
{
	static const char *const leaf[2][3] = {
		{ "a", BENCH_ID_A, "clientAuth" },
		{ "b", BENCH_ID_B, "serverAuth" },
	};
	static const char newkey[] =
		"-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
	char bin[PATH_MAX], path[PATH_MAX], log[PATH_MAX];
	const char *d = bs.tmpdir;
	int i, err;

	err = find_bin("openssl", bin, sizeof(bin), NR_MODES);
	if (err)
		return err;
	tmp_path(log, sizeof(log), "certs.log");
	err = bench_sh("cd %s && %s req -x509 -new %s -days 1 -subj '/CN=sidelane "
		 "bench CA' -addext basicConstraints=critical,CA:TRUE -addext "
		 "keyUsage=critical,keyCertSign,cRLSign -keyout ca.key -out "
		 "ca.crt >%s 2>&1",
		 d, bin, newkey, log);
	for (i = 0; i < 2 && !err; i++) {
		snprintf(path, sizeof(path), "%s/%s.ext", d, leaf[i][0]);
		err = write_text(path,
				 "basicConstraints=critical,CA:FALSE\n"
				 "keyUsage=critical,digitalSignature\n"
				 "extendedKeyUsage=%s\n"
				 "subjectAltName=URI:%s\n",
				 leaf[i][2], leaf[i][1]);
		if (!err)
			err = bench_sh("cd %s && %s req -new %s -subj /CN=%s -keyout "
				 "%s.key -out %s.csr >>%s 2>&1 && %s x509 -req "
				 "-in %s.csr -CA ca.crt -CAkey ca.key "
				 "-set_serial %d -days 1 -extfile %s.ext -out "
				 "%s.crt >>%s 2>&1 && ln -s %s.key %s.crt.key",
				 d, bin, newkey, leaf[i][0], leaf[i][0],
				 leaf[i][0], log, bin, leaf[i][0], i + 2,
				 leaf[i][0], leaf[i][0], log, leaf[i][0],
				 leaf[i][0]);
	}
	if (err) {
		pr_warn("making the certificates with %s failed\n", bin);
		dump_log(log);
	}
	return err;
}

/* sidelane A (side 0: its ambassador originates mTLS to B, a tls.mesh
 * destination whose ID must match) or B (side 1: its inbound listener
 * terminates mTLS, admits A's ID and relays to the server); capture off.
 * The schema is the one `sidelane config` documents.
 */
static int start_tls_sidelane(int side)
{
	struct sockaddr_in b = tls_b_addr(MODE_TLS_SL), a;
	const char *d = bs.tmpdir;
	char cfg[PATH_MAX], role[512];
	int err;

	err = set_pin_root(bs.pin_ab[side], side ? "-b" : "-a");
	if (!err && !side)
		err = pick_port(&bs.front_port[MODE_TLS_SL]);
	if (err)
		return err;
	a = addr_in("127.0.0.1", bs.front_port[MODE_TLS_SL]);
	if (side)
		snprintf(role, sizeof(role),
			 "inbound:\n"
			 "  enabled: true\n"
			 "  listen: \"" BENCH_NS_IP ":%u\"\n"
			 "  mode: listener\n"
			 "  app_port: %d\n"
			 "  default: deny\n"
			 "  identities:\n"
			 "    - id: \"spiffe://bench.local/ns/a/*\"\n"
			 "      action: allow\n"
			 "proxy:\n"
			 "  workers: 1\n",
			 ntohs(b.sin_port), BENCH_UPSTREAM_PORT);
	else
		snprintf(role, sizeof(role),
			 "  mesh:\n"
			 "    - cidr: \"" BENCH_NS_IP "/32\"\n"
			 "      ports: [\"%u\"]\n"
			 "      identities: [\"spiffe://bench.local/ns/b/*\"]\n"
			 "inbound:\n"
			 "  enabled: false\n"
			 "proxy:\n"
			 "  workers: 1\n"
			 "  ambassadors:\n"
			 "    - listen: \"127.0.0.1:%u\"\n"
			 "      upstream: \"" BENCH_NS_IP ":%u\"\n",
			 ntohs(b.sin_port), ntohs(a.sin_port), ntohs(b.sin_port));
	proc_path(side ? PROC_SL_B : PROC_SL_A, ".yaml", cfg, sizeof(cfg));
	err = write_text(cfg,
			 "# sidelane bench --suite tls: %s\n"
			 "pin_root: %s\n"
			 "tls:\n"
			 "  cert: %s/%c.crt\n"
			 "  key: %s/%c.key\n"
			 "  ca: %s/ca.crt\n"
			 "  min_version: \"1.3\"\n"
			 "%s"
			 "capture:\n"
			 "  enabled: false\n"
			 SL_BENCH_ADMIN,
			 side ? "B" : "A", bs.pin_ab[side], d, 'a' + side, d,
			 'a' + side, d, role);
	if (err) {
		pr_warn("sidelane config %s: %s\n", cfg, strerror(-err));
		return err;
	}
	return start_sidelane_proc(side ? PROC_SL_B : PROC_SL_A,
				   side ? CG_TLS_APP_B : CG_TLS_APP_A,
				   bs.pin_ab[side], &bs.ab_attached[side],
				   tcp_ready, side ? &b : &a);
}

/* haproxy B (side 1: `bind ... ssl`, a client certificate required) or A
 * (side 0: `server ... ssl`, B's certificate verified).
 */
static int start_tls_haproxy(int side)
{
	struct sockaddr_in b = tls_b_addr(MODE_TLS_HAP);
	char bind[512], server[512], tls[384];
	const char *d = bs.tmpdir;
	int err;

	snprintf(tls, sizeof(tls),
		 "ssl crt %s/%c.crt ca-file %s/ca.crt verify required "
		 "ssl-min-ver TLSv1.3 ciphersuites " BENCH_TLS_SUITE,
		 d, 'a' + side, d);
	if (side) {
		snprintf(bind, sizeof(bind), BENCH_NS_IP ":%u %s",
			 ntohs(b.sin_port), tls);
		return start_haproxy_proc(MODE_TLS_HAP, PROC_HAP_B, 1, bind,
					  "127.0.0.1:" SL_XSTR(BENCH_UPSTREAM_PORT));
	}
	err = pick_port(&bs.front_port[MODE_TLS_HAP]);
	if (err)
		return err;
	snprintf(bind, sizeof(bind), "127.0.0.1:%u", bs.front_port[MODE_TLS_HAP]);
	snprintf(server, sizeof(server), BENCH_NS_IP ":%u %s", ntohs(b.sin_port),
		 tls);
	return start_haproxy_proc(MODE_TLS_HAP, PROC_HAP_A, 1, bind, server);
}

/* stunnel B (side 1: server mode, a client certificate required and
 * verified) or A (side 0: client mode, B's certificate verified); both
 * TLS 1.3 only, warnings only in the log.
 */
static int start_tls_stunnel(int side)
{
	struct sockaddr_in b = tls_b_addr(MODE_TLS_ST), acc;
	char bin[PATH_MAX], cfg[PATH_MAX], con[32];
	char *argv[] = { "stunnel", cfg, NULL };
	enum proc p = side ? PROC_ST_B : PROC_ST_A;
	const char *d = bs.tmpdir;
	int err;

	err = find_bin("stunnel", bin, sizeof(bin), MODE_TLS_ST);
	if (!err && !side)
		err = pick_port(&bs.front_port[MODE_TLS_ST]);
	if (err)
		return err;
	acc = side ? b : addr_in("127.0.0.1", bs.front_port[MODE_TLS_ST]);
	if (side)
		snprintf(con, sizeof(con), "127.0.0.1:%d", BENCH_UPSTREAM_PORT);
	else
		snprintf(con, sizeof(con), BENCH_NS_IP ":%u", ntohs(b.sin_port));
	proc_path(p, ".conf", cfg, sizeof(cfg));
	err = write_text(cfg,
			 "; sidelane bench --suite tls: %s\n"
			 "foreground = yes\n"
			 "pid =\n"
			 "syslog = no\n"
			 "debug = warning\n"
			 "[bench]\n"
			 "client = %s\n"
			 "accept = %s:%u\n"
			 "connect = %s\n"
			 "cert = %s/%c.crt\n"
			 "key = %s/%c.key\n"
			 "CAfile = %s/ca.crt\n"
			 "verifyChain = yes\n"
			 "%s"
			 "sslVersionMin = TLSv1.3\n"
			 "ciphersuites = " BENCH_TLS_SUITE "\n",
			 side ? "B" : "A", side ? "no" : "yes",
			 inet_ntoa(acc.sin_addr), ntohs(acc.sin_port), con, d,
			 'a' + side, d, 'a' + side, d,
			 side ? "requireCert = yes\n" : "");
	if (err) {
		pr_warn("stunnel config %s: %s\n", cfg, strerror(-err));
		return err;
	}
	return start_proc(p, bin, argv, SIGKILL, tcp_ready, &acc);
}

/* B of mode m must refuse a client without a certificate: a TLS 1.3
 * handshake without one, then a read, must end in an alert from B (TLS 1.3
 * sends it after the client's handshake is done). B's own certificate must
 * verify against the CA, and B choose BENCH_TLS_SUITE from OpenSSL's
 * default offer. 0, or -EPROTO with the reason said.
 */
static int check_mtls(enum mode m)
{
	struct sockaddr_in b = tls_b_addr(m);
	struct side_result r = {};
	char ca[PATH_MAX], c;
	const char *why = "B accepted a client without a certificate";
	unsigned long e = 0;
	SSL_CTX *ctx;
	SSL *ssl = NULL;
	int fd = -1, err = -EPROTO;

	tmp_path(ca, sizeof(ca), "ca.crt");
	ERR_clear_error();
	ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
	    SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
		why = "OpenSSL client context";
		goto out;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	fd = client_connect(b, 1, &r);
	ssl = fd >= 0 ? SSL_new(ctx) : NULL;
	if (!ssl || !SSL_set_fd(ssl, fd)) {
		why = fd < 0 ? r.msg : "OpenSSL connection";
		goto out;
	}
	if (SSL_connect(ssl) == 1 && SSL_read(ssl, &c, 1) <= 0)
		e = ERR_peek_last_error();
	if (SSL_get_verify_result(ssl) != X509_V_OK)
		why = "B's certificate did not verify against the CA";
	else if (strcmp(SSL_get_cipher_name(ssl), BENCH_TLS_SUITE))
		why = "B chose another suite than " BENCH_TLS_SUITE;
	else if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
		 ERR_GET_REASON(e) >= SSL_AD_REASON_OFFSET)
		err = 0; /* an alert from B, "certificate required" */
out:
	if (err)
		pr_warn("%s: mTLS check against B " BENCH_NS_IP ":%u: %s\n",
			mode_name[m], ntohs(b.sin_port), why);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	if (fd >= 0)
		close(fd);
	ERR_clear_error();
	return err;
}

/* Certificates, then each measured pair, B first, and its mTLS check. */
static int tls_setup(const struct bench_opts *o)
{
	static int (*const start[])(int) = { start_tls_sidelane,
					     start_tls_haproxy,
					     start_tls_stunnel };
	int err, i, side;

	err = make_certs();
	for (i = 0; i < 3 && !err; i++) {
		if (!o->modes[MODE_TLS_SL + i])
			continue;
		for (side = 1; side >= 0 && !err; side--)
			err = start[i](side);
		if (!err)
			err = check_mtls(MODE_TLS_SL + i);
	}
	return err;
}

/* Add a line to the versions the header shows. */
static void add_version(const char *name, const char *text)
{
	size_t n;

	if (bs.nver == (int)(sizeof(bs.ver) / sizeof(bs.ver[0])))
		return;
	snprintf(bs.ver[bs.nver].name, sizeof(bs.ver[0].name), "%s", name);
	snprintf(bs.ver[bs.nver].text, sizeof(bs.ver[0].text), "%s", text);
	n = strcspn(bs.ver[bs.nver].text, "\n");
	bs.ver[bs.nver++].text[n] = '\0';
}

/* What the suite runs: kernel, sidelane and the tools of the measured
 * modes, each by the first line of its version output that starts with
 * its name.
 */
static void collect_versions(const struct bench_opts *o)
{
	static const struct {
		int suite;
		unsigned int modes; /* it runs when one is measured (0: always) */
		const char *name, *args, *prefix;
	} tools[] = {
		{ SUITE_SIDECAR, MODE_BIT(MODE_HAPROXY) | MODE_BIT(MODE_HAPROXY1),
		  "haproxy", "-v", "HAProxy" },
		{ SUITE_TLS, 0, "openssl", "version", "OpenSSL" },
		{ SUITE_TLS, MODE_BIT(MODE_TLS_HAP), "haproxy", "-v", "HAProxy" },
		{ SUITE_TLS, MODE_BIT(MODE_TLS_ST), "stunnel", "-version",
		  "stunnel" },
	};
	char bin[PATH_MAX], cmd[PATH_MAX + 32], line[256];
	struct utsname u;
	unsigned int i;
	int m, runs;
	FILE *f;

	bs.nver = 0;
	if (!uname(&u)) {
		snprintf(line, sizeof(line), "%s %s", u.sysname, u.release);
		add_version("kernel", line);
	}
	snprintf(line, sizeof(line), "%s, linked with %s", SL_VERSION,
		 OpenSSL_version(OPENSSL_VERSION));
	add_version("sidelane", line);
	for (i = 0; i < sizeof(tools) / sizeof(tools[0]); i++) {
		for (m = 0, runs = !tools[i].modes; m < NR_MODES; m++)
			runs |= (tools[i].modes & MODE_BIT(m)) && o->modes[m];
		if (tools[i].suite != (int)o->suite || !runs ||
		    find_bin(tools[i].name, bin, sizeof(bin), -1))
			continue;
		snprintf(cmd, sizeof(cmd), "%s %s 2>&1", bin, tools[i].args);
		f = popen(cmd, "re");
		if (!f)
			continue;
		while (fgets(line, sizeof(line), f))
			if (!strncmp(line, tools[i].prefix,
				     strlen(tools[i].prefix))) {
				add_version(tools[i].name, line);
				break;
			}
		pclose(f);
	}
}

/* Namespace, then the relays of the measured modes. */
int relays_setup(const struct bench_opts *o)
{
	int err;

	if (!mkdtemp(strcpy(bs.tmpdir, "/tmp/sidelane-bench-XXXXXX"))) {
		err = -errno;
		bs.tmpdir[0] = '\0';
		pr_warn("mkdtemp: %s\n", strerror(-err));
		return err;
	}
	collect_versions(o);
	err = netns_setup();
	if (!err && o->modes[MODE_SIDECAR])
		err = start_sidelane(&sidecar_sl);
	if (!err && o->modes[MODE_RELAY])
		err = start_sidelane(&sidecar_relay);
	if (!err && o->modes[MODE_HAPROXY])
		err = start_haproxy(MODE_HAPROXY);
	if (!err && o->modes[MODE_HAPROXY1])
		err = start_haproxy(MODE_HAPROXY1);
	if (!err && o->suite == SUITE_TLS)
		err = tls_setup(o);
	return err;
}

/* The relays of mode m are still running; else say which is gone, with
 * its log.
 */
int relays_alive(enum mode m)
{
	char log[PATH_MAX];
	int i, p, st;

	for (i = 0; i < 2; i++) {
		p = mode_run[m].proc[i];
		if (p < 0 ||
		    (bs.pid[p] > 0 && waitpid(bs.pid[p], &st, WNOHANG) == 0))
			continue;
		bs.pid[p] = 0;
		proc_path(p, ".log", log, sizeof(log));
		pr_warn("%s: %s is gone\n", mode_name[m], cg_name[procs[p].cg]);
		dump_log(log);
		return 0;
	}
	return 1;
}
