/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Addresses, ports and endpoints (lib/addr.c): parse, match, format. The
 * parsers take an optional why (NULL: not wanted): what is wrong, for a
 * file:line message.
 */
#ifndef SL_ADDR_H
#define SL_ADDR_H

#include <stdint.h>
#include <sys/socket.h>

/* An address prefix: family AF_INET or AF_INET6, addr in network order
 * (4 or 16 bytes used), prefix length 0..32 / 0..128.
 */
struct sl_cidr {
	int family;
	uint8_t addr[16];
	uint8_t prefixlen;
};

struct sl_port_range {
	uint16_t lo, hi; /* inclusive, host order, 1..65535, lo <= hi */
};

struct sl_endpoint {
	struct sockaddr_storage addr; /* numeric address + port */
	socklen_t addrlen;
};

/* "a.b.c.d/n", "x::/n" (a bare address is a /32 or /128); bits set past
 * the prefix are refused. 0 or -EINVAL.
 */
int sl_cidr_parse(const char *s, struct sl_cidr *out, const char **why);
/* "80": a port 1..65535. 0 or -EINVAL/-ERANGE. */
int sl_port_parse(const char *s, uint16_t *port, const char **why);
/* "80" or "8000-8080". 0 or -EINVAL/-ERANGE. */
int sl_port_range_parse(const char *s, struct sl_port_range *out,
			const char **why);
/* "127.0.0.1:15001" or "[::1]:15001" (numeric; [::ffff:a.b.c.d] is the
 * IPv4 address). 0 or -EINVAL.
 */
int sl_endpoint_parse(const char *s, struct sl_endpoint *out,
		      const char **why);
/* "host:port" or "[v6]:port" split into host (no brackets) and port. 0 or
 * -EINVAL.
 */
int sl_hostport_split(const char *s, char *host, size_t hostlen,
		      uint16_t *port, const char **why);

/* Does prefix c hold the address (family AF_INET: 4 bytes, AF_INET6: 16;
 * a v4-mapped IPv6 address is matched as the IPv4 one)?
 */
int sl_cidr_contains(const struct sl_cidr *c, int family, const void *addr);
/* Is port (host order) in one of the n ranges? n == 0: every port. */
int sl_ports_match(const struct sl_port_range *r, unsigned int n,
		   uint16_t port);
int sl_endpoint_is_loopback(const struct sl_endpoint *ep);
int sl_endpoint_equal(const struct sl_endpoint *a,
		      const struct sl_endpoint *b);
/* The endpoint's port, host order. */
uint16_t sl_endpoint_port(const struct sl_endpoint *e);

/* Format 16 address bytes (v4-mapped shown as dotted quad) into buf. */
const char *sl_addr_str(const uint8_t ip[16], char *buf, size_t len);
/* Store an address of family AF_INET/AF_INET6 in the 16-byte key form. */
void sl_addr_to_key(int family, const void *addr, uint8_t out[16]);
/* ::ffff:0:0/96 */
int sl_addr_is_v4mapped(const uint8_t ip[16]);
/* 127.0.0.0/8, ::1, ::ffff:127.0.0.0/104: user-space twin of sl_is_loopback. */
int sl_addr_is_loopback(const uint8_t ip[16]);

/* "1.2.3.4:80" or "[::1]:80" ("?" for another family) into buf. */
const char *sl_sockaddr_str(const struct sockaddr_storage *ss, char *buf,
			    size_t len);
/* The address as 16 bytes (IPv4 v4-mapped) and the port (network order).
 * 0 or -EAFNOSUPPORT.
 */
int sl_sockaddr_key(const struct sockaddr_storage *ss, uint8_t ip[16],
		    uint16_t *port);

#endif /* SL_ADDR_H */
