/*
 * test_store_select.c - the queries over JSON fields: predicates,
 * nana_kv_select, nana_kv_update_where and nana_store_multi, on real
 * SQLite files.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "store/store_int.h"
#include "store_fixture.h"

#include <pthread.h>
#include <sqlite3.h>

static int setup(void **state)
{
    return fixture_open(state, "select");
}

static int teardown(void **state)
{
    return fixture_close(state);
}

/* A comparison node on (field, JSON value), both C strings. */
#define CMP(o, f, v)                                                                               \
    ((nana_pred){                                                                                  \
        .op = NANA_PRED_##o, .field = (f), .flen = strlen(f), .value = (v), .vlen = strlen(v)})
#define AND(l, r) ((nana_pred){.op = NANA_PRED_AND, .left = (l), .right = (r)})
#define OR(l, r)  ((nana_pred){.op = NANA_PRED_OR, .left = (l), .right = (r)})
#define NOT(l)    ((nana_pred){.op = NANA_PRED_NOT, .left = (l)})

/* The keys of rows, joined by ','. */
static const char *keys_of(const nana_rows *r)
{
    static char out[4096];
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < r->n; i++)
        o += (size_t)snprintf(out + o, sizeof(out) - o, "%s%.*s", i ? "," : "", (int)r->r[i].klen,
                              r->r[i].key);
    return out;
}

/* Asserts that select(pred) over the whole table gives exactly |want| keys. */
static void expect_match(nana_table *t, const nana_pred *p, const char *want)
{
    nana_select q = {.pred = p, .limit = -1};
    nana_rows *r = NULL;
    int rc = nana_kv_select(t, &q, &r);
    if (rc) fail_msg("select: %s", nana_errmsg());
    if (strcmp(keys_of(r), want) != 0) fail_msg("got [%s]\nwant [%s]", keys_of(r), want);
    assert_false(r->more);
    nana_rows_free(r);
}

/* Writes rows "key" -> JSON through the store. */
static void put(nana_table *t, const char *key, const char *json)
{
    if (nana_kv_set(t, K(key), K(json))) fail_msg("set %s: %s", key, nana_errmsg());
}

/* Inserts a row with raw SQLite, behind the store's back (what another program may write). */
static void put_raw(const fixture *f, const char *sql)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) fail_msg("raw: %s", err);
    sqlite3_close(db);
}

static void load_people(nana_table *t)
{
    put(t, "a",
        "{\"age\": 30, \"name\": \"ann\", \"ok\": true, \"nil\": null, "
        "\"obj\": {\"x\": 1, \"y\": [true]}, \"arr\": [1, 2]}");
    put(t, "b", "{\"age\": 41.5, \"name\": \"bob\", \"ok\": false}");
    put(t, "c", "{\"age\": \"30\"}");
    put(t, "d", "{\"name\": \"carl\"}");
    put(t, "e", "[1, 2, 3]");
    put(t, "f", "5");
    put(t, "g", "{\"age\": null}");
    put(t, "h", "{\"age\": -7, \"name\": \"\xc3\xa9mile\"}");
}

/* Every class of comparison value, against fields of every class, missing and mistyped. */
static void test_compare_classes(void **state)
{
    fixture *f = *state;
    nana_table *t = f->t;
    load_people(t);
    struct {
        nana_pred p;
        const char *want;
    } cases[] = {
        /* numbers: integer and real alike, never a string "30" */
        {CMP(EQ, "age", "30"), "a"},
        {CMP(EQ, "age", "30.0"), "a"},
        {CMP(EQ, "age", "3e1"), "a"},
        {CMP(GT, "age", "30"), "b"},
        {CMP(GTE, "age", "30"), "a,b"},
        {CMP(LT, "age", "41.5"), "a,h"},
        {CMP(LTE, "age", "41.5"), "a,b,h"},
        {CMP(LT, "age", "0"), "h"},
        {CMP(GT, "age", "99999999999999999999999"), ""},
        {CMP(LT, "age", "99999999999999999999999"), "a,b,h"},
        /* strings: byte order of the UTF-8 text */
        {CMP(EQ, "age", "\"30\""), "c"},
        {CMP(GT, "age", "\"2\""), "c"},
        {CMP(GT, "name", "\"b\""), "b,d,h"},
        {CMP(LT, "name", "\"bob\""), "a"},
        {CMP(GTE, "name", "\"bob\""), "b,d,h"},
        {CMP(GT, "name", "\"z\""), "h"},
        {CMP(EQ, "name", "\"\\u00e9mile\""), "h"},
        /* booleans: false < true */
        {CMP(EQ, "ok", "true"), "a"},
        {CMP(EQ, "ok", "false"), "b"},
        {CMP(LT, "ok", "true"), "b"},
        {CMP(GT, "ok", "false"), "a"},
        {CMP(GTE, "ok", "false"), "a,b"},
        {CMP(EQ, "ok", "1"), ""},
        /* null equals only null; ordering against null is false */
        {CMP(EQ, "nil", "null"), "a"},
        {CMP(EQ, "age", "null"), "g"},
        {CMP(GT, "age", "null"), ""},
        {CMP(LTE, "age", "null"), ""},
        /* objects and arrays: EQ on SQLite's minified text */
        {CMP(EQ, "obj", "{ \"x\" : 1, \"y\" : [ true ] }"), "a"},
        {CMP(EQ, "obj", "{\"y\":[true],\"x\":1}"), ""},
        {CMP(EQ, "arr", "[1,2]"), "a"},
        {CMP(EQ, "arr", "[2,1]"), ""},
        {CMP(EQ, "obj", "[1,2]"), ""},
        /* a missing field or a value that is not an object at all */
        {CMP(EQ, "missing", "1"), ""},
        {CMP(EQ, "age.x", "1"), ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        print_message("case %zu: %s %s\n", i, cases[i].p.field, cases[i].p.value);
        expect_match(t, &cases[i].p, cases[i].want);
    }
    /* Objects and arrays compare with EQ only. */
    nana_pred gt = CMP(GT, "obj", "{}");
    assert_int_equal(nana_pred_check(&gt), NANA_ERR_VALIDATION);
    assert_non_null(strstr(nana_errmsg(), "1st comparison"));
    nana_rows *r = NULL;
    nana_select q = {.pred = &gt, .limit = -1};
    assert_int_equal(nana_kv_select(t, &q, &r), NANA_ERR_VALIDATION);
    assert_null(r);
}

/* AND, OR and NOT, NOT over a missing field, and NOT over null. */
static void test_logic(void **state)
{
    fixture *f = *state;
    nana_table *t = f->t;
    load_people(t);
    nana_pred gt30 = CMP(GT, "age", "30"), named = CMP(GTE, "name", "\"a\"");
    nana_pred ok = CMP(EQ, "ok", "true"), ageeq = CMP(EQ, "age", "30");
    nana_pred n1 = NOT(&gt30);
    expect_match(t, &n1, "a,c,d,e,f,g,h"); /* rows with no age too */
    nana_pred n2 = NOT(&n1);
    expect_match(t, &n2, "b");
    nana_pred a1 = AND(&named, &n1);
    expect_match(t, &a1, "a,d,h");
    nana_pred o1 = OR(&ok, &gt30);
    expect_match(t, &o1, "a,b");
    nana_pred o2 = OR(&ageeq, &named);
    nana_pred a2 = AND(&o2, &o1);
    expect_match(t, &a2, "a,b");
    nana_pred gtnull = CMP(GT, "age", "null");
    nana_pred n3 = NOT(&gtnull);
    expect_match(t, &n3, "a,b,c,d,e,f,g,h");
}

/* Nested members, array indexes, names with spaces and non-ASCII letters. */
static void test_nested_paths(void **state)
{
    fixture *f = *state;
    nana_table *t = f->t;
    put(t, "n1",
        "{\"address\": {\"city\": \"Kyoto\", \"zip\": \"600\"}, \"tags\": [\"x\", \"y\"], "
        "\"a\": {\"b\": [0, 1, {\"c\": 7}]}, \"first name\": \"Ann\", "
        "\"\xe5\x90\x8d\": 1, \"m\": [[1, [2, 3]]]}");
    put(t, "n2",
        "{\"address\": {\"city\": \"Osaka\"}, \"tags\": [\"y\"], \"a\": {\"b\": {\"2\": 7}}}");
    struct {
        nana_pred p;
        const char *want;
    } cases[] = {
        {CMP(EQ, "address.city", "\"Kyoto\""), "n1"},
        {CMP(GT, "address.city", "\"A\""), "n1,n2"},
        {CMP(EQ, "tags[1]", "\"y\""), "n1"},
        {CMP(EQ, "tags[0]", "\"y\""), "n2"},
        {CMP(EQ, "tags[5]", "\"y\""), ""},
        {CMP(EQ, "a.b[2].c", "7"), "n1"},
        {CMP(EQ, "a.b.2", "7"), "n2"},
        {CMP(EQ, "m[0][1][1]", "3"), "n1"},
        {CMP(EQ, "address.city.x", "1"), ""},
        {CMP(EQ, "address[0]", "1"), ""},
        {CMP(EQ, "first name", "\"Ann\""), "n1"},
        {CMP(EQ, "\xe5\x90\x8d", "1"), "n1"},
        {CMP(EQ, "tags", "[\"y\"]"), "n2"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        print_message("case %zu: %s\n", i, cases[i].p.field);
        expect_match(t, &cases[i].p, cases[i].want);
    }
}

/* Bad field paths, bad values and bad trees are refused, naming the node. */
static void test_bad_trees(void **state)
{
    (void)state;
    char long_field[600], long_name[200], deep[200];
    memset(long_field, 'x', 513);
    long_field[513] = '\0';
    memset(long_name, 'n', 129);
    long_name[129] = '\0';
    deep[0] = '\0';
    for (int i = 0; i < 17; i++)
        strcat(deep, i ? ".s" : "s");
    static const char *const bad_fields[] = {
        "",    "a..b",          ".a", "a.",  "a\"b",  "a\\b", "a[",    "a[x]", "a[-1]",
        "a[1", "a[2147483648]", "a]", "[0]", "a[0]b", "a\tb", "a\x7f", "a[]",  "\xff\xfe",
    };
    for (size_t i = 0; i < sizeof(bad_fields) / sizeof(bad_fields[0]); i++) {
        nana_pred p = CMP(EQ, bad_fields[i], "1");
        if (nana_pred_check(&p) != NANA_ERR_VALIDATION) fail_msg("accepted field %zu", i);
        if (!strstr(nana_errmsg(), "the 1st comparison's field"))
            fail_msg("field %zu: %s", i, nana_errmsg());
    }
    const char *const too_big[] = {long_field, long_name, deep};
    for (size_t i = 0; i < 3; i++) {
        nana_pred p = CMP(EQ, too_big[i], "1");
        assert_int_equal(nana_pred_check(&p), NANA_ERR_VALIDATION);
        /* at most 64 bytes of the caller's text in the message */
        char run65[66];
        memset(run65, too_big[i][0], 65);
        run65[65] = '\0';
        assert_null(strstr(nana_errmsg(), run65));
        run65[64] = '\0';
        if (i < 2) assert_non_null(strstr(nana_errmsg(), run65));
    }
    /* Good edges: 16 segments, 128-byte names, the largest index. */
    deep[strlen(deep) - 2] = '\0';
    long_name[128] = '\0';
    const char *const good[] = {deep, long_name, "a[2147483647]", "a[0][0].b[01]", "\xe5\x90\x8d"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        nana_pred p = CMP(EQ, good[i], "1");
        if (nana_pred_check(&p)) fail_msg("good field %zu: %s", i, nana_errmsg());
    }

    /* Values: JSON or nothing. */
    nana_pred v1 = CMP(EQ, "a", "{bad");
    assert_int_equal(nana_pred_check(&v1), NANA_ERR_JSON);
    nana_pred v2 = CMP(EQ, "a", "");
    assert_int_equal(nana_pred_check(&v2), NANA_ERR_VALIDATION);
    nana_pred v3 = CMP(EQ, "a", "NaN");
    assert_int_equal(nana_pred_check(&v3), NANA_ERR_JSON);

    /* The node is named: the 3rd comparison, depth first, left to right. */
    nana_pred c1 = CMP(EQ, "a", "1"), c2 = CMP(EQ, "b", "2"), c3 = CMP(EQ, "c'", "3");
    nana_pred c3bad = CMP(EQ, "c\"", "3");
    nana_pred l = AND(&c1, &c2), good_tree = OR(&l, &c3), bad_tree = OR(&l, &c3bad);
    assert_int_equal(nana_pred_check(&good_tree), 0);
    assert_int_equal(nana_pred_check(&bad_tree), NANA_ERR_VALIDATION);
    assert_non_null(strstr(nana_errmsg(), "the 3rd comparison's field 'c\"'"));

    /* Shape: operands missing or extra, unknown operators. */
    nana_pred and1 = {.op = NANA_PRED_AND, .left = &c1};
    assert_int_equal(nana_pred_check(&and1), NANA_ERR_VALIDATION);
    assert_non_null(strstr(nana_errmsg(), "node 1 (AND)"));
    nana_pred not2 = {.op = NANA_PRED_NOT, .left = &c1, .right = &c2};
    nana_pred or2 = OR(&c1, &not2);
    assert_int_equal(nana_pred_check(&or2), NANA_ERR_VALIDATION);
    assert_non_null(strstr(nana_errmsg(), "node 3 (NOT)"));
    nana_pred cmpkids = CMP(EQ, "a", "1");
    cmpkids.left = &c2;
    assert_int_equal(nana_pred_check(&cmpkids), NANA_ERR_VALIDATION);
    nana_pred unknown = {.op = (nana_pred_op)42};
    assert_int_equal(nana_pred_check(&unknown), NANA_ERR_VALIDATION);
    assert_int_equal(nana_pred_check(NULL), NANA_ERR_VALIDATION);

    /* Depth: 32 levels pass, 33 do not; a cycle stops at the limit too. */
    nana_pred chain[40];
    chain[0] = c1;
    for (int i = 1; i < 40; i++)
        chain[i] = NOT(&chain[i - 1]);
    assert_int_equal(nana_pred_check(&chain[31]), 0);
    assert_int_equal(nana_pred_check(&chain[32]), NANA_ERR_TOOBIG);
    nana_pred loop = {.op = NANA_PRED_NOT};
    loop.left = &loop;
    assert_int_equal(nana_pred_check(&loop), NANA_ERR_TOOBIG);

    /* Nodes: 256 pass, 257 do not (a balanced-ish tree under the depth limit). */
    static nana_pred leaves[256], inner[256];
    for (int i = 0; i < 256; i++)
        leaves[i] = CMP(EQ, "a", "1");
    /* a comb: inner[i] = OR(leaf, next inner), 8 combs joined by ANDs */
    int used = 0;
    nana_pred *combs[8];
    for (int c = 0; c < 8; c++) {
        nana_pred *cur = &leaves[used++];
        for (int k = 0; k < 15; k++) {
            inner[used] = OR(&leaves[used], cur);
            cur = &inner[used++];
        }
        combs[c] = cur;
    }
    /* 8 combs of 31 nodes = 248 nodes; join with 7 ANDs = 255 nodes. */
    static nana_pred joins[8];
    joins[0] = AND(combs[0], combs[1]);
    joins[1] = AND(combs[2], combs[3]);
    joins[2] = AND(combs[4], combs[5]);
    joins[3] = AND(combs[6], combs[7]);
    joins[4] = AND(&joins[0], &joins[1]);
    joins[5] = AND(&joins[2], &joins[3]);
    joins[6] = AND(&joins[4], &joins[5]);
    assert_int_equal(nana_pred_check(&joins[6]), 0);
    joins[7] = NOT(&joins[6]); /* 256 */
    assert_int_equal(nana_pred_check(&joins[7]), 0);
    nana_pred over = NOT(&joins[7]); /* 257 */
    assert_int_equal(nana_pred_check(&over), NANA_ERR_TOOBIG);
    assert_non_null(strstr(nana_errmsg(), "256 nodes"));
}

/* A field that spells SQL is just a name: it matches nothing, the table survives. */
static void test_sql_in_field(void **state)
{
    fixture *f = *state;
    nana_table *t = f->t;
    load_people(t);
    nana_pred p = CMP(EQ, "x'); DROP TABLE data; --", "1");
    expect_match(t, &p, "");
    nana_pred n = NOT(&p);
    expect_match(t, &n, "a,b,c,d,e,f,g,h");
    nana_pred v = CMP(EQ, "name", "\"'); DROP TABLE data; --\"");
    expect_match(t, &v, "");
    nana_update u = {NANA_UPD_SET, K("x'); DELETE FROM data; --"), K("1")};
    int64_t changed = -1;
    assert_int_equal(nana_kv_update_where(t, &p, &u, 1, &changed), 0);
    assert_int_equal(changed, 0);
    int64_t len = 0;
    assert_int_equal(nana_kv_len(t, &len), 0);
    assert_int_equal(len, 8);
    /* The same name written by SET is stored as a member, nothing else. */
    nana_pred isb = CMP(EQ, "name", "\"bob\"");
    assert_int_equal(nana_kv_update_where(t, &isb, &u, 1, &changed), 0);
    assert_int_equal(changed, 1);
    expect_get(t, "b",
               "{\"age\":41.5,\"name\":\"bob\",\"ok\":false,\"x'); DELETE FROM data; --\":1}");
    assert_int_equal(nana_kv_len(t, &len), 0);
    assert_int_equal(len, 8);
}

/* Pages: after/limit/more, offset, key bounds, max_bytes. */
static void test_paging(void **state)
{
    fixture *f = *state;
    nana_table *t = f->t;
    for (int i = 0; i < 20; i++) {
        char k[8], v[32];
        snprintf(k, sizeof(k), "k%02d", i);
        snprintf(v, sizeof(v), "{\"n\":%d}", i);
        put(t, k, v);
    }
    nana_rows *r = NULL;
    /* Pages of 6 through everything. */
    char after[8] = "";
    const char *want[] = {"k00,k01,k02,k03,k04,k05", "k06,k07,k08,k09,k10,k11",
                          "k12,k13,k14,k15,k16,k17", "k18,k19"};
    for (int page = 0; page < 4; page++) {
        nana_select q = {.limit = 6, .after = after, .alen = strlen(after), .has_after = page > 0};
        assert_int_equal(nana_kv_select(t, &q, &r), 0);
        assert_string_equal(keys_of(r), want[page]);
        assert_int_equal(r->more, page < 3);
        snprintf(after, sizeof(after), "%.*s", (int)r->r[r->n - 1].klen, r->r[r->n - 1].key);
        nana_rows_free(r);
    }
    assert_int_equal(nana_kv_select(t, &(nana_select){.limit = 1}, &r), 0);
    assert_string_equal(r->r[0].value, "{\"n\":0}");
    assert_int_equal(r->r[0].vlen, 7);
    assert_int_equal(r->r[0].key[r->r[0].klen], '\0');
    nana_rows_free(r);
    /* A limit that ends exactly at the last row: no more. */
    assert_int_equal(nana_kv_select(t, &(nana_select){.limit = 20}, &r), 0);
    assert_int_equal(r->n, 20);
    assert_false(r->more);
    nana_rows_free(r);
    /* limit 0: nothing, but more remain. */
    assert_int_equal(nana_kv_select(t, &(nana_select){.limit = 0}, &r), 0);
    assert_int_equal(r->n, 0);
    assert_true(r->more);
    nana_rows_free(r);
    /* Filtered pages. */
    nana_pred big = CMP(GTE, "n", "10");
    nana_select q = {.pred = &big, .limit = 4};
    assert_int_equal(nana_kv_select(t, &q, &r), 0);
    assert_string_equal(keys_of(r), "k10,k11,k12,k13");
    assert_true(r->more);
    nana_rows_free(r);
    q = (nana_select){.pred = &big, .limit = 4, .after = "k17", .alen = 3, .has_after = true};
    assert_int_equal(nana_kv_select(t, &q, &r), 0);
    assert_string_equal(keys_of(r), "k18,k19");
    assert_false(r->more);
    nana_rows_free(r);
    /* Bounds: lo inclusive, hi exclusive, after exclusive. */
    q = (nana_select){.lo = "k05",
                      .lolen = 3,
                      .has_lo = true,
                      .hi = "k08",
                      .hilen = 3,
                      .has_hi = true,
                      .limit = -1};
    assert_int_equal(nana_kv_select(t, &q, &r), 0);
    assert_string_equal(keys_of(r), "k05,k06,k07");
    assert_false(r->more);
    nana_rows_free(r);
    q.after = "k05";
    q.alen = 3;
    q.has_after = true;
    assert_int_equal(nana_kv_select(t, &q, &r), 0);
    assert_string_equal(keys_of(r), "k06,k07");
    nana_rows_free(r);
    q = (nana_select){.lo = "k0",
                      .lolen = 2,
                      .has_lo = true,
                      .hi = "k1",
                      .hilen = 2,
                      .has_hi = true,
                      .limit = -1,
                      .offset = 7};
    assert_int_equal(nana_kv_select(t, &q, &r), 0);
    assert_string_equal(keys_of(r), "k07,k08,k09");
    nana_rows_free(r);
    /* Offset with a limit. */
    q = (nana_select){.limit = 2, .offset = 3};
    assert_int_equal(nana_kv_select(t, &q, &r), 0);
    assert_string_equal(keys_of(r), "k03,k04");
    assert_true(r->more);
    nana_rows_free(r);
    q.offset = -1;
    assert_int_equal(nana_kv_select(t, &q, &r), NANA_ERR_INVALID);
    /* max_bytes: a row is 3 + 7 or 8 bytes; 21 bytes hold two of the first rows. */
    q = (nana_select){.limit = -1, .max_bytes = 21};
    assert_int_equal(nana_kv_select(t, &q, &r), 0);
    assert_string_equal(keys_of(r), "k00,k01");
    assert_true(r->more);
    nana_rows_free(r);
    q.max_bytes = 19; /* just under two rows */
    assert_int_equal(nana_kv_select(t, &q, &r), 0);
    assert_string_equal(keys_of(r), "k00");
    nana_rows_free(r);
    q.max_bytes = 1; /* at least one row is taken */
    assert_int_equal(nana_kv_select(t, &q, &r), 0);
    assert_string_equal(keys_of(r), "k00");
    assert_true(r->more);
    nana_rows_free(r);
    /* A bad bound is a bad key. */
    q = (nana_select){.lo = "\xff", .lolen = 1, .has_lo = true, .limit = -1};
    assert_int_equal(nana_kv_select(t, &q, &r), NANA_ERR_INVALID);
    assert_non_null(strstr(nana_errmsg(), "lo"));
}

/* The store's max_result_bytes caps a select with no max_bytes, or a larger one. */
static void test_select_result_limit(void **state)
{
    (void)state;
    char path[512];
    test_db_path(path, sizeof(path), "select-limit");
    nana_store_opts o;
    nana_store_opts_init(&o);
    o.max_result_bytes = 100;
    nana_store *s;
    assert_int_equal(nana_store_open(path, &o, &s), 0);
    nana_table *t = nana_store_default_table(s);
    for (int i = 0; i < 30; i++) {
        char k[8];
        snprintf(k, sizeof(k), "k%02d", i);
        put(t, k, "{\"n\":1}"); /* 10 bytes a row */
    }
    nana_rows *r = NULL;
    nana_select q = {.limit = -1};
    assert_int_equal(nana_kv_select(t, &q, &r), 0);
    assert_int_equal(r->n, 10);
    assert_true(r->more);
    nana_rows_free(r);
    q.max_bytes = 1000;
    assert_int_equal(nana_kv_select(t, &q, &r), 0);
    assert_int_equal(r->n, 10);
    nana_rows_free(r);
    q.max_bytes = 30;
    assert_int_equal(nana_kv_select(t, &q, &r), 0);
    assert_int_equal(r->n, 3);
    nana_rows_free(r);
    assert_int_equal(nana_store_close(s), 0);
    test_db_remove(path);
}

/* Values that are not JSON (written by another program) never match and never fail a filter. */
static void test_non_json_values(void **state)
{
    fixture *f = *state;
    nana_table *t = f->t;
    load_people(t);
    put_raw(f, "INSERT INTO data(key,value) VALUES ('bad1','{not json'),('bad2','{\"age\": 30'),"
               "('bad3',NULL),('bad4','{\"age\": 30, \"s\": \"tab\there\"}')");
    nana_pred p = CMP(EQ, "age", "30");
    expect_match(t, &p, "a");
    nana_pred n = NOT(&p);
    expect_match(t, &n, "b,c,d,e,f,g,h");
    nana_pred nil = CMP(EQ, "age", "null");
    expect_match(t, &nil, "g");
    /* Without a predicate every row comes back as stored (SQL NULL as null). */
    nana_rows *r = NULL;
    assert_int_equal(nana_kv_select(t,
                                    &(nana_select){.limit = -1,
                                                   .lo = "bad",
                                                   .lolen = 3,
                                                   .has_lo = true,
                                                   .hi = "c",
                                                   .hilen = 1,
                                                   .has_hi = true},
                                    &r),
                     0);
    assert_string_equal(keys_of(r), "bad1,bad2,bad3,bad4");
    assert_string_equal(r->r[0].value, "{not json");
    assert_string_equal(r->r[2].value, "null");
    nana_rows_free(r);
    /* update_where passes them by: only the objects a, b, c, d, g, h change. */
    nana_update u = {NANA_UPD_ADD, K("k"), K("1")};
    int64_t changed = 0;
    assert_int_equal(nana_kv_update_where(t, NULL, &u, 1, &changed), 0);
    assert_int_equal(changed, 6);
    expect_get(t, "d", "{\"name\":\"carl\",\"k\":1}");
    assert_int_equal(
        nana_kv_select(t, &(nana_select){.limit = 1, .lo = "bad1", .lolen = 4, .has_lo = true}, &r),
        0);
    assert_string_equal(r->r[0].value, "{not json");
    nana_rows_free(r);
    /* A BLOB never matches a predicate; without one it is refused, as values() does. */
    put_raw(f, "INSERT INTO data(key,value) VALUES ('blob', X'7B7D')");
    expect_match(t, &p, "a");
    assert_int_equal(nana_kv_select(t, &(nana_select){.limit = -1}, &r), NANA_ERR_TYPE);
    assert_null(r);
}

/* SET, ADD, MUL: integers and reals, missing fields, nested paths, in order. */
static void test_update_ops(void **state)
{
    fixture *f = *state;
    nana_table *t = f->t;
    put(t, "a", "{\"n\": 2, \"r\": 1.5, \"s\": {\"x\": 1}, \"l\": [1, 2]}");
    put(t, "b", "{\"n\": 10}");
    put(t, "c", "[1]");
    int64_t changed = -1;
    nana_pred isa = CMP(EQ, "n", "2");
    nana_update u1[] = {
        {NANA_UPD_ADD, K("n"), K("3")},        /* 5 */
        {NANA_UPD_MUL, K("n"), K("4")},        /* 20 */
        {NANA_UPD_ADD, K("r"), K("1")},        /* 2.5 */
        {NANA_UPD_MUL, K("r"), K("2")},        /* 5.0 */
        {NANA_UPD_ADD, K("new"), K("7")},      /* 7 */
        {NANA_UPD_MUL, K("zero"), K("7")},     /* 0 */
        {NANA_UPD_MUL, K("zr"), K("7.5")},     /* 0.0 */
        {NANA_UPD_SET, K("s.y"), K("[true]")}, /* creates the member */
        {NANA_UPD_SET, K("q.z"), K("1")},      /* no parent: nothing */
        {NANA_UPD_SET, K("l[1]"), K("\"two\"")}, {NANA_UPD_ADD, K("l[0]"), K("0.5")},
        {NANA_UPD_SET, K("l[2]"), K("3")}, /* past the end: nothing */
    };
    assert_int_equal(nana_kv_update_where(t, &isa, u1, sizeof(u1) / sizeof(u1[0]), &changed), 0);
    assert_int_equal(changed, 1);
    expect_get(t, "a",
               "{\"n\":20,\"r\":5.0,\"s\":{\"x\":1,\"y\":[true]},\"l\":[1.5,\"two\"],"
               "\"new\":7,\"zero\":0,\"zr\":0.0}");
    expect_get(t, "b", "{\"n\": 10}");
    expect_get(t, "c", "[1]");
    /* Every object, no predicate; an update that applies nowhere changes no row. */
    nana_update miss = {NANA_UPD_SET, K("q.z"), K("1")};
    assert_int_equal(nana_kv_update_where(t, NULL, &miss, 1, &changed), 0);
    assert_int_equal(changed, 0);
    nana_update all = {NANA_UPD_ADD, K("n"), K("-1")};
    assert_int_equal(nana_kv_update_where(t, NULL, &all, 1, &changed), 0);
    assert_int_equal(changed, 2);
    expect_get(t, "b", "{\"n\":9}");
    /* Integer stays integer; a real on either side makes a real. */
    nana_update mr = {NANA_UPD_MUL, K("n"), K("0.5")};
    nana_pred isb = CMP(EQ, "n", "9");
    assert_int_equal(nana_kv_update_where(t, &isb, &mr, 1, &changed), 0);
    expect_get(t, "b", "{\"n\":4.5}");
    /* Bad updates are refused before anything runs. */
    nana_update bad[] = {
        {NANA_UPD_ADD, K("n"), K("\"1\"")},
        {NANA_UPD_MUL, K("n"), K("true")},
        {NANA_UPD_ADD, K("n"), K("99999999999999999999")},
        {NANA_UPD_SET, K("n"), K("{bad")},
        {NANA_UPD_SET, K("a..b"), K("1")},
        {(nana_upd_op)9, K("n"), K("1")},
    };
    const int codes[] = {NANA_ERR_TYPE, NANA_ERR_TYPE,       NANA_ERR_TYPE,
                         NANA_ERR_JSON, NANA_ERR_VALIDATION, NANA_ERR_INVALID};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (nana_kv_update_where(t, NULL, &bad[i], 1, &changed) != codes[i])
            fail_msg("bad update %zu: %s", i, nana_errmsg());
    assert_int_equal(nana_kv_update_where(t, NULL, NULL, 0, &changed), NANA_ERR_INVALID);
    static nana_update many[NANA_UPD_MAX + 1];
    for (size_t i = 0; i <= NANA_UPD_MAX; i++)
        many[i] = (nana_update){NANA_UPD_ADD, K("n"), K("0")};
    assert_int_equal(nana_kv_update_where(t, NULL, many, NANA_UPD_MAX + 1, &changed),
                     NANA_ERR_TOOBIG);
    assert_int_equal(nana_kv_update_where(t, NULL, many, NANA_UPD_MAX, &changed), 0);
    expect_get(t, "b", "{\"n\":4.5}");
}

/* A field that is not a number, or an overflow, fails the whole update: nothing changes. */
static void test_update_type_error(void **state)
{
    fixture *f = *state;
    nana_table *t = f->t;
    put(t, "a", "{\"n\": 1}");
    put(t, "b", "{\"n\": \"x\"}");
    put(t, "c", "{\"n\": 2}");
    nana_update add = {NANA_UPD_ADD, K("n"), K("1")};
    int64_t changed = -1;
    assert_int_equal(nana_kv_update_where(t, NULL, &add, 1, &changed), NANA_ERR_TYPE);
    assert_string_equal(nana_errmsg(), "key 'b': field 'n' is a string");
    assert_int_equal(changed, 0);
    expect_get(t, "a", "{\"n\": 1}");
    expect_get(t, "c", "{\"n\": 2}");
    nana_val *v = NULL;
    assert_int_equal(nana_kv_get_fresh(t, K("a"), NULL, 0, &v), 0);
    expect_val(v, "{\"n\": 1}");

    put(t, "b", "{\"n\": 9223372036854775807}");
    assert_int_equal(nana_kv_update_where(t, NULL, &add, 1, &changed), NANA_ERR_TYPE);
    assert_non_null(strstr(nana_errmsg(), "key 'b': field 'n' would pass the 64-bit"));
    expect_get(t, "a", "{\"n\": 1}");
    put(t, "b", "{\"n\": 1e308}");
    nana_update mul = {NANA_UPD_MUL, K("n"), K("10")};
    assert_int_equal(nana_kv_update_where(t, NULL, &mul, 1, &changed), NANA_ERR_TYPE);
    assert_non_null(strstr(nana_errmsg(), "finite"));
    put(t, "b", "{\"n\": [1]}");
    assert_int_equal(nana_kv_update_where(t, NULL, &mul, 1, &changed), NANA_ERR_TYPE);
    assert_string_equal(nana_errmsg(), "key 'b': field 'n' is an array");
    put(t, "b", "{\"n\": true}");
    assert_int_equal(nana_kv_update_where(t, NULL, &mul, 1, &changed), NANA_ERR_TYPE);
    assert_string_equal(nana_errmsg(), "key 'b': field 'n' is a boolean");
    expect_get(t, "c", "{\"n\": 2}");
}

/* A new value past max_value_bytes or max_json_depth fails the update: nothing changes. */
static void test_update_value_limit(void **state)
{
    (void)state;
    char path[512];
    test_db_path(path, sizeof(path), "select-vlimit");
    nana_store_opts o;
    nana_store_opts_init(&o);
    o.max_value_bytes = 32;
    o.max_json_depth = 3;
    nana_store *s;
    assert_int_equal(nana_store_open(path, &o, &s), 0);
    nana_table *t = nana_store_default_table(s);
    put(t, "a", "{\"s\":\"0123456789\"}");
    put(t, "b", "{\"s\":\"short\"}");
    nana_update grow = {NANA_UPD_SET, K("t"), K("\"0123456789\"")};
    int64_t changed = 0;
    assert_int_equal(nana_kv_update_where(t, NULL, &grow, 1, &changed), NANA_ERR_TOOBIG);
    assert_non_null(strstr(nana_errmsg(), "key 'a': the new value would pass max_value_bytes"));
    nana_update deep = {NANA_UPD_SET, K("d"), K("[[[1]]]")}; /* 4 levels in the object */
    assert_int_equal(nana_kv_update_where(t, NULL, &deep, 1, &changed), NANA_ERR_TOOBIG);
    assert_non_null(strstr(nana_errmsg(), "deeper than 3"));
    expect_get(t, "a", "{\"s\":\"0123456789\"}");
    expect_get(t, "b", "{\"s\":\"short\"}");
    nana_update fits = {NANA_UPD_SET, K("d"), K("[1]")};
    assert_int_equal(nana_kv_update_where(t, NULL, &fits, 1, &changed), 0);
    assert_int_equal(changed, 2);
    assert_int_equal(nana_store_close(s), 0);
    test_db_remove(path);
}

/* After an update, reads from the cache give the new value (every kind of cache). */
static void test_update_cache(void **state)
{
    fixture *f = *state;
    nana_cache_opts lru = {.kind = NANA_CACHE_LRU, .size = 100};
    nana_table *tabs[2] = {f->t, NULL};
    assert_int_equal(nana_store_table(f->s, "lru", &lru, &tabs[1]), 0);
    for (int i = 0; i < 2; i++) {
        nana_table *t = tabs[i];
        put(t, "a", "{\"n\": 1}");
        put(t, "b", "{\"n\": 5}");
        expect_get(t, "a", "{\"n\": 1}");
        assert_int_equal(nana_kv_is_cached(t, K("a")), 1);
        nana_update add = {NANA_UPD_ADD, K("n"), K("1")};
        nana_pred small = CMP(LT, "n", "3");
        int64_t changed = 0;
        assert_int_equal(nana_kv_update_where(t, &small, &add, 1, &changed), 0);
        assert_int_equal(changed, 1);
        expect_get(t, "a", "{\"n\":2}");
        expect_get(t, "b", "{\"n\": 5}");
    }
}

/* Past a few thousand changed keys, the table's cache is emptied instead. */
static void test_update_many_keys(void **state)
{
    fixture *f = *state;
    nana_table *t = f->t;
    enum { N = 5000 };
    static nana_kv_pair pairs[N];
    static char keys[N][8];
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof(keys[i]), "k%04d", i);
        pairs[i] = (nana_kv_pair){keys[i], strlen(keys[i]), "{\"n\":0}", 7};
    }
    assert_int_equal(nana_kv_batch_update(t, pairs, N), 0);
    expect_get(t, "k0000", "{\"n\":0}");
    expect_get(t, "k4999", "{\"n\":0}");
    nana_update add = {NANA_UPD_ADD, K("n"), K("1")};
    int64_t changed = 0;
    assert_int_equal(nana_kv_update_where(t, NULL, &add, 1, &changed), 0);
    assert_int_equal(changed, N);
    expect_get(t, "k0000", "{\"n\":1}");
    expect_get(t, "k4999", "{\"n\":1}");
    /* More rows than one chunk of the scan, all in key order. */
    nana_pred odd = CMP(EQ, "n", "1");
    nana_rows *r = NULL;
    assert_int_equal(nana_kv_select(t, &(nana_select){.pred = &odd, .limit = -1}, &r), 0);
    assert_int_equal(r->n, N);
    nana_rows_free(r);
}

typedef struct racer {
    nana_table *t;
    int id;
    int n;
} racer;

static void *race_sets(void *arg)
{
    racer *r = arg;
    for (int i = 0; i < r->n; i++) {
        char k[32], v[64];
        snprintf(k, sizeof(k), "t%d-%04d", r->id, i);
        snprintf(v, sizeof(v), "{\"kind\":\"plain\",\"i\":%d}", i);
        if (nana_kv_set(r->t, K(k), K(v))) return (void *)1;
    }
    return NULL;
}

/* An update racing plain sets from other threads loses no write of either. */
static void test_update_race(void **state)
{
    fixture *f = *state;
    nana_table *t = f->t;
    enum { BASE = 200, THREADS = 4, SETS = 300, UPDATES = 30 };
    for (int i = 0; i < BASE; i++) {
        char k[16];
        snprintf(k, sizeof(k), "base%03d", i);
        put(t, k, "{\"kind\":\"base\",\"n\":0}");
    }
    pthread_t th[THREADS];
    racer rs[THREADS];
    for (int i = 0; i < THREADS; i++) {
        rs[i] = (racer){.t = t, .id = i, .n = SETS};
        assert_int_equal(pthread_create(&th[i], NULL, race_sets, &rs[i]), 0);
    }
    nana_pred isbase = CMP(EQ, "kind", "\"base\"");
    nana_update add = {NANA_UPD_ADD, K("n"), K("1")};
    for (int u = 0; u < UPDATES; u++) {
        int64_t changed = 0;
        assert_int_equal(nana_kv_update_where(t, &isbase, &add, 1, &changed), 0);
        assert_int_equal(changed, BASE);
    }
    for (int i = 0; i < THREADS; i++) {
        void *ret;
        pthread_join(th[i], &ret);
        assert_null(ret);
    }
    char want[64];
    snprintf(want, sizeof(want), "{\"kind\":\"base\",\"n\":%d}", UPDATES);
    for (int i = 0; i < BASE; i++) {
        char k[16];
        snprintf(k, sizeof(k), "base%03d", i);
        expect_get(t, k, want);
    }
    for (int id = 0; id < THREADS; id++)
        for (int i = 0; i < SETS; i++) {
            char k[32], v[64];
            snprintf(k, sizeof(k), "t%d-%04d", id, i);
            snprintf(v, sizeof(v), "{\"kind\":\"plain\",\"i\":%d}", i);
            expect_get(t, k, v);
        }
    int64_t len = 0;
    assert_int_equal(nana_kv_len(t, &len), 0);
    assert_int_equal(len, BASE + THREADS * SETS);
}

/* A failing op in the middle undoes the ops before it; caches keep the old values. */
static void test_multi_all_or_nothing(void **state)
{
    fixture *f = *state;
    nana_table *t = f->t;
    put(t, "x", "\"old\"");
    put(t, "s", "{\"n\": \"str\"}");
    expect_get(t, "x", "\"old\"");
    assert_int_equal(nana_kv_is_cached(t, K("x")), 1);
    nana_update add = {NANA_UPD_ADD, K("n"), K("1")};
    nana_mop ops[] = {
        {.kind = NANA_MOP_SET, .t = t, .key = "x", .klen = 1, .value = "\"new\"", .vlen = 5},
        {.kind = NANA_MOP_SET, .t = t, .key = "fresh", .klen = 5, .value = "1", .vlen = 1},
        {.kind = NANA_MOP_DELETE, .t = t, .key = "s", .klen = 1},
        {.kind = NANA_MOP_SET, .t = t, .key = "s", .klen = 1, .value = "{\"n\":\"x\"}", .vlen = 9},
        {.kind = NANA_MOP_GET, .t = t, .key = "x", .klen = 1},
        {.kind = NANA_MOP_UPDATE, .t = t, .u = &add, .nu = 1},
        {.kind = NANA_MOP_SET, .t = t, .key = "late", .klen = 4, .value = "1", .vlen = 1},
    };
    size_t failed = 99;
    assert_int_equal(nana_store_multi(f->s, ops, 7, &failed), NANA_ERR_TYPE);
    assert_int_equal(failed, 5);
    assert_string_equal(nana_errmsg(), "query 5: key 's': field 'n' is a string");
    for (int i = 0; i < 7; i++) {
        assert_null(ops[i].v);
        assert_null(ops[i].rows);
    }
    expect_get(t, "x", "\"old\""); /* from the cache */
    nana_val *v = NULL;
    assert_int_equal(nana_kv_get_fresh(t, K("x"), NULL, 0, &v), 0); /* from SQLite */
    expect_val(v, "\"old\"");
    assert_int_equal(nana_kv_contains(t, K("fresh")), 0);
    assert_int_equal(nana_kv_contains(t, K("late")), 0);
    expect_get(t, "s", "{\"n\": \"str\"}");

    /* A check that fails before anything runs names its op too. */
    nana_mop bad[] = {
        {.kind = NANA_MOP_SET, .t = t, .key = "y", .klen = 1, .value = "1", .vlen = 1},
        {.kind = NANA_MOP_SET, .t = t, .key = "z", .klen = 1, .value = "{bad", .vlen = 4},
    };
    assert_int_equal(nana_store_multi(f->s, bad, 2, &failed), NANA_ERR_JSON);
    assert_int_equal(failed, 1);
    assert_non_null(strstr(nana_errmsg(), "query 1: "));
    assert_int_equal(nana_kv_contains(t, K("y")), 0);
    nana_pred badp = CMP(EQ, "a[", "1");
    nana_mop badsel[] = {
        {.kind = NANA_MOP_GET, .t = t, .key = "x", .klen = 1},
        {.kind = NANA_MOP_SELECT, .t = t, .sel = {.pred = &badp, .limit = -1}},
    };
    assert_int_equal(nana_store_multi(f->s, badsel, 2, &failed), NANA_ERR_VALIDATION);
    assert_int_equal(failed, 1);
    assert_non_null(strstr(nana_errmsg(), "query 1: the 1st comparison's field 'a['"));
    assert_null(badsel[0].v);
}

/* Each op sees the ones before it; every result field is filled. */
static void test_multi_results(void **state)
{
    fixture *f = *state;
    nana_table *t = f->t, *t2 = NULL;
    assert_int_equal(nana_store_table(f->s, "other", NULL, &t2), 0);
    put(t, "a", "{\"n\": 1}");
    put(t, "b", "{\"n\": 2}");
    expect_get(t, "a", "{\"n\": 1}");
    nana_pred one = CMP(EQ, "n", "1");
    nana_update set = {NANA_UPD_SET, K("tag"), K("\"t\"")};
    nana_mop ops[] = {
        {.kind = NANA_MOP_SET, .t = t, .key = "c", .klen = 1, .value = "{\"n\":1}", .vlen = 7},
        {.kind = NANA_MOP_GET, .t = t, .key = "c", .klen = 1},
        {.kind = NANA_MOP_GET, .t = t, .key = "nope", .klen = 4},
        {.kind = NANA_MOP_UPDATE, .t = t, .pred = &one, .u = &set, .nu = 1},
        {.kind = NANA_MOP_SELECT, .t = t, .sel = {.pred = &one, .limit = -1}},
        {.kind = NANA_MOP_DELETE, .t = t, .key = "b", .klen = 1},
        {.kind = NANA_MOP_DELETE, .t = t, .key = "b", .klen = 1},
        {.kind = NANA_MOP_SET, .t = t2, .key = "o", .klen = 1, .value = "[]", .vlen = 2},
        {.kind = NANA_MOP_SELECT, .t = t, .sel = {.limit = -1}},
        {.kind = NANA_MOP_GET, .t = t, .key = "a", .klen = 1},
    };
    size_t n = sizeof(ops) / sizeof(ops[0]), failed = 99;
    assert_int_equal(nana_store_multi(f->s, ops, n, &failed), 0);
    assert_int_equal(ops[0].changed, 1);
    expect_val(ops[1].v, "{\"n\":1}");
    assert_null(ops[2].v);
    assert_int_equal(ops[3].changed, 2);
    assert_string_equal(keys_of(ops[4].rows), "a,c");
    assert_string_equal(ops[4].rows->r[1].value, "{\"n\":1,\"tag\":\"t\"}");
    assert_int_equal(ops[5].changed, 1);
    assert_int_equal(ops[6].changed, 0);
    assert_int_equal(ops[7].changed, 1);
    assert_string_equal(keys_of(ops[8].rows), "a,c");
    expect_val(ops[9].v, "{\"n\":1,\"tag\":\"t\"}");
    for (size_t i = 0; i < n; i++)
        nana_rows_free(ops[i].rows);
    /* The caches learned it all after the commit. */
    expect_get(t, "a", "{\"n\":1,\"tag\":\"t\"}");
    expect_get(t, "c", "{\"n\":1,\"tag\":\"t\"}");
    assert_int_equal(nana_kv_contains(t, K("b")), 0);
    expect_get(t2, "o", "[]");

    /* Limits and misuse. */
    static nana_mop many[NANA_MULTI_MAX_OPS + 1];
    for (size_t i = 0; i <= NANA_MULTI_MAX_OPS; i++)
        many[i] = (nana_mop){.kind = NANA_MOP_GET, .t = t, .key = "a", .klen = 1};
    assert_int_equal(nana_store_multi(f->s, many, NANA_MULTI_MAX_OPS + 1, &failed),
                     NANA_ERR_TOOBIG);
    assert_int_equal(failed, NANA_MULTI_MAX_OPS + 1);
    assert_int_equal(nana_store_multi(f->s, many, NANA_MULTI_MAX_OPS, &failed), 0);
    for (size_t i = 0; i < NANA_MULTI_MAX_OPS; i++)
        nana_val_unref(many[i].v);
    nana_mop unknown = {.kind = (nana_mop_kind)77, .t = t};
    assert_int_equal(nana_store_multi(f->s, &unknown, 1, &failed), NANA_ERR_INVALID);
    assert_int_equal(failed, 0);
    char path[512];
    test_db_path(path, sizeof(path), "select-other");
    nana_store *s2;
    assert_int_equal(nana_store_open(path, NULL, &s2), 0);
    nana_mop foreign = {
        .kind = NANA_MOP_GET, .t = nana_store_default_table(s2), .key = "a", .klen = 1};
    assert_int_equal(nana_store_multi(f->s, &foreign, 1, &failed), NANA_ERR_INVALID);
    assert_int_equal(nana_store_close(s2), 0);
    test_db_remove(path);
    assert_int_equal(nana_store_multi(f->s, NULL, 0, &failed), 0);
}

/* The results of one multi share max_result_bytes. */
static void test_multi_result_limit(void **state)
{
    (void)state;
    char path[512];
    test_db_path(path, sizeof(path), "select-mlimit");
    nana_store_opts o;
    nana_store_opts_init(&o);
    o.max_result_bytes = 100;
    nana_store *s;
    assert_int_equal(nana_store_open(path, &o, &s), 0);
    nana_table *t = nana_store_default_table(s);
    for (int i = 0; i < 30; i++) {
        char k[8];
        snprintf(k, sizeof(k), "k%02d", i);
        put(t, k, "{\"n\":1}"); /* 10 bytes a row */
    }
    nana_mop ops[] = {
        {.kind = NANA_MOP_SELECT, .t = t, .sel = {.limit = 5}},  /* 50 bytes */
        {.kind = NANA_MOP_SELECT, .t = t, .sel = {.limit = -1}}, /* the other 50 */
        {.kind = NANA_MOP_GET, .t = t, .key = "k00", .klen = 3}, /* 7 more: too many */
    };
    size_t failed;
    assert_int_equal(nana_store_multi(s, ops, 2, &failed), 0);
    assert_int_equal(ops[0].rows->n, 5);
    assert_int_equal(ops[1].rows->n, 5);
    assert_true(ops[1].rows->more);
    nana_rows_free(ops[0].rows);
    nana_rows_free(ops[1].rows);
    assert_int_equal(nana_store_multi(s, ops, 3, &failed), NANA_ERR_TOOBIG);
    assert_int_equal(failed, 2);
    assert_null(ops[0].rows);
    assert_int_equal(nana_store_close(s), 0);
    test_db_remove(path);
}

/* query_timeout_ms stops a long select, update or multi; nothing changes. */
static void test_timeout(void **state)
{
    (void)state;
    char path[512];
    test_db_path(path, sizeof(path), "select-timeout");
    nana_store_opts o;
    nana_store_opts_init(&o);
    o.query_timeout_ms = 1;
    nana_store *s;
    assert_int_equal(nana_store_open(path, &o, &s), 0);
    nana_table *t = nana_store_default_table(s);
    enum { N = 20000 };
    static nana_kv_pair pairs[N];
    static char keys[N][8];
    static const char val[] = "{\"a\":{\"b\":[1,2,3,{\"c\":\"some text to parse\"}]},\"n\":1}";
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof(keys[i]), "k%05d", i);
        pairs[i] = (nana_kv_pair){keys[i], strlen(keys[i]), val, strlen(val)};
    }
    assert_int_equal(nana_kv_batch_update(t, pairs, N), 0);
    /* A wide predicate over every row: far more than 1 ms of work. */
    static nana_pred leaves[64], ors[64];
    for (int i = 0; i < 64; i++)
        leaves[i] = CMP(EQ, "a.b[3].c", "\"nothing like it\"");
    ors[0] = leaves[0];
    for (int i = 1; i < 20; i++)
        ors[i] = OR(&ors[i - 1], &leaves[i]);
    nana_rows *r = NULL;
    assert_int_equal(nana_kv_select(t, &(nana_select){.pred = &ors[19], .limit = -1}, &r),
                     NANA_ERR_TIMEOUT);
    assert_null(r);
    nana_update add = {NANA_UPD_ADD, K("n"), K("1")};
    nana_pred none = NOT(&ors[19]);
    int64_t changed = 0;
    assert_int_equal(nana_kv_update_where(t, &none, &add, 1, &changed), NANA_ERR_TIMEOUT);
    nana_mop m = {.kind = NANA_MOP_UPDATE, .t = t, .pred = &none, .u = &add, .nu = 1};
    size_t failed;
    assert_int_equal(nana_store_multi(s, &m, 1, &failed), NANA_ERR_TIMEOUT);
    assert_int_equal(failed, 0);
    assert_non_null(strstr(nana_errmsg(), "query 0: "));
    /* Nothing changed, and the store goes on serving. */
    expect_get(t, "k00000", val);
    expect_get(t, "k19999", val);
    assert_int_equal(nana_kv_set(t, K("after"), K("1")), 0);
    assert_int_equal(nana_store_close(s), 0);
    test_db_remove(path);
}

/* Inside the caller's own transaction: select and multi see its writes. */
static void test_in_transaction(void **state)
{
    fixture *f = *state;
    nana_table *t = f->t;
    put(t, "a", "{\"n\": 1}");
    assert_int_equal(nana_store_begin(f->s), 0);
    put(t, "b", "{\"n\": 1}");
    nana_pred one = CMP(EQ, "n", "1");
    expect_match(t, &one, "a,b");
    nana_update add = {NANA_UPD_ADD, K("n"), K("1")};
    nana_mop m[] = {
        {.kind = NANA_MOP_UPDATE, .t = t, .pred = &one, .u = &add, .nu = 1},
        {.kind = NANA_MOP_GET, .t = t, .key = "b", .klen = 1},
    };
    size_t failed;
    assert_int_equal(nana_store_multi(f->s, m, 2, &failed), 0);
    assert_int_equal(m[0].changed, 2);
    expect_val(m[1].v, "{\"n\":2}");
    assert_int_equal(nana_store_rollback(f->s), 0);
    expect_get(t, "a", "{\"n\": 1}");
    assert_int_equal(nana_kv_contains(t, K("b")), 0);
}

/* A page after the first of a range has one lower bound in its statement,
 * the higher of the range's start and the last key seen: with both, SQLite
 * seeks to either and filters with the other, so each page scanned the
 * range from its start again (a million rows took minutes, not seconds).
 * Bounds and pages still give the right rows when |after| is below |lo|. */
static void test_one_lower_bound(void **state)
{
    fixture *f = *state;
    nana_table *t = f->t;
    for (int i = 0; i < 10; i++) {
        char k[8];
        snprintf(k, sizeof(k), "k%d", i);
        put(t, k, "1");
    }
    nana_select q = {.lo = "k2",
                     .lolen = 2,
                     .has_lo = true,
                     .after = "k5",
                     .alen = 2,
                     .has_after = true,
                     .limit = -1};
    nana_sel_plan p;
    memset(&p, 0, sizeof(p));
    assert_int_equal(nana_sel_plan_build(t, &q, &p), 0);
    assert_non_null(strstr(p.sql.data, "key>?3"));
    assert_null(strstr(p.sql.data, "key>=?1"));
    nana_sel_plan_free(&p);
    nana_rows *r = NULL;
    assert_int_equal(nana_kv_select(t, &q, &r), 0);
    assert_string_equal(keys_of(r), "k6,k7,k8,k9");
    nana_rows_free(r);
    /* after below lo: lo is the bound */
    q.after = "k0";
    q.alen = 2;
    memset(&p, 0, sizeof(p));
    assert_int_equal(nana_sel_plan_build(t, &q, &p), 0);
    assert_null(strstr(p.sql.data, "key>?3"));
    assert_non_null(strstr(p.sql.data, "key>=?1"));
    nana_sel_plan_free(&p);
    assert_int_equal(nana_kv_select(t, &q, &r), 0);
    assert_string_equal(keys_of(r), "k2,k3,k4,k5,k6,k7,k8,k9");
    nana_rows_free(r);
    /* equal, and a prefix: "k2" after "k2" starts past it; after "k" (shorter) is below */
    q.after = "k2";
    assert_int_equal(nana_kv_select(t, &q, &r), 0);
    assert_string_equal(keys_of(r), "k3,k4,k5,k6,k7,k8,k9");
    nana_rows_free(r);
    q.after = "k";
    q.alen = 1;
    assert_int_equal(nana_kv_select(t, &q, &r), 0);
    assert_string_equal(keys_of(r), "k2,k3,k4,k5,k6,k7,k8,k9");
    nana_rows_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_compare_classes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_logic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nested_paths, setup, teardown),
        cmocka_unit_test(test_bad_trees),
        cmocka_unit_test_setup_teardown(test_sql_in_field, setup, teardown),
        cmocka_unit_test_setup_teardown(test_paging, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_lower_bound, setup, teardown),
        cmocka_unit_test(test_select_result_limit),
        cmocka_unit_test_setup_teardown(test_non_json_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_update_ops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_update_type_error, setup, teardown),
        cmocka_unit_test(test_update_value_limit),
        cmocka_unit_test_setup_teardown(test_update_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_update_many_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_update_race, setup, teardown),
        cmocka_unit_test_setup_teardown(test_multi_all_or_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_multi_results, setup, teardown),
        cmocka_unit_test(test_multi_result_limit),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test_setup_teardown(test_in_transaction, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
