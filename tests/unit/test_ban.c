/*
 * test_ban.c - the ban tables with a virtual clock: bans at the threshold
 * and for the set time, success and old streaks forgotten, IPv6 counted
 * by /64, both tables bounded with the oldest entry dropped first.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_util.h"

#include "auth/nana_ban.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#define S 1000000000ull

#define v4(ip) test_addr(AF_INET, ip)
#define v6(ip) test_addr(AF_INET6, ip)
#define SA(x)  ((const struct sockaddr *)&(x))

static void test_threshold_and_expiry(void **state)
{
    (void)state;
    nana_ban_opts o = {.max_failures = 3, .ban_seconds = 900, .capacity = 100};
    nana_ban *b = nana_ban_new(&o);
    assert_non_null(b);
    struct sockaddr_storage a = v4("192.0.2.7"), other = v4("192.0.2.8");
    uint64_t t = 1000 * S;
    assert_int_equal(nana_ban_failure(b, SA(a), t), 0);
    assert_int_equal(nana_ban_failure(b, SA(a), t + 1), 0);
    assert_int_equal(nana_ban_check(b, SA(a), t + 2), 0);
    assert_int_equal(nana_ban_failure(b, SA(a), t + 3), 1);
    assert_int_equal(nana_ban_check(b, SA(a), t + 4), 1);
    assert_int_equal(nana_ban_check(b, SA(other), t + 4), 0);
    struct sockaddr_storage a_port = v4("192.0.2.7");
    ((struct sockaddr_in *)&a_port)->sin_port = htons(999); /* any port */
    assert_int_equal(nana_ban_check(b, SA(a_port), t + 5), 1);
    /* Through an IPv6 socket, the same IPv4 address. */
    struct sockaddr_storage mapped = v6("::ffff:192.0.2.7");
    assert_int_equal(nana_ban_check(b, SA(mapped), t + 5), 1);
    assert_int_equal(nana_ban_check(b, SA(a), t + 3 + 900 * S - 1), 1);
    assert_int_equal(nana_ban_check(b, SA(a), t + 3 + 900 * S), 0);
    size_t counting, banned;
    nana_ban_sizes(b, &counting, &banned);
    assert_int_equal(banned, 0); /* the expired ban is gone */
    nana_ban_free(b);
}

static void test_forgetting(void **state)
{
    (void)state;
    nana_ban *b = nana_ban_new(NULL); /* defaults: 3 failures, 900 s */
    assert_non_null(b);
    struct sockaddr_storage a = v4("198.51.100.1");
    uint64_t t = 5 * S;
    nana_ban_failure(b, SA(a), t);
    nana_ban_failure(b, SA(a), t);
    nana_ban_success(b, SA(a));
    assert_int_equal(nana_ban_failure(b, SA(a), t), 0);
    assert_int_equal(nana_ban_failure(b, SA(a), t), 0);
    /* A streak older than the ban time starts over. */
    assert_int_equal(nana_ban_failure(b, SA(a), t + 901 * S), 0);
    assert_int_equal(nana_ban_check(b, SA(a), t + 901 * S), 0);
    nana_ban_free(b);
}

static void test_ipv6_by_64(void **state)
{
    (void)state;
    nana_ban *b = nana_ban_new(NULL);
    struct sockaddr_storage x1 = v6("2001:db8:1:2::1"), x2 = v6("2001:db8:1:2::abcd"),
                            x3 = v6("2001:db8:1:2:ffff::9"), y = v6("2001:db8:1:3::1");
    assert_int_equal(nana_ban_failure(b, SA(x1), S), 0);
    assert_int_equal(nana_ban_failure(b, SA(x2), S), 0);
    assert_int_equal(nana_ban_failure(b, SA(x3), S), 1);
    assert_int_equal(nana_ban_check(b, SA(x1), 2 * S), 1);
    assert_int_equal(nana_ban_check(b, SA(y), 2 * S), 0);
    /* Not an IP address: never counted. */
    struct sockaddr_storage unix_addr;
    memset(&unix_addr, 0, sizeof(unix_addr));
    unix_addr.ss_family = AF_UNIX;
    assert_int_equal(nana_ban_failure(b, SA(unix_addr), S), 0);
    assert_int_equal(nana_ban_check(b, SA(unix_addr), S), 0);
    nana_ban_free(b);
}

static void test_bounded(void **state)
{
    (void)state;
    nana_ban_opts o = {.max_failures = 2, .ban_seconds = 60, .capacity = 4};
    nana_ban *b = nana_ban_new(&o);
    char ip[32];
    /* Five addresses fail once: the counting table holds four, the oldest went. */
    for (int i = 1; i <= 5; i++) {
        snprintf(ip, sizeof(ip), "203.0.113.%d", i);
        struct sockaddr_storage a = v4(ip);
        assert_int_equal(nana_ban_failure(b, SA(a), (uint64_t)i * S), 0);
    }
    size_t counting, banned;
    nana_ban_sizes(b, &counting, &banned);
    assert_int_equal(counting, 4);
    struct sockaddr_storage first = v4("203.0.113.1"), second = v4("203.0.113.2");
    assert_int_equal(nana_ban_failure(b, SA(second), 10 * S), 1); /* still counted: banned */
    assert_int_equal(nana_ban_failure(b, SA(first), 10 * S), 0);  /* dropped: starts over */
    /* Six bans into a table of four: the oldest bans are dropped first. */
    for (int i = 10; i < 16; i++) {
        snprintf(ip, sizeof(ip), "203.0.113.%d", i);
        struct sockaddr_storage a = v4(ip);
        nana_ban_failure(b, SA(a), 20 * S + (uint64_t)i);
        assert_int_equal(nana_ban_failure(b, SA(a), 20 * S + (uint64_t)i), 1);
    }
    nana_ban_sizes(b, &counting, &banned);
    assert_int_equal(banned, 4);
    assert_int_equal(nana_ban_check(b, SA(second), 30 * S), 0); /* dropped */
    struct sockaddr_storage last = v4("203.0.113.15"), old = v4("203.0.113.11");
    assert_int_equal(nana_ban_check(b, SA(last), 30 * S), 1);
    assert_int_equal(nana_ban_check(b, SA(old), 30 * S), 0);
    nana_ban_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threshold_and_expiry),
        cmocka_unit_test(test_forgetting),
        cmocka_unit_test(test_ipv6_by_64),
        cmocka_unit_test(test_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
