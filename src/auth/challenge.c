/*
 * challenge.c - single-use, expiring Ed25519 challenges (see nana_challenge.h).
 */
#include "auth/nana_challenge.h"

#include "util/nana_err.h"

#include <sodium.h>

void nana_challenge_issue(nana_challenge *c, uint64_t now, uint64_t lifetime_ns)
{
    randombytes_buf(c->bytes, sizeof(c->bytes));
    c->expires = now + lifetime_ns;
    c->live = true;
}

int nana_challenge_verify_any(nana_challenge *c, const uint8_t *sig, uint64_t siglen,
                              const uint8_t *pks, unsigned npk, unsigned *which, uint64_t now)
{
    bool live = c->live;
    c->live = false; /* single use, whatever happens next */
    if (!live) return nana_err_set(NANA_ERR_INVALID, "no challenge to answer");
    if (now >= c->expires) return nana_err_set(NANA_ERR_TIMEOUT, "the challenge expired");
    if (siglen != crypto_sign_BYTES)
        return nana_err_set(NANA_ERR_PERM, "a signature is %d bytes", crypto_sign_BYTES);
    for (unsigned i = 0; i < npk; i++) {
        /* 32 zero bytes stand for "no key" (an account that logs in by
         * certificate): never a key, whatever libsodium would say. */
        if (sodium_is_zero(pks + 32 * (size_t)i, 32)) continue;
        if (crypto_sign_verify_detached(sig, c->bytes, sizeof(c->bytes), pks + 32 * (size_t)i) ==
            0) {
            if (which) *which = i;
            sodium_memzero(c->bytes, sizeof(c->bytes));
            return NANA_OK;
        }
    }
    sodium_memzero(c->bytes, sizeof(c->bytes));
    return nana_err_set(NANA_ERR_PERM, "the signature does not verify");
}

int nana_challenge_verify(nana_challenge *c, const uint8_t *sig, uint64_t siglen,
                          const uint8_t pk[32], uint64_t now)
{
    return nana_challenge_verify_any(c, sig, siglen, pk, 1, NULL, now);
}
