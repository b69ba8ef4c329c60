/*
 * shm.c — the shared-memory transport: data of a fast connection moves
 * through two rings in a segment (ring.h) that both processes map; the
 * app's fd, the UDS of the uds transport, stays as the control channel.
 *
 * Control channel.  A UDS carries only doorbells: one byte (BELL) sent to
 * an end that may be asleep.  A reader that is not looking at its ring
 * (outside our calls, or asleep in one) has `armed` set; the writer that
 * publishes data swaps it to 0 and, if it was set, rings.  So the kernel's
 * readiness of the fd says "look at the ring" (poll, epoll and a blocking
 * recv(MSG_PEEK) all sleep on it), and a reader that spins sees the data
 * without any system call on either side.  A writer that finds the ring
 * full sets want_space; the reader that makes room rings it.  EOF and
 * close are the kernel's: when the peer's last reference goes, its UDS
 * end closes and ours reads EOF (kill -9 included); shutdown(SHUT_WR) is
 * a flag in the segment, because the UDS must stay open for bells.
 *
 * Wait discipline: spin up to spin_us (yielding the CPU, so that a peer
 * on the same core runs), then arm and sleep in the kernel.
 *
 * Locks: one process-local mutex per direction, then the segment's lock
 * word (the holder's pid; a dead holder's lock is taken over), so forked
 * processes that share a socket keep each ring single-producer and
 * single-consumer.  Nobody sleeps holding a lock.
 *
 * Trust: the peer can write anything into the segment at any time.
 * Indices are checked on every look (ring_avail/ring_room) and offsets
 * masked; a bell byte that is not BELL means someone wrote to the UDS
 * behind the library (a raw syscall, io_uring): the connection is reset
 * rather than bytes being lost or mixed.
 */
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/sockios.h>

#include "flp.h"
#include "ring.h"
#include "stat.h"

#define BELL 0xb5
#define PREFACE_SHM 'S'
#define PREFACE_UDS 'U'

struct shm_conn {
	struct seg_hdr *h;
	size_t len;
	uint32_t ring;
	int me, peer;                   /* side indices: 0 client, 1 server */
	struct seg_dir *tx, *rx;
	uint8_t *txb, *rxb;
	int memfd;                      /* -1: closed once mapped (an fd per
					 * connection would halve what an app
					 * reaches before EMFILE) */
	pthread_mutex_t txmu, rxmu;
	_Atomic int refs;
	_Atomic bool broken;            /* corrupt segment or foreign bytes */
	_Atomic bool peer_gone;         /* the UDS read EOF or an error */
	_Atomic bool shut_wr, shut_rd;
	_Atomic bool reset_told;        /* ECONNRESET reported once */
	_Atomic bool et;                /* an edge-triggered registration */
	_Atomic bool tx_waiting;        /* someone here waits for room: the
					 * reader's bell must not be dropped */
	_Atomic int tx_sleepers;        /* blocking sends asleep for room (a
					 * count: a flag left set by one that
					 * returned kept bells nobody ate, and
					 * a blocked recv spun on them) */
	struct shm_conn *next, *prev;   /* all of them, for fork */
};

static struct shm_conn *all;
static pthread_mutex_t all_mu = PTHREAD_MUTEX_INITIALIZER;

/* --------------------------------------------------------------- segment */

static struct shm_conn *conn_new(struct seg_hdr *h, size_t len, uint32_t ring,
				 int memfd, bool server)
{
	struct shm_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->h = h;
	c->len = len;
	c->ring = ring;
	c->me = server ? 1 : 0;
	c->peer = 1 - c->me;
	/* direction 0 runs client to server */
	c->tx = &h->dir[c->me];
	c->rx = &h->dir[c->peer];
	c->txb = seg_ring(h, ring, c->me);
	c->rxb = seg_ring(h, ring, c->peer);
	c->memfd = memfd;
	pthread_mutex_init(&c->txmu, NULL);
	pthread_mutex_init(&c->rxmu, NULL);
	atomic_store(&c->refs, 1);
	pthread_mutex_lock(&all_mu);
	c->next = all;
	if (all)
		all->prev = c;
	all = c;
	pthread_mutex_unlock(&all_mu);
	return c;
}

static void conn_put(struct shm_conn *c)
{
	if (atomic_fetch_sub(&c->refs, 1) != 1)
		return;
	pthread_mutex_lock(&all_mu);
	if (c->prev)
		c->prev->next = c->next;
	else
		all = c->next;
	if (c->next)
		c->next->prev = c->prev;
	pthread_mutex_unlock(&all_mu);
	munmap(c->h, c->len);
	if (c->memfd >= 0)
		flp_real.close(c->memfd);
	free(c);
}

/* The connection of s with a reference held, or NULL.  A data call
 * racing the socket's last close (an app bug) finds NULL or a live one. */
static struct shm_conn *conn_get(struct flp_sock *s)
{
	struct shm_conn *c = flp_shm(s);
	int r;

	if (!c)
		return NULL;
	r = atomic_load(&c->refs);
	while (r > 0)
		if (atomic_compare_exchange_weak(&c->refs, &r, r + 1))
			return c;
	return NULL;
}

static int shm_exec_fd_of(struct shm_conn *c);

/* Can we open our own mappings again (/proc/self/map_files: needs
 * CAP_SYS_ADMIN)?  Asked once, on the first segment.  -1 not yet. */
static int map_files_ok = -1;

static bool can_reopen(struct shm_conn *c)
{
	if (map_files_ok < 0) {
		int fd = shm_exec_fd_of(c);
		map_files_ok = fd >= 0;
		if (fd >= 0)
			flp_real.close(fd);
	}
	return map_files_ok > 0;
}

/*
 * Keep the segment's memfd open, for an exec that may pass the socket
 * on?  An fd per connection is not free: an app near its fd limit would
 * meet EMFILE with half the connections.  So only when the mapping
 * cannot be opened again at exec (not root) and the process uses less
 * than a quarter of its fd limit (at most that many fds more than
 * without us).  The socket's close-on-exec flag is no guide: apps clear
 * it to hand a connection to a child (Python's set_inheritable).
 * Otherwise the memfd is closed, and an exec that passes the socket on
 * ends the connection cleanly (shm_exec_lost; documented).
 */
static bool keep_for_exec(struct shm_conn *c, int memfd)
{
	struct rlimit rl;

	if (can_reopen(c))
		return false;
	return getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
	       (rl.rlim_cur == RLIM_INFINITY || (rlim_t)memfd < rl.rlim_cur / 4);
}

/* Keep c's memfd (for exec) or close it.  A kept one moves to a high
 * number, out of the app's way, and is ours (SK_HIDDEN): the app's
 * close_range before an exec leaves it.  Caller holds flp_mu. */
static void keep_or_close(struct flp_sock *s, struct shm_conn *c)
{
	if (c->memfd >= 0 && keep_for_exec(c, c->memfd) &&
	    (c->memfd = flp_hide_fd(c->memfd, s)) >= 0)
		return;
	if (c->memfd >= 0)
		flp_real.close(c->memfd);
	c->memfd = -1;
}

/* The app closed our kept memfd (it closes "all" its fds one by one):
 * an exec can no longer pass the segment on.  Caller holds flp_mu. */
void shm_memfd_gone(struct flp_sock *s, int fd)
{
	struct shm_conn *c = flp_shm(s);

	if (c && c->memfd == fd)
		c->memfd = -1;
}

static struct seg_hdr *map_seg(int fd, size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	return p == MAP_FAILED ? NULL : p;
}

/*
 * Server, adopting: the client's claim said whether it can use a ring
 * (wanted).  Send the preface on u — 'S' with the segment's memfd, or
 * 'U' — and, for 'S', attach the mapping to s.  A client that did not ask
 * gets nothing (it does not read a preface).  Returns 0 or -errno.
 */
int shm_offer(struct flp_sock *s, int u, bool wanted)
{
	char b = PREFACE_UDS;
	struct iovec iov = { &b, 1 };
	union { struct cmsghdr c; char buf[CMSG_SPACE(sizeof(int))]; } cm;
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct seg_hdr *h = NULL;
	struct shm_conn *c = NULL;
	uint32_t ring = (uint32_t)flp_cfg.ring;
	size_t len = seg_size(ring);
	int fd = -1, e;

	if (!wanted)
		return 0;
	if (flp_want_shm()) {
		/* sealed at its size: the peer holds the file too, and a
		 * file shrunk under our mapping would kill us with SIGBUS at
		 * the next access (every connection of this process) */
		fd = memfd_create("fastloop", MFD_CLOEXEC | MFD_ALLOW_SEALING);
		if (fd < 0 || ftruncate(fd, (off_t)len) < 0 ||
		    flp_real.fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0 ||
		    !(h = map_seg(fd, len)) ||
		    seg_init(h, ring) < 0 || !(c = conn_new(h, len, ring, fd, true))) {
			FLP_WARN("cannot make a shared-memory segment of %zu bytes (%s); using uds",
				 len, strerror(errno));
			if (h)
				munmap(h, len);
			if (fd >= 0)
				flp_real.close(fd);
			fd = -1;
		} else {
			b = PREFACE_SHM;
			memset(&cm, 0, sizeof(cm));
			m.msg_control = cm.buf;
			m.msg_controllen = sizeof(cm.buf);
			cm.c.cmsg_level = SOL_SOCKET;
			cm.c.cmsg_type = SCM_RIGHTS;
			cm.c.cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(&cm.c), &fd, sizeof(int));
		}
	}
	if (flp_real.sendmsg(u, &m, MSG_DONTWAIT | MSG_NOSIGNAL) != 1) {
		e = errno;
		if (c)
			conn_put(c);
		return -e;
	}
	if (c) {
		/* the client has it now; the mapping keeps the segment */
		keep_or_close(s, c);
		__atomic_store_n(&s->shm, c, __ATOMIC_RELEASE);
	}
	return 0;
}

/*
 * Client, switching: read the server's preface from u (it was sent
 * before the claim was marked TAKEN, so it is there) and map the
 * segment it names.  Returns 0 (s->shm set for 'S'), or -errno: the
 * server uses what it offered, so the switch cannot go on without it.
 */
/* A segment's file as received: a regular file of a sane size, sealed
 * against shrinking and growing (a peer that shrank it under our mapping
 * would kill us with SIGBUS; growing is refused for symmetry). */
static bool seg_file_ok(int fd, struct stat *st)
{
	int seals = flp_real.fcntl(fd, F_GET_SEALS);

	return fstat(fd, st) == 0 && S_ISREG(st->st_mode) &&
	       st->st_size >= (off_t)seg_size(RING_MIN) &&
	       st->st_size <= (off_t)seg_size(RING_MAX) &&
	       seals >= 0 && (seals & (F_SEAL_SHRINK | F_SEAL_GROW)) == (F_SEAL_SHRINK | F_SEAL_GROW);
}

int shm_take(struct flp_sock *s, int u)
{
	char b = 0;
	struct iovec iov = { &b, 1 };
	union { struct cmsghdr c; char buf[CMSG_SPACE(sizeof(int))]; } cm;
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
			    .msg_control = cm.buf, .msg_controllen = sizeof(cm.buf) };
	struct cmsghdr *cmh;
	struct seg_hdr *h;
	struct shm_conn *c;
	struct stat st;
	uint32_t ring;
	int fd = -1;
	ssize_t r;

	if (!flp_want_shm())
		return 0;
	/* the header that made us switch may come a moment before the
	 * preface (two writes of the adopter, which then marks TAKEN): wait
	 * for it, bounded; a dead adopter reads EOF */
	{
		struct pollfd p = { .fd = u, .events = POLLIN };
		for (int i = 0; i < 100 && flp_real.poll(&p, 1, 10) == 0; i++)
			;
	}
	r = flp_real.recvmsg(u, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (r == 0 || (r < 0 && errno == ECONNRESET))
		return -ECONNRESET;     /* the server died while adopting */
	if (r != 1)
		return r < 0 ? -errno : -EPROTO;
	for (cmh = CMSG_FIRSTHDR(&m); cmh; cmh = CMSG_NXTHDR(&m, cmh))
		if (cmh->cmsg_level == SOL_SOCKET && cmh->cmsg_type == SCM_RIGHTS &&
		    cmh->cmsg_len == CMSG_LEN(sizeof(int)) && fd < 0)
			memcpy(&fd, CMSG_DATA(cmh), sizeof(int));
	if (b == PREFACE_UDS && fd < 0)
		return 0;
	if (b != PREFACE_SHM || fd < 0 || (m.msg_flags & MSG_CTRUNC)) {
		if (fd >= 0)
			flp_real.close(fd);
		return -EPROTO;
	}
	/* the size comes from the file, not from the peer's header; a file
	 * the peer could still shrink under our mapping is refused */
	if (!seg_file_ok(fd, &st) || !(h = map_seg(fd, (size_t)st.st_size))) {
		flp_real.close(fd);
		return -EPROTO;
	}
	if (seg_check(h, (size_t)st.st_size, &ring) < 0 ||
	    !(c = conn_new(h, (size_t)st.st_size, ring, fd, false))) {
		munmap(h, (size_t)st.st_size);
		flp_real.close(fd);
		return -EPROTO;
	}
	keep_or_close(s, c);
	__atomic_store_n(&s->shm, c, __ATOMIC_RELEASE);
	return 0;
}

/*
 * An fd for s's segment that survives exec, for the new image; -1 if
 * there is none.  The memfd was closed once mapped; the mapping is
 * opened again through /proc/self/map_files, which the kernel allows
 * with CAP_SYS_ADMIN (root) only.
 */
static int shm_exec_fd_of(struct shm_conn *c)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/self/map_files/%lx-%lx",
		 (unsigned long)c->h, (unsigned long)c->h + c->len);
	return open(path, O_RDWR);
}

int shm_exec_fd(struct flp_sock *s)
{
	struct shm_conn *c = flp_shm(s);

	if (!c)
		return -1;
	if (c->memfd >= 0)      /* kept: a copy without close-on-exec */
		return flp_real.fcntl(c->memfd, F_DUPFD, 0);
	return shm_exec_fd_of(c);
}

/* A new image inherited fast socket s and its segment's memfd. */
int shm_adopt_memfd(struct flp_sock *s, int memfd)
{
	struct seg_hdr *h;
	struct shm_conn *c;
	struct stat st;
	uint32_t ring;

	flp_real.fcntl(memfd, F_SETFD, FD_CLOEXEC);
	if (!seg_file_ok(memfd, &st) || !(h = map_seg(memfd, (size_t)st.st_size))) {
		flp_real.close(memfd);
		return -EPROTO;
	}
	if (seg_check(h, (size_t)st.st_size, &ring) < 0 ||
	    !(c = conn_new(h, (size_t)st.st_size, ring, memfd, s->server))) {
		munmap(h, (size_t)st.st_size);
		flp_real.close(memfd);
		return -EPROTO;
	}
	keep_or_close(s, c);
	__atomic_store_n(&s->shm, c, __ATOMIC_RELEASE);
	return 0;
}

/*
 * A new image inherited a shm socket at fd but could not get its segment
 * (the old image had no fd for it: not root).  Its bytes cannot be
 * reached: end the connection cleanly rather than read doorbells as
 * data — drop what is queued, shut the socket both ways (our reads see
 * EOF, writes EPIPE; the peer's the same).
 */
void shm_exec_lost(int fd)
{
	char buf[256];

	FLP_ERR("fd %d: inherited across exec without its shared-memory segment "
		"(only root can pass it on); the connection is closed. "
		"FASTLOOP_TRANSPORT=uds keeps such connections working", fd);
	for (int i = 0; i < 1024 && flp_real.recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0; i++)
		;
	flp_real.shutdown(fd, SHUT_RDWR);
}

/* s is going away (its last fd in this process was closed). */
void shm_release(struct flp_sock *s)
{
	struct shm_conn *c = flp_shm(s);

	if (!c)
		return;
	__atomic_store_n(&s->shm, NULL, __ATOMIC_RELEASE);
	flp_close_hidden(s, &c->memfd);
	conn_put(c);
}

/* A fork child: a thread of the parent may have held a mutex. */
void shm_after_fork_child(void)
{
	pthread_mutex_init(&all_mu, NULL);
	for (struct shm_conn *c = all; c; c = c->next) {
		pthread_mutex_init(&c->txmu, NULL);
		pthread_mutex_init(&c->rxmu, NULL);
	}
}

/* ----------------------------------------------------------------- bells */

/*
 * A full fence: a store, then a load of another word, in that order (the
 * bell protocol's store-fence-load on each side).  gcc's ThreadSanitizer
 * does not take atomic_thread_fence; a locked read-modify-write is a full
 * fence on the machines we build for, and TSan sees it.
 */
static inline void full_fence(void)
{
#ifdef __SANITIZE_THREAD__
	static _Atomic int fence_word;
	atomic_fetch_add(&fence_word, 0);
#else
	atomic_thread_fence(memory_order_seq_cst);
#endif
}

static bool pid_alive(uint32_t pid)
{
	return kill((pid_t)pid, 0) == 0 || errno != ESRCH;
}

static void lock_dir(pthread_mutex_t *mu, _Atomic uint32_t *w)
{
	pthread_mutex_lock(mu);
	ring_lock(w, (uint32_t)flp_pid, pid_alive);
}

static void unlock_dir(pthread_mutex_t *mu, _Atomic uint32_t *w)
{
	ring_unlock(w, (uint32_t)flp_pid);
	pthread_mutex_unlock(mu);
}

/* Ring the peer's bell through fd.  Returns 0, or -EPIPE: the peer's end
 * is gone. */
static int bell(int fd, struct shm_conn *c)
{
	unsigned char b = BELL;
	ssize_t r;

	atomic_fetch_add(&c->h->side[c->peer].bells_in, 1);
	r = flp_real.send(fd, &b, 1, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (r == 1)
		return 0;
	atomic_fetch_sub(&c->h->side[c->peer].bells_in, 1);
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;       /* full of bells: readable anyway */
	atomic_store(&c->peer_gone, true);
	return -EPIPE;
}

/* The reader of rx took data: a writer waiting for room hears it. */
static void room_made(int fd, struct shm_conn *c)
{
	/* our tail store before the writer's flag load (it stores the
	 * flag, then looks at the tail): one of us sees the other */
	full_fence();
	if (atomic_load_explicit(&c->rx->want_space, memory_order_relaxed) &&
	    atomic_exchange(&c->rx->want_space, 0))
		bell(fd, c);
}

/* The writer published data: a reader that is not looking hears it. */
static int data_made(int fd, struct shm_conn *c)
{
	full_fence();      /* head before armed */
	if (atomic_load_explicit(&c->tx->armed, memory_order_relaxed) &&
	    atomic_exchange(&c->tx->armed, 0))
		return bell(fd, c);
	return 0;
}

static void corrupt(struct shm_conn *c, const char *what)
{
	if (!atomic_exchange(&c->broken, true))
		FLP_ERR("shared-memory segment: %s; resetting the connection", what);
}

/* Writes up to this size are atomic (PIPE_BUF's size). */
#define ATOMIC_WRITE 4096

/* Writable, for poll: room for an atomic write, so that a write after
 * POLLOUT never finds EAGAIN (a level-triggered loop would spin). */
static bool tx_writable(struct shm_conn *c)
{
	int64_t r = ring_room(c->tx, c->ring);

	return r < 0 || r >= ATOMIC_WRITE;
}

/* Is there something for a reader of c: data, EOF or an error? */
static bool rx_ready(struct shm_conn *c)
{
	return ring_avail(c->rx, c->ring) != 0 ||
	       atomic_load_explicit(&c->rx->shut, memory_order_relaxed) ||
	       atomic_load_explicit(&c->h->side[c->peer].reset, memory_order_relaxed) ||
	       atomic_load(&c->peer_gone) || atomic_load(&c->shut_rd) ||
	       atomic_load(&c->broken);
}

/*
 * Read the bells on our end of fd that told of nothing left to tell:
 * only as many as were counted (bells_in) before we looked at the rings,
 * and none if the rings still have something for us (data, EOF, or room
 * that someone here waits for).  A bell counted after our look stays in
 * the socket: it is the kernel's readiness of the fd for what came since.
 * With force, a look at the socket for EOF too (the peer's last close).
 */
static void drain(int fd, struct shm_conn *c, bool force)
{
	struct seg_side *me = &c->h->side[c->me];
	uint64_t n = atomic_load(&me->bells_in) - atomic_load(&me->bells_eaten);
	unsigned char buf[256];

	full_fence();      /* count, then look */
	if (n > (1u << 20))
		n = 1u << 20;   /* untrusted: the socket's own bound applies */
	if (n && (rx_ready(c) || ((atomic_load(&c->tx_waiting) || atomic_load(&c->tx_sleepers)) &&
				  tx_writable(c))))
		return;
	while (n) {
		ssize_t r = flp_real.recv(fd, buf, n < sizeof(buf) ? n : sizeof(buf), MSG_DONTWAIT);

		if (r > 0) {
			for (ssize_t k = 0; k < r; k++)
				if (buf[k] != BELL) {
					corrupt(c, "bytes on the control socket that the library did not write");
					return;
				}
			atomic_fetch_add(&me->bells_eaten, (uint64_t)r);
			n -= (uint64_t)r;
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0 || errno != EAGAIN)
			atomic_store(&c->peer_gone, true);
		return;         /* EAGAIN: a counted bell not sent yet */
	}
	if (force) {
		ssize_t r = flp_real.recv(fd, buf, 1, MSG_PEEK | MSG_DONTWAIT);
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
			atomic_store(&c->peer_gone, true);
	}
}

/* The reader stops looking at rx: arm (so the next write bells us) and
 * drop the bells that told of what we already took. */
static void arm_rx(int fd, struct shm_conn *c, bool force)
{
	atomic_store(&c->rx->armed, 1);
	drain(fd, c, force);
}

/* Someone here waits for room in tx: the reader that makes some bells. */
static void want_room(struct shm_conn *c)
{
	atomic_store(&c->tx_waiting, true);
	atomic_store(&c->tx->want_space, 1);
}

static bool fd_nonblock(int fd)
{
	int fl = flp_real.fcntl(fd, F_GETFL);

	return fl >= 0 && (fl & O_NONBLOCK);
}

/* Spin (yielding) until cond() holds, spin_us passes or a signal's
 * handler ran (sig_count() moved from seq). */
#define SPIN_UNTIL(cond, seq)                                              \
	do {                                                               \
		uint64_t t0_ = 0;                                          \
		for (unsigned i_ = 0; !(cond) && sig_count() == (seq); i_++) { \
			if ((i_ & 15) == 15) {                             \
				uint64_t now_ = flp_now_us();              \
				if (!t0_)                                  \
					t0_ = now_;                        \
				else if (now_ - t0_ >= (uint64_t)flp_cfg.spin_us) \
					break;                             \
				sched_yield();                             \
			} else {                                           \
				__builtin_ia32_pause();                    \
			}                                                  \
		}                                                          \
	} while (0)

/* ------------------------------------------------------------------ data */

static size_t iov_total(const struct iovec *iov, size_t n)
{
	size_t t = 0;

	for (size_t i = 0; i < n; i++)
		t += iov[i].iov_len;
	return t;
}

static bool peer_reset(struct shm_conn *c)
{
	return atomic_load_explicit(&c->h->side[c->peer].reset, memory_order_relaxed) != 0;
}

/* A reset (the peer's, or a broken segment), told once as ECONNRESET. */
static int reset_err(struct shm_conn *c)
{
	return atomic_exchange(&c->reset_told, true) ? 0 : -ECONNRESET;
}

static void epipe(int flags)
{
	if (!(flags & MSG_NOSIGNAL))
		raise(SIGPIPE);
}

/* Room for need bytes in tx (or impossible indices: the put reports). */
static bool has_room(struct shm_conn *c, size_t need)
{
	int64_t r = ring_room(c->tx, c->ring);

	return r < 0 || (size_t)r >= need;
}

/* The socket's SO_RCVTIMEO or SO_SNDTIMEO (opt) in ms, -1 if none. */
static int timeo_ms(int fd, int opt)
{
	struct timeval tv = { 0, 0 };
	socklen_t l = sizeof(tv);

	flp_real.getsockopt(fd, SOL_SOCKET, opt, &tv, &l);
	if (!tv.tv_sec && !tv.tv_usec)
		return -1;
	return (int)(tv.tv_sec * 1000 + (tv.tv_usec + 999) / 1000);
}

/*
 * Send on a shm socket: copy into the tx ring as room allows; blocking
 * calls wait for room (spin, then sleep on the fd until the reader bells).
 * Returns the bytes sent, or -errno as TCP's send would.
 */
ssize_t shm_sendmsg(int fd, struct flp_sock *s, const struct msghdr *m, int flags)
{
	struct shm_conn *c = conn_get(s);
	size_t total, done = 0, need;
	uint64_t deadline = 0;
	unsigned seq = sig_count();
	bool asleep = false;
	ssize_t ret;
	int nb = -1;

	if (!c)
		return -EBADF;
	if (flags & MSG_OOB) {
		conn_put(c);
		return -EOPNOTSUPP;
	}
	total = iov_total(m->msg_iov, m->msg_iovlen);
	need = total <= ATOMIC_WRITE ? total : 1;
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		size_t n;
		int r;

		if (atomic_load(&c->broken) || peer_reset(c)) {
			ret = done ? (ssize_t)done : reset_err(c);
			if (!ret)
				ret = -EPIPE, epipe(flags);
			break;
		}
		if (atomic_load(&c->shut_wr) || atomic_load(&c->peer_gone)) {
			ret = done ? (ssize_t)done : -EPIPE;
			if (!done)
				epipe(flags);
			break;
		}
		lock_dir(&c->txmu, &c->tx->wlock);
		/* a small write goes in whole or not at all, as into a pipe:
		 * writers sharing the socket (threads, forked workers) never
		 * interleave inside one (TCP gives no such promise, but
		 * mostly behaves so) */
		if (total <= ATOMIC_WRITE && (size_t)ring_room(c->tx, c->ring) < total &&
		    ring_room(c->tx, c->ring) >= 0)
			n = 0;
		else
			n = ring_put(c->tx, c->txb, c->ring, m->msg_iov, m->msg_iovlen, done, total - done);
		unlock_dir(&c->txmu, &c->tx->wlock);
		if (n == SIZE_MAX) {
			corrupt(c, "impossible indices in the send ring");
			continue;
		}
		done += n;
		if (n)
			data_made(fd, c);
		if (done == total) {
			ret = (ssize_t)done;
			if (nb >= 0 || atomic_load_explicit(&c->tx_waiting, memory_order_relaxed))
				atomic_store(&c->tx_waiting, false);
			break;
		}
		if (nb < 0)
			nb = (flags & MSG_DONTWAIT) || fd_nonblock(fd);
		if (nb) {
			if (done) {
				ret = (ssize_t)done;
				break;
			}
			/* the reader's next take bells us: that EPOLLIN also
			 * wakes an EPOLLOUT waiter (wait.c) */
			want_room(c);
			if (has_room(c, need))
				continue;
			ret = -EAGAIN;
			break;
		}
		SPIN_UNTIL(has_room(c, need) || peer_reset(c) || atomic_load(&c->peer_gone), seq);
		if (has_room(c, need))
			continue;
		/* a handler ran while we were in user space: what the kernel
		 * would have said had it interrupted a blocked send */
		if (sig_count() != seq && sig_interrupts(seq, timeo_ms(fd, SO_SNDTIMEO) >= 0)) {
			ret = done ? (ssize_t)done : -EINTR;
			break;
		}
		seq = sig_count();      /* restarted, as the kernel would */
		/* sleep on the fd for the reader's bell or the peer's close.
		 * Bells for our own unread data would wake us at once: they
		 * are dropped when there is nothing for our reader (then the
		 * next write to it bells again), else we nap.  Room is looked
		 * at after every step that could have eaten the reader's bell. */
		if (!asleep)
			atomic_fetch_add(&c->tx_sleepers, 1);
		asleep = true;
		atomic_store(&c->tx->want_space, 1);
		if (has_room(c, need))
			continue;
		arm_rx(fd, c, false);
		if (has_room(c, need))
			continue;
		if (!deadline && (r = timeo_ms(fd, SO_SNDTIMEO)) >= 0)
			deadline = flp_now_us() + (uint64_t)r * 1000 + 1;
		if (rx_ready(c)) {
			/* our fd is readable for our reader's sake (data, or
			 * the peer's shutdown): poll for POLLIN would not
			 * sleep.  Nap 200 us, woken by the peer's close (HUP
			 * and ERR are always reported) or a signal. */
			struct pollfd hup = { .fd = fd, .events = 0 };
			r = flp_real.poll(&hup, 1, 1);
			p.revents = hup.revents;
		} else {
			uint64_t now = flp_now_us();
			int ms = !deadline ? -1 : now >= deadline ? 0 :
				 (int)((deadline - now + 999) / 1000);
			r = flp_real.poll(&p, 1, ms);
		}
		if (r < 0 && errno == EINTR) {
			/* poll never restarts; a blocked send does, with
			 * SA_RESTART and no SO_SNDTIMEO */
			if (sig_interrupts(seq, deadline != 0)) {
				ret = done ? (ssize_t)done : -EINTR;
				break;
			}
			seq = sig_count();
		}
		if (p.revents & (POLLHUP | POLLERR))
			atomic_store(&c->peer_gone, true);
		if (deadline && flp_now_us() >= deadline && !has_room(c, need)) {
			ret = done ? (ssize_t)done : -EAGAIN;
			break;
		}
	}
	if (asleep)
		atomic_fetch_sub(&c->tx_sleepers, 1);
	if (ret > 0)
		stat_add_tx(s->st, ret);
	conn_put(c);
	return ret;
}

/* Bells on our end that drain() left for a writer of ours waiting for
 * room: the fd is readable, though rx has nothing. */
static bool bells_kept(struct shm_conn *c)
{
	struct seg_side *me = &c->h->side[c->me];

	return atomic_load(&me->bells_in) != atomic_load(&me->bells_eaten) &&
	       !rx_ready(c);
}

/* Wait in the kernel for a bell or EOF on fd; SO_RCVTIMEO, EINTR and
 * SA_RESTART are the kernel's own (a blocking recv).  Returns 0 or
 * -EINTR / -EAGAIN. */
static int sleep_rx(int fd, struct shm_conn *c)
{
	unsigned char b;
	ssize_t r = flp_real.recv(fd, &b, 1, MSG_PEEK);

	if (r > 0)
		return 0;
	if (r == 0) {
		atomic_store(&c->peer_gone, true);
		return 0;
	}
	if (errno == EINTR || errno == EAGAIN)
		return -errno;
	atomic_store(&c->peer_gone, true);
	return 0;
}


/*
 * Receive on a shm socket: from the rx ring; at its end EOF (the peer
 * shut down or closed) or an error.  MSG_PEEK leaves the bytes,
 * MSG_WAITALL gathers, MSG_TRUNC discards.  Returns bytes or -errno.
 */
ssize_t shm_recvmsg(int fd, struct flp_sock *s, struct msghdr *m, int flags)
{
	struct shm_conn *c = conn_get(s);
	struct iovec small[8], *iov = m->msg_iov, *base = NULL;
	size_t niov = m->msg_iovlen, total, done = 0;
	bool peek = flags & MSG_PEEK, trunc = flags & MSG_TRUNC;
	unsigned seq = sig_count();
	uint64_t deadline = 0;
	int nb = -1;
	ssize_t ret;

	if (!c)
		return -EBADF;
	if (flags & MSG_OOB) {
		conn_put(c);
		return -EINVAL;         /* no urgent data, as TCP without any */
	}
	m->msg_flags = 0;
	m->msg_controllen = 0;
	total = iov_total(m->msg_iov, m->msg_iovlen);
	if ((flags & MSG_WAITALL) && !peek && !trunc && niov) {
		/* gathering advances a copy of the app's iovecs */
		base = niov <= 8 ? small : malloc(niov * sizeof(*iov));
		if (!base) {
			conn_put(c);
			return -ENOMEM;
		}
		memcpy(base, m->msg_iov, niov * sizeof(*iov));
		iov = base;
	}
	for (;;) {
		int64_t n;
		int r;

		if (atomic_load(&c->broken) || peer_reset(c)) {
			ret = done ? (ssize_t)done : reset_err(c);
			break;
		}
		if (total == 0) {
			ret = 0;
			break;
		}
		lock_dir(&c->rxmu, &c->rx->rlock);
		n = ring_get(c->rx, c->rxb, c->ring, trunc ? NULL : iov, niov, total - done, peek);
		unlock_dir(&c->rxmu, &c->rx->rlock);
		if (n < 0) {
			corrupt(c, "impossible indices in the receive ring");
			continue;
		}
		if (n > 0) {
			done += (size_t)n;
			if (!peek)
				room_made(fd, c);
			if (done == total || peek || !(flags & MSG_WAITALL)) {
				ret = (ssize_t)done;
				break;
			}
			/* MSG_WAITALL: go on after what we have */
			while (niov && (size_t)n >= iov->iov_len) {
				n -= (int64_t)iov->iov_len;
				iov++;
				niov--;
			}
			if (niov && n) {
				iov->iov_base = (char *)iov->iov_base + n;
				iov->iov_len -= (size_t)n;
			}
			continue;
		}
		/* empty: EOF once the peer shut down or went away, or we
		 * shut down reading (TCP still gives what had arrived) */
		if (atomic_load(&c->rx->shut) || atomic_load(&c->peer_gone) ||
		    atomic_load(&c->shut_rd)) {
			if (ring_avail(c->rx, c->ring) != 0)
				continue;       /* written just before the shut */
			FLP_DBG("fd %d: EOF (shut %d gone %d shut_rd %d) after %zu rx %llu/%llu tx %llu/%llu", fd,
				(int)atomic_load(&c->rx->shut), (int)atomic_load(&c->peer_gone),
				(int)atomic_load(&c->shut_rd), done,
				(unsigned long long)c->rx->head, (unsigned long long)c->rx->tail,
				(unsigned long long)c->tx->head, (unsigned long long)c->tx->tail);
			ret = (ssize_t)done;
			break;
		}
		if (nb < 0)
			nb = (flags & MSG_DONTWAIT) || fd_nonblock(fd);
		if (nb) {
			arm_rx(fd, c, true);
			if (rx_ready(c))
				continue;
			ret = done ? (ssize_t)done : -EAGAIN;
			break;
		}
		/* we are looking: writers need not bell us */
		atomic_store(&c->rx->armed, 0);
		SPIN_UNTIL(rx_ready(c), seq);
		if (rx_ready(c))
			continue;
		arm_rx(fd, c, true);
		if (rx_ready(c))
			continue;
		/* a handler ran while we spun: the kernel would have ended
		 * (or restarted) a blocked recv; the sleep below would not */
		if (sig_count() != seq && sig_interrupts(seq, timeo_ms(fd, SO_RCVTIMEO) >= 0)) {
			ret = done ? (ssize_t)done : -EINTR;
			break;
		}
		seq = sig_count();
		if (bells_kept(c)) {
			/* the fd is readable for a writer's sake (its room):
			 * sleep_rx would not sleep.  Nap 1 ms, woken by the
			 * peer's close (HUP is always reported) or a signal,
			 * within SO_RCVTIMEO as the kernel's wait would be */
			struct pollfd hup = { .fd = fd, .events = 0 };
			uint64_t now = flp_now_us();
			if (!deadline && (r = timeo_ms(fd, SO_RCVTIMEO)) >= 0)
				deadline = now + (uint64_t)r * 1000 + 1;
			if (deadline && now >= deadline) {
				ret = done ? (ssize_t)done : -EAGAIN;
				break;
			}
			if (flp_real.poll(&hup, 1, 1) > 0 && (hup.revents & (POLLHUP | POLLERR)))
				atomic_store(&c->peer_gone, true);
			continue;
		}
		if ((r = sleep_rx(fd, c)) < 0) {
			ret = done ? (ssize_t)done : r;
			break;
		}
	}
	/* leaving: a reader outside our calls is not looking */
	if (ring_avail(c->rx, c->ring) == 0 || atomic_load(&c->et))
		arm_rx(fd, c, false);
	if (base && base != small)
		free(base);
	if (ret > 0 && !peek)
		stat_add_rx(s->st, ret);
	conn_put(c);
	return ret;
}

/* sendfile to a shm socket: through a buffer (the kernel cannot splice
 * into our ring). */
ssize_t shm_sendfile(int fd, struct flp_sock *s, int in, off_t *off, size_t count)
{
	char buf[65536];
	size_t done = 0;
	off_t pos = off ? *off : 0;

	while (done < count) {
		size_t want = count - done < sizeof(buf) ? count - done : sizeof(buf);
		ssize_t r = off ? pread(in, buf, want, pos) : flp_real.read(in, buf, want);
		struct iovec iov;
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t w;

		if (r < 0) {
			if (done)
				break;
			return -errno;
		}
		if (r == 0)
			break;
		iov.iov_base = buf;
		iov.iov_len = (size_t)r;
		w = shm_sendmsg(fd, s, &m, MSG_NOSIGNAL);
		if (w < 0) {
			if (!off)       /* what we read but did not send is lost to the
					 * file position; TCP's sendfile keeps it */
				lseek(in, -(off_t)r, SEEK_CUR);
			if (done)
				break;
			if (w == -EPIPE)
				raise(SIGPIPE);
			return w;
		}
		done += (size_t)w;
		pos += w;
		if (w < r) {
			if (!off)
				lseek(in, -(off_t)(r - w), SEEK_CUR);
			break;
		}
	}
	if (off)
		*off = pos;
	return (ssize_t)done;
}

/* shutdown: flags in the segment (the UDS stays open for bells). */
int shm_shutdown(int fd, struct flp_sock *s, int how)
{
	struct shm_conn *c = conn_get(s);

	if (!c)
		return -EBADF;
	if (how != SHUT_RD && how != SHUT_WR && how != SHUT_RDWR) {
		conn_put(c);
		return -EINVAL;
	}
	if (how != SHUT_WR)
		atomic_store(&c->shut_rd, true);
	if (how != SHUT_RD && !atomic_exchange(&c->shut_wr, true)) {
		atomic_store(&c->tx->shut, 1);
		/* the peer may sleep: it must hear the EOF */
		atomic_store(&c->tx->armed, 0);
		bell(fd, c);
	}
	conn_put(c);
	return 0;
}

/* The app closes the socket's last fd in this process: SO_LINGER with a
 * zero timeout aborts the connection, as TCP's RST. */
void shm_last_close(int fd, struct flp_sock *s)
{
	struct shm_conn *c = flp_shm(s);
	struct linger lg = { 0, 0 };
	socklen_t l = sizeof(lg);

	if (!c)
		return;
	FLP_DBG("fd %d: last close, tx %llu/%llu rx %llu/%llu", fd,
		(unsigned long long)c->tx->head, (unsigned long long)c->tx->tail,
		(unsigned long long)c->rx->head, (unsigned long long)c->rx->tail);
	if (flp_real.getsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, &l) == 0 &&
	    lg.l_onoff && lg.l_linger == 0) {
		atomic_store(&c->h->side[c->me].reset, 1);
		bell(fd, c);
	}
}

/* FIONREAD/SIOCINQ from the ring; SIOCOUTQ as TCP on loopback (0: the
 * peer's end has what we sent); others to the kernel. */
int shm_ioctl(int fd, struct flp_sock *s, unsigned long req, void *arg)
{
	struct shm_conn *c = conn_get(s);
	int r;

	if (!c)
		return -EBADF;
	if (req == FIONREAD || req == SIOCOUTQ || req == SIOCOUTQNSD) {
		int64_t n = req == FIONREAD ? ring_avail(c->rx, c->ring) : 0;
		conn_put(c);
		if (!arg)
			return -EFAULT;
		*(int *)arg = n < 0 ? 0 : (int)n;
		return 0;
	}
	conn_put(c);
	r = flp_real.ioctl(fd, req, arg);
	return r < 0 ? -errno : r;
}

/* --------------------------------------------------------------- waiting */

/*
 * The poll events of a shm socket now (POLLIN, POLLOUT, POLLRDHUP,
 * POLLHUP, POLLERR as tcp_poll gives them), from the rings.  kernel: what
 * the kernel said of the fd (its POLLHUP: the peer's end is gone).
 */
uint32_t shm_events(int fd, struct flp_sock *s, uint32_t kernel)
{
	struct shm_conn *c = conn_get(s);
	uint32_t ev = 0;
	bool rdhup;

	if (!c)
		return POLLNVAL;
	/* the kernel's word may be of another file (epoll reports a DRAIN
	 * socket's hidden TCP with the app's data): look at ours */
	if (kernel & (POLLHUP | POLLERR | POLLRDHUP))
		drain(fd, c, true);
	if (atomic_load(&c->broken) || peer_reset(c)) {
		conn_put(c);
		return POLLIN | POLLRDNORM | POLLOUT | POLLWRNORM | POLLERR | POLLHUP | POLLRDHUP;
	}
	rdhup = atomic_load(&c->rx->shut) || atomic_load(&c->peer_gone) || atomic_load(&c->shut_rd);
	if (ring_avail(c->rx, c->ring) != 0 || rdhup)
		ev |= POLLIN | POLLRDNORM;
	if (rdhup)
		ev |= POLLRDHUP;
	if (tx_writable(c) || atomic_load(&c->shut_wr) || atomic_load(&c->peer_gone))
		ev |= POLLOUT | POLLWRNORM;
	if (rdhup && atomic_load(&c->shut_wr))
		ev |= POLLHUP;
	conn_put(c);
	return ev;
}

/*
 * Before sleeping on fd for want (poll bits): make sure what we wait for
 * rings our bell — arm the reader, ask for room — then look again.
 * Returns the events ready now (0: sleep on the fd's POLLIN).
 */
uint32_t shm_prepare_wait(int fd, struct flp_sock *s, uint32_t want)
{
	struct shm_conn *c = conn_get(s);

	if (!c)
		return POLLNVAL;
	if (want & (POLLIN | POLLRDNORM | POLLRDHUP))
		arm_rx(fd, c, true);
	if ((want & (POLLOUT | POLLWRNORM)) && !tx_writable(c)) {
		want_room(c);
		drain(fd, c, false);
	}
	conn_put(c);
	return shm_events(fd, s, 0) & (want | POLLERR | POLLHUP | POLLNVAL);
}

/*
 * epoll's spin (wait.c) looks at rx itself: looking, writers need not bell
 * (saving a system call on each side per message); done looking, arm again.
 * Returns whether rx has something for a reader (data, EOF, an error),
 * looked at after the change.
 */
bool shm_rx_look(struct flp_sock *s, bool looking)
{
	/* the caller holds flp_mu: teardown (under it) cannot drop the
	 * connection meanwhile, so no reference is taken (this runs for
	 * every registration on every look of a spin) */
	struct shm_conn *c = flp_shm(s);

	if (!c)
		return false;
	if (looking) {
		if (atomic_load_explicit(&c->rx->armed, memory_order_relaxed))
			atomic_store(&c->rx->armed, 0);
	} else {
		atomic_store(&c->rx->armed, 1);         /* then look: a fence */
	}
	return rx_ready(c);
}

/* The app was told the socket is writable (or no one here waits for
 * that): bells for room may be dropped again. */
void shm_room_told(struct flp_sock *s)
{
	struct shm_conn *c = flp_shm(s);

	if (c && atomic_load_explicit(&c->tx_waiting, memory_order_relaxed))
		atomic_store(&c->tx_waiting, false);
}

/* The socket has (or no longer has) an edge-triggered registration: a
 * reader that leaves data behind must still be belled for new data, as
 * TCP makes a new edge for every arrival. */
void shm_note_et(struct flp_sock *s, bool et)
{
	struct shm_conn *c = flp_shm(s);

	if (c)
		atomic_store(&c->et, et);
}
