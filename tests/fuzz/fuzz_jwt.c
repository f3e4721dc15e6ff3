/*
 * fuzz_jwt.c - libFuzzer harness for bearer tokens (src/auth/jwt.c), with
 * a fixed secret and a fixed clock.
 *
 * Big idea: the first byte picks what the rest is. Even: a token as a
 * client would send it (nearly always refused: its signature cannot be
 * guessed). Odd: claims JSON text, which the harness signs with the secret
 * (nana_jwt_sign), so the claims and time checks behind the signature are
 * reached too. Checked: whatever nana_jwt_parse accepts has a valid
 * account name as "sub" and its signing input inside the token; a token
 * the harness signed never fails on its signature; a token that verifies
 * is not expired at the clock.
 */
#include "auth/nana_jwt.h"
#include "fuzz_check.h"
#include "util/nana_err.h"

#include <sodium.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW 1700000000

static const uint8_t secret[32] = "fuzz-secret-fuzz-secret-fuzz-sec";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char tok[4 * NANA_JWT_MAX_BYTES];
    static char claims[NANA_JWT_MAX_BYTES + 1];
    if (size < 1 || sodium_init() < 0) return 0;
    bool signed_here = data[0] & 1;
    const char *t = (const char *)data + 1;
    size_t n = size - 1;
    if (signed_here) {
        if (n > NANA_JWT_MAX_BYTES || memchr(t, '\0', n)) return 0;
        memcpy(claims, t, n);
        claims[n] = '\0';
        n = nana_jwt_sign(claims, secret, sizeof(secret), tok, sizeof(tok));
        CHECK(n > 0);
        t = tok;
    }
    nana_jwt j;
    int rc = nana_jwt_parse(t, n, &j);
    if (rc) {
        CHECK(rc == NANA_ERR_INVALID || rc == NANA_ERR_TOOBIG || rc == NANA_ERR_NOMEM);
        return 0;
    }
    CHECK(n <= NANA_JWT_MAX_BYTES);
    CHECK(j.sub_len >= 1 && j.sub_len <= NANA_ACCOUNT_NAME_MAX && strlen(j.sub) == j.sub_len);
    CHECK(nana_account_name_valid(j.sub, j.sub_len));
    CHECK(j.signing_input == t && j.signing_len < n && t[j.signing_len] == '.');
    CHECK(!(j.roles & ~(unsigned)(NANA_JWT_ROLE_WRITE | NANA_JWT_ROLE_ADMIN)));
    rc = nana_jwt_verify(&j, secret, sizeof(secret), NOW);
    if (signed_here) CHECK(rc != NANA_ERR_PERM);
    if (rc == 0) CHECK(j.exp > NOW && (!j.has_nbf || j.nbf <= NOW));
    return 0;
}
