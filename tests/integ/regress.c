// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Integration test (tests/integ): regressions found by review, each run
 * plain and accelerated with the real `sidelane run`:
 * - a socket reset while its fd stays open must not keep its sockhash key:
 *   a new connection with the same 4-tuple gets its own replies;
 * - TCP Fast Open data (sent through TCP before the socket had a psock)
 *   must not be read after the redirected bytes that follow it.
 * The TFO case runs in a private network namespace: net.ipv4.tcp_fastopen
 * is per namespace, and the host's must not change.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "harness.h"

static const char zombie_py[] =
	"import socket, struct, time\n"
	"l = socket.socket(); l.bind(('127.0.0.1', 0)); l.listen(4)\n"
	"port = l.getsockname()[1]\n"
	"def mk():\n"
	"    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); return s\n"
	"s = mk(); s.bind(('127.0.0.1', 0)); q = s.getsockname()[1]\n"
	"s.connect(('127.0.0.1', port)); x, _ = l.accept(); time.sleep(0.05)\n"
	"x.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0)); x.close()\n"
	"time.sleep(0.05)\n"
	"t = mk(); t.bind(('127.0.0.1', q)); t.connect(('127.0.0.1', port)); x2, _ = l.accept()\n"
	"time.sleep(0.05); x2.sendall(b'reply-for-T'); time.sleep(0.1)\n"
	"t.settimeout(2)\n"
	"print('T got', t.recv(100))\n";

static const char tfo_py[] =
	"import socket, time\n"
	"l = socket.socket(); l.bind(('127.0.0.1', 0))\n"
	"l.setsockopt(socket.IPPROTO_TCP, 23, 16)  # TCP_FASTOPEN\n"
	"l.listen(4); port = l.getsockname()[1]\n"
	"bad = 0\n"
	"for i in range(20):\n"
	"    c = socket.socket()\n"
	"    c.setsockopt(socket.IPPROTO_TCP, 30, 1)  # TCP_FASTOPEN_CONNECT\n"
	"    c.connect(('127.0.0.1', port))\n"
	"    c.sendall(b'A' * 10); c.sendall(b'B' * 10); c.sendall(b'C' * 10)\n"
	"    s, _ = l.accept(); s.settimeout(2); time.sleep(0.02)\n"
	"    got = b''\n"
	"    while len(got) < 30:\n"
	"        got += s.recv(100)\n"
	"    bad += got != b'A' * 10 + b'B' * 10 + b'C' * 10\n"
	"    c.close(); s.close()\n"
	"print('reordered', bad)\n";

/* A network namespace of its own with TCP Fast Open on (client and server):
 * net.ipv4.tcp_fastopen is per namespace, the host's stays as it is.
 */
static int tfo_netns(void)
{
	return unshare(CLONE_NEWNET) ||
	       system("ip link set lo up && sysctl -qw net.ipv4.tcp_fastopen=3");
}

static int run_py(struct th_env *env, const char *script, int tfo, char *out,
		  size_t len)
{
	char *argv[] = { "python3", "-c", (char *)script, NULL };

	return th_run(env, tfo ? tfo_netns : NULL, argv, out, len, 30000);
}

static void run_mode(bool accelerated)
{
	const char *mode = accelerated ? "accel" : "plain";
	struct sl_counters c0 = {}, c1 = {};
	struct th_env env;
	char name[128], out[2048];
	int st;

	snprintf(name, sizeof(name), "regress/%s", mode);
	th_watchdog(90, name);
	if (!th_env_start(&env, "regress", accelerated))
		goto out;
	th_leave(&env);

	snprintf(name, sizeof(name),
		 "regress/%s: a new socket on a reset socket's 4-tuple gets its own reply",
		 mode);
	st = run_py(&env, zombie_py, 0, out, sizeof(out));
	if (TH_CHECK(st == 0 && strstr(out, "T got b'reply-for-T'"), name,
		     "exit %d: %s", st, out))
		th_pass(name);

	snprintf(name, sizeof(name),
		 "regress/%s: TCP Fast Open data is read before what follows it", mode);
	if (accelerated)
		th_counters(&env, &c0);
	st = run_py(&env, tfo_py, 1, out, sizeof(out));
	if (accelerated)
		th_counters(&env, &c1);
	if (TH_CHECK(st == 0 && strstr(out, "reordered 0"), name, "exit %d: %s", st,
		     out) &&
	    TH_CHECK(!accelerated || c1.sock_inserted - c0.sock_inserted >= 40, name,
		     "the connections were not on the fast path (inserted +%llu)",
		     (unsigned long long)(c1.sock_inserted - c0.sock_inserted)))
		th_pass(name);
out:
	snprintf(name, sizeof(name), "regress/%s: teardown", mode);
	if (TH_CHECK(!th_env_teardown(&env), name, "left something behind"))
		th_pass(name);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	run_mode(false);
	run_mode(true);
	return th_summary();
}
