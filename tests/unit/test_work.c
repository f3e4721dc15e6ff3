/*
 * test_work.c - the worker pool's deadline thread (src/server/work.c).
 *
 * The deadline thread sleeps until its next look (at most a second ahead)
 * and is woken only for a job whose deadline comes sooner. These tests
 * check the consequence that matters: a tracked or queued job with a short
 * deadline is answered near its deadline, not when the thread happens to
 * look again, and a job that finishes in time is never expired.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "server/server_int.h"

#include <stdatomic.h>
#include <time.h>

typedef struct tjob {
    nana_job base; /* first */
    atomic_int expired;
    atomic_ullong expired_at;
} tjob;

static void tjob_expire(nana_job *j, bool cancelled)
{
    (void)cancelled;
    tjob *t = (tjob *)j;
    atomic_store(&t->expired_at, nana_now_ns());
    atomic_fetch_add(&t->expired, 1);
}

/* A job that blocks its worker for 1.5 s (longer than any deadline here). */
static void tjob_run_slow(nana_job *j)
{
    struct timespec ts = {1, 500000000L};
    nanosleep(&ts, NULL);
    (void)j;
}

static void wait_expired(tjob *t, uint64_t limit_ns)
{
    uint64_t end = nana_now_ns() + limit_ns;
    while (!atomic_load(&t->expired) && nana_now_ns() < end) {
        struct timespec ts = {0, 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* A tracked job (an async write) with a 50 ms deadline, made while the
 * deadline thread sleeps for up to a second: answered in well under that. */
static void test_short_deadline_wakes_the_thread(void **state)
{
    (void)state;
    nana_work *w;
    assert_int_equal(nana_work_new(1, 16, &w), 0);
    struct timespec settle = {0, 100000000L}; /* the thread is asleep by now */
    nanosleep(&settle, NULL);
    for (int round = 0; round < 3; round++) {
        tjob t = {0};
        t.base.expire = tjob_expire;
        uint64_t t0 = nana_now_ns();
        t.base.deadline = t0 + 50000000ull;
        nana_work_track(w, &t.base);
        wait_expired(&t, 3000000000ull);
        assert_int_equal(atomic_load(&t.expired), 1);
        uint64_t late = atomic_load(&t.expired_at) - t0;
        assert_true(late >= 50000000ull);
        assert_true(late < 600000000ull);           /* the next idle look is up to 1 s away */
        assert_false(nana_work_finish(w, &t.base)); /* the deadline answered it */
    }
    nana_work_stop(w);
    nana_work_free(w);
}

/* Deadlines in arrival order, as the server makes them (one timeout for
 * every call): a running job and the job queued behind it are both
 * answered at their deadlines, the queued one cancelled; a tracked job that
 * finishes first is not expired at all. */
static void test_queued_and_finished_jobs(void **state)
{
    (void)state;
    nana_work *w;
    assert_int_equal(nana_work_new(1, 16, &w), 0);
    tjob busy = {0}, queued = {0}, quick = {0};
    uint64_t t0 = nana_now_ns();
    busy.base.run = tjob_run_slow;
    busy.base.expire = tjob_expire;
    busy.base.deadline = t0 + 70000000ull;
    assert_int_equal(nana_work_submit(w, &busy.base), 0);
    queued.base.run = tjob_run_slow;
    queued.base.expire = tjob_expire;
    queued.base.deadline = t0 + 80000000ull;
    assert_int_equal(nana_work_submit(w, &queued.base), 0);
    quick.base.expire = tjob_expire;
    quick.base.deadline = t0 + 90000000ull;
    nana_work_track(w, &quick.base);
    assert_true(nana_work_finish(w, &quick.base)); /* in time: the owner answers */
    wait_expired(&queued, 3000000000ull);
    assert_int_equal(atomic_load(&queued.expired), 1);
    assert_true(atomic_load(&queued.expired_at) - t0 < 600000000ull);
    struct timespec ts = {0, 200000000L};
    nanosleep(&ts, NULL);
    assert_int_equal(atomic_load(&quick.expired), 0);
    assert_int_equal(atomic_load(&busy.expired), 1); /* answered while it still runs */
    assert_true(atomic_load(&busy.expired_at) - t0 < 600000000ull);
    nana_work_stop(w);                             /* waits for the busy job */
    assert_false(nana_work_finish(w, &busy.base)); /* its late result is dropped */
    nana_work_free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_short_deadline_wakes_the_thread),
        cmocka_unit_test(test_queued_and_finished_jobs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
