// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Environments: a cgroup and pin root each, `sidelane run` on them, and
 * teardown on every exit path (normal exit, signals, the watchdog), the
 * tests' own cleanups included; running commands and small file helpers.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include "harness/internal.h"

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

unsigned int env_seq;
pid_t owner_pid; /* forked children must not tear our envs down */
struct th_env *live[TH_MAX_ENVS];
char watch_what[160]; /* what the watchdog / a signal interrupts */
char cg_mount[PATH_MAX];
struct th_cleanup cleanups[TH_MAX_CLEANUPS];

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
	th_env_log_path(env);
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

long th_proc_kib(pid_t pid, const char *key)
{
	char path[64], line[256];
	long kib = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, strlen(key)) && line[strlen(key)] == ':' &&
		    sscanf(line + strlen(key) + 1, "%ld", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

int th_proc_fds(pid_t pid)
{
	char path[64];
	struct dirent *d;
	int n = 0;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	dir = opendir(path);
	if (!dir)
		return -1;
	while ((d = readdir(dir)))
		n += d->d_name[0] != '.';
	closedir(dir);
	return n;
}

static int rm_entry(const char *path, const struct stat *st, int flag,
		    struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path) ? -errno : 0;
}

int th_rm_tree(const char *path)
{
	int r = nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);

	return r < 0 ? -errno : r;
}

void th_env_log_path(struct th_env *env)
{
	mkdir(TH_LOG_DIR, 0755);
	snprintf(env->log, sizeof(env->log), TH_LOG_DIR "/sidelane-%s.log",
		 env->name);
}
