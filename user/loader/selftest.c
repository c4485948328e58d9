// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Start-up self-test of the fast path (see selftest.h): a private copy of
 * bpf/fastpath.bpf.c on a temporary cgroup, a forked child in it that moves
 * bytes over loopback and checks what the application sees, and a verdict
 * the caller uses to keep redirect off on a kernel where it is not safe.
 *
 * Where the temporary cgroup goes: right under the cgroup2 mount. On a host
 * that is the root cgroup, whose children inherit no sock_ops program but
 * the root's own (sidelane refuses the root), so neither a sidelane that is
 * already attached (its app and sidecar cgroups, one of which we may well be
 * running in) nor any other agent below the root sees the test's sockets.
 * Under our own cgroup they would: after a restart the pinned
 * link_sockops_sidecar sits on it. In a container with its own cgroup
 * namespace the mount's root is the container's cgroup, which is the one
 * place there that is both writable and ours; the test then runs below
 * whatever is attached to it or above it, so the count of inherited
 * sock_ops programs is reported. Ours runs first (descendants' programs
 * precede ancestors' in the effective array) and a second sockmap cannot
 * take a socket whose psock already has an sk_msg program, so the test
 * stays valid; an attached sidelane's sockops then counts 2 insert
 * failures per pair (sock_insert_failed: seen on 6.18 with the cgroup
 * forced below an accelerated one). If the mount's root refuses the mkdir
 * (EACCES, EPERM, EROFS: a delegated subtree), the cgroup goes under our
 * own instead.
 *
 * The checks themselves, the forked child's, are in selftest_checks.c.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "loader/pins.h"
#include "sidelane.h"
#include "fastpath.h"
#include "admission.h"
#include "fastpath.skel.h"
#include "loader/fastpath_user.h"
#include "loader/selftest.h"
#include "lib/cgroup.h"
#include "lib/log.h"
#include "loader/selftest_int.h"

const char *const sl_selftest_checks[] = {
	"sockhash", "transfer", "fionread",   "msg_peek", "poll",
	"epoll",    "half_close", "epipe",    "redirect", NULL,
};

/* ---- the parent: setup, verdict, cleanup ---- */

static void set_why(struct sl_selftest_result *r, const char *check,
		    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_why(struct sl_selftest_result *r, const char *check,
		    const char *fmt, ...)
{
	va_list ap;

	r->ok = 0;
	snprintf(r->check, sizeof(r->check), "%s", check);
	va_start(ap, fmt);
	vsnprintf(r->why, sizeof(r->why), fmt, ap);
	va_end(ap);
}

/* The temporary cgroup: under the cgroup2 mount, else under our own (see
 * the top of this file).
 */
static int make_cgroup(char *path, size_t len)
{
	char mnt[PATH_MAX], self[PATH_MAX];
	int err;

	err = sl_cgroup2_mount(mnt, sizeof(mnt));
	if (err)
		return err;
	err = sl_cgroup_make(mnt, SL_SELFTEST_CGROUP_PREFIX, path, len);
	if (err != -EACCES && err != -EPERM && err != -EROFS)
		return err;
	if (sl_cgroup_self(self, sizeof(self)) || !strcmp(self, mnt))
		return err;
	pr_debug("self-test: %s refused a new cgroup (%s), trying under %s\n",
		 mnt, strerror(-err), self);
	return sl_cgroup_make(self, SL_SELFTEST_CGROUP_PREFIX, path, len);
}

static __u32 prog_id(int fd)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);

	return bpf_obj_get_info_by_fd(fd, &info, &len) ? 0 : info.id;
}

static __u32 link_id(int fd)
{
	struct bpf_link_info info = {};
	__u32 len = sizeof(info);

	return bpf_obj_get_info_by_fd(fd, &info, &len) ? 0 : info.id;
}

static __u32 map_id(int fd)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);

	return bpf_obj_get_info_by_fd(fd, &info, &len) ? 0 : info.id;
}

/* The child's verdict, as parsed from its lines. */
struct st_verdict {
	char running[16]; /* the last "run" */
	char fail_check[16], why[SL_FP_REASON_LEN];
	int failed, done, error;
	unsigned long long msgs;
	unsigned int kernel; /* SL_KERNEL_* from the probe */
	int probe_fionread; /* what FIONREAD said there */
};

/* Copy src into dst[len], cut to fit. */
static void copy_str(char *dst, size_t len, const char *src)
{
	size_t n = strnlen(src, len - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
}

static void parse_line(char *line, struct st_verdict *v)
{
	char *rest;

	if (!strncmp(line, "run ", 4)) {
		copy_str(v->running, sizeof(v->running), line + 4);
	} else if (!strncmp(line, "fail ", 5)) {
		rest = strchr(line + 5, ' ');
		if (rest)
			*rest++ = '\0';
		v->failed = 1;
		copy_str(v->fail_check, sizeof(v->fail_check), line + 5);
		copy_str(v->why, sizeof(v->why), rest ?: "");
	} else if (!strncmp(line, "kernel ", 7)) {
		v->kernel = strtoul(line + 7, &rest, 10);
		v->probe_fionread = (int)strtol(rest, NULL, 10);
	} else if (!strncmp(line, "msgs ", 5)) {
		v->msgs = strtoull(line + 5, NULL, 10);
	} else if (!strcmp(line, "done")) {
		v->done = 1;
	} else if (!strncmp(line, "error ", 6)) {
		v->error = (int)strtol(line + 6, &rest, 10) ?: EIO;
		copy_str(v->why, sizeof(v->why), *rest ? rest + 1 : "");
	}
}

/* Read the child's lines until its verdict, its exit or the deadline.
 * 0, or -ETIMEDOUT.
 */
static int read_verdict(int fd, __u64 deadline, struct st_verdict *v)
{
	char buf[4096];
	size_t used = 0;
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char *nl;
	ssize_t n;
	__u64 now;

	while (!v->done && !v->failed && !v->error) {
		now = now_ms();
		if (now >= deadline)
			return -ETIMEDOUT;
		n = poll(&p, 1, deadline - now);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n ? -errno : -ETIMEDOUT;
		n = read(fd, buf + used, sizeof(buf) - 1 - used);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return 0; /* EOF: the child is gone */
		used += n;
		buf[used] = '\0';
		while ((nl = strchr(buf, '\n'))) {
			*nl = '\0';
			parse_line(buf, v);
			used -= nl + 1 - buf;
			memmove(buf, nl + 1, used + 1);
		}
		if (used == sizeof(buf) - 1) /* no line that long is sent */
			used = 0;
	}
	return 0;
}

/* Reap the child, killing it if it is not gone within a moment; its exit
 * status, -ECHILD when SIGCHLD is ignored (reaped already), -ETIMEDOUT.
 */
static int reap(pid_t pid, bool kill_now)
{
	int status, i;
	pid_t w;

	if (kill_now)
		kill(pid, SIGKILL);
	for (i = 0; i < 1000; i++) {
		w = waitpid(pid, &status, WNOHANG);
		if (w == pid)
			return status;
		if (w < 0 && errno != EINTR)
			return -errno;
		if (i == 200)
			kill(pid, SIGKILL);
		usleep(1000);
	}
	return -ETIMEDOUT;
}

/* What one run holds; run_release() gives it all back. */
struct st_run {
	char cgroup[PATH_MAX]; /* "" until made */
	int cg_fd;
	struct fastpath_bpf *skel;
	struct bpf_link *sockops;
	int msg_link; /* sk_msg's sockmap link, or -1 */
	bool prog_attached; /* sk_msg attached to the map instead */
};

/* A throwaway cgroup with a private copy of the programs on it: no pin
 * paths, so nothing under a bpffs is reused or created, and small maps.
 */
static int run_setup(struct st_run *s, struct sl_selftest_result *r)
{
	struct sl_adm_cfg adm = { .mode = SL_APP_ALL };
	__u32 n_inherited = 0, qflags = 0, zero = 0;
	int err;

	err = make_cgroup(s->cgroup, sizeof(s->cgroup));
	if (err) {
		set_why(r, "", "cannot create a cgroup for the self-test: %s",
			err == -ENOENT ? "no cgroup v2 mount" : strerror(-err));
		s->cgroup[0] = '\0';
		return err;
	}
	s->cg_fd = open(s->cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->cg_fd < 0) {
		err = -errno;
		set_why(r, "", "open %s: %s", s->cgroup, strerror(-err));
		return err;
	}
	/* Programs of the ancestors run on the test's sockets too (after
	 * ours); only a count for the log.
	 */
	if (!bpf_prog_query(s->cg_fd, BPF_CGROUP_SOCK_OPS, BPF_F_QUERY_EFFECTIVE,
			    &qflags, NULL, &n_inherited))
		r->inherited_sockops = n_inherited;
	s->skel = fastpath_bpf__open();
	if (!s->skel) {
		err = -errno;
		set_why(r, "", "opening the BPF object: %s", strerror(-err));
		return err;
	}
	bpf_map__set_max_entries(s->skel->maps.sl_sockhash, ST_MAP_ENTRIES);
	bpf_map__set_max_entries(s->skel->maps.sl_conns, ST_MAP_ENTRIES);
	bpf_map__set_max_entries(s->skel->maps.sl_sk_by_key, ST_MAP_ENTRIES);
	err = fastpath_bpf__load(s->skel);
	if (err) {
		set_why(r, "", "loading the fast path programs: %s", strerror(-err));
		return err;
	}
	r->prog_ids[0] = prog_id(bpf_program__fd(s->skel->progs.sl_sockops));
	r->prog_ids[1] = prog_id(bpf_program__fd(s->skel->progs.sl_sk_msg));
	r->sockhash_id = map_id(bpf_map__fd(s->skel->maps.sl_sockhash));
	/* The checks pair two sockets of one cgroup, both ways: the all
	 * mode of admission (the product's default admits no such pair).
	 */
	if (bpf_map_update_elem(bpf_map__fd(s->skel->maps.sl_adm_cfg), &zero,
				&adm, BPF_ANY)) {
		err = -errno;
		set_why(r, "", "setting the private admission mode: %s",
			strerror(-err));
		return err;
	}
	/* sk_msg on the private sockhash before any socket gets in, as
	 * sl_fp_attach() does.
	 */
	err = sl_map_prog_attach(bpf_program__fd(s->skel->progs.sl_sk_msg),
				 bpf_map__fd(s->skel->maps.sl_sockhash),
				 BPF_SK_MSG_VERDICT, &s->msg_link);
	if (err) {
		set_why(r, "", "attaching sk_msg to the sockhash: %s",
			strerror(-err));
		return err;
	}
	r->sk_msg_link = s->msg_link >= 0;
	s->prog_attached = s->msg_link < 0;
	if (s->msg_link >= 0)
		r->link_ids[1] = link_id(s->msg_link);
	s->sockops = bpf_program__attach_cgroup(s->skel->progs.sl_sockops,
						s->cg_fd);
	if (!s->sockops) {
		err = -errno;
		set_why(r, "", "attaching sockops to %s: %s", s->cgroup,
			strerror(-err));
		return err;
	}
	r->link_ids[0] = link_id(bpf_link__fd(s->sockops));
	return 0;
}

/* What the child reported, and how it ended, into r; the parent's own
 * check is the private counters. 0 or -errno (the test could not run).
 */
static int judge(struct st_run *s, const struct st_verdict *v, int status,
		 bool timed_out, struct sl_selftest_result *r)
{
	const char *const *name;
	struct sl_counters cnt;
	int err;

	if (v->error) {
		set_why(r, "", "self-test child: %s", v->why);
		return -v->error;
	}
	if (v->failed) {
		set_why(r, v->fail_check, "%s", v->why);
		return 0;
	}
	if (!v->done) {
		/* hung in a check (and killed), crashed, or gone */
		const char *at = v->running[0] ? v->running : "start";

		if (timed_out)
			set_why(r, v->running, "%s: no result within %d ms (hung)",
				at, SL_SELFTEST_BUDGET_MS);
		else if (status >= 0 && WIFSIGNALED(status))
			set_why(r, v->running, "%s: the test process died of signal %d",
				at, WTERMSIG(status));
		else
			set_why(r, v->running, "%s: the test process ended without a verdict",
				at);
		return 0;
	}
	r->msgs = v->msgs;
	r->kernel = v->kernel;
	r->probe_fionread = v->probe_fionread;
	err = sl_percpu_sum_u64(bpf_map__fd(s->skel->maps.sl_counters), 0, &cnt,
				sizeof(cnt));
	if (err) {
		set_why(r, "", "reading the counters: %s", strerror(-err));
		return err;
	}
	r->redirected = cnt.redirect_ok;
	r->ok = 1;
	if (cnt.redirect_ok < v->msgs)
		set_why(r, "redirect",
			"sk_msg redirected %llu of %llu messages (%llu took TCP)",
			(unsigned long long)cnt.redirect_ok, v->msgs,
			(unsigned long long)cnt.pass_plain);
	else if (force_hits("redirect", false))
		set_why(r, "redirect",
			"sk_msg redirected every message: passed, failed on purpose (%s=%s)",
			SL_SELFTEST_ENV_FAIL, forced());
	/* A misspelt test hook must not pass silently. */
	if (r->ok && forced()) {
		for (name = sl_selftest_checks; *name; name++)
			if (!strcmp(*name, forced()))
				break;
		if (!*name && strcmp(forced(), "any"))
			set_why(r, "", "%s=%s names no check", SL_SELFTEST_ENV_FAIL,
				forced());
	}
	return 0;
}

/* The checks run in a child in the cgroup (child_main()), which reports
 * through a pipe; a hung or crashed child is a failed test, not ours.
 */
static int run_checks(struct st_run *s, struct sl_selftest_result *r)
{
	int pipefd[2], status, err;
	struct st_verdict v = {};
	__u64 t_fork;
	bool timed_out;
	pid_t pid;

	if (pipe2(pipefd, O_CLOEXEC)) {
		err = -errno;
		set_why(r, "", "pipe: %s", strerror(-err));
		return err;
	}
	t_fork = now_ms();
	pid = fork();
	if (pid < 0) {
		err = -errno;
		set_why(r, "", "fork: %s", strerror(-err));
		close(pipefd[0]);
		close(pipefd[1]);
		return err;
	}
	if (pid == 0) {
		struct st_ctx x = {
			.out = pipefd[1],
			.conns_fd = bpf_map__fd(s->skel->maps.sl_conns),
			.fp_cfg_fd = bpf_map__fd(s->skel->maps.sl_fp_cfg),
			.deadline = now_ms() + SL_SELFTEST_BUDGET_MS,
			.c = -1,
			.s = -1,
		};

		close(pipefd[0]);
		child_main(&x, s->cgroup);
	}
	close(pipefd[1]);
	timed_out = read_verdict(pipefd[0], t_fork + SL_SELFTEST_BUDGET_MS +
						    ST_GRACE_MS, &v) == -ETIMEDOUT;
	close(pipefd[0]);
	status = reap(pid, timed_out);
	r->checks_ms = now_ms() - t_fork;
	return judge(s, &v, status, timed_out, r);
}

static void run_release(struct st_run *s)
{
	bpf_link__destroy(s->sockops);
	if (s->msg_link >= 0)
		close(s->msg_link);
	if (s->prog_attached)
		bpf_prog_detach2(bpf_program__fd(s->skel->progs.sl_sk_msg),
				 bpf_map__fd(s->skel->maps.sl_sockhash),
				 BPF_SK_MSG_VERDICT);
	fastpath_bpf__destroy(s->skel);
	if (s->cg_fd >= 0)
		close(s->cg_fd);
	if (s->cgroup[0]) {
		/* a just-reaped child may still be leaving it */
		int e = sl_cgroup_remove(s->cgroup, 20, 500);

		if (e)
			pr_warn("self-test: cannot remove its cgroup %s: %s\n",
				s->cgroup, strerror(-e));
	}
}

static void log_result(const struct sl_selftest_result *r, int err)
{
	if (r->inherited_sockops)
		pr_info("self-test: %u sock_ops program(s) of parent cgroups also "
			"ran on its sockets\n", r->inherited_sockops);
	if (r->ok) {
		pr_info("self-test passed in %u ms: %llu messages redirected "
			"byte-exact; FIONREAD, MSG_PEEK, poll, epoll, half-close "
			"and EPIPE as plain TCP\n",
			r->elapsed_ms, (unsigned long long)r->redirected);
		pr_info("self-test: a sockmap socket receiving over TCP answers "
			"FIONREAD %d for 1000 bytes: this kernel %s FIONREAD\n",
			r->probe_fionread,
			r->kernel & SL_KERNEL_TCP_FIONREAD ? "keeps" : "changes");
	} else if (err) {
		pr_warn("self-test could not run: %s\n", r->why);
	} else {
		pr_warn("self-test failed (%s): %s\n", r->check[0] ? r->check : "-",
			r->why);
	}
}

int sl_selftest_run(struct sl_selftest_result *r)
{
	struct st_run s = { .cg_fd = -1, .msg_link = -1 };
	__u64 t0 = now_ms();
	int err;

	memset(r, 0, sizeof(*r));
	err = run_setup(&s, r);
	if (!err)
		err = run_checks(&s, r);
	run_release(&s);
	r->elapsed_ms = now_ms() - t0;
	log_result(r, err);
	return err;
}
