// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Integration test (tests/integ): once `sidelane run` is up, every thread of
 * it holds CAP_BPF and CAP_NET_ADMIN only (effective, permitted, bounding),
 * with no_new_privs set; and it still does its run-time work with that
 * (the other tests relay through it, `detach` after it is tested here).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/capability.h>
#include "harness.h"

#define WANT ((1ULL << CAP_BPF) | (1ULL << CAP_NET_ADMIN))

/* Value of "Key:\t<hex>" in a status file, or ~0 if missing. */
static unsigned long long status_hex(const char *path, const char *key)
{
	unsigned long long v = ~0ULL;
	char line[256];
	size_t n = strlen(key);
	FILE *f = fopen(path, "r");

	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, key, n) && line[n] == ':')
			v = strtoull(line + n + 1, NULL, 16);
	if (f)
		fclose(f);
	return v;
}

static bool wait_log(const char *log, const char *what, int ms)
{
	__u64 end = th_now_ms() + ms;
	char buf[16384];

	do {
		FILE *f = fopen(log, "r");
		size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;

		if (f)
			fclose(f);
		buf[n] = '\0';
		if (strstr(buf, what))
			return true;
		usleep(20 * 1000);
	} while (th_now_ms() < end);
	return false;
}

int main(void)
{
	static const char *const keys[] = { "CapEff", "CapPrm", "CapBnd",
					    "CapInh", "CapAmb", "NoNewPrivs" };
	const char *t = "privs: every thread keeps CAP_BPF and CAP_NET_ADMIN only";
	char dir[64], path[PATH_MAX], bad[512] = "";
	struct th_env env;
	struct dirent *de;
	int threads = 0;
	DIR *d = NULL;
	size_t i;

	setvbuf(stdout, NULL, _IOLBF, 0);
	th_watchdog(60, "privs");
	if (!th_env_start(&env, "privs", true))
		goto out;
	th_leave(&env);
	/* the env is ready once the links are pinned; the drop comes later */
	if (!TH_CHECK(wait_log(env.log, "running;", 10000), t,
		      "no \"running\" in %s", env.log))
		goto out;
	snprintf(dir, sizeof(dir), "/proc/%d/task", (int)env.sidelane);
	d = opendir(dir);
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		threads++;
		snprintf(path, sizeof(path), "%s/%s/status", dir, de->d_name);
		for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
			unsigned long long v = status_hex(path, keys[i]);
			unsigned long long want = i < 3 ? WANT : i < 5 ? 0 : 1;

			if (v != want && !bad[0])
				snprintf(bad, sizeof(bad), "thread %s: %s %llx, want %llx",
					 de->d_name, keys[i], v, want);
		}
	}
	/* main, housekeeping and the admin server at least */
	if (TH_CHECK(threads >= 3, t, "%d threads seen in %s", threads, dir) &&
	    TH_CHECK(!bad[0], t, "%s", bad))
		th_pass(t);
out:
	if (d)
		closedir(d);
	/* teardown stops it (SIGTERM) and detaches: the reduced set suffices */
	t = "privs: teardown (stop and detach with the reduced set)";
	TH_RESULT(!th_env_teardown(&env), t, "left something behind");
	return th_summary();
}
