// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Integration test (tests/integ): regressions found by review, each run
 * plain and accelerated with the real `sidelane run`:
 * - a socket reset while its fd stays open must not keep its sockhash key:
 *   a new connection with the same 4-tuple gets its own replies;
 * - TCP Fast Open data (sent through TCP before the socket had a psock)
 *   must not be read after the redirected bytes that follow it (such
 *   connections now stay on TCP altogether, see on_established);
 * - with one end outside the accelerated cgroup (a local server or client
 *   sidelane does not serve), FIONREAD must count the bytes TCP brought on
 *   the end inside: a socket in a sockhash counts only redirected ones.
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

/* argv[1]: a cgroup outside the accelerated one. The parent stays in the
 * accelerated cgroup, a child moves out; each case checks FIONREAD on the
 * inside end after the outside end sent, and the other way round.
 */
static const char outside_py[] =
	"import os, socket, struct, fcntl, termios, time, select, sys\n"
	"def inq(s):\n"
	"    select.select([s], [], [], 2); time.sleep(0.05)\n"
	"    return struct.unpack('i', fcntl.ioctl(s, termios.FIONREAD, b'\\0' * 4))[0]\n"
	"def outside():\n"
	"    open(sys.argv[1] + '/cgroup.procs', 'w').write(str(os.getpid()))\n"
	"bad = []\n"
	"# A: server inside, client outside\n"
	"l = socket.socket(); l.bind(('127.0.0.1', 0)); l.listen(1); port = l.getsockname()[1]\n"
	"r, w = os.pipe()\n"
	"if os.fork() == 0:\n"
	"    outside(); c = socket.create_connection(('127.0.0.1', port))\n"
	"    c.sendall(b'x' * 4096); os.read(r, 1)\n"
	"    n = inq(c); os._exit(0 if n == 100 else 1)\n"
	"s, _ = l.accept(); n = inq(s)\n"
	"if n != 4096: bad.append('A inside %d' % n)\n"
	"s.recv(8192); s.sendall(b'y' * 100); os.write(w, b'1')\n"
	"if os.wait()[1]: bad.append('A outside')\n"
	"# B: client inside, server outside (the server speaks first)\n"
	"l2 = socket.socket(); l2.bind(('127.0.0.1', 0)); l2.listen(1); port = l2.getsockname()[1]\n"
	"if os.fork() == 0:\n"
	"    outside(); t, _ = l2.accept(); t.sendall(b'g' * 4096)\n"
	"    n = inq(t); t.recv(100); t.sendall(b'h' * 4096); os._exit(0 if n == 10 else 1)\n"
	"l2.close(); c = socket.create_connection(('127.0.0.1', port)); n = inq(c)\n"
	"if n != 4096: bad.append('B greeting %d' % n)\n"
	"got = c.recv(8192); c.sendall(b'z' * 10); n = inq(c)\n"
	"if n != 4096: bad.append('B reply %d' % n)\n"
	"if os.wait()[1]: bad.append('B outside')\n"
	"print('bad', bad)\n";

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
	char *argv[] = { "python3", "-c", (char *)script, env->orig_cgroup, NULL };

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
	TH_RESULT(st == 0 && strstr(out, "T got b'reply-for-T'"), name,
		  "exit %d: %s", st, out);

	snprintf(name, sizeof(name),
		 "regress/%s: TCP Fast Open data is read before what follows it", mode);
	if (accelerated)
		th_counters(&env, &c0);
	st = run_py(&env, tfo_py, 1, out, sizeof(out));
	if (accelerated)
		th_counters(&env, &c1);
	if (TH_CHECK(st == 0 && strstr(out, "reordered 0"), name, "exit %d: %s", st,
		     out) &&
	    /* TFO establishes the accepted side first, before its peer
	     * is in the sockhash: both ends then stay on TCP (peer_plain)
	     */
	    TH_CHECK(!accelerated || c1.peer_plain - c0.peer_plain >= 20, name,
		     "the accepted sides were not left out (peer_plain +%llu)",
		     (unsigned long long)(c1.peer_plain - c0.peer_plain)))
		th_pass(name);

	snprintf(name, sizeof(name),
		 "regress/%s: a peer outside the cgroup: FIONREAD counts TCP's bytes",
		 mode);
	st = run_py(&env, outside_py, 0, out, sizeof(out));
	TH_RESULT(st == 0 && strstr(out, "bad []"), name, "exit %d: %s", st, out);
out:
	snprintf(name, sizeof(name), "regress/%s: teardown", mode);
	TH_RESULT(!th_env_teardown(&env), name, "left something behind");
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	run_mode(false);
	run_mode(true);
	return th_summary();
}
