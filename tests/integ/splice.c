// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Integration test (tests/integ): the splice (include/splice.h) with the
 * real `sidelane run`. An app in its cgroup talks to a plaintext ambassador
 * (127.0.0.1) whose upstream is a server of this test outside sidelane's
 * cgroups. With fastpath.app_sockets send, a non-blocking app socket is
 * admitted on any kernel, so the proxy splices its upload half: sk_msg
 * pushes the app's messages straight into the upstream socket.
 * Checked, each against the proxy's access log line and the BPF counters:
 * - byte-exact uploads of 1 B to 64 MiB in random chunk sizes, most of the
 *   bytes pushed by the kernel, and past the splice point no byte relayed
 *   that sk_msg did not count as a fallback;
 * - downloads from a server behind a lossy veth (a tcx program of this
 *   test drops 1 packet in 32 each way, the server's namespace has no
 *   SACK):
 *   byte-exact through the retransmissions, overlaps cut reported (Linux
 *   6.18's tcp_read_skb() hands a retransmission's overlap with bytes
 *   received before to the verdict again; splice_down_dedup() cuts it;
 *   without the cut, about 2 runs in 3 got repeated bytes);
 * - byte-exact downloads of 1 B to 16 MiB: most bytes redirected by the
 *   sk_skb verdict, every other byte past the splice point a counted
 *   fallback, EOF only after the last byte (the FIN waits for delivery),
 *   and an upstream reset passed on only after every byte;
 * - full duplex, both halves spliced, byte-exact both ways;
 * - back-pressure: a slow upstream reader, an edge-triggered writer that
 *   must not stall, relay fallbacks counted as "upstream full";
 * - half-close: the upstream sees EOF only after every byte;
 * - kill -9 of sidelane mid-upload: the upstream sees a reset, not EOF;
 *   mid-download: the app sees a reset, not EOF;
 * - a blocking app socket is not admitted: relayed, said in the log line.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <openssl/evp.h>
#include "lib/util.h"
#include "loader/pins.h"
#include "sidelane.h"
#include "splice.h"
#include "loader/fastpath_user.h"
#include "harness.h"

#define KiB 1024UL
#define MiB (1024 * KiB)
#define IO_MS 20000

static struct th_env env;
static char cfg_path[PATH_MAX], alog_path[PATH_MAX], log_path[PATH_MAX];
static int amb_port, srv_port, srv_fd = -1;
/* the same over IPv6 ([::1]): app_connect() and relay_line() use it when
 * use_v6
 */
static int amb6_port, srv6_port, srv6_fd = -1;
static bool use_v6;
/* limits.max_conns of this test's sidelane: small, so a burst fills it */
#define LIMIT_CONNS 256
/* the lossy upstream: a server in network namespace ns_name behind a veth
 * (LOSSY_HOST/LOSSY_NS), reached through ambassador lossy_amb_port
 */
#define LOSSY_HOST "198.18.81.1"
#define LOSSY_NS "198.18.81.2"
static char ns_name[32], veth_host[IFNAMSIZ];
static int lossy_amb_port, lossy_srv_port, lossy_srv_fd = -1;
#define DATA_LEN (64 * MiB)
static char *data; /* DATA_LEN of th_fill(): what the app and upstream send */

/* SHA-256 of len bytes of data repeated. */
static void data_sha256(size_t len, unsigned char out[32])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned int dl;
	size_t off;

	EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	for (off = 0; off < len; off += DATA_LEN)
		EVP_DigestUpdate(md, data, len - off < DATA_LEN ? len - off : DATA_LEN);
	EVP_DigestFinal_ex(md, out, &dl);
	EVP_MD_CTX_free(md);
}

/* ---- the upstream server: one thread per connection ---- */

/* What the client asks for, in its first 16 bytes. */
struct hello {
	char mode; /* 'S' sink, 'E' echo, 'W' slow sink, 'K' until it ends,
		    * 'D' send len bytes of data, then close, 'H' like K but
		    * reads nothing until hold_release, 'R' reads 1 KiB, then
		    * resets, 'G' like D after one more byte (the client's go,
		    * past the splice point), 'X' like G, then a reset once all
		    * is acknowledged
		    */
	char pad[7];
	__u64 len; /* S/W: bytes that follow before the client's EOF */
};

struct srv_result { /* of the last 'K' connection */
	int done, err; /* err: how it ended (0: EOF) */
	__u64 got;
} kres;
static int hold_release;

static void *srv_conn(void *arg)
{
	int fd = (int)(long)arg;
	unsigned char digest[32], *buf = malloc(256 * KiB);
	struct hello h;
	__u64 got = 0, reply[5];
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned int dl;
	ssize_t n;

	if (!buf || !md || sl_io_full(fd, &h, sizeof(h), true, -1))
		goto out;
	if (h.mode == 'R') {
		struct linger lg = { 1, 0 };

		sl_io_full(fd, buf, KiB, true, -1);
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		goto out;
	}
	if (h.mode == 'G' || h.mode == 'X')
		if (sl_io_full(fd, buf, 1, true, -1))
			goto out;
	if (h.mode == 'D' || h.mode == 'G' || h.mode == 'X') {
		/* as fast as the proxy takes it */
		for (got = 0; got < h.len;) {
			size_t off = got % DATA_LEN, chunk = h.len - got;

			if (chunk > DATA_LEN - off)
				chunk = DATA_LEN - off;
			n = send(fd, data + off, chunk, MSG_NOSIGNAL);
			if (n <= 0)
				break;
			got += n;
		}
		if (h.mode == 'X') {
			struct linger lg = { 1, 0 };
			__u64 end = th_now_ms() + IO_MS;
			int unacked = 1;

			/* all acknowledged: the proxy's side has every byte */
			while (th_now_ms() < end &&
			       !ioctl(fd, SIOCOUTQ, &unacked) && unacked)
				usleep(1000);
			setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		}
		goto out;
	}
	EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	while (h.mode == 'H' && !__atomic_load_n(&hold_release, __ATOMIC_ACQUIRE))
		usleep(10 * 1000);
	for (;;) {
		n = recv(fd, buf, h.mode == 'W' ? 4 * KiB : 256 * KiB, 0);
		if (n <= 0) {
			if (h.mode == 'K' || h.mode == 'H') {
				kres.err = n < 0 ? errno : 0;
				kres.got = got;
				__atomic_store_n(&kres.done, 1, __ATOMIC_RELEASE);
			}
			break;
		}
		got += n;
		if (h.mode == 'E') {
			if (send(fd, buf, n, MSG_NOSIGNAL) != n)
				break;
			continue;
		}
		EVP_DigestUpdate(md, buf, n);
		if (h.mode == 'W')
			usleep(200);
	}
	if (h.mode == 'E') {
		shutdown(fd, SHUT_WR);
		goto out;
	}
	if (h.mode == 'S' || h.mode == 'W') {
		/* the reply comes after the client's EOF: bytes, then digest */
		EVP_DigestFinal_ex(md, digest, &dl);
		reply[0] = got;
		memcpy(&reply[1], digest, 32);
		send(fd, reply, sizeof(reply), MSG_NOSIGNAL);
	}
out:
	EVP_MD_CTX_free(md);
	free(buf);
	close(fd);
	return NULL;
}

static void *srv_main(void *arg)
{
	int lfd = (int)(long)arg, fd;
	pthread_t t;

	while ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) >= 0)
		if (!pthread_create(&t, NULL, srv_conn, (void *)(long)fd))
			pthread_detach(t);
	return NULL;
}

/* ---- the lossy upstream ---- */

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[512], out[512];
	char *argv[] = { "sh", "-c", cmd, NULL };
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	rc = th_run(NULL, NULL, argv, out, sizeof(out), 10000);
	if (rc)
		th_info("'%s' exited %d: %s", cmd, rc, out);
	return rc ? -EIO : 0;
}

static void lossy_remove(void *arg)
{
	(void)arg;
	if (veth_host[0])
		sh("ip link del %s 2>/dev/null", veth_host);
	if (ns_name[0])
		sh("ip netns del %s 2>/dev/null", ns_name);
}

/* In a thread that enters the namespace: the listener, which keeps it. */
static void *listen_in_ns(void *arg)
{
	char path[64];
	int nsfd, *fd = arg;

	snprintf(path, sizeof(path), "/run/netns/%s", ns_name);
	nsfd = open(path, O_RDONLY | O_CLOEXEC);
	if (nsfd < 0 || setns(nsfd, CLONE_NEWNET))
		*fd = -errno;
	else
		*fd = th_listen(LOSSY_NS, 64, &lossy_srv_port);
	if (nsfd >= 0)
		close(nsfd);
	return NULL;
}

/* enum bpf_attach_type's BPF_TCX_INGRESS and _EGRESS (Linux 6.6); the
 * uapi headers of the build host may predate them
 */
#define SL_BPF_TCX_INGRESS 46
#define SL_BPF_TCX_EGRESS 47

/* The dropper on the host end, both ways (the server's data, our ACKs: a
 * lost ACK makes the server retransmit from before what arrived): return
 * TCX_DROP for one packet in 32, else TCX_PASS. Raw instructions: this
 * test's only BPF program, a dozen bytes. link[2].
 */
static int attach_dropper(int *link)
{
	struct bpf_insn insns[] = {
		{ .code = BPF_JMP | BPF_CALL, .imm = BPF_FUNC_get_prandom_u32 },
		{ .code = BPF_ALU64 | BPF_AND | BPF_K, .dst_reg = BPF_REG_0,
		  .imm = 31 },
		{ .code = BPF_JMP | BPF_JNE | BPF_K, .dst_reg = BPF_REG_0,
		  .off = 2 },
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0,
		  .imm = 2 /* TCX_DROP */ },
		{ .code = BPF_JMP | BPF_EXIT },
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0,
		  .imm = 0 /* TCX_PASS */ },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	int prog, ifindex = (int)if_nametoindex(veth_host), err = 0;

	prog = bpf_prog_load(BPF_PROG_TYPE_SCHED_CLS, "sl_test_drop", "GPL",
			     insns, sizeof(insns) / sizeof(insns[0]), NULL);
	if (prog < 0 || !ifindex)
		return prog < 0 ? prog : -ENODEV;
	link[0] = bpf_link_create(prog, ifindex, SL_BPF_TCX_INGRESS, NULL);
	link[1] = bpf_link_create(prog, ifindex, SL_BPF_TCX_EGRESS, NULL);
	if (link[0] < 0 || link[1] < 0)
		err = -errno;
	close(prog); /* the links hold it */
	return err;
}

/* The namespace, the veth with an address at each end, the server inside,
 * the dropper. 0 or -errno; lossy_remove() undoes it.
 */
static int lossy_setup(int *link)
{
	pthread_t t;
	int err;

	snprintf(ns_name, sizeof(ns_name), "sl-splice-%d", (int)getpid());
	snprintf(veth_host, sizeof(veth_host), "slsp%dh", (int)getpid() % 100000);
	err = th_cleanup_push(lossy_remove, NULL);
	err = err ?: sh("ip netns add %s", ns_name);
	err = err ?: sh("ip link add %s type veth peer name eth0 netns %s",
			veth_host, ns_name);
	err = err ?: sh("ip addr add " LOSSY_HOST "/30 dev %s && ip link set %s up",
			veth_host, veth_host);
	err = err ?: sh("ip -n %s addr add " LOSSY_NS "/30 dev eth0 && "
			"ip -n %s link set eth0 up && ip -n %s link set lo up",
			ns_name, ns_name, ns_name);
	/* no SACK (this namespace's own setting): a loss is repaired by
	 * retransmitting more than the hole, which overlaps what arrived
	 */
	err = err ?: sh("ip netns exec %s sysctl -qw net.ipv4.tcp_sack=0", ns_name);
	if (err)
		return err;
	if (pthread_create(&t, NULL, listen_in_ns, &lossy_srv_fd))
		return -EAGAIN;
	pthread_join(t, NULL);
	if (lossy_srv_fd < 0)
		return lossy_srv_fd;
	if (pthread_create(&t, NULL, srv_main, (void *)(long)lossy_srv_fd))
		return -EAGAIN;
	pthread_detach(t);
	return attach_dropper(link);
}

/* TCP segments the namespace's stack retransmitted so far. */
static unsigned long long ns_retrans(void)
{
	char cmd[128], out[4096], *p, *q;
	char *argv[] = { "sh", "-c", cmd, NULL };
	unsigned long long v = 0;
	int i;

	snprintf(cmd, sizeof(cmd), "ip netns exec %s cat /proc/net/snmp", ns_name);
	if (th_run(NULL, NULL, argv, out, sizeof(out), 10000))
		return 0;
	/* "Tcp: names..." then "Tcp: values...": RetransSegs is the 12th */
	p = strstr(out, "Tcp:");
	p = p ? strstr(p + 4, "Tcp:") : NULL;
	for (i = 0, q = p ? p + 4 : NULL; q && i < 11; i++)
		q = strchr(q + 1, ' ');
	if (q)
		v = strtoull(q + 1, NULL, 10);
	return v;
}

/* ---- sidelane ---- */

static void remove_files(void *arg)
{
	(void)arg;
	unlink(cfg_path);
	unlink(alog_path);
}

static int start_workers; /* proxy.workers of the next start(); 0: default */

static int start(const char *mode, bool splice)
{
	char text[PATH_MAX + 512];
	char workers[32] = "";

	if (start_workers)
		snprintf(workers, sizeof(workers), "  workers: %d\n",
			 start_workers);
	snprintf(text, sizeof(text),
		 "capture:\n  enabled: false\n"
		 "proxy:\n  splice: %s\n%s  ambassadors:\n"
		 "    - listen: \"127.0.0.1:%d\"\n      upstream: \"127.0.0.1:%d\"\n"
		 "    - listen: \"[::1]:%d\"\n      upstream: \"[::1]:%d\"\n"
		 "    - listen: \"127.0.0.1:%d\"\n      upstream: \"" LOSSY_NS ":%d\"\n"
		 "admin:\n  listen: \"\"\n  drain_timeout_ms: 0\n"
		 "accounting:\n  access_log: \"%s\"\n"
		 "fastpath:\n  app_sockets: %s\n"
		 "limits:\n  max_conns: " SL_XSTR(LIMIT_CONNS) "\n",
		 splice ? "true" : "false", workers, amb_port, srv_port, amb6_port,
		 srv6_port, lossy_amb_port, lossy_srv_port, alog_path, mode);
	return th_env_run_config(&env, cfg_path, text);
}

static int splice_stats(struct sl_splice_stats *out)
{
	int fd = sl_pin_open(env.pin_root, SL_MAP_SPLICE_STATS), err;

	if (fd < 0)
		return fd;
	err = sl_percpu_sum_u64(fd, 0, out, sizeof(*out));
	close(fd);
	return err;
}

/* ---- the app's side ---- */

/* The access log's size when the last connection was opened: its relay
 * line comes after (a local port seen before, reused, must not match an
 * older line).
 */
static long alog_mark;

/* A connection to the ambassador from the app's cgroup, non-blocking from
 * before connect() (admitted) unless blocking; connected on return.
 */
static int app_connect(bool blocking)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons(amb_port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6,
				   .sin6_port = htons(amb6_port),
				   .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	struct pollfd p;
	int fd, err = 0;
	socklen_t len = sizeof(err);

	struct stat sb;

	alog_mark = stat(alog_path, &sb) ? 0 : sb.st_size;
	fd = socket(use_v6 ? AF_INET6 : AF_INET,
		    SOCK_STREAM | SOCK_CLOEXEC | (blocking ? 0 : SOCK_NONBLOCK), 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, use_v6 ? (void *)&a6 : (void *)&a,
		    use_v6 ? sizeof(a6) : sizeof(a)) &&
	    errno != EINPROGRESS)
		goto fail;
	p = (struct pollfd){ fd, POLLOUT, 0 };
	if (poll(&p, 1, 2000) != 1 ||
	    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) || err) {
		errno = err ?: ETIMEDOUT;
		goto fail;
	}
	return fd;
fail:
	err = -errno;
	close(fd);
	return err;
}

/* Send all of buf in random chunk sizes (1 B .. 64 KiB), driven by poll()
 * or, with et, by an edge-triggered epoll (a writer that waits for an edge
 * after EAGAIN, as Go's netpoll and nginx do); reading and discarding what
 * comes back when rx, into rx_buf while it has room. 0 or -errno.
 */
struct xfer {
	const char *buf; /* DATA_LEN bytes, sent over and over up to len */
	size_t len;
	bool et, half_close;
	char *rx_buf; /* echo: what came back */
	size_t rx_len, rx_got;
	EVP_MD_CTX *rx_md; /* or, instead of rx_buf, a digest of rx_len bytes */
	/* or each byte compared with buf as it comes: rx_bad is the first
	 * offset that differs (~0: none), rx_seen up to 64 B received there
	 */
	bool rx_check;
	size_t rx_bad, rx_seen_len;
	char rx_seen[64];
	size_t chunk; /* every send() this size; 0: random, 1 B .. 64 KiB */
	unsigned int eagain;
	/* the app socket's messages sk_msg decided on, read from its record
	 * before the half-close (its TCP_CLOSE drops the record); ~0 if none
	 */
	unsigned long long msgs;
};

static void app_msgs(int fd, struct xfer *x)
{
	struct sl_conn rec;

	x->msgs = th_conn(&env, th_sock_cookie(fd), &rec) ?
			  ~0ULL :
			  rec.redir_msgs + rec.pass_msgs;
}

static int xfer(int fd, struct xfer *x)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLET };
	/* the whole transfer: 256 MiB under ASan on a loaded machine took 20 s */
	__u64 seed = x->len * 2654435761ULL + 1,
	      deadline = th_now_ms() + IO_MS * TH_SLOW;
	bool wr_ready = true, rd_ready = true;
	size_t off = 0;
	int ep = -1, err = 0;
	char scratch[16 * KiB];

	if (x->et) {
		ep = epoll_create1(EPOLL_CLOEXEC);
		if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev))
			return -errno;
	}
	x->rx_bad = ~(size_t)0;
	while (off < x->len ||
	       ((x->rx_buf || x->rx_md || x->rx_check) && x->rx_got < x->rx_len)) {
		ssize_t n;

		if (th_now_ms() > deadline) {
			err = -ETIMEDOUT;
			break;
		}
		if (x->et && !(wr_ready && off < x->len) && !rd_ready) {
			struct epoll_event e;

			if (epoll_wait(ep, &e, 1, 1000) > 0) {
				wr_ready |= !!(e.events & EPOLLOUT);
				rd_ready |= !!(e.events & EPOLLIN);
			}
			continue;
		}
		if (!x->et) {
			struct pollfd p = { fd, POLLIN | (off < x->len ? POLLOUT : 0), 0 };

			if (poll(&p, 1, 1000) <= 0)
				continue;
		}
		if (off < x->len && wr_ready) {
			size_t chunk;

			seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
			chunk = x->chunk ? x->chunk : 1 + (seed >> 33) % (64 * KiB);
			if (chunk > x->len - off)
				chunk = x->len - off;
			if (chunk > DATA_LEN - off % DATA_LEN)
				chunk = DATA_LEN - off % DATA_LEN;
			n = send(fd, x->buf + off % DATA_LEN, chunk, MSG_NOSIGNAL);
			if (n > 0) {
				off += n;
				if (off == x->len && x->half_close) {
					app_msgs(fd, x);
					shutdown(fd, SHUT_WR);
				}
			} else if (n < 0 && errno == EAGAIN) {
				x->eagain++;
				wr_ready = !x->et;
			} else {
				err = n < 0 ? -errno : -EIO;
				break;
			}
		}
		if (rd_ready || !x->et) {
			char *dst = x->rx_buf && x->rx_got < x->rx_len ?
					    x->rx_buf + x->rx_got :
					    scratch;
			size_t room = x->rx_buf && x->rx_got < x->rx_len ?
					      x->rx_len - x->rx_got :
					      sizeof(scratch);

			n = recv(fd, dst, room < sizeof(scratch) ? room : sizeof(scratch),
				 MSG_DONTWAIT);
			if (n > 0 && dst != scratch)
				x->rx_got += n;
			else if (n > 0 && x->rx_md) {
				EVP_DigestUpdate(x->rx_md, scratch, n);
				x->rx_got += n;
			} else if (n > 0 && x->rx_check) {
				size_t i, at;

				for (i = 0; i < (size_t)n && x->rx_bad == ~(size_t)0; i++) {
					at = x->rx_got + i;
					if (scratch[i] == x->buf[at % DATA_LEN])
						continue;
					x->rx_bad = at;
					x->rx_seen_len = n - i < sizeof(x->rx_seen) ?
								 n - i : sizeof(x->rx_seen);
					memcpy(x->rx_seen, scratch + i, x->rx_seen_len);
				}
				x->rx_got += n;
			}
			else if (n < 0 && errno == EAGAIN)
				rd_ready = !x->et;
			else if (n <= 0) {
				err = n < 0 ? -errno : 0;
				break;
			}
		}
	}
	if (ep >= 0)
		close(ep);
	return err;
}

/* The access log's relay line of the connection from local port lport. */
static int relay_line(int lport, char *out, size_t len)
{
	char want[64];
	__u64 end = th_now_ms() + 3000;
	FILE *f;

	snprintf(want, sizeof(want), use_v6 ? "\"peer\":\"[::1]:%d\"" :
					     "\"peer\":\"127.0.0.1:%d\"", lport);
	while (th_now_ms() < end) {
		f = fopen(alog_path, "r");
		if (f && fseek(f, alog_mark, SEEK_SET))
			rewind(f);
		while (f && fgets(out, (int)len, f))
			if (strstr(out, want) && strstr(out, "\"kind\":\"relay\"")) {
				fclose(f);
				return 0;
			}
		if (f)
			fclose(f);
		usleep(50 * 1000);
	}
	return -ENOENT;
}

static unsigned long long field(const char *line, const char *name)
{
	char key[64];
	const char *p;

	snprintf(key, sizeof(key), "\"%s\":", name);
	p = strstr(line, key);
	return p ? strtoull(p + strlen(key), NULL, 10) : ~0ULL;
}

static int local_port(int fd)
{
	struct sockaddr_in6 a; /* sin_port and sin6_port share an offset */
	socklen_t l = sizeof(a);

	return getsockname(fd, (void *)&a, &l) ? -1 : ntohs(a.sin6_port);
}

/* Wait until the proxy has spliced fd's connection (its entry in
 * sl_splice_idx, keyed by the sidecar's end): the splice point. 0 or
 * -ETIMEDOUT.
 */
static int wait_spliced(int fd)
{
	struct sl_sock_key me, side;
	struct sl_splice_ref ref;
	int map = sl_pin_open(env.pin_root, SL_MAP_SPLICE_IDX), err = -ETIMEDOUT;
	__u64 end = th_now_ms() + 2000;

	if (map < 0 || th_sock_key(fd, &me))
		goto out;
	sl_sock_key_swap(&me, &side);
	while (th_now_ms() < end) {
		if (!bpf_map_lookup_elem(map, &side, &ref)) {
			err = 0;
			break;
		}
		usleep(2000);
	}
out:
	if (map >= 0)
		close(map);
	return err;
}

/* A connection of the app's to the ambassador, h sent, the pair spliced
 * (the splice point past the header): its fd and local port, or -errno.
 */
static int spliced_conn(const struct hello *h, int *lport)
{
	int fd = app_connect(false), err;

	if (fd < 0)
		return fd;
	*lport = local_port(fd);
	err = send(fd, h, sizeof(*h), MSG_NOSIGNAL) == sizeof(*h) ? 0 : -errno;
	err = err ?: wait_spliced(fd);
	if (err) {
		close(fd);
		return err;
	}
	return fd;
}

/* Upload len bytes in mode 'S' or 'W'; the server's count and SHA-256
 * must match. The relay line must add up. et: edge-triggered writer.
 */
static void check_upload(const char *name, size_t len, char mode, bool et,
			 bool want_full)
{
	struct hello h = { .mode = mode, .len = len };
	struct sl_splice_stats s0, s1;
	struct sl_counters c0, c1;
	unsigned long long app_msgs, decided;
	unsigned char sha[32];
	__u64 reply[5] = {};
	struct xfer x = { .buf = data, .len = len, .et = et, .half_close = true,
			  .rx_buf = (char *)reply, .rx_len = sizeof(reply) };
	unsigned long long tot, spl, fb, relayed;
	char line[2048];
	int fd, err, lport;

	data_sha256(len, sha);
	splice_stats(&s0);
	th_counters(&env, &c0);
	/* the header before the splice point, the rest after it */
	fd = spliced_conn(&h, &lport);
	if (!TH_CHECK(fd >= 0, name, "connect and splice: %s", strerror(-fd)))
		return;
	err = xfer(fd, &x);
	app_msgs = x.msgs;
	close(fd);
	splice_stats(&s1);
	th_counters(&env, &c1);
	if (!TH_CHECK(!err && x.rx_got == sizeof(reply), name,
		      "transfer: %s, reply %zu B", strerror(-err), x.rx_got) ||
	    !TH_CHECK(reply[0] == len && !memcmp(&reply[1], sha, 32), name,
		      "upstream got %llu of %zu B, SHA-256 %s",
		      (unsigned long long)reply[0], len,
		      memcmp(&reply[1], sha, 32) ? "differs" : "equal") ||
	    !TH_CHECK(!relay_line(lport, line, sizeof(line)), name,
		      "no relay line for :%d in %s", lport, alog_path))
		return;
	tot = field(line, "bytes_up");
	spl = field(line, "bytes_up_spliced");
	fb = field(line, "bytes_up_fallback");
	relayed = tot - spl;
	decided = field(line, "msgs_up_spliced") + field(line, "msgs_up_fallback");
	th_info("%s: %zu B: pushed %llu, relayed %llu, of which %llu counted "
		"fallbacks (behind %llu, full %llu msgs), %u EAGAIN", name, len,
		spl, relayed, fb,
		(unsigned long long)(s1.dir[SL_SPD_UP].relay[SL_SPW_BEHIND] - s0.dir[SL_SPD_UP].relay[SL_SPW_BEHIND]),
		(unsigned long long)(s1.dir[SL_SPD_UP].relay[SL_SPW_FULL] - s0.dir[SL_SPD_UP].relay[SL_SPW_FULL]),
		x.eagain);
	th_info("  fast path: redirect_ok +%llu, redirect_failed +%llu, "
		"pass_plain +%llu (%llu B), backlog_fallback +%llu",
		(unsigned long long)(c1.redirect_ok - c0.redirect_ok),
		(unsigned long long)(c1.redirect_failed - c0.redirect_failed),
		(unsigned long long)(c1.pass_plain - c0.pass_plain),
		(unsigned long long)(c1.plain_bytes - c0.plain_bytes),
		(unsigned long long)(c1.backlog_fallback - c0.backlog_fallback));
	th_info("  app's messages: %llu decided by sk_msg, %llu of them past "
		"the splice point (pushed or counted fallbacks)", app_msgs,
		decided);
	/* Past the splice point every message of the app was pushed or a
	 * counted fallback: the app's record and the slot count the same
	 * messages, but for the header if that came before. (Bytes do not
	 * add up as exactly: a message the next hop takes in part is counted
	 * whole and the rest sent again.) After the upstream first fills, a
	 * bulk writer's later messages queue behind the relayed ones; the
	 * info line shows how much was pushed.
	 */
	TH_RESULT(strstr(line, "\"splice\":\"spliced\"") &&
			  tot == len + sizeof(h) &&
			  (app_msgs == decided || app_msgs == decided + 1) &&
			  (len < 64 * KiB || spl >= 64 * KiB) &&
			  (!want_full || s1.dir[SL_SPD_UP].relay[SL_SPW_FULL] > s0.dir[SL_SPD_UP].relay[SL_SPW_FULL]),
		  name, "relay line: %s", line);
}

/* Where in what was sent (modulo DATA_LEN) the n >= 16 bytes at got were
 * sent: random bytes, so 16 place them; -1 if nowhere or too few.
 */
static long sent_at(const char *got, size_t n)
{
	const char *hit;

	if (n < 16)
		return -1;
	hit = memmem(data, DATA_LEN, got, n < 64 ? n : 64);
	return hit ? hit - data : -1;
}

static void check_duplex(const char *name, size_t len)
{
	struct hello h = { .mode = 'E', .len = len };
	char *back = malloc(len);
	struct xfer x = { .buf = data, .len = len, .half_close = true,
			  .rx_buf = back, .rx_len = len };
	char line[2048];
	size_t bad = 0;
	int fd, err, lport;

	fd = back ? spliced_conn(&h, &lport) : -ENOMEM;
	if (!TH_CHECK(fd >= 0, name, "connect and splice: %s", strerror(-fd)))
		goto out;
	err = xfer(fd, &x);
	close(fd);
	while (bad < x.rx_got && back[bad] == data[bad])
		bad++;
	if (TH_CHECK(!err && x.rx_got == len && bad == len, name,
		     "%s: echo %zu of %zu B, first difference at %zu (the "
		     "bytes received there sent at %ld, -1: not found)",
		     strerror(-err), x.rx_got, len, bad,
		     sent_at(back + bad, x.rx_got - bad)) &&
	    TH_CHECK(!relay_line(lport, line, sizeof(line)) &&
			     strstr(line, "\"splice\":\"spliced\"") &&
			     field(line, "bytes_up") == len + sizeof(h) &&
			     field(line, "bytes_down") == len &&
			     field(line, "bytes_up") - field(line, "bytes_up_spliced") -
					     field(line, "bytes_up_fallback") <= sizeof(h) &&
			     /* the echo starts past the splice point */
			     field(line, "bytes_down") ==
				     field(line, "bytes_down_spliced") +
					     field(line, "bytes_down_fallback") &&
			     (len < MiB || field(line, "bytes_down_spliced") > 0),
		     name, "relay line: %s", line))
		th_pass(name);
out:
	free(back);
}

/* A download's reader: poll() and recv() until EOF or an error (its errno,
 * 0 for EOF; ETIMEDOUT after IO_MS), digesting into md if any, pausing
 * pause_us after each read; once kill_at bytes have come (0: never),
 * sidelane is killed with SIGKILL.
 */
static int download_read(int fd, EVP_MD_CTX *md, size_t chunk, int pause_us,
			 size_t kill_at, size_t *got)
{
	static char buf[64 * KiB];
	__u64 end = th_now_ms() + IO_MS;

	*got = 0;
	while (th_now_ms() < end) {
		struct pollfd p = { fd, POLLIN, 0 };
		ssize_t n;

		if (kill_at && *got >= kill_at && env.sidelane > 0) {
			kill(env.sidelane, SIGKILL);
			th_wait(env.sidelane, 5000);
			env.sidelane = 0;
		}
		if (poll(&p, 1, 1000) != 1)
			continue;
		n = recv(fd, buf, chunk < sizeof(buf) ? chunk : sizeof(buf),
			 MSG_DONTWAIT);
		if (n > 0) {
			if (md)
				EVP_DigestUpdate(md, buf, n);
			*got += n;
			if (pause_us)
				usleep(pause_us);
			continue;
		}
		if (n < 0 && errno == EAGAIN)
			continue;
		return n < 0 ? errno : 0;
	}
	return ETIMEDOUT;
}

/* Download len bytes ('G': the server starts on our go, sent past the
 * splice point; reset: 'X', its reset once all is acknowledged). Byte-exact
 * (SHA-256), then EOF, or ECONNRESET after the last byte: the FIN or RST
 * must wait until every redirected byte is in. Past the splice point every
 * byte the proxy relayed must be a counted fallback: bytes_down = spliced +
 * fallback. slow: a reader of about 80 MB/s at most, so the app's side
 * fills and app-full fallbacks are counted.
 */
static void check_download(const char *name, size_t len, bool reset, bool slow)
{
	struct hello h = { .mode = reset ? 'X' : 'G', .len = len };
	struct sl_splice_stats s0, s1;
	unsigned char want[32], got_sha[32];
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned long long full;
	size_t got = 0;
	char line[2048];
	unsigned int dl;
	int fd, lport, end_err;

	splice_stats(&s0);
	fd = app_connect(false);
	if (!TH_CHECK(md && fd >= 0, name, "connect: %s", strerror(-fd)))
		goto out;
	EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	lport = local_port(fd);
	send(fd, &h, sizeof(h), MSG_NOSIGNAL);
	if (!TH_CHECK(!wait_spliced(fd), name, "not spliced")) {
		close(fd);
		goto out;
	}
	send(fd, "g", 1, MSG_NOSIGNAL);
	end_err = download_read(fd, md, slow ? 16 * KiB : 64 * KiB,
				slow ? 200 : 0, 0, &got);
	close(fd);
	EVP_DigestFinal_ex(md, got_sha, &dl);
	data_sha256(len, want);
	splice_stats(&s1);
	full = s1.dir[SL_SPD_DOWN].relay[SL_SPW_FULL] -
	       s0.dir[SL_SPD_DOWN].relay[SL_SPW_FULL];
	if (!TH_CHECK(got == len && !memcmp(got_sha, want, 32) &&
			      end_err == (reset ? ECONNRESET : 0),
		      name, "got %zu of %zu B, SHA-256 %s, then %s", got, len,
		      memcmp(got_sha, want, 32) ? "differs" : "equal",
		      end_err ? strerror(end_err) : "EOF") ||
	    !TH_CHECK(!relay_line(lport, line, sizeof(line)), name,
		      "no relay line for :%d", lport))
		goto out;
	th_info("%s: redirected %llu B in %llu skbs, relayed %llu B in %llu "
		"(app-full %llu)", name, field(line, "bytes_down_spliced"),
		field(line, "msgs_down_spliced"), field(line, "bytes_down_fallback"),
		field(line, "msgs_down_fallback"), full);
	TH_RESULT(strstr(line, "\"splice\":\"spliced\"") &&
			  field(line, "bytes_down") == len &&
			  field(line, "bytes_down") ==
				  field(line, "bytes_down_spliced") +
					  field(line, "bytes_down_fallback") &&
			  (len < 64 * KiB || field(line, "bytes_down_spliced") > 0) &&
			  /* the bound held: a slow reader's side filled
			   * and the proxy took over (app-full, or behind
			   * one the proxy held first)
			   */
			  (!slow || field(line, "bytes_down_fallback") > 0),
		  name, "relay line: %s", line);
out:
	EVP_MD_CTX_free(md);
}

/* 64 MiB from the server behind the lossy veth: every byte once, in
 * order, the server's stack retransmitting (the condition this checks;
 * whether a retransmission overlapped is luck, reported).
 */
static void check_lossy_download(void)
{
	const char *name = "splice: downloads of 64 MiB over a lossy veth (1 packet in 32 "
			   "dropped each way, no SACK): byte-exact through the retransmissions";
	struct sl_splice_stats s0, s1;
	unsigned long long r0, r1;
	int saved = amb_port, i;

	r0 = ns_retrans();
	splice_stats(&s0);
	amb_port = lossy_amb_port;
	/* an overlapping retransmission is luck: three tries at it */
	for (i = 0; i < 3; i++)
		check_download(name, 64 * MiB, false, false);
	amb_port = saved;
	splice_stats(&s1);
	r1 = ns_retrans();
	th_info("%s: %llu segments retransmitted, %llu skbs overlapped (%llu B "
		"cut), %llu not cut", name, r1 - r0, s1.dup_skbs - s0.dup_skbs,
		s1.dup_bytes - s0.dup_bytes, s1.trim_failed - s0.trim_failed);
	TH_RESULT(r1 > r0, "splice: the lossy veth made the server retransmit",
		  "no retransmission: the lossy case proved nothing");
}

/* n connections through the ambassador, all open at once (so each holds
 * its sockhash entries, records and splice slot), each echoing one line;
 * *ok: how many echoes came back right. Closes them and waits for the
 * records to go. Returns how many connected.
 */
#define BURST_MAX (LIMIT_CONNS + LIMIT_CONNS / 4)
static int burst_echo(const char *name, int n_want, int *ok)
{
	static int fds[BURST_MAX];
	struct hello h = { .mode = 'E' };
	char msg[100], back[100];
	int i, n = 0, before = th_map_entries(&env, SL_MAP_CONNS);

	*ok = 0;
	for (i = 0; i < n_want && i < BURST_MAX; i++) {
		fds[i] = app_connect(false);
		if (fds[i] < 0)
			break;
		n++;
		send(fds[i], &h, sizeof(h), MSG_NOSIGNAL);
	}
	for (i = 0; i < n; i++) {
		size_t got = 0;
		__u64 end = th_now_ms() + 5000;

		snprintf(msg, sizeof(msg), "connection %d of the burst", i);
		send(fds[i], msg, sizeof(msg), MSG_NOSIGNAL);
		while (got < sizeof(back) && th_now_ms() < end) {
			struct pollfd p = { fds[i], POLLIN, 0 };
			ssize_t r;

			if (poll(&p, 1, 1000) != 1)
				continue;
			r = recv(fds[i], back + got, sizeof(back) - got, 0);
			if (r <= 0 && !(r < 0 && errno == EAGAIN))
				break;
			if (r > 0)
				got += r;
		}
		if (got == sizeof(back) && !memcmp(back, msg, sizeof(msg)))
			(*ok)++;
		else {
			char l[2048] = "";
			int lp = local_port(fds[i]);

			close(fds[i]);
			fds[i] = -1;
			relay_line(lp, l, sizeof(l));
			th_info("%s: connection %d (:%d): %zu of %zu B back%s; %s", name,
				i, lp, got, sizeof(back),
				got == sizeof(back) ? ", differing" : "", l);
		}
	}
	for (i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	/* the tables empty again before the next check connects (closing
	 * pairs free their records at TCP_CLOSE, the proxy's a moment later)
	 */
	th_wait_entries(&env, SL_MAP_CONNS, before, 5000);
	return n;
}

/* limits.max_conns sizes the tables (sockhash two sockets a connection,
 * records three, the splice slots one); a burst past it leaves the surplus
 * on the plain path, counted, and every connection's bytes right.
 */
static void check_limits(void)
{
	const char *name = "limits: max_conns sizes the sockhash, records and splice slots";
	const char *name2 = "limits: a burst past max_conns: the surplus on the plain path, "
			    "counted, every echo right";
	struct bpf_map_info info;
	struct sl_counters c0, c1;
	struct sl_splice_stats sp0, sp1;
	__u32 len, max[3] = {};
	const char *maps[3] = { SL_MAP_SOCKHASH, SL_MAP_CONNS, SL_MAP_SPLICE };
	int i, n, ok, fd;

	for (i = 0; i < 3; i++) {
		fd = sl_pin_open(env.pin_root, maps[i]);
		memset(&info, 0, sizeof(info));
		len = sizeof(info);
		if (fd >= 0 && !bpf_obj_get_info_by_fd(fd, &info, &len))
			max[i] = info.max_entries;
		if (fd >= 0)
			close(fd);
	}
	TH_RESULT(max[0] == 2 * LIMIT_CONNS && max[1] == 3 * LIMIT_CONNS &&
			  max[2] == LIMIT_CONNS,
		  name, "max_entries: sockhash %u, records %u, splice %u", max[0],
		  max[1], max[2]);
	th_counters(&env, &c0);
	splice_stats(&sp0);
	n = burst_echo(name2, BURST_MAX, &ok);
	th_counters(&env, &c1);
	splice_stats(&sp1);
	th_info("%s: %d connections, %d echoes right; sockhash inserts failed "
		"+%llu, records not kept +%llu; download overlaps cut +%llu",
		name2, n, ok,
		(unsigned long long)(c1.sock_insert_failed - c0.sock_insert_failed),
		(unsigned long long)(c1.conn_map_full - c0.conn_map_full),
		(unsigned long long)(sp1.dup_skbs - sp0.dup_skbs));
	TH_RESULT(n == BURST_MAX && ok == BURST_MAX &&
			  c1.sock_insert_failed + c1.conn_map_full >
				  c0.sock_insert_failed + c0.conn_map_full,
		  name2, "%d of %d connected, %d echoes right, nothing counted "
		  "full", n, BURST_MAX, ok);
}

/* Each worker splices into its own share of the slots (no lock on the data
 * path), so with eight workers and max_conns pairs open at once, a worker
 * that accepted more than its eighth has no slot for the rest: those stay
 * relayed by the proxy, the line says no-slot, nothing of them was pushed,
 * and every echo is right. (Only an even split, 32 each, would leave every
 * pair a slot: about 1 run in 4e7.)
 */
static void check_no_slot(void)
{
	const char *name = "splice: a worker out of splice slots: those pairs stay "
			   "relayed (no-slot), every echo right";
	unsigned int lines = 0, no_slot = 0, pushed = 0;
	char line[2048];
	struct stat sb;
	long mark;
	int n, ok, err;
	__u64 end;
	FILE *f;

	if (env.sidelane > 0) {
		kill(env.sidelane, SIGTERM);
		th_wait(env.sidelane, 5000);
		env.sidelane = 0;
	}
	start_workers = 8;
	err = start("send", true);
	start_workers = 0;
	if (!TH_CHECK(!err, name, "restart with 8 workers: %s", strerror(-err)))
		return;
	mark = stat(alog_path, &sb) ? 0 : sb.st_size;
	n = burst_echo(name, LIMIT_CONNS, &ok);
	/* the lines are written at the proxy's close, a moment later */
	end = th_now_ms() + 3000;
	do {
		lines = no_slot = pushed = 0;
		usleep(100 * 1000);
		f = fopen(alog_path, "r");
		if (f && fseek(f, mark, SEEK_SET))
			rewind(f);
		while (f && fgets(line, sizeof(line), f)) {
			if (!strstr(line, "\"kind\":\"relay\""))
				continue;
			lines++;
			if (!strstr(line, "\"splice\":\"no-slot\""))
				continue;
			no_slot++;
			pushed += field(line, "bytes_up_spliced") +
					  field(line, "bytes_down_spliced") >
				  0;
		}
		if (f)
			fclose(f);
	} while (lines < (unsigned int)n && th_now_ms() < end);
	th_info("%s: %d connections, %d echoes right, %u lines, %u no-slot",
		name, n, ok, lines, no_slot);
	TH_RESULT(n == LIMIT_CONNS && ok == n && lines == (unsigned int)n &&
			  no_slot > 0 && !pushed,
		  name, "%d of %d connected, %d echoes right, %u lines, %u no-slot "
		  "(%u of them with bytes pushed)", n, LIMIT_CONNS, ok, lines,
		  no_slot, pushed);
}

/* `sidelane status --json` has what sk_msg pushed, equal to the map's. */
static void check_status(void)
{
	const char *name = "splice: status --json counts the bytes moved each way and the fallbacks by why";
	char cmd[PATH_MAX + 512], out[512], want[256];
	char *sh[] = { "sh", "-c", cmd, NULL };
	struct sl_splice_stats st;
	int rc;

	snprintf(cmd, sizeof(cmd),
		 "%s status --json --pin-root %s | python3 -c 'import json, sys; "
		 "s = json.load(sys.stdin)[\"splice\"]; "
		 "print(s[\"up\"][\"pushed_bytes\"], sorted(s[\"up\"][\"relayed_msgs\"]), "
		 "s[\"down\"][\"pushed_bytes\"], sorted(s[\"down\"][\"relayed_msgs\"]))'",
		 th_sidelane_bin(), env.pin_root);
	rc = th_run(NULL, NULL, sh, out, sizeof(out), 10000);
	splice_stats(&st);
	snprintf(want, sizeof(want),
		 "%llu ['behind', 'upstream-closing', 'upstream-full', 'upstream-gone'] "
		 "%llu ['app-closing', 'app-full', 'app-gone', 'behind']\n",
		 (unsigned long long)st.dir[SL_SPD_UP].pushed_bytes,
		 (unsigned long long)st.dir[SL_SPD_DOWN].pushed_bytes);
	TH_RESULT(!rc && st.dir[SL_SPD_UP].pushed_bytes > 0 &&
			  st.dir[SL_SPD_DOWN].pushed_bytes > 0 && !strcmp(out, want),
		  name,
		  "exit %d: '%s', want '%s'", rc, out, want);
}

/* `sidelane conns` says which live connections are spliced, with what
 * was pushed, for the app's socket and the sidecar's end alike.
 */
static void check_conns(void)
{
	const char *name = "splice: conns lists a live spliced connection, both ends, with the pushed bytes";
	struct hello h = { .mode = 'E', .len = 64 * KiB };
	char *argv[] = { (char *)th_sidelane_bin(), "conns", "--json", "--pin-root",
			 env.pin_root, NULL };
	static char out[65536];
	char want[64], *p;
	int fd, rc, n = 0;

	fd = app_connect(false);
	if (!TH_CHECK(fd >= 0, name, "connect: %s", strerror(-fd)))
		return;
	send(fd, &h, sizeof(h), MSG_NOSIGNAL);
	wait_spliced(fd);
	send(fd, data, 4 * KiB, MSG_NOSIGNAL);
	usleep(100 * 1000);
	rc = th_run(NULL, NULL, argv, out, sizeof(out), 10000);
	close(fd);
	/* the header too, if it came after the splice point */
	snprintf(want, sizeof(want), "\"spliced\":{\"pushed_bytes\":");
	for (p = out; (p = strstr(p, want)); p++)
		if (strtoull(p + strlen(want), NULL, 10) >= 4 * KiB)
			n++;
	TH_RESULT(!rc && n == 2, name, "exit %d, %d entries with %s: %.2000s", rc,
		  n, want, out);
}

/* Full duplex with every send() 64 KiB, as bulk senders and the bench do,
 * each byte of the echo compared as it comes: where it first differs, and
 * where in what was sent those bytes come from (a duplicate shows an
 * earlier offset), and how much more than was sent came back.
 */
static void check_duplex_fixed(const char *name, size_t len)
{
	struct hello h = { .mode = 'E', .len = len };
	struct xfer x = { .buf = data, .len = len, .half_close = true,
			  .rx_len = len, .rx_check = true, .chunk = 64 * KiB };
	size_t extra = 0;
	char line[2048];
	long src = -1;
	int fd, err, lport;

	fd = spliced_conn(&h, &lport);
	if (!TH_CHECK(fd >= 0, name, "connect and splice: %s", strerror(-fd)))
		return;
	err = xfer(fd, &x);
	/* what comes after the last byte, up to the EOF */
	if (!err)
		download_read(fd, NULL, 64 * KiB, 0, 0, &extra);
	close(fd);
	if (x.rx_bad != ~(size_t)0)
		src = sent_at(x.rx_seen, x.rx_seen_len);
	relay_line(lport, line, sizeof(line));
	TH_RESULT(!err && x.rx_got == len && x.rx_bad == ~(size_t)0 && !extra,
		  name, "%s: echo %zu of %zu B, first difference at %zd "
		  "(the bytes received there sent at %ld modulo 64 MiB, -1: "
		  "not found or too few), %zu B more than sent; %s",
		  strerror(-err), x.rx_got, len,
		  x.rx_bad == ~(size_t)0 ? (ssize_t)-1 : (ssize_t)x.rx_bad, src,
		  extra, line);
}

/* check_duplex() for more than DATA_LEN: what comes back is digested. */
static void check_duplex_long(const char *name, size_t len)
{
	struct hello h = { .mode = 'E', .len = len };
	unsigned char want[32], got[32];
	struct xfer x = { .buf = data, .len = len, .half_close = true,
			  .rx_len = len, .rx_md = EVP_MD_CTX_new() };
	unsigned int dl;
	int fd, err, lport;

	fd = x.rx_md ? spliced_conn(&h, &lport) : -ENOMEM;
	if (!TH_CHECK(fd >= 0, name, "connect and splice: %s", strerror(-fd)))
		goto out;
	EVP_DigestInit_ex(x.rx_md, EVP_sha256(), NULL);
	err = xfer(fd, &x);
	close(fd);
	EVP_DigestFinal_ex(x.rx_md, got, &dl);
	data_sha256(len, want);
	TH_RESULT(!err && x.rx_got == len && !memcmp(got, want, 32), name,
		  "%s: echo %zu of %zu B, SHA-256 %s", strerror(-err), x.rx_got,
		  len, memcmp(got, want, 32) ? "differs" : "equal");
out:
	EVP_MD_CTX_free(x.rx_md);
}

/* A fast upstream and a slow reader in the app, on a spliced connection
 * (its download half is relayed): every byte, in order.
 */
static void check_slow_reader(void)
{
	const char *name = "splice: a fast upstream and a slow app reader: 16 MiB byte-exact, in order";
	struct hello h = { .mode = 'D', .len = 16 * MiB };
	char *in = malloc(16 * MiB), line[2048];
	size_t got = 0;
	__u64 end = th_now_ms() + IO_MS;
	int fd, lport;

	fd = app_connect(false);
	if (!TH_CHECK(in && fd >= 0, name, "connect: %s", strerror(-fd)))
		goto out;
	lport = local_port(fd);
	send(fd, &h, sizeof(h), MSG_NOSIGNAL);
	wait_spliced(fd);
	while (got < h.len && th_now_ms() < end) {
		struct pollfd p = { fd, POLLIN, 0 };
		ssize_t n;

		if (poll(&p, 1, 1000) != 1)
			continue;
		n = recv(fd, in + got, 16 * KiB, MSG_DONTWAIT);
		if (n <= 0 && !(n < 0 && errno == EAGAIN))
			break;
		if (n > 0)
			got += n;
		usleep(200); /* about 80 MB/s at most */
	}
	shutdown(fd, SHUT_WR);
	close(fd);
	if (TH_CHECK(got == h.len && !memcmp(in, data, got), name,
		     "got %zu of %llu B, %s", got, (unsigned long long)h.len,
		     got == h.len && !memcmp(in, data, got) ? "equal" : "differs") &&
	    TH_CHECK(!relay_line(lport, line, sizeof(line)) &&
			     strstr(line, "\"splice\":\"spliced\"") &&
			     field(line, "bytes_down") == h.len,
		     name, "relay line: %s", line))
		th_pass(name);
out:
	free(in);
}

/* The upstream stops reading. A non-blocking app writing into its spliced
 * connection must end up with EAGAIN and its socket not writable (no spin),
 * with a bounded amount taken; once the upstream reads again, an
 * edge-triggered EPOLLOUT must come (no stall), and every byte arrives.
 */
static void check_backpressure(void)
{
	const char *name = "splice: a stopped upstream: EAGAIN with the app socket not "
			   "writable, an EPOLLOUT edge once it reads, every byte";
	struct hello h = { .mode = 'H' };
	struct epoll_event ev = { .events = EPOLLOUT | EPOLLET }, e;
	size_t sent = 0, cap = 256 * MiB;
	int fd, ep = -1, writable = -1, edge = 0;
	__u64 end;

	memset(&kres, 0, sizeof(kres));
	__atomic_store_n(&hold_release, 0, __ATOMIC_RELEASE);
	fd = app_connect(false);
	if (!TH_CHECK(fd >= 0, name, "connect: %s", strerror(-fd)))
		return;
	send(fd, &h, sizeof(h), MSG_NOSIGNAL);
	wait_spliced(fd);
	ep = epoll_create1(EPOLL_CLOEXEC);
	epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
	/* fill everything between the app and the stopped upstream */
	end = th_now_ms() + IO_MS;
	while (sent < cap && th_now_ms() < end) {
		ssize_t n = send(fd, data + sent % DATA_LEN,
				 64 * KiB - (sent % DATA_LEN) % (64 * KiB),
				 MSG_NOSIGNAL);

		if (n > 0) {
			sent += n;
			continue;
		}
		if (n < 0 && errno == EAGAIN) {
			struct pollfd p = { fd, POLLOUT, 0 };

			/* a spinning app would see POLLOUT here at once */
			writable = poll(&p, 1, 200) == 1 && (p.revents & POLLOUT);
			if (writable)
				continue; /* TCP freed room meanwhile: go on */
		}
		break;
	}
	/* drain any edge the filling left, then let the upstream read */
	while (epoll_wait(ep, &e, 1, 0) > 0)
		;
	__atomic_store_n(&hold_release, 1, __ATOMIC_RELEASE);
	edge = epoll_wait(ep, &e, 1, 5000) == 1 && (e.events & EPOLLOUT);
	shutdown(fd, SHUT_WR);
	end = th_now_ms() + IO_MS;
	while (!__atomic_load_n(&kres.done, __ATOMIC_ACQUIRE) && th_now_ms() < end)
		usleep(20 * 1000);
	close(fd);
	close(ep);
	th_info("%s: %zu B taken before EAGAIN, writable after it: %d, edge: %d, "
		"upstream got %llu B", name, sent, writable, edge,
		(unsigned long long)kres.got);
	TH_RESULT(sent < cap && writable == 0 && edge && kres.done &&
			  !kres.err && kres.got == sent,
		  name, "see the line above");
}

/* The end of a spliced upload: after shutdown(SHUT_WR) a send() fails
 * EPIPE, as on TCP; and when the upstream resets, the app's sends start
 * failing with ECONNRESET or EPIPE (the proxy passes the reset on), never
 * vanish into a dead upstream.
 */
static void check_errors(void)
{
	const char *n1 = "splice: send() after shutdown(SHUT_WR) fails EPIPE";
	const char *n2 = "splice: the upstream resets: the app's send() fails within 2 s";
	struct hello h = { .mode = 'S', .len = 1000 };
	int fd, i, err = 0;
	__u64 end;

	fd = app_connect(false);
	if (!TH_CHECK(fd >= 0, n1, "connect: %s", strerror(-fd)))
		return;
	send(fd, &h, sizeof(h), MSG_NOSIGNAL);
	wait_spliced(fd);
	send(fd, data, 1000, MSG_NOSIGNAL);
	shutdown(fd, SHUT_WR);
	errno = 0;
	i = send(fd, data, 10, MSG_NOSIGNAL);
	TH_RESULT(i < 0 && errno == EPIPE, n1, "send %d (%s)", i,
		  strerror(errno));
	close(fd);

	h.mode = 'R';
	fd = app_connect(false);
	if (!TH_CHECK(fd >= 0, n2, "connect: %s", strerror(-fd)))
		return;
	send(fd, &h, sizeof(h), MSG_NOSIGNAL);
	wait_spliced(fd);
	end = th_now_ms() + 2000;
	while (!err && th_now_ms() < end) {
		if (send(fd, data, 4 * KiB, MSG_NOSIGNAL) < 0 && errno != EAGAIN)
			err = errno;
		usleep(10 * 1000);
	}
	close(fd);
	TH_RESULT(err == ECONNRESET || err == EPIPE, n2, "last error %s",
		  err ? strerror(err) : "none");
}

/* A blocking app socket is not admitted: relayed, and the line says why. */
static void check_not_admitted(void)
{
	const char *name = "splice: a blocking app socket is not admitted: relayed, the line says so";
	struct hello h = { .mode = 'S', .len = 1000 };
	__u64 reply[5];
	char line[2048];
	int fd = app_connect(true), lport;

	if (!TH_CHECK(fd >= 0, name, "connect: %s", strerror(-fd)))
		return;
	lport = local_port(fd);
	send(fd, &h, sizeof(h), MSG_NOSIGNAL);
	send(fd, data, 1000, MSG_NOSIGNAL);
	shutdown(fd, SHUT_WR);
	sl_io_full(fd, reply, sizeof(reply), true, -1);
	close(fd);
	TH_RESULT(reply[0] == 1000 && !relay_line(lport, line, sizeof(line)) &&
			  strstr(line, "\"splice\":\"not-admitted\"") &&
			  field(line, "bytes_up_spliced") == 0,
		  name, "got %llu, line %s", (unsigned long long)reply[0], line);
}

/* Nothing is spliced with redirect switched off by a failed start-up
 * self-test (fail: SIDELANE_SELFTEST_FAIL), or with proxy.splice false:
 * relayed, and the line says why (result).
 */
static void check_not_spliced(const char *name, const char *fail, bool splice,
			      const char *result)
{
	struct hello h = { .mode = 'S', .len = 64 * KiB };
	__u64 reply[5] = {};
	char line[2048], want[64];
	int fd, lport, err;

	if (env.sidelane > 0) { /* check_kill9() may have ended it */
		kill(env.sidelane, SIGTERM);
		th_wait(env.sidelane, 5000);
		env.sidelane = 0;
	}
	if (fail)
		setenv("SIDELANE_SELFTEST_FAIL", fail, 1);
	err = start("send", splice);
	unsetenv("SIDELANE_SELFTEST_FAIL");
	if (!TH_CHECK(!err, name, "restart: %s", strerror(-err)))
		return;
	fd = app_connect(false);
	if (!TH_CHECK(fd >= 0, name, "connect: %s", strerror(-fd)))
		return;
	lport = local_port(fd);
	fcntl(fd, F_SETFL, 0); /* the rest in blocking calls */
	send(fd, &h, sizeof(h), MSG_NOSIGNAL);
	send(fd, data, 64 * KiB, MSG_NOSIGNAL);
	shutdown(fd, SHUT_WR);
	sl_io_full(fd, reply, sizeof(reply), true, -1);
	close(fd);
	snprintf(want, sizeof(want), "\"splice\":\"%s\"", result);
	TH_RESULT(reply[0] == 64 * KiB && !relay_line(lport, line, sizeof(line)) &&
			  strstr(line, want) &&
			  field(line, "bytes_up_spliced") == 0,
		  name, "got %llu, line %s", (unsigned long long)reply[0], line);
}

/* The app resets a spliced connection (close() with SO_LINGER {1, 0})
 * after its sends: the proxy passes the reset on only after every byte
 * before it, pushed ones included, has left for the upstream, as it does
 * for relayed bytes; the upstream reads them all, then ECONNRESET.
 */
static void check_reset(void)
{
	const char *name = "splice: the app resets after 1 MiB: the upstream gets every byte, then the reset";
	struct hello h = { .mode = 'K' };
	struct linger lg = { 1, 0 };
	size_t sent = 0;
	__u64 end;
	int fd;

	memset(&kres, 0, sizeof(kres));
	fd = app_connect(false);
	if (!TH_CHECK(fd >= 0, name, "connect: %s", strerror(-fd)))
		return;
	send(fd, &h, sizeof(h), MSG_NOSIGNAL);
	wait_spliced(fd);
	while (sent < MiB) {
		struct pollfd p = { fd, POLLOUT, 0 };
		ssize_t n;

		if (poll(&p, 1, 2000) != 1)
			break;
		n = send(fd, data + sent, MiB - sent, MSG_NOSIGNAL);
		if (n > 0)
			sent += n;
		else if (n < 0 && errno != EAGAIN)
			break;
	}
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
	end = th_now_ms() + 5000;
	while (!__atomic_load_n(&kres.done, __ATOMIC_ACQUIRE) && th_now_ms() < end)
		usleep(20 * 1000);
	TH_RESULT(sent == MiB && kres.done && kres.got == MiB &&
			  kres.err == ECONNRESET,
		  name, "sent %zu, upstream ended after %llu B with %s", sent,
		  (unsigned long long)kres.got,
		  !kres.done ? "nothing yet" : kres.err ? strerror(kres.err) : "EOF");
}

/* kill -9 mid-upload: both spliced sockets linger {1, 0}, so the upstream
 * gets a reset, never an EOF that would pass a cut upload as whole.
 */
static void check_kill9(void)
{
	const char *name = "splice: kill -9 of sidelane mid-upload: the upstream sees a reset, not EOF";
	struct hello h = { .mode = 'K' };
	__u64 end;
	int fd, i;

	memset(&kres, 0, sizeof(kres));
	fd = app_connect(false);
	if (!TH_CHECK(fd >= 0, name, "connect: %s", strerror(-fd)))
		return;
	send(fd, &h, sizeof(h), MSG_NOSIGNAL);
	for (i = 0; i < 50; i++) { /* some bytes through, spliced by now */
		struct pollfd p = { fd, POLLOUT, 0 };

		poll(&p, 1, 100);
		send(fd, data, 4 * KiB, MSG_NOSIGNAL);
		usleep(10 * 1000);
	}
	if (!TH_CHECK(env.sidelane > 0, name, "sidelane is not running")) {
		close(fd);
		return;
	}
	kill(env.sidelane, SIGKILL);
	th_wait(env.sidelane, 5000);
	env.sidelane = 0;
	end = th_now_ms() + 3000;
	while (!__atomic_load_n(&kres.done, __ATOMIC_ACQUIRE) && th_now_ms() < end)
		usleep(20 * 1000);
	close(fd);
	TH_RESULT(kres.done && kres.err == ECONNRESET, name,
		  "upstream ended after %llu B with %s",
		  (unsigned long long)kres.got,
		  !kres.done ? "nothing yet" : kres.err ? strerror(kres.err) : "EOF");
}

/* kill -9 mid-download: the sidecar's socket towards the app lingers
 * {1, 0} too, so the app reads a reset after what it got, never an EOF
 * that would pass a cut download as whole. sidelane is started again
 * first if check_kill9() ended it.
 */
static void check_kill9_download(void)
{
	const char *name = "splice: kill -9 of sidelane mid-download: the app sees a reset, not EOF";
	struct hello h = { .mode = 'G', .len = 1UL << 30 };
	size_t got = 0;
	int fd, err, end_err;

	err = env.sidelane > 0 ? 0 : start("send", true);
	if (!TH_CHECK(!err, name, "restart: %s", strerror(-err)))
		return;
	fd = app_connect(false);
	if (!TH_CHECK(fd >= 0, name, "connect: %s", strerror(-fd)))
		return;
	send(fd, &h, sizeof(h), MSG_NOSIGNAL);
	if (!TH_CHECK(!wait_spliced(fd), name, "not spliced")) {
		close(fd);
		return;
	}
	send(fd, "g", 1, MSG_NOSIGNAL);
	/* paced, so the download is still on when sidelane dies */
	end_err = download_read(fd, NULL, 64 * KiB, 100, 4 * MiB, &got);
	close(fd);
	TH_RESULT(!env.sidelane && end_err == ECONNRESET && got < h.len, name,
		  "got %zu B, then %s", got,
		  end_err ? strerror(end_err) : "EOF");
}

int main(void)
{
	static const size_t sizes[] = { 1, 1000, 64 * KiB, MiB, 16 * MiB, 64 * MiB };
	const char *setup = "splice: setup: cgroups, upstream servers (one behind a lossy veth), "
			    "sidelane run (app_sockets send)";
	int lossy_link[2] = { -1, -1 };
	pthread_t srv, srv6;
	char name[128];
	size_t i;
	int err;

	setvbuf(stdout, NULL, _IOLBF, 0);
	th_watchdog(180, "splice");
	snprintf(cfg_path, sizeof(cfg_path), "/tmp/sidelane-test-splice-%d.yaml", (int)getpid());
	snprintf(alog_path, sizeof(alog_path), "/tmp/sidelane-test-splice-%d.log", (int)getpid());
	data = malloc(DATA_LEN);
	err = data ? th_cleanup_push(remove_files, NULL) : -ENOMEM;
	err = err ?: th_env_setup_opts(&env, "splice",
				       &(struct th_env_opts){ .sidecar = true });
	/* the upstream listens from our own cgroup, outside sidelane's */
	if (!err) {
		/* a backlog for check_limits()'s burst through the proxy */
		srv_fd = th_listen("127.0.0.1", 1024, &srv_port);
		srv6_fd = th_listen("::1", 64, &srv6_port);
		err = srv_fd < 0   ? srv_fd :
		      srv6_fd < 0 ? srv6_fd :
				    -pthread_create(&srv, NULL, srv_main,
						    (void *)(long)srv_fd);
		err = err ?: -pthread_create(&srv6, NULL, srv_main,
					     (void *)(long)srv6_fd);
	}
	if (!TH_CHECK(!err, setup, "%s", strerror(-err)))
		goto out;
	th_fill(data, DATA_LEN, 77);
	th_env_log_path(&env);
	snprintf(log_path, sizeof(log_path), "%s", env.log);
	amb_port = th_free_port();
	amb6_port = th_free_port();
	lossy_amb_port = th_free_port();
	err = amb_port < 0 ? amb_port : amb6_port < 0 ? amb6_port :
					lossy_amb_port < 0 ? lossy_amb_port :
							     lossy_setup(lossy_link);
	err = err ?: start("send", true);
	err = err ?: th_enter(&env);
	if (!TH_CHECK(!err, setup, "%s (log %s)", strerror(-err), log_path))
		goto out;
	th_pass(setup);

	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		snprintf(name, sizeof(name), "splice: upload of %zu B in random chunks: "
			 "byte-exact, kernel-pushed, fallbacks counted", sizes[i]);
		check_upload(name, sizes[i], 'S', false, false);
	}
	check_upload("splice: edge-triggered writer against a slow upstream: no stall, "
		     "byte-exact, 'upstream full' fallbacks counted",
		     16 * MiB, 'W', true, true);
	for (i = 0; i < 5; i++) {
		snprintf(name, sizeof(name), "splice: download of %zu B: byte-exact, "
			 "redirected or counted fallbacks, EOF after the last byte",
			 sizes[i]);
		check_download(name, sizes[i], false, false);
	}
	check_download("splice: download of 16 MiB to a slow reader: byte-exact, "
		       "the bound hands the rest to the proxy", 16 * MiB, false, true);
	check_download("splice: the upstream resets after 4 MiB: the app reads every "
		       "byte, then ECONNRESET", 4 * MiB, true, false);
	check_lossy_download();
	for (i = 2; i < 5; i++) {
		snprintf(name, sizeof(name), "splice: full duplex echo of %zu B: byte-exact "
			 "both ways, both halves spliced", sizes[i]);
		check_duplex(name, sizes[i]);
	}
	for (i = 0; i < 4; i++) {
		/* one name a round: a check is reported once */
		snprintf(name, sizeof(name), "splice: full duplex echo of 256 MiB "
			 "in 64 KiB sends: every byte once, in order (round %zu of 4)",
			 i + 1);
		check_duplex_fixed(name, 256 * MiB);
	}
	/* make soak: the long cases */
	if (getenv("SIDELANE_TEST_LONG")) {
		check_upload("splice: upload of 1 GiB in random chunks: byte-exact, "
			     "every message pushed or a counted fallback",
			     1UL << 30, 'S', false, false);
		check_duplex_long("splice: full duplex echo of 1 GiB: byte-exact both "
				  "ways (SHA-256)", 1UL << 30);
		check_download("splice: download of 1 GiB: byte-exact (SHA-256), "
			       "EOF after the last byte", 1UL << 30, false, false);
	}
	/* the same over IPv6: keys of 16-byte addresses end to end */
	use_v6 = true;
	check_upload("splice/ipv6: upload of 16 MiB in random chunks: byte-exact, "
		     "every message pushed or a counted fallback",
		     16 * MiB, 'S', false, false);
	check_duplex("splice/ipv6: full duplex echo of 1 MiB: byte-exact both ways",
		     MiB);
	use_v6 = false;
	check_slow_reader();
	check_backpressure();
	check_errors();
	check_status();
	check_limits();
	check_conns();
	check_not_admitted();
	check_reset();
	check_kill9();
	check_kill9_download();
	check_not_spliced("splice: after a failed self-test nothing is spliced: relayed, "
			  "the line says redirect-off", "redirect", true, "redirect-off");
	check_not_spliced("splice: proxy.splice false: relayed, the line says disabled",
			  NULL, false, "disabled");
	check_no_slot();
out:
	err = th_env_teardown(&env);
	for (i = 0; i < 2; i++)
		if (lossy_link[i] >= 0)
			close(lossy_link[i]);
	if (lossy_srv_fd >= 0)
		shutdown(lossy_srv_fd, SHUT_RDWR);
	th_cleanup_pop(lossy_remove, NULL, true);
	if (srv_fd >= 0)
		shutdown(srv_fd, SHUT_RDWR);
	if (srv6_fd >= 0)
		shutdown(srv6_fd, SHUT_RDWR);
	th_cleanup_pop(remove_files, NULL, true);
	TH_RESULT(!err, "splice: teardown: sidelane stopped, cgroups and pins removed",
		  "%s", strerror(-err));
	free(data);
	return th_summary();
}
