/*
 * crr.c — connection rate, TCP_CRR style: N times, one at a time,
 * connect, send 1 byte, receive 1 byte, close.  "crr run -n N" forks the
 * server (so one LD_PRELOAD applies to both ends), runs the client loop
 * and prints "conns N secs S rate R".  Every reply is checked (the server
 * answers b ^ 0x5a); a wrong or missing byte fails the run.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "crr: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void serve(int lfd, long n)
{
	for (long i = 0; i < n; i++) {
		int fd = accept(lfd, NULL, NULL);
		unsigned char b;

		if (fd < 0)
			die("accept");
		if (read(fd, &b, 1) != 1)
			die("server read");
		b ^= 0x5a;
		if (write(fd, &b, 1) != 1)
			die("server write");
		close(fd);
	}
}

int main(int argc, char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	long n = 20000;
	int lfd, st, opt;
	double t0, t1;
	pid_t srv;

	if (argc < 2 || strcmp(argv[1], "run")) {
		fprintf(stderr, "usage: crr run [-n CONNECTIONS]\n");
		return 2;
	}
	optind = 2;
	while ((opt = getopt(argc, argv, "n:")) != -1)
		if (opt == 'n')
			n = strtol(optarg, NULL, 10);
	if (n <= 0 || n > 10000000) {
		fprintf(stderr, "crr: -n out of range\n");
		return 2;
	}
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(lfd, 128) < 0 || getsockname(lfd, (struct sockaddr *)&a, &al) < 0)
		die("listen");
	srv = fork();
	if (srv < 0)
		die("fork");
	if (srv == 0) {
		serve(lfd, n);
		_exit(0);
	}
	t0 = now();
	for (long i = 0; i < n; i++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		unsigned char b = (unsigned char)i, r = 0;

		if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
			die("connect");
		if (write(fd, &b, 1) != 1 || read(fd, &r, 1) != 1)
			die("client io");
		if (r != (unsigned char)(b ^ 0x5a)) {
			fprintf(stderr, "crr: connection %ld: reply %02x, want %02x\n", i, r, b ^ 0x5a);
			kill(srv, SIGKILL);
			return 1;
		}
		close(fd);
	}
	t1 = now();
	if (waitpid(srv, &st, 0) != srv || !WIFEXITED(st) || WEXITSTATUS(st)) {
		fprintf(stderr, "crr: server failed\n");
		return 1;
	}
	printf("conns %ld secs %.4f rate %.1f\n", n, t1 - t0, (double)n / (t1 - t0));
	return 0;
}
