/*
 * update_where.c - nana_kv_update_where: SET / ADD / MUL on fields of every
 * row whose JSON object matches a predicate, as one writer op.
 *
 * Big idea: the whole update is one operation on the writer thread, so it
 * commits in a group with other writes, no other write can fall between
 * reading a row and writing it back, and a failure (a field that is not a
 * number, a value grown too large) rolls back every row it changed (the
 * op runs in a savepoint). Rows are found by SQLite (the predicate as SQL,
 * see pred.c) in key order, a chunk at a time: the chunk's rows are copied
 * out, the read statement is reset, and only then are the rows rewritten,
 * so a statement never reads a table it is changing; the next chunk starts
 * past the chunk's last key, so memory stays bounded whatever the table
 * holds. The new values are computed on our own JSON tree (numbers keep
 * their text; integers stay exact). After the commit the changed keys
 * leave the table's cache (or, past a few thousand, the cache is emptied).
 */
#include "store/store_int.h"

#include "util/nana_json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A chunk of matching rows: at most this many, or this many bytes (plus one row). */
#define CHUNK_ROWS  512
#define CHUNK_BYTES ((size_t)4 * 1024 * 1024)

/* Changed keys remembered for the cache; past either limit the cache is emptied. */
#define KEEP_KEYS      4096
#define KEEP_KEY_BYTES ((size_t)1024 * 1024)

static const char *upd_name(nana_upd_op op)
{
    return op == NANA_UPD_SET ? "SET" : op == NANA_UPD_ADD ? "ADD" : "MUL";
}

/* What a JSON node is, for messages ("is a string"). */
static const char *json_kind(const nana_json *v)
{
    switch (v->type) {
    case NANA_JSON_NULL:
        return "null";
    case NANA_JSON_TRUE:
    case NANA_JSON_FALSE:
        return "a boolean";
    case NANA_JSON_NUMBER:
        return "a number";
    case NANA_JSON_STRING:
        return "a string";
    case NANA_JSON_ARRAY:
        return "an array";
    case NANA_JSON_OBJECT:
        return "an object";
    }
    return "?";
}

void nana_upd_plan_free(nana_upd_plan *p)
{
    for (size_t i = 0; p->docs && i < p->n; i++)
        nana_json_doc_free(p->docs[i]);
    free(p->docs);
    free(p->vals);
    free(p->paths);
    free(p->sql_first);
    free(p->sql_next);
    free(p->klens);
    nana_buf_free(&p->keys);
    nana_pred_plan_free(&p->pred);
    memset(p, 0, sizeof(*p));
}

/* Checks update |i| and parses its path and value into the plan. */
static int plan_update(nana_upd_plan *p, size_t i)
{
    const nana_update *u = &p->u[i];
    const nana_store *s = p->t->store;
    if (u->op != NANA_UPD_SET && u->op != NANA_UPD_ADD && u->op != NANA_UPD_MUL)
        return nana_err_set(NANA_ERR_INVALID, "update %zu has an unknown operation %d", i + 1,
                            (int)u->op);
    char what[64];
    snprintf(what, sizeof(what), "update %zu (%s): the field", i + 1, upd_name(u->op));
    int rc = nana_fpath_parse(u->field, u->flen, what, &p->paths[i]);
    if (rc) return rc;
    if (!u->value || u->vlen == 0)
        return nana_err_set(NANA_ERR_VALIDATION, "update %zu (%s) has no value", i + 1,
                            upd_name(u->op));
    if ((rc = nana_check_value(s, u->value, u->vlen))) {
        char msg[NANA_ERRMSG_MAX];
        snprintf(msg, sizeof(msg), "%s", nana_errmsg());
        return nana_err_set(rc, "update %zu (%s): the value: %s", i + 1, upd_name(u->op), msg);
    }
    if ((rc = nana_json_parse(u->value, u->vlen, 0, s->opts.max_json_depth, &p->docs[i],
                              &p->vals[i])))
        return rc;
    if (u->op == NANA_UPD_SET) return NANA_OK;
    const nana_json *v = p->vals[i];
    if (v->type != NANA_JSON_NUMBER)
        return nana_err_set(NANA_ERR_TYPE, "update %zu (%s) needs a number, not %s", i + 1,
                            upd_name(u->op), json_kind(v));
    int64_t x;
    if (nana_json_number_is_integer(v) && nana_json_number_int64(v, &x))
        return nana_err_set(NANA_ERR_TYPE, "update %zu (%s): the integer is beyond 64 bits", i + 1,
                            upd_name(u->op));
    return NANA_OK;
}

int nana_upd_plan_build(nana_table *t, const nana_pred *pred, const nana_update *u, size_t n,
                        nana_upd_plan *out)
{
    memset(out, 0, sizeof(*out));
    nana_buf_init(&out->keys, 0);
    nana_buf_init(&out->pred.sql, 0);
    nana_buf_init(&out->pred.paths, 0);
    out->t = t;
    out->u = u;
    out->n = n;
    if (!t) return nana_err_set(NANA_ERR_INVALID, "update_where: the table is NULL");
    if (!u || n == 0) return nana_err_set(NANA_ERR_INVALID, "update_where: no updates");
    if (n > NANA_UPD_MAX)
        return nana_err_set(NANA_ERR_TOOBIG, "update_where: %zu updates, the limit is %d", n,
                            NANA_UPD_MAX);
    out->paths = calloc(n, sizeof(*out->paths));
    out->docs = calloc(n, sizeof(*out->docs));
    out->vals = calloc(n, sizeof(*out->vals));
    if (!out->paths || !out->docs || !out->vals)
        return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    int rc;
    for (size_t i = 0; i < n; i++)
        if ((rc = plan_update(out, i))) return rc;
    if ((rc = nana_pred_plan_build(pred, 2, NANA_PRED_OBJECTS_ONLY, &out->pred))) return rc;
    nana_buf b;
    nana_buf_init(&b, 0);
    if (!(rc = nana_buf_printf(&b, "SELECT key,value FROM \"%s\" WHERE %s ORDER BY key", t->name,
                               out->pred.sql.data)))
        out->sql_first = nana_buf_detach(&b, NULL);
    if (!rc && !(rc = nana_buf_printf(&b,
                                      "SELECT key,value FROM \"%s\" WHERE key>?1 AND %s "
                                      "ORDER BY key",
                                      t->name, out->pred.sql.data)))
        out->sql_next = nana_buf_detach(&b, NULL);
    nana_buf_free(&b);
    if (!rc && (!out->sql_first || !out->sql_next))
        rc = nana_err_set(NANA_ERR_NOMEM, "out of memory");
    return rc;
}

/* ------------------------------------------------------------------ */
/* One row                                                              */
/* ------------------------------------------------------------------ */

/* The message prefix of a row's failure: "key '<key>': field '<field>'". */
static int row_fail(int code, const char *key, size_t klen, const nana_fpath *fp, const char *what)
{
    char k[NANA_QUOTE_MAX], f[NANA_QUOTE_MAX];
    nana_quote_text(k, sizeof(k), key, klen, 64);
    nana_quote_text(f, sizeof(f), fp->text, fp->len, 64);
    return nana_err_set(code, "key '%s': field '%s' %s", k, f, what);
}

/*
 * ADD or MUL of the field's number |cur| (NULL: absent, counted as 0) and
 * the update's number |v|: exact for integers, else a double. *out is a
 * new node in |d|.
 */
static int arith(nana_json_doc *d, const nana_json *cur, const nana_json *v, nana_upd_op op,
                 nana_json **out, const char *key, size_t klen, const nana_fpath *fp)
{
    bool cur_int = !cur || nana_json_number_is_integer(cur);
    if (cur_int && nana_json_number_is_integer(v)) {
        int64_t a = 0, b = 0, r;
        if (cur && nana_json_number_int64(cur, &a))
            return row_fail(NANA_ERR_TYPE, key, klen, fp, "holds an integer beyond 64 bits");
        if (nana_json_number_int64(v, &b))
            return nana_err_set(NANA_ERR_TYPE, "an integer beyond 64 bits");
        bool over = op == NANA_UPD_ADD ? __builtin_add_overflow(a, b, &r)
                                       : __builtin_mul_overflow(a, b, &r);
        if (over)
            return row_fail(NANA_ERR_TYPE, key, klen, fp,
                            op == NANA_UPD_ADD ? "would pass the 64-bit integer range (ADD)"
                                               : "would pass the 64-bit integer range (MUL)");
        *out = nana_json_new_int(d, r);
        return *out ? NANA_OK : NANA_ERR_NOMEM;
    }
    double a = 0, b = 0;
    if ((cur && nana_json_number_double(cur, &a)) || nana_json_number_double(v, &b))
        return row_fail(NANA_ERR_TYPE, key, klen, fp, "is not a number SQLite can compute with");
    double r = op == NANA_UPD_ADD ? a + b : a * b;
    if (!isfinite(r)) return row_fail(NANA_ERR_TYPE, key, klen, fp, "would not be a finite number");
    *out = nana_json_new_double(d, r);
    return *out ? NANA_OK : NANA_ERR_NOMEM;
}

/*
 * Applies one update to the row's tree |root|. Returns 1 if it changed the
 * tree, 0 if the field's parent (or the element an index names) does not
 * exist, or an error (a field that is not a number for ADD/MUL).
 */
static int apply_one(nana_json_doc *d, nana_json *root, const nana_fpath *fp, nana_upd_op op,
                     const nana_json *v, const char *key, size_t klen)
{
    nana_json *parent = root;
    for (unsigned k = 0; k + 1 < fp->n; k++) {
        const nana_fstep *s = &fp->step[k];
        if (s->name) {
            if (parent->type != NANA_JSON_OBJECT) return 0;
            parent = nana_json_object_get(parent, s->name, s->nlen);
        } else {
            if (parent->type != NANA_JSON_ARRAY || s->index >= parent->n) return 0;
            parent = parent->u.items[s->index];
        }
        if (!parent) return 0;
    }
    const nana_fstep *last = &fp->step[fp->n - 1];
    nana_json *target;
    if (last->name) {
        if (parent->type != NANA_JSON_OBJECT) return 0;
        target = nana_json_object_get(parent, last->name, last->nlen);
    } else {
        if (parent->type != NANA_JSON_ARRAY || last->index >= parent->n) return 0;
        target = parent->u.items[last->index];
    }
    nana_json *nv = NULL;
    int rc;
    if (op == NANA_UPD_SET) {
        if (!(nv = nana_json_clone(d, v))) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    } else {
        if (target && target->type != NANA_JSON_NUMBER) {
            char why[32];
            snprintf(why, sizeof(why), "is %s", json_kind(target));
            return row_fail(NANA_ERR_TYPE, key, klen, fp, why);
        }
        if ((rc = arith(d, target, v, op, &nv, key, klen, fp))) return rc;
    }
    if (last->name) {
        if ((rc = nana_json_object_set(d, parent, last->name, last->nlen, nv))) return rc;
    } else {
        parent->u.items[last->index] = nv;
    }
    return 1;
}

/* Remembers a changed key for the cache (or gives up and empties it). */
static int remember_key(nana_upd_plan *p, const char *key, size_t klen)
{
    if (p->clear_cache || !nana_cache_enabled(&p->t->cache)) return NANA_OK;
    if (p->nkeys >= KEEP_KEYS || p->keys.len + klen > KEEP_KEY_BYTES) {
        p->clear_cache = true;
        return NANA_OK;
    }
    if (p->nkeys == p->kcap) {
        size_t ncap = p->kcap ? p->kcap * 2 : 64;
        size_t *g = realloc(p->klens, ncap * sizeof(*g));
        if (!g) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
        p->klens = g;
        p->kcap = ncap;
    }
    int rc = nana_buf_append(&p->keys, key, klen);
    if (!rc) p->klens[p->nkeys++] = klen;
    return rc;
}

/* Updates one matching row (its key and stored text) on the writer connection. */
static int update_row(nana_conn *c, nana_upd_plan *p, const char *key, size_t klen, const char *val,
                      size_t vlen)
{
    nana_table *t = p->t;
    nana_store *s = t->store;
    if (t->cache.opts.kind == NANA_CACHE_TTL && t->cache.opts.ttl_delete_rows &&
        nana_cache_is_dead(&t->cache, key, klen, nana_store_now(s))) {
        int rc = nana_exec_del(c, t, key, klen, NULL); /* its TTL passed: it is absent */
        return rc < 0 ? rc : NANA_OK;
    }
    nana_json_doc *d = NULL;
    nana_json *root = NULL;
    if (nana_json_parse(val, vlen, NANA_JSON_ALLOW_NONFINITE, s->opts.max_json_depth, &d, &root))
        return NANA_OK; /* not JSON we can rewrite: it does not match */
    int rc = NANA_OK;
    bool applied = false;
    for (size_t j = 0; !rc && j < p->n && root->type == NANA_JSON_OBJECT; j++) {
        int r = apply_one(d, root, &p->paths[j], p->u[j].op, p->vals[j], key, klen);
        if (r < 0)
            rc = r;
        else if (r > 0)
            applied = true;
    }
    if (!rc && applied) {
        nana_buf b;
        nana_buf_init(&b, s->opts.max_value_bytes);
        char k[NANA_QUOTE_MAX];
        rc = nana_json_write(&b, root);
        if (rc == NANA_ERR_TOOBIG)
            rc =
                nana_err_set(rc, "key '%s': the new value would pass max_value_bytes (%zu)",
                             nana_quote_text(k, sizeof(k), key, klen, 64), s->opts.max_value_bytes);
        else if (!rc && nana_json_validate(b.data, b.len, NANA_JSON_ALLOW_NONFINITE,
                                           s->opts.max_json_depth))
            rc = nana_err_set(NANA_ERR_TOOBIG,
                              "key '%s': the new value would be nested deeper than %u levels",
                              nana_quote_text(k, sizeof(k), key, klen, 64), s->opts.max_json_depth);
        if (!rc) rc = nana_exec_set(c, t, key, klen, b.data, b.len);
        nana_buf_free(&b);
        if (!rc) rc = remember_key(p, key, klen);
        if (!rc) p->changed++;
    }
    nana_json_doc_free(d);
    return rc;
}

/* ------------------------------------------------------------------ */
/* The scan                                                             */
/* ------------------------------------------------------------------ */

typedef struct chunk_row {
    size_t koff, klen, voff, vlen;
} chunk_row;

/* Reads the next chunk of matching rows from |st| into |data|/|rows|;
 * *done is set when the scan reached the end. */
static int read_chunk(nana_conn *c, sqlite3_stmt *st, nana_buf *data, chunk_row *rows, size_t *n,
                      bool *done)
{
    *n = 0;
    *done = false;
    nana_buf_reset(data);
    int rc;
    while ((rc = nana_step(c, st, "update_where")) == 1) {
        chunk_row *r = &rows[*n];
        const char *k = (const char *)sqlite3_column_text(st, 0);
        r->klen = (size_t)sqlite3_column_bytes(st, 0);
        const char *v = (const char *)sqlite3_column_text(st, 1);
        r->vlen = (size_t)sqlite3_column_bytes(st, 1);
        r->koff = data->len;
        if ((rc = nana_buf_append(data, k ? k : "", r->klen))) return rc;
        r->voff = data->len;
        if ((rc = nana_buf_append(data, v ? v : "", r->vlen))) return rc;
        if (++*n == CHUNK_ROWS || data->len >= CHUNK_BYTES) return NANA_OK;
    }
    if (rc == 0) *done = true;
    return rc;
}

int nana_upd_plan_run(nana_conn *c, nana_upd_plan *p)
{
    p->changed = 0;
    p->nkeys = 0;
    p->clear_cache = false;
    nana_buf_reset(&p->keys);
    sqlite3_stmt *first = NULL, *next = NULL;
    int rc = sqlite3_prepare_v2(c->db, p->sql_first, -1, &first, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_prepare_v2(c->db, p->sql_next, -1, &next, NULL);
    if (rc != SQLITE_OK) {
        rc = nana_conn_err(c, rc, "update_where");
        sqlite3_finalize(first);
        sqlite3_finalize(next);
        return rc;
    }
    chunk_row *rows = malloc(CHUNK_ROWS * sizeof(*rows));
    nana_buf data, after;
    nana_buf_init(&data, 0);
    nana_buf_init(&after, 0);
    rc = rows ? NANA_OK : nana_err_set(NANA_ERR_NOMEM, "out of memory");
    bool done = false, past = false;
    while (!rc && !done) {
        sqlite3_stmt *st = past ? next : first;
        if (past) rc = nana_bind_text(st, 1, after.data, after.len);
        if (!rc) rc = nana_pred_plan_bind(&p->pred, st);
        size_t n = 0;
        if (!rc) rc = read_chunk(c, st, &data, rows, &n, &done);
        sqlite3_reset(st); /* no read in progress while the rows are rewritten */
        for (size_t i = 0; !rc && i < n; i++)
            rc = update_row(c, p, data.data + rows[i].koff, rows[i].klen, data.data + rows[i].voff,
                            rows[i].vlen);
        if (!rc && !done && n > 0) {
            nana_buf_reset(&after);
            rc = nana_buf_append(&after, data.data + rows[n - 1].koff, rows[n - 1].klen);
            past = true;
        }
        if (n == 0) done = true;
    }
    sqlite3_finalize(first);
    sqlite3_finalize(next);
    nana_buf_free(&data);
    nana_buf_free(&after);
    free(rows);
    return rc;
}

void nana_upd_plan_apply(nana_upd_plan *p)
{
    nana_cache *cache = &p->t->cache;
    if (p->clear_cache) {
        nana_cache_clear(cache);
        return;
    }
    size_t off = 0;
    for (size_t i = 0; i < p->nkeys; i++) {
        nana_cache_del(cache, p->keys.data + off, p->klens[i]);
        off += p->klens[i];
    }
}

/* ------------------------------------------------------------------ */
/* The call                                                             */
/* ------------------------------------------------------------------ */

typedef struct uw_op {
    nana_wop super;
    nana_upd_plan *plan;
} uw_op;

static int uw_exec(nana_wop *op, nana_conn *c)
{
    uw_op *o = (uw_op *)op;
    unsigned ms = op->tbl->store->opts.query_timeout_ms;
    nana_deadline dl;
    nana_deadline_arm(c, &dl, ms);
    int rc = nana_upd_plan_run(c, o->plan);
    rc = nana_deadline_disarm(c, &dl, rc, ms);
    op->i64 = o->plan->changed;
    return rc;
}

static void uw_apply(nana_wop *op)
{
    nana_upd_plan_apply(((uw_op *)op)->plan);
}

int nana_kv_update_where(nana_table *t, const nana_pred *pred, const nana_update *u, size_t n,
                         int64_t *changed)
{
    if (t->store->cluster) return nana_cluster_unsupported("update_where");
    if (changed) *changed = 0;
    nana_upd_plan plan;
    int rc = nana_upd_plan_build(t, pred, u, n, &plan);
    if (!rc) {
        uw_op o = {.super = {.exec = uw_exec, .apply = uw_apply, .flags = WOP_SAVEPOINT, .tbl = t},
                   .plan = &plan};
        rc = nana_writer_run(t->store, &o.super);
        if (!rc && changed) *changed = o.super.i64;
    }
    nana_upd_plan_free(&plan);
    return rc;
}
