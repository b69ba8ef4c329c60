/*
 * xfer.h — shared pieces of the "sender sends x bytes, receiver confirms
 * all x" micro-benchmarks (bench/micro/xfer_tcp.c, bench/micro/xfer_ipc.c).
 *
 * Protocol, identical for every transport:
 *   1. the sender writes a struct xfer_hdr (size, reps, chunk, nonce, flags);
 *   2. for each of reps+1 repetitions (repetition 0 is an untimed warm-up
 *      that is always verified byte for byte) the sender writes `size`
 *      bytes in writes of `chunk` bytes, and the receiver, once it has read
 *      all of them, answers with an 8-byte count (XFER_ACK_BAD on a
 *      checksum mismatch); the sender's clock runs from its first write to
 *      the arrival of that count;
 *   3. the receiver finally sends its user/sys CPU microseconds spent over
 *      the timed repetitions (struct xfer_cpu), so CPU cost covers both ends.
 *
 * Stream content: a fixed pseudo-random pattern, with a stamp at every 4 KiB
 * stream offset that encodes the offset, the repetition and a per-run nonce.
 * Lost, duplicated, reordered or stale 4 KiB blocks change a stamp; the
 * warm-up repetition (and every repetition with --verify=full) compares
 * every byte.
 */
#ifndef XFER_H
#define XFER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define XFER_MAGIC 0x666c6f6f70786672ULL /* "floopxfr" */
#define XFER_BLOCK 4096u                 /* stamp granularity */
#define XFER_ACK_BAD UINT64_MAX          /* receiver's "bytes did not verify" */
#define XFER_MAX_REPS 1000

/* A transport: blocking, whole-buffer send; recv returns 1..len bytes,
 * 0 on EOF, -errno on error. */
struct xfer_io {
	void *ctx;
	ssize_t (*send_all)(void *ctx, const void *buf, size_t len);
	ssize_t (*recv_some)(void *ctx, void *buf, size_t len);
};

struct xfer_hdr {
	uint64_t magic;
	uint64_t size;  /* bytes per repetition */
	uint64_t reps;  /* timed repetitions (warm-up not counted) */
	uint64_t chunk; /* bytes per write, multiple of XFER_BLOCK */
	uint64_t nonce;
	uint64_t full_verify; /* 1: compare every byte in every repetition */
};

struct xfer_cpu {
	uint64_t user_us;
	uint64_t sys_us;
};

/* Options shared by both programs. */
struct xfer_opts {
	const char *transport; /* label printed in the result line */
	uint64_t sizes[64];
	int nsizes;
	int reps;        /* 0: automatic (20 / 5 / 3 by size class) */
	uint64_t chunk;  /* bytes per write */
	int full_verify;
	int timeout_s;   /* alarm() bound for the whole process */
	int64_t corrupt_at; /* self-test: flip this stream byte (-1: never) */
};

void xfer_die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
double xfer_now(void);
void xfer_cpu_now(struct xfer_cpu *c);
void xfer_arm_timeout(int seconds);

int xfer_parse_size(const char *s, uint64_t *out);
int xfer_parse_common(struct xfer_opts *o, int argc, char **argv, int *i);
void xfer_opts_init(struct xfer_opts *o, const char *transport);
int xfer_auto_reps(uint64_t size);
void xfer_fill_pattern(unsigned char *buf, size_t len);
const char *xfer_common_usage(void);

/* fd-based transports: write()/read() with EINTR retry. */
ssize_t xfer_fd_send_all(void *ctx, const void *buf, size_t len);
ssize_t xfer_fd_recv_some(void *ctx, void *buf, size_t len);

/* The two roles.  Return 0 on success, 1 on a verification failure,
 * -1 on a transport error (message already printed). */
int xfer_sender(const struct xfer_io *data, const struct xfer_io *back,
		const struct xfer_opts *o, uint64_t size);
int xfer_receiver(const struct xfer_io *data, const struct xfer_io *back);

/* The copy limit: the sender's and receiver's work without a transport. */
int xfer_memcpy(const struct xfer_opts *o, uint64_t size);

#endif
