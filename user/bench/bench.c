// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* `sidelane bench` (user side): latency, throughput and CPU cost of three
 * modes measured in one run, from one process tree. Two suites:
 *   fastpath (default), node-local over loopback:
 *     plain     loopback TCP, a cgroup with nothing attached;
 *     bare      bpf/bench_bare.bpf.c, a textbook sockops + sk_msg redirect,
 *               attached in-process to a second cgroup (nothing pinned);
 *     sidelane  the product (sl_fp_attach) on a third cgroup, own pin root,
 *               fastpath.app_sockets all: the opt-in app<->app redirect
 *               (the default admits no blocking or app<->app socket).
 *   sidecar, app -> sidecar -> upstream, the upstream on the far end of a
 *   veth into a network namespace the bench creates:
 *     direct    the client connects straight to the upstream;
 *     sidelane  the real `sidelane run` (this binary) captures the client's
 *               connect and relays it through its proxy (the upload half
 *               spliced where the client's socket is admitted);
 *     sl-relay  the same with proxy.splice false;
 *     haproxy   haproxy in mode tcp, which the client connects to explicitly,
 *               at its default thread count (a thread per CPU);
 *     haproxy1  the same with nbthread 1.
 *   tls, client -> proxy A -> mutual TLS 1.3 over the veth -> proxy B (in the
 *   namespace) -> server, for a pair of each of:
 *     sidelane  `sidelane run` twice: A's ambassador originates mTLS (a
 *               tls.mesh destination), B's inbound listener terminates it;
 *     haproxy   mode tcp, `server ... ssl` on A, `bind ... ssl` on B;
 *     stunnel   client mode on A, server mode on B;
 *   plus direct (plaintext, no proxy) for context. One set of certificates
 *   (a CA and two P-256 leaves with SPIFFE URI SANs, made with the openssl
 *   CLI) serves all three; each B is checked to refuse a client without one.
 * Every measurement forks a server and a client that move themselves into
 * their cgroups before creating sockets; their CPU time comes from wait4(),
 * a proxy's from its cgroup's cpu.stat, the sidecar suite's from the host's
 * /proc/stat (kworkers too). Rounds interleave the modes in
 * rotating order; the table shows medians.
 */
#define _GNU_SOURCE
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
#include "report/stats_user.h"
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
/* Column, JSON key and --modes name; unique within a suite. */
static const char *const mode_name[NR_MODES] = {
	"plain",    "bare",    "sidelane", "direct", "sidelane", "sl-relay",
	"haproxy",  "haproxy1", "sidelane", "haproxy", "stunnel",
};

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
static const char *const cg_name[NR_CGS] = {
	"plain",      "bare",	   "sidelane",	 "direct",     "app",
	"haproxy-client", "upstream", "sidecar", "app-relay", "sidecar-relay",
	"haproxy",    "haproxy1",
	"tls-app-a",
	"tls-app-b",  "tls-client", "sidelane-a", "sidelane-b", "haproxy-a",
	"haproxy-b",  "stunnel-a",  "stunnel-b",
};

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
static const struct {
	enum cg cg;
	int netns;
} procs[NR_PROCS] = {
	[PROC_SIDELANE] = { CG_SIDECAR, 0 }, [PROC_RELAY] = { CG_SIDECAR_RELAY, 0 },
	[PROC_HAPROXY] = { CG_HAPROXY, 0 },
	[PROC_HAPROXY1] = { CG_HAPROXY1, 0 },
	[PROC_SL_A] = { CG_SL_A, 0 },	     [PROC_SL_B] = { CG_SL_B, 1 },
	[PROC_HAP_A] = { CG_HAP_A, 0 },	     [PROC_HAP_B] = { CG_HAP_B, 1 },
	[PROC_ST_A] = { CG_ST_A, 0 },	     [PROC_ST_B] = { CG_ST_B, 1 },
};

/* Where a mode's processes run. The server is in the namespace when netns;
 * proc are the relays between the two ends (-1: none), whose CPU time
 * counts with theirs (tls: instead of theirs).
 */
static const struct {
	enum cg client, server;
	int proc[2];
	int netns;
} mode_run[NR_MODES] = {
	[MODE_PLAIN] = { CG_PLAIN, CG_PLAIN, { -1, -1 }, 0 },
	[MODE_BARE] = { CG_BARE, CG_BARE, { -1, -1 }, 0 },
	[MODE_SIDELANE] = { CG_SIDELANE, CG_SIDELANE, { -1, -1 }, 0 },
	[MODE_DIRECT] = { CG_DIRECT, CG_UPSTREAM, { -1, -1 }, 1 },
	[MODE_SIDECAR] = { CG_APP, CG_UPSTREAM, { PROC_SIDELANE, -1 }, 1 },
	[MODE_RELAY] = { CG_APP_RELAY, CG_UPSTREAM, { PROC_RELAY, -1 }, 1 },
	[MODE_HAPROXY] = { CG_HAP_CLIENT, CG_UPSTREAM, { PROC_HAPROXY, -1 }, 1 },
	[MODE_HAPROXY1] = { CG_HAP_CLIENT, CG_UPSTREAM, { PROC_HAPROXY1, -1 }, 1 },
	[MODE_TLS_SL] = { CG_TLS_APP_A, CG_TLS_APP_B, { PROC_SL_A, PROC_SL_B }, 1 },
	[MODE_TLS_HAP] = { CG_TLS_CLIENT, CG_UPSTREAM, { PROC_HAP_A, PROC_HAP_B }, 1 },
	[MODE_TLS_ST] = { CG_TLS_CLIENT, CG_UPSTREAM, { PROC_ST_A, PROC_ST_B }, 1 },
};

/* A suite: the modes measured together, in table order, and the ratios
 * between them. proxy_cpu: CPU is the relays' alone, not the two ends'.
 * host_cpu: CPU is the whole host's busy time (/proc/stat), which also
 * holds kernel work no process is charged for (kworkers, softirqs
 * elsewhere): the spliced download's redirects run in a kworker.
 */
#define SUITE_MODES_MAX 5
#define SUITE_RATIOS_MAX 5
enum suite { SUITE_FASTPATH, SUITE_SIDECAR, SUITE_TLS, NR_SUITES };
static const struct suite_desc {
	const char *name;
	int nmodes, nratios, proxy_cpu, host_cpu;
	enum mode modes[SUITE_MODES_MAX];
	struct {
		const char *label; /* table, 8 columns at most */
		const char *key; /* JSON */
		enum mode num, den;
	} ratios[SUITE_RATIOS_MAX];
} suites[NR_SUITES] = {
	[SUITE_FASTPATH] = {
		"fastpath", 3, 3, 0, 0,
		{ MODE_PLAIN, MODE_BARE, MODE_SIDELANE },
		{ { "sl/plain", "sidelane_over_plain", MODE_SIDELANE, MODE_PLAIN },
		  { "bare/pl", "bare_over_plain", MODE_BARE, MODE_PLAIN },
		  { "sl/bare", "sidelane_over_bare", MODE_SIDELANE, MODE_BARE } },
	},
	[SUITE_SIDECAR] = {
		"sidecar", 5, 5, 0, 1,
		{ MODE_DIRECT, MODE_SIDECAR, MODE_RELAY, MODE_HAPROXY,
		  MODE_HAPROXY1 },
		{ { "sl/dir", "sidelane_over_direct", MODE_SIDECAR, MODE_DIRECT },
		  { "sl/relay", "sidelane_over_relay", MODE_SIDECAR, MODE_RELAY },
		  { "hap/dir", "haproxy_over_direct", MODE_HAPROXY, MODE_DIRECT },
		  { "sl/hap", "sidelane_over_haproxy", MODE_SIDECAR, MODE_HAPROXY },
		  { "sl/hap1", "sidelane_over_haproxy1", MODE_SIDECAR,
		    MODE_HAPROXY1 } },
	},
	[SUITE_TLS] = {
		"tls", 4, 2, 1, 0,
		{ MODE_DIRECT, MODE_TLS_SL, MODE_TLS_HAP, MODE_TLS_ST },
		{ { "sl/hap", "sidelane_over_haproxy", MODE_TLS_SL, MODE_TLS_HAP },
		  { "sl/stun", "sidelane_over_stunnel", MODE_TLS_SL, MODE_TLS_ST } },
	},
};

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
static const struct workload workloads[] = {
	{ "rr_64", "rr 64 B", WL_RR, 64, 1, SU_PLAIN, 1 },
	{ "rr_1k", "rr 1 KiB", WL_RR, 1024, 1, SU_PLAIN, 1 },
	{ "rr_1k_c" SL_XSTR(BENCH_RR_CLIENTS), "rr 1 KiB x" SL_XSTR(BENCH_RR_CLIENTS),
	  WL_RR, 1024, BENCH_RR_CLIENTS, SU_PLAIN, 1 },
	{ "rr_1k_c" SL_XSTR(BENCH_RR_CLIENTS_MANY),
	  "rr 1 KiB x" SL_XSTR(BENCH_RR_CLIENTS_MANY), WL_RR, 1024,
	  BENCH_RR_CLIENTS_MANY, 1u << SUITE_SIDECAR, 1 },
	{ "rr_1k_c" SL_XSTR(BENCH_RR_CONNS), "rr 1 KiB x" SL_XSTR(BENCH_RR_CONNS), WL_RR,
	  1024, BENCH_RR_PROCS, 1u << SUITE_SIDECAR,
	  BENCH_RR_CONNS / BENCH_RR_PROCS },
	{ "rr_16k", "rr 16 KiB", WL_RR, 16384, 1, SU_PLAIN, 1 },
	{ "stream_64k", "stream 64 KiB", WL_STREAM, BENCH_STREAM_CHUNK, 1,
	  SU_PLAIN | SU_TLS, 1 },
	/* both ways at once: the server echoes a stream of 64 KiB writes */
	{ "duplex_64k", "duplex 64 KiB", WL_DUPLEX, BENCH_STREAM_CHUNK, 1,
	  1u << SUITE_SIDECAR, 1 },
	/* a new connection per request: connect, request, response, close */
	{ "conn_64", "conn 64 B", WL_CONN, 64, BENCH_CONN_CLIENTS,
	  SU_TLS | (1u << SUITE_SIDECAR), 1 },
};
#define NR_WORKLOADS (sizeof(workloads) / sizeof(workloads[0]))

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

static const struct {
	const char *key; /* JSON */
	const char *label; /* table */
	unsigned int kinds; /* KIND() of the workloads it applies to */
	int lower_better;
	int prec; /* decimals in the table */
} metrics[NR_METRICS] = {
	/* conn: from connect() to the whole response */
	[M_P50] = { "p50_us", "p50 us", KIND(WL_RR) | KIND(WL_CONN), 1, 1 },
	[M_P99] = { "p99_us", "p99 us", KIND(WL_RR) | KIND(WL_CONN), 1, 1 },
	[M_TPS] = { "tps", "tx/s", KIND(WL_RR), 0, 0 },
	[M_CPU_100K] = { "cpu_s_per_100k_tx", "CPU s/100k tx", KIND(WL_RR), 1, 3 },
	[M_GBITS] = { "gbit_s", "Gbit/s", KIND(WL_STREAM) | KIND(WL_DUPLEX), 0, 2 },
	[M_CPU_GIB] = { "cpu_s_per_gib", "CPU s/GiB", KIND(WL_STREAM) | KIND(WL_DUPLEX),
			1, 3 },
	[M_CONNS] = { "conns_per_s", "conn/s", KIND(WL_CONN), 0, 0 },
	[M_CPU_CONN] = { "cpu_us_per_conn", "CPU us/conn", KIND(WL_CONN), 1, 1 },
	/* the relays' resident memory with the workload's connections open */
	[M_RSS] = { "relay_rss_mib", "relay RSS MiB", KIND(WL_RR), 1, 1 },
};

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
static void accel_add(struct accel *to, const struct accel *from, int sign)
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
static const char *const pin_name[NR_PINS] = { "none", "same", "split" };

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
static struct {
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
} bs = { .bare_msg_link = -1, .ns_fd = -1 };

static volatile sig_atomic_t bench_stop;

static void on_signal(int sig)
{
	(void)sig;
	bench_stop = 1;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static void tmp_path(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", bs.tmpdir, name);
}

/* A file of relay p: <tmpdir>/<its cgroup's name><ext>. */
static void proc_path(enum proc p, const char *ext, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s%s", bs.tmpdir, cg_name[procs[p].cg], ext);
}

/* ---- cleanup ---------------------------------------------------------- */

static void kill_children(void)
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

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
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
	sh("ip netns del %s 2>/dev/null; ip link del %sh 2>/dev/null", bs.netns,
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
static void bench_cleanup(void)
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
static int make_cgroups(const struct bench_opts *o)
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
static int inherited_sockops(const char *cgroup)
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

static int bare_attach(void)
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
static int set_pin_root(char *buf, const char *suffix)
{
	int n;

	n = snprintf(buf, PATH_MAX, "%s/sidelane-bench-%d%s", SL_BPFFS_DEFAULT,
		     (int)getpid(), suffix);
	return n < 0 || n >= PATH_MAX ? -ENAMETOOLONG : 0;
}

static int sidelane_attach(void)
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
static int hap_sessions(enum proc p, uint64_t *out)
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
static int hap_threads(enum proc p, unsigned int *out)
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

/* CPU seconds used so far by the relays of mode m (0 without any). */
/* The host's busy CPU time so far, in seconds: the "cpu" line of
 * /proc/stat less idle and iowait (USER_HZ ticks).
 */
static int host_busy(double *sec)
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

static int proxy_cpu(enum mode m, double *sec)
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

static int read_accel(enum mode m, struct accel *a)
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

/* ---- the two ends of a measurement (children) --------------------------- */

/* Record what failed for the parent; returns the child's exit status. */
static int side_fail(struct side_result *r, int err, const char *what)
{
	r->err = err;
	snprintf(r->msg, sizeof(r->msg), "%s: %s", what, strerror(err));
	return 1;
}

/* Move the calling process into cgroup: its sockets will belong to it. */
static int enter_cgroup(const char *cgroup)
{
	char path[PATH_MAX + 16];
	int fd, n, err = 0;

	snprintf(path, sizeof(path), "%s/cgroup.procs", cgroup);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return errno;
	n = dprintf(fd, "%d\n", (int)getpid());
	if (n < 0)
		err = errno;
	close(fd);
	return err;
}

static void set_timeouts(int fd, int nodelay)
{
	struct timeval tv = { .tv_sec = BENCH_IO_TIMEOUT_S };
	int one = 1;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (nodelay)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* A non-blocking socket's EAGAIN: wait in poll() for events, as an event
 * loop would. 0 to retry, else a positive errno (ETIMEDOUT).
 */
static int io_wait(int fd, short events)
{
	struct pollfd p = { .fd = fd, .events = events };
	int n;

	if (!(fcntl(fd, F_GETFL) & O_NONBLOCK))
		return EAGAIN; /* a blocking socket's SO_*TIMEO ran out */
	do
		n = poll(&p, 1, BENCH_IO_TIMEOUT_S * 1000);
	while (n < 0 && errno == EINTR && !bench_stop);
	return n > 0 ? 0 : n ? errno : ETIMEDOUT;
}

/* 0, or a positive errno (EPIPE when the peer closed, EINTR on a stop). */
static int write_full(int fd, const char *buf, size_t len)
{
	ssize_t n;

	while (len) {
		n = write(fd, buf, len);
		if (n < 0) {
			if (errno == EINTR && !bench_stop)
				continue;
			if (errno == EAGAIN && !io_wait(fd, POLLOUT))
				continue;
			return errno;
		}
		buf += n;
		len -= n;
	}
	return 0;
}

/* 0, EPIPE on a premature EOF, or a positive errno. */
static int read_full(int fd, char *buf, size_t len)
{
	ssize_t n;

	while (len) {
		n = read(fd, buf, len);
		if (n < 0) {
			if (errno == EINTR && !bench_stop)
				continue;
			if (errno == EAGAIN && !io_wait(fd, POLLIN))
				continue;
			return errno;
		}
		if (n == 0)
			return EPIPE;
		buf += n;
		len -= n;
	}
	return 0;
}

/* Run fn(i, arg) in n (at most BENCH_CLIENTS_MAX) processes: this one
 * (i = 0) and n - 1 children that die with it. 0 when every one returned 0,
 * else 1.
 */
static int run_workers(int n, int (*fn)(int, void *), void *arg)
{
	pid_t pid[BENCH_CLIENTS_MAX], self = getpid();
	int i, st, ret;

	fflush(NULL);
	for (i = 1; i < n; i++) {
		pid[i] = fork();
		if (pid[i] < 0) {
			n = i;
			ret = 1;
			goto reap;
		}
		if (!pid[i]) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			_exit(getppid() == self ? fn(i, arg) : 1);
		}
	}
	ret = fn(0, arg);
reap:
	for (i = 1; i < n; i++)
		if (waitpid(pid[i], &st, 0) < 0 || !WIFEXITED(st) ||
		    WEXITSTATUS(st))
			ret = 1;
	return ret;
}

/* What the workers at either end of a measurement share. */
struct worker_args {
	const struct workload *wl;
	int lfd; /* server: the listener */
	struct sockaddr_in dst; /* client */
	uint64_t measure, end; /* client: the measured window */
	uint64_t slice; /* client: lat_ns samples per client */
	struct bench_shm *shm;
};

/* Servers that accept until told end only once nothing new came for
 * BENCH_SETTLE_MS: connects the client made before it ended may still sit
 * in a relay's accept queue and reach the fixed upstream port later; they
 * must land here, not on the next measurement's server.
 */
static bool srv_done(const struct bench_shm *shm)
{
	return (__atomic_load_n(&shm->stop, __ATOMIC_RELAXED) &&
		now_ns() - __atomic_load_n(&shm->srv_last_ns, __ATOMIC_RELAXED) >
			BENCH_SETTLE_MS * 1000000ull) ||
	       bench_stop;
}

static void srv_accepted(struct bench_shm *shm)
{
	__atomic_store_n(&shm->srv_last_ns, now_ns(), __ATOMIC_RELAXED);
}

/* A server of the conn workload: accept, echo one request, close first (the
 * client's end keeps no TIME_WAIT, so its ports last), until shm->stop.
 */
static int conn_server(int idx, void *arg)
{
	const struct worker_args *a = arg;
	struct pollfd pfd = { .fd = a->lfd, .events = POLLIN };
	struct side_result *r = &a->shm->server;
	char buf[64];
	int fd, err;

	(void)idx;
	if (a->wl->size > sizeof(buf))
		return side_fail(r, EMSGSIZE, "conn request size");
	while (!srv_done(a->shm)) {
		if (poll(&pfd, 1, 20) != 1)
			continue;
		/* all servers wake; one gets the connection */
		fd = accept4(a->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0 && (errno == EAGAIN || errno == EINTR ||
			       errno == ECONNABORTED))
			continue;
		if (fd < 0)
			return side_fail(r, errno, "accept");
		srv_accepted(a->shm);
		set_timeouts(fd, 1);
		err = read_full(fd, buf, a->wl->size);
		if (!err)
			err = write_full(fd, buf, a->wl->size);
		close(fd);
		/* past the client's end, a cut connection is its leftover */
		if (err && !__atomic_load_n(&a->shm->stop, __ATOMIC_RELAXED))
			return side_fail(r, err, "server conn");
	}
	return 0;
}

/* A server of one connection of rr or stream: echo each request until the
 * client closes (rr), or count the stream's chunks up to the end chunk,
 * answer with the byte count and close only after the client did (stream).
 */
static int serve_one(int idx, void *arg)
{
	const struct worker_args *a = arg;
	const struct workload *wl = a->wl;
	struct bench_shm *shm = a->shm;
	struct side_result *r = &shm->server;
	uint64_t total = 0;
	int fd = -1, err, ret = 1;
	char *buf;
	ssize_t n;

	(void)idx;
	buf = malloc(wl->size);
	if (!buf)
		return side_fail(r, ENOMEM, "malloc");
	/* each server takes one of the clients' connections */
	fd = accept4(a->lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0) {
		ret = side_fail(r, errno == EAGAIN ? ETIMEDOUT : errno, "accept");
		goto out;
	}
	close(a->lfd);
	set_timeouts(fd, wl->kind == WL_RR);

	if (wl->kind == WL_RR) {
		/* bounded by the client: it closes after its duration */
		for (;;) {
			err = read_full(fd, buf, wl->size);
			if (err == EPIPE)
				break; /* client done */
			if (!err)
				err = write_full(fd, buf, wl->size);
			if (err) {
				ret = side_fail(r, err, "server echo");
				goto out;
			}
		}
		ret = 0;
		goto out;
	}
	if (wl->kind == WL_DUPLEX) {
		/* echo until the client's half-close, then ours */
		while ((n = read(fd, buf, wl->size)) > 0) {
			err = write_full(fd, buf, n);
			if (err) {
				ret = side_fail(r, err, "server echo");
				goto out;
			}
			total += n;
		}
		shm->bytes_all = total;
		shutdown(fd, SHUT_WR);
		ret = n ? side_fail(r, errno, "server read") : 0;
		goto out;
	}
	/* bounded by the client: it sends the end chunk after its duration */
	do {
		err = read_full(fd, buf, wl->size);
		if (!err && buf[0] != STREAM_DATA && buf[0] != STREAM_END)
			err = EBADMSG;
		if (err) {
			ret = side_fail(r, err, "server read");
			goto out;
		}
		total += wl->size;
		shm->bytes_recv = total;
	} while (buf[0] == STREAM_DATA);
	shm->bytes_all = total;
	err = write_full(fd, (char *)&total, sizeof(total));
	if (err) {
		ret = side_fail(r, err, "server reply");
		goto out;
	}
	/* wait for the client's close (EOF): closing first could drop the
	 * redirected reply with the client's psock
	 */
	n = read(fd, buf, 1);
	ret = n ? side_fail(r, n < 0 ? errno : EBADMSG, "server wait EOF") : 0;
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return ret;
}

/* A server of an rr workload with many connections a client: echo what
 * comes on every connection it accepts, one epoll loop, until shm->stop.
 */
static int serve_many(int idx, void *arg)
{
	const struct worker_args *a = arg;
	struct side_result *r = &a->shm->server;
	struct epoll_event ev = { .events = EPOLLIN }, evs[64];
	int ep, k, e, fd, err, ret = 1;
	char *buf = malloc(BENCH_STREAM_CHUNK);
	ssize_t n;

	(void)idx;
	ep = epoll_create1(EPOLL_CLOEXEC);
	ev.data.fd = a->lfd;
	if (!buf || ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, a->lfd, &ev)) {
		ret = side_fail(r, buf ? errno : ENOMEM, "server setup");
		goto out;
	}
	while (!srv_done(a->shm)) {
		k = epoll_wait(ep, evs, 64, 20);
		for (e = 0; e < k; e++) {
			fd = evs[e].data.fd;
			if (fd == a->lfd) {
				/* the other servers race for it: EAGAIN */
				while ((fd = accept4(a->lfd, NULL, NULL,
						     SOCK_CLOEXEC)) >= 0) {
					srv_accepted(a->shm);
					set_timeouts(fd, 1);
					ev.data.fd = fd;
					epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
				}
				continue;
			}
			n = recv(fd, buf, BENCH_STREAM_CHUNK, MSG_DONTWAIT);
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			err = n > 0 ? write_full(fd, buf, n) : 0;
			if (n <= 0 || err)
				close(fd); /* the client's close, or its end */
		}
	}
	ret = 0;
out:
	if (ep >= 0)
		close(ep);
	free(buf);
	return ret;
}

/* Server: listen on sa (port 0: any), report the port on port_pipe, then
 * serve with wl->clients processes: one connection each (rr, stream), or
 * connections until the parent says stop (conn).
 */
static int run_server(const struct workload *wl, struct sockaddr_in sa,
		      int port_pipe, struct side_result *r,
		      struct bench_shm *shm)
{
	socklen_t salen = sizeof(sa);
	int lfd, one = 1;
	uint16_t port;

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	/* a fixed port: the last round's connection may be in TIME_WAIT */
	if (lfd >= 0 && sa.sin_port)
		setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    listen(lfd, wl->kind == WL_CONN ? 128 :
			wl->conns > 1	   ? SOMAXCONN :
					     wl->clients) ||
	    getsockname(lfd, (struct sockaddr *)&sa, &salen))
		return side_fail(r, errno, "server listen");
	port = ntohs(sa.sin_port);
	if (write(port_pipe, &port, sizeof(port)) != sizeof(port))
		return side_fail(r, errno, "report port");
	close(port_pipe);

	/* conn polls, to see the stop; serve_one's accept() waits
	 * BENCH_IO_TIMEOUT_S at most (SO_RCVTIMEO)
	 */
	if ((wl->kind == WL_CONN || wl->conns > 1) &&
	    fcntl(lfd, F_SETFL, O_NONBLOCK))
		return side_fail(r, errno, "listener O_NONBLOCK");
	set_timeouts(lfd, 0);
	return run_workers(wl->clients,
			   wl->kind == WL_CONN ? conn_server :
			   wl->conns > 1       ? serve_many :
						 serve_one,
			   &(struct worker_args){ .wl = wl, .lfd = lfd,
						  .shm = shm });
}

static int client_connect(struct sockaddr_in sa, int nodelay,
			  struct side_result *r)
{
	socklen_t len = sizeof(int);
	int fd, err = 0;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC |
				     (bs.client_nb ? SOCK_NONBLOCK : 0), 0);
	if (fd < 0) {
		side_fail(r, errno, "client socket");
		return -1;
	}
	set_timeouts(fd, nodelay);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		err = errno;
		if (err == EINPROGRESS) {
			err = io_wait(fd, POLLOUT);
			if (!err && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len))
				err = errno;
		}
	}
	if (err) {
		side_fail(r, err, "connect");
		close(fd);
		return -1;
	}
	return fd;
}

/* Client idx's transaction from t0 to t1 is done: counted, and timed into
 * the client's slice of lat_ns when it began in the measured window.
 */
static void tx_done(const struct worker_args *a, int idx, struct tx_count *c,
		    uint64_t t0, uint64_t t1)
{
	c->tx_all++;
	if (t0 < a->measure)
		return;
	c->tx++;
	c->end_ns = t1;
	if (c->nlat < a->slice)
		a->shm->lat_ns[idx * a->slice + c->nlat++] =
			t1 - t0 > UINT32_MAX ? UINT32_MAX : t1 - t0;
}

/* A client of rr, on a connection of its own: one outstanding request of
 * wl->size bytes, echoed back. Every byte of a request carries its sequence
 * number, checked at both ends of the echo.
 */
static int rr_client(int idx, void *arg)
{
	const struct worker_args *a = arg;
	struct side_result *r = &a->shm->client;
	size_t size = a->wl->size;
	struct tx_count c = {};
	uint64_t t0, t1;
	int fd, err, ret = 1;
	uint8_t seq;
	char *buf;

	buf = malloc(size);
	if (!buf)
		return side_fail(r, ENOMEM, "malloc");
	fd = client_connect(a->dst, 1, r);
	if (fd < 0)
		goto out;
	for (t1 = now_ns(); !bench_stop && t1 < a->end;) {
		seq = (uint8_t)c.tx_all;
		memset(buf, seq, size);
		t0 = now_ns();
		err = write_full(fd, buf, size);
		if (!err)
			err = read_full(fd, buf, size);
		t1 = now_ns();
		if (!err && ((uint8_t)buf[0] != seq || (uint8_t)buf[size - 1] != seq))
			err = EBADMSG;
		if (err) {
			ret = side_fail(r, err, "client request");
			goto out;
		}
		tx_done(a, idx, &c, t0, t1);
	}
	a->shm->clients[idx] = c;
	ret = bench_stop ? 1 : 0;
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return ret;
}

/* A client of rr over wl->conns connections of its own, one epoll loop:
 * each connection a closed loop of one request of wl->size bytes and its
 * echo, every byte of which carries the request's sequence number.
 */
struct rr_conn {
	int fd;
	uint8_t seq;
	size_t got;
	uint64_t t0;
};

static int rr_send(struct rr_conn *x, char *req, size_t size)
{
	memset(req, x->seq, size);
	x->got = 0;
	x->t0 = now_ns();
	return write_full(x->fd, req, size);
}

static int rr_many_client(int idx, void *arg)
{
	const struct worker_args *a = arg;
	struct side_result *r = &a->shm->client;
	size_t size = a->wl->size, i, j, n = (size_t)a->wl->conns;
	struct rr_conn *cs = calloc(n, sizeof(*cs));
	char *req = malloc(size), *buf = malloc(size);
	struct epoll_event evs[64];
	struct tx_count c = {};
	int ep = epoll_create1(EPOLL_CLOEXEC), k, e, err = 0, ret = 1;
	ssize_t got;

	if (!cs || !req || !buf || ep < 0) {
		side_fail(r, ENOMEM, "client setup");
		goto out;
	}
	for (i = 0; i < n; i++)
		cs[i].fd = -1;
	for (i = 0; i < n; i++) {
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = i };

		cs[i].fd = client_connect(a->dst, 1, r);
		if (cs[i].fd < 0)
			goto out;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev)) {
			side_fail(r, errno, "epoll_ctl");
			goto out;
		}
	}
	for (i = 0; i < n && !err; i++)
		err = rr_send(&cs[i], req, size);
	while (!err && !bench_stop && now_ns() < a->end) {
		k = epoll_wait(ep, evs, 64, 1000);
		for (e = 0; e < k && !err; e++) {
			struct rr_conn *x = &cs[evs[e].data.u64];

			got = recv(x->fd, buf, size - x->got, MSG_DONTWAIT);
			if (got < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (got <= 0) {
				err = got ? errno : EPIPE;
				break;
			}
			for (j = 0; j < (size_t)got; j++)
				if ((uint8_t)buf[j] != x->seq)
					err = EBADMSG;
			x->got += (size_t)got;
			if (err || x->got < size)
				continue;
			tx_done(a, idx, &c, x->t0, now_ns());
			x->seq++;
			err = rr_send(x, req, size);
		}
	}
	if (err) {
		side_fail(r, err, "client request");
		goto out;
	}
	a->shm->clients[idx] = c;
	ret = bench_stop ? 1 : 0;
out:
	for (i = 0; cs && i < n; i++)
		if (cs[i].fd >= 0)
			close(cs[i].fd);
	if (ep >= 0)
		close(ep);
	free(cs);
	free(req);
	free(buf);
	return ret;
}

/* Client, streaming: wl->size writes for the duration, then an end chunk; the
 * window ends when the server's byte count comes back, so it covers delivery.
 * No half-close: with sockmap redirects, a reply racing the FIN and the
 * sockets' teardown was lost about once in 300 runs (kernel 6.18).
 */
/* The duplex stream's content: each aligned 8 bytes hold their own offset
 * in the stream, so the echo is checked byte for byte and a byte out of
 * place names where it came from.
 */
static void duplex_fill(uint64_t *w, size_t len, uint64_t at)
{
	size_t i;

	for (i = 0; i < len / 8; i++)
		w[i] = at + i * 8;
}

/* The echo's n bytes at stream offset at, in (scratch: room for n + 16):
 * 0 or -1, with *bad the first offset that differs and *from what it holds.
 */
static int duplex_check(const char *in, size_t n, uint64_t at, uint64_t *want,
			uint64_t *bad, uint64_t *from)
{
	uint64_t base = at & ~7ULL;
	size_t skip = at - base, i;

	duplex_fill(want, skip + n + 8, base);
	if (!memcmp((char *)want + skip, in, n))
		return 0;
	for (i = 0; i < n && in[i] == ((char *)want)[skip + i]; i++)
		;
	*bad = at + i;
	/* the whole word at or after it, if the echo holds one */
	i = (8 - (at + i) % 8) % 8 + i;
	*from = ~0ULL;
	if (i + 8 <= n)
		memcpy(from, in + i, 8);
	return -1;
}

/* Client, full duplex: wl->size writes for the duration while reading the
 * echo, from one poll() loop (non-blocking, whatever --client says: two
 * blocked writers would deadlock); then a half-close and the rest of the
 * echo to EOF. The window's figure is the bytes echoed back in it, one way.
 * Every byte of the echo is checked (duplex_fill).
 */
static int run_client_duplex(const struct workload *wl, struct sockaddr_in dst,
			     uint64_t warmup_ns, uint64_t dur_ns,
			     struct bench_shm *shm)
{
	struct side_result *r = &shm->client;
	uint64_t t, measure = 0, end, warm = 0, sent = 0, got = 0, bad, from;
	uint64_t *want;
	size_t off = 0;
	char *buf, *in;
	int fd, shut = 0;
	ssize_t n;

	buf = malloc(wl->size);
	in = malloc(wl->size);
	want = malloc(wl->size + 24);
	if (!buf || !in || !want)
		return side_fail(r, ENOMEM, "malloc");
	fd = client_connect(dst, 0, r);
	if (fd < 0 || fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK))
		return side_fail(r, errno, "client socket");
	t = now_ns();
	end = t + warmup_ns + dur_ns;
	while (!bench_stop) {
		struct pollfd p = { .fd = fd, .events = POLLIN | (shut ? 0 : POLLOUT) };

		if (!measure && t >= end - dur_ns) {
			measure = t;
			warm = got;
		}
		if (!shut && t >= end) {
			shutdown(fd, SHUT_WR);
			shut = 1;
		}
		if (poll(&p, 1, BENCH_IO_TIMEOUT_S * 1000) != 1)
			return side_fail(r, ETIMEDOUT, "client poll");
		if (!shut && (p.revents & POLLOUT)) {
			if (!off) /* wl->size is a multiple of 8 */
				duplex_fill((uint64_t *)buf, wl->size, sent);
			n = write(fd, buf + off, wl->size - off);
			if (n > 0) {
				sent += n;
				off = (off + n) % wl->size;
			} else if (n < 0 && errno != EAGAIN) {
				return side_fail(r, errno, "client write");
			}
		}
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			n = read(fd, in, wl->size);
			if (n < 0 && errno != EAGAIN)
				return side_fail(r, errno, "client read");
			if (!n)
				break; /* the server's half-close after the echo */
			if (n > 0 && duplex_check(in, n, got, want, &bad, &from)) {
				snprintf(r->msg, sizeof(r->msg),
					 "echo differs at byte %llu of %llu "
					 "sent: it holds byte %llu's",
					 (unsigned long long)bad,
					 (unsigned long long)sent,
					 (unsigned long long)from);
				r->err = EBADMSG;
				return 1;
			}
			if (n > 0)
				got += n;
		}
		shm->bytes_sent = sent;
		shm->bytes_recv = got;
		t = now_ns();
	}
	t = now_ns();
	if (got != sent)
		return side_fail(r, EBADMSG, "echo shorter than what was sent");
	if (!measure)
		measure = t;
	/* the window ends when the last byte is back */
	shm->bytes = got - warm;
	shm->elapsed_ns = t - measure;
	close(fd);
	free(buf);
	free(in);
	free(want);
	return bench_stop ? 1 : 0;
}

static int run_client_stream(const struct workload *wl, struct sockaddr_in dst,
			     uint64_t warmup_ns, uint64_t dur_ns,
			     struct bench_shm *shm)
{
	struct side_result *r = &shm->client;
	uint64_t t, measure = 0, end, warm_bytes = 0, sent = 0, total;
	char *buf;
	int fd, err;

	buf = malloc(wl->size);
	if (!buf)
		return side_fail(r, ENOMEM, "malloc");
	memset(buf, STREAM_DATA, wl->size);
	fd = client_connect(dst, 0, r);
	if (fd < 0)
		return 1;
	t = now_ns();
	end = t + warmup_ns + dur_ns;
	while (!bench_stop && t < end) {
		if (!measure && t >= end - dur_ns) {
			measure = t;
			warm_bytes = sent;
		}
		err = write_full(fd, buf, wl->size);
		if (err)
			return side_fail(r, err, "client write");
		sent += wl->size;
		shm->bytes_sent = sent;
		t = now_ns();
	}
	buf[0] = STREAM_END;
	err = write_full(fd, buf, wl->size);
	if (err)
		return side_fail(r, err, "client write end");
	sent += wl->size;
	shm->bytes_sent = sent;
	err = read_full(fd, (char *)&total, sizeof(total));
	if (err)
		return side_fail(r, err, "read byte count");
	t = now_ns();
	if (total != sent)
		return side_fail(r, EBADMSG, "server byte count differs");
	if (!measure)
		measure = t;
	shm->bytes = sent - warm_bytes;
	shm->elapsed_ns = t - measure;
	close(fd);
	free(buf);
	return bench_stop ? 1 : 0;
}

/* A client of the conn workload, closed loop: connect, request, response
 * (timed from the connect), the server's EOF, close. Every byte of a
 * request carries its sequence number, checked in the echo.
 */
static int conn_client(int idx, void *arg)
{
	const struct worker_args *a = arg;
	struct side_result *r = &a->shm->client;
	size_t size = a->wl->size;
	struct tx_count c = {};
	uint64_t t0, t1 = now_ns();
	char buf[64], eof;
	int fd, err;
	uint8_t seq;
	ssize_t n;

	if (size > sizeof(buf))
		return side_fail(r, EMSGSIZE, "conn request size");
	for (seq = idx; !bench_stop && t1 < a->end; seq++) {
		memset(buf, seq, size);
		t0 = now_ns();
		fd = client_connect(a->dst, 1, r);
		if (fd < 0)
			return 1;
		err = write_full(fd, buf, size);
		if (!err)
			err = read_full(fd, buf, size);
		t1 = now_ns();
		if (!err) {
			/* the server's close: a non-blocking client waits */
			do
				n = read(fd, &eof, 1);
			while (n < 0 && errno == EAGAIN && !io_wait(fd, POLLIN));
			err = n < 0 ? errno : n ? EBADMSG : 0;
		}
		close(fd);
		if (err)
			return side_fail(r, err, "conn request");
		if ((uint8_t)buf[0] != seq || (uint8_t)buf[size - 1] != seq)
			return side_fail(r, EBADMSG, "echo mismatch");
		tx_done(a, idx, &c, t0, t1);
	}
	a->shm->clients[idx] = c;
	return bench_stop ? 1 : 0;
}

/* Client of rr and conn: wl->clients closed loops at once, their counts
 * summed and their latency slices joined; the window ends with the last
 * response.
 */
static int run_client_loops(const struct workload *wl, struct sockaddr_in dst,
			    uint64_t warmup_ns, uint64_t dur_ns,
			    struct bench_shm *shm)
{
	struct worker_args a = { .wl = wl, .dst = dst, .shm = shm };
	const struct tx_count *c;
	uint64_t last = 0;
	int i, ret;

	a.slice = shm->lat_cap / wl->clients;
	a.measure = now_ns() + warmup_ns;
	a.end = a.measure + dur_ns;
	ret = run_workers(wl->clients,
			  wl->kind != WL_RR ? conn_client :
			  wl->conns > 1	    ? rr_many_client :
					      rr_client,
			  &a);
	for (i = 0; i < wl->clients; i++) {
		c = &shm->clients[i];
		shm->tx += c->tx;
		shm->tx_all += c->tx_all;
		memmove(shm->lat_ns + shm->nlat, shm->lat_ns + i * a.slice,
			c->nlat * sizeof(shm->lat_ns[0]));
		shm->nlat += c->nlat;
		if (c->end_ns > last)
			last = c->end_ns;
	}
	shm->elapsed_ns = last > a.measure ? last - a.measure : 0;
	return ret;
}

/* ---- --suite sidecar and tls: namespace, the relays ---------------------- */

static struct sockaddr_in addr_in(const char *ip, uint16_t port)
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
static int pick_port(uint16_t *port)
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

static int write_text(const char *path, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int write_text(const char *path, const char *fmt, ...)
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
static void dump_log(const char *path)
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
static int netns_setup(void)
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
	err = sh("ip netns add %s && "
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
static int start_proc(enum proc p, const char *bin, char *const argv[],
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
static int tcp_ready(const void *ctx)
{
	return tcp_probe(*(const struct sockaddr_in *)ctx);
}

/* Ready: the getsockopt link is pinned (capture is attached) and the proxy
 * accepts on the outbound listener. Our connect is not captured (we are
 * not in the app's cgroup): the proxy refuses it, finding no original
 * destination, and logs that.
 */
/* A sidecar suite sidelane: its pin root and outbound port. */
struct sl_sidecar {
	enum proc proc;
	enum cg app;
	char *pin_root;
	uint16_t *port;
	int *attached;
	int splice; /* proxy.splice */
};

static int sidelane_ready(const void *ctx)
{
	const struct sl_sidecar *sc = ctx;
	char link[PATH_MAX + 32];

	snprintf(link, sizeof(link), "%s/link_getsockopt", sc->pin_root);
	if (access(link, F_OK))
		return -errno;
	return tcp_probe(addr_in("127.0.0.1", *sc->port));
}

/* Every bench sidelane: no admin endpoint (its fixed port would clash with
 * a sidelane of the host's), no drain wait when it is stopped.
 */
#define SL_BENCH_ADMIN                                                         \
	"admin:\n"                                                             \
	"  listen: \"\"\n"                                                     \
	"  drain_timeout_ms: 0\n"

/* The real binary as relay p: `sidelane run` with the config
 * <tmpdir>/<p>.yaml, the app's cgroup app, p's own, a pin root of ours
 * (*attached: we detach it, the run leaves its pins on SIGTERM).
 */
static int start_sidelane_proc(enum proc p, enum cg app, const char *pin_root,
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

static int start_sidelane(const struct sl_sidecar *sc)
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

static const struct sl_sidecar sidecar_sl = {
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
static int find_bin(const char *name, char *buf, size_t len, int mode)
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
static int start_haproxy_proc(enum mode m, enum proc p, unsigned int nbthread,
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
static int start_haproxy(enum mode m)
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

/* ---- --suite tls: certificates and the three pairs ---------------------- */

/* B's listener of TLS mode m, in the namespace. */
static struct sockaddr_in tls_b_addr(enum mode m)
{
	return addr_in(BENCH_NS_IP, BENCH_TLS_B_PORT + (m - MODE_TLS_SL));
}

/* The certificates, made in tmpdir with the openssl CLI: a CA, and leaves
 * for A (a client) and B (a server) with their SPIFFE IDs as URI SAN; EC
 * P-256 keys. <leaf>.crt.key links to <leaf>.key, where haproxy looks for a
 * key its certificate file lacks.
 */
static int make_certs(void)
{
	static const char *const leaf[2][3] = {
		{ "a", BENCH_ID_A, "clientAuth" },
		{ "b", BENCH_ID_B, "serverAuth" },
	};
	static const char newkey[] =
		"-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
	char bin[PATH_MAX], path[PATH_MAX], log[PATH_MAX];
	const char *d = bs.tmpdir;
	int i, err;

	err = find_bin("openssl", bin, sizeof(bin), NR_MODES);
	if (err)
		return err;
	tmp_path(log, sizeof(log), "certs.log");
	err = sh("cd %s && %s req -x509 -new %s -days 1 -subj '/CN=sidelane "
		 "bench CA' -addext basicConstraints=critical,CA:TRUE -addext "
		 "keyUsage=critical,keyCertSign,cRLSign -keyout ca.key -out "
		 "ca.crt >%s 2>&1",
		 d, bin, newkey, log);
	for (i = 0; i < 2 && !err; i++) {
		snprintf(path, sizeof(path), "%s/%s.ext", d, leaf[i][0]);
		err = write_text(path,
				 "basicConstraints=critical,CA:FALSE\n"
				 "keyUsage=critical,digitalSignature\n"
				 "extendedKeyUsage=%s\n"
				 "subjectAltName=URI:%s\n",
				 leaf[i][2], leaf[i][1]);
		if (!err)
			err = sh("cd %s && %s req -new %s -subj /CN=%s -keyout "
				 "%s.key -out %s.csr >>%s 2>&1 && %s x509 -req "
				 "-in %s.csr -CA ca.crt -CAkey ca.key "
				 "-set_serial %d -days 1 -extfile %s.ext -out "
				 "%s.crt >>%s 2>&1 && ln -s %s.key %s.crt.key",
				 d, bin, newkey, leaf[i][0], leaf[i][0],
				 leaf[i][0], log, bin, leaf[i][0], i + 2,
				 leaf[i][0], leaf[i][0], log, leaf[i][0],
				 leaf[i][0]);
	}
	if (err) {
		pr_warn("making the certificates with %s failed\n", bin);
		dump_log(log);
	}
	return err;
}

/* sidelane A (side 0: its ambassador originates mTLS to B, a tls.mesh
 * destination whose ID must match) or B (side 1: its inbound listener
 * terminates mTLS, admits A's ID and relays to the server); capture off.
 * The schema is the one `sidelane config` documents.
 */
static int start_tls_sidelane(int side)
{
	struct sockaddr_in b = tls_b_addr(MODE_TLS_SL), a;
	const char *d = bs.tmpdir;
	char cfg[PATH_MAX], role[512];
	int err;

	err = set_pin_root(bs.pin_ab[side], side ? "-b" : "-a");
	if (!err && !side)
		err = pick_port(&bs.front_port[MODE_TLS_SL]);
	if (err)
		return err;
	a = addr_in("127.0.0.1", bs.front_port[MODE_TLS_SL]);
	if (side)
		snprintf(role, sizeof(role),
			 "inbound:\n"
			 "  enabled: true\n"
			 "  listen: \"" BENCH_NS_IP ":%u\"\n"
			 "  mode: listener\n"
			 "  app_port: %d\n"
			 "  default: deny\n"
			 "  identities:\n"
			 "    - id: \"spiffe://bench.local/ns/a/*\"\n"
			 "      action: allow\n"
			 "proxy:\n"
			 "  workers: 1\n",
			 ntohs(b.sin_port), BENCH_UPSTREAM_PORT);
	else
		snprintf(role, sizeof(role),
			 "  mesh:\n"
			 "    - cidr: \"" BENCH_NS_IP "/32\"\n"
			 "      ports: [\"%u\"]\n"
			 "      identities: [\"spiffe://bench.local/ns/b/*\"]\n"
			 "inbound:\n"
			 "  enabled: false\n"
			 "proxy:\n"
			 "  workers: 1\n"
			 "  ambassadors:\n"
			 "    - listen: \"127.0.0.1:%u\"\n"
			 "      upstream: \"" BENCH_NS_IP ":%u\"\n",
			 ntohs(b.sin_port), ntohs(a.sin_port), ntohs(b.sin_port));
	proc_path(side ? PROC_SL_B : PROC_SL_A, ".yaml", cfg, sizeof(cfg));
	err = write_text(cfg,
			 "# sidelane bench --suite tls: %s\n"
			 "pin_root: %s\n"
			 "tls:\n"
			 "  cert: %s/%c.crt\n"
			 "  key: %s/%c.key\n"
			 "  ca: %s/ca.crt\n"
			 "  min_version: \"1.3\"\n"
			 "%s"
			 "capture:\n"
			 "  enabled: false\n"
			 SL_BENCH_ADMIN,
			 side ? "B" : "A", bs.pin_ab[side], d, 'a' + side, d,
			 'a' + side, d, role);
	if (err) {
		pr_warn("sidelane config %s: %s\n", cfg, strerror(-err));
		return err;
	}
	return start_sidelane_proc(side ? PROC_SL_B : PROC_SL_A,
				   side ? CG_TLS_APP_B : CG_TLS_APP_A,
				   bs.pin_ab[side], &bs.ab_attached[side],
				   tcp_ready, side ? &b : &a);
}

/* haproxy B (side 1: `bind ... ssl`, a client certificate required) or A
 * (side 0: `server ... ssl`, B's certificate verified).
 */
static int start_tls_haproxy(int side)
{
	struct sockaddr_in b = tls_b_addr(MODE_TLS_HAP);
	char bind[512], server[512], tls[384];
	const char *d = bs.tmpdir;
	int err;

	snprintf(tls, sizeof(tls),
		 "ssl crt %s/%c.crt ca-file %s/ca.crt verify required "
		 "ssl-min-ver TLSv1.3 ciphersuites " BENCH_TLS_SUITE,
		 d, 'a' + side, d);
	if (side) {
		snprintf(bind, sizeof(bind), BENCH_NS_IP ":%u %s",
			 ntohs(b.sin_port), tls);
		return start_haproxy_proc(MODE_TLS_HAP, PROC_HAP_B, 1, bind,
					  "127.0.0.1:" SL_XSTR(BENCH_UPSTREAM_PORT));
	}
	err = pick_port(&bs.front_port[MODE_TLS_HAP]);
	if (err)
		return err;
	snprintf(bind, sizeof(bind), "127.0.0.1:%u", bs.front_port[MODE_TLS_HAP]);
	snprintf(server, sizeof(server), BENCH_NS_IP ":%u %s", ntohs(b.sin_port),
		 tls);
	return start_haproxy_proc(MODE_TLS_HAP, PROC_HAP_A, 1, bind, server);
}

/* stunnel B (side 1: server mode, a client certificate required and
 * verified) or A (side 0: client mode, B's certificate verified); both
 * TLS 1.3 only, warnings only in the log.
 */
static int start_tls_stunnel(int side)
{
	struct sockaddr_in b = tls_b_addr(MODE_TLS_ST), acc;
	char bin[PATH_MAX], cfg[PATH_MAX], con[32];
	char *argv[] = { "stunnel", cfg, NULL };
	enum proc p = side ? PROC_ST_B : PROC_ST_A;
	const char *d = bs.tmpdir;
	int err;

	err = find_bin("stunnel", bin, sizeof(bin), MODE_TLS_ST);
	if (!err && !side)
		err = pick_port(&bs.front_port[MODE_TLS_ST]);
	if (err)
		return err;
	acc = side ? b : addr_in("127.0.0.1", bs.front_port[MODE_TLS_ST]);
	if (side)
		snprintf(con, sizeof(con), "127.0.0.1:%d", BENCH_UPSTREAM_PORT);
	else
		snprintf(con, sizeof(con), BENCH_NS_IP ":%u", ntohs(b.sin_port));
	proc_path(p, ".conf", cfg, sizeof(cfg));
	err = write_text(cfg,
			 "; sidelane bench --suite tls: %s\n"
			 "foreground = yes\n"
			 "pid =\n"
			 "syslog = no\n"
			 "debug = warning\n"
			 "[bench]\n"
			 "client = %s\n"
			 "accept = %s:%u\n"
			 "connect = %s\n"
			 "cert = %s/%c.crt\n"
			 "key = %s/%c.key\n"
			 "CAfile = %s/ca.crt\n"
			 "verifyChain = yes\n"
			 "%s"
			 "sslVersionMin = TLSv1.3\n"
			 "ciphersuites = " BENCH_TLS_SUITE "\n",
			 side ? "B" : "A", side ? "no" : "yes",
			 inet_ntoa(acc.sin_addr), ntohs(acc.sin_port), con, d,
			 'a' + side, d, 'a' + side, d,
			 side ? "requireCert = yes\n" : "");
	if (err) {
		pr_warn("stunnel config %s: %s\n", cfg, strerror(-err));
		return err;
	}
	return start_proc(p, bin, argv, SIGKILL, tcp_ready, &acc);
}

/* B of mode m must refuse a client without a certificate: a TLS 1.3
 * handshake without one, then a read, must end in an alert from B (TLS 1.3
 * sends it after the client's handshake is done). B's own certificate must
 * verify against the CA, and B choose BENCH_TLS_SUITE from OpenSSL's
 * default offer. 0, or -EPROTO with the reason said.
 */
static int check_mtls(enum mode m)
{
	struct sockaddr_in b = tls_b_addr(m);
	struct side_result r = {};
	char ca[PATH_MAX], c;
	const char *why = "B accepted a client without a certificate";
	unsigned long e = 0;
	SSL_CTX *ctx;
	SSL *ssl = NULL;
	int fd = -1, err = -EPROTO;

	tmp_path(ca, sizeof(ca), "ca.crt");
	ERR_clear_error();
	ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
	    SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
		why = "OpenSSL client context";
		goto out;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	fd = client_connect(b, 1, &r);
	ssl = fd >= 0 ? SSL_new(ctx) : NULL;
	if (!ssl || !SSL_set_fd(ssl, fd)) {
		why = fd < 0 ? r.msg : "OpenSSL connection";
		goto out;
	}
	if (SSL_connect(ssl) == 1 && SSL_read(ssl, &c, 1) <= 0)
		e = ERR_peek_last_error();
	if (SSL_get_verify_result(ssl) != X509_V_OK)
		why = "B's certificate did not verify against the CA";
	else if (strcmp(SSL_get_cipher_name(ssl), BENCH_TLS_SUITE))
		why = "B chose another suite than " BENCH_TLS_SUITE;
	else if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
		 ERR_GET_REASON(e) >= SSL_AD_REASON_OFFSET)
		err = 0; /* an alert from B, "certificate required" */
out:
	if (err)
		pr_warn("%s: mTLS check against B " BENCH_NS_IP ":%u: %s\n",
			mode_name[m], ntohs(b.sin_port), why);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	if (fd >= 0)
		close(fd);
	ERR_clear_error();
	return err;
}

/* Certificates, then each measured pair, B first, and its mTLS check. */
static int tls_setup(const struct bench_opts *o)
{
	static int (*const start[])(int) = { start_tls_sidelane,
					     start_tls_haproxy,
					     start_tls_stunnel };
	int err, i, side;

	err = make_certs();
	for (i = 0; i < 3 && !err; i++) {
		if (!o->modes[MODE_TLS_SL + i])
			continue;
		for (side = 1; side >= 0 && !err; side--)
			err = start[i](side);
		if (!err)
			err = check_mtls(MODE_TLS_SL + i);
	}
	return err;
}

/* Add a line to the versions the header shows. */
static void add_version(const char *name, const char *text)
{
	size_t n;

	if (bs.nver == (int)(sizeof(bs.ver) / sizeof(bs.ver[0])))
		return;
	snprintf(bs.ver[bs.nver].name, sizeof(bs.ver[0].name), "%s", name);
	snprintf(bs.ver[bs.nver].text, sizeof(bs.ver[0].text), "%s", text);
	n = strcspn(bs.ver[bs.nver].text, "\n");
	bs.ver[bs.nver++].text[n] = '\0';
}

/* What the suite runs: kernel, sidelane and the tools of the measured
 * modes, each by the first line of its version output that starts with
 * its name.
 */
static void collect_versions(const struct bench_opts *o)
{
	static const struct {
		int suite;
		unsigned int modes; /* it runs when one is measured (0: always) */
		const char *name, *args, *prefix;
	} tools[] = {
		{ SUITE_SIDECAR, MODE_BIT(MODE_HAPROXY) | MODE_BIT(MODE_HAPROXY1),
		  "haproxy", "-v", "HAProxy" },
		{ SUITE_TLS, 0, "openssl", "version", "OpenSSL" },
		{ SUITE_TLS, MODE_BIT(MODE_TLS_HAP), "haproxy", "-v", "HAProxy" },
		{ SUITE_TLS, MODE_BIT(MODE_TLS_ST), "stunnel", "-version",
		  "stunnel" },
	};
	char bin[PATH_MAX], cmd[PATH_MAX + 32], line[256];
	struct utsname u;
	unsigned int i;
	int m, runs;
	FILE *f;

	bs.nver = 0;
	if (!uname(&u)) {
		snprintf(line, sizeof(line), "%s %s", u.sysname, u.release);
		add_version("kernel", line);
	}
	snprintf(line, sizeof(line), "%s, linked with %s", SL_VERSION,
		 OpenSSL_version(OPENSSL_VERSION));
	add_version("sidelane", line);
	for (i = 0; i < sizeof(tools) / sizeof(tools[0]); i++) {
		for (m = 0, runs = !tools[i].modes; m < NR_MODES; m++)
			runs |= (tools[i].modes & MODE_BIT(m)) && o->modes[m];
		if (tools[i].suite != (int)o->suite || !runs ||
		    find_bin(tools[i].name, bin, sizeof(bin), -1))
			continue;
		snprintf(cmd, sizeof(cmd), "%s %s 2>&1", bin, tools[i].args);
		f = popen(cmd, "re");
		if (!f)
			continue;
		while (fgets(line, sizeof(line), f))
			if (!strncmp(line, tools[i].prefix,
				     strlen(tools[i].prefix))) {
				add_version(tools[i].name, line);
				break;
			}
		pclose(f);
	}
}

/* Namespace, then the relays of the measured modes. */
static int relays_setup(const struct bench_opts *o)
{
	int err;

	if (!mkdtemp(strcpy(bs.tmpdir, "/tmp/sidelane-bench-XXXXXX"))) {
		err = -errno;
		bs.tmpdir[0] = '\0';
		pr_warn("mkdtemp: %s\n", strerror(-err));
		return err;
	}
	collect_versions(o);
	err = netns_setup();
	if (!err && o->modes[MODE_SIDECAR])
		err = start_sidelane(&sidecar_sl);
	if (!err && o->modes[MODE_RELAY])
		err = start_sidelane(&sidecar_relay);
	if (!err && o->modes[MODE_HAPROXY])
		err = start_haproxy(MODE_HAPROXY);
	if (!err && o->modes[MODE_HAPROXY1])
		err = start_haproxy(MODE_HAPROXY1);
	if (!err && o->suite == SUITE_TLS)
		err = tls_setup(o);
	return err;
}

/* The relays of mode m are still running; else say which is gone, with
 * its log.
 */
static int relays_alive(enum mode m)
{
	char log[PATH_MAX];
	int i, p, st;

	for (i = 0; i < 2; i++) {
		p = mode_run[m].proc[i];
		if (p < 0 ||
		    (bs.pid[p] > 0 && waitpid(bs.pid[p], &st, WNOHANG) == 0))
			continue;
		bs.pid[p] = 0;
		proc_path(p, ".log", log, sizeof(log));
		pr_warn("%s: %s is gone\n", mode_name[m], cg_name[procs[p].cg]);
		dump_log(log);
		return 0;
	}
	return 1;
}

/* ---- one measurement (parent) ----------------------------------------- */

struct measurement {
	double v[NR_METRICS]; /* NAN where it does not apply */
	struct accel accel;
};

static double tv_sec(struct timeval tv)
{
	return tv.tv_sec + tv.tv_usec / 1e6;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted samples, in µs. */
static double pct_us(const uint32_t *s, uint64_t n, double p)
{
	uint64_t i = (uint64_t)ceil(p / 100.0 * n);

	if (!n)
		return NAN;
	return s[i ? i - 1 : 0] / 1000.0;
}

/* --plot: latency quantiles per workload and mode, summed over the rounds
 * (drawn as their mean): 1..99 %, 99.5 %, 99.9 %
 */
#define BENCH_CDF_POINTS 101
static double cdf_q[BENCH_CDF_POINTS];
static double cdf_sum[NR_WORKLOADS][NR_MODES][BENCH_CDF_POINTS];
static unsigned int cdf_n[NR_WORKLOADS][NR_MODES];

static void cdf_add(size_t w, enum mode m, const uint32_t *sorted, uint64_t n)
{
	unsigned int i;

	if (!n)
		return;
	for (i = 0; i < BENCH_CDF_POINTS; i++) {
		uint64_t k;

		cdf_q[i] = i < 99 ? (i + 1) / 100.0 : i == 99 ? 0.995 : 0.999;
		k = (uint64_t)ceil(cdf_q[i] * (double)n);
		cdf_sum[w][m][i] += sorted[k ? k - 1 : 0] / 1e3;
	}
	cdf_n[w][m]++;
}

/* Wait for a child until deadline (CLOCK_MONOTONIC ns); kill it past that or
 * on a stop. Its rusage goes to ru. 0, or a positive errno.
 */
static int reap(pid_t *pid, uint64_t deadline, struct rusage *ru, int *status)
{
	struct pollfd pfd = { .events = POLLIN };
	uint64_t t;
	int err = 0;

	pfd.fd = syscall(SYS_pidfd_open, *pid, 0);
	while (pfd.fd >= 0 && !bench_stop) {
		t = now_ns();
		if (t >= deadline) {
			err = ETIMEDOUT;
			break;
		}
		if (poll(&pfd, 1, (deadline - t) / 1000000 + 1) == 1)
			break;
	}
	if (pfd.fd >= 0)
		close(pfd.fd);
	if (err || bench_stop)
		kill(*pid, SIGKILL);
	if (wait4(*pid, status, 0, ru) < 0 && !err)
		err = errno;
	*pid = 0;
	return err;
}

static void child_start(const char *cgroup, int cpu, struct side_result *r)
{
	cpu_set_t set;
	int err;

	/* a child never outlives the bench */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != bs.owner)
		_exit(1);
	/* before any socket exists: a socket belongs to its creator's cgroup */
	err = enter_cgroup(cgroup);
	if (err) {
		side_fail(r, err, "join cgroup");
		_exit(1);
	}
	if (cpu >= 0) {
		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		if (sched_setaffinity(0, sizeof(set), &set)) {
			side_fail(r, errno, "pin to CPU");
			_exit(1);
		}
	}
}

/* VmRSS of a process in KiB, -1 if gone. */
static long rss_kib(pid_t pid)
{
	char path[64], line[128];
	long kib = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	if (f)
		fclose(f);
	return kib;
}

/* The resident memory of mode m's relays near the end of the window (at),
 * while the client's connections are open: MiB, NAN for none. Returns
 * early if the client ends first.
 */
static double relays_rss_mib(enum mode m, pid_t client, uint64_t at)
{
	struct pollfd pfd = { .events = POLLIN };
	long kib, sum = 0;
	uint64_t t = now_ns();
	int i, n = 0;

	if (mode_run[m].proc[0] < 0)
		return NAN;
	pfd.fd = syscall(SYS_pidfd_open, client, 0);
	if (pfd.fd >= 0 && t < at)
		poll(&pfd, 1, (int)((at - t) / 1000000));
	if (pfd.fd >= 0)
		close(pfd.fd);
	for (i = 0; i < 2; i++) {
		if (mode_run[m].proc[i] < 0 || bs.pid[mode_run[m].proc[i]] <= 0)
			continue;
		kib = rss_kib(bs.pid[mode_run[m].proc[i]]);
		if (kib < 0)
			return NAN;
		sum += kib;
		n++;
	}
	return n ? sum / 1024.0 : NAN;
}

static int measure(enum mode m, const struct workload *wl,
		   const struct bench_opts *o, struct measurement *out)
{
	uint64_t dur_ns = o->duration_ms * 1000000ull;
	uint64_t warm_ms = o->duration_ms / 5 < BENCH_WARMUP_MAX_MS ?
				   o->duration_ms / 5 : BENCH_WARMUP_MAX_MS;
	uint64_t warmup_ns = warm_ms * 1000000ull, deadline;
	struct bench_shm *shm = bs.shm;
	struct accel before, after;
	struct rusage ru_c = {}, ru_s = {};
	int pfd[2], err, st_c = 0, st_s = 0, i;
	struct sockaddr_in srv, dst;
	double cpu, proxy0 = 0, proxy1 = 0, host0 = 0, host1 = 0;
	struct pollfd pp;
	uint16_t port = 0;

	memset(out, 0, sizeof(*out));
	for (i = 0; i < NR_METRICS; i++)
		out->v[i] = NAN;
	memset(shm, 0, sizeof(*shm));
	shm->lat_cap = (bs.shm_len - sizeof(*shm)) / sizeof(shm->lat_ns[0]);
	/* the upstream listens on a fixed port of every address in the
	 * namespace (the relays' configs name it), else on any port of
	 * loopback
	 */
	srv = mode_run[m].netns ? addr_in("0.0.0.0", BENCH_UPSTREAM_PORT) :
				  addr_in("127.0.0.1", 0);
	if (!relays_alive(m))
		return -ESRCH;
	err = read_accel(m, &before);
	if (!err)
		err = proxy_cpu(m, &proxy0);
	if (!err && suites[o->suite].host_cpu)
		err = host_busy(&host0);
	if (err)
		return err;
	if (pipe2(pfd, O_CLOEXEC))
		return -errno;
	fflush(NULL);

	bs.child[0] = fork();
	if (bs.child[0] < 0) {
		err = -errno;
		close(pfd[0]);
		close(pfd[1]);
		return err;
	}
	if (!bs.child[0]) {
		close(pfd[0]);
		child_start(bs.cgroup[mode_run[m].server],
			    o->pin ? o->pin_cpu[0] : -1, &shm->server);
		if (mode_run[m].netns && setns(bs.ns_fd, CLONE_NEWNET))
			_exit(side_fail(&shm->server, errno, "enter namespace"));
		_exit(run_server(wl, srv, pfd[1], &shm->server, shm));
	}
	close(pfd[1]);
	pp = (struct pollfd){ .fd = pfd[0], .events = POLLIN };
	if (poll(&pp, 1, BENCH_IO_TIMEOUT_S * 1000) != 1 ||
	    read(pfd[0], &port, sizeof(port)) != sizeof(port))
		port = 0;
	close(pfd[0]);
	/* haproxy's client and the TLS pairs' connect to them explicitly;
	 * sidecar sidelane's connects to the upstream and is captured
	 */
	dst = bs.front_port[m] ? addr_in("127.0.0.1", bs.front_port[m]) :
	      mode_run[m].netns ? addr_in(BENCH_NS_IP, port) :
				  addr_in("127.0.0.1", port);
	if (port) {
		bs.child[1] = fork();
		if (bs.child[1] < 0) {
			err = -errno;
			kill_children();
			return err;
		}
		if (!bs.child[1]) {
			child_start(bs.cgroup[mode_run[m].client],
				    o->pin ? o->pin_cpu[1] : -1, &shm->client);
			_exit(wl->kind == WL_STREAM ?
				      run_client_stream(wl, dst, warmup_ns, dur_ns, shm) :
			      wl->kind == WL_DUPLEX ?
				      run_client_duplex(wl, dst, warmup_ns, dur_ns, shm) :
				      run_client_loops(wl, dst, warmup_ns, dur_ns, shm));
		}
	}

	deadline = now_ns() + warmup_ns + dur_ns + BENCH_GRACE_MS * 1000000ull;
	err = 0;
	if (bs.child[1] && wl->kind == WL_RR)
		out->v[M_RSS] = relays_rss_mib(m, bs.child[1],
					       now_ns() + warmup_ns + dur_ns * 9 / 10);
	if (bs.child[1])
		err = reap(&bs.child[1], deadline, &ru_c, &st_c);
	/* the server ends on the client's close, or (conn) when told; give it
	 * a moment after that, none if the client failed
	 */
	__atomic_store_n(&shm->stop, 1, __ATOMIC_RELAXED);
	deadline = now_ns() + (err ? 0 : BENCH_IO_TIMEOUT_S * 1000000000ull);
	if (reap(&bs.child[0], deadline, &ru_s, &st_s) && !err)
		err = ETIMEDOUT;
	if (bench_stop)
		return -EINTR;
	if (shm->server.err || shm->client.err || !port || err ||
	    !WIFEXITED(st_c) || WEXITSTATUS(st_c) || !WIFEXITED(st_s) ||
	    WEXITSTATUS(st_s)) {
		/* the client's finding first: a server's error can follow */
		pr_warn("%s %s: %s\n", mode_name[m], wl->label,
			shm->client.err ? shm->client.msg :
			shm->server.err ? shm->server.msg :
			!port		? "server did not start" :
			err		? strerror(err) :
					  "a child failed");
		if (wl->kind == WL_STREAM)
			pr_warn("stream: client sent %llu bytes, server received "
				"%llu\n",
				(unsigned long long)shm->bytes_sent,
				(unsigned long long)shm->bytes_recv);
		if (wl->kind == WL_DUPLEX)
			pr_warn("duplex: client sent %llu bytes and received "
				"%llu back; the server received (and echoed) "
				"%llu\n",
				(unsigned long long)shm->bytes_sent,
				(unsigned long long)shm->bytes_recv,
				(unsigned long long)shm->bytes_all);
		relays_alive(m);
		return -EIO;
	}
	if (suites[o->suite].host_cpu && host_busy(&host1))
		return -EIO;
	err = read_accel(m, &after);
	if (!err)
		err = proxy_cpu(m, &proxy1);
	if (err)
		return err;
	out->accel = after;
	accel_add(&out->accel, &before, -1);
	if (mode_run[m].proc[0] >= 0)
		pr_debug("%s %s: the relays used %.3f s of CPU\n", mode_name[m],
			 wl->label, proxy1 - proxy0);

	/* the two ends, and the relays between them when there are any; the
	 * relays alone in the tls suite (none: no figure)
	 */
	cpu = tv_sec(ru_c.ru_utime) + tv_sec(ru_c.ru_stime) +
	      tv_sec(ru_s.ru_utime) + tv_sec(ru_s.ru_stime) + proxy1 - proxy0;
	if (suites[o->suite].proxy_cpu)
		cpu = mode_run[m].proc[0] >= 0 ? proxy1 - proxy0 : NAN;
	if (suites[o->suite].host_cpu)
		cpu = host1 - host0;
	if (!shm->elapsed_ns)
		return -EIO;
	if (wl->kind == WL_RR || wl->kind == WL_CONN) {
		qsort(shm->lat_ns, shm->nlat, sizeof(shm->lat_ns[0]), cmp_u32);
		if (o->plot_dir)
			cdf_add((size_t)(wl - workloads), m, shm->lat_ns,
				shm->nlat);
		out->v[M_P50] = pct_us(shm->lat_ns, shm->nlat, 50);
		out->v[M_P99] = pct_us(shm->lat_ns, shm->nlat, 99);
	}
	/* CPU covers the warm-up too, so does the count it is divided by */
	if (wl->kind == WL_RR) {
		out->v[M_TPS] = shm->tx * 1e9 / shm->elapsed_ns;
		out->v[M_CPU_100K] = shm->tx_all ? cpu / (shm->tx_all / 1e5) : NAN;
	} else if (wl->kind == WL_CONN) {
		out->v[M_CONNS] = shm->tx * 1e9 / shm->elapsed_ns;
		out->v[M_CPU_CONN] = shm->tx_all ? cpu * 1e6 / shm->tx_all : NAN;
	} else {
		out->v[M_GBITS] = shm->bytes * 8.0 / shm->elapsed_ns;
		out->v[M_CPU_GIB] = shm->bytes_all ?
					    cpu / (shm->bytes_all / 1073741824.0) :
					    NAN;
	}
	return 0;
}

/* ---- results ---------------------------------------------------------- */

/* results[w][m][metric][round] */
static double *results;
static unsigned int res_rounds;

static double *res(size_t w, int m, int k, unsigned int r)
{
	return &results[((w * NR_MODES + m) * NR_METRICS + k) * res_rounds + r];
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Median of the rounds that produced a value; NAN when none did. */
static double median(size_t w, int m, int k)
{
	double v[BENCH_ROUNDS_MAX];
	unsigned int r, n = 0;

	for (r = 0; r < res_rounds; r++)
		if (!isnan(*res(w, m, k, r)))
			v[n++] = *res(w, m, k, r);
	if (!n)
		return NAN;
	qsort(v, n, sizeof(v[0]), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double ratio(double a, double b)
{
	return isnan(a) || isnan(b) || b == 0 ? NAN : a / b;
}

static const char *fmt(char *buf, size_t len, double v, int prec)
{
	if (isnan(v))
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%.*f", prec, v);
	return buf;
}

/* The exact command line, from /proc/self/cmdline, into buf. */
static const char *cmdline(char *buf, size_t len)
{
	ssize_t n = -1, i;
	int fd;

	fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, buf, len - 1);
		close(fd);
	}
	if (n <= 0)
		n = 0;
	for (i = 0; i < n - 1; i++)
		if (!buf[i])
			buf[i] = ' ';
	buf[n] = '\0';
	return buf;
}

static void print_table(const struct bench_opts *o)
{
	const struct suite_desc *su = &suites[o->suite];
	char v[32], cmd[1024];
	double med[NR_MODES];
	size_t w;
	int k, i, m;

	printf("sidelane bench%s%s: %u round%s x %u ms per measurement, medians; "
	       "modes interleaved in rotating order; CPU pinning: %s\n",
	       o->suite ? " --suite " : "", o->suite ? su->name : "", o->rounds,
	       o->rounds == 1 ? "" : "s", o->duration_ms, pin_name[o->pin]);
	printf("command: %s\n", cmdline(cmd, sizeof(cmd)));
	for (i = 0; i < bs.nver; i++)
		printf("%s  %-9s %s\n", i ? "" : "versions:\n", bs.ver[i].name,
		       bs.ver[i].text);
	if (o->suite == SUITE_SIDECAR) {
		printf("app -> sidecar -> upstream " BENCH_NS_IP ":%d, the far end "
		       "of a veth into namespace %s\n",
		       BENCH_UPSTREAM_PORT, bs.netns);
		printf("CPU: the whole host's busy time (/proc/stat), so kernel "
		       "work no process is charged for counts too (kworkers, "
		       "softirqs); the sidecar itself is not pinned\n");
		printf("clients: %s sockets; sidelane: fastpath.app_sockets %s\n",
		       bs.client_nb ? "non-blocking (poll)" : "blocking",
		       sl_app_sockets_name[bs.app_sockets]);
		for (m = MODE_HAPROXY; m <= MODE_HAPROXY1; m++)
			if (o->modes[m])
				printf("%s: mode tcp, %s, %u thread%s (show info), "
				       "default buffers, on 127.0.0.1:%u\n",
				       mode_name[m],
				       m == MODE_HAPROXY1 ? "nbthread 1" :
							    "no nbthread line",
				       bs.nbthread[mode_run[m].proc[0]],
				       bs.nbthread[mode_run[m].proc[0]] == 1 ? "" : "s",
				       bs.front_port[m]);
		if (o->modes[MODE_HAPROXY] || o->modes[MODE_HAPROXY1])
			printf("  the client connects to haproxy explicitly (no "
			       "transparent capture without iptables; sidelane "
			       "captures the client's connect)\n");
	}
	for (w = 0; w < NR_WORKLOADS; w++)
		if (o->workloads[w] && workloads[w].kind == WL_RR &&
		    workloads[w].clients > 1 && workloads[w].conns <= 1)
			printf("%s: %d clients at once, a connection each, closed "
			       "loops of %zu B request/response; p50/p99 over all "
			       "their transactions, tx/s their sum\n",
			       workloads[w].label, workloads[w].clients,
			       workloads[w].size);
		else if (o->workloads[w] && workloads[w].conns > 1)
			printf("%s: %d connections at once, %d client processes "
			       "each driving %d with one epoll loop (as many "
			       "servers), closed loops of %zu B request/response\n",
			       workloads[w].label,
			       workloads[w].clients * workloads[w].conns,
			       workloads[w].clients, workloads[w].conns,
			       workloads[w].size);
	if (o->suite == SUITE_TLS) {
		printf("client -> A on 127.0.0.1 -> mutual TLS 1.3 over a veth -> "
		       "B on " BENCH_NS_IP " in namespace %s -> server "
		       "127.0.0.1:%d there\n",
		       bs.netns, BENCH_UPSTREAM_PORT);
		printf("certificates: one CA, A " BENCH_ID_A ", B " BENCH_ID_B
		       ", EC P-256, the same files for every pair; each B "
		       "refused a client without one\n");
		printf("TLS 1.3, " BENCH_TLS_SUITE " (sidelane's preference; set "
		       "for haproxy and stunnel), each proxy's default session "
		       "resumption\n");
		printf("conn: %d clients at once, closed loops of connect, 64 B "
		       "request, 64 B response, close (one mTLS handshake "
		       "between A and B each); p50/p99 from connect() to the "
		       "whole response\n",
		       BENCH_CONN_CLIENTS);
		printf("CPU: the proxies' cgroups (cpu.stat), A + B, none for "
		       "direct; sidelane and haproxy (nbthread 1) one thread "
		       "each, stunnel a thread per connection\n");
	}
	printf("better: latency and CPU lower (ratio < 1 is better), tx/s, "
	       "conn/s and Gbit/s higher (ratio > 1 is better)\n\n");
	printf("%-14s %-14s %-6s", "workload", "metric", "better");
	for (i = 0; i < su->nmodes; i++)
		printf(" %10s", mode_name[su->modes[i]]);
	for (i = 0; i < su->nratios; i++)
		printf(" %8s", su->ratios[i].label);
	printf("\n");
	for (w = 0; w < NR_WORKLOADS; w++) {
		if (!o->workloads[w])
			continue;
		for (k = 0; k < NR_METRICS; k++) {
			bool any = false;

			if (!(metrics[k].kinds & KIND(workloads[w].kind)))
				continue;
			/* a row no mode has (relay RSS without relays) */
			for (i = 0; i < su->nmodes; i++)
				any |= !isnan(median(w, su->modes[i], k));
			if (!any)
				continue;
			printf("%-14s %-14s %-6s", workloads[w].label,
			       metrics[k].label,
			       metrics[k].lower_better ? "lower" : "higher");
			for (i = 0; i < su->nmodes; i++) {
				med[su->modes[i]] = median(w, su->modes[i], k);
				printf(" %10s", fmt(v, sizeof(v), med[su->modes[i]],
						    metrics[k].prec));
			}
			for (i = 0; i < su->nratios; i++)
				printf(" %8s",
				       fmt(v, sizeof(v),
					   ratio(med[su->ratios[i].num],
						 med[su->ratios[i].den]),
					   2));
			printf("\n");
		}
	}
}

static void json_num(double v)
{
	if (isnan(v))
		printf("null");
	else
		printf("%.6g", v);
}

/* ,"key":v */
static void json_u64(const char *key, uint64_t v)
{
	printf(",\"%s\":%llu", key, (unsigned long long)v);
}

/* --plot DIR: a latency CDF per rr and conn workload, and throughput and
 * CPU bars relative to the suite's first mode (each metric in its own unit
 * would need a chart per workload).
 */
static int plot(const struct bench_opts *o)
{
	static const int tput[] = { [WL_RR] = M_TPS, [WL_STREAM] = M_GBITS,
				    [WL_CONN] = M_CONNS, [WL_DUPLEX] = M_GBITS };
	static const int cpu[] = { [WL_RR] = M_CPU_100K, [WL_STREAM] = M_CPU_GIB,
				   [WL_CONN] = M_CPU_CONN,
				   [WL_DUPLEX] = M_CPU_GIB };
	const struct suite_desc *su = &suites[o->suite];
	static struct sl_plot_bars bars[2];
	char stem[64], title[160];
	unsigned int i, k, w;
	int err = 0, m;

	if (mkdir(o->plot_dir, 0755) && errno != EEXIST) {
		pr_warn("bench: --plot %s: %s\n", o->plot_dir, strerror(errno));
		return -errno;
	}
	for (w = 0; w < NR_WORKLOADS && !err; w++) {
		struct sl_plot_cdf c = { .stem = stem, .title = title,
					 .npoints = BENCH_CDF_POINTS,
					 .q = cdf_q };
		static double mean[SL_PLOT_SERIES_MAX][BENCH_CDF_POINTS];

		if (!o->workloads[w] || (workloads[w].kind != WL_RR &&
					 workloads[w].kind != WL_CONN))
			continue;
		for (i = 0; i < (unsigned int)su->nmodes; i++) {
			m = su->modes[i];
			if (!o->modes[m] || !cdf_n[w][m] ||
			    c.nseries == SL_PLOT_SERIES_MAX)
				continue;
			for (k = 0; k < BENCH_CDF_POINTS; k++)
				mean[c.nseries][k] = cdf_sum[w][m][k] / cdf_n[w][m];
			c.us[c.nseries] = mean[c.nseries];
			c.series[c.nseries++] = mode_name[m];
		}
		snprintf(stem, sizeof(stem), "%s-latency-%s", su->name,
			 workloads[w].name);
		snprintf(title, sizeof(title),
			 "%s: %s latency (quantiles, mean over %u rounds)", su->name,
			 workloads[w].label, res_rounds);
		err = c.nseries ? sl_plot_cdf(o->plot_dir, &c) : 0;
	}
	for (k = 0; k < 2 && !err; k++) {
		struct sl_plot_bars *b = &bars[k];
		int base = -1;

		memset(b, 0, sizeof(*b));
		for (i = 0; i < (unsigned int)su->nmodes; i++) {
			m = su->modes[i];
			if (!o->modes[m] || b->nseries == SL_PLOT_SERIES_MAX)
				continue;
			/* 1.0: the first mode with the figure (the tls
			 * suite's direct has no proxy CPU)
			 */
			for (w = 0; w < NR_WORKLOADS && base < 0; w++)
				if (o->workloads[w] &&
				    !isnan(median(w, m, k ? cpu[workloads[w].kind] :
							    tput[workloads[w].kind])))
					base = m;
			b->series[b->nseries++] = mode_name[m];
		}
		snprintf(stem, sizeof(stem), "%s-%s", su->name,
			 k ? "cpu" : "throughput");
		snprintf(title, sizeof(title),
			 "%s: %s relative to %s, median of %u rounds", su->name,
			 k ? "CPU per unit of work" : "throughput",
			 base < 0 ? "-" : mode_name[base], res_rounds);
		b->stem = stem;
		b->title = title;
		b->ylabel = k ? "CPU per transaction, GiB or connection (x; lower is better)" :
				"tx/s, Gbit/s or conn/s (x; higher is better)";
		for (w = 0; w < NR_WORKLOADS && base >= 0; w++) {
			int metric = k ? cpu[workloads[w].kind] :
					 tput[workloads[w].kind];
			double d = median(w, base, metric);
			unsigned int col = 0;

			if (!o->workloads[w] || b->ncats == SL_PLOT_CATS_MAX)
				continue;
			for (i = 0; i < (unsigned int)su->nmodes; i++) {
				m = su->modes[i];
				if (o->modes[m] && col < b->nseries)
					b->v[b->ncats][col++] =
						ratio(median(w, m, metric), d);
			}
			b->cats[b->ncats++] = workloads[w].label;
		}
		err = b->ncats ? sl_plot_bars(o->plot_dir, b) : 0;
	}
	return err;
}

static void print_json(const struct bench_opts *o, const struct accel *acc,
		       const int *accel_ok, int inherited)
{
	static const char *const kind_name[] = { "rr", "stream", "conn" };
	const struct suite_desc *su = &suites[o->suite];
	char link[PATH_MAX + 32], cmd[1024];
	double med[NR_MODES];
	unsigned int r;
	size_t w;
	int k, i, m, first_k, first_w = 1;

	printf("{");
	if (o->suite != SUITE_FASTPATH)
		printf("\"suite\":\"%s\",", su->name);
	printf("\"command\":");
	sl_json_str(stdout, cmdline(cmd, sizeof(cmd)));
	printf(",\"versions\":{");
	for (i = 0; i < bs.nver; i++) {
		printf("%s\"%s\":", i ? "," : "", bs.ver[i].name);
		sl_json_str(stdout, bs.ver[i].text);
	}
	printf("},\"rounds\":%u,\"duration_ms\":%u,\"pin\":\"%s\","
	       "\"cgroup_mount\":\"%s\",\"inherited_sockops\":%d,"
	       "\"workloads\":[",
	       o->rounds, o->duration_ms, pin_name[o->pin], bs.cg_mount,
	       inherited);
	for (w = 0; w < NR_WORKLOADS; w++) {
		if (!o->workloads[w])
			continue;
		printf("%s{\"name\":\"%s\",\"kind\":\"%s\",\"size\":%zu,"
		       "\"clients\":%d,\"connections\":%d,\"metrics\":{",
		       first_w ? "" : ",", workloads[w].name,
		       kind_name[workloads[w].kind], workloads[w].size,
		       workloads[w].clients,
		       workloads[w].clients * workloads[w].conns);
		first_w = 0;
		first_k = 1;
		for (k = 0; k < NR_METRICS; k++) {
			if (!(metrics[k].kinds & KIND(workloads[w].kind)))
				continue;
			printf("%s\"%s\":{\"better\":\"%s\"", first_k ? "" : ",",
			       metrics[k].key,
			       metrics[k].lower_better ? "lower" : "higher");
			first_k = 0;
			for (i = 0; i < su->nmodes; i++) {
				m = su->modes[i];
				med[m] = median(w, m, k);
				printf(",\"%s\":", mode_name[m]);
				json_num(med[m]);
			}
			for (i = 0; i < su->nratios; i++) {
				printf(",\"%s\":", su->ratios[i].key);
				json_num(ratio(med[su->ratios[i].num],
					       med[su->ratios[i].den]));
			}
			printf(",\"rounds\":{");
			for (i = 0; i < su->nmodes; i++) {
				m = su->modes[i];
				printf("%s\"%s\":[", i ? "," : "", mode_name[m]);
				for (r = 0; r < o->rounds; r++) {
					printf(r ? "," : "");
					json_num(*res(w, m, k, r));
				}
				printf("]");
			}
			printf("}}");
		}
		printf("}}");
	}
	if (o->suite == SUITE_FASTPATH) {
		printf("],\"redirect\":{");
		for (m = MODE_BARE; m <= MODE_SIDELANE; m++)
			printf("%s\"%s\":{\"measured\":%s,\"redirected\":%llu,"
			       "\"passed\":%llu,\"ok\":%s}",
			       m == MODE_BARE ? "" : ",", mode_name[m],
			       o->modes[m] ? "true" : "false",
			       (unsigned long long)acc[m].redirected,
			       (unsigned long long)acc[m].passed,
			       accel_ok[m] ? "true" : "false");
		printf("}}\n");
		return;
	}
	if (o->suite == SUITE_TLS) {
		struct sl_proxy_counters pc = {};

		m = MODE_TLS_SL;
		if (o->modes[m])
			sl_stats_read(bs.pin_ab[1], &pc);
		printf("],\"tls\":{\"mtls_required_by_b\":true,"
		       "\"sidelane\":{\"measured\":%s",
		       o->modes[m] ? "true" : "false");
		json_u64("client_a_hop_redirected", acc[m].redirected);
		json_u64("client_a_hop_passed", acc[m].passed);
		json_u64("b_server_hop_redirected", acc[m].redirected_b);
		json_u64("b_server_hop_passed", acc[m].passed_b);
		json_u64("b_tls_handshakes", pc.tls_ok);
		json_u64("b_tls_resumed", pc.tls_resumed);
		m = MODE_TLS_HAP;
		printf("},\"haproxy\":{\"measured\":%s,\"ok\":%s",
		       o->modes[m] ? "true" : "false",
		       accel_ok[m] ? "true" : "false");
		json_u64("served", acc[m].served);
		printf("},\"stunnel\":{\"measured\":%s}}}\n",
		       o->modes[MODE_TLS_ST] ? "true" : "false");
		return;
	}
	m = MODE_SIDECAR;
	snprintf(link, sizeof(link), "%s/" SL_PIN_LINK_SOCKOPS_SIDECAR,
		 bs.pin_root);
	printf("],\"upstream\":\"" BENCH_NS_IP ":%d\",\"sidelane\":{"
	       "\"measured\":%s,\"captured\":%llu,\"ok\":%s,"
	       "\"hop_sockops_sidecar\":%s,"
	       "\"hop_sockets_inserted\":%llu,\"hop_redirected\":%llu,"
	       "\"hop_passed\":%llu,\"hop_backlog_fallback\":%llu},",
	       BENCH_UPSTREAM_PORT, o->modes[m] ? "true" : "false",
	       (unsigned long long)acc[m].captured,
	       accel_ok[m] ? "true" : "false",
	       o->modes[m] && !access(link, F_OK) ? "true" : "false",
	       (unsigned long long)acc[m].inserted,
	       (unsigned long long)acc[m].redirected,
	       (unsigned long long)acc[m].passed,
	       (unsigned long long)acc[m].fallback);
	for (m = MODE_HAPROXY; m <= MODE_HAPROXY1; m++)
		printf("%s\"%s\":{\"measured\":%s,\"listen\":\"127.0.0.1:%u\","
		       "\"nbthread\":%u,\"served\":%llu,\"ok\":%s}",
		       m == MODE_HAPROXY ? "" : ",", mode_name[m],
		       o->modes[m] ? "true" : "false", bs.front_port[m],
		       bs.nbthread[mode_run[m].proc[0]],
		       (unsigned long long)acc[m].served,
		       accel_ok[m] ? "true" : "false");
	printf("}\n");
}

/* ---- command line ----------------------------------------------------- */

static void bench_usage(FILE *f)
{
	fprintf(f,
		"Usage: sidelane bench [--suite fastpath|sidecar|tls] [--rounds N]\n"
		"                      [--duration-ms MS] [--quick] [--modes LIST]\n"
		"                      [--workloads LIST] [--pin none|same|split] [--json]\n"
		"                      [--plot DIR]\n"
		"\n"
		"Three or four modes measured in one run, interleaved. Suites:\n"
		"fastpath (default): node-local over 127.0.0.1\n"
		"  plain     loopback TCP, nothing attached\n"
		"  bare      a textbook sockops + sk_msg redirect (bench_bare)\n"
		"  sidelane  the product's fast path (own pin root, removed after)\n"
		"            with fastpath.app_sockets all: app<->app redirect is\n"
		"            opt-in (the default admits no such pair)\n"
		"sidecar: app -> sidecar -> upstream. The upstream server listens on\n"
		"" BENCH_NS_IP ", the far end of a veth into a network namespace the\n"
		"bench creates and removes (198.18.79.0/30 must be unused here).\n"
		"  direct    the client connects straight to the upstream\n"
		"  sidelane  `sidelane run` (this binary, own cgroups and pin root)\n"
		"            captures the client's connect and relays it through its\n"
		"            proxy, the upload half spliced where the client's socket\n"
		"            is admitted\n"
		"  sl-relay  the same with proxy.splice false: every byte through\n"
		"            the proxy\n"
		"  haproxy   haproxy (Debian package, `make deps`) in mode tcp on\n"
		"            127.0.0.1 at its default thread count, default buffers;\n"
		"            the client connects to it explicitly: haproxy has no\n"
		"            transparent capture without iptables\n"
		"  haproxy1  the same with nbthread 1\n"
		"tls: client -> proxy A (127.0.0.1) -> mutual TLS 1.3 over the same\n"
		"veth -> proxy B (" BENCH_NS_IP ", in the namespace) -> server there.\n"
		"Certificates made with the openssl CLI (a CA, P-256 leaves with\n"
		"SPIFFE IDs) serve every pair; each B must refuse a client without one.\n"
		"  direct    plaintext, straight to the server (context, no proxy)\n"
		"  sidelane  two `sidelane run`: A's ambassador originates mTLS to a\n"
		"            tls.mesh destination, B's inbound listener terminates it\n"
		"  haproxy   mode tcp, nbthread 1: `server ... ssl ... verify\n"
		"            required` on A, `bind ... ssl ... verify required` on B\n"
		"  stunnel   (Debian package stunnel4) client mode on A, server mode\n"
		"            with verifyChain and requireCert on B\n"
		"Workloads: request/response (one outstanding, echo) of 64 B, 1 KiB\n"
		"and 16 KiB: p50/p99 latency, tx/s, CPU s per 100k tx; streaming\n"
		"64 KiB writes: Gbit/s, CPU s per GiB; tls only, a connection per\n"
		"request (" SL_XSTR(BENCH_CONN_CLIENTS) " closed-loop clients: connect, 64 B request, 64 B\n"
		"response, close): conn/s, p50/p99 from connect() to the response,\n"
		"CPU us per connection. CPU is both ends' user+sys time (wait4); in\n"
		"the sidecar suite the whole host's busy time (/proc/stat: it holds\n"
		"the kworkers that send spliced bytes); in the tls suite the two\n"
		"proxies' cgroups alone. On a busy host it is steadier than\n"
		"wall-clock figures (but for the sidecar suite's).\n"
		"\n"
		"Options:\n"
		"  --suite S         fastpath (default), sidecar or tls\n"
		"  --rounds N        interleaved rounds; medians shown (1-%d, default %d)\n"
		"  --duration-ms MS  length of each measurement (%d-%d, default %d)\n"
		"  --quick           smoke test: %d rounds of %d ms unless given\n"
		"  --modes LIST      comma-separated subset of the suite's modes\n"
		"                    (plain,bare,sidelane; direct,sidelane,sl-relay,\n"
		"                    haproxy,haproxy1;\n"
		"                    direct,sidelane,haproxy,stunnel)\n"
		"  --workloads LIST  comma-separated subset of the suite's workloads\n"
		"                    (rr_64,rr_1k,rr_1k_c16,rr_16k,stream_64k; sidecar also\n"
		"                    rr_1k_c64, duplex_64k; tls: stream_64k,\n"
		"                    conn_64)\n"
		"  --pin none|same|split  server and client CPUs: scheduler's choice\n"
		"                    (default), both on one CPU, or on two CPUs; a\n"
		"                    sidecar or TLS proxy is never pinned\n"
		"  --json            one JSON object on stdout (medians, ratios, rounds)\n"
		"  SIDELANE_BENCH_KEEP=1 (environment) keeps the relays' configs\n"
		"                    and logs in the run's temporary folder\n"
		"  --plot DIR        also SVG charts in DIR, drawn by gnuplot\n"
		"                    (gnuplot-nox): a latency CDF per rr and conn\n"
		"                    workload (each mode a line), throughput and CPU\n"
		"                    bars relative to the first mode; each chart's\n"
		"                    .dat and .gp beside it\n"
		"  --client block|nonblock  clients' sockets: blocking (default) or\n"
		"                    non-blocking from before connect(), driven by\n"
		"                    poll() (what admission may accelerate)\n"
		"  --app-sockets M   sidecar: the sidelane mode's fastpath.app_sockets\n"
		"                    (default safe; send admits a non-blocking client\n"
		"                    on any kernel, and its upload half is spliced)\n"
		"  -v                more logging (repeatable)\n"
		"\n"
		"Examples:\n"
		"  sidelane bench\n"
		"  sidelane bench --quick\n"
		"  sidelane bench --rounds 9 --duration-ms 2000 --json > bench.json\n"
		"  sidelane bench --modes plain,bare --workloads rr_1k,stream_64k\n"
		"  sidelane bench --pin split     # steadier rr latency on a small VM\n"
		"  sidelane bench --suite sidecar\n"
		"  make bench BENCH_ARGS='--suite sidecar --quick'\n"
		"  sidelane bench --suite tls --modes direct,haproxy,stunnel --quick\n"
		"\n"
		"Exit codes: 0 ok, 1 failure, 2 usage error, 3 a mode did not carry\n"
		"the traffic: a bare or sidelane fastpath measurement redirected no\n"
		"message, a sidecar measurement was not captured by sidelane or\n"
		"not served by haproxy, or a tls measurement not served by haproxy A.\n",
		BENCH_ROUNDS_MAX, BENCH_ROUNDS_DEFAULT, BENCH_DURATION_MIN_MS,
		BENCH_DURATION_MAX_MS, BENCH_DURATION_DEFAULT_MS,
		BENCH_QUICK_ROUNDS, BENCH_QUICK_DURATION_MS);
}

/* Parse a comma-separated subset of the n names[] into sel[].
 * 0, or -EINVAL for an unknown name or an empty set.
 */
static int parse_set(const char *arg, const char *const *names, int n,
		     int *sel)
{
	char *copy = strdup(arg), *tok, *save = NULL;
	int i, found, err = 0;

	if (!copy)
		return -ENOMEM;
	memset(sel, 0, n * sizeof(*sel));
	for (tok = strtok_r(copy, ",", &save); tok && !err;
	     tok = strtok_r(NULL, ",", &save)) {
		for (i = 0, found = 0; i < n; i++)
			if (!strcmp(tok, names[i]))
				sel[i] = found = 1;
		if (!found)
			err = -EINVAL;
	}
	free(copy);
	for (i = 0, found = 0; i < n; i++)
		found |= sel[i];
	return err ? err : found ? 0 : -EINVAL;
}

/* The first two CPUs this process may run on: server, then client. */
static int pick_cpus(struct bench_opts *o)
{
	cpu_set_t set;
	int cpu, n = 0;

	if (sched_getaffinity(0, sizeof(set), &set))
		return -errno;
	for (cpu = 0; cpu < CPU_SETSIZE && n < 2; cpu++)
		if (CPU_ISSET(cpu, &set))
			o->pin_cpu[n++] = cpu;
	if (n == 0 || (o->pin == PIN_SPLIT && n < 2)) {
		pr_warn("--pin %s: not enough CPUs allowed\n", pin_name[o->pin]);
		return -EINVAL;
	}
	if (o->pin == PIN_SAME)
		o->pin_cpu[1] = o->pin_cpu[0];
	return 0;
}

enum {
	OPT_ROUNDS = 256,
	OPT_DURATION,
	OPT_QUICK,
	OPT_MODES,
	OPT_WORKLOADS,
	OPT_PIN,
	OPT_JSON,
	OPT_PLOT,
	OPT_SUITE,
	OPT_CLIENT,
	OPT_APP_SOCKETS
};

/* arg (NULL: all), a comma-separated subset of the n names[], into sel[];
 * what names the option. 0 or -EINVAL, said with the names to choose from.
 */
static int parse_subset(const char *what, const char *arg,
			const char *const *names, int n, int *sel)
{
	char list[256] = "";
	size_t len = 0;
	int i, err = 0;

	for (i = 0; i < n; i++)
		sel[i] = 1;
	if (arg)
		err = parse_set(arg, names, n, sel);
	if (!err)
		return 0;
	for (i = 0; i < n && len < sizeof(list); i++)
		len += snprintf(list + len, sizeof(list) - len, "%s%s",
				i ? "," : "", names[i]);
	pr_warn("%s: '%s': give a comma-separated subset of %s\n", what, arg,
		list);
	return err;
}

/* The suite's modes named in arg (NULL: all of them) into o->modes. */
static int parse_modes(const char *arg, struct bench_opts *o)
{
	const struct suite_desc *su = &suites[o->suite];
	const char *names[SUITE_MODES_MAX] = {};
	int sel[SUITE_MODES_MAX], i;

	for (i = 0; i < su->nmodes; i++)
		names[i] = mode_name[su->modes[i]];
	if (parse_subset("--modes", arg, names, su->nmodes, sel))
		return -EINVAL;
	memset(o->modes, 0, sizeof(o->modes));
	for (i = 0; i < su->nmodes; i++)
		o->modes[su->modes[i]] = sel[i];
	return 0;
}

/* The suite's workloads named in arg (NULL: all of them) into
 * o->workloads.
 */
static int parse_workloads(const char *arg, struct bench_opts *o)
{
	int idx[NR_WORKLOADS], sel[NR_WORKLOADS], i, n = 0;
	const char *names[NR_WORKLOADS] = {};

	for (i = 0; i < (int)NR_WORKLOADS; i++)
		if (workloads[i].suites & (1u << o->suite)) {
			idx[n] = i;
			names[n++] = workloads[i].name;
		}
	if (parse_subset("--workloads", arg, names, n, sel))
		return -EINVAL;
	memset(o->workloads, 0, sizeof(o->workloads));
	for (i = 0; i < n; i++)
		o->workloads[idx[i]] = sel[i];
	return 0;
}

static int parse_args(int argc, char **argv, struct bench_opts *o)
{
	static const struct option longopts[] = {
		{ "rounds", required_argument, NULL, OPT_ROUNDS },
		{ "duration-ms", required_argument, NULL, OPT_DURATION },
		{ "quick", no_argument, NULL, OPT_QUICK },
		{ "modes", required_argument, NULL, OPT_MODES },
		{ "workloads", required_argument, NULL, OPT_WORKLOADS },
		{ "pin", required_argument, NULL, OPT_PIN },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "plot", required_argument, NULL, OPT_PLOT },
		{ "suite", required_argument, NULL, OPT_SUITE },
		{ "client", required_argument, NULL, OPT_CLIENT },
		{ "app-sockets", required_argument, NULL, OPT_APP_SOCKETS },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	const char *modes_arg = NULL, *wl_arg = NULL;
	int have_rounds = 0, have_dur = 0, quick = 0, c, i;
	uint64_t v;

	*o = (struct bench_opts){ .rounds = BENCH_ROUNDS_DEFAULT,
				  .duration_ms = BENCH_DURATION_DEFAULT_MS };
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "hv", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_ROUNDS:
			if (sl_parse_u64(optarg, 1, BENCH_ROUNDS_MAX, &v)) {
				pr_warn("--rounds: '%s' is not a whole number in 1-%d\n",
					optarg, BENCH_ROUNDS_MAX);
				return -EINVAL;
			}
			o->rounds = v;
			have_rounds = 1;
			break;
		case OPT_DURATION:
			if (sl_parse_u64(optarg, BENCH_DURATION_MIN_MS,
					 BENCH_DURATION_MAX_MS, &v)) {
				pr_warn("--duration-ms: '%s' is not a whole number "
					"in %d-%d\n",
					optarg, BENCH_DURATION_MIN_MS,
					BENCH_DURATION_MAX_MS);
				return -EINVAL;
			}
			o->duration_ms = v;
			have_dur = 1;
			break;
		case OPT_QUICK:
			quick = 1;
			break;
		case OPT_MODES:
			/* checked against the suite, which may come after */
			modes_arg = optarg;
			break;
		case OPT_SUITE:
			for (i = 0; i < NR_SUITES; i++)
				if (!strcmp(optarg, suites[i].name))
					break;
			if (i == NR_SUITES) {
				pr_warn("--suite: '%s': give fastpath, sidecar or "
					"tls\n",
					optarg);
				return -EINVAL;
			}
			o->suite = i;
			break;
		case OPT_WORKLOADS:
			wl_arg = optarg; /* like --modes */
			break;
		case OPT_PIN:
			for (i = 0; i < NR_PINS; i++)
				if (!strcmp(optarg, pin_name[i]))
					break;
			if (i == NR_PINS) {
				pr_warn("--pin: '%s': give none, same or split\n",
					optarg);
				return -EINVAL;
			}
			o->pin = i;
			break;
		case OPT_JSON:
			o->json = 1;
			break;
		case OPT_PLOT:
			o->plot_dir = optarg;
			break;
		case OPT_CLIENT:
			if (strcmp(optarg, "block") && strcmp(optarg, "nonblock")) {
				pr_warn("--client: '%s': give block or nonblock\n",
					optarg);
				return -EINVAL;
			}
			bs.client_nb = !strcmp(optarg, "nonblock");
			break;
		case OPT_APP_SOCKETS:
			if (sl_app_sockets_parse(optarg, &o->app_sockets)) {
				pr_warn("--app-sockets: '%s': give safe, send, all or "
					"none\n", optarg);
				return -EINVAL;
			}
			bs.app_sockets = o->app_sockets;
			break;
		case 'v':
			sl_verbosity++;
			break;
		case 'h':
			bench_usage(stdout);
			return 1;
		default:
			pr_warn("bench: unknown option '%s'\n", argv[optind - 1]);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		pr_warn("bench: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	if (parse_modes(modes_arg, o) || parse_workloads(wl_arg, o))
		return -EINVAL;
	if (o->pin && pick_cpus(o))
		return -EINVAL;
	if (quick && !have_rounds)
		o->rounds = BENCH_QUICK_ROUNDS;
	if (quick && !have_dur)
		o->duration_ms = BENCH_QUICK_DURATION_MS;
	return 0;
}

/* ---- the command ------------------------------------------------------- */

/* Did one measurement of mode m take the path the mode stands for? */
static int carried(enum mode m, const struct accel *a)
{
	switch (m) {
	case MODE_BARE:
	case MODE_SIDELANE:
		return a->redirected > 0;
	case MODE_SIDECAR:
	case MODE_RELAY:
		return a->captured > 0;
	case MODE_HAPROXY:
	case MODE_HAPROXY1:
	case MODE_TLS_HAP:
		return a->served > 0;
	default:
		return 1;
	}
}

static int run_rounds(const struct bench_opts *o, struct accel *acc,
		      int *accel_ok)
{
	int order[NR_MODES], n = 0, i, m, err;
	struct measurement meas = {};
	unsigned int r;
	size_t w;

	for (m = 0; m < NR_MODES; m++)
		if (o->modes[m])
			order[n++] = m;
	for (r = 0; r < o->rounds; r++) {
		if (!o->json || sl_verbosity)
			pr_info("round %u/%u\n", r + 1, o->rounds);
		for (w = 0; w < NR_WORKLOADS; w++) {
			if (!o->workloads[w])
				continue;
			/* rotate so no mode always runs first or last */
			for (i = 0; i < n; i++) {
				m = order[(i + r + w) % n];
				if (bench_stop)
					return -EINTR;
				err = measure(m, &workloads[w], o, &meas);
				if (err)
					return err;
				for (int k = 0; k < NR_METRICS; k++)
					*res(w, m, k, r) = meas.v[k];
				accel_add(&acc[m], &meas.accel, 1);
				pr_debug("%s %s: redirected %llu, passed %llu, "
					 "captured %llu, served %llu\n",
					 mode_name[m], workloads[w].label,
					 (unsigned long long)meas.accel.redirected,
					 (unsigned long long)meas.accel.passed,
					 (unsigned long long)meas.accel.captured,
					 (unsigned long long)meas.accel.served);
				/* each measurement of a mode must have taken
				 * its path
				 */
				if (!carried(m, &meas.accel))
					accel_ok[m] = 0;
			}
		}
	}
	return 0;
}

/* What the fastpath suite's redirect counters say; its exit code. */
static int report_fastpath(const struct bench_opts *o, const struct accel *acc,
			   const int *accel_ok)
{
	int m, ret = 0;

	if (!o->json) {
		printf("\n");
		for (m = MODE_BARE; m <= MODE_SIDELANE; m++)
			if (o->modes[m])
				printf("%-8s redirected %llu messages, %llu on the "
				       "normal path\n",
				       mode_name[m],
				       (unsigned long long)acc[m].redirected,
				       (unsigned long long)acc[m].passed);
	}
	for (m = MODE_BARE; m <= MODE_SIDELANE; m++) {
		if (o->modes[m] && acc[m].passed * 100 > acc[m].redirected)
			pr_warn("%s: more than 1%% of the messages took the normal "
				"path\n",
				mode_name[m]);
		if (!o->modes[m] || accel_ok[m])
			continue;
		pr_warn("%s: a measurement redirected no message: that mode "
			"was not accelerated, its figures are plain TCP\n",
			mode_name[m]);
		ret = BENCH_EXIT_NOT_ACCEL;
	}
	return ret;
}

/* The session count of mode m's haproxy (who names it); the exit code. */
static int report_haproxy(const struct bench_opts *o, const struct accel *acc,
			  const int *accel_ok, enum mode m, const char *who)
{
	if (!o->modes[m])
		return 0;
	if (!o->json)
		printf("%s served %llu connections (frontend sessions, stats "
		       "socket)\n",
		       who, (unsigned long long)acc[m].served);
	if (accel_ok[m])
		return 0;
	pr_warn("%s: a measurement's connection was not served by %s\n",
		mode_name[m], who);
	return BENCH_EXIT_NOT_ACCEL;
}

/* What capture, the fast path on the app <-> proxy hop and haproxy's
 * session count say; the exit code.
 */
static int report_sidecar(const struct bench_opts *o, const struct accel *acc,
			  const int *accel_ok)
{
	const struct accel *sl = &acc[MODE_SIDECAR];
	char link[PATH_MAX + 32];
	int ret = 0, side_sockops;

	snprintf(link, sizeof(link), "%s/" SL_PIN_LINK_SOCKOPS_SIDECAR,
		 bs.pin_root);
	side_sockops = !access(link, F_OK);
	if (!o->json && o->modes[MODE_SIDECAR]) {
		printf("\nsidelane captured %llu connections to the upstream "
		       "(capture reason \"captured\")\n",
		       (unsigned long long)sl->captured);
		printf("sidelane app <-> proxy hop: %llu sockets into the "
		       "sockhash (sockops on the sidecar's cgroup: %s), %llu "
		       "messages redirected, %llu on the normal path, %llu "
		       "switches to TCP for a lagging reader\n",
		       (unsigned long long)sl->inserted,
		       side_sockops ? "yes" : "no",
		       (unsigned long long)sl->redirected,
		       (unsigned long long)sl->passed,
		       (unsigned long long)sl->fallback);
		printf("sidelane splice: up, %llu messages (%llu B) pushed "
		       "from the app's socket straight to the upstream, %llu "
		       "relayed (%llu as the upstream was full); down, %llu "
		       "skbs (%llu B) redirected from the upstream towards the "
		       "app, %llu relayed (%llu as the app's side was full), "
		       "%llu cut as retransmitted repeats\n",
		       (unsigned long long)sl->pushed,
		       (unsigned long long)sl->pushed_bytes,
		       (unsigned long long)sl->relayed_up,
		       (unsigned long long)sl->full_up,
		       (unsigned long long)sl->down,
		       (unsigned long long)sl->down_bytes,
		       (unsigned long long)sl->relayed_down,
		       (unsigned long long)sl->full_down,
		       (unsigned long long)sl->overlaps);
		if (!sl->redirected && !sl->pushed)
			printf("  the hop was not accelerated: no message was "
			       "redirected%s\n",
			       side_sockops ? "" :
					      " (the proxy's accepted socket is "
					      "in the sidecar's cgroup, never "
					      "in the sockhash)");
	}
	if (!o->json && o->modes[MODE_RELAY])
		printf("sl-relay (proxy.splice false) captured %llu connections, "
		       "pushed %llu messages past its proxy\n",
		       (unsigned long long)acc[MODE_RELAY].captured,
		       (unsigned long long)acc[MODE_RELAY].pushed);
	if ((o->modes[MODE_SIDECAR] && !accel_ok[MODE_SIDECAR]) ||
	    (o->modes[MODE_RELAY] && !accel_ok[MODE_RELAY])) {
		pr_warn("sidelane: a measurement's connection was not captured: "
			"its figures are the direct path\n");
		ret = BENCH_EXIT_NOT_ACCEL;
	}
	ret = report_haproxy(o, acc, accel_ok, MODE_HAPROXY, "haproxy") ?: ret;
	return report_haproxy(o, acc, accel_ok, MODE_HAPROXY1, "haproxy1") ?: ret;
}

/* What the fast paths on either side of sidelane's TLS hop and haproxy A's
 * session count say; the exit code. stunnel has no count to read: its
 * client reached the server through nothing but stunnel's listener.
 */
static int report_tls(const struct bench_opts *o, const struct accel *acc,
		      const int *accel_ok)
{
	const struct accel *sl = &acc[MODE_TLS_SL];
	struct sl_proxy_counters pc;

	if (!o->json)
		printf("\n");
	/* B's counters as its `sidelane status` shows them (a second old at
	 * most); setup's probes and the mTLS check are among them
	 */
	if (!o->json && o->modes[MODE_TLS_SL] && !sl_stats_read(bs.pin_ab[1], &pc))
		printf("sidelane B: %llu TLS handshakes, %llu of them resumed "
		       "(%.0f%%); kTLS %s\n",
		       (unsigned long long)pc.tls_ok,
		       (unsigned long long)pc.tls_resumed,
		       pc.tls_ok ? 100.0 * pc.tls_resumed / pc.tls_ok : 0.0,
		       pc.tls_ktls ? "available" : "unavailable");
	if (!o->json && o->modes[MODE_TLS_SL])
		printf("sidelane fast path beside the TLS hop: client <-> A %llu "
		       "messages redirected, %llu on the normal path; B <-> "
		       "server %llu redirected, %llu on the normal path\n",
		       (unsigned long long)sl->redirected,
		       (unsigned long long)sl->passed,
		       (unsigned long long)sl->redirected_b,
		       (unsigned long long)sl->passed_b);
	return report_haproxy(o, acc, accel_ok, MODE_TLS_HAP, "haproxy A");
}

int cmd_bench(int argc, char **argv)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP };
	struct sigaction sa = { .sa_handler = on_signal }, old_sa[3];
	struct accel acc[NR_MODES] = {};
	int accel_ok[NR_MODES];
	static int atexit_done;
	struct bench_opts o;
	int err, inherited = 0, ret = 1, m;
	size_t cap, i;

	bench_stop = 0;
	err = parse_args(argc, argv, &o);
	if (err)
		return err > 0 ? 0 : BENCH_EXIT_USAGE;
	if (geteuid() != 0) {
		pr_warn("bench must run as root (loads BPF, creates cgroups)\n");
		return 1;
	}

	bs.owner = getpid();
	if (!atexit_done && !atexit(bench_cleanup))
		atexit_done = 1;
	/* no SA_RESTART: a blocking wait returns EINTR and sees the flag */
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, &old_sa[i]);
	for (m = 0; m < NR_MODES; m++)
		accel_ok[m] = 1;

	res_rounds = o.rounds;
	results = calloc((size_t)NR_WORKLOADS * NR_MODES * NR_METRICS * o.rounds,
			 sizeof(*results));
	/* a mode or workload not measured stays NAN: "-" and null */
	for (cap = 0; results && cap < (size_t)NR_WORKLOADS * NR_MODES *
					      NR_METRICS * o.rounds; cap++)
		results[cap] = NAN;
	cap = (size_t)o.duration_ms * BENCH_MAX_TPS / 1000;
	bs.shm_len = sizeof(struct bench_shm) + cap * sizeof(uint32_t);
	bs.shm = mmap(NULL, bs.shm_len, PROT_READ | PROT_WRITE,
		      MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (bs.shm == MAP_FAILED) {
		bs.shm = NULL;
		err = -errno;
	} else {
		err = results ? 0 : -ENOMEM;
	}
	if (err) {
		pr_warn("allocate results: %s\n", strerror(-err));
		goto out;
	}

	err = make_cgroups(&o);
	if (err)
		goto out;
	for (m = 0; m < NR_MODES && !inherited; m++)
		if (o.modes[m])
			inherited = inherited_sockops(bs.cgroup[mode_run[m].client]);
	if (inherited < 0) {
		pr_debug("query sockops programs: %s\n", strerror(-inherited));
		inherited = 0;
	}
	if (inherited > 0) {
		m = suites[o.suite].modes[0];
		pr_warn("%d sockops program(s) inherited from an ancestor cgroup "
			"of %s run in every mode: %s is not %s\n",
			inherited, bs.cg_mount, mode_name[m], mode_name[m]);
	}
	if (o.modes[MODE_BARE] && (err = bare_attach()))
		goto out;
	if (o.modes[MODE_SIDELANE] && (err = sidelane_attach()))
		goto out;
	if (o.suite != SUITE_FASTPATH && (err = relays_setup(&o)))
		goto interrupted;
	pr_debug("cgroups under %s, pin root %s\n", bs.cg_mount, bs.pin_root);

	err = run_rounds(&o, acc, accel_ok);
interrupted:
	if (err == -EINTR || bench_stop) {
		pr_warn("interrupted; cleaning up\n");
		ret = 130;
		goto out;
	}
	if (err)
		goto out;

	if (o.json)
		print_json(&o, acc, accel_ok, inherited);
	else
		print_table(&o);
	if (o.plot_dir && plot(&o))
		ret = 1;
	ret = o.suite == SUITE_FASTPATH ? report_fastpath(&o, acc, accel_ok) :
	      o.suite == SUITE_SIDECAR	? report_sidecar(&o, acc, accel_ok) :
					  report_tls(&o, acc, accel_ok);
out:
	bench_cleanup();
	free(results);
	results = NULL;
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &old_sa[i], NULL);
	return ret;
}
