// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Integration test (tests/integ): inbound capture with sk_lookup
 * (user/loader/inbound.c, bpf/inbound.bpf.c). Two network namespaces made here, a
 * "pod" and a "peer", joined by a veth (198.18.81.0/30, 2001:db8:81::/64).
 * A worker thread enters the pod (setns) and runs the subtests there: real
 * TCP from the peer to the pod's app ports must reach the sidecar's listener,
 * loopback and uncaptured traffic the app's. Sockets of the peer are made by
 * switching the thread there for the socket() call only.
 * Namespaces and pins are removed on every exit path: by the test itself,
 * or, if it dies (watchdog, signal), by a reaper process waiting for it.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include "loader/pins.h"
#include "sidelane.h"
#include "loader/inbound_user.h"
#include "loader/fastpath_user.h"
#include "harness.h"

#define POD_IP "198.18.81.1"
#define PEER_IP "198.18.81.2"
#define POD_IP6 "2001:db8:81::1"
#define PEER_IP6 "2001:db8:81::2"
#define APP_PORT 8080 /* captured */
#define EXCL_PORT 8081 /* inside the captured range, excluded */
#define OTHER_PORT 9090 /* not captured */
#define SIDE_PORT 15006 /* the sidecar's inbound listener */
#define SIDE_DS_PORT 15007 /* a dual-stack one */
#define WAIT_MS 2000 /* for a connection that must come */
#define FAST_MS 1000 /* a refused connect must fail within this */

static const struct sl_port_range cap_ports[] = { { 8000, 8100 } };
static const struct sl_port_range cap_excl[] = { { EXCL_PORT, EXCL_PORT } };

static char pod_ns[32], peer_ns[32], pin[PATH_MAX];
static int pod_fd = -1, peer_fd = -1; /* namespace fds */
static pid_t reaper;
static int reaper_pipe = -1;

/* ---- namespaces and cleanup ------------------------------------------ */

static int run_cmd(const char *cmd)
{
	int st = system(cmd);

	return st == 0 ? 0 : -EIO;
}

/* Idempotent: what is already gone is skipped. The veth lives only inside
 * the two namespaces and goes with them.
 */
static void cleanup(void)
{
	char cmd[128];

	sl_in_detach(pin);
	rmdir(pin);
	snprintf(cmd, sizeof(cmd), "ip netns del %s 2>/dev/null; ip netns del %s 2>/dev/null",
		 pod_ns, peer_ns);
	run_cmd(cmd);
}

/* A child that runs cleanup() once the test process is gone, however it
 * went (the watchdog _exit()s without atexit handlers, a signal kills
 * outright): it waits for EOF on a pipe whose write end only the test holds.
 * Not close-on-exec, so that an `ip` command still running when the test
 * dies holds it too, and cannot create a namespace after the cleanup.
 */
static int start_reaper(void)
{
	int p[2];
	char c;

	if (pipe(p))
		return -errno;
	reaper = fork();
	if (reaper < 0)
		return -errno;
	if (!reaper) {
		/* Out of the test's process group: a kill of the group
		 * (timeout(1), Ctrl-C) must leave the reaper standing.
		 */
		setsid();
		signal(SIGINT, SIG_IGN);
		signal(SIGTERM, SIG_IGN);
		signal(SIGHUP, SIG_IGN);
		close(p[1]);
		while (read(p[0], &c, 1) < 0 && errno == EINTR)
			;
		cleanup();
		_exit(0);
	}
	close(p[0]);
	reaper_pipe = p[1];
	return 0;
}

static int ns_setup(void)
{
	char cmd[1024], path[64];
	int pid = getpid();

	snprintf(cmd, sizeof(cmd),
		 "ip netns add %1$s && ip netns add %2$s && "
		 "ip link add slinp%3$d netns %1$s type veth peer name slinq%3$d netns %2$s && "
		 "ip -n %1$s link set lo up && ip -n %1$s link set slinp%3$d up && "
		 "ip -n %1$s addr add " POD_IP "/30 dev slinp%3$d && "
		 /* nodad: usable at once, no duplicate address detection wait */
		 "ip -n %1$s addr add " POD_IP6 "/64 dev slinp%3$d nodad && "
		 "ip -n %2$s link set lo up && ip -n %2$s link set slinq%3$d up && "
		 "ip -n %2$s addr add " PEER_IP "/30 dev slinq%3$d && "
		 "ip -n %2$s addr add " PEER_IP6 "/64 dev slinq%3$d nodad",
		 pod_ns, peer_ns, pid);
	if (run_cmd(cmd))
		return -EIO;
	snprintf(path, sizeof(path), "/var/run/netns/%s", pod_ns);
	pod_fd = open(path, O_RDONLY | O_CLOEXEC);
	snprintf(path, sizeof(path), "/var/run/netns/%s", peer_ns);
	peer_fd = open(path, O_RDONLY | O_CLOEXEC);
	return pod_fd < 0 || peer_fd < 0 ? -errno : 0;
}

/* ---- sockets (the worker thread is in the pod) ----------------------- */

/* A socket of namespace ns (-1: the pod, where this thread is). */
static int ns_socket(int ns, int family)
{
	int fd, err;

	if (ns >= 0 && setns(ns, CLONE_NEWNET))
		return -errno;
	fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	err = fd < 0 ? -errno : 0;
	if (ns >= 0 && setns(pod_fd, CLONE_NEWNET)) {
		/* stranded in the peer: nothing after this would mean anything */
		th_fail("inbound: back into the pod", "setns: %s", strerror(errno));
		exit(1);
	}
	return err ?: fd;
}

static int listen_at(const char *ip, int port, int v6only)
{
	struct sockaddr_storage ss;
	int fd, one = 1, err;
	socklen_t len;

	err = th_sockaddr(ip, port, &ss, &len);
	if (err)
		return err;
	fd = ns_socket(-1, ss.ss_family);
	if (fd < 0)
		return fd;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only));
	if (bind(fd, (void *)&ss, len) || listen(fd, 16)) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

/* Connect from namespace ns (-1: the pod) to ip:port, waiting up to
 * WAIT_MS. The connected fd or -errno (-ETIMEDOUT); *ms: time it took.
 */
static int dial(int ns, const char *ip, int port, __u64 *ms)
{
	struct pollfd p = { .events = POLLOUT };
	struct sockaddr_storage ss;
	__u64 t0 = th_now_ms();
	socklen_t len, el = sizeof(int);
	int err, soerr = 0;

	err = th_sockaddr(ip, port, &ss, &len);
	if (err)
		return err;
	p.fd = ns_socket(ns, ss.ss_family);
	if (p.fd < 0)
		return p.fd;
	if (connect(p.fd, (void *)&ss, len) && errno != EINPROGRESS)
		err = -errno;
	else if (poll(&p, 1, WAIT_MS) != 1)
		err = -ETIMEDOUT;
	else if (getsockopt(p.fd, SOL_SOCKET, SO_ERROR, &soerr, &el) || soerr)
		err = -(soerr ?: errno);
	if (ms)
		*ms = th_now_ms() - t0;
	if (err) {
		close(p.fd);
		return err;
	}
	return p.fd;
}

/* A connection waiting on listener lfd, within timeout_ms; fd or -errno. */
static int take(int lfd, int timeout_ms)
{
	struct pollfd p = { .fd = lfd, .events = POLLIN };
	int fd;

	if (poll(&p, 1, timeout_ms) != 1)
		return -ETIMEDOUT;
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* Nothing waits on listener lfd (what does is taken and closed). */
static bool nothing_on(int lfd)
{
	int fd = take(lfd, 0);

	if (fd >= 0)
		close(fd);
	return fd == -ETIMEDOUT;
}

static bool sock_is(int fd, bool local, const char *ip, int port)
{
	struct sockaddr_storage got, want;
	socklen_t gl = sizeof(got), wl;

	if (th_sockaddr(ip, port, &want, &wl))
		return false;
	if (local ? getsockname(fd, (void *)&got, &gl) :
		    getpeername(fd, (void *)&got, &gl))
		return false;
	if (!port) /* any port: compare the address only */
		((struct sockaddr_in *)&got)->sin_port = 0;
	return gl == wl && !memcmp(&got, &want, wl);
}

/* Connect from ns to ip:port and send a line: true when the line arrives on
 * a connection accepted from want and nothing waits on not (-1: unchecked).
 * *acc: the accepted socket, for more checks (caller closes), or NULL.
 */
static bool lands(const char *name, int ns, const char *ip, int port, int want,
		  int not, int *acc)
{
	char msg[64], buf[64] = "";
	int c, s = -1;
	ssize_t n = 0;
	bool ok;

	snprintf(msg, sizeof(msg), "hello %s port %d", ip, port);
	c = dial(ns, ip, port, NULL);
	if (c >= 0 && send(c, msg, strlen(msg), MSG_NOSIGNAL) < 0)
		c = -errno;
	if (c >= 0)
		s = take(want, WAIT_MS);
	if (s >= 0) {
		struct pollfd p = { .fd = s, .events = POLLIN };

		if (poll(&p, 1, WAIT_MS) == 1)
			n = recv(s, buf, sizeof(buf) - 1, MSG_DONTWAIT);
	}
	ok = TH_CHECK(c >= 0, name, "connect to %s:%d: %s", ip, port, strerror(-c)) &&
	     TH_CHECK(s >= 0, name, "nothing reached the expected listener: %s",
		      strerror(-s)) &&
	     TH_CHECK(n == (ssize_t)strlen(msg) && !memcmp(buf, msg, n), name,
		      "read %zd bytes \"%s\", want \"%s\"", n, buf, msg) &&
	     TH_CHECK(not < 0 || nothing_on(not), name,
		      "a connection also reached the other listener");
	if (c >= 0)
		close(c);
	if (acc && ok)
		*acc = s;
	else if (s >= 0)
		close(s);
	return ok;
}

/* ---- counters --------------------------------------------------------- */

static struct sl_in_status want; /* counters every check expects */

static bool counters_ok(const char *name)
{
	struct sl_in_status st;
	int err = sl_in_status(pin, &st);

	return TH_CHECK(!err, name, "sl_in_status: %s", strerror(-err)) &&
	       TH_CHECK(st.steered == want.steered && st.passed == want.passed &&
				st.loopback == want.loopback &&
				st.local_src == want.local_src &&
				st.no_listener == want.no_listener &&
				st.assign_err == want.assign_err,
			name,
			"counters steered %llu passed %llu loopback %llu local_src %llu "
			"no_listener %llu assign_err %llu, want %llu %llu %llu %llu %llu %llu",
			st.steered, st.passed, st.loopback, st.local_src,
			st.no_listener, st.assign_err, want.steered, want.passed,
			want.loopback, want.local_src, want.no_listener,
			want.assign_err);
}

/* The step's counters are as expected: pass. */
static void pass_if_counted(const char *name)
{
	if (counters_ok(name))
		th_pass(name);
}

static __u32 link_id(void)
{
	struct bpf_link_info info = {};
	__u32 len = sizeof(info);
	int fd = sl_pin_open(pin, SL_PIN_LINK_SK_LOOKUP);

	if (fd < 0)
		return 0;
	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		info.id = 0;
	close(fd);
	return info.id;
}

static int attach(int fd4, int fd6, bool fail_open)
{
	struct sl_in_opts o = {
		.ports = cap_ports, .n_ports = 1,
		.exclude = cap_excl, .n_exclude = 1,
		.listen_fd4 = fd4, .listen_fd6 = fd6,
		.fail_open = fail_open,
	};

	return sl_in_attach(pin, &o);
}

/* attach() by a child process that then exits, as a sidecar that stops
 * without detaching: what it pinned must outlive it. Forked from the worker
 * thread, the child is in the pod too.
 */
static int attach_and_exit(int fd4, int fd6, bool fail_open)
{
	pid_t pid;
	int st;

	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (!pid)
		_exit(-attach(fd4, fd6, fail_open));
	st = th_wait(pid, 5000);
	return st > 0 ? -st : st;
}

/* ---- subtests (in the pod) -------------------------------------------- */

enum { APP4, APP_EXCL, APP_OTHER, APP6, SIDE4, SIDE6, SIDE_DS, N_FDS };
static int fds[N_FDS];
static __u32 first_link;

static bool t_attach(void)
{
	const char *name = "inbound: attach (by a process that exits); the peer's "
			   "connection to podIP:8080 reaches the sidecar, whose socket "
			   "says podIP:8080";
	struct sl_in_status st = {};
	int err, acc = -1;
	bool ok;

	err = attach_and_exit(fds[SIDE4], -1, false);
	if (!TH_CHECK(!err, name, "sl_in_attach: %s", strerror(-err)))
		return false;
	first_link = link_id();
	err = sl_in_status(pin, &st);
	if (!TH_CHECK(!err && st.attached && st.n_ports == 100 && st.listener4 &&
			      !st.listener6 && first_link,
		      name, "status %d: attached %d ports %u listeners %d/%d link %u", err,
		      st.attached, st.n_ports, st.listener4, st.listener6, first_link) ||
	    !counters_ok(name))
		return false;
	ok = lands(name, peer_fd, POD_IP, APP_PORT, fds[SIDE4], fds[APP4], &acc) &&
	     TH_CHECK(sock_is(acc, true, POD_IP, APP_PORT), name,
		      "getsockname of the accepted socket is not " POD_IP ":8080") &&
	     TH_CHECK(sock_is(acc, false, PEER_IP, 0), name,
		      "getpeername of the accepted socket is not " PEER_IP);
	if (acc >= 0)
		close(acc);
	want.steered++;
	if (ok && counters_ok(name))
		th_pass(name);
	return ok;
}

static void t_loopback(void)
{
	const char *name = "inbound: loopback: 127.0.0.1:8080 from inside the pod "
			   "reaches the app (ingress_ifindex is lo)";
	const char *name_own = "inbound: podIP:8080 from inside the pod reaches the app "
			       "(over lo, but ingress_ifindex is the veth's)";

	if (lands(name, -1, "127.0.0.1", APP_PORT, fds[APP4], fds[SIDE4], NULL)) {
		want.loopback++;
		pass_if_counted(name);
	}
	if (lands(name_own, -1, POD_IP, APP_PORT, fds[APP4], fds[SIDE4], NULL)) {
		want.local_src++;
		pass_if_counted(name_own);
	}
}

static void t_uncaptured(void)
{
	const char *name = "inbound: uncaptured 9090 and excluded 8081 (in 8000-8100) "
			   "reach the app";

	if (lands(name, peer_fd, POD_IP, OTHER_PORT, fds[APP_OTHER], fds[SIDE4], NULL) &&
	    lands(name, peer_fd, POD_IP, EXCL_PORT, fds[APP_EXCL], fds[SIDE4], NULL)) {
		want.passed += 2;
		pass_if_counted(name);
	}
}

/* The sidecar's listener closes: a captured connection is refused at once
 * (SK_DROP finds no socket, TCP answers with a RST), not left to time out.
 */
static void t_fail_closed(void)
{
	const char *name = "inbound: fail closed: no sidecar listener, ECONNREFUSED in "
			   "under 1 s, the app gets nothing";
	const char *name_open = "inbound: fail open: no sidecar listener, the app gets it";
	struct sl_in_status st = {};
	__u64 ms = 0;
	int c, err;

	close(fds[SIDE4]);
	fds[SIDE4] = -1;
	err = sl_in_status(pin, &st);
	c = dial(peer_fd, POD_IP, APP_PORT, &ms);
	if (c >= 0)
		close(c);
	want.no_listener++;
	if (TH_CHECK(!err && !st.listener4, name,
		     "the closed listener is still in the sockmap") &&
	    TH_CHECK(c == -ECONNREFUSED && ms < FAST_MS, name,
		     "connect: %s after %llu ms, want ECONNREFUSED under %d ms",
		     c >= 0 ? "connected" : strerror(-c), (unsigned long long)ms,
		     FAST_MS) &&
	    TH_CHECK(nothing_on(fds[APP4]), name, "the app got a connection") &&
	    counters_ok(name)) {
		th_info("refused after %llu ms", (unsigned long long)ms);
		th_pass(name);
	}

	err = attach(-1, -1, true);
	if (TH_CHECK(!err, name_open, "sl_in_attach: %s", strerror(-err)) &&
	    lands(name_open, peer_fd, POD_IP, APP_PORT, fds[APP4], -1, NULL)) {
		want.no_listener++;
		pass_if_counted(name_open);
	}
}

static void t_restart(void)
{
	const char *name = "inbound: restart: a new listener, the pinned link reused, "
			   "steering works, counters kept";
	const char *name_other = "inbound: an attach from another network namespace "
				 "is refused with EEXIST";
	int err, acc = -1;

	fds[SIDE4] = listen_at("0.0.0.0", SIDE_PORT, 0);
	err = fds[SIDE4] < 0 ? fds[SIDE4] : attach(fds[SIDE4], -1, false);
	if (TH_CHECK(!err, name, "listen/sl_in_attach: %s", strerror(-err)) &&
	    TH_CHECK(link_id() == first_link, name, "link id %u, was %u", link_id(),
		     first_link) &&
	    lands(name, peer_fd, POD_IP, APP_PORT, fds[SIDE4], fds[APP4], &acc)) {
		close(acc);
		/* counted on from before: the pinned maps were reused */
		want.steered++;
		pass_if_counted(name);
	}

	if (setns(peer_fd, CLONE_NEWNET)) {
		th_fail(name_other, "setns: %s", strerror(errno));
		return;
	}
	err = attach(-1, -1, false);
	if (setns(pod_fd, CLONE_NEWNET)) {
		th_fail(name_other, "back into the pod: %s", strerror(errno));
		exit(1);
	}
	if (TH_CHECK(err == -EEXIST, name_other, "sl_in_attach: %s", strerror(-err)) &&
	    TH_CHECK(link_id() == first_link, name_other, "the link changed") &&
	    counters_ok(name_other))
		th_pass(name_other);
}

static void t_ipv6(void)
{
	const char *name = "inbound: IPv6: the peer's connection to [podIP6]:8080 "
			   "reaches the v6 sidecar listener";
	const char *name_lo = "inbound: IPv6: [::1]:8080 and [podIP6]:8080 from inside the "
			      "pod reach the app";
	const char *name_v6only = "inbound: IPv4 with only an IPV6_V6ONLY listener: "
				  "assign error, refused";
	const char *name_ds = "inbound: IPv4 and IPv6 with only a dual-stack listener "
			      "(slot 1): both steered";
	struct sl_in_status st = {};
	int err, c, acc = -1;

	fds[APP6] = listen_at("::", APP_PORT, 1);
	fds[SIDE6] = listen_at("::", SIDE_PORT, 1);
	err = fds[APP6] < 0 ? fds[APP6] : fds[SIDE6] < 0 ? fds[SIDE6] : 0;
	if (!err)
		err = attach(fds[SIDE4], fds[SIDE6], false);
	if (!err)
		err = sl_in_status(pin, &st);
	if (TH_CHECK(!err && st.listener4 && st.listener6, name,
		     "listen/attach/status: %s, listeners %d/%d", strerror(-err),
		     st.listener4, st.listener6) &&
	    lands(name, peer_fd, POD_IP6, APP_PORT, fds[SIDE6], fds[APP6], &acc) &&
	    TH_CHECK(sock_is(acc, true, POD_IP6, APP_PORT), name,
		     "getsockname of the accepted socket is not [" POD_IP6 "]:8080")) {
		want.steered++;
		pass_if_counted(name);
	}
	if (acc >= 0)
		close(acc);
	acc = -1;

	if (lands(name_lo, -1, "::1", APP_PORT, fds[APP6], fds[SIDE6], NULL) &&
	    lands(name_lo, -1, POD_IP6, APP_PORT, fds[APP6], fds[SIDE6], NULL)) {
		want.loopback++;
		want.local_src++;
		pass_if_counted(name_lo);
	}

	err = attach(-1, fds[SIDE6], false);
	c = err ? err : dial(peer_fd, POD_IP, APP_PORT, NULL);
	if (c >= 0)
		close(c);
	want.assign_err++;
	if (TH_CHECK(c == -ECONNREFUSED, name_v6only, "connect: %s",
		     c >= 0 ? "connected" : strerror(-c)) &&
	    TH_CHECK(nothing_on(fds[APP4]), name_v6only,
		     "the app got a connection") &&
	    counters_ok(name_v6only))
		th_pass(name_v6only);

	fds[SIDE_DS] = listen_at("::", SIDE_DS_PORT, 0);
	err = fds[SIDE_DS] < 0 ? fds[SIDE_DS] : attach(-1, fds[SIDE_DS], false);
	if (TH_CHECK(!err, name_ds, "listen/sl_in_attach: %s", strerror(-err)) &&
	    lands(name_ds, peer_fd, POD_IP, APP_PORT, fds[SIDE_DS], fds[APP4], &acc) &&
	    TH_CHECK(sock_is(acc, true, "::ffff:" POD_IP, APP_PORT), name_ds,
		     "getsockname is not [::ffff:" POD_IP "]:8080") &&
	    lands(name_ds, peer_fd, POD_IP6, APP_PORT, fds[SIDE_DS], fds[APP6], NULL)) {
		want.steered += 2;
		pass_if_counted(name_ds);
	}
	if (acc >= 0)
		close(acc);
}

static bool pin_dir_empty(void)
{
	DIR *d = opendir(pin);
	struct dirent *e;
	int n = 0;

	if (!d)
		return false;
	while ((e = readdir(d)))
		n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	closedir(d);
	return !n;
}

static void t_detach(void)
{
	const char *name = "inbound: detach removes its pins and the link; steering stops";
	struct sl_in_status st;
	int err, link_fd;

	err = sl_in_detach(pin);
	link_fd = bpf_link_get_fd_by_id(first_link);
	if (link_fd >= 0)
		close(link_fd);
	if (TH_CHECK(!err, name, "sl_in_detach: %s", strerror(-err)) &&
	    TH_CHECK(pin_dir_empty(), name, "%s is not empty", pin) &&
	    TH_CHECK(link_fd < 0, name, "link id %u still exists", first_link) &&
	    TH_CHECK(sl_in_status(pin, &st) == -ENOENT, name, "status still finds pins") &&
	    lands(name, peer_fd, POD_IP, APP_PORT, fds[APP4], fds[SIDE_DS], NULL) &&
	    TH_CHECK(!sl_in_detach(pin), name, "a second detach failed"))
		th_pass(name);
}

static void *worker(void *arg)
{
	const char *name = "inbound: probe: sk_lookup is available";
	char why[256];
	int i, err;

	(void)arg;
	err = sl_in_probe(why, sizeof(why));
	if (err) {
		th_skip(name, why);
		return NULL;
	}
	th_pass(name);
	if (setns(pod_fd, CLONE_NEWNET)) {
		th_fail("inbound: enter the pod", "setns: %s", strerror(errno));
		return NULL;
	}
	fds[APP4] = listen_at("0.0.0.0", APP_PORT, 0);
	fds[APP_EXCL] = listen_at("0.0.0.0", EXCL_PORT, 0);
	fds[APP_OTHER] = listen_at("0.0.0.0", OTHER_PORT, 0);
	fds[SIDE4] = listen_at("0.0.0.0", SIDE_PORT, 0);
	for (i = APP4; i <= SIDE4; i++)
		if (i != APP6 && fds[i] < 0) {
			th_fail("inbound: listeners in the pod", "%s", strerror(-fds[i]));
			return NULL;
		}
	if (t_attach()) {
		t_loopback();
		t_uncaptured();
		t_fail_closed();
		t_restart();
		t_ipv6();
	}
	t_detach();
	return NULL;
}

int main(void)
{
	const char *name = "inbound: teardown: namespaces (the veth with them) and pin folder removed";
	struct stat sb;
	char path[64];
	pthread_t th;
	int i, err;

	setvbuf(stdout, NULL, _IOLBF, 0);
	th_watchdog(25, "inbound");
	for (i = 0; i < N_FDS; i++)
		fds[i] = -1;
	snprintf(pod_ns, sizeof(pod_ns), "slin-pod-%d", (int)getpid());
	snprintf(peer_ns, sizeof(peer_ns), "slin-peer-%d", (int)getpid());
	snprintf(pin, sizeof(pin), SL_BPFFS_DEFAULT "/sidelane-test-inbound-%d",
		 (int)getpid());
	err = start_reaper();
	if (!err)
		err = ns_setup();
	if (!TH_CHECK(!err, "inbound: setup", "namespaces and veth: %s", strerror(-err)))
		goto out;
	err = pthread_create(&th, NULL, worker, NULL);
	if (!TH_CHECK(!err, "inbound: setup", "pthread_create: %s", strerror(err)))
		goto out;
	pthread_join(th, NULL);
out:
	for (i = 0; i < N_FDS; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	if (pod_fd >= 0)
		close(pod_fd);
	if (peer_fd >= 0)
		close(peer_fd);
	cleanup();
	/* The reaper sees EOF, finds nothing left and exits. */
	if (reaper_pipe >= 0)
		close(reaper_pipe);
	if (reaper > 0)
		th_wait(reaper, 5000);
	snprintf(path, sizeof(path), "/var/run/netns/%s", pod_ns);
	err = !stat(path, &sb);
	snprintf(path, sizeof(path), "/var/run/netns/%s", peer_ns);
	err |= !stat(path, &sb);
	TH_RESULT(!err && stat(pin, &sb) && errno == ENOENT, name,
		  "a namespace or %s is left", pin);
	th_watchdog(0, NULL);
	return th_summary();
}
