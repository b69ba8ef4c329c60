/*
 * fcntl.c — fcntl (and fcntl64, which glibc's headers map fcntl to with
 * _FILE_OFFSET_BITS=64), ioctl.  Only F_DUPFD/F_DUPFD_CLOEXEC concern us;
 * every other command passes through with its argument untouched.
 */
#include <fcntl.h>
#include <stdarg.h>
#include <sys/ioctl.h>
#include "hook.h"

static int do_fcntl(int fd, int cmd, void *arg)
{
	flp_enter(fd);
	if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC)
		return (int)flp_ret(conn_dup(fd, (int)(long)arg, 0,
					     cmd == F_DUPFD ? DUP_FCNTL : DUP_FCNTL_CLOEXEC));
	return flp_real.fcntl(fd, cmd, arg);
}

FLP_EXPORT int fcntl(int fd, int cmd, ...)
{
	va_list ap;
	void *arg;

	/* every fcntl argument is an int or a pointer, passed in a register
	 * slot of pointer width; reading it as a pointer is how libc itself
	 * forwards it */
	va_start(ap, cmd);
	arg = va_arg(ap, void *);
	va_end(ap);
	return do_fcntl(fd, cmd, arg);
}

FLP_EXPORT int fcntl64(int fd, int cmd, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, cmd);
	arg = va_arg(ap, void *);
	va_end(ap);
	return do_fcntl(fd, cmd, arg);
}

/* ioctl: on our sockets the engine answers the queue sizes as TCP. */
FLP_EXPORT int ioctl(int fd, unsigned long req, ...)
{
	struct flp_sock *s = flp_enter(fd);
	va_list ap;
	void *arg;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (!s)
		return flp_real.ioctl(fd, req, arg);
	return (int)flp_ret(io_ioctl(fd, s, req, arg));
}
