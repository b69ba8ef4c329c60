/* close.c — close, close_range, closefrom, shutdown. */
#include <unistd.h>
#include "hook.h"

FLP_EXPORT int close(int fd)
{
	flp_enter(fd);
	return (int)flp_ret(conn_close(fd));
}

FLP_EXPORT int close_range(unsigned first, unsigned last, int flags)
{
	flp_enter(-1);
	return (int)flp_ret(conn_close_range(first, last, flags));
}

FLP_EXPORT void closefrom(int lowfd)
{
	flp_enter(-1);
	conn_close_range((unsigned)(lowfd < 0 ? 0 : lowfd), ~0u, 0);
}

FLP_EXPORT int shutdown(int fd, int how)
{
	flp_enter(fd);
	return (int)flp_ret(conn_shutdown(fd, how));
}
