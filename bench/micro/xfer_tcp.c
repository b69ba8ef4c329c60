/*
 * xfer_tcp.c — "sender sends x bytes, receiver confirms all x" over TCP on
 * the loopback, as two separate processes so that LD_PRELOAD (fastloop)
 * applies to both ends exactly as it would to any other program.
 *
 *   xfer_tcp run    [options]            fork+exec a one-shot server, send
 *   xfer_tcp server [-p PORT] [--once] [--port-fd FD]
 *   xfer_tcp client -p PORT [options]
 *
 *   -6          use ::1 instead of 127.0.0.1
 *   --cc ALG    setsockopt(TCP_CONGESTION, ALG) on both ends (run passes it
 *               to the server)
 *
 * The client sends (TCP_NODELAY, so the tail of a repetition is not held
 * by Nagle); the server receives and acknowledges.  Result lines and exit
 * status as xfer_ipc.
 */
#define _GNU_SOURCE
#include "xfer.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

struct tcp_opts {
	int v6;
	int port;
	int once;
	int port_fd;
	const char *cc;
};

static void usage(void)
{
	fprintf(stderr,
		"usage: xfer_tcp run|server|client [options]\n%s"
		"  -p PORT            server port (server: default 0 = any, printed)\n"
		"  --once             server: serve one connection, then exit\n"
		"  --port-fd FD       server: write the bound port to FD\n"
		"  --cc ALG           TCP congestion control on both ends\n"
		"  -6                 ::1 instead of 127.0.0.1\n",
		xfer_common_usage());
	exit(2);
}

static void set_cc(int fd, const char *cc)
{
	if (cc && setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, cc, (socklen_t)strlen(cc)) < 0)
		xfer_die("setsockopt(TCP_CONGESTION, %s): %s", cc, strerror(errno));
}

/* Fill a loopback address for `port`; returns its length. */
static socklen_t loop_addr(struct sockaddr_storage *ss, int v6, int port)
{
	memset(ss, 0, sizeof(*ss));
	if (v6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;

		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		a->sin6_addr = in6addr_loopback;
		return sizeof(*a);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)ss;

		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)port);
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		return sizeof(*a);
	}
}

/* Server: listen on the loopback, receive on each accepted connection. */
static int serve(const struct tcp_opts *t)
{
	struct sockaddr_storage ss;
	socklen_t len = loop_addr(&ss, t->v6, t->port);
	int one = 1, lfd, worst = 0;

	lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		xfer_die("socket: %s", strerror(errno));
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&ss, len) < 0)
		xfer_die("bind port %d: %s", t->port, strerror(errno));
	if (listen(lfd, 16) < 0)
		xfer_die("listen: %s", strerror(errno));
	len = sizeof(ss);
	if (getsockname(lfd, (struct sockaddr *)&ss, &len) < 0)
		xfer_die("getsockname: %s", strerror(errno));
	{
		int port = ntohs(ss.ss_family == AF_INET6 ?
				 ((struct sockaddr_in6 *)&ss)->sin6_port :
				 ((struct sockaddr_in *)&ss)->sin_port);
		char line[32];
		int n = snprintf(line, sizeof(line), "%d\n", port);

		if (t->port_fd >= 0) {
			if (write(t->port_fd, line, (size_t)n) != n)
				xfer_die("write port: %s", strerror(errno));
			close(t->port_fd);
		} else {
			printf("port %d\n", port);
			fflush(stdout);
		}
	}
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC), rc;
		struct xfer_io io = { &fd, xfer_fd_send_all, xfer_fd_recv_some };

		if (fd < 0) {
			if (errno == EINTR)
				continue;
			xfer_die("accept: %s", strerror(errno));
		}
		set_cc(fd, t->cc);
		rc = xfer_receiver(&io, &io);
		close(fd);
		if (rc != 0)
			worst = rc > 0 ? 1 : 2;
		if (t->once)
			break;
	}
	close(lfd);
	return worst;
}

/* Client: connect and send every size over one connection. */
static int send_sizes(const struct tcp_opts *t, const struct xfer_opts *o, int port)
{
	struct sockaddr_storage ss;
	socklen_t len = loop_addr(&ss, t->v6, port);
	int one = 1, fd, worst = 0;
	struct xfer_io io = { &fd, xfer_fd_send_all, xfer_fd_recv_some };

	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		xfer_die("socket: %s", strerror(errno));
	set_cc(fd, t->cc);
	if (connect(fd, (struct sockaddr *)&ss, len) < 0)
		xfer_die("connect port %d: %s", port, strerror(errno));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	for (int i = 0; i < o->nsizes; i++) {
		int rc = xfer_sender(&io, &io, o, o->sizes[i]);

		if (rc != 0) {
			worst = rc < 0 ? 2 : 1;
			break;
		}
	}
	close(fd);
	return worst;
}

/* run: fork+exec this program as a one-shot server (same environment, so
 * the same LD_PRELOAD), learn its port through a pipe, then send. */
static int run_pair(const struct tcp_opts *t, const struct xfer_opts *o)
{
	int pfd[2], port = 0, st, rc;
	char buf[32] = { 0 };
	ssize_t n;
	pid_t pid;

	if (pipe(pfd) < 0)
		xfer_die("pipe: %s", strerror(errno));
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		xfer_die("fork: %s", strerror(errno));
	if (pid == 0) {
		char fdarg[16], tmo[16];
		char *argv[12];
		int k = 0;

		close(pfd[0]);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		snprintf(fdarg, sizeof(fdarg), "%d", pfd[1]);
		snprintf(tmo, sizeof(tmo), "%d", o->timeout_s + 5);
		argv[k++] = "xfer_tcp";
		argv[k++] = "server";
		argv[k++] = "--once";
		argv[k++] = "--port-fd";
		argv[k++] = fdarg;
		argv[k++] = "-T";
		argv[k++] = tmo;
		if (t->v6)
			argv[k++] = "-6";
		if (t->cc) {
			argv[k++] = "--cc";
			argv[k++] = (char *)t->cc;
		}
		argv[k] = NULL;
		execv("/proc/self/exe", argv);
		fprintf(stderr, "xfer_tcp: exec server: %s\n", strerror(errno));
		_exit(2);
	}
	close(pfd[1]);
	while ((n = read(pfd[0], buf, sizeof(buf) - 1)) < 0 && errno == EINTR)
		;
	close(pfd[0]);
	if (n > 0)
		port = atoi(buf);
	if (port <= 0) {
		waitpid(pid, &st, 0);
		xfer_die("server did not report a port");
	}
	rc = send_sizes(t, o, port);
	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR)
			return 2;
	}
	if (rc == 0 && WIFEXITED(st) && WEXITSTATUS(st) != 0)
		rc = WEXITSTATUS(st);
	if (rc == 0 && WIFSIGNALED(st))
		rc = 2;
	return rc;
}

int main(int argc, char **argv)
{
	struct tcp_opts t = { .port_fd = -1 };
	struct xfer_opts o;
	const char *mode;

	if (argc < 2)
		usage();
	mode = argv[1];
	xfer_opts_init(&o, "tcp");
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];

		if (xfer_parse_common(&o, argc, argv, &i))
			continue;
		if (strcmp(a, "-6") == 0)
			t.v6 = 1;
		else if (strcmp(a, "--once") == 0)
			t.once = 1;
		else if (strcmp(a, "-p") == 0 && i + 1 < argc)
			t.port = atoi(argv[++i]);
		else if (strcmp(a, "--port-fd") == 0 && i + 1 < argc)
			t.port_fd = atoi(argv[++i]);
		else if (strcmp(a, "--cc") == 0 && i + 1 < argc)
			t.cc = argv[++i];
		else
			usage();
	}
	if (o.nsizes == 0) {
		o.sizes[0] = 1u << 20;
		o.nsizes = 1;
	}
	signal(SIGPIPE, SIG_IGN);
	xfer_arm_timeout(o.timeout_s);

	if (strcmp(mode, "server") == 0)
		return serve(&t);
	if (strcmp(mode, "client") == 0) {
		if (t.port <= 0)
			xfer_die("client needs -p PORT");
		return send_sizes(&t, &o, t.port);
	}
	if (strcmp(mode, "run") == 0)
		return run_pair(&t, &o);
	usage();
}
