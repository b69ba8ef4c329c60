/*
 * check_reg.c — the registry: directory checks, publishing a handshake
 * file, validating a foreign header, looking up live listeners, and
 * ignoring or sweeping stale and corrupted files.
 *
 * Each test gets its own 0700 directory as the registry.  Forked children
 * play other processes (a listener that dies); they never call Check.
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
#include <sys/stat.h>

#include "suites.h"

#define NETNS 4026531977ull
#define PORT 41234

static char dir[256];

static void setup(void)
{
	tu_proc_reset();
	ck_assert_uint_ne(flp_start, 0);
	flp_netns = NETNS;
	tu_mkdtemp(dir, sizeof(dir));
	tu_use_registry(dir);
}

static void teardown(void)
{
	tu_rmtree(dir);
}

static void path_of(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", dir, name);
}

static bool exists(const char *name)
{
	char p[512];
	struct stat st;

	path_of(p, sizeof(p), name);
	return lstat(p, &st) == 0;
}

/* A client's lookup as conn.c makes it: the directory's stat first. */
static struct reg_map *lookup(const struct reg_addr *d)
{
	struct stat st;

	return reg_lookup(d, reg_dir_stat(&st) ? &st : NULL);
}

/* Set the registry directory's mtime to now - ago_s seconds. */
static void dir_mtime_ago(time_t ago_s)
{
	struct timespec t[2];

	clock_gettime(CLOCK_REALTIME, &t[0]);
	t[0].tv_sec -= ago_s;
	t[1] = t[0];
	ck_assert_int_eq(utimensat(AT_FDCWD, dir, t, 0), 0);
}

/* Entries of the registry directory (without . and ..); the first name in
 * first (if not NULL). */
static int count_entries(char *first, size_t len)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (!n && first)
			snprintf(first, len, "%s", de->d_name);
		n++;
	}
	closedir(d);
	return n;
}

/* A header as reg_publish writes it, for this user, netns and address. */
static void good_hdr(struct reg_hdr *h, const struct reg_addr *bound)
{
	memset(h, 0, sizeof(*h));
	h->version = REG_VERSION;
	h->hdr_size = sizeof(struct reg_hdr);
	h->slot_size = sizeof(struct reg_slot);
	h->nslots = REG_NSLOTS;
	h->owner_pid = 1;
	h->owner_uid = getuid();
	h->netns = flp_netns;
	h->bound = *bound;
	atomic_store(&h->magic, REG_MAGIC);
}

/* Write a file of size bytes in the registry: h (if any) then pattern
 * bytes.  Returns the open fd (the caller may flock it). */
static int craft(const char *name, const struct reg_hdr *h, size_t size,
		 unsigned char pattern)
{
	static unsigned char buf[REG_FILE_SIZE];
	char p[512];
	int fd;

	ck_assert_uint_le(size, sizeof(buf));
	memset(buf, pattern, sizeof(buf));
	if (h)
		memcpy(buf, h, sizeof(*h));
	path_of(p, sizeof(p), name);
	fd = open(p, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, buf, size), (ssize_t)size);
	return fd;
}

/* ------------------------------------------------------------- directory */

START_TEST(test_dir_check_ok)
{
	ck_assert_int_eq(reg_dir_check(dir, getuid()), 0);
	ck_assert(reg_enabled());
}
END_TEST

START_TEST(test_dir_check_not_dir)
{
	char sub[512], link[512], file[512], missing[512];
	int fd;

	path_of(sub, sizeof(sub), "sub");
	path_of(link, sizeof(link), "link");
	path_of(file, sizeof(file), "file");
	path_of(missing, sizeof(missing), "missing");
	ck_assert_int_eq(mkdir(sub, 0700), 0);
	ck_assert_int_eq(reg_dir_check(sub, getuid()), 0);
	/* a symlink to a good directory is still refused */
	ck_assert_int_eq(symlink(sub, link), 0);
	ck_assert_int_eq(reg_dir_check(link, getuid()), -ENOTDIR);
	fd = open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0700);
	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_int_eq(reg_dir_check(file, getuid()), -ENOTDIR);
	ck_assert_int_eq(reg_dir_check(missing, getuid()), -ENOENT);
}
END_TEST

START_TEST(test_dir_check_mode)
{
	static const mode_t bad[] = { 0755, 0750, 0710, 0701, 0702, 0720, 0777 };
	char sub[512];

	path_of(sub, sizeof(sub), "sub");
	ck_assert_int_eq(mkdir(sub, 0700), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_int_eq(chmod(sub, bad[i]), 0);
		ck_assert_msg(reg_dir_check(sub, getuid()) == -EPERM, "mode %o", bad[i]);
	}
	ck_assert_int_eq(chmod(sub, 0700), 0);
	ck_assert_int_eq(reg_dir_check(sub, getuid()), 0);
	/* the owner must be the uid asked about */
	ck_assert_int_eq(reg_dir_check(sub, getuid() + 1), -EPERM);
}
END_TEST

START_TEST(test_dir_check_foreign_owner)
{
	char sub[512];

	if (getuid() != 0) {
		fprintf(stderr, "reg: foreign-owner test skipped: needs root\n");
		return;
	}
	path_of(sub, sizeof(sub), "sub");
	ck_assert_int_eq(mkdir(sub, 0700), 0);
	ck_assert_int_eq(chown(sub, 65534, 65534), 0);
	ck_assert_int_eq(reg_dir_check(sub, getuid()), -EPERM);
	ck_assert_int_eq(reg_dir_check(sub, 65534), 0);
	/* reg_dir_init refuses it too */
	ck_assert_int_eq(cfg_set(&flp_cfg, "dir", sub), 0);
	ck_assert_int_eq(reg_dir_init(), -EPERM);
}
END_TEST

START_TEST(test_dir_init_creates)
{
	char sub[512], deep[512];
	struct stat st;
	mode_t old = umask(0);

	path_of(sub, sizeof(sub), "new");
	ck_assert_int_eq(cfg_set(&flp_cfg, "dir", sub), 0);
	ck_assert_int_eq(reg_dir_init(), 0);
	umask(old);
	ck_assert_int_eq(lstat(sub, &st), 0);
	ck_assert(S_ISDIR(st.st_mode));
	ck_assert_uint_eq(st.st_mode & 07777, 0700);
	ck_assert_uint_eq(st.st_uid, getuid());
	/* existing and good: fine again */
	ck_assert_int_eq(reg_dir_init(), 0);
	/* a parent that does not exist: the mkdir error */
	path_of(deep, sizeof(deep), "no/such/dir");
	ck_assert_int_eq(cfg_set(&flp_cfg, "dir", deep), 0);
	ck_assert_int_eq(reg_dir_init(), -ENOENT);
	/* a 0755 directory is refused */
	ck_assert_int_eq(chmod(sub, 0755), 0);
	ck_assert_int_eq(cfg_set(&flp_cfg, "dir", sub), 0);
	ck_assert_int_eq(reg_dir_init(), -EPERM);
}
END_TEST

/* -------------------------------------------------------------- publish */

START_TEST(test_publish)
{
	struct reg_addr b = tu_addr("127.0.0.1", PORT);
	char name[256], p[512], expect[96];
	struct reg_map *m = NULL;
	unsigned port, seq;
	unsigned long long ns;
	int pid, used = 0, fd;
	struct stat st;

	ck_assert_int_eq(reg_publish(&b, false, &m), 0);
	ck_assert_ptr_nonnull(m);
	ck_assert_int_eq(count_entries(name, sizeof(name)), 1);
	ck_assert_str_eq(name, m->name);
	ck_assert_int_eq(sscanf(name, "l-%u-%llu-%d-%u%n", &port, &ns, &pid, &seq,
				&used), 4);
	ck_assert_uint_eq(used, strlen(name));
	ck_assert_uint_eq(port, PORT);
	ck_assert_uint_eq(ns, NETNS);
	ck_assert_int_eq(pid, getpid());
	snprintf(expect, sizeof(expect), "l-%u-%llu-%d-%u", PORT, NETNS,
		 (int)getpid(), seq);
	ck_assert_str_eq(name, expect);

	path_of(p, sizeof(p), name);
	ck_assert_int_eq(lstat(p, &st), 0);
	ck_assert(S_ISREG(st.st_mode));
	ck_assert_uint_eq(st.st_mode & 07777, 0600);
	ck_assert_uint_eq(st.st_size, REG_FILE_SIZE);
	ck_assert_uint_eq(st.st_uid, getuid());
	ck_assert_uint_eq(m->ino, st.st_ino);
	ck_assert(m->owner);
	ck_assert_int_eq(m->refs, 1);
	ck_assert_int_ge(m->fd, fdt_max() / 2);

	ck_assert(atomic_load(&m->hdr->magic) == REG_MAGIC);
	ck_assert_uint_eq(m->hdr->version, REG_VERSION);
	ck_assert_uint_eq(m->hdr->hdr_size, 256);
	ck_assert_uint_eq(m->hdr->slot_size, 128);
	ck_assert_uint_eq(m->hdr->nslots, REG_NSLOTS);
	ck_assert_int_eq(m->hdr->owner_pid, getpid());
	ck_assert_uint_eq(m->hdr->owner_uid, getuid());
	ck_assert_uint_eq(m->hdr->owner_start, flp_start);
	ck_assert_uint_eq(m->hdr->netns, NETNS);
	ck_assert(addr_eq(&m->hdr->bound, &b));
	ck_assert_uint_eq(m->hdr->v6only, 0);
	ck_assert_ptr_eq(m->slots, (void *)((char *)m->hdr + 256));
	for (int i = 0; i < REG_NSLOTS; i++)
		ck_assert(atomic_load(&m->slots[i].sw) == 0);
	ck_assert_int_eq(reg_validate(m->hdr, REG_FILE_SIZE, getuid()), 0);

	/* the owner holds an exclusive lock: a shared one must fail */
	fd = open(p, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(flock(fd, LOCK_SH | LOCK_NB), -1);
	ck_assert_int_eq(errno, EWOULDBLOCK);
	close(fd);

	reg_unpublish(m);
	ck_assert(!exists(name));
	ck_assert_int_eq(count_entries(NULL, 0), 0);
}
END_TEST

START_TEST(test_publish_two_v6only)
{
	struct reg_addr b = tu_addr("::", PORT);
	struct reg_map *m1, *m2;
	char n1[96];

	ck_assert_int_eq(reg_publish(&b, true, &m1), 0);
	ck_assert_int_eq(reg_publish(&b, false, &m2), 0);
	ck_assert_str_ne(m1->name, m2->name);
	ck_assert_int_eq(count_entries(NULL, 0), 2);
	ck_assert_uint_eq(m1->hdr->v6only, 1);
	ck_assert_uint_eq(m2->hdr->v6only, 0);
	snprintf(n1, sizeof(n1), "%s", m1->name);
	reg_unpublish(m1);
	ck_assert(!exists(n1));
	ck_assert(exists(m2->name));
	ck_assert_int_eq(count_entries(NULL, 0), 1);
	reg_unpublish(m2);
	ck_assert_int_eq(count_entries(NULL, 0), 0);
}
END_TEST

START_TEST(test_publish_fails_without_dir)
{
	struct reg_addr b = tu_addr("127.0.0.1", PORT);
	char gone[512];
	struct reg_map *m = NULL;

	path_of(gone, sizeof(gone), "gone");
	ck_assert_int_eq(cfg_set(&flp_cfg, "dir", gone), 0);
	ck_assert_int_eq(reg_publish(&b, false, &m), -ENOENT);
	ck_assert_ptr_null(m);
}
END_TEST

/* ------------------------------------------------------------- validate */

START_TEST(test_validate)
{
	struct reg_addr b = tu_addr("127.0.0.1", PORT);
	struct reg_hdr h;

	good_hdr(&h, &b);
	ck_assert_int_eq(reg_validate(&h, REG_FILE_SIZE, getuid()), 0);
	ck_assert_int_eq(reg_validate(&h, REG_FILE_SIZE - 1, getuid()), -EBADMSG);
	ck_assert_int_eq(reg_validate(&h, REG_FILE_SIZE + 1, getuid()), -EBADMSG);
	ck_assert_int_eq(reg_validate(&h, sizeof(h), getuid()), -EBADMSG);
	ck_assert_int_eq(reg_validate(&h, 0, getuid()), -EBADMSG);
	ck_assert_int_eq(reg_validate(&h, REG_FILE_SIZE, getuid() + 1), -EACCES);

	atomic_store(&h.magic, REG_MAGIC ^ 1);
	ck_assert_int_eq(reg_validate(&h, REG_FILE_SIZE, getuid()), -EBADMSG);
	atomic_store(&h.magic, 0);
	ck_assert_int_eq(reg_validate(&h, REG_FILE_SIZE, getuid()), -EBADMSG);

	good_hdr(&h, &b);
	h.version = REG_VERSION + 1;
	ck_assert_int_eq(reg_validate(&h, REG_FILE_SIZE, getuid()), -EPROTO);
	h.version = 0;
	ck_assert_int_eq(reg_validate(&h, REG_FILE_SIZE, getuid()), -EPROTO);

	good_hdr(&h, &b);
	h.slot_size = 64;
	ck_assert_int_eq(reg_validate(&h, REG_FILE_SIZE, getuid()), -EBADMSG);
	good_hdr(&h, &b);
	h.hdr_size = 128;
	ck_assert_int_eq(reg_validate(&h, REG_FILE_SIZE, getuid()), -EBADMSG);
	good_hdr(&h, &b);
	h.nslots = REG_NSLOTS + 1;
	ck_assert_int_eq(reg_validate(&h, REG_FILE_SIZE, getuid()), -EBADMSG);

	good_hdr(&h, &b);
	h.owner_uid = getuid() + 1;
	ck_assert_int_eq(reg_validate(&h, REG_FILE_SIZE, getuid()), -EACCES);
	ck_assert_int_eq(reg_validate(&h, REG_FILE_SIZE, getuid() + 1), 0);
}
END_TEST

/* --------------------------------------------------------------- lookup */

START_TEST(test_lookup_exact)
{
	struct reg_addr b = tu_addr("127.0.0.1", PORT), d;
	struct reg_map *m, *f;

	ck_assert_int_eq(reg_publish(&b, false, &m), 0);
	f = lookup(&b);
	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_ne(f, m);             /* a mapping of its own */
	ck_assert_uint_eq(f->ino, m->ino);
	ck_assert_str_eq(f->name, m->name);
	ck_assert(!f->owner);
	ck_assert_int_eq(f->hdr->owner_pid, getpid());
	ck_assert(addr_eq(&f->hdr->bound, &b));
	/* the mapping is shared with the owner's */
	m->slots[3].client_pid = 4242;
	ck_assert_int_eq(f->slots[3].client_pid, 4242);
	m->slots[3].client_pid = 0;
	reg_put(f);

	/* the same address through an AF_INET6 v4-mapped sockaddr */
	d = tu_addr("::ffff:127.0.0.1", PORT);
	f = lookup(&d);
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(f->ino, m->ino);
	reg_put(f);

	d = tu_addr("127.0.0.1", PORT + 1);
	ck_assert_ptr_null(lookup(&d));
	d = tu_addr("127.0.0.1", PORT - 1);
	ck_assert_ptr_null(lookup(&d));
	/* bound to 127.0.0.1: neither another loopback address nor ::1 */
	d = tu_addr("127.0.0.2", PORT);
	ck_assert_ptr_null(lookup(&d));
	d = tu_addr("::1", PORT);
	ck_assert_ptr_null(lookup(&d));

	/* another network namespace does not see it */
	flp_netns = NETNS + 1;
	ck_assert_ptr_null(lookup(&b));
	flp_netns = NETNS;
	f = lookup(&b);
	ck_assert_ptr_nonnull(f);
	reg_put(f);

	reg_unpublish(m);
	ck_assert_int_eq(count_entries(NULL, 0), 0);
	/* the lookup side notices the listener is gone */
	ck_assert_ptr_null(lookup(&b));
}
END_TEST

/* A port without a listener is remembered with the directory's mtime: a
 * connect to it costs a stat while nothing was published or removed.  A
 * file that appears without the mtime moving (the same tick of the file
 * system's clock, made here by setting the mtime back) is not seen; once
 * the mtime moves, it is. */
START_TEST(test_lookup_negative_cache)
{
	struct reg_addr b = tu_addr("127.0.0.1", PORT);
	struct reg_map *m, *f;
	struct stat st;
	struct timespec old;

	dir_mtime_ago(10);
	ck_assert_ptr_null(lookup(&b));
	ck_assert_int_eq(stat(dir, &st), 0);
	old = st.st_mtim;
	ck_assert_int_eq(reg_publish(&b, false, &m), 0);
	{
		struct timespec t[2] = { old, old };
		ck_assert_int_eq(utimensat(AT_FDCWD, dir, t, 0), 0);
	}
	ck_assert_ptr_null(lookup(&b));         /* remembered: no scan */
	dir_mtime_ago(0);
	ck_assert_ptr_nonnull(f = lookup(&b));  /* the directory changed */
	ck_assert_uint_eq(f->ino, m->ino);
	reg_put(f);
	/* a recent mtime (a change may still share its tick) is not
	 * remembered: a port looked up in vain is looked up again */
	reg_unpublish(m);
	dir_mtime_ago(0);
	ck_assert_int_eq(stat(dir, &st), 0);
	old = st.st_mtim;
	b.port = PORT + 1;
	ck_assert_ptr_null(lookup(&b));
	ck_assert_int_eq(reg_publish(&b, false, &m), 0);
	{
		struct timespec t[2] = { old, old };
		ck_assert_int_eq(utimensat(AT_FDCWD, dir, t, 0), 0);
	}
	ck_assert_ptr_nonnull(f = lookup(&b));
	reg_put(f);
	reg_unpublish(m);
}
END_TEST

START_TEST(test_lookup_wild_v4)
{
	struct reg_addr b = tu_addr("0.0.0.0", PORT), d;
	struct reg_map *m, *f;

	ck_assert_int_eq(reg_publish(&b, false, &m), 0);
	d = tu_addr("127.0.0.1", PORT);
	ck_assert_ptr_nonnull(f = lookup(&d));
	ck_assert_uint_eq(f->ino, m->ino);
	reg_put(f);
	d = tu_addr("127.5.5.5", PORT);
	ck_assert_ptr_nonnull(f = lookup(&d));
	reg_put(f);
	/* an IPv4 wildcard does not take IPv6 */
	d = tu_addr("::1", PORT);
	ck_assert_ptr_null(lookup(&d));
	d = tu_addr("127.0.0.1", PORT + 1);
	ck_assert_ptr_null(lookup(&d));
	/* an address that is not on this host */
	if (!tu_is_assigned("198.18.0.1")) {
		d = tu_addr("198.18.0.1", PORT);
		ck_assert_ptr_null(lookup(&d));
	}
	reg_unpublish(m);
}
END_TEST

START_TEST(test_lookup_wild_v6)
{
	struct reg_addr dual = tu_addr("::", PORT), only = tu_addr("::", PORT + 1);
	struct reg_addr d;
	struct reg_map *m1, *m2, *f;

	ck_assert_int_eq(reg_publish(&dual, false, &m1), 0);
	ck_assert_int_eq(reg_publish(&only, true, &m2), 0);

	d = tu_addr("::1", PORT);
	ck_assert_ptr_nonnull(f = lookup(&d));
	ck_assert_uint_eq(f->ino, m1->ino);
	reg_put(f);
	d = tu_addr("127.0.0.1", PORT);      /* dual stack takes IPv4 */
	ck_assert_ptr_nonnull(f = lookup(&d));
	ck_assert_uint_eq(f->ino, m1->ino);
	reg_put(f);

	d = tu_addr("::1", PORT + 1);
	ck_assert_ptr_nonnull(f = lookup(&d));
	ck_assert_uint_eq(f->ino, m2->ino);
	reg_put(f);
	d = tu_addr("127.0.0.1", PORT + 1);  /* IPV6_V6ONLY: no IPv4 */
	ck_assert_ptr_null(lookup(&d));
	if (!tu_is_assigned("2001:db8::7")) {
		d = tu_addr("2001:db8::7", PORT);
		ck_assert_ptr_null(lookup(&d));
	}
	reg_unpublish(m1);
	reg_unpublish(m2);
}
END_TEST

/*
 * A child publishes and reports the file name, then either exits at once
 * (without unpublishing: its flock dies with it) or, given a pipe, waits
 * until the parent closes its write end.  Returns the child's pid.
 */
static pid_t child_publish(const struct reg_addr *b, char *name, size_t len,
			   const int *hold)
{
	int p[2];
	pid_t pid;
	ssize_t n;

	ck_assert_int_eq(pipe(p), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct reg_map *cm;
		char c;

		close(p[0]);
		if (hold)
			close(hold[1]);
		tu_proc_reset();
		if (reg_publish(b, false, &cm) < 0)
			_exit(1);
		if (write(p[1], cm->name, strlen(cm->name) + 1) < 0)
			_exit(2);
		if (hold && read(hold[0], &c, 1) < 0)
			_exit(3);
		_exit(0);
	}
	close(p[1]);
	n = read(p[0], name, len);
	close(p[0]);
	ck_assert_int_gt(n, 2);
	ck_assert_int_eq(name[n - 1], 0);
	return pid;
}

START_TEST(test_lookup_dead_owner_swept)
{
	struct reg_addr b = tu_addr("127.0.0.1", PORT);
	char name[96];
	pid_t pid = child_publish(&b, name, sizeof(name), NULL);

	ck_assert_int_eq(tu_reap(pid), 0);
	ck_assert(exists(name));
	ck_assert_ptr_null(lookup(&b));
	ck_assert(!exists(name));
	ck_assert_int_eq(count_entries(NULL, 0), 0);
}
END_TEST

START_TEST(test_lookup_owner_dies_after_lookup)
{
	struct reg_addr b = tu_addr("127.0.0.1", PORT);
	struct reg_map *f;
	char name[96];
	int hold[2];
	pid_t pid;

	ck_assert_int_eq(pipe(hold), 0);
	pid = child_publish(&b, name, sizeof(name), hold);
	close(hold[0]);
	/* alive: found, and the header names the child */
	f = lookup(&b);
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(f->hdr->owner_pid, pid);
	ck_assert_str_eq(f->name, name);
	reg_put(f);
	/* found again (from the cache) while it lives */
	ck_assert_ptr_nonnull(f = lookup(&b));
	reg_put(f);
	close(hold[1]);
	ck_assert_int_eq(tu_reap(pid), 0);
	ck_assert(exists(name));
	ck_assert_ptr_null(lookup(&b));
	ck_assert(!exists(name));
}
END_TEST

START_TEST(test_lookup_killed_owner)
{
	struct reg_addr b = tu_addr("127.0.0.1", PORT);
	struct reg_map *m, *f;
	char name[96];
	int hold[2];
	pid_t pid;

	ck_assert_int_eq(pipe(hold), 0);
	pid = child_publish(&b, name, sizeof(name), hold);
	close(hold[0]);
	ck_assert_int_eq(kill(pid, SIGKILL), 0);
	ck_assert_int_eq(tu_reap(pid), -1);
	close(hold[1]);
	/* a new listener on the same port replaces the stale one */
	ck_assert_int_eq(reg_publish(&b, false, &m), 0);
	ck_assert_ptr_nonnull(f = lookup(&b));
	ck_assert_uint_eq(f->ino, m->ino);
	ck_assert_int_eq(f->hdr->owner_pid, getpid());
	reg_put(f);
	/* once nobody listens, the stale file is swept at the latest */
	reg_unpublish(m);
	ck_assert_ptr_null(lookup(&b));
	ck_assert(!exists(name));
	ck_assert_int_eq(count_entries(NULL, 0), 0);
}
END_TEST

START_TEST(test_lookup_ignores_corrupt)
{
	struct reg_addr b = tu_addr("127.0.0.1", PORT);
	struct reg_hdr h;
	struct reg_map *m, *f;
	char garbage[96], trunc[96], badver[96], other[96];
	int fd, live;

	snprintf(garbage, sizeof(garbage), "l-%u-%llu-99991-0", PORT, NETNS);
	snprintf(trunc, sizeof(trunc), "l-%u-%llu-99992-0", PORT, NETNS);
	snprintf(badver, sizeof(badver), "l-%u-%llu-99993-0", PORT, NETNS);
	snprintf(other, sizeof(other), "l-%u-%llu-99994-0", PORT, NETNS);

	/* garbage of the right size, nobody holds it: ignored and swept */
	close(craft(garbage, NULL, REG_FILE_SIZE, 0xa5));
	/* truncated (a valid header, short file): ignored */
	good_hdr(&h, &b);
	close(craft(trunc, &h, sizeof(h) + 100, 0));
	/* wrong version, owner alive (lock held): ignored, not swept */
	good_hdr(&h, &b);
	h.version = 77;
	live = craft(badver, &h, REG_FILE_SIZE, 0);
	ck_assert_int_eq(flock(live, LOCK_EX | LOCK_NB), 0);
	/* another user's file (header says so): ignored */
	good_hdr(&h, &b);
	h.owner_uid = getuid() + 1;
	fd = craft(other, &h, REG_FILE_SIZE, 0);

	ck_assert_ptr_null(lookup(&b));
	ck_assert(!exists(garbage));
	ck_assert(exists(badver));

	/* a good file next to the bad ones is found */
	ck_assert_int_eq(reg_publish(&b, false, &m), 0);
	ck_assert_ptr_nonnull(f = lookup(&b));
	ck_assert_uint_eq(f->ino, m->ino);
	reg_put(f);
	reg_unpublish(m);
	close(live);
	close(fd);
}
END_TEST

START_TEST(test_lookup_ignores_symlink)
{
	struct reg_addr b = tu_addr("127.0.0.1", PORT);
	char lname[96], rname[96], target[512], lpath[512], rpath[512];
	struct reg_map *f;
	struct reg_hdr h;
	struct stat st;
	int fd;

	good_hdr(&h, &b);
	fd = craft("target", &h, REG_FILE_SIZE, 0);
	ck_assert_int_eq(flock(fd, LOCK_EX | LOCK_NB), 0);
	ck_assert_int_eq(fstat(fd, &st), 0);
	path_of(target, sizeof(target), "target");
	snprintf(lname, sizeof(lname), "l-%u-%llu-1-0", PORT, NETNS);
	path_of(lpath, sizeof(lpath), lname);
	ck_assert_int_eq(symlink(target, lpath), 0);
	ck_assert_ptr_null(lookup(&b));

	/* the same file under its own name is accepted: the symlink was the
	 * only reason */
	ck_assert_int_eq(unlink(lpath), 0);
	snprintf(rname, sizeof(rname), "l-%u-%llu-1-1", PORT, NETNS);
	path_of(rpath, sizeof(rpath), rname);
	ck_assert_int_eq(rename(target, rpath), 0);
	ck_assert_ptr_nonnull(f = lookup(&b));
	ck_assert_uint_eq(f->ino, st.st_ino);
	reg_put(f);
	close(fd);
}
END_TEST

START_TEST(test_lookup_ignores_foreign_file)
{
	struct reg_addr b = tu_addr("127.0.0.1", PORT);
	char name[96], p[512];
	struct reg_hdr h;
	int fd;

	if (getuid() != 0) {
		fprintf(stderr, "reg: foreign-file test skipped: needs root\n");
		return;
	}
	snprintf(name, sizeof(name), "l-%u-%llu-1-0", PORT, NETNS);
	good_hdr(&h, &b);
	fd = craft(name, &h, REG_FILE_SIZE, 0);
	ck_assert_int_eq(flock(fd, LOCK_EX | LOCK_NB), 0);
	path_of(p, sizeof(p), name);
	ck_assert_int_eq(chown(p, 65534, 65534), 0);
	ck_assert_ptr_null(lookup(&b));
	ck_assert(exists(name));
	close(fd);
}
END_TEST

START_TEST(test_unpublish)
{
	struct reg_addr b = tu_addr("127.0.0.1", PORT);
	struct reg_map *m, *f;
	char name[96];

	ck_assert_int_eq(reg_publish(&b, false, &m), 0);
	snprintf(name, sizeof(name), "%s", m->name);
	reg_unpublish(m);
	ck_assert(!exists(name));
	ck_assert_int_eq(count_entries(NULL, 0), 0);
	ck_assert_ptr_null(lookup(&b));

	/* another reference in this process (an accepted socket on trial or
	 * undecided) keeps the lock and so the file; it goes with that
	 * reference (it was left behind before: a leak) */
	ck_assert_int_eq(reg_publish(&b, false, &m), 0);
	snprintf(name, sizeof(name), "%s", m->name);
	reg_get(m);
	reg_unpublish(m);
	ck_assert_int_eq(m->refs, 1);
	ck_assert(exists(name));
	ck_assert_ptr_nonnull(f = lookup(&b));
	reg_put(f);
	reg_put(m);
	ck_assert(!exists(name));
	ck_assert_ptr_null(lookup(&b));
	ck_assert_int_eq(count_entries(NULL, 0), 0);
}
END_TEST

START_TEST(test_unpublish_by_inheritor_keeps_file)
{
	struct reg_addr b = tu_addr("127.0.0.1", PORT);
	struct reg_map *m, *f;
	pid_t pid;

	ck_assert_int_eq(reg_publish(&b, false, &m), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		/* a prefork child that inherited the listener closes it */
		tu_proc_reset();
		reg_unpublish(m);
		_exit(0);
	}
	ck_assert_int_eq(tu_reap(pid), 0);
	ck_assert(exists(m->name));
	/* and the owner is still alive for clients */
	ck_assert_ptr_nonnull(f = lookup(&b));
	reg_put(f);
	reg_unpublish(m);
	ck_assert_int_eq(count_entries(NULL, 0), 0);
}
END_TEST

/* ------------------------------------------------------------- liveness */

START_TEST(test_pid_alive)
{
	pid_t pid;

	ck_assert_uint_ne(flp_proc_start(getpid()), 0);
	ck_assert_uint_eq(flp_proc_start(getpid()), flp_start);
	ck_assert(flp_pid_alive(getpid(), flp_start));
	ck_assert(flp_pid_alive(getpid(), 0));
	ck_assert(!flp_pid_alive(getpid(), flp_start + 1));
	ck_assert(!flp_pid_alive(0, 0));
	ck_assert(!flp_pid_alive(-1, 0));
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(0);
	ck_assert_int_eq(tu_reap(pid), 0);
	ck_assert_uint_eq(flp_proc_start(pid), 0);
	ck_assert(!flp_pid_alive(pid, 0));
}
END_TEST

Suite *reg_suite(void)
{
	Suite *s = suite_create("reg");
	TCase *td = tcase_create("dir");
	TCase *tp = tcase_create("publish");
	TCase *tl = tcase_create("lookup");
	TCase *tf = tcase_create("liveness");

	tcase_add_checked_fixture(td, setup, teardown);
	tcase_add_test(td, test_dir_check_ok);
	tcase_add_test(td, test_dir_check_not_dir);
	tcase_add_test(td, test_dir_check_mode);
	tcase_add_test(td, test_dir_check_foreign_owner);
	tcase_add_test(td, test_dir_init_creates);
	suite_add_tcase(s, td);

	tcase_add_checked_fixture(tp, setup, teardown);
	tcase_add_test(tp, test_publish);
	tcase_add_test(tp, test_publish_two_v6only);
	tcase_add_test(tp, test_publish_fails_without_dir);
	tcase_add_test(tp, test_validate);
	tcase_add_test(tp, test_unpublish);
	suite_add_tcase(s, tp);

	tcase_add_checked_fixture(tl, setup, teardown);
	tcase_add_test(tl, test_lookup_exact);
	tcase_add_test(tl, test_lookup_negative_cache);
	tcase_add_test(tl, test_lookup_wild_v4);
	tcase_add_test(tl, test_lookup_wild_v6);
	tcase_add_test(tl, test_lookup_ignores_corrupt);
	tcase_add_test(tl, test_lookup_ignores_symlink);
	tcase_add_test(tl, test_lookup_ignores_foreign_file);
	suite_add_tcase(s, tl);

	/* these fork */
	tcase_add_checked_fixture(tf, setup, teardown);
	tcase_set_timeout(tf, 20);
	tcase_add_test(tf, test_lookup_dead_owner_swept);
	tcase_add_test(tf, test_lookup_owner_dies_after_lookup);
	tcase_add_test(tf, test_lookup_killed_owner);
	tcase_add_test(tf, test_unpublish_by_inheritor_keeps_file);
	tcase_add_test(tf, test_pid_alive);
	suite_add_tcase(s, tf);
	return s;
}
