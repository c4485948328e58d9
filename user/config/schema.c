// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The libcyaml schema of configuration and policy files (see schema.h):
 * structure, key names, which keys are required, list lengths. Every
 * scalar is a string here; config.c parses it.
 */
#include "config/config.h"
#include "config/schema.h"

#define OPT (CYAML_FLAG_OPTIONAL | CYAML_FLAG_POINTER)
/* Sections and lists may be null ("capture:" alone): an empty list, or
 * every default of that section.
 */
#define OPT_NULL (CYAML_FLAG_OPTIONAL | CYAML_FLAG_POINTER_NULL)
#define STR(key, flags, type, member) \
	CYAML_FIELD_STRING_PTR(key, flags, type, member, 0, CYAML_UNLIMITED)
#define LIST(key, type, member, entry, max) \
	CYAML_FIELD_SEQUENCE(key, OPT_NULL, type, member, entry, 0, max)

static const cyaml_schema_value_t scalar_schema = {
	CYAML_VALUE_STRING(CYAML_FLAG_POINTER, char, 0, CYAML_UNLIMITED),
};

static const cyaml_schema_field_t rule_fields[] = {
	STR("id", CYAML_FLAG_POINTER, struct raw_rule, id),
	STR("action", CYAML_FLAG_POINTER, struct raw_rule, action),
	STR("cidr", CYAML_FLAG_POINTER, struct raw_rule, cidr),
	LIST("ports", struct raw_rule, ports, &scalar_schema,
	     SL_CFG_MAX_RULE_PORTS),
	CYAML_FIELD_END
};

static const cyaml_schema_value_t rule_schema = {
	CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, struct raw_rule, rule_fields),
};

/* The `policy:` section of a config file: both keys optional. */
static const cyaml_schema_field_t policy_fields[] = {
	STR("default", OPT, struct raw_policy, default_action),
	LIST("rules", struct raw_policy, rules, &rule_schema, SL_CFG_MAX_RULES),
	CYAML_FIELD_END
};

/* A policy file: rules required (an empty policy is written `rules: []`),
 * so an empty or mistyped file cannot silently drop every rule.
 */
static const cyaml_schema_field_t policy_file_fields[] = {
	STR("default", OPT, struct raw_policy, default_action),
	CYAML_FIELD_SEQUENCE("rules", CYAML_FLAG_POINTER_NULL, struct raw_policy,
			     rules, &rule_schema, 0, SL_CFG_MAX_RULES),
	CYAML_FIELD_END
};

const cyaml_schema_value_t sl_policy_file_schema = {
	CYAML_VALUE_MAPPING(CYAML_FLAG_POINTER, struct raw_policy,
			    policy_file_fields),
};

static const cyaml_schema_field_t ambassador_fields[] = {
	STR("listen", CYAML_FLAG_POINTER, struct raw_ambassador, listen),
	STR("upstream", CYAML_FLAG_POINTER, struct raw_ambassador, upstream),
	CYAML_FIELD_END
};

static const cyaml_schema_value_t ambassador_schema = {
	CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, struct raw_ambassador,
			    ambassador_fields),
};

static const cyaml_schema_field_t fastpath_fields[] = {
	STR("app_sockets", OPT, struct raw_fastpath, app_sockets),
	LIST("exclude_ports", struct raw_fastpath, exclude_ports, &scalar_schema,
	     SL_CFG_MAX_PORTS),
	CYAML_FIELD_END
};

static const cyaml_schema_field_t capture_fields[] = {
	STR("enabled", OPT, struct raw_capture, enabled),
	STR("outbound", OPT, struct raw_capture, outbound),
	STR("mark", OPT, struct raw_capture, mark),
	LIST("include_cidrs", struct raw_capture, include_cidrs, &scalar_schema,
	     SL_CFG_MAX_CIDRS),
	LIST("exclude_cidrs", struct raw_capture, exclude_cidrs, &scalar_schema,
	     SL_CFG_MAX_CIDRS),
	LIST("include_ports", struct raw_capture, include_ports, &scalar_schema,
	     SL_CFG_MAX_PORTS),
	LIST("exclude_ports", struct raw_capture, exclude_ports, &scalar_schema,
	     SL_CFG_MAX_PORTS),
	CYAML_FIELD_END
};

static const cyaml_schema_field_t proxy_fields[] = {
	STR("connect_timeout_ms", OPT, struct raw_proxy, connect_timeout_ms),
	STR("idle_timeout_ms", OPT, struct raw_proxy, idle_timeout_ms),
	STR("buffer_bytes", OPT, struct raw_proxy, buffer_bytes),
	STR("max_conns", OPT, struct raw_proxy, max_conns),
	STR("workers", OPT, struct raw_proxy, workers),
	STR("splice", OPT, struct raw_proxy, splice),
	STR("external", OPT, struct raw_proxy, external),
	LIST("ambassadors", struct raw_proxy, ambassadors, &ambassador_schema,
	     SL_CFG_MAX_AMBASSADORS),
	CYAML_FIELD_END
};

static const cyaml_schema_field_t mesh_fields[] = {
	STR("cidr", CYAML_FLAG_POINTER, struct raw_mesh, cidr),
	LIST("ports", struct raw_mesh, ports, &scalar_schema,
	     SL_CFG_MAX_RULE_PORTS),
	LIST("identities", struct raw_mesh, identities, &scalar_schema,
	     SL_CFG_MAX_MESH_IDS),
	CYAML_FIELD_END
};

static const cyaml_schema_value_t mesh_schema = {
	CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, struct raw_mesh, mesh_fields),
};

static const cyaml_schema_field_t tls_fields[] = {
	STR("cert", OPT, struct raw_tls, cert),
	STR("key", OPT, struct raw_tls, key),
	STR("ca", OPT, struct raw_tls, ca),
	STR("trust_domain", OPT, struct raw_tls, trust_domain),
	STR("min_version", OPT, struct raw_tls, min_version),
	STR("alpn", OPT, struct raw_tls, alpn),
	STR("handshake_timeout_ms", OPT, struct raw_tls, handshake_timeout_ms),
	STR("reload_interval_ms", OPT, struct raw_tls, reload_interval_ms),
	LIST("mesh", struct raw_tls, mesh, &mesh_schema, SL_CFG_MAX_MESH),
	CYAML_FIELD_END
};

static const cyaml_schema_field_t id_rule_fields[] = {
	STR("id", CYAML_FLAG_POINTER, struct raw_id_rule, id),
	STR("action", CYAML_FLAG_POINTER, struct raw_id_rule, action),
	LIST("ports", struct raw_id_rule, ports, &scalar_schema,
	     SL_CFG_MAX_RULE_PORTS),
	CYAML_FIELD_END
};

static const cyaml_schema_value_t id_rule_schema = {
	CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, struct raw_id_rule,
			    id_rule_fields),
};

static const cyaml_schema_field_t inbound_fields[] = {
	STR("enabled", OPT, struct raw_inbound, enabled),
	STR("listen", OPT, struct raw_inbound, listen),
	STR("mode", OPT, struct raw_inbound, mode),
	LIST("ports", struct raw_inbound, ports, &scalar_schema,
	     SL_CFG_MAX_PORTS),
	LIST("exclude_ports", struct raw_inbound, exclude_ports, &scalar_schema,
	     SL_CFG_MAX_PORTS),
	STR("app_port", OPT, struct raw_inbound, app_port),
	STR("fail_open", OPT, struct raw_inbound, fail_open),
	STR("default", OPT, struct raw_inbound, default_action),
	LIST("identities", struct raw_inbound, identities, &id_rule_schema,
	     SL_CFG_MAX_ID_RULES),
	CYAML_FIELD_END
};

static const cyaml_schema_field_t admin_fields[] = {
	STR("listen", OPT, struct raw_admin, listen),
	STR("drain_timeout_ms", OPT, struct raw_admin, drain_timeout_ms),
	CYAML_FIELD_END
};

static const cyaml_schema_field_t limits_fields[] = {
	STR("max_conns", OPT, struct raw_limits, max_conns),
	CYAML_FIELD_END
};

static const cyaml_schema_field_t accounting_fields[] = {
	STR("access_log", OPT, struct raw_accounting, access_log),
	STR("max_bytes", OPT, struct raw_accounting, max_bytes),
	STR("keep", OPT, struct raw_accounting, keep),
	CYAML_FIELD_END
};

static const cyaml_schema_field_t config_fields[] = {
	STR("pin_root", OPT, struct raw_config, pin_root),
	STR("cgroup", OPT, struct raw_config, cgroup),
	CYAML_FIELD_MAPPING_PTR("fastpath", OPT_NULL, struct raw_config, fastpath,
				fastpath_fields),
	CYAML_FIELD_MAPPING_PTR("capture", OPT_NULL, struct raw_config, capture,
				capture_fields),
	CYAML_FIELD_MAPPING_PTR("proxy", OPT_NULL, struct raw_config, proxy,
				proxy_fields),
	CYAML_FIELD_MAPPING_PTR("tls", OPT_NULL, struct raw_config, tls,
				tls_fields),
	CYAML_FIELD_MAPPING_PTR("inbound", OPT_NULL, struct raw_config, inbound,
				inbound_fields),
	CYAML_FIELD_MAPPING_PTR("accounting", OPT_NULL, struct raw_config,
				accounting, accounting_fields),
	CYAML_FIELD_MAPPING_PTR("admin", OPT_NULL, struct raw_config, admin,
				admin_fields),
	CYAML_FIELD_MAPPING_PTR("limits", OPT_NULL, struct raw_config, limits,
				limits_fields),
	CYAML_FIELD_MAPPING_PTR("policy", OPT_NULL, struct raw_config, policy,
				policy_fields),
	CYAML_FIELD_END
};

const cyaml_schema_value_t sl_cfg_schema = {
	CYAML_VALUE_MAPPING(CYAML_FLAG_POINTER, struct raw_config, config_fields),
};

