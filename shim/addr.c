/*
 * addr.c — addresses in the form kept in shared memory (IPv4 as
 * v4-mapped IPv6, port in host order), and "is this address on this host".
 */
#include <ifaddrs.h>
#include <string.h>
#include <arpa/inet.h>

#include "flp.h"

int addr_to_reg(const struct sockaddr *sa, socklen_t len, struct reg_addr *r)
{
	memset(r, 0, sizeof(*r));
	if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *s = (const void *)sa;
		r->addr[10] = r->addr[11] = 0xff;
		memcpy(r->addr + 12, &s->sin_addr, 4);
		r->port = ntohs(s->sin_port);
		return 0;
	}
	if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *s = (const void *)sa;
		memcpy(r->addr, &s->sin6_addr, 16);
		r->port = ntohs(s->sin6_port);
		return 0;
	}
	return -EAFNOSUPPORT;
}

static bool is_v4mapped(const struct reg_addr *a)
{
	static const uint8_t pfx[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	return !memcmp(a->addr, pfx, 12);
}

bool addr_is_wild(const struct reg_addr *a)
{
	static const uint8_t zero[16];
	if (is_v4mapped(a))
		return !memcmp(a->addr + 12, zero, 4);
	return !memcmp(a->addr, zero, 16);
}

bool addr_eq(const struct reg_addr *a, const struct reg_addr *b)
{
	return a->port == b->port && !memcmp(a->addr, b->addr, 16);
}

static bool is_loopback(const struct reg_addr *a)
{
	static const uint8_t lo6[16] = { [15] = 1 };
	if (is_v4mapped(a))
		return a->addr[12] == 127;
	return !memcmp(a->addr, lo6, 16);
}

/*
 * True for loopback and for addresses assigned to an interface of this
 * network namespace.  Interface addresses are read on each call that is
 * not loopback; that is a few syscalls, paid only on connects to
 * non-loopback addresses that have a matching listener file.
 */
bool addr_is_local(const struct reg_addr *a)
{
	struct ifaddrs *ifa, *i;
	bool found = false;

	if (is_loopback(a))
		return true;
	if (getifaddrs(&ifa) < 0)
		return false;
	for (i = ifa; i && !found; i = i->ifa_next) {
		struct reg_addr r;
		if (!i->ifa_addr)
			continue;
		if (i->ifa_addr->sa_family == AF_INET)
			addr_to_reg(i->ifa_addr, sizeof(struct sockaddr_in), &r);
		else if (i->ifa_addr->sa_family == AF_INET6)
			addr_to_reg(i->ifa_addr, sizeof(struct sockaddr_in6), &r);
		else
			continue;
		found = !memcmp(r.addr, a->addr, 16);
	}
	freeifaddrs(ifa);
	return found;
}
