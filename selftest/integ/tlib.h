/*
 * tlib.h — helpers for the integration programs: failing loudly, random
 * data with checksums, sockets on loopback, raw transport inspection.
 *
 * Each program is a driver that never touches sockets itself: it spawns a
 * server and a client as exec()ed copies of itself, each with or without
 * LD_PRELOAD (FLP_LIB) as the test setup asks, bounded by alarm().
 */
#ifndef TLIB_H
#define TLIB_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *t_role = "driver";
static const char *t_case = "?";

static void t_fail(const char *file, int line, const char *fmt, ...)
	__attribute__((noreturn, format(printf, 3, 4)));
static void t_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	int e = errno;

	fprintf(stderr, "FAIL [%s/%s] %s:%d: ", t_case, t_role, file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (errno %d %s)\n", e, strerror(e));
	_exit(1);
}

#define FAIL(...) t_fail(__FILE__, __LINE__, __VA_ARGS__)
#define CHECK(c, ...) do { if (!(c)) FAIL(__VA_ARGS__); } while (0)
#define CHECK_ERRNO(call, want) do {                                        \
		errno = 0;                                                  \
		long r_ = (long)(call);                                     \
		if (r_ != -1 || errno != (want))                            \
			FAIL("%s: want -1/%s, got %ld/%s", #call,           \
			     strerror(want), r_, strerror(errno));          \
	} while (0)

static inline uint64_t t_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Deterministic bytes: position-dependent so reordering is caught. */
static inline uint8_t t_byte(uint64_t seed, uint64_t pos)
{
	uint64_t x = (pos + seed * 0x9E3779B97F4A7C15ull) * 0xBF58476D1CE4E5B9ull;
	x ^= x >> 31;
	return (uint8_t)(x ^ (x >> 17));
}

static inline void t_fill(uint8_t *p, size_t n, uint64_t seed, uint64_t pos)
{
	for (size_t i = 0; i < n; i++)
		p[i] = t_byte(seed, pos + i);
}

/* Check a received chunk against the expected stream; returns bytes ok. */
static inline void t_verify(const uint8_t *p, size_t n, uint64_t seed, uint64_t pos)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != t_byte(seed, pos + i))
			FAIL("byte %llu of stream %llu: got %02x want %02x",
			     (unsigned long long)(pos + i), (unsigned long long)seed,
			     p[i], t_byte(seed, pos + i));
}

static inline int t_listen(const char *addr, int *port)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int one = 1, fd;

	memset(&ss, 0, sizeof(ss));
	if (strchr(addr, ':')) {
		struct sockaddr_in6 *s6 = (void *)&ss;
		s6->sin6_family = AF_INET6;
		inet_pton(AF_INET6, addr, &s6->sin6_addr);
		sl = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (void *)&ss;
		s4->sin_family = AF_INET;
		inet_pton(AF_INET, addr, &s4->sin_addr);
		sl = sizeof(*s4);
	}
	fd = socket(ss.ss_family, SOCK_STREAM, 0);
	CHECK(fd >= 0, "socket");
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	CHECK(bind(fd, (struct sockaddr *)&ss, sl) == 0, "bind %s", addr);
	CHECK(listen(fd, 512) == 0, "listen");
	sl = sizeof(ss);
	CHECK(getsockname(fd, (struct sockaddr *)&ss, &sl) == 0, "getsockname");
	*port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
					      : ((struct sockaddr_in6 *)&ss)->sin6_port);
	return fd;
}

static inline int t_connect_flags(const char *addr, int port, int type_flags)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int fd, r;

	memset(&ss, 0, sizeof(ss));
	if (strchr(addr, ':')) {
		struct sockaddr_in6 *s6 = (void *)&ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		inet_pton(AF_INET6, addr, &s6->sin6_addr);
		sl = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (void *)&ss;
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		inet_pton(AF_INET, addr, &s4->sin_addr);
		sl = sizeof(*s4);
	}
	fd = socket(ss.ss_family, SOCK_STREAM | type_flags, 0);
	CHECK(fd >= 0, "socket");
	r = connect(fd, (struct sockaddr *)&ss, sl);
	CHECK(r == 0 || errno == EINPROGRESS, "connect %s:%d", addr, port);
	return fd;
}

static inline int t_connect(int port)
{
	return t_connect_flags("127.0.0.1", port, 0);
}

static inline void t_write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;

	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		CHECK(w > 0, "write %zu", n);
		p += w;
		n -= (size_t)w;
	}
}

static inline void t_read_all(int fd, void *buf, size_t n)
{
	char *p = buf;

	while (n) {
		ssize_t r = read(fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		CHECK(r > 0, "read %zu: got %zd (EOF too early?)", n, r);
		p += r;
		n -= (size_t)r;
	}
}

/* Stream n patterned bytes out / in, verifying every byte on the way in. */
static inline void t_send_stream(int fd, uint64_t seed, uint64_t n)
{
	static uint8_t buf[1 << 17];
	uint64_t pos = 0;

	while (pos < n) {
		size_t c = n - pos < sizeof(buf) ? (size_t)(n - pos) : sizeof(buf);
		t_fill(buf, c, seed, pos);
		t_write_all(fd, buf, c);
		pos += c;
	}
}

static inline void t_recv_stream(int fd, uint64_t seed, uint64_t n)
{
	static uint8_t buf[1 << 17];
	uint64_t pos = 0;

	while (pos < n) {
		size_t c = n - pos < sizeof(buf) ? (size_t)(n - pos) : sizeof(buf);
		ssize_t r = read(fd, buf, c);
		if (r < 0 && errno == EINTR)
			continue;
		CHECK(r > 0, "stream read at %llu of %llu: %zd",
		      (unsigned long long)pos, (unsigned long long)n, r);
		t_verify(buf, (size_t)r, seed, pos);
		pos += (uint64_t)r;
	}
}

/* The domain of the kernel object behind fd, asked with a raw syscall so
 * that fastloop's getsockopt emulation is bypassed. */
static inline int t_raw_domain(int fd)
{
	int v = -1;
	socklen_t l = sizeof(v);

	if (syscall(SYS_getsockopt, fd, SOL_SOCKET, SO_DOMAIN, &v, &l) < 0)
		return -1;
	return v;
}

/* Assert fd is carried the way FLP_EXPECT (uds|shm|tcp|any) says (shm:
 * the kernel object is the UDS too; run.sh checks the log's transport). */
static inline void t_expect(int fd)
{
	const char *e = getenv("FLP_EXPECT");
	int d = t_raw_domain(fd);

	if (!e || !strcmp(e, "any"))
		return;
	if (!strcmp(e, "uds") || !strcmp(e, "shm"))
		CHECK(d == AF_UNIX, "fd %d: expected the UDS fast path, kernel object is domain %d", fd, d);
	else
		CHECK(d == AF_INET || d == AF_INET6, "fd %d: expected plain TCP, kernel object is domain %d", fd, d);
}

static inline bool t_expect_fast(void)
{
	const char *e = getenv("FLP_EXPECT");
	return e && (!strcmp(e, "uds") || !strcmp(e, "shm"));
}

static inline int t_count_fds(void)
{
	char path[64];
	int n = 0;

	for (int fd = 0; fd < 4096; fd++) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		if (access(path, F_OK) == 0)
			n++;
	}
	return n;
}

#endif
