/*
 * core_int.h - what the call core's files share: the core object, the
 * database registry (dbs.c), the account rate buckets (rate.c), running a
 * method (methods.c). Not part of the module's public face (nana_core.h).
 */
#ifndef NANA_CORE_INT_H
#define NANA_CORE_INT_H

#include "core/nana_core.h"
#include "core/nana_work.h"

#include <limits.h>
#include <pthread.h>

/* ---- databases (dbs.c) -------------------------------------------------- */

typedef struct nana_dbs nana_dbs;

/*
 * Opens the default database at |default_path| and prepares to open named
 * databases under |dir| (at most |max_open| at once, the default included).
 * *out is owned by the caller (nana_dbs_close).
 */
int nana_dbs_open(const char *dir, const char *default_path, const nana_store_opts *so,
                  unsigned max_open, nana_dbs **out);

/* The default database's file name (what allowed_dbs lists call it). */
const char *nana_dbs_default_name(const nana_dbs *d);

/* The resolved database directory. */
const char *nana_dbs_dir(const nana_dbs *d);

/* Where backup() and restore() may write and read: <dir>/backups (made at open). */
const char *nana_dbs_backup_dir(const nana_dbs *d);

/*
 * Checks the form of a requested database name, without touching the file
 * system: a plain file name, none of the reserved names. 0, or NANA_ERR_PERM
 * with the message the client gets (the thread's detail).
 */
int nana_dbs_check_name(const char *name, size_t len);

/* The store already open under |name| (NULL: the default), or NULL. Never blocks. */
nana_store *nana_dbs_peek(nana_dbs *d, const char *name, size_t len);

/*
 * The store for |name| (NULL: the default), opened if needed. Refuses names
 * that are not plain file names, and anything that resolves outside the
 * directory (NANA_ERR_PERM, with the message the client gets).
 */
int nana_dbs_get(nana_dbs *d, const char *name, size_t len, nana_store **out);

/* Closes every store (finishing queued writes) and frees |d|. Returns the
 * first close error. NULL-safe. */
int nana_dbs_close(nana_dbs *d);

/* ---- rate buckets (rate.c) ------------------------------------------------ */

typedef struct nana_rates nana_rates;

/* Buckets of one second's calls, one per account name (at most 100,000). */
int nana_rates_new(nana_rates **out);
void nana_rates_free(nana_rates *r);

/* Takes one call of account |name| at |rate| calls/s; false when over the
 * limit (when no bucket can be had, the table full or out of memory, the
 * call is let through). |hint| (may be NULL) remembers the bucket between
 * calls of one connection, so the table is searched once. */
bool nana_rates_take(nana_rates *r, const char *name, nana_rate **hint, double rate,
                     uint64_t now_ns);

/* ---- methods (methods.c) -------------------------------------------------- */

/* What running a method needs besides its arguments. */
typedef struct nana_run_env {
    nana_store *store;
    nana_table *table;        /* the call's table (NANA_M_DICT methods) */
    const nana_account *acct; /* NULL: unrestricted */
    const char *dbname;       /* for the account's table allow-list */
    const char *backup_dir;   /* relative backup/restore paths are taken inside it */
} nana_run_env;

/*
 * May the call run (its method, account, database name as allowed_dbs
 * names it, replayable or not)? 0, or the refusal in |err| (NANA_ERR_PERM,
 * NANA_ERR_TOOEARLY). Table allow-lists are checked when the call runs
 * (nana_method_run), where the table arguments are known.
 */
int nana_core_allowed(const nana_core_call *c, const char *dbname, nana_error *err);

/*
 * Runs method |m| with bound |args|: 0 with the answer in |res| (which then
 * owns what it holds), or the error in |err|.
 */
int nana_method_run(const nana_method *m, const nana_run_env *env, const nana_args *args,
                    nana_arena *arena, nana_core_result *res, nana_error *err);

/*
 * Tries to answer NANA_M_CACHED method |m| for |key| from |t|'s cache alone:
 * 1 with the answer in |res| (NANA_RES_ENCODED: the value's wire form in
 * the door's |enc|; or a value or bool), 0 when the store's threads must
 * answer (a miss), or a negative error for a bad key.
 */
int nana_method_try_cached(const nana_method *m, nana_table *t, const char *key, size_t klen,
                           const nana_door_ops *door, nana_buf *enc, nana_core_result *res);

/* Appends Python's repr() of the str |s| (UTF-8), for KeyError messages. */
int nana_py_repr_str(nana_buf *out, const char *s, size_t n);

/* ---- the core (core.c) ---------------------------------------------------------- */

struct nana_core {
    nana_core_opts o;
    nana_dbs *dbs;
    nana_work *work;
    nana_rates *rates;
    atomic_bool draining;
    atomic_uint_fast64_t held; /* calls answered whose reply the door still holds */
    atomic_uint_fast64_t st_calls, st_cache, st_timeouts, st_busy, st_rate;
    uint64_t trimmed_at_calls; /* st_calls when freed memory was last given back */
};

#endif
