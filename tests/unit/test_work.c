/*
 * test_work.c - the worker pool's deadline thread (src/core/work.c).
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

#include "core/nana_work.h"
#include "util/nana_time.h"

#include <stdatomic.h>
#include <time.h>

typedef struct tjob {
    nana_job base; /* first */
    atomic_int expired;
    atomic_ullong expired_at;
} tjob;

static nana_work *current; /* the pool of the running test, for expire() */

static void tjob_expire(nana_job *j, nana_expiry why)
{
    (void)why;
    tjob *t = (tjob *)j;
    /* Never under the pool's lock: this would deadlock if it were. */
    (void)nana_work_pending(current);
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
    current = w;
    struct timespec settle = {0, 100000000L}; /* the thread is asleep by now */
    nanosleep(&settle, NULL);
    for (int round = 0; round < 3; round++) {
        tjob t = {0};
        t.base.expire = tjob_expire;
        uint64_t t0 = nana_now_ns();
        t.base.deadline = t0 + 50000000ull;
        assert_int_equal(nana_work_track(w, &t.base), 0);
        wait_expired(&t, 3000000000ull);
        assert_int_equal(atomic_load(&t.expired), 1);
        uint64_t late = atomic_load(&t.expired_at) - t0;
        assert_true(late >= 50000000ull);
        assert_true(late < 600000000ull); /* the next idle look is up to 1 s away */
        assert_int_equal(nana_work_finish(w, &t.base), NANA_FINISH_DROP); /* answered already */
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
    current = w;
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
    assert_int_equal(nana_work_track(w, &quick.base), 0);
    assert_int_equal(nana_work_finish(w, &quick.base), NANA_FINISH_ANSWER); /* in time */
    wait_expired(&queued, 3000000000ull);
    assert_int_equal(atomic_load(&queued.expired), 1);
    assert_true(atomic_load(&queued.expired_at) - t0 < 600000000ull);
    struct timespec ts = {0, 200000000L};
    nanosleep(&ts, NULL);
    assert_int_equal(atomic_load(&quick.expired), 0);
    assert_int_equal(atomic_load(&busy.expired), 1); /* answered while it still runs */
    assert_true(atomic_load(&busy.expired_at) - t0 < 600000000ull);
    nana_work_stop(w); /* waits for the busy job */
    assert_int_equal(nana_work_finish(w, &busy.base), NANA_FINISH_DROP); /* dropped */
    nana_work_free(w);
}

/* Each job has its own deadline: a job made later with an earlier deadline
 * is answered first, at its own time (a sorted list in arrival order would
 * make it wait for the first). */
static void test_own_deadlines(void **state)
{
    (void)state;
    nana_work *w;
    assert_int_equal(nana_work_new(1, 16, &w), 0);
    current = w;
    tjob slow = {0}, fast = {0};
    uint64_t t0 = nana_now_ns();
    slow.base.expire = fast.base.expire = tjob_expire;
    slow.base.deadline = t0 + 2000000000ull;
    fast.base.deadline = t0 + 60000000ull;
    assert_int_equal(nana_work_track(w, &slow.base), 0);
    assert_int_equal(nana_work_track(w, &fast.base), 0);
    wait_expired(&fast, 3000000000ull);
    assert_int_equal(atomic_load(&fast.expired), 1);
    assert_true(atomic_load(&fast.expired_at) - t0 < 600000000ull);
    assert_int_equal(atomic_load(&slow.expired), 0);
    assert_int_equal(nana_work_finish(w, &slow.base), NANA_FINISH_ANSWER);
    assert_int_equal(nana_work_finish(w, &fast.base), NANA_FINISH_DROP);
    nana_work_stop(w);
    nana_work_free(w);
}

/* A running job that finishes while its expire() still runs: the owner
 * hears late() once expire() returned, never before. */
typedef struct ljob {
    nana_job base;
    atomic_int in_expire, expire_done, late, late_after_expire;
} ljob;

static void ljob_expire(nana_job *j, nana_expiry why)
{
    ljob *l = (ljob *)j;
    assert_int_equal(why, NANA_EXPIRE_RUNNING);
    atomic_store(&l->in_expire, 1);
    struct timespec ts = {0, 300000000L}; /* the job finishes meanwhile */
    nanosleep(&ts, NULL);
    atomic_store(&l->expire_done, 1);
}

static void ljob_late(nana_job *j)
{
    ljob *l = (ljob *)j;
    atomic_store(&l->late_after_expire, atomic_load(&l->expire_done));
    atomic_store(&l->late, 1);
}

static void test_late_finish(void **state)
{
    (void)state;
    nana_work *w;
    assert_int_equal(nana_work_new(1, 16, &w), 0);
    current = w;
    ljob l = {0};
    l.base.expire = ljob_expire;
    l.base.late = ljob_late;
    l.base.deadline = nana_now_ns() + 30000000ull;
    assert_int_equal(nana_work_track(w, &l.base), 0);
    for (int i = 0; i < 3000 && !atomic_load(&l.in_expire); i++) {
        struct timespec ts = {0, 1000000L};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(atomic_load(&l.in_expire), 1);
    assert_int_equal(nana_work_finish(w, &l.base), NANA_FINISH_LATER);
    for (int i = 0; i < 3000 && !atomic_load(&l.late); i++) {
        struct timespec ts = {0, 1000000L};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(atomic_load(&l.late), 1);
    assert_int_equal(atomic_load(&l.late_after_expire), 1);
    nana_work_stop(w);
    nana_work_free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_short_deadline_wakes_the_thread),
        cmocka_unit_test(test_queued_and_finished_jobs),
        cmocka_unit_test(test_own_deadlines),
        cmocka_unit_test(test_late_finish),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
