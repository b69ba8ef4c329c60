/* epoll.c — epoll_ctl, epoll_wait, epoll_pwait, epoll_pwait2. */
#include "hook.h"

FLP_EXPORT int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	flp_enter(fd);
	return (int)flp_ret(wait_epoll_ctl(epfd, op, fd, ev));
}

FLP_EXPORT int epoll_wait(int epfd, struct epoll_event *ev, int max, int timeout)
{
	flp_enter(-1);
	return (int)flp_ret(wait_epoll(epfd, ev, max, timeout < 0 ? -1 :
				       (long long)timeout * 1000000, NULL, false));
}

FLP_EXPORT int epoll_pwait(int epfd, struct epoll_event *ev, int max, int timeout,
			   const sigset_t *mask)
{
	flp_enter(-1);
	return (int)flp_ret(wait_epoll(epfd, ev, max, timeout < 0 ? -1 :
				       (long long)timeout * 1000000, mask, false));
}

FLP_EXPORT int epoll_pwait2(int epfd, struct epoll_event *ev, int max,
			    const struct timespec *ts, const sigset_t *mask)
{
	flp_enter(-1);
	if (!flp_real.epoll_pwait2)
		return (int)flp_ret(-ENOSYS);
	return (int)flp_ret(wait_epoll(epfd, ev, max, ts ? (long long)ts->tv_sec * 1000000000 +
				       ts->tv_nsec : -1, mask, true));
}
