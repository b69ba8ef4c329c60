/*
 * emu.c — make a FAST socket (an AF_UNIX socket underneath) answer
 * getsockname, getpeername, getsockopt and setsockopt as the TCP socket
 * it replaced would.  Options at the TCP and IP levels are remembered per
 * connection and reported back; socket-level options go to the real
 * socket, where they mean the same thing (buffers, linger, timeouts).
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <netinet/tcp.h>

#include "flp.h"

int emu_getsockname(struct flp_sock *s, struct sockaddr *sa, socklen_t *len,
		    bool peer)
{
	socklen_t have = peer ? s->peer_len : s->local_len;
	const void *src = peer ? (void *)&s->peer : (void *)&s->local;

	if (!sa || !len)
		return -EFAULT;
	memcpy(sa, src, *len < have ? *len : have);
	*len = have;
	return 0;
}

static int *opt_slot(struct flp_sock *s, int level, int name, bool create)
{
	for (int i = 0; i < s->nopts; i++)
		if (s->opts[i].level == level && s->opts[i].name == name)
			return &s->opts[i].val;
	if (!create || s->nopts == SOCK_MAX_OPTS)
		return NULL;
	s->opts[s->nopts].level = level;
	s->opts[s->nopts].name = name;
	s->opts[s->nopts].val = 0;
	return &s->opts[s->nopts++].val;
}

/* Defaults a fresh Linux TCP socket reports. */
static int opt_default(int level, int name)
{
	if (level == IPPROTO_TCP) {
		switch (name) {
		case TCP_MAXSEG: return 65483;   /* loopback MTU 65536 */
		case TCP_KEEPIDLE: return 7200;
		case TCP_KEEPINTVL: return 75;
		case TCP_KEEPCNT: return 9;
		case TCP_SYNCNT: return 6;
		case TCP_WINDOW_CLAMP: return 0;
		default: return 0;
		}
	}
	if (level == IPPROTO_IP && name == IP_TTL)
		return 64;
	if (level == IPPROTO_IPV6 && name == IPV6_UNICAST_HOPS)
		return 64;
	return 0;
}

static int put_int(void *val, socklen_t *len, int v)
{
	if (!val || !len)
		return -EFAULT;
	if (*len < sizeof(int)) {
		/* Linux copies what fits for small buffers of boolean options */
		if (*len == 0)
			return -EINVAL;
		memcpy(val, &v, *len);
		return 0;
	}
	memcpy(val, &v, sizeof(int));
	*len = sizeof(int);
	return 0;
}

static void default_cc(char *buf, size_t len)
{
	int fd = open("/proc/sys/net/ipv4/tcp_congestion_control", O_RDONLY | O_CLOEXEC);
	ssize_t n = 0;

	snprintf(buf, len, "cubic");
	if (fd < 0)
		return;
	n = flp_real.read(fd, buf, len - 1);
	flp_real.close(fd);
	if (n <= 0) {
		snprintf(buf, len, "cubic");
		return;
	}
	buf[n] = 0;
	buf[strcspn(buf, "\n")] = 0;
}

int emu_getsockopt(int fd, struct flp_sock *s, int level, int name,
		   void *val, socklen_t *len)
{
	int *p;

	if (level == SOL_SOCKET) {
		switch (name) {
		case SO_DOMAIN:
			return put_int(val, len, s->local.ss_family);
		case SO_PROTOCOL:
			return put_int(val, len, IPPROTO_TCP);
		case SO_PEERCRED: {
			/* a TCP socket has no peer credentials */
			struct ucred c = { .pid = 0, .uid = 65534, .gid = 65534 };
			if (!val || !len)
				return -EFAULT;
			memcpy(val, &c, *len < sizeof(c) ? *len : sizeof(c));
			*len = *len < sizeof(c) ? *len : sizeof(c);
			return 0;
		}
		default:
			return flp_real.getsockopt(fd, level, name, val, len) < 0 ? -errno : 0;
		}
	}
	if (level == IPPROTO_TCP && name == TCP_INFO) {
		struct tcp_info ti;
		if (!val || !len)
			return -EFAULT;
		memset(&ti, 0, sizeof(ti));
		ti.tcpi_state = TCP_ESTABLISHED;
		ti.tcpi_rto = 200000;
		ti.tcpi_ato = 40000;
		ti.tcpi_snd_mss = 65483;
		ti.tcpi_rcv_mss = 65483;
		ti.tcpi_pmtu = 65535;
		ti.tcpi_rcv_ssthresh = 65483;
		ti.tcpi_rtt = 5;
		ti.tcpi_rttvar = 2;
		ti.tcpi_snd_ssthresh = 0x7fffffff;
		ti.tcpi_snd_cwnd = 10;
		ti.tcpi_advmss = 65483;
		ti.tcpi_reordering = 3;
		ti.tcpi_rcv_space = 65483;
		memcpy(val, &ti, *len < sizeof(ti) ? *len : sizeof(ti));
		*len = *len < sizeof(ti) ? *len : sizeof(ti);
		return 0;
	}
	if (level == IPPROTO_TCP && name == TCP_CONGESTION) {
		char cc[16];
		if (!val || !len)
			return -EFAULT;
		default_cc(cc, sizeof(cc));
		memset(val, 0, *len);
		memcpy(val, cc, *len < sizeof(cc) ? *len : sizeof(cc));
		*len = *len < sizeof(cc) ? *len : sizeof(cc);
		return 0;
	}
	if (level == IPPROTO_TCP || level == IPPROTO_IP || level == IPPROTO_IPV6) {
		p = opt_slot(s, level, name, false);
		return put_int(val, len, p ? *p : opt_default(level, name));
	}
	return flp_real.getsockopt(fd, level, name, val, len) < 0 ? -errno : 0;
}

/*
 * Before the switch: remember the TCP and IP level options of the TCP
 * socket tcpfd that differ from a fresh socket's, so that the UDS answers
 * them as before — options the app set before connect() (no entry then),
 * or an accepted socket's inherited from the listener.  Caller holds
 * flp_mu.
 */
void emu_capture(int tcpfd, struct flp_sock *s)
{
	static const int opts[][2] = {
		{ IPPROTO_TCP, TCP_NODELAY }, { IPPROTO_TCP, TCP_CORK },
		{ IPPROTO_TCP, TCP_KEEPIDLE }, { IPPROTO_TCP, TCP_KEEPINTVL },
		{ IPPROTO_TCP, TCP_KEEPCNT }, { IPPROTO_TCP, TCP_USER_TIMEOUT },
		{ IPPROTO_TCP, TCP_NOTSENT_LOWAT }, { IPPROTO_TCP, TCP_QUICKACK },
		{ IPPROTO_IP, IP_TOS }, { IPPROTO_IP, IP_TTL },
		{ IPPROTO_IPV6, IPV6_TCLASS }, { IPPROTO_IPV6, IPV6_UNICAST_HOPS },
	};

	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
		int v, *p, lvl = opts[i][0], name = opts[i][1];
		socklen_t l = sizeof(v);

		if ((lvl == IPPROTO_IPV6) != (s->local.ss_family == AF_INET6) && lvl != IPPROTO_TCP)
			continue;
		if (flp_real.getsockopt(tcpfd, lvl, name, &v, &l) < 0 || l != sizeof(v))
			continue;
		/* TCP_QUICKACK reads back as the current ack mode, 1 on a
		 * fresh socket */
		if (v == (name == TCP_QUICKACK && lvl == IPPROTO_TCP ? 1 : opt_default(lvl, name)) &&
		    !opt_slot(s, lvl, name, false))
			continue;
		if ((p = opt_slot(s, lvl, name, true)))
			*p = v;
	}
}

int emu_setsockopt(int fd, struct flp_sock *s, int level, int name,
		   const void *val, socklen_t len)
{
	int *p, v;

	if (level == IPPROTO_TCP || level == IPPROTO_IP || level == IPPROTO_IPV6) {
		if (level == IPPROTO_TCP && name == TCP_CONGESTION)
			return 0;
		if (!val && len)
			return -EFAULT;
		if (len < sizeof(int))
			return level == IPPROTO_TCP ? -EINVAL : 0;
		memcpy(&v, val, sizeof(v));
		if ((p = opt_slot(s, level, name, true)))
			*p = v;
		return 0;
	}
	if (flp_real.setsockopt(fd, level, name, val, len) < 0) {
		/* a socket-level option TCP takes but AF_UNIX does not */
		if (errno == ENOPROTOOPT || errno == EOPNOTSUPP)
			return 0;
		return -errno;
	}
	return 0;
}
