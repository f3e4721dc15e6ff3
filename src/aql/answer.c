/*
 * answer.c - AQL answers: a plan's result as amaters.query.QueryResult,
 * and the envelopes around results and errors (QueryResponse,
 * BatchResponse, StreamResponse). Inner messages are built as protobuf-c
 * structures in the call's arena and packed; the envelopes, which wrap
 * bytes already packed, are written by hand.
 */
#include "aql/nana_aql.h"

#include "grpc/nana_grpc.h"

#include <string.h>

int nana_aql_pack(const ProtobufCMessage *m, nana_buf *out)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    int rc = nana_buf_reserve(out, n);
    if (rc) return rc;
    protobuf_c_message_pack(m, (uint8_t *)out->data + out->len);
    out->len += n;
    return NANA_OK;
}

/* ---- hand-written protobuf for the envelopes ------------------------------ */

static int put_varint(nana_buf *b, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    do {
        tmp[n++] = (uint8_t)((v & 127) | (v > 127 ? 128 : 0));
        v >>= 7;
    } while (v);
    return nana_buf_append(b, tmp, n);
}

static int put_bytes(nana_buf *b, uint32_t field, const void *p, size_t n)
{
    int rc = put_varint(b, (uint64_t)field << 3 | 2);
    if (!rc) rc = put_varint(b, n);
    if (!rc && n) rc = nana_buf_append(b, p, n);
    return rc;
}

static int put_uint(nana_buf *b, uint32_t field, uint64_t v)
{
    int rc = put_varint(b, (uint64_t)field << 3);
    return rc ? rc : put_varint(b, v);
}

/* A packed ErrorResponse. */
static int error_bytes(const nana_aql_err *e, nana_buf *out)
{
    Amaters__Errors__ErrorResponse m;
    amaters__errors__error_response__init(&m);
    m.code = (Amaters__Errors__ErrorCode)e->code;
    m.message = (char *)(uintptr_t)e->message;
    m.category = (Amaters__Errors__ErrorCategory)e->category;
    if (e->retry_after) {
        m._retry_after_case = AMATERS__ERRORS__ERROR_RESPONSE___RETRY_AFTER_RETRY_AFTER;
        m.retry_after = e->retry_after;
    }
    return nana_aql_pack(&m.base, out);
}

/* Appends field |field| holding the packed ErrorResponse of |e|. */
static int put_error(nana_buf *b, uint32_t field, const nana_aql_err *e)
{
    nana_buf t;
    nana_buf_init(&t, 0);
    int rc = error_bytes(e, &t);
    if (!rc) rc = put_bytes(b, field, t.data, t.len);
    nana_buf_free(&t);
    return rc;
}

/* ---- values ------------------------------------------------------------------ */

/* A CipherBlob of a stored JSON text, with its size and CRC-32. */
static int blob(nana_arena *a, const char *json, size_t len, Amaters__Types__CipherBlob **out)
{
    Amaters__Types__CipherBlob *b = nana_arena_alloc(a, sizeof(*b));
    Amaters__Types__CipherMetadata *m = nana_arena_alloc(a, sizeof(*m));
    if (!b || !m) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    amaters__types__cipher_blob__init(b);
    amaters__types__cipher_metadata__init(m);
    const uint8_t *data;
    size_t dlen;
    int rc = nana_aql_value_bytes(a, json, len, &data, &dlen);
    if (rc) return rc;
    b->data.data = (uint8_t *)(uintptr_t)data;
    b->data.len = dlen;
    m->size = dlen;
    m->checksum = nana_aql_crc32(data, dlen);
    b->metadata = m;
    *out = b;
    return NANA_OK;
}

/* The KeyValue messages of |rows| (in the arena). */
static int key_values(nana_arena *a, const nana_rows *rows, Amaters__Query__KeyValue ***out)
{
    size_t n = rows ? rows->n : 0;
    Amaters__Query__KeyValue **v = nana_arena_alloc(a, (n ? n : 1) * sizeof(*v));
    Amaters__Query__KeyValue *kv = nana_arena_alloc(a, (n ? n : 1) * sizeof(*kv));
    Amaters__Types__Key *k = nana_arena_alloc(a, (n ? n : 1) * sizeof(*k));
    if (!v || !kv || !k) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        amaters__query__key_value__init(&kv[i]);
        amaters__types__key__init(&k[i]);
        k[i].data.data = (uint8_t *)(uintptr_t)rows->r[i].key;
        k[i].data.len = rows->r[i].klen;
        kv[i].key = &k[i];
        int rc = blob(a, rows->r[i].value, rows->r[i].vlen, &kv[i].value);
        if (rc) return rc;
        v[i] = &kv[i];
    }
    *out = v;
    return NANA_OK;
}

/* A QueryResult (not packed) for one query's answer, in the arena. */
static int result_msg(nana_arena *a, nana_aql_kind kind, const nana_val *v, const nana_rows *rows,
                      int64_t changed, Amaters__Query__QueryResult **out)
{
    Amaters__Query__QueryResult *r = nana_arena_alloc(a, sizeof(*r));
    if (!r) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    amaters__query__query_result__init(r);
    int rc = NANA_OK;
    switch (kind) {
    case NANA_AQL_GET: {
        Amaters__Query__SingleResult *s = nana_arena_alloc(a, sizeof(*s));
        if (!s) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
        amaters__query__single_result__init(s);
        if (v) {
            rc = blob(a, v->data, v->len, &s->value);
            s->_value_case = AMATERS__QUERY__SINGLE_RESULT___VALUE_VALUE;
        }
        r->result_case = AMATERS__QUERY__QUERY_RESULT__RESULT_SINGLE;
        r->single = s;
        break;
    }
    case NANA_AQL_RANGE:
    case NANA_AQL_FILTER: {
        Amaters__Query__MultiResult *m = nana_arena_alloc(a, sizeof(*m));
        if (!m) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
        amaters__query__multi_result__init(m);
        rc = key_values(a, rows, &m->values);
        m->n_values = rows ? rows->n : 0;
        r->result_case = AMATERS__QUERY__QUERY_RESULT__RESULT_MULTI;
        r->multi = m;
        break;
    }
    default: {
        Amaters__Query__SuccessResult *s = nana_arena_alloc(a, sizeof(*s));
        if (!s) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
        amaters__query__success_result__init(s);
        s->affected_rows = changed > 0 ? (uint64_t)changed : 0;
        r->result_case = AMATERS__QUERY__QUERY_RESULT__RESULT_SUCCESS;
        r->success = s;
        break;
    }
    }
    *out = r;
    return rc;
}

/* Bytes of a varint. */
static size_t varint_len(uint64_t v)
{
    size_t n = 1;
    while (v > 127) {
        v >>= 7;
        n++;
    }
    return n;
}

/* Bytes of a length-delimited field of |n| bytes (numbers below 16). */
static size_t ld_len(size_t n)
{
    return 1 + varint_len(n) + n;
}

/* A length-delimited field's tag and length (numbers below 16). */
static int put_ld(nana_buf *b, uint32_t field, size_t n)
{
    int rc = put_varint(b, (uint64_t)field << 3 | 2);
    return rc ? rc : put_varint(b, n);
}

/*
 * The QueryResult of a get, set, delete or update, written by hand: the
 * common answers, which protobuf-c would build as four nested structures
 * and walk twice (sizes, then bytes).
 *   QueryResult {single = 1: SingleResult {value = 1: CipherBlob {data = 1,
 *     metadata = 2: CipherMetadata {size = 1, checksum = 3}}}}
 *   QueryResult {success = 3: SuccessResult {affected_rows = 1}}
 */
static int small_result(nana_arena *a, nana_aql_kind kind, const nana_val *v, int64_t changed,
                        nana_buf *out)
{
    if (kind != NANA_AQL_GET) {
        uint64_t rows = changed > 0 ? (uint64_t)changed : 0;
        size_t succ = rows ? 1 + varint_len(rows) : 0;
        int rc = put_ld(out, 1, ld_len(succ));
        if (!rc) rc = put_ld(out, 3, succ);
        if (!rc && rows) rc = put_uint(out, 1, rows);
        return rc;
    }
    const uint8_t *data = NULL;
    size_t dlen = 0, meta = 0, blob = 0, single = 0;
    uint32_t crc = 0;
    if (v) {
        int rc = nana_aql_value_bytes(a, v->data, v->len, &data, &dlen);
        if (rc) return rc;
        crc = nana_aql_crc32(data, dlen);
        meta = (dlen ? 1 + varint_len(dlen) : 0) + (crc ? 1 + varint_len(crc) : 0);
        blob = (dlen ? ld_len(dlen) : 0) + ld_len(meta);
        single = ld_len(blob);
    }
    int rc = put_ld(out, 1, ld_len(single));
    if (!rc) rc = put_ld(out, 1, single);
    if (!rc && v) {
        rc = put_ld(out, 1, blob);
        if (!rc && dlen) rc = put_bytes(out, 1, data, dlen);
        if (!rc) rc = put_ld(out, 2, meta);
        if (!rc && dlen) rc = put_uint(out, 1, dlen);
        if (!rc && crc) rc = put_uint(out, 3, crc);
    }
    return rc;
}

int nana_aql_response_of(nana_arena *a, const nana_aql_plan *p, const nana_core_result *res,
                         bool not_found, const char *request_id, uint64_t exec_ms, nana_buf *out)
{
    const nana_val *v = !not_found && res->kind == NANA_RES_VAL ? res->v : NULL;
    int64_t changed = 0;
    if (p->kind == NANA_AQL_SET) changed = 1;
    if (p->kind == NANA_AQL_DELETE) changed = not_found ? 0 : 1;
    if (p->kind == NANA_AQL_UPDATE && res->kind == NANA_RES_INT) changed = res->i;
    if (p->kind != NANA_AQL_RANGE && p->kind != NANA_AQL_FILTER) {
        /* QueryResponse {result = 1: ..., request_id = 3, execution_time_ms = 4} */
        int rc = small_result(a, p->kind, v, changed, out);
        if (!rc && request_id) rc = put_bytes(out, 3, request_id, strlen(request_id));
        if (!rc && exec_ms) rc = put_uint(out, 4, exec_ms);
        return rc;
    }
    Amaters__Query__QueryResult *r;
    int rc = result_msg(a, p->kind, v, res->kind == NANA_RES_ROWS ? res->rows : NULL, changed, &r);
    if (rc) return rc;
    /* QueryResponse {result = 1: the QueryResult packed in place} */
    size_t n = protobuf_c_message_get_packed_size(&r->base);
    rc = put_varint(out, 1 << 3 | 2);
    if (!rc) rc = put_varint(out, n);
    if (!rc) rc = nana_aql_pack(&r->base, out);
    if (!rc && request_id) rc = put_bytes(out, 3, request_id, strlen(request_id));
    if (!rc && exec_ms) rc = put_uint(out, 4, exec_ms);
    return rc;
}

int nana_aql_response(nana_buf *out, const uint8_t *result, size_t rlen, const nana_aql_err *err,
                      const char *request_id, uint64_t exec_ms)
{
    int rc = err ? put_error(out, 2, err) : put_bytes(out, 1, result, rlen);
    if (!rc && request_id) rc = put_bytes(out, 3, request_id, strlen(request_id));
    if (!rc && exec_ms) rc = put_uint(out, 4, exec_ms);
    return rc;
}

int nana_aql_batch_response(nana_arena *a, const nana_aql_plan *p, const nana_aql_err *err,
                            const char *request_id, uint64_t exec_ms, nana_buf *out)
{
    int rc = NANA_OK;
    if (err) {
        rc = put_error(out, 2, err);
    } else {
        Amaters__Aql__BatchResult br;
        amaters__aql__batch_result__init(&br);
        br.n_results = p->nops;
        br.results = nana_arena_alloc(a, (p->nops ? p->nops : 1) * sizeof(*br.results));
        if (!br.results) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
        for (size_t i = 0; !rc && i < p->nops; i++) {
            const nana_mop *op = &p->ops[i];
            rc = result_msg(a, p->kinds[i], op->v, op->rows, op->changed, &br.results[i]);
        }
        nana_buf t;
        nana_buf_init(&t, 0);
        if (!rc) rc = nana_aql_pack(&br.base, &t);
        if (!rc) rc = put_bytes(out, 1, t.data, t.len);
        nana_buf_free(&t);
    }
    if (!rc && request_id) rc = put_bytes(out, 3, request_id, strlen(request_id));
    if (!rc && exec_ms) rc = put_uint(out, 4, exec_ms);
    return rc;
}

int nana_aql_stream_batch(nana_arena *a, const nana_rows *rows, bool has_more, uint64_t seq,
                          nana_buf *out)
{
    Amaters__Aql__StreamBatch sb;
    amaters__aql__stream_batch__init(&sb);
    int rc = key_values(a, rows, &sb.values);
    if (rc) return rc;
    sb.n_values = rows ? rows->n : 0;
    sb.has_more = has_more;
    nana_buf t;
    nana_buf_init(&t, 0);
    rc = nana_aql_pack(&sb.base, &t);
    if (!rc) rc = put_bytes(out, 5, t.data, t.len);
    if (!rc && seq) rc = put_uint(out, 4, seq);
    nana_buf_free(&t);
    return rc;
}

int nana_aql_stream_end(uint64_t total, uint64_t seq, nana_buf *out)
{
    uint8_t end[11];
    nana_buf e;
    nana_buf_init(&e, 0);
    int rc = total ? put_uint(&e, 1, total) : NANA_OK;
    size_t n = e.len;
    if (!rc) memcpy(end, e.data ? e.data : "", n);
    nana_buf_free(&e);
    if (!rc) rc = put_bytes(out, 3, end, n);
    if (!rc && seq) rc = put_uint(out, 4, seq);
    return rc;
}

int nana_aql_stream_error(const nana_aql_err *err, uint64_t seq, nana_buf *out)
{
    int rc = put_error(out, 2, err);
    if (!rc && seq) rc = put_uint(out, 4, seq);
    return rc;
}
