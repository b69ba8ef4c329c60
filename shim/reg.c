/*
 * reg.c — the registry: one handshake file per published listener in a
 * private directory.  A file is named
 *     l-<port>-<netns inode>-<pid>-<seq>
 * so that a client finds candidates for a destination port by name alone.
 * The owner holds an exclusive flock on it for as long as any process
 * holds the listener's file description (fork children inherit it), so a
 * client tests liveness with a shared non-blocking flock: success means
 * nobody owns it any more, the file is stale, and the client removes it.
 * The pid + start time in the header are for humans and diagnostics.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "flp.h"

_Static_assert(sizeof(struct reg_slot) == 128, "slot layout");
_Static_assert(sizeof(struct reg_hdr) == 256, "header layout");

pid_t flp_pid;
uint64_t flp_start;
uid_t flp_euid;
uint64_t flp_netns;

static bool reg_ok;
static unsigned reg_seq;
static struct reg_map *cache;   /* client side: files we have mapped */

/*
 * Client side: ports whose last scan of the directory found no usable
 * file, with the directory's mtime before that scan.  While the mtime
 * stays, a scan would find the same (a publish or a removal changes it),
 * so a connect to a port without a preloaded listener costs one stat
 * instead of opendir, two getdents and a close (wrk against a plain
 * server: 0.76x plain TCP with the scans).  An entry is made only when
 * the mtime was NEG_AGE_NS old at the scan: a change within the same tick
 * of the file system's clock would leave the mtime as it was.  Being
 * wrong costs only the fast path (the connection stays TCP), never bytes.
 */
#define NEG_SLOTS 64
#define NEG_AGE_NS 20000000LL
static struct {
	uint32_t port;          /* 0: empty (port 0 is never looked up) */
	struct timespec mtime;
} neg[NEG_SLOTS];

bool reg_enabled(void)
{
	return reg_ok;
}

/* Start time (clock ticks since boot) of a process, or 0 if unknown. */
uint64_t flp_proc_start(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long st = 0;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = flp_real.read(fd, buf, sizeof(buf) - 1);
	flp_real.close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	/* the command name may contain spaces and ')': skip past the last ')' */
	p = strrchr(buf, ')');
	if (!p)
		return 0;
	/* field 3 is the state; starttime is field 22 */
	if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u "
			  "%*d %*d %*d %*d %*d %*d %llu", &st) != 1)
		return 0;
	return st;
}

bool flp_pid_alive(pid_t pid, uint64_t start)
{
	if (pid <= 0)
		return false;
	if (kill(pid, 0) < 0 && errno != EPERM)
		return false;
	return !start || flp_proc_start(pid) == start;
}

/*
 * The directory must be a real directory (not a symlink), owned by uid,
 * with no group/other permissions.  Returns 0 or -errno describing the
 * first failed check (-ENOTDIR, -EPERM for owner/mode).
 */
int reg_dir_check(const char *dir, uid_t uid)
{
	struct stat st;

	if (lstat(dir, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	if (st.st_uid != uid || (st.st_mode & 077))
		return -EPERM;
	return 0;
}

/* Create (0700) and check the registry directory.  On failure the fast
 * path is disabled for this process, with one warning. */
int reg_dir_init(void)
{
	int r;

	if (mkdir(flp_cfg.dir, 0700) < 0 && errno != EEXIST) {
		r = -errno;
		FLP_WARN("registry %s: cannot create: %s; fast path disabled",
			 flp_cfg.dir, strerror(-r));
		return r;
	}
	r = reg_dir_check(flp_cfg.dir, geteuid());
	if (r < 0) {
		FLP_WARN("registry %s: %s; fast path disabled", flp_cfg.dir,
			 r == -EPERM ? "not owned by this user or accessible to others"
			 : r == -ENOTDIR ? "not a directory (or a symlink)"
			 : strerror(-r));
		return r;
	}
	reg_ok = true;
	return 0;
}

/* Move an fd the library keeps out of the app's low numbers, so that the
 * app sees the same fd numbers it would see without us. */
int flp_high_fd(int fd)
{
	int n = flp_real.fcntl(fd, F_DUPFD_CLOEXEC, fdt_max() / 2);

	if (n < 0)
		return fd;
	flp_real.close(fd);
	return n;
}

/*
 * Check a header read from a file we did not write.  Returns 0 or
 * -EBADMSG/-EPROTO/-EACCES; nothing in it is trusted beyond this.
 */
int reg_validate(const struct reg_hdr *h, size_t size, uid_t uid)
{
	if (size != REG_FILE_SIZE)
		return -EBADMSG;
	if (atomic_load_explicit(&h->magic, memory_order_acquire) != REG_MAGIC)
		return -EBADMSG;
	if (h->version != REG_VERSION)
		return -EPROTO;
	if (h->hdr_size != sizeof(struct reg_hdr) ||
	    h->slot_size != sizeof(struct reg_slot) || h->nslots != REG_NSLOTS)
		return -EBADMSG;
	if (h->owner_uid != uid)
		return -EACCES;
	return 0;
}

static int map_file(int fd, struct reg_map *m)
{
	void *p = mmap(NULL, REG_FILE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	if (p == MAP_FAILED)
		return -errno;
	m->hdr = p;
	m->slots = (struct reg_slot *)((char *)p + sizeof(struct reg_hdr));
	m->fd = fd;
	m->refs = 1;
	/* ours, not the app's: a close_range() of the app's leaves it (its
	 * number freed behind our back would be reused, and closed by us) */
	flp_note_hidden(fd, NULL);
	return 0;
}

/*
 * Create the handshake file for a listener bound to *bound.  The file is
 * built under a temporary name, locked, filled and only then renamed into
 * place, so a client never sees a half-written or unlocked file.
 */
int reg_publish(const struct reg_addr *bound, bool v6only, struct reg_map **out)
{
	char tmp[512], fin[512];
	struct reg_map *m;
	struct stat st;
	int fd, r;

	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	snprintf(m->name, sizeof(m->name), "l-%u-%llu-%d-%u", bound->port,
		 (unsigned long long)flp_netns, (int)flp_pid,
		 __atomic_fetch_add(&reg_seq, 1, __ATOMIC_RELAXED));
	snprintf(tmp, sizeof(tmp), "%s/t%s", flp_cfg.dir, m->name);
	snprintf(fin, sizeof(fin), "%s/%s", flp_cfg.dir, m->name);
	fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		r = -errno;
		goto err_open;
	}
	if (ftruncate(fd, REG_FILE_SIZE) < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0) {
		r = -errno;
		goto err_init;
	}
	fd = flp_high_fd(fd);
	if ((r = map_file(fd, m)) < 0)
		goto err_init;
	m->hdr->version = REG_VERSION;
	m->hdr->hdr_size = sizeof(struct reg_hdr);
	m->hdr->slot_size = sizeof(struct reg_slot);
	m->hdr->nslots = REG_NSLOTS;
	m->hdr->owner_pid = flp_pid;
	m->hdr->owner_uid = geteuid();
	m->hdr->owner_start = flp_start;
	m->hdr->netns = flp_netns;
	m->hdr->bound = *bound;
	m->hdr->v6only = v6only;
	m->hdr->switch_after = (uint32_t)flp_cfg.switch_after;
	/* pairs with the acquire load in reg_validate() */
	atomic_store_explicit(&m->hdr->magic, REG_MAGIC, memory_order_release);
	if (rename(tmp, fin) < 0) {
		r = -errno;
		goto err_rename;
	}
	if (fstat(fd, &st) == 0)
		m->ino = st.st_ino;
	m->owner = true;
	*out = m;
	return 0;

err_rename:
	munmap(m->hdr, REG_FILE_SIZE);
	flp_close_hidden(NULL, &fd);
err_init:
	flp_real.close(fd);
	unlink(tmp);
err_open:
	free(m);
	return r;
}

/* A stale file: remove it if the name still refers to the same inode. */
static void sweep(const char *name, uint64_t ino)
{
	char path[512];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", flp_cfg.dir, name);
	if (lstat(path, &st) == 0 && st.st_ino == ino) {
		FLP_DBG("removing stale handshake file %s", name);
		unlink(path);
	}
}

static void unmap(struct reg_map *m)
{
	munmap(m->hdr, REG_FILE_SIZE);
	flp_close_hidden(NULL, &m->fd);
	free(m);
}

/*
 * The owner's last reference went after reg_unpublish().  The file goes
 * away when no process holds the listener any more: with our lock fd
 * dropped, a fresh exclusive lock succeeds only if no other process (a
 * fork child that inherited the listener) still holds the original one.
 */
static void unpublish_now(const char *name, uint64_t ino)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", flp_cfg.dir, name);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return;
	/* a client's liveness probe holds a shared lock for a moment (the
	 * file was left behind when we met one); a fork child that still
	 * listens holds it for good: a few short tries tell them apart */
	for (int i = 0; i < 5; i++) {
		struct timespec ts = { 0, 200000 };
		if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
			sweep(name, ino);
			break;
		}
		nanosleep(&ts, NULL);
	}
	flp_real.close(fd);
}

/* A listener's last fd in this process is gone.  Sockets it accepted
 * that are still on trial (or undecided) hold the file — they may yet
 * look for their claim — and it goes with the last of them. */
void reg_unpublish(struct reg_map *m)
{
	__atomic_store_n(&m->unpub, true, __ATOMIC_RELEASE);
	reg_put(m);
}

void reg_get(struct reg_map *m)
{
	__atomic_fetch_add(&m->refs, 1, __ATOMIC_RELAXED);
}

void reg_put(struct reg_map *m)
{
	char name[sizeof(m->name)];
	uint64_t ino = m->ino;
	bool unpub;

	if (__atomic_sub_fetch(&m->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	unpub = __atomic_load_n(&m->unpub, __ATOMIC_ACQUIRE);
	snprintf(name, sizeof(name), "%s", m->name);
	unmap(m);               /* our lock goes with our fd */
	if (unpub)
		unpublish_now(name, ino);
}

/* Owner alive <=> somebody holds the exclusive lock. */
static bool file_alive(struct reg_map *m)
{
	if (flock(m->fd, LOCK_SH | LOCK_NB) < 0)
		return errno == EWOULDBLOCK;
	flock(m->fd, LOCK_UN);
	return false;
}

static bool matches(const struct reg_hdr *h, const struct reg_addr *dst)
{
	bool v4 = dst->addr[10] == 0xff && dst->addr[11] == 0xff;

	if (h->bound.port != dst->port || h->netns != flp_netns)
		return false;
	if (addr_is_wild(&h->bound)) {
		/* an IPv4 wildcard is stored v4-mapped and does not take IPv6 */
		bool bound_v4 = h->bound.addr[10] == 0xff;
		if (bound_v4 && !v4)
			return false;
		if (!bound_v4 && v4 && h->v6only)
			return false;
		return addr_is_local(dst);
	}
	return !memcmp(h->bound.addr, dst->addr, 16);
}

/* Open and map one file found in the directory; NULL if it is not usable. */
static struct reg_map *open_file(const char *name)
{
	char path[512];
	struct reg_map *m;
	struct stat st;
	int fd, r;

	/* ours are short; a longer name is not one of ours (nor fits m->name) */
	if (strlen(name) >= sizeof(m->name))
		return NULL;
	snprintf(path, sizeof(path), "%s/%s", flp_cfg.dir, name);
	fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
	    (size_t)st.st_size != REG_FILE_SIZE) {
		FLP_DBG("ignoring %s: not a handshake file of ours", name);
		flp_real.close(fd);
		return NULL;
	}
	m = calloc(1, sizeof(*m));
	if (!m) {
		flp_real.close(fd);
		return NULL;
	}
	fd = flp_high_fd(fd);
	if (map_file(fd, m) < 0) {
		flp_real.close(fd);
		free(m);
		return NULL;
	}
	m->ino = st.st_ino;
	memcpy(m->name, name, strlen(name) + 1);
	r = reg_validate(m->hdr, st.st_size, geteuid());
	if (r < 0) {
		/* a corrupted file of a dead owner is swept; a live one ignored */
		FLP_DBG("ignoring %s: %s", name, strerror(-r));
		if (!file_alive(m))
			sweep(name, m->ino);
		unmap(m);
		return NULL;
	}
	return m;
}

/* The cache's entry at *pp has no owner any more: out of the cache, its
 * file swept, the cache's reference dropped. */
static void cache_drop(struct reg_map **pp)
{
	struct reg_map *m = *pp;

	*pp = m->next;
	sweep(m->name, m->ino);
	reg_put(m);
}

static struct reg_map *cache_find(const struct reg_addr *dst)
{
	struct reg_map **pp = &cache, *m;

	while ((m = *pp)) {
		if (!matches(m->hdr, dst)) {
			pp = &m->next;
			continue;
		}
		if (file_alive(m)) {
			reg_get(m);
			return m;
		}
		cache_drop(pp);
	}
	return NULL;
}

/*
 * The cached file for dst, referenced, without asking whether its owner
 * lives (that is a system call: reg_alive, outside flp_mu), or NULL.
 * Caller holds flp_mu.
 */
struct reg_map *reg_cached(const struct reg_addr *dst)
{
	for (struct reg_map *m = cache; m; m = m->next)
		if (matches(m->hdr, dst)) {
			reg_get(m);
			return m;
		}
	return NULL;
}

/* Does a live process own m (reg_cached's answer)?  No lock needed: the
 * caller's reference keeps it mapped and its fd open. */
bool reg_alive(struct reg_map *m)
{
	return file_alive(m);
}

/* m (reg_cached's answer) has no owner any more: out of the cache (unless
 * another thread took it out already), its file swept, the caller's
 * reference dropped.  Caller holds flp_mu. */
void reg_forget(struct reg_map *m)
{
	for (struct reg_map **pp = &cache; *pp; pp = &(*pp)->next)
		if (*pp == m) {
			cache_drop(pp);
			break;
		}
	reg_put(m);
}

static bool cache_has(const char *name)
{
	for (struct reg_map *m = cache; m; m = m->next)
		if (!strcmp(m->name, name))
			return true;
	return false;
}

/* The registry directory's stat, for reg_lookup (taken before the lock:
 * a system call under flp_mu makes every thread of the app wait). */
bool reg_dir_stat(struct stat *st)
{
	return reg_ok && stat(flp_cfg.dir, st) == 0;
}

/*
 * Find a live listener file for a destination; dir is the directory's
 * stat from reg_dir_stat (NULL: none).  Returns a referenced map
 * (reg_put when done) or NULL.  Caller holds flp_mu.
 */
struct reg_map *reg_lookup(const struct reg_addr *dst, const struct stat *dir)
{
	unsigned h = dst->port % NEG_SLOTS;
	char prefix[64];
	struct reg_map *m;
	struct dirent *de;
	size_t plen;
	DIR *d;

	if (!reg_ok)
		return NULL;
	if ((m = cache_find(dst)))
		return m;
	if (dir && neg[h].port == dst->port && neg[h].mtime.tv_sec == dir->st_mtim.tv_sec &&
	    neg[h].mtime.tv_nsec == dir->st_mtim.tv_nsec)
		return NULL;    /* the directory is as it was when we looked */
	plen = snprintf(prefix, sizeof(prefix), "l-%u-%llu-", dst->port,
			(unsigned long long)flp_netns);
	d = opendir(flp_cfg.dir);
	if (!d)
		return NULL;
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, prefix, plen) || cache_has(de->d_name))
			continue;
		if (!(m = open_file(de->d_name)))
			continue;
		m->next = cache;
		cache = m;
	}
	closedir(d);
	m = cache_find(dst);
	neg[h].port = 0;
	if (!m && dir) {
		struct timespec now;
		clock_gettime(CLOCK_REALTIME, &now);
		if ((now.tv_sec - dir->st_mtim.tv_sec) * 1000000000LL +
		    (now.tv_nsec - dir->st_mtim.tv_nsec) > NEG_AGE_NS) {
			neg[h].port = dst->port;
			neg[h].mtime = dir->st_mtim;
		}
	}
	return m;
}
