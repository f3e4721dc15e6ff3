/*
 * test_json.c - unit tests for the strict JSON module (src/util/nana_json.c).
 *
 * Big idea: one table of valid and invalid documents drives both the
 * validator and the parser (they must always agree), then focused tests
 * cover decoding, round trips, Python-compatible number formatting, the
 * builders, clone/equality, integer limits and hostile inputs (deep nesting,
 * huge objects with duplicate keys) that must neither crash nor go quadratic.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "util/nana_err.h"
#include "util/nana_json.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEPTH NANA_JSON_DEFAULT_MAX_DEPTH
#define NF    NANA_JSON_ALLOW_NONFINITE

/* Serializes v; the caller frees the returned string. */
static char *to_text(const nana_json *v)
{
    nana_buf b;
    nana_buf_init(&b, 0);
    assert_int_equal(nana_json_write(&b, v), 0);
    char *s = nana_buf_detach(&b, NULL);
    assert_non_null(s);
    return s;
}

static double now_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------------------ */
/* The table                                                                */
/* ------------------------------------------------------------------------ */

struct json_case {
    const char *text;
    size_t len;
    unsigned flags;
    int ok;
};

/* clang-format off */
#define V(s)  {s, sizeof(s) - 1, 0, 1}  /* valid */
#define X(s)  {s, sizeof(s) - 1, 0, 0}  /* invalid */
#define VF(s) {s, sizeof(s) - 1, NF, 1} /* valid with NANA_JSON_ALLOW_NONFINITE */
#define XF(s) {s, sizeof(s) - 1, NF, 0} /* invalid even with it */

static const struct json_case cases[] = {
    /* literals */
    V("null"), V("true"), V("false"), V(" \t\r\n null \n"), X("nul"), X("tru"), X("True"),
    X("nulll"), X("NULL"),
    /* numbers */
    V("0"), V("-0"), V("1"), V("-1"), V("123"), V("1.5"), V("-1.5e10"), V("1e5"), V("1E+5"),
    V("1e-5"), V("0.0"), V("0e0"), V("-0.0e-0"), V("12345678901234567890123"), V("1.50"), X("01"),
    X("-01"), X("00"), X("+1"), X(".5"), X("1."), X("1.e5"), X("1e"), X("1e+"), X("-"), X("--1"),
    X("0x10"), X("1 2"), X("-a"), X("1.5.5"),
    /* non-finite tokens: only with the flag, and only Python's spellings */
    X("NaN"), X("Infinity"), X("-Infinity"), VF("NaN"), VF("Infinity"), VF("-Infinity"),
    VF("[NaN,-Infinity,{\"a\":Infinity}]"), XF("-NaN"), XF("nan"), XF("Inf"), XF("infinity"),
    XF("NaNa"),
    /* strings and escapes */
    V("\"\""), V("\"abc\""), V("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\""), V("\"\\u0041\""),
    V("\"\\u0000\""), V("\"\\ud83d\\ude00\""), V("\"\\uD83D\\uDE00\""), V("\"\x7f\""),
    V("\"\\uffff\""), V("\"\\u00e9\\u20AC\""), X("\"abc"), X("\""), X("\"\\\""), X("\"\\x\""),
    X("\"\\U0041\""), X("\"\\'\""), X("\"\\u12\""), X("\"\\u12G4\""), X("\"\\u"),
    /* lone and mispaired surrogate escapes */
    X("\"\\ud800\""), X("\"\\udc00\""), X("\"\\ud800\\u0041\""), X("\"\\ud800\\ud800\""),
    X("\"\\ud800x\""), X("\"\\ude00\\ud83d\""), X("\"\\ud83d\\\""),
    /* raw control characters */
    X("\"a\x01" "b\""), X("\"\t\""), X("\"\n\""), X("\"a\0b\""), X("\"\x1f\""),
    /* UTF-8: valid 2-, 3-, 4-byte sequences and the edges */
    V("\"\xc3\xa9\""), V("\"\xe2\x82\xac\""), V("\"\xf0\x9f\x98\x80\""), V("\"\xf4\x8f\xbf\xbf\""),
    V("\"\xed\x9f\xbf\""), V("\"\xee\x80\x80\""), V("\"\xef\xbf\xbf\""), V("\"\xc2\x80\""),
    V("\"\xe0\xa0\x80\""), V("\"\xf0\x90\x80\x80\""),
    V("\"0123456789abcdef\xc3\xa9" "0123456789abcdef\""),
    /* UTF-8: overlongs, surrogates, beyond U+10FFFF, truncated, stray bytes */
    X("\"\xc0\xaf\""), X("\"\xc1\xbf\""), X("\"\xe0\x80\xaf\""), X("\"\xe0\x9f\xbf\""),
    X("\"\xf0\x80\x80\xaf\""), X("\"\xf0\x8f\xbf\xbf\""), X("\"\xed\xa0\x80\""),
    X("\"\xed\xbf\xbf\""), X("\"\xf4\x90\x80\x80\""), X("\"\xf5\x80\x80\x80\""), X("\"\xc3\""),
    X("\"\xe2\x82\""), X("\"\xf0\x9f\x98\""), X("\"\x80\""), X("\"\xbf\""), X("\"\xff\""),
    X("\"\xfe\""), X("\"\xc3\xc3\xa9\""), X("\"\xc3"),
    X("\"0123456789abcdef\xc3" "0123456789abcdef\""),
    /* structure */
    V("[]"), V("{}"), V("[1,2,3]"), V("{\"a\":1}"), V(" [ 1 , { \"a\" : [ ] } ] "),
    V("[[[]],{},[{}]]"), V("{\"a\":{\"b\":{\"c\":[true,false,null]}}}"), V("{\"\":0}"),
    V("{\"a\":1,\"a\":2}"), X(""), X("   "), X("[1,]"), X("[,1]"), X("[1 2]"), X("{\"a\"}"),
    X("{\"a\" 1}"), X("{a:1}"), X("{\"a\":1,}"), X("{,}"), X("["), X("]"), X("{"), X("}"), X("[1}"),
    X("{\"a\":1]"), X("{'a':1}"), X("[1]x"), X("[1] [2]"), X("{\"a\":}"), X("{1:2}"), X("[\"a\",]"),
    X("{\"a\":1 \"b\":2}"), X("[1,,2]"),
    /* trailing garbage, BOM and bytes outside strings */
    X("1\0"), X("\xef\xbb\xbf" "1"), X("\xc3\xa9"), X("[1]\0"), X("\"a\"\"b\""), X("true false"),
};
/* clang-format on */

static void test_table(void **state)
{
    size_t ncases = sizeof(cases) / sizeof(cases[0]);
    assert_true(ncases >= 60);
    for (size_t i = 0; i < ncases; i++) {
        const struct json_case *c = &cases[i];
        int v = nana_json_validate(c->text, c->len, c->flags, DEPTH);
        nana_json_doc *doc = NULL;
        nana_json *root = NULL;
        int p = nana_json_parse(c->text, c->len, c->flags, DEPTH, &doc, &root);
        if ((v == 0) != c->ok || (p == 0) != c->ok) {
            fprintf(stderr, "case %zu (%.*s): validate %d parse %d, want ok=%d (%s)\n", i,
                    (int)c->len, c->text, v, p, c->ok, nana_errmsg());
            fail();
        }
        if (!c->ok) {
            assert_int_equal(v, NANA_ERR_JSON);
            assert_int_equal(p, NANA_ERR_JSON);
            assert_null(doc);
            assert_null(root);
            assert_non_null(strstr(nana_errmsg(), "invalid JSON at byte"));
            continue;
        }
        /* A valid document must survive write -> validate -> parse -> equal. */
        assert_non_null(root);
        char *out = to_text(root);
        assert_int_equal(nana_json_validate(out, strlen(out) + 0, c->flags, DEPTH), 0);
        nana_json_doc *doc2;
        nana_json *root2;
        assert_int_equal(nana_json_parse(out, strlen(out), c->flags, DEPTH, &doc2, &root2), 0);
        assert_true(nana_json_equal(root, root2));
        char *out2 = to_text(root2);
        assert_string_equal(out, out2);
        free(out);
        free(out2);
        nana_json_doc_free(doc2);
        nana_json_doc_free(doc);
    }
}

/* ------------------------------------------------------------------------ */
/* Error details                                                            */
/* ------------------------------------------------------------------------ */

static void expect_err(const char *text, const char *msg)
{
    assert_int_equal(nana_json_validate(text, strlen(text), 0, DEPTH), NANA_ERR_JSON);
    if (strcmp(nana_errmsg(), msg) != 0) {
        fprintf(stderr, "for %s got \"%s\" want \"%s\"\n", text, nana_errmsg(), msg);
        fail();
    }
}

static void test_error_messages(void **state)
{
    expect_err("{\"abcdefghijklmn\" 1}", "invalid JSON at byte 18: expected ':'");
    expect_err("[1,2", "invalid JSON at byte 4: expected ',' or ']'");
    expect_err("{\"a\":1 x", "invalid JSON at byte 7: expected ',' or '}'");
    expect_err("{1:1}", "invalid JSON at byte 1: expected a string key");
    expect_err("", "invalid JSON at byte 0: expected a value");
    expect_err("[01]", "invalid JSON at byte 1: leading zeros are not allowed");
    expect_err("[1] 2", "invalid JSON at byte 4: unexpected data after the JSON value");
    expect_err("\"ab\\ud800\"", "invalid JSON at byte 3: high surrogate in \\u escape not "
                                "followed by a low one");
    expect_err("\"a\x01\"", "invalid JSON at byte 2: raw control character 0x01 in string");
    expect_err("\"a\xc0\xaf\"", "invalid JSON at byte 2: invalid UTF-8 in string");
    expect_err("NaN", "invalid JSON at byte 0: NaN and Infinity are not allowed here");
    assert_int_equal(nana_json_validate("[[[1]]]", 7, 0, 2), NANA_ERR_JSON);
    assert_string_equal(nana_errmsg(), "invalid JSON at byte 2: nesting too deep (limit 2)");
}

/* ------------------------------------------------------------------------ */
/* Depth                                                                    */
/* ------------------------------------------------------------------------ */

/* depth nested arrays around a 1; the caller frees. */
static char *nested(size_t depth, size_t *len)
{
    char *s = malloc(depth * 2 + 2);
    assert_non_null(s);
    memset(s, '[', depth);
    s[depth] = '1';
    memset(s + depth + 1, ']', depth);
    s[depth * 2 + 1] = '\0';
    *len = depth * 2 + 1;
    return s;
}

static void test_depth(void **state)
{
    size_t len;
    char *s = nested(5, &len);
    assert_int_equal(nana_json_validate(s, len, 0, 5), 0);
    assert_int_equal(nana_json_validate(s, len, 0, 4), NANA_ERR_JSON);
    assert_non_null(strstr(nana_errmsg(), "nesting too deep"));
    nana_json_doc *doc;
    nana_json *root;
    assert_int_equal(nana_json_parse(s, len, 0, 5, &doc, &root), 0);
    nana_json_doc_free(doc);
    assert_int_equal(nana_json_parse(s, len, 0, 4, &doc, &root), NANA_ERR_JSON);
    assert_non_null(strstr(nana_errmsg(), "nesting too deep"));
    free(s);

    /* Exactly at and one over the default limit, with mixed arrays and objects. */
    for (size_t d = DEPTH; d <= DEPTH + 1; d++) {
        char *t = malloc(d * 6 + 8);
        size_t o = 0;
        for (size_t k = 0; k < d; k++) {
            if (k % 2) {
                memcpy(t + o, "{\"k\":", 5);
                o += 5;
            } else {
                t[o++] = '[';
            }
        }
        t[o++] = '0';
        for (size_t k = d; k-- > 0;)
            t[o++] = k % 2 ? '}' : ']';
        int want = d == DEPTH ? 0 : NANA_ERR_JSON;
        assert_int_equal(nana_json_validate(t, o, 0, DEPTH), want);
        int rc = nana_json_parse(t, o, 0, DEPTH, &doc, &root);
        assert_int_equal(rc, want);
        if (!rc) {
            char *w = to_text(root);
            assert_memory_equal(w, t, o);
            free(w);
            nana_json_doc_free(doc);
        }
        free(t);
    }

    /* max_depth 0 allows only scalars. */
    assert_int_equal(nana_json_validate("1", 1, 0, 0), 0);
    assert_int_equal(nana_json_validate("[]", 2, 0, 0), NANA_ERR_JSON);
}

static void test_deep_nesting_refused(void **state)
{
    size_t len;
    char *s = nested(100000, &len);
    nana_json_doc *doc;
    nana_json *root;
    assert_int_equal(nana_json_validate(s, len, 0, DEPTH), NANA_ERR_JSON);
    assert_non_null(strstr(nana_errmsg(), "nesting too deep"));
    assert_int_equal(nana_json_parse(s, len, 0, DEPTH, &doc, &root), NANA_ERR_JSON);
    /* A huge max_depth is clamped, so it is still refused rather than overflowing anything. */
    assert_int_equal(nana_json_validate(s, len, 0, UINT_MAX), NANA_ERR_JSON);
    assert_int_equal(nana_json_parse(s, len, 0, UINT_MAX, &doc, &root), NANA_ERR_JSON);
    /* Unclosed: 100000 openers and nothing else. */
    assert_int_equal(nana_json_validate(s, 100000, 0, UINT_MAX), NANA_ERR_JSON);
    free(s);

    /* At the clamp, everything works without recursion. */
    s = nested(NANA_JSON_MAX_DEPTH_LIMIT, &len);
    assert_int_equal(nana_json_validate(s, len, 0, UINT_MAX), 0);
    assert_int_equal(nana_json_parse(s, len, 0, UINT_MAX, &doc, &root), 0);
    char *w = to_text(root);
    assert_string_equal(w, s);
    free(w);
    nana_json_doc *doc2 = nana_json_doc_new();
    nana_json *copy = nana_json_clone(doc2, root);
    assert_non_null(copy);
    assert_true(nana_json_equal(root, copy));
    nana_json_doc_free(doc2);
    nana_json_doc_free(doc);
    free(s);

    /* Builders can nest deeper than any parse limit; write/clone/equal must cope. */
    doc = nana_json_doc_new();
    nana_json *top = nana_json_new_array(doc), *cur = top;
    for (int k = 1; k < 100000; k++) {
        nana_json *a = nana_json_new_array(doc);
        assert_int_equal(nana_json_array_append(doc, cur, a), 0);
        cur = a;
    }
    nana_buf b;
    nana_buf_init(&b, 0);
    assert_int_equal(nana_json_write(&b, top), 0);
    assert_int_equal(b.len, 200000);
    assert_int_equal(nana_json_validate(b.data, b.len, 0, DEPTH), NANA_ERR_JSON);
    nana_buf_free(&b);
    copy = nana_json_clone(doc, top);
    assert_non_null(copy);
    assert_true(nana_json_equal(top, copy));
    assert_int_equal(nana_json_array_append(doc, cur, nana_json_new_null(doc)), 0);
    assert_false(nana_json_equal(top, copy));
    nana_json_doc_free(doc);
}

/* ------------------------------------------------------------------------ */
/* Decoding and round trips                                                 */
/* ------------------------------------------------------------------------ */

static nana_json *parse_ok(const char *text, unsigned flags, nana_json_doc **doc)
{
    nana_json *root = NULL;
    int rc = nana_json_parse(text, strlen(text), flags, DEPTH, doc, &root);
    if (rc) fprintf(stderr, "parse of %s failed: %s\n", text, nana_errmsg());
    assert_int_equal(rc, 0);
    return root;
}

static void test_string_decoding(void **state)
{
    nana_json_doc *doc;
    nana_json *v = parse_ok("\"\\ud83d\\ude00\"", 0, &doc);
    assert_int_equal(v->type, NANA_JSON_STRING);
    assert_int_equal(v->n, 4);
    assert_memory_equal(v->u.str, "\xf0\x9f\x98\x80", 5);
    nana_json_doc_free(doc);

    v = parse_ok("\"a\\u0000b\\u00e9\\u20ac\\n\\/\\\"\"", 0, &doc);
    assert_int_equal(v->n, 11);
    assert_memory_equal(v->u.str, "a\0b\xc3\xa9\xe2\x82\xac\n/\"", 12);
    nana_json_doc_free(doc);

    v = parse_ok("\"\xf0\x9f\x98\x80 raw\"", 0, &doc);
    assert_int_equal(v->n, 8);
    assert_string_equal(v->u.str, "\xf0\x9f\x98\x80 raw");
    nana_json_doc_free(doc);

    /* Keys are decoded too, and escaped and raw spellings are the same key. */
    v = parse_ok("{\"\\u0061\":1,\"a\":2,\"\\ud83d\\ude00\":3}", 0, &doc);
    assert_int_equal(v->n, 2);
    assert_string_equal(v->u.members[0].key, "a");
    assert_string_equal(v->u.members[0].val->u.str, "2");
    assert_int_equal(v->u.members[1].keylen, 4);
    assert_non_null(nana_json_object_get(v, "\xf0\x9f\x98\x80", 4));
    nana_json_doc_free(doc);
}

static void test_round_trips(void **state)
{
    static const struct {
        const char *in, *out;
        unsigned flags;
    } rt[] = {
        {"{\"a\":[1,2.50,{\"b\":null}],\"c\":\"x\"}", "{\"a\":[1,2.50,{\"b\":null}],\"c\":\"x\"}",
         0},
        {" [ 1 , true , false , null ] ", "[1,true,false,null]", 0},
        {"\"\\u00e9\\n\\/\"", "\"\xc3\xa9\\n/\"", 0},
        {"\"\\u001f\\u0000\\u0001\\u007f\"", "\"\\u001f\\u0000\\u0001\x7f\"", 0},
        {"\"\\b\\f\\t\\r\\\\\\\"\"", "\"\\b\\f\\t\\r\\\\\\\"\"", 0},
        {"12345678901234567890123456789", "12345678901234567890123456789", 0},
        {"-123456789012345678901234567890.000e-0100", "-123456789012345678901234567890.000e-0100",
         0},
        {"[1E+5,-0.0,0e0]", "[1E+5,-0.0,0e0]", 0},
        {"[NaN,Infinity,-Infinity]", "[NaN,Infinity,-Infinity]", NF},
        {"{\"a\":1,\"b\":2,\"a\":3}", "{\"a\":3,\"b\":2}", 0},
        {"{\"a\":{\"x\":1},\"b\":2,\"a\":[true]}", "{\"a\":[true],\"b\":2}", 0},
        {"\"\\ud83d\\ude00\"", "\"\xf0\x9f\x98\x80\"", 0},
        {"{}", "{}", 0},
        {"[[],{},\"\"]", "[[],{},\"\"]", 0},
    };
    for (size_t i = 0; i < sizeof(rt) / sizeof(rt[0]); i++) {
        nana_json_doc *doc;
        nana_json *v = parse_ok(rt[i].in, rt[i].flags, &doc);
        char *s = to_text(v);
        assert_string_equal(s, rt[i].out);
        free(s);
        nana_json_doc_free(doc);
    }
}

static void test_big_integers_verbatim(void **state)
{
    const char *big =
        "[123456789012345678901234567890,-98765432109876543210,1.000000000000000000001]";
    nana_json_doc *doc;
    nana_json *v = parse_ok(big, 0, &doc);
    assert_int_equal(v->n, 3);
    assert_string_equal(v->u.items[0]->u.str, "123456789012345678901234567890");
    assert_int_equal(v->u.items[0]->n, 30);
    assert_true(nana_json_number_is_integer(v->u.items[0]));
    assert_int_equal(nana_json_number_int64(v->u.items[0], &(int64_t){0}), NANA_ERR_TOOBIG);
    assert_string_equal(v->u.items[2]->u.str, "1.000000000000000000001");
    char *s = to_text(v);
    assert_string_equal(s, big);
    free(s);
    nana_json_doc_free(doc);
}

/* ------------------------------------------------------------------------ */
/* Duplicate keys and big objects                                           */
/* ------------------------------------------------------------------------ */

static void test_duplicate_keys(void **state)
{
    nana_json_doc *doc;
    nana_json *v = parse_ok("{\"a\":1,\"b\":2,\"c\":3,\"b\":4,\"a\":5}", 0, &doc);
    assert_int_equal(v->n, 3);
    assert_string_equal(v->u.members[0].key, "a");
    assert_string_equal(v->u.members[0].val->u.str, "5");
    assert_string_equal(v->u.members[1].key, "b");
    assert_string_equal(v->u.members[1].val->u.str, "4");
    assert_string_equal(v->u.members[2].key, "c");
    nana_json_doc_free(doc);
}

/* Builds {"k0":0,"k1":1,...} with n members, then repeats every key with value -i. */
static char *big_object(size_t n, int dups, size_t *len)
{
    nana_buf b;
    nana_buf_init(&b, 0);
    assert_int_equal(nana_buf_putc(&b, '{'), 0);
    for (int pass = 0; pass < (dups ? 2 : 1); pass++)
        for (size_t i = 0; i < n; i++) {
            if (pass || i) assert_int_equal(nana_buf_putc(&b, ','), 0);
            assert_int_equal(nana_buf_printf(&b, "\"k%zu\":%s%zu", i, pass ? "-" : "", i), 0);
        }
    assert_int_equal(nana_buf_putc(&b, '}'), 0);
    return nana_buf_detach(&b, len);
}

static void test_big_object(void **state)
{
    size_t len;
    char *s = big_object(100000, 1, &len);
    double t0 = now_sec();
    nana_json_doc *doc;
    nana_json *v;
    assert_int_equal(nana_json_parse(s, len, 0, DEPTH, &doc, &v), 0);
    double dt = now_sec() - t0;
    assert_true(dt < 5.0); /* quadratic duplicate detection would take minutes */
    assert_int_equal(v->n, 100000);
    for (size_t i = 0; i < 100000; i += 9999) {
        char key[32], val[32];
        int kl = snprintf(key, sizeof(key), "k%zu", i);
        snprintf(val, sizeof(val), "-%zu", i);
        assert_string_equal(v->u.members[i].key, key);
        nana_json *m = nana_json_object_get(v, key, (size_t)kl);
        assert_non_null(m);
        assert_string_equal(m->u.str, val);
    }
    free(s);

    /* Order-insensitive equality of big objects stays fast too. */
    s = big_object(100000, 0, &len);
    nana_json_doc *doc2;
    nana_json *w;
    assert_int_equal(nana_json_parse(s, len, 0, DEPTH, &doc2, &w), 0);
    free(s);
    nana_json_doc *doc3 = nana_json_doc_new();
    nana_json *r = nana_json_new_object(doc3);
    for (size_t i = w->n; i-- > 0;)
        assert_int_equal(nana_json_object_set(doc3, r, w->u.members[i].key, w->u.members[i].keylen,
                                              w->u.members[i].val),
                         0);
    t0 = now_sec();
    assert_true(nana_json_equal(w, r));
    assert_true(nana_json_equal(r, w));
    assert_false(nana_json_equal(v, w));
    assert_true(now_sec() - t0 < 5.0);
    nana_json_doc_free(doc3);
    nana_json_doc_free(doc2);
    nana_json_doc_free(doc);
}

/* ------------------------------------------------------------------------ */
/* Numbers                                                                  */
/* ------------------------------------------------------------------------ */

static void expect_double(double d, const char *want)
{
    nana_json_doc *doc = nana_json_doc_new();
    nana_json *v = nana_json_new_double(doc, d);
    assert_non_null(v);
    assert_int_equal(v->type, NANA_JSON_NUMBER);
    if (strcmp(v->u.str, want) != 0) {
        fprintf(stderr, "%.17g formatted as %s, want %s\n", d, v->u.str, want);
        fail();
    }
    assert_int_equal(v->n, strlen(want));
    assert_int_equal(nana_json_validate(v->u.str, v->n, 0, DEPTH), 0);
    double back;
    assert_int_equal(nana_json_number_double(v, &back), 0);
    assert_true(back == d && signbit(back) == signbit(d));
    nana_json_doc_free(doc);
    nana_buf b;
    nana_buf_init(&b, 0);
    assert_int_equal(nana_json_write_double(&b, d), 0);
    assert_string_equal(b.data, want);
    nana_buf_free(&b);
}

static void test_double_format(void **state)
{
    expect_double(1.0, "1.0");
    expect_double(0.1, "0.1");
    expect_double(1e16, "1e+16");
    expect_double(1e15, "1000000000000000.0");
    expect_double(1e-05, "1e-05");
    expect_double(0.0001, "0.0001");
    expect_double(123456789.0, "123456789.0");
    expect_double(5e-324, "5e-324");
    expect_double(1.7976931348623157e+308, "1.7976931348623157e+308");
    expect_double(-0.0, "-0.0");
    expect_double(0.0, "0.0");
    expect_double(100.0, "100.0");
    expect_double(1e22, "1e+22");
    expect_double(123456789012345680.0, "1.2345678901234568e+17");
    expect_double(-1.5, "-1.5");
    expect_double(0.3, "0.3");
    expect_double(0.1 + 0.2, "0.30000000000000004");
    expect_double(1.0 / 3.0, "0.3333333333333333");
    expect_double(2.5e-5, "2.5e-05");
    expect_double(1.5e300, "1.5e+300");
    expect_double(2.2250738585072014e-308, "2.2250738585072014e-308");
    expect_double(9007199254740993.0, "9007199254740992.0");
    expect_double(1234.5678, "1234.5678");
    expect_double(-1e-7, "-1e-07");
    /* Powers of two where the shortest digits lie above the value. */
    expect_double(ldexp(1.0, -1074), "5e-324");
    expect_double(ldexp(1.0, 1023), "8.98846567431158e+307");
    expect_double(ldexp(1.0, -1022), "2.2250738585072014e-308");
    expect_double(ldexp(1.0, -1017), "7.120236347223045e-307");
    expect_double(ldexp(1.0, -1007), "7.291122019556398e-304");
    expect_double(ldexp(1.0, -957), "8.209073602596753e-289");
    expect_double(-ldexp(1.0, -921), "-5.641232424577593e-278");

    nana_json_doc *doc = nana_json_doc_new();
    assert_null(nana_json_new_double(doc, (double)NAN));
    assert_null(nana_json_new_double(doc, (double)INFINITY));
    assert_null(nana_json_new_double(doc, -(double)INFINITY));
    nana_buf b;
    nana_buf_init(&b, 0);
    assert_int_equal(nana_json_write_double(&b, (double)NAN), NANA_ERR_INVALID);
    assert_int_equal(nana_json_write_double(&b, (double)INFINITY), NANA_ERR_INVALID);
    assert_int_equal(b.len, 0);
    nana_buf_free(&b);
    nana_json *v = nana_json_new_int(doc, INT64_MIN);
    assert_string_equal(v->u.str, "-9223372036854775808");
    v = nana_json_new_int(doc, 42);
    assert_string_equal(v->u.str, "42");
    assert_int_equal(v->n, 2);
    nana_json_doc_free(doc);
}

static int64_t int_of(const char *txt, int *rc)
{
    nana_json_doc *doc = nana_json_doc_new();
    nana_json *v = nana_json_new_number_text(doc, txt, strlen(txt));
    int64_t out = 0;
    *rc = nana_json_number_int64(v, &out);
    nana_json_doc_free(doc);
    return out;
}

static void test_int64_limits(void **state)
{
    int rc;
    assert_true(int_of("9223372036854775807", &rc) == INT64_MAX && rc == 0);
    assert_true(int_of("-9223372036854775808", &rc) == INT64_MIN && rc == 0);
    assert_true(int_of("0", &rc) == 0 && rc == 0);
    assert_true(int_of("-0", &rc) == 0 && rc == 0);
    assert_true(int_of("-42", &rc) == -42 && rc == 0);
    int_of("9223372036854775808", &rc);
    assert_int_equal(rc, NANA_ERR_TOOBIG);
    int_of("-9223372036854775809", &rc);
    assert_int_equal(rc, NANA_ERR_TOOBIG);
    int_of("100000000000000000000000", &rc);
    assert_int_equal(rc, NANA_ERR_TOOBIG);
    int_of("1.0", &rc);
    assert_int_equal(rc, NANA_ERR_TYPE);
    int_of("1e3", &rc);
    assert_int_equal(rc, NANA_ERR_TYPE);
    int_of("NaN", &rc);
    assert_int_equal(rc, NANA_ERR_TYPE);
    int_of("-Infinity", &rc);
    assert_int_equal(rc, NANA_ERR_TYPE);

    nana_json_doc *doc = nana_json_doc_new();
    nana_json *s = nana_json_new_string(doc, "1", 1);
    int64_t out;
    assert_int_equal(nana_json_number_int64(s, &out), NANA_ERR_TYPE);
    double d;
    assert_int_equal(nana_json_number_double(s, &d), NANA_ERR_TYPE);
    assert_false(nana_json_number_is_integer(s));

    const char *txt[] = {"NaN", "Infinity", "-Infinity", "1e999", "-2.5", "12345678901234567890"};
    for (int i = 0; i < 6; i++) {
        nana_json *n = nana_json_new_number_text(doc, txt[i], strlen(txt[i]));
        assert_int_equal(nana_json_number_double(n, &d), 0);
        switch (i) {
        case 0:
            assert_true(isnan(d));
            break;
        case 1:
            assert_true(isinf(d) && d > 0);
            break;
        case 2:
            assert_true(isinf(d) && d < 0);
            break;
        case 3:
            assert_true(isinf(d) && d > 0);
            break;
        case 4:
            assert_true(d == -2.5);
            break;
        default:
            assert_true(d == 12345678901234567890.0);
            break;
        }
        assert_int_equal(nana_json_number_is_integer(n), i == 5);
    }
    nana_json_doc_free(doc);
}

/* ------------------------------------------------------------------------ */
/* Builders, clone, equality, writer                                        */
/* ------------------------------------------------------------------------ */

static void test_object_ops(void **state)
{
    nana_json_doc *doc = nana_json_doc_new();
    nana_json *o = nana_json_new_object(doc);
    for (int i = 0; i < 50; i++) {
        char key[16];
        int kl = snprintf(key, sizeof(key), "key%d", i);
        assert_int_equal(nana_json_object_set(doc, o, key, (size_t)kl, nana_json_new_int(doc, i)),
                         0);
    }
    assert_int_equal(o->n, 50);
    nana_json *v = nana_json_object_get(o, "key7", 4);
    assert_non_null(v);
    assert_string_equal(v->u.str, "7");
    assert_null(nana_json_object_get(o, "key", 3));
    assert_null(nana_json_object_get(o, "key70", 5));

    /* Replacing keeps the position. */
    assert_int_equal(nana_json_object_set(doc, o, "key0", 4, nana_json_new_string(doc, "z", 1)), 0);
    assert_int_equal(o->n, 50);
    assert_string_equal(o->u.members[0].key, "key0");
    assert_int_equal(o->u.members[0].val->type, NANA_JSON_STRING);

    /* Deleting keeps the order of the rest. */
    assert_int_equal(nana_json_object_del(o, "key1", 4), 0);
    assert_int_equal(nana_json_object_del(o, "key1", 4), NANA_ERR_NOTFOUND);
    assert_int_equal(o->n, 49);
    assert_string_equal(o->u.members[0].key, "key0");
    assert_string_equal(o->u.members[1].key, "key2");
    assert_string_equal(o->u.members[48].key, "key49");
    assert_int_equal(nana_json_object_del(o, "key49", 5), 0);
    assert_int_equal(o->n, 48);

    /* Keys with NUL bytes and empty keys are distinct keys. */
    assert_int_equal(nana_json_object_set(doc, o, "a\0b", 3, nana_json_new_null(doc)), 0);
    assert_int_equal(nana_json_object_set(doc, o, "", 0, nana_json_new_bool(doc, 1)), 0);
    assert_null(nana_json_object_get(o, "a", 1));
    assert_int_equal(nana_json_object_get(o, "a\0b", 3)->type, NANA_JSON_NULL);
    assert_int_equal(nana_json_object_get(o, "", 0)->type, NANA_JSON_TRUE);

    /* Wrong types and bad arguments. */
    nana_json *a = nana_json_new_array(doc);
    assert_int_equal(nana_json_object_set(doc, a, "x", 1, nana_json_new_null(doc)), NANA_ERR_TYPE);
    assert_int_equal(nana_json_object_set(doc, o, "x", 1, NULL), NANA_ERR_INVALID);
    assert_int_equal(nana_json_object_set(doc, o, "\xc0\xaf", 2, a), NANA_ERR_INVALID);
    assert_int_equal(nana_json_object_del(a, "x", 1), NANA_ERR_TYPE);
    assert_int_equal(nana_json_array_append(doc, o, a), NANA_ERR_TYPE);
    assert_int_equal(nana_json_array_append(doc, a, NULL), NANA_ERR_INVALID);
    assert_null(nana_json_object_get(a, "x", 1));
    assert_null(nana_json_new_string(doc, "\xed\xa0\x80", 3));
    assert_int_equal(nana_json_object_set(doc, o, "arr", 3, a), 0);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(nana_json_array_append(doc, a, nana_json_new_int(doc, i)), 0);
    assert_int_equal(a->n, 1000);
    assert_string_equal(a->u.items[999]->u.str, "999");

    char *s = to_text(o);
    assert_int_equal(nana_json_validate(s, strlen(s), 0, DEPTH), 0);
    assert_non_null(strstr(s, "{\"key0\":\"z\",\"key2\":2,"));
    assert_non_null(strstr(s, "\"key48\":48,\"a\\u0000b\":null,\"\":true,\"arr\":[0,1,2,"));
    free(s);
    nana_json_doc_free(doc);
}

/* Random set/get/del against a plain array model, across the small/indexed boundary. */
static void test_object_model(void **state)
{
    enum { NKEYS = 300 };
    int model[NKEYS]; /* value, or -1 when absent */
    int order[NKEYS]; /* keys present, in insertion order */
    int norder = 0;
    for (int i = 0; i < NKEYS; i++)
        model[i] = -1;
    nana_json_doc *doc = nana_json_doc_new();
    nana_json *o = nana_json_new_object(doc);
    unsigned seed = 12345;
    for (int step = 0; step < 20000; step++) {
        seed = seed * 1103515245u + 12345u;
        int k = (int)((seed >> 8) % NKEYS);
        int op = (int)((seed >> 20) % 4); /* set twice as often as del */
        char key[16];
        int kl = snprintf(key, sizeof(key), "key-%d", k);
        if (op <= 1) {
            assert_int_equal(
                nana_json_object_set(doc, o, key, (size_t)kl, nana_json_new_int(doc, step)), 0);
            if (model[k] < 0) order[norder++] = k;
            model[k] = step;
        } else if (op == 2) {
            int rc = nana_json_object_del(o, key, (size_t)kl);
            assert_int_equal(rc, model[k] < 0 ? NANA_ERR_NOTFOUND : 0);
            if (model[k] >= 0) {
                int j = 0;
                while (order[j] != k)
                    j++;
                memmove(&order[j], &order[j + 1], (size_t)(norder - j - 1) * sizeof(int));
                norder--;
                model[k] = -1;
            }
        } else {
            nana_json *v = nana_json_object_get(o, key, (size_t)kl);
            if (model[k] < 0) {
                assert_null(v);
            } else {
                int64_t got;
                assert_non_null(v);
                assert_int_equal(nana_json_number_int64(v, &got), 0);
                assert_int_equal(got, model[k]);
            }
        }
        assert_int_equal(o->n, norder);
        if (step % 997 == 0) {
            for (int j = 0; j < norder; j++) {
                char want[16];
                snprintf(want, sizeof(want), "key-%d", order[j]);
                assert_string_equal(o->u.members[j].key, want);
            }
            /* Clones and re-parsed copies must agree, including their indexes. */
            nana_json *c = nana_json_clone(doc, o);
            assert_true(nana_json_equal(o, c));
            char *txt = to_text(o);
            nana_json_doc *d2;
            nana_json *p;
            assert_int_equal(nana_json_parse(txt, strlen(txt), 0, DEPTH, &d2, &p), 0);
            assert_true(nana_json_equal(p, o));
            for (int j = 0; j < NKEYS; j++) {
                char kk[16];
                int kkl = snprintf(kk, sizeof(kk), "key-%d", j);
                assert_true((nana_json_object_get(p, kk, (size_t)kkl) != NULL) == (model[j] >= 0));
                assert_true((nana_json_object_get(c, kk, (size_t)kkl) != NULL) == (model[j] >= 0));
            }
            free(txt);
            nana_json_doc_free(d2);
        }
    }
    nana_json_doc_free(doc);
}

static void test_clone_equal(void **state)
{
    const char *text =
        "{\"a\":[1,2,{\"b\":\"x\\u0000y\"}],\"c\":null,\"d\":true,\"e\":false,\"f\":1.50,\"g\":{}}";
    nana_json_doc *doc;
    nana_json *v = parse_ok(text, 0, &doc);
    nana_json_doc *doc2 = nana_json_doc_new();
    nana_json *c = nana_json_clone(doc2, v);
    nana_json_doc_free(doc); /* the clone must not depend on the source document */
    char *s = to_text(c);
    assert_string_equal(s, text);
    free(s);

    /* Equal ignores member order, not array order; numbers compare by text. */
    nana_json *r = parse_ok("{\"g\":{},\"f\":1.50,\"e\":false,\"d\":true,\"c\":null,"
                            "\"a\":[1,2,{\"b\":\"x\\u0000y\"}]}",
                            0, &doc);
    assert_true(nana_json_equal(c, r));
    assert_true(nana_json_equal(r, c));
    nana_json_doc_free(doc);
    static const char *different[] = {
        "{\"a\":[2,1,{\"b\":\"x\\u0000y\"}],\"c\":null,\"d\":true,\"e\":false,\"f\":1.50,\"g\":{}}",
        "{\"a\":[1,2,{\"b\":\"x\\u0000z\"}],\"c\":null,\"d\":true,\"e\":false,\"f\":1.50,\"g\":{}}",
        "{\"a\":[1,2,{\"b\":\"x\"}],\"c\":null,\"d\":true,\"e\":false,\"f\":1.50,\"g\":{}}",
        "{\"a\":[1,2,{\"b\":\"x\\u0000y\"}],\"c\":null,\"d\":true,\"e\":false,\"f\":1.5,\"g\":{}}",
        "{\"a\":[1,2,{\"b\":\"x\\u0000y\"}],\"c\":null,\"d\":true,\"e\":true,\"f\":1.50,\"g\":{}}",
        "{\"a\":[1,2,{\"b\":\"x\\u0000y\"}],\"c\":null,\"d\":true,\"e\":false,\"f\":1.50,\"h\":{}}",
        "{\"a\":[1,2,{\"b\":\"x\\u0000y\"}],\"c\":null,\"d\":true,\"e\":false,\"f\":1.50}",
        "{\"a\":[1,2,{\"b\":\"x\\u0000y\"}],\"c\":null,\"d\":true,\"e\":false,\"f\":1.50,\"g\":[]}",
        "[1]",
    };
    for (size_t i = 0; i < sizeof(different) / sizeof(different[0]); i++) {
        r = parse_ok(different[i], 0, &doc);
        assert_false(nana_json_equal(c, r));
        assert_false(nana_json_equal(r, c));
        nana_json_doc_free(doc);
    }
    assert_true(nana_json_equal(NULL, NULL));
    assert_false(nana_json_equal(c, NULL));

    /* Clones can be modified independently. */
    nana_json *c2 = nana_json_clone(doc2, c);
    assert_int_equal(nana_json_object_del(c2, "a", 1), 0);
    assert_false(nana_json_equal(c, c2));
    assert_non_null(nana_json_object_get(c, "a", 1));
    nana_json *arr = nana_json_object_get(c, "a", 1);
    nana_json *arr2 = nana_json_clone(doc2, arr);
    assert_int_equal(nana_json_array_append(doc2, arr2, nana_json_new_null(doc2)), 0);
    assert_int_equal(arr->n, 3);
    assert_int_equal(arr2->n, 4);
    nana_json_doc_free(doc2);
}

static void test_write_string(void **state)
{
    nana_buf b;
    nana_buf_init(&b, 0);
    assert_int_equal(nana_json_write_string(&b, "a\"b\\c\b\f\n\r\t\x01\x1f\x7f/\xc3\xa9", 16), 0);
    assert_string_equal(b.data, "\"a\\\"b\\\\c\\b\\f\\n\\r\\t\\u0001\\u001f\x7f/\xc3\xa9\"");
    nana_buf_reset(&b);
    assert_int_equal(nana_json_write_string(&b, "x\0y", 3), 0);
    assert_string_equal(b.data, "\"x\\u0000y\"");
    nana_buf_reset(&b);
    assert_int_equal(nana_json_write_string(&b, "", 0), 0);
    assert_string_equal(b.data, "\"\"");
    nana_buf_reset(&b);
    assert_int_equal(nana_json_write_string(&b, "0123456789abcdef\xc0\xaf", 18), NANA_ERR_INVALID);
    nana_buf_reset(&b);
    /* A long string with escapes scattered through it. */
    char big[1000];
    for (int i = 0; i < 1000; i++)
        big[i] = (char)(i % 97 == 0 ? '\n' : 'a' + i % 26);
    assert_int_equal(nana_json_write_string(&b, big, sizeof(big)), 0);
    nana_json_doc *doc;
    nana_json *v;
    assert_int_equal(nana_json_parse(b.data, b.len, 0, DEPTH, &doc, &v), 0);
    assert_int_equal(v->n, 1000);
    assert_memory_equal(v->u.str, big, 1000);
    nana_json_doc_free(doc);
    /* A size-limited buffer reports its error. */
    nana_buf_free(&b);
    nana_buf_init(&b, 10);
    assert_int_equal(nana_json_write_string(&b, big, sizeof(big)), NANA_ERR_TOOBIG);
    nana_buf_free(&b);
}

static void test_validate_speed(void **state)
{
    /* Not a hard bound (sanitizers, loaded CI); prints the rate for humans. */
    size_t n = 64u << 20;
    char *s = malloc(n);
    assert_non_null(s);
    s[0] = '[';
    size_t o = 1;
    while (o + 1010 < n) {
        s[o++] = '"';
        for (int i = 0; i < 1000; i++)
            s[o++] = (char)('a' + i % 26);
        s[o++] = '"';
        s[o++] = ',';
    }
    s[o - 1] = ']';
    double t0 = now_sec();
    assert_int_equal(nana_json_validate(s, o, 0, DEPTH), 0);
    double dt = now_sec() - t0;
    fprintf(stderr, "validate: %.0f MB/s on ASCII strings\n", (double)o / 1e6 / dt);
    t0 = now_sec();
    nana_json_doc *doc;
    nana_json *v;
    assert_int_equal(nana_json_parse(s, o, 0, DEPTH, &doc, &v), 0);
    dt = now_sec() - t0;
    fprintf(stderr, "parse:    %.0f MB/s on ASCII strings\n", (double)o / 1e6 / dt);
    nana_json_doc_free(doc);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_error_messages),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_deep_nesting_refused),
        cmocka_unit_test(test_string_decoding),
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_big_integers_verbatim),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_big_object),
        cmocka_unit_test(test_double_format),
        cmocka_unit_test(test_int64_limits),
        cmocka_unit_test(test_object_ops),
        cmocka_unit_test(test_object_model),
        cmocka_unit_test(test_clone_equal),
        cmocka_unit_test(test_write_string),
        cmocka_unit_test(test_validate_speed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
