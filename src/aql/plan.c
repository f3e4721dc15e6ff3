/*
 * plan.c - an AQL query (amaters.query.Query) made ready for the call
 * core: which method runs it and the store structures it passes, in the
 * call's arena. Refusals are AQL errors (ErrorResponse), never statuses.
 */
#include "aql/nana_aql.h"

#include "util/nana_json.h"

#include <stdio.h>
#include <string.h>

#define E(name) AMATERS__ERRORS__ERROR_CODE__ERROR_##name

/* The collection: "" is the default table; others must be table names. */
static int collection(const char *name, nana_aql_plan *p, nana_aql_err *err)
{
    size_t n = name ? strlen(name) : 0;
    p->collection = n ? name : NULL;
    p->clen = n;
    if (n && (!nana_identifier_valid(name) || nana_name_reserved(name)))
        return nana_aql_fail(err, E(VALIDATION_INVALID_COLLECTION),
                             "collection '%.64s' is not a table name: letters, digits and _, "
                             "not starting with a digit or sqlite_",
                             name);
    return 0;
}

/* A key: present and UTF-8 (a NanaSQLite key is text). */
static int key_of(const Amaters__Types__Key *k, const char *what, const char **out, size_t *len,
                  nana_aql_err *err)
{
    if (!k) return nana_aql_fail(err, E(PROTOCOL_MISSING_FIELD), "the query has no %s", what);
    if (!nana_utf8_valid((const char *)k->data.data, k->data.len))
        return nana_aql_fail(err, E(VALIDATION_INVALID_KEY),
                             "the %s is not UTF-8: keys are text on this server", what);
    *out = k->data.len ? (const char *)k->data.data : "";
    *len = k->data.len;
    return 0;
}

/* A value's stored JSON text. */
static int value_of(nana_arena *a, const Amaters__Types__CipherBlob *v, const char **json,
                    size_t *jlen, nana_aql_err *err)
{
    if (!v) return nana_aql_fail(err, E(PROTOCOL_MISSING_FIELD), "the query has no value");
    if (v->metadata &&
        v->metadata->compression != AMATERS__TYPES__COMPRESSION_TYPE__COMPRESSION_NONE)
        return nana_aql_fail(err, E(VALIDATION_INVALID_VALUE),
                             "compressed values are not taken: send the bytes uncompressed");
    if (nana_aql_stored_json(a, v->data.data, v->data.len, json, jlen))
        return nana_aql_fail(err, E(SERVER_INTERNAL), "out of memory");
    return 0;
}

/* A comparison's JSON value: it must be JSON (a predicate compares fields). */
static int json_of(const Amaters__Types__CipherBlob *v, const char **json, size_t *jlen,
                   nana_aql_err *err)
{
    if (!v || !v->data.len)
        return nana_aql_fail(err, E(PROTOCOL_MISSING_FIELD), "a comparison has no value");
    if (nana_json_validate((const char *)v->data.data, v->data.len, 0, NANA_DEFAULT_JSON_DEPTH))
        return nana_aql_fail(err, E(VALIDATION_INVALID_VALUE),
                             "a comparison's value is not JSON (strings are quoted: \"Tokyo\")");
    *json = (const char *)v->data.data;
    *jlen = v->data.len;
    return 0;
}

/* The predicate tree, in the arena (counted against |nodes|). */
static int pred_of(nana_arena *a, const Amaters__Types__Predicate *in, unsigned depth,
                   unsigned *nodes, const nana_pred **out, nana_aql_err *err)
{
    if (!in) return nana_aql_fail(err, E(PROTOCOL_MISSING_FIELD), "a predicate is missing");
    if (depth > NANA_PRED_MAX_DEPTH || ++*nodes > NANA_PRED_MAX_NODES)
        return nana_aql_fail(err, E(VALIDATION_SIZE_EXCEEDED),
                             "the predicate has more than %d nodes or %d levels",
                             NANA_PRED_MAX_NODES, NANA_PRED_MAX_DEPTH);
    nana_pred *p = nana_arena_alloc(a, sizeof(*p));
    if (!p) return nana_aql_fail(err, E(SERVER_INTERNAL), "out of memory");
    memset(p, 0, sizeof(*p));
    const Amaters__Types__ColumnRef *col = NULL;
    const Amaters__Types__CipherBlob *val = NULL;
    switch (in->predicate_case) {
    case AMATERS__TYPES__PREDICATE__PREDICATE_EQ:
        p->op = NANA_PRED_EQ, col = in->eq->column, val = in->eq->value;
        break;
    case AMATERS__TYPES__PREDICATE__PREDICATE_GT:
        p->op = NANA_PRED_GT, col = in->gt->column, val = in->gt->value;
        break;
    case AMATERS__TYPES__PREDICATE__PREDICATE_LT:
        p->op = NANA_PRED_LT, col = in->lt->column, val = in->lt->value;
        break;
    case AMATERS__TYPES__PREDICATE__PREDICATE_GTE:
        p->op = NANA_PRED_GTE, col = in->gte->column, val = in->gte->value;
        break;
    case AMATERS__TYPES__PREDICATE__PREDICATE_LTE:
        p->op = NANA_PRED_LTE, col = in->lte->column, val = in->lte->value;
        break;
    case AMATERS__TYPES__PREDICATE__PREDICATE_AND:
    case AMATERS__TYPES__PREDICATE__PREDICATE_OR: {
        bool is_and = in->predicate_case == AMATERS__TYPES__PREDICATE__PREDICATE_AND;
        const Amaters__Types__Predicate *l = is_and ? in->and_->left : in->or_->left;
        const Amaters__Types__Predicate *r = is_and ? in->and_->right : in->or_->right;
        p->op = is_and ? NANA_PRED_AND : NANA_PRED_OR;
        if (pred_of(a, l, depth + 1, nodes, &p->left, err) ||
            pred_of(a, r, depth + 1, nodes, &p->right, err))
            return -1;
        *out = p;
        return 0;
    }
    case AMATERS__TYPES__PREDICATE__PREDICATE_NOT:
        p->op = NANA_PRED_NOT;
        if (pred_of(a, in->not_->predicate, depth + 1, nodes, &p->left, err)) return -1;
        *out = p;
        return 0;
    default:
        return nana_aql_fail(err, E(PROTOCOL_MISSING_FIELD), "a predicate has no condition");
    }
    if (!col || !col->name || !col->name[0])
        return nana_aql_fail(err, E(PROTOCOL_MISSING_FIELD), "a comparison names no column");
    p->field = col->name;
    p->flen = strlen(col->name);
    if (json_of(val, &p->value, &p->vlen, err)) return -1;
    *out = p;
    return 0;
}

/* The whole tree, checked by the store's rules too. */
static int predicate(nana_arena *a, const Amaters__Types__Predicate *in, const nana_pred **out,
                     nana_aql_err *err)
{
    unsigned nodes = 0;
    if (pred_of(a, in, 1, &nodes, out, err)) return -1;
    int rc = nana_pred_check(*out);
    if (rc)
        return nana_aql_fail(err,
                             rc == NANA_ERR_JSON     ? E(VALIDATION_INVALID_VALUE)
                             : rc == NANA_ERR_TOOBIG ? E(VALIDATION_SIZE_EXCEEDED)
                                                     : E(PROTOCOL_INVALID_REQUEST),
                             "%s", nana_errmsg());
    return 0;
}

static int updates(nana_arena *a, const Amaters__Query__UpdateQuery *u, nana_aql_plan *p,
                   nana_aql_err *err)
{
    if (!u->n_updates)
        return nana_aql_fail(err, E(PROTOCOL_MISSING_FIELD), "the update has no updates");
    if (u->n_updates > NANA_UPD_MAX)
        return nana_aql_fail(err, E(VALIDATION_SIZE_EXCEEDED), "more than %d updates",
                             NANA_UPD_MAX);
    p->upd = nana_arena_alloc(a, u->n_updates * sizeof(*p->upd));
    if (!p->upd) return nana_aql_fail(err, E(SERVER_INTERNAL), "out of memory");
    for (size_t i = 0; i < u->n_updates; i++) {
        const Amaters__Types__Update *in = u->updates[i];
        const Amaters__Types__ColumnRef *col = NULL;
        const Amaters__Types__CipherBlob *val = NULL;
        nana_update *o = &p->upd[i];
        switch (in->operation_case) {
        case AMATERS__TYPES__UPDATE__OPERATION_SET:
            o->op = NANA_UPD_SET, col = in->set->column, val = in->set->value;
            break;
        case AMATERS__TYPES__UPDATE__OPERATION_ADD:
            o->op = NANA_UPD_ADD, col = in->add->column, val = in->add->value;
            break;
        case AMATERS__TYPES__UPDATE__OPERATION_MUL:
            o->op = NANA_UPD_MUL, col = in->mul->column, val = in->mul->value;
            break;
        default:
            return nana_aql_fail(err, E(PROTOCOL_MISSING_FIELD), "update %zu has no operation", i);
        }
        if (!col || !col->name || !col->name[0])
            return nana_aql_fail(err, E(PROTOCOL_MISSING_FIELD), "update %zu names no column", i);
        o->field = col->name;
        o->flen = strlen(col->name);
        if (json_of(val, &o->value, &o->vlen, err)) return -1;
    }
    p->nupd = u->n_updates;
    return 0;
}

static void select_init(nana_select *s)
{
    memset(s, 0, sizeof(*s));
    s->limit = -1;
}

int nana_aql_plan_query(nana_arena *a, const Amaters__Query__Query *q, nana_aql_plan *p,
                        nana_aql_err *err)
{
    memset(p, 0, sizeof(*p));
    select_init(&p->sel);
    if (!q) return nana_aql_fail(err, E(PROTOCOL_MISSING_FIELD), "the request has no query");
    switch (q->query_case) {
    case AMATERS__QUERY__QUERY__QUERY_GET:
        p->kind = NANA_AQL_GET;
        p->method = "__getitem__";
        if (collection(q->get->collection, p, err)) return -1;
        return key_of(q->get->key, "key", &p->key, &p->klen, err);
    case AMATERS__QUERY__QUERY__QUERY_SET:
        p->kind = NANA_AQL_SET;
        p->method = "__setitem__";
        if (collection(q->set->collection, p, err) ||
            key_of(q->set->key, "key", &p->key, &p->klen, err))
            return -1;
        return value_of(a, q->set->value, &p->json, &p->jlen, err);
    case AMATERS__QUERY__QUERY__QUERY_DELETE:
        p->kind = NANA_AQL_DELETE;
        p->method = "__delitem__";
        if (collection(q->delete_->collection, p, err)) return -1;
        return key_of(q->delete_->key, "key", &p->key, &p->klen, err);
    case AMATERS__QUERY__QUERY__QUERY_RANGE: {
        const Amaters__Query__RangeQuery *r = q->range;
        p->kind = NANA_AQL_RANGE;
        p->method = "aql_select";
        p->streams = true;
        if (collection(r->collection, p, err)) return -1;
        if (r->start) {
            if (key_of(r->start, "start key", &p->sel.lo, &p->sel.lolen, err)) return -1;
            p->sel.has_lo = true;
        }
        if (r->end) {
            if (key_of(r->end, "end key", &p->sel.hi, &p->sel.hilen, err)) return -1;
            p->sel.has_hi = true;
        }
        if (r->_limit_case == AMATERS__QUERY__RANGE_QUERY___LIMIT_LIMIT) p->sel.limit = r->limit;
        return 0;
    }
    case AMATERS__QUERY__QUERY__QUERY_FILTER: {
        const Amaters__Query__FilterQuery *f = q->filter;
        p->kind = NANA_AQL_FILTER;
        p->method = "aql_select";
        p->streams = true;
        if (collection(f->collection, p, err)) return -1;
        if (f->predicate && predicate(a, f->predicate, &p->sel.pred, err)) return -1;
        if (f->_limit_case == AMATERS__QUERY__FILTER_QUERY___LIMIT_LIMIT) p->sel.limit = f->limit;
        if (f->_offset_case == AMATERS__QUERY__FILTER_QUERY___OFFSET_OFFSET)
            p->sel.offset = f->offset;
        return 0;
    }
    case AMATERS__QUERY__QUERY__QUERY_UPDATE: {
        const Amaters__Query__UpdateQuery *u = q->update;
        p->kind = NANA_AQL_UPDATE;
        p->method = "aql_update";
        if (collection(u->collection, p, err)) return -1;
        if (u->predicate && predicate(a, u->predicate, &p->pred, err)) return -1;
        return updates(a, u, p, err);
    }
    default:
        return nana_aql_fail(err, E(PROTOCOL_MISSING_FIELD), "the query names no operation");
    }
}

int nana_aql_plan_batch(nana_arena *a, Amaters__Query__Query *const *qs, size_t n, nana_aql_plan *p,
                        nana_aql_err *err)
{
    memset(p, 0, sizeof(*p));
    p->kind = NANA_AQL_BATCH;
    p->method = "aql_batch_read";
    if (n > NANA_AQL_MAX_BATCH)
        return nana_aql_fail(err, E(VALIDATION_SIZE_EXCEEDED), "a batch holds at most %d queries",
                             NANA_AQL_MAX_BATCH);
    size_t k = n ? n : 1;
    p->ops = nana_arena_alloc(a, k * sizeof(*p->ops));
    p->colls = nana_arena_alloc(a, k * sizeof(*p->colls));
    p->kinds = nana_arena_alloc(a, k * sizeof(*p->kinds));
    if (!p->ops || !p->colls || !p->kinds)
        return nana_aql_fail(err, E(SERVER_INTERNAL), "out of memory");
    memset(p->ops, 0, k * sizeof(*p->ops));
    for (size_t i = 0; i < n; i++) {
        nana_aql_plan one;
        nana_aql_err e1;
        if (nana_aql_plan_query(a, qs[i], &one, &e1)) {
            *err = e1;
            snprintf(err->message, sizeof(err->message), "query %zu: %.200s", i, e1.message);
            return -1;
        }
        nana_mop *op = &p->ops[i];
        p->kinds[i] = one.kind;
        p->colls[i] = (nana_key){one.collection ? one.collection : "", one.clen};
        op->key = one.key;
        op->klen = one.klen;
        switch (one.kind) {
        case NANA_AQL_GET:
            op->kind = NANA_MOP_GET;
            break;
        case NANA_AQL_SET:
            op->kind = NANA_MOP_SET;
            op->value = one.json;
            op->vlen = one.jlen;
            p->method = "aql_batch";
            break;
        case NANA_AQL_DELETE:
            op->kind = NANA_MOP_DELETE;
            p->method = "aql_batch";
            break;
        case NANA_AQL_RANGE:
        case NANA_AQL_FILTER:
            op->kind = NANA_MOP_SELECT;
            op->sel = one.sel;
            break;
        case NANA_AQL_UPDATE:
            op->kind = NANA_MOP_UPDATE;
            op->pred = one.pred;
            op->u = one.upd;
            op->nu = one.nupd;
            p->method = "aql_batch";
            break;
        case NANA_AQL_BATCH:
            break;
        }
    }
    p->nops = n;
    return 0;
}

void nana_aql_bind(const nana_aql_plan *p, nana_args *out)
{
    memset(out, 0, sizeof(*out));
    switch (p->kind) {
    case NANA_AQL_GET:
    case NANA_AQL_DELETE:
        out->a[0] = (nana_arg){.s = p->key, .n = p->klen, .set = true};
        break;
    case NANA_AQL_SET:
        out->a[0] = (nana_arg){.s = p->key, .n = p->klen, .set = true};
        out->a[1] = (nana_arg){.s = p->json, .n = p->jlen, .set = true};
        break;
    case NANA_AQL_RANGE:
    case NANA_AQL_FILTER:
        out->a[0] = (nana_arg){.p = &p->sel, .set = true};
        break;
    case NANA_AQL_UPDATE:
        out->a[0] = (nana_arg){.p = p->pred, .set = true};
        out->a[1] = (nana_arg){.p = p->upd, .count = p->nupd, .set = true};
        break;
    case NANA_AQL_BATCH:
        out->a[0] = (nana_arg){.p = p->ops, .count = p->nops, .set = true};
        out->a[1] = (nana_arg){.keys = p->colls, .count = p->nops, .set = true};
        break;
    }
}
