/* dup.c — dup, dup2, dup3: the new number shares the socket's entry. */
#include "hook.h"

FLP_EXPORT int dup(int fd)
{
	flp_enter(fd);
	return (int)flp_ret(conn_dup(fd, -1, 0, DUP_DUP));
}

FLP_EXPORT int dup2(int fd, int newfd)
{
	flp_enter(fd);
	return (int)flp_ret(conn_dup(fd, newfd, 0, DUP_DUP2));
}

FLP_EXPORT int dup3(int fd, int newfd, int flags)
{
	flp_enter(fd);
	return (int)flp_ret(conn_dup(fd, newfd, flags, DUP_DUP3));
}
