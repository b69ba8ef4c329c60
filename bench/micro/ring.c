/*
 * ring.c — SPSC byte ring between two processes; see ring.h.
 */
#define _GNU_SOURCE
#include "ring.h"

#include <errno.h>
#include <sched.h>
#include <string.h>
#include <time.h>

#define YIELD_TRIES 2000

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/*
 * One step of a bounded wait, called with the number of unsuccessful checks
 * so far: spin, then yield the CPU (lets the peer run on a shared core),
 * then sleep.  Returns -ETIMEDOUT once the deadline has passed.
 */
static int wait_step(unsigned long tries, double *deadline, const struct ring_end *e)
{
	struct timespec nap = { 0, 50000 };

	if (tries < e->spin) {
		cpu_relax();
		return 0;
	}
	if (*deadline == 0)
		*deadline = now_s() + e->timeout_s;
	else if (now_s() > *deadline)
		return -ETIMEDOUT;
	if (tries < e->spin + YIELD_TRIES)
		sched_yield();
	else
		nanosleep(&nap, NULL);
	return 0;
}

size_t ring_bytes(uint64_t size)
{
	return sizeof(struct ring) + (size_t)size;
}

void ring_init(struct ring *r, uint64_t size)
{
	atomic_init(&r->tail, 0);
	atomic_init(&r->head, 0);
	atomic_init(&r->closed, 0);
	r->size = size;
}

/* Producer: copy all of buf into the ring, waiting for room. */
ssize_t ring_send_all(void *endp, const void *buf, size_t len)
{
	struct ring_end *e = endp;
	struct ring *r = e->r;
	uint64_t mask = r->size - 1;
	/* Only this process writes tail: a relaxed load of our own index. */
	uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
	size_t done = 0;
	unsigned long tries = 0;
	double deadline = 0;

	while (done < len) {
		/* Pairs with the consumer's store-release of head: the bytes
		 * below head have been copied out and may be overwritten. */
		uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
		uint64_t used = tail - head, room, n, slot;

		if (used > r->size)
			return -EPROTO; /* corrupt index: never trust it */
		room = r->size - used;
		if (room == 0) {
			int rc = wait_step(tries++, &deadline, e);

			if (rc)
				return rc;
			continue;
		}
		tries = 0;
		deadline = 0;
		slot = tail & mask;
		n = len - done;
		if (n > room)
			n = room;
		if (n > r->size - slot)
			n = r->size - slot;
		memcpy(r->data + slot, (const char *)buf + done, (size_t)n);
		tail += n;
		done += (size_t)n;
		/* Publish: pairs with the consumer's load-acquire of tail, so
		 * the copy above is visible before the new tail. */
		atomic_store_explicit(&r->tail, tail, memory_order_release);
	}
	return (ssize_t)done;
}

/* Consumer: copy out 1..len bytes, waiting for data; 0 at close+empty. */
ssize_t ring_recv_some(void *endp, void *buf, size_t len)
{
	struct ring_end *e = endp;
	struct ring *r = e->r;
	uint64_t mask = r->size - 1;
	/* Only this process writes head. */
	uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
	unsigned long tries = 0;
	double deadline = 0;

	for (;;) {
		/* Pairs with the producer's store-release of tail. */
		uint64_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
		uint64_t avail = tail - head, n, slot;

		if (avail > r->size)
			return -EPROTO;
		if (avail == 0) {
			int rc;

			/* Pairs with ring_close's store-release; a re-check of
			 * tail after seeing closed catches the last bytes. */
			if (atomic_load_explicit(&r->closed, memory_order_acquire) &&
			    atomic_load_explicit(&r->tail, memory_order_acquire) == head)
				return 0;
			rc = wait_step(tries++, &deadline, e);
			if (rc)
				return rc;
			continue;
		}
		slot = head & mask;
		n = avail < len ? avail : len;
		if (n > r->size - slot)
			n = r->size - slot;
		memcpy(buf, r->data + slot, (size_t)n);
		/* Release the slots: pairs with the producer's load-acquire
		 * of head; our copy-out completes before they are reused. */
		atomic_store_explicit(&r->head, head + n, memory_order_release);
		return (ssize_t)n;
	}
}

/* Producer side: no more data.  Pairs with the acquire in ring_recv_some. */
void ring_close(struct ring *r)
{
	atomic_store_explicit(&r->closed, 1, memory_order_release);
}
