/*
 * test_store_kv.c - the dict, batch and value operations of the store,
 * on a real SQLite file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "store_fixture.h"

#include <sqlite3.h>

static int setup(void **state)
{
    return fixture_open(state, "kv");
}

static int teardown(void **state)
{
    return fixture_close(state);
}

static void test_set_get_delete(void **state)
{
    fixture *f = *state;
    nana_table *t = f->t;
    assert_int_equal(nana_kv_set(t, K("hello"), K("\"world\"")), 0);
    expect_get(t, "hello", "\"world\"");
    assert_int_equal(nana_kv_set(t, K("hello"), K("{\"a\": [1, 2, {\"b\": null}]}")), 0);
    expect_get(t, "hello", "{\"a\": [1, 2, {\"b\": null}]}");

    /* JSON null is a value, absence is NOTFOUND. */
    assert_int_equal(nana_kv_set(t, K("nothing"), K("null")), 0);
    expect_get(t, "nothing", "null");
    nana_val *v = NULL;
    assert_int_equal(nana_kv_get(t, K("no-such-key"), &v), NANA_ERR_NOTFOUND);
    assert_string_equal(nana_errmsg(), "'no-such-key'");
    assert_null(v);

    assert_int_equal(nana_kv_contains(t, K("hello")), 1);
    assert_int_equal(nana_kv_contains(t, K("nothing")), 1);
    assert_int_equal(nana_kv_contains(t, K("absent")), 0);

    assert_int_equal(nana_kv_delete(t, K("hello")), 0);
    assert_int_equal(nana_kv_contains(t, K("hello")), 0);
    assert_int_equal(nana_kv_get(t, K("hello"), &v), NANA_ERR_NOTFOUND);
    assert_int_equal(nana_kv_delete(t, K("hello")), NANA_ERR_NOTFOUND);
    assert_string_equal(nana_errmsg(), "'hello'");

    /* Empty key and non-ASCII key are fine. */
    assert_int_equal(nana_kv_set(t, "", 0, K("1")), 0);
    v = NULL;
    assert_int_equal(nana_kv_get(t, "", 0, &v), 0);
    expect_val(v, "1");
    assert_int_equal(nana_kv_set(t, K("キー🔑"), K("\"値\"")), 0);
    expect_get(t, "キー🔑", "\"値\"");
}

static void test_len_keys_values_items(void **state)
{
    fixture *f = *state;
    nana_table *t = f->t;
    int64_t n = -1;
    assert_int_equal(nana_kv_len(t, &n), 0);
    assert_int_equal(n, 0);
    nana_val *v;
    assert_int_equal(nana_kv_keys(t, &v), 0);
    expect_val(v, "[]");
    assert_int_equal(nana_kv_to_dict(t, &v), 0);
    expect_val(v, "{}");

    assert_int_equal(nana_kv_set(t, K("b"), K("1")), 0);
    assert_int_equal(nana_kv_set(t, K("a"), K("\"x\"")), 0);
    assert_int_equal(nana_kv_set(t, K("c\"q"), K("[true]")), 0);
    /* Updating keeps the key's place, as a dict does. */
    assert_int_equal(nana_kv_set(t, K("b"), K("2")), 0);
    assert_int_equal(nana_kv_len(t, &n), 0);
    assert_int_equal(n, 3);
    /* keys() in key order (Python NanaSQLite's SELECT reads the key's index);
     * values(), items() and to_dict() in insertion order (its loaded cache). */
    assert_int_equal(nana_kv_keys(t, &v), 0);
    expect_val(v, "[\"a\",\"b\",\"c\\\"q\"]");
    assert_int_equal(nana_kv_values(t, &v), 0);
    expect_val(v, "[2,\"x\",[true]]");
    assert_int_equal(nana_kv_items(t, &v), 0);
    expect_val(v, "[[\"b\",2],[\"a\",\"x\"],[\"c\\\"q\",[true]]]");
    assert_int_equal(nana_kv_to_dict(t, &v), 0);
    expect_val(v, "{\"b\":2,\"a\":\"x\",\"c\\\"q\":[true]}");
}

/* The orders of keys() and items() on keys whose key order, insertion
 * order and byte order differ from their character order, whatever the
 * table's cache, and after updates, deletes and re-inserts. */
static void test_listing_order(void **state)
{
    fixture *f = *state;
    nana_cache_opts none = {.kind = NANA_CACHE_NONE}, lru = {.kind = NANA_CACHE_LRU, .size = 1};
    nana_table *tabs[3] = {f->t, NULL, NULL};
    assert_int_equal(nana_store_table(f->s, "nocache", &none, &tabs[1]), 0);
    assert_int_equal(nana_store_table(f->s, "lru1", &lru, &tabs[2]), 0);
    static const char *const ins[] = {"b", "\xc3\xa9", "10", "B", "9", "a"};
    for (int i = 0; i < 3; i++) {
        nana_table *t = tabs[i];
        nana_val *v;
        for (size_t k = 0; k < sizeof(ins) / sizeof(ins[0]); k++)
            assert_int_equal(nana_kv_set(t, K(ins[k]), K("0")), 0);
        assert_int_equal(nana_kv_set(t, K("b"), K("1")), 0); /* an update keeps its place */
        assert_int_equal(nana_kv_delete(t, K("10")), 0);
        assert_int_equal(nana_kv_set(t, K("10"), K("2")), 0); /* a re-insert goes last */
        for (int pass = 0; pass < 2; pass++) { /* cold, then with whatever got cached */
            expect_get(t, "a", "0");
            /* byte order of the UTF-8 text: digits, upper case, lower case, then é */
            assert_int_equal(nana_kv_keys(t, &v), 0);
            expect_val(v, "[\"10\",\"9\",\"B\",\"a\",\"b\",\"\xc3\xa9\"]");
            assert_int_equal(nana_kv_items(t, &v), 0);
            expect_val(v, "[[\"b\",1],[\"\xc3\xa9\",0],[\"B\",0],[\"9\",0],[\"a\",0],"
                          "[\"10\",2]]");
            assert_int_equal(nana_kv_to_dict(t, &v), 0);
            expect_val(v, "{\"b\":1,\"\xc3\xa9\":0,\"B\":0,\"9\":0,\"a\":0,\"10\":2}");
        }
        /* popitem takes the first key in key order, cached or not */
        assert_int_equal(nana_kv_popitem(t, &v), 0);
        expect_val(v, "[\"10\",2]");
        expect_get(t, "9", "0");
        assert_int_equal(nana_kv_popitem(t, &v), 0);
        expect_val(v, "[\"9\",0]");
        assert_int_equal(nana_kv_contains(t, K("9")), 0);
        assert_int_equal(nana_kv_keys(t, &v), 0);
        expect_val(v, "[\"B\",\"a\",\"b\",\"\xc3\xa9\"]");
    }
}

/* get_fresh reads SQLite past the cache, is_cached says what the cache
 * holds without counting as a use, clear_cache empties it. */
static void test_fresh_is_cached_clear_cache(void **state)
{
    fixture *f = *state;
    nana_table *t = f->t;
    nana_val *v;
    assert_int_equal(nana_kv_is_cached(t, K("k")), 0);
    assert_int_equal(nana_kv_get_fresh(t, K("k"), K("5"), &v), 0);
    expect_val(v, "5");
    assert_int_equal(nana_kv_get_fresh(t, K("k"), NULL, 0, &v), 0);
    expect_val(v, "null");
    assert_int_equal(nana_kv_get_fresh(t, K("k"), K("{bad"), &v), NANA_ERR_JSON);
    assert_int_equal(nana_kv_is_cached(t, K("k")), 0); /* absent keys are not remembered */
    assert_int_equal(nana_kv_set(t, K("k"), K("null")), 0);
    assert_int_equal(nana_kv_is_cached(t, K("k")), 1);
    /* a stored null is a value, not an absent key */
    assert_int_equal(nana_kv_get_fresh(t, K("k"), K("5"), &v), 0);
    expect_val(v, "null");
    assert_int_equal(nana_kv_set(t, K("k"), K("[1]")), 0);
    nana_kv_clear_cache(t);
    assert_int_equal(nana_kv_is_cached(t, K("k")), 0);
    assert_int_equal(nana_kv_get_fresh(t, K("k"), NULL, 0, &v), 0);
    expect_val(v, "[1]");
    assert_int_equal(nana_kv_is_cached(t, K("k")), 1); /* the fresh read refilled it */
    nana_kv_clear_cache(t);
    expect_get(t, "k", "[1]"); /* data intact */
    assert_int_equal(nana_kv_is_cached(t, K("k")), 1);
    assert_int_equal(nana_kv_is_cached(t, "\xff", 1), NANA_ERR_INVALID);
    assert_int_equal(nana_kv_get_fresh(t, "\xff", 1, NULL, 0, &v), NANA_ERR_INVALID);

    /* Another program changes the file behind the store's back: get keeps
     * answering from the cache, get_fresh reads the file and puts what it
     * read in the cache (a new value, or no entry for a deleted row). */
    assert_int_equal(nana_kv_set(t, K("k2"), K("\"old\"")), 0);
    assert_int_equal(nana_kv_set(t, K("k3"), K("3")), 0);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    assert_int_equal(sqlite3_exec(db,
                                  "UPDATE data SET value='\"new\"' WHERE key='k2';"
                                  "DELETE FROM data WHERE key='k3'",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    expect_get(t, "k2", "\"old\"");
    assert_int_equal(nana_kv_get_fresh(t, K("k2"), NULL, 0, &v), 0);
    expect_val(v, "\"new\"");
    expect_get(t, "k2", "\"new\"");
    expect_get(t, "k3", "3");
    assert_int_equal(nana_kv_get_fresh(t, K("k3"), K("\"gone\""), &v), 0);
    expect_val(v, "\"gone\"");
    assert_int_equal(nana_kv_is_cached(t, K("k3")), 0);
    assert_int_equal(nana_kv_get(t, K("k3"), &v), NANA_ERR_NOTFOUND);

    /* is_cached does not touch the LRU order: with room for two, looking
     * at "x" does not save it from eviction, reading it does. */
    nana_cache_opts lru = {.kind = NANA_CACHE_LRU, .size = 2};
    nana_table *l;
    assert_int_equal(nana_store_table(f->s, "lru2", &lru, &l), 0);
    assert_int_equal(nana_kv_set(l, K("x"), K("1")), 0);
    assert_int_equal(nana_kv_set(l, K("y"), K("2")), 0);
    assert_int_equal(nana_kv_is_cached(l, K("x")), 1);
    assert_int_equal(nana_kv_set(l, K("z"), K("3")), 0);
    assert_int_equal(nana_kv_is_cached(l, K("x")), 0);
    assert_int_equal(nana_kv_is_cached(l, K("y")), 1);
    expect_get(l, "y", "2");
    assert_int_equal(nana_kv_set(l, K("w"), K("4")), 0);
    assert_int_equal(nana_kv_is_cached(l, K("y")), 1);
    assert_int_equal(nana_kv_is_cached(l, K("z")), 0);

    /* a table without a cache never has anything cached */
    nana_cache_opts none = {.kind = NANA_CACHE_NONE};
    nana_table *n;
    assert_int_equal(nana_store_table(f->s, "none", &none, &n), 0);
    assert_int_equal(nana_kv_set(n, K("x"), K("1")), 0);
    assert_int_equal(nana_kv_is_cached(n, K("x")), 0);
    assert_int_equal(nana_kv_get_fresh(n, K("x"), NULL, 0, &v), 0);
    expect_val(v, "1");
    nana_kv_clear_cache(n);
}

/* Stored values nest at most 128 levels by default, counted as the wire's
 * transcoder counts (the value itself and empty containers included). */
static void test_default_depth(void **state)
{
    fixture *f = *state;
    char deep[2 * 130 + 1];
    for (int d = 127; d <= 129; d++) {
        memset(deep, '[', (size_t)d);
        memset(deep + d, ']', (size_t)d);
        int rc = nana_kv_set(f->t, "d", 1, deep, 2 * (size_t)d);
        assert_int_equal(rc, d <= NANA_DEFAULT_JSON_DEPTH ? 0 : NANA_ERR_JSON);
        if (rc) assert_non_null(strstr(nana_errmsg(), "nesting too deep (limit 128)"));
    }
    assert_int_equal(NANA_DEFAULT_JSON_DEPTH, 128);
}

static void test_get_default_pop_popitem_setdefault(void **state)
{
    fixture *f = *state;
    nana_table *t = f->t;
    nana_val *v;
    assert_int_equal(nana_kv_get_default(t, K("x"), K("42"), &v), 0);
    expect_val(v, "42");
    assert_int_equal(nana_kv_get_default(t, K("x"), NULL, 0, &v), 0);
    expect_val(v, "null");
    assert_int_equal(nana_kv_set(t, K("x"), K("7")), 0);
    assert_int_equal(nana_kv_get_default(t, K("x"), K("42"), &v), 0);
    expect_val(v, "7");
    assert_int_equal(nana_kv_get_default(t, K("y"), K("{bad"), &v), NANA_ERR_JSON);

    /* pop */
    assert_int_equal(nana_kv_pop(t, K("x"), NULL, 0, &v), 0);
    expect_val(v, "7");
    assert_int_equal(nana_kv_contains(t, K("x")), 0);
    assert_int_equal(nana_kv_pop(t, K("x"), NULL, 0, &v), NANA_ERR_NOTFOUND);
    assert_int_equal(nana_kv_pop(t, K("x"), K("\"dflt\""), &v), 0);
    expect_val(v, "\"dflt\"");

    /* popitem: the first key in key order, not the last inserted; empty is NOTFOUND */
    assert_int_equal(nana_kv_popitem(t, &v), NANA_ERR_NOTFOUND);
    assert_int_equal(nana_kv_set(t, K("first"), K("1")), 0);
    assert_int_equal(nana_kv_set(t, K("second"), K("2")), 0);
    assert_int_equal(nana_kv_set(t, K("another"), K("3")), 0);
    assert_int_equal(nana_kv_popitem(t, &v), 0);
    expect_val(v, "[\"another\",3]");
    assert_int_equal(nana_kv_contains(t, K("another")), 0);
    assert_int_equal(nana_kv_popitem(t, &v), 0);
    expect_val(v, "[\"first\",1]");
    assert_int_equal(nana_kv_popitem(t, &v), 0);
    expect_val(v, "[\"second\",2]");
    assert_int_equal(nana_kv_popitem(t, &v), NANA_ERR_NOTFOUND);

    /* setdefault */
    assert_int_equal(nana_kv_setdefault(t, K("sd"), K("[1]"), &v), 0);
    expect_val(v, "[1]");
    assert_int_equal(nana_kv_setdefault(t, K("sd"), K("[2]"), &v), 0);
    expect_val(v, "[1]");
    expect_get(t, "sd", "[1]");
    assert_int_equal(nana_kv_setdefault(t, K("sdnull"), NULL, 0, &v), 0);
    expect_val(v, "null");
    expect_get(t, "sdnull", "null");

    /* clear */
    assert_int_equal(nana_kv_clear(t), 0);
    int64_t n;
    assert_int_equal(nana_kv_len(t, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(nana_kv_get(t, K("sd"), &v), NANA_ERR_NOTFOUND);
}

static void test_batch(void **state)
{
    fixture *f = *state;
    nana_table *t = f->t;
    nana_kv_pair pairs[] = {
        {K("k1"), K("1")},
        {K("k2"), K("{\"n\":2}")},
        {K("k3"), K("\"three\"")},
        {K("k4"), K("null")},
    };
    assert_int_equal(nana_kv_batch_update(t, pairs, 4), 0);
    expect_get(t, "k2", "{\"n\":2}");

    nana_key keys[] = {{K("k1")}, {K("missing")}, {K("k4")}, {K("k1")}, {K("k3")}};
    nana_val *v;
    assert_int_equal(nana_kv_batch_get(t, keys, 5, &v), 0);
    expect_val(v, "{\"k1\":1,\"k4\":null,\"k3\":\"three\"}");
    assert_int_equal(nana_kv_batch_get(t, keys, 0, &v), 0);
    expect_val(v, "{}");

    /* One invalid pair: nothing is written. */
    nana_kv_pair bad[] = {{K("n1"), K("1")}, {K("n2"), K("{oops")}};
    assert_int_equal(nana_kv_batch_update(t, bad, 2), NANA_ERR_JSON);
    assert_non_null(strstr(nana_errmsg(), "item 1"));
    assert_int_equal(nana_kv_contains(t, K("n1")), 0);

    /* Partial: valid ones are written, invalid ones reported per key. */
    assert_int_equal(nana_kv_batch_update_partial(t, bad, 2, &v), 0);
    assert_non_null(strstr(v->data, "\"n2\":\"Skipped key 'n2' during partial batch update"));
    assert_null(strstr(v->data, "\"n1\""));
    nana_val_unref(v);
    expect_get(t, "n1", "1");
    assert_int_equal(nana_kv_batch_update_partial(t, pairs, 4, &v), 0);
    expect_val(v, "{}");

    int64_t deleted = -1;
    nana_key dk[] = {{K("k1")}, {K("nope")}, {K("k2")}};
    assert_int_equal(nana_kv_batch_delete(t, dk, 3, &deleted), 0);
    assert_int_equal(deleted, 2);
    assert_int_equal(nana_kv_contains(t, K("k1")), 0);
    assert_int_equal(nana_kv_contains(t, K("k2")), 0);
    assert_int_equal(nana_kv_contains(t, K("k3")), 1);
}

/* batch_get of more keys than SQLite's host-parameter limit (32766). */
static void test_batch_get_many(void **state)
{
    fixture *f = *state;
    nana_table *t;
    /* A table without cache, so every key comes from SQLite. */
    nana_cache_opts none = {.kind = NANA_CACHE_NONE};
    assert_int_equal(nana_store_table(f->s, "many", &none, &t), 0);
    enum { N = 40000 };
    nana_kv_pair *pairs = calloc(N, sizeof(*pairs));
    nana_key *keys = calloc(N + 1, sizeof(*keys));
    char(*kb)[16] = calloc(N + 1, 16);
    for (int i = 0; i < N; i++) {
        snprintf(kb[i], 16, "key%05d", i);
        pairs[i] = (nana_kv_pair){kb[i], strlen(kb[i]), "1", 1};
        keys[i] = (nana_key){kb[i], strlen(kb[i])};
    }
    snprintf(kb[N], 16, "absent");
    keys[N] = (nana_key){kb[N], strlen(kb[N])};
    assert_int_equal(nana_kv_batch_update(t, pairs, N), 0);
    nana_val *v;
    assert_int_equal(nana_kv_batch_get(t, keys, N + 1, &v), 0);
    /* {"key00000":1,...}: 13 bytes per entry with its comma, minus one, plus braces */
    assert_int_equal(v->len, (size_t)N * 13 - 1 + 2);
    assert_null(strstr(v->data, "absent"));
    nana_val_unref(v);
    free(pairs);
    free(keys);
    free(kb);
}

static void test_increment_patch_path(void **state)
{
    fixture *f = *state;
    nana_table *t = f->t;
    nana_val *v;
    /* increment an absent key: starts at 0 */
    assert_int_equal(nana_kv_increment(t, K("cnt"), NULL, 0, NULL, 0, NULL, 0, &v), 0);
    expect_val(v, "1");
    assert_int_equal(nana_kv_increment(t, K("cnt"), K("41"), NULL, 0, NULL, 0, &v), 0);
    expect_val(v, "42");
    expect_get(t, "cnt", "42");
    assert_int_equal(nana_kv_increment(t, K("cnt"), K("0.5"), NULL, 0, NULL, 0, &v), 0);
    expect_val(v, "42.5");
    assert_int_equal(nana_kv_increment(t, K("cnt"), K("-2.5"), NULL, 0, NULL, 0, &v), 0);
    expect_val(v, "40.0");
    /* default start */
    assert_int_equal(nana_kv_increment(t, K("d"), K("5"), NULL, 0, K("100"), &v), 0);
    expect_val(v, "105");
    /* field inside an object */
    assert_int_equal(nana_kv_set(t, K("obj"), K("{\"hits\":1,\"name\":\"x\"}")), 0);
    assert_int_equal(nana_kv_increment(t, K("obj"), K("2"), K("hits"), NULL, 0, &v), 0);
    expect_val(v, "3");
    expect_get(t, "obj", "{\"hits\":3,\"name\":\"x\"}");
    assert_int_equal(nana_kv_increment(t, K("obj"), K("1"), K("new"), NULL, 0, &v), 0);
    expect_val(v, "1");
    expect_get(t, "obj", "{\"hits\":3,\"name\":\"x\",\"new\":1}");
    assert_int_equal(nana_kv_increment(t, K("fresh"), K("1"), K("n"), NULL, 0, &v), 0);
    expect_val(v, "1");
    expect_get(t, "fresh", "{\"n\":1}");
    /* type errors */
    assert_int_equal(nana_kv_increment(t, K("obj"), K("1"), K("name"), NULL, 0, &v), NANA_ERR_TYPE);
    assert_int_equal(nana_kv_increment(t, K("obj"), K("1"), NULL, 0, NULL, 0, &v), NANA_ERR_TYPE);
    assert_int_equal(nana_kv_increment(t, K("cnt"), K("true"), NULL, 0, NULL, 0, &v),
                     NANA_ERR_TYPE);
    assert_int_equal(nana_kv_increment(t, K("cnt"), K("\"1\""), NULL, 0, NULL, 0, &v),
                     NANA_ERR_TYPE);
    assert_int_equal(nana_kv_set(t, K("max"), K("9223372036854775807")), 0);
    assert_int_equal(nana_kv_increment(t, K("max"), K("1"), NULL, 0, NULL, 0, &v), NANA_ERR_TOOBIG);
    expect_get(t, "max", "9223372036854775807");
    assert_int_equal(nana_kv_set(t, K("huge"), K("123456789012345678901234567890")), 0);
    assert_int_equal(nana_kv_increment(t, K("huge"), K("1"), NULL, 0, NULL, 0, &v),
                     NANA_ERR_TOOBIG);

    /* patch */
    assert_int_equal(nana_kv_patch(t, K("p"), K("{\"a\":1}"), 0, &v), NANA_ERR_NOTFOUND);
    assert_int_equal(nana_kv_patch(t, K("p"), K("{\"a\":1}"), 1, &v), 0);
    expect_val(v, "{\"a\":1}");
    assert_int_equal(nana_kv_patch(t, K("p"), K("{\"b\":{\"c\":2},\"a\":5}"), 0, &v), 0);
    expect_val(v, "{\"a\":5,\"b\":{\"c\":2}}");
    expect_get(t, "p", "{\"a\":5,\"b\":{\"c\":2}}");
    assert_int_equal(nana_kv_patch(t, K("p"), K("[1]"), 0, &v), NANA_ERR_TYPE);
    assert_int_equal(nana_kv_patch(t, K("cnt"), K("{\"a\":1}"), 0, &v), NANA_ERR_TYPE);

    /* get_by_path */
    assert_int_equal(nana_kv_get_by_path(t, K("p"), K("$.b.c"), &v), 0);
    expect_val(v, "2");
    assert_int_equal(nana_kv_get_by_path(t, K("p"), K("$.b"), &v), 0);
    expect_val(v, "{\"c\":2}");
    assert_int_equal(nana_kv_set(t, K("s"), K("{\"name\":\"ナナ\",\"l\":[10,20]}")), 0);
    assert_int_equal(nana_kv_get_by_path(t, K("s"), K("$.name"), &v), 0);
    expect_val(v, "\"ナナ\"");
    assert_int_equal(nana_kv_get_by_path(t, K("s"), K("$.l[1]"), &v), 0);
    expect_val(v, "20");
    assert_int_equal(nana_kv_get_by_path(t, K("s"), K("$.nothing"), &v), 0);
    expect_val(v, "null");
    assert_int_equal(nana_kv_get_by_path(t, K("nokey"), K("$.a"), &v), NANA_ERR_NOTFOUND);
    assert_int_equal(nana_kv_get_by_path(t, K("s"), K("a.b"), &v), NANA_ERR_VALIDATION);
    const char *badpaths[] = {"$.a[", "$.", "$a", "$[x]", "$.l[1", "$[#-]", "$.\"q", "$..a"};
    for (size_t i = 0; i < sizeof(badpaths) / sizeof(badpaths[0]); i++)
        assert_int_equal(nana_kv_get_by_path(t, K("s"), K(badpaths[i]), &v), NANA_ERR_VALIDATION);
    assert_int_equal(nana_kv_get_by_path(t, K("s"), K("$.l[#-1]"), &v), 0);
    expect_val(v, "20");
    assert_int_equal(nana_kv_get_by_path(t, K("s"), K("$.\"name\""), &v), 0);
    expect_val(v, "\"ナナ\"");
    assert_int_equal(nana_kv_get_by_path(t, K("s"), K("$"), &v), 0);
    expect_val(v, "{\"name\":\"ナナ\",\"l\":[10,20]}");
}

static void test_tables(void **state)
{
    fixture *f = *state;
    nana_table *a, *b, *a2;
    assert_int_equal(nana_store_table(f->s, "users", NULL, &a), 0);
    assert_int_equal(nana_store_table(f->s, "Users", NULL, &a2), 0);
    assert_ptr_equal(a, a2); /* SQLite names are case-insensitive */
    assert_int_equal(nana_store_table(f->s, "_other2", NULL, &b), 0);
    assert_string_equal(nana_table_name(b), "_other2");
    assert_int_equal(nana_kv_set(a, K("k"), K("\"users\"")), 0);
    assert_int_equal(nana_kv_set(b, K("k"), K("\"other\"")), 0);
    assert_int_equal(nana_kv_set(f->t, K("k"), K("\"data\"")), 0);
    expect_get(a, "k", "\"users\"");
    expect_get(b, "k", "\"other\"");
    expect_get(f->t, "k", "\"data\"");
    const char *bad[] = {"", "1abc", "a-b", "a b", "a;DROP", "data\"", "ta\xc3\xa9", "a\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        nana_table *x = NULL;
        assert_int_equal(nana_store_table(f->s, bad[i], NULL, &x), NANA_ERR_VALIDATION);
        assert_null(x);
    }
    char longname[200];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = 0;
    nana_table *x;
    assert_int_equal(nana_store_table(f->s, longname, NULL, &x), NANA_ERR_VALIDATION);
}

/* Cached reads never touch SQLite; misses do. */
static void test_cache_counts(void **state)
{
    fixture *f = *state;
    nana_table *t = f->t;
    assert_int_equal(nana_kv_set(t, K("c"), K("1")), 0);
    nana_store_stats before, after;
    nana_store_get_stats(f->s, &before);
    for (int i = 0; i < 1000; i++)
        expect_get(t, "c", "1");
    assert_int_equal(nana_kv_contains(t, K("c")), 1);
    nana_store_get_stats(f->s, &after);
    assert_int_equal(after.sqlite_reads, before.sqlite_reads);
    assert_int_equal(after.cache_hits - before.cache_hits, 1001);

    /* A value read from SQLite once is cached afterwards. */
    nana_store_close(f->s);
    assert_int_equal(nana_store_open(f->path, NULL, &f->s), 0);
    t = f->t = nana_store_default_table(f->s);
    nana_store_get_stats(f->s, &before);
    expect_get(t, "c", "1");
    expect_get(t, "c", "1");
    nana_store_get_stats(f->s, &after);
    assert_int_equal(after.sqlite_reads - before.sqlite_reads, 1);
}

static void test_lru_cache(void **state)
{
    fixture *f = *state;
    nana_cache_opts lru = {.kind = NANA_CACHE_LRU, .size = 2};
    nana_table *t;
    assert_int_equal(nana_store_table(f->s, "lru", &lru, &t), 0);
    assert_int_equal(nana_kv_set(t, K("a"), K("1")), 0);
    assert_int_equal(nana_kv_set(t, K("b"), K("2")), 0);
    expect_get(t, "a", "1");                             /* a is now most recent */
    assert_int_equal(nana_kv_set(t, K("c"), K("3")), 0); /* evicts b */
    nana_store_stats before, after;
    nana_store_get_stats(f->s, &before);
    expect_get(t, "a", "1");
    expect_get(t, "c", "3");
    nana_store_get_stats(f->s, &after);
    assert_int_equal(after.sqlite_reads, before.sqlite_reads);
    expect_get(t, "b", "2"); /* from SQLite */
    nana_store_get_stats(f->s, &after);
    assert_int_equal(after.sqlite_reads - before.sqlite_reads, 1);

    nana_cache_opts badlru = {.kind = NANA_CACHE_LRU, .size = 0};
    assert_int_equal(nana_store_table(f->s, "lru2", &badlru, &t), NANA_ERR_INVALID);
    nana_cache_opts badttl = {.kind = NANA_CACHE_TTL, .ttl_seconds = 0};
    assert_int_equal(nana_store_table(f->s, "ttl2", &badttl, &t), NANA_ERR_INVALID);
}

/* Reads |key| through the I/O thread's path: the code, and the bytes it
 * appended (NUL-terminated in |got|) or the value it returned. */
static int encoded_get(nana_table *t, const char *key, char *got, size_t cap, nana_val **v)
{
    nana_buf b;
    nana_buf_init(&b, 0);
    *v = NULL;
    int rc = nana_kv_get_cached_encoded(t, key, strlen(key), 1, &b, v);
    assert_true(b.len < cap);
    memcpy(got, b.data ? b.data : "", b.len);
    got[b.len] = 0;
    nana_buf_free(&b);
    return rc;
}

/* The encoded form kept with a cache entry (nana_kv_keep_encoded): only for
 * the value it was made from, dropped when the key is written, kept through
 * LRU moves and evictions of its neighbours, refused when too large. */
static void test_cache_encoded_form(void **state)
{
    fixture *f = *state;
    nana_cache_opts lru = {.kind = NANA_CACHE_LRU, .size = 3};
    nana_table *t;
    assert_int_equal(nana_store_table(f->s, "enc", &lru, &t), 0);
    char got[2048];
    nana_val *v;
    assert_int_equal(encoded_get(t, "a", got, sizeof(got), &v), NANA_CACHED_MISS);
    assert_int_equal(nana_kv_set(t, K("a"), K("1")), 0);
    assert_int_equal(nana_kv_set(t, K("b"), K("2")), 0);
    assert_int_equal(nana_kv_set(t, K("c"), K("3")), 0);

    /* No form yet: the value comes back, and a stale form is not kept. */
    assert_int_equal(encoded_get(t, "a", got, sizeof(got), &v), NANA_CACHED_VALUE);
    assert_string_equal(v->data, "1");
    nana_val *old = v;
    assert_int_equal(nana_kv_set(t, K("a"), K("10")), 0);
    assert_true(nana_kv_keep_encoded(t, K("a"), old, 1, "OLD", 3)); /* a holds another value now */
    nana_val_unref(old);
    assert_int_equal(encoded_get(t, "a", got, sizeof(got), &v), NANA_CACHED_VALUE);
    assert_string_equal(v->data, "10");
    assert_true(nana_kv_keep_encoded(t, K("a"), v, 1, "A10", 3));
    nana_val_unref(v);
    assert_int_equal(encoded_get(t, "a", got, sizeof(got), &v), NANA_CACHED_ENCODED);
    assert_string_equal(got, "A10");
    assert_null(v);

    /* Forms for every entry; the entries moved in memory, the LRU order
     * must still be right: reading b makes c the oldest, d evicts it. */
    for (const char *k = "bc"; *k; k++) {
        char key[2] = {*k, 0}, form[3] = {'F', *k, 0};
        assert_int_equal(encoded_get(t, key, got, sizeof(got), &v), NANA_CACHED_VALUE);
        assert_true(nana_kv_keep_encoded(t, key, 1, v, 1, form, 2));
        nana_val_unref(v);
    }
    assert_int_equal(encoded_get(t, "b", got, sizeof(got), &v), NANA_CACHED_ENCODED);
    assert_string_equal(got, "Fb");
    assert_int_equal(encoded_get(t, "a", got, sizeof(got), &v), NANA_CACHED_ENCODED);
    assert_int_equal(nana_kv_set(t, K("d"), K("4")), 0); /* evicts c, the oldest */
    assert_int_equal(encoded_get(t, "c", got, sizeof(got), &v), NANA_CACHED_MISS);
    assert_int_equal(encoded_get(t, "b", got, sizeof(got), &v), NANA_CACHED_ENCODED);
    assert_string_equal(got, "Fb");
    assert_int_equal(encoded_get(t, "a", got, sizeof(got), &v), NANA_CACHED_ENCODED);
    assert_string_equal(got, "A10");
    expect_get(t, "c", "3"); /* still in SQLite */
    /* Walk the list both ways: evictions from the tail (prev links), and a
     * clear from the head (next links) that frees every entry once. */
    for (int i = 0; i < 5; i++) {
        char key[8];
        snprintf(key, sizeof(key), "e%d", i);
        assert_int_equal(nana_kv_set(t, K(key), K("0")), 0);
    }
    assert_int_equal(encoded_get(t, "a", got, sizeof(got), &v), NANA_CACHED_MISS);
    expect_get(t, "a", "10");
    expect_get(t, "b", "2");
    assert_int_equal(encoded_get(t, "b", got, sizeof(got), &v), NANA_CACHED_VALUE);
    assert_true(nana_kv_keep_encoded(t, K("b"), v, 1, "Fb", 2));
    nana_val_unref(v);
    /* An entry given its form while not the most recent: its newer
     * neighbour must point at the moved entry, as the clear walks it. */
    nana_val *vb;
    assert_int_equal(encoded_get(t, "b", got, sizeof(got), &vb), NANA_CACHED_ENCODED);
    assert_int_equal(nana_kv_set(t, K("x"), K("5")), 0);
    assert_int_equal(encoded_get(t, "x", got, sizeof(got), &vb), NANA_CACHED_VALUE);
    assert_int_equal(nana_kv_set(t, K("y"), K("6")), 0); /* y, x, b */
    assert_true(nana_kv_keep_encoded(t, K("x"), vb, 1, "Fx", 2));
    nana_val_unref(vb);
    assert_int_equal(encoded_get(t, "x", got, sizeof(got), &vb), NANA_CACHED_ENCODED);
    assert_string_equal(got, "Fx");
    assert_int_equal(nana_kv_set(t, K("y"), K("7")), 0); /* y, x, b again */
    assert_int_equal(encoded_get(t, "y", got, sizeof(got), &vb), NANA_CACHED_VALUE);
    assert_int_equal(nana_kv_set(t, K("z"), K("8")), 0); /* z, y, x */
    assert_true(nana_kv_keep_encoded(t, K("y"), vb, 1, "Fy", 2));
    nana_val_unref(vb);
    assert_int_equal(nana_kv_clear(t), 0);
    assert_int_equal(encoded_get(t, "b", got, sizeof(got), &v), NANA_CACHED_MISS);
    assert_int_equal(nana_kv_set(t, K("a"), K("10")), 0);
    assert_int_equal(nana_kv_set(t, K("b"), K("2")), 0);

    /* A write drops the form; a delete drops the entry. */
    assert_int_equal(nana_kv_set(t, K("b"), K("20")), 0);
    assert_int_equal(encoded_get(t, "b", got, sizeof(got), &v), NANA_CACHED_VALUE);
    assert_string_equal(v->data, "20");
    /* Too large to keep with the entry: the caller keeps it with the value. */
    static char big[NANA_KV_ENCODED_MAX + 1];
    memset(big, 'x', sizeof(big));
    assert_false(nana_kv_keep_encoded(t, K("b"), v, 1, big, sizeof(big)));
    assert_true(nana_kv_keep_encoded(t, K("b"), v, 1, big, sizeof(big) - 1));
    nana_val_unref(v);
    assert_int_equal(encoded_get(t, "b", got, sizeof(got), &v), NANA_CACHED_ENCODED);
    assert_int_equal(strlen(got), sizeof(big) - 1);
    assert_int_equal(nana_kv_delete(t, K("a")), 0);
    assert_int_equal(encoded_get(t, "a", got, sizeof(got), &v), NANA_CACHED_MISS);

    /* Bad keys are errors; a table without a cache always misses. */
    assert_true(nana_kv_get_cached_encoded(t, "\xff", 1, 1, NULL, &v) < 0); /* not UTF-8 */
    /* A form is returned only to whoever asks for that form. */
    assert_int_equal(nana_kv_set(t, K("f"), K("9")), 0);
    assert_int_equal(encoded_get(t, "f", got, sizeof(got), &v), NANA_CACHED_VALUE);
    assert_true(nana_kv_keep_encoded(t, K("f"), v, 1, "F9", 2));
    nana_val_unref(v);
    nana_buf other;
    nana_buf_init(&other, 0);
    assert_int_equal(nana_kv_get_cached_encoded(t, K("f"), 2, &other, &v), NANA_CACHED_VALUE);
    assert_int_equal(other.len, 0);
    nana_val_unref(v);
    nana_buf_free(&other);
    assert_int_equal(encoded_get(t, "f", got, sizeof(got), &v), NANA_CACHED_ENCODED);
    assert_string_equal(got, "F9");
    nana_cache_opts none = {.kind = NANA_CACHE_NONE};
    nana_table *tn;
    assert_int_equal(nana_store_table(f->s, "enc_none", &none, &tn), 0);
    assert_int_equal(nana_kv_set(tn, K("a"), K("1")), 0);
    assert_int_equal(encoded_get(tn, "a", got, sizeof(got), &v), NANA_CACHED_MISS);
}

static uint64_t fake_now;
static uint64_t fake_clock(void *arg)
{
    (void)arg;
    return fake_now;
}

static void test_ttl_cache(void **state)
{
    fixture *f = *state;
    nana_store_close(f->s);
    nana_store_opts o;
    nana_store_opts_init(&o);
    o.now_ms = fake_clock;
    fake_now = 1000000;
    assert_int_equal(nana_store_open(f->path, &o, &f->s), 0);
    f->t = nana_store_default_table(f->s);

    nana_cache_opts ttl = {.kind = NANA_CACHE_TTL, .ttl_seconds = 10};
    nana_cache_opts ttl_del = {.kind = NANA_CACHE_TTL, .ttl_seconds = 10, .ttl_delete_rows = 1};
    nana_table *t, *td;
    assert_int_equal(nana_store_table(f->s, "ttl", &ttl, &t), 0);
    assert_int_equal(nana_store_table(f->s, "ttldel", &ttl_del, &td), 0);
    assert_int_equal(nana_kv_set(t, K("a"), K("1")), 0);
    assert_int_equal(nana_kv_set(td, K("a"), K("1")), 0);
    assert_int_equal(nana_kv_set(td, K("b"), K("2")), 0);

    nana_store_stats before, after;
    nana_store_get_stats(f->s, &before);
    fake_now += 9000;
    expect_get(t, "a", "1");
    nana_store_get_stats(f->s, &after);
    assert_int_equal(after.sqlite_reads, before.sqlite_reads);
    fake_now += 1000;
    /* Expired from the cache: read again from SQLite, still there. */
    expect_get(t, "a", "1");
    nana_store_get_stats(f->s, &after);
    assert_int_equal(after.sqlite_reads - before.sqlite_reads, 1);

    /* With ttl_delete_rows the key itself expires. */
    nana_val *v;
    assert_int_equal(nana_kv_get(td, K("a"), &v), NANA_ERR_NOTFOUND);
    assert_int_equal(nana_kv_contains(td, K("b")), 0);
    assert_int_equal(nana_store_expire_now(f->s), 0);
    int64_t n = -1;
    assert_int_equal(nana_kv_len(td, &n), 0);
    assert_int_equal(n, 0);
    /* Writer-side operations see an expired key as absent too. */
    assert_int_equal(nana_kv_set(td, K("sd"), K("\"old\"")), 0);
    assert_int_equal(nana_kv_set(td, K("n"), K("100")), 0);
    assert_int_equal(nana_kv_set(td, K("gone"), K("1")), 0);
    fake_now += 11000;
    assert_int_equal(nana_kv_setdefault(td, K("sd"), K("\"new\""), &v), 0);
    assert_string_equal(v->data, "\"new\"");
    nana_val_unref(v);
    assert_int_equal(nana_kv_increment(td, K("n"), NULL, 0, NULL, 0, NULL, 0, &v), 0);
    assert_string_equal(v->data, "1");
    nana_val_unref(v);
    assert_int_equal(nana_kv_delete(td, K("gone")), NANA_ERR_NOTFOUND);
    assert_int_equal(nana_store_expire_now(f->s), 0);
    expect_get(td, "sd", "\"new\"");
    expect_get(td, "n", "1");
    /* A clock read before a write stored the entry does not expire it. */
    uint64_t before_write = fake_now;
    fake_now += 5;
    assert_int_equal(nana_kv_set(td, K("young"), K("1")), 0);
    fake_now = before_write;
    expect_get(td, "young", "1");
    fake_now += 5;
    /* Lifetimes that are not finite are refused. */
    nana_cache_opts inf = {.kind = NANA_CACHE_TTL, .ttl_seconds = 1.0 / 0.0};
    nana_table *ti;
    assert_int_equal(nana_store_table(f->s, "ttlinf", &inf, &ti), NANA_ERR_INVALID);
    nana_cache_opts huge = {.kind = NANA_CACHE_TTL, .ttl_seconds = 1e300};
    assert_int_equal(nana_store_table(f->s, "ttlhuge", &huge, &ti), 0);
    assert_int_equal(nana_kv_set(ti, K("k"), K("1")), 0);
    expect_get(ti, "k", "1");

    /* A key written again after expiry lives again. */
    assert_int_equal(nana_kv_set(td, K("a"), K("3")), 0);
    expect_get(td, "a", "3");
    assert_int_equal(nana_store_expire_now(f->s), 0);
    expect_get(td, "a", "3");
}

static void test_transactions(void **state)
{
    fixture *f = *state;
    nana_store *s = f->s;
    nana_table *t = f->t;
    assert_int_equal(nana_store_in_transaction(s), 0);
    assert_int_equal(nana_store_commit(s), NANA_ERR_TXN);
    assert_int_equal(nana_store_rollback(s), NANA_ERR_TXN);

    assert_int_equal(nana_kv_set(t, K("base"), K("1")), 0);
    assert_int_equal(nana_store_begin(s), 0);
    assert_int_equal(nana_store_in_transaction(s), 1);
    assert_int_equal(nana_store_begin(s), NANA_ERR_TXN);
    assert_non_null(strstr(nana_errmsg(), "already in progress"));
    assert_int_equal(nana_kv_set(t, K("base"), K("2")), 0);
    assert_int_equal(nana_kv_set(t, K("new"), K("3")), 0);
    nana_kv_pair p[] = {{K("b1"), K("1")}, {K("b2"), K("2")}};
    assert_int_equal(nana_kv_batch_update(t, p, 2), 0);
    expect_get(t, "base", "2");
    int64_t n;
    assert_int_equal(nana_kv_len(t, &n), 0); /* sees the transaction's rows */
    assert_int_equal(n, 4);
    assert_int_equal(nana_store_close(s), NANA_ERR_TXN);
    assert_int_equal(nana_store_rollback(s), 0);
    assert_int_equal(nana_store_in_transaction(s), 0);
    expect_get(t, "base", "1");
    nana_val *v;
    assert_int_equal(nana_kv_get(t, K("new"), &v), NANA_ERR_NOTFOUND);
    assert_int_equal(nana_kv_len(t, &n), 0);
    assert_int_equal(n, 1);

    assert_int_equal(nana_store_begin(s), 0);
    assert_int_equal(nana_kv_set(t, K("kept"), K("1")), 0);
    assert_int_equal(nana_kv_delete(t, K("nope")), NANA_ERR_NOTFOUND); /* fails alone */
    assert_int_equal(nana_store_commit(s), 0);
    expect_get(t, "kept", "1");

    /* Committed data survives a reopen. */
    nana_store_close(s);
    assert_int_equal(nana_store_open(f->path, NULL, &f->s), 0);
    f->t = nana_store_default_table(f->s);
    expect_get(f->t, "kept", "1");
    expect_get(f->t, "base", "1");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_set_get_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_len_keys_values_items, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listing_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fresh_is_cached_clear_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_depth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_default_pop_popitem_setdefault, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_get_many, setup, teardown),
        cmocka_unit_test_setup_teardown(test_increment_patch_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tables, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_counts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lru_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ttl_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_encoded_form, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transactions, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
