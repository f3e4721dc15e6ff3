/*
 * kv.c - the dict operations of one NanaSQLite table.
 *
 * Reads go cache first, then a pooled reader connection; writes become
 * writer ops (see writer.c) whose apply() step updates the cache after the
 * commit. Every function validates its input before anything is queued.
 * Results are JSON text in a new nana_val owned by the caller.
 */
#include "store/store_int.h"

#include "util/nana_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Shared helpers (declared in kv_int.h)                               */
/* ------------------------------------------------------------------ */

int nana_step(nana_conn *c, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) return 1;
    if (rc == SQLITE_DONE) return 0;
    return nana_conn_err(c, rc, what);
}

/* Refuses a stored BLOB: NanaSQLite writes those only when it encrypts values. */
static int blob_refused(void)
{
    return nana_err_set(NANA_ERR_TYPE, "the stored value is a BLOB, not JSON text (was it written "
                                       "with NanaSQLite's encryption?)");
}

int nana_column_val(sqlite3_stmt *st, int col, nana_val **out)
{
    int type = sqlite3_column_type(st, col);
    if (type == SQLITE_BLOB) return blob_refused();
    if (type == SQLITE_NULL)
        *out = nana_val_new("null", 4);
    else
        *out = nana_val_new((const char *)sqlite3_column_text(st, col),
                            (size_t)sqlite3_column_bytes(st, col));
    return *out ? NANA_OK : NANA_ERR_NOMEM;
}

int nana_bind_text(sqlite3_stmt *st, int idx, const char *p, size_t n)
{
    if (sqlite3_bind_text64(st, idx, p ? p : "", n, SQLITE_STATIC, SQLITE_UTF8) != SQLITE_OK)
        return nana_err_set(NANA_ERR_NOMEM, "cannot bind a parameter");
    return NANA_OK;
}

int nana_buf_to_val(nana_buf *b, nana_val **out)
{
    nana_val *v = nana_val_new(b->data ? b->data : "", b->len);
    nana_buf_free(b);
    if (!v) return NANA_ERR_NOMEM;
    *out = v;
    return NANA_OK;
}

int nana_copy_json(const nana_store *s, const char *json, size_t n, nana_val **out)
{
    int rc = nana_check_value(s, json, n);
    if (rc) return rc;
    nana_val *v = nana_val_new(json, n);
    if (!v) return NANA_ERR_NOMEM;
    *out = v;
    return NANA_OK;
}

/* ------------------------------------------------------------------ */
/* get / contains                                                       */
/* ------------------------------------------------------------------ */

typedef struct get_arg {
    nana_table *t;
    const char *key;
    size_t klen;
    nana_val *val; /* out */
} get_arg;

/* A stored value that came back from the cluster (TEXT, or NULL: JSON null). */
static int dql_val(const nana_dql_value *v, nana_val **out)
{
    if (v->type == NANA_DQL_NULL) {
        *out = nana_val_new("null", 4);
    } else if (v->type == NANA_DQL_TEXT) {
        *out = nana_val_new(v->p, v->len);
    } else {
        return blob_refused();
    }
    return *out ? NANA_OK : nana_err_set(NANA_ERR_NOMEM, "out of memory");
}

/* read_get on a clustered store's connection. */
static int read_get_cluster(nana_conn *c, get_arg *a)
{
    nana_dql_rows rows;
    nana_dql_value k = nana_dql_text(a->key, a->klen);
    int rc = nana_clink_query(c, a->t->sql[SQL_GET], &k, 1, &rows);
    if (!rc) rc = rows.nrows ? dql_val(nana_dql_rows_at(&rows, 0, 0), &a->val) : NANA_ERR_NOTFOUND;
    nana_dql_rows_free(&rows);
    return rc;
}

static int read_get(nana_conn *c, void *arg)
{
    get_arg *a = arg;
    if (c->cluster) return read_get_cluster(c, a);
    int rc;
    sqlite3_stmt *st = nana_conn_stmt(c, a->t->sql[SQL_GET], &rc);
    if (!st) return rc;
    rc = nana_bind_text(st, 1, a->key, a->klen);
    if (!rc) rc = nana_step(c, st, "get");
    if (rc == 1) {
        rc = nana_column_val(st, 0, &a->val);
    } else if (rc == 0) {
        rc = NANA_ERR_NOTFOUND;
    }
    nana_conn_stmt_done(st);
    return rc;
}

/*
 * The value of |key| from the cache or SQLite, without validating the key
 * (callers did). Returns NANA_ERR_NOTFOUND (no detail set) if absent.
 */
int nana_kv_lookup(nana_table *t, const char *key, size_t klen, nana_val **out)
{
    nana_store *s = t->store;
    if (nana_in_own_txn(s)) {
        /* Inside our own transaction: the writer sees its uncommitted rows. */
        get_arg a = {.t = t, .key = key, .klen = klen};
        int rc = nana_store_read(s, read_get, &a);
        if (!rc) *out = a.val;
        return rc;
    }
    uint64_t now = t->cache.opts.kind == NANA_CACHE_TTL ? nana_store_now(s) : 0, seq;
    int expired;
    if (nana_cache_get(&t->cache, key, klen, now, out, &seq, &expired)) {
        atomic_fetch_add_explicit(&s->st_hits, 1, memory_order_relaxed);
        return NANA_OK;
    }
    if (expired) return NANA_ERR_NOTFOUND; /* TTL passed, row being deleted */
    atomic_fetch_add_explicit(&s->st_misses, 1, memory_order_relaxed);
    get_arg a = {.t = t, .key = key, .klen = klen};
    int rc = nana_store_read(s, read_get, &a);
    if (rc) return rc;
    nana_cache_fill(&t->cache, key, klen, a.val, now, seq);
    *out = a.val;
    return NANA_OK;
}

int nana_kv_get_cached(nana_table *t, const char *key, size_t klen, nana_val **out)
{
    nana_store *s = t->store;
    int rc = nana_check_key(s, key, klen);
    if (rc) return rc;
    if (nana_in_own_txn(s) || !nana_cache_enabled(&t->cache)) return 0;
    uint64_t now = t->cache.opts.kind == NANA_CACHE_TTL ? nana_store_now(s) : 0, seq;
    int expired = 0;
    if (!nana_cache_get(&t->cache, key, klen, now, out, &seq, &expired)) return 0;
    atomic_fetch_add_explicit(&s->st_hits, 1, memory_order_relaxed);
    return 1;
}

int nana_kv_get_cached_encoded(nana_table *t, const char *key, size_t klen, uint8_t form,
                               nana_buf *out, nana_val **v)
{
    nana_store *s = t->store;
    int rc = nana_check_key(s, key, klen);
    if (rc) return rc;
    if (nana_in_own_txn(s) || !nana_cache_enabled(&t->cache)) return NANA_CACHED_MISS;
    uint64_t now = t->cache.opts.kind == NANA_CACHE_TTL ? nana_store_now(s) : 0;
    rc = nana_cache_get_encoded(&t->cache, key, klen, now, form, out, v);
    if (rc != NANA_CACHED_MISS) atomic_fetch_add_explicit(&s->st_hits, 1, memory_order_relaxed);
    return rc;
}

bool nana_kv_keep_encoded(nana_table *t, const char *key, size_t klen, const nana_val *v,
                          uint8_t form, const void *enc, size_t elen)
{
    return nana_cache_keep_encoded(&t->cache, key, klen, v, form, enc, elen);
}

/* Sets the KeyError-style detail for a missing key: the key in quotes. */
int nana_key_missing(const char *key, size_t klen)
{
    int shown = klen > 200 ? 200 : (int)klen;
    return nana_err_set(NANA_ERR_NOTFOUND, "'%.*s'%s", shown, key, klen > 200 ? "..." : "");
}

int nana_kv_get(nana_table *t, const char *key, size_t klen, nana_val **out)
{
    int rc = nana_check_key(t->store, key, klen);
    if (rc) return rc;
    rc = nana_kv_lookup(t, key, klen, out);
    if (rc == NANA_ERR_NOTFOUND) return nana_key_missing(key, klen);
    return rc;
}

/* The result of a read with a default: |rc| as is unless the key was
 * absent, then a copy of |def| (JSON; NULL means null). */
static int or_default(int rc, const char *def, size_t dlen, nana_val **out)
{
    if (rc != NANA_ERR_NOTFOUND) return rc;
    *out = def ? nana_val_new(def, dlen) : nana_val_new("null", 4);
    return *out ? NANA_OK : NANA_ERR_NOMEM;
}

int nana_kv_get_default(nana_table *t, const char *key, size_t klen, const char *def, size_t dlen,
                        nana_val **out)
{
    int rc = nana_check_key(t->store, key, klen);
    if (rc) return rc;
    if (def && (rc = nana_json_validate(def, dlen, 0, t->store->opts.max_json_depth))) return rc;
    return or_default(nana_kv_lookup(t, key, klen, out), def, dlen, out);
}

/*
 * The value of |key| read from SQLite even when the cache holds it. What
 * was read replaces what the cache held (a value, or no entry for an
 * absent key) unless a write raced the read: for a file changed by another
 * program. A key whose TTL passed in a table that deletes expired rows is
 * absent, as for get.
 */
static int lookup_fresh(nana_table *t, const char *key, size_t klen, nana_val **out)
{
    nana_store *s = t->store;
    get_arg a = {.t = t, .key = key, .klen = klen};
    if (nana_in_own_txn(s)) {
        int rc = nana_store_read(s, read_get, &a);
        if (!rc) *out = a.val;
        return rc;
    }
    uint64_t now = t->cache.opts.kind == NANA_CACHE_TTL ? nana_store_now(s) : 0, seq;
    int dead;
    (void)nana_cache_peek(&t->cache, key, klen, now, &seq, &dead);
    if (dead) return NANA_ERR_NOTFOUND;
    atomic_fetch_add_explicit(&s->st_misses, 1, memory_order_relaxed);
    int rc = nana_store_read(s, read_get, &a);
    if (rc && rc != NANA_ERR_NOTFOUND) return rc;
    nana_cache_refresh(&t->cache, key, klen, rc ? NULL : a.val, now, seq);
    if (!rc) *out = a.val;
    return rc;
}

int nana_kv_get_fresh(nana_table *t, const char *key, size_t klen, const char *def, size_t dlen,
                      nana_val **out)
{
    int rc = nana_check_key(t->store, key, klen);
    if (rc) return rc;
    if (def && (rc = nana_json_validate(def, dlen, 0, t->store->opts.max_json_depth))) return rc;
    return or_default(lookup_fresh(t, key, klen, out), def, dlen, out);
}

int nana_kv_is_cached(nana_table *t, const char *key, size_t klen)
{
    nana_store *s = t->store;
    int rc = nana_check_key(s, key, klen);
    if (rc) return rc;
    uint64_t now = t->cache.opts.kind == NANA_CACHE_TTL ? nana_store_now(s) : 0, seq;
    int dead;
    return nana_cache_peek(&t->cache, key, klen, now, &seq, &dead);
}

void nana_kv_clear_cache(nana_table *t)
{
    nana_cache_clear(&t->cache);
}

typedef struct has_arg {
    nana_table *t;
    const char *key;
    size_t klen;
} has_arg;

static int read_has(nana_conn *c, void *arg)
{
    has_arg *a = arg;
    int rc;
    if (c->cluster) {
        nana_dql_rows rows;
        nana_dql_value k = nana_dql_text(a->key, a->klen);
        rc = nana_clink_query(c, a->t->sql[SQL_HAS], &k, 1, &rows);
        if (!rc) rc = rows.nrows ? 1 : 0;
        nana_dql_rows_free(&rows);
        return rc;
    }
    sqlite3_stmt *st = nana_conn_stmt(c, a->t->sql[SQL_HAS], &rc);
    if (!st) return rc;
    rc = nana_bind_text(st, 1, a->key, a->klen);
    if (!rc) rc = nana_step(c, st, "contains");
    nana_conn_stmt_done(st);
    return rc; /* 1, 0, or an error */
}

int nana_kv_contains(nana_table *t, const char *key, size_t klen)
{
    nana_store *s = t->store;
    int rc = nana_check_key(s, key, klen);
    if (rc) return rc;
    nana_val *v;
    uint64_t seq;
    int expired = 0;
    if (!nana_in_own_txn(s) &&
        nana_cache_get(&t->cache, key, klen, nana_store_now(s), &v, &seq, &expired)) {
        atomic_fetch_add_explicit(&s->st_hits, 1, memory_order_relaxed);
        nana_val_unref(v);
        return 1;
    }
    if (expired) return 0;
    atomic_fetch_add_explicit(&s->st_misses, 1, memory_order_relaxed);
    has_arg a = {.t = t, .key = key, .klen = klen};
    return nana_store_read(s, read_has, &a);
}

/* ------------------------------------------------------------------ */
/* len / keys / values / items / to_dict                               */
/* ------------------------------------------------------------------ */

typedef struct len_arg {
    nana_table *t;
    int64_t n;
} len_arg;

static int read_len(nana_conn *c, void *arg)
{
    len_arg *a = arg;
    int rc;
    if (c->cluster) {
        nana_dql_rows rows;
        rc = nana_clink_query(c, a->t->sql[SQL_LEN], NULL, 0, &rows);
        if (!rc && (rows.nrows != 1 || rows.ncols != 1 ||
                    nana_dql_rows_at(&rows, 0, 0)->type != NANA_DQL_INTEGER))
            rc = nana_err_set(NANA_ERR_INTERNAL, "COUNT(*) did not return one number");
        if (!rc) a->n = nana_dql_rows_at(&rows, 0, 0)->i;
        nana_dql_rows_free(&rows);
        return rc;
    }
    sqlite3_stmt *st = nana_conn_stmt(c, a->t->sql[SQL_LEN], &rc);
    if (!st) return rc;
    rc = nana_step(c, st, "len");
    if (rc == 1) {
        a->n = sqlite3_column_int64(st, 0);
        rc = NANA_OK;
    } else if (rc == 0) {
        rc = nana_err_set(NANA_ERR_INTERNAL, "COUNT(*) returned no row");
    }
    nana_conn_stmt_done(st);
    return rc;
}

int nana_kv_len(nana_table *t, int64_t *out)
{
    len_arg a = {.t = t};
    int rc = nana_store_read(t->store, read_len, &a);
    if (!rc) *out = a.n;
    return rc;
}

/* What a listing writes per row. */
typedef enum { LIST_KEYS, LIST_VALUES, LIST_ITEMS, LIST_DICT } list_kind;

typedef struct list_arg {
    nana_table *t;
    list_kind kind;
    nana_buf buf;
} list_arg;

/* Appends one stored value (JSON text) to a result. */
int nana_buf_put_value(nana_buf *b, sqlite3_stmt *st, int col)
{
    int type = sqlite3_column_type(st, col);
    if (type == SQLITE_NULL) return nana_buf_append(b, "null", 4);
    if (type == SQLITE_BLOB) return blob_refused();
    const unsigned char *p = sqlite3_column_text(st, col);
    int n = sqlite3_column_bytes(st, col);
    return nana_buf_append(b, p, (size_t)n);
}

/* Appends one key as a JSON string. */
int nana_buf_put_key(nana_buf *b, sqlite3_stmt *st, int col)
{
    const unsigned char *p = sqlite3_column_text(st, col);
    int n = sqlite3_column_bytes(st, col);
    return nana_json_write_string(b, p ? (const char *)p : "", (size_t)n);
}

/* One column of a listing's row, wherever it came from: |p| NULL is SQL NULL. */
typedef struct list_col {
    const char *p;
    size_t n;
} list_col;

/* Appends one stored value (JSON text, NULL as null) to a listing. */
static int put_listed_value(nana_buf *b, list_col v)
{
    return v.p ? nana_buf_append(b, v.p, v.n) : nana_buf_append(b, "null", 4);
}

/* Appends one row of a listing of |kind|: the key and/or the value. */
static int put_listed(nana_buf *b, list_kind kind, list_col k, list_col v)
{
    int rc;
    switch (kind) {
    case LIST_KEYS:
        return nana_json_write_string(b, k.p ? k.p : "", k.n);
    case LIST_VALUES:
        return put_listed_value(b, k); /* the only column */
    case LIST_ITEMS:
        if (!(rc = nana_buf_putc(b, '[')) &&
            !(rc = nana_json_write_string(b, k.p ? k.p : "", k.n)) &&
            !(rc = nana_buf_putc(b, ',')) && !(rc = put_listed_value(b, v)))
            rc = nana_buf_putc(b, ']');
        return rc;
    case LIST_DICT:
    default:
        if (!(rc = nana_json_write_string(b, k.p ? k.p : "", k.n)) && !(rc = nana_buf_putc(b, ':')))
            rc = put_listed_value(b, v);
        return rc;
    }
}

/* A column of a local row for put_listed (BLOB values refused; a BLOB key
 * is read as text, as SQLite converts it). */
static int local_col(sqlite3_stmt *st, int col, bool is_value, list_col *out)
{
    int type = sqlite3_column_type(st, col);
    if (type == SQLITE_BLOB && is_value) return blob_refused();
    out->p = type == SQLITE_NULL ? NULL : (const char *)sqlite3_column_text(st, col);
    out->n = out->p ? (size_t)sqlite3_column_bytes(st, col) : 0;
    if (type != SQLITE_NULL && !out->p) out->p = "";
    return NANA_OK;
}

/* A column of a clustered row for put_listed. */
static int cluster_col(const nana_dql_value *v, list_col *out)
{
    if (v->type != NANA_DQL_TEXT && v->type != NANA_DQL_NULL) return blob_refused();
    out->p = v->type == NANA_DQL_NULL ? NULL : v->p;
    out->n = v->type == NANA_DQL_NULL ? 0 : v->len;
    return NANA_OK;
}

/* The rows of a listing on a clustered store's connection, into a->buf. */
static int read_list_cluster(nana_conn *c, list_arg *a, const char *sql)
{
    nana_dql_rows rows;
    int rc = nana_clink_query(c, sql, NULL, 0, &rows);
    nana_buf *b = &a->buf;
    for (size_t r = 0; !rc && r < rows.nrows; r++) {
        list_col k = {NULL, 0}, v = {NULL, 0};
        if (r) rc = nana_buf_putc(b, ',');
        if (!rc) rc = cluster_col(nana_dql_rows_at(&rows, r, 0), &k);
        if (!rc && rows.ncols > 1) rc = cluster_col(nana_dql_rows_at(&rows, r, 1), &v);
        if (!rc) rc = put_listed(b, a->kind, k, v);
    }
    nana_dql_rows_free(&rows);
    return rc;
}

static int read_list(nana_conn *c, void *arg)
{
    list_arg *a = arg;
    static const int which[] = {SQL_KEYS, SQL_VALUES, SQL_ITEMS, SQL_ITEMS};
    int rc = NANA_OK;
    sqlite3_stmt *st = NULL;
    if (!c->cluster && !(st = nana_conn_stmt(c, a->t->sql[which[a->kind]], &rc))) return rc;
    nana_buf *b = &a->buf;
    nana_buf_reset(b);
    rc = nana_buf_putc(b, a->kind == LIST_DICT ? '{' : '[');
    if (c->cluster) {
        if (!rc) rc = read_list_cluster(c, a, a->t->sql[which[a->kind]]);
    } else {
        bool first = true;
        while (!rc && (rc = nana_step(c, st, "list")) == 1) {
            list_col k = {NULL, 0}, v = {NULL, 0};
            rc = first ? 0 : nana_buf_putc(b, ',');
            first = false;
            if (!rc) rc = local_col(st, 0, a->kind == LIST_VALUES, &k);
            if (!rc && a->kind >= LIST_ITEMS) rc = local_col(st, 1, true, &v);
            if (!rc) rc = put_listed(b, a->kind, k, v);
        }
    }
    if (!rc) rc = nana_buf_putc(b, a->kind == LIST_DICT ? '}' : ']');
    if (rc == NANA_ERR_TOOBIG)
        rc = nana_err_set(NANA_ERR_TOOBIG, "result exceeds the limit of %zu bytes",
                          a->t->store->opts.max_result_bytes);
    nana_conn_stmt_done(st);
    return rc;
}

static int list(nana_table *t, list_kind kind, nana_val **out)
{
    list_arg a = {.t = t, .kind = kind};
    nana_buf_init(&a.buf, t->store->opts.max_result_bytes);
    int rc = nana_store_read(t->store, read_list, &a);
    if (rc) {
        nana_buf_free(&a.buf);
        return rc;
    }
    return nana_buf_to_val(&a.buf, out);
}

int nana_kv_keys(nana_table *t, nana_val **out)
{
    return list(t, LIST_KEYS, out);
}

int nana_kv_values(nana_table *t, nana_val **out)
{
    return list(t, LIST_VALUES, out);
}

int nana_kv_items(nana_table *t, nana_val **out)
{
    return list(t, LIST_ITEMS, out);
}

int nana_kv_to_dict(nana_table *t, nana_val **out)
{
    return list(t, LIST_DICT, out);
}

/* ------------------------------------------------------------------ */
/* set                                                                  */
/* ------------------------------------------------------------------ */

int nana_exec_set(nana_conn *c, nana_table *t, const char *key, size_t klen, const char *val,
                  size_t vlen)
{
    int rc;
    if (c->cluster) {
        nana_dql_value p[2] = {nana_dql_text(key, klen), nana_dql_text(val, vlen)};
        return nana_clink_exec(c, t->sql[SQL_SET], p, 2, NULL);
    }
    sqlite3_stmt *st = nana_conn_stmt(c, t->sql[SQL_SET], &rc);
    if (!st) return rc;
    if (!(rc = nana_bind_text(st, 1, key, klen)) && !(rc = nana_bind_text(st, 2, val, vlen)))
        rc = nana_step(c, st, "set");
    nana_conn_stmt_done(st);
    return rc < 0 ? rc : NANA_OK;
}

/* nana_exec_del on a clustered store's connection: no RETURNING over the
 * wire, so the old value is read first (inside the writer's transaction). */
static int exec_del_cluster(nana_conn *c, nana_table *t, const char *key, size_t klen,
                            nana_val **old)
{
    if (old) {
        get_arg a = {.t = t, .key = key, .klen = klen};
        int rc = read_get_cluster(c, &a);
        if (rc == NANA_ERR_NOTFOUND) return 0;
        if (rc) return rc;
        *old = a.val;
    }
    nana_dql_value k = nana_dql_text(key, klen);
    uint64_t changed = 0;
    int rc = nana_clink_exec(c, t->sql[SQL_DEL_PLAIN], &k, 1, &changed);
    if (rc && old) {
        nana_val_unref(*old);
        *old = NULL;
    }
    return rc ? rc : changed ? 1 : 0;
}

int nana_exec_del(nana_conn *c, nana_table *t, const char *key, size_t klen, nana_val **old)
{
    if (c->cluster) return exec_del_cluster(c, t, key, klen, old);
    int rc;
    sqlite3_stmt *st = nana_conn_stmt(c, t->sql[SQL_DEL], &rc);
    if (!st) return rc;
    rc = nana_bind_text(st, 1, key, klen);
    if (!rc) rc = nana_step(c, st, "delete");
    if (rc == 1) {
        if (old) {
            int r = nana_column_val(st, 0, old);
            if (r) rc = r;
        }
        /* Finish the statement so the delete is complete. */
        while (rc == 1)
            rc = nana_step(c, st, "delete");
        if (rc == 0) rc = 1;
    }
    nana_conn_stmt_done(st);
    return rc; /* 1 deleted, 0 absent, or an error */
}

typedef nana_set_op set_op;

static int set_exec(nana_wop *op, nana_conn *c)
{
    set_op *o = (set_op *)op;
    return nana_exec_set(c, op->tbl, o->key, o->klen, o->val, o->vlen);
}

static void set_apply(nana_wop *op)
{
    set_op *o = (set_op *)op;
    nana_table *t = op->tbl;
    if (o->cval)
        nana_cache_put(&t->cache, o->key, o->klen, o->cval, nana_store_now(t->store));
    else
        nana_cache_del(&t->cache, o->key, o->klen);
}

int nana_kv_set(nana_table *t, const char *key, size_t klen, const char *value, size_t vlen)
{
    nana_store *s = t->store;
    int rc = nana_check_key(s, key, klen);
    if (!rc) rc = nana_check_value(s, value, vlen);
    if (rc) return rc;
    set_op o = {.super = {.exec = set_exec, .apply = set_apply, .flags = WOP_SET, .tbl = t},
                .key = key,
                .klen = klen,
                .val = value,
                .vlen = vlen};
    if (nana_cache_enabled(&t->cache) && !(o.cval = nana_val_new(value, vlen)))
        return NANA_ERR_NOMEM;
    rc = nana_writer_run(s, &o.super);
    nana_val_unref(o.cval);
    return rc;
}

/* An asynchronous set: the op owns copies of the key and the value. */
typedef struct aset_op {
    set_op base;
    nana_done_fn done;
    void *arg;
    nana_val *value; /* owns the value bytes (also the cache's value) */
    char key[];      /* owns the key bytes */
} aset_op;

static void aset_complete(nana_wop *op)
{
    aset_op *o = (aset_op *)op;
    atomic_fetch_sub(&op->tbl->store->writer.queued_bytes, o->base.klen + o->base.vlen);
    o->done(o->arg, op->rc, op->errmsg);
    nana_val_unref(o->value);
    nana_val_unref(op->result);
    free(o);
}

int nana_kv_set_async(nana_table *t, const char *key, size_t klen, const char *value, size_t vlen,
                      nana_done_fn done, void *arg)
{
    nana_store *s = t->store;
    if (!done) return nana_err_set(NANA_ERR_INVALID, "done callback is NULL");
    int rc = nana_check_key(s, key, klen);
    if (!rc) rc = nana_check_value(s, value, vlen);
    if (rc) return rc;
    /* Bound the memory queued writes pin, not just their number. */
    size_t bytes = klen + vlen;
    size_t before = atomic_fetch_add(&s->writer.queued_bytes, bytes);
    if (before + bytes > s->opts.max_queue_bytes) {
        atomic_fetch_sub(&s->writer.queued_bytes, bytes);
        return nana_err_set(NANA_ERR_BUSY, "queued writes hold %zu bytes, the limit is %zu", before,
                            s->opts.max_queue_bytes);
    }
    aset_op *o = malloc(sizeof(*o) + klen + 1);
    if (!o || !(o->value = nana_val_new(value, vlen))) {
        free(o);
        atomic_fetch_sub(&s->writer.queued_bytes, bytes);
        return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    }
    memcpy(o->key, key, klen);
    o->key[klen] = '\0';
    o->done = done;
    o->arg = arg;
    o->base = (set_op){.super = {.exec = set_exec,
                                 .apply = set_apply,
                                 .complete = aset_complete,
                                 .flags = WOP_SET,
                                 .tbl = t},
                       .key = o->key,
                       .klen = klen,
                       .val = o->value->data,
                       .vlen = vlen,
                       .cval = nana_cache_enabled(&t->cache) ? o->value : NULL};
    rc = nana_writer_submit(s, &o->base.super);
    if (rc) {
        atomic_fetch_sub(&s->writer.queued_bytes, bytes);
        nana_val_unref(o->value);
        free(o);
    }
    return rc;
}

/* ------------------------------------------------------------------ */
/* delete / pop / popitem / clear                                      */
/* ------------------------------------------------------------------ */

int nana_expire_key_if_dead(nana_conn *c, nana_table *t, const char *key, size_t klen)
{
    if (!nana_cache_is_dead(&t->cache, key, klen, nana_store_now(t->store))) return NANA_OK;
    int rc = nana_exec_del(c, t, key, klen, NULL);
    return rc < 0 ? rc : NANA_OK;
}

typedef struct del_op {
    nana_wop super;
    const char *key;
    size_t klen;
    bool want_value; /* pop: keep the old value as the result */
    const char *def; /* pop: default when absent (JSON), or NULL */
    size_t dlen;
    bool deleted;
} del_op;

static int del_exec(nana_wop *op, nana_conn *c)
{
    del_op *o = (del_op *)op;
    o->deleted = false;
    int rc = nana_expire_key_if_dead(c, op->tbl, o->key, o->klen);
    if (rc) return rc;
    rc = nana_exec_del(c, op->tbl, o->key, o->klen, o->want_value ? &op->result : NULL);
    if (rc < 0) return rc;
    if (rc == 1) {
        o->deleted = true;
        return NANA_OK;
    }
    if (o->def) {
        op->result = nana_val_new(o->def, o->dlen);
        return op->result ? NANA_OK : NANA_ERR_NOMEM;
    }
    return nana_key_missing(o->key, o->klen);
}

static void del_apply(nana_wop *op)
{
    del_op *o = (del_op *)op;
    if (o->deleted) nana_cache_del(&op->tbl->cache, o->key, o->klen);
}

int nana_kv_delete(nana_table *t, const char *key, size_t klen)
{
    int rc = nana_check_key(t->store, key, klen);
    if (rc) return rc;
    del_op o = {
        .super = {.exec = del_exec, .apply = del_apply, .tbl = t}, .key = key, .klen = klen};
    return nana_writer_run(t->store, &o.super);
}

int nana_kv_pop(nana_table *t, const char *key, size_t klen, const char *def, size_t dlen,
                nana_val **out)
{
    int rc = nana_check_key(t->store, key, klen);
    if (rc) return rc;
    if (def && (rc = nana_json_validate(def, dlen, 0, t->store->opts.max_json_depth))) return rc;
    /* A savepoint: if reading the old value fails, the delete is undone. */
    del_op o = {.super = {.exec = del_exec, .apply = del_apply, .flags = WOP_SAVEPOINT, .tbl = t},
                .key = key,
                .klen = klen,
                .want_value = true,
                .def = def,
                .dlen = dlen};
    rc = nana_writer_run(t->store, &o.super);
    if (rc) return rc;
    *out = o.super.result;
    return NANA_OK;
}

typedef struct popitem_op {
    nana_wop super;
    nana_val *key; /* the key removed */
} popitem_op;

static int popitem_exec(nana_wop *op, nana_conn *c)
{
    popitem_op *o = (popitem_op *)op;
    nana_val_unref(o->key);
    o->key = NULL;
    int rc;
    sqlite3_stmt *st = nana_conn_stmt(c, op->tbl->sql[SQL_FIRST], &rc);
    if (!st) return rc;
    rc = nana_step(c, st, "popitem");
    if (rc == 0) {
        rc = nana_err_set(NANA_ERR_NOTFOUND, "popitem(): dictionary is empty");
    } else if (rc == 1) {
        nana_buf b;
        nana_buf_init(&b, 0);
        const unsigned char *k = sqlite3_column_text(st, 0);
        int kn = sqlite3_column_bytes(st, 0);
        o->key = nana_val_new(k ? (const char *)k : "", (size_t)kn);
        rc = o->key ? NANA_OK : NANA_ERR_NOMEM;
        if (!rc && !(rc = nana_buf_putc(&b, '[')) && !(rc = nana_buf_put_key(&b, st, 0)) &&
            !(rc = nana_buf_putc(&b, ',')) && !(rc = nana_buf_put_value(&b, st, 1)) &&
            !(rc = nana_buf_putc(&b, ']')))
            rc = nana_buf_to_val(&b, &op->result);
        nana_buf_free(&b);
        while (rc == 0 && (rc = nana_step(c, st, "popitem")) == 1) {
        }
    }
    nana_conn_stmt_done(st);
    return rc;
}

static void popitem_apply(nana_wop *op)
{
    popitem_op *o = (popitem_op *)op;
    nana_cache_del(&op->tbl->cache, o->key->data, o->key->len);
}

int nana_kv_popitem(nana_table *t, nana_val **out)
{
    if (t->store->cluster) return nana_cluster_unsupported("popitem");
    popitem_op o = {
        .super = {.exec = popitem_exec, .apply = popitem_apply, .flags = WOP_SAVEPOINT, .tbl = t}};
    int rc = nana_writer_run(t->store, &o.super);
    nana_val_unref(o.key);
    if (rc) return rc;
    *out = o.super.result;
    return NANA_OK;
}

static int clear_exec(nana_wop *op, nana_conn *c)
{
    return nana_conn_exec(c, op->tbl->sql[SQL_CLEAR]);
}

static void clear_apply(nana_wop *op)
{
    nana_cache_clear(&op->tbl->cache);
}

int nana_kv_clear(nana_table *t)
{
    nana_wop op = {.exec = clear_exec, .apply = clear_apply, .tbl = t};
    return nana_writer_run(t->store, &op);
}

/* ------------------------------------------------------------------ */
/* setdefault                                                           */
/* ------------------------------------------------------------------ */

typedef struct setdefault_op {
    nana_wop super;
    const char *key;
    size_t klen;
    nana_val *def;
    bool inserted;
} setdefault_op;

static int setdefault_exec(nana_wop *op, nana_conn *c)
{
    setdefault_op *o = (setdefault_op *)op;
    o->inserted = false;
    int rc = nana_expire_key_if_dead(c, op->tbl, o->key, o->klen);
    if (rc) return rc;
    get_arg a = {.t = op->tbl, .key = o->key, .klen = o->klen};
    rc = read_get(c, &a);
    if (rc == NANA_OK) {
        op->result = a.val;
        return NANA_OK;
    }
    if (rc != NANA_ERR_NOTFOUND) return rc;
    rc = nana_exec_set(c, op->tbl, o->key, o->klen, o->def->data, o->def->len);
    if (rc) return rc;
    o->inserted = true;
    op->result = nana_val_ref(o->def);
    return NANA_OK;
}

static void setdefault_apply(nana_wop *op)
{
    setdefault_op *o = (setdefault_op *)op;
    if (o->inserted)
        nana_cache_put(&op->tbl->cache, o->key, o->klen, o->def, nana_store_now(op->tbl->store));
}

int nana_kv_setdefault(nana_table *t, const char *key, size_t klen, const char *def, size_t dlen,
                       nana_val **out)
{
    if (t->store->cluster) return nana_cluster_unsupported("setdefault");
    nana_store *s = t->store;
    int rc = nana_check_key(s, key, klen);
    if (rc) return rc;
    if (!def) def = "null", dlen = 4;
    if ((rc = nana_check_value(s, def, dlen))) return rc;
    /* A cached value answers without a write, as NanaSQLite does. */
    nana_val *v;
    uint64_t seq;
    int expired;
    if (!nana_in_own_txn(s) &&
        nana_cache_get(&t->cache, key, klen, nana_store_now(s), &v, &seq, &expired)) {
        atomic_fetch_add_explicit(&s->st_hits, 1, memory_order_relaxed);
        *out = v;
        return NANA_OK;
    }
    setdefault_op o = {.super = {.exec = setdefault_exec, .apply = setdefault_apply, .tbl = t},
                       .key = key,
                       .klen = klen};
    if (!(o.def = nana_val_new(def, dlen))) return NANA_ERR_NOMEM;
    rc = nana_writer_run(s, &o.super);
    nana_val_unref(o.def);
    if (rc) return rc;
    *out = o.super.result;
    return NANA_OK;
}
