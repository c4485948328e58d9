// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Unit tests (cmocka) for user/config/config.c: the embedded default, full and
 * partial config files, policy files, one rejected file per class of mistake
 * with its "file:line: reason", and the CIDR / port range / endpoint parsers.
 * Files are written with mkstemps under /tmp and removed before any check.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "config/config.h"
#include "admission.h"

enum kind { CONFIG, POLICY };

/* Write text to a fresh file, load it as a config or policy, remove it.
 * path receives the file's name (for expected messages).
 */
static int load_text(const char *text, enum kind kind, struct sl_config *cfg,
		     char *err, char path[64])
{
	size_t len = strlen(text);
	int fd, ret;

	snprintf(path, 64, "/tmp/sidelane-test-XXXXXX.yaml");
	fd = mkstemps(path, 5);
	assert_true(fd >= 0);
	if (write(fd, text, len) != (ssize_t)len) {
		close(fd);
		unlink(path);
		fail_msg("write %s failed", path);
	}
	close(fd);
	err[0] = '\0';
	if (kind == CONFIG)
		ret = sl_config_load(path, cfg, err, SL_CFG_ERR_LEN);
	else
		ret = sl_policy_load(path, &cfg->policy, err, SL_CFG_ERR_LEN);
	unlink(path);
	return ret;
}

static struct sl_config *new_cfg(void)
{
	struct sl_config *cfg = calloc(1, sizeof(*cfg));

	assert_non_null(cfg);
	return cfg;
}

static void assert_cidr(const struct sl_cidr *c, int family, const char *addr,
			unsigned int prefixlen)
{
	uint8_t want[16] = { 0 };

	assert_int_equal(c->family, family);
	assert_int_equal(inet_pton(family, addr, want), 1);
	assert_memory_equal(c->addr, want, 16);
	assert_int_equal(c->prefixlen, prefixlen);
}

static void assert_endpoint(const struct sl_endpoint *ep, int family,
			    const char *addr, uint16_t port)
{
	char buf[INET6_ADDRSTRLEN];

	assert_int_equal(ep->addr.ss_family, family);
	if (family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)&ep->addr;

		assert_int_equal(ep->addrlen, sizeof(*sin));
		inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf));
		assert_int_equal(ntohs(sin->sin_port), port);
	} else {
		const struct sockaddr_in6 *sin6 = (const void *)&ep->addr;

		assert_int_equal(ep->addrlen, sizeof(*sin6));
		inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof(buf));
		assert_int_equal(ntohs(sin6->sin6_port), port);
	}
	assert_string_equal(buf, addr);
}

static void default_loads(void **state)
{
	struct sl_config *cfg = new_cfg();
	char err[SL_CFG_ERR_LEN];

	(void)state;
	assert_int_equal(sl_config_load(NULL, cfg, err, sizeof(err)), 0);
	assert_string_equal(cfg->pin_root, "/sys/fs/bpf/sidelane");
	assert_string_equal(cfg->version, "default");
	assert_string_equal(cfg->cgroup, "");
	assert_int_equal(cfg->fastpath.n_exclude_ports, 0);
	assert_int_equal(cfg->fastpath.app_sockets, SL_APP_SAFE);
	assert_int_equal(cfg->capture.enabled, 1);
	assert_endpoint(&cfg->capture.outbound, AF_INET, "127.0.0.1", 15001);
	assert_int_equal(cfg->capture.mark, 0x534c);
	assert_int_equal(cfg->capture.n_include_cidrs, 2);
	assert_cidr(&cfg->capture.include_cidrs[0], AF_INET, "0.0.0.0", 0);
	assert_cidr(&cfg->capture.include_cidrs[1], AF_INET6, "::", 0);
	assert_int_equal(cfg->capture.n_exclude_cidrs, 0);
	assert_int_equal(cfg->capture.n_include_ports, 0);
	assert_int_equal(cfg->capture.n_exclude_ports, 0);
	assert_int_equal(cfg->proxy.connect_timeout_ms, 5000);
	assert_int_equal(cfg->proxy.idle_timeout_ms, 300000);
	assert_int_equal(cfg->proxy.buffer_bytes, 65536);
	assert_int_equal(cfg->proxy.max_conns, 4096);
	assert_int_equal(cfg->proxy.workers, 0); /* auto */
	assert_int_equal(cfg->proxy.n_ambassadors, 0);
	assert_int_equal(cfg->policy.default_action, SL_ACTION_ALLOW);
	assert_int_equal(cfg->policy.n_rules, 0);
	free(cfg);
}

/* The default doubles as the format's reference: every key is in it. */
static void tls_and_inbound_load(void **state)
{
	static const char text[] =
		"tls:\n"
		"  cert: /etc/sl/a.pem\n"
		"  key: /etc/sl/a.key\n"
		"  ca: /etc/sl/ca.pem\n"
		"  trust_domain: example.org\n"
		"  min_version: \"1.2\"\n"
		"  alpn: \"h2,http/1.1\"\n"
		"  handshake_timeout_ms: 3000\n"
		"  mesh:\n"
		"    - cidr: 10.1.0.0/16\n"
		"      ports: [\"8080-8090\"]\n"
		"      identities: [\"spiffe://example.org/ns/b/*\", \"*\"]\n"
		"inbound:\n"
		"  enabled: true\n"
		"  listen: \"0.0.0.0:15006\"\n"
		"  mode: sk_lookup\n"
		"  ports: [\"8080\", \"9000-9010\"]\n"
		"  exclude_ports: [\"9005\"]\n"
		"  default: deny\n"
		"  identities:\n"
		"    - id: spiffe://example.org/ns/a/sa/web\n"
		"      action: allow\n"
		"      ports: [\"8080\"]\n";
	struct sl_config *cfg = new_cfg();
	char err[SL_CFG_ERR_LEN], path[64];
	uint8_t a[16] = { [10] = 0xff, [11] = 0xff, 10, 1, 200, 3 };

	(void)state;
	assert_int_equal(load_text(text, CONFIG, cfg, err, path), 0);
	assert_true(cfg->tls.enabled);
	assert_string_equal(cfg->tls.cert, "/etc/sl/a.pem");
	assert_string_equal(cfg->tls.trust_domain, "example.org");
	assert_true(cfg->tls.allow_tls12);
	assert_string_equal(cfg->tls.alpn, "h2,http/1.1");
	assert_int_equal(cfg->tls.handshake_timeout_ms, 3000);
	assert_int_equal(cfg->tls.reload_interval_ms, 2000); /* default */
	assert_int_equal(cfg->tls.n_mesh, 1);
	assert_cidr(&cfg->tls.mesh[0].cidr, AF_INET, "10.1.0.0", 16);
	assert_int_equal(cfg->tls.mesh[0].n_ids, 2);
	assert_string_equal(cfg->tls.mesh[0].ids[1], "*");
	assert_true(cfg->inbound.enabled);
	assert_endpoint(&cfg->inbound.listen, AF_INET, "0.0.0.0", 15006);
	assert_int_equal(cfg->inbound.mode, SL_INBOUND_SK_LOOKUP);
	assert_int_equal(cfg->inbound.n_ports, 2);
	assert_int_equal(cfg->inbound.ports[1].hi, 9010);
	assert_int_equal(cfg->inbound.n_exclude_ports, 1);
	assert_int_equal(cfg->inbound.id_default, SL_ACTION_DENY);
	assert_int_equal(cfg->inbound.n_ids, 1);
	assert_int_equal(cfg->inbound.ids[0].action, SL_ACTION_ALLOW);
	assert_int_equal(cfg->inbound.ids[0].line, 21);
	/* the matchers the proxy uses on these */
	assert_true(sl_cidr_contains(&cfg->tls.mesh[0].cidr, AF_INET6, a));
	assert_true(sl_cidr_contains(&cfg->tls.mesh[0].cidr, AF_INET, a + 12));
	a[13] = 2;
	assert_false(sl_cidr_contains(&cfg->tls.mesh[0].cidr, AF_INET6, a));
	assert_true(sl_ports_match(cfg->tls.mesh[0].ports, 1, 8085));
	assert_false(sl_ports_match(cfg->tls.mesh[0].ports, 1, 8091));
	assert_true(sl_ports_match(NULL, 0, 1));
	/* the default has TLS and inbound off */
	assert_int_equal(sl_config_load(NULL, cfg, err, sizeof(err)), 0);
	assert_false(cfg->tls.enabled);
	assert_false(cfg->inbound.enabled);
	assert_int_equal(cfg->inbound.id_default, SL_ACTION_ALLOW);
	free(cfg);
}

static void cidr_contains_edges(void **state)
{
	struct sl_cidr c;
	uint8_t ip[16];

	(void)state;
	assert_int_equal(sl_cidr_parse("10.0.0.128/25", &c, NULL), 0);
	inet_pton(AF_INET, "10.0.0.200", ip);
	assert_true(sl_cidr_contains(&c, AF_INET, ip));
	inet_pton(AF_INET, "10.0.0.127", ip);
	assert_false(sl_cidr_contains(&c, AF_INET, ip));
	assert_int_equal(sl_cidr_parse("0.0.0.0/0", &c, NULL), 0);
	assert_true(sl_cidr_contains(&c, AF_INET, ip));
	assert_int_equal(sl_cidr_parse("2001:db8::/33", &c, NULL), 0);
	inet_pton(AF_INET6, "2001:db8:7fff::1", ip);
	assert_true(sl_cidr_contains(&c, AF_INET6, ip));
	inet_pton(AF_INET6, "2001:db8:8000::1", ip);
	assert_false(sl_cidr_contains(&c, AF_INET6, ip));
	inet_pton(AF_INET, "10.0.0.200", ip);
	assert_false(sl_cidr_contains(&c, AF_INET, ip)); /* family */
}

static void default_documents_every_key(void **state)
{
	static const char *const keys[] = {
		"pin_root:", "cgroup:", "fastpath:", "app_sockets:", "exclude_ports:",
		"capture:", "enabled:", "outbound:", "mark:",
		"include_cidrs:", "exclude_cidrs:", "include_ports:",
		"proxy:", "connect_timeout_ms:", "idle_timeout_ms:",
		"buffer_bytes:", "max_conns:", "workers:", "splice:", "ambassadors:", "listen:",
		"upstream:", "policy:", "default:", "rules:", "id:",
		"action:", "cidr:", "ports:", "tls:", "cert:", "key:", "ca:",
		"trust_domain:", "min_version:", "alpn:",
		"handshake_timeout_ms:", "reload_interval_ms:", "mesh:",
		"identities:", "inbound:", "mode:", "app_port:", "fail_open:",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (!strstr(sl_config_default_yaml, keys[i]))
			fail_msg("default document lacks %s", keys[i]);
}

static void full_file_loads(void **state)
{
	static const char text[] =
		"pin_root: /sys/fs/bpf/test\n"
		"cgroup: app\n"
		"fastpath:\n"
		"  app_sockets: send\n"
		"  exclude_ports: [5432, 6379]\n"
		"capture:\n"
		"  enabled: false\n"
		"  outbound: \"127.0.0.2:15002\"\n"
		"  mark: 0x1234\n"
		"  include_cidrs: [\"10.0.0.0/8\"]\n"
		"  exclude_cidrs: [\"10.1.0.0/16\", \"::ffff:10.2.0.0/112\"]\n"
		"  include_ports: [\"80\", \"8000-8080\"]\n"
		"  exclude_ports: [22]\n"
		"proxy:\n"
		"  connect_timeout_ms: 1000\n"
		"  idle_timeout_ms: 60000\n"
		"  buffer_bytes: 4096\n"
		"  max_conns: 10\n"
		"  workers: 3\n"
		"  ambassadors:\n"
		"    - listen: \"127.0.0.1:6379\"\n"
		"      upstream: \"redis.example:6379\"\n"
		"    - listen: \"[::1]:6380\"\n"
		"      upstream: \"[2001:db8::1]:6379\"\n"
		"policy:\n"
		"  default: deny\n"
		"  rules:\n"
		"    - id: 10\n"
		"      action: allow\n"
		"      cidr: 10.0.0.0/8\n"
		"      ports: [\"80\", \"8000-8080\"]\n"
		"    - {id: 11, action: deny, cidr: \"fd00::/8\"}\n";
	struct sl_config *cfg = new_cfg();
	char err[SL_CFG_ERR_LEN], path[64];
	const struct sl_rule *r;

	(void)state;
	if (load_text(text, CONFIG, cfg, err, path))
		fail_msg("%s", err);
	assert_string_equal(cfg->pin_root, "/sys/fs/bpf/test");
	assert_string_equal(cfg->cgroup, "app");
	assert_int_equal(cfg->fastpath.n_exclude_ports, 2);
	assert_int_equal(cfg->fastpath.exclude_ports[1], 6379);
	assert_int_equal(cfg->fastpath.app_sockets, SL_APP_SEND);
	assert_int_equal(cfg->capture.enabled, 0);
	assert_endpoint(&cfg->capture.outbound, AF_INET, "127.0.0.2", 15002);
	assert_int_equal(cfg->capture.mark, 0x1234);
	assert_int_equal(cfg->capture.n_include_cidrs, 1);
	assert_cidr(&cfg->capture.include_cidrs[0], AF_INET, "10.0.0.0", 8);
	assert_int_equal(cfg->capture.n_exclude_cidrs, 2);
	assert_cidr(&cfg->capture.exclude_cidrs[1], AF_INET, "10.2.0.0", 16);
	assert_int_equal(cfg->capture.n_include_ports, 2);
	assert_int_equal(cfg->capture.include_ports[1].lo, 8000);
	assert_int_equal(cfg->capture.include_ports[1].hi, 8080);
	assert_int_equal(cfg->capture.n_exclude_ports, 1);
	assert_int_equal(cfg->capture.exclude_ports[0].lo, 22);
	assert_int_equal(cfg->capture.exclude_ports[0].hi, 22);
	assert_int_equal(cfg->proxy.connect_timeout_ms, 1000);
	assert_int_equal(cfg->proxy.idle_timeout_ms, 60000);
	assert_int_equal(cfg->proxy.buffer_bytes, 4096);
	assert_int_equal(cfg->proxy.max_conns, 10);
	assert_int_equal(cfg->proxy.workers, 3);
	assert_int_equal(cfg->proxy.n_ambassadors, 2);
	assert_endpoint(&cfg->proxy.ambassadors[0].listen, AF_INET, "127.0.0.1",
			6379);
	assert_string_equal(cfg->proxy.ambassadors[0].upstream_host,
			    "redis.example");
	assert_int_equal(cfg->proxy.ambassadors[0].upstream_port, 6379);
	assert_endpoint(&cfg->proxy.ambassadors[1].listen, AF_INET6, "::1", 6380);
	assert_string_equal(cfg->proxy.ambassadors[1].upstream_host,
			    "2001:db8::1");
	assert_int_equal(cfg->policy.default_action, SL_ACTION_DENY);
	assert_int_equal(cfg->policy.n_rules, 2);
	r = &cfg->policy.rules[0];
	assert_int_equal(r->id, 10);
	assert_int_equal(r->action, SL_ACTION_ALLOW);
	assert_cidr(&r->cidr, AF_INET, "10.0.0.0", 8);
	assert_int_equal(r->n_ports, 2);
	assert_int_equal(r->ports[0].lo, 80);
	assert_int_equal(r->ports[0].hi, 80);
	assert_int_equal(r->line, 28);
	r = &cfg->policy.rules[1];
	assert_int_equal(r->id, 11);
	assert_int_equal(r->action, SL_ACTION_DENY);
	assert_cidr(&r->cidr, AF_INET6, "fd00::", 8);
	assert_int_equal(r->n_ports, 0);
	assert_int_equal(r->line, 32);
	free(cfg);
}

/* Keys left out keep the default; a list given replaces the default one. */
static void partial_file_keeps_defaults(void **state)
{
	struct sl_config *cfg = new_cfg();
	char err[SL_CFG_ERR_LEN], path[64];

	(void)state;
	if (load_text("# only two keys\n"
		      "proxy:\n"
		      "  max_conns: 7\n"
		      "capture:\n"
		      "  include_cidrs: []\n"
		      "fastpath:\n",
		      CONFIG, cfg, err, path))
		fail_msg("%s", err);
	assert_int_equal(cfg->proxy.max_conns, 7);
	assert_int_equal(cfg->proxy.connect_timeout_ms, 5000);
	assert_int_equal(cfg->capture.n_include_cidrs, 0);
	assert_int_equal(cfg->capture.mark, 0x534c);
	assert_int_equal(cfg->capture.enabled, 1);
	assert_string_equal(cfg->pin_root, "/sys/fs/bpf/sidelane");

	/* An empty config file is every default; its version is the start
	 * of SHA-256(""), as sha256sum prints it.
	 */
	if (load_text("", CONFIG, cfg, err, path))
		fail_msg("%s", err);
	assert_int_equal(cfg->capture.n_include_cidrs, 2);
	assert_int_equal(cfg->proxy.max_conns, 4096);
	assert_string_equal(cfg->version, "e3b0c44298fc1c14");
	assert_true(cfg->loaded_ms > 0);
	free(cfg);
}

static void policy_file_loads(void **state)
{
	static const char text[] = "# a policy file\n"
				   "default: deny\n"
				   "rules:\n"
				   "  - id: 10\n"
				   "    action: allow\n"
				   "    cidr: ::ffff:10.1.0.0/112\n"
				   "  - id: 4294967295\n"
				   "    action: deny\n"
				   "    cidr: 192.0.2.1\n"
				   "    ports: [443]\n";
	struct sl_config *cfg = new_cfg();
	char err[SL_CFG_ERR_LEN], path[64];

	(void)state;
	if (load_text(text, POLICY, cfg, err, path))
		fail_msg("%s", err);
	assert_int_equal(cfg->policy.default_action, SL_ACTION_DENY);
	assert_int_equal(cfg->policy.n_rules, 2);
	assert_int_equal(cfg->policy.rules[0].line, 4);
	/* v4-mapped spelling: stored as the IPv4 prefix it means. */
	assert_cidr(&cfg->policy.rules[0].cidr, AF_INET, "10.1.0.0", 16);
	assert_int_equal(cfg->policy.rules[1].id, 4294967295u);
	assert_cidr(&cfg->policy.rules[1].cidr, AF_INET, "192.0.2.1", 32);
	assert_int_equal(cfg->policy.rules[1].line, 7);

	/* default: optional (allow), rules: [] is the empty policy. */
	if (load_text("rules: []\n", POLICY, cfg, err, path))
		fail_msg("%s", err);
	assert_int_equal(cfg->policy.default_action, SL_ACTION_ALLOW);
	assert_int_equal(cfg->policy.n_rules, 0);

	/* NULL: the default policy. */
	assert_int_equal(sl_policy_load(NULL, &cfg->policy, err, sizeof(err)), 0);
	assert_int_equal(cfg->policy.default_action, SL_ACTION_ALLOW);
	free(cfg);
}

struct bad_case {
	enum kind kind;
	const char *text;
	const char *want; /* what follows "file:" in the message */
};

static const struct bad_case bad_cases[] = {
	/* YAML itself */
	{ CONFIG, "capture: [\n", "2: YAML syntax: did not find expected node content" },
	{ CONFIG, "a: 1\n---\nb: 2\n", "2: more than one YAML document" },
	{ CONFIG, "pin_root: &p /x\ncgroup: *p\n",
	  "2: cgroup: YAML aliases (*name) are not accepted" },
	/* schema: keys, types, counts */
	{ CONFIG, "capture:\n  enabled: true\n  bogus: 1\n",
	  "3: capture: unknown key \"bogus\"" },
	{ CONFIG, "\n\ntimeout: 5\n", "3: unknown key \"timeout\"" },
	{ CONFIG, "capture:\n  mark: 1\n  mark: 2\n",
	  "3: capture: key \"mark\" given twice" },
	{ CONFIG, "capture: [1]\n", "1: capture: expected a mapping, found a list" },
	{ CONFIG, "capture:\n  include_cidrs: 10.0.0.0/8\n",
	  "2: capture.include_cidrs: expected a list, found a single value" },
	{ CONFIG, "- 1\n", "1: expected a mapping, found a list" },
	{ CONFIG, "proxy:\n  ambassadors:\n    - listen: 127.0.0.1:80\n",
	  "3: ambassador 1: missing required key \"upstream\"" },
	/* numbers */
	{ CONFIG, "proxy:\n  buffer_bytes: 100\n",
	  "2: proxy.buffer_bytes: 100 out of range 4096..16777216" },
	{ CONFIG, "proxy:\n  connect_timeout_ms: 0\n",
	  "2: proxy.connect_timeout_ms: 0 out of range 1..86400000" },
	{ CONFIG, "proxy:\n  idle_timeout_ms: 86400001\n",
	  "2: proxy.idle_timeout_ms: 86400001 out of range 1..86400000" },
	{ CONFIG, "proxy:\n  max_conns: 5.0\n",
	  "2: proxy.max_conns: \"5.0\" is not a decimal number" },
	{ CONFIG, "proxy:\n  max_conns: 1_000\n",
	  "2: proxy.max_conns: \"1_000\" is not a decimal number" },
	{ CONFIG, "proxy:\n  max_conns: 1000001\n",
	  "2: proxy.max_conns: 1000001 out of range 1..1000000" },
	{ CONFIG, "proxy:\n  workers: 0\n",
	  "2: proxy.workers: 0 out of range 1..256" },
	{ CONFIG, "proxy:\n  workers: all\n",
	  "2: proxy.workers: \"all\" is not auto or a number (1..256)" },
	{ CONFIG, "capture:\n  mark: 0x100000000\n",
	  "2: capture.mark: 0x100000000 out of range 1..4294967295" },
	{ CONFIG, "capture:\n  enabled: maybe\n",
	  "2: capture.enabled: \"maybe\" is not true or false" },
	/* ports */
	{ CONFIG, "capture:\n  include_ports:\n    - 80\n    - 0\n",
	  "4: capture.include_ports: bad port range \"0\" (port out of range 1..65535)" },
	{ CONFIG, "capture:\n  exclude_ports: [\"65536\"]\n",
	  "2: capture.exclude_ports: bad port range \"65536\" (port out of range 1..65535)" },
	{ CONFIG, "capture:\n  exclude_ports:\n    - 9000-80\n",
	  "3: capture.exclude_ports: bad port range \"9000-80\" (range start above its end)" },
	{ CONFIG, "fastpath:\n  app_sockets: fast\n",
	  "2: fastpath.app_sockets: \"fast\" is not safe, send, all or none" },
	{ CONFIG, "fastpath:\n  exclude_ports: [80, 80]\n",
	  "2: fastpath.exclude_ports: port 80 listed twice" },
	{ CONFIG, "fastpath:\n  exclude_ports: [\"80-90\"]\n",
	  "2: fastpath.exclude_ports: bad port \"80-90\" (single ports here, not ranges)" },
	/* addresses */
	{ CONFIG, "capture:\n  exclude_cidrs:\n    - 10.0.0.0/8\n    - 10.0.0.1/8\n",
	  "4: capture.exclude_cidrs: bad cidr \"10.0.0.1/8\" (host bits set after the prefix length)" },
	{ CONFIG, "capture:\n  outbound: 10.0.0.1:15001\n",
	  "2: capture: outbound \"10.0.0.1:15001\" is not a loopback address" },
	{ CONFIG, "capture:\n  outbound: \"[::1]:15001\"\n",
	  "2: capture: outbound \"[::1]:15001\" must be an IPv4 loopback address" },
	{ CONFIG, "capture:\n  outbound: localhost:15001\n",
	  "2: capture: bad outbound \"localhost:15001\" (not a numeric IPv4 or [IPv6] address)" },
	{ CONFIG, "proxy:\n  ambassadors:\n    - upstream: x:1\n      listen: 0.0.0.0:80\n",
	  "4: ambassador 1: listen \"0.0.0.0:80\" is not a loopback address" },
	{ CONFIG, "proxy:\n  ambassadors:\n    - listen: \"[::ffff:10.0.0.1]:80\"\n      upstream: x:1\n",
	  "3: ambassador 1: listen \"[::ffff:10.0.0.1]:80\" is not a loopback address" },
	{ CONFIG, "proxy:\n  ambassadors:\n"
		  "    - {listen: 127.0.0.1:80, upstream: \"a:1\"}\n"
		  "    - {listen: 127.0.0.1:80, upstream: \"b:1\"}\n",
	  "4: ambassador 2: listen \"127.0.0.1:80\" already used by ambassador 1" },
	{ CONFIG, "proxy:\n  ambassadors:\n    - listen: 127.0.0.1:15001\n      upstream: x:1\n",
	  "3: ambassador 1: listen \"127.0.0.1:15001\" is capture.outbound's address" },
	{ CONFIG, "proxy:\n  ambassadors:\n    - listen: 127.0.0.1:80\n      upstream: ::1:80\n",
	  "4: ambassador 1: bad upstream \"::1:80\" (an IPv6 address needs brackets: [addr]:port)" },
	{ CONFIG, "proxy:\n  ambassadors:\n    - listen: 127.0.0.1:80\n      upstream: redis\n",
	  "4: ambassador 1: bad upstream \"redis\" (not host:port)" },
	{ CONFIG, "proxy:\n  ambassadors:\n    - listen: 127.0.0.1:80\n      upstream: \"[db::zz]:80\"\n",
	  "4: ambassador 1: bad upstream \"[db::zz]:80\" (not an IPv6 address in the brackets)" },
	{ CONFIG, "pin_root: sidelane\n", "1: pin_root: \"sidelane\" is not an absolute path" },
	/* policy section of a config file: same rules, longer paths */
	{ CONFIG, "policy:\n  default: block\n",
	  "2: policy.default: unknown action \"block\" (allow or deny)" },
	{ CONFIG, "policy:\n  rules:\n    - {id: 1, action: allow, cidr: 10.0.0.0/33}\n",
	  "3: rule 1: bad cidr \"10.0.0.0/33\" (prefix length over 32)" },
	/* policy files */
	{ POLICY, "", "empty policy (write \"rules: []\" for none)" },
	{ POLICY, "default: deny\n", "1: missing required key \"rules\"" },
	{ POLICY, "rules:\n  - id: 1\n    action: deny\n    cidr: 1.2.3.4\n"
		  "  - id: 2\n    action: deny\n    cidr: 1.2.3.4\n"
		  "  - id: 3\n    action: deny\n    cidr: 10.0.0.0/33\n",
	  "10: rule 3: bad cidr \"10.0.0.0/33\" (prefix length over 32)" },
	{ POLICY, "rules:\n  - id: 1\n    action: deny\n    cidr: fd00::/129\n",
	  "4: rule 1: bad cidr \"fd00::/129\" (prefix length over 128)" },
	{ POLICY, "rules:\n  - id: 1\n    action: deny\n    cidr: 10.0.0.0.0/8\n",
	  "4: rule 1: bad cidr \"10.0.0.0.0/8\" (not an IPv4 or IPv6 address)" },
	{ POLICY, "rules:\n  - {id: 10, action: deny, cidr: 10.0.0.0/8}\n"
		  "  - {id: 10, action: allow, cidr: 10.0.0.0/16}\n",
	  "3: rule 2: id 10 already used by rule 1 (line 2)" },
	{ POLICY, "rules:\n  - id: 10\n    action: drop\n    cidr: 10.0.0.0/8\n",
	  "3: rule 1: unknown action \"drop\" (allow or deny)" },
	{ POLICY, "rules:\n  - id: 0\n    action: deny\n    cidr: 10.0.0.0/8\n",
	  "2: rule 1: bad id \"0\" (a number 1..4294967295)" },
	{ POLICY, "rules:\n  - id: 10\n    action: deny\n",
	  "2: rule 1: missing required key \"cidr\"" },
	{ POLICY, "rules:\n  - {}\n", "2: rule 1: missing required key \"id\"" },
	{ POLICY, "rules:\n  - id: 10\n    action: deny\n    cidr: 10.0.0.0/8\n"
		  "    ports: [\"80\", \"90-80\"]\n",
	  "5: rule 1: bad port range \"90-80\" (range start above its end)" },
	{ POLICY, "rules:\n  - id: 10\n    action: deny\n    cidr: 10.0.0.0/8\n"
		  "    ports: [1, 2, 3, 4, 5, 6, 7, 8, 9]\n",
	  "5: rule 1: ports: more than 8 entries" },
	{ POLICY, "rules:\n  - id: 10\n    action: deny\n    cidr: 10.0.0.0/8\n"
		  "    port: 80\n",
	  "5: rule 1: unknown key \"port\"" },
	{ POLICY, "rules:\n  - id: 10\n    action: deny\n    cidr: 10.0.0.0/8\n"
		  "capture: {}\n",
	  "5: unknown key \"capture\"" },
	/* tls and inbound */
	{ CONFIG, "tls:\n  cert: /a.pem\n  ca: /ca.pem\n",
	  "1: tls: cert, key and ca go together (key missing)" },
	{ CONFIG, "tls:\n  min_version: \"1.1\"\n",
	  "2: tls.min_version: \"1.1\" is not \"1.2\" or \"1.3\"" },
	{ CONFIG, "tls:\n  trust_domain: Example.org\n",
	  "2: tls.trust_domain: \"Example.org\" is not a trust domain" },
	{ CONFIG, "tls:\n  handshake_timeout_ms: 0\n",
	  "2: tls.handshake_timeout_ms: 0 out of range 1..600000" },
	{ CONFIG, "tls:\n  cert: /a\n  key: /k\n  ca: /c\n  mesh:\n"
		  "    - cidr: 10.0.0.0/8\n      identities:\n"
		  "        - spiffe://td/ns/b/*\n        - spiffe://td/ns/../x\n",
	  "9: mesh 1: bad identity \"spiffe://td/ns/../x\"" },
	{ CONFIG, "tls:\n  mesh:\n    - cidr: 10.0.0.0/8\n",
	  "2: tls.mesh: mesh destinations need tls.cert" },
	{ CONFIG, "inbound:\n  enabled: true\n  mode: listener\n",
	  "1: inbound: mode listener needs app_port" },
	{ CONFIG, "inbound:\n  enabled: true\n",
	  "1: inbound: no ports to steer" },
	{ CONFIG, "inbound:\n  mode: iptables\n",
	  "2: inbound.mode: \"iptables\" is not auto, sk_lookup or listener" },
	{ CONFIG, "inbound:\n  listen: \"[::1]:x\"\n",
	  "2: inbound: bad listen \"[::1]:x\" (not a port number)" },
	{ CONFIG, "inbound:\n  enabled: true\n  ports: [\"8080\"]\n"
		  "  identities:\n    - id: \"*\"\n      action: allow\n",
	  "4: inbound.identities: identity rules need tls" },
	{ CONFIG, "tls:\n  cert: /a\n  key: /k\n  ca: /c\ninbound:\n"
		  "  identities:\n    - id: spiffe://td/a\n      action: permit\n",
	  "8: identity rule 1: unknown action \"permit\" (allow or deny)" },
	/* proxy.external: what needs sidelane's own proxy */
	{ CONFIG, "proxy:\n  external: true\n  ambassadors:\n"
		  "    - listen: \"127.0.0.1:7000\"\n      upstream: \"db:5432\"\n",
	  "3: proxy.ambassadors: ambassadors are listeners of sidelane's own proxy" },
	{ CONFIG, "proxy:\n  external: true\ntls:\n  cert: /a\n  key: /k\n  ca: /c\n",
	  "3: tls: mutual TLS is done by sidelane's own proxy" },
	{ CONFIG, "proxy:\n  external: true\ninbound:\n  enabled: true\n"
		  "  mode: listener\n  app_port: 8080\n",
	  "5: inbound.mode: listener mode with proxy.external" },
	{ CONFIG, "proxy:\n  external: maybe\n",
	  "2: proxy.external: \"maybe\" is not" },
};

/* Each mistake: -EINVAL, "file:line: reason", and the output untouched. */
static void bad_files_rejected_with_line(void **state)
{
	struct sl_config *cfg = new_cfg(), *before = new_cfg();
	char err[SL_CFG_ERR_LEN], want[SL_CFG_ERR_LEN], path[64];
	size_t i;

	(void)state;
	memset(cfg, 0xa5, sizeof(*cfg));
	memcpy(before, cfg, sizeof(*cfg));
	for (i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *c = &bad_cases[i];
		int ret = load_text(c->text, c->kind, cfg, err, path);

		snprintf(want, sizeof(want), "%s:%s%s", path,
			 c->want[0] >= '0' && c->want[0] <= '9' ? "" : " ",
			 c->want);
		if (ret != -EINVAL || strncmp(err, want, strlen(want)))
			fail_msg("case %zu:\n%s\ngot %d \"%s\"\nwant -22 \"%s...\"",
				 i, c->text, ret, err, want);
		if (memcmp(cfg, before, sizeof(*cfg)))
			fail_msg("case %zu: output changed on error", i);
	}
	free(before);
	free(cfg);
}

static void missing_file_is_errno(void **state)
{
	struct sl_config *cfg = new_cfg();
	char err[SL_CFG_ERR_LEN];

	(void)state;
	assert_int_equal(sl_config_load("/nonexistent/sidelane.yaml", cfg, err,
					sizeof(err)),
			 -ENOENT);
	assert_string_equal(err,
			    "/nonexistent/sidelane.yaml: No such file or directory");
	assert_int_equal(sl_policy_load("/nonexistent/p.yaml", &cfg->policy, err,
					sizeof(err)),
			 -ENOENT);
	free(cfg);
}

/* SL_CFG_MAX_RULES rules load (and quickly); one more is refused. */
static void policy_size_limit(void **state)
{
	size_t cap = (SL_CFG_MAX_RULES + 1) * 96 + 16, n;
	struct sl_config *cfg = new_cfg();
	char err[SL_CFG_ERR_LEN], want[SL_CFG_ERR_LEN], path[64];
	char *text = malloc(cap);
	struct timespec t0, t1;
	unsigned int i;
	int ret;

	(void)state;
	assert_non_null(text);
	n = (size_t)snprintf(text, cap, "rules:\n");
	for (i = 1; i <= SL_CFG_MAX_RULES; i++)
		n += (size_t)snprintf(text + n, cap - n,
				      "  - {id: %u, action: deny, cidr: 10.%u.%u.0/24, "
				      "ports: [\"1-100\"]}\n",
				      i, i / 256, i % 256);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ret = load_text(text, POLICY, cfg, err, path);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (ret)
		fail_msg("%s", err);
	assert_int_equal(cfg->policy.n_rules, SL_CFG_MAX_RULES);
	assert_int_equal(cfg->policy.rules[SL_CFG_MAX_RULES - 1].line,
			 SL_CFG_MAX_RULES + 1);
	assert_true(t1.tv_sec - t0.tv_sec < 2);

	snprintf(text + n, cap - n,
		 "  - {id: 99999, action: deny, cidr: 10.255.255.0/24}\n");
	ret = load_text(text, POLICY, cfg, err, path);
	snprintf(want, sizeof(want), "%s:1: rules: more than %u entries", path,
		 SL_CFG_MAX_RULES);
	assert_int_equal(ret, -EINVAL);
	assert_string_equal(err, want);
	free(text);
	free(cfg);
}

static void cidr_parser(void **state)
{
	static const char *const bad[] = {
		"", "/8", "10.0.0.0/", "10.0.0.0/33", "10.0.0.0/-1",
		"10.0.0.0/ 8", "10.0.0/8", "fd00::/129", "10.0.0.1/8",
		"fd00::1/64", "x", "10.0.0.0/8/8", "::ffff:10.0.0.1/104",
		"0.0.0.0/0 ", "ffff::/0",
	};
	struct sl_cidr c;
	size_t i;

	(void)state;
	assert_int_equal(sl_cidr_parse("10.0.0.0/8", &c, NULL), 0);
	assert_cidr(&c, AF_INET, "10.0.0.0", 8);
	assert_int_equal(sl_cidr_parse("192.0.2.7", &c, NULL), 0);
	assert_cidr(&c, AF_INET, "192.0.2.7", 32);
	assert_int_equal(sl_cidr_parse("0.0.0.0/0", &c, NULL), 0);
	assert_cidr(&c, AF_INET, "0.0.0.0", 0);
	assert_int_equal(sl_cidr_parse("fd00::/8", &c, NULL), 0);
	assert_cidr(&c, AF_INET6, "fd00::", 8);
	assert_int_equal(sl_cidr_parse("2001:db8::1", &c, NULL), 0);
	assert_cidr(&c, AF_INET6, "2001:db8::1", 128);
	assert_int_equal(sl_cidr_parse("::/0", &c, NULL), 0);
	assert_cidr(&c, AF_INET6, "::", 0);
	/* One spelling per prefix: v4-mapped /96.. is the IPv4 prefix. */
	assert_int_equal(sl_cidr_parse("::ffff:10.0.0.0/104", &c, NULL), 0);
	assert_cidr(&c, AF_INET, "10.0.0.0", 8);
	assert_int_equal(sl_cidr_parse("::ffff:0:0/96", &c, NULL), 0);
	assert_cidr(&c, AF_INET, "0.0.0.0", 0);
	assert_int_equal(sl_cidr_parse("::ffff:192.0.2.7", &c, NULL), 0);
	assert_cidr(&c, AF_INET, "192.0.2.7", 32);
	/* Shorter than /96 reaches outside IPv4: stays IPv6. */
	assert_int_equal(sl_cidr_parse("::/80", &c, NULL), 0);
	assert_cidr(&c, AF_INET6, "::", 80);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&c, 0x5a, sizeof(c));
		if (sl_cidr_parse(bad[i], &c, NULL) != -EINVAL)
			fail_msg("accepted \"%s\"", bad[i]);
		assert_int_equal(c.prefixlen, 0x5a); /* untouched */
	}
}

static void port_range_parser(void **state)
{
	static const struct {
		const char *in;
		int err;
	} bad[] = {
		{ "", -EINVAL },      { "0", -ERANGE },	    { "65536", -ERANGE },
		{ "-80", -EINVAL },   { "80-", -EINVAL },   { "90-80", -EINVAL },
		{ "80 ", -EINVAL },   { "1-2-3", -EINVAL }, { "0x50", -EINVAL },
		{ "1-65536", -ERANGE }, { "+80", -EINVAL },
	};
	struct sl_port_range r;
	size_t i;

	(void)state;
	assert_int_equal(sl_port_range_parse("80", &r, NULL), 0);
	assert_int_equal(r.lo, 80);
	assert_int_equal(r.hi, 80);
	assert_int_equal(sl_port_range_parse("1-65535", &r, NULL), 0);
	assert_int_equal(r.lo, 1);
	assert_int_equal(r.hi, 65535);
	assert_int_equal(sl_port_range_parse("8080-8080", &r, NULL), 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (sl_port_range_parse(bad[i].in, &r, NULL) != bad[i].err)
			fail_msg("\"%s\": want %d", bad[i].in, bad[i].err);
}

static void endpoint_parser(void **state)
{
	static const char *const bad[] = {
		"", "127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536",
		"::1:80", "[::1]", "[::1]80", "[127.0.0.1]:80", "localhost:80",
		":80", "[]:80", "127.0.0.1:80x", "[fe80::1%lo]:80",
	};
	struct sl_endpoint ep;
	size_t i;

	(void)state;
	assert_int_equal(sl_endpoint_parse("127.0.0.1:15001", &ep, NULL), 0);
	assert_endpoint(&ep, AF_INET, "127.0.0.1", 15001);
	assert_int_equal(sl_endpoint_parse("[::1]:15001", &ep, NULL), 0);
	assert_endpoint(&ep, AF_INET6, "::1", 15001);
	assert_int_equal(sl_endpoint_parse("0.0.0.0:1", &ep, NULL), 0);
	assert_endpoint(&ep, AF_INET, "0.0.0.0", 1);
	/* v4-mapped: the IPv4 socket address it spells. */
	assert_int_equal(sl_endpoint_parse("[::ffff:127.0.0.2]:80", &ep, NULL), 0);
	assert_endpoint(&ep, AF_INET, "127.0.0.2", 80);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (sl_endpoint_parse(bad[i], &ep, NULL) != -EINVAL)
			fail_msg("accepted \"%s\"", bad[i]);
}

/* A reload notices a change of any byte of the config but its version
 * and load time: sl_config_diff's parts cover the struct (a field added
 * out of their order fails here).
 */
static void diff_sees_every_field(void **state)
{
	struct sl_config *a = new_cfg(), *b = new_cfg();
	char err[SL_CFG_ERR_LEN], path[64];
	size_t o, skip, missed = 0, first = 0;
	unsigned int changes;
	int ret;

	(void)state;
	if (load_text("", CONFIG, a, err, path))
		fail_msg("%s", err);
	skip = offsetof(struct sl_config, loaded_ms) + sizeof(a->loaded_ms);
	assert_int_equal(offsetof(struct sl_config, version), 0);
	for (o = skip; o < sizeof(*a); o++) {
		memcpy(b, a, sizeof(*a));
		((unsigned char *)b)[o] ^= 1;
		ret = sl_config_diff(a, b, NULL, &changes, err, sizeof(err));
		if (!ret && !changes && !missed++)
			first = o;
	}
	if (missed)
		fail_msg("%zu byte(s) of struct sl_config in no part of "
			 "sl_config_diff, the first at offset %zu", missed, first);
	free(a);
	free(b);
}

/* Load text from a file kept for sl_config_diff's line lookup. */
static void load_kept(const char *text, struct sl_config *cfg, char path[64])
{
	char err[SL_CFG_ERR_LEN];
	int fd;

	snprintf(path, 64, "/tmp/sidelane-test-XXXXXX.yaml");
	fd = mkstemps(path, 5);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	if (sl_config_load(path, cfg, err, sizeof(err))) {
		unlink(path);
		fail_msg("%s", err);
	}
}

/* What a reload from the second text would do with the first running. */
static int diff_texts(const char *run, const char *next, unsigned int *changes,
		      char *err)
{
	struct sl_config *a = new_cfg(), *b = new_cfg();
	char pa[64], pb[64];
	int ret;

	load_kept(run, a, pa);
	load_kept(next, b, pb);
	ret = sl_config_diff(a, b, pb, changes, err, SL_CFG_ERR_LEN);
	if (ret) {
		/* the message names the file: made relative to it */
		char tmp[SL_CFG_ERR_LEN];

		snprintf(tmp, sizeof(tmp), "%s", err);
		snprintf(err, SL_CFG_ERR_LEN, "%s",
			 strncmp(tmp, pb, strlen(pb)) ? tmp : tmp + strlen(pb));
	}
	unlink(pa);
	unlink(pb);
	free(a);
	free(b);
	return ret;
}

static void diff_sorts_changes(void **state)
{
	static const char tls[] = "tls:\n  cert: /c.pem\n  key: /c.key\n"
				  "  ca: /ca.pem\n";
	static const struct {
		const char *run, *next;
		unsigned int changes;
		const char *refused; /* ":line: key" of the refusal */
	} cases[] = {
		{ "", "", 0, NULL },
		{ "", "# a comment only\n", 0, NULL },
		{ "", "proxy:\n  idle_timeout_ms: 1000\n", SL_CFG_CH_PROXY, NULL },
		{ "", "capture:\n  exclude_cidrs: [10.0.0.0/8]\n",
		  SL_CFG_CH_CAPTURE, NULL },
		{ "", "policy:\n  default: deny\n", SL_CFG_CH_POLICY, NULL },
		{ "", "inbound:\n  ports: [\"8080\"]\n  fail_open: true\n",
		  SL_CFG_CH_INBOUND, NULL },
		{ "", "inbound:\n  identities:\n    - { id: \"*\", action: deny }\n",
		  SL_CFG_CH_PROXY, NULL },
		{ tls, "tls:\n  cert: /d.pem\n  key: /d.key\n  ca: /ca.pem\n",
		  SL_CFG_CH_TLS_FILES, NULL },
		{ tls, "tls:\n  cert: /c.pem\n  key: /c.key\n  ca: /ca.pem\n"
		       "  mesh:\n    - { cidr: 10.0.0.0/8 }\n",
		  SL_CFG_CH_PROXY, NULL },
		{ "", "admin:\n  drain_timeout_ms: 10\npolicy:\n  default: deny\n",
		  SL_CFG_CH_PROXY | SL_CFG_CH_POLICY, NULL },
		{ "", "# x\nproxy:\n  workers: 3\n", 0, ":3: proxy.workers: " },
		{ "", "limits:\n  max_conns: 1024\n", 0, ":2: limits.max_conns: " },
		{ "", "pin_root: /sys/fs/bpf/other\n", 0, ":1: pin_root: " },
		{ "", "fastpath:\n  app_sockets: send\n", 0, ":1: fastpath: " },
		{ "", "capture:\n  outbound: \"127.0.0.1:15009\"\n", 0,
		  ":2: capture.outbound: " },
		{ "", "proxy:\n  ambassadors:\n    - { listen: \"127.0.0.1:9000\", "
		      "upstream: \"10.0.0.1:80\" }\n",
		  SL_CFG_CH_PROXY, NULL },
		{ "", "proxy:\n  max_conns: 100\n", SL_CFG_CH_PROXY, NULL },
		{ "", "proxy:\n  buffer_bytes: 4096\n", SL_CFG_CH_PROXY, NULL },
		{ "", "proxy:\n  splice: false\n", 0, ":2: proxy.splice: " },
		{ "", tls, 0, ":1: tls: " },
		{ tls, "tls:\n  cert: /c.pem\n  key: /c.key\n  ca: /ca.pem\n"
		       "  alpn: h2\n",
		  0, ":5: tls.alpn: " },
		{ "", "accounting:\n  access_log: /tmp/x.log\n", SL_CFG_CH_ALOG,
		  NULL },
		{ "accounting:\n  access_log: /tmp/x.log\n",
		  "accounting:\n  access_log: /tmp/y.log\n  keep: 2\n",
		  SL_CFG_CH_ALOG, NULL },
	};
	char err[SL_CFG_ERR_LEN];
	unsigned int changes, i;
	int ret;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = '\0';
		ret = diff_texts(cases[i].run, cases[i].next, &changes, err);
		if (cases[i].refused) {
			if (ret != -EBUSY || strncmp(err, cases[i].refused,
						     strlen(cases[i].refused)) ||
			    !strstr(err, "restart to apply it"))
				fail_msg("case %u: %d \"%s\", want -EBUSY \"%s...\"",
					 i, ret, err, cases[i].refused);
		} else if (ret || changes != cases[i].changes) {
			fail_msg("case %u: %d \"%s\" changes %#x, want %#x", i,
				 ret, err, changes, cases[i].changes);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(default_loads),
		cmocka_unit_test(default_documents_every_key),
		cmocka_unit_test(full_file_loads),
		cmocka_unit_test(partial_file_keeps_defaults),
		cmocka_unit_test(policy_file_loads),
		cmocka_unit_test(bad_files_rejected_with_line),
		cmocka_unit_test(missing_file_is_errno),
		cmocka_unit_test(policy_size_limit),
		cmocka_unit_test(cidr_parser),
		cmocka_unit_test(port_range_parser),
		cmocka_unit_test(endpoint_parser),
		cmocka_unit_test(tls_and_inbound_load),
		cmocka_unit_test(cidr_contains_edges),
		cmocka_unit_test(diff_sees_every_field),
		cmocka_unit_test(diff_sorts_changes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
