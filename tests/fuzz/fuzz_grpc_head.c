/*
 * fuzz_grpc_head.c - libFuzzer harness for the gRPC request head
 * (src/grpc/head.c, meta.c and the codecs they use): random lists of
 * header fields.
 *
 * Input: one byte of settings (bit 0: HTTP/3 or HTTP/2; bit 1: small
 * limits, 8 fields and 256 bytes), then fields, each a name length (one
 * byte, up to 63), the name, a value length (two bytes, big-endian, up to
 * 16383) and the value; names and values point into the input (not
 * terminated), so a read past a field is a crash under ASan.
 *
 * Whatever the fields: the verdict is one of the four and the same when
 * asked again and for the same fields fed again; its message is
 * terminated; an accepted call has a path that is exactly "/" service "/"
 * method (neither empty, of letters, digits, '_' and the service's dots), a
 * gRPC content type, metadata whose names are gRPC's and whose
 * text values are printable, and stayed within the limits; a reset names
 * the H3/H2 codes; an HTTP error is 400, 405 or 415; a refusal has a
 * status other than OK; and the answer of every refusal and HTTP error can
 * be built, its grpc-message reading back as the verdict's message.
 */
#include "fuzz_check.h"
#include "grpc/nana_grpc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Feeds the fields of |p| / |n| to a fresh head; returns its verdict. */
static nana_grpc_verdict_kind feed(nana_grpc_head *h, nana_arena *a, const uint8_t *p, size_t n,
                                   nana_grpc_http http, const nana_grpc_limits *lim)
{
    nana_grpc_head_init(h, http, lim, a);
    size_t at = 0;
    while (n - at >= 1) {
        size_t nl = p[at++] & 63;
        if (n - at < nl + 2) break;
        const char *name = (const char *)p + at;
        at += nl;
        size_t vl = ((size_t)p[at] << 8 | p[at + 1]) & 0x3fff;
        at += 2;
        if (n - at < vl) vl = n - at;
        const char *value = (const char *)p + at;
        at += vl;
        int rc = nana_grpc_head_add(h, name, nl, value, vl);
        CHECK(rc == 0 || rc == NANA_ERR_INVALID || rc == NANA_ERR_TOOBIG || rc == NANA_ERR_NOMEM);
    }
    return nana_grpc_head_finish(h);
}

static bool printable(const uint8_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] < 0x20 || v[i] > 0x7e) return false;
    return true;
}

/* Letters, digits, '_' (and '.' when |dots|): what a service or method
 * name may hold. */
static bool word(const char *s, size_t n, bool dots)
{
    if (n == 0) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  c == '_' || (dots && c == '.');
        if (!ok) return false;
    }
    return true;
}

static void check_accepted(const nana_grpc_head *h)
{
    CHECK(h->path && h->service && h->method);
    CHECK(h->path_len == 1 + h->service_len + 1 + h->method_len);
    CHECK(h->path[0] == '/' && h->path[1 + h->service_len] == '/');
    CHECK(memcmp(h->path + 1, h->service, h->service_len) == 0);
    CHECK(h->service[h->service_len] == 0);
    CHECK(h->method == h->path + 2 + h->service_len);
    CHECK(word(h->service, h->service_len, true) && word(h->method, h->method_len, false));
    CHECK(h->ctype == NANA_GRPC_CT_GRPC || h->ctype == NANA_GRPC_CT_GRPC_PROTO);
    CHECK(h->method_post && h->scheme_ok && h->ctype_ok && h->encoding_ok && !h->over_limit);
    CHECK(h->timeout_ns >= -1);
    CHECK(h->fields <= h->lim.max_header_fields && h->bytes <= h->lim.max_header_bytes);
    for (size_t i = 0; i < h->meta_count; i++) {
        const nana_grpc_meta *m = &h->meta[i];
        CHECK(nana_grpc_meta_name_ok(m->name, m->name_len));
        CHECK(m->name[m->name_len] == 0);
        CHECK(m->binary == (m->name_len > 4 && memcmp(m->name + m->name_len - 4, "-bin", 4) == 0));
        if (!m->binary) CHECK(printable(m->value, m->value_len));
        CHECK(m->value[m->value_len] == 0);
        CHECK(nana_grpc_head_meta(h, m->name, 0) != NULL);
    }
}

/* Builds the answer to a refusal or HTTP error and checks it. */
static void check_answer(const nana_grpc_head *h, nana_arena *a)
{
    nana_grpc_field fv[8];
    nana_grpc_fields f;
    nana_grpc_fields_init(&f, fv, 8, a);
    CHECK(nana_grpc_resp_verdict(&f, &h->verdict, h->ctype) == 0);
    CHECK(f.n >= 1 && strcmp(fv[0].name, ":status") == 0);
    if (h->verdict.kind == NANA_GRPC_HTTP_ERROR) {
        CHECK(f.n == (h->verdict.http_status == 405 ? 2u : 1u));
        return;
    }
    CHECK(f.n >= 3 && strcmp(fv[2].name, "grpc-status") == 0);
    for (size_t i = 0; i < f.n; i++) {
        if (strcmp(fv[i].name, "grpc-message") != 0) continue;
        CHECK(printable((const uint8_t *)fv[i].value, fv[i].value_len));
        char back[NANA_GRPC_MESSAGE_MAX * 3 + 1];
        size_t n = nana_grpc_pct_decode(fv[i].value, fv[i].value_len, back);
        CHECK(n == strlen(h->verdict.error.message));
        CHECK(memcmp(back, h->verdict.error.message, n) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    nana_grpc_http http = data[0] & 1 ? NANA_GRPC_HTTP3 : NANA_GRPC_HTTP2;
    nana_grpc_limits lim;
    nana_grpc_limits_default(&lim);
    if (data[0] & 2) {
        lim.max_header_fields = 8;
        lim.max_header_bytes = 256;
    }
    nana_arena a = NANA_ARENA_INIT, b = NANA_ARENA_INIT;
    nana_grpc_head h, h2;
    nana_grpc_verdict_kind k = feed(&h, &a, data + 1, size - 1, http, &lim);
    CHECK(k == h.verdict.kind);
    CHECK(nana_grpc_head_finish(&h) == k);
    CHECK(memchr(h.verdict.error.message, 0, sizeof(h.verdict.error.message)) != NULL);
    switch (k) {
    case NANA_GRPC_ACCEPT:
        check_accepted(&h);
        break;
    case NANA_GRPC_RESET:
        CHECK(h.verdict.reset_h3 == NANA_GRPC_H3_MESSAGE_ERROR);
        CHECK(h.verdict.reset_h2 == NANA_GRPC_H2_PROTOCOL_ERROR);
        break;
    case NANA_GRPC_HTTP_ERROR:
        CHECK(h.verdict.http_status == 400 || h.verdict.http_status == 405 ||
              h.verdict.http_status == 415);
        check_answer(&h, &a);
        break;
    case NANA_GRPC_REFUSE:
        CHECK(h.verdict.error.status > NANA_GRPC_OK &&
              h.verdict.error.status < NANA_GRPC_STATUS_COUNT);
        check_answer(&h, &a);
        break;
    default:
        CHECK(!"a verdict outside the four");
    }
    /* The same fields again: the same verdict and message. */
    CHECK(feed(&h2, &b, data + 1, size - 1, http, &lim) == k);
    CHECK(strcmp(h.verdict.error.message, h2.verdict.error.message) == 0);
    CHECK(h.meta_count == h2.meta_count);
    nana_arena_free(&a);
    nana_arena_free(&b);
    return 0;
}
