/*
 * xfer_ipc.c — "sender sends x bytes, receiver confirms all x" between two
 * processes of one fork over a Unix domain socket pair, two pipes or a
 * shared-memory SPSC ring; and the single-process memcpy copy limit.
 *
 *   xfer_ipc uds|pipe|shm|memcpy [-s SIZES] [-r REPS] [-c CHUNK] [-V] ...
 *
 * The parent sends, the forked child receives.  One tab-separated line per
 * size on stdout: xfer, transport, size, reps, median/min/max Mbit/s, CPU
 * seconds of both ends over the timed repetitions, CPU s per GB, status.
 * Exit status: 0 ok, 1 checksum mismatch, 2 harness or transport error,
 * 3 timeout.
 */
#define _GNU_SOURCE
#include "ring.h"
#include "xfer.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define ACK_RING_SIZE 4096u

static void usage(void)
{
	fprintf(stderr, "usage: xfer_ipc uds|pipe|shm|memcpy [options]\n%s"
		"  -R RING            shm ring bytes, a power of two (default 1M)\n"
		"  -S SPINS           shm: checks before yielding the CPU (default 64)\n",
		xfer_common_usage());
	exit(2);
}

/* Run the sender over every size, then end the stream.  Returns the
 * worst status. */
static int run_sender(const struct xfer_io *data, const struct xfer_io *back,
		      const struct xfer_opts *o)
{
	int worst = 0;

	for (int i = 0; i < o->nsizes; i++) {
		int rc = xfer_sender(data, back, o, o->sizes[i]);

		if (rc != 0) {
			worst = rc < 0 ? 2 : 1;
			break;
		}
	}
	return worst;
}

/* Wait for the receiver child; its failure outranks ours. */
static int reap(pid_t pid, int rc)
{
	int st;

	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR)
			return 2;
	}
	if (WIFEXITED(st) && WEXITSTATUS(st) != 0 && rc == 0)
		return WEXITSTATUS(st);
	if (WIFSIGNALED(st) && rc == 0) {
		fprintf(stderr, "xfer_ipc: receiver killed by signal %d\n", WTERMSIG(st));
		return 2;
	}
	return rc;
}

static int receiver_status(int rc)
{
	return rc == 0 ? 0 : rc > 0 ? 1 : 2;
}

/* In the forked receiver: die with the parent and keep our own bound. */
static void child_bounds(const struct xfer_opts *o)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	xfer_arm_timeout(o->timeout_s + 5);
}

/* uds and pipe: both ends plain fds. */
static int run_fds(const struct xfer_opts *o, int use_pipe)
{
	int d[2], b[2];
	pid_t pid;
	int rc;

	if (use_pipe) {
		if (pipe(d) < 0 || pipe(b) < 0)
			xfer_die("pipe: %s", strerror(errno));
	} else {
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, d) < 0)
			xfer_die("socketpair: %s", strerror(errno));
		b[0] = d[0];
		b[1] = d[1];
	}
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		xfer_die("fork: %s", strerror(errno));
	if (pid == 0) {
		/* receiver: reads d[0] (pipe) or d[1] (socket), acks on b */
		int rfd = use_pipe ? d[0] : d[1];
		int afd = use_pipe ? b[1] : d[1];
		struct xfer_io data = { &rfd, xfer_fd_send_all, xfer_fd_recv_some };
		struct xfer_io back = { &afd, xfer_fd_send_all, xfer_fd_recv_some };

		child_bounds(o);
		if (use_pipe) {
			close(d[1]);
			close(b[0]);
		} else {
			close(d[0]);
		}
		_exit(receiver_status(xfer_receiver(&data, &back)));
	}
	{
		int wfd = use_pipe ? d[1] : d[0];
		int afd = use_pipe ? b[0] : d[0];
		struct xfer_io data = { &wfd, xfer_fd_send_all, xfer_fd_recv_some };
		struct xfer_io back = { &afd, xfer_fd_send_all, xfer_fd_recv_some };

		if (use_pipe) {
			close(d[0]);
			close(b[1]);
		} else {
			close(d[1]);
		}
		rc = run_sender(&data, &back, o);
		close(wfd);
		if (use_pipe)
			close(afd);
	}
	return reap(pid, rc);
}

/* shm: a data ring and a small ack ring in one shared anonymous mapping. */
static int run_shm(const struct xfer_opts *o, uint64_t ring_size, unsigned long spin)
{
	size_t dbytes = (ring_bytes(ring_size) + 4095) & ~(size_t)4095;
	size_t total = dbytes + ring_bytes(ACK_RING_SIZE);
	unsigned char *m = mmap(NULL, total, PROT_READ | PROT_WRITE,
				MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct ring *dr, *ar;
	pid_t pid;
	int rc;

	if (m == MAP_FAILED)
		xfer_die("mmap %zu bytes: %s", total, strerror(errno));
	dr = (struct ring *)m;
	ar = (struct ring *)(m + dbytes);
	ring_init(dr, ring_size);
	ring_init(ar, ACK_RING_SIZE);
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		xfer_die("fork: %s", strerror(errno));
	{
		struct ring_end de = { dr, (double)o->timeout_s, spin };
		struct ring_end ae = { ar, (double)o->timeout_s, spin };
		struct xfer_io data = { &de, ring_send_all, ring_recv_some };
		struct xfer_io back = { &ae, ring_send_all, ring_recv_some };

		if (pid == 0) {
			child_bounds(o);
			rc = xfer_receiver(&data, &back);
			ring_close(ar);
			_exit(receiver_status(rc));
		}
		rc = run_sender(&data, &back, o);
		ring_close(dr);
	}
	rc = reap(pid, rc);
	munmap(m, total);
	return rc;
}

int main(int argc, char **argv)
{
	struct xfer_opts o;
	uint64_t ring_size = 1u << 20;
	unsigned long spin = 64;
	const char *mode;
	int rc = 0;

	if (argc < 2)
		usage();
	mode = argv[1];
	xfer_opts_init(&o, mode);
	for (int i = 2; i < argc; i++) {
		if (xfer_parse_common(&o, argc, argv, &i))
			continue;
		if (strcmp(argv[i], "-R") == 0 && i + 1 < argc) {
			if (xfer_parse_size(argv[++i], &ring_size) < 0 ||
			    (ring_size & (ring_size - 1)) || ring_size < 4096)
				xfer_die("bad ring size '%s' (a power of two >= 4K)", argv[i]);
			continue;
		}
		if (strcmp(argv[i], "-S") == 0 && i + 1 < argc) {
			spin = strtoul(argv[++i], NULL, 10);
			continue;
		}
		usage();
	}
	if (o.nsizes == 0) {
		o.sizes[0] = 1u << 20;
		o.nsizes = 1;
	}
	signal(SIGPIPE, SIG_IGN);
	xfer_arm_timeout(o.timeout_s);

	if (strcmp(mode, "uds") == 0)
		rc = run_fds(&o, 0);
	else if (strcmp(mode, "pipe") == 0)
		rc = run_fds(&o, 1);
	else if (strcmp(mode, "shm") == 0)
		rc = run_shm(&o, ring_size, spin);
	else if (strcmp(mode, "memcpy") == 0) {
		for (int i = 0; i < o.nsizes && rc == 0; i++)
			rc = xfer_memcpy(&o, o.sizes[i]);
	} else
		usage();
	return rc;
}
