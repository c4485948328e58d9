// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* What a config reload would change (config.h, sl_config_diff): the keys a
 * running sidecar can take, grouped by what applies them, and the keys it
 * cannot, which refuse the reload with the line they are on.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include "config/config.h"
#include "config/doc.h"
#include "config/schema.h"

#define AT(f) offsetof(struct sl_config, f)

/* A part of the config, compared whole: from its field up to the next
 * part's (padding included), the last up to the end.
 */
struct part {
	const char *key; /* its path in the file, for the line and message */
	size_t off;
	/* the change it belongs to, or 0: it cannot change at run time, why */
	unsigned int change;
	const char *why;
};

/* In the order of struct sl_config, from the first field after version
 * and loaded_ms, so the parts cover every byte (test_config flips each
 * one). The README's "Live configuration" lists the fixed ones.
 */
static const struct part parts[] = {
	{ "pin_root", AT(pin_root), 0, "the pins are there" },
	{ "cgroup", AT(cgroup), 0, "the programs are attached to it" },
	{ "fastpath", AT(fastpath), 0, "app sockets were admitted under it" },
	{ "capture.enabled", AT(capture.enabled), 0,
	  "the outbound listener is opened at start" },
	{ "capture.outbound", AT(capture.outbound), 0,
	  "the outbound listener is opened at start" },
	{ "capture.mark", AT(capture.mark), 0,
	  "open upstream sockets carry the old mark" },
	/* the rest of capture: which destinations and ports */
	{ "capture", AT(capture.n_include_cidrs), SL_CFG_CH_CAPTURE, NULL },
	{ "proxy.connect_timeout_ms", AT(proxy.connect_timeout_ms),
	  SL_CFG_CH_PROXY, NULL },
	{ "proxy.idle_timeout_ms", AT(proxy.idle_timeout_ms), SL_CFG_CH_PROXY,
	  NULL },
	{ "proxy.buffer_bytes", AT(proxy.buffer_bytes), SL_CFG_CH_PROXY, NULL },
	/* within the open files limit: reload.c checks */
	{ "proxy.max_conns", AT(proxy.max_conns), SL_CFG_CH_PROXY, NULL },
	{ "proxy.workers", AT(proxy.workers), 0,
	  "the event loops are started at start" },
	{ "proxy.splice", AT(proxy.splice), 0,
	  "the workers' splice slots are taken at start" },
	{ "proxy.external", AT(proxy.external), 0,
	  "it decides what sidelane starts" },
	{ "proxy.ambassadors", AT(proxy.n_ambassadors), SL_CFG_CH_PROXY, NULL },
	{ "tls", AT(tls.enabled), 0, "the listeners' TLS is decided at start" },
	{ "tls.cert", AT(tls.cert), SL_CFG_CH_TLS_FILES, NULL },
	{ "tls.key", AT(tls.key), SL_CFG_CH_TLS_FILES, NULL },
	{ "tls.ca", AT(tls.ca), SL_CFG_CH_TLS_FILES, NULL },
	{ "tls.trust_domain", AT(tls.trust_domain), 0,
	  "open connections and cached sessions were verified against it" },
	{ "tls.min_version", AT(tls.allow_tls12), 0,
	  "the TLS contexts are built with it" },
	{ "tls.alpn", AT(tls.alpn), 0, "the TLS contexts are built with it" },
	/* handshake_timeout_ms, reload_interval_ms, mesh */
	{ "tls", AT(tls.handshake_timeout_ms), SL_CFG_CH_PROXY, NULL },
	{ "inbound", AT(inbound.enabled), 0,
	  "the inbound listener is opened at start" },
	{ "inbound.listen", AT(inbound.listen), 0,
	  "the inbound listener is opened at start" },
	{ "inbound.mode", AT(inbound.mode), 0,
	  "the steering is chosen at start" },
	/* ports, exclude_ports */
	{ "inbound.ports", AT(inbound.n_ports), SL_CFG_CH_INBOUND, NULL },
	{ "inbound.app_port", AT(inbound.app_port), SL_CFG_CH_PROXY, NULL },
	{ "inbound.fail_open", AT(inbound.fail_open), SL_CFG_CH_INBOUND, NULL },
	/* default, identities */
	{ "inbound.identities", AT(inbound.id_default), SL_CFG_CH_PROXY, NULL },
	{ "accounting", AT(accounting), SL_CFG_CH_ALOG, NULL },
	{ "admin.listen", AT(admin.enabled), 0,
	  "the admin endpoint is opened at start" },
	{ "admin.drain_timeout_ms", AT(admin.drain_timeout_ms),
	  SL_CFG_CH_PROXY, NULL },
	{ "limits.max_conns", AT(limits), 0,
	  "the kernel tables are sized from it" },
	{ "policy", AT(policy), SL_CFG_CH_POLICY, NULL },
};
#define N_PARTS (sizeof(parts) / sizeof(parts[0]))

/* The line of key in the file at path (0 when it is not there, or the file
 * does not parse again).
 */
unsigned int sl_config_key_line(const char *path, const char *key)
{
	const cyaml_config_t cy = { .mem_fn = cyaml_mem };
	char err[SL_CFG_ERR_LEN];
	struct doc d = { .name = path, .err = err, .errlen = sizeof(err) };
	unsigned int line = 0;
	void *raw = NULL;

	if (path && !doc_load(&d, path, NULL, &sl_cfg_schema, &raw))
		line = doc_line(&d, key);
	if (raw)
		cyaml_free(&cy, &sl_cfg_schema, raw, 0);
	doc_free(&d);
	return line;
}

/* -EBUSY, "file:line: key: ... (why): restart to apply it" in err. */
static int refuse(const char *path, const char *key, const char *why,
		  char *err, size_t errlen)
{
	unsigned int line = sl_config_key_line(path, key);
	char at[16] = "";

	if (line)
		snprintf(at, sizeof(at), ":%u", line);
	snprintf(err, errlen, "%s%s: %s: cannot change while sidelane runs "
		 "(%s): restart to apply it", path ? path : "<default>", at,
		 key, why);
	return -EBUSY;
}

int sl_config_diff(const struct sl_config *run, const struct sl_config *next,
		   const char *path, unsigned int *changes, char *err,
		   size_t errlen)
{
	const char *a = (const char *)run, *b = (const char *)next;
	size_t i;

	*changes = 0;
	for (i = 0; i < N_PARTS; i++) {
		const struct part *p = &parts[i];
		size_t end = i + 1 < N_PARTS ? parts[i + 1].off :
					       sizeof(struct sl_config);

		if (!memcmp(a + p->off, b + p->off, end - p->off))
			continue;
		if (!p->change)
			return refuse(path, p->key, p->why, err, errlen);
		*changes |= p->change;
	}
	return 0;
}
