/*
 * batch.c - operations on many keys at once.
 *
 * batch_update and batch_delete are one writer op each: all rows in one
 * savepoint of one transaction, all or nothing. batch_get answers what it
 * can from the cache and fetches the rest in ONE statement per table,
 * `... WHERE key IN (SELECT value FROM json_each(?1))`, binding a single
 * JSON array of keys: one prepared statement whatever the batch size, and
 * no SQLite host-parameter limit (32766) to chunk around.
 */
#include "store/store_int.h"

#include "util/nana_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* batch_update / batch_update_partial                                  */
/* ------------------------------------------------------------------ */

typedef struct update_op {
    nana_wop super;
    const nana_kv_pair *pairs;
    const unsigned char *skip; /* per pair: 1 = not written (partial mode), may be NULL */
    size_t n;
    nana_val **cvals; /* per pair cache value, NULL entries when no cache */
} update_op;

static int update_exec(nana_wop *op, nana_conn *c)
{
    update_op *o = (update_op *)op;
    for (size_t i = 0; i < o->n; i++) {
        if (o->skip && o->skip[i]) continue;
        const nana_kv_pair *p = &o->pairs[i];
        int rc = nana_exec_set(c, op->tbl, p->key, p->klen, p->value, p->vlen);
        if (rc) return rc;
    }
    return NANA_OK;
}

static void update_apply(nana_wop *op)
{
    update_op *o = (update_op *)op;
    nana_table *t = op->tbl;
    uint64_t now = nana_store_now(t->store);
    for (size_t i = 0; i < o->n; i++) {
        if (o->skip && o->skip[i]) continue;
        const nana_kv_pair *p = &o->pairs[i];
        if (o->cvals && o->cvals[i])
            nana_cache_put(&t->cache, p->key, p->klen, o->cvals[i], now);
        else
            nana_cache_del(&t->cache, p->key, p->klen);
    }
}

/* Queues the pairs not marked in |skip| as one op and waits for it. */
static int run_update(nana_table *t, const nana_kv_pair *pairs, const unsigned char *skip, size_t n)
{
    update_op o = {
        .super = {.exec = update_exec, .apply = update_apply, .flags = WOP_SAVEPOINT, .tbl = t},
        .pairs = pairs,
        .skip = skip,
        .n = n};
    if (nana_cache_enabled(&t->cache)) {
        o.cvals = calloc(n, sizeof(*o.cvals));
        if (!o.cvals) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < n; i++) {
            if (skip && skip[i]) continue;
            if (!(o.cvals[i] = nana_val_new(pairs[i].value, pairs[i].vlen))) {
                for (size_t k = 0; k < i; k++)
                    nana_val_unref(o.cvals[k]);
                free(o.cvals);
                return NANA_ERR_NOMEM;
            }
        }
    }
    int rc = nana_writer_run(t->store, &o.super);
    if (o.cvals) {
        for (size_t i = 0; i < n; i++)
            nana_val_unref(o.cvals[i]);
        free(o.cvals);
    }
    return rc;
}

/* Checks one pair; the detail names the key's position. */
static int check_pair(const nana_store *s, const nana_kv_pair *p)
{
    int rc = nana_check_key(s, p->key, p->klen);
    if (!rc) rc = nana_check_value(s, p->value, p->vlen);
    return rc;
}

int nana_kv_batch_update(nana_table *t, const nana_kv_pair *pairs, size_t n)
{
    if (n == 0) return NANA_OK;
    if (!pairs) return nana_err_set(NANA_ERR_INVALID, "pairs is NULL");
    for (size_t i = 0; i < n; i++) {
        int rc = check_pair(t->store, &pairs[i]);
        if (rc) {
            char msg[NANA_ERRMSG_MAX];
            memcpy(msg, nana_errmsg(), sizeof(msg));
            return nana_err_set(rc, "item %zu: %s (nothing was written)", i, msg);
        }
    }
    return run_update(t, pairs, NULL, n);
}

/* Bytes of |key| to show in a message: at most |max|, cut at a UTF-8
 * character boundary, 0 for a key that is not UTF-8 at all. */
static int key_prefix(const char *key, size_t klen, size_t max)
{
    if (!key || !nana_utf8_valid(key, klen)) return 0;
    if (klen <= max) return (int)klen;
    size_t n = max;
    while (n > 0 && ((unsigned char)key[n] & 0xc0) == 0x80)
        n--;
    return (int)n;
}

int nana_kv_batch_update_partial(nana_table *t, const nana_kv_pair *pairs, size_t n,
                                 nana_val **errors)
{
    if (n && !pairs) return nana_err_set(NANA_ERR_INVALID, "pairs is NULL");
    unsigned char *skip = calloc(n ? n : 1, 1);
    if (!skip) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    nana_buf b;
    nana_buf_init(&b, 0);
    int rc = nana_buf_putc(&b, '{');
    size_t bad = 0;
    for (size_t i = 0; !rc && i < n; i++) {
        const nana_kv_pair *p = &pairs[i];
        if (!check_pair(t->store, p)) continue;
        skip[i] = 1;
        char reason[NANA_ERRMSG_MAX];
        memcpy(reason, nana_errmsg(), sizeof(reason));
        if (bad++) rc = nana_buf_putc(&b, ',');
        if (rc) break;
        if (p->key && nana_utf8_valid(p->key, p->klen) && p->klen <= t->store->opts.max_key_bytes)
            rc = nana_json_write_string(&b, p->key, p->klen);
        else
            rc = nana_buf_printf(&b, "\"<invalid key #%zu>\"", i);
        if (!rc) rc = nana_buf_putc(&b, ':');
        if (!rc) {
            char msg[NANA_ERRMSG_MAX + 256];
            int shown = key_prefix(p->key, p->klen, 80);
            snprintf(msg, sizeof(msg), "Skipped key '%.*s' during partial batch update: %s", shown,
                     p->key ? p->key : "", reason);
            rc = nana_json_write_string(&b, msg, strlen(msg));
        }
    }
    if (!rc) rc = nana_buf_putc(&b, '}');
    if (!rc && bad < n) rc = run_update(t, pairs, skip, n);
    free(skip);
    if (rc) {
        nana_buf_free(&b);
        return rc;
    }
    return nana_buf_to_val(&b, errors);
}

/* ------------------------------------------------------------------ */
/* batch_delete                                                         */
/* ------------------------------------------------------------------ */

typedef struct bdel_op {
    nana_wop super;
    const nana_key *keys;
    size_t n;
} bdel_op;

static int bdel_exec(nana_wop *op, nana_conn *c)
{
    bdel_op *o = (bdel_op *)op;
    op->i64 = 0;
    for (size_t i = 0; i < o->n; i++) {
        int rc = nana_exec_del(c, op->tbl, o->keys[i].key, o->keys[i].klen, NULL);
        if (rc < 0) return rc;
        op->i64 += rc;
    }
    return NANA_OK;
}

static void bdel_apply(nana_wop *op)
{
    bdel_op *o = (bdel_op *)op;
    for (size_t i = 0; i < o->n; i++)
        nana_cache_del(&op->tbl->cache, o->keys[i].key, o->keys[i].klen);
}

int nana_kv_batch_delete(nana_table *t, const nana_key *keys, size_t n, int64_t *deleted)
{
    if (deleted) *deleted = 0;
    if (n == 0) return NANA_OK;
    if (!keys) return nana_err_set(NANA_ERR_INVALID, "keys is NULL");
    for (size_t i = 0; i < n; i++) {
        int rc = nana_check_key(t->store, keys[i].key, keys[i].klen);
        if (rc) return rc;
    }
    bdel_op o = {
        .super = {.exec = bdel_exec, .apply = bdel_apply, .flags = WOP_SAVEPOINT, .tbl = t},
        .keys = keys,
        .n = n};
    int rc = nana_writer_run(t->store, &o.super);
    if (!rc && deleted) *deleted = o.super.i64;
    return rc;
}

/* ------------------------------------------------------------------ */
/* batch_get                                                            */
/* ------------------------------------------------------------------ */

typedef struct bget {
    nana_table *t;
    const nana_key *keys;
    size_t n;
    size_t *order;   /* key indexes sorted by key bytes */
    nana_val **vals; /* per key index: found value or NULL */
    const char *sql; /* the json_each statement text */
    nana_buf arr;    /* JSON array of the keys to fetch */
} bget;

static int key_cmp(const nana_key *a, const nana_key *b)
{
    size_t n = a->klen < b->klen ? a->klen : b->klen;
    int c = n ? memcmp(a->key, b->key, n) : 0;
    if (c) return c;
    return (a->klen > b->klen) - (a->klen < b->klen);
}

/* qsort has no context argument: the keys being sorted, per thread. */
static _Thread_local const nana_key *tls_sort_keys;

static int order_cmp(const void *pa, const void *pb)
{
    size_t a = *(const size_t *)pa, b = *(const size_t *)pb;
    int c = key_cmp(&tls_sort_keys[a], &tls_sort_keys[b]);
    if (c) return c;
    return (a > b) - (a < b); /* stable: first occurrence first */
}

/* Index of the first input key equal to (p, n), or SIZE_MAX. */
static size_t find_key(const bget *g, const char *p, size_t n)
{
    nana_key k = {p, n};
    size_t lo = 0, hi = g->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = key_cmp(&g->keys[g->order[mid]], &k);
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < g->n && key_cmp(&g->keys[g->order[lo]], &k) == 0) return g->order[lo];
    return SIZE_MAX;
}

static int read_bget(nana_conn *c, void *arg)
{
    bget *g = arg;
    int rc;
    sqlite3_stmt *st = nana_conn_stmt(c, g->sql, &rc);
    if (!st) return rc;
    rc = nana_bind_text(st, 1, g->arr.data, g->arr.len);
    while (!rc && (rc = nana_step(c, st, "batch_get")) == 1) {
        const unsigned char *k = sqlite3_column_text(st, 0);
        size_t i = find_key(g, k ? (const char *)k : "", (size_t)sqlite3_column_bytes(st, 0));
        rc = 0;
        if (i == SIZE_MAX || g->vals[i]) continue;
        rc = nana_column_val(st, 1, &g->vals[i]);
    }
    nana_conn_stmt_done(st);
    return rc;
}

/* The statement text for a table's batch_get, built once and kept. */
static const char *bget_sql(nana_table *t)
{
    return t->sql[SQL_BATCH_GET];
}

int nana_kv_batch_get(nana_table *t, const nana_key *keys, size_t n, nana_val **out)
{
    nana_store *s = t->store;
    if (s->cluster) return nana_cluster_unsupported("batch_get");
    if (n && !keys) return nana_err_set(NANA_ERR_INVALID, "keys is NULL");
    for (size_t i = 0; i < n; i++) {
        int rc = nana_check_key(s, keys[i].key, keys[i].klen);
        if (rc) return rc;
    }
    bget g = {.t = t, .keys = keys, .n = n, .sql = bget_sql(t)};
    g.order = malloc((n ? n : 1) * sizeof(*g.order));
    g.vals = calloc(n ? n : 1, sizeof(*g.vals));
    nana_buf_init(&g.arr, 0);
    nana_buf b;
    nana_buf_init(&b, s->opts.max_result_bytes);
    int rc = NANA_OK;
    if (!g.order || !g.vals) {
        rc = nana_err_set(NANA_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        g.order[i] = i;
    tls_sort_keys = keys;
    qsort(g.order, n, sizeof(*g.order), order_cmp);

    /* Cache first (not inside our own transaction); collect the misses
     * (first occurrences only). */
    bool own_txn = nana_in_own_txn(s);
    uint64_t now = nana_store_now(s), seq = 0;
    size_t misses = 0;
    bool seq_set = false;
    rc = nana_buf_putc(&g.arr, '[');
    for (size_t j = 0; !rc && j < n; j++) {
        size_t i = g.order[j];
        if (j > 0 && key_cmp(&keys[g.order[j - 1]], &keys[i]) == 0) continue;
        uint64_t sq = 0;
        int expired = 0;
        if (!own_txn &&
            nana_cache_get(&t->cache, keys[i].key, keys[i].klen, now, &g.vals[i], &sq, &expired)) {
            atomic_fetch_add_explicit(&s->st_hits, 1, memory_order_relaxed);
            continue;
        }
        if (expired) continue;
        if (!seq_set) seq = sq, seq_set = true;
        atomic_fetch_add_explicit(&s->st_misses, 1, memory_order_relaxed);
        if (misses++) rc = nana_buf_putc(&g.arr, ',');
        if (!rc) rc = nana_json_write_string(&g.arr, keys[i].key, keys[i].klen);
    }
    if (!rc) rc = nana_buf_putc(&g.arr, ']');
    if (!rc && misses) {
        /* Remember which values come from SQLite, to fill the cache. */
        unsigned char *from_db = calloc(n, 1);
        if (!from_db) {
            rc = nana_err_set(NANA_ERR_NOMEM, "out of memory");
            goto out;
        }
        for (size_t i = 0; i < n; i++)
            from_db[i] = g.vals[i] == NULL;
        rc = nana_store_read(s, read_bget, &g);
        for (size_t i = 0; !rc && !own_txn && i < n; i++)
            if (from_db[i] && g.vals[i])
                nana_cache_fill(&t->cache, keys[i].key, keys[i].klen, g.vals[i], now, seq);
        free(from_db);
    }
    /* The result object, in input order, each key once. */
    if (!rc) rc = nana_buf_putc(&b, '{');
    bool first = true;
    for (size_t i = 0; !rc && i < n; i++) {
        if (!g.vals[i]) continue;
        if (!first) rc = nana_buf_putc(&b, ',');
        first = false;
        if (!rc) rc = nana_json_write_string(&b, keys[i].key, keys[i].klen);
        if (!rc) rc = nana_buf_putc(&b, ':');
        if (!rc) rc = nana_buf_append(&b, g.vals[i]->data, g.vals[i]->len);
    }
    if (!rc) rc = nana_buf_putc(&b, '}');
    if (rc == NANA_ERR_TOOBIG)
        rc = nana_err_set(rc, "result exceeds the limit of %zu bytes", s->opts.max_result_bytes);

out:
    if (g.vals)
        for (size_t i = 0; i < n; i++)
            nana_val_unref(g.vals[i]);
    free(g.vals);
    free(g.order);
    nana_buf_free(&g.arr);
    if (rc) {
        nana_buf_free(&b);
        return rc;
    }
    return nana_buf_to_val(&b, out);
}
