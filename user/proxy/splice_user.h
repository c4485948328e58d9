/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Splice, the proxy's side (user/proxy/splice.c; include/splice.h has the design):
 * after the proxy has judged a connection and connected upstream, it hands
 * both halves to the kernel when the app's socket is admitted, and tells
 * BPF while it holds bytes of either direction, so that the kernel's way
 * never overtakes them.
 */
#ifndef SPLICE_USER_H
#define SPLICE_USER_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "sidelane.h" /* SL_XSTR */
#include "splice.h"

/* Why a relayed connection is not spliced, or SL_SPLICE_SPLICED. */
#define SL_SPLICE_RESULTS(X)                                                   \
	X(SPLICED, "spliced", "both halves run in the kernel")                 \
	X(UPLOAD, "upload-only",                                                \
	  "the upload half runs in the kernel; the sk_skb verdict for the "     \
	  "download half is not attached")                                     \
	X(BUSY, "upload-busy",                                                  \
	  "the upload half runs in the kernel; the download half stays with "   \
	  "the proxy: its worker held more than " SL_XSTR(SL_SPLICE_DOWN_BUSY)   \
	  " connections, where the verdict's kworker wake-ups cost more than "  \
	  "the relay")                                                          \
	X(NOT_ADMITTED, "not-admitted",                                         \
	  "the app's socket is not admitted (its reason is in conns)")          \
	X(TLS, "tls", "TLS on a side (no kTLS): the proxy must see the bytes")  \
	X(DISABLED, "disabled", "proxy.splice is false")                        \
	X(NO_SLOT, "no-slot", "limits.max_conns pairs are spliced already")    \
	X(NO_RECORD, "no-record",                                               \
	  "the upstream socket has no record: limits.max_conns connections "    \
	  "are tracked already")                                               \
	X(UNAVAILABLE, "unavailable",                                           \
	  "the splice maps are not pinned (an older build's pins)")             \
	X(REDIRECT_OFF, "redirect-off",                                         \
	  "the start-up self-test switched redirect off on this kernel")        \
	X(FAILED, "failed", "putting the upstream into sl_relay failed")

/* Open connections of a proxy worker past which a new pair splices its
 * upload half only. Every download skb the sk_skb verdict redirects is sent
 * by a kworker: cheaper than waking the proxy for a few connections (rr 1
 * KiB: 1.30x the relay's tx/s), dearer than the relay's batching for many
 * (rr 1 KiB x1000 on 2 CPUs: both halves 0.89x haproxy, upload only 1.37x).
 */
#define SL_SPLICE_DOWN_BUSY 256

#define SL_SPLICE_ENUM(id, name, help) SL_SPLICE_##id,
enum sl_splice_result { SL_SPLICE_RESULTS(SL_SPLICE_ENUM) SL_SPLICE_NR };
#undef SL_SPLICE_ENUM

extern const char *const sl_splice_result_name[SL_SPLICE_NR];
/* enum sl_splice_why (include/splice.h) by name, per direction */
extern const char *const sl_splice_why_name[SL_SPD_NR][SL_SPW_NR];
extern const char *const sl_splice_dir_name[SL_SPD_NR];

/* What `status` and /metrics show of the splice: sl_splice_stats summed
 * over CPUs; present 0 on an older build's pins.
 */
struct sl_splice_status {
	int present;
	struct sl_splice_stats st;
};

int sl_splice_status_read(const char *pin_root, struct sl_splice_status *out);
/* status: text, or the members of a JSON object ("splice":{...}) */
void sl_splice_print(FILE *f, const struct sl_splice_status *s, int json);

/* Another process's view of the live splices (`sidelane conns`). */
struct sl_splice_view {
	int idx_fd, slots_fd; /* -1: not pinned */
};

void sl_splice_view_open(const char *pin_root, struct sl_splice_view *v);
void sl_splice_view_close(struct sl_splice_view *v);
/* Is the socket with this key (either end of the app's hop: the sidecar's
 * accepted socket, or the app's socket that connected to it) spliced?
 * Then 1, with its slot's counts; else 0.
 */
int sl_splice_view_get(const struct sl_splice_view *v,
		       const struct sl_sock_key *key,
		       struct sl_splice_slot *out);

struct sl_splicer;

/* One connection's splice; slot -1 while not spliced. */
struct sl_splice {
	int slot;
	bool down; /* the download half is spliced too */
	/* nothing redirected was in flight since the download half was last
	 * held: none can be until it is released (sl_splice_down_inflight)
	 */
	bool down_clear;
	bool holding[SL_SPD_NR]; /* that half's seq is odd */
	uint64_t seq[SL_SPD_NR];
	uint64_t owner; /* the sidecar socket's cookie */
	uint64_t up_cookie; /* the upstream socket's, its key in sl_down_idx */
	struct sl_sock_key side; /* its key in sl_splice_idx */
	uint64_t seen; /* spliced bytes last looked at (idle detection) */
};

/* Open the pinned splice maps under pin_root (the slots mmap()ed), for
 * proxy worker part of nparts: it hands out the slots whose index is part
 * modulo nparts, and part 0 clears what an earlier process left. -ENOENT
 * when an older build's pins have none.
 */
int sl_splicer_open(const char *pin_root, unsigned int part,
		    unsigned int nparts, struct sl_splicer **out);
void sl_splicer_close(struct sl_splicer *sp);

static inline void sl_splice_init(struct sl_splice *s)
{
	s->slot = -1;
}

/* Splice app_fd (the sidecar's accepted socket) and up_fd (its connected
 * upstream) when the app's socket is admitted: the upload half always, the
 * download half where the sk_skb verdict is attached and down_ok (the
 * worker is not busy, SL_SPLICE_DOWN_BUSY). Both halves start
 * holding (sl_splice_release() once the proxy has written what it holds
 * that way). sp may be NULL (unavailable). Like every proxy socket they
 * close with an RST until a graceful close (reset_on_close()).
 */
enum sl_splice_result sl_splice_start(struct sl_splicer *sp, int app_fd,
				      int up_fd, bool down_ok,
				      struct sl_splice *s);
/* Before the proxy reads one direction (SL_SPD_UP: from the app's side,
 * SL_SPD_DOWN: from the upstream): nothing goes the kernel's way until
 * released.
 */
void sl_splice_hold(struct sl_splicer *sp, struct sl_splice *s,
		    enum sl_splice_dir dir);
/* After the proxy has written everything it held that way. */
void sl_splice_release(struct sl_splicer *sp, struct sl_splice *s,
		       enum sl_splice_dir dir);
/* The proxy has written written bytes in all into app_fd (towards the
 * app), over the connection's life: BPF bounds the download by it.
 */
void sl_splice_app_written(struct sl_splicer *sp, struct sl_splice *s,
			   uint64_t written);
/* Bytes the download half redirected that have not yet entered app_fd's
 * send queue (the psock's work queue sends them): 0 when the proxy may
 * write into app_fd, or shut or reset it, without overtaking any. Never
 * less than the truth. 0 when the download half is not spliced.
 */
uint64_t sl_splice_down_inflight(struct sl_splicer *sp, struct sl_splice *s,
				 int app_fd);
/* The download dropped a byte it could not deliver once (see
 * splice_down_dedup()): the connection must end with a reset.
 */
bool sl_splice_broken(const struct sl_splicer *sp, const struct sl_splice *s);
/* What BPF did since the splice point, per half: bytes and messages taken
 * the kernel's way, or sent the relay's way (relayed, relayed_bytes).
 * Counted at the verdict: an upload message the next hop takes only in
 * part counts whole, and the app sends the rest again. Zeroes when not
 * spliced.
 */
void sl_splice_counts(const struct sl_splicer *sp, const struct sl_splice *s,
		      struct sl_splice_slot *out);
/* End it: no more pushes, the slot is freed. */
void sl_splice_stop(struct sl_splicer *sp, struct sl_splice *s);

#endif /* SPLICE_USER_H */
