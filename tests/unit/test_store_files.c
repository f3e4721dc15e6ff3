/*
 * test_store_files.c - the store and its file: one store per database file
 * (the lock file, in this process and across processes), the kinds of file
 * found at a path, damaged pages found at open (quick, full, none,
 * allow_corrupt) and at run time (writes refused from then on), a file the
 * open created removed when the open fails, SQLite's internal tables never
 * reachable, and the form of backup names.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "store/store_int.h"
#include "store_fixture.h"

#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* "<path><suffix>" in a static buffer. */
static const char *with(const char *path, const char *suffix)
{
    static char p[600];
    snprintf(p, sizeof(p), "%s%s", path, suffix);
    return p;
}

static bool exists(const char *p)
{
    struct stat st;
    return lstat(p, &st) == 0;
}

static void test_lock_one_store_per_file(void **state)
{
    (void)state;
    char path[512], link[520];
    test_db_path(path, sizeof(path), "lock");
    snprintf(link, sizeof(link), "%s.link", path);
    unlink(link);
    nana_store *a, *b = NULL;
    assert_int_equal(nana_store_open(path, NULL, &a), 0);
    assert_true(exists(with(path, NANA_STORE_LOCK_SUFFIX)));
    char want[64];
    snprintf(want, sizeof(want), "pid %ld on host", (long)getpid());
    assert_int_equal(nana_store_open(path, NULL, &b), NANA_ERR_BUSY);
    assert_null(b);
    assert_non_null(strstr(nana_errmsg(), want));
    /* Another name of the same file shares the lock. */
    assert_int_equal(symlink(path, link), 0);
    assert_int_equal(nana_store_open(link, NULL, &b), NANA_ERR_BUSY);
    /* Read-only too: a second reader would answer from its own cache. */
    nana_store_opts o;
    nana_store_opts_init(&o);
    o.read_only = 1;
    assert_int_equal(nana_store_open(path, &o, &b), NANA_ERR_BUSY);
    assert_int_equal(nana_store_close(a), 0);
    assert_false(exists(with(path, NANA_STORE_LOCK_SUFFIX)));
    assert_int_equal(nana_store_open(link, NULL, &b), 0);
    assert_int_equal(nana_store_close(b), 0);
    unlink(link);
    test_db_remove(path);
}

static void test_lock_across_processes(void **state)
{
    (void)state;
    char path[512];
    test_db_path(path, sizeof(path), "lockproc");
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        nana_store *s;
        char c = nana_store_open(path, NULL, &s) == 0 ? 'y' : 'n';
        ssize_t w = write(ready[1], &c, 1);
        (void)w;
        for (int i = 0; i < 600; i++) /* at most 60 s; the parent kills it */
            usleep(100000);
        _exit(0);
    }
    char c = 0;
    assert_int_equal(read(ready[0], &c, 1), 1);
    assert_int_equal(c, 'y');
    nana_store *s = NULL;
    char want[64];
    snprintf(want, sizeof(want), "pid %ld on host", (long)child);
    assert_int_equal(nana_store_open(path, NULL, &s), NANA_ERR_BUSY);
    assert_non_null(strstr(nana_errmsg(), want));
    /* A holder that dies leaves its lock file behind, unlocked. */
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    assert_true(exists(with(path, NANA_STORE_LOCK_SUFFIX)));
    assert_int_equal(nana_store_open(path, NULL, &s), 0);
    assert_int_equal(nana_store_close(s), 0);
    close(ready[0]);
    close(ready[1]);
    test_db_remove(path);
}

static void test_file_kinds(void **state)
{
    (void)state;
    char path[512];
    test_db_path(path, sizeof(path), "kinds");
    assert_int_equal(nana_store_file_kind(path), NANA_FILE_ABSENT);
    FILE *f = fopen(path, "w");
    fclose(f);
    assert_int_equal(nana_store_file_kind(path), NANA_FILE_EMPTY);
    f = fopen(path, "w");
    fputs("SQLite format 3", f); /* 15 bytes: no NUL, too short */
    fclose(f);
    assert_int_equal(nana_store_file_kind(path), NANA_FILE_OTHER);
    unlink(path);
    nana_store *s;
    assert_int_equal(nana_store_open(path, NULL, &s), 0);
    assert_int_equal(nana_store_close(s), 0);
    assert_int_equal(nana_store_file_kind(path), NANA_FILE_SQLITE);
    test_db_remove(path);
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_equal(nana_store_file_kind(path), NANA_FILE_OTHER);
    rmdir(path);
}

/* Fills a database with |n| keys of 300 bytes through a store, then closes it. */
static void fill(const char *path, int n)
{
    nana_store *s;
    assert_int_equal(nana_store_open(path, NULL, &s), 0);
    nana_table *t = nana_store_default_table(s);
    char key[32], val[302];
    memset(val, 'x', sizeof(val) - 1);
    val[0] = val[sizeof(val) - 2] = '"';
    val[sizeof(val) - 1] = 0;
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof(key), "key%05d", i);
        assert_int_equal(nana_kv_set(t, K(key), K(val)), 0);
    }
    assert_int_equal(nana_store_close(s), 0);
}

/* Writes garbage over a leaf page of the 'data' table in the middle of the file. */
static void damage(const char *path)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT pageno FROM dbstat WHERE name='data' AND "
                                        "pagetype='leaf' ORDER BY pageno",
                                        -1, &st, NULL),
                     SQLITE_OK);
    int pages[4096] = {0}, n = 0;
    while (sqlite3_step(st) == SQLITE_ROW && n < 4096)
        pages[n++] = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    assert_true(n >= 3);
    char garbage[4096];
    for (size_t i = 0; i < sizeof(garbage); i++)
        garbage[i] = (char)(i * 7 + 13);
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, garbage, sizeof(garbage), (off_t)(pages[n / 2] - 1) * 4096),
                     (ssize_t)sizeof(garbage));
    close(fd);
}

static void test_damaged_at_open(void **state)
{
    (void)state;
    char path[512];
    test_db_path(path, sizeof(path), "damaged");
    fill(path, 400);
    damage(path);
    nana_store *s = NULL;
    nana_store_opts o;
    nana_store_opts_init(&o);
    /* quick_check (the default) and integrity_check both refuse it. */
    assert_int_equal(nana_store_open(path, &o, &s), NANA_ERR_CORRUPT);
    assert_non_null(strstr(nana_errmsg(), "damaged"));
    assert_non_null(strstr(nana_errmsg(), "quick_check"));
    assert_null(s);
    assert_false(exists(with(path, NANA_STORE_LOCK_SUFFIX)));
    o.open_check = NANA_CHECK_FULL;
    assert_int_equal(nana_store_open(path, &o, &s), NANA_ERR_CORRUPT);
    assert_non_null(strstr(nana_errmsg(), "integrity_check"));
    /* allow_corrupt serves it, marked damaged, writes included. */
    o.open_check = NANA_CHECK_QUICK;
    o.allow_corrupt = 1;
    assert_int_equal(nana_store_open(path, &o, &s), 0);
    assert_int_equal(nana_store_damaged(s), 1);
    nana_table *t = nana_store_default_table(s);
    nana_val *v;
    assert_int_equal(nana_kv_get(t, K("key00000"), &v), 0);
    nana_val_unref(v);
    assert_int_equal(nana_kv_set(t, K("rescued"), K("1")), 0);
    assert_int_equal(nana_store_close(s), 0);
    test_db_remove(path);
}

static void test_damaged_at_run_time(void **state)
{
    (void)state;
    char path[512];
    test_db_path(path, sizeof(path), "damagedrun");
    fill(path, 400);
    damage(path);
    nana_store_opts o;
    nana_store_opts_init(&o);
    o.open_check = NANA_CHECK_NONE;
    o.cache.kind = NANA_CACHE_NONE;
    nana_store *s;
    assert_int_equal(nana_store_open(path, &o, &s), 0);
    assert_int_equal(nana_store_damaged(s), 0);
    nana_table *t = nana_store_default_table(s);
    assert_int_equal(nana_kv_set(t, K("before"), K("1")), 0);
    int bad = 0;
    char key[32];
    for (int i = 0; i < 400 && !bad; i++) {
        snprintf(key, sizeof(key), "key%05d", i);
        nana_val *v;
        int rc = nana_kv_get(t, K(key), &v);
        if (rc == 0)
            nana_val_unref(v);
        else
            bad = rc;
    }
    assert_int_equal(bad, NANA_ERR_CORRUPT);
    assert_int_equal(nana_store_damaged(s), 1);
    /* From now on nothing is written into it, even where the pages are sound. */
    assert_int_equal(nana_kv_set(t, K("after"), K("1")), NANA_ERR_CORRUPT);
    assert_non_null(strstr(nana_errmsg(), "damaged"));
    assert_int_equal(nana_kv_delete(t, K("before")), NANA_ERR_CORRUPT);
    assert_int_equal(nana_store_vacuum(s), NANA_ERR_CORRUPT);
    assert_int_equal(nana_store_begin(s), NANA_ERR_CORRUPT);
    assert_int_equal(nana_store_close(s), 0);
    test_db_remove(path);
}

static void test_created_file_removed_on_failure(void **state)
{
    (void)state;
    char path[512];
    test_db_path(path, sizeof(path), "created");
    /* A directory where SQLite wants its journal: the switch to WAL fails
     * after the store created the file. */
    assert_int_equal(mkdir(with(path, "-journal"), 0700), 0);
    nana_store *s = NULL;
    assert_true(nana_store_open(path, NULL, &s) != 0);
    assert_null(s);
    assert_false(exists(path));
    assert_false(exists(with(path, NANA_STORE_LOCK_SUFFIX)));
    assert_int_equal(rmdir(with(path, "-journal")), 0);
    /* An existing file is never removed by a failed open. */
    FILE *f = fopen(path, "w");
    fclose(f);
    assert_int_equal(mkdir(with(path, "-journal"), 0700), 0);
    assert_true(nana_store_open(path, NULL, &s) != 0);
    assert_true(exists(path));
    rmdir(with(path, "-journal"));
    test_db_remove(path);
}

static void test_internal_tables_unreachable(void **state)
{
    (void)state;
    char path[512];
    test_db_path(path, sizeof(path), "internal");
    /* A view over the schema, made by the file's owner, not through the store. */
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE TABLE seq(id INTEGER PRIMARY KEY AUTOINCREMENT, v);"
                                  "INSERT INTO seq(v) VALUES(1);"
                                  "CREATE VIEW schema_view AS SELECT name, sql FROM sqlite_master",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    nana_store *s;
    assert_int_equal(nana_store_open(path, NULL, &s), 0);
    nana_query q;
    nana_val *v = NULL;
    int64_t n;
    const char *const names[] = {"sqlite_master",      "sqlite_schema",   "SQLITE_MASTER",
                                 "sqlite_temp_master", "sqlite_sequence", "sqlite_stat1"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        nana_query_init(&q);
        q.table = names[i];
        assert_int_equal(nana_sql_query(s, &q, &v), NANA_ERR_VALIDATION);
        assert_non_null(strstr(nana_errmsg(), "sqlite_"));
        assert_int_equal(nana_sql_count(s, names[i], NULL, NULL, NULL, &n), NANA_ERR_VALIDATION);
        assert_int_equal(nana_sql_exists(s, names[i], NULL, NULL, NULL), NANA_ERR_VALIDATION);
        assert_int_equal(nana_sql_table_exists(s, names[i]), NANA_ERR_VALIDATION);
        assert_int_equal(nana_sql_table_schema(s, names[i], &v), NANA_ERR_VALIDATION);
        assert_int_equal(nana_sql_list_indexes(s, names[i], &v), NANA_ERR_VALIDATION);
        assert_int_equal(nana_sql_drop_table(s, names[i], 1), NANA_ERR_VALIDATION);
        nana_table *t;
        assert_int_equal(nana_store_table(s, names[i], NULL, &t), NANA_ERR_VALIDATION);
    }
    assert_int_equal(nana_sql_insert(s, "sqlite_sequence", "{\"name\":\"seq\",\"seq\":9}", &n),
                     NANA_ERR_VALIDATION);
    assert_int_equal(nana_sql_update(s, "sqlite_sequence", "{\"seq\":0}", "1=1", NULL, &n),
                     NANA_ERR_VALIDATION);
    assert_int_equal(nana_sql_delete(s, "sqlite_sequence", "1=1", NULL, &n), NANA_ERR_VALIDATION);
    assert_int_equal(nana_sql_create_table(s, "sqlite_x", "{\"a\":\"TEXT\"}", 0, NULL),
                     NANA_ERR_VALIDATION);
    assert_int_equal(nana_sql_create_index(s, "sqlite_autoindex_x", "seq", "[\"v\"]", 0, 0),
                     NANA_ERR_VALIDATION);
    /* The authorizer holds on its own: a view that reads the schema is refused. */
    nana_query_init(&q);
    q.table = "schema_view";
    assert_int_equal(nana_sql_query(s, &q, &v), NANA_ERR_VALIDATION);
    /* AUTOINCREMENT still works (SQLite keeps sqlite_sequence itself). */
    assert_int_equal(nana_sql_insert(s, "seq", "{\"v\":2}", &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(nana_sql_list_tables(s, &v), 0);
    assert_null(strstr(v->data, "sqlite_"));
    assert_non_null(strstr(v->data, "\"seq\""));
    nana_val_unref(v);
    assert_int_equal(nana_store_close(s), 0);
    test_db_remove(path);
}

static void test_backup_names(void **state)
{
    (void)state;
    char path[512], dir[520], p[1200];
    test_db_path(path, sizeof(path), "bkname");
    snprintf(dir, sizeof(dir), "%s.backups", path);
    mkdir(dir, 0700);
    nana_store_opts o;
    nana_store_opts_init(&o);
    o.backup_dir = dir;
    nana_store *s;
    assert_int_equal(nana_store_open(path, &o, &s), 0);
    char name[300];
    memset(name, 'b', sizeof(name) - 1);
    name[sizeof(name) - 1] = 0;
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    assert_int_equal(nana_store_backup(s, p), NANA_ERR_VALIDATION);
    assert_non_null(strstr(nana_errmsg(), "limit is 128"));
    name[NANA_MAX_BACKUP_NAME + 1] = 0;
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    assert_int_equal(nana_store_backup(s, p), NANA_ERR_VALIDATION);
    name[NANA_MAX_BACKUP_NAME] = 0;
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    assert_int_equal(nana_store_backup(s, p), 0);
    unlink(p);
    const char *const uris[] = {"file:x.db", "file:///tmp/x.db", "http:x", "a+b.c-d:x",
                                "sub/file:x.db"};
    for (size_t i = 0; i < sizeof(uris) / sizeof(uris[0]); i++) {
        snprintf(p, sizeof(p), "%s/%s", dir, uris[i]);
        assert_int_equal(nana_store_backup(s, p), NANA_ERR_VALIDATION);
        assert_non_null(strstr(nana_errmsg(), "URI"));
        assert_int_equal(nana_store_restore(s, p), NANA_ERR_VALIDATION);
    }
    assert_int_equal(nana_store_backup(s, "file:x.db"), NANA_ERR_VALIDATION);
    snprintf(p, sizeof(p), "%s/2026-01-01T10:00:00.db", dir);
    assert_int_equal(nana_store_backup(s, p), 0);
    assert_int_equal(nana_store_restore(s, p), 0);
    unlink(p);
    assert_int_equal(nana_store_close(s), 0);
    rmdir(dir);
    test_db_remove(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lock_one_store_per_file),
        cmocka_unit_test(test_lock_across_processes),
        cmocka_unit_test(test_file_kinds),
        cmocka_unit_test(test_damaged_at_open),
        cmocka_unit_test(test_damaged_at_run_time),
        cmocka_unit_test(test_created_file_removed_on_failure),
        cmocka_unit_test(test_internal_tables_unreachable),
        cmocka_unit_test(test_backup_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
