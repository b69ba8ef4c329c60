/*
 * check_stat.c — the statistics a process publishes for `fastloop stat`
 * (stat.c) read back with the reader's own checks (stat_read.c): lazy
 * publication, counters, the connection table (full, reused), a fork
 * child taking its inherited entries over, stale files of dead processes,
 * corrupt files, listeners.
 *
 * Each test gets its own 0700 registry directory.  Forked children play
 * other processes; they never call Check and report through pipes.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "suites.h"
#include "stat.h"

#define NETNS 4026531977ull

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
	stat_at_exit();
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

/* Entries of the registry directory whose name starts with prefix; -1
 * if it cannot be read (no Check call: forked children use it too). */
static int count_prefix(const char *prefix)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)))
		n += !strncmp(de->d_name, prefix, strlen(prefix));
	closedir(d);
	return n;
}

/* The file name of process pid. */
static void name_of(char *buf, size_t len, pid_t pid)
{
	snprintf(buf, len, "p-%d-%llu", (int)pid,
		 (unsigned long long)flp_proc_start(pid));
}

/* Read pid's file; asserts it is there and valid. */
static void read_proc(pid_t pid, struct stat_proc *p)
{
	const char *why = NULL;
	char name[64];
	int r;

	name_of(name, sizeof(name), pid);
	r = stat_read_proc(dir, name, false, p, &why);
	ck_assert_msg(r == 1, "reading %s: %d (%s)", name, r, why ? why : "-");
	ck_assert_int_eq(p->hdr.pid, pid);
}

static struct sockaddr_in sin4(const char *ip, uint16_t port)
{
	struct sockaddr_in s = { .sin_family = AF_INET, .sin_port = htons(port) };

	ck_assert_int_eq(inet_pton(AF_INET, ip, &s.sin_addr), 1);
	return s;
}

static struct sockaddr_in6 sin6(const char *ip, uint16_t port)
{
	struct sockaddr_in6 s = { .sin6_family = AF_INET6, .sin6_port = htons(port) };

	ck_assert_int_eq(inet_pton(AF_INET6, ip, &s.sin6_addr), 1);
	return s;
}

/* A client entry 127.0.0.1:port -> 127.0.0.1:5201. */
static struct stat_conn *open_client(uint16_t port)
{
	struct sockaddr_in l = sin4("127.0.0.1", port), p = sin4("127.0.0.1", 5201);

	return stat_conn_open(false, (struct sockaddr *)&l, sizeof(l),
			      (struct sockaddr *)&p, sizeof(p), "uds");
}

/* ---------------------------------------------------------- publishing */

START_TEST(test_lazy_publish)
{
	char name[64], p[512], comm[32] = "";
	struct stat_proc sp;
	struct stat st;
	int fd;
	FILE *f;

	/* nothing until the first decision */
	stat_conn_close(NULL);
	stat_add_tx(NULL, 10);
	stat_add_rx(NULL, 10);
	ck_assert_int_eq(count_prefix(""), 2);  /* . and .. */
	stat_count("uds", NULL);
	ck_assert_int_eq(count_prefix("p-"), 1);
	ck_assert_int_eq(count_prefix("t"), 0); /* no temporary left */
	name_of(name, sizeof(name), getpid());
	ck_assert(exists(name));
	path_of(p, sizeof(p), name);
	ck_assert_int_eq(lstat(p, &st), 0);
	ck_assert(S_ISREG(st.st_mode));
	ck_assert_uint_eq(st.st_mode & 07777, 0600);
	ck_assert_uint_eq(st.st_size, STAT_FILE_SIZE);
	ck_assert_uint_eq(st.st_uid, geteuid());
	/* the owner holds an exclusive lock: a shared one must fail */
	fd = open(p, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(flock(fd, LOCK_SH | LOCK_NB), -1);
	ck_assert_int_eq(errno, EWOULDBLOCK);
	close(fd);

	read_proc(getpid(), &sp);
	ck_assert_uint_eq(sp.hdr.uid, geteuid());
	ck_assert_uint_eq(sp.hdr.start, flp_start);
	ck_assert_uint_eq(sp.hdr.netns, NETNS);
	ck_assert_uint_ne(sp.hdr.created, 0);
	f = fopen("/proc/self/comm", "r");
	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(fgets(comm, sizeof(comm), f));
	fclose(f);
	comm[strcspn(comm, "\n")] = 0;
	ck_assert_str_eq(sp.hdr.comm, comm);
	ck_assert_uint_eq(sp.hdr.tr[STAT_TR_UDS], 1);
	ck_assert_uint_eq(sp.hdr.tr[STAT_TR_TCP], 0);
	ck_assert_uint_eq(sp.nconns, 0);
	ck_assert_str_eq(sp.name, name);
	stat_proc_free(&sp);

	/* normal exit removes it */
	stat_at_exit();
	ck_assert(!exists(name));
	ck_assert_int_eq(count_prefix("p-"), 0);
}
END_TEST

START_TEST(test_counters)
{
	static const struct { const char *tr, *reason; } d[] = {
		{ "uds", NULL }, { "uds", NULL }, { "shm", NULL },
		{ "tcp", "no-listener" }, { "tcp", "peer-not-preloaded" },
		{ "tcp", "revoked" }, { "tcp", "revoked-peer-data" },
		{ "tcp", "uid-mismatch" }, { "tcp", "disabled" },
		{ "tcp", "unsupported" }, { "tcp", "server-declined" },
		{ "tcp", "short-lived" }, { "tcp", "error-switch" }, { "tcp", "error-adopt-ECONNREFUSED" },
		{ "tcp", "error-claim-table-full" }, { "tcp", "no-listener" },
		{ "tcp", "something-new" }, { "quic", NULL }, { NULL, NULL },
	};
	static const uint64_t want_r[STAT_NREASON] = {
		[STAT_R_NO_LISTENER] = 2, [STAT_R_PEER_NOT_PRELOADED] = 1,
		[STAT_R_REVOKED] = 1, [STAT_R_REVOKED_PEER_DATA] = 1,
		[STAT_R_UID_MISMATCH] = 1, [STAT_R_DISABLED] = 1,
		[STAT_R_UNSUPPORTED] = 1, [STAT_R_SERVER_DECLINED] = 1,
		[STAT_R_SHORT_LIVED] = 1, [STAT_R_ERROR] = 3, [STAT_R_OTHER] = 1,
	};
	struct stat_proc sp;

	for (size_t i = 0; i < sizeof(d) / sizeof(d[0]); i++)
		stat_count(d[i].tr, d[i].reason);
	read_proc(getpid(), &sp);
	ck_assert_uint_eq(sp.hdr.tr[STAT_TR_UDS], 2);
	ck_assert_uint_eq(sp.hdr.tr[STAT_TR_SHM], 1);
	ck_assert_uint_eq(sp.hdr.tr[STAT_TR_TCP], 14);
	ck_assert_uint_eq(sp.hdr.tr[STAT_TR_OTHER], 2);
	for (unsigned r = 0; r < STAT_NREASON; r++)
		ck_assert_msg(sp.hdr.reason[r] == want_r[r], "%s: %llu, want %llu",
			      stat_reason_name(r), (unsigned long long)sp.hdr.reason[r],
			      (unsigned long long)want_r[r]);
	ck_assert_uint_eq(sp.hdr.unlisted, 0);
	stat_proc_free(&sp);
	ck_assert_str_eq(stat_tr_name(STAT_NTR), "?");
	ck_assert_str_eq(stat_reason_name(STAT_NREASON), "?");
}
END_TEST

START_TEST(test_conn_entries)
{
	struct sockaddr_in6 sl = sin6("::ffff:127.0.0.1", 5201), sp6 = sin6("::ffff:127.0.0.1", 40000);
	struct stat_conn *c, *s, *c2;
	struct stat_proc p;
	char a[80];

	c = open_client(40000);
	ck_assert_ptr_nonnull(c);
	s = stat_conn_open(true, (struct sockaddr *)&sl, sizeof(sl),
			   (struct sockaddr *)&sp6, sizeof(sp6), "uds");
	ck_assert_ptr_nonnull(s);
	ck_assert_ptr_ne(c, s);
	stat_add_tx(c, 1000);
	stat_add_tx(c, 24);
	stat_add_tx(c, 0);
	stat_add_tx(c, -1);
	stat_add_rx(c, 7);
	stat_add_rx(s, 1024);
	stat_add_tx(s, 7);
	stat_add_rx(s, -11);

	read_proc(getpid(), &p);
	ck_assert_uint_eq(p.nconns, 2);
	ck_assert_uint_eq(p.hdr.used, 2);
	ck_assert_uint_eq(p.conns[0].server, 0);
	ck_assert_uint_eq(p.conns[0].transport, STAT_TR_UDS);
	ck_assert_uint_eq(p.conns[0].tx, 1024);
	ck_assert_uint_eq(p.conns[0].rx, 7);
	ck_assert_uint_ne(p.conns[0].since, 0);
	ck_assert_str_eq(stat_addr_str(&p.conns[0].local, a, sizeof(a)), "127.0.0.1:40000");
	ck_assert_str_eq(stat_addr_str(&p.conns[0].peer, a, sizeof(a)), "127.0.0.1:5201");
	ck_assert_uint_eq(p.conns[1].server, 1);
	ck_assert_uint_eq(p.conns[1].tx, 7);
	ck_assert_uint_eq(p.conns[1].rx, 1024);
	ck_assert_str_eq(stat_addr_str(&p.conns[1].local, a, sizeof(a)),
			 "[::ffff:127.0.0.1]:5201");
	ck_assert_str_eq(stat_addr_str(&p.conns[1].peer, a, sizeof(a)),
			 "[::ffff:127.0.0.1]:40000");
	/* the two views of one connection join, whatever the family */
	ck_assert(stat_addr_eq(&p.conns[0].local, &p.conns[1].peer));
	ck_assert(stat_addr_eq(&p.conns[0].peer, &p.conns[1].local));
	ck_assert(!stat_addr_eq(&p.conns[0].local, &p.conns[1].local));
	stat_proc_free(&p);

	/* close the client: only the server is listed; twice is harmless */
	stat_conn_close(c);
	stat_conn_close(c);
	read_proc(getpid(), &p);
	ck_assert_uint_eq(p.nconns, 1);
	ck_assert_uint_eq(p.conns[0].server, 1);
	ck_assert_uint_eq(p.conns[0].rx, 1024);
	stat_proc_free(&p);

	/* a new connection reuses the entry, counters from zero */
	c2 = open_client(40002);
	ck_assert_ptr_eq(c2, c);
	read_proc(getpid(), &p);
	ck_assert_uint_eq(p.nconns, 2);
	ck_assert_uint_eq(p.hdr.used, 2);
	ck_assert_uint_eq(p.conns[0].local.port, 40002);
	ck_assert_uint_eq(p.conns[0].tx, 0);
	ck_assert_uint_eq(p.conns[0].rx, 0);
	stat_proc_free(&p);

	stat_conn_close(c2);
	stat_conn_close(s);
	read_proc(getpid(), &p);
	ck_assert_uint_eq(p.nconns, 0);
	stat_proc_free(&p);
	/* the double close above did not free an entry twice */
	c = open_client(40004);
	c2 = open_client(40006);
	s = open_client(40008);
	ck_assert(c && c2 && s && c != c2 && c2 != s && c != s);
	read_proc(getpid(), &p);
	ck_assert_uint_eq(p.nconns, 3);
	ck_assert_uint_eq(p.hdr.used, 3);
	stat_proc_free(&p);
	stat_conn_close(c);
	stat_conn_close(c2);
	stat_conn_close(s);
	/* an address that is not IPv4/IPv6 is kept as unknown */
	{
		struct sockaddr_un_like { sa_family_t f; char path[20]; } u = { AF_UNIX, "x" };
		c = stat_conn_open(false, (struct sockaddr *)&u, sizeof(u), NULL, 0, "shm");
		ck_assert_ptr_nonnull(c);
		read_proc(getpid(), &p);
		ck_assert_uint_eq(p.nconns, 1);
		ck_assert_uint_eq(p.conns[0].local.family, 0);
		ck_assert_uint_eq(p.conns[0].transport, STAT_TR_SHM);
		ck_assert_str_eq(stat_addr_str(&p.conns[0].local, a, sizeof(a)), "?");
		stat_proc_free(&p);
		stat_conn_close(c);
	}
}
END_TEST

START_TEST(test_table_full)
{
	static struct stat_conn *c[STAT_NCONN];
	struct stat_conn *x;
	struct stat_proc p;

	for (int i = 0; i < STAT_NCONN; i++) {
		c[i] = open_client((uint16_t)(10000 + i));
		ck_assert_ptr_nonnull(c[i]);
		stat_add_tx(c[i], i + 1);
	}
	ck_assert_ptr_null(open_client(9998));
	ck_assert_ptr_null(open_client(9999));
	read_proc(getpid(), &p);
	ck_assert_uint_eq(p.nconns, STAT_NCONN);
	ck_assert_uint_eq(p.hdr.unlisted, 2);
	for (unsigned i = 0; i < p.nconns; i++) {
		ck_assert_uint_eq(p.conns[i].local.port, 10000 + i);
		ck_assert_uint_eq(p.conns[i].tx, i + 1);
	}
	stat_proc_free(&p);
	/* room again after a close */
	stat_conn_close(c[100]);
	x = open_client(9997);
	ck_assert_ptr_eq(x, c[100]);
	ck_assert_ptr_null(open_client(9996));
	read_proc(getpid(), &p);
	ck_assert_uint_eq(p.nconns, STAT_NCONN);
	ck_assert_uint_eq(p.hdr.unlisted, 3);
	ck_assert_uint_eq(p.conns[100].local.port, 9997);
	stat_proc_free(&p);
	for (int i = 0; i < STAT_NCONN; i++)
		stat_conn_close(c[i]);
	read_proc(getpid(), &p);
	ck_assert_uint_eq(p.nconns, 0);
	stat_proc_free(&p);
}
END_TEST

/* After stat_at_exit (other exit handlers still run): late counts and
 * closes are harmless and publish nothing; a late decision publishes a
 * fresh file. */
START_TEST(test_after_exit)
{
	struct stat_conn *c = open_client(40000);
	struct stat_proc p;

	ck_assert_ptr_nonnull(c);
	stat_at_exit();
	ck_assert_int_eq(count_prefix("p-"), 0);
	stat_add_tx(c, 5);
	stat_conn_close(c);
	ck_assert_int_eq(count_prefix("p-"), 0);
	stat_count("uds", NULL);
	ck_assert_int_eq(count_prefix("p-"), 1);
	read_proc(getpid(), &p);
	ck_assert_uint_eq(p.nconns, 0);
	ck_assert_uint_eq(p.hdr.tr[STAT_TR_UDS], 1);
	stat_proc_free(&p);
	stat_add_rx(c, 5);
}
END_TEST

/* A registry that fails after start-up: nothing published, no retry. */
START_TEST(test_publish_fails)
{
	char gone[512];

	path_of(gone, sizeof(gone), "gone");
	ck_assert_int_eq(cfg_set(&flp_cfg, "dir", gone), 0);
	stat_count("uds", NULL);
	ck_assert_ptr_null(open_client(40000));
	ck_assert_int_eq(mkdir(gone, 0700), 0);
	stat_count("uds", NULL);
	ck_assert_ptr_null(open_client(40000));
	ck_assert_int_eq(rmdir(gone), 0);
	ck_assert_int_eq(count_prefix("p-"), 0);
	ck_assert_int_eq(count_prefix("t"), 0);
}
END_TEST

/* Without a usable registry (reg_dir_init never succeeded) nothing is
 * published. */
START_TEST(test_disabled)
{
	tu_proc_reset();
	tu_mkdtemp(dir, sizeof(dir));
	if (reg_enabled()) {
		/* CK_FORK=no: an earlier test enabled it in this process */
		fprintf(stderr, "stat: disabled test skipped: registry already enabled\n");
		tu_rmtree(dir);
		return;
	}
	ck_assert_int_eq(cfg_set(&flp_cfg, "dir", dir), 0);
	stat_count("tcp", "disabled");
	ck_assert_ptr_null(open_client(40000));
	ck_assert_int_eq(count_prefix(""), 2);
	tu_rmtree(dir);
}
END_TEST

/* ---------------------------------------------------------------- fork */

static void child_say(int fd, char c)
{
	if (write(fd, &c, 1) != 1)
		_exit(90);
}

static void child_wait(int fd)
{
	char c;

	if (read(fd, &c, 1) != 1)
		_exit(91);
}

static char parent_wait(int fd)
{
	char c = 0;

	ck_assert_int_eq(read(fd, &c, 1), 1);
	return c;
}

/*
 * The child of a process with a live connection: with the fork handler
 * (tell) or without it (its next stat call notices), it takes the entry
 * over into a file of its own; counting and closing there leave the
 * parent's entry alone.
 */
static void fork_takeover(bool tell)
{
	struct stat_conn *c = open_client(40000);
	struct stat_proc p;
	int up[2], down[2];
	pid_t pid;

	ck_assert_ptr_nonnull(c);
	stat_add_tx(c, 100);
	stat_add_rx(c, 7);
	stat_count("uds", NULL);
	ck_assert_int_eq(pipe(up), 0);
	ck_assert_int_eq(pipe(down), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(up[0]);
		close(down[1]);
		tu_proc_reset();
		if (tell)
			stat_after_fork_child();
		else
			stat_count("tcp", "no-listener");
		stat_add_tx(c, 5);
		child_say(up[1], 'a');
		child_wait(down[0]);
		stat_conn_close(c);
		stat_count("tcp", "revoked");
		child_say(up[1], 'b');
		child_wait(down[0]);
		stat_at_exit();
		_exit(0);
	}
	close(up[1]);
	close(down[0]);
	ck_assert_int_eq(parent_wait(up[0]), 'a');
	/* the parent's entry did not see the child's bytes */
	read_proc(getpid(), &p);
	ck_assert_uint_eq(p.nconns, 1);
	ck_assert_uint_eq(p.conns[0].tx, 100);
	ck_assert_uint_eq(p.hdr.tr[STAT_TR_UDS], 1);
	stat_proc_free(&p);
	/* the child's file: the inherited entry with the bytes so far */
	read_proc(pid, &p);
	ck_assert_uint_eq(p.nconns, 1);
	ck_assert_uint_eq(p.conns[0].tx, 105);
	ck_assert_uint_eq(p.conns[0].rx, 7);
	ck_assert_uint_eq(p.conns[0].local.port, 40000);
	ck_assert_uint_eq(p.hdr.tr[STAT_TR_UDS], 0);    /* its own decisions */
	ck_assert_uint_eq(p.hdr.reason[STAT_R_NO_LISTENER], tell ? 0 : 1);
	stat_proc_free(&p);
	stat_add_tx(c, 1);

	ck_assert_int_eq(write(down[1], "x", 1), 1);
	ck_assert_int_eq(parent_wait(up[0]), 'b');
	read_proc(pid, &p);
	ck_assert_uint_eq(p.nconns, 0);
	ck_assert_uint_eq(p.hdr.reason[STAT_R_REVOKED], 1);
	stat_proc_free(&p);
	read_proc(getpid(), &p);
	ck_assert_uint_eq(p.nconns, 1);
	ck_assert_uint_eq(p.conns[0].tx, 101);
	ck_assert_uint_eq(p.hdr.reason[STAT_R_REVOKED], 0);
	stat_proc_free(&p);

	ck_assert_int_eq(write(down[1], "x", 1), 1);
	ck_assert_int_eq(tu_reap(pid), 0);
	ck_assert_int_eq(count_prefix("p-"), 1);        /* the child's is gone */
	stat_conn_close(c);
	read_proc(getpid(), &p);
	ck_assert_uint_eq(p.nconns, 0);
	stat_proc_free(&p);
	close(up[0]);
	close(down[1]);
}

START_TEST(test_fork_takeover)
{
	fork_takeover(true);
}
END_TEST

START_TEST(test_fork_takeover_lazy)
{
	fork_takeover(false);
}
END_TEST

/* A child that inherited no live entry publishes nothing until its own
 * first decision. */
START_TEST(test_fork_nothing_live)
{
	struct stat_conn *c = open_client(40000);
	int up[2];
	pid_t pid;

	ck_assert_ptr_nonnull(c);
	stat_conn_close(c);
	ck_assert_int_eq(pipe(up), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(up[0]);
		tu_proc_reset();
		stat_after_fork_child();
		child_say(up[1], count_prefix("p-") == 1 ? 'a' : 'x');
		stat_count("uds", NULL);
		child_say(up[1], count_prefix("p-") == 2 ? 'b' : 'y');
		_exit(0);
	}
	close(up[1]);
	ck_assert_int_eq(parent_wait(up[0]), 'a');
	ck_assert_int_eq(parent_wait(up[0]), 'b');
	ck_assert_int_eq(tu_reap(pid), 0);
	close(up[0]);
}
END_TEST

/* ------------------------------------------------------------ staleness */

START_TEST(test_stale_killed)
{
	struct stat_proc p;
	const char *why = NULL;
	char name[64];
	int up[2], hold[2];
	pid_t pid;

	ck_assert_int_eq(pipe(up), 0);
	ck_assert_int_eq(pipe(hold), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		char c;

		close(up[0]);
		close(hold[1]);
		tu_proc_reset();
		stat_count("uds", NULL);
		if (!open_client(40000))
			_exit(1);
		child_say(up[1], 'a');
		if (read(hold[0], &c, 1) < 0)
			_exit(2);
		_exit(0);
	}
	close(up[1]);
	close(hold[0]);
	ck_assert_int_eq(parent_wait(up[0]), 'a');
	read_proc(pid, &p);
	ck_assert_uint_eq(p.nconns, 1);
	stat_proc_free(&p);
	name_of(name, sizeof(name), pid);       /* before it is gone */
	ck_assert_int_eq(kill(pid, SIGKILL), 0);
	ck_assert_int_eq(tu_reap(pid), -1);
	close(hold[1]);
	close(up[0]);
	ck_assert(exists(name));
	/* stale: ignored, kept when not sweeping, removed when sweeping */
	ck_assert_int_eq(stat_read_proc(dir, name, false, &p, &why), 0);
	ck_assert(exists(name));
	ck_assert_int_eq(stat_read_proc(dir, name, true, &p, &why), 0);
	ck_assert(!exists(name));
	/* and a name that is gone meanwhile is no error */
	ck_assert_int_eq(stat_read_proc(dir, name, true, &p, &why), 0);
}
END_TEST

/* A child that publishes and waits until hold's write end closes, then
 * ends by _exit() (no exit handler), unless killed first.  Returns its
 * pid once its file exists. */
static pid_t child_publisher(int hold[2])
{
	int up[2];
	pid_t pid;

	ck_assert_int_eq(pipe(up), 0);
	ck_assert_int_eq(pipe(hold), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		char c;

		close(up[0]);
		close(hold[1]);
		tu_proc_reset();
		stat_count("uds", NULL);
		child_say(up[1], 'a');
		if (read(hold[0], &c, 1) < 0)
			_exit(2);
		_exit(0);
	}
	close(up[1]);
	close(hold[0]);
	ck_assert_int_eq(parent_wait(up[0]), 'a');
	close(up[0]);
	return pid;
}

/* The library's own first publication removes files of processes that
 * are gone, and nothing that is alive. */
START_TEST(test_publish_sweeps_stale)
{
	char dead[64], live[64], locked[64], tmp[64], p[512];
	int hd[2], hl[2], lfd, tfd;
	pid_t pd, pl;

	pd = child_publisher(hd);
	pl = child_publisher(hl);
	name_of(dead, sizeof(dead), pd);
	name_of(live, sizeof(live), pl);
	ck_assert_int_eq(kill(pd, SIGKILL), 0);
	ck_assert_int_eq(tu_reap(pd), -1);
	close(hd[1]);
	/* a dead pid's file still locked (as by a fork child that inherited
	 * it), and an unlocked temporary of a dead pid */
	snprintf(locked, sizeof(locked), "p-%d-1", (int)pd);
	snprintf(tmp, sizeof(tmp), "tp-%d-2", (int)pd);
	path_of(p, sizeof(p), locked);
	lfd = open(p, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	ck_assert_int_ge(lfd, 0);
	ck_assert_int_eq(flock(lfd, LOCK_EX | LOCK_NB), 0);
	path_of(p, sizeof(p), tmp);
	tfd = open(p, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	ck_assert_int_ge(tfd, 0);
	close(tfd);
	ck_assert(exists(dead) && exists(live) && exists(locked) && exists(tmp));

	stat_count("uds", NULL);
	ck_assert(!exists(dead));
	ck_assert(!exists(tmp));
	ck_assert(exists(live));
	ck_assert(exists(locked));
	ck_assert_int_eq(count_prefix("p-"), 3);        /* live, locked, ours */

	close(hl[1]);
	ck_assert_int_eq(tu_reap(pl), 0);               /* _exit: file left */
	ck_assert(exists(live));
	close(lfd);
}
END_TEST

/* ------------------------------------------------------------- corrupt */

static unsigned char img[STAT_FILE_SIZE];

/* A good image: this user, this pid, one live entry. */
static void good_image(void)
{
	struct stat_hdr *h = (struct stat_hdr *)img;
	struct stat_conn *c = (struct stat_conn *)(img + sizeof(*h));

	memset(img, 0, sizeof(img));
	h->version = STAT_VERSION;
	h->hdr_size = sizeof(struct stat_hdr);
	h->conn_size = sizeof(struct stat_conn);
	h->nconn = STAT_NCONN;
	h->ntr = STAT_NTR;
	h->nreason = STAT_NREASON;
	h->pid = getpid();
	h->uid = geteuid();
	snprintf(h->comm, sizeof(h->comm), "crafted");
	atomic_store(&h->used, 2);
	c[1].local.family = AF_INET;
	c[1].peer.family = AF_INET6;
	c[1].transport = STAT_TR_UDS;
	atomic_store(&c[1].tx, 5);
	atomic_store(&c[1].sw, claim_sw(1, STAT_LIVE));
	atomic_store(&h->magic, STAT_MAGIC);
}

static int parse_img(const char **why)
{
	static struct stat_conn out[STAT_NCONN];
	struct stat_hdr h;
	unsigned n = 99;

	*why = NULL;
	return stat_parse(img, sizeof(img), geteuid(), &h, out, STAT_NCONN, &n, why);
}

START_TEST(test_parse_rejects)
{
	struct stat_hdr *h = (struct stat_hdr *)img;
	struct stat_conn *c = (struct stat_conn *)(img + sizeof(*h));
	static struct stat_conn out[STAT_NCONN];
	const char *why;
	struct stat_hdr hc;
	unsigned n = 99;

	good_image();
	ck_assert_int_eq(stat_parse(img, sizeof(img), geteuid(), &hc, out, STAT_NCONN,
				    &n, &why), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(out[0].tx, 5);
	ck_assert_str_eq(hc.comm, "crafted");
	/* cap: fewer copied, no overflow */
	ck_assert_int_eq(stat_parse(img, sizeof(img), geteuid(), &hc, out, 0, &n, &why), 0);
	ck_assert_uint_eq(n, 0);

#define REJECT(err, text, ...) do {                                          \
		good_image();                                                \
		__VA_ARGS__;                                                 \
		ck_assert_int_eq(parse_img(&why), (err));                    \
		ck_assert_msg(why && strstr(why, (text)), "why: %s, want %s",\
			      why ? why : "(null)", (text));                 \
	} while (0)

	good_image();
	ck_assert_int_eq(stat_parse(img, sizeof(img) - 1, geteuid(), &hc, out,
				    STAT_NCONN, &n, &why), -EBADMSG);
	ck_assert_int_eq(stat_parse(img, 0, geteuid(), &hc, out, STAT_NCONN, &n, &why),
			 -EBADMSG);
	REJECT(-EBADMSG, "magic", atomic_store(&h->magic, STAT_MAGIC ^ 1));
	REJECT(-EBADMSG, "magic", atomic_store(&h->magic, 0));
	REJECT(-EPROTO, "version", h->version = STAT_VERSION + 1);
	REJECT(-EBADMSG, "layout", h->hdr_size = 256);
	REJECT(-EBADMSG, "layout", h->conn_size = 64);
	REJECT(-EBADMSG, "layout", h->nconn = 0xffffffff);
	REJECT(-EBADMSG, "layout", h->ntr = 200);
	REJECT(-EBADMSG, "layout", h->nreason = 0);
	REJECT(-EBADMSG, "pid", h->pid = 0);
	REJECT(-EBADMSG, "pid", h->pid = -5);
	REJECT(-EACCES, "uid", h->uid = geteuid() + 1);
	REJECT(-EBADMSG, "name", memset(h->comm, 'A', sizeof(h->comm)));
	REJECT(-EBADMSG, "count", atomic_store(&h->used, STAT_NCONN + 1));
	REJECT(-EBADMSG, "count", atomic_store(&h->used, 0xffffffffu));
	REJECT(-EBADMSG, "state", atomic_store(&c[1].sw, claim_sw(1, 7)));
	REJECT(-EBADMSG, "entry", c[1].transport = STAT_NTR);
	REJECT(-EBADMSG, "entry", c[1].server = 2);
	REJECT(-EBADMSG, "entry", c[1].local.family = 99);
	REJECT(-EBADMSG, "entry", c[1].peer.family = AF_UNIX);
	/* a garbage entry past used is not looked at */
	good_image();
	atomic_store(&c[2].sw, claim_sw(1, 9));
	c[2].transport = 250;
	ck_assert_int_eq(parse_img(&why), 0);
	/* all garbage */
	memset(img, 0xa5, sizeof(img));
	ck_assert_int_eq(parse_img(&why), -EBADMSG);
#undef REJECT
}
END_TEST

/* Write img (size bytes) as dir/name; returns the fd (flock it to make
 * the file look alive). */
static int craft(const char *name, size_t size)
{
	char p[512];
	int fd;

	path_of(p, sizeof(p), name);
	fd = open(p, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, img, size), (ssize_t)size);
	return fd;
}

START_TEST(test_read_corrupt_files)
{
	struct stat_hdr *h = (struct stat_hdr *)img;
	struct stat_proc p;
	const char *why;
	int fd[4];

	/* alive (locked) and corrupt: rejected with a reason, kept */
	good_image();
	fd[0] = craft("p-1-1", sizeof(img) / 2);
	good_image();
	atomic_store(&h->magic, 0x1234);
	fd[1] = craft("p-2-2", sizeof(img));
	good_image();
	atomic_store(&h->used, 1u << 30);
	fd[2] = craft("p-3-3", sizeof(img));
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(flock(fd[i], LOCK_EX | LOCK_NB), 0);
	why = NULL;
	ck_assert_int_eq(stat_read_proc(dir, "p-1-1", true, &p, &why), -EBADMSG);
	ck_assert_str_eq(why, "wrong size");
	ck_assert_int_eq(stat_read_proc(dir, "p-2-2", true, &p, &why), -EBADMSG);
	ck_assert_str_eq(why, "bad magic");
	ck_assert_int_eq(stat_read_proc(dir, "p-3-3", true, &p, &why), -EBADMSG);
	ck_assert_str_eq(why, "bad entry count");
	ck_assert(exists("p-1-1") && exists("p-2-2") && exists("p-3-3"));
	/* nobody holds them any more: stale, swept quietly */
	for (int i = 0; i < 3; i++)
		close(fd[i]);
	ck_assert_int_eq(stat_read_proc(dir, "p-1-1", true, &p, &why), 0);
	ck_assert_int_eq(stat_read_proc(dir, "p-2-2", true, &p, &why), 0);
	ck_assert(!exists("p-1-1") && !exists("p-2-2"));

	/* not a regular file; a symlink to a good file */
	{
		char pp[512], tp[512];

		path_of(pp, sizeof(pp), "p-4-4");
		ck_assert_int_eq(mkfifo(pp, 0600), 0);
		ck_assert_int_lt(stat_read_proc(dir, "p-4-4", true, &p, &why), 0);
		good_image();
		fd[3] = craft("good", sizeof(img));
		ck_assert_int_eq(flock(fd[3], LOCK_EX | LOCK_NB), 0);
		path_of(pp, sizeof(pp), "p-5-5");
		path_of(tp, sizeof(tp), "good");
		ck_assert_int_eq(symlink(tp, pp), 0);
		ck_assert_int_lt(stat_read_proc(dir, "p-5-5", true, &p, &why), 0);
		/* the same file under its own name is read */
		ck_assert_int_eq(stat_read_proc(dir, "good", true, &p, &why), 1);
		ck_assert_uint_eq(p.nconns, 1);
		ck_assert_str_eq(p.hdr.comm, "crafted");
		stat_proc_free(&p);
		close(fd[3]);
	}
}
END_TEST

/* ------------------------------------------------------------ listeners */

START_TEST(test_listener)
{
	struct reg_addr b = tu_addr("::", 41234);
	struct stat_listener l;
	struct reg_map *m;
	const char *why = NULL;
	char name[96], a[80];
	int fd;

	ck_assert_int_eq(reg_publish(&b, true, &m), 0);
	snprintf(name, sizeof(name), "%s", m->name);
	ck_assert_int_eq(stat_read_listener(dir, name, &l, &why), 1);
	ck_assert_int_eq(l.pid, getpid());
	ck_assert_uint_eq(l.uid, geteuid());
	ck_assert_uint_eq(l.start, flp_start);
	ck_assert_uint_eq(l.netns, NETNS);
	ck_assert(l.v6only);
	ck_assert_uint_eq(l.bound.port, 41234);
	ck_assert_str_eq(stat_reg_addr_str(&l.bound, a, sizeof(a)), "[::]:41234");
	b = tu_addr("127.0.0.1", 41235);
	ck_assert_str_eq(stat_reg_addr_str(&b, a, sizeof(a)), "127.0.0.1:41235");
	reg_unpublish(m);
	ck_assert_int_eq(stat_read_listener(dir, name, &l, &why), 0);

	/* a live but corrupt one is rejected; a stale one is left in place
	 * (the library sweeps handshake files) */
	{
		static unsigned char buf[REG_FILE_SIZE];
		char p[512];

		memset(buf, 0x5a, sizeof(buf));
		path_of(p, sizeof(p), "l-1-1-1-1");
		fd = open(p, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(write(fd, buf, sizeof(buf)), (ssize_t)sizeof(buf));
		ck_assert_int_eq(flock(fd, LOCK_EX | LOCK_NB), 0);
		ck_assert_int_eq(stat_read_listener(dir, "l-1-1-1-1", &l, &why), -EBADMSG);
		ck_assert_str_eq(why, "bad magic");
		close(fd);
		ck_assert_int_eq(stat_read_listener(dir, "l-1-1-1-1", &l, &why), 0);
		ck_assert(exists("l-1-1-1-1"));
	}
}
END_TEST

Suite *stat_suite(void)
{
	Suite *s = suite_create("stat");
	TCase *tp = tcase_create("publish");
	TCase *tf = tcase_create("fork");
	TCase *tr = tcase_create("read");
	TCase *td = tcase_create("disabled");

	tcase_add_checked_fixture(tp, setup, teardown);
	tcase_add_test(tp, test_lazy_publish);
	tcase_add_test(tp, test_counters);
	tcase_add_test(tp, test_conn_entries);
	tcase_add_test(tp, test_table_full);
	tcase_add_test(tp, test_after_exit);
	tcase_add_test(tp, test_publish_fails);
	suite_add_tcase(s, tp);

	tcase_add_checked_fixture(tf, setup, teardown);
	tcase_set_timeout(tf, 20);
	tcase_add_test(tf, test_fork_takeover);
	tcase_add_test(tf, test_fork_takeover_lazy);
	tcase_add_test(tf, test_fork_nothing_live);
	tcase_add_test(tf, test_stale_killed);
	tcase_add_test(tf, test_publish_sweeps_stale);
	suite_add_tcase(s, tf);

	tcase_add_checked_fixture(tr, setup, teardown);
	tcase_add_test(tr, test_parse_rejects);
	tcase_add_test(tr, test_read_corrupt_files);
	tcase_add_test(tr, test_listener);
	suite_add_tcase(s, tr);

	tcase_add_test(td, test_disabled);
	suite_add_tcase(s, td);
	return s;
}
