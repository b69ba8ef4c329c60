/*
 * stat_read.c — the reader's side of stat.h: check and copy a process's
 * statistics file, or a listener's handshake file (reg.c's format),
 * trusting nothing in it.  Used by bin/fastloop-stat and the unit tests.
 * Nothing in the library calls it, so the archive member never lands in
 * libfastloop.so.
 *
 * Reading a file another process maps: the owner never truncates it, but
 * a hostile or broken one could, and touching a mapped page past the end
 * raises SIGBUS.  While a file is being copied a SIGBUS handler jumps out
 * and the file is reported as truncated (so these functions are not
 * thread-safe; the reader is single-threaded).
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "stat.h"

static int bad(const char **why, const char *what, int err)
{
	if (why)
		*why = what;
	return err;
}

static bool entry_ok(const struct stat_conn *c)
{
	const struct stat_addr *a[2] = { &c->local, &c->peer };

	if (c->server > 1 || c->transport >= STAT_NTR)
		return false;
	for (int i = 0; i < 2; i++)
		if (a[i]->family != 0 && a[i]->family != AF_INET &&
		    a[i]->family != AF_INET6)
			return false;
	return true;
}

/*
 * Check the mapped file map (size bytes) of a process running as uid and
 * copy its header into *hdr and its live entries into out (up to cap;
 * the count in *n).  An entry that changes while it is copied is retried
 * a few times, then left out (it is being closed or reused: not an
 * error).  Returns 0 or -EBADMSG/-EPROTO/-EACCES with *why saying what
 * is wrong.
 */
int stat_parse(const void *map, size_t size, uid_t uid, struct stat_hdr *hdr,
	       struct stat_conn *out, unsigned cap, unsigned *n,
	       const char **why)
{
	/* not const: C11 atomic loads take a non-const pointer */
	struct stat_hdr *h = (struct stat_hdr *)map;
	struct stat_conn *e, tmp;
	unsigned used;

	*n = 0;
	if (size != STAT_FILE_SIZE)
		return bad(why, "wrong size", -EBADMSG);
	/* pairs with the release store of the magic in file_show() */
	if (atomic_load_explicit(&h->magic, memory_order_acquire) != STAT_MAGIC)
		return bad(why, "bad magic", -EBADMSG);
	memcpy(hdr, h, sizeof(*hdr));
	if (hdr->version != STAT_VERSION)
		return bad(why, "unknown version", -EPROTO);
	if (hdr->hdr_size != sizeof(struct stat_hdr) ||
	    hdr->conn_size != sizeof(struct stat_conn) ||
	    hdr->nconn != STAT_NCONN || hdr->ntr != STAT_NTR ||
	    hdr->nreason != STAT_NREASON)
		return bad(why, "bad layout", -EBADMSG);
	if (hdr->pid <= 0)
		return bad(why, "bad pid", -EBADMSG);
	if (hdr->uid != uid)
		return bad(why, "owner uid differs from the file's", -EACCES);
	if (!memchr(hdr->comm, 0, sizeof(hdr->comm)))
		return bad(why, "program name not terminated", -EBADMSG);
	used = atomic_load_explicit(&hdr->used, memory_order_relaxed);
	if (used > STAT_NCONN)
		return bad(why, "bad entry count", -EBADMSG);
	e = (struct stat_conn *)((char *)h + sizeof(*h));
	for (unsigned i = 0; i < used; i++) {
		for (int tries = 0; tries < 8; tries++) {
			/* pairs with the release store of sw in stat_conn_open() */
			uint64_t a = atomic_load_explicit(&e[i].sw, memory_order_acquire), b;

			if (claim_state(a) == STAT_FREE)
				break;
			if (claim_state(a) != STAT_LIVE)
				return bad(why, "bad entry state", -EBADMSG);
			memcpy(&tmp, &e[i], sizeof(tmp));
			/* pairs with the writer's release fence before it
			 * rewrites the fields of a reused entry */
			atomic_thread_fence(memory_order_acquire);
			b = atomic_load_explicit(&e[i].sw, memory_order_relaxed);
			if (a != b)
				continue;
			if (!entry_ok(&tmp))
				return bad(why, "bad entry", -EBADMSG);
			if (*n < cap)
				out[(*n)++] = tmp;
			break;
		}
	}
	return 0;
}

/*
 * Check a mapped handshake file (reg.c's format, the checks of
 * reg_validate) of a listener running as uid, and copy what the reader
 * shows.  Returns 0 or -errno with *why.
 */
int stat_parse_listener(const void *map, size_t size, uid_t uid,
			struct stat_listener *l, const char **why)
{
	struct reg_hdr *h = (struct reg_hdr *)map, c;

	if (size != REG_FILE_SIZE)
		return bad(why, "wrong size", -EBADMSG);
	/* pairs with the release store of the magic in reg_publish() */
	if (atomic_load_explicit(&h->magic, memory_order_acquire) != REG_MAGIC)
		return bad(why, "bad magic", -EBADMSG);
	memcpy(&c, h, sizeof(c));
	if (c.version != REG_VERSION)
		return bad(why, "unknown version", -EPROTO);
	if (c.hdr_size != sizeof(struct reg_hdr) ||
	    c.slot_size != sizeof(struct reg_slot) || c.nslots != REG_NSLOTS)
		return bad(why, "bad layout", -EBADMSG);
	if (c.owner_pid <= 0)
		return bad(why, "bad pid", -EBADMSG);
	if (c.owner_uid != uid)
		return bad(why, "owner uid differs from the file's", -EACCES);
	l->bound = c.bound;
	l->v6only = c.v6only != 0;
	l->pid = c.owner_pid;
	l->uid = c.owner_uid;
	l->start = c.owner_start;
	l->netns = c.netns;
	return 0;
}

/* ------------------------------------------------------------ files */

static sigjmp_buf bus_jmp;
static volatile sig_atomic_t bus_armed;

static void on_bus(int sig)
{
	if (bus_armed)
		siglongjmp(bus_jmp, 1);
	signal(sig, SIG_DFL);   /* not ours: the fault repeats and kills */
}

/*
 * Open dir/name, a regular file of size bytes.  Returns the fd, 0 when
 * the file is not alive (nobody holds its flock: then it is removed if
 * sweep and the name still is that file), or -errno with *why.  *st gets
 * the file's identity and owner.
 */
static int open_live(const char *dir, const char *name, size_t size,
		     bool sweep, struct stat *st, const char **why)
{
	char path[512];
	struct stat now;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;       /* gone meanwhile: its owner exited */
		return bad(why, "cannot open", -errno);
	}
	if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode)) {
		close(fd);
		return bad(why, "not a regular file", -EBADMSG);
	}
	if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
		/* nobody holds it: its owner is gone */
		flock(fd, LOCK_UN);
		if (sweep && lstat(path, &now) == 0 && now.st_dev == st->st_dev &&
		    now.st_ino == st->st_ino)
			unlink(path);
		close(fd);
		return 0;
	}
	if ((size_t)st->st_size != size) {
		close(fd);
		return bad(why, "wrong size", -EBADMSG);
	}
	return fd;
}

/* Map fd read-only and run parse on it with SIGBUS caught.  Returns
 * parse's result, or -EBADMSG for a file truncated under us. */
static int parse_mapped(int fd, size_t size, const char **why,
			int (*parse)(const void *, size_t, void *, const char **),
			void *arg)
{
	struct sigaction sa, old;
	void *volatile m;
	int r;

	m = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED)
		return bad(why, "cannot map", -errno);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_bus;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, &old);
	if (sigsetjmp(bus_jmp, 1) == 0) {
		bus_armed = 1;
		r = parse(m, size, arg, why);
	} else {
		r = bad(why, "truncated while being read", -EBADMSG);
	}
	bus_armed = 0;
	sigaction(SIGBUS, &old, NULL);
	munmap(m, size);
	return r;
}

struct proc_arg {
	uid_t uid;
	struct stat_proc *p;
	struct stat_conn *buf;
};

static int parse_proc(const void *m, size_t size, void *arg, const char **why)
{
	struct proc_arg *a = arg;

	return stat_parse(m, size, a->uid, &a->p->hdr, a->buf, STAT_NCONN,
			  &a->p->nconns, why);
}

/*
 * Read the statistics file dir/name.  Returns 1 with *p filled (free it
 * with stat_proc_free), 0 if the file is stale (removed when sweep and
 * allowed) or gone, or -errno with *why for a file that cannot be read
 * or is corrupt.
 */
int stat_read_proc(const char *dir, const char *name, bool sweep,
		   struct stat_proc *p, const char **why)
{
	struct proc_arg a;
	struct stat st;
	int fd, r;

	memset(p, 0, sizeof(*p));
	fd = open_live(dir, name, STAT_FILE_SIZE, sweep, &st, why);
	if (fd <= 0)
		return fd;
	a.uid = st.st_uid;
	a.p = p;
	a.buf = malloc(STAT_NCONN * sizeof(struct stat_conn));
	if (!a.buf) {
		close(fd);
		return bad(why, "out of memory", -ENOMEM);
	}
	r = parse_mapped(fd, STAT_FILE_SIZE, why, parse_proc, &a);
	close(fd);
	if (r < 0 || !p->nconns) {
		free(a.buf);
		p->nconns = 0;
	} else {
		p->conns = realloc(a.buf, p->nconns * sizeof(struct stat_conn));
		if (!p->conns)
			p->conns = a.buf;
	}
	if (r < 0)
		return r;
	snprintf(p->name, sizeof(p->name), "%s", name);
	snprintf(p->dir, sizeof(p->dir), "%s", dir);
	return 1;
}

void stat_proc_free(struct stat_proc *p)
{
	free(p->conns);
	p->conns = NULL;
	p->nconns = 0;
}

struct lis_arg {
	uid_t uid;
	struct stat_listener *l;
};

static int parse_lis(const void *m, size_t size, void *arg, const char **why)
{
	struct lis_arg *a = arg;

	return stat_parse_listener(m, size, a->uid, a->l, why);
}

/*
 * Read the handshake file dir/name.  Returns 1 with *l filled, 0 if the
 * listener is gone (stale files are left to the library, which sweeps
 * them), or -errno with *why.
 */
int stat_read_listener(const char *dir, const char *name,
		       struct stat_listener *l, const char **why)
{
	struct lis_arg a;
	struct stat st;
	int fd, r;

	memset(l, 0, sizeof(*l));
	fd = open_live(dir, name, REG_FILE_SIZE, false, &st, why);
	if (fd <= 0)
		return fd;
	a.uid = st.st_uid;
	a.l = l;
	r = parse_mapped(fd, REG_FILE_SIZE, why, parse_lis, &a);
	close(fd);
	if (r < 0)
		return r;
	snprintf(l->name, sizeof(l->name), "%s", name);
	snprintf(l->dir, sizeof(l->dir), "%s", dir);
	return 1;
}

/* ---------------------------------------------------------- addresses */

static bool mapped(const uint8_t *a)
{
	static const uint8_t pfx[12] = { [10] = 0xff, [11] = 0xff };

	return !memcmp(a, pfx, 12);
}

static const char *fmt(const uint8_t *addr, uint16_t port, bool v4, char *buf,
		       size_t len)
{
	char ip[INET6_ADDRSTRLEN];

	if (v4) {
		inet_ntop(AF_INET, addr + 12, ip, sizeof(ip));
		snprintf(buf, len, "%s:%u", ip, port);
	} else {
		inet_ntop(AF_INET6, addr, ip, sizeof(ip));
		snprintf(buf, len, "[%s]:%u", ip, port);
	}
	return buf;
}

/* "1.2.3.4:80" for an AF_INET view, "[::ffff:1.2.3.4]:80" or "[::1]:80"
 * for an AF_INET6 one, "?" for anything else. */
const char *stat_addr_str(const struct stat_addr *a, char *buf, size_t len)
{
	if (a->family == AF_INET)
		return fmt(a->addr, a->port, true, buf, len);
	if (a->family == AF_INET6)
		return fmt(a->addr, a->port, false, buf, len);
	snprintf(buf, len, "?");
	return buf;
}

/* A handshake file's address (IPv4 stored v4-mapped). */
const char *stat_reg_addr_str(const struct reg_addr *a, char *buf, size_t len)
{
	return fmt(a->addr, a->port, mapped(a->addr), buf, len);
}

/* Same endpoint, whichever family the app used to see it. */
bool stat_addr_eq(const struct stat_addr *a, const struct stat_addr *b)
{
	return a->family && b->family && a->port == b->port &&
	       !memcmp(a->addr, b->addr, 16);
}
