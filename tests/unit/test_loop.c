/*
 * test_loop.c - the event loop alone (src/loop): posts from many threads
 * run in order and are never lost, not even at shutdown (each runs or is
 * cancelled, exactly once); timers fire in order, move, stop and cannot spin
 * an iteration; descriptor sources, hooks, and failing system calls while
 * a loop is made. Every wait is bounded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "loop/loop_int.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Open file descriptors of this process (entries of /proc/self/fd). */
static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n - 1; /* the directory's own */
}

/* ---- posts from many threads ------------------------------------------ */

enum { POSTERS = 6, PER_POSTER = 20000 };

typedef struct tpost {
    struct nana_loop_post post; /* first */
    int thread, seq;
    atomic_int ran, drained;
} tpost;

typedef struct post_run {
    nana_loop *loop;
    tpost *posts; /* POSTERS * PER_POSTER */
    int last[POSTERS];
    long total;
    bool disorder, off_thread;
    atomic_int go;
} post_run;

static post_run *g_run;

/* On the loop: checks each poster's posts come in its order. Cancelled
 * (no loop): counts it. */
static void tpost_run(nana_loop *loop, struct nana_loop_post *p)
{
    tpost *t = (tpost *)p;
    if (!loop) {
        atomic_fetch_add(&t->drained, 1);
        return;
    }
    if (!nana_loop_on_thread(loop)) g_run->off_thread = true;
    if (t->seq != g_run->last[t->thread] + 1) g_run->disorder = true;
    g_run->last[t->thread] = t->seq;
    g_run->total++;
    atomic_fetch_add(&t->ran, 1);
}

typedef struct poster {
    post_run *r;
    int thread;
    bool open; /* nana_loop_post_open: stop at the first refusal */
    int accepted;
    int bad_refusal; /* a refusal that was not NANA_ERR_CLOSED */
} poster;

static void *poster_main(void *arg)
{
    poster *ps = arg;
    while (!atomic_load(&ps->r->go))
        sched_yield();
    for (int i = 0; i < PER_POSTER; i++) {
        tpost *t = &ps->r->posts[ps->thread * PER_POSTER + i];
        t->thread = ps->thread;
        t->seq = i;
        t->post.run = tpost_run;
        if (!ps->open) {
            nana_loop_post(ps->r->loop, &t->post);
        } else {
            int rc = nana_loop_post_open(ps->r->loop, &t->post);
            if (rc) {
                if (rc != NANA_ERR_CLOSED) ps->bad_refusal++;
                break;
            }
        }
        ps->accepted++;
    }
    return NULL;
}

static post_run *run_new(void)
{
    post_run *r = calloc(1, sizeof(*r));
    assert_non_null(r);
    r->posts = calloc((size_t)POSTERS * PER_POSTER, sizeof(*r->posts));
    assert_non_null(r->posts);
    for (int i = 0; i < POSTERS; i++)
        r->last[i] = -1;
    assert_int_equal(nana_loop_new("test-loop", &r->loop), 0);
    g_run = r;
    return r;
}

static void run_free(post_run *r)
{
    nana_loop_free(r->loop);
    free(r->posts);
    free(r);
    g_run = NULL;
}

static void stop_when_done(nana_loop *loop, nana_loop_hook *h)
{
    (void)h;
    if (g_run->total == (long)POSTERS * PER_POSTER) nana_loop_stop(loop);
}

/* Six threads post 20,000 posts each while the loop runs: every post runs
 * once, each thread's in its order. */
static void test_posts_many_threads(void **state)
{
    (void)state;
    post_run *r = run_new();
    nana_loop_hook h = {.fn = stop_when_done};
    nana_loop_hook_add(r->loop, &h);
    assert_int_equal(nana_loop_start(r->loop), 0);
    assert_int_equal(nana_loop_start(r->loop), NANA_ERR_INVALID);
    pthread_t th[POSTERS];
    poster ps[POSTERS];
    for (int i = 0; i < POSTERS; i++) {
        ps[i] = (poster){.r = r, .thread = i};
        assert_int_equal(pthread_create(&th[i], NULL, poster_main, &ps[i]), 0);
    }
    atomic_store(&r->go, 1);
    for (int i = 0; i < POSTERS; i++)
        pthread_join(th[i], NULL);
    nana_loop_join(r->loop); /* it stops itself once all ran */
    assert_false(r->disorder);
    assert_false(r->off_thread);
    assert_int_equal(r->total, (long)POSTERS * PER_POSTER);
    for (long i = 0; i < (long)POSTERS * PER_POSTER; i++)
        assert_int_equal(atomic_load(&r->posts[i].ran), 1);
    assert_int_equal(nana_loop_drain(r->loop), 0);
    run_free(r);
}

/* The loop stops while six threads keep posting: every post either ran on
 * the loop or was cancelled by nana_loop_drain, exactly once, and the ones
 * that ran ran in each thread's order. */
static void test_posts_at_shutdown(void **state)
{
    (void)state;
    post_run *r = run_new();
    assert_int_equal(nana_loop_start(r->loop), 0);
    pthread_t th[POSTERS];
    poster ps[POSTERS];
    for (int i = 0; i < POSTERS; i++) {
        ps[i] = (poster){.r = r, .thread = i};
        assert_int_equal(pthread_create(&th[i], NULL, poster_main, &ps[i]), 0);
    }
    atomic_store(&r->go, 1);
    usleep(2000);
    nana_loop_stop(r->loop);
    nana_loop_join(r->loop);
    for (int i = 0; i < POSTERS; i++)
        pthread_join(th[i], NULL);
    size_t drained = nana_loop_drain(r->loop);
    assert_false(r->disorder);
    for (long i = 0; i < (long)POSTERS * PER_POSTER; i++)
        assert_int_equal(atomic_load(&r->posts[i].ran) + atomic_load(&r->posts[i].drained), 1);
    assert_int_equal((long)drained + r->total, (long)POSTERS * PER_POSTER);
    printf("%ld posts ran, %zu drained\n", r->total, drained);
    /* A post after the end is kept for a drain; nana_loop_free drains too. */
    tpost late = {.post.run = tpost_run}, later = {.post.run = tpost_run};
    nana_loop_post(r->loop, &late.post);
    assert_int_equal(nana_loop_drain(r->loop), 1);
    assert_int_equal(atomic_load(&late.drained), 1);
    nana_loop_post(r->loop, &later.post);
    run_free(r);
    assert_int_equal(atomic_load(&later.drained), 1);
    assert_int_equal(atomic_load(&later.ran), 0);
}

/* nana_loop_post_open refuses once the loop was asked to stop, and every
 * post it accepted runs. */
static void test_post_open_after_stop(void **state)
{
    (void)state;
    post_run *r = run_new();
    assert_int_equal(nana_loop_start(r->loop), 0);
    pthread_t th[POSTERS];
    poster ps[POSTERS];
    for (int i = 0; i < POSTERS; i++) {
        ps[i] = (poster){.r = r, .thread = i, .open = true};
        assert_int_equal(pthread_create(&th[i], NULL, poster_main, &ps[i]), 0);
    }
    atomic_store(&r->go, 1);
    usleep(2000);
    nana_loop_stop(r->loop);
    for (int i = 0; i < POSTERS; i++)
        pthread_join(th[i], NULL);
    nana_loop_join(r->loop);
    long accepted = 0;
    for (int i = 0; i < POSTERS; i++) {
        accepted += ps[i].accepted;
        assert_int_equal(ps[i].bad_refusal, 0);
    }
    assert_int_equal(r->total, accepted);
    assert_int_equal(nana_loop_drain(r->loop), 0);
    tpost late = {.post.run = tpost_run};
    assert_int_equal(nana_loop_post_open(r->loop, &late.post), NANA_ERR_CLOSED);
    assert_int_equal(nana_loop_drain(r->loop), 0);
    run_free(r);
}

/* ---- running on the caller's thread, hooks ---------------------------- */

typedef struct order_log {
    char what[64];
    int n;
} order_log;

static order_log g_log;

static void log_char(char c)
{
    if (g_log.n < (int)sizeof(g_log.what) - 1) g_log.what[g_log.n++] = c;
}

static void hook_a(nana_loop *loop, nana_loop_hook *h)
{
    (void)loop;
    (void)h;
    log_char('a');
}

static void hook_b(nana_loop *loop, nana_loop_hook *h)
{
    (void)h;
    log_char('b');
    nana_loop_stop(loop); /* from the loop's own thread */
}

static void exit_hook(nana_loop *loop, nana_loop_hook *h)
{
    (void)loop;
    (void)h;
    log_char('x');
}

static void post_p(nana_loop *loop, struct nana_loop_post *p)
{
    (void)p;
    assert_true(nana_loop_on_thread(loop));
    log_char('p');
}

static void post_late(nana_loop *loop, struct nana_loop_post *p)
{
    (void)p;
    log_char(loop ? 'l' : 'c'); /* cancelled: 'c' */
}

/* The loop on the caller's thread: posts, then hooks in order once per
 * iteration, a stop from a hook, the posts queued by then, exit hooks. */
static void test_run_on_caller(void **state)
{
    (void)state;
    memset(&g_log, 0, sizeof(g_log));
    nana_loop *loop;
    assert_int_equal(nana_loop_new("caller", &loop), 0);
    assert_false(nana_loop_on_thread(loop));
    nana_loop_hook a = {.fn = hook_a}, b = {.fn = hook_b}, x = {.fn = exit_hook};
    nana_loop_hook_add(loop, &a);
    nana_loop_hook_add(loop, &b);
    nana_loop_exit_hook_add(loop, &x);
    struct nana_loop_post p = {.run = post_p};
    nana_loop_post(loop, &p);
    uint64_t t0 = nana_loop_clock();
    assert_int_equal(nana_loop_run(loop), 0);
    assert_true(nana_loop_now(loop) >= t0);
    assert_false(nana_loop_on_thread(loop));
    /* p ran first, then the hooks in order; b's stop ends the loop after
     * its iteration; then the exit hook. */
    assert_string_equal(g_log.what, "pabx");
    assert_int_equal(nana_loop_run(loop), NANA_ERR_INVALID); /* it does not run twice */
    struct nana_loop_post l = {.run = post_late};
    nana_loop_post(loop, &l);
    assert_int_equal(nana_loop_drain(loop), 1);
    assert_string_equal(g_log.what, "pabxc");
    nana_loop_hook_del(loop, &a);
    nana_loop_exit_hook_del(loop, &x);
    assert_ptr_equal(loop->hooks, &b);
    assert_null(loop->exit_hooks);
    nana_loop_free(loop);
}

/* ---- timers ------------------------------------------------------------- */

enum { NTIMERS = 2000 };

typedef struct ttimer {
    nana_loop_timer t;
    int fired;
} ttimer;

static ttimer g_timers[NTIMERS];
static uint64_t g_last_when;
static int g_fired, g_order_bad;

static void timer_fired(nana_loop *loop, nana_loop_timer *t)
{
    ttimer *tt = (ttimer *)t;
    if (t->when < g_last_when) g_order_bad++;
    if (t->when > nana_loop_now(loop)) g_order_bad++; /* early */
    assert_false(nana_loop_timer_armed(t));
    g_last_when = t->when;
    tt->fired++;
    g_fired++;
}

static void stop_hook(nana_loop *loop, nana_loop_hook *h)
{
    (void)h;
    nana_loop_stop(loop);
}

/* 2,000 timers armed, moved and disarmed in a random order (all due): the
 * armed ones fire once each, earliest first, and the disarmed never. */
static void test_timers_heap_order(void **state)
{
    (void)state;
    nana_loop *loop;
    assert_int_equal(nana_loop_new("timers", &loop), 0);
    uint64_t base = nana_loop_clock() - 10ull * 1000000000ull; /* all in the past */
    uint32_t rng = 12345;
    for (int i = 0; i < NTIMERS; i++) {
        nana_loop_timer_init(&g_timers[i].t, timer_fired);
        g_timers[i].fired = 0;
    }
    bool armed[NTIMERS] = {false};
    for (int op = 0; op < 20000; op++) {
        rng = rng * 1103515245u + 12345u;
        int i = (int)((rng >> 8) % NTIMERS);
        rng = rng * 1103515245u + 12345u;
        if ((rng >> 8) % 4 == 0) {
            nana_loop_timer_stop(loop, &g_timers[i].t);
            armed[i] = false;
        } else {
            nana_loop_timer_start(loop, &g_timers[i].t, base + (rng >> 12) % 1000000);
            armed[i] = true;
        }
        assert_int_equal(nana_loop_timer_armed(&g_timers[i].t), armed[i]);
    }
    int narmed = 0;
    for (int i = 0; i < NTIMERS; i++)
        narmed += armed[i];
    g_last_when = 0;
    g_fired = g_order_bad = 0;
    nana_loop_hook stop = {.fn = stop_hook};
    nana_loop_hook_add(loop, &stop);
    assert_int_equal(nana_loop_run(loop), 0);
    assert_int_equal(g_order_bad, 0);
    assert_int_equal(g_fired, narmed);
    for (int i = 0; i < NTIMERS; i++)
        assert_int_equal(g_timers[i].fired, armed[i] ? 1 : 0);
    assert_null(loop->timers);
    nana_loop_free(loop);
}

typedef struct self_timer {
    nana_loop_timer t;
    int fires;
    int iterations_seen;
} self_timer;

static int g_iterations;

static void rearm_past(nana_loop *loop, nana_loop_timer *t)
{
    self_timer *s = (self_timer *)t;
    s->fires++;
    s->iterations_seen = g_iterations;
    if (s->fires < 5) nana_loop_timer_start(loop, t, 0); /* already past */
}

static void count_iterations(nana_loop *loop, nana_loop_hook *h)
{
    (void)h;
    g_iterations++;
    if (g_iterations == 5) nana_loop_stop(loop); /* seen in the next iteration */
}

/* A timer that re-arms itself for a time already past fires once per
 * iteration, not forever within one. */
static void test_timer_rearm_past(void **state)
{
    (void)state;
    nana_loop *loop;
    assert_int_equal(nana_loop_new("rearm", &loop), 0);
    self_timer s = {0};
    nana_loop_timer_init(&s.t, rearm_past);
    nana_loop_timer_start(loop, &s.t, 1);
    nana_loop_hook h = {.fn = count_iterations};
    nana_loop_hook_add(loop, &h);
    g_iterations = 0;
    assert_int_equal(nana_loop_run(loop), 0);
    assert_int_equal(s.fires, 5);
    assert_int_equal(s.iterations_seen, 4); /* fired in iterations 0..4 */
    nana_loop_free(loop);
}

typedef struct wall_timer {
    nana_loop_timer t;
    uint64_t fired_at;
} wall_timer;

static void wall_fired(nana_loop *loop, nana_loop_timer *t)
{
    ((wall_timer *)t)->fired_at = nana_loop_now(loop);
    nana_loop_stop(loop);
}

static void never_fires(nana_loop *loop, nana_loop_timer *t)
{
    (void)loop;
    (void)t;
    fail_msg("a stopped timer fired");
}

/* A timer 30 ms ahead wakes an idle loop no earlier than asked; one moved
 * later and one stopped do not fire first. */
static void test_timer_wakes_idle_loop(void **state)
{
    (void)state;
    nana_loop *loop;
    assert_int_equal(nana_loop_new("wall", &loop), 0);
    uint64_t now = nana_loop_clock();
    wall_timer w = {0}, moved = {0};
    nana_loop_timer stopped;
    nana_loop_timer_init(&w.t, wall_fired);
    nana_loop_timer_init(&moved.t, never_fires);
    nana_loop_timer_init(&stopped, never_fires);
    nana_loop_timer_start(loop, &moved.t, now + 1000000);
    nana_loop_timer_start(loop, &moved.t, now + 60ull * 1000000000ull);
    nana_loop_timer_start(loop, &stopped, now + 2000000);
    nana_loop_timer_stop(loop, &stopped);
    nana_loop_timer_stop(loop, &stopped); /* twice: nothing */
    nana_loop_timer_start(loop, &w.t, now + 30000000);
    assert_int_equal(nana_loop_run(loop), 0);
    assert_true(w.fired_at >= now + 30000000);
    assert_true(nana_loop_timer_armed(&moved.t));
    nana_loop_free(loop);
}

/* ---- descriptor sources ------------------------------------------------ */

typedef struct pipe_src {
    nana_loop_fd src; /* first */
    int pfd[2];
    int calls;
    struct pipe_src *other; /* deleted by this one's callback */
} pipe_src;

static void pipe_readable(nana_loop *loop, nana_loop_fd *src, uint32_t events)
{
    pipe_src *p = (pipe_src *)src;
    assert_true(events & EPOLLIN);
    p->calls++;
    char buf[16];
    assert_true(read(p->pfd[0], buf, sizeof(buf)) > 0);
    if (p->other) assert_int_equal(nana_loop_fd_del(loop, &p->other->src), 0);
    nana_loop_stop(loop);
}

typedef struct writer_arg {
    int fd;
    atomic_int done;
} writer_arg;

static void *write_later(void *arg)
{
    writer_arg *w = arg;
    usleep(10000);
    assert_int_equal(write(w->fd, "x", 1), 1);
    atomic_store(&w->done, 1);
    return NULL;
}

/* A pipe written by another thread wakes the loop's thread. */
static void test_fd_source(void **state)
{
    (void)state;
    nana_loop *loop;
    assert_int_equal(nana_loop_new("fd", &loop), 0);
    pipe_src p = {0};
    assert_int_equal(pipe(p.pfd), 0);
    assert_int_equal(nana_loop_fd_add(loop, &p.src, p.pfd[0], EPOLLIN, pipe_readable), 0);
    assert_int_equal(nana_loop_fd_mod(loop, &p.src, EPOLLIN | EPOLLRDHUP), 0);
    assert_int_equal(p.src.events, EPOLLIN | EPOLLRDHUP);
    assert_int_equal(nana_loop_start(loop), 0);
    writer_arg w = {.fd = p.pfd[1]};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, write_later, &w), 0);
    pthread_join(th, NULL);
    nana_loop_join(loop);
    assert_int_equal(p.calls, 1);
    /* An unknown descriptor is refused with a message. */
    pipe_src bad = {0};
    assert_int_equal(nana_loop_fd_add(loop, &bad.src, 9999, EPOLLIN, pipe_readable), NANA_ERR_IO);
    assert_non_null(strstr(nana_errmsg(), "epoll_ctl"));
    close(p.pfd[0]);
    close(p.pfd[1]);
    nana_loop_free(loop);
}

/* Two sources ready in the same iteration; the first one called removes the
 * other, whose event (already read) must not reach it. */
static void test_fd_del_pending_event(void **state)
{
    (void)state;
    nana_loop *loop;
    assert_int_equal(nana_loop_new("fd-del", &loop), 0);
    pipe_src a = {0}, b = {0};
    assert_int_equal(pipe(a.pfd), 0);
    assert_int_equal(pipe(b.pfd), 0);
    a.other = &b;
    b.other = &a;
    assert_int_equal(nana_loop_fd_add(loop, &a.src, a.pfd[0], EPOLLIN, pipe_readable), 0);
    assert_int_equal(nana_loop_fd_add(loop, &b.src, b.pfd[0], EPOLLIN, pipe_readable), 0);
    assert_int_equal(write(a.pfd[1], "x", 1), 1);
    assert_int_equal(write(b.pfd[1], "x", 1), 1);
    assert_int_equal(nana_loop_run(loop), 0);
    assert_int_equal(a.calls + b.calls, 1);
    for (int i = 0; i < 2; i++) {
        close(a.pfd[i]);
        close(b.pfd[i]);
    }
    nana_loop_free(loop);
}

/* ---- failing system calls --------------------------------------------- */

static nana_loop_sys real_sys_calls;

static int fail_at, calls;

static int fail_epoll_create1(int flags)
{
    if (++calls == fail_at) return errno = EMFILE, -1;
    return real_sys_calls.epoll_create1(flags);
}

static int fail_eventfd(unsigned int v, int flags)
{
    if (++calls == fail_at) return errno = ENFILE, -1;
    return real_sys_calls.eventfd(v, flags);
}

static int fail_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    if (++calls == fail_at) return errno = ENOMEM, -1;
    return real_sys_calls.epoll_ctl(epfd, op, fd, ev);
}

/* nana_loop_new with its Nth system call failing, for every N: a clean
 * error naming the call, and no descriptor left open. */
static void test_new_failing_syscalls(void **state)
{
    (void)state;
    nana_loop_sys saved = nana_loop_sys_calls;
    real_sys_calls = saved;
    nana_loop_sys_calls.epoll_create1 = fail_epoll_create1;
    nana_loop_sys_calls.eventfd = fail_eventfd;
    nana_loop_sys_calls.epoll_ctl = fail_epoll_ctl;
    const char *names[] = {"epoll_create1", "eventfd", "epoll_ctl"};
    int before = count_fds();
    for (fail_at = 1;; fail_at++) {
        calls = 0;
        nana_loop *loop = NULL;
        int rc = nana_loop_new("failing", &loop);
        if (rc == 0) {
            assert_true(fail_at > calls);
            nana_loop_free(loop);
            break;
        }
        assert_int_equal(rc, NANA_ERR_IO);
        assert_null(loop);
        assert_non_null(strstr(nana_errmsg(), names[fail_at - 1]));
        assert_int_equal(count_fds(), before);
    }
    assert_int_equal(fail_at, 4); /* three calls, each failed once */
    assert_int_equal(count_fds(), before);
    nana_loop_sys_calls = saved;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_posts_many_threads),    cmocka_unit_test(test_posts_at_shutdown),
        cmocka_unit_test(test_post_open_after_stop),  cmocka_unit_test(test_run_on_caller),
        cmocka_unit_test(test_timers_heap_order),     cmocka_unit_test(test_timer_rearm_past),
        cmocka_unit_test(test_timer_wakes_idle_loop), cmocka_unit_test(test_fd_source),
        cmocka_unit_test(test_fd_del_pending_event),  cmocka_unit_test(test_new_failing_syscalls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
