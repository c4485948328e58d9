// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Addresses, ports and endpoints: parsed from the configuration, the policy
 * files and the command line, matched, and formatted for logs and JSON.
 * One spelling per prefix (::ffff:a.b.c.d/n is a.b.c.d/(n-96)), so a rule
 * cannot be dodged by writing an address the other way.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "lib/addr.h"
#include "lib/util.h"

int sl_port_parse(const char *s, uint16_t *port, const char **why)
{
	const char *unused;
	uint64_t v;
	int err = sl_parse_u64(s, 1, 65535, &v);

	if (!why)
		why = &unused;
	if (err == -ERANGE)
		*why = "port out of range 1..65535";
	else if (err)
		*why = "not a port number";
	else
		*port = (uint16_t)v;
	return err;
}

int sl_port_range_parse(const char *s, struct sl_port_range *out,
			const char **why)
{
	const char *unused;
	char buf[16];
	const char *dash = strchr(s, '-');
	struct sl_port_range r;
	int err;
	if (!why)
		why = &unused;

	if (!dash) {
		err = sl_port_parse(s, &r.lo, why);
		if (err)
			return err;
		r.hi = r.lo;
	} else {
		if ((size_t)(dash - s) >= sizeof(buf)) {
			*why = "not a port number";
			return -EINVAL;
		}
		memcpy(buf, s, dash - s);
		buf[dash - s] = '\0';
		err = sl_port_parse(buf, &r.lo, why);
		if (!err)
			err = sl_port_parse(dash + 1, &r.hi, why);
		if (err)
			return err;
		if (r.lo > r.hi) {
			*why = "range start above its end";
			return -EINVAL;
		}
	}
	*out = r;
	return 0;
}

static const uint8_t v4mapped_prefix[12] = { [10] = 0xff, [11] = 0xff };

int sl_cidr_parse(const char *s, struct sl_cidr *out, const char **why)
{
	const char *unused;
	const char *slash = strchr(s, '/');
	struct sl_cidr c = { 0 };
	char addr[INET6_ADDRSTRLEN];
	size_t alen = slash ? (size_t)(slash - s) : strlen(s);
	unsigned int max, i;
	uint64_t plen;
	if (!why)
		why = &unused;

	*why = "not an IPv4 or IPv6 address";
	if (alen >= sizeof(addr))
		return -EINVAL;
	memcpy(addr, s, alen);
	addr[alen] = '\0';
	if (inet_pton(AF_INET, addr, c.addr) == 1) {
		c.family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, addr, c.addr) == 1) {
		c.family = AF_INET6;
		max = 128;
	} else {
		return -EINVAL;
	}
	plen = max;
	if (slash) {
		int err = sl_parse_u64(slash + 1, 0, max, &plen);

		if (err == -ERANGE)
			*why = max == 32 ? "prefix length over 32" :
					   "prefix length over 128";
		else if (err)
			*why = "prefix length not a number";
		if (err)
			return -EINVAL;
	}
	c.prefixlen = (uint8_t)plen;
	/* ::ffff:a.b.c.d/n (n >= 96) is the IPv4 prefix a.b.c.d/(n-96): one
	 * spelling per prefix, so a rule cannot be dodged by writing it the
	 * other way. Shorter prefixes reach outside IPv4 and stay IPv6.
	 */
	if (c.family == AF_INET6 && c.prefixlen >= 96 &&
	    !memcmp(c.addr, v4mapped_prefix, sizeof(v4mapped_prefix))) {
		c.family = AF_INET;
		c.prefixlen -= 96;
		memmove(c.addr, c.addr + 12, 4);
		memset(c.addr + 4, 0, 12);
	}
	/* Bits after the prefix are refused rather than masked: 10.0.0.1/8 is
	 * more likely a typo for a /32 than a way to write 10.0.0.0/8.
	 */
	for (i = c.prefixlen; i < (c.family == AF_INET ? 32u : 128u); i++) {
		if (c.addr[i / 8] & (0x80 >> (i % 8))) {
			*why = "host bits set after the prefix length";
			return -EINVAL;
		}
	}
	*out = c;
	return 0;
}

int sl_cidr_contains(const struct sl_cidr *c, int family, const void *addr)
{
	const uint8_t *a = addr;
	unsigned int full = c->prefixlen / 8, rest = c->prefixlen % 8;

	if (family == AF_INET6 && !memcmp(a, v4mapped_prefix, 12)) {
		family = AF_INET;
		a += 12;
	}
	if (family != c->family)
		return 0;
	if (memcmp(a, c->addr, full))
		return 0;
	return !rest || !((a[full] ^ c->addr[full]) & (0xff00 >> rest));
}

int sl_ports_match(const struct sl_port_range *r, unsigned int n, uint16_t port)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		if (port >= r[i].lo && port <= r[i].hi)
			return 1;
	return !n;
}

int sl_hostport_split(const char *s, char *host, size_t hostlen,
		      uint16_t *port, const char **why)
{
	const char *unused;
	const char *colon, *hend, *h = s;
	size_t n;
	if (!why)
		why = &unused;

	*why = "not host:port";
	if (*s == '[') {
		h = s + 1;
		hend = strchr(h, ']');
		if (!hend || hend[1] != ':')
			return -EINVAL;
		colon = hend + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return -EINVAL;
		hend = colon;
		if (memchr(s, ':', colon - s)) {
			*why = "an IPv6 address needs brackets: [addr]:port";
			return -EINVAL;
		}
	}
	n = hend - h;
	if (!n || n >= hostlen) {
		*why = n ? "host name too long" : "no host";
		return -EINVAL;
	}
	if (sl_port_parse(colon + 1, port, why))
		return -EINVAL;
	memcpy(host, h, n);
	host[n] = '\0';
	if (*s == '[' && !strchr(host, ':')) {
		*why = "brackets are for IPv6 addresses only";
		return -EINVAL;
	}
	return 0;
}

int sl_endpoint_parse(const char *s, struct sl_endpoint *out,
		      const char **why)
{
	const char *unused;
	struct sl_endpoint ep = { 0 };
	struct sockaddr_in *sin = (struct sockaddr_in *)&ep.addr;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ep.addr;
	char host[INET6_ADDRSTRLEN];
	uint16_t port;
	if (!why)
		why = &unused;

	if (sl_hostport_split(s, host, sizeof(host), &port, why))
		return -EINVAL;
	if (*s != '[' && inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		ep.addrlen = sizeof(*sin);
	} else if (*s == '[' &&
		   inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		if (!memcmp(&sin6->sin6_addr, v4mapped_prefix,
			    sizeof(v4mapped_prefix))) {
			/* [::ffff:a.b.c.d]: the IPv4 socket address it spells. */
			struct in_addr a4;

			memcpy(&a4, sin6->sin6_addr.s6_addr + 12, 4);
			memset(&ep.addr, 0, sizeof(ep.addr));
			sin->sin_family = AF_INET;
			sin->sin_addr = a4;
			sin->sin_port = htons(port);
			ep.addrlen = sizeof(*sin);
		} else {
			sin6->sin6_family = AF_INET6;
			sin6->sin6_port = htons(port);
			ep.addrlen = sizeof(*sin6);
		}
	} else {
		*why = "not a numeric IPv4 or [IPv6] address";
		return -EINVAL;
	}
	*out = ep;
	return 0;
}

int sl_endpoint_is_loopback(const struct sl_endpoint *ep)
{
	uint8_t key[16];
	uint16_t port;

	return !sl_sockaddr_key(&ep->addr, key, &port) &&
	       sl_addr_is_loopback(key);
}

uint16_t sl_endpoint_port(const struct sl_endpoint *e)
{
	return ntohs(e->addr.ss_family == AF_INET ?
			     ((const struct sockaddr_in *)&e->addr)->sin_port :
			     ((const struct sockaddr_in6 *)&e->addr)->sin6_port);
}

int sl_endpoint_equal(const struct sl_endpoint *a,
		      const struct sl_endpoint *b)
{
	return a->addrlen == b->addrlen && !memcmp(&a->addr, &b->addr, a->addrlen);
}

void sl_addr_to_key(int family, const void *addr, uint8_t out[16])
{
	if (family == AF_INET) {
		memset(out, 0, 10);
		out[10] = 0xff;
		out[11] = 0xff;
		memcpy(out + 12, addr, 4);
	} else {
		memcpy(out, addr, 16);
	}
}

int sl_addr_is_v4mapped(const uint8_t ip[16])
{
	static const uint8_t prefix[12] = { [10] = 0xff, [11] = 0xff };

	return !memcmp(ip, prefix, sizeof(prefix));
}

int sl_addr_is_loopback(const uint8_t ip[16])
{
	static const uint8_t v6lo[16] = { [15] = 1 };

	if (sl_addr_is_v4mapped(ip))
		return ip[12] == 127;
	return !memcmp(ip, v6lo, 16);
}

const char *sl_addr_str(const uint8_t ip[16], char *buf, size_t len)
{
	if (sl_addr_is_v4mapped(ip))
		return inet_ntop(AF_INET, ip + 12, buf, len) ? buf : "?";
	return inet_ntop(AF_INET6, ip, buf, len) ? buf : "?";
}

const char *sl_sockaddr_str(const struct sockaddr_storage *ss, char *buf,
			    size_t len)
{
	const struct sockaddr_in *in = (const void *)ss;
	const struct sockaddr_in6 *in6 = (const void *)ss;
	char ip[INET6_ADDRSTRLEN];

	if (ss->ss_family == AF_INET &&
	    inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip)))
		snprintf(buf, len, "%s:%u", ip, ntohs(in->sin_port));
	else if (ss->ss_family == AF_INET6 &&
		 inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip)))
		snprintf(buf, len, "[%s]:%u", ip, ntohs(in6->sin6_port));
	else
		snprintf(buf, len, "?");
	return buf;
}

int sl_sockaddr_key(const struct sockaddr_storage *ss, uint8_t ip[16],
		    uint16_t *port)
{
	const struct sockaddr_in *in = (const void *)ss;
	const struct sockaddr_in6 *in6 = (const void *)ss;

	if (ss->ss_family == AF_INET) {
		sl_addr_to_key(AF_INET, &in->sin_addr, ip);
		*port = in->sin_port;
	} else if (ss->ss_family == AF_INET6) {
		sl_addr_to_key(AF_INET6, &in6->sin6_addr, ip);
		*port = in6->sin6_port;
	} else {
		return -EAFNOSUPPORT;
	}
	return 0;
}
