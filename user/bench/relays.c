// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* `sidelane bench`, --suite sidecar and tls: the namespace, starting relays
 * (see bench.c).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench/internal.h"

/* ---- --suite sidecar and tls: namespace, the relays ---------------------- */

struct sockaddr_in addr_in(const char *ip, uint16_t port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons(port) };

	inet_pton(AF_INET, ip, &sa.sin_addr);
	return sa;
}

/* Connect and close: 0, or -errno (-ECONNREFUSED: reachable, nobody home). */
static int tcp_probe(struct sockaddr_in sa)
{
	struct timeval tv = { .tv_usec = 200000 };
	int fd, err;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* bounds connect(): a SYN lost on a veth not up yet is resent in 1 s */
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	err = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) ? -errno : 0;
	close(fd);
	return err;
}

/* A port of 127.0.0.1 nothing listens on now. */
int pick_port(uint16_t *port)
{
	struct sockaddr_in sa = addr_in("127.0.0.1", 0);
	socklen_t len = sizeof(sa);
	int fd, err = 0;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    getsockname(fd, (struct sockaddr *)&sa, &len))
		err = -errno;
	else
		*port = ntohs(sa.sin_port);
	close(fd);
	return err;
}

int write_text(const char *path, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int write_text(const char *path, const char *fmt, ...)
{
	va_list ap;
	FILE *f;
	int err = 0;

	f = fopen(path, "wxe");
	if (!f)
		return -errno;
	va_start(ap, fmt);
	if (vfprintf(f, fmt, ap) < 0)
		err = -EIO;
	va_end(ap);
	if (fclose(f) && !err)
		err = -errno;
	return err;
}

/* The end of a sidecar's log, to stderr. */
void dump_log(const char *path)
{
	char buf[2048];
	size_t n;
	FILE *f;

	f = fopen(path, "re");
	if (!f)
		return;
	if (fseek(f, 0, SEEK_END) == 0 && ftell(f) > (long)sizeof(buf) - 1)
		fseek(f, -(long)sizeof(buf) + 1, SEEK_END);
	else
		fseek(f, 0, SEEK_SET);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	fprintf(stderr, "---- %s ----\n%s%s---- end ----\n", path, buf,
		n && buf[n - 1] == '\n' ? "" : "\n");
}

/* Is an address of this host in 198.18.79.0/30 already? A second user of
 * the prefix (tests/integ/sidecar, another bench) would get our traffic.
 */
static int ns_prefix_in_use(char *ifname, size_t len)
{
	struct ifaddrs *ifa, *i;
	struct sockaddr_in *sin;
	int used = 0;

	if (getifaddrs(&ifa))
		return 0;
	for (i = ifa; i && !used; i = i->ifa_next) {
		sin = (struct sockaddr_in *)i->ifa_addr;
		if (!sin || sin->sin_family != AF_INET ||
		    (ntohl(sin->sin_addr.s_addr) & BENCH_NS_MASK) != BENCH_NS_NET)
			continue;
		snprintf(ifname, len, "%s", i->ifa_name);
		used = 1;
	}
	freeifaddrs(ifa);
	return used;
}

/* The upstream's network: namespace sl-bench-<pid>, veth slb<pid>h (here,
 * 198.18.79.1/30) and slb<pid>n (there, 198.18.79.2/30), as
 * tests/integ/sidecar.c builds it. Ready when the upstream port answers
 * with a reset.
 */
int netns_setup(void)
{
	struct sockaddr_in up = addr_in(BENCH_NS_IP, BENCH_UPSTREAM_PORT);
	uint64_t deadline;
	char path[64], ifname[64];
	int err;

	if (ns_prefix_in_use(ifname, sizeof(ifname))) {
		pr_warn("198.18.79.0/30 is already on %s (another bench or "
			"another bench running?): not sharing it\n",
			ifname);
		return -EADDRINUSE;
	}
	snprintf(bs.netns, sizeof(bs.netns), "sl-bench-%d", (int)getpid());
	snprintf(bs.veth, sizeof(bs.veth), "slb%d", (int)getpid() % 100000);
	bs.ns_made = 1;
	err = bench_sh("ip netns add %s && "
		 "ip link add %sh type veth peer name %sn netns %s && "
		 "ip addr add " BENCH_HOST_IP "/30 dev %sh && "
		 "ip link set %sh up && "
		 "ip -n %s addr add " BENCH_NS_IP "/30 dev %sn && "
		 "ip -n %s link set %sn up && ip -n %s link set lo up",
		 bs.netns, bs.veth, bs.veth, bs.netns, bs.veth, bs.veth,
		 bs.netns, bs.veth, bs.netns, bs.veth, bs.netns);
	if (err) {
		pr_warn("creating namespace %s with veth %sh failed (ip above)\n",
			bs.netns, bs.veth);
		return err;
	}
	snprintf(path, sizeof(path), "/var/run/netns/%s", bs.netns);
	bs.ns_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (bs.ns_fd < 0) {
		err = -errno;
		pr_warn("open %s: %s\n", path, strerror(errno));
		return err;
	}
	deadline = now_ns() + BENCH_START_MS * 1000000ull;
	while ((err = tcp_probe(up)) != -ECONNREFUSED) {
		if (bench_stop)
			return -EINTR;
		if (now_ns() >= deadline) {
			pr_warn(BENCH_NS_IP " unreachable over %sh: %s\n",
				bs.veth, strerror(-err));
			return -ETIMEDOUT;
		}
		sleep_ms(20);
	}
	return 0;
}

/* Fork and exec bin with argv, stdout and stderr into log, in cgroup cg
 * (-1: ours) and, when netns, in the bench's namespace; deathsig when we
 * die. The pid, or -errno. setns() rather than `ip netns exec`: that one
 * also remounts /sys, which hides the cgroup2 mount and the bpffs from
 * `sidelane run`.
 */
static pid_t spawn_logged(const char *bin, char *const argv[], const char *log,
			  int cg, int netns, int deathsig)
{
	pid_t pid;
	int fd;

	fflush(NULL);
	pid = fork();
	if (pid)
		return pid < 0 ? -errno : pid;
	prctl(PR_SET_PDEATHSIG, deathsig);
	if (getppid() != bs.owner)
		_exit(1);
	fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd >= 0) {
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
	}
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (fd >= 0)
		dup2(fd, STDIN_FILENO);
	if (cg >= 0 && enter_cgroup(bs.cgroup[cg])) {
		fprintf(stderr, "join %s: %s\n", bs.cgroup[cg], strerror(errno));
		_exit(126);
	}
	if (netns && setns(bs.ns_fd, CLONE_NEWNET)) {
		fprintf(stderr, "enter %s: %s\n", bs.netns, strerror(errno));
		_exit(126);
	}
	execv(bin, argv);
	fprintf(stderr, "exec %s: %s\n", bin, strerror(errno));
	_exit(127);
}

/* Wait until ready(ctx) says 0; the child exiting first or BENCH_START_MS
 * passing is a failure, its log is shown.
 */
static int wait_ready(pid_t *pid, const char *what, const char *log,
		      int (*ready)(const void *), const void *ctx)
{
	uint64_t deadline = now_ns() + BENCH_START_MS * 1000000ull;
	int st;

	for (;;) {
		if (waitpid(*pid, &st, WNOHANG) == *pid) {
			*pid = 0;
			pr_warn("%s exited (%s %d) before it was ready\n", what,
				WIFEXITED(st) ? "status" : "signal",
				WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
			dump_log(log);
			return -ECHILD;
		}
		if (!ready(ctx))
			return 0;
		if (bench_stop)
			return -EINTR;
		if (now_ns() >= deadline) {
			pr_warn("%s not ready after %d ms\n", what, BENCH_START_MS);
			dump_log(log);
			return -ETIMEDOUT;
		}
		sleep_ms(50);
	}
}

/* Start relay p: bin with argv, in p's cgroup (and the namespace), output
 * to <tmpdir>/<p>.log; ready when ready(ctx) says 0.
 */
int start_proc(enum proc p, const char *bin, char *const argv[],
	       int deathsig, int (*ready)(const void *), const void *ctx)
{
	char log[PATH_MAX];
	pid_t pid;

	proc_path(p, ".log", log, sizeof(log));
	pid = spawn_logged(bin, argv, log, procs[p].cg, procs[p].netns,
			   deathsig);
	if (pid < 0)
		return pid;
	bs.pid[p] = pid;
	return wait_ready(&bs.pid[p], cg_name[procs[p].cg], log, ready, ctx);
}

/* Ready: something accepts on the address ctx points to. */
int tcp_ready(const void *ctx)
{
	return tcp_probe(*(const struct sockaddr_in *)ctx);
}

/* Ready: the getsockopt link is pinned (capture is attached) and the proxy
 * accepts on the outbound listener. Our connect is not captured (we are
 * not in the app's cgroup): the proxy refuses it, finding no original
 * destination, and logs that.
 */
static int sidelane_ready(const void *ctx)
{
	const struct sl_sidecar *sc = ctx;
	char link[PATH_MAX + 32];

	snprintf(link, sizeof(link), "%s/link_getsockopt", sc->pin_root);
	if (access(link, F_OK))
		return -errno;
	return tcp_probe(addr_in("127.0.0.1", *sc->port));
}

/* The real binary as relay p: `sidelane run` with the config
 * <tmpdir>/<p>.yaml, the app's cgroup app, p's own, a pin root of ours
 * (*attached: we detach it, the run leaves its pins on SIGTERM).
 */
int start_sidelane_proc(enum proc p, enum cg app, const char *pin_root,
			int *attached, int (*ready)(const void *),
			const void *ctx)
{
	char cfg[PATH_MAX];
	char *argv[] = { "sidelane", "run", "--config", cfg, "--cgroup",
			 bs.cgroup[app], "--sidecar-cgroup",
			 bs.cgroup[procs[p].cg], "--pin-root", (char *)pin_root,
			 NULL };

	proc_path(p, ".yaml", cfg, sizeof(cfg));
	*attached = 1;
	/* SIGTERM, not SIGKILL: it leaves the kernel side consistent */
	return start_proc(p, "/proc/self/exe", argv, SIGTERM, ready, ctx);
}

/* sidecar: a config whose outbound port is free. */
/* sidecar: a sidelane with a config whose outbound port is free; the
 * sl-relay mode's keeps every byte in its proxy (proxy.splice false).
 */
/* BENCH_POLICY_RULES deny rules none of the bench's addresses match, so
 * that a new connection pays for a policy of that size, as in a real pod.
 */
#define BENCH_POLICY_RULES 1000

static int policy_yaml(char *buf, size_t len)
{
	size_t n = snprintf(buf, len, "policy:\n  rules:\n");
	int i;

	for (i = 0; i < BENCH_POLICY_RULES && n < len; i++)
		n += snprintf(buf + n, len - n,
			      "    - {id: %d, action: deny, cidr: \"10.%d.%d.0/24\", "
			      "ports: [\"%d\"]}\n",
			      i + 1, i / 250, i % 250, 1000 + i);
	return n < len ? 0 : -ENOSPC;
}

int start_sidelane(const struct sl_sidecar *sc)
{
	char cfg[PATH_MAX], policy[BENCH_POLICY_RULES * 96];
	int err;

	proc_path(sc->proc, ".yaml", cfg, sizeof(cfg));
	err = policy_yaml(policy, sizeof(policy));
	if (!err)
		err = set_pin_root(sc->pin_root,
				   sc->proc == PROC_RELAY ? "-relay" : "");
	if (!err)
		err = pick_port(sc->port);
	if (!err)
		err = write_text(cfg,
				 "# sidelane bench --suite sidecar\n"
				 "capture:\n"
				 "  outbound: \"127.0.0.1:%u\"\n"
				 "proxy:\n"
				 "  splice: %s\n"
				 "fastpath:\n"
				 "  app_sockets: %s\n"
				 "%s"
				 SL_BENCH_ADMIN,
				 *sc->port, sc->splice ? "true" : "false",
				 sl_app_sockets_name[bs.app_sockets], policy);
	if (err) {
		pr_warn("sidelane config %s: %s\n", cfg, strerror(-err));
		return err;
	}
	return start_sidelane_proc(sc->proc, sc->app, sc->pin_root,
				   sc->attached, sidelane_ready, sc);
}

const struct sl_sidecar sidecar_sl = {
	PROC_SIDELANE, CG_APP, bs.pin_root, &bs.outbound_port, &bs.sl_attached, 1
}, sidecar_relay = {
	PROC_RELAY, CG_APP_RELAY, bs.pin_relay, &bs.relay_port,
	&bs.relay_attached, 0
};

/* ctx: the enum proc of a haproxy. */
static int haproxy_ready(const void *ctx)
{
	uint64_t n;

	return hap_sessions(*(const enum proc *)ctx, &n);
}

/* name from $PATH, or the sbin folders a non-login shell may lack; mode:
 * the tool is what a mode measures. 0, or -ENOENT said when mode >= 0.
 */
int find_bin(const char *name, char *buf, size_t len, int mode)
{
	const char *path = getenv("PATH");
	char dirs[4096], *dir, *save = NULL;

	snprintf(dirs, sizeof(dirs), "%s:/usr/sbin:/usr/local/sbin",
		 path ? path : "");
	for (dir = strtok_r(dirs, ":", &save); dir;
	     dir = strtok_r(NULL, ":", &save)) {
		snprintf(buf, len, "%s/%s", dir, name);
		if (dir[0] == '/' && !access(buf, X_OK))
			return 0;
	}
	if (mode >= 0)
		pr_warn("%s not found: `make deps` installs it%s%s%s\n", name,
			mode < NR_MODES ? ", or leave mode " : "",
			mode < NR_MODES ? mode_name[mode] : "",
			mode < NR_MODES ? " out of --modes" : "");
	return -ENOENT;
}

/* haproxy as relay p of mode m: mode tcp, nbthread threads (0: no
 * nbthread line, haproxy's default of a thread per CPU it may run on),
 * default buffers, generous timeouts, a stats socket <p>.sock for its
 * session and thread counts; bind and server are the rest of those lines.
 */
int start_haproxy_proc(enum mode m, enum proc p, unsigned int nbthread,
		       const char *bind, const char *server)
{
	char bin[PATH_MAX], cfg[PATH_MAX], sock[PATH_MAX], threads[32] = "";
	char *argv[] = { "haproxy", "-db", "-f", cfg, NULL };
	int err;

	err = find_bin("haproxy", bin, sizeof(bin), m);
	if (err)
		return err;
	proc_path(p, ".cfg", cfg, sizeof(cfg));
	proc_path(p, ".sock", sock, sizeof(sock));
	if (nbthread)
		snprintf(threads, sizeof(threads), "    nbthread %u\n", nbthread);
	err = write_text(cfg,
			 "# sidelane bench: %s\n"
			 "global\n"
			 "%s"
			 "    stats socket %s mode 600 level user\n"
			 "defaults\n"
			 "    mode tcp\n"
			 "    timeout connect 5s\n"
			 "    timeout client 120s\n"
			 "    timeout server 120s\n"
			 "frontend bench\n"
			 "    bind %s\n"
			 "    default_backend upstream\n"
			 "backend upstream\n"
			 "    server upstream %s\n",
			 cg_name[procs[p].cg], threads, sock, bind, server);
	if (err) {
		pr_warn("haproxy config %s: %s\n", cfg, strerror(-err));
		return err;
	}
	err = start_proc(p, bin, argv, SIGKILL, haproxy_ready, &p);
	if (!err && hap_threads(p, &bs.nbthread[p]))
		pr_debug("%s: no Nbthread in `show info`\n", cg_name[procs[p].cg]);
	return err;
}

/* sidecar: haproxy mode m (haproxy: its default threads, haproxy1: one) on a
 * free port of 127.0.0.1, relaying to the upstream.
 */
int start_haproxy(enum mode m)
{
	char bind[32];
	int err;

	err = pick_port(&bs.front_port[m]);
	if (err)
		return err;
	snprintf(bind, sizeof(bind), "127.0.0.1:%u", bs.front_port[m]);
	return start_haproxy_proc(m, mode_run[m].proc[0],
				  m == MODE_HAPROXY1 ? 1 : 0, bind,
				  BENCH_NS_IP ":" SL_XSTR(BENCH_UPSTREAM_PORT));
}
