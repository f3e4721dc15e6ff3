/*
 * reqsig.c - requests signed by their account (see nana_reqsig.h). The
 * integers are big-endian; the query enters the message as its SHA-256,
 * so the signed message has a fixed bound whatever the query's size.
 */
#include "auth/nana_reqsig.h"

#include "auth/nana_accounts.h"
#include "util/nana_err.h"

#include <sodium.h>
#include <string.h>

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

int nana_reqsig_parse(const uint8_t *p, size_t n, nana_reqsig *out)
{
    memset(out, 0, sizeof(*out));
    if (n < 2) return nana_err_set(NANA_ERR_INVALID, "the request signature is too short");
    if (p[0] != NANA_REQSIG_VERSION)
        return nana_err_set(NANA_ERR_INVALID, "the request signature is not version 1");
    size_t alen = p[1];
    if (alen == 0 || alen > NANA_REQSIG_ACCOUNT_MAX ||
        !nana_account_name_valid((const char *)p + 2, alen))
        return nana_err_set(NANA_ERR_INVALID, "the request signature's account is not a name");
    if (n != 2 + alen + 8 + 8 + 64)
        return nana_err_set(NANA_ERR_INVALID, "the request signature is %zu bytes, not %zu", n,
                            2 + alen + 80);
    out->version = p[0];
    out->account_len = (uint8_t)alen;
    memcpy(out->account, p + 2, alen);
    out->account[alen] = '\0';
    out->seq = get64(p + 2 + alen);
    out->unix_ms = (int64_t)get64(p + 2 + alen + 8);
    memcpy(out->sig, p + 2 + alen + 16, 64);
    return NANA_OK;
}

size_t nana_reqsig_message(const uint8_t exporter[32], const nana_reqsig *s, const uint8_t *query,
                           size_t qlen, uint8_t *out, size_t cap)
{
    size_t need = sizeof(NANA_REQSIG_CONTEXT) + 32 + 1 + s->account_len + 16 + 32;
    if (cap < need || s->account_len > NANA_REQSIG_ACCOUNT_MAX) return 0;
    uint8_t *o = out;
    memcpy(o, NANA_REQSIG_CONTEXT, sizeof(NANA_REQSIG_CONTEXT)); /* with its NUL */
    o += sizeof(NANA_REQSIG_CONTEXT);
    memcpy(o, exporter, 32);
    o += 32;
    *o++ = s->account_len;
    memcpy(o, s->account, s->account_len);
    o += s->account_len;
    put64(o, s->seq);
    put64(o + 8, (uint64_t)s->unix_ms);
    o += 16;
    crypto_hash_sha256(o, query, qlen);
    return need;
}

int nana_reqsig_verify(const nana_reqsig *s, const uint8_t pk[32], const uint8_t exporter[32],
                       const uint8_t *query, size_t qlen)
{
    uint8_t m[NANA_REQSIG_MESSAGE_MAX];
    size_t mlen = nana_reqsig_message(exporter, s, query, qlen, m, sizeof(m));
    if (!mlen || crypto_sign_verify_detached(s->sig, m, mlen, pk) != 0)
        return nana_err_set(NANA_ERR_PERM, "the request signature does not verify");
    return NANA_OK;
}

int nana_reqsig_sign(const uint8_t sk[64], const char *account, uint64_t seq, int64_t unix_ms,
                     const uint8_t exporter[32], const uint8_t *query, size_t qlen, uint8_t *out,
                     size_t cap)
{
    size_t alen = strlen(account);
    if (!nana_account_name_valid(account, alen))
        return nana_err_set(NANA_ERR_INVALID, "not an account name");
    size_t n = 2 + alen + 80;
    if (cap < n) return nana_err_set(NANA_ERR_TOOBIG, "room for %zu bytes is needed", n);
    nana_reqsig s = {.version = NANA_REQSIG_VERSION,
                     .account_len = (uint8_t)alen,
                     .seq = seq,
                     .unix_ms = unix_ms};
    memcpy(s.account, account, alen);
    uint8_t m[NANA_REQSIG_MESSAGE_MAX];
    size_t mlen = nana_reqsig_message(exporter, &s, query, qlen, m, sizeof(m));
    out[0] = NANA_REQSIG_VERSION;
    out[1] = (uint8_t)alen;
    for (size_t i = 0; i < alen; i++) /* bytes of the name, no NUL in the signed form */
        out[2 + i] = (uint8_t)account[i];
    put64(out + 2 + alen, seq);
    put64(out + 2 + alen + 8, (uint64_t)unix_ms);
    crypto_sign_detached(out + 2 + alen + 16, NULL, m, mlen, sk);
    return (int)n;
}
