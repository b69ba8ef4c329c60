/*
 * wait.c — readiness: poll, select and epoll over sockets that may switch
 * under the app's feet.
 *
 * Final sockets (plain TCP or FAST) need nothing: the kernel's readiness
 * of the fd is the truth.  Before waiting, every not-final socket in the
 * set is settled (an undecided server decides here: waiting is a data
 * operation).  A PENDING client is additionally watched for EPOLLIN/POLLIN,
 * because the doorbell that tells it to switch arrives as one TCP byte;
 * such an event is consumed here (the client switches) and the app sees
 * only the readiness it asked for, recomputed on the new fd.
 */
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "flp.h"

_Atomic int flp_ep_pending;

uint64_t flp_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static bool is_pending(int fd)
{
	struct flp_sock *s = fdt_get(fd);

	return s && sock_kind(s) == SK_PENDING;
}

/* What a PENDING client's registration for the app's events asks of the
 * kernel besides them: its adopter's FIN.  An eager server's data is an
 * answer too (it does not adopt), so EPOLLIN; a lazy server may write
 * before it adopts, so only the FIN (EPOLLRDHUP), or data the app does not
 * read would wake the waiter over and over — and nothing if the app reads
 * (its EPOLLIN tells of the FIN; its read switches: one epoll_ctl less
 * per connection of an event loop that registers before connect()). */
static uint32_t pend_extra(const struct flp_sock *s, uint32_t app)
{
	if (!s->lazy)
		return EPOLLIN;
	return (app & EPOLLIN) ? 0 : EPOLLRDHUP;
}

/* Is fd a PENDING client of a lazy server?  (Read without the lock: a
 * hint for what to ask the kernel.) */
static bool lazy_pending(int fd)
{
	struct flp_sock *s = fdt_get(fd);

	return s && sock_kind(s) == SK_PENDING && s->lazy;
}

/* A TRIAL server is plain TCP for readiness: the kernel's word stands. */
static bool is_trial(const struct flp_sock *s)
{
	return s && sock_kind((struct flp_sock *)s) == SK_TRIAL;
}

/* The hidden TCP socket of a DRAIN server at fd, or -1.  Read without
 * the lock: a number closed meanwhile only makes a spurious wakeup, after
 * which the fd is settled again. */
static int drain_tcp(int fd)
{
	struct flp_sock *s = fdt_get(fd);

	return s && sock_kind(s) == SK_DRAIN ? __atomic_load_n(&s->hidden_tcp, __ATOMIC_RELAXED) : -1;
}

/* Settle fd if it is not final; returns true if it still is (PENDING, or
 * DRAIN: its readiness is not the kernel's for the fd alone). */
static bool settle_fd(int fd, bool decide)
{
	struct flp_sock *s = fdt_get(fd);

	if (!flp_slow(s) || is_trial(s))
		return false;
	pthread_mutex_lock(&flp_mu);
	if ((s = fdt_get(fd)) && flp_slow(s))
		conn_settle(fd, s, decide && s->kind == SK_UNDECIDED);
	pthread_mutex_unlock(&flp_mu);
	return flp_slow(fdt_get(fd));
}

/* sock_tcp_for_now of s now, NULL too (without the lock: a hint, looked
 * at again under it). */
static bool tcp_for_now(struct flp_sock *s)
{
	return s && sock_tcp_for_now(s, sock_kind(s));
}

bool wait_needs_settle(int fd)
{
	struct flp_sock *s = fdt_get(fd);

	return flp_slow(s) || flp_shm(s);
}

/* A socket a poll holds while it sleeps (hold_tcp). */
struct held {
	struct flp_sock *s;
	uint64_t life;
};

/*
 * A poll about to sleep on sockets that are TCP for now counts as a call
 * in flight on each (s->inflight, as io.c's data calls do), so that none
 * of them switches meanwhile.  A switch dup3()s another file onto the
 * number, and a poll already asleep stays on the old file's wait queue:
 * after a wakeup the kernel looks the number up again only to report,
 * never to wait, so the poll would sleep through all that happens on the
 * new file (a reader thread of a lazy client slept on its old TCP socket
 * while the adopter's ring filled: a stall).  A lazy client's poller
 * wakes at its adopter's FIN (POLLRDHUP is asked for) and the switch goes
 * on then.  Returns how many it holds, in h[].
 */
static nfds_t hold_tcp(const struct pollfd *pfd, nfds_t n, struct held *h)
{
	bool locked = false;
	nfds_t k = 0;

	for (nfds_t i = 0; i < n; i++) {
		struct flp_sock *s = pfd[i].fd >= 0 ? fdt_get(pfd[i].fd) : NULL;

		if (!tcp_for_now(s))
			continue;
		if (!locked)
			pthread_mutex_lock(&flp_mu);
		locked = true;
		if ((s = fdt_get(pfd[i].fd)) && tcp_for_now(s)) {
			s->inflight++;
			h[k].s = s;
			h[k++].life = s->serial;
		}
	}
	if (locked)
		pthread_mutex_unlock(&flp_mu);
	return k;
}

/* The poll is back: what hold_tcp held may switch again (unless it was
 * closed meanwhile: then the entry is another socket's). */
static void unhold_tcp(struct held *h, nfds_t k)
{
	if (!k)
		return;
	pthread_mutex_lock(&flp_mu);
	for (nfds_t i = 0; i < k; i++)
		if (h[i].s->serial == h[i].life)
			h[i].s->inflight--;
	pthread_mutex_unlock(&flp_mu);
}

/* Does pfd hold a socket that is TCP for now? */
static bool any_tcp_for_now(const struct pollfd *pfd, nfds_t n)
{
	for (nfds_t i = 0; i < n; i++)
		if (pfd[i].fd >= 0 && tcp_for_now(fdt_get(pfd[i].fd)))
			return true;
	return false;
}

/* A socket whose data is in rings (FAST or DRAIN over shm), or NULL:
 * its readiness is computed from the rings, the kernel's fd only wakes. */
static struct flp_sock *shm_sock(int fd)
{
	struct flp_sock *s = fdt_get(fd);

	return s && flp_shm(s) ? s : NULL;
}

/* The readiness of fd for events now: the rings' for a shm socket, else
 * the kernel's. */
static short now_events(int fd, short events)
{
	struct flp_sock *s = shm_sock(fd);
	struct pollfd one = { .fd = fd, .events = events };

	if (s)
		return (short)(shm_events(fd, s, 0) & ((uint32_t)(uint16_t)events | POLLERR | POLLHUP | POLLNVAL));
	flp_real.poll(&one, 1, 0);
	return one.revents;
}

/* Remaining time in ms of a deadline (us, 0 = none), -1 if none. */
static int remaining_ms(uint64_t deadline)
{
	uint64_t now;

	if (!deadline)
		return -1;
	now = flp_now_us();
	return now >= deadline ? 0 : (int)((deadline - now + 999) / 1000);
}

/*
 * Before a blocking round of poll: is a ring socket of pfd ready?  First
 * (spin) for up to spin_us, looking without system calls; then each is
 * armed (a write to its ring, or room made in it, bells its fd) and looked
 * at once more.  True if one is ready: then the round only looks.
 */
static bool shm_ready(struct pollfd *pfd, nfds_t n, bool spin)
{
	uint64_t t0 = flp_now_us();
	bool have = false;

	for (unsigned k = 0; spin; k++) {
		for (nfds_t i = 0; i < n; i++) {
			struct flp_sock *s = pfd[i].fd >= 0 ? shm_sock(pfd[i].fd) : NULL;
			if (!s)
				continue;
			have = true;
			if (shm_events(pfd[i].fd, s, 0) & ((uint32_t)(uint16_t)pfd[i].events | POLLERR | POLLHUP))
				return true;
		}
		if (!have || flp_now_us() - t0 >= (uint64_t)flp_cfg.spin_us)
			break;
		if ((k & 15) == 15)
			sched_yield();
	}
	for (nfds_t i = 0; i < n; i++) {
		struct flp_sock *s = pfd[i].fd >= 0 ? shm_sock(pfd[i].fd) : NULL;
		if (s && shm_prepare_wait(pfd[i].fd, s, (uint16_t)pfd[i].events))
			return true;
	}
	return false;
}

/*
 * poll()/ppoll() with switch handling.  timeout_ms < 0: forever.  A
 * PENDING client is also watched for POLLIN (the adopter's FIN); a DRAIN
 * server is readable when its hidden TCP socket is (an extra entry, after
 * the app's).  Returns the count or -errno.
 */
int wait_poll(struct pollfd *pfd, nfds_t n, int timeout_ms, const sigset_t *mask)
{
	uint64_t deadline = timeout_ms > 0 ? flp_now_us() + (uint64_t)timeout_ms * 1000 : 0;
	struct pollfd qsmall[64], *q = qsmall;
	short small[32], *orig = small;
	nfds_t xsmall[32], *xi = xsmall, nh;
	bool psmall[32], *pend = psmall;
	struct held hsmall[32], *held = hsmall;
	unsigned seq = sig_count();
	bool any = false;
	int r = 0;

	for (nfds_t i = 0; i < n; i++)
		if (pfd[i].fd >= 0 && (settle_fd(pfd[i].fd, true) || shm_sock(pfd[i].fd)))
			any = true;
	if (!any) {
		struct timespec ts = { timeout_ms / 1000, (timeout_ms % 1000) * 1000000L };
		int e;

		nh = 0;
		if (timeout_ms != 0 && any_tcp_for_now(pfd, n)) {
			if (n > 32 && !(held = malloc(n * sizeof(*held))))
				return -ENOMEM;
			nh = hold_tcp(pfd, n, held);
		}
		r = flp_real.ppoll(pfd, n, timeout_ms < 0 ? NULL : &ts, mask);
		e = errno;
		unhold_tcp(held, nh);
		if (held != hsmall)
			free(held);
		return r < 0 ? -e : r;
	}
	if (n > 32) {
		orig = malloc(n * sizeof(*orig));
		xi = malloc(n * sizeof(*xi));
		pend = malloc(n * sizeof(*pend));
		q = malloc(2 * n * sizeof(*q));
		held = malloc(n * sizeof(*held));
		if (!orig || !xi || !pend || !q || !held) {
			r = -ENOMEM;
			goto out;
		}
	}
	/* round 0 only looks (timeout 0): ready fds are returned at once.
	 * Before the first blocking round a pending client spins for its
	 * adoption instead of sleeping for the FIN. */
	for (int round = 0; round < 1000000; round++) {
		nfds_t nq = n;
		bool stalled = false;
		int ms;

		if (round == 1)
			conn_spin_take(-1, -1);
		ms = round == 0 || timeout_ms == 0 ? 0 : timeout_ms < 0 ? -1 : remaining_ms(deadline);
		/* rings: ready now, or (before a sleep) armed to bell us */
		if (ms != 0 && shm_ready(pfd, n, round == 1))
			ms = 0;
		/* a handler ran while we spun in user space: poll says EINTR
		 * (it never restarts), as it would have in the kernel */
		if (ms != 0 && sig_count() != seq) {
			r = -EINTR;
			break;
		}
		struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

		for (nfds_t i = 0; i < n; i++) {
			int h;
			orig[i] = pfd[i].events;
			q[i] = pfd[i];
			pend[i] = pfd[i].fd >= 0 && is_pending(pfd[i].fd);
			if (pend[i])
				q[i].events |= lazy_pending(pfd[i].fd) ? POLLRDHUP : POLLIN;
			if (!pend[i] && pfd[i].fd >= 0 && shm_sock(pfd[i].fd))
				q[i].events = POLLIN;   /* bells, and the peer's close */
			if (!pend[i] && pfd[i].fd >= 0 && (orig[i] & (POLLIN | POLLRDNORM)) &&
				 (h = drain_tcp(pfd[i].fd)) >= 0) {
				q[nq].fd = h;
				q[nq].events = POLLIN | POLLRDHUP;
				xi[nq++ - n] = i;
			}
		}
		nh = ms != 0 ? hold_tcp(pfd, n, held) : 0;
		r = flp_real.ppoll(q, nq, ms < 0 ? NULL : &ts, mask);
		r = r < 0 ? -errno : r;
		unhold_tcp(held, nh);
		if (r < 0)
			break;
		for (nfds_t i = 0; i < n; i++) {
			struct flp_sock *s = pfd[i].fd >= 0 && !pend[i] ? shm_sock(pfd[i].fd) : NULL;
			pfd[i].revents = q[i].revents;
			if (s && !(q[i].revents & POLLNVAL)) {
				pfd[i].revents = (short)(shm_events(pfd[i].fd, s, (uint16_t)q[i].revents) &
					((uint32_t)(uint16_t)orig[i] | POLLERR | POLLHUP));
				if (pfd[i].revents & POLLOUT)
					shm_room_told(s);
			}
		}
		/* a DRAIN server's TCP bytes are its readable data; the FIN
		 * after them ends the drain, and then the UDS alone says */
		for (nfds_t j = n; j < nq; j++) {
			nfds_t i = xi[j - n];
			if (!q[j].revents)
				continue;
			if (settle_fd(pfd[i].fd, false))
				pfd[i].revents |= orig[i] & (POLLIN | POLLRDNORM);
			else
				pfd[i].revents = now_events(pfd[i].fd, orig[i]);
		}
		for (nfds_t i = 0; i < n; i++) {
			/* any event on a pending client may be its adopter's
			 * FIN, which is not readiness the app can use */
			if (!pend[i] || !pfd[i].revents)
				continue;
			/* a lazy server's FIN: its adoption's doorbell, or its
			 * own end of the stream; either way, decide */
			if ((q[i].revents & (POLLRDHUP | POLLHUP | POLLERR)) &&
			    lazy_pending(pfd[i].fd)) {
				conn_settle_fd(pfd[i].fd, true);
				/* still pending: another thread is in a call on
				 * the TCP socket, the switch waits for it; the FIN
				 * would wake us at once, over and over */
				stalled |= lazy_pending(pfd[i].fd);
			}
			if (!settle_fd(pfd[i].fd, false)) {
				/* switched or TCP now: ask the new fd */
				pfd[i].revents = now_events(pfd[i].fd, orig[i]);
			} else {
				pfd[i].revents &= orig[i] | POLLERR | POLLHUP | POLLNVAL;
			}
		}
		r = 0;
		for (nfds_t i = 0; i < n; i++)
			r += pfd[i].revents != 0;
		if (r || timeout_ms == 0 || (timeout_ms > 0 && round > 0 && remaining_ms(deadline) == 0))
			break;
		if (stalled)
			flp_nap_us(round < 20 ? 0 : 50);
	}
out:
	if (orig != small) {
		free(orig);
		free(xi);
		free(pend);
		free(q);
		free(held);
	}
	return r;
}

/*
 * select()/pselect(): passed through unless a set holds a not-final
 * socket; then done with wait_poll and translated back.
 */
int wait_select(int nfds, fd_set *rd, fd_set *wr, fd_set *ex, int timeout_ms,
		const sigset_t *mask, bool *handled)
{
	struct pollfd *p;
	int n = 0, r, cnt = 0;

	*handled = false;
	if (nfds < 0 || nfds > FD_SETSIZE)
		return 0;
	for (int fd = 0; fd < nfds; fd++)
		if (((rd && FD_ISSET(fd, rd)) || (wr && FD_ISSET(fd, wr)) ||
		     (ex && FD_ISSET(fd, ex))) && wait_needs_settle(fd))
			n = 1;
	if (!n)
		return 0;
	*handled = true;
	if (!(p = calloc((size_t)nfds, sizeof(*p))))
		return -ENOMEM;
	n = 0;
	for (int fd = 0; fd < nfds; fd++) {
		short ev = (short)((rd && FD_ISSET(fd, rd) ? POLLIN : 0) |
				   (wr && FD_ISSET(fd, wr) ? POLLOUT : 0) |
				   (ex && FD_ISSET(fd, ex) ? POLLPRI : 0));
		if (!ev)
			continue;
		p[n].fd = fd;
		p[n++].events = ev;
	}
	r = wait_poll(p, (nfds_t)n, timeout_ms, mask);
	if (r < 0)
		goto out;
	for (int i = 0; i < n; i++)
		if (p[i].revents & POLLNVAL) {
			r = -EBADF;
			goto out;
		}
	if (rd) FD_ZERO(rd);
	if (wr) FD_ZERO(wr);
	if (ex) FD_ZERO(ex);
	for (int i = 0; i < n; i++) {
		short re = p[i].revents;
		if (rd && (p[i].events & POLLIN) && (re & (POLLIN | POLLHUP | POLLERR)))
			FD_SET(p[i].fd, rd), cnt++;
		if (wr && (p[i].events & POLLOUT) && (re & (POLLOUT | POLLERR)))
			FD_SET(p[i].fd, wr), cnt++;
		if (ex && (p[i].events & POLLPRI) && (re & POLLPRI))
			FD_SET(p[i].fd, ex), cnt++;
	}
	r = cnt;
out:
	free(p);
	return r;
}

/* ----------------------------------------------------------------- epoll */

static struct sock_epreg *find_reg(struct flp_sock *s, int epfd, int fd)
{
	for (int i = 0; i < s->nep; i++)
		if (s->ep[i].epfd == epfd && s->ep[i].fd == fd)
			return &s->ep[i];
	return NULL;
}

/*
 * Registrations of TCP sockets made before their connect() (nginx adds an
 * upstream socket to epoll, then connects): the socket has no entry yet,
 * but if connect() makes it PENDING they must be carried over at its
 * switch like any other.  Bounded; a registration that does not fit is
 * not carried (the app then waits on a file that was replaced: the limit
 * is documented).  Guarded by flp_mu.
 */
#define PRE_MAX 256
static struct sock_epreg pre[PRE_MAX];
static int npre;

static void pre_note(int epfd, int op, int fd, const struct epoll_event *ev)
{
	int i;

	pthread_mutex_lock(&flp_mu);
	for (i = 0; i < npre; i++)
		if (pre[i].epfd == epfd && pre[i].fd == fd)
			break;
	if (op == EPOLL_CTL_DEL && i < npre)
		pre[i] = pre[--npre];
	else if (op == EPOLL_CTL_MOD && i < npre && ev)
		pre[i].ev = *ev;
	else if (op == EPOLL_CTL_ADD && i == npre && ev && npre < PRE_MAX) {
		pre[npre].epfd = epfd;
		pre[npre].fd = fd;
		pre[npre].seen = 0;
		pre[npre++].ev = *ev;
	}
	pthread_mutex_unlock(&flp_mu);
}

/* fd was closed or handed out again: its early registrations are gone. */
void wait_pre_forget(int fd)
{
	if (!__atomic_load_n(&npre, __ATOMIC_RELAXED))
		return;
	pthread_mutex_lock(&flp_mu);
	for (int i = 0; i < npre;)
		if (pre[i].fd == fd)
			pre[i] = pre[--npre];
		else
			i++;
	pthread_mutex_unlock(&flp_mu);
}

/* connect() made fd PENDING (s): take over its early registrations, with
 * EPOLLIN added for the adopter's FIN.  Caller holds flp_mu. */
void wait_pre_adopt(int fd, struct flp_sock *s)
{
	for (int i = 0; i < npre;) {
		if (pre[i].fd != fd) {
			i++;
			continue;
		}
		if (s->nep < SOCK_MAX_EPOLL) {
			struct epoll_event e2 = pre[i].ev;
			uint32_t x = pend_extra(s, e2.events);
			e2.events |= x;
			if (x & ~pre[i].ev.events)
				flp_real.epoll_ctl(pre[i].epfd, EPOLL_CTL_MOD, fd, &e2);
			s->ep[s->nep++] = pre[i];
			flp_ep_pending++;
		}
		pre[i] = pre[--npre];
	}
}

/* What a DRAIN server's hidden TCP socket is registered for on behalf of
 * the app's registration ev: its readability (the TCP bytes, and the FIN
 * that ends the drain), with the app's data and trigger mode. */
static struct epoll_event mirror_ev(const struct epoll_event *ev)
{
	struct epoll_event m = *ev;

	m.events = EPOLLIN | EPOLLRDHUP |
		   (ev->events & (EPOLLET | EPOLLONESHOT | EPOLLEXCLUSIVE));
	return m;
}

/* s has just become DRAIN with registrations made while it was TRIAL or
 * PENDING: mirror those that read onto its hidden TCP socket, as
 * wait_epoll_ctl does for later ones.  Caller holds flp_mu. */
void wait_drain_mirror(struct flp_sock *s)
{
	for (int k = 0; k < s->nep && s->hidden_tcp >= 0; k++) {
		struct epoll_event m;

		if (!(s->ep[k].ev.events & EPOLLIN))
			continue;
		m = mirror_ev(&s->ep[k].ev);
		flp_real.epoll_ctl(s->ep[k].epfd, EPOLL_CTL_ADD, s->hidden_tcp, &m);
	}
}

/*
 * What the kernel is asked to report on a ring socket's fd for the app's
 * registration reg.  The fd's own readiness means little: bells (EPOLLIN)
 * say "look at the rings", EPOLLOUT is always there.  So EPOLLIN is added
 * wherever a bell can matter (the app reads, waits for the peer's
 * shutdown, or waits edge-triggered for room); a level-triggered EPOLLOUT
 * on a full ring is parked: registered as an edge on the bell of the
 * reader that makes room, instead of a kernel EPOLLOUT that would wake
 * every epoll_wait.
 */
uint32_t wait_kernel_events(const struct sock_epreg *reg)
{
	uint32_t app = reg->ev.events, k = app;

	if (app & (EPOLLIN | EPOLLRDHUP | EPOLLPRI | EPOLLET))
		k |= EPOLLIN;
	if (reg->parked) {
		k &= ~(uint32_t)EPOLLOUT;
		k |= EPOLLIN;
		if (!(app & EPOLLIN))
			k |= EPOLLET;   /* bells for unread data must not spin us */
	}
	return k;
}

static void note_et(struct flp_sock *s)
{
	bool et = false;

	for (int i = 0; i < s->nep; i++)
		et |= (s->ep[i].ev.events & EPOLLET) != 0;
	shm_note_et(s, et);
}

/* Remember (or forget) the app's registration of s's fd in epfd, after
 * the kernel took it: a new or changed one starts afresh (nothing seen,
 * parked, owed or looked at; the array's spare slots hold stale entries).
 * flp_ep_pending counts those of watched sockets.  Caller holds flp_mu. */
static void track_reg(struct flp_sock *s, int epfd, int op, int fd,
		      const struct epoll_event *ev)
{
	struct sock_epreg *g = find_reg(s, epfd, fd), r0 = { .epfd = epfd, .fd = fd };

	if (ev)
		r0.ev = *ev;
	if (op == EPOLL_CTL_DEL && g) {
		*g = s->ep[--s->nep];
		if (s->on_pend)
			flp_ep_pending--;
	} else if (op == EPOLL_CTL_MOD && g && ev) {
		*g = r0;
	} else if (op == EPOLL_CTL_ADD && ev && !g && s->nep < SOCK_MAX_EPOLL) {
		s->ep[s->nep++] = r0;
		if (s->on_pend)
			flp_ep_pending++;
	}
}

/* epoll_ctl on a ring socket: the kernel gets wait_kernel_events(), the
 * app's registration is kept for wait_fix_epoll. */
static int shm_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	struct sock_epreg r0 = { .epfd = epfd, .fd = fd };
	struct epoll_event k;
	struct flp_sock *s;
	int r;

	pthread_mutex_lock(&flp_mu);
	s = fdt_get(fd);
	if (!s || !flp_shm(s) || (s->kind != SK_FAST && s->kind != SK_DRAIN)) {
		pthread_mutex_unlock(&flp_mu);
		return flp_real.epoll_ctl(epfd, op, fd, ev) < 0 ? -errno : 0;
	}
	if (ev)
		r0.ev = *ev;
	k.data = r0.ev.data;
	k.events = wait_kernel_events(&r0);
	r = flp_real.epoll_ctl(epfd, op, fd, ev ? &k : NULL) < 0 ? -errno : 0;
	if (r == 0 && s->kind == SK_DRAIN && s->hidden_tcp >= 0) {
		/* the client's TCP bytes come first: mirrored as for uds */
		if (op == EPOLL_CTL_DEL || (ev && !(ev->events & EPOLLIN))) {
			flp_real.epoll_ctl(epfd, EPOLL_CTL_DEL, s->hidden_tcp, NULL);
		} else if (ev) {
			struct epoll_event m = mirror_ev(ev);
			if (flp_real.epoll_ctl(epfd, op, s->hidden_tcp, &m) < 0 && op == EPOLL_CTL_MOD)
				flp_real.epoll_ctl(epfd, EPOLL_CTL_ADD, s->hidden_tcp, &m);
		}
	}
	if (r == 0) {
		track_reg(s, epfd, op, fd, ev);
		note_et(s);
	}
	pthread_mutex_unlock(&flp_mu);
	return r;
}


/*
 * epoll_ctl: a not-final socket is settled first.  One still PENDING is
 * registered with EPOLLIN added (for the adopter's FIN); one in DRAIN is
 * also registered through its hidden TCP socket, when the app asked for
 * EPOLLIN.  The app's own registration is remembered, to be carried over
 * at the switch or taken off the TCP socket at the drain's end.  On a
 * FAST socket whose switch left an edge to filter, the app's new
 * registration ends the filtering.
 */
int wait_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	struct epoll_event e2;
	struct flp_sock *s;
	int r;

	s = fdt_get(fd);
	if (s && sock_kind(s) == SK_FAST && __atomic_load_n(&s->quiet, __ATOMIC_RELAXED))
		conn_unquiet(s);
	if (!s && (fdt_hint(fd) & (FDT_HINT_TCP | FDT_HINT_DECIDED)) == FDT_HINT_TCP &&
	    flp_cfg.transport != FLP_TR_OFF) {
		/* a TCP socket not connected yet: remember for its switch */
		r = flp_real.epoll_ctl(epfd, op, fd, ev) < 0 ? -errno : 0;
		if (r == 0)
			pre_note(epfd, op, fd, ev);
		return r;
	}
	if (is_trial(s) || lazy_pending(fd)) {
		/* on TCP for now, nothing to settle: the kernel's registration
		 * (a lazy client's with the adopter's FIN added), remembered
		 * for the switch.  The system call is made outside the lock
		 * (an event loop changes its interest several times per
		 * connection, and a client's other threads wait for the
		 * lock), holding the socket as a call in flight: no switch
		 * moves the registrations meanwhile. */
		pthread_mutex_lock(&flp_mu);
		s = fdt_get(fd);
		if (is_trial(s) || (s && s->kind == SK_PENDING && s->lazy)) {
			struct epoll_event k;
			uint64_t life = s->serial;
			if (ev) {
				k = *ev;
				if (s->kind == SK_PENDING)
					k.events |= pend_extra(s, k.events);
			}
			s->inflight++;
			pthread_mutex_unlock(&flp_mu);
			r = flp_real.epoll_ctl(epfd, op, fd, ev ? &k : NULL) < 0 ? -errno : 0;
			pthread_mutex_lock(&flp_mu);
			if (s->serial == life) {
				s->inflight--;
				if (r == 0)
					track_reg(s, epfd, op, fd, ev);
			}
			pthread_mutex_unlock(&flp_mu);
			return r;
		}
		pthread_mutex_unlock(&flp_mu);
	}
	if (!settle_fd(fd, true)) {
		if (shm_sock(fd))
			return shm_epoll_ctl(epfd, op, fd, ev);
		return flp_real.epoll_ctl(epfd, op, fd, ev) < 0 ? -errno : 0;
	}
	if (shm_sock(fd) && (s = fdt_get(fd)) && sock_kind(s) == SK_DRAIN)
		return shm_epoll_ctl(epfd, op, fd, ev);
	pthread_mutex_lock(&flp_mu);
	s = fdt_get(fd);
	if (!s || (s->kind != SK_PENDING && s->kind != SK_DRAIN)) {
		pthread_mutex_unlock(&flp_mu);
		return flp_real.epoll_ctl(epfd, op, fd, ev) < 0 ? -errno : 0;
	}
	if (ev && s->kind == SK_PENDING)
		e2 = *ev, e2.events |= pend_extra(s, ev->events);
	else if (ev)
		e2 = *ev;
	r = flp_real.epoll_ctl(epfd, op, fd, ev ? &e2 : NULL) < 0 ? -errno : 0;
	if (r == 0 && s->kind == SK_DRAIN && s->hidden_tcp >= 0) {
		struct epoll_event m;
		if (op == EPOLL_CTL_DEL || (op == EPOLL_CTL_MOD && ev && !(ev->events & EPOLLIN))) {
			flp_real.epoll_ctl(epfd, EPOLL_CTL_DEL, s->hidden_tcp, NULL);
		} else if (ev && (ev->events & EPOLLIN)) {
			m = mirror_ev(ev);
			if (flp_real.epoll_ctl(epfd, op, s->hidden_tcp, &m) < 0 && op == EPOLL_CTL_MOD)
				flp_real.epoll_ctl(epfd, EPOLL_CTL_ADD, s->hidden_tcp, &m);
		}
	}
	if (r == 0)
		track_reg(s, epfd, op, fd, ev);
	pthread_mutex_unlock(&flp_mu);
	return r;
}

/* The watched socket (and its registration) that an event of epfd with
 * this data belongs to, or NULL.  Caller holds flp_mu. */
static struct flp_sock *find_watched(int epfd, uint64_t data, struct sock_epreg *reg)
{
	for (struct flp_sock *s = conn_pending_first(); s; s = s->pend_next)
		for (int i = 0; i < s->nep; i++)
			if (s->ep[i].epfd == epfd && s->ep[i].ev.data.u64 == data) {
				*reg = s->ep[i];
				return fdt_get(reg->fd) == s ? s : NULL;
			}
	return NULL;
}

/* The readiness of fd for the events of reg, asked now. */
static uint32_t ask(int fd, uint32_t events)
{
	return (uint16_t)now_events(fd, (short)(events & (EPOLLIN | EPOLLOUT | EPOLLPRI | EPOLLRDHUP)));
}

/*
 * An event the kernel reported on a ring socket's fd (kev) for the app's
 * registration reg (a copy; *live is the one in s): what the app is told.
 * A wake with nothing for the app (a bell for data already read) re-arms
 * and is dropped; a level-triggered EPOLLOUT is parked while the ring is
 * full and back once there is room; a one-shot that told nothing is armed
 * again.  Caller holds flp_mu.
 */
static uint32_t shm_fix(struct flp_sock *s, struct sock_epreg *live, uint32_t kev)
{
	uint32_t app = live->ev.events, want = app | EPOLLERR | EPOLLHUP;
	uint32_t ev = shm_events(live->fd, s, kev);
	bool park;

	if (!(ev & want & (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLERR | EPOLLHUP))) {
		if (!(app & EPOLLOUT))
			shm_room_told(s);       /* no one here waits for room */
		ev = shm_prepare_wait(live->fd, s, app & 0xffff);
	}
	ev &= want;
	if (ev & EPOLLOUT)
		shm_room_told(s);
	park = (app & EPOLLOUT) && !(app & EPOLLET) && !(ev & EPOLLOUT) &&
	       !(app & EPOLLEXCLUSIVE);     /* an exclusive one cannot be modified */
	if (park != live->parked || (!ev && (app & EPOLLONESHOT))) {
		struct epoll_event k = live->ev;
		live->parked = park;
		k.events = wait_kernel_events(live);
		flp_real.epoll_ctl(live->epfd, EPOLL_CTL_MOD, live->fd, &k);
		if (park && (ev = shm_prepare_wait(live->fd, s, app & 0xffff) & want))
			return ev;      /* room came meanwhile: the edge is ours */
	}
	return ev;
}

/* Note what the app was told on registration reg of s. */
static void saw(struct flp_sock *s, const struct sock_epreg *reg, uint32_t ev)
{
	for (int i = 0; i < s->nep; i++)
		if (s->ep[i].epfd == reg->epfd && s->ep[i].fd == reg->fd)
			s->ep[i].seen |= ev;
}

/*
 * Fix up what epoll_wait returned for watched sockets.  PENDING: the
 * event is settled (maybe switched) and replaced by the readiness the app
 * asked for, or dropped.  DRAIN: the TCP socket's events stand for
 * EPOLLIN only (its FIN ends the drain: then the UDS alone says).  FAST
 * after a switch: an edge the app was told of before is not told again.
 * Returns the new count.
 */
int wait_fix_epoll(int epfd, struct epoll_event *ev, int r)
{
	int out = 0;

	if (r <= 0 || !flp_ep_pending)
		return r;
	pthread_mutex_lock(&flp_mu);
	for (int k = 0; k < r; k++) {
		struct sock_epreg reg;
		struct flp_sock *s = find_watched(epfd, ev[k].data.u64, &reg);
		uint32_t want = reg.ev.events | EPOLLERR | EPOLLHUP;

		if (!s) {
			ev[out++] = ev[k];
			continue;
		}
		if (s->kind == SK_FAST && flp_shm(s)) {
			struct sock_epreg *live = find_reg(s, reg.epfd, reg.fd);
			ev[k].events = live ? shm_fix(s, live, ev[k].events) : 0;
			/* the edge our re-registration at the switch made */
			ev[k].events &= ~s->quiet;
			__atomic_store_n(&s->quiet, 0, __ATOMIC_RELAXED);
			if (live && ev[k].events)
				live->seen |= ev[k].events;
		} else if (s->kind == SK_FAST) {
			/* quiet: the kernel's edge from our re-registration */
			ev[k].events &= ~s->quiet;
			__atomic_store_n(&s->quiet, 0, __ATOMIC_RELAXED);
			conn_watch(s);
		} else if (s->kind == SK_DRAIN) {
			conn_settle(reg.fd, s, false);
			if (s->kind == SK_DRAIN && flp_shm(s)) {
				/* readable: the hidden TCP bytes (the ring's wait
				 * for the drain's end); writable: the ring, with
				 * its parking and the reader's bell for room, as
				 * for a FAST one (a server that adopted in the
				 * middle of a full-duplex stream drains for long:
				 * without the bell for room its app never heard
				 * of room again, and stopped reading: a stall) */
				struct sock_epreg *live = find_reg(s, reg.epfd, reg.fd);
				uint32_t e = ev[k].events & (EPOLLERR | EPOLLHUP);
				if ((reg.ev.events & EPOLLIN) && s->hidden_tcp >= 0)
					e |= ask(s->hidden_tcp, EPOLLIN | EPOLLRDHUP) & EPOLLIN;
				if (live && (reg.ev.events & EPOLLOUT))
					e |= shm_fix(s, live, ev[k].events) &
					     ~(uint32_t)(EPOLLIN | EPOLLRDNORM | EPOLLRDHUP);
				ev[k].events = e & want;
			} else if (s->kind == SK_DRAIN)
				ev[k].events = ((ev[k].events & EPOLLIN) |
					ask(reg.fd, reg.ev.events & ~EPOLLIN)) & want;
			else
				ev[k].events = ask(reg.fd, reg.ev.events) & want;
		} else {
			/* a lazy server's FIN (see wait_poll): decide */
			conn_settle(reg.fd, s, s->lazy &&
				    (ev[k].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)));
			if (s->kind == SK_NONE) {
				/* stayed TCP (the server's own FIN): the
				 * kernel's word for this very fd stands, less
				 * the EPOLLRDHUP we had added */
				ev[k].events &= want;
				if (!(reg.ev.events & EPOLLRDHUP))
					ev[k].events &= ~(uint32_t)EPOLLRDHUP;
			} else if (s->kind != SK_PENDING) {
				ev[k].events = ask(reg.fd, reg.ev.events) & want;
				/* edge-triggered: what the app was told before
				 * the switch is no new edge; what it hears now
				 * the kernel's edge for the new registration
				 * must not tell again */
				if ((reg.ev.events & EPOLLET) && s->kind == SK_FAST) {
					__atomic_fetch_or(&s->quiet, ev[k].events | reg.seen, __ATOMIC_RELAXED);
					ev[k].events &= ~reg.seen;
					conn_watch(s);
				}
				/* a one-shot that fired stays disarmed */
				if ((reg.ev.events & EPOLLONESHOT) && reg.seen)
					ev[k].events = 0;
			} else {
				ev[k].events &= want;
				/* the FIN's EPOLLIN is not the app's */
				if (!(reg.ev.events & EPOLLIN))
					ev[k].events &= ~(uint32_t)(EPOLLIN | EPOLLRDHUP);
				if (!(reg.ev.events & EPOLLRDHUP))
					ev[k].events &= ~(uint32_t)EPOLLRDHUP;
				if (reg.ev.events & EPOLLONESHOT) {
					struct epoll_event e2 = reg.ev;
					e2.events |= pend_extra(s, e2.events);
					flp_real.epoll_ctl(epfd, EPOLL_CTL_MOD, reg.fd, &e2);
				}
				saw(s, &reg, ev[k].events);
			}
		}
		if (ev[k].events)
			ev[out++] = ev[k];
	}
	pthread_mutex_unlock(&flp_mu);
	return out;
}

/* If data (epoll_data) is among the n events of ev, add e to its events
 * and say so. */
static bool merge_event(struct epoll_event *ev, int n, epoll_data_t data, uint32_t e)
{
	for (int i = 0; i < n; i++)
		if (ev[i].data.u64 == data.u64) {
			ev[i].events |= e;
			return true;
		}
	return false;
}

/*
 * One look at the rings of the shm sockets registered in epfd for
 * reading, adding events to ev[*n..max) as the kernel would after a bell.
 * first: turn their bells off (we look), except an edge-triggered one
 * whose ring already had data (no new edge: the kernel's word stands,
 * unless we owe it one); done: turn them on again.  One-shot and
 * exclusive registrations are left to the kernel.  A ready registration
 * that does not fit is owed.  Returns false if there is nothing to look
 * at.
 */
static bool shm_epoll_look(int epfd, struct epoll_event *ev, int *n, int max,
			   bool first, bool done)
{
	bool have = false;

	pthread_mutex_lock(&flp_mu);
	for (struct flp_sock *s = conn_pending_first(); s; s = s->pend_next) {
		if (s->kind != SK_FAST || !flp_shm(s))
			continue;
		for (int i = 0; i < s->nep; i++) {
			struct sock_epreg *g = &s->ep[i];
			uint32_t app = g->ev.events, e;
			if (g->epfd != epfd || !(app & EPOLLIN) ||
			    (app & (EPOLLONESHOT | EPOLLEXCLUSIVE)))
				continue;
			have = true;
			if (first)
				g->looking = !((app & EPOLLET) && !g->owed && shm_rx_look(s, false));
			if (!g->looking)
				continue;       /* bells stay on for it */
			if (done)
				g->looking = false;
			if (!shm_rx_look(s, !done))
				continue;
			e = shm_events(g->fd, s, 0) & (app | EPOLLERR | EPOLLHUP) &
			    ~(uint32_t)EPOLLOUT;
			if (!e)
				continue;
			if (merge_event(ev, *n, g->ev.data, e)) {
				/* the kernel reported it too (EPOLLOUT, say),
				 * but not this data, which came while its bell
				 * was off: an edge-triggered app hears of it
				 * now or never */
				g->seen |= e;
				continue;
			}
			if (*n >= max) {
				g->owed = true;
				continue;
			}
			g->owed = false;
			ev[*n].events = e;
			ev[(*n)++].data = g->ev.data;
			g->seen |= e;
		}
	}
	pthread_mutex_unlock(&flp_mu);
	return have;
}

/*
 * Before sleeping in epoll_wait over shm sockets: spin (if spin) up to spin_us
 * looking at their rings with their bells off (a sleeping reader makes
 * every bell a ~20 us wakeup, and a bell costs a system call on each
 * side), and at the kernel's events every few looks; yield the CPU so a
 * peer on our core runs.  Bells are on again before we go, and what came
 * while they were off is told.  Returns the events, 0 (sleep), or -errno.
 */
/* Spinning pays for a connection or a few waiting on each other (a
 * request/response pair); a server with many busy connections has other
 * work, and a look over all of them per turn only takes CPU from its
 * peers on this 2-vCPU kind of machine (redis-benchmark, 50 clients:
 * 22 % of the server in the look).  Past this many, one look and sleep. */
#define SPIN_MAX_REGS 8

/* How many ring sockets are registered in epfd for reading (up to
 * limit + 1). */
static int shm_epoll_count(int epfd, int limit)
{
	int n = 0;

	pthread_mutex_lock(&flp_mu);
	for (struct flp_sock *s = conn_pending_first(); s && n <= limit; s = s->pend_next) {
		if (s->kind != SK_FAST || !flp_shm(s))
			continue;
		for (int i = 0; i < s->nep; i++)
			if (s->ep[i].epfd == epfd && (s->ep[i].ev.events & EPOLLIN))
				n++;
	}
	pthread_mutex_unlock(&flp_mu);
	return n;
}

static int shm_epoll_spin(int epfd, struct epoll_event *ev, int max, const sigset_t *mask,
			  bool spin)
{
	uint64_t t0 = flp_now_us();
	int n = 0;

	if (spin && shm_epoll_count(epfd, SPIN_MAX_REGS) > SPIN_MAX_REGS)
		spin = false;

	unsigned seq = sig_count();

	for (unsigned k = 0; n == 0; k++) {
		if (!shm_epoll_look(epfd, ev, &n, max, k == 0, false))
			return 0;       /* no shm socket here: turned nothing off */
		if (n == 0 && sig_count() != seq) {
			n = -EINTR;     /* as epoll_wait, which never restarts */
			break;
		}
		if (n == 0 && (k & 7) == 7) {
			int r = flp_real.epoll_pwait(epfd, ev, max, 0, mask);
			if (r < 0) {
				n = -errno;
				break;
			}
			if (r > 0)
				n = wait_fix_epoll(epfd, ev, r);
			if (n == 0)
				sched_yield();
		}
		if (n == 0 && (!spin || flp_now_us() - t0 >= (uint64_t)flp_cfg.spin_us))
			break;
	}
	{
		int m = n > 0 ? n : 0;
		shm_epoll_look(epfd, ev, &m, max, false, true);
		return n < 0 && m == 0 ? n : m;
	}
}

/*
 * epoll_wait and friends (timeout in ns, < 0 forever).  Events consumed by
 * a switch do not end the wait early: it goes on for the time left.
 */
int wait_epoll(int epfd, struct epoll_event *ev, int max, long long timeout_ns,
	       const sigset_t *mask, bool pwait2)
{
	uint64_t deadline = timeout_ns > 0 ? flp_now_us() + (uint64_t)timeout_ns / 1000 : 0;

	for (;;) {
		long long left = timeout_ns;
		int r;

		/* a pending client here: ready events first, then spin for the
		 * adoption, then sleep; an event loop with other connections
		 * ready must not wait for our spin */
		if (flp_ep_pending) {
			r = flp_real.epoll_pwait(epfd, ev, max, 0, mask);
			if (r < 0)
				return -errno;
			if (r > 0 && (r = wait_fix_epoll(epfd, ev, r)) > 0)
				return r;
			if (timeout_ns != 0)
				conn_spin_take(epfd, -1);
			/* rings: a reader that spun left its bell off, so data
			 * may be there without one; at least one look, also for
			 * a zero timeout (no spin then) */
			if ((r = shm_epoll_spin(epfd, ev, max, mask, timeout_ns != 0)) != 0)
				return r;
			if (timeout_ns == 0)
				return 0;
		}

		if (timeout_ns > 0) {
			uint64_t now = flp_now_us();
			left = now >= deadline ? 0 : (long long)(deadline - now) * 1000;
		}
		if (pwait2) {
			struct timespec ts = { left / 1000000000, left % 1000000000 };
			r = flp_real.epoll_pwait2(epfd, ev, max, left < 0 ? NULL : &ts, mask);
		} else {
			int ms = left < 0 ? -1 : (int)((left + 999999) / 1000000);
			r = flp_real.epoll_pwait(epfd, ev, max, ms, mask);
		}
		if (r < 0)
			return -errno;
		if (r == 0)
			return 0;
		r = wait_fix_epoll(epfd, ev, r);
		if (r > 0 || timeout_ns == 0)
			return r;
		if (timeout_ns > 0 && flp_now_us() >= deadline)
			return 0;
	}
}
