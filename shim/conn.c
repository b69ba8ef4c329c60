/*
 * conn.c — connection life: publish at listen, claim at connect, adopt at
 * accept, switch the client, decide an undecided server, close, dup, fork.
 *
 * All state changes happen under flp_mu (a process-wide mutex taken only on
 * these slow paths).  Data on a FAST socket never comes here: its fd is a
 * connected AF_UNIX stream socket and the kernel does the work.
 *
 * The UDS channel is built like this: each client process has one
 * listening AF_UNIX socket with a kernel-chosen abstract name (the
 * "rendezvous"); a claim carries its name.  The adopting server connect()s
 * to it — that completes at once, the connection waits in the backlog —
 * writes a header naming the claim, marks the claim TAKEN and sends one
 * doorbell byte over TCP.  The client, at its next call on the socket (or
 * spinning for it, or woken by the doorbell), takes its connection out of
 * the backlog, checks SO_PEERCRED against the adopter, re-sends what it
 * had sent over TCP meanwhile, and dup3()s the UDS onto its fd.  The
 * server keeps its TCP socket (hidden, at a high fd) until the connection
 * closes only if the client has not switched by the end of its accept(),
 * so that a still-PENDING client's TCP writes never meet a closed peer.
 */
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <linux/close_range.h>
#include <netinet/tcp.h>

#include "flp.h"
#include "stat.h"


/* The one log line per connection: its transport, or tcp and why. */
static void log_conn(struct flp_sock *s, const char *transport,
		     const char *reason)
{
	char l[80], p[80];

	stat_count(transport, reason);
	if (flp_cfg.log_level < FLP_LOG_INFO)
		return;
	flp_addr_str((struct sockaddr *)&s->local, l, sizeof(l));
	flp_addr_str((struct sockaddr *)&s->peer, p, sizeof(p));
	if (reason)
		FLP_INFO("conn %s %s%s%s transport=%s reason=%s",
			 s->server ? "server" : "client", l,
			 s->server ? "<-" : "->", p, transport, reason);
	else
		FLP_INFO("conn %s %s%s%s transport=%s",
			 s->server ? "server" : "client", l,
			 s->server ? "<-" : "->", p, transport);
}

/* A TRIAL socket's own address, asked only when needed (matching its
 * claim, a log line): accept() does not pay for it. */
static void fill_local(struct flp_sock *s)
{
	if (s->local_len || !s->nfds)
		return;
	s->local_len = sizeof(s->local);
	if (flp_real.getsockname(s->fds[0], (struct sockaddr *)&s->local, &s->local_len) < 0)
		s->local_len = 0;
}

/* Log a plain-TCP decision for an fd we hold no entry for. */
static void log_tcp_fd(int fd, bool server, const char *reason)
{
	struct flp_sock tmp;

	if (flp_cfg.log_level < FLP_LOG_INFO) {
		stat_count("tcp", reason);
		return;
	}
	memset(&tmp, 0, sizeof(tmp));
	tmp.server = server;
	tmp.local_len = tmp.peer_len = sizeof(tmp.local);
	flp_real.getsockname(fd, (struct sockaddr *)&tmp.local, &tmp.local_len);
	flp_real.getpeername(fd, (struct sockaddr *)&tmp.peer, &tmp.peer_len);
	log_conn(&tmp, "tcp", reason);
}

static struct flp_sock *pend_head;

struct flp_sock *conn_pending_first(void)
{
	return pend_head;
}

/* Put s on the watch list, or take it off, as its kind and quiet mask
 * say.  Its epoll registrations count in flp_ep_pending only while it is
 * on the list.  Caller holds flp_mu. */
void conn_watch(struct flp_sock *s)
{
	int k = s->kind;
	/* a ring's readiness is not the kernel's for the fd: shm sockets
	 * stay watched while the app has them registered */
	bool want = k == SK_PENDING || k == SK_DRAIN ||
		    (k == SK_FAST && (s->quiet || flp_shm(s)));

	if (want && !s->on_pend) {
		s->pend_prev = NULL;
		s->pend_next = pend_head;
		if (pend_head)
			pend_head->pend_prev = s;
		pend_head = s;
		s->on_pend = true;
		flp_ep_pending += s->nep;
	} else if (!want && s->on_pend) {
		if (s->pend_prev)
			s->pend_prev->pend_next = s->pend_next;
		else
			pend_head = s->pend_next;
		if (s->pend_next)
			s->pend_next->pend_prev = s->pend_prev;
		s->on_pend = false;
		flp_ep_pending -= s->nep;
	}
	if (!want && k != SK_TRIAL && k != SK_UNDECIDED) {
		/* nothing to carry or fix any more: the kernel's
		 * registrations are the app's own (a TRIAL socket keeps
		 * its list, off the watch list: its events are the
		 * kernel's, but an adoption must carry them; so does it
		 * while it decides, UNDECIDED) */
		s->nep = 0;
		__atomic_store_n(&s->quiet, 0, __ATOMIC_RELAXED);
	}
}

/* Change s's kind, keeping the watch list right.  Caller holds flp_mu. */
static void set_kind(struct flp_sock *s, int kind)
{
	/* pairs with sock_kind(): fields set before are visible with it */
	__atomic_store_n(&s->kind, kind, __ATOMIC_RELEASE);
	conn_watch(s);
}

/* A data call on a FAST socket: the app has acted since the switch, so an
 * edge the kernel reports now is its own; stop filtering. */
void conn_unquiet(struct flp_sock *s)
{
	pthread_mutex_lock(&flp_mu);
	if (s->quiet) {
		__atomic_store_n(&s->quiet, 0, __ATOMIC_RELAXED);
		conn_watch(s);
	}
	pthread_mutex_unlock(&flp_mu);
}

/* The hint our socket() hook records for a new socket. */
int conn_tcp_hint(int domain, int type, int protocol)
{
	if ((domain == AF_INET || domain == AF_INET6) &&
	    (type & 0xf) == SOCK_STREAM && (protocol == 0 || protocol == IPPROTO_TCP))
		return FDT_HINT_TCP;
	return 0;
}

/* Is fd a TCP socket (AF_INET/AF_INET6, SOCK_STREAM, protocol TCP)? */
static bool is_tcp(int fd)
{
	int v;
	socklen_t l = sizeof(v);

	if (fdt_hint(fd) & FDT_HINT_TCP)
		return true;

	if (flp_real.getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &v, &l) < 0 ||
	    v != IPPROTO_TCP)
		return false;
	l = sizeof(v);
	if (flp_real.getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &l) < 0 ||
	    v != SOCK_STREAM)
		return false;
	return true;
}

/* Note in the fd table that fd is the library's (owned by owner), so that
 * an app closing "all fds" is noticed.  Caller holds flp_mu. */
void flp_note_hidden(int fd, struct flp_sock *owner)
{
	struct flp_sock *h = sock_new(SK_HIDDEN);

	if (h) {
		h->owner = owner;
		fdt_attach(fd, h);
		if (fdt_get(fd) != h)
			sock_free(h);   /* beyond the table: not tracked */
	}
}

/*
 * Keep fd for the library at a high number, close-on-exec, noted in the
 * fd table.  Returns the new number or -errno.  Caller holds flp_mu.
 */
int flp_hide_fd(int fd, struct flp_sock *owner)
{
	int n = flp_real.fcntl(fd, F_DUPFD_CLOEXEC, fdt_max() / 2);

	if (n < 0)
		n = flp_real.fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (n < 0)
		return -errno;
	flp_real.close(fd);
	flp_note_hidden(n, owner);
	return n;
}

/* Close a hidden fd of s.  A DRAIN server's TCP bytes still unread are
 * the app's own unread data (it closes): TCP resets then, and so do we.
 * Nothing is read here: a fork child may share the socket and need them. */
void flp_close_hidden(struct flp_sock *s, int *fdp)
{
	struct flp_sock *h;
	int fd = *fdp;

	(void)s;
	if (fd < 0)
		return;
	if ((h = fdt_detach(fd)))
		sock_free(h);
	flp_real.close(fd);
	*fdp = -1;
}

/* --------------------------------------------------------------- listen */

/* Publish a handshake file for listening socket fd.  Caller holds flp_mu. */
static void publish(int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct reg_addr bound;
	struct reg_map *m;
	struct flp_sock *s = fdt_get(fd);
	int v6only = 0, r;

	if ((s && s->kind == SK_LISTENER) || !is_tcp(fd) ||
	    flp_real.getsockname(fd, (struct sockaddr *)&ss, &sl) < 0 ||
	    addr_to_reg((struct sockaddr *)&ss, sl, &bound) < 0)
		return;
	if (ss.ss_family == AF_INET6) {
		socklen_t l = sizeof(v6only);
		flp_real.getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &l);
	}
	r = reg_publish(&bound, v6only, &m);
	if (r < 0) {
		FLP_WARN("cannot publish listener on port %u: %s", bound.port,
			 strerror(-r));
		return;
	}
	if (s)
		conn_forget_stale_locked(fd);
	if (!(s = sock_new(SK_LISTENER))) {
		reg_unpublish(m);
		return;
	}
	s->map = m;
	s->server = true;
	fdt_attach(fd, s);
	FLP_DBG("published listener fd %d port %u as %s", fd, bound.port, m->name);
}

int conn_listen(int fd, int backlog)
{
	if (flp_real.listen(fd, backlog) < 0)
		return -errno;
	if (flp_cfg.transport == FLP_TR_OFF || !reg_enabled())
		return 0;
	pthread_mutex_lock(&flp_mu);
	publish(fd);
	pthread_mutex_unlock(&flp_mu);
	return 0;
}

/* -------------------------------------------------------------- connect */

/*
 * The rendezvous: one listening AF_UNIX socket per process, with a
 * kernel-chosen abstract name, written into every claim the process makes.
 * An adopting server connects to it and first writes a struct rdv_hdr
 * naming the handshake file and the TCP connection's 4-tuple, so the
 * client can tell concurrent adoptions apart; connections for another of
 * our pending sockets are kept aside (the stash) for it, connections for
 * none are closed (their adopter sees EOF: only a scribbled claim slot
 * makes them).  A fork child makes its own (the inherited one is the
 * parent's).
 */
#define RDV_MAGIC 0x464c4f4f50524457ull /* "FLOOPRDW": v2, with the 4-tuple */
#define RDV_STASH_MAX 64

struct rdv_hdr {
	uint64_t magic;
	uint64_t ino;           /* the handshake file */
	uint32_t slot, gen;     /* the claim, as the adopter saw it */
	struct reg_addr cli;    /* the TCP connection it adopted */
	struct reg_addr srv;
};

struct rdv_stash {
	int fd;
	pid_t pid;              /* SO_PEERCRED of the adopter */
	bool known;             /* header read */
	uint64_t t0;            /* when it was stashed (us) */
	struct rdv_hdr h;
	struct rdv_stash *next;
};

static int rdv_fd = -1;
static pid_t rdv_pid;
static char rdv_name[REG_UDS_MAX];
static uint8_t rdv_len;
static struct rdv_stash *rdv_stash;
static int rdv_nstash;

/* This process's rendezvous, made on first use.  Returns 0 or -errno.
 * Caller holds flp_mu. */
static int rendezvous(void)
{
	struct sockaddr_un un;
	socklen_t sl = sizeof(sa_family_t);
	int fd;

	if (rdv_fd >= 0 && rdv_pid == flp_pid)
		return 0;
	fd = flp_real.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	memset(&un, 0, sizeof(un));
	un.sun_family = AF_UNIX;
	/* an address of just the family asks the kernel to autobind */
	if (flp_real.bind(fd, (struct sockaddr *)&un, sl) < 0 ||
	    flp_real.listen(fd, SOMAXCONN) < 0)
		goto err;
	sl = sizeof(un);
	if (flp_real.getsockname(fd, (struct sockaddr *)&un, &sl) < 0)
		goto err;
	sl -= offsetof(struct sockaddr_un, sun_path);
	if (sl == 0 || sl > REG_UDS_MAX) {
		errno = ENAMETOOLONG;
		goto err;
	}
	memcpy(rdv_name, un.sun_path, sl);
	rdv_len = (uint8_t)sl;
	rdv_fd = flp_hide_fd(fd, NULL);
	if (rdv_fd < 0) {
		rdv_fd = -1;
		return -EMFILE;
	}
	rdv_pid = flp_pid;
	return 0;
err:
	{
		int e = errno;
		flp_real.close(fd);
		return -e;
	}
}

/* In a fork child: the rendezvous and the stash are the parent's. */
static void rendezvous_forget(void)
{
	struct flp_sock *h;

	if (rdv_fd >= 0) {
		if ((h = fdt_detach(rdv_fd)))
			sock_free(h);
		flp_real.close(rdv_fd);
		rdv_fd = -1;
	}
	while (rdv_stash) {
		struct rdv_stash *n = rdv_stash->next;
		flp_real.close(rdv_stash->fd);
		free(rdv_stash);
		rdv_stash = n;
	}
	rdv_nstash = 0;
}

/*
 * Read the header of a rendezvous connection without waiting.  Returns 1
 * (read: *h, *pid filled), 0 (not written yet: another claim's adopter is
 * between its connect and its header) or -1 (not an adopter of ours).
 */
static int rdv_identify(int u, struct rdv_hdr *h, pid_t *pid)
{
	struct ucred cr;
	socklen_t cl = sizeof(cr);
	ssize_t r = flp_real.recv(u, h, sizeof(*h), MSG_DONTWAIT);

	if (r < 0 && errno == EAGAIN)
		return 0;
	if (r != (ssize_t)sizeof(*h) || h->magic != RDV_MAGIC ||
	    flp_real.getsockopt(u, SOL_SOCKET, SO_PEERCRED, &cr, &cl) < 0 ||
	    cr.uid != geteuid())
		return -1;
	*pid = cr.pid;
	return 1;
}

/* The 4-tuple of a client entry, as a header names it. */
static bool sock_tuple(const struct flp_sock *s, struct reg_addr *cli,
		       struct reg_addr *srv)
{
	return addr_to_reg((const struct sockaddr *)&s->local, s->local_len, cli) == 0 &&
	       addr_to_reg((const struct sockaddr *)&s->peer, s->peer_len, srv) == 0;
}

static bool hdr_names(const struct rdv_hdr *h, uint64_t ino,
		      const struct reg_addr *cli, const struct reg_addr *srv)
{
	return h->ino == ino && addr_eq(&h->cli, cli) && addr_eq(&h->srv, srv);
}

/* Does a header name one of our pending client sockets?  Caller holds
 * flp_mu. */
static bool rdv_wanted(const struct rdv_hdr *h)
{
	struct reg_addr cli, srv;

	for (struct flp_sock *c = pend_head; c; c = c->pend_next)
		if (c->kind == SK_PENDING && c->map && sock_tuple(c, &cli, &srv) &&
		    hdr_names(h, c->map->ino, &cli, &srv))
			return true;
	return false;
}

static void rdv_keep(int u, const struct rdv_hdr *h, pid_t pid, bool known)
{
	struct rdv_stash *e;

	if (rdv_nstash >= RDV_STASH_MAX || !(e = malloc(sizeof(*e)))) {
		flp_real.close(u);
		return;
	}
	e->fd = u;
	e->pid = pid;
	e->known = known;
	e->t0 = flp_now_us();
	if (h)
		e->h = *h;
	e->next = rdv_stash;
	rdv_stash = e;
	rdv_nstash++;
}

/*
 * The UDS an adopter connected for the TCP connection (cli, srv) of the
 * handshake file ino, with the adopter's pid in *pid.  Returns the fd,
 * -ENOENT (no adopter has connected for it) or another -errno.  Stashed
 * connections that no pending socket of ours wants any more, or whose
 * header never came, are closed on the way.  Caller holds flp_mu.
 */
static int rendezvous_take(uint64_t ino, const struct reg_addr *cli,
			   const struct reg_addr *srv, pid_t *pid)
{
	struct rdv_stash **pp, *e;
	uint64_t now = flp_now_us();

	for (pp = &rdv_stash; (e = *pp);) {
		if (!e->known) {
			int k = rdv_identify(e->fd, &e->h, &e->pid);
			e->known = k > 0;
			if (k < 0 || (k == 0 && now - e->t0 > 1000000))
				goto drop;
		}
		if (e->known && hdr_names(&e->h, ino, cli, srv)) {
			int fd = e->fd;
			*pid = e->pid;
			*pp = e->next;
			free(e);
			rdv_nstash--;
			return fd;
		}
		if (e->known && !rdv_wanted(&e->h))
			goto drop;
		pp = &e->next;
		continue;
drop:
		*pp = e->next;
		flp_real.close(e->fd);
		free(e);
		rdv_nstash--;
	}
	if (rdv_fd < 0 || rdv_pid != flp_pid)
		return -ENOENT;
	/* an adopter connects and writes its header before it marks the
	 * claim TAKEN and sends FIN: if it adopted, it is in the backlog */
	for (int i = 0; i < 4 * RDV_STASH_MAX; i++) {
		struct rdv_hdr h;
		pid_t p = 0;
		int u = flp_real.accept4(rdv_fd, NULL, NULL, SOCK_CLOEXEC);
		int k;

		if (u < 0)
			return errno == EAGAIN ? -ENOENT : -errno;
		k = rdv_identify(u, &h, &p);
		if (k > 0 && hdr_names(&h, ino, cli, srv)) {
			*pid = p;
			return u;
		}
		if (k < 0 || (k > 0 && !rdv_wanted(&h))) {
			flp_real.close(u);
			continue;
		}
		/* another pending socket's, maybe not even identified yet */
		rdv_keep(u, k > 0 ? &h : NULL, p, k > 0);
	}
	return -ENOENT;
}

/*
 * connect() with a claim when a live listener file matches the
 * destination.  The TCP connection is made exactly as without us.
 */
int conn_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	struct reg_addr dst, cli;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct flp_sock *s;
	struct reg_map *m;
	char name[REG_UDS_MAX];
	uint8_t nlen = 0;
	uint32_t gen;
	int slot, r, e;
	const char *why = "no-listener";
	struct stat dir;
	bool have_dir;

	s = fdt_get(fd);
	/* connect() again on a connected socket (hiredis polls completion
	 * this way): TCP answers 0 once after a non-blocking connect
	 * completed, then EISCONN; the UDS underneath would say EINVAL */
	if (flp_is_uds(s)) {
		pthread_mutex_lock(&flp_mu);
		r = s->connect_pending ? 0 : -EISCONN;
		s->connect_pending = false;
		pthread_mutex_unlock(&flp_mu);
		return r;
	}
	if (s && sock_kind(s) == SK_PENDING) {
		r = flp_real.connect(fd, sa, len) < 0 ? -errno : 0;
		if (r == 0 || r == -EISCONN)
			s->connect_pending = false;
		return r;
	}
	if (fdt_hint(fd) & FDT_HINT_DECIDED)
		goto plain;
	/* beyond the fd table (a root process that raised its hard limit):
	 * no entry could be kept, so no claim is made */
	if (fd < 0 || fd >= fdt_max())
		goto plain;
	if (flp_cfg.transport == FLP_TR_OFF || !sa || s ||
	    (sa->sa_family != AF_INET && sa->sa_family != AF_INET6) ||
	    addr_to_reg(sa, len, &dst) < 0)
		goto plain;
	if (!is_tcp(fd)) {
		/* an IPv4/IPv6 stream socket that is not TCP (MPTCP) */
		int t = 0;
		socklen_t tl = sizeof(t);
		if (flp_real.getsockopt(fd, SOL_SOCKET, SO_TYPE, &t, &tl) == 0 &&
		    t == SOCK_STREAM) {
			why = "unsupported";
			goto plain_noclaim;
		}
		goto plain;
	}
	if (!reg_enabled()) {
		why = "disabled";
		goto plain_noclaim;
	}

	/* a listener seen before: its owner's liveness (a flock) is asked
	 * outside the lock, which the app's other threads wait for; else
	 * the directory's stat, then the lookup */
	pthread_mutex_lock(&flp_mu);
	m = reg_cached(&dst);
	pthread_mutex_unlock(&flp_mu);
	if (m && !reg_alive(m)) {
		pthread_mutex_lock(&flp_mu);
		reg_forget(m);
		pthread_mutex_unlock(&flp_mu);
		m = NULL;
	}
	if (!m) {
		have_dir = reg_dir_stat(&dir);
		pthread_mutex_lock(&flp_mu);
		m = reg_lookup(&dst, have_dir ? &dir : NULL);
		pthread_mutex_unlock(&flp_mu);
	}
	if (!m)
		goto plain_noclaim;
	pthread_mutex_lock(&flp_mu);
	r = rendezvous();
	memcpy(name, rdv_name, sizeof(name));
	nlen = rdv_len;
	pthread_mutex_unlock(&flp_mu);
	if (r < 0) {
		FLP_WARN("rendezvous socket: %s", strerror(-r));
		reg_put(m);
		goto plain;
	}
	slot = claim_announce(m, &dst, name, nlen, &gen);
	if (slot < 0) {
		reg_put(m);
		r = flp_real.connect(fd, sa, len) < 0 ? -errno : 0;
		if (r == 0 || r == -EINPROGRESS)
			log_tcp_fd(fd, false, "error-claim-table-full");
		return r;
	}
	r = flp_real.connect(fd, sa, len) < 0 ? -errno : 0;
	if (r < 0 && r != -EINPROGRESS && r != -EINTR) {
		claim_release(m, slot, gen);
		reg_put(m);
		return r;
	}
	e = errno;
	if (flp_real.getsockname(fd, (struct sockaddr *)&ss, &sl) < 0 ||
	    addr_to_reg((struct sockaddr *)&ss, sl, &cli) < 0) {
		claim_release(m, slot, gen);
		reg_put(m);
		log_tcp_fd(fd, false, "error-getsockname");
		errno = e;
		return r;
	}
	/* the entry is on the watch list before the claim can be adopted:
	 * another thread taking an adopter's connection out of our
	 * rendezvous must know it is wanted (rdv_wanted) */
	pthread_mutex_lock(&flp_mu);
	s = sock_new(SK_NONE);
	if (!s) {
		pthread_mutex_unlock(&flp_mu);
		claim_release(m, slot, gen);
		reg_put(m);
		log_tcp_fd(fd, false, "error-nomem");
		return r;
	}
	s->map = m;
	s->slot = slot;
	s->gen = gen;
	s->connect_pending = r == -EINPROGRESS;
	s->pend_t0 = flp_now_us();
	/* a hint from the listener's file: its server adopts late, after
	 * the connection proved long-lived, and may write on TCP first */
	s->lazy = m->hdr->switch_after != 0;
	memcpy(&s->local, &ss, sl);
	s->local_len = sl;
	memcpy(&s->peer, sa, len < sizeof(s->peer) ? len : sizeof(s->peer));
	s->peer_len = len;
	set_kind(s, SK_PENDING);
	fdt_attach(fd, s);
	wait_pre_adopt(fd, s);
	claim_fill(m, slot, gen, &cli);
	pthread_mutex_unlock(&flp_mu);
	errno = e;
	return r;

plain_noclaim:
	r = flp_real.connect(fd, sa, len) < 0 ? -errno : 0;
	if (r == 0 || r == -EINPROGRESS) {
		fdt_set_hint(fd, fdt_hint(fd) | FDT_HINT_DECIDED);
		log_tcp_fd(fd, false, why);
	}
	return r;
plain:
	return flp_real.connect(fd, sa, len) < 0 ? -errno : 0;
}

/* ----------------------------------------------------------- the switch */

/*
 * Make the new socket `to` behave as the TCP socket `from` the app had set
 * up (bug: a client that set SO_RCVTIMEO between connect() and the switch
 * blocked forever): timeouts, linger, keepalive, priority, mark, low-water
 * mark, and the buffer sizes if the app chose them (hint).  An accepted
 * socket has inherited the listener's.  Options the UDS does not take are
 * skipped: TCP-level ones are answered by emu.c.
 */
void conn_copy_opts(int from, int to, int hint)
{
	static const int names[] = { SO_RCVTIMEO, SO_SNDTIMEO, SO_LINGER,
				     SO_KEEPALIVE, SO_PRIORITY, SO_MARK,
				     SO_RCVLOWAT, SO_OOBINLINE };
	char v[sizeof(struct timeval) + sizeof(struct linger)];
	int b;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		socklen_t l = sizeof(v);
		if (flp_real.getsockopt(from, SOL_SOCKET, names[i], v, &l) == 0)
			flp_real.setsockopt(to, SOL_SOCKET, names[i], v, l);
	}
	for (int k = 0; k < 2; k++) {
		int name = k ? SO_SNDBUF : SO_RCVBUF;
		socklen_t l = sizeof(b);
		if (!(hint & (k ? FDT_HINT_SNDBUF : FDT_HINT_RCVBUF)) ||
		    flp_real.getsockopt(from, SOL_SOCKET, name, &b, &l) < 0)
			continue;
		b /= 2;         /* the kernel doubled what the app asked */
		flp_real.setsockopt(to, SOL_SOCKET, name, &b, sizeof(b));
	}
}

/* The file status flags and signal owner of the app's socket, onto newfd. */
static void copy_file_flags(struct flp_sock *s, int newfd, bool new_nonblock)
{
	/* the app's own flags: known for a socket accept() returns just now,
	 * asked from the kernel otherwise */
	int fl = s->fresh ? ((s->acc_flags & SOCK_NONBLOCK) ? O_NONBLOCK : 0)
			  : flp_real.fcntl(s->fds[0], F_GETFL);

	if (fl < 0)
		return;
	if (!!(fl & O_NONBLOCK) != new_nonblock || (fl & O_ASYNC))
		flp_real.fcntl(newfd, F_SETFL, fl & (O_NONBLOCK | O_ASYNC));
	if (fl & O_ASYNC) {
		struct f_owner_ex o;
		int sig = flp_real.fcntl(s->fds[0], F_GETSIG);
		if (flp_real.fcntl(s->fds[0], F_GETOWN_EX, &o) == 0)
			flp_real.fcntl(newfd, F_SETOWN_EX, &o);
		if (sig > 0)
			flp_real.fcntl(newfd, F_SETSIG, sig);
	}
}

/*
 * Put newfd in place of every fd number of s, carrying the app's socket
 * options, file flags, each number's FD_CLOEXEC and its epoll
 * registrations.  newfd is consumed.  An edge-triggered registration does
 * not report again what the app was told before the switch (s->quiet),
 * and a one-shot registration that fired stays disarmed.  Caller holds
 * flp_mu.
 */
static int swap_in(struct flp_sock *s, int newfd, bool new_nonblock)
{
	int hint = fdt_hint(s->fds[0]);

	emu_capture(s->fds[0], s);
	conn_copy_opts(s->fds[0], newfd, hint);
	copy_file_flags(s, newfd, new_nonblock);
	__atomic_store_n(&s->quiet, 0, __ATOMIC_RELAXED);
	for (int i = 0; i < s->nfds; i++) {
		int n = s->fds[i];
		int fdfl = s->fresh ? ((s->acc_flags & SOCK_CLOEXEC) ? FD_CLOEXEC : 0)
				    : flp_real.fcntl(n, F_GETFD);

		for (int k = 0; k < s->nep; k++)
			if (s->ep[k].fd == n)
				flp_real.epoll_ctl(s->ep[k].epfd, EPOLL_CTL_DEL, n, NULL);
		if (flp_real.dup3(newfd, n, fdfl > 0 && (fdfl & FD_CLOEXEC) ? O_CLOEXEC : 0) < 0) {
			int e = errno;
			flp_real.close(newfd);
			return -e;
		}
		fdt_set_hint(n, hint & (FDT_HINT_RCVBUF | FDT_HINT_SNDBUF));
		for (int k = 0; k < s->nep; k++) {
			struct epoll_event ev = s->ep[k].ev;
			if (s->ep[k].fd != n)
				continue;
			if ((ev.events & EPOLLONESHOT) && s->ep[k].seen)
				ev.events &= EPOLLONESHOT | EPOLLET;
			else if (ev.events & EPOLLET)
				__atomic_fetch_or(&s->quiet, s->ep[k].seen, __ATOMIC_RELAXED);
			if (flp_shm(s)) {
				struct sock_epreg r = s->ep[k];
				r.ev.events = ev.events;
				r.parked = false;
				ev.events = wait_kernel_events(&r);
			}
			flp_real.epoll_ctl(s->ep[k].epfd, EPOLL_CTL_ADD, n, &ev);
		}
	}
	flp_real.close(newfd);
	if (flp_shm(s)) {
		bool et = false;
		for (int k = 0; k < s->nep; k++)
			et |= (s->ep[k].ev.events & EPOLLET) != 0;
		shm_note_et(s, et);
	}
	return 0;
}

/* Give the app's epoll registrations back their own events (we had added
 * EPOLLIN for the doorbell).  Caller holds flp_mu. */
static void ep_restore(struct flp_sock *s)
{
	for (int k = 0; k < s->nep; k++) {
		struct epoll_event ev = s->ep[k].ev;
		flp_real.epoll_ctl(s->ep[k].epfd, EPOLL_CTL_MOD, s->ep[k].fd, &ev);
	}
}

static void drop_claim(struct flp_sock *s)
{
	if (s->map) {
		if (!s->server)
			claim_release(s->map, s->slot, s->gen);
		reg_put(s->map);
		s->map = NULL;
	}
}

/* The socket stays TCP: forget everything about it.  After this the fds
 * have no entry and every call passes through. */
static void to_tcp(struct flp_sock *s, const char *reason)
{
	struct flp_sock *last = NULL;

	if (flp_cfg.log_level >= FLP_LOG_INFO)
		fill_local(s);
	log_conn(s, "tcp", reason);
	ep_restore(s);
	drop_claim(s);
	set_kind(s, SK_NONE);
	for (int i = s->nfds - 1; i >= 0; i--) {
		fdt_set_hint(s->fds[i], fdt_hint(s->fds[i]) | FDT_HINT_DECIDED);
		last = fdt_detach(s->fds[i]);
	}
	if (last)
		sock_free(last);
}

/* Publish s, about to be fast, for `fastloop stat`.  The data hooks
 * read s->st once they see the kind, which is stored after (release). */
static void stat_open(struct flp_sock *s)
{
	if (!s->st)
		s->st = stat_conn_open(s->server, (struct sockaddr *)&s->local, s->local_len,
				       (struct sockaddr *)&s->peer, s->peer_len,
				       flp_shm(s) ? "shm" : "uds");
}

/* What the peer has put on TCP socket fd, without taking it. */
enum tcp_ev { TCP_NOTHING, TCP_EOF, TCP_DATA };

static int tcp_peek(int fd)
{
	char b;
	ssize_t r = flp_real.recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);

	if (r > 0)
		return TCP_DATA;
	if (r == 0 || (errno != EAGAIN && errno != EINTR))
		return TCP_EOF;     /* FIN, or a reset: the peer is done */
	return TCP_NOTHING;
}

/*
 * A switch that cannot be completed: the server has adopted, so TCP is no
 * way on.  The app's fds are shut down both ways (reads see EOF, writes
 * EPIPE), as a connection that was reset; the peer sees the same.
 */
static void reset_conn(struct flp_sock *s, int err)
{
	if (err == ECONNRESET)  /* the peer died mid-switch: not our error */
		FLP_INFO("the peer went away during the switch; resetting the connection");
	else
		FLP_ERR("switch to the fast channel failed: %s; resetting the connection",
			strerror(err));
	for (int i = 0; i < s->nfds; i++)
		flp_real.shutdown(s->fds[i], SHUT_RDWR);
	to_tcp(s, "error-switch");
}

/* A duplicate of fd for the library: high, close-on-exec; -1 (errno) if
 * none could be made. */
static int dup_high(int fd)
{
	int n = flp_real.fcntl(fd, F_DUPFD_CLOEXEC, fdt_max() / 2);

	return n >= 0 ? n : flp_real.fcntl(fd, F_DUPFD_CLOEXEC, 3);
}

/*
 * Client: the server adopted our claim and connected u (its pid: adopter).
 * End our TCP phase with FIN — the server reads what we sent over TCP up
 * to it, then the UDS — and put u at the app's fds.  Nothing is re-sent:
 * every byte goes exactly once, over TCP before the FIN or over the UDS
 * after it.  Caller holds flp_mu.
 */
static void client_switch(struct flp_sock *s, int u, pid_t adopter)
{
	int32_t claimed = s->map->slots[s->slot].server_pid;
	int r, hid = -1, fin = -1;

	/* the slot is only a hint (any same-user process can write it); the
	 * header's 4-tuple and SO_PEERCRED are what we trust: a mismatch
	 * here is a scribbled slot, not a reason to refuse */
	if (claimed != adopter)
		FLP_DBG("adopter pid %d, slot says %d", (int)adopter, (int)claimed);
	/* the server's preface: the ring it made for us, if we asked */
	if ((r = shm_take(s, u)) < 0) {
		flp_real.close(u);
		reset_conn(s, -r);
		return;
	}
	/* A server that adopted late may have written on TCP before: its
	 * bytes up to its FIN (the doorbell, sent right after TAKEN) come
	 * first.  Unless that FIN is all there is, the TCP socket is kept,
	 * hidden, and read first (SK_DRAIN, as an adopting server does).
	 * One that adopted in accept() never writes on TCP: its FIN is all. */
	bool drain = s->lazy && tcp_peek(s->fds[0]) != TCP_EOF;

	if (drain)
		hid = dup_high(s->fds[0]);
	/* sends of other threads still in the kernel on TCP (a lazy
	 * client's switch does not wait for them): the TCP socket is kept
	 * for the FIN that the last of them sends (io.c, call_end) */
	if (s->sending)
		fin = dup_high(s->fds[0]);
	if ((drain && hid < 0) || (s->sending && fin < 0)) {
		r = errno;
		if (hid >= 0)
			flp_real.close(hid);
		flp_real.close(u);
		shm_release(s);
		reset_conn(s, r);
		return;
	}
	/* SHUT_WR: the FIN marks the end of our TCP bytes for the server;
	 * SHUT_RD (nothing left to read): wakes another thread waiting on
	 * the TCP socket, to find the UDS in place.  While the server's
	 * bytes are still to come, its FIN does that.  Either way the TCP
	 * socket closes with nothing unread: FIN, never RST.  With sends in
	 * flight, nothing now: their bytes go first, then the FIN. */
	if (fin < 0)
		flp_real.shutdown(s->fds[0], hid < 0 ? SHUT_RDWR : SHUT_WR);
	if ((r = swap_in(s, u, false)) < 0) {
		if (hid >= 0)
			flp_real.close(hid);
		if (fin >= 0)
			flp_real.close(fin);
		reset_conn(s, -r);
		return;
	}
	if (fin >= 0) {
		s->fin_tcp = fin;
		flp_note_hidden(fin, s);
	}
	drop_claim(s);
	stat_open(s);
	if (hid >= 0) {
		s->hidden_tcp = hid;
		flp_note_hidden(hid, s);
		set_kind(s, SK_DRAIN);
		wait_drain_mirror(s);
	} else {
		set_kind(s, SK_FAST);
	}
	if (s->shut_wr_tcp && flp_shm(s))
		shm_shutdown(s->fds[0], s, SHUT_WR);
	else if (s->shut_wr_tcp)
		flp_real.shutdown(s->fds[0], SHUT_WR);
	log_conn(s, flp_shm(s) ? "shm" : "uds", NULL);
}

/* Find our own PENDING client entry for a claim (client and server in one
 * process).  Caller holds flp_mu. */
static struct flp_sock *find_local_client(uint64_t ino, int slot, uint32_t gen)
{
	for (struct flp_sock *c = pend_head; c; c = c->pend_next)
		if (c->kind == SK_PENDING && c->map && c->map->ino == ino &&
		    c->slot == slot && c->gen == gen)
			return c;
	return NULL;
}

/*
 * Server in SK_DRAIN: has the client's FIN been read (or can it no longer
 * come)?  Then the hidden TCP socket is done: take it out of the app's
 * epoll sets, close it, and the socket is a plain FAST one.  A client that
 * died before it switched never accepted our UDS: the reset that its
 * rendezvous' close left on it is not the app's (TCP showed a clean FIN),
 * so it is cleared and the app reads EOF.  (A client that switched, left
 * our data unread and then died would have reset the connection; its
 * reset is cleared too: the price of not keeping the claim.)  Returns 1 when FAST now, 0
 * while TCP bytes or the FIN are still to come.  Caller holds flp_mu.
 */
int conn_drain_check(struct flp_sock *s)
{
	if (s->kind != SK_DRAIN)
		return 1;
	if (s->hidden_tcp >= 0 && tcp_peek(s->hidden_tcp) != TCP_EOF)
		return 0;
	for (int k = 0; k < s->nep; k++)
		if (s->hidden_tcp >= 0)
			flp_real.epoll_ctl(s->ep[k].epfd, EPOLL_CTL_DEL, s->hidden_tcp, NULL);
	flp_close_hidden(s, &s->hidden_tcp);
	if (s->cli_pid > 0 && !flp_pid_alive(s->cli_pid, s->cli_start)) {
		int e;
		socklen_t l = sizeof(e);
		flp_real.getsockopt(s->fds[0], SOL_SOCKET, SO_ERROR, &e, &l);
	}
	set_kind(s, SK_FAST);
	return 1;
}

/*
 * Server: take the claim in slot idx (observed word sw) for the TCP socket
 * at s's fds.  Returns 1 adopted, 0 lost the race (retry), -errno failed
 * (the connection stays TCP).  Caller holds flp_mu.
 */
static int adopt(struct flp_sock *s, int idx, uint64_t sw)
{
	struct reg_slot *sl = &s->map->slots[idx];
	struct sockaddr_un un;
	uint32_t gen = claim_gen(sw);
	int client_pid, u, hid, r;
	bool drain, want_shm;
	uid_t euid;
	uint8_t n;

	if (!claim_begin_adopt(s->map, idx, sw))
		return 0;
	client_pid = sl->client_pid;
	want_shm = sl->flags & CLAIM_WANT_SHM;
	s->cli_pid = client_pid;
	s->cli_start = sl->client_start;
	euid = geteuid();
	if (sl->client_uid != euid) {
		/* e.g. nginx: a root client, a worker that dropped to nobody;
		 * the client would refuse our UDS (SO_PEERCRED): stay TCP */
		claim_end_adopt(s->map, idx, gen, false);
		return -EPERM;
	}
	n = sl->uds_len;
	memset(&un, 0, sizeof(un));
	un.sun_family = AF_UNIX;
	/* untrusted: only an abstract name of sane length */
	if (n == 0 || n > REG_UDS_MAX || n > sizeof(un.sun_path)) {
		claim_end_adopt(s->map, idx, gen, false);
		return -EPROTO;
	}
	memcpy(un.sun_path, sl->uds_name, n);
	if (un.sun_path[0] != 0) {
		claim_end_adopt(s->map, idx, gen, false);
		return -EPROTO;
	}
	/* non-blocking: a full rendezvous backlog fails (TCP) rather than
	 * blocking accept(); swap_in sets the app's blocking mode */
	u = flp_real.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (u < 0) {
		r = -errno;
		claim_end_adopt(s->map, idx, gen, false);
		return r;
	}
	if (flp_real.connect(u, (struct sockaddr *)&un,
			     offsetof(struct sockaddr_un, sun_path) + n) < 0) {
		r = -errno;
		flp_real.close(u);
		claim_end_adopt(s->map, idx, gen, false);
		return r;
	}
	/* the name came from shared memory: make sure it is the claimant's
	 * rendezvous and not some other socket that happens to have it; the
	 * header names the TCP connection we accepted (its 4-tuple), which
	 * the client checks against its own */
	{
		struct ucred cr;
		socklen_t cl = sizeof(cr);
		struct rdv_hdr h = { RDV_MAGIC, s->map->ino, (uint32_t)idx, gen, {{0}, 0, 0}, {{0}, 0, 0} };
		ssize_t w = -2;
		if (addr_to_reg((struct sockaddr *)&s->peer, s->peer_len, &h.cli) < 0 ||
		    addr_to_reg((struct sockaddr *)&s->local, s->local_len, &h.srv) < 0 ||
		    flp_real.getsockopt(u, SOL_SOCKET, SO_PEERCRED, &cr, &cl) < 0 ||
		    cr.pid != client_pid || cr.uid != euid ||
		    (w = flp_real.send(u, &h, sizeof(h), MSG_DONTWAIT | MSG_NOSIGNAL)) !=
		    (ssize_t)sizeof(h)) {
			FLP_DBG("rendezvous %.*s: peer pid %d uid %d, claim pid %d, header %zd (%s)",
				n - 1, un.sun_path + 1, (int)cr.pid, (int)cr.uid, client_pid,
				w, w < 0 && w != -2 ? strerror(errno) : "-");
			flp_real.close(u);
			claim_end_adopt(s->map, idx, gen, false);
			return -EPROTO;
		}
	}
	/* then the preface (the ring, if both ends want one), also before
	 * TAKEN: the client reads it when it switches */
	if ((r = shm_offer(s, u, want_shm)) < 0) {
		flp_real.close(u);
		claim_end_adopt(s->map, idx, gen, false);
		return r;
	}
	if (!claim_end_adopt(s->map, idx, gen, true)) {
		flp_real.close(u);
		shm_release(s);
		return -ETIMEDOUT;
	}
	/* The doorbell is our FIN: it wakes a client sleeping on its TCP
	 * socket, and as we never wrote data on TCP, the client that sees
	 * EOF finds our header in its rendezvous (written before TAKEN,
	 * before this).  Our read side stays open: the client's bytes sent
	 * before its switch arrive here, ended by its FIN. */
	flp_real.shutdown(s->fds[0], SHUT_WR);
	if (client_pid != flp_pid && flp_cfg.spin_us) {
		/* the client is usually spinning for this TAKEN: give it a few
		 * microseconds to switch, so that its FIN is here when we look
		 * and the app's first read finds the UDS ready */
		uint64_t t0 = flp_now_us();
		while (claim_poll(s->map, idx, gen) == SLOT_TAKEN &&
		       flp_now_us() - t0 < (uint64_t)flp_cfg.spin_us)
			sched_yield();
	}
	/* Until the client's FIN has been read, its TCP bytes come first:
	 * keep the TCP socket (high, close-on-exec) and drain it (SK_DRAIN).
	 * If the FIN is all there is, the dup3 below just closes TCP. */
	hid = -1;
	drain = tcp_peek(s->fds[0]) != TCP_EOF;
	if (drain) {
		hid = flp_real.fcntl(s->fds[0], F_DUPFD_CLOEXEC, fdt_max() / 2);
		if (hid < 0)
			hid = flp_real.fcntl(s->fds[0], F_DUPFD_CLOEXEC, 3);
		if (hid < 0) {
			r = -errno;
			flp_real.close(u);
			reset_conn(s, -r);
			return r;
		}
	}
	if ((r = swap_in(s, u, true)) < 0) {
		/* the app's fd still is the TCP socket, but the client is
		 * switching: nothing consistent is left but a reset */
		FLP_ERR("cannot install the fast channel: %s", strerror(-r));
		shm_release(s);
		for (int i = 0; i < s->nfds; i++)
			flp_real.shutdown(s->fds[i], SHUT_RDWR);
		if (hid >= 0)
			flp_real.close(hid);
		return r;
	}
	stat_open(s);
	if (hid >= 0) {
		s->hidden_tcp = hid;
		flp_note_hidden(hid, s);
		set_kind(s, SK_DRAIN);
		wait_drain_mirror(s);   /* registrations from its trial */
	} else {
		set_kind(s, SK_FAST);
	}
	log_conn(s, flp_shm(s) ? "shm" : "uds", NULL);
	if (client_pid == flp_pid) {
		/* the client is us: switch it now, or a thread that connects,
		 * sends and accepts would wait on itself */
		struct flp_sock *c = find_local_client(s->map->ino, idx, gen);
		struct reg_addr ccli, csrv;
		pid_t p = 0;
		int cu;
		if (c && sock_tuple(c, &ccli, &csrv) &&
		    (cu = rendezvous_take(s->map->ino, &ccli, &csrv, &p)) >= 0)
			client_switch(c, cu, p);
		conn_drain_check(s);
	}
	reg_put(s->map);
	s->map = NULL;
	return 1;
}

/*
 * Server: look for the claim of the connection at s and adopt it.  Waits
 * up to wait_us only while a matching announcement has no port yet.
 * Returns true if s is now FAST; false if it is still undecided (a claim
 * announcement is pending) — *pending tells which.  Caller holds flp_mu.
 */
static bool try_adopt(struct flp_sock *s, int wait_us, bool *pending)
{
	struct reg_addr cli, srv;
	uint64_t t0 = 0, sw, last_look = 0, life;
	int idx, r;

	*pending = false;
	fill_local(s);
	if (addr_to_reg((struct sockaddr *)&s->peer, s->peer_len, &cli) < 0 ||
	    addr_to_reg((struct sockaddr *)&s->local, s->local_len, &srv) < 0)
		return false;
	for (;;) {
		idx = claim_find(s->map, &cli, &srv, &sw, pending);
		if (idx == -ECANCELED) {
			*pending = false;
			to_tcp(s, "revoked");
			return false;
		}
		if (idx >= 0) {
			r = adopt(s, idx, sw);
			if (r > 0)
				return true;
			if (r < 0) {
				char why[48];
				if (r == -EPERM)
					snprintf(why, sizeof(why), "uid-mismatch");
				else
					snprintf(why, sizeof(why), "error-adopt-%s",
						 strerrorname_np(-r) ? strerrorname_np(-r) : "?");
				*pending = false;
				to_tcp(s, why);
				return false;
			}
			continue;
		}
		if (!*pending)
			return false;
		if (!t0) {
			t0 = flp_now_us();
		} else {
			uint64_t w = flp_now_us() - t0;
			if (w >= (uint64_t)wait_us)
				return false;
			/* past 1 ms, every ~1 ms: is the client still there? */
			if (w >= 1000 && w / 1000 != last_look) {
				last_look = w / 1000;
				if (!claim_pending_alive(s->map, &srv)) {
					*pending = false;
					return false;
				}
			}
		}
		/* the client is between connect() and filling its port;
		 * on a shared core it needs the CPU to get there: yield, and
		 * past the first 200 us sleep rather than spin.  Without
		 * flp_mu: a client thread of this process takes it to fill
		 * its claim (it waited for us for the whole wait). */
		life = s->serial;
		pthread_mutex_unlock(&flp_mu);
		if (flp_now_us() - t0 < 200) {
			sched_yield();
		} else {
			struct timespec ts = { 0, 20000 };
			nanosleep(&ts, NULL);
		}
		pthread_mutex_lock(&flp_mu);
		if (s->serial != life || s->kind != SK_UNDECIDED) {
			/* decided, or closed, by another thread meanwhile */
			*pending = false;
			return s->serial == life && (s->kind == SK_FAST || s->kind == SK_DRAIN);
		}
	}
	return false;
}

/* ---------------------------------------------------------------- accept */

int conn_accept(int lfd, struct sockaddr *sa, socklen_t *len, int flags)
{
	struct sockaddr_storage peer;
	socklen_t pl = sizeof(peer);
	struct flp_sock *l = fdt_get(lfd), *s;
	bool pending;
	int fd;

	if (!l || sock_kind(l) != SK_LISTENER) {
		fd = flp_real.accept4(lfd, sa, len, flags);
		if (fd < 0)
			return -errno;
		/* the fast path is off for this process (bad registry): the
		 * one line per TCP connection still says so */
		if (flp_cfg.transport != FLP_TR_OFF && !reg_enabled() &&
		    flp_cfg.log_level >= FLP_LOG_INFO && is_tcp(fd))
			log_tcp_fd(fd, true, "disabled");
		return fd;
	}
	fd = flp_real.accept4(lfd, (struct sockaddr *)&peer, &pl, flags);
	if (fd < 0)
		return -errno;
	if (sa && len) {
		memcpy(sa, &peer, *len < pl ? *len : pl);
		*len = pl;
	}
	if (fd >= fdt_max())
		return fd;      /* no entry possible: not adopted, the client
				 * finds out (our data, or its give-up) */
	if (fdt_get(fd))
		conn_forget_stale(fd);
	fdt_set_hint(fd, fdt_hint(lfd) & (FDT_HINT_RCVBUF | FDT_HINT_SNDBUF));
	pthread_mutex_lock(&flp_mu);
	l = fdt_get(lfd);
	if (!l || l->kind != SK_LISTENER ||
	    !(s = sock_new(flp_cfg.switch_after ? SK_TRIAL : SK_UNDECIDED))) {
		pthread_mutex_unlock(&flp_mu);
		return fd;
	}
	s->server = true;
	s->map = l->map;
	reg_get(s->map);
	memcpy(&s->peer, &peer, pl);
	s->peer_len = pl;
	if (s->kind == SK_TRIAL) {
		/* plain TCP until it has proved long-lived: a short
		 * connection costs what TCP costs (the claim is looked
		 * for only then, conn_settle) */
		fdt_attach(fd, s);
		pthread_mutex_unlock(&flp_mu);
		return fd;
	}
	s->local_len = sizeof(s->local);
	flp_real.getsockname(fd, (struct sockaddr *)&s->local, &s->local_len);
	fdt_attach(fd, s);
	s->fresh = true;                /* the app has not seen fd yet */
	s->acc_flags = flags;
	if (!try_adopt(s, flp_cfg.accept_wait_us, &pending) && fdt_get(fd) == s) {
		if (!pending)
			to_tcp(s, "peer-not-preloaded");
		/* else: undecided until the first data operation */
	}
	if (fdt_get(fd) == s)
		s->fresh = false;
	pthread_mutex_unlock(&flp_mu);
	return fd;
}

/* ---------------------------------------------------------------- settle */

/*
 * A PENDING client: has the server adopted?  The truth is in the streams,
 * not in the claim slot (any same-user process can scribble on it): the
 * adopter's header in our rendezvous says yes — it is written before the
 * slot says TAKEN and before the adopter's FIN — and the server's data on
 * TCP says no.  The slot only tells when to look.  Returns 0.  Caller
 * holds flp_mu.
 */
/*
 * A PENDING client of a server that adopts late (s->lazy): the server's
 * data on TCP is no answer, it may come before an adoption.  The slot
 * tells when to look, without a system call: TAKEN, or the end of the
 * claim (FAILED); force (a close, fork, exec, or the server's FIN seen
 * by the caller) decides now.  An adopter's FIN follows its header and
 * TAKEN, so a FIN with no header is the server's own: TCP.  Never while
 * another thread is in a call on the TCP socket (without force).
 * Caller holds flp_mu.
 */
static int settle_lazy(struct flp_sock *s, bool force)
{
	uint32_t st = claim_poll(s->map, s->slot, s->gen);
	struct reg_addr cli, srv;
	pid_t pid = 0;
	int u;

	if (!force && st != SLOT_TAKEN && st != SLOT_FAILED)
		return 0;
	/* adopted, but a read or poll of another thread is in the kernel
	 * on TCP: it switches when that call is back (the adopter's FIN ends
	 * it).  Sends do not hold the switch: the server may stop reading
	 * TCP until we read its answers from the fast channel (a blocking
	 * echo), and a send larger than the buffers would then never end;
	 * our FIN waits for them instead (client_switch). */
	if (s->inflight > s->sending && st == SLOT_TAKEN)
		return 0;
	if (st != SLOT_TAKEN && st != SLOT_FAILED) {
		/* the common end of a short connection: no system call */
		st = claim_revoke(s->map, s->slot, s->gen);
		FLP_DBG("lazy client fd %d: decides (inflight %d), claim now %u",
			s->nfds ? s->fds[0] : -1, s->inflight, st);
		if (st == SLOT_REVOKED) {
			to_tcp(s, "revoked");
			return 0;
		}
		if (s->inflight > s->sending && st == SLOT_TAKEN)
			return 0;       /* adopted meanwhile: as above */
	}
	if (st == SLOT_FAILED) {
		to_tcp(s, "server-declined");
		return 0;
	}
	if (!sock_tuple(s, &cli, &srv)) {
		to_tcp(s, "error-address");
		return 0;
	}
	u = rendezvous_take(s->map->ino, &cli, &srv, &pid);
	if (u >= 0)
		client_switch(s, u, pid);
	else if (force)
		reset_conn(s, EPROTO);  /* TAKEN, and no adopter came */
	/* else the slot says TAKEN without an adopter: a lie, ignored */
	return 0;
}

static int settle_pending(struct flp_sock *s, bool force)
{
	struct reg_addr cli, srv;
	uint32_t st;
	int ev;
	pid_t pid = 0;
	int u;

	if (s->lazy)
		return settle_lazy(s, force);
	st = claim_poll(s->map, s->slot, s->gen);
	ev = tcp_peek(s->fds[0]);

	if (!force && ev == TCP_NOTHING && st != SLOT_TAKEN)
		return 0;
	if (!sock_tuple(s, &cli, &srv)) {
		to_tcp(s, "error-address");
		return 0;
	}
	u = rendezvous_take(s->map->ino, &cli, &srv, &pid);
	if (u >= 0 && ev != TCP_DATA) {
		client_switch(s, u, pid);
		return 0;
	}
	if (u >= 0) {
		/* an adopter that also wrote data on TCP: only a scribbled
		 * slot makes this; the TCP stream is the real one */
		flp_real.close(u);
	}
	if (!force && ev == TCP_NOTHING)
		return 0;       /* the slot said TAKEN, no adopter came: a lie */
	st = claim_revoke(s->map, s->slot, s->gen);
	if (st == SLOT_TAKEN && ev == TCP_NOTHING &&
	    (u = rendezvous_take(s->map->ino, &cli, &srv, &pid)) >= 0) {
		client_switch(s, u, pid);   /* adopted while we decided */
		return 0;
	}
	if (st == SLOT_TAKEN && ev == TCP_EOF) {
		/* a FIN and no header: no adopter sent it (it writes the
		 * header first), this is the server closing; the slot lies */
		st = SLOT_REVOKED;
	}
	if (st == SLOT_REVOKED)
		to_tcp(s, force ? "revoked" : "revoked-peer-data");
	else if (st == SLOT_FAILED)
		to_tcp(s, "server-declined");
	else
		reset_conn(s, EPROTO);  /* TAKEN without an adopter */
	return 0;
}

/*
 * Bring s (at fd) towards a final state.  A PENDING client switches when
 * its adopter is there, stays TCP when the server's data (or EOF) comes
 * first; with force it decides now.  An UNDECIDED server adopts if the
 * claim is there, else TCP (force, or no announcement pending).  A
 * DRAIN server becomes FAST once the client's FIN is read.  Returns 0.
 * Caller holds flp_mu.
 */
int conn_settle(int fd, struct flp_sock *s, bool force)
{
	bool pending, trial = false;

	(void)fd;
	if (s->kind == SK_TRIAL) {
		/* proved long-lived, or a fork/exec that must decide: look
		 * for the claim now.  Never while another thread is in a
		 * call on the TCP socket: its blocked read would end in
		 * the client's FIN (a false EOF), its write in EPIPE. */
		if (!force && (s->inflight || s->calls < (uint32_t)flp_cfg.switch_after))
			return 0;
		if (s->inflight) {
			/* a fork or exec must decide, and cannot adopt */
			to_tcp(s, "trial-busy");
			return 0;
		}
		FLP_DBG("server fd %d: trial over after %u calls, looking for its claim",
			s->nfds ? s->fds[0] : -1, s->calls);
		set_kind(s, SK_UNDECIDED);
		force = true;
		trial = true;
	}
	if (s->kind == SK_UNDECIDED) {
		/* a claim announced but not filled is a client between its
		 * connect() and the next instruction: only preemption keeps it
		 * there, so waiting for it (while it is pending) is short */
		uint64_t life = s->serial;
		/* try_adopt lets flp_mu go while it waits: s may have been
		 * closed (and its entry reused) meanwhile */
		if (!try_adopt(s, force ? flp_cfg.decide_wait_us : 0, &pending) &&
		    s->serial == life && s->kind == SK_UNDECIDED && (force || !pending))
			/* after a trial, a client that is gone already (its
			 * FIN is here: it closed, releasing its claim, before
			 * we looked) was a short connection, not a plain one */
			to_tcp(s, trial && tcp_peek(s->fds[0]) == TCP_EOF ?
				  "short-lived" : "peer-not-preloaded");
		return 0;
	}
	if (s->kind == SK_DRAIN) {
		conn_drain_check(s);
		return 0;
	}
	if (s->kind != SK_PENDING)
		return 0;
	return settle_pending(s, force);
}

static bool spin_match(struct flp_sock *p, int epfd, int fd)
{
	if (fd >= 0) {
		for (int i = 0; i < p->nfds; i++)
			if (p->fds[i] == fd)
				return true;
		return false;
	}
	if (epfd >= 0) {
		for (int i = 0; i < p->nep; i++)
			if (p->ep[i].epfd == epfd)
				return true;
		return false;
	}
	return true;
}

/*
 * About to sleep while a pending client waits for its adoption: spin up to
 * spin_us (yielding, so a server on our core runs) and switch as soon as
 * the claim is TAKEN.  Being woken by the doorbell instead costs a ~20 us
 * wakeup on each side.  Which pending clients: those with fd (fd >= 0),
 * those registered in epfd (epfd >= 0), else all.  Returns true if one
 * of them changed state.  Takes flp_mu per round, never across a yield.
 */
bool conn_spin_take(int epfd, int fd)
{
	uint64_t t0 = flp_now_us();

	if (!flp_cfg.spin_us)
		return false;
	for (;;) {
		bool any = false, changed = false;

		pthread_mutex_lock(&flp_mu);
		for (struct flp_sock *p = pend_head, *n; p; p = n) {
			uint32_t st;
			n = p->pend_next;
			/* a lazy server adopts when it sees fit, not now */
			if (p->kind != SK_PENDING || p->lazy || !spin_match(p, epfd, fd) ||
			    !p->map)
				continue;
			any = true;
			st = claim_poll(p->map, p->slot, p->gen);
			if (st == SLOT_TAKEN || st == SLOT_REVOKED || st == SLOT_FAILED) {
				conn_settle(p->fds[0], p, false);
				changed |= p->kind != SK_PENDING;
			}
		}
		pthread_mutex_unlock(&flp_mu);
		if (changed)
			return true;
		if (!any || flp_now_us() - t0 >= (uint64_t)flp_cfg.spin_us)
			return false;
		sched_yield();
	}
}

/* Settle every not-final socket (fork, exec; at exit a server's trial
 * just ends).  Caller holds flp_mu. */
static void settle_all_locked(bool exiting)
{
	for (int fd = 0; fd < fdt_max(); fd++) {
		struct flp_sock *s = fdt_get(fd);
		if (flp_slow(s) && !(exiting && s->kind == SK_TRIAL))
			conn_settle(fd, s, true);
	}
}

void conn_settle_all(void)
{
	pthread_mutex_lock(&flp_mu);
	settle_all_locked(false);
	pthread_mutex_unlock(&flp_mu);
}

/* Normal exit: deliver what pending clients wrote, and remove the
 * handshake files of listeners that no other process holds. */
void conn_at_exit(void)
{
	pthread_mutex_lock(&flp_mu);
	settle_all_locked(true);
	for (int fd = 0; fd < fdt_max(); fd++) {
		struct flp_sock *s = fdt_get(fd);
		if (s && s->kind == SK_LISTENER && s->map) {
			reg_unpublish(s->map);
			s->map = NULL;
		}
	}
	stat_at_exit();
	pthread_mutex_unlock(&flp_mu);
}

/* ----------------------------------------------------------------- close */

/* Release what s holds once its last fd is gone.  Caller holds flp_mu. */
static void teardown(struct flp_sock *s)
{
	int kind = s->kind;

	/* our mirrors of the app's registrations on the hidden TCP go now:
	 * a fork child may hold that file open, and keep them alive */
	for (int k = 0; kind == SK_DRAIN && k < s->nep && s->hidden_tcp >= 0; k++)
		flp_real.epoll_ctl(s->ep[k].epfd, EPOLL_CTL_DEL, s->hidden_tcp, NULL);
	/* the app's own registrations went with its file */
	set_kind(s, SK_NONE);
	switch (kind) {
	case SK_LISTENER:
		if (s->map)
			reg_unpublish(s->map);
		s->map = NULL;
		break;
	case SK_FAST:
	case SK_DRAIN:
		flp_close_hidden(s, &s->hidden_tcp);
		/* a send still in the kernel holds the TCP socket: its FIN
		 * comes when that send returns and lets the file go */
		flp_close_hidden(s, &s->fin_tcp);
		shm_release(s);
		drop_claim(s);
		stat_conn_close(s->st);
		s->st = NULL;
		break;
	case SK_TRIAL:
		/* closed before it proved long-lived: it was TCP */
		log_conn(s, "tcp", "short-lived");
		drop_claim(s);
		break;
	case SK_UNDECIDED:
	case SK_PENDING:
		drop_claim(s);
		break;
	default:
		break;
	}
	sock_free(s);
}

/*
 * Forget fd before the real close (or before dup2 onto it).  A PENDING
 * client's last close settles first: an adopted one switches, so that its
 * adopter reads our FIN on TCP and then EOF on the UDS (not the reset of
 * a connection left in our rendezvous); an open claim is revoked.  Caller
 * holds flp_mu.
 */
static void forget_fd(int fd)
{
	struct flp_sock *s = fdt_get(fd), *last;

	if (!s)
		return;
	if (s->kind == SK_HIDDEN) {
		/* the app closes one of our fds (closing "all fds"): let it go */
		struct flp_sock *o = s->owner;
		if (o && o->hidden_tcp == fd) {
			o->hidden_tcp = -1;
			conn_drain_check(o);    /* no TCP bytes left to read */
		}
		if (o && o->fin_tcp == fd)
			o->fin_tcp = -1;
		if (o)
			shm_memfd_gone(o, fd);
		if (fd == rdv_fd)
			rdv_fd = -1;
		if ((last = fdt_detach(fd)))
			sock_free(last);
		return;
	}
	if (s->kind == SK_PENDING && s->nfds == 1)
		conn_settle(fd, s, true);
	if (s->kind == SK_TRIAL && flp_cfg.log_level >= FLP_LOG_INFO)
		fill_local(s);          /* for its line, while fd is there */
	if ((last = fdt_detach(fd)))
		teardown(last);
}

/* The kernel handed out fd afresh (socket, accept) while we still had an
 * entry: the old file was closed behind our back (fclose of an fdopen()ed
 * socket, a raw syscall).  Drop the entry without touching the new file. */
void conn_forget_stale_locked(int fd)
{
	struct flp_sock *last;

	if ((last = fdt_detach(fd))) {
		if (last->kind == SK_HIDDEN) {
			if (last->owner && last->owner->hidden_tcp == fd) {
				last->owner->hidden_tcp = -1;
				conn_drain_check(last->owner);
			}
			if (last->owner && last->owner->fin_tcp == fd)
				last->owner->fin_tcp = -1;
			if (last->owner)
				shm_memfd_gone(last->owner, fd);
			if (fd == rdv_fd)
				rdv_fd = -1;
			sock_free(last);
		} else {
			teardown(last);
		}
	}
}

void conn_forget_stale(int fd)
{
	pthread_mutex_lock(&flp_mu);
	conn_forget_stale_locked(fd);
	pthread_mutex_unlock(&flp_mu);
}

int conn_close(int fd)
{
	fdt_set_hint(fd, 0);
	wait_pre_forget(fd);
	if (fdt_get(fd)) {
		struct flp_sock *s;
		pthread_mutex_lock(&flp_mu);
		if ((s = fdt_get(fd)) && flp_shm(s) && s->nfds == 1)
			shm_last_close(fd, s);
		forget_fd(fd);
		pthread_mutex_unlock(&flp_mu);
	}
	return flp_real.close(fd) < 0 ? -errno : 0;
}

int conn_shutdown(int fd, int how)
{
	struct flp_sock *s = fdt_get(fd);

	if (flp_slow(s)) {
		pthread_mutex_lock(&flp_mu);
		if ((s = fdt_get(fd)) && s->kind == SK_TRIAL &&
		    s->calls < (uint32_t)flp_cfg.switch_after)
			/* a server that shuts down before its connection
			 * proved long-lived (a response, then the lingering
			 * close of HTTP servers) stays TCP: its FIN tells a
			 * lazy client so */
			to_tcp(s, "short-lived");
		else if (s && flp_slow(s))
			conn_settle(fd, s, true);
		/* adopted, but the switch waits for another thread's call on
		 * TCP: our FIN below ends the TCP bytes, as the switch's own
		 * would; the EOF it also is goes on at the switch */
		if ((s = fdt_get(fd)) && s->kind == SK_PENDING && s->lazy && how != SHUT_RD)
			s->shut_wr_tcp = true;
		pthread_mutex_unlock(&flp_mu);
		s = fdt_get(fd);
	}
	/* a ring's EOF is a flag: the UDS stays open for bells */
	if (flp_shm(s))
		return shm_shutdown(fd, s, how);
	return flp_real.shutdown(fd, how) < 0 ? -errno : 0;
}

/*
 * The dup family.  For dup2/dup3 onto a number we track, that number is
 * forgotten first (a pending client settles, as on close).  The new
 * number then shares oldfd's entry.
 */
int conn_dup(int oldfd, int newfd, int flags, int how)
{
	struct flp_sock *s;
	int r;

	if ((how == DUP_DUP2 || how == DUP_DUP3) && newfd != oldfd && fdt_get(newfd)) {
		pthread_mutex_lock(&flp_mu);
		forget_fd(newfd);
		pthread_mutex_unlock(&flp_mu);
	}
	switch (how) {
	case DUP_DUP: r = flp_real.dup(oldfd); break;
	case DUP_DUP2: r = flp_real.dup2(oldfd, newfd); break;
	case DUP_DUP3: r = flp_real.dup3(oldfd, newfd, flags); break;
	case DUP_FCNTL: r = flp_real.fcntl(oldfd, F_DUPFD, newfd); break;
	default: r = flp_real.fcntl(oldfd, F_DUPFD_CLOEXEC, newfd); break;
	}
	if (r < 0)
		return -errno;
	if (r == oldfd || (!fdt_get(oldfd) && !fdt_get(r)))
		return r;
	pthread_mutex_lock(&flp_mu);
	if (fdt_get(r))
		conn_forget_stale_locked(r);
	s = fdt_get(oldfd);
	if (s && s->kind != SK_HIDDEN)
		fdt_attach(r, s);
	pthread_mutex_unlock(&flp_mu);
	return r;
}

/* close_range/closefrom: forget what we track in the range, then close.
 * Our own hidden fds in the range are given up (the app asked). */
/* close_range with the real call, or fd by fd where the kernel lacks it. */
static int real_close_range(unsigned first, unsigned last, int flags)
{
	int max = fdt_max();

	if (first > last)
		return 0;
	if (flp_real.close_range)
		return flp_real.close_range(first, last, flags) < 0 ? -errno : 0;
	for (unsigned fd = first; fd <= last && fd < (unsigned)max; fd++)
		if (flags & CLOSE_RANGE_CLOEXEC)
			flp_real.fcntl((int)fd, F_SETFD, FD_CLOEXEC);
		else
			flp_real.close((int)fd);
	return 0;
}

/*
 * close_range/closefrom ("close everything above 2", as Python's
 * subprocess does before exec): the app's fds in the range are
 * forgotten and closed; ours (a draining server's hidden TCP socket, the
 * rendezvous) are not the app's and stay — all close-on-exec, and the
 * hidden TCP still holds client bytes the socket's reader (maybe the
 * exec'd image) must get.
 */
int conn_close_range(unsigned first, unsigned last, int flags)
{
	int max = fdt_max(), n = 0, r = 0;
	int keep[64];

	pthread_mutex_lock(&flp_mu);
	for (unsigned fd = first; fd <= last && fd < (unsigned)max; fd++) {
		struct flp_sock *s = fdt_get((int)fd);
		if (!s)
			continue;
		if (s->kind == SK_HIDDEN && n < 64)
			keep[n++] = (int)fd;
		else if (!(flags & CLOSE_RANGE_CLOEXEC))
			forget_fd((int)fd);
	}
	pthread_mutex_unlock(&flp_mu);
	for (int i = 0; i <= n && r == 0; i++) {
		unsigned hi = i < n ? (unsigned)keep[i] - 1 : last;
		if (i < n && (unsigned)keep[i] == first) {
			first = (unsigned)keep[i] + 1;
			continue;
		}
		r = real_close_range(first, hi, flags);
		if (i < n)
			first = (unsigned)keep[i] + 1;
	}
	return r;
}

/* Settle one fd (decide: an open claim is revoked now). */
void conn_settle_fd(int fd, bool decide)
{
	struct flp_sock *s;

	pthread_mutex_lock(&flp_mu);
	if ((s = fdt_get(fd)) && flp_slow(s))
		conn_settle(fd, s, decide || s->kind == SK_UNDECIDED);
	pthread_mutex_unlock(&flp_mu);
}

/* setsockopt on a TCP socket that may still switch: remember TCP/IP level
 * options so that the FAST socket reports them afterwards. */
int conn_setsockopt(int fd, struct flp_sock *s, int level, int name,
		    const void *val, socklen_t len)
{
	if (flp_real.setsockopt(fd, level, name, val, len) < 0)
		return -errno;
	/* a buffer size the app chose is carried to the UDS at the switch
	 * (and from a listener to the sockets it accepts) */
	if (level == SOL_SOCKET && (name == SO_RCVBUF || name == SO_RCVBUFFORCE))
		fdt_set_hint(fd, fdt_hint(fd) | FDT_HINT_RCVBUF);
	if (level == SOL_SOCKET && (name == SO_SNDBUF || name == SO_SNDBUFFORCE))
		fdt_set_hint(fd, fdt_hint(fd) | FDT_HINT_SNDBUF);
	if (flp_slow(s) && (level == IPPROTO_TCP || level == IPPROTO_IP ||
			    level == IPPROTO_IPV6)) {
		pthread_mutex_lock(&flp_mu);
		if ((s = fdt_get(fd)) && flp_slow(s))
			emu_setsockopt(fd, s, level, name, val, len);
		pthread_mutex_unlock(&flp_mu);
	}
	return 0;
}

/* ------------------------------------------------------------------ exec */

static void hex(char *out, const void *p, size_t n)
{
	static const char d[] = "0123456789abcdef";
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++) {
		*out++ = d[b[i] >> 4];
		*out++ = d[b[i] & 15];
	}
	*out = 0;
}

static size_t unhex(const char *in, void *p, size_t max)
{
	uint8_t *b = p;
	size_t n = 0;

	while (n < max && in[0] && in[1] && in[0] != ',' && in[0] != ';') {
		unsigned v;
		if (sscanf(in, "%2x", &v) != 1)
			break;
		b[n++] = (uint8_t)v;
		in += 2;
	}
	return n;
}

/*
 * Before exec: settle everything, then describe the fds that survive the
 * exec (no FD_CLOEXEC) so the new image can carry on: FAST sockets keep
 * answering as TCP, listeners are published again.  Returns a malloc()ed
 * "FASTLOOP_INHERIT=..." or NULL.
 */
/* Is fd the lowest of s's fds that an exec keeps?  What goes along once
 * per socket (its segment, its hidden TCP) is named with that one: the
 * socket's first fd is often close-on-exec (a Python socket handed to a
 * child as its stdin). */
static bool first_inherited(struct flp_sock *s, int fd)
{
	for (int i = 0; i < s->nfds; i++) {
		int g = s->fds[i], fl;
		if (g >= fd)
			continue;
		fl = flp_real.fcntl(g, F_GETFD);
		if (fl >= 0 && !(fl & FD_CLOEXEC))
			return false;
	}
	return true;
}

char *conn_inherit_env(void)
{
	size_t cap = 64, len;
	char *out = malloc(cap), *p;

	if (!out)
		return NULL;
	len = (size_t)sprintf(out, "FASTLOOP_INHERIT=");
	pthread_mutex_lock(&flp_mu);
	settle_all_locked(false);
	for (int fd = 0; fd < fdt_max(); fd++) {
		struct flp_sock *s = fdt_get(fd);
		int fl;

		if (!s || (s->kind != SK_FAST && s->kind != SK_DRAIN &&
			   s->kind != SK_LISTENER))
			continue;
		fl = flp_real.fcntl(fd, F_GETFD);
		if (fl < 0 || (fl & FD_CLOEXEC))
			continue;
		if (len + 96 + 4 * sizeof(s->local) > cap) {
			cap = 2 * cap + 96 + 4 * sizeof(s->local);
			if (!(p = realloc(out, cap)))
				break;
			out = p;
		}
		if (s->kind == SK_LISTENER) {
			len += (size_t)sprintf(out + len, "L%d;", fd);
			continue;
		}
		len += (size_t)sprintf(out + len, "F%d,%d,", fd, s->server);
		hex(out + len, &s->local, s->local_len);
		len += 2 * s->local_len;
		out[len++] = ',';
		hex(out + len, &s->peer, s->peer_len);
		len += 2 * s->peer_len;
		out[len++] = ';';
		out[len] = 0;
		if (flp_shm(s) && first_inherited(s, fd)) {
			/* the ring goes along if we can open it again (-1:
			 * the new image ends the connection); a new image that
			 * is not preloaded cannot use it (documented) */
			len += (size_t)sprintf(out + len, "M%d,%d;", fd, shm_exec_fd(s));
		}
		if (s->kind == SK_DRAIN && s->hidden_tcp >= 0 && first_inherited(s, fd) &&
		    flp_real.fcntl(s->hidden_tcp, F_SETFD, 0) == 0) {
			/* the client's TCP bytes not read yet go along; the
			 * new image reads them first if it is preloaded */
			len += (size_t)sprintf(out + len, "H%d,%d;", fd, s->hidden_tcp);
		}
	}
	pthread_mutex_unlock(&flp_mu);
	return out;
}

/* A FAST entry restored from FASTLOOP_INHERIT whose fd is the same
 * socket as fd (same inode), or NULL.  Caller holds flp_mu. */
static struct flp_sock *restored_same(int fd)
{
	struct stat a, b;

	if (fstat(fd, &a) < 0)
		return NULL;
	for (int g = 0; g < fdt_max() && g < 4096; g++) {
		struct flp_sock *s = fdt_get(g);
		if (g != fd && s && (s->kind == SK_FAST || s->kind == SK_DRAIN) && fstat(g, &b) == 0 &&
		    a.st_ino == b.st_ino && a.st_dev == b.st_dev)
			return s;
	}
	return NULL;
}

void conn_inherit_restore(const char *v)
{
	const char *p = v;
	struct flp_sock *same;

	pthread_mutex_lock(&flp_mu);
	while (p && *p) {
		int fd, server, dom = 0, n = 0;
		socklen_t l = sizeof(dom);

		if (*p == 'M' && sscanf(p, "M%d,%d;%n", &fd, &server, &n) == 2 && n) {
			/* server here is an fd of fast fd fd's segment, or -1 */
			struct flp_sock *s = fdt_get(fd);
			if (s && !flp_shm(s) && server >= 0 && shm_adopt_memfd(s, server) == 0) {
				stat_conn_close(s->st);
				s->st = NULL;
				stat_open(s);
			} else if (s && !flp_shm(s)) {
				shm_exec_lost(fd);
			}
		} else if (*p == 'H' && sscanf(p, "H%d,%d;%n", &fd, &server, &n) == 2 && n) {
			/* server here is the hidden TCP fd of fast fd fd */
			struct flp_sock *s = fdt_get(fd);
			if (s && s->kind == SK_FAST && server >= 0 && !fdt_get(server)) {
				flp_real.fcntl(server, F_SETFD, FD_CLOEXEC);
				s->hidden_tcp = server;
				flp_note_hidden(server, s);
				set_kind(s, SK_DRAIN);
			}
		} else if (*p == 'L' && sscanf(p, "L%d;%n", &fd, &n) == 1 && n) {
			if (flp_cfg.transport != FLP_TR_OFF && reg_enabled())
				publish(fd);
		} else if (*p == 'F' && sscanf(p, "F%d,%d,%n", &fd, &server, &n) == 2 && n &&
			   flp_real.getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &dom, &l) == 0 &&
			   dom == AF_UNIX && !fdt_get(fd) && (same = restored_same(fd))) {
			/* another number of a socket restored already (dup2'd
			 * onto stdin and stdout): one entry, as before exec */
			fdt_attach(fd, same);
		} else if (*p == 'F' && sscanf(p, "F%d,%d,%n", &fd, &server, &n) == 2 && n &&
			   flp_real.getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &dom, &l) == 0 &&
			   dom == AF_UNIX && !fdt_get(fd)) {
			struct flp_sock *s = sock_new(SK_FAST);
			const char *q = p + n;
			if (s) {
				s->server = server;
				s->local_len = (socklen_t)unhex(q, &s->local, sizeof(s->local));
				q = strchr(q, ',');
				if (q)
					s->peer_len = (socklen_t)unhex(q + 1, &s->peer, sizeof(s->peer));
				stat_open(s);
				fdt_attach(fd, s);
			}
		}
		p = strchr(p, ';');
		if (p)
			p++;
	}
	pthread_mutex_unlock(&flp_mu);
	unsetenv("FASTLOOP_INHERIT");
}

/* ------------------------------------------------------------------ fork */

/*
 * Before fork: decide every not-final socket, so that parent and child
 * agree on what each fd is; hold flp_mu across the fork so the child's
 * copy of it is in a known state.
 */
void conn_before_fork(void)
{
	pthread_mutex_lock(&flp_mu);
	settle_all_locked(false);
}

void conn_after_fork_parent(void)
{
	pthread_mutex_unlock(&flp_mu);
}

void conn_after_fork_child(void)
{
	flp_pid = getpid();
	flp_start = flp_proc_start(flp_pid);
	/* the forking thread locked it in conn_before_fork: it is ours to
	 * unlock (re-initialising a held mutex confuses ThreadSanitizer: a
	 * "double lock" at the next call) */
	pthread_mutex_unlock(&flp_mu);
	rendezvous_forget();
	stat_after_fork_child();
	shm_after_fork_child();
}
