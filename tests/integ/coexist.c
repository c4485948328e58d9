// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Integration test (tests/integ): coexistence with another owner's programs
 * (user/loader/coexist.c, the rule in user/loader/coexist.h). In a pod-like tree of fresh
 * cgroups (P, app = P/app, sidecar = P/app/side) the test attaches programs
 * of its own making, loaded from raw instructions:
 * - cx_allow4, a cgroup/connect4 that allows everything, on the app's cgroup;
 * - cx_sockops on P, a sock_ops that puts established sockets in its own
 *   sockhash cx_hash, which carries an sk_msg program cx_msg (another mesh);
 * then runs the real `sidelane run` and checks:
 * - `status --json` lists cx_allow4 by id as "alongside", running before
 *   ours; cx_sockops as inherited (one level up, for app and sidecar),
 *   running after ours and feeding cx_hash; cx_msg as a warning, fed by
 *   cx_sockops; none of sidelane's own programs; the text form too;
 * - connections still work: bytes intact, redirected by sidelane, and no
 *   socket sits in both sockhashes (the kernel refuses the second: EBUSY);
 * - `run` logs one line per foreign program (once main.c calls
 *   sl_coexist_report(); skipped before);
 * - a foreign sock_ops on the app's own cgroup makes `run` refuse, naming
 *   its id, and leave nothing pinned.
 * Every program, link, cgroup and pin is removed on every exit path.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <bpf/bpf.h>
#include "loader/pins.h"
#include "sidelane.h"
#include "harness.h"
#include "loader/fastpath_user.h"
#include "lib/cgroup.h"
#include "loader/coexist.h"

#define LOG_DIR "build/tests/logs"
#define READY_MS 20000

/* Raw instructions, as the kernel selftests spell them. */
#define MOV64_IMM(dst, v)                                                      \
	((struct bpf_insn){ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = dst, \
			    .imm = v })
#define MOV64_REG(dst, src)                                                    \
	((struct bpf_insn){ .code = BPF_ALU64 | BPF_MOV | BPF_X, .dst_reg = dst, \
			    .src_reg = src })
#define ADD64_IMM(dst, v)                                                      \
	((struct bpf_insn){ .code = BPF_ALU64 | BPF_ADD | BPF_K, .dst_reg = dst, \
			    .imm = v })
#define LDX_W(dst, src, o)                                                     \
	((struct bpf_insn){ .code = BPF_LDX | BPF_MEM | BPF_W, .dst_reg = dst,  \
			    .src_reg = src, .off = o })
#define STX_W(dst, src, o)                                                     \
	((struct bpf_insn){ .code = BPF_STX | BPF_MEM | BPF_W, .dst_reg = dst,  \
			    .src_reg = src, .off = o })
#define JEQ_IMM(dst, v, o)                                                     \
	((struct bpf_insn){ .code = BPF_JMP | BPF_JEQ | BPF_K, .dst_reg = dst,  \
			    .imm = v, .off = o })
#define JA(o) ((struct bpf_insn){ .code = BPF_JMP | BPF_JA, .off = o })
#define CALL(fn) ((struct bpf_insn){ .code = BPF_JMP | BPF_CALL, .imm = fn })
#define EXIT() ((struct bpf_insn){ .code = BPF_JMP | BPF_EXIT })
/* two instructions: dst = the map behind fd */
#define LD_MAP_FD(dst, fd)                                                     \
	((struct bpf_insn){ .code = BPF_LD | BPF_DW | BPF_IMM, .dst_reg = dst,  \
			    .src_reg = BPF_PSEUDO_MAP_FD, .imm = fd }),         \
		((struct bpf_insn){ 0 })

/* Everything the test made, for the one cleanup. */
static struct {
	struct th_env env; /* P, made and removed by the harness */
	char app[PATH_MAX + 16], side[PATH_MAX + 32], app2[PATH_MAX + 16];
	char pin_root[PATH_MAX], pin_root2[PATH_MAX + 16];
	char cfg[PATH_MAX], log[PATH_MAX];
	pid_t sidelane;
	int hash_fd, msg_fd, msg_link, sockops_fd, sockops_link;
	int allow4_fd, allow4_link, sockops2_fd, sockops2_link;
	__u32 allow4_id, sockops_id, msg_id, hash_id, sockops2_id;
	bool entered;
} t = {
	.hash_fd = -1, .msg_fd = -1, .msg_link = -1, .sockops_fd = -1,
	.sockops_link = -1, .allow4_fd = -1, .allow4_link = -1,
	.sockops2_fd = -1, .sockops2_link = -1,
};

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void sleep_ms(int ms)
{
	usleep(ms * 1000);
}

/* `sidelane detach` of a pin root, if it is there. */
static void detach_pins(const char *pin_root)
{
	char *argv[] = { (char *)th_sidelane_bin(), "detach", "--pin-root",
			 (char *)pin_root, NULL };
	char out[4096];

	if (pin_root[0] && !access(pin_root, F_OK))
		th_run(NULL, NULL, argv, out, sizeof(out), 10000);
}

static void rmdir_wait(const char *path)
{
	int i;

	for (i = 0; path[0] && i < 150 && rmdir(path) && errno == EBUSY; i++)
		sleep_ms(20); /* a killed sidelane still exiting */
}

static void cleanup(void *arg)
{
	(void)arg;
	if (t.entered)
		sl_cgroup_join(t.env.orig_cgroup);
	t.entered = false;
	if (t.sidelane > 0) {
		kill(t.sidelane, SIGTERM);
		th_wait(t.sidelane, 10000);
		t.sidelane = 0;
	}
	detach_pins(t.pin_root);
	detach_pins(t.pin_root2);
	/* links first (closing the last fd detaches them), then programs */
	close_fd(&t.allow4_link);
	close_fd(&t.sockops_link);
	close_fd(&t.sockops2_link);
	close_fd(&t.msg_link);
	if (t.msg_fd >= 0 && t.hash_fd >= 0)
		bpf_prog_detach2(t.msg_fd, t.hash_fd, BPF_SK_MSG_VERDICT);
	close_fd(&t.allow4_fd);
	close_fd(&t.sockops_fd);
	close_fd(&t.sockops2_fd);
	close_fd(&t.msg_fd);
	close_fd(&t.hash_fd);
	rmdir_wait(t.side);
	rmdir_wait(t.app);
	rmdir_wait(t.app2);
	if (t.cfg[0])
		unlink(t.cfg);
}

static __u32 prog_id(int fd)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);

	return bpf_obj_get_info_by_fd(fd, &info, &len) ? 0 : info.id;
}

static int load(enum bpf_prog_type type, enum bpf_attach_type expected,
		const char *name, const struct bpf_insn *insns, size_t n)
{
	static char vlog[8192];
	LIBBPF_OPTS(bpf_prog_load_opts, o, .expected_attach_type = expected,
		    .log_buf = vlog, .log_size = sizeof(vlog));
	int fd;

	vlog[0] = '\0';
	fd = bpf_prog_load(type, name, "GPL", insns, n, &o);
	if (fd < 0)
		th_info("loading %s: %s %s", name, strerror(errno), vlog);
	return fd;
}

static int cgroup_link(int prog_fd, const char *cg, enum bpf_attach_type type)
{
	int cg_fd = open(cg, O_RDONLY | O_DIRECTORY | O_CLOEXEC), fd;

	if (cg_fd < 0)
		return -1;
	fd = bpf_link_create(prog_fd, cg_fd, type, NULL);
	close(cg_fd);
	return fd;
}

/* The other "mesh": cx_hash (local port -> socket) with cx_msg on it, and
 * cx_sockops on P putting every established socket in it; cx_allow4 on the
 * app's cgroup; cx_sockops2 (does nothing) for the refusal.
 */
static bool make_foreign(void)
{
	const struct bpf_insn allow[] = { MOV64_IMM(0, 1), EXIT() };
	const struct bpf_insn sockops[] = {
		MOV64_REG(6, 1),
		LDX_W(2, 6, offsetof(struct bpf_sock_ops, op)),
		JEQ_IMM(2, BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB, 2),
		JEQ_IMM(2, BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB, 1),
		JA(9),
		LDX_W(2, 6, offsetof(struct bpf_sock_ops, local_port)),
		STX_W(10, 2, -4),
		MOV64_REG(1, 6),
		LD_MAP_FD(2, 0), /* imm set below */
		MOV64_REG(3, 10),
		ADD64_IMM(3, -4),
		MOV64_IMM(4, BPF_ANY),
		CALL(BPF_FUNC_sock_hash_update),
		MOV64_IMM(0, 1),
		EXIT(),
	};
	struct bpf_insn so[sizeof(sockops) / sizeof(sockops[0])];
	struct bpf_map_info mi = {};
	__u32 len = sizeof(mi);

	t.hash_fd = bpf_map_create(BPF_MAP_TYPE_SOCKHASH, "cx_hash", 4, 8, 64, NULL);
	if (t.hash_fd < 0 || bpf_obj_get_info_by_fd(t.hash_fd, &mi, &len))
		return false;
	t.hash_id = mi.id;
	memcpy(so, sockops, sizeof(so));
	so[8].imm = t.hash_fd;
	t.msg_fd = load(BPF_PROG_TYPE_SK_MSG, BPF_SK_MSG_VERDICT, "cx_msg", allow, 2);
	t.sockops_fd = load(BPF_PROG_TYPE_SOCK_OPS, 0, "cx_sockops", so,
			    sizeof(so) / sizeof(so[0]));
	t.allow4_fd = load(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_INET4_CONNECT,
			   "cx_allow4", allow, 2);
	t.sockops2_fd = load(BPF_PROG_TYPE_SOCK_OPS, 0, "cx_sockops2", allow, 2);
	if (t.msg_fd < 0 || t.sockops_fd < 0 || t.allow4_fd < 0 ||
	    t.sockops2_fd < 0)
		return false;
	/* sockmap links since 6.10; the map keeps an attached program else */
	t.msg_link = bpf_link_create(t.msg_fd, t.hash_fd, BPF_SK_MSG_VERDICT, NULL);
	if (t.msg_link < 0 &&
	    bpf_prog_attach(t.msg_fd, t.hash_fd, BPF_SK_MSG_VERDICT, 0))
		return false;
	t.allow4_id = prog_id(t.allow4_fd);
	t.sockops_id = prog_id(t.sockops_fd);
	t.msg_id = prog_id(t.msg_fd);
	t.sockops2_id = prog_id(t.sockops2_fd);
	return true;
}

/* The object of the "coexist" array whose "id" is id, into obj. */
static bool cx_entry(const char *json, __u32 id, char *obj, size_t len)
{
	const char *arr = strstr(json, "\"coexist\":["), *s, *e;
	char key[32];

	if (!arr)
		return false;
	snprintf(key, sizeof(key), "{\"id\":%u,", id);
	s = strstr(arr, key);
	e = s ? strchr(s, '}') : NULL;
	if (!e || (size_t)(e - s + 2) > len)
		return false;
	memcpy(obj, s, e - s + 1);
	obj[e - s + 1] = '\0';
	return true;
}

static bool has(const char *obj, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static bool has(const char *obj, const char *fmt, ...)
{
	char want[PATH_MAX + 64];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(want, sizeof(want), fmt, ap);
	va_end(ap);
	return strstr(obj, want);
}

/* An entry of the coexist array named sl_*: one of ours, unless it is
 * another sidelane's on the node (another pod's, or a test beside this
 * one): on a sockmap that is not ours, fed from none of our cgroups, so
 * listed as alongside. 1 when such an entry is not of that kind.
 */
static int foreign_sidelane(const char *arr)
{
	const char *p = arr, *open, *close;
	char obj[2048];

	while ((p = strstr(p, "\"name\":\"sl_"))) {
		open = p;
		while (open > arr && *open != '{')
			open--;
		close = strchr(p, '}'); /* the entries hold no objects */
		if (!close)
			return 1;
		snprintf(obj, sizeof(obj), "%.*s", (int)(close - open + 1), open);
		if (!has(obj, "\"where\":\"sockmap\"") || !has(obj, "\"fed_by\":0") ||
		    !has(obj, "\"sidelane_map\":false") ||
		    !has(obj, "\"action\":\"alongside\""))
			return 1;
		p = close;
	}
	return 0;
}

static void check_status_json(const char *json)
{
	const char *name = "coexist: status --json lists the foreign connect4 by id, "
			   "alongside, before ours";
	char obj[2048], arr[PATH_MAX];
	const char *a;

	if (TH_CHECK(cx_entry(json, t.allow4_id, obj, sizeof(obj)), name,
		     "no entry for id %u in: %.3000s", t.allow4_id, json) &&
	    TH_CHECK(has(obj, "\"name\":\"cx_allow4\"") &&
			     has(obj, "\"attach_type\":\"connect4\"") &&
			     has(obj, "\"where\":\"own\"") &&
			     has(obj, "\"action\":\"alongside\"") &&
			     has(obj, "\"cgroup\":\"%s\"", t.app) &&
			     has(obj, "\"runs\":true") &&
			     has(obj, "\"order\":\"before\""),
		     name, "%s", obj))
		th_pass(name);

	name = "coexist: the foreign sock_ops on the ancestor is inherited, after ours, "
	       "feeding its sockhash";
	if (TH_CHECK(cx_entry(json, t.sockops_id, obj, sizeof(obj)), name,
		     "no entry for id %u", t.sockops_id) &&
	    TH_CHECK(has(obj, "\"name\":\"cx_sockops\"") &&
			     has(obj, "\"attach_type\":\"sock_ops\"") &&
			     has(obj, "\"where\":\"inherited\"") &&
			     has(obj, "\"cgroup\":\"%s\"", t.env.cgroup) &&
			     has(obj, "\"levels_up\":1") &&
			     has(obj, "\"applies_to\":[\"app\",\"sidecar\"]") &&
			     has(obj, "\"order\":\"after\"") &&
			     has(obj, "\"action\":\"warn\"") &&
			     has(obj, "\"feeds_map\":%u", t.hash_id),
		     name, "%s", obj))
		th_pass(name);

	name = "coexist: the other mesh's sk_msg is a warning, fed by its sock_ops";
	if (TH_CHECK(cx_entry(json, t.msg_id, obj, sizeof(obj)), name,
		     "no entry for id %u", t.msg_id) &&
	    TH_CHECK(has(obj, "\"attach_type\":\"sk_msg\"") &&
			     has(obj, "\"where\":\"sockmap\"") &&
			     has(obj, "\"map_id\":%u", t.hash_id) &&
			     has(obj, "\"map_name\":\"cx_hash\"") &&
			     has(obj, "\"fed_by\":%u", t.sockops_id) &&
			     has(obj, "\"sidelane_map\":false") &&
			     has(obj, "\"action\":\"warn\""),
		     name, "%s", obj))
		th_pass(name);

	name = "coexist: none of sidelane's own programs is listed";
	a = strstr(json, "\"coexist\":[");
	snprintf(arr, sizeof(arr), "%s", a ? a : "");
	if (TH_CHECK(a, name, "no coexist array") &&
	    TH_CHECK(!foreign_sidelane(arr), name, "%s", arr))
		th_pass(name);
}

/* A connection in the app's cgroup, through both connect4 programs and
 * both sock_ops: bytes intact, redirected by ours, and no socket in both
 * sockhashes.
 */
static void check_traffic(void)
{
	const char *name = "coexist: connections work beside the foreign programs, "
			   "accelerated by sidelane";
	struct sl_counters c0 = {}, c1 = {};
	struct sl_sock_key k = {};
	unsigned char out[4096], in[4096];
	int cfd = -1, sfd = -1, i, both = 0, ours = 0, theirs = 0;
	__u64 cookie;

	sl_fp_read_counters(t.pin_root, &c0);
	t.entered = !sl_cgroup_join(t.app);
	if (!TH_CHECK(t.entered, name, "joining %s: %s", t.app, strerror(errno)))
		return;
	i = th_tcp_pair("127.0.0.1", "127.0.0.1", &cfd, &sfd);
	t.entered = !!sl_cgroup_join(t.env.orig_cgroup);
	if (!TH_CHECK(!i, name, "tcp pair: %s", strerror(-i)))
		goto out;
	for (i = 0; i < 8; i++) {
		size_t got = 0;
		ssize_t n;

		th_fill(out, sizeof(out), 77 + i);
		if (!TH_CHECK(send(i % 2 ? sfd : cfd, out, sizeof(out), 0) ==
				      (ssize_t)sizeof(out),
			      name, "send: %s", strerror(errno)))
			goto out;
		while (got < sizeof(in) &&
		       (n = recv(i % 2 ? cfd : sfd, in + got, sizeof(in) - got, 0)) > 0)
			got += n;
		if (!TH_CHECK(got == sizeof(in) && !memcmp(in, out, sizeof(in)), name,
			      "round %d: %zu bytes, %s", i, got,
			      got == sizeof(in) ? "corrupted" : "short"))
			goto out;
	}
	sl_fp_read_counters(t.pin_root, &c1);
	/* A socket takes the programs of the first sockmap it enters and the
	 * second insert fails (EBUSY): ours runs first (the report says the
	 * other sock_ops runs after ours), so both are ours, none theirs.
	 */
	for (i = 0; i < 2; i++) {
		int fd = i ? sfd : cfd, in_ours, in_theirs;
		int hfd = sl_pin_open(t.pin_root, SL_MAP_SOCKHASH);
		struct sockaddr_in a;
		socklen_t len = sizeof(a);
		__u32 port;

		th_sock_key(fd, &k);
		in_ours = hfd >= 0 && !bpf_map_lookup_elem(hfd, &k, &cookie);
		if (hfd >= 0)
			close(hfd);
		getsockname(fd, (struct sockaddr *)&a, &len);
		port = ntohs(a.sin_port);
		in_theirs = !bpf_map_lookup_elem(t.hash_fd, &port, &cookie);
		both += in_ours && in_theirs;
		ours += in_ours;
		theirs += in_theirs;
	}
	th_info("sockets in sidelane's sockhash: %d, in the other mesh's: %d", ours,
		theirs);
	if (TH_CHECK(!both, name, "a socket sits in both sockhashes") &&
	    TH_CHECK(ours == 2 && !theirs, name,
		     "%d socket(s) in ours, %d in the other mesh's: want 2, 0", ours,
		     theirs) &&
	    TH_CHECK(c1.redirect_ok > c0.redirect_ok, name,
		     "not redirected (redirect_ok %llu -> %llu, insert failed %llu)",
		     (unsigned long long)c0.redirect_ok,
		     (unsigned long long)c1.redirect_ok,
		     (unsigned long long)c1.sock_insert_failed))
		th_pass(name);
out:
	if (cfd >= 0)
		close(cfd);
	if (sfd >= 0)
		close(sfd);
}

static void check_run_log(void)
{
	const char *name = "coexist: run logs one line per foreign program at start";
	char want[128];

	if (!th_file_has(t.log, "coexist:")) {
		th_skip(name, "sl_coexist_report() is not called from main.c yet");
		return;
	}
	snprintf(want, sizeof(want), "connect4 program %u \"cx_allow4\"", t.allow4_id);
	if (!TH_CHECK(th_file_has(t.log, want), name, "no line with '%s'", want))
		goto dump;
	snprintf(want, sizeof(want), "sock_ops program %u \"cx_sockops\"", t.sockops_id);
	if (!TH_CHECK(th_file_has(t.log, want), name, "no line with '%s'", want))
		goto dump;
	snprintf(want, sizeof(want), "sk_msg program %u \"cx_msg\"", t.msg_id);
	if (!TH_CHECK(th_file_has(t.log, want), name, "no line with '%s'", want))
		goto dump;
	th_pass(name);
	return;
dump:
	th_dump_log(t.log);
}

static void check_text(void)
{
	const char *name = "coexist: status (text) names them";
	char *argv[] = { (char *)th_sidelane_bin(), "status", "--pin-root",
			 t.pin_root, NULL };
	static char out[65536];
	char want[128];
	int st;

	st = th_run(NULL, NULL, argv, out, sizeof(out), 20000);
	snprintf(want, sizeof(want), "connect4 program %u \"cx_allow4\"", t.allow4_id);
	if (TH_CHECK(st == 0, name, "status exit %d: %s", st, out) &&
	    TH_CHECK(strstr(out, "other program(s) (rule: README"), name,
		     "no coexist section: %s", out) &&
	    TH_CHECK(strstr(out, want) && strstr(out, "CONFLICT") == NULL &&
			     strstr(out, "WARNING: sockets of these cgroups are offered "
					 "to this sockmap too"),
		     name, "%s", strstr(out, "coexist:") ?: out))
		th_pass(name);
}

/* A foreign sock_ops directly on the app's cgroup: run refuses, naming it. */
static void check_refuse(void)
{
	const char *name = "coexist: a foreign sock_ops on the app's own cgroup makes run "
			   "refuse, naming it";
	char *argv[] = { (char *)th_sidelane_bin(), "run", "--config", t.cfg,
			 "--cgroup", t.app2, "--pin-root", t.pin_root2, NULL };
	static char out[65536];
	char want[96];
	struct sl_coexist *cx = calloc(1, sizeof(*cx));
	unsigned int k;
	bool listed = false;
	int st;

	if (!TH_CHECK(cx && !mkdir(t.app2, 0755), name, "mkdir %s: %s", t.app2,
		      strerror(errno)))
		goto out;
	t.sockops2_link = cgroup_link(t.sockops2_fd, t.app2, BPF_CGROUP_SOCK_OPS);
	if (!TH_CHECK(t.sockops2_link >= 0, name, "attach: %s", strerror(errno)))
		goto out;
	st = th_run(NULL, NULL, argv, out, sizeof(out), 30000);
	snprintf(want, sizeof(want), "sock_ops program id %u", t.sockops2_id);
	if (!TH_CHECK(st == 1, name, "exit %d, want 1: %s", st, out) ||
	    !TH_CHECK(strstr(out, want), name, "'%s' not in: %s", want, out) ||
	    !TH_CHECK(access(t.pin_root2, F_OK), name, "%s left behind", t.pin_root2))
		goto out;
	/* what the report says about it (logged at start once main.c calls it) */
	sl_coexist_scan(t.app2, NULL, NULL, cx);
	for (k = 0; k < cx->n; k++)
		listed |= cx->progs[k].id == t.sockops2_id &&
			  cx->progs[k].action == SL_CX_REFUSE &&
			  cx->progs[k].where == SL_CX_OWN &&
			  !strcmp(cx->progs[k].name, "cx_sockops2");
	if (!TH_CHECK(listed, name, "the scan does not call it a conflict"))
		goto out;
	if (strstr(out, "coexist:") &&
	    !TH_CHECK(strstr(out, "\"cx_sockops2\"") && strstr(out, "CONFLICT"), name,
		      "the coexist line does not name it: %s", out))
		goto out;
	th_pass(name);
out:
	free(cx);
	close_fd(&t.sockops2_link);
}

int main(void)
{
	char cfgtext[256], *argv[] = { (char *)th_sidelane_bin(), "status",
				       "--pin-root", t.pin_root, "--json", NULL };
	static char json[131072];
	const char *name = "coexist: setup";
	int port, st, err;

	setvbuf(stdout, NULL, _IOLBF, 0);
	th_watchdog(120, "coexist");
	if (access(th_sidelane_bin(), X_OK)) {
		th_skip(name, "no sidelane binary (make first)");
		return th_summary();
	}
	if (!TH_CHECK(!th_env_setup(&t.env, "coexist", false), name, "cgroup: %s",
		      strerror(errno)) ||
	    !TH_CHECK(!th_cleanup_push(cleanup, NULL), name, "cleanup slots"))
		goto out;
	snprintf(t.app, sizeof(t.app), "%s/app", t.env.cgroup);
	snprintf(t.side, sizeof(t.side), "%s/side", t.app);
	snprintf(t.app2, sizeof(t.app2), "%s/app2", t.env.cgroup);
	snprintf(t.pin_root, sizeof(t.pin_root), "%s", t.env.pin_root);
	snprintf(t.pin_root2, sizeof(t.pin_root2), "%s-refused", t.env.pin_root);
	snprintf(t.cfg, sizeof(t.cfg), "/tmp/sidelane-coexist-%d.yaml", (int)getpid());
	mkdir(LOG_DIR, 0755);
	snprintf(t.log, sizeof(t.log), LOG_DIR "/sidelane-%s.log", t.env.name);
	port = th_free_port();
	snprintf(cfgtext, sizeof(cfgtext),
		 "capture:\n  outbound: \"127.0.0.1:%d\"\nadmin:\n  listen: \"\"\n"
		 "fastpath:\n  app_sockets: all\n",
		 port);
	if (!TH_CHECK(port > 0 && !th_write_text(t.cfg, cfgtext), name,
		      "config: %s", strerror(errno)) ||
	    !TH_CHECK(!mkdir(t.app, 0755) && !mkdir(t.side, 0755), name,
		      "mkdir: %s", strerror(errno)) ||
	    !TH_CHECK(make_foreign(), name, "loading the foreign programs: %s",
		      strerror(errno)))
		goto out;
	t.allow4_link = cgroup_link(t.allow4_fd, t.app, BPF_CGROUP_INET4_CONNECT);
	t.sockops_link = cgroup_link(t.sockops_fd, t.env.cgroup, BPF_CGROUP_SOCK_OPS);
	if (!TH_CHECK(t.allow4_link >= 0 && t.sockops_link >= 0, name,
		      "attaching the foreign programs: %s", strerror(errno)))
		goto out;
	err = th_start_run(t.cfg, t.app, t.side, t.pin_root, t.log, READY_MS,
			   &t.sidelane);
	if (!TH_CHECK(!err, name, "sidelane run: %s (log shown)", strerror(-err)))
		goto out;
	th_pass(name);

	st = th_run(NULL, NULL, argv, json, sizeof(json), 20000);
	if (TH_CHECK(st == 0, "coexist: status --json", "exit %d: %s", st, json))
		check_status_json(json);
	check_text();
	check_traffic();
	check_run_log();
	check_refuse();
out:
	th_cleanup_pop(cleanup, NULL, true);
	name = "coexist: teardown";
	if (TH_CHECK(!th_env_teardown(&t.env), name, "left something behind") &&
	    TH_CHECK(access(t.pin_root, F_OK) && access(t.pin_root2, F_OK) &&
			     access(t.app, F_OK),
		     name, "a pin root or cgroup is left"))
		th_pass(name);
	if (!th_failed())
		unlink(t.log);
	return th_summary();
}
