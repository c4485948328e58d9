// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The soak: mixed traffic through a real `sidelane run` for
 * SIDELANE_SOAK_SECONDS (make test: 20; make soak: SOAK_MINUTES), with the
 * faults of tests/integ/faults.c and mesh.c injected at random.
 *
 * Traffic: CLIENTS threads in the app's cgroup, each connection to an echo
 * upstream either through an ambassador (relayed by the proxy, spliced when
 * admitted) or straight (a local pair: the fast path's), a random size up to
 * MAX_MSG sent in random pieces, half-closed, the echo read to EOF and
 * compared byte for byte.
 *
 * Faults, one every 1-4 s: the pin folder removed; kill -9 of the sidecar
 * and a restart (not in the last quarter, so the last process has a
 * history to measure); a burst of SIGHUPs; `policy add` and `del`; the
 * access log's folder read-only for a second (a read-only tmpfs over it);
 * SLOW_PEERS slowloris peers on the admin endpoint while /healthz must
 * answer within a second; the config file replaced by its other version
 * (another idle timeout and buffer size, a second ambassador opened or
 * closed) and `sidelane reload`, which must report it running; the maps
 * full (BURST connections held open at once, past limits.max_conns: the
 * surplus on the plain path, counted, every byte right); hostile upstreams
 * behind their own ambassadors (one resets mid-stream: the app reads all
 * it sent, then ECONNRESET; one blackholes SYNs: a reset after
 * proxy.connect_timeout_ms; one never reads: the app's writes block); the
 * access log's filesystem full for a second (lines dropped and counted,
 * the log written again after).
 *
 * A connection may fail only through the sidecar while it is down (from
 * the kill until a second after the restart), and then only with a reset
 * or a refusal: a clean EOF before the whole echo, or any byte wrong, is a
 * failure. At the end: the app's sl_conns entries and the sockhash back to
 * what they were idle, the last sidecar's descriptors and anonymous memory
 * back near what they were after its start.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/sockios.h> /* SIOCOUTQ */
#include "harness.h"
#include "lib/util.h"
#include "sidelane.h"

#define CLIENTS 4
#define MAX_MSG (256 * 1024)
#define IO_MS 10000
#define DOWN_GRACE_MS 1000 /* after a restart, still "down" */
#define FD_SLACK 8
#define SLOW_PEERS 64
#define LIMIT_CONNS 128 /* limits.max_conns: the maps' size, BURST passes it */
#define BURST 192 /* connections held at once each way (relayed, direct) */
#define BURST_MSG 4096
#define CONNECT_MS 1000 /* proxy.connect_timeout_ms */
#define RST_LEN (96 * 1024) /* what the resetting upstream sends first */
#define NR_LIMIT (64 * 1024 * 1024) /* the app's writes block before this */
#define LOG_FS_SIZE "8m" /* the access log's own tmpfs (keeps 3 MiB at most) */
/* The last sidecar's anonymous memory (its own: the rest of RSS is text
 * shared through the page cache) may grow this much over its run.
 */
#define ANON_SLACK_KIB TH_MEM_SLACK_KIB(4 * 1024)

static struct th_env env;
static char cfg_path[128], alog_dir[128], alog_path[160], cfg_text[2048];
static int srv_port, amb_port, amb2_port, admin_port;
/* the hostile upstreams' listeners (resets, never reads, blackholes SYNs)
 * and the ambassadors in front of them
 */
static int rst_lfd = -1, nr_lfd = -1, bh_lfd = -1, bh_filler = -1;
static int rst_port, nr_port, bh_port, rst_amb, nr_amb, bh_amb;
static int cfg_variant; /* which version of the config the file holds */
static int alog_mounts; /* on alog_dir: its own tmpfs, a read-only one */
static volatile int stop;

/* Written by the fault thread, read by the clients: the window in which
 * the sidecar is down (ms, monotonic), 0 when up.
 */
static __u64 down_from, down_until;

enum outcome { OK, CUT, BAD_EOF, BAD_BYTES, BAD_ERR, NR_OUTCOMES };
static const char *const outcome_name[] = { "ok", "cut while the sidecar was "
					     "down", "clean EOF short",
					     "bytes wrong", "failed while up" };
static long outcomes[2][NR_OUTCOMES]; /* [via sidecar][outcome], atomics */

enum fault { F_PINS, F_KILL, F_HUP, F_POLICY, F_LOG_RO, F_SLOW, F_RELOAD,
	     F_MAPS_FULL, F_UPSTREAMS, F_LOG_FULL, NR_FAULTS };
static const char *const fault_name[] = { "pin folder removed",
					  "kill -9 and restart",
					  "SIGHUP burst", "policy add/del",
					  "access log folder read-only",
					  "slowloris on the admin endpoint",
					  "config reload", "maps full",
					  "hostile upstreams",
					  "access log filesystem full" };
static long faults[NR_FAULTS], fault_failures;

static void cleanup(void *arg)
{
	char tmp[160];

	(void)arg;
	for (; alog_mounts > 0; alog_mounts--)
		umount2(alog_dir, MNT_DETACH); /* the log and its rotations */
	rmdir(alog_dir);
	unlink(cfg_path);
	snprintf(tmp, sizeof(tmp), "%s.tmp", cfg_path);
	unlink(tmp);
}

/* ---- clients ---- */

static bool sidecar_down(__u64 t0)
{
	__u64 from = __atomic_load_n(&down_from, __ATOMIC_ACQUIRE);
	__u64 until = __atomic_load_n(&down_until, __ATOMIC_ACQUIRE);

	return from && (t0 + IO_MS >= from) && (!until || t0 <= until);
}

/* One connection; its outcome. */
static enum outcome one(bool via, unsigned char *out, unsigned char *in,
			unsigned int *seed)
{
	size_t len = 1 + rand_r(seed) % MAX_MSG, off = 0, got = 0, piece;
	__u64 t0 = th_now_ms();
	int fd, err = 0;
	ssize_t n;

	th_fill(out, len, rand_r(seed));
	fd = th_connect("127.0.0.1", via ? amb_port : srv_port);
	if (fd < 0) {
		err = fd;
		goto failed;
	}
	while (off < len && !err) {
		piece = 1 + rand_r(seed) % 65536;
		piece = piece < len - off ? piece : len - off;
		err = sl_io_full(fd, out + off, piece, false, IO_MS);
		off += piece;
	}
	if (!err)
		shutdown(fd, SHUT_WR);
	/* read the echo to EOF, with what was sent so far */
	while (!err) {
		struct timeval tv = { .tv_sec = IO_MS / 1000 };

		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		n = recv(fd, in + got, MAX_MSG - got, 0);
		if (n > 0 && got + n <= len) {
			got += n;
			continue;
		}
		if (n > 0) /* more than was sent */
			return close(fd), BAD_BYTES;
		if (n < 0) {
			err = -errno;
			break;
		}
		close(fd);
		if (memcmp(in, out, got))
			return BAD_BYTES;
		return got == len ? OK : via && sidecar_down(t0) ? CUT : BAD_EOF;
	}
	close(fd);
	if (got && memcmp(in, out, got))
		return BAD_BYTES;
failed:
	/* a reset or a refusal, through the sidecar while it was down */
	if (via && sidecar_down(t0) &&
	    (err == -ECONNRESET || err == -ECONNREFUSED || err == -EPIPE))
		return CUT;
	if (err == -ETIMEDOUT || err == -EAGAIN)
		th_info("soak: %s connection of %zu B timed out after %zu B",
			via ? "relayed" : "direct", len, got);
	return BAD_ERR;
}

static void *client_main(void *arg)
{
	unsigned int seed = (unsigned int)(long)arg;
	unsigned char *out = malloc(MAX_MSG), *in = malloc(MAX_MSG);
	enum outcome o;
	bool via;

	while (out && in && !stop) {
		via = rand_r(&seed) % 4 != 0; /* three in four through the sidecar */
		o = one(via, out, in, &seed);
		__atomic_fetch_add(&outcomes[via][o], 1, __ATOMIC_RELAXED);
		if (o >= BAD_EOF)
			th_info("soak: a %s connection: %s", via ? "relayed" : "direct",
				outcome_name[o]);
	}
	free(out);
	free(in);
	return NULL;
}

/* ---- faults ---- */

static int sidelane_cli(const char *verb, const char *id)
{
	char *add[] = { (char *)th_sidelane_bin(), "policy", "add", (char *)id,
			"deny", "192.0.2.0/24", "9", "--pin-root", env.pin_root,
			NULL };
	char *del[] = { (char *)th_sidelane_bin(), "policy", "del", (char *)id,
			"--pin-root", env.pin_root, NULL };
	char out[1024];

	return th_run(NULL, NULL, strcmp(verb, "add") ? del : add, out,
		      sizeof(out), IO_MS);
}

/* The access log's folder read-only for a second: the data path runs on
 * (the clients check every byte), the lines are dropped. The same as
 * faults.c: a read-only tmpfs over it, since a remount would fail EBUSY
 * with the log open.
 */
static int log_read_only(void)
{
	if (mount("tmpfs", alog_dir, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV,
		  "size=4k"))
		return -errno;
	alog_mounts++;
	usleep(1000 * 1000);
	if (umount2(alog_dir, MNT_DETACH))
		return -errno;
	alog_mounts--;
	return 0;
}

/* The access log's own tmpfs filled for a second: the data path runs on,
 * the writer's lines are dropped and counted (faults.c disk full), and it
 * writes again once there is room (checked at the end).
 */
static int log_full(void)
{
	static char chunk[64 * 1024];
	long long d0 = th_stat_num(admin_port, "access_log", "lines_dropped"), d1;
	char path[192];
	int fd, err = 0;

	snprintf(path, sizeof(path), "%s/filler", alog_dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	while (write(fd, chunk, sizeof(chunk)) > 0)
		;
	if (errno != ENOSPC)
		err = -errno;
	usleep(1000 * 1000);
	d1 = th_stat_num(admin_port, "access_log", "lines_dropped");
	close(fd);
	unlink(path);
	if (!err && (d0 < 0 || d1 <= d0)) {
		th_info("soak: log filesystem full: lines dropped %lld -> %lld",
			d0, d1);
		err = -EPROTO;
	}
	return err;
}

/* BURST connections each way held open at once, past limits.max_conns
 * (the sockhash holds two sockets a connection, sl_conns three records):
 * the surplus stays on the plain path, counted, and every echo is right.
 */
static int maps_full(void)
{
	static int fds[2 * BURST];
	unsigned char out[BURST_MSG], in[BURST_MSG];
	struct sl_counters c0, c1;
	int i, n = 0, bad = 0, err;

	err = th_counters(&env, &c0);
	for (i = 0; i < 2 * BURST && !err; i++, n++) {
		fds[i] = th_connect("127.0.0.1", i % 2 ? amb_port : srv_port);
		if (fds[i] < 0)
			err = fds[i];
	}
	for (i = 0; i < n && !err; i++) {
		th_fill(out, sizeof(out), i);
		err = sl_io_full(fds[i], out, sizeof(out), false, IO_MS);
		shutdown(fds[i], SHUT_WR);
	}
	for (i = 0; i < n && !err; i++) {
		th_fill(out, sizeof(out), i);
		bad += sl_io_full(fds[i], in, sizeof(in), true, IO_MS) ||
		       memcmp(in, out, sizeof(in));
	}
	for (i = 0; i < n; i++)
		close(fds[i]);
	err = err ?: th_counters(&env, &c1);
	if (!err && (bad || c1.sock_insert_failed + c1.conn_map_full ==
				    c0.sock_insert_failed + c0.conn_map_full)) {
		th_info("soak: maps full: %d of %d echoes wrong; sock_insert_failed "
			"+%llu, conn_map_full +%llu", bad, n,
			(unsigned long long)(c1.sock_insert_failed - c0.sock_insert_failed),
			(unsigned long long)(c1.conn_map_full - c0.conn_map_full));
		err = -EPROTO;
	}
	return err;
}

/* ---- hostile upstreams ---- */

/* The app's end of a connection read to its end: 0 at EOF, or -errno;
 * the bytes into buf (at most cap), their count in *got.
 */
static int read_end(int fd, unsigned char *buf, size_t cap, size_t *got)
{
	struct timeval tv = { .tv_sec = IO_MS / 1000 };
	ssize_t n;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	for (*got = 0; *got < cap; *got += n) {
		n = recv(fd, buf + *got, cap - *got, 0);
		if (n <= 0)
			return n ? -errno : 0;
	}
	return -EMSGSIZE;
}

/* Each accepted connection of the resetting upstream gets RST_LEN bytes,
 * acknowledged, then a reset; the never-reading upstream holds its latest
 * connection unread (the one before is closed when the next comes).
 */
static void *hostile_main(void *arg)
{
	static unsigned char tx[RST_LEN];
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	struct pollfd p[2] = { { .fd = rst_lfd, .events = POLLIN },
			       { .fd = nr_lfd, .events = POLLIN } };
	int fd, held = -1, outq, i;

	(void)arg;
	th_fill(tx, sizeof(tx), 31);
	while (!stop) {
		if (poll(p, 2, 200) <= 0)
			continue;
		if (p[1].revents & POLLIN) {
			fd = accept4(nr_lfd, NULL, NULL, SOCK_CLOEXEC);
			if (fd >= 0 && held >= 0)
				close(held);
			held = fd >= 0 ? fd : held;
		}
		if (!(p[0].revents & POLLIN))
			continue;
		fd = accept4(rst_lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		if (!sl_io_full(fd, tx, sizeof(tx), false, IO_MS))
			for (i = 0; i < IO_MS / 10; i++) {
				if (ioctl(fd, SIOCOUTQ, &outq) || !outq)
					break;
				usleep(10 * 1000);
			}
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		close(fd);
	}
	if (held >= 0)
		close(held);
	return NULL;
}

/* One connection to each hostile upstream through its ambassador, each
 * ending as the README's fault table says.
 */
static int hostile_upstreams(void)
{
	static unsigned char want[RST_LEN], in[RST_LEN + 1], tx[64 * 1024];
	size_t got = 0;
	int fd, end, ms;
	ssize_t n;
	bool right;
	__u64 t0;

	/* resets mid-stream: every byte it sent, then ECONNRESET */
	th_fill(want, sizeof(want), 31);
	fd = th_connect("127.0.0.1", rst_amb);
	if (fd < 0)
		return fd;
	end = read_end(fd, in, sizeof(in), &got);
	close(fd);
	right = got <= RST_LEN && !memcmp(in, want, got);
	if (end != -ECONNRESET || got != RST_LEN || !right) {
		th_info("soak: resetting upstream: the app read %zu B of %d (%s), "
			"then %s", got, RST_LEN, right ? "right" : "wrong",
			end ? strerror(-end) : "a clean EOF");
		return -EPROTO;
	}
	/* blackholes SYNs: the app's connect succeeded, a reset after
	 * proxy.connect_timeout_ms, never a clean EOF
	 */
	t0 = th_now_ms();
	fd = th_connect("127.0.0.1", bh_amb);
	if (fd < 0)
		return fd;
	end = read_end(fd, in, sizeof(in), &got);
	ms = (int)(th_now_ms() - t0);
	close(fd);
	if (end != -ECONNRESET || got || ms < CONNECT_MS - 100 ||
	    ms > CONNECT_MS + 3000) {
		th_info("soak: blackholed upstream: %s after %d ms (%zu B)",
			end ? strerror(-end) : "a clean EOF", ms, got);
		return -EPROTO;
	}
	/* never reads: the app's non-blocking writes stop with EAGAIN
	 * (the proxy holds at most its buffer); its close ends it
	 */
	fd = th_connect_nb("127.0.0.1", nr_amb);
	if (fd < 0)
		return fd;
	n = th_send_until_blocked(fd, tx, sizeof(tx), NR_LIMIT);
	close(fd);
	if (n < 0 || n >= NR_LIMIT) {
		th_info("soak: never-reading upstream: %s",
			n < 0 ? strerror((int)-n) : "the app's writes never blocked");
		return -EPROTO;
	}
	return 0;
}

/* SLOW_PEERS requests begun on the admin endpoint and never finished:
 * /healthz answers 200 within a second meanwhile (admin.c slowloris).
 */
static int slowloris(void)
{
	int fds[SLOW_PEERS], i, code, err = 0;
	char resp[1024];
	__u64 t0;

	for (i = 0; i < SLOW_PEERS; i++) {
		fds[i] = th_connect("127.0.0.1", admin_port);
		if (fds[i] >= 0)
			send(fds[i], "GET /metrics HTTP/1.1\r\nHo", 25, MSG_NOSIGNAL);
	}
	t0 = th_now_ms();
	code = th_http(admin_port, "GET", "/healthz", NULL, resp, sizeof(resp));
	if (code != 200)
		err = code < 0 ? code : -EPROTO;
	else if (th_now_ms() - t0 >= 1000)
		err = -ETIMEDOUT;
	for (i = 0; i < SLOW_PEERS; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return err;
}

/* The config's text for version v (0 or 1) into cfg_text. */
static void render_cfg(int v)
{
	char amb2[128] = "";

	if (v)
		snprintf(amb2, sizeof(amb2),
			 "    - listen: \"127.0.0.1:%d\"\n"
			 "      upstream: \"127.0.0.1:%d\"\n", amb2_port,
			 srv_port);
	snprintf(cfg_text, sizeof(cfg_text),
		 "capture:\n  enabled: false\n"
		 "proxy:\n  idle_timeout_ms: %d\n  buffer_bytes: %d\n"
		 "  connect_timeout_ms: " SL_XSTR(CONNECT_MS) "\n"
		 "  ambassadors:\n"
		 "    - listen: \"127.0.0.1:%d\"\n"
		 "      upstream: \"127.0.0.1:%d\"\n%s"
		 "    - listen: \"127.0.0.1:%d\"\n"
		 "      upstream: \"127.0.0.1:%d\"\n"
		 "    - listen: \"127.0.0.1:%d\"\n"
		 "      upstream: \"127.0.0.1:%d\"\n"
		 "    - listen: \"127.0.0.1:%d\"\n"
		 "      upstream: \"127.0.0.1:%d\"\n"
		 "admin:\n  listen: \"127.0.0.1:%d\"\n"
		 "  drain_timeout_ms: 0\n"
		 "accounting:\n  access_log: \"%s\"\n"
		 "  max_bytes: 1048576\n  keep: 2\n"
		 "limits:\n  max_conns: " SL_XSTR(LIMIT_CONNS) "\n",
		 v ? 200000 : 300000, v ? 16384 : 65536, amb_port, srv_port,
		 amb2, rst_amb, rst_port, nr_amb, nr_port, bh_amb, bh_port,
		 admin_port, alog_path);
}

/* The file replaced (renamed over) by its other version, then `sidelane
 * reload`: it must say that version runs.
 */
static int config_reload(void)
{
	char *argv[] = { (char *)th_sidelane_bin(), "reload", "--pin-root",
			 env.pin_root, NULL };
	char out[1024], tmp[160], want[32];
	int st;

	cfg_variant ^= 1;
	render_cfg(cfg_variant);
	snprintf(tmp, sizeof(tmp), "%s.tmp", cfg_path);
	if (th_write_text(tmp, cfg_text) || rename(tmp, cfg_path))
		return -EIO;
	snprintf(want, sizeof(want), "version ");
	th_config_version(cfg_text, strlen(cfg_text), want + 8);
	st = th_run(NULL, NULL, argv, out, sizeof(out), IO_MS);
	if (st || !strstr(out, want)) {
		th_info("sidelane reload: exit %d: %s (want %s)", st, out, want);
		return -EIO;
	}
	return 0;
}

/* 0, or what went wrong (counted as a fault failure, said). */
static int inject(enum fault f, bool may_kill)
{
	__u64 end;
	int i, err = 0;

	switch (f) {
	case F_PINS:
		/* ENOTEMPTY: the keeper put pins back while rm -r ran (it
		 * checks every second): removed all the same
		 */
		err = th_rm_tree(env.pin_root);
		if (err && err != -ENOTEMPTY)
			return err;
		end = th_now_ms() + 3000;
		while (th_now_ms() < end && access(env.pin_root, F_OK))
			usleep(50 * 1000);
		usleep(200 * 1000);
		return th_map_entries(&env, SL_MAP_CONNS) < 0 ? -ENOENT : 0;
	case F_KILL:
		if (!may_kill)
			return 0;
		__atomic_store_n(&down_until, 0, __ATOMIC_RELEASE);
		__atomic_store_n(&down_from, th_now_ms(), __ATOMIC_RELEASE);
		kill(env.sidelane, SIGKILL);
		th_wait(env.sidelane, IO_MS);
		env.sidelane = 0;
		usleep(200 * 1000);
		err = th_env_run_config(&env, cfg_path, cfg_text);
		__atomic_store_n(&down_until, th_now_ms() + DOWN_GRACE_MS,
				 __ATOMIC_RELEASE);
		return err;
	case F_HUP:
		for (i = 0; i < 50 && !err; i++) {
			err = kill(env.sidelane, SIGHUP) ? -errno : 0;
			usleep(2000);
		}
		return err;
	case F_POLICY:
		err = sidelane_cli("add", "7777");
		return err ?: sidelane_cli("del", "7777");
	case F_LOG_RO:
		return log_read_only();
	case F_RELOAD:
		return config_reload();
	case F_MAPS_FULL:
		return maps_full();
	case F_UPSTREAMS:
		return hostile_upstreams();
	case F_LOG_FULL:
		return log_full();
	default:
		return slowloris();
	}
}

struct idle {
	int conns, sock, fds;
	long rss, anon;
};

static void snap(struct idle *s)
{
	s->conns = th_map_entries(&env, SL_MAP_CONNS);
	s->sock = th_map_entries(&env, SL_MAP_SOCKHASH);
	s->fds = th_proc_fds(env.sidelane);
	s->rss = th_proc_kib(env.sidelane, "VmRSS");
	s->anon = th_proc_kib(env.sidelane, "RssAnon");
}

int main(void)
{
	const char *setup = "soak: setup: echo upstream, sidelane run";
	const char *name = "soak: mixed traffic with faults injected at random: "
			   "byte-exact, cuts only while the sidecar was down, "
			   "maps, descriptors and memory back at the end";
	const char *s = getenv("SIDELANE_SOAK_SECONDS");
	unsigned int secs = s && atoi(s) > 0 ? atoi(s) : 20, seed = getpid();
	pthread_t cl[CLIENTS], hostile;
	struct rlimit nofile;
	struct idle idle0, start1, end1;
	__u64 t0, end, last_kill = 0;
	long ok = 0, bad = 0;
	int err, i, j, alog_moved;
	struct stat a0, a1;

	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	/* the maps-full burst holds 4 * BURST descriptors here */
	if (!getrlimit(RLIMIT_NOFILE, &nofile)) {
		nofile.rlim_cur = nofile.rlim_max;
		setrlimit(RLIMIT_NOFILE, &nofile);
	}
	th_watchdog(secs + 120, "soak");
	snprintf(cfg_path, sizeof(cfg_path), "/tmp/sidelane-test-soak-%d.yaml",
		 (int)getpid());
	snprintf(alog_dir, sizeof(alog_dir), "/tmp/sidelane-test-soak-%d.d",
		 (int)getpid());
	snprintf(alog_path, sizeof(alog_path), "%s/access.log", alog_dir);
	err = mkdir(alog_dir, 0700) ? -errno : 0;
	err = err ?: th_cleanup_push(cleanup, NULL);
	/* the log on a filesystem of its own, which a fault fills */
	if (!err && mount("tmpfs", alog_dir, "tmpfs", MS_NOSUID | MS_NODEV,
			  "size=" LOG_FS_SIZE ",mode=0700"))
		err = -errno;
	alog_mounts = !err;
	err = err ?: th_env_setup_opts(&env, "soak",
				       &(struct th_env_opts){ .sidecar = true });
	if (!err) {
		th_env_log_path(&env);
		amb_port = th_free_port();
		amb2_port = th_free_port();
		admin_port = th_free_port();
		rst_amb = th_free_port();
		nr_amb = th_free_port();
		bh_amb = th_free_port();
		rst_lfd = th_listen("127.0.0.1", 64, &rst_port);
		nr_lfd = th_listen("127.0.0.1", 64, &nr_port);
		/* backlog 0 holds one connection, the filler; SYNs after it
		 * are dropped (proxy.c connect timeout)
		 */
		bh_lfd = th_listen("127.0.0.1", 0, &bh_port);
		bh_filler = bh_lfd < 0 ? bh_lfd : th_connect("127.0.0.1", bh_port);
		err = amb_port < 0     ? amb_port :
		      amb2_port < 0    ? amb2_port :
		      admin_port < 0   ? admin_port :
		      rst_amb < 0      ? rst_amb :
		      nr_amb < 0       ? nr_amb :
		      bh_amb < 0       ? bh_amb :
		      rst_lfd < 0      ? rst_lfd :
		      nr_lfd < 0       ? nr_lfd :
		      bh_filler < 0    ? bh_filler :
		      -pthread_create(&hostile, NULL, hostile_main, NULL);
		err = err ?: th_echo_server(512, &srv_port);
	}
	if (!err) {
		render_cfg(cfg_variant);
		err = th_env_run_config(&env, cfg_path, cfg_text);
	}
	err = err ?: th_enter(&env);
	if (!TH_RESULT(!err, setup, "%s (log %s)", strerror(-err), env.log))
		goto out;
	usleep(300 * 1000);
	snap(&idle0);
	start1 = idle0;

	for (i = 0; i < CLIENTS; i++)
		pthread_create(&cl[i], NULL, client_main, (void *)(long)(seed + i));
	t0 = th_now_ms();
	end = t0 + secs * 1000ULL;
	while (th_now_ms() < end) {
		enum fault f = rand_r(&seed) % NR_FAULTS;
		bool may_kill = th_now_ms() < t0 + secs * 750ULL;

		usleep((1000 + rand_r(&seed) % 3000) * 1000);
		if (th_now_ms() >= end)
			break;
		err = inject(f, may_kill);
		faults[f] += f != F_KILL || may_kill;
		if (err) {
			fault_failures++;
			th_info("soak: %s: %s", fault_name[f], strerror(-err));
		}
		if (f == F_KILL && may_kill && !err) {
			last_kill = th_now_ms();
			usleep(500 * 1000);
			snap(&start1);
		}
		if (!env.sidelane)
			break; /* a restart failed: nothing more to measure */
	}
	/* the access log is written again after its read-only spells */
	alog_moved = stat(alog_path, &a0) ? -1 : 0;
	usleep(1500 * 1000);
	if (!alog_moved && !stat(alog_path, &a1))
		alog_moved = a1.st_ino != a0.st_ino || a1.st_size > a0.st_size;
	stop = 1;
	for (i = 0; i < CLIENTS; i++)
		pthread_join(cl[i], NULL);
	pthread_join(hostile, NULL);
	usleep(2000 * 1000); /* last closes reach the maps and the ring */
	snap(&end1);
	for (i = 0; i < 2; i++)
		for (j = 0; j < NR_OUTCOMES; j++) {
			if (j == OK || j == CUT)
				ok += outcomes[i][j];
			else
				bad += outcomes[i][j];
		}
	th_info("soak: %u s, %ld connections: relayed ok %ld, cut %ld; direct ok "
		"%ld; failures %ld (clean EOF short %ld, bytes wrong %ld, other "
		"%ld)", secs, ok + bad, outcomes[1][OK], outcomes[1][CUT],
		outcomes[0][OK], bad, outcomes[0][BAD_EOF] + outcomes[1][BAD_EOF],
		outcomes[0][BAD_BYTES] + outcomes[1][BAD_BYTES],
		outcomes[0][BAD_ERR] + outcomes[1][BAD_ERR] + outcomes[0][CUT]);
	th_info("soak: faults: %ld pin folder removals, %ld kill -9 and restarts "
		"(the last %llu s before the end), %ld SIGHUP bursts, %ld policy "
		"edits, %ld read-only log folders, %ld slowloris crowds, %ld "
		"config reloads, %ld maps full, %ld hostile upstream rounds, %ld "
		"full log filesystems; %ld failed", faults[F_PINS], faults[F_KILL],
		last_kill ? (unsigned long long)(th_now_ms() - last_kill) / 1000 : 0,
		faults[F_HUP], faults[F_POLICY], faults[F_LOG_RO], faults[F_SLOW],
		faults[F_RELOAD], faults[F_MAPS_FULL], faults[F_UPSTREAMS],
		faults[F_LOG_FULL], fault_failures);
	th_info("soak: idle sl_conns %d -> %d, sockhash %d -> %d; the last "
		"sidecar's fds %d -> %d, RSS %ld -> %ld KiB (anonymous %ld -> "
		"%ld)", idle0.conns, end1.conns, idle0.sock, end1.sock,
		start1.fds, end1.fds, start1.rss, end1.rss, start1.anon,
		end1.anon);
	if (TH_CHECK(env.sidelane && !fault_failures, name,
		     "%ld fault(s) did not end as documented", fault_failures) &&
	    TH_CHECK(!bad && outcomes[1][OK] > 0 && outcomes[0][OK] > 0, name,
		     "%ld connection(s) failed", bad) &&
	    TH_CHECK(alog_moved > 0, name, "%s not written at the end (%d)",
		     alog_path, alog_moved) &&
	    TH_CHECK(end1.conns <= idle0.conns && end1.sock <= idle0.sock, name,
		     "map entries left: sl_conns %d -> %d, sockhash %d -> %d",
		     idle0.conns, end1.conns, idle0.sock, end1.sock) &&
	    TH_CHECK(end1.fds <= start1.fds + FD_SLACK &&
			     end1.anon <= start1.anon + ANON_SLACK_KIB, name,
		     "the last sidecar's fds %d -> %d, anonymous memory %ld "
		     "-> %ld KiB", start1.fds, end1.fds, start1.anon, end1.anon))
		th_pass(name);
out:
	th_env_teardown(&env);
	th_cleanup_pop(cleanup, NULL, true);
	return th_summary();
}
