// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Integration test (tests/integ): the start-up self-test, sl_selftest_run()
 * (user/loader/selftest.c), called directly:
 * - it passes on this kernel, within 2 s, and really redirected;
 * - SIDELANE_SELFTEST_FAIL=<check> fails that check, with a reason naming
 *   it ("any": the first; a misspelt name fails too);
 * - after every run nothing is left: no sidelane-selftest-* cgroup, no new
 *   pin under /sys/fs/bpf, none of its programs, links or maps, and no new
 *   sl_sockops/sl_sk_msg program or link that no pin holds;
 * - run from inside a cgroup where `sidelane run` is attached, it leaves
 *   that fast path's pinned counters and sockhash alone.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include "loader/pins.h"
#include "sidelane.h"
#include "lib/cgroup.h"
#include "loader/selftest.h"
#include "harness.h"

#define MAX_IDS 8192
#define BUDGET_MS 2000 /* the brief: the whole call well under 2 s */
/* Programs and maps are freed by the kernel after the last reference
 * drops, the sockhash's (and the sk_msg program it holds) from a workqueue.
 */
#define GONE_WAIT_MS 2000

struct ids {
	__u32 id[MAX_IDS];
	int n;
};

static bool has_id(const struct ids *s, __u32 id)
{
	int i;

	for (i = 0; i < s->n; i++)
		if (s->id[i] == id)
			return true;
	return false;
}

static void add_id(struct ids *s, __u32 id)
{
	if (id && s->n < MAX_IDS && !has_id(s, id))
		s->id[s->n++] = id;
}

static bool is_sl_prog_name(const char *name)
{
	return !strcmp(name, "sl_sockops") || !strcmp(name, "sl_sk_msg");
}

/* Name of program id, "" if gone. */
static void prog_name(__u32 id, char *name, size_t len)
{
	struct bpf_prog_info info = {};
	__u32 ilen = sizeof(info);
	int fd = bpf_prog_get_fd_by_id(id);

	name[0] = '\0';
	if (fd < 0)
		return;
	if (!bpf_obj_get_info_by_fd(fd, &info, &ilen))
		snprintf(name, len, "%s", info.name);
	close(fd);
}

/* Loaded programs named sl_sockops / sl_sk_msg. */
static void sl_progs(struct ids *out)
{
	__u32 id = 0;
	char name[32];

	out->n = 0;
	while (!bpf_prog_get_next_id(id, &id)) {
		prog_name(id, name, sizeof(name));
		if (is_sl_prog_name(name))
			add_id(out, id);
	}
}

/* Links whose program is sl_sockops / sl_sk_msg. */
static void sl_links(struct ids *out)
{
	__u32 id = 0;
	char name[32];

	out->n = 0;
	while (!bpf_link_get_next_id(id, &id)) {
		struct bpf_link_info info = {};
		__u32 len = sizeof(info);
		int fd = bpf_link_get_fd_by_id(id);

		if (fd < 0)
			continue;
		if (!bpf_obj_get_info_by_fd(fd, &info, &len)) {
			prog_name(info.prog_id, name, sizeof(name));
			if (is_sl_prog_name(name))
				add_id(out, id);
		}
		close(fd);
	}
}

static bool prog_exists(__u32 id)
{
	int fd = bpf_prog_get_fd_by_id(id);

	if (fd >= 0)
		close(fd);
	return fd >= 0;
}

static bool link_exists(__u32 id)
{
	int fd = bpf_link_get_fd_by_id(id);

	if (fd >= 0)
		close(fd);
	return fd >= 0;
}

static bool map_exists(__u32 id)
{
	int fd = bpf_map_get_fd_by_id(id);

	if (fd >= 0)
		close(fd);
	return fd >= 0;
}

/* ---- directory scans (nftw has no user pointer: state lives here) ---- */

#define MAX_PATHS 4096

struct paths {
	char *p[MAX_PATHS];
	int n;
};

static struct paths *scan_out;
static struct ids *scan_pinned; /* prog and link ids held by pins */

static void paths_free(struct paths *s)
{
	while (s->n)
		free(s->p[--s->n]);
}

static bool has_path(const struct paths *s, const char *p)
{
	int i;

	for (i = 0; i < s->n; i++)
		if (!strcmp(s->p[i], p))
			return true;
	return false;
}

/* "prog_id:" and "link_id:" of a pinned object, from its fdinfo. */
static void note_pinned(const char *path)
{
	char fdinfo[64], line[256];
	unsigned int v;
	FILE *f;
	int fd = bpf_obj_get(path);

	if (fd < 0)
		return;
	snprintf(fdinfo, sizeof(fdinfo), "/proc/self/fdinfo/%d", fd);
	f = fopen(fdinfo, "re");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "prog_id: %u", &v) == 1 ||
		    sscanf(line, "link_id: %u", &v) == 1)
			add_id(scan_pinned, v);
	if (f)
		fclose(f);
	close(fd);
}

static int pin_entry(const char *path, const struct stat *st, int type,
		     struct FTW *ftw)
{
	(void)st;
	if (!ftw->level)
		return 0;
	if (scan_out && scan_out->n < MAX_PATHS)
		scan_out->p[scan_out->n++] = strdup(path);
	if (scan_pinned && type == FTW_F)
		note_pinned(path);
	return 0;
}

/* Every entry under the bpffs; and the prog/link ids its pins hold. */
static void scan_bpffs(struct paths *out, struct ids *pinned)
{
	scan_out = out;
	scan_pinned = pinned;
	if (out)
		out->n = 0;
	if (pinned)
		pinned->n = 0;
	nftw(SL_BPFFS_DEFAULT, pin_entry, 16, FTW_PHYS | FTW_MOUNT);
	scan_out = NULL;
	scan_pinned = NULL;
}

static int cg_entry(const char *path, const struct stat *st, int type,
		    struct FTW *ftw)
{
	(void)st;
	if (type == FTW_D && ftw->level &&
	    !strncmp(path + ftw->base, SL_SELFTEST_CGROUP_PREFIX,
		     strlen(SL_SELFTEST_CGROUP_PREFIX)) &&
	    scan_out->n < MAX_PATHS)
		scan_out->p[scan_out->n++] = strdup(path);
	return 0;
}

/* sidelane-selftest-* cgroups anywhere on the cgroup2 mount. */
static void scan_cgroups(struct paths *out)
{
	char mnt[PATH_MAX];

	out->n = 0;
	if (sl_cgroup2_mount(mnt, sizeof(mnt)))
		return;
	scan_out = out;
	nftw(mnt, cg_entry, 16, FTW_PHYS | FTW_MOUNT);
	scan_out = NULL;
}

/* Pin roots of other integration tests and deploy checks, which may run at
 * the same time on a shared machine (`sidelane run --pin-root`): their
 * pins come and go during our run. The self-test has no pin root at all;
 * libbpf would pin at the top level, sl_obj_pin_maps() under a pin root
 * such as SL_PIN_ROOT_DEFAULT, and both are checked.
 */
static bool others_pin_root(const char *path)
{
	static const char *const roots[] = { "sidelane-test-", "sl-deploy-",
					     "sidelane-bench-" };
	const char *rel = path + strlen(SL_BPFFS_DEFAULT "/");
	size_t i;

	for (i = 0; i < sizeof(roots) / sizeof(roots[0]); i++)
		if (!strncmp(rel, roots[i], strlen(roots[i])))
			return true;
	return false;
}

struct snapshot {
	struct paths pins, cgroups;
	struct ids progs, links;
};

static struct snapshot before;

static void take(struct snapshot *s)
{
	scan_bpffs(&s->pins, NULL);
	scan_cgroups(&s->cgroups);
	sl_progs(&s->progs);
	sl_links(&s->links);
}

/* Everything the run created is gone, and nothing new of ours is left. */
static void check_clean(const struct sl_selftest_result *r, const char *tag)
{
	static struct ids progs, links, pinned;
	struct paths pins = {}, cgroups = {};
	char name[160], bad[512] = "";
	__u64 t0 = th_now_ms();
	bool gone;
	int i;

	/* its own objects, by id */
	snprintf(name, sizeof(name), "selftest/%s: its programs, links and sockhash are gone",
		 tag);
	do {
		gone = !prog_exists(r->prog_ids[0]) && !prog_exists(r->prog_ids[1]) &&
		       !link_exists(r->link_ids[0]) &&
		       !(r->link_ids[1] && link_exists(r->link_ids[1])) &&
		       !map_exists(r->sockhash_id);
		if (!gone)
			usleep(5000);
	} while (!gone && th_now_ms() - t0 < GONE_WAIT_MS);
	if (TH_CHECK(r->prog_ids[0] && r->prog_ids[1] && r->link_ids[0] &&
			     r->sockhash_id,
		     name, "ids not reported: progs %u %u links %u %u map %u",
		     r->prog_ids[0], r->prog_ids[1], r->link_ids[0],
		     r->link_ids[1], r->sockhash_id) &&
	    TH_CHECK(gone, name,
		     "after %d ms: prog %u %s, prog %u %s, link %u %s, link %u %s, map %u %s",
		     GONE_WAIT_MS, r->prog_ids[0],
		     prog_exists(r->prog_ids[0]) ? "left" : "gone",
		     r->prog_ids[1], prog_exists(r->prog_ids[1]) ? "left" : "gone",
		     r->link_ids[0], link_exists(r->link_ids[0]) ? "left" : "gone",
		     r->link_ids[1],
		     r->link_ids[1] && link_exists(r->link_ids[1]) ? "left" : "gone",
		     r->sockhash_id, map_exists(r->sockhash_id) ? "left" : "gone")) {
		th_info("%s: objects freed %llu ms after return", tag,
			(unsigned long long)(th_now_ms() - t0));
		th_pass(name);
	}

	/* sl_* programs and links that appeared and no pin holds */
	snprintf(name, sizeof(name),
		 "selftest/%s: no new sl_sockops/sl_sk_msg program or link left", tag);
	scan_bpffs(NULL, &pinned);
	sl_progs(&progs);
	sl_links(&links);
	for (i = 0; i < progs.n; i++)
		if (!has_id(&before.progs, progs.id[i]) &&
		    !has_id(&pinned, progs.id[i]))
			snprintf(bad + strlen(bad), sizeof(bad) - strlen(bad),
				 " prog %u", progs.id[i]);
	for (i = 0; i < links.n; i++)
		if (!has_id(&before.links, links.id[i]) &&
		    !has_id(&pinned, links.id[i]))
			snprintf(bad + strlen(bad), sizeof(bad) - strlen(bad),
				 " link %u", links.id[i]);
	TH_RESULT(!bad[0], name, "left:%s", bad);

	snprintf(name, sizeof(name), "selftest/%s: no new pin under " SL_BPFFS_DEFAULT,
		 tag);
	bad[0] = '\0';
	scan_bpffs(&pins, NULL);
	for (i = 0; i < pins.n; i++) {
		if (has_path(&before.pins, pins.p[i]))
			continue;
		if (others_pin_root(pins.p[i])) {
			th_info("%s: new pin %s belongs to another test's pin root",
				tag, pins.p[i]);
			continue;
		}
		snprintf(bad + strlen(bad), sizeof(bad) - strlen(bad), " %s",
			 pins.p[i]);
	}
	TH_RESULT(!bad[0], name, "new:%s", bad);

	snprintf(name, sizeof(name), "selftest/%s: no sidelane-selftest-* cgroup left",
		 tag);
	bad[0] = '\0';
	scan_cgroups(&cgroups);
	for (i = 0; i < cgroups.n; i++)
		if (!has_path(&before.cgroups, cgroups.p[i]))
			snprintf(bad + strlen(bad), sizeof(bad) - strlen(bad),
				 " %s", cgroups.p[i]);
	TH_RESULT(!bad[0], name, "left:%s", bad);
	paths_free(&pins);
	paths_free(&cgroups);
}

static void report(const char *tag, int ret, const struct sl_selftest_result *r)
{
	th_info("%s: ret %d ok %d check \"%s\" why \"%s\"", tag, ret, r->ok,
		r->check, r->why);
	th_info("%s: %u ms in all, %u ms of checks; %llu messages, %llu "
		"redirected; sk_msg %s; %u inherited sock_ops", tag,
		r->elapsed_ms, r->checks_ms, (unsigned long long)r->msgs,
		(unsigned long long)r->redirected,
		r->sk_msg_link ? "bpf_link" : "BPF_PROG_ATTACH",
		r->inherited_sockops);
}

static void test_pass(void)
{
	struct sl_selftest_result r;
	char name[128];
	int ret;

	unsetenv(SL_SELFTEST_ENV_FAIL);
	th_watchdog(20, "selftest/pass");
	ret = sl_selftest_run(&r);
	report("pass", ret, &r);
	snprintf(name, sizeof(name), "selftest/pass: passes on this kernel");
	TH_RESULT(ret == 0 && r.ok == 1 && !r.check[0] && !r.why[0], name,
		  "ret %d ok %d: %s: %s", ret, r.ok, r.check, r.why);
	snprintf(name, sizeof(name), "selftest/pass: completes in under %d ms",
		 BUDGET_MS);
	TH_RESULT(r.elapsed_ms < BUDGET_MS, name, "took %u ms", r.elapsed_ms);
	snprintf(name, sizeof(name),
		 "selftest/pass: every message went through the redirect");
	TH_RESULT(r.msgs > 100 && r.redirected >= r.msgs, name,
		  "%llu of %llu messages redirected",
		  (unsigned long long)r.redirected, (unsigned long long)r.msgs);
	check_clean(&r, "pass");
}

/* SIDELANE_SELFTEST_FAIL=value: fails check `check`, why contains `needle`. */
static void test_forced(const char *value, const char *check, const char *needle)
{
	struct sl_selftest_result r;
	char name[160], tag[64];
	int ret;

	snprintf(tag, sizeof(tag), "forced %s", value);
	setenv(SL_SELFTEST_ENV_FAIL, value, 1);
	th_watchdog(20, tag);
	ret = sl_selftest_run(&r);
	unsetenv(SL_SELFTEST_ENV_FAIL);
	report(tag, ret, &r);
	snprintf(name, sizeof(name),
		 "selftest/%s: fails check \"%s\" with a reason naming %s", tag,
		 check, needle);
	TH_RESULT(ret == 0 && r.ok == 0 && !strcmp(r.check, check) &&
			  strstr(r.why, needle),
		  name, "ret %d ok %d check \"%s\" why \"%s\"", ret, r.ok,
		  r.check, r.why);
	snprintf(name, sizeof(name), "selftest/%s: completes in under %d ms", tag,
		 BUDGET_MS);
	TH_RESULT(r.elapsed_ms < BUDGET_MS, name, "took %u ms", r.elapsed_ms);
	check_clean(&r, tag);
}

/* From inside a cgroup where `sidelane run` is attached (as `sidelane run`
 * itself will call it on a restart): that fast path's counters and
 * sockhash do not move, and no inherited sock_ops touched the test.
 */
static void test_beside_attached(void)
{
	struct sl_counters c0 = {}, c1 = {};
	struct sl_selftest_result r;
	struct th_env env;
	char name[160];
	int e0, e1, ret;

	th_watchdog(60, "selftest/attached");
	if (!th_env_start(&env, "selftest", true))
		goto out;
	e0 = th_map_entries(&env, SL_MAP_SOCKHASH);
	th_counters(&env, &c0);
	ret = sl_selftest_run(&r);
	th_counters(&env, &c1);
	e1 = th_map_entries(&env, SL_MAP_SOCKHASH);
	report("attached", ret, &r);
	snprintf(name, sizeof(name),
		 "selftest/attached: passes from inside an accelerated cgroup");
	TH_RESULT(ret == 0 && r.ok, name, "ret %d: %s: %s", ret, r.check, r.why);
	snprintf(name, sizeof(name),
		 "selftest/attached: the pinned fast path's counters and sockhash are untouched");
	TH_RESULT(!memcmp(&c0, &c1, sizeof(c0)) && e0 == e1, name,
		  "inserted %llu->%llu insert_failed %llu->%llu redirect_ok "
		  "%llu->%llu, sockhash %d->%d",
		  (unsigned long long)c0.sock_inserted,
		  (unsigned long long)c1.sock_inserted,
		  (unsigned long long)c0.sock_insert_failed,
		  (unsigned long long)c1.sock_insert_failed,
		  (unsigned long long)c0.redirect_ok,
		  (unsigned long long)c1.redirect_ok, e0, e1);
	snprintf(name, sizeof(name),
		 "selftest/attached: its cgroup inherits no sock_ops program");
	TH_RESULT(r.inherited_sockops == 0, name, "%u inherited",
		  r.inherited_sockops);
out:
	snprintf(name, sizeof(name), "selftest/attached: teardown");
	TH_RESULT(!th_env_teardown(&env), name, "left something behind");
}

int main(void)
{
	int i;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (geteuid()) {
		th_skip("selftest", "needs root");
		return th_summary();
	}
	take(&before);
	th_info("before: %d sl_* programs, %d sl_* links, %d bpffs entries, "
		"%d sidelane-selftest-* cgroups", before.progs.n, before.links.n,
		before.pins.n, before.cgroups.n);
	for (i = 0; i < before.cgroups.n; i++)
		th_info("stale from an earlier run: %s", before.cgroups.p[i]);

	test_pass();
	test_forced("fionread", "fionread", "FIONREAD");
	test_forced("any", "sockhash", "sockhash");
	test_forced("redirect", "redirect", "redirected");
	test_forced("fionred", "", SL_SELFTEST_ENV_FAIL "=fionred names no check");
	test_beside_attached();
	th_watchdog(0, NULL);
	paths_free(&before.pins);
	paths_free(&before.cgroups);
	return th_summary();
}
