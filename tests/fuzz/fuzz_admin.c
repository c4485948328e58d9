// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The admin endpoint (report/admin.c on libmicrohttpd) as a client on the
 * host sees it: the fuzzed bytes are sent raw on a TCP connection to a real
 * sl_admin on loopback (request line, headers, body, whatever they are).
 * Whatever came back is an HTTP response, and the endpoint still answers
 * GET /healthz after every 256 inputs and at the end.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include "fuzz.h"
#include "report/admin.h"
#include "lib/addr.h"

#define IO_MS 300 /* loopback: an answer comes within a few ms or not at all */
#define REST_MS 5
/* The health check's answer may wait for the endpoint's thread much
 * longer on a loaded machine (a niced long run beside a test suite): its
 * absence is a finding only after this.
 */
#define HEALTH_MS 10000

static struct sl_endpoint ep;
static struct sl_admin *adm;

/* poll() for ev, again after a signal: libFuzzer's SIGALRM (its -timeout
 * watch) interrupts a wait every second. 1 when ready, else 0.
 */
static int wait_for(int fd, short ev, int ms)
{
	struct pollfd p = { .fd = fd, .events = ev };
	int r;

	while ((r = poll(&p, 1, ms)) < 0 && errno == EINTR)
		;
	return r == 1;
}

/* A connect() interrupted by that SIGALRM (it blocks while the endpoint's
 * backlog is full and the SYN waits for its retransmit) goes on in the
 * kernel: wait for it instead of failing.
 */
static int dial(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), err = 0;
	socklen_t elen = sizeof(err);

	if (fd < 0) {
		err = errno;
	} else if (connect(fd, (struct sockaddr *)&ep.addr, ep.addrlen)) {
		err = errno;
		if (err == EINTR) {
			err = ETIMEDOUT;
			if (wait_for(fd, POLLOUT, HEALTH_MS) &&
			    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen))
				err = errno;
		}
	}
	if (err) {
		/* the harness's own failure, not a finding: say which, on
		 * stdout too (-close_fd_mask=2 closes stderr)
		 */
		fprintf(stderr, "fuzz_admin: %s: %s\n", fd < 0 ? "socket" : "connect",
			strerror(err));
		printf("fuzz_admin: %s: %s\n", fd < 0 ? "socket" : "connect",
		       strerror(err));
		fflush(stdout);
		abort();
	}
	return fd;
}

/* Has buf (got bytes) one whole response: its head and Content-Length
 * bytes of body (none for a HEAD request)?
 */
static bool whole(const char *buf, size_t got, bool head_only)
{
	const char *end = memmem(buf, got, "\r\n\r\n", 4), *cl;
	size_t body;

	if (!end)
		return false;
	if (head_only)
		return true;
	cl = strcasestr(buf, "\r\nContent-Length:");
	if (!cl || cl > end)
		return false;
	body = strtoul(cl + 17, NULL, 10);
	return got >= (size_t)(end + 4 - buf) + body;
}

/* Send req, then read the answer (up to len - 1 bytes) into buf: up to
 * first_ms for its first byte when req holds a blank line (a whole
 * request head), REST_MS otherwise, then until REST_MS of silence. The
 * connection ends with an RST: libmicrohttpd holds a half-closed
 * keep-alive or a half-sent request until its idle timeout, an RST frees
 * it at once.
 * Bytes read.
 */
static size_t exchange(const void *req, size_t n, char *buf, size_t len,
		       int first_ms)
{
	struct linger rst = { .l_onoff = 1, .l_linger = 0 };
	int fd = dial(), wait = REST_MS;
	size_t got = 0;
	ssize_t r;

	if (memmem(req, n, "\r\n\r\n", 4) || memmem(req, n, "\n\n", 2))
		wait = first_ms;
	/* a peer that closes early makes send() fail: that is an answer too */
	if (n)
		send(fd, req, n, MSG_NOSIGNAL);
	while (got < len - 1 && wait_for(fd, POLLIN, wait)) {
		r = recv(fd, buf + got, len - 1 - got, 0);
		if (r <= 0)
			break;
		got += r;
		wait = REST_MS;
		buf[got] = '\0';
		if (whole(buf, got, n >= 5 && !memcmp(req, "HEAD ", 5)))
			break;
	}
	buf[got] = '\0';
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &rst, sizeof(rst));
	close(fd);
	return got;
}

static void healthz(void)
{
	static const char req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
	char buf[512];

	exchange(req, sizeof(req) - 1, buf, sizeof(buf), HEALTH_MS);
	if (strncmp(buf, "HTTP/1.1 200", 12)) {
		printf("fuzz_admin: /healthz answered \"%.60s\"\n", buf);
		fflush(stdout);
		abort();
	}
}

static void stop(void)
{
	healthz();
	sl_admin_stop(adm);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct sockaddr_in *in = (struct sockaddr_in *)&ep.addr;
	struct sl_admin_opts o = { .listen = &ep,
				   .pin_root = "/nonexistent/sidelane-fuzz" };
	socklen_t alen = sizeof(*in);
	int fd, i;

	(void)argc;
	(void)argv;
	signal(SIGPIPE, SIG_IGN);
	/* a free loopback port: bound, read back, released */
	in->sin_family = AF_INET;
	in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ep.addrlen = sizeof(*in);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)in, sizeof(*in)) ||
	    getsockname(fd, (struct sockaddr *)in, &alen))
		abort();
	close(fd);
	for (i = 0; sl_admin_start(&o, &adm) && i < 5; i++)
		usleep(100 * 1000);
	if (!adm)
		abort();
	sl_admin_set_ready(adm, true);
	atexit(stop);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static unsigned int runs;
	char buf[64 * 1024];
	size_t got = exchange(data, size, buf, sizeof(buf), IO_MS);

	if (got && strncmp(buf, "HTTP/1.", 7))
		abort();
	if (!(++runs % 256))
		healthz();
	return 0;
}
