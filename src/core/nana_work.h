/*
 * nana_work.h - the worker pool with per-job deadlines, the call core's
 * engine room.
 *
 * Jobs wait in one bounded FIFO queue for a worker thread; every job,
 * queued or running (or running elsewhere: an asynchronous store write),
 * also sits in a deadline heap watched by one deadline thread. Each job
 * has its own deadline (a gRPC call brings its own). At a job's deadline:
 * one still queued is taken off the queue and never runs; one running is
 * answered at once and its late result dropped. The owner hears of it
 * through expire(), called without the pool's lock held.
 */
#ifndef NANA_WORK_H
#define NANA_WORK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct nana_work nana_work;
typedef struct nana_job nana_job;

/* Why expire() is called. */
typedef enum nana_expiry {
    NANA_EXPIRE_CANCELLED = 1, /* its deadline passed before it ran: it never will */
    NANA_EXPIRE_RUNNING = 2,   /* its deadline passed while it ran: answer now */
    NANA_EXPIRE_STOPPED = 3,   /* the pool stopped before it ran: it never will */
} nana_expiry;

/*
 * A unit of work. The owner embeds it in its own object and sets run,
 * expire and deadline; the rest is the pool's.
 */
struct nana_job {
    uint64_t deadline;        /* nana_now_ns() time */
    void (*run)(nana_job *j); /* on a worker; must end with nana_work_finish */
    /* The deadline passed or the pool stopped (see nana_expiry); called on
     * the deadline thread or in nana_work_stop, never under the lock. */
    void (*expire)(nana_job *j, nana_expiry why);
    /* After a RUNNING expiry whose job finished meanwhile: the owner's last
     * word on it (see nana_work_finish). */
    void (*late)(nana_job *j);
    /* The owner's promise that this job's deadline is no earlier than that
     * of any job it submitted before with the same promise (every call with
     * the same timeout from now): such jobs wait in a plain list in arrival
     * order, O(1) in and out, instead of the heap. A deadline slightly out
     * of order (two threads' clocks read a moment apart) is answered that
     * moment late. */
    bool in_order;
    /* the pool's */
    nana_job *qprev, *qnext;
    nana_job *dprev, *dnext; /* the in-order list */
    size_t heap_idx;
    bool listed; /* on the in-order list */
    int state;
    bool expiring; /* its expire() is being called */
    bool finished; /* nana_work_finish came while it was */
};

/* Starts |workers| threads and the deadline thread; the queue holds |limit| jobs. */
int nana_work_new(unsigned workers, unsigned limit, nana_work **out);

/* Queues |j| (its deadline set). NANA_ERR_BUSY when the queue is full,
 * NANA_ERR_CLOSED when stopping, NANA_ERR_NOMEM when the heap cannot grow. */
int nana_work_submit(nana_work *w, nana_job *j);

/* Watches the deadline of |j|, which runs elsewhere (an asynchronous store
 * write); same errors as nana_work_submit but BUSY. */
int nana_work_track(nana_work *w, nana_job *j);

/* What the owner does when its job finished (nana_work_finish). */
typedef enum nana_finish {
    NANA_FINISH_ANSWER = 0, /* in time: answer it, then it is the owner's again */
    NANA_FINISH_DROP = 1,   /* answered at its deadline already: drop the result; it is
                               the owner's again */
    NANA_FINISH_LATER = 2,  /* answered at its deadline, and expire() is still running:
                               drop the result; late() will be called once it returned */
} nana_finish;

/* |j| finished (on its worker, or the store's callback). */
nana_finish nana_work_finish(nana_work *w, nana_job *j);

/* Takes |j| out of the queue if it has not started: true, and it will never
 * run or expire (it is the owner's again); false when it runs, ran, or is
 * tracked (a job elsewhere cannot be called back). */
bool nana_work_cancel(nana_work *w, nana_job *j);

/* Jobs queued and running (for the graceful stop). */
unsigned nana_work_pending(nana_work *w);

/*
 * Calls fn(arg) on the deadline thread, outside the pool's lock, at most
 * once a second while no deadline is being watched (housekeeping when
 * idle). NULL stops it.
 */
void nana_work_set_idle(nana_work *w, void (*fn)(void *arg), void *arg);

/* Stops the workers (queued jobs are expired with NANA_EXPIRE_STOPPED) and
 * the deadline thread. Jobs tracked or running still finish through
 * nana_work_finish. */
void nana_work_stop(nana_work *w);

/* Frees the pool (after nana_work_stop and after every job finished). NULL-safe. */
void nana_work_free(nana_work *w);

#endif
