/*
 * test_grpc_codec.c - the gRPC layer's value codecs and status tables:
 * grpc-timeout in every unit and the malformed ones, percent-encoding of
 * grpc-message (gRPC's interop status message among the examples),
 * base64 for "-bin" metadata (RFC 4648's vectors, padded and not), status
 * names, and every mapping onto statuses (our error codes, HTTP/3 and
 * HTTP/2 reset codes, HTTP statuses).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "grpc/nana_grpc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int64_t parse_ok(const char *v)
{
    int64_t ns = -7;
    assert_int_equal(nana_grpc_timeout_parse(v, strlen(v), &ns), 0);
    return ns;
}

static void test_timeout_units(void **state)
{
    (void)state;
    assert_true(parse_ok("1H") == 3600LL * 1000000000LL);
    assert_true(parse_ok("2M") == 120LL * 1000000000LL);
    assert_true(parse_ok("3S") == 3LL * 1000000000LL);
    assert_true(parse_ok("4m") == 4LL * 1000000LL);
    assert_true(parse_ok("5u") == 5LL * 1000LL);
    assert_true(parse_ok("6n") == 6LL);
    assert_true(parse_ok("99999999n") == 99999999LL);
    assert_true(parse_ok("00000010S") == 10LL * 1000000000LL); /* leading zeros: still 8 digits */
    assert_true(parse_ok("0n") == 0);                          /* a deadline already passed */
    assert_true(parse_ok("0H") == 0);
    /* 99999999 hours do not fit 64 bits of nanoseconds: no deadline. */
    assert_true(parse_ok("99999999H") == INT64_MAX);
    assert_true(parse_ok("99999999M") == 99999999LL * 60LL * 1000000000LL);
    assert_true(parse_ok("99999999S") == 99999999LL * 1000000000LL);
    assert_true(parse_ok("2562047H") == 2562047LL * 3600LL * 1000000000LL);
    assert_true(parse_ok("2562048H") == INT64_MAX);
}

static void test_timeout_malformed(void **state)
{
    (void)state;
    static const char *bad[] = {
        "",    "S",   "1",   "123456789S", "1x",  "-1S",  "+1S", "1.5S", "1s", "1h",
        " 1S", "1S ", "1 S", "SS",         "1SS", "0x1S", "1Sn", "１S",  "1N", "9999999999H",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t ns = 42;
        int rc = nana_grpc_timeout_parse(bad[i], strlen(bad[i]), &ns);
        if (rc != NANA_ERR_INVALID) fail_msg("'%s' was accepted", bad[i]);
        assert_true(ns == 42);
        assert_non_null(strstr(nana_errmsg(), "grpc-timeout"));
    }
}

static void test_timeout_format(void **state)
{
    (void)state;
    char buf[10];
    struct {
        int64_t ns;
        const char *text;
    } cases[] = {
        {1, "1n"},
        {99999999, "99999999n"},
        {100000000, "100000u"},
        {100000001, "100001u"}, /* rounded up: never shorter */
        {1000000000, "1000000u"},
        {99999999000LL, "99999999u"},
        {100000000000LL, "100000m"},
        {INT64_MAX, "2562048H"},
        {0, "0n"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = nana_grpc_timeout_format(cases[i].ns, buf);
        assert_string_equal(buf, cases[i].text);
        assert_int_equal(n, strlen(cases[i].text));
    }
    /* Every value written reads back at least as long, within one unit. */
    srand(7);
    for (int i = 0; i < 2000; i++) {
        int64_t ns = ((int64_t)rand() << 31 | rand()) % 400000000000000LL + 1;
        nana_grpc_timeout_format(ns, buf);
        int64_t back = parse_ok(buf);
        assert_true(back >= ns);
    }
}

/* Percent-encodes |s| (|n| bytes) and checks the text and the way back. */
static void pct_case(const char *s, size_t n, const char *want)
{
    char out[512], back[512];
    size_t len = nana_grpc_pct_encode(s, n, out, sizeof(out));
    assert_string_equal(out, want);
    assert_int_equal(len, strlen(want));
    assert_int_equal(nana_grpc_pct_encoded_len(s, n), len);
    size_t blen = nana_grpc_pct_decode(out, len, back);
    assert_int_equal(blen, n);
    assert_memory_equal(back, s, n);
}

static void test_pct_examples(void **state)
{
    (void)state;
    pct_case("", 0, "");
    pct_case("plain text, 100 ok!", 19, "plain text, 100 ok!");
    pct_case("%", 1, "%25");
    pct_case("100%", 4, "100%25");
    pct_case("a\0b", 3, "a%00b");
    pct_case("\x7f\x1f ~", 4, "%7F%1F ~");
    /* gRPC's interop test status message: whitespace, BMP and non-BMP. */
    const char *special = "\t\ntest with whitespace\r\nand Unicode BMP \xe2\x98\xba and non-BMP "
                          "\xf0\x9f\x98\x88\t\n";
    pct_case(special, strlen(special),
             "%09%0Atest with whitespace%0D%0Aand Unicode BMP %E2%98%BA and non-BMP "
             "%F0%9F%98%88%09%0A");
    /* Every byte value goes there and back. */
    char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (char)i;
    char enc[1024], dec[300];
    size_t len = nana_grpc_pct_encode(all, 256, enc, sizeof(enc));
    assert_int_equal(len, 94 + 162 * 3);
    assert_int_equal(nana_grpc_pct_decode(enc, len, dec), 256);
    assert_memory_equal(dec, all, 256);
}

static void test_pct_lenient_decode(void **state)
{
    (void)state;
    struct {
        const char *in, *out;
    } cases[] = {
        {"%", "%"},
        {"%4", "%4"},
        {"%zz", "%zz"},
        {"100%", "100%"},
        {"%e2%98%ba", "\xe2\x98\xba"},
        {"%4g%41", "%4gA"},
        {"%%41", "%A"},
        {"a%2", "a%2"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[32];
        size_t n = nana_grpc_pct_decode(cases[i].in, strlen(cases[i].in), out);
        assert_string_equal(out, cases[i].out);
        assert_int_equal(n, strlen(cases[i].out));
    }
}

static void test_pct_truncation(void **state)
{
    (void)state;
    char out[8];
    memset(out, 'x', sizeof(out));
    /* "a%25b%25" needs 8 bytes and a NUL: cut before a %XX, never inside. */
    size_t n = nana_grpc_pct_encode("a%b%", 4, out, 6);
    assert_int_equal(n, 8);
    assert_string_equal(out, "a%25b");
    n = nana_grpc_pct_encode("%%", 2, out, 3);
    assert_int_equal(n, 6);
    assert_string_equal(out, "");
    assert_int_equal(nana_grpc_pct_encode("abc", 3, NULL, 0), 3);
    assert_int_equal(nana_grpc_pct_encode("abc", 3, out, 4), 3);
    assert_string_equal(out, "abc");
}

static void test_b64_vectors(void **state)
{
    (void)state;
    /* RFC 4648 section 10, written unpadded as gRPC sends. */
    const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *unpadded[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
    const char *padded[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        char enc[16];
        uint8_t dec[16];
        size_t n = nana_grpc_b64_encode(plain[i], strlen(plain[i]), enc);
        assert_string_equal(enc, unpadded[i]);
        assert_int_equal(n, nana_grpc_b64_encoded_len(strlen(plain[i])));
        size_t dl = 99;
        assert_int_equal(nana_grpc_b64_decode(unpadded[i], strlen(unpadded[i]), dec, &dl), 0);
        assert_int_equal(dl, strlen(plain[i]));
        assert_memory_equal(dec, plain[i], dl);
        dl = 99;
        assert_int_equal(nana_grpc_b64_decode(padded[i], strlen(padded[i]), dec, &dl), 0);
        assert_int_equal(dl, strlen(plain[i]));
        assert_memory_equal(dec, plain[i], dl);
    }
    /* Both alphabets' last characters are the standard ones. */
    uint8_t bytes[] = {0xfb, 0xff, 0xbf};
    char enc[8];
    nana_grpc_b64_encode(bytes, 3, enc);
    assert_string_equal(enc, "+/+/");
}

static void test_b64_bad(void **state)
{
    (void)state;
    const char *bad[] = {"Z",        "Zg=",   "Z===", "====",   "=",     "Zm9v!",
                         "Zg==Zg==", "Zm=9v", "-_-_", "Zm9v\n", "Zm 9v", "Zm9vY"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint8_t out[16];
        size_t n;
        if (nana_grpc_b64_decode(bad[i], strlen(bad[i]), out, &n) != NANA_ERR_INVALID)
            fail_msg("'%s' was accepted", bad[i]);
    }
}

static void test_b64_round_trips(void **state)
{
    (void)state;
    srand(11);
    for (size_t len = 0; len < 200; len++) {
        uint8_t in[200], out[200];
        char enc[300];
        for (size_t i = 0; i < len; i++)
            in[i] = (uint8_t)rand();
        size_t n = nana_grpc_b64_encode(in, len, enc);
        assert_int_equal(strlen(enc), n);
        assert_null(strchr(enc, '='));
        size_t dl;
        assert_int_equal(nana_grpc_b64_decode(enc, n, out, &dl), 0);
        assert_int_equal(dl, len);
        assert_memory_equal(out, in, len);
    }
}

static void test_status_names(void **state)
{
    (void)state;
    const char *names[] = {"OK",
                           "CANCELLED",
                           "UNKNOWN",
                           "INVALID_ARGUMENT",
                           "DEADLINE_EXCEEDED",
                           "NOT_FOUND",
                           "ALREADY_EXISTS",
                           "PERMISSION_DENIED",
                           "RESOURCE_EXHAUSTED",
                           "FAILED_PRECONDITION",
                           "ABORTED",
                           "OUT_OF_RANGE",
                           "UNIMPLEMENTED",
                           "INTERNAL",
                           "UNAVAILABLE",
                           "DATA_LOSS",
                           "UNAUTHENTICATED"};
    for (int i = 0; i < NANA_GRPC_STATUS_COUNT; i++) {
        char digits[4];
        snprintf(digits, sizeof(digits), "%d", i);
        assert_string_equal(nana_grpc_status_name(i), names[i]);
        assert_string_equal(nana_grpc_status_digits(i), digits);
    }
    assert_int_equal(NANA_GRPC_UNAUTHENTICATED, 16);
    assert_int_equal(NANA_GRPC_UNAVAILABLE, 14);
    assert_null(nana_grpc_status_name(-1));
    assert_null(nana_grpc_status_name(17));
    assert_null(nana_grpc_status_digits(17));
}

static void test_status_from_err(void **state)
{
    (void)state;
    struct {
        int code;
        nana_grpc_status status;
        bool shown;
    } map[] = {
        {NANA_OK, NANA_GRPC_OK, true},
        {NANA_ERR_NOTFOUND, NANA_GRPC_NOT_FOUND, true},
        {NANA_ERR_INVALID, NANA_GRPC_INVALID_ARGUMENT, true},
        {NANA_ERR_TYPE, NANA_GRPC_INVALID_ARGUMENT, true},
        {NANA_ERR_JSON, NANA_GRPC_INVALID_ARGUMENT, true},
        {NANA_ERR_TOOBIG, NANA_GRPC_INVALID_ARGUMENT, true},
        {NANA_ERR_VALIDATION, NANA_GRPC_INVALID_ARGUMENT, true},
        {NANA_ERR_TXN, NANA_GRPC_FAILED_PRECONDITION, true},
        {NANA_ERR_BUSY, NANA_GRPC_UNAVAILABLE, true},
        {NANA_ERR_DB, NANA_GRPC_INTERNAL, false},
        {NANA_ERR_CORRUPT, NANA_GRPC_DATA_LOSS, false},
        {NANA_ERR_READONLY, NANA_GRPC_FAILED_PRECONDITION, true},
        {NANA_ERR_FULL, NANA_GRPC_RESOURCE_EXHAUSTED, true},
        {NANA_ERR_IO, NANA_GRPC_INTERNAL, false},
        {NANA_ERR_NOMEM, NANA_GRPC_RESOURCE_EXHAUSTED, false},
        {NANA_ERR_CLOSED, NANA_GRPC_UNAVAILABLE, true},
        {NANA_ERR_TIMEOUT, NANA_GRPC_DEADLINE_EXCEEDED, true},
        {NANA_ERR_INTERNAL, NANA_GRPC_INTERNAL, false},
        {NANA_ERR_PERM, NANA_GRPC_PERMISSION_DENIED, true},
        {NANA_ERR_TOOEARLY, NANA_GRPC_UNAVAILABLE, true},
        {NANA_ERR_UNAVAILABLE, NANA_GRPC_UNIMPLEMENTED, true},
        {NANA_ERR_OVERLOAD, NANA_GRPC_RESOURCE_EXHAUSTED, true},
        {NANA_ERR_RATE, NANA_GRPC_RESOURCE_EXHAUSTED, true},
        {NANA_ERR_SHUTDOWN, NANA_GRPC_UNAVAILABLE, true},
        {NANA_ERR_NOLEADER, NANA_GRPC_UNAVAILABLE, true},
        {NANA_ERR_OUTCOME, NANA_GRPC_UNKNOWN, true},
        {-99, NANA_GRPC_UNKNOWN, false},
        {5, NANA_GRPC_UNKNOWN, false},
    };
    /* Every code of nana_err.h is in the table (its names run out at -25). */
    assert_string_equal(nana_strerror(NANA_ERR_OUTCOME - 1), "NANA_ERR_UNKNOWN");
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        if (nana_grpc_status_from_err(map[i].code) != map[i].status)
            fail_msg("%s maps to %s", nana_strerror(map[i].code),
                     nana_grpc_status_name(nana_grpc_status_from_err(map[i].code)));
        assert_int_equal(nana_grpc_err_is_public(map[i].code), map[i].shown);
    }
}

static void test_error_from_sanitizes(void **state)
{
    (void)state;
    nana_error e;
    nana_grpc_error g;
    nana_error_setf(&e, NANA_ERR_NOTFOUND, "'missing-key'");
    nana_grpc_error_from(&g, &e, 42);
    assert_int_equal(g.status, NANA_GRPC_NOT_FOUND);
    assert_string_equal(g.message, "'missing-key'");

    nana_error_setf(&e, NANA_ERR_DB, "near \"SELEC\": syntax error in SELECT secret FROM t");
    nana_grpc_error_from(&g, &e, 42);
    assert_int_equal(g.status, NANA_GRPC_INTERNAL);
    assert_string_equal(g.message, "internal error (error id 000000000000002a)");
    nana_grpc_error_from(&g, &e, 0);
    assert_string_equal(g.message, "internal error");

    nana_error_setf(&e, NANA_ERR_IO, "cannot open /var/lib/nana/db.sqlite");
    nana_grpc_error_from(&g, &e, 0xfedcba9876543210ULL);
    assert_int_equal(g.status, NANA_GRPC_INTERNAL);
    assert_string_equal(g.message, "internal error (error id fedcba9876543210)");
    assert_null(strchr(g.message, '/'));

    nana_error_setf(&e, NANA_ERR_CORRUPT, "/srv/x.db: database disk image is malformed");
    nana_grpc_error_from(&g, &e, 0);
    assert_int_equal(g.status, NANA_GRPC_DATA_LOSS);
    assert_string_equal(g.message, "the database is damaged");

    nana_error_setf(&e, NANA_ERR_NOMEM, "allocating 123 bytes at store.c:55");
    nana_grpc_error_from(&g, &e, 0);
    assert_int_equal(g.status, NANA_GRPC_RESOURCE_EXHAUSTED);
    assert_string_equal(g.message, "the server is out of memory");

    nana_error_setf(&e, -77, "what is this");
    nana_grpc_error_from(&g, &e, 0);
    assert_int_equal(g.status, NANA_GRPC_UNKNOWN);
    assert_string_equal(g.message, "internal error");

    nana_grpc_error_set(&g, NANA_GRPC_ABORTED, "n=%d", 3);
    assert_int_equal(g.status, NANA_GRPC_ABORTED);
    assert_string_equal(g.message, "n=3");
}

static void test_status_from_h3(void **state)
{
    (void)state;
    for (uint64_t c = NANA_GRPC_H3_NO_ERROR; c <= NANA_GRPC_H3_VERSION_FALLBACK; c++) {
        nana_grpc_status want = NANA_GRPC_INTERNAL;
        if (c == NANA_GRPC_H3_REQUEST_REJECTED) want = NANA_GRPC_UNAVAILABLE;
        if (c == NANA_GRPC_H3_EXCESSIVE_LOAD) want = NANA_GRPC_RESOURCE_EXHAUSTED;
        if (c == NANA_GRPC_H3_REQUEST_CANCELLED) want = NANA_GRPC_CANCELLED;
        assert_int_equal(nana_grpc_status_from_h3(c), want);
    }
    assert_int_equal(NANA_GRPC_H3_REQUEST_REJECTED, 0x10b);
    assert_int_equal(NANA_GRPC_H3_EXCESSIVE_LOAD, 0x107);
    assert_int_equal(NANA_GRPC_H3_REQUEST_CANCELLED, 0x10c);
    assert_int_equal(NANA_GRPC_H3_MESSAGE_ERROR, 0x10e);
    assert_int_equal(nana_grpc_status_from_h3(0), NANA_GRPC_INTERNAL);
    assert_int_equal(nana_grpc_status_from_h3(0x21), NANA_GRPC_INTERNAL); /* reserved/unknown */
}

static void test_status_from_h2(void **state)
{
    (void)state;
    int want[] = {
        NANA_GRPC_INTERNAL,          NANA_GRPC_INTERNAL,    NANA_GRPC_INTERNAL,
        NANA_GRPC_INTERNAL,          NANA_GRPC_INTERNAL,    -1,
        NANA_GRPC_INTERNAL,          NANA_GRPC_UNAVAILABLE, NANA_GRPC_CANCELLED,
        NANA_GRPC_INTERNAL,          NANA_GRPC_INTERNAL,    NANA_GRPC_RESOURCE_EXHAUSTED,
        NANA_GRPC_PERMISSION_DENIED, NANA_GRPC_INTERNAL,
    };
    for (uint32_t c = 0; c < sizeof(want) / sizeof(want[0]); c++)
        assert_int_equal(nana_grpc_status_from_h2(c), want[c]);
    assert_int_equal(nana_grpc_status_from_h2(0xff), NANA_GRPC_INTERNAL);
}

static void test_status_from_http(void **state)
{
    (void)state;
    struct {
        int http;
        nana_grpc_status status;
    } map[] = {
        {400, NANA_GRPC_INTERNAL},          {401, NANA_GRPC_UNAUTHENTICATED},
        {403, NANA_GRPC_PERMISSION_DENIED}, {404, NANA_GRPC_UNIMPLEMENTED},
        {429, NANA_GRPC_UNAVAILABLE},       {431, NANA_GRPC_INTERNAL},
        {502, NANA_GRPC_UNAVAILABLE},       {503, NANA_GRPC_UNAVAILABLE},
        {504, NANA_GRPC_UNAVAILABLE},       {200, NANA_GRPC_UNKNOWN},
        {500, NANA_GRPC_UNKNOWN},           {405, NANA_GRPC_UNKNOWN},
        {415, NANA_GRPC_UNKNOWN},           {302, NANA_GRPC_UNKNOWN},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        assert_int_equal(nana_grpc_status_from_http(map[i].http), map[i].status);
}

/* The login message: the context and a NUL, the exporter value, the
 * account and a NUL, the timestamp text; 0 when it does not fit. */
static void test_login_message(void **state)
{
    (void)state;
    uint8_t exp[32];
    for (int i = 0; i < 32; i++)
        exp[i] = (uint8_t)(0xa0 + i);
    uint8_t m[128];
    size_t n = nana_grpc_login_message(exp, "alice", 5, "1700000000", 10, m, sizeof(m));
    static const char ctx[] = "nanasqlite-grpc-login-v1";
    assert_int_equal(n, sizeof(ctx) + 32 + 5 + 1 + 10);
    assert_memory_equal(m, ctx, sizeof(ctx)); /* with its NUL */
    assert_memory_equal(m + sizeof(ctx), exp, 32);
    assert_memory_equal(m + sizeof(ctx) + 32,
                        "alice\0"
                        "1700000000",
                        16);
    assert_int_equal(nana_grpc_login_message(exp, "alice", 5, "1700000000", 10, m, n), n);
    assert_int_equal(nana_grpc_login_message(exp, "alice", 5, "1700000000", 10, m, n - 1), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timeout_units),      cmocka_unit_test(test_timeout_malformed),
        cmocka_unit_test(test_timeout_format),     cmocka_unit_test(test_pct_examples),
        cmocka_unit_test(test_pct_lenient_decode), cmocka_unit_test(test_pct_truncation),
        cmocka_unit_test(test_b64_vectors),        cmocka_unit_test(test_b64_bad),
        cmocka_unit_test(test_b64_round_trips),    cmocka_unit_test(test_status_names),
        cmocka_unit_test(test_status_from_err),    cmocka_unit_test(test_error_from_sanitizes),
        cmocka_unit_test(test_status_from_h3),     cmocka_unit_test(test_status_from_h2),
        cmocka_unit_test(test_status_from_http),   cmocka_unit_test(test_login_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
