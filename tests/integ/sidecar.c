// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Integration test (tests/integ): the whole sidecar path with the real
 * `sidelane run --config`. An unmodified client (curl, a Python socket
 * client) in the app's cgroup talks to servers on 198.18.78.2, the far end of
 * a veth into a network namespace this test creates; capture hands the
 * connection to sidelane's proxy, which relays it. Nothing goes anywhere but
 * loopback and that namespace.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "loader/policy_user.h"
#include "sidelane.h"
#include "capture.h"
#include "loader/capture_user.h"
#include "loader/fastpath_user.h"
#include "loader/admission_user.h"
#include "harness.h"

#define NS_IP "198.18.78.2"
#define HOST_IP "198.18.78.1"
#define NS_IP6 "2001:db8:78::2"
#define HOST_IP6 "2001:db8:78::1"
#define HTTP_PORT 80
#define ECHO_PORT 7
#define SINK_PORT 9 /* discard: counts what arrives */

static char ns[32], veth[16];
static struct th_env app, side;
static pid_t http_pid, http6_pid, echo_pid, sink_pid;
static char cfg_path[64];
static uint16_t outbound_port; /* free when the test starts */

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

static void ns_teardown(void)
{
	if (http_pid > 0)
		kill(http_pid, SIGKILL), waitpid(http_pid, NULL, 0);
	if (echo_pid > 0)
		kill(echo_pid, SIGKILL), waitpid(echo_pid, NULL, 0);
	if (http6_pid > 0)
		kill(http6_pid, SIGKILL), waitpid(http6_pid, NULL, 0);
	if (sink_pid > 0)
		kill(sink_pid, SIGKILL), waitpid(sink_pid, NULL, 0);
	http_pid = echo_pid = http6_pid = sink_pid = 0;
	/* Deleting the namespace deletes its veth end, and so the pair. */
	if (ns[0])
		sh("ip netns del %s 2>/dev/null", ns);
	ns[0] = '\0';
	if (cfg_path[0])
		unlink(cfg_path);
}

static int ns_setup(void)
{
	snprintf(ns, sizeof(ns), "sl-test-%d", (int)getpid());
	snprintf(veth, sizeof(veth), "slt%d", (int)getpid() % 100000);
	atexit(ns_teardown);
	return sh("ip netns add %s && "
		  "ip link add %sh type veth peer name %sn netns %s && "
		  "ip addr add " HOST_IP "/30 dev %sh && ip link set %sh up && "
		  "ip -n %s addr add " NS_IP "/30 dev %sn && "
		  "ip -n %s link set %sn up && ip -n %s link set lo up && "
		  /* nodad: usable at once, no duplicate detection wait */
		  "ip addr add " HOST_IP6 "/64 dev %sh nodad && "
		  "ip -n %s addr add " NS_IP6 "/64 dev %sn nodad",
		  ns, veth, veth, ns, veth, veth, ns, veth, ns, veth, ns, veth,
		  ns, veth) ?
		       -EIO :
		       0;
}

/* A process in the namespace: fn runs there. */
static pid_t in_ns(void (*fn)(void))
{
	char path[64];
	pid_t pid = fork();
	int fd;

	if (pid)
		return pid;
	snprintf(path, sizeof(path), "/var/run/netns/%s", ns);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || setns(fd, CLONE_NEWNET))
		_exit(2);
	fn();
	_exit(0);
}

static void http_server_on(const char *ip)
{
	char port[8];

	snprintf(port, sizeof(port), "%d", HTTP_PORT);
	execlp("python3", "python3", "-m", "http.server", port, "--bind", ip,
	       (char *)NULL);
}

static void http_server(void)
{
	http_server_on(NS_IP);
}

static void http6_server(void)
{
	http_server_on(NS_IP6);
}

/* Echo until EOF, then half-close back: one connection at a time. */
static void echo_server(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(ECHO_PORT) };
	static char buf[1 << 16];
	int l, c, one = 1;
	ssize_t n;

	inet_pton(AF_INET, NS_IP, &a.sin_addr);
	l = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 64))
		_exit(3);
	for (;;) {
		c = accept(l, NULL, NULL);
		if (c < 0)
			continue;
		while ((n = recv(c, buf, sizeof(buf), 0)) > 0)
			if (send(c, buf, n, MSG_NOSIGNAL) != n)
				break;
		shutdown(c, SHUT_WR);
		close(c);
	}
}

/* What the sink server saw, shared with it (MAP_SHARED before the fork). */
struct sink_count {
	volatile unsigned long long bytes, conns; /* conns: read to EOF */
};
static struct sink_count *sink;

/* Discard server: any number of connections at once, each read to EOF,
 * bytes and finished connections counted in *sink.
 */
static void sink_server(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(SINK_PORT) };
	struct epoll_event ev = { .events = EPOLLIN }, evs[64];
	static char buf[1 << 16];
	int l, ep, n, i, one = 1;
	ssize_t r;

	inet_pton(AF_INET, NS_IP, &a.sin_addr);
	l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	ep = epoll_create1(0);
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ep < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 4096))
		_exit(3);
	ev.data.fd = l;
	epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev);
	for (;;) {
		n = epoll_wait(ep, evs, 64, -1);
		for (i = 0; i < n; i++) {
			int fd = evs[i].data.fd;

			if (fd == l) {
				while ((fd = accept4(l, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
					ev.data.fd = fd;
					epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
				}
				continue;
			}
			while ((r = recv(fd, buf, sizeof(buf), 0)) > 0)
				sink->bytes += r;
			if (r == 0 || errno != EAGAIN) {
				if (r == 0)
					sink->conns++;
				close(fd);
			}
		}
	}
}

static int wait_port(const char *ip, int port)
{
	char cmd[256];
	int i;

	snprintf(cmd, sizeof(cmd),
		 "ip netns exec %s python3 -c 'import socket; socket.create_connection((\"%s\", %d), 1)' 2>/dev/null",
		 ns, ip, port);
	for (i = 0; i < 50; i++) {
		if (!system(cmd))
			return 0;
		usleep(100 * 1000);
	}
	return -ETIMEDOUT;
}

/* The proxy accepts on the outbound listener (a connect from outside the
 * app's cgroup is not captured: it reaches the listener itself).
 */
static int wait_port_local(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons(outbound_port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), err;

	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	err = connect(fd, (struct sockaddr *)&a, sizeof(a)) ? -errno : 0;
	close(fd);
	return err;
}

/* `sidelane run` with our config; ready when the proxy's link is pinned. */
static int start_sidelane(const char *sidecar_cgroup)
{
	char link[PATH_MAX + 32];
	int i;

	/* Output to a log the tests read (the harness removes it unless
	 * something went wrong).
	 */
	th_env_log_path(&app);
	app.sidelane = fork();
	if (!app.sidelane) {
		int fd = open(app.log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

		if (fd >= 0)
			dup2(fd, 1), dup2(fd, 2);
		execl(th_sidelane_bin(), "sidelane", "run", "--config", cfg_path,
		      "--cgroup", app.cgroup, "--sidecar-cgroup", sidecar_cgroup,
		      "--pin-root", app.pin_root, (char *)NULL);
		_exit(127);
	}
	app.pins_made = true;
	app.detached = false;
	snprintf(link, sizeof(link), "%s/%s", app.pin_root, SL_PIN_LINK_GETSOCKOPT);
	for (i = 0; i < 100; i++) {
		if (!access(link, F_OK) && !wait_port_local())
			return 0;
		usleep(50 * 1000);
	}
	return -ETIMEDOUT;
}

static int run_in(struct th_env *env, char *const argv[], char *out, size_t len)
{
	return th_run(env, NULL, argv, out, len, 20000);
}

static void check_curl_url(const char *name, const char *url, const char *ip)
{
	char *argv[] = { "curl", "-sS", "-g", "-m", "5", "-o", "/dev/null", "-w",
			 "%{http_code} %{remote_ip}", (char *)url, NULL };
	char out[512], want[96];
	int st = run_in(&app, argv, out, sizeof(out));

	snprintf(want, sizeof(want), "200 %s", ip);
	TH_RESULT(st == 0 && !strcmp(out, want), name,
		  "exit %d, output '%s' (want '%s')", st, out, want);
}

static void check_curl(const char *name)
{
	check_curl_url(name, "http://" NS_IP "/", NS_IP);
}

static void check_python_client(void)
{
	const char *name = "sidecar: unmodified Python client gets 200, getpeername() shows the original";
	char *argv[] = { "python3", "-c",
			 "import socket\n"
			 "s = socket.create_connection(('" NS_IP "', 80), 5)\n"
			 "s.sendall(b'GET / HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n')\n"
			 "d = b''\n"
			 "while (b := s.recv(65536)): d += b\n"
			 "print(d.split(b'\\r\\n')[0].decode(), s.getpeername())\n",
			 NULL };
	char out[512];
	int st = run_in(&app, argv, out, sizeof(out));

	TH_RESULT(st == 0 && strstr(out, " 200 ") &&
			  strstr(out, "('" NS_IP "', 80)"),
		  name, "exit %d, output '%s'", st, out);
}

/* In the app's cgroup: send size bytes to the echo server through the
 * proxy, half-close, read the echo to EOF, compare SHA-256.
 */
static int echo_child(size_t size)
{
	unsigned char *out = malloc(size), *in = malloc(size + 1);
	unsigned char want[32], got_d[32];
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons(ECHO_PORT) };
	size_t sent = 0, got = 0;
	int fd, rc = 1;

	inet_pton(AF_INET, NS_IP, &a.sin_addr);
	if (!out || !in || th_enter(&app))
		return 2;
	th_fill(out, size, size);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)))
		return 3;
	/* One process, interleaved: non-blocking both ways behind poll. */
	fcntl(fd, F_SETFL, O_NONBLOCK);
	for (;;) {
		struct pollfd p = { .fd = fd,
				    .events = POLLIN | (sent < size ? POLLOUT : 0) };
		ssize_t n;

		if (poll(&p, 1, 5000) != 1)
			return 4;
		if ((p.revents & POLLOUT) && sent < size) {
			n = send(fd, out + sent, size - sent, MSG_NOSIGNAL);
			if (n > 0 && (sent += n) == size)
				shutdown(fd, SHUT_WR);
		}
		if (p.revents & (POLLIN | POLLHUP)) {
			n = recv(fd, in + got, size + 1 - got, 0);
			if (n == 0)
				break;
			if (n > 0)
				got += n;
			else if (errno != EAGAIN)
				return 5;
		}
	}
	th_sha256(out, size, want);
	th_sha256(in, got, got_d);
	rc = got == size && !memcmp(want, got_d, 32) ? 0 : 6;
	close(fd);
	return rc;
}

static void check_echo(size_t size)
{
	char name[128];
	pid_t pid;
	int st;

	snprintf(name, sizeof(name),
		 "sidecar: relay of %zu bytes through capture is byte-exact, half-close propagated",
		 size);
	pid = fork();
	if (!pid)
		_exit(echo_child(size));
	st = th_wait(pid, 20000);
	TH_RESULT(st == 0, name, "child status %d", st);
}

/* A port nothing listens on now: the outbound listener must not meet a
 * sidelane already running on this host.
 */
static int pick_port(uint16_t *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) ||
	    getsockname(fd, (struct sockaddr *)&a, &len)) {
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	*port = ntohs(a.sin_port);
	close(fd);
	return 0;
}

static int write_file_str(const char *path, const char *text)
{
	FILE *f = fopen(path, "we");

	if (!f)
		return -errno;
	fputs(text, f);
	return fclose(f) ? -errno : 0;
}

static void check_bad_config(void)
{
	const char *name = "config: a broken file is refused with file:line, nothing attached";
	char bad[64], pins[PATH_MAX + 8], out[2048];
	int st;

	snprintf(bad, sizeof(bad), "/tmp/sidelane-test-bad-%d.yaml", (int)getpid());
	snprintf(pins, sizeof(pins), "%s-bad", app.pin_root);
	write_file_str(bad, "capture:\n  enabled: true\n  outbound: \"10.1.2.3:15001\"\n");
	{
		char *argv[] = { (char *)th_sidelane_bin(), "run", "--config", bad,
				 "--cgroup", app.cgroup, "--sidecar-cgroup",
				 side.cgroup, "--pin-root", pins, NULL };

		st = run_in(NULL, argv, out, sizeof(out));
	}
	unlink(bad);
	if (TH_CHECK(st == 2, name, "exit %d (want 2): %s", st, out) &&
	    TH_CHECK(strstr(out, ".yaml:3:") != NULL, name, "no file:line in '%s'", out) &&
	    TH_CHECK(access(pins, F_OK) && errno == ENOENT, name, "%s exists", pins))
		th_pass(name);
}

static void check_bad_policy(void)
{
	const char *name = "policy: a broken file is refused with file:line, old rules stay";
	char bad[64], before[4096], after[4096], out[2048];
	char *list[] = { (char *)th_sidelane_bin(), "policy", "list", "--json",
			 "--pin-root", app.pin_root, NULL };
	char *load[] = { (char *)th_sidelane_bin(), "policy", "load", bad,
			 "--pin-root", app.pin_root, NULL };
	int st;

	snprintf(bad, sizeof(bad), "/tmp/sidelane-test-badpol-%d.yaml", (int)getpid());
	write_file_str(bad, "rules:\n  - id: 1\n    action: deny\n    cidr: 10.0.0.0/8\n"
			    "  - id: 2\n    action: maybe\n    cidr: 10.1.0.0/16\n");
	run_in(NULL, list, before, sizeof(before));
	st = run_in(NULL, load, out, sizeof(out));
	run_in(NULL, list, after, sizeof(after));
	unlink(bad);
	if (TH_CHECK(st == 2, name, "exit %d (want 2): %s", st, out) &&
	    TH_CHECK(strstr(out, ".yaml:6:") != NULL, name, "no file:line in '%s'", out) &&
	    TH_CHECK(!strcmp(before, after), name, "rules changed: %s -> %s", before,
		     after))
		th_pass(name);
}

/* Every spelling of a denied destination, from every kind of app process,
 * fails at connect() with EPERM; rule 40 counts each.
 */
static void check_bypass(void)
{
	static const struct {
		const char *what;
		char *argv[12];
	} tries[] = {
		{ "curl, dotted quad",
		  { "curl", "-sS", "-m", "3", "http://" NS_IP ":8080/", NULL } },
		{ "curl, the address as one decimal number",
		  { "curl", "-sS", "-m", "3", "http://3323088386:8080/", NULL } },
		{ "Python, v4-mapped IPv6 socket",
		  { "python3", "-c",
		    "import socket\n"
		    "s = socket.socket(socket.AF_INET6)\n"
		    "s.connect(('::ffff:" NS_IP "', 8080))\n", NULL } },
		{ "Python, a forked child of the app",
		  { "python3", "-c",
		    "import os, socket, sys\n"
		    "pid = os.fork()\n"
		    "if pid == 0:\n"
		    "    socket.create_connection(('" NS_IP "', 8080), 3)\n"
		    "    os._exit(0)\n"
		    "sys.exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))\n",
		    NULL } },
	};
	static struct sl_policy pol;
	struct sl_policy_hit hits[64];
	unsigned int n_hits, i;
	uint64_t before = 0, after = 0;
	char name[160], out[1024];
	int configured, st;
	size_t k;

	sl_policy_read(app.pin_root, &pol, &configured, hits, 64, &n_hits);
	for (i = 0; i < n_hits; i++)
		if (hits[i].rule_id == 40)
			before = hits[i].hits;
	for (k = 0; k < sizeof(tries) / sizeof(tries[0]); k++) {
		snprintf(name, sizeof(name), "policy/bypass: %s is refused", tries[k].what);
		st = run_in(&app, tries[k].argv, out, sizeof(out));
		TH_RESULT(st != 0 && (strstr(out, "ermission") ||
				      strstr(out, "Couldn't connect") ||
				      strstr(out, "Failed to connect")),
			  name, "exit %d: %s", st, out);
	}
	sl_policy_read(app.pin_root, &pol, &configured, hits, 64, &n_hits);
	for (i = 0; i < n_hits; i++)
		if (hits[i].rule_id == 40)
			after = hits[i].hits;
	TH_RESULT(after - before == sizeof(tries) / sizeof(tries[0]),
		  "policy/bypass: rule 40 counted every attempt",
		  "hits %llu -> %llu", (unsigned long long)before,
		  (unsigned long long)after);
}

/* The app<->sidecar hop under the default admission (safe): nothing is
 * redirected into an app socket, and the app's own socket is admitted
 * (send-only) only where the kernel keeps FIONREAD; every one of the n
 * connections is counted with its reason.
 */
static void check_default_admission(const struct sl_counters *fp0,
				    const struct sl_counters *fp1,
				    const struct sl_adm_status *a0,
				    const struct sl_adm_status *a1, unsigned int n)
{
	const char *name = "sidecar: default admission: each app socket counted by its "
			   "reason, redirected only where this kernel keeps FIONREAD";
	unsigned long long d[SL_ACC_NR], ok = fp1->redirect_ok - fp0->redirect_ok;
	int keeps = !!(a1->cfg.kernel & SL_KERNEL_TCP_FIONREAD), i;

	for (i = 0; i < SL_ACC_NR; i++)
		d[i] = a1->stats.sockets[i] - a0->stats.sockets[i];
	th_info("app<->sidecar hop (kernel %s FIONREAD): blocking-socket +%llu, "
		"kernel-fionread +%llu, accelerated +%llu, redirect_ok +%llu, "
		"pass_plain +%llu", keeps ? "keeps" : "changes",
		d[SL_ACC_BLOCKING], d[SL_ACC_KERNEL_FIONREAD], d[SL_ACC_ACCELERATED],
		ok, (unsigned long long)(fp1->pass_plain - fp0->pass_plain));
	TH_RESULT(a1->present && a1->cfg.mode == SL_APP_SAFE &&
			  d[SL_ACC_BLOCKING] + d[SL_ACC_KERNEL_FIONREAD] +
					  d[SL_ACC_ACCELERATED] >= n &&
			  (keeps || (!ok && !d[SL_ACC_ACCELERATED])),
		  name, "see the line above");
}

static void check_conns(void)
{
	const char *name = "conns: a live captured connection is listed with its admission reason and its original destination";
	const char *name2 = "conns: an uncaptured connect is listed with its reason (loopback)";
	struct sockaddr_in la = { .sin_family = AF_INET };
	socklen_t llen = sizeof(la);
	char script[512], want[64];
	char *app_argv[] = { "python3", "-c", script, NULL };
	char *conns[] = { (char *)th_sidelane_bin(), "conns", "--json",
			  "--pin-root", app.pin_root, NULL };
	char out[8192], dummy[256], reason[64];
	struct sl_adm_status adm;
	int lfd, st;
	__u64 end;
	pid_t pid;

	/* Python's socket with a timeout is non-blocking: admitted send-only
	 * where this kernel keeps FIONREAD, else kept out for it
	 */
	sl_adm_read(app.pin_root, &adm);
	snprintf(reason, sizeof(reason), "\"reason\":\"%s\"",
		 adm.cfg.kernel & SL_KERNEL_TCP_FIONREAD ?
			 sl_acc_reason_name[SL_ACC_ACCELERATED] :
			 sl_acc_reason_name[SL_ACC_KERNEL_FIONREAD]);
	/* A local listener of ours: the app's connect to it stays uncaptured. */
	la.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&la, sizeof(la)) || listen(lfd, 4) ||
	    getsockname(lfd, (struct sockaddr *)&la, &llen)) {
		th_fail(name, "listener: %s", strerror(errno));
		if (lfd >= 0)
			close(lfd);
		return;
	}
	snprintf(script, sizeof(script),
		 "import socket, time\n"
		 "s = socket.create_connection(('" NS_IP "', 7), 3)\n"
		 "s.sendall(b'x' * 10); s.recv(10)\n"
		 "l = socket.create_connection(('127.0.0.1', %u), 3)\n"
		 "time.sleep(5)\n", ntohs(la.sin_port));
	snprintf(want, sizeof(want), "\"dst\":\"127.0.0.1:%u\",\"reason\":\"loopback\"",
		 ntohs(la.sin_port));

	pid = fork();
	if (!pid)
		_exit(run_in(&app, app_argv, dummy, sizeof(dummy)) ? 1 : 0);
	/* until python has connected, exchanged and holds both (its start
	 * alone takes a second on a loaded machine)
	 */
	end = th_now_ms() + 4500;
	do {
		usleep(100 * 1000);
		st = run_in(NULL, conns, out, sizeof(out));
	} while (!(strstr(out, reason) && strstr(out, want)) && th_now_ms() < end);
	th_wait(pid, 8000);
	close(lfd);
	TH_RESULT(st == 0 && strstr(out, "\"captured_to\":\"" NS_IP ":7\"") &&
			  strstr(out, reason),
		  name, "exit %d: no %s in %s", st, reason, out);
	TH_RESULT(st == 0 && strstr(out, want), name2, "no '%s' in %s", want, out);
}

/* Bytes the sidelane log has now: later lines are read from there on. */
static long log_size(void)
{
	struct stat st;

	return stat(app.log, &st) ? 0 : st.st_size;
}

/* Count the lines holding what, from byte from on. */
static int log_count(long from, const char *what)
{
	FILE *f = fopen(app.log, "re");
	char line[1024];
	int n = 0;

	if (!f)
		return -1;
	fseek(f, from, SEEK_SET);
	while (fgets(line, sizeof(line), f))
		n += strstr(line, what) != NULL;
	fclose(f);
	return n;
}

#define SHORT_CLIENTS 4 /* processes */
#define SHORT_EACH 300 /* connections each */
#define SHORT_BYTES 100

/* Clients that connect, send a little and close at once, without reading:
 * the app socket is gone (and its TCP_CLOSE done) before the proxy has
 * necessarily accepted. Every byte must still reach the upstream, and the
 * proxy must always learn the original destination.
 */
static void check_short_clients(void)
{
	const char *name = "sidecar: connect, send 100 B, close at once: every byte reaches the upstream";
	const char *name2 = "sidecar: short clients: SO_ORIGINAL_DST answered for every one (no no-orig-dst)";
	const char *name3 = "sidecar: short clients: no original destination left keyed by address";
	unsigned long long want = (unsigned long long)SHORT_CLIENTS * SHORT_EACH;
	struct sl_cap_status cs0, cs1;
	pid_t pids[SHORT_CLIENTS];
	int i, bad = 0, noorig;
	long from = log_size();
	__u64 t_end;

	sl_cap_status(app.pin_root, &cs0);
	sink->bytes = sink->conns = 0;
	for (i = 0; i < SHORT_CLIENTS; i++) {
		pids[i] = fork();
		if (!pids[i]) {
			struct sockaddr_in a = { .sin_family = AF_INET,
						 .sin_port = htons(SINK_PORT) };
			char msg[SHORT_BYTES];
			int k, fd, fails = 0;

			memset(msg, 'x', sizeof(msg));
			inet_pton(AF_INET, NS_IP, &a.sin_addr);
			if (th_enter(&app))
				_exit(2);
			for (k = 0; k < SHORT_EACH; k++) {
				fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
				if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) ||
				    send(fd, msg, sizeof(msg), MSG_NOSIGNAL) != sizeof(msg))
					fails++;
				if (fd >= 0)
					close(fd);
			}
			_exit(fails ? 4 : 0);
		}
	}
	for (i = 0; i < SHORT_CLIENTS; i++)
		if (pids[i] < 0 || th_wait(pids[i], 30000))
			bad++;
	/* The proxy relays what it accepted; give it time to finish. */
	t_end = th_now_ms() + 10000;
	while (sink->conns < want && th_now_ms() < t_end)
		usleep(20 * 1000);
	usleep(100 * 1000);
	sl_cap_status(app.pin_root, &cs1);
	noorig = log_count(from, "no-orig-dst");
	th_info("short clients: %llu connections, sink got %llu B in %llu, "
		"SO_ORIGINAL_DST answered +%llu missed +%llu, no-orig-dst lines %d",
		want, sink->bytes, sink->conns,
		(unsigned long long)(cs1.stats.origdst_answered - cs0.stats.origdst_answered),
		(unsigned long long)(cs1.stats.origdst_missed - cs0.stats.origdst_missed),
		noorig);
	if (TH_CHECK(!bad, name, "%d client processes failed", bad) &&
	    TH_CHECK(sink->bytes == want * SHORT_BYTES && sink->conns == want, name,
		     "sink got %llu B in %llu connections, want %llu B in %llu",
		     sink->bytes, sink->conns, want * SHORT_BYTES, want))
		th_pass(name);
	TH_RESULT(noorig == 0 && cs1.stats.origdst_missed == cs0.stats.origdst_missed,
		  name2, "see the line above");
	/* Each record moved to the sidecar's socket or went with the app's
	 * close: nothing stays keyed by address.
	 */
	i = th_wait_entries(&app, SL_MAP_ORIG_BY_ADDR, 0, 3000);
	TH_RESULT(i == 0, name3, "%d entries left in " SL_MAP_ORIG_BY_ADDR, i);
}

/* Edits through the CLI work against the running sidelane (and do not wait
 * on their own lock), and a restart applies the config's policy.
 */
static void check_policy_edits(void)
{
	const char *name = "policy: add and del through the CLI while sidelane runs";
	char *add[] = { (char *)th_sidelane_bin(), "policy", "add", "41", "deny",
			NS_IP, "9999", "--pin-root", app.pin_root, NULL };
	char *del[] = { (char *)th_sidelane_bin(), "policy", "del", "41",
			"--pin-root", app.pin_root, NULL };
	char *list[] = { (char *)th_sidelane_bin(), "policy", "list", "--json",
			 "--pin-root", app.pin_root, NULL };
	char out[4096], listed[4096], after[4096];
	int st_add, st_del;

	st_add = run_in(NULL, add, out, sizeof(out));
	run_in(NULL, list, listed, sizeof(listed));
	st_del = run_in(NULL, del, out, sizeof(out));
	run_in(NULL, list, after, sizeof(after));
	if (TH_CHECK(st_add == 0 && strstr(listed, "\"id\":41"), name,
		     "add: exit %d, list %s", st_add, listed) &&
	    TH_CHECK(st_del == 0 && !strstr(after, "\"id\":41") &&
			     strstr(after, "\"id\":40"),
		     name, "del: exit %d, list %s", st_del, after))
		th_pass(name);
}

static int stop_sidelane(void)
{
	return th_env_detach(&app);
}

int main(void)
{
	const char *setup = "sidecar: setup: namespace, servers and sidelane run";
	static const size_t sizes[] = { 1, 65536, 1 << 20, 4 << 20 };
	struct sl_cap_status cs0, cs1;
	struct sl_adm_status adm0, adm1;
	struct sl_counters fp0, fp1;
	char cfgtext[512], child[PATH_MAX] = "";
	size_t i;
	int err;

	setvbuf(stdout, NULL, _IOLBF, 0);
	th_watchdog(120, "sidecar");
	snprintf(cfg_path, sizeof(cfg_path), "/tmp/sidelane-test-%d.yaml", (int)getpid());
	if (th_env_setup(&app, "sc-app", false) || th_env_setup(&side, "sc-side", false) ||
	    ns_setup() || pick_port(&outbound_port)) {
		th_fail(setup, "cgroups, namespace or port: %s", strerror(errno));
		goto out;
	}
	/* Rule 40 denies the namespace's port 8080: the bypass attempts. */
	snprintf(cfgtext, sizeof(cfgtext),
		 "capture:\n  outbound: \"127.0.0.1:%u\"\n"
		 "policy:\n  rules:\n    - id: 40\n      action: deny\n"
		 "      cidr: " NS_IP "/32\n      ports: [\"8080\"]\n",
		 outbound_port);
	if (write_file_str(cfg_path, cfgtext)) {
		th_fail(setup, "cgroups, namespace or config: %s", strerror(errno));
		goto out;
	}
	http_pid = in_ns(http_server);
	echo_pid = in_ns(echo_server);
	http6_pid = in_ns(http6_server);
	sink = mmap(NULL, sizeof(*sink), PROT_READ | PROT_WRITE,
		    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (!TH_CHECK(sink != MAP_FAILED, setup, "mmap: %s", strerror(errno)))
		goto out;
	sink_pid = in_ns(sink_server);
	if (!TH_CHECK(!wait_port(NS_IP, HTTP_PORT) && !wait_port(NS_IP, ECHO_PORT) &&
			      !wait_port(NS_IP6, HTTP_PORT) && !wait_port(NS_IP, SINK_PORT),
		      setup, "servers in %s did not come up", ns))
		goto out;
	err = start_sidelane(side.cgroup);
	if (!TH_CHECK(!err, setup, "sidelane run did not come up"))
		goto out;
	th_pass(setup);
	sl_cap_status(app.pin_root, &cs0);

	check_curl("sidecar: unmodified curl gets 200 through capture, sees the original peer");
	check_curl_url("sidecar: curl over IPv6 gets 200 through the [::1] listener",
		       "http://[" NS_IP6 "]/", NS_IP6);
	check_python_client();
	sl_fp_read_counters(app.pin_root, &fp0);
	sl_adm_read(app.pin_root, &adm0);
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		check_echo(sizes[i]);
	sl_fp_read_counters(app.pin_root, &fp1);
	sl_adm_read(app.pin_root, &adm1);
	check_default_admission(&fp0, &fp1, &adm0, &adm1, sizeof(sizes) / sizeof(sizes[0]));
	sl_cap_status(app.pin_root, &cs1);
	th_info("captured +%llu, SO_ORIGINAL_DST answered +%llu",
		(unsigned long long)(cs1.stats.reason[SL_CR_CAPTURED] - cs0.stats.reason[SL_CR_CAPTURED]),
		(unsigned long long)(cs1.stats.origdst_answered - cs0.stats.origdst_answered));
	TH_RESULT(cs1.stats.reason[SL_CR_CAPTURED] - cs0.stats.reason[SL_CR_CAPTURED] >= 7 &&
		  cs1.stats.origdst_answered - cs0.stats.origdst_answered >= 7,
		  "sidecar: counters prove every request went through sidelane",
		  "see the line above");
	check_short_clients();
	check_conns();
	check_bypass();
	check_policy_edits();
	check_bad_policy();
	check_bad_config();

	/* Loop avoidance with nothing but the mark: the proxy in the app's own
	 * cgroup. Without it, its upstream connect would be captured back to
	 * itself and the request would never complete.
	 */
	stop_sidelane();
	err = start_sidelane(app.cgroup);
	if (TH_CHECK(!err, "sidecar: loop avoidance: sidelane in the app's cgroup", "start")) {
		sl_cap_status(app.pin_root, &cs0);
		check_curl("sidecar: loop avoidance: proxy in the app's cgroup, SO_MARK keeps its upstream connect out");
		sl_cap_status(app.pin_root, &cs1);
		TH_RESULT(cs1.stats.reason[SL_CR_SIDECAR_OWN] > cs0.stats.reason[SL_CR_SIDECAR_OWN],
			  "sidecar: loop avoidance: the upstream connect was seen and left alone",
			  "sidecar_own did not grow");
	}
	/* Nested: the sidecar's cgroup below the app's (a pod cgroup with the
	 * sidecar container under it). The app's connect hooks run for it too.
	 */
	stop_sidelane();
	if (snprintf(child, sizeof(child), "%s/sidecar", app.cgroup) < (int)sizeof(child) &&
	    !mkdir(child, 0755)) {
		err = start_sidelane(child);
		if (TH_CHECK(!err, "sidecar: loop avoidance: sidelane in a cgroup below the app's",
			     "start")) {
			sl_cap_status(app.pin_root, &cs0);
			check_curl("sidecar: loop avoidance: proxy below the app's cgroup reaches the upstream");
			sl_cap_status(app.pin_root, &cs1);
			TH_RESULT(cs1.stats.reason[SL_CR_CAPTURED] - cs0.stats.reason[SL_CR_CAPTURED] == 1 &&
				  cs1.stats.reason[SL_CR_SIDECAR_OWN] > cs0.stats.reason[SL_CR_SIDECAR_OWN],
				  "sidecar: loop avoidance: below the app's cgroup, one capture, no loop",
				  "captured +%llu sidecar_own +%llu",
				  (unsigned long long)(cs1.stats.reason[SL_CR_CAPTURED] - cs0.stats.reason[SL_CR_CAPTURED]),
				  (unsigned long long)(cs1.stats.reason[SL_CR_SIDECAR_OWN] - cs0.stats.reason[SL_CR_SIDECAR_OWN]));
		}
		stop_sidelane();
		rmdir(child);
	}
out:
	stop_sidelane();
	if (child[0])
		rmdir(child);
	ns_teardown();
	th_env_teardown(&side);
	err = th_env_teardown(&app);
	TH_RESULT(!err, "sidecar: teardown: cgroups, pins and namespace removed", "%s",
		  strerror(-err));
	return th_summary();
}
