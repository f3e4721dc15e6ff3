/*
 * test_mp.c - the strict msgpack codec: the frames captured from the real
 * Python client and server (shared/wire-samples-nanasqlite.txt) decode and
 * encode byte for byte; every integer width; round trips through JSON; and
 * bad input of every kind is refused without reading past the end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "proto/nana_mp.h"
#include "util/nana_err.h"
#include "util/nana_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Hex to bytes; returns the length. */
static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = strlen(hex) / 2;
    assert_true(n <= cap);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
    return n;
}

/* msgpack (hex, without the frame's 4-byte length) to JSON text. */
static int to_json(const char *hex, nana_buf *out)
{
    uint8_t b[512];
    size_t n = unhex(hex, b, sizeof(b));
    nana_mp_reader r;
    nana_mp_reader_init(&r, b, n);
    nana_buf_reset(out);
    int rc = nana_mp_to_json(&r, out, 64);
    if (!rc) assert_int_equal(nana_mp_left(&r), 0);
    return rc;
}

static void assert_hex(const nana_buf *b, const char *hex)
{
    uint8_t want[512];
    size_t n = unhex(hex, want, sizeof(want));
    assert_int_equal(b->len, n);
    assert_memory_equal(b->data, want, n);
}

static void test_wire_samples(void **state)
{
    (void)state;
    nana_buf j;
    nana_buf_init(&j, 0);
    /* {'method': '__setitem__', 'args': ['hello', 'world'], 'kwargs': {}} */
    assert_int_equal(
        to_json("83a66d6574686f64ab5f5f7365746974656d5f5fa46172677392a568656c6c6fa5776f72"
                "6c64a66b776172677380",
                &j),
        0);
    assert_string_equal(j.data, "{\"method\":\"__setitem__\",\"args\":[\"hello\",\"world\"],"
                                "\"kwargs\":{}}");
    /* {'method': '__setitem__', 'args': ['nested', {'a': [1, 2.5, None, True], 'b': 'あ'}], ...} */
    assert_int_equal(
        to_json("83a66d6574686f64ab5f5f7365746974656d5f5fa46172677392a66e657374656482a1"
                "619401cb4004000000000000c0c3a162a3e38182a66b776172677380",
                &j),
        0);
    assert_string_equal(j.data, "{\"method\":\"__setitem__\",\"args\":[\"nested\",{\"a\":[1,2.5,"
                                "null,true],\"b\":\"\xe3\x81\x82\"}],\"kwargs\":{}}");
    /* The replies, encoded by us, byte for byte. */
    nana_buf b;
    nana_buf_init(&b, 0);
    assert_int_equal(nana_mp_put_map(&b, 2), 0);
    assert_int_equal(nana_mp_put_cstr(&b, "status"), 0);
    assert_int_equal(nana_mp_put_cstr(&b, "success"), 0);
    assert_int_equal(nana_mp_put_cstr(&b, "result"), 0);
    assert_int_equal(nana_mp_put_nil(&b), 0);
    assert_hex(&b, "82a6737461747573a773756363657373a6726573756c74c0");
    nana_buf_reset(&b);
    const char *nested = "{\"a\":[1,2.5,null,true],\"b\":\"\xe3\x81\x82\"}";
    assert_int_equal(nana_mp_from_json_text(&b, nested, strlen(nested)), 0);
    assert_hex(&b, "82a1619401cb4004000000000000c0c3a162a3e38182");
    nana_buf_reset(&b);
    assert_int_equal(nana_mp_put_map(&b, 3), 0);
    assert_int_equal(nana_mp_put_cstr(&b, "status"), 0);
    assert_int_equal(nana_mp_put_cstr(&b, "error"), 0);
    assert_int_equal(nana_mp_put_cstr(&b, "error_type"), 0);
    assert_int_equal(nana_mp_put_cstr(&b, "KeyError"), 0);
    assert_int_equal(nana_mp_put_cstr(&b, "message"), 0);
    assert_int_equal(nana_mp_put_cstr(&b, "'no-such-key'"), 0);
    assert_hex(&b, "83a6737461747573a56572726f72aa6572726f725f74797065a84b65794572726f72a76d65"
                   "7373616765ad276e6f2d737563682d6b657927");
    nana_buf_reset(&b);
    assert_int_equal(nana_mp_put_uint(&b, 2806), 0); /* __len__ -> 2806 */
    assert_hex(&b, "cd0af6");
    /* The challenge: 32 bytes as bin 8. */
    nana_buf_reset(&b);
    uint8_t zero[32] = {0};
    assert_int_equal(nana_mp_put_bin(&b, zero, 32), 0);
    assert_int_equal(b.len, 34);
    assert_int_equal((uint8_t)b.data[0], 0xc4);
    assert_int_equal((uint8_t)b.data[1], 32);
    nana_buf_free(&b);
    nana_buf_free(&j);
}

static void test_integer_widths(void **state)
{
    (void)state;
    static const struct {
        int64_t v;
        const char *hex;
    } cases[] = {
        {0, "00"},
        {127, "7f"},
        {128, "cc80"},
        {255, "ccff"},
        {256, "cd0100"},
        {65535, "cdffff"},
        {65536, "ce00010000"},
        {-1, "ff"},
        {-32, "e0"},
        {-33, "d0df"},
        {-128, "d080"},
        {-129, "d1ff7f"},
        {-32768, "d18000"},
        {-32769, "d2ffff7fff"},
        {4294967296LL, "cf0000000100000000"},
        {INT64_MIN, "d38000000000000000"},
    };
    nana_buf b, j;
    nana_buf_init(&b, 0);
    nana_buf_init(&j, 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        nana_buf_reset(&b);
        assert_int_equal(nana_mp_put_int(&b, cases[i].v), 0);
        assert_hex(&b, cases[i].hex);
        assert_int_equal(to_json(cases[i].hex, &j), 0);
        char want[32];
        snprintf(want, sizeof(want), "%lld", (long long)cases[i].v);
        assert_string_equal(j.data, want);
    }
    /* Above INT64_MAX: uint64 both ways. */
    assert_int_equal(to_json("cfffffffffffffffff", &j), 0);
    assert_string_equal(j.data, "18446744073709551615");
    nana_buf_reset(&b);
    assert_int_equal(nana_mp_from_json_text(&b, "18446744073709551615", 20), 0);
    assert_hex(&b, "cfffffffffffffffff");
    /* Beyond 64 bits: msgpack has no such integer. */
    nana_buf_reset(&b);
    assert_int_equal(nana_mp_from_json_text(&b, "18446744073709551616", 20), NANA_ERR_TOOBIG);
    assert_int_equal(nana_mp_from_json_text(&b, "-9223372036854775809", 20), NANA_ERR_TOOBIG);
    /* float32 widens; float64 prints like Python. */
    assert_int_equal(to_json("ca3fc00000", &j), 0);
    assert_string_equal(j.data, "1.5");
    assert_int_equal(to_json("cb3fb999999999999a", &j), 0);
    assert_string_equal(j.data, "0.1");
    nana_buf_free(&b);
    nana_buf_free(&j);
}

static void test_round_trip(void **state)
{
    (void)state;
    static const char *docs[] = {
        "null",
        "true",
        "false",
        "0",
        "-5",
        "1e+100",
        "\"\"",
        "[]",
        "{}",
        "{\"k\":[1,[2,[3,{\"x\":\"y\\n\\u0000z\"}]]],\"e\":{},\"l\":[]}",
        "[1.5,-0.0,123456789,\"\xf0\x9f\x98\x80\"]",
    };
    nana_buf b, j;
    nana_buf_init(&b, 0);
    nana_buf_init(&j, 0);
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        nana_buf_reset(&b);
        nana_buf_reset(&j);
        assert_int_equal(nana_mp_from_json_text(&b, docs[i], strlen(docs[i])), 0);
        nana_mp_reader r;
        nana_mp_reader_init(&r, b.data, b.len);
        assert_int_equal(nana_mp_to_json(&r, &j, 64), 0);
        assert_string_equal(j.data, docs[i]); /* the text comes back as it was */
        nana_mp_reader_init(&r, b.data, b.len);
        assert_int_equal(nana_mp_skip(&r, 64), 0);
        assert_int_equal(nana_mp_left(&r), 0);
    }
    nana_buf_free(&b);
    nana_buf_free(&j);
}

static void test_refusals(void **state)
{
    (void)state;
    nana_buf j;
    nana_buf_init(&j, 0);
    /* What JSON cannot hold, with Python's words. */
    assert_int_equal(to_json("c403616263", &j), NANA_ERR_TYPE); /* bin */
    assert_non_null(strstr(nana_errmsg(), "bytes is not JSON serializable"));
    assert_int_equal(to_json("d40105", &j), NANA_ERR_TYPE); /* fixext 1 */
    assert_int_equal(to_json("81010a", &j), NANA_ERR_TYPE); /* {1: 10} */
    assert_non_null(strstr(nana_errmsg(), "keys must be str"));
    assert_int_equal(to_json("cb7ff8000000000000", &j), NANA_ERR_INVALID); /* NaN */
    assert_non_null(strstr(nana_errmsg(), "Out of range float values"));
    assert_int_equal(to_json("cb7ff0000000000000", &j), NANA_ERR_INVALID); /* inf */
    assert_int_equal(to_json("a2c328", &j), NANA_ERR_INVALID);             /* not UTF-8 */
    /* A key twice: a Python dict cannot send it, and either reading would be a guess. */
    assert_int_equal(to_json("82a16101a16102", &j), NANA_ERR_INVALID);
    assert_non_null(strstr(nana_errmsg(), "twice"));
    assert_int_equal(to_json("9282a16101a1620182a16101a16102", &j), NANA_ERR_INVALID);
    assert_int_equal(to_json("82a16101a16201", &j), 0); /* distinct keys are fine */
    /* Maps with more keys than fit on the C stack, nested. */
    for (int dup = 0; dup < 2; dup++) {
        nana_buf m;
        nana_buf_init(&m, 0);
        assert_int_equal(nana_mp_put_map(&m, 100), 0);
        for (int i = 0; i < 100; i++) {
            char k[16];
            snprintf(k, sizeof(k), "k%d", dup && i == 99 ? 57 : i);
            assert_int_equal(nana_mp_put_cstr(&m, k), 0);
            assert_int_equal(nana_mp_put_map(&m, 40), 0);
            for (int j2 = 0; j2 < 40; j2++) {
                snprintf(k, sizeof(k), "i%d", j2);
                assert_int_equal(nana_mp_put_cstr(&m, k), 0);
                assert_int_equal(nana_mp_put_int(&m, j2), 0);
            }
        }
        nana_mp_reader r;
        nana_mp_reader_init(&r, m.data, m.len);
        nana_buf_reset(&j);
        assert_int_equal(nana_mp_to_json(&r, &j, 64), dup ? NANA_ERR_INVALID : 0);
        nana_buf_free(&m);
    }
    /* Malformed msgpack. */
    assert_int_equal(to_json("c1", &j), NANA_ERR_INVALID);
    assert_int_equal(to_json("", &j), NANA_ERR_INVALID);
    assert_int_equal(to_json("dd7fffffff00", &j), NANA_ERR_INVALID); /* count lies */
    assert_int_equal(to_json("df0000ffff0000", &j), NANA_ERR_INVALID);
    assert_int_equal(to_json("dbffffffff41", &j), NANA_ERR_INVALID); /* length lies */
    assert_int_equal(to_json("92a161", &j), NANA_ERR_INVALID);       /* one element short */
    assert_int_equal(to_json("cd01", &j), NANA_ERR_INVALID);
    /* Every prefix of a real request is refused, never read past. */
    uint8_t req[256];
    size_t n = unhex("83a66d6574686f64ab5f5f7365746974656d5f5fa46172677392a66e657374656482a16194"
                     "01cb4004000000000000c0c3a162a3e38182a66b776172677380",
                     req, sizeof(req));
    for (size_t cut = 0; cut < n; cut++) {
        uint8_t *copy = malloc(cut ? cut : 1); /* exact size: ASan sees any over-read */
        memcpy(copy, req, cut);
        nana_mp_reader r;
        nana_mp_reader_init(&r, copy, cut);
        nana_buf_reset(&j);
        assert_int_not_equal(nana_mp_to_json(&r, &j, 64), 0);
        nana_mp_reader_init(&r, copy, cut);
        assert_int_not_equal(nana_mp_skip(&r, 64), 0);
        free(copy);
    }
    /* Deep nesting: 200 one-element arrays. */
    uint8_t deep[201];
    memset(deep, 0x91, 200);
    deep[200] = 0xc0;
    nana_mp_reader r;
    nana_mp_reader_init(&r, deep, sizeof(deep));
    assert_int_equal(nana_mp_to_json(&r, &j, 64), NANA_ERR_TOOBIG);
    nana_mp_reader_init(&r, deep, sizeof(deep));
    assert_int_equal(nana_mp_skip(&r, 32), NANA_ERR_TOOBIG);
    nana_mp_reader_init(&r, deep + 150, sizeof(deep) - 150);
    assert_int_equal(nana_mp_skip(&r, 64), 0);
    nana_buf_free(&j);
}

/*
 * One way of counting nesting everywhere: the value itself and empty
 * containers count, so the transcoder, the skipper and the JSON validator
 * agree at every depth; and neither goes past NANA_MP_MAX_DEPTH, whatever
 * the caller asks, with no recursion (the cap bounds their stacks).
 */
static void test_depth_counting(void **state)
{
    (void)state;
    enum { N = NANA_MP_MAX_DEPTH + 2 };
    static uint8_t mp[N + 1];
    static char json[2 * N + 1];
    nana_buf j;
    nana_buf_init(&j, 0);
    static const unsigned limits[] = {1, 2, 64, 127, 128, 129, NANA_MP_MAX_DEPTH};
    for (size_t li = 0; li < sizeof(limits) / sizeof(limits[0]); li++) {
        unsigned lim = limits[li];
        for (unsigned d = lim - 1; d <= lim + 1; d++) {
            /* d nested lists, the innermost empty; and the same with a map on top */
            for (unsigned map = 0; map <= 1 && map <= d; map++) {
                size_t n = 0;
                if (map) {
                    mp[n++] = 0x81;
                    mp[n++] = 0xa1;
                    mp[n++] = 'k';
                }
                for (unsigned i = map; i + 1 < d; i++)
                    mp[n++] = 0x91;
                if (d > map)
                    mp[n++] = 0x90;
                else
                    mp[n++] = 0xc0; /* a scalar (d == 0), or the map's value (d == 1) */
                bool fits = d <= lim;
                nana_mp_reader r;
                nana_mp_reader_init(&r, mp, n);
                nana_buf_reset(&j);
                int rc = nana_mp_to_json(&r, &j, lim);
                assert_int_equal(rc, fits ? 0 : NANA_ERR_TOOBIG);
                if (rc) {
                    char want[48];
                    snprintf(want, sizeof(want), "nested deeper than %u levels", lim);
                    assert_string_equal(nana_errmsg(), want);
                } else {
                    assert_int_equal(nana_json_validate(j.data, j.len, 0, lim), 0);
                    if (d) assert_int_not_equal(nana_json_validate(j.data, j.len, 0, d - 1), 0);
                }
                nana_mp_reader_init(&r, mp, n);
                assert_int_equal(nana_mp_skip(&r, lim), fits ? 0 : NANA_ERR_TOOBIG);
            }
        }
        /* the JSON validator counts the same way on the same shape */
        memset(json, '[', lim);
        memset(json + lim, ']', lim);
        assert_int_equal(nana_json_validate(json, 2 * (size_t)lim, 0, lim), 0);
        assert_int_not_equal(nana_json_validate(json, 2 * (size_t)lim, 0, lim - 1), 0);
    }
    /* Asking for more than the cap gets the cap. */
    for (unsigned d = NANA_MP_MAX_DEPTH; d <= NANA_MP_MAX_DEPTH + 1; d++) {
        memset(mp, 0x91, d - 1);
        mp[d - 1] = 0x90;
        nana_mp_reader r;
        nana_mp_reader_init(&r, mp, d);
        nana_buf_reset(&j);
        int want = d <= NANA_MP_MAX_DEPTH ? 0 : NANA_ERR_TOOBIG;
        assert_int_equal(nana_mp_to_json(&r, &j, 100000), want);
        nana_mp_reader_init(&r, mp, d);
        assert_int_equal(nana_mp_skip(&r, 100000), want);
    }
    nana_buf_free(&j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wire_samples),   cmocka_unit_test(test_integer_widths),
        cmocka_unit_test(test_round_trip),     cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_depth_counting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
