/*
 * nana_jwt.h - bearer tokens: compact JWS (RFC 7515) JSON Web Tokens
 * signed with HMAC-SHA256, as the gRPC door accepts them in
 * "authorization: Bearer <token>" (docs/GRPC.md, "Logging in").
 *
 * Big idea: two steps, because the key depends on the token. First
 * nana_jwt_parse reads the token's structure and claims without trusting
 * them (strict base64url, "alg": "HS256" and nothing else, the claims'
 * types); the caller then finds the secret of the account the token
 * names ("sub") and nana_jwt_verify checks the signature in constant
 * time and the times against |now|. Nothing here reads a clock or a
 * file: the caller passes both. A token that passes both steps is what
 * the secret's holder wrote, for the account it names, and current.
 *
 * Errors: 0 or a negative NANA_ERR_* with a short reason in nana_errmsg();
 * a reason never quotes the token or the secret.
 */
#ifndef NANA_JWT_H
#define NANA_JWT_H

#include "auth/nana_accounts.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NANA_JWT_MAX_BYTES 8192 /* a whole token */
/* An account's secret: NANA_JWT_SECRET_MIN..MAX bytes (nana_accounts.h). */

/* What "roles" grants; a token without "roles" narrows nothing. */
enum {
    NANA_JWT_ROLE_WRITE = 1u << 0, /* "write": methods that change data */
    NANA_JWT_ROLE_ADMIN = 1u << 1, /* "admin": everything the account may do */
};

/*
 * A parsed token. signing_input points into the caller's token text,
 * which must outlive the nana_jwt until nana_jwt_verify returns.
 */
typedef struct nana_jwt {
    char sub[NANA_ACCOUNT_NAME_MAX + 1]; /* the account (a valid account name) */
    size_t sub_len;
    int64_t exp; /* Unix seconds; the token is expired from exp on */
    bool has_nbf, has_iat;
    int64_t nbf, iat;
    bool has_roles;            /* "roles" was given: only what it grants */
    unsigned roles;            /* NANA_JWT_ROLE_* bits (unknown role names are ignored) */
    const char *signing_input; /* header "." payload, as written */
    size_t signing_len;
    uint8_t sig[32];
} nana_jwt;

/*
 * Reads |tok| (|n| bytes, not NUL-terminated): three base64url parts
 * without padding, a header of {"alg": "HS256"} (optional "typ": "JWT",
 * other members ignored, "crit" refused), claims with "sub" (an account
 * name) and "exp" (an integer), optional integer "nbf" and "iat" and an
 * optional list of strings "roles". Nothing is verified yet. Returns 0,
 * NANA_ERR_TOOBIG (over NANA_JWT_MAX_BYTES) or NANA_ERR_INVALID.
 */
int nana_jwt_parse(const char *tok, size_t n, nana_jwt *out);

/*
 * Checks |t|'s HMAC-SHA256 signature with |secret| (|slen| bytes) in
 * constant time, then its times at |now| (Unix seconds): expired when
 * now >= exp, refused when now < nbf. Returns 0, NANA_ERR_PERM (a bad
 * signature), NANA_ERR_TIMEOUT (expired) or NANA_ERR_TOOEARLY (nbf).
 */
int nana_jwt_verify(const nana_jwt *t, const uint8_t *secret, size_t slen, int64_t now);

/*
 * Writes a token (tests and tools): header {"alg":"HS256",
 * "typ":"JWT"}, the claims JSON text |claims| as given (the caller writes
 * it), signed with |secret|. Returns its length (NUL-terminated in |out|),
 * or 0 when |cap| is too small.
 */
size_t nana_jwt_sign(const char *claims, const uint8_t *secret, size_t slen, char *out, size_t cap);

#endif
