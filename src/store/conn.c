/*
 * conn.c - one SQLite connection: opening it with NanaSQLite's pragmas,
 * caching its prepared statements, and turning SQLite errors into ours.
 *
 * Statements are cached per connection and keyed by the *address* of the
 * SQL text (texts live in the table objects for the store's lifetime), so
 * a lookup is a pointer hash, not a string compare. Each connection is
 * used by one thread at a time (the pool and the writer guarantee it), so
 * the cache needs no lock and connections are opened SQLITE_OPEN_NOMUTEX.
 */
#include "store/store_int.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int nana_sqlite_err(sqlite3 *db, int rc, const char *what)
{
    const char *msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    int prim = rc & 0xff;
    int code;
    switch (prim) {
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
        code = NANA_ERR_CORRUPT;
        break;
    case SQLITE_READONLY:
        code = NANA_ERR_READONLY;
        break;
    case SQLITE_FULL:
        code = NANA_ERR_FULL;
        break;
    case SQLITE_NOMEM:
        code = NANA_ERR_NOMEM;
        break;
    case SQLITE_IOERR:
        code = (rc == SQLITE_IOERR_NOMEM) ? NANA_ERR_NOMEM : NANA_ERR_IO;
        break;
    case SQLITE_CANTOPEN:
        code = NANA_ERR_IO;
        break;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        code = NANA_ERR_BUSY;
        break;
    case SQLITE_TOOBIG:
        code = NANA_ERR_TOOBIG;
        break;
    case SQLITE_AUTH:
        code = NANA_ERR_VALIDATION;
        break;
    case SQLITE_INTERRUPT:
        code = NANA_ERR_TIMEOUT;
        break;
    default:
        code = NANA_ERR_DB;
        break;
    }
    switch (code) {
    case NANA_ERR_CORRUPT:
        return nana_err_set(code, "%s: the file is not a database or is corrupt (%s)", what, msg);
    case NANA_ERR_FULL:
        return nana_err_set(code, "%s: database or disk is full", what);
    case NANA_ERR_READONLY:
        return nana_err_set(code, "%s: the database is read-only (%s)", what, msg);
    default:
        return nana_err_set(code, "%s: %s", what, msg);
    }
}

int nana_conn_err(nana_conn *c, int rc, const char *what)
{
    int code = nana_sqlite_err(c->db, rc, what);
    if (code == NANA_ERR_CORRUPT && c->store) {
        char msg[NANA_ERRMSG_MAX];
        snprintf(msg, sizeof(msg), "%s", nana_errmsg());
        nana_store_mark_damaged(c->store, msg);
        nana_err_set_str(code, msg);
    }
    return code;
}

int nana_conn_exec(nana_conn *c, const char *sql)
{
    if (c->cluster) return nana_clink_exec_sql(c, sql);
    char *err = NULL;
    int rc = sqlite3_exec(c->db, sql, NULL, NULL, &err);
    sqlite3_free(err);
    if (rc != SQLITE_OK) return nana_conn_err(c, rc, sql);
    return NANA_OK;
}

/* Reads a one-row, one-column pragma as text into |out| (for checks). */
static int pragma_text(nana_conn *c, const char *sql, char *out, size_t outlen)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) return nana_conn_err(c, rc, "open");
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(st, 0);
        snprintf(out, outlen, "%s", t ? (const char *)t : "");
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        out[0] = '\0';
        rc = SQLITE_OK;
    }
    int ret = rc == SQLITE_OK ? NANA_OK : nana_conn_err(c, rc, "open");
    sqlite3_finalize(st);
    return ret;
}

/* Sets the connection's defensive settings and reads each back: 0, or an
 * error naming the one SQLite would not take. */
static int defend(nana_conn *c)
{
    static const struct {
        int op, want;
        const char *name;
    } set[] = {
        {SQLITE_DBCONFIG_DEFENSIVE, 1, "DEFENSIVE"},
        {SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, "TRUSTED_SCHEMA off"},
        {SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, "ENABLE_LOAD_EXTENSION off"},
    };
    for (size_t i = 0; i < sizeof(set) / sizeof(set[0]); i++) {
        int now = -1;
        int rc = sqlite3_db_config(c->db, set[i].op, set[i].want, &now);
        if (rc != SQLITE_OK || now != set[i].want)
            return nana_err_set(NANA_ERR_INTERNAL,
                                "SQLite would not take the setting %s (%s); not opening "
                                "the database without it",
                                set[i].name, sqlite3_errstr(rc));
    }
    return NANA_OK;
}

int nana_conn_open(nana_conn *c, const char *path, const nana_store_opts *o, nana_conn_role role)
{
    memset(c, 0, sizeof(*c));
    bool writer = role == NANA_CONN_WRITER;
    int flags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
    if (role == NANA_CONN_CHECKPOINT)
        flags |= SQLITE_OPEN_READWRITE;
    else if (writer && !o->read_only)
        flags |= SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    else
        flags |= SQLITE_OPEN_READONLY;
    int rc = sqlite3_open_v2(path, &c->db, flags, NULL);
    if (rc != SQLITE_OK) {
        int ret = nana_sqlite_err(c->db, rc, "open");
        sqlite3_close(c->db);
        c->db = NULL;
        return ret;
    }
    sqlite3_extended_result_codes(c->db, 1);
    sqlite3_busy_timeout(c->db, (int)o->busy_timeout_ms);
    /* Defence in depth: no writable schema tricks, no untrusted functions
     * in schema, no extension loading. A connection without them is not
     * opened. */
    int ret = defend(c);
    if (ret) goto fail;

    char buf[64];
    /* Touch the schema first: a non-database file fails here, clearly. */
    ret = pragma_text(c, "PRAGMA schema_version", buf, sizeof(buf));
    if (ret) goto fail;
    if (writer && !o->read_only) {
        if (sqlite3_db_readonly(c->db, "main") == 1) {
            ret = nana_err_set(NANA_ERR_READONLY,
                               "the database file is read-only; open it with read_only set");
            goto fail;
        }
        ret = pragma_text(c, "PRAGMA journal_mode=WAL", buf, sizeof(buf));
        if (ret) goto fail;
        if (strcmp(buf, "wal") != 0) {
            /* Readers beside the writer need WAL; refuse rather than block. */
            ret = nana_err_set(NANA_ERR_IO,
                               "the database could not switch to WAL mode (it is in "
                               "'%.16s' mode; is another program holding it?)",
                               buf);
            goto fail;
        }
    }
    const char *sync = o->sync == NANA_SYNC_FULL  ? "FULL"
                       : o->sync == NANA_SYNC_OFF ? "OFF"
                                                  : "NORMAL";
    char sql[128];
    snprintf(sql, sizeof(sql), "PRAGMA synchronous=%s", sync);
    if ((ret = nana_conn_exec(c, sql))) goto fail;
    snprintf(sql, sizeof(sql), "PRAGMA mmap_size=%lld", (long long)o->mmap_size);
    if ((ret = pragma_text(c, sql, buf, sizeof(buf)))) goto fail;
    if ((ret = nana_conn_exec(c, "PRAGMA temp_store=MEMORY"))) goto fail;
    snprintf(sql, sizeof(sql), "PRAGMA cache_size=-%u", o->cache_size_mb * 1024u);
    if ((ret = nana_conn_exec(c, sql))) goto fail;
    if (writer && o->max_db_bytes > 0) {
        if ((ret = pragma_text(c, "PRAGMA page_size", buf, sizeof(buf)))) goto fail;
        long long page = strtoll(buf, NULL, 10);
        long long pages = page > 0 ? o->max_db_bytes / page : 0;
        snprintf(sql, sizeof(sql), "PRAGMA max_page_count=%lld", pages > 1 ? pages : 1);
        if ((ret = pragma_text(c, sql, buf, sizeof(buf)))) goto fail;
    }
    return NANA_OK;

fail:
    sqlite3_close(c->db);
    c->db = NULL;
    return ret;
}

bool nana_conn_autocommit(nana_conn *c)
{
    return c->cluster ? !c->dq_txn : sqlite3_get_autocommit(c->db) != 0;
}

void nana_conn_close(nana_conn *c)
{
    if (c && c->cluster) {
        nana_clink_close(c);
        return;
    }
    if (!c || !c->db) return;
    for (size_t i = 0; i < c->stmt_cap; i++)
        if (c->stmts[i]) sqlite3_finalize(c->stmts[i]);
    free(c->stmts);
    free(c->stmt_keys);
    c->stmts = NULL;
    c->stmt_keys = NULL;
    c->stmt_cap = c->stmt_count = 0;
    sqlite3_close(c->db);
    c->db = NULL;
}

/* Slot for key |sql| in a table of |cap| (power of two) entries. */
static size_t stmt_slot(const char **keys, size_t cap, const char *sql)
{
    uintptr_t h = (uintptr_t)sql;
    h ^= h >> 17;
    h *= 0x9e3779b97f4a7c15ull;
    size_t i = (size_t)(h >> 20) & (cap - 1);
    while (keys[i] && keys[i] != sql)
        i = (i + 1) & (cap - 1);
    return i;
}

/* Doubles the statement table. */
static int stmt_grow(nana_conn *c)
{
    size_t cap = c->stmt_cap ? c->stmt_cap * 2 : 32;
    const char **keys = calloc(cap, sizeof(*keys));
    sqlite3_stmt **stmts = calloc(cap, sizeof(*stmts));
    if (!keys || !stmts) {
        free(keys);
        free(stmts);
        return nana_err_set(NANA_ERR_NOMEM, "out of memory for prepared statements");
    }
    for (size_t i = 0; i < c->stmt_cap; i++) {
        if (!c->stmt_keys[i]) continue;
        size_t j = stmt_slot(keys, cap, c->stmt_keys[i]);
        keys[j] = c->stmt_keys[i];
        stmts[j] = c->stmts[i];
    }
    free(c->stmt_keys);
    free(c->stmts);
    c->stmt_keys = keys;
    c->stmts = stmts;
    c->stmt_cap = cap;
    return NANA_OK;
}

sqlite3_stmt *nana_conn_stmt(nana_conn *c, const char *sql, int *rcp)
{
    if (c->cluster) {
        *rcp = nana_cluster_unsupported("this call");
        return NULL;
    }
    if (c->stmt_cap) {
        size_t i = stmt_slot(c->stmt_keys, c->stmt_cap, sql);
        if (c->stmt_keys[i]) {
            *rcp = NANA_OK;
            return c->stmts[i];
        }
    }
    if ((c->stmt_count + 1) * 2 > c->stmt_cap) {
        int rc = stmt_grow(c);
        if (rc) {
            *rcp = rc;
            return NULL;
        }
    }
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
    if (rc != SQLITE_OK) {
        *rcp = nana_conn_err(c, rc, "prepare");
        return NULL;
    }
    size_t i = stmt_slot(c->stmt_keys, c->stmt_cap, sql);
    c->stmt_keys[i] = sql;
    c->stmts[i] = st;
    c->stmt_count++;
    *rcp = NANA_OK;
    return st;
}

void nana_conn_stmt_done(sqlite3_stmt *st)
{
    if (!st) return;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}
