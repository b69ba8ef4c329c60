/* connect.c — connect: claim a fast channel when a listener is published. */
#include "hook.h"

FLP_EXPORT int connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	flp_enter(fd);
	return (int)flp_ret(conn_connect(fd, sa, len));
}
