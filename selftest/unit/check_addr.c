/*
 * check_addr.c — addresses as stored in shared memory (IPv4 as v4-mapped
 * IPv6, port in host order) and "is this address on this host".
 */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <string.h>
#include <sys/un.h>

#include "suites.h"

static const uint8_t mapped_pfx[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

START_TEST(test_to_reg_v4)
{
	struct sockaddr_in s = { .sin_family = AF_INET, .sin_port = htons(8080) };
	static const uint8_t ip[4] = { 192, 0, 2, 1 };
	struct sockaddr_storage ss;
	struct reg_addr r;

	memset(&r, 0xee, sizeof(r));
	ck_assert_int_eq(inet_pton(AF_INET, "192.0.2.1", &s.sin_addr), 1);
	ck_assert_int_eq(addr_to_reg((struct sockaddr *)&s, sizeof(s), &r), 0);
	ck_assert(!memcmp(r.addr, mapped_pfx, 12));
	ck_assert(!memcmp(r.addr + 12, ip, 4));
	ck_assert_uint_eq(r.port, 8080);
	ck_assert_uint_eq(r.pad, 0);
	/* a larger buffer (sockaddr_storage) is fine */
	memset(&ss, 0, sizeof(ss));
	memcpy(&ss, &s, sizeof(s));
	ck_assert_int_eq(addr_to_reg((struct sockaddr *)&ss, sizeof(ss), &r), 0);
	ck_assert_uint_eq(r.port, 8080);
}
END_TEST

START_TEST(test_to_reg_v6)
{
	struct sockaddr_in6 s = { .sin6_family = AF_INET6, .sin6_port = htons(443) };
	struct reg_addr r;

	ck_assert_int_eq(inet_pton(AF_INET6, "2001:db8::1:2", &s.sin6_addr), 1);
	ck_assert_int_eq(addr_to_reg((struct sockaddr *)&s, sizeof(s), &r), 0);
	ck_assert(!memcmp(r.addr, &s.sin6_addr, 16));
	ck_assert_uint_eq(r.port, 443);
	ck_assert_uint_eq(r.pad, 0);
	ck_assert_uint_eq(r.addr[0], 0x20);
	ck_assert_uint_eq(r.addr[15], 2);
}
END_TEST

START_TEST(test_to_reg_v4mapped)
{
	struct sockaddr_in6 s6 = { .sin6_family = AF_INET6, .sin6_port = htons(80) };
	struct sockaddr_in s4 = { .sin_family = AF_INET, .sin_port = htons(80) };
	struct reg_addr a, b;

	ck_assert_int_eq(inet_pton(AF_INET6, "::ffff:10.1.2.3", &s6.sin6_addr), 1);
	ck_assert_int_eq(inet_pton(AF_INET, "10.1.2.3", &s4.sin_addr), 1);
	ck_assert_int_eq(addr_to_reg((struct sockaddr *)&s6, sizeof(s6), &a), 0);
	ck_assert_int_eq(addr_to_reg((struct sockaddr *)&s4, sizeof(s4), &b), 0);
	ck_assert(!memcmp(&a, &b, sizeof(a)));
	ck_assert(addr_eq(&a, &b));
	ck_assert_uint_eq(a.addr[12], 10);
	ck_assert_uint_eq(a.addr[15], 3);
}
END_TEST

START_TEST(test_to_reg_rejects)
{
	struct sockaddr_in s4 = { .sin_family = AF_INET, .sin_port = htons(1) };
	struct sockaddr_in6 s6 = { .sin6_family = AF_INET6, .sin6_port = htons(1) };
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	static const struct reg_addr zero;
	struct reg_addr r;

	s4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	memset(&r, 0xee, sizeof(r));
	ck_assert_int_eq(addr_to_reg((struct sockaddr *)&s4, sizeof(s4) - 1, &r),
			 -EAFNOSUPPORT);
	ck_assert(!memcmp(&r, &zero, sizeof(r)));
	ck_assert_int_eq(addr_to_reg((struct sockaddr *)&s6, sizeof(s6) - 1, &r),
			 -EAFNOSUPPORT);
	ck_assert_int_eq(addr_to_reg((struct sockaddr *)&un, sizeof(un), &r),
			 -EAFNOSUPPORT);
	un.sun_family = AF_UNSPEC;
	ck_assert_int_eq(addr_to_reg((struct sockaddr *)&un, sizeof(un), &r),
			 -EAFNOSUPPORT);
	ck_assert(!memcmp(&r, &zero, sizeof(r)));
}
END_TEST

START_TEST(test_is_wild)
{
	struct reg_addr a = { { 0 }, 0, 0 };

	ck_assert(addr_is_wild(&a));
	a = tu_addr("0.0.0.0", 80);
	ck_assert(addr_is_wild(&a));
	a = tu_addr("::", 80);
	ck_assert(addr_is_wild(&a));
	a = tu_addr("::ffff:0.0.0.0", 0);
	ck_assert(addr_is_wild(&a));
	a = tu_addr("127.0.0.1", 80);
	ck_assert(!addr_is_wild(&a));
	a = tu_addr("::1", 80);
	ck_assert(!addr_is_wild(&a));
	a = tu_addr("0.0.0.1", 80);
	ck_assert(!addr_is_wild(&a));
	a = tu_addr("::ffff:0.0.0.1", 80);
	ck_assert(!addr_is_wild(&a));
	a = tu_addr("1::", 80);
	ck_assert(!addr_is_wild(&a));
	a = tu_addr("::ffff:255.255.255.255", 80);
	ck_assert(!addr_is_wild(&a));
}
END_TEST

START_TEST(test_eq)
{
	struct reg_addr a = tu_addr("127.0.0.1", 80), b = tu_addr("127.0.0.1", 80);

	ck_assert(addr_eq(&a, &b));
	b.pad = 7;                      /* padding is not part of the address */
	ck_assert(addr_eq(&a, &b));
	b = tu_addr("127.0.0.1", 81);
	ck_assert(!addr_eq(&a, &b));
	b = tu_addr("127.0.0.2", 80);
	ck_assert(!addr_eq(&a, &b));
	b = tu_addr("::1", 80);
	ck_assert(!addr_eq(&a, &b));
	b = tu_addr("::7f00:1", 80);    /* IPv4-compatible is not v4-mapped */
	ck_assert(!addr_eq(&a, &b));
	b = tu_addr("::ffff:127.0.0.1", 80);
	ck_assert(addr_eq(&a, &b));
	a = tu_addr("::1", 5);
	b = tu_addr("::1", 5);
	ck_assert(addr_eq(&a, &b));
	b.port = 6;
	ck_assert(!addr_eq(&a, &b));
}
END_TEST

START_TEST(test_is_local_loopback)
{
	static const char *const yes[] = {
		"127.0.0.1", "127.5.5.5", "127.255.255.254", "::1", "::ffff:127.0.0.1",
	};
	struct reg_addr a;

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		a = tu_addr(yes[i], 1);
		ck_assert_msg(addr_is_local(&a), "%s should be local", yes[i]);
	}
}
END_TEST

START_TEST(test_is_local_foreign)
{
	static const char *const no[] = {
		"198.18.0.1", "192.0.2.77", "2001:db8::dead", "::2", "::7f00:1",
		"128.0.0.1",
	};
	struct reg_addr a;

	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
		a = tu_addr(no[i], 1);
		ck_assert_msg(addr_is_local(&a) == tu_is_assigned(no[i]),
			      "%s: addr_is_local disagrees with getifaddrs", no[i]);
		if (!tu_is_assigned(no[i]))
			ck_assert_msg(!addr_is_local(&a), "%s is not on this host", no[i]);
	}
}
END_TEST

/* Every address on an interface here is local, in v4 and v6 form alike. */
START_TEST(test_is_local_interfaces)
{
	struct ifaddrs *ifa, *i;
	int n = 0;

	ck_assert_int_eq(getifaddrs(&ifa), 0);
	for (i = ifa; i; i = i->ifa_next) {
		struct reg_addr r;
		socklen_t len;

		if (!i->ifa_addr)
			continue;
		if (i->ifa_addr->sa_family == AF_INET)
			len = sizeof(struct sockaddr_in);
		else if (i->ifa_addr->sa_family == AF_INET6)
			len = sizeof(struct sockaddr_in6);
		else
			continue;
		ck_assert_int_eq(addr_to_reg(i->ifa_addr, len, &r), 0);
		ck_assert_msg(addr_is_local(&r), "interface %s address not local",
			      i->ifa_name);
		n++;
	}
	freeifaddrs(ifa);
	ck_assert_int_ge(n, 1);
}
END_TEST

Suite *addr_suite(void)
{
	Suite *s = suite_create("addr");
	TCase *tc = tcase_create("convert");
	TCase *tl = tcase_create("local");

	tcase_add_test(tc, test_to_reg_v4);
	tcase_add_test(tc, test_to_reg_v6);
	tcase_add_test(tc, test_to_reg_v4mapped);
	tcase_add_test(tc, test_to_reg_rejects);
	tcase_add_test(tc, test_is_wild);
	tcase_add_test(tc, test_eq);
	suite_add_tcase(s, tc);

	tcase_add_test(tl, test_is_local_loopback);
	tcase_add_test(tl, test_is_local_foreign);
	tcase_add_test(tl, test_is_local_interfaces);
	suite_add_tcase(s, tl);
	return s;
}
