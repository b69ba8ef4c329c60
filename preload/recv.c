/* recv.c — recv, recvfrom, recvmsg, read, readv.  FAST over rings goes
 * to shm.c; TCP reports no source address, so none is given. */
#include "hook.h"

static ssize_t shm_buf(int fd, struct flp_sock *s, void *buf, size_t len,
		       int flags)
{
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };

	return flp_ret(shm_recvmsg(fd, s, &m, flags));
}

FLP_EXPORT ssize_t recvmsg(int fd, struct msghdr *m, int flags)
{
	struct flp_sock *s = flp_enter(fd);
	ssize_t r;

	flp_data_call(s);
	if (flp_is_shm(s)) {
		if (!m)
			return flp_ret(-EFAULT);
		r = flp_ret(shm_recvmsg(fd, s, m, flags));
		if (r >= 0)
			m->msg_namelen = 0;
		return r;
	}
	if (flp_is_fast(s) && m && m->msg_name) {
		/* TCP reports no source address; a UDS would report its own */
		void *name = m->msg_name;
		m->msg_name = NULL;
		r = flp_rx(s, flp_real.recvmsg(fd, m, flags), flags);
		m->msg_name = name;
		m->msg_namelen = 0;
		return r;
	}
	if (!flp_slow(s))
		return flp_rx(s, flp_real.recvmsg(fd, m, flags), flags);
	r = flp_ret(io_recvmsg(fd, s, m, flags));
	if (r >= 0 && m && m->msg_name)
		m->msg_namelen = 0;
	return r;
}

static ssize_t recv_buf(int fd, struct flp_sock *s, void *buf, size_t len,
			int flags)
{
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };

	return flp_ret(io_recvmsg(fd, s, &m, flags));
}

FLP_EXPORT ssize_t recv(int fd, void *buf, size_t len, int flags)
{
	struct flp_sock *s = flp_enter(fd);

	flp_data_call(s);
	if (flp_is_shm(s))
		return shm_buf(fd, s, buf, len, flags);
	if (!flp_slow(s))
		return flp_rx(s, flp_real.recv(fd, buf, len, flags), flags);
	return recv_buf(fd, s, buf, len, flags);
}

FLP_EXPORT ssize_t recvfrom(int fd, void *buf, size_t len, int flags,
			    struct sockaddr *sa, socklen_t *sl)
{
	struct flp_sock *s = flp_enter(fd);
	ssize_t r;

	flp_data_call(s);
	if (flp_is_shm(s)) {
		r = shm_buf(fd, s, buf, len, flags);
		if (r >= 0 && sl)
			*sl = 0;
		return r;
	}
	if (flp_is_fast(s)) {
		/* a UDS would report an AF_UNIX source; TCP reports none */
		r = flp_rx(s, flp_real.recvfrom(fd, buf, len, flags, NULL, NULL), flags);
		if (r >= 0 && sl)
			*sl = 0;
		return r;
	}
	if (!flp_slow(s))
		return flp_real.recvfrom(fd, buf, len, flags, sa, sl);
	r = recv_buf(fd, s, buf, len, flags);
	if (r >= 0 && sl)
		*sl = 0;
	return r;
}

FLP_EXPORT ssize_t read(int fd, void *buf, size_t len)
{
	struct flp_sock *s = flp_enter(fd);

	flp_data_call(s);
	if (flp_is_shm(s))
		return shm_buf(fd, s, buf, len, 0);
	if (!flp_slow(s))
		return flp_rx(s, flp_real.read(fd, buf, len), 0);
	return recv_buf(fd, s, buf, len, 0);
}

FLP_EXPORT ssize_t readv(int fd, const struct iovec *iov, int n)
{
	struct flp_sock *s = flp_enter(fd);
	struct msghdr m = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)n };

	flp_data_call(s);
	if (n < 0 && (flp_is_shm(s) || flp_slow(s)))
		return flp_ret(-EINVAL);
	if (flp_is_shm(s))
		return flp_ret(shm_recvmsg(fd, s, &m, 0));
	if (!flp_slow(s))
		return flp_rx(s, flp_real.readv(fd, iov, n), 0);
	return flp_ret(io_recvmsg(fd, s, &m, 0));
}

/* The fortified names (-D_FORTIFY_SOURCE): the same calls after a check
 * of the buffer's size, which fails as glibc's would. */
extern void __chk_fail(void) __attribute__((noreturn));

FLP_EXPORT ssize_t __read_chk(int fd, void *buf, size_t len, size_t buflen)
{
	if (len > buflen)
		__chk_fail();
	return read(fd, buf, len);
}

FLP_EXPORT ssize_t __recv_chk(int fd, void *buf, size_t len, size_t buflen,
			      int flags)
{
	if (len > buflen)
		__chk_fail();
	return recv(fd, buf, len, flags);
}

FLP_EXPORT ssize_t __recvfrom_chk(int fd, void *buf, size_t len, size_t buflen,
				  int flags, struct sockaddr *sa, socklen_t *sl)
{
	if (len > buflen)
		__chk_fail();
	return recvfrom(fd, buf, len, flags, sa, sl);
}

/* recvmmsg: one recvmsg per message on a socket of ours; after the first,
 * only what is there (MSG_WAITFORONE is what a stream gives anyway). */
FLP_EXPORT int recvmmsg(int fd, struct mmsghdr *v, unsigned n, int flags,
			struct timespec *ts)
{
	struct flp_sock *s = flp_enter(fd);
	unsigned i;

	if (!flp_is_shm(s) && !flp_slow(s))
		return flp_real.recvmmsg(fd, v, n, flags, ts);
	for (i = 0; i < n; i++) {
		ssize_t r = recvmsg(fd, &v[i].msg_hdr, i ? flags | MSG_DONTWAIT : flags);
		if (r < 0)
			return i ? (int)i : -1;
		v[i].msg_len = (unsigned)r;
		if (r == 0)
			return (int)i + 1;
	}
	return (int)i;
}
