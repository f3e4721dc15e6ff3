/*
 * work.c - the worker pool and the deadline thread.
 *
 * Jobs wait in one bounded FIFO queue (a full queue is the caller's
 * "busy"). Every job, queued or running, also sits on a deadline list;
 * since all calls get the same timeout and arrive in order, appending
 * keeps that list sorted, and the deadline thread only ever looks at its
 * head. When a deadline passes, a queued job is taken off the queue and
 * cancelled (it never runs), and a running one is answered with a timeout
 * at once; its late result is dropped when it finishes. One mutex guards
 * both lists; every operation on them is O(1).
 *
 * The deadline thread is not woken for every job: it records when it will
 * look at the list next (dwake: the head's deadline, or at most a second
 * ahead when the list is empty), and a new job signals it only when its
 * deadline comes before that. With calls' timeouts longer than a second
 * that is never, which saves a thread wake-up (two context switches) per
 * call on an otherwise idle server.
 */
#include "server/server_int.h"
#include "util/nana_time.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { J_QUEUED = 1, J_RUNNING = 2, J_DONE = 3 };

#define DEADLINE_IDLE_NS 1000000000ull /* an idle deadline thread looks again after 1 s */

struct nana_work {
    pthread_mutex_t mu;
    pthread_cond_t cv;  /* workers: a job was queued, or stop */
    pthread_cond_t dcv; /* deadline thread: the list changed, or stop */
    nana_job *qhead, *qtail;
    nana_job *dhead, *dtail;
    uint64_t dwake; /* the deadline thread looks at the list again by then */
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

static void d_append(nana_work *w, nana_job *j)
{
    j->dnext = NULL;
    j->dprev = w->dtail;
    if (w->dtail)
        w->dtail->dnext = j;
    else
        w->dhead = j;
    w->dtail = j;
}

static void d_unlink(nana_work *w, nana_job *j)
{
    if (j->dprev)
        j->dprev->dnext = j->dnext;
    else
        w->dhead = j->dnext;
    if (j->dnext)
        j->dnext->dprev = j->dprev;
    else
        w->dtail = j->dprev;
    j->dprev = j->dnext = NULL;
}

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

/* The deadline thread: answers jobs whose deadline passed. */
static void *deadline_main(void *arg)
{
    nana_work *w = arg;
    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        nana_job *j = w->dhead;
        uint64_t now = nana_now_ns();
        if (j && j->deadline <= now) {
            d_unlink(w, j);
            if (j->state == J_QUEUED) {
                q_unlink(w, j);
                j->state = J_DONE;
                j->expire(j, true);
            } else {
                j->timed_out = true;
                j->expire(j, false);
            }
            continue;
        }
        if (!j && w->idle && now - w->idle_last >= DEADLINE_IDLE_NS) {
            /* No deadline to watch: the owner's housekeeping, outside the lock. */
            void (*fn)(void *) = w->idle;
            void *idle_arg = w->idle_arg;
            w->idle_last = now;
            pthread_mutex_unlock(&w->mu);
            fn(idle_arg);
            pthread_mutex_lock(&w->mu);
            continue;
        }
        w->dwake = j ? j->deadline : now + DEADLINE_IDLE_NS;
        struct timespec ts = nana_timespec_at(w->dwake);
        pthread_cond_timedwait(&w->dcv, &w->mu, &ts);
        w->dwake = 0; /* awake: every new job is seen on the next pass */
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

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
    nana_work *w = calloc(1, sizeof(*w));
    if (!w) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    w->threads = calloc(workers ? workers : 1, sizeof(pthread_t));
    if (!w->threads) {
        free(w);
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
    if (w->stop) {
        pthread_mutex_unlock(&w->mu);
        return nana_err_set(NANA_ERR_CLOSED, "the server is stopping");
    }
    if (w->queued >= w->limit) {
        pthread_mutex_unlock(&w->mu);
        return nana_err_set(NANA_ERR_BUSY, "Server busy: %u calls are waiting, try again later",
                            w->limit);
    }
    j->state = J_QUEUED;
    j->timed_out = false;
    j->qnext = NULL;
    j->qprev = w->qtail;
    if (w->qtail)
        w->qtail->qnext = j;
    else
        w->qhead = j;
    w->qtail = j;
    w->queued++;
    d_append(w, j);
    pthread_cond_signal(&w->cv);
    if (j->deadline < w->dwake) pthread_cond_signal(&w->dcv);
    pthread_mutex_unlock(&w->mu);
    return NANA_OK;
}

void nana_work_track(nana_work *w, nana_job *j)
{
    pthread_mutex_lock(&w->mu);
    j->state = J_RUNNING;
    j->timed_out = false;
    d_append(w, j);
    if (j->deadline < w->dwake) pthread_cond_signal(&w->dcv);
    pthread_mutex_unlock(&w->mu);
}

bool nana_work_finish(nana_work *w, nana_job *j)
{
    pthread_mutex_lock(&w->mu);
    bool answer = !j->timed_out;
    if (answer) d_unlink(w, j);
    j->state = J_DONE;
    pthread_mutex_unlock(&w->mu);
    return answer;
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
    /* Cancel what never ran. */
    pthread_mutex_lock(&w->mu);
    while (w->qhead) {
        nana_job *j = w->qhead;
        q_unlink(w, j);
        d_unlink(w, j);
        j->state = J_DONE;
        j->expire(j, true);
    }
    pthread_mutex_unlock(&w->mu);
}

void nana_work_free(nana_work *w)
{
    if (!w) return;
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    pthread_cond_destroy(&w->dcv);
    free(w->threads);
    free(w);
}
