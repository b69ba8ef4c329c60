/*
 * send.c — send, sendto, sendmsg, write, writev, sendfile.  A final socket
 * (plain TCP, or FAST over a UDS) goes straight to libc; FAST over rings
 * goes to shm.c.
 */
#include <fcntl.h>
#include "hook.h"

/* One buffer to the rings of a shm socket. */
static ssize_t shm_buf(int fd, struct flp_sock *s, const void *buf, size_t len,
		       int flags)
{
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };

	return flp_ret(shm_sendmsg(fd, s, &m, flags));
}

FLP_EXPORT ssize_t sendmsg(int fd, const struct msghdr *m, int flags)
{
	struct flp_sock *s = flp_enter(fd);

	flp_data_call(s);
	if (flp_is_shm(s))
		return flp_ret(m ? shm_sendmsg(fd, s, m, flags) : -EFAULT);
	if (flp_is_fast(s) && m && m->msg_name) {
		/* TCP ignores a destination on a connected socket; a UDS
		 * would fail with EISCONN */
		struct msghdr c = *m;
		c.msg_name = NULL;
		c.msg_namelen = 0;
		return flp_tx(s, flp_real.sendmsg(fd, &c, flags));
	}
	if (!flp_slow(s))
		return flp_tx(s, flp_real.sendmsg(fd, m, flags));
	return flp_ret(io_sendmsg(fd, s, m, flags));
}

static ssize_t send_buf(int fd, struct flp_sock *s, const void *buf, size_t len,
			int flags)
{
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };

	return flp_ret(io_sendmsg(fd, s, &m, flags));
}

FLP_EXPORT ssize_t send(int fd, const void *buf, size_t len, int flags)
{
	struct flp_sock *s = flp_enter(fd);

	flp_data_call(s);
	if (flp_is_shm(s))
		return shm_buf(fd, s, buf, len, flags);
	if (!flp_slow(s))
		return flp_tx(s, flp_real.send(fd, buf, len, flags));
	return send_buf(fd, s, buf, len, flags);
}

/* sendto on a connected stream socket ignores the address, as TCP does. */
FLP_EXPORT ssize_t sendto(int fd, const void *buf, size_t len, int flags,
			  const struct sockaddr *sa, socklen_t sl)
{
	struct flp_sock *s = flp_enter(fd);

	flp_data_call(s);
	if (flp_is_shm(s))
		return shm_buf(fd, s, buf, len, flags);
	if (flp_is_fast(s))
		return flp_tx(s, flp_real.send(fd, buf, len, flags));
	if (!flp_slow(s))
		return flp_real.sendto(fd, buf, len, flags, sa, sl);
	return send_buf(fd, s, buf, len, flags);
}

FLP_EXPORT ssize_t write(int fd, const void *buf, size_t len)
{
	struct flp_sock *s = flp_enter(fd);

	flp_data_call(s);
	if (flp_is_shm(s))
		return shm_buf(fd, s, buf, len, 0);
	if (!flp_slow(s))
		return flp_tx(s, flp_real.write(fd, buf, len));
	return send_buf(fd, s, buf, len, 0);
}

FLP_EXPORT ssize_t writev(int fd, const struct iovec *iov, int n)
{
	struct flp_sock *s = flp_enter(fd);
	struct msghdr m = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)n };

	flp_data_call(s);
	if (n < 0 && (flp_is_shm(s) || flp_slow(s)))
		return flp_ret(-EINVAL);
	if (flp_is_shm(s))
		return flp_ret(shm_sendmsg(fd, s, &m, 0));
	if (!flp_slow(s))
		return flp_tx(s, flp_real.writev(fd, iov, n));
	return flp_ret(io_sendmsg(fd, s, &m, 0));
}

/* sendfile: a not-final socket is settled first (an undecided server
 * decides); a pending client's bytes go over TCP like any others. */
FLP_EXPORT ssize_t sendfile(int out, int in, off_t *off, size_t count)
{
	struct flp_sock *s = flp_enter(out);

	flp_data_call(s);
	if (flp_slow(s))
		conn_settle_fd(out, false);
	s = fdt_get(out);
	/* a ring (FAST, or DRAIN: still reading the client's TCP bytes,
	 * but sending on the ring) cannot take the kernel's sendfile */
	if (flp_shm(s))
		return flp_ret(shm_sendfile(out, s, in, off, count));
	return flp_tx(s, flp_real.sendfile(out, in, off, count));
}

/* The same call under its large-file name (what nginx and Python call). */
FLP_EXPORT ssize_t sendfile64(int out, int in, off64_t *off, size_t count)
{
	_Static_assert(sizeof(off64_t) == sizeof(off_t), "off_t is 64-bit here");
	return sendfile(out, in, (off_t *)off, count);
}

/* sendmmsg: one sendmsg per message on a socket of ours, as the kernel
 * does (it stops at the first error, reporting what went before). */
FLP_EXPORT int sendmmsg(int fd, struct mmsghdr *v, unsigned n, int flags)
{
	struct flp_sock *s = flp_enter(fd);
	unsigned i;

	if (!flp_is_shm(s) && !flp_slow(s))
		return flp_real.sendmmsg(fd, v, n, flags);
	for (i = 0; i < n; i++) {
		ssize_t r = sendmsg(fd, &v[i].msg_hdr, flags);
		if (r < 0)
			return i ? (int)i : -1;
		v[i].msg_len = (unsigned)r;
	}
	return (int)i;
}
