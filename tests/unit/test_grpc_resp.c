/*
 * test_grpc_resp.c - the fields of gRPC responses: Response-Headers,
 * Trailers with a percent-encoded grpc-message, Trailers-Only, custom
 * metadata (base64 without padding for "-bin"), plain HTTP errors, a full
 * list, and the messages read back as a client would.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "grpc/nana_grpc.h"

#include <string.h>

static nana_arena arena;

static int teardown(void **state)
{
    (void)state;
    nana_arena_free(&arena);
    return 0;
}

/* Asserts field |i| is |name|: |value|. */
static void field_is(const nana_grpc_fields *f, size_t i, const char *name, const char *value)
{
    assert_true(i < f->n);
    assert_int_equal(f->v[i].name_len, strlen(name));
    assert_memory_equal(f->v[i].name, name, strlen(name));
    if (f->v[i].value_len != strlen(value) || memcmp(f->v[i].value, value, strlen(value)) != 0)
        fail_msg("%s is '%.*s', wanted '%s'", name, (int)f->v[i].value_len, f->v[i].value, value);
}

static void test_headers(void **state)
{
    (void)state;
    nana_grpc_field v[4];
    nana_grpc_fields f;
    nana_grpc_fields_init(&f, v, 4, &arena);
    assert_int_equal(nana_grpc_resp_headers(&f, NANA_GRPC_CT_GRPC), 0);
    assert_int_equal(f.n, 2);
    field_is(&f, 0, ":status", "200");
    field_is(&f, 1, "content-type", "application/grpc");
    nana_grpc_fields_init(&f, v, 4, &arena);
    assert_int_equal(nana_grpc_resp_headers(&f, NANA_GRPC_CT_GRPC_PROTO), 0);
    field_is(&f, 1, "content-type", "application/grpc+proto");
}

static void test_trailers(void **state)
{
    (void)state;
    nana_grpc_field v[4];
    nana_grpc_fields f;
    nana_grpc_fields_init(&f, v, 4, &arena);
    assert_int_equal(nana_grpc_resp_trailers(&f, NANA_GRPC_OK, NULL), 0);
    assert_int_equal(f.n, 1); /* OK is sent too, without a message */
    field_is(&f, 0, "grpc-status", "0");
    nana_grpc_fields_init(&f, v, 4, &arena);
    assert_int_equal(nana_grpc_resp_trailers(&f, NANA_GRPC_OK, ""), 0);
    assert_int_equal(f.n, 1);
    nana_grpc_fields_init(&f, v, 4, &arena);
    const char *msg = "key 'caf\xc3\xa9' not found: 100%\n";
    assert_int_equal(nana_grpc_resp_trailers(&f, NANA_GRPC_NOT_FOUND, msg), 0);
    assert_int_equal(f.n, 2);
    field_is(&f, 0, "grpc-status", "5");
    field_is(&f, 1, "grpc-message", "key 'caf%C3%A9' not found: 100%25%0A");
    /* A client reads it back. */
    char back[64];
    nana_grpc_pct_decode(v[1].value, v[1].value_len, back);
    assert_string_equal(back, msg);
    nana_grpc_fields_init(&f, v, 4, &arena);
    assert_int_equal(nana_grpc_resp_trailers(&f, NANA_GRPC_UNAUTHENTICATED, "x"), 0);
    field_is(&f, 0, "grpc-status", "16");
    nana_grpc_fields_init(&f, v, 4, &arena);
    assert_int_equal(nana_grpc_resp_trailers(&f, (nana_grpc_status)17, "x"), NANA_ERR_INVALID);
    assert_int_equal(nana_grpc_resp_trailers(&f, (nana_grpc_status)-1, "x"), NANA_ERR_INVALID);
}

static void test_trailers_only(void **state)
{
    (void)state;
    nana_grpc_field v[8];
    nana_grpc_fields f;
    nana_grpc_fields_init(&f, v, 8, &arena);
    assert_int_equal(nana_grpc_resp_trailers_only(&f, NANA_GRPC_CT_GRPC_PROTO,
                                                  NANA_GRPC_UNIMPLEMENTED, "no method 'X'"),
                     0);
    assert_int_equal(f.n, 4);
    field_is(&f, 0, ":status", "200");
    field_is(&f, 1, "content-type", "application/grpc+proto");
    field_is(&f, 2, "grpc-status", "12");
    field_is(&f, 3, "grpc-message", "no method 'X'");
    /* A refusal's verdict. */
    nana_grpc_verdict vd = {.kind = NANA_GRPC_REFUSE};
    nana_grpc_error_set(&vd.error, NANA_GRPC_RESOURCE_EXHAUSTED, "too big");
    nana_grpc_fields_init(&f, v, 8, &arena);
    assert_int_equal(nana_grpc_resp_verdict(&f, &vd, NANA_GRPC_CT_GRPC), 0);
    assert_int_equal(f.n, 4);
    field_is(&f, 2, "grpc-status", "8");
    field_is(&f, 3, "grpc-message", "too big");
    vd.kind = NANA_GRPC_ACCEPT;
    assert_int_equal(nana_grpc_resp_verdict(&f, &vd, NANA_GRPC_CT_GRPC), NANA_ERR_INVALID);
}

static void test_metadata(void **state)
{
    (void)state;
    nana_grpc_field v[8];
    nana_grpc_fields f;
    nana_grpc_fields_init(&f, v, 8, &arena);
    assert_int_equal(nana_grpc_resp_meta(&f, "x-request-id", "abc 123", 7), 0);
    field_is(&f, 0, "x-request-id", "abc 123");
    assert_int_equal(nana_grpc_resp_meta(&f, "x-trace-bin", "\xff\x00\x01\x02", 4), 0);
    field_is(&f, 1, "x-trace-bin", "/wABAg"); /* unpadded */
    assert_int_equal(nana_grpc_resp_meta(&f, "x-empty-bin", "", 0), 0);
    field_is(&f, 2, "x-empty-bin", "");
    /* The value is copied. */
    char val[4] = "abc";
    assert_int_equal(nana_grpc_resp_meta(&f, "x-copy", val, 3), 0);
    val[0] = 'Z';
    field_is(&f, 3, "x-copy", "abc");
    /* Refused: names outside gRPC's grammar or reserved, bytes an ASCII
     * value cannot hold. */
    size_t before = f.n;
    assert_int_equal(nana_grpc_resp_meta(&f, "X-Upper", "v", 1), NANA_ERR_INVALID);
    assert_int_equal(nana_grpc_resp_meta(&f, "grpc-status", "0", 1), NANA_ERR_INVALID);
    assert_int_equal(nana_grpc_resp_meta(&f, "", "v", 1), NANA_ERR_INVALID);
    assert_int_equal(nana_grpc_resp_meta(&f, ":status", "v", 1), NANA_ERR_INVALID);
    assert_int_equal(nana_grpc_resp_meta(&f, "x-a", "a\nb", 3), NANA_ERR_INVALID);
    assert_int_equal(nana_grpc_resp_meta(&f, "x-a", "caf\xc3\xa9", 5), NANA_ERR_INVALID);
    assert_int_equal(f.n, before);
}

static void test_http_errors(void **state)
{
    (void)state;
    nana_grpc_field v[4];
    nana_grpc_fields f;
    nana_grpc_fields_init(&f, v, 4, &arena);
    assert_int_equal(nana_grpc_resp_http_error(&f, 405), 0);
    assert_int_equal(f.n, 2);
    field_is(&f, 0, ":status", "405");
    field_is(&f, 1, "allow", "POST");
    nana_grpc_fields_init(&f, v, 4, &arena);
    assert_int_equal(nana_grpc_resp_http_error(&f, 415), 0);
    assert_int_equal(f.n, 1);
    field_is(&f, 0, ":status", "415");
    nana_grpc_fields_init(&f, v, 4, &arena);
    assert_int_equal(nana_grpc_resp_http_error(&f, 99), NANA_ERR_INVALID);
    assert_int_equal(nana_grpc_resp_http_error(&f, 600), NANA_ERR_INVALID);
    assert_int_equal(f.n, 0);
}

static void test_full_list(void **state)
{
    (void)state;
    nana_grpc_field v[3];
    nana_grpc_fields f;
    nana_grpc_fields_init(&f, v, 3, &arena);
    assert_int_equal(nana_grpc_resp_trailers_only(&f, NANA_GRPC_CT_GRPC, NANA_GRPC_INTERNAL, "x"),
                     NANA_ERR_TOOBIG);
    assert_int_equal(f.n, 3);
    assert_int_equal(nana_grpc_resp_meta(&f, "x-a", "b", 1), NANA_ERR_TOOBIG);
    nana_grpc_fields_init(&f, v, 1, &arena);
    assert_int_equal(nana_grpc_resp_http_error(&f, 405), NANA_ERR_TOOBIG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_headers, teardown),
        cmocka_unit_test_teardown(test_trailers, teardown),
        cmocka_unit_test_teardown(test_trailers_only, teardown),
        cmocka_unit_test_teardown(test_metadata, teardown),
        cmocka_unit_test_teardown(test_http_errors, teardown),
        cmocka_unit_test_teardown(test_full_list, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
