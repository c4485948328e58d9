// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* sidelane's configuration and policy files (see config.h), user side only.
 *
 * A file goes through three passes:
 *  1. libyaml's event stream, walked once: YAML syntax errors, and an index
 *     of every node's path ("policy.rules[2].cidr") and line, since libcyaml
 *     gives its caller no line numbers;
 *  2. libcyaml against the schema below: structure, key names, required
 *     keys, list lengths; its log messages are captured and its backtrace
 *     turned back into a path, hence a line;
 *  3. validation of every value into the plain structs of config.h.
 * Defaults are sl_config_default_yaml itself: it is loaded first and a file
 * only overrides the keys it has, so the documented default and the real one
 * cannot drift apart. A load that fails leaves the caller's struct as it was.
 *
 * CIDRs: a v4-mapped prefix (::ffff:10.0.0.0/104, any length >= 96) is
 * stored as the IPv4 prefix it spells (AF_INET 10.0.0.0/8), so a policy
 * cannot be bypassed by spelling; bits set after the prefix length
 * (10.0.0.1/8) are rejected, not masked. Endpoints [::ffff:a.b.c.d]:p
 * likewise become AF_INET socket addresses.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <cyaml/cyaml.h>
#include "sidelane.h"
#include <yaml.h>
#include "config/config.h"
#include "tls/tls.h"
#include "lib/util.h"

const char sl_config_default_yaml[] =
	"# sidelane configuration. This is the built-in default (`sidelane config`\n"
	"# prints it) and the reference of the format: every key is shown\n"
	"# with its default value. Every key is optional; a key or section left out\n"
	"# keeps the value shown here. A list given in a file replaces the default\n"
	"# list as a whole.\n"
	"#\n"
	"# Value formats:\n"
	"#   port range  \"80\" or \"8000-8080\" (inclusive), ports 1..65535\n"
	"#   CIDR        \"10.0.0.0/8\", \"fd00::/8\"; a bare address is a /32 or /128.\n"
	"#               Bits set after the prefix length are an error (10.0.0.1/8).\n"
	"#               An IPv4-mapped IPv6 prefix (::ffff:10.0.0.0/104) is read as\n"
	"#               the IPv4 prefix it spells (10.0.0.0/8).\n"
	"#   endpoint    \"127.0.0.1:15001\" or \"[::1]:15001\" (numeric address)\n"
	"#   numbers     decimal; only capture.mark also takes 0x hex\n"
	"# YAML anchors and aliases (&a, *a) are not accepted.\n"
	"\n"
	"# Folder on the BPF filesystem where maps, programs and links are pinned.\n"
	"pin_root: /sys/fs/bpf/sidelane\n"
	"\n"
	"# cgroup v2 of the application, absolute or relative to the cgroup2 mount;\n"
	"# \"\" means it is given on the command line (--cgroup).\n"
	"cgroup: \"\"\n"
	"\n"
	"# Local fast path: connections between two sockets of this host skip TCP.\n"
	"fastpath:\n"
	"  # Which app sockets may enter it (README, \"Socket semantics\"):\n"
	"  #   safe  only where the app cannot tell: non-blocking sockets that\n"
	"  #         connect to the sidecar, send-only (app -> sidecar in the\n"
	"  #         kernel, sidecar -> app over TCP), and only on a kernel whose\n"
	"  #         sockmap keeps FIONREAD (checked at start; Linux 6.18 does\n"
	"  #         not, so there none is admitted)\n"
	"  #   send  safe's rule on any kernel: FIONREAD counts 0 for TCP's bytes\n"
	"  #   all   every local socket, both ways, app<->app too: MSG_WAITALL,\n"
	"  #         SO_RCVLOWAT, splice(), RST on close and blocking reads change\n"
	"  #   none  no app socket\n"
	"  # send and all print what they change at start.\n"
	"  app_sockets: safe\n"
	"  # Service ports kept on plain loopback TCP (single ports, not ranges),\n"
	"  # e.g. [5432, 6379].\n"
	"  exclude_ports: []\n"
	"\n"
	"# Transparent capture of the application's outbound connections.\n"
	"capture:\n"
	"  # false: nothing is redirected to the proxy (ambassadors still run).\n"
	"  enabled: true\n"
	"  # The transparent listener captured connections are sent to; must be a\n"
	"  # loopback address.\n"
	"  outbound: \"127.0.0.1:15001\"\n"
	"  # SO_MARK of sidelane's own upstream sockets, which capture leaves\n"
	"  # alone (0x534c is ASCII \"SL\"); 1..0xffffffff.\n"
	"  mark: 0x534c\n"
	"  # Destinations captured; an empty list captures nothing.\n"
	"  include_cidrs: [\"0.0.0.0/0\", \"::/0\"]\n"
	"  # Destinations never captured, even when inside include_cidrs.\n"
	"  exclude_cidrs: []\n"
	"  # Destination ports captured (port ranges); empty: every port.\n"
	"  include_ports: []\n"
	"  # Destination ports never captured (port ranges).\n"
	"  exclude_ports: []\n"
	"\n"
	"# The user-space proxy behind capture and ambassadors.\n"
	"proxy:\n"
	"  # Give up on an upstream connect after this long (1..86400000).\n"
	"  connect_timeout_ms: 5000\n"
	"  # Close a connection with no traffic either way for this long\n"
	"  # (1..86400000).\n"
	"  idle_timeout_ms: 300000\n"
	"  # Buffer per connection and direction, bytes (4096..16777216).\n"
	"  buffer_bytes: 65536\n"
	"  # Connections relayed at once; more are refused (1..1000000).\n"
	"  max_conns: 4096\n"
	"  # Event loops, each a thread with its own listeners (SO_REUSEPORT)\n"
	"  # and connections (1..256); auto: one per CPU this process may use\n"
	"  # (its affinity, and its cgroup's cpu.max quota rounded up).\n"
	"  workers: auto\n"
	"  # Hand the upload half of a plaintext connection to the kernel when\n"
	"  # the app's socket is admitted (README, \"Splice\"); false keeps every\n"
	"  # byte in this relay.\n"
	"  splice: true\n"
	"  # Explicit local listeners relaying to a fixed upstream, e.g.\n"
	"  #   ambassadors:\n"
	"  #     - listen: \"127.0.0.1:6379\"       # required; loopback only\n"
	"  #       upstream: \"redis.example:6379\" # required; host:port or [v6]:port\n"
	"  ambassadors: []\n"
	"\n"
	"# Mutual TLS between sidecars (OpenSSL 3). Off while cert, key and ca are\n"
	"# empty; give all three or none. The files are watched: a rotated\n"
	"# certificate is used for new connections, established ones keep theirs,\n"
	"# and a bad new file is refused (logged) while the old material stays.\n"
	"tls:\n"
	"  # PEM certificate chain, leaf first; its URI SAN is our SPIFFE ID\n"
	"  # (spiffe://trust-domain/path).\n"
	"  cert: \"\"\n"
	"  # PEM private key of the leaf (unencrypted).\n"
	"  key: \"\"\n"
	"  # PEM bundle of the CAs that sign peers' certificates.\n"
	"  ca: \"\"\n"
	"  # Peers must be in this trust domain; \"\": the one of our certificate.\n"
	"  trust_domain: \"\"\n"
	"  # Lowest TLS version: \"1.3\" or \"1.2\" (ECDHE + AEAD suites only).\n"
	"  min_version: \"1.3\"\n"
	"  # ALPN protocols offered to peers / accepted from them, in order of\n"
	"  # preference, e.g. \"h2,http/1.1\"; \"\": none.\n"
	"  alpn: \"\"\n"
	"  # A TLS handshake must complete within this (1..600000).\n"
	"  handshake_timeout_ms: 10000\n"
	"  # How often the three files are checked for a change (100..3600000);\n"
	"  # SIGHUP checks at once.\n"
	"  reload_interval_ms: 2000\n"
	"  # Destinations whose sidecar speaks mutual TLS: what the proxy connects\n"
	"  # to there (captured or an ambassador's upstream) is sent over TLS. e.g.\n"
	"  #   mesh:\n"
	"  #     - cidr: 10.0.0.0/8                 # required\n"
	"  #       ports: [\"8080\"]                 # optional; none: every port\n"
	"  #       # optional: the server's SPIFFE ID must match one (exact,\n"
	"  #       # \"spiffe://td/ns/b/*\" for anything below, or \"*\"); none:\n"
	"  #       # any identity of the trust domain. At most 8.\n"
	"  #       identities: [\"spiffe://example.org/ns/b/*\"]\n"
	"  mesh: []\n"
	"\n"
	"# Inbound capture: connections arriving from the network for the app's\n"
	"# ports go to the sidecar's inbound listener (no iptables), which\n"
	"# terminates mutual TLS when tls is configured (plaintext is then refused)\n"
	"# and relays to the app on loopback, through the fast path.\n"
	"inbound:\n"
	"  enabled: false\n"
	"  # The inbound listener.\n"
	"  listen: \"0.0.0.0:15006\"\n"
	"  # auto: an sk_lookup program on the network namespace steers the\n"
	"  #   ports below to the listener, where the kernel allows it; else\n"
	"  #   listener mode (said in the log and `status`).\n"
	"  # sk_lookup: that, or refuse to start.\n"
	"  # listener: no steering; peers dial `listen` and everything goes to\n"
	"  #   app_port.\n"
	"  mode: auto\n"
	"  # App ports whose connections are steered (port ranges).\n"
	"  ports: []\n"
	"  # Ports never steered, even inside ports.\n"
	"  exclude_ports: []\n"
	"  # Listener mode: the app port connections to `listen` are relayed to\n"
	"  # (required there); with sk_lookup the port the peer dialed is used.\n"
	"  app_port: 0\n"
	"  # With sk_lookup and no sidecar listener (sidecar down): false refuses\n"
	"  # the connection (the app is never reached unauthenticated), true lets\n"
	"  # it reach the app directly.\n"
	"  fail_open: false\n"
	"  # Identity policy (tls only), once per connection after the handshake:\n"
	"  # the first rule whose ports hold the app port and whose id matches the\n"
	"  # client's SPIFFE ID decides; none: `default`. e.g.\n"
	"  #   identities:\n"
	"  #     - id: \"spiffe://example.org/ns/a/*\"  # required; exact, prefix, *\n"
	"  #       action: allow                      # required; allow or deny\n"
	"  #       ports: [\"8080\"]                    # optional; none: every port\n"
	"  default: allow\n"
	"  identities: []\n"
	"\n"
	"# Connection accounting: every connection the data plane sees (accelerated,\n"
	"# relayed, denied) gets one JSON line in the access log when it ends.\n"
	"accounting:\n"
	"  # File of the access log (its folder must exist); \"\": none. Writing it\n"
	"  # never blocks the data path: lines a full queue cannot take are\n"
	"  # dropped and counted.\n"
	"  access_log: \"\"\n"
	"  # Rotate when the live file reaches this size (4096..1073741824).\n"
	"  max_bytes: 10485760\n"
	"  # Rotated files kept, gzip-compressed: FILE.1.gz .. FILE.N.gz (0..100).\n"
	"  keep: 5\n"
	"\n"
	"# Sizes of the kernel tables, fixed when they are first pinned: a new\n"
	"# value takes effect after `sidelane detach`. `sidelane status` shows\n"
	"# what they cost (kernel memory, per pod).\n"
	"limits:\n"
	"  # Connections the fast path, capture and splice track at once\n"
	"  # (64..1048576): the sockhash holds two sockets each. Past it a\n"
	"  # connection takes the plain path, counted.\n"
	"  max_conns: " SL_XSTR(SL_LIMIT_CONNS_DEFAULT) "\n"
	"\n"
	"# Admin HTTP endpoint (libmicrohttpd): /metrics (Prometheus), /stats (JSON),\n"
	"# /healthz, /ready, POST /drain.\n"
	"admin:\n"
	"  # Loopback address only; \"\" turns the endpoint off.\n"
	"  listen: \"127.0.0.1:15000\"\n"
	"  # On SIGTERM or POST /drain: stop accepting, let open connections end\n"
	"  # for up to this long, then close them (0..3600000).\n"
	"  drain_timeout_ms: 5000\n"
	"\n"
	"# L3/L4 policy on the destinations the proxy relays to. `sidelane policy load`\n"
	"# takes a file holding just these two keys at top level (rules: required).\n"
	"policy:\n"
	"  # Action when no rule matches: allow or deny.\n"
	"  default: allow\n"
	"  # The most specific cidr containing the destination wins; among rules\n"
	"  # with that cidr, the first whose ports match; no ports: every port. e.g.\n"
	"  #   rules:\n"
	"  #     - id: 10                       # required; 1..4294967295, unique\n"
	"  #       action: deny                 # required; allow or deny\n"
	"  #       cidr: 10.0.0.0/8             # required\n"
	"  #       ports: [\"80\", \"8000-8080\"]   # optional; at most 8 port ranges\n"
	"  rules: []\n";

/* fastpath.app_sockets (include/admission.h has what each admits) */
const char *const sl_app_sockets_name[SL_APP_NR] = {
	[SL_APP_SAFE] = "safe",
	[SL_APP_SEND] = "send",
	[SL_APP_ALL] = "all",
	[SL_APP_NONE] = "none",
};

int sl_app_sockets_parse(const char *name, uint32_t *mode)
{
	uint32_t i;

	for (i = 0; i < SL_APP_NR; i++)
		if (!strcmp(name, sl_app_sockets_name[i])) {
			*mode = i;
			return 0;
		}
	return -EINVAL;
}

/* ---- Value parsers ---------------------------------------------------- */

/* Strict decimal, or 0x hex when hex_ok. 0 or -EINVAL/-ERANGE. */
static int parse_num(const char *s, uint64_t min, uint64_t max, int hex_ok,
		     uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (!hex_ok || strncasecmp(s, "0x", 2))
		return sl_parse_u64(s, min, max, out);
	s += 2;
	if (!*s || strspn(s, "0123456789abcdefABCDEF") != strlen(s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 16);
	if (errno == ERANGE || v < min || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

int sl_id_rules_decide(const struct sl_id_rule_cfg *rules, unsigned int n,
		       uint16_t port, const char *id, enum sl_action *act)
{
	unsigned int i;

	for (i = 0; id && i < n; i++)
		if (sl_ports_match(rules[i].ports, rules[i].n_ports, port) &&
		    sl_spiffe_match(rules[i].id, id)) {
			*act = rules[i].action;
			return (int)i;
		}
	return -1;
}

/* Host names: letters, digits, '-', '_' and '.'; IPv6 addresses bracketed. */
static int upstream_parse(const char *s, struct sl_ambassador *amb,
			  const char **why)
{
	struct in6_addr a6;

	if (sl_hostport_split(s, amb->upstream_host, sizeof(amb->upstream_host),
			   &amb->upstream_port, why))
		return -EINVAL;
	if (*s == '[' && inet_pton(AF_INET6, amb->upstream_host, &a6) != 1) {
		*why = "not an IPv6 address in the brackets";
		return -EINVAL;
	}
	if (*s != '[' &&
	    strspn(amb->upstream_host,
		   "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		   "0123456789-_.") != strlen(amb->upstream_host)) {
		*why = "not a host name or address";
		return -EINVAL;
	}
	return 0;
}

/* ---- The schema libcyaml loads against -------------------------------- */

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
	char *splice;
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

static const cyaml_schema_value_t policy_file_schema = {
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

static const cyaml_schema_value_t config_schema = {
	CYAML_VALUE_MAPPING(CYAML_FLAG_POINTER, struct raw_config, config_fields),
};

/* ---- One document being loaded: name, line index, error ---------------- */

#define DOC_MAX_BYTES (4u << 20)
#define PATH_LEN 192
#define WALK_DEPTH 16
#define CY_FRAMES 16

struct node_line {
	char *path; /* "capture.include_cidrs[1]"; "" is the document */
	unsigned int line; /* of the key for mapping values, else of the node */
};

struct cy_frame {
	enum { FRAME_MAP, FRAME_FIELD, FRAME_ENTRY } kind;
	unsigned int entry; /* 1-based, as libcyaml counts */
	char key[64];
};

struct doc {
	const char *name; /* file name, or "<default>" */
	char *err;
	size_t errlen;
	struct node_line *nodes; /* in document order */
	size_t n_nodes, cap_nodes;
	/* libcyaml's error message and backtrace, innermost frame first */
	char cy_msg[256];
	int cy_in_backtrace;
	unsigned int n_frames;
	struct cy_frame frames[CY_FRAMES];
};

static int vfail(struct doc *d, unsigned int line, const char *what,
		 const char *fmt, va_list ap)
{
	int n;

	if (!d->err || !d->errlen)
		return -EINVAL;
	if (line)
		n = snprintf(d->err, d->errlen, "%s:%u: ", d->name, line);
	else
		n = snprintf(d->err, d->errlen, "%s: ", d->name);
	if (n >= 0 && (size_t)n < d->errlen && what && *what)
		n += snprintf(d->err + n, d->errlen - n, "%s: ", what);
	if (n >= 0 && (size_t)n < d->errlen)
		vsnprintf(d->err + n, d->errlen - n, fmt, ap);
	return -EINVAL;
}

/* "file:line: what: message"; returns -EINVAL. */
static int __attribute__((format(printf, 4, 5)))
fail_line(struct doc *d, unsigned int line, const char *what, const char *fmt,
	  ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfail(d, line, what, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int add_node(struct doc *d, const char *path, unsigned int line)
{
	if (d->n_nodes == d->cap_nodes) {
		size_t cap = d->cap_nodes ? d->cap_nodes * 2 : 64;
		struct node_line *n = realloc(d->nodes, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		d->nodes = n;
		d->cap_nodes = cap;
	}
	d->nodes[d->n_nodes].path = strdup(path);
	if (!d->nodes[d->n_nodes].path)
		return -ENOMEM;
	d->nodes[d->n_nodes++].line = line;
	return 0;
}

/* Index of path's first node at or after *from (updated), or -1. Callers
 * going through a list in order pass a cursor, keeping the walk linear.
 */
static long find_node(const struct doc *d, const char *path, size_t *from)
{
	size_t i;

	for (i = from ? *from : 0; i < d->n_nodes; i++) {
		if (!strcmp(d->nodes[i].path, path)) {
			if (from)
				*from = i;
			return (long)i;
		}
	}
	return -1;
}

static int has_node(const struct doc *d, const char *path)
{
	return find_node(d, path, NULL) >= 0;
}

/* Line of path; of its closest ancestor in the index when it is not there. */
static unsigned int line_of(const struct doc *d, const char *path)
{
	char p[PATH_LEN];
	long i;

	snprintf(p, sizeof(p), "%s", path);
	for (;;) {
		char *dot, *bracket;

		i = find_node(d, p, NULL);
		if (i >= 0)
			return d->nodes[i].line;
		if (!*p)
			return 0;
		/* Up one level: drop the last ".key" or "[n]". */
		dot = strrchr(p, '.');
		bracket = strrchr(p, '[');
		if (dot && (!bracket || dot > bracket))
			*dot = '\0';
		else if (bracket)
			*bracket = '\0';
		else
			*p = '\0';
	}
}

/* Line of the last node at path (a repeated key is reported where it repeats). */
static unsigned int last_line_of(const struct doc *d, const char *path)
{
	size_t i;

	for (i = d->n_nodes; i--;)
		if (!strcmp(d->nodes[i].path, path))
			return d->nodes[i].line;
	return line_of(d, path);
}

/* "policy.rules[2].cidr" -> "rule 3: cidr"; lists of the schema are named
 * by their entries, 1-based as a reader counts them.
 */
static const char *describe(const char *path, char *buf, size_t len)
{
	static const struct {
		const char *list, *entry;
	} names[] = { { "rules[", "rule" }, { "ambassadors[", "ambassador" } };
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		const char *p = strstr(path, names[i].list);
		unsigned int n;
		int used = 0;

		if (!p || (p != path && p[-1] != '.'))
			continue;
		if (sscanf(p + strlen(names[i].list), "%u]%n", &n, &used) != 1 ||
		    !used)
			continue;
		p += strlen(names[i].list) + used;
		snprintf(buf, len, "%s %u%s%s", names[i].entry, n + 1,
			 *p == '.' ? ": " : "", *p == '.' ? p + 1 : p);
		return buf;
	}
	snprintf(buf, len, "%s", path);
	return buf;
}

/* Paths are built by hand: gcc's -Wformat-truncation cannot see that a
 * truncated path is checked for and simply not indexed.
 */
static int path_join(char *out, const char *parent, const char *key)
{
	size_t pl = strlen(parent), kl = strlen(key), dot = pl && kl ? 1 : 0;

	if (pl + dot + kl >= PATH_LEN) {
		out[0] = '\0';
		return 0;
	}
	memmove(out, parent, pl);
	out[pl] = '.';
	memcpy(out + pl + dot, key, kl + 1);
	return 1;
}

static int path_index(char *out, const char *parent, unsigned int i)
{
	char idx[16];
	int n = snprintf(idx, sizeof(idx), "[%u]", i);
	size_t pl = strlen(parent);

	if (pl + n >= PATH_LEN) {
		out[0] = '\0';
		return 0;
	}
	memmove(out, parent, pl);
	memcpy(out + pl, idx, n + 1);
	return 1;
}

struct walk_frame {
	int is_map, want_key, recorded;
	unsigned int next_entry, key_line;
	char path[PATH_LEN];
	char key[PATH_LEN];
};

/* Pass 1: YAML syntax, and the path -> line index of the first document. */
static int walk(struct doc *d, const char *buf, size_t len)
{
	struct walk_frame st[WALK_DEPTH];
	unsigned int depth = 0, skip = 0, docs = 0;
	yaml_parser_t parser;
	yaml_event_t ev;
	int err = 0, done = 0;

	if (!yaml_parser_initialize(&parser))
		return -ENOMEM;
	yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
	while (!done && !err) {
		struct walk_frame *top = depth ? &st[depth - 1] : NULL;
		unsigned int line;
		char path[PATH_LEN];
		int ok = 1, start;

		if (!yaml_parser_parse(&parser, &ev)) {
			err = fail_line(d, (unsigned int)parser.problem_mark.line + 1,
					NULL, "YAML syntax: %s%s%s",
					parser.problem ? parser.problem : "error",
					parser.context ? " " : "",
					parser.context ? parser.context : "");
			break;
		}
		line = (unsigned int)ev.start_mark.line + 1;
		start = ev.type == YAML_MAPPING_START_EVENT ||
			ev.type == YAML_SEQUENCE_START_EVENT;
		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
			done = 1;
			break;
		case YAML_DOCUMENT_START_EVENT:
			if (++docs > 1)
				err = fail_line(d, line, NULL,
						"more than one YAML document");
			break;
		case YAML_SCALAR_EVENT:
		case YAML_ALIAS_EVENT:
		case YAML_MAPPING_START_EVENT:
		case YAML_SEQUENCE_START_EVENT:
			if (skip) {
				skip += start;
				break;
			}
			if (top && top->is_map && top->want_key) {
				/* A key; a non-scalar one is skipped (libcyaml
				 * refuses it with its own message).
				 */
				top->want_key = 0;
				top->key_line = line;
				snprintf(top->key, sizeof(top->key), "%s",
					 ev.type == YAML_SCALAR_EVENT ?
						 (const char *)ev.data.scalar.value :
						 "?");
				skip = start;
				break;
			}
			if (!top) {
				path[0] = '\0';
			} else if (top->is_map) {
				ok = top->recorded && path_join(path, top->path, top->key);
				line = top->key_line;
				top->want_key = 1;
			} else {
				ok = top->recorded &&
				     path_index(path, top->path, top->next_entry++);
			}
			if (ok)
				err = add_node(d, path, line);
			if (!start)
				break;
			if (depth == WALK_DEPTH) {
				skip = 1; /* deeper than any schema: not indexed */
				break;
			}
			top = &st[depth++];
			memset(top, 0, sizeof(*top));
			top->is_map = ev.type == YAML_MAPPING_START_EVENT;
			top->want_key = top->is_map;
			top->recorded = ok;
			snprintf(top->path, sizeof(top->path), "%s", ok ? path : "");
			break;
		case YAML_MAPPING_END_EVENT:
		case YAML_SEQUENCE_END_EVENT:
			if (skip)
				skip--;
			else if (depth)
				depth--;
			break;
		default:
			break;
		}
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&parser);
	return err;
}

/* libcyaml's log: the first error line is the message, then "Backtrace:"
 * and one "  in ..." line per level, innermost first.
 */
static void cy_log(cyaml_log_t level, void *ctx, const char *fmt, va_list ap)
{
	struct doc *d = ctx;
	struct cy_frame *f;
	char line[256], *s = line;
	size_t n;

	if (level < CYAML_LOG_ERROR)
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	n = strcspn(line, "\n");
	line[n] = '\0';
	if (!strncmp(s, "Load: ", 6))
		s += 6;
	if (!strcmp(s, "Backtrace:")) {
		d->cy_in_backtrace = 1;
		return;
	}
	if (!d->cy_in_backtrace) {
		if (!d->cy_msg[0])
			snprintf(d->cy_msg, sizeof(d->cy_msg), "%s", s);
		return;
	}
	if (d->n_frames == CY_FRAMES)
		return;
	f = &d->frames[d->n_frames];
	memset(f, 0, sizeof(*f));
	if (sscanf(s, " in mapping field '%63[^']'", f->key) == 1)
		f->kind = FRAME_FIELD;
	else if (sscanf(s, " in sequence entry '%u'", &f->entry) == 1)
		f->kind = FRAME_ENTRY;
	else if (!strncmp(s, "  in mapping", 12))
		f->kind = FRAME_MAP;
	else
		return;
	d->n_frames++;
}

/* Turn libcyaml's refusal into "file:line: where: what". */
static int cy_fail(struct doc *d, cyaml_err_t cerr)
{
	unsigned int first = 0, i, line, max;
	char path[PATH_LEN] = "", tmp[PATH_LEN], what[PATH_LEN];
	const char *msg = d->cy_msg[0] ? d->cy_msg : cyaml_strerror(cerr);
	char key[64], got[32], want[32];

	/* The innermost frame names the sibling last read, not the mapping
	 * that lacks a key, and the entry past the allowed count: drop it.
	 */
	if (d->n_frames &&
	    ((cerr == CYAML_ERR_MAPPING_FIELD_MISSING &&
	      d->frames[0].kind == FRAME_FIELD) ||
	     (cerr == CYAML_ERR_SEQUENCE_ENTRIES_MAX &&
	      d->frames[0].kind == FRAME_ENTRY)))
		first = 1;
	for (i = d->n_frames; i-- > first;) {
		const struct cy_frame *f = &d->frames[i];

		snprintf(tmp, sizeof(tmp), "%s", path);
		if (f->kind == FRAME_FIELD)
			path_join(path, tmp, f->key);
		else if (f->kind == FRAME_ENTRY && f->entry)
			path_index(path, tmp, f->entry - 1);
	}
	describe(path, what, sizeof(what));
	line = line_of(d, path);

	if (sscanf(msg, "Unexpected key: %63[^\n]", key) == 1) {
		snprintf(tmp, sizeof(tmp), "%s", path);
		path_join(path, tmp, key);
		return fail_line(d, line_of(d, path), what, "unknown key \"%s\"",
				 key);
	}
	if (sscanf(msg, "Missing required mapping field: %63[^\n]", key) == 1)
		return fail_line(d, line, what, "missing required key \"%s\"",
				 key);
	if (sscanf(msg, "Mapping field already seen: %63[^\n]", key) == 1) {
		/* The path ends with the repeated key: name its mapping. */
		line = last_line_of(d, path);
		snprintf(tmp, sizeof(tmp), "%s", path);
		*(strrchr(tmp, '.') ? strrchr(tmp, '.') : tmp) = '\0';
		return fail_line(d, line, describe(tmp, what, sizeof(what)),
				 "key \"%s\" given twice", key);
	}
	if (sscanf(msg, "Excessive entries (%u max)", &max) == 1)
		return fail_line(d, line, what, "more than %u entries", max);
	if (sscanf(msg, "Expecting %31[A-Z], got event: %31[A-Z_]", want, got) ==
	    2) {
		const char *w = !strcmp(want, "MAPPING")	? "a mapping" :
				!strcmp(want, "SEQUENCE") ? "a list" :
							    "a single value";
		const char *g = !strcmp(got, "MAPPING_START")	 ? "a mapping" :
				!strcmp(got, "SEQUENCE_START") ? "a list" :
				!strcmp(got, "SCALAR")	       ? "a single value" :
								 got;

		return fail_line(d, line, what, "expected %s, found %s", w, g);
	}
	if (cerr == CYAML_ERR_ALIAS)
		return fail_line(d, line, what,
				 "YAML aliases (*name) are not accepted");
	return fail_line(d, line, what, "%s", msg);
}

static void doc_free(struct doc *d)
{
	size_t i;

	for (i = 0; i < d->n_nodes; i++)
		free(d->nodes[i].path);
	free(d->nodes);
	d->nodes = NULL;
	d->n_nodes = d->cap_nodes = 0;
}

static int read_all(struct doc *d, const char *path, char **buf, size_t *len)
{
	int err = sl_read_file(path, DOC_MAX_BYTES, buf, len, NULL);

	if (err == -EFBIG)
		return fail_line(d, 0, NULL, "larger than %u MiB",
				 DOC_MAX_BYTES >> 20);
	if (err)
		fail_line(d, 0, NULL, "%s", strerror(-err));
	return err;
}

/* Passes 1 and 2 over one document; *raw NULL for an empty document. */
static int doc_load(struct doc *d, const char *path, const char *text,
		    const cyaml_schema_value_t *schema, void **raw)
{
	cyaml_config_t cy = {
		.log_fn = cy_log,
		.log_ctx = d,
		.mem_fn = cyaml_mem,
		.log_level = CYAML_LOG_ERROR,
		/* Every value written at one place, so every message can
		 * name its line.
		 */
		.flags = CYAML_CFG_NO_ALIAS,
	};
	char *buf = NULL;
	size_t len;
	cyaml_err_t cerr;
	int err;

	*raw = NULL;
	if (path) {
		err = read_all(d, path, &buf, &len);
		if (err)
			return err;
		text = buf;
	} else {
		len = strlen(text);
	}
	err = walk(d, text, len);
	if (!err) {
		cerr = cyaml_load_data((const uint8_t *)text, len, &cy, schema,
				       (cyaml_data_t **)raw, NULL);
		if (cerr == CYAML_ERR_OOM)
			err = -ENOMEM;
		else if (cerr != CYAML_OK)
			err = cy_fail(d, cerr);
	}
	free(buf);
	return err;
}

/* ---- Pass 3: values into config.h's structs ----------------------------- */

static int get_num(struct doc *d, const char *path, const char *s,
		   uint64_t min, uint64_t max, int hex_ok, uint64_t *out)
{
	int err = parse_num(s, min, max, hex_ok, out);

	if (err == -ERANGE)
		return fail_line(d, line_of(d, path), path,
				 "%s out of range %llu..%llu", s,
				 (unsigned long long)min,
				 (unsigned long long)max);
	if (err)
		return fail_line(d, line_of(d, path), path,
				 "\"%s\" is not a %snumber", s,
				 hex_ok ? "decimal or 0x hex " : "decimal ");
	return 0;
}

static int get_uint(struct doc *d, const char *path, const char *s,
		    unsigned int min, unsigned int max, unsigned int *out)
{
	uint64_t v;
	int err;

	if (!s)
		return 0; /* not in this document: keep the default */
	err = get_num(d, path, s, min, max, 0, &v);
	if (!err)
		*out = (unsigned int)v;
	return err;
}

static int get_bool(struct doc *d, const char *path, const char *s, int *out)
{
	static const char *const yes[] = { "true", "yes", "on" };
	static const char *const no[] = { "false", "no", "off" };
	size_t i;

	if (!s)
		return 0;
	for (i = 0; i < 3; i++) {
		if (!strcasecmp(s, yes[i]) || !strcasecmp(s, no[i])) {
			*out = !strcasecmp(s, yes[i]);
			return 0;
		}
	}
	return fail_line(d, line_of(d, path), path,
			 "\"%s\" is not true or false", s);
}

static int get_string(struct doc *d, const char *path, const char *s,
		      char *out, size_t len)
{
	if (!s)
		return 0;
	if (strlen(s) >= len)
		return fail_line(d, line_of(d, path), path,
				 "longer than %zu bytes", len - 1);
	strcpy(out, s);
	return 0;
}

static int get_action(struct doc *d, const char *path, const char *what,
		      const char *s, enum sl_action *out)
{
	if (!strcmp(s, "allow"))
		*out = SL_ACTION_ALLOW;
	else if (!strcmp(s, "deny"))
		*out = SL_ACTION_DENY;
	else
		return fail_line(d, line_of(d, path), what,
				 "unknown action \"%s\" (allow or deny)", s);
	return 0;
}

static int get_cidrs(struct doc *d, const char *path, char **items,
		     unsigned int n, struct sl_cidr *out, unsigned int *n_out)
{
	char ipath[PATH_LEN];
	const char *why;
	unsigned int i;

	if (!has_node(d, path))
		return 0;
	for (i = 0; i < n; i++) {
		if (sl_cidr_parse(items[i], &out[i], &why)) {
			path_index(ipath, path, i);
			return fail_line(d, line_of(d, ipath), path,
					 "bad cidr \"%s\" (%s)", items[i], why);
		}
	}
	*n_out = n;
	return 0;
}

static int get_port_ranges(struct doc *d, const char *path, char **items,
			   unsigned int n, struct sl_port_range *out,
			   unsigned int *n_out)
{
	char ipath[PATH_LEN];
	const char *why;
	unsigned int i;

	if (!has_node(d, path))
		return 0;
	for (i = 0; i < n; i++) {
		if (sl_port_range_parse(items[i], &out[i], &why)) {
			path_index(ipath, path, i);
			return fail_line(d, line_of(d, ipath), path,
					 "bad port range \"%s\" (%s)", items[i],
					 why);
		}
	}
	*n_out = n;
	return 0;
}

/* A listener: numeric and loopback. label names the key in messages. */
static int get_endpoint(struct doc *d, const char *path, const char *what,
			const char *label, const char *s,
			struct sl_endpoint *out)
{
	const char *why;

	if (sl_endpoint_parse(s, out, &why))
		return fail_line(d, line_of(d, path), what,
				 "bad %s \"%s\" (%s)", label, s, why);
	if (!sl_endpoint_is_loopback(out))
		return fail_line(d, line_of(d, path), what,
				 "%s \"%s\" is not a loopback address "
				 "(listeners must not be reachable from other "
				 "hosts)",
				 label, s);
	return 0;
}

static int apply_fastpath(struct doc *d, const struct raw_fastpath *r,
			  struct sl_config *cfg)
{
	const char *path = "fastpath.exclude_ports", *why;
	char ipath[PATH_LEN];
	unsigned int i, j;

	if (r->app_sockets &&
	    sl_app_sockets_parse(r->app_sockets, &cfg->fastpath.app_sockets))
		return fail_line(d, line_of(d, "fastpath.app_sockets"),
				 "fastpath.app_sockets",
				 "\"%s\" is not safe, send, all or none",
				 r->app_sockets);
	if (!has_node(d, path))
		return 0;
	for (i = 0; i < r->exclude_ports_count; i++) {
		uint16_t *p = &cfg->fastpath.exclude_ports[i];

		path_index(ipath, path, i);
		if (sl_port_parse(r->exclude_ports[i], p, &why))
			return fail_line(d, line_of(d, ipath), path,
					 "bad port \"%s\" (%s)",
					 r->exclude_ports[i],
					 strchr(r->exclude_ports[i], '-') ?
						 "single ports here, not ranges" :
						 why);
		for (j = 0; j < i; j++)
			if (cfg->fastpath.exclude_ports[j] == *p)
				return fail_line(d, line_of(d, ipath), path,
						 "port %u listed twice", *p);
	}
	cfg->fastpath.n_exclude_ports = r->exclude_ports_count;
	return 0;
}

static int apply_capture(struct doc *d, const struct raw_capture *r,
			 struct sl_config *cfg)
{
	uint64_t mark;
	int err;

	err = get_bool(d, "capture.enabled", r->enabled, &cfg->capture.enabled);
	if (!err && r->outbound)
		err = get_endpoint(d, "capture.outbound", "capture",
				   "outbound", r->outbound,
				   &cfg->capture.outbound);
	/* connect4 rewrites to an IPv4 address; IPv6 captures go to [::1] on
	 * the same port. Said here, before anything is attached.
	 */
	if (!err && r->outbound &&
	    cfg->capture.outbound.addr.ss_family != AF_INET)
		err = fail_line(d, line_of(d, "capture.outbound"), "capture",
				"outbound \"%s\" must be an IPv4 loopback address "
				"(IPv6 captures go to [::1] on the same port)",
				r->outbound);
	if (!err && r->mark) {
		err = get_num(d, "capture.mark", r->mark, 1, UINT32_MAX, 1, &mark);
		if (!err)
			cfg->capture.mark = (uint32_t)mark;
	}
	if (!err)
		err = get_cidrs(d, "capture.include_cidrs", r->include_cidrs,
				r->include_cidrs_count, cfg->capture.include_cidrs,
				&cfg->capture.n_include_cidrs);
	if (!err)
		err = get_cidrs(d, "capture.exclude_cidrs", r->exclude_cidrs,
				r->exclude_cidrs_count, cfg->capture.exclude_cidrs,
				&cfg->capture.n_exclude_cidrs);
	if (!err)
		err = get_port_ranges(d, "capture.include_ports", r->include_ports,
				      r->include_ports_count,
				      cfg->capture.include_ports,
				      &cfg->capture.n_include_ports);
	if (!err)
		err = get_port_ranges(d, "capture.exclude_ports", r->exclude_ports,
				      r->exclude_ports_count,
				      cfg->capture.exclude_ports,
				      &cfg->capture.n_exclude_ports);
	return err;
}

/* After capture is applied: an ambassador cannot take the outbound port. */
static int apply_ambassadors(struct doc *d, const struct raw_proxy *r,
			     struct sl_config *cfg)
{
	const char *list = "proxy.ambassadors", *why;
	char path[PATH_LEN], fpath[PATH_LEN], what[PATH_LEN];
	unsigned int i, j;
	int err;

	if (!has_node(d, list))
		return 0;
	for (i = 0; i < r->ambassadors_count; i++) {
		const struct raw_ambassador *ra = &r->ambassadors[i];
		struct sl_ambassador *a = &cfg->proxy.ambassadors[i];
		unsigned int line;

		path_index(path, list, i);
		snprintf(what, sizeof(what), "ambassador %u", i + 1);
		path_join(fpath, path, "listen");
		err = get_endpoint(d, fpath, what, "listen", ra->listen,
				   &a->listen);
		if (err)
			return err;
		line = line_of(d, fpath);
		if (cfg->capture.enabled &&
		    sl_endpoint_equal(&a->listen, &cfg->capture.outbound))
			return fail_line(d, line, what,
					 "listen \"%s\" is capture.outbound's "
					 "address",
					 ra->listen);
		for (j = 0; j < i; j++)
			if (sl_endpoint_equal(&a->listen,
					   &cfg->proxy.ambassadors[j].listen))
				return fail_line(d, line, what,
						 "listen \"%s\" already used "
						 "by ambassador %u",
						 ra->listen, j + 1);
		path_join(fpath, path, "upstream");
		if (upstream_parse(ra->upstream, a, &why))
			return fail_line(d, line_of(d, fpath), what,
					 "bad upstream \"%s\" (%s)",
					 ra->upstream, why);
	}
	cfg->proxy.n_ambassadors = r->ambassadors_count;
	return 0;
}

static int apply_proxy(struct doc *d, const struct raw_proxy *r,
		       struct sl_config *cfg)
{
	int err;

	err = get_uint(d, "proxy.connect_timeout_ms", r->connect_timeout_ms, 1,
		       86400000, &cfg->proxy.connect_timeout_ms);
	if (!err)
		err = get_uint(d, "proxy.idle_timeout_ms", r->idle_timeout_ms, 1,
			       86400000, &cfg->proxy.idle_timeout_ms);
	if (!err)
		err = get_uint(d, "proxy.buffer_bytes", r->buffer_bytes, 4096,
			       16u << 20, &cfg->proxy.buffer_bytes);
	if (!err)
		err = get_uint(d, "proxy.max_conns", r->max_conns, 1, 1000000,
			       &cfg->proxy.max_conns);
	if (!err && r->workers) {
		if (!strcmp(r->workers, "auto"))
			cfg->proxy.workers = 0;
		else if (r->workers[0] < '0' || r->workers[0] > '9')
			err = fail_line(d, line_of(d, "proxy.workers"),
					"proxy.workers",
					"\"%s\" is not auto or a number (1..%u)",
					r->workers, SL_CFG_MAX_WORKERS);
		else
			err = get_uint(d, "proxy.workers", r->workers, 1,
				       SL_CFG_MAX_WORKERS, &cfg->proxy.workers);
	}
	if (!err)
		err = get_bool(d, "proxy.splice", r->splice, &cfg->proxy.splice);
	if (!err)
		err = apply_ambassadors(d, r, cfg);
	return err;
}

/* A SPIFFE ID pattern: "*", an exact ID, or an ID prefix ending in a slash and a star. */
static int id_pattern_check(const char *s, const char **why)
{
	char buf[SL_CFG_ID_LEN];
	size_t n = strlen(s);

	*why = "not a SPIFFE ID (spiffe://trust-domain/path), a prefix "
	       "ending in /*, or *";
	if (!strcmp(s, "*"))
		return 0;
	if (n >= sizeof(buf)) {
		*why = "too long";
		return -EINVAL;
	}
	strcpy(buf, s);
	/* a prefix pattern is valid when the same with "x" for its star is */
	if (n >= 2 && !strcmp(buf + n - 2, "/*"))
		buf[n - 1] = 'x';
	return sl_spiffe_parse(buf, NULL, 0) ? -EINVAL : 0;
}

static int get_id_pattern(struct doc *d, const char *path, const char *what,
			  const char *s, char *out)
{
	const char *why;

	if (id_pattern_check(s, &why))
		return fail_line(d, line_of(d, path), what,
				 "bad identity \"%s\" (%s)", s, why);
	strcpy(out, s);
	return 0;
}

static int apply_mesh(struct doc *d, const struct raw_tls *r,
		      struct sl_config *cfg)
{
	const char *list = "tls.mesh", *why;
	char path[PATH_LEN], fpath[PATH_LEN], what[32];
	unsigned int i, j;
	int err;

	if (!has_node(d, list))
		return 0;
	for (i = 0; i < r->mesh_count; i++) {
		const struct raw_mesh *rm = &r->mesh[i];
		struct sl_mesh_dst *m = &cfg->tls.mesh[i];

		memset(m, 0, sizeof(*m));
		path_index(path, list, i);
		snprintf(what, sizeof(what), "mesh %u", i + 1);
		path_join(fpath, path, "cidr");
		if (sl_cidr_parse(rm->cidr, &m->cidr, &why))
			return fail_line(d, line_of(d, fpath), what,
					 "bad cidr \"%s\" (%s)", rm->cidr, why);
		path_join(fpath, path, "ports");
		err = get_port_ranges(d, fpath, rm->ports, rm->ports_count,
				      m->ports, &m->n_ports);
		for (j = 0; !err && j < rm->identities_count; j++) {
			char ipath[PATH_LEN];

			path_join(fpath, path, "identities");
			path_index(ipath, fpath, j);
			err = get_id_pattern(d, ipath, what, rm->identities[j],
					     m->ids[j]);
		}
		if (err)
			return err;
		m->n_ids = rm->identities_count;
	}
	cfg->tls.n_mesh = r->mesh_count;
	return 0;
}

static int apply_tls(struct doc *d, const struct raw_tls *r,
		     struct sl_config *cfg)
{
	int err, given;

	err = get_string(d, "tls.cert", r->cert, cfg->tls.cert,
			 sizeof(cfg->tls.cert));
	if (!err)
		err = get_string(d, "tls.key", r->key, cfg->tls.key,
				 sizeof(cfg->tls.key));
	if (!err)
		err = get_string(d, "tls.ca", r->ca, cfg->tls.ca,
				 sizeof(cfg->tls.ca));
	if (!err)
		err = get_string(d, "tls.trust_domain", r->trust_domain,
				 cfg->tls.trust_domain,
				 sizeof(cfg->tls.trust_domain));
	if (!err && r->trust_domain && r->trust_domain[0]) {
		char id[300];

		snprintf(id, sizeof(id), "spiffe://%s/x", r->trust_domain);
		if (strchr(r->trust_domain, '/') ||
		    sl_spiffe_parse(id, NULL, 0))
			err = fail_line(d, line_of(d, "tls.trust_domain"),
					"tls.trust_domain",
					"\"%s\" is not a trust domain (lower "
					"case letters, digits, '.', '-', '_')",
					r->trust_domain);
	}
	if (!err && r->min_version) {
		if (!strcmp(r->min_version, "1.2") ||
		    !strcmp(r->min_version, "1.3"))
			cfg->tls.allow_tls12 = !strcmp(r->min_version, "1.2");
		else
			err = fail_line(d, line_of(d, "tls.min_version"),
					"tls.min_version",
					"\"%s\" is not \"1.2\" or \"1.3\"",
					r->min_version);
	}
	if (!err)
		err = get_string(d, "tls.alpn", r->alpn, cfg->tls.alpn,
				 sizeof(cfg->tls.alpn));
	if (!err)
		err = get_uint(d, "tls.handshake_timeout_ms",
			       r->handshake_timeout_ms, 1, 600000,
			       &cfg->tls.handshake_timeout_ms);
	if (!err)
		err = get_uint(d, "tls.reload_interval_ms", r->reload_interval_ms,
			       100, 3600000, &cfg->tls.reload_interval_ms);
	if (!err)
		err = apply_mesh(d, r, cfg);
	if (err)
		return err;
	given = !!cfg->tls.cert[0] + !!cfg->tls.key[0] + !!cfg->tls.ca[0];
	if (given && given < 3)
		return fail_line(d, line_of(d, "tls"), "tls",
				 "cert, key and ca go together (%s missing)",
				 !cfg->tls.cert[0] ? "cert" :
				 !cfg->tls.key[0]  ? "key" :
						     "ca");
	cfg->tls.enabled = given == 3;
	return 0;
}

static int apply_inbound(struct doc *d, const struct raw_inbound *r,
			 struct sl_config *cfg)
{
	const char *list = "inbound.identities", *why;
	char path[PATH_LEN], fpath[PATH_LEN], what[32];
	unsigned int i;
	uint64_t v;
	int err;

	err = get_bool(d, "inbound.enabled", r->enabled, &cfg->inbound.enabled);
	if (!err && r->listen && sl_endpoint_parse(r->listen, &cfg->inbound.listen,
						&why))
		err = fail_line(d, line_of(d, "inbound.listen"), "inbound",
				"bad listen \"%s\" (%s)", r->listen, why);
	if (!err && r->mode) {
		if (!strcmp(r->mode, "auto"))
			cfg->inbound.mode = SL_INBOUND_AUTO;
		else if (!strcmp(r->mode, "sk_lookup"))
			cfg->inbound.mode = SL_INBOUND_SK_LOOKUP;
		else if (!strcmp(r->mode, "listener"))
			cfg->inbound.mode = SL_INBOUND_LISTENER;
		else
			err = fail_line(d, line_of(d, "inbound.mode"),
					"inbound.mode",
					"\"%s\" is not auto, sk_lookup or "
					"listener",
					r->mode);
	}
	if (!err)
		err = get_port_ranges(d, "inbound.ports", r->ports,
				      r->ports_count, cfg->inbound.ports,
				      &cfg->inbound.n_ports);
	if (!err)
		err = get_port_ranges(d, "inbound.exclude_ports",
				      r->exclude_ports, r->exclude_ports_count,
				      cfg->inbound.exclude_ports,
				      &cfg->inbound.n_exclude_ports);
	if (!err && r->app_port) {
		err = get_num(d, "inbound.app_port", r->app_port, 0, 65535, 0,
			      &v);
		if (!err)
			cfg->inbound.app_port = (uint16_t)v;
	}
	if (!err)
		err = get_bool(d, "inbound.fail_open", r->fail_open,
			       &cfg->inbound.fail_open);
	if (!err && r->default_action)
		err = get_action(d, "inbound.default", "inbound.default",
				 r->default_action, &cfg->inbound.id_default);
	if (err || !has_node(d, list))
		return err;
	for (i = 0; i < r->identities_count; i++) {
		const struct raw_id_rule *rr = &r->identities[i];
		struct sl_id_rule_cfg *ir = &cfg->inbound.ids[i];

		memset(ir, 0, sizeof(*ir));
		path_index(path, list, i);
		snprintf(what, sizeof(what), "identity rule %u", i + 1);
		ir->line = line_of(d, path);
		path_join(fpath, path, "id");
		err = get_id_pattern(d, fpath, what, rr->id, ir->id);
		if (!err) {
			path_join(fpath, path, "action");
			err = get_action(d, fpath, what, rr->action,
					 &ir->action);
		}
		if (!err) {
			path_join(fpath, path, "ports");
			err = get_port_ranges(d, fpath, rr->ports,
					      rr->ports_count, ir->ports,
					      &ir->n_ports);
		}
		if (err)
			return err;
	}
	cfg->inbound.n_ids = r->identities_count;
	return 0;
}

static int apply_admin(struct doc *d, const struct raw_admin *r,
		       struct sl_config *cfg)
{
	int err = 0;

	if (r->listen) {
		cfg->admin.enabled = r->listen[0] != '\0';
		if (cfg->admin.enabled)
			err = get_endpoint(d, "admin.listen", "admin", "listen",
					   r->listen, &cfg->admin.listen);
	}
	if (!err)
		err = get_uint(d, "admin.drain_timeout_ms", r->drain_timeout_ms,
			       0, 3600000, &cfg->admin.drain_timeout_ms);
	return err;
}

/* Checks across sections, once the whole file is applied. */
static int check_config(struct doc *d, struct sl_config *cfg)
{
	if (cfg->tls.n_mesh && !cfg->tls.enabled)
		return fail_line(d, line_of(d, "tls.mesh"), "tls.mesh",
				 "mesh destinations need tls.cert, tls.key "
				 "and tls.ca");
	if (!cfg->inbound.enabled)
		return 0;
	if (cfg->inbound.n_ids && !cfg->tls.enabled)
		return fail_line(d, line_of(d, "inbound.identities"),
				 "inbound.identities",
				 "identity rules need tls (plaintext peers have "
				 "no identity)");
	if (cfg->inbound.mode == SL_INBOUND_LISTENER && !cfg->inbound.app_port)
		return fail_line(d, line_of(d, "inbound"), "inbound",
				 "mode listener needs app_port");
	if (cfg->inbound.mode != SL_INBOUND_LISTENER && !cfg->inbound.n_ports)
		return fail_line(d, line_of(d, "inbound"), "inbound",
				 "no ports to steer (inbound.ports), or use "
				 "mode listener with app_port");
	if (cfg->capture.enabled &&
	    sl_endpoint_equal(&cfg->inbound.listen, &cfg->capture.outbound))
		return fail_line(d, line_of(d, "inbound.listen"), "inbound",
				 "listen is capture.outbound's address");
	return 0;
}

static int apply_rule(struct doc *d, const struct raw_rule *rr,
		      const char *path, unsigned int line, unsigned int idx,
		      struct sl_policy *pol)
{
	struct sl_rule *rule = &pol->rules[idx];
	char fpath[PATH_LEN], what[32];
	const char *why;
	uint64_t id;
	unsigned int i;
	int err;

	snprintf(what, sizeof(what), "rule %u", idx + 1);
	memset(rule, 0, sizeof(*rule));
	rule->line = line;

	path_join(fpath, path, "id");
	err = parse_num(rr->id, 1, UINT32_MAX, 0, &id);
	if (err)
		return fail_line(d, line_of(d, fpath), what,
				 "bad id \"%s\" (a number 1..4294967295)",
				 rr->id);
	rule->id = (uint32_t)id;
	for (i = 0; i < idx; i++)
		if (pol->rules[i].id == rule->id)
			return fail_line(d, line_of(d, fpath), what,
					 "id %u already used by rule %u (line %u)",
					 rule->id, i + 1, pol->rules[i].line);

	path_join(fpath, path, "action");
	err = get_action(d, fpath, what, rr->action, &rule->action);
	if (err)
		return err;

	path_join(fpath, path, "cidr");
	if (sl_cidr_parse(rr->cidr, &rule->cidr, &why))
		return fail_line(d, line_of(d, fpath), what,
				 "bad cidr \"%s\" (%s)", rr->cidr, why);

	for (i = 0; i < rr->ports_count; i++) {
		char ppath[PATH_LEN];

		if (sl_port_range_parse(rr->ports[i], &rule->ports[i], &why)) {
			path_join(fpath, path, "ports");
			path_index(ppath, fpath, i);
			return fail_line(d, line_of(d, ppath), what,
					 "bad port range \"%s\" (%s)",
					 rr->ports[i], why);
		}
	}
	rule->n_ports = rr->ports_count;
	return 0;
}

/* prefix: "policy" in a config file, "" in a policy file. */
static int apply_policy(struct doc *d, const struct raw_policy *r,
			const char *prefix, struct sl_policy *pol)
{
	char path[PATH_LEN], list[PATH_LEN];
	unsigned int i;
	size_t cursor = 0; /* rules are indexed in order: one pass for all */
	long at;
	int err;

	if (r->default_action) {
		path_join(path, prefix, "default");
		err = get_action(d, path, path, r->default_action,
				 &pol->default_action);
		if (err)
			return err;
	}
	path_join(list, prefix, "rules");
	if (!has_node(d, list))
		return 0;
	for (i = 0; i < r->rules_count; i++) {
		path_index(path, list, i);
		at = find_node(d, path, &cursor);
		err = apply_rule(d, &r->rules[i], path,
				 at >= 0 ? d->nodes[at].line : line_of(d, path),
				 i, pol);
		if (err)
			return err;
	}
	pol->n_rules = r->rules_count;
	return 0;
}

static int apply_config(struct doc *d, const struct raw_config *r,
			struct sl_config *cfg)
{
	int err;

	err = get_string(d, "pin_root", r->pin_root, cfg->pin_root,
			 sizeof(cfg->pin_root));
	if (!err && r->pin_root && r->pin_root[0] != '/')
		err = fail_line(d, line_of(d, "pin_root"), "pin_root",
				"\"%s\" is not an absolute path", r->pin_root);
	if (!err)
		err = get_string(d, "cgroup", r->cgroup, cfg->cgroup,
				 sizeof(cfg->cgroup));
	if (!err && r->fastpath)
		err = apply_fastpath(d, r->fastpath, cfg);
	if (!err && r->capture)
		err = apply_capture(d, r->capture, cfg);
	if (!err && r->proxy)
		err = apply_proxy(d, r->proxy, cfg);
	if (!err && r->tls)
		err = apply_tls(d, r->tls, cfg);
	if (!err && r->inbound)
		err = apply_inbound(d, r->inbound, cfg);
	if (!err && r->admin)
		err = apply_admin(d, r->admin, cfg);
	if (!err && r->limits)
		err = get_uint(d, "limits.max_conns", r->limits->max_conns,
			       SL_LIMIT_CONNS_MIN, SL_LIMIT_CONNS_MAX,
			       &cfg->limits.max_conns);
	if (!err && r->accounting) {
		const struct raw_accounting *a = r->accounting;

		err = get_string(d, "accounting.access_log", a->access_log,
				 cfg->accounting.access_log,
				 sizeof(cfg->accounting.access_log));
		if (!err && a->access_log && a->access_log[0] &&
		    a->access_log[0] != '/')
			err = fail_line(d, line_of(d, "accounting.access_log"),
					"accounting.access_log",
					"\"%s\" is not an absolute path",
					a->access_log);
		if (!err)
			err = get_uint(d, "accounting.max_bytes", a->max_bytes,
				       4096, 1U << 30, &cfg->accounting.max_bytes);
		if (!err)
			err = get_uint(d, "accounting.keep", a->keep, 0, 100,
				       &cfg->accounting.keep);
	}
	if (!err && r->policy)
		err = apply_policy(d, r->policy, "policy", &cfg->policy);
	if (!err)
		err = check_config(d, cfg);
	return err;
}

/* Load one config document over *cfg; cfg is left as is on error. */
static int config_apply_doc(const char *path, struct sl_config *cfg, char *err,
			    size_t errlen)
{
	const cyaml_config_t cy = { .mem_fn = cyaml_mem };
	struct doc d = { .name = path ? path : "<default>", .err = err,
			 .errlen = errlen };
	struct raw_config *raw = NULL;
	struct sl_config *tmp;
	int ret;

	tmp = malloc(sizeof(*tmp));
	if (!tmp)
		return -ENOMEM;
	memcpy(tmp, cfg, sizeof(*tmp));
	ret = doc_load(&d, path, sl_config_default_yaml, &config_schema,
		       (void **)&raw);
	if (!ret && raw)
		ret = apply_config(&d, raw, tmp);
	if (!ret)
		memcpy(cfg, tmp, sizeof(*cfg));
	if (raw)
		cyaml_free(&cy, &config_schema, raw, 0);
	doc_free(&d);
	free(tmp);
	return ret;
}

int sl_config_load(const char *path, struct sl_config *cfg, char *err,
		   size_t errlen)
{
	struct sl_config *tmp;
	int ret;

	if (err && errlen)
		err[0] = '\0';
	tmp = calloc(1, sizeof(*tmp));
	if (!tmp)
		return -ENOMEM;
	/* The default document first, then the file's keys over it. */
	ret = config_apply_doc(NULL, tmp, err, errlen);
	if (!ret && path)
		ret = config_apply_doc(path, tmp, err, errlen);
	if (!ret)
		memcpy(cfg, tmp, sizeof(*cfg));
	free(tmp);
	return ret;
}

int sl_policy_load(const char *path, struct sl_policy *pol, char *err,
		   size_t errlen)
{
	const cyaml_config_t cy = { .mem_fn = cyaml_mem };
	struct doc d = { .name = path, .err = err, .errlen = errlen };
	struct raw_policy *raw = NULL;
	struct sl_config *def;
	struct sl_policy *tmp;
	int ret;

	if (err && errlen)
		err[0] = '\0';
	def = malloc(sizeof(*def));
	if (!def)
		return -ENOMEM;
	/* Start from the default's policy (path NULL: that is the result). */
	ret = sl_config_load(NULL, def, err, errlen);
	if (ret || !path)
		goto out;
	tmp = &def->policy;
	ret = doc_load(&d, path, NULL, &policy_file_schema, (void **)&raw);
	if (!ret && !raw)
		ret = fail_line(&d, 0, NULL,
				"empty policy (write \"rules: []\" for none)");
	if (!ret)
		ret = apply_policy(&d, raw, "", tmp);
out:
	if (!ret)
		memcpy(pol, &def->policy, sizeof(*pol));
	if (raw)
		cyaml_free(&cy, &policy_file_schema, raw, 0);
	doc_free(&d);
	free(def);
	return ret;
}
