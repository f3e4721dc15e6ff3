/*
 * bench_store.c - throughput and latency of the store, next to the naive baseline.
 *
 * The big idea: the store's claim is that a per-table cache makes reads
 * almost free and that one writer thread with group commit turns many
 * concurrent small writes into few transactions. This program measures
 * both claims and, for comparison, the way Python NanaSQLite writes: one
 * autocommitted INSERT OR REPLACE per write on one shared connection, or
 * on one connection per writer (several processes sharing one file).
 * It also measures the asynchronous write (nana_kv_set_async), with which
 * one thread keeps many writes in flight, as the server will.
 *
 * Every scenario runs for --seconds (or until MAX_OPS operations, whichever
 * comes first) on threads started together behind a barrier. Each thread
 * times its own operations with CLOCK_MONOTONIC into a private log-linear
 * histogram; the histograms are merged afterwards, so timing adds no
 * shared state. Keys and values are built before the clock starts, and
 * every thread draws keys from its own xorshift generator. Every write
 * stamps a counter into the first characters of its value (value_stamp),
 * so no write stores what its key already holds: SQLite does not rewrite
 * a row whose new content is identical, and a write that changes nothing
 * reaches no page and no WAL frame.
 *
 * This is a benchmark, not a test: it reports numbers and never judges
 * them. It exits 1 when an operation fails, 2 on a bad command line. The
 * one exception is SQLITE_BUSY in naive_conns: connections that time out
 * waiting for each other are part of what that scenario shows, so they
 * are counted and reported, not fatal.
 */
#include "store/nana_store.h"
#include "util/nana_opt.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "bench_hist.h"

#define MAX_OPS         50000000ull /* operations per scenario at most, all threads together */
#define GET_BATCH       64          /* cached gets timed together as one sample */
#define UPDATE_BATCH    1000        /* pairs per batch_update call */
#define PRELOAD_BATCH   1000        /* pairs per batch_update while preloading */
#define KEY_WIDTH       16          /* bytes reserved per precomputed key (with NUL) */
#define NVALUES         16          /* distinct precomputed values */
#define VALUE_DIGITS    12          /* a write's counter, at the start of its value */
#define MAX_KEYS        10000000ul
#define MAX_VALUE_SIZE  (1024ul * 1024ul)
#define MAX_WRITERS     1024ul
#define MAX_THREADS     256ul
#define DEFAULT_GETKEYS 10000ul
#define DEFAULT_SETKEYS 100000ul
#define ASYNC_WIDE      256u  /* writes in flight in set_async_256 */
#define ASYNC_WAKE_DIV  8u    /* set_async: wake the submitter when 1/8 of its slots are back */
#define BUSY_BACKOFF_NS 50000 /* set_async: pause after NANA_ERR_BUSY (queue full) */
#define NAIVE_BUSY_MS   5000u /* naive_conns: busy_timeout of every connection */
#define ERRMSG_CAP      256   /* bytes kept of an asynchronous write's error detail */

/* ------------------------------------------------------------------ */
/* Errors and time                                                     */
/* ------------------------------------------------------------------ */

/* Prints a store failure (code name and detail) and exits 1. */
static _Noreturn void die_store(int rc, const char *what)
{
    fprintf(stderr, "nanasqlite-bench-store: %s: %s: %s\n", what, nana_strerror(rc), nana_errmsg());
    exit(1);
}

/* Prints an SQLite failure of the naive baseline and exits 1. */
static _Noreturn void die_sqlite(sqlite3 *db, int rc, const char *what)
{
    fprintf(stderr, "nanasqlite-bench-store: %s: %s (%s)\n", what,
            db ? sqlite3_errmsg(db) : "no connection", sqlite3_errstr(rc));
    exit(1);
}

/* Prints a system call failure (|err| an errno value) and exits 1. */
static _Noreturn void die_errno(int err, const char *what)
{
    fprintf(stderr, "nanasqlite-bench-store: %s: %s\n", what, strerror(err));
    exit(1);
}

/* Prints a usage error and exits 2. */
static _Noreturn void die_usage(const char *msg, const char *arg)
{
    fprintf(stderr, "nanasqlite-bench-store: %s%s%s (try --help)\n", msg, arg ? ": " : "",
            arg ? arg : "");
    exit(2);
}

/* calloc that exits on failure. */
static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (!p) die_errno(ENOMEM, "calloc");
    return p;
}

/* CLOCK_MONOTONIC in nanoseconds. */
static uint64_t now_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) die_errno(errno, "clock_gettime");
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------------ */
/* Options, files, machine facts                                       */
/* ------------------------------------------------------------------ */

typedef struct bench_opts {
    double seconds;
    unsigned writers;
    unsigned threads;
    size_t keys; /* 0: each scenario's default */
    size_t value_size;
    nana_sync_mode sync;
    const char *dir;
    const char *scenario;
    bool json;
} bench_opts;

static bench_opts g_opt = {
    .seconds = 3.0,
    .writers = 64,
    .threads = 2,
    .keys = 0,
    .value_size = 64,
    .sync = NANA_SYNC_NORMAL,
    .dir = NULL,
    .scenario = "all",
    .json = false,
};

/* The database files, one per scenario family, and their companions. */
enum {
    DB_GET,
    DB_SET,
    DB_ASYNC,
    DB_BATCH,
    DB_NAIVE_SHARED,
    DB_NAIVE_CONNS,
    DB_NAIVE_1THREAD,
    DB_COUNT_
};
static const char *const db_names[DB_COUNT_] = {
    "get.db",          "set.db",         "set_async.db",    "batch.db",
    "naive_shared.db", "naive_conns.db", "naive_1thread.db"};
static const char *const db_suffixes[] = {"", "-wal", "-shm", "-journal"};
#define NSUFFIX (sizeof(db_suffixes) / sizeof(db_suffixes[0]))

static char g_dir[PATH_MAX];
static bool g_dir_made; /* we created g_dir and remove it at exit */
static char g_paths[DB_COUNT_][NSUFFIX][PATH_MAX];
static volatile sig_atomic_t g_cleaned;

/* Removes every file this program may have created (and its directory if
 * it made one). Only async-signal-safe calls: it also runs on SIGINT. */
static void remove_files(void)
{
    if (g_cleaned) return;
    g_cleaned = 1;
    for (unsigned i = 0; i < DB_COUNT_; i++)
        for (unsigned j = 0; j < NSUFFIX; j++)
            if (g_paths[i][j][0]) unlink(g_paths[i][j]);
    if (g_dir_made) rmdir(g_dir);
}

/* SIGINT/SIGTERM: remove the files, then leave at once. */
static void on_signal(int sig)
{
    remove_files();
    _exit(128 + sig);
}

/* Deletes a database and its -wal/-shm/-journal files (a stale earlier run). */
static void remove_db(unsigned db)
{
    for (unsigned j = 0; j < NSUFFIX; j++)
        if (unlink(g_paths[db][j]) != 0 && errno != ENOENT) die_errno(errno, g_paths[db][j]);
}

/* Chooses the directory, builds every file path and arranges the cleanup. */
static void setup_files(void)
{
    if (g_opt.dir) {
        if ((size_t)snprintf(g_dir, sizeof(g_dir), "%s", g_opt.dir) >= sizeof(g_dir))
            die_usage("--dir is too long", g_opt.dir);
        if (access(g_dir, W_OK | X_OK) != 0) die_errno(errno, g_dir);
    } else {
        snprintf(g_dir, sizeof(g_dir), "/tmp/nanasqlite-bench-XXXXXX");
        if (!mkdtemp(g_dir)) die_errno(errno, "mkdtemp");
        g_dir_made = true;
    }
    for (unsigned i = 0; i < DB_COUNT_; i++)
        for (unsigned j = 0; j < NSUFFIX; j++) {
            int n =
                snprintf(g_paths[i][j], PATH_MAX, "%s/%s%s", g_dir, db_names[i], db_suffixes[j]);
            if (n < 0 || n >= PATH_MAX) die_usage("--dir is too long", g_dir);
        }
    if (atexit(remove_files) != 0) die_errno(ENOMEM, "atexit");
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    if (sigemptyset(&sa.sa_mask) != 0) die_errno(errno, "sigemptyset");
    if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0)
        die_errno(errno, "sigaction");
}

/* The CPU model name from /proc/cpuinfo into |buf|, or "unknown". */
static void cpu_model(char *buf, size_t cap)
{
    snprintf(buf, cap, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "model name", 10) != 0) continue;
        const char *p = strchr(line, ':');
        if (!p) continue;
        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        size_t n = strcspn(p, "\n");
        snprintf(buf, cap, "%.*s", (int)n, p);
        break;
    }
    if (fclose(f) != 0) snprintf(buf, cap, "unknown");
}

static const char *sync_name(nana_sync_mode m)
{
    return m == NANA_SYNC_FULL ? "full" : m == NANA_SYNC_OFF ? "off" : "normal";
}

/* Every scenario in running order: its name, the alias that also selects
 * it (or NULL), and whether it reads (get key space) or writes. */
static const struct scen_info {
    const char *name;
    const char *group;
    bool reads;
} g_scens[] = {
    {"cached_get", NULL, true},        {"uncached_get", NULL, true},
    {"set_concurrent", NULL, false},   {"set_async", NULL, false},
    {"set_async_256", NULL, false},    {"batch_update", NULL, false},
    {"naive_shared", "naive", false},  {"naive_conns", "naive", false},
    {"naive_1thread", "naive", false},
};
#define NSCENS (sizeof(g_scens) / sizeof(g_scens[0]))

/* The key space of the get scenarios and of the write scenarios. */
static size_t get_keyspace(void)
{
    return g_opt.keys ? g_opt.keys : DEFAULT_GETKEYS;
}

static size_t set_keyspace(void)
{
    return g_opt.keys ? g_opt.keys : DEFAULT_SETKEYS;
}

/* True if --scenario selects |name| (|group| is an alias covering it, or NULL). */
static bool selected(const char *name, const char *group)
{
    return !strcmp(g_opt.scenario, "all") || !strcmp(g_opt.scenario, name) ||
           (group && !strcmp(g_opt.scenario, group));
}

/* Prints the machine, the settings and the key space of every selected
 * scenario (to stderr in --json mode). */
static void print_facts(void)
{
    FILE *out = g_opt.json ? stderr : stdout;
    char cpu[256];
    cpu_model(cpu, sizeof(cpu));
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    fprintf(out, "machine: nproc=%ld  cpu=%s  sqlite=%s\n", ncpu, cpu, sqlite3_libversion());
    fprintf(out,
            "settings: seconds=%.1f writers=%u threads=%u keys=%zu value=%zu B sync=%s dir=%s\n",
            g_opt.seconds, g_opt.writers, g_opt.threads, g_opt.keys, g_opt.value_size,
            sync_name(g_opt.sync), g_dir);
    fprintf(out, "key space:");
    for (size_t i = 0; i < NSCENS; i++)
        if (selected(g_scens[i].name, g_scens[i].group))
            fprintf(out, " %s=%zu", g_scens[i].name,
                    g_scens[i].reads ? get_keyspace() : set_keyspace());
    fprintf(out, "%s\n", g_opt.keys ? "" : "  (defaults; --keys N sets all)");
}

/* ------------------------------------------------------------------ */
/* Keys, values, random numbers                                        */
/* ------------------------------------------------------------------ */

typedef struct keyset {
    char *buf; /* n keys of KEY_WIDTH bytes each */
    size_t n;
    size_t klen; /* every key has this length */
} keyset;

typedef struct valueset {
    char *buf; /* NVALUES values of len bytes each */
    size_t len;
} valueset;

/* Builds n keys "k000000000" ... of equal length. */
static void keys_make(keyset *k, size_t n)
{
    k->buf = xcalloc(n, KEY_WIDTH);
    k->n = n;
    k->klen = 10;
    for (size_t i = 0; i < n; i++)
        snprintf(k->buf + i * KEY_WIDTH, KEY_WIDTH, "k%09u", (unsigned)i); /* i < MAX_KEYS */
}

static const char *key_at(const keyset *k, size_t i)
{
    return k->buf + i * KEY_WIDTH;
}

/* Builds NVALUES different JSON strings of exactly |len| bytes ("abc..."). */
static void values_make(valueset *v, size_t len)
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    v->buf = xcalloc(NVALUES, len);
    v->len = len;
    for (size_t i = 0; i < NVALUES; i++) {
        char *p = v->buf + i * len;
        p[0] = '"';
        for (size_t j = 1; j + 1 < len; j++)
            p[j] = alphabet[(i * 7 + j) % (sizeof(alphabet) - 1)];
        p[len - 1] = '"';
    }
}

static const char *value_at(const valueset *v, size_t i)
{
    return v->buf + (i % NVALUES) * v->len;
}

/*
 * Copies value |i| of |v| to |dst| with |stamp| written over its first
 * characters after the opening quote (as many of its last VALUE_DIGITS
 * decimal digits as fit), so writes with different stamps store different
 * values of the same size.
 */
static void value_stamp(const valueset *v, size_t i, uint64_t stamp, char *dst)
{
    memcpy(dst, value_at(v, i), v->len);
    size_t n = v->len - 2 < VALUE_DIGITS ? v->len - 2 : VALUE_DIGITS;
    for (size_t j = n; j-- > 0;) {
        dst[1 + j] = (char)('0' + stamp % 10);
        stamp /= 10;
    }
}

/* xorshift64*: a fast generator, one per thread. */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545f4914f6cdd1dull;
}

/* A number in [0, n) for n < 2^32 (multiply-shift, no division). */
static size_t rng_below(uint64_t *s, size_t n)
{
    return (size_t)(((rng_next(s) >> 32) * (uint64_t)n) >> 32);
}

/* ------------------------------------------------------------------ */
/* The naive baseline: one raw SQLite connection                       */
/* ------------------------------------------------------------------ */

typedef struct naive_db {
    sqlite3 *db;
    sqlite3_stmt *ins;
    pthread_mutex_t mu; /* one Python NanaSQLite instance's lock */
} naive_db;

/*
 * Opens |path| the way Python NanaSQLite does: its pragmas, its table.
 * |busy_ms| > 0 first sets PRAGMA busy_timeout, so that connections
 * sharing the file wait for each other's locks instead of failing.
 */
static void naive_open(naive_db *d, const char *path, unsigned busy_ms)
{
    static const char *const setup[] = {
        NULL, /* busy_timeout, when asked for */
        "PRAGMA journal_mode=WAL",
        NULL, /* synchronous, from --sync */
        "PRAGMA mmap_size=268435456",
        "PRAGMA temp_store=MEMORY",
        "PRAGMA cache_size=-65536",
        "CREATE TABLE IF NOT EXISTS \"data\" (key TEXT PRIMARY KEY, value TEXT)",
    };
    char sync_sql[64], busy_sql[64];
    snprintf(sync_sql, sizeof(sync_sql), "PRAGMA synchronous=%s", sync_name(g_opt.sync));
    snprintf(busy_sql, sizeof(busy_sql), "PRAGMA busy_timeout=%u", busy_ms);
    /* Every use is serialized by d->mu, so SQLite's own mutex is not needed. */
    int rc = sqlite3_open_v2(
        path, &d->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) die_sqlite(d->db, rc, "sqlite3_open_v2");
    for (size_t i = 0; i < sizeof(setup) / sizeof(setup[0]); i++) {
        if (i == 0 && busy_ms == 0) continue;
        const char *sql = setup[i] ? setup[i] : i == 0 ? busy_sql : sync_sql;
        rc = sqlite3_exec(d->db, sql, NULL, NULL, NULL);
        if (rc != SQLITE_OK) die_sqlite(d->db, rc, sql);
    }
    rc = sqlite3_prepare_v3(d->db, "INSERT OR REPLACE INTO \"data\" (key, value) VALUES (?, ?)", -1,
                            SQLITE_PREPARE_PERSISTENT, &d->ins, NULL);
    if (rc != SQLITE_OK) die_sqlite(d->db, rc, "prepare INSERT OR REPLACE");
    if ((rc = pthread_mutex_init(&d->mu, NULL)) != 0) die_errno(rc, "pthread_mutex_init");
}

/* Finalizes the statement and closes the connection; every step checked. */
static void naive_close(naive_db *d)
{
    int rc = sqlite3_finalize(d->ins);
    if (rc != SQLITE_OK) die_sqlite(d->db, rc, "sqlite3_finalize");
    if ((rc = sqlite3_close(d->db)) != SQLITE_OK) die_sqlite(d->db, rc, "sqlite3_close");
    if ((rc = pthread_mutex_destroy(&d->mu)) != 0) die_errno(rc, "pthread_mutex_destroy");
}

/*
 * One autocommitted INSERT OR REPLACE under the instance lock. Returns
 * true when it committed, false when the file stayed locked by another
 * connection beyond the busy timeout (SQLITE_BUSY; nothing was written);
 * any other failure exits.
 */
static bool naive_write(naive_db *d, const char *key, size_t klen, const char *val, size_t vlen)
{
    int rc;
    if ((rc = pthread_mutex_lock(&d->mu)) != 0) die_errno(rc, "pthread_mutex_lock");
    if ((rc = sqlite3_bind_text(d->ins, 1, key, (int)klen, SQLITE_STATIC)) != SQLITE_OK ||
        (rc = sqlite3_bind_text(d->ins, 2, val, (int)vlen, SQLITE_STATIC)) != SQLITE_OK)
        die_sqlite(d->db, rc, "sqlite3_bind_text");
    int step = sqlite3_step(d->ins);
    bool busy = (step & 0xff) == SQLITE_BUSY;
    if (step != SQLITE_DONE && !busy) die_sqlite(d->db, step, "INSERT OR REPLACE");
    /* After a failed step, reset reports that step's error again. */
    rc = sqlite3_reset(d->ins);
    if (rc != SQLITE_OK && !(busy && rc == step)) die_sqlite(d->db, rc, "sqlite3_reset");
    if ((rc = pthread_mutex_unlock(&d->mu)) != 0) die_errno(rc, "pthread_mutex_unlock");
    return !busy;
}

/* ------------------------------------------------------------------ */
/* Running a scenario on threads                                       */
/* ------------------------------------------------------------------ */

typedef struct scenario scenario;
typedef struct async_run async_run;

typedef struct worker {
    pthread_t th;
    unsigned id;
    scenario *sc; /* shared, read-only once the threads run (the barrier excepted) */
    uint64_t rng;
    uint64_t ops;    /* operations done: gets, sets, batch calls, inserts */
    uint64_t rows;   /* rows written by batch calls */
    uint64_t errors; /* naive_conns: writes that failed with SQLITE_BUSY */
    uint64_t writes; /* writes stamped (see write_stamp) */
    hist h;
} worker;

struct scenario {
    void (*body)(worker *w);
    nana_table *table;
    naive_db *naive;       /* one connection, or with naive_per_thread one per thread */
    bool naive_per_thread; /* naive_conns: thread i uses naive[i] */
    async_run *async;      /* set_async: the slots and the submitter's wake-up state */
    const keyset *keys;
    const valueset *vals;
    unsigned nthreads;
    uint64_t deadline_ns; /* written before the start barrier, read after it */
    uint64_t max_ops;     /* per thread */
    pthread_barrier_t start;
};

typedef struct result {
    uint64_t ops;
    uint64_t rows;
    uint64_t errors;
    uint64_t written; /* bytes this process handed to write system calls meanwhile */
    double seconds;
    hist h;
} result;

/* Bytes this process has passed to write(2) and the like so far (wchar in
 * /proc/self/io: WAL frames, checkpoints, the reports), 0 when unknown. */
static uint64_t bytes_written(void)
{
    FILE *f = fopen("/proc/self/io", "r");
    if (!f) return 0;
    char line[128];
    uint64_t v = 0;
    while (fgets(line, sizeof(line), f))
        if (!strncmp(line, "wchar: ", 7)) {
            v = strtoull(line + 7, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

/* True while the worker has time and operations left. */
static bool keep_going(const worker *w, uint64_t now)
{
    return now < w->sc->deadline_ns && w->ops < w->sc->max_ops;
}

/* A key for a write: writer i draws from the keys i, i + W, i + 2W, ...
 * (W writers), so no two writers write the same key at the same time and
 * together they cover the whole key space. With fewer keys than writers
 * every writer draws from all keys. */
static size_t pick_write_key(worker *w)
{
    size_t n = w->sc->keys->n, parts = w->sc->nthreads;
    if (n < parts) return rng_below(&w->rng, n);
    size_t mine = (n - w->id + parts - 1) / parts; /* keys id + parts * j below n */
    return w->id + parts * rng_below(&w->rng, mine);
}

/* The stamp of this worker's next write: a counter unique over the
 * scenario's threads (thread i counts i, i + T, i + 2T, ...). */
static uint64_t write_stamp(worker *w)
{
    return w->writes++ * w->sc->nthreads + w->id;
}

/* cached_get: gets timed in batches of GET_BATCH, one sample per batch. */
static void body_get_batched(worker *w)
{
    const scenario *sc = w->sc;
    for (;;) {
        uint64_t t0 = now_ns();
        for (unsigned i = 0; i < GET_BATCH; i++) {
            size_t k = rng_below(&w->rng, sc->keys->n);
            nana_val *v = NULL;
            int rc = nana_kv_get(sc->table, key_at(sc->keys, k), sc->keys->klen, &v);
            if (rc) die_store(rc, "nana_kv_get");
            nana_val_unref(v);
        }
        uint64_t t1 = now_ns();
        hist_add(&w->h, (t1 - t0 + GET_BATCH / 2) / GET_BATCH);
        w->ops += GET_BATCH;
        if (!keep_going(w, t1)) break;
    }
}

/* uncached_get: every get timed on its own. */
static void body_get_each(worker *w)
{
    const scenario *sc = w->sc;
    for (;;) {
        size_t k = rng_below(&w->rng, sc->keys->n);
        nana_val *v = NULL;
        uint64_t t0 = now_ns();
        int rc = nana_kv_get(sc->table, key_at(sc->keys, k), sc->keys->klen, &v);
        uint64_t t1 = now_ns();
        if (rc) die_store(rc, "nana_kv_get");
        nana_val_unref(v);
        hist_add(&w->h, t1 - t0);
        w->ops++;
        if (!keep_going(w, t1)) break;
    }
}

/* set_concurrent: one nana_kv_set at a time per writer. */
static void body_set(worker *w)
{
    const scenario *sc = w->sc;
    char *value = xcalloc(1, sc->vals->len);
    for (;;) {
        size_t k = pick_write_key(w);
        value_stamp(sc->vals, k, write_stamp(w), value);
        uint64_t t0 = now_ns();
        int rc = nana_kv_set(sc->table, key_at(sc->keys, k), sc->keys->klen, value, sc->vals->len);
        uint64_t t1 = now_ns();
        if (rc) die_store(rc, "nana_kv_set");
        hist_add(&w->h, t1 - t0);
        w->ops++;
        if (!keep_going(w, t1)) break;
    }
    free(value);
}

/* batch_update: UPDATE_BATCH consecutive keys from a random start per call. */
static void body_batch(worker *w)
{
    const scenario *sc = w->sc;
    size_t n = sc->keys->n, per = n < UPDATE_BATCH ? n : UPDATE_BATCH;
    nana_kv_pair *pairs = xcalloc(per, sizeof(*pairs));
    char *values = xcalloc(per, sc->vals->len);
    for (;;) {
        size_t start = rng_below(&w->rng, n);
        for (size_t i = 0; i < per; i++) {
            size_t k = (start + i) % n;
            char *value = values + i * sc->vals->len;
            value_stamp(sc->vals, k, write_stamp(w), value);
            pairs[i] = (nana_kv_pair){.key = key_at(sc->keys, k),
                                      .klen = sc->keys->klen,
                                      .value = value,
                                      .vlen = sc->vals->len};
        }
        uint64_t t0 = now_ns();
        int rc = nana_kv_batch_update(sc->table, pairs, per);
        uint64_t t1 = now_ns();
        if (rc) die_store(rc, "nana_kv_batch_update");
        hist_add(&w->h, t1 - t0);
        w->ops++;
        w->rows += per;
        if (!keep_going(w, t1)) break;
    }
    free(values);
    free(pairs);
}

/* naive_shared / naive_conns / naive_1thread: autocommitted writes on a raw
 * connection. Only committed writes count as ops and are timed. */
static void body_naive(worker *w)
{
    const scenario *sc = w->sc;
    naive_db *d = sc->naive_per_thread ? &sc->naive[w->id] : sc->naive;
    char *value = xcalloc(1, sc->vals->len);
    for (;;) {
        size_t k = pick_write_key(w);
        value_stamp(sc->vals, k, write_stamp(w), value);
        uint64_t t0 = now_ns();
        bool ok = naive_write(d, key_at(sc->keys, k), sc->keys->klen, value, sc->vals->len);
        uint64_t t1 = now_ns();
        if (ok) {
            hist_add(&w->h, t1 - t0);
            w->ops++;
        } else {
            w->errors++;
        }
        if (!keep_going(w, t1)) break;
    }
    free(value);
}

/* ------------------------------------------------------------------ */
/* set_async: one submitter, many writes in flight                     */
/* ------------------------------------------------------------------ */

/*
 * One write in flight. The submitter owns a slot while it is free; from a
 * successful nana_kv_set_async until its done callback pushes it on the
 * returned stack, the store owns it. The callback fills in the outcome and
 * touches the slot no more after the push, so the submitter may reuse it
 * at once.
 */
typedef struct aslot {
    async_run *run;
    struct aslot *next; /* link in the submitter's free list or the returned stack */
    uint64_t submit_ns;
    uint64_t done_ns; /* written by the callback */
    int rc;           /* written by the callback */
    char errmsg[ERRMSG_CAP];
    char key[KEY_WIDTH];
    char *value; /* vals->len bytes, in async_run.values */
} aslot;

/*
 * The state shared by the submitter and the done callbacks. Completed
 * slots come back through a lock-free stack (pushed one by one by the
 * callbacks, taken whole by the submitter); |nreturned| counts them. The
 * submitter sleeps on the futex word wake_seq only when it has no free
 * slot. It first stores in |want| how many returned slots are worth a
 * wake-up, and a callback pays for a wake-up only when it brings the
 * count to |want|, clearing |want|: one sleep costs at most one wake-up.
 */
struct async_run {
    unsigned nslots;
    aslot *slots;
    char *values;
    _Atomic(aslot *) returned;
    /* Slots pushed on |returned| and not yet taken back. Signed: the
     * submitter may take a slot back before its callback counted it. */
    atomic_int nreturned;
    atomic_int want; /* 0, or the nreturned at which the sleeping submitter wants waking */
    atomic_uint wake_seq;
    atomic_ullong wakeups; /* futex wakes issued by callbacks */
    /* The submitter's own counts. */
    uint64_t sleeps;   /* times it slept on the futex */
    uint64_t busy;     /* NANA_ERR_BUSY answers (queue full) */
    uint64_t failures; /* writes whose callback reported rc < 0 */
    char first_error[ERRMSG_CAP + 64];
};

/* Sleeps until *addr no longer holds |val| or a wake-up arrives. */
static void futex_wait(atomic_uint *addr, unsigned val)
{
    if (syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0) != 0 && errno != EAGAIN &&
        errno != EINTR)
        die_errno(errno, "futex wait");
}

/* Wakes one thread sleeping on |addr|. */
static void futex_wake(atomic_uint *addr)
{
    if (syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0) < 0)
        die_errno(errno, "futex wake");
}

/*
 * The done callback, on the store's writer thread: notes when and how the
 * write ended, hands the slot back and wakes the submitter if it sleeps
 * and enough slots are back. Seq_cst on |nreturned| and |want| pairs with
 * async_wait: either the submitter sees the count, or this call sees
 * |want| and wakes it.
 */
static void async_done(void *arg, int rc, const char *errmsg)
{
    aslot *sl = arg;
    async_run *ar = sl->run;
    sl->done_ns = now_ns();
    sl->rc = rc;
    if (rc) snprintf(sl->errmsg, sizeof(sl->errmsg), "%s", errmsg ? errmsg : "");
    aslot *head = atomic_load_explicit(&ar->returned, memory_order_relaxed);
    do {
        sl->next = head;
    } while (!atomic_compare_exchange_weak_explicit(&ar->returned, &head, sl, memory_order_release,
                                                    memory_order_relaxed));
    /* |sl| belongs to the submitter from here on. */
    int back = atomic_fetch_add_explicit(&ar->nreturned, 1, memory_order_seq_cst) + 1;
    int want = atomic_load_explicit(&ar->want, memory_order_seq_cst);
    if (want == 0 || back < want) return;
    if (!atomic_compare_exchange_strong_explicit(&ar->want, &want, 0, memory_order_seq_cst,
                                                 memory_order_relaxed))
        return; /* another callback is waking it */
    atomic_fetch_add_explicit(&ar->wake_seq, 1, memory_order_release);
    futex_wake(&ar->wake_seq);
    atomic_fetch_add_explicit(&ar->wakeups, 1, memory_order_relaxed);
}

/*
 * The submitter waits until |want| (1 <= want <= writes in flight) slots
 * have come back. Waiting for a few at once rather than the first spares
 * the writer a futex wake per write: a group's callbacks run back to back.
 */
static void async_wait(async_run *ar, int want)
{
    for (;;) {
        unsigned seq = atomic_load_explicit(&ar->wake_seq, memory_order_acquire);
        atomic_store_explicit(&ar->want, want, memory_order_seq_cst);
        if (atomic_load_explicit(&ar->nreturned, memory_order_seq_cst) >= want) break;
        ar->sleeps++;
        futex_wait(&ar->wake_seq, seq);
        /* A wake-up meant for an earlier sleep may arrive here: check again. */
    }
    atomic_store_explicit(&ar->want, 0, memory_order_relaxed);
}

/* Sleeps BUSY_BACKOFF_NS after the write queue refused a write. */
static void busy_backoff(void)
{
    struct timespec ts = {.tv_sec = 0, .tv_nsec = BUSY_BACKOFF_NS};
    if (nanosleep(&ts, NULL) != 0 && errno != EINTR) die_errno(errno, "nanosleep");
}

/*
 * Takes back every completed slot: records its latency (or its failure)
 * and puts it on *free_list. Returns the number taken back.
 */
static unsigned async_reap(worker *w, async_run *ar, aslot **free_list)
{
    aslot *sl = atomic_exchange_explicit(&ar->returned, NULL, memory_order_acquire);
    unsigned n = 0;
    for (aslot *p = sl; p; p = p->next)
        n++;
    atomic_fetch_sub_explicit(&ar->nreturned, (int)n, memory_order_relaxed);
    while (sl) {
        aslot *next = sl->next;
        if (sl->rc == 0) {
            hist_add(&w->h, sl->done_ns - sl->submit_ns);
            w->ops++;
        } else if (ar->failures++ == 0) {
            snprintf(ar->first_error, sizeof(ar->first_error), "%s: %s", nana_strerror(sl->rc),
                     sl->errmsg);
        }
        sl->next = *free_list;
        *free_list = sl;
        sl = next;
    }
    return n;
}

/*
 * set_async: the one submitter. Keeps every slot in flight with a random
 * key until the deadline, then waits for the writes still in flight, so
 * the run's time includes them. A write's latency runs from just before
 * nana_kv_set_async to the start of its done callback.
 */
static void body_set_async(worker *w)
{
    const scenario *sc = w->sc;
    async_run *ar = sc->async;
    aslot *free_list = NULL;
    for (unsigned i = ar->nslots; i-- > 0;) {
        ar->slots[i].next = free_list;
        free_list = &ar->slots[i];
    }
    unsigned inflight = 0;
    uint64_t submitted = 0;
    bool stopping = false;
    for (;;) {
        inflight -= async_reap(w, ar, &free_list);
        if (!stopping) stopping = now_ns() >= sc->deadline_ns || submitted >= sc->max_ops;
        if (stopping && inflight == 0) break;
        bool refused = false;
        while (!stopping && free_list && submitted < sc->max_ops) {
            aslot *sl = free_list;
            free_list = sl->next; /* before the submit: the callback reuses sl->next */
            size_t k = rng_below(&w->rng, sc->keys->n);
            memcpy(sl->key, key_at(sc->keys, k), sc->keys->klen);
            value_stamp(sc->vals, k, write_stamp(w), sl->value);
            sl->submit_ns = now_ns();
            int rc = nana_kv_set_async(sc->table, sl->key, sc->keys->klen, sl->value, sc->vals->len,
                                       async_done, sl);
            if (rc == NANA_ERR_BUSY) {
                sl->next = free_list;
                free_list = sl;
                ar->busy++;
                refused = true;
                break;
            }
            if (rc) die_store(rc, "nana_kv_set_async");
            inflight++;
            submitted++;
        }
        if (refused) {
            busy_backoff();
        } else if (inflight > 0 && (stopping || !free_list)) {
            unsigned want = ar->nslots / ASYNC_WAKE_DIV;
            async_wait(ar, (int)(want < 1 ? 1 : want > inflight ? inflight : want));
        }
    }
}

/* Thread entry: wait for the common start, then run the scenario's body. */
static void *worker_main(void *arg)
{
    worker *w = arg;
    int rc = pthread_barrier_wait(&w->sc->start);
    if (rc != 0 && rc != PTHREAD_BARRIER_SERIAL_THREAD) die_errno(rc, "pthread_barrier_wait");
    w->sc->body(w);
    return NULL;
}

/*
 * Runs sc->body on |nthreads| threads that start together, until the
 * deadline or the operation cap, and merges their counts and histograms.
 */
static void run_threads(scenario *sc, unsigned nthreads, result *out)
{
    sc->nthreads = nthreads;
    sc->max_ops = MAX_OPS / nthreads;
    worker *ws = xcalloc(nthreads, sizeof(*ws));
    int rc = pthread_barrier_init(&sc->start, NULL, nthreads + 1);
    if (rc != 0) die_errno(rc, "pthread_barrier_init");
    for (unsigned i = 0; i < nthreads; i++) {
        ws[i].id = i;
        ws[i].sc = sc;
        ws[i].rng = 0x9e3779b97f4a7c15ull * (i + 1) ^ 0xd1b54a32d192ed03ull;
        if ((rc = pthread_create(&ws[i].th, NULL, worker_main, &ws[i])) != 0)
            die_errno(rc, "pthread_create");
    }
    memset(out, 0, sizeof(*out));
    uint64_t w0 = bytes_written();
    uint64_t t0 = now_ns();
    sc->deadline_ns = t0 + (uint64_t)(g_opt.seconds * 1e9);
    rc = pthread_barrier_wait(&sc->start);
    if (rc != 0 && rc != PTHREAD_BARRIER_SERIAL_THREAD) die_errno(rc, "pthread_barrier_wait");
    for (unsigned i = 0; i < nthreads; i++) {
        if ((rc = pthread_join(ws[i].th, NULL)) != 0) die_errno(rc, "pthread_join");
        out->ops += ws[i].ops;
        out->rows += ws[i].rows;
        out->errors += ws[i].errors;
        hist_merge(&out->h, &ws[i].h);
    }
    out->seconds = (double)(now_ns() - t0) / 1e9;
    out->written = bytes_written() - w0;
    if ((rc = pthread_barrier_destroy(&sc->start)) != 0) die_errno(rc, "pthread_barrier_destroy");
    free(ws);
}

/* ------------------------------------------------------------------ */
/* Reporting                                                           */
/* ------------------------------------------------------------------ */

static bool g_header_done;

/*
 * Prints one scenario: a table row, or one JSON object. |json_extra| is
 * appended to the object (",\"k\":v..." or ""), |note| to the row.
 */
static void report(const char *name, unsigned threads, const result *r, const char *json_extra,
                   const char *note)
{
    double ops_s = r->seconds > 0.0 ? (double)r->ops / r->seconds : 0.0;
    double p50 = hist_quantile_us(&r->h, 0.50), p90 = hist_quantile_us(&r->h, 0.90);
    double p99 = hist_quantile_us(&r->h, 0.99), p999 = hist_quantile_us(&r->h, 0.999);
    double max = (double)r->h.max_ns / 1000.0;
    uint64_t writes = r->rows ? r->rows : r->ops; /* rows written, for batch calls */
    double per_write = writes ? (double)r->written / (double)writes : 0.0;
    if (g_opt.json) {
        printf("{\"scenario\":\"%s\",\"threads\":%u,\"ops\":%" PRIu64 ",\"seconds\":%.3f,"
               "\"ops_per_sec\":%.1f,\"p50_us\":%.3f,\"p90_us\":%.3f,\"p99_us\":%.3f,"
               "\"p999_us\":%.3f,\"max_us\":%.3f,\"bytes_written\":%" PRIu64
               ",\"bytes_written_per_op\":%.1f%s}\n",
               name, threads, r->ops, r->seconds, ops_s, p50, p90, p99, p999, max, r->written,
               per_write, json_extra);
    } else {
        if (!g_header_done) {
            printf("\n%-15s %7s %12s %9s %9s %9s %9s %10s  %s\n", "scenario", "threads", "ops/s",
                   "p50 us", "p90 us", "p99 us", "p99.9 us", "max us", "notes");
            g_header_done = true;
        }
        printf("%-15s %7u %12.0f %9.2f %9.2f %9.2f %9.2f %10.1f  %s; written %.0f B/write\n", name,
               threads, ops_s, p50, p90, p99, p999, max, note, per_write);
    }
    if (fflush(stdout) != 0) die_errno(errno, "stdout");
}

/* ------------------------------------------------------------------ */
/* Scenarios                                                           */
/* ------------------------------------------------------------------ */

/* Opens a fresh store file for scenario family |db| with --sync. */
static nana_store *store_open(unsigned db)
{
    remove_db(db);
    nana_store_opts o;
    nana_store_opts_init(&o);
    o.sync = g_opt.sync;
    nana_store *s = NULL;
    int rc = nana_store_open(g_paths[db][0], &o, &s);
    if (rc) die_store(rc, "nana_store_open");
    return s;
}

/* Closes a store (waits for its writer), exiting on failure. */
static void store_close(nana_store *s)
{
    int rc = nana_store_close(s);
    if (rc) die_store(rc, "nana_store_close");
}

/* Writes every key of |k| into |t| with batch_update. */
static void preload(nana_table *t, const keyset *k, const valueset *v)
{
    nana_kv_pair *pairs = xcalloc(PRELOAD_BATCH, sizeof(*pairs));
    for (size_t i = 0; i < k->n;) {
        size_t n = 0;
        for (; n < PRELOAD_BATCH && i < k->n; n++, i++)
            pairs[n] = (nana_kv_pair){
                .key = key_at(k, i), .klen = k->klen, .value = value_at(v, i), .vlen = v->len};
        int rc = nana_kv_batch_update(t, pairs, n);
        if (rc) die_store(rc, "preload: nana_kv_batch_update");
    }
    free(pairs);
}

/* cached_get and uncached_get (1 thread, then --threads) on one file. */
static void scen_gets(bool cached, bool uncached, const valueset *vals)
{
    keyset keys;
    keys_make(&keys, get_keyspace());
    nana_store *s = store_open(DB_GET);
    scenario sc = {.keys = &keys, .vals = vals};
    nana_store_stats a, b;
    result r;
    char json[256], note[256];
    if (cached) {
        sc.table = nana_store_default_table(s);
        preload(sc.table, &keys, vals);
        for (size_t i = 0; i < keys.n; i++) { /* warm: every key in the cache */
            nana_val *v = NULL;
            int rc = nana_kv_get(sc.table, key_at(&keys, i), keys.klen, &v);
            if (rc) die_store(rc, "warm: nana_kv_get");
            nana_val_unref(v);
        }
        sc.body = body_get_batched;
        nana_store_get_stats(s, &a);
        run_threads(&sc, 1, &r);
        nana_store_get_stats(s, &b);
        snprintf(json, sizeof(json),
                 ",\"keys\":%zu,\"sqlite_reads\":%" PRIu64 ",\"latency_sample\":\"mean of %u ops\"",
                 keys.n, b.sqlite_reads - a.sqlite_reads, GET_BATCH);
        snprintf(note, sizeof(note),
                 "sqlite_reads=%" PRIu64 "; latency = mean per op of %u-op batches",
                 b.sqlite_reads - a.sqlite_reads, GET_BATCH);
        report("cached_get", 1, &r, json, note);
    }
    if (uncached) {
        nana_cache_opts none = {.kind = NANA_CACHE_NONE};
        int rc = nana_store_table(s, "nocache", &none, &sc.table);
        if (rc) die_store(rc, "nana_store_table");
        preload(sc.table, &keys, vals);
        sc.body = body_get_each;
        unsigned counts[2] = {1, g_opt.threads};
        for (unsigned i = 0; i < (g_opt.threads == 1 ? 1u : 2u); i++) {
            nana_store_get_stats(s, &a);
            run_threads(&sc, counts[i], &r);
            nana_store_get_stats(s, &b);
            snprintf(json, sizeof(json), ",\"keys\":%zu,\"sqlite_reads\":%" PRIu64, keys.n,
                     b.sqlite_reads - a.sqlite_reads);
            snprintf(note, sizeof(note), "sqlite_reads=%" PRIu64, b.sqlite_reads - a.sqlite_reads);
            report("uncached_get", counts[i], &r, json, note);
        }
    }
    store_close(s);
    free(keys.buf);
}

/* set_concurrent: --writers threads of nana_kv_set. Returns ops/s. */
static double scen_set(const keyset *keys, const valueset *vals)
{
    nana_store *s = store_open(DB_SET);
    scenario sc = {
        .table = nana_store_default_table(s), .keys = keys, .vals = vals, .body = body_set};
    nana_store_stats a, b;
    result r;
    nana_store_get_stats(s, &a);
    run_threads(&sc, g_opt.writers, &r);
    nana_store_get_stats(s, &b);
    store_close(s);
    uint64_t commits = b.commits - a.commits, writes = b.writes - a.writes;
    double group = commits ? (double)writes / (double)commits : 0.0;
    char json[256], note[256];
    snprintf(json, sizeof(json),
             ",\"keys\":%zu,\"sync\":\"%s\",\"commits\":%" PRIu64 ",\"writes\":%" PRIu64
             ",\"avg_group\":%.1f",
             keys->n, sync_name(g_opt.sync), commits, writes, group);
    snprintf(note, sizeof(note), "sync=%s commits=%" PRIu64 " avg_group=%.1f",
             sync_name(g_opt.sync), commits, group);
    report("set_concurrent", g_opt.writers, &r, json, note);
    return r.seconds > 0.0 ? (double)r.ops / r.seconds : 0.0;
}

/*
 * set_async (or set_async_256, by |name|): one submitter keeping |nslots|
 * nana_kv_set_async writes in flight. Returns ops/s; exits 1 after the
 * report if any write failed.
 */
static double scen_set_async(const char *name, unsigned nslots, const keyset *keys,
                             const valueset *vals)
{
    nana_store *s = store_open(DB_ASYNC);
    async_run *ar = xcalloc(1, sizeof(*ar));
    ar->nslots = nslots;
    ar->slots = xcalloc(nslots, sizeof(*ar->slots));
    ar->values = xcalloc(nslots, vals->len);
    for (unsigned i = 0; i < nslots; i++) {
        ar->slots[i].run = ar;
        ar->slots[i].value = ar->values + (size_t)i * vals->len;
    }
    atomic_init(&ar->returned, NULL);
    atomic_init(&ar->nreturned, 0);
    atomic_init(&ar->want, 0);
    atomic_init(&ar->wake_seq, 0);
    atomic_init(&ar->wakeups, 0);
    scenario sc = {.table = nana_store_default_table(s),
                   .async = ar,
                   .keys = keys,
                   .vals = vals,
                   .body = body_set_async};
    nana_store_stats a, b;
    result r;
    nana_store_get_stats(s, &a);
    run_threads(&sc, 1, &r);
    nana_store_get_stats(s, &b);
    store_close(s); /* every callback has run: the submitter waited for all of them */
    uint64_t commits = b.commits - a.commits, writes = b.writes - a.writes;
    double group = commits ? (double)writes / (double)commits : 0.0;
    unsigned long long wakeups = atomic_load_explicit(&ar->wakeups, memory_order_relaxed);
    char json[384], note[256];
    snprintf(json, sizeof(json),
             ",\"keys\":%zu,\"sync\":\"%s\",\"in_flight\":%u,\"commits\":%" PRIu64
             ",\"writes\":%" PRIu64 ",\"avg_group\":%.1f,\"failures\":%" PRIu64
             ",\"busy_retries\":%" PRIu64 ",\"sleeps\":%" PRIu64 ",\"wakeups\":%llu",
             keys->n, sync_name(g_opt.sync), nslots, commits, writes, group, ar->failures, ar->busy,
             ar->sleeps, wakeups);
    snprintf(note, sizeof(note),
             "sync=%s in_flight=%u commits=%" PRIu64 " avg_group=%.1f wakeups=%llu busy=%" PRIu64
             "%s",
             sync_name(g_opt.sync), nslots, commits, group, wakeups, ar->busy,
             ar->failures ? " FAILURES" : "");
    report(name, 1, &r, json, note);
    if (ar->failures) {
        fprintf(stderr, "nanasqlite-bench-store: %s: %" PRIu64 " writes failed; first: %s\n", name,
                ar->failures, ar->first_error);
        exit(1);
    }
    free(ar->values);
    free(ar->slots);
    free(ar);
    return r.seconds > 0.0 ? (double)r.ops / r.seconds : 0.0;
}

/* batch_update: one thread, UPDATE_BATCH pairs per call. */
static void scen_batch(const keyset *keys, const valueset *vals)
{
    nana_store *s = store_open(DB_BATCH);
    scenario sc = {
        .table = nana_store_default_table(s), .keys = keys, .vals = vals, .body = body_batch};
    nana_store_stats a, b;
    result r;
    nana_store_get_stats(s, &a);
    run_threads(&sc, 1, &r);
    nana_store_get_stats(s, &b);
    store_close(s);
    double rows_s = r.seconds > 0.0 ? (double)r.rows / r.seconds : 0.0;
    char json[256], note[256];
    snprintf(json, sizeof(json),
             ",\"keys\":%zu,\"sync\":\"%s\",\"batch_size\":%zu,\"rows\":%" PRIu64
             ",\"rows_per_sec\":%.1f,\"commits\":%" PRIu64,
             keys->n, sync_name(g_opt.sync), keys->n < UPDATE_BATCH ? keys->n : UPDATE_BATCH,
             r.rows, rows_s, b.commits - a.commits);
    snprintf(note, sizeof(note), "ops = batches of %zu; rows/s=%.0f",
             keys->n < UPDATE_BATCH ? keys->n : UPDATE_BATCH, rows_s);
    report("batch_update", 1, &r, json, note);
}

typedef enum naive_kind { NAIVE_SHARED, NAIVE_CONNS, NAIVE_1THREAD } naive_kind;

/*
 * Raises the soft limit of open files so that |nconns| connections (a
 * database, a -wal and a -shm descriptor each) fit, as far as the hard
 * limit allows; opening a connection reports it if they still do not.
 */
static void ensure_fds(unsigned nconns)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) die_errno(errno, "getrlimit");
    rlim_t need = (rlim_t)nconns * 3 + 64;
    if (rl.rlim_cur >= need) return;
    rl.rlim_cur = rl.rlim_max < need ? rl.rlim_max : need;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) die_errno(errno, "setrlimit");
}

/*
 * The naive baseline: naive_shared (--writers threads, one connection),
 * naive_conns (--writers threads, a connection each) or naive_1thread.
 * Returns ops/s (committed writes only).
 */
static double scen_naive(naive_kind kind, const keyset *keys, const valueset *vals)
{
    static const char *const names[] = {"naive_shared", "naive_conns", "naive_1thread"};
    static const unsigned dbs[] = {DB_NAIVE_SHARED, DB_NAIVE_CONNS, DB_NAIVE_1THREAD};
    unsigned db = dbs[kind];
    unsigned nthreads = kind == NAIVE_1THREAD ? 1 : g_opt.writers;
    unsigned nconns = kind == NAIVE_CONNS ? nthreads : 1;
    remove_db(db);
    if (nconns > 1) ensure_fds(nconns);
    naive_db *d = xcalloc(nconns, sizeof(*d));
    for (unsigned i = 0; i < nconns; i++)
        naive_open(&d[i], g_paths[db][0], kind == NAIVE_CONNS ? NAIVE_BUSY_MS : 0);
    scenario sc = {.naive = d,
                   .naive_per_thread = kind == NAIVE_CONNS,
                   .keys = keys,
                   .vals = vals,
                   .body = body_naive};
    result r;
    run_threads(&sc, nthreads, &r);
    for (unsigned i = 0; i < nconns; i++)
        naive_close(&d[i]);
    free(d);
    char json[256], note[256];
    snprintf(json, sizeof(json),
             ",\"keys\":%zu,\"sync\":\"%s\",\"connections\":%u,\"commits\":%" PRIu64
             ",\"busy_errors\":%" PRIu64,
             keys->n, sync_name(g_opt.sync), nconns, r.ops, r.errors);
    if (kind == NAIVE_CONNS)
        snprintf(note, sizeof(note),
                 "sync=%s, one autocommit per write, %u connections, busy_timeout=%u ms, "
                 "SQLITE_BUSY errors=%" PRIu64,
                 sync_name(g_opt.sync), nconns, NAIVE_BUSY_MS, r.errors);
    else
        snprintf(note, sizeof(note), "sync=%s, one autocommit per write%s", sync_name(g_opt.sync),
                 r.errors ? ", SQLITE_BUSY errors (see json)" : "");
    report(names[kind], nthreads, &r, json, note);
    return r.seconds > 0.0 ? (double)r.ops / r.seconds : 0.0;
}

/*
 * The summary: set_concurrent and set_async each over every naive
 * baseline, for the pairs that ran (stderr in --json mode).
 */
static void print_summary(double set_rate, double async_rate, const double naive_rate[3])
{
    static const char *const naive_names[] = {"naive_shared", "naive_conns", "naive_1thread"};
    const struct {
        const char *name;
        double rate;
    } store[] = {{"set_concurrent", set_rate}, {"set_async", async_rate}};
    FILE *out = g_opt.json ? stderr : stdout;
    bool first = true;
    for (unsigned n = 0; n < 3; n++)
        for (unsigned i = 0; i < 2; i++) {
            if (store[i].rate < 0.0 || !(naive_rate[n] > 0.0)) continue;
            fprintf(out, "%s%s / %s = %.1fx\n", first ? "\n" : "", store[i].name, naive_names[n],
                    store[i].rate / naive_rate[n]);
            first = false;
        }
}

/* ------------------------------------------------------------------ */
/* Command line                                                        */
/* ------------------------------------------------------------------ */

/* Writes the paragraph under the usage line (scenarios and their sizes) into |buf|. */
static void describe(char *buf, size_t n)
{
    snprintf(
        buf, n,
        "Measures the store (src/store) and the naive one-autocommit-per-write baseline.\n"
        "Every scenario runs for --seconds or %llu operations, whichever comes first.\n"
        "\n"
        "scenarios (--scenario NAME, default all):\n"
        "  cached_get      nana_kv_get on a warm unbounded cache, 1 thread\n"
        "  uncached_get    nana_kv_get on a table without cache, 1 and --threads threads\n"
        "  set_concurrent  --writers threads of nana_kv_set (group commit)\n"
        "  set_async       1 thread keeping --writers nana_kv_set_async writes in flight\n"
        "  set_async_256   the same with %u writes in flight\n"
        "  batch_update    nana_kv_batch_update of %d pairs per call, 1 thread\n"
        "  naive           naive_shared, naive_conns and naive_1thread:\n"
        "  naive_shared    --writers threads, ONE raw SQLite connection behind a mutex,\n"
        "                  one autocommitted INSERT OR REPLACE per write\n"
        "  naive_conns     --writers threads, each with ITS OWN connection to the file\n"
        "                  (busy_timeout %u ms), one autocommitted write each; SQLITE_BUSY\n"
        "                  failures are counted and reported\n"
        "  naive_1thread   1 thread, one connection, autocommitted writes\n"
        "  all             everything, then set_concurrent and set_async over the naive ones\n",
        MAX_OPS, ASYNC_WIDE, UPDATE_BATCH, NAIVE_BUSY_MS);
}

/* Reads --scenario: one of g_scens, "naive" or "all". */
static int parse_scenario(const nana_opt *row, const char *v, void *field)
{
    (void)row;
    bool ok = !strcmp(v, "all") || !strcmp(v, "naive");
    for (size_t k = 0; k < NSCENS; k++)
        ok = ok || !strcmp(v, g_scens[k].name);
    if (!ok) return nana_err_set(NANA_ERR_INVALID, "\"%.64s\" is not a scenario (see --help)", v);
    memcpy(field, &v, sizeof(v));
    return 0;
}

#define AT(m) NANA_OPT_AT(bench_opts, m)

static const char *const sync_words[] = {"normal", "full", NULL};
static const int sync_values[] = {NANA_SYNC_NORMAL, NANA_SYNC_FULL};

static const nana_opt rows[] = {
    {.name = "scenario",
     .kind = NANA_OPT_CUSTOM,
     AT(scenario),
     .parse = parse_scenario,
     .def = "all",
     .arg = "NAME",
     .help = "what to measure (the list above)"},
    {.name = "seconds",
     .kind = NANA_OPT_DOUBLE,
     AT(seconds),
     .dmin = 0.001,
     .dmax = 3600,
     .def = "3",
     .arg = "S",
     .help = "duration of each scenario"},
    {.name = "writers",
     .kind = NANA_OPT_UINT,
     AT(writers),
     .min = 1,
     .max = MAX_WRITERS,
     .def = "64",
     .help = "writer threads (naive_*, set_concurrent), writes in flight (set_async)"},
    {.name = "threads",
     .kind = NANA_OPT_UINT,
     AT(threads),
     .min = 1,
     .max = MAX_THREADS,
     .def = "2",
     .help = "reader threads of the second uncached_get run"},
    {.name = "keys",
     .kind = NANA_OPT_UINT,
     AT(keys),
     .min = 1,
     .max = MAX_KEYS,
     .def_doc = "10000 for gets, 100000 for writes",
     .help = "key space of every scenario"},
    {.name = "value-size",
     .kind = NANA_OPT_UINT,
     AT(value_size),
     .min = 2,
     .max = MAX_VALUE_SIZE,
     .def = "64",
     .arg = "B",
     .help = "bytes of each JSON string value; a write stamps a counter into its first "
             "characters (up to 12 digits), so no write stores what its key holds"},
    {.name = "sync",
     .kind = NANA_OPT_ENUM,
     AT(sync),
     .words = sync_words,
     .values = sync_values,
     .def = "normal",
     .arg = "MODE",
     .help = "for the store and the baseline"},
    {.name = "dir",
     .kind = NANA_OPT_PATH,
     AT(dir),
     .def_doc = "a new directory in /tmp",
     .arg = "DIR",
     .help = "where the database files go (removed at exit either way)"},
    {.name = "json",
     .kind = NANA_OPT_FLAG,
     AT(json),
     .help = "one JSON object per scenario and line on stdout (facts on stderr)"},
};

/* Fills g_opt from the command line; exits 0 after --help or --version, 2 on a bad flag. */
static void parse_args(int argc, char **argv)
{
    static char about[2048];
    describe(about, sizeof(about));
    nana_opt_table table = {rows, sizeof(rows) / sizeof(rows[0]), &g_opt};
    nana_opt_prog prog = {
        .name = "nanasqlite-bench-store", .about = about, .tables = &table, .ntables = 1};
    int first;
    int status = nana_opt_report(&prog, nana_opt_parse(&prog, argc, argv, &first));
    if (status >= 0) exit(status);
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    setup_files();
    print_facts();

    valueset vals;
    values_make(&vals, g_opt.value_size);

    bool cached = selected("cached_get", NULL), uncached = selected("uncached_get", NULL);
    if (cached || uncached) scen_gets(cached, uncached, &vals);

    keyset keys;
    keys_make(&keys, set_keyspace());
    /* ops/s of each write scenario, < 0 when it did not run. */
    double set_rate = -1.0, async_rate = -1.0;
    double naive_rate[3] = {-1.0, -1.0, -1.0}; /* by naive_kind */
    if (selected("set_concurrent", NULL)) set_rate = scen_set(&keys, &vals);
    if (selected("set_async", NULL))
        async_rate = scen_set_async("set_async", g_opt.writers, &keys, &vals);
    if (selected("set_async_256", NULL)) scen_set_async("set_async_256", ASYNC_WIDE, &keys, &vals);
    if (selected("batch_update", NULL)) scen_batch(&keys, &vals);
    if (selected("naive_shared", "naive"))
        naive_rate[NAIVE_SHARED] = scen_naive(NAIVE_SHARED, &keys, &vals);
    if (selected("naive_conns", "naive"))
        naive_rate[NAIVE_CONNS] = scen_naive(NAIVE_CONNS, &keys, &vals);
    if (selected("naive_1thread", "naive"))
        naive_rate[NAIVE_1THREAD] = scen_naive(NAIVE_1THREAD, &keys, &vals);
    print_summary(set_rate, async_rate, naive_rate);

    free(keys.buf);
    free(vals.buf);
    if (fflush(stdout) != 0) die_errno(errno, "stdout");
    return 0;
}
