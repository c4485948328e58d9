// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Integration test (tests/integ): restarting `sidelane run` over what an
 * earlier build pinned.
 * - The proxy's totals in sl_proxy_stats continue from what the previous
 *   process published.
 * - A map this build has and the pins lack (an older build's pin set) is
 *   created and pinned, while the pinned links are reused as they are.
 * - A pinned map whose layout differs from this build's is refused with a
 *   message naming the map and the way out; nothing pinned is changed.
 * - Programs of another build on the pinned links (here a stand-in loaded
 *   by the test) are replaced in place, and a connection accelerated
 *   before the kill -9 and the restart keeps redirecting, bytes intact.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <bpf/bpf.h>
#include "harness.h"
#include "sidelane.h"
#include "stats.h"

/* Info of the link pinned as name under env's pin root (zeroes if none). */
static struct bpf_link_info pinned_link(const struct th_env *env,
					const char *name)
{
	struct bpf_link_info info = {};
	__u32 len = sizeof(info);
	char path[PATH_MAX + 64];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", env->pin_root, name);
	fd = bpf_obj_get(path);
	if (fd >= 0 && bpf_obj_get_info_by_fd(fd, &info, &len))
		memset(&info, 0, sizeof(info));
	if (fd >= 0)
		close(fd);
	return info;
}

/* Id of the link pinned as name, 0 if none. */
static __u32 link_id(const struct th_env *env, const char *name)
{
	return pinned_link(env, name).id;
}

static bool pinned(const struct th_env *env, const char *name)
{
	char path[PATH_MAX + 64];

	snprintf(path, sizeof(path), "%s/%s", env->pin_root, name);
	return !access(path, F_OK);
}

/* `sidelane run` again on env's pins, for at most ms (then killed, as a
 * crash would end it). Its exit status or -ETIMEDOUT; its log in out.
 */
static int rerun_in(struct th_env *env, const char *sidecar, char *out,
		    size_t len, int ms)
{
	char *argv[] = { (char *)th_sidelane_bin(), "run", "--cgroup", env->cgroup,
			 "--pin-root", env->pin_root, "--app-sockets", "all",
			 sidecar ? "--sidecar-cgroup" : NULL, (char *)sidecar,
			 NULL };
	char log[] = "/tmp/sidelane-upgrade-XXXXXX";
	int fd = mkstemp(log), st;
	ssize_t n;
	pid_t pid;

	if (fd < 0)
		return -errno;
	pid = fork();
	if (!pid) {
		dup2(fd, 1);
		dup2(fd, 2);
		execv(argv[0], argv);
		_exit(127);
	}
	st = pid < 0 ? -errno : th_wait(pid, ms); /* kills it after ms */
	n = pread(fd, out, len - 1, 0);
	out[n > 0 ? n : 0] = '\0';
	close(fd);
	unlink(log);
	return st;
}

static int rerun(struct th_env *env, char *out, size_t len, int ms)
{
	return rerun_in(env, NULL, out, len, ms);
}

/* Cgroup id of the link pinned as name, 0 if none or its cgroup is gone. */
static __u64 link_cgroup(const struct th_env *env, const char *name)
{
	return pinned_link(env, name).cgroup.cgroup_id;
}

/* A container restart: the sidecar comes back in a new cgroup, the old one
 * is gone with its links' cgroup. The new run must replace those links,
 * not refuse to start (it did: "serves another sidecar cgroup (id 0)").
 */
static void test_new_sidecar_cgroup(struct th_env *env, char *out, size_t len)
{
	const char *t = "upgrade: a sidecar restarted in a new cgroup replaces the "
			"links of the one that is gone";
	char base[PATH_MAX], s1[PATH_MAX + 128], s2[PATH_MAX + 128], *slash;
	struct stat st2;
	int st;

	snprintf(base, sizeof(base), "%s", env->cgroup);
	slash = strrchr(base, '/');
	if (!TH_CHECK(slash, t, "cgroup path %s", env->cgroup))
		return;
	*slash = '\0';
	snprintf(s1, sizeof(s1), "%s/%s-side1", base, env->name);
	snprintf(s2, sizeof(s2), "%s/%s-side2", base, env->name);
	if (!TH_CHECK(!mkdir(s1, 0755) && !mkdir(s2, 0755), t, "mkdir: %s",
		      strerror(errno)))
		goto out;
	/* killed: as a crash */
	st = rerun_in(env, s1, out, len, 2500 * TH_SLOW);
	if (!TH_CHECK(st == -ETIMEDOUT && link_cgroup(env, SL_PIN_LINK_GETSOCKOPT),
		      t, "first run (%d): %s", st, out))
		goto out;
	usleep(100 * 1000);
	if (!TH_CHECK(!rmdir(s1), t, "rmdir %s: %s", s1, strerror(errno)))
		goto out;
	st = rerun_in(env, s2, out, len, 2500);
	stat(s2, &st2);
	if (TH_CHECK(st == -ETIMEDOUT, t, "run in the new cgroup ended (%d): %s", st,
		     out) &&
	    TH_CHECK(strstr(out, "served a cgroup that is gone"), t,
		     "nothing replaced: %s", out) &&
	    TH_CHECK(link_cgroup(env, SL_PIN_LINK_GETSOCKOPT) == (__u64)st2.st_ino &&
			     link_cgroup(env, SL_PIN_LINK_SOCKOPS_SIDECAR) ==
				     (__u64)st2.st_ino,
		     t, "sidecar links on cgroup %llu/%llu, want %llu",
		     (unsigned long long)link_cgroup(env, SL_PIN_LINK_GETSOCKOPT),
		     (unsigned long long)link_cgroup(env, SL_PIN_LINK_SOCKOPS_SIDECAR),
		     (unsigned long long)st2.st_ino))
		th_pass(t);
out:
	usleep(100 * 1000);
	rmdir(s1);
	rmdir(s2);
}

/* Name of the program a pinned link runs, "" if unknown. */
static void link_prog_name(const struct th_env *env, const char *name,
			   char *out, size_t len)
{
	struct bpf_prog_info pi = {};
	struct bpf_link_info li = {};
	__u32 plen = sizeof(pi), llen = sizeof(li);
	char path[PATH_MAX + 64];
	int fd, pfd = -1;

	out[0] = '\0';
	snprintf(path, sizeof(path), "%s/%s", env->pin_root, name);
	fd = bpf_obj_get(path);
	if (fd >= 0 && !bpf_obj_get_info_by_fd(fd, &li, &llen))
		pfd = bpf_prog_get_fd_by_id(li.prog_id);
	if (pfd >= 0 && !bpf_obj_get_info_by_fd(pfd, &pi, &plen))
		snprintf(out, len, "%s", pi.name);
	if (pfd >= 0)
		close(pfd);
	if (fd >= 0)
		close(fd);
}

/* A message over the pair, checked at the other end. */
static bool ping(int a, int b, const char *msg)
{
	char buf[64] = "";
	size_t n = strlen(msg);

	return write(a, msg, n) == (ssize_t)n && read(b, buf, sizeof(buf)) == (ssize_t)n &&
	       !memcmp(buf, msg, n);
}

/* With sidelane down (killed), run a stand-in "older" sockops program on
 * the pinned link, restart: the link must get this build's program back
 * while a connection made before all that keeps redirecting.
 */
static void test_inplace(struct th_env *env, char *out, size_t len)
{
	/* r0 = 1; exit: a sockops program that does nothing */
	const struct bpf_insn insns[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 0, .imm = 1 },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	const char *t = "upgrade: pinned links get this build's programs in place; "
			"an accelerated connection survives kill -9 and restart";
	struct sl_counters c0 = {}, c1 = {}, c2 = {};
	char path[PATH_MAX + 64], name[64];
	int cfd = -1, sfd = -1, pfd = -1, lfd = -1, st;

	if (!TH_CHECK(!th_enter(env) && !th_tcp_pair("127.0.0.1", "127.0.0.1",
						      &cfd, &sfd),
		      t, "tcp pair in the app cgroup: %s", strerror(errno)))
		goto out;
	th_leave(env);
	/* sidelane is down: the last rerun() ended it with SIGKILL */
	pfd = bpf_prog_load(BPF_PROG_TYPE_SOCK_OPS, "old_sockops", "GPL", insns,
			    2, NULL);
	snprintf(path, sizeof(path), "%s/%s", env->pin_root, SL_PIN_LINK_SOCKOPS);
	lfd = bpf_obj_get(path);
	if (!TH_CHECK(pfd >= 0 && lfd >= 0 && !bpf_link_update(lfd, pfd, NULL), t,
		      "putting a stand-in program on the link: %s",
		      strerror(errno)))
		goto out;
	th_counters(env, &c0);
	if (!TH_CHECK(ping(cfd, sfd, "while-down"), t, "no bytes while sidelane was down"))
		goto out;
	th_counters(env, &c1);
	st = rerun(env, out, len, 2500);
	link_prog_name(env, SL_PIN_LINK_SOCKOPS, name, sizeof(name));
	if (!TH_CHECK(st == -ETIMEDOUT, t, "run ended (%d): %s", st, out) ||
	    !TH_CHECK(!strcmp(name, "sl_sockops"), t, "link runs \"%s\"", name) ||
	    !TH_CHECK(strstr(out, "replaced the pinned ones in 1 link(s)"), t,
		      "no upgrade said: %s", out) ||
	    !TH_CHECK(ping(sfd, cfd, "after-restart"), t, "no bytes after restart"))
		goto out;
	th_counters(env, &c2);
	TH_RESULT(c1.redirect_ok > c0.redirect_ok &&
			  c2.redirect_ok > c1.redirect_ok,
		  t, "not redirected: %llu, %llu, %llu",
		  (unsigned long long)c0.redirect_ok,
		  (unsigned long long)c1.redirect_ok,
		  (unsigned long long)c2.redirect_ok);
out:
	if (lfd >= 0)
		close(lfd);
	if (pfd >= 0)
		close(pfd);
	if (cfd >= 0)
		close(cfd);
	if (sfd >= 0)
		close(sfd);
}

int main(void)
{
	const char *t;
	char out[8192], path[PATH_MAX + 64];
	struct sl_proxy_counters pc = {};
	struct th_env env;
	__u32 before, zero = 0;
	int st, fd = -1;

	setvbuf(stdout, NULL, _IOLBF, 0);
	th_watchdog(60, "upgrade");
	if (!th_env_start(&env, "upgrade", true))
		goto out;
	th_leave(&env);
	/* the running one stops as on SIGTERM: its pins stay */
	kill(env.sidelane, SIGTERM);
	th_wait(env.sidelane, 10000);
	env.sidelane = 0;
	before = link_id(&env, SL_PIN_LINK_SOCKOPS);

	t = "upgrade: the proxy's totals continue after a restart";
	snprintf(path, sizeof(path), "%s/%s", env.pin_root, SL_MAP_PROXY_STATS);
	fd = bpf_obj_get(path);
	pc.pid = 1; /* another process's numbers */
	pc.accepted = 1234;
	pc.closed[0] = 7;
	pc.active = 5;
	if (TH_CHECK(fd >= 0 && !bpf_map_update_elem(fd, &zero, &pc, BPF_ANY), t,
		     "writing %s: %s", path, strerror(errno))) {
		st = rerun(&env, out, sizeof(out), 2500);
		memset(&pc, 0, sizeof(pc));
		bpf_map_lookup_elem(fd, &zero, &pc);
		if (TH_CHECK(st == -ETIMEDOUT, t, "run ended (%d): %s", st, out) &&
		    TH_CHECK(pc.pid > 1 && pc.accepted == 1234 &&
				     pc.closed[0] == 7 && pc.active == 0,
			     t, "pid %llu accepted %llu done %llu active %llu",
			     (unsigned long long)pc.pid,
			     (unsigned long long)pc.accepted,
			     (unsigned long long)pc.closed[0],
			     (unsigned long long)pc.active))
			th_pass(t);
	}
	if (fd >= 0)
		close(fd);
	fd = -1;

	t = "upgrade: a map missing from the pins is added, the links reused";
	unlink(path);
	st = rerun(&env, out, sizeof(out), 2500);
	if (TH_CHECK(st == -ETIMEDOUT, t, "run ended (%d) instead of running: %s",
		     st, out) &&
	    TH_CHECK(strstr(out, "reusing the pinned fast path"), t,
		     "did not reuse: %s", out) &&
	    TH_CHECK(pinned(&env, SL_MAP_PROXY_STATS), t, "%s not pinned again",
		     SL_MAP_PROXY_STATS) &&
	    TH_CHECK(before && link_id(&env, SL_PIN_LINK_SOCKOPS) == before, t,
		     "sockops link %u became %u", before,
		     link_id(&env, SL_PIN_LINK_SOCKOPS)))
		th_pass(t);

	test_inplace(&env, out, sizeof(out));
	test_new_sidecar_cgroup(&env, out, sizeof(out));

	t = "upgrade: a pinned map of another layout is refused, pins untouched";
	unlink(path);
	/* what a build with a different struct sl_proxy_counters pinned */
	fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, SL_MAP_PROXY_STATS, 4, 8, 1, NULL);
	if (!TH_CHECK(fd >= 0 && !bpf_obj_pin(fd, path), t, "pinning a map: %s",
		      strerror(errno)))
		goto out;
	st = rerun(&env, out, sizeof(out), 10000);
	before = link_id(&env, SL_PIN_LINK_SOCKOPS);
	if (TH_CHECK(st == 1, t, "exit %d, want 1: %s", st, out) &&
	    TH_CHECK(strstr(out, SL_MAP_PROXY_STATS " was pinned by a build with "
				 "another map layout (value_size 8 pinned"),
		     t, "no clear message: %s", out) &&
	    TH_CHECK(strstr(out, "sidelane detach --pin-root"), t,
		     "no way out named: %s", out) &&
	    TH_CHECK(link_id(&env, SL_PIN_LINK_SOCKOPS) == before, t,
		     "the pinned link changed") &&
	    TH_CHECK(pinned(&env, SL_MAP_PROXY_STATS), t, "the odd map was removed"))
		th_pass(t);
out:
	if (fd >= 0)
		close(fd);
	t = "upgrade: teardown";
	TH_RESULT(!th_env_teardown(&env), t, "left something behind");
	return th_summary();
}
