/*
 * real.c — the table of libc functions we interpose, filled once by
 * dlsym(RTLD_NEXT).  Engine code calls only flp_real.x(...).
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "flp.h"

struct flp_real flp_real;

/* If RTLD_NEXT hands back our own hook the process would recurse forever;
 * that only happens when the library is loaded in an unsupported way, and
 * there is no sane fallback, so say so and stop. */
static void *load(const char *name, bool optional)
{
	void *p = dlsym(RTLD_NEXT, name);
	void *self = dlsym(RTLD_DEFAULT, name);
	Dl_info a, b;

	if (!p) {
		if (optional)
			return NULL;
		static const char msg[] = "fastloop: cannot resolve a libc symbol; aborting\n";
		if (write(2, msg, sizeof(msg) - 1) < 0) {
			/* nothing more we can do */
		}
		abort();
	}
	if (self && self == p && dladdr(p, &a) && dladdr((void *)load, &b) &&
	    a.dli_fbase == b.dli_fbase) {
		static const char msg[] = "fastloop: RTLD_NEXT resolved to our own hook; aborting\n";
		if (write(2, msg, sizeof(msg) - 1) < 0) {
			/* nothing more we can do */
		}
		abort();
	}
	return p;
}

#define R(n) flp_real.n = (__typeof__(flp_real.n))load(#n, false)
#define O(n) flp_real.n = (__typeof__(flp_real.n))load(#n, true)

void flp_real_resolve(void)
{
	R(socket); R(bind); R(listen); R(accept); R(accept4); R(connect);
	R(close); O(close_range); R(shutdown); R(dup); R(dup2); R(dup3);
	R(fcntl); R(ioctl); R(getsockname); R(getpeername); R(getsockopt);
	R(setsockopt); R(send); R(sendto); R(sendmsg); R(recv); R(recvfrom);
	R(recvmsg); R(read); R(write); R(readv); R(writev); R(sendfile);
	R(splice); R(sendmmsg); R(recvmmsg);
	R(poll); R(ppoll); R(select); R(pselect); R(epoll_ctl);
	R(epoll_wait); R(epoll_pwait); O(epoll_pwait2); R(fork); R(sigaction); R(execve);
	O(execveat); R(fexecve); R(execvpe);
}
