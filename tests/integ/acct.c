// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Integration test (tests/integ): accounting under a burst while nobody
 * reads the ring buffer (sidelane stopped, as during a restart). Every
 * closed socket is either in the ring (sl_counters.records_closed) or
 * counted lost (sl_events_lost): never silently missing. The next `sidelane
 * run` drains what the ring kept into its access log, one line each.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "harness.h"
#include "loader/acct_user.h"

#define N_BURST 1500 /* local connections: 2 sockets each, ring holds ~1300 */

static char cfg[64], alog[64];

static void remove_files(void *arg)
{
	(void)arg;
	unlink(cfg);
	unlink(alog);
}

/* Short local connections from inside env's cgroup, closed at once. */
static int burst(struct th_env *env)
{
	int i, c, s;

	if (th_enter(env))
		return -1;
	for (i = 0; i < N_BURST; i++) {
		if (th_tcp_pair("127.0.0.1", "127.0.0.1", &c, &s))
			break;
		close(c);
		close(s);
	}
	th_leave(env);
	return i == N_BURST ? 0 : -1;
}

/* Socket records in alog (the env's cgroup holds only this test's). */
static long count_lines(void)
{
	char line[2048];
	long n = 0;
	FILE *f = fopen(alog, "re");

	while (f && fgets(line, sizeof(line), f))
		n += !!strstr(line, "\"kind\":\"socket\"");
	if (f)
		fclose(f);
	return n;
}

int main(void)
{
	const char *t = "acct: a burst with nobody reading the ring: every socket "
			"is a record or counted lost";
	const char *t2 = "acct: the next run drains the ring into its access log, "
			 "one line per record";
	struct sl_counters c0 = {}, c1 = {};
	uint64_t lost0 = 0, lost1 = 0;
	__u64 recs, lost;
	struct th_env env;
	char text[256];
	long lines = 0;
	__u64 end;
	pid_t pid = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	th_watchdog(90, "acct");
	snprintf(cfg, sizeof(cfg), "/tmp/sidelane-test-acct-%d.yaml", (int)getpid());
	snprintf(alog, sizeof(alog), "/tmp/sidelane-test-acct-%d.log", (int)getpid());
	if (th_cleanup_push(remove_files, NULL) || !th_env_start(&env, "acct", true))
		goto out;
	th_leave(&env);
	kill(env.sidelane, SIGTERM); /* the kernel side stays, nobody reads */
	th_wait(env.sidelane, 10000);
	env.sidelane = 0;
	th_counters(&env, &c0);
	sl_acct_lost(env.pin_root, &lost0);
	if (!TH_CHECK(!burst(&env), t, "burst of %d connections failed", N_BURST))
		goto out;
	th_counters(&env, &c1);
	sl_acct_lost(env.pin_root, &lost1);
	recs = c1.records_closed - c0.records_closed;
	lost = lost1 - lost0;
	th_info("%d connections: %llu records in the ring, %llu lost", N_BURST,
		(unsigned long long)recs, (unsigned long long)lost);
	{
		char *argv[] = { (char *)th_sidelane_bin(), "status", "--json",
				 "--pin-root", env.pin_root, NULL };
		static char out[65536];
		char want[64];

		snprintf(want, sizeof(want), "\"events_lost\":%llu,",
			 (unsigned long long)lost1);
		if (TH_CHECK(recs + lost == 2 * N_BURST && lost > 0, t,
			     "records %llu + lost %llu, want %d with some lost",
			     (unsigned long long)recs, (unsigned long long)lost,
			     2 * N_BURST) &&
		    TH_CHECK(!th_run(NULL, NULL, argv, out, sizeof(out), 10000) &&
				     strstr(out, want),
			     t, "status --json does not say %s", want))
			th_pass(t);
	}

	snprintf(text, sizeof(text),
		 "accounting:\n  access_log: \"%s\"\nadmin:\n  listen: \"\"\n", alog);
	if (!TH_CHECK(!th_write_text(cfg, text), t2, "config"))
		goto out;
	pid = fork();
	if (!pid) {
		execl(th_sidelane_bin(), "sidelane", "run", "--config", cfg,
		      "--cgroup", env.cgroup, "--pin-root", env.pin_root,
		      (char *)NULL);
		_exit(127);
	}
	end = th_now_ms() + 10000;
	do {
		usleep(200 * 1000);
		lines = count_lines();
	} while (lines < (long)recs && th_now_ms() < end);
	usleep(300 * 1000); /* nothing more may come */
	lines = count_lines();
	TH_RESULT(lines == (long)recs, t2, "%ld lines, want %llu", lines,
		  (unsigned long long)recs);
out:
	if (pid > 0) {
		kill(pid, SIGTERM);
		th_wait(pid, 10000);
	}
	t = "acct: teardown";
	TH_RESULT(!th_env_teardown(&env), t, "left something behind");
	return th_summary();
}
