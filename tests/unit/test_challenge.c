/*
 * test_challenge.c - challenges are single-use and expire; only the right
 * key's signature of the right bytes passes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "auth/nana_challenge.h"
#include "util/nana_err.h"

#include <sodium.h>
#include <string.h>

#define S 1000000000ull

static void test_challenge(void **state)
{
    (void)state;
    uint8_t pk[32], sk[64], pk2[32], sk2[64], sig[64];
    crypto_sign_keypair(pk, sk);
    crypto_sign_keypair(pk2, sk2);
    nana_challenge c = {0};
    /* Nothing issued yet. */
    assert_int_equal(nana_challenge_verify(&c, sig, 64, pk, S), NANA_ERR_INVALID);
    nana_challenge_issue(&c, S, 30 * S);
    crypto_sign_detached(sig, NULL, c.bytes, sizeof(c.bytes), sk);
    assert_int_equal(nana_challenge_verify(&c, sig, 64, pk, 2 * S), 0);
    /* Single use: the same response again is refused. */
    assert_int_equal(nana_challenge_verify(&c, sig, 64, pk, 2 * S), NANA_ERR_INVALID);
    /* A wrong key fails and consumes the challenge too. */
    nana_challenge_issue(&c, S, 30 * S);
    crypto_sign_detached(sig, NULL, c.bytes, sizeof(c.bytes), sk2);
    assert_int_equal(nana_challenge_verify(&c, sig, 64, pk, 2 * S), NANA_ERR_PERM);
    assert_int_equal(nana_challenge_verify(&c, sig, 64, pk2, 2 * S), NANA_ERR_INVALID);
    /* Expired. */
    nana_challenge_issue(&c, S, 30 * S);
    crypto_sign_detached(sig, NULL, c.bytes, sizeof(c.bytes), sk);
    assert_int_equal(nana_challenge_verify(&c, sig, 64, pk, 31 * S), NANA_ERR_TIMEOUT);
    /* A new challenge replaces the old: an answer to the old one fails. */
    nana_challenge_issue(&c, S, 30 * S);
    crypto_sign_detached(sig, NULL, c.bytes, sizeof(c.bytes), sk);
    nana_challenge_issue(&c, S, 30 * S);
    assert_int_equal(nana_challenge_verify(&c, sig, 64, pk, 2 * S), NANA_ERR_PERM);
    /* Wrong length. */
    nana_challenge_issue(&c, S, 30 * S);
    assert_int_equal(nana_challenge_verify(&c, sig, 63, pk, 2 * S), NANA_ERR_PERM);
    /* Any of several keys, and which one. */
    uint8_t keys[64];
    memcpy(keys, pk, 32);
    memcpy(keys + 32, pk2, 32);
    nana_challenge_issue(&c, S, 30 * S);
    crypto_sign_detached(sig, NULL, c.bytes, sizeof(c.bytes), sk2);
    unsigned which = 9;
    assert_int_equal(nana_challenge_verify_any(&c, sig, 64, keys, 2, &which, 2 * S), 0);
    assert_int_equal(which, 1);
}

int main(void)
{
    if (sodium_init() < 0) return 1;
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_challenge)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
