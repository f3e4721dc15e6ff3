/*
 * store_int.h - the store's internal structures, shared by the src/store files.
 *
 * How a call travels:
 *
 *   read:  caller thread -> table cache (hit: done, no SQLite)
 *                        -> miss: borrow a reader connection from the pool,
 *                           step a cached prepared statement, return it,
 *                           fill the cache if no write raced the read.
 *   write: caller thread -> validate -> a nana_wop (operation) onto the
 *          writer queue -> the writer thread takes up to max_group ops,
 *          BEGIN IMMEDIATE, runs each op's exec() (SAVEPOINT around ops
 *          with several statements), COMMIT, then each op's apply()
 *          updates the caches, then the waiting callers are woken.
 *
 * During an explicit transaction (nana_store_begin) the writer runs ops
 * one at a time inside it, and reads that miss the cache are queued to
 * the writer too, so they see the transaction's own writes.
 *
 * Nothing outside src/store includes this header.
 */
#ifndef NANA_STORE_INT_H
#define NANA_STORE_INT_H

#include "dqlite/nana_dqlite.h"
#include "store/nana_store.h"
#include "util/nana_buf.h"
#include "util/nana_json.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

/* ------------------------------------------------------------------ */
/* Connections (conn.c)                                                */
/* ------------------------------------------------------------------ */

/* One SQLite connection with its cache of prepared statements, keyed by
 * the address of an SQL string that lives as long as the store. */
typedef struct nana_conn {
    sqlite3 *db;              /* NULL on a clustered store's connections */
    struct nana_store *store; /* its store (for nana_conn_err), set after opening */
    /* A clustered store's connection (clink.c): a dqlite link to the leader. */
    bool cluster;             /* this connection speaks to the cluster */
    bool dq_txn;              /* a transaction is open on dq */
    bool lost;                /* the last call lost the link (leader gone or moved) */
    struct nana_dql_conn *dq; /* NULL until first used, and after the link broke */
    const char **stmt_keys;   /* open-addressed table of SQL string addresses */
    sqlite3_stmt **stmts;
    size_t stmt_cap; /* power of two, 0 when empty */
    size_t stmt_count;
} nana_conn;

typedef enum nana_conn_role {
    NANA_CONN_READER,     /* read-only, for the reader pool */
    NANA_CONN_WRITER,     /* read-write; creates the file and switches it to WAL */
    NANA_CONN_CHECKPOINT, /* read-write, for WAL checkpoints only */
} nana_conn_role;

/* Opens one connection to |path| for |role| with NanaSQLite's pragmas.
 * Sets the error detail on failure. */
int nana_conn_open(nana_conn *c, const char *path, const nana_store_opts *o, nana_conn_role role);

/* Finalizes cached statements and closes the connection. NULL-safe. */
void nana_conn_close(nana_conn *c);

/*
 * The prepared statement for |sql| (whose address must stay valid while
 * the connection lives), prepared on first use and reset + unbound on
 * later ones. Returns NULL with the error detail set on failure.
 */
sqlite3_stmt *nana_conn_stmt(nana_conn *c, const char *sql, int *rc);

/* Releases a statement obtained from nana_conn_stmt (reset + clear bindings). */
void nana_conn_stmt_done(sqlite3_stmt *st);

/* Runs SQL with no result rows (BEGIN, COMMIT, SAVEPOINT ...). */
int nana_conn_exec(nana_conn *c, const char *sql);

/* True when no transaction is open on the connection (SQLite's autocommit). */
bool nana_conn_autocommit(nana_conn *c);

/* ------------------------------------------------------------------ */
/* A clustered store's connections (clink.c)                          */
/* ------------------------------------------------------------------ */

/* Makes |c| a connection of the clustered store |s|; it links to the
 * leader when first used. Never fails. */
void nana_clink_init(nana_conn *c, nana_store *s);

/* Closes the link, if any. */
void nana_clink_close(nana_conn *c);

/*
 * Runs one statement on the leader (prepared once per link). |changes|
 * (may be NULL) receives the rows it changed. A link that broke, or a node
 * that is no longer the leader, is dropped (c->lost set) and the call
 * fails with NANA_ERR_NOLEADER; the next call links again.
 */
int nana_clink_exec(nana_conn *c, const char *sql, const struct nana_dql_value *p, size_t n,
                    uint64_t *changes);

/* Runs a statement yielding rows, into |rows| (the caller frees it with
 * nana_dql_rows_free whatever this returns). Errors as nana_clink_exec. */
int nana_clink_query(nana_conn *c, const char *sql, const struct nana_dql_value *p, size_t n,
                     struct nana_dql_rows *rows);

/* Runs SQL text without parameters (BEGIN, COMMIT, CREATE TABLE ...),
 * keeping track of whether a transaction is open. */
int nana_clink_exec_sql(nana_conn *c, const char *sql);

/* The error for a call a clustered store does not offer (NANA_ERR_UNAVAILABLE). */
int nana_cluster_unsupported(const char *what);

/*
 * Converts an SQLite result code into a NANA_ERR_* code and sets the
 * detail message from the connection's error text (no file paths).
 * |what| names the operation ("get", "commit"...).
 */
int nana_sqlite_err(sqlite3 *db, int rc, const char *what);

/*
 * nana_sqlite_err for an error on one of a store's own connections: an
 * SQLITE_CORRUPT or SQLITE_NOTADB also marks the store damaged (see
 * nana_store_mark_damaged).
 */
int nana_conn_err(nana_conn *c, int rc, const char *what);

/* ------------------------------------------------------------------ */
/* The lock file (lock.c)                                              */
/* ------------------------------------------------------------------ */

/* An exclusive lock on "<database>-lock", held while the store lives. */
typedef struct nana_dblock {
    int fd;     /* -1: not held */
    char *path; /* the lock file */
} nana_dblock;

/*
 * Takes the lock of the database at |path|, recording this process as its
 * holder. NANA_ERR_BUSY, naming the holder, if another process (or another
 * store of this one) holds it. A read-only store in a directory it cannot
 * write goes on without a lock (out->fd == -1).
 */
int nana_dblock_take(const char *path, bool read_only, nana_dblock *out);

/* Removes the lock file and releases the lock. Safe on a lock not held. */
void nana_dblock_drop(nana_dblock *l);

/* ------------------------------------------------------------------ */
/* Cache (cache.c)                                                     */
/* ------------------------------------------------------------------ */

typedef struct nana_cache_entry nana_cache_entry;

typedef struct nana_cache {
    pthread_mutex_t mu;
    nana_cache_opts opts;
    nana_cache_entry **buckets;
    size_t nbuckets; /* power of two */
    size_t count;
    nana_cache_entry *lru_head; /* most recently used */
    nana_cache_entry *lru_tail; /* least recently used */
    uint64_t write_seq;         /* bumped by every write applied to this table */
    uint64_t ttl_ms;
    unsigned char hash_key[16]; /* SipHash key, random per cache */
} nana_cache;

int nana_cache_init(nana_cache *c, const nana_cache_opts *opts);
void nana_cache_free(nana_cache *c);

/* True if this cache keeps anything at all. */
bool nana_cache_enabled(const nana_cache *c);

/*
 * Looks |key| up. On a hit returns 1 and a new reference in *out. On a
 * miss returns 0 and the write sequence in *seq (for nana_cache_fill).
 * If the entry had expired (TTL) and the table deletes expired rows,
 * *expired is set to 1 so the caller can delete the row.
 */
int nana_cache_get(nana_cache *c, const char *key, size_t klen, uint64_t now_ms, nana_val **out,
                   uint64_t *seq, int *expired);

/*
 * The network threads' read: looks |key| up and, if its entry keeps an
 * encoded form, appends it to |out| under the cache's lock (no reference
 * taken, one allocation touched). A TTL entry that expired is a miss (the
 * store's own read deletes its row). Returns a NANA_CACHED_* code.
 */
int nana_cache_get_encoded(nana_cache *c, const char *key, size_t klen, uint64_t now_ms,
                           uint8_t form, nana_buf *out, nana_val **v);

/*
 * Keeps |elen| bytes of |enc| as the encoded form of |key|'s value, if the
 * entry still holds |v| (the value it was made from) and has none yet. Returns
 * false if the form is too large to keep inline (the caller keeps it with
 * the value), true otherwise (kept, or not needed any more).
 */
bool nana_cache_keep_encoded(nana_cache *c, const char *key, size_t klen, const nana_val *v,
                             uint8_t form, const void *enc, size_t elen);

/*
 * Looks at |key| without touching the LRU order or expiring anything:
 * returns 1 if it has a live entry (a value whose TTL has not passed),
 * else 0. *seq receives the write sequence (for nana_cache_fill); *dead is
 * set to 1 if the key expired in a table that deletes expired rows (its
 * row is still there until the sweep, but it reads as absent).
 */
int nana_cache_peek(nana_cache *c, const char *key, size_t klen, uint64_t now_ms, uint64_t *seq,
                    int *dead);

/*
 * Puts what a read past the cache found (|v|, or NULL for an absent key)
 * in place of whatever the cache holds for |key|, unless a write happened
 * since |seq|. A tombstone stays (its row still has to be deleted).
 */
void nana_cache_refresh(nana_cache *c, const char *key, size_t klen, nana_val *v, uint64_t now_ms,
                        uint64_t seq);

/* Inserts a value read from SQLite, unless a write happened since |seq|. */
void nana_cache_fill(nana_cache *c, const char *key, size_t klen, nana_val *v, uint64_t now_ms,
                     uint64_t seq);

/* Records a committed write: key now holds |v| (takes a new reference). */
void nana_cache_put(nana_cache *c, const char *key, size_t klen, nana_val *v, uint64_t now_ms);

/* Records a committed delete of |key|. */
void nana_cache_del(nana_cache *c, const char *key, size_t klen);

/* Forgets everything (clear(), rollback, drop_table). */
void nana_cache_clear(nana_cache *c);

/*
 * Collects up to |max| keys whose TTL has passed (for deleting their
 * rows), removing them from the cache. Returns how many were written to
 * |keys| (each a malloc'd nana_val the caller unrefs).
 */
size_t nana_cache_take_expired(nana_cache *c, uint64_t now_ms, nana_val **keys, size_t max);

/*
 * For the writer's read-modify-write ops: 1 if |key| expired in a table
 * that deletes expired rows (its row is still there until the sweep), so
 * the op must treat the key as absent. Marks an expired entry as such.
 */
int nana_cache_is_dead(nana_cache *c, const char *key, size_t klen, uint64_t now_ms);

/* Number of entries (for tests). */
size_t nana_cache_count(nana_cache *c);

/* ------------------------------------------------------------------ */
/* Tables, store                                                       */
/* ------------------------------------------------------------------ */

/* The statements every NanaSQLite table uses, built once per table. */
enum {
    SQL_GET,
    SQL_SET,
    SQL_DEL,
    SQL_HAS,
    SQL_LEN,
    SQL_KEYS,
    SQL_VALUES,
    SQL_ITEMS,
    SQL_FIRST, /* popitem: the first key in key order */
    SQL_CLEAR,
    SQL_CREATE,
    SQL_GET_PATH,
    SQL_BATCH_GET,
    SQL_DEL_PLAIN, /* a clustered store's delete (dqlite runs no RETURNING) */
    SQL_SET_4,     /* a clustered store's upserts of 4, 16 and 64 rows at once */
    SQL_SET_16,
    SQL_SET_64,
    SQL_COUNT_
};

struct nana_table {
    nana_store *store;
    struct nana_table *next; /* store's list */
    char name[NANA_MAX_TABLE_NAME + 1];
    char *sql[SQL_COUNT_]; /* statement texts, owned */
    nana_cache cache;
    atomic_bool ready; /* its CREATE TABLE ran: nana_store_table_find may hand it out */
};

/* A pool of reader connections. */
typedef struct nana_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    nana_conn *conns;
    unsigned *free_idx; /* stack of free connection indexes */
    unsigned nfree;
    unsigned n;
} nana_pool;

typedef struct nana_wop nana_wop;

/* The writer: one thread, one connection, a bounded queue of operations. */
typedef struct nana_writer {
    pthread_t thread;
    bool started;
    nana_conn conn;
    pthread_mutex_t mu;
    pthread_cond_t cv_work;  /* queue became non-empty, or stop */
    pthread_cond_t cv_space; /* queue has room */
    nana_wop **ring;
    nana_wop **batch; /* writer-thread only: ops taken from the ring */
    unsigned cap, head, count;
    atomic_size_t queued_bytes; /* key+value bytes of queued asynchronous writes */
    bool stop;
    /* writer-thread only: */
    bool in_txn;                         /* an explicit transaction is open */
    uintptr_t txn_owner;                 /* token of the thread that began it */
    nana_wop *parked_head, *parked_tail; /* other threads' ops, run at its end */
    unsigned parked;
    nana_wop *deferred_head, *deferred_tail; /* owner's async ops, completed at its end */
} nana_writer;

/* The checkpointer's state (nana_ckpt.state). */
enum {
    NANA_CK_IDLE = 0, /* waiting for the WAL to pass the threshold */
    NANA_CK_BUSY = 1, /* asked to run, or running */
    NANA_CK_TAIL = 2, /* it ran: the writer copies the frames committed since */
};

/* The WAL checkpointer (checkpoint.c): a thread with its own connection. */
typedef struct nana_ckpt {
    pthread_t thread;
    bool started;
    nana_conn conn;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool pending; /* the WAL passed the threshold since the last run */
    bool stop;
    atomic_int state;  /* NANA_CK_*: set by both threads, read by the writer */
    atomic_int copied; /* WAL frames the last background checkpoint covered */
    /* for tests: */
    atomic_uint_fast64_t
        runs; /* checkpoints completed by the thread (counted before NANA_CK_TAIL) */
    atomic_uint_fast64_t tails;  /* tails copied by the writer after a run */
    atomic_uint_fast64_t forced; /* checkpoints the writer ran itself at the hard bound */
    atomic_int last_frames;      /* WAL frames after the writer's last commit */
} nana_ckpt;

/* Starts the checkpointer and hooks the writer connection's commits. */
int nana_ckpt_start(nana_store *s);
/* Unhooks and stops it. NULL-safe for a store that never started it. */
void nana_ckpt_stop(nana_store *s);

/* Members of a cluster a store remembers, and the longest address kept. */
#define NANA_CL_MEMBERS_MAX 32
#define NANA_CL_ADDR_MAX    72

struct nana_store {
    nana_store_opts opts;
    char *path;
    char *canon_path; /* realpath() of path, for backup/restore checks */
    char *backup_dir; /* realpath() of opts.backup_dir, or NULL */
    char *default_table_name;
    nana_pool pool;
    nana_writer writer;
    nana_ckpt ckpt;
    pthread_mutex_t tables_mu;
    nana_table *tables;
    unsigned ntables;
    nana_table *default_table;
    atomic_int txn_active;      /* an explicit transaction is open */
    atomic_uintptr_t txn_owner; /* nana_thread_token() of its owner */
    atomic_bool closing;
    nana_dblock lock;    /* one process per database file */
    atomic_bool damaged; /* SQLite found the file corrupt: see nana_store_mark_damaged */
    /* clustered (opts.cluster_nodes): the database lives in dqlite under the
     * name |path|; its connections link to the leader (clink.c) */
    bool cluster;
    char **cl_nodes; /* the cluster's node addresses, to find the leader */
    size_t cl_n;
    nana_dql_opts cl_opts;
    /* the members the leader listed when a link was last made (clink.c):
     * asked too, so a node that joined later, or a node's own address
     * that knows no leader yet, does not stop the store finding one */
    pthread_mutex_t cl_mu;
    char cl_members[NANA_CL_MEMBERS_MAX][NANA_CL_ADDR_MAX];
    size_t cl_nmembers;
    /* statistics */
    atomic_uint_fast64_t st_hits, st_misses, st_sqlite_reads, st_commits, st_writes;
};

/* A token unique to the calling thread while it lives. */
uintptr_t nana_thread_token(void);

/* True if the calling thread owns the open explicit transaction: its
 * reads then bypass the caches and run on the writer, inside it. */
static inline bool nana_in_own_txn(nana_store *s)
{
    return atomic_load_explicit(&s->txn_active, memory_order_acquire) &&
           atomic_load_explicit(&s->txn_owner, memory_order_acquire) == nana_thread_token();
}

/*
 * Records that the file is damaged (an SQLITE_CORRUPT or SQLITE_NOTADB, or
 * a failed check at open): logged once as an error naming the file, and
 * from then on the writer refuses every write (unless allow_corrupt) and
 * nana_store_damaged() is true. |why| is SQLite's detail.
 */
void nana_store_mark_damaged(nana_store *s, const char *why);

/* The error a refused call on a damaged store returns (NANA_ERR_CORRUPT). */
int nana_store_damaged_err(void);

/* Current time for caches, in milliseconds. */
uint64_t nana_store_now(nana_store *s);

/* Finds or creates the table object and its SQL; does not touch the file. */
int nana_table_obtain(nana_store *s, const char *name, const nana_cache_opts *cache,
                      nana_table **out, bool *created);

/* Empties the cache of every table (rollback). */
void nana_store_clear_caches(nana_store *s);

/* ------------------------------------------------------------------ */
/* Writer operations (writer.c)                                        */
/* ------------------------------------------------------------------ */

enum {
    WOP_SAVEPOINT = 1u << 0, /* several statements: run inside a SAVEPOINT */
    WOP_ALONE = 1u << 1,     /* must run outside any transaction (VACUUM, restore) */
    WOP_READ = 1u << 2,      /* a read routed to the writer during a transaction */
    WOP_TXN_BEGIN = 1u << 3,
    WOP_TXN_COMMIT = 1u << 4,
    WOP_TXN_ROLLBACK = 1u << 5,
    WOP_SET = 1u << 6, /* a nana_set_op: a clustered writer may join it to its neighbours' rows */
};

/*
 * One queued operation. Concrete operations embed this as their first
 * member and fill in exec (and apply when caches change).
 *
 * exec runs on the writer thread inside the current transaction and
 * returns 0 or a NANA_ERR_* code (with the detail set). It may be run
 * more than once: when another op in the same group aborts the whole
 * transaction, the survivors are run again in a fresh one; exec must
 * therefore only record results in the op (result/i64), never touch a
 * cache. apply runs after the commit, on the writer thread, and updates
 * the caches. The writer then completes the op: rc and errmsg are final.
 */
struct nana_wop {
    int (*exec)(nana_wop *op, nana_conn *c);
    void (*apply)(nana_wop *op);
    unsigned flags;
    nana_table *tbl;
    /* results */
    int rc;
    char errmsg[NANA_ERRMSG_MAX];
    nana_val *result;
    int64_t i64;
    /* completion: |complete| (asynchronous ops) is called on the writer
     * thread and owns the op from then on; otherwise |done| is set and the
     * waiting caller is woken. */
    void (*complete)(nana_wop *op);
    atomic_uint done;
    uintptr_t owner;       /* nana_thread_token() of the thread that queued it */
    struct nana_wop *next; /* writer-thread only: parked / deferred lists */
};

/* A set of one key (kv.c), flagged WOP_SET. */
typedef struct nana_set_op {
    nana_wop super;
    const char *key;
    size_t klen;
    const char *val;
    size_t vlen;
    nana_val *cval; /* value for the cache, NULL when the table has none */
} nana_set_op;

/*
 * Runs the |n| WOP_SET ops |ops| (all of one table, in this order) as a few
 * multi-row upserts on a clustered connection: one round trip to the leader
 * for up to 64 rows. On failure the caller runs them one by one (setting a
 * row again to the same value changes nothing).
 */
int nana_clink_set_rows(nana_conn *c, nana_wop **ops, unsigned n);

int nana_writer_start(nana_store *s);
/* Runs everything still queued, then stops the thread. */
void nana_writer_stop(nana_store *s);

/*
 * Queues |op| and waits until it completed. Returns op->rc and leaves its
 * detail as the calling thread's error message. NANA_ERR_BUSY when the
 * queue stays full for write_wait_ms.
 */
int nana_writer_run(nana_store *s, nana_wop *op);

/*
 * Queues |op| (which must have op->complete set and own its memory)
 * without waiting: NANA_ERR_BUSY at once when the queue is full.
 */
int nana_writer_submit(nana_store *s, nana_wop *op);

/*
 * Runs |fn| against a connection that sees the current state: a reader
 * from the pool normally, or the writer (queued) while an explicit
 * transaction is open.
 */
typedef int (*nana_read_fn)(nana_conn *c, void *arg);
int nana_store_read(nana_store *s, nana_read_fn fn, void *arg);

/*
 * Writer thread only: deletes the rows of TTL-expired keys of tables that
 * asked for it (ttl_delete_rows), in one transaction per table.
 */
void nana_ttl_sweep(nana_store *s);

/* Reader pool (pool.c). */
/* Opens o->readers read-only connections to |path| for the store |owner|. */
int nana_pool_open(nana_pool *p, const char *path, const nana_store_opts *o, nana_store *owner);
void nana_pool_close(nana_pool *p);
/* A free reader, waiting up to |wait_ms|; NULL (NANA_ERR_BUSY set) on timeout. */
nana_conn *nana_pool_acquire(nana_pool *p, unsigned wait_ms);
void nana_pool_release(nana_pool *p, nana_conn *c);

/* ------------------------------------------------------------------ */
/* Input checks (check.c)                                              */
/* ------------------------------------------------------------------ */

/* Key: valid UTF-8, within max_key_bytes. */
int nana_check_key(const nana_store *s, const char *key, size_t klen);

/* Value: strict JSON within max_value_bytes and max_json_depth. */
int nana_check_value(const nana_store *s, const char *val, size_t vlen);

/* ------------------------------------------------------------------ */
/* Statement and result helpers shared by the operation files (kv.c)  */
/* ------------------------------------------------------------------ */

/* sqlite3_step: 1 for a row, 0 when done, or a NANA_ERR_* code. */
int nana_step(nana_conn *c, sqlite3_stmt *st, const char *what);

/* Column |col| as a new value in *out (SQL NULL becomes JSON null). A BLOB
 * (NanaSQLite's encrypted values) is NANA_ERR_TYPE. */
int nana_column_val(sqlite3_stmt *st, int col, nana_val **out);

/* Binds text without copying (the caller keeps it alive until reset). */
int nana_bind_text(sqlite3_stmt *st, int idx, const char *p, size_t n);

/* Moves a buffer's bytes into a new value; frees the buffer either way. */
int nana_buf_to_val(nana_buf *b, nana_val **out);

/* Validates |json| as a storable value and copies it into *out. */
int nana_copy_json(const nana_store *s, const char *json, size_t n, nana_val **out);

/* Appends a stored value / a key (as a JSON string) from a result column. */
int nana_buf_put_value(nana_buf *b, sqlite3_stmt *st, int col);
int nana_buf_put_key(nana_buf *b, sqlite3_stmt *st, int col);

/* Cache-then-SQLite lookup of a checked key; NANA_ERR_NOTFOUND if absent. */
int nana_kv_lookup(nana_table *t, const char *key, size_t klen, nana_val **out);

/* Sets the detail of a missing key the way Python's KeyError shows it. */
int nana_key_missing(const char *key, size_t klen);

/* Upserts one row on connection |c| (writer thread). */
int nana_exec_set(nana_conn *c, nana_table *t, const char *key, size_t klen, const char *val,
                  size_t vlen);

/*
 * Writer ops that read before they write call this first: if the key's
 * TTL passed (tables with ttl_delete_rows), its row is deleted now, in the
 * op's transaction, and the op sees the key as absent. 0 or an error.
 */
int nana_expire_key_if_dead(nana_conn *c, nana_table *t, const char *key, size_t klen);

/* Deletes one row; 1 if it existed (its value in *old when old != NULL), 0 if absent. */
int nana_exec_del(nana_conn *c, nana_table *t, const char *key, size_t klen, nana_val **old);

/* ------------------------------------------------------------------ */
/* SQL fragments, binding, rows (sqlcheck.c, sqlrun.c)                */
/* ------------------------------------------------------------------ */

typedef enum nana_clause_kind {
    NANA_CLAUSE_WHERE,
    NANA_CLAUSE_ORDER_BY,
    NANA_CLAUSE_GROUP_BY,
    NANA_CLAUSE_COLUMN,
} nana_clause_kind;

/* Validates a caller-written fragment (see nana_store.h); 0 or NANA_ERR_VALIDATION. */
int nana_sql_check_clause(const char *p, size_t n, nana_clause_kind kind,
                          const nana_sql_policy *pol, size_t max_len);

/* True if |name| (n bytes) may be called as an SQL function under |pol|. */
bool nana_sql_function_allowed(const char *name, size_t n, const nana_sql_policy *pol);

/* Validates a table/column/index name; |what| names it in the message. */
int nana_sql_check_identifier(const char *name, const char *what);

/* Validates a column type: for create_table, or (add_column) for ALTER TABLE. */
int nana_sql_check_type(const char *type, bool add_column);

/*
 * Parses an optional JSON argument that must be of |type| (JSON null or a
 * NULL pointer give *out == NULL). *doc owns the tree; free it with
 * nana_json_doc_free. |what| names the argument in errors.
 */
int nana_parse_arg(const char *json, nana_json_type type, const char *what, nana_json_doc **doc,
                   nana_json **out);

/* Empties the cache of the NanaSQLite table |name| if one is open (after
 * SQL that may have changed its rows or dropped it). */
void nana_store_table_changed(nana_store *s, const char *name);

/* ------------------------------------------------------------------ */
/* Statement deadlines (deadline.c)                                    */
/* ------------------------------------------------------------------ */

/* A deadline on the statements of one connection (query_timeout_ms). */
typedef struct nana_deadline {
    struct timespec at;
    bool hit;
} nana_deadline;

/* Arms a deadline of |ms| on |c| (none when ms is 0): statements stepped
 * on |c| after it passed are interrupted. */
void nana_deadline_arm(nana_conn *c, nana_deadline *d, unsigned ms);

/* Removes the deadline; turns an error its interrupt caused (|rc|) into
 * NANA_ERR_TIMEOUT with a clear message. Returns the error to report. */
int nana_deadline_disarm(nana_conn *c, nana_deadline *d, int rc, unsigned ms);

/* ------------------------------------------------------------------ */
/* Queries over JSON fields (fieldpath.c, pred.c, select.c,           */
/* update_where.c, multi.c)                                            */
/* ------------------------------------------------------------------ */

/* One step of a field path: a member name, or (name NULL) an array index. */
typedef struct nana_fstep {
    const char *name; /* points into the caller's field text */
    uint32_t nlen;
    uint32_t index;
} nana_fstep;

/* Steps a path can have at most: every segment a name and "[N]"s. */
#define NANA_FPATH_MAX_STEPS (NANA_FIELD_MAX_SEGMENTS + NANA_FIELD_MAX_BYTES / 3)

/* A checked field path (see nana_store.h), pointing into the caller's text. */
typedef struct nana_fpath {
    nana_fstep step[NANA_FPATH_MAX_STEPS];
    unsigned n;
    const char *text; /* the field as given */
    size_t len;
} nana_fpath;

/*
 * Parses and checks the field path f[0..n). On failure returns
 * NANA_ERR_VALIDATION with the message "<what> '<at most 64 bytes of f>'
 * <reason>". |out| may be NULL (check only).
 */
int nana_fpath_parse(const char *f, size_t n, const char *what, nana_fpath *out);

/* Appends the SQLite JSON path of |p| ($."seg"[N]."seg") to |b|. */
int nana_fpath_sqlite(const nana_fpath *p, nana_buf *b);

/*
 * Writes at most |max| bytes of the caller's text t[0..n) into |dst| for a
 * message: cut at a character boundary, control characters shown as '?',
 * "..." appended when cut; text that is not UTF-8 is shown as "<not
 * UTF-8>". Returns dst.
 */
const char *nana_quote_text(char *dst, size_t dstlen, const char *t, size_t n, size_t max);

/* Room for nana_quote_text of 64 bytes. */
#define NANA_QUOTE_MAX 80

/* A predicate turned into SQL: the fragment and what its ?NNN bind. */
typedef struct nana_pred_cmp nana_pred_cmp;
typedef struct nana_pred_plan {
    nana_buf sql;   /* a boolean expression over the column `value`, NUL-terminated */
    nana_buf paths; /* the comparisons' SQLite JSON paths, back to back */
    nana_pred_cmp *cmp;
    size_t ncmp;
    int first_param; /* comparison i binds ?(first_param + 2i) and ?(first_param + 2i + 1) */
} nana_pred_plan;

/* Which rows a plan's expression can be true for. */
typedef enum nana_pred_rows {
    NANA_PRED_ANY_JSON,    /* any stored value that is valid JSON text */
    NANA_PRED_OBJECTS_ONLY /* only JSON objects (update_where) */
} nana_pred_rows;

/*
 * Checks |p| (nana_pred_check; NULL is "every row") and builds its SQL:
 * an expression that is 1 for the rows it matches and 0 for every other,
 * never NULL, never an error, made only of fixed text and ?NNN
 * placeholders. Free with nana_pred_plan_free (also after a failure).
 */
int nana_pred_plan_build(const nana_pred *p, int first_param, nana_pred_rows rows,
                         nana_pred_plan *out);

/* Binds the plan's parameters on |st| (the text binds point into the plan
 * and the caller's tree: keep both alive until |st| is reset). */
int nana_pred_plan_bind(const nana_pred_plan *pl, sqlite3_stmt *st);

void nana_pred_plan_free(nana_pred_plan *pl);

/* A checked select: its statement text and predicate (select.c). */
typedef struct nana_sel_plan {
    nana_table *t;
    const nana_select *q; /* the caller's, alive during the call */
    nana_buf sql;
    nana_pred_plan pred;
    bool has_pred;
    bool use_lo, use_after; /* the one lower bound the statement has (see nana_sel_plan_build) */
} nana_sel_plan;

/* Checks |q| and builds its plan. Free with nana_sel_plan_free (also after a failure). */
int nana_sel_plan_build(nana_table *t, const nana_select *q, nana_sel_plan *out);
void nana_sel_plan_free(nana_sel_plan *p);

/* The byte budget of a select: its max_bytes, capped by max_result_bytes. */
size_t nana_sel_plan_budget(const nana_sel_plan *p);

/*
 * Runs a select plan on |c| (a reader, or the writer inside multi), with
 * at most |budget| key+value bytes (at least one row). *out gets the
 * rows, owned by the caller (nana_rows_free); *bytes (may be NULL) the
 * key+value bytes in them. No deadline of its own: the caller arms one.
 */
int nana_sel_plan_run(nana_conn *c, const nana_sel_plan *p, size_t budget, nana_rows **out,
                      size_t *bytes);

/* A checked update_where (update_where.c) and the results of its last run. */
typedef struct nana_upd_plan {
    nana_table *t;
    const nana_update *u; /* the caller's, alive during the call */
    size_t n;
    nana_fpath *paths;    /* per update */
    nana_json_doc **docs; /* per update: its parsed value */
    nana_json **vals;
    char *sql_first, *sql_next; /* the scan: from the start, and past a key (?1) */
    nana_pred_plan pred;
    /* results of a run (reset by each run) */
    int64_t changed;
    nana_buf keys; /* changed keys, back to back */
    size_t *klens; /* their lengths */
    size_t nkeys, kcap;
    bool clear_cache; /* too many keys to keep: empty the table's cache */
} nana_upd_plan;

/* Checks the predicate and updates and builds the plan. Free with
 * nana_upd_plan_free (also after a failure). */
int nana_upd_plan_build(nana_table *t, const nana_pred *pred, const nana_update *u, size_t n,
                        nana_upd_plan *out);
void nana_upd_plan_free(nana_upd_plan *p);

/* Writer thread: runs the plan on the writer connection inside the current
 * transaction (the caller wraps it in a savepoint and arms a deadline). */
int nana_upd_plan_run(nana_conn *c, nana_upd_plan *p);

/* Writer thread, after the commit: drops the changed keys from the cache. */
void nana_upd_plan_apply(nana_upd_plan *p);

#endif
