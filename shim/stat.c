/*
 * stat.c — publish this process's decisions and live connections for
 * `fastloop stat`.  The format is in stat.h.
 *
 * The file p-<pid>-<starttime> is made lazily, on the first decision or
 * connection, under a temporary name: created, sized, locked (LOCK_EX,
 * held for the life of the process: that is its liveness), mapped,
 * filled, the magic stored with release, then renamed into place.  If
 * anything fails nothing is published and nothing is retried: the
 * statistics never cost the data path more than a NULL test.  A process
 * ending without exit handlers (killed, _exit) leaves its file: readers
 * ignore and remove such files, and so does each new publication here.
 *
 * The writer keeps a private shadow of every entry (its state, generation
 * and fixed fields).  The shared entry is what readers see; the shadow is
 * what this process knows, so that a fork child, whose memory is a copy
 * of the parent's at the instant of the fork, knows exactly which entries
 * it inherited even while the parent goes on closing and reusing them.
 *
 * Fork: the child must not count into, or close, the parent's entries.
 * stat_after_fork_child() (or the child's first stat_* call, if the
 * engine did not call it) gives the child a file of its own holding the
 * inherited live connections at the same offsets, and maps it over the
 * inherited mapping (MAP_FIXED): the engine's struct stat_conn pointers
 * stay valid and from then on count into the child's file.  When the
 * child inherited no live entry, or cannot make its file, the inherited
 * range is replaced with private anonymous memory (never unmapped: a
 * stray pointer must not fault), where counters land unseen.
 *
 * Locking: stat_mu (ours, taken inside flp_mu when the engine holds it)
 * guards the table and the publication.  The counters are relaxed
 * atomics, updated without it.
 */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "stat.h"

_Static_assert(sizeof(struct stat_conn) == 128, "entry layout");
_Static_assert(sizeof(struct stat_hdr) == 512, "header layout");
_Static_assert(STAT_NCONN <= 65536, "free stack holds uint16_t indices");

static pthread_mutex_t stat_mu = PTHREAD_MUTEX_INITIALIZER;
/* our file's mapping; NULL: nothing published (release/acquire with the
 * fields below, which are written under stat_mu before it) */
static struct stat_hdr *_Atomic st_hdr;
static struct stat_conn *st_conns;      /* entries in the mapping */
static struct stat_conn *st_shadow;     /* private: what we published */
static _Atomic pid_t st_pid;            /* the process that published */
static int st_fd = -1;                  /* holds the flock */
static dev_t st_dev;
static ino_t st_ino;
static char st_name[64];
static _Atomic bool st_failed;          /* do not try again */
static uint16_t st_free[STAT_NCONN];    /* free indices below used */
static unsigned st_nfree;

static uint64_t boot_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_BOOTTIME, &ts) < 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static unsigned tr_index(const char *t)
{
	if (!t)
		return STAT_TR_OTHER;
	for (unsigned i = 0; i < STAT_TR_OTHER; i++)
		if (!strcmp(t, stat_tr_name(i)))
			return i;
	return STAT_TR_OTHER;
}

static unsigned reason_index(const char *r)
{
	if (!strncmp(r, "error", 5))
		return STAT_R_ERROR;
	for (unsigned i = 0; i < STAT_R_ERROR; i++)
		if (!strcmp(r, stat_reason_name(i)))
			return i;
	return STAT_R_OTHER;
}

/* The program name: /proc/self/comm (follows prctl(PR_SET_NAME)), else
 * what libc took from argv[0]. */
static void read_comm(char *buf)
{
	ssize_t n = -1;
	int fd = open("/proc/self/comm", O_RDONLY | O_CLOEXEC);

	memset(buf, 0, STAT_COMM);
	if (fd >= 0) {
		n = flp_real.read(fd, buf, STAT_COMM - 1);
		flp_real.close(fd);
	}
	if (n <= 0)
		snprintf(buf, STAT_COMM, "%s", program_invocation_short_name);
	buf[strcspn(buf, "\n")] = 0;
}

/* Is st_fd still our file?  The app may have closed the number (closing
 * "all fds") and reused it. */
static bool fd_is_ours(void)
{
	struct stat st;

	return st_fd >= 0 && fstat(st_fd, &st) == 0 && st.st_dev == st_dev &&
	       st.st_ino == st_ino;
}

static void path_of(char *buf, size_t len, const char *prefix, const char *name)
{
	snprintf(buf, len, "%s/%s%s", flp_cfg.dir, prefix, name);
}

/*
 * Make, lock and map a new file for this process under its temporary
 * name, header filled but magic not set.  Returns the mapping (fd, name
 * and identity in *fdp and the st_ variables' staging copies) or NULL.
 * Caller holds stat_mu.
 */
static struct stat_hdr *file_new(int *fdp, char *name, size_t nlen,
				 struct stat *id)
{
	pid_t pid = getpid();
	uint64_t start = pid == flp_pid ? flp_start : flp_proc_start(pid);
	char tmp[512];
	struct stat_hdr *h;
	void *p;
	int fd;

	snprintf(name, nlen, "p-%d-%llu", (int)pid, (unsigned long long)start);
	path_of(tmp, sizeof(tmp), "t", name);
	fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 && errno == EEXIST) {
		/* left by this pid's image before an exec, mid-publication */
		unlink(tmp);
		fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	}
	if (fd < 0)
		goto err_open;
	if (fchmod(fd, 0600) < 0 || ftruncate(fd, STAT_FILE_SIZE) < 0 ||
	    flock(fd, LOCK_EX | LOCK_NB) < 0 || fstat(fd, id) < 0)
		goto err_init;
	fd = flp_high_fd(fd);
	p = mmap(NULL, STAT_FILE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		goto err_init;
	h = p;
	h->version = STAT_VERSION;
	h->hdr_size = sizeof(struct stat_hdr);
	h->conn_size = sizeof(struct stat_conn);
	h->nconn = STAT_NCONN;
	h->ntr = STAT_NTR;
	h->nreason = STAT_NREASON;
	h->pid = pid;
	h->uid = geteuid();
	h->start = start;
	h->netns = flp_netns;
	h->created = boot_ns();
	read_comm(h->comm);
	*fdp = fd;
	return h;

err_init:
	FLP_DBG("statistics file %s: %s", tmp, strerror(errno));
	flp_real.close(fd);
	unlink(tmp);
	return NULL;
err_open:
	FLP_DBG("statistics file %s: %s", tmp, strerror(errno));
	return NULL;
}

/* Set the magic (release: pairs with the reader's acquire load) and
 * rename the file into place.  On failure the file is gone. */
static int file_show(struct stat_hdr *h, int fd, const char *name)
{
	char tmp[512], fin[512];

	path_of(tmp, sizeof(tmp), "t", name);
	path_of(fin, sizeof(fin), "", name);
	atomic_store_explicit(&h->magic, STAT_MAGIC, memory_order_release);
	if (rename(tmp, fin) == 0)
		return 0;
	FLP_DBG("statistics file %s: %s", fin, strerror(errno));
	munmap(h, STAT_FILE_SIZE);
	flp_real.close(fd);
	unlink(tmp);
	return -1;
}

/* Make h (fd, name, identity) our published file.  Caller holds stat_mu. */
static void adopt_file(struct stat_hdr *h, int fd, const char *name,
		       const struct stat *id)
{
	st_conns = (struct stat_conn *)((char *)h + sizeof(*h));
	st_fd = fd;
	st_dev = id->st_dev;
	st_ino = id->st_ino;
	st_pid = h->pid;
	snprintf(st_name, sizeof(st_name), "%s", name);
	atomic_store_explicit(&st_hdr, h, memory_order_release);
}

/*
 * Remove the files (and temporaries) of processes that are gone: one
 * killed, or ended by _exit() (prefork workers, forking servers'
 * children), leaves its file behind, and nothing else would remove it
 * until someone runs `fastloop stat`.  A pid that exists is skipped
 * without opening its file (one kill() each); for the others the flock
 * decides, as for a reader.  Caller holds stat_mu.
 */
static void sweep_stale(void)
{
	DIR *d = opendir(flp_cfg.dir);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		const char *n = de->d_name + (de->d_name[0] == 't');
		struct stat st, now;
		char path[512];
		int pid, fd;

		if (strncmp(n, "p-", 2) || sscanf(n + 2, "%d-", &pid) != 1 || pid <= 0)
			continue;
		if (kill(pid, 0) == 0 || errno != ESRCH)
			continue;
		path_of(path, sizeof(path), "", de->d_name);
		fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0)
			continue;
		/* unlocked: nobody (no fork child either) holds it */
		if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
		    flock(fd, LOCK_SH | LOCK_NB) == 0 && lstat(path, &now) == 0 &&
		    now.st_dev == st.st_dev && now.st_ino == st.st_ino) {
			FLP_DBG("removing stale statistics file %s", de->d_name);
			unlink(path);
		}
		flp_real.close(fd);
	}
	closedir(d);
}

/* First publication in this process.  Caller holds stat_mu. */
static void publish(void)
{
	char name[64];
	struct stat id;
	struct stat_hdr *h;
	int fd;

	if (!st_shadow && !(st_shadow = calloc(STAT_NCONN, sizeof(*st_shadow))))
		goto fail;
	if (!(h = file_new(&fd, name, sizeof(name), &id)))
		goto fail;
	if (file_show(h, fd, name) < 0)
		goto fail;
	st_nfree = 0;
	memset(st_shadow, 0, STAT_NCONN * sizeof(*st_shadow));
	adopt_file(h, fd, name, &id);
	sweep_stale();
	return;
fail:
	/* once: a failing directory must not cost syscalls per connection */
	FLP_DBG("statistics not published");
	st_failed = true;
}

/* Forget our file without touching the mapping (other threads may still
 * count into it, and it stays valid memory).  Caller holds stat_mu. */
static void forget(void)
{
	atomic_store_explicit(&st_hdr, NULL, memory_order_release);
	if (fd_is_ours())
		flp_real.close(st_fd);
	st_fd = -1;
	st_conns = NULL;
	st_pid = 0;
	st_nfree = 0;
}

/*
 * We are a fork child still holding the parent's mapping: see the header
 * comment.  Caller holds stat_mu (or is the only thread).
 */
static void take_over(void)
{
	struct stat_hdr *old = atomic_load_explicit(&st_hdr, memory_order_relaxed);
	struct stat_conn *oc = (struct stat_conn *)((char *)old + sizeof(*old));
	unsigned used = atomic_load_explicit(&old->used, memory_order_relaxed);
	unsigned live = 0, nfree = st_nfree;
	struct stat_hdr *h = NULL;
	struct stat_conn *nc;
	char name[64];
	struct stat id;
	int fd = -1;

	if (used > STAT_NCONN)
		used = STAT_NCONN;
	for (unsigned i = 0; i < used; i++)
		live += claim_state(st_shadow[i].sw) == STAT_LIVE;
	forget();                       /* closes our copy of the parent's fd */
	st_failed = false;
	if (!live)
		goto orphan;    /* no munmap: a stray pointer must not fault */
	if (!(h = file_new(&fd, name, sizeof(name), &id)))
		goto orphan;
	nc = (struct stat_conn *)((char *)h + sizeof(*h));
	for (unsigned i = 0; i < used; i++) {
		uint64_t sw = st_shadow[i].sw, a, b, tx = 0, rx = 0;

		nc[i] = st_shadow[i];
		if (claim_state(sw) != STAT_LIVE)
			continue;
		/* the bytes so far, if the parent has not reused the entry
		 * meanwhile (any state of the same generation will do) */
		a = atomic_load_explicit(&oc[i].sw, memory_order_acquire);
		tx = atomic_load_explicit(&oc[i].tx, memory_order_relaxed);
		rx = atomic_load_explicit(&oc[i].rx, memory_order_relaxed);
		atomic_thread_fence(memory_order_acquire);
		b = atomic_load_explicit(&oc[i].sw, memory_order_relaxed);
		if (claim_gen(a) != claim_gen(sw) || a != b)
			tx = rx = 0;
		atomic_store_explicit(&nc[i].tx, tx, memory_order_relaxed);
		atomic_store_explicit(&nc[i].rx, rx, memory_order_relaxed);
	}
	atomic_store_explicit(&h->used, used, memory_order_relaxed);
	if (file_show(h, fd, name) < 0)
		goto orphan;
	/* our file where the inherited entries are */
	if (mmap(old, STAT_FILE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
		 fd, 0) == MAP_FAILED) {
		char fin[512];

		path_of(fin, sizeof(fin), "", name);
		unlink(fin);
		munmap(h, STAT_FILE_SIZE);
		flp_real.close(fd);
		goto orphan;
	}
	munmap(h, STAT_FILE_SIZE);
	st_nfree = nfree;               /* the parent's free list, as inherited */
	adopt_file(old, fd, name, &id);
	sweep_stale();
	return;
orphan:
	/* never count into the parent's entries; a later decision may still
	 * publish a fresh file elsewhere */
	if (mmap(old, STAT_FILE_SIZE, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
		FLP_WARN("statistics: cannot detach from the parent's file: %s",
			 strerror(errno));
}

/* Our header, publishing first if needed and create; NULL if nothing is
 * published.  Caller holds stat_mu. */
static struct stat_hdr *hdr_locked(bool create)
{
	struct stat_hdr *h = atomic_load_explicit(&st_hdr, memory_order_relaxed);

	/* a fork child (flp_pid is updated by the engine's child handler;
	 * getpid() only when they differ) */
	if (h && st_pid != flp_pid && st_pid != getpid())
		take_over();
	h = atomic_load_explicit(&st_hdr, memory_order_relaxed);
	if (!h && create && !st_failed && reg_enabled())
		publish();
	return atomic_load_explicit(&st_hdr, memory_order_relaxed);
}

/* The lock-free path once published (or once failed): flp_pid tells a
 * fork child whose engine has run its fork handler. */
static struct stat_hdr *hdr_get(void)
{
	struct stat_hdr *h = atomic_load_explicit(&st_hdr, memory_order_acquire);

	if (h && atomic_load_explicit(&st_pid, memory_order_relaxed) == flp_pid)
		return h;
	if (!h && (atomic_load_explicit(&st_failed, memory_order_relaxed) ||
		   !reg_enabled()))
		return NULL;
	pthread_mutex_lock(&stat_mu);
	h = hdr_locked(true);
	pthread_mutex_unlock(&stat_mu);
	return h;
}

void stat_count(const char *transport, const char *reason)
{
	struct stat_hdr *h = hdr_get();

	if (!h)
		return;
	atomic_fetch_add_explicit(&h->tr[tr_index(transport)], 1,
				  memory_order_relaxed);
	if (reason)
		atomic_fetch_add_explicit(&h->reason[reason_index(reason)], 1,
					  memory_order_relaxed);
}

/* The app's view of an address; family 0 when it is not IPv4/IPv6. */
static void addr_put(struct stat_addr *a, const struct sockaddr *sa,
		     socklen_t len)
{
	memset(a, 0, sizeof(*a));
	if (!sa)
		return;
	if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *s = (const void *)sa;
		a->addr[10] = a->addr[11] = 0xff;
		memcpy(a->addr + 12, &s->sin_addr, 4);
		a->port = ntohs(s->sin_port);
		a->family = AF_INET;
	} else if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *s = (const void *)sa;
		memcpy(a->addr, &s->sin6_addr, 16);
		a->port = ntohs(s->sin6_port);
		a->family = AF_INET6;
	}
}

struct stat_conn *stat_conn_open(bool server, const struct sockaddr *local,
				 socklen_t llen, const struct sockaddr *peer,
				 socklen_t plen, const char *transport)
{
	struct stat_conn *c, *s;
	struct stat_hdr *h;
	unsigned idx, used;
	uint32_t gen;

	pthread_mutex_lock(&stat_mu);
	if (!(h = hdr_locked(true)))
		goto out_none;
	used = atomic_load_explicit(&h->used, memory_order_relaxed);
	if (st_nfree) {
		idx = st_free[--st_nfree];
	} else if (used < STAT_NCONN) {
		idx = used;
		/* readers scan up to used: the entry is FREE until below */
		atomic_store_explicit(&h->used, used + 1, memory_order_release);
	} else {
		atomic_fetch_add_explicit(&h->unlisted, 1, memory_order_relaxed);
		goto out_none;
	}
	s = &st_shadow[idx];
	c = &st_conns[idx];
	gen = claim_gen(s->sw) + 1;
	s->since = boot_ns();
	addr_put(&s->local, local, llen);
	addr_put(&s->peer, peer, plen);
	s->server = server;
	s->transport = (uint8_t)tr_index(transport);
	s->sw = claim_sw(gen, STAT_LIVE);
	/* The entry is FREE in the file (its last close stored that): a
	 * reader still copying its previous life must see the state change
	 * once it sees any field written below (pairs with the reader's
	 * acquire fence before it re-loads sw). */
	atomic_thread_fence(memory_order_release);
	memcpy((char *)c + offsetof(struct stat_conn, since),
	       (char *)s + offsetof(struct stat_conn, since),
	       sizeof(*c) - offsetof(struct stat_conn, since));
	atomic_store_explicit(&c->tx, 0, memory_order_relaxed);
	atomic_store_explicit(&c->rx, 0, memory_order_relaxed);
	/* pairs with the reader's acquire load of sw */
	atomic_store_explicit(&c->sw, s->sw, memory_order_release);
	pthread_mutex_unlock(&stat_mu);
	return c;
out_none:
	pthread_mutex_unlock(&stat_mu);
	return NULL;
}

void stat_conn_close(struct stat_conn *c)
{
	struct stat_conn *s;
	size_t idx;

	if (!c)
		return;
	pthread_mutex_lock(&stat_mu);
	/* a fork child takes its entries over first; nothing is published
	 * for a close (after stat_at_exit there must be no new file) */
	hdr_locked(false);
	/* an entry of a file we no longer publish (forgotten, orphaned):
	 * nothing to remove */
	if (!st_conns || c < st_conns || c >= st_conns + STAT_NCONN)
		goto out;
	idx = (size_t)(c - st_conns);
	s = &st_shadow[idx];
	if (claim_state(s->sw) != STAT_LIVE)
		goto out;       /* closed twice */
	s->sw = claim_sw(claim_gen(s->sw), STAT_FREE);
	atomic_store_explicit(&c->sw, s->sw, memory_order_release);
	st_free[st_nfree++] = (uint16_t)idx;
out:
	pthread_mutex_unlock(&stat_mu);
}

/*
 * Fork child: stat_mu may have been held by a parent thread that does not
 * exist here, so it starts afresh; a child that inherited live entries
 * publishes its own file now (they are its connections too), one that
 * did not publishes lazily.  Open/close must not race a fork (the engine
 * calls them under flp_mu, which its fork handlers hold across fork).
 * Uses getpid(), not flp_pid: safe whichever order the engine's child
 * handler updates flp_pid in.
 */
void stat_after_fork_child(void)
{
	pthread_mutex_init(&stat_mu, NULL);
	if (atomic_load_explicit(&st_hdr, memory_order_relaxed) && st_pid != getpid())
		take_over();
	st_failed = false;
}

/*
 * Normal exit: remove our file (if the name is still ours).  The mapping
 * stays: other threads may still count into it until the process ends.
 * A later decision would publish again (a stale file then, swept by the
 * next reader).
 */
void stat_at_exit(void)
{
	char path[512];
	struct stat st;

	pthread_mutex_lock(&stat_mu);
	if (atomic_load_explicit(&st_hdr, memory_order_relaxed) && st_pid == getpid()) {
		path_of(path, sizeof(path), "", st_name);
		if (lstat(path, &st) == 0 && st.st_dev == st_dev && st.st_ino == st_ino)
			unlink(path);
	}
	if (atomic_load_explicit(&st_hdr, memory_order_relaxed))
		forget();
	st_failed = false;
	pthread_mutex_unlock(&stat_mu);
}
