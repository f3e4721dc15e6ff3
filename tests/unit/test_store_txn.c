/*
 * test_store_txn.c - explicit transactions belong to the thread that began
 * them: other threads' writes wait for the end and are never swallowed by
 * its rollback, other threads read committed data meanwhile, asynchronous
 * writes inside it complete at commit or fail at rollback.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "store_fixture.h"

#include <pthread.h>
#include <stdatomic.h>

static int setup(void **state)
{
    return fixture_open(state, "txn");
}

static int teardown(void **state)
{
    return fixture_close(state);
}

typedef struct other {
    pthread_t th;
    nana_table *t;
    nana_store *s;
    atomic_int phase; /* 1 started, 2 write returned */
    int rc_write, rc_commit, rc_rollback, in_txn;
    char seen[64];
} other;

/* Another thread: reads (committed data), tries to end the transaction it
 * does not own, then writes (which must wait for the transaction). */
static void *other_main(void *arg)
{
    other *o = arg;
    nana_val *v = NULL;
    if (nana_kv_get(o->t, K("shared"), &v) == 0) {
        snprintf(o->seen, sizeof(o->seen), "%s", v->data);
        nana_val_unref(v);
    }
    o->in_txn = nana_store_in_transaction(o->s);
    o->rc_commit = nana_store_commit(o->s);
    o->rc_rollback = nana_store_rollback(o->s);
    atomic_store(&o->phase, 1);
    o->rc_write = nana_kv_set(o->t, K("from_other"), K("\"other\""));
    atomic_store(&o->phase, 2);
    return NULL;
}

static void test_other_threads_wait_and_survive_rollback(void **state)
{
    fixture *f = *state;
    assert_int_equal(nana_kv_set(f->t, K("shared"), K("\"committed\"")), 0);
    assert_int_equal(nana_store_begin(f->s), 0);
    assert_int_equal(nana_kv_set(f->t, K("shared"), K("\"uncommitted\"")), 0);
    expect_get(f->t, "shared", "\"uncommitted\""); /* the owner sees its writes */

    other o = {.t = f->t, .s = f->s};
    assert_int_equal(pthread_create(&o.th, NULL, other_main, &o), 0);
    for (int i = 0; i < 500 && atomic_load(&o.phase) < 1; i++)
        usleep(2000);
    usleep(50000); /* give the other write time to (wrongly) complete */
    assert_int_equal(atomic_load(&o.phase), 1);   /* its write is waiting */
    assert_string_equal(o.seen, "\"committed\""); /* it read committed data */
    assert_int_equal(o.in_txn, 0);
    assert_int_equal(o.rc_commit, NANA_ERR_TXN);
    assert_int_equal(o.rc_rollback, NANA_ERR_TXN);

    assert_int_equal(nana_store_rollback(f->s), 0);
    pthread_join(o.th, NULL);
    assert_int_equal(o.rc_write, 0);
    expect_get(f->t, "shared", "\"committed\"");
    expect_get(f->t, "from_other", "\"other\""); /* not swallowed by the rollback */
}

static void test_commit_is_visible_to_all(void **state)
{
    fixture *f = *state;
    assert_int_equal(nana_kv_set(f->t, K("a"), K("1")), 0);
    expect_get(f->t, "a", "1"); /* cached */
    assert_int_equal(nana_store_begin(f->s), 0);
    assert_int_equal(nana_store_in_transaction(f->s), 1);
    assert_int_equal(nana_kv_set(f->t, K("a"), K("2")), 0);
    assert_int_equal(nana_kv_delete(f->t, K("a")), 0);
    assert_int_equal(nana_kv_set(f->t, K("a"), K("3")), 0);
    nana_kv_pair p[] = {{K("b"), K("[1]")}};
    assert_int_equal(nana_kv_batch_update(f->t, p, 1), 0);
    assert_int_equal(nana_store_commit(f->s), 0);
    assert_int_equal(nana_store_in_transaction(f->s), 0);
    expect_get(f->t, "a", "3");
    expect_get(f->t, "b", "[1]");
}

typedef struct async_result {
    atomic_int calls;
    atomic_int rc;
} async_result;

static void on_done(void *arg, int rc, const char *errmsg)
{
    (void)errmsg;
    async_result *r = arg;
    atomic_store(&r->rc, rc);
    atomic_fetch_add(&r->calls, 1);
}

static void wait_calls(async_result *r, int n)
{
    for (int i = 0; i < 2000 && atomic_load(&r->calls) < n; i++)
        usleep(1000);
}

static void test_async_inside_transaction(void **state)
{
    fixture *f = *state;
    async_result r1 = {0}, r2 = {0};
    assert_int_equal(nana_store_begin(f->s), 0);
    assert_int_equal(nana_kv_set_async(f->t, K("x"), K("1"), on_done, &r1), 0);
    usleep(50000);
    assert_int_equal(atomic_load(&r1.calls), 0); /* not before the commit */
    expect_get(f->t, "x", "1");                  /* but it ran inside */
    assert_int_equal(nana_store_commit(f->s), 0);
    wait_calls(&r1, 1);
    assert_int_equal(atomic_load(&r1.calls), 1);
    assert_int_equal(atomic_load(&r1.rc), 0);

    assert_int_equal(nana_store_begin(f->s), 0);
    assert_int_equal(nana_kv_set_async(f->t, K("y"), K("1"), on_done, &r2), 0);
    expect_get(f->t, "y", "1");
    assert_int_equal(nana_store_rollback(f->s), 0);
    wait_calls(&r2, 1);
    assert_int_equal(atomic_load(&r2.calls), 1);
    assert_int_equal(atomic_load(&r2.rc), NANA_ERR_TXN);
    nana_val *v;
    assert_int_equal(nana_kv_get(f->t, K("y"), &v), NANA_ERR_NOTFOUND);
}

typedef struct beginner {
    pthread_t th;
    nana_store *s;
    nana_table *t;
    atomic_int began;
    int rc;
} beginner;

static void *begin_main(void *arg)
{
    beginner *b = arg;
    int rc = nana_store_begin(b->s); /* waits for the first transaction */
    atomic_store(&b->began, 1);
    if (!rc) rc = nana_kv_set(b->t, K("second"), K("2"));
    if (!rc) rc = nana_store_commit(b->s);
    b->rc = rc;
    return NULL;
}

/* A second thread's begin waits for the first transaction to end. */
static void test_second_begin_waits(void **state)
{
    fixture *f = *state;
    assert_int_equal(nana_store_begin(f->s), 0);
    beginner b = {.s = f->s, .t = f->t};
    assert_int_equal(pthread_create(&b.th, NULL, begin_main, &b), 0);
    usleep(50000);
    assert_int_equal(atomic_load(&b.began), 0);
    assert_int_equal(nana_kv_set(f->t, K("first"), K("1")), 0);
    assert_int_equal(nana_store_commit(f->s), 0);
    pthread_join(b.th, NULL);
    assert_int_equal(b.rc, 0);
    expect_get(f->t, "first", "1");
    expect_get(f->t, "second", "2");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_other_threads_wait_and_survive_rollback, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_commit_is_visible_to_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_async_inside_transaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_begin_waits, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
