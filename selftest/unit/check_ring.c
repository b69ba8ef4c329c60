/*
 * check_ring.c — the shared-memory segment (ring.c): segment header
 * validation, byte-exact copies in and out of a ring through iovecs, a
 * producer and a consumer thread moving 64 MiB, a hostile peer scribbling
 * the indices, and the owner-pid locks.
 *
 * Every byte that goes through a ring comes from a seeded, position-
 * addressable stream (stream_fill), so any chunk read back is checked
 * against what was written at that position.  The fuzz tests map their
 * segment and buffers between PROT_NONE guard pages and compare the
 * segment against a model after every call, so a stray access fails even
 * without ASan.  Threads never call Check: they report through their
 * argument, and every wait is bounded.
 */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>

#include "suites.h"
#include "ring.h"

#define SMALL 4096u                     /* the ring most tests use */
#define SPSC_BYTES (64ull << 20)
/* TSan checks every byte the fuzz's memcmp reads (minutes for the full
 * count); the bounds the fuzz is about are ASan's and the guard pages'
 * business, so a TSan build does a fraction.  The 64 MiB run, where TSan
 * matters, only gets more time. */
#if defined(__SANITIZE_THREAD__)
#define FUZZ_ITERS 25000
#define SPSC_LIMIT_US 45000000ull       /* TSan: several times slower */
#else
#define FUZZ_ITERS 200000
#define SPSC_LIMIT_US 20000000ull
#endif
#define LOCK_LIMIT_US 5000000ull
#define DEAD_PID 0x3ffffff0u            /* above any pid_max */
#define LIVE_PID 0x3ffffff1u
#define CANARY 0xc5                     /* unwritten destination bytes */

/* splitmix64: the tests' PRNG; *s is the state. */
static uint64_t rnd(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* A uniform-enough value in [0, n). */
static uint64_t below(uint64_t *s, uint64_t n)
{
	return n ? rnd(s) % n : 0;
}

/* n bytes of stream `seed` from byte position pos: byte p is byte p % 8
 * of a hash of (seed, p / 8), so a reader can check any chunk without
 * replaying what came before. */
static void stream_fill(uint8_t *dst, uint64_t seed, uint64_t pos, size_t n)
{
	while (n) {
		uint64_t st = seed ^ ((pos >> 3) * 0xd6e8feb86659fd93ull);
		uint64_t w = rnd(&st);
		size_t o = pos & 7, k = 8 - o < n ? 8 - o : n;

		for (size_t i = 0; i < k; i++)
			dst[i] = (uint8_t)(w >> (8 * (o + i)));
		dst += k;
		pos += k;
		n -= k;
	}
}

/* Loads as functions, so a failed assertion prints the expression. */
static uint64_t ld64(_Atomic uint64_t *p)
{
	return atomic_load(p);
}

static uint32_t ld32(_Atomic uint32_t *p)
{
	return atomic_load(p);
}

static size_t min3(size_t a, size_t b, size_t c)
{
	size_t m = a < b ? a : b;

	return m < c ? m : c;
}

/* A heap segment for the single-threaded tests: header initialised,
 * indices of both directions moved to start. */
static struct seg_hdr *seg_new(uint32_t ring, uint64_t start)
{
	struct seg_hdr *h = aligned_alloc(SEG_HDR, seg_size(ring));

	ck_assert_ptr_nonnull(h);
	memset(h, 0x6b, seg_size(ring));
	ck_assert_int_eq(seg_init(h, ring), 0);
	for (int d = 0; d < 2; d++) {
		atomic_store(&h->dir[d].head, start);
		atomic_store(&h->dir[d].tail, start);
	}
	return h;
}

/* Cut [p, p + len) into at most cap iovecs at random points, with
 * zero-length ones (NULL or not) among them.  Returns the count. */
static size_t split(uint8_t *p, size_t len, struct iovec *iov, size_t cap, uint64_t *rs)
{
	size_t n = 0;

	while (n < cap - 1 && (len || below(rs, 3) == 0)) {
		size_t k = below(rs, 4) == 0 ? 0 : below(rs, len + 1);

		if (n == cap - 2 || below(rs, 4) == 0)
			k = len;        /* sometimes all the rest at once */
		iov[n].iov_base = k == 0 && below(rs, 2) ? NULL : p;
		iov[n++].iov_len = k;
		p += k;
		len -= k;
		if (!len && below(rs, 2))
			break;
	}
	if (len) {
		iov[n].iov_base = p;
		iov[n++].iov_len = len;
	}
	return n;
}

/* ---- the segment header ---- */

/* A fresh mapping of seg_size(ring) bytes (lazy: RING_MAX costs nothing). */
static struct seg_hdr *seg_map(uint32_t ring)
{
	void *p = mmap(NULL, seg_size(ring), PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ck_assert_msg(p != MAP_FAILED, "mmap %zu: %s", seg_size(ring), strerror(errno));
	return p;
}

START_TEST(test_seg_init_sizes)
{
	static const uint32_t bad[] = {
		0, 1, 2, 2048, RING_MIN - 1, RING_MIN + 1, 6144, 3 * RING_MIN,
		RING_MIN * 2 + 64, RING_MAX - 1, RING_MAX + 1, RING_MAX + RING_MIN,
		RING_MAX * 2u, 0x80000000u, UINT32_MAX,
	};
	static const uint32_t good[] = { RING_MIN, 8192, 65536, 1u << 20, RING_MAX };
	uint8_t *buf = aligned_alloc(SEG_HDR, SEG_HDR), *copy = malloc(SEG_HDR);

	ck_assert_ptr_nonnull(buf);
	ck_assert_ptr_nonnull(copy);
	memset(buf, 0xa5, SEG_HDR);
	memcpy(copy, buf, SEG_HDR);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(seg_init((struct seg_hdr *)buf, bad[i]) == -EINVAL,
			      "seg_init accepted ring size %u", bad[i]);
		ck_assert_msg(!memcmp(buf, copy, SEG_HDR),
			      "seg_init wrote a header it rejected (size %u)", bad[i]);
	}
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct seg_hdr *h = seg_map(good[i]);

		memset(h, 0xa5, SEG_HDR);
		ck_assert_int_eq(seg_init(h, good[i]), 0);
		ck_assert_uint_eq(h->magic, SEG_MAGIC);
		ck_assert_uint_eq(h->version, SEG_VERSION);
		ck_assert_uint_eq(h->ring, good[i]);
		for (int d = 0; d < 2; d++) {
			ck_assert_uint_eq(ld64(&h->dir[d].head), 0);
			ck_assert_uint_eq(ld64(&h->dir[d].tail), 0);
			ck_assert_uint_eq(ld32(&h->dir[d].shut), 0);
			ck_assert_uint_eq(ld32(&h->dir[d].want_space), 0);
			ck_assert_uint_eq(ld32(&h->dir[d].wlock), 0);
			ck_assert_uint_eq(ld32(&h->dir[d].rlock), 0);
			/* a reader starts out not looking: the first write bells */
			ck_assert_uint_eq(ld32(&h->dir[d].armed), 1);
			ck_assert_int_eq(ring_avail(&h->dir[d], good[i]), 0);
			ck_assert_int_eq(ring_room(&h->dir[d], good[i]), good[i]);
			ck_assert_uint_eq(ld64(&h->side[d].bells_in), 0);
			ck_assert_uint_eq(ld64(&h->side[d].bells_eaten), 0);
			ck_assert_uint_eq(ld32(&h->side[d].reset), 0);
		}
		munmap(h, seg_size(good[i]));
	}
	free(buf);
	free(copy);
}
END_TEST

/* seg_check of h mapped len bytes must fail with -EPROTO and leave *ring. */
static void check_rejects(const struct seg_hdr *h, size_t len, const char *what)
{
	uint32_t r = 0xdeadbeef;

	ck_assert_msg(seg_check(h, len, &r) == -EPROTO, "seg_check accepted %s", what);
	ck_assert_msg(r == 0xdeadbeef, "seg_check set the ring size for %s", what);
}

START_TEST(test_seg_check)
{
	static const uint32_t sizes[] = { RING_MIN, 16384, 1u << 20, RING_MAX };
	static const uint32_t bad_ring[] = {
		0, 1, 2048, RING_MIN - 1, RING_MIN + 1, 6144, 3 * RING_MIN,
		RING_MAX - RING_MIN, RING_MAX * 2u, 0x80000000u, UINT32_MAX,
	};
	char what[96];

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint32_t ring = sizes[i], r = 0;
		size_t len = seg_size(ring);
		struct seg_hdr *h = seg_map(ring);

		ck_assert_int_eq(seg_init(h, ring), 0);
		ck_assert_int_eq(seg_check(h, len, &r), 0);
		ck_assert_uint_eq(r, ring);

		/* the length must be exactly the segment's */
		const size_t lens[] = { 0, 16, SEG_HDR - 1, SEG_HDR, len - 1, len + 1,
					len - ring, len + ring, seg_size(ring * 2u),
					seg_size(ring / 2), SIZE_MAX };
		for (size_t j = 0; j < sizeof(lens) / sizeof(lens[0]); j++) {
			snprintf(what, sizeof(what), "length %zu for ring %u", lens[j], ring);
			check_rejects(h, lens[j], what);
		}

		/* magic: every byte matters */
		for (int b = 0; b < 8; b++) {
			h->magic ^= 0x20ull << (8 * b);
			snprintf(what, sizeof(what), "magic %#llx", (unsigned long long)h->magic);
			check_rejects(h, len, what);
			h->magic ^= 0x20ull << (8 * b);
		}
		h->magic = 0;
		check_rejects(h, len, "magic 0");
		h->magic = SEG_MAGIC;

		const uint32_t vers[] = { 0, SEG_VERSION + 1, SEG_VERSION | 0x100, UINT32_MAX };
		for (size_t j = 0; j < sizeof(vers) / sizeof(vers[0]); j++) {
			h->version = vers[j];
			snprintf(what, sizeof(what), "version %u", vers[j]);
			check_rejects(h, len, what);
		}
		h->version = SEG_VERSION;

		/* a bad ring size, with the length that would match it */
		for (size_t j = 0; j < sizeof(bad_ring) / sizeof(bad_ring[0]); j++) {
			h->ring = bad_ring[j];
			snprintf(what, sizeof(what), "ring %u (length %zu)", bad_ring[j],
				 seg_size(bad_ring[j]));
			check_rejects(h, seg_size(bad_ring[j]), what);
			snprintf(what, sizeof(what), "ring %u (length %zu)", bad_ring[j], len);
			check_rejects(h, len, what);
		}
		/* a good size that is not the mapped one */
		h->ring = ring == RING_MAX ? ring / 2 : ring * 2;
		snprintf(what, sizeof(what), "ring %u mapped as %zu", h->ring, len);
		check_rejects(h, len, what);
		h->ring = ring;

		ck_assert_int_eq(seg_check(h, len, &r), 0);
		ck_assert_uint_eq(r, ring);
		munmap(h, len);
	}
}
END_TEST

/* ---- copies, single-threaded ---- */

START_TEST(test_bytes_across_the_wrap)
{
	struct seg_hdr *h = seg_new(SMALL, SMALL - 3);
	struct seg_dir *d = &h->dir[0];
	uint8_t *b = seg_ring(h, SMALL, 0), *other = seg_ring(h, SMALL, 1);
	char abc[] = "abc", dj[] = "defghij", x[] = "XYZW12", out[32], o2[8];
	struct iovec in[] = { { abc, 3 }, { NULL, 0 }, { dj, 7 } };
	struct iovec one = { x, 6 };
	struct iovec peek[] = { { out, 3 }, { NULL, 0 }, { out + 3, 20 } };
	struct iovec get = { o2, 5 };

	/* skip 1: "bcdefghij" from offset 4093, wrapping after 3 bytes */
	ck_assert_uint_eq(ring_put(d, b, SMALL, in, 3, 1, SIZE_MAX), 9);
	ck_assert_mem_eq(b + SMALL - 3, "bcd", 3);
	ck_assert_mem_eq(b, "efghij", 6);
	ck_assert_uint_eq(ld64(&d->head), SMALL + 6);
	ck_assert_uint_eq(ld64(&d->tail), SMALL - 3);
	/* max 4 of 6 */
	ck_assert_uint_eq(ring_put(d, b, SMALL, &one, 1, 0, 4), 4);
	ck_assert_mem_eq(b + 6, "XYZW", 4);
	ck_assert_uint_eq(b[10], 0x6b);
	/* a skip past everything, and max 0: nothing, head unmoved */
	ck_assert_uint_eq(ring_put(d, b, SMALL, in, 3, 10, SIZE_MAX), 0);
	ck_assert_uint_eq(ring_put(d, b, SMALL, in, 3, 0, 0), 0);
	ck_assert_uint_eq(ring_put(d, b, SMALL, NULL, 0, 0, SIZE_MAX), 0);
	ck_assert_uint_eq(ld64(&d->head), SMALL + 10);
	ck_assert_int_eq(ring_avail(d, SMALL), 13);
	ck_assert_int_eq(ring_room(d, SMALL), SMALL - 13);

	/* peek across the wrap into 23 bytes of iovecs: 13, nothing consumed */
	memset(out, '.', sizeof(out));
	ck_assert_int_eq(ring_get(d, b, SMALL, peek, 3, SIZE_MAX, true), 13);
	ck_assert_mem_eq(out, "bcdefghijXYZW.", 14);
	ck_assert_uint_eq(ld64(&d->tail), SMALL - 3);
	/* discard 2 */
	ck_assert_int_eq(ring_get(d, b, SMALL, NULL, 0, 2, false), 2);
	ck_assert_uint_eq(ld64(&d->tail), SMALL - 1);
	/* a peek that discards: the count, nothing moves */
	ck_assert_int_eq(ring_get(d, b, SMALL, NULL, 5, SIZE_MAX, true), 11);
	ck_assert_uint_eq(ld64(&d->tail), SMALL - 1);
	/* take 5 (wrapping), then max 3 of the rest */
	memset(o2, '.', sizeof(o2));
	ck_assert_int_eq(ring_get(d, b, SMALL, &get, 1, SIZE_MAX, false), 5);
	ck_assert_mem_eq(o2, "defgh...", 8);
	memset(o2, '.', sizeof(o2));
	ck_assert_int_eq(ring_get(d, b, SMALL, &get, 1, 3, false), 3);
	ck_assert_mem_eq(o2, "ijX.....", 8);
	ck_assert_int_eq(ring_get(d, b, SMALL, &get, 0, SIZE_MAX, false), 0);
	ck_assert_int_eq(ring_avail(d, SMALL), 3);
	ck_assert_int_eq(ring_get(d, b, SMALL, NULL, 0, SIZE_MAX, false), 3);
	ck_assert_int_eq(ring_get(d, b, SMALL, NULL, 0, SIZE_MAX, false), 0);
	ck_assert_int_eq(ring_get(d, b, SMALL, &get, 1, SIZE_MAX, true), 0);
	ck_assert_uint_eq(ld64(&d->tail), SMALL + 10);
	ck_assert_int_eq(ring_room(d, SMALL), SMALL);
	/* the other direction's ring and indices were not touched */
	for (size_t i = 0; i < SMALL; i++)
		ck_assert_uint_eq(other[i], 0x6b);
	ck_assert_uint_eq(ld64(&h->dir[1].head), SMALL - 3);
	ck_assert_uint_eq(ld64(&h->dir[1].tail), SMALL - 3);
	free(h);
}
END_TEST

/* The single-threaded round trip: both ends' stream positions. */
struct rt {
	struct seg_dir *d;
	uint8_t *b;
	uint64_t seed, wpos, rpos, start, rs;
	uint8_t src[3 * SMALL], dst[3 * SMALL], exp[3 * SMALL];
};

/* avail and room agree with what went in and out, and sum to the size. */
static void rt_invariants(struct rt *t)
{
	int64_t a = ring_avail(t->d, SMALL), r = ring_room(t->d, SMALL);

	ck_assert_int_eq(a, (int64_t)(t->wpos - t->rpos));
	ck_assert_int_eq(a + r, SMALL);
	ck_assert_uint_eq(ld64(&t->d->head), t->start + t->wpos);
	ck_assert_uint_eq(ld64(&t->d->tail), t->start + t->rpos);
}

/* Put len stream bytes behind skip bytes of junk, in iovecs, at most max;
 * returns what ring_put did, checked against the room there was. */
static size_t rt_put(struct rt *t, size_t len, size_t skip, size_t max)
{
	struct iovec iov[8];
	size_t room = SMALL - (t->wpos - t->rpos), n, want;

	ck_assert_uint_le(skip + len, sizeof(t->src));
	for (size_t i = 0; i < skip; i++)
		t->src[i] = (uint8_t)~i;
	stream_fill(t->src + skip, t->seed, t->wpos, len);
	n = split(t->src, skip + len, iov, 8, &t->rs);
	want = min3(max, room, len);
	ck_assert_uint_eq(ring_put(t->d, t->b, SMALL, iov, n, skip, max), want);
	t->wpos += want;
	rt_invariants(t);
	return want;
}

/* Get into len bytes of iovecs, at most max (peek: leave them; discard:
 * no iovecs); the bytes must be the stream's at the read position and
 * nothing past them written. */
static size_t rt_get(struct rt *t, size_t len, size_t max, bool peek, bool discard)
{
	struct iovec iov[8];
	size_t avail = t->wpos - t->rpos, n = 0, want;
	int64_t got;

	ck_assert_uint_le(len, sizeof(t->dst));
	memset(t->dst, 0xee, len);
	if (!discard)
		n = split(t->dst, len, iov, 8, &t->rs);
	want = min3(max, avail, discard ? SIZE_MAX : len);
	got = ring_get(t->d, t->b, SMALL, discard ? NULL : iov, n, max, peek);
	ck_assert_int_eq(got, (int64_t)want);
	if (!discard) {
		stream_fill(t->exp, t->seed, t->rpos, want);
		memset(t->exp + want, 0xee, len - want);
		ck_assert_msg(!memcmp(t->dst, t->exp, len),
			      "bytes %llu..%llu of the stream differ (len %zu, peek %d)",
			      (unsigned long long)t->rpos,
			      (unsigned long long)(t->rpos + want), len, peek);
	}
	if (!peek)
		t->rpos += want;
	rt_invariants(t);
	return want;
}

/* Fill the ring to the brim, check full, drain it, check empty. */
static void rt_full_empty(struct rt *t)
{
	while (rt_put(t, 1 + below(&t->rs, 2 * SMALL), below(&t->rs, SMALL / 2), SIZE_MAX))
		;
	ck_assert_int_eq(ring_room(t->d, SMALL), 0);
	ck_assert_int_eq(ring_avail(t->d, SMALL), SMALL);
	ck_assert_uint_eq(rt_put(t, 100, 5, SIZE_MAX), 0);
	ck_assert_uint_eq(rt_put(t, 1, 0, 1), 0);
	/* a full ring peeked whole: every byte, across the wrap */
	ck_assert_uint_eq(rt_get(t, SMALL + 7, SIZE_MAX, true, false), SMALL);
	while (rt_get(t, below(&t->rs, 3 * SMALL), SIZE_MAX, false, below(&t->rs, 3) == 0))
		;
	/* a zero-length get may return 0 with bytes there: go on until empty */
	while (t->rpos < t->wpos)
		rt_get(t, SMALL, SIZE_MAX, false, false);
	ck_assert_int_eq(ring_get(t->d, t->b, SMALL, NULL, 0, SIZE_MAX, false), 0);
	ck_assert_int_eq(rt_get(t, 64, SIZE_MAX, false, false), 0);
	ck_assert_int_eq(rt_get(t, 64, SIZE_MAX, true, false), 0);
	ck_assert_int_eq(ring_room(t->d, SMALL), SMALL);
}

/* 4 MiB through the 4 KiB ring in random pieces, indices starting at
 * start.  Returns the final index. */
static uint64_t roundtrip(uint64_t start, uint64_t seed)
{
	struct rt *t = calloc(1, sizeof(*t));
	struct seg_hdr *h = seg_new(SMALL, start);
	uint64_t end;

	ck_assert_ptr_nonnull(t);
	t->d = &h->dir[1];
	t->b = seg_ring(h, SMALL, 1);
	t->seed = seed;
	t->rs = seed;
	t->start = start;
	for (unsigned it = 0; t->rpos < (4u << 20); it++) {
		size_t max = below(&t->rs, 4) ? SIZE_MAX : below(&t->rs, SMALL + 1);

		if (it % 331 == 330) {
			rt_full_empty(t);
			continue;
		}
		switch (below(&t->rs, 6)) {
		case 0:
		case 1:
			rt_put(t, below(&t->rs, 2 * SMALL), below(&t->rs, 4) ? 0 : below(&t->rs, 300), max);
			break;
		case 2:
		case 3:
			rt_get(t, below(&t->rs, 2 * SMALL), max, false, false);
			break;
		case 4: {
			/* a peek, then the same bytes taken for real */
			size_t len = below(&t->rs, 2 * SMALL), n = rt_get(t, len, max, true, false);
			uint8_t *seen = malloc(n + 1);

			memcpy(seen, t->dst, n);
			ck_assert_uint_eq(rt_get(t, n, SIZE_MAX, false, false), n);
			ck_assert_mem_eq(seen, t->dst, n);
			free(seen);
			break;
		}
		default:
			rt_get(t, 0, max, below(&t->rs, 4) == 0, true);
			break;
		}
	}
	end = atomic_load(&t->d->tail);
	free(h);
	free(t);
	return end;
}

START_TEST(test_roundtrip)
{
	ck_assert_uint_ge(roundtrip(0, 0x5eed0001), 4u << 20);
}
END_TEST

/* The same across the 64-bit wrap of the free-running indices. */
START_TEST(test_roundtrip_index_wrap)
{
	uint64_t start = UINT64_MAX - (2u << 20) + 17;

	ck_assert_uint_lt(roundtrip(start, 0x5eed0002), start);
}
END_TEST

/* ---- a producer thread and a consumer thread ---- */

struct spsc {
	struct seg_dir *d;
	uint8_t *b;
	uint64_t seed, deadline;
	_Atomic int stop;       /* the consumer is done: the producer stops */
};

/* One end's result, read after the join. */
struct spsc_end {
	struct spsc *s;
	uint64_t done;          /* bytes put, or taken and checked */
	int64_t bad;            /* a negative count from the ring, or 0 */
	uint64_t mismatch;      /* first byte position that differed + 1 */
};

/* Spin, then yield; false once the deadline has passed or the consumer
 * is done. */
static bool spsc_wait(struct spsc *s, unsigned *spins)
{
	if (++*spins > 64)
		sched_yield();
	if ((*spins & 63) == 0 && flp_now_us() > s->deadline)
		return false;
	return !atomic_load_explicit(&s->stop, memory_order_relaxed);
}

static void *spsc_producer(void *a)
{
	struct spsc_end *e = a;
	struct spsc *s = e->s;
	uint64_t rs = s->seed ^ 1, pos = 0;
	static __thread uint8_t buf[2 * SMALL];
	unsigned spins = 0;

	while (pos < SPSC_BYTES) {
		size_t len = 1 + below(&rs, sizeof(buf)), n;
		struct iovec iov[3] = { { buf, 0 }, { NULL, 0 }, { buf, 0 } };
		size_t cut = below(&rs, len + 1);

		if (len > SPSC_BYTES - pos)
			len = SPSC_BYTES - pos;
		if (cut > len)
			cut = len;
		stream_fill(buf, s->seed, pos, len);
		iov[0].iov_len = cut;
		iov[2].iov_base = buf + cut;
		iov[2].iov_len = len - cut;
		/* a short put leaves the rest for the next, regenerated */
		while ((n = ring_put(s->d, s->b, SMALL, iov, 3, 0, len)) == 0)
			if (!spsc_wait(s, &spins))
				goto out;
		if (n == SIZE_MAX) {
			e->bad = -1;
			goto out;
		}
		spins = 0;
		pos += n;
	}
out:
	e->done = pos;
	return NULL;
}

/* The consumer: every byte checked against the stream. */
static void spsc_consume(struct spsc_end *e)
{
	static __thread uint8_t buf[2 * SMALL], exp[2 * SMALL];
	struct spsc *s = e->s;
	uint64_t rs = s->seed ^ 2, pos = 0;
	unsigned spins = 0;
	int64_t n;

	while (pos < SPSC_BYTES) {
		size_t len = 1 + below(&rs, sizeof(buf));
		struct iovec iov[2] = { { buf, len / 3 }, { buf + len / 3, len - len / 3 } };

		n = ring_get(s->d, s->b, SMALL, iov, 2, SIZE_MAX, false);
		if (n < 0) {
			e->bad = n;
			break;
		}
		if (n == 0) {
			if (!spsc_wait(s, &spins))
				break;
			continue;
		}
		spins = 0;
		stream_fill(exp, s->seed, pos, (size_t)n);
		if (memcmp(buf, exp, (size_t)n)) {
			for (int64_t i = 0; i < n; i++)
				if (buf[i] != exp[i]) {
					e->mismatch = pos + (uint64_t)i + 1;
					break;
				}
			break;
		}
		pos += (uint64_t)n;
	}
	e->done = pos;
	atomic_store(&s->stop, 1);
}

START_TEST(test_spsc_64mib)
{
	struct seg_hdr *h = seg_new(SMALL, 0);
	struct spsc s = { .d = &h->dir[0], .b = seg_ring(h, SMALL, 0), .seed = 0x5eed0064 };
	struct spsc_end prod = { .s = &s }, cons = { .s = &s };
	uint64_t t0 = flp_now_us(), us;
	pthread_t th;

	s.deadline = t0 + SPSC_LIMIT_US;
	atomic_init(&s.stop, 0);
	ck_assert_int_eq(pthread_create(&th, NULL, spsc_producer, &prod), 0);
	spsc_consume(&cons);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	us = flp_now_us() - t0;

	ck_assert_msg(cons.mismatch == 0, "byte %llu of the stream differs",
		      (unsigned long long)(cons.mismatch - 1));
	ck_assert_msg(prod.bad == 0 && cons.bad == 0, "impossible indices (put %lld, get %lld)",
		      (long long)prod.bad, (long long)cons.bad);
	ck_assert_msg(cons.done == SPSC_BYTES,
		      "%llu of %llu bytes through in %llu ms (put %llu)",
		      (unsigned long long)cons.done, (unsigned long long)SPSC_BYTES,
		      (unsigned long long)us / 1000, (unsigned long long)prod.done);
	ck_assert_uint_eq(prod.done, SPSC_BYTES);
	ck_assert_uint_eq(ld64(&h->dir[0].head), SPSC_BYTES);
	ck_assert_uint_eq(ld64(&h->dir[0].tail), SPSC_BYTES);
	ck_assert_uint_le(us, SPSC_LIMIT_US);
	free(h);
}
END_TEST

/* ---- a hostile peer ---- */

/* A buffer of len bytes that ends where a PROT_NONE page begins, with
 * another before it. */
struct gbuf {
	uint8_t *map, *p;
	size_t maplen, len;
};

static void gbuf_new(struct gbuf *g, size_t len)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE), body = (len + pg - 1) / pg * pg;

	g->maplen = body + 2 * pg;
	g->map = mmap(NULL, g->maplen, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert(g->map != MAP_FAILED);
	ck_assert_int_eq(mprotect(g->map + pg, body, PROT_READ | PROT_WRITE), 0);
	g->p = g->map + pg + body - len;
	g->len = len;
}

/* The body read-only (the guard pages stay PROT_NONE). */
static void gbuf_readonly(struct gbuf *g)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);

	ck_assert_int_eq(mprotect(g->map + pg, g->maplen - 2 * pg, PROT_READ), 0);
}

static void gbuf_free(struct gbuf *g)
{
	munmap(g->map, g->maplen);
}

/* A random 64-bit index: anywhere, or near 0, 2^63 or 2^64. */
static uint64_t any_index(uint64_t *rs, uint32_t size)
{
	switch (below(rs, 4)) {
	case 0:  return rnd(rs);
	case 1:  return below(rs, 4 * (uint64_t)size);
	case 2:  return (1ull << 63) - 2 * (uint64_t)size + below(rs, 4 * (uint64_t)size);
	default: return UINT64_MAX - below(rs, 4 * (uint64_t)size);
	}
}

/* What a hostile peer may do between two of our calls: any index pair,
 * mostly near the edge of valid, or junk in the other words. */
static void scribble(struct seg_hdr *h, int dn, uint32_t size, uint64_t *rs)
{
	struct seg_dir *d = &h->dir[dn];
	uint64_t base = any_index(rs, size), h2, t2;

	switch (below(rs, 9)) {
	case 0:                 /* anything */
		atomic_store(&d->head, rnd(rs));
		atomic_store(&d->tail, rnd(rs));
		return;
	case 1:                 /* valid, but not what we left */
		t2 = base;
		h2 = base + below(rs, (uint64_t)size + 1);
		break;
	case 2:                 /* just more than a ring */
		t2 = base;
		h2 = base + size + 1 + below(rs, 3 * (uint64_t)size);
		break;
	case 3:                 /* head behind tail */
		t2 = base;
		h2 = base - 1 - below(rs, 2 * (uint64_t)size);
		break;
	case 4:                 /* exactly full or exactly empty */
		t2 = base;
		h2 = base + (below(rs, 2) ? size : 0);
		break;
	case 5:                 /* one index moved by a little */
		h2 = atomic_load(&d->head) + below(rs, 2 * (uint64_t)size + 3) - size - 1;
		t2 = atomic_load(&d->tail);
		if (below(rs, 2)) {
			t2 = h2 + atomic_load(&d->tail) - atomic_load(&d->head);
			h2 = atomic_load(&d->head);
		}
		break;
	case 6: {               /* the other words, either direction, both sides */
		struct seg_dir *o = &h->dir[below(rs, 2)];
		uint8_t *pad = below(rs, 2) ? o->pad0 : o->pad1;

		atomic_store(&o->shut, (uint32_t)rnd(rs));
		atomic_store(&o->want_space, (uint32_t)rnd(rs));
		atomic_store(&o->wlock, (uint32_t)rnd(rs));
		atomic_store(&o->armed, (uint32_t)rnd(rs));
		atomic_store(&o->rlock, (uint32_t)rnd(rs));
		pad[below(rs, 44)] = (uint8_t)rnd(rs);
		atomic_store(&h->side[below(rs, 2)].bells_in, rnd(rs));
		atomic_store(&h->side[below(rs, 2)].reset, (uint32_t)rnd(rs));
		atomic_store(&h->dir[!dn].head, any_index(rs, size));
		h->ring = (uint32_t)rnd(rs);
		h->magic = rnd(rs);
		return;
	}
	default:                /* leave it: our own calls move it */
		return;
	}
	atomic_store(&d->head, h2);
	atomic_store(&d->tail, t2);
}

/* iovecs over a read-only source: anywhere in it, overlapping, empty,
 * some ending at the guard page. */
static size_t src_iovs(struct gbuf *g, struct iovec *iov, size_t cap, uint64_t *rs)
{
	size_t n = below(rs, cap + 1);

	for (size_t i = 0; i < n; i++) {
		size_t off = below(rs, g->len + 1), len;

		switch (below(rs, 4)) {
		case 0:  len = 0; break;
		case 1:  len = below(rs, 64); break;
		case 2:  len = g->len - off; break;
		default: len = below(rs, g->len - off + 1); break;
		}
		if (len > g->len - off)
			len = g->len - off;
		iov[i].iov_base = len == 0 && below(rs, 2) ? NULL : g->p + off;
		iov[i].iov_len = len;
	}
	return n;
}

/* iovecs over disjoint pieces of the destination, in order, with gaps;
 * the last may end at the guard page. */
static size_t dst_iovs(struct gbuf *g, struct iovec *iov, size_t cap, uint64_t *rs)
{
	size_t n = below(rs, cap + 1), pos = below(rs, 64);

	for (size_t i = 0; i < n; i++) {
		size_t left = pos < g->len ? g->len - pos : 0, len;

		switch (below(rs, 4)) {
		case 0:  len = 0; break;
		case 1:  len = below(rs, 64); break;
		case 2:  len = left; break;
		default: len = below(rs, left / 2 + 1); break;
		}
		if (len > left)
			len = left;
		iov[i].iov_base = len == 0 && below(rs, 2) ? NULL : g->p + pos;
		iov[i].iov_len = len;
		pos += len + below(rs, 16);
	}
	return n;
}

static size_t iov_total(const struct iovec *iov, size_t n)
{
	size_t t = 0;

	for (size_t i = 0; i < n; i++)
		t += iov[i].iov_len;
	return t;
}

static size_t fuzz_max(uint64_t *rs, uint32_t size)
{
	switch (below(rs, 4)) {
	case 0:  return SIZE_MAX;
	case 1:  return below(rs, 8);
	default: return below(rs, 2 * (uint64_t)size + 2);
	}
}

/* One call into direction dn of segment seg, its result checked against
 * a model of the whole segment (shadow) and of the destination (dexp;
 * both destinations are all CANARY between calls). */
struct fuzz {
	uint32_t size;
	struct gbuf seg, src, dst;
	uint8_t *shadow, *dexp;
	uint64_t rs;
};

static void fuzz_one(struct fuzz *f, long it)
{
	struct seg_hdr *h = (struct seg_hdr *)f->seg.p;
	uint32_t size = f->size;
	int dn = (int)below(&f->rs, 2);
	struct seg_dir *d = &h->dir[dn];
	uint8_t *ring = seg_ring(h, size, dn);
	size_t roff = (size_t)(ring - f->seg.p), mask = size - 1;
	struct iovec iov[8];
	uint64_t hd, tl;
	bool bad;
	int op;

	scribble(h, dn, size, &f->rs);
	hd = atomic_load(&d->head);
	tl = atomic_load(&d->tail);
	bad = hd - tl > size;
	/* the rings are as the last iteration checked them: only the header
	 * has changed (scribbled) */
	memcpy(f->shadow, f->seg.p, SEG_HDR);
	op = (int)below(&f->rs, 5);
	switch (op) {
	case 0:
		ck_assert_msg(ring_avail(d, size) == (bad ? -1 : (int64_t)(hd - tl)),
			      "iteration %ld: avail %lld with head %#llx tail %#llx", it,
			      (long long)ring_avail(d, size), (unsigned long long)hd,
			      (unsigned long long)tl);
		ck_assert_msg(ring_room(d, size) == (bad ? -1 : (int64_t)(size - (hd - tl))),
			      "iteration %ld: room %lld with head %#llx tail %#llx", it,
			      (long long)ring_room(d, size), (unsigned long long)hd,
			      (unsigned long long)tl);
		break;
	case 1:
	case 2: {
		size_t niov = src_iovs(&f->src, iov, 8, &f->rs), tot = iov_total(iov, niov);
		size_t skip = below(&f->rs, 3) ? 0 : below(&f->rs, tot + 16);
		size_t max = fuzz_max(&f->rs, size), want, got, k = 0;

		want = bad ? SIZE_MAX : min3(max, size - (hd - tl), tot > skip ? tot - skip : 0);
		got = ring_put(d, ring, size, iov, niov, skip, max);
		ck_assert_msg(got == want,
			      "iteration %ld: put %zu, want %zu (head %#llx tail %#llx max %zu skip %zu of %zu)",
			      it, got, want, (unsigned long long)hd, (unsigned long long)tl,
			      max, skip, tot);
		if (bad || !want)
			break;
		/* the model: the bytes after skip, from head on, masked */
		for (size_t i = 0; i < niov && k < want; i++) {
			size_t j = skip < iov[i].iov_len ? skip : iov[i].iov_len;

			skip -= j;
			for (; j < iov[i].iov_len && k < want; j++)
				f->shadow[roff + ((hd + k++) & mask)] =
					((uint8_t *)iov[i].iov_base)[j];
		}
		hd += want;
		memcpy(f->shadow + ((uint8_t *)&d->head - f->seg.p), &hd, 8);
		break;
	}
	default: {
		bool peek = below(&f->rs, 3) == 0, discard = op == 4 && below(&f->rs, 2);
		size_t niov = dst_iovs(&f->dst, iov, 8, &f->rs), tot = iov_total(iov, niov);
		size_t max = fuzz_max(&f->rs, size), k = 0, n;
		int64_t want, got;

		want = bad ? -1 : (int64_t)min3(max, hd - tl, discard ? SIZE_MAX : tot);
		got = ring_get(d, ring, size, discard ? NULL : iov, niov, max, peek);
		ck_assert_msg(got == want,
			      "iteration %ld: get %lld, want %lld (head %#llx tail %#llx max %zu iov %zu%s%s)",
			      it, (long long)got, (long long)want, (unsigned long long)hd,
			      (unsigned long long)tl, max, tot, peek ? " peek" : "",
			      discard ? " discard" : "");
		n = discard || want < 0 ? 0 : (size_t)want;
		for (size_t i = 0; i < niov && k < n; i++) {
			uint8_t *p;

			if (!iov[i].iov_len)
				continue;
			p = f->dexp + ((uint8_t *)iov[i].iov_base - f->dst.p);
			for (size_t j = 0; j < iov[i].iov_len && k < n; j++)
				p[j] = ring[(tl + k++) & mask];
		}
		ck_assert_msg(!memcmp(f->dst.p, f->dexp, f->dst.len),
			      "iteration %ld: get of %lld wrote the wrong bytes or more", it,
			      (long long)got);
		/* back to all canary, both (they are equal) */
		for (size_t i = 0, left = n; i < niov && left; i++) {
			size_t m = iov[i].iov_len < left ? iov[i].iov_len : left;

			if (!m)
				continue;
			memset(iov[i].iov_base, CANARY, m);
			memset(f->dexp + ((uint8_t *)iov[i].iov_base - f->dst.p), CANARY, m);
			left -= m;
		}
		if (want > 0 && !peek) {
			tl += (uint64_t)want;
			memcpy(f->shadow + ((uint8_t *)&d->tail - f->seg.p), &tl, 8);
		}
		break;
	}
	}
	ck_assert_msg(!memcmp(f->seg.p, f->shadow, f->seg.len),
		      "iteration %ld (op %d, dir %d, head %#llx tail %#llx): the segment "
		      "differs from the model", it, op, dn, (unsigned long long)hd,
		      (unsigned long long)tl);
}

static void fuzz_run(uint32_t size, long iters, uint64_t seed)
{
	struct fuzz f = { .size = size, .rs = seed };

	gbuf_new(&f.seg, seg_size(size));
	gbuf_new(&f.src, 3 * (size_t)size);
	gbuf_new(&f.dst, 3 * (size_t)size);
	f.shadow = malloc(f.seg.len);
	f.dexp = malloc(f.dst.len);
	ck_assert_ptr_nonnull(f.shadow);
	ck_assert_ptr_nonnull(f.dexp);
	memset(f.dst.p, CANARY, f.dst.len);
	memset(f.dexp, CANARY, f.dst.len);
	ck_assert_int_eq(seg_init((struct seg_hdr *)f.seg.p, size), 0);
	for (size_t i = SEG_HDR; i < f.seg.len; i++)
		f.seg.p[i] = (uint8_t)rnd(&f.rs);
	memcpy(f.shadow, f.seg.p, f.seg.len);
	for (size_t i = 0; i < f.src.len; i++)
		f.src.p[i] = (uint8_t)rnd(&f.rs);
	/* the source is read-only: a put that writes to it faults */
	gbuf_readonly(&f.src);
	for (long it = 0; it < iters; it++)
		fuzz_one(&f, it);
	free(f.shadow);
	free(f.dexp);
	gbuf_free(&f.seg);
	gbuf_free(&f.src);
	gbuf_free(&f.dst);
}

START_TEST(test_fuzz_indices)
{
	fuzz_run(SMALL, FUZZ_ITERS * 3 / 4, 0x5eedf002);
	fuzz_run(4 * SMALL, FUZZ_ITERS / 4, 0x5eedf003);
}
END_TEST

/* The peer scribbling head and tail while we copy: whatever the calls
 * return, they stay within the ring they were given and write no more
 * of the destination than they report. */
struct scrib {
	struct seg_dir *d;
	uint32_t size;
	_Atomic int stop;
	uint64_t rs;
};

static void *scribbler(void *a)
{
	struct scrib *s = a;

	while (!atomic_load_explicit(&s->stop, memory_order_relaxed)) {
		uint64_t t = any_index(&s->rs, s->size);

		if (below(&s->rs, 2))
			atomic_store_explicit(&s->d->tail, t, memory_order_relaxed);
		atomic_store_explicit(&s->d->head, t + below(&s->rs, 2 * (uint64_t)s->size + 2) -
				      (below(&s->rs, 4) ? 0 : s->size), memory_order_release);
	}
	return NULL;
}

/* The segment equals the shadow but for direction dn's head, tail and
 * ring (which our calls and the scribbler change). */
static bool seg_same_but(const uint8_t *seg, const uint8_t *shadow, uint32_t size, int dn)
{
	size_t od = offsetof(struct seg_hdr, dir) + (size_t)dn * sizeof(struct seg_dir);
	size_t oh = od + offsetof(struct seg_dir, head), ot = od + offsetof(struct seg_dir, tail);
	size_t other = SEG_HDR + (size_t)!dn * size;

	return !memcmp(seg, shadow, oh) &&
	       !memcmp(seg + oh + 8, shadow + oh + 8, ot - oh - 8) &&
	       !memcmp(seg + ot + 8, shadow + ot + 8, SEG_HDR - ot - 8) &&
	       !memcmp(seg + other, shadow + other, size);
}

/* One put or get under a scribbling peer; NULL, or what went wrong. */
static const char *under_fire(struct gbuf *seg, struct gbuf *src, struct gbuf *dst,
			      uint8_t *allowed, struct seg_dir *d, uint32_t size,
			      uint64_t *rs, long it)
{
	uint8_t *ring = seg_ring((struct seg_hdr *)seg->p, size, 1), c = (uint8_t)(0xa5 ^ it);
	size_t max = fuzz_max(rs, size), niov, tot;
	struct iovec iov[8];
	int64_t a, r;

	if (below(rs, 2)) {
		size_t skip = below(rs, 4) ? 0 : below(rs, 2 * (uint64_t)size), got;

		niov = src_iovs(src, iov, 8, rs);
		tot = iov_total(iov, niov);
		got = ring_put(d, ring, size, iov, niov, skip, max);
		if (got != SIZE_MAX && got > min3(max, size, tot > skip ? tot - skip : 0))
			return "put reported more than it could have copied";
	} else {
		bool discard = below(rs, 4) == 0;
		size_t n, k = 0;
		int64_t got;

		niov = dst_iovs(dst, iov, 8, rs);
		tot = iov_total(iov, niov);
		memset(dst->p, c, dst->len);
		got = ring_get(d, ring, size, discard ? NULL : iov, niov, max, below(rs, 3) == 0);
		if (got < -1 || (got >= 0 && (uint64_t)got > min3(max, size, discard ? SIZE_MAX : tot)))
			return "get reported more than it could have copied";
		/* the first n bytes of the iovecs, and nothing else, may change */
		n = discard || got < 0 ? 0 : (size_t)got;
		memset(allowed, 0, dst->len);
		for (size_t i = 0; i < niov && k < n; i++)
			for (size_t j = 0; j < iov[i].iov_len && k < n; j++, k++)
				allowed[(uint8_t *)iov[i].iov_base - dst->p + j] = 1;
		for (size_t p = 0; p < dst->len; p++)
			if (!allowed[p] && dst->p[p] != c)
				return "get wrote past what it reported";
	}
	a = ring_avail(d, size);
	r = ring_room(d, size);
	if (a < -1 || a > (int64_t)size || r < -1 || r > (int64_t)size)
		return "avail or room out of range";
	return NULL;
}

START_TEST(test_fuzz_concurrent)
{
	const uint32_t size = SMALL;
	struct gbuf seg, src, dst;
	struct scrib s = { .size = size, .rs = 0x5eedc001 };
	uint64_t rs = 0x5eedc002, t0 = flp_now_us();
	uint8_t *shadow = malloc(seg_size(size)), *allowed = malloc(3 * (size_t)size);
	const char *why = NULL;
	pthread_t th;
	long it;

	ck_assert_ptr_nonnull(shadow);
	ck_assert_ptr_nonnull(allowed);
	gbuf_new(&seg, seg_size(size));
	gbuf_new(&src, 3 * (size_t)size);
	gbuf_new(&dst, 3 * (size_t)size);
	ck_assert_int_eq(seg_init((struct seg_hdr *)seg.p, size), 0);
	for (size_t i = SEG_HDR; i < seg.len; i++)
		seg.p[i] = (uint8_t)rnd(&rs);
	for (size_t i = 0; i < src.len; i++)
		src.p[i] = (uint8_t)rnd(&rs);
	gbuf_readonly(&src);
	memcpy(shadow, seg.p, seg.len);
	s.d = &((struct seg_hdr *)seg.p)->dir[1];
	atomic_init(&s.stop, 0);
	ck_assert_int_eq(pthread_create(&th, NULL, scribbler, &s), 0);
	for (it = 0; it < 100000 && !why && flp_now_us() - t0 < 3000000; it++) {
		why = under_fire(&seg, &src, &dst, allowed, s.d, size, &rs, it);
		if (!why && !seg_same_but(seg.p, shadow, size, 1))
			why = "a write outside direction 1's ring and indices";
	}
	atomic_store(&s.stop, 1);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	ck_assert_msg(!why, "iteration %ld: %s", it - 1, why);
	ck_assert_int_ge(it, 1000);
	free(shadow);
	free(allowed);
	gbuf_free(&seg);
	gbuf_free(&src);
	gbuf_free(&dst);
}
END_TEST

/* ---- the owner-pid locks ---- */

static _Atomic uint32_t lockword;
static _Atomic uint32_t alive_calls, alive_wrong;
static _Atomic int released;

/* alive(): DEAD_PID is gone, LIVE_PID is there; anything else is a
 * question the lock should not have asked. */
static bool fake_alive(uint32_t pid)
{
	atomic_fetch_add(&alive_calls, 1);
	if (pid != DEAD_PID && pid != LIVE_PID)
		atomic_fetch_add(&alive_wrong, 1);
	return pid != DEAD_PID;
}

struct locker {
	uint32_t me;
	_Atomic int done;
	int rc, saw_released;
	uint64_t us;
};

static void *locker_run(void *a)
{
	struct locker *l = a;
	uint64_t t0 = flp_now_us();

	l->rc = ring_lock(&lockword, l->me, fake_alive);
	l->saw_released = atomic_load(&released);
	l->us = flp_now_us() - t0;
	atomic_store(&l->done, 1);
	return NULL;
}

/* ring_lock in a thread of ours; fails the test (rather than hang) if
 * it has not returned within LOCK_LIMIT_US. */
static void lock_bounded(struct locker *l, uint32_t me)
{
	uint64_t t0 = flp_now_us();
	pthread_t th;

	l->me = me;
	atomic_init(&l->done, 0);
	ck_assert_int_eq(pthread_create(&th, NULL, locker_run, l), 0);
	while (!atomic_load(&l->done)) {
		struct timespec ts = { 0, 1000000 };

		ck_assert_msg(flp_now_us() - t0 < LOCK_LIMIT_US,
			      "ring_lock still waiting after %llu ms (word %u)",
			      (unsigned long long)LOCK_LIMIT_US / 1000, atomic_load(&lockword));
		nanosleep(&ts, NULL);
	}
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	ck_assert_int_eq(l->rc, 0);
	ck_assert_uint_eq(ld32(&lockword), me);
}

static void lock_setup(void)
{
	atomic_store(&lockword, 0);
	atomic_store(&alive_calls, 0);
	atomic_store(&alive_wrong, 0);
	atomic_store(&released, 0);
}

START_TEST(test_lock_unlock)
{
	uint32_t me = (uint32_t)getpid();
	struct locker l;

	lock_bounded(&l, me);
	/* not ours: an unlock by another pid leaves it */
	ring_unlock(&lockword, LIVE_PID);
	ck_assert_uint_eq(ld32(&lockword), me);
	ring_unlock(&lockword, me);
	ck_assert_uint_eq(ld32(&lockword), 0);
	ring_unlock(&lockword, me);
	ck_assert_uint_eq(ld32(&lockword), 0);
	lock_bounded(&l, me);
	ring_unlock(&lockword, me);
	ck_assert_uint_eq(ld32(&lockword), 0);
	ck_assert_uint_eq(ld32(&alive_calls), 0);
}
END_TEST

START_TEST(test_lock_dead_owner)
{
	struct locker l;

	atomic_store(&lockword, DEAD_PID);
	lock_bounded(&l, (uint32_t)getpid());
	ck_assert_uint_ge(ld32(&alive_calls), 1);
	ck_assert_uint_eq(ld32(&alive_wrong), 0);
	ck_assert_uint_lt(l.us, 1000000);
}
END_TEST

/* Our own pid in the word: left by a thread that died or by the parent
 * before fork; taken at once, without asking alive(). */
START_TEST(test_lock_own_pid)
{
	struct locker l;

	atomic_store(&lockword, (uint32_t)getpid());
	lock_bounded(&l, (uint32_t)getpid());
	ck_assert_uint_eq(ld32(&alive_calls), 0);
	ck_assert_uint_lt(l.us, 100000);
}
END_TEST

static void *releaser(void *a)
{
	struct timespec ts = { 0, 50000000 };

	(void)a;
	nanosleep(&ts, NULL);
	atomic_store(&released, 1);
	ring_unlock(&lockword, LIVE_PID);
	return NULL;
}

/* A live holder is waited for, not robbed. */
START_TEST(test_lock_live_owner)
{
	struct locker l;
	pthread_t th;

	atomic_store(&lockword, LIVE_PID);
	ck_assert_int_eq(pthread_create(&th, NULL, releaser, NULL), 0);
	lock_bounded(&l, (uint32_t)getpid());
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	ck_assert_msg(l.saw_released, "took the lock from a live holder after %llu us",
		      (unsigned long long)l.us);
	ck_assert_uint_ge(l.us, 40000);
	ck_assert_uint_eq(ld32(&alive_wrong), 0);
}
END_TEST

/* Two holders (as two processes would be) taking turns: no lost update. */
struct contender {
	uint32_t me;
	uint64_t deadline;
	unsigned *counter, rounds;
	int overlap;
	_Atomic int *inside;
};

static void *contend(void *a)
{
	struct contender *c = a;

	for (unsigned i = 0; i < c->rounds && flp_now_us() < c->deadline; i++) {
		ring_lock(&lockword, c->me, fake_alive);
		if (atomic_fetch_add(c->inside, 1) != 0)
			c->overlap++;
		(*c->counter)++;
		atomic_fetch_sub(c->inside, 1);
		ring_unlock(&lockword, c->me);
	}
	return NULL;
}

START_TEST(test_lock_exclusion)
{
	static unsigned counter;
	_Atomic int inside = 0;
	struct contender c[2];
	pthread_t th[2];

	for (int i = 0; i < 2; i++) {
		c[i] = (struct contender){ .me = LIVE_PID + 1 + (uint32_t)i, .rounds = 20000,
					   .counter = &counter, .inside = &inside,
					   .deadline = flp_now_us() + 10000000 };
		ck_assert_int_eq(pthread_create(&th[i], NULL, contend, &c[i]), 0);
	}
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_join(th[i], NULL), 0);
	ck_assert_int_eq(c[0].overlap + c[1].overlap, 0);
	ck_assert_uint_eq(counter, 40000);
	ck_assert_uint_eq(ld32(&lockword), 0);
}
END_TEST

Suite *ring_suite(void)
{
	Suite *s = suite_create("ring");
	TCase *tg = tcase_create("segment");
	TCase *tc = tcase_create("copy");
	TCase *tt = tcase_create("threads");
	TCase *tf = tcase_create("fuzz");
	TCase *tl = tcase_create("lock");

	tcase_add_test(tg, test_seg_init_sizes);
	tcase_add_test(tg, test_seg_check);
	suite_add_tcase(s, tg);

	tcase_add_test(tc, test_bytes_across_the_wrap);
	tcase_add_test(tc, test_roundtrip);
	tcase_add_test(tc, test_roundtrip_index_wrap);
	suite_add_tcase(s, tc);

	/* the test bounds itself at 20 s; this is the backstop */
	tcase_set_timeout(tt, 60);
	tcase_add_test(tt, test_spsc_64mib);
	suite_add_tcase(s, tt);

	tcase_set_timeout(tf, 60);
	tcase_add_test(tf, test_fuzz_indices);
	tcase_add_test(tf, test_fuzz_concurrent);
	suite_add_tcase(s, tf);

	tcase_add_checked_fixture(tl, lock_setup, NULL);
	tcase_set_timeout(tl, 20);
	tcase_add_test(tl, test_lock_unlock);
	tcase_add_test(tl, test_lock_dead_owner);
	tcase_add_test(tl, test_lock_own_pid);
	tcase_add_test(tl, test_lock_live_owner);
	tcase_add_test(tl, test_lock_exclusion);
	suite_add_tcase(s, tl);
	return s;
}
