/*
 * ring.h — a plain single-producer/single-consumer byte ring in shared
 * memory, for the "shm" micro-benchmark (two processes after fork).
 *
 * Free-running 64-bit indices, power-of-two size, slot = index & mask.
 * The producer copies, then store-releases tail; the consumer load-acquires
 * tail, copies out, then store-releases head.  Head and tail sit on
 * separate cache lines.  Waiting spins briefly (default 64 checks: on this
 * class of VM longer spinning measured slower, the peer vCPU is often not
 * running meanwhile), then sched_yield()s 2000 times, then sleeps 50 µs per
 * check, so two processes pinned to one core make progress; every wait is
 * bounded by a deadline.
 */
#ifndef RING_H
#define RING_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct ring {
	_Alignas(64) _Atomic uint64_t tail; /* written by the producer only */
	_Alignas(64) _Atomic uint64_t head; /* written by the consumer only */
	_Alignas(64) uint64_t size;         /* bytes, power of two */
	_Atomic int closed;                 /* producer side has finished */
	_Alignas(64) unsigned char data[];
};

/* Per-process view: the shared ring plus this side's deadline. */
struct ring_end {
	struct ring *r;
	double timeout_s;
	unsigned long spin; /* checks before the first sched_yield() */
};

size_t ring_bytes(uint64_t size);
void ring_init(struct ring *r, uint64_t size);
ssize_t ring_send_all(void *end, const void *buf, size_t len);
ssize_t ring_recv_some(void *end, void *buf, size_t len);
void ring_close(struct ring *r);

#endif
