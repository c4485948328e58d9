// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Splice, the proxy's side (splice_user.h; include/splice.h has the design).
 * Runs on the proxy's event loop thread only: holding and releasing are
 * plain stores into the mmap()ed sl_splice, which BPF reads; the pair's
 * entries in sl_relay, sl_down and the two indexes are written once at the
 * start and (the indexes) once at the end.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include <netinet/in.h>
#include <linux/tcp.h> /* tcpi_bytes_acked: glibc's tcp_info lacks it */
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <bpf/bpf.h>
#include "loader/pins.h"
#include "sidelane.h"
#include "acct.h"
#include "admission.h"
#include "loader/fastpath_user.h"
#include "proxy/splice_user.h"
#include "lib/json.h"
#include "lib/log.h"

#define SL_SPLICE_NAME(id, name, help) [SL_SPLICE_##id] = name,
const char *const sl_splice_result_name[SL_SPLICE_NR] = {
	SL_SPLICE_RESULTS(SL_SPLICE_NAME)
};
#undef SL_SPLICE_NAME

const char *const sl_splice_dir_name[SL_SPD_NR] = {
	[SL_SPD_UP] = "up",
	[SL_SPD_DOWN] = "down",
};

/* the target: the upstream's socket up, the sidecar's socket to the app
 * down
 */
const char *const sl_splice_why_name[SL_SPD_NR][SL_SPW_NR] = {
	[SL_SPD_UP] = {
		[SL_SPW_BEHIND] = "behind",
		[SL_SPW_FULL] = "upstream-full",
		[SL_SPW_UP_STATE] = "upstream-closing",
		[SL_SPW_NO_UPSTREAM] = "upstream-gone",
	},
	[SL_SPD_DOWN] = {
		[SL_SPW_BEHIND] = "behind",
		[SL_SPW_FULL] = "app-full",
		[SL_SPW_UP_STATE] = "app-closing",
		[SL_SPW_NO_UPSTREAM] = "app-gone",
	},
};

_Static_assert(SL_SPW_NR <= SL_SPLICE_WHY_SLOTS,
	       "sl_splice_stats.relay[] has a slot per why");

int sl_splice_status_read(const char *pin_root, struct sl_splice_status *out)
{
	int fd, err;

	memset(out, 0, sizeof(*out));
	fd = sl_pin_open(pin_root, SL_MAP_SPLICE_STATS);
	if (fd < 0)
		return fd;
	err = sl_percpu_sum_u64(fd, 0, &out->st, sizeof(out->st));
	close(fd);
	out->present = !err;
	return err;
}

void sl_splice_view_open(const char *pin_root, struct sl_splice_view *v)
{
	v->idx_fd = sl_pin_open(pin_root, SL_MAP_SPLICE_IDX);
	v->slots_fd = sl_pin_open(pin_root, SL_MAP_SPLICE);
}

void sl_splice_view_close(struct sl_splice_view *v)
{
	if (v->idx_fd >= 0)
		close(v->idx_fd);
	if (v->slots_fd >= 0)
		close(v->slots_fd);
	v->idx_fd = v->slots_fd = -1;
}

int sl_splice_view_get(const struct sl_splice_view *v,
		       const struct sl_sock_key *key,
		       struct sl_splice_slot *out)
{
	struct sl_splice_ref ref;
	struct sl_sock_key peer;

	if (v->idx_fd < 0 || v->slots_fd < 0)
		return 0;
	/* sl_splice_idx is keyed by the sidecar's end: the app's socket
	 * finds it under its own key with the ends swapped
	 */
	if (bpf_map_lookup_elem(v->idx_fd, key, &ref)) {
		sl_sock_key_swap(key, &peer);
		if (bpf_map_lookup_elem(v->idx_fd, &peer, &ref))
			return 0;
	}
	return !bpf_map_lookup_elem(v->slots_fd, &ref.slot, out) &&
	       out->owner == ref.owner;
}

void sl_splice_print(FILE *f, const struct sl_splice_status *s, int json)
{
	int d, i;

	if (json) {
		fprintf(f, "\"splice\":{\"present\":%s", 
			s->present ? "true" : "false");
		for (d = 0; d < SL_SPD_NR; d++) {
			fprintf(f, ",\"%s\":{\"pushed_msgs\":%llu,"
				   "\"pushed_bytes\":%llu,",
				sl_splice_dir_name[d],
				(unsigned long long)s->st.dir[d].pushed_msgs,
				(unsigned long long)s->st.dir[d].pushed_bytes);
			sl_json_by_name(f, "relayed_msgs", sl_splice_why_name[d],
					s->st.dir[d].relay, 0, SL_SPW_NR);
			fputc('}', f);
		}
		fprintf(f, ",\"overlap_skbs\":%llu,\"overlap_bytes\":%llu,"
			   "\"overlap_trim_failed\":%llu}",
			(unsigned long long)s->st.dup_skbs,
			(unsigned long long)s->st.dup_bytes,
			(unsigned long long)s->st.trim_failed);
		return;
	}
	if (!s->present) {
		fprintf(f, "splice: not pinned (an older build's pins)\n");
		return;
	}
	for (d = 0; d < SL_SPD_NR; d++) {
		fprintf(f, "splice %s: %llu %s (%llu B) %s; relayed while "
			   "spliced:",
			sl_splice_dir_name[d],
			(unsigned long long)s->st.dir[d].pushed_msgs,
			d == SL_SPD_UP ? "messages" : "skbs",
			(unsigned long long)s->st.dir[d].pushed_bytes,
			d == SL_SPD_UP ? "pushed straight to an upstream" :
					 "redirected straight to an app's side");
		for (i = 0; i < SL_SPW_NR; i++)
			fprintf(f, " %s=%llu", sl_splice_why_name[d][i],
				(unsigned long long)s->st.dir[d].relay[i]);
		fputc('\n', f);
	}
	fprintf(f, "splice down: %llu skbs overlapped bytes delivered before "
		   "(%llu B cut), %llu could not be cut (pair reset)\n",
		(unsigned long long)s->st.dup_skbs,
		(unsigned long long)s->st.dup_bytes,
		(unsigned long long)s->st.trim_failed);
}

struct sl_splicer {
	int relay_fd, idx_fd, conns_fd;
	/* sl_down and sl_down_idx; -1 when the sk_skb verdict is not
	 * attached (the download half stays with the proxy)
	 */
	int down_fd, down_idx_fd;
	bool redirect_off; /* sl_fp_cfg: sk_msg pushes nothing */
	/* sl_adm_cfg: no app socket can be admitted (mode none, or safe on a
	 * kernel that changes FIONREAD): no per-connection look-up
	 */
	bool none_admitted;
	/* This worker's part of sl_splice, mmap()ed: slots lo..hi-1. An
	 * array map's mmap() maps every page at once, so mapping the whole
	 * map in each worker would count it once per worker in our RSS.
	 */
	void *map;
	size_t map_len;
	struct sl_splice_slot *slots; /* slot lo, in map */
	uint32_t lo, hi;
	uint32_t *free; /* a stack of free slots (global indices) */
	uint32_t n_free;
};

void sl_splicer_close(struct sl_splicer *sp)
{
	if (!sp)
		return;
	if (sp->map)
		munmap(sp->map, sp->map_len);
	free(sp->free);
	if (sp->relay_fd >= 0)
		close(sp->relay_fd);
	if (sp->idx_fd >= 0)
		close(sp->idx_fd);
	if (sp->conns_fd >= 0)
		close(sp->conns_fd);
	if (sp->down_fd >= 0)
		close(sp->down_fd);
	if (sp->down_idx_fd >= 0)
		close(sp->down_idx_fd);
	free(sp);
}

/* Slot i (a global index, as BPF knows it) of this worker's part. */
static struct sl_splice_slot *slot_at(const struct sl_splicer *sp, uint32_t i)
{
	return &sp->slots[i - sp->lo];
}

static void clear_idx(int fd, void *key)
{
	while (fd >= 0 && !bpf_map_get_next_key(fd, NULL, key))
		if (bpf_map_delete_elem(fd, key))
			break;
}

/* Is the download half's verdict attached to sl_down (link or program)? */
static bool down_attached(const char *pin_root)
{
	int fd = sl_pin_open(pin_root, SL_PIN_LINK_SK_SKB);

	if (fd < 0)
		fd = sl_pin_open(pin_root, SL_PIN_PROG_SK_SKB);
	if (fd < 0)
		return false;
	close(fd);
	return true;
}

/* This worker's part of sl_splice (fd): a contiguous range of the slots,
 * so no lock on the data path, and only the pages of that range mapped (a
 * page at either end may be shared with a neighbour, which writes only its
 * own slots there).
 */
static int map_part(struct sl_splicer *sp, int fd, unsigned int part,
		    unsigned int nparts)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	size_t page, off, start;
	uint64_t n;

	if (bpf_obj_get_info_by_fd(fd, &info, &len) || !info.max_entries)
		return -EINVAL;
	n = info.max_entries;
	sp->lo = (uint32_t)(n * part / nparts);
	sp->hi = (uint32_t)(n * (part + 1) / nparts);
	sp->free = calloc(sp->hi - sp->lo + 1, sizeof(*sp->free));
	if (!sp->free)
		return -ENOMEM;
	if (sp->hi == sp->lo)
		return 0;
	page = (size_t)sysconf(_SC_PAGESIZE);
	off = (size_t)sp->lo * sizeof(*sp->slots);
	start = off / page * page;
	sp->map_len = (size_t)sp->hi * sizeof(*sp->slots) - start;
	sp->map = mmap(NULL, sp->map_len, PROT_READ | PROT_WRITE, MAP_SHARED,
		       fd, (off_t)start);
	if (sp->map == MAP_FAILED) {
		sp->map = NULL;
		return -errno;
	}
	sp->slots = (struct sl_splice_slot *)((char *)sp->map + (off - start));
	return 0;
}

/* What the pinned settings say: sk_msg pushes nothing (redirect off), or
 * no app socket can be admitted (no per-connection look-up then).
 */
static void read_modes(struct sl_splicer *sp, const char *pin_root)
{
	struct sl_adm_cfg adm;
	struct sl_fp_cfg cfg;
	__u32 zero = 0;
	int fd;

	fd = sl_pin_open(pin_root, SL_MAP_FP_CFG);
	if (fd >= 0) {
		sp->redirect_off = !bpf_map_lookup_elem(fd, &zero, &cfg) &&
				   cfg.redirect_off;
		close(fd);
	}
	fd = sl_pin_open(pin_root, SL_MAP_ADM_CFG);
	if (fd >= 0) {
		sp->none_admitted =
			!bpf_map_lookup_elem(fd, &zero, &adm) &&
			(adm.mode == SL_APP_NONE ||
			 (adm.mode == SL_APP_SAFE &&
			  !(adm.kernel & SL_KERNEL_TCP_FIONREAD)));
		close(fd);
	}
}

/* The download half's maps, when its verdict is attached; else both -1 (the
 * proxy relays that half).
 */
static void open_down(struct sl_splicer *sp, const char *pin_root)
{
	sp->down_fd = sp->down_idx_fd = -1;
	if (!down_attached(pin_root))
		return;
	sp->down_fd = sl_pin_open(pin_root, SL_MAP_DOWN);
	sp->down_idx_fd = sl_pin_open(pin_root, SL_MAP_DOWN_IDX);
	if (sp->down_fd >= 0 && sp->down_idx_fd >= 0)
		return;
	if (sp->down_fd >= 0)
		close(sp->down_fd);
	if (sp->down_idx_fd >= 0)
		close(sp->down_idx_fd);
	sp->down_fd = sp->down_idx_fd = -1;
}

int sl_splicer_open(const char *pin_root, unsigned int part,
		    unsigned int nparts, struct sl_splicer **out)
{
	struct sl_splicer *sp;
	struct sl_sock_key key;
	__u64 cookie;
	int fd, err;
	uint32_t i;

	*out = NULL;
	sp = calloc(1, sizeof(*sp));
	if (!sp)
		return -ENOMEM;
	sp->relay_fd = sl_pin_open(pin_root, SL_MAP_RELAY);
	sp->idx_fd = sl_pin_open(pin_root, SL_MAP_SPLICE_IDX);
	sp->conns_fd = sl_pin_open(pin_root, SL_MAP_CONNS);
	open_down(sp, pin_root);
	fd = sl_pin_open(pin_root, SL_MAP_SPLICE);
	err = sp->relay_fd < 0 ? sp->relay_fd :
	      sp->idx_fd < 0	 ? sp->idx_fd :
	      sp->conns_fd < 0	 ? sp->conns_fd :
				   fd;
	if (err < 0) {
		if (fd >= 0)
			close(fd);
		goto fail;
	}
	err = map_part(sp, fd, part, nparts);
	close(fd);
	if (err)
		goto fail;
	read_modes(sp, pin_root);
	/* A restart: what an earlier process spliced died with its sockets
	 * (closed with it, reset by SO_LINGER {1, 0}); its entries are stale.
	 */
	if (!part) {
		clear_idx(sp->idx_fd, &key);
		clear_idx(sp->down_idx_fd, &cookie);
	}
	/* Lowest first, as the stack pops. */
	for (i = sp->hi; i-- > sp->lo;) {
		__atomic_store_n(&slot_at(sp, i)->owner, 0, __ATOMIC_RELEASE);
		sp->free[sp->n_free++] = i;
	}
	*out = sp;
	return 0;
fail:
	sl_splicer_close(sp);
	return err;
}

/* Is the app socket behind the sidecar's accepted socket app_fd admitted?
 * sockops marks the accepted end SL_CONN_F_SIDECAR, in the sockhash, only
 * when the app's socket that connected to it was (bpf/fastpath.bpf.c).
 */
static bool peer_admitted(struct sl_splicer *sp, int app_fd, uint64_t *cookie)
{
	socklen_t len = sizeof(*cookie);
	struct sl_conn conn;

	if (getsockopt(app_fd, SOL_SOCKET, SO_COOKIE, cookie, &len) ||
	    bpf_map_lookup_elem(sp->conns_fd, cookie, &conn))
		return false;
	return (conn.flags & (SL_CONN_F_SIDECAR | SL_CONN_F_IN_SOCKHASH)) ==
	       (SL_CONN_F_SIDECAR | SL_CONN_F_IN_SOCKHASH);
}

/* Has the upstream socket its record (sockops keeps its tcp_sock in
 * sl_up_by_key from it)? Not when the records table was full: both halves
 * need it, the download's overlap cut its sequence numbers.
 */
static bool up_recorded(struct sl_splicer *sp, int up_fd, uint64_t *cookie)
{
	socklen_t len = sizeof(*cookie);
	struct sl_conn conn;

	return !getsockopt(up_fd, SOL_SOCKET, SO_COOKIE, cookie, &len) &&
	       !bpf_map_lookup_elem(sp->conns_fd, cookie, &conn) &&
	       (conn.flags & SL_CONN_F_UPSTREAM);
}

/* The download half: the upstream into sl_down (its psock takes the
 * verdict from here on), then its index entry. Holding from the start, like
 * the upload. false: the download stays with the proxy.
 */
static bool down_start(struct sl_splicer *sp, int up_fd,
		       const struct sl_splice_ref *ref, struct sl_splice *s)
{
	__u64 fd = (__u64)up_fd;

	if (sp->down_fd < 0)
		return false;
	/* s->up_cookie: up_recorded() */
	if (bpf_map_update_elem(sp->down_idx_fd, &s->up_cookie, ref, BPF_ANY))
		return false;
	if (bpf_map_update_elem(sp->down_fd, &ref->up, &fd, BPF_ANY)) {
		pr_debug("splice: sl_down: %s\n", strerror(errno));
		bpf_map_delete_elem(sp->down_idx_fd, &s->up_cookie);
		return false;
	}
	return true;
}

enum sl_splice_result sl_splice_start(struct sl_splicer *sp, int app_fd,
				      int up_fd, bool down_ok,
				      struct sl_splice *s)
{
	struct sl_splice_ref ref = {};
	struct sl_splice_slot *slot;
	__u64 fd = (__u64)up_fd;
	uint64_t cookie;
	int d;

	sl_splice_init(s);
	if (!sp)
		return SL_SPLICE_UNAVAILABLE;
	if (sp->redirect_off)
		return SL_SPLICE_REDIRECT_OFF;
	if (sp->none_admitted)
		return SL_SPLICE_NOT_ADMITTED;
	if (!peer_admitted(sp, app_fd, &cookie))
		return SL_SPLICE_NOT_ADMITTED;
	if (!up_recorded(sp, up_fd, &s->up_cookie))
		return SL_SPLICE_NO_RECORD;
	if (!sp->n_free)
		return SL_SPLICE_NO_SLOT;
	if (sl_fd_sock_key(app_fd, &s->side) || sl_fd_sock_key(up_fd, &ref.up) ||
	    bpf_map_update_elem(sp->relay_fd, &ref.up, &fd, BPF_ANY)) {
		pr_debug("splice: sl_relay: %s\n", strerror(errno));
		return SL_SPLICE_FAILED;
	}
	ref.side = s->side;
	ref.slot = sp->free[--sp->n_free];
	ref.owner = cookie;
	slot = slot_at(sp, ref.slot);
	memset(slot->half, 0, sizeof(slot->half));
	slot->rcv_next = slot->rcv_set = 0;
	/* holding from the start: the proxy may still hold bytes */
	for (d = 0; d < SL_SPD_NR; d++) {
		s->seq[d] = 1;
		s->holding[d] = true;
		__atomic_store_n(&slot->half[d].seq, 1, __ATOMIC_SEQ_CST);
	}
	__atomic_store_n(&slot->app_written, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&slot->owner, cookie, __ATOMIC_RELEASE);
	/* the download first: once sl_splice_idx has the pair, both halves
	 * are in place (`conns` and the tests look there)
	 */
	s->down = down_ok && down_start(sp, up_fd, &ref, s);
	if (bpf_map_update_elem(sp->idx_fd, &s->side, &ref, BPF_ANY)) {
		pr_debug("splice: sl_splice_idx: %s\n", strerror(errno));
		if (s->down) /* its verdict passes all without the index */
			bpf_map_delete_elem(sp->down_idx_fd, &s->up_cookie);
		s->down = false;
		__atomic_store_n(&slot->owner, 0, __ATOMIC_RELEASE);
		sp->free[sp->n_free++] = ref.slot;
		bpf_map_delete_elem(sp->relay_fd, &ref.up);
		return SL_SPLICE_FAILED;
	}
	s->slot = (int)ref.slot;
	s->owner = cookie;
	s->seen = 0;
	s->down_clear = false;
	return s->down		       ? SL_SPLICE_SPLICED :
	       !down_ok && sp->down_fd >= 0 ? SL_SPLICE_BUSY :
					      SL_SPLICE_UPLOAD;
}

void sl_splice_hold(struct sl_splicer *sp, struct sl_splice *s,
		    enum sl_splice_dir dir)
{
	if (s->slot < 0 || s->holding[dir] || (dir == SL_SPD_DOWN && !s->down))
		return;
	/* seq_cst: visible before the read that follows takes any byte */
	__atomic_store_n(&slot_at(sp, s->slot)->half[dir].seq, ++s->seq[dir],
			 __ATOMIC_SEQ_CST);
	s->holding[dir] = true;
}

void sl_splice_release(struct sl_splicer *sp, struct sl_splice *s,
		       enum sl_splice_dir dir)
{
	if (s->slot < 0 || !s->holding[dir])
		return;
	/* release: after the send() that wrote the last held byte */
	__atomic_store_n(&slot_at(sp, s->slot)->half[dir].seq, ++s->seq[dir],
			 __ATOMIC_RELEASE);
	s->holding[dir] = false;
	if (dir == SL_SPD_DOWN)
		s->down_clear = false;
}

void sl_splice_app_written(struct sl_splicer *sp, struct sl_splice *s,
			   uint64_t written)
{
	if (s->slot >= 0 && s->down)
		__atomic_store_n(&slot_at(sp, s->slot)->app_written, written,
				 __ATOMIC_RELEASE);
}

uint64_t sl_splice_down_inflight(struct sl_splicer *sp, struct sl_splice *s,
				 int app_fd)
{
	struct tcp_info ti = {};
	socklen_t len = sizeof(ti);
	uint64_t sent, queued;
	int outq = 0;

	if (s->slot < 0 || !s->down || s->down_clear)
		return 0;
	/* what the verdict redirected (counted before the redirect is
	 * queued), then the socket: acked first, the queue second, so an
	 * ACK in between makes queued smaller, never larger, than the truth
	 */
	sent = __atomic_load_n(&slot_at(sp, s->slot)->half[SL_SPD_DOWN].bytes,
			       __ATOMIC_ACQUIRE) +
	       __atomic_load_n(&slot_at(sp, s->slot)->app_written,
			       __ATOMIC_RELAXED);
	if (getsockopt(app_fd, IPPROTO_TCP, TCP_INFO, &ti, &len) ||
	    len < offsetof(struct tcp_info, tcpi_bytes_acked) +
			  sizeof(ti.tcpi_bytes_acked) ||
	    ioctl(app_fd, SIOCOUTQ, &outq))
		return 0; /* the socket failed: nothing will enter it */
	queued = ti.tcpi_bytes_acked + (uint32_t)outq;
	if (sent > queued)
		return sent - queued;
	/* Held, and the proxy has read the upstream since (side_fill holds
	 * before it reads): every verdict run that saw the half released has
	 * finished (both take the upstream's socket lock) and is counted in
	 * sent; later ones see it held and redirect nothing.
	 */
	s->down_clear = s->holding[SL_SPD_DOWN];
	return 0;
}

bool sl_splice_broken(const struct sl_splicer *sp, const struct sl_splice *s)
{
	return s->slot >= 0 && s->down &&
	       __atomic_load_n(&slot_at(sp, s->slot)->rcv_set, __ATOMIC_RELAXED) ==
		       SL_RCV_BROKEN;
}

void sl_splice_counts(const struct sl_splicer *sp, const struct sl_splice *s,
		      struct sl_splice_slot *out)
{
	const struct sl_splice_slot *slot;
	int d;

	memset(out, 0, sizeof(*out));
	if (s->slot < 0)
		return;
	slot = slot_at(sp, s->slot);
	for (d = 0; d < SL_SPD_NR; d++) {
		const struct sl_splice_half *h = &slot->half[d];

		out->half[d].bytes = __atomic_load_n(&h->bytes, __ATOMIC_RELAXED);
		out->half[d].msgs = __atomic_load_n(&h->msgs, __ATOMIC_RELAXED);
		out->half[d].relayed = __atomic_load_n(&h->relayed,
						       __ATOMIC_RELAXED);
		out->half[d].relayed_bytes =
			__atomic_load_n(&h->relayed_bytes, __ATOMIC_RELAXED);
	}
}

void sl_splice_stop(struct sl_splicer *sp, struct sl_splice *s)
{
	struct sl_splice_slot *slot;

	if (s->slot < 0)
		return;
	slot = slot_at(sp, s->slot);
	bpf_map_delete_elem(sp->idx_fd, &s->side);
	/* the upstream stays in sl_down until it closes: taking it out
	 * would drop its psock, and with it what the verdict passed and the
	 * proxy has not read yet
	 */
	if (s->down)
		bpf_map_delete_elem(sp->down_idx_fd, &s->up_cookie);
	__atomic_store_n(&slot->owner, 0, __ATOMIC_RELEASE);
	sp->free[sp->n_free++] = (uint32_t)s->slot;
	s->slot = -1;
}
