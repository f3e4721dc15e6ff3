/*
 * multi.c - nana_store_multi: several gets, sets, deletes, selects and
 * updates in one transaction, all or nothing, in order.
 *
 * Big idea: the whole list is ONE writer op with a savepoint around it.
 * Everything a caller can get wrong (keys, values, predicates, paths, the
 * tables) is checked on the caller's thread before anything is queued;
 * on the writer the ops run one after the other on the writer's
 * connection, so each sees the ones before it (a GET after a SET reads the
 * new value). If one fails, the savepoint is rolled back: nothing at all
 * was changed, and since caches are only touched by apply() after the
 * commit, they still hold what they held. The writer may run the op again
 * (when another op of its group aborted the transaction), so exec drops
 * the results of an earlier run first.
 */
#include "store/store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What one op needs on the writer, prepared on the caller's thread. */
typedef struct mop_plan {
    nana_sel_plan sel; /* SELECT */
    nana_upd_plan upd; /* UPDATE */
    bool has_sel, has_upd;
    nana_val *cval; /* SET: the value for the cache, NULL when the table has none */
} mop_plan;

typedef struct multi_op {
    nana_wop super;
    nana_store *s;
    nana_mop *ops;
    size_t n;
    mop_plan *plans;
    size_t failed; /* index of the op that failed */
} multi_op;

/* Drops the results of ops[0..n). */
static void drop_results(nana_mop *ops, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        nana_val_unref(ops[i].v);
        ops[i].v = NULL;
        nana_rows_free(ops[i].rows);
        ops[i].rows = NULL;
        ops[i].changed = 0;
    }
}

/* GET on the writer connection: *v the value, NULL when absent. */
static int mop_get(nana_conn *c, nana_mop *m)
{
    int rc = nana_expire_key_if_dead(c, m->t, m->key, m->klen);
    if (rc) return rc;
    sqlite3_stmt *st = nana_conn_stmt(c, m->t->sql[SQL_GET], &rc);
    if (!st) return rc;
    rc = nana_bind_text(st, 1, m->key, m->klen);
    if (!rc) rc = nana_step(c, st, "get");
    if (rc == 1) rc = nana_column_val(st, 0, &m->v);
    nana_conn_stmt_done(st);
    return rc;
}

/* Runs op |i| on the writer connection; *total counts result bytes. */
static int run_one(nana_conn *c, multi_op *o, size_t i, size_t *total)
{
    nana_mop *m = &o->ops[i];
    mop_plan *pl = &o->plans[i];
    size_t limit = o->s->opts.max_result_bytes;
    int rc;
    switch (m->kind) {
    case NANA_MOP_GET:
        if ((rc = mop_get(c, m))) return rc;
        if (m->v) *total += m->v->len;
        break;
    case NANA_MOP_SET:
        if ((rc = nana_exec_set(c, m->t, m->key, m->klen, m->value, m->vlen))) return rc;
        m->changed = 1;
        break;
    case NANA_MOP_DELETE:
        if ((rc = nana_expire_key_if_dead(c, m->t, m->key, m->klen))) return rc;
        rc = nana_exec_del(c, m->t, m->key, m->klen, NULL);
        if (rc < 0) return rc;
        m->changed = rc;
        break;
    case NANA_MOP_SELECT: {
        size_t budget = nana_sel_plan_budget(&pl->sel);
        size_t left = *total < limit ? limit - *total : 0;
        size_t bytes = 0;
        rc = nana_sel_plan_run(c, &pl->sel, budget < left ? budget : left, &m->rows, &bytes);
        if (rc) return rc;
        *total += bytes;
        break;
    }
    case NANA_MOP_UPDATE:
        if ((rc = nana_upd_plan_run(c, &pl->upd))) return rc;
        m->changed = pl->upd.changed;
        break;
    }
    if (*total > limit)
        return nana_err_set(NANA_ERR_TOOBIG, "the results pass the limit of %zu bytes", limit);
    return NANA_OK;
}

static int multi_exec(nana_wop *op, nana_conn *c)
{
    multi_op *o = (multi_op *)op;
    drop_results(o->ops, o->n);
    o->failed = o->n;
    unsigned ms = o->s->opts.query_timeout_ms;
    nana_deadline dl;
    nana_deadline_arm(c, &dl, ms);
    size_t total = 0;
    int rc = NANA_OK;
    size_t i = 0;
    for (; !rc && i < o->n; i++)
        rc = run_one(c, o, i, &total);
    rc = nana_deadline_disarm(c, &dl, rc, ms);
    if (rc) {
        o->failed = i - 1;
        char msg[NANA_ERRMSG_MAX];
        snprintf(msg, sizeof(msg), "%s", nana_errmsg());
        rc = nana_err_set(rc, "query %zu: %s", o->failed, msg);
    }
    return rc;
}

/* After the commit: the caches learn what the ops changed, in order. */
static void multi_apply(nana_wop *op)
{
    multi_op *o = (multi_op *)op;
    for (size_t i = 0; i < o->n; i++) {
        nana_mop *m = &o->ops[i];
        nana_table *t = m->t;
        switch (m->kind) {
        case NANA_MOP_SET:
            if (o->plans[i].cval)
                nana_cache_put(&t->cache, m->key, m->klen, o->plans[i].cval,
                               nana_store_now(t->store));
            else
                nana_cache_del(&t->cache, m->key, m->klen);
            break;
        case NANA_MOP_DELETE:
            if (m->changed) nana_cache_del(&t->cache, m->key, m->klen);
            break;
        case NANA_MOP_UPDATE:
            nana_upd_plan_apply(&o->plans[i].upd);
            break;
        default:
            break;
        }
    }
}

/* Checks op |m| of store |s| and prepares its plan. */
static int plan_one(nana_store *s, nana_mop *m, mop_plan *pl)
{
    if (!m->t || m->t->store != s)
        return nana_err_set(NANA_ERR_INVALID, "the table is not one of this store's");
    int rc;
    switch (m->kind) {
    case NANA_MOP_GET:
    case NANA_MOP_DELETE:
        return nana_check_key(s, m->key, m->klen);
    case NANA_MOP_SET:
        if ((rc = nana_check_key(s, m->key, m->klen)) ||
            (rc = nana_check_value(s, m->value, m->vlen)))
            return rc;
        if (nana_cache_enabled(&m->t->cache) && !(pl->cval = nana_val_new(m->value, m->vlen)))
            return NANA_ERR_NOMEM;
        return NANA_OK;
    case NANA_MOP_SELECT:
        pl->has_sel = true;
        return nana_sel_plan_build(m->t, &m->sel, &pl->sel);
    case NANA_MOP_UPDATE:
        pl->has_upd = true;
        return nana_upd_plan_build(m->t, m->pred, m->u, m->nu, &pl->upd);
    }
    return nana_err_set(NANA_ERR_INVALID, "unknown operation kind %d", (int)m->kind);
}

static void plans_free(mop_plan *plans, size_t n)
{
    for (size_t i = 0; plans && i < n; i++) {
        if (plans[i].has_sel) nana_sel_plan_free(&plans[i].sel);
        if (plans[i].has_upd) nana_upd_plan_free(&plans[i].upd);
        nana_val_unref(plans[i].cval);
    }
    free(plans);
}

int nana_store_multi(nana_store *s, nana_mop *ops, size_t n, size_t *failed_at)
{
    if (failed_at) *failed_at = n;
    if (!s || (!ops && n)) return nana_err_set(NANA_ERR_INVALID, "multi: the store or ops is NULL");
    if (s->cluster) return nana_cluster_unsupported("a multi-operation batch");
    if (n > NANA_MULTI_MAX_OPS)
        return nana_err_set(NANA_ERR_TOOBIG, "multi: %zu operations, the limit is %d", n,
                            NANA_MULTI_MAX_OPS);
    for (size_t i = 0; i < n; i++) {
        ops[i].v = NULL;
        ops[i].rows = NULL;
        ops[i].changed = 0;
    }
    if (n == 0) return NANA_OK;
    mop_plan *plans = calloc(n, sizeof(*plans));
    if (!plans) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    int rc = NANA_OK;
    for (size_t i = 0; !rc && i < n; i++) {
        if ((rc = plan_one(s, &ops[i], &plans[i]))) {
            char msg[NANA_ERRMSG_MAX];
            snprintf(msg, sizeof(msg), "%s", nana_errmsg());
            rc = nana_err_set(rc, "query %zu: %s", i, msg);
            if (failed_at) *failed_at = i;
        }
    }
    if (!rc) {
        multi_op o = {.super = {.exec = multi_exec,
                                .apply = multi_apply,
                                .flags = WOP_SAVEPOINT,
                                .tbl = ops[0].t},
                      .s = s,
                      .ops = ops,
                      .n = n,
                      .plans = plans,
                      .failed = n};
        rc = nana_writer_run(s, &o.super);
        if (rc) {
            if (failed_at) *failed_at = o.failed;
            drop_results(ops, n);
        }
    }
    plans_free(plans, n);
    return rc;
}
