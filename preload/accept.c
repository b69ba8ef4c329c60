/* accept.c — accept, accept4: adopt the client's claim if it has one. */
#include "hook.h"

FLP_EXPORT int accept(int fd, struct sockaddr *sa, socklen_t *len)
{
	flp_enter(fd);
	return (int)flp_ret(conn_accept(fd, sa, len, 0));
}

FLP_EXPORT int accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
	flp_enter(fd);
	return (int)flp_ret(conn_accept(fd, sa, len, flags));
}
