// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Admission, user side (see admission.h): names, what each mode changes,
 * and the pinned admission maps read back for status.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include "loader/pins.h"
#include "sidelane.h"
#include "loader/admission_user.h"
#include "loader/fastpath_user.h"
#include "lib/json.h"
#include "lib/log.h"

#define SL_ACC_NAME(id, name, help) [SL_ACC_##id] = name,
#define SL_ACC_HELP(id, name, help) [SL_ACC_##id] = help,
const char *const sl_acc_reason_name[SL_ACC_NR] = { SL_ACC_REASONS(SL_ACC_NAME) };
const char *const sl_acc_reason_help[SL_ACC_NR] = { SL_ACC_REASONS(SL_ACC_HELP) };
#undef SL_ACC_NAME
#undef SL_ACC_HELP

int sl_adm_read(const char *pin_root, struct sl_adm_status *st)
{
	__u32 zero = 0;
	int fd, err;

	memset(st, 0, sizeof(*st));
	fd = sl_pin_open(pin_root, SL_MAP_ADM_CFG);
	if (fd < 0)
		return fd;
	err = bpf_map_lookup_elem(fd, &zero, &st->cfg) ? -errno : 0;
	close(fd);
	if (err)
		return err;
	fd = sl_pin_open(pin_root, SL_MAP_ADM_STATS);
	if (fd < 0)
		return fd;
	err = sl_percpu_sum_u64(fd, 0, &st->stats, sizeof(st->stats));
	close(fd);
	st->present = !err;
	return err;
}

_Static_assert(SL_ACC_NR <= SL_ADM_SLOTS,
	       "struct sl_adm_stats has a counter slot per reason");

int sl_adm_sweep(int link_fd, struct sl_sweep_result *res)
{
	struct sl_sweep_rec rec[64];
	ssize_t n;
	size_t i;
	int fd, err = 0;

	memset(res, 0, sizeof(*res));
	fd = bpf_iter_create(link_fd);
	if (fd < 0)
		return -errno;
	/* the iterator writes whole records; a read returns whole ones */
	while ((n = read(fd, rec, sizeof(rec))) > 0)
		for (i = 0; i < (size_t)n / sizeof(rec[0]); i++) {
			if (rec[i].what == SL_SWEEP_EVICTED)
				res->evicted++;
			else if (rec[i].what == SL_SWEEP_WAITING)
				res->waiting++;
		}
	if (n < 0)
		err = -errno;
	close(fd);
	return err;
}

/* What an app socket admitted send-only can still tell, on any kernel:
 * measured by tests/integ/conformance.c, listed in the README.
 */
static const char *const send_only_residuals[] = {
	"SIOCOUTQ/SIOCOUTQNSPACE count no redirected byte (TCP counts them "
	"until they are acknowledged)",
	"TCP_INFO's send counters (tcpi_bytes_sent, tcpi_bytes_acked, "
	"tcpi_segs_out) leave redirected bytes out",
	"a recv() that was already blocked when the socket was made blocking "
	"can return EAGAIN once if woken without data (a signal, its own FIN "
	"acknowledged): the socket leaves the sockhash at its next send or "
	"the next segment it receives",
	NULL,
};

/* What the all mode changes for an app socket (a redirect target). */
static const char *const all_differences[] = {
	"MSG_WAITALL returns what was redirected so far",
	"SO_RCVLOWAT is ignored by poll() for redirected bytes",
	"close() with unread redirected bytes sends FIN, not RST",
	"splice() from the socket sees no redirected byte (a blocking one "
	"waits for ever)",
	"a blocking recv() woken without data (another thread sending, a "
	"signal) fails EAGAIN at once",
	"FIONREAD/SIOCINQ count redirected bytes only",
	NULL,
};

static void list(const char *mode, const char *const *lines)
{
	for (; *lines; lines++)
		pr_warn("app sockets %s: %s\n", mode, *lines);
}

void sl_adm_explain(uint32_t mode, uint32_t kernel)
{
	int fionread = kernel & SL_KERNEL_TCP_FIONREAD;

	switch (mode) {
	case SL_APP_SAFE:
		if (!fionread) {
			pr_info("app sockets safe: none admitted on this kernel: a "
				"socket in a sockmap answers FIONREAD with "
				"redirected bytes only, so an app socket there "
				"would under-report what TCP brought. App "
				"sockets stay on plain TCP (status counts them "
				"by reason); `fastpath.app_sockets: send` "
				"admits non-blocking ones and accepts that\n");
			return;
		}
		pr_info("app sockets safe: non-blocking app sockets connecting "
			"to the sidecar are admitted send-only (app -> sidecar "
			"in the kernel, sidecar -> app over TCP); blocking, "
			"accepted and app<->app ones stay on TCP. What an "
			"admitted app can still tell:\n");
		list("safe", send_only_residuals);
		return;
	case SL_APP_SEND:
		pr_warn("app sockets send (opt-in): non-blocking app sockets "
			"connecting to the sidecar are admitted send-only, on "
			"any kernel. What an admitted app can tell:\n");
		if (!fionread)
			pr_warn("app sockets send: FIONREAD/SIOCINQ count 0 for "
				"the bytes TCP brought (this kernel's "
				"tcp_bpf_ioctl)\n");
		list("send", send_only_residuals);
		return;
	case SL_APP_ALL:
		pr_warn("app sockets all (opt-in): every local socket is "
			"accelerated both ways, blocking ones and app<->app "
			"pairs included. What an app can tell:\n");
		list("all", all_differences);
		return;
	default:
		pr_info("app sockets none: no app socket enters the sockhash\n");
	}
}

void sl_adm_print(FILE *f, const struct sl_adm_status *st, int json)
{
	const struct sl_adm_stats *s = &st->stats;
	const char *mode = st->cfg.mode < SL_APP_NR ?
				   sl_app_sockets_name[st->cfg.mode] : "?";
	const char *sep = "";
	int i;

	if (json) {
		fprintf(f, "\"admission\":{\"present\":%s,\"app_sockets\":\"%s\","
			   "\"kernel_tcp_fionread\":%s,\"sidecar_cgroup_id\":%llu,",
			st->present ? "true" : "false", mode,
			st->cfg.kernel & SL_KERNEL_TCP_FIONREAD ? "true" : "false",
			(unsigned long long)st->cfg.sidecar_cgroup_id);
		sl_json_by_name(f, "sockets", sl_acc_reason_name, s->sockets, 0,
				SL_ACC_NR);
		fputc(',', f);
		sl_json_by_name(f, "evicted", sl_acc_reason_name, s->evicted, 0,
				SL_ACC_NR);
		fputc('}', f);
		return;
	}
	if (!st->present) {
		fprintf(f, "admission: not pinned (an older build's pins)\n");
		return;
	}
	fprintf(f, "admission: app_sockets %s; this kernel %s FIONREAD on a "
		   "sockmap socket\n  sockets by reason:", mode,
		st->cfg.kernel & SL_KERNEL_TCP_FIONREAD ? "keeps" : "changes");
	for (i = 0; i < SL_ACC_NR; i++)
		if (s->sockets[i])
			fprintf(f, " %s=%llu", sl_acc_reason_name[i],
				(unsigned long long)s->sockets[i]);
	fprintf(f, "\n  taken out again:");
	for (sep = " none", i = 0; i < SL_ACC_NR; i++)
		if (s->evicted[i]) {
			fprintf(f, " %s=%llu", sl_acc_reason_name[i],
				(unsigned long long)s->evicted[i]);
			sep = "";
		}
	fprintf(f, "%s\n", sep);
}
