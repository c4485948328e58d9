// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Integration test (tests/integ): two hosts in a mesh, end to end, with the
 * real `build/sidelane -v run` on each. Host A and host B are network
 * namespaces made here, joined by a veth (198.18.80.1/30 - .2/30). Each has
 * an app cgroup, a sidecar cgroup and a pin root. Unmodified clients (curl,
 * Python) in A's app cgroup dial 198.18.80.2:8080; A captures them and
 * speaks mutual TLS to B, whose sk_lookup steers the connection to its
 * inbound listener; B checks A's SPIFFE ID and relays to app B on loopback.
 * Checked: byte-exact relays (HTTP files, echo 1 B .. 16 MiB, SHA-256 each
 * way), the identities each side logs, both local hops as the default
 * admission keeps them (app sockets counted by reason, none redirected into),
 * every kind of bad peer refused by B with its counted reason and nothing
 * reaching the app, certificate rotation under traffic, a refused server
 * identity, and that teardown leaves nothing behind. The PKI is made with the
 * openssl CLI (th_pki_*). Everything is removed on every exit path.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <openssl/evp.h>
#include "lib/util.h"
#include "sidelane.h"
#include "loader/admission_user.h"
#include "harness.h"

#define A_IP "198.18.80.1"
#define B_IP "198.18.80.2"
#define APP_PORT 8080
#define TD "mesh.test"
#define ID_A "spiffe://" TD "/ns/a/sa/client"
#define ID_A2 "spiffe://" TD "/ns/a/sa/client-v2"
#define ID_B "spiffe://" TD "/ns/b/sa/server"
#define ID_C "spiffe://" TD "/ns/c/sa/x"
#define HS_MS 1000 /* tls.handshake_timeout_ms of both hosts */
#define CROWD 300 /* hostile peers at once on B's inbound listener */
#define FLOOD 10000 /* silent peers opened in a row on it */
#define B_MAX_CONNS 1024 /* B's proxy.max_conns: the flood overflows it */
#define READY_MS 10000 /* `sidelane run` until it logs "running" */
#define STAT_MS 3500 /* counters are published about once a second */
#define LOG_MS 3000 /* a line the proxy logs at a connection's end */
#define IO_MS 15000 /* bound of every client */
#define KiB 1024UL
#define MiB (1024 * KiB)
#define BLOB_SIZE MiB /* the file curl and Python fetch */
#define HELLO "hello from app B\n"
#define MAX_APP_CONNS 256
#define LL_CHUNK (16 * KiB) /* the long-lived connection's round trips */
#define LL_MAX 2000

/* One host: a network namespace, app and sidecar cgroups; app.pin_root,
 * app.sidelane and app.log are its sidelane's.
 */
struct host {
	const char *tag; /* "A", "B" */
	char ns[32], veth[16];
	int ns_fd;
	struct th_env app, side;
	char cfg[PATH_MAX];
};

static struct host ha = { .tag = "A", .ns_fd = -1 };
static struct host hb = { .tag = "B", .ns_fd = -1 };
static char dir[64]; /* temp dir: PKI, configs, app B's files */
static pid_t app_pid, ll_pid; /* app B's server, the long-lived client */
static int conns_to_b; /* connections made to B:8080 so far */

/* What app B saw, shared with the test (MAP_SHARED before the forks). */
struct app_conn {
	__u64 rx; /* bytes received (echo) */
	unsigned char sha[32]; /* SHA-256 of them */
	__u32 done, http;
};
struct shared {
	__u32 app_up; /* app B listens */
	__u32 accepted; /* connections app B accepted */
	struct app_conn c[MAX_APP_CONNS]; /* by accept order */
	__u64 ll_bytes; /* the long-lived client: bytes round-tripped */
	__u32 ll_stop; /* set by the test: finish now */
	unsigned char ll_sha[32]; /* SHA-256 of all it sent */
	int ll_end; /* its last recv(): 0 (EOF), bytes, or -errno */
	unsigned char cli_sha[32]; /* the echo client: SHA-256 received */
	int cli_err; /* its errno when it failed */
	__u64 cli_rx; /* bytes it received */
};
static struct shared *shm;

static __u32 accepted(void)
{
	return __atomic_load_n(&shm->accepted, __ATOMIC_ACQUIRE);
}

static void sleep_ms(int ms)
{
	usleep(ms * 1000);
}

static void hex(const unsigned char sha[32], char out[65])
{
	int i;

	for (i = 0; i < 32; i++)
		sprintf(out + 2 * i, "%02x", sha[i]);
}

/* ---- hosts: namespaces, processes inside them ---- */

static int ns_setup(void)
{
	int pid = getpid(), err;
	char p[64];

	snprintf(ha.ns, sizeof(ha.ns), "sl-mesh-A-%d", pid);
	snprintf(hb.ns, sizeof(hb.ns), "sl-mesh-B-%d", pid);
	snprintf(ha.veth, sizeof(ha.veth), "slma%d", pid);
	snprintf(hb.veth, sizeof(hb.veth), "slmb%d", pid);
	/* both ends made inside the namespaces: the pair goes with them */
	err = th_system("ip netns add %1$s && ip netns add %2$s && "
		      "ip link add %3$s netns %1$s type veth peer name %4$s netns %2$s && "
		      "ip -n %1$s link set lo up && ip -n %1$s link set %3$s up && "
		      "ip -n %1$s addr add " A_IP "/30 dev %3$s && "
		      "ip -n %2$s link set lo up && ip -n %2$s link set %4$s up && "
		      "ip -n %2$s addr add " B_IP "/30 dev %4$s",
		      ha.ns, hb.ns, ha.veth, hb.veth);
	if (err)
		return err;
	snprintf(p, sizeof(p), "/var/run/netns/%s", ha.ns);
	ha.ns_fd = open(p, O_RDONLY | O_CLOEXEC);
	snprintf(p, sizeof(p), "/var/run/netns/%s", hb.ns);
	hb.ns_fd = open(p, O_RDONLY | O_CLOEXEC);
	return ha.ns_fd < 0 || hb.ns_fd < 0 ? -errno : 0;
}

static int prep_a(void)
{
	return setns(ha.ns_fd, CLONE_NEWNET);
}

/* A child in h's namespace (not its mount namespace: `ip netns exec`
 * would remount /sys and hide the cgroup2 mount and the bpffs), and in h's
 * app cgroup when app. Returns its pid; the child runs fn and exits.
 */
static pid_t spawn_in(struct host *h, bool app, int (*fn)(void *), void *arg)
{
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid)
		return pid < 0 ? -errno : pid;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (setns(h->ns_fd, CLONE_NEWNET) || (app && th_enter(&h->app)))
		_exit(125);
	_exit(fn(arg));
}

static int run_in(struct host *h, bool app, int (*fn)(void *), void *arg)
{
	pid_t pid = spawn_in(h, app, fn, arg);

	return pid < 0 ? pid : th_wait(pid, IO_MS);
}

/* ---- sidelane logs ---- */

static long log_size(const struct host *h)
{
	struct stat st;

	return stat(h->app.log, &st) ? 0 : st.st_size;
}

/* Lines of h's log from byte from on holding a (and b, if given). */
static int log_count(const struct host *h, long from, const char *a,
		     const char *b)
{
	FILE *f = fopen(h->app.log, "re");
	char line[2048];
	int n = 0;

	if (!f)
		return -1;
	fseek(f, from, SEEK_SET);
	while (fgets(line, sizeof(line), f))
		n += strstr(line, a) && (!b || strstr(line, b));
	fclose(f);
	return n;
}

static bool log_wait(const struct host *h, long from, const char *a,
		     const char *b, int ms)
{
	__u64 end = th_now_ms() + ms;

	while (log_count(h, from, a, b) <= 0) {
		if (th_now_ms() >= end)
			return false;
		sleep_ms(20);
	}
	return true;
}

static void log_dump(const struct host *h, long from)
{
	FILE *f = fopen(h->app.log, "re");
	char line[2048];

	if (!f)
		return;
	fseek(f, from, SEEK_SET);
	while (fgets(line, sizeof(line), f))
		printf("#   %s: %s", h->tag, line);
	fclose(f);
}

/* ---- sidelane ---- */

/* B's config: inbound.ports and the one identity allowed in. */
static void b_config(char *b, size_t len, const char *allow, const char *ports)
{
	snprintf(b, len,
		 "tls:\n  cert: \"%s\"\n  key: \"%s\"\n  ca: \"%s\"\n"
		 "  handshake_timeout_ms: %d\n"
		 "proxy:\n  max_conns: %d\n"
		 "capture:\n  enabled: false\n"
		 "inbound:\n  enabled: true\n  mode: sk_lookup\n"
		 "  ports: [%s]\n  default: deny\n  identities:\n"
		 "    - id: \"%s\"\n      action: allow\n"
		 "accounting:\n  access_log: \"%s\"\n",
		 th_pki_path(dir, "b", "pem"), th_pki_path(dir, "b", "key"),
		 th_pki_path(dir, "ca", "pem"), HS_MS, B_MAX_CONNS, ports, allow,
		 th_pki_path(dir, "b-access", "log"));
}

static int write_configs(void)
{
	char a[2048], b[2048], bad[2048];
	const char *mesh_fmt =
		"tls:\n  cert: \"%s\"\n  key: \"%s\"\n  ca: \"%s\"\n"
		"  handshake_timeout_ms: %d\n  reload_interval_ms: 200\n"
		"  mesh:\n    - cidr: " B_IP "/32\n      identities: [\"%s\"]\n"
		"capture:\n  enabled: true\n  outbound: \"127.0.0.1:15001\"\n"
		"accounting:\n  access_log: \"%s\"\n";
	int err;

	snprintf(a, sizeof(a), mesh_fmt, th_pki_path(dir, "a-live", "pem"),
		 th_pki_path(dir, "a-live", "key"), th_pki_path(dir, "ca", "pem"),
		 HS_MS, "spiffe://" TD "/ns/b/*", th_pki_path(dir, "a-access", "log"));
	/* the wrong server identity: B's is not under ns/z */
	snprintf(bad, sizeof(bad), mesh_fmt, th_pki_path(dir, "a2", "pem"),
		 th_pki_path(dir, "a2", "key"), th_pki_path(dir, "ca", "pem"),
		 HS_MS, "spiffe://" TD "/ns/z/*", th_pki_path(dir, "a-access", "log"));
	b_config(b, sizeof(b), "spiffe://" TD "/ns/a/*", "\"" SL_XSTR(APP_PORT) "\"");
	snprintf(ha.cfg, sizeof(ha.cfg), "%s", th_pki_path(dir, "a", "yaml"));
	snprintf(hb.cfg, sizeof(hb.cfg), "%s", th_pki_path(dir, "b", "yaml"));
	err = th_write_text(ha.cfg, a);
	err = err ?: th_write_text(hb.cfg, b);
	err = err ?: th_write_text(th_pki_path(dir, "a-bad-id", "yaml"), bad);
	return err;
}

/* `sidelane -v run` inside h's namespace with cfg; ready when it logs
 * "running" (B: and that sk_lookup steers). 0 or -errno.
 */
static int start_sidelane(struct host *h, const char *cfg)
{
	long from = log_size(h);
	__u64 end = th_now_ms() + READY_MS;
	int status, fd;
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (!pid) {
		/* if the test dies by SIGKILL, sidelane still gets its SIGTERM */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		fd = open(h->app.log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
			  0644);
		if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0 ||
		    setns(h->ns_fd, CLONE_NEWNET))
			_exit(126);
		execl(th_sidelane_bin(), th_sidelane_bin(), "-v", "run",
		      "--config", cfg, "--cgroup", h->app.cgroup,
		      "--sidecar-cgroup", h->side.cgroup, "--pin-root",
		      h->app.pin_root, (char *)NULL);
		_exit(127);
	}
	h->app.sidelane = pid;
	h->app.pins_made = true;
	h->app.detached = false;
	while (log_count(h, from, "sidelane: running", NULL) <= 0 ||
	       (h == &hb &&
		log_count(h, from, "inbound: sk_lookup steers", NULL) <= 0)) {
		if (waitpid(pid, &status, WNOHANG) == pid) {
			h->app.sidelane = 0;
			th_info("sidelane %s exited early (status 0x%x):", h->tag,
				status);
			log_dump(h, from);
			return -ECHILD;
		}
		if (th_now_ms() >= end) {
			th_info("sidelane %s not running after %d ms:", h->tag,
				READY_MS);
			log_dump(h, from);
			return -ETIMEDOUT;
		}
		sleep_ms(20);
	}
	return 0;
}

/* SIGTERM, reaped: its exit status (0 expected). The pins stay. */
static int stop_sidelane(struct host *h)
{
	int st;

	if (h->app.sidelane <= 0)
		return 0;
	kill(h->app.sidelane, SIGTERM);
	st = th_wait(h->app.sidelane, 5000);
	h->app.sidelane = 0;
	return st;
}

/* ---- `sidelane status --json` ---- */

/* Start of the value of key at depth 1 of the object at obj ('{'), or
 * NULL. Enough JSON for sidelane's own output: strings are skipped with
 * their escapes, nesting counted.
 */
static const char *json_key(const char *obj, const char *key)
{
	size_t klen = strlen(key);
	const char *s = NULL;
	bool in_str = false;
	int depth = 0;

	for (; *obj; obj++) {
		if (in_str) {
			if (*obj == '\\' && obj[1])
				obj++;
			else if (*obj == '"') {
				in_str = false;
				if (depth == 1 && (size_t)(obj - s) == klen &&
				    !strncmp(s, key, klen) && obj[1] == ':')
					return obj + 2;
			}
			continue;
		}
		if (*obj == '"') {
			in_str = true;
			s = obj + 1;
		} else if (*obj == '{' || *obj == '[') {
			depth++;
		} else if ((*obj == '}' || *obj == ']') && --depth == 0) {
			return NULL;
		}
	}
	return NULL;
}

/* The number at a dotted path ("tls.failed.expired"). 0 or -ENOENT. */
static int json_u64(const char *json, const char *path, __u64 *out)
{
	char seg[64];
	const char *p = json;
	size_t n;

	while (p && *p == '{') {
		n = strcspn(path, ".");
		if (n >= sizeof(seg))
			return -ENOENT;
		memcpy(seg, path, n);
		seg[n] = '\0';
		p = json_key(p, seg);
		if (!p)
			return -ENOENT;
		if (!path[n]) {
			char *end;

			*out = strtoull(p, &end, 10);
			return end == p ? -ENOENT : 0;
		}
		path += n + 1;
	}
	return -ENOENT;
}

static int status_json(const struct host *h, char *out, size_t len)
{
	char *argv[] = { (char *)th_sidelane_bin(), "status", "--json",
			 "--pin-root", (char *)h->app.pin_root, NULL };

	return th_run(NULL, NULL, argv, out, len, 5000);
}

/* Counters the refusal and rotation checks look at. */
static const char *const watched[] = {
	"tls.handshakes_ok",
	"tls.failed.bad-cert",
	"tls.failed.unknown-ca",
	"tls.failed.expired",
	"tls.failed.no-cert",
	"tls.failed.no-identity",
	"tls.failed.wrong-trust-domain",
	"tls.failed.timeout",
	"tls.failed.protocol",
	"tls.failed.io",
	"tls.reloads",
	"tls.reloads_rejected",
	"proxy.closed.done",
	"proxy.closed.reset",
	"proxy.closed.tls-failed",
	"proxy.closed.tls-timeout",
	"proxy.closed.identity-denied",
	"proxy.closed.tls-evicted",
	"proxy.closed.too-many",
	"proxy.pid",
	"proxy.updated_ms",
	"inbound.steered",
	"proxy.active",
	"tls.active",
};
#define N_WATCHED (sizeof(watched) / sizeof(watched[0]))

struct snap {
	__u64 v[N_WATCHED];
};

static int snap_read(const struct host *h, struct snap *s)
{
	static char out[64 * 1024];
	size_t i;
	int st;

	memset(s, 0, sizeof(*s));
	st = status_json(h, out, sizeof(out));
	if (st)
		return st < 0 ? st : -EIO;
	for (i = 0; i < N_WATCHED; i++)
		if (json_u64(out, watched[i], &s->v[i]))
			return -ENOENT;
	return 0;
}

static __u64 snap_get(const struct snap *s, const char *path)
{
	size_t i;

	for (i = 0; i < N_WATCHED; i++)
		if (!strcmp(watched[i], path))
			return s->v[i];
	return 0;
}

/* A snapshot published after this call: what happened before is in it. */
static int snap_fresh(const struct host *h, struct snap *s)
{
	struct timespec ts;
	__u64 t, end = th_now_ms() + STAT_MS;
	int err;

	clock_gettime(CLOCK_REALTIME, &ts); /* the clock of updated_ms */
	t = (__u64)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	while (!(err = snap_read(h, s)) && snap_get(s, "proxy.updated_ms") <= t &&
	       th_now_ms() < end)
		sleep_ms(50);
	return err ?: snap_get(s, "proxy.updated_ms") > t ? 0 : -ETIMEDOUT;
}

struct want {
	const char *path;
	int delta;
};

/* Poll h's counters until each path of w has moved by its delta (or
 * STAT_MS passed), then check that each moved by exactly that; with only,
 * every other watched counter must not have moved at all. Fails name;
 * *now gets the last snapshot.
 */
static bool counters_moved(const char *name, const struct host *h,
			   const struct snap *s0, const struct want *w, int nw,
			   bool only, struct snap *now)
{
	__u64 end = th_now_ms() + STAT_MS;
	char why[512] = "";
	size_t off = 0, i;
	bool reached;
	int k, err;

	for (;;) {
		err = snap_read(h, now);
		if (!TH_CHECK(!err, name, "sidelane status --json --pin-root %s: %s",
			      h->app.pin_root, strerror(-err)))
			return false;
		reached = true;
		for (k = 0; k < nw; k++)
			reached = reached && snap_get(now, w[k].path) >=
						     snap_get(s0, w[k].path) + w[k].delta;
		if (reached || th_now_ms() >= end)
			break;
		sleep_ms(100);
	}
	for (i = 0; i < N_WATCHED; i++) {
		__u64 d = now->v[i] - s0->v[i];
		bool listed = false, bad = false;

		if (!strcmp(watched[i], "inbound.steered") ||
		    !strcmp(watched[i], "proxy.pid") ||
		    !strcmp(watched[i], "proxy.updated_ms"))
			continue;
		for (k = 0; k < nw; k++) {
			if (!strcmp(w[k].path, watched[i])) {
				listed = true;
				bad = d != (__u64)w[k].delta;
			}
		}
		if (!listed)
			bad = only && d;
		if (bad && off < sizeof(why))
			off += snprintf(why + off, sizeof(why) - off, " %s %+lld",
					watched[i], (long long)d);
	}
	return TH_CHECK(!why[0], name, "%s's counters moved:%s%s", h->tag, why,
			reached ? "" : " (still so after STAT_MS)");
}

/* ---- app B: HTTP GET of a file, or echo; counts what it accepts ---- */

/* All len bytes sent, or received when rx; each wait bounded by IO_MS. A
 * blocking recv() on a socket in the sockhash can fail EAGAIN at once when
 * woken with nothing queued (README, "Socket semantics"): sl_io_full()
 * waits again.
 */
static int io_all(int fd, void *buf, size_t len, bool rx)
{
	return sl_io_full(fd, buf, len, rx, IO_MS);
}

static int send_all(int fd, const void *buf, size_t len)
{
	return io_all(fd, (void *)buf, len, false);
}

/* "GET /name HTTP/1.x": dir/www/name (no '/' in name), or 404. */
static void http_reply(int fd, char *req, size_t got, size_t cap)
{
	char path[PATH_MAX], head[128], *name, *sp;
	static char body[64 * KiB];
	struct stat st;
	ssize_t n;
	int f = -1;

	/* the whole request is read: no RST for unread bytes at close */
	req[got] = '\0';
	while (!strstr(req, "\r\n\r\n") && got < cap - 1 &&
	       (n = recv(fd, req + got, cap - 1 - got, 0)) > 0) {
		got += n;
		req[got] = '\0';
	}
	name = req + 5;
	sp = strchr(name, ' ');
	if (req[4] == '/' && sp) {
		*sp = '\0';
		if (!strchr(name, '/') && strcmp(name, "..") &&
		    snprintf(path, sizeof(path), "%s/www/%s", dir, name) <
			    (int)sizeof(path))
			f = open(path, O_RDONLY | O_CLOEXEC);
	}
	if (f < 0 || fstat(f, &st)) {
		const char *nf = "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n";

		send_all(fd, nf, strlen(nf));
	} else {
		snprintf(head, sizeof(head),
			 "HTTP/1.0 200 OK\r\nContent-Length: %lld\r\n"
			 "Connection: close\r\n\r\n",
			 (long long)st.st_size);
		if (!send_all(fd, head, strlen(head)))
			while ((n = read(f, body, sizeof(body))) > 0 &&
			       !send_all(fd, body, n))
				;
	}
	if (f >= 0)
		close(f);
	shutdown(fd, SHUT_WR);
}

/* One connection of app B: the first 4 bytes tell an HTTP GET from an echo
 * of every byte to EOF, whose count and SHA-256 go to shm->c[i].
 */
static void app_serve(int fd, unsigned int i)
{
	static char buf[64 * KiB];
	struct app_conn *r = &shm->c[i % MAX_APP_CONNS];
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	ssize_t n = 0;
	size_t got = 0;

	while (got < 4 && (n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0)) > 0)
		got += n;
	if (got >= 4 && !memcmp(buf, "GET ", 4)) {
		r->http = 1;
		http_reply(fd, buf, got, sizeof(buf));
	} else {
		EVP_DigestInit_ex(md, EVP_sha256(), NULL);
		for (n = got; n > 0 || (n < 0 && errno == EAGAIN);
		     n = recv(fd, buf, sizeof(buf), 0)) {
			/* a known sockmap difference (README, "Socket
			 * semantics"): a blocking recv() woken by TCP bytes
			 * while nothing redirected is queued (the sidecar's
			 * messages took TCP past the backlog bound) fails
			 * EAGAIN once; the next call reads them
			 */
			if (n < 0)
				continue;
			EVP_DigestUpdate(md, buf, n);
			r->rx += n;
			if (send_all(fd, buf, n))
				break;
		}
		EVP_DigestFinal_ex(md, r->sha, NULL);
		shutdown(fd, SHUT_WR);
	}
	__atomic_store_n(&r->done, 1, __ATOMIC_RELEASE);
	close(fd);
}

/* In B's namespace and app cgroup: 0.0.0.0:8080, a child per connection. */
static int app_main(void *unused)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons(APP_PORT) };
	int l, fd, one = 1;
	unsigned int i;

	(void)unused;
	l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0 || setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 128))
		return 3;
	signal(SIGCHLD, SIG_IGN); /* connection children reap themselves */
	__atomic_store_n(&shm->app_up, 1, __ATOMIC_RELEASE);
	for (;;) {
		fd = accept4(l, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		i = __atomic_fetch_add(&shm->accepted, 1, __ATOMIC_ACQ_REL);
		/* the slot is reused every MAX_APP_CONNS connections */
		memset(&shm->c[i % MAX_APP_CONNS], 0, sizeof(shm->c[0]));
		if (!fork()) {
			close(l);
			app_serve(fd, i);
			_exit(0);
		}
		close(fd);
	}
}

/* ---- clients in A's app cgroup: captured, dialing B:8080 directly ---- */

static int dial_b(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons(APP_PORT) };
	struct timeval tv = { .tv_sec = IO_MS / 1000 };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	inet_pton(AF_INET, B_IP, &a.sin_addr);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		close(fd);
		return -1;
	}
	return fd;
}

struct echo_arg {
	size_t len;
	__u64 seed;
};

/* Send len bytes while reading the echo (one process, behind poll),
 * half-close after the last, read to EOF. 0 when what came back is what
 * went out; its SHA-256 in shm->cli_sha.
 */
static int echo_client(void *arg)
{
	const struct echo_arg *e = arg;
	unsigned char *out = malloc(e->len), *in = malloc(e->len + 1);
	size_t sent = 0, got = 0;
	int fd;

	if (!out || !in)
		return 2;
	th_fill(out, e->len, e->seed);
	if (e->len >= 4 && !memcmp(out, "GET ", 4))
		return 7; /* would be taken for HTTP: pick another seed */
	fd = dial_b();
	if (fd < 0)
		return 3;
	fcntl(fd, F_SETFL, O_NONBLOCK);
	for (;;) {
		struct pollfd p = { .fd = fd,
				    .events = POLLIN | (sent < e->len ? POLLOUT : 0) };
		ssize_t n;

		if (poll(&p, 1, IO_MS) != 1)
			return 4;
		if ((p.revents & POLLOUT) && sent < e->len) {
			n = send(fd, out + sent, e->len - sent, MSG_NOSIGNAL);
			if (n > 0 && (sent += n) == e->len)
				shutdown(fd, SHUT_WR);
		}
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			n = recv(fd, in + got, e->len + 1 - got, 0);
			if (!n)
				break;
			if (n > 0) {
				got += n;
			} else if (errno != EAGAIN) {
				shm->cli_err = errno;
				shm->cli_rx = got;
				return 5;
			}
		}
	}
	close(fd);
	shm->cli_rx = got;
	th_sha256(in, got, shm->cli_sha);
	return got == e->len && !memcmp(in, out, got) ? 0 : 6;
}

/* Round trips of LL_CHUNK bytes every 20 ms until shm->ll_stop; then a
 * half-close and EOF. 0 when every chunk came back intact.
 */
static int ll_client(void *unused)
{
	static unsigned char chunk[LL_CHUNK], back[LL_CHUNK];
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	ssize_t n;
	int fd, i;

	(void)unused;
	fd = dial_b();
	if (fd < 0 || !md)
		return 2;
	EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	for (i = 0; i < LL_MAX && !__atomic_load_n(&shm->ll_stop, __ATOMIC_ACQUIRE);
	     i++) {
		th_fill(chunk, sizeof(chunk), 7000 + i);
		if (!i && !memcmp(chunk, "GET ", 4))
			return 7;
		n = send_all(fd, chunk, sizeof(chunk)) ?:
		    io_all(fd, back, sizeof(back), true) ?:
		    memcmp(chunk, back, sizeof(chunk)) ? 1 : 0;
		if (n) {
			shm->ll_end = n == -EPIPE ? 0 : (int)n;
			return 3;
		}
		EVP_DigestUpdate(md, chunk, sizeof(chunk));
		__atomic_add_fetch(&shm->ll_bytes, sizeof(chunk), __ATOMIC_RELEASE);
		sleep_ms(20);
	}
	EVP_DigestFinal_ex(md, shm->ll_sha, NULL);
	shutdown(fd, SHUT_WR);
	/* what ends it: 0 a clean EOF, -errno, or 1 a byte nobody sent */
	n = sl_io_full(fd, back, 1, true, IO_MS);
	shm->ll_end = n == -EPIPE ? 0 : n ? n : 1;
	return n == -EPIPE ? 0 : 4;
}

/* An external client (curl, python3) in A's namespace; in A's app cgroup
 * (captured) when app, else in ours (not captured). Exit status.
 */
static int run_a(bool app, char *const argv[], char *out, size_t len)
{
	return th_run(app ? &ha.app : NULL, prep_a, argv, out, len, IO_MS);
}

static int read_file(const char *path, unsigned char **buf, size_t *len)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC), err = 0;

	*buf = NULL;
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) || !(*buf = malloc(st.st_size + 1)))
		err = -ENOMEM;
	else if (read(fd, *buf, st.st_size) != st.st_size)
		err = -EIO;
	else
		(*buf)[st.st_size] = '\0'; /* also a string */
	*len = st.st_size;
	close(fd);
	return err;
}

static int curl_get(const char *file, const char *to, char *out, size_t len)
{
	char url[128];
	char *argv[] = { "curl", "-sS", "-m", "10", "-o", (char *)to, "-w",
			 "%{http_code} %{size_download}", url, NULL };

	snprintf(url, sizeof(url), "http://" B_IP ":%d/%s", APP_PORT, file);
	conns_to_b++;
	return run_a(true, argv, out, len);
}

/* ---- setup ---- */

static bool make_pki(void)
{
	const char *name = "mesh: setup: PKI made with the openssl CLI";
	int err;

	err = th_pki_ca(dir, "ca");
	err = err ?: th_pki_ca(dir, "ca2");
	err = err ?: th_pki_leaf(dir, "a", "ca", 0x101, "URI:" ID_A);
	err = err ?: th_pki_leaf(dir, "a2", "ca", 0x102, "URI:" ID_A2);
	err = err ?: th_pki_leaf(dir, "b", "ca", 0x103, "URI:" ID_B);
	err = err ?: th_pki_leaf(dir, "rogue", "ca2", 0x201,
				 "URI:spiffe://" TD "/ns/a/sa/rogue");
	err = err ?: th_pki_expired(dir, "expired", "ca",
				    "URI:spiffe://" TD "/ns/a/sa/old");
	err = err ?: th_pki_leaf(dir, "othertd", "ca", 0x202,
				 "URI:spiffe://other.test/ns/a/sa/client");
	err = err ?: th_pki_leaf(dir, "nsc", "ca", 0x203, "URI:" ID_C);
	/* A's live files: what rotation renames over */
	err = err ?: th_pki_swap(dir, th_pki_path(dir, "a", "pem"),
				 th_pki_path(dir, "a-live", "pem"));
	err = err ?: th_pki_swap(dir, th_pki_path(dir, "a", "key"),
				 th_pki_path(dir, "a-live", "key"));
	if (!TH_CHECK(!err, name, "%s", strerror(-err))) {
		th_pki_log(dir);
		return false;
	}
	th_pass(name);
	return true;
}

static int make_www(void)
{
	char p[PATH_MAX];
	unsigned char *blob = malloc(BLOB_SIZE);
	FILE *f;
	int err;

	snprintf(p, sizeof(p), "%s/www", dir);
	if (!blob || mkdir(p, 0755))
		return -errno;
	snprintf(p, sizeof(p), "%s/www/hello.txt", dir);
	err = th_write_text(p, HELLO);
	snprintf(p, sizeof(p), "%s/www/blob.bin", dir);
	th_fill(blob, BLOB_SIZE, 42);
	f = fopen(p, "we");
	if (!f || fwrite(blob, 1, BLOB_SIZE, f) != BLOB_SIZE)
		err = err ?: -EIO;
	if (f && fclose(f))
		err = err ?: -errno;
	free(blob);
	return err;
}

static int host_setup(struct host *h)
{
	char name[32];
	int err;

	snprintf(name, sizeof(name), "mesh-%s-app", h->tag);
	err = th_env_setup(&h->app, name, false);
	snprintf(name, sizeof(name), "mesh-%s-side", h->tag);
	err = err ?: th_env_setup(&h->side, name, false);
	if (err)
		return err;
	snprintf(h->app.pin_root, sizeof(h->app.pin_root),
		 SL_BPFFS_DEFAULT "/sidelane-test-mesh-%s-%d", h->tag, getpid());
	if (!access(h->app.pin_root, F_OK))
		return -EEXIST;
	mkdir("build/tests/logs", 0755);
	snprintf(h->app.log, sizeof(h->app.log),
		 "build/tests/logs/sidelane-mesh-%s-%d.log", h->tag, getpid());
	unlink(h->app.log);
	return 0;
}

/* Everything this test started, on every exit path (the harness runs it
 * before it tears the envs down: cgroups, and pins with `sidelane detach`).
 * Logs are kept when anything failed.
 */
static void mesh_cleanup(void *unused)
{
	struct host *hs[] = { &ha, &hb };
	int i;

	(void)unused;
	if (ll_pid > 0)
		kill(ll_pid, SIGKILL), waitpid(ll_pid, NULL, 0);
	if (app_pid > 0)
		kill(app_pid, SIGKILL), waitpid(app_pid, NULL, 0);
	ll_pid = app_pid = 0;
	for (i = 0; i < 2; i++) {
		th_env_detach(&hs[i]->app);
		if (th_failed() && hs[i]->app.log[0]) {
			th_info("sidelane %s log kept: %s", hs[i]->tag,
				hs[i]->app.log);
			hs[i]->app.log[0] = '\0';
		}
		if (hs[i]->ns_fd >= 0)
			close(hs[i]->ns_fd);
		hs[i]->ns_fd = -1;
		if (hs[i]->ns[0])
			th_system("ip netns del %s 2>/dev/null", hs[i]->ns);
	}
}

static bool setup(void)
{
	const char *name = "mesh: setup: namespaces over a veth, app B, sidelane A and B running";
	int err;

	err = th_pki_dir(dir, sizeof(dir), "mesh");
	if (!TH_CHECK(!err, name, "temp dir: %s", strerror(-err)) || !make_pki())
		return false;
	shm = mmap(NULL, sizeof(*shm), PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (!TH_CHECK(shm != MAP_FAILED, name, "mmap: %s", strerror(errno)))
		return false;
	err = th_cleanup_push(mesh_cleanup, NULL);
	err = err ?: host_setup(&ha);
	err = err ?: host_setup(&hb);
	if (!TH_CHECK(!err, name, "cgroups, pin roots: %s", strerror(-err)))
		return false;
	err = ns_setup();
	err = err ?: make_www();
	err = err ?: write_configs();
	if (!TH_CHECK(!err, name, "namespaces, files: %s", strerror(-err)))
		return false;
	app_pid = spawn_in(&hb, true, app_main, NULL);
	err = start_sidelane(&hb, hb.cfg);
	err = err ?: start_sidelane(&ha, ha.cfg);
	if (!TH_CHECK(!err, name, "sidelane: %s", strerror(-err)) ||
	    !TH_CHECK(app_pid > 0 && __atomic_load_n(&shm->app_up, __ATOMIC_ACQUIRE),
		      name, "app B is not listening"))
		return false;
	th_pass(name);
	return true;
}

/* ---- a, b: HTTP through A -> mTLS -> B, the identities ---- */

static void test_http(const unsigned char blob_sha[32])
{
	const char *name = "mesh: curl GET of a 1 MiB file through A -> mTLS -> B, body SHA-256 equals the file's";
	const char *name2 = "mesh: Python client GET of the file through A -> mTLS -> B, body SHA-256 equals the file's";
	char to[PATH_MAX], out[512], want[160], hexs[65];
	char *py[] = { "python3", "-c",
		       "import hashlib, socket\n"
		       "s = socket.create_connection(('" B_IP "', 8080), 10)\n"
		       "s.sendall(b'GET /blob.bin HTTP/1.0\\r\\nHost: b\\r\\n\\r\\n')\n"
		       "d = b''\n"
		       "while (b := s.recv(65536)): d += b\n"
		       "h, _, body = d.partition(b'\\r\\n\\r\\n')\n"
		       "print(h.split(b'\\r\\n')[0].decode(), len(body), "
		       "hashlib.sha256(body).hexdigest())\n",
		       NULL };
	unsigned char *got = NULL, sha[32];
	__u32 acc0 = accepted();
	size_t len = 0;
	int st;

	snprintf(to, sizeof(to), "%s/curl.out", dir);
	st = curl_get("blob.bin", to, out, sizeof(out));
	if (TH_CHECK(st == 0 && !strcmp(out, "200 1048576"), name,
		     "curl exit %d: %s", st, out) &&
	    TH_CHECK(!read_file(to, &got, &len), name, "read %s", to)) {
		th_sha256(got, len, sha);
		hex(sha, hexs);
		TH_RESULT(len == BLOB_SIZE && !memcmp(sha, blob_sha, 32), name,
			  "%zu B, SHA-256 %s", len, hexs);
	}
	free(got);
	unlink(to);

	hex(blob_sha, hexs);
	snprintf(want, sizeof(want), "HTTP/1.0 200 OK %lu %s\n", BLOB_SIZE, hexs);
	conns_to_b++;
	st = run_a(true, py, out, sizeof(out));
	if (TH_CHECK(st == 0 && !strcmp(out, want), name2,
		     "exit %d: '%s', want '%s'", st, out, want) &&
	    TH_CHECK(accepted() == acc0 + 2, name2,
		     "app B accepted %u connections, want 2", accepted() - acc0))
		th_pass(name2);
}

/* A line of path holding both a and b, within a few seconds (the access
 * log's writer runs on its own time).
 */
static bool file_wait(const char *path, const char *a, const char *b)
{
	__u64 end = th_now_ms() + 3000;
	char line[4096];

	do {
		FILE *f = fopen(path, "re");

		while (f && fgets(line, sizeof(line), f))
			if (strstr(line, a) && strstr(line, b)) {
				fclose(f);
				return true;
			}
		if (f)
			fclose(f);
		usleep(100 * 1000);
	} while (th_now_ms() < end);
	return false;
}

static void test_identities(long la, long lb)
{
	const char *name = "mesh: identities: A's close line names B's SPIFFE ID (tls peer " ID_B ")";
	const char *name2 = "mesh: identities: B's close line names A's SPIFFE ID (tls peer " ID_A ")";
	const char *name3 = "mesh: access logs: A's relay line originated TLS to " ID_B
			    ", B's terminated it from " ID_A;

	/* -v: a connection's normal end is a debug line */
	TH_RESULT(log_wait(&ha, la, "proxy: done: ", ", tls peer " ID_B "\n",
			   LOG_MS),
		  name, "no such line in %s", ha.app.log);
	TH_RESULT(log_wait(&hb, lb, "proxy: done: ", ", tls peer " ID_A "\n",
			   LOG_MS),
		  name2, "no such line in %s", hb.app.log);
	if (TH_CHECK(file_wait(th_pki_path(dir, "a-access", "log"),
			       "\"listener\":\"outbound\",\"peer\":",
			       "\"tls\":\"originated\",\"tls_peer\":\"" ID_B "\""),
		     name3, "no such relay line in A's access log") &&
	    TH_CHECK(file_wait(th_pki_path(dir, "b-access", "log"),
			       "\"listener\":\"inbound\",\"peer\":",
			       "\"tls\":\"terminated\",\"tls_peer\":\"" ID_A "\""),
		     name3, "no such relay line in B's access log"))
		th_pass(name3);
}

/* ---- d: echo through the mesh, byte-exact both ways ---- */

static void test_echo(size_t len)
{
	struct echo_arg e = { .len = len, .seed = 100 + len };
	unsigned char *buf = malloc(len), sha[32];
	struct sl_counters a0, a1, b0, b1;
	__u32 i = accepted();
	char name[160];
	const struct app_conn *r = &shm->c[i % MAX_APP_CONNS];
	int st;

	snprintf(name, sizeof(name),
		 "mesh: echo of %zu B each way through A -> mTLS -> B, SHA-256 both directions",
		 len);
	if (!TH_CHECK(buf, name, "out of memory"))
		return;
	th_fill(buf, len, e.seed);
	th_sha256(buf, len, sha);
	free(buf);
	conns_to_b++;
	th_counters(&ha.app, &a0);
	th_counters(&hb.app, &b0);
	shm->cli_err = 0;
	shm->cli_rx = 0;
	st = run_in(&ha, true, echo_client, &e);
	th_counters(&ha.app, &a1);
	th_counters(&hb.app, &b1);
	/* plain messages: the backlog bound, while the reader lags */
	th_info("%zu B: redirect_ok/pass_plain/backlog_fallback A +%llu/+%llu/+%llu, "
		"B +%llu/+%llu/+%llu", len,
		(unsigned long long)(a1.redirect_ok - a0.redirect_ok),
		(unsigned long long)(a1.pass_plain - a0.pass_plain),
		(unsigned long long)(a1.backlog_fallback - a0.backlog_fallback),
		(unsigned long long)(b1.redirect_ok - b0.redirect_ok),
		(unsigned long long)(b1.pass_plain - b0.pass_plain),
		(unsigned long long)(b1.backlog_fallback - b0.backlog_fallback));
	/* app B finished with its end before the client saw EOF */
	if (TH_CHECK(st == 0, name,
		     "client status %d (4 timeout, 5 error, 6 differs): %s, got %llu B",
		     st, strerror(shm->cli_err), (unsigned long long)shm->cli_rx) &&
	    TH_CHECK(accepted() == i + 1 && __atomic_load_n(&r->done, __ATOMIC_ACQUIRE),
		     name, "app B accepted %u connections", accepted() - i) &&
	    TH_CHECK(r->rx == len && !memcmp(r->sha, sha, 32), name,
		     "A -> B: app B got %llu B, SHA-256 %s", (unsigned long long)r->rx,
		     memcmp(r->sha, sha, 32) ? "differs" : "equal") &&
	    TH_CHECK(!memcmp(shm->cli_sha, sha, 32), name, "B -> A: SHA-256 differs"))
		th_pass(name);
}

/* ---- c: both local hops as the default admits them, steering counted ---- */

/* The sockets of one host's cgroups and what moved over the traffic. */
struct hop_snap {
	struct sl_counters c;
	struct sl_adm_status adm;
};

static int hop_read(struct host *h, struct hop_snap *s)
{
	return th_counters(&h->app, &s->c) ?: sl_adm_read(h->app.pin_root, &s->adm);
}

#define ADM(s, r) ((s)->adm.stats.sockets[SL_ACC_##r])

static void test_admission(const struct hop_snap *a0, const struct hop_snap *b0,
			   const struct snap *sb0)
{
	const char *na = "mesh: default admission: A's app sockets counted by reason, "
			 "none admitted unless this kernel keeps FIONREAD";
	const char *nb = "mesh: default admission: nothing redirected into app B, "
			 "its accepted sockets counted accepted-socket";
	const char *ns = "mesh: inbound: B's sk_lookup steered every connection made to it";
	const char *nj = "mesh: status --json of A and B parses as JSON";
	unsigned long long blocking, nonblock, admitted, accepted, ok_a, ok_b;
	char cmd[PATH_MAX * 2 + 256], out[1024];
	char *sh[] = { "sh", "-c", cmd, NULL };
	struct hop_snap a1, b1;
	struct snap sb1;
	int st, keeps;

	if (!TH_CHECK(!hop_read(&ha, &a1) && !hop_read(&hb, &b1), na,
		      "reading the counters"))
		return;
	/* curl and Python's sockets with a timeout are non-blocking, the
	 * C clients' blocking: both kinds reach A's sidecar
	 */
	blocking = ADM(&a1, BLOCKING) - ADM(a0, BLOCKING);
	nonblock = ADM(&a1, KERNEL_FIONREAD) - ADM(a0, KERNEL_FIONREAD);
	admitted = ADM(&a1, ACCELERATED) - ADM(a0, ACCELERATED);
	accepted = ADM(&b1, ACCEPTED) - ADM(b0, ACCEPTED);
	ok_a = a1.c.redirect_ok - a0->c.redirect_ok;
	ok_b = b1.c.redirect_ok - b0->c.redirect_ok;
	keeps = !!(a1.adm.cfg.kernel & SL_KERNEL_TCP_FIONREAD);
	th_info("A (app_sockets %s, kernel %s FIONREAD): blocking-socket +%llu, "
		"kernel-fionread +%llu, accelerated +%llu, redirect_ok +%llu; "
		"B: accepted-socket +%llu, redirect_ok +%llu; %d connections",
		a1.adm.cfg.mode == SL_APP_SAFE ? "safe" : "not safe",
		keeps ? "keeps" : "changes", blocking, nonblock, admitted, ok_a,
		accepted, ok_b, conns_to_b);
	TH_RESULT(a1.adm.present && a1.adm.cfg.mode == SL_APP_SAFE &&
			  blocking > 0 && blocking + nonblock + admitted / 2 >=
						  (unsigned long long)conns_to_b &&
			  (keeps ? !nonblock : !admitted && !ok_a),
		  na, "see the line above");
	TH_RESULT(b1.adm.present && accepted >= (unsigned long long)conns_to_b &&
			  !ok_b,
		  nb, "see the line above");
	if (TH_CHECK(!snap_read(&hb, &sb1), ns, "status") &&
	    TH_CHECK(snap_get(&sb1, "inbound.steered") - snap_get(sb0, "inbound.steered") >=
			     (__u64)conns_to_b,
		     ns, "steered +%llu, %d connections made",
		     (unsigned long long)(snap_get(&sb1, "inbound.steered") -
					  snap_get(sb0, "inbound.steered")),
		     conns_to_b))
		th_pass(ns);
	snprintf(cmd, sizeof(cmd),
		 "for p in %s %s; do %s status --json --pin-root $p | python3 -c "
		 "'import json, sys; json.load(sys.stdin)' || exit 1; done",
		 ha.app.pin_root, hb.app.pin_root, th_sidelane_bin());
	st = th_run(NULL, NULL, sh, out, sizeof(out), 10000);
	/* python's last line says what and where */
	while (*out && out[strlen(out) - 1] == '\n')
		out[strlen(out) - 1] = '\0';
	TH_RESULT(st == 0, nj, "json.load: %s",
		  strrchr(out, '\n') ? strrchr(out, '\n') + 1 : out);
}

/* ---- e: bad peers, straight to B:8080 from A's namespace, not captured ---- */

/* mode tls|plain|silent, cert/key (or "-": none), CA to check B with. */
static const char py_peer[] =
	"import socket, ssl, sys, time\n"
	"mode, cert, key, ca = sys.argv[1:5]\n"
	"if mode in ('crowd', 'flood'):\n"
	"    import resource\n"
	"    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
	"    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))\n"
	"    N = " SL_XSTR(CROWD) " if mode == 'crowd' else min(" SL_XSTR(FLOOD) ", hard - 64)\n"
	"    hs = [socket.create_connection(('" B_IP "', 8080), 5) for i in range(N)]\n"
	"    if mode == 'crowd':\n"
	"        for h in hs[1::3]: h.sendall(b'\\x16\\x03\\x01\\x40\\x00')\n"
	"    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)\n"
	"    c.check_hostname = False\n"
	"    c.load_verify_locations(ca)\n"
	"    c.load_cert_chain(cert, key)\n"
	"    t0, lat, ok = time.monotonic(), [], 0\n"
	"    for k in range(4):\n"
	"        t, d = time.monotonic(), b''\n"
	"        v = c.wrap_socket(socket.create_connection(('" B_IP "', 8080), 5))\n"
	"        v.sendall(b'GET /hello.txt HTTP/1.0\\r\\nHost: b\\r\\n\\r\\n')\n"
	"        while (b := v.recv(65536)): d += b\n"
	"        v.unwrap(); v.close()\n"
	"        lat.append(int((time.monotonic() - t) * 1000))\n"
	"        ok += b'hello from app B' in d\n"
	"        for h in hs[2::3] if mode == 'crowd' else []:\n"
	"            try: h.send(b'x')\n"
	"            except OSError: pass\n"
	"    closed = 0\n"
	"    for h in hs:\n"
	"        h.settimeout(max(0.01, t0 + 3 - time.monotonic()))\n"
	"        try:\n"
	"            while h.recv(4096): pass\n"
	"            closed += 1\n"
	"        except ConnectionResetError: closed += 1\n"
	"        except OSError: pass\n"
	"    print(mode.upper(), ok, max(lat), closed, N)\n"
	"    sys.exit(0)\n"
	"s = socket.create_connection(('" B_IP "', 8080), 5)\n"
	"s.settimeout(5)\n"
	"d = b''\n"
	"try:\n"
	"    if mode == 'silent':\n"
	"        t = time.monotonic()\n"
	"        try:\n"
	"            while (b := s.recv(4096)): d += b\n"
	"        except ConnectionResetError: pass\n"
	"        print('CLOSED', int((time.monotonic() - t) * 1000), len(d))\n"
	"        sys.exit(0)\n"
	"    if mode == 'tls':\n"
	"        c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)\n"
	"        c.check_hostname = False\n"
	"        c.load_verify_locations(ca)\n"
	"        if cert != '-': c.load_cert_chain(cert, key)\n"
	"        s = c.wrap_socket(s)\n"
	"    s.sendall(b'GET /hello.txt HTTP/1.0\\r\\nHost: b\\r\\n\\r\\n')\n"
	"    while (b := s.recv(65536)): d += b\n"
	"    if mode == 'tls': s.unwrap()  # our close_notify: a clean end\n"
	"    print('RESP', len(d), d[:80])\n"
	"except Exception as e:\n"
	"    print('ERR', type(e).__name__, e, 'after', len(d), d[:80])\n";

struct refusal {
	const char *what, *mode, *cert;
	struct want want[2];
	const char *log_a, *log_b; /* one line of B's log holds both */
};

/* One peer against B. base: B's counters before it, published after the
 * last connection; NULL: wait for such a publish. Returns true when the
 * counters moved exactly as wanted, with *after the baseline of the next.
 */
static bool test_refusal(const struct refusal *c, const struct snap *base,
			 struct snap *after)
{
	char name[200], out[1024], cert[PATH_MAX], key[PATH_MAX];
	char *argv[] = { "python3", "-c", (char *)py_peer, (char *)c->mode, cert,
			 key, (char *)th_pki_path(dir, "ca", "pem"), NULL };
	bool control = !strcmp(c->what, "valid pair");
	long lb = log_size(&hb);
	__u32 acc0 = accepted();
	struct snap s0;
	unsigned int ms = 0, n = 0;
	bool exact = false;
	int st, err = 0;

	snprintf(name, sizeof(name), "mesh: %s: %s", control ? "served" : "refused",
		 c->what);
	snprintf(cert, sizeof(cert), "%s",
		 strcmp(c->cert, "-") ? th_pki_path(dir, c->cert, "pem") : "-");
	snprintf(key, sizeof(key), "%s",
		 strcmp(c->cert, "-") ? th_pki_path(dir, c->cert, "key") : "-");
	if (base)
		s0 = *base;
	else
		err = snap_fresh(&hb, &s0);
	if (!TH_CHECK(!err, name, "status of B: %s", strerror(-err)))
		return false;
	conns_to_b++;
	st = run_a(false, argv, out, sizeof(out));
	out[strcspn(out, "\n")] = '\0';
	th_info("%s: %s", c->what, out);
	if (!TH_CHECK(st == 0, name, "client exit %d: %s", st, out))
		return false;
	if (control) {
		if (!TH_CHECK(strstr(out, "HTTP/1.0 200 OK") &&
				      strstr(out, "hello from app B"),
			      name, "no app response: %s", out))
			return false;
	} else if (!TH_CHECK(!strstr(out, "HTTP/"), name,
			     "the app answered: %s", out)) {
		return false;
	}
	if (!strcmp(c->mode, "silent") &&
	    (sscanf(out, "CLOSED %u %u", &ms, &n) != 2 ||
	     !TH_CHECK(ms >= HS_MS - 100 && ms < HS_MS + 1500 && !n, name,
		       "closed after %u ms with %u B (timeout %d ms)", ms, n, HS_MS)))
		return false;
	exact = counters_moved(name, &hb, &s0, c->want, c->want[1].path ? 2 : 1,
			       true, after);
	if (!exact)
		return false;
	if (!TH_CHECK(log_wait(&hb, lb, c->log_a, c->log_b, LOG_MS), name,
		      "no line with '%s'%s%s in B's log", c->log_a,
		      c->log_b ? " and " : "", c->log_b ? c->log_b : ""))
		log_dump(&hb, lb);
	else if (TH_CHECK(accepted() == acc0 + control, name,
			  "app B accepted %u connections, want %d",
			  accepted() - acc0, control))
		th_pass(name);
	return exact;
}

static void test_refusals(void)
{
	static const struct refusal cases[] = {
		{ "valid pair", "tls", "a",
		  { { "tls.handshakes_ok", 1 }, { "proxy.closed.done", 1 } },
		  "proxy: done: ", ", tls peer " ID_A "\n" },
		{ "wrong CA -> unknown-ca", "tls", "rogue",
		  { { "tls.failed.unknown-ca", 1 }, { "proxy.closed.tls-failed", 1 } },
		  "proxy: tls-failed: ", "(unknown-ca)" },
		{ "expired certificate -> expired", "tls", "expired",
		  { { "tls.failed.expired", 1 }, { "proxy.closed.tls-failed", 1 } },
		  "proxy: tls-failed: ", "(expired)" },
		{ "another trust domain -> wrong-trust-domain", "tls", "othertd",
		  { { "tls.failed.wrong-trust-domain", 1 },
		    { "proxy.closed.tls-failed", 1 } },
		  "proxy: tls-failed: ", "(wrong-trust-domain)" },
		{ "in-domain identity B's rules do not allow (" ID_C ") -> identity-denied",
		  "tls", "nsc",
		  { { "tls.handshakes_ok", 1 }, { "proxy.closed.identity-denied", 1 } },
		  "proxy: identity-denied: ", "client " ID_C },
		{ "client without a certificate -> no-cert", "tls", "-",
		  { { "tls.failed.no-cert", 1 }, { "proxy.closed.tls-failed", 1 } },
		  "proxy: tls-failed: ", "(no-cert)" },
		{ "plaintext HTTP -> protocol", "plain", "-",
		  { { "tls.failed.protocol", 1 }, { "proxy.closed.tls-failed", 1 } },
		  "proxy: tls-failed: ", "(protocol)" },
		{ "a silent client is closed after the 1 s handshake timeout", "silent",
		  "-",
		  { { "tls.failed.timeout", 1 }, { "proxy.closed.tls-timeout", 1 } },
		  "proxy: tls-timeout: ", NULL },
	};
	struct snap snaps[2];
	bool chained = false;
	size_t i;

	/* each case's last snapshot is the next one's baseline; after a
	 * failure, a fresh one
	 */
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		chained = test_refusal(&cases[i], chained ? &snaps[i % 2] : NULL,
				       &snaps[(i + 1) % 2]);
}

/* Hostile peers on B's inbound listener: CROWD connections held open at
 * once, a third silent, a third sending a TLS record header and nothing
 * more, a third garbage a byte at a time (slowloris). Meanwhile a valid
 * mTLS client is served four times in a row, each within the handshake
 * timeout, and B closes every hostile one within 3 s: the handshake
 * timeout is a deadline from accept, not an idle timer, so trickling bytes
 * does not extend it.
 */
/* py_peer's crowd or flood from A's namespace, with A's valid client
 * certificate; its one line in out. The exit status.
 */
static int run_peers(const char *mode, char *out, size_t len)
{
	char *argv[] = { "python3", "-c", (char *)py_peer, (char *)mode,
			 (char *)th_pki_path(dir, "a", "pem"),
			 (char *)th_pki_path(dir, "a", "key"),
			 (char *)th_pki_path(dir, "ca", "pem"), NULL };
	int st = run_a(false, argv, out, len);

	out[strcspn(out, "\n")] = '\0';
	return st;
}

static void test_crowd(void)
{
	const char *name = "mesh: " SL_XSTR(CROWD) " hostile peers held open on the "
			   "inbound listener: a valid client is served meanwhile, "
			   "each hostile one closed within 3 s";
	char out[1024];
	unsigned int ok = 0, max_ms = 0, closed = 0, n = 0;
	int st = run_peers("crowd", out, sizeof(out));

	th_info("crowd: %s", out);
	conns_to_b += 4 + CROWD;
	if (TH_CHECK(st == 0 && sscanf(out, "CROWD %u %u %u %u", &ok, &max_ms,
				       &closed, &n) == 4, name,
		     "client exit %d: %s", st, out) &&
	    TH_CHECK(ok == 4 && max_ms < HS_MS * TH_SLOW, name,
		     "%u of 4 served, the slowest in %u ms", ok, max_ms) &&
	    TH_CHECK(closed == n, name, "%u of %u hostile peers closed", closed,
		     n))
		th_pass(name);
}

/* FLOOD silent peers connect to B's inbound listener one after another,
 * ten times its proxy.max_conns, then a valid mTLS client is served four
 * times while B is full of them: a new connection takes the slot of the
 * oldest peer still in its handshake (tls-evicted), so a crowd that never
 * authenticates cannot shut clients out. Every silent peer ends with a
 * reset or at the handshake deadline, and B's descriptors come back.
 */
static void test_flood(void)
{
	const char *name = "mesh: " SL_XSTR(FLOOD) " silent peers on the inbound "
			   "listener (max_conns " SL_XSTR(B_MAX_CONNS) "): a valid "
			   "client is served, the oldest unauthenticated are "
			   "evicted, all closed, descriptors back";
	char out[1024];
	unsigned int ok = 0, max_ms = 0, closed = 0, n = 0;
	int fds0 = th_proc_fds(hb.app.sidelane), fds = -1, st;
	__u64 evicted, refused, end;
	struct snap s0, s1;

	if (!TH_CHECK(!snap_read(&hb, &s0) && fds0 > 0, name,
		      "B's counters or descriptors before"))
		return;
	st = run_peers("flood", out, sizeof(out));
	th_info("flood: %s", out);
	conns_to_b += 4 + FLOOD;
	/* B lets go of the last ones at their handshake deadline */
	end = th_now_ms() + HS_MS + 3000;
	do {
		usleep(100 * 1000);
		fds = th_proc_fds(hb.app.sidelane);
	} while (fds > fds0 + 2 && th_now_ms() < end);
	usleep(1100 * 1000); /* the counters are published once a second */
	if (!TH_CHECK(!snap_read(&hb, &s1), name, "B's counters after"))
		return;
	evicted = snap_get(&s1, "proxy.closed.tls-evicted") -
		  snap_get(&s0, "proxy.closed.tls-evicted");
	refused = snap_get(&s1, "proxy.closed.too-many") -
		  snap_get(&s0, "proxy.closed.too-many");
	th_info("flood: B evicted %llu, refused %llu (too-many), descriptors "
		"%d before, %d after", (unsigned long long)evicted,
		(unsigned long long)refused, fds0, fds);
	if (TH_CHECK(st == 0 && sscanf(out, "FLOOD %u %u %u %u", &ok, &max_ms,
				       &closed, &n) == 4, name,
		     "client exit %d: %s", st, out) &&
	    TH_CHECK(ok == 4 && max_ms < HS_MS * TH_SLOW, name,
		     "%u of 4 served, the slowest in %u ms", ok, max_ms) &&
	    TH_CHECK(evicted > 0, name, "none evicted: B was never full") &&
	    TH_CHECK(closed == n, name, "%u of %u silent peers closed", closed,
		     n) &&
	    TH_CHECK(fds <= fds0 + 2, name, "B holds %d descriptors, %d before",
		     fds, fds0))
		th_pass(name);
}

/* ---- f: rotation under traffic ---- */

/* A's live cert and key become name's: both written beside, then renamed
 * over back to back. (Renamed one at a time, a reload in between sees a
 * key that does not match the cert: refused, and taken at the next check.)
 */
static int swap_a(const char *name)
{
	static const char *const ext[] = { "pem", "key" };
	char tmp[PATH_MAX];
	int i, err = 0;

	for (i = 0; i < 2 && !err; i++)
		err = th_pki_sh(dir, "cp %s %s.tmp", th_pki_path(dir, name, ext[i]),
				th_pki_path(dir, "a-live", ext[i]));
	for (i = 0; i < 2 && !err; i++) {
		snprintf(tmp, sizeof(tmp), "%s.tmp", th_pki_path(dir, "a-live", ext[i]));
		if (rename(tmp, th_pki_path(dir, "a-live", ext[i])))
			err = -errno;
	}
	return err;
}

/* Tell the long-lived client to finish; its exit status. */
static int ll_finish(void)
{
	int st;

	__atomic_store_n(&shm->ll_stop, 1, __ATOMIC_RELEASE);
	st = ll_pid > 0 ? th_wait(ll_pid, IO_MS) : -ECHILD;
	ll_pid = 0;
	return st;
}

/* Start a fresh long-lived client in A's app cgroup and wait until it has
 * moved 4 chunks; false (reported under name, the client finished) if not.
 */
static bool ll_start(const char *name)
{
	__u64 end = th_now_ms() + 3000;

	shm->ll_bytes = 0;
	shm->ll_stop = 0;
	shm->ll_end = 0;
	conns_to_b++;
	ll_pid = spawn_in(&ha, true, ll_client, NULL);
	while (__atomic_load_n(&shm->ll_bytes, __ATOMIC_ACQUIRE) < 4 * LL_CHUNK &&
	       th_now_ms() < end)
		sleep_ms(10);
	if (TH_CHECK(ll_pid > 0 && shm->ll_bytes >= 4 * LL_CHUNK, name,
		     "the long-lived connection moved %llu B",
		     (unsigned long long)shm->ll_bytes))
		return true;
	ll_finish();
	return false;
}

static void test_rotation(void)
{
	const char *n1 = "mesh: rotation: A takes client-v2 (reloads +1) and a new connection shows it in B's log";
	const char *n2 = "mesh: rotation: the long-lived connection kept moving across the swap, byte-exact, old identity";
	const char *n3 = "mesh: rotation: a garbage cert is rejected (log, reloads_rejected +1 once), new connections still served";
	const struct want w_reload[] = { { "tls.reloads", 1 } };
	const struct want w_reject[] = { { "tls.reloads_rejected", 1 },
					 { "tls.reloads", 0 } };
	char out[256], to[PATH_MAX], up[64];
	long la = log_size(&ha), lb = log_size(&hb), la2, lb2;
	__u32 idx = accepted();
	const struct app_conn *r = &shm->c[idx % MAX_APP_CONNS];
	__u64 end, b0, total;
	struct snap s0, s1, s2;
	bool moving;
	int st, err;

	snprintf(to, sizeof(to), "%s/hello.out", dir);
	err = snap_fresh(&ha, &s0);
	if (!TH_CHECK(!err, n1, "status of A: %s", strerror(-err)))
		return;
	if (!ll_start(n1))
		return;
	err = swap_a("a2");
	if (!TH_CHECK(!err, n1, "swap: %s", strerror(-err)) ||
	    !TH_CHECK(log_wait(&ha, la, "tls: reloaded ", "(identity " ID_A2 ")",
			       2000),
		      n1, "A logged no reload of " ID_A2 " within 2 s")) {
		log_dump(&ha, la);
		goto out;
	}
	b0 = __atomic_load_n(&shm->ll_bytes, __ATOMIC_ACQUIRE);
	sleep_ms(200);
	moving = __atomic_load_n(&shm->ll_bytes, __ATOMIC_ACQUIRE) > b0;
	st = curl_get("hello.txt", to, out, sizeof(out));
	if (TH_CHECK(st == 0 && !strcmp(out, "200 17"), n1, "curl exit %d: %s", st,
		     out) &&
	    TH_CHECK(log_wait(&hb, lb, "proxy: done: ", ", tls peer " ID_A2 "\n",
			      LOG_MS),
		     n1, "B logged no connection from " ID_A2) &&
	    counters_moved(n1, &ha, &s0, w_reload, 1, false, &s1))
		th_pass(n1);

	/* the old connection finishes intact, under the identity it began with */
	st = ll_finish();
	total = __atomic_load_n(&shm->ll_bytes, __ATOMIC_ACQUIRE);
	snprintf(up, sizeof(up), "up %llu B, down %llu B", (unsigned long long)total,
		 (unsigned long long)total);
	end = th_now_ms() + LOG_MS;
	while (!__atomic_load_n(&r->done, __ATOMIC_ACQUIRE) && th_now_ms() < end)
		sleep_ms(10);
	if (TH_CHECK(moving, n2, "no bytes moved in the 200 ms after the reload") &&
	    TH_CHECK(st == 0, n2, "client status %d (3: a chunk came back wrong, "
		     "4: no EOF after its half-close but %d)", st, shm->ll_end) &&
	    TH_CHECK(r->done && r->rx == total && !memcmp(r->sha, shm->ll_sha, 32), n2,
		     "app B got %llu B of %llu, SHA-256 %s", (unsigned long long)r->rx,
		     (unsigned long long)total,
		     memcmp(r->sha, shm->ll_sha, 32) ? "differs" : "equal") &&
	    TH_CHECK(log_wait(&hb, lb, up, ", tls peer " ID_A "\n", LOG_MS), n2,
		     "B logged no close with '%s' and tls peer " ID_A, up))
		th_pass(n2);
	th_info("long-lived connection: %llu B each way", (unsigned long long)total);

	/* a bad file: refused, said, counted once, the old material serves */
	la2 = log_size(&ha);
	lb2 = log_size(&hb);
	err = snap_fresh(&ha, &s1);
	if (!TH_CHECK(!err, n3, "status of A: %s", strerror(-err)))
		return;
	err = th_write_text(th_pki_path(dir, "garbage", "pem"),
			    "-----BEGIN CERTIFICATE-----\nnot base64\n"
			    "-----END CERTIFICATE-----\n");
	err = err ?: th_pki_swap(dir, th_pki_path(dir, "garbage", "pem"),
				 th_pki_path(dir, "a-live", "pem"));
	if (!TH_CHECK(!err, n3, "swap: %s", strerror(-err)) ||
	    !TH_CHECK(log_wait(&ha, la2, "tls: reload rejected, the current material stays",
			       "a-live.pem", 2000),
		      n3, "A logged no rejected reload") ||
	    !counters_moved(n3, &ha, &s1, w_reject, 2, false, &s2))
		return;
	sleep_ms(1200); /* five more checks of the same bad file, one publish */
	st = curl_get("hello.txt", to, out, sizeof(out));
	if (TH_CHECK(st == 0 && !strcmp(out, "200 17"), n3, "curl exit %d: %s", st,
		     out) &&
	    TH_CHECK(log_wait(&hb, lb2, "proxy: done: ", ", tls peer " ID_A2 "\n",
			      LOG_MS),
		     n3, "B logged no connection from " ID_A2 " after the rejection") &&
	    counters_moved(n3, &ha, &s1, w_reject, 2, false, &s2))
		th_pass(n3);
	unlink(to);
	return;
out:
	ll_finish();
}

/* A SIGHUP storm on A's sidecar (each one re-reads the host's addresses
 * and rechecks the TLS files) while its certificate rotates back from the
 * garbage one to a valid one and `sidelane policy add/del` edits its rules,
 * all under a long-lived mTLS stream: the stream ends byte-exact, A takes
 * the valid certificate, serves new connections, and its rules are the
 * ones last written.
 */
#define HUPS 400
#define POLICY_EDITS 20
static void test_sighup_storm(void)
{
	const char *name = "mesh: " SL_XSTR(HUPS) " SIGHUPs, a rotation and "
			   SL_XSTR(POLICY_EDITS) " policy edits under a long-lived "
			   "stream: byte-exact, the new certificate taken, rules as "
			   "last written";
	char out[4096], to[PATH_MAX], id[16], cidr[32];
	char *add[] = { (char *)th_sidelane_bin(), "policy", "add", id, "deny",
			cidr, "9", "--pin-root", ha.app.pin_root, NULL };
	char *del[] = { (char *)th_sidelane_bin(), "policy", "del", id,
			"--pin-root", ha.app.pin_root, NULL };
	char *list[] = { (char *)th_sidelane_bin(), "policy", "list",
			 "--pin-root", ha.app.pin_root, NULL };
	long la = log_size(&ha);
	__u32 idx = accepted();
	const struct app_conn *r = &shm->c[idx % MAX_APP_CONNS];
	int i, st, edits = 0, hups = 0;
	__u64 end, total;

	snprintf(to, sizeof(to), "%s/hello.out", dir);
	if (!ll_start(name))
		return;
	for (i = 0; i < HUPS; i++) {
		hups += !kill(ha.app.sidelane, SIGHUP);
		if (i == HUPS / 2 && swap_a("a"))
			break;
		if (i % (HUPS / POLICY_EDITS) == 0) {
			snprintf(id, sizeof(id), "%d", 9000 + edits);
			snprintf(cidr, sizeof(cidr), "192.0.2.%d/32", edits + 1);
			st = th_run(NULL, NULL, add, out, sizeof(out), IO_MS);
			if (st)
				th_info("policy add %s: exit %d: %s", id, st, out);
			edits += !st;
			/* every other rule goes again: the even ids stay */
			if (!(edits % 2))
				th_run(NULL, NULL, del, out, sizeof(out), IO_MS);
		}
		usleep(5000);
	}
	st = ll_finish();
	total = __atomic_load_n(&shm->ll_bytes, __ATOMIC_ACQUIRE);
	end = th_now_ms() + LOG_MS;
	while (!__atomic_load_n(&r->done, __ATOMIC_ACQUIRE) && th_now_ms() < end)
		sleep_ms(10);
	th_info("storm: %d SIGHUPs, %d policy adds; the stream moved %llu B", hups,
		edits, (unsigned long long)total);
	if (TH_CHECK(hups == HUPS && edits == POLICY_EDITS, name,
		     "%d SIGHUPs, %d edits", hups, edits) &&
	    TH_CHECK(st == 0 && r->done && r->rx == total &&
			     !memcmp(r->sha, shm->ll_sha, 32), name,
		     "stream: client %d, app B got %llu of %llu B", st,
		     (unsigned long long)r->rx, (unsigned long long)total) &&
	    TH_CHECK(!kill(ha.app.sidelane, 0), name, "A's sidecar is gone") &&
	    TH_CHECK(log_wait(&ha, la, "tls: reloaded ", "(identity " ID_A ")",
			      2000), name, "A took no valid certificate") &&
	    TH_CHECK((st = curl_get("hello.txt", to, out, sizeof(out))) == 0 &&
			     !strcmp(out, "200 17"), name, "curl exit %d: %s", st,
		     out) &&
	    TH_CHECK(!th_run(NULL, NULL, list, out, sizeof(out), IO_MS) &&
			     strstr(out, "9000") && !strstr(out, "9001") &&
			     strstr(out, "9018") && !strstr(out, "9019"),
		     name, "policy list: %s", out))
		th_pass(name);
	/* leave A's rules as they were */
	for (i = 0; i < POLICY_EDITS; i += 2) {
		snprintf(id, sizeof(id), "%d", 9000 + i);
		th_run(NULL, NULL, del, out, sizeof(out), IO_MS);
	}
	unlink(to);
}

/* A config replaced as an editor saves it (a new file renamed over): the
 * running sidelane follows. 0 or -errno.
 */
static int config_swap(const char *path, const char *text)
{
	char tmp[PATH_MAX + 8];

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if (th_write_text(tmp, text))
		return -EIO;
	return rename(tmp, path) ? -errno : 0;
}

static int b_config_swap(const char *allow, const char *ports)
{
	char text[2048];

	b_config(text, sizeof(text), allow, ports);
	return config_swap(hb.cfg, text);
}

/* Live configuration on the inbound side (issue 15): B's file changes
 * under a long-lived mTLS stream from A. Its identity rules then refuse
 * A's new connections while the stream, accepted under the old rules,
 * runs on; its steered ports grow in the kernel; the file put back, A is
 * served again. No restart: B's pid stays.
 */
static void test_live_config(void)
{
	const char *name = "mesh: B's config changed live under a long-lived "
			   "stream: new identity rules refuse A's new connections "
			   "(identity-denied), the stream runs on byte-exact, the "
			   "steered ports grow; put back, A is served again";
	const struct want w[] = { { "proxy.closed.identity-denied", 1 } };
	static char out[64 * 1024];
	char to[PATH_MAX];
	__u32 idx = accepted();
	const struct app_conn *r = &shm->c[idx % MAX_APP_CONNS];
	pid_t pid_b = hb.app.sidelane;
	__u64 ports0 = 0, ports1 = 0, moved0, total;
	long lb = log_size(&hb);
	struct snap s0, s1;
	int st, st_ll, st_back = -1;

	snprintf(to, sizeof(to), "%s/live.out", dir);
	if (status_json(&hb, out, sizeof(out)) ||
	    json_u64(out, "inbound.ports", &ports0) || snap_read(&hb, &s0) ||
	    !ll_start(name)) {
		th_fail(name, "status of B, or the stream did not start");
		return;
	}
	if (!TH_CHECK(!b_config_swap("spiffe://" TD "/ns/nobody/*",
				     "\"" SL_XSTR(APP_PORT) "\", \"9000-9010\""),
		      name, "writing B's config") ||
	    !TH_CHECK(log_wait(&hb, lb, "config: version ", "applied", LOG_MS),
		      name, "B did not apply the new version"))
		goto out;
	moved0 = __atomic_load_n(&shm->ll_bytes, __ATOMIC_ACQUIRE);
	st = curl_get("hello.txt", to, out, sizeof(out));
	if (!TH_CHECK(st != 0, name, "curl got through the new rules: %s", out) ||
	    !counters_moved(name, &hb, &s0, w, 1, false, &s1) ||
	    !TH_CHECK(!status_json(&hb, out, sizeof(out)) &&
			      !json_u64(out, "inbound.ports", &ports1) &&
			      ports1 == ports0 + 11,
		      name, "steered ports %llu -> %llu, want +11",
		      (unsigned long long)ports0, (unsigned long long)ports1))
		goto out;
	sleep_ms(300); /* the stream keeps moving under the new rules */
	if (!TH_CHECK(__atomic_load_n(&shm->ll_bytes, __ATOMIC_ACQUIRE) > moved0,
		      name, "the stream stopped at %llu B",
		      (unsigned long long)moved0))
		goto out;
	lb = log_size(&hb);
	if (TH_CHECK(!b_config_swap("spiffe://" TD "/ns/a/*", "\"" SL_XSTR(APP_PORT) "\"") &&
			     log_wait(&hb, lb, "config: version ", "applied",
				      LOG_MS),
		     name, "B did not apply the old version again"))
		st_back = curl_get("hello.txt", to, out, sizeof(out));
out:
	st_ll = ll_finish();
	total = __atomic_load_n(&shm->ll_bytes, __ATOMIC_ACQUIRE);
	if (TH_CHECK(st_back == 0 && !strcmp(out, "200 17"), name,
		     "curl after the file was put back: exit %d, %s", st_back,
		     out) &&
	    TH_CHECK(st_ll == 0 && r->rx == total &&
			     !memcmp(r->sha, shm->ll_sha, 32),
		     name, "stream: client %d, app B got %llu of %llu B", st_ll,
		     (unsigned long long)r->rx, (unsigned long long)total) &&
	    TH_CHECK(hb.app.sidelane == pid_b && !kill(pid_b, 0), name,
		     "B's sidelane restarted or died"))
		th_pass(name);
	if (st_back) { /* the tests after this one want B as it was */
		lb = log_size(&hb);
		b_config_swap("spiffe://" TD "/ns/a/*", "\"" SL_XSTR(APP_PORT) "\"");
		log_wait(&hb, lb, "config: version ", "applied", LOG_MS);
	}
	unlink(to);
}

/* A's mesh entry changed live: the server identities (and certificate
 * files) of a-bad-id.yaml make A refuse B (identity-denied on A); the
 * file put back, A is served again; A never restarted.
 */
static void test_live_mesh(void)
{
	const char *name = "mesh: A's mesh identities changed live: A refuses B "
			   "(identity-denied on A); put back, B is served again; "
			   "A did not restart";
	const struct want w[] = { { "proxy.closed.identity-denied", 1 } };
	unsigned char *good = NULL, *bad = NULL;
	size_t glen, blen;
	char out[256], to[PATH_MAX];
	pid_t pid_a = ha.app.sidelane;
	long la = log_size(&ha);
	struct snap s0, s1;
	int st = 0, st_back = -1;

	snprintf(to, sizeof(to), "%s/live-a.out", dir);
	if (!TH_CHECK(!read_file(ha.cfg, &good, &glen) &&
			      !read_file(th_pki_path(dir, "a-bad-id", "yaml"),
					 &bad, &blen) &&
			      !snap_read(&ha, &s0),
		      name, "reading A's configs and status"))
		goto out;
	if (!TH_CHECK(!config_swap(ha.cfg, (const char *)bad) &&
			      log_wait(&ha, la, "config: version ", "applied",
				       LOG_MS),
		      name, "A did not apply the new version"))
		goto out;
	st = curl_get("hello.txt", to, out, sizeof(out));
	if (!TH_CHECK(st != 0, name, "curl got through: %s", out) ||
	    !counters_moved(name, &ha, &s0, w, 1, false, &s1))
		goto out;
	la = log_size(&ha);
	if (TH_CHECK(!config_swap(ha.cfg, (const char *)good) &&
			     log_wait(&ha, la, "config: version ", "applied",
				      LOG_MS),
		     name, "A did not apply the old version again"))
		st_back = curl_get("hello.txt", to, out, sizeof(out));
	if (TH_CHECK(st_back == 0 && !strcmp(out, "200 17"), name,
		     "curl after the file was put back: exit %d, %s", st_back,
		     out) &&
	    TH_CHECK(ha.app.sidelane == pid_a && !kill(pid_a, 0), name,
		     "A's sidelane restarted or died"))
		th_pass(name);
out:
	if (good && st_back) { /* the tests after this one want A as it was */
		la = log_size(&ha);
		config_swap(ha.cfg, (const char *)good);
		log_wait(&ha, la, "config: version ", "applied", LOG_MS);
	}
	free(good);
	free(bad);
	unlink(to);
}

/* kill -9 of A's sidecar in the middle of a long-lived mTLS stream: app A
 * sees a reset, not a clean EOF that would read as the end of an answer;
 * a restarted sidecar serves new connections.
 */
static void test_kill9(void)
{
	const char *name = "mesh: kill -9 of A's sidecar mid-stream: app A sees a "
			   "reset, not a clean EOF; after a restart a new "
			   "connection is served";
	char out[256], to[PATH_MAX];
	int st, err;

	snprintf(to, sizeof(to), "%s/hello.out", dir);
	if (!ll_start(name))
		return;
	kill(ha.app.sidelane, SIGKILL);
	th_wait(ha.app.sidelane, IO_MS);
	ha.app.sidelane = 0;
	/* the client fails on its own; ll_stop only if it did not */
	st = ll_pid > 0 ? th_wait(ll_pid, IO_MS) : -ECHILD;
	ll_pid = 0;
	th_info("kill -9: the stream had moved %llu B; the client exited %d, its "
		"last recv %d (%s)", (unsigned long long)shm->ll_bytes, st,
		shm->ll_end, shm->ll_end < 0 ? strerror(-shm->ll_end) :
		shm->ll_end ? "data" : "a clean EOF");
	if (!TH_CHECK(st == 3 && shm->ll_end == -ECONNRESET, name,
		      "client exit %d, last recv %d, want a reset", st,
		      shm->ll_end))
		goto restart;
	err = start_sidelane(&ha, ha.cfg);
	if (!TH_CHECK(!err, name, "restart: %s", strerror(-err)))
		return;
	st = curl_get("hello.txt", to, out, sizeof(out));
	if (TH_CHECK(st == 0 && !strcmp(out, "200 17"), name, "curl exit %d: %s",
		     st, out))
		th_pass(name);
	unlink(to);
	return;
restart:
	start_sidelane(&ha, ha.cfg);
}

/* ---- A refuses a server outside its mesh entry's identities ---- */

static void test_server_identity(void)
{
	const char *name = "mesh: A refuses B whose identity is none of its mesh entry's (identity-denied on A)";
	const struct want w[] = { { "proxy.closed.identity-denied", 1 } };
	char out[256], to[PATH_MAX], *p;
	__u32 acc0 = accepted();
	struct snap s0, s1;
	long la;
	int st, err;

	snprintf(to, sizeof(to), "%s/denied.out", dir);
	err = stop_sidelane(&ha);
	if (!TH_CHECK(!err, name, "sidelane A exited with %d on SIGTERM", err))
		return;
	la = log_size(&ha);
	err = start_sidelane(&ha, th_pki_path(dir, "a-bad-id", "yaml"));
	if (!TH_CHECK(!err, name, "restart: %s", strerror(-err)) ||
	    !TH_CHECK(!snap_read(&ha, &s0) &&
			      snap_get(&s0, "proxy.pid") == (__u64)ha.app.sidelane,
		      name, "status of the restarted A"))
		return;
	st = curl_get("hello.txt", to, out, sizeof(out));
	unlink(to);
	for (p = out; (p = strchr(p, '\n'));)
		*p = ' '; /* curl's error and -w output: one line */
	if (TH_CHECK(st != 0 && strncmp(out, "200", 3), name,
		     "curl got through: exit %d, %s", st, out) &&
	    TH_CHECK(log_wait(&ha, la, "proxy: identity-denied: ",
			      "(server " ID_B " is none of mesh 1's identities)",
			      LOG_MS),
		     name, "no identity-denied line naming " ID_B " in A's log") &&
	    counters_moved(name, &ha, &s0, w, 1, false, &s1) &&
	    /* A refuses while verifying B's certificate, before its Finished:
	     * B never completes the handshake, so app B sees nothing
	     */
	    TH_CHECK(accepted() == acc0, name, "app B accepted +%u", accepted() - acc0)) {
		th_info("curl: exit %d '%s'", st, out);
		th_pass(name);
	}
}

/* After every case above, good and bad: no connection or TLS state is
 * left open in either sidecar (counters are published once a second).
 */
static void test_no_leaks(void)
{
	const char *name = "mesh: nothing left open: proxy.active and tls.active 0 on A and B";
	struct host *hs[2] = { &ha, &hb };
	__u64 end = th_now_ms() + 4000;
	struct snap s[2];
	bool zero;
	int i;

	do {
		zero = true;
		for (i = 0; i < 2; i++)
			zero = zero && !snap_read(hs[i], &s[i]) &&
			       !snap_get(&s[i], "proxy.active") &&
			       !snap_get(&s[i], "tls.active");
		if (!zero)
			usleep(200 * 1000);
	} while (!zero && th_now_ms() < end);
	TH_RESULT(zero, name, "A: proxy %llu tls %llu, B: proxy %llu tls %llu",
		  (unsigned long long)snap_get(&s[0], "proxy.active"),
		  (unsigned long long)snap_get(&s[0], "tls.active"),
		  (unsigned long long)snap_get(&s[1], "proxy.active"),
		  (unsigned long long)snap_get(&s[1], "tls.active"));
}

/* ---- g: teardown ---- */

static bool gone(const char *path, char *why, size_t len, size_t *off)
{
	if (access(path, F_OK) && errno == ENOENT)
		return true;
	if (*off < len)
		*off += snprintf(why + *off, len - *off, " %s", path);
	return false;
}

static void test_teardown(void)
{
	const char *name = "mesh: teardown: sidelanes stopped and detached; namespaces, veth, cgroups, pin roots, temp files gone";
	struct host *hs[] = { &ha, &hb };
	char why[1024] = "", p[PATH_MAX];
	size_t off = 0;
	int i, st[2], err = 0;

	th_watchdog(30, "mesh: teardown");
	for (i = 0; i < 2; i++)
		st[i] = stop_sidelane(hs[i]);
	th_cleanup_pop(mesh_cleanup, NULL, true);
	for (i = 0; i < 2; i++) {
		err = th_env_teardown(&hs[i]->app) ?: err;
		err = th_env_teardown(&hs[i]->side) ?: err;
	}
	err = th_pki_dir_remove(dir) ?: err;
	for (i = 0; i < 2; i++) {
		snprintf(p, sizeof(p), "/var/run/netns/%s", hs[i]->ns);
		if (hs[i]->ns[0])
			gone(p, why, sizeof(why), &off);
		gone(hs[i]->app.pin_root, why, sizeof(why), &off);
		gone(hs[i]->app.cgroup, why, sizeof(why), &off);
		gone(hs[i]->side.cgroup, why, sizeof(why), &off);
		if (if_nametoindex(hs[i]->veth) && off < sizeof(why))
			off += snprintf(why + off, sizeof(why) - off, " veth %s",
					hs[i]->veth);
	}
	gone(dir, why, sizeof(why), &off);
	if (TH_CHECK(st[0] == 0 && st[1] == 0, name,
		     "sidelane exit on SIGTERM: A %d, B %d", st[0], st[1]) &&
	    TH_CHECK(!err && !why[0], name, "%s; left behind:%s", strerror(-err),
		     why[0] ? why : " (nothing)"))
		th_pass(name);
}

int main(void)
{
	struct hop_snap fa0, fb0;
	unsigned char blob_sha[32], *blob = malloc(BLOB_SIZE);
	static const size_t sizes[] = { 1, KiB, 64 * KiB, MiB, 16 * MiB };
	unsigned long long t[7] = {};
	struct snap sb0;
	long la, lb;
	size_t i;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (access(th_sidelane_bin(), X_OK)) {
		th_skip("mesh: setup", "no sidelane binary (make first)");
		return th_summary();
	}
	t[0] = th_now_ms();
	th_watchdog(30, "mesh: setup");
	if (!blob || !setup())
		goto out;
	t[1] = th_now_ms();
	th_fill(blob, BLOB_SIZE, 42);
	th_sha256(blob, BLOB_SIZE, blob_sha);

	th_watchdog(30, "mesh: traffic");
	la = log_size(&ha);
	lb = log_size(&hb);
	if (hop_read(&ha, &fa0) || hop_read(&hb, &fb0) || snap_read(&hb, &sb0)) {
		th_fail("mesh: setup", "reading counters before the traffic");
		goto out;
	}
	test_http(blob_sha);
	test_identities(la, lb);
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		test_echo(sizes[i]);
	test_admission(&fa0, &fb0, &sb0);

	t[2] = th_now_ms();
	th_watchdog(45, "mesh: refusals, crowd, flood");
	test_refusals();
	test_crowd();
	test_flood();
	t[3] = th_now_ms();
	th_watchdog(40, "mesh: rotation, SIGHUP storm");
	test_rotation();
	test_sighup_storm();
	test_live_config();
	test_live_mesh();
	test_kill9();
	t[4] = th_now_ms();
	th_watchdog(20, "mesh: server identity");
	test_server_identity();
	test_no_leaks();
	t[5] = th_now_ms();
out:
	free(blob);
	test_teardown();
	t[6] = th_now_ms();
	if (t[5])
		th_info("ms: setup %llu, traffic %llu, refusals %llu, rotation %llu, "
			"server identity %llu, teardown %llu, total %llu",
			t[1] - t[0], t[2] - t[1], t[3] - t[2], t[4] - t[3],
			t[5] - t[4], t[6] - t[5], t[6] - t[0]);
	th_watchdog(0, NULL);
	return th_summary();
}
