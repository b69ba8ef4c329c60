/*
 * ring.h — the shared-memory segment of a fast connection: two SPSC byte
 * rings, one per direction, and the words both ends use to wake each
 * other and to say EOF or reset.
 *
 * The segment is shared with the peer process, so everything read from it
 * is untrusted: ring_avail()/ring_room() validate the indices on every
 * look (a bad pair is a corrupt segment: the connection is reset), copies
 * mask every offset into the ring, and nothing read from the segment is
 * ever used as a size, a pointer or an fd.
 *
 * Layout (all offsets fixed by the version): one 4 KiB header page, then
 * the ring of direction 0 (client to server), then direction 1.  Indices
 * are free-running 64-bit byte counts; a ring's size is a power of two.
 */
#ifndef FLP_RING_H
#define FLP_RING_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define SEG_MAGIC 0x464c4f4f50534547ull /* "FLOOPSEG" */
#define SEG_VERSION 1
#define SEG_HDR 4096u
#define RING_MIN 4096u
#define RING_MAX (64u << 20)

/* One direction.  The writer's words and the reader's words sit on
 * separate cache lines: each end mostly writes its own. */
struct seg_dir {
	/* written by the writer */
	_Atomic uint64_t head;          /* bytes ever written */
	_Atomic uint32_t shut;          /* the writer shut down (EOF after the data) */
	_Atomic uint32_t want_space;    /* the writer waits for room: bell it */
	_Atomic uint32_t wlock;         /* writers' lock: the holder's pid */
	uint8_t pad0[64 - 20];
	/* written by the reader */
	_Atomic uint64_t tail;          /* bytes ever read */
	_Atomic uint32_t armed;         /* the reader is not looking: bell it */
	_Atomic uint32_t rlock;         /* readers' lock: the holder's pid */
	uint8_t pad1[64 - 16];
};

/* One end (0 client, 1 server). */
struct seg_side {
	_Atomic uint64_t bells_in;      /* bells sent to this end's socket */
	_Atomic uint64_t bells_eaten;   /* ... and read back by it */
	_Atomic uint32_t reset;         /* this end aborted (SO_LINGER 0) */
	uint8_t pad[64 - 20];
};

struct seg_hdr {
	uint64_t magic;
	uint32_t version;
	uint32_t ring;                  /* bytes per direction */
	uint8_t pad[64 - 16];
	struct seg_dir dir[2];
	struct seg_side side[2];
};

_Static_assert(sizeof(struct seg_hdr) <= SEG_HDR, "segment header fits its page");

static inline size_t seg_size(uint32_t ring)
{
	return SEG_HDR + 2 * (size_t)ring;
}

/* The ring bytes of direction d in a mapped segment of ring size `ring`. */
static inline uint8_t *seg_ring(struct seg_hdr *h, uint32_t ring, int d)
{
	return (uint8_t *)h + SEG_HDR + (size_t)d * ring;
}

/* Bytes readable in direction d, or -1 if the indices are impossible. */
static inline int64_t ring_avail(struct seg_dir *d, uint32_t size)
{
	uint64_t t = atomic_load_explicit(&d->tail, memory_order_relaxed);
	uint64_t h = atomic_load_explicit(&d->head, memory_order_acquire);

	return h - t > size ? -1 : (int64_t)(h - t);
}

/* Bytes writable in direction d, or -1 if the indices are impossible. */
static inline int64_t ring_room(struct seg_dir *d, uint32_t size)
{
	uint64_t h = atomic_load_explicit(&d->head, memory_order_relaxed);
	uint64_t t = atomic_load_explicit(&d->tail, memory_order_acquire);

	return h - t > size ? -1 : (int64_t)(size - (h - t));
}

int seg_init(struct seg_hdr *h, uint32_t ring);
int seg_check(const struct seg_hdr *h, size_t len, uint32_t *ring);
size_t ring_put(struct seg_dir *d, uint8_t *buf, uint32_t size,
		const struct iovec *iov, size_t niov, size_t skip, size_t max);
int64_t ring_get(struct seg_dir *d, uint8_t *buf, uint32_t size,
		 const struct iovec *iov, size_t niov, size_t max, bool peek);
int ring_lock(_Atomic uint32_t *w, uint32_t me, bool (*alive)(uint32_t));
void ring_unlock(_Atomic uint32_t *w, uint32_t me);

#endif
