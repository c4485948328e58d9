/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* sidelane's configuration and policy files (user/config/config.c): YAML parsed with
 * libcyaml against a declared schema, validated, turned into these structs.
 * A bad file is rejected with "file:line: reason" and nothing else changes.
 */
#ifndef CONFIG_H
#define CONFIG_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <sys/socket.h>

#include "admission.h"
#include "lib/addr.h"
#include "capture.h"

#define SL_CFG_MAX_CIDRS 64
#define SL_CFG_MAX_PORTS 64
#define SL_CFG_MAX_AMBASSADORS 32
#define SL_CFG_MAX_WORKERS 256 /* proxy event loops */
#define SL_CFG_MAX_RULES SL_MAX_POLICY_RULES /* the kernel counts hits per rule */
#define SL_CFG_MAX_RULE_PORTS 8 /* port ranges per rule */
#define SL_CFG_ERR_LEN 512
#define SL_CFG_PATH_MAX 1024 /* certificate/key/CA file paths */
#define SL_CFG_MAX_MESH 64 /* tls.mesh entries */
#define SL_CFG_MAX_MESH_IDS 8 /* server identity patterns per mesh entry */
#define SL_CFG_MAX_ID_RULES 64 /* inbound.identities rules */
#define SL_CFG_ID_LEN 512 /* a SPIFFE ID pattern in the config */

enum sl_action { SL_ACTION_ALLOW = 1, SL_ACTION_DENY = 2 };

/* One L3/L4 rule. Matching: the most specific prefix containing the
 * destination wins; within it the first rule whose port ranges match
 * (no ranges = every port); no match = the policy's default action.
 */
struct sl_rule {
	uint32_t id; /* 1..; unique within a policy */
	enum sl_action action;
	struct sl_cidr cidr;
	unsigned int n_ports;
	struct sl_port_range ports[SL_CFG_MAX_RULE_PORTS];
	unsigned int line; /* where it was written, for messages */
};

struct sl_policy {
	enum sl_action default_action; /* allow when not given */
	unsigned int n_rules;
	struct sl_rule rules[SL_CFG_MAX_RULES];
};

struct sl_ambassador {
	struct sl_endpoint listen; /* must be a loopback address */
	char upstream_host[256]; /* name or numeric address, resolved at connect */
	uint16_t upstream_port;
};

/* A destination whose sidecar speaks mutual TLS: connections the proxy makes
 * to it (captured or an ambassador's upstream) originate TLS. The server must
 * present one of ids (none: any identity of the trust domain).
 */
struct sl_mesh_dst {
	struct sl_cidr cidr;
	unsigned int n_ports; /* none: every port */
	struct sl_port_range ports[SL_CFG_MAX_RULE_PORTS];
	unsigned int n_ids;
	char ids[SL_CFG_MAX_MESH_IDS][SL_CFG_ID_LEN];
};

/* Inbound identity rule: the first whose ports hold the app port and whose
 * pattern matches the client's SPIFFE ID decides.
 */
struct sl_id_rule_cfg {
	char id[SL_CFG_ID_LEN]; /* exact, "spiffe://td/path/<star>" or "*" */
	enum sl_action action;
	unsigned int n_ports; /* none: every port */
	struct sl_port_range ports[SL_CFG_MAX_RULE_PORTS];
	unsigned int line;
};

/* How connections for the app's ports reach the inbound listener. */
enum sl_inbound_mode {
	SL_INBOUND_AUTO = 0, /* sk_lookup where the kernel has it, else listener */
	SL_INBOUND_SK_LOOKUP, /* sk_lookup or fail */
	SL_INBOUND_LISTENER, /* peers dial inbound.listen; relayed to app_port */
};

#define SL_CFG_VERSION_LEN 16 /* hex digits of the file's SHA-256 shown */

struct sl_config {
	/* the file's version: the first SL_CFG_VERSION_LEN hex digits of its
	 * SHA-256 ("default" for the embedded one), and when it was loaded
	 * (CLOCK_REALTIME ms)
	 */
	char version[SL_CFG_VERSION_LEN + 1];
	uint64_t loaded_ms;
	char pin_root[256];
	char cgroup[512]; /* the app's cgroup; "" = given on the command line */
	struct {
		uint32_t app_sockets; /* enum sl_app_sockets (admission.h) */
		unsigned int n_exclude_ports;
		uint16_t exclude_ports[SL_CFG_MAX_PORTS];
	} fastpath;
	struct {
		int enabled;
		struct sl_endpoint outbound; /* transparent listener, loopback */
		uint32_t mark; /* SO_MARK of sidelane's own upstream sockets */
		unsigned int n_include_cidrs, n_exclude_cidrs;
		struct sl_cidr include_cidrs[SL_CFG_MAX_CIDRS];
		struct sl_cidr exclude_cidrs[SL_CFG_MAX_CIDRS];
		unsigned int n_include_ports, n_exclude_ports; /* include empty = all */
		struct sl_port_range include_ports[SL_CFG_MAX_PORTS];
		struct sl_port_range exclude_ports[SL_CFG_MAX_PORTS];
	} capture;
	struct {
		unsigned int connect_timeout_ms;
		unsigned int idle_timeout_ms;
		unsigned int buffer_bytes; /* per direction */
		unsigned int max_conns;
		unsigned int workers; /* event loops; 0: auto (sl_workers_auto) */
		int splice; /* hand admitted uploads to the kernel (splice.h) */
		/* a foreign proxy (Envoy, haproxy) in the sidecar cgroup serves
		 * capture.outbound and inbound.listen: no listener of ours
		 */
		int external;
		unsigned int n_ambassadors;
		struct sl_ambassador ambassadors[SL_CFG_MAX_AMBASSADORS];
	} proxy;
	struct {
		int enabled; /* cert, key and ca given */
		char cert[SL_CFG_PATH_MAX], key[SL_CFG_PATH_MAX],
			ca[SL_CFG_PATH_MAX];
		char trust_domain[256]; /* "" = the one of our certificate */
		int allow_tls12; /* min_version "1.2" */
		char alpn[256]; /* "h2,http/1.1"; "" none */
		unsigned int handshake_timeout_ms;
		unsigned int reload_interval_ms;
		unsigned int n_mesh;
		struct sl_mesh_dst mesh[SL_CFG_MAX_MESH];
	} tls;
	struct {
		int enabled;
		struct sl_endpoint listen; /* the inbound listener */
		enum sl_inbound_mode mode;
		unsigned int n_ports, n_exclude_ports;
		struct sl_port_range ports[SL_CFG_MAX_PORTS];
		struct sl_port_range exclude_ports[SL_CFG_MAX_PORTS];
		uint16_t app_port; /* listener mode: where connections go */
		int fail_open; /* sk_lookup with the sidecar gone: reach the app */
		enum sl_action id_default;
		unsigned int n_ids;
		struct sl_id_rule_cfg ids[SL_CFG_MAX_ID_RULES];
	} inbound;
	struct {
		char access_log[SL_CFG_PATH_MAX]; /* "" = none */
		unsigned int max_bytes; /* rotate the live file at this size */
		unsigned int keep; /* gzip-compressed rotated files kept */
	} accounting;
	struct {
		int enabled; /* listen given */
		struct sl_endpoint listen; /* loopback only */
		unsigned int drain_timeout_ms; /* SIGTERM and POST /drain */
	} admin;
	struct {
		/* the kernel tables are sized from it (sl_sizing_set()) */
		unsigned int max_conns;
	} limits;
	struct sl_policy policy;
};

/* The built-in default (what `sidelane config` prints). */
extern const char sl_config_default_yaml[];

/* Parse and validate; path NULL = the embedded default. On error returns
 * -EINVAL (or -errno for I/O) and writes "file:line: reason" into err.
 * cfg is heap-allocated by the caller (it is large) and fully overwritten.
 */
int sl_config_load(const char *path, struct sl_config *cfg, char *err,
		   size_t errlen);
/* The version path would have (its SHA-256, as sl_config_load names it)
 * into out (SL_CFG_VERSION_LEN + 1 bytes), also when it would not load.
 * 0 or -errno.
 */
int sl_config_file_version(const char *path, char *out);
/* The line of key ("proxy.ambassadors") in the config file at path: of
 * the key itself, else of the nearest enclosing one; 0 when neither is
 * there, or the file does not parse.
 */
unsigned int sl_config_key_line(const char *path, const char *key);
/* What a reload from next (loaded from path, the command line applied)
 * would change of the running config: SL_CFG_CH_* bits in *changes. A
 * change to a key that cannot change at run time returns -EBUSY with
 * "file:line: key: why" in err (README "Live configuration").
 */
#define SL_CFG_CH_CAPTURE (1U << 0) /* which destinations are captured */
#define SL_CFG_CH_POLICY (1U << 1)
#define SL_CFG_CH_INBOUND (1U << 2) /* steered ports, fail_open */
#define SL_CFG_CH_PROXY (1U << 3) /* per connection: sl_proxy_reconfigure */
#define SL_CFG_CH_TLS_FILES (1U << 4) /* tls.cert, key, ca */
#define SL_CFG_CH_ALOG (1U << 5) /* the access log's path and rotation */
int sl_config_diff(const struct sl_config *run, const struct sl_config *next,
		   const char *path, unsigned int *changes, char *err,
		   size_t errlen);
/* Same for a policy file (the `rules:`/`default:` document of `policy
 * load`).
 */
int sl_policy_load(const char *path, struct sl_policy *pol, char *err,
		   size_t errlen);
/* inbound.identities for a client: the first rule whose ports hold port
 * (host order) and whose pattern matches id decides: *act, and its index.
 * -1 when none does (*act untouched: the default applies). A NULL id (no
 * client certificate) matches no rule.
 */
int sl_id_rules_decide(const struct sl_id_rule_cfg *rules, unsigned int n,
		       uint16_t port, const char *id, enum sl_action *act);
/* The resolved values of cfg as one JSON object and a newline
 * (user/config/config_json.c; `sidelane config check FILE --json`).
 */
void sl_config_print_json(FILE *f, const struct sl_config *cfg);

/* "safe", "send", "all", "none" (index: enum sl_app_sockets). */
extern const char *const sl_app_sockets_name[SL_APP_NR];
/* name -> *mode. 0 or -EINVAL. */
int sl_app_sockets_parse(const char *name, uint32_t *mode);

#endif /* CONFIG_H */
