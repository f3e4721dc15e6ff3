/*
 * server_int.h - the pieces of the server module that its files share:
 * the database registry (dbs.c), the worker pool with deadlines (work.c),
 * the server object (server.c) and the sessions (session.c). Not part of
 * the module's public face (nana_server.h).
 */
#ifndef NANA_SERVER_INT_H
#define NANA_SERVER_INT_H

#include "auth/nana_accounts.h"
#include "util/nana_time.h"
#include "auth/nana_ban.h"
#include "quic/nana_quic.h"
#include "server/nana_methods.h"
#include "server/nana_server.h"

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

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
 * with the message the client gets.
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

/* ---- the worker pool and deadlines (work.c) ---------------------------- */

typedef struct nana_work nana_work;
typedef struct nana_job nana_job;

/*
 * A unit of work with a deadline. The owner embeds it at the start of its
 * own job object. run() is called on a worker; expire() is called by the
 * deadline thread, under the pool's lock (keep it short: post a reply),
 * with |cancelled| true when the job never ran (the owner frees it there).
 */
struct nana_job {
    nana_job *qprev, *qnext; /* queue */
    nana_job *dprev, *dnext; /* deadline order */
    uint64_t deadline;       /* monotonic ns */
    int state;               /* internal */
    bool timed_out;          /* set by the deadline thread */
    void (*run)(nana_job *j);
    void (*expire)(nana_job *j, bool cancelled);
};

/* Starts |workers| threads and the deadline thread; the queue holds |limit| jobs. */
int nana_work_new(unsigned workers, unsigned limit, nana_work **out);

/* Queues |j| (deadline set by the caller). NANA_ERR_BUSY when the queue is full,
 * NANA_ERR_CLOSED when stopping. */
int nana_work_submit(nana_work *w, nana_job *j);

/* Watches the deadline of |j|, which runs elsewhere (an asynchronous store write). */
void nana_work_track(nana_work *w, nana_job *j);

/*
 * Called when |j| finished (by its worker, or the store's callback). Returns
 * true if the owner should send the reply now, false if the deadline thread
 * already answered (the owner then just frees the job).
 */
bool nana_work_finish(nana_work *w, nana_job *j);

/*
 * Calls fn(arg) on the deadline thread, outside the pool's lock, at most
 * once a second while no deadline is being watched (housekeeping when
 * idle). NULL stops it.
 */
void nana_work_set_idle(nana_work *w, void (*fn)(void *arg), void *arg);

/* Jobs queued and running (for the graceful stop). */
unsigned nana_work_pending(nana_work *w);

/* Stops the workers (queued jobs are cancelled through expire) and the
 * deadline thread. Jobs tracked later still finish through nana_work_finish. */
void nana_work_stop(nana_work *w);

/* Frees the pool (after nana_work_stop and after every tracked job finished). */
void nana_work_free(nana_work *w);

/* ---- the server object (server.c) and sessions (session.c) ------------- */

/* A token bucket of one account. */
typedef struct nana_rate {
    pthread_mutex_t mu;
    double tokens;
    uint64_t last_ns;
    char name[72];
} nana_rate;

struct nana_server {
    nana_server_opts o;
    char db_dir[PATH_MAX];
    nana_quic_ep *ep;
    nana_dbs *dbs;
    nana_work *work;
    nana_ban *ban;
    nana_accounts_watch *watch; /* with an accounts file */
    nana_accounts *fixed;       /* without one: the public key's single account */
    nana_quic_callbacks cb;     /* the session callbacks, with the accept hook gated on |ready| */
    /* Set (release) once everything the session callbacks read is in place
     * (ep, dbs, work); until then every connection is refused. */
    atomic_bool ready;
    atomic_bool draining;
    atomic_uint_fast64_t pending; /* calls accepted whose reply is not yet acknowledged */
    atomic_size_t buffered;       /* bytes reserved by unfinished requests, all connections */
    uint64_t trimmed_at_calls;    /* st_calls when freed memory was last given back */
    /* statistics */
    atomic_uint_fast64_t st_calls, st_cache, st_auth_ok, st_auth_failed, st_bans, st_timeouts,
        st_busy, st_rate, st_unread, st_stalled, st_request_timeouts;
    /* rate buckets, one per account name ever seen (bounded) */
    pthread_mutex_t rate_mu;
    nana_rate **rates;
    size_t nrates;
};

/* The current accounts (a new reference) and their generation. */
nana_accounts *nana_server_accounts(nana_server *s, uint64_t *gen);
uint64_t nana_server_accounts_gen(nana_server *s);

/* The bucket of account |name| (created on first use); NULL when the table is full. */
nana_rate *nana_server_rate(nana_server *s, const char *name);

/* Takes one call from |r| at |rate| calls/s; false when over the limit. */
bool nana_rate_take(nana_rate *r, double rate, uint64_t now_ns);

/* The QUIC callbacks of the NanaSQLite door (session.c). */
extern const nana_quic_callbacks nana_session_callbacks;

/* The accept hook: refuses banned addresses and everything while stopping. */
int nana_session_accept(const struct sockaddr *addr, socklen_t len, void *user);

#endif
