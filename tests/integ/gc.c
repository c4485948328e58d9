// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Integration test (tests/integ): `sidelane gc` (user/loader/gc.c, the rule in
 * user/loader/gc.h). Three pin roots made by the real `sidelane run`, all named
 * with a prefix unique to this test so nobody else's pins are ever touched:
 * - "dead": a pod that is gone (run stopped, app and sidecar cgroups
 *   removed): removed, and only that;
 * - "live": a running sidelane: kept;
 * - "restarting": the app's cgroup is gone but the sidecar's lives (an app
 *   container restarting): kept;
 * and a folder with the prefix that is no pin root: kept. A dry run first
 * removes nothing. Everything is removed on every exit path.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <bpf/bpf.h>
#include "loader/pins.h"
#include "sidelane.h"
#include "harness.h"
#include "loader/fastpath_user.h"
#include "loader/gc.h"

#define LOG_DIR "build/tests/logs"
#define READY_MS 20000

enum { DEAD, LIVE, RESTARTING, N_ROOTS };
static const char *const root_tag[N_ROOTS] = { "dead", "live", "restarting" };

static struct {
	char prefix[64];
	char cfg[PATH_MAX], log[PATH_MAX];
	char junk[PATH_MAX];
	struct th_env app[N_ROOTS], side_env; /* side_env: the restarting one's sidecar */
	char side[N_ROOTS][PATH_MAX + 16]; /* sidecar cgroups under the apps */
	char pin_root[N_ROOTS][PATH_MAX];
	pid_t pid[N_ROOTS];
} g;

static void sleep_ms(int ms)
{
	usleep(ms * 1000);
}

static void stop(int i)
{
	if (g.pid[i] > 0) {
		kill(g.pid[i], SIGTERM);
		th_wait(g.pid[i], 10000);
	}
	g.pid[i] = 0;
}

static void cleanup(void *arg)
{
	char out[4096];
	int i, k;

	(void)arg;
	for (i = 0; i < N_ROOTS; i++) {
		char *argv[] = { (char *)th_sidelane_bin(), "detach", "--pin-root",
				 g.pin_root[i], NULL };

		stop(i);
		if (g.pin_root[i][0] && !access(g.pin_root[i], F_OK))
			th_run(NULL, NULL, argv, out, sizeof(out), 10000);
		/* a sidelane just killed may still be leaving its cgroup */
		for (k = 0; g.side[i][0] && k < 150 && rmdir(g.side[i]) &&
			    errno == EBUSY;
		     k++)
			sleep_ms(20);
	}
	if (g.junk[0])
		rmdir(g.junk);
	if (g.cfg[0])
		unlink(g.cfg);
}

/* `sidelane run` for root i with the given sidecar cgroup, until it says it
 * is running. 0 or -errno.
 */
static int start(int i, const char *sidecar)
{
	return th_start_run(g.cfg, g.app[i].cgroup, sidecar, g.pin_root[i], g.log,
			    READY_MS, &g.pid[i]);
}

/* Cgroup id link_sockops of root i serves (0: gone), or -errno. */
static long long sockops_cgroup(int i)
{
	struct bpf_link_info info = {};
	__u32 len = sizeof(info);
	int fd = sl_pin_open(g.pin_root[i], SL_PIN_LINK_SOCKOPS);
	long long ret;

	if (fd < 0)
		return fd;
	ret = bpf_obj_get_info_by_fd(fd, &info, &len) ? -errno :
							 (long long)info.cgroup.cgroup_id;
	close(fd);
	return ret;
}

/* The kernel releases a removed cgroup's links asynchronously. */
static bool wait_orphaned(int i)
{
	__u64 deadline = th_now_ms() + 10000;

	while (sockops_cgroup(i) != 0) {
		if (th_now_ms() > deadline)
			return false;
		sleep_ms(20);
	}
	return true;
}

static bool rmdir_wait(const char *path)
{
	int k;

	for (k = 0; k < 150 && rmdir(path) && errno == EBUSY; k++)
		sleep_ms(20);
	return access(path, F_OK);
}

/* sl_gc() into a string. */
static int gc(bool dry_run, char *out, size_t len)
{
	FILE *f = fmemopen(out, len, "w");
	int ret;

	if (!f)
		return -errno;
	ret = sl_gc(NULL, g.prefix, dry_run, f);
	fclose(f);
	return ret;
}

static bool line_has(const char *out, const char *start, const char *dir,
		     const char *what)
{
	char want[PATH_MAX + 64];
	const char *l;

	snprintf(want, sizeof(want), "%s %s: ", start, dir);
	l = strstr(out, want);
	return l && (!what || (strstr(l, what) && strstr(l, what) < strchr(l, '\n')));
}

static bool exists(const char *path)
{
	return !access(path, F_OK);
}

static void check_gc(void)
{
	static char out[16384];
	const char *name = "gc: a dry run says what it would remove, removes nothing";
	int ret;

	ret = gc(true, out, sizeof(out));
	if (TH_CHECK(ret == 1, name, "returned %d: %s", ret, out) &&
	    TH_CHECK(line_has(out, "would remove", g.pin_root[DEAD], "is gone") &&
			     line_has(out, "skipped", g.pin_root[LIVE], "alive") &&
			     line_has(out, "skipped", g.pin_root[RESTARTING],
				      "still serves cgroup id") &&
			     line_has(out, "skipped", g.junk,
				      "not a sidelane pin root"),
		     name, "%s", out) &&
	    TH_CHECK(exists(g.pin_root[DEAD]), name, "%s is gone", g.pin_root[DEAD]))
		th_pass(name);

	name = "gc: the deleted pod's pin root is removed, the live one kept";
	ret = gc(false, out, sizeof(out));
	if (TH_CHECK(ret == 1, name, "returned %d: %s", ret, out) &&
	    TH_CHECK(line_has(out, "removed", g.pin_root[DEAD], "MiB of maps freed") &&
			     line_has(out, "skipped", g.pin_root[LIVE], "alive"),
		     name, "%s", out) &&
	    TH_CHECK(!exists(g.pin_root[DEAD]), name, "%s still there",
		     g.pin_root[DEAD]) &&
	    TH_CHECK(sockops_cgroup(LIVE) > 0 && g.pid[LIVE] > 0 &&
			     waitpid(g.pid[LIVE], NULL, WNOHANG) == 0,
		     name, "the live sidelane lost its link or died"))
		th_pass(name);

	name = "gc: a pod whose app restarted (sidecar alive) and a folder of no pin "
	       "root are kept";
	TH_RESULT(exists(g.pin_root[RESTARTING]) && exists(g.junk) &&
			  sockops_cgroup(RESTARTING) == 0,
		  name, "%s", out);
}

/* The CLI, once main.c has the command. */
static void check_cli(void)
{
	const char *name = "gc: `sidelane gc --dry-run --prefix` runs sl_gc";
	char *argv[] = { (char *)th_sidelane_bin(), "gc", "--dry-run", "--prefix",
			 g.prefix, NULL };
	char *bad[] = { (char *)th_sidelane_bin(), "gc", "--prefix", "a/b", NULL };
	static char out[16384];
	int st;

	st = th_run(NULL, NULL, argv, out, sizeof(out), 20000);
	if (strstr(out, "unknown command")) {
		th_skip(name, "`gc` is not in main.c's command table yet");
		return;
	}
	if (!TH_CHECK(st == 0 && line_has(out, "skipped", g.pin_root[LIVE], "alive") &&
			      strstr(out, "gc: 0 would be removed"),
		      name, "exit %d: %s", st, out))
		return;
	st = th_run(NULL, NULL, bad, out, sizeof(out), 20000);
	TH_RESULT(st == 2, name, "a bad prefix: exit %d: %s", st, out);
}

int main(void)
{
	const char *name = "gc: setup";
	char cfgtext[256];
	int i, port, err;

	setvbuf(stdout, NULL, _IOLBF, 0);
	th_watchdog(120, "gc");
	if (access(th_sidelane_bin(), X_OK)) {
		th_skip(name, "no sidelane binary (make first)");
		return th_summary();
	}
	if (!TH_CHECK(!th_cleanup_push(cleanup, NULL), name, "cleanup slots"))
		return th_summary();
	snprintf(g.prefix, sizeof(g.prefix), "sidelane-gctest-%d-", (int)getpid());
	snprintf(g.junk, sizeof(g.junk), SL_BPFFS_DEFAULT "/%sjunk", g.prefix);
	snprintf(g.cfg, sizeof(g.cfg), "/tmp/sidelane-gc-%d.yaml", (int)getpid());
	snprintf(g.log, sizeof(g.log), LOG_DIR "/sidelane-gc-%d.log", (int)getpid());
	mkdir(LOG_DIR, 0755);
	port = th_free_port();
	snprintf(cfgtext, sizeof(cfgtext),
		 "capture:\n  outbound: \"127.0.0.1:%d\"\nadmin:\n  listen: \"\"\n",
		 port);
	if (!TH_CHECK(port > 0 && !th_write_text(g.cfg, cfgtext), name,
		      "config: %s", strerror(errno)) ||
	    !TH_CHECK(!mkdir(g.junk, 0700), name, "mkdir %s: %s", g.junk,
		      strerror(errno)))
		goto out;
	for (i = 0; i < N_ROOTS; i++) {
		char tag[16];

		snprintf(tag, sizeof(tag), "gc-%s", root_tag[i]);
		err = th_env_setup(&g.app[i], tag, false);
		snprintf(g.pin_root[i], sizeof(g.pin_root[i]),
			 SL_BPFFS_DEFAULT "/%s%s", g.prefix, root_tag[i]);
		if (!err && i != RESTARTING) {
			snprintf(g.side[i], sizeof(g.side[i]), "%s/side",
				 g.app[i].cgroup);
			err = mkdir(g.side[i], 0755) ? -errno : 0;
		}
		if (!TH_CHECK(!err, name, "cgroups: %s", strerror(-err)))
			goto out;
	}
	/* the restarting pod's sidecar: a sibling that stays */
	err = th_env_setup(&g.side_env, "gc-sidecar", false);
	if (!TH_CHECK(!err, name, "cgroup: %s", strerror(-err)))
		goto out;

	/* a pod deleted: sidelane stopped (pins stay), its cgroups removed */
	err = start(DEAD, g.side[DEAD]);
	stop(DEAD);
	if (!TH_CHECK(!err, name, "run (dead): %s", strerror(-err)) ||
	    !TH_CHECK(rmdir_wait(g.side[DEAD]) && rmdir_wait(g.app[DEAD].cgroup),
		      name, "removing the dead pod's cgroups: %s", strerror(errno)))
		goto out;
	/* an app container restarting: its cgroup gone, the sidecar's not */
	err = start(RESTARTING, g.side_env.cgroup);
	stop(RESTARTING);
	if (!TH_CHECK(!err, name, "run (restarting): %s", strerror(-err)) ||
	    !TH_CHECK(rmdir_wait(g.app[RESTARTING].cgroup), name,
		      "removing the app cgroup: %s", strerror(errno)))
		goto out;
	err = start(LIVE, g.side[LIVE]);
	if (!TH_CHECK(!err, name, "run (live): %s", strerror(-err)) ||
	    !TH_CHECK(wait_orphaned(DEAD) && wait_orphaned(RESTARTING), name,
		      "the removed cgroups' links still report a cgroup"))
		goto out;
	th_pass(name);

	check_gc();
	check_cli();
out:
	th_cleanup_pop(cleanup, NULL, true);
	name = "gc: teardown";
	err = 0;
	for (i = 0; i < N_ROOTS; i++) {
		err |= th_env_teardown(&g.app[i]);
		err |= exists(g.pin_root[i]);
	}
	err |= th_env_teardown(&g.side_env);
	TH_RESULT(!err && !exists(g.junk), name, "left something behind");
	if (!th_failed())
		unlink(g.log);
	return th_summary();
}
