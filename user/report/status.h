/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* What `sidelane status` and `sidelane policy list` show, read from the pins
 * and printed as text or JSON (user/report/status.c). Shared by the CLI (main.c)
 * and the admin endpoint's /stats and /metrics (admin.c).
 */
#ifndef SL_STATUS_H
#define SL_STATUS_H

#include <stdio.h>
#include "loader/policy_user.h"
#include "loader/fastpath_user.h"
#include "loader/capture_user.h"
#include "loader/inbound_user.h"
#include "report/proxy_stats.h"
#include "loader/coexist.h"
#include "loader/admission_user.h"
#include "proxy/splice_user.h"
#include "loader/footprint_user.h"
#include "report/counters.h"
#include "report/config_info.h"

/* The fast path's counters (struct sl_counters) in the order `status`
 * prints them, with what each one counts.
 */
#define SL_FP_COUNTERS(X)                                                      \
	X(sock_inserted, "Sockets added to the sockhash.")                     \
	X(sock_insert_failed, "Sockets the sockhash refused (full or not eligible).") \
	X(sock_removed, "Accounted sockets that closed.")                      \
	X(conn_map_full, "Sockets left without an accounting record (sl_conns full).") \
	X(redirect_ok, "Messages redirected socket to socket.")                \
	X(redirect_failed, "Messages sent over TCP: the peer was not in the sockhash.") \
	X(pass_plain, "Messages of sockets kept on the plain TCP path.")       \
	X(not_local, "Established sockets whose peer is not on this host.")   \
	X(excluded, "Sockets of an excluded service port.")                   \
	X(backlog_fallback, "Switches to TCP because the peer read too slowly.") \
	X(backlog_resumed, "Switches back to redirecting once TCP drained.")   \
	X(redirect_off, "Sockets left on TCP: redirect switched off (self-test).") \
	X(records_closed, "Connection records sent to user space at close.") \
	X(redirect_bytes, "Bytes redirected socket to socket (fast path).")   \
	X(plain_bytes, "Bytes of fast-path sockets sent over TCP instead.")   \
	X(peer_plain, "Sockets left out or taken out: their peer is not accelerated.")

/* The tables /stats, /metrics and `status` render (report/counters.h). */
extern const struct sl_ctr sl_fp_ctrs[]; /* struct sl_counters */
extern const size_t sl_fp_ctrs_n;
extern const struct sl_ctr sl_cap_ctrs[]; /* struct sl_capture_stats */
extern const size_t sl_cap_ctrs_n;
extern const struct sl_ctr sl_in_ctrs[]; /* struct sl_in_status */
extern const size_t sl_in_ctrs_n;

/* Everything `sidelane status` shows. */
struct sl_status {
	struct sl_fp_status fp;
	struct sl_cap_status cap;
	struct sl_in_status in;
	struct sl_proxy_counters pc;
	struct sl_coexist cx; /* other programs around ours (coexist.h) */
	struct sl_adm_status adm; /* which app sockets are admitted, why not */
	struct sl_splice_status splice; /* what sk_msg pushed past the proxy */
	struct sl_footprint footprint; /* the pinned maps' kernel memory */
	struct sl_config_info ci; /* the running configuration's version */
};

/* Read st from the pins under pin_root. Pins of an older build without the
 * capture, inbound or proxy counters maps leave those parts zero. Then
 * the other programs around the pinned ones' cgroups (st->cx, coexist.h).
 * 0, -ENOENT when nothing is pinned there, or -errno.
 */
int sl_status_read(const char *pin_root, struct sl_status *st);
/* Print st as `sidelane status` does. As JSON, the members of the status
 * object only ("version":...,"tls":{..}): the caller writes the braces,
 * and may add members of its own before the closing one.
 */
void sl_status_print(FILE *f, const char *pin_root, const struct sl_status *st,
		     int json);

/* `sidelane policy list [--json]`: the live rules with their hits. 0 or
 * -errno (nothing printed).
 */
int sl_policy_print(FILE *f, const char *pin_root, int json);
/* Hits of rule id (0: the default action) in what sl_policy_read gave. */
uint64_t sl_policy_hits_of(const struct sl_policy_hit *h, unsigned int n,
			   uint32_t id);
/* "allow" or "deny". */
const char *sl_action_name(enum sl_action a);

#endif /* SL_STATUS_H */
