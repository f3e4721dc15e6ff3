/*
 * writer.c - the one writer thread and its group commit.
 *
 * SQLite allows one writer at a time, and a commit costs far more than
 * the statements inside it. So every write in the store is an operation
 * (nana_wop) put on a bounded queue; one thread takes whatever is queued
 * (up to max_group), runs it all inside one BEGIN IMMEDIATE ... COMMIT,
 * updates the caches and only then wakes the callers. 100K small writes
 * a second cost a few hundred commits instead of 100K.
 *
 * Failure isolation: an op that fails with an ordinary error (key absent,
 * wrong type, constraint) leaves the transaction usable; ops that run
 * several modifying statements are wrapped in a SAVEPOINT so their partial
 * work is undone. If an op's failure makes SQLite abort the whole
 * transaction (disk full, I/O error), that op fails and the rest of the
 * group is run again, one op per transaction, so each gets its own verdict
 * and no acknowledged write is lost. A failed COMMIT does the same.
 *
 * Explicit transactions (nana_store_begin) belong to the thread that
 * began them. While one is open, the writer runs that thread's ops one by
 * one inside it, each in its own savepoint: a blocking call returns at once
 * (durable only at commit), an asynchronous one completes at commit (or
 * fails at rollback). Every other thread's op is parked until the
 * transaction ends and then runs normally, so nobody else's write is ever
 * swallowed by someone's rollback. The owner's writes do not touch the
 * caches; a commit empties them.
 */
#include "store/store_int.h"
#include "util/nana_time.h"

#include <errno.h>
#include <linux/futex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Idle wake-up of the writer for TTL row expiry. */
#define SWEEP_INTERVAL_MS 1000

static void futex_wait(atomic_uint *addr, unsigned val)
{
    syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void futex_wake(atomic_uint *addr)
{
    syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static _Thread_local char thread_token_anchor;

uintptr_t nana_thread_token(void)
{
    return (uintptr_t)&thread_token_anchor;
}

/* Records the calling thread's error detail in the op. */
static void op_fail(nana_wop *op, int rc)
{
    op->rc = rc;
    snprintf(op->errmsg, sizeof(op->errmsg), "%s", nana_errmsg());
}

/* Forgets results of an earlier run so the op can run again. */
static void op_reset(nana_wop *op)
{
    nana_val_unref(op->result);
    op->result = NULL;
    op->rc = 0;
    op->errmsg[0] = '\0';
    op->i64 = 0;
}

/* Publishes the op's final state and wakes its caller (or calls its
 * completion, which may free the op). */
static void op_complete(nana_store *s, nana_wop *op)
{
    atomic_fetch_add_explicit(&s->st_writes, 1, memory_order_relaxed);
    if (op->complete) {
        op->complete(op);
        return;
    }
    atomic_store_explicit(&op->done, 1, memory_order_release);
    futex_wake(&op->done);
}

/* Runs op->exec, wrapped in a savepoint when the op asks for one. */
static int run_exec(nana_wop *op, nana_conn *c, bool savepoint)
{
    int rc;
    if (savepoint && (rc = nana_conn_exec(c, "SAVEPOINT nana_op"))) return rc;
    rc = op->exec(op, c);
    if (!savepoint) return rc;
    if (nana_conn_autocommit(c)) return rc; /* the whole transaction is gone */
    if (rc) {
        char msg[NANA_ERRMSG_MAX];
        snprintf(msg, sizeof(msg), "%s", nana_errmsg());
        nana_conn_exec(c, "ROLLBACK TO nana_op");
        nana_conn_exec(c, "RELEASE nana_op");
        nana_err_set_str(rc, msg);
        return rc;
    }
    return nana_conn_exec(c, "RELEASE nana_op");
}

static void run_group(nana_store *s, nana_wop **ops, unsigned n);

/* Completes every op with |rc| and the calling thread's detail. */
static void fail_all(nana_store *s, nana_wop **ops, unsigned n, int rc)
{
    /* Copy the detail first: a completion callback may overwrite it. */
    char msg[NANA_ERRMSG_MAX];
    snprintf(msg, sizeof(msg), "%s", nana_errmsg());
    for (unsigned i = 0; i < n; i++) {
        op_reset(ops[i]);
        ops[i]->rc = rc;
        snprintf(ops[i]->errmsg, sizeof(ops[i]->errmsg), "%s", msg);
        op_complete(s, ops[i]);
    }
}

/* True once the file is known damaged and the store may not write into it. */
static bool writes_refused(nana_store *s)
{
    return nana_store_damaged(s) && !s->opts.allow_corrupt;
}

/* Runs each op in a transaction of its own (error isolation path). */
static void run_each(nana_store *s, nana_wop **ops, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        run_group(s, &ops[i], 1);
}

/* How many ops from ops[0] on are sets of one table (WOP_SET). */
static unsigned set_run(nana_wop **ops, unsigned n)
{
    unsigned k = 0;
    while (k < n && (ops[k]->flags & WOP_SET) && ops[k]->tbl == ops[0]->tbl)
        k++;
    return k;
}

/* What run_group_once did with its ops. */
enum { GROUP_DONE = 0, GROUP_AGAIN = 1 };

/*
 * Runs |n| ordinary ops in one transaction and completes every one of
 * them. See the file comment for how failures are isolated. On a clustered
 * store it may instead complete none of them and return GROUP_AGAIN: the
 * link to the leader broke, or another node's writer held the database,
 * before COMMIT was sent (so nothing was applied).
 */
static int run_group_once(nana_store *s, nana_wop **ops, unsigned n)
{
    nana_conn *c = &s->writer.conn;
    c->lost = false;
    int rc = writes_refused(s) ? nana_store_damaged_err() : nana_conn_exec(c, "BEGIN IMMEDIATE");
    if (rc && c->cluster && (c->lost || rc == NANA_ERR_BUSY)) return GROUP_AGAIN;
    if (rc) {
        fail_all(s, ops, n, rc);
        return GROUP_DONE;
    }
    for (unsigned i = 0; i < n; i++) {
        nana_wop *op = ops[i];
        unsigned rows = c->cluster ? set_run(ops + i, n - i) : 0;
        if (rows > 1) {
            /* Sets side by side: a few multi-row statements, not a round
             * trip to the leader each. If they fail, each runs alone below. */
            for (unsigned k = 0; k < rows; k++)
                op_reset(ops[i + k]);
            rc = nana_clink_set_rows(c, ops + i, rows);
            if (rc && c->lost) return GROUP_AGAIN;
            if (!rc) {
                i += rows - 1;
                continue;
            }
        }
        op_reset(op);
        rc = run_exec(op, c, (op->flags & WOP_SAVEPOINT) != 0);
        if (rc && c->lost) return GROUP_AGAIN; /* the leader dropped the transaction */
        if (rc) op_fail(op, rc);
        if (rc && nana_conn_autocommit(c)) {
            /* This op aborted the transaction: the ops before it were
             * rolled back with it. It fails; everyone else runs alone. */
            op_complete(s, op);
            if (i > 0) run_each(s, ops, i);
            if (i + 1 < n) run_each(s, ops + i + 1, n - i - 1);
            return GROUP_DONE;
        }
    }
    rc = nana_conn_exec(c, "COMMIT");
    if (rc && c->lost) {
        /* The commit went out and the leader did not say how it ended. */
        (void)nana_err_set(NANA_ERR_OUTCOME,
                           "the cluster's leader was lost while this write committed: it may or "
                           "may not have been applied (read it back before writing it again)");
        fail_all(s, ops, n, NANA_ERR_OUTCOME);
        return GROUP_DONE;
    }
    if (rc) {
        char msg[NANA_ERRMSG_MAX];
        snprintf(msg, sizeof(msg), "%s", nana_errmsg());
        if (!nana_conn_autocommit(c)) nana_conn_exec(c, "ROLLBACK");
        if (n > 1) {
            run_each(s, ops, n);
            return GROUP_DONE;
        }
        op_reset(ops[0]);
        ops[0]->rc = rc;
        snprintf(ops[0]->errmsg, sizeof(ops[0]->errmsg), "%s", msg);
        op_complete(s, ops[0]);
        return GROUP_DONE;
    }
    atomic_fetch_add_explicit(&s->st_commits, 1, memory_order_relaxed);
    for (unsigned i = 0; i < n; i++)
        if (ops[i]->rc == 0 && ops[i]->apply) ops[i]->apply(ops[i]);
    for (unsigned i = 0; i < n; i++)
        op_complete(s, ops[i]);
    return GROUP_DONE;
}

/*
 * Runs |n| ordinary ops in one transaction and completes every one of
 * them. A clustered store runs the group again while its leader cannot be
 * reached or its database is busy, pausing 1 ms, then twice as long each
 * time up to 100 ms, for at most cluster_wait_ms; then every op fails with
 * NANA_ERR_NOLEADER (or NANA_ERR_BUSY).
 */
static void run_group(nana_store *s, nana_wop **ops, unsigned n)
{
    uint64_t deadline = nana_now_ns() + (uint64_t)s->opts.cluster_wait_ms * 1000000ull;
    unsigned pause_ms = 1;
    while (run_group_once(s, ops, n) == GROUP_AGAIN) {
        if (nana_now_ns() >= deadline) {
            int rc = s->writer.conn.lost ? NANA_ERR_NOLEADER : NANA_ERR_BUSY;
            char why[NANA_ERRMSG_MAX]; /* the last try's reason (formatting over it garbles it) */
            snprintf(why, sizeof(why), "%s", nana_errmsg());
            if (rc == NANA_ERR_NOLEADER)
                (void)nana_err_set(rc,
                                   "no leader of the cluster took the write within %u ms "
                                   "(it was not applied): %.200s",
                                   s->opts.cluster_wait_ms, why);
            else
                (void)nana_err_set(rc, "the clustered database stayed busy for %u ms",
                                   s->opts.cluster_wait_ms);
            fail_all(s, ops, n, rc);
            return;
        }
        struct timespec ts = {0, (long)pause_ms * 1000000L};
        nanosleep(&ts, NULL);
        pause_ms = pause_ms >= 50 ? 100 : pause_ms * 2;
    }
}

static void process(nana_store *s, nana_wop **ops, unsigned n);

/* Appends |op| to a singly linked list. */
static void list_push(nana_wop **head, nana_wop **tail, nana_wop *op)
{
    op->next = NULL;
    if (*tail)
        (*tail)->next = op;
    else
        *head = op;
    *tail = op;
}

/* Holds another thread's op until the open transaction ends. */
static void park(nana_store *s, nana_wop *op)
{
    nana_writer *w = &s->writer;
    if (w->parked >= w->cap) {
        op_reset(op);
        op->rc = NANA_ERR_BUSY;
        snprintf(op->errmsg, sizeof(op->errmsg),
                 "a transaction is open and %u writes already wait for it", w->parked);
        op_complete(s, op);
        return;
    }
    list_push(&w->parked_head, &w->parked_tail, op);
    w->parked++;
}

/*
 * Ends the explicit transaction's state after a commit (|committed|), a
 * rollback or an abort. Runs before the ending op completes, so its caller
 * sees the transaction over when its call returns.
 */
static void txn_close(nana_store *s, bool committed)
{
    nana_writer *w = &s->writer;
    w->in_txn = false;
    w->txn_owner = 0;
    atomic_store(&s->txn_owner, 0);
    atomic_store(&s->txn_active, 0);
    /* The owner's writes bypassed the caches: drop what may be stale. */
    if (committed) nana_store_clear_caches(s);
}

/*
 * After the transaction ended: completes the owner's deferred
 * asynchronous ops, then runs the ops other threads queued meanwhile.
 */
static void txn_release(nana_store *s, bool committed)
{
    nana_writer *w = &s->writer;
    nana_wop *op = w->deferred_head;
    w->deferred_head = w->deferred_tail = NULL;
    while (op) {
        nana_wop *next = op->next;
        if (!committed) {
            nana_val_unref(op->result);
            op->result = NULL;
            op->rc = NANA_ERR_TXN;
            snprintf(op->errmsg, sizeof(op->errmsg), "the transaction was rolled back");
        }
        op_complete(s, op);
        op = next;
    }
    unsigned n = w->parked;
    if (n == 0) return;
    nana_wop **held = malloc(n * sizeof(*held));
    nana_wop *p = w->parked_head;
    w->parked_head = w->parked_tail = NULL;
    w->parked = 0;
    if (!held) {
        /* No memory to batch them: run them one by one. */
        while (p) {
            nana_wop *next = p->next;
            process(s, &p, 1);
            p = next;
        }
        return;
    }
    for (unsigned i = 0; i < n; i++, p = p->next)
        held[i] = p;
    process(s, held, n);
    free(held);
}

/* Runs one op that is not part of a group. */
static void run_single(nana_store *s, nana_wop *op)
{
    nana_writer *w = &s->writer;
    nana_conn *c = &w->conn;
    int rc = 0;
    bool defer = false;
    bool ended = false, committed = false;
    op_reset(op);
    if (!(op->flags & (WOP_READ | WOP_TXN_COMMIT | WOP_TXN_ROLLBACK)) && writes_refused(s)) {
        rc = nana_store_damaged_err();
    } else if (op->flags & WOP_TXN_BEGIN) {
        if (w->in_txn) {
            rc = nana_err_set(NANA_ERR_TXN,
                              "Transaction already in progress. SQLite does not support nested "
                              "transactions; commit or rollback the current transaction first.");
        } else if (!(rc = nana_conn_exec(c, "BEGIN IMMEDIATE"))) {
            w->in_txn = true;
            w->txn_owner = op->owner;
            atomic_store(&s->txn_owner, op->owner);
            atomic_store(&s->txn_active, 1);
        }
    } else if (op->flags & (WOP_TXN_COMMIT | WOP_TXN_ROLLBACK)) {
        bool commit = (op->flags & WOP_TXN_COMMIT) != 0;
        if (!w->in_txn) {
            rc = nana_err_set(NANA_ERR_TXN, "No transaction in progress. Call "
                                            "begin_transaction() first.");
        } else if (commit) {
            rc = nana_conn_exec(c, "COMMIT");
            if (!rc) {
                atomic_fetch_add_explicit(&s->st_commits, 1, memory_order_relaxed);
                ended = committed = true;
            } else if (nana_conn_autocommit(c)) {
                ended = true; /* SQLite rolled it back */
            }
        } else {
            rc = nana_conn_exec(c, "ROLLBACK");
            ended = true;
        }
    } else if (op->flags & WOP_READ) {
        rc = op->exec(op, c);
    } else if (op->flags & WOP_ALONE) {
        if (w->in_txn)
            rc = nana_err_set(NANA_ERR_TXN, "this operation cannot run inside a transaction");
        else
            rc = op->exec(op, c);
        if (!rc && op->apply) op->apply(op);
    } else if (!w->in_txn) {
        run_group(s, &op, 1);
        return;
    } else {
        /* The owner's write inside its transaction: no cache update (the
         * commit empties the caches); an asynchronous one completes at the
         * end of the transaction. */
        rc = run_exec(op, c, true);
        if (rc && nana_conn_autocommit(c)) {
            char msg[NANA_ERRMSG_MAX];
            snprintf(msg, sizeof(msg), "%s", nana_errmsg());
            rc = nana_err_set(rc, "%s; the transaction was rolled back", msg);
            ended = true;
        } else if (!rc && op->complete) {
            defer = true;
        }
    }
    if (rc) op_fail(op, rc);
    if (ended) txn_close(s, committed);
    if (defer)
        list_push(&w->deferred_head, &w->deferred_tail, op);
    else
        op_complete(s, op);
    if (ended) txn_release(s, committed);
}

/* Runs a batch taken from the queue: groups ordinary ops, parks other
 * threads' ops while a transaction is open. */
static void process(nana_store *s, nana_wop **ops, unsigned n)
{
    nana_writer *w = &s->writer;
    const unsigned special =
        WOP_ALONE | WOP_READ | WOP_TXN_BEGIN | WOP_TXN_COMMIT | WOP_TXN_ROLLBACK;
    unsigned i = 0;
    while (i < n) {
        if (w->in_txn) {
            if (ops[i]->owner == w->txn_owner)
                run_single(s, ops[i]);
            else
                park(s, ops[i]);
            i++;
            continue;
        }
        if (ops[i]->flags & special) {
            run_single(s, ops[i]);
            i++;
            continue;
        }
        unsigned j = i;
        while (j < n && !(ops[j]->flags & special))
            j++;
        run_group(s, ops + i, j - i);
        i = j;
    }
}

/* True if any table deletes rows whose TTL passed. */
static bool any_ttl_delete(nana_store *s)
{
    bool any = false;
    pthread_mutex_lock(&s->tables_mu);
    for (nana_table *t = s->tables; t; t = t->next)
        if (t->cache.opts.kind == NANA_CACHE_TTL && t->cache.opts.ttl_delete_rows) any = true;
    pthread_mutex_unlock(&s->tables_mu);
    return any;
}

static void *writer_main(void *arg)
{
    nana_store *s = arg;
    nana_writer *w = &s->writer;
    for (;;) {
        pthread_mutex_lock(&w->mu);
        while (w->count == 0 && !w->stop) {
            if (!any_ttl_delete(s)) {
                pthread_cond_wait(&w->cv_work, &w->mu);
                continue;
            }
            struct timespec ts =
                nana_timespec_at(nana_now_ns() + (uint64_t)SWEEP_INTERVAL_MS * 1000000ull);
            if (pthread_cond_timedwait(&w->cv_work, &w->mu, &ts) == ETIMEDOUT && w->count == 0 &&
                !w->in_txn) {
                pthread_mutex_unlock(&w->mu);
                nana_ttl_sweep(s);
                pthread_mutex_lock(&w->mu);
            }
        }
        if (w->count == 0 && w->stop) {
            pthread_mutex_unlock(&w->mu);
            break;
        }
        unsigned n = 0;
        while (w->count > 0 && n < s->opts.max_group) {
            w->batch[n++] = w->ring[w->head];
            w->head = (w->head + 1) % w->cap;
            w->count--;
        }
        pthread_cond_broadcast(&w->cv_space);
        pthread_mutex_unlock(&w->mu);
        process(s, w->batch, n);
    }
    return NULL;
}

int nana_writer_start(nana_store *s)
{
    nana_writer *w = &s->writer;
    w->cap = s->opts.write_queue;
    w->ring = calloc(w->cap, sizeof(*w->ring));
    w->batch = calloc(s->opts.max_group, sizeof(*w->batch));
    if (!w->ring || !w->batch) {
        free(w->ring);
        free(w->batch);
        w->ring = w->batch = NULL;
        return nana_err_set(NANA_ERR_NOMEM, "out of memory for the write queue");
    }
    pthread_mutex_init(&w->mu, NULL);
    nana_cond_init_monotonic(&w->cv_work);
    nana_cond_init_monotonic(&w->cv_space);
    if (pthread_create(&w->thread, NULL, writer_main, s) != 0) {
        free(w->ring);
        free(w->batch);
        w->ring = w->batch = NULL;
        return nana_err_set(NANA_ERR_NOMEM, "cannot start the writer thread");
    }
    w->started = true;
    return NANA_OK;
}

void nana_writer_stop(nana_store *s)
{
    nana_writer *w = &s->writer;
    if (!w->started) return;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_broadcast(&w->cv_work);
    pthread_cond_broadcast(&w->cv_space);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    w->started = false;
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv_work);
    pthread_cond_destroy(&w->cv_space);
    free(w->ring);
    free(w->batch);
    w->ring = w->batch = NULL;
}

/* Puts |op| on the queue, waiting up to write_wait_ms for room if |wait|. */
static int enqueue(nana_store *s, nana_wop *op, bool wait)
{
    nana_writer *w = &s->writer;
    pthread_mutex_lock(&w->mu);
    if (wait && w->count == w->cap && !w->stop) {
        struct timespec ts =
            nana_timespec_at(nana_now_ns() + (uint64_t)s->opts.write_wait_ms * 1000000ull);
        while (w->count == w->cap && !w->stop) {
            if (pthread_cond_timedwait(&w->cv_space, &w->mu, &ts) == ETIMEDOUT) break;
        }
    }
    if (w->stop) {
        pthread_mutex_unlock(&w->mu);
        return nana_err_set(NANA_ERR_CLOSED, "the store is closing");
    }
    if (w->count == w->cap) {
        pthread_mutex_unlock(&w->mu);
        return nana_err_set(NANA_ERR_BUSY, "the write queue is full (%u writes waiting)", w->cap);
    }
    w->ring[(w->head + w->count) % w->cap] = op;
    w->count++;
    if (w->count == 1) pthread_cond_signal(&w->cv_work);
    pthread_mutex_unlock(&w->mu);
    return NANA_OK;
}

int nana_writer_run(nana_store *s, nana_wop *op)
{
    if (s->opts.read_only && !(op->flags & (WOP_READ | WOP_TXN_COMMIT | WOP_TXN_ROLLBACK)))
        return nana_err_set(NANA_ERR_READONLY, "the store was opened read-only");
    atomic_init(&op->done, 0);
    op->rc = 0;
    op->result = NULL;
    op->errmsg[0] = '\0';
    op->complete = NULL;
    op->owner = nana_thread_token();
    int rc = enqueue(s, op, true);
    if (rc) return rc;
    while (!atomic_load_explicit(&op->done, memory_order_acquire))
        futex_wait(&op->done, 0);
    if (op->rc) {
        nana_val_unref(op->result);
        op->result = NULL;
        nana_err_set_str(op->rc, op->errmsg);
    }
    return op->rc;
}

int nana_writer_submit(nana_store *s, nana_wop *op)
{
    if (s->opts.read_only) return nana_err_set(NANA_ERR_READONLY, "the store was opened read-only");
    op->rc = 0;
    op->result = NULL;
    op->errmsg[0] = '\0';
    op->owner = nana_thread_token();
    return enqueue(s, op, false);
}

/* A read routed through the writer during an explicit transaction. */
typedef struct read_op {
    nana_wop super;
    nana_read_fn fn;
    void *arg;
} read_op;

static int read_op_exec(nana_wop *op, nana_conn *c)
{
    read_op *r = (read_op *)op;
    return r->fn(c, r->arg);
}

/*
 * A read on a clustered store whose link to the leader was lost: reads
 * change nothing, so it runs again (linking to the new leader) until
 * cluster_wait_ms after it |started|, pausing 10 ms between tries.
 */
static int read_again(nana_store *s, nana_conn *c, nana_read_fn fn, void *arg, int rc,
                      uint64_t started)
{
    uint64_t deadline = started + (uint64_t)s->opts.cluster_wait_ms * 1000000ull;
    while (rc && c->lost && nana_now_ns() < deadline) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
        c->lost = false;
        rc = fn(c, arg);
    }
    return rc;
}

int nana_store_read(nana_store *s, nana_read_fn fn, void *arg)
{
    if (nana_in_own_txn(s)) {
        read_op r = {.super = {.exec = read_op_exec, .flags = WOP_READ}, .fn = fn, .arg = arg};
        return nana_writer_run(s, &r.super);
    }
    nana_conn *c = nana_pool_acquire(&s->pool, s->opts.busy_timeout_ms);
    if (!c) return NANA_ERR_BUSY;
    uint64_t started = c->cluster ? nana_now_ns() : 0;
    int rc = fn(c, arg);
    if (c->cluster && c->lost) rc = read_again(s, c, fn, arg, rc, started);
    nana_pool_release(&s->pool, c);
    atomic_fetch_add_explicit(&s->st_sqlite_reads, 1, memory_order_relaxed);
    return rc;
}
