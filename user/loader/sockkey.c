// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* A connected socket's sl_sock_key as bpf/sockkey.bpf.h builds it in the
 * kernel (see fastpath_user.h): how user space finds its sockets' entries.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include "sidelane.h"
#include "fastpath.h"
#include "loader/fastpath_user.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71 /* asm-generic; glibc 2.36 headers lack it */
#endif

/* ip in the key's form (IPv4 v4-mapped), port in host order */
static void key_addr(const struct sockaddr_storage *ss, __u8 ip[16],
		     __u16 *port)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)ss;

		memset(ip, 0, 10);
		ip[10] = 0xff;
		ip[11] = 0xff;
		memcpy(ip + 12, &in->sin_addr, 4);
		*port = ntohs(in->sin_port);
	} else {
		const struct sockaddr_in6 *in6 = (const void *)ss;

		memcpy(ip, &in6->sin6_addr, 16);
		*port = ntohs(in6->sin6_port);
	}
}

int sl_fd_sock_key(int fd, struct sl_sock_key *key)
{
	struct sockaddr_storage loc, rem;
	socklen_t ll = sizeof(loc), rl = sizeof(rem), cl = sizeof(__u64);

	memset(key, 0, sizeof(*key));
	if (getsockname(fd, (void *)&loc, &ll) ||
	    getpeername(fd, (void *)&rem, &rl) ||
	    getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, &key->netns_cookie,
		       &cl))
		return -errno;
	key_addr(&loc, key->local_ip, &key->local_port);
	key_addr(&rem, key->remote_ip, &key->remote_port);
	return 0;
}

void sl_sock_key_swap(const struct sl_sock_key *in, struct sl_sock_key *out)
{
	struct sl_sock_key k = *in;

	memcpy(k.local_ip, in->remote_ip, 16);
	memcpy(k.remote_ip, in->local_ip, 16);
	k.local_port = in->remote_port;
	k.remote_port = in->local_port;
	*out = k;
}
