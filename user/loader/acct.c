// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Connection accounting (see acct.h): the ring buffer consumer. One thread
 * polls sl_events (libbpf's ring_buffer) every 100 ms at most and turns
 * each record into an access log line; sl_alog_write() only queues, so a
 * slow disk never backs up into the ring (the ring itself drops and counts
 * when user space falls behind: sl_events_lost).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "lib/addr.h"
#include "loader/pins.h"
#include "lib/json.h"
#include "sidelane.h"
#include "loader/acct_user.h"
#include "loader/admission_user.h"
#include "lib/accesslog.h"
#include "loader/fastpath_user.h"
#include "lib/log.h"
#include "lib/util.h"

#define SL_ACCT_POLL_MS 100


struct sl_acct {
	struct ring_buffer *rb;
	struct sl_alog *alog;
	pthread_t th;
	int started;
	volatile int stop;
	uint32_t self;
	int64_t real_off;
	struct sl_acct_stats st;
};

int64_t sl_acct_real_offset(void)
{
	struct timespec r, m;

	clock_gettime(CLOCK_REALTIME, &r);
	clock_gettime(CLOCK_MONOTONIC, &m);
	return ((int64_t)r.tv_sec - m.tv_sec) * 1000000000LL +
	       (r.tv_nsec - m.tv_nsec);
}

static const char *addr_port(const uint8_t ip[16], uint16_t port, char *buf,
			     size_t len)
{
	char a[INET6_ADDRSTRLEN];

	sl_addr_str(ip, a, sizeof(a));
	snprintf(buf, len, strchr(a, ':') ? "[%s]:%u" : "%s:%u", a, port);
	return buf;
}

/* What a socket that reached TCP_CLOSE from this state went through. */
static const char *close_cause(uint32_t old_state)
{
	/* FIN exchanged: the close went through the usual states; straight
	 * from ESTABLISHED / CLOSE_WAIT / SYN_* means a reset or an abort
	 */
	switch (old_state) {
	case 4: /* BPF_TCP_FIN_WAIT1 */
	case 5: /* BPF_TCP_FIN_WAIT2 */
	case 6: /* BPF_TCP_TIME_WAIT */
	case 9: /* BPF_TCP_LAST_ACK */
	case 11: /* BPF_TCP_CLOSING */
		return "fin";
	default:
		return "reset";
	}
}

int sl_acct_format(const struct sl_event *ev, int64_t real_off_ns, char *buf,
		   size_t len)
{
	const struct sl_conn *c = &ev->conn;
	char ts[40], comm[64], local[64], remote[64];
	char comm_raw[sizeof(c->comm) + 1];
	int n;

	sl_time_str(ev->end_ns + real_off_ns, ts, sizeof(ts));
	memcpy(comm_raw, c->comm, sizeof(c->comm));
	comm_raw[sizeof(c->comm)] = '\0';
	if (sl_json_escape(comm, sizeof(comm), comm_raw) < 0)
		return -ENOSPC;
	addr_port(c->key.remote_ip, c->key.remote_port, remote, sizeof(remote));
	if (ev->type == SL_EV_DENIED) {
		n = snprintf(buf, len,
			     "{\"ts\":\"%s\",\"kind\":\"denied\",\"dst\":\"%s\","
			     "\"rule\":%u,\"pid\":%u,\"comm\":%s,\"cgroup\":%llu}",
			     ts, remote, ev->rule_id, c->pid, comm,
			     (unsigned long long)c->cgroup_id);
		return n < 0 || (size_t)n >= len ? -ENOSPC : n;
	}
	addr_port(c->key.local_ip, c->key.local_port, local, sizeof(local));
	n = snprintf(buf, len,
		     "{\"ts\":\"%s\",\"kind\":\"socket\",\"cookie\":%llu,"
		     "\"local\":\"%s\",\"remote\":\"%s\",\"direction\":\"%s\","
		     "\"netns\":%llu,\"cgroup\":%llu,\"pid\":%u,\"comm\":%s,"
		     "\"accelerated\":%s,\"reason\":\"%s\","
		     "\"bytes_out\":%llu,\"bytes_in\":%llu,"
		     "\"redirected_out\":%llu,\"redirected_in\":%llu,"
		     "\"msgs_out\":%llu,\"msgs_in_redirected\":%llu,"
		     "\"duration_ms\":%llu,\"close\":\"%s\"}",
		     ts, (unsigned long long)ev->cookie, local, remote,
		     c->flags & SL_CONN_F_PASSIVE ? "inbound" : "outbound",
		     (unsigned long long)c->key.netns_cookie,
		     (unsigned long long)c->cgroup_id, c->pid, comm,
		     c->reason == SL_ACC_ACCELERATED ? "true" : "false",
		     c->reason < SL_ACC_NR ? sl_acc_reason_name[c->reason] : "?",
		     (unsigned long long)(c->redir_bytes + ev->tcp_bytes_acked),
		     (unsigned long long)(c->rx_redir_bytes +
					  ev->tcp_bytes_received),
		     (unsigned long long)c->redir_bytes,
		     (unsigned long long)c->rx_redir_bytes,
		     (unsigned long long)(c->redir_msgs + c->pass_msgs),
		     (unsigned long long)c->rx_redir_msgs,
		     (unsigned long long)((ev->end_ns - c->start_ns) / 1000000),
		     close_cause(ev->close_state));
	return n < 0 || (size_t)n >= len ? -ENOSPC : n;
}

static int on_event(void *ctx, void *data, size_t size)
{
	struct sl_acct *a = ctx;
	const struct sl_event *ev = data;
	char line[1024];
	int n;

	if (size < sizeof(*ev))
		return 0;
	if (ev->type == SL_EV_DENIED)
		a->st.denied++;
	else
		a->st.closed++;
	/* our own sockets: the proxy logs those connections as relays */
	if (ev->type == SL_EV_CLOSE && ev->conn.pid == a->self)
		return 0;
	n = sl_acct_format(ev, a->real_off, line, sizeof(line));
	if (n > 0)
		sl_alog_write(__atomic_load_n(&a->alog, __ATOMIC_ACQUIRE), line,
			      (size_t)n);
	return 0;
}

void sl_acct_set_alog(struct sl_acct *a, struct sl_alog *alog)
{
	if (a)
		__atomic_store_n(&a->alog, alog, __ATOMIC_RELEASE);
}

static void *acct_main(void *arg)
{
	struct sl_acct *a = arg;

	/* The programs wake us only once SL_EVENTS_WAKE_BYTES wait
	 * (sl_event_flags): after each poll, timed out or not, take what is
	 * there, since a record submitted without a wake-up never makes the
	 * ring's fd ready.
	 */
	while (!a->stop) {
		ring_buffer__poll(a->rb, SL_ACCT_POLL_MS);
		ring_buffer__consume(a->rb);
	}
	ring_buffer__consume(a->rb); /* what arrived before the stop */
	return NULL;
}

int sl_acct_start(const char *pin_root, struct sl_alog *alog,
		  struct sl_acct **out)
{
	struct sl_acct *a;
	sigset_t all, old;
	int fd, err;

	*out = NULL;
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->alog = alog;
	a->self = (uint32_t)getpid();
	a->real_off = sl_acct_real_offset();
	fd = sl_pin_open(pin_root, SL_MAP_EVENTS);
	if (fd < 0) {
		err = fd;
		goto err;
	}
	a->rb = ring_buffer__new(fd, on_event, a, NULL);
	close(fd); /* the ring buffer keeps its own mapping */
	if (!a->rb) {
		err = -errno;
		goto err;
	}
	/* signals stay with the main thread; SIGSYS is libpsx's (privs.c) */
	sigfillset(&all);
	sigdelset(&all, SIGSYS);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	err = -pthread_create(&a->th, NULL, acct_main, a);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err)
		goto err;
	a->started = 1;
	*out = a;
	return 0;
err:
	pr_warn("accounting: reading %s/%s: %s\n", pin_root, SL_MAP_EVENTS,
		strerror(-err));
	ring_buffer__free(a->rb);
	free(a);
	return err;
}

void sl_acct_stop(struct sl_acct *a)
{
	if (!a)
		return;
	a->stop = 1;
	if (a->started)
		pthread_join(a->th, NULL);
	ring_buffer__free(a->rb);
	free(a);
}

void sl_acct_stats(const struct sl_acct *a, struct sl_acct_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (!a)
		return;
	out->closed = __atomic_load_n(&a->st.closed, __ATOMIC_RELAXED);
	out->denied = __atomic_load_n(&a->st.denied, __ATOMIC_RELAXED);
}

int sl_acct_lost(const char *pin_root, uint64_t *out)
{
	int fd = sl_pin_open(pin_root, SL_MAP_EVENTS_LOST), err;

	*out = 0;
	if (fd < 0)
		return fd;
	err = sl_percpu_sum_u64(fd, 0, out, sizeof(*out));
	close(fd);
	return err;
}
