/*
 * aql_json.c - an AQL answer (QueryResponse or BatchResponse) as one JSON
 * document, for the CLI and for bindings without a protobuf library.
 * Values that are one JSON text are written as themselves; other bytes
 * as {"$bytes": "<standard base64>"}, the form the server stores them in.
 */
#include "client_int.h"

#include "amaters/aql.pb-c.h"
#include "grpc/nana_grpc.h"
#include "util/nana_json.h"

#include <stdlib.h>
#include <string.h>

#define VALUE_MAX_DEPTH 128 /* as the server's JSON */

/* Writes |n| bytes as {"$bytes":"<padded base64>"}. */
static int put_bytes(nana_buf *b, const uint8_t *p, size_t n)
{
    size_t el = nana_grpc_b64_encoded_len(n);
    if (nana_buf_puts(b, "{\"$bytes\":\"") || nana_buf_reserve(b, el + 8)) return -1;
    el = nana_grpc_b64_encode(p, n, b->data + b->len);
    b->len += el;
    while (el % 4) { /* standard base64 is padded */
        b->data[b->len++] = '=';
        el++;
    }
    return nana_buf_puts(b, "\"}");
}

/* 1 if |p| is one JSON text the server keeps as JSON: not an object whose
 * only member is "$bytes" (that one stands for bytes). */
static bool plain_json(const uint8_t *p, size_t n)
{
    if (!n || nana_json_validate((const char *)p, n, 0, VALUE_MAX_DEPTH)) return false;
    nana_json_doc *doc = NULL;
    nana_json *root = NULL;
    if (nana_json_parse((const char *)p, n, 0, VALUE_MAX_DEPTH, &doc, &root)) return false;
    bool wrapped = root->type == NANA_JSON_OBJECT && root->n == 1 &&
                   root->u.members[0].keylen == 6 && !memcmp(root->u.members[0].key, "$bytes", 6);
    nana_json_doc_free(doc);
    return !wrapped;
}

static int put_value(nana_buf *b, const Amaters__Types__CipherBlob *v, bool raw)
{
    const uint8_t *p = v && v->data.len ? v->data.data : (const uint8_t *)"";
    size_t n = v ? v->data.len : 0;
    if (!raw && plain_json(p, n)) {
        /* as written, minus surrounding whitespace (a document stays one line only
         * when the value is) */
        return nana_buf_append(b, p, n);
    }
    return put_bytes(b, p, n);
}

static int put_key(nana_buf *b, const Amaters__Types__Key *k)
{
    const uint8_t *p = k && k->data.len ? k->data.data : (const uint8_t *)"";
    size_t n = k ? k->data.len : 0;
    if (nana_utf8_valid((const char *)p, n)) return nana_json_write_string(b, (const char *)p, n);
    return put_bytes(b, p, n);
}

static int put_error(nana_buf *b, const Amaters__Errors__ErrorResponse *e)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&amaters__errors__error_code__descriptor, e->code);
    const char *name = v ? v->name : "ERROR_UNKNOWN";
    const char *msg = e->message ? e->message : "";
    if (nana_buf_puts(b, "{\"error\":{\"code\":") ||
        nana_json_write_string(b, name, strlen(name)) ||
        nana_buf_printf(b, ",\"number\":%d,\"message\":", (int)e->code) ||
        nana_json_write_string(b, msg, strlen(msg)))
        return -1;
    return nana_buf_puts(b, "}}");
}

static int put_result(nana_buf *b, const Amaters__Query__QueryResult *r, bool raw)
{
    if (!r) return nana_buf_puts(b, "null");
    switch (r->result_case) {
    case AMATERS__QUERY__QUERY_RESULT__RESULT_SINGLE:
        if (r->single && r->single->_value_case == AMATERS__QUERY__SINGLE_RESULT___VALUE_VALUE &&
            r->single->value) {
            if (nana_buf_puts(b, "{\"value\":") || put_value(b, r->single->value, raw)) return -1;
            return nana_buf_puts(b, "}");
        }
        return nana_buf_puts(b, "{\"value\":null,\"found\":false}");
    case AMATERS__QUERY__QUERY_RESULT__RESULT_MULTI: {
        size_t n = r->multi ? r->multi->n_values : 0;
        if (nana_buf_puts(b, "{\"rows\":[")) return -1;
        for (size_t i = 0; i < n; i++) {
            const Amaters__Query__KeyValue *kv = r->multi->values[i];
            if ((i && nana_buf_putc(b, ',')) || nana_buf_puts(b, "{\"key\":") ||
                put_key(b, kv->key) || nana_buf_puts(b, ",\"value\":") ||
                put_value(b, kv->value, raw) || nana_buf_putc(b, '}'))
                return -1;
        }
        return nana_buf_printf(b, "],\"count\":%zu}", n);
    }
    case AMATERS__QUERY__QUERY_RESULT__RESULT_SUCCESS:
        return nana_buf_printf(b, "{\"affected\":%llu}",
                               (unsigned long long)(r->success ? r->success->affected_rows : 0));
    default:
        return nana_buf_puts(b, "{}");
    }
}

int nana_client_aql_answer_json(const uint8_t *msg, size_t len, int batch, int raw_values,
                                char **json, size_t *jlen, nana_result *err)
{
    nana_result tmp = {0};
    if (!err) err = &tmp;
    memset(err, 0, sizeof(*err));
    if (!json) return nc_result_error(err, NANA_CLIENT_EINVALID, "no place for the JSON");
    *json = NULL;
    if (jlen) *jlen = 0;
    ProtobufCMessage *pm =
        protobuf_c_message_unpack(batch ? &amaters__aql__batch_response__descriptor
                                        : &amaters__aql__query_response__descriptor,
                                  NULL, len, msg ? msg : (const uint8_t *)"");
    if (!pm)
        return nc_result_error(err, NANA_CLIENT_EINVALID, "the answer is not a serialized %s",
                               batch ? "BatchResponse" : "QueryResponse");
    nana_buf b;
    nana_buf_init(&b, 0);
    int rc = 0;
    if (batch) {
        const Amaters__Aql__BatchResponse *r = (const Amaters__Aql__BatchResponse *)pm;
        if (r->response_case == AMATERS__AQL__BATCH_RESPONSE__RESPONSE_ERROR && r->error) {
            rc = put_error(&b, r->error);
        } else {
            size_t n = r->results ? r->results->n_results : 0;
            rc = nana_buf_puts(&b, "{\"results\":[");
            for (size_t i = 0; !rc && i < n; i++)
                rc = (i && nana_buf_putc(&b, ',')) ||
                     put_result(&b, r->results->results[i], raw_values != 0);
            if (!rc) rc = nana_buf_puts(&b, "]}");
        }
    } else {
        const Amaters__Aql__QueryResponse *r = (const Amaters__Aql__QueryResponse *)pm;
        if (r->response_case == AMATERS__AQL__QUERY_RESPONSE__RESPONSE_ERROR && r->error)
            rc = put_error(&b, r->error);
        else
            rc = put_result(&b, r->result, raw_values != 0);
    }
    protobuf_c_message_free_unpacked(pm, NULL);
    if (rc || nana_buf_putc(&b, '\0')) {
        nana_buf_free(&b);
        return nc_result_error(err, NANA_CLIENT_ENOMEM, "out of memory");
    }
    size_t n = b.len - 1;
    *json = nana_buf_detach(&b, NULL);
    if (jlen) *jlen = n;
    return NANA_CLIENT_OK;
}

int nana_client_aql_row_json(const uint8_t *key, size_t klen, const uint8_t *value, size_t vlen,
                             int raw_values, char **json, size_t *jlen, nana_result *err)
{
    nana_result tmp = {0};
    if (!err) err = &tmp;
    memset(err, 0, sizeof(*err));
    if (!json) return nc_result_error(err, NANA_CLIENT_EINVALID, "no place for the JSON");
    *json = NULL;
    if (jlen) *jlen = 0;
    Amaters__Types__Key k;
    amaters__types__key__init(&k);
    k.data.data = (uint8_t *)(uintptr_t)key;
    k.data.len = klen;
    Amaters__Types__CipherBlob v;
    amaters__types__cipher_blob__init(&v);
    v.data.data = (uint8_t *)(uintptr_t)value;
    v.data.len = vlen;
    nana_buf b;
    nana_buf_init(&b, 0);
    if (nana_buf_puts(&b, "{\"key\":") || put_key(&b, &k) || nana_buf_puts(&b, ",\"value\":") ||
        put_value(&b, &v, raw_values != 0) || nana_buf_putc(&b, '}') || nana_buf_putc(&b, '\0')) {
        nana_buf_free(&b);
        return nc_result_error(err, NANA_CLIENT_ENOMEM, "out of memory");
    }
    size_t n = b.len - 1;
    *json = nana_buf_detach(&b, NULL);
    if (jlen) *jlen = n;
    return NANA_CLIENT_OK;
}
