/*
 * nana_core.h - the call core: what every front door of the server shares.
 *
 * A door (the NanaSQLite wire protocol today; gRPC over HTTP/3 and HTTP/2
 * next) turns its wire format into a call: which method (a row of the one
 * method table), on behalf of which account, on which database and table,
 * with which arguments, by when. The core owns everything after that:
 * policy (the account's rights on the method, database and tables), the
 * account's call rate, finding or opening the database and table (once per
 * call), the fast paths (a read the cache answers is answered on the
 * calling thread; a plain write is queued to the store's group-commit
 * writer), the worker pool for everything else, and deadlines. Its answer
 * is a value or an error, never bytes of a wire format: the door encodes it.
 *
 * A call in two steps, so the common cached read costs the door nothing
 * it must keep:
 *   1. nana_core_try(core, &call, enc) on the door's thread: policy, rate,
 *      and the answer if it can be given at once (a cache hit, an error).
 *      NANA_CORE_DONE: call.res / call.err hold it; nothing is kept.
 *   2. NANA_CORE_QUEUE: the door makes a call object it keeps for the
 *      call's life (a copy of the first, with the door's own copy of what
 *      it points into) and hands it to nana_core_start. The core answers it
 *      later through the door's ops: answer() exactly once, from a worker,
 *      the store's writer or the deadline thread (the door encodes there
 *      and takes the reply to its connection's thread), then release()
 *      once the core no longer touches it (later than answer() when the
 *      deadline answered a call still running).
 *
 * Errors are values (nana_error): the message travels with the code.
 * Threads: nana_core_try and nana_core_start may be called from any
 * thread; nothing in them blocks (no file is opened, no lock waited on
 * beyond a cache's).
 */
#ifndef NANA_CORE_H
#define NANA_CORE_H

#include "auth/nana_accounts.h"
#include "core/nana_args.h"
#include "core/nana_work.h"
#include "store/nana_store.h"
#include "util/nana_arena.h"
#include "util/nana_buf.h"
#include "util/nana_err.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- the method table ----------------------------------------------------- */

/* What a method is (nana_method_flags). Fast paths and policy follow these
 * flags, never the method's name. */
enum {
    NANA_M_READ = 1u << 0,        /* reads only */
    NANA_M_WRITE = 1u << 1,       /* changes data: refused to read-only accounts */
    NANA_M_ADMIN = 1u << 2,       /* refused unless the account's allowed_methods lists it */
    NANA_M_SQL = 1u << 3,         /* takes caller-written SQL fragments: likewise */
    NANA_M_LOCAL = 1u << 4,       /* NanaSQLite has it, but it cannot run over the network */
    NANA_M_DICT = 1u << 5,        /* works on the call's NanaSQLite table */
    NANA_M_CACHED = 1u << 6,      /* a cache hit answers it on the calling thread */
    NANA_M_ASYNC = 1u << 7,       /* a plain write the store's writer takes as it comes */
    NANA_M_REPLAY_SAFE = 1u << 8, /* may run from 0-RTT data (a replay does no harm) */
    NANA_M_EXISTS = 1u << 9,      /* answers whether the key exists (the cache hit is true) */
    NANA_M_DUNDER = 1u << 10,     /* a "__name__" method callers may use (others are private) */
    NANA_M_INTERNAL = 1u << 11,   /* a door calls it on a client's behalf (AQL queries); no
                                     client names it: nana_method_find does not find it */
};

typedef struct nana_method nana_method;

/* The method called |name|, or NULL if the table has none (or only an
 * internal one: a client's name never finds those). */
const nana_method *nana_method_find(const char *name, size_t len);
/* The internal method called |name| (a door's own choice), or NULL. */
const nana_method *nana_method_find_internal(const char *name);
const char *nana_method_name(const nana_method *m);
unsigned nana_method_flags(const nana_method *m);
/* Its parameters, as binding needs them. */
nana_bind_spec nana_method_spec(const nana_method *m);

/* The table, in order (for listings and completion). */
size_t nana_method_count(void);
const nana_method *nana_method_at(size_t i);

/*
 * Value nesting: how deep one value may nest (arrays and maps on its
 * deepest path, the value itself and empty ones included). It is the
 * store's own limit on stored values, so a value a door accepts is never
 * refused by the store: 128.
 */
#define NANA_VALUE_MAX_DEPTH NANA_DEFAULT_JSON_DEPTH

/* ---- answers -------------------------------------------------------------- */

typedef enum nana_core_result_kind {
    NANA_RES_NIL = 0,
    NANA_RES_BOOL,
    NANA_RES_INT,
    NANA_RES_VAL,     /* .v: JSON text (a reference the result owns) */
    NANA_RES_ENCODED, /* the value's wire form was appended to the door's buffer */
    NANA_RES_ROWS,    /* .rows: keys and values (the result owns them) */
} nana_core_result_kind;

/* A method's answer when it did not fail. */
typedef struct nana_core_result {
    nana_core_result_kind kind;
    bool b;
    int64_t i;
    nana_val *v;
    nana_rows *rows; /* meaningful only when kind is NANA_RES_ROWS */
} nana_core_result;

/* Drops what |r| holds (NULL-safe) and makes it nil. */
void nana_core_result_clear(nana_core_result *r);

/* ---- calls ---------------------------------------------------------------- */

typedef struct nana_core_call nana_core_call;

/* An account's rate bucket (the core's), as a connection remembers it
 * between calls so the core finds it without a search. */
typedef struct nana_rate nana_rate;
typedef struct nana_rate_hint {
    nana_rate *bucket;
    const nana_account *acct; /* the account it was found for */
} nana_rate_hint;

/* What the core needs from a door, one per door kind (static). */
typedef struct nana_door_ops {
    /*
     * Binds |c|'s arguments to |spec| into |out|, in |arena|, values nested
     * at most |max_depth| levels. 0, or an error (a TypeError-class
     * NANA_ERR_TYPE, a value's own error) with its message in |err|. Runs
     * on whichever thread runs the call (the door keeps what it reads).
     */
    int (*bind)(const nana_core_call *c, const nana_bind_spec *spec, unsigned max_depth,
                nana_arena *arena, nana_args *out, nana_error *err);
    /* Optional, the cache's fast path: true with the key when the call's
     * arguments are exactly one positional str (and nothing else), so a
     * cached read needs no binding at all; false to bind in full. */
    bool (*only_key)(const nana_core_call *c, const char **key, size_t *klen);
    /* The answer is in c->res / c->err: called once per started call, never
     * under a core lock, on a worker, the store's writer or the deadline
     * thread. The door encodes it and takes it to its connection. */
    void (*answer)(nana_core_call *c);
    /* The core no longer touches |c| (called once, after answer). */
    void (*release)(nana_core_call *c);
    /* Appends a stored value (JSON text) in the door's wire form: what the
     * cache keeps beside a hot key. */
    int (*encode)(nana_buf *out, const char *json, size_t len);
    uint8_t form; /* which wire form encode() writes (the cache keeps one per key) */
} nana_door_ops;

/* What nana_core_try did. */
enum { NANA_CORE_DONE = 0, NANA_CORE_QUEUE = 1 };

/*
 * A call, as a door describes it. The door embeds it in its own object;
 * the fields under "the core's" are the core's alone.
 */
struct nana_core_call {
    /* the door's */
    const nana_door_ops *door;
    const nana_method *m; /* NULL: not in the table (refused by policy) */
    const char *method;   /* the name as the client sent it, for messages */
    uint32_t mlen;
    const nana_account *acct; /* NULL: unrestricted */
    const char *db;           /* NULL: the default database */
    uint32_t dblen;
    const char *table; /* NULL: the default table */
    uint32_t tlen;
    uint64_t deadline;    /* nana_now_ns() time; 0, or later than the core's call
                             timeout from now: that timeout */
    bool early;           /* it came as 0-RTT data: replay-safe methods only */
    nana_rate_hint *rate; /* where the connection keeps its account's bucket (may be NULL) */
    /* the answer */
    nana_core_result res;
    nana_error err; /* err.code != 0: the call failed (res is nil) */
    /* the core's */
    struct {
        nana_job job; /* in the worker queue and the deadline heap */
        struct nana_core *core;
        nana_store *store; /* found by nana_core_try when already open */
        nana_table *t;
        nana_arena arena; /* the bound arguments */
        uint32_t timeout_ms;
    } in;
};

/* Where a door finds the current accounts (the server's file watcher, or
 * one key). */
typedef struct nana_door_accounts {
    /* The current accounts (a new reference, NULL when there are none) and
     * their generation. */
    nana_accounts *(*get)(void *ctx, uint64_t *gen);
    uint64_t (*gen)(void *ctx);
    void *ctx;
} nana_door_accounts;

/* ---- the core --------------------------------------------------------------- */

typedef struct nana_core nana_core;

typedef struct nana_core_opts {
    const char *db_dir;       /* where calls' "db" names live */
    const char *db_path;      /* the default database */
    nana_store_opts store;    /* for every database it opens */
    unsigned max_dbs;         /* databases open at once, default 64 */
    unsigned workers;         /* worker threads, default 8 */
    unsigned queue_limit;     /* calls waiting for a worker, default 4096 */
    unsigned call_timeout_ms; /* a call's deadline when the door sets none, default 15000 */
    double calls_per_sec;     /* per account unless its own limit is set, default 1e6 */
    int worker_delay_ms;      /* tests only: each worker call first sleeps this long */
} nana_core_opts;

/* Fills |o| with the defaults above (no paths). */
void nana_core_opts_init(nana_core_opts *o);

/*
 * Opens the default database and starts the workers and the deadline
 * thread. *out is the caller's (nana_core_stop, then nana_core_free).
 * Errors name the database or setting at fault.
 */
int nana_core_new(const nana_core_opts *o, nana_core **out);

/*
 * Step 1 of a call (see the top): returns NANA_CORE_DONE with the answer in
 * c->res / c->err, or NANA_CORE_QUEUE when the store's threads must answer.
 * For a NANA_M_CACHED method the door may have written the start of its
 * reply to |enc|: on a hit whose value's wire form the cache keeps, that
 * form is appended there and c->res.kind is NANA_RES_ENCODED. |enc| may be
 * NULL (then no encoded answer).
 */
int nana_core_try(nana_core *core, nana_core_call *c, nana_buf *enc);

/*
 * Step 2: runs a call nana_core_try could not answer. |c| is the door's
 * copy, alive until its release(). Always answered through answer(), from
 * another thread (or before this returns, when it fails at once).
 */
void nana_core_start(nana_core *core, nana_core_call *c);

/*
 * Whether nana_core_start binds |c|'s arguments before it returns (a plain
 * write to an open table, queued straight to the store's writer): then
 * the door need not keep the request's bytes for the call's life.
 */
bool nana_core_binds_now(const nana_core_call *c);

/*
 * The caller gave up on started call |c| (a gRPC client cancelled it):
 * if it has not begun to run it never will, and it is answered now (an
 * error the door may drop) and released: true. False when it runs or ran
 * already (its answer comes as usual), or is a write already queued to
 * the store's writer. Any thread.
 */
bool nana_core_cancel(nana_core *core, nana_core_call *c);

/* The default database's file name (what allowed_dbs lists call it). */
const char *nana_core_default_db(const nana_core *core);

/* Checks a requested database name's form, touching no file: 0, or
 * NANA_ERR_PERM with the message in |err|. */
int nana_core_check_db_name(const char *name, size_t len, nana_error *err);

/* False for errors that mean a bug or a failure of the machine (out of
 * memory, I/O): a door answers those with a generic message, never the
 * detail (which the core logged). */
bool nana_core_error_expected(int code);

/*
 * The Python exception a NanaSQLite client raises for error |code|
 * ("KeyError", "PermissionError", "NanaSQLiteLockError", ...), the same in
 * every door; *code_field gets the machine-readable reason for the
 * conditions a retry may cure ("busy", "timeout", "rate_limited",
 * "shutdown", "too_early"; NULL for others). *expected is false for the
 * server's own faults: their type is "InternalServerError" and their
 * message must not reach the client.
 */
const char *nana_core_error_type(int code, const char **code_field, bool *expected);

/* A call answered through answer() counts until the door says its reply is
 * gone (acknowledged, or the connection ended): the graceful stop waits
 * for these. */
void nana_core_hold(nana_core *core);
void nana_core_unhold(nana_core *core);
uint64_t nana_core_held(nana_core *core);

/* From now on every call is refused as "shutting down". */
void nana_core_drain(nana_core *core);
bool nana_core_draining(nana_core *core);

/*
 * Stops the workers and the deadline thread (queued calls are answered
 * "shutting down" and never run; calls running finish), then closes every
 * database (queued writes finish and are answered). Returns the first
 * close error. Answers may still be on their way to the doors. NULL-safe.
 */
int nana_core_stop(nana_core *core);

/* Frees the core (after nana_core_stop, once the doors took every answer). NULL-safe. */
void nana_core_free(nana_core *core);

/* Counters for logs and tests. */
typedef struct nana_core_stats {
    uint64_t calls;         /* answered */
    uint64_t cache_answers; /* answered from the cache on the calling thread */
    uint64_t timeouts, busy, rate_limited;
} nana_core_stats;

void nana_core_get_stats(nana_core *core, nana_core_stats *out);

#endif
