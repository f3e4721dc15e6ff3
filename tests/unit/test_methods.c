/*
 * test_methods.c - the NanaSQLite door's requests and replies and the call
 * core's methods on plain bytes, without a network: replies byte-for-byte
 * equal to frames captured from the Python server, request parsing,
 * Python's argument binding errors, the policy decisions of the method
 * table, and Python's repr() of keys.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "auth/nana_keys.h"
#include "core/core_int.h"
#include "door_nana/door_int.h"
#include "store_fixture.h"
#include "test_util.h"

#include <sodium.h>

/* ---- one request, parse to reply, the way the door and the core run it --------------- */

typedef nana_request nana_call;
#define nana_call_parse     nana_request_parse
#define NANA_CALL_MAX_DEPTH NANA_REQUEST_MAX_DEPTH

/* The core's policy for a parsed request (the detail as the thread's message). */
static int nana_call_allowed(const nana_call *r, const nana_account *a, const char *dbname)
{
    nana_core_call c = {.m = r->m, .method = r->method, .mlen = r->mlen, .acct = a};
    nana_error e;
    int rc = nana_core_allowed(&c, dbname, &e);
    if (rc) nana_err_copy(e.msg);
    return rc;
}

/* The error frame of error |rc| with message |msg|. */
static int nana_reply_from_rc(nana_buf *out, int rc, const char *msg)
{
    nana_error e = {.code = rc};
    snprintf(e.msg, sizeof(e.msg), "%s", msg);
    return nana_reply_from_error(out, &e);
}

/* Binds, runs and encodes a parsed request, as a worker does. */
static int nana_call_run(const nana_call *r, const nana_run_env *env, nana_buf *out)
{
    nana_error e;
    nana_error_clear(&e);
    nana_core_result res = {0};
    nana_arena arena = NANA_ARENA_INIT;
    nana_args args;
    int rc;
    if (!r->m) {
        nana_core_call c = {.method = r->method, .mlen = r->mlen};
        rc = nana_core_allowed(&c, "db", &e);
    } else {
        nana_bind_spec spec = nana_method_spec(r->m);
        rc = nana_request_bind(r, &spec, NANA_VALUE_MAX_DEPTH, &arena, &args);
        if (rc)
            nana_error_capture(&e, rc);
        else
            rc = nana_method_run(r->m, env, &args, &arena, &res, &e);
    }
    rc = nana_reply_answer(out, &res, &e);
    nana_core_result_clear(&res);
    nana_arena_free(&arena);
    return rc;
}

/* Hex of a buffer, for comparing with the captured frames. */
static const char *hex(const nana_buf *b)
{
    return test_hex(b->data, b->len);
}

static size_t unhex(const char *h, uint8_t *out)
{
    return test_unhex(h, out);
}

/* Runs a captured request frame against the store; returns the reply's hex. */
static const char *run_frame(fixture *f, const char *req_hex)
{
    static uint8_t frame[1024];
    size_t n = unhex(req_hex, frame);
    nana_call c;
    assert_int_equal(nana_call_parse(frame + 4, n - 4, &c), 0);
    assert_int_equal(nana_call_allowed(&c, NULL, "server_db.sqlite"), 0);
    nana_run_env env = {.store = f->s, .table = f->t, .dbname = "server_db.sqlite"};
    nana_buf out;
    nana_buf_init(&out, 0);
    assert_int_equal(nana_call_run(&c, &env, &out), 0);
    const char *h = hex(&out);
    nana_buf_free(&out);
    return h;
}

static int setup(void **state)
{
    return fixture_open(state, "methods");
}

static int teardown(void **state)
{
    fixture_close(state);
    return 0;
}

/* The captured conversation, replayed: our replies are the same bytes. */
static void test_wire_samples(void **state)
{
    fixture *f = *state;
    nana_buf b;
    nana_buf_init(&b, 0);
    assert_int_equal(nana_reply_str(&b, "AUTH_OK"), 0);
    assert_string_equal(hex(&b), "00000008a7415554485f4f4b");
    nana_buf_free(&b);
    /* set hello=world -> None */
    assert_string_equal(run_frame(f, "0000002e83a66d6574686f64ab5f5f7365746974656d5f5fa461726773"
                                     "92a568656c6c6fa5776f726c64a66b776172677380"),
                        "0000001882a6737461747573a773756363657373a6726573756c74c0");
    /* get hello -> 'world' */
    assert_string_equal(run_frame(f, "0000002883a66d6574686f64ab5f5f6765746974656d5f5fa461726773"
                                     "91a568656c6c6fa66b776172677380"),
                        "0000001d82a6737461747573a773756363657373a6726573756c74a5776f726c64");
    /* get no-such-key -> KeyError "'no-such-key'" */
    assert_string_equal(run_frame(f, "0000002e83a66d6574686f64ab5f5f6765746974656d5f5fa461726773"
                                     "91ab6e6f2d737563682d6b6579a66b776172677380"),
                        "0000003883a6737461747573a56572726f72aa6572726f725f74797065a84b6579457272"
                        "6f72a76d657373616765ad276e6f2d737563682d6b657927");
    /* contains hello -> True */
    assert_string_equal(run_frame(f, "0000002983a66d6574686f64ac5f5f636f6e7461696e735f5fa4617267"
                                     "7391a568656c6c6fa66b776172677380"),
                        "0000001882a6737461747573a773756363657373a6726573756c74c3");
    /* nested value round trip */
    assert_string_equal(run_frame(f, "0000003f83a66d6574686f64ab5f5f7365746974656d5f5fa461726773"
                                     "92a66e657374656482a1619401cb4004000000000000c0c3a162a3e38182"
                                     "a66b776172677380"),
                        "0000001882a6737461747573a773756363657373a6726573756c74c0");
    assert_string_equal(run_frame(f, "0000002983a66d6574686f64ab5f5f6765746974656d5f5fa461726773"
                                     "91a66e6573746564a66b776172677380"),
                        "0000002d82a6737461747573a773756363657373a6726573756c7482a1619401cb400400"
                        "0000000000c0c3a162a3e38182");
    /* execute is refused with the Python server's exact frame */
    static uint8_t frame[256];
    size_t n =
        unhex("0000002783a66d6574686f64a765786563757465a46172677391a853454c4543542031a66b7761"
              "72677380",
              frame);
    nana_call c;
    assert_int_equal(nana_call_parse(frame + 4, n - 4, &c), 0);
    int rc = nana_call_allowed(&c, NULL, "server_db.sqlite");
    assert_int_equal(rc, NANA_ERR_PERM);
    nana_buf_init(&b, 0);
    assert_int_equal(nana_reply_from_rc(&b, rc, nana_errmsg()), 0);
    assert_string_equal(hex(&b), "0000005b83a6737461747573a56572726f72aa6572726f725f74797065af5065"
                                 "726d697373696f6e4572726f72a76d657373616765d9284d6574686f64202765"
                                 "7865637574652720697320666f7262696464656e206f7220696e76616c6964");
    nana_buf_free(&b);
    assert_true(nana_mp_is_str(frame + 4, 0, "x") == false);
    n = unhex("0000000baa415554485f5354415254", frame);
    assert_true(nana_mp_is_str(frame + 4, n - 4, "AUTH_START"));
}

/* Builds a request body from JSON text for the parse/bind tests. */
static size_t body(uint8_t *out, size_t cap, const char *json)
{
    nana_buf b;
    nana_buf_init(&b, 0);
    assert_int_equal(nana_mp_from_json_text(&b, json, strlen(json)), 0);
    assert_true(b.len <= cap);
    memcpy(out, b.data, b.len);
    size_t n = b.len;
    nana_buf_free(&b);
    return n;
}

/* The reply of running |json| as a request, decoded loosely: error_type or "ok". */
static void expect(fixture *f, const char *json, const char *want_type, const char *want_msg)
{
    uint8_t m[512];
    size_t n = body(m, sizeof(m), json);
    nana_call c;
    int rc = nana_call_parse(m, n, &c);
    nana_buf out;
    nana_buf_init(&out, 0);
    if (!rc) rc = nana_call_allowed(&c, NULL, "db");
    if (!rc) {
        nana_run_env env = {.store = f->s, .table = f->t, .dbname = "db"};
        assert_int_equal(nana_call_run(&c, &env, &out), 0);
    } else {
        assert_int_equal(nana_reply_from_rc(&out, rc, nana_errmsg()), 0);
    }
    const char *t = want_type ? want_type : "success";
    if (!memmem(out.data, out.len, t, strlen(t)) ||
        (want_msg && !memmem(out.data, out.len, want_msg, strlen(want_msg)))) {
        fprintf(stderr, "request %s\nreply   %.*s\n", json, (int)out.len - 4, out.data + 4);
        fail();
    }
    nana_buf_free(&out);
}

/* The message of running |json| past the policy (so admin methods bind too). */
static const char *bind_message(fixture *f, const char *json)
{
    static char msg[512];
    uint8_t m[512];
    size_t n = body(m, sizeof(m), json);
    nana_call c;
    assert_int_equal(nana_call_parse(m, n, &c), 0);
    nana_run_env env = {.store = f->s, .table = f->t, .dbname = "db"};
    nana_buf out;
    nana_buf_init(&out, 0);
    assert_int_equal(nana_call_run(&c, &env, &out), 0);
    nana_buf j;
    nana_buf_init(&j, 0);
    nana_mp_reader r;
    nana_mp_reader_init(&r, out.data + 4, out.len - 4);
    assert_int_equal(nana_mp_to_json(&r, &j, 8), 0);
    snprintf(msg, sizeof(msg), "%s", j.data);
    nana_buf_free(&j);
    nana_buf_free(&out);
    return msg;
}

/* Asserts the TypeError CPython raises for the same call of a bound method. */
static void type_error(fixture *f, const char *json, const char *want)
{
    char full[400];
    snprintf(full, sizeof(full),
             "{\"status\":\"error\",\"error_type\":\"TypeError\",\"message\":\"%s\"}", want);
    const char *got = bind_message(f, json);
    if (strcmp(got, full) != 0) fail_msg("request %s\ngot  %s\nwant %s", json, got, full);
}

static void test_binding(void **state)
{
    fixture *f = *state;
    /* Word for word what CPython says for NanaSQLite's bound methods: self counts. */
    type_error(f, "{\"method\":\"__getitem__\",\"args\":[]}",
               "NanaSQLite.__getitem__() missing 1 required positional argument: 'key'");
    type_error(f, "{\"method\":\"__getitem__\",\"args\":[\"a\",\"b\"]}",
               "NanaSQLite.__getitem__() takes 2 positional arguments but 3 were given");
    type_error(f, "{\"method\":\"get\",\"args\":[\"a\",\"b\",\"c\"]}",
               "NanaSQLite.get() takes from 2 to 3 positional arguments but 4 were given");
    type_error(f, "{\"method\":\"keys\",\"args\":[1]}",
               "NanaSQLite.keys() takes 1 positional argument but 2 were given");
    type_error(f, "{\"method\":\"list_indexes\",\"args\":[null,2]}",
               "NanaSQLite.list_indexes() takes from 1 to 2 positional arguments but 3 were given");
    type_error(f, "{\"method\":\"update\",\"args\":[{},{}]}",
               "NanaSQLite.update() takes from 1 to 2 positional arguments but 3 were given");
    type_error(f, "{\"method\":\"popitem\",\"args\":[1]}",
               "MutableMapping.popitem() takes 1 positional argument but 2 were given");
    type_error(f, "{\"method\":\"get\",\"args\":[\"a\"],\"kwargs\":{\"key\":\"b\"}}",
               "NanaSQLite.get() got multiple values for argument 'key'");
    type_error(f, "{\"method\":\"get\",\"kwargs\":{\"bogus\":1,\"key\":\"a\"}}",
               "NanaSQLite.get() got an unexpected keyword argument 'bogus'");
    type_error(f, "{\"method\":\"__setitem__\"}",
               "NanaSQLite.__setitem__() missing 2 required positional arguments: 'key' and "
               "'value'");
    type_error(f, "{\"method\":\"create_index\",\"kwargs\":{\"unique\":true}}",
               "NanaSQLite.create_index() missing 3 required positional arguments: 'index_name', "
               "'table_name', and 'columns'");
    type_error(f, "{\"method\":\"sql_update\",\"args\":[\"t\"],\"kwargs\":{\"where\":\"1\"}}",
               "NanaSQLite.sql_update() missing 1 required positional argument: 'data'");
    /* CPython's order: keyword mistakes, then too many, then missing; and
     * only then the method's own checks of the values. */
    type_error(f, "{\"method\":\"get\",\"args\":[\"a\",1,2],\"kwargs\":{\"key\":\"b\"}}",
               "NanaSQLite.get() got multiple values for argument 'key'");
    type_error(f, "{\"method\":\"get\",\"args\":[\"a\",1,2],\"kwargs\":{\"zz\":1}}",
               "NanaSQLite.get() got an unexpected keyword argument 'zz'");
    type_error(f, "{\"method\":\"get\",\"args\":[5,1,2]}",
               "NanaSQLite.get() takes from 2 to 3 positional arguments but 4 were given");
    type_error(f, "{\"method\":\"__setitem__\",\"args\":[5]}",
               "NanaSQLite.__setitem__() missing 1 required positional argument: 'value'");
    type_error(f, "{\"method\":\"__getitem__\",\"args\":[1]}",
               "NanaSQLite.__getitem__() argument 'key' must be str, not int");
    type_error(f, "{\"method\":\"batch_get\",\"args\":[[1]]}",
               "NanaSQLite.batch_get() items of 'keys' must be str");
    /* pop(key, *args): extra positional arguments are fine, default= is not a keyword. */
    type_error(f, "{\"method\":\"pop\",\"kwargs\":{\"key\":\"a\",\"default\":1}}",
               "NanaSQLite.pop() got an unexpected keyword argument 'default'");
    type_error(f, "{\"method\":\"pop\",\"args\":[]}",
               "NanaSQLite.pop() missing 1 required positional argument: 'key'");
    assert_string_equal(bind_message(f, "{\"method\":\"pop\",\"args\":[\"nope\",7,8,9]}"),
                        "{\"status\":\"success\",\"result\":7}");
    assert_string_equal(bind_message(f, "{\"method\":\"pop\",\"args\":[\"nope\",null]}"),
                        "{\"status\":\"success\",\"result\":null}");
    assert_non_null(strstr(bind_message(f, "{\"method\":\"pop\",\"args\":[\"nope\"]}"),
                           "\"error_type\":\"KeyError\""));
    expect(f, "{\"method\":\"get\",\"kwargs\":{\"key\":\"zz\",\"default\":[1]}}", NULL, NULL);
    expect(f, "{\"method\":\"update\",\"kwargs\":{\"k1\":1,\"k2\":{\"a\":null}}}", NULL, NULL);
    expect(f, "{\"method\":\"__getitem__\",\"args\":[\"k2\"]}", NULL, NULL);
    expect(f, "{\"method\":\"query\"}", "PermissionError", "forbidden or invalid");
    expect(f, "{\"method\":\"_x\"}", "PermissionError", "Method '_x' is forbidden or invalid");
    expect(f, "{\"method\":\"keys\",\"args\":5}", "TypeError", "'args' must be a list");
    expect(f, "{\"args\":[]}", "ValueError", "no 'method'");
    expect(f, "[1]", "ValueError", "expected a map");
    /* A request with bytes after it, and one that is not msgpack. */
    nana_call c;
    static const uint8_t trailing[] = {0x81, 0xa1, 'a', 0x01, 0xc0};
    assert_int_equal(nana_call_parse(trailing, sizeof(trailing), &c), NANA_ERR_INVALID);
    static const uint8_t junk[] = {0xc1};
    assert_int_equal(nana_call_parse(junk, 1, &c), NANA_ERR_INVALID);
    uint8_t deep[600];
    memset(deep, 0x91, sizeof(deep) - 1);
    deep[sizeof(deep) - 1] = 0xc0;
    assert_int_equal(nana_call_parse(deep, sizeof(deep), &c), NANA_ERR_TOOBIG);

    /* The depth limit counts from the top of the message wherever the
     * nesting sits: {"method": "get", "args": [[[...null]]]} and the same
     * depth under an unknown field. */
    for (int extra = 0; extra <= 1; extra++) {
        for (int unknown = 0; unknown <= 1; unknown++) {
            uint8_t m[NANA_CALL_MAX_DEPTH + 64];
            size_t n = 0;
            m[n++] = 0x82;
            m[n++] = 0xa6;
            memcpy(m + n, "method", 6);
            n += 6;
            m[n++] = 0xa3;
            memcpy(m + n, "get", 3);
            n += 3;
            if (unknown) {
                m[n++] = 0xa5;
                memcpy(m + n, "other", 5);
                n += 5;
            } else {
                m[n++] = 0xa4;
                memcpy(m + n, "args", 4);
                n += 4;
            }
            /* containers up to exactly the limit, map included (nana_mp_skip's cap) */
            int depth = NANA_CALL_MAX_DEPTH;
            int lists = depth - 1 + extra;
            for (int i = 0; i < lists; i++)
                m[n++] = 0x91;
            m[n++] = 0xc0;
            int rc = nana_call_parse(m, n, &c);
            if (extra) {
                assert_int_equal(rc, NANA_ERR_TOOBIG);
                char want[64]; /* the message names the limit that applies */
                snprintf(want, sizeof(want), "nested deeper than %d levels", depth);
                assert_non_null(strstr(nana_errmsg(), want));
            } else {
                assert_int_equal(rc, 0);
            }
        }
    }
    /* A malformed message wins over a field of the wrong type before it:
     * {"method": 5, "args": <a string that runs past the end>}. */
    static const uint8_t bad_late[] = {0x82, 0xa6, 'm', 'e', 't', 'h', 'o',  'd',
                                       0x05, 0xa4, 'a', 'r', 'g', 's', 0xa5, 'x'};
    assert_int_equal(nana_call_parse(bad_late, sizeof(bad_late), &c), NANA_ERR_INVALID);
    assert_non_null(strstr(nana_errmsg(), "not a msgpack message"));
    /* ... while a well-formed one gets the field's own error. */
    static const uint8_t bad_type[] = {0x81, 0xa6, 'm', 'e', 't', 'h', 'o', 'd', 0x05};
    assert_int_not_equal(nana_call_parse(bad_type, sizeof(bad_type), &c), 0);
    assert_null(strstr(nana_errmsg(), "not a msgpack message"));
    assert_non_null(strstr(nana_errmsg(), "method"));
}

/* The binder's message for |json| (method name ignored) against |spec|, or "ok". */
static const char *bind_spec_message(const nana_bind_spec *spec, const char *json)
{
    static char msg[NANA_ERRMSG_MAX];
    uint8_t m[256];
    size_t n = body(m, sizeof(m), json);
    nana_call c;
    assert_int_equal(nana_call_parse(m, n, &c), 0);
    nana_arena arena = NANA_ARENA_INIT;
    nana_args args;
    int rc = nana_request_bind(&c, spec, NANA_VALUE_MAX_DEPTH, &arena, &args);
    snprintf(msg, sizeof(msg), "%s", rc ? nana_errmsg() : "ok");
    nana_arena_free(&arena);
    return msg;
}

/* Keyword-only parameters, which no NanaSQLite method of the table has yet:
 * def f(self, a, b=None, *, c, d=None), as CPython words its errors. */
static void test_binding_keyword_only(void **state)
{
    (void)state;
    static const nana_param params[] = {{"a", P_VALUE, 0},
                                        {"b", P_VALUE, P_OPT},
                                        {"c", P_VALUE, P_KWONLY},
                                        {"d", P_VALUE, P_KWONLY | P_OPT}};
    nana_bind_spec spec = {"T", "f", params, 4, false};
    assert_string_equal(
        bind_spec_message(&spec, "{\"method\":\"f\",\"args\":[1],\"kwargs\":{\"c\":1}}"), "ok");
    assert_string_equal(bind_spec_message(&spec, "{\"method\":\"f\",\"args\":[1,2]}"),
                        "T.f() missing 1 required keyword-only argument: 'c'");
    assert_string_equal(bind_spec_message(&spec, "{\"method\":\"f\",\"args\":[]}"),
                        "T.f() missing 1 required positional argument: 'a'");
    assert_string_equal(
        bind_spec_message(&spec, "{\"method\":\"f\",\"args\":[1,2,3],\"kwargs\":{\"c\":1}}"),
        "T.f() takes from 2 to 3 positional arguments but 4 positional arguments (and 1 "
        "keyword-only argument) were given");
    assert_string_equal(
        bind_spec_message(&spec,
                          "{\"method\":\"f\",\"args\":[1,2,3],\"kwargs\":{\"c\":1,\"d\":2}}"),
        "T.f() takes from 2 to 3 positional arguments but 4 positional arguments (and 2 "
        "keyword-only arguments) were given");
    assert_string_equal(bind_spec_message(&spec, "{\"method\":\"f\",\"args\":[1,2,3]}"),
                        "T.f() takes from 2 to 3 positional arguments but 4 were given");
    assert_string_equal(
        bind_spec_message(&spec, "{\"method\":\"f\",\"kwargs\":{\"c\":1,\"a\":2,\"b\":3}}"), "ok");
    /* a parameter without defaults and one positional: "takes 2 ... but 3" */
    static const nana_param one[] = {{"a", P_VALUE, 0}};
    nana_bind_spec spec1 = {NULL, "g", one, 1, false};
    assert_string_equal(bind_spec_message(&spec1, "{\"method\":\"g\",\"args\":[1,2]}"),
                        "NanaSQLite.g() takes 2 positional arguments but 3 were given");
    nana_bind_spec spec0 = {NULL, "h", NULL, 0, false};
    assert_string_equal(bind_spec_message(&spec0, "{\"method\":\"h\",\"args\":[1]}"),
                        "NanaSQLite.h() takes 1 positional argument but 2 were given");
    assert_string_equal(bind_spec_message(&spec0, "{\"method\":\"h\",\"args\":[1,2]}"),
                        "NanaSQLite.h() takes 1 positional argument but 3 were given");
}

/* Builds {"method": m, "args": <prefix> <d lists around an empty one>} by hand
 * (the prefix opens "args" and holds what comes before the value). */
static size_t nested_call(uint8_t *out, const char *method, const uint8_t *pre, size_t npre, int d)
{
    size_t n = 0, ml = strlen(method);
    out[n++] = 0x82;
    out[n++] = 0xa6;
    memcpy(out + n, "method", 6);
    n += 6;
    out[n++] = (uint8_t)(0xa0 | ml);
    memcpy(out + n, method, ml);
    n += ml;
    out[n++] = 0xa4;
    memcpy(out + n, "args", 4);
    n += 4;
    memcpy(out + n, pre, npre);
    n += npre;
    for (int i = 0; i < d; i++)
        out[n++] = 0x91; /* [ */
    out[n++] = 0x90;     /* the innermost list is empty: it counts too */
    return n;
}

/* Runs a parsed frame past the policy; the reply as JSON text. */
static const char *run_parsed(fixture *f, const uint8_t *m, size_t n)
{
    static char got[512];
    nana_call c;
    int rc = nana_call_parse(m, n, &c);
    nana_buf out, j;
    nana_buf_init(&out, 0);
    nana_buf_init(&j, 0);
    if (rc) {
        assert_int_equal(nana_reply_from_rc(&out, rc, nana_errmsg()), 0);
    } else {
        nana_run_env env = {.store = f->s, .table = f->t, .dbname = "db"};
        assert_int_equal(nana_call_run(&c, &env, &out), 0);
    }
    nana_mp_reader r;
    nana_mp_reader_init(&r, out.data + 4, out.len - 4);
    assert_int_equal(nana_mp_to_json(&r, &j, NANA_MP_MAX_DEPTH), 0);
    snprintf(got, sizeof(got), "%s", j.data);
    nana_buf_free(&out);
    nana_buf_free(&j);
    return got;
}

/* Values nest up to 128 levels (the value itself and empty lists count),
 * as an argument and as a value of a mapping argument; 129 is a ValueError
 * naming the limit; a request nested past that is refused by the parser. */
static void test_value_depth(void **state)
{
    fixture *f = *state;
    static const uint8_t set_pre[] = {0x92, 0xa1, 'd'};      /* ["d", */
    static const uint8_t bu_pre[] = {0x91, 0x81, 0xa1, 'd'}; /* [{"d": */
    static const char too_deep[] = "{\"status\":\"error\",\"error_type\":\"ValueError\","
                                   "\"message\":\"nested deeper than 128 levels\"}";
    static const char too_deep_request[] =
        "{\"status\":\"error\",\"error_type\":\"ValueError\",\"message\":\"Invalid request: "
        "nested deeper than 131 levels (a value may nest at most 128)\"}";
    uint8_t m[NANA_CALL_MAX_DEPTH + 64];
    for (int which = 0; which < 2; which++) {
        const char *method = which ? "batch_update" : "__setitem__";
        const uint8_t *pre = which ? bu_pre : set_pre;
        size_t npre = which ? sizeof(bu_pre) : sizeof(set_pre);
        /* d lists around the innermost empty one: the value nests d + 1 */
        size_t n = nested_call(m, method, pre, npre, NANA_VALUE_MAX_DEPTH - 1);
        assert_string_equal(run_parsed(f, m, n), "{\"status\":\"success\",\"result\":null}");
        nana_val *v;
        assert_int_equal(nana_kv_get(f->t, K("d"), &v), 0);
        assert_int_equal(v->len, 2 * NANA_VALUE_MAX_DEPTH);
        nana_val_unref(v);
        assert_int_equal(nana_kv_delete(f->t, K("d")), 0);
        /* 129: as an argument the transcoder refuses it; as a mapping's value
         * the request is one level deeper than any good one, and the parser
         * refuses it, naming the value limit too */
        n = nested_call(m, method, pre, npre, NANA_VALUE_MAX_DEPTH);
        assert_string_equal(run_parsed(f, m, n), which ? too_deep_request : too_deep);
        assert_int_equal(nana_kv_contains(f->t, K("d")), 0);
    }
    /* get's default may nest as deep, and comes back as sent */
    static const uint8_t get_pre[] = {0x92, 0xa1, 'z'};
    size_t n = nested_call(m, "get", get_pre, sizeof(get_pre), NANA_VALUE_MAX_DEPTH - 1);
    assert_non_null(strstr(run_parsed(f, m, n), "\"success\""));
    n = nested_call(m, "get", get_pre, sizeof(get_pre), NANA_VALUE_MAX_DEPTH);
    assert_string_equal(run_parsed(f, m, n), too_deep);
    /* Deeper still: the request is refused whatever it holds. */
    n = nested_call(m, "batch_update", bu_pre, sizeof(bu_pre), NANA_VALUE_MAX_DEPTH + 1);
    nana_call c;
    assert_int_equal(nana_call_parse(m, n, &c), NANA_ERR_TOOBIG);
    assert_string_equal(
        nana_errmsg(),
        "Invalid request: nested deeper than 131 levels (a value may nest at most 128)");
    assert_int_equal(NANA_CALL_MAX_DEPTH, 131);
    assert_int_equal(NANA_VALUE_MAX_DEPTH, 128);
}

/* Parses an accounts file with one account per policy shape. */
static nana_accounts *accounts(void)
{
    uint8_t pk[32], sk[64];
    char line[4][200], json[2048];
    for (int i = 0; i < 4; i++) {
        crypto_sign_keypair(pk, sk);
        assert_int_equal(nana_ed25519_format_openssh(pk, "t", line[i], sizeof(line[i])), 0);
    }
    snprintf(json, sizeof(json),
             "{\"accounts\":["
             "{\"name\":\"ro\",\"public_key\":\"%s\",\"read_only\":true},"
             "{\"name\":\"admin\",\"public_key\":\"%s\",\"allowed_methods\":[\"vacuum\",\"keys\","
             "\"count\"]},"
             "{\"name\":\"nokeys\",\"public_key\":\"%s\",\"forbidden_methods\":[\"keys\"]},"
             "{\"name\":\"dbs\",\"public_key\":\"%s\",\"allowed_dbs\":[\"a.db\"]}]}",
             line[0], line[1], line[2], line[3]);
    nana_accounts *a = NULL;
    assert_int_equal(nana_accounts_parse(json, strlen(json), &a), 0);
    return a;
}

static int allowed(const char *method, const nana_account *a, const char *db)
{
    uint8_t m[256];
    char json[200];
    snprintf(json, sizeof(json), "{\"method\":\"%s\"}", method);
    size_t n = body(m, sizeof(m), json);
    nana_call c;
    assert_int_equal(nana_call_parse(m, n, &c), 0);
    return nana_call_allowed(&c, a, db);
}

/* The method table: every method is found by its own name (and not by a
 * prefix of it), and the callable dunders are exactly the five dict ones. */
static void test_method_table(void **state)
{
    (void)state;
    unsigned dunders = 0;
    for (size_t i = 0; i < nana_method_count(); i++) {
        const nana_method *m = nana_method_at(i);
        const char *name = nana_method_name(m);
        if (nana_method_flags(m) & NANA_M_INTERNAL) {
            /* a door's own (AQL): no client's name finds it */
            assert_null(nana_method_find(name, strlen(name)));
            assert_ptr_equal(nana_method_find_internal(name), m);
            continue;
        }
        assert_null(nana_method_find_internal(name));
        assert_ptr_equal(nana_method_find(name, strlen(name)), m);
        assert_true(nana_method_find(name, strlen(name) - 1) != m);
        if (nana_method_flags(m) & NANA_M_DUNDER) {
            assert_memory_equal(name, "__", 2);
            dunders++;
        }
    }
    assert_int_equal(dunders, 5);
    assert_null(nana_method_find("__getitem__x", 12));
}

static void test_policy(void **state)
{
    (void)state;
    nana_accounts *as = accounts();
    const nana_account *ro = nana_accounts_find(as, "ro", 2);
    const nana_account *admin = nana_accounts_find(as, "admin", 5);
    const nana_account *nokeys = nana_accounts_find(as, "nokeys", 6);
    const nana_account *dbs = nana_accounts_find(as, "dbs", 3);
    /* The default policy: the dunders and plain methods yes; admin, SQL and local no. */
    const char *yes[] = {"__getitem__", "__setitem__",  "__delitem__", "__contains__", "__len__",
                         "keys",        "batch_update", "upsert",      "get_by_path"};
    const char *no[] = {"vacuum",
                        "pragma",
                        "execute",
                        "execute_many",
                        "query",
                        "count",
                        "exists",
                        "sql_insert",
                        "sql_update",
                        "sql_delete",
                        "fetch_one",
                        "fetch_all",
                        "begin_transaction",
                        "commit",
                        "rollback",
                        "close",
                        "__init__",
                        "backup",
                        "restore",
                        "create_table",
                        "drop_table",
                        "_hidden",
                        "nosuch",
                        "__class__",
                        "load_all",
                        "refresh",
                        "get_model",
                        "set_model"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        assert_int_equal(allowed(yes[i], NULL, "db"), 0);
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        if (allowed(no[i], NULL, "db") != NANA_ERR_PERM) fail_msg("%s allowed by default", no[i]);
        assert_int_equal(allowed(no[i], ro, "db"), NANA_ERR_PERM);
    }
    /* Read-only: reads yes, every write no. */
    assert_int_equal(allowed("keys", ro, "db"), 0);
    const char *writes[] = {"__setitem__",
                            "__delitem__",
                            "batch_update",
                            "batch_delete",
                            "batch_update_partial",
                            "clear",
                            "upsert",
                            "import_from_dict_list",
                            "pop",
                            "popitem",
                            "setdefault",
                            "update",
                            "increment",
                            "patch"};
    for (size_t i = 0; i < sizeof(writes) / sizeof(writes[0]); i++)
        assert_int_equal(allowed(writes[i], ro, "db"), NANA_ERR_PERM);
    /* An explicit list grants admin and SQL methods, and only what it lists. */
    assert_int_equal(allowed("vacuum", admin, "db"), 0);
    assert_int_equal(allowed("count", admin, "db"), 0);
    assert_int_equal(allowed("__getitem__", admin, "db"), NANA_ERR_PERM);
    assert_int_equal(allowed("keys", nokeys, "db"), NANA_ERR_PERM);
    assert_int_equal(allowed("values", nokeys, "db"), 0);
    assert_int_equal(allowed("keys", dbs, "a.db"), 0);
    assert_int_equal(allowed("keys", dbs, "b.db"), NANA_ERR_PERM);
    assert_non_null(strstr(nana_errmsg(), "Database 'b.db' is not allowed"));
    /* Every row of the table is findable by its name (a door's own rows
     * only by the door). */
    for (size_t i = 0; i < nana_method_count(); i++) {
        const nana_method *m = nana_method_at(i);
        const char *name = nana_method_name(m);
        if (nana_method_flags(m) & NANA_M_INTERNAL)
            assert_ptr_equal(nana_method_find_internal(name), m);
        else
            assert_ptr_equal(nana_method_find(name, strlen(name)), m);
    }
    nana_accounts_unref(as);
}

static void repr_is(const char *key, const char *want)
{
    nana_buf b;
    nana_buf_init(&b, 0);
    assert_int_equal(nana_py_repr_str(&b, key, strlen(key)), 0);
    assert_string_equal(b.data, want);
    nana_buf_free(&b);
}

static void test_py_repr(void **state)
{
    (void)state;
    repr_is("no-such-key", "'no-such-key'");
    repr_is("it's", "\"it's\"");
    repr_is("both'\"", "'both\\'\"'");
    repr_is("a\\b", "'a\\\\b'");
    repr_is("tab\tnl\n", "'tab\\tnl\\n'");
    repr_is("\x01", "'\\x01'");
    repr_is("\xc2\xa0", "'\\xa0'");            /* no-break space is not printable */
    repr_is("\xe3\x81\x82", "'\xe3\x81\x82'"); /* kept as is */
    repr_is("\xe2\x80\xa8", "'\\u2028'");
}

int main(void)
{
    if (sodium_init() < 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_wire_samples, setup, teardown),
        cmocka_unit_test_setup_teardown(test_binding, setup, teardown),
        cmocka_unit_test(test_binding_keyword_only),
        cmocka_unit_test_setup_teardown(test_value_depth, setup, teardown),
        cmocka_unit_test(test_method_table),
        cmocka_unit_test(test_policy),
        cmocka_unit_test(test_py_repr),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
