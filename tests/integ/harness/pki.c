// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* A test PKI made with the openssl CLI (th_pki_*). */
#define _GNU_SOURCE
#include "harness/internal.h"

/* ---- test PKI, with the openssl CLI ---- */

static void rm_tree(void *dir)
{
	th_rm_tree(dir);
}

int th_pki_dir(char *dir, size_t len, const char *tag)
{
	int err;

	if (path_fmt(dir, len, "/tmp/sidelane-%s-XXXXXX", tag))
		return -ENAMETOOLONG;
	if (!mkdtemp(dir))
		return -errno;
	err = th_cleanup_push(rm_tree, dir);
	if (err)
		rm_tree(dir);
	return err;
}

int th_pki_dir_remove(const char *dir)
{
	th_cleanup_pop(rm_tree, (void *)dir, true);
	return path_exists(dir) ? -ENOTEMPTY : 0;
}

const char *th_pki_path(const char *dir, const char *name, const char *ext)
{
	static char buf[16][PATH_MAX];
	static unsigned int n;
	char *p = buf[n++ % 16];

	snprintf(p, PATH_MAX, "%s/%s.%s", dir, name, ext);
	return p;
}

/* system() of fmt's command with " >>dir/openssl.log 2>&1" after it when
 * dir is given.
 */
static int vsystem(const char *dir, const char *fmt, va_list ap)
{
	size_t tail = dir ? strlen(dir) + 32 : 0; /* the redirection */
	char cmd[8192];
	int n;

	n = vsnprintf(cmd, sizeof(cmd), fmt, ap);
	if (n < 0 || (size_t)n + tail >= sizeof(cmd))
		return -ENAMETOOLONG;
	if (dir)
		snprintf(cmd + n, sizeof(cmd) - n, " >>%s/openssl.log 2>&1", dir);
	return system(cmd) == 0 ? 0 : -EIO;
}

int th_system(const char *fmt, ...)
{
	va_list ap;
	int err;

	va_start(ap, fmt);
	err = vsystem(NULL, fmt, ap);
	va_end(ap);
	return err;
}

int th_pki_sh(const char *dir, const char *fmt, ...)
{
	va_list ap;
	int err;

	va_start(ap, fmt);
	err = vsystem(dir, fmt, ap);
	va_end(ap);
	return err;
}

void th_pki_log(const char *dir)
{
	char line[512];
	FILE *f = fopen(th_pki_path(dir, "openssl", "log"), "re");

	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		printf("#   openssl: %s", line);
	fclose(f);
}

int th_pki_ca(const char *dir, const char *name)
{
	return th_pki_sh(dir,
			 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
			 "-nodes -keyout %s -out %s -days 3650 -subj /CN=%s "
			 "-addext basicConstraints=critical,CA:TRUE "
			 "-addext keyUsage=critical,keyCertSign,cRLSign",
			 th_pki_path(dir, name, "key"),
			 th_pki_path(dir, name, "pem"), name);
}

int th_pki_csr(const char *dir, const char *name, const char *san)
{
	char ext[512];
	int err;

	snprintf(ext, sizeof(ext),
		 "subjectAltName=%s\nbasicConstraints=CA:FALSE\n"
		 "keyUsage=critical,digitalSignature\n"
		 "extendedKeyUsage=serverAuth,clientAuth\n",
		 san);
	err = th_write_text(th_pki_path(dir, name, "ext"), ext);
	if (err)
		return err;
	return th_pki_sh(dir,
			 "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
			 "-nodes -keyout %s -out %s -subj /CN=%s",
			 th_pki_path(dir, name, "key"),
			 th_pki_path(dir, name, "csr"), name);
}

int th_pki_leaf(const char *dir, const char *name, const char *ca, int serial,
		const char *san)
{
	int err = th_pki_csr(dir, name, san);

	if (err)
		return err;
	return th_pki_sh(dir,
			 "openssl x509 -req -in %s -CA %s -CAkey %s -set_serial %d "
			 "-days 2 -extfile %s -out %s",
			 th_pki_path(dir, name, "csr"), th_pki_path(dir, ca, "pem"),
			 th_pki_path(dir, ca, "key"), serial,
			 th_pki_path(dir, name, "ext"),
			 th_pki_path(dir, name, "pem"));
}

/* The 3.0 `x509 -req` has no -not_before/-not_after: `openssl ca` with a
 * throw-away database in dir.
 */
int th_pki_expired(const char *dir, const char *name, const char *ca,
		   const char *san)
{
	char cnf[1024];
	int err = th_pki_csr(dir, name, san);

	if (err)
		return err;
	snprintf(cnf, sizeof(cnf),
		 "[ca]\ndefault_ca = d\n[d]\ndatabase = %s/index.txt\n"
		 "new_certs_dir = %s\nserial = %s/serial.txt\n"
		 "default_md = sha256\npolicy = p\nunique_subject = no\n"
		 "[p]\ncommonName = supplied\n",
		 dir, dir, dir);
	err = th_write_text(th_pki_path(dir, "ca", "cnf"), cnf);
	err = err ?: th_write_text(th_pki_path(dir, "index", "txt"), "");
	err = err ?: th_write_text(th_pki_path(dir, "serial", "txt"), "2001\n");
	if (err)
		return err;
	return th_pki_sh(dir,
			 "openssl ca -batch -notext -config %s -cert %s -keyfile %s "
			 "-in %s -out %s -startdate 20200101000000Z "
			 "-enddate 20200102000000Z -extfile %s",
			 th_pki_path(dir, "ca", "cnf"), th_pki_path(dir, ca, "pem"),
			 th_pki_path(dir, ca, "key"), th_pki_path(dir, name, "csr"),
			 th_pki_path(dir, name, "pem"),
			 th_pki_path(dir, name, "ext"));
}

int th_pki_swap(const char *dir, const char *from, const char *to)
{
	return th_pki_sh(dir, "cp %s %s.tmp && mv -f %s.tmp %s", from, to, to, to);
}
