/* poll.c — poll, ppoll, select, pselect. */
#include <time.h>
#include "hook.h"

static int ts_ms(const struct timespec *ts)
{
	if (!ts)
		return -1;
	return (int)(ts->tv_sec * 1000 + (ts->tv_nsec + 999999) / 1000000);
}

FLP_EXPORT int poll(struct pollfd *pfd, nfds_t n, int timeout)
{
	flp_enter(-1);
	return (int)flp_ret(wait_poll(pfd, n, timeout, NULL));
}

FLP_EXPORT int ppoll(struct pollfd *pfd, nfds_t n, const struct timespec *ts,
		     const sigset_t *mask)
{
	flp_enter(-1);
	return (int)flp_ret(wait_poll(pfd, n, ts_ms(ts), mask));
}

FLP_EXPORT int select(int n, fd_set *rd, fd_set *wr, fd_set *ex,
		      struct timeval *tv)
{
	bool handled;
	int r;

	flp_enter(-1);
	r = wait_select(n, rd, wr, ex,
			tv ? (int)(tv->tv_sec * 1000 + (tv->tv_usec + 999) / 1000) : -1,
			NULL, &handled);
	if (!handled)
		return flp_real.select(n, rd, wr, ex, tv);
	return (int)flp_ret(r);
}

FLP_EXPORT int pselect(int n, fd_set *rd, fd_set *wr, fd_set *ex,
		       const struct timespec *ts, const sigset_t *mask)
{
	bool handled;
	int r;

	flp_enter(-1);
	r = wait_select(n, rd, wr, ex, ts_ms(ts), mask, &handled);
	if (!handled)
		return flp_real.pselect(n, rd, wr, ex, ts, mask);
	return (int)flp_ret(r);
}

/* The fortified names: a check of the array's size, then the call. */
extern void __chk_fail(void) __attribute__((noreturn));

FLP_EXPORT int __poll_chk(struct pollfd *pfd, nfds_t n, int timeout, size_t len)
{
	if (len / sizeof(*pfd) < n)
		__chk_fail();
	return poll(pfd, n, timeout);
}

FLP_EXPORT int __ppoll_chk(struct pollfd *pfd, nfds_t n, const struct timespec *ts,
			   const sigset_t *mask, size_t len)
{
	if (len / sizeof(*pfd) < n)
		__chk_fail();
	return ppoll(pfd, n, ts, mask);
}
