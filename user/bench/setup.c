// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* `sidelane bench`, clean-up, cgroups and the in-process modes, evidence a
 * mode carried its traffic (see bench.c).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench/internal.h"

/* ---- cleanup ---------------------------------------------------------- */

void kill_children(void)
{
	int i;

	for (i = 0; i < 2; i++) {
		if (bs.child[i] <= 0)
			continue;
		kill(bs.child[i], SIGKILL);
		waitpid(bs.child[i], NULL, 0);
		bs.child[i] = 0;
	}
}

static void bare_detach(void)
{
	if (bs.bare_msg_link >= 0) {
		close(bs.bare_msg_link);
		bs.bare_msg_link = -1;
	}
	if (bs.bare_msg_attached && bs.bare) {
		bpf_prog_detach2(bpf_program__fd(bs.bare->progs.bare_sk_msg),
				 bpf_map__fd(bs.bare->maps.bare_sockhash),
				 BPF_SK_MSG_VERDICT);
		bs.bare_msg_attached = 0;
	}
	/* destroys the sockops bpf_link too */
	bench_bare_bpf__destroy(bs.bare);
	bs.bare = NULL;
}

/* SIGTERM, then SIGKILL after BENCH_STOP_MS; reaped. Exit status or -1. */
static int stop_proc(pid_t *pid)
{
	uint64_t deadline = now_ns() + BENCH_STOP_MS * 1000000ull;
	int st = -1;

	if (*pid <= 0)
		return -1;
	kill(*pid, SIGTERM);
	while (waitpid(*pid, &st, WNOHANG) == 0) {
		if (now_ns() >= deadline) {
			kill(*pid, SIGKILL);
			waitpid(*pid, &st, 0);
			break;
		}
		sleep_ms(20);
	}
	*pid = 0;
	return st;
}

int bench_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int bench_sh(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(cmd))
		return -ENAMETOOLONG;
	pr_debug("+ %s\n", cmd);
	return system(cmd) ? -EIO : 0;
}

static void netns_teardown(void)
{
	if (bs.ns_fd >= 0) {
		close(bs.ns_fd);
		bs.ns_fd = -1;
	}
	if (!bs.ns_made)
		return;
	/* deleting the namespace deletes its veth end, and so the pair; the
	 * link del is for a namespace that never got its end
	 */
	bench_sh("ip netns del %s 2>/dev/null; ip link del %sh 2>/dev/null", bs.netns,
	   bs.veth);
	bs.ns_made = 0;
}

static void rm_tmpdir(void)
{
	char path[PATH_MAX];
	struct dirent *e;
	DIR *d;

	if (!bs.tmpdir[0])
		return;
	/* the relays' logs and configs, for a run that went wrong */
	if (getenv("SIDELANE_BENCH_KEEP")) {
		pr_info("bench: SIDELANE_BENCH_KEEP: kept %s\n", bs.tmpdir);
		bs.tmpdir[0] = '\0';
		return;
	}
	d = opendir(bs.tmpdir);
	while (d && (e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", bs.tmpdir, e->d_name);
		unlink(path);
	}
	if (d)
		closedir(d);
	if (rmdir(bs.tmpdir))
		pr_warn("rmdir %s: %s\n", bs.tmpdir, strerror(errno));
	bs.tmpdir[0] = '\0';
}

/* Remove what a sidelane left pinned under pin_root, if *attached. */
static void detach_pins(const char *pin_root, int *attached)
{
	int err;

	if (!*attached)
		return;
	err = sl_detach(pin_root);
	if (err && err != -ENOENT)
		pr_warn("detach %s: %s\n", pin_root, strerror(-err));
	*attached = 0;
}

/* Idempotent; runs from cmd_bench's exit path and from atexit(). */
void bench_cleanup(void)
{
	int i, err;

	if (bs.owner != getpid())
		return;
	kill_children();
	/* sidelane run leaves its pins on SIGTERM: detached below */
	for (i = 0; i < NR_PROCS; i++)
		stop_proc(&bs.pid[i]);
	detach_pins(bs.pin_root, &bs.sl_attached);
	detach_pins(bs.pin_relay, &bs.relay_attached);
	for (i = 0; i < 2; i++)
		detach_pins(bs.pin_ab[i], &bs.ab_attached[i]);
	bare_detach();
	netns_teardown();
	for (i = 0; i < NR_CGS; i++) {
		if (!bs.cg_made[i])
			continue;
		/* a process not ours (a sidecar's child?) may stay */
		err = sl_cgroup_remove(bs.cgroup[i], 500, 1000);
		if (err)
			pr_warn("rmdir %s: %s\n", bs.cgroup[i], strerror(-err));
		bs.cg_made[i] = 0;
	}
	rm_tmpdir();
	if (bs.shm) {
		munmap(bs.shm, bs.shm_len);
		bs.shm = NULL;
	}
}

/* ---- setup ------------------------------------------------------------ */

/* The cgroups the measured modes run in. */
int make_cgroups(const struct bench_opts *o)
{
	int need[NR_CGS] = {}, i, n, err;

	err = sl_cgroup2_mount(bs.cg_mount, sizeof(bs.cg_mount));
	if (err) {
		pr_warn("no cgroup v2 mount in /proc/mounts: %s\n",
			strerror(-err));
		return err;
	}
	for (i = 0; i < NR_MODES; i++) {
		if (!o->modes[i])
			continue;
		need[mode_run[i].client] = need[mode_run[i].server] = 1;
		for (n = 0; n < 2; n++)
			if (mode_run[i].proc[n] >= 0)
				need[procs[mode_run[i].proc[n]].cg] = 1;
	}
	for (i = 0; i < NR_CGS; i++) {
		if (!need[i])
			continue;
		n = snprintf(bs.cgroup[i], sizeof(bs.cgroup[i]),
			     "%s/sidelane-bench-%d-%s", bs.cg_mount, (int)getpid(),
			     cg_name[i]);
		if (n < 0 || (size_t)n >= sizeof(bs.cgroup[i]))
			return -ENAMETOOLONG;
		if (mkdir(bs.cgroup[i], 0755)) {
			err = -errno;
			pr_warn("mkdir %s: %s\n", bs.cgroup[i], strerror(errno));
			return err;
		}
		bs.cg_made[i] = 1;
	}
	return 0;
}

/* Sockops programs inherited from an ancestor cgroup would run in every mode
 * and make "plain" anything but plain. Returns how many are effective.
 */
int inherited_sockops(const char *cgroup)
{
	__u32 ids[16], cnt = 16;
	int fd, err;

	fd = open(cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	err = bpf_prog_query(fd, BPF_CGROUP_SOCK_OPS, BPF_F_QUERY_EFFECTIVE,
			     NULL, ids, &cnt);
	close(fd);
	return err ? err : (int)cnt;
}

int bare_attach(void)
{
	int cg_fd, prog_fd, map_fd, err;

	bs.bare = bench_bare_bpf__open_and_load();
	if (!bs.bare) {
		err = -errno;
		pr_warn("load bench_bare: %s\n", strerror(-err));
		return err;
	}
	/* sk_msg first: a socket gets the map's sk_msg program when inserted */
	prog_fd = bpf_program__fd(bs.bare->progs.bare_sk_msg);
	map_fd = bpf_map__fd(bs.bare->maps.bare_sockhash);
	err = sl_map_prog_attach(prog_fd, map_fd, BPF_SK_MSG_VERDICT,
				 &bs.bare_msg_link);
	if (err) {
		pr_warn("attach bare sk_msg: %s\n", strerror(-err));
		return err;
	}
	bs.bare_msg_attached = bs.bare_msg_link < 0;
	cg_fd = open(bs.cgroup[CG_BARE], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cg_fd < 0) {
		err = -errno;
		pr_warn("open %s: %s\n", bs.cgroup[CG_BARE], strerror(errno));
		return err;
	}
	bs.bare->links.bare_sockops =
		bpf_program__attach_cgroup(bs.bare->progs.bare_sockops, cg_fd);
	err = bs.bare->links.bare_sockops ? 0 : -errno;
	close(cg_fd);
	if (err)
		pr_warn("attach bare sockops to %s: %s\n", bs.cgroup[CG_BARE],
			strerror(-err));
	return err;
}

/* <bpffs>/sidelane-bench-<pid><suffix>, into buf (PATH_MAX). */
int set_pin_root(char *buf, const char *suffix)
{
	int n;

	n = snprintf(buf, PATH_MAX, "%s/sidelane-bench-%d%s", SL_BPFFS_DEFAULT,
		     (int)getpid(), suffix);
	return n < 0 || n >= PATH_MAX ? -ENAMETOOLONG : 0;
}

int sidelane_attach(void)
{
	int err;

	/* sl_fp_attach() mounts the bpffs if it is missing. */
	err = set_pin_root(bs.pin_root, "");
	if (err)
		return err;
	bs.sl_attached = 1; /* a partial attach is undone by sl_detach */
	err = sl_fp_attach(&(struct sl_fp_opts){
		.pin_root = bs.pin_root,
		.cgroup = bs.cgroup[CG_SIDELANE],
		/* app<->app pairs are redirected in the opt-in mode only */
		.app_sockets = SL_APP_ALL,
	});
	if (err)
		pr_warn("sl_fp_attach(%s): %s\n", bs.cgroup[CG_SIDELANE],
			strerror(-err));
	return err;
}

/* ---- redirect evidence ------------------------------------------------ */

static uint64_t percpu_sum(struct bpf_map *map)
{
	int ncpu = libbpf_num_possible_cpus();
	uint64_t sum = 0;
	__u32 zero = 0;
	uint64_t *vals;
	int i;

	if (ncpu <= 0)
		return 0;
	vals = calloc(ncpu, sizeof(*vals));
	if (!vals)
		return 0;
	if (!bpf_map_lookup_elem(bpf_map__fd(map), &zero, vals))
		for (i = 0; i < ncpu; i++)
			sum += vals[i];
	free(vals);
	return sum;
}

/* The answer of haproxy p to one command on its stats socket, into buf
 * (NUL-terminated, cut at len). 0 or -errno.
 */
static int hap_cmd(enum proc p, const char *cmd, char *buf, size_t len)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = BENCH_IO_TIMEOUT_S };
	size_t got = 0, n_cmd = strlen(cmd);
	ssize_t n;
	int fd, err = 0;

	proc_path(p, ".sock", sa.sun_path, sizeof(sa.sun_path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    write(fd, cmd, n_cmd) != (ssize_t)n_cmd) {
		err = -errno;
		goto out;
	}
	/* the socket is closed after one command */
	while (got + 1 < len && (n = read(fd, buf + got, len - got - 1)) > 0)
		got += n;
	buf[got] = '\0';
out:
	close(fd);
	return err;
}

/* Sessions haproxy's frontend "bench" accepted so far: stot of `show stat`
 * on the stats socket of haproxy p. 0 or -errno.
 */
int hap_sessions(enum proc p, uint64_t *out)
{
	char buf[16384], *line;
	int i, err;

	err = hap_cmd(p, "show stat\n", buf, sizeof(buf));
	if (err)
		return err;
	/* CSV: pxname,svname,qcur,qmax,scur,smax,slim,stot,... */
	line = strstr(buf, "\nbench,FRONTEND,");
	for (i = 0; line && i < 7; i++)
		line = strchr(line + 1, ',');
	if (!line)
		return -ENOENT;
	*out = strtoull(line + 1, NULL, 10);
	return 0;
}

/* The threads haproxy p runs: Nbthread of `show info`. 0 or -errno. */
int hap_threads(enum proc p, unsigned int *out)
{
	char buf[8192], *line;
	int err;

	err = hap_cmd(p, "show info\n", buf, sizeof(buf));
	if (err)
		return err;
	line = strstr(buf, "\nNbthread: ");
	if (!line)
		return -ENOENT;
	*out = strtoul(line + sizeof("\nNbthread: ") - 1, NULL, 10);
	return 0;
}

/* CPU time used so far by every process that ran in cgroup, in seconds:
 * usage_usec of its cpu.stat, there without the cpu controller.
 */
static int cg_cpu(enum cg cg, double *sec)
{
	char path[PATH_MAX + 16], key[32];
	unsigned long long v;
	int err = -ENOENT;
	FILE *f;

	snprintf(path, sizeof(path), "%s/cpu.stat", bs.cgroup[cg]);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fscanf(f, "%31s %llu", key, &v) == 2)
		if (!strcmp(key, "usage_usec")) {
			*sec = v / 1e6;
			err = 0;
			break;
		}
	fclose(f);
	return err;
}

/* The host's busy CPU time so far, in seconds: the "cpu" line of
 * /proc/stat less idle and iowait (USER_HZ ticks).
 */
int host_busy(double *sec)
{
	unsigned long long v[10] = {}, busy = 0;
	FILE *f = fopen("/proc/stat", "re");
	int n, i;

	if (!f)
		return -errno;
	n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu",
		   &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7],
		   &v[8], &v[9]);
	fclose(f);
	if (n < 8)
		return -EIO;
	/* user nice system idle iowait irq softirq steal (guest is in user) */
	for (i = 0; i < 8; i++)
		if (i != 3 && i != 4)
			busy += v[i];
	*sec = (double)busy / sysconf(_SC_CLK_TCK);
	return 0;
}

/* CPU seconds used so far by the relays of mode m (0 without any). */
int proxy_cpu(enum mode m, double *sec)
{
	double v;
	int i, err;

	*sec = 0;
	for (i = 0; i < 2; i++) {
		if (mode_run[m].proc[i] < 0)
			continue;
		err = cg_cpu(procs[mode_run[m].proc[i]].cg, &v);
		if (err)
			return err;
		*sec += v;
	}
	return 0;
}

int read_accel(enum mode m, struct accel *a)
{
	static struct sl_cap_status cs; /* 4 KiB of path in it */
	struct sl_splice_status sp;
	struct sl_counters c;
	const char *pin;
	int err;

	memset(a, 0, sizeof(*a));
	switch (m) {
	case MODE_BARE:
		a->redirected = percpu_sum(bs.bare->maps.bare_redirected);
		a->passed = percpu_sum(bs.bare->maps.bare_passed);
		return 0;
	case MODE_SIDELANE:
		err = sl_fp_read_counters(bs.pin_root, &c);
		if (err)
			return err;
		a->redirected = c.redirect_ok;
		a->passed = c.redirect_failed + c.pass_plain;
		return 0;
	case MODE_SIDECAR:
	case MODE_RELAY:
		/* the app <-> proxy hop: is it accelerated? */
		pin = m == MODE_RELAY ? bs.pin_relay : bs.pin_root;
		err = sl_fp_read_counters(pin, &c);
		if (!err)
			err = sl_cap_status(pin, &cs);
		if (err)
			return err;
		a->redirected = c.redirect_ok;
		a->passed = c.redirect_failed + c.pass_plain;
		a->inserted = c.sock_inserted;
		a->fallback = c.backlog_fallback;
		a->captured = cs.stats.reason[SL_CR_CAPTURED];
		if (!sl_splice_status_read(pin, &sp)) {
			int d, i;

			a->pushed = sp.st.dir[SL_SPD_UP].pushed_msgs;
			a->pushed_bytes = sp.st.dir[SL_SPD_UP].pushed_bytes;
			a->down = sp.st.dir[SL_SPD_DOWN].pushed_msgs;
			a->down_bytes = sp.st.dir[SL_SPD_DOWN].pushed_bytes;
			for (d = 0; d < SL_SPD_NR; d++)
				for (i = 0; i < SL_SPW_NR; i++)
					*(d == SL_SPD_UP ? &a->relayed_up :
							   &a->relayed_down) +=
						sp.st.dir[d].relay[i];
			a->full_up = sp.st.dir[SL_SPD_UP].relay[SL_SPW_FULL];
			a->full_down = sp.st.dir[SL_SPD_DOWN].relay[SL_SPW_FULL];
			a->overlaps = sp.st.dup_skbs;
		}
		return 0;
	case MODE_TLS_SL:
		/* client <-> A and B <-> server: both on a fast path? */
		err = sl_fp_read_counters(bs.pin_ab[0], &c);
		if (err)
			return err;
		a->redirected = c.redirect_ok;
		a->passed = c.redirect_failed + c.pass_plain;
		err = sl_fp_read_counters(bs.pin_ab[1], &c);
		a->redirected_b = c.redirect_ok;
		a->passed_b = c.redirect_failed + c.pass_plain;
		return err;
	case MODE_HAPROXY:
	case MODE_HAPROXY1:
	case MODE_TLS_HAP:
		/* the sidecar, or A */
		err = hap_sessions(mode_run[m].proc[0], &a->served);
		if (err)
			pr_warn("haproxy stats socket: %s\n", strerror(-err));
		return err;
	default:
		return 0;
	}
}
