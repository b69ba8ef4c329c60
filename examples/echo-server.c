/*
 * echo-server.c — a tiny TCP echo server: plain POSIX sockets, nothing
 * fastloop-specific.  Run it with the library preloaded and a preloaded
 * client's bytes travel over a Unix socket; run it without and it is an
 * ordinary TCP server.  The program cannot tell the difference, which is
 * the point.
 *
 *   usage: echo-server PORT
 *
 * Listens on 127.0.0.1:PORT (PORT 0: the kernel picks one), prints
 * "echo-server: listening on 127.0.0.1:PORT" once the socket listens, then
 * serves one connection after another: every byte read is written back
 * until the client closes its side.  Runs until killed.
 *
 * Build: cc -O2 -Wall -Wextra -o echo-server echo-server.c
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/*
 * Parse a TCP port number (0..65535).  Returns it, or -1 when the text is
 * not a whole number in range.
 */
static long parse_port(const char *s)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (end == s || *end || errno || v < 0 || v > 65535)
		return -1;
	return v;
}

/*
 * Open the listening socket on 127.0.0.1:port.  Returns the fd, or -1 with
 * a message on stderr.
 */
static int listen_loopback(long port)
{
	struct sockaddr_in sa;
	int fd, one = 1;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0) {
		perror("echo-server: socket");
		return -1;
	}
	/* a restarted server must not fail on the last run's TIME_WAIT */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		perror("echo-server: setsockopt SO_REUSEADDR");
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((unsigned short)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		perror("echo-server: bind 127.0.0.1");
		goto fail_close;
	}
	if (listen(fd, 16) < 0) {
		perror("echo-server: listen");
		goto fail_close;
	}
	return fd;

fail_close:
	close(fd);
	return -1;
}

/*
 * Write all n bytes of buf, however many calls that takes.  Returns 0, or
 * -1 with errno set (EPIPE when the client went away).
 */
static int write_all(int fd, const char *buf, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, buf, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += w;
		n -= (size_t)w;
	}
	return 0;
}

/*
 * Echo one connection until the client closes its side (read returns 0).
 * Returns the number of bytes echoed, or -1 after an error (reported).
 */
static long long echo(int fd)
{
	char buf[65536];
	long long total = 0;

	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n == 0)
			return total;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("echo-server: read");
			return -1;
		}
		if (write_all(fd, buf, (size_t)n) < 0) {
			perror("echo-server: write");
			return -1;
		}
		total += n;
	}
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	long port;
	int lfd;

	if (argc != 2 || (port = parse_port(argv[1])) < 0) {
		fprintf(stderr, "usage: echo-server PORT   (0..65535; 0 = any free port)\n");
		return 2;
	}
	/* a client that disconnects mid-echo must cost one connection, not
	 * the server: get EPIPE from write() instead of a fatal SIGPIPE */
	signal(SIGPIPE, SIG_IGN);

	lfd = listen_loopback(port);
	if (lfd < 0)
		return 1;
	/* with PORT 0 only the kernel knows the number: ask it */
	if (getsockname(lfd, (struct sockaddr *)&sa, &len) < 0) {
		perror("echo-server: getsockname");
		return 1;
	}
	/* a script waits for this line: print it only now, and flush it */
	printf("echo-server: listening on 127.0.0.1:%u\n", ntohs(sa.sin_port));
	fflush(stdout);

	for (;;) {
		char peer[INET_ADDRSTRLEN] = "?";
		long long n;
		int fd;

		len = sizeof(sa);
		fd = accept(lfd, (struct sockaddr *)&sa, &len);
		if (fd < 0) {
			/* a connection reset before accept() is the client's
			 * problem; out of fds or memory may pass, so say so and
			 * retry a second later; anything else is a bug here */
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			perror("echo-server: accept");
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				sleep(1);
				continue;
			}
			return 1;
		}
		inet_ntop(AF_INET, &sa.sin_addr, peer, sizeof(peer));
		n = echo(fd);
		if (n >= 0)
			printf("echo-server: %s:%u: echoed %lld bytes\n", peer,
			       ntohs(sa.sin_port), n);
		fflush(stdout);
		close(fd);
	}
}
