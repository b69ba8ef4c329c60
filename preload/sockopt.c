/* sockopt.c — getsockname, getpeername, getsockopt, setsockopt: a FAST
 * socket answers as the TCP socket it replaced. */
#include "hook.h"

FLP_EXPORT int getsockname(int fd, struct sockaddr *sa, socklen_t *len)
{
	struct flp_sock *s = flp_enter(fd);

	if (!flp_is_uds(s))
		return flp_real.getsockname(fd, sa, len);
	return (int)flp_ret(emu_getsockname(s, sa, len, false));
}

FLP_EXPORT int getpeername(int fd, struct sockaddr *sa, socklen_t *len)
{
	struct flp_sock *s = flp_enter(fd);

	if (!flp_is_uds(s))
		return flp_real.getpeername(fd, sa, len);
	return (int)flp_ret(emu_getsockname(s, sa, len, true));
}

FLP_EXPORT int getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
	struct flp_sock *s = flp_enter(fd);

	if (!flp_is_uds(s))
		return flp_real.getsockopt(fd, level, name, val, len);
	return (int)flp_ret(emu_getsockopt(fd, s, level, name, val, len));
}

FLP_EXPORT int setsockopt(int fd, int level, int name, const void *val,
			  socklen_t len)
{
	struct flp_sock *s = flp_enter(fd);

	if (flp_is_uds(s))
		return (int)flp_ret(emu_setsockopt(fd, s, level, name, val, len));
	return (int)flp_ret(conn_setsockopt(fd, s, level, name, val, len));
}
