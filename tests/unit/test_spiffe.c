// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* SPIFFE IDs (user/tls/spiffe.c) and the identity rules the proxy judges
 * inbound clients by (sl_id_rules_decide, user/config/config.c): pure code,
 * no OpenSSL or sockets.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <string.h>
#include "config/config.h"
#include "tls/spiffe.h"

#define TD "sl.test"
#define ID(x) "spiffe://" TD "/ns/prod/sa/" x

static void spiffe_parse_valid_and_trust_domain(void **state)
{
	char td[SL_SPIFFE_TD_MAX + 1], small[4];

	(void)state;
	assert_int_equal(sl_spiffe_parse(ID("web"), td, sizeof(td)), 0);
	assert_string_equal(td, TD);
	/* every allowed character; no td wanted */
	assert_int_equal(sl_spiffe_parse("spiffe://a-b_c.d/Ns/X.y-z_0", NULL, 0),
			 0);
	assert_int_equal(sl_spiffe_parse(ID("web"), small, sizeof(small)),
			 -ENAMETOOLONG);
}

static void spiffe_parse_refuses(void **state)
{
	static const char *const bad[] = {
		"spiffe://SL.test/x",	 "spiffe://sl.test",
		"spiffe://sl.test/",	 "spiffe://sl.test//x",
		"spiffe://sl.test/x/",	 "spiffe://sl.test/./x",
		"spiffe://sl.test/x/..", "spiffe://sl.test:443/x",
		"spiffe://u@sl.test/x",	 "spiffe://sl.test/x?y=1",
		"spiffe://sl.test/x#f",	 "spiffe://sl.test/x%20y",
		"http://sl.test/x",	 "spiffe:///x",
		"SPIFFE://sl.test/x",	 "",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (sl_spiffe_parse(bad[i], NULL, 0) != -EINVAL)
			fail_msg("accepted '%s'", bad[i]);
	assert_int_equal(sl_spiffe_parse(NULL, NULL, 0), -EINVAL);
}

static void spiffe_match_exact_prefix_any(void **state)
{
	(void)state;
	assert_true(sl_spiffe_match(ID("web"), ID("web")));
	assert_false(sl_spiffe_match(ID("web"), ID("web2")));
	assert_true(sl_spiffe_match("spiffe://" TD "/ns/prod/*", ID("web")));
	/* the prefix ends on a segment boundary, and something follows */
	assert_false(sl_spiffe_match("spiffe://" TD "/ns/prod/*",
				     "spiffe://" TD "/ns/prod"));
	assert_false(sl_spiffe_match("spiffe://" TD "/ns/prod/*",
				     "spiffe://" TD "/ns/production/x"));
	assert_true(sl_spiffe_match("*", ID("web")));
	assert_false(sl_spiffe_match("*", NULL));
}

/* inbound.identities: the first rule whose ports and pattern match decides */
static void id_rules_first_match_ports_default(void **state)
{
	const struct sl_id_rule_cfg rules[] = {
		{ .id = ID("evil"), .action = SL_ACTION_DENY },
		{ .id = "spiffe://" TD "/ns/prod/*", .action = SL_ACTION_ALLOW,
		  .n_ports = 1, .ports = { { 8080, 8080 } } },
	};
	enum sl_action act;

	(void)state;
	act = SL_ACTION_DENY;
	assert_int_equal(sl_id_rules_decide(rules, 2, 8080, ID("web"), &act), 1);
	assert_int_equal(act, SL_ACTION_ALLOW);
	act = SL_ACTION_ALLOW;
	assert_int_equal(sl_id_rules_decide(rules, 2, 8080, ID("evil"), &act), 0);
	assert_int_equal(act, SL_ACTION_DENY);
	/* the allow rule holds for port 8080 only: elsewhere the default */
	act = SL_ACTION_DENY;
	assert_int_equal(sl_id_rules_decide(rules, 2, 9090, ID("web"), &act), -1);
	assert_int_equal(act, SL_ACTION_DENY);
	assert_int_equal(sl_id_rules_decide(rules, 2, 8080,
					    "spiffe://" TD "/ns/dev/sa/x", &act),
			 -1);
	/* no client certificate matches no rule */
	assert_int_equal(sl_id_rules_decide(rules, 2, 8080, NULL, &act), -1);
	assert_int_equal(act, SL_ACTION_DENY);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(spiffe_parse_valid_and_trust_domain),
		cmocka_unit_test(spiffe_parse_refuses),
		cmocka_unit_test(spiffe_match_exact_prefix_any),
		cmocka_unit_test(id_rules_first_match_ports_default),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
