/*
 * echo-client.c — the client for echo-server.c: plain POSIX sockets,
 * nothing fastloop-specific.  Connects to 127.0.0.1:PORT, sends BYTES
 * pseudo-random bytes in chunks of CHUNK, reads every chunk back, then
 * closes its sending side and expects the server to close too.  It
 * compares a checksum of what it sent with one of what came back and prints
 * one line:
 *
 *   echo-client: 1048576 bytes in 64 chunks of 16384 via 127.0.0.1:7000, fnv1a64 0x... ok (0.004 s)
 *
 *   usage: echo-client PORT [BYTES [CHUNK]]   (defaults 1048576 and 16384)
 *
 * Exit status: 0 when every byte came back, 1 on a mismatch (wrong bytes,
 * too few, too many), 2 on a usage or socket error (including a 10 s
 * timeout: the client never hangs).
 *
 * Build: cc -O2 -Wall -Wextra -o echo-client echo-client.c
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* The client writes a whole chunk before it reads any of it back, so a
 * chunk must fit in the socket buffers of the two directions, or both ends
 * block in write().  64 KiB fits every default Linux buffer, TCP or Unix. */
#define CHUNK_MAX 65536
#define TIMEOUT_S 10

/* FNV-1a, 64 bit: a checksum that can be fed in pieces of any size. */
#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

static uint64_t fnv1a(uint64_t h, const unsigned char *p, size_t n)
{
	while (n--) {
		h ^= *p++;
		h *= FNV_PRIME;
	}
	return h;
}

/*
 * Fill buf with the next n bytes of a xorshift64 sequence (state *s, never
 * 0): data that no buffer full of zeros or stale bytes could pass for.
 */
static void fill(unsigned char *buf, size_t n, uint64_t *s)
{
	for (size_t i = 0; i < n; i++) {
		*s ^= *s << 13;
		*s ^= *s >> 7;
		*s ^= *s << 17;
		buf[i] = (unsigned char)(*s >> 24);
	}
}

/*
 * Parse a whole decimal number in [lo, hi].  Returns 0 and sets *out, or
 * -1 when the text is not one.
 */
static int parse_num(const char *s, long long lo, long long hi, long long *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (end == s || *end || errno || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

/*
 * Connect to 127.0.0.1:port with send and receive timeouts.  Returns the
 * fd, or -1 with a message on stderr.
 */
static int connect_loopback(long long port)
{
	struct timeval tv = { .tv_sec = TIMEOUT_S };
	struct sockaddr_in sa;
	int fd;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0) {
		perror("echo-client: socket");
		return -1;
	}
	/* a server that stops answering ends in EAGAIN, not a hang */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0) {
		perror("echo-client: setsockopt SO_RCVTIMEO/SO_SNDTIMEO");
		goto fail_close;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((unsigned short)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		perror("echo-client: connect 127.0.0.1");
		goto fail_close;
	}
	return fd;

fail_close:
	close(fd);
	return -1;
}

/* Write all n bytes.  Returns 0, or -1 with errno set. */
static int write_all(int fd, const unsigned char *buf, size_t n)
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
 * Read until n bytes have arrived or the server closed.  Returns the
 * number read (less than n only at end of stream), or -1 with errno set.
 */
static ssize_t read_full(int fd, unsigned char *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = read(fd, buf + got, n - got);

		if (r == 0)
			break;
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		got += (size_t)r;
	}
	return (ssize_t)got;
}

/* Seconds on a clock that does not jump. */
static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	static unsigned char out[CHUNK_MAX], in[CHUNK_MAX + 1];
	long long port, total = 1 << 20, chunk = 16384, sent = 0, back = 0;
	uint64_t h_sent = FNV_OFFSET, h_back = FNV_OFFSET;
	uint64_t seed = ((uint64_t)getpid() << 32) ^ (uint64_t)time(NULL);
	unsigned long nchunks = 0;
	double t0;
	ssize_t r;
	int fd;

	if (argc < 2 || argc > 4 || parse_num(argv[1], 1, 65535, &port) < 0 ||
	    (argc > 2 && parse_num(argv[2], 0, 1LL << 40, &total) < 0) ||
	    (argc > 3 && parse_num(argv[3], 1, CHUNK_MAX, &chunk) < 0)) {
		fprintf(stderr, "usage: echo-client PORT [BYTES [CHUNK]]   "
			"(BYTES default 1048576; CHUNK 1..%d, default 16384)\n",
			CHUNK_MAX);
		return 2;
	}
	seed |= 1;              /* xorshift must not start at 0 */

	t0 = now_s();
	fd = connect_loopback(port);
	if (fd < 0)
		return 2;

	/* one chunk out, the same chunk back: lock-step keeps both
	 * directions' buffers from filling up (see CHUNK_MAX) */
	while (sent < total) {
		size_t n = (size_t)(total - sent < chunk ? total - sent : chunk);

		fill(out, n, &seed);
		if (write_all(fd, out, n) < 0) {
			perror("echo-client: write");
			return 2;
		}
		h_sent = fnv1a(h_sent, out, n);
		sent += (long long)n;
		nchunks++;

		r = read_full(fd, in, n);
		if (r < 0) {
			perror("echo-client: read");
			return 2;
		}
		h_back = fnv1a(h_back, in, (size_t)r);
		back += r;
		if ((size_t)r < n)
			break;  /* the server closed early: a mismatch below */
	}

	/* say we are done; the server must then close without sending more:
	 * anything that still arrives counts against the checksum */
	if (shutdown(fd, SHUT_WR) < 0) {
		perror("echo-client: shutdown");
		return 2;
	}
	while ((r = read_full(fd, in, sizeof(in))) > 0) {
		h_back = fnv1a(h_back, in, (size_t)r);
		back += r;
	}
	if (r < 0) {
		perror("echo-client: read after shutdown");
		return 2;
	}
	close(fd);

	if (back != sent || h_back != h_sent) {
		printf("echo-client: MISMATCH via 127.0.0.1:%lld: sent %lld bytes "
		       "fnv1a64 0x%016llx, received %lld bytes fnv1a64 0x%016llx\n",
		       port, sent, (unsigned long long)h_sent, back,
		       (unsigned long long)h_back);
		return 1;
	}
	printf("echo-client: %lld bytes in %lu chunk%s of %lld via 127.0.0.1:%lld, "
	       "fnv1a64 0x%016llx ok (%.3f s)\n", sent, nchunks,
	       nchunks == 1 ? "" : "s", chunk, port, (unsigned long long)h_sent,
	       now_s() - t0);
	return 0;
}
