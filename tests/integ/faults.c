// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Faults around a running sidecar (issue 13), each with the outcome the
 * README states ("Faults"):
 * - the access log's filesystem full, then its folder read-only: the
 *   traffic runs on
 *   byte-exact, the file holds whole JSON lines only, and the lines lost
 *   are counted in /stats;
 * - the pin folder removed (rm -r): the programs stay attached, the pins
 *   are put back within 3 s, the traffic runs on;
 * - `sidelane detach` under it: run stops within 3 s with exit 1, saying
 *   why; a start with the access log unwritable is refused, saying why;
 * - the app's cgroup removed under it: the same.
 * The real `sidelane run` on a cgroup of our own; the access log on a
 * 16 KiB tmpfs of our own, unmounted on every exit path.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/bpf.h>
#include "harness.h"
#include "lib/util.h"

#define MSG_LEN 4096
#define IO_MS 5000
#define PUT_BACK_MS 3000 /* a check a second, and slack */
#define ROUNDS 300 /* connections per traffic check */

static struct th_env env;
static char dir[64], cfg_path[128], alog_path[128];
static int mounts; /* tmpfs mounts on dir: the log's, a read-only one */
static int admin_port;

static void cleanup(void *arg)
{
	(void)arg;
	for (; mounts > 0; mounts--)
		umount2(dir, MNT_DETACH);
	if (dir[0])
		rmdir(dir);
	unlink(cfg_path);
}

/* ---- traffic: clients of an echo upstream, on loopback ---- */

/* n connections from the app's cgroup, each echoing MSG_LEN bytes: the
 * number that came back byte-exact.
 */
static int traffic(int port, int n)
{
	char out[MSG_LEN], in[MSG_LEN];
	int i, fd, ok = 0;

	if (th_enter(&env))
		return 0;
	for (i = 0; i < n; i++) {
		th_fill(out, sizeof(out), i + 1);
		fd = th_connect("127.0.0.1", port);
		if (fd < 0)
			continue;
		if (!sl_io_full(fd, out, sizeof(out), false, IO_MS) &&
		    !shutdown(fd, SHUT_WR) &&
		    !sl_io_full(fd, in, sizeof(in), true, IO_MS) &&
		    !memcmp(in, out, sizeof(in)))
			ok++;
		close(fd);
	}
	th_leave(&env);
	return ok;
}

/* ---- sidelane ---- */

static int start(void)
{
	char text[512];

	snprintf(text, sizeof(text),
		 "capture:\n  enabled: true\n"
		 "admin:\n  listen: \"127.0.0.1:%d\"\n  drain_timeout_ms: 0\n"
		 "accounting:\n  access_log: \"%s\"\n  max_bytes: 1048576\n"
		 "  keep: 0\n",
		 admin_port, alog_path);
	return th_env_run_config(&env, cfg_path, text);
}

/* The access log's counter key (lines_written, ...) from /stats, or -1. */
static long long alog_stat(const char *key)
{
	return th_stat_num(admin_port, "access_log", key);
}

/* Every line of the access log is one whole JSON object: "{...}\n". */
static bool whole_lines(const char *path, long *lines)
{
	char *buf = NULL, *p, *nl;
	size_t len = 0;
	bool ok;

	*lines = 0;
	if (sl_read_file(path, 1 << 20, &buf, &len, NULL))
		return false;
	ok = !len || buf[len - 1] == '\n';
	for (p = buf; ok && p < buf + len; p = nl + 1) {
		nl = strchr(p, '\n');
		ok = nl && nl > p && p[0] == '{' && nl[-1] == '}';
		(*lines)++;
	}
	free(buf);
	return ok;
}

static void check_disk_full(int port)
{
	const char *name = "faults: access log on a full filesystem: traffic "
			   "byte-exact, whole JSON lines only, lost lines counted";
	long long w0, d0, w1, d1, errs;
	long lines;
	int ok;

	w0 = alog_stat("lines_written");
	d0 = alog_stat("lines_dropped");
	ok = traffic(port, ROUNDS);
	usleep(1500 * 1000); /* the records' lines reach the writer */
	w1 = alog_stat("lines_written");
	d1 = alog_stat("lines_dropped");
	errs = alog_stat("write_errors");
	th_info("disk full: %d/%d echoed; lines written %lld -> %lld, dropped "
		"%lld -> %lld, write errors %lld", ok, ROUNDS, w0, w1, d0, d1,
		errs);
	if (TH_CHECK(ok == ROUNDS, name, "%d of %d connections echoed right", ok,
		     ROUNDS) &&
	    TH_CHECK(w0 >= 0 && d1 > d0 && errs > 0, name,
		     "dropped %lld -> %lld, write errors %lld: not counted", d0,
		     d1, errs) &&
	    TH_CHECK(whole_lines(alog_path, &lines), name,
		     "%s holds a torn line", alog_path) &&
	    TH_CHECK(lines == w1, name, "%ld lines in the file, %lld counted "
		     "written", lines, w1))
		th_pass(name);
}

/* The log's folder turns read-only: a read-only tmpfs mounted over it (a
 * remount would fail EBUSY with the log open). The writer sees its file
 * gone from the path and cannot make it again (EROFS).
 */
static void check_read_only(int port)
{
	const char *name = "faults: access log's folder read-only under "
			   "sidelane: traffic byte-exact, lost lines counted";
	long long d0, d1;
	int ok;

	if (!TH_CHECK(!mount("tmpfs", dir, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV,
			     "size=4k"), name, "read-only tmpfs: %s", strerror(errno)))
		return;
	mounts++;
	d0 = alog_stat("lines_dropped");
	ok = traffic(port, ROUNDS / 3);
	usleep(1500 * 1000);
	d1 = alog_stat("lines_dropped");
	if (TH_CHECK(ok == ROUNDS / 3, name, "%d of %d echoed", ok, ROUNDS / 3) &&
	    TH_CHECK(d1 > d0 && alog_stat("write_errors") > 0, name,
		     "dropped %lld -> %lld", d0, d1) &&
	    TH_CHECK(!kill(env.sidelane, 0), name, "sidelane is gone"))
		th_pass(name);
}

/* ---- pins and cgroup ---- */

static int count_pins(void)
{
	struct stat st;
	char cmd[PATH_MAX + 32], out[16] = "";
	FILE *f;

	if (stat(env.pin_root, &st))
		return 0;
	snprintf(cmd, sizeof(cmd), "ls -A %s | wc -l", env.pin_root);
	f = popen(cmd, "r");
	if (!f)
		return -1;
	if (!fgets(out, sizeof(out), f))
		out[0] = '\0';
	pclose(f);
	return atoi(out);
}

static int attached(void)
{
	return th_cgroup_prog_count(&env, BPF_CGROUP_SOCK_OPS) +
	       th_cgroup_prog_count(&env, BPF_CGROUP_INET4_CONNECT) +
	       th_cgroup_prog_count(&env, BPF_CGROUP_INET6_CONNECT);
}

/* At start an access log that cannot be opened is a refusal (exit 1)
 * naming the file and the reason, like any bad input: nothing attached.
 */
static void check_start_read_only(void)
{
	const char *name = "faults: access log unwritable at start: run refuses, "
			   "naming the file and the reason";
	int err = start();

	env.sidelane = 0;
	if (TH_CHECK(err == -ECHILD, name, "run: %s", err ? strerror(-err) :
		     "started") &&
	    TH_CHECK(th_file_has(env.log, alog_path) &&
			     th_file_has(env.log, "Read-only file system"),
		     name, "the log does not name %s and EROFS", alog_path) &&
	    TH_CHECK(!attached(), name, "programs left on the cgroup"))
		th_pass(name);
}

static void check_pins_removed(int port)
{
	const char *name = "faults: pin folder removed under sidelane: programs "
			   "stay attached, pins put back within 3 s, traffic "
			   "byte-exact";
	int pins0 = count_pins(), progs0 = attached(), progs1, pins1 = 0, ok, err;
	__u64 t0, end;

	if (!TH_CHECK(pins0 > 0 && progs0 >= 3, name,
		      "before: %d pins, %d programs", pins0, progs0))
		return;
	if (!TH_CHECK(!(err = th_rm_tree(env.pin_root)), name, "rm -r %s: %s",
		      env.pin_root, strerror(-err)))
		return;
	progs1 = attached();
	t0 = th_now_ms();
	end = t0 + PUT_BACK_MS;
	while (th_now_ms() < end && (pins1 = count_pins()) < pins0)
		usleep(50 * 1000);
	ok = traffic(port, ROUNDS / 3);
	th_info("pins removed: programs %d -> %d right after, pins back %d/%d "
		"after %llu ms", progs0, progs1, pins1, pins0,
		(unsigned long long)(th_now_ms() - t0));
	if (TH_CHECK(progs1 == progs0, name, "programs %d -> %d: detached",
		     progs0, progs1) &&
	    TH_CHECK(pins1 == pins0, name, "%d of %d pins back", pins1, pins0) &&
	    TH_CHECK(th_file_has(env.log, "are put back"), name,
		     "the log does not say so") &&
	    TH_CHECK(ok == ROUNDS / 3, name, "%d of %d echoed", ok, ROUNDS / 3) &&
	    TH_CHECK(!kill(env.sidelane, 0), name, "sidelane is gone"))
		th_pass(name);
}

/* run must end within 3 s, exit 1, its log saying why. */
static void expect_stop(const char *name, const char *why)
{
	int st = th_wait(env.sidelane, PUT_BACK_MS); /* kills it past that */

	env.sidelane = 0;
	if (TH_CHECK(st == 1, name, "run %s (%d)",
		     st == -ETIMEDOUT ? "still ran" : "did not exit 1", st) &&
	    TH_CHECK(th_file_has(env.log, why), name, "the log does not say \"%s\"",
		     why))
		th_pass(name);
	else
		th_dump_log(env.log);
}

static void check_detached(void)
{
	const char *name = "faults: `sidelane detach` under a running sidecar: "
			   "run stops within 3 s, exit 1, saying why";
	char *argv[] = { (char *)th_sidelane_bin(), "detach", "--pin-root",
			 env.pin_root, NULL };
	char out[4096];
	int st = th_run(NULL, NULL, argv, out, sizeof(out), 10000);

	if (!TH_CHECK(st == 0, name, "detach: exit %d: %s", st, out))
		return;
	expect_stop(name, "is detached from its cgroup");
}

static void check_cgroup_removed(void)
{
	const char *name = "faults: the app's cgroup removed under a running "
			   "sidecar: run stops within 3 s, exit 1, saying why";

	if (!TH_CHECK(!rmdir(env.cgroup), name, "rmdir %s: %s", env.cgroup,
		      strerror(errno)))
		return;
	env.cgroup_made = false;
	expect_stop(name, "is detached from its cgroup");
}

int main(void)
{
	const char *setup = "faults: setup: echo server, 16 KiB tmpfs, sidelane run";
	int err, port = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	th_watchdog(120, "faults");
	snprintf(dir, sizeof(dir), "/tmp/sidelane-test-faults-%d", (int)getpid());
	snprintf(cfg_path, sizeof(cfg_path), "%s.yaml", dir);
	snprintf(alog_path, sizeof(alog_path), "%s/access.log", dir);
	err = th_cleanup_push(cleanup, NULL);
	if (!err && mkdir(dir, 0755))
		err = -errno;
	if (!err && mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV,
			  "size=16k,mode=0755"))
		err = -errno;
	mounts = !err;
	err = err ?: th_env_setup_opts(&env, "faults",
				       &(struct th_env_opts){ .sidecar = true });
	if (!err) {
		th_env_log_path(&env);
	}
	err = err ?: th_echo_server(256, &port);
	admin_port = err ? 0 : th_free_port();
	err = err ?: admin_port < 0 ? admin_port : start();
	if (!TH_RESULT(!err, setup, "%s (log %s)", strerror(-err), env.log))
		goto out;

	check_disk_full(port);
	check_read_only(port);
	check_pins_removed(port);
	check_detached();
	check_start_read_only();
	/* again, for the cgroup: detach left nothing behind */
	if (mounts > 1 && !umount2(dir, MNT_DETACH))
		mounts--;
	err = start();
	if (TH_CHECK(!err, "faults: restart after detach", "%s", strerror(-err)))
		check_cgroup_removed();
out:
	th_env_teardown(&env);
	th_cleanup_pop(cleanup, NULL, true);
	return th_summary();
}
