/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Integration test harness: a fresh cgroup (and pin root) per environment, the
 * real `build/sidelane run` attached to it, pinned maps read back, and
 * kernel-selftest-style reporting, a test PKI (openssl CLI). Every resource
 * is removed on every exit path.
 */
#ifndef HARNESS_H
#define HARNESS_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>
#include "fastpath.h"

/* A sanitizer build (make test-san) runs everything 2-4 times slower, so
 * a test's bound on a delay is stretched by TH_SLOW; and ASan keeps freed
 * memory in a 256 MiB quarantine, so a bound on memory growth says nothing
 * there (LeakSanitizer checks leaks at exit): TH_MEM_SLACK_KIB lets it be.
 */
#ifdef __SANITIZE_ADDRESS__
#define TH_SLOW 4
#define TH_MEM_SLACK_KIB(kib) (512 * 1024)
#else
#define TH_SLOW 1
#define TH_MEM_SLACK_KIB(kib) (kib)
#endif

struct th_env {
	char name[64]; /* unique: "<test>-<pid>-<n>" */
	char cgroup[PATH_MAX]; /* absolute path on the cgroup2 mount */
	char pin_root[PATH_MAX]; /* /sys/fs/bpf/sidelane-test-<name> */
	char orig_cgroup[PATH_MAX]; /* where this process was before th_enter() */
	pid_t sidelane; /* `sidelane run` child, 0 for a plain environment */
	bool accelerated;
	/* What this env created, so teardown removes exactly that. */
	bool cgroup_made; /* we mkdir'ed cgroup */
	bool pins_made; /* we started sidelane on pin_root (it did not exist) */
	bool detached; /* th_env_detach() already ran */
	bool entered; /* this process is in cgroup (or sidecar_cgroup) */
	char log[PATH_MAX]; /* stdout+stderr of `sidelane run` */
	/* With th_env_opts.sidecar: a second cgroup given to `sidelane run`
	 * as --sidecar-cgroup; sockets made in it are the sidecar's.
	 */
	char sidecar_cgroup[PATH_MAX];
	bool sidecar_made;
};

/* How th_env_setup_opts() starts `sidelane run`. */
struct th_env_opts {
	bool accelerated; /* false: a plain cgroup, no sidelane */
	/* --app-sockets; NULL: "all", the mode in which every local pair
	 * is redirected (what the fast path tests exercise)
	 */
	const char *app_sockets;
	bool sidecar; /* also make sidecar_cgroup */
};

/* Create the cgroup; when accelerated, start `sidelane run --cgroup ..
 * --pin-root ..` and wait until its link pin appears. 0 or -errno.
 */
int th_env_setup(struct th_env *env, const char *name, bool accelerated);
/* The same with options; th_env_setup() is opts { accelerated }. */
int th_env_setup_opts(struct th_env *env, const char *name,
		      const struct th_env_opts *opts);
/* th_env_setup() then th_enter(), reported as the subtest "<test>/<mode>:
 * setup" (mode plain or accel): passes, fails, or skips when there is no
 * sidelane binary (a failure under CI=true). True when the env is ready.
 */
bool th_env_start(struct th_env *env, const char *test, bool accelerated);
/* th_env_setup_opts() then th_enter(), reported as "<test>/<mode>: setup". */
bool th_env_start_opts(struct th_env *env, const char *test, const char *mode,
		       const struct th_env_opts *opts);
/* env->log: build/tests/logs/sidelane-<name>.log (the folder made); the
 * harness removes it at teardown unless something went wrong.
 */
void th_env_log_path(struct th_env *env);
/* Leave the cgroup, stop sidelane, `sidelane detach`, rmdir the cgroup.
 * Safe on a partly set up env. Returns 0, or -errno if something was left.
 */
int th_env_teardown(struct th_env *env);
/* Move the calling process into env's cgroup (sockets created afterwards
 * belong to it) / back to where it was.
 */
int th_enter(struct th_env *env);
int th_leave(struct th_env *env);
/* Move the calling process into env's sidecar cgroup; th_leave() or
 * th_enter() moves it on.
 */
int th_enter_sidecar(struct th_env *env);

/* Summed counters / entry count of a pinned map of an accelerated env. */
int th_counters(const struct th_env *env, struct sl_counters *out);
struct sl_adm_stats;
/* Summed admission counters (include/admission.h) of an accelerated env. */
int th_adm_stats(const struct th_env *env, struct sl_adm_stats *out);
int th_map_entries(const struct th_env *env, const char *map_name);

/* Run argv (PATH searched) in env's cgroup (NULL: ours), after prep() in the
 * child if given (non-zero: exit 125); its stdout and stderr into out.
 * Exit status, or -errno / -ETIMEDOUT after timeout_ms.
 */
int th_run(struct th_env *env, int (*prep)(void), char *const argv[], char *out,
	   size_t len, int timeout_ms);

/* Wait for a child up to timeout_ms; kill it after. Exit status, or -ETIMEDOUT. */
int th_wait(pid_t pid, int timeout_ms);

/* Extensions (tests/integ only). */

/* Path of the sidelane binary: $SIDELANE, else build/sidelane. */
const char *th_sidelane_bin(void);
/* SIGTERM `sidelane run`, reap it, then run `sidelane detach --pin-root`.
 * 0, -errno, or the detach exit status as a positive number. Idempotent.
 */
int th_env_detach(struct th_env *env);
/* Programs attached to env's cgroup for attach type (enum bpf_attach_type). */
int th_cgroup_prog_count(const struct th_env *env, int attach_type);
/* Poll th_map_entries() every 10 ms until it equals want or timeout_ms passed;
 * returns the last count (or -errno).
 */
int th_wait_entries(const struct th_env *env, const char *map_name, int want,
		    int timeout_ms);
/* Key of a connected TCP socket, built like bpf/sockkey.bpf.h does: own end
 * first, IPv4 as ::ffff:a.b.c.d, ports in host order, netns cookie.
 */
int th_sock_key(int fd, struct sl_sock_key *key);
/* SO_COOKIE of fd, 0 on error. */
__u64 th_sock_cookie(int fd);
/* Value stored in sl_sockhash for key (the socket cookie). 0 or -errno. */
int th_sockhash_cookie(const struct th_env *env, const struct sl_sock_key *key,
		       __u64 *cookie);
/* sl_conns record of a socket cookie. 0 or -errno (-ENOENT: none). */
int th_conn(const struct th_env *env, __u64 cookie, struct sl_conn *out);

/* Loopback TCP: a listener on addr (port 0 = ephemeral), a client connected
 * from family cfam to (addr, port), and the accepted end. addr is "127.0.0.1",
 * "::1" or "::ffff:127.0.0.1" (an AF_INET6 client against a v4 listener).
 * Returns 0 or -errno; fds are blocking, CLOEXEC.
 */
/* A numeric IPv4 or IPv6 address and a port as a sockaddr. 0 or -EINVAL. */
int th_sockaddr(const char *addr, int port, struct sockaddr_storage *ss,
		socklen_t *len);
int th_listen(const char *addr, int backlog, int *port);
int th_connect(const char *addr, int port);
/* The same with a socket non-blocking from its creation (what the safe
 * and send admission modes take), left non-blocking.
 */
int th_connect_nb(const char *addr, int port);
int th_tcp_pair(const char *laddr, const char *caddr, int *cfd, int *sfd);
/* An echo upstream on 127.0.0.1 (port 0: any free one, into *port): a
 * thread per connection sends back every byte until EOF, then half-closes.
 * Serves until the process ends. 0 or -errno.
 */
int th_echo_server(int backlog, int *port);
/* The same on a listening socket made elsewhere (another namespace). */
int th_echo_on(int lfd);
/* Network namespace ns with a veth pair: host_ip/30 on this namespace's
 * end (<veth>h), ns_ip/30 on the far end (<veth>n), lo up there. 0 or
 * -EIO. th_netns_del(ns) removes it and the pair ("" is a no-op).
 */
int th_netns_add(const char *ns, const char *veth, const char *host_ip,
		 const char *ns_ip);
void th_netns_del(const char *ns);
/* th_listen() inside ns: the socket lives there, the caller stays here. */
int th_netns_listen(const char *ns, const char *addr, int backlog, int *port);
/* rm -r path (a pin folder, say; bpffs too). 0 or -errno. */
int th_rm_tree(const char *path);
/* One HTTP/1.0 request to 127.0.0.1:port (headers: extra lines, each
 * ending in CRLF, or NULL); the response, head and body, into resp. The
 * status code, or -errno. Each wait for the server is bounded by
 * TH_HTTP_MS.
 */
#define TH_HTTP_MS 5000
int th_http(int port, const char *method, const char *path,
	    const char *headers, char *resp, size_t len);
/* "key":value inside the object "obj" of the admin endpoint's /stats, or
 * -1; true/false read 1/0. Not thread-safe (one static buffer).
 */
long long th_stat_num(int admin_port, const char *obj, const char *key);
/* Send on the non-blocking fd, buf's len bytes over and over, until it
 * stays unwritable for 300 ms: the bytes sent (limit: the writer never
 * blocked), or -errno.
 */
ssize_t th_send_until_blocked(int fd, const void *buf, size_t len,
			      size_t limit);

/* `sidelane run --config cfg --cgroup cgroup --sidecar-cgroup sidecar
 * --pin-root pin_root` in the background (SIGTERM when we die), its output
 * into log, until it logs "running;": 0, or -ECHILD (it exited) /
 * -ETIMEDOUT after ready_ms, the log shown. *pid: the child, 0 if gone.
 */
int th_start_run(const char *cfg, const char *cgroup, const char *sidecar,
		 const char *pin_root, const char *log, int ready_ms, pid_t *pid);
/* Write text to cfg and th_start_run() it on env (its cgroup, sidecar
 * cgroup, pin root and log): env owns the run from then on (teardown stops
 * and detaches it). 0 or -errno.
 */
int th_env_run_config(struct th_env *env, const char *cfg, const char *text);
/* The file's lines as "#   sidelane: ..." diagnostics. */
void th_dump_log(const char *log);
/* A loopback TCP port nothing listens on right now (bound, then released),
 * or -1.
 */
int th_free_port(void);
/* Does the file at path (its first 64 KiB) hold what? */
bool th_file_has(const char *path, const char *what);

/* SHA-256 of buf into out[32]. */
void th_sha256(const void *buf, size_t len, unsigned char out[32]);
/* The version sidelane names a config file's text by: the first 16 hex
 * digits of its SHA-256 (worked out here, not by sidelane's code).
 */
void th_config_version(const void *text, size_t len, char out[17]);
/* Deterministic pseudo-random bytes (xorshift seeded by seed). */
void th_fill(void *buf, size_t len, __u64 seed);
/* A key of /proc/<pid>/status in KiB ("VmRSS", or its anonymous part
 * "RssAnon": the rest is text shared through the page cache), or -1.
 */
long th_proc_kib(pid_t pid, const char *key);
/* Open descriptors of pid, or -1. */
int th_proc_fds(pid_t pid);
/* Monotonic milliseconds. */
__u64 th_now_ms(void);

/* Watchdog: if the process is still in `what` after sec seconds, report it as
 * failed, tear every env down and exit 1. sec = 0 disarms.
 */
void th_watchdog(unsigned int sec, const char *what);
/* "# ..." diagnostic line. */
void th_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* CI=true in the environment. */
bool th_ci(void);

/* Cleanup on every exit path: fn(arg) runs once, on normal exit, on a fatal
 * signal or the watchdog, before the envs are torn down; the last pushed
 * runs first. th_cleanup_pop() runs it now (when run) and forgets it.
 * 0 or -ENOSPC.
 */
int th_cleanup_push(void (*fn)(void *arg), void *arg);
void th_cleanup_pop(void (*fn)(void *arg), void *arg, bool run);
/* system() of the formatted command: 0, or -EIO when it did not exit 0. */
int th_system(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Create or truncate path with text. 0 or -errno. */
int th_write_text(const char *path, const char *text);

/* Test PKI made with the openssl CLI in a temp dir (tests/integ/tls.c,
 * mesh.c). th_pki_dir() makes "/tmp/sidelane-<tag>-XXXXXX" into dir (64
 * bytes are enough) and removes it on every exit path;
 * th_pki_dir_remove() removes it now.
 * Every other th_pki_* takes that dir; each command's output is appended to
 * dir/openssl.log. Keys are EC P-256; leaves carry san (a subjectAltName
 * value, e.g. "URI:spiffe://td/x") and serverAuth+clientAuth. 0 or -errno.
 */
int th_pki_dir(char *dir, size_t len, const char *tag);
int th_pki_dir_remove(const char *dir);
/* dir/name.ext in one of 16 rotating buffers: hold at most a few at once. */
const char *th_pki_path(const char *dir, const char *name, const char *ext);
/* system(fmt, ...) with stdout and stderr appended to dir/openssl.log. */
int th_pki_sh(const char *dir, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Self-signed CA: dir/name.pem and dir/name.key. */
int th_pki_ca(const char *dir, const char *name);
/* Key + CSR + extension file of a leaf: dir/name.{key,csr,ext}. */
int th_pki_csr(const char *dir, const char *name, const char *san);
/* Leaf dir/name.{pem,key} signed by CA dir/ca.{pem,key}, valid two days. */
int th_pki_leaf(const char *dir, const char *name, const char *ca, int serial,
		const char *san);
/* The same, expired since 2020-01-02 (`openssl ca` takes explicit dates). */
int th_pki_expired(const char *dir, const char *name, const char *ca,
		   const char *san);
/* Copy from beside to (to.tmp), then rename it over to: what a secret
 * volume's swap looks like to a reader of to.
 */
int th_pki_swap(const char *dir, const char *from, const char *to);
/* dir/openssl.log as "# " lines (after a failure). */
void th_pki_log(const char *dir);

/* Subtests failed so far. */
int th_failed(void);

/* Reporting: "ok N - name" / "not ok N - name # reason"; th_summary() prints
 * "N passed, N failed" (", N skipped") and returns the exit code. Under CI=true
 * th_skip() counts as a failure: every CI machine can load BPF.
 */
void th_pass(const char *name);
void th_fail(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void th_skip(const char *name, const char *why);
int th_summary(void);

/* A check made of several conditions: TH_CHECK reports only a failure (the
 * caller returns), th_pass(name) the success once all held. Give the name
 * once, as a variable both use, so success and failure cannot drift apart;
 * a th_pass() of the name that failed last is reported as a
 * failure of the test itself.
 */
#define TH_CHECK(cond, name, ...)                                              \
	({                                                                     \
		bool __ok = (cond);                                            \
		if (!__ok)                                                     \
			th_fail(name, __VA_ARGS__);                            \
		__ok;                                                          \
	})

/* A check of one condition, in one call: "ok" when cond holds, else "not
 * ok" with the reason. Returns cond.
 */
#define TH_RESULT(cond, name, ...)                                             \
	({                                                                     \
		bool __ok = (cond);                                            \
		if (__ok)                                                      \
			th_pass(name);                                         \
		else                                                           \
			th_fail(name, __VA_ARGS__);                            \
		__ok;                                                          \
	})

#endif /* HARNESS_H */
