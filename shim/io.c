/*
 * io.c — data calls on a socket that is not final yet.
 *
 * A PENDING client sends over TCP as plain TCP would: nothing is copied or
 * re-sent, because an adopting server reads those bytes from its TCP
 * socket up to our FIN before it reads the UDS (SK_DRAIN).  A receive
 * waits in the kernel (MSG_PEEK) for the first event — the adopter's FIN
 * or the server's data — so SO_RCVTIMEO and SA_RESTART behave as on TCP.
 * A client that has sent `retain` bytes and waited PEND_GIVE_UP_US
 * without an adoption stops waiting for one (revokes) and is plain TCP:
 * nothing is lost either way, the bound only ends the per-call look at
 * the claim for a server that is preloaded but never adopts.
 * An UNDECIDED server decides at its first data call.  A DRAIN server
 * reads the client's TCP bytes first, then the UDS.
 */
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <linux/sockios.h>

#include "flp.h"
#include "stat.h"

/* A preloaded server adopts in accept(), however late that comes (a busy
 * server, or one started just now); a second is long for that. */
#define PEND_GIVE_UP_US 1000000

static bool fd_nonblock(int fd)
{
	int fl = flp_real.fcntl(fd, F_GETFL);

	return fl >= 0 && (fl & O_NONBLOCK);
}

/* A data call on a socket sock_tcp_for_now goes into the kernel: no switch
 * may happen meanwhile (conn.c waits for inflight to be 0), or a blocked
 * read would end in the peer's switch FIN, a blocked write in EPIPE.
 * Returns the entry's life, for call_end.  Caller holds flp_mu. */
static uint64_t call_begin(struct flp_sock *s, bool send)
{
	s->inflight++;
	s->sending += send;
	return s->serial;
}

/* The call is back with r: count it (a server's trial counts calls that
 * moved bytes; a client what it sent, for its give-up).  Returns whether
 * s is still the entry it was.  Caller holds flp_mu. */
static bool call_end(struct flp_sock *s, uint64_t life, ssize_t r, int e, bool sent)
{
	if (s->serial != life)
		return false;           /* closed meanwhile */
	s->inflight--;
	s->sending -= sent;
	/* switched while this send was in the kernel: the last such send
	 * ends our TCP bytes (conn.c, client_switch) */
	if (sent && !s->sending && s->fin_tcp >= 0) {
		flp_real.shutdown(s->fin_tcp, SHUT_WR);
		flp_close_hidden(s, &s->fin_tcp);
	}
	/* edge-triggered: after EAGAIN the next readiness is a new edge,
	 * not one the app was told of (the switch's filter must let it by) */
	for (int k = 0; r < 0 && e == EAGAIN && k < s->nep; k++)
		s->ep[k].seen &= sent ? ~(uint32_t)(EPOLLOUT | EPOLLWRNORM) :
					~(uint32_t)(EPOLLIN | EPOLLRDNORM);
	if (r > 0 && s->kind == SK_TRIAL)
		s->calls++;
	if (r > 0 && sent && s->kind == SK_PENDING)
		s->pend_sent += (uint64_t)r;
	return true;
}

/* Settle fd (an UNDECIDED server decides, a DRAIN server looks for the
 * FIN) and return its kind now.  Caller holds flp_mu. */
static int settle_kind(int fd)
{
	struct flp_sock *s = fdt_get(fd);

	if (flp_slow(s))
		conn_settle(fd, s, s->kind == SK_UNDECIDED);
	s = fdt_get(fd);
	return s ? s->kind : SK_NONE;
}

/* sendmsg/recvmsg on TCP (or the UDS), as send/recv when the message is
 * one plain buffer: the kernel's sendto/recvfrom skip copying in a msghdr
 * and an iovec (an app's write() or read() became a message here; a short
 * connection makes a few of them, each a little dearer). */
static ssize_t tcp_sendmsg(int fd, const struct msghdr *m, int flags)
{
	if (m->msg_iovlen == 1 && !m->msg_name && !m->msg_controllen)
		return flp_real.send(fd, m->msg_iov[0].iov_base, m->msg_iov[0].iov_len, flags);
	return flp_real.sendmsg(fd, m, flags);
}

static ssize_t tcp_recvmsg(int fd, struct msghdr *m, int flags)
{
	if (m->msg_iovlen == 1 && !m->msg_name && !m->msg_controllen) {
		m->msg_flags = 0;       /* a TCP read reports none */
		return flp_real.recv(fd, m->msg_iov[0].iov_base, m->msg_iov[0].iov_len, flags);
	}
	return flp_real.recvmsg(fd, m, flags);
}

/*
 * Send on a not-final socket.  PENDING: over TCP, blocking or not as the
 * app asked; past the bound (retain bytes and a second) without an
 * adoption the claim is revoked and the socket is plain TCP from then on.
 * DRAIN: our sends go to the UDS, nothing to wait for.
 */
ssize_t io_sendmsg(int fd, struct flp_sock *s, const struct msghdr *m, int flags)
{
	struct msghdr c;
	uint64_t life = 0;
	bool tcp_now;
	ssize_t r;
	int kind, e;

	pthread_mutex_lock(&flp_mu);
	kind = settle_kind(fd);
	s = fdt_get(fd);
	/* (a lazy server adopts after its own count of calls, whatever we
	 * sent meanwhile: its claim waits, it costs a look per call) */
	if (kind == SK_PENDING && !s->lazy && s->pend_sent >= flp_cfg.retain &&
	    flp_now_us() - s->pend_t0 >= PEND_GIVE_UP_US) {
		conn_settle(fd, s, true);
		kind = (s = fdt_get(fd)) ? s->kind : SK_NONE;
	}
	if ((tcp_now = s && sock_tcp_for_now(s, kind)))
		life = call_begin(s, true);
	pthread_mutex_unlock(&flp_mu);
	if ((kind == SK_FAST || kind == SK_DRAIN) && flp_shm(s))
		return shm_sendmsg(fd, s, m, flags);
	c = *m;
	if (kind == SK_FAST || kind == SK_DRAIN) {
		/* TCP ignores a destination on a connected socket; a UDS
		 * would fail with EISCONN */
		c.msg_name = NULL;
		c.msg_namelen = 0;
	}
	r = tcp_sendmsg(fd, &c, flags);
	e = errno;
	if (tcp_now) {
		pthread_mutex_lock(&flp_mu);
		call_end(s, life, r, e, true);
		pthread_mutex_unlock(&flp_mu);
	}
	if (r < 0)
		return -e;
	if (kind == SK_PENDING && r > 0 && !tcp_now) {
		pthread_mutex_lock(&flp_mu);
		if (fdt_get(fd) == s && s->kind == SK_PENDING)
			s->pend_sent += (uint64_t)r;
		pthread_mutex_unlock(&flp_mu);
	} else if (kind == SK_FAST || kind == SK_DRAIN) {
		stat_add_tx(s->st, r);
	}
	return r;
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

/* MSG_WAITALL across a switch: the n bytes just read count, and the
 * rest of the app's buffers (a copy of its iovec, never the app's own)
 * is read next.  False if no copy could be made. */
static bool gather(struct iovec **iov, struct iovec *small, const struct msghdr *m,
		   struct msghdr *cur, size_t *done, size_t n)
{
	size_t niov = m->msg_iovlen;

	if (*iov == m->msg_iov) {
		*iov = niov <= 8 ? small : malloc(niov * sizeof(**iov));
		if (!*iov)
			return false;
		memcpy(*iov, m->msg_iov, niov * sizeof(**iov));
		cur->msg_iov = *iov;
	}
	*done += n;
	advance(&cur->msg_iov, &cur->msg_iovlen, n);
	return true;
}

/* Yield (0) or sleep us microseconds. */
void flp_nap_us(long us)
{
	struct timespec ts = { 0, us * 1000 };

	if (us)
		nanosleep(&ts, NULL);
	else
		sched_yield();
}

/* Has the peer's FIN been read up to on TCP socket fd? */
static bool tcp_eof(int fd)
{
	char b;

	return flp_real.recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

/* Wait (blocking, as the app's recv would) until the hidden TCP socket h
 * of fd has something: data, FIN or an error.  The app's SO_RCVTIMEO (set
 * on its fd, the UDS) applies; EINTR and the timeout's EAGAIN are the
 * app's.  h is dup()ed under flp_mu, so a concurrent close cannot hand
 * its number to another file while we sleep on it.  Returns 0 or -errno. */
static int drain_wait(int fd)
{
	struct timeval tv = { 0, 0 };
	socklen_t l = sizeof(tv);
	struct flp_sock *s;
	char b;
	int h = -1;
	ssize_t r;

	pthread_mutex_lock(&flp_mu);
	s = fdt_get(fd);
	if (s && s->kind == SK_DRAIN && s->hidden_tcp >= 0)
		h = flp_real.fcntl(s->hidden_tcp, F_DUPFD_CLOEXEC, 0);
	pthread_mutex_unlock(&flp_mu);
	if (h < 0)
		return 0;
	flp_real.getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, &l);
	flp_real.setsockopt(h, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	r = flp_real.recv(h, &b, 1, MSG_PEEK);
	r = r < 0 && (errno == EINTR || errno == EAGAIN) ? -errno : 0;
	flp_real.close(h);
	return (int)r;
}

/*
 * One read from a DRAIN socket's hidden TCP (the client's bytes sent
 * before its switch), without blocking.  Returns the bytes read, 0 when
 * the drain is over (the socket is FAST now: read the UDS), or -EAGAIN.
 * Caller holds flp_mu.
 */
static ssize_t drain_read(struct flp_sock *s, struct msghdr *m, int flags)
{
	struct msghdr hm = *m;
	ssize_t r;

	hm.msg_name = NULL;
	hm.msg_namelen = 0;
	hm.msg_control = NULL;
	hm.msg_controllen = 0;
	if (s->hidden_tcp < 0)
		r = 0;
	else
		r = flp_real.recvmsg(s->hidden_tcp, &hm,
				     (flags & ~MSG_WAITALL) | MSG_DONTWAIT);
	if (r > 0) {
		m->msg_flags = hm.msg_flags;
		m->msg_controllen = 0;
		/* the FIN right behind the last byte: done now, so the
		 * app's next wait is on the UDS alone */
		if (!(flags & MSG_PEEK))
			conn_drain_check(s);
		return r;
	}
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return -EAGAIN;
	conn_drain_check(s);    /* FIN or a reset: TCP is done */
	return s->kind == SK_DRAIN ? -EAGAIN : 0;
}

/*
 * Receive on a not-final socket.  PENDING: wait for the adoption or the
 * server's data, then read whichever the socket now is.  DRAIN: the TCP
 * bytes first, then the UDS; MSG_WAITALL gathers across the boundary.
 */
ssize_t io_recvmsg(int fd, struct flp_sock *s, struct msghdr *m, int flags)
{
	struct iovec small[8], *iov = m->msg_iov;
	size_t niov = m->msg_iovlen, done = 0, total = 0;
	struct msghdr cur = *m;
	ssize_t r;
	char b;

	(void)s;
	for (size_t i = 0; i < niov; i++)
		total += m->msg_iov[i].iov_len;
	for (int i = 0; i < 1000000; i++) {
		int kind;

		pthread_mutex_lock(&flp_mu);
		kind = settle_kind(fd);
		if (kind == SK_DRAIN) {
			r = drain_read(fdt_get(fd), &cur, flags);
			pthread_mutex_unlock(&flp_mu);
			if (r > 0 && (flags & MSG_WAITALL) && !(flags & MSG_PEEK) &&
			    done + (size_t)r < total) {
				/* gather the rest: from TCP, or after the
				 * FIN from the UDS */
				if (!gather(&iov, small, m, &cur, &done, (size_t)r))
					return (ssize_t)(done + (size_t)r);
				continue;
			}
			if (r > 0) {
				r += (ssize_t)done;
				break;
			}
			if (r == 0)
				continue;       /* FAST now */
			if (done && !(flags & MSG_WAITALL)) {
				r = (ssize_t)done;
				break;
			}
			if ((flags & MSG_DONTWAIT) || fd_nonblock(fd)) {
				r = done ? (ssize_t)done : -EAGAIN;
				break;
			}
			if ((r = drain_wait(fd)) < 0) {
				r = done ? (ssize_t)done : r;
				break;
			}
			continue;
		}
		if ((s = fdt_get(fd)) && sock_tcp_for_now(s, kind)) {
			/* TCP for now: the kernel's call, as the app made it */
			uint64_t life = call_begin(s, false);
			bool more;
			int e;

			pthread_mutex_unlock(&flp_mu);
			r = tcp_recvmsg(fd, &cur, flags);
			e = errno;
			pthread_mutex_lock(&flp_mu);
			/* a lazy server's FIN, where TCP would end this read
			 * (EOF, or MSG_WAITALL cut short): if it is its
			 * adoption's doorbell, the rest comes from the fast
			 * channel; else it is the server's own end */
			more = call_end(s, life, r, e, false) && kind == SK_PENDING &&
			       ((r == 0 && done < total) ||
				(r > 0 && (flags & MSG_WAITALL) && !(flags & MSG_PEEK) &&
				 done + (size_t)r < total && tcp_eof(fd)));
			if (more) {
				/* (another thread may have switched it already;
				 * one in a call on TCP delays the switch: its
				 * call ends as the server drains what it sent) */
				for (int w = 0; s->kind == SK_PENDING && s->serial == life; w++) {
					conn_settle(fd, s, true);
					if (s->kind != SK_PENDING || s->serial != life || !s->inflight)
						break;
					pthread_mutex_unlock(&flp_mu);
					flp_nap_us(w < 20 ? 0 : 50);
					pthread_mutex_lock(&flp_mu);
				}
				more = fdt_get(fd) == s && s->serial == life &&
				       (s->kind == SK_FAST || s->kind == SK_DRAIN);
			}
			pthread_mutex_unlock(&flp_mu);
			if (more && r > 0 && !gather(&iov, small, m, &cur, &done, (size_t)r))
				return (ssize_t)(done + (size_t)r);
			if (more)
				continue;
			r = r < 0 ? (done ? (ssize_t)done : -e) : r + (ssize_t)done;
			m->msg_flags = cur.msg_flags;
			m->msg_controllen = cur.msg_controllen;
			m->msg_namelen = cur.msg_namelen;
			break;
		}
		pthread_mutex_unlock(&flp_mu);
		if (kind == SK_FAST && flp_shm(s = fdt_get(fd))) {
			/* the drain (or the switch) is over: the ring */
			r = shm_recvmsg(fd, s, &cur, flags);
			r = r < 0 ? (done ? (ssize_t)done : r) : r + (ssize_t)done;
			m->msg_flags = cur.msg_flags;
			m->msg_controllen = 0;
			m->msg_namelen = 0;
			if (iov != m->msg_iov && iov != small)
				free(iov);
			return r;       /* shm_recvmsg counted its bytes */
		}
		if (kind != SK_PENDING) {
			if (kind == SK_FAST) {
				/* TCP reports no source address; a UDS would
				 * report its own */
				cur.msg_name = NULL;
				cur.msg_namelen = 0;
			}
			r = tcp_recvmsg(fd, &cur, flags);
			r = r < 0 ? (done ? (ssize_t)done : -errno) : r + (ssize_t)done;
			m->msg_flags = cur.msg_flags;
			m->msg_controllen = cur.msg_controllen;
			m->msg_namelen = kind == SK_FAST ? 0 : cur.msg_namelen;
			break;
		}
		if ((flags & MSG_DONTWAIT) || fd_nonblock(fd)) {
			r = -EAGAIN;
			break;
		}
		/* the server is usually a few microseconds from adopting: a
		 * short spin lets us switch without being woken by its FIN
		 * (a sleeping wakeup costs ~20 us here) */
		if (i == 0 && conn_spin_take(-1, fd))
			continue;
		/* wait in the kernel for the adopter's FIN, data or EOF;
		 * EINTR and SO_RCVTIMEO's EAGAIN are the app's; anything else
		 * is settled above: a switch, or TCP with the same result
		 * for the real call */
		r = flp_real.recv(fd, &b, 1, MSG_PEEK);
		if (r < 0 && (errno == EINTR || errno == EAGAIN)) {
			r = -errno;
			break;
		}
		r = -EIO;
	}
	if (iov != m->msg_iov && iov != small)
		free(iov);
	if (r > 0 && !(flags & MSG_PEEK)) {
		pthread_mutex_lock(&flp_mu);
		if ((s = fdt_get(fd)))
			stat_add_rx(s->st, r);
		pthread_mutex_unlock(&flp_mu);
	}
	return r;
}

/*
 * ioctl on a socket of ours.  SIOCOUTQ/SIOCOUTQNSD on a UDS that stands
 * for TCP: TCP counts bytes the peer's kernel has not acknowledged, and
 * on loopback it acknowledges what it queued at once (measured: 0 after
 * 1000 unread bytes, non-zero only once the peer's window is full).  A
 * UDS send queues straight into the peer's receive buffer, so nothing is
 * ever unacknowledged: 0.  The UDS's own answer (skb truesize, 2304 for
 * 1000 bytes) is no byte count at all.  FIONREAD while draining counts
 * the TCP bytes still to read.  Others pass through after a settle.
 */
int io_ioctl(int fd, struct flp_sock *s, unsigned long req, void *arg)
{
	bool outq = req == SIOCOUTQ || req == SIOCOUTQNSD;
	int kind, r;

	if (!flp_slow(s)) {
		/* final: no lock on this path (apps ask FIONREAD per read) */
		kind = s ? sock_kind(s) : SK_NONE;
		if (kind == SK_FAST && flp_shm(s))
			return shm_ioctl(fd, s, req, arg);
		if (outq && kind == SK_FAST) {
			if (!arg)
				return -EFAULT;
			*(int *)arg = 0;
			return 0;
		}
		r = flp_real.ioctl(fd, req, arg);
		return r < 0 ? -errno : r;
	}
	pthread_mutex_lock(&flp_mu);
	kind = settle_kind(fd);
	if (kind == SK_FAST && flp_shm(s = fdt_get(fd))) {
		pthread_mutex_unlock(&flp_mu);
		return shm_ioctl(fd, s, req, arg);
	}
	if ((kind == SK_FAST || kind == SK_DRAIN) && outq) {
		pthread_mutex_unlock(&flp_mu);
		if (!arg)
			return -EFAULT;
		*(int *)arg = 0;
		return 0;
	}
	if (kind == SK_DRAIN && req == FIONREAD && (s = fdt_get(fd)) &&
	    s->hidden_tcp >= 0) {
		r = flp_real.ioctl(s->hidden_tcp, req, arg);
		r = r < 0 ? -errno : r;
		pthread_mutex_unlock(&flp_mu);
		return r;
	}
	pthread_mutex_unlock(&flp_mu);
	r = flp_real.ioctl(fd, req, arg);
	return r < 0 ? -errno : r;
}
