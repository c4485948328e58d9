// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* `sidelane policy list|load|add|del`: the live L3/L4 rules. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "loader/policy_user.h"
#include "cli/cli.h"
#include "config/config.h"
#include "lib/log.h"
#include "lib/util.h"
#include "loader/capture_user.h"
#include "report/status.h"

int policy_rule_parse(char **argv, int argc, struct sl_rule *r)
{
	const char *why = NULL, *what = NULL;
	char *p, *save = NULL, buf[256];
	uint64_t id;

	memset(r, 0, sizeof(*r));
	if (argc < 3 || argc > 4)
		return -EINVAL;
	if (sl_parse_u64(argv[0], 1, UINT32_MAX, &id)) {
		what = argv[0];
		why = "a rule id is 1..4294967295";
		goto bad;
	}
	r->id = id;
	if (!strcmp(argv[1], "allow"))
		r->action = SL_ACTION_ALLOW;
	else if (!strcmp(argv[1], "deny"))
		r->action = SL_ACTION_DENY;
	else
		return -EINVAL;
	if (sl_cidr_parse(argv[2], &r->cidr, &why)) {
		what = argv[2];
		goto bad;
	}
	if (argc == 4) {
		snprintf(buf, sizeof(buf), "%s", argv[3]);
		for (p = strtok_r(buf, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
			what = p;
			why = "more than " SL_XSTR(SL_CFG_MAX_RULE_PORTS) " port ranges";
			if (r->n_ports == SL_CFG_MAX_RULE_PORTS ||
			    sl_port_range_parse(p, &r->ports[r->n_ports++], &why))
				goto bad;
		}
	}
	return 0;
bad:
	fprintf(stderr, "sidelane policy add: %s: %s\n", what, why);
	return -EINVAL;
}

static void policy_usage(void)
{
	fprintf(stderr,
		"Usage: sidelane policy list [--json]\n"
		"       sidelane policy load FILE\n"
		"       sidelane policy add ID allow|deny CIDR [PORTS]   e.g. add 10 deny 10.0.0.0/8 80,8000-8080\n"
		"       sidelane policy del ID\n"
		"       (each takes --pin-root DIR)\n");
}

/* `policy add|del` on the live rules read into pol. 0, or the exit status
 * (what is wrong said).
 */
static int policy_edit(const char *pin_root, const char *verb, char **args,
		       int nargs, struct sl_policy *pol)
{
	static struct sl_policy_hit hits[SL_CFG_MAX_RULES + 1];
	unsigned int n_hits, i;
	struct sl_rule r;
	int configured;
	uint64_t id;

	if (sl_policy_read(pin_root, pol, &configured, hits,
			   SL_CFG_MAX_RULES + 1, &n_hits))
		return 1;
	if (!strcmp(verb, "add")) {
		if (policy_rule_parse(args, nargs, &r)) {
			policy_usage();
			return EXIT_USAGE;
		}
		for (i = 0; i < pol->n_rules; i++)
			if (pol->rules[i].id == r.id) {
				fprintf(stderr, "sidelane policy add: rule %u exists\n",
					r.id);
				return EXIT_USAGE;
			}
		if (pol->n_rules == SL_CFG_MAX_RULES) {
			fprintf(stderr, "sidelane policy add: %u rules already\n",
				SL_CFG_MAX_RULES);
			return 1;
		}
		pol->rules[pol->n_rules++] = r;
		return 0;
	}
	if (nargs != 1 || sl_parse_u64(args[0], 1, UINT32_MAX, &id)) {
		policy_usage();
		return EXIT_USAGE;
	}
	for (i = 0; i < pol->n_rules && pol->rules[i].id != id; i++)
		;
	if (i == pol->n_rules) {
		fprintf(stderr, "sidelane policy del: no rule %llu\n",
			(unsigned long long)id);
		return EXIT_USAGE;
	}
	memmove(&pol->rules[i], &pol->rules[i + 1],
		(pol->n_rules - i - 1) * sizeof(pol->rules[0]));
	pol->n_rules--;
	return 0;
}

int cmd_policy(int argc, char **argv)
{
	static struct sl_policy pol;
	char err[SL_CFG_ERR_LEN] = "";
	const char *verb = argc > 1 ? argv[1] : "list";
	struct cli cli = {};
	int ret, lock, nargs;

	/* sidelane policy VERB [ARGS..] [--pin-root DIR] [--json] */
	if (argc > 1) {
		argc--;
		argv++;
	}
	if (parse_opts(argc, argv, &cli,
		       ALLOW(OPT_PIN_ROOT) | ALLOW(OPT_JSON) | SL_OPTS_ARGS))
		return EXIT_USAGE;
	nargs = argc - optind;
	if (need_root())
		return 1;
	if (!strcmp(verb, "list")) {
		ret = sl_policy_print(stdout, cli.pin_root, cli.json);
		printf(!ret && cli.json ? "\n" : "");
		return ret ? 1 : 0;
	}
	if (strcmp(verb, "load") && strcmp(verb, "add") && strcmp(verb, "del")) {
		policy_usage();
		return EXIT_USAGE;
	}
	/* The whole read-modify-apply holds the policy lock, so two
	 * concurrent `policy add` cannot lose each other's rule.
	 */
	lock = sl_policy_lock(cli.pin_root);
	if (lock < 0) {
		fprintf(stderr, "sidelane policy: %s: %s (is sidelane running?)\n",
			cli.pin_root, strerror(-lock));
		return EXIT_NOTFOUND;
	}
	if (!strcmp(verb, "load") && nargs != 1) {
		policy_usage();
		ret = EXIT_USAGE;
	} else if (!strcmp(verb, "load")) {
		/* A bad file stops here: the live rules are not touched. */
		ret = sl_policy_load(argv[optind], &pol, err, sizeof(err));
		if (ret)
			fprintf(stderr, "sidelane policy load: %s\n", err);
		ret = ret ? EXIT_USAGE : 0;
	} else {
		ret = policy_edit(cli.pin_root, verb, argv + optind, nargs, &pol);
	}
	if (!ret) {
		ret = sl_policy_apply_locked(cli.pin_root, &pol, err, sizeof(err));
		if (ret)
			fprintf(stderr, "sidelane policy %s: %s; the previous rules stay in force\n",
				verb, err[0] ? err : strerror(-ret));
		else
			pr_info("policy %s: %u rules in force\n", verb, pol.n_rules);
		ret = ret ? 1 : 0;
	}
	sl_policy_unlock(lock);
	return ret;
}
