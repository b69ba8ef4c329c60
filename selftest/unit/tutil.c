/*
 * tutil.c — helpers shared by the unit suites: temporary registry
 * directories, address builders, a barrier for forked contenders.
 */
#include <arpa/inet.h>
#include <ftw.h>
#include <ifaddrs.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "suites.h"

/* Every test directory lives under one root made by the runner, which
 * removes it at the end: a failed assertion ends a test's process before
 * its teardown runs. */
static char root[256];

int tu_root_init(void)
{
	const char *tmp = getenv("TMPDIR");

	if (!tmp || *tmp != '/')
		tmp = "/tmp";
	snprintf(root, sizeof(root), "%s/flp-unit-XXXXXX", tmp);
	if (!mkdtemp(root)) {
		root[0] = 0;
		return -errno;
	}
	return 0;
}

void tu_root_remove(void)
{
	if (root[0])
		tu_rmtree(root);
}

void tu_mkdtemp(char *buf, size_t len)
{
	int n;

	ck_assert_msg(root[0], "no test root directory");
	n = snprintf(buf, len, "%s/t-XXXXXX", root);
	ck_assert_msg(n > 0 && (size_t)n < len, "temp path too long");
	ck_assert_msg(mkdtemp(buf) != NULL, "mkdtemp %s: %s", buf, strerror(errno));
	ck_assert_int_eq(chmod(buf, 0700), 0);
}

static int rm_one(const char *path, const struct stat *st, int type,
		  struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (type == FTW_DP)
		chmod(path, 0700); /* a test may have left it 0000 */
	return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

void tu_rmtree(const char *dir)
{
	if (dir && *dir)
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

void tu_use_registry(const char *dir)
{
	ck_assert_int_eq(cfg_set(&flp_cfg, "dir", dir), 0);
	ck_assert_str_eq(flp_cfg.dir, dir);
	ck_assert_int_eq(reg_dir_init(), 0);
	ck_assert(reg_enabled());
}

void tu_proc_reset(void)
{
	flp_pid = getpid();
	flp_start = flp_proc_start(flp_pid);
}

struct reg_addr tu_addr(const char *ip, uint16_t port)
{
	struct sockaddr_in6 s6 = { .sin6_family = AF_INET6 };
	struct sockaddr_in s4 = { .sin_family = AF_INET };
	struct reg_addr r;

	if (inet_pton(AF_INET, ip, &s4.sin_addr) == 1) {
		s4.sin_port = htons(port);
		ck_assert_int_eq(addr_to_reg((struct sockaddr *)&s4, sizeof(s4), &r), 0);
	} else {
		ck_assert_msg(inet_pton(AF_INET6, ip, &s6.sin6_addr) == 1,
			      "bad address %s", ip);
		s6.sin6_port = htons(port);
		ck_assert_int_eq(addr_to_reg((struct sockaddr *)&s6, sizeof(s6), &r), 0);
	}
	return r;
}

bool tu_is_assigned(const char *ip)
{
	struct ifaddrs *ifa, *i;
	struct in6_addr a6;
	struct in_addr a4;
	bool v4 = inet_pton(AF_INET, ip, &a4) == 1, found = false;

	if (!v4)
		ck_assert(inet_pton(AF_INET6, ip, &a6) == 1);
	ck_assert_int_eq(getifaddrs(&ifa), 0);
	for (i = ifa; i && !found; i = i->ifa_next) {
		if (!i->ifa_addr)
			continue;
		if (v4 && i->ifa_addr->sa_family == AF_INET)
			found = !memcmp(&((struct sockaddr_in *)i->ifa_addr)->sin_addr,
					&a4, 4);
		else if (!v4 && i->ifa_addr->sa_family == AF_INET6)
			found = !memcmp(&((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr,
					&a6, 16);
	}
	freeifaddrs(ifa);
	return found;
}

struct tu_bar *tu_bar_new(void)
{
	struct tu_bar *b = mmap(NULL, sizeof(*b), PROT_READ | PROT_WRITE,
				MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	ck_assert(b != MAP_FAILED);
	atomic_init(&b->ready, 0);
	atomic_init(&b->go, 0);
	return b;
}

void tu_bar_free(struct tu_bar *b)
{
	munmap(b, sizeof(*b));
}

/* Spin (yielding) for at most 10 s: a stuck test must end, not hang. */
bool tu_bar_arrive(struct tu_bar *b)
{
	uint64_t t0 = flp_now_us();

	atomic_fetch_add(&b->ready, 1);
	while (!atomic_load(&b->go)) {
		if (flp_now_us() - t0 > 10000000)
			return false;
		sched_yield();
	}
	return true;
}

bool tu_bar_wait_ready(struct tu_bar *b, int n)
{
	uint64_t t0 = flp_now_us();

	while (atomic_load(&b->ready) < n) {
		if (flp_now_us() - t0 > 10000000)
			return false;
		sched_yield();
	}
	return true;
}

void tu_bar_release(struct tu_bar *b)
{
	atomic_store(&b->go, 1);
}

int tu_reap(pid_t pid)
{
	int st;

	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
