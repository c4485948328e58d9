/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The shape libcyaml loads a configuration or policy file into (schema.c),
 * before config.c checks every value into config.h's structs. Internal to
 * user/config/.
 */
#ifndef SL_CONFIG_SCHEMA_H
#define SL_CONFIG_SCHEMA_H

#include <cyaml/cyaml.h>

/* Scalars are loaded as strings and parsed here: libcyaml 1.3 reads "5.0"
 * and "1_000" as integers 5 and 1, "010" as octal and any word as a true
 * bool, where a config file wants a strict reading.
 */
struct raw_rule {
	char *id, *action, *cidr;
	char **ports;
	unsigned int ports_count;
};

struct raw_policy {
	char *default_action;
	struct raw_rule *rules;
	unsigned int rules_count;
};

struct raw_ambassador {
	char *listen, *upstream;
};

struct raw_fastpath {
	char *app_sockets;
	char **exclude_ports;
	unsigned int exclude_ports_count;
};

struct raw_capture {
	char *enabled, *outbound, *mark;
	char **include_cidrs, **exclude_cidrs, **include_ports, **exclude_ports;
	unsigned int include_cidrs_count, exclude_cidrs_count;
	unsigned int include_ports_count, exclude_ports_count;
};

struct raw_proxy {
	char *connect_timeout_ms, *idle_timeout_ms, *buffer_bytes, *max_conns;
	char *workers;
	char *splice, *external;
	struct raw_ambassador *ambassadors;
	unsigned int ambassadors_count;
};

struct raw_mesh {
	char *cidr;
	char **ports, **identities;
	unsigned int ports_count, identities_count;
};

struct raw_tls {
	char *cert, *key, *ca, *trust_domain, *min_version, *alpn;
	char *handshake_timeout_ms, *reload_interval_ms;
	struct raw_mesh *mesh;
	unsigned int mesh_count;
};

struct raw_id_rule {
	char *id, *action;
	char **ports;
	unsigned int ports_count;
};

struct raw_inbound {
	char *enabled, *listen, *mode, *app_port, *fail_open, *default_action;
	char **ports, **exclude_ports;
	unsigned int ports_count, exclude_ports_count;
	struct raw_id_rule *identities;
	unsigned int identities_count;
};

struct raw_admin {
	char *listen, *drain_timeout_ms;
};

struct raw_limits {
	char *max_conns;
};

struct raw_accounting {
	char *access_log, *max_bytes, *keep;
};

struct raw_config {
	char *pin_root, *cgroup;
	struct raw_admin *admin;
	struct raw_limits *limits;
	struct raw_accounting *accounting;
	struct raw_tls *tls;
	struct raw_inbound *inbound;
	struct raw_fastpath *fastpath;
	struct raw_capture *capture;
	struct raw_proxy *proxy;
	struct raw_policy *policy;
};

/* a whole configuration file; a policy file (`rules:`, `default:`) */
extern const cyaml_schema_value_t sl_cfg_schema;
extern const cyaml_schema_value_t sl_policy_file_schema;

#endif /* SL_CONFIG_SCHEMA_H */
