/*
 * test_grpc_head.c - the request head of the gRPC layer, rule by rule: the
 * HTTP rules that make a request malformed (reset), the plain HTTP answers
 * to requests that are not gRPC (405, 400, 415), gRPC's refusals
 * (Trailers-Only), grpc-timeout and grpc-encoding, custom metadata ("-bin"
 * decoded, reserved names, values gRPC does not allow), the header limits,
 * which verdict wins, and running out of memory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "grpc/nana_grpc.h"
#include "util/nana_mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A request header under construction: name/value pairs, in order. */
typedef struct req {
    const char *name[128];
    const char *value[128];
    size_t vlen[128]; /* 0: strlen(value) */
    size_t n;
} req;

/* A good gRPC request: every check passes under HTTP/2 and HTTP/3. */
static void req_base(req *r)
{
    static const char *base[][2] = {
        {":method", "POST"},
        {":scheme", "https"},
        {":path", "/nanasqlite.v1.NanaSQLite/Get"},
        {":authority", "db.example:4433"},
        {"content-type", "application/grpc"},
        {"te", "trailers"},
    };
    memset(r, 0, sizeof(*r));
    for (size_t i = 0; i < sizeof(base) / sizeof(base[0]); i++) {
        r->name[i] = base[i][0];
        r->value[i] = base[i][1];
    }
    r->n = sizeof(base) / sizeof(base[0]);
}

static void req_add(req *r, const char *name, const char *value)
{
    r->name[r->n] = name;
    r->value[r->n] = value;
    r->vlen[r->n] = 0;
    r->n++;
}

/* Sets the first field named |name| to |value|, or removes it (NULL). */
static void req_set(req *r, const char *name, const char *value)
{
    for (size_t i = 0; i < r->n; i++) {
        if (strcmp(r->name[i], name) != 0) continue;
        if (value) {
            r->value[i] = value;
            return;
        }
        memmove(&r->name[i], &r->name[i + 1], (r->n - i - 1) * sizeof(r->name[0]));
        memmove(&r->value[i], &r->value[i + 1], (r->n - i - 1) * sizeof(r->value[0]));
        memmove(&r->vlen[i], &r->vlen[i + 1], (r->n - i - 1) * sizeof(r->vlen[0]));
        r->n--;
        return;
    }
    fail_msg("no field %s", name);
}

static nana_arena arena;

static int teardown(void **state)
{
    (void)state;
    nana_arena_free(&arena);
    nana_mem_fail_at(0, false);
    return 0;
}

/* Feeds |r| to |h| and finishes it. */
static nana_grpc_verdict_kind run_lim(nana_grpc_head *h, nana_grpc_http http, const req *r,
                                      const nana_grpc_limits *lim)
{
    nana_arena_free(&arena);
    nana_grpc_head_init(h, http, lim, &arena);
    for (size_t i = 0; i < r->n; i++) {
        size_t vl = r->vlen[i] ? r->vlen[i] : strlen(r->value[i]);
        nana_grpc_head_add(h, r->name[i], strlen(r->name[i]), r->value[i], vl);
    }
    return nana_grpc_head_finish(h);
}

static nana_grpc_verdict_kind run(nana_grpc_head *h, nana_grpc_http http, const req *r)
{
    return run_lim(h, http, r, NULL);
}

/* Asserts the verdict of |r| under both HTTP versions. */
static void both(const req *r, nana_grpc_verdict_kind kind)
{
    nana_grpc_head h;
    if (run(&h, NANA_GRPC_HTTP2, r) != kind)
        fail_msg("HTTP/2: verdict %d (%s), wanted %d", h.verdict.kind, h.verdict.error.message,
                 kind);
    if (run(&h, NANA_GRPC_HTTP3, r) != kind)
        fail_msg("HTTP/3: verdict %d (%s), wanted %d", h.verdict.kind, h.verdict.error.message,
                 kind);
}

static void refused(const req *r, nana_grpc_http http, nana_grpc_status status, const char *text)
{
    nana_grpc_head h;
    assert_int_equal(run(&h, http, r), NANA_GRPC_REFUSE);
    if (h.verdict.error.status != status || !strstr(h.verdict.error.message, text))
        fail_msg("refused %s '%s', wanted %s '%s'", nana_grpc_status_name(h.verdict.error.status),
                 h.verdict.error.message, nana_grpc_status_name(status), text);
}

static void test_accept(void **state)
{
    (void)state;
    req r;
    req_base(&r);
    req_add(&r, "user-agent", "grpc-c/1.51.1 (linux; chttp2)");
    req_add(&r, "grpc-accept-encoding", "identity,deflate,gzip");
    for (int http = 2; http <= 3; http++) {
        nana_grpc_head h;
        assert_int_equal(run(&h, (nana_grpc_http)http, &r), NANA_GRPC_ACCEPT);
        assert_string_equal(h.path, "/nanasqlite.v1.NanaSQLite/Get");
        assert_int_equal(h.path_len, 29);
        assert_string_equal(h.service, "nanasqlite.v1.NanaSQLite");
        assert_int_equal(h.service_len, 24);
        assert_int_equal(h.method_len, 3);
        assert_memory_equal(h.method, "Get", 3);
        assert_string_equal(h.authority, "db.example:4433");
        assert_true(h.https);
        assert_int_equal(h.ctype, NANA_GRPC_CT_GRPC);
        assert_true(h.timeout_ns == -1);
        assert_string_equal(h.user_agent, "grpc-c/1.51.1 (linux; chttp2)");
        assert_string_equal(h.accept_encoding, "identity,deflate,gzip");
        assert_int_equal(h.meta_count, 0);
        assert_int_equal(h.fields, 8);
    }
    /* No package, plain http. */
    req_set(&r, ":path", "/Svc/M_2");
    req_set(&r, ":scheme", "http");
    nana_grpc_head h;
    assert_int_equal(run(&h, NANA_GRPC_HTTP3, &r), NANA_GRPC_ACCEPT);
    assert_string_equal(h.service, "Svc");
    assert_false(h.https);
    /* Finishing again gives the same verdict; a field after it changes nothing. */
    assert_int_equal(nana_grpc_head_finish(&h), NANA_GRPC_ACCEPT);
    assert_int_equal(nana_grpc_head_add(&h, ":method", 7, "GET", 3), 0);
    assert_int_equal(nana_grpc_head_finish(&h), NANA_GRPC_ACCEPT);
}

static void test_method_not_post(void **state)
{
    (void)state;
    const char *methods[] = {"GET", "PUT", "post", "HEAD", "OPTIONS", "CONNECT", ""};
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        req r;
        req_base(&r);
        req_set(&r, ":method", methods[i]);
        nana_grpc_head h;
        for (int http = 2; http <= 3; http++) {
            assert_int_equal(run(&h, (nana_grpc_http)http, &r), NANA_GRPC_HTTP_ERROR);
            assert_int_equal(h.verdict.http_status, 405);
        }
        /* The answer: 405 and allow: POST, no gRPC status. */
        nana_grpc_field fv[8];
        nana_grpc_fields f;
        nana_grpc_fields_init(&f, fv, 8, &arena);
        assert_int_equal(nana_grpc_resp_verdict(&f, &h.verdict, NANA_GRPC_CT_GRPC), 0);
        assert_int_equal(f.n, 2);
        assert_string_equal(fv[0].name, ":status");
        assert_memory_equal(fv[0].value, "405", 3);
        assert_string_equal(fv[1].name, "allow");
        assert_memory_equal(fv[1].value, "POST", 4);
    }
    /* CONNECT needs no :scheme or :path, and is still 405. */
    req r;
    memset(&r, 0, sizeof(r));
    req_add(&r, ":method", "CONNECT");
    req_add(&r, ":authority", "x:1");
    both(&r, NANA_GRPC_HTTP_ERROR);
}

static void test_missing_pseudo_headers(void **state)
{
    (void)state;
    const char *required[] = {":method", ":scheme", ":path"};
    for (size_t i = 0; i < 3; i++) {
        req r;
        req_base(&r);
        req_set(&r, required[i], NULL);
        both(&r, NANA_GRPC_RESET);
        nana_grpc_head h;
        run(&h, NANA_GRPC_HTTP3, &r);
        assert_int_equal(h.verdict.reset_h3, NANA_GRPC_H3_MESSAGE_ERROR);
        assert_int_equal(h.verdict.reset_h2, NANA_GRPC_H2_PROTOCOL_ERROR);
        assert_non_null(strstr(h.verdict.error.message, required[i]));
        /* A reset has no answer to send. */
        nana_grpc_field fv[8];
        nana_grpc_fields f;
        nana_grpc_fields_init(&f, fv, 8, &arena);
        assert_int_equal(nana_grpc_resp_verdict(&f, &h.verdict, NANA_GRPC_CT_GRPC),
                         NANA_ERR_INVALID);
    }
    req r;
    req_base(&r);
    req_set(&r, ":path", "");
    both(&r, NANA_GRPC_RESET);
    req_base(&r);
    req_set(&r, ":authority", "");
    both(&r, NANA_GRPC_RESET);
}

static void test_scheme(void **state)
{
    (void)state;
    const char *bad[] = {"ftp", "HTTPS", "", "https:"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        req r;
        req_base(&r);
        req_set(&r, ":scheme", bad[i]);
        both(&r, NANA_GRPC_HTTP_ERROR);
        nana_grpc_head h;
        run(&h, NANA_GRPC_HTTP2, &r);
        assert_int_equal(h.verdict.http_status, 400);
    }
}

static void test_authority_rules(void **state)
{
    (void)state;
    nana_grpc_head h;
    req r;
    /* HTTP/3: :authority or host is required for http and https. */
    req_base(&r);
    req_set(&r, ":authority", NULL);
    assert_int_equal(run(&h, NANA_GRPC_HTTP3, &r), NANA_GRPC_RESET);
    assert_non_null(strstr(h.verdict.error.message, ":authority"));
    /* HTTP/2: gRPC marks it optional. */
    assert_int_equal(run(&h, NANA_GRPC_HTTP2, &r), NANA_GRPC_ACCEPT);
    assert_null(h.authority);
    /* host alone stands for it. */
    req_add(&r, "host", "db.example");
    assert_int_equal(run(&h, NANA_GRPC_HTTP3, &r), NANA_GRPC_ACCEPT);
    assert_string_equal(h.authority, "db.example");
    /* Both: they must agree. */
    req_base(&r);
    req_add(&r, "host", "db.example:4433");
    assert_int_equal(run(&h, NANA_GRPC_HTTP3, &r), NANA_GRPC_ACCEPT);
    req_base(&r);
    req_add(&r, "host", "other.example");
    both(&r, NANA_GRPC_RESET);
    req_base(&r);
    req_add(&r, "host", "");
    both(&r, NANA_GRPC_RESET);
    req_base(&r);
    req_add(&r, "host", "a");
    req_add(&r, "host", "a");
    both(&r, NANA_GRPC_RESET);
}

static void test_pseudo_header_order_and_names(void **state)
{
    (void)state;
    req r;
    /* A pseudo-header after a regular field. */
    req_base(&r);
    req_set(&r, ":authority", NULL);
    req_add(&r, ":authority", "db.example");
    both(&r, NANA_GRPC_RESET);
    /* Unknown ones and a response's. */
    const char *bad[] = {":status", ":protocol", ":foo", ":"};
    for (size_t i = 0; i < 4; i++) {
        req_base(&r);
        r.name[r.n] = bad[i];
        r.value[r.n] = "x";
        memmove(&r.name[1], &r.name[0], r.n * sizeof(r.name[0]));
        memmove(&r.value[1], &r.value[0], r.n * sizeof(r.value[0]));
        r.name[0] = bad[i];
        r.value[0] = "x";
        r.n++;
        both(&r, NANA_GRPC_RESET);
    }
    /* Twice. */
    req_base(&r);
    memmove(&r.name[1], &r.name[0], r.n * sizeof(r.name[0]));
    memmove(&r.value[1], &r.value[0], r.n * sizeof(r.value[0]));
    r.name[0] = ":path";
    r.value[0] = "/a.B/C";
    r.n++;
    both(&r, NANA_GRPC_RESET);
}

static void test_field_names_and_values(void **state)
{
    (void)state;
    const char *bad_names[] = {"X-Upper", "sp ace", "", "co:lon", "tab\t", "del\x7f", "\xc3\xa9"};
    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
        req r;
        req_base(&r);
        req_add(&r, bad_names[i], "v");
        both(&r, NANA_GRPC_RESET);
    }
    const char *bad_values[] = {"a\rb", "a\nb", "\r\n"};
    for (size_t i = 0; i < 3; i++) {
        req r;
        req_base(&r);
        req_add(&r, "x-a", bad_values[i]);
        both(&r, NANA_GRPC_RESET);
    }
    req r;
    req_base(&r);
    req_add(&r, "x-a", "a\0b");
    r.vlen[r.n - 1] = 3;
    both(&r, NANA_GRPC_RESET);
    /* Connection-specific fields. */
    const char *conn[] = {"connection", "keep-alive", "proxy-connection", "transfer-encoding",
                          "upgrade"};
    for (size_t i = 0; i < 5; i++) {
        req_base(&r);
        req_add(&r, conn[i], "close");
        both(&r, NANA_GRPC_RESET);
    }
}

static void test_content_type(void **state)
{
    (void)state;
    struct {
        const char *ct;
        bool ok;
        nana_grpc_ctype kind;
    } cases[] = {
        {"application/grpc", true, NANA_GRPC_CT_GRPC},
        {"application/grpc+proto", true, NANA_GRPC_CT_GRPC_PROTO},
        {"Application/GRPC+Proto", true, NANA_GRPC_CT_GRPC_PROTO},
        {"application/grpc; charset=utf-8", true, NANA_GRPC_CT_GRPC},
        {"application/grpc+proto ;x=y", true, NANA_GRPC_CT_GRPC_PROTO},
        {"application/grpc+json", false, 0},
        {"application/grpc-web", false, 0},
        {"application/grpcx", false, 0},
        {"application/json", false, 0},
        {"text/plain", false, 0},
        {"", false, 0},
        {" application/grpc", false, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        req r;
        req_base(&r);
        req_set(&r, "content-type", cases[i].ct);
        nana_grpc_head h;
        for (int http = 2; http <= 3; http++) {
            nana_grpc_verdict_kind k = run(&h, (nana_grpc_http)http, &r);
            if (!cases[i].ok) {
                if (k != NANA_GRPC_HTTP_ERROR || h.verdict.http_status != 415)
                    fail_msg("'%s' got verdict %d", cases[i].ct, k);
                /* 415 alone: no grpc-status. */
                nana_grpc_field fv[4];
                nana_grpc_fields f;
                nana_grpc_fields_init(&f, fv, 4, &arena);
                assert_int_equal(nana_grpc_resp_verdict(&f, &h.verdict, h.ctype), 0);
                assert_int_equal(f.n, 1);
                assert_memory_equal(fv[0].value, "415", 3);
            } else {
                if (k != NANA_GRPC_ACCEPT) fail_msg("'%s' refused", cases[i].ct);
                assert_int_equal(h.ctype, cases[i].kind);
            }
        }
    }
    req r;
    req_base(&r);
    req_set(&r, "content-type", NULL);
    both(&r, NANA_GRPC_HTTP_ERROR);
    req_base(&r);
    req_add(&r, "content-type", "application/grpc");
    both(&r, NANA_GRPC_HTTP_ERROR); /* twice is none */
}

static void test_te(void **state)
{
    (void)state;
    req r;
    req_base(&r);
    req_set(&r, "te", NULL);
    /* HTTP/2 requires it; HTTP/3 does not. */
    refused(&r, NANA_GRPC_HTTP2, NANA_GRPC_INTERNAL, "te: trailers");
    nana_grpc_head h;
    assert_int_equal(run(&h, NANA_GRPC_HTTP3, &r), NANA_GRPC_ACCEPT);
    /* Any other value is malformed in both. */
    const char *bad[] = {"gzip", "trailers, deflate", "", "chunked"};
    for (size_t i = 0; i < 4; i++) {
        req_base(&r);
        req_set(&r, "te", bad[i]);
        both(&r, NANA_GRPC_RESET);
    }
    req_base(&r);
    req_set(&r, "te", "Trailers");
    both(&r, NANA_GRPC_ACCEPT);
}

static void test_path_forms(void **state)
{
    (void)state;
    const char *bad[] = {"/svc",   "/a/b/c",   "//m", "/svc/",    "/a.B/C?x=1", "a.B/C", "/a.B/C.D",
                         "/a B/C", "/a.B/C#f", "*",   "/a.B/%43", "/a-b.C/D",   "/"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        req r;
        req_base(&r);
        req_set(&r, ":path", bad[i]);
        refused(&r, NANA_GRPC_HTTP3, NANA_GRPC_UNIMPLEMENTED, "malformed method path");
        refused(&r, NANA_GRPC_HTTP2, NANA_GRPC_UNIMPLEMENTED, "malformed method path");
    }
    const char *good[] = {"/a/b", "/grpc.health.v1.Health/Check", "/x_1.Y_2/Z_3"};
    for (size_t i = 0; i < 3; i++) {
        req r;
        req_base(&r);
        req_set(&r, ":path", good[i]);
        both(&r, NANA_GRPC_ACCEPT);
    }
}

static void test_timeout_header(void **state)
{
    (void)state;
    struct {
        const char *v;
        int64_t ns;
    } good[] = {
        {"1H", 3600000000000LL},
        {"1M", 60000000000LL},
        {"1S", 1000000000LL},
        {"1m", 1000000LL},
        {"1u", 1000LL},
        {"1n", 1LL},
        {"0n", 0},
        {"99999999H", INT64_MAX},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        req r;
        req_base(&r);
        req_add(&r, "grpc-timeout", good[i].v);
        nana_grpc_head h;
        assert_int_equal(run(&h, NANA_GRPC_HTTP3, &r), NANA_GRPC_ACCEPT);
        assert_true(h.timeout_ns == good[i].ns);
    }
    const char *bad[] = {"", "1", "S", "123456789S", "1s", "1.0S", "-1S", "1 S"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        req r;
        req_base(&r);
        req_add(&r, "grpc-timeout", bad[i]);
        refused(&r, NANA_GRPC_HTTP3, NANA_GRPC_INTERNAL, "malformed grpc-timeout");
    }
    req r;
    req_base(&r);
    req_add(&r, "grpc-timeout", "1S");
    req_add(&r, "grpc-timeout", "2S");
    refused(&r, NANA_GRPC_HTTP3, NANA_GRPC_INTERNAL, "grpc-timeout given twice");
}

static void test_encoding(void **state)
{
    (void)state;
    req r;
    req_base(&r);
    req_add(&r, "grpc-encoding", "identity");
    both(&r, NANA_GRPC_ACCEPT);
    const char *other[] = {"gzip", "deflate", "snappy", "Identity", ""};
    for (size_t i = 0; i < 5; i++) {
        req_base(&r);
        req_add(&r, "grpc-encoding", other[i]);
        refused(&r, NANA_GRPC_HTTP3, NANA_GRPC_UNIMPLEMENTED, "accepts identity only");
        nana_grpc_head h;
        run(&h, NANA_GRPC_HTTP3, &r);
        assert_true(h.verdict.accept_encoding);
        assert_false(h.encoding_ok);
        /* Trailers-Only with grpc-accept-encoding: identity. */
        nana_grpc_field fv[8];
        nana_grpc_fields f;
        nana_grpc_fields_init(&f, fv, 8, &arena);
        assert_int_equal(nana_grpc_resp_verdict(&f, &h.verdict, h.ctype), 0);
        assert_int_equal(f.n, 5);
        assert_string_equal(fv[0].name, ":status");
        assert_string_equal(fv[1].name, "content-type");
        assert_string_equal(fv[2].name, "grpc-status");
        assert_memory_equal(fv[2].value, "12", 2);
        assert_string_equal(fv[3].name, "grpc-message");
        assert_string_equal(fv[4].name, "grpc-accept-encoding");
        assert_memory_equal(fv[4].value, "identity", 8);
    }
    req_base(&r);
    req_add(&r, "grpc-encoding", "identity");
    req_add(&r, "grpc-encoding", "identity");
    refused(&r, NANA_GRPC_HTTP3, NANA_GRPC_INTERNAL, "given twice");
}

static void test_metadata(void **state)
{
    (void)state;
    req r;
    req_base(&r);
    req_add(&r, "authorization", "Bearer abc.def");
    req_add(&r, "x-nana-signature", "  sig-1  ");
    req_add(&r, "x-trace-bin", "AAEC");    /* 00 01 02 */
    req_add(&r, "x-trace-bin", "/w==");    /* ff, padded */
    req_add(&r, "x-two-bin", "Zm8, Zm9v"); /* joined values */
    req_add(&r, "x-nana-signature", "sig-2");
    req_add(&r, "grpc-reserved-thing", "dropped");
    req_add(&r, "grpc-message-type", "nanasqlite.v1.GetRequest");
    req_add(&r, "content-length", "12");
    req_add(&r, "x!bang", "not a gRPC name");
    req_add(&r, "x-high", "caf\xc3\xa9");
    req_add(&r, "x-tab", "a\tb");
    req_add(&r, "x.dot_under-score", "");
    nana_grpc_head h;
    assert_int_equal(run(&h, NANA_GRPC_HTTP3, &r), NANA_GRPC_ACCEPT);
    const nana_grpc_meta *m = nana_grpc_head_meta(&h, "authorization", 0);
    assert_non_null(m);
    assert_string_equal((const char *)m->value, "Bearer abc.def");
    assert_false(m->binary);
    m = nana_grpc_head_meta(&h, "x-nana-signature", 0);
    assert_string_equal((const char *)m->value, "sig-1"); /* trimmed */
    m = nana_grpc_head_meta(&h, "x-nana-signature", 1);
    assert_string_equal((const char *)m->value, "sig-2");
    assert_null(nana_grpc_head_meta(&h, "x-nana-signature", 2));
    m = nana_grpc_head_meta(&h, "x-trace-bin", 0);
    assert_true(m->binary);
    assert_int_equal(m->value_len, 3);
    assert_memory_equal(m->value, "\0\1\2", 3);
    m = nana_grpc_head_meta(&h, "x-trace-bin", 1);
    assert_int_equal(m->value_len, 1);
    assert_int_equal(m->value[0], 0xff);
    m = nana_grpc_head_meta(&h, "x-two-bin", 0);
    assert_int_equal(m->value_len, 2);
    assert_memory_equal(m->value, "fo", 2);
    m = nana_grpc_head_meta(&h, "x-two-bin", 1);
    assert_int_equal(m->value_len, 3);
    assert_memory_equal(m->value, "foo", 3);
    m = nana_grpc_head_meta(&h, "x.dot_under-score", 0);
    assert_non_null(m);
    assert_int_equal(m->value_len, 0);
    /* Reserved, framing, names outside gRPC's grammar, values outside
     * printable ASCII: not metadata, and no refusal. */
    assert_null(nana_grpc_head_meta(&h, "grpc-reserved-thing", 0));
    assert_null(nana_grpc_head_meta(&h, "grpc-message-type", 0));
    assert_null(nana_grpc_head_meta(&h, "content-length", 0));
    assert_null(nana_grpc_head_meta(&h, "x!bang", 0));
    assert_null(nana_grpc_head_meta(&h, "x-high", 0));
    assert_null(nana_grpc_head_meta(&h, "x-tab", 0));
    assert_null(nana_grpc_head_meta(&h, ":path", 0));
    assert_null(nana_grpc_head_meta(&h, "te", 0));
    assert_null(nana_grpc_head_meta(&h, "content-type", 0));
    assert_int_equal(h.meta_count, 8);
    /* Many entries: the array grows in the arena. */
    req_base(&r);
    char names[40][8];
    for (int i = 0; i < 40; i++) {
        snprintf(names[i], sizeof(names[i]), "x-%d", i);
        req_add(&r, names[i], names[i]);
    }
    assert_int_equal(run(&h, NANA_GRPC_HTTP3, &r), NANA_GRPC_ACCEPT);
    assert_int_equal(h.meta_count, 40);
    for (int i = 0; i < 40; i++)
        assert_string_equal((const char *)nana_grpc_head_meta(&h, names[i], 0)->value, names[i]);
}

static void test_metadata_bad_base64(void **state)
{
    (void)state;
    const char *bad[] = {"!!!", "A", "AAEC,A", "Zg=,Zg", "Zm 9v"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        req r;
        req_base(&r);
        req_add(&r, "x-sig-bin", bad[i]);
        refused(&r, NANA_GRPC_HTTP3, NANA_GRPC_INTERNAL, "metadata 'x-sig-bin' is not base64");
    }
}

static void test_limits(void **state)
{
    (void)state;
    nana_grpc_limits lim;
    nana_grpc_limits_default(&lim);
    assert_int_equal(lim.max_header_bytes, 8192);
    assert_int_equal(lim.max_header_fields, 64);
    assert_int_equal(lim.max_message_bytes, 4 << 20);
    nana_grpc_head h;
    req r;
    /* Fields: 6 in the base request; 64 accepted, 65 refused. */
    static char names[70][8];
    req_base(&r);
    for (int i = 0; i < 58; i++) {
        snprintf(names[i], sizeof(names[i]), "x-%d", i);
        req_add(&r, names[i], "v");
    }
    assert_int_equal(run(&h, NANA_GRPC_HTTP3, &r), NANA_GRPC_ACCEPT);
    req_add(&r, "x-last", "v");
    refused(&r, NANA_GRPC_HTTP3, NANA_GRPC_RESOURCE_EXHAUSTED, "more than 64 fields");
    run(&h, NANA_GRPC_HTTP3, &r);
    assert_null(nana_grpc_head_meta(&h, "x-last", 0)); /* nothing kept past the limit */
    /* Bytes: name + value + 32 a field, 8192 accepted, 8193 refused. */
    req_base(&r);
    size_t used = 0;
    for (size_t i = 0; i < r.n; i++)
        used += strlen(r.name[i]) + strlen(r.value[i]) + 32;
    static char big[9000];
    size_t vlen = 8192 - used - 32 - 5; /* "x-big" */
    memset(big, 'v', vlen);
    big[vlen] = 0;
    req_add(&r, "x-big", big);
    assert_int_equal(run(&h, NANA_GRPC_HTTP2, &r), NANA_GRPC_ACCEPT);
    assert_int_equal(h.bytes, 8192);
    big[vlen] = 'v';
    big[vlen + 1] = 0;
    refused(&r, NANA_GRPC_HTTP2, NANA_GRPC_RESOURCE_EXHAUSTED, "over 8192 bytes");
    /* The door's own limits. */
    lim.max_header_fields = 6;
    req_base(&r);
    assert_int_equal(run_lim(&h, NANA_GRPC_HTTP3, &r, &lim), NANA_GRPC_ACCEPT);
    req_add(&r, "x-a", "b");
    assert_int_equal(run_lim(&h, NANA_GRPC_HTTP3, &r, &lim), NANA_GRPC_REFUSE);
    assert_non_null(strstr(h.verdict.error.message, "more than 6 fields"));
    /* add says so as soon as it is known. */
    nana_arena_free(&arena);
    nana_grpc_head_init(&h, NANA_GRPC_HTTP3, &lim, &arena);
    for (int i = 0; i < 6; i++)
        assert_int_equal(nana_grpc_head_add(&h, "x-a", 3, "b", 1), 0);
    assert_int_equal(nana_grpc_head_add(&h, "x-a", 3, "b", 1), NANA_ERR_TOOBIG);
    /* A huge :path is not kept, and the verdict names the limit. */
    req_base(&r);
    static char path[10000];
    memset(path, 'a', sizeof(path) - 1);
    path[0] = '/';
    path[5000] = '/';
    req_set(&r, ":path", path);
    refused(&r, NANA_GRPC_HTTP3, NANA_GRPC_RESOURCE_EXHAUSTED, "over 8192 bytes");
    run(&h, NANA_GRPC_HTTP3, &r);
    assert_null(h.path);
}

static void test_precedence(void **state)
{
    (void)state;
    nana_grpc_head h;
    req r;
    /* Malformed beats everything, even past a limit. */
    req_base(&r);
    req_set(&r, ":method", "GET");
    req_set(&r, "content-type", "text/html");
    req_add(&r, "connection", "close");
    static char big[9000];
    memset(big, 'v', sizeof(big) - 1);
    req_add(&r, "x-big", big);
    both(&r, NANA_GRPC_RESET);
    /* 405 before 400 before 415. */
    req_base(&r);
    req_set(&r, ":method", "GET");
    req_set(&r, ":scheme", "ftp");
    req_set(&r, "content-type", "text/html");
    run(&h, NANA_GRPC_HTTP3, &r);
    assert_int_equal(h.verdict.http_status, 405);
    req_set(&r, ":method", "POST");
    run(&h, NANA_GRPC_HTTP3, &r);
    assert_int_equal(h.verdict.http_status, 400);
    req_set(&r, ":scheme", "https");
    run(&h, NANA_GRPC_HTTP3, &r);
    assert_int_equal(h.verdict.http_status, 415);
    /* 415 before any gRPC refusal. */
    req_add(&r, "x-big", big);
    req_set(&r, ":path", "/bad");
    req_add(&r, "grpc-encoding", "gzip");
    run(&h, NANA_GRPC_HTTP2, &r);
    assert_int_equal(h.verdict.http_status, 415);
    /* Then: limit, te, path, encoding, twice, timeout, metadata. */
    req_set(&r, "content-type", "application/grpc");
    req_set(&r, "te", NULL);
    refused(&r, NANA_GRPC_HTTP2, NANA_GRPC_RESOURCE_EXHAUSTED, "bytes");
    req_set(&r, "x-big", NULL);
    refused(&r, NANA_GRPC_HTTP2, NANA_GRPC_INTERNAL, "te: trailers");
    req_add(&r, "te", "trailers");
    req_add(&r, "grpc-timeout", "bad");
    req_add(&r, "x-b-bin", "!");
    refused(&r, NANA_GRPC_HTTP2, NANA_GRPC_UNIMPLEMENTED, "malformed method path");
    req_set(&r, ":path", "/a.B/C");
    refused(&r, NANA_GRPC_HTTP2, NANA_GRPC_UNIMPLEMENTED, "grpc-encoding");
    req_set(&r, "grpc-encoding", NULL);
    req_add(&r, "grpc-encoding", "identity");
    req_add(&r, "grpc-encoding", "identity");
    refused(&r, NANA_GRPC_HTTP2, NANA_GRPC_INTERNAL, "given twice");
    req_set(&r, "grpc-encoding", NULL);
    req_set(&r, "grpc-encoding", NULL);
    refused(&r, NANA_GRPC_HTTP2, NANA_GRPC_INTERNAL, "malformed grpc-timeout");
    req_set(&r, "grpc-timeout", NULL);
    refused(&r, NANA_GRPC_HTTP2, NANA_GRPC_INTERNAL, "not base64");
    req_set(&r, "x-b-bin", NULL);
    assert_int_equal(run(&h, NANA_GRPC_HTTP2, &r), NANA_GRPC_ACCEPT);
}

static void test_out_of_memory(void **state)
{
    (void)state;
    req r;
    req_base(&r);
    req_add(&r, "authorization", "Bearer x");
    /* Every allocation fails from the first: the arena has no block of its own. */
    nana_grpc_head h;
    nana_arena_free(&arena);
    nana_grpc_head_init(&h, NANA_GRPC_HTTP3, NULL, &arena);
    nana_mem_fail_at(1, true);
    int last = 0;
    for (size_t i = 0; i < r.n; i++)
        last = nana_grpc_head_add(&h, r.name[i], strlen(r.name[i]), r.value[i], strlen(r.value[i]));
    assert_int_equal(last, NANA_ERR_NOMEM);
    assert_int_equal(nana_grpc_head_finish(&h), NANA_GRPC_REFUSE);
    nana_mem_fail_at(0, false);
    assert_int_equal(h.verdict.error.status, NANA_GRPC_RESOURCE_EXHAUSTED);
    assert_non_null(strstr(h.verdict.error.message, "out of memory"));
    /* With the connection's block, nothing is allocated at all. */
    static char block[4096];
    nana_arena a2;
    nana_arena_init(&a2, block, sizeof(block));
    nana_grpc_head_init(&h, NANA_GRPC_HTTP3, NULL, &a2);
    nana_mem_fail_at(1, true);
    for (size_t i = 0; i < r.n; i++)
        assert_int_equal(
            nana_grpc_head_add(&h, r.name[i], strlen(r.name[i]), r.value[i], strlen(r.value[i])),
            0);
    assert_int_equal(nana_grpc_head_finish(&h), NANA_GRPC_ACCEPT);
    nana_mem_fail_at(0, false);
    assert_int_equal(nana_mem_failures(), 0);
    nana_arena_free(&a2);
}

static void test_meta_name_rule(void **state)
{
    (void)state;
    assert_true(nana_grpc_meta_name_ok("authorization", 13));
    assert_true(nana_grpc_meta_name_ok("x-a.b_c-0", 9));
    assert_true(nana_grpc_meta_name_ok("grpc", 4));
    assert_false(nana_grpc_meta_name_ok("grpc-status", 11));
    assert_false(nana_grpc_meta_name_ok("X-Up", 4));
    assert_false(nana_grpc_meta_name_ok("", 0));
    assert_false(nana_grpc_meta_name_ok(":path", 5));
    assert_false(nana_grpc_meta_name_ok("a b", 3));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_accept, teardown),
        cmocka_unit_test_teardown(test_method_not_post, teardown),
        cmocka_unit_test_teardown(test_missing_pseudo_headers, teardown),
        cmocka_unit_test_teardown(test_scheme, teardown),
        cmocka_unit_test_teardown(test_authority_rules, teardown),
        cmocka_unit_test_teardown(test_pseudo_header_order_and_names, teardown),
        cmocka_unit_test_teardown(test_field_names_and_values, teardown),
        cmocka_unit_test_teardown(test_content_type, teardown),
        cmocka_unit_test_teardown(test_te, teardown),
        cmocka_unit_test_teardown(test_path_forms, teardown),
        cmocka_unit_test_teardown(test_timeout_header, teardown),
        cmocka_unit_test_teardown(test_encoding, teardown),
        cmocka_unit_test_teardown(test_metadata, teardown),
        cmocka_unit_test_teardown(test_metadata_bad_base64, teardown),
        cmocka_unit_test_teardown(test_limits, teardown),
        cmocka_unit_test_teardown(test_precedence, teardown),
        cmocka_unit_test_teardown(test_out_of_memory, teardown),
        cmocka_unit_test_teardown(test_meta_name_rule, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
