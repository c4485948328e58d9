// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Integration test (tests/integ): bring your own proxy (proxy.external).
 * An unmodified haproxy (the Debian package, tcp mode) runs in the sidecar
 * cgroup where sidelane's own proxy would: `sidelane run` loads capture,
 * policy, inbound steering, the fast path and accounting, and opens no
 * listener of its own.
 *
 * Outbound: the app connects to FAR_IP in a network namespace this test
 * creates; capture sends it to haproxy's frontend on loopback, haproxy asks
 * SO_ORIGINAL_DST (answered by sidelane's getsockopt program) and its
 * "server 0.0.0.0:0" connects there. Inbound: a client in that namespace
 * dials POD_IP on the app's port; sk_lookup hands the SYN to haproxy's
 * inbound listener, which the kernel took into sl_in_listeners when
 * haproxy called listen(); haproxy relays to the app on loopback.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include "sidelane.h"
#include "lib/util.h"
#include "loader/capture_user.h"
#include "loader/inbound_user.h"
#include "harness.h"

#define POD_IP "198.18.83.1"
#define FAR_IP "198.18.83.2"
#define OUT_LEN (4 << 20) /* bytes each way through haproxy, outbound */
#define IN_LEN (1 << 20) /* and inbound */
#define IO_MS 20000
#define READY_MS 5000
#define MARK 0x534c /* capture.mark, its default (`sidelane config`) */

static struct th_env env;
static char ns[32], veth[16], cfg_path[64], hap_cfg[64], hap_log[64];
static int out_port, in_port, app_port, far_port;
static pid_t hap_pid;

static void cleanup(void *arg)
{
	(void)arg;
	if (hap_pid > 0) {
		kill(hap_pid, SIGKILL);
		waitpid(hap_pid, NULL, 0);
	}
	hap_pid = 0;
	th_netns_del(ns);
	unlink(cfg_path);
	unlink(hap_cfg);
	unlink(hap_log);
}

/* haproxy as the sidecar: tcp mode, one frontend per direction, its
 * defaults otherwise (threads: one per CPU; no splice). The outbound
 * server 0.0.0.0:0 is "the destination the client asked for", which
 * haproxy learns with SO_ORIGINAL_DST on an IPv4 socket.
 */
static int haproxy_config(void)
{
	char text[1024];

	snprintf(text, sizeof(text),
		 "defaults\n  mode tcp\n  timeout connect 5s\n"
		 "  timeout client 30s\n  timeout server 30s\n"
		 "frontend outbound\n  bind 127.0.0.1:%d\n"
		 /* not captured (no original destination): 0.0.0.0:0 would
		  * dial this frontend itself, again and again
		  */
		 "  tcp-request connection reject if { dst 127.0.0.0/8 }\n"
		 "  default_backend original_dst\n"
		 "backend original_dst\n  server orig 0.0.0.0:0\n"
		 "frontend inbound\n  bind 0.0.0.0:%d\n  default_backend app\n"
		 "backend app\n  server app 127.0.0.1:%d\n",
		 out_port, in_port, app_port);
	return th_write_text(hap_cfg, text);
}

/* Is something listening on TCP port (any address, IPv4 or IPv6)? Asked
 * of /proc, not by connecting: a connection to the outbound frontend that
 * capture did not redirect has no original destination, and haproxy's
 * 0.0.0.0:0 server would then dial the frontend itself, again and again.
 */
static bool listening(int port)
{
	static const char *const files[] = { "/proc/net/tcp", "/proc/net/tcp6" };
	char line[512], want[16];
	bool found = false;
	size_t i;

	snprintf(want, sizeof(want), ":%04X ", port);
	for (i = 0; i < 2 && !found; i++) {
		FILE *f = fopen(files[i], "r");

		while (f && !found && fgets(line, sizeof(line), f)) {
			char *local = strchr(line, ':'); /* after "  sl" */

			local = local ? strchr(local + 1, ':') : NULL;
			/* local address, remote address, state 0A: LISTEN */
			found = local && !strncmp(local, want, strlen(want)) &&
				strstr(local, " 0A ");
		}
		if (f)
			fclose(f);
	}
	return found;
}

/* haproxy -db in the sidecar cgroup; ready when both frontends listen. */
static int haproxy_start(void)
{
	__u64 end = th_now_ms() + READY_MS;
	int fd;

	hap_pid = fork();
	if (hap_pid < 0)
		return -errno;
	if (!hap_pid) {
		fd = open(hap_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (fd < 0 || th_enter_sidecar(&env) || dup2(fd, 1) < 0 ||
		    dup2(fd, 2) < 0)
			_exit(126);
		execlp("haproxy", "haproxy", "-db", "-f", hap_cfg, (char *)NULL);
		_exit(127);
	}
	while (!(listening(out_port) && listening(in_port)) &&
	       th_now_ms() < end && !waitpid(hap_pid, NULL, WNOHANG))
		usleep(20 * 1000);
	return listening(out_port) && listening(in_port) ? 0 : -ETIMEDOUT;
}

static void haproxy_stop(void)
{
	if (hap_pid <= 0)
		return;
	kill(hap_pid, SIGTERM);
	if (th_wait(hap_pid, 5000) == -ETIMEDOUT) {
		kill(hap_pid, SIGKILL);
		waitpid(hap_pid, NULL, 0);
	}
	hap_pid = 0;
}

static int start(void)
{
	char text[1024];

	snprintf(text, sizeof(text),
		 "proxy:\n  external: true\n"
		 "capture:\n  enabled: true\n  outbound: \"127.0.0.1:%d\"\n"
		 "  include_cidrs: [\"" FAR_IP "/32\"]\n"
		 "inbound:\n  enabled: true\n  mode: sk_lookup\n"
		 "  listen: \"0.0.0.0:%d\"\n  ports: [\"%d\"]\n"
		 "fastpath:\n  app_sockets: send\n"
		 "admin:\n  listen: \"\"\n",
		 out_port, in_port, app_port);
	return th_env_run_config(&env, cfg_path, text);
}

struct writer {
	int fd;
	const unsigned char *buf;
	size_t len;
	int err;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;

	w->err = sl_io_full(w->fd, (void *)w->buf, w->len, false, IO_MS);
	shutdown(w->fd, SHUT_WR);
	return NULL;
}

/* ---- checks ---- */

static void check_listener(const char *name)
{
	struct sl_in_status st;
	int err = sl_in_status(env.pin_root, &st);

	TH_RESULT(!err && st.attached && st.listener4, name,
		  "sl_in_status %d, sk_lookup %d, IPv4 listener %d", err,
		  st.attached, st.listener4);
}

/* The app (a non-blocking socket: send mode admits it) sends OUT_LEN
 * bytes from a writer thread and reads the echo: byte-exact, captured,
 * SO_ORIGINAL_DST answered for haproxy, and the app -> haproxy hop
 * redirected in the kernel.
 */
/* shared: the proxy runs in the app's cgroup and marks its upstream
 * sockets; its own connect must then be let through for the mark (counted
 * sidecar_own), and the app -> proxy hop is an app pair, left on TCP in
 * send mode.
 */
static void check_outbound(const char *name, const unsigned char *data,
			   unsigned char *back, bool shared)
{
	struct sl_cap_status c0, c1;
	struct sl_counters f0, f1;
	struct writer w = { .buf = data, .len = OUT_LEN };
	pthread_t t;
	int fd, err;

	sl_cap_status(env.pin_root, &c0);
	th_counters(&env, &f0);
	fd = th_connect_nb(FAR_IP, far_port);
	if (!TH_CHECK(fd >= 0, name, "connect " FAR_IP ":%d: %s", far_port,
		      strerror(-fd)))
		return;
	w.fd = fd;
	if (!TH_CHECK(!pthread_create(&t, NULL, writer_main, &w), name, "thread")) {
		close(fd);
		return;
	}
	err = sl_io_full(fd, back, OUT_LEN, true, IO_MS);
	pthread_join(t, NULL);
	close(fd);
	usleep(200 * 1000);
	sl_cap_status(env.pin_root, &c1);
	th_counters(&env, &f1);
	th_info("%s: captured +%llu, SO_ORIGINAL_DST answered +%llu, marked "
		"(the proxy's own) +%llu, redirected messages +%llu", name,
		(unsigned long long)(c1.stats.reason[SL_CR_CAPTURED] -
				     c0.stats.reason[SL_CR_CAPTURED]),
		(unsigned long long)(c1.stats.origdst_answered -
				     c0.stats.origdst_answered),
		(unsigned long long)(c1.stats.reason[SL_CR_SIDECAR_OWN] -
				     c0.stats.reason[SL_CR_SIDECAR_OWN]),
		(unsigned long long)(f1.redirect_ok - f0.redirect_ok));
	if (TH_CHECK(!err && !w.err && !memcmp(data, back, OUT_LEN), name,
		     "read %s, write %s, echo %s", strerror(-err),
		     strerror(-w.err),
		     memcmp(data, back, OUT_LEN) ? "differs" : "right") &&
	    TH_CHECK(c1.stats.reason[SL_CR_CAPTURED] > c0.stats.reason[SL_CR_CAPTURED] &&
			     c1.stats.origdst_answered > c0.stats.origdst_answered,
		     name, "not captured, or the proxy's SO_ORIGINAL_DST not answered") &&
	    TH_CHECK(shared || f1.redirect_ok > f0.redirect_ok, name,
		     "no message redirected: the app->haproxy hop took TCP") &&
	    TH_CHECK(!shared || c1.stats.reason[SL_CR_SIDECAR_OWN] >
					c0.stats.reason[SL_CR_SIDECAR_OWN],
		     name, "the proxy's marked connect was not let through as its own"))
		th_pass(name);
}

/* A client in the far namespace dials POD_IP on the app port; sk_lookup
 * steers it to haproxy, haproxy to the app's echo on loopback.
 */
static void check_inbound(const char *name)
{
	char cmd[1024], out[256];
	char *argv[] = { "ip", "netns", "exec", ns, "python3", "-c", cmd, NULL };
	struct sl_in_status s0, s1;
	int rc;

	snprintf(cmd, sizeof(cmd),
		 "import hashlib, os, socket\n"
		 "d = os.urandom(%d)\n"
		 "s = socket.create_connection(('" POD_IP "', %d), 5)\n"
		 "s.settimeout(10)\n"
		 "s.sendall(d)\n"
		 "s.shutdown(socket.SHUT_WR)\n"
		 "b = bytearray()\n"
		 "while (x := s.recv(65536)): b += x\n"
		 "print('same' if bytes(b) == d else 'differs %%d' %% len(b))\n",
		 IN_LEN, app_port);
	sl_in_status(env.pin_root, &s0);
	rc = th_run(NULL, NULL, argv, out, sizeof(out), IO_MS);
	sl_in_status(env.pin_root, &s1);
	out[strcspn(out, "\n")] = '\0';
	TH_RESULT(!rc && !strcmp(out, "same") && s1.steered > s0.steered, name,
		  "client exit %d: '%s'; steered +%llu", rc, out,
		  (unsigned long long)(s1.steered - s0.steered));
}

/* The app dials haproxy's outbound frontend itself (loopback: not
 * captured, so no original destination): the documented guard rejects it
 * at once, where 0.0.0.0:0 would have dialed the frontend again and again.
 */
static void check_no_loop(void)
{
	const char *name = "byop: a connection to haproxy's frontend that capture did not send is rejected, not looped";
	struct pollfd p = { .events = POLLIN };
	char c;
	int fd = th_connect("127.0.0.1", out_port);
	ssize_t r = -1;

	p.fd = fd;
	if (fd >= 0 && poll(&p, 1, 3000) == 1)
		r = recv(fd, &c, 1, 0);
	TH_RESULT(fd >= 0 && (r == 0 || (r < 0 && errno == ECONNRESET)), name,
		  "connect %d, then recv %zd (%s)", fd, r, strerror(errno));
	if (fd >= 0)
		close(fd);
}

/* Policy holds at the app's connect(), before the proxy sees anything. */
static void check_policy(void)
{
	const char *name = "byop: a policy deny fails the app's connect with EPERM; "
			   "haproxy never sees it";
	char port[16], out[512];
	char *add[] = { (char *)th_sidelane_bin(), "policy", "add", "77", "deny",
			FAR_IP "/32", port, "--pin-root", env.pin_root, NULL };
	char *del[] = { (char *)th_sidelane_bin(), "policy", "del", "77",
			"--pin-root", env.pin_root, NULL };
	struct sl_cap_status c0, c1;
	int rc, fd;

	snprintf(port, sizeof(port), "%d", far_port);
	sl_cap_status(env.pin_root, &c0);
	rc = th_run(NULL, NULL, add, out, sizeof(out), 10000);
	fd = rc ? -1 : th_connect(FAR_IP, far_port);
	th_run(NULL, NULL, del, out, sizeof(out), 10000);
	sl_cap_status(env.pin_root, &c1);
	TH_RESULT(!rc && fd == -EPERM &&
			  c1.stats.reason[SL_CR_DENIED] > c0.stats.reason[SL_CR_DENIED] &&
			  c1.stats.reason[SL_CR_CAPTURED] == c0.stats.reason[SL_CR_CAPTURED],
		  name, "policy add %d, connect %d (%s), denied +%llu, captured +%llu",
		  rc, fd, fd < 0 ? strerror(-fd) : "connected",
		  (unsigned long long)(c1.stats.reason[SL_CR_DENIED] -
				       c0.stats.reason[SL_CR_DENIED]),
		  (unsigned long long)(c1.stats.reason[SL_CR_CAPTURED] -
				       c0.stats.reason[SL_CR_CAPTURED]));
	if (fd >= 0)
		close(fd);
}

static void check_status(void)
{
	const char *name = "byop: status says the proxy is external";
	char *argv[] = { (char *)th_sidelane_bin(), "status", "--pin-root",
			 env.pin_root, NULL };
	static char out[65536];
	int rc = th_run(NULL, NULL, argv, out, sizeof(out), 10000);

	TH_RESULT(!rc && strstr(out, "proxy: external"), name, "exit %d: %.600s",
		  rc, out);
}

/* ---- a proxy in the app's cgroup (Envoy's layout in a pod) ---- */

/* A transparent proxy as Envoy runs in deploy/k8s/envoy.yaml, in python:
 * in the app's cgroup, SO_ORIGINAL_DST on what it accepts on the outbound
 * port, SO_MARK = capture.mark on its upstream sockets before connect(),
 * the inbound port relayed to the app on loopback.
 */
static const char py_proxy[] =
	"import socket, struct, sys, threading\n"
	"out_port, in_port, app_port, mark = map(int, sys.argv[1:5])\n"
	"def pipe(a, b):\n"
	"    try:\n"
	"        while (d := a.recv(65536)): b.sendall(d)\n"
	"        b.shutdown(socket.SHUT_WR)\n"
	"    except OSError: pass\n"
	"def relay(c, dst):\n"
	"    u = socket.socket()\n"
	"    u.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, mark)\n"
	"    u.connect(dst)\n"
	"    t = threading.Thread(target=pipe, args=(u, c))\n"
	"    t.start(); pipe(c, u); t.join(); u.close(); c.close()\n"
	"def serve(l, where):\n"
	"    while True:\n"
	"        c, _ = l.accept()\n"
	"        threading.Thread(target=relay, args=(c, where(c)), daemon=True).start()\n"
	"def original(c):\n"
	"    port, ip = struct.unpack('!2xH4s8x', c.getsockopt(socket.SOL_IP, 80, 16))\n"
	"    return (socket.inet_ntoa(ip), port)\n"
	"lo = socket.create_server(('127.0.0.1', out_port))\n"
	"li = socket.create_server(('0.0.0.0', in_port))\n"
	"threading.Thread(target=serve, args=(li, lambda c: ('127.0.0.1', app_port)), daemon=True).start()\n"
	"serve(lo, original)\n";

/* sidelane again with the app's cgroup as the sidecar cgroup too (what
 * `sidelane-k8s pod-run --foreign-proxy` passes), the python proxy in the
 * app's cgroup: captured, answered, let through by its mark, steered.
 */
static void shared_cgroup(const unsigned char *data, unsigned char *back)
{
	const char *name = "byop/shared: sidelane restarted with the app's cgroup as the "
			   "sidecar's, a marking proxy in the app's cgroup";
	char saved[PATH_MAX], a[4][16];
	__u64 end;
	int err;

	haproxy_stop();
	/* the pinned links serve the old sidecar cgroup: detach first */
	err = th_env_detach(&env);
	memcpy(saved, env.sidecar_cgroup, sizeof(saved));
	memcpy(env.sidecar_cgroup, env.cgroup, sizeof(saved));
	env.detached = false;
	err = err ?: start();
	memcpy(env.sidecar_cgroup, saved, sizeof(saved));
	if (!TH_CHECK(!err, name, "restart: %s", strerror(-err)))
		return;
	snprintf(a[0], sizeof(a[0]), "%d", out_port);
	snprintf(a[1], sizeof(a[1]), "%d", in_port);
	snprintf(a[2], sizeof(a[2]), "%d", app_port);
	snprintf(a[3], sizeof(a[3]), "%d", MARK);
	hap_pid = fork(); /* this process is in the app's cgroup: so is it */
	if (!hap_pid) {
		execlp("python3", "python3", "-c", py_proxy, a[0], a[1], a[2], a[3],
		       (char *)NULL);
		_exit(127);
	}
	end = th_now_ms() + READY_MS;
	while (hap_pid > 0 && !(listening(out_port) && listening(in_port)) &&
	       th_now_ms() < end)
		usleep(20 * 1000);
	if (!TH_CHECK(hap_pid > 0 && listening(out_port) && listening(in_port),
		      name, "the python proxy does not listen"))
		return;
	th_pass(name);
	check_listener("byop/shared: the proxy's inbound listener, in the app's "
		       "cgroup, is taken at its listen()");
	check_outbound("byop/shared: outbound through the marking proxy: byte-exact, "
		       "SO_ORIGINAL_DST answered, its own connect not captured",
		       data, back, true);
	check_inbound("byop/shared: inbound steered to the proxy in the app's "
		      "cgroup, relayed to the app byte-exact");
}

int main(void)
{
	const char *setup = "byop: setup: namespace, echo servers, sidelane run "
			    "(proxy.external), haproxy in the sidecar cgroup";
	unsigned char *data = malloc(OUT_LEN), *back = malloc(OUT_LEN);
	int err, far_fd;

	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	th_watchdog(120, "byop");
	snprintf(ns, sizeof(ns), "sl-byop-%d", (int)getpid());
	snprintf(veth, sizeof(veth), "slb%d", (int)getpid() % 100000);
	snprintf(cfg_path, sizeof(cfg_path), "/tmp/sidelane-test-byop-%d.yaml",
		 (int)getpid());
	snprintf(hap_cfg, sizeof(hap_cfg), "/tmp/sidelane-test-byop-%d.cfg",
		 (int)getpid());
	snprintf(hap_log, sizeof(hap_log), "/tmp/sidelane-test-byop-%d.log",
		 (int)getpid());
	err = data && back ? th_cleanup_push(cleanup, NULL) : -ENOMEM;
	if (!err && system("command -v haproxy >/dev/null 2>&1"))
		err = -ENOENT; /* make deps installs it */
	err = err ?: th_netns_add(ns, veth, POD_IP, FAR_IP);
	/* the far end's echo, and the app's on loopback (its own cgroup: the
	 * test is not in the app's yet)
	 */
	far_fd = err ? -1 : th_netns_listen(ns, "0.0.0.0", 64, &far_port);
	err = err ?: th_echo_on(far_fd);
	err = err ?: th_echo_server(64, &app_port);
	err = err ?: th_env_setup_opts(&env, "byop",
				       &(struct th_env_opts){ .sidecar = true });
	if (!err) {
		th_env_log_path(&env);
		out_port = th_free_port();
		in_port = th_free_port();
		err = out_port < 0 ? out_port : in_port < 0 ? in_port : 0;
	}
	err = err ?: start();
	err = err ?: haproxy_config();
	err = err ?: haproxy_start();
	if (err)
		th_dump_log(hap_log);
	err = err ?: th_enter(&env);
	if (!TH_RESULT(!err, setup, "%s (log %s)", strerror(-err), env.log))
		goto out;
	th_fill(data, OUT_LEN, 83);

	check_listener("byop: haproxy's inbound listener is in sl_in_listeners "
		       "(taken at its listen())");
	check_outbound("byop: outbound through haproxy to the original destination: "
		       "byte-exact, SO_ORIGINAL_DST answered, app->haproxy in the kernel",
		       data, back, false);
	check_inbound("byop: inbound from the far namespace through haproxy to the "
		      "app: byte-exact, steered by sk_lookup");
	check_no_loop();
	check_policy();
	check_status();
	/* a restarted proxy listens again: the kernel takes the new listener */
	haproxy_stop();
	err = haproxy_start();
	if (TH_CHECK(!err, "byop: haproxy restarted: inbound works again",
		     "haproxy start: %s", strerror(-err)))
		check_inbound("byop: haproxy restarted: inbound works again");
	shared_cgroup(data, back);
out:
	haproxy_stop();
	th_leave(&env);
	err = th_env_teardown(&env);
	th_cleanup_pop(cleanup, NULL, true);
	TH_RESULT(!err, "byop: teardown: haproxy and sidelane stopped, cgroups, "
		  "pins and namespace removed", "%s", strerror(-err));
	free(data);
	free(back);
	return th_summary();
}
