// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* `sidelane conns [--json | --watch]`: live sockets of the fast path. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli/cli.h"
#include <signal.h>
#include <arpa/inet.h>
#include "lib/addr.h"
#include "lib/log.h"
#include "loader/admission_user.h"
#include "loader/capture_user.h"
#include "loader/fastpath_user.h"
#include "loader/pins.h"
#include "proxy/splice_user.h"

/* `conns --watch` runs until SIGINT. */
static volatile sig_atomic_t stop_flag;

static void on_stop(int sig)
{
	(void)sig;
	stop_flag = 1;
}

/* `conns --watch`: the busiest live connections, refreshed every second,
 * like top(1). Bytes per second from two readings of sl_conns.
 */
#define SL_TOP_N 20
#define SL_TOP_MAX 4096

struct top_row {
	uint64_t cookie, bytes, rate;
	struct sl_conn c;
};

struct top_ctx {
	struct top_row *rows, *prev;
	size_t n, n_prev;
};







struct conns_ctx {
	const char *pin_root;
	int json, n;
	struct sl_splice_view splice;
};

/* Why a socket is or is not on the fast path, from its record's flags. */
static const char *conn_reason(const struct sl_conn *c)
{
	if (c->reason != SL_ACC_ACCELERATED)
		return c->reason < SL_ACC_NR ? sl_acc_reason_name[c->reason] : "?";
	if (c->flags & SL_CONN_F_BACKLOG)
		return "tcp_while_peer_catches_up";
	return c->redir_msgs ? "accelerated" : "accelerated_idle";
}

static int top_collect(uint64_t cookie, const void *val, void *arg)
{
	const struct sl_conn *c = val;
	struct top_ctx *t = arg;
	struct top_row *r;
	size_t i;

	if (t->n >= SL_TOP_MAX)
		return 1;
	r = &t->rows[t->n++];
	r->cookie = cookie;
	r->c = *c;
	r->bytes = c->redir_bytes + c->pass_bytes;
	r->rate = 0;
	for (i = 0; i < t->n_prev; i++)
		if (t->prev[i].cookie == cookie && r->bytes >= t->prev[i].bytes) {
			r->rate = r->bytes - t->prev[i].bytes;
			break;
		}
	return 0;
}

static int top_cmp(const void *a, const void *b)
{
	const struct top_row *x = a, *y = b;

	if (x->rate != y->rate)
		return x->rate < y->rate ? 1 : -1;
	return x->bytes < y->bytes ? 1 : x->bytes > y->bytes ? -1 : 0;
}

static int conns_watch(const char *pin_root)
{
	struct top_ctx t = {};
	struct sl_conn conn;
	int err = 0;

	t.rows = calloc(SL_TOP_MAX, sizeof(*t.rows));
	t.prev = calloc(SL_TOP_MAX, sizeof(*t.prev));
	if (!t.rows || !t.prev) {
		err = -ENOMEM;
		goto out;
	}
	while (!stop_flag) {
		char l[INET6_ADDRSTRLEN], r[INET6_ADDRSTRLEN];
		size_t i;

		t.n = 0;
		err = sl_pin_foreach_u64(pin_root, SL_MAP_CONNS, &conn,
					 top_collect, &t);
		if (err)
			break;
		qsort(t.rows, t.n, sizeof(*t.rows), top_cmp);
		printf("\033[H\033[2J%zu live sockets under %s; busiest first "
		       "(bytes sent per second, then in all); ^C quits\n"
		       "%-8s %-7s %-22s %-22s %-6s %-12s %12s %14s  %s\n",
		       t.n, pin_root, "pid", "comm", "local", "remote", "role",
		       "path", "B/s", "bytes", "why");
		for (i = 0; i < t.n && i < SL_TOP_N; i++) {
			const struct sl_conn *c = &t.rows[i].c;
			char la[64], ra[64], comm[sizeof(c->comm) + 1];

			sl_addr_str(c->key.local_ip, l, sizeof(l));
			sl_addr_str(c->key.remote_ip, r, sizeof(r));
			snprintf(la, sizeof(la), "%s:%u", l, c->key.local_port);
			snprintf(ra, sizeof(ra), "%s:%u", r, c->key.remote_port);
			memcpy(comm, c->comm, sizeof(c->comm));
			comm[sizeof(c->comm)] = '\0';
			printf("%-8u %-7.7s %-22s %-22s %-6s %-12s %12llu %14llu  %s\n",
			       c->pid, comm[0] ? comm : "-", la, ra,
			       c->flags & SL_CONN_F_PASSIVE ? "server" : "client",
			       c->reason == SL_ACC_ACCELERATED ? "redirect" : "tcp",
			       (unsigned long long)t.rows[i].rate,
			       (unsigned long long)t.rows[i].bytes, conn_reason(c));
		}
		fflush(stdout);
		memcpy(t.prev, t.rows, t.n * sizeof(*t.rows));
		t.n_prev = t.n;
		sleep(1);
	}
out:
	free(t.rows);
	free(t.prev);
	return err;
}

static int print_conn(uint64_t cookie, const void *val, void *arg)
{
	const struct sl_conn *c = val;
	struct conns_ctx *x = arg;
	char l[INET6_ADDRSTRLEN], r[INET6_ADDRSTRLEN], o[INET6_ADDRSTRLEN] = "";
	struct sl_splice_slot sp;
	struct sl_orig orig;
	int captured, spliced;

	spliced = sl_splice_view_get(&x->splice, &c->key, &sp);
	sl_addr_str(c->key.local_ip, l, sizeof(l));
	sl_addr_str(c->key.remote_ip, r, sizeof(r));
	captured = !sl_cap_orig(x->pin_root, cookie, &orig);
	if (captured)
		sl_addr_str(orig.ip, o, sizeof(o));
	if (x->json) {
		printf("%s{\"cookie\":%llu,\"local\":\"%s:%u\",\"remote\":\"%s:%u\","
		       "\"role\":\"%s\",\"pid\":%u,\"cgroup_id\":%llu,\"reason\":\"%s\","
		       "\"redir_bytes\":%llu,\"redir_msgs\":%llu,\"pass_bytes\":%llu,"
		       "\"pass_msgs\":%llu",
		       x->n ? "," : "", (unsigned long long)cookie, l, c->key.local_port,
		       r, c->key.remote_port,
		       c->flags & SL_CONN_F_PASSIVE ? "server" : "client", c->pid,
		       (unsigned long long)c->cgroup_id, conn_reason(c),
		       (unsigned long long)c->redir_bytes,
		       (unsigned long long)c->redir_msgs,
		       (unsigned long long)c->pass_bytes,
		       (unsigned long long)c->pass_msgs);
		if (captured)
			printf(",\"captured_to\":\"%s:%u\",\"rule_id\":%u", o,
			       orig.port, orig.rule_id);
		if (spliced)
			printf(",\"spliced\":{\"pushed_bytes\":%llu,"
			       "\"relayed_bytes\":%llu,"
			       "\"down_redirected_bytes\":%llu,"
			       "\"down_relayed_bytes\":%llu}",
			       (unsigned long long)sp.half[SL_SPD_UP].bytes,
			       (unsigned long long)sp.half[SL_SPD_UP].relayed_bytes,
			       (unsigned long long)sp.half[SL_SPD_DOWN].bytes,
			       (unsigned long long)sp.half[SL_SPD_DOWN].relayed_bytes);
		printf("}");
	} else {
		printf("%-20llu %-6s %s:%u -> %s:%u  pid %u  %s  redirected %llu B/%llu msgs, plain %llu B",
		       (unsigned long long)cookie,
		       c->flags & SL_CONN_F_PASSIVE ? "server" : "client", l,
		       c->key.local_port, r, c->key.remote_port, c->pid,
		       conn_reason(c), (unsigned long long)c->redir_bytes,
		       (unsigned long long)c->redir_msgs,
		       (unsigned long long)c->pass_bytes);
		if (captured)
			printf("  captured, meant for %s:%u (rule %u)", o, orig.port,
			       orig.rule_id);
		if (spliced)
			printf("  spliced: up %llu B pushed, %llu B relayed; "
			       "down %llu B redirected, %llu B relayed",
			       (unsigned long long)sp.half[SL_SPD_UP].bytes,
			       (unsigned long long)sp.half[SL_SPD_UP].relayed_bytes,
			       (unsigned long long)sp.half[SL_SPD_DOWN].bytes,
			       (unsigned long long)sp.half[SL_SPD_DOWN].relayed_bytes);
		printf("\n");
	}
	x->n++;
	return 0;
}

static int print_uncaptured(uint64_t cookie, const void *val, void *arg)
{
	const struct sl_connect_rec *r = val;
	struct conns_ctx *x = arg;
	char ip[INET6_ADDRSTRLEN];
	const char *why = r->reason < SL_CR_NR ? sl_capture_reason_name[r->reason] : "?";

	sl_addr_str(r->ip, ip, sizeof(ip));
	if (x->json)
		printf("%s{\"cookie\":%llu,\"dst\":\"%s:%u\",\"reason\":\"%s\"}",
		       x->n ? "," : "", (unsigned long long)cookie, ip, r->port, why);
	else
		printf("%-20llu connect to %s:%u not captured: %s\n",
		       (unsigned long long)cookie, ip, r->port, why);
	x->n++;
	return 0;
}

int cmd_conns(int argc, char **argv)
{
	struct sl_connect_rec rec;
	struct conns_ctx x = {};
	struct sl_conn conn;
	struct cli cli = {};
	int err;

	if (parse_opts(argc, argv, &cli,
		       ALLOW(OPT_PIN_ROOT) | ALLOW(OPT_JSON) | ALLOW(OPT_WATCH)))
		return EXIT_USAGE;
	if (need_root())
		return 1;
	if (cli.watch) {
		signal(SIGINT, on_stop);
		err = conns_watch(cli.pin_root);
		if (err == -ENOENT)
			return nothing_pinned(cli.pin_root);
		return err ? 1 : 0;
	}
	x.pin_root = cli.pin_root;
	x.json = cli.json;
	sl_splice_view_open(cli.pin_root, &x.splice);
	if (x.json)
		printf("{\"sockets\":[");
	err = sl_pin_foreach_u64(cli.pin_root, SL_MAP_CONNS, &conn, print_conn, &x);
	sl_splice_view_close(&x.splice);
	if (!err) {
		int n = x.n;

		printf(x.json ? "],\"uncaptured_connects\":[" :
				"%d sockets on the fast path's books\n", n);
		x.n = 0;
		/* Absent without capture (an older pin folder): not an error. */
		sl_pin_foreach_u64(cli.pin_root, SL_MAP_CONNECT_REASON, &rec,
				   print_uncaptured, &x);
		printf(x.json ? "]}\n" : "%d open connects of the app left uncaptured\n",
		       x.n);
	}
	if (err == -ENOENT)
		return nothing_pinned(cli.pin_root);
	return err ? 1 : 0;
}
