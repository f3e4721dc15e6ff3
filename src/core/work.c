/*
 * work.c - the worker pool and the deadline thread (see nana_work.h).
 *
 * Jobs wait in one bounded FIFO queue. Every job, queued or running, also
 * sits in a min-heap on its deadline, which the deadline thread watches:
 * calls bring their own deadlines, so arrival order says nothing about
 * expiry order. One mutex guards queue and heap; the deadline thread takes
 * every job whose deadline passed off the heap under it, and calls their
 * owners' expire() after letting it go, so an owner's reply never runs
 * under the pool's lock.
 *
 * The deadline thread is not woken for every job: it records when it will
 * look at the heap next (dwake: the earliest deadline, or at most a second
 * ahead when there is none), and a new job signals it only when its
 * deadline comes before that. With calls' timeouts longer than a second
 * that is never, which saves a thread wake-up (two context switches) per
 * call on an otherwise idle server.
 *
 * A running job answered at its deadline may finish while its owner's
 * expire() is still running on the deadline thread; then the owner hears
 * late() once expire() returned (NANA_FINISH_LATER), so it never frees what
 * expire() is using.
 */
#include "core/nana_work.h"

#include "util/nana_err.h"
#include "util/nana_mem.h"
#include "util/nana_time.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

enum { J_QUEUED = 1, J_RUNNING = 2, J_TIMED_OUT = 3, J_DONE = 4 };

#define DEADLINE_IDLE_NS 1000000000ull /* an idle deadline thread looks again after 1 s */

struct nana_work {
    pthread_mutex_t mu;
    pthread_cond_t cv;  /* workers: a job was queued, or stop */
    pthread_cond_t dcv; /* deadline thread: an earlier deadline, or stop */
    nana_job *qhead, *qtail;
    nana_job **heap; /* min-heap on deadline */
    size_t nheap, heap_cap;
    nana_job *dhead, *dtail; /* in-order jobs (nana_job.in_order), earliest first */
    uint64_t dwake;          /* the deadline thread looks at the heap again by then */
    unsigned queued, running, limit;
    bool stop;
    pthread_t *threads;
    unsigned nthreads;
    pthread_t deadline_thread;
    bool deadline_started;
    void (*idle)(void *arg); /* nana_work_set_idle */
    void *idle_arg;
    uint64_t idle_last;
};

/* ---- the queue (lock held) ---------------------------------------------------- */

static void q_unlink(nana_work *w, nana_job *j)
{
    if (j->qprev)
        j->qprev->qnext = j->qnext;
    else
        w->qhead = j->qnext;
    if (j->qnext)
        j->qnext->qprev = j->qprev;
    else
        w->qtail = j->qprev;
    j->qprev = j->qnext = NULL;
    w->queued--;
}

/* ---- the deadline heap (lock held) -------------------------------------------- */

static void h_swap(nana_work *w, size_t a, size_t b)
{
    nana_job *t = w->heap[a];
    w->heap[a] = w->heap[b];
    w->heap[b] = t;
    w->heap[a]->heap_idx = a;
    w->heap[b]->heap_idx = b;
}

static void h_up(nana_work *w, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (w->heap[p]->deadline <= w->heap[i]->deadline) break;
        h_swap(w, p, i);
        i = p;
    }
}

static void h_down(nana_work *w, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < w->nheap && w->heap[l]->deadline < w->heap[m]->deadline) m = l;
        if (r < w->nheap && w->heap[r]->deadline < w->heap[m]->deadline) m = r;
        if (m == i) break;
        h_swap(w, m, i);
        i = m;
    }
}

/* Room for one more in the heap (none needed for an in-order job); false
 * when out of memory. */
static bool h_reserve(nana_work *w, const nana_job *j)
{
    if (j->in_order || w->nheap < w->heap_cap) return true;
    size_t cap = w->heap_cap ? w->heap_cap * 2 : 256;
    nana_job **h = nana_realloc(w->heap, cap * sizeof(*h));
    if (!h) return false;
    w->heap = h;
    w->heap_cap = cap;
    return true;
}

/* Adds |j| to the heap (room reserved) or the in-order list; wakes the
 * deadline thread if it is the earliest. */
static void h_push(nana_work *w, nana_job *j)
{
    if (j->in_order) {
        j->dnext = NULL;
        j->dprev = w->dtail;
        if (w->dtail)
            w->dtail->dnext = j;
        else
            w->dhead = j;
        w->dtail = j;
        j->listed = true;
    } else {
        j->heap_idx = w->nheap;
        w->heap[w->nheap++] = j;
        h_up(w, j->heap_idx);
    }
    if (j->deadline < w->dwake) pthread_cond_signal(&w->dcv);
}

static void h_remove(nana_work *w, nana_job *j)
{
    if (j->listed) {
        if (j->dprev)
            j->dprev->dnext = j->dnext;
        else
            w->dhead = j->dnext;
        if (j->dnext)
            j->dnext->dprev = j->dprev;
        else
            w->dtail = j->dprev;
        j->dprev = j->dnext = NULL;
        j->listed = false;
        return;
    }
    size_t i = j->heap_idx;
    if (i == SIZE_MAX || i >= w->nheap || w->heap[i] != j) return;
    w->nheap--;
    if (i != w->nheap) {
        w->heap[i] = w->heap[w->nheap];
        w->heap[i]->heap_idx = i;
        h_down(w, i);
        h_up(w, i);
    }
    j->heap_idx = SIZE_MAX;
}

/* ---- threads -------------------------------------------------------------------- */

/* A worker: takes jobs in order and runs them until told to stop. */
static void *worker_main(void *arg)
{
    nana_work *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->qhead && !w->stop)
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->stop) break;
        nana_job *j = w->qhead;
        q_unlink(w, j);
        j->state = J_RUNNING;
        w->running++;
        pthread_mutex_unlock(&w->mu);
        j->run(j); /* ends with nana_work_finish */
        pthread_mutex_lock(&w->mu);
        w->running--;
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/*
 * Takes every job whose deadline passed off the heap (lock held) and
 * returns them chained by qnext, each marked with what its owner hears.
 */
static nana_job *take_expired(nana_work *w, uint64_t now)
{
    nana_job *list = NULL, **tail = &list;
    for (;;) {
        nana_job *j = w->nheap && w->heap[0]->deadline <= now ? w->heap[0] : NULL;
        if (!j && w->dhead && w->dhead->deadline <= now) j = w->dhead;
        if (!j) break;
        h_remove(w, j);
        if (j->state == J_QUEUED) {
            q_unlink(w, j);
            j->state = J_DONE; /* cancelled: it never runs */
        } else {
            j->state = J_TIMED_OUT;
            j->expiring = true;
        }
        j->qnext = NULL;
        *tail = j;
        tail = &j->qnext;
    }
    return list;
}

/* The deadline thread: answers jobs whose deadline passed. */
static void *deadline_main(void *arg)
{
    nana_work *w = arg;
    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        uint64_t now = nana_now_ns();
        nana_job *expired = take_expired(w, now);
        if (expired) {
            pthread_mutex_unlock(&w->mu);
            for (nana_job *j = expired, *next; j; j = next) {
                next = j->qnext;
                bool running = j->state == J_TIMED_OUT;
                j->expire(j, running ? NANA_EXPIRE_RUNNING : NANA_EXPIRE_CANCELLED);
                if (!running) continue; /* the owner's again */
                pthread_mutex_lock(&w->mu);
                j->expiring = false;
                bool late = j->finished;
                pthread_mutex_unlock(&w->mu);
                if (late) j->late(j);
            }
            pthread_mutex_lock(&w->mu);
            continue;
        }
        if (!w->nheap && !w->dhead && w->idle && now - w->idle_last >= DEADLINE_IDLE_NS) {
            /* No deadline to watch: the owner's housekeeping, outside the lock. */
            void (*fn)(void *) = w->idle;
            void *idle_arg = w->idle_arg;
            w->idle_last = now;
            pthread_mutex_unlock(&w->mu);
            fn(idle_arg);
            pthread_mutex_lock(&w->mu);
            continue;
        }
        uint64_t next = now + DEADLINE_IDLE_NS;
        if (w->nheap && w->heap[0]->deadline < next) next = w->heap[0]->deadline;
        if (w->dhead && w->dhead->deadline < next) next = w->dhead->deadline;
        w->dwake = next;
        struct timespec ts = nana_timespec_at(w->dwake);
        pthread_cond_timedwait(&w->dcv, &w->mu, &ts);
        w->dwake = 0; /* awake: every new job is seen on the next pass */
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* ---- the public face -------------------------------------------------------- */

void nana_work_set_idle(nana_work *w, void (*fn)(void *arg), void *arg)
{
    pthread_mutex_lock(&w->mu);
    w->idle = fn;
    w->idle_arg = arg;
    pthread_mutex_unlock(&w->mu);
}

int nana_work_new(unsigned workers, unsigned limit, nana_work **out)
{
    *out = NULL;
    nana_work *w = nana_calloc(1, sizeof(*w));
    if (!w) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    w->threads = nana_calloc(workers ? workers : 1, sizeof(pthread_t));
    if (!w->threads) {
        nana_free(w);
        return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    }
    w->limit = limit ? limit : 4096;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    nana_cond_init_monotonic(&w->dcv);
    int err = pthread_create(&w->deadline_thread, NULL, deadline_main, w);
    w->deadline_started = err == 0;
    for (unsigned i = 0; !err && i < (workers ? workers : 1); i++) {
        err = pthread_create(&w->threads[i], NULL, worker_main, w);
        if (!err) w->nthreads++;
    }
    if (err) {
        nana_work_stop(w);
        nana_work_free(w);
        return nana_err_set(NANA_ERR_NOMEM, "cannot start worker threads: %s", strerror(err));
    }
    *out = w;
    return NANA_OK;
}

int nana_work_submit(nana_work *w, nana_job *j)
{
    pthread_mutex_lock(&w->mu);
    int rc = NANA_OK;
    if (w->stop)
        rc = nana_err_set(NANA_ERR_CLOSED, "the server is stopping");
    else if (w->queued >= w->limit)
        rc = nana_err_set(NANA_ERR_BUSY, "Server busy: %u calls are waiting, try again later",
                          w->limit);
    else if (!h_reserve(w, j))
        rc = nana_err_set(NANA_ERR_NOMEM, "out of memory for a call's deadline");
    if (rc) {
        pthread_mutex_unlock(&w->mu);
        return rc;
    }
    j->state = J_QUEUED;
    j->expiring = j->finished = false;
    j->qnext = NULL;
    j->qprev = w->qtail;
    if (w->qtail)
        w->qtail->qnext = j;
    else
        w->qhead = j;
    w->qtail = j;
    w->queued++;
    h_push(w, j);
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return NANA_OK;
}

int nana_work_track(nana_work *w, nana_job *j)
{
    pthread_mutex_lock(&w->mu);
    int rc = NANA_OK;
    if (w->stop)
        rc = nana_err_set(NANA_ERR_CLOSED, "the server is stopping");
    else if (!h_reserve(w, j))
        rc = nana_err_set(NANA_ERR_NOMEM, "out of memory for a call's deadline");
    if (!rc) {
        j->state = J_RUNNING;
        j->expiring = j->finished = false;
        j->qprev = j->qnext = NULL;
        h_push(w, j);
    }
    pthread_mutex_unlock(&w->mu);
    return rc;
}

nana_finish nana_work_finish(nana_work *w, nana_job *j)
{
    pthread_mutex_lock(&w->mu);
    nana_finish f = NANA_FINISH_ANSWER;
    if (j->state == J_TIMED_OUT) {
        f = j->expiring ? NANA_FINISH_LATER : NANA_FINISH_DROP;
        j->finished = true;
    } else {
        h_remove(w, j);
    }
    j->state = J_DONE;
    pthread_mutex_unlock(&w->mu);
    return f;
}

bool nana_work_cancel(nana_work *w, nana_job *j)
{
    pthread_mutex_lock(&w->mu);
    bool queued = j->state == J_QUEUED;
    if (queued) {
        q_unlink(w, j);
        h_remove(w, j);
        j->state = J_DONE;
    }
    pthread_mutex_unlock(&w->mu);
    return queued;
}

unsigned nana_work_pending(nana_work *w)
{
    pthread_mutex_lock(&w->mu);
    unsigned n = w->queued + w->running;
    pthread_mutex_unlock(&w->mu);
    return n;
}

void nana_work_stop(nana_work *w)
{
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_broadcast(&w->cv);
    pthread_cond_broadcast(&w->dcv);
    pthread_mutex_unlock(&w->mu);
    for (unsigned i = 0; i < w->nthreads; i++)
        pthread_join(w->threads[i], NULL);
    w->nthreads = 0;
    if (w->deadline_started) pthread_join(w->deadline_thread, NULL);
    w->deadline_started = false;
    /* What never ran is answered, outside the lock. */
    pthread_mutex_lock(&w->mu);
    nana_job *list = NULL;
    while (w->qhead) {
        nana_job *j = w->qhead;
        q_unlink(w, j);
        h_remove(w, j);
        j->state = J_DONE;
        j->qnext = list;
        list = j;
    }
    pthread_mutex_unlock(&w->mu);
    for (nana_job *j = list, *next; j; j = next) {
        next = j->qnext;
        j->expire(j, NANA_EXPIRE_STOPPED);
    }
}

void nana_work_free(nana_work *w)
{
    if (!w) return;
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    pthread_cond_destroy(&w->dcv);
    nana_free(w->heap);
    nana_free(w->threads);
    nana_free(w);
}
