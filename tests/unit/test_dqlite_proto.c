/*
 * test_dqlite_proto.c - the dqlite wire codec without a server: every
 * request encoded byte for byte as the protocol's reference describes it,
 * parameter tuples decoded back (round trips), every response decoded from
 * hand-made bytes, and truncated, overflowing and garbage bodies refused
 * with an error (under ASan: without reading past the end).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "dqlite/dqlite_int.h"
#include "dqlite/nana_dqlite.h"
#include "util/nana_err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- building bytes by hand ---- */

static void w64(nana_buf *b, uint64_t v)
{
    uint8_t w[8];
    for (int i = 0; i < 8; i++)
        w[i] = (uint8_t)(v >> (8 * i));
    assert_int_equal(nana_buf_append(b, w, 8), 0);
}

static void w32x2(nana_buf *b, uint32_t x, uint32_t y)
{
    w64(b, (uint64_t)x | (uint64_t)y << 32);
}

/* A text padded with zeros to the word. */
static void wtext(nana_buf *b, const char *s)
{
    size_t n = strlen(s) + 1;
    assert_int_equal(nana_buf_append(b, s, n), 0);
    while (n % 8) {
        assert_int_equal(nana_buf_putc(b, 0), 0);
        n++;
    }
}

static void wbytes(nana_buf *b, const void *p, size_t n)
{
    assert_int_equal(nana_buf_append(b, p, n), 0);
}

/* The header word of a request with |words| of body. */
static void whead(nana_buf *b, uint32_t words, uint8_t type, uint8_t schema)
{
    uint8_t h[8] = {(uint8_t)words,
                    (uint8_t)(words >> 8),
                    (uint8_t)(words >> 16),
                    (uint8_t)(words >> 24),
                    type,
                    schema,
                    0,
                    0};
    wbytes(b, h, 8);
}

static void assert_same(const nana_buf *got, const nana_buf *want)
{
    assert_int_equal(got->len, want->len);
    assert_memory_equal(got->data, want->data, want->len);
}

/* A malloc'd copy of |n| bytes (rows_feed takes its body). */
static uint8_t *dup_bytes(const void *p, size_t n)
{
    uint8_t *c = malloc(n ? n : 1);
    assert_non_null(c);
    if (n) memcpy(c, p, n);
    return c;
}

/* ---- headers ---- */

static void test_header(void **state)
{
    (void)state;
    nana_dql_limits lim;
    nana_dql_limits_default(&lim);
    nana_dql_header h;
    const uint8_t b[8] = {2, 1, 0, 0, 7, 1, 0, 0};
    assert_int_equal(nana_dql_header_decode(b, &lim, &h), 0);
    assert_int_equal(h.words, 258);
    assert_int_equal(h.type, 7);
    assert_int_equal(h.schema, 1);
    /* Past the body limit: refused before anything is read. */
    lim.body_max = 258 * 8 - 8;
    assert_int_equal(nana_dql_header_decode(b, &lim, &h), NANA_ERR_TOOBIG);
    assert_non_null(strstr(nana_errmsg(), "limit"));
    const uint8_t huge[8] = {0xff, 0xff, 0xff, 0xff, 7, 0, 0, 0};
    nana_dql_limits_default(&lim);
    assert_int_equal(nana_dql_header_decode(huge, &lim, &h), NANA_ERR_TOOBIG);
}

/* ---- requests ---- */

static void test_simple_requests(void **state)
{
    (void)state;
    nana_buf got, want;
    nana_buf_init(&got, 0);
    nana_buf_init(&want, 0);

    assert_int_equal(nana_dql_enc_handshake(&got), 0);
    w64(&want, 1);
    assert_same(&got, &want);

#define CHECK_WORD(call, type, value)                                                              \
    do {                                                                                           \
        nana_buf_reset(&got);                                                                      \
        nana_buf_reset(&want);                                                                     \
        assert_int_equal(call, 0);                                                                 \
        whead(&want, 1, type, 0);                                                                  \
        w64(&want, value);                                                                         \
        assert_same(&got, &want);                                                                  \
    } while (0)
    CHECK_WORD(nana_dql_enc_leader(&got), 0, 0);
    CHECK_WORD(nana_dql_enc_client(&got, 77), 1, 77);
    CHECK_WORD(nana_dql_enc_interrupt(&got, 3), 10, 3);
    CHECK_WORD(nana_dql_enc_remove(&got, 0x1122334455667788ULL), 14, 0x1122334455667788ULL);
    CHECK_WORD(nana_dql_enc_cluster(&got), 16, 1);
    CHECK_WORD(nana_dql_enc_transfer(&got, 2), 17, 2);
    CHECK_WORD(nana_dql_enc_finalize(&got, 1, 9), 7, 1 | (uint64_t)9 << 32);
#undef CHECK_WORD

    /* OPEN: name, flags, VFS. "test.db" and its NUL fill one word exactly. */
    nana_buf_reset(&got);
    nana_buf_reset(&want);
    assert_int_equal(nana_dql_enc_open(&got, "test.db"), 0);
    whead(&want, 3, 3, 0);
    wtext(&want, "test.db");
    w64(&want, 0);
    wtext(&want, "");
    assert_same(&got, &want);

    /* PREPARE: "SELECT 1" is eight bytes, its NUL takes a second word. */
    nana_buf_reset(&got);
    nana_buf_reset(&want);
    assert_int_equal(nana_dql_enc_prepare(&got, 5, "SELECT 1"), 0);
    whead(&want, 3, 4, 0);
    w64(&want, 5);
    wtext(&want, "SELECT 1");
    assert_same(&got, &want);

    /* ADD: id and address; ASSIGN: id and role. */
    nana_buf_reset(&got);
    nana_buf_reset(&want);
    assert_int_equal(nana_dql_enc_add(&got, 2, "127.0.0.1:9002"), 0);
    whead(&want, 3, 12, 0);
    w64(&want, 2);
    wtext(&want, "127.0.0.1:9002");
    assert_same(&got, &want);
    nana_buf_reset(&got);
    nana_buf_reset(&want);
    assert_int_equal(nana_dql_enc_assign(&got, 2, NANA_DQL_VOTER), 0);
    whead(&want, 2, 13, 0);
    w64(&want, 2);
    w64(&want, 0);
    assert_same(&got, &want);

    /* EXEC_SQL without parameters: no tuple at all. */
    nana_buf_reset(&got);
    nana_buf_reset(&want);
    assert_int_equal(nana_dql_enc_exec_sql(&got, 1, "BEGIN", NULL, 0), 0);
    whead(&want, 2, 8, 0);
    w64(&want, 1);
    wtext(&want, "BEGIN");
    assert_same(&got, &want);
    nana_buf_reset(&got);
    assert_int_equal(nana_dql_enc_query_sql(&got, 1, "BEGIN", NULL, 0), 0);
    ((uint8_t *)want.data)[4] = 9;
    assert_same(&got, &want);

    nana_buf_free(&got);
    nana_buf_free(&want);
}

/* EXEC with one parameter of every kind, byte for byte. */
static void test_exec_params_bytes(void **state)
{
    (void)state;
    nana_buf got, want;
    nana_buf_init(&got, 0);
    nana_buf_init(&want, 0);
    const uint8_t blob[3] = {1, 2, 3};
    nana_dql_value p[5] = {nana_dql_int(-2), nana_dql_text("ab", 2), nana_dql_null(),
                           nana_dql_float(1.5), nana_dql_blob(blob, 3)};
    assert_int_equal(nana_dql_enc_exec(&got, 1, 2, p, 5), 0);
    whead(&want, 8, 5, 0);
    w32x2(&want, 1, 2);
    const uint8_t types[8] = {5, 1, 3, 5, 2, 4, 0, 0};
    wbytes(&want, types, 8);
    w64(&want, (uint64_t)-2);
    wtext(&want, "ab");
    w64(&want, 0);
    w64(&want, 0x3ff8000000000000ULL); /* 1.5 */
    w64(&want, 3);
    const uint8_t padded[8] = {1, 2, 3, 0, 0, 0, 0, 0};
    wbytes(&want, padded, 8);
    assert_same(&got, &want);

    /* QUERY is the same body with type 6. */
    nana_buf_reset(&got);
    assert_int_equal(nana_dql_enc_query(&got, 1, 2, p, 5), 0);
    ((uint8_t *)want.data)[4] = 6;
    assert_same(&got, &want);

    /* Eight parameters: count and types take nine bytes, so two words. */
    nana_dql_value eight[8];
    for (int i = 0; i < 8; i++)
        eight[i] = nana_dql_int(i);
    nana_buf_reset(&got);
    nana_buf_reset(&want);
    assert_int_equal(nana_dql_enc_exec(&got, 1, 2, eight, 8), 0);
    whead(&want, 11, 5, 0);
    w32x2(&want, 1, 2);
    const uint8_t types8[16] = {8, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0};
    wbytes(&want, types8, 16);
    for (int i = 0; i < 8; i++)
        w64(&want, (uint64_t)i);
    assert_same(&got, &want);
    nana_buf_free(&got);
    nana_buf_free(&want);
}

/* Parameters the protocol cannot carry are refused, and the buffer keeps
 * only the whole messages before. */
static void test_params_refused(void **state)
{
    (void)state;
    nana_buf b;
    nana_buf_init(&b, 0);
    assert_int_equal(nana_dql_enc_leader(&b), 0);
    size_t before = b.len;

    nana_dql_value many[256];
    for (int i = 0; i < 256; i++)
        many[i] = nana_dql_int(i);
    assert_int_equal(nana_dql_enc_exec(&b, 1, 1, many, 256), NANA_ERR_TOOBIG);
    assert_int_equal(b.len, before);
    assert_int_equal(nana_dql_enc_exec(&b, 1, 1, many, 255), 0); /* the limit itself */
    b.len = before;

    nana_dql_value nul = nana_dql_text("a\0b", 3);
    assert_int_equal(nana_dql_enc_query(&b, 1, 1, &nul, 1), NANA_ERR_INVALID);
    assert_non_null(strstr(nana_errmsg(), "NUL"));
    assert_int_equal(b.len, before);

    nana_dql_value t = nana_dql_int(5);
    t.type = NANA_DQL_UNIXTIME; /* dqlite's parameter decoder has no such type */
    assert_int_equal(nana_dql_enc_exec(&b, 1, 1, &t, 1), NANA_ERR_INVALID);
    t.type = 99;
    assert_int_equal(nana_dql_enc_exec(&b, 1, 1, &t, 1), NANA_ERR_INVALID);
    assert_int_equal(b.len, before);

    assert_int_equal(nana_dql_enc_exec(&b, 1, 1, NULL, 2), NANA_ERR_INVALID);
    assert_int_equal(nana_dql_enc_prepare(&b, 1, NULL), NANA_ERR_INVALID);
    assert_int_equal(b.len, before);

    /* An output limit: the message is taken back out whole. */
    nana_buf small;
    nana_buf_init(&small, 20);
    assert_int_equal(nana_dql_enc_prepare(&small, 1, "SELECT * FROM a_long_table_name"),
                     NANA_ERR_TOOBIG);
    assert_int_equal(small.len, 0);
    nana_buf_free(&small);
    nana_buf_free(&b);
}

/* Encodes |n| parameters and reads them back with the response readers. */
static void roundtrip_params(const nana_dql_value *p, size_t n)
{
    nana_buf b;
    nana_buf_init(&b, 0);
    assert_int_equal(nana_dql_enc_exec_sql(&b, 4, "X", p, n), 0);
    assert_int_equal(b.len % 8, 0);
    dql_rd r = {(const uint8_t *)b.data + 8, b.len - 8};
    assert_int_equal(dql_le32((const uint8_t *)b.data), (b.len - 8) / 8);
    uint64_t db;
    const char *sql;
    assert_int_equal(dql_rd_u64(&r, &db, "db"), 0);
    assert_int_equal(db, 4);
    assert_int_equal(dql_rd_text(&r, &sql, NULL, "sql"), 0);
    assert_string_equal(sql, "X");
    assert_true(r.left > 0);
    size_t count = r.p[0];
    assert_int_equal(count, n);
    const uint8_t *types = r.p + 1;
    size_t head = dql_pad8(1 + n);
    r.p += head;
    r.left -= head;
    for (size_t i = 0; i < n; i++) {
        nana_dql_value v;
        assert_int_equal(dql_rd_value(&r, types[i], &v), 0);
        assert_int_equal(v.type, p[i].type);
        switch (v.type) {
        case NANA_DQL_INTEGER:
            assert_true(v.i == p[i].i);
            break;
        case NANA_DQL_FLOAT:
            assert_memory_equal(&v.f, &p[i].f, sizeof(double));
            break;
        case NANA_DQL_TEXT:
            assert_int_equal(v.len, p[i].len);
            assert_memory_equal(v.p, p[i].p, v.len);
            assert_int_equal(v.p[v.len], 0);
            break;
        case NANA_DQL_BLOB:
            assert_int_equal(v.len, p[i].len);
            if (v.len) assert_memory_equal(v.p, p[i].p, v.len);
            break;
        default:
            break;
        }
    }
    assert_int_equal(r.left, 0);
    nana_buf_free(&b);
}

static void test_params_roundtrip(void **state)
{
    (void)state;
    char text[40];
    uint8_t blob[17];
    for (size_t i = 0; i < sizeof(blob); i++)
        blob[i] = (uint8_t)(0xa0 + i);
    nana_dql_value p[64];
    /* Texts and blobs of every length around the word boundaries. */
    for (size_t len = 0; len < 17; len++) {
        memset(text, 'x', len);
        text[len] = 0;
        size_t n = 0;
        p[n++] = nana_dql_text(text, len);
        p[n++] = nana_dql_blob(blob, len);
        p[n++] = nana_dql_int(INT64_MIN + (int64_t)len);
        p[n++] = nana_dql_float(-0.1 * (double)len);
        p[n++] = nana_dql_null();
        roundtrip_params(p, n);
    }
    for (size_t n = 1; n <= 64; n++) {
        for (size_t i = 0; i < n; i++)
            p[i] = (i % 3) ? nana_dql_int((int64_t)i) : nana_dql_text("hello", 5);
        roundtrip_params(p, n);
    }
}

/* ---- responses ---- */

static void test_responses(void **state)
{
    (void)state;
    nana_buf b;
    nana_buf_init(&b, 0);
    nana_dql_response r;

    w64(&b, 1);
    wtext(&b, "near \"SELEC\": syntax error");
    assert_int_equal(nana_dql_response_decode(0, (uint8_t *)b.data, b.len, &r), 0);
    assert_int_equal(r.code, 1);
    assert_string_equal(r.message, "near \"SELEC\": syntax error");

    nana_buf_reset(&b);
    w64(&b, 3);
    wtext(&b, "127.0.0.1:9003");
    assert_int_equal(nana_dql_response_decode(1, (uint8_t *)b.data, b.len, &r), 0);
    assert_int_equal(r.leader.id, 3);
    assert_string_equal(r.leader.address, "127.0.0.1:9003");

    nana_buf_reset(&b); /* no leader: id 0, empty address */
    w64(&b, 0);
    wtext(&b, "");
    assert_int_equal(nana_dql_response_decode(1, (uint8_t *)b.data, b.len, &r), 0);
    assert_int_equal(r.leader.id, 0);
    assert_string_equal(r.leader.address, "");

    nana_buf_reset(&b);
    w64(&b, 15000);
    assert_int_equal(nana_dql_response_decode(2, (uint8_t *)b.data, b.len, &r), 0);
    assert_int_equal(r.heartbeat, 15000);

    nana_buf_reset(&b);
    w64(&b, 3);
    for (int i = 1; i <= 3; i++) {
        char a[32];
        snprintf(a, sizeof(a), "10.0.0.%d:900%d", i, i);
        w64(&b, (uint64_t)i);
        wtext(&b, a);
        w64(&b, (uint64_t)(i - 1));
    }
    assert_int_equal(nana_dql_response_decode(3, (uint8_t *)b.data, b.len, &r), 0);
    assert_int_equal(r.nnodes, 3);
    assert_int_equal(r.nodes[2].id, 3);
    assert_string_equal(r.nodes[1].address, "10.0.0.2:9002");
    assert_int_equal(r.nodes[0].role, NANA_DQL_VOTER);
    assert_int_equal(r.nodes[2].role, NANA_DQL_SPARE);
    nana_dql_response_free(&r);

    nana_buf_reset(&b);
    w32x2(&b, 7, 0);
    assert_int_equal(nana_dql_response_decode(4, (uint8_t *)b.data, b.len, &r), 0);
    assert_int_equal(r.db, 7);

    nana_buf_reset(&b);
    w32x2(&b, 7, 12);
    w64(&b, 3);
    assert_int_equal(nana_dql_response_decode(5, (uint8_t *)b.data, b.len, &r), 0);
    assert_int_equal(r.db, 7);
    assert_int_equal(r.stmt, 12);
    assert_int_equal(r.params, 3);

    nana_buf_reset(&b);
    w64(&b, 1001);
    w64(&b, 1);
    assert_int_equal(nana_dql_response_decode(6, (uint8_t *)b.data, b.len, &r), 0);
    assert_int_equal(r.last_insert_id, 1001);
    assert_int_equal(r.rows_affected, 1);

    nana_buf_reset(&b);
    w64(&b, 0);
    assert_int_equal(nana_dql_response_decode(8, (uint8_t *)b.data, b.len, &r), 0);

    /* ROWS go through nana_dql_rows_feed; unknown types are refused. */
    assert_int_equal(nana_dql_response_decode(7, (uint8_t *)b.data, b.len, &r), NANA_ERR_INTERNAL);
    assert_int_equal(nana_dql_response_decode(9, (uint8_t *)b.data, b.len, &r), NANA_ERR_INVALID);
    assert_int_equal(nana_dql_response_decode(200, (uint8_t *)b.data, b.len, &r), NANA_ERR_INVALID);
    nana_buf_free(&b);
}

/* A well-formed body of each type (by type), for the truncation sweep. */
static void sample_body(uint8_t type, nana_buf *b)
{
    nana_buf_reset(b);
    switch (type) {
    case 0:
        w64(b, 19);
        wtext(b, "UNIQUE constraint failed: t.k");
        break;
    case 1:
        w64(b, 1);
        wtext(b, "127.0.0.1:9001");
        break;
    case 3:
        w64(b, 2);
        w64(b, 1);
        wtext(b, "127.0.0.1:9001");
        w64(b, 0);
        w64(b, 2);
        wtext(b, "127.0.0.1:9002");
        w64(b, 1);
        break;
    case 5:
        w32x2(b, 1, 2);
        w64(b, 0);
        break;
    case 6:
        w64(b, 1);
        w64(b, 1);
        break;
    default: /* 2, 4, 8: one word */
        w64(b, 0);
        break;
    }
}

/* Every prefix of every response, and every body with a word too many,
 * is refused; nothing is read past the end (ASan on an exact-size copy). */
static void test_responses_truncated(void **state)
{
    (void)state;
    nana_buf b;
    nana_buf_init(&b, 0);
    const uint8_t types[] = {0, 1, 2, 3, 4, 5, 6, 8};
    for (size_t t = 0; t < sizeof(types); t++) {
        sample_body(types[t], &b);
        for (size_t len = 0; len < b.len; len++) {
            uint8_t *c = dup_bytes(b.data, len);
            nana_dql_response r;
            assert_int_equal(nana_dql_response_decode(types[t], c, len, &r), NANA_ERR_INVALID);
            assert_null(r.nodes);
            free(c);
        }
        w64(&b, 0);
        nana_dql_response r;
        assert_int_equal(nana_dql_response_decode(types[t], (uint8_t *)b.data, b.len, &r),
                         NANA_ERR_INVALID);
        assert_non_null(strstr(nana_errmsg(), "after the end"));
    }
    nana_buf_free(&b);
}

static void test_responses_garbage(void **state)
{
    (void)state;
    nana_buf b;
    nana_buf_init(&b, 0);
    nana_dql_response r;

    /* A text with no NUL before the end. */
    w64(&b, 1);
    wbytes(&b, "abcdefgh", 8);
    uint8_t *c = dup_bytes(b.data, b.len);
    assert_int_equal(nana_dql_response_decode(0, c, b.len, &r), NANA_ERR_INVALID);
    assert_non_null(strstr(nana_errmsg(), "no end"));
    free(c);

    /* A node count the body cannot hold: refused before allocating. */
    nana_buf_reset(&b);
    w64(&b, UINT64_MAX);
    w64(&b, 1);
    wtext(&b, "a");
    w64(&b, 0);
    assert_int_equal(nana_dql_response_decode(3, (uint8_t *)b.data, b.len, &r), NANA_ERR_INVALID);
    assert_null(r.nodes);
    nana_buf_reset(&b);
    w64(&b, 2); /* two announced (enough bytes for two), the second cut short */
    w64(&b, 1);
    wtext(&b, "10.100.200.1:65535, long");
    w64(&b, 0);
    w64(&b, 2);
    assert_int_equal(nana_dql_response_decode(3, (uint8_t *)b.data, b.len, &r), NANA_ERR_INVALID);
    assert_null(r.nodes);
    nana_buf_reset(&b); /* an unknown role */
    w64(&b, 1);
    w64(&b, 1);
    wtext(&b, "a");
    w64(&b, 3);
    assert_int_equal(nana_dql_response_decode(3, (uint8_t *)b.data, b.len, &r), NANA_ERR_INVALID);

    /* A body that is not whole words. */
    nana_buf_reset(&b);
    w64(&b, 0);
    assert_int_equal(nana_dql_response_decode(8, (uint8_t *)b.data, 7, &r), NANA_ERR_INVALID);
    nana_buf_free(&b);
}

/* ---- rows ---- */

/* A row header for |n| columns of |types|, nibbles low first, padded. */
static void wrow_head(nana_buf *b, const uint8_t *types, size_t n)
{
    uint8_t h[64] = {0};
    for (size_t i = 0; i < n; i++)
        h[i / 2] |= (uint8_t)(types[i] << (4 * (i % 2)));
    wbytes(b, h, dql_pad8((n + 1) / 2));
}

/* The ROWS body of the every-type table: 8 columns, 2 rows, then |marker|. */
static void rows_body(nana_buf *b, uint64_t marker, int64_t first)
{
    const char *names[8] = {"i", "f", "s", "b", "n", "d", "u", "ok"};
    const uint8_t types[8] = {1, 2, 3, 4, 5, 10, 9, 11};
    w64(b, 8);
    for (int i = 0; i < 8; i++)
        wtext(b, names[i]);
    for (int64_t row = first; row < first + 2; row++) {
        wrow_head(b, types, 8);
        w64(b, (uint64_t)row);
        w64(b, 0x4004000000000000ULL); /* 2.5 */
        wtext(b, "héllo");
        w64(b, 9);
        wbytes(b, "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x00\x00\x00\x00\x00\x00\x00", 16);
        w64(b, 0);
        wtext(b, "2026-12-07 08:00:00");
        w64(b, 1796630400);
        w64(b, 1);
    }
    w64(b, marker);
}

static void check_rows(const nana_dql_rows *r, size_t nrows)
{
    assert_int_equal(r->ncols, 8);
    assert_string_equal(r->names[0], "i");
    assert_string_equal(r->names[7], "ok");
    assert_int_equal(r->nrows, nrows);
    for (size_t row = 0; row < nrows; row++) {
        assert_int_equal(nana_dql_rows_at(r, row, 0)->type, NANA_DQL_INTEGER);
        assert_int_equal(nana_dql_rows_at(r, row, 0)->i, (int64_t)row);
        assert_true(nana_dql_rows_at(r, row, 1)->f == 2.5);
        assert_string_equal(nana_dql_rows_at(r, row, 2)->p, "héllo");
        assert_int_equal(nana_dql_rows_at(r, row, 2)->len, strlen("héllo"));
        assert_int_equal(nana_dql_rows_at(r, row, 3)->type, NANA_DQL_BLOB);
        assert_int_equal(nana_dql_rows_at(r, row, 3)->len, 9);
        assert_memory_equal(nana_dql_rows_at(r, row, 3)->p, "\x00\x01\x02\x03\x04\x05\x06\x07\x08",
                            9);
        assert_int_equal(nana_dql_rows_at(r, row, 4)->type, NANA_DQL_NULL);
        assert_int_equal(nana_dql_rows_at(r, row, 5)->type, NANA_DQL_ISO8601);
        assert_string_equal(nana_dql_rows_at(r, row, 5)->p, "2026-12-07 08:00:00");
        assert_int_equal(nana_dql_rows_at(r, row, 6)->type, NANA_DQL_UNIXTIME);
        assert_int_equal(nana_dql_rows_at(r, row, 6)->i, 1796630400);
        assert_int_equal(nana_dql_rows_at(r, row, 7)->type, NANA_DQL_BOOLEAN);
        assert_int_equal(nana_dql_rows_at(r, row, 7)->i, 1);
    }
}

static void test_rows(void **state)
{
    (void)state;
    nana_dql_limits lim;
    nana_dql_limits_default(&lim);
    nana_buf b;
    nana_buf_init(&b, 0);
    nana_dql_rows r;

    /* One message. */
    rows_body(&b, NANA_DQL_ROWS_DONE, 0);
    nana_dql_rows_init(&r);
    assert_int_equal(nana_dql_rows_feed(&r, dup_bytes(b.data, b.len), b.len, &lim), 0);
    assert_true(r.done);
    check_rows(&r, 2);
    /* Nothing after DONE. */
    assert_int_equal(nana_dql_rows_feed(&r, dup_bytes(b.data, b.len), b.len, &lim),
                     NANA_ERR_INVALID);
    check_rows(&r, 2);
    nana_dql_rows_free(&r);

    /* PART, then DONE: the rows of both, values still valid. */
    nana_dql_rows_init(&r);
    nana_buf_reset(&b);
    rows_body(&b, NANA_DQL_ROWS_PART, 0);
    assert_int_equal(nana_dql_rows_feed(&r, dup_bytes(b.data, b.len), b.len, &lim), 0);
    assert_false(r.done);
    nana_buf_reset(&b);
    rows_body(&b, NANA_DQL_ROWS_DONE, 2);
    assert_int_equal(nana_dql_rows_feed(&r, dup_bytes(b.data, b.len), b.len, &lim), 0);
    assert_true(r.done);
    check_rows(&r, 4);
    nana_dql_rows_free(&r);

    /* No rows: the columns and DONE. */
    nana_buf_reset(&b);
    w64(&b, 1);
    wtext(&b, "count(*)");
    w64(&b, NANA_DQL_ROWS_DONE);
    nana_dql_rows_init(&r);
    assert_int_equal(nana_dql_rows_feed(&r, dup_bytes(b.data, b.len), b.len, &lim), 0);
    assert_int_equal(r.nrows, 0);
    assert_int_equal(r.ncols, 1);
    assert_true(r.done);
    nana_dql_rows_free(&r);

    /* Odd column counts: nibbles low first. */
    nana_buf_reset(&b);
    const uint8_t t3[3] = {5, 1, 3};
    w64(&b, 3);
    wtext(&b, "a");
    wtext(&b, "b");
    wtext(&b, "c");
    wrow_head(&b, t3, 3);
    w64(&b, 0);
    w64(&b, 42);
    wtext(&b, "x");
    w64(&b, NANA_DQL_ROWS_DONE);
    nana_dql_rows_init(&r);
    assert_int_equal(nana_dql_rows_feed(&r, dup_bytes(b.data, b.len), b.len, &lim), 0);
    assert_int_equal(nana_dql_rows_at(&r, 0, 0)->type, NANA_DQL_NULL);
    assert_int_equal(nana_dql_rows_at(&r, 0, 1)->i, 42);
    assert_string_equal(nana_dql_rows_at(&r, 0, 2)->p, "x");
    nana_dql_rows_free(&r);
    nana_buf_free(&b);
}

static void test_rows_refused(void **state)
{
    (void)state;
    nana_dql_limits lim;
    nana_dql_limits_default(&lim);
    nana_buf b;
    nana_buf_init(&b, 0);
    nana_dql_rows r;

    /* Every prefix of a good body. */
    rows_body(&b, NANA_DQL_ROWS_DONE, 0);
    for (size_t len = 0; len < b.len; len++) {
        nana_dql_rows_init(&r);
        int rc = nana_dql_rows_feed(&r, dup_bytes(b.data, len), len, &lim);
        assert_int_equal(rc, NANA_ERR_INVALID);
        assert_int_equal(r.nrows, 0);
        assert_int_equal(r.ncols, 0);
        nana_dql_rows_free(&r);
    }

    /* Bytes after the marker. */
    w64(&b, 0);
    nana_dql_rows_init(&r);
    assert_int_equal(nana_dql_rows_feed(&r, dup_bytes(b.data, b.len), b.len, &lim),
                     NANA_ERR_INVALID);
    nana_dql_rows_free(&r);

    /* Every byte of a good body flipped in turn: a clean error or a
     * result, never a read out of bounds. */
    nana_buf_reset(&b);
    rows_body(&b, NANA_DQL_ROWS_DONE, 0);
    for (size_t i = 0; i < b.len; i++) {
        uint8_t *c = dup_bytes(b.data, b.len);
        c[i] ^= 0xff;
        nana_dql_rows_init(&r);
        int rc = nana_dql_rows_feed(&r, c, b.len, &lim);
        assert_true(rc == 0 || rc == NANA_ERR_INVALID || rc == NANA_ERR_TOOBIG);
        nana_dql_rows_free(&r);
    }

    /* An unknown type nibble (0, 6). */
    const uint8_t bad[2] = {6, 0};
    for (int k = 0; k < 2; k++) {
        nana_buf_reset(&b);
        w64(&b, 1);
        wtext(&b, "a");
        wrow_head(&b, &bad[k], 1);
        w64(&b, 0);
        w64(&b, NANA_DQL_ROWS_DONE);
        nana_dql_rows_init(&r);
        assert_int_equal(nana_dql_rows_feed(&r, dup_bytes(b.data, b.len), b.len, &lim),
                         NANA_ERR_INVALID);
        nana_dql_rows_free(&r);
    }

    /* A boolean that is not 0 or 1; a blob longer than the body. */
    nana_buf_reset(&b);
    const uint8_t tb = NANA_DQL_BOOLEAN, tblob = NANA_DQL_BLOB;
    w64(&b, 1);
    wtext(&b, "a");
    wrow_head(&b, &tb, 1);
    w64(&b, 2);
    w64(&b, NANA_DQL_ROWS_DONE);
    nana_dql_rows_init(&r);
    assert_int_equal(nana_dql_rows_feed(&r, dup_bytes(b.data, b.len), b.len, &lim),
                     NANA_ERR_INVALID);
    nana_dql_rows_free(&r);
    nana_buf_reset(&b);
    w64(&b, 1);
    wtext(&b, "a");
    wrow_head(&b, &tblob, 1);
    w64(&b, UINT64_MAX - 3);
    w64(&b, NANA_DQL_ROWS_DONE);
    nana_dql_rows_init(&r);
    assert_int_equal(nana_dql_rows_feed(&r, dup_bytes(b.data, b.len), b.len, &lim),
                     NANA_ERR_INVALID);
    nana_dql_rows_free(&r);

    /* Rows of no columns; a column count the body cannot hold. */
    nana_buf_reset(&b);
    w64(&b, 0);
    w64(&b, 0);
    w64(&b, NANA_DQL_ROWS_DONE);
    nana_dql_rows_init(&r);
    assert_int_equal(nana_dql_rows_feed(&r, dup_bytes(b.data, b.len), b.len, &lim),
                     NANA_ERR_INVALID);
    nana_dql_rows_free(&r);
    nana_buf_reset(&b);
    w64(&b, 1000);
    w64(&b, NANA_DQL_ROWS_DONE);
    nana_dql_rows_init(&r);
    assert_int_equal(nana_dql_rows_feed(&r, dup_bytes(b.data, b.len), b.len, &lim),
                     NANA_ERR_INVALID);
    nana_dql_rows_free(&r);

    /* A later batch with other columns. */
    nana_buf_reset(&b);
    rows_body(&b, NANA_DQL_ROWS_PART, 0);
    nana_dql_rows_init(&r);
    assert_int_equal(nana_dql_rows_feed(&r, dup_bytes(b.data, b.len), b.len, &lim), 0);
    nana_buf_reset(&b);
    w64(&b, 1);
    wtext(&b, "i");
    w64(&b, NANA_DQL_ROWS_DONE);
    assert_int_equal(nana_dql_rows_feed(&r, dup_bytes(b.data, b.len), b.len, &lim),
                     NANA_ERR_INVALID);
    check_rows(&r, 2); /* the first batch stays */
    nana_buf_reset(&b);
    rows_body(&b, NANA_DQL_ROWS_DONE, 2);
    ((uint8_t *)b.data)[8] = 'j'; /* first column renamed */
    assert_int_equal(nana_dql_rows_feed(&r, dup_bytes(b.data, b.len), b.len, &lim),
                     NANA_ERR_INVALID);
    check_rows(&r, 2);
    nana_dql_rows_free(&r);
    nana_buf_free(&b);
}

/* The limits: columns and the bytes one result keeps. */
static void test_rows_limits(void **state)
{
    (void)state;
    nana_dql_limits lim;
    nana_dql_limits_default(&lim);
    nana_buf b;
    nana_buf_init(&b, 0);
    nana_dql_rows r;

    rows_body(&b, NANA_DQL_ROWS_PART, 0);
    lim.columns_max = 7;
    nana_dql_rows_init(&r);
    assert_int_equal(nana_dql_rows_feed(&r, dup_bytes(b.data, b.len), b.len, &lim),
                     NANA_ERR_TOOBIG);
    nana_dql_rows_free(&r);
    lim.columns_max = 8; /* the limit itself passes */
    nana_dql_rows_init(&r);
    assert_int_equal(nana_dql_rows_feed(&r, dup_bytes(b.data, b.len), b.len, &lim), 0);
    nana_dql_rows_free(&r);

    /* Two batches pass a result limit of one and a half. */
    lim.result_max = b.len + b.len / 2;
    nana_dql_rows_init(&r);
    assert_int_equal(nana_dql_rows_feed(&r, dup_bytes(b.data, b.len), b.len, &lim), 0);
    assert_int_equal(nana_dql_rows_feed(&r, dup_bytes(b.data, b.len), b.len, &lim),
                     NANA_ERR_TOOBIG);
    assert_non_null(strstr(nana_errmsg(), "result"));
    check_rows(&r, 2);
    nana_dql_rows_free(&r);
    lim.result_max = 2 * b.len; /* exactly at the limit */
    nana_dql_rows_init(&r);
    assert_int_equal(nana_dql_rows_feed(&r, dup_bytes(b.data, b.len), b.len, &lim), 0);
    assert_int_equal(nana_dql_rows_feed(&r, dup_bytes(b.data, b.len), b.len, &lim), 0);
    nana_dql_rows_free(&r);
    nana_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header),
        cmocka_unit_test(test_simple_requests),
        cmocka_unit_test(test_exec_params_bytes),
        cmocka_unit_test(test_params_refused),
        cmocka_unit_test(test_params_roundtrip),
        cmocka_unit_test(test_responses),
        cmocka_unit_test(test_responses_truncated),
        cmocka_unit_test(test_responses_garbage),
        cmocka_unit_test(test_rows),
        cmocka_unit_test(test_rows_refused),
        cmocka_unit_test(test_rows_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
