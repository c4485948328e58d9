// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* What the coexistence scan found (coexist.c), said: one log line per
 * program at start, and `status` as text or JSON (see coexist.h).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "loader/pins.h"
#include "lib/json.h"
#include "sidelane.h"
#include "loader/coexist.h"
#include "loader/fastpath_user.h"
#include "lib/cgroup.h"
#include "lib/log.h"
#include "lib/util.h"
#include "loader/coexist_int.h"

/* Kernel limit on programs per cgroup and attach type (BPF_CGROUP_MAX_PROGS),
 * times the levels an effective array can sum up.
 */

/* ---- reports ---- */

const char *sl_coexist_where(const struct sl_coexist *cx,
			     const struct sl_coexist_prog *p, char *buf,
			     size_t len)
{
	unsigned int up;

	buf[0] = '\0';
	if (p->where > SL_CX_INHERITED)
		return buf;
	snprintf(buf, len, "%s",
		 p->base == SL_CX_SIDECAR ? cx->sidecar_cgroup : cx->app_cgroup);
	for (up = 0; up < p->levels_up; up++) {
		char *slash = strrchr(buf, '/');

		if (!slash)
			break;
		*slash = '\0';
	}
	return buf;
}

static const char *base_name(unsigned int bits)
{
	switch (bits) {
	case SL_CX_APP:
		return "the app's";
	case SL_CX_SIDECAR:
		return "the sidecar's";
	default:
		return "the app's and the sidecar's";
	}
}

/* "runs after ours", or why there is no order to give. */
static const char *order_phrase(const struct sl_coexist_prog *p)
{
	if (p->where != SL_CX_NETNS && p->where != SL_CX_SOCKMAP && !p->runs)
		return "not run (a program below overrides it)";
	switch (p->order) {
	case SL_CX_BEFORE:
		return "runs before ours";
	case SL_CX_AFTER:
		return "runs after ours";
	case SL_CX_BETWEEN:
		return "runs between ours";
	default:
		return "none of ours of that type";
	}
}

/* Where p is, in words ("on app cgroup /x", "inherited from ..."). */
static void where_str(const struct sl_coexist_prog *p, const char *path,
		      char *where, size_t wlen)
{
	switch (p->where) {
	case SL_CX_OWN:
		snprintf(where, wlen, "on %s cgroup %s", base_name(p->base), path);
		break;
	case SL_CX_INHERITED:
		snprintf(where, wlen,
			 "inherited from %s (%u level%s above %s cgroup)", path,
			 p->levels_up, p->levels_up == 1 ? "" : "s",
			 base_name(p->base));
		break;
	case SL_CX_ABOVE:
		snprintf(where, wlen,
			 "inherited from above the visible cgroup tree (runs for %s cgroup)",
			 base_name(p->applies));
		break;
	case SL_CX_SOCKMAP:
		snprintf(where, wlen, "on %s %u \"%s\"%s",
			 p->map_type == BPF_MAP_TYPE_SOCKHASH ? "sockhash" : "sockmap",
			 p->map_id, p->map_name,
			 p->on_ours ? ", sidelane's own" :
			 p->fed_by ? "" : ", not fed by a sock_ops of these cgroups");
		if (p->fed_by && !p->on_ours) {
			size_t n = strlen(where);

			snprintf(where + n, wlen - n,
				 ", fed by sock_ops program %u of these cgroups",
				 p->fed_by);
		}
		break;
	case SL_CX_NETNS:
		snprintf(where, wlen, "on this network namespace");
		break;
	}
}

void sl_coexist_describe(const struct sl_coexist *cx,
			 const struct sl_coexist_prog *p, char *buf, size_t len)
{
	const struct cx_type *t = type_of(p->attach_type);
	char where[PATH_MAX + 160], path[PATH_MAX], tag[17];
	const char *how = t && t->how ? t->how : "";

	sl_coexist_where(cx, p, path, sizeof(path));
	sl_hex(tag, p->tag, 8);
	where[0] = '\0';
	where_str(p, path, where, sizeof(where));
	switch (p->action) {
	case SL_CX_REFUSE:
		snprintf(buf, len,
			 "%s program %u \"%s\" (tag %s) %s: CONFLICT: sidelane does not "
			 "attach beside another sock_ops on its own cgroup (another "
			 "mesh?); detach one of them (`bpftool cgroup detach %s sock_ops "
			 "id %u`)",
			 sl_cx_attach_name(p->attach_type), p->id, p->name, tag, where,
			 path, p->id);
		return;
	case SL_CX_WARN:
		if (p->where == SL_CX_SOCKMAP)
			snprintf(buf, len,
				 "%s program %u \"%s\" (tag %s) %s: WARNING: sockets of "
				 "these cgroups are offered to this sockmap too; %s",
				 sl_cx_attach_name(p->attach_type), p->id, p->name, tag,
				 where, p->on_ours ? "it runs on sidelane's sockets "
						     "instead of or with ours" : map_note);
		else if (p->feeds_ours)
			snprintf(buf, len,
				 "%s program %u \"%s\" (tag %s) %s, %s: WARNING: it uses "
				 "sidelane's map %u",
				 sl_cx_attach_name(p->attach_type), p->id, p->name, tag,
				 where, order_phrase(p), p->feeds_map);
		else
			snprintf(buf, len,
				 "%s program %u \"%s\" (tag %s) %s, %s: WARNING: it feeds "
				 "sockmap %u, which has sk_msg/sk_skb programs: %s",
				 sl_cx_attach_name(p->attach_type), p->id, p->name, tag,
				 where, order_phrase(p), p->feeds_map, map_note);
		return;
	case SL_CX_ALONGSIDE:
		break;
	}
	if (p->where == SL_CX_SOCKMAP) {
		snprintf(buf, len, "%s program %u \"%s\" (tag %s) %s: alongside (unrelated)",
			 sl_cx_attach_name(p->attach_type), p->id, p->name, tag,
			 where);
		return;
	}
	snprintf(buf, len, "%s program %u \"%s\" (tag %s) %s: alongside, %s; %s",
		 sl_cx_attach_name(p->attach_type), p->id, p->name, tag, where,
		 order_phrase(p), how);
}

int sl_coexist_report(const char *app_cgroup, const char *sidecar_cgroup,
		      const char *pin_root)
{
	struct sl_coexist *cx = malloc(sizeof(*cx));
	unsigned int k, unrelated = 0;
	char line[PATH_MAX + 1024];
	int n;

	if (!cx)
		return -ENOMEM;
	sl_coexist_scan(app_cgroup, sidecar_cgroup, pin_root, cx);
	for (k = 0; k < cx->n; k++) {
		const struct sl_coexist_prog *p = &cx->progs[k];

		sl_coexist_describe(cx, p, line, sizeof(line));
		if (p->where == SL_CX_SOCKMAP && p->action == SL_CX_ALONGSIDE) {
			unrelated++;
			pr_debug("coexist: %s\n", line);
		} else if (p->action == SL_CX_ALONGSIDE) {
			pr_info("coexist: %s\n", line);
		} else {
			pr_warn("coexist: %s\n", line);
		}
	}
	if (unrelated)
		pr_info("coexist: %u sk_msg/sk_skb program(s) on other sockmaps that "
			"no sock_ops of these cgroups feeds (`sidelane status` lists "
			"them)\n", unrelated);
	if (cx->n_dropped)
		pr_warn("coexist: %u more foreign program(s) not listed\n",
			cx->n_dropped);
	if (!cx->n && !cx->n_dropped)
		pr_info("coexist: no other program on these cgroups, their "
			"sockmaps or this network namespace\n");
	if (cx->err)
		pr_debug("coexist: scan incomplete: %s\n", strerror(-cx->err));
	n = (int)(cx->n + cx->n_dropped);
	free(cx);
	return n;
}

static void print_json(FILE *f, const struct sl_coexist *cx)
{
	char path[PATH_MAX], tag[17];
	unsigned int k;

	fprintf(f, ",\"coexist\":[");
	for (k = 0; k < cx->n; k++) {
		const struct sl_coexist_prog *p = &cx->progs[k];
		const char *pt = libbpf_bpf_prog_type_str(p->prog_type);

		sl_hex(tag, p->tag, 8);
		fprintf(f, "%s{\"id\":%u,\"name\":", k ? "," : "", p->id);
		sl_json_str(f, p->name);
		fprintf(f, ",\"tag\":\"%s\",\"prog_type\":\"%s\",\"attach_type\":\"%s\","
			   "\"where\":\"%s\",\"action\":\"%s\"",
			tag, p->name[0] && pt ? pt : "", sl_cx_attach_name(p->attach_type),
			sl_cx_where_name(p->where), sl_cx_action_name(p->action));
		if (p->where <= SL_CX_ABOVE) {
			fprintf(f, ",\"cgroup\":");
			sl_json_str(f, sl_coexist_where(cx, p, path, sizeof(path)));
			fprintf(f, ",\"cgroup_id\":%llu,\"levels_up\":%u,"
				   "\"applies_to\":[%s%s%s],\"runs\":%s",
				(unsigned long long)p->cgroup_id, p->levels_up,
				p->applies & SL_CX_APP ? "\"app\"" : "",
				p->applies == (SL_CX_APP | SL_CX_SIDECAR) ? "," : "",
				p->applies & SL_CX_SIDECAR ? "\"sidecar\"" : "",
				p->runs ? "true" : "false");
		}
		if (p->where != SL_CX_SOCKMAP)
			fprintf(f, ",\"order\":\"%s\"", sl_cx_order_name(p->order));
		if (p->where == SL_CX_SOCKMAP) {
			fprintf(f, ",\"map_id\":%u,\"map_type\":\"%s\",\"map_name\":",
				p->map_id,
				p->map_type == BPF_MAP_TYPE_SOCKHASH ? "sockhash" : "sockmap");
			sl_json_str(f, p->map_name);
			fprintf(f, ",\"fed_by\":%u,\"sidelane_map\":%s", p->fed_by,
				p->on_ours ? "true" : "false");
		}
		if (p->attach_type == BPF_CGROUP_SOCK_OPS)
			fprintf(f, ",\"feeds_map\":%u", p->feeds_map);
		fprintf(f, "}");
	}
	fprintf(f, "]");
	if (cx->n_dropped)
		fprintf(f, ",\"coexist_more\":%u", cx->n_dropped);
	if (cx->err) {
		fprintf(f, ",\"coexist_error\":");
		sl_json_str(f, strerror(-cx->err));
	}
}

void sl_coexist_print(FILE *f, const struct sl_coexist *cx, int json)
{
	char line[PATH_MAX + 1024];
	unsigned int k;

	if (json) {
		print_json(f, cx);
		return;
	}
	if (!cx->n && !cx->n_dropped)
		fprintf(f, "coexist: no other program on these cgroups, their "
			   "sockmaps or this network namespace\n");
	else
		fprintf(f, "coexist: %u other program(s) (rule: README, "
			   "\"Coexistence\")\n", cx->n + cx->n_dropped);
	for (k = 0; k < cx->n; k++) {
		sl_coexist_describe(cx, &cx->progs[k], line, sizeof(line));
		fprintf(f, "  %s\n", line);
	}
	if (cx->n_dropped)
		fprintf(f, "  ... and %u more\n", cx->n_dropped);
	if (cx->err)
		fprintf(f, "  (scan incomplete: %s%s)\n", strerror(-cx->err),
			cx->err == -EPERM ? ": names and sockmaps need CAP_SYS_ADMIN" : "");
}
