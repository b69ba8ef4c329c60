/*
 * matrix.c — the DESIGN.md test matrix as one program of many cases.
 *
 *   matrix CASE            driver: spawn server and client, bounded in time
 *   matrix CASE server FD  (internal) listen, write the port to FD, serve
 *   matrix CASE client P   (internal) connect to port P and run the case
 *   matrix CASE solo       (internal) cases living in one process
 *
 * Environment: FLP_LIB (the library), FLP_SETUP = both | plain-server |
 * plain-client | none (which roles run preloaded).  With "both" and
 * FASTLOOP_TRANSPORT=uds, every connection must be on the UDS path; in the
 * other setups every connection must stay TCP.  Each role checks the
 * kernel object behind its own fds with a raw syscall, and every byte by
 * pattern.  Exit 0 pass, 1 fail, 77 skip.
 */
#include <dirent.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <linux/sockios.h>

#include "tlib.h"

typedef void (*server_fn)(int lfd);
typedef void (*client_fn)(int port);
typedef void (*solo_fn)(void);

/* ------------------------------------------------------------- echo */

/* Length-prefixed echo of random sizes, 1 B .. 64 MiB. */
static void echo_server(int lfd)
{
	int fd = accept(lfd, NULL, NULL);
	static uint8_t buf[1 << 16];

	CHECK(fd >= 0, "accept");
	t_expect(fd);
	for (;;) {
		uint64_t n, left;
		ssize_t r = read(fd, &n, sizeof(n));
		if (r == 0)
			break;
		CHECK(r == sizeof(n), "header read %zd", r);
		t_write_all(fd, &n, sizeof(n));
		for (left = n; left;) {
			size_t c = left < sizeof(buf) ? (size_t)left : sizeof(buf);
			r = read(fd, buf, c);
			CHECK(r > 0, "echo read");
			t_write_all(fd, buf, (size_t)r);
			left -= (uint64_t)r;
		}
	}
	close(fd);
}

struct echo_job { int fd; uint64_t n, seed; };

static void *echo_sender(void *a)
{
	struct echo_job *j = a;
	t_send_stream(j->fd, j->seed, j->n);
	return NULL;
}

static void echo_client(int port)
{
	static const uint64_t sizes[] = { 1, 7, 100, 1460, 4096, 65535, 65536,
		65537, 262144, 1 << 20, (1 << 20) + 3, 16 << 20, 64 << 20 };
	int fd = t_connect(port);

	for (unsigned i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct echo_job j = { fd, sizes[i], 1000 + i };
		uint64_t back;
		pthread_t th;

		t_write_all(fd, &j.n, sizeof(j.n));
		/* a sender thread: echo of a big message needs both ways at once */
		CHECK(pthread_create(&th, NULL, echo_sender, &j) == 0, "thread");
		t_read_all(fd, &back, sizeof(back));
		CHECK(back == j.n, "echo header %llu != %llu",
		      (unsigned long long)back, (unsigned long long)j.n);
		t_recv_stream(fd, j.seed, j.n);
		pthread_join(th, NULL);
	}
	t_expect(fd);
	close(fd);
}

/* ----------------------------------------------------------- stream */

static void stream_server(int lfd)
{
	int fd = accept(lfd, NULL, NULL);

	CHECK(fd >= 0, "accept");
	t_recv_stream(fd, 42, 1ull << 30);
	t_expect(fd);
	t_write_all(fd, "k", 1);
	close(fd);
}

static void stream_client(int port)
{
	int fd = t_connect(port);
	char c;

	t_send_stream(fd, 42, 1ull << 30);
	t_read_all(fd, &c, 1);
	CHECK(c == 'k', "ack");
	t_expect(fd);
	close(fd);
}

/* --------------------------------------------- both write large at once */

static void both_side(int fd, uint64_t out_seed, uint64_t in_seed)
{
	struct echo_job j = { fd, 32 << 20, out_seed };
	pthread_t th;

	CHECK(pthread_create(&th, NULL, echo_sender, &j) == 0, "thread");
	/* read only after a pause: both sides' buffers fill up first */
	usleep(100000);
	t_recv_stream(fd, in_seed, 32 << 20);
	pthread_join(th, NULL);
	t_expect(fd);
}

static void both_server(int lfd)
{
	int fd = accept(lfd, NULL, NULL);
	CHECK(fd >= 0, "accept");
	both_side(fd, 2, 1);
	close(fd);
}

static void both_client(int port)
{
	int fd = t_connect(port);
	both_side(fd, 1, 2);
	close(fd);
}

/* ------------------------------------------------------ flags and ioctl */

static void flags_server(int lfd)
{
	int fd = accept(lfd, NULL, NULL);
	uint8_t buf[256];

	CHECK(fd >= 0, "accept");
	t_fill(buf, sizeof(buf), 7, 0);
	t_write_all(fd, buf, 100);
	usleep(50000);
	t_write_all(fd, buf + 100, 156);
	t_read_all(fd, buf, 1);   /* wait for the client to finish */
	t_expect(fd);
	close(fd);
}

static void flags_client(int port)
{
	int fd = t_connect(port), n = 0;
	uint8_t a[256], b[256];
	struct iovec iov[3];
	struct msghdr m;
	ssize_t r;

	/* nothing yet: MSG_DONTWAIT says EAGAIN (the server waits 0 s before
	 * the first 100 bytes, so poll first to make the state exact) */
	struct pollfd p = { .fd = fd, .events = POLLIN };
	CHECK(poll(&p, 1, 5000) == 1, "poll for first bytes");
	usleep(20000);
	CHECK(ioctl(fd, FIONREAD, &n) == 0 && n == 100, "FIONREAD %d != 100", n);
	r = recv(fd, a, 10, MSG_PEEK);
	CHECK(r == 10, "peek %zd", r);
	t_verify(a, 10, 7, 0);
	r = recv(fd, a, 10, MSG_PEEK);
	CHECK(r == 10, "peek twice");
	t_verify(a, 10, 7, 0);
	r = recv(fd, a, 100, MSG_DONTWAIT);
	CHECK(r == 100, "dontwait read %zd", r);
	t_verify(a, 100, 7, 0);
	CHECK_ERRNO(recv(fd, a, 10, MSG_DONTWAIT), EAGAIN);
	/* MSG_WAITALL: 156 bytes arrive 50 ms later; one call returns them all */
	memset(&m, 0, sizeof(m));
	iov[0] = (struct iovec){ b, 6 };
	iov[1] = (struct iovec){ b + 6, 50 };
	iov[2] = (struct iovec){ b + 56, 100 };
	m.msg_iov = iov;
	m.msg_iovlen = 3;
	r = recvmsg(fd, &m, MSG_WAITALL);
	CHECK(r == 156, "waitall recvmsg %zd", r);
	t_verify(b, 156, 7, 100);
	/* writev / sendmsg */
	t_fill(a, 3, 8, 0);
	iov[0] = (struct iovec){ a, 1 };
	iov[1] = (struct iovec){ a + 1, 2 };
	CHECK(writev(fd, iov, 2) == 3, "writev");
	t_expect(fd);
	close(fd);
}

/* ------------------------------------------------------------ sendfile */

static void sendfile_server(int lfd)
{
	char path[] = "/tmp/flp-sendfile-XXXXXX";
	int fd = accept(lfd, NULL, NULL), f = mkstemp(path);
	static uint8_t buf[1 << 20];
	off_t off = 0;

	CHECK(fd >= 0 && f >= 0, "accept/mkstemp");
	unlink(path);
	for (int i = 0; i < 10; i++) {
		t_fill(buf, sizeof(buf), 9, (uint64_t)i << 20);
		t_write_all(f, buf, sizeof(buf));
	}
	while (off < (10 << 20)) {
		ssize_t r = sendfile(fd, f, &off, (size_t)((10 << 20) - off));
		CHECK(r > 0, "sendfile");
	}
	t_expect(fd);
	close(f);
	close(fd);
}

static void sendfile_client(int port)
{
	int fd = t_connect(port);
	char c;

	t_recv_stream(fd, 9, 10 << 20);
	CHECK(read(fd, &c, 1) == 0, "EOF after file");
	t_expect(fd);
	close(fd);
}

/* --------------------------------------------------- readiness (poll...) */

/* Answer each 1-byte request c with 1000 bytes of stream c, n times, then
 * expect EOF. */
/* n rounds of: one byte in, 1000 patterned bytes (seeded by it) out. */
static void serve_rr_fd_open(int fd, int n)
{
	uint8_t buf[1000];
	char c;

	for (int i = 0; i < n; i++) {
		t_read_all(fd, &c, 1);
		t_fill(buf, sizeof(buf), (uint64_t)c, 0);
		t_write_all(fd, buf, sizeof(buf));
	}
}

static void serve_rr_fd(int fd, int n)
{
	char c;

	serve_rr_fd_open(fd, n);
	CHECK(read(fd, &c, 1) == 0, "EOF");
}

/* The server answers each 1-byte request with 1000 bytes, 200 times. */
static void rr_server(int lfd)
{
	int fd = accept(lfd, NULL, NULL);

	CHECK(fd >= 0, "accept");
	serve_rr_fd(fd, 200);
	t_expect(fd);
	close(fd);
}

/* The same, 50 times. */
static void rr_server50(int lfd)
{
	int fd = accept(lfd, NULL, NULL);

	CHECK(fd >= 0, "accept");
	serve_rr_fd(fd, 50);
	t_expect(fd);
	close(fd);
}

enum wmode { W_POLL, W_SELECT, W_EPOLL_LT, W_EPOLL_ET, W_EPOLL_ONESHOT };

/* Wait for readability on a non-blocking fd in the given style. */
static void wait_readable(int fd, int ep, enum wmode m)
{
	if (m == W_POLL) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		CHECK(poll(&p, 1, 10000) == 1 && (p.revents & POLLIN), "poll");
	} else if (m == W_SELECT) {
		fd_set r;
		struct timeval tv = { 10, 0 };
		FD_ZERO(&r);
		FD_SET(fd, &r);
		CHECK(select(fd + 1, &r, NULL, NULL, &tv) == 1 && FD_ISSET(fd, &r), "select");
	} else {
		struct epoll_event ev;
		int n = epoll_wait(ep, &ev, 1, 10000);
		CHECK(n == 1 && (ev.events & EPOLLIN) && ev.data.u64 == 0xfeed, "epoll_wait %d", n);
		if (m == W_EPOLL_ONESHOT) {
			ev.events = EPOLLIN | EPOLLONESHOT;
			ev.data.u64 = 0xfeed;
			CHECK(epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev) == 0, "rearm");
		}
	}
}

static void rr_client_mode(int port, enum wmode m)
{
	int fd = t_connect_flags("127.0.0.1", port, SOCK_NONBLOCK), ep = -1;
	uint8_t buf[1000];

	if (m >= W_EPOLL_LT) {
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 0xfeed };
		if (m == W_EPOLL_ET) ev.events |= EPOLLET;
		if (m == W_EPOLL_ONESHOT) ev.events |= EPOLLONESHOT;
		ep = epoll_create1(EPOLL_CLOEXEC);
		/* registered while the connection may still be pending */
		CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0, "epoll_ctl");
	}
	/* non-blocking connect on loopback: wait for writability */
	struct pollfd p = { .fd = fd, .events = POLLOUT };
	CHECK(poll(&p, 1, 5000) == 1, "connect completion");
	for (int i = 0; i < 200; i++) {
		char c = (char)(i & 0x7f);
		size_t got = 0;
		ssize_t r;

		CHECK(write(fd, &c, 1) == 1, "request");
		while (got < sizeof(buf)) {
			r = read(fd, buf + got, sizeof(buf) - got);
			if (r < 0 && errno == EAGAIN) {
				wait_readable(fd, ep, m);
				continue;
			}
			CHECK(r > 0, "read %zd", r);
			got += (size_t)r;
		}
		t_verify(buf, sizeof(buf), (uint64_t)c, 0);
	}
	t_expect(fd);
	if (ep >= 0)
		close(ep);
	close(fd);
}

static void poll_client(int port) { rr_client_mode(port, W_POLL); }
static void select_client(int port) { rr_client_mode(port, W_SELECT); }
static void epoll_lt_client(int port) { rr_client_mode(port, W_EPOLL_LT); }
static void epoll_et_client(int port) { rr_client_mode(port, W_EPOLL_ET); }
static void epoll_oneshot_client(int port) { rr_client_mode(port, W_EPOLL_ONESHOT); }

/* One fd in two epoll sets; epoll_ctl from another thread during a wait. */
struct ctl_arg { int ep, fd; };

static void *late_ctl(void *a)
{
	struct ctl_arg *c = a;
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 0xbeef };

	usleep(50000);
	CHECK(epoll_ctl(c->ep, EPOLL_CTL_ADD, c->fd, &ev) == 0, "late epoll_ctl");
	return NULL;
}

static void epoll2_client(int port)
{
	int fd = t_connect(port), ep1 = epoll_create1(0), ep2 = epoll_create1(0);
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 0xbeef };
	struct ctl_arg ca = { ep2, fd };
	uint8_t buf[1000];
	pthread_t th;
	int n;

	CHECK(epoll_ctl(ep1, EPOLL_CTL_ADD, fd, &ev) == 0, "ctl ep1");
	CHECK(pthread_create(&th, NULL, late_ctl, &ca) == 0, "thread");
	/* nothing is readable until we ask: this wait sees the late ctl */
	n = epoll_wait(ep2, &ev, 1, 300);
	CHECK(n == 0, "ep2 early event %d", n);
	pthread_join(th, NULL);
	for (int i = 0; i < 200; i++) {
		char c = (char)(i & 0x7f);
		CHECK(write(fd, &c, 1) == 1, "request");
		n = epoll_wait(ep1, &ev, 1, 10000);
		CHECK(n == 1 && ev.data.u64 == 0xbeef, "ep1 %d", n);
		n = epoll_wait(ep2, &ev, 1, 10000);
		CHECK(n == 1 && ev.data.u64 == 0xbeef, "ep2 %d", n);
		t_read_all(fd, buf, sizeof(buf));
		t_verify(buf, sizeof(buf), (uint64_t)c, 0);
	}
	t_expect(fd);
	close(fd);
}

/* ------------------------------------------------- non-blocking connect */

static void nbconnect_client(int port)
{
	int fd = t_connect_flags("127.0.0.1", port, SOCK_NONBLOCK);
	int ep = epoll_create1(0), err = -1;
	struct epoll_event ev = { .events = EPOLLOUT, .data.fd = fd };
	socklen_t l = sizeof(err);
	uint8_t buf[1000];
	char c = 5;

	CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0, "ctl");
	CHECK(epoll_wait(ep, &ev, 1, 5000) == 1 && (ev.events & EPOLLOUT), "EPOLLOUT");
	CHECK(getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) == 0 && err == 0,
	      "SO_ERROR %d", err);
	/* connect() again, as hiredis checks completion: Linux TCP answers 0
	 * once after a non-blocking connect completed, then EISCONN */
	{
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
					 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		CHECK(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0, "re-connect after completion");
		CHECK_ERRNO(connect(fd, (struct sockaddr *)&a, sizeof(a)), EISCONN);
	}
	int fl = fcntl(fd, F_GETFL);
	CHECK(fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) == 0, "blocking again");
	for (int i = 0; i < 200; i++) {
		c = (char)(i & 0x7f);
		t_write_all(fd, &c, 1);
		t_read_all(fd, buf, sizeof(buf));
		t_verify(buf, sizeof(buf), (uint64_t)c, 0);
	}
	t_expect(fd);
	close(ep);
	close(fd);
}

/* ---------------------------------------------------------- shutdown */

static void shut_server(int lfd)
{
	int fd = accept(lfd, NULL, NULL), ep = epoll_create1(0);
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP };
	char c;

	CHECK(fd >= 0, "accept");
	/* client half-closes after 1 MiB: we see the data, then RDHUP + EOF */
	CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0, "ctl");
	t_recv_stream(fd, 11, 1 << 20);
	/* tell the client we have it all: its shutdown then meets a
	 * decided connection (a pending one would decide TCP, correctly,
	 * when we are slow to adopt on a loaded machine) */
	t_write_all(fd, "k", 1);
	CHECK(epoll_wait(ep, &ev, 1, 5000) == 1 && (ev.events & EPOLLRDHUP),
	      "EPOLLRDHUP (events %x)", ev.events);
	CHECK(read(fd, &c, 1) == 0, "EOF after half-close");
	/* our direction still works */
	t_send_stream(fd, 12, 1 << 20);
	CHECK(shutdown(fd, SHUT_WR) == 0, "shutdown server");
	t_expect(fd);
	close(ep);
	close(fd);
}

static void shut_client(int port)
{
	int fd = t_connect(port);
	char c;

	t_send_stream(fd, 11, 1 << 20);
	t_read_all(fd, &c, 1);
	CHECK(c == 'k', "the server's ack");
	CHECK(shutdown(fd, SHUT_WR) == 0, "shutdown");
	CHECK_ERRNO(send(fd, "x", 1, MSG_NOSIGNAL), EPIPE);
	t_recv_stream(fd, 12, 1 << 20);
	CHECK(read(fd, &c, 1) == 0, "EOF");
	t_expect(fd);
	close(fd);
}

/* -------------------------------------------- write then close / exit */

static void wclose_server(int lfd)
{
	for (int i = 0; i < 20; i++) {
		int fd = accept(lfd, NULL, NULL);
		char c;
		CHECK(fd >= 0, "accept");
		t_recv_stream(fd, (uint64_t)i, 100000);
		CHECK(read(fd, &c, 1) == 0, "EOF after the data");
		/* no transport check: a client that closes before we accept
		 * rightly revokes its claim and delivers over TCP */
		close(fd);
	}
}

/* Write and close at once — and half the time leave by exit() in a
 * child, without closing: the destructor must deliver. */
static void wclose_client(int port)
{
	for (int i = 0; i < 20; i++) {
		if (i % 2) {
			pid_t p = fork();
			CHECK(p >= 0, "fork");
			if (p == 0) {
				int fd = t_connect(port);
				t_send_stream(fd, (uint64_t)i, 100000);
				exit(0);
			}
			int st;
			CHECK(waitpid(p, &st, 0) == p && WIFEXITED(st) && !WEXITSTATUS(st), "child");
		} else {
			int fd = t_connect(port);
			t_send_stream(fd, (uint64_t)i, 100000);
			close(fd);
		}
	}
}

/* ------------------------------------------------ peer killed mid-stream */

static void killed_server(int lfd)
{
	int fd = accept(lfd, NULL, NULL);
	static char buf[1 << 16];
	uint64_t t0;
	ssize_t r;

	CHECK(fd >= 0, "accept");
	t_expect(fd);
	t0 = t_now_us();
	/* the client kills itself after ~4 MiB; we must see EOF or a reset */
	do
		r = read(fd, buf, sizeof(buf));
	while (r > 0 && t_now_us() - t0 < 10000000);
	CHECK(r == 0 || (r < 0 && errno == ECONNRESET), "read after kill: %zd", r);
	CHECK(t_now_us() - t0 < 5000000, "EOF not prompt");
	close(fd);
}

static void killed_client(int port)
{
	pid_t p = fork();
	int st;

	CHECK(p >= 0, "fork");
	if (p == 0) {
		int fd = t_connect(port);
		t_send_stream(fd, 3, 4 << 20);
		kill(getpid(), SIGKILL);
	}
	CHECK(waitpid(p, &st, 0) == p && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
	      "client child status %x", st);
}

/* ------------------------------------------------------- SIGPIPE / EPIPE */

static void epipe_server(int lfd)
{
	int fd = accept(lfd, NULL, NULL);
	char c;

	CHECK(fd >= 0, "accept");
	t_read_all(fd, &c, 1);
	close(fd);
}

static volatile sig_atomic_t got_pipe;
static void on_pipe(int s) { (void)s; got_pipe = 1; }

static void epipe_client(int port)
{
	int fd = t_connect(port);
	uint64_t t0 = t_now_us();
	ssize_t r = 0;
	char c;

	signal(SIGPIPE, on_pipe);
	t_write_all(fd, "x", 1);
	CHECK(read(fd, &c, 1) == 0, "EOF from closed server");
	t_expect(fd);
	/* keep writing until the closed peer is noticed; TCP needs one RST */
	while (t_now_us() - t0 < 5000000 && (r = send(fd, "y", 1, MSG_NOSIGNAL)) > 0)
		usleep(1000);
	CHECK(r < 0 && (errno == EPIPE || errno == ECONNRESET), "send after close: %zd", r);
	CHECK(!got_pipe, "SIGPIPE despite MSG_NOSIGNAL");
	r = send(fd, "y", 1, 0);
	CHECK(r < 0 && errno == EPIPE && got_pipe, "plain send: want EPIPE+SIGPIPE, got %zd sig %d",
	      r, (int)got_pipe);
	close(fd);
}

/* -------------------------------------------------- EINTR and timeouts */

static void quiet_server(int lfd)
{
	int fd = accept(lfd, NULL, NULL);
	char c;

	CHECK(fd >= 0, "accept");
	t_expect(fd);
	/* stays silent until the client closes */
	CHECK(read(fd, &c, 1) == 0, "EOF");
	close(fd);
}

static char *self_exe;	/* this program, for roles that re-execute it */

static void on_alrm(int s) { (void)s; }

static void eintr_client(int port)
{
	int fd = t_connect(port);
	struct sigaction sa;
	struct itimerval it = { { 0, 0 }, { 0, 200000 } };
	struct timeval tv = { 0, 300000 };
	uint64_t t0;
	char c;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alrm;      /* no SA_RESTART: the read fails */
	sigaction(SIGALRM, &sa, NULL);
	t0 = t_now_us();
	setitimer(ITIMER_REAL, &it, NULL);
	CHECK_ERRNO(read(fd, &c, 1), EINTR);
	CHECK(t_now_us() - t0 >= 150000 && t_now_us() - t0 < 3000000, "EINTR timing");
	/* SO_RCVTIMEO: EAGAIN after ~300 ms */
	CHECK(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0, "rcvtimeo");
	t0 = t_now_us();
	CHECK_ERRNO(recv(fd, &c, 1, 0), EAGAIN);
	CHECK(t_now_us() - t0 >= 80000 && t_now_us() - t0 < 3000000, "RCVTIMEO timing %llu",
	      (unsigned long long)(t_now_us() - t0));
	t_expect(fd);
	close(fd);
}

/*
 * A signal whose handler runs while a blocking call waits in user space
 * (the shm transport spins before it sleeps): the call ends as the kernel
 * would end a blocked one — recv with EINTR, a long send with the count
 * it sent.  The client runs with a 300 ms spin, so that the one SIGALRM
 * (at 50 ms) lands in it (the previous library went on waiting: netperf's
 * TCP_MAERTS hung on its timer).  The server neither reads nor writes
 * for 1.5 s.
 */
static void eintr_spin_server(int lfd)
{
	int fd = accept(lfd, NULL, NULL);
	static uint8_t buf[1 << 16];
	ssize_t r;

	CHECK(fd >= 0, "accept");
	usleep(1500000);
	while ((r = read(fd, buf, sizeof(buf))) > 0)
		;
	CHECK(r == 0, "EOF");
	close(fd);
}

static void eintr_spin_client(int port)
{
	struct itimerval it = { { 0, 0 }, { 0, 50000 } };
	static uint8_t big[64 << 20];
	struct sigaction sa;
	char num[16];
	uint64_t t0, dt;
	ssize_t r;
	int fd;

	if (!getenv("FLP_SPIN_STAGE")) {
		setenv("FLP_SPIN_STAGE", "1", 1);
		setenv("FASTLOOP_SPIN_US", "300000", 1);
		snprintf(num, sizeof(num), "%d", port);
		execl(self_exe, self_exe, "eintr-spin", "client", num, (char *)NULL);
		FAIL("exec");
	}
	fd = t_connect(port);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alrm;      /* no SA_RESTART */
	CHECK(sigaction(SIGALRM, &sa, NULL) == 0, "sigaction");
	t0 = t_now_us();
	setitimer(ITIMER_REAL, &it, NULL);
	CHECK_ERRNO(read(fd, big, 1), EINTR);
	dt = t_now_us() - t0;
	CHECK(dt >= 40000 && dt < 250000, "read: EINTR after %llu us (the alarm was at 50 ms)",
	      (unsigned long long)dt);
	t0 = t_now_us();
	setitimer(ITIMER_REAL, &it, NULL);
	r = write(fd, big, sizeof(big));
	dt = t_now_us() - t0;
	CHECK((r > 0 && r < (ssize_t)sizeof(big)) || (r < 0 && errno == EINTR),
	      "write of 64 MiB to a reader that does not read: %zd", r);
	CHECK(dt >= 40000 && dt < 250000, "write: ended %llu us after the start (alarm at 50 ms)",
	      (unsigned long long)dt);
	t_expect(fd);
	close(fd);
}

/* -------------------------------------------------------------- dup */

static void dup_client(int port)
{
	int fd = t_connect(port), saved_out = dup(1), d, d2;
	uint8_t buf[1000];
	char c = 1;

	/* dup2 onto stdout and write the request through it */
	CHECK(dup2(fd, 1) == 1, "dup2 onto stdout");
	t_write_all(1, &c, 1);
	t_read_all(fd, buf, sizeof(buf));
	t_verify(buf, sizeof(buf), 1, 0);
	CHECK(dup2(saved_out, 1) == 1, "restore stdout");
	d = dup(fd);
	d2 = fcntl(fd, F_DUPFD_CLOEXEC, 100);
	CHECK(d >= 0 && d2 >= 100, "dup/F_DUPFD");
	CHECK(dup3(d, 77, O_CLOEXEC) == 77, "dup3");
	close(fd);   /* the others still hold the connection */
	for (int i = 2; i < 200; i++) {
		int w = (i % 3 == 0) ? d : (i % 3 == 1) ? d2 : 77;
		c = (char)(i & 0x7f);
		t_write_all(w, &c, 1);
		t_read_all(w, buf, sizeof(buf));
		t_verify(buf, sizeof(buf), (uint64_t)c, 0);
	}
	t_expect(d);
	t_expect(d2);
	t_expect(77);
	close(d);
	close(d2);
	close(77);
}

static void dup_server(int lfd)
{
	/* the same protocol as rr_server but 199 requests (one shared) */
	int fd = accept(lfd, NULL, NULL);

	CHECK(fd >= 0, "accept");
	serve_rr_fd(fd, 199);
	t_expect(fd);
	close(fd);
}

/* ------------------------------------------- fork after accept, prefork */

static void client_rr(int port, int n)
{
	int fd = t_connect(port);
	uint8_t buf[1000];

	for (int i = 0; i < n; i++) {
		char c = (char)((i * 7) & 0x7f);
		t_write_all(fd, &c, 1);
		t_read_all(fd, buf, sizeof(buf));
		t_verify(buf, sizeof(buf), (uint64_t)c, 0);
	}
	t_expect(fd);
	close(fd);
}

static void reap_children(int n)
{
	for (int i = 0; i < n; i++) {
		int st;
		pid_t p = wait(&st);
		CHECK(p > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
		      "child %d status %x", (int)p, st);
	}
}

static void forkserve_server(int lfd)
{
	for (int i = 0; i < 10; i++) {
		int fd = accept(lfd, NULL, NULL);
		pid_t p;

		CHECK(fd >= 0, "accept");
		p = fork();
		CHECK(p >= 0, "fork");
		if (p == 0) {
			close(lfd);
			t_expect(fd);
			serve_rr_fd(fd, 20);
			_exit(0);
		}
		close(fd);   /* parent closes; the child serves */
	}
	reap_children(10);
}

static void multi_client(int port)
{
	for (int i = 0; i < 10; i++)
		client_rr(port, 20);
}

static void prefork_server(int lfd)
{
	/* 4 processes accept on one listener, 100 connections in all */
	for (int w = 0; w < 4; w++) {
		pid_t p = fork();
		CHECK(p >= 0, "fork");
		if (p == 0) {
			for (;;) {
				int fd = accept(lfd, NULL, NULL);
				CHECK(fd >= 0, "accept");
				char c;
				t_read_all(fd, &c, 1);
				if (c == 'q') {
					close(fd);
					_exit(0);
				}
				t_expect(fd);
				uint8_t buf[1000];
				t_fill(buf, sizeof(buf), (uint64_t)c, 0);
				t_write_all(fd, buf, sizeof(buf));
				CHECK(read(fd, &c, 1) == 0, "EOF");
				close(fd);
			}
		}
	}
	reap_children(4);
}

static void prefork_client(int port)
{
	uint8_t buf[1000];

	for (int i = 0; i < 100; i++) {
		int fd = t_connect(port);
		char c = (char)(i % 100);
		t_write_all(fd, &c, 1);
		t_read_all(fd, buf, sizeof(buf));
		t_verify(buf, sizeof(buf), (uint64_t)c, 0);
		t_expect(fd);
		close(fd);
	}
	for (int i = 0; i < 4; i++) {
		int fd = t_connect(port);
		t_write_all(fd, "q", 1);
		close(fd);
	}
}

/* -------------------------------------------------------------- exec */


static void exec_server(int lfd)
{
	int fd = accept(lfd, NULL, NULL);
	char num[16];

	CHECK(fd >= 0, "accept");
	close(lfd);
	snprintf(num, sizeof(num), "%d", fd);
	/* the connection fd survives exec; the new image serves it */
	execl(self_exe, self_exe, "exec", "served", num, (char *)NULL);
	FAIL("exec");
}

static void exec_served(int fd)
{
	struct sockaddr_storage ss;
	socklen_t l = sizeof(ss);

	t_expect(fd);
	CHECK(getpeername(fd, (struct sockaddr *)&ss, &l) == 0 && ss.ss_family == AF_INET,
	      "getpeername after exec: family %d", ss.ss_family);
	serve_rr_fd(fd, 50);
	close(fd);
}

static void exec_client(int port) { client_rr(port, 50); }

/*
 * exec as Python's subprocess hands a connection to a child: the
 * accepted socket is close-on-exec, dup2()ed onto stdin and stdout, every
 * fd from 3 up closed (close_range), then execve.  The client's first
 * bytes were sent before it switched (the server may still be draining
 * them from TCP): the new image reads them on stdin and answers on
 * stdout.
 */
static void exec_stdio_server(int lfd)
{
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

	CHECK(fd >= 0, "accept4");
	CHECK(dup2(fd, 0) == 0 && dup2(fd, 1) == 1, "dup2");
	CHECK(close_range(3, ~0U, 0) == 0, "close_range");
	execl(self_exe, self_exe, "exec-stdio", "stdio", (char *)NULL);
	FAIL("exec");
}

static void exec_stdio_served(void)
{
	uint8_t buf[5000];
	char c;

	t_read_all(0, buf, sizeof(buf));
	t_verify(buf, sizeof(buf), 77, 0);
	t_fill(buf, sizeof(buf), 78, 0);
	t_write_all(1, buf, sizeof(buf));
	CHECK(read(0, &c, 1) == 0, "EOF on stdin");
	t_expect(0);
	t_expect(1);
}

static void exec_stdio_client(int port)
{
	int fd = t_connect(port);
	uint8_t buf[5000];
	char c;

	t_fill(buf, sizeof(buf), 77, 0);
	t_write_all(fd, buf, sizeof(buf));
	t_read_all(fd, buf, sizeof(buf));
	t_verify(buf, sizeof(buf), 78, 0);
	t_expect(fd);
	CHECK(shutdown(fd, SHUT_WR) == 0, "shutdown");
	CHECK(read(fd, &c, 1) == 0, "EOF after the reply");
	close(fd);
}

/* ---------------------------------------------------- server speaks first */

static void first_server(int lfd)
{
	uint8_t buf[100];

	for (int i = 0; i < 100; i++) {
		int fd = accept(lfd, NULL, NULL);
		char c;
		CHECK(fd >= 0, "accept");
		t_fill(buf, sizeof(buf), (uint64_t)i, 0);
		t_write_all(fd, buf, sizeof(buf));    /* greeting first */
		t_read_all(fd, &c, 1);
		CHECK(c == (char)i, "reply");
		CHECK(read(fd, &c, 1) == 0, "EOF");
		close(fd);
	}
}

static void first_client(int port)
{
	uint8_t buf[100];
	int fast = 0;

	for (int i = 0; i < 100; i++) {
		int fd = t_connect(port);
		char c = (char)i;
		t_read_all(fd, buf, sizeof(buf));
		t_verify(buf, sizeof(buf), (uint64_t)i, 0);
		t_write_all(fd, &c, 1);
		fast += t_raw_domain(fd) == AF_UNIX;
		close(fd);
	}
	if (t_expect_fast())
		CHECK(fast >= 99, "server-speaks-first: only %d of 100 on the fast path", fast);
	else
		CHECK(fast == 0, "%d connections took the fast path", fast);
}

/* ------------------------------------------------- names and options */

static void names_check(int fd, int family, bool server)
{
	struct sockaddr_storage a, b;
	socklen_t la = sizeof(a), lb = sizeof(b), l;
	struct tcp_info ti;
	int v;

	CHECK(getsockname(fd, (struct sockaddr *)&a, &la) == 0 && a.ss_family == family,
	      "getsockname family %d", a.ss_family);
	CHECK(getpeername(fd, (struct sockaddr *)&b, &lb) == 0 && b.ss_family == family,
	      "getpeername family %d", b.ss_family);
	l = sizeof(v);
	CHECK(getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &l) == 0 && v == SOCK_STREAM, "SO_TYPE");
	l = sizeof(v);
	CHECK(getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &l) == 0 && v == family, "SO_DOMAIN %d", v);
	l = sizeof(v);
	CHECK(getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &v, &l) == 0 && v == IPPROTO_TCP, "SO_PROTOCOL");
	l = sizeof(v);
	CHECK(getsockopt(fd, SOL_SOCKET, SO_ERROR, &v, &l) == 0 && v == 0, "SO_ERROR");
	l = sizeof(ti);
	CHECK(getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &l) == 0 &&
	      ti.tcpi_state == 1 /* TCP_ESTABLISHED */, "TCP_INFO state %d", ti.tcpi_state);
	l = sizeof(v);
	CHECK(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &l) == 0 && v == (server ? 0 : 1),
	      "TCP_NODELAY %d", v);
	v = 1;
	CHECK(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, sizeof(v)) == 0, "set NODELAY");
	l = sizeof(v);
	CHECK(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &l) == 0 && v == 1, "NODELAY now 1");
}

static void names_server(int lfd)
{
	int fd = accept(lfd, NULL, NULL);
	struct sockaddr_in peer;
	socklen_t l = sizeof(peer);
	char c;

	CHECK(fd >= 0, "accept");
	t_read_all(fd, &c, 1);
	names_check(fd, AF_INET, true);
	CHECK(getpeername(fd, (struct sockaddr *)&peer, &l) == 0, "peer");
	/* tell the client which port we see for it: it must match its own */
	uint16_t p = ntohs(peer.sin_port);
	t_write_all(fd, &p, sizeof(p));
	t_expect(fd);
	CHECK(read(fd, &c, 1) == 0, "EOF");
	close(fd);
}

static void names_client(int port)
{
	int fd = t_connect(port), one = 1;
	struct sockaddr_in me, peer;
	socklen_t l = sizeof(me);
	uint16_t seen;

	/* set before the switch: must still be reported after it */
	CHECK(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == 0, "nodelay");
	t_write_all(fd, "n", 1);
	t_read_all(fd, &seen, sizeof(seen));
	names_check(fd, AF_INET, false);
	CHECK(getsockname(fd, (struct sockaddr *)&me, &l) == 0 && ntohs(me.sin_port) == seen,
	      "server sees port %u, we are %u", seen, ntohs(me.sin_port));
	l = sizeof(peer);
	CHECK(getpeername(fd, (struct sockaddr *)&peer, &l) == 0 && ntohs(peer.sin_port) == port &&
	      peer.sin_addr.s_addr == htonl(INADDR_LOOPBACK), "getpeername");
	t_expect(fd);
	close(fd);
}

/* ------------------------------------------------------------ IPv6 */

static void v6_client(int port)
{
	/* the server listens on [::] (dual stack): ::1 and 127.0.0.1 both */
	static const char *const addrs[] = { "::1", "127.0.0.1", "::ffff:127.0.0.1" };

	for (int k = 0; k < 3; k++) {
		int fd = t_connect_flags(addrs[k], port, 0);
		uint8_t buf[1000];
		char c = (char)k;
		t_write_all(fd, &c, 1);
		t_read_all(fd, buf, sizeof(buf));
		t_verify(buf, sizeof(buf), (uint64_t)c, 0);
		t_expect(fd);
		close(fd);
	}
}

static void v6_server(int lfd)
{
	for (int k = 0; k < 3; k++) {
		int fd = accept(lfd, NULL, NULL);
		CHECK(fd >= 0, "accept");
		t_expect(fd);
		serve_rr_fd(fd, 1);
		close(fd);
	}
}

/* ----------------------------------- many sequential short connections */

static int n_many(void)
{
	const char *e = getenv("FLP_MANY");
	return e ? atoi(e) : 100000;
}

static void many_server(int lfd)
{
	int n = n_many();

	for (int i = 0; i < n; i++) {
		int fd = accept(lfd, NULL, NULL);
		char c;
		CHECK(fd >= 0, "accept %d", i);
		t_read_all(fd, &c, 1);
		t_write_all(fd, &c, 1);
		close(fd);
	}
}

static int count_dir(const char *d)
{
	char cmd[512];
	int n = -1;
	FILE *f;

	/* handshake files only: a process's `fastloop stat` file (p-*) is
	 * its own business (run.sh checks those are swept) */
	snprintf(cmd, sizeof(cmd), "ls -A '%s' 2>/dev/null | grep -c '^l-'", d);
	if ((f = popen(cmd, "r"))) {
		if (fscanf(f, "%d", &n) != 1)
			n = -1;
		pclose(f);
	}
	return n;
}

static void many_client(int port)
{
	int n = n_many(), fds0 = -1, fast = 0;
	const char *dir = getenv("FASTLOOP_DIR");
	int files0 = dir ? count_dir(dir) : 0;
	struct rusage ru0, ru1;

	getrusage(RUSAGE_SELF, &ru0);
	for (int i = 0; i < n; i++) {
		int fd = t_connect(port);
		char c = (char)i;
		t_write_all(fd, &c, 1);
		t_read_all(fd, &c, 1);
		CHECK(c == (char)i, "reply %d", i);
		fast += t_raw_domain(fd) == AF_UNIX;
		close(fd);
		if (i == 100)
			fds0 = t_count_fds();
	}
	getrusage(RUSAGE_SELF, &ru1);
	CHECK(t_count_fds() == fds0, "fd leak: %d fds after, %d at connection 100",
	      t_count_fds(), fds0);
	/* the server's own file may be gone already; nothing may be added */
	CHECK(!dir || count_dir(dir) <= files0, "registry files %d -> %d", files0, count_dir(dir));
	/* memory: max RSS may not grow by more than 8 MiB over the run (not
	 * under a sanitizer: its quarantine keeps freed memory on purpose) */
	CHECK(getenv("FLP_SANITIZER") || ru1.ru_maxrss - ru0.ru_maxrss < 8192,
	      "max RSS grew by %ld KiB", ru1.ru_maxrss - ru0.ru_maxrss);
	if (t_expect_fast())
		CHECK(fast == n, "only %d of %d connections fast", fast, n);
	else
		CHECK(fast == 0, "%d fast connections", fast);
}

/* -------------------------------------------- idle connection: ~0 CPU */

static void idle_server(int lfd)
{
	int fd = accept(lfd, NULL, NULL);
	struct rusage a, b;
	char c;

	CHECK(fd >= 0, "accept");
	getrusage(RUSAGE_SELF, &a);
	t_read_all(fd, &c, 1);    /* the client waits a second first */
	getrusage(RUSAGE_SELF, &b);
	long us = (b.ru_utime.tv_sec - a.ru_utime.tv_sec) * 1000000L +
		  (b.ru_utime.tv_usec - a.ru_utime.tv_usec) +
		  (b.ru_stime.tv_sec - a.ru_stime.tv_sec) * 1000000L +
		  (b.ru_stime.tv_usec - a.ru_stime.tv_usec);
	CHECK(us < 50000, "idle server burned %ld us of CPU in 1 s", us);
	t_expect(fd);
	close(fd);
}

static void idle_client(int port)
{
	int fd = t_connect(port);

	sleep(1);
	t_write_all(fd, "i", 1);
	t_expect(fd);
	close(fd);
}

/* ------------------------------------------------ one process, threads */

static int solo_port;
static int solo_lfd;

static void *solo_server_thread(void *a)
{
	(void)a;
	int fd = accept(solo_lfd, NULL, NULL);
	CHECK(fd >= 0, "accept");
	/* accept() may leave it undecided (the client thread had not
	 * filled its claim yet): the first read decides */
	serve_rr_fd(fd, 100);
	t_expect(fd);
	close(fd);
	return NULL;
}

static void threads_solo(void)
{
	pthread_t th;

	solo_lfd = t_listen("127.0.0.1", &solo_port);
	CHECK(pthread_create(&th, NULL, solo_server_thread, NULL) == 0, "thread");
	client_rr(solo_port, 100);
	pthread_join(th, NULL);
	close(solo_lfd);

	/* connect, send, then accept — all in one thread */
	int lfd = t_listen("127.0.0.1", &solo_port);
	for (int i = 0; i < 20; i++) {
		int c = t_connect(solo_port), s;
		uint8_t buf[5000];
		t_fill(buf, sizeof(buf), (uint64_t)i, 0);
		t_write_all(c, buf, sizeof(buf));
		s = accept(lfd, NULL, NULL);
		CHECK(s >= 0, "accept");
		memset(buf, 0, sizeof(buf));
		t_read_all(s, buf, sizeof(buf));
		t_verify(buf, sizeof(buf), (uint64_t)i, 0);
		t_write_all(s, buf, 10);
		t_read_all(c, buf, 10);
		t_verify(buf, 10, (uint64_t)i, 0);
		t_expect(c);
		t_expect(s);
		close(c);
		close(s);
	}
	close(lfd);
}


/* ------------------------------------- stale file, plain server on port */

/* Echo 1000 patterned bytes per 1-byte request until EOF, n connections. */
static void plain_echo_serve(int lfd, int n)
{
	for (int i = 0; i < n; i++) {
		int fd = accept(lfd, NULL, NULL);
		CHECK(fd >= 0, "accept");
		serve_rr_fd(fd, 1);
		close(fd);
	}
}

static int registry_files(void)
{
	const char *dir = getenv("FASTLOOP_DIR");
	return dir ? count_dir(dir) : -1;
}

/*
 * A preloaded server is SIGKILLed (its handshake file stays behind); a
 * plain server then listens on the same port.  A preloaded client must
 * see through the stale file: plain TCP, every byte right, file swept.
 */
static void stale_solo(void)
{
	int pfd[2], port = 0, st;
	pid_t a, b;

	if (!t_expect_fast()) {
		printf("skip: needs the fast path on (handshake files)\n");
		exit(77);
	}
	CHECK(pipe(pfd) == 0, "pipe");
	a = fork();
	CHECK(a >= 0, "fork");
	if (a == 0) {
		int p, lfd = t_listen("127.0.0.1", &p);
		CHECK(write(pfd[1], &p, sizeof(p)) == sizeof(p), "pipe");
		pause();
		close(lfd);
		_exit(0);
	}
	CHECK(read(pfd[0], &port, sizeof(port)) == sizeof(port), "port");
	CHECK(registry_files() >= 1, "no handshake file for the first server");
	kill(a, SIGKILL);
	CHECK(waitpid(a, &st, 0) == a, "reap");
	CHECK(registry_files() >= 1, "the killed server's file should still be there");
	b = fork();
	CHECK(b >= 0, "fork");
	if (b == 0) {
		char num[16];
		snprintf(num, sizeof(num), "%d", port);
		unsetenv("LD_PRELOAD");     /* a plain server now owns the port */
		execl(self_exe, self_exe, "stale", "plainserve", num, (char *)NULL);
		_exit(127);
	}
	usleep(200000);
	for (int i = 0; i < 5; i++) {
		int fd = t_connect(port);
		uint8_t buf[1000];
		char c = (char)i;
		t_write_all(fd, &c, 1);
		t_read_all(fd, buf, sizeof(buf));
		t_verify(buf, sizeof(buf), (uint64_t)c, 0);
		CHECK(t_raw_domain(fd) == AF_INET, "fast path with a plain server");
		close(fd);
	}
	CHECK(waitpid(b, &st, 0) == b && WIFEXITED(st) && !WEXITSTATUS(st), "plain server");
	CHECK(registry_files() == 0, "stale file not swept (%d left)", registry_files());
}

/* The plain server of stale_solo: listens on the given port itself. */
static void stale_plainserve(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int one = 1, lfd = socket(AF_INET, SOCK_STREAM, 0);

	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	CHECK(bind(lfd, (struct sockaddr *)&a, sizeof(a)) == 0, "bind %d", port);
	CHECK(listen(lfd, 16) == 0, "listen");
	plain_echo_serve(lfd, 5);
}

/* ----------------------------------------- corrupted handshake file */

/* The handshake file of our listener on port, in the registry dir. */
static void handshake_file(const char *dir, int port, char *path, size_t len)
{
	FILE *f;

	snprintf(path, len, "ls -1 '%s'/l-%d-* 2>/dev/null | head -1", dir, port);
	CHECK((f = popen(path, "r")) && fgets(path, (int)len, f), "find handshake file");
	pclose(f);
	path[strcspn(path, "\n")] = 0;
}

/* Map a file read-write (the fuzzers' view of a handshake file). */
static uint8_t *map_rw(const char *path, size_t *size)
{
	int fd = open(path, O_RDWR);
	struct stat sb;
	uint8_t *m;

	CHECK(fd >= 0 && fstat(fd, &sb) == 0, "open %s", path);
	m = mmap(NULL, (size_t)sb.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(m != MAP_FAILED, "mmap");
	*size = (size_t)sb.st_size;
	return m;
}

/*
 * While a client makes connections, another process scribbles random
 * bytes over the listener's handshake file (slots and header).  Nothing
 * may crash or hang, and every byte must arrive right, whatever
 * transport each connection ends up on.
 */
static void fuzz_solo(void)
{
	const char *dir = getenv("FASTLOOP_DIR");
	int lfd, port, st, fast = 0;
	char path[512] = "";
	pid_t srv, fz;

	if (!t_expect_fast()) {
		printf("skip: needs the fast path on (handshake files)\n");
		exit(77);
	}
	CHECK(dir, "FASTLOOP_DIR");
	lfd = t_listen("127.0.0.1", &port);
	srv = fork();
	CHECK(srv >= 0, "fork");
	if (srv == 0) {
		plain_echo_serve(lfd, 300);
		_exit(0);
	}
	handshake_file(dir, port, path, sizeof(path));
	fz = fork();
	CHECK(fz >= 0, "fork");
	if (fz == 0) {
		uint64_t x = (uint64_t)getpid() * 0x9E3779B97F4A7C15ull;
		size_t size;
		uint8_t *m = map_rw(path, &size);
		for (long i = 0; i < 4000000; i++) {
			x ^= x << 13; x ^= x >> 7; x ^= x << 17;
			/* mostly the slots, now and then the header */
			size_t off = (i % 64) ? 256 + (size_t)(x % (uint64_t)(size - 256))
					      : (size_t)(x % 256);
			m[off] = (uint8_t)(x >> 32);
			if (i % 1024 == 0)
				usleep(100);
		}
		_exit(0);
	}
	for (int i = 0; i < 300; i++) {
		int fd = t_connect(port);
		uint8_t buf[1000];
		char c = (char)(i & 0x7f);
		t_write_all(fd, &c, 1);
		t_read_all(fd, buf, sizeof(buf));
		t_verify(buf, sizeof(buf), (uint64_t)c, 0);
		fast += t_raw_domain(fd) == AF_UNIX;
		close(fd);
	}
	kill(fz, SIGKILL);
	waitpid(fz, &st, 0);
	CHECK(waitpid(srv, &st, 0) == srv && WIFEXITED(st) && !WEXITSTATUS(st),
	      "server survived the fuzzing (status %x)", st);
	close(lfd);
	printf("fuzz: %d of 300 connections fast while the file was scribbled on\n", fast);
}

/* ------------------------------------------- issue 6: switch regressions */

static void rr_server1(int lfd)
{
	int fd = accept(lfd, NULL, NULL);

	CHECK(fd >= 0, "accept");
	serve_rr_fd(fd, 1);
	t_expect(fd);
	close(fd);
}

static int geti(int fd, int lvl, int name)
{
	int v = -1;
	socklen_t l = sizeof(v);

	CHECK(getsockopt(fd, lvl, name, &v, &l) == 0, "getsockopt %d/%d", lvl, name);
	return v;
}

static long get_tv_ms(int fd, int name)
{
	struct timeval tv;
	socklen_t l = sizeof(tv);

	CHECK(getsockopt(fd, SOL_SOCKET, name, &tv, &l) == 0, "getsockopt timeval");
	return tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static void set_tv_ms(int fd, int name, long ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	CHECK(setsockopt(fd, SOL_SOCKET, name, &tv, sizeof(tv)) == 0, "setsockopt timeval");
}

/*
 * Bug 1: what the app set on a socket holds after the switch.  The
 * server's listener carries options its accepted sockets inherit; the
 * client sets some before connect() and more right after, before the
 * switch; each side then checks them on its (maybe switched) fd, and the
 * receive timeouts must fire on idle connections.
 */
static void opts_server(int lfd)
{
	int one = 1, fd;
	uint64_t t0;
	char c;

	CHECK(setsockopt(lfd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one)) == 0, "keepalive");
	CHECK(setsockopt(lfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == 0, "nodelay");
	set_tv_ms(lfd, SO_RCVTIMEO, 100);
	fd = accept(lfd, NULL, NULL);
	CHECK(fd >= 0, "accept");
	t_expect(fd);
	CHECK(geti(fd, SOL_SOCKET, SO_KEEPALIVE) == 1, "inherited SO_KEEPALIVE lost");
	CHECK(geti(fd, IPPROTO_TCP, TCP_NODELAY) == 1, "inherited TCP_NODELAY lost");
	CHECK(get_tv_ms(fd, SO_RCVTIMEO) == 100, "inherited SO_RCVTIMEO: %ld ms", get_tv_ms(fd, SO_RCVTIMEO));
	/* the client stays silent: the inherited timeout must fire */
	t0 = t_now_us();
	CHECK_ERRNO(recv(fd, &c, 1, 0), EAGAIN);
	CHECK(t_now_us() - t0 >= 80000 && t_now_us() - t0 < 3000000,
	      "inherited SO_RCVTIMEO fired after %llu us", (unsigned long long)(t_now_us() - t0));
	set_tv_ms(fd, SO_RCVTIMEO, 0);
	CHECK(read(fd, &c, 1) == 0, "EOF");
	close(fd);
	fd = accept(lfd, NULL, NULL);
	CHECK(fd >= 0, "accept");
	set_tv_ms(fd, SO_RCVTIMEO, 0);
	serve_rr_fd(fd, 1);
	close(fd);
}

static void opts_client(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct linger lg = { 1, 5 }, lg2;
	socklen_t l = sizeof(lg2);
	int one = 1, prio = 3, rcvbuf = 65536, tcp_rcvbuf, fd;
	uint8_t buf[1000];
	uint64_t t0;
	char c = 9;

	/* the server sets its listener's options after it told us the port;
	 * a connection made before that would not inherit them (and its
	 * inherited 100 ms SO_RCVTIMEO bounds its accept: stay below) */
	usleep(30000);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(fd >= 0, "socket");
	CHECK(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == 0, "nodelay");
	CHECK(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)) == 0, "rcvbuf");
	CHECK(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect");
	/* between connect() and the switch (the first data call) */
	set_tv_ms(fd, SO_RCVTIMEO, 200);
	set_tv_ms(fd, SO_SNDTIMEO, 240);
	CHECK(setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one)) == 0, "keepalive");
	CHECK(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) == 0, "linger");
	CHECK(setsockopt(fd, SOL_SOCKET, SO_PRIORITY, &prio, sizeof(prio)) == 0, "priority");
	CHECK(fcntl(fd, F_SETFD, FD_CLOEXEC) == 0, "cloexec");
	tcp_rcvbuf = geti(fd, SOL_SOCKET, SO_RCVBUF);
	t0 = t_now_us();
	CHECK_ERRNO(recv(fd, &c, 1, 0), EAGAIN);
	CHECK(t_now_us() - t0 >= 150000 && t_now_us() - t0 < 3000000,
	      "SO_RCVTIMEO fired after %llu us", (unsigned long long)(t_now_us() - t0));
	t_expect(fd);
	CHECK(get_tv_ms(fd, SO_RCVTIMEO) == 200, "SO_RCVTIMEO %ld", get_tv_ms(fd, SO_RCVTIMEO));
	CHECK(get_tv_ms(fd, SO_SNDTIMEO) == 240, "SO_SNDTIMEO %ld", get_tv_ms(fd, SO_SNDTIMEO));
	CHECK(geti(fd, SOL_SOCKET, SO_KEEPALIVE) == 1, "SO_KEEPALIVE lost");
	CHECK(geti(fd, SOL_SOCKET, SO_PRIORITY) == 3, "SO_PRIORITY lost");
	CHECK(geti(fd, IPPROTO_TCP, TCP_NODELAY) == 1, "TCP_NODELAY (set before connect) lost");
	CHECK(geti(fd, SOL_SOCKET, SO_RCVBUF) == tcp_rcvbuf, "SO_RCVBUF %d, TCP had %d",
	      geti(fd, SOL_SOCKET, SO_RCVBUF), tcp_rcvbuf);
	CHECK(getsockopt(fd, SOL_SOCKET, SO_LINGER, &lg2, &l) == 0 && lg2.l_onoff == 1 &&
	      lg2.l_linger == 5, "SO_LINGER lost");
	CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC, "FD_CLOEXEC lost");
	lg.l_onoff = 0;
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);

	/* O_NONBLOCK set after connect holds after the switch */
	fd = t_connect(port);
	CHECK(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == 0, "nonblock");
	t_write_all(fd, &c, 1);
	for (size_t got = 0; got < sizeof(buf);) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t r;
		CHECK(poll(&p, 1, 5000) == 1, "poll for the reply");
		r = read(fd, buf + got, sizeof(buf) - got);
		if (r < 0 && errno == EAGAIN)
			continue;
		CHECK(r > 0, "read");
		got += (size_t)r;
	}
	t_verify(buf, sizeof(buf), (uint64_t)c, 0);
	t_expect(fd);
	CHECK(fcntl(fd, F_GETFL) & O_NONBLOCK, "O_NONBLOCK lost");
	t0 = t_now_us();
	CHECK_ERRNO(recv(fd, &c, 1, 0), EAGAIN);
	CHECK(t_now_us() - t0 < 100000, "a non-blocking recv blocked");
	close(fd);
}

/*
 * Bug 2: bytes a client wrote reach the server as fast as TCP would
 * deliver them, whatever the client does next: block elsewhere (on a
 * pipe), exit, or die by SIGKILL.  The server must find them readable
 * within a bound of its accept, then see EOF (or a reset).
 */
static void unsent_server(int lfd)
{
	for (int k = 0; k < 3; k++) {
		int fd = accept(lfd, NULL, NULL);
		uint64_t t0 = t_now_us();
		struct pollfd p;
		uint8_t buf[10];
		ssize_t r;

		CHECK(fd >= 0, "accept");
		p.fd = fd;
		p.events = POLLIN;
		CHECK(poll(&p, 1, 2000) == 1 && (p.revents & POLLIN),
		      "connection %d: the client's bytes are not readable after 2 s", k);
		CHECK(t_now_us() - t0 < 500000, "connection %d: readable only after %llu us", k,
		      (unsigned long long)(t_now_us() - t0));
		t_read_all(fd, buf, sizeof(buf));
		t_verify(buf, sizeof(buf), 60 + (uint64_t)k, 0);
		set_tv_ms(fd, SO_RCVTIMEO, 5000);
		r = read(fd, buf, 1);
		CHECK(r == 0 || (r < 0 && errno == ECONNRESET),
		      "connection %d: after the bytes, EOF or a reset (got %zd)", k, r);
		close(fd);
	}
}

static void unsent_client(int port)
{
	for (int k = 0; k < 3; k++) {
		int pp[2], st;
		pid_t c;

		CHECK(pipe(pp) == 0, "pipe");
		c = fork();
		CHECK(c >= 0, "fork");
		if (c == 0) {
			uint8_t buf[10];
			char x;
			int fd = t_connect(port);
			t_fill(buf, sizeof(buf), 60 + (uint64_t)k, 0);
			t_write_all(fd, buf, sizeof(buf));
			if (k == 1)
				exit(0);        /* a normal exit, fd left open */
			/* k 0: blocks on a pipe; k 2: the same, then killed */
			close(pp[1]);
			if (read(pp[0], &x, 1) < 0)
				_exit(1);
			_exit(0);
		}
		close(pp[0]);
		usleep(k == 2 ? 300000 : 700000);
		if (k == 2)
			kill(c, SIGKILL);
		close(pp[1]);           /* k 0: the child wakes and exits */
		CHECK(waitpid(c, &st, 0) == c, "waitpid");
	}
}

/*
 * Bug 3: an edge-triggered registration made right after a non-blocking
 * connect reports EPOLLOUT once; the switch must not report it again.
 */
static void etedge_client(int port)
{
	int fd = t_connect_flags("127.0.0.1", port, SOCK_NONBLOCK);
	int ep = epoll_create1(0);
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLET }, out[4];
	uint8_t buf[1000];
	size_t got = 0;
	char c = 17;
	int n;

	CHECK(ep >= 0, "epoll_create1");
	ev.data.fd = fd;
	CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0, "epoll_ctl");
	n = epoll_wait(ep, out, 4, 2000);
	CHECK(n == 1 && (out[0].events & EPOLLOUT), "first wait: %d events %x", n, n > 0 ? out[0].events : 0);
	n = epoll_wait(ep, out, 4, 300);
	CHECK(n == 0, "second wait: %d events %x (nothing changed: TCP reports nothing)",
	      n, n > 0 ? out[0].events : 0);
	t_write_all(fd, &c, 1);
	while (got < sizeof(buf)) {
		ssize_t r = read(fd, buf + got, sizeof(buf) - got);
		if (r < 0 && errno == EAGAIN) {
			CHECK(epoll_wait(ep, out, 4, 5000) >= 1, "wait for the reply");
			continue;
		}
		CHECK(r > 0, "read");
		got += (size_t)r;
	}
	t_verify(buf, sizeof(buf), (uint64_t)c, 0);
	t_expect(fd);
	close(ep);
	close(fd);
}

/*
 * nginx's upstream sockets: added to epoll (edge-triggered) before the
 * non-blocking connect().  The registration must follow the switch, or
 * the reply never wakes the app.
 */
static void epoll_pre_client(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), ep = epoll_create1(0);
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET }, out[4];
	uint8_t buf[1000];
	size_t got = 0;
	char c = 23;

	CHECK(fd >= 0 && ep >= 0, "socket/epoll");
	ev.data.fd = fd;
	CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0, "epoll_ctl before connect");
	CHECK(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 || errno == EINPROGRESS, "connect");
	CHECK(epoll_wait(ep, out, 4, 5000) >= 1 && (out[0].events & EPOLLOUT), "EPOLLOUT");
	t_write_all(fd, &c, 1);
	while (got < sizeof(buf)) {
		ssize_t r = read(fd, buf + got, sizeof(buf) - got);
		if (r < 0 && errno == EAGAIN) {
			CHECK(epoll_wait(ep, out, 4, 5000) >= 1, "the reply never woke epoll (%zu of 1000 read)", got);
			continue;
		}
		CHECK(r > 0, "read");
		got += (size_t)r;
	}
	t_verify(buf, sizeof(buf), (uint64_t)c, 0);
	t_expect(fd);
	close(ep);
	close(fd);
}

/*
 * Bug 4: SIOCOUTQ/SIOCOUTQNSD answer as TCP: never more than was sent,
 * and 0 once the peer's kernel holds the bytes (loopback TCP acknowledges
 * at once, read or not).
 */
static void outq_server(int lfd)
{
	int fd = accept(lfd, NULL, NULL);
	uint8_t buf[1000];
	char c;

	CHECK(fd >= 0, "accept");
	serve_rr_fd_open(fd, 1);
	usleep(400000);         /* the client looks at its queue meanwhile */
	t_read_all(fd, buf, sizeof(buf));
	t_verify(buf, sizeof(buf), 33, 0);
	c = 1;
	t_write_all(fd, &c, 1);
	CHECK(read(fd, &c, 1) == 0, "EOF");
	close(fd);
}

static void outq_client(int port)
{
	int fd = t_connect(port), v, nsd, zero_after = -1;
	uint8_t buf[1000];
	char c = 5;

	t_write_all(fd, &c, 1);
	t_read_all(fd, buf, sizeof(buf));       /* switched by now */
	t_expect(fd);
	t_fill(buf, sizeof(buf), 33, 0);
	t_write_all(fd, buf, sizeof(buf));
	for (int i = 0; i < 30; i++) {
		CHECK(ioctl(fd, SIOCOUTQ, &v) == 0 && ioctl(fd, SIOCOUTQNSD, &nsd) == 0, "ioctl");
		CHECK(v >= 0 && v <= 1000 && nsd >= 0 && nsd <= v,
		      "SIOCOUTQ %d, SIOCOUTQNSD %d after sending 1000 bytes", v, nsd);
		if (v == 0 && zero_after < 0)
			zero_after = i;
		usleep(10000);
	}
	CHECK(zero_after >= 0, "SIOCOUTQ never 0 while the peer holds the bytes");
	t_read_all(fd, &c, 1);
	CHECK(ioctl(fd, SIOCOUTQ, &v) == 0 && v == 0, "SIOCOUTQ %d after the peer read all", v);
	close(fd);
}

/*
 * Bug 5: another process of the same user scribbles on live claim slots
 * while connections are made.  Each connection must carry the right bytes
 * or end like a reset connection (EOF, ECONNRESET, EPIPE) — never hang
 * (receive timeouts on both ends), never deliver wrong bytes.
 */
static void fuzz_slots_serve(int lfd, int n)
{
	for (int i = 0; i < n; i++) {
		int fd = accept(lfd, NULL, NULL);
		uint8_t buf[1000];
		ssize_t r;
		char c;

		CHECK(fd >= 0, "accept");
		set_tv_ms(fd, SO_RCVTIMEO, 4000);
		r = read(fd, &c, 1);
		CHECK(r >= 0 || errno == ECONNRESET, "server read %d: hung or failed", i);
		if (r == 1) {
			t_fill(buf, sizeof(buf), (uint64_t)c, 0);
			if (send(fd, buf, sizeof(buf), MSG_NOSIGNAL) < 0)
				CHECK(errno == EPIPE || errno == ECONNRESET, "server send %d", i);
			r = read(fd, &c, 1);
			CHECK(r >= 0 || errno == ECONNRESET, "server wait %d: hung", i);
		}
		close(fd);
	}
}

static void fuzz_slots_solo(void)
{
	const char *dir = getenv("FASTLOOP_DIR");
	int lfd, port, st, fast = 0, reset = 0, n = 1000, rp[2];
	char path[512] = "", x;
	pid_t srv, fz;

	if (!t_expect_fast()) {
		printf("skip: needs the fast path on (handshake files)\n");
		exit(77);
	}
	CHECK(dir, "FASTLOOP_DIR");
	lfd = t_listen("127.0.0.1", &port);
	srv = fork();
	CHECK(srv >= 0, "fork");
	if (srv == 0) {
		fuzz_slots_serve(lfd, n);
		_exit(0);
	}
	handshake_file(dir, port, path, sizeof(path));
	CHECK(pipe(rp) == 0, "pipe");
	fz = fork();
	CHECK(fz >= 0, "fork");
	if (fz == 0) {
		uint64_t x = (uint64_t)getpid() * 0x9E3779B97F4A7C15ull;
		size_t size;
		uint8_t *m = map_rw(path, &size);
		CHECK(write(rp[1], "r", 1) == 1, "ready");
		for (long i = 0; i < 200000000; i++) {
			x ^= x << 13; x ^= x >> 7; x ^= x << 17;
			/* live claims only (a scribbled free slot just looks
			 * busy and is skipped): flip the state to another
			 * one, or scribble on a field */
			size_t off = 256 + (size_t)(x % 256) * 128;
			uint8_t st = m[off];
			if (st < 2 || st > 5)
				continue;
			if (i % 3)
				m[off + 8 + (x >> 8) % 120] = (uint8_t)(x >> 32);
			else
				m[off] = (uint8_t)(1 + (x >> 40) % 7);
			if (i % 64 == 0)
				sched_yield();
		}
		_exit(0);
	}
	CHECK(read(rp[0], &x, 1) == 1, "fuzzer ready");
	for (int i = 0; i < n; i++) {
		int fd = t_connect(port);
		uint8_t buf[1000];
		size_t got = 0;
		char c = (char)(i & 0x7f);
		set_tv_ms(fd, SO_RCVTIMEO, 4000);
		if (send(fd, &c, 1, MSG_NOSIGNAL) != 1) {
			CHECK(errno == EPIPE || errno == ECONNRESET, "client send %d", i);
			reset++;
			close(fd);
			continue;
		}
		while (got < sizeof(buf)) {
			ssize_t r = read(fd, buf + got, sizeof(buf) - got);
			if (r < 0 && errno == EINTR)
				continue;
			CHECK(r >= 0 || errno == ECONNRESET, "client read %d: hung or failed", i);
			if (r <= 0)
				break;
			t_verify(buf + got, (size_t)r, (uint64_t)c, got);
			got += (size_t)r;
		}
		reset += got < sizeof(buf);
		fast += t_raw_domain(fd) == AF_UNIX;
		close(fd);
	}
	kill(fz, SIGKILL);
	waitpid(fz, &st, 0);
	CHECK(waitpid(srv, &st, 0) == srv && WIFEXITED(st) && !WEXITSTATUS(st),
	      "server survived the fuzzing (status %x)", st);
	close(lfd);
	CHECK(reset < n, "every connection was reset");
	printf("fuzz-slots: %d of %d connections fast, %d reset, the rest right\n", fast, n, reset);
}

/* ------------------------------------------------ kill -9 at random */

/*
 * Each trial: a server and a client child on a listener of their own, one
 * of three kinds of traffic, and after a random delay SIGKILL to a random
 * one of the two.  The survivor must see the death as TCP shows it (EOF,
 * ECONNRESET, EPIPE; ECONNREFUSED on a connect) within 100 ms of the
 * kill() (less time the two spent waiting for a CPU), must not hang, must
 * have verified every byte it got before, and must map no segment once it
 * closed its sockets; no handshake file may outlive the trial.
 */
enum k9_kind { K9_STREAM, K9_PINGPONG, K9_SETUP };
enum k9_seen { K9_NONE, K9_EOF, K9_RESET, K9_PIPE, K9_REFUSED, K9_NOCONN, K9_BAD, K9_NSEEN };
enum k9_op { K9_OP_START, K9_OP_ACCEPT, K9_OP_CONNECT, K9_OP_READ, K9_OP_WRITE,
	     K9_OP_CLOSE, K9_OP_REREAD };

static const char *const k9_kinds[] = { "stream", "ping-pong", "setup" };
static const char *const k9_seens[] = { "nothing", "EOF", "ECONNRESET", "EPIPE",
					"ECONNREFUSED", "no-connection", "unexpected" };
static const char *const k9_ops[] = { "starting", "accept", "connect", "read", "write",
				      "close", "read after EOF" };

#define K9_BOUND_US 100000      /* detection, and close after it */
#define K9_HANG_MS 2000         /* a survivor silent this long hangs */
#define K9_MSG 64               /* ping-pong message */
#define K9_BUF (128 << 10)      /* stream: SO_SNDBUF, SO_RCVBUF (see k9_run) */

/* A survivor's word to the parent, written once over its pipe. */
struct k9_report {
	int32_t seen;           /* enum k9_seen */
	int32_t op;             /* the call that saw it */
	int32_t err;            /* that call's errno */
	int32_t maps_open;      /* fastloop segments mapped before the close */
	int32_t maps;           /* ... and after it */
	uint64_t t_seen;        /* CLOCK_MONOTONIC µs: that call returned */
	uint64_t t_done;        /* ... and the sockets were closed */
	uint64_t w_seen, w_done;        /* k9_cpu_wait() at those times */
	uint64_t units;         /* bytes / round trips / connections done */
};

/* Where each child is, in a page shared with the parent, so that a hung
 * survivor can be described: [0] server, [1] client. */
struct k9_where {
	volatile int op;
	volatile uint64_t units;
};
static struct k9_where *k9_where;

/* One child's state: its report pipe and the sockets it must close. */
struct k9_ctx {
	struct k9_where *w;
	int rep, sock, lfd;
};

/* The children of the running trial, killed before the parent fails so
 * that a hung one does not outlive the test. */
static pid_t k9_kids[2];

#define K9_CHECK(c, ...) do {                                               \
		if (!(c)) {                                                 \
			int e_ = errno;                                     \
			for (int k_ = 0; k_ < 2; k_++)                      \
				if (k9_kids[k_] > 0)                        \
					kill(k9_kids[k_], SIGKILL);         \
			errno = e_;                                         \
			FAIL(__VA_ARGS__);                                  \
		}                                                           \
	} while (0)

/* Segments of fastloop this process still maps (the memfd's name). */
static int k9_segments(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	int n = 0;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		n += strstr(line, "memfd:fastloop") != NULL;
	fclose(f);
	return n;
}

/*
 * How long (µs) process pid (0: this one) has waited for a CPU while
 * runnable, from the scheduler's statistics; 0 if the kernel keeps none.
 * A zombie still tells, until it is reaped.
 */
static uint64_t k9_cpu_wait(pid_t pid)
{
	char path[64];
	unsigned long long run, wait = 0;
	FILE *f;

	if (pid)
		snprintf(path, sizeof(path), "/proc/%d/schedstat", (int)pid);
	else
		snprintf(path, sizeof(path), "/proc/self/schedstat");
	if (!(f = fopen(path, "r")))
		return 0;
	if (fscanf(f, "%llu %llu", &run, &wait) != 2)
		wait = 0;
	fclose(f);
	return wait / 1000;
}

/* What a call's result says about the peer: K9_NONE if nothing. */
static int k9_classify(ssize_t r, int op, int e)
{
	if (r == 0 && op == K9_OP_READ)
		return K9_EOF;
	if (r >= 0)
		return K9_NONE;
	if (e == ECONNRESET)
		return K9_RESET;
	if (e == EPIPE && op == K9_OP_WRITE)
		return K9_PIPE;
	if (e == ECONNREFUSED && op == K9_OP_CONNECT)
		return K9_REFUSED;
	return K9_BAD;
}

/*
 * The peer is gone (or a call failed some other way): read once more if
 * it was a read (a dead connection must stay readable at EOF, not block),
 * close everything, look for segments left, report and exit.
 */
static void k9_end(struct k9_ctx *k, int seen, int op, int err, uint64_t t)
	__attribute__((noreturn));
static void k9_end(struct k9_ctx *k, int seen, int op, int err, uint64_t t)
{
	struct k9_report rp = { .seen = seen, .op = op, .err = err, .t_seen = t,
				.w_seen = k9_cpu_wait(0), .units = k->w->units };
	char c;

	if (k->sock >= 0 && op == K9_OP_READ && (seen == K9_EOF || seen == K9_RESET)) {
		k->w->op = K9_OP_REREAD;
		ssize_t r = read(k->sock, &c, 1);
		if (r > 0 || (r < 0 && errno != ECONNRESET)) {
			rp.seen = K9_BAD;
			rp.op = K9_OP_REREAD;
			rp.err = r > 0 ? 0 : errno;
		}
	}
	k->w->op = K9_OP_CLOSE;
	rp.maps_open = k9_segments();
	if (k->sock >= 0)
		close(k->sock);
	if (k->lfd >= 0)
		close(k->lfd);
	rp.t_done = t_now_us();
	rp.w_done = k9_cpu_wait(0);
	rp.maps = k9_segments();
	CHECK(write(k->rep, &rp, sizeof(rp)) == sizeof(rp), "report");
	_exit(0);
}

/* A call returned r: go on if it moved data, end the child if not. */
static void k9_after(struct k9_ctx *k, ssize_t r, int op)
{
	int e = errno;
	uint64_t t = t_now_us();
	int seen = k9_classify(r, op, e);

	if (seen != K9_NONE)
		k9_end(k, seen, op, e, t);
}

static void k9_send(struct k9_ctx *k, const uint8_t *p, size_t n)
{
	while (n) {
		k->w->op = K9_OP_WRITE;
		ssize_t w = write(k->sock, p, n);
		k9_after(k, w, K9_OP_WRITE);
		if (w > 0) {
			p += w;
			n -= (size_t)w;
		}
	}
}

/* Receive n bytes of stream seed from pos on, each byte checked as it
 * comes: what arrives before the peer died must be right too. */
static void k9_recv(struct k9_ctx *k, uint8_t *p, size_t n, uint64_t seed, uint64_t pos)
{
	while (n) {
		k->w->op = K9_OP_READ;
		ssize_t r = read(k->sock, p, n);
		k9_after(k, r, K9_OP_READ);
		if (r > 0) {
			t_verify(p, (size_t)r, seed, pos);
			p += r;
			pos += (uint64_t)r;
			n -= (size_t)r;
		}
	}
}

/*
 * Accept one connection without blocking for ever: a client killed
 * before it connected leaves nothing to accept, and TCP gives a server
 * no way to notice.  The parent says so over ctl once the client is dead;
 * a last look at the listener then decides.
 */
static int k9_accept(struct k9_ctx *k, int ctl)
{
	bool last = false;

	for (;;) {
		struct pollfd p[2] = { { k->lfd, POLLIN, 0 }, { ctl, POLLIN, 0 } };
		int fd, n;

		k->w->op = K9_OP_ACCEPT;
		n = poll(p, last ? 1 : 2, last ? 0 : 3 * K9_HANG_MS);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || (n == 0 && !last))
			k9_end(k, K9_BAD, K9_OP_ACCEPT, n ? errno : ETIMEDOUT, t_now_us());
		if (n == 0)
			k9_end(k, K9_NOCONN, K9_OP_ACCEPT, 0, t_now_us());
		if (p[0].revents & POLLIN) {
			fd = accept4(k->lfd, NULL, NULL, 0);
			if (fd >= 0)
				return fd;
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				k9_end(k, K9_BAD, K9_OP_ACCEPT, errno, t_now_us());
			continue;
		}
		last = true;
	}
}

static void k9_ready(struct k9_ctx *k)
{
	CHECK(write(k->rep, "R", 1) == 1, "ready");
}

static void k9_server(int kind, int lfd, int ctl, int rep, uint64_t seed)
{
	static uint8_t buf[1 << 16];
	struct k9_ctx k = { &k9_where[0], rep, -1, lfd };
	uint64_t pos = 0;

	t_role = "kill9-server";
	if (kind == K9_SETUP)
		k9_ready(&k);
	for (;;) {
		k.sock = k9_accept(&k, ctl);
		if (kind != K9_SETUP)
			break;
		/* a request from the client's stream, a reply from ours */
		k9_recv(&k, buf, 8, seed, pos);
		t_fill(buf, 8, ~seed, pos);
		k9_send(&k, buf, 8);
		k.w->op = K9_OP_CLOSE;
		close(k.sock);
		k.sock = -1;
		pos += 8;
		k.w->units++;
	}
	k9_ready(&k);
	for (;;) {
		if (kind == K9_STREAM) {
			k9_recv(&k, buf, sizeof(buf), seed, pos);
			pos += sizeof(buf);
			k.w->units = pos;
		} else {
			k9_recv(&k, buf, K9_MSG, seed, pos);
			k9_send(&k, buf, K9_MSG);
			pos += K9_MSG;
			k.w->units++;
		}
	}
}

static void k9_client(int kind, int port, int rep, uint64_t seed)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	static uint8_t buf[1 << 16];
	struct k9_ctx k = { &k9_where[1], rep, -1, -1 };
	uint64_t pos = 0;
	int r;

	t_role = "kill9-client";
	if (kind == K9_SETUP)
		k9_ready(&k);
	for (;;) {
		k.w->op = K9_OP_CONNECT;
		k.sock = socket(AF_INET, SOCK_STREAM, 0);
		CHECK(k.sock >= 0, "socket");
		if (kind == K9_STREAM)
			CHECK(setsockopt(k.sock, SOL_SOCKET, SO_SNDBUF, &(int){ K9_BUF },
					 sizeof(int)) == 0, "SO_SNDBUF");
		r = connect(k.sock, (struct sockaddr *)&a, sizeof(a));
		k9_after(&k, r, K9_OP_CONNECT);
		if (kind != K9_SETUP)
			break;
		t_fill(buf, 8, seed, pos);
		k9_send(&k, buf, 8);
		k9_recv(&k, buf, 8, ~seed, pos);
		k.w->op = K9_OP_CLOSE;
		close(k.sock);
		k.sock = -1;
		pos += 8;
		k.w->units++;
	}
	k9_ready(&k);
	for (;;) {
		if (kind == K9_STREAM) {
			t_fill(buf, sizeof(buf), seed, pos);
			k9_send(&k, buf, sizeof(buf));
			pos += sizeof(buf);
			k.w->units = pos;
		} else {
			uint8_t back[K9_MSG];
			t_fill(buf, K9_MSG, seed, pos);
			k9_send(&k, buf, K9_MSG);
			k9_recv(&k, back, K9_MSG, seed, pos);
			pos += K9_MSG;
			k.w->units++;
		}
	}
}

/* A 64-bit xorshift*: the trials' choices, repeatable from the seed. */
static uint64_t k9_rand(uint64_t *x)
{
	*x ^= *x >> 12;
	*x ^= *x << 25;
	*x ^= *x >> 27;
	return *x * 0x2545F4914F6CDD1Dull;
}

static uint64_t k9_env(const char *name, uint64_t dflt, uint64_t lo, uint64_t hi)
{
	const char *s = getenv(name);
	char *end;
	unsigned long long v;

	if (!s || !*s)
		return dflt;
	errno = 0;
	v = strtoull(s, &end, 0);
	CHECK(!errno && !*end && v >= lo && v <= hi, "%s=%s: want %llu..%llu", name, s,
	      (unsigned long long)lo, (unsigned long long)hi);
	return v;
}

/* Handshake files in the registry for port; -1 without a registry. */
static int k9_port_files(int port)
{
	const char *dir = getenv("FASTLOOP_DIR");
	char prefix[32];
	struct dirent *de;
	DIR *d;
	int n = 0;

	if (!dir || !(d = opendir(dir)))
		return -1;
	snprintf(prefix, sizeof(prefix), "l-%d-", port);
	while ((de = readdir(d)))
		n += !strncmp(de->d_name, prefix, strlen(prefix));
	closedir(d);
	return n;
}

/* Wait up to ms for fd to be readable; false on timeout. */
static bool k9_wait(int fd, int ms)
{
	struct pollfd p = { fd, POLLIN, 0 };
	uint64_t end = t_now_us() + (uint64_t)ms * 1000;
	int n;

	do
		n = poll(&p, 1, (int)((end - t_now_us()) / 1000) + 1);
	while (n < 0 && errno == EINTR && t_now_us() < end);
	return n > 0;
}

struct k9_stats {
	int kills[3][2];                /* [kind][0 server, 1 client killed] */
	int seen[K9_NSEEN];
	uint64_t *lat;                  /* detection latencies, µs */
	int nlat;
	uint64_t charged_max;           /* longest, less waits for a CPU */
	int unmapped;                   /* survivors that had a segment */
	int swept;                      /* killed servers' files swept */
};

struct k9_trial {
	int i, kind, victim;            /* victim: 0 server, 1 client */
	unsigned delay_us;
	uint64_t seed;                  /* of the bytes */
	char what[80];                  /* for messages */
};

#define K9_WHO(v) ((v) ? "client" : "server")

/* Both children say they are under way; a child that ends first failed. */
static void k9_wait_ready(const struct k9_trial *t, int rep, int side)
{
	char c = 0;

	K9_CHECK(k9_wait(rep, K9_HANG_MS) && read(rep, &c, 1) == 1 && c == 'R',
		 "%s: the %s did not get going (%s)", t->what, K9_WHO(side),
		 k9_ops[k9_where[side].op]);
}

/* Is what the survivor saw a way TCP shows a dead peer, at that call? */
static bool k9_allowed(const struct k9_trial *t, const struct k9_report *r)
{
	switch (r->seen) {
	case K9_EOF:
		return r->op == K9_OP_READ;
	case K9_RESET:
		return r->op == K9_OP_READ || r->op == K9_OP_WRITE ||
		       (r->op == K9_OP_CONNECT && t->kind == K9_SETUP);
	case K9_PIPE:
		return r->op == K9_OP_WRITE;
	case K9_REFUSED:
		return r->op == K9_OP_CONNECT && t->kind == K9_SETUP;
	case K9_NOCONN:
		/* a server waiting for the next connection of a dead client */
		return r->op == K9_OP_ACCEPT && t->kind == K9_SETUP && t->victim == 1;
	default:
		return false;
	}
}

/*
 * A killed server leaves its listener's handshake file (nobody can remove
 * it in a dead process; its lock is gone, so it is stale): the next
 * client to look for that port must be refused at once and sweep it.  A
 * server that survived closed its listener: no file at all.
 */
static void k9_check_files(const struct k9_trial *t, int port, struct k9_stats *s)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int n = k9_port_files(port), fd, r;
	uint64_t t0;

	if (n < 0)
		return;
	CHECK(n == 0 || (n == 1 && t->victim == 0), "%s: %d handshake file(s) left for port %d",
	      t->what, n, port);
	if (t->victim != 0)
		return;
	fd = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(fd >= 0, "socket");
	t0 = t_now_us();
	r = connect(fd, (struct sockaddr *)&a, sizeof(a));
	CHECK(r < 0 && errno == ECONNREFUSED && t_now_us() - t0 < K9_BOUND_US,
	      "%s: connect to the dead listener's port %d: %d after %llu us, want ECONNREFUSED",
	      t->what, port, r, (unsigned long long)(t_now_us() - t0));
	close(fd);
	CHECK(k9_port_files(port) == 0, "%s: the dead listener's handshake file (port %d) "
	      "was not swept", t->what, port);
	s->swept += n;
}

static void k9_run(const struct k9_trial *t, struct k9_stats *s)
{
	int rs[2], cs[2], ctl[2], lfd, port, st, fl, rep;
	const char *what = t->what;
	struct k9_report r;
	char c;
	uint64_t t_kill, t_dead, w_surv, w_vict;
	siginfo_t si = { 0 };
	pid_t srv, cli, victim, surv;
	ssize_t n;

	lfd = t_listen("127.0.0.1", &port);
	/* the server's last look at the listener must not block */
	fl = fcntl(lfd, F_GETFL);
	CHECK(fl >= 0 && fcntl(lfd, F_SETFL, fl | O_NONBLOCK) == 0, "listener O_NONBLOCK");
	/* a stream's reader sees EOF only after verifying all that was in
	 * flight: autotuned TCP buffers hold ~10 MiB, tens of ms of the
	 * test's own checking; buffers about a ring's size keep the bound
	 * about noticing the death (the accepted socket inherits this) */
	if (t->kind == K9_STREAM)
		CHECK(setsockopt(lfd, SOL_SOCKET, SO_RCVBUF, &(int){ K9_BUF }, sizeof(int)) == 0,
		      "SO_RCVBUF");
	CHECK(pipe(rs) == 0 && pipe(ctl) == 0, "pipe");
	fflush(stdout);
	srv = fork();
	CHECK(srv >= 0, "fork");
	if (srv == 0) {
		close(rs[0]);
		close(ctl[1]);
		k9_server(t->kind, lfd, ctl[0], rs[1], t->seed);
	}
	/* only the server holds the listener: its death closes it, and a
	 * connection nobody accepted is reset, as TCP does */
	close(lfd);
	close(rs[1]);
	close(ctl[0]);
	CHECK(pipe(cs) == 0, "pipe");
	cli = fork();
	CHECK(cli >= 0, "fork");
	if (cli == 0) {
		close(cs[0]);
		close(rs[0]);
		close(ctl[1]);
		k9_client(t->kind, port, cs[1], t->seed);
	}
	close(cs[1]);
	k9_kids[0] = srv;
	k9_kids[1] = cli;
	k9_wait_ready(t, rs[0], 0);
	k9_wait_ready(t, cs[0], 1);

	usleep(t->delay_us);
	victim = t->victim ? cli : srv;
	surv = t->victim ? srv : cli;
	rep = t->victim ? rs[0] : cs[0];
	w_surv = k9_cpu_wait(surv);
	w_vict = k9_cpu_wait(victim);
	t_kill = t_now_us();
	K9_CHECK(kill(victim, SIGKILL) == 0, "kill");
	/* not reaped yet: the zombie says how long it waited to die */
	K9_CHECK(waitid(P_PID, (id_t)victim, &si, WEXITED | WNOWAIT) == 0, "waitid");
	K9_CHECK(si.si_code == CLD_KILLED && si.si_status == SIGKILL,
		 "%s: the %s was gone before the kill (%s %d; a failure of either "
		 "child is told above)", what, K9_WHO(t->victim),
		 si.si_code == CLD_EXITED ? "exit status" : "signal", si.si_status);
	t_dead = t_now_us();
	w_vict = k9_cpu_wait(victim) - w_vict;
	K9_CHECK(waitpid(victim, &st, 0) == victim, "reap");
	k9_kids[t->victim] = 0;
	/* a server waiting for the next connection may stop now (one that
	 * already saw the death and left cannot be told: EPIPE) */
	if (t->victim == 1 && t->kind == K9_SETUP && write(ctl[1], "d", 1) != 1)
		K9_CHECK(errno == EPIPE, "%s: telling the server", what);

	/* the survivor's report: it must come, and say the right thing */
	K9_CHECK(k9_wait(rep, K9_HANG_MS), "%s: the survivor hung in %s after %llu units",
		 what, k9_ops[k9_where[!t->victim].op],
		 (unsigned long long)k9_where[!t->victim].units);
	n = read(rep, &r, sizeof(r));
	K9_CHECK(n == sizeof(r), "%s: the survivor failed (see above)", what);
	errno = r.err;
	K9_CHECK(k9_allowed(t, &r), "%s: the survivor saw %s in %s after %llu units", what,
		 k9_seens[r.seen], k9_ops[r.op], (unsigned long long)r.units);
	errno = 0;
	if (r.seen != K9_NOCONN) {
		uint64_t lat = r.t_seen - t_kill, cpu = w_vict + (r.w_seen - w_surv);

		K9_CHECK(r.t_seen >= t_kill,
			 "%s: the survivor saw %s in %s %llu us before the kill", what,
			 k9_seens[r.seen], k9_ops[r.op], (unsigned long long)(t_kill - r.t_seen));
		/*
		 * The bound is on the library, not on a busy machine: time
		 * the victim waited for a CPU to die in, and the survivor to
		 * run in, is not charged (the kernel alone, no library, was
		 * seen at 160 ms from kill() to a reset under load).  A
		 * survivor asleep in a call that does not wake is charged.
		 */
		K9_CHECK(lat <= K9_BOUND_US + cpu,
			 "%s: the survivor saw %s in %s only %llu us after the kill (the victim "
			 "was dead after %llu us; CPU waits %llu us, the victim's %llu)", what,
			 k9_seens[r.seen], k9_ops[r.op], (unsigned long long)lat,
			 (unsigned long long)(t_dead - t_kill), (unsigned long long)cpu,
			 (unsigned long long)w_vict);
		s->lat[s->nlat++] = lat;
		if (lat > cpu && lat - cpu > s->charged_max)
			s->charged_max = lat - cpu;
	}
	K9_CHECK(r.t_done - r.t_seen <= K9_BOUND_US + (r.w_done - r.w_seen),
		 "%s: the survivor's close took %llu us", what,
		 (unsigned long long)(r.t_done - r.t_seen));
	K9_CHECK(r.maps == 0, "%s: %d segment mapping(s) left in the survivor after its close",
		 what, r.maps);
	s->unmapped += r.maps_open > 0;

	/* and then exit: its pipe closes */
	K9_CHECK(k9_wait(rep, K9_HANG_MS) && read(rep, &c, 1) == 0,
		 "%s: the survivor did not exit after its report", what);
	K9_CHECK(waitpid(surv, &st, 0) == surv && WIFEXITED(st) && WEXITSTATUS(st) == 0,
		 "%s: survivor status %x", what, st);
	k9_kids[0] = k9_kids[1] = 0;
	close(rs[0]);
	close(cs[0]);
	close(ctl[1]);
	k9_check_files(t, port, s);
	s->kills[t->kind][t->victim]++;
	s->seen[r.seen]++;
}

static int k9_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/*
 * The issue's kill -9 test: FLP_KILL9_TRIALS trials (200), kinds in turn
 * (a stream, a ping-pong, connection setups), victim and moment (0-30 ms
 * in) from FLP_KILL9_SEED (printed, so a failure can be run again).
 */
static void kill9_solo(void)
{
	struct k9_stats s = { 0 };
	uint64_t x, seed;
	int trials, fds0, fds1;

	/* xorshift needs a seed other than 0 */
	seed = k9_env("FLP_KILL9_SEED", (t_now_us() ^ (uint64_t)getpid() << 32) | 1, 1,
		      UINT64_MAX);
	trials = (int)k9_env("FLP_KILL9_TRIALS", 200, 1, 100000);
	printf("kill9: %d trials, FLP_KILL9_SEED=%llu\n", trials, (unsigned long long)seed);
	/* writes to a dead peer must fail with EPIPE, not kill the writer;
	 * the children inherit this */
	signal(SIGPIPE, SIG_IGN);
	k9_where = mmap(NULL, 2 * sizeof(*k9_where), PROT_READ | PROT_WRITE,
			MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(k9_where != MAP_FAILED, "mmap");
	s.lat = calloc((size_t)trials, sizeof(*s.lat));
	CHECK(s.lat, "calloc");
	fds0 = t_count_fds();
	x = seed;
	for (int i = 0; i < trials; i++) {
		struct k9_trial t = { .i = i, .kind = i % 3 };
		t.victim = (int)(k9_rand(&x) >> 63);
		t.delay_us = (unsigned)(k9_rand(&x) % 30000);
		t.seed = k9_rand(&x);
		snprintf(t.what, sizeof(t.what), "trial %d (%s, %s killed %u us in)", i,
			 k9_kinds[t.kind], K9_WHO(t.victim), t.delay_us);
		memset(k9_where, 0, 2 * sizeof(*k9_where));
		k9_run(&t, &s);
	}
	fds1 = t_count_fds();
	CHECK(fds1 <= fds0, "%d fds open after the trials, %d before", fds1, fds0);
	CHECK(k9_segments() == 0, "a segment mapped in the parent");
	qsort(s.lat, (size_t)s.nlat, sizeof(*s.lat), k9_cmp);
	printf("kill9: %d trials; killed server/client: stream %d/%d, ping-pong %d/%d, "
	       "setup %d/%d; survivor saw EOF %d, ECONNRESET %d, EPIPE %d, ECONNREFUSED %d, "
	       "no connection %d; detection median %llu us, max %llu us (%llu us less waits "
	       "for a CPU); %d survivors unmapped a segment, %d stale files swept\n",
	       trials, s.kills[0][0], s.kills[0][1], s.kills[1][0], s.kills[1][1],
	       s.kills[2][0], s.kills[2][1], s.seen[K9_EOF], s.seen[K9_RESET],
	       s.seen[K9_PIPE], s.seen[K9_REFUSED], s.seen[K9_NOCONN],
	       (unsigned long long)(s.nlat ? s.lat[s.nlat / 2] : 0),
	       (unsigned long long)(s.nlat ? s.lat[s.nlat - 1] : 0),
	       (unsigned long long)s.charged_max, s.unmapped, s.swept);
	free(s.lat);
}

/* --------------------------------------------- writers sharing a socket */

/*
 * Two forked processes and two threads of each write records to one
 * accepted socket at once (the rings' writers' lock, and writes up to
 * 4 KiB are whole); the client checks every record: intact (its bytes
 * are the seeded stream of its writer and sequence number), each
 * writer's in order, none missing.  Records are 64 B to 4 KiB, written
 * whole on the fast path (the rings keep such writes whole, as a Unix
 * socket does); plain TCP makes no such promise (measured: 2995 of 4080
 * bytes written while another writer went on), so in the TCP setups the
 * writers take turns (a process-shared mutex) and the check is of the
 * bytes and their order only.
 */
#define SW_WRITERS 4            /* 2 processes x 2 threads */
#define SW_RECORDS 3000

struct sw_rec {
	uint32_t writer, seq, len, pad;
};

static int sw_fd;
static pthread_mutex_t *sw_mu;      /* TCP setups: one writer at a time */

static void *sw_write(void *arg)
{
	uint32_t w = (uint32_t)(uintptr_t)arg;
	static __thread uint8_t buf[4096];

	for (uint32_t i = 0; i < SW_RECORDS; i++) {
		struct sw_rec *h = (struct sw_rec *)buf;
		uint32_t len = 64 + (uint32_t)((i * 2654435761u + w * 40503u) % (4096 - 64 + 1));
		h->writer = w;
		h->seq = i;
		h->len = len;
		h->pad = 0;
		t_fill(buf + sizeof(*h), len - sizeof(*h), (uint64_t)w << 32 | i, 0);
		if (sw_mu) {
			pthread_mutex_lock(sw_mu);
			t_write_all(sw_fd, buf, len);
			pthread_mutex_unlock(sw_mu);
			continue;
		}
		/* one write() per record: a short one would split it */
		ssize_t r = write(sw_fd, buf, len);
		CHECK(r == (ssize_t)len, "writer %u record %u: wrote %zd of %u", w, i, r, len);
	}
	return NULL;
}

static void sw_server(int lfd)
{
	int fd = accept(lfd, NULL, NULL), st;
	pid_t kid[2];

	CHECK(fd >= 0, "accept");
	sw_fd = fd;
	if (!t_expect_fast()) {
		pthread_mutexattr_t a;
		sw_mu = mmap(NULL, sizeof(*sw_mu), PROT_READ | PROT_WRITE,
			     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		CHECK(sw_mu != MAP_FAILED, "mmap");
		pthread_mutexattr_init(&a);
		pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
		pthread_mutex_init(sw_mu, &a);
	}
	for (int p = 0; p < 2; p++) {
		kid[p] = fork();
		CHECK(kid[p] >= 0, "fork");
		if (kid[p] == 0) {
			pthread_t th;
			CHECK(pthread_create(&th, NULL, sw_write, (void *)(uintptr_t)(2 * p + 1)) == 0,
			      "thread");
			sw_write((void *)(uintptr_t)(2 * p));
			pthread_join(th, NULL);
			_exit(0);
		}
	}
	for (int p = 0; p < 2; p++)
		CHECK(waitpid(kid[p], &st, 0) == kid[p] && WIFEXITED(st) && WEXITSTATUS(st) == 0,
		      "writer process %d failed (status %x)", p, st);
	t_expect(fd);
	close(fd);              /* the last reference: the client reads EOF */
}

static void sw_client(int port)
{
	int fd = t_connect(port);
	uint32_t next[SW_WRITERS] = { 0 };
	static uint8_t buf[4096];
	char c;

	for (uint32_t n = 0; n < SW_WRITERS * SW_RECORDS; n++) {
		struct sw_rec *h = (struct sw_rec *)buf;
		t_read_all(fd, buf, sizeof(*h));
		CHECK(h->writer < SW_WRITERS && h->len >= 64 && h->len <= 4096,
		      "record %u: bad header (writer %u len %u): records interleaved", n,
		      h->writer, h->len);
		CHECK(h->seq == next[h->writer], "writer %u: record %u after %u", h->writer,
		      h->seq, next[h->writer]);
		t_read_all(fd, buf + sizeof(*h), h->len - sizeof(*h));
		t_verify(buf + sizeof(*h), h->len - sizeof(*h), (uint64_t)h->writer << 32 | h->seq, 0);
		next[h->writer]++;
	}
	CHECK(read(fd, &c, 1) == 0, "EOF after every record");
	t_expect(fd);
	close(fd);
}

/* ------------------------------------------- a client raises its fd limit */

/*
 * Servers and clients raise their soft fd limit after start (nginx's
 * worker_rlimit_nofile, redis' maxclients).  The library sizes its fd
 * table when it loads: a connection on an fd above the soft limit it saw
 * must still work — fast, or plain TCP — never broken (it was: the claim
 * was made, the entry silently not kept, the first read gave EOF).  The
 * client re-executes itself with a soft limit of 1024, raises it, opens
 * fds up to past 1024, then connects.
 */
static void rlimit_client(int port)
{
	struct rlimit rl;
	char num[16];
	int hold[1200], n = 0;

	CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0, "getrlimit");
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < 2048) {
		printf("skip: hard fd limit %lu < 2048\n", (unsigned long)rl.rlim_max);
		exit(77);
	}
	if (!getenv("FLP_RLIMIT_STAGE")) {
		rl.rlim_cur = 1024;
		CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0, "setrlimit 1024");
		setenv("FLP_RLIMIT_STAGE", "1", 1);
		snprintf(num, sizeof(num), "%d", port);
		execl(self_exe, self_exe, "rlimit", "client", num, (char *)NULL);
		FAIL("exec");
	}
	rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > 4096 ? 4096 : rl.rlim_max;
	CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0, "setrlimit up");
	while (n < 1200) {
		int d = dup(0);
		CHECK(d >= 0, "dup");
		hold[n++] = d;
		if (d > 1100)
			break;
	}
	client_rr(port, 50);
	while (n)
		close(hold[--n]);
}

/* ------------------------------- late switch: records in flight both ways */

/*
 * A server may adopt a connection late: after FASTLOOP_SWITCH_AFTER data
 * calls that moved bytes on it (0: in accept()).  Until then both
 * directions are plain TCP, and at the switch each side may have bytes of
 * the other's still unread in its TCP socket.  These cases make the switch
 * fall in the middle of a conversation and check every byte both ways.
 *
 * Bytes travel as records: a header {magic, seq, len, sum} and len bytes
 * of payload, t_byte(stream seed, payload position) with position counted
 * across the direction's records, sum an FNV-1a of the payload.  The sizes
 * are a function of (seed, direction, index), so the reader checks the
 * header's every field, every payload byte, the sum, and at EOF the count.
 * The seed is the listener's port (FLP_SEED overrides it): it differs from
 * run to run and both roles know it.
 */
#define LS_MAGIC 0x4c53726bu            /* "krSL" */
#define LS_MAX (256u << 10)             /* largest payload */
#define LS_RBUF (64u << 10)             /* largest read */
#define LS_WAIT_MS 10000                /* any single wait */
#define LS_BOUND_S 60                   /* a role, at most */

struct ls_hdr { uint32_t magic, seq, len, sum; };

/* one direction's records */
struct ls_dir {
	uint64_t seed;
	int dir;                        /* 0 client -> server, 1 back */
	uint32_t init;                  /* the first init records are <= 64 KiB */
	uint32_t n;                     /* records in all */
};

static int ls_k(void)
{
	const char *e = getenv("FASTLOOP_SWITCH_AFTER");
	return e && *e ? atoi(e) : 8;
}

static uint32_t ls_rounds(void)
{
	int k = ls_k();
	return 4u * (uint32_t)(k > 0 ? k : 0) + 20;
}

static uint64_t ls_mix(uint64_t x)
{
	x += 0x9E3779B97F4A7C15ull;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
	return x ^ (x >> 31);
}

/* Payload size of record j: 1..64 KiB for the first ones, then 1..256 KiB
 * (a quarter uniform, the rest log-uniform: small and large both). */
static uint32_t ls_size(const struct ls_dir *d, uint32_t j)
{
	uint64_t h = ls_mix(ls_mix(d->seed) + ((uint64_t)d->dir << 40) + j);
	uint32_t lo = (uint32_t)h;

	if (j < d->init)
		return 1 + lo % (64u << 10);
	if ((h >> 40) % 4 == 0)
		return 1 + lo % LS_MAX;
	return 1 + lo % (1u << ((h >> 32) % 19));        /* up to 2^18 = LS_MAX */
}

static uint64_t ls_total(const struct ls_dir *d)
{
	uint64_t t = 0;

	for (uint32_t j = 0; j < d->n; j++)
		t += sizeof(struct ls_hdr) + ls_size(d, j);
	return t;
}

static uint64_t ls_pseed(const struct ls_dir *d)
{
	return d->seed * 2 + (uint64_t)d->dir + 0x1000;
}

static uint32_t ls_fnv(uint32_t h, uint8_t b)
{
	return (h ^ b) * 16777619u;
}

/* The writer's side of a direction: the record being written. */
struct ls_out {
	struct ls_dir d;
	uint32_t sent;                  /* records written whole */
	uint8_t *buf;
	size_t len, off;                /* of the current record; len 0: none built */
	uint64_t pos;                   /* payload position of the next record */
};

static void ls_out_init(struct ls_out *o, const struct ls_dir *d)
{
	memset(o, 0, sizeof(*o));
	o->d = *d;
	o->buf = malloc(sizeof(struct ls_hdr) + LS_MAX);
	CHECK(o->buf, "malloc");
}

static void ls_out_build(struct ls_out *o)
{
	struct ls_hdr h = { LS_MAGIC, o->sent, ls_size(&o->d, o->sent), 2166136261u };
	uint8_t *p = o->buf + sizeof(h);

	if (o->len)
		return;
	t_fill(p, h.len, ls_pseed(&o->d), o->pos);
	for (uint32_t i = 0; i < h.len; i++)
		h.sum = ls_fnv(h.sum, p[i]);
	memcpy(o->buf, &h, sizeof(h));
	o->len = sizeof(h) + h.len;
	o->off = 0;
	o->pos += h.len;
}

/* w bytes of the current record went out; true when it is complete */
static bool ls_out_done(struct ls_out *o, size_t w)
{
	CHECK(w <= o->len - o->off, "wrote %zu of %zu", w, o->len - o->off);
	o->off += w;
	if (o->off < o->len)
		return false;
	o->sent++;
	o->len = 0;
	return true;
}

/* The reader's side: parses the peer's stream and checks every byte. */
struct ls_in {
	struct ls_dir d;
	const char *what;
	uint32_t got;                   /* records read whole */
	struct ls_hdr h;
	size_t have;                    /* header bytes so far */
	uint32_t left, sum;             /* payload still to come; its sum so far */
	uint64_t pos, bytes;
};

static void ls_in_init(struct ls_in *in, const struct ls_dir *d, const char *what)
{
	memset(in, 0, sizeof(*in));
	in->d = *d;
	in->what = what;
}

static void ls_in_feed(struct ls_in *in, const uint8_t *p, size_t n)
{
	uint64_t ps = ls_pseed(&in->d);

	in->bytes += n;
	while (n) {
		if (in->have < sizeof(in->h)) {
			size_t c = sizeof(in->h) - in->have;
			if (c > n)
				c = n;
			memcpy((uint8_t *)&in->h + in->have, p, c);
			in->have += c;
			p += c;
			n -= c;
			if (in->have < sizeof(in->h))
				break;
			CHECK(in->got < in->d.n, "%s: bytes after the last record (%u) (seed %llu)",
			      in->what, in->d.n, (unsigned long long)in->d.seed);
			CHECK(in->h.magic == LS_MAGIC && in->h.seq == in->got &&
			      in->h.len == ls_size(&in->d, in->got),
			      "%s: record %u: header {%08x, seq %u, len %u}, want {%08x, %u, %u} "
			      "(stream byte %llu, seed %llu)", in->what, in->got, in->h.magic,
			      in->h.seq, in->h.len, LS_MAGIC, in->got, ls_size(&in->d, in->got),
			      (unsigned long long)(in->bytes - n - sizeof(in->h)),
			      (unsigned long long)in->d.seed);
			in->left = in->h.len;
			in->sum = 2166136261u;
			continue;
		}
		size_t c = n < in->left ? n : in->left;
		for (size_t i = 0; i < c; i++) {
			uint8_t want = t_byte(ps, in->pos + i);
			if (p[i] != want)
				FAIL("%s: record %u (len %u) payload byte %u: got %02x want %02x "
				     "(payload position %llu, seed %llu)", in->what, in->got, in->h.len,
				     in->h.len - in->left + (uint32_t)i, p[i], want,
				     (unsigned long long)(in->pos + i), (unsigned long long)in->d.seed);
			in->sum = ls_fnv(in->sum, p[i]);
		}
		in->pos += c;
		in->left -= (uint32_t)c;
		p += c;
		n -= c;
		if (in->left == 0) {
			CHECK(in->sum == in->h.sum, "%s: record %u: checksum %08x, header says %08x",
			      in->what, in->got, in->sum, in->h.sum);
			in->got++;
			in->have = 0;
		}
	}
}

static void ls_in_eof(struct ls_in *in)
{
	CHECK(in->got == in->d.n && in->have == 0,
	      "%s: EOF after %u of %u records (+%zu header bytes, %u payload bytes missing; seed %llu)",
	      in->what, in->got, in->d.n, in->have, in->have == sizeof(in->h) ? in->left : 0,
	      (unsigned long long)in->d.seed);
	CHECK(in->bytes == ls_total(&in->d), "%s: %llu bytes in all, want %llu", in->what,
	      (unsigned long long)in->bytes, (unsigned long long)ls_total(&in->d));
}

/* Read sizes: log-uniform 1..64 KiB, so the switch falls anywhere. */
static size_t ls_chunk(uint64_t *rng)
{
	uint64_t h = ls_mix((*rng)++);
	return 1 + (size_t)((uint32_t)h % (1u << ((h >> 32) % 17)));
}

static void ls_on_alarm(int sig)
{
	static const char m[] = "FAIL: a role exceeded its time bound\n";
	(void)sig;
	if (write(2, m, sizeof(m) - 1) < 0) {
		/* nothing more to say */
	}
	_exit(1);
}

/* Every role: a time bound, and a write to a closed peer fails (EPIPE,
 * reported) rather than killing the role with SIGPIPE. */
static void ls_bound(void)
{
	signal(SIGPIPE, SIG_IGN);
	signal(SIGALRM, ls_on_alarm);
	alarm(LS_BOUND_S);
}

/* The seed of sizes and bytes: the port, or FLP_SEED (to replay a failure:
 * the messages name the seed). */
static uint64_t ls_seed(int port)
{
	const char *e = getenv("FLP_SEED");
	return e && *e ? strtoull(e, NULL, 0) : (uint64_t)port;
}

/* Both of fd's waits bounded to LS_WAIT_MS, as a blocking role's are. */
static void ls_timeouts(int fd)
{
	set_tv_ms(fd, SO_RCVTIMEO, LS_WAIT_MS);
	set_tv_ms(fd, SO_SNDTIMEO, LS_WAIT_MS);
}

/* A blocking server role's connection: bounded in time, its waits too. */
static int ls_accept(int lfd)
{
	int fd;

	ls_bound();
	fd = accept(lfd, NULL, NULL);
	CHECK(fd >= 0, "accept");
	ls_timeouts(fd);
	return fd;
}

static int ls_port_of(int lfd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	CHECK(getsockname(lfd, (struct sockaddr *)&ss, &sl) == 0, "getsockname");
	return ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
					     : ((struct sockaddr_in6 *)&ss)->sin6_port);
}

/*
 * late-switch*: the server writes 2 records (<= 64 KiB) and the client 3
 * before either reads; then R = 4K+20 rounds of ping-pong: the client
 * sends a record once it has the server's first two and the answers to
 * its earlier ones, the server answers each client record after the
 * first three.  The client then has sent 3+R records, the server 2+R;
 * each shuts its sending side after its last and reads to EOF.  Blocking,
 * both write unread bytes only at the start (3 x 64 KiB one way, 2 the
 * other: any buffer that holds what loopback TCP holds takes them); after
 * that one record is in flight at a time, and a large one blocks its
 * writer until the reader makes room.  The non-blocking variants read
 * whatever comes while they write (epoll-et: every call until EAGAIN, and
 * a wait only for an edge the kernel would give: EPOLLIN after a read's
 * EAGAIN, EPOLLOUT after a write's).  Reads are of random sizes, so the
 * K-th call of a late switch falls anywhere in a record.
 */
enum ls_mode { LS_BLOCK, LS_EPOLL_LT, LS_EPOLL_ET, LS_POLL };

struct ls_side {
	int fd, ep;
	enum ls_mode mode;
	struct ls_out out;
	struct ls_in in;
	bool shut, eof;
	uint32_t reg;                   /* epoll LT: events registered */
	uint64_t rng;
	unsigned long empty;            /* readiness without a byte to move */
	struct { char op; int r; uint32_t ev; } tr[12];  /* the last calls, for a failure */
	unsigned ntr;
};

/* op: r read, w write (r: bytes or -errno), e a wait (r: its result, ev: events) */
static void ls_note(struct ls_side *s, char op, long r, uint32_t ev)
{
	unsigned i = s->ntr++ % (sizeof(s->tr) / sizeof(s->tr[0]));

	s->tr[i].op = op;
	s->tr[i].r = (int)r;
	s->tr[i].ev = ev;
}

static const uint64_t ls_tag = 0x1a7e5017c4ull;

/* Record j of a direction may go once the sender has read this many. */
static uint32_t ls_gate(int dir, uint32_t j)
{
	if (dir == 0)
		return j < 3 ? 0 : j - 1;
	return j < 2 ? 0 : j + 2;
}

static bool ls_sendable(const struct ls_side *s)
{
	return s->out.sent < s->out.d.n && s->in.got >= ls_gate(s->out.d.dir, s->out.sent);
}

/* One write call: 1 bytes moved, 0 EAGAIN, -1 nothing may be sent now. */
static int ls_try_write(struct ls_side *s)
{
	ssize_t w;

	if (!ls_sendable(s))
		return -1;
	ls_out_build(&s->out);
	do
		w = write(s->fd, s->out.buf + s->out.off, s->out.len - s->out.off);
	while (w < 0 && errno == EINTR);
	ls_note(s, 'w', w < 0 ? -errno : w, 0);
	if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		CHECK(s->mode != LS_BLOCK, "blocking write of record %u timed out (%d ms)",
		      s->out.sent, LS_WAIT_MS);
		return 0;
	}
	CHECK(w > 0, "write record %u at %zu of %zu: %zd", s->out.sent, s->out.off, s->out.len, w);
	if (ls_out_done(&s->out, (size_t)w) && s->out.sent == s->out.d.n) {
		CHECK(shutdown(s->fd, SHUT_WR) == 0, "shutdown(SHUT_WR) after the last record");
		s->shut = true;
	}
	return 1;
}

/* One read call: 1 bytes moved or EOF, 0 EAGAIN. */
static int ls_try_read(struct ls_side *s)
{
	static uint8_t buf[LS_RBUF];
	ssize_t r;

	do
		r = read(s->fd, buf, ls_chunk(&s->rng));
	while (r < 0 && errno == EINTR);
	ls_note(s, 'r', r < 0 ? -errno : r, 0);
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		CHECK(s->mode != LS_BLOCK, "blocking read timed out (%d ms) after %u records",
		      LS_WAIT_MS, s->in.got);
		return 0;
	}
	CHECK(r >= 0, "read after %u records", s->in.got);
	if (r == 0) {
		ls_in_eof(&s->in);
		s->eof = true;
	} else {
		ls_in_feed(&s->in, buf, (size_t)r);
	}
	return 1;
}

/* A wait ran out: say where both streams stood and what the socket says
 * now (a missed edge or wakeup shows as bytes readable or room to write). */
static void ls_stuck(const struct ls_side *s, const char *wait, int n, bool rd, bool wr)
	__attribute__((noreturn));
static void ls_stuck(const struct ls_side *s, const char *wait, int n, bool rd, bool wr)
{
	struct pollfd p = { .fd = s->fd, .events = POLLIN | POLLOUT };
	int unread = -1, pr = poll(&p, 1, 0);
	unsigned k = s->ntr > 12 ? s->ntr - 12 : 0;
	char tr[400];
	size_t l = 0;

	ioctl(s->fd, FIONREAD, &unread);
	for (tr[0] = 0; k < s->ntr && l < sizeof(tr) - 32; k++) {
		const typeof(s->tr[0]) *o = &s->tr[k % 12];
		l += (size_t)snprintf(tr + l, sizeof(tr) - l, o->op == 'e' ? " e%d/%x" : " %c%d",
				      o->op == 'e' ? o->r : o->op, o->op == 'e' ? (int)o->ev : o->r);
	}
	FAIL("%s: %d after %d ms, waiting to%s%s; sent %u of %u records (%zu of %zu of the "
	     "next), read %u of %u (%zu header bytes, %u payload left); now FIONREAD %d, "
	     "poll(0) %d revents %x; last calls (r/w: bytes or -errno, e: n/events):%s",
	     wait, n, LS_WAIT_MS, rd ? " read" : "", wr ? " write" : "", s->out.sent, s->out.d.n,
	     s->out.len ? s->out.off : 0, s->out.len, s->in.got, s->in.d.n, s->in.have,
	     s->in.have == sizeof(s->in.h) ? s->in.left : 0, unread, pr, p.revents, tr);
}

/* Level-triggered wait (poll, or epoll with the interest kept current). */
static short ls_wait_level(struct ls_side *s, short want)
{
	if (s->mode == LS_POLL) {
		struct pollfd p = { .fd = s->fd, .events = want };
		int n = poll(&p, 1, LS_WAIT_MS);
		ls_note(s, 'e', n, (uint32_t)p.revents);
		if (n != 1)
			ls_stuck(s, "poll", n, want & POLLIN, want & POLLOUT);
		CHECK(!(p.revents & POLLNVAL), "POLLNVAL");
		return p.revents;
	}
	struct epoll_event ev = { .events = (uint32_t)want, .data.u64 = ls_tag };
	if (s->reg != ev.events) {
		CHECK(epoll_ctl(s->ep, EPOLL_CTL_MOD, s->fd, &ev) == 0, "EPOLL_CTL_MOD %x", want);
		s->reg = ev.events;
	}
	int n = epoll_wait(s->ep, &ev, 1, LS_WAIT_MS);
	ls_note(s, 'e', n, n > 0 ? ev.events : 0);
	if (n != 1)
		ls_stuck(s, "epoll_wait (level)", n, want & POLLIN, want & POLLOUT);
	CHECK(ev.data.u64 == ls_tag, "epoll data %llx", (unsigned long long)ev.data.u64);
	return (short)ev.events;
}

static void ls_run(struct ls_side *s)
{
	bool rblk = false, wblk = false;

	switch (s->mode) {
	case LS_BLOCK:
		for (;;) {
			while (ls_try_write(s) == 1)
				;
			if (s->eof)
				break;
			ls_try_read(s);
		}
		break;
	case LS_EPOLL_ET:
		/* every call until EAGAIN; wait only for a new edge */
		for (;;) {
			int w;
			while (!wblk && (w = ls_try_write(s)) >= 0)
				wblk = w == 0;
			while (!s->eof && !rblk)
				rblk = ls_try_read(s) == 0;
			if (!wblk && ls_sendable(s))
				continue;       /* what was read opened the gate */
			if (s->eof && s->shut)
				break;
			CHECK(!s->eof || ls_sendable(s), "EOF with records unsendable: protocol stuck");
			struct epoll_event ev[4];
			int n = epoll_wait(s->ep, ev, 4, LS_WAIT_MS);
			ls_note(s, 'e', n, n > 0 ? ev[0].events : 0);
			if (n < 1)
				ls_stuck(s, "epoll_wait (edge)", n, rblk && !s->eof, wblk);
			for (int i = 0; i < n; i++) {
				CHECK(ev[i].data.u64 == ls_tag, "epoll data");
				if (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP))
					rblk = false;
				if (ev[i].events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
					wblk = false;
			}
		}
		break;
	case LS_EPOLL_LT:
	case LS_POLL:
		/* one call per readiness reported */
		for (;;) {
			short want = (short)((s->eof ? 0 : POLLIN) | (ls_sendable(s) ? POLLOUT : 0));
			if (s->eof && s->shut)
				break;
			CHECK(want, "nothing to wait for: protocol stuck (sent %u, read %u)",
			      s->out.sent, s->in.got);
			short ev = ls_wait_level(s, want);
			if ((ev & (POLLOUT | POLLERR | POLLHUP)) && ls_sendable(s))
				s->empty += ls_try_write(s) == 0;
			if ((ev & (POLLIN | POLLERR | POLLHUP | POLLRDHUP)) && !s->eof)
				s->empty += ls_try_read(s) == 0;
			CHECK(s->empty < 100000, "%lu readiness reports without a byte to move: "
			      "a busy loop", s->empty);
		}
		break;
	}
}

static void ls_side_init(struct ls_side *s, int fd, enum ls_mode m, bool server, uint64_t seed)
{
	uint32_t r = ls_rounds();
	struct ls_dir c2s = { seed, 0, 3, 3 + r }, s2c = { seed, 1, 2, 2 + r };

	memset(s, 0, sizeof(*s));
	s->fd = fd;
	s->ep = -1;
	s->mode = m;
	s->rng = seed * 31 + server;
	ls_out_init(&s->out, server ? &s2c : &c2s);
	ls_in_init(&s->in, server ? &c2s : &s2c, server ? "client's records" : "server's records");
	if (m == LS_BLOCK) {
		ls_timeouts(fd);
	} else if (m == LS_EPOLL_LT || m == LS_EPOLL_ET) {
		struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.u64 = ls_tag };
		if (m == LS_EPOLL_ET)
			ev.events |= EPOLLET;
		s->ep = epoll_create1(EPOLL_CLOEXEC);
		CHECK(s->ep >= 0, "epoll_create1");
		CHECK(epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev) == 0, "EPOLL_CTL_ADD");
		s->reg = ev.events;
	}
}

static void ls_side_end(struct ls_side *s)
{
	CHECK(s->shut && s->out.sent == s->out.d.n, "sent %u of %u", s->out.sent, s->out.d.n);
	t_expect(s->fd);
	if (s->ep >= 0)
		close(s->ep);
	close(s->fd);
	free(s->out.buf);
}

static void ls_server(int lfd, enum ls_mode m)
{
	struct ls_side s;
	int fd;

	ls_bound();
	if (m == LS_EPOLL_ET) {
		fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
	} else {
		fd = accept(lfd, NULL, NULL);
		if (fd >= 0 && m != LS_BLOCK)
			CHECK(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == 0, "O_NONBLOCK");
	}
	CHECK(fd >= 0, "accept");
	ls_side_init(&s, fd, m, true, ls_seed(ls_port_of(lfd)));
	ls_run(&s);
	ls_side_end(&s);
}

static void ls_client(int port, enum ls_mode m)
{
	struct ls_side s;
	int fd, err = -1;
	socklen_t l = sizeof(err);

	ls_bound();
	fd = t_connect_flags("127.0.0.1", port, m == LS_BLOCK ? 0 : SOCK_NONBLOCK);
	/* registered (epoll) while the connect may still be in progress */
	ls_side_init(&s, fd, m, false, ls_seed(port));
	if (m != LS_BLOCK) {
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		CHECK(poll(&p, 1, LS_WAIT_MS) == 1, "connect completion");
		CHECK(getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) == 0 && err == 0,
		      "SO_ERROR %d", err);
	}
	ls_run(&s);
	ls_side_end(&s);
}

static void ls_server_block(int lfd) { ls_server(lfd, LS_BLOCK); }
static void ls_client_block(int port) { ls_client(port, LS_BLOCK); }
static void ls_server_lt(int lfd) { ls_server(lfd, LS_EPOLL_LT); }
static void ls_client_lt(int port) { ls_client(port, LS_EPOLL_LT); }
static void ls_server_et(int lfd) { ls_server(lfd, LS_EPOLL_ET); }
static void ls_client_et(int port) { ls_client(port, LS_EPOLL_ET); }
static void ls_server_poll(int lfd) { ls_server(lfd, LS_POLL); }
static void ls_client_poll(int port) { ls_client(port, LS_POLL); }

/*
 * late-switch-threads: the client writes 4K+20 records from one thread
 * while another reads, on one blocking socket; the server echoes every
 * chunk it reads as soon as it has checked it.  The switch then happens
 * with the client's writer in a send and its reader in a recv at once.
 * The server checks the records (and their sums) on the way in, the
 * client's reader the same records on the way back.  The writer
 * half-closes once the reader has every record back; the server then
 * half-closes at EOF, and the reader checks the count at its EOF.
 * late-switch-poll-threads: the same on a non-blocking socket whose
 * threads wait in poll() before each call (Python's socket timeouts).
 * late-switch-threads-big: the same with LT_BIG records.
 */
struct lt_arg {
	int fd;
	bool poll;                      /* non-blocking, each call after poll() */
	struct ls_dir d;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint32_t back;                  /* records the reader has had back */
};

/* late-switch-poll-threads: wait for ev on fd as Python's socket
 * timeouts do, in poll(); a poll asleep on the TCP socket when another
 * thread switched it slept through the fast channel (a stall). */
static void lt_poll(int fd, short ev, const char *who, uint32_t rec)
{
	struct pollfd p = { .fd = fd, .events = ev };
	int r;

	do
		r = poll(&p, 1, LS_WAIT_MS);
	while (r < 0 && errno == EINTR);
	CHECK(r == 1 && (p.revents & (ev | POLLHUP | POLLERR)),
	      "%s: poll(%s) at record %u: %d, revents %#x (timeout: %d ms)", who,
	      ev == POLLIN ? "POLLIN" : "POLLOUT", rec, r, (unsigned)p.revents, LS_WAIT_MS);
}

static void *lt_writer(void *a)
{
	struct lt_arg *t = a;
	struct ls_out o;

	ls_out_init(&o, &t->d);
	while (o.sent < o.d.n) {
		ls_out_build(&o);
		if (t->poll)
			lt_poll(t->fd, POLLOUT, "writer", o.sent);
		ssize_t w = write(t->fd, o.buf + o.off, o.len - o.off);
		if (w < 0 && (errno == EINTR || (t->poll && errno == EAGAIN)))
			continue;
		CHECK(w > 0, "writer: record %u at %zu of %zu: %zd", o.sent, o.off, o.len, w);
		ls_out_done(&o, (size_t)w);
	}
	/* Half-close only once every record is back: a client that shuts
	 * down before the server adopted (it may not even have accepted yet:
	 * TCP buffers megabytes) rightly stays TCP, and the case asserts the
	 * fast path.  By then the server has made >= 2 calls per record. */
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += LS_WAIT_MS / 1000;
	pthread_mutex_lock(&t->mu);
	while (t->back < o.d.n)
		CHECK(pthread_cond_timedwait(&t->cv, &t->mu, &dl) != ETIMEDOUT || t->back == o.d.n,
		      "writer: %u of %u records back after %d ms", t->back, o.d.n, LS_WAIT_MS);
	pthread_mutex_unlock(&t->mu);
	CHECK(shutdown(t->fd, SHUT_WR) == 0, "writer: shutdown(SHUT_WR)");
	free(o.buf);
	return NULL;
}

static void *lt_reader(void *a)
{
	struct lt_arg *t = a;
	uint8_t *buf = malloc(LS_RBUF);
	uint64_t rng = t->d.seed * 7 + 1;
	struct ls_in in;

	CHECK(buf, "malloc");
	ls_in_init(&in, &t->d, "echoed records");
	for (;;) {
		if (t->poll)
			lt_poll(t->fd, POLLIN, "reader", in.got);
		ssize_t r = read(t->fd, buf, ls_chunk(&rng));
		if (r < 0 && (errno == EINTR || (t->poll && errno == EAGAIN)))
			continue;
		CHECK(r >= 0, "reader: read after %u records (timeout: %d ms)", in.got, LS_WAIT_MS);
		if (r == 0)
			break;
		uint32_t had = in.got;
		ls_in_feed(&in, buf, (size_t)r);
		if (in.got != had) {
			pthread_mutex_lock(&t->mu);
			t->back = in.got;
			pthread_cond_broadcast(&t->cv);
			pthread_mutex_unlock(&t->mu);
		}
	}
	ls_in_eof(&in);
	free(buf);
	return NULL;
}

/* LT_BIG records (~40 MB) outgrow the ring and both TCP buffers: the
 * server, blocked writing its echo, stops reading while the client's
 * writer is blocked in a send on TCP when the switch comes. */
#define LT_BIG 1000

static struct ls_dir lt_dir(uint64_t seed, bool big)
{
	struct ls_dir d = { seed, 0, 0, big ? LT_BIG : ls_rounds() };
	return d;
}

static bool lt_big;                     /* late-switch-threads-big */

static void lt_server(int lfd)
{
	struct ls_dir d = lt_dir(ls_seed(ls_port_of(lfd)), lt_big);
	uint8_t *buf = malloc(LS_RBUF);
	uint64_t rng = d.seed * 5 + 3;
	struct ls_in in;
	int fd;

	CHECK(buf, "malloc");
	fd = ls_accept(lfd);
	ls_in_init(&in, &d, "client's records");
	for (;;) {
		ssize_t r = read(fd, buf, ls_chunk(&rng));
		if (r < 0 && errno == EINTR)
			continue;
		CHECK(r >= 0, "read after %u records (timeout: %d ms)", in.got, LS_WAIT_MS);
		if (r == 0)
			break;
		ls_in_feed(&in, buf, (size_t)r);
		t_write_all(fd, buf, (size_t)r);
	}
	ls_in_eof(&in);
	CHECK(shutdown(fd, SHUT_WR) == 0, "shutdown(SHUT_WR)");
	t_expect(fd);
	close(fd);
	free(buf);
}

static void lt_client_with(int port, bool poll)
{
	struct lt_arg a;
	pthread_t w, r;

	ls_bound();
	a.fd = t_connect(port);
	a.poll = poll;
	if (poll)
		CHECK(fcntl(a.fd, F_SETFL, fcntl(a.fd, F_GETFL) | O_NONBLOCK) == 0, "O_NONBLOCK");
	a.d = lt_dir(ls_seed(port), lt_big);
	a.back = 0;
	pthread_mutex_init(&a.mu, NULL);
	pthread_cond_init(&a.cv, NULL);
	ls_timeouts(a.fd);
	CHECK(pthread_create(&r, NULL, lt_reader, &a) == 0, "reader thread");
	CHECK(pthread_create(&w, NULL, lt_writer, &a) == 0, "writer thread");
	pthread_join(w, NULL);
	pthread_join(r, NULL);
	t_expect(a.fd);
	close(a.fd);
}

static void lt_client(int port) { lt_client_with(port, false); }
static void lt_client_poll(int port) { lt_client_with(port, true); }
static void lt_server_big(int lfd) { lt_big = true; lt_server(lfd); }
static void lt_client_big(int port) { lt_big = true; lt_client_with(port, false); }

/*
 * late-switch-bigsend: the client writes BS_LEN bytes in one blocking
 * write() from one thread while another reads the echo; the server reads
 * 64 KiB at a time and writes each back (blocking) before it reads again.
 * A late switch comes while that write is in the kernel, with TCP's
 * buffers full: the switch must not wait for the write to end (the write
 * waits for the server, which waits for room in the ring, which only the
 * client's reader makes).  Bytes are checked by position both ways.
 */
#define BS_LEN (24u << 20)

struct bs_arg {
	int fd;
	uint64_t seed;
	uint64_t got;
};

static void *bs_reader(void *a)
{
	struct bs_arg *t = a;
	uint8_t *buf = malloc(LS_RBUF);

	CHECK(buf, "malloc");
	for (;;) {
		ssize_t r = read(t->fd, buf, LS_RBUF);
		if (r < 0 && errno == EINTR)
			continue;
		CHECK(r >= 0, "reader: read after %llu of %u bytes back (timeout: %d ms)",
		      (unsigned long long)t->got, BS_LEN, LS_WAIT_MS);
		if (r == 0)
			break;
		t_verify(buf, (size_t)r, t->seed, t->got);
		t->got += (uint64_t)r;
	}
	CHECK(t->got == BS_LEN, "reader: %llu bytes back, want %u",
	      (unsigned long long)t->got, BS_LEN);
	free(buf);
	return NULL;
}

static void bs_server(int lfd)
{
	uint64_t seed = ls_seed(ls_port_of(lfd)), pos = 0;
	uint8_t *buf = malloc(LS_RBUF);
	int fd;

	CHECK(buf, "malloc");
	fd = ls_accept(lfd);
	for (;;) {
		ssize_t r = read(fd, buf, LS_RBUF);
		if (r < 0 && errno == EINTR)
			continue;
		CHECK(r >= 0, "read after %llu bytes (timeout: %d ms)",
		      (unsigned long long)pos, LS_WAIT_MS);
		if (r == 0)
			break;
		t_verify(buf, (size_t)r, seed, pos);
		pos += (uint64_t)r;
		t_write_all(fd, buf, (size_t)r);
	}
	CHECK(pos == BS_LEN, "server: %llu bytes, want %u", (unsigned long long)pos, BS_LEN);
	CHECK(shutdown(fd, SHUT_WR) == 0, "shutdown(SHUT_WR)");
	t_expect(fd);
	close(fd);
	free(buf);
}

static void bs_client(int port)
{
	struct bs_arg a = { .seed = ls_seed(port) };
	uint8_t *buf = malloc(BS_LEN);
	pthread_t r;
	ssize_t w;

	ls_bound();
	CHECK(buf, "malloc");
	t_fill(buf, BS_LEN, a.seed, 0);
	a.fd = t_connect(port);
	ls_timeouts(a.fd);
	CHECK(pthread_create(&r, NULL, bs_reader, &a) == 0, "reader thread");
	do
		w = write(a.fd, buf, BS_LEN);
	while (w < 0 && errno == EINTR);
	CHECK(w == (ssize_t)BS_LEN, "one write of %u bytes: %zd (errno %d; timeout %d ms)",
	      BS_LEN, w, w < 0 ? errno : 0, LS_WAIT_MS);
	CHECK(shutdown(a.fd, SHUT_WR) == 0, "shutdown(SHUT_WR)");
	pthread_join(r, NULL);
	t_expect(a.fd);
	close(a.fd);
	free(buf);
}

/*
 * short-conns: many sequential connections of one 100-byte record each
 * way (header, seq, sum and payload compared whole).  They make two data
 * calls a side, fewer than a late-switching server waits for: with
 * FLP_LAZY every one must stay TCP on both sides (the kernel object,
 * asked raw), otherwise t_expect says what it must be.  Nothing may leak:
 * the client's fd count after the run is what it was after the first ten
 * connections (the library makes its per-process sockets on first use),
 * and the registry holds no more handshake files than at the start.
 */
#define SC_LEN 100

static int sc_n(void)
{
	const char *e = getenv("FLP_MANY");
	int n = e ? atoi(e) : 2000;
	return n > 0 && n < 2000 ? n : 2000;
}

static void sc_record(uint8_t *p, int i, int dir)
{
	struct ls_hdr h = { LS_MAGIC, (uint32_t)i, SC_LEN - sizeof(h), 2166136261u };

	t_fill(p + sizeof(h), h.len, 0x5c0000u + (uint64_t)i * 2 + (uint64_t)dir, 0);
	for (uint32_t k = 0; k < h.len; k++)
		h.sum = ls_fnv(h.sum, p[sizeof(h) + k]);
	memcpy(p, &h, sizeof(h));
}

static void sc_check(const uint8_t *got, int i, int dir)
{
	uint8_t want[SC_LEN];

	sc_record(want, i, dir);
	for (int k = 0; k < SC_LEN; k++)
		CHECK(got[k] == want[k], "connection %d: byte %d of the %s's record: got %02x want %02x",
		      i, k, dir ? "server" : "client", got[k], want[k]);
}

/* Lazy: TCP on both sides (unless the threshold is so low that two calls
 * reach it); otherwise what FLP_EXPECT says. */
static void sc_expect(int fd, int i)
{
	if (!getenv("FLP_LAZY")) {
		t_expect(fd);
	} else if (ls_k() > 2) {
		int d = t_raw_domain(fd);
		CHECK(d == AF_INET || d == AF_INET6, "connection %d: switched (domain %d) after two "
		      "data calls, FASTLOOP_SWITCH_AFTER %d", i, d, ls_k());
	}
}

static void sc_server(int lfd)
{
	int n = sc_n();
	uint8_t buf[SC_LEN];
	char c;

	ls_bound();
	/* accept() and, inherited, every accepted socket's calls */
	set_tv_ms(lfd, SO_RCVTIMEO, LS_WAIT_MS);
	set_tv_ms(lfd, SO_SNDTIMEO, LS_WAIT_MS);
	for (int i = 0; i < n; i++) {
		int fd = accept(lfd, NULL, NULL);
		struct pollfd p = { .fd = fd, .events = POLLIN };
		CHECK(fd >= 0, "accept %d", i);
		t_read_all(fd, buf, SC_LEN);
		sc_check(buf, i, 0);
		sc_record(buf, i, 1);
		t_write_all(fd, buf, SC_LEN);
		CHECK(poll(&p, 1, LS_WAIT_MS) == 1, "connection %d: no EOF after %d ms", i, LS_WAIT_MS);
		CHECK(read(fd, &c, 1) == 0, "connection %d: EOF after the record", i);
		sc_expect(fd, i);
		close(fd);
	}
}

static void sc_client(int port)
{
	int n = sc_n(), fds0 = -1;
	const char *dir = getenv("FASTLOOP_DIR");
	int files0 = dir ? count_dir(dir) : 0;
	uint8_t buf[SC_LEN];

	ls_bound();
	for (int i = 0; i < n; i++) {
		int fd = t_connect(port);
		sc_record(buf, i, 0);
		t_write_all(fd, buf, SC_LEN);
		t_read_all(fd, buf, SC_LEN);
		sc_check(buf, i, 1);
		sc_expect(fd, i);
		close(fd);
		if (i == 9 || (n < 10 && i == n - 1))
			fds0 = t_count_fds();
	}
	CHECK(t_count_fds() == fds0, "fd leak: %d fds after %d connections, %d after 10",
	      t_count_fds(), n, fds0);
	CHECK(!dir || count_dir(dir) <= files0, "registry files %d -> %d", files0, count_dir(dir));
}

/* ---------------------------------------------------------- the table */

struct tcase {
	const char *name;
	server_fn server;
	client_fn client;
	solo_fn solo;
	const char *listen_addr;
};

/* Cases for the late switch only, when both ends are fast (FLP_LAZY): the
 * switch in accept() shuts TCP down under a send in flight, which then
 * returns short (README, Limits). */
static bool lazy_only(const char *name)
{
	return !strcmp(name, "late-switch-bigsend");
}

/* -------------------------------------------------- sealed segment */

/*
 * The shm segment is sealed against shrinking and growing: the peer holds
 * the same file, and one shrunk under our mapping would kill us with
 * SIGBUS.  The client, after a conversation on the rings, opens its own
 * mapping of the segment again (/proc/self/map_files, as root) and tries
 * what a hostile peer would: both must fail with EPERM, and the bytes
 * that follow still arrive whole.  Other setups: no segment may exist.
 */
static int seal_check_maps(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	int found = 0;

	CHECK(f, "open /proc/self/maps");
	while (fgets(line, sizeof(line), f)) {
		char range[64], path[96];
		int fd;
		off_t sz;

		if (!strstr(line, "memfd:fastloop"))
			continue;
		CHECK(sscanf(line, "%63s", range) == 1, "maps line");
		snprintf(path, sizeof(path), "/proc/self/map_files/%s", range);
		fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0 && (errno == EPERM || errno == EACCES)) {
			fclose(f);
			return -1;      /* not root: cannot open it again */
		}
		CHECK(fd >= 0, "open %s", path);
		sz = lseek(fd, 0, SEEK_END);
		CHECK(sz > 0, "segment size %lld", (long long)sz);
		CHECK_ERRNO(ftruncate(fd, 0), EPERM);
		CHECK_ERRNO(ftruncate(fd, 2 * sz), EPERM);
		CHECK(lseek(fd, 0, SEEK_END) == sz, "size unchanged");
		close(fd);
		found++;
	}
	fclose(f);
	return found;
}

static void seal_client(int port)
{
	int fd = t_connect(port);
	const char *e = getenv("FLP_EXPECT");
	uint8_t buf[1000];
	int n;

	for (int i = 0; i < 50; i++) {
		char c = (char)((i * 7) & 0x7f);
		t_write_all(fd, &c, 1);
		t_read_all(fd, buf, sizeof(buf));
		t_verify(buf, sizeof(buf), (uint64_t)c, 0);
		if (i == 24) {
			n = seal_check_maps();
			if (n < 0) {
				printf("skip: not root (cannot reopen the mapping)\n");
				exit(77);
			}
			if (e && !strcmp(e, "shm"))
				CHECK(n >= 1, "no shm segment mapped on a shm connection");
			else if (e && strcmp(e, "any"))
				CHECK(n == 0, "%d segment(s) mapped, expected none (%s)", n, e);
		}
	}
	t_expect(fd);
	close(fd);
}

static const struct tcase cases[] = {
	{ "echo", echo_server, echo_client, NULL, "127.0.0.1" },
	{ "stream1g", stream_server, stream_client, NULL, "127.0.0.1" },
	{ "bothwrite", both_server, both_client, NULL, "127.0.0.1" },
	{ "flags", flags_server, flags_client, NULL, "127.0.0.1" },
	{ "sendfile", sendfile_server, sendfile_client, NULL, "127.0.0.1" },
	{ "poll", rr_server, poll_client, NULL, "127.0.0.1" },
	{ "select", rr_server, select_client, NULL, "127.0.0.1" },
	{ "epoll-lt", rr_server, epoll_lt_client, NULL, "127.0.0.1" },
	{ "epoll-et", rr_server, epoll_et_client, NULL, "127.0.0.1" },
	{ "epoll-oneshot", rr_server, epoll_oneshot_client, NULL, "127.0.0.1" },
	{ "epoll-two-sets", rr_server, epoll2_client, NULL, "127.0.0.1" },
	{ "nbconnect", rr_server, nbconnect_client, NULL, "127.0.0.1" },
	{ "shutdown", shut_server, shut_client, NULL, "127.0.0.1" },
	{ "write-close", wclose_server, wclose_client, NULL, "127.0.0.1" },
	{ "peer-killed", killed_server, killed_client, NULL, "127.0.0.1" },
	{ "epipe", epipe_server, epipe_client, NULL, "127.0.0.1" },
	{ "eintr-timeout", quiet_server, eintr_client, NULL, "127.0.0.1" },
	{ "dup", dup_server, dup_client, NULL, "127.0.0.1" },
	{ "fork-after-accept", forkserve_server, multi_client, NULL, "127.0.0.1" },
	{ "prefork", prefork_server, prefork_client, NULL, "127.0.0.1" },
	{ "exec", exec_server, exec_client, NULL, "127.0.0.1" },
	{ "server-first", first_server, first_client, NULL, "127.0.0.1" },
	{ "names", names_server, names_client, NULL, "127.0.0.1" },
	{ "ipv6", v6_server, v6_client, NULL, "::" },
	{ "many", many_server, many_client, NULL, "127.0.0.1" },
	{ "idle", idle_server, idle_client, NULL, "127.0.0.1" },
	{ "threads", NULL, NULL, threads_solo, NULL },
	{ "stale", NULL, NULL, stale_solo, NULL },
	{ "fuzz-handshake", NULL, NULL, fuzz_solo, NULL },
	{ "opts", opts_server, opts_client, NULL, "127.0.0.1" },
	{ "unsent", unsent_server, unsent_client, NULL, "127.0.0.1" },
	{ "epoll-et-edge", rr_server1, etedge_client, NULL, "127.0.0.1" },
	{ "outq", outq_server, outq_client, NULL, "127.0.0.1" },
	{ "epoll-preconnect", rr_server1, epoll_pre_client, NULL, "127.0.0.1" },
	{ "fuzz-slots", NULL, NULL, fuzz_slots_solo, NULL },
	{ "kill9", NULL, NULL, kill9_solo, NULL },
	{ "shared-writers", sw_server, sw_client, NULL, "127.0.0.1" },
	{ "rlimit", rr_server50, rlimit_client, NULL, "127.0.0.1" },
	{ "seal", rr_server50, seal_client, NULL, "127.0.0.1" },
	{ "exec-stdio", exec_stdio_server, exec_stdio_client, NULL, "127.0.0.1" },
	{ "eintr-spin", eintr_spin_server, eintr_spin_client, NULL, "127.0.0.1" },
	{ "late-switch", ls_server_block, ls_client_block, NULL, "127.0.0.1" },
	{ "late-switch-epoll", ls_server_lt, ls_client_lt, NULL, "127.0.0.1" },
	{ "late-switch-et", ls_server_et, ls_client_et, NULL, "127.0.0.1" },
	{ "late-switch-poll", ls_server_poll, ls_client_poll, NULL, "127.0.0.1" },
	{ "late-switch-threads", lt_server, lt_client, NULL, "127.0.0.1" },
	{ "late-switch-poll-threads", lt_server, lt_client_poll, NULL, "127.0.0.1" },
	{ "late-switch-threads-big", lt_server_big, lt_client_big, NULL, "127.0.0.1" },
	{ "late-switch-bigsend", bs_server, bs_client, NULL, "127.0.0.1" },
	{ "short-conns", sc_server, sc_client, NULL, "127.0.0.1" },
};

static const struct tcase *find_case(const char *n)
{
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (!strcmp(cases[i].name, n))
			return &cases[i];
	return NULL;
}

/* Start a role as a copy of ourselves, preloaded or not. */
static pid_t spawn(const char *cname, const char *role, const char *arg, bool preload,
		   int keep_fd)
{
	pid_t p = fork();

	CHECK(p >= 0, "fork");
	if (p == 0) {
		const char *lib = getenv("FLP_LIB");
		if (preload && lib)
			setenv("LD_PRELOAD", lib, 1);
		else
			unsetenv("LD_PRELOAD");
		(void)keep_fd;
		execl(self_exe, self_exe, cname, role, arg, (char *)NULL);
		_exit(127);
	}
	return p;
}

static int wait_role(pid_t p, const char *what)
{
	int st;

	CHECK(waitpid(p, &st, 0) == p, "waitpid %s", what);
	if (WIFSIGNALED(st)) {
		fprintf(stderr, "FAIL [%s] %s killed by signal %d\n", t_case, what, WTERMSIG(st));
		return 1;
	}
	return WEXITSTATUS(st);
}

static void on_timeout(int s)
{
	(void)s;
	static const char m[] = "FAIL: time bound exceeded\n";
	if (write(2, m, sizeof(m) - 1) < 0) {
		/* nothing more to say */
	}
	kill(0, SIGKILL);
	_exit(1);
}

int main(int argc, char **argv)
{
	const struct tcase *tc;
	const char *setup = getenv("FLP_SETUP");
	bool pre_server, pre_client;
	char port[16], fdarg[16];
	int pfd[2], rs, rc, p = 0;
	pid_t ps, pc;

	self_exe = realpath("/proc/self/exe", NULL);
	if (argc < 2 || !(tc = find_case(argv[1]))) {
		fprintf(stderr, "usage: matrix CASE; cases:");
		for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
			fprintf(stderr, " %s", cases[i].name);
		fprintf(stderr, "\n");
		return 2;
	}
	t_case = tc->name;
	if (argc >= 4 && !strcmp(argv[2], "server")) {
		int w = atoi(argv[3]);
		t_role = "server";
		int lfd = t_listen(tc->listen_addr, &p);
		CHECK(write(w, &p, sizeof(p)) == sizeof(p), "port pipe");
		close(w);
		tc->server(lfd);
		return 0;
	}
	if (argc >= 4 && !strcmp(argv[2], "client")) {
		t_role = "client";
		tc->client(atoi(argv[3]));
		return 0;
	}
	if (argc >= 4 && !strcmp(argv[2], "plainserve")) {
		t_role = "plain-server";
		stale_plainserve(atoi(argv[3]));
		return 0;
	}
	if (argc >= 4 && !strcmp(argv[2], "served")) {
		t_role = "exec-image";
		exec_served(atoi(argv[3]));
		return 0;
	}
	if (argc >= 3 && !strcmp(argv[2], "stdio")) {
		t_role = "exec-image";
		exec_stdio_served();
		return 0;
	}
	if (argc >= 3 && !strcmp(argv[2], "solo")) {
		t_role = "solo";
		tc->solo();
		return 0;
	}

	/* driver */
	if (!setup)
		setup = "both";
	pre_server = !strcmp(setup, "both") || !strcmp(setup, "plain-client");
	pre_client = !strcmp(setup, "both") || !strcmp(setup, "plain-server");
	if (lazy_only(tc->name) && pre_server && pre_client && !getenv("FLP_LAZY") &&
	    !(getenv("FASTLOOP_TRANSPORT") && !strcmp(getenv("FASTLOOP_TRANSPORT"), "off"))) {
		printf("skip: %s is for the late switch (FASTLOOP_SWITCH_AFTER=N)\n", tc->name);
		return 77;
	}
	setpgid(0, 0);
	signal(SIGALRM, on_timeout);
	alarm(getenv("FLP_TIMEOUT") ? (unsigned)atoi(getenv("FLP_TIMEOUT")) : 120);
	if (tc->solo) {
		if (!pre_server || !pre_client) {
			printf("skip: %s runs in one process; setup %s does not apply\n", tc->name, setup);
			return 77;
		}
		pc = spawn(tc->name, "solo", "", true, -1);
		rc = wait_role(pc, "solo");
		return rc == 77 ? 77 : rc ? 1 : 0;
	}
	CHECK(pipe(pfd) == 0, "pipe");
	snprintf(fdarg, sizeof(fdarg), "%d", pfd[1]);
	ps = spawn(tc->name, "server", fdarg, pre_server, pfd[1]);
	close(pfd[1]);
	if (read(pfd[0], &p, sizeof(p)) != sizeof(p)) {
		wait_role(ps, "server");
		FAIL("server did not start");
	}
	close(pfd[0]);
	snprintf(port, sizeof(port), "%d", p);
	pc = spawn(tc->name, "client", port, pre_client, -1);
	rc = wait_role(pc, "client");
	if (rc) {
		kill(ps, SIGKILL);
		wait_role(ps, "server");
		return 1;
	}
	rs = wait_role(ps, "server");
	return rs ? 1 : 0;
}
