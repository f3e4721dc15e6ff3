/*
 * aql.c - the client side of the amaters.aql query service on the
 * server's gRPC door: queries built as protobuf (amaters.query.Query),
 * sent as ExecuteQuery / ExecuteBatch through the same connections, pool
 * and timeouts as every other gRPC call, their answers checked for an
 * ErrorResponse (NANA_CLIENT_EQUERY), and ExecuteStream read as an
 * iterator.
 *
 * The iterator (nana_aql_stream) never holds the whole answer: the
 * server's StreamResponse messages collect in a buffer that the iterator
 * empties one message at a time, and the bytes beyond the first whole
 * message there are credited to the server (QUIC flow control) only when
 * the iterator takes that message. So the client holds one decoded
 * StreamBatch, at most one more whole message, and what one stream window
 * lets the server send ahead.
 */
#include "client_int.h"

#include "amaters/aql.pb-c.h"
#include "h3/nana_h3.h"
#include "util/nana_err.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- small helpers -------------------------------------------------------- */

/* protobuf-c's string fields are char *; ours are only read. */
static char *pb_str(const char *s)
{
    static char empty[1];
    return s ? (char *)(uintptr_t)s : empty;
}

static ProtobufCBinaryData pb_bytes(const uint8_t *p, size_t n)
{
    ProtobufCBinaryData b = {n, (uint8_t *)(uintptr_t)(n ? p : NULL)};
    return b;
}

/* Packs |m| into a malloc'd buffer (*out, the caller's: nana_client_aql_free). */
static int pack_alloc(const ProtobufCMessage *m, uint8_t **out, size_t *len, nana_result *err)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *p = malloc(n ? n : 1);
    if (!p) return nc_result_error(err, NANA_CLIENT_ENOMEM, "out of memory");
    protobuf_c_message_pack(m, p);
    *out = p;
    *len = n;
    return NANA_CLIENT_OK;
}

/* A fresh result for a public function's |out| (NULL: a scratch one). */
static nana_result *begin(nana_result *out, nana_result *tmp)
{
    if (!out) out = tmp;
    memset(out, 0, sizeof(*out));
    return out;
}

void nana_client_aql_free(void *p)
{
    free(p);
}

/* ---- building queries ------------------------------------------------------ */

/* Packs |q| (a Query with one case set) for the caller. */
static int pack_query(Amaters__Query__Query *q, uint8_t **out, size_t *len, nana_result *err)
{
    return pack_alloc(&q->base, out, len, begin(err, &(nana_result){0}));
}

static int need_out(uint8_t **q, size_t *qlen, nana_result *err)
{
    if (!q || !qlen) return nc_result_error(err, NANA_CLIENT_EINVALID, "no place for the query");
    *q = NULL;
    *qlen = 0;
    return NANA_CLIENT_OK;
}

int nana_client_aql_build_get(const char *collection, const uint8_t *key, size_t klen, uint8_t **q,
                              size_t *qlen, nana_result *err)
{
    nana_result tmp;
    err = begin(err, &tmp);
    int rc = need_out(q, qlen, err);
    if (rc) return rc;
    Amaters__Types__Key k;
    amaters__types__key__init(&k);
    k.data = pb_bytes(key, klen);
    Amaters__Query__GetQuery g;
    amaters__query__get_query__init(&g);
    g.collection = pb_str(collection);
    g.key = &k;
    Amaters__Query__Query m;
    amaters__query__query__init(&m);
    m.query_case = AMATERS__QUERY__QUERY__QUERY_GET;
    m.get = &g;
    rc = pack_query(&m, q, qlen, err);
    if (err == &tmp) nana_result_free(&tmp);
    return rc;
}

int nana_client_aql_build_set(const char *collection, const uint8_t *key, size_t klen,
                              const uint8_t *value, size_t vlen, uint8_t **q, size_t *qlen,
                              nana_result *err)
{
    nana_result tmp;
    err = begin(err, &tmp);
    int rc = need_out(q, qlen, err);
    if (rc) return rc;
    Amaters__Types__Key k;
    amaters__types__key__init(&k);
    k.data = pb_bytes(key, klen);
    Amaters__Types__CipherBlob v;
    amaters__types__cipher_blob__init(&v);
    v.data = pb_bytes(value, vlen);
    Amaters__Query__SetQuery s;
    amaters__query__set_query__init(&s);
    s.collection = pb_str(collection);
    s.key = &k;
    s.value = &v;
    Amaters__Query__Query m;
    amaters__query__query__init(&m);
    m.query_case = AMATERS__QUERY__QUERY__QUERY_SET;
    m.set = &s;
    rc = pack_query(&m, q, qlen, err);
    if (err == &tmp) nana_result_free(&tmp);
    return rc;
}

int nana_client_aql_build_delete(const char *collection, const uint8_t *key, size_t klen,
                                 uint8_t **q, size_t *qlen, nana_result *err)
{
    nana_result tmp;
    err = begin(err, &tmp);
    int rc = need_out(q, qlen, err);
    if (rc) return rc;
    Amaters__Types__Key k;
    amaters__types__key__init(&k);
    k.data = pb_bytes(key, klen);
    Amaters__Query__DeleteQuery d;
    amaters__query__delete_query__init(&d);
    d.collection = pb_str(collection);
    d.key = &k;
    Amaters__Query__Query m;
    amaters__query__query__init(&m);
    m.query_case = AMATERS__QUERY__QUERY__QUERY_DELETE;
    m.delete_ = &d;
    rc = pack_query(&m, q, qlen, err);
    if (err == &tmp) nana_result_free(&tmp);
    return rc;
}

int nana_client_aql_build_range(const char *collection, const uint8_t *start, size_t slen,
                                const uint8_t *end, size_t elen, int64_t limit, uint8_t **q,
                                size_t *qlen, nana_result *err)
{
    nana_result tmp;
    err = begin(err, &tmp);
    int rc = need_out(q, qlen, err);
    if (!rc && limit > (int64_t)UINT32_MAX)
        rc = nc_result_error(err, NANA_CLIENT_EINVALID, "the limit is above 4294967295");
    if (rc) return rc;
    Amaters__Types__Key s, e;
    amaters__types__key__init(&s);
    amaters__types__key__init(&e);
    s.data = pb_bytes(start, slen);
    e.data = pb_bytes(end, elen);
    Amaters__Query__RangeQuery r;
    amaters__query__range_query__init(&r);
    r.collection = pb_str(collection);
    r.start = &s;
    r.end = &e;
    if (limit >= 0) {
        r._limit_case = AMATERS__QUERY__RANGE_QUERY___LIMIT_LIMIT;
        r.limit = (uint32_t)limit;
    }
    Amaters__Query__Query m;
    amaters__query__query__init(&m);
    m.query_case = AMATERS__QUERY__QUERY__QUERY_RANGE;
    m.range = &r;
    rc = pack_query(&m, q, qlen, err);
    if (err == &tmp) nana_result_free(&tmp);
    return rc;
}

/* The predicate of a filter or update: text |where|, or serialized |pred|
 * (checked by parsing it). *out is the caller's (free_unpacked). */
static int get_pred(const char *where, const uint8_t *pred, size_t plen,
                    Amaters__Types__Predicate **out, nana_result *err)
{
    nana_buf b;
    nana_buf_init(&b, 0);
    if (where) {
        int rc = ncq_pred_parse(where, strlen(where), &b);
        if (rc) {
            nana_buf_free(&b);
            return nc_result_error(err,
                                   rc == NANA_ERR_NOMEM ? NANA_CLIENT_ENOMEM : NANA_CLIENT_EINVALID,
                                   "the predicate: %s", nana_errmsg());
        }
        pred = (const uint8_t *)b.data;
        plen = b.len;
    } else if (!pred && plen) {
        return nc_result_error(err, NANA_CLIENT_EINVALID, "no predicate");
    }
    *out = amaters__types__predicate__unpack(NULL, plen, pred ? pred : (const uint8_t *)"");
    nana_buf_free(&b);
    if (!*out)
        return nc_result_error(err, NANA_CLIENT_EINVALID,
                               "the predicate is not a serialized amaters.types.Predicate");
    return NANA_CLIENT_OK;
}

int nana_client_aql_build_filter(const char *collection, const char *where, const uint8_t *pred,
                                 size_t plen, int64_t limit, int64_t offset, uint8_t **q,
                                 size_t *qlen, nana_result *err)
{
    nana_result tmp;
    err = begin(err, &tmp);
    int rc = need_out(q, qlen, err);
    if (!rc && (limit > (int64_t)UINT32_MAX || offset > (int64_t)UINT32_MAX))
        rc = nc_result_error(err, NANA_CLIENT_EINVALID, "the limit or offset is above 4294967295");
    Amaters__Types__Predicate *p = NULL;
    if (!rc) rc = get_pred(where, pred, plen, &p, err);
    if (rc) return rc;
    Amaters__Query__FilterQuery f;
    amaters__query__filter_query__init(&f);
    f.collection = pb_str(collection);
    f.predicate = p;
    if (limit >= 0) {
        f._limit_case = AMATERS__QUERY__FILTER_QUERY___LIMIT_LIMIT;
        f.limit = (uint32_t)limit;
    }
    if (offset >= 0) {
        f._offset_case = AMATERS__QUERY__FILTER_QUERY___OFFSET_OFFSET;
        f.offset = (uint32_t)offset;
    }
    Amaters__Query__Query m;
    amaters__query__query__init(&m);
    m.query_case = AMATERS__QUERY__QUERY__QUERY_FILTER;
    m.filter = &f;
    rc = pack_query(&m, q, qlen, err);
    amaters__types__predicate__free_unpacked(p, NULL);
    if (err == &tmp) nana_result_free(&tmp);
    return rc;
}

int nana_client_aql_build_update(const char *collection, const char *where, const uint8_t *pred,
                                 size_t plen, const nana_aql_update *ups, size_t nups, uint8_t **q,
                                 size_t *qlen, nana_result *err)
{
    nana_result tmp;
    err = begin(err, &tmp);
    int rc = need_out(q, qlen, err);
    if (!rc && (!nups || !ups))
        rc = nc_result_error(err, NANA_CLIENT_EINVALID, "an update needs at least one change");
    if (!rc && nups > NANA_AQL_MAX_UPDATES)
        rc = nc_result_error(err, NANA_CLIENT_EINVALID, "%zu changes, the limit is %d", nups,
                             NANA_AQL_MAX_UPDATES);
    for (size_t i = 0; !rc && i < nups; i++) {
        if (ups[i].op < NANA_AQL_UPDATE_SET || ups[i].op > NANA_AQL_UPDATE_MUL || !ups[i].field ||
            !*ups[i].field || !ups[i].value_json)
            rc = nc_result_error(err, NANA_CLIENT_EINVALID,
                                 "change %zu needs an operation (set, add, mul), a field and a "
                                 "JSON value",
                                 i + 1);
    }
    Amaters__Types__Predicate *p = NULL;
    if (!rc) rc = get_pred(where, pred, plen, &p, err);
    if (rc) return rc;
    Amaters__Types__Update *u = calloc(nups, sizeof(*u));
    Amaters__Types__Update **up = calloc(nups, sizeof(*up));
    Amaters__Types__SetUpdate *ch = calloc(nups, sizeof(*ch)); /* Add and Mul: one layout */
    Amaters__Types__ColumnRef *col = calloc(nups, sizeof(*col));
    Amaters__Types__CipherBlob *val = calloc(nups, sizeof(*val));
    if (!u || !up || !ch || !col || !val) {
        rc = nc_result_error(err, NANA_CLIENT_ENOMEM, "out of memory");
    } else {
        for (size_t i = 0; i < nups; i++) {
            amaters__types__update__init(&u[i]);
            amaters__types__set_update__init(&ch[i]);
            amaters__types__column_ref__init(&col[i]);
            amaters__types__cipher_blob__init(&val[i]);
            col[i].name = pb_str(ups[i].field);
            val[i].data = pb_bytes((const uint8_t *)ups[i].value_json, strlen(ups[i].value_json));
            ch[i].column = &col[i];
            ch[i].value = &val[i];
            if (ups[i].op == NANA_AQL_UPDATE_ADD)
                ch[i].base.descriptor = &amaters__types__add_update__descriptor;
            else if (ups[i].op == NANA_AQL_UPDATE_MUL)
                ch[i].base.descriptor = &amaters__types__mul_update__descriptor;
            u[i].operation_case = (Amaters__Types__Update__OperationCase)ups[i].op;
            u[i].set = &ch[i]; /* the union's members are all one pointer */
            up[i] = &u[i];
        }
        Amaters__Query__UpdateQuery uq;
        amaters__query__update_query__init(&uq);
        uq.collection = pb_str(collection);
        uq.predicate = p;
        uq.n_updates = nups;
        uq.updates = up;
        Amaters__Query__Query m;
        amaters__query__query__init(&m);
        m.query_case = AMATERS__QUERY__QUERY__QUERY_UPDATE;
        m.update = &uq;
        rc = pack_query(&m, q, qlen, err);
    }
    free(u);
    free(up);
    free(ch);
    free(col);
    free(val);
    amaters__types__predicate__free_unpacked(p, NULL);
    if (err == &tmp) nana_result_free(&tmp);
    return rc;
}

int nana_client_aql_request(const uint8_t *query, size_t qlen, uint32_t timeout_ms, uint8_t **req,
                            size_t *rlen, nana_result *err)
{
    nana_result tmp;
    err = begin(err, &tmp);
    int rc = need_out(req, rlen, err);
    Amaters__Query__Query *q = NULL;
    if (!rc) {
        q = amaters__query__query__unpack(NULL, qlen, query ? query : (const uint8_t *)"");
        if (!q)
            rc = nc_result_error(err, NANA_CLIENT_EINVALID,
                                 "the query is not a serialized amaters.query.Query");
    }
    if (!rc) {
        Amaters__Aql__QueryRequest m;
        amaters__aql__query_request__init(&m);
        m.query = q;
        if (timeout_ms) {
            m._timeout_ms_case = AMATERS__AQL__QUERY_REQUEST___TIMEOUT_MS_TIMEOUT_MS;
            m.timeout_ms = timeout_ms;
        }
        rc = pack_alloc(&m.base, req, rlen, err);
    }
    amaters__query__query__free_unpacked(q, NULL);
    if (err == &tmp) nana_result_free(&tmp);
    return rc;
}

int nana_client_aql_parse_predicate(const char *text, uint8_t **pred, size_t *plen,
                                    nana_result *err)
{
    nana_result tmp;
    err = begin(err, &tmp);
    int rc = need_out(pred, plen, err);
    if (!rc && !text) rc = nc_result_error(err, NANA_CLIENT_EINVALID, "no predicate text");
    if (rc) return rc;
    nana_buf b;
    nana_buf_init(&b, 0);
    int prc = ncq_pred_parse(text, strlen(text), &b);
    if (prc) {
        nana_buf_free(&b);
        rc = nc_result_error(err, prc == NANA_ERR_NOMEM ? NANA_CLIENT_ENOMEM : NANA_CLIENT_EINVALID,
                             "%s", nana_errmsg());
    } else {
        if (!b.data && nana_buf_reserve(&b, 1)) {
            rc = nc_result_error(err, NANA_CLIENT_ENOMEM, "out of memory");
        } else {
            *plen = b.len;
            *pred = (uint8_t *)nana_buf_detach(&b, NULL);
        }
    }
    if (err == &tmp) nana_result_free(&tmp);
    return rc;
}

/* ---- answers ---------------------------------------------------------------- */

/* The name of an ErrorCode ("ERROR_VALIDATION_INVALID_KEY"), or NULL. */
static const char *error_code_name(int code)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&amaters__errors__error_code__descriptor, code);
    return v ? v->name : NULL;
}

/* Sets |out| to EQUERY from an ErrorResponse. */
static int query_error(nana_result *out, const Amaters__Errors__ErrorResponse *e)
{
    const char *name = error_code_name(e->code);
    char num[16];
    snprintf(num, sizeof(num), "%d", (int)e->code);
    nana_result_free(out);
    out->status = NANA_CLIENT_EQUERY;
    out->error_type = strdup(name ? name : "ERROR_UNKNOWN");
    out->message = strdup(e->message ? e->message : "");
    out->code = strdup(num);
    if (!out->error_type || !out->message || !out->code) {
        nana_result_free(out);
        return nc_result_error(out, NANA_CLIENT_ENOMEM, "out of memory");
    }
    return NANA_CLIENT_EQUERY;
}

/*
 * After an ExecuteQuery / ExecuteBatch call: moves the answer's bytes
 * from out->json into *resp (when wanted), and turns an ErrorResponse in
 * it into EQUERY. Returns out->status.
 */
static int finish_answer(int batch, nana_result *out, uint8_t **resp, size_t *rlen)
{
    if (out->status != NANA_CLIENT_OK) return out->status;
    uint8_t *m = (uint8_t *)out->json;
    size_t n = out->json_len;
    out->json = NULL;
    out->json_len = 0;
    const Amaters__Errors__ErrorResponse *e = NULL;
    ProtobufCMessage *pm =
        protobuf_c_message_unpack(batch ? &amaters__aql__batch_response__descriptor
                                        : &amaters__aql__query_response__descriptor,
                                  NULL, n, m);
    int rc = NANA_CLIENT_OK;
    if (!pm) {
        rc = nc_result_error(out, NANA_CLIENT_EPROTOCOL, "the server's %s does not parse",
                             batch ? "BatchResponse" : "QueryResponse");
    } else if (batch) {
        const Amaters__Aql__BatchResponse *b = (const Amaters__Aql__BatchResponse *)pm;
        if (b->response_case == AMATERS__AQL__BATCH_RESPONSE__RESPONSE_ERROR) e = b->error;
    } else {
        const Amaters__Aql__QueryResponse *q = (const Amaters__Aql__QueryResponse *)pm;
        if (q->response_case == AMATERS__AQL__QUERY_RESPONSE__RESPONSE_ERROR) e = q->error;
    }
    if (e) rc = query_error(out, e);
    if (pm) protobuf_c_message_free_unpacked(pm, NULL);
    if (resp && rc != NANA_CLIENT_EPROTOCOL) {
        *resp = m;
        *rlen = n;
    } else {
        free(m);
    }
    return rc;
}

/* Runs one AQL unary call through |submit| (client or pool). */
int ncq_run(nc_submit_fn submit, void *target, nc_kind kind, const uint8_t *body, size_t len,
            const nana_call_opts *co, uint8_t **resp, size_t *rlen, nana_result *out)
{
    nana_result tmp;
    out = begin(out, &tmp);
    if (resp) {
        if (!rlen) return nc_result_error(out, NANA_CLIENT_EINVALID, "no place for the length");
        *resp = NULL;
        *rlen = 0;
    }
    nc_call_args a = {.target = target, .kind = kind, .co = co, .body = body, .body_len = len};
    nc_blocking(submit, &a, out);
    int rc = finish_answer(kind == NC_AQL_BATCH, out, resp, rlen);
    if (out == &tmp) nana_result_free(&tmp);
    return rc;
}

static int submit_client(void *ctx, nana_client_done_fn done, void *ud, nana_result *err)
{
    nc_call_args *a = ctx;
    return nc_submit(a->target, a, done, ud, 0, err);
}

int nana_client_aql_execute(nana_client *c, const uint8_t *req, size_t len,
                            const nana_call_opts *co, uint8_t **resp, size_t *rlen,
                            nana_result *out)
{
    return ncq_run(submit_client, c, NC_AQL_QUERY, req, len, co, resp, rlen, out);
}

/* A BatchRequest of |n| serialized queries. */
static int build_batch(const uint8_t *const *queries, const size_t *lens, size_t n, nana_buf *out,
                       nana_result *err)
{
    if (!n || !queries || !lens)
        return nc_result_error(err, NANA_CLIENT_EINVALID, "a batch needs at least one query");
    if (n > NANA_AQL_MAX_BATCH)
        return nc_result_error(err, NANA_CLIENT_EINVALID, "%zu queries, the limit is %d", n,
                               NANA_AQL_MAX_BATCH);
    Amaters__Query__Query **qs = calloc(n, sizeof(*qs));
    if (!qs) return nc_result_error(err, NANA_CLIENT_ENOMEM, "out of memory");
    int rc = NANA_CLIENT_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        qs[i] = amaters__query__query__unpack(NULL, lens[i],
                                              queries[i] ? queries[i] : (const uint8_t *)"");
        if (!qs[i])
            rc = nc_result_error(err, NANA_CLIENT_EINVALID,
                                 "query %zu is not a serialized amaters.query.Query", i + 1);
    }
    if (!rc) {
        Amaters__Aql__BatchRequest m;
        amaters__aql__batch_request__init(&m);
        m.n_queries = n;
        m.queries = qs;
        size_t len = protobuf_c_message_get_packed_size(&m.base);
        nana_buf_reset(out);
        if (nana_buf_reserve(out, len + 1)) {
            rc = nc_result_error(err, NANA_CLIENT_ENOMEM, "out of memory");
        } else {
            protobuf_c_message_pack(&m.base, (uint8_t *)out->data);
            out->len = len;
        }
    }
    for (size_t i = 0; i < n; i++)
        amaters__query__query__free_unpacked(qs[i], NULL);
    free(qs);
    return rc;
}

/* ExecuteBatch through |submit|. */
int ncq_run_batch(nc_submit_fn submit, void *target, const uint8_t *const *queries,
                  const size_t *lens, size_t n, const nana_call_opts *co, uint8_t **resp,
                  size_t *rlen, nana_result *out)
{
    nana_result tmp;
    nana_result *o = begin(out, &tmp);
    nana_buf b;
    nana_buf_init(&b, 0);
    int rc = build_batch(queries, lens, n, &b, o);
    if (!rc)
        rc = ncq_run(submit, target, NC_AQL_BATCH, (const uint8_t *)b.data, b.len, co, resp, rlen,
                     o);
    nana_buf_free(&b);
    if (o == &tmp) nana_result_free(&tmp);
    return rc;
}

int nana_client_aql_batch(nana_client *c, const uint8_t *const *queries, const size_t *lens,
                          size_t n, const nana_call_opts *co, uint8_t **resp, size_t *rlen,
                          nana_result *out)
{
    return ncq_run_batch(submit_client, c, queries, lens, n, co, resp, rlen, out);
}

/* Builds a QueryRequest around |q| and runs it; frees |q|. */
static int run_query(nana_client *c, uint8_t *q, size_t qlen, const nana_call_opts *co,
                     uint8_t **resp, size_t *rlen, nana_result *out)
{
    uint8_t *req = NULL;
    size_t len = 0;
    int rc = nana_client_aql_request(q, qlen, 0, &req, &len, out);
    free(q);
    if (!rc) rc = nana_client_aql_execute(c, req, len, co, resp, rlen, out);
    free(req);
    return rc;
}

/* The QueryResult of a QueryResponse |m| (unpacked into *qr, the caller's). */
static int unpack_result(const uint8_t *m, size_t n, Amaters__Aql__QueryResponse **qr,
                         nana_result *out)
{
    *qr = amaters__aql__query_response__unpack(NULL, n, m);
    if (!*qr || (*qr)->response_case != AMATERS__AQL__QUERY_RESPONSE__RESPONSE_RESULT ||
        !(*qr)->result) {
        amaters__aql__query_response__free_unpacked(*qr, NULL);
        *qr = NULL;
        return nc_result_error(out, NANA_CLIENT_EPROTOCOL,
                               "the server's QueryResponse has no result");
    }
    return NANA_CLIENT_OK;
}

/* A malloc'd copy of |n| bytes (never NULL on success, even for 0). */
static uint8_t *dup_bytes(const uint8_t *p, size_t n)
{
    uint8_t *d = malloc(n ? n : 1);
    if (d && n) memcpy(d, p, n);
    return d;
}

int nana_client_aql_get(nana_client *c, const char *collection, const uint8_t *key, size_t klen,
                        const nana_call_opts *co, uint8_t **value, size_t *vlen, nana_result *out)
{
    nana_result tmp;
    out = begin(out, &tmp);
    if (!value || !vlen)
        return nc_result_error(out, NANA_CLIENT_EINVALID, "no place for the value");
    *value = NULL;
    *vlen = 0;
    uint8_t *q = NULL, *resp = NULL;
    size_t qlen = 0, rlen = 0;
    int rc = nana_client_aql_build_get(collection, key, klen, &q, &qlen, out);
    if (!rc) rc = run_query(c, q, qlen, co, &resp, &rlen, out);
    Amaters__Aql__QueryResponse *qr = NULL;
    if (!rc) rc = unpack_result(resp, rlen, &qr, out);
    if (!rc) {
        const Amaters__Query__QueryResult *r = qr->result;
        if (r->result_case != AMATERS__QUERY__QUERY_RESULT__RESULT_SINGLE || !r->single) {
            rc = nc_result_error(out, NANA_CLIENT_EPROTOCOL, "a get's answer is not one value");
        } else if (r->single->_value_case == AMATERS__QUERY__SINGLE_RESULT___VALUE_VALUE &&
                   r->single->value) {
            const ProtobufCBinaryData *d = &r->single->value->data;
            *value = dup_bytes(d->data, d->len);
            if (!*value)
                rc = nc_result_error(out, NANA_CLIENT_ENOMEM, "out of memory");
            else
                *vlen = d->len;
        }
    }
    amaters__aql__query_response__free_unpacked(qr, NULL);
    free(resp);
    if (out == &tmp) nana_result_free(&tmp);
    return rc;
}

/* Runs query |q| (freed) whose answer is a SuccessResult: *affected. */
static int run_success(nana_client *c, int brc, uint8_t *q, size_t qlen, const nana_call_opts *co,
                       uint64_t *affected, nana_result *out)
{
    if (affected) *affected = 0;
    if (brc) return brc;
    uint8_t *resp = NULL;
    size_t rlen = 0;
    int rc = run_query(c, q, qlen, co, &resp, &rlen, out);
    Amaters__Aql__QueryResponse *qr = NULL;
    if (!rc) rc = unpack_result(resp, rlen, &qr, out);
    if (!rc) {
        const Amaters__Query__QueryResult *r = qr->result;
        if (r->result_case != AMATERS__QUERY__QUERY_RESULT__RESULT_SUCCESS || !r->success)
            rc = nc_result_error(out, NANA_CLIENT_EPROTOCOL, "the answer is not a success count");
        else if (affected)
            *affected = r->success->affected_rows;
    }
    amaters__aql__query_response__free_unpacked(qr, NULL);
    free(resp);
    return rc;
}

int nana_client_aql_set(nana_client *c, const char *collection, const uint8_t *key, size_t klen,
                        const uint8_t *value, size_t vlen, const nana_call_opts *co,
                        nana_result *out)
{
    nana_result tmp;
    out = begin(out, &tmp);
    uint8_t *q = NULL;
    size_t qlen = 0;
    int rc = nana_client_aql_build_set(collection, key, klen, value, vlen, &q, &qlen, out);
    rc = run_success(c, rc, q, qlen, co, NULL, out);
    if (out == &tmp) nana_result_free(&tmp);
    return rc;
}

int nana_client_aql_delete(nana_client *c, const char *collection, const uint8_t *key, size_t klen,
                           const nana_call_opts *co, uint64_t *deleted, nana_result *out)
{
    nana_result tmp;
    out = begin(out, &tmp);
    uint8_t *q = NULL;
    size_t qlen = 0;
    int rc = nana_client_aql_build_delete(collection, key, klen, &q, &qlen, out);
    rc = run_success(c, rc, q, qlen, co, deleted, out);
    if (out == &tmp) nana_result_free(&tmp);
    return rc;
}

int nana_client_aql_update(nana_client *c, const char *collection, const char *where,
                           const uint8_t *pred, size_t plen, const nana_aql_update *ups,
                           size_t nups, const nana_call_opts *co, uint64_t *affected,
                           nana_result *out)
{
    nana_result tmp;
    out = begin(out, &tmp);
    uint8_t *q = NULL;
    size_t qlen = 0;
    int rc = nana_client_aql_build_update(collection, where, pred, plen, ups, nups, &q, &qlen, out);
    rc = run_success(c, rc, q, qlen, co, affected, out);
    if (out == &tmp) nana_result_free(&tmp);
    return rc;
}

void nana_client_aql_rows_free(nana_aql_rows *r)
{
    if (!r) return;
    for (size_t i = 0; r->rows && i < r->count; i++) {
        free(r->rows[i].key);
        free(r->rows[i].value);
    }
    free(r->rows);
    r->rows = NULL;
    r->count = 0;
}

/* Runs query |q| (freed) whose answer is a MultiResult: *rows. */
static int run_rows(nana_client *c, int brc, uint8_t *q, size_t qlen, const nana_call_opts *co,
                    nana_aql_rows *rows, nana_result *out)
{
    if (brc) return brc;
    uint8_t *resp = NULL;
    size_t rlen = 0;
    int rc = run_query(c, q, qlen, co, &resp, &rlen, out);
    Amaters__Aql__QueryResponse *qr = NULL;
    if (!rc) rc = unpack_result(resp, rlen, &qr, out);
    if (!rc) {
        const Amaters__Query__QueryResult *r = qr->result;
        if (r->result_case != AMATERS__QUERY__QUERY_RESULT__RESULT_MULTI || !r->multi) {
            rc = nc_result_error(out, NANA_CLIENT_EPROTOCOL, "the answer is not a list of rows");
        } else if (r->multi->n_values) {
            size_t n = r->multi->n_values;
            rows->rows = calloc(n, sizeof(*rows->rows));
            if (!rows->rows) rc = nc_result_error(out, NANA_CLIENT_ENOMEM, "out of memory");
            for (size_t i = 0; !rc && i < n; i++) {
                const Amaters__Query__KeyValue *kv = r->multi->values[i];
                ProtobufCBinaryData k = kv->key ? kv->key->data : pb_bytes(NULL, 0);
                ProtobufCBinaryData v = kv->value ? kv->value->data : pb_bytes(NULL, 0);
                nana_aql_row *row = &rows->rows[rows->count];
                row->key = dup_bytes(k.data, k.len);
                row->value = dup_bytes(v.data, v.len);
                row->key_len = k.len;
                row->value_len = v.len;
                rows->count++;
                if (!row->key || !row->value)
                    rc = nc_result_error(out, NANA_CLIENT_ENOMEM, "out of memory");
            }
            if (rc) nana_client_aql_rows_free(rows);
        }
    }
    amaters__aql__query_response__free_unpacked(qr, NULL);
    free(resp);
    return rc;
}

int nana_client_aql_range(nana_client *c, const char *collection, const uint8_t *start, size_t slen,
                          const uint8_t *end, size_t elen, int64_t limit, const nana_call_opts *co,
                          nana_aql_rows *rows, nana_result *out)
{
    nana_result tmp;
    out = begin(out, &tmp);
    if (!rows) return nc_result_error(out, NANA_CLIENT_EINVALID, "no place for the rows");
    memset(rows, 0, sizeof(*rows));
    uint8_t *q = NULL;
    size_t qlen = 0;
    int rc = nana_client_aql_build_range(collection, start, slen, end, elen, limit, &q, &qlen, out);
    rc = run_rows(c, rc, q, qlen, co, rows, out);
    if (out == &tmp) nana_result_free(&tmp);
    return rc;
}

int nana_client_aql_filter(nana_client *c, const char *collection, const char *where,
                           const uint8_t *pred, size_t plen, int64_t limit, int64_t offset,
                           const nana_call_opts *co, nana_aql_rows *rows, nana_result *out)
{
    nana_result tmp;
    out = begin(out, &tmp);
    if (!rows) return nc_result_error(out, NANA_CLIENT_EINVALID, "no place for the rows");
    memset(rows, 0, sizeof(*rows));
    uint8_t *q = NULL;
    size_t qlen = 0;
    int rc =
        nana_client_aql_build_filter(collection, where, pred, plen, limit, offset, &q, &qlen, out);
    rc = run_rows(c, rc, q, qlen, co, rows, out);
    if (out == &tmp) nana_result_free(&tmp);
    return rc;
}

/* ---- streams ----------------------------------------------------------------- */

struct nc_stream {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs; /* the call's and the iterator's */
    /* the call's side (set under the client's lock, read under mu) */
    nana_client *client;
    nc_call *call; /* while the call lives (client lock) */
    nc_rt *rt;
    nana_quic_handle h;
    int64_t sid;
    bool sent;
    unsigned wait_ms;
    /* what arrived: in.data[off..in.len); bytes up to |credited| (an
     * offset into in.data) were credited */
    nana_buf in;
    size_t off, credited;
    size_t max_msg;
    bool ended;   /* the call finished: |final| says how */
    bool closing; /* the iterator is closed: every byte is credited at once */
    nana_result final;
};

struct nana_aql_stream {
    nc_stream *st;
    Amaters__Aql__StreamResponse *cur; /* the batch being handed out */
    size_t next;                       /* its next pair */
    bool done;                         /* StreamEnd seen, or failed */
    uint64_t total;
};

static void ncs_unref(nc_stream *st)
{
    pthread_mutex_lock(&st->mu);
    bool last = --st->refs == 0;
    pthread_mutex_unlock(&st->mu);
    if (!last) return;
    nana_buf_free(&st->in);
    nana_result_free(&st->final);
    pthread_mutex_destroy(&st->mu);
    pthread_cond_destroy(&st->cv);
    free(st);
}

void ncs_sent(nc_stream *st, nc_rt *rt, nana_quic_handle h, int64_t sid)
{
    pthread_mutex_lock(&st->mu);
    st->rt = rt;
    st->h = h;
    st->sid = sid;
    st->sent = true;
    pthread_mutex_unlock(&st->mu);
}

void ncs_set_call(nc_stream *st, nana_client *c, nc_call *call, unsigned wait_ms)
{
    if (call) {
        st->client = c;
        st->wait_ms = wait_ms;
    }
    st->call = call;
}

nc_call *ncs_call(const nc_stream *st)
{
    return st->call;
}

/* The end (offset into in.data) of the first whole message after |off|,
 * or 0 when there is none yet. */
static size_t first_end(const nc_stream *st)
{
    size_t have = st->in.len - st->off;
    if (have < 5) return 0;
    const uint8_t *p = (const uint8_t *)st->in.data + st->off;
    size_t n = (size_t)p[1] << 24 | (size_t)p[2] << 16 | (size_t)p[3] << 8 | p[4];
    return have - 5 >= n ? st->off + 5 + n : 0;
}

/* Bytes that may be credited now: all when closing; else up to the end of
 * the first whole message, or everything when there is none (the next
 * message needs them). Advances |credited|. mu held. */
static size_t creditable(nc_stream *st)
{
    size_t upto = st->in.len;
    size_t e = st->closing ? 0 : first_end(st);
    if (e) upto = e;
    if (upto <= st->credited) return 0;
    size_t n = upto - st->credited;
    st->credited = upto;
    return n;
}

long long ncs_feed(nc_stream *st, const uint8_t *data, size_t len, size_t max_msg)
{
    pthread_mutex_lock(&st->mu);
    long long rc;
    if (st->closing) {
        rc = (long long)len;
    } else if (nana_buf_append(&st->in, data, len)) {
        rc = -1;
    } else {
        rc = (long long)creditable(st);
        size_t have = st->in.len - st->off;
        if (!first_end(st) && have >= 5) {
            const uint8_t *p = (const uint8_t *)st->in.data + st->off;
            size_t n = (size_t)p[1] << 24 | (size_t)p[2] << 16 | (size_t)p[3] << 8 | p[4];
            if (n > max_msg) rc = -2;
        }
        pthread_cond_broadcast(&st->cv);
    }
    pthread_mutex_unlock(&st->mu);
    return rc;
}

/* Posted: credits |n| bytes of a stream. */
typedef struct credit_req {
    nc_rt *rt;
    nana_quic_handle h;
    int64_t sid;
    uint64_t n;
} credit_req;

/* On the I/O thread: the stream's connection (HTTP/3, or HTTP/2 when its
 * handle says so) gives the server the window. */
static void credit_post(nana_quic_conn *qc, void *arg)
{
    credit_req *r = arg;
    nana_h3_conn *hc = qc ? nana_h3_of(qc) : NULL;
    if (hc)
        (void)nana_h3_consume(hc, r->sid, r->n);
    else if (r->h & NC_H2_HANDLE_BIT)
        nch2_credit(r->rt, r->h, r->sid, r->n);
    free(r);
}

/* Gives the server |n| more bytes of window on the stream (caller's thread). */
static void credit(nc_stream *st, nana_quic_handle h, int64_t sid, size_t n)
{
    if (!n) return;
    credit_req *r = malloc(sizeof(*r));
    if (!r) return; /* the window stays smaller; the call's timeout ends a stall */
    r->rt = st->rt;
    r->h = h;
    r->sid = sid;
    r->n = n;
    if (nc_rt_post(st->rt, h, credit_post, r)) free(r);
}

/* The call finished (a library thread): records how, wakes the iterator. */
static void stream_done(void *ud, nana_result *r)
{
    nc_stream *st = ud;
    pthread_mutex_lock(&st->mu);
    st->final = *r;
    st->ended = true;
    pthread_cond_broadcast(&st->cv);
    pthread_mutex_unlock(&st->mu);
    ncs_unref(st);
}

/* Opens a stream through |submit| (client or pool). */
int ncq_stream_open(nc_submit_fn submit, void *target, const uint8_t *req, size_t len,
                    const nana_call_opts *co, nana_aql_stream **it, nana_result *out)
{
    nana_result tmp;
    out = begin(out, &tmp);
    int rc = NANA_CLIENT_OK;
    if (!it) return nc_result_error(out, NANA_CLIENT_EINVALID, "no place for the iterator");
    *it = NULL;
    nana_aql_stream *s = calloc(1, sizeof(*s));
    nc_stream *st = calloc(1, sizeof(*st));
    if (!s || !st) {
        free(s);
        free(st);
        rc = nc_result_error(out, NANA_CLIENT_ENOMEM, "out of memory");
        if (out == &tmp) nana_result_free(&tmp);
        return rc;
    }
    pthread_mutex_init(&st->mu, NULL);
    nana_cond_init_monotonic(&st->cv);
    nana_buf_init(&st->in, 0);
    st->refs = 2;
    st->sid = -1;
    s->st = st;
    nc_call_args a = {.target = target,
                      .kind = NC_AQL_STREAM,
                      .co = co,
                      .body = req,
                      .body_len = len,
                      .stream = st};
    /* submit_fn's (done, ud) are the stream's own; the blocking helper is
     * not used: the call lives on while the iterator reads. */
    rc = submit(&a, stream_done, st, out);
    if (rc) {
        st->refs = 1; /* no call: stream_done never runs */
        ncs_unref(st);
        free(s);
        if (out == &tmp) nana_result_free(&tmp);
        return rc;
    }
    *it = s;
    if (out == &tmp) nana_result_free(&tmp);
    return NANA_CLIENT_OK;
}

int nana_client_aql_stream_open(nana_client *c, const uint8_t *req, size_t len,
                                const nana_call_opts *co, nana_aql_stream **it, nana_result *out)
{
    return ncq_stream_open(submit_client, c, req, len, co, it, out);
}

/*
 * Takes the next message off the stream into s->cur, waiting up to the
 * call's timeout. 1 with a message, 0 when the call ended with none left
 * (err says how, when it failed), -1 on a failure of its own (err).
 */
static int take_message(nana_aql_stream *s, nana_result *err)
{
    nc_stream *st = s->st;
    pthread_mutex_lock(&st->mu);
    struct timespec until = nana_timespec_at(
        nana_now_ns() + (uint64_t)(st->wait_ms ? st->wait_ms : 30000) * 1000000ull);
    size_t e;
    while (!(e = first_end(st)) && !st->ended) {
        int w = pthread_cond_timedwait(&st->cv, &st->mu, &until);
        if (w == ETIMEDOUT && !first_end(st) && !st->ended) {
            pthread_mutex_unlock(&st->mu);
            nc_result_set(err, NANA_CLIENT_ETIMEOUT,
                          "no stream message within %u ms (the query may still run)", st->wait_ms);
            return -1;
        }
    }
    if (!e) {
        int status = st->final.status;
        bool leftover = st->in.len > st->off;
        if (status != NANA_CLIENT_OK) {
            nana_result_free(err);
            *err = st->final;
            memset(&st->final, 0, sizeof(st->final));
            st->final.status = status;
            if (!err->error_type && !err->message) nc_result_set(err, status, "the stream failed");
        } else if (leftover) {
            nc_result_set(err, NANA_CLIENT_EPROTOCOL, "the stream ended inside a message");
        }
        pthread_mutex_unlock(&st->mu);
        return err->status ? -1 : 0;
    }
    const uint8_t *p = (const uint8_t *)st->in.data + st->off;
    int rc = 1;
    if (p[0] != 0) {
        rc = -1;
        nc_result_set(err, NANA_CLIENT_EPROTOCOL, "a compressed stream message (not asked for)");
    } else {
        s->cur = amaters__aql__stream_response__unpack(NULL, e - st->off - 5, p + 5);
        if (!s->cur) {
            rc = -1;
            nc_result_set(err, NANA_CLIENT_EPROTOCOL, "a StreamResponse does not parse");
        }
    }
    st->off = e;
    size_t n = creditable(st);
    if (st->off == st->in.len) { /* empty: start over */
        st->credited -= st->off;
        st->off = 0;
        st->in.len = 0;
    } else if (st->off > 65536 && st->off > st->in.len / 2) {
        memmove(st->in.data, st->in.data + st->off, st->in.len - st->off);
        st->in.len -= st->off;
        st->credited -= st->off;
        st->off = 0;
    }
    nana_quic_handle h = st->h;
    int64_t sid = st->sid;
    bool sent = st->sent;
    pthread_mutex_unlock(&st->mu);
    if (sent) credit(st, h, sid, n);
    return rc;
}

int nana_client_aql_stream_next(nana_aql_stream *s, const uint8_t **key, size_t *klen,
                                const uint8_t **value, size_t *vlen, nana_result *err)
{
    nana_result tmp;
    err = begin(err, &tmp);
    int rc = 0;
    for (;;) {
        if (s->cur && s->cur->chunk_case == AMATERS__AQL__STREAM_RESPONSE__CHUNK_BATCH &&
            s->cur->batch && s->next < s->cur->batch->n_values) {
            const Amaters__Query__KeyValue *kv = s->cur->batch->values[s->next++];
            ProtobufCBinaryData k = kv->key ? kv->key->data : pb_bytes(NULL, 0);
            ProtobufCBinaryData v = kv->value ? kv->value->data : pb_bytes(NULL, 0);
            *key = k.data ? k.data : (const uint8_t *)"";
            *klen = k.len;
            *value = v.data ? v.data : (const uint8_t *)"";
            *vlen = v.len;
            rc = 1;
            break;
        }
        if (s->cur && s->cur->chunk_case == AMATERS__AQL__STREAM_RESPONSE__CHUNK_VALUE &&
            s->cur->value && s->next == 0) { /* the older one-pair form */
            const Amaters__Query__KeyValue *kv = s->cur->value;
            s->next = 1;
            ProtobufCBinaryData k = kv->key ? kv->key->data : pb_bytes(NULL, 0);
            ProtobufCBinaryData v = kv->value ? kv->value->data : pb_bytes(NULL, 0);
            *key = k.data ? k.data : (const uint8_t *)"";
            *klen = k.len;
            *value = v.data ? v.data : (const uint8_t *)"";
            *vlen = v.len;
            rc = 1;
            break;
        }
        amaters__aql__stream_response__free_unpacked(s->cur, NULL);
        s->cur = NULL;
        s->next = 0;
        if (s->done) {
            rc = 0;
            break;
        }
        int t = take_message(s, err);
        if (t < 0) {
            s->done = true;
            rc = -1;
            break;
        }
        if (t == 0) {
            s->done = true;
            rc = -1;
            nc_result_set(err, NANA_CLIENT_EPROTOCOL, "the stream ended without a StreamEnd");
            break;
        }
        if (s->cur->chunk_case == AMATERS__AQL__STREAM_RESPONSE__CHUNK_ERROR && s->cur->error) {
            query_error(err, s->cur->error);
            s->done = true;
            rc = -1;
            break;
        }
        if (s->cur->chunk_case == AMATERS__AQL__STREAM_RESPONSE__CHUNK_END) {
            s->total = s->cur->end ? s->cur->end->total_count : 0;
            s->done = true;
        }
    }
    if (err == &tmp) nana_result_free(&tmp);
    return rc;
}

uint64_t nana_client_aql_stream_total(const nana_aql_stream *s)
{
    return s ? s->total : 0;
}

void nana_client_aql_stream_close(nana_aql_stream *s)
{
    if (!s) return;
    nc_stream *st = s->st;
    amaters__aql__stream_response__free_unpacked(s->cur, NULL);
    pthread_mutex_lock(&st->mu);
    st->closing = true;
    size_t n = st->in.len > st->credited ? st->in.len - st->credited : 0;
    st->credited = st->in.len;
    bool ended = st->ended, sent = st->sent;
    nana_quic_handle h = st->h;
    int64_t sid = st->sid;
    nana_client *c = st->client;
    pthread_mutex_unlock(&st->mu);
    if (sent) credit(st, h, sid, n);
    if (!ended && c) nc_client_cancel_stream(c, st);
    ncs_unref(st);
    free(s);
}
