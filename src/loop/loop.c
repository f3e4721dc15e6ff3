/*
 * loop.c - the event loop: an epoll instance, the thread that runs it, the
 * post queue other threads hand it work through, and its sources and hooks.
 *
 * Posts are intrusive: the poster's object carries the queue link, so
 * posting never allocates and never fails. The queue is a list under a
 * mutex held for a few instructions; a post that lands in an empty queue
 * writes the loop's eventfd, which wakes the wait. The loop reads the
 * eventfd before it takes the list, so a post made after the take writes it
 * again and is never left waiting. When the loop stops it runs the posts
 * queued by then and marks itself done; later posts stay queued until
 * nana_loop_drain cancels them (their run function with no loop). Every
 * post thus runs exactly once, on the loop or cancelled: none is lost.
 *
 * The wait's timeout is the earliest timer (timer.c). epoll_pwait2 takes it
 * in nanoseconds, so pacing and loss timers need no timerfd (one system call
 * per wait); kernels without it fall back to epoll_wait with the timeout
 * rounded up to a millisecond. The clock is read once per wake-up: every
 * callback of the iteration sees that time (nana_loop_now).
 */
#include "loop/loop_int.h"

#include "util/nana_log.h"
#include "util/nana_time.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* The loop the calling thread runs (NULL: none). */
static _Thread_local const nana_loop *current_loop;

/* The eventfd's epoll data: any address that no source can have. */
#define WAKE_TAG(loop) ((void *)&(loop)->efd)

uint64_t nana_loop_clock(void)
{
    return nana_now_ns();
}

int nana_loop_new(const char *name, nana_loop **out)
{
    *out = NULL;
    nana_loop *loop = calloc(1, sizeof(*loop));
    if (!loop) return nana_err_set(NANA_ERR_NOMEM, "out of memory for an event loop");
    snprintf(loop->name, sizeof(loop->name), "%s", name ? name : "nana-loop");
    loop->pwait2 = true;
    loop->efd = -1;
    loop->epfd = nana_loop_sys_calls.epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd < 0) {
        int rc = nana_err_set(NANA_ERR_IO, "epoll_create1: %s", strerror(errno));
        free(loop);
        return rc;
    }
    loop->efd = nana_loop_sys_calls.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (loop->efd < 0) {
        int rc = nana_err_set(NANA_ERR_IO, "eventfd: %s", strerror(errno));
        close(loop->epfd);
        free(loop);
        return rc;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = WAKE_TAG(loop)};
    if (nana_loop_sys_calls.epoll_ctl(loop->epfd, EPOLL_CTL_ADD, loop->efd, &ev) != 0) {
        int rc = nana_err_set(NANA_ERR_IO, "epoll_ctl (eventfd): %s", strerror(errno));
        close(loop->efd);
        close(loop->epfd);
        free(loop);
        return rc;
    }
    pthread_mutex_init(&loop->mu, NULL);
    *out = loop;
    return NANA_OK;
}

bool nana_loop_on_thread(const nana_loop *loop)
{
    return current_loop == loop;
}

uint64_t nana_loop_now(const nana_loop *loop)
{
    return loop->now;
}

/* ------------------------------------------------------------------ */
/* Posts                                                                */
/* ------------------------------------------------------------------ */

/* Wakes the loop's wait (the eventfd becomes readable). */
static void wake(nana_loop *loop)
{
    uint64_t one = 1;
    /* Only fails when the counter would overflow: it is then readable. */
    ssize_t w = write(loop->efd, &one, sizeof(one));
    (void)w;
}

/* Appends |p| to the queue; the caller holds loop->mu. Returns true if the
 * loop must be woken for it (the queue was empty and the loop listens). */
static bool enqueue(nana_loop *loop, struct nana_loop_post *p)
{
    p->next = NULL;
    bool was_empty = loop->head == NULL;
    if (loop->tail)
        loop->tail->next = p;
    else
        loop->head = p;
    loop->tail = p;
    return was_empty && !loop->done;
}

void nana_loop_post(nana_loop *loop, struct nana_loop_post *post)
{
    pthread_mutex_lock(&loop->mu);
    bool w = enqueue(loop, post);
    pthread_mutex_unlock(&loop->mu);
    if (w) wake(loop);
}

int nana_loop_post_open(nana_loop *loop, struct nana_loop_post *post)
{
    pthread_mutex_lock(&loop->mu);
    if (loop->stopping) {
        pthread_mutex_unlock(&loop->mu);
        return nana_err_set(NANA_ERR_CLOSED, "the event loop is stopping");
    }
    bool w = enqueue(loop, post);
    pthread_mutex_unlock(&loop->mu);
    if (w) wake(loop);
    return NANA_OK;
}

/* Takes the whole queue (and, with |done|, marks the loop done). */
static struct nana_loop_post *take_posts(nana_loop *loop, bool done)
{
    pthread_mutex_lock(&loop->mu);
    struct nana_loop_post *p = loop->head;
    loop->head = loop->tail = NULL;
    if (done) loop->done = true;
    pthread_mutex_unlock(&loop->mu);
    return p;
}

/* Runs a list of posts in order. A post may be posted again (or freed) by
 * its own run function, so its link is read first. */
static void run_list(nana_loop *loop, struct nana_loop_post *p)
{
    while (p) {
        struct nana_loop_post *next = p->next;
        p->run(loop, p);
        p = next;
    }
}

size_t nana_loop_drain(nana_loop *loop)
{
    size_t n = 0;
    struct nana_loop_post *p;
    while ((p = take_posts(loop, false))) /* a cancelled post may post again */
        for (; p; n++) {
            struct nana_loop_post *next = p->next;
            p->run(NULL, p);
            p = next;
        }
    return n;
}

/* ------------------------------------------------------------------ */
/* Sources and hooks                                                    */
/* ------------------------------------------------------------------ */

int nana_loop_fd_add(nana_loop *loop, nana_loop_fd *src, int fd, uint32_t events,
                     void (*fn)(nana_loop *loop, nana_loop_fd *src, uint32_t events))
{
    src->fd = fd;
    src->events = events;
    src->fn = fn;
    struct epoll_event ev = {.events = events, .data.ptr = src};
    if (nana_loop_sys_calls.epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
        return nana_err_set(NANA_ERR_IO, "epoll_ctl (add): %s", strerror(errno));
    return NANA_OK;
}

int nana_loop_fd_mod(nana_loop *loop, nana_loop_fd *src, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = src};
    if (nana_loop_sys_calls.epoll_ctl(loop->epfd, EPOLL_CTL_MOD, src->fd, &ev) != 0)
        return nana_err_set(NANA_ERR_IO, "epoll_ctl (modify): %s", strerror(errno));
    src->events = events;
    return NANA_OK;
}

int nana_loop_fd_del(nana_loop *loop, nana_loop_fd *src)
{
    /* An event of this iteration not yet dispatched must not reach it. */
    for (int i = 0; i < loop->ev_n; i++)
        if (loop->ev[i].data.ptr == src) loop->ev[i].data.ptr = NULL;
    if (nana_loop_sys_calls.epoll_ctl(loop->epfd, EPOLL_CTL_DEL, src->fd, NULL) != 0)
        return nana_err_set(NANA_ERR_IO, "epoll_ctl (delete): %s", strerror(errno));
    return NANA_OK;
}

/* Appends |h| to the list at |head|. */
static void hook_append(nana_loop_hook **head, nana_loop_hook *h)
{
    h->next = NULL;
    while (*head)
        head = &(*head)->next;
    *head = h;
}

/* Unlinks |h| from the list at |head| (nothing if it is not there). */
static void hook_unlink(nana_loop_hook **head, nana_loop_hook *h)
{
    while (*head && *head != h)
        head = &(*head)->next;
    if (*head) *head = h->next;
}

void nana_loop_hook_add(nana_loop *loop, nana_loop_hook *hook)
{
    hook_append(&loop->hooks, hook);
}

void nana_loop_hook_del(nana_loop *loop, nana_loop_hook *hook)
{
    hook_unlink(&loop->hooks, hook);
}

void nana_loop_exit_hook_add(nana_loop *loop, nana_loop_hook *hook)
{
    hook_append(&loop->exit_hooks, hook);
}

void nana_loop_exit_hook_del(nana_loop *loop, nana_loop_hook *hook)
{
    hook_unlink(&loop->exit_hooks, hook);
}

/* Calls every hook of a list; a hook may remove itself. */
static void run_hooks(nana_loop *loop, nana_loop_hook *h)
{
    while (h) {
        nana_loop_hook *next = h->next;
        h->fn(loop, h);
        h = next;
    }
}

/* ------------------------------------------------------------------ */
/* Running                                                              */
/* ------------------------------------------------------------------ */

/* Waits for events until the earliest timer; returns their count or -1. */
static int wait_events(nana_loop *loop)
{
    uint64_t d = UINT64_MAX;
    if (loop->timers) {
        uint64_t now = nana_loop_clock();
        d = loop->timers->when > now ? loop->timers->when - now : 0;
    }
    if (loop->pwait2) {
        struct timespec to, *top = NULL;
        if (d != UINT64_MAX) {
            to.tv_sec = (time_t)(d / 1000000000ull);
            to.tv_nsec = (long)(d % 1000000000ull);
            top = &to;
        }
        int n = epoll_pwait2(loop->epfd, loop->ev, NANA_LOOP_EVENTS, top, NULL);
        if (n >= 0 || errno != ENOSYS) return n;
        loop->pwait2 = false;
    }
    int ms = d == UINT64_MAX                      ? -1
             : d >= (uint64_t)INT32_MAX * 1000000 ? INT32_MAX
                                                  : (int)((d + 999999) / 1000000);
    return epoll_wait(loop->epfd, loop->ev, NANA_LOOP_EVENTS, ms);
}

/* One iteration. Returns 1 to go on, 0 when asked to stop, or an error. */
static int iterate(nana_loop *loop)
{
    int n = wait_events(loop);
    if (n < 0) {
        if (errno != EINTR) return nana_err_set(NANA_ERR_IO, "epoll wait: %s", strerror(errno));
        n = 0;
    }
    loop->now = nana_loop_clock();
    loop->ev_n = n;
    bool posted = false;
    for (int i = 0; i < n; i++) {
        if (loop->ev[i].data.ptr != WAKE_TAG(loop)) continue;
        loop->ev[i].data.ptr = NULL;
        uint64_t cnt;
        ssize_t r = read(loop->efd, &cnt, sizeof(cnt)); /* before the take: see the top */
        (void)r;
        posted = true;
    }
    if (posted) run_list(loop, take_posts(loop, false));
    for (int i = 0; i < loop->ev_n; i++) {
        nana_loop_fd *src = loop->ev[i].data.ptr;
        if (src) src->fn(loop, src, loop->ev[i].events);
    }
    loop->ev_n = 0;
    if (loop->timers && loop->timers->when <= loop->now) nana_loop_timers_run(loop);
    run_hooks(loop, loop->hooks);
    if (!posted) return 1; /* a stop request always writes the eventfd */
    pthread_mutex_lock(&loop->mu);
    bool stop = loop->stopping;
    pthread_mutex_unlock(&loop->mu);
    return stop ? 0 : 1;
}

/* Runs the loop on the calling thread until it stops (see nana_loop_run). */
static int run_loop(nana_loop *loop)
{
    const nana_loop *outer = current_loop;
    current_loop = loop;
    loop->now = nana_loop_clock();
    int rc;
    while ((rc = iterate(loop)) > 0) {
    }
    char msg[NANA_ERRMSG_MAX];
    if (rc) {
        snprintf(msg, sizeof(msg), "%s", nana_errmsg());
        nana_log(NANA_LOG_ERROR, "event loop %s stops: %s", loop->name, msg);
        pthread_mutex_lock(&loop->mu);
        loop->stopping = true;
        pthread_mutex_unlock(&loop->mu);
    }
    /* The end: the posts queued by now run; later ones wait to be cancelled. */
    loop->now = nana_loop_clock();
    run_list(loop, take_posts(loop, true));
    run_hooks(loop, loop->exit_hooks);
    current_loop = outer;
    return rc ? nana_err_set_str(rc, msg) : NANA_OK;
}

int nana_loop_run(nana_loop *loop)
{
    if (loop->ran) return nana_err_set(NANA_ERR_INVALID, "the event loop already ran");
    loop->ran = true;
    return run_loop(loop);
}

void nana_loop_stop(nana_loop *loop)
{
    pthread_mutex_lock(&loop->mu);
    loop->stopping = true;
    bool listening = !loop->done;
    pthread_mutex_unlock(&loop->mu);
    if (listening) wake(loop);
}

/* The thread nana_loop_start starts. */
static void *loop_main(void *arg)
{
    nana_loop *loop = arg;
    pthread_setname_np(pthread_self(), loop->name);
    (void)run_loop(loop); /* an error is logged there */
    return NULL;
}

int nana_loop_start(nana_loop *loop)
{
    if (loop->ran) return nana_err_set(NANA_ERR_INVALID, "the event loop already runs");
    if (pthread_create(&loop->thread, NULL, loop_main, loop) != 0)
        return nana_err_set(NANA_ERR_NOMEM, "cannot start the thread of event loop %s", loop->name);
    loop->ran = loop->started = true;
    return NANA_OK;
}

void nana_loop_join(nana_loop *loop)
{
    if (!loop->started) return;
    pthread_join(loop->thread, NULL);
    loop->started = false;
}

uint64_t nana_loop_cpu_ns(const nana_loop *loop)
{
    clockid_t cid;
    struct timespec ts;
    if (!loop->started || pthread_getcpuclockid(loop->thread, &cid) != 0 ||
        clock_gettime(cid, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void nana_loop_free(nana_loop *loop)
{
    if (!loop) return;
    if (loop->started) {
        nana_loop_stop(loop);
        nana_loop_join(loop);
    }
    (void)nana_loop_drain(loop);
    close(loop->efd);
    close(loop->epfd);
    pthread_mutex_destroy(&loop->mu);
    free(loop);
}
