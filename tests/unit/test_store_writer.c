/*
 * test_store_writer.c - the store under threads: group commit, failure
 * isolation inside a group, atomic read-modify-write, the bounded write
 * queue, a file locked by another process, and a disk that fills while
 * many writers run. Every loop is bounded by count.
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
#include <stdatomic.h>

enum { THREADS = 16, PER_THREAD = 500 };

typedef struct worker {
    pthread_t th;
    nana_table *t;
    int id;
    int ok, failed;
    int *acked; /* per key: 1 if the write was acknowledged */
} worker;

static void *set_worker(void *arg)
{
    worker *w = arg;
    char key[32], val[64];
    for (int i = 0; i < PER_THREAD; i++) {
        snprintf(key, sizeof(key), "t%02d-%04d", w->id, i);
        snprintf(val, sizeof(val), "{\"t\":%d,\"i\":%d}", w->id, i);
        if (nana_kv_set(w->t, K(key), K(val)) == 0) w->ok++;
        /* Every other thread also makes writes that fail inside groups. */
        if (w->id % 2 && nana_kv_delete(w->t, K("never-there")) != NANA_ERR_NOTFOUND) w->failed++;
        if (w->id % 4 == 1 && nana_kv_increment(w->t, K("not-a-number"), NULL, 0, NULL, 0, NULL, 0,
                                                NULL) != NANA_ERR_TYPE)
            w->failed++;
    }
    return NULL;
}

static void test_group_commit_and_isolation(void **state)
{
    (void)state;
    char path[512];
    test_db_path(path, sizeof(path), "groups");
    nana_store *s;
    assert_int_equal(nana_store_open(path, NULL, &s), 0);
    nana_table *t = nana_store_default_table(s);
    assert_int_equal(nana_kv_set(t, K("not-a-number"), K("\"text\"")), 0);
    nana_store_stats before, after;
    nana_store_get_stats(s, &before);
    worker w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (worker){.t = t, .id = i};
        assert_int_equal(pthread_create(&w[i].th, NULL, set_worker, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(w[i].th, NULL);
    nana_store_get_stats(s, &after);
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(w[i].ok, PER_THREAD);
        assert_int_equal(w[i].failed, 0);
    }
    uint64_t writes = after.writes - before.writes;
    uint64_t commits = after.commits - before.commits;
    printf("writes %llu, commits %llu (%.1f writes per commit)\n", (unsigned long long)writes,
           (unsigned long long)commits, commits ? (double)writes / (double)commits : 0.0);
    assert_true(writes >= THREADS * PER_THREAD);
    assert_true(commits * 2 <= writes); /* writes were grouped */

    /* Every value is there after a reopen. */
    assert_int_equal(nana_store_close(s), 0);
    assert_int_equal(nana_store_open(path, NULL, &s), 0);
    t = nana_store_default_table(s);
    int64_t n;
    assert_int_equal(nana_kv_len(t, &n), 0);
    assert_int_equal(n, THREADS * PER_THREAD + 1);
    nana_val *v;
    assert_int_equal(nana_kv_get(t, K("t07-0123"), &v), 0);
    assert_string_equal(v->data, "{\"t\":7,\"i\":123}");
    nana_val_unref(v);
    assert_int_equal(nana_store_close(s), 0);
    test_db_remove(path);
}

static void *incr_worker(void *arg)
{
    worker *w = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        if (nana_kv_increment(w->t, K("counter"), NULL, 0, NULL, 0, NULL, 0, NULL) == 0) w->ok++;
        if (nana_kv_increment(w->t, K("obj"), K("2"), K("n"), NULL, 0, NULL) == 0) w->ok++;
    }
    return NULL;
}

static void test_atomic_increment(void **state)
{
    (void)state;
    char path[512];
    test_db_path(path, sizeof(path), "incr");
    nana_store *s;
    assert_int_equal(nana_store_open(path, NULL, &s), 0);
    nana_table *t = nana_store_default_table(s);
    worker w[8];
    for (int i = 0; i < 8; i++) {
        w[i] = (worker){.t = t, .id = i};
        assert_int_equal(pthread_create(&w[i].th, NULL, incr_worker, &w[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(w[i].th, NULL);
        assert_int_equal(w[i].ok, 2 * PER_THREAD);
    }
    nana_val *v;
    assert_int_equal(nana_kv_get(t, K("counter"), &v), 0);
    assert_int_equal(atoi(v->data), 8 * PER_THREAD);
    nana_val_unref(v);
    assert_int_equal(nana_kv_get(t, K("obj"), &v), 0);
    char want[64];
    snprintf(want, sizeof(want), "{\"n\":%d}", 2 * 8 * PER_THREAD);
    assert_string_equal(v->data, want);
    nana_val_unref(v);
    assert_int_equal(nana_store_close(s), 0);
    test_db_remove(path);
}

typedef struct busy_arg {
    nana_table *t;
    int id;
    atomic_int *busy, *ok, *other;
} busy_arg;

static void *busy_worker(void *arg)
{
    busy_arg *a = arg;
    char key[32];
    snprintf(key, sizeof(key), "b%d", a->id);
    int rc = nana_kv_set(a->t, K(key), K("1"));
    if (rc == NANA_ERR_BUSY)
        atomic_fetch_add(a->busy, 1);
    else if (rc == 0)
        atomic_fetch_add(a->ok, 1);
    else
        atomic_fetch_add(a->other, 1);
    return NULL;
}

/*
 * Another process holds the write lock: the writer waits (busy timeout),
 * the queue fills up, and further writes are refused with BUSY instead of
 * piling up. When the lock goes away, the queued writes commit.
 */
static void test_bounded_queue_and_foreign_lock(void **state)
{
    (void)state;
    char path[512];
    test_db_path(path, sizeof(path), "busy");
    nana_store_opts o;
    nana_store_opts_init(&o);
    o.write_queue = 4;
    o.max_group = 1;
    o.write_wait_ms = 50;
    o.busy_timeout_ms = 3000;
    nana_store *s;
    assert_int_equal(nana_store_open(path, &o, &s), 0);
    nana_table *t = nana_store_default_table(s);

    sqlite3 *other;
    assert_int_equal(sqlite3_open(path, &other), SQLITE_OK);
    assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);

    enum { N = 12 };
    atomic_int busy = 0, ok = 0, err = 0;
    pthread_t th[N];
    busy_arg args[N];
    for (int i = 0; i < N; i++) {
        args[i] = (busy_arg){t, i, &busy, &ok, &err};
        assert_int_equal(pthread_create(&th[i], NULL, busy_worker, &args[i]), 0);
    }
    /* Give every writer time to queue or be refused, then release the lock. */
    for (int i = 0; i < 100 && atomic_load(&busy) + 5 < N; i++)
        usleep(20000);
    assert_int_equal(sqlite3_exec(other, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(other);
    for (int i = 0; i < N; i++)
        pthread_join(th[i], NULL);
    printf("refused busy %d, committed %d, other %d\n", atomic_load(&busy), atomic_load(&ok),
           atomic_load(&err));
    /* 1 being written + 4 queued at most were accepted; the rest were refused. */
    assert_true(atomic_load(&busy) >= N - 5);
    assert_true(atomic_load(&ok) >= 1);
    assert_int_equal(atomic_load(&busy) + atomic_load(&ok) + atomic_load(&err), N);
    int64_t n;
    assert_int_equal(nana_kv_len(t, &n), 0);
    assert_int_equal(n, atomic_load(&ok));

    /* A lock held past the busy timeout fails the write with BUSY, cleanly. */
    nana_store_close(s);
    o.busy_timeout_ms = 100;
    assert_int_equal(nana_store_open(path, &o, &s), 0);
    t = nana_store_default_table(s);
    assert_int_equal(sqlite3_open(path, &other), SQLITE_OK);
    assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(nana_kv_set(t, K("late"), K("1")), NANA_ERR_BUSY);
    assert_non_null(strstr(nana_errmsg(), "locked"));
    assert_int_equal(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(other);
    assert_int_equal(nana_kv_set(t, K("late"), K("1")), 0);
    assert_int_equal(nana_store_close(s), 0);
    test_db_remove(path);
}

static void *full_worker(void *arg)
{
    worker *w = arg;
    char key[32], val[600];
    memset(val, 'x', sizeof(val));
    val[0] = val[sizeof(val) - 1] = '"';
    for (int i = 0; i < PER_THREAD; i++) {
        snprintf(key, sizeof(key), "f%02d-%04d", w->id, i);
        int rc = nana_kv_set(w->t, K(key), val, sizeof(val));
        w->acked[i] = rc == 0;
        if (rc == 0)
            w->ok++;
        else if (rc == NANA_ERR_FULL)
            w->failed++;
        else
            w->failed += 1000; /* any other error is wrong */
    }
    return NULL;
}

/* The disk fills while 8 writers run: each write fails or succeeds alone,
 * and exactly the acknowledged ones are in the file afterwards. */
static void test_disk_full_under_load(void **state)
{
    (void)state;
    char path[512];
    test_db_path(path, sizeof(path), "fullload");
    nana_store_opts o;
    nana_store_opts_init(&o);
    o.max_db_bytes = 256 * 1024;
    nana_store *s;
    assert_int_equal(nana_store_open(path, &o, &s), 0);
    nana_table *t = nana_store_default_table(s);
    worker w[8];
    for (int i = 0; i < 8; i++) {
        w[i] = (worker){.t = t, .id = i, .acked = calloc(PER_THREAD, sizeof(int))};
        assert_int_equal(pthread_create(&w[i].th, NULL, full_worker, &w[i]), 0);
    }
    int ok = 0, failed = 0;
    for (int i = 0; i < 8; i++) {
        pthread_join(w[i].th, NULL);
        ok += w[i].ok;
        failed += w[i].failed;
    }
    printf("acknowledged %d, refused (disk full) %d\n", ok, failed);
    assert_true(failed > 0 && failed < 8 * PER_THREAD * 1000);
    assert_int_equal(ok + failed, 8 * PER_THREAD);
    assert_int_equal(nana_store_close(s), 0);

    assert_int_equal(nana_store_open(path, NULL, &s), 0);
    t = nana_store_default_table(s);
    o.cache.kind = NANA_CACHE_NONE;
    int64_t n;
    assert_int_equal(nana_kv_len(t, &n), 0);
    assert_int_equal(n, ok);
    for (int i = 0; i < 8; i++) {
        for (int k = 0; k < PER_THREAD; k++) {
            char key[32];
            snprintf(key, sizeof(key), "f%02d-%04d", i, k);
            assert_int_equal(nana_kv_contains(t, K(key)), w[i].acked[k]);
        }
        free(w[i].acked);
    }
    assert_int_equal(nana_store_close(s), 0);
    test_db_remove(path);
}

typedef struct async_state {
    atomic_int done, failed;
    atomic_uint futex;
} async_state;

static void async_done(void *arg, int rc, const char *errmsg)
{
    async_state *st = arg;
    if (rc) {
        fprintf(stderr, "async write failed: %s\n", errmsg);
        atomic_fetch_add(&st->failed, 1);
    }
    atomic_fetch_add(&st->done, 1);
}

/* Asynchronous sets from one thread: all complete once, all are stored,
 * and a full queue answers BUSY at once. */
static void test_async_set(void **state)
{
    (void)state;
    char path[512];
    test_db_path(path, sizeof(path), "async");
    nana_store_opts o;
    nana_store_opts_init(&o);
    o.write_queue = 256;
    o.checkpoint_pages = 500;
    nana_store *s;
    assert_int_equal(nana_store_open(path, &o, &s), 0);
    nana_table *t = nana_store_default_table(s);
    async_state st = {0};
    enum { N = 20000 };
    int submitted = 0, busy = 0;
    for (int i = 0; i < N; i++) {
        char key[32], val[400];
        snprintf(key, sizeof(key), "a%05d", i);
        /* values of ~300 bytes, so the WAL passes the checkpoint threshold */
        snprintf(val, sizeof(val), "[%d,\"%0300d\"]", i, i);
        int rc = nana_kv_set_async(t, K(key), K(val), async_done, &st);
        if (rc == NANA_ERR_BUSY) {
            busy++;
            i--; /* wait for room and try the same key again */
            for (int k = 0; k < 1000 && atomic_load(&st.done) + 200 < submitted; k++)
                usleep(100);
            continue;
        }
        assert_int_equal(rc, 0);
        submitted++;
    }
    for (int k = 0; k < 20000 && atomic_load(&st.done) < submitted; k++)
        usleep(500);
    printf("async: %d submitted, %d BUSY answers while the queue was full\n", submitted, busy);
    assert_int_equal(atomic_load(&st.done), N);
    assert_int_equal(atomic_load(&st.failed), 0);
    nana_val *v;
    assert_int_equal(nana_kv_get(t, K("a12345"), &v), 0);
    assert_int_equal(strncmp(v->data, "[12345,\"000", 11), 0);
    nana_val_unref(v);
    int64_t n;
    assert_int_equal(nana_kv_len(t, &n), 0);
    assert_int_equal(n, N);
    /* Bad input is refused before anything is queued. */
    assert_int_equal(nana_kv_set_async(t, K("k"), K("{bad"), async_done, &st), NANA_ERR_JSON);
    assert_int_equal(nana_kv_set_async(t, K("k"), K("1"), NULL, NULL), NANA_ERR_INVALID);
    assert_int_equal(atomic_load(&st.done), N);

    /* The WAL was checkpointed by the checkpointer thread along the way. */
    assert_true(atomic_load(&s->ckpt.runs) > 0);
    char wal[600];
    snprintf(wal, sizeof(wal), "%s-wal", path);
    struct stat sb;
    assert_int_equal(stat(wal, &sb), 0);
    printf("checkpoints %llu, WAL %lld bytes\n", (unsigned long long)atomic_load(&s->ckpt.runs),
           (long long)sb.st_size);
    assert_true(sb.st_size < 64ll * 1024 * 1024);
    assert_int_equal(nana_store_close(s), 0);
    test_db_remove(path);
}

/* Waits up to 10 s for |cond| (polled); false on timeout. */
static bool wait_until(bool (*cond)(nana_store *s), nana_store *s)
{
    for (int i = 0; i < 10000; i++) {
        if (cond(s)) return true;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return cond(s);
}

/* The checkpointer ran and left its tail to the writer. */
static bool ckpt_ran(nana_store *s)
{
    return atomic_load(&s->ckpt.state) == NANA_CK_TAIL;
}

/* Writes one key (each call a new one) and waits for its commit. */
static void commit_one(nana_table *t, int i)
{
    char key[32], val[64];
    snprintf(key, sizeof(key), "k%07d", (i * 7919) % 100000); /* pages all over the tree */
    snprintf(val, sizeof(val), "\"%040d\"", i);
    assert_int_equal(nana_kv_set(t, K(key), K(val)), 0);
}

/*
 * One commit at a time (a client waiting for each write) past the
 * checkpoint threshold: after a background checkpoint the writer copies
 * the tail, and the WAL starts over, instead of staying past the
 * threshold with a checkpoint after every commit. Each step is waited for,
 * so a busy machine (a checkpointer thread that runs late) changes how
 * long it takes, not what it checks.
 */
static void test_checkpoint_restarts_wal(void **state)
{
    (void)state;
    char path[512];
    test_db_path(path, sizeof(path), "ckpt");
    nana_store_opts o;
    nana_store_opts_init(&o);
    o.checkpoint_pages = 100;
    nana_store *s;
    assert_int_equal(nana_store_open(path, &o, &s), 0);
    nana_table *t = nana_store_default_table(s);
    int i = 0;
    /* Past the threshold; the checkpointer runs (on its own thread). */
    while (atomic_load(&s->ckpt.last_frames) < 100)
        commit_one(t, i++);
    assert_true(wait_until(ckpt_ran, s));
    /* The next commit copies the tail; the one after it finds every frame
     * copied back and restarts the WAL from its start. */
    uint64_t tails = atomic_load(&s->ckpt.tails);
    commit_one(t, i++);
    commit_one(t, i++);
    assert_int_equal(atomic_load(&s->ckpt.tails), tails + 1);
    assert_true(atomic_load(&s->ckpt.last_frames) < 20);
    /* Many commits: few checkpoints, never more tails than runs. */
    enum { N = 3000 };
    for (int j = 0; j < N; j++)
        commit_one(t, i++);
    uint64_t runs = atomic_load(&s->ckpt.runs);
    tails = atomic_load(&s->ckpt.tails);
    printf("%d commits: %llu background checkpoints, %llu tails, %llu forced\n", i,
           (unsigned long long)runs, (unsigned long long)tails,
           (unsigned long long)atomic_load(&s->ckpt.forced));
    assert_true(runs < N / 20); /* was about one per commit */
    assert_true(tails <= runs);
    int64_t n = 0;
    assert_int_equal(nana_kv_len(t, &n), 0);
    assert_true(n > 0);
    assert_int_equal(nana_store_close(s), 0);
    test_db_remove(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checkpoint_restarts_wal),
        cmocka_unit_test(test_group_commit_and_isolation),
        cmocka_unit_test(test_atomic_increment),
        cmocka_unit_test(test_bounded_queue_and_foreign_lock),
        cmocka_unit_test(test_disk_full_under_load),
        cmocka_unit_test(test_async_set),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
