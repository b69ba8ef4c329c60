/*
 * ring.c — copies in and out of a segment's rings, and the owner-checked
 * locks that keep each ring single-producer, single-consumer when several
 * threads or forked processes use one socket.  No system calls but
 * sched_yield: unit-testable on plain memory.
 */
#include <errno.h>
#include <sched.h>
#include <string.h>
#include <time.h>

#include "ring.h"

int seg_init(struct seg_hdr *h, uint32_t ring)
{
	if (ring < RING_MIN || ring > RING_MAX || (ring & (ring - 1)))
		return -EINVAL;
	memset(h, 0, sizeof(*h));
	h->version = SEG_VERSION;
	h->ring = ring;
	for (int d = 0; d < 2; d++)
		atomic_store(&h->dir[d].armed, 1);
	h->magic = SEG_MAGIC;
	return 0;
}

/* A segment received from the peer, mapped len bytes: its header must
 * agree with the size we mapped.  Returns 0 and the ring size, or -EPROTO. */
int seg_check(const struct seg_hdr *h, size_t len, uint32_t *ring)
{
	uint32_t r;

	if (len < SEG_HDR || h->magic != SEG_MAGIC || h->version != SEG_VERSION)
		return -EPROTO;
	r = h->ring;
	if (r < RING_MIN || r > RING_MAX || (r & (r - 1)) || seg_size(r) != len)
		return -EPROTO;
	*ring = r;
	return 0;
}

/* Copy len bytes between linear memory p and the ring buf (size, a
 * power of two) from byte position pos on, wrapping at its end. */
static void wrap_copy(uint8_t *buf, uint32_t size, uint64_t pos, uint8_t *p,
		      size_t len, bool into_ring)
{
	while (len) {
		size_t off = (size_t)(pos & (size - 1));
		size_t n = size - off < len ? size - off : len;

		if (into_ring)
			memcpy(buf + off, p, n);
		else
			memcpy(p, buf + off, n);
		p += n;
		pos += n;
		len -= n;
	}
}

/*
 * Append up to max bytes from iov (after the first skip bytes of it) to
 * direction d, as many as there is room for; publishes the new head.
 * Returns the bytes written (0: full), or SIZE_MAX on impossible indices.
 */
size_t ring_put(struct seg_dir *d, uint8_t *buf, uint32_t size,
		const struct iovec *iov, size_t niov, size_t skip, size_t max)
{
	int64_t room = ring_room(d, size);
	uint64_t h = atomic_load_explicit(&d->head, memory_order_relaxed);
	size_t done = 0, want;

	if (room < 0)
		return SIZE_MAX;
	want = max < (size_t)room ? max : (size_t)room;
	for (size_t i = 0; i < niov && done < want; i++) {
		const uint8_t *src = iov[i].iov_base;
		size_t len = iov[i].iov_len;

		if (skip >= len) {
			skip -= len;
			continue;
		}
		src += skip;
		len -= skip;
		skip = 0;
		if (len > want - done)
			len = want - done;
		wrap_copy(buf, size, h + done, (uint8_t *)src, len, true);
		done += len;
	}
	if (done)
		atomic_store_explicit(&d->head, h + done, memory_order_release);
	return done;
}

/*
 * Take up to max bytes from direction d into iov (peek: leave them; iov
 * NULL: discard them).
 * Returns the bytes copied, or -1 on impossible indices.
 */
int64_t ring_get(struct seg_dir *d, uint8_t *buf, uint32_t size,
		 const struct iovec *iov, size_t niov, size_t max, bool peek)
{
	int64_t avail = ring_avail(d, size);
	uint64_t t = atomic_load_explicit(&d->tail, memory_order_relaxed);
	size_t done = 0, want;

	if (avail < 0)
		return -1;
	want = max < (size_t)avail ? max : (size_t)avail;
	if (!iov)
		done = want;    /* MSG_TRUNC: discard */
	for (size_t i = 0; iov && i < niov && done < want; i++) {
		uint8_t *dst = iov[i].iov_base;
		size_t len = iov[i].iov_len;

		if (len > want - done)
			len = want - done;
		wrap_copy(buf, size, t + done, dst, len, false);
		done += len;
	}
	if (done && !peek)
		atomic_store_explicit(&d->tail, t + done, memory_order_release);
	return (int64_t)done;
}

/*
 * Take the lock word w for me (a pid).  The holder copies at most a ring
 * and lets go, so a wait is short; a holder that died is found by
 * alive() and its lock taken over.  A word naming a live process forever
 * (the peer scribbled it) is the peer's way of stalling its own
 * connection, as not reading would be.  Returns 0.
 */
int ring_lock(_Atomic uint32_t *w, uint32_t me, bool (*alive)(uint32_t))
{
	for (unsigned i = 0;; i++) {
		uint32_t cur = 0;

		if (atomic_compare_exchange_weak_explicit(w, &cur, me, memory_order_acquire,
							  memory_order_relaxed))
			return 0;
		/* our own pid: left by a thread of ours that died, or by the
		 * parent before fork (the caller holds its process-local
		 * mutex, so no other thread of ours holds it) */
		if (cur == me || ((i & 255) == 255 && cur && !alive(cur))) {
			if (atomic_compare_exchange_strong_explicit(w, &cur, me, memory_order_acquire,
								    memory_order_relaxed))
				return 0;
			continue;
		}
		if (i < 64)
			continue;
		if (i < 4096) {
			sched_yield();
		} else {
			struct timespec ts = { 0, 50000 };
			nanosleep(&ts, NULL);
		}
	}
}

void ring_unlock(_Atomic uint32_t *w, uint32_t me)
{
	uint32_t cur = me;

	atomic_compare_exchange_strong_explicit(w, &cur, 0, memory_order_release,
						memory_order_relaxed);
}
