/* epoll.c — epoll_ctl, epoll_wait, epoll_pwait, epoll_pwait2. */
#include "hook.h"

FLP_EXPORT int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	flp_enter(fd);
	return (int)flp_ret(wait_epoll_ctl(epfd, op, fd, ev));
}

FLP_EXPORT int epoll_wait(int epfd, struct epoll_event *ev, int max, int timeout)
{
	int r;

	flp_enter(-1);
	do
		r = wait_fix_epoll(epfd, ev, flp_real.epoll_wait(epfd, ev, max, timeout));
	while (r == 0 && timeout < 0);
	return r;
}

FLP_EXPORT int epoll_pwait(int epfd, struct epoll_event *ev, int max, int timeout,
			   const sigset_t *mask)
{
	int r;

	flp_enter(-1);
	do
		r = wait_fix_epoll(epfd, ev, flp_real.epoll_pwait(epfd, ev, max, timeout, mask));
	while (r == 0 && timeout < 0);
	return r;
}

FLP_EXPORT int epoll_pwait2(int epfd, struct epoll_event *ev, int max,
			    const struct timespec *ts, const sigset_t *mask)
{
	int r;

	flp_enter(-1);
	if (!flp_real.epoll_pwait2)
		return (int)flp_ret(-ENOSYS);
	do
		r = wait_fix_epoll(epfd, ev, flp_real.epoll_pwait2(epfd, ev, max, ts, mask));
	while (r == 0 && !ts);
	return r;
}
