/*
 * jwt.c - HS256 JSON Web Tokens (see nana_jwt.h).
 *
 * The parts are decoded by libsodium's base64url decoder without padding
 * and with no bytes ignored, so '=', '+', '/', whitespace and non-zero
 * trailing bits are all refused. The JSON is our strict parser's, with a
 * small nesting limit (the claims nest two deep: an object holding
 * "roles"). The signature is compared with sodium_memcmp.
 */
#include "auth/nana_jwt.h"

#include "util/nana_err.h"
#include "util/nana_json.h"

#include <sodium.h>
#include <string.h>

#define JSON_DEPTH 4 /* header and claims are objects; "roles" a list in one */

/* Decodes base64url part p[0..n) into out (cap bytes): its length, or -1. */
static long b64url(const char *p, size_t n, uint8_t *out, size_t cap)
{
    size_t len = 0;
    if (n == 0) return -1;
    if (sodium_base642bin(out, cap, p, n, NULL, &len, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
        return -1;
    return (long)len;
}

/* Reads member |k| of object |o| when present (*has): a JSON integer in int64. */
static int int_claim(const nana_json *o, const char *k, bool *has, int64_t *v)
{
    const nana_json *j = nana_json_object_get(o, k, strlen(k));
    *has = j != NULL;
    if (!j) return NANA_OK;
    if (j->type != NANA_JSON_NUMBER || !nana_json_number_is_integer(j) ||
        nana_json_number_int64(j, v) != 0)
        return nana_err_set(NANA_ERR_INVALID, "the token's \"%s\" is not an integer", k);
    return NANA_OK;
}

/* True if |j| is the string |s|. */
static bool str_is(const nana_json *j, const char *s)
{
    return j && j->type == NANA_JSON_STRING && j->n == strlen(s) && memcmp(j->u.str, s, j->n) == 0;
}

/* Checks the decoded header text. */
static int check_header(const char *h, size_t n)
{
    nana_json_doc *doc = NULL;
    nana_json *root = NULL;
    int rc = nana_json_parse(h, n, 0, JSON_DEPTH, &doc, &root);
    if (rc == NANA_ERR_NOMEM) return rc;
    const nana_json *typ = rc ? NULL : nana_json_object_get(root, "typ", 3);
    if (rc || root->type != NANA_JSON_OBJECT)
        rc = nana_err_set(NANA_ERR_INVALID, "the token's header is not a JSON object");
    else if (!str_is(nana_json_object_get(root, "alg", 3), "HS256"))
        rc = nana_err_set(NANA_ERR_INVALID, "the token's \"alg\" is not HS256");
    else if (nana_json_object_get(root, "crit", 4))
        rc = nana_err_set(NANA_ERR_INVALID, "the token's header has \"crit\"");
    else if (typ && !str_is(typ, "JWT"))
        rc = nana_err_set(NANA_ERR_INVALID, "the token's \"typ\" is not JWT");
    nana_json_doc_free(doc);
    return rc;
}

/* Reads "roles": a list of strings, of which "write" and "admin" count. */
static int read_roles(const nana_json *r, nana_jwt *out)
{
    if (r->type != NANA_JSON_ARRAY)
        return nana_err_set(NANA_ERR_INVALID, "the token's \"roles\" is not a list of strings");
    out->has_roles = true;
    for (uint32_t i = 0; i < r->n; i++) {
        const nana_json *e = r->u.items[i];
        if (e->type != NANA_JSON_STRING)
            return nana_err_set(NANA_ERR_INVALID, "the token's \"roles\" is not a list of strings");
        if (str_is(e, "write")) out->roles |= NANA_JWT_ROLE_WRITE;
        if (str_is(e, "admin")) out->roles |= NANA_JWT_ROLE_ADMIN;
    }
    return NANA_OK;
}

/* Reads the decoded claims text into |out|. */
static int read_claims(const char *c, size_t n, nana_jwt *out)
{
    nana_json_doc *doc = NULL;
    nana_json *root = NULL;
    int rc = nana_json_parse(c, n, 0, JSON_DEPTH, &doc, &root);
    if (rc == NANA_ERR_NOMEM) return rc;
    if (rc || root->type != NANA_JSON_OBJECT) {
        nana_json_doc_free(doc);
        return nana_err_set(NANA_ERR_INVALID, "the token's claims are not a JSON object");
    }
    const nana_json *sub = nana_json_object_get(root, "sub", 3);
    bool has_exp = false;
    if (!sub || sub->type != NANA_JSON_STRING || !nana_account_name_valid(sub->u.str, sub->n))
        rc = nana_err_set(NANA_ERR_INVALID, "the token's \"sub\" is not an account name");
    if (!rc) rc = int_claim(root, "exp", &has_exp, &out->exp);
    if (!rc && !has_exp) rc = nana_err_set(NANA_ERR_INVALID, "the token has no \"exp\"");
    if (!rc) rc = int_claim(root, "nbf", &out->has_nbf, &out->nbf);
    if (!rc) rc = int_claim(root, "iat", &out->has_iat, &out->iat);
    const nana_json *roles = rc ? NULL : nana_json_object_get(root, "roles", 5);
    if (roles) rc = read_roles(roles, out);
    if (!rc) {
        memcpy(out->sub, sub->u.str, sub->n);
        out->sub[sub->n] = '\0';
        out->sub_len = sub->n;
    }
    nana_json_doc_free(doc);
    return rc;
}

int nana_jwt_parse(const char *tok, size_t n, nana_jwt *out)
{
    memset(out, 0, sizeof(*out));
    if (n > NANA_JWT_MAX_BYTES)
        return nana_err_set(NANA_ERR_TOOBIG, "the token is over %d bytes", NANA_JWT_MAX_BYTES);
    const char *d1 = memchr(tok, '.', n);
    const char *d2 = d1 ? memchr(d1 + 1, '.', (size_t)(tok + n - d1 - 1)) : NULL;
    if (!d2 || memchr(d2 + 1, '.', (size_t)(tok + n - d2 - 1)))
        return nana_err_set(NANA_ERR_INVALID, "the token is not three parts joined by '.'");
    static _Thread_local uint8_t buf[NANA_JWT_MAX_BYTES];
    long hl = b64url(tok, (size_t)(d1 - tok), buf, sizeof(buf));
    if (hl < 0) return nana_err_set(NANA_ERR_INVALID, "the token's header is not base64url");
    int rc = check_header((const char *)buf, (size_t)hl);
    if (rc) return rc;
    long cl = b64url(d1 + 1, (size_t)(d2 - d1 - 1), buf, sizeof(buf));
    if (cl < 0) return nana_err_set(NANA_ERR_INVALID, "the token's claims are not base64url");
    rc = read_claims((const char *)buf, (size_t)cl, out);
    if (rc) return rc;
    uint8_t sig[33];
    if (b64url(d2 + 1, (size_t)(tok + n - d2 - 1), sig, sizeof(sig)) != 32)
        return nana_err_set(NANA_ERR_INVALID, "the token's signature is not base64url of 32 bytes");
    memcpy(out->sig, sig, 32);
    out->signing_input = tok;
    out->signing_len = (size_t)(d2 - tok);
    return NANA_OK;
}

/* HMAC-SHA256 of m[0..mlen) under |key|, into |mac|. */
static void hmac(const uint8_t *key, size_t klen, const void *m, size_t mlen, uint8_t mac[32])
{
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, key, klen);
    crypto_auth_hmacsha256_update(&st, m, mlen);
    crypto_auth_hmacsha256_final(&st, mac);
    sodium_memzero(&st, sizeof(st));
}

int nana_jwt_verify(const nana_jwt *t, const uint8_t *secret, size_t slen, int64_t now)
{
    uint8_t mac[32];
    hmac(secret, slen, t->signing_input, t->signing_len, mac);
    bool ok = slen > 0 && sodium_memcmp(mac, t->sig, 32) == 0;
    sodium_memzero(mac, sizeof(mac));
    if (!ok) return nana_err_set(NANA_ERR_PERM, "the token's signature does not verify");
    if (now >= t->exp) return nana_err_set(NANA_ERR_TIMEOUT, "the token expired");
    if (t->has_nbf && now < t->nbf)
        return nana_err_set(NANA_ERR_TOOEARLY, "the token is not valid yet (nbf)");
    return NANA_OK;
}

size_t nana_jwt_sign(const char *claims, const uint8_t *secret, size_t slen, char *out, size_t cap)
{
    static const char head[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    const int v = sodium_base64_VARIANT_URLSAFE_NO_PADDING;
    size_t cl = strlen(claims);
    size_t hlen = sodium_base64_ENCODED_LEN(sizeof(head) - 1, v) - 1;
    size_t clen = sodium_base64_ENCODED_LEN(cl, v) - 1;
    size_t mlen = sodium_base64_ENCODED_LEN(32, v) - 1;
    if (cap < hlen + clen + mlen + 3) return 0;
    sodium_bin2base64(out, cap, (const uint8_t *)head, sizeof(head) - 1, v);
    out[hlen] = '.';
    sodium_bin2base64(out + hlen + 1, cap - hlen - 1, (const uint8_t *)claims, cl, v);
    size_t at = hlen + 1 + clen;
    uint8_t mac[32];
    hmac(secret, slen, out, at, mac);
    out[at] = '.';
    sodium_bin2base64(out + at + 1, cap - at - 1, mac, 32, v);
    return at + 1 + mlen;
}
