/*
 * core.c - running a call: policy, rate, the database and table, the fast
 * paths, the workers, deadlines and the answer (see nana_core.h).
 *
 * nana_core_try answers on the door's thread what needs no store thread:
 * a refusal (policy, rate, stopping), or a read the table's cache holds.
 * nana_core_start takes the rest: a plain write (NANA_M_ASYNC) goes
 * straight to the store's group-commit writer and is answered when its
 * group commits; anything else waits in the worker queue. Both are
 * watched by the deadline thread: at a call's deadline it is answered
 * with a timeout, and one still queued never runs.
 *
 * A started call is answered once (door->answer) and released once
 * (door->release) when the core no longer touches it. A worker computes
 * its answer aside and writes it into the call only if nana_work_finish
 * says the call was not answered at its deadline meanwhile.
 */
#include "core/core_int.h"

#include "util/nana_log.h"
#include "util/nana_mem.h"
#include "util/nana_time.h"

#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

void nana_core_opts_init(nana_core_opts *o)
{
    memset(o, 0, sizeof(*o));
    nana_store_opts_init(&o->store);
    o->max_dbs = 64;
    o->workers = 8;
    o->queue_limit = 4096;
    o->call_timeout_ms = 15000;
    o->calls_per_sec = 1e6;
}

void nana_core_result_clear(nana_core_result *r)
{
    if (!r) return;
    nana_val_unref(r->v);
    if (r->kind == NANA_RES_ROWS) nana_rows_free(r->rows); /* .rows is set only then */
    memset(r, 0, sizeof(*r));
}

bool nana_core_error_expected(int code)
{
    switch (code) {
    case NANA_ERR_IO:
    case NANA_ERR_NOMEM:
    case NANA_ERR_INTERNAL:
        return false;
    default:
        return code < 0 && code >= NANA_ERR_OUTCOME; /* the last code of nana_err.h */
    }
}

const char *nana_core_error_type(int code, const char **code_field, bool *expected)
{
    *expected = true;
    *code_field = NULL;
    switch (code) {
    case NANA_ERR_NOTFOUND:
        return "KeyError";
    case NANA_ERR_INVALID:
    case NANA_ERR_TOOBIG:
        return "ValueError";
    case NANA_ERR_TYPE:
    case NANA_ERR_JSON:
        return "TypeError";
    case NANA_ERR_VALIDATION:
        return "NanaSQLiteValidationError";
    case NANA_ERR_TXN:
        return "NanaSQLiteTransactionError";
    case NANA_ERR_BUSY:
        *code_field = "busy";
        return "NanaSQLiteLockError";
    case NANA_ERR_DB:
    case NANA_ERR_CORRUPT:
    case NANA_ERR_READONLY:
    case NANA_ERR_FULL:
        return "NanaSQLiteDatabaseError";
    case NANA_ERR_CLOSED:
        return "NanaSQLiteClosedError";
    case NANA_ERR_PERM:
        return "PermissionError";
    case NANA_ERR_UNAVAILABLE:
        return "NanaSQLiteError";
    case NANA_ERR_TIMEOUT:
        *code_field = "timeout";
        return "RuntimeError";
    case NANA_ERR_OVERLOAD:
        *code_field = "busy";
        return "RuntimeError";
    case NANA_ERR_RATE:
        *code_field = "rate_limited";
        return "RuntimeError";
    case NANA_ERR_SHUTDOWN:
        *code_field = "shutdown";
        return "RuntimeError";
    case NANA_ERR_TOOEARLY:
        *code_field = "too_early";
        return "RuntimeError";
    case NANA_ERR_NOLEADER:
        *code_field = "no_leader";
        return "RuntimeError";
    case NANA_ERR_OUTCOME:
        *code_field = "outcome_unknown";
        return "NanaSQLiteDatabaseError";
    default:
        *expected = false;
        return "InternalServerError";
    }
}

/* ---- the answer --------------------------------------------------------------- */

/* Hands a started call's answer to its door (and counts it). */
static void answer(nana_core_call *c)
{
    nana_core *core = c->in.core;
    atomic_fetch_add_explicit(&core->st_calls, 1, memory_order_relaxed);
    c->door->answer(c);
}

/* The core is done with a started call. */
static void release(nana_core_call *c)
{
    nana_arena_free(&c->in.arena);
    c->door->release(c);
}

/* Logs an error that should not happen; the client hears only that it did. */
static void log_unexpected(const nana_core_call *c, const nana_error *e)
{
    if (nana_core_error_expected(e->code)) return;
    nana_log(NANA_LOG_ERROR, "call '%s' failed unexpectedly: %s: %s",
             c->m ? nana_method_name(c->m) : "?", nana_strerror(e->code), e->msg);
}

/* Answers a started call with its error at once (on the calling thread). */
static void fail_now(nana_core_call *c)
{
    log_unexpected(c, &c->err);
    nana_core_result_clear(&c->res);
    answer(c);
    release(c);
}

/* ---- the database and table ------------------------------------------------- */

/* The name allowed_dbs lists use for the call's database. */
static const char *db_name(const nana_core *core, const nana_core_call *c, char *buf, size_t cap)
{
    if (!c->db) return nana_dbs_default_name(core->dbs);
    snprintf(buf, cap, "%.*s", (int)(c->dblen > 128 ? 128 : c->dblen), c->db);
    return buf;
}

/* The table a dict method works on, if its store and it are open already
 * (the calling thread never opens anything). */
static nana_table *peek_table(nana_store *st, const nana_core_call *c)
{
    if (!st) return NULL;
    if (!c->table) return nana_store_default_table(st);
    if (c->tlen > NANA_MAX_TABLE_NAME) return NULL;
    char tn[NANA_MAX_TABLE_NAME + 1];
    snprintf(tn, sizeof(tn), "%.*s", (int)c->tlen, c->table);
    return nana_store_table_find(st, tn);
}

/*
 * Finds (opening if needed) the call's store and, for a dict method, its
 * table; a worker's step. Refused tables and read-only callers never
 * create a table.
 */
static int open_target(nana_core *core, nana_core_call *c, const char *dbname, nana_error *err)
{
    if (!c->in.store) {
        int rc = nana_dbs_get(core->dbs, c->db, c->dblen, &c->in.store);
        if (rc) return nana_error_capture(err, rc);
    }
    if (!(nana_method_flags(c->m) & NANA_M_DICT) || c->in.t) return NANA_OK;
    nana_store *st = c->in.store;
    if (!c->table) {
        c->in.t = nana_store_default_table(st);
        return NANA_OK;
    }
    if (c->tlen > NANA_MAX_TABLE_NAME)
        return nana_error_setf(err, NANA_ERR_VALIDATION, "Invalid table name: longer than %d",
                               NANA_MAX_TABLE_NAME);
    char tn[NANA_MAX_TABLE_NAME + 2];
    snprintf(tn, sizeof(tn), "%.*s", (int)c->tlen, c->table);
    const nana_account *a = c->acct;
    if (a && !nana_account_table_allowed(a, dbname, tn))
        return nana_error_setf(err, NANA_ERR_PERM, "Table '%s' is not allowed for account '%s'", tn,
                               a->name);
    if ((c->in.t = nana_store_table_find(st, tn))) return NANA_OK;
    if (a && a->read_only && nana_sql_table_exists(st, tn) != 1)
        return nana_error_setf(err, NANA_ERR_DB, "no such table: %s", tn);
    int rc = nana_store_table(st, tn, NULL, &c->in.t);
    return rc ? nana_error_capture(err, rc) : NANA_OK;
}

/* ---- step 1: on the door's thread ------------------------------------------------ */

/* Arguments of a call answered on the calling thread go here first (no
 * allocation when they fit; the call's arguments never outlive the try). */
static _Thread_local max_align_t try_block[512 / sizeof(max_align_t)];

int nana_core_try(nana_core *core, nana_core_call *c, nana_buf *enc)
{
    nana_core_result_clear(&c->res);
    nana_error_clear(&c->err);
    if (atomic_load_explicit(&core->draining, memory_order_relaxed)) {
        nana_error_setf(&c->err, NANA_ERR_SHUTDOWN, "Server is shutting down");
        return NANA_CORE_DONE;
    }
    char dbn[136];
    const char *dbname = db_name(core, c, dbn, sizeof(dbn));
    if (nana_core_allowed(c, dbname, &c->err)) return NANA_CORE_DONE;
    const nana_account *a = c->acct;
    if (a) {
        double limit = a->max_calls_per_sec > 0 ? a->max_calls_per_sec : core->o.calls_per_sec;
        if (!nana_rates_take(core->rates, a, c->rate, limit, nana_now_ns())) {
            atomic_fetch_add_explicit(&core->st_rate, 1, memory_order_relaxed);
            nana_error_setf(&c->err, NANA_ERR_RATE,
                            "Rate limit exceeded: %.0f calls/s for account '%s'", limit, a->name);
            return NANA_CORE_DONE;
        }
    }
    unsigned fl = nana_method_flags(c->m);
    c->in.store = NULL;
    c->in.t = NULL;
    if (fl & NANA_M_DICT) {
        c->in.store = nana_dbs_peek(core->dbs, c->db, c->dblen);
        nana_table *t = peek_table(c->in.store, c);
        /* A refused table is the worker's to report, in full. */
        if (t && a && !nana_account_table_allowed(a, dbname, nana_table_name(t))) t = NULL;
        c->in.t = t;
    }
    if (!c->in.t || !(fl & NANA_M_CACHED)) return NANA_CORE_QUEUE;
    /* A read the cache may answer: its key, at once when the door can say,
     * else bound in full here. */
    const char *key;
    size_t klen;
    int rc = NANA_OK, hit = 0;
    if (c->door->only_key && c->door->only_key(c, &key, &klen)) {
        hit = nana_method_try_cached(c->m, c->in.t, key, klen, c->door, enc, &c->res);
    } else {
        nana_arena arena;
        nana_arena_init(&arena, try_block, sizeof(try_block));
        nana_args args;
        nana_bind_spec spec = nana_method_spec(c->m);
        rc = c->door->bind(c, &spec, NANA_VALUE_MAX_DEPTH, &arena, &args, &c->err);
        if (!rc)
            hit = nana_method_try_cached(c->m, c->in.t, args.a[0].s, args.a[0].n, c->door, enc,
                                         &c->res);
        nana_arena_free(&arena);
    }
    if (rc) return NANA_CORE_DONE; /* the arguments do not bind: a TypeError now */
    if (hit <= 0) {
        nana_error_clear(&c->err);
        return NANA_CORE_QUEUE; /* a miss (or a bad key: the worker says so in full) */
    }
    atomic_fetch_add_explicit(&core->st_cache, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&core->st_calls, 1, memory_order_relaxed);
    return NANA_CORE_DONE;
}

/* ---- step 2: the store's threads ------------------------------------------------ */

#define CALL_OF(j) ((nana_core_call *)(void *)((char *)(j)-offsetof(nana_core_call, in.job)))

/* Worker: runs the call against the store. */
static void job_run(nana_job *j)
{
    nana_core_call *c = CALL_OF(j);
    nana_core *core = c->in.core;
    if (core->o.worker_delay_ms > 0) {
        struct timespec ts = {core->o.worker_delay_ms / 1000,
                              (long)(core->o.worker_delay_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    nana_core_result res = {0};
    nana_error err;
    nana_error_clear(&err);
    char dbn[136];
    const char *dbname = db_name(core, c, dbn, sizeof(dbn));
    /* Work whose deadline passed before it began never begins (the deadline
     * thread answers it, or this does if it has not yet): only a call that
     * overruns while it runs can finish after its answer said timeout. */
    int rc = j->deadline && nana_now_ns() >= j->deadline
                 ? nana_error_setf(&err, NANA_ERR_TIMEOUT, "Call timed out after %u ms",
                                   c->in.timeout_ms)
                 : open_target(core, c, dbname, &err);
    nana_args args;
    if (!rc) {
        nana_bind_spec spec = nana_method_spec(c->m);
        rc = c->door->bind(c, &spec, NANA_VALUE_MAX_DEPTH, &c->in.arena, &args, &err);
    }
    if (!rc) {
        nana_run_env env = {.store = c->in.store,
                            .table = c->in.t,
                            .acct = c->acct,
                            .dbname = dbname,
                            .backup_dir = nana_dbs_backup_dir(core->dbs)};
        rc = nana_method_run(c->m, &env, &args, &c->in.arena, &res, &err);
    }
    if (rc && err.code != NANA_ERR_TIMEOUT) log_unexpected(c, &err);
    switch (nana_work_finish(core->work, j)) {
    case NANA_FINISH_ANSWER:
        c->res = res;
        c->err = err;
        answer(c);
        release(c);
        break;
    case NANA_FINISH_DROP: /* answered at its deadline: this late result goes */
        nana_core_result_clear(&res);
        release(c);
        break;
    case NANA_FINISH_LATER: /* ... and its expire() is still running: late() releases */
        nana_core_result_clear(&res);
        break;
    }
}

/* Deadline thread (or the stop): the call's time is up, or the pool stopped. */
static void job_expire(nana_job *j, nana_expiry why)
{
    nana_core_call *c = CALL_OF(j);
    nana_core *core = c->in.core;
    nana_core_result_clear(&c->res);
    if (why == NANA_EXPIRE_STOPPED) {
        nana_error_setf(&c->err, NANA_ERR_SHUTDOWN, "Server is shutting down");
    } else {
        atomic_fetch_add_explicit(&core->st_timeouts, 1, memory_order_relaxed);
        nana_error_setf(&c->err, NANA_ERR_TIMEOUT, "Call timed out after %u ms", c->in.timeout_ms);
    }
    answer(c);
    if (why != NANA_EXPIRE_RUNNING) release(c); /* it never ran: nothing else touches it */
}

/* Deadline thread: a call answered at its deadline finished meanwhile. */
static void job_late(nana_job *j)
{
    release(CALL_OF(j));
}

/* Store's writer: an asynchronous write committed or failed. */
static void async_done(void *arg, int rc, const char *errmsg)
{
    nana_core_call *c = arg;
    nana_core *core = c->in.core;
    switch (nana_work_finish(core->work, &c->in.job)) {
    case NANA_FINISH_ANSWER:
        nana_core_result_clear(&c->res);
        nana_error_clear(&c->err);
        if (rc) {
            c->err.code = rc;
            snprintf(c->err.msg, sizeof(c->err.msg), "%s", errmsg ? errmsg : "");
            log_unexpected(c, &c->err);
        }
        answer(c);
        release(c);
        break;
    case NANA_FINISH_DROP:
        release(c);
        break;
    case NANA_FINISH_LATER:
        break;
    }
}

bool nana_core_cancel(nana_core *core, nana_core_call *c)
{
    if (!nana_work_cancel(core->work, &c->in.job)) return false;
    nana_core_result_clear(&c->res);
    nana_error_setf(&c->err, NANA_ERR_CLOSED, "Call cancelled by the client before it ran");
    answer(c);
    release(c);
    return true;
}

bool nana_core_binds_now(const nana_core_call *c)
{
    return c->m && (nana_method_flags(c->m) & NANA_M_ASYNC) && c->in.t;
}

/*
 * The async-write path: the call's (key, value) bound here and queued to
 * the store's writer, answered when its group commits (or at once, with
 * its arguments' error).
 */
static void start_async(nana_core *core, nana_core_call *c)
{
    /* The writer copies the key and the value: the bound arguments live
     * only until it has, here on the stack (a large value spills into
     * blocks freed below). */
    _Alignas(max_align_t) char block[1024];
    nana_arena arena;
    nana_arena_init(&arena, block, sizeof(block));
    nana_args args;
    nana_bind_spec spec = nana_method_spec(c->m);
    if (c->door->bind(c, &spec, NANA_VALUE_MAX_DEPTH, &arena, &args, &c->err)) {
        nana_arena_free(&arena);
        fail_now(c);
        return;
    }
    int rc = nana_work_track(core->work, &c->in.job);
    if (rc) {
        nana_arena_free(&arena);
        nana_error_capture(&c->err, rc == NANA_ERR_CLOSED ? NANA_ERR_SHUTDOWN : rc);
        fail_now(c);
        return;
    }
    rc = nana_kv_set_async(c->in.t, args.a[0].s, args.a[0].n, args.a[1].s, args.a[1].n, async_done,
                           c);
    if (rc) {
        /* Not queued (busy, a bad key...): answered through the same path. */
        char msg[NANA_ERRMSG_MAX];
        snprintf(msg, sizeof(msg), "%s", nana_errmsg());
        nana_arena_free(&arena);
        async_done(c, rc, msg);
        return;
    }
    nana_arena_free(&arena);
}

void nana_core_start(nana_core *core, nana_core_call *c)
{
    c->in.core = core;
    c->in.job.run = job_run;
    c->in.job.expire = job_expire;
    c->in.job.late = job_late;
    c->in.job.heap_idx = SIZE_MAX;
    c->in.arena = (nana_arena)NANA_ARENA_INIT;
    uint64_t now = nana_now_ns();
    /* Calls with the core's own timeout expire in the order they came. A
     * door's deadline (a gRPC call's grpc-timeout) may be earlier, never
     * later: the call timeout bounds what any call holds. */
    uint64_t limit = now + (uint64_t)core->o.call_timeout_ms * 1000000ull;
    c->in.job.in_order = !c->deadline || c->deadline >= limit;
    if (c->in.job.in_order) c->deadline = limit;
    uint64_t left = c->deadline > now ? (c->deadline - now + 999999) / 1000000 : 0;
    c->in.timeout_ms = left > UINT32_MAX ? UINT32_MAX : (uint32_t)left;
    c->in.job.deadline = c->deadline;
    nana_core_result_clear(&c->res);
    nana_error_clear(&c->err);
    if (nana_core_binds_now(c)) {
        start_async(core, c);
        return;
    }
    int rc = nana_work_submit(core->work, &c->in.job);
    if (!rc) return;
    if (rc == NANA_ERR_BUSY) {
        atomic_fetch_add_explicit(&core->st_busy, 1, memory_order_relaxed);
        nana_error_capture(&c->err, NANA_ERR_OVERLOAD);
    } else {
        nana_error_capture(&c->err, rc == NANA_ERR_CLOSED ? NANA_ERR_SHUTDOWN : rc);
    }
    fail_now(c);
}

/* ---- the core --------------------------------------------------------------------- */

/*
 * Housekeeping on the deadline thread when no call is in flight: after
 * calls were served, freed memory goes back to the system (a burst of
 * large replies leaves the process at its earlier size, not its peak).
 */
static void core_idle(void *arg)
{
    nana_core *core = arg;
    uint64_t calls = atomic_load(&core->st_calls);
    if (calls == core->trimmed_at_calls || atomic_load(&core->held) != 0) return;
    core->trimmed_at_calls = calls;
    malloc_trim(0);
}

int nana_core_new(const nana_core_opts *o, nana_core **out)
{
    *out = NULL;
    nana_core *core = nana_calloc(1, sizeof(*core));
    if (!core) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    core->o = *o;
    nana_core_opts d;
    nana_core_opts_init(&d);
    if (!core->o.max_dbs) core->o.max_dbs = d.max_dbs;
    if (!core->o.workers) core->o.workers = d.workers;
    if (!core->o.queue_limit) core->o.queue_limit = d.queue_limit;
    if (!core->o.call_timeout_ms) core->o.call_timeout_ms = d.call_timeout_ms;
    if (core->o.calls_per_sec <= 0) core->o.calls_per_sec = d.calls_per_sec;
    int rc = nana_rates_new(&core->rates);
    if (!rc) rc = nana_dbs_open(o->db_dir, o->db_path, &core->o.store, core->o.max_dbs, &core->dbs);
    if (!rc) rc = nana_work_new(core->o.workers, core->o.queue_limit, &core->work);
    if (rc) {
        nana_error e;
        nana_error_capture(&e, rc);
        (void)nana_core_stop(core);
        nana_core_free(core);
        return nana_err_set_str(rc, e.msg);
    }
    nana_work_set_idle(core->work, core_idle, core);
    /* Large buffers (replies, values) are mapped and unmapped on their own,
     * so freeing them returns the memory at once: a fixed threshold, not
     * glibc's adaptive one, which after the first large free keeps every
     * later large buffer in the heap. */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    *out = core;
    return NANA_OK;
}

const char *nana_core_default_db(const nana_core *core)
{
    return nana_dbs_default_name(core->dbs);
}

int nana_core_check_db_name(const char *name, size_t len, nana_error *err)
{
    int rc = nana_dbs_check_name(name, len);
    return rc ? nana_error_capture(err, rc) : NANA_OK;
}

void nana_core_hold(nana_core *core)
{
    atomic_fetch_add_explicit(&core->held, 1, memory_order_relaxed);
}

void nana_core_unhold(nana_core *core)
{
    atomic_fetch_sub_explicit(&core->held, 1, memory_order_relaxed);
}

uint64_t nana_core_held(nana_core *core)
{
    return atomic_load(&core->held);
}

void nana_core_drain(nana_core *core)
{
    atomic_store(&core->draining, true);
}

bool nana_core_draining(nana_core *core)
{
    return atomic_load_explicit(&core->draining, memory_order_relaxed);
}

int nana_core_stop(nana_core *core)
{
    if (!core) return NANA_OK;
    if (core->work) nana_work_stop(core->work);
    int rc = nana_dbs_close(core->dbs); /* queued writes finish and are answered */
    core->dbs = NULL;
    return rc;
}

void nana_core_free(nana_core *core)
{
    if (!core) return;
    nana_dbs_close(core->dbs);
    nana_work_free(core->work);
    nana_rates_free(core->rates);
    nana_free(core);
}

void nana_core_get_stats(nana_core *core, nana_core_stats *out)
{
    out->calls = atomic_load(&core->st_calls);
    out->cache_answers = atomic_load(&core->st_cache);
    out->timeouts = atomic_load(&core->st_timeouts);
    out->busy = atomic_load(&core->st_busy);
    out->rate_limited = atomic_load(&core->st_rate);
}
