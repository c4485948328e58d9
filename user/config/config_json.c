// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* `sidelane config check FILE --json`: the resolved values of a loaded
 * configuration as one JSON object (the parts deploy manifests must agree
 * with: admin endpoint, TLS files, inbound ports, drain time, memory
 * budget inputs). User side only.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include "lib/json.h"
#include "config/config.h"

/* "127.0.0.1:15000" or "[::1]:15000", as the config spells endpoints. */
static void json_endpoint(FILE *f, const struct sl_endpoint *e)
{
	char buf[INET6_ADDRSTRLEN + 8];

	sl_json_str(f, sl_sockaddr_str(&e->addr, buf, sizeof(buf)));
}

static void json_ranges(FILE *f, const struct sl_port_range *r,
			unsigned int n)
{
	unsigned int i;

	fputc('[', f);
	for (i = 0; i < n; i++)
		fprintf(f, "%s[%u,%u]", i ? "," : "", r[i].lo, r[i].hi);
	fputc(']', f);
}

static const char *mode_name(enum sl_inbound_mode m)
{
	switch (m) {
	case SL_INBOUND_SK_LOOKUP:
		return "sk_lookup";
	case SL_INBOUND_LISTENER:
		return "listener";
	default:
		return "auto";
	}
}

void sl_config_print_json(FILE *f, const struct sl_config *cfg)
{
	fprintf(f, "{\"version\":\"%s\",\"pin_root\":", cfg->version);
	sl_json_str(f, cfg->pin_root);
	fprintf(f, ",\"cgroup\":");
	sl_json_str(f, cfg->cgroup);
	fprintf(f, ",\"capture\":{\"enabled\":%s,\"mark\":%u,\"outbound\":",
	       cfg->capture.enabled ? "true" : "false", cfg->capture.mark);
	json_endpoint(f, &cfg->capture.outbound);
	fprintf(f, "},\"proxy\":{\"external\":%s,\"max_conns\":%u,"
	       "\"buffer_bytes\":%u,\"ambassadors\":%u,\"splice\":%s,",
	       cfg->proxy.external ? "true" : "false", cfg->proxy.max_conns,
	       cfg->proxy.buffer_bytes, cfg->proxy.n_ambassadors,
	       cfg->proxy.splice ? "true" : "false");
	if (cfg->proxy.workers)
		fprintf(f, "\"workers\":%u}", cfg->proxy.workers);
	else
		fprintf(f, "\"workers\":\"auto\"}");
	fprintf(f, ",\"limits\":{\"max_conns\":%u}", cfg->limits.max_conns);
	fprintf(f, ",\"fastpath\":{\"app_sockets\":\"%s\"}",
		cfg->fastpath.app_sockets < SL_APP_NR ?
			sl_app_sockets_name[cfg->fastpath.app_sockets] : "?");
	fprintf(f, ",\"tls\":{\"enabled\":%s,\"cert\":",
	       cfg->tls.enabled ? "true" : "false");
	sl_json_str(f, cfg->tls.cert);
	fprintf(f, ",\"key\":");
	sl_json_str(f, cfg->tls.key);
	fprintf(f, ",\"ca\":");
	sl_json_str(f, cfg->tls.ca);
	fprintf(f, ",\"mesh\":%u}", cfg->tls.n_mesh);
	fprintf(f, ",\"inbound\":{\"enabled\":%s,\"mode\":\"%s\",\"listen\":",
	       cfg->inbound.enabled ? "true" : "false",
	       mode_name(cfg->inbound.mode));
	json_endpoint(f, &cfg->inbound.listen);
	fprintf(f, ",\"ports\":");
	json_ranges(f, cfg->inbound.ports, cfg->inbound.n_ports);
	fprintf(f, ",\"exclude_ports\":");
	json_ranges(f, cfg->inbound.exclude_ports, cfg->inbound.n_exclude_ports);
	fprintf(f, ",\"app_port\":%u,\"fail_open\":%s}", cfg->inbound.app_port,
	       cfg->inbound.fail_open ? "true" : "false");
	fprintf(f, ",\"admin\":{\"enabled\":%s,\"listen\":",
	       cfg->admin.enabled ? "true" : "false");
	if (cfg->admin.enabled)
		json_endpoint(f, &cfg->admin.listen);
	else
		sl_json_str(f, "");
	fprintf(f, ",\"drain_timeout_ms\":%u}}\n", cfg->admin.drain_timeout_ms);
}
