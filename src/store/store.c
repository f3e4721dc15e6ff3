/*
 * store.c - opening and closing a store, its tables, transactions and
 * statistics.
 *
 * Opening order matters: the writer connection opens first (it creates
 * the file, switches it to WAL and creates the default table), then the
 * read-only reader pool, then the writer thread. Closing runs in reverse
 * after the writer has drained its queue, so no accepted write is lost.
 */
#include "store/store_int.h"

#include "util/nana_log.h"
#include "util/nana_time.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void nana_store_opts_init(nana_store_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->sync = NANA_SYNC_NORMAL;
    o->cache_size_mb = 64;
    o->mmap_size = 268435456;
    o->readers = 4;
    o->write_queue = 4096;
    o->max_group = 1024;
    o->write_wait_ms = 5000;
    o->busy_timeout_ms = 5000;
    o->max_key_bytes = NANA_DEFAULT_MAX_KEY;
    o->max_value_bytes = NANA_DEFAULT_MAX_VALUE;
    o->max_json_depth = NANA_DEFAULT_JSON_DEPTH;
    o->max_clause_bytes = NANA_DEFAULT_MAX_CLAUSE;
    o->max_result_bytes = NANA_DEFAULT_MAX_RESULT;
    o->max_tables = NANA_DEFAULT_MAX_TABLES;
    o->max_queue_bytes = NANA_DEFAULT_QUEUE_BYTES;
    o->query_timeout_ms = 15000;
    o->checkpoint_pages = 8192;
    o->cache.kind = NANA_CACHE_UNBOUNDED;
    o->default_table = "data";
    o->cluster_wait_ms = 10000;
}

/* Checks a cache configuration; NanaSQLite's rules for LRU and TTL. */
static int check_cache_opts(const nana_cache_opts *c)
{
    switch (c->kind) {
    case NANA_CACHE_UNBOUNDED:
    case NANA_CACHE_NONE:
        return NANA_OK;
    case NANA_CACHE_LRU:
        if (c->size == 0)
            return nana_err_set(NANA_ERR_INVALID,
                                "cache_size must be a positive integer when using LRU strategy");
        return NANA_OK;
    case NANA_CACHE_TTL:
        if (!(c->ttl_seconds > 0.0) || !isfinite(c->ttl_seconds))
            return nana_err_set(NANA_ERR_INVALID,
                                "cache_ttl must be a positive value when using TTL strategy");
        return NANA_OK;
    default:
        return nana_err_set(NANA_ERR_INVALID, "unknown cache strategy %d", (int)c->kind);
    }
}

/* Checks the options a caller gave; every limit must be usable. */
static int check_opts(const nana_store_opts *o)
{
    if (o->readers < 1 || o->readers > 256)
        return nana_err_set(NANA_ERR_INVALID, "readers must be between 1 and 256");
    if (o->write_queue < 1) return nana_err_set(NANA_ERR_INVALID, "write_queue must be >= 1");
    if (o->max_group < 1) return nana_err_set(NANA_ERR_INVALID, "max_group must be >= 1");
    if (o->max_key_bytes < 1 || o->max_value_bytes < 4 || o->max_json_depth < 1)
        return nana_err_set(NANA_ERR_INVALID, "key, value and depth limits must be positive");
    if (o->max_value_bytes > NANA_VAL_MAX_LEN || o->max_key_bytes > NANA_VAL_MAX_LEN)
        return nana_err_set(NANA_ERR_INVALID, "key and value limits must be below 4 GiB");
    if (o->max_db_bytes < 0) return nana_err_set(NANA_ERR_INVALID, "max_db_bytes must be >= 0");
    if (o->max_tables < 1) return nana_err_set(NANA_ERR_INVALID, "max_tables must be >= 1");
    if (o->checkpoint_pages < 1 || o->checkpoint_pages > 1000000)
        return nana_err_set(NANA_ERR_INVALID, "checkpoint_pages must be between 1 and 1000000");
    if (o->max_queue_bytes < 1)
        return nana_err_set(NANA_ERR_INVALID, "max_queue_bytes must be >= 1");
    if (o->sync != NANA_SYNC_NORMAL && o->sync != NANA_SYNC_FULL && o->sync != NANA_SYNC_OFF)
        return nana_err_set(NANA_ERR_INVALID, "unknown synchronous mode");
    if (!nana_identifier_valid(o->default_table) || nana_name_reserved(o->default_table))
        return nana_err_set(NANA_ERR_VALIDATION, "invalid default table name");
    if (o->open_check != NANA_CHECK_QUICK && o->open_check != NANA_CHECK_FULL &&
        o->open_check != NANA_CHECK_NONE)
        return nana_err_set(NANA_ERR_INVALID, "unknown open_check %d", (int)o->open_check);
    return check_cache_opts(&o->cache);
}

uint64_t nana_store_now(nana_store *s)
{
    if (s->opts.now_ms) return s->opts.now_ms(s->opts.now_arg);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/*
 * Copies |tmpl| into a new string with every "@T" replaced by the quoted
 * table name. Returns NULL when out of memory; the caller frees.
 */
static char *sql_for_table(const char *tmpl, const char *name)
{
    size_t nlen = strlen(name), n = 1;
    for (const char *p = tmpl; *p; p++)
        n += (p[0] == '@' && p[1] == 'T') ? nlen + 2 : 1;
    char *out = malloc(n), *o = out;
    if (!out) return NULL;
    for (const char *p = tmpl; *p; p++) {
        if (p[0] == '@' && p[1] == 'T') {
            *o++ = '"';
            memcpy(o, name, nlen);
            o += nlen;
            *o++ = '"';
            p++;
        } else {
            *o++ = *p;
        }
    }
    *o = '\0';
    return out;
}

/* The text of SQL_SET_4, _16 or _64 (|which|): an upsert of that many rows. */
static char *multi_set_sql(const char *name, int which)
{
    unsigned rows = which == SQL_SET_4 ? 4 : which == SQL_SET_16 ? 16 : 64;
    nana_buf b;
    nana_buf_init(&b, 0);
    int rc = nana_buf_printf(&b, "INSERT INTO \"%s\"(key,value) VALUES (?,?)", name);
    for (unsigned i = 1; !rc && i < rows; i++)
        rc = nana_buf_puts(&b, ",(?,?)");
    if (!rc) rc = nana_buf_puts(&b, " ON CONFLICT(key) DO UPDATE SET value=excluded.value");
    if (!rc) rc = nana_buf_putc(&b, '\0');
    if (rc) {
        nana_buf_free(&b);
        return NULL;
    }
    return (char *)b.data; /* the buffer's memory, freed with free() */
}

/* Builds the statement texts of a table; returns NANA_ERR_NOMEM on failure. */
static int table_sql(nana_table *t)
{
    static const char *const tmpl[SQL_COUNT_] = {
        [SQL_GET] = "SELECT value FROM @T WHERE key=?",
        [SQL_SET] = ("INSERT INTO @T(key,value) VALUES(?,?) "
                     "ON CONFLICT(key) DO UPDATE SET value=excluded.value"),
        [SQL_DEL] = "DELETE FROM @T WHERE key=? RETURNING value",
        [SQL_HAS] = "SELECT 1 FROM @T WHERE key=?",
        [SQL_LEN] = "SELECT COUNT(*) FROM @T",
        /* keys() in key order, as NanaSQLite's plain SELECT gets it from the
         * key's index; values and items in row (insertion) order, the order
         * of NanaSQLite's loaded cache. See STORE.md. */
        [SQL_KEYS] = "SELECT key FROM @T ORDER BY key",
        [SQL_VALUES] = "SELECT value FROM @T ORDER BY rowid",
        [SQL_ITEMS] = "SELECT key,value FROM @T ORDER BY rowid",
        [SQL_FIRST] = ("DELETE FROM @T WHERE rowid=(SELECT rowid FROM @T ORDER BY key LIMIT 1) "
                       "RETURNING key,value"),
        [SQL_CLEAR] = "DELETE FROM @T",
        [SQL_CREATE] = "CREATE TABLE IF NOT EXISTS @T (key TEXT PRIMARY KEY, value TEXT)",
        [SQL_GET_PATH] = "SELECT json_quote(json_extract(value,?)) FROM @T WHERE key=?",
        [SQL_BATCH_GET] = "SELECT key,value FROM @T WHERE key IN (SELECT value FROM json_each(?))",
        [SQL_DEL_PLAIN] = "DELETE FROM @T WHERE key=?",
    };
    for (int i = 0; i < SQL_COUNT_; i++) {
        t->sql[i] = tmpl[i] ? sql_for_table(tmpl[i], t->name) : multi_set_sql(t->name, i);
        if (!t->sql[i]) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    }
    return NANA_OK;
}

static void table_free(nana_table *t)
{
    for (int i = 0; i < SQL_COUNT_; i++)
        free(t->sql[i]);
    nana_cache_free(&t->cache);
    free(t);
}

int nana_table_obtain(nana_store *s, const char *name, const nana_cache_opts *cache,
                      nana_table **out, bool *created)
{
    if (!nana_identifier_valid(name))
        return nana_err_set(NANA_ERR_VALIDATION,
                            "Invalid identifier '%.*s': must start with a letter or underscore "
                            "and contain only ASCII letters, digits and underscores (at most %d)",
                            64, name ? name : "", NANA_MAX_TABLE_NAME);
    if (nana_name_reserved(name)) return nana_sql_check_identifier(name, "table");
    if (cache) {
        int rc = check_cache_opts(cache);
        if (rc) return rc;
    }
    *created = false;
    pthread_mutex_lock(&s->tables_mu);
    for (nana_table *t = s->tables; t; t = t->next) {
        /* SQLite table names are case-insensitive: one object per table. */
        if (strcasecmp(t->name, name) == 0) {
            pthread_mutex_unlock(&s->tables_mu);
            *out = t;
            return NANA_OK;
        }
    }
    if (s->ntables >= s->opts.max_tables) {
        pthread_mutex_unlock(&s->tables_mu);
        return nana_err_set(NANA_ERR_TOOBIG, "too many tables open in one store (limit %u)",
                            s->opts.max_tables);
    }
    nana_table *t = calloc(1, sizeof(*t));
    if (!t) {
        pthread_mutex_unlock(&s->tables_mu);
        return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    }
    t->store = s;
    snprintf(t->name, sizeof(t->name), "%s", name);
    /* A clustered table keeps no cache: other nodes write the same rows. */
    static const nana_cache_opts no_cache = {.kind = NANA_CACHE_NONE};
    int rc = nana_cache_init(&t->cache, s->cluster ? &no_cache : cache ? cache : &s->opts.cache);
    if (rc) {
        free(t);
        pthread_mutex_unlock(&s->tables_mu);
        return rc;
    }
    if ((rc = table_sql(t))) {
        table_free(t);
        pthread_mutex_unlock(&s->tables_mu);
        return rc;
    }
    t->next = s->tables;
    s->tables = t;
    s->ntables++;
    *out = t;
    *created = true;
    pthread_mutex_unlock(&s->tables_mu);
    return NANA_OK;
}

/* Writer op: CREATE TABLE IF NOT EXISTS for a KV table. */
static int create_exec(nana_wop *op, nana_conn *c)
{
    return nana_conn_exec(c, op->tbl->sql[SQL_CREATE]);
}

int nana_store_table(nana_store *s, const char *name, const nana_cache_opts *cache,
                     nana_table **out)
{
    bool created;
    nana_table *t;
    int rc = nana_table_obtain(s, name, cache, &t, &created);
    if (rc) return rc;
    if (!s->opts.read_only) {
        nana_wop op = {.exec = create_exec, .tbl = t};
        rc = nana_writer_run(s, &op);
        if (rc) return rc;
    }
    atomic_store(&t->ready, true);
    *out = t;
    return NANA_OK;
}

nana_table *nana_store_table_find(nana_store *s, const char *name)
{
    nana_table *found = NULL;
    pthread_mutex_lock(&s->tables_mu);
    for (nana_table *t = s->tables; t; t = t->next) {
        if (strcasecmp(t->name, name) == 0) {
            if (atomic_load(&t->ready)) found = t;
            break;
        }
    }
    pthread_mutex_unlock(&s->tables_mu);
    return found;
}

nana_table *nana_store_default_table(nana_store *s)
{
    return s->default_table;
}

const char *nana_table_name(const nana_table *t)
{
    return t->name;
}

void nana_store_clear_caches(nana_store *s)
{
    pthread_mutex_lock(&s->tables_mu);
    for (nana_table *t = s->tables; t; t = t->next)
        nana_cache_clear(&t->cache);
    pthread_mutex_unlock(&s->tables_mu);
}

/* Frees everything a (partly) opened store holds, except running threads. */
static void store_free(nana_store *s)
{
    nana_pool_close(&s->pool);
    nana_conn_close(&s->writer.conn);
    nana_table *t = s->tables;
    while (t) {
        nana_table *n = t->next;
        table_free(t);
        t = n;
    }
    pthread_mutex_destroy(&s->tables_mu);
    nana_dblock_drop(&s->lock);
    if (s->cluster) pthread_mutex_destroy(&s->cl_mu);
    if (s->cl_nodes) free(s->cl_nodes[0]); /* one string, cut at the commas */
    free(s->cl_nodes);
    free(s->default_table_name);
    free(s->canon_path);
    free(s->backup_dir);
    free(s->path);
    free(s);
}

/*
 * Process-wide SQLite settings, applied once before SQLite initializes:
 * no memory statistics (they take a global mutex around every allocation,
 * which serializes the reader threads).
 */
static void sqlite_setup(void)
{
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    sqlite3_initialize();
}

static pthread_once_t sqlite_once = PTHREAD_ONCE_INIT;

nana_file_kind nana_store_file_kind(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) return errno == ENOENT ? NANA_FILE_ABSENT : NANA_FILE_OTHER;
    if (!S_ISREG(st.st_mode)) return NANA_FILE_OTHER;
    if (st.st_size == 0) return NANA_FILE_EMPTY;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) return NANA_FILE_OTHER;
    static const char header[16] = "SQLite format 3";
    char h[16];
    ssize_t n = pread(fd, h, sizeof(h), 0);
    close(fd);
    return n == (ssize_t)sizeof(h) && memcmp(h, header, sizeof(h)) == 0 ? NANA_FILE_SQLITE
                                                                        : NANA_FILE_OTHER;
}

int nana_store_damaged(const nana_store *s)
{
    return atomic_load_explicit(&s->damaged, memory_order_acquire) ? 1 : 0;
}

int nana_store_damaged_err(void)
{
    return nana_err_set(NANA_ERR_CORRUPT,
                        "the database file is damaged and is no longer served (the server log "
                        "names the problem)");
}

void nana_store_mark_damaged(nana_store *s, const char *why)
{
    if (atomic_exchange_explicit(&s->damaged, true, memory_order_acq_rel)) return;
    nana_log_always(NANA_LOG_ERROR, "database %s is damaged (%s): %s",
                    s->canon_path ? s->canon_path : s->path, why,
                    s->opts.allow_corrupt ? "serving it anyway for recovery (allow_corrupt)"
                                          : "it is not served any more");
}

/*
 * Creates the database file if nothing is at |path| (never following a
 * link there), so that a failed open can remove exactly what it made.
 * Sets *created when it did.
 */
static int create_file(const char *path, bool *created)
{
    *created = false;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd >= 0) {
        close(fd);
        *created = true;
        return NANA_OK;
    }
    if (errno == EEXIST) return NANA_OK; /* made meanwhile: judged by SQLite like any file */
    return nana_err_set(errno == EACCES ? NANA_ERR_READONLY : NANA_ERR_IO,
                        "cannot create the database file: %s", strerror(errno));
}

/* Removes a database file this open created, with whatever SQLite put beside it. */
static void remove_created(const char *path)
{
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        char p[PATH_MAX];
        int n = snprintf(p, sizeof(p), "%s%s", path, suffixes[i]);
        if (n > 0 && (size_t)n < sizeof(p)) unlink(p);
    }
}

/*
 * The check at open (opts.open_check): quick_check or integrity_check on
 * the writer connection. A problem marks the store damaged (and logs it);
 * unless allow_corrupt the open then fails with NANA_ERR_CORRUPT.
 */
static int check_file(nana_store *s)
{
    if (s->opts.open_check == NANA_CHECK_NONE) return NANA_OK;
    nana_conn *c = &s->writer.conn;
    const char *what = s->opts.open_check == NANA_CHECK_FULL ? "integrity_check" : "quick_check";
    const char *sql = s->opts.open_check == NANA_CHECK_FULL ? "PRAGMA integrity_check(1)"
                                                            : "PRAGMA quick_check(1)";
    sqlite3_stmt *st = NULL;
    char first[160] = "";
    int rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) {
        rc = nana_conn_err(c, rc, what);
    } else {
        rc = nana_step(c, st, what);
        if (rc == 1) {
            const unsigned char *t = sqlite3_column_text(st, 0);
            snprintf(first, sizeof(first), "%s", t ? (const char *)t : "");
            for (char *p = first; *p; p++)
                if (*p == '\n' || *p == '\r' || *p == '\t') *p = ' '; /* one log line */
            rc = NANA_OK;
            if (strcmp(first, "ok") != 0) {
                char why[200];
                snprintf(why, sizeof(why), "%s: %s", what, first);
                nana_store_mark_damaged(s, why);
            }
        } else if (rc == 0) {
            rc = NANA_OK;
        }
    }
    sqlite3_finalize(st);
    if (rc && rc != NANA_ERR_CORRUPT) return rc;
    if (nana_store_damaged(s) && !s->opts.allow_corrupt)
        return nana_err_set(NANA_ERR_CORRUPT,
                            "the database file is damaged (%s found: %.120s); it is not served",
                            what, first[0] ? first : "an unreadable page");
    return NANA_OK;
}

/* Splits the comma-separated node list of opts.cluster_nodes into s->cl_nodes. */
static int cluster_nodes(nana_store *s)
{
    char *all = strdup(s->opts.cluster_nodes);
    if (!all) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    size_t n = 1;
    for (const char *p = all; *p; p++)
        n += *p == ',';
    s->cl_nodes = calloc(n, sizeof(*s->cl_nodes));
    if (!s->cl_nodes) {
        free(all);
        return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    }
    s->cl_nodes[0] = all; /* freed through cl_nodes[0] whatever comes next */
    s->cl_n = 0;
    for (char *save = NULL, *tok = strtok_r(all, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
        s->cl_nodes[s->cl_n++] = tok;
    if (s->cl_n == 0 || s->cl_nodes[0] != all)
        return nana_err_set(NANA_ERR_INVALID, "the cluster's node list is empty or begins with "
                                              "a comma");
    return NANA_OK;
}

/*
 * Opens a clustered store: connections that link to the leader when first
 * used, the writer thread, then the default table created through the
 * writer (which waits up to cluster_wait_ms for a leader).
 */
static int cluster_open(nana_store *s)
{
    if (s->opts.read_only) return nana_cluster_unsupported("read-only opening");
    if (strlen(s->path) > 255 || strchr(s->path, '/'))
        return nana_err_set(NANA_ERR_INVALID, "a clustered database's name is a file name of at "
                                              "most 255 bytes, without '/'");
    int rc = cluster_nodes(s);
    if (rc) return rc;
    s->cluster = true;
    pthread_mutex_init(&s->cl_mu, NULL);
    nana_dql_opts_default(&s->cl_opts);
    s->cl_opts.leader_timeout_ms = (int)s->opts.cluster_wait_ms;
    /* A leader that stops answering (cut off) must not hold a call past the
     * wait for a leader: the link's every request times out within it. */
    s->cl_opts.io_timeout_ms = (int)s->opts.cluster_wait_ms;
    if (s->opts.query_timeout_ms && s->opts.query_timeout_ms < s->opts.cluster_wait_ms)
        s->cl_opts.io_timeout_ms = (int)s->opts.query_timeout_ms;
    s->cl_opts.limits.result_max = s->opts.max_result_bytes * 2 + 4096;
    nana_clink_init(&s->writer.conn, s);
    /* A read is a round trip to the leader: links enough for the server's
     * 8 store workers (measured: 8 links read 1.4x what 4 do, 16 no more). */
    if (s->opts.readers < 8) s->opts.readers = 8;
    pthread_mutex_init(&s->pool.mu, NULL);
    nana_cond_init_monotonic(&s->pool.cv);
    s->pool.conns = calloc(s->opts.readers, sizeof(*s->pool.conns));
    s->pool.free_idx = calloc(s->opts.readers, sizeof(*s->pool.free_idx));
    if (!s->pool.conns || !s->pool.free_idx) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    for (unsigned i = 0; i < s->opts.readers; i++) {
        nana_clink_init(&s->pool.conns[i], s);
        s->pool.free_idx[i] = i;
    }
    s->pool.n = s->pool.nfree = s->opts.readers;
    bool created;
    rc = nana_table_obtain(s, s->default_table_name, NULL, &s->default_table, &created);
    if (rc) return rc;
    rc = nana_writer_start(s);
    if (rc) return rc;
    nana_wop op = {.exec = create_exec, .tbl = s->default_table};
    rc = nana_writer_run(s, &op);
    if (rc) return rc;
    atomic_store(&s->default_table->ready, true);
    return NANA_OK;
}

int nana_store_open(const char *path, const nana_store_opts *o, nana_store **out)
{
    pthread_once(&sqlite_once, sqlite_setup);
    *out = NULL;
    if (!path || !path[0]) return nana_err_set(NANA_ERR_INVALID, "database path is empty");
    if (strcmp(path, ":memory:") == 0 || strncmp(path, "file:", 5) == 0)
        return nana_err_set(NANA_ERR_INVALID, "the store needs a database file, not an in-memory "
                                              "or URI database");
    if (sodium_init() < 0) return nana_err_set(NANA_ERR_INTERNAL, "libsodium failed to start");
    nana_store_opts defaults;
    if (!o) {
        nana_store_opts_init(&defaults);
        o = &defaults;
    }
    int rc = check_opts(o);
    if (rc) return rc;
    nana_store *s = calloc(1, sizeof(*s));
    if (!s) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    s->opts = *o;
    s->lock.fd = -1;
    pthread_mutex_init(&s->tables_mu, NULL);
    s->path = strdup(path);
    s->default_table_name = strdup(o->default_table);
    if (!s->path || !s->default_table_name) {
        store_free(s);
        return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    }
    s->opts.default_table = s->default_table_name;
    if (o->backup_dir) {
        s->backup_dir = realpath(o->backup_dir, NULL);
        if (!s->backup_dir) {
            store_free(s);
            return nana_err_set(NANA_ERR_INVALID, "backup_dir does not exist");
        }
    }
    s->opts.backup_dir = s->backup_dir;
    if (o->cluster_nodes) {
        rc = cluster_open(s);
        if (rc) {
            char msg[NANA_ERRMSG_MAX];
            snprintf(msg, sizeof(msg), "%s", nana_errmsg());
            nana_writer_stop(s);
            store_free(s);
            return nana_err_set_str(rc, msg);
        }
        *out = s;
        return NANA_OK;
    }

    bool created = false;
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        rc = nana_err_set(NANA_ERR_IO, "the database path is not a regular file");
        goto fail;
    }
    rc = nana_dblock_take(path, o->read_only, &s->lock);
    if (rc) goto fail;
    switch (nana_store_file_kind(path)) {
    case NANA_FILE_OTHER:
        rc = nana_err_set(NANA_ERR_CORRUPT, "the file is not a database (it does not begin with "
                                            "SQLite's header); it was left untouched");
        goto fail;
    case NANA_FILE_ABSENT:
        if (!o->read_only && (rc = create_file(path, &created))) goto fail;
        break;
    default:
        break;
    }
    rc = nana_conn_open(&s->writer.conn, path, &s->opts, NANA_CONN_WRITER);
    if (rc) goto fail;
    s->writer.conn.store = s;
    s->canon_path = realpath(path, NULL);
    if (!s->canon_path) {
        rc = nana_err_set(NANA_ERR_IO, "cannot resolve the database path");
        goto fail;
    }
    if ((rc = check_file(s))) goto fail;
    bool table_created;
    rc = nana_table_obtain(s, s->default_table_name, NULL, &s->default_table, &table_created);
    if (rc) goto fail;
    if (!s->opts.read_only) {
        rc = nana_conn_exec(&s->writer.conn, s->default_table->sql[SQL_CREATE]);
        if (rc) goto fail;
    }
    atomic_store(&s->default_table->ready, true);
    rc = nana_pool_open(&s->pool, path, &s->opts, s);
    if (rc) goto fail;
    rc = nana_ckpt_start(s);
    if (rc) goto fail;
    rc = nana_writer_start(s);
    if (rc) {
        nana_ckpt_stop(s);
        goto fail;
    }
    *out = s;
    return NANA_OK;

fail : {
    char msg[NANA_ERRMSG_MAX];
    snprintf(msg, sizeof(msg), "%s", nana_errmsg());
    nana_pool_close(&s->pool);
    nana_conn_close(&s->writer.conn);
    if (created) remove_created(path);
    store_free(s);
    return nana_err_set_str(rc, msg);
}
}

int nana_store_close(nana_store *s)
{
    if (!s) return NANA_OK;
    if (atomic_load(&s->txn_active))
        return nana_err_set(NANA_ERR_TXN, "Cannot close the database while a transaction is in "
                                          "progress. Commit or rollback first.");
    atomic_store(&s->closing, true);
    nana_writer_stop(s);
    nana_ckpt_stop(s);
    store_free(s);
    return NANA_OK;
}

/* Queues one transaction-control op. */
static int txn_op(nana_store *s, unsigned flag)
{
    if (s->opts.read_only && flag == WOP_TXN_BEGIN)
        return nana_err_set(NANA_ERR_READONLY, "the store was opened read-only");
    /* Only the thread that began a transaction may end it; another
     * thread's begin simply waits for it to end (it is parked). */
    if (flag != WOP_TXN_BEGIN && atomic_load(&s->txn_active) && !nana_in_own_txn(s))
        return nana_err_set(NANA_ERR_TXN, "the open transaction belongs to another thread");
    nana_wop op = {.flags = flag};
    return nana_writer_run(s, &op);
}

int nana_store_begin(nana_store *s)
{
    if (s->cluster) return nana_cluster_unsupported("an explicit transaction");
    return txn_op(s, WOP_TXN_BEGIN);
}

int nana_store_commit(nana_store *s)
{
    return txn_op(s, WOP_TXN_COMMIT);
}

int nana_store_rollback(nana_store *s)
{
    return txn_op(s, WOP_TXN_ROLLBACK);
}

int nana_store_in_transaction(nana_store *s)
{
    return nana_in_own_txn(s) ? 1 : 0;
}

void nana_store_get_stats(nana_store *s, nana_store_stats *out)
{
    out->cache_hits = atomic_load_explicit(&s->st_hits, memory_order_relaxed);
    out->cache_misses = atomic_load_explicit(&s->st_misses, memory_order_relaxed);
    out->sqlite_reads = atomic_load_explicit(&s->st_sqlite_reads, memory_order_relaxed);
    out->commits = atomic_load_explicit(&s->st_commits, memory_order_relaxed);
    out->writes = atomic_load_explicit(&s->st_writes, memory_order_relaxed);
}
