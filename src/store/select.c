/*
 * select.c - nana_kv_select: the rows of a table in key order, between key
 * bounds, filtered by a predicate over JSON fields, a page at a time.
 *
 * One statement per call, prepared for the call (its text depends on the
 * predicate's shape, never on the caller's bytes):
 *   SELECT key,value FROM "t" WHERE 1 [AND key>=?1] [AND key<?2]
 *     [AND key>?3] [AND <predicate>] ORDER BY key LIMIT ?4 OFFSET ?5
 * The key bounds use the key's index. One row past the limit is asked
 * for, so `more` is known without a second query. The rows are copied into
 * one buffer (each key and value followed by a NUL) and handed to the
 * caller with a table of pointers into it: two allocations in all.
 */
#include "store/store_int.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* nana_rows with the buffer its rows point into. */
typedef struct rows_block {
    nana_rows pub; /* first: the caller's pointer is this */
    char *data;
    nana_row r[];
} rows_block;

void nana_rows_free(nana_rows *r)
{
    if (!r) return;
    rows_block *b = (rows_block *)r;
    free(b->data);
    free(b);
}

/* Checks one key bound; the message names it. */
static int check_bound(const nana_store *s, const char *k, size_t n, const char *what)
{
    int rc = nana_check_key(s, k, n);
    if (!rc) return NANA_OK;
    char msg[NANA_ERRMSG_MAX];
    snprintf(msg, sizeof(msg), "%s", nana_errmsg());
    return nana_err_set(rc, "%s: %s", what, msg);
}

void nana_sel_plan_free(nana_sel_plan *p)
{
    nana_buf_free(&p->sql);
    if (p->has_pred) nana_pred_plan_free(&p->pred);
    p->has_pred = false;
}

int nana_sel_plan_build(nana_table *t, const nana_select *q, nana_sel_plan *out)
{
    memset(out, 0, sizeof(*out));
    nana_buf_init(&out->sql, 0);
    out->t = t;
    out->q = q;
    if (!t || !q) return nana_err_set(NANA_ERR_INVALID, "select: the table or the query is NULL");
    const nana_store *s = t->store;
    if (q->offset < 0) return nana_err_set(NANA_ERR_INVALID, "select: offset must be >= 0");
    int rc;
    if ((q->has_lo && (rc = check_bound(s, q->lo, q->lolen, "select: lo"))) ||
        (q->has_hi && (rc = check_bound(s, q->hi, q->hilen, "select: hi"))) ||
        (q->has_after && (rc = check_bound(s, q->after, q->alen, "select: after"))))
        return rc;
    if (q->pred) {
        out->has_pred = true;
        if ((rc = nana_pred_plan_build(q->pred, 6, NANA_PRED_ANY_JSON, &out->pred))) return rc;
    }
    /* One lower bound only, the higher of lo and after: with both, SQLite
     * seeks to either one and filters with the other, so each page of a
     * long range scanned every row from the range's start again. Keys
     * compare as SQLite's BINARY order does: bytes, then length. */
    out->use_lo = q->has_lo;
    out->use_after = q->has_after;
    if (q->has_lo && q->has_after) {
        size_t n = q->alen < q->lolen ? q->alen : q->lolen;
        int cmp = n ? memcmp(q->after, q->lo, n) : 0;
        if (!cmp) cmp = q->alen < q->lolen ? -1 : q->alen > q->lolen;
        if (cmp >= 0)
            out->use_lo = false; /* key > after >= lo */
        else
            out->use_after = false; /* key >= lo > after */
    }
    nana_buf *b = &out->sql;
    if ((rc = nana_buf_printf(b, "SELECT key,value FROM \"%s\" WHERE 1", t->name)) ||
        (out->use_lo && (rc = nana_buf_puts(b, " AND key>=?1"))) ||
        (q->has_hi && (rc = nana_buf_puts(b, " AND key<?2"))) ||
        (out->use_after && (rc = nana_buf_puts(b, " AND key>?3"))) ||
        (q->pred && ((rc = nana_buf_puts(b, " AND ")) ||
                     (rc = nana_buf_append(b, out->pred.sql.data, out->pred.sql.len)))) ||
        (rc = nana_buf_puts(b, " ORDER BY key LIMIT ?4 OFFSET ?5")))
        return rc;
    return NANA_OK;
}

/* Where one row lies in the data buffer while rows are collected. */
typedef struct row_at {
    size_t koff, klen, voff, vlen;
} row_at;

/* Binds the bounds, limit, offset and predicate of |p| on |st|. */
static int bind_select(const nana_sel_plan *p, sqlite3_stmt *st)
{
    const nana_select *q = p->q;
    int rc = NANA_OK;
    if (p->use_lo) rc = nana_bind_text(st, 1, q->lo, q->lolen);
    if (!rc && q->has_hi) rc = nana_bind_text(st, 2, q->hi, q->hilen);
    if (!rc && p->use_after) rc = nana_bind_text(st, 3, q->after, q->alen);
    if (rc) return rc;
    /* One row more than the limit tells whether more remain. */
    int64_t lim = (q->limit < 0 || q->limit >= INT64_MAX - 1) ? -1 : q->limit + 1;
    if (sqlite3_bind_int64(st, 4, lim) != SQLITE_OK ||
        sqlite3_bind_int64(st, 5, q->offset) != SQLITE_OK)
        return nana_err_set(NANA_ERR_NOMEM, "cannot bind a parameter");
    return p->has_pred ? nana_pred_plan_bind(&p->pred, st) : NANA_OK;
}

/* Appends the current row's key and value (each with a NUL) to |data|. */
static int collect_row(sqlite3_stmt *st, nana_buf *data, row_at *at)
{
    const char *k = (const char *)sqlite3_column_text(st, 0);
    at->klen = (size_t)sqlite3_column_bytes(st, 0);
    int vtype = sqlite3_column_type(st, 1);
    if (vtype == SQLITE_BLOB)
        return nana_err_set(NANA_ERR_TYPE, "the stored value of a row is a BLOB, not JSON text");
    const char *v = vtype == SQLITE_NULL ? "null" : (const char *)sqlite3_column_text(st, 1);
    at->vlen = vtype == SQLITE_NULL ? 4 : (size_t)sqlite3_column_bytes(st, 1);
    at->koff = data->len;
    int rc = nana_buf_append(data, k ? k : "", at->klen);
    if (!rc) rc = nana_buf_putc(data, '\0');
    at->voff = data->len;
    if (!rc) rc = nana_buf_append(data, v ? v : "", at->vlen);
    if (!rc) rc = nana_buf_putc(data, '\0');
    return rc;
}

/* Hands the collected rows over as one nana_rows; frees |data| either way. */
static int rows_finish(nana_buf *data, const row_at *at, size_t n, bool more, nana_rows **out)
{
    rows_block *b = malloc(sizeof(*b) + n * sizeof(nana_row));
    char *bytes = b ? nana_buf_detach(data, NULL) : NULL;
    if (!bytes) {
        free(b);
        nana_buf_free(data);
        return nana_err_set(NANA_ERR_NOMEM, "out of memory for the rows");
    }
    b->data = bytes;
    for (size_t i = 0; i < n; i++)
        b->r[i] = (nana_row){.key = bytes + at[i].koff,
                             .klen = at[i].klen,
                             .value = bytes + at[i].voff,
                             .vlen = at[i].vlen};
    b->pub = (nana_rows){.n = n, .r = b->r, .more = more};
    *out = &b->pub;
    return NANA_OK;
}

int nana_sel_plan_run(nana_conn *c, const nana_sel_plan *p, size_t budget, nana_rows **out,
                      size_t *bytes)
{
    *out = NULL;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(c->db, p->sql.data, (int)p->sql.len, &st, NULL);
    if (rc != SQLITE_OK) {
        sqlite3_finalize(st);
        return nana_conn_err(c, rc, "select");
    }
    rc = bind_select(p, st);
    nana_buf data;
    nana_buf_init(&data, 0);
    row_at *at = NULL;
    size_t n = 0, cap = 0, total = 0;
    bool more = false;
    while (!rc && (rc = nana_step(c, st, "select")) == 1) {
        rc = NANA_OK;
        if (p->q->limit >= 0 && (int64_t)n >= p->q->limit) {
            more = true;
            break;
        }
        size_t rowbytes = (size_t)sqlite3_column_bytes(st, 0) + (size_t)sqlite3_column_bytes(st, 1);
        if (n > 0 && (rowbytes > budget || total > budget - rowbytes)) {
            more = true;
            break;
        }
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            row_at *g = realloc(at, ncap * sizeof(*at));
            if (!g) {
                rc = nana_err_set(NANA_ERR_NOMEM, "out of memory for the rows");
                break;
            }
            at = g;
            cap = ncap;
        }
        if ((rc = collect_row(st, &data, &at[n]))) break;
        total += at[n].klen + at[n].vlen;
        n++;
    }
    sqlite3_finalize(st);
    if (!rc) rc = rows_finish(&data, at, n, more, out);
    nana_buf_free(&data);
    free(at);
    if (!rc && bytes) *bytes = total;
    return rc;
}

size_t nana_sel_plan_budget(const nana_sel_plan *p)
{
    size_t cap = p->t->store->opts.max_result_bytes;
    return (p->q->max_bytes == 0 || p->q->max_bytes > cap) ? cap : p->q->max_bytes;
}

typedef struct select_read {
    const nana_sel_plan *plan;
    size_t budget;
    nana_rows *rows;
} select_read;

static int read_select_rows(nana_conn *c, void *arg)
{
    select_read *a = arg;
    unsigned ms = a->plan->t->store->opts.query_timeout_ms;
    nana_deadline dl;
    nana_deadline_arm(c, &dl, ms);
    int rc = nana_sel_plan_run(c, a->plan, a->budget, &a->rows, NULL);
    return nana_deadline_disarm(c, &dl, rc, ms);
}

int nana_kv_select(nana_table *t, const nana_select *q, nana_rows **out)
{
    if (t->store->cluster) return nana_cluster_unsupported("a range or filter query");
    if (!out) return nana_err_set(NANA_ERR_INVALID, "select: out is NULL");
    *out = NULL;
    nana_sel_plan plan;
    int rc = nana_sel_plan_build(t, q, &plan);
    if (!rc) {
        select_read a = {.plan = &plan, .budget = nana_sel_plan_budget(&plan)};
        rc = nana_store_read(t->store, read_select_rows, &a);
        if (!rc) *out = a.rows;
    }
    nana_sel_plan_free(&plan);
    return rc;
}
