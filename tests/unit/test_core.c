/*
 * test_core.c - the call core alone, with a fake door: a door that hands
 * the core arguments already bound and records each answer and release.
 * No wire format, no network: what the core decides (policy, rate,
 * shutdown), where it answers (at once from the cache, later from a
 * worker or the store's writer), deadlines (a call answered at its own
 * deadline, one still queued never run, a late result dropped), overload,
 * and that every started call is answered exactly once and released
 * exactly once, after its answer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/nana_core.h"
#include "test_util.h"
#include "util/nana_time.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- the fake door ----------------------------------------------------------- */

/* A call of the fake door: its arguments, given already bound. */
typedef struct fcall {
    nana_core_call call; /* first */
    nana_args preset;
    int nargs;
    atomic_int answered, released, released_before_answer;
    atomic_ullong answered_at;
    nana_error err; /* the answer, copied */
    nana_core_result_kind kind;
    bool b;
    int64_t i;
    char val[256];
} fcall;

static int f_bind(const nana_core_call *c, const nana_bind_spec *spec, unsigned max_depth,
                  nana_arena *arena, nana_args *out, nana_error *err)
{
    (void)max_depth;
    (void)arena;
    const fcall *f = (const fcall *)(const void *)c;
    if (f->nargs < 0)
        return nana_error_setf(err, NANA_ERR_TYPE, "%s() takes no such arguments", spec->name);
    *out = f->preset;
    return NANA_OK;
}

static void f_answer(nana_core_call *c)
{
    fcall *f = (fcall *)(void *)c;
    f->err = c->err;
    f->kind = c->res.kind;
    f->b = c->res.b;
    f->i = c->res.i;
    if (c->res.kind == NANA_RES_VAL)
        snprintf(f->val, sizeof(f->val), "%.*s", (int)c->res.v->len, c->res.v->data);
    nana_core_result_clear(&c->res);
    atomic_store(&f->answered_at, nana_now_ns());
    atomic_fetch_add(&f->answered, 1);
}

static void f_release(nana_core_call *c)
{
    fcall *f = (fcall *)(void *)c;
    if (!atomic_load(&f->answered)) atomic_store(&f->released_before_answer, 1);
    atomic_fetch_add(&f->released, 1);
}

/* The wire form of the fake door: the JSON text in brackets. */
static int f_encode(nana_buf *out, const char *json, size_t len)
{
    int rc = nana_buf_putc(out, '<');
    if (!rc) rc = nana_buf_append(out, json, len);
    if (!rc) rc = nana_buf_putc(out, '>');
    return rc;
}

static const nana_door_ops fake_ops = {f_bind, NULL, f_answer, f_release, f_encode, 7};

/* A call of |method| with string arguments |a0|, |a1| (NULL: absent). */
static void fcall_init(fcall *f, const char *method, const char *a0, const char *a1)
{
    memset(f, 0, sizeof(*f));
    f->call.door = &fake_ops;
    f->call.method = method;
    f->call.mlen = (uint32_t)strlen(method);
    f->call.m = nana_method_find(method, strlen(method));
    const char *a[2] = {a0, a1};
    for (int i = 0; i < 2; i++) {
        if (!a[i]) continue;
        f->preset.a[i] = (nana_arg){.s = a[i], .n = strlen(a[i]), .set = true};
        f->nargs = i + 1;
    }
}

/* Waits (bounded) until |f| was answered and released. */
static void wait_done(fcall *f)
{
    for (int i = 0; i < 10000 && !(atomic_load(&f->answered) && atomic_load(&f->released)); i++) {
        struct timespec ts = {0, 1000000L};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(atomic_load(&f->answered), 1);
    assert_int_equal(atomic_load(&f->released), 1);
    assert_int_equal(atomic_load(&f->released_before_answer), 0);
}

/* Runs |f| through both steps: answered at once, or started and waited for.
 * Returns NANA_CORE_DONE or NANA_CORE_QUEUE. */
static int run(nana_core *core, fcall *f)
{
    int done = nana_core_try(core, &f->call, NULL);
    if (done == NANA_CORE_DONE) {
        f->err = f->call.err;
        f->kind = f->call.res.kind;
        f->b = f->call.res.b;
        if (f->call.res.kind == NANA_RES_VAL)
            snprintf(f->val, sizeof(f->val), "%s", f->call.res.v->data);
        nana_core_result_clear(&f->call.res);
        return done;
    }
    nana_core_start(core, &f->call);
    wait_done(f);
    return done;
}

/* ---- a core on a scratch directory ------------------------------------------------ */

typedef struct env {
    char dir[512], db[600];
    nana_core *core;
} env;

static void core_up(env *e, const char *name, void (*tweak)(nana_core_opts *))
{
    const char *tmp = getenv("NANA_TEST_TMP");
    snprintf(e->dir, sizeof(e->dir), "%s/core-%s-%d", tmp && *tmp ? tmp : "/tmp", name,
             (int)getpid());
    char cmd[1300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s' && mkdir -p '%s'", e->dir, e->dir);
    assert_int_equal(system(cmd), 0);
    snprintf(e->db, sizeof(e->db), "%s/main.sqlite", e->dir);
    nana_core_opts o;
    nana_core_opts_init(&o);
    o.db_dir = e->dir;
    o.db_path = e->db;
    o.workers = 2;
    if (tweak) tweak(&o);
    if (nana_core_new(&o, &e->core)) fail_msg("core: %s", nana_errmsg());
}

static void core_down(env *e)
{
    assert_int_equal(nana_core_stop(e->core), 0);
    nana_core_free(e->core);
    char cmd[1300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->dir);
    assert_int_equal(system(cmd), 0);
}

/* ---- tests ---------------------------------------------------------------------- */

/* A write goes to the store's writer and a worker answers the read after
 * it; once the table is open, a cached read is answered at once, in the
 * door's own wire form (kept by the cache) when the door gives a buffer. */
static void test_calls_and_fast_paths(void **state)
{
    (void)state;
    env e;
    core_up(&e, "paths", NULL);
    fcall f;
    fcall_init(&f, "__setitem__", "k", "\"v1\"");
    assert_int_equal(run(e.core, &f), NANA_CORE_QUEUE);
    assert_int_equal(f.err.code, 0);
    assert_int_equal(f.kind, NANA_RES_NIL);
    /* The table is open now: the next write takes the async path, the read
     * after it the cache. */
    fcall_init(&f, "__setitem__", "k", "\"v2\"");
    assert_int_equal(run(e.core, &f), NANA_CORE_QUEUE);
    assert_int_equal(f.err.code, 0);
    fcall_init(&f, "__getitem__", "k", NULL);
    assert_int_equal(run(e.core, &f), NANA_CORE_DONE);
    assert_int_equal(f.err.code, 0);
    assert_int_equal(f.kind, NANA_RES_VAL);
    assert_string_equal(f.val, "\"v2\"");
    nana_buf enc;
    nana_buf_init(&enc, 0);
    assert_int_equal(nana_buf_puts(&enc, "reply:"), 0);
    fcall_init(&f, "__getitem__", "k", NULL);
    assert_int_equal(nana_core_try(e.core, &f.call, &enc), NANA_CORE_DONE);
    assert_int_equal(f.call.res.kind, NANA_RES_ENCODED);
    assert_string_equal(enc.data, "reply:<\"v2\">");
    nana_buf_free(&enc);
    fcall_init(&f, "__contains__", "k", NULL);
    assert_int_equal(run(e.core, &f), NANA_CORE_DONE);
    assert_int_equal(f.kind, NANA_RES_BOOL);
    assert_true(f.b);
    /* A miss goes to a worker, which says KeyError with Python's repr. */
    fcall_init(&f, "__getitem__", "nope", NULL);
    assert_int_equal(run(e.core, &f), NANA_CORE_QUEUE);
    assert_int_equal(f.err.code, NANA_ERR_NOTFOUND);
    assert_string_equal(f.err.msg, "'nope'");
    /* Arguments that do not bind: the door's error, at once for a cached read. */
    fcall_init(&f, "__getitem__", "k", NULL);
    f.nargs = -1;
    assert_int_equal(run(e.core, &f), NANA_CORE_DONE);
    assert_int_equal(f.err.code, NANA_ERR_TYPE);
    fcall_init(&f, "__len__", NULL, NULL);
    assert_int_equal(run(e.core, &f), NANA_CORE_QUEUE);
    assert_int_equal(f.kind, NANA_RES_INT);
    nana_core_stats st;
    nana_core_get_stats(e.core, &st);
    assert_true(st.cache_answers >= 3);
    core_down(&e);
}

/* Policy and refusals are answered at once, never started. */
static void test_refusals(void **state)
{
    (void)state;
    env e;
    core_up(&e, "refuse", NULL);
    fcall f;
    fcall_init(&f, "execute", "SELECT 1", NULL);
    assert_int_equal(run(e.core, &f), NANA_CORE_DONE);
    assert_int_equal(f.err.code, NANA_ERR_PERM);
    assert_string_equal(f.err.msg, "Method 'execute' is forbidden or invalid");
    fcall_init(&f, "_private", NULL, NULL);
    assert_int_equal(run(e.core, &f), NANA_CORE_DONE);
    assert_int_equal(f.err.code, NANA_ERR_PERM);
    fcall_init(&f, "no_such_method", NULL, NULL);
    assert_int_equal(run(e.core, &f), NANA_CORE_DONE);
    assert_int_equal(f.err.code, NANA_ERR_PERM);
    /* From 0-RTT data only methods safe to replay run. */
    fcall_init(&f, "__setitem__", "k", "1");
    f.call.early = true;
    assert_int_equal(run(e.core, &f), NANA_CORE_DONE);
    assert_int_equal(f.err.code, NANA_ERR_TOOEARLY);
    fcall_init(&f, "__len__", NULL, NULL);
    f.call.early = true;
    assert_int_equal(run(e.core, &f), NANA_CORE_QUEUE);
    assert_int_equal(f.err.code, 0);
    nana_core_drain(e.core);
    fcall_init(&f, "__len__", NULL, NULL);
    assert_int_equal(run(e.core, &f), NANA_CORE_DONE);
    assert_int_equal(f.err.code, NANA_ERR_SHUTDOWN);
    core_down(&e);
}

static void slow_workers(nana_core_opts *o)
{
    o->workers = 1;
    o->worker_delay_ms = 400;
    o->queue_limit = 2;
}

/* Each call's own deadline: a running call is answered at it (its late
 * result dropped), a queued one is answered and never runs; the queue's
 * limit answers "busy" at once. */
static void test_deadlines_and_overload(void **state)
{
    (void)state;
    env e;
    core_up(&e, "deadline", slow_workers);
    fcall f;
    fcall_init(&f, "__setitem__", "victim", "1");
    assert_int_equal(run(e.core, &f), NANA_CORE_QUEUE);
    assert_int_equal(f.err.code, 0);
    fcall running, queued, over, later;
    uint64_t t0 = nana_now_ns();
    fcall_init(&running, "__len__", NULL, NULL);
    running.call.deadline = t0 + 100000000ull; /* 100 ms; the worker takes 400 */
    assert_int_equal(nana_core_try(e.core, &running.call, NULL), NANA_CORE_QUEUE);
    nana_core_start(e.core, &running.call);
    /* the worker has taken it (and sleeps 400 ms in it): 150 ms, since
     * 30 ms were too few on a machine running other tests at once */
    struct timespec ts = {0, 150000000L};
    nanosleep(&ts, NULL);
    fcall_init(&queued, "__delitem__", "victim", NULL);
    queued.call.deadline = t0 + 150000000ull;
    fcall_init(&later, "__len__", NULL, NULL);
    later.call.deadline = t0 + 5000000000ull;
    assert_int_equal(nana_core_try(e.core, &queued.call, NULL), NANA_CORE_QUEUE);
    assert_int_equal(nana_core_try(e.core, &later.call, NULL), NANA_CORE_QUEUE);
    nana_core_start(e.core, &queued.call);
    nana_core_start(e.core, &later.call);
    fcall_init(&over, "__len__", NULL, NULL);
    assert_int_equal(nana_core_try(e.core, &over.call, NULL), NANA_CORE_QUEUE);
    nana_core_start(e.core, &over.call); /* the queue holds 2 */
    wait_done(&over);
    assert_int_equal(over.err.code, NANA_ERR_OVERLOAD);
    wait_done(&queued);
    assert_int_equal(queued.err.code, NANA_ERR_TIMEOUT);
    assert_true(atomic_load(&queued.answered_at) - t0 < 400000000ull); /* before any ran */
    wait_done(&running);
    assert_int_equal(running.err.code, NANA_ERR_TIMEOUT);
    assert_true(atomic_load(&running.answered_at) - t0 < 400000000ull);
    wait_done(&later);
    assert_int_equal(later.err.code, 0);
    /* The queued delete never ran. */
    fcall_init(&f, "__contains__", "victim", NULL);
    run(e.core, &f);
    assert_int_equal(f.err.code, 0);
    assert_true(f.b);
    nana_core_stats st;
    nana_core_get_stats(e.core, &st);
    assert_int_equal(st.timeouts, 2);
    assert_int_equal(st.busy, 1);
    core_down(&e);
}

/* A call a worker took whose deadline passed before its method began (the
 * worker was slow to get to it) never begins: a delete answered "timed
 * out" leaves the key there. */
static void test_late_start_never_runs(void **state)
{
    (void)state;
    env e;
    core_up(&e, "latestart", slow_workers);
    fcall f;
    fcall_init(&f, "__setitem__", "kept", "1");
    assert_int_equal(run(e.core, &f), NANA_CORE_QUEUE);
    assert_int_equal(f.err.code, 0);
    fcall del;
    fcall_init(&del, "__delitem__", "kept", NULL);
    del.call.deadline = nana_now_ns() + 100000000ull; /* 100 ms; the worker first sleeps 400 */
    assert_int_equal(nana_core_try(e.core, &del.call, NULL), NANA_CORE_QUEUE);
    nana_core_start(e.core, &del.call);
    wait_done(&del);
    assert_int_equal(del.err.code, NANA_ERR_TIMEOUT);
    struct timespec ts = {0, 500000000L}; /* the worker is past its sleep */
    nanosleep(&ts, NULL);
    fcall_init(&f, "__contains__", "kept", NULL);
    run(e.core, &f);
    assert_int_equal(f.err.code, 0);
    assert_true(f.b);
    core_down(&e);
}

static void short_timeout(nana_core_opts *o)
{
    o->workers = 1;
    o->worker_delay_ms = 400;
    o->call_timeout_ms = 100;
}

/* A door's deadline later than the core's call timeout is cut to it: a
 * client cannot make a call hold the core longer than the server allows. */
static void test_deadline_capped(void **state)
{
    (void)state;
    env e;
    core_up(&e, "capped", short_timeout);
    fcall f;
    uint64_t t0 = nana_now_ns();
    fcall_init(&f, "__len__", NULL, NULL);
    f.call.deadline = t0 + 10000000000ull; /* 10 s; the core allows 100 ms */
    assert_int_equal(nana_core_try(e.core, &f.call, NULL), NANA_CORE_QUEUE);
    nana_core_start(e.core, &f.call);
    wait_done(&f);
    assert_int_equal(f.err.code, NANA_ERR_TIMEOUT);
    assert_true(atomic_load(&f.answered_at) - t0 < 400000000ull); /* before the worker ended */
    core_down(&e);
}

/* A caller that gives up: a queued call is taken out, answered at once and
 * never runs (a delete that stays undone); a running one cannot be. */
static void test_cancel(void **state)
{
    (void)state;
    env e;
    core_up(&e, "cancel", slow_workers);
    fcall f;
    fcall_init(&f, "__setitem__", "kept", "1");
    assert_int_equal(run(e.core, &f), NANA_CORE_QUEUE);
    fcall running, queued;
    fcall_init(&running, "__len__", NULL, NULL);
    assert_int_equal(nana_core_try(e.core, &running.call, NULL), NANA_CORE_QUEUE);
    nana_core_start(e.core, &running.call);
    /* the worker has taken it (and sleeps 400 ms in it): 150 ms, since
     * 30 ms were too few on a machine running other tests at once */
    struct timespec ts = {0, 150000000L};
    nanosleep(&ts, NULL);
    fcall_init(&queued, "__delitem__", "kept", NULL);
    assert_int_equal(nana_core_try(e.core, &queued.call, NULL), NANA_CORE_QUEUE);
    nana_core_start(e.core, &queued.call);
    assert_true(nana_core_cancel(e.core, &queued.call));
    assert_int_equal(atomic_load(&queued.answered), 1);
    assert_int_equal(atomic_load(&queued.released), 1);
    assert_int_equal(queued.err.code, NANA_ERR_CLOSED);
    assert_false(nana_core_cancel(e.core, &running.call));
    wait_done(&running);
    assert_int_equal(running.err.code, 0);
    fcall_init(&f, "__contains__", "kept", NULL);
    run(e.core, &f);
    assert_true(f.b); /* the cancelled delete never ran */
    core_down(&e);
}

/* Stopping answers what waits "shutting down", and it never runs. */
static void test_stop_answers_queued(void **state)
{
    (void)state;
    env e;
    core_up(&e, "stop", slow_workers);
    fcall a, b;
    fcall_init(&a, "__len__", NULL, NULL);
    fcall_init(&b, "keys", NULL, NULL);
    assert_int_equal(nana_core_try(e.core, &a.call, NULL), NANA_CORE_QUEUE);
    assert_int_equal(nana_core_try(e.core, &b.call, NULL), NANA_CORE_QUEUE);
    nana_core_start(e.core, &a.call);
    /* the worker has taken it (and sleeps 400 ms in it): 150 ms, since
     * 30 ms were too few on a machine running other tests at once */
    struct timespec ts = {0, 150000000L};
    nanosleep(&ts, NULL);
    nana_core_start(e.core, &b.call);
    assert_int_equal(nana_core_stop(e.core), 0);
    wait_done(&a);
    wait_done(&b);
    assert_int_equal(a.err.code, 0);
    assert_int_equal(b.err.code, NANA_ERR_SHUTDOWN);
    nana_core_free(e.core);
    char cmd[1300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e.dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_calls_and_fast_paths),   cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_deadlines_and_overload), cmocka_unit_test(test_late_start_never_runs),
        cmocka_unit_test(test_deadline_capped),        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_stop_answers_queued),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
