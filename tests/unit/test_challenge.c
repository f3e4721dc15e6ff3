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

/*
 * 32 zero bytes stand for an account without a key (it logs in by
 * certificate). That encoding is a point of order 4, so a signature
 * R = [r]B, S = r satisfies the verification equation whenever
 * h = H(R || A || M) is a multiple of 4: one try in four. Such a forgery
 * must fail, alone and among other keys, and the real key after it must
 * still be found.
 */
static void test_zero_key_never_verifies(void **state)
{
    (void)state;
    uint8_t pk[32], sk[64], sig[64], zero[32] = {0};
    crypto_sign_keypair(pk, sk);
    nana_challenge c = {0};
    nana_challenge_issue(&c, S, 30 * S);
    int tries = 0;
    for (;; tries++) {
        assert_true(tries < 1000); /* P(failure) = (3/4)^1000 */
        uint8_t r[32], R[32], hbuf[64], h[32];
        crypto_core_ed25519_scalar_random(r);
        assert_int_equal(crypto_scalarmult_ed25519_base_noclamp(R, r), 0);
        crypto_hash_sha512_state st;
        crypto_hash_sha512_init(&st);
        crypto_hash_sha512_update(&st, R, 32);
        crypto_hash_sha512_update(&st, zero, 32);
        crypto_hash_sha512_update(&st, c.bytes, sizeof(c.bytes));
        crypto_hash_sha512_final(&st, hbuf);
        crypto_core_ed25519_scalar_reduce(h, hbuf);
        if (h[0] & 3) continue;
        memcpy(sig, R, 32);
        memcpy(sig + 32, r, 32);
        break;
    }
    nana_challenge saved = c;
    assert_int_equal(nana_challenge_verify(&c, sig, 64, zero, 2 * S), NANA_ERR_PERM);
    c = saved;
    uint8_t keys[96];
    memcpy(keys, zero, 32);
    memcpy(keys + 32, zero, 32);
    memcpy(keys + 64, pk, 32);
    unsigned which = 9;
    assert_int_equal(nana_challenge_verify_any(&c, sig, 64, keys, 3, &which, 2 * S), NANA_ERR_PERM);
    assert_int_equal(which, 9);
    /* The real key behind two empty slots. */
    nana_challenge_issue(&c, S, 30 * S);
    crypto_sign_detached(sig, NULL, c.bytes, sizeof(c.bytes), sk);
    assert_int_equal(nana_challenge_verify_any(&c, sig, 64, keys, 3, &which, 2 * S), 0);
    assert_int_equal(which, 2);
}

int main(void)
{
    if (sodium_init() < 0) return 1;
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_challenge),
                                       cmocka_unit_test(test_zero_key_never_verifies)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
