/*
 * proof.c - server proofs (see nana_proof.h). The signed message is the
 * context string with its NUL, then the proof's fixed-size head; query
 * and result enter it as their SHA-256, so a proof is always the same
 * size.
 */
#include "auth/nana_proof.h"

#include "util/nana_err.h"

#include <sodium.h>
#include <string.h>

/* Offsets in the proof. */
enum { O_VER = 4, O_KEY = 5, O_SEQ = 13, O_TIME = 21, O_QUERY = 29, O_RESULT = 61, O_SIG = 93 };

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/* The signed message of the proof head |p| (NANA_PROOF_SIGNED bytes). */
static void message(const uint8_t *p, uint8_t m[sizeof(NANA_PROOF_CONTEXT) + NANA_PROOF_SIGNED])
{
    memcpy(m, NANA_PROOF_CONTEXT, sizeof(NANA_PROOF_CONTEXT)); /* with its NUL */
    memcpy(m + sizeof(NANA_PROOF_CONTEXT), p, NANA_PROOF_SIGNED);
}

void nana_proof_key_id(const uint8_t pk[32], uint8_t key_id[8])
{
    uint8_t h[32];
    crypto_hash_sha256(h, pk, 32);
    memcpy(key_id, h, 8);
}

int nana_proof_make(const uint8_t sk[64], uint64_t seq, int64_t unix_ms, const uint8_t *query,
                    size_t qlen, const uint8_t *result, size_t rlen, uint8_t out[NANA_PROOF_BYTES])
{
    static const uint8_t magic[4] = {'N', 'S', 'P', '1'}; /* NANA_PROOF_MAGIC, without its NUL */
    memcpy(out, magic, sizeof(magic));
    out[O_VER] = NANA_PROOF_VERSION;
    nana_proof_key_id(sk + 32, out + O_KEY); /* libsodium's secret key ends with the public */
    put64(out + O_SEQ, seq);
    put64(out + O_TIME, (uint64_t)unix_ms);
    crypto_hash_sha256(out + O_QUERY, query, qlen);
    crypto_hash_sha256(out + O_RESULT, result, rlen);
    uint8_t m[sizeof(NANA_PROOF_CONTEXT) + NANA_PROOF_SIGNED];
    message(out, m);
    crypto_sign_detached(out + O_SIG, NULL, m, sizeof(m), sk);
    return NANA_OK;
}

int nana_proof_verify(const uint8_t pk[32], const uint8_t *proof, size_t plen, const uint8_t *query,
                      size_t qlen, const uint8_t *result, size_t rlen, nana_proof_info *info)
{
    if (plen != NANA_PROOF_BYTES)
        return nana_err_set(NANA_ERR_INVALID, "a proof is %d bytes, not %zu", NANA_PROOF_BYTES,
                            plen);
    if (memcmp(proof, NANA_PROOF_MAGIC, 4) != 0 || proof[O_VER] != NANA_PROOF_VERSION)
        return nana_err_set(NANA_ERR_INVALID, "not a version 1 NanaSQLite proof");
    uint8_t kid[8], h[32];
    nana_proof_key_id(pk, kid);
    if (memcmp(kid, proof + O_KEY, 8) != 0)
        return nana_err_set(NANA_ERR_PERM, "the proof was made by another key");
    crypto_hash_sha256(h, query, qlen);
    if (memcmp(h, proof + O_QUERY, 32) != 0)
        return nana_err_set(NANA_ERR_PERM, "the proof is for another query");
    crypto_hash_sha256(h, result, rlen);
    if (memcmp(h, proof + O_RESULT, 32) != 0)
        return nana_err_set(NANA_ERR_PERM, "the proof is for another result");
    uint8_t m[sizeof(NANA_PROOF_CONTEXT) + NANA_PROOF_SIGNED];
    message(proof, m);
    if (crypto_sign_verify_detached(proof + O_SIG, m, sizeof(m), pk) != 0)
        return nana_err_set(NANA_ERR_PERM, "the proof's signature does not verify");
    if (info) {
        info->seq = get64(proof + O_SEQ);
        info->unix_ms = (int64_t)get64(proof + O_TIME);
        memcpy(info->key_id, proof + O_KEY, 8);
    }
    return NANA_OK;
}
