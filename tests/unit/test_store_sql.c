/*
 * test_store_sql.c - schema and query helpers, and the utilities (vacuum,
 * size, pragma, backup, restore), on a real file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "store_fixture.h"
#include "util/nana_buf.h"

#include <pthread.h>

static int setup(void **state)
{
    return fixture_open(state, "sql");
}

static int teardown(void **state)
{
    return fixture_close(state);
}

/* Creates the users table with three rows. */
static void make_users(nana_store *s)
{
    assert_int_equal(nana_sql_create_table(s, "users",
                                           "{\"id\":\"INTEGER PRIMARY KEY\",\"name\":\"TEXT NOT "
                                           "NULL\",\"age\":\"INTEGER\",\"score\":\"REAL\"}",
                                           1, NULL),
                     0);
    int64_t rowid = 0;
    assert_int_equal(
        nana_sql_insert(s, "users", "{\"name\":\"alice\",\"age\":30,\"score\":1.5}", &rowid), 0);
    assert_int_equal(rowid, 1);
    assert_int_equal(
        nana_sql_insert(s, "users", "{\"name\":\"bob\",\"age\":25,\"score\":null}", &rowid), 0);
    assert_int_equal(rowid, 2);
    assert_int_equal(nana_sql_last_insert_rowid(s), 2);
    const char *rows = "[{\"name\":\"carol\",\"age\":41},{\"name\":\"dave\",\"age\":19,"
                       "\"extra\":1},{\"age\":5,\"name\":\"eve\"}]";
    int64_t n = 0;
    assert_int_equal(nana_sql_import(s, "users", rows, &n), 0);
    assert_int_equal(n, 3);
}

static void test_schema(void **state)
{
    fixture *f = *state;
    nana_store *s = f->s;
    make_users(s);
    assert_int_equal(nana_sql_table_exists(s, "users"), 1);
    assert_int_equal(nana_sql_table_exists(s, "nope"), 0);
    nana_val *v;
    assert_int_equal(nana_sql_list_tables(s, &v), 0);
    expect_val(v, "[\"data\",\"users\"]");
    assert_int_equal(nana_sql_table_schema(s, "users", &v), 0);
    expect_val(v, "[{\"cid\":0,\"name\":\"id\",\"type\":\"INTEGER\",\"notnull\":false,"
                  "\"default_value\":null,\"pk\":true},{\"cid\":1,\"name\":\"name\",\"type\":"
                  "\"TEXT\",\"notnull\":true,\"default_value\":null,\"pk\":false},{\"cid\":2,"
                  "\"name\":\"age\",\"type\":\"INTEGER\",\"notnull\":false,\"default_value\":null,"
                  "\"pk\":false},{\"cid\":3,\"name\":\"score\",\"type\":\"REAL\",\"notnull\":"
                  "false,\"default_value\":null,\"pk\":false}]");
    assert_int_equal(nana_sql_table_schema(s, "nope", &v), 0);
    expect_val(v, "[]");

    assert_int_equal(nana_sql_create_index(s, "idx_age", "users", "[\"age\"]", 0, 1), 0);
    assert_int_equal(nana_sql_create_index(s, "idx_name", "users", "[\"name\"]", 1, 1), 0);
    assert_int_equal(nana_sql_list_indexes(s, "users", &v), 0);
    expect_val(v,
               "[{\"name\":\"idx_age\",\"table\":\"users\",\"sql\":\"CREATE INDEX \\\"idx_age\\\""
               " ON \\\"users\\\" (\\\"age\\\")\"},{\"name\":\"idx_name\",\"table\":\"users\","
               "\"sql\":\"CREATE UNIQUE INDEX \\\"idx_name\\\" ON \\\"users\\\" "
               "(\\\"name\\\")\"}]");
    assert_int_equal(nana_sql_list_indexes(s, "data", &v), 0);
    expect_val(v, "[]"); /* the automatic primary key index is not listed */
    int64_t rowid;
    assert_int_equal(nana_sql_insert(s, "users", "{\"name\":\"alice\"}", &rowid), NANA_ERR_DB);
    assert_int_equal(nana_sql_drop_index(s, "idx_name", 0), 0);
    assert_int_equal(nana_sql_drop_index(s, "idx_name", 0), NANA_ERR_DB);
    assert_int_equal(nana_sql_drop_index(s, "idx_name", 1), 0);

    assert_int_equal(nana_sql_add_column(s, "users", "email", "VARCHAR(255)", "\"n/a\""), 0);
    assert_int_equal(nana_sql_add_column(s, "users", "active", "INTEGER", "true"), 0);
    assert_int_equal(nana_sql_add_column(s, "users", "bad", "TEXT; DROP", NULL),
                     NANA_ERR_VALIDATION);
    nana_query q;
    nana_query_init(&q);
    q.table = "users";
    q.columns = "[\"email\",\"active\"]";
    q.limit = 1;
    assert_int_equal(nana_sql_query(s, &q, &v), 0);
    expect_val(v, "[{\"email\":\"n/a\",\"active\":1}]");

    /* Bad definitions. */
    assert_int_equal(nana_sql_create_table(s, "t2", "{\"a\":\"TEXT; DROP TABLE users\"}", 1, NULL),
                     NANA_ERR_VALIDATION);
    assert_int_equal(nana_sql_create_table(s, "t 2", "{\"a\":\"TEXT\"}", 1, NULL),
                     NANA_ERR_VALIDATION);
    assert_int_equal(nana_sql_create_table(s, "t2", "{\"a-b\":\"TEXT\"}", 1, NULL),
                     NANA_ERR_VALIDATION);
    assert_int_equal(nana_sql_create_table(s, "t2", "[]", 1, NULL), NANA_ERR_TYPE);
    assert_int_equal(nana_sql_create_table(s, "t2", "{}", 1, NULL), NANA_ERR_INVALID);
    assert_int_equal(nana_sql_create_table(s, "t2", "{\"a\":\"TEXT\",\"b\":\"TEXT\"}", 0, "a"), 0);
    assert_int_equal(nana_sql_create_table(s, "t2", "{\"a\":\"TEXT\"}", 0, NULL), NANA_ERR_DB);
    assert_int_equal(nana_sql_drop_table(s, "t2", 0), 0);
    assert_int_equal(nana_sql_drop_table(s, "t2", 0), NANA_ERR_DB);
    assert_int_equal(nana_sql_drop_table(s, "t2", 1), 0);
}

static void test_query(void **state)
{
    fixture *f = *state;
    nana_store *s = f->s;
    make_users(s);
    nana_query q;
    nana_query_init(&q);
    q.table = "users";
    q.columns = "[\"name\",\"age\"]";
    q.where = "age > ?";
    q.params = "[20]";
    q.order_by = "age DESC";
    nana_val *v;
    assert_int_equal(nana_sql_query(s, &q, &v), 0);
    expect_val(v, "[{\"name\":\"carol\",\"age\":41},{\"name\":\"alice\",\"age\":30},"
                  "{\"name\":\"bob\",\"age\":25}]");
    q.limit = 1;
    q.offset = 1;
    assert_int_equal(nana_sql_query(s, &q, &v), 0);
    expect_val(v, "[{\"name\":\"alice\",\"age\":30}]");

    nana_query_init(&q);
    q.table = "users";
    q.columns = "[\"COUNT(*) AS n\",\"age > 20 AS adult\"]";
    q.group_by = "age > 20";
    q.order_by = "adult";
    assert_int_equal(nana_sql_query(s, &q, &v), 0);
    expect_val(v, "[{\"n\":2,\"adult\":0},{\"n\":3,\"adult\":1}]");

    nana_query_init(&q);
    q.table = "users";
    q.where = "id = 1";
    assert_int_equal(nana_sql_query(s, &q, &v), 0);
    expect_val(v, "[{\"id\":1,\"name\":\"alice\",\"age\":30,\"score\":1.5}]");

    int64_t n;
    assert_int_equal(nana_sql_count(s, "users", NULL, NULL, NULL, &n), 0);
    assert_int_equal(n, 5);
    assert_int_equal(nana_sql_count(s, "users", "age < ?", "[26]", NULL, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(nana_sql_exists(s, "users", "name = ?", "[\"bob\"]", NULL), 1);
    assert_int_equal(nana_sql_exists(s, "users", "name = ?", "[\"zed\"]", NULL), 0);

    /* Default table: value is returned as its JSON text. */
    nana_table *t = nana_store_default_table(s);
    assert_int_equal(nana_kv_set(t, K("k1"), K("{\"age\":33}")), 0);
    assert_int_equal(nana_kv_set(t, K("k2"), K("{\"age\":12}")), 0);
    nana_query_init(&q);
    q.where = "json_extract(value, '$.age') > ?";
    q.params = "[18]";
    assert_int_equal(nana_sql_query(s, &q, &v), 0);
    expect_val(v, "[{\"key\":\"k1\",\"value\":\"{\\\"age\\\":33}\"}]");

    /* Operators that SQLite implements as functions. */
    nana_query_init(&q);
    q.where = "key LIKE ? AND value ->> '$.age' > 30 AND key GLOB 'k*'";
    q.params = "[\"k%\"]";
    q.columns = "[\"key\"]";
    assert_int_equal(nana_sql_query(s, &q, &v), 0);
    expect_val(v, "[{\"key\":\"k1\"}]");

    /* Parameter count and type checks. */
    nana_query_init(&q);
    q.table = "users";
    q.where = "age > ?";
    q.params = "[1, 2]";
    assert_int_equal(nana_sql_query(s, &q, &v), NANA_ERR_INVALID);
    q.params = "{\"a\":1}";
    assert_int_equal(nana_sql_query(s, &q, &v), NANA_ERR_TYPE);
    q.params = "[1";
    assert_int_equal(nana_sql_query(s, &q, &v), NANA_ERR_JSON);
    q.params = "[[1,2]]"; /* arrays bind as JSON text */
    assert_int_equal(nana_sql_query(s, &q, &v), 0);
    nana_val_unref(v);
    q.limit = -5;
    assert_int_equal(nana_sql_query(s, &q, &v), NANA_ERR_INVALID);
}

static void test_query_injection(void **state)
{
    fixture *f = *state;
    nana_store *s = f->s;
    make_users(s);
    nana_table *t = nana_store_default_table(s);
    assert_int_equal(nana_kv_set(t, K("secret"), K("\"s3cr3t\"")), 0);
    nana_query q;
    nana_val *v;
    const char *wheres[] = {
        "1=1; DROP TABLE users",
        "1=1 --",
        "id = 1 /* x */",
        "id IN (SELECT rowid FROM data)",
        "id = 1 UNION SELECT key, value, 1, 1 FROM data",
        "load_extension('/tmp/x')",
        "name = (SELECT value FROM data)",
    };
    for (size_t i = 0; i < sizeof(wheres) / sizeof(wheres[0]); i++) {
        nana_query_init(&q);
        q.table = "users";
        q.where = wheres[i];
        assert_int_equal(nana_sql_query(s, &q, &v), NANA_ERR_VALIDATION);
        int64_t n;
        assert_int_equal(nana_sql_count(s, "users", wheres[i], NULL, NULL, &n),
                         NANA_ERR_VALIDATION);
        assert_int_equal(nana_sql_delete(s, "users", wheres[i], NULL, &n), NANA_ERR_VALIDATION);
        assert_int_equal(nana_sql_update(s, "users", "{\"age\":1}", wheres[i], NULL, &n),
                         NANA_ERR_VALIDATION);
    }
    nana_query_init(&q);
    q.table = "users";
    q.order_by = "random()";
    assert_int_equal(nana_sql_query(s, &q, &v), NANA_ERR_VALIDATION);
    q.order_by = "name; DROP TABLE users";
    assert_int_equal(nana_sql_query(s, &q, &v), NANA_ERR_VALIDATION);
    nana_query_init(&q);
    q.table = "users";
    q.columns = "[\"(SELECT value FROM data) AS x\"]";
    assert_int_equal(nana_sql_query(s, &q, &v), NANA_ERR_VALIDATION);
    q.columns = "[\"name FROM data --\"]";
    assert_int_equal(nana_sql_query(s, &q, &v), NANA_ERR_VALIDATION);
    nana_query_init(&q);
    q.table = "users; DROP TABLE data";
    assert_int_equal(nana_sql_query(s, &q, &v), NANA_ERR_VALIDATION);
    /* The extra function list lets a caller allow a function ... */
    const char *extra[] = {"RANDOM"};
    nana_sql_policy pol = {.allow = extra, .n_allow = 1};
    nana_query_init(&q);
    q.table = "users";
    q.order_by = "random()";
    q.policy = &pol;
    assert_int_equal(nana_sql_query(s, &q, &v), 0);
    nana_val_unref(v);
    /* ... and the injected value stays a value. */
    nana_query_init(&q);
    q.table = "users";
    q.where = "name = ?";
    q.params = "[\"x' OR '1'='1\"]";
    assert_int_equal(nana_sql_query(s, &q, &v), 0);
    expect_val(v, "[]");
    /* Nothing was harmed. */
    int64_t n;
    assert_int_equal(nana_sql_count(s, "users", NULL, NULL, NULL, &n), 0);
    assert_int_equal(n, 5);
    assert_int_equal(nana_kv_get(t, K("secret"), &v), 0);
    expect_val(v, "\"s3cr3t\"");
}

static void test_update_delete_upsert(void **state)
{
    fixture *f = *state;
    nana_store *s = f->s;
    make_users(s);
    int64_t n;
    assert_int_equal(nana_sql_update(s, "users", "{\"age\":31}", "name = ?", "[\"alice\"]", &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(nana_sql_update(s, "users", "{\"age\":31}", NULL, NULL, &n),
                     NANA_ERR_VALIDATION); /* no where: refused */
    assert_int_equal(nana_sql_delete(s, "users", "", NULL, &n), NANA_ERR_VALIDATION);
    assert_int_equal(nana_sql_delete(s, "users", "age < ?", "[20]", &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(nana_sql_count(s, "users", NULL, NULL, NULL, &n), 0);
    assert_int_equal(n, 3);

    assert_int_equal(nana_sql_create_table(s, "kv2",
                                           "{\"k\":\"TEXT PRIMARY KEY\",\"v\":\"INTEGER\","
                                           "\"w\":\"TEXT\"}",
                                           1, NULL),
                     0);
    int64_t rowid;
    assert_int_equal(nana_sql_upsert(s, "kv2", "{\"k\":\"a\",\"v\":1,\"w\":\"x\"}", NULL, &rowid),
                     0);
    assert_int_equal(nana_sql_upsert(s, "kv2", "{\"k\":\"a\",\"v\":2}", "[\"k\"]", &rowid), 0);
    nana_query q;
    nana_query_init(&q);
    q.table = "kv2";
    nana_val *v;
    assert_int_equal(nana_sql_query(s, &q, &v), 0);
    expect_val(v, "[{\"k\":\"a\",\"v\":2,\"w\":\"x\"}]");
    assert_int_equal(nana_sql_upsert(s, "kv2", "{\"k\":\"a\"}", "[\"k\"]", &rowid), 0);
    assert_int_equal(nana_sql_upsert(s, "kv2", "{\"k\":\"a\",\"v\":3}", NULL, &rowid), 0);
    assert_int_equal(nana_sql_query(s, &q, &v), 0);
    expect_val(v, "[{\"k\":\"a\",\"v\":3,\"w\":null}]");
    assert_int_equal(nana_sql_insert(s, "kv2", "{}", &rowid), NANA_ERR_INVALID);
    assert_int_equal(nana_sql_insert(s, "kv2", "{\"bad col\":1}", &rowid), NANA_ERR_VALIDATION);
    assert_int_equal(nana_sql_insert(s, "kv2", "{\"nocol\":1}", &rowid), NANA_ERR_DB);
    assert_int_equal(nana_sql_insert(s, "kv2", "[1]", &rowid), NANA_ERR_TYPE);

    /* export */
    assert_int_equal(nana_sql_export(s, "kv2", &v), 0);
    expect_val(v, "[{\"k\":\"a\",\"v\":3,\"w\":null}]");

    /* import is all or nothing */
    assert_int_equal(nana_sql_import(s, "kv2", "[{\"k\":\"b\"},{\"k\":\"a\"},{\"k\":\"a\"}]", &n),
                     NANA_ERR_DB);
    assert_int_equal(nana_sql_count(s, "kv2", NULL, NULL, NULL, &n), 0);
    assert_int_equal(n, 1);
}

static void *other_thread_rowid(void *arg)
{
    return (void *)(intptr_t)nana_sql_last_insert_rowid(arg);
}

/* upsert reports its own row; the last rowid is per thread. */
static void test_rowids(void **state)
{
    fixture *f = *state;
    nana_store *s = f->s;
    assert_int_equal(
        nana_sql_create_table(s, "r", "{\"id\":\"INTEGER PRIMARY KEY\",\"v\":\"TEXT\"}", 1, NULL),
        0);
    int64_t rowid = -1;
    assert_int_equal(nana_sql_insert(s, "r", "{\"id\":7,\"v\":\"a\"}", &rowid), 0);
    assert_int_equal(rowid, 7);
    nana_table *t = nana_store_default_table(s);
    for (int i = 0; i < 5; i++) {
        char k[8];
        snprintf(k, sizeof(k), "k%d", i);
        assert_int_equal(nana_kv_set(t, K(k), K("1")), 0);
    }
    assert_int_equal(nana_sql_upsert(s, "r", "{\"id\":7,\"v\":\"b\"}", "[\"id\"]", &rowid), 0);
    assert_int_equal(rowid, 7); /* the updated row, not a KV row's rowid */
    assert_int_equal(nana_sql_upsert(s, "r", "{\"id\":7}", "[\"id\"]", &rowid), 0);
    assert_int_equal(rowid, 0); /* DO NOTHING: no row */
    assert_int_equal(nana_sql_last_insert_rowid(s), 7);
    pthread_t th;
    void *other;
    assert_int_equal(pthread_create(&th, NULL, other_thread_rowid, s), 0);
    pthread_join(th, &other);
    assert_int_equal((intptr_t)other, 0);
    /* A WITHOUT ROWID table works; it has no rowid to report. */
    assert_int_equal(
        nana_sql_create_table(s, "wr", "{\"k\":\"TEXT PRIMARY KEY\",\"v\":\"INTEGER\"}", 1, NULL),
        0);
    int64_t n;
    assert_int_equal(nana_sql_update(s, "r", "{\"v\":\"c\"}", "id = ?", "[7]", &n), 0);
    assert_int_equal(n, 1);
}

/* The value column of a NanaSQLite table only takes JSON text. */
static void test_kv_value_column(void **state)
{
    fixture *f = *state;
    nana_store *s = f->s;
    int64_t n, rowid;
    assert_int_equal(nana_sql_insert(s, "data", "{\"key\":\"k\",\"value\":\"hello\"}", &rowid),
                     NANA_ERR_JSON);
    assert_int_equal(
        nana_sql_insert(s, "data", "{\"key\":\"k\",\"value\":\"\\\"hello\\\"\"}", &rowid), 0);
    assert_int_equal(nana_sql_update(s, "data", "{\"value\":\"{bad\"}", "key = ?", "[\"k\"]", &n),
                     NANA_ERR_JSON);
    assert_int_equal(nana_sql_update(s, "data", "{\"value\":[1,2]}", "key = ?", "[\"k\"]", &n), 0);
    assert_int_equal(nana_sql_import(s, "data", "[{\"key\":\"i\",\"value\":\"nope\"}]", &n),
                     NANA_ERR_JSON);
    nana_val *v;
    assert_int_equal(nana_kv_get(nana_store_default_table(s), K("k"), &v), 0);
    expect_val(v, "[1,2]");
}

/* A statement that runs too long is stopped with TIMEOUT. */
static void test_query_timeout(void **state)
{
    fixture *f = *state;
    nana_store *s = f->s;
    assert_int_equal(nana_sql_create_table(s, "big", "{\"a\":\"INTEGER\",\"b\":\"TEXT\"}", 1, NULL),
                     0);
    nana_buf rows;
    nana_buf_init(&rows, 0);
    nana_buf_putc(&rows, '[');
    for (int i = 0; i < 100000; i++)
        nana_buf_printf(&rows, "%s{\"a\":%d,\"b\":\"row %d\"}", i ? "," : "", i, i * 7919 % 100003);
    nana_buf_putc(&rows, ']');
    int64_t n;
    assert_int_equal(nana_sql_import(s, "big", rows.data, &n), 0);
    nana_buf_free(&rows);
    nana_store_close(f->s);
    nana_store_opts o;
    nana_store_opts_init(&o);
    o.query_timeout_ms = 1;
    assert_int_equal(nana_store_open(f->path, &o, &f->s), 0);
    s = f->s;
    nana_query q;
    nana_query_init(&q);
    q.table = "big";
    q.columns = "[\"b\",\"COUNT(*) AS n\",\"SUM(a) AS s\"]";
    q.group_by = "b";
    q.order_by = "LOWER(b) DESC";
    nana_val *v = NULL;
    int rc = nana_sql_query(s, &q, &v);
    assert_int_equal(rc, NANA_ERR_TIMEOUT);
    assert_non_null(strstr(nana_errmsg(), "longer than 1 ms"));
    assert_int_equal(nana_sql_count(s, "big", "LOWER(b) LIKE ?", "[\"%9%\"]", NULL, &n),
                     NANA_ERR_TIMEOUT);
    /* The store goes on serving. */
    assert_int_equal(nana_kv_set(nana_store_default_table(s), K("after"), K("1")), 0);
}

/* backup/restore paths: no way onto the database's own files, no links,
 * and with backup_dir only inside it. */
static void test_backup_paths(void **state)
{
    fixture *f = *state;
    char p[1024], dir[600], link[1024];
    const char *slash = strrchr(f->path, '/');
    snprintf(dir, sizeof(dir), "%.*s", (int)(slash - f->path), f->path);
    snprintf(p, sizeof(p), "%s/../%s/%s-wal", dir, strrchr(dir, '/') + 1, slash + 1);
    assert_int_equal(nana_store_backup(f->s, p), NANA_ERR_VALIDATION);
    snprintf(p, sizeof(p), "%s/./%s", dir, slash + 1);
    assert_int_equal(nana_store_backup(f->s, p), NANA_ERR_VALIDATION);
    snprintf(link, sizeof(link), "%s.link", f->path);
    unlink(link);
    assert_int_equal(symlink("/tmp/nana-somewhere-else.db", link), 0);
    assert_int_equal(nana_store_backup(f->s, link), NANA_ERR_VALIDATION);
    unlink(link);
    assert_int_equal(nana_store_backup(f->s, "file:x.db"), NANA_ERR_VALIDATION);

    /* backup_dir confines both. */
    nana_store_close(f->s);
    nana_store_opts o;
    nana_store_opts_init(&o);
    char bdir[700];
    snprintf(bdir, sizeof(bdir), "%s.backups", f->path);
    mkdir(bdir, 0700);
    o.backup_dir = bdir;
    assert_int_equal(nana_store_open(f->path, &o, &f->s), 0);
    snprintf(p, sizeof(p), "%s/copy.db", bdir);
    assert_int_equal(nana_store_backup(f->s, p), 0);
    assert_int_equal(nana_store_restore(f->s, p), 0);
    snprintf(link, sizeof(link), "%s/../outside.db", bdir);
    assert_int_equal(nana_store_backup(f->s, link), NANA_ERR_PERM);
    assert_int_equal(nana_store_restore(f->s, link), NANA_ERR_PERM);
    unlink(p);
    rmdir(bdir);
    nana_store_close(f->s);
    o.backup_dir = "/nonexistent/dir";
    assert_int_equal(nana_store_open(f->path, &o, &f->s), NANA_ERR_INVALID);
    assert_int_equal(nana_store_open(f->path, NULL, &f->s), 0);
}

/* SQL written into a NanaSQLite table drops the cached values. */
static void test_sql_on_kv_table_keeps_cache_true(void **state)
{
    fixture *f = *state;
    nana_store *s = f->s;
    nana_table *t = nana_store_default_table(s);
    assert_int_equal(nana_kv_set(t, K("a"), K("1")), 0);
    nana_val *v;
    assert_int_equal(nana_kv_get(t, K("a"), &v), 0);
    expect_val(v, "1");
    int64_t n;
    assert_int_equal(nana_sql_update(s, "data", "{\"value\":\"2\"}", "key = ?", "[\"a\"]", &n), 0);
    assert_int_equal(nana_kv_get(t, K("a"), &v), 0);
    expect_val(v, "2");
    assert_int_equal(nana_sql_drop_table(s, "data", 0), 0);
    assert_int_equal(nana_kv_get(t, K("a"), &v), NANA_ERR_DB); /* no such table */
    nana_table *t2;
    assert_int_equal(nana_store_table(s, "data", NULL, &t2), 0); /* re-created */
    assert_int_equal(nana_kv_get(t2, K("a"), &v), NANA_ERR_NOTFOUND);
}

static void test_utilities(void **state)
{
    fixture *f = *state;
    nana_store *s = f->s;
    nana_table *t = nana_store_default_table(s);
    for (int i = 0; i < 200; i++) {
        char k[16];
        snprintf(k, sizeof(k), "k%d", i);
        assert_int_equal(nana_kv_set(t, K(k), K("\"some value that takes some room\"")), 0);
    }
    int64_t size = 0;
    assert_int_equal(nana_store_db_size(s, &size), 0);
    assert_true(size >= 4096);
    assert_int_equal(nana_store_vacuum(s), 0);

    nana_val *v;
    assert_int_equal(nana_store_pragma(s, "journal_mode", NULL, &v), 0);
    expect_val(v, "\"wal\"");
    assert_int_equal(nana_store_pragma(s, "user_version", "7", &v), 0);
    expect_val(v, "null");
    assert_int_equal(nana_store_pragma(s, "user_version", NULL, &v), 0);
    expect_val(v, "7");
    assert_int_equal(nana_store_pragma(s, "foreign_keys", "true", &v), 0);
    expect_val(v, "null");
    assert_int_equal(nana_store_pragma(s, "table_info", "\"data\"", &v), 0);
    assert_non_null(strstr(v->data, "\"name\":\"key\""));
    nana_val_unref(v);
    assert_int_equal(nana_store_pragma(s, "writable_schema", "1", &v), NANA_ERR_VALIDATION);
    assert_int_equal(nana_store_pragma(s, "journal_mode", "\"delete\"", &v), NANA_ERR_VALIDATION);
    assert_int_equal(nana_store_pragma(s, "wal_autocheckpoint", "0", &v), NANA_ERR_VALIDATION);
    assert_int_equal(nana_store_pragma(s, "synchronous", "0", &v), NANA_ERR_VALIDATION);
    assert_int_equal(nana_store_pragma(s, "synchronous", NULL, &v), 0);
    expect_val(v, "1");
    assert_int_equal(nana_store_pragma(s, "user_version", "\"1; DROP TABLE data\"", &v),
                     NANA_ERR_VALIDATION);
    assert_int_equal(nana_store_pragma(s, "table_info", "\"data; x\"", &v), NANA_ERR_VALIDATION);

    /* backup, change, restore */
    char bak[600];
    snprintf(bak, sizeof(bak), "%s.bak", f->path);
    unlink(bak);
    assert_int_equal(nana_store_backup(s, bak), 0);
    assert_int_equal(nana_store_backup(s, f->path), NANA_ERR_VALIDATION);
    assert_int_equal(nana_store_backup(s, ":memory:"), NANA_ERR_VALIDATION);
    assert_int_equal(nana_kv_set(t, K("k0"), K("\"changed\"")), 0);
    assert_int_equal(nana_kv_set(t, K("after"), K("1")), 0);
    assert_int_equal(nana_kv_get(t, K("k0"), &v), 0);
    expect_val(v, "\"changed\"");
    assert_int_equal(nana_store_restore(s, bak), 0);
    assert_int_equal(nana_kv_get(t, K("k0"), &v), 0);
    expect_val(v, "\"some value that takes some room\"");
    assert_int_equal(nana_kv_get(t, K("after"), &v), NANA_ERR_NOTFOUND);
    int64_t n;
    assert_int_equal(nana_kv_len(t, &n), 0);
    assert_int_equal(n, 200);
    assert_int_equal(nana_store_restore(s, "/nonexistent/file.db"), NANA_ERR_VALIDATION);
    char missing[600];
    snprintf(missing, sizeof(missing), "%s.missing", f->path);
    assert_int_equal(nana_store_restore(s, missing), NANA_ERR_NOTFOUND);

    /* Restoring from a file that is not a database fails and changes nothing. */
    char junk[600];
    snprintf(junk, sizeof(junk), "%s.junk", f->path);
    FILE *fp = fopen(junk, "w");
    fputs("this is not a database, just some text that is long enough to look like a header", fp);
    fclose(fp);
    assert_int_equal(nana_store_restore(s, junk), NANA_ERR_CORRUPT);
    assert_int_equal(nana_kv_len(t, &n), 0);
    assert_int_equal(n, 200);

    /* Not inside a transaction. */
    assert_int_equal(nana_store_begin(s), 0);
    assert_int_equal(nana_store_vacuum(s), NANA_ERR_TXN);
    assert_int_equal(nana_store_restore(s, bak), NANA_ERR_TXN);
    assert_int_equal(nana_store_rollback(s), 0);
    unlink(bak);
    unlink(junk);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_schema, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_injection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_update_delete_upsert, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sql_on_kv_table_keeps_cache_true, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rowids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kv_value_column, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backup_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_utilities, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
