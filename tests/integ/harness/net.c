// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Sockets on loopback and deterministic data for the tests. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <pthread.h>
#include "harness/internal.h"

/* ---- sockets ---- */

int th_sock_key(int fd, struct sl_sock_key *key)
{
	return sl_fd_sock_key(fd, key);
}

__u64 th_sock_cookie(int fd)
{
	__u64 c = 0;
	socklen_t l = sizeof(c);

	if (getsockopt(fd, SOL_SOCKET, SO_COOKIE, &c, &l))
		return 0;
	return c;
}

int th_sockaddr(const char *addr, int port, struct sockaddr_storage *ss,
		socklen_t *len)
{
	struct sockaddr_in *in = (void *)ss;
	struct sockaddr_in6 *in6 = (void *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, addr, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		in->sin_port = htons(port);
		*len = sizeof(*in);
		return 0;
	}
	if (inet_pton(AF_INET6, addr, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		*len = sizeof(*in6);
		return 0;
	}
	return -EINVAL;
}

int th_listen(const char *addr, int backlog, int *port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, one = 1, err;

	err = th_sockaddr(addr, 0, &ss, &len);
	if (err)
		return err;
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (void *)&ss, len) || listen(fd, backlog))
		goto err;
	len = sizeof(ss);
	if (getsockname(fd, (void *)&ss, &len))
		goto err;
	*port = ntohs(ss.ss_family == AF_INET ?
			      ((struct sockaddr_in *)&ss)->sin_port :
			      ((struct sockaddr_in6 *)&ss)->sin6_port);
	return fd;
err:
	err = -errno;
	close(fd);
	return err;
}

static int connect_as(const char *addr, int port, int flags)
{
	struct sockaddr_storage ss;
	struct pollfd p = { .events = POLLOUT };
	socklen_t len, elen = sizeof(int);
	int fd, err;

	err = th_sockaddr(addr, port, &ss, &len);
	if (err)
		return err;
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | flags, 0);
	if (fd < 0)
		return -errno;
	err = connect(fd, (void *)&ss, len) ? -errno : 0;
	if (err == -EINPROGRESS) {
		p.fd = fd;
		err = poll(&p, 1, TH_HTTP_MS) == 1 ? 0 : -ETIMEDOUT;
		if (!err && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen))
			err = errno;
		err = err > 0 ? -err : err;
	}
	if (err) {
		close(fd);
		return err;
	}
	return fd;
}

int th_connect(const char *addr, int port)
{
	return connect_as(addr, port, 0);
}

int th_connect_nb(const char *addr, int port)
{
	return connect_as(addr, port, SOCK_NONBLOCK);
}

int th_tcp_pair(const char *laddr, const char *caddr, int *cfd, int *sfd)
{
	int lfd, port, c, s, err;

	lfd = th_listen(laddr, 1, &port);
	if (lfd < 0)
		return lfd;
	c = th_connect(caddr, port);
	if (c < 0) {
		close(lfd);
		return c;
	}
	s = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	err = s < 0 ? -errno : 0;
	close(lfd);
	if (err) {
		close(c);
		return err;
	}
	*cfd = c;
	*sfd = s;
	return 0;
}

/* ---- data ---- */

int th_free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && !bind(fd, (struct sockaddr *)&a, sizeof(a)) &&
	    !getsockname(fd, (struct sockaddr *)&a, &len))
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

bool th_file_has(const char *path, const char *what)
{
	char buf[65536];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return strstr(buf, what);
}

void th_sha256(const void *buf, size_t len, unsigned char out[32])
{
	unsigned int n = 32;

	EVP_Digest(buf, len, out, &n, EVP_sha256(), NULL);
}

void th_config_version(const void *text, size_t len, char out[17])
{
	unsigned char sum[32];
	int i;

	th_sha256(text, len, sum);
	for (i = 0; i < 8; i++)
		snprintf(out + 2 * i, 3, "%02x", sum[i]);
}

void th_fill(void *buf, size_t len, __u64 seed)
{
	__u64 x = seed * 0x9e3779b97f4a7c15ULL + 1;
	unsigned char *p = buf;
	size_t i;

	for (i = 0; i < len; i++) {
		if (!(i & 7)) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
		}
		p[i] = x >> ((i & 7) * 8);
	}
}

int th_run(struct th_env *env, int (*prep)(void), char *const argv[], char *out,
	   size_t len, int timeout_ms)
{
	char drop[4096];
	size_t got = 0;
	int p[2];
	ssize_t n;
	pid_t pid;

	if (pipe(p))
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (!pid) {
		dup2(p[1], 1);
		dup2(p[1], 2);
		close(p[0]);
		if (prep && prep())
			_exit(125);
		if (env && th_enter(env))
			_exit(126);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(p[1]);
	while (got + 1 < len && (n = read(p[0], out + got, len - got - 1)) > 0)
		got += n;
	out[got] = '\0';
	/* the rest is read and dropped: closing the pipe on a longer output
	 * would kill the child with SIGPIPE and fail a command that worked
	 */
	while (got + 1 >= len && (n = read(p[0], drop, sizeof(drop))) > 0)
		;
	close(p[0]);
	return th_wait(pid, timeout_ms);
}

int th_http(int port, const char *method, const char *path,
	    const char *headers, char *resp, size_t len)
{
	struct pollfd p = { .events = POLLIN };
	int fd, n, code = -EPROTO;
	size_t got = 0;
	char req[512];

	resp[0] = '\0';
	fd = th_connect("127.0.0.1", port);
	if (fd < 0)
		return fd;
	p.fd = fd;
	n = snprintf(req, sizeof(req),
		     "%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\n%s%s\r\n", method,
		     path, headers ? headers : "",
		     strcmp(method, "POST") ? "" : "Content-Length: 0\r\n");
	if (send(fd, req, n, MSG_NOSIGNAL) != n) {
		close(fd);
		return -EIO;
	}
	while (got + 1 < len && poll(&p, 1, TH_HTTP_MS) == 1 &&
	       (n = recv(fd, resp + got, len - got - 1, 0)) > 0)
		got += n;
	resp[got] = '\0';
	close(fd);
	sscanf(resp, "HTTP/1.%*d %d", &code);
	return code;
}

long long th_stat_num(int admin_port, const char *obj, const char *key)
{
	static char resp[256 * 1024];
	char want[64], o[64];
	const char *p;

	if (th_http(admin_port, "GET", "/stats", NULL, resp, sizeof(resp)) != 200)
		return -1;
	snprintf(o, sizeof(o), "\"%s\":{", obj);
	snprintf(want, sizeof(want), "\"%s\":", key);
	p = strstr(resp, o);
	p = p ? strstr(p, want) : NULL;
	if (!p)
		return -1;
	p += strlen(want);
	return !strncmp(p, "true", 4) ? 1 : !strncmp(p, "false", 5) ? 0 :
					    strtoll(p, NULL, 10);
}

ssize_t th_send_until_blocked(int fd, const void *buf, size_t len,
			      size_t limit)
{
	size_t off = 0, at, piece;

	while (off < limit) {
		struct pollfd pfd = { .fd = fd, .events = POLLOUT };
		ssize_t n;

		at = off % len;
		piece = len - at < 64 * 1024 ? len - at : 64 * 1024;
		piece = piece < limit - off ? piece : limit - off;
		n = send(fd, (const char *)buf + at, piece,
			 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			off += n;
			continue;
		}
		if (n < 0 && errno != EAGAIN)
			return -errno;
		if (!poll(&pfd, 1, 300))
			break;
	}
	return (ssize_t)off;
}

static void *echo_conn(void *arg)
{
	int fd = (int)(long)arg;
	char buf[16384];
	ssize_t n;

	while ((n = recv(fd, buf, sizeof(buf), 0)) > 0)
		if (send(fd, buf, n, MSG_NOSIGNAL) != n)
			break;
	shutdown(fd, SHUT_WR);
	close(fd);
	return NULL;
}

static void *echo_main(void *arg)
{
	int lfd = (int)(long)arg, fd;
	pthread_t t;

	while ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) >= 0 ||
	       errno == EINTR || errno == ECONNABORTED)
		if (fd >= 0 && pthread_create(&t, NULL, echo_conn, (void *)(long)fd))
			close(fd);
		else if (fd >= 0)
			pthread_detach(t);
	return NULL;
}

int th_echo_on(int lfd)
{
	pthread_t t;
	int err;

	if (lfd < 0)
		return lfd;
	err = -pthread_create(&t, NULL, echo_main, (void *)(long)lfd);
	if (err) {
		close(lfd);
		return err;
	}
	pthread_detach(t);
	return 0;
}

int th_echo_server(int backlog, int *port)
{
	return th_echo_on(th_listen("127.0.0.1", backlog, port));
}

int th_netns_add(const char *ns, const char *veth, const char *host_ip,
		 const char *ns_ip)
{
	return th_system("ip netns add %1$s && "
			 "ip link add %2$sh type veth peer name %2$sn netns %1$s && "
			 "ip addr add %3$s/30 dev %2$sh && ip link set %2$sh up && "
			 "ip -n %1$s addr add %4$s/30 dev %2$sn && "
			 "ip -n %1$s link set %2$sn up && ip -n %1$s link set lo up",
			 ns, veth, host_ip, ns_ip) ? -EIO : 0;
}

void th_netns_del(const char *ns)
{
	/* the namespace's veth end goes with it, and so the pair */
	if (ns[0])
		th_system("ip netns del %s 2>/dev/null", ns);
}

int th_netns_listen(const char *ns, const char *addr, int backlog, int *port)
{
	char path[PATH_MAX];
	int self, there, fd;

	snprintf(path, sizeof(path), "/var/run/netns/%s", ns);
	self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	there = open(path, O_RDONLY | O_CLOEXEC);
	if (self < 0 || there < 0 || setns(there, CLONE_NEWNET)) {
		fd = -errno;
		goto out;
	}
	fd = th_listen(addr, backlog, port);
	if (setns(self, CLONE_NEWNET)) /* this thread would stay there */
		abort();
out:
	if (self >= 0)
		close(self);
	if (there >= 0)
		close(there);
	return fd;
}
