/*
 * io.c — data calls on a socket that is not final yet.
 *
 * A PENDING client sends over TCP and keeps a copy of what it sent (up to
 * the retention bound) for the re-send at the switch; at the bound it waits
 * a bounded time for the adoption, then revokes its claim and stays TCP.
 * It never blocks inside a TCP send:
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
static bool still_slow(int fd)
{
	struct flp_sock *s = fdt_get(fd);

	if (flp_slow(s))
		conn_settle(fd, s, s->kind == SK_UNDECIDED);
	return flp_slow(fdt_get(fd));
}

/* At most max bytes of an iovec array, into out (same capacity). */
static size_t iov_trim(const struct iovec *iov, size_t niov, size_t max,
		       struct iovec *out)
{
	size_t k = 0;

	for (size_t i = 0; i < niov && max; i++) {
		out[k] = iov[i];
		if (out[k].iov_len > max)
			out[k].iov_len = max;
		max -= out[k].iov_len;
		k++;
	}
	return k;
}

/*
 * Send on a not-final socket.  A PENDING client sends over TCP without
 * blocking and keeps a copy of every byte sent.  When the copy reaches the
 * bound it first waits a while for the server to adopt (a sender that
 * starts at once would otherwise always lose the fast path), then revokes
 * its claim and goes on as plain TCP.
 */
ssize_t io_sendmsg(int fd, struct flp_sock *s, const struct msghdr *m, int flags)
{
	size_t niov = m->msg_iovlen, total, done = 0, cap = niov ? niov : 1;
	bool nb = (flags & MSG_DONTWAIT) || fd_nonblock(fd);
	struct iovec *iov, *base, *lim;
	struct msghdr cur = *m;
	uint64_t full_since = 0;
	ssize_t r;
	int e;

	(void)s;
	if (niov > IOV_MAX)
		return -EMSGSIZE;
	if (!(base = malloc(2 * cap * sizeof(*iov))))
		return -ENOMEM;
	iov = base;
	lim = base + cap;
	memcpy(iov, m->msg_iov, niov * sizeof(*iov));
	total = iov_total(iov, niov);
	for (;;) {
		struct flp_sock *p;
		size_t room;

		pthread_mutex_lock(&flp_mu);
		if (!still_slow(fd)) {
			pthread_mutex_unlock(&flp_mu);
			cur.msg_iov = iov;
			cur.msg_iovlen = niov;
			r = flp_real.sendmsg(fd, &cur, flags);
			e = errno;
			r = r < 0 ? (done ? (ssize_t)done : -e) : (ssize_t)done + r;
			break;
		}
		p = fdt_get(fd);
		room = conn_retain_max() - (p->kind == SK_PENDING ? p->retained_len : 0);
		if (p->kind == SK_PENDING && room == 0) {
			uint64_t limit = nb ? 2000 : (uint64_t)flp_cfg.decide_wait_us;
			if (!full_since)
				full_since = flp_now_us();
			if (flp_now_us() - full_since >= limit)
				conn_settle(fd, p, true);   /* revoke (or switch) */
			pthread_mutex_unlock(&flp_mu);
			if (flp_now_us() - full_since < limit && !conn_spin_take(-1, fd)) {
				struct pollfd q = { .fd = fd, .events = POLLIN };
				flp_real.poll(&q, 1, 1);
			}
			continue;
		}
		cur.msg_iov = lim;
		cur.msg_iovlen = iov_trim(iov, niov, room, lim);
		r = flp_real.sendmsg(fd, &cur, flags | MSG_DONTWAIT);
		e = errno;
		if (r > 0) {
			if (retain(p, lim, cur.msg_iovlen, (size_t)r) < 0)
				conn_settle(fd, p, true);  /* no copy: stay TCP */
			advance(&iov, &niov, (size_t)r);
			done += (size_t)r;
		}
		pthread_mutex_unlock(&flp_mu);
		if (r < 0 && e != EAGAIN) {
			/* a TCP error while pending: an adopting server's TCP end
			 * may be gone (it exec()ed); settling decides */
			if (e == EPIPE || e == ECONNRESET) {
				conn_settle_fd(fd, true);
				if (!flp_slow(fdt_get(fd)))
					continue;
			}
			r = done ? (ssize_t)done : -e;
			break;
		}
		if (done == total || (nb && done)) {
			r = (ssize_t)done;
			break;
		}
		if (nb && r < 0) {
			r = -EAGAIN;
			break;
		}
		if (r < 0) {
			/* room on TCP, or the doorbell / the server's data */
			struct pollfd q = { .fd = fd, .events = POLLOUT | POLLIN };
			if (flp_real.poll(&q, 1, 100) < 0 && errno == EINTR) {
				r = done ? (ssize_t)done : -EINTR;
				break;
			}
		}
	}
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
		if (!still_slow(fd)) {
			pthread_mutex_unlock(&flp_mu);
			r = flp_real.recvmsg(fd, m, flags);
			return r < 0 ? -errno : r;
		}
		pthread_mutex_unlock(&flp_mu);
		if ((flags & MSG_DONTWAIT) || fd_nonblock(fd))
			return -EAGAIN;
		/* the server is usually a few microseconds from adopting: a
		 * short spin lets us switch without being woken by the
		 * doorbell (a sleeping wakeup costs ~20 us here) */
		if (i == 0 && conn_spin_take(-1, fd))
			continue;
		/* wait in the kernel for the doorbell, data or EOF; EINTR and
		 * SO_RCVTIMEO's EAGAIN are the app's; anything else (data, EOF,
		 * a reset) is settled above: a switch, or TCP with the same
		 * result for the real call */
		r = flp_real.recv(fd, &b, 1, MSG_PEEK);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			return -errno;
	}
	return -EIO;
}
