/*
 * test_store_badinput.c - every class of bad input gets a clear error and
 * leaves committed data intact: invalid JSON, oversize keys and values,
 * bad UTF-8, bad table names, non-database and corrupt files, read-only
 * files, and a full disk. (Hostile SQL clauses: test_sqlcheck.c and
 * test_store_sql.c.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "store_fixture.h"

#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/wait.h>

static void test_invalid_json(void **state)
{
    (void)state;
    char path[512];
    test_db_path(path, sizeof(path), "badjson");
    nana_store *s;
    assert_int_equal(nana_store_open(path, NULL, &s), 0);
    nana_table *t = nana_store_default_table(s);
    assert_int_equal(nana_kv_set(t, K("k"), K("\"good\"")), 0);
    const char *bad[] = {"",
                         "{",
                         "{\"a\":}",
                         "[1,]",
                         "'x'",
                         "NaN",
                         "Infinity",
                         "01",
                         "1.",
                         ".5",
                         "tru",
                         "\"unterminated",
                         "\"bad \\x escape\"",
                         "{\"a\" 1}",
                         "1 2",
                         "\"\xff\"",
                         "\"\xed\xa0\x80\"",
                         "\"\\ud800\"",
                         "{\"a\":1}x",
                         "\"tab\there\""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = nana_kv_set(t, K("k"), K(bad[i]));
        if (rc != NANA_ERR_JSON) fail_msg("accepted %s", bad[i]);
        assert_non_null(strstr(nana_errmsg(), "JSON"));
    }
    expect_get(t, "k", "\"good\"");
    assert_int_equal(nana_store_close(s), 0);
    test_db_remove(path);
}

static void test_sizes_and_keys(void **state)
{
    (void)state;
    char path[512];
    test_db_path(path, sizeof(path), "sizes");
    nana_store_opts o;
    nana_store_opts_init(&o);
    o.max_key_bytes = 16;
    o.max_value_bytes = 64;
    o.max_json_depth = 4;
    nana_store *s;
    assert_int_equal(nana_store_open(path, &o, &s), 0);
    nana_table *t = nana_store_default_table(s);
    char key[17];
    memset(key, 'k', sizeof(key));
    assert_int_equal(nana_kv_set(t, key, 16, K("1")), 0);
    assert_int_equal(nana_kv_set(t, key, 17, K("1")), NANA_ERR_TOOBIG);
    assert_string_equal(nana_errmsg(), "key is 17 bytes, the limit is 16");
    nana_val *v;
    assert_int_equal(nana_kv_get(t, key, 17, &v), NANA_ERR_TOOBIG);
    char val[80];
    memset(val, ' ', sizeof(val));
    val[0] = '1';
    assert_int_equal(nana_kv_set(t, K("v"), val, 64), 0);
    assert_int_equal(nana_kv_set(t, K("v"), val, 65), NANA_ERR_TOOBIG);
    assert_string_equal(nana_errmsg(), "value is 65 bytes, the limit is 64");
    assert_int_equal(nana_kv_set(t, K("d"), K("[[[[1]]]]")), 0);
    assert_int_equal(nana_kv_set(t, K("d"), K("[[[[[1]]]]]")), NANA_ERR_JSON);
    assert_non_null(strstr(nana_errmsg(), "deep"));
    /* Keys must be UTF-8 text. */
    assert_int_equal(nana_kv_set(t, K("\xff\xfe"), K("1")), NANA_ERR_INVALID);
    assert_int_equal(nana_kv_set(t, K("\xc0\xaf"), K("1")), NANA_ERR_INVALID);
    assert_int_equal(nana_kv_get(t, K("\xed\xa0\x80"), &v), NANA_ERR_INVALID);
    /* A patch whose result outgrows the value limit is refused whole. */
    assert_int_equal(nana_kv_set(t, K("p"), K("{\"a\":\"0123456789012345678901234567890\"}")), 0);
    assert_int_equal(nana_kv_patch(t, K("p"), K("{\"b\":\"0123456789012345678901234\"}"), 0, &v),
                     NANA_ERR_TOOBIG);
    expect_get(t, "p", "{\"a\":\"0123456789012345678901234567890\"}");
    /* Batch: one oversize item refuses the batch. */
    nana_kv_pair pairs[] = {{K("ok"), K("1")}, {key, 17, K("1")}};
    assert_int_equal(nana_kv_batch_update(t, pairs, 2), NANA_ERR_TOOBIG);
    assert_int_equal(nana_kv_contains(t, K("ok")), 0);
    assert_int_equal(nana_kv_batch_update_partial(t, pairs, 2, &v), 0);
    assert_non_null(strstr(v->data, "<invalid key #1>"));
    nana_val_unref(v);
    assert_int_equal(nana_kv_contains(t, K("ok")), 1);
    /* A long multi-byte key is cut at a character boundary in the report. */
    char longkey[4300];
    size_t kl = 0;
    while (kl + 3 < 4200) {
        memcpy(longkey + kl, "\xe3\x81\x82", 3); /* あ */
        kl += 3;
    }
    nana_kv_pair mixed[] = {{longkey, kl, K("1")}, {K("good"), K("2")}};
    assert_int_equal(nana_kv_batch_update_partial(t, mixed, 2, &v), 0);
    assert_non_null(strstr(v->data, "Skipped key"));
    nana_val_unref(v);
    expect_get(t, "good", "2");
    /* Bad options. */
    nana_store *s2;
    o.readers = 0;
    assert_int_equal(nana_store_open(path, &o, &s2), NANA_ERR_INVALID);
    nana_store_opts_init(&o);
    o.default_table = "bad name";
    assert_int_equal(nana_store_open(path, &o, &s2), NANA_ERR_VALIDATION);
    assert_int_equal(nana_store_open("", NULL, &s2), NANA_ERR_INVALID);
    assert_int_equal(nana_store_open(":memory:", NULL, &s2), NANA_ERR_INVALID);
    assert_int_equal(nana_store_open("file:x.db?mode=memory", NULL, &s2), NANA_ERR_INVALID);
    assert_int_equal(nana_store_close(s), 0);
    test_db_remove(path);
}

static void async_ignore(void *arg, int rc, const char *errmsg)
{
    (void)errmsg;
    if (rc) atomic_fetch_add((atomic_int *)arg, 1);
}

/* Per-store limits: tables, and the bytes queued asynchronous writes hold. */
static void test_store_limits(void **state)
{
    (void)state;
    char path[512];
    test_db_path(path, sizeof(path), "limits");
    nana_store_opts o;
    nana_store_opts_init(&o);
    o.max_tables = 3; /* "data" + 2 */
    o.max_queue_bytes = 4096;
    nana_store *s;
    assert_int_equal(nana_store_open(path, &o, &s), 0);
    nana_table *t;
    assert_int_equal(nana_store_table(s, "t1", NULL, &t), 0);
    assert_int_equal(nana_store_table(s, "t2", NULL, &t), 0);
    assert_int_equal(nana_store_table(s, "t3", NULL, &t), NANA_ERR_TOOBIG);
    assert_int_equal(nana_store_table(s, "T1", NULL, &t), 0); /* already open */
    char big[3000];
    memset(big, 'x', sizeof(big));
    big[0] = big[sizeof(big) - 1] = '"';
    atomic_int failed = 0;
    int busy = 0;
    /* Submitted faster than they commit: the byte budget answers BUSY. */
    for (int i = 0; i < 200; i++) {
        char key[16];
        snprintf(key, sizeof(key), "k%d", i);
        int rc = nana_kv_set_async(t, K(key), big, sizeof(big), async_ignore, &failed);
        if (rc == NANA_ERR_BUSY)
            busy++;
        else
            assert_int_equal(rc, 0);
    }
    assert_true(busy > 0);
    assert_int_equal(nana_store_close(s), 0); /* drains what was queued */
    assert_int_equal(atomic_load(&failed), 0);
    test_db_remove(path);
}

/* Rows written by others that are not JSON text: a BLOB (NanaSQLite's
 * encryption) is refused with TYPE and stays; odd text is returned as is. */
static void test_foreign_rows(void **state)
{
    (void)state;
    char path[512];
    test_db_path(path, sizeof(path), "foreign");
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE TABLE data (key TEXT PRIMARY KEY, value TEXT);"
                                  "INSERT INTO data VALUES ('blob', x'00112233445566778899');"
                                  "INSERT INTO data VALUES ('nullval', NULL);",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    nana_store *s;
    assert_int_equal(nana_store_open(path, NULL, &s), 0);
    nana_table *t = nana_store_default_table(s);
    nana_val *v;
    assert_int_equal(nana_kv_get(t, K("blob"), &v), NANA_ERR_TYPE);
    assert_non_null(strstr(nana_errmsg(), "BLOB"));
    assert_int_equal(nana_kv_pop(t, K("blob"), NULL, 0, &v), NANA_ERR_TYPE);
    assert_int_equal(nana_kv_contains(t, K("blob")), 1); /* the pop was undone */
    assert_int_equal(nana_kv_to_dict(t, &v), NANA_ERR_TYPE);
    expect_get(t, "nullval", "null");
    assert_int_equal(nana_kv_delete(t, K("blob")), 0); /* deleting it is fine */
    assert_int_equal(nana_kv_to_dict(t, &v), 0);
    assert_string_equal(v->data, "{\"nullval\":null}");
    nana_val_unref(v);
    assert_int_equal(nana_store_close(s), 0);
    test_db_remove(path);
}

/* A file that is not a database is refused and left untouched. */
static void test_not_a_database(void **state)
{
    (void)state;
    char path[512];
    test_db_path(path, sizeof(path), "notdb");
    const char junk[] = "This is a text file, not SQLite. It has some content so that SQLite "
                        "reads a whole header from it and finds the magic string wrong.\n";
    FILE *f = fopen(path, "w");
    for (int i = 0; i < 100; i++)
        fputs(junk, f);
    fclose(f);
    nana_store *s = NULL;
    assert_int_equal(nana_store_open(path, NULL, &s), NANA_ERR_CORRUPT);
    assert_null(s);
    assert_non_null(strstr(nana_errmsg(), "not a database"));
    f = fopen(path, "r");
    char buf[sizeof(junk)];
    assert_int_equal(fread(buf, 1, sizeof(junk) - 1, f), sizeof(junk) - 1);
    fclose(f);
    assert_memory_equal(buf, junk, sizeof(junk) - 1);
    /* A directory, and a path in a missing directory. */
    assert_int_equal(nana_store_open("/", NULL, &s), NANA_ERR_IO);
    assert_int_equal(nana_store_open("/nonexistent-dir/x.db", NULL, &s), NANA_ERR_IO);
    test_db_remove(path);
}

/* Damaged pages give NANA_ERR_CORRUPT, not a crash. */
static void test_corrupt_pages(void **state)
{
    (void)state;
    char path[512];
    test_db_path(path, sizeof(path), "corrupt");
    nana_store *s;
    nana_store_opts o;
    nana_store_opts_init(&o);
    o.cache.kind = NANA_CACHE_NONE;
    assert_int_equal(nana_store_open(path, &o, &s), 0);
    nana_table *t = nana_store_default_table(s);
    char key[32], val[300];
    memset(val, 'x', sizeof(val));
    val[0] = '"';
    val[sizeof(val) - 1] = '"';
    for (int i = 0; i < 400; i++) {
        snprintf(key, sizeof(key), "key%04d", i);
        assert_int_equal(nana_kv_set(t, K(key), val, sizeof(val)), 0);
    }
    assert_int_equal(nana_store_close(s), 0);
    /* Overwrite pages 3..10 with garbage. */
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    char garbage[4096 * 8];
    for (size_t i = 0; i < sizeof(garbage); i++)
        garbage[i] = (char)(i * 7 + 13);
    assert_int_equal(pwrite(fd, garbage, sizeof(garbage), 4096 * 2), (ssize_t)sizeof(garbage));
    close(fd);
    int rc = nana_store_open(path, &o, &s);
    if (rc == 0) {
        t = nana_store_default_table(s);
        nana_val *v;
        int bad = 0;
        for (int i = 0; i < 400; i++) {
            snprintf(key, sizeof(key), "key%04d", i);
            rc = nana_kv_get(t, K(key), &v);
            if (rc == 0)
                nana_val_unref(v);
            else
                bad += rc == NANA_ERR_CORRUPT;
        }
        int64_t n;
        rc = nana_kv_len(t, &n);
        assert_true(bad > 0 || rc == NANA_ERR_CORRUPT);
        nana_store_close(s);
    } else {
        assert_int_equal(rc, NANA_ERR_CORRUPT);
    }
    test_db_remove(path);
}

/* Runs |fn| as an unprivileged user when we are root (root ignores file modes). */
static int run_unprivileged(void (*fn)(const char *), const char *path)
{
    if (geteuid() != 0) {
        fn(path);
        return 0;
    }
    pid_t pid = fork();
    if (pid == 0) {
        if (setgid(65534) != 0 || setuid(65534) != 0) _exit(77);
        fn(path);
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 99;
}

static void readonly_checks(const char *path)
{
    nana_store *s = NULL;
    int rc = nana_store_open(path, NULL, &s);
    if (rc != NANA_ERR_READONLY) _exit(10);
    if (!strstr(nana_errmsg(), "read-only")) _exit(11);
    nana_store_opts o;
    nana_store_opts_init(&o);
    o.read_only = 1;
    if ((rc = nana_store_open(path, &o, &s)) != 0) {
        fprintf(stderr, "read-only open: %s\n", nana_errmsg());
        _exit(12);
    }
    nana_table *t = nana_store_default_table(s);
    nana_val *v;
    if (nana_kv_get(t, K("kept"), &v) != 0 || strcmp(v->data, "\"value\"") != 0) _exit(13);
    nana_val_unref(v);
    if (nana_kv_set(t, K("new"), K("1")) != NANA_ERR_READONLY) _exit(14);
    if (nana_store_begin(s) != NANA_ERR_READONLY) _exit(15);
    if (nana_kv_delete(t, K("kept")) != NANA_ERR_READONLY) _exit(16);
    nana_store_close(s);
}

static void test_readonly_file(void **state)
{
    (void)state;
    char dir[512], path[600];
    test_db_path(dir, sizeof(dir), "rodir");
    mkdir(dir, 0777);
    chmod(dir, 0777);
    snprintf(path, sizeof(path), "%s/ro.db", dir);
    test_db_remove(path);
    nana_store *s;
    assert_int_equal(nana_store_open(path, NULL, &s), 0);
    assert_int_equal(nana_kv_set(nana_store_default_table(s), K("kept"), K("\"value\"")), 0);
    assert_int_equal(nana_store_close(s), 0);
    assert_int_equal(chmod(path, 0444), 0);
    int st = run_unprivileged(readonly_checks, path);
    if (st == 77) {
        printf("skipped: cannot drop privileges to test a read-only file\n");
    } else {
        assert_int_equal(st, 0);
    }
    chmod(path, 0644);
    /* The data is still there for a writer. */
    assert_int_equal(nana_store_open(path, NULL, &s), 0);
    expect_get(nana_store_default_table(s), "kept", "\"value\"");
    assert_int_equal(nana_store_close(s), 0);
    test_db_remove(path);
    rmdir(dir);
}

/* A full disk (max_db_bytes -> max_page_count) fails writes cleanly;
 * everything acknowledged before is intact afterwards. */
static void test_disk_full(void **state)
{
    (void)state;
    char path[512];
    test_db_path(path, sizeof(path), "full");
    nana_store_opts o;
    nana_store_opts_init(&o);
    o.max_db_bytes = 64 * 1024;
    nana_store *s;
    assert_int_equal(nana_store_open(path, &o, &s), 0);
    nana_table *t = nana_store_default_table(s);
    char key[32], val[1002];
    memset(val, 'v', sizeof(val));
    val[0] = val[sizeof(val) - 1] = '"';
    int ok = 0, rc = 0;
    for (int i = 0; i < 200; i++) {
        snprintf(key, sizeof(key), "key%03d", i);
        rc = nana_kv_set(t, K(key), val, sizeof(val));
        if (rc) break;
        ok++;
    }
    assert_int_equal(rc, NANA_ERR_FULL);
    assert_non_null(strstr(nana_errmsg(), "full"));
    assert_true(ok > 10 && ok < 200);
    /* Still serving: reads work, deletes make room. */
    assert_int_equal(nana_kv_contains(t, K("key000")), 1);
    assert_int_equal(nana_kv_delete(t, K("key000")), 0);
    assert_int_equal(nana_store_close(s), 0);

    /* Reopen without the limit: every acknowledged write is there. */
    assert_int_equal(nana_store_open(path, NULL, &s), 0);
    t = nana_store_default_table(s);
    int64_t n;
    assert_int_equal(nana_kv_len(t, &n), 0);
    assert_int_equal(n, ok - 1);
    for (int i = 1; i < ok; i++) {
        snprintf(key, sizeof(key), "key%03d", i);
        assert_int_equal(nana_kv_contains(t, K(key)), 1);
    }
    snprintf(key, sizeof(key), "key%03d", ok);
    assert_int_equal(nana_kv_contains(t, K(key)), 0);
    nana_val *v;
    assert_int_equal(nana_store_pragma(s, "schema_version", NULL, &v), 0);
    nana_val_unref(v);
    assert_int_equal(nana_store_close(s), 0);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);
    sqlite3_close(db);
    test_db_remove(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_invalid_json),   cmocka_unit_test(test_sizes_and_keys),
        cmocka_unit_test(test_foreign_rows),   cmocka_unit_test(test_store_limits),
        cmocka_unit_test(test_not_a_database), cmocka_unit_test(test_corrupt_pages),
        cmocka_unit_test(test_readonly_file),  cmocka_unit_test(test_disk_full),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
