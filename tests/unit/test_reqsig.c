/*
 * test_reqsig.c - signed requests: a signature made by nana_reqsig_sign
 * verifies; a flipped bit anywhere (its fields, its signature, the query,
 * the exporter) or another key fails; parsing takes exact lengths only.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "auth/nana_reqsig.h"
#include "util/nana_err.h"

#include <sodium.h>
#include <string.h>

static uint8_t pk[32], sk[64], exporter[32];
static const uint8_t query[] = "SELECT value FROM kv WHERE key = 'a'";

/* Parses and verifies |b| against the test's key, exporter and |q|. */
static int check(const uint8_t *b, size_t n, const uint8_t *key, const uint8_t *exp,
                 const uint8_t *q, size_t qlen)
{
    nana_reqsig s;
    int rc = nana_reqsig_parse(b, n, &s);
    return rc ? rc : nana_reqsig_verify(&s, key, exp, q, qlen);
}

static void test_round_trip(void **state)
{
    (void)state;
    uint8_t b[NANA_REQSIG_BYTES_MAX];
    int n = nana_reqsig_sign(sk, "alice", 42, 1700000000123, exporter, query, sizeof(query), b,
                             sizeof(b));
    assert_int_equal(n, 2 + 5 + 80);
    nana_reqsig s;
    assert_int_equal(nana_reqsig_parse(b, (size_t)n, &s), 0);
    assert_string_equal(s.account, "alice");
    assert_int_equal(s.seq, 42);
    assert_int_equal(s.unix_ms, 1700000000123);
    assert_int_equal(nana_reqsig_verify(&s, pk, exporter, query, sizeof(query)), 0);
    /* Every bit of the bytes matters. */
    for (int i = 0; i < n; i++)
        for (int bit = 0; bit < 8; bit++) {
            b[i] ^= (uint8_t)(1u << bit);
            assert_int_not_equal(check(b, (size_t)n, pk, exporter, query, sizeof(query)), 0);
            b[i] ^= (uint8_t)(1u << bit);
        }
    /* And of the query and the exporter. */
    uint8_t q[sizeof(query)], e[32];
    for (size_t i = 0; i < sizeof(query); i++) {
        memcpy(q, query, sizeof(q));
        q[i] ^= 0x10;
        assert_int_equal(check(b, (size_t)n, pk, exporter, q, sizeof(q)), NANA_ERR_PERM);
    }
    assert_int_equal(check(b, (size_t)n, pk, exporter, query, sizeof(query) - 1), NANA_ERR_PERM);
    for (size_t i = 0; i < 32; i++) {
        memcpy(e, exporter, 32);
        e[i] ^= 0x80;
        assert_int_equal(check(b, (size_t)n, pk, e, query, sizeof(query)), NANA_ERR_PERM);
    }
    /* Another key. */
    uint8_t pk2[32], sk2[64];
    crypto_sign_keypair(pk2, sk2);
    assert_int_equal(check(b, (size_t)n, pk2, exporter, query, sizeof(query)), NANA_ERR_PERM);
    /* The message is what the header says, byte for byte. */
    uint8_t m[NANA_REQSIG_MESSAGE_MAX], h[32];
    size_t ml = nana_reqsig_message(exporter, &s, query, sizeof(query), m, sizeof(m));
    assert_int_equal(ml, 26 + 32 + 1 + 5 + 16 + 32);
    assert_memory_equal(m, "nanasqlite-aql-request-v1\0", 26);
    assert_memory_equal(m + 26, exporter, 32);
    assert_int_equal(m[58], 5);
    assert_memory_equal(m + 59, "alice", 5);
    assert_int_equal(m[64 + 7], 42);
    crypto_hash_sha256(h, query, sizeof(query));
    assert_memory_equal(m + ml - 32, h, 32);
    assert_int_equal(nana_reqsig_message(exporter, &s, query, sizeof(query), m, ml - 1), 0);
    assert_int_equal(crypto_sign_verify_detached(s.sig, m, ml, pk), 0);
}

static void test_parse(void **state)
{
    (void)state;
    uint8_t b[NANA_REQSIG_BYTES_MAX + 2];
    char name[65];
    memset(name, 'n', 64);
    name[64] = '\0';
    int n = nana_reqsig_sign(sk, name, 1, 2, exporter, query, 0, b, sizeof(b));
    assert_int_equal(n, NANA_REQSIG_BYTES_MAX);
    assert_int_equal(check(b, (size_t)n, pk, exporter, query, 0), 0);
    /* One byte short or long. */
    nana_reqsig s;
    assert_int_equal(nana_reqsig_parse(b, (size_t)n - 1, &s), NANA_ERR_INVALID);
    assert_int_equal(nana_reqsig_parse(b, (size_t)n + 1, &s), NANA_ERR_INVALID);
    assert_int_equal(nana_reqsig_parse(b, 0, &s), NANA_ERR_INVALID);
    assert_int_equal(nana_reqsig_parse(b, 1, &s), NANA_ERR_INVALID);
    /* Version 0 and 2. */
    b[0] = 0;
    assert_int_equal(nana_reqsig_parse(b, (size_t)n, &s), NANA_ERR_INVALID);
    b[0] = 2;
    assert_int_equal(nana_reqsig_parse(b, (size_t)n, &s), NANA_ERR_INVALID);
    b[0] = 1;
    /* An account of 0 or 65 bytes, or not a name. */
    uint8_t z[2 + 80] = {1, 0};
    assert_int_equal(nana_reqsig_parse(z, sizeof(z), &s), NANA_ERR_INVALID);
    b[1] = 65;
    assert_int_equal(nana_reqsig_parse(b, (size_t)n + 1, &s), NANA_ERR_INVALID);
    b[1] = 64;
    b[5] = ' ';
    assert_int_equal(nana_reqsig_parse(b, (size_t)n, &s), NANA_ERR_INVALID);
    /* Signing refuses bad names and short buffers. */
    assert_int_equal(nana_reqsig_sign(sk, "", 1, 2, exporter, query, 0, b, sizeof(b)),
                     NANA_ERR_INVALID);
    assert_int_equal(nana_reqsig_sign(sk, "a b", 1, 2, exporter, query, 0, b, sizeof(b)),
                     NANA_ERR_INVALID);
    assert_int_equal(nana_reqsig_sign(sk, "ab", 1, 2, exporter, query, 0, b, 83), NANA_ERR_TOOBIG);
}

int main(void)
{
    if (sodium_init() < 0) return 1;
    crypto_sign_keypair(pk, sk);
    randombytes_buf(exporter, sizeof(exporter));
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_round_trip),
                                       cmocka_unit_test(test_parse)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
