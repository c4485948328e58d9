// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Integration test (tests/integ): the fast path is really taken and cleans up.
 * Real `sidelane run` on a fresh cgroup; loopback TCP over IPv4, IPv6 and
 * v4-mapped IPv6; assertions on the pinned sl_sockhash, sl_conns and
 * sl_counters; then `sidelane detach` must leave no pin and no program behind.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include "lib/util.h"
#include "sidelane.h"
#include "loader/fastpath_user.h"
#include "harness.h"

#define N_CLIENT_MSGS 10
#define CLIENT_MSG 1000
#define N_SERVER_MSGS 3
#define SERVER_MSG 777

struct family {
	const char *tag;
	const char *laddr; /* listener */
	const char *caddr; /* what the client connects to */
};

static const struct family families[] = {
	{ "v4", "127.0.0.1", "127.0.0.1" },
	{ "v6", "::1", "::1" },
	{ "v4mapped", "127.0.0.1", "::ffff:127.0.0.1" },
};

/* Send n messages of len bytes (pattern seeded by seed) on fd and receive them
 * on peer, comparing every byte. true on success.
 */
static bool exchange(int fd, int peer, int n, size_t len, __u64 seed)
{
	unsigned char out[CLIENT_MSG], in[N_CLIENT_MSGS * CLIENT_MSG];
	size_t got = 0, total = (size_t)n * len;
	ssize_t r;
	int i;

	if (len > sizeof(out) || total > sizeof(in))
		return false;
	for (i = 0; i < n; i++) {
		th_fill(out, len, seed + i);
		if (send(fd, out, len, 0) != (ssize_t)len)
			return false;
	}
	while (got < total) {
		r = recv(peer, in + got, total - got, 0);
		if (r <= 0)
			return false;
		got += r;
	}
	for (i = 0; i < n; i++) {
		th_fill(out, len, seed + i);
		if (memcmp(out, in + i * len, len))
			return false;
	}
	return true;
}

static bool check_conn(const struct th_env *env, const char *name, int fd,
		       __u32 flags, __u64 bytes, __u64 msgs, __u64 cgid)
{
	struct sl_sock_key key;
	struct sl_conn c;
	__u64 cookie = th_sock_cookie(fd);
	int err;

	err = th_conn(env, cookie, &c);
	if (!TH_CHECK(!err, name, "no sl_conns record for cookie %llu: %d",
		      (unsigned long long)cookie, err))
		return false;
	th_sock_key(fd, &key);
	return TH_CHECK(!memcmp(&c.key, &key, sizeof(key)), name,
			"record key differs from the socket's 4-tuple") &&
	       TH_CHECK(c.flags == flags, name, "flags 0x%x, want 0x%x",
			c.flags, flags) &&
	       TH_CHECK(c.redir_bytes == bytes && c.redir_msgs == msgs, name,
			"redir_bytes=%llu redir_msgs=%llu, want %llu/%llu",
			(unsigned long long)c.redir_bytes,
			(unsigned long long)c.redir_msgs,
			(unsigned long long)bytes, (unsigned long long)msgs) &&
	       TH_CHECK(c.pass_bytes == 0 && c.pass_msgs == 0, name,
			"pass_bytes=%llu pass_msgs=%llu, want 0",
			(unsigned long long)c.pass_bytes,
			(unsigned long long)c.pass_msgs) &&
	       TH_CHECK(c.pid == (__u32)getpid(), name, "pid %u, want %d",
			c.pid, getpid()) &&
	       TH_CHECK(c.cgroup_id == cgid, name,
			"cgroup_id %llu, want %llu",
			(unsigned long long)c.cgroup_id,
			(unsigned long long)cgid);
}

/* One connection of one family: in the sockhash, redirected, accounted, gone
 * after close.
 */
static void test_family(const struct th_env *env, const struct family *f,
			__u64 cgid)
{
	struct sl_counters c0, c1, c2;
	struct sl_sock_key ck, sk, mirror;
	__u64 cookie;
	int cfd = -1, sfd = -1, hash0, conns0, n, err;
	char name[128];

	snprintf(name, sizeof(name), "accel/%s: both sockets in sl_sockhash",
		 f->tag);
	hash0 = th_map_entries(env, SL_MAP_SOCKHASH);
	conns0 = th_map_entries(env, SL_MAP_CONNS);
	err = th_counters(env, &c0);
	if (!TH_CHECK(hash0 >= 0 && conns0 >= 0 && !err, name,
		      "reading pinned maps: %d %d %d", hash0, conns0, err))
		return;
	err = th_tcp_pair(f->laddr, f->caddr, &cfd, &sfd);
	if (!TH_CHECK(!err, name, "tcp pair: %s", strerror(-err)))
		return;

	n = th_wait_entries(env, SL_MAP_SOCKHASH, hash0 + 2, 1000);
	if (!TH_CHECK(n == hash0 + 2, name, "sl_sockhash has %d entries, want %d",
		      n, hash0 + 2))
		goto out;
	th_sock_key(cfd, &ck);
	th_sock_key(sfd, &sk);
	sl_sock_key_swap(&ck, &mirror);
	if (!TH_CHECK(!memcmp(&mirror, &sk, sizeof(sk)), name,
		      "client and server keys are not mirror images"))
		goto out;
	err = th_sockhash_cookie(env, &ck, &cookie);
	if (!TH_CHECK(!err && cookie == th_sock_cookie(cfd), name,
		      "client key: err %d, cookie %llu, SO_COOKIE %llu", err,
		      (unsigned long long)cookie,
		      (unsigned long long)th_sock_cookie(cfd)))
		goto out;
	err = th_sockhash_cookie(env, &sk, &cookie);
	if (!TH_CHECK(!err && cookie == th_sock_cookie(sfd), name,
		      "server key: err %d, cookie %llu, SO_COOKIE %llu", err,
		      (unsigned long long)cookie,
		      (unsigned long long)th_sock_cookie(sfd)))
		goto out;
	th_pass(name);

	snprintf(name, sizeof(name), "accel/%s: data exchanged both ways",
		 f->tag);
	if (!TH_CHECK(exchange(cfd, sfd, N_CLIENT_MSGS, CLIENT_MSG, 1) &&
			      exchange(sfd, cfd, N_SERVER_MSGS, SERVER_MSG, 100),
		      name, "bytes lost or changed"))
		goto out;
	th_pass(name);

	snprintf(name, sizeof(name), "accel/%s: redirect_ok counts every send",
		 f->tag);
	err = th_counters(env, &c1);
	if (!TH_CHECK(!err, name, "counters: %d", err))
		goto out;
	if (!TH_CHECK(c1.redirect_ok - c0.redirect_ok ==
			      N_CLIENT_MSGS + N_SERVER_MSGS &&
			      c1.redirect_failed == c0.redirect_failed &&
			      c1.pass_plain == c0.pass_plain &&
			      c1.sock_inserted - c0.sock_inserted == 2,
		      name,
		      "delta redirect_ok=%llu (want %d) redirect_failed=%llu "
		      "pass_plain=%llu sock_inserted=%llu (want 2)",
		      (unsigned long long)(c1.redirect_ok - c0.redirect_ok),
		      N_CLIENT_MSGS + N_SERVER_MSGS,
		      (unsigned long long)(c1.redirect_failed -
					   c0.redirect_failed),
		      (unsigned long long)(c1.pass_plain - c0.pass_plain),
		      (unsigned long long)(c1.sock_inserted -
					   c0.sock_inserted)))
		goto out;
	th_pass(name);

	snprintf(name, sizeof(name), "accel/%s: sl_conns redir_bytes = bytes sent",
		 f->tag);
	/* Both have sent: SEEN; neither went plain or behind the gate. */
	if (check_conn(env, name, cfd, SL_CONN_F_IN_SOCKHASH | SL_CONN_F_SEEN,
		       N_CLIENT_MSGS * CLIENT_MSG, N_CLIENT_MSGS, cgid) &&
	    check_conn(env, name, sfd,
		       SL_CONN_F_IN_SOCKHASH | SL_CONN_F_PASSIVE | SL_CONN_F_SEEN,
		       N_SERVER_MSGS * SERVER_MSG, N_SERVER_MSGS, cgid))
		th_pass(name);

out:
	close(cfd);
	close(sfd);
	snprintf(name, sizeof(name), "cleanup/%s: maps back to baseline after close",
		 f->tag);
	/* both ends go through FIN to CLOSE/TIME_WAIT; allow it to settle */
	n = th_wait_entries(env, SL_MAP_SOCKHASH, hash0, 2000);
	err = th_wait_entries(env, SL_MAP_CONNS, conns0, 2000);
	th_counters(env, &c2);
	if (TH_CHECK(n == hash0 && err == conns0, name,
		     "sl_sockhash %d (want %d), sl_conns %d (want %d)", n, hash0,
		     err, conns0) &&
	    TH_CHECK(c2.sock_removed - c0.sock_removed == 2, name,
		     "sock_removed delta %llu, want 2",
		     (unsigned long long)(c2.sock_removed - c0.sock_removed)))
		th_pass(name);
}

/* Backlog bound: a stalled reader sends the stream to TCP past SL_MAX_BACKLOG,
 * a drained one brings it back to the redirect. Both switches happen in
 * one stream whose digest must still match: the ordering argument of
 * SL_CONN_F_BACKLOG, tested.
 */
#define BL_PHASE (2 * SL_MAX_BACKLOG) /* per phase: well past the bound */
#define BL_CHUNK (64 * 1024)

struct bl_writer {
	int fd, go; /* socket; pipe the reader writes to after phase 1 */
	const unsigned char *buf;
	bool ok;
};

static bool send_all(int fd, const unsigned char *p, size_t len)
{
	while (len) {
		ssize_t w = send(fd, p, len < BL_CHUNK ? len : BL_CHUNK, 0);

		if (w <= 0)
			return false;
		p += w;
		len -= w;
	}
	return true;
}

static void *bl_write(void *arg)
{
	struct bl_writer *w = arg;
	char c;

	w->ok = send_all(w->fd, w->buf, BL_PHASE) && read(w->go, &c, 1) == 1;
	/* Let the last ACK of phase 1 arrive (delayed ACKs take up to 40 ms):
	 * the redirect resumes only once TCP has nothing in flight.
	 */
	usleep(200 * 1000);
	w->ok = w->ok && send_all(w->fd, w->buf + BL_PHASE, BL_PHASE);
	return NULL;
}

/* Reads behind poll(): a blocking recv() on a sockmap socket can fail
 * EAGAIN early on this kernel (conformance case blocking_duplex).
 */
static bool recv_all(int fd, unsigned char *p, size_t len)
{
	return !sl_io_full(fd, p, len, true, 5000);
}

static void test_backlog(const struct th_env *env)
{
	const char *name = "backlog: stalled reader goes to TCP, drained one back, bytes exact";
	unsigned char *out = malloc(2 * BL_PHASE), *in = malloc(2 * BL_PHASE);
	unsigned char want[32], got[32];
	struct sl_counters c0, c1;
	struct bl_writer w = {};
	int cfd = -1, sfd = -1, go[2] = { -1, -1 };
	pthread_t t;
	bool ok;

	if (!TH_CHECK(out && in && !pipe(go), name, "setup: %s", strerror(errno)))
		goto out;
	th_fill(out, 2 * BL_PHASE, 42);
	th_counters(env, &c0);
	if (!TH_CHECK(!th_tcp_pair("127.0.0.1", "127.0.0.1", &cfd, &sfd), name,
		      "tcp pair"))
		goto out;
	w = (struct bl_writer){ .fd = cfd, .go = go[0], .buf = out };
	if (!TH_CHECK(!pthread_create(&t, NULL, bl_write, &w), name, "thread"))
		goto out;
	usleep(300 * 1000); /* reader stalls: the backlog passes the bound */
	ok = recv_all(sfd, in, BL_PHASE) && write(go[1], "g", 1) == 1 &&
	     recv_all(sfd, in + BL_PHASE, BL_PHASE);
	pthread_join(t, NULL);
	th_counters(env, &c1);
	th_sha256(out, 2 * BL_PHASE, want);
	th_sha256(in, ok ? 2 * BL_PHASE : 0, got);
	th_info("backlog: fallback +%llu resumed +%llu redirect_ok +%llu pass_plain +%llu",
		(unsigned long long)(c1.backlog_fallback - c0.backlog_fallback),
		(unsigned long long)(c1.backlog_resumed - c0.backlog_resumed),
		(unsigned long long)(c1.redirect_ok - c0.redirect_ok),
		(unsigned long long)(c1.pass_plain - c0.pass_plain));
	if (TH_CHECK(ok && w.ok, name, "transfer failed (reader %d, writer %d)", ok,
		     w.ok) &&
	    TH_CHECK(!memcmp(want, got, sizeof(want)), name,
		     "SHA-256 differs: the switches reordered or lost bytes") &&
	    TH_CHECK(c1.backlog_fallback > c0.backlog_fallback, name,
		     "the stalled reader never sent the stream to TCP") &&
	    TH_CHECK(c1.backlog_resumed > c0.backlog_resumed, name,
		     "the drained stream never came back to the redirect"))
		th_pass(name);
out:
	if (cfd >= 0)
		close(cfd);
	if (sfd >= 0)
		close(sfd);
	if (go[0] >= 0) {
		close(go[0]);
		close(go[1]);
	}
	free(out);
	free(in);
}

int main(void)
{
	const char *setup = "setup: sidelane run attached";
	struct th_env env;
	struct stat st;
	size_t i;
	int err, n;

	setvbuf(stdout, NULL, _IOLBF, 0);
	th_watchdog(60, "fastpath");
	err = th_env_setup(&env, "fastpath", true);
	if (err == -ENOENT) {
		th_skip("fastpath", "no sidelane binary (make first)");
		goto out;
	}
	if (!TH_CHECK(!err, setup, "%s", strerror(-err)))
		goto out;
	th_pass(setup);
	/* on cgroup2 the cgroup id is the inode number of its directory */
	stat(env.cgroup, &st);
	if (!TH_RESULT(!th_enter(&env), "setup: enter cgroup", "%s",
		      strerror(errno)))
		goto out;

	for (i = 0; i < sizeof(families) / sizeof(families[0]); i++)
		test_family(&env, &families[i], st.st_ino);
	test_backlog(&env);

	th_leave(&env);
	/* sidelane's two: the fast path's and capture's (original dst). */
	n = th_cgroup_prog_count(&env, BPF_CGROUP_SOCK_OPS);
	TH_RESULT(n == 2, "cleanup: sidelane's two sockops programs before detach",
		  "bpf_prog_query: %d", n);
	n = th_cgroup_prog_count(&env, BPF_CGROUP_INET4_CONNECT);
	TH_RESULT(n == 1, "cleanup: connect4 attached before detach",
		  "bpf_prog_query: %d", n);
	err = th_env_detach(&env);
	TH_RESULT(!err, "cleanup: sidelane detach succeeds", "status %d", err);
	TH_RESULT(access(env.pin_root, F_OK) && errno == ENOENT,
		  "cleanup: pin root gone after detach", "%s still exists",
		  env.pin_root);
	n = th_cgroup_prog_count(&env, BPF_CGROUP_SOCK_OPS) +
	    th_cgroup_prog_count(&env, BPF_CGROUP_INET4_CONNECT) +
	    th_cgroup_prog_count(&env, BPF_CGROUP_INET6_CONNECT) +
	    th_cgroup_prog_count(&env, BPF_CGROUP_INET4_GETPEERNAME) +
	    th_cgroup_prog_count(&env, BPF_CGROUP_INET6_GETPEERNAME);
	TH_RESULT(n == 0, "cleanup: no program left on the cgroup",
		  "bpf_prog_query: %d programs", n);
out:
	err = th_env_teardown(&env);
	TH_RESULT(!err, "teardown: cgroup and pins removed", "%s",
		  strerror(-err));
	return th_summary();
}
