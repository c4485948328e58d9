// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Integration test harness (tests/integ): per-environment cgroup and pin root,
 * the real `build/sidelane run` attached to it, pinned maps read back with
 * libbpf, TAP-like reporting, and teardown on every exit path (normal exit,
 * SIGINT/SIGTERM, watchdog, abort), tests' own cleanups included. Also a
 * test PKI made with the openssl CLI (th_pki_*).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <openssl/evp.h>
#include "sidelane.h"
#include "lib/cgroup.h"
#include "loader/admission_user.h"
#include "harness.h"
#include "loader/fastpath_user.h"

#define TH_MAX_ENVS 16
#define TH_MAX_CLEANUPS 16
#define TH_READY_MS 15000 /* `sidelane run` until link_sockops is pinned */
#define TH_STOP_MS 5000 /* SIGTERM until SIGKILL */
#define TH_DETACH_MS 10000
#define TH_LOG_DIR "build/tests/logs"

static int n_pass, n_fail, n_skip, n_test;
static unsigned int env_seq;
static pid_t owner_pid; /* forked children must not tear our envs down */
static struct th_env *live[TH_MAX_ENVS];
static char watch_what[160]; /* what the watchdog / a signal interrupts */
static char cg_mount[PATH_MAX];
static struct {
	void (*fn)(void *arg);
	void *arg;
} cleanups[TH_MAX_CLEANUPS];

bool th_ci(void)
{
	const char *ci = getenv("CI");

	return ci && !strcmp(ci, "true");
}

const char *th_sidelane_bin(void)
{
	const char *bin = getenv("SIDELANE");

	return bin && *bin ? bin : "build/sidelane";
}

__u64 th_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* snprintf into a path buffer; -ENAMETOOLONG rather than a silent cut. */
static int __attribute__((format(printf, 3, 4)))
path_fmt(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* ---- reporting ---- */

void th_pass(const char *name)
{
	printf("ok %d - %s\n", ++n_test, name);
	fflush(stdout);
	n_pass++;
}

void th_fail(const char *name, const char *fmt, ...)
{
	va_list ap;

	printf("not ok %d - %s # ", ++n_test, name);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	n_fail++;
}

void th_skip(const char *name, const char *why)
{
	if (th_ci()) {
		/* every CI machine can load BPF: a skip there hides a breakage */
		th_fail(name, "SKIP under CI=true is a failure: %s", why);
		return;
	}
	printf("ok %d - %s # SKIP %s\n", ++n_test, name, why);
	fflush(stdout);
	n_skip++;
}

void th_info(const char *fmt, ...)
{
	va_list ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

int th_failed(void)
{
	return n_fail;
}

int th_summary(void)
{
	printf("1..%d\n", n_test);
	if (n_skip)
		printf("%d passed, %d failed, %d skipped\n", n_pass, n_fail,
		       n_skip);
	else
		printf("%d passed, %d failed\n", n_pass, n_fail);
	fflush(stdout);
	return n_fail ? 1 : 0;
}

/* ---- teardown on every exit path ---- */

static void teardown_all(void)
{
	int i;

	if (getpid() != owner_pid)
		return;
	/* what a test started inside its envs goes first */
	for (i = TH_MAX_CLEANUPS - 1; i >= 0; i--)
		if (cleanups[i].fn)
			th_cleanup_pop(cleanups[i].fn, cleanups[i].arg, true);
	for (i = 0; i < TH_MAX_ENVS; i++)
		if (live[i])
			th_env_teardown(live[i]);
}

/* A test harness may do real work here: the process is about to die and
 * leaving a cgroup with programs attached behind is worse than a
 * non-async-signal-safe call. Runs once; the signal is then re-raised.
 */
static void on_fatal(int sig)
{
	static volatile sig_atomic_t busy;

	if (!busy && getpid() == owner_pid) {
		busy = 1;
		if (sig == SIGALRM) {
			printf("not ok %d - %s # timeout (watchdog)\n", ++n_test,
			       watch_what);
			n_fail++;
		} else {
			printf("not ok %d - %s # interrupted by signal %d\n",
			       ++n_test, watch_what, sig);
			n_fail++;
		}
		teardown_all();
		th_summary();
	}
	signal(sig, SIG_DFL);
	if (sig == SIGALRM)
		_exit(1);
	raise(sig);
}

static void install_handlers(void)
{
	static bool done;
	const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGALRM, SIGABRT, SIGSEGV };
	struct sigaction sa = {};
	size_t i;

	if (done)
		return;
	done = true;
	owner_pid = getpid();
	sa.sa_handler = on_fatal;
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	atexit(teardown_all);
}

int th_cleanup_push(void (*fn)(void *arg), void *arg)
{
	int i;

	install_handlers();
	for (i = 0; i < TH_MAX_CLEANUPS; i++) {
		if (!cleanups[i].fn) {
			cleanups[i].arg = arg;
			cleanups[i].fn = fn;
			return 0;
		}
	}
	return -ENOSPC;
}

void th_cleanup_pop(void (*fn)(void *arg), void *arg, bool run)
{
	int i;

	for (i = TH_MAX_CLEANUPS - 1; i >= 0; i--) {
		if (cleanups[i].fn == fn && cleanups[i].arg == arg) {
			/* forgotten first: a signal during fn does not rerun it */
			cleanups[i].fn = NULL;
			if (run)
				fn(arg);
			return;
		}
	}
}

void th_watchdog(unsigned int sec, const char *what)
{
	install_handlers();
	snprintf(watch_what, sizeof(watch_what), "%s", what ? what : "");
	alarm(sec);
}

/* ---- small file helpers ---- */

int th_write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "we");
	int err = 0;

	if (!f)
		return -errno;
	if (fputs(text, f) < 0)
		err = -EIO;
	if (fclose(f) && !err)
		err = -errno;
	return err;
}

static bool path_exists(const char *path)
{
	struct stat st;

	return !lstat(path, &st);
}

/* The cgroup2 mount, from /proc/mounts (fstype cgroup2). */
static int cgroup2_mount(void)
{
	return cg_mount[0] ? 0 : sl_cgroup2_mount(cg_mount, sizeof(cg_mount));
}

/* bpffs at SL_BPFFS_DEFAULT, mounted if absent (what `sidelane run` does). */
static int ensure_bpffs(void)
{
	char dev[256], dir[PATH_MAX], type[64];
	bool found = false;
	FILE *f;

	f = fopen("/proc/mounts", "re");
	if (!f)
		return -errno;
	while (fscanf(f, "%255s %4095s %63s %*[^\n]", dev, dir, type) == 3)
		if (!strcmp(type, "bpf") && !strcmp(dir, SL_BPFFS_DEFAULT))
			found = true;
	fclose(f);
	if (found)
		return 0;
	if (mount("bpf", SL_BPFFS_DEFAULT, "bpf", 0, NULL))
		return -errno;
	return 0;
}

int th_wait(pid_t pid, int timeout_ms)
{
	__u64 deadline = th_now_ms() + timeout_ms;
	int status;
	pid_t r;

	for (;;) {
		r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			break;
		if (r < 0 && errno != EINTR)
			return -errno;
		if (th_now_ms() >= deadline) {
			kill(pid, SIGKILL);
			while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
				;
			return -ETIMEDOUT;
		}
		sleep_ms(10);
	}
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}

/* fork+exec argv with stdout+stderr appended to log (or inherited if NULL). */
static pid_t spawn(char *const argv[], const char *log)
{
	pid_t pid;
	int fd;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid)
		return pid < 0 ? -errno : pid;
	/* if the test dies by SIGKILL, sidelane still gets its SIGTERM */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (log) {
		fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
	}
	execv(argv[0], argv);
	fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

void th_dump_log(const char *log)
{
	char line[512];
	FILE *f = fopen(log, "re");

	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		printf("#   sidelane: %s", line);
	fclose(f);
}

int th_start_run(const char *cfg, const char *cgroup, const char *sidecar,
		 const char *pin_root, const char *log, int ready_ms, pid_t *pid)
{
	char *argv[] = { (char *)th_sidelane_bin(), "run", "--config", (char *)cfg,
			 "--cgroup", (char *)cgroup, "--pin-root", (char *)pin_root,
			 "--sidecar-cgroup", (char *)sidecar, NULL };
	__u64 deadline = th_now_ms() + ready_ms;
	int fd, status;

	*pid = 0;
	/* emptied here, not in the child: no stale "running;" is read */
	fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	close(fd);
	fflush(stdout);
	*pid = fork();
	if (*pid < 0)
		return *pid = 0, -errno;
	if (!*pid) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		fd = open(log, O_WRONLY | O_APPEND | O_CLOEXEC);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execv(argv[0], argv);
		_exit(127);
	}
	while (!th_file_has(log, "running;")) {
		if (waitpid(*pid, &status, WNOHANG) == *pid) {
			*pid = 0;
			th_dump_log(log);
			return -ECHILD;
		}
		if (th_now_ms() > deadline) {
			th_dump_log(log);
			return -ETIMEDOUT;
		}
		sleep_ms(20);
	}
	return 0;
}

int th_env_run_config(struct th_env *env, const char *cfg, const char *text)
{
	pid_t pid;
	int err;

	err = th_write_text(cfg, text);
	if (err)
		return err;
	err = th_start_run(cfg, env->cgroup, env->sidecar_cgroup, env->pin_root,
			   env->log, TH_READY_MS, &pid);
	env->sidelane = pid;
	env->pins_made = true;
	env->detached = false;
	return err;
}

static void track(struct th_env *env, bool on)
{
	int i;

	for (i = 0; i < TH_MAX_ENVS; i++) {
		if (on && !live[i]) {
			live[i] = env;
			return;
		}
		if (!on && live[i] == env)
			live[i] = NULL;
	}
}

/* ---- environments ---- */

int th_env_setup(struct th_env *env, const char *name, bool accelerated)
{
	return th_env_setup_opts(env, name,
				 &(struct th_env_opts){ .accelerated = accelerated });
}

int th_env_setup_opts(struct th_env *env, const char *name,
		      const struct th_env_opts *opts)
{
	char ready[PATH_MAX];
	const char *bin = th_sidelane_bin();
	bool accelerated = opts->accelerated;
	__u64 deadline;
	int err;

	install_handlers();
	memset(env, 0, sizeof(*env));
	env->accelerated = accelerated;
	snprintf(env->name, sizeof(env->name), "%s-%d-%u", name, getpid(),
		 env_seq++);
	err = cgroup2_mount();
	if (err)
		return err;
	err = sl_cgroup_self(env->orig_cgroup, sizeof(env->orig_cgroup));
	if (err)
		return err;
	if (path_fmt(env->cgroup, sizeof(env->cgroup), "%s/sidelane-test-%s",
		     cg_mount, env->name) ||
	    path_fmt(env->pin_root, sizeof(env->pin_root),
		     SL_BPFFS_DEFAULT "/sidelane-test-%s", env->name))
		return -ENAMETOOLONG;
	track(env, true);

	/* EEXIST: someone else's cgroup; leave it alone */
	if (mkdir(env->cgroup, 0755))
		return -errno;
	env->cgroup_made = true;
	if (opts->sidecar) {
		if (path_fmt(env->sidecar_cgroup, sizeof(env->sidecar_cgroup),
			     "%s-side", env->cgroup))
			return -ENAMETOOLONG;
		if (mkdir(env->sidecar_cgroup, 0755))
			return -errno;
		env->sidecar_made = true;
	}
	if (!accelerated)
		return 0;

	if (access(bin, X_OK))
		return -ENOENT;
	err = ensure_bpffs();
	if (err)
		return err;
	if (path_exists(env->pin_root))
		return -EEXIST;
	mkdir(TH_LOG_DIR, 0755);
	snprintf(env->log, sizeof(env->log), TH_LOG_DIR "/sidelane-%s.log",
		 env->name);
	unlink(env->log);
	{
		char *argv[] = { (char *)bin,	  "run",
				 "--cgroup",	  env->cgroup,
				 "--pin-root",	  env->pin_root,
				 "--app-sockets",
				 (char *)(opts->app_sockets ?: "all"),
				 env->sidecar_made ? "--sidecar-cgroup" : NULL,
				 env->sidecar_cgroup, NULL };

		env->pins_made = true;
		env->sidelane = spawn(argv, env->log);
	}
	if (env->sidelane < 0) {
		err = env->sidelane;
		env->sidelane = 0;
		return err;
	}
	path_fmt(ready, sizeof(ready), "%s/" SL_PIN_LINK_SOCKOPS, env->pin_root);
	deadline = th_now_ms() + TH_READY_MS;
	while (!path_exists(ready)) {
		int status;

		if (waitpid(env->sidelane, &status, WNOHANG) == env->sidelane) {
			th_info("sidelane run exited early (status 0x%x):",
				status);
			th_dump_log(env->log);
			env->sidelane = 0;
			return -ECHILD;
		}
		if (th_now_ms() >= deadline) {
			th_info("sidelane run not ready after %d ms:",
				TH_READY_MS);
			th_dump_log(env->log);
			return -ETIMEDOUT;
		}
		sleep_ms(10);
	}
	return 0;
}

/* Move the calling process into cgroup, one of env's. */
static int join(struct th_env *env, const char *cgroup)
{
	int err = sl_cgroup_join(cgroup);

	if (!err)
		env->entered = true;
	return err;
}

int th_enter(struct th_env *env)
{
	return join(env, env->cgroup);
}

int th_enter_sidecar(struct th_env *env)
{
	return env->sidecar_made ? join(env, env->sidecar_cgroup) : -ENOENT;
}

int th_leave(struct th_env *env)
{
	int err = sl_cgroup_join(env->orig_cgroup);

	if (!err)
		env->entered = false;
	return err;
}

int th_env_detach(struct th_env *env)
{
	const char *bin = th_sidelane_bin();
	int err = 0, st;

	if (env->detached)
		return 0;
	env->detached = true;
	if (env->sidelane > 0) {
		kill(env->sidelane, SIGTERM);
		st = th_wait(env->sidelane, TH_STOP_MS);
		if (st != 0) {
			th_info("sidelane run (pid %d) ended with %d", env->sidelane,
				st);
			th_dump_log(env->log);
		}
		env->sidelane = 0;
	}
	if (env->pins_made && path_exists(env->pin_root)) {
		char *argv[] = { (char *)bin, "detach", "--pin-root",
				 env->pin_root, NULL };
		pid_t pid = spawn(argv, env->log[0] ? env->log : NULL);

		if (pid < 0)
			return pid;
		st = th_wait(pid, TH_DETACH_MS);
		if (st) {
			th_info("sidelane detach --pin-root %s: status %d",
				env->pin_root, st);
			err = st; /* -errno (timeout) or the exit status */
		}
	}
	return err;
}

bool th_env_start(struct th_env *env, const char *test, bool accelerated)
{
	return th_env_start_opts(env, test, accelerated ? "accel" : "plain",
				 &(struct th_env_opts){ .accelerated = accelerated });
}

bool th_env_start_opts(struct th_env *env, const char *test, const char *mode,
		       const struct th_env_opts *opts)
{
	bool accelerated = opts->accelerated;
	char name[96];
	int err;

	snprintf(name, sizeof(name), "%s/%s: setup", test, mode);
	err = th_env_setup_opts(env, test, opts);
	if (accelerated && err == -ENOENT) {
		th_skip(name, "no sidelane binary (make first)");
		return false;
	}
	if (!TH_CHECK(!err, name, "%s", strerror(-err)) ||
	    !TH_CHECK(!th_enter(env), name, "enter cgroup: %s", strerror(errno)))
		return false;
	th_pass(name);
	return true;
}

/* Kill what a test forked into cgroup and did not reap, then rmdir it.
 * 0, or -EBUSY when it is left behind (said).
 */
static int rm_cgroup(const char *cgroup)
{
	int err = sl_cgroup_remove(cgroup, 0, 3000);

	if (err)
		th_info("cgroup %s left behind: %s", cgroup, strerror(-err));
	return err;
}

int th_env_teardown(struct th_env *env)
{
	int err = 0, ret;

	if (env->entered && th_leave(env))
		err = -EBUSY;
	ret = th_env_detach(env);
	if (ret && !err)
		err = ret < 0 ? ret : -EIO;
	if (env->pins_made && path_exists(env->pin_root)) {
		th_info("pin root %s left behind", env->pin_root);
		err = -ENOTEMPTY;
	}
	if (env->cgroup_made) {
		err = rm_cgroup(env->cgroup) ?: err;
		env->cgroup_made = path_exists(env->cgroup);
	}
	if (env->sidecar_made) {
		err = rm_cgroup(env->sidecar_cgroup) ?: err;
		env->sidecar_made = path_exists(env->sidecar_cgroup);
	}
	env->pins_made = false;
	/* the sidelane log only matters when something went wrong */
	if (!err && env->log[0])
		unlink(env->log);
	track(env, false);
	return err;
}

/* ---- pinned maps ---- */

static int map_fd(const struct th_env *env, const char *map_name)
{
	char path[PATH_MAX];
	int fd;

	if (path_fmt(path, sizeof(path), "%s/%s", env->pin_root, map_name))
		return -ENAMETOOLONG;
	fd = bpf_obj_get(path);
	return fd < 0 ? -errno : fd;
}

int th_counters(const struct th_env *env, struct sl_counters *out)
{
	/* The product's own reader: the tests see what `status` shows. */
	memset(out, 0, sizeof(*out));
	return sl_fp_read_counters(env->pin_root, out);
}

int th_adm_stats(const struct th_env *env, struct sl_adm_stats *out)
{
	struct sl_adm_status st;
	int err;

	err = sl_adm_read(env->pin_root, &st);
	*out = st.stats;
	return err;
}

int th_map_entries(const struct th_env *env, const char *map_name)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	unsigned char key[256], next[256];
	int fd, n = 0, err;
	void *prev = NULL;

	fd = map_fd(env, map_name);
	if (fd < 0)
		return fd;
	err = bpf_obj_get_info_by_fd(fd, &info, &len);
	if (err || info.key_size > sizeof(key)) {
		n = err ? -errno : -E2BIG;
		goto out;
	}
	/* bounded: a map never holds more than max_entries keys */
	while (n <= (int)info.max_entries) {
		if (bpf_map_get_next_key(fd, prev, next)) {
			if (errno != ENOENT)
				n = -errno;
			break;
		}
		memcpy(key, next, info.key_size);
		prev = key;
		n++;
	}
out:
	close(fd);
	return n;
}

int th_wait_entries(const struct th_env *env, const char *map_name, int want,
		    int timeout_ms)
{
	__u64 deadline = th_now_ms() + timeout_ms;
	int n;

	for (;;) {
		n = th_map_entries(env, map_name);
		if (n == want || n < 0 || th_now_ms() >= deadline)
			return n;
		sleep_ms(10);
	}
}

int th_sockhash_cookie(const struct th_env *env, const struct sl_sock_key *key,
		       __u64 *cookie)
{
	int fd, err = 0;

	fd = map_fd(env, SL_MAP_SOCKHASH);
	if (fd < 0)
		return fd;
	if (bpf_map_lookup_elem(fd, key, cookie))
		err = -errno;
	close(fd);
	return err;
}

int th_conn(const struct th_env *env, __u64 cookie, struct sl_conn *out)
{
	int fd, err = 0;

	fd = map_fd(env, SL_MAP_CONNS);
	if (fd < 0)
		return fd;
	if (bpf_map_lookup_elem(fd, &cookie, out))
		err = -errno;
	close(fd);
	return err;
}

int th_cgroup_prog_count(const struct th_env *env, int attach_type)
{
	__u32 cnt = 0, flags = 0;
	int fd, err;

	fd = open(env->cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	err = bpf_prog_query(fd, attach_type, 0, &flags, NULL, &cnt);
	err = err ? -errno : (int)cnt;
	close(fd);
	return err;
}

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

static int parse_addr(const char *addr, int port, struct sockaddr_storage *ss,
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

	err = parse_addr(addr, 0, &ss, &len);
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

int th_connect(const char *addr, int port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, err;

	err = parse_addr(addr, port, &ss, &len);
	if (err)
		return err;
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (void *)&ss, len)) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
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
	close(p[0]);
	return th_wait(pid, timeout_ms);
}

/* ---- test PKI, with the openssl CLI ---- */

static int rm_one(const char *path, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

static void rm_tree(void *dir)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
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
