/*
 * test_proof.c - server proofs: a proof verifies with the server's public
 * key for exactly its query and result; a flipped bit anywhere in the
 * proof, the query or the result, or another key, fails.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "auth/nana_proof.h"
#include "util/nana_err.h"

#include <sodium.h>
#include <string.h>

static uint8_t pk[32], sk[64];
static const uint8_t query[] = "SELECT 1";
static const uint8_t result[] = "[[1]]";

static void test_round_trip(void **state)
{
    (void)state;
    uint8_t p[NANA_PROOF_BYTES];
    assert_int_equal(NANA_PROOF_BYTES, 157);
    assert_int_equal(
        nana_proof_make(sk, 7, 1700000000456, query, sizeof(query), result, sizeof(result), p), 0);
    assert_memory_equal(p, "NSP1\1", 5);
    nana_proof_info info;
    memset(&info, 0, sizeof(info));
    assert_int_equal(
        nana_proof_verify(pk, p, sizeof(p), query, sizeof(query), result, sizeof(result), &info),
        0);
    assert_int_equal(info.seq, 7);
    assert_int_equal(info.unix_ms, 1700000000456);
    uint8_t kid[8], h[32];
    crypto_hash_sha256(h, pk, 32);
    nana_proof_key_id(pk, kid);
    assert_memory_equal(kid, h, 8);
    assert_memory_equal(info.key_id, kid, 8);
    /* The signature covers the context and every byte before it. */
    uint8_t m[20 + NANA_PROOF_SIGNED];
    memcpy(m, "nanasqlite-proof-v1", 20);
    memcpy(m + 20, p, NANA_PROOF_SIGNED);
    assert_int_equal(crypto_sign_verify_detached(p + NANA_PROOF_SIGNED, m, sizeof(m), pk), 0);
    /* Any flipped bit of the proof fails. */
    for (size_t i = 0; i < sizeof(p); i++)
        for (int bit = 0; bit < 8; bit++) {
            p[i] ^= (uint8_t)(1u << bit);
            assert_int_not_equal(nana_proof_verify(pk, p, sizeof(p), query, sizeof(query), result,
                                                   sizeof(result), NULL),
                                 0);
            p[i] ^= (uint8_t)(1u << bit);
        }
    /* Of the query and the result too. */
    uint8_t q[sizeof(query)], r[sizeof(result)];
    for (size_t i = 0; i < sizeof(query); i++) {
        memcpy(q, query, sizeof(q));
        q[i] ^= 1;
        assert_int_equal(
            nana_proof_verify(pk, p, sizeof(p), q, sizeof(q), result, sizeof(result), NULL),
            NANA_ERR_PERM);
    }
    for (size_t i = 0; i < sizeof(result); i++) {
        memcpy(r, result, sizeof(r));
        r[i] ^= 1;
        assert_int_equal(
            nana_proof_verify(pk, p, sizeof(p), query, sizeof(query), r, sizeof(r), NULL),
            NANA_ERR_PERM);
    }
    /* Query and result swapped, or the result cut short. */
    assert_int_equal(
        nana_proof_verify(pk, p, sizeof(p), result, sizeof(result), query, sizeof(query), NULL),
        NANA_ERR_PERM);
    assert_int_equal(
        nana_proof_verify(pk, p, sizeof(p), query, sizeof(query), result, sizeof(result) - 1, NULL),
        NANA_ERR_PERM);
    /* Another key. */
    uint8_t pk2[32], sk2[64];
    crypto_sign_keypair(pk2, sk2);
    assert_int_equal(
        nana_proof_verify(pk2, p, sizeof(p), query, sizeof(query), result, sizeof(result), NULL),
        NANA_ERR_PERM);
    /* Another key that claims this key's id still fails on the signature. */
    uint8_t forged[NANA_PROOF_BYTES];
    nana_proof_make(sk2, 7, 1700000000456, query, sizeof(query), result, sizeof(result), forged);
    memcpy(forged + 5, kid, 8);
    assert_int_equal(nana_proof_verify(pk, forged, sizeof(forged), query, sizeof(query), result,
                                       sizeof(result), NULL),
                     NANA_ERR_PERM);
}

static void test_format(void **state)
{
    (void)state;
    uint8_t p[NANA_PROOF_BYTES + 1];
    nana_proof_make(sk, 1, 2, NULL, 0, NULL, 0, p);
    p[NANA_PROOF_BYTES] = 0;
    assert_int_equal(nana_proof_verify(pk, p, NANA_PROOF_BYTES, NULL, 0, NULL, 0, NULL), 0);
    assert_int_equal(nana_proof_verify(pk, p, NANA_PROOF_BYTES - 1, NULL, 0, NULL, 0, NULL),
                     NANA_ERR_INVALID);
    assert_int_equal(nana_proof_verify(pk, p, NANA_PROOF_BYTES + 1, NULL, 0, NULL, 0, NULL),
                     NANA_ERR_INVALID);
    assert_int_equal(nana_proof_verify(pk, p, 0, NULL, 0, NULL, 0, NULL), NANA_ERR_INVALID);
    p[4] = 2;
    assert_int_equal(nana_proof_verify(pk, p, NANA_PROOF_BYTES, NULL, 0, NULL, 0, NULL),
                     NANA_ERR_INVALID);
    p[4] = 1;
    p[0] = 'X';
    assert_int_equal(nana_proof_verify(pk, p, NANA_PROOF_BYTES, NULL, 0, NULL, 0, NULL),
                     NANA_ERR_INVALID);
}

int main(void)
{
    if (sodium_init() < 0) return 1;
    crypto_sign_keypair(pk, sk);
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_round_trip),
                                       cmocka_unit_test(test_format)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
