/*
 * nana_store.h - the NanaSQLite data model over SQLite, in C.
 *
 * This is the store's whole public face. A store is one SQLite database
 * file laid out exactly as the Python NanaSQLite library lays it out: one
 * SQLite table per NanaSQLite table (default "data") with the columns
 * `key TEXT PRIMARY KEY, value TEXT`, every value a JSON text. Files are
 * interchangeable with Python NanaSQLite in both directions.
 *
 * Values cross this API as JSON text. Inputs are validated (strict JSON,
 * size caps); results are returned as reference-counted nana_val strings
 * holding JSON text, owned by the caller (release with nana_val_unref).
 * A missing key is the error NANA_ERR_NOTFOUND, never a JSON null.
 *
 * Threads: every function is safe to call from any thread at any time.
 * Reads run on the calling thread with a connection from a reader pool
 * (WAL lets readers run beside the writer) or, when the table's cache
 * holds the key, without touching SQLite at all. Writes are queued to one
 * writer thread that commits many queued writes in one transaction (group
 * commit); a write call returns only after its transaction committed. A
 * write that fails inside a group fails alone; the others commit.
 *
 * Errors: functions return 0 (or a documented non-negative result) on
 * success and a negative NANA_ERR_* code on failure; nana_errmsg() then
 * gives the detail for the calling thread. Codes used throughout:
 *   NANA_ERR_INVALID     bad argument (bad UTF-8 key, bad option)
 *   NANA_ERR_JSON        a value is not valid JSON
 *   NANA_ERR_TOOBIG      a key, value or clause exceeds its limit
 *   NANA_ERR_VALIDATION  a table/column name or SQL clause was refused
 *   NANA_ERR_NOTFOUND    the key (or table, index) does not exist
 *   NANA_ERR_TYPE        stored value has the wrong type for the operation
 *   NANA_ERR_TXN         transaction misuse (nested begin, commit w/o begin)
 *   NANA_ERR_BUSY        the write queue is full, or the file is locked
 *   NANA_ERR_READONLY    the store or file is read-only
 *   NANA_ERR_FULL        the disk (or max_page_count) is full
 *   NANA_ERR_CORRUPT     the file is not a database or is corrupt
 *   NANA_ERR_IO, NANA_ERR_DB, NANA_ERR_NOMEM, NANA_ERR_CLOSED
 */
#ifndef NANA_STORE_H
#define NANA_STORE_H

#include "util/nana_buf.h"
#include "util/nana_err.h"
#include "util/nana_val.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct nana_store nana_store;
typedef struct nana_table nana_table;

/* ------------------------------------------------------------------ */
/* Options                                                             */
/* ------------------------------------------------------------------ */

typedef enum nana_cache_kind {
    NANA_CACHE_UNBOUNDED = 0, /* keep every value read or written (NanaSQLite's default) */
    NANA_CACHE_LRU = 1,       /* keep at most `size` entries, least recently used leave first */
    NANA_CACHE_TTL = 2,       /* entries expire `ttl_seconds` after they were stored */
    NANA_CACHE_NONE = 3,      /* no cache: every read goes to SQLite */
} nana_cache_kind;

typedef struct nana_cache_opts {
    nana_cache_kind kind;
    size_t size;         /* LRU: entry limit (>= 1). TTL: entry limit, 0 = none */
    double ttl_seconds;  /* TTL: lifetime of an entry (> 0) */
    int ttl_delete_rows; /* TTL: an expired entry's row is deleted too (the key expires) */
} nana_cache_opts;

typedef enum nana_sync_mode {
    NANA_SYNC_NORMAL = 1, /* WAL + synchronous=NORMAL (NanaSQLite's setting): durable on
                             application crash, may lose the last commits on power loss */
    NANA_SYNC_FULL = 2,   /* synchronous=FULL: a committed write survives power loss */
    NANA_SYNC_OFF = 0,    /* synchronous=OFF: for tests and throwaway data only */
} nana_sync_mode;

/* What nana_store_open checks before serving an existing file. */
typedef enum nana_open_check {
    NANA_CHECK_QUICK = 0, /* PRAGMA quick_check: every page read once (the default) */
    NANA_CHECK_FULL = 1,  /* PRAGMA integrity_check: also every index against its table */
    NANA_CHECK_NONE = 2,  /* no check: corruption shows only when a damaged page is read */
} nana_open_check;

typedef struct nana_store_opts {
    int read_only;              /* open read-only: writes fail with NANA_ERR_READONLY */
    nana_open_check open_check; /* default NANA_CHECK_QUICK */
    int allow_corrupt;   /* 1: open and serve a damaged file (for recovery); default 0: refuse it */
    nana_sync_mode sync; /* default NANA_SYNC_NORMAL */
    unsigned cache_size_mb;   /* SQLite page cache per connection, default 64 */
    int64_t mmap_size;        /* bytes of memory-mapped I/O, default 268435456 */
    unsigned readers;         /* reader connections in the pool, default 4 */
    unsigned write_queue;     /* writes that may wait for the writer, default 4096 */
    unsigned max_group;       /* writes committed together at most, default 1024 */
    unsigned write_wait_ms;   /* a blocking write waits this long for queue room, default 5000 */
    unsigned busy_timeout_ms; /* wait for another process's lock, default 5000 */
    size_t max_key_bytes;     /* default 4096 (NANA_DEFAULT_MAX_KEY) */
    size_t max_value_bytes;   /* default 8 MiB (NANA_DEFAULT_MAX_VALUE) */
    unsigned max_json_depth;  /* nesting limit of stored values, default 128 */
    size_t max_clause_bytes;  /* limit of a WHERE/ORDER BY/GROUP BY clause, default 1000 */
    size_t max_result_bytes;  /* limit of one result (keys(), to_dict(), query()), default 64 MiB */
    int64_t max_db_bytes;   /* the file stops growing here (writes fail NANA_ERR_FULL); 0 = none */
    unsigned max_tables;    /* NanaSQLite tables one store may open, default 1024 */
    size_t max_queue_bytes; /* key+value bytes of queued asynchronous writes, default 256 MiB */
    unsigned query_timeout_ms; /* a query/count/exists/DML statement is interrupted after this
                                  (NANA_ERR_TIMEOUT), default 15000; 0 = none */
    const char *backup_dir;    /* NULL: backup/restore take any path; else paths must be inside */
    unsigned checkpoint_pages; /* WAL pages that start a background checkpoint, default 8192 */
    nana_cache_opts cache;     /* cache of tables opened without their own options */
    const char *default_table; /* NanaSQLite table name, default "data" */
    /*
     * Clustered: NULL for a local file. Else the comma-separated dqlite
     * addresses ("HOST:PORT,...") of the cluster that holds the database:
     * nana_store_open's |path| is then the database's name in the cluster,
     * every read and write goes to the cluster's leader (found through
     * these nodes, again after it changes), tables keep no cache, and only
     * the key-value calls are served (see CLUSTER.md); the others fail
     * with NANA_ERR_UNAVAILABLE. A write whose commit lost the leader
     * fails with NANA_ERR_OUTCOME; no leader at all, NANA_ERR_NOLEADER.
     */
    const char *cluster_nodes;
    unsigned cluster_wait_ms; /* how long a call waits for a leader, default 10000 */
    /* Clock for TTL caches, in milliseconds; NULL uses CLOCK_MONOTONIC. */
    uint64_t (*now_ms)(void *arg);
    void *now_arg;
} nana_store_opts;

#define NANA_DEFAULT_MAX_KEY     4096
#define NANA_DEFAULT_MAX_VALUE   ((size_t)8 * 1024 * 1024)
#define NANA_DEFAULT_MAX_CLAUSE  1000
#define NANA_DEFAULT_MAX_RESULT  ((size_t)64 * 1024 * 1024)
#define NANA_DEFAULT_JSON_DEPTH  128 /* arrays and objects, the value itself included */
#define NANA_MAX_TABLE_NAME      128
#define NANA_MAX_BACKUP_NAME     128 /* bytes of a backup/restore file name */
#define NANA_DEFAULT_MAX_TABLES  1024
#define NANA_DEFAULT_QUEUE_BYTES ((size_t)256 * 1024 * 1024)

/* Fills |o| with the documented defaults. */
void nana_store_opts_init(nana_store_opts *o);

/* ------------------------------------------------------------------ */
/* Opening, closing, tables                                            */
/* ------------------------------------------------------------------ */

/* The lock file beside every open database: "<database file>-lock". */
#define NANA_STORE_LOCK_SUFFIX "-lock"

/*
 * Opens (creating if absent, unless read_only) the database at |path|,
 * applies NanaSQLite's pragmas, creates the default table, and starts the
 * writer thread. |o| may be NULL for defaults. On success *out owns the
 * store (close with nana_store_close).
 *
 * First it takes the file's lock ("<path>-lock", see NANA_STORE_LOCK_SUFFIX):
 * one store per database file, in this process or any other. An existing
 * file that does not begin with SQLite's header is refused untouched. Then
 * the file is checked (o->open_check); a damaged one is refused unless
 * o->allow_corrupt, and logged as an error either way. If the open fails
 * after it created the file, the file is removed again.
 * Errors: NANA_ERR_CORRUPT (not a database, or damaged), NANA_ERR_BUSY
 * (another process holds the file: the message names it), NANA_ERR_READONLY
 * (the file is not writable and read_only was not asked for), NANA_ERR_IO
 * (cannot open), NANA_ERR_INVALID (bad option), NANA_ERR_NOMEM.
 */
int nana_store_open(const char *path, const nana_store_opts *o, nana_store **out);

/* What is at a path, judged by its first 16 bytes (nana_store_file_kind). */
typedef enum nana_file_kind {
    NANA_FILE_ABSENT = 0, /* nothing there */
    NANA_FILE_EMPTY = 1,  /* a regular file of 0 bytes */
    NANA_FILE_SQLITE = 2, /* a regular file beginning with "SQLite format 3\0" */
    NANA_FILE_OTHER = 3,  /* anything else: another format, a directory, unreadable */
} nana_file_kind;

/* Classifies what is at |path| (links followed). Never modifies it. */
nana_file_kind nana_store_file_kind(const char *path);

/*
 * 1 once the store's file was found damaged (at open with allow_corrupt,
 * or an SQLITE_CORRUPT / SQLITE_NOTADB since), else 0. A damaged store
 * refuses writes unless it was opened with allow_corrupt.
 */
int nana_store_damaged(const nana_store *s);

/*
 * Finishes queued writes, stops the writer, closes every connection and
 * frees the store and its tables. Returns NANA_ERR_TXN (and leaves the
 * store open and usable) if an explicit transaction is still open.
 * NULL-safe.
 */
int nana_store_close(nana_store *s);

/* The default table ("data" unless configured). Owned by the store. */
nana_table *nana_store_default_table(nana_store *s);

/*
 * The NanaSQLite table |name| of this file, created if it does not exist
 * (CREATE TABLE IF NOT EXISTS "name" (key TEXT PRIMARY KEY, value TEXT)).
 * |cache| chooses the table's cache the first time the table is opened in
 * this store; NULL means the store's default. The returned handle is owned
 * by the store and valid until nana_store_close.
 * Errors: NANA_ERR_VALIDATION (name not ^[A-Za-z_][A-Za-z0-9_]*$ or longer
 * than NANA_MAX_TABLE_NAME), NANA_ERR_TOOBIG (max_tables already open),
 * NANA_ERR_READONLY, NANA_ERR_DB.
 */
int nana_store_table(nana_store *s, const char *name, const nana_cache_opts *cache,
                     nana_table **out);

/*
 * The table |name| if this store already opened it with nana_store_table
 * (or it is the default table), else NULL. Never writes or waits on the
 * writer: for callers that must not block. Owned by the store.
 */
nana_table *nana_store_table_find(nana_store *s, const char *name);

/* The table's name (NUL-terminated, owned by the table). */
const char *nana_table_name(const nana_table *t);

/* 1 if |name| is a valid NanaSQLite table or column identifier, else 0. */
int nana_identifier_valid(const char *name);

/*
 * 1 if |name| begins with "sqlite_" in any case: SQLite keeps its own
 * tables and indexes under such names (sqlite_master, sqlite_schema,
 * sqlite_sequence, sqlite_stat1...), and no call reaches them.
 */
int nana_name_reserved(const char *name);

/* ------------------------------------------------------------------ */
/* Dict operations (one NanaSQLite table)                              */
/* ------------------------------------------------------------------ */

/* A key, or a key with its JSON value, for the batch calls. */
typedef struct nana_key {
    const char *key;
    size_t klen;
} nana_key;

typedef struct nana_kv_pair {
    const char *key;
    size_t klen;
    const char *value; /* JSON text */
    size_t vlen;
} nana_kv_pair;

/* db[key]: *out = the stored JSON text. NANA_ERR_NOTFOUND if absent. */
int nana_kv_get(nana_table *t, const char *key, size_t klen, nana_val **out);

/*
 * db[key] from the cache only, never touching SQLite (for a caller that
 * must not block, such as a network I/O thread): returns 1 and *out on a
 * hit, 0 on a miss (ask nana_kv_get), or a negative error for a bad key.
 */
int nana_kv_get_cached(nana_table *t, const char *key, size_t klen, nana_val **out);

/* Largest encoded form a cache entry keeps with it; larger values keep
 * theirs with the value (nana_val_set_alt), so a big value is not held twice. */
#define NANA_KV_ENCODED_MAX 1024

/* What nana_kv_get_cached_encoded found. */
enum {
    NANA_CACHED_MISS = 0,    /* not cached: ask nana_kv_get */
    NANA_CACHED_ENCODED = 1, /* the value's encoded form was appended to |out| */
    NANA_CACHED_VALUE = 2,   /* cached, not yet encoded: *v holds a new reference */
};

/*
 * The I/O thread's fast read of db[key] from the cache only: when the
 * cache keeps the value's encoded (wire) form |form| (a tag the caller
 * chooses, one per wire format; an entry keeps one form), appends it to |out|
 * (copying bytes from one allocation, no reference taken). Returns a
 * NANA_CACHED_* code, or a negative error for a bad key. On
 * NANA_CACHED_VALUE the caller encodes *v, may hand the encoding back with
 * nana_kv_keep_encoded, and unrefs *v.
 */
int nana_kv_get_cached_encoded(nana_table *t, const char *key, size_t klen, uint8_t form,
                               nana_buf *out, nana_val **v);

/*
 * Offers the encoded form of |v| (the value nana_kv_get_cached_encoded
 * returned for |key|) to the cache, so later reads copy it. Returns false
 * if it is too large to keep with the entry (keep it with the value:
 * nana_val_set_alt); true if kept or no longer wanted.
 */
bool nana_kv_keep_encoded(nana_table *t, const char *key, size_t klen, const nana_val *v,
                          uint8_t form, const void *enc, size_t elen);

/* db.get(key, default): the stored value, or a copy of |def| (JSON) if absent. */
int nana_kv_get_default(nana_table *t, const char *key, size_t klen, const char *def, size_t dlen,
                        nana_val **out);

/*
 * db.get_fresh(key, default): like nana_kv_get_default, but read from
 * SQLite even when the cache holds the key, and what was read replaces
 * what the cache held (unless a write raced the read). For a file that
 * another program changed behind the store's back.
 */
int nana_kv_get_fresh(nana_table *t, const char *key, size_t klen, const char *def, size_t dlen,
                      nana_val **out);

/*
 * db.is_cached(key): 1 if the table's cache holds a live value for |key|,
 * 0 if not (or the table has no cache), a negative error for a bad key.
 * Looking does not count as a use (LRU order and TTL are untouched).
 */
int nana_kv_is_cached(nana_table *t, const char *key, size_t klen);

/* db.clear_cache(): empties the table's cache; the data stays. */
void nana_kv_clear_cache(nana_table *t);

/* db[key] = value. |value| must be valid JSON within the size limits. */
int nana_kv_set(nana_table *t, const char *key, size_t klen, const char *value, size_t vlen);

/*
 * The completion of an asynchronous write: called on the store's writer
 * thread once the write committed (rc 0) or failed (rc < 0; errmsg is the
 * detail, valid during the call). Keep it short: hand the result to your
 * own thread (a queue and an eventfd, say). It must not call a store
 * function that waits for the writer, which would wait forever.
 */
typedef void (*nana_done_fn)(void *arg, int rc, const char *errmsg);

/*
 * db[key] = value without waiting: key and value are checked and copied,
 * the write is queued, and |done| is called after its group commits. When
 * the write queue is full (write_queue writes, or max_queue_bytes of keys
 * and values) this returns NANA_ERR_BUSY at once (and |done| is never
 * called); otherwise it returns 0 and |done| is called exactly once. The
 * way a server keeps many writes in flight from few threads. Inside the
 * calling thread's own transaction, |done| is called at its commit (rc 0)
 * or rollback (NANA_ERR_TXN).
 */
int nana_kv_set_async(nana_table *t, const char *key, size_t klen, const char *value, size_t vlen,
                      nana_done_fn done, void *arg);

/* del db[key]. NANA_ERR_NOTFOUND if absent. */
int nana_kv_delete(nana_table *t, const char *key, size_t klen);

/* key in db: returns 1 or 0, or a negative error. */
int nana_kv_contains(nana_table *t, const char *key, size_t klen);

/* len(db). */
int nana_kv_len(nana_table *t, int64_t *out);

/*
 * keys() / values() / items() as a JSON array ([k, ...], [v, ...], [[k, v], ...]).
 * keys() is in key order (byte order of the UTF-8 text, SQLite's BINARY
 * collation); values() and items() are in row order: insertion order,
 * where updating a key keeps its place. These are the orders Python
 * NanaSQLite gives on the same file (keys() from the key's index, the
 * others from its loaded cache); neither depends on this store's cache.
 * Bounded by max_result_bytes (NANA_ERR_TOOBIG beyond it).
 */
int nana_kv_keys(nana_table *t, nana_val **out);
int nana_kv_values(nana_table *t, nana_val **out);
int nana_kv_items(nana_table *t, nana_val **out);

/* to_dict() / copy(): the whole table as one JSON object, in row order. */
int nana_kv_to_dict(nana_table *t, nana_val **out);

/*
 * pop(key[, default]): removes the key and returns its value. If absent,
 * returns a copy of |def| when it is not NULL, else NANA_ERR_NOTFOUND.
 */
int nana_kv_pop(nana_table *t, const char *key, size_t klen, const char *def, size_t dlen,
                nana_val **out);

/* popitem(): removes the first key in key order (the first keys() gives, as
 * Python's MutableMapping.popitem does) and returns [key, value].
 * NANA_ERR_NOTFOUND when the table is empty. */
int nana_kv_popitem(nana_table *t, nana_val **out);

/* setdefault(key, default): the stored value, or stores |def| and returns it. */
int nana_kv_setdefault(nana_table *t, const char *key, size_t klen, const char *def, size_t dlen,
                       nana_val **out);

/* clear(): deletes every row of the table. */
int nana_kv_clear(nana_table *t);

/* ------------------------------------------------------------------ */
/* Batch operations                                                    */
/* ------------------------------------------------------------------ */

/* update(mapping) / batch_update(mapping): all pairs in one transaction,
 * all or nothing. Every pair is validated before anything is written. */
int nana_kv_batch_update(nana_table *t, const nana_kv_pair *pairs, size_t n);

/* batch_delete(keys): removes those present (absent keys are ignored), in
 * one transaction. *deleted (may be NULL) receives the number removed. */
int nana_kv_batch_delete(nana_table *t, const nana_key *keys, size_t n, int64_t *deleted);

/* batch_get(keys): a JSON object {key: value} of the keys that exist,
 * read in as few queries as SQLite's variable limit allows. */
int nana_kv_batch_get(nana_table *t, const nana_key *keys, size_t n, nana_val **out);

/*
 * batch_update_partial(mapping): writes every valid pair in one
 * transaction and skips the invalid ones. *errors receives a JSON object
 * {key: "reason"} of the pairs not written ({} when all were written).
 */
int nana_kv_batch_update_partial(nana_table *t, const nana_kv_pair *pairs, size_t n,
                                 nana_val **errors);

/* ------------------------------------------------------------------ */
/* Value operations                                                    */
/* ------------------------------------------------------------------ */

/*
 * increment(key, amount, field=None, default=None), atomically.
 * |amount| is a JSON number. Without |field| the stored value must be a
 * number; with |field| (a top-level member name) the stored value must be
 * an object whose member is a number or absent (then treated as 0). When
 * the key is absent, |def| (JSON, may be NULL) is the starting value; with
 * no default the start is 0 (or {} with a field). *out (may be NULL) gets
 * the new number. Integers stay exact within int64; a float on either side
 * gives a float. NANA_ERR_TYPE for non-numbers (booleans count as non-numbers).
 */
int nana_kv_increment(nana_table *t, const char *key, size_t klen, const char *amount, size_t alen,
                      const char *field, size_t flen, const char *def, size_t dlen, nana_val **out);

/*
 * patch(key, changes, create=False): merges the JSON object |changes| into
 * the stored object, top-level members replaced (dict.update). An absent
 * key is NANA_ERR_NOTFOUND unless |create|, which stores |changes|. A
 * stored value that is not an object is NANA_ERR_TYPE. *out (may be NULL)
 * gets the new value.
 */
int nana_kv_patch(nana_table *t, const char *key, size_t klen, const char *changes, size_t clen,
                  int create, nana_val **out);

/*
 * get_by_path(key, path): the part of the stored value at a JSON path
 * such as "$.a.b[0]" (SQLite's json_extract syntax). A missing key is
 * NANA_ERR_NOTFOUND; a path that selects nothing gives JSON null.
 * NANA_ERR_VALIDATION for a malformed path.
 */
int nana_kv_get_by_path(nana_table *t, const char *key, size_t klen, const char *path, size_t plen,
                        nana_val **out);

/* ------------------------------------------------------------------ */
/* Queries over JSON fields                                            */
/* ------------------------------------------------------------------ */

/*
 * Field paths name a place inside a stored JSON object: segments separated
 * by '.', each an object member name (1..128 bytes of UTF-8 other than '.',
 * '[', ']', '"', '\' and control characters) optionally followed by array
 * indexes "[N]" (N decimal, < 2^31): "age", "address.city", "tags[0]",
 * "a.b[2].c". At most NANA_FIELD_MAX_SEGMENTS segments and
 * NANA_FIELD_MAX_BYTES bytes. A path never reaches SQL text: it becomes the
 * SQLite JSON path $."seg"[N]."seg", bound as a parameter. A member name
 * matches the name as the stored JSON text writes it: a non-ASCII name
 * stored with \u escapes (Python's json.dumps default) is not matched by
 * its UTF-8 form. Bad paths: NANA_ERR_VALIDATION.
 */
#define NANA_FIELD_MAX_SEGMENTS 16
#define NANA_FIELD_MAX_BYTES    512
#define NANA_FIELD_MAX_NAME     128

/*
 * A predicate over fields of a table's JSON values (a tree in the caller's
 * memory, read during the call only).
 *
 * A comparison (EQ GT LT GTE LTE) is true only when the field exists and
 * its value is of the same class as the comparison's value (a JSON text):
 * numbers (integer or real) compare numerically (an integer beyond 64 bits
 * as a real); strings by SQLite's BINARY order (the bytes of the UTF-8
 * text); booleans with false < true; null equals only null (GT LT GTE LTE
 * with null are false); objects and arrays only with EQ (other operators:
 * NANA_ERR_VALIDATION), equal when SQLite's minified JSON texts are equal
 * (member order, number spelling and string escapes matter). A missing
 * field, a value of another class, or a stored value that is not a JSON
 * object or array on the way: false. AND and OR as usual; NOT inverts, so
 * NOT(age > 30) matches rows with no age. A stored value that is not valid
 * JSON (written by another program) never matches, under NOT too, and
 * never makes a query fail.
 */
typedef enum nana_pred_op {
    NANA_PRED_EQ,
    NANA_PRED_GT,
    NANA_PRED_LT,
    NANA_PRED_GTE,
    NANA_PRED_LTE,
    NANA_PRED_AND,
    NANA_PRED_OR,
    NANA_PRED_NOT,
} nana_pred_op;

typedef struct nana_pred {
    nana_pred_op op;
    const char *field; /* comparisons: a field path */
    size_t flen;
    const char *value; /* comparisons: a JSON text */
    size_t vlen;
    const struct nana_pred *left, *right; /* AND/OR: both; NOT: left only; comparisons: none */
} nana_pred;

#define NANA_PRED_MAX_NODES 256   /* nodes in one tree */
#define NANA_PRED_MAX_DEPTH 32    /* nodes on the longest path from the root, the root included */
#define NANA_PRED_MAX_VALUE 65536 /* bytes of one comparison's JSON value */

/*
 * Checks a tree: its shape (AND/OR have left and right, NOT only left,
 * comparisons no operands, known operators), depth, node count, field
 * paths and JSON values (at most NANA_PRED_MAX_VALUE bytes, nested at most
 * NANA_DEFAULT_JSON_DEPTH). Returns 0, or NANA_ERR_VALIDATION /
 * NANA_ERR_JSON / NANA_ERR_TOOBIG with a message naming the node ("the 3rd
 * comparison's field ...", "node 4 (AND) ..."; nodes and comparisons are
 * counted depth first, left before right, from 1). Messages quote at most
 * 64 bytes of the caller's text. Every function below runs this check.
 */
int nana_pred_check(const nana_pred *p);

typedef struct nana_select {
    const char *lo; /* key >= lo */
    size_t lolen;
    bool has_lo;
    const char *hi; /* key < hi */
    size_t hilen;
    bool has_hi;
    const char *after; /* key > after (the next page) */
    size_t alen;
    bool has_after;
    const nana_pred *pred; /* NULL: every row */
    int64_t offset;        /* rows skipped first, >= 0 */
    int64_t limit;         /* rows at most; < 0: none */
    size_t max_bytes;      /* stop before the row that would pass this many key+value bytes (at
                              least one row is taken); 0 or more than the store's
                              max_result_bytes: max_result_bytes */
} nana_select;

typedef struct nana_row {
    const char *key; /* followed by a NUL byte (not counted) */
    size_t klen;
    const char *value; /* the stored text, followed by a NUL byte (not counted); SQL NULL: "null" */
    size_t vlen;
} nana_row;

typedef struct nana_rows {
    size_t n;
    nana_row *r; /* in key order (SQLite's BINARY order of the key text, as keys() gives) */
    bool more;   /* rows matching past limit or max_bytes remain (next page: after = last key) */
} nana_rows;     /* two allocations; the rows point into them: free with nana_rows_free */

/*
 * Rows of |t| in key order matching |q|, read in one statement on a reader
 * connection (a consistent snapshot for this call only; inside the calling
 * thread's own transaction, on the writer, seeing its writes). Bounds and
 * keys are checked like nana_kv_get's keys. The statement is stopped after
 * query_timeout_ms (NANA_ERR_TIMEOUT). With no predicate a value that is a
 * BLOB is NANA_ERR_TYPE (as values() does); with one it never matches.
 * *out is the caller's (nana_rows_free). Errors: NANA_ERR_INVALID (offset
 * < 0, bad key), those of nana_pred_check, NANA_ERR_TIMEOUT.
 */
int nana_kv_select(nana_table *t, const nana_select *q, nana_rows **out);

/* Frees a result of nana_kv_select or nana_store_multi. NULL-safe. */
void nana_rows_free(nana_rows *r);

typedef enum nana_upd_op { NANA_UPD_SET, NANA_UPD_ADD, NANA_UPD_MUL } nana_upd_op;

typedef struct nana_update {
    nana_upd_op op;
    const char *field; /* a field path */
    size_t flen;
    const char *value; /* JSON text; ADD and MUL: a number */
    size_t vlen;
} nana_update;

#define NANA_UPD_MAX 256 /* updates in one call */

/*
 * For every row whose value is a JSON object matching |pred| (NULL: every
 * object), applies the updates in order, atomically: one writer op (it
 * group-commits with other writes), all rows or none. *changed (may be
 * NULL) gets the rows changed.
 *
 * SET puts the JSON value at the field: it replaces what is there, or
 * creates the last member when its parent object exists. ADD and MUL take
 * a JSON number; the field must hold a number or be absent (counted as 0:
 * ADD stores the value, MUL stores 0). Integers stay integers when both
 * sides are integers; a result beyond int64 (or an integer beyond 64 bits
 * on either side) is NANA_ERR_TYPE, as is a result that is not finite; a
 * real on either side gives a real. When the field's parent object (or
 * the array element an index names) does not exist, that update leaves
 * the row alone; a row counts as changed when at least one update applied
 * to it. A field that holds something other than a number fails the whole
 * call with NANA_ERR_TYPE ("key 'k': field 'age' is a string") and changes
 * nothing; so does a new value over max_value_bytes (NANA_ERR_TOOBIG) or
 * nested deeper than max_json_depth. Rows are rewritten as compact JSON.
 * The changed keys leave the table's cache after the commit (more than a
 * few thousand: the cache is emptied). The scan is stopped after
 * query_timeout_ms (NANA_ERR_TIMEOUT, nothing changed). Errors also:
 * NANA_ERR_INVALID (no updates, an unknown op), NANA_ERR_TOOBIG (more
 * than NANA_UPD_MAX), NANA_ERR_VALIDATION (a bad path), NANA_ERR_JSON.
 */
int nana_kv_update_where(nana_table *t, const nana_pred *pred, const nana_update *u, size_t n,
                         int64_t *changed);

/* Several operations in one transaction on the writer (nana_store_multi). */
typedef enum nana_mop_kind {
    NANA_MOP_GET,
    NANA_MOP_SET,
    NANA_MOP_DELETE,
    NANA_MOP_SELECT,
    NANA_MOP_UPDATE
} nana_mop_kind;

typedef struct nana_mop {
    nana_mop_kind kind;
    nana_table *t;   /* a table of the store (already opened with nana_store_table) */
    const char *key; /* GET, SET, DELETE */
    size_t klen;
    const char *value; /* SET: JSON text */
    size_t vlen;
    nana_select sel;       /* SELECT */
    const nana_pred *pred; /* UPDATE */
    const nana_update *u;  /* UPDATE */
    size_t nu;
    /* results (the caller frees v / rows): */
    nana_val *v;     /* GET: the value, NULL when absent (absent is no error) */
    nana_rows *rows; /* SELECT */
    int64_t changed; /* DELETE: 0 or 1; UPDATE: rows changed; SET: 1 */
} nana_mop;

#define NANA_MULTI_MAX_OPS 10000

/*
 * Runs ops[0..n) in order in one transaction on the writer (one writer op:
 * it group-commits with other writes), all or nothing; each op sees the
 * ones before it (GET and SELECT read through the writer's connection).
 * Keys and values are checked as nana_kv_set checks them, before anything
 * runs. 0: all committed, results filled (the results of a failed call
 * are all NULL / 0). Else the error of the first op that failed
 * (*failed_at, may be NULL, gets its index; its message in nana_errmsg,
 * prefixed "query N: "; *failed_at is n when no one op failed: too many
 * ops, a full write queue, a failed commit), and nothing at all was changed: the caches are
 * touched only after the commit. The GET values and SELECT rows of one
 * call hold at most max_result_bytes together (each SELECT's budget is
 * what remains; passing it: NANA_ERR_TOOBIG). The whole call is stopped
 * after query_timeout_ms (NANA_ERR_TIMEOUT). Inside the calling thread's
 * own transaction it runs inside that transaction (a failure undoes only
 * this call). Errors also: NANA_ERR_TOOBIG (more than NANA_MULTI_MAX_OPS
 * ops), NANA_ERR_INVALID (a table of another store, an unknown kind).
 */
int nana_store_multi(nana_store *s, nana_mop *ops, size_t n, size_t *failed_at);

/* ------------------------------------------------------------------ */
/* Transactions (one per store, like one NanaSQLite instance)          */
/* ------------------------------------------------------------------ */

/*
 * begin_transaction(): BEGIN IMMEDIATE on the writer connection. Until
 * commit or rollback every write, from any thread, runs inside it and is
 * visible to reads at once; nothing is durable before commit. Nesting is
 * NANA_ERR_TXN; commit/rollback without a transaction is NANA_ERR_TXN.
 * Rollback (or a failed commit) empties every table's cache.
 */
int nana_store_begin(nana_store *s);
int nana_store_commit(nana_store *s);
int nana_store_rollback(nana_store *s);
/* 1 while a transaction is open, else 0. */
int nana_store_in_transaction(nana_store *s);

/*
 * Deletes now the rows of keys whose TTL passed, in tables opened with
 * ttl_delete_rows (the writer also does this about once a second when
 * idle). Returns when done.
 */
int nana_store_expire_now(nana_store *s);

/* ------------------------------------------------------------------ */
/* SQL helpers: tables with columns, validated queries                 */
/* ------------------------------------------------------------------ */

/*
 * Caller-written SQL fragments (WHERE, ORDER BY, GROUP BY, column
 * expressions) are validated with NanaSQLite's rules: no `;`, `--` or
 * `/ *`; no statement keywords (DDL, DML, SELECT: no subqueries); names
 * must be identifiers; a function call must name an allowed SQL function
 * (COUNT SUM AVG MIN MAX ABS UPPER LOWER LENGTH ROUND COALESCE IFNULL NULLIF
 * STRFTIME DATE TIME DATETIME JULIANDAY, plus JSON_EXTRACT JSON_TYPE
 * JSON_ARRAY_LENGTH JSON_VALID SUBSTR TRIM TYPEOF INSTR); at most
 * max_clause_bytes long. Values always travel as bound parameters: a JSON
 * array whose items bind to the `?` of the fragment (numbers, strings,
 * null, booleans as 1/0, arrays and objects as JSON text). The statements
 * also run under an SQLite authorizer that allows only the one table and
 * the allowed functions. Refusals are NANA_ERR_VALIDATION.
 *
 * A policy adjusts the function list for one call; NULL means defaults.
 */
typedef struct nana_sql_policy {
    const char *const *allow; /* extra allowed function names */
    size_t n_allow;
    const char *const *forbid; /* names refused even if allowed */
    size_t n_forbid;
    int override_defaults; /* only `allow` is allowed */
    int forbid_all;        /* no expression at all may be given */
} nana_sql_policy;

typedef struct nana_query {
    const char *table;    /* NULL: the default table */
    const char *columns;  /* JSON array of names or expressions ("COUNT(*) AS n"), NULL: all */
    const char *where;    /* NULL: all rows */
    const char *params;   /* JSON array bound to the ? of where, or NULL */
    const char *order_by; /* NULL: none */
    const char *group_by; /* NULL: none */
    int64_t limit;        /* < 0: none */
    int64_t offset;       /* < 0: none */
    const nana_sql_policy *policy;
} nana_query;

/* Sets every field of |q| to "none" (limit and offset -1). */
void nana_query_init(nana_query *q);

/*
 * query / query_with_pagination: rows as a JSON array of objects keyed by
 * column name (INTEGER and REAL as numbers, TEXT as strings, NULL as null,
 * BLOB as a base64 string). On a NanaSQLite table `value` is its JSON text
 * as a string, as NanaSQLite returns it.
 */
int nana_sql_query(nana_store *s, const nana_query *q, nana_val **out);

/* count(table, where, params) and exists(table, where, params) (1 or 0). */
int nana_sql_count(nana_store *s, const char *table, const char *where, const char *params,
                   const nana_sql_policy *pol, int64_t *out);
int nana_sql_exists(nana_store *s, const char *table, const char *where, const char *params,
                    const nana_sql_policy *pol);

/* sql_insert(table, {column: value}): *rowid gets the new row's rowid. */
int nana_sql_insert(nana_store *s, const char *table, const char *row, int64_t *rowid);

/* sql_update(table, {column: value}, where, params): *changes rows changed.
 * A where clause is required. */
int nana_sql_update(nana_store *s, const char *table, const char *set, const char *where,
                    const char *params, int64_t *changes);

/* sql_delete(table, where, params): *changes rows deleted. A where clause is required. */
int nana_sql_delete(nana_store *s, const char *table, const char *where, const char *params,
                    int64_t *changes);

/*
 * upsert(table, {column: value}, conflict_columns): INSERT OR REPLACE, or
 * with conflict_columns (JSON array) INSERT ... ON CONFLICT(cols) DO UPDATE
 * the other columns. *rowid gets the rowid of the row inserted or updated
 * (0 when nothing changed, or for a WITHOUT ROWID table).
 */
int nana_sql_upsert(nana_store *s, const char *table, const char *row, const char *conflict_columns,
                    int64_t *rowid);

/* import_from_dict_list(table, [{...}, ...]): one transaction; the columns
 * are the first object's keys. *count gets the rows inserted. */
int nana_sql_import(nana_store *s, const char *table, const char *rows, int64_t *count);

/* export_table_to_dict(table): every row, as nana_sql_query returns them. */
int nana_sql_export(nana_store *s, const char *table, nana_val **out);

/* get_last_insert_rowid(): rowid of the last row the calling thread inserted
 * through this store with sql_insert/upsert/import (0 if none). */
int64_t nana_sql_last_insert_rowid(nana_store *s);

/*
 * create_table(table, {column: type}, if_not_exists, primary_key). Types
 * may use letters, digits, spaces and ( ) , = < > ! @ # % . only, and no
 * statement keywords.
 */
int nana_sql_create_table(nana_store *s, const char *table, const char *columns, int if_not_exists,
                          const char *primary_key);

/* create_index(index, table, [columns], unique, if_not_exists). */
int nana_sql_create_index(nana_store *s, const char *index, const char *table, const char *columns,
                          int unique, int if_not_exists);

/* drop_table / drop_index. Dropping a NanaSQLite table empties its cache. */
int nana_sql_drop_table(nana_store *s, const char *table, int if_exists);
int nana_sql_drop_index(nana_store *s, const char *index, int if_exists);

/* alter_table_add_column(table, column, type, default): |type| like
 * "TEXT", "VARCHAR(255)", "DECIMAL(10,2)"; |def| a JSON scalar or NULL. */
int nana_sql_add_column(nana_store *s, const char *table, const char *column, const char *type,
                        const char *def);

/* table_exists(name): 1 or 0. */
int nana_sql_table_exists(nana_store *s, const char *table);

/* list_tables(): JSON array of table names, sorted. */
int nana_sql_list_tables(nana_store *s, nana_val **out);

/* get_table_schema(table): [{"cid","name","type","notnull","default_value","pk"}]. */
int nana_sql_table_schema(nana_store *s, const char *table, nana_val **out);

/* list_indexes(table or NULL): [{"name","table","sql"}], automatic indexes left out. */
int nana_sql_list_indexes(nana_store *s, const char *table, nana_val **out);

/* ------------------------------------------------------------------ */
/* Utilities                                                           */
/* ------------------------------------------------------------------ */

/* vacuum(). NANA_ERR_TXN inside a transaction. */
int nana_store_vacuum(nana_store *s);

/* get_db_size(): bytes of the main database file (not -wal/-shm). */
int nana_store_db_size(nana_store *s, int64_t *bytes);

/*
 * pragma(name, value): reads (value NULL: *out gets the first column of
 * the first row as JSON, or null) or sets (value a JSON number, boolean
 * or a string of letters, digits, '_', '-', '.'; *out gets null) one of
 * NanaSQLite's allowed pragmas: foreign_keys journal_mode synchronous
 * cache_size temp_store locking_mode auto_vacuum page_size encoding
 * user_version schema_version wal_autocheckpoint busy_timeout query_only
 * recursive_triggers secure_delete table_info index_list index_info
 * database_list. table_info/index_list/index_info take a table or index
 * name as value and return all rows as objects. Settings apply to the
 * writer connection; journal_mode, locking_mode, page_size, encoding,
 * schema_version, query_only, synchronous (an open option) and
 * wal_autocheckpoint (the store's checkpointer owns it) can be read but not
 * set here: they would break the store's own use of the file. Others:
 * NANA_ERR_VALIDATION.
 */
int nana_store_pragma(nana_store *s, const char *name, const char *value, nana_val **out);

/*
 * backup(dest): an online copy of the database (a consistent snapshot)
 * into the file |dest|, which is overwritten. Refuses (NANA_ERR_VALIDATION)
 * ":memory:", any path with a component that begins with a URI scheme
 * ("file:"...), a file name over NANA_MAX_BACKUP_NAME bytes or a path of
 * PATH_MAX bytes or more, the database's own files (compared after
 * resolving directories and links), a symbolic link as the last path
 * component, and with backup_dir set (NANA_ERR_PERM), anything outside
 * that directory.
 */
int nana_store_backup(nana_store *s, const char *dest);

/*
 * restore(src): replaces the database's content with the SQLite database
 * |src| (online backup API, in place), then re-creates this store's
 * NanaSQLite tables if |src| lacks them and empties every cache.
 * NANA_ERR_TXN inside a transaction; NANA_ERR_CORRUPT if |src| is not a
 * database; NANA_ERR_VALIDATION if its page size differs from ours, or for
 * the path rules of backup().
 */
int nana_store_restore(nana_store *s, const char *src);

/* ------------------------------------------------------------------ */
/* Statistics (for tests and benchmarks)                               */
/* ------------------------------------------------------------------ */

typedef struct nana_store_stats {
    uint64_t cache_hits;   /* reads answered from a cache */
    uint64_t cache_misses; /* reads that went to SQLite */
    uint64_t sqlite_reads; /* statements stepped on reader connections */
    uint64_t commits;      /* transactions committed by the writer */
    uint64_t writes;       /* write operations completed */
} nana_store_stats;

void nana_store_get_stats(nana_store *s, nana_store_stats *out);

#endif
