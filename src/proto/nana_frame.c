/*
 * nana_frame.c - the NanaSQLite wire frame (u32 big-endian length + one
 * msgpack value) and the client's authentication messages. See
 * nana_frame.h.
 */
#include "proto/nana_frame.h"
#include "util/nana_err.h"

#include <stdio.h>
#include <string.h>

int nana_frame_begin(nana_buf *out, size_t *at)
{
    *at = out->len;
    static const uint8_t zero[4] = {0};
    return nana_buf_append(out, zero, 4);
}

int nana_frame_end(nana_buf *out, size_t at)
{
    size_t n = out->len - at - 4;
    if (n > UINT32_MAX) return nana_err_set(NANA_ERR_TOOBIG, "frame too large");
    uint8_t *p = (uint8_t *)out->data + at;
    p[0] = (uint8_t)(n >> 24);
    p[1] = (uint8_t)(n >> 16);
    p[2] = (uint8_t)(n >> 8);
    p[3] = (uint8_t)n;
    return NANA_OK;
}

int nana_frame_open(const uint8_t *p, size_t n, nana_mp_reader *r)
{
    if (n < 4) return nana_err_set(NANA_ERR_INVALID, "a frame is at least 4 bytes");
    uint32_t len = ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
    if (len != n - 4) return nana_err_set(NANA_ERR_INVALID, "the frame's length is wrong");
    nana_mp_reader_init(r, p + 4, n - 4);
    return NANA_OK;
}

int nana_frame_string(nana_buf *out, const char *s)
{
    size_t at;
    int rc = nana_frame_begin(out, &at);
    if (!rc) rc = nana_mp_put_cstr(out, s);
    return rc ? rc : nana_frame_end(out, at);
}

int nana_frame_auth_response(nana_buf *out, const uint8_t sig[64], const char *account)
{
    size_t at;
    int rc = nana_frame_begin(out, &at);
    if (!rc) rc = nana_mp_put_map(out, account ? 3 : 2);
    if (!rc) rc = nana_mp_put_cstr(out, "type");
    if (!rc) rc = nana_mp_put_cstr(out, "response");
    if (!rc) rc = nana_mp_put_cstr(out, "data");
    if (!rc) rc = nana_mp_put_bin(out, sig, 64);
    if (!rc && account) rc = nana_mp_put_cstr(out, "account");
    if (!rc && account) rc = nana_mp_put_cstr(out, account);
    return rc ? rc : nana_frame_end(out, at);
}

bool nana_mp_item_is(const nana_mp_item *it, const char *s)
{
    size_t n = strlen(s);
    return it->type == NANA_MP_STR && it->v.s.n == n && !memcmp(it->v.s.p, s, n);
}

int nana_frame_fields(nana_mp_reader *r, uint32_t count, nana_mp_field *fields, size_t nf,
                      unsigned max_depth)
{
    for (uint32_t i = 0; i < count; i++) {
        nana_mp_item k;
        if (nana_mp_read(r, &k) || k.type != NANA_MP_STR) return -1;
        nana_mp_field *hit = NULL;
        for (size_t j = 0; j < nf && !hit; j++)
            if (nana_mp_item_is(&k, fields[j].name)) hit = &fields[j];
        if (hit) {
            hit->at = *r;
            if (nana_mp_read(&hit->at, &hit->item)) return -1;
            hit->at = *r;
            hit->found = true;
        }
        if (nana_mp_skip(r, max_depth)) return -1;
    }
    return nana_mp_left(r) ? -1 : 0;
}

nana_auth_reply nana_frame_auth_reply(const uint8_t *p, size_t n, uint8_t challenge[32], char *msg,
                                      size_t msgcap)
{
    nana_mp_reader rd;
    nana_mp_item top;
    snprintf(msg, msgcap, "the server's authentication reply is malformed");
    if (nana_frame_open(p, n, &rd) || nana_mp_read(&rd, &top)) return NANA_AUTH_ERROR;
    if (top.type == NANA_MP_STR) {
        if (nana_mp_left(&rd)) return NANA_AUTH_ERROR;
        if (nana_mp_item_is(&top, "AUTH_OK")) return NANA_AUTH_OK;
        if (nana_mp_item_is(&top, "AUTH_FAILED")) return NANA_AUTH_FAILED;
        if (nana_mp_item_is(&top, "AUTH_BANNED")) return NANA_AUTH_BANNED;
        snprintf(msg, msgcap, "unexpected authentication reply '%.*s'",
                 (int)(top.v.s.n > 64 ? 64 : top.v.s.n), (const char *)top.v.s.p);
        return NANA_AUTH_ERROR;
    }
    if (top.type != NANA_MP_MAP) return NANA_AUTH_ERROR;
    nana_mp_field f[] = {{.name = "type"}, {.name = "data"}, {.name = "message"}};
    if (nana_frame_fields(&rd, top.v.count, f, 3, 8)) return NANA_AUTH_ERROR;
    if (f[0].found && nana_mp_item_is(&f[0].item, "challenge") && f[1].found &&
        f[1].item.type == NANA_MP_BIN && f[1].item.v.s.n == 32) {
        memcpy(challenge, f[1].item.v.s.p, 32);
        return NANA_AUTH_CHALLENGE;
    }
    if (f[2].found && f[2].item.type == NANA_MP_STR)
        snprintf(msg, msgcap, "the server refused authentication: %.*s",
                 (int)(f[2].item.v.s.n > 200 ? 200 : f[2].item.v.s.n),
                 (const char *)f[2].item.v.s.p);
    return NANA_AUTH_ERROR;
}
