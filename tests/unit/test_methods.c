/*
 * test_methods.c - the NanaSQLite door on plain bytes, without a network:
 * replies byte-for-byte equal to frames captured from the Python server
 * (../shared/wire-samples-nanasqlite.txt), request parsing, Python's
 * argument binding errors, the policy decisions of the method table, and
 * Python's repr() of keys.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "auth/nana_keys.h"
#include "server/nana_methods.h"
#include "store_fixture.h"
#include "test_util.h"

#include <sodium.h>

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

static void test_binding(void **state)
{
    fixture *f = *state;
    expect(f, "{\"method\":\"__getitem__\",\"args\":[]}", "TypeError",
           "__getitem__() missing 1 required positional argument: 'key'");
    expect(f, "{\"method\":\"__getitem__\",\"args\":[\"a\",\"b\"]}", "TypeError",
           "takes 1 positional argument but 2 were given");
    expect(f, "{\"method\":\"get\",\"args\":[\"a\"],\"kwargs\":{\"key\":\"b\"}}", "TypeError",
           "multiple values for argument 'key'");
    expect(f, "{\"method\":\"get\",\"kwargs\":{\"bogus\":1,\"key\":\"a\"}}", "TypeError",
           "unexpected keyword argument 'bogus'");
    expect(f, "{\"method\":\"__getitem__\",\"args\":[1]}", "TypeError", "must be str, not int");
    expect(f, "{\"method\":\"batch_get\",\"args\":[[1]]}", "TypeError", "must be str");
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
            int depth = NANA_CALL_MAX_DEPTH < NANA_MP_SKIP_MAX_DEPTH ? NANA_CALL_MAX_DEPTH
                                                                     : NANA_MP_SKIP_MAX_DEPTH;
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
    /* Every row of the table is findable by its name. */
    for (size_t i = 0; i < nana_method_count(); i++) {
        const nana_method *m = nana_method_at(i);
        const char *name = nana_method_name(m);
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
        cmocka_unit_test(test_policy),
        cmocka_unit_test(test_py_repr),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
