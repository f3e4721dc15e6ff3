/*
 * resp.c - the fields of a response: Response-Headers, Trailers,
 * Trailers-Only, custom metadata, and the plain HTTP errors a non-gRPC
 * request gets. The door hands each list to its HTTP library in one
 * submit call (nghttp3 and nghttp2 copy the fields).
 */
#include "grpc/nana_grpc.h"

#include <stdio.h>
#include <string.h>

void nana_grpc_fields_init(nana_grpc_fields *f, nana_grpc_field *storage, size_t cap,
                           nana_arena *arena)
{
    f->v = storage;
    f->n = 0;
    f->cap = cap;
    f->arena = arena;
}

static int add(nana_grpc_fields *f, const char *name, const char *value, size_t value_len)
{
    if (f->n == f->cap)
        return nana_err_set(NANA_ERR_TOOBIG, "the response's field list is full (%zu fields)",
                            f->cap);
    f->v[f->n++] = (nana_grpc_field){name, strlen(name), value, value_len};
    return 0;
}

static const char *ctype_text(nana_grpc_ctype ctype)
{
    return ctype == NANA_GRPC_CT_GRPC_PROTO ? "application/grpc+proto" : "application/grpc";
}

int nana_grpc_resp_headers(nana_grpc_fields *f, nana_grpc_ctype ctype)
{
    const char *ct = ctype_text(ctype);
    int rc = add(f, ":status", "200", 3);
    if (!rc) rc = add(f, "content-type", ct, strlen(ct));
    return rc;
}

int nana_grpc_resp_meta(nana_grpc_fields *f, const char *name, const void *value, size_t len)
{
    size_t nlen = strlen(name);
    if (!nana_grpc_meta_name_ok(name, nlen))
        return nana_err_set(NANA_ERR_INVALID, "'%.64s' is not a metadata name", name);
    char *v;
    size_t vlen;
    if (nlen > 4 && memcmp(name + nlen - 4, "-bin", 4) == 0) {
        vlen = nana_grpc_b64_encoded_len(len);
        v = nana_arena_alloc(f->arena, vlen + 1);
        if (!v) return nana_err_set(NANA_ERR_NOMEM, "out of memory for response metadata");
        nana_grpc_b64_encode(value, len, v);
    } else {
        const unsigned char *s = value;
        for (size_t i = 0; i < len; i++)
            if (s[i] < 0x20 || s[i] > 0x7e)
                return nana_err_set(NANA_ERR_INVALID,
                                    "metadata '%.64s' has a byte outside printable ASCII", name);
        v = nana_arena_dup(f->arena, value, len);
        if (!v) return nana_err_set(NANA_ERR_NOMEM, "out of memory for response metadata");
        vlen = len;
    }
    return add(f, name, v, vlen);
}

int nana_grpc_resp_trailers(nana_grpc_fields *f, nana_grpc_status status, const char *message)
{
    const char *digits = nana_grpc_status_digits(status);
    if (!digits) return nana_err_set(NANA_ERR_INVALID, "%d is not a gRPC status", (int)status);
    int rc = add(f, "grpc-status", digits, strlen(digits));
    if (rc || !message || !message[0]) return rc;
    size_t n = strlen(message);
    size_t len = nana_grpc_pct_encoded_len(message, n);
    char *enc = nana_arena_alloc(f->arena, len + 1);
    if (!enc) return nana_err_set(NANA_ERR_NOMEM, "out of memory for grpc-message");
    nana_grpc_pct_encode(message, n, enc, len + 1);
    return add(f, "grpc-message", enc, len);
}

int nana_grpc_resp_pushback(nana_grpc_fields *f, unsigned ms)
{
    char *digits = nana_arena_alloc(f->arena, 12);
    if (!digits) return nana_err_set(NANA_ERR_NOMEM, "out of memory for the trailers");
    int n = snprintf(digits, 12, "%u", ms);
    return add(f, "grpc-retry-pushback-ms", digits, (size_t)n);
}

int nana_grpc_resp_trailers_only(nana_grpc_fields *f, nana_grpc_ctype ctype,
                                 nana_grpc_status status, const char *message)
{
    int rc = nana_grpc_resp_headers(f, ctype);
    if (!rc) rc = nana_grpc_resp_trailers(f, status, message);
    return rc;
}

int nana_grpc_resp_http_error(nana_grpc_fields *f, int http_status)
{
    if (http_status < 100 || http_status > 599)
        return nana_err_set(NANA_ERR_INVALID, "%d is not an HTTP status", http_status);
    char *digits = nana_arena_alloc(f->arena, 4);
    if (!digits) return nana_err_set(NANA_ERR_NOMEM, "out of memory for the response");
    snprintf(digits, 4, "%d", http_status);
    int rc = add(f, ":status", digits, 3);
    if (!rc && http_status == 405) rc = add(f, "allow", "POST", 4);
    return rc;
}

int nana_grpc_resp_verdict(nana_grpc_fields *f, const nana_grpc_verdict *v, nana_grpc_ctype ctype)
{
    switch (v->kind) {
    case NANA_GRPC_HTTP_ERROR:
        return nana_grpc_resp_http_error(f, v->http_status);
    case NANA_GRPC_REFUSE: {
        int rc = nana_grpc_resp_trailers_only(f, ctype, v->error.status, v->error.message);
        if (!rc && v->accept_encoding) rc = add(f, "grpc-accept-encoding", "identity", 8);
        return rc;
    }
    default:
        return nana_err_set(NANA_ERR_INVALID, "the verdict has no answer to send");
    }
}
