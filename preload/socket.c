/*
 * socket.c — socket, listen.  bind is passed through untouched (nothing
 * about a socket's address changes under fastloop).
 */
#include "hook.h"

FLP_EXPORT int socket(int domain, int type, int protocol)
{
	int fd;

	flp_enter(-1);
	fd = flp_real.socket(domain, type, protocol);
	if (fd >= 0 && fdt_get(fd))
		conn_forget_stale(fd);
	if (fd >= 0) {
		wait_pre_forget(fd);    /* a number closed behind our back */
		fdt_set_hint(fd, conn_tcp_hint(domain, type, protocol));
	}
	return fd;
}

FLP_EXPORT int listen(int fd, int backlog)
{
	flp_enter(fd);
	return (int)flp_ret(conn_listen(fd, backlog));
}
