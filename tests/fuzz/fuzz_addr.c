// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The parsers of numbers, CIDRs, ports and endpoints (lib/addr.c,
 * lib/util.c, config/values.c) that the configuration, the policy files
 * and the command line go through. The first byte picks the parser, the
 * rest is its text; what one accepts must print back to itself.
 */
#include <arpa/inet.h>
#include <errno.h>
#include "fuzz.h"
#include "lib/addr.h"
#include "lib/util.h"
#include "config/values.h"

#define MAX_PORTS 16

static void cidr(const char *s)
{
	struct sl_cidr c, c2;
	const char *why = NULL;
	char text[INET6_ADDRSTRLEN + 8], ip[INET6_ADDRSTRLEN];

	if (sl_cidr_parse(s, &c, &why)) {
		if (!why)
			abort(); /* every refusal says why */
		return;
	}
	if ((c.family != AF_INET && c.family != AF_INET6) ||
	    c.prefixlen > (c.family == AF_INET ? 32 : 128) ||
	    !inet_ntop(c.family, c.addr, ip, sizeof(ip)))
		abort();
	snprintf(text, sizeof(text), "%s/%u", ip, c.prefixlen);
	if (sl_cidr_parse(text, &c2, &why) || memcmp(&c, &c2, sizeof(c)) ||
	    !sl_cidr_contains(&c, c.family, c.addr))
		abort();
}

static void endpoint(const char *s)
{
	struct sl_endpoint ep, ep2;
	const char *why = NULL;
	char text[INET6_ADDRSTRLEN + 16], host[256];
	uint16_t port;

	if (!sl_endpoint_parse(s, &ep, &why)) {
		sl_sockaddr_str(&ep.addr, text, sizeof(text));
		if (sl_endpoint_parse(text, &ep2, &why) ||
		    !sl_endpoint_equal(&ep, &ep2))
			abort();
	} else if (!why) {
		abort();
	}
	why = NULL;
	if (!sl_hostport_split(s, host, sizeof(host), &port, &why)) {
		if (!port || strlen(host) >= sizeof(host))
			abort();
	} else if (!why) {
		abort();
	}
}

static void ports(const char *s)
{
	struct sl_port_range r;
	uint16_t p[MAX_PORTS];
	const char *why = NULL;
	size_t n, i, j;

	if (!sl_port_parse(s, &p[0], &why) && !p[0])
		abort();
	if (!sl_port_range_parse(s, &r, &why) && (!r.lo || r.lo > r.hi))
		abort();
	if (sl_parse_ports(s, p, MAX_PORTS, &n, &why))
		return;
	if (n > MAX_PORTS)
		abort();
	for (i = 0; i < n; i++)
		for (j = 0; j < i; j++)
			if (!p[i] || p[i] == p[j])
				abort();
}

static void number(const char *s, uint8_t sel)
{
	uint64_t min = sel & 1 ? 1 : 0, max = sel & 2 ? 65535 : UINT64_MAX, v;

	if (!sl_parse_u64(s, min, max, &v) && (v < min || v > max))
		abort();
	if (!parse_num(s, min, max, sel & 4, &v) && (v < min || v > max))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;

	if (!size)
		return 0;
	s = fuzz_str(data + 1, size - 1);
	switch (data[0] % 4) {
	case 0:
		cidr(s);
		break;
	case 1:
		endpoint(s);
		break;
	case 2:
		ports(s);
		break;
	default:
		number(s, data[0] >> 2);
	}
	free(s);
	return 0;
}
