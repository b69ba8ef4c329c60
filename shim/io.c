/*
 * io.c — data calls on a socket that is not final yet.
 *
 * A PENDING client sends over TCP and keeps a copy of what it sent (up to
 * the retention bound) for the re-send at the switch; past the bound it
 * revokes its claim and stays TCP.  It never blocks inside a TCP send:
 * while it waits for room it also waits for the doorbell, since a server
 * that adopted will never read the TCP bytes.  A receive waits in the
 * kernel (MSG_PEEK) for the first byte — doorbell or the server's data —
 * so SO_RCVTIMEO and SA_RESTART behave as they do on TCP.
 * An UNDECIDED server decides at its first data call.
 */
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "flp.h"

static bool fd_nonblock(int fd)
{
	int fl = flp_real.fcntl(fd, F_GETFL);

	return fl >= 0 && (fl & O_NONBLOCK);
}

static size_t iov_total(const struct iovec *iov, size_t n)
{
	size_t t = 0;

	for (size_t i = 0; i < n; i++)
		t += iov[i].iov_len;
	return t;
}

/* Append the first n bytes described by iov to s->retained. */
static int retain(struct flp_sock *s, const struct iovec *iov, size_t niov, size_t n)
{
	char *p = realloc(s->retained, s->retained_len + n);

	if (!p)
		return -ENOMEM;
	s->retained = p;
	for (size_t i = 0; i < niov && n; i++) {
		size_t c = iov[i].iov_len < n ? iov[i].iov_len : n;
		memcpy(p + s->retained_len, iov[i].iov_base, c);
		s->retained_len += c;
		n -= c;
	}
	return 0;
}

/* Drop the first n bytes from an iovec array (in place). */
static void advance(struct iovec **iov, size_t *niov, size_t n)
{
	while (*niov && n >= (*iov)->iov_len) {
		n -= (*iov)->iov_len;
		(*iov)++;
		(*niov)--;
	}
	if (*niov && n) {
		(*iov)->iov_base = (char *)(*iov)->iov_base + n;
		(*iov)->iov_len -= n;
	}
}

/* Settle s under the lock; returns whether the fd is still not final. */
static bool still_slow(int fd, bool decide_server, size_t want)
{
	struct flp_sock *s = fdt_get(fd);

	if (flp_slow(s)) {
		conn_settle(fd, s, decide_server && s->kind == SK_UNDECIDED);
		s = fdt_get(fd);
		if (flp_slow(s) && s->kind == SK_PENDING &&
		    s->retained_len + want > conn_retain_max())
			conn_settle(fd, s, true);
	}
	return flp_slow(fdt_get(fd));
}

ssize_t io_sendmsg(int fd, struct flp_sock *s, const struct msghdr *m, int flags)
{
	struct iovec local[16], *iov = local, *base;
	struct msghdr cur = *m;
	size_t niov = m->msg_iovlen, total, done = 0;
	bool nb = (flags & MSG_DONTWAIT) || fd_nonblock(fd);
	ssize_t r;
	int e;

	(void)s;
	if (niov > IOV_MAX)
		return -EMSGSIZE;
	if (niov > 16 && !(iov = malloc(niov * sizeof(*iov))))
		return -ENOMEM;
	base = iov;
	memcpy(iov, m->msg_iov, niov * sizeof(*iov));
	total = iov_total(iov, niov);
	for (;;) {
		pthread_mutex_lock(&flp_mu);
		if (!still_slow(fd, true, total - done)) {
			pthread_mutex_unlock(&flp_mu);
			cur.msg_iov = iov;
			cur.msg_iovlen = niov;
			r = flp_real.sendmsg(fd, &cur, flags);
			e = errno;
			r = r < 0 ? (done ? (ssize_t)done : -e) : (ssize_t)done + r;
			break;
		}
		cur.msg_iov = iov;
		cur.msg_iovlen = niov;
		r = flp_real.sendmsg(fd, &cur, flags | MSG_DONTWAIT);
		e = errno;
		if (r > 0) {
			struct flp_sock *p = fdt_get(fd);
			if (retain(p, iov, niov, (size_t)r) < 0) {
				/* cannot keep a copy: this connection stays TCP */
				conn_settle(fd, p, true);
			}
			advance(&iov, &niov, (size_t)r);
			done += (size_t)r;
		}
		pthread_mutex_unlock(&flp_mu);
		if (r < 0 && e != EAGAIN) {
			r = done ? (ssize_t)done : -e;
			break;
		}
		if (done == total || (nb && done)) {
			r = (ssize_t)done;
			break;
		}
		if (nb) {
			r = -EAGAIN;
			break;
		}
		/* room on TCP, or the doorbell / the server's data */
		struct pollfd p = { .fd = fd, .events = POLLOUT | POLLIN };
		if (flp_real.poll(&p, 1, 100) < 0 && errno == EINTR) {
			r = done ? (ssize_t)done : -EINTR;
			break;
		}
	}
	if (base != local)
		free(base);
	return r;
}

ssize_t io_recvmsg(int fd, struct flp_sock *s, struct msghdr *m, int flags)
{
	char b;
	ssize_t r;

	(void)s;
	for (int i = 0; i < 1000000; i++) {
		pthread_mutex_lock(&flp_mu);
		if (!still_slow(fd, true, 0)) {
			pthread_mutex_unlock(&flp_mu);
			r = flp_real.recvmsg(fd, m, flags);
			return r < 0 ? -errno : r;
		}
		pthread_mutex_unlock(&flp_mu);
		if ((flags & MSG_DONTWAIT) || fd_nonblock(fd))
			return -EAGAIN;
		/* wait in the kernel for the doorbell, data or EOF */
		r = flp_real.recv(fd, &b, 1, MSG_PEEK);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			return -errno;
		if (r < 0)
			return -errno;
	}
	return -EIO;
}
