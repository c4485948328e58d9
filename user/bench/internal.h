/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* What the files of `sidelane bench` share (user/bench/): the modes,
 * cgroups, relays, suites, workloads and metrics, the run's state (bs,
 * undone by bench_cleanup()) and each file's functions the others call.
 * bench.c has the overview.
 */
#ifndef SL_BENCH_INTERNAL_H
#define SL_BENCH_INTERNAL_H

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <ifaddrs.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/vfs.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <linux/magic.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include "loader/pins.h"
#include "loader/detach.h"
#include "lib/json.h"
#include "sidelane.h"
#include "loader/fastpath_user.h"
#include "loader/admission_user.h"
#include "proxy/splice_user.h"
#include "loader/capture_user.h"
#include "report/proxy_stats.h"
#include "bench/bench.h"
#include "bench/bench_plot.h"
#include "bench_bare.skel.h"
#include "lib/cgroup.h"
#include "lib/log.h"
#include "lib/util.h"
/* Exit codes besides 0 (ok), 1 (failure) and 2 (usage): a mode did not
 * carry its traffic (fastpath: bare or sidelane redirected no message;
 * sidecar: sidelane captured no connection or haproxy served none; tls:
 * haproxy A served none).
 */
enum { BENCH_EXIT_USAGE = 2, BENCH_EXIT_NOT_ACCEL = 3 };

#define BENCH_ROUNDS_DEFAULT 5
#define BENCH_ROUNDS_MAX 100
#define BENCH_DURATION_DEFAULT_MS 1000
#define BENCH_DURATION_MIN_MS 50
#define BENCH_DURATION_MAX_MS 60000
#define BENCH_QUICK_ROUNDS 2
#define BENCH_QUICK_DURATION_MS 200
#define BENCH_WARMUP_MAX_MS 100 /* unmeasured start of each measurement */
#define BENCH_IO_TIMEOUT_S 5 /* SO_RCVTIMEO/SO_SNDTIMEO: a stall ends a run */
#define BENCH_GRACE_MS 10000 /* past its duration a child is killed */
#define BENCH_SETTLE_MS 300 /* servers outlive the last connect this long */
#define BENCH_MAX_TPS 400000 /* sizes the latency buffer; more is not stored */
#define BENCH_STREAM_CHUNK (64 * 1024)
/* First byte of each stream chunk: more follows / last chunk */
#define STREAM_DATA 0x5a
#define STREAM_END 0x45
/* --suite sidecar: a /30 on a veth into the bench's namespace */
#define BENCH_NS_IP "198.18.79.2" /* the upstream, in the namespace */
#define BENCH_HOST_IP "198.18.79.1"
#define BENCH_NS_NET 0xc6124f00u /* 198.18.79.0/30, host order */
#define BENCH_NS_MASK 0xfffffffcu
#define BENCH_UPSTREAM_PORT 5201 /* the upstream server's, every round */
#define BENCH_START_MS 10000 /* sidelane run, haproxy, the veth: ready by then */
#define BENCH_STOP_MS 5000 /* after SIGTERM, SIGKILL */
/* --suite tls: B of the sidelane, haproxy and stunnel pair listens on
 * BENCH_NS_IP:BENCH_TLS_B_PORT + 0, 1, 2; their certificates name these IDs.
 */
#define BENCH_TLS_B_PORT 5301
#define BENCH_ID_A "spiffe://bench.local/ns/a/sa/client"
#define BENCH_ID_B "spiffe://bench.local/ns/b/sa/server"
#define BENCH_CONN_CLIENTS 4 /* conn workload: closed-loop clients at once */
#define BENCH_RR_CLIENTS 16 /* rr_1k_c16: connections at once, a client each */
#define BENCH_RR_CLIENTS_MANY 64 /* rr_1k_c64 */
/* rr_1k_c1000: so many connections over BENCH_RR_PROCS client processes,
 * each driving its share with one epoll loop (and as many servers)
 */
#define BENCH_RR_CONNS 1000
#define BENCH_RR_PROCS 4
#define BENCH_CLIENTS_MAX 64 /* of any workload; so many servers too */
#define NR_WORKLOADS 9 /* workloads[]: bench.c checks the count */
_Static_assert(BENCH_CONN_CLIENTS <= BENCH_CLIENTS_MAX &&
		       BENCH_RR_CLIENTS <= BENCH_CLIENTS_MAX &&
		       BENCH_RR_CLIENTS_MANY <= BENCH_CLIENTS_MAX,
	       "BENCH_CLIENTS_MAX sizes the per-client state");
/* haproxy and stunnel get the TLS 1.3 suite sidelane's server prefers (it
 * has no knob for it), so every pair encrypts alike
 */
#define BENCH_TLS_SUITE "TLS_AES_128_GCM_SHA256"

enum mode {
	MODE_PLAIN, /* --suite fastpath */
	MODE_BARE,
	MODE_SIDELANE,
	MODE_DIRECT, /* --suite sidecar and tls */
	MODE_SIDECAR, /* --suite sidecar */
	MODE_RELAY, /* the same with proxy.splice false: all in user space */
	MODE_HAPROXY, /* haproxy's default thread count */
	MODE_HAPROXY1, /* nbthread 1 */
	MODE_TLS_SL, /* --suite tls: a pair of TLS proxies each */
	MODE_TLS_HAP,
	MODE_TLS_ST,
	NR_MODES
};
#define MODE_BIT(m) (1u << (m))
extern const char *const mode_name[NR_MODES];

/* The cgroups a run may create: <cgroup2 mount>/sidelane-bench-<pid>-<name>. */
enum cg {
	CG_PLAIN,
	CG_BARE,
	CG_SIDELANE,
	CG_DIRECT, /* direct's client */
	CG_APP, /* sidelane's client: `sidelane run --cgroup` */
	CG_HAP_CLIENT, /* both haproxy modes' client */
	CG_UPSTREAM, /* the upstream server of every sidecar mode */
	CG_SIDECAR, /* `sidelane run` itself: --sidecar-cgroup */
	CG_APP_RELAY, /* the same two of the sl-relay mode */
	CG_SIDECAR_RELAY,
	CG_HAPROXY, /* each haproxy itself */
	CG_HAPROXY1,
	CG_TLS_APP_A, /* tls: sidelane's client, A's --cgroup */
	CG_TLS_APP_B, /* tls: sidelane's server, B's --cgroup */
	CG_TLS_CLIENT, /* tls: haproxy's and stunnel's client */
	CG_SL_A, /* tls: each proxy of each pair */
	CG_SL_B,
	CG_HAP_A,
	CG_HAP_B,
	CG_ST_A,
	CG_ST_B,
	NR_CGS
};
extern const char *const cg_name[NR_CGS];

/* The long-lived relays a suite starts, each in its own cgroup (its CPU
 * time is the proxy's), in the namespace when netns; output to
 * <tmpdir>/<cgroup name>.log.
 */
enum proc {
	PROC_SIDELANE, /* sidecar */
	PROC_RELAY, /* sidecar, proxy.splice false */
	PROC_HAPROXY,
	PROC_HAPROXY1,
	PROC_SL_A, /* tls */
	PROC_SL_B,
	PROC_HAP_A,
	PROC_HAP_B,
	PROC_ST_A,
	PROC_ST_B,
	NR_PROCS
};
struct proc_desc {
	enum cg cg;
	int netns;
};
extern const struct proc_desc procs[NR_PROCS];

/* Where a mode's processes run. The server is in the namespace when netns;
 * proc are the relays between the two ends (-1: none), whose CPU time
 * counts with theirs (tls: instead of theirs).
 */
struct mode_run_desc {
	enum cg client, server;
	int proc[2];
	int netns;
};
extern const struct mode_run_desc mode_run[NR_MODES];

/* A suite: the modes measured together, in table order, and the ratios
 * between them. proxy_cpu: CPU is the relays' alone, not the two ends'.
 * host_cpu: CPU is the whole host's busy time (/proc/stat), which also
 * holds kernel work no process is charged for (kworkers, softirqs
 * elsewhere): the spliced download's redirects run in a kworker.
 */
#define SUITE_MODES_MAX 5
#define SUITE_RATIOS_MAX 5
enum suite { SUITE_FASTPATH, SUITE_SIDECAR, SUITE_TLS, NR_SUITES };
struct suite_desc {
	const char *name;
	int nmodes, nratios, proxy_cpu, host_cpu;
	enum mode modes[SUITE_MODES_MAX];
	struct {
		const char *label; /* table, 8 columns at most */
		const char *key; /* JSON */
		enum mode num, den;
	} ratios[SUITE_RATIOS_MAX];
};
extern const struct suite_desc suites[NR_SUITES];

enum wl_kind { WL_RR, WL_STREAM, WL_CONN, WL_DUPLEX };
#define KIND(k) (1u << (k))

struct workload {
	const char *name; /* JSON key */
	const char *label; /* table */
	enum wl_kind kind;
	size_t size; /* request = response size (rr, conn), write size (stream) */
	int clients; /* closed loops at once, each a process (rr: a connection) */
	unsigned int suites; /* bit (1 << suite) per suite that measures it */
	int conns; /* connections per client process; rr > 1: one epoll loop */
};

#define SU_PLAIN ((1u << SUITE_FASTPATH) | (1u << SUITE_SIDECAR))
#define SU_TLS (1u << SUITE_TLS)
extern const struct workload workloads[NR_WORKLOADS];

enum metric {
	M_P50,
	M_P99,
	M_TPS,
	M_CPU_100K,
	M_GBITS,
	M_CPU_GIB,
	M_CONNS,
	M_CPU_CONN,
	M_RSS,
	NR_METRICS
};

struct metric_desc {
	const char *key; /* JSON */
	const char *label; /* table */
	unsigned int kinds; /* KIND() of the workloads it applies to */
	int lower_better;
	int prec; /* decimals in the table */
};
extern const struct metric_desc metrics[NR_METRICS];

/* What one end of a measurement reports, through the shared mapping. */
struct side_result {
	int32_t err; /* 0, or a positive errno */
	char msg[124]; /* what failed, when err */
};

/* What one client of rr or conn did, written when it is done. */
struct tx_count {
	uint64_t tx; /* transactions in the measured window */
	uint64_t tx_all; /* including the warm-up */
	uint64_t nlat; /* latency samples in its slice of lat_ns */
	uint64_t end_ns; /* the end of its last measured transaction */
};

/* Shared (MAP_SHARED) between the parent and the children of a measurement. */
struct bench_shm {
	struct side_result client, server;
	uint64_t tx; /* rr, conn: transactions in the measured window */
	uint64_t tx_all; /* rr, conn: transactions including the warm-up */
	uint32_t stop; /* conn, rr over epoll: set by the parent, servers end */
	uint32_t pad;
	uint64_t srv_last_ns; /* their last accept (srv_done) */
	struct tx_count clients[BENCH_CLIENTS_MAX]; /* rr, conn: summed in tx */
	uint64_t bytes; /* stream: bytes delivered in the measured window */
	uint64_t bytes_all; /* stream: bytes the server received in total */
	uint64_t bytes_sent, bytes_recv; /* stream: progress, for errors */
	uint64_t elapsed_ns; /* measured window */
	uint64_t nlat; /* latency samples stored in lat_ns */
	uint64_t lat_cap;
	uint32_t lat_ns[]; /* rr, conn: one per measured transaction, up to lat_cap */
};

/* Evidence that a mode carried the traffic, over one measurement. */
struct accel {
	uint64_t redirected; /* messages sent socket to socket */
	uint64_t passed; /* messages that took the normal TCP path */
	uint64_t redirected_b, passed_b; /* tls sidelane: the B <-> server hop */
	uint64_t inserted; /* sidecar's sidelane: sockets put in the sockhash */
	uint64_t fallback; /* sidecar's sidelane: to TCP, the reader lagged */
	uint64_t captured; /* sidecar's sidelane: connects sent to the proxy */
	uint64_t served; /* haproxy: sessions its frontend accepted */
	/* sidecar's sidelane: messages sk_msg pushed straight to the
	 * upstream, skbs the sk_skb verdict redirected straight towards the
	 * app, and those of spliced pairs that took the relay, each way:
	 * in all, and because the target was full
	 */
	uint64_t pushed, pushed_bytes, down, down_bytes;
	uint64_t relayed_up, relayed_down, full_up, full_down;
	uint64_t overlaps; /* download skbs cut as repeats */
};
#define ACCEL_FIELDS(X)                                                        \
	X(redirected) X(passed) X(redirected_b) X(passed_b) X(inserted)        \
	X(fallback) X(captured) X(served) X(pushed) X(pushed_bytes)            \
	X(down) X(down_bytes) X(relayed_up) X(relayed_down) X(full_up)         \
	X(full_down) X(overlaps)

/* to += sign * from, field by field. */
static inline void accel_add(struct accel *to, const struct accel *from, int sign)
{
#define ACCEL_ADD(f) to->f += sign * from->f;
	ACCEL_FIELDS(ACCEL_ADD)
#undef ACCEL_ADD
}

/* Where the two ends run. Unpinned, the scheduler decides per run whether
 * they share a CPU; on a small VM that flips rr latency between a few µs
 * (same CPU) and tens of µs (cross-CPU wakeups), a large share of the noise.
 */
enum pin { PIN_NONE, PIN_SAME, PIN_SPLIT, NR_PINS };
extern const char *const pin_name[NR_PINS];

struct bench_opts {
	enum suite suite;
	unsigned int rounds;
	enum pin pin;
	int pin_cpu[2]; /* server, client CPU when pinned */
	unsigned int duration_ms;
	int json;
	const char *plot_dir; /* --plot: SVG charts there */
	int modes[NR_MODES]; /* 1: measured (the suite's modes only) */
	int workloads[NR_WORKLOADS]; /* 1: measured (the suite's only) */
	/* sidecar: the sidelane mode's fastpath.app_sockets (admission) */
	uint32_t app_sockets;
};

/* Everything that must be undone: global so atexit() and the error paths
 * share one cleanup function.
 */
struct bench_state {
	pid_t owner; /* only this process cleans up; children _exit() */
	/* --client nonblock: clients' sockets are non-blocking from before
	 * connect(), waiting in poll() (what admission may admit)
	 */
	int client_nb;
	uint32_t app_sockets; /* o->app_sockets, for the sidelane config */
	char cg_mount[PATH_MAX];
	char cgroup[NR_CGS][PATH_MAX];
	int cg_made[NR_CGS];
	char pin_root[PATH_MAX];
	char pin_relay[PATH_MAX]; /* sidecar: the sl-relay mode's sidelane */
	char pin_ab[2][PATH_MAX]; /* tls: sidelane A's and B's */
	char netns[32], veth[16]; /* sidecar, tls: sl-bench-<pid>, slb<pid>h|n */
	int ns_made; /* `ip netns add` was run */
	int ns_fd; /* /var/run/netns/<netns>, for setns() */
	char tmpdir[64]; /* configs, logs, certificates, haproxy's stats sockets */
	pid_t pid[NR_PROCS]; /* the relays, between rounds too */
	unsigned int nbthread[NR_PROCS]; /* a haproxy's threads (show info) */
	uint16_t outbound_port; /* sidecar sidelane's listener on 127.0.0.1 */
	uint16_t relay_port; /* the same of the sl-relay mode's */
	/* where a mode's client connects on 127.0.0.1 (0: to the server) */
	uint16_t front_port[NR_MODES];
	struct {
		char name[16], text[160];
	} ver[8]; /* kernel, tools and libraries the suite runs */
	int nver;
	int sl_attached; /* sl_fp_attach() was called (even if it failed) */
	int relay_attached; /* the sl-relay mode's sidelane was started */
	int ab_attached[2]; /* tls: sidelane A, B were started */
	struct bench_bare_bpf *bare;
	int bare_msg_link; /* sk_msg -> sockhash bpf_link fd, or -1 */
	int bare_msg_attached; /* BPF_PROG_ATTACH fallback in use */
	pid_t child[2]; /* server, client of the running measurement */
	struct bench_shm *shm;
	size_t shm_len;
};
extern struct bench_state bs;

extern volatile sig_atomic_t bench_stop;

void on_signal(int sig);

static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static inline void sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static inline void tmp_path(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", bs.tmpdir, name);
}

/* A file of relay p: <tmpdir>/<its cgroup's name><ext>. */
static inline void proc_path(enum proc p, const char *ext, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s%s", bs.tmpdir, cg_name[procs[p].cg], ext);
}

struct measurement {
	double v[NR_METRICS]; /* NAN where it does not apply */
	struct accel accel;
};

/* --plot: latency quantiles per workload and mode, summed over the rounds
 * (drawn as their mean): 1..99 %, 99.5 %, 99.9 %
 */
#define BENCH_CDF_POINTS 101

/* A sidecar suite sidelane: its pin root and outbound port. */
struct sl_sidecar {
	enum proc proc;
	enum cg app;
	char *pin_root;
	uint16_t *port;
	int *attached;
	int splice; /* proxy.splice */
};

/* Every bench sidelane: no admin endpoint (its fixed port would clash with
 * a sidelane of the host's), no drain wait when it is stopped.
 */
#define SL_BENCH_ADMIN                                                         \
	"admin:\n"                                                             \
	"  listen: \"\"\n"                                                     \
	"  drain_timeout_ms: 0\n"

/* setup.c: clean-up, cgroups and the in-process modes, evidence a mode
 * carried its traffic
 */
void kill_children(void);
int bench_sh(const char *fmt, ...);
void bench_cleanup(void);
int make_cgroups(const struct bench_opts *o);
int inherited_sockops(const char *cgroup);
int bare_attach(void);
int set_pin_root(char *buf, const char *suffix);
int sidelane_attach(void);
int hap_sessions(enum proc p, uint64_t *out);
int hap_threads(enum proc p, unsigned int *out);
int host_busy(double *sec);
int proxy_cpu(enum mode m, double *sec);
int read_accel(enum mode m, struct accel *a);

/* What the workers at either end of a measurement share. */
struct worker_args {
	const struct workload *wl;
	int lfd; /* server: the listener */
	struct sockaddr_in dst; /* client */
	uint64_t measure, end; /* client: the measured window */
	uint64_t slice; /* client: lat_ns samples per client */
	struct bench_shm *shm;
};

/* ends.c, server.c, client.c: the two ends of a measurement (children) */
void set_timeouts(int fd, int nodelay);
int io_wait(int fd, short events);
int write_full(int fd, const char *buf, size_t len);
int read_full(int fd, char *buf, size_t len);
int run_workers(int n, int (*fn)(int, void *), void *arg);
int side_fail(struct side_result *r, int err, const char *what);
int enter_cgroup(const char *cgroup);
int run_server(const struct workload *wl, struct sockaddr_in sa,
	       int port_pipe, struct side_result *r,
	       struct bench_shm *shm);
int client_connect(struct sockaddr_in sa, int nodelay,
		   struct side_result *r);
int run_client_duplex(const struct workload *wl, struct sockaddr_in dst,
		      uint64_t warmup_ns, uint64_t dur_ns,
		      struct bench_shm *shm);
int run_client_stream(const struct workload *wl, struct sockaddr_in dst,
		      uint64_t warmup_ns, uint64_t dur_ns,
		      struct bench_shm *shm);
int run_client_loops(const struct workload *wl, struct sockaddr_in dst,
		     uint64_t warmup_ns, uint64_t dur_ns,
		     struct bench_shm *shm);

/* relays.c: --suite sidecar and tls: the namespace, starting relays */
struct sockaddr_in addr_in(const char *ip, uint16_t port);
int pick_port(uint16_t *port);
int write_text(const char *path, const char *fmt, ...);
void dump_log(const char *path);
int netns_setup(void);
int tcp_ready(const void *ctx);
int start_sidelane(const struct sl_sidecar *sc);
int find_bin(const char *name, char *buf, size_t len, int mode);
int start_haproxy_proc(enum mode m, enum proc p, unsigned int nbthread,
		       const char *bind, const char *server);
int start_haproxy(enum mode m);
extern const struct sl_sidecar sidecar_sl, sidecar_relay;
int start_proc(enum proc p, const char *bin, char *const argv[],
	       int deathsig, int (*ready)(const void *), const void *ctx);
int start_sidelane_proc(enum proc p, enum cg app, const char *pin_root,
			int *attached, int (*ready)(const void *),
			const void *ctx);

/* tlspair.c: --suite tls: certificates and the three pairs */
int relays_setup(const struct bench_opts *o);
int relays_alive(enum mode m);

/* measure.c: one measurement (parent) */
int bench_measure(enum mode m, const struct workload *wl,
		  const struct bench_opts *o, struct measurement *out);
extern double cdf_q[BENCH_CDF_POINTS];
/* latency quantiles summed over the rounds, and how many rounds */
extern double cdf_sum[NR_WORKLOADS][NR_MODES][BENCH_CDF_POINTS];
extern unsigned int cdf_n[NR_WORKLOADS][NR_MODES];

/* results.c: tables, JSON and charts */
double *bench_res(size_t w, int m, int k, unsigned int r);
void results_table(const struct bench_opts *o);
int bench_plot(const struct bench_opts *o);
void results_json(const struct bench_opts *o, const struct accel *acc,
		  const int *accel_ok, int inherited);
extern double *results;
extern unsigned int res_rounds;

/* options.c: the command line */
int parse_args(int argc, char **argv, struct bench_opts *o);

#endif /* SL_BENCH_INTERNAL_H */
