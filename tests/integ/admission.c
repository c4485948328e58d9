// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Integration test (tests/integ): admission as an operator sees it, with the
 * real `sidelane run` (include/admission.h has the rule).
 * - The default (safe) says at start what it admits on this kernel; a
 *   blocking app socket and a non-blocking one to the sidecar are counted
 *   with their reasons in `conns`, `status` (text and JSON), /metrics and
 *   the access log.
 * - The sweep: sockets admitted both ways under the all mode (as an older
 *   build admitted every local socket) leave the sockhash when sidelane
 *   restarts in the default mode; one with redirected bytes unread waits
 *   until its reader has them, loses none, and then behaves as plain TCP
 *   (MSG_WAITALL waits for every byte).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include "sidelane.h"
#include "loader/admission_user.h"
#include "harness.h"

#define MSG_LEN 1000
#define UNREAD 4000 /* redirected into the reader before the restart */

static struct th_env env;
static char cfg_path[PATH_MAX], alog_path[PATH_MAX], log_path[PATH_MAX];
static int admin_port;

static void remove_files(void *arg)
{
	(void)arg;
	unlink(cfg_path);
	unlink(alog_path);
}

/* (Re)start `sidelane run` on env with fastpath.app_sockets mode. */
static int start(const char *mode)
{
	char text[PATH_MAX + 512];

	snprintf(text, sizeof(text),
		 "capture:\n  enabled: false\n"
		 "admin:\n  listen: \"127.0.0.1:%d\"\n  drain_timeout_ms: 0\n"
		 "accounting:\n  access_log: \"%s\"\n"
		 "fastpath:\n  app_sockets: %s\n",
		 admin_port, alog_path, mode);
	return th_env_run_config(&env, cfg_path, text);
}

/* SIGTERM: the kernel side stays pinned, as in a container restart. */
static int stop(void)
{
	int st;

	if (env.sidelane <= 0)
		return 0;
	kill(env.sidelane, SIGTERM);
	st = th_wait(env.sidelane, 5000);
	env.sidelane = 0;
	return st;
}

/* A listener in the sidecar's cgroup (its accepted sockets are the
 * sidecar's), then back to the app's.
 */
static int sidecar_listen(int *port)
{
	int fd, err;

	err = th_enter_sidecar(&env);
	if (err)
		return err;
	fd = th_listen("127.0.0.1", 8, port);
	err = th_enter(&env);
	if (err && fd >= 0) {
		close(fd);
		return err;
	}
	return fd;
}

/* Connect from the app's cgroup (blocking, or non-blocking from before
 * connect()), accept, and exchange MSG_LEN bytes each way. 0 or -errno.
 */
static int app_conn(int lfd, int port, bool nonblock, int *c, int *s)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	char out[MSG_LEN], in[MSG_LEN];
	int fl;

	th_fill(out, sizeof(out), 5);
	*s = -1;
	*c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC |
				     (nonblock ? SOCK_NONBLOCK : 0), 0);
	if (*c < 0)
		return -errno;
	if (connect(*c, (void *)&a, sizeof(a)) && errno != EINPROGRESS)
		return -errno;
	*s = accept4(lfd, NULL, NULL, SOCK_CLOEXEC); /* blocking listener */
	if (*s < 0)
		return -errno;
	/* the exchange itself in blocking calls; the flag is back after */
	fl = fcntl(*c, F_GETFL);
	fcntl(*c, F_SETFL, fl & ~O_NONBLOCK);
	if (send(*c, out, sizeof(out), 0) != sizeof(out) ||
	    recv(*s, in, sizeof(in), MSG_WAITALL) != sizeof(in) ||
	    send(*s, in, sizeof(in), 0) != sizeof(in) ||
	    recv(*c, in, sizeof(in), MSG_WAITALL) != sizeof(in))
		return -EIO;
	fcntl(*c, F_SETFL, fl);
	return memcmp(in, out, sizeof(in)) ? -EBADMSG : 0;
}

static int run_cli(char *out, size_t len, const char *a1, const char *a2)
{
	char *argv[] = { (char *)th_sidelane_bin(), (char *)a1, "--pin-root",
			 env.pin_root, (char *)a2, NULL };

	return th_run(NULL, NULL, argv, out, len, 10000);
}

/* "<metric> <value>" of /metrics, -1 if absent. */
static long long metric(const char *text, const char *name)
{
	char want[256];
	const char *p;

	snprintf(want, sizeof(want), "\n%s ", name);
	p = strstr(text, want);
	return p ? strtoll(p + strlen(want), NULL, 10) : -1;
}

static void check_default(void)
{
	const char *n_log = "admission: run says at start what the default admits on this kernel";
	const char *n_conns = "admission: conns lists each app socket with its reason";
	const char *n_status = "admission: status (text and JSON) counts sockets by reason";
	const char *n_metrics = "admission: /metrics counts sockets by reason and shows the mode";
	const char *n_alog = "admission: the access log names each socket's reason";
	static char out[256 * 1024];
	char url[128], want_b[160], want_n[160];
	char *curl[] = { "curl", "-sS", "-m", "5", url, NULL };
	struct sl_adm_status adm;
	int lfd, port, cb = -1, sb = -1, cn = -1, sn = -1, st, keeps;
	__u64 end;

	keeps = !sl_adm_read(env.pin_root, &adm) &&
		(adm.cfg.kernel & SL_KERNEL_TCP_FIONREAD);
	TH_RESULT(th_file_has(log_path, keeps ? "app sockets safe: non-blocking" :
						 "app sockets safe: none admitted on this kernel"),
		  n_log, "no explanation in %s", log_path);
	lfd = sidecar_listen(&port);
	if (!TH_CHECK(lfd >= 0, n_conns, "listener: %s", strerror(-lfd)))
		return;
	st = app_conn(lfd, port, false, &cb, &sb);
	st = st ?: app_conn(lfd, port, true, &cn, &sn);
	if (!TH_CHECK(!st, n_conns, "connections: %s", strerror(-st)))
		goto out;
	snprintf(want_b, sizeof(want_b), "\"cookie\":%llu,",
		 (unsigned long long)th_sock_cookie(cb));
	snprintf(want_n, sizeof(want_n), "\"cookie\":%llu,",
		 (unsigned long long)th_sock_cookie(cn));
	st = run_cli(out, sizeof(out), "conns", "--json");
	{
		const char *b = strstr(out, want_b), *n = strstr(out, want_n);
		const char *rb = b ? strstr(b, "\"reason\":") : NULL;
		const char *rn = n ? strstr(n, "\"reason\":") : NULL;

		TH_RESULT(!st && rb && rn &&
				  !strncmp(rb, "\"reason\":\"blocking-socket\"", 26) &&
				  !strncmp(rn, keeps ? "\"reason\":\"accelerated\"" :
						       "\"reason\":\"kernel-fionread\"",
					   keeps ? 22 : 26),
			  n_conns, "exit %d: %s", st, out);
	}
	st = run_cli(out, sizeof(out), "status", NULL);
	if (TH_CHECK(!st && strstr(out, "admission: app_sockets safe") &&
			     strstr(out, "blocking-socket="),
		     n_status, "text, exit %d: %s", st, out)) {
		char cmd[PATH_MAX + 512];
		char *sh[] = { "sh", "-c", cmd, NULL };

		snprintf(cmd, sizeof(cmd),
			 "%s status --json --pin-root %s | python3 -c 'import json, sys; "
			 "a = json.load(sys.stdin)[\"admission\"]; "
			 "print(a[\"app_sockets\"], a[\"sockets\"][\"blocking-socket\"] >= 1, "
			 "a[\"sockets\"][\"%s\"] >= 1)'",
			 th_sidelane_bin(), env.pin_root,
			 keeps ? "accelerated" : "kernel-fionread");
		st = th_run(NULL, NULL, sh, out, sizeof(out), 10000);
		TH_RESULT(!st && !strcmp(out, "safe True True\n"), n_status,
			  "json, exit %d: %s", st, out);
	}
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", admin_port);
	st = th_run(NULL, NULL, curl, out, sizeof(out), 10000);
	TH_RESULT(!st && metric(out, "sidelane_admission_mode{app_sockets=\"safe\"}") == 1 &&
			  metric(out, "sidelane_admission_sockets_total{reason=\"blocking-socket\"}") >= 1 &&
			  metric(out, keeps ? "sidelane_admission_sockets_total{reason=\"accelerated\"}" :
					      "sidelane_admission_sockets_total{reason=\"kernel-fionread\"}") >= 1 &&
			  metric(out, "sidelane_admission_evicted_total{reason=\"admitted-before\"}") == 0,
		  n_metrics, "exit %d: %.3000s", st, out);
out:
	/* the records reach the access log at close */
	snprintf(want_b, sizeof(want_b), "\"cookie\":%llu,",
		 (unsigned long long)(cb >= 0 ? th_sock_cookie(cb) : 0));
	if (cb >= 0)
		close(cb);
	if (sb >= 0)
		close(sb);
	if (cn >= 0)
		close(cn);
	if (sn >= 0)
		close(sn);
	close(lfd);
	end = th_now_ms() + 3000;
	while (!th_file_has(alog_path, want_b) &&
	       th_now_ms() < end)
		usleep(50 * 1000);
	if (TH_CHECK(th_file_has(alog_path, want_b) &&
			     th_file_has(alog_path, "\"reason\":\"blocking-socket\""),
		     n_alog, "no blocking-socket line for %s in %s:", want_b,
		     alog_path))
		th_pass(n_alog);
	else
		th_dump_log(alog_path);
}

struct chunks {
	int fd;
	char *buf;
};

/* MSG_WAITALL's writer: 4 pieces 20 ms apart */
static void *write_chunks(void *arg)
{
	struct chunks *w = arg;
	int i;

	for (i = 0; i < 4; i++) {
		usleep(20 * 1000);
		send(w->fd, w->buf + i * 1000, 1000, MSG_NOSIGNAL);
	}
	return NULL;
}

static bool in_sockhash(int fd)
{
	struct sl_sock_key key;
	__u64 cookie;

	return !th_sock_key(fd, &key) && !th_sockhash_cookie(&env, &key, &cookie);
}

static void check_sweep(void)
{
	const char *n_all = "admission/sweep: all mode: an app<->app pair is redirected both ways";
	const char *n_restart = "admission/sweep: restart in the default mode takes the drained end out, "
				"the one with unread redirected bytes waits";
	const char *n_drain = "admission/sweep: the waiting end gets every byte, then leaves within 2 s";
	const char *n_plain = "admission/sweep: the pair then behaves as plain TCP (MSG_WAITALL waits for all)";
	static char out[UNREAD], in[UNREAD];
	struct sl_adm_status a0, a1;
	struct sl_counters c0, c1;
	struct chunks w;
	pthread_t t;
	int c = -1, s = -1, err;
	ssize_t n;
	__u64 end;

	err = stop() ?: start("all");
	if (!TH_CHECK(!err, n_all, "restart in the all mode: %s", strerror(-err)))
		return;
	th_fill(out, sizeof(out), 6);
	err = th_tcp_pair("127.0.0.1", "127.0.0.1", &c, &s);
	if (!TH_CHECK(!err, n_all, "pair: %s", strerror(-err)))
		return;
	th_counters(&env, &c0);
	err = send(c, out, 100, 0) != 100 || recv(s, in, 100, MSG_WAITALL) != 100 ||
	      send(s, in, 100, 0) != 100 || recv(c, in, 100, MSG_WAITALL) != 100;
	th_counters(&env, &c1);
	if (!TH_CHECK(!err && in_sockhash(c) && in_sockhash(s) &&
			      c1.redirect_ok >= c0.redirect_ok + 2,
		      n_all, "exchange %d, in sockhash %d/%d, redirect_ok +%llu", err,
		      in_sockhash(c), in_sockhash(s),
		      (unsigned long long)(c1.redirect_ok - c0.redirect_ok)))
		goto out;
	th_pass(n_all);
	/* UNREAD bytes sit in s's psock across the restart */
	if (!TH_CHECK(send(c, out, UNREAD, 0) == UNREAD, n_restart, "send: %s",
		      strerror(errno)))
		goto out;
	sl_adm_read(env.pin_root, &a0);
	err = stop() ?: start("safe");
	sl_adm_read(env.pin_root, &a1);
	if (!TH_CHECK(!err && th_file_has(log_path, "1 socket(s) admitted before") &&
			      th_file_has(log_path, "1 wait until their reader") &&
			      !in_sockhash(c) && in_sockhash(s) &&
			      a1.stats.evicted[SL_ACC_MODE_CHANGED] ==
				      a0.stats.evicted[SL_ACC_MODE_CHANGED] + 1,
		      n_restart, "restart %s, in sockhash %d/%d, evicted +%llu (log %s)",
		      strerror(-err), in_sockhash(c), in_sockhash(s),
		      (unsigned long long)(a1.stats.evicted[SL_ACC_MODE_CHANGED] -
					   a0.stats.evicted[SL_ACC_MODE_CHANGED]),
		      log_path))
		goto out;
	th_pass(n_restart);
	memset(in, 0, sizeof(in));
	n = recv(s, in, UNREAD, MSG_WAITALL);
	end = th_now_ms() + 2000;
	while ((in_sockhash(s) ||
		!th_file_has(log_path, "every socket admitted before is out")) &&
	       th_now_ms() < end)
		usleep(50 * 1000);
	sl_adm_read(env.pin_root, &a1);
	if (!TH_CHECK(n == UNREAD && !memcmp(in, out, UNREAD) && !in_sockhash(s) &&
			      th_file_has(log_path, "every socket admitted before is out") &&
			      a1.stats.evicted[SL_ACC_MODE_CHANGED] ==
				      a0.stats.evicted[SL_ACC_MODE_CHANGED] + 2,
		      n_drain, "recv %zd (%s), in sockhash %d", n,
		      n == UNREAD && !memcmp(in, out, UNREAD) ? "equal" : "differs",
		      in_sockhash(s)))
		goto out;
	th_pass(n_drain);
	w = (struct chunks){ c, out };
	if (!TH_CHECK(!pthread_create(&t, NULL, write_chunks, &w), n_plain, "thread"))
		goto out;
	th_counters(&env, &c0);
	n = recv(s, in, UNREAD, MSG_WAITALL);
	pthread_join(t, NULL);
	th_counters(&env, &c1);
	TH_RESULT(n == UNREAD && !memcmp(in, out, UNREAD) &&
			  c1.redirect_ok == c0.redirect_ok,
		  n_plain, "MSG_WAITALL %zd of %d, redirect_ok +%llu", n, UNREAD,
		  (unsigned long long)(c1.redirect_ok - c0.redirect_ok));
out:
	if (c >= 0)
		close(c);
	if (s >= 0)
		close(s);
}

int main(void)
{
	const char *setup = "admission: setup: cgroups and sidelane run in the default mode";
	int err;

	setvbuf(stdout, NULL, _IOLBF, 0);
	th_watchdog(120, "admission");
	snprintf(cfg_path, sizeof(cfg_path), "/tmp/sidelane-test-adm-%d.yaml", (int)getpid());
	snprintf(alog_path, sizeof(alog_path), "/tmp/sidelane-test-adm-%d.log", (int)getpid());
	err = th_cleanup_push(remove_files, NULL);
	err = err ?: th_env_setup_opts(&env, "adm",
				       &(struct th_env_opts){ .sidecar = true });
	if (!TH_CHECK(!err, setup, "%s", strerror(-err)))
		goto out;
	if (access(th_sidelane_bin(), X_OK)) {
		th_skip(setup, "no sidelane binary (make first)");
		goto out;
	}
	th_env_log_path(&env);
	snprintf(log_path, sizeof(log_path), "%s", env.log);
	admin_port = th_free_port();
	err = admin_port < 0 ? admin_port : start("safe");
	err = err ?: th_enter(&env);
	if (!TH_CHECK(!err, setup, "%s (log %s)", strerror(-err), log_path))
		goto out;
	th_pass(setup);
	check_default();
	check_sweep();
out:
	err = th_env_teardown(&env);
	th_cleanup_pop(remove_files, NULL, true);
	TH_RESULT(!err, "admission: teardown: sidelane stopped, cgroups and pins removed",
		  "%s", strerror(-err));
	return th_summary();
}
