// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Live configuration (issue 15): the real `sidelane run` follows its
 * --config, laid out as a Kubernetes ConfigMap volume mounts it
 * (sidelane.yaml -> ..data/sidelane.yaml, ..data -> a timestamped folder,
 * swapped by renaming a new ..data over it), while a client loop in the
 * app's cgroup keeps echoing through the sidecar. Checked:
 * - a swap is picked up by the folder's watch alone (no signal), and
 *   `sidelane reload` reports what it did;
 * - capture, policy and the proxy's timeouts each change with the new
 *   version, and what the version says is what new connections get: the
 *   loop's connections go direct when loopback is excluded, a denied port
 *   fails connect() with EPERM, a connection accepted before a shorter
 *   idle timeout keeps its own;
 * - a key that cannot change and a broken file are refused with file:line,
 *   the running version stays (status, /stats, /metrics say which);
 * - the access log turned on, moved to another file, turned off; a
 *   missing folder is refused;
 * - proxy.max_conns lowered and raised reaches new connections; past the
 *   open files limit it is refused;
 * - an ambassador comes, changes upstream, moves and goes, and a
 *   connection made through it before stays up; a taken port is refused;
 * - TLS files named before they exist (a Secret late behind its
 *   ConfigMap) are refused, then taken by the retry timer with no event;
 * - a storm of swaps and reloads leaks no descriptor and little memory;
 * - through all of it the loop's every connection was echoed byte-exact.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "harness.h"
#include "lib/util.h"

#define MSG_LEN 8192 /* more than the smallest buffer_bytes */
#define IO_MS 5000
#define APPLY_MS 3000 /* a swap's settle time, a check, and slack */
#define RETRY_MS 15000 /* SL_RELOAD_RETRY_MS (10 s) and slack */
#define STORM 60 /* ..data swaps, 2 in 3 followed by a reload */
#define TEXT_MAX 4096
#define POD_IP "198.18.91.1"
#define FAR_IP "198.18.91.2" /* the far echo servers, in a namespace */

static struct th_env env;
static char dir[64]; /* the ConfigMap volume */
static char pki[64]; /* the Secret's files */
static char link_path[128]; /* dir/sidelane.yaml */
static char logdir[80]; /* the access logs */
static char ns[32], veth[16];
static int admin_port, echo_port, other_port, swaps;

/* What the loop child counts, in shared memory. */
static struct loop {
	volatile int stop, pause, paused;
	volatile long ok, failed;
	volatile int last_err;
} *loop;
static pid_t loop_pid;

static void cleanup(void *arg)
{
	(void)arg;
	if (loop_pid > 0) {
		kill(loop_pid, SIGKILL);
		waitpid(loop_pid, NULL, 0);
		loop_pid = 0;
	}
	if (dir[0])
		th_rm_tree(dir);
	if (logdir[0])
		th_rm_tree(logdir);
	th_netns_del(ns);
}

/* ---- the config: one text per version, swapped in as the kubelet does ---- */

struct version {
	int idle_ms; /* proxy.idle_timeout_ms */
	bool skip_far; /* capture.exclude_cidrs FAR_IP/32 */
	bool deny_other; /* a policy rule denying other_port */
	int workers; /* proxy.workers (cannot change) */
	const char *cert; /* tls.cert/key base name in pki ("a") */
	/* accounting.access_log: a path, a name in logdir; NULL: none */
	const char *alog;
	int amb_port; /* an ambassador on 127.0.0.1:amb_port (0: none) */
	unsigned int max_conns; /* proxy.max_conns (0: the default) */
	unsigned int bufsz; /* proxy.buffer_bytes (0: the default) */
	int amb_up; /* to FAR_IP:amb_up */
	const char *broken; /* appended as is */
};

static void render(const struct version *v, char *text, size_t len)
{
	char amb[128] = "", max[64] = "";
	size_t at;

	if (v->max_conns || v->bufsz)
		snprintf(max, sizeof(max), "  max_conns: %u\n  buffer_bytes: %u\n",
			 v->max_conns ? v->max_conns : 4096,
			 v->bufsz ? v->bufsz : 65536);
	if (v->amb_port)
		snprintf(amb, sizeof(amb),
			 "  ambassadors:\n    - { listen: \"127.0.0.1:%d\", "
			 "upstream: \"" FAR_IP ":%d\" }\n",
			 v->amb_port, v->amb_up);
	at = snprintf(text, len,
		      "capture:\n  enabled: true\n"
		      "  exclude_cidrs: [%s]\n"
		      "proxy:\n  workers: %d\n  idle_timeout_ms: %d\n%s%s"
		      "tls:\n  cert: \"%s\"\n  key: \"%s\"\n  ca: \"%s\"\n"
		      "admin:\n  listen: \"127.0.0.1:%d\"\n  drain_timeout_ms: 0\n"
		      "accounting:\n  access_log: \"%s%s%s\"\n",
		      v->skip_far ? "\"" FAR_IP "/32\"" : "",
		      v->workers ? v->workers : 1, v->idle_ms ? v->idle_ms : 60000,
		      amb, max,
		      th_pki_path(pki, v->cert ? v->cert : "a", "pem"),
		      th_pki_path(pki, v->cert ? v->cert : "a", "key"),
		      th_pki_path(pki, "ca", "pem"), admin_port,
		      /* none, a path, or a name in logdir */
		      !v->alog || v->alog[0] == '/' ? "" : logdir,
		      !v->alog || v->alog[0] == '/' ? "" : "/",
		      v->alog ? v->alog : "");
	if (v->deny_other)
		at += snprintf(text + at, len - at,
			       "policy:\n  rules:\n"
			       "    - { id: 7, action: deny, cidr: " FAR_IP "/32, "
			       "ports: [\"%d\"] }\n", other_port);
	if (v->broken)
		snprintf(text + at, len - at, "%s", v->broken);
}

/* The version sidelane names text by. */
static void version_of(const char *text, char out[17])
{
	th_config_version(text, strlen(text), out);
}

/* A new timestamped folder holding text, then ..data renamed over to it:
 * the reader of dir/sidelane.yaml sees the old file or the new, whole.
 */
static int swap_in(const char *text)
{
	char sub[160], file[192], tmp[160], data[160];
	int err;

	snprintf(sub, sizeof(sub), "%s/..2026_12_07_%04d", dir, ++swaps);
	snprintf(file, sizeof(file), "%s/sidelane.yaml", sub);
	snprintf(tmp, sizeof(tmp), "%s/..data_tmp", dir);
	snprintf(data, sizeof(data), "%s/..data", dir);
	if (mkdir(sub, 0755))
		return -errno;
	err = th_write_text(file, text);
	if (!err && symlink(strrchr(sub, '/') + 1, tmp))
		err = -errno;
	if (!err && rename(tmp, data))
		err = -errno;
	return err;
}

/* ---- reading the running state ---- */

static char resp[256 * 1024];

/* "key":value inside the /stats object "obj", or -1. */
static long long stat_num(const char *obj, const char *key)
{
	return th_stat_num(admin_port, obj, key);
}

/* Does /stats' config.version read v (within ms)? */
static bool running(const char *v, int ms)
{
	char want[64];
	__u64 end = th_now_ms() + ms;

	snprintf(want, sizeof(want), "\"config\":{\"version\":\"%s\"", v);
	do {
		if (th_http(admin_port, "GET", "/stats", NULL, resp,
			    sizeof(resp)) == 200 && strstr(resp, want))
			return true;
		usleep(50 * 1000);
	} while (th_now_ms() < end);
	return false;
}

/* `sidelane reload`: its exit status, its output in out. */
static int reload_cmd(char *out, size_t len)
{
	char *argv[] = { (char *)th_sidelane_bin(), "reload", "--pin-root",
			 env.pin_root, NULL };

	return th_run(NULL, NULL, argv, out, len, 10000);
}

/* ---- the client loop: a child in the app's cgroup ---- */

static int echo_at(const char *ip, int port, int seed)
{
	char out[MSG_LEN], in[MSG_LEN];
	int fd, err = 0;

	th_fill(out, sizeof(out), seed);
	fd = th_connect(ip, port);
	if (fd < 0)
		return fd;
	if (sl_io_full(fd, out, sizeof(out), false, IO_MS) ||
	    shutdown(fd, SHUT_WR) ||
	    sl_io_full(fd, in, sizeof(in), true, IO_MS))
		err = -EIO;
	else if (memcmp(in, out, sizeof(in)))
		err = -EBADMSG;
	close(fd);
	return err;
}

static int echo_once(int port, int seed)
{
	return echo_at(FAR_IP, port, seed);
}

static int loop_start(void)
{
	loop = mmap(NULL, sizeof(*loop), PROT_READ | PROT_WRITE,
		    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (loop == MAP_FAILED)
		return loop = NULL, -errno;
	loop_pid = fork();
	if (loop_pid < 0)
		return -errno;
	if (!loop_pid) {
		int i, err;

		if (th_enter(&env))
			_exit(1);
		for (i = 1; !loop->stop; i++) {
			loop->paused = loop->pause;
			if (loop->paused) {
				usleep(10 * 1000);
				continue;
			}
			err = echo_once(echo_port, i);
			if (err) {
				loop->failed++;
				loop->last_err = err;
			} else {
				loop->ok++;
			}
		}
		_exit(0);
	}
	return 0;
}

/* Hold the loop between connections (and wait until it is held and the
 * proxy has closed its last one), or let it go.
 */
static void loop_pause(bool on)
{
	int i;

	loop->pause = on;
	for (i = 0; on && !loop->paused && i < 500; i++)
		usleep(10 * 1000);
	if (on)
		usleep(300 * 1000);
}

/* ---- the checks ---- */

static char text[TEXT_MAX];
static struct version cur; /* what the file says now */

/* Render v, swap it in, wait until it runs. */
static bool apply(const char *name, const struct version *v)
{
	char want[17];

	render(v, text, sizeof(text));
	version_of(text, want);
	if (!TH_CHECK(!swap_in(text), name, "swap: %s", strerror(errno)))
		return false;
	cur = *v;
	return TH_CHECK(running(want, APPLY_MS), name,
			"version %s not running after %d ms (log %s)", want,
			APPLY_MS, env.log);
}

/* The proxy's accepted count moves while the loop runs, or not. */
static long long accepted_over(int ms)
{
	long long a = stat_num("proxy", "accepted"), b;

	usleep(ms * 1000);
	b = stat_num("proxy", "accepted");
	return a < 0 || b < 0 ? -1 : b - a;
}

static void check_swap_and_capture(void)
{
	const char *name = "reload: a ..data swap is picked up without a signal: "
			   "capture excluding the far address takes the loop "
			   "off the proxy, and back";
	struct version v = cur;
	long long through, direct, back;
	long ok0 = loop->ok;

	through = accepted_over(500);
	v.skip_far = true;
	if (!apply(name, &v))
		return;
	usleep(200 * 1000); /* connections accepted before it finish */
	direct = accepted_over(500);
	v.skip_far = false;
	if (!apply(name, &v))
		return;
	back = accepted_over(500);
	TH_RESULT(through > 0 && direct == 0 && back > 0 && loop->ok > ok0,
		  name, "proxy accepted per 500 ms: %lld, then %lld excluded, "
		  "then %lld; loop ok %ld -> %ld", through, direct, back, ok0,
		  loop->ok);
}

/* connect() to other_port from the app's cgroup: 0 or -errno. */
static int connect_other(void)
{
	int err;

	if (th_enter(&env))
		return -EPERM - 1000;
	err = echo_once(other_port, 99);
	th_leave(&env);
	return err;
}

static void check_policy(void)
{
	const char *name = "reload: a policy rule added by the file denies at "
			   "connect (EPERM), removed by the file allows again";
	struct version v = cur;
	int before, denied, after;

	before = connect_other();
	v.deny_other = true;
	if (!apply(name, &v))
		return;
	denied = connect_other();
	v.deny_other = false;
	if (!apply(name, &v))
		return;
	after = connect_other();
	TH_RESULT(!before && denied == -EPERM && !after, name,
		  "connect to the other port: %d, with the rule %d, after %d",
		  before, denied, after);
}

static void check_idle(void)
{
	const char *name = "reload: a shorter idle timeout reaches new "
			   "connections only: one accepted before it stays open";
	char buf[16];
	struct version v = cur;
	int old_fd = -1, new_fd = -1;
	ssize_t old_r = -1, new_r = -1;
	int new_errno = 0;

	if (th_enter(&env)) {
		th_fail(name, "enter: %s", strerror(errno));
		return;
	}
	old_fd = th_connect(FAR_IP, echo_port);
	th_leave(&env);
	v.idle_ms = 300;
	if (!apply(name, &v))
		goto out;
	if (th_enter(&env) == 0) {
		new_fd = th_connect(FAR_IP, echo_port);
		th_leave(&env);
	}
	if (old_fd < 0 || new_fd < 0) {
		th_fail(name, "connect: %d %d", old_fd, new_fd);
		goto out;
	}
	/* one echo on each, then idle well past 300 ms */
	if (write(old_fd, "x", 1) != 1 || write(new_fd, "y", 1) != 1 ||
	    sl_io_full(old_fd, buf, 1, true, IO_MS) ||
	    sl_io_full(new_fd, buf, 1, true, IO_MS)) {
		th_fail(name, "first echo failed");
		goto out;
	}
	usleep(1200 * 1000);
	if (write(old_fd, "z", 1) == 1 && !sl_io_full(old_fd, buf, 1, true, IO_MS))
		old_r = 1;
	/* the proxy closed it (EOF), not merely nothing to read */
	new_r = recv(new_fd, buf, sizeof(buf), MSG_DONTWAIT);
	new_errno = new_r < 0 ? errno : 0;
	TH_RESULT(old_r == 1 && (new_r == 0 || new_errno == ECONNRESET) &&
			  stat_num("proxy", "idle-timeout") > 0,
		  name, "old connection echoed after 1.2 s idle: %s; new one: "
		  "recv %zd (%s)", old_r == 1 ? "yes" : "no", new_r,
		  strerror(new_errno));
out:
	if (old_fd >= 0)
		close(old_fd);
	if (new_fd >= 0)
		close(new_fd);
	v.idle_ms = 0;
	apply(name, &v);
}

/* The line of text holding what, 1-based (0: none). */
static int line_of(const char *t, const char *what)
{
	const char *p = strstr(t, what);
	int line = 1;

	if (!p)
		return 0;
	for (; t < p; t++)
		line += *t == '\n';
	return line;
}

/* The file holds v, which must be refused with why at file:line (of
 * what); the running version and the loop carry on; status, /stats and
 * /metrics say so.
 */
static void check_refused(const char *name, const struct version *v,
			  const char *what, const char *why)
{
	char out[4096], want[256], run_v[17], bad_v[17], status[8192];
	char *argv[] = { (char *)th_sidelane_bin(), "status", "--pin-root",
			 env.pin_root, NULL };
	long long refused0 = stat_num("config", "reloads_refused");
	long ok0 = loop->ok;
	int rc;

	render(&cur, text, sizeof(text));
	version_of(text, run_v);
	render(v, text, sizeof(text));
	version_of(text, bad_v);
	snprintf(want, sizeof(want), "%s:%d: %s", link_path,
		 line_of(text, what), why);
	if (!TH_CHECK(!swap_in(text), name, "swap: %s", strerror(errno)))
		return;
	rc = reload_cmd(out, sizeof(out));
	th_run(NULL, NULL, argv, status, sizeof(status), 10000);
	usleep(300 * 1000);
	TH_RESULT(rc == 1 && strstr(out, want) && strstr(out, bad_v) &&
			  running(run_v, 0) &&
			  stat_num("config", "reloads_refused") == refused0 + 1 &&
			  stat_num("config", "pending") == 1 &&
			  strstr(status, "the file's version is refused") &&
			  loop->ok > ok0,
		  name, "reload exit %d, said: %s; want \"%s\" and %s; status: "
		  "%s", rc, out, want, bad_v, status);
	/* back to the running text: nothing pending */
	render(&cur, text, sizeof(text));
	swap_in(text);
	reload_cmd(out, sizeof(out));
}

static long file_size(const char *name)
{
	char path[160];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", logdir, name);
	return stat(path, &st) ? -1 : (long)st.st_size;
}

static void check_access_log(void)
{
	const char *name = "reload: the access log turned on in a run started "
			   "without one, moved to another file (the loop's "
			   "lines follow it), turned off (they stop); a folder "
			   "that does not exist is refused";
	long a0, a1, b0, b1, b2, b3;
	struct version v = cur;
	char out[1024], want[192];
	int rc;

	v.alog = "a.log";
	if (!apply(name, &v))
		return;
	usleep(500 * 1000);
	a0 = file_size("a.log");
	v.alog = "b.log";
	if (!apply(name, &v))
		return;
	usleep(300 * 1000); /* lines of connections closed before it */
	a1 = file_size("a.log");
	b0 = file_size("b.log");
	usleep(700 * 1000);
	b1 = file_size("b.log");
	v.alog = NULL;
	if (!apply(name, &v))
		return;
	usleep(300 * 1000);
	b2 = file_size("b.log");
	usleep(700 * 1000);
	b3 = file_size("b.log");
	v.alog = "/nonexistent-sidelane-test/x.log";
	render(&v, text, sizeof(text));
	/* the refusal points at the key */
	snprintf(want, sizeof(want), "%s:%d: accounting.access_log", link_path,
		 line_of(text, "access_log:"));
	rc = swap_in(text) ? -1 : reload_cmd(out, sizeof(out));
	TH_RESULT(a0 > 0 && file_size("a.log") == a1 && b1 > b0 && b0 >= 0 &&
			  b3 == b2 && rc == 1 && strstr(out, want) &&
			  strstr(out, "No such file or directory") &&
			  stat_num("config", "pending") == 1,
		  name, "a.log %ld then %ld B, b.log %ld -> %ld B, off %ld -> "
		  "%ld B; a missing folder: reload exit %d: %s (want %s)", a0,
		  a1, b0, b1, b2, b3, rc, out, want);
	/* back to the running text */
	render(&cur, text, sizeof(text));
	swap_in(text);
	reload_cmd(out, sizeof(out));
}

/* One echo from the app's cgroup to 127.0.0.1:port: 0 or -errno. */
static int echo_local(int port)
{
	int err;

	if (th_enter(&env))
		return -EPERM - 1000;
	err = echo_at("127.0.0.1", port, port);
	th_leave(&env);
	return err;
}

/* One byte echoed on an open connection: true if it came back. */
static bool still_echoes(int fd)
{
	char c = 'k';

	return fd >= 0 && write(fd, &c, 1) == 1 &&
	       !sl_io_full(fd, &c, 1, true, IO_MS) && c == 'k';
}

static void check_ambassadors(void)
{
	const char *name = "reload: an ambassador added, re-pointed, moved, "
			   "refused on a taken port and removed live; a "
			   "connection made through it before stays up";
	int p1 = th_free_port(), p2 = th_free_port(), held = -1;
	int added, down, back, moved, old_port, refused_rc, gone;
	struct version v = cur;
	char out[1024];

	if (p2 == p1)
		p2 = th_free_port();
	v.amb_port = p1;
	v.amb_up = echo_port;
	if (!apply(name, &v))
		return;
	added = echo_local(p1);
	if (!th_enter(&env)) {
		held = th_connect("127.0.0.1", p1);
		th_leave(&env);
	}
	/* to a port nothing listens on: new connections fail, the held one
	 * (already upstream) does not
	 */
	v.amb_up = 1;
	if (!apply(name, &v))
		goto out;
	down = echo_local(p1);
	v.amb_up = echo_port;
	if (!apply(name, &v))
		goto out;
	back = echo_local(p1);
	/* moved: the new port is served, the old one refused */
	v.amb_port = p2;
	if (!apply(name, &v))
		goto out;
	moved = echo_local(p2);
	old_port = echo_local(p1);
	/* a port that is taken (the admin endpoint's): refused whole */
	v.amb_port = admin_port;
	render(&v, text, sizeof(text));
	refused_rc = swap_in(text) ? -1 : reload_cmd(out, sizeof(out));
	v.amb_port = 0;
	if (!apply(name, &v))
		goto out;
	gone = echo_local(p2);
	TH_RESULT(!added && down && !back && !moved && old_port == -ECONNREFUSED &&
			  refused_rc == 1 && strstr(out, "Address already in use") &&
			  gone == -ECONNREFUSED && still_echoes(held),
		  name, "added %d, to a closed upstream %d, back %d, moved %d, "
		  "old port %d, taken port: exit %d (%s), removed %d, held "
		  "connection %s", added, down, back, moved, old_port,
		  refused_rc, out, gone, held >= 0 ? "open" : "none");
out:
	if (held >= 0)
		close(held);
}

static void check_max_conns(void)
{
	const char *name = "reload: proxy.max_conns lowered to 1 refuses a "
			   "second connection (too-many), raised back serves it; "
			   "past the open files limit it is refused";
	long long too_many0 = stat_num("proxy", "too-many");
	int held = -1, second = -1, third = -1, rc = 0;
	unsigned long long big = 0;
	struct version v = cur;
	struct rlimit rl;
	bool held_ok = false;
	char out[1024] = "";

	loop_pause(true); /* its connections would count */
	v.max_conns = 1;
	if (!apply(name, &v))
		goto out;
	if (!th_enter(&env)) {
		held = th_connect(FAR_IP, echo_port);
		held_ok = still_echoes(held);
		second = echo_once(echo_port, 7);
		th_leave(&env);
	}
	v.max_conns = 0;
	if (!apply(name, &v))
		goto out;
	if (!th_enter(&env)) {
		third = echo_once(echo_port, 8);
		th_leave(&env);
	}
	/* what this process's hard limit (sidelane's too) cannot hold */
	if (!getrlimit(RLIMIT_NOFILE, &rl))
		big = (rl.rlim_max - 1024) / 2 + 1;
	if (big && big <= 1000000) {
		v.max_conns = (unsigned int)big;
		render(&v, text, sizeof(text));
		rc = swap_in(text) ? -1 : reload_cmd(out, sizeof(out));
		render(&cur, text, sizeof(text));
		swap_in(text);
		reload_cmd(out + strlen(out), sizeof(out) - strlen(out));
	} else {
		th_info("hard open files limit %llu: proxy.max_conns cannot "
			"exceed it, not checked", (unsigned long long)rl.rlim_max);
	}
	TH_RESULT(held_ok && second && !third &&
			  stat_num("proxy", "too-many") > too_many0 &&
			  (!big || big > 1000000 ||
			   (rc == 1 && strstr(out, "open files"))),
		  name, "held %s, second %d, after raising %d, too-many %lld -> "
		  "%lld; %llu: exit %d: %s", held_ok ? "echoes" : "failed",
		  second, third, too_many0, stat_num("proxy", "too-many"), big,
		  rc, out);
out:
	if (held >= 0)
		close(held);
	loop_pause(false);
}

static void check_tls_late(void)
{
	const char *name = "reload: TLS files named before they exist are "
			   "refused, then taken by the retry timer when they "
			   "appear (no event in the config's folder)";
	struct version v = cur;
	char out[1024], want[17];
	long long pending;
	int rc;

	v.cert = "late";
	render(&v, text, sizeof(text));
	version_of(text, want);
	if (!TH_CHECK(!swap_in(text), name, "swap: %s", strerror(errno)))
		return;
	rc = reload_cmd(out, sizeof(out));
	pending = stat_num("config", "pending");
	/* the Secret arrives: the key, then the certificate, each renamed in */
	if (!TH_CHECK(!th_pki_swap(pki, th_pki_path(pki, "b", "key"),
				   th_pki_path(pki, "late", "key")) &&
			      !th_pki_swap(pki, th_pki_path(pki, "b", "pem"),
					   th_pki_path(pki, "late", "pem")),
		      name, "copying the late files"))
		return;
	cur = v;
	TH_RESULT(rc == 1 && strstr(out, "late.pem") && pending == 1 &&
			  running(want, RETRY_MS) &&
			  stat_num("config", "pending") == 0,
		  name, "reload exit %d (%s), pending %lld; then version %s "
		  "running within %d ms: %s", rc, out, pending, want, RETRY_MS,
		  running(want, 0) ? "yes" : "no");
}

static void check_storm(void)
{
	const char *name = "reload: a storm of swaps and reloads under the loop "
			   "(buffer_bytes 4 KiB and 64 KiB in turn): the last "
			   "version runs, no descriptor left, memory flat";
	long long applied0 = stat_num("config", "reloads"), applied;
	struct version v = cur;
	int fds0, fds, i, rc = 0;
	long rss0, rss;
	char out[1024], want[17];

	loop_pause(true); /* its connections' descriptors out of the count */
	fds0 = th_proc_fds(env.sidelane);
	rss0 = th_proc_kib(env.sidelane, "RssAnon");
	loop_pause(false);
	for (i = 0; i < STORM; i++) {
		/* every one a new version; buffers of two sizes */
		v.idle_ms = 40000 + i;
		v.deny_other = i % 2;
		v.bufsz = i % 2 ? 4096 : 0;
		render(&v, text, sizeof(text));
		if (swap_in(text))
			break;
		/* most are read one by one, the rest settle into the next */
		if (i % 3 != 2)
			rc |= reload_cmd(out, sizeof(out));
		else
			usleep(20 * 1000);
	}
	cur = v;
	render(&cur, text, sizeof(text));
	version_of(text, want);
	applied = running(want, APPLY_MS) ? stat_num("config", "reloads") : -1;
	loop_pause(true);
	fds = th_proc_fds(env.sidelane);
	rss = th_proc_kib(env.sidelane, "RssAnon");
	loop_pause(false);
	th_info("storm: %d swaps, %lld applied, fds %d -> %d, RssAnon %ld -> "
		"%ld KiB", i, applied - applied0, fds0, fds, rss0, rss);
	TH_RESULT(i == STORM && !rc && applied - applied0 >= STORM * 2 / 3 &&
			  fds == fds0 && rss - rss0 < TH_MEM_SLACK_KIB(4096),
		  name, "%d swaps, reload status %d, %lld applied, fds %d -> %d, "
		  "RssAnon %ld -> %ld KiB", i, rc, applied - applied0, fds0,
		  fds, rss0, rss);
}

static int make_pki(void)
{
	int err = th_pki_dir(pki, sizeof(pki), "reload");

	err = err ?: th_pki_ca(pki, "ca");
	err = err ?: th_pki_leaf(pki, "a", "ca", 0x1501,
				 "URI:spiffe://reload.test/sidecar");
	err = err ?: th_pki_leaf(pki, "b", "ca", 0x1502,
				 "URI:spiffe://reload.test/sidecar");
	if (err)
		th_pki_log(pki);
	return err;
}

/* The volume: dir/sidelane.yaml -> ..data/sidelane.yaml. */
static int make_volume(void)
{
	if (mkdir(dir, 0755))
		return -errno;
	snprintf(link_path, sizeof(link_path), "%s/sidelane.yaml", dir);
	if (symlink("..data/sidelane.yaml", link_path))
		return -errno;
	render(&cur, text, sizeof(text));
	return swap_in(text);
}

int main(void)
{
	const char *setup = "reload: setup: echo servers in a namespace, PKI, a "
			    "ConfigMap-style volume, sidelane run following it, "
			    "the client loop";
	char first[17];
	int err, echo_fd = -1, other_fd = -1;

	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	th_watchdog(240, "reload");
	snprintf(dir, sizeof(dir), "/tmp/sidelane-test-reload-%d", (int)getpid());
	snprintf(logdir, sizeof(logdir), "%s-log", dir);
	err = th_cleanup_push(cleanup, NULL);
	err = err ?: make_pki();
	if (!err && mkdir(logdir, 0755))
		err = -errno;
	snprintf(ns, sizeof(ns), "sl-reload-%d", (int)getpid());
	snprintf(veth, sizeof(veth), "slr%d", (int)getpid() % 100000);
	err = err ?: th_netns_add(ns, veth, POD_IP, FAR_IP);
	echo_fd = err ? -1 : th_netns_listen(ns, "0.0.0.0", 256, &echo_port);
	err = err ?: echo_fd < 0 ? echo_fd : th_echo_on(echo_fd);
	other_fd = err ? -1 : th_netns_listen(ns, "0.0.0.0", 64, &other_port);
	err = err ?: other_fd < 0 ? other_fd : th_echo_on(other_fd);
	err = err ?: th_env_setup_opts(&env, "reload",
				       &(struct th_env_opts){ .sidecar = true });
	if (!err)
		th_env_log_path(&env);
	admin_port = err ? 0 : th_free_port();
	err = err ?: admin_port < 0 ? admin_port : make_volume();
	if (!err) {
		render(&cur, text, sizeof(text));
		version_of(text, first);
		/* written through the link, as it is: the same text */
		err = th_env_run_config(&env, link_path, text);
	}
	err = err ?: loop_start();
	if (!TH_RESULT(!err && running(first, APPLY_MS), setup, "%s (log %s)",
		       strerror(-err), env.log))
		goto out;

	check_swap_and_capture();
	check_policy();
	check_idle();
	check_refused("reload: a key that cannot change (proxy.workers) is "
		      "refused with file:line; the running version stays",
		      &(struct version){ .workers = 2, .idle_ms = cur.idle_ms },
		      "workers:", "proxy.workers: cannot change while sidelane runs");
	check_refused("reload: a broken file is refused with file:line; the "
		      "running version stays",
		      &(struct version){ .broken = "limits:\n  max_conns: [1]\n" },
		      "max_conns:", "limits.max_conns");
	check_access_log();
	check_ambassadors();
	check_max_conns();
	check_tls_late();
	check_storm();

	loop->stop = 1;
	TH_RESULT(th_wait(loop_pid, 10000) == 0 && loop->ok > 100 &&
			  loop->failed == 0,
		  "reload: the client loop through the sidecar: every connection "
		  "echoed byte-exact through every change",
		  "ok %ld, failed %ld (last %s)", loop->ok, loop->failed,
		  strerror(-loop->last_err));
	loop_pid = 0;
out:
	th_env_teardown(&env);
	th_cleanup_pop(cleanup, NULL, true);
	th_pki_dir_remove(pki);
	if (other_fd >= 0)
		close(other_fd);
	if (echo_fd >= 0)
		close(echo_fd);
	return th_summary();
}
