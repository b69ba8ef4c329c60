/*
 * conns.c — many connections between two processes: what an open, idle
 * connection costs in CPU and in memory.
 *
 *   conns run [-n CONNS] [-b BYTES] [-i IDLE_S] [-f FDS] [-T TIMEOUT_S]
 *   conns limits -n CONNS [-f FDS]     exit 0 if the fds can be had, else 77
 *   conns server --status-fd FD -n CONNS -b BYTES [-f FDS] [-T SECS] (internal)
 *
 * "run" fork+execs itself as the server (same environment, so LD_PRELOAD
 * applies to two separate processes exactly as to any other program), then,
 * one connection at a time: connect, read the server's 16-byte hello (magic,
 * connection index), send BYTES of a stamped pattern, read back the server's
 * 64-bit hash of what it received and compare it with the hash of what was
 * sent.  The server speaks first so that a preloaded client switches on its
 * first read: the BYTES then go over the fast path, not over TCP.
 *
 * With all CONNS open, it measures memory against a snapshot taken before
 * the first connect: /proc/meminfo Shmem, MemAvailable and Slab deltas
 * (system-wide), the Rss/Pss/Pss_Shmem deltas of both processes
 * (/proc/PID/smaps_rollup), their open fds and their memfd mappings.  Then
 * both ends wait — the server in epoll_wait over all connections, the client
 * in poll over all of them — and a thread of the client measures the CPU
 * time both processes use over IDLE_S seconds inside that wait
 * (/proc/PID/stat utime+stime, and /proc/PID/task/{*}/schedstat in ns).  Finally the client closes everything
 * and the server, which must see an EOF on each connection, exits.
 *
 * Output: "metric NAME VALUE" lines on stdout, then "result ok".
 * Exit status: 0 ok; 1 a connection failed or a hash mismatched; 2 usage or
 * system error; 3 timeout; 77 skip (RLIMIT_NOFILE too low, says what is
 * needed).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "xfer.h"

#define HELLO_MAGIC 0x666c6f6f70636f6eULL /* "floopcon" */
#define CHUNK (64u << 10)
#define BLOCK 4096u
#define STAMP_K 0x9e3779b97f4a7c15ULL
#define HASH_P 0x100000001b3ULL
#define FDS_SPARE 64
#define MAX_CONNS 1000000L

struct opts {
	long n;
	uint64_t bytes;
	double idle_s;
	int timeout_s;
	int status_fd;
	int fds_per_conn; /* fds each end holds per connection (RLIMIT_NOFILE) */
};

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

/* Print a message to stderr and exit 2 (a harness or system error). */
static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "conns[%d]: ", (int)getpid());
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

/* A failed connection or a wrong byte: exit 1, the run failed. */
static void fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "conns[%d]: FAIL: ", (int)getpid());
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

/* SIGALRM: the run exceeded its bound; exit 3 (reported as a timeout). */
static void on_alarm(int sig)
{
	static const char msg[] = "conns: timeout: run exceeded its time bound\n";

	(void)sig;
	if (write(2, msg, sizeof(msg) - 1) < 0) {
		/* nothing more we can do */
	}
	_exit(3);
}

/* Monotonic seconds. */
static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Write all of buf; returns 0, or -errno. */
static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Read exactly len bytes; returns 0, -EPIPE on a premature EOF, or -errno. */
static int read_all(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len > 0) {
		ssize_t n = read(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EPIPE;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Chain a buffer of whole 64-bit words into h: position-dependent, so a
 * lost, duplicated or reordered word changes the result. */
static uint64_t hash_words(uint64_t h, const unsigned char *p, size_t len)
{
	for (size_t i = 0; i + 8 <= len; i += 8) {
		uint64_t w;

		memcpy(&w, p + i, 8);
		h ^= w;
		h = (h << 29 | h >> 35) * HASH_P;
	}
	return h;
}

/* Stamp each 4 KiB block of a chunk at stream offset off of connection
 * idx, so bytes of another connection or another offset hash differently. */
static void stamp_chunk(unsigned char *buf, size_t len, uint64_t nonce,
			long idx, uint64_t off)
{
	for (size_t b = 0; b + 8 <= len; b += BLOCK) {
		uint64_t s = ((off + b) / BLOCK + 1) * STAMP_K ^ nonce ^
			     ((uint64_t)idx << 40);

		memcpy(buf + b, &s, 8);
	}
}

/* ------------------------------------------------------------ /proc */

/* A "Key:   N kB" field of a /proc file, in bytes; -1 if absent. */
static long long proc_kb(const char *path, const char *key)
{
	char line[256];
	size_t kl = strlen(key);
	long long v = -1;
	FILE *f = fopen(path, "re");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
			v = strtoll(line + kl + 1, NULL, 10) * 1024;
			break;
		}
	}
	fclose(f);
	return v;
}

/* A field of /proc/PID/smaps_rollup, in bytes; -1 if absent. */
static long long smaps_kb(pid_t pid, const char *key)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
	return proc_kb(path, key);
}

/* utime+stime of a process (all its threads), in clock ticks; -1 on error. */
static long long proc_ticks(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long ut, st;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (!(f = fopen(path, "re")))
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* after "comm) " the fields are state(3) ... utime(14) stime(15) */
	if (!(p = strrchr(buf, ')')) ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
		   &ut, &st) != 2)
		return -1;
	return (long long)(ut + st);
}

/* CPU time of all threads of a process in ns (schedstat); -1 if missing. */
static long long proc_run_ns(pid_t pid)
{
	char path[320];
	long long sum = 0;
	struct dirent *d;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	if (!(dir = opendir(path)))
		return -1;
	while ((d = readdir(dir))) {
		unsigned long long ns;
		FILE *f;

		if (d->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%s/schedstat", (int)pid, d->d_name);
		if (!(f = fopen(path, "re")))
			continue;
		if (fscanf(f, "%llu", &ns) == 1)
			sum += (long long)ns;
		else
			sum = -1;
		fclose(f);
		if (sum < 0)
			break;
	}
	closedir(dir);
	return sum;
}

/* Open fds of a process; -1 on error. */
static long count_fds(pid_t pid)
{
	char path[64];
	struct dirent *d;
	long n = 0;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	if (!(dir = opendir(path)))
		return -1;
	while ((d = readdir(dir)))
		if (d->d_name[0] != '.')
			n++;
	closedir(dir);
	return n;
}

/* Mappings of memfd files in a process: their count and total size. */
static void memfd_maps(pid_t pid, long *count, long long *bytes)
{
	char path[64], line[512];
	FILE *f;

	*count = 0;
	*bytes = 0;
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	if (!(f = fopen(path, "re")))
		return;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long lo, hi;

		if (!strstr(line, "/memfd:") || sscanf(line, "%llx-%llx", &lo, &hi) != 2)
			continue;
		(*count)++;
		*bytes += (long long)(hi - lo);
	}
	fclose(f);
}

/* What memory looks like at one moment, system-wide and for both ends. */
struct mem_snap {
	long long shmem, avail, slab;
	long long rss, pss, pss_shmem; /* client + server; pss_shmem -1: absent */
};

/* Take a snapshot: /proc/meminfo, and both processes' smaps_rollup. */
static void mem_snap(struct mem_snap *m, pid_t srv)
{
	pid_t pids[2] = { getpid(), srv };

	m->shmem = proc_kb("/proc/meminfo", "Shmem");
	m->avail = proc_kb("/proc/meminfo", "MemAvailable");
	m->slab = proc_kb("/proc/meminfo", "Slab");
	m->rss = m->pss = m->pss_shmem = 0;
	for (int i = 0; i < 2; i++) {
		long long ps = smaps_kb(pids[i], "Pss_Shmem");

		m->rss += smaps_kb(pids[i], "Rss");
		m->pss += smaps_kb(pids[i], "Pss");
		if (ps < 0 || m->pss_shmem < 0)
			m->pss_shmem = -1;
		else
			m->pss_shmem += ps;
	}
}

/* ------------------------------------------------------------ limits */

/* Raise RLIMIT_NOFILE to what n connections need (each end holds n
 * sockets and, on fastloop's shm transport, n memfds: per = 2): to the
 * hard limit, or above it where the process may (CAP_SYS_RESOURCE).
 * Exits 77 if it cannot. */
static void raise_nofile(long n, int per)
{
	rlim_t need = (rlim_t)n * (rlim_t)per + FDS_SPARE;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		die("getrlimit: %s", strerror(errno));
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
		struct rlimit up = { need, need };

		if (setrlimit(RLIMIT_NOFILE, &up) < 0) {
			printf("skip: %ld connections need RLIMIT_NOFILE >= %llu "
			       "(%d per connection + %d); the hard limit is %llu and "
			       "this process may not raise it (limits.conf, systemd "
			       "LimitNOFILE=, or ulimit -Hn with CAP_SYS_RESOURCE)\n",
			       n, (unsigned long long)need, per, FDS_SPARE,
			       (unsigned long long)rl.rlim_max);
			exit(77);
		}
		return;
	}
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		die("setrlimit(RLIMIT_NOFILE, %llu): %s",
		    (unsigned long long)rl.rlim_max, strerror(errno));
}

/* ------------------------------------------------------------ server */

/* Serve one connection: hello, then receive and hash o->bytes, reply. */
static void serve_one(int fd, long idx, const struct opts *o, unsigned char *buf)
{
	uint64_t hello[2] = { HELLO_MAGIC, (uint64_t)idx }, h = 0, left = o->bytes;
	int rc;

	if ((rc = write_all(fd, hello, sizeof(hello))) < 0)
		fail("server: connection %ld: write hello: %s", idx, strerror(-rc));
	while (left > 0) {
		size_t len = left < CHUNK ? (size_t)left : CHUNK;

		if ((rc = read_all(fd, buf, len)) < 0)
			fail("server: connection %ld: read at %" PRIu64 " of %" PRIu64 ": %s",
			     idx, o->bytes - left, o->bytes,
			     rc == -EPIPE ? "early EOF" : strerror(-rc));
		h = hash_words(h, buf, len);
		left -= len;
	}
	if ((rc = write_all(fd, &h, sizeof(h))) < 0)
		fail("server: connection %ld: write hash: %s", idx, strerror(-rc));
}

/* Wait in epoll_wait until every connection has reached EOF.  A wakeup
 * with nothing to read is counted (idle connections should not wake). */
static long idle_until_eof(int ep, long n)
{
	struct epoll_event ev[256];
	long open = n, spurious = 0;

	while (open > 0) {
		int k = epoll_wait(ep, ev, 256, -1);

		if (k < 0) {
			if (errno == EINTR)
				continue;
			die("epoll_wait: %s", strerror(errno));
		}
		for (int i = 0; i < k; i++) {
			int fd = ev[i].data.fd;
			char c;
			ssize_t r = recv(fd, &c, 1, MSG_DONTWAIT);

			if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
				spurious++;
				continue;
			}
			if (r > 0)
				fail("server: fd %d: unexpected data while idle", fd);
			if (r < 0 && errno != ECONNRESET)
				fail("server: fd %d: recv while idle: %s", fd, strerror(errno));
			epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
			close(fd);
			open--;
		}
	}
	return spurious;
}

/*
 * The server: listen on an ephemeral loopback port and report it on the
 * status fd, serve o->n connections one at a time (each then goes into the
 * epoll set), report "idle", wait for every EOF, report "done SPURIOUS".
 * Returns 0; a failed connection exits 1.
 */
static int serve(const struct opts *o)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	unsigned char *buf = malloc(CHUNK);
	char line[64];
	long spurious;
	int lfd, ep;

	if (!buf)
		die("malloc");
	memset(buf, 0, CHUNK); /* touched before the client's first snapshot */
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(lfd, 128) < 0 || getsockname(lfd, (struct sockaddr *)&a, &al) < 0)
		die("listen: %s", strerror(errno));
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		die("epoll_create1: %s", strerror(errno));
	snprintf(line, sizeof(line), "port %d\n", ntohs(a.sin_port));
	if (write_all(o->status_fd, line, strlen(line)) < 0)
		die("write status: %s", strerror(errno));
	for (long i = 0; i < o->n; i++) {
		struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP };
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR) {
				i--;
				continue;
			}
			fail("server: accept of connection %ld: %s", i, strerror(errno));
		}
		serve_one(fd, i, o, buf);
		ev.data.fd = fd;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
			die("epoll_ctl: %s", strerror(errno));
	}
	close(lfd);
	free(buf);
	if (write_all(o->status_fd, "idle\n", 5) < 0)
		die("write status: %s", strerror(errno));
	spurious = idle_until_eof(ep, o->n);
	snprintf(line, sizeof(line), "done %ld\n", spurious);
	if (write_all(o->status_fd, line, strlen(line)) < 0)
		die("write status: %s", strerror(errno));
	close(ep);
	return 0;
}

/* ------------------------------------------------------------ client */

/* One line from the server's status pipe (bounded by the alarm). */
static void status_line(int fd, char *line, size_t size, pid_t srv)
{
	size_t k = 0;

	for (;;) {
		ssize_t r = read(fd, line + k, 1);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			int st = 0;

			waitpid(srv, &st, 0);
			fail("server ended without reporting (status %d)", st);
		}
		if (line[k] == '\n' || k + 2 >= size)
			break;
		k++;
	}
	line[k] = '\0';
}

/* Connect connection idx, take the hello, send the pattern, check the hash. */
static int open_one(int port, long idx, const struct opts *o,
		    unsigned char *pat, unsigned char *buf, uint64_t nonce)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	uint64_t hello[2], h = 0, got, off = 0;
	int fd, rc;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		fail("socket for connection %ld: %s", idx, strerror(errno));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		fail("connect of connection %ld: %s", idx, strerror(errno));
	if ((rc = read_all(fd, hello, sizeof(hello))) < 0)
		fail("connection %ld: read hello: %s", idx, rc == -EPIPE ? "EOF" : strerror(-rc));
	if (hello[0] != HELLO_MAGIC || hello[1] != (uint64_t)idx)
		fail("connection %ld: bad hello (%016" PRIx64 " %" PRIu64 ")", idx, hello[0], hello[1]);
	while (off < o->bytes) {
		size_t len = o->bytes - off < CHUNK ? (size_t)(o->bytes - off) : CHUNK;

		memcpy(buf, pat, len);
		stamp_chunk(buf, len, nonce, idx, off);
		h = hash_words(h, buf, len);
		if ((rc = write_all(fd, buf, len)) < 0)
			fail("connection %ld: write at %" PRIu64 ": %s", idx, off, strerror(-rc));
		off += len;
	}
	if ((rc = read_all(fd, &got, sizeof(got))) < 0)
		fail("connection %ld: read hash: %s", idx, rc == -EPIPE ? "EOF" : strerror(-rc));
	if (got != h)
		fail("connection %ld: checksum-mismatch (server %016" PRIx64 ", sent %016" PRIx64 ")",
		     idx, got, h);
	return fd;
}

/* fork+exec this program as the server, with its status pipe's write end
 * as --status-fd; returns its pid and the read end in *status_rd. */
static pid_t start_server(const struct opts *o, int *status_rd)
{
	int pfd[2];
	pid_t pid;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		die("pipe: %s", strerror(errno));
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		char fdarg[16], narg[24], barg[24], targ[16], farg[16];
		char *argv[] = { "conns", "server", "--status-fd", fdarg, "-n", narg,
				 "-b", barg, "-T", targ, "-f", farg, NULL };
		int wfd = dup(pfd[1]); /* without O_CLOEXEC: survives the exec */

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (wfd < 0)
			_exit(2);
		snprintf(fdarg, sizeof(fdarg), "%d", wfd);
		snprintf(narg, sizeof(narg), "%ld", o->n);
		snprintf(barg, sizeof(barg), "%" PRIu64, o->bytes);
		snprintf(targ, sizeof(targ), "%d", o->timeout_s + 5);
		snprintf(farg, sizeof(farg), "%d", o->fds_per_conn);
		execv("/proc/self/exe", argv);
		fprintf(stderr, "conns: exec server: %s\n", strerror(errno));
		_exit(2);
	}
	close(pfd[1]);
	*status_rd = pfd[0];
	return pid;
}

/* One "metric NAME VALUE" line on stdout. */
static void metric(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void metric(const char *name, const char *fmt, ...)
{
	va_list ap;

	printf("metric %s ", name);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

/* Per-connection share of a delta, or "" when a reading was missing. */
static void metric_per_conn(const char *name, long long before, long long after, long n)
{
	if (before < 0 || after < 0)
		return;
	metric(name, "%.0f", (double)(after - before) / (double)n);
}

/* What the measuring thread reads at both edges of the idle window. */
struct idle_meas {
	pid_t pids[2];          /* client (us), server */
	double settle_s, idle_s;
	long long t0[2], t1[2]; /* utime+stime, ticks */
	long long ns0[2], ns1[2]; /* schedstat run time, ns; -1: none */
	double w0, w1;
};

static void sleep_s(double s)
{
	struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* The measuring thread: after the settle time, read both processes' CPU,
 * wait out the window, read again.  The main thread sits in one poll() the
 * whole time, so the window holds only what waiting costs, not the entry
 * into the wait (a wait round's setup, once per wakeup, not per second). */
static void *measure(void *arg)
{
	struct idle_meas *im = arg;

	sleep_s(im->settle_s);
	for (int k = 0; k < 2; k++) {
		im->t0[k] = proc_ticks(im->pids[k]);
		im->ns0[k] = proc_run_ns(im->pids[k]);
	}
	im->w0 = now();
	sleep_s(im->idle_s);
	im->w1 = now();
	for (int k = 0; k < 2; k++) {
		im->t1[k] = proc_ticks(im->pids[k]);
		im->ns1[k] = proc_run_ns(im->pids[k]);
	}
	return NULL;
}

/* The idle window: poll over every connection while a thread measures
 * both processes' CPU time over idle_s seconds, 100 ms after the poll
 * began (both ends past their spin windows and asleep).  Any readiness is
 * counted (and the first one's connections printed to stderr). */
static void idle_window(int *fds, long n, double idle_s, pid_t srv)
{
	struct pollfd *p = calloc((size_t)n, sizeof(*p));
	struct idle_meas im = { .pids = { getpid(), srv }, .settle_s = 0.1, .idle_s = idle_s };
	long wakeups = 0, hz = sysconf(_SC_CLK_TCK);
	double end, w;
	pthread_t th;
	int e;

	if (!p)
		die("calloc");
	for (long i = 0; i < n; i++) {
		p[i].fd = fds[i];
		p[i].events = POLLIN;
	}
	end = now() + im.settle_s + idle_s + 0.1;   /* past the thread's last read */
	if ((e = pthread_create(&th, NULL, measure, &im)) != 0)
		die("pthread_create: %s", strerror(e));
	for (double t = now(); t < end; t = now()) {
		int ms = (int)((end - t) * 1000.0) + 1;
		int r = poll(p, (nfds_t)n, ms);

		if (r < 0 && errno != EINTR)
			die("poll: %s", strerror(errno));
		if (r > 0) {
			/* Nothing was sent: an idle connection must not be
			 * ready.  Counted, not fatal; the CPU it costs shows. */
			wakeups++;
			if (wakeups == 1)
				for (long i = 0; i < n; i++)
					if (p[i].revents)
						fprintf(stderr, "conns: connection %ld ready while idle (revents %#x)\n",
							i, (unsigned)p[i].revents);
		}
	}
	if ((e = pthread_join(th, NULL)) != 0)
		die("pthread_join: %s", strerror(e));
	free(p);
	w = im.w1 - im.w0;
	metric("idle_s", "%.3f", w);
	metric("idle_ticks_client", "%lld", im.t1[0] - im.t0[0]);
	metric("idle_ticks_server", "%lld", im.t1[1] - im.t0[1]);
	metric("idle_cpu_pct", "%.3f",
	       100.0 * (double)(im.t1[0] - im.t0[0] + im.t1[1] - im.t0[1]) / (double)hz / w);
	if (im.ns0[0] >= 0 && im.ns0[1] >= 0 && im.ns1[0] >= 0 && im.ns1[1] >= 0) {
		metric("idle_cpu_pct_ns", "%.4f",
		       100.0 * (double)(im.ns1[0] - im.ns0[0] + im.ns1[1] - im.ns0[1]) / 1e9 / w);
		metric("idle_run_us_client", "%.0f", (double)(im.ns1[0] - im.ns0[0]) / 1e3);
		metric("idle_run_us_server", "%.0f", (double)(im.ns1[1] - im.ns0[1]) / 1e3);
	}
	metric("idle_wakeups_client", "%ld", wakeups);
}

/*
 * The client and the measurement: start the server, snapshot memory, open
 * every connection, snapshot again once the server is idle, run the idle
 * window, close everything and wait for the server.  Returns 0; a failure
 * exits 1 (a wrong byte, a failed connection, a server that failed).
 */
static int run(const struct opts *o)
{
	unsigned char *pat = malloc(CHUNK), *buf = malloc(CHUNK);
	int *fds = calloc((size_t)o->n, sizeof(int));
	struct mem_snap m0, m1;
	long mcount, fds_c, fds_s;
	long long mbytes;
	uint64_t nonce;
	char line[64];
	int sfd, port = 0, st;
	double t0, t1, t2;
	pid_t srv;

	if (!pat || !buf || !fds)
		die("malloc");
	xfer_fill_pattern(pat, CHUNK);
	memset(buf, 0, CHUNK); /* touched now, not between the snapshots */
	nonce = (uint64_t)getpid() << 32 ^ (uint64_t)(now() * 1e6);
	srv = start_server(o, &sfd);
	status_line(sfd, line, sizeof(line), srv);
	if (sscanf(line, "port %d", &port) != 1 || port <= 0)
		fail("server said '%s', not its port", line);

	mem_snap(&m0, srv);
	t0 = now();
	for (long i = 0; i < o->n; i++)
		fds[i] = open_one(port, i, o, pat, buf, nonce);
	t1 = now();
	status_line(sfd, line, sizeof(line), srv);
	if (strcmp(line, "idle") != 0)
		fail("server said '%s', not idle", line);
	mem_snap(&m1, srv);
	fds_c = count_fds(getpid());
	fds_s = count_fds(srv);
	memfd_maps(srv, &mcount, &mbytes);

	metric("conns", "%ld", o->n);
	metric("bytes_per_conn", "%" PRIu64, o->bytes);
	metric("open_s", "%.3f", t1 - t0);
	metric("open_per_s", "%.1f", (double)o->n / (t1 - t0));
	metric_per_conn("shmem_per_conn", m0.shmem, m1.shmem, o->n);
	/* MemAvailable falls as memory is used: report what was taken. */
	metric_per_conn("memavail_per_conn", m1.avail, m0.avail, o->n);
	metric_per_conn("slab_per_conn", m0.slab, m1.slab, o->n);
	metric_per_conn("rss_per_conn", m0.rss, m1.rss, o->n);
	metric_per_conn("pss_per_conn", m0.pss, m1.pss, o->n);
	metric_per_conn("pss_shmem_per_conn", m0.pss_shmem, m1.pss_shmem, o->n);
	metric("fds_client", "%ld", fds_c);
	metric("fds_server", "%ld", fds_s);
	metric("memfd_maps_server", "%ld", mcount);
	metric("memfd_bytes_per_conn", "%.0f", (double)mbytes / (double)o->n);
	fflush(stdout);

	if (o->idle_s > 0)
		idle_window(fds, o->n, o->idle_s, srv);

	t2 = now();
	for (long i = 0; i < o->n; i++)
		close(fds[i]);
	status_line(sfd, line, sizeof(line), srv);
	if (strncmp(line, "done ", 5) != 0)
		fail("server said '%s', not done", line);
	metric("idle_wakeups_server", "%s", line + 5);
	while (waitpid(srv, &st, 0) < 0)
		if (errno != EINTR)
			die("waitpid: %s", strerror(errno));
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail("server exited with status %d", st);
	metric("close_s", "%.3f", now() - t2);
	printf("result ok\n");
	free(fds);
	free(pat);
	free(buf);
	return 0;
}

/* Print the usage and exit 2. */
static void usage(void)
{
	fprintf(stderr,
		"usage: conns run|limits [-n CONNS] [-b BYTES] [-i IDLE_S] [-f FDS] [-T TIMEOUT_S]\n"
		"  -n CONNS    connections held open at once (default 1000)\n"
		"  -b BYTES    bytes each moves client->server, a multiple of 8;\n"
		"              K/M suffixes (default 1M)\n"
		"  -i IDLE_S   idle window, seconds (default 0: memory only)\n"
		"  -f FDS      fds each end holds per connection, for the\n"
		"              RLIMIT_NOFILE check (default 2: fastloop shm)\n"
		"  -T SECS     bound for the whole run (default 300)\n");
	exit(2);
}

/* BYTES with an optional K or M suffix; 0 on a bad value. */
static uint64_t parse_bytes(const char *s)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return 0;
	if (*end == 'K' || *end == 'k')
		v <<= 10, end++;
	else if (*end == 'M' || *end == 'm')
		v <<= 20, end++;
	return *end == '\0' && v % 8 == 0 ? v : 0;
}

/* Parse, bound the process in time, get the fds, then run a role. */
int main(int argc, char **argv)
{
	struct opts o = { .n = 1000, .bytes = 1u << 20, .timeout_s = 300, .status_fd = -1,
			  .fds_per_conn = 2 };
	const char *mode;

	if (argc < 2)
		usage();
	mode = argv[1];
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!v)
			usage();
		if (strcmp(a, "-n") == 0)
			o.n = strtol(v, NULL, 10);
		else if (strcmp(a, "-b") == 0)
			o.bytes = parse_bytes(v);
		else if (strcmp(a, "-i") == 0)
			o.idle_s = strtod(v, NULL);
		else if (strcmp(a, "-T") == 0)
			o.timeout_s = atoi(v);
		else if (strcmp(a, "-f") == 0)
			o.fds_per_conn = atoi(v);
		else if (strcmp(a, "--status-fd") == 0)
			o.status_fd = atoi(v);
		else
			usage();
		i++;
	}
	if (o.n <= 0 || o.n > MAX_CONNS || o.bytes == 0 || o.idle_s < 0 ||
	    o.idle_s > 3600 || o.timeout_s <= 0 || o.fds_per_conn < 1 || o.fds_per_conn > 16)
		usage();
	signal(SIGPIPE, SIG_IGN);
	signal(SIGALRM, on_alarm);
	alarm((unsigned)o.timeout_s);
	raise_nofile(o.n, o.fds_per_conn);

	if (strcmp(mode, "server") == 0) {
		if (o.status_fd < 0)
			usage();
		return serve(&o);
	}
	if (strcmp(mode, "run") == 0)
		return run(&o);
	if (strcmp(mode, "limits") == 0)
		return 0;
	usage();
}
