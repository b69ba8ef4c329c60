/*
 * xfer_common.c — the sender and receiver roles, stream stamping and
 * verification, timing, CPU accounting and option parsing shared by
 * xfer_tcp and xfer_ipc.  See xfer.h for the protocol.
 */
#define _GNU_SOURCE
#include "xfer.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define STAMP_K 0x9e3779b97f4a7c15ULL

/* Print a message to stderr and exit with status 2 (a harness error). */
void xfer_die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("xfer: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

/* Monotonic seconds. */
double xfer_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* User and system CPU of this process so far, in microseconds. */
void xfer_cpu_now(struct xfer_cpu *c)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	c->user_us = (uint64_t)ru.ru_utime.tv_sec * 1000000u + (uint64_t)ru.ru_utime.tv_usec;
	c->sys_us = (uint64_t)ru.ru_stime.tv_sec * 1000000u + (uint64_t)ru.ru_stime.tv_usec;
}

static void on_alarm(int sig)
{
	static const char msg[] = "xfer: timeout: run exceeded its time bound\n";

	(void)sig;
	if (write(2, msg, sizeof(msg) - 1) < 0) {
		/* nothing more we can do */
	}
	_exit(3);
}

/* Bound the whole process: after `seconds` it exits with status 3, so a
 * broken transport ends as a reported failure instead of a hang. */
void xfer_arm_timeout(int seconds)
{
	signal(SIGALRM, on_alarm);
	alarm((unsigned)seconds);
}

/* The 8-byte stamp at stream offset `off` (a multiple of XFER_BLOCK). */
static inline uint64_t stamp_at(uint64_t nonce, uint64_t rep, uint64_t off)
{
	return ((off / XFER_BLOCK) + 1) * STAMP_K ^ nonce ^ (rep << 48);
}

/* Fill `buf` with the fixed pseudo-random pattern (xorshift64). */
void xfer_fill_pattern(unsigned char *buf, size_t len)
{
	uint64_t x = 0x2545f4914f6cdd1dULL;

	for (size_t i = 0; i + 8 <= len; i += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(buf + i, &x, 8);
	}
}

/* Write the stamps of the chunk that starts at stream offset `off`. */
static void stamp_chunk(unsigned char *buf, size_t len, uint64_t nonce,
			uint64_t rep, uint64_t off)
{
	for (size_t b = 0; b < len; b += XFER_BLOCK) {
		uint64_t s = stamp_at(nonce, rep, off + b);

		memcpy(buf + b, &s, 8);
	}
}

/*
 * Check a received chunk.  Sampled mode compares each block's stamp and its
 * last 8 pattern bytes; full mode compares every byte against `expect`
 * (the pattern), after checking the stamps.  Returns 0 when it matches.
 */
static int check_chunk(const unsigned char *got, const unsigned char *expect,
		       size_t len, uint64_t nonce, uint64_t rep, uint64_t off,
		       int full)
{
	for (size_t b = 0; b < len; b += XFER_BLOCK) {
		uint64_t s = stamp_at(nonce, rep, off + b);

		if (memcmp(got + b, &s, 8) != 0)
			return -1;
		if (memcmp(got + b + XFER_BLOCK - 8, expect + b + XFER_BLOCK - 8, 8) != 0)
			return -1;
		if (full && memcmp(got + b + 8, expect + b + 8, XFER_BLOCK - 8) != 0)
			return -1;
	}
	return 0;
}

/* Read exactly `len` bytes.  Returns 0, or -1 on EOF/error (printed). */
static int recv_exact(const struct xfer_io *io, void *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = io->recv_some(io->ctx, (char *)buf + got, len - got);

		if (n == 0) {
			fprintf(stderr, "xfer: unexpected EOF after %zu of %zu bytes\n", got, len);
			return -1;
		}
		if (n < 0) {
			fprintf(stderr, "xfer: recv: %s\n", strerror((int)-n));
			return -1;
		}
		got += (size_t)n;
	}
	return 0;
}

static int send_exact(const struct xfer_io *io, const void *buf, size_t len)
{
	ssize_t n = io->send_all(io->ctx, buf, len);

	if (n < 0) {
		fprintf(stderr, "xfer: send: %s\n", strerror((int)-n));
		return -1;
	}
	return 0;
}

ssize_t xfer_fd_send_all(void *ctx, const void *buf, size_t len)
{
	int fd = *(int *)ctx;
	size_t done = 0;

	while (done < len) {
		ssize_t n = write(fd, (const char *)buf + done, len - done);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		done += (size_t)n;
	}
	return (ssize_t)done;
}

ssize_t xfer_fd_recv_some(void *ctx, void *buf, size_t len)
{
	int fd = *(int *)ctx;

	for (;;) {
		ssize_t n = read(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		return n < 0 ? -errno : n;
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Repetitions by size class, as the run is described in bench/README.md. */
int xfer_auto_reps(uint64_t size)
{
	if (size <= (4ULL << 20))
		return 20;
	if (size < (1ULL << 30))
		return 5;
	return 3;
}

/*
 * Sender role for one size: header, warm-up, timed repetitions, receiver's
 * CPU.  Prints one tab-separated result line on stdout.
 */
int xfer_sender(const struct xfer_io *data, const struct xfer_io *back,
		const struct xfer_opts *o, uint64_t size)
{
	struct xfer_hdr h = { 0 };
	struct xfer_cpu c0, c1, rc;
	uint64_t chunk = o->chunk < size ? o->chunk : size;
	int reps = o->reps > 0 ? o->reps : xfer_auto_reps(size);
	double mbps[XFER_MAX_REPS];
	unsigned char *buf;
	int bad = 0;

	if (reps > XFER_MAX_REPS)
		reps = XFER_MAX_REPS;
	buf = aligned_alloc(XFER_BLOCK, chunk);
	if (!buf)
		xfer_die("out of memory for a %" PRIu64 "-byte chunk", chunk);
	xfer_fill_pattern(buf, chunk);

	h.magic = XFER_MAGIC;
	h.size = size;
	h.reps = (uint64_t)reps;
	h.chunk = chunk;
	h.nonce = ((uint64_t)getpid() << 32) ^ (uint64_t)(xfer_now() * 1e6);
	h.full_verify = (uint64_t)o->full_verify;
	if (send_exact(data, &h, sizeof(h)) < 0)
		goto fail_io;

	xfer_cpu_now(&c0);
	for (int rep = 0; rep <= reps; rep++) {
		double t0, t1;
		uint64_t ack;

		if (rep == 1)
			xfer_cpu_now(&c0);
		t0 = xfer_now();
		for (uint64_t off = 0; off < size; off += chunk) {
			size_t len = (size_t)(size - off < chunk ? size - off : chunk);

			int flip = o->corrupt_at >= 0 && (uint64_t)o->corrupt_at >= off &&
				   (uint64_t)o->corrupt_at < off + len;

			stamp_chunk(buf, len, h.nonce, (uint64_t)rep, off);
			if (flip)
				buf[o->corrupt_at - (int64_t)off] ^= 0xff;
			if (send_exact(data, buf, len) < 0)
				goto fail_io;
			if (flip)
				buf[o->corrupt_at - (int64_t)off] ^= 0xff;
		}
		if (recv_exact(back, &ack, sizeof(ack)) < 0)
			goto fail_io;
		t1 = xfer_now();
		if (ack != size) {
			fprintf(stderr, "xfer: %s size %" PRIu64 " rep %d: receiver reports %s\n",
				o->transport, size, rep,
				ack == XFER_ACK_BAD ? "CHECKSUM MISMATCH" : "a wrong byte count");
			bad = 1;
			break;
		}
		if (rep > 0)
			mbps[rep - 1] = (double)size * 8.0 / (t1 - t0) / 1e6;
	}
	xfer_cpu_now(&c1);
	if (bad) {
		printf("xfer\t%s\t%" PRIu64 "\t%d\tFAIL\tFAIL\tFAIL\t-\t-\tchecksum-mismatch\n",
		       o->transport, size, reps);
		fflush(stdout);
		free(buf);
		return 1;
	}
	if (recv_exact(back, &rc, sizeof(rc)) < 0)
		goto fail_io;

	{
		double lo = mbps[0], hi = mbps[0], med, cpu, gb;

		for (int i = 1; i < reps; i++) {
			lo = mbps[i] < lo ? mbps[i] : lo;
			hi = mbps[i] > hi ? mbps[i] : hi;
		}
		med = median(mbps, reps);
		cpu = (double)(c1.user_us - c0.user_us + c1.sys_us - c0.sys_us +
			       rc.user_us + rc.sys_us) / 1e6;
		gb = (double)size * reps / 1e9;
		printf("xfer\t%s\t%" PRIu64 "\t%d\t%.1f\t%.1f\t%.1f\t%.3f\t%.3f\tok\n",
		       o->transport, size, reps, med, lo, hi, cpu, cpu / gb);
		fflush(stdout);
	}
	free(buf);
	return 0;

fail_io:
	printf("xfer\t%s\t%" PRIu64 "\t%d\tFAIL\tFAIL\tFAIL\t-\t-\tio-error\n",
	       o->transport, size, reps);
	fflush(stdout);
	free(buf);
	return -1;
}

/*
 * Receiver role: serve headers until EOF.  Each size: read and check every
 * repetition, answer its byte count (or XFER_ACK_BAD), then send the CPU
 * used over the timed repetitions.
 */
int xfer_receiver(const struct xfer_io *data, const struct xfer_io *back)
{
	for (;;) {
		struct xfer_hdr h;
		struct xfer_cpu c0 = { 0 }, c1;
		unsigned char *buf, *expect;
		ssize_t n;
		size_t got = 0;

		/* EOF before a header is the normal end. */
		while (got < sizeof(h)) {
			n = data->recv_some(data->ctx, (char *)&h + got, sizeof(h) - got);
			if (n == 0 && got == 0)
				return 0;
			if (n <= 0) {
				fprintf(stderr, "xfer: receiver: header: %s\n",
					n == 0 ? "EOF" : strerror((int)-n));
				return -1;
			}
			got += (size_t)n;
		}
		if (h.magic != XFER_MAGIC || h.chunk == 0 || h.chunk % XFER_BLOCK ||
		    h.size % XFER_BLOCK || h.chunk > (1ULL << 30) || h.reps > XFER_MAX_REPS) {
			fprintf(stderr, "xfer: receiver: bad header (magic %#" PRIx64 ")\n", h.magic);
			return -1;
		}
		buf = aligned_alloc(XFER_BLOCK, h.chunk);
		expect = aligned_alloc(XFER_BLOCK, h.chunk);
		if (!buf || !expect)
			xfer_die("out of memory for a %" PRIu64 "-byte chunk", h.chunk);
		xfer_fill_pattern(expect, h.chunk);

		for (uint64_t rep = 0; rep <= h.reps; rep++) {
			uint64_t ack = h.size;
			int full = rep == 0 || h.full_verify;

			if (rep == 1)
				xfer_cpu_now(&c0);
			for (uint64_t off = 0; off < h.size; off += h.chunk) {
				size_t len = (size_t)(h.size - off < h.chunk ? h.size - off : h.chunk);

				if (recv_exact(data, buf, len) < 0)
					goto fail;
				if (ack != XFER_ACK_BAD &&
				    check_chunk(buf, expect, len, h.nonce, rep, off, full) != 0)
					ack = XFER_ACK_BAD;
			}
			if (send_exact(back, &ack, sizeof(ack)) < 0)
				goto fail;
			if (ack == XFER_ACK_BAD) {
				free(buf);
				free(expect);
				return 1;
			}
		}
		xfer_cpu_now(&c1);
		c1.user_us -= c0.user_us;
		c1.sys_us -= c0.sys_us;
		if (send_exact(back, &c1, sizeof(c1)) < 0)
			goto fail;
		free(buf);
		free(expect);
		continue;
fail:
		free(buf);
		free(expect);
		return -1;
	}
}

/*
 * The copy limit: stamp, one memcpy and the sampled check per chunk — the
 * work of sender and receiver with a single copy and no transport.
 */
int xfer_memcpy(const struct xfer_opts *o, uint64_t size)
{
	uint64_t chunk = o->chunk < size ? o->chunk : size;
	int reps = o->reps > 0 ? o->reps : xfer_auto_reps(size);
	unsigned char *src = aligned_alloc(XFER_BLOCK, chunk);
	unsigned char *dst = aligned_alloc(XFER_BLOCK, chunk);
	double mbps[XFER_MAX_REPS];
	struct xfer_cpu c0, c1;
	uint64_t nonce = (uint64_t)getpid();

	if (reps > XFER_MAX_REPS)
		reps = XFER_MAX_REPS;
	if (!src || !dst)
		xfer_die("out of memory for a %" PRIu64 "-byte chunk", chunk);
	xfer_fill_pattern(src, chunk);
	xfer_cpu_now(&c0);
	for (int rep = 0; rep <= reps; rep++) {
		double t0;

		if (rep == 1)
			xfer_cpu_now(&c0);
		t0 = xfer_now();
		for (uint64_t off = 0; off < size; off += chunk) {
			size_t len = (size_t)(size - off < chunk ? size - off : chunk);

			stamp_chunk(src, len, nonce, (uint64_t)rep, off);
			memcpy(dst, src, len);
			if (check_chunk(dst, src, len, nonce, (uint64_t)rep, off, rep == 0)) {
				printf("xfer\t%s\t%" PRIu64 "\t%d\tFAIL\tFAIL\tFAIL\t-\t-\tchecksum-mismatch\n",
				       o->transport, size, reps);
				return 1;
			}
		}
		if (rep > 0)
			mbps[rep - 1] = (double)size * 8.0 / (xfer_now() - t0) / 1e6;
	}
	xfer_cpu_now(&c1);
	{
		double lo = mbps[0], hi = mbps[0], med, cpu;

		for (int i = 1; i < reps; i++) {
			lo = mbps[i] < lo ? mbps[i] : lo;
			hi = mbps[i] > hi ? mbps[i] : hi;
		}
		med = median(mbps, reps);
		cpu = (double)(c1.user_us - c0.user_us + c1.sys_us - c0.sys_us) / 1e6;
		printf("xfer\t%s\t%" PRIu64 "\t%d\t%.1f\t%.1f\t%.1f\t%.3f\t%.3f\tok\n",
		       o->transport, size, reps, med, lo, hi, cpu,
		       cpu / ((double)size * reps / 1e9));
		fflush(stdout);
	}
	free(src);
	free(dst);
	return 0;
}

/* Parse "16K", "100M", "4G" (binary units) or plain bytes. */
int xfer_parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -1;
	switch (*end) {
	case 'k': case 'K': v <<= 10; end++; break;
	case 'm': case 'M': v <<= 20; end++; break;
	case 'g': case 'G': v <<= 30; end++; break;
	default: break;
	}
	if (*end == 'i' || *end == 'B')
		end++;
	if (*end == 'B')
		end++;
	if (*end != '\0' || v == 0)
		return -1;
	*out = v;
	return 0;
}

void xfer_opts_init(struct xfer_opts *o, const char *transport)
{
	memset(o, 0, sizeof(*o));
	o->transport = transport;
	o->chunk = 256u << 10;
	o->timeout_s = 600;
	o->corrupt_at = -1;
}

const char *xfer_common_usage(void)
{
	return "  -s SIZE[,SIZE...]  bytes per repetition (K/M/G = KiB/MiB/GiB; multiple of 4K)\n"
	       "  -r REPS            timed repetitions (default: 20 up to 4M, 5 below 1G, 3 from 1G)\n"
	       "  -c CHUNK           bytes per write (default 256K)\n"
	       "  -V                 verify every byte of every repetition (default: warm-up only,\n"
	       "                     then a stamp plus 8 pattern bytes per 4 KiB block)\n"
	       "  -T SECONDS         time bound for the whole run (default 600)\n"
	       "  -L LABEL           transport label in the result line\n"
	       "  -X OFFSET          self-test of the checker: the sender flips the byte at\n"
	       "                     this stream offset (the run must end in checksum-mismatch)\n";
}

/* Parse one common option at argv[*i]; returns 1 if consumed, 0 if not ours. */
int xfer_parse_common(struct xfer_opts *o, int argc, char **argv, int *i)
{
	const char *a = argv[*i];
	const char *v = *i + 1 < argc ? argv[*i + 1] : NULL;

	if (strcmp(a, "-V") == 0) {
		o->full_verify = 1;
		return 1;
	}
	if (strcmp(a, "-s") && strcmp(a, "-r") && strcmp(a, "-c") &&
	    strcmp(a, "-T") && strcmp(a, "-L") && strcmp(a, "-X"))
		return 0;
	if (!v)
		xfer_die("%s needs a value", a);
	(*i)++;
	if (strcmp(a, "-s") == 0) {
		char *copy = strdup(v), *save = NULL;

		for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
			if (o->nsizes >= (int)(sizeof(o->sizes) / sizeof(o->sizes[0])))
				xfer_die("too many sizes");
			if (xfer_parse_size(t, &o->sizes[o->nsizes]) < 0 ||
			    o->sizes[o->nsizes] % XFER_BLOCK)
				xfer_die("bad size '%s' (a multiple of 4K is needed)", t);
			o->nsizes++;
		}
		free(copy);
	} else if (strcmp(a, "-r") == 0) {
		o->reps = atoi(v);
		if (o->reps < 1 || o->reps > XFER_MAX_REPS)
			xfer_die("bad -r %s (1..%d)", v, XFER_MAX_REPS);
	} else if (strcmp(a, "-c") == 0) {
		if (xfer_parse_size(v, &o->chunk) < 0 || o->chunk % XFER_BLOCK ||
		    o->chunk > (1ULL << 30))
			xfer_die("bad chunk '%s' (a multiple of 4K up to 1G)", v);
	} else if (strcmp(a, "-T") == 0) {
		o->timeout_s = atoi(v);
		if (o->timeout_s < 1)
			xfer_die("bad -T %s", v);
	} else if (strcmp(a, "-X") == 0) {
		o->corrupt_at = strtoll(v, NULL, 10);
	} else {
		o->transport = v;
	}
	return 1;
}
