/*
 * grpc.c - the gRPC form of the client's calls, without I/O: a call
 * becomes one framed nanasqlite.v1 request message (Call, Get, Set or
 * Delete), and a finished response (HTTP status, grpc-status and
 * grpc-message from its header or trailers, and its body) becomes a
 * nana_result of the same shape the NanaSQLite protocol gives:
 *
 *   Call   result_json -> OK; error -> ESERVER (type, message, code)
 *   Get    found -> OK (the value); not found -> ESERVER KeyError
 *   Set    OK "null"
 *   Delete OK "true" / "false" (whether the key existed)
 *   Health (grpc.health.v1.Health/Check) OK with the status's name as a
 *          JSON string ("SERVING")
 *   a gRPC status other than OK -> ESERVER, error_type the status's name,
 *          message its grpc-message; UNAUTHENTICATED -> EAUTH
 *   a reply that is not one message of the method's type -> EPROTOCOL
 *
 * client.c carries the messages over HTTP/3, h2.c over HTTP/2.
 */
#include "client_int.h"

#include "grpc/health/v1/health.pb-c.h"
#include "grpc/nana_grpc.h"
#include "nanasqlite/v1/nanasqlite.pb-c.h"
#include "util/nana_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NC_MAX_DEPTH 128 /* as the NanaSQLite protocol's JSON */

const char *ncg_path(nc_kind kind)
{
    switch (kind) {
    case NC_GET:
        return "/nanasqlite.v1.NanaSQLite/Get";
    case NC_SET:
        return "/nanasqlite.v1.NanaSQLite/Set";
    case NC_DELETE:
        return "/nanasqlite.v1.NanaSQLite/Delete";
    case NC_HEALTH:
        return "/grpc.health.v1.Health/Check";
    case NC_AQL_QUERY:
        return "/amaters.aql.AqlService/ExecuteQuery";
    case NC_AQL_BATCH:
        return "/amaters.aql.AqlService/ExecuteBatch";
    case NC_AQL_STREAM:
        return "/amaters.aql.AqlService/ExecuteStream";
    default:
        return "/nanasqlite.v1.NanaSQLite/Call";
    }
}

/* Checks that |text| is JSON of type |want| (or any type when |any|). */
static int check_json(const char *text, nana_json_type want, bool any, const char *what,
                      nana_result *err)
{
    nana_json_doc *doc = NULL;
    nana_json *root = NULL;
    if (nana_json_parse(text, strlen(text), 0, NC_MAX_DEPTH, &doc, &root))
        return nc_result_error(err, NANA_CLIENT_EINVALID, "%s is not valid JSON: %s", what,
                               nana_errmsg());
    bool ok = any || root->type == want;
    nana_json_doc_free(doc);
    if (!ok)
        return nc_result_error(err, NANA_CLIENT_EINVALID, "%s must be a JSON %s", what,
                               want == NANA_JSON_ARRAY ? "array" : "object");
    return NANA_CLIENT_OK;
}

/* Packs |m| after a 5-byte gRPC prefix into |out|. */
static int pack_framed(nana_buf *out, const ProtobufCMessage *m, nana_result *err)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    if (n > UINT32_MAX)
        return nc_result_error(err, NANA_CLIENT_EINVALID, "the request is too large");
    nana_buf_reset(out);
    if (nana_buf_reserve(out, n + 5))
        return nc_result_error(err, NANA_CLIENT_ENOMEM, "out of memory");
    uint8_t *p = (uint8_t *)out->data;
    p[0] = 0;
    p[1] = (uint8_t)(n >> 24);
    p[2] = (uint8_t)(n >> 16);
    p[3] = (uint8_t)(n >> 8);
    p[4] = (uint8_t)n;
    protobuf_c_message_pack(m, p + 5);
    out->len = n + 5;
    return NANA_CLIENT_OK;
}

/* protobuf-c's string fields are char *; ours are const and only read. */
static char *pb_str(const char *s)
{
    static char empty[1];
    return s ? (char *)(uintptr_t)s : empty;
}

/* Frames an AQL request message given already serialized. */
static int frame_raw(nana_buf *out, const uint8_t *m, size_t n, nana_result *err)
{
    if (n > UINT32_MAX - 5)
        return nc_result_error(err, NANA_CLIENT_EINVALID, "the request is too large");
    nana_buf_reset(out);
    if (nana_buf_reserve(out, n + 5))
        return nc_result_error(err, NANA_CLIENT_ENOMEM, "out of memory");
    uint8_t *p = (uint8_t *)out->data;
    p[0] = 0;
    p[1] = (uint8_t)(n >> 24);
    p[2] = (uint8_t)(n >> 16);
    p[3] = (uint8_t)(n >> 8);
    p[4] = (uint8_t)n;
    if (n) memcpy(p + 5, m, n);
    out->len = n + 5;
    return NANA_CLIENT_OK;
}

int ncg_build(nana_buf *out, const nc_call_args *a, nana_result *err)
{
    if (a->kind == NC_AQL_QUERY || a->kind == NC_AQL_BATCH || a->kind == NC_AQL_STREAM) {
        if (!a->body && a->body_len)
            return nc_result_error(err, NANA_CLIENT_EINVALID, "no request message");
        return frame_raw(out, a->body, a->body_len, err);
    }
    const char *db = a->co ? a->co->db : NULL, *table = a->co ? a->co->table : NULL;
    if (a->kind != NC_CALL && !a->key)
        return nc_result_error(err, NANA_CLIENT_EINVALID, "a typed call needs a key");
    switch (a->kind) {
    case NC_GET: {
        Nanasqlite__V1__GetRequest m;
        nanasqlite__v1__get_request__init(&m);
        m.key = pb_str(a->key);
        m.db = pb_str(db);
        m.table = pb_str(table);
        return pack_framed(out, &m.base, err);
    }
    case NC_SET: {
        if (!a->value) return nc_result_error(err, NANA_CLIENT_EINVALID, "set needs a value");
        int rc = a->json_checked ? 0 : check_json(a->value, NANA_JSON_NULL, true, "the value", err);
        if (rc) return rc;
        Nanasqlite__V1__SetRequest m;
        nanasqlite__v1__set_request__init(&m);
        m.key = pb_str(a->key);
        m.value_json = pb_str(a->value);
        m.db = pb_str(db);
        m.table = pb_str(table);
        return pack_framed(out, &m.base, err);
    }
    case NC_HEALTH: {
        Grpc__Health__V1__HealthCheckRequest m;
        grpc__health__v1__health_check_request__init(&m);
        m.service = pb_str(a->key);
        return pack_framed(out, &m.base, err);
    }
    case NC_DELETE: {
        Nanasqlite__V1__DeleteRequest m;
        nanasqlite__v1__delete_request__init(&m);
        m.key = pb_str(a->key);
        m.db = pb_str(db);
        m.table = pb_str(table);
        return pack_framed(out, &m.base, err);
    }
    default:
        break;
    }
    if (!a->method || !*a->method)
        return nc_result_error(err, NANA_CLIENT_EINVALID, "a call needs a method name");
    int rc =
        a->args && !a->json_checked ? check_json(a->args, NANA_JSON_ARRAY, false, "args", err) : 0;
    if (!rc && a->kwargs && !a->json_checked)
        rc = check_json(a->kwargs, NANA_JSON_OBJECT, false, "kwargs", err);
    if (rc) return rc;
    Nanasqlite__V1__CallRequest m;
    nanasqlite__v1__call_request__init(&m);
    m.method = pb_str(a->method);
    m.args_json = pb_str(a->args);
    m.kwargs_json = pb_str(a->kwargs);
    m.db = pb_str(db);
    m.table = pb_str(table);
    return pack_framed(out, &m.base, err);
}

int ncg_login_request(nana_buf *out)
{
    nana_result err = {0};
    nc_call_args a = {.kind = NC_GET, .key = ""};
    int rc = ncg_build(out, &a, &err);
    nana_result_free(&err);
    return rc;
}

/* A malloc'd copy of |s|; NULL for NULL or (with |empty_null|) "". */
static char *dup_or_null(const char *s, bool empty_null)
{
    if (!s || (empty_null && !*s)) return NULL;
    return strdup(s);
}

/* Sets |r| to OK with the JSON text |json| (copied). */
static int result_ok(nana_result *r, const char *json)
{
    r->json = strdup(json);
    if (!r->json) return nc_result_error(r, NANA_CLIENT_ENOMEM, "out of memory");
    r->json_len = strlen(json);
    r->status = NANA_CLIENT_OK;
    return NANA_CLIENT_OK;
}

/* Sets |r| to a server error (ESERVER) of |type| with |message| and |code|. */
static int result_server(nana_result *r, const char *type, const char *message, const char *code)
{
    r->status = NANA_CLIENT_ESERVER;
    r->error_type = strdup(type);
    r->message = strdup(message ? message : "");
    r->code = dup_or_null(code, true);
    if (!r->error_type || !r->message || (code && *code && !r->code)) {
        nana_result_free(r);
        return nc_result_error(r, NANA_CLIENT_ENOMEM, "out of memory");
    }
    return NANA_CLIENT_ESERVER;
}

/* The message of a response body: one uncompressed message, whole. */
static int one_message(const nana_buf *b, const uint8_t **msg, size_t *len)
{
    const uint8_t *p = (const uint8_t *)b->data;
    if (b->len < 5 || p[0] != 0) return -1;
    size_t n = (size_t)p[1] << 24 | (size_t)p[2] << 16 | (size_t)p[3] << 8 | p[4];
    if (n != b->len - 5) return -1;
    *msg = p + 5;
    *len = n;
    return 0;
}

/* The result of a reply message |m| of a call of |kind|. */
static int typed_result(nc_kind kind, const uint8_t *m, size_t n, nana_result *r)
{
    if (kind == NC_AQL_QUERY || kind == NC_AQL_BATCH) { /* the message itself, for aql.c */
        r->json = malloc(n ? n : 1);
        if (!r->json) return nc_result_error(r, NANA_CLIENT_ENOMEM, "out of memory");
        if (n) memcpy(r->json, m, n);
        r->json_len = n;
        r->status = NANA_CLIENT_OK;
        return NANA_CLIENT_OK;
    }
    if (kind == NC_HEALTH) {
        Grpc__Health__V1__HealthCheckResponse *h =
            grpc__health__v1__health_check_response__unpack(NULL, n, m);
        if (!h) return nc_result_error(r, NANA_CLIENT_EPROTOCOL, "the health reply does not parse");
        static const char *const names[] = {"\"UNKNOWN\"", "\"SERVING\"", "\"NOT_SERVING\"",
                                            "\"SERVICE_UNKNOWN\""};
        int st = h->status >= 0 && h->status <= 3 ? (int)h->status : 0;
        grpc__health__v1__health_check_response__free_unpacked(h, NULL);
        return result_ok(r, names[st]);
    }
    const ProtobufCMessageDescriptor *d = kind == NC_GET   ? &nanasqlite__v1__get_reply__descriptor
                                          : kind == NC_SET ? &nanasqlite__v1__set_reply__descriptor
                                          : kind == NC_DELETE
                                              ? &nanasqlite__v1__delete_reply__descriptor
                                              : &nanasqlite__v1__call_reply__descriptor;
    ProtobufCMessage *pm = protobuf_c_message_unpack(d, NULL, n, m);
    if (!pm)
        return nc_result_error(r, NANA_CLIENT_EPROTOCOL, "the server's %s reply does not parse",
                               d->short_name);
    int rc;
    if (kind == NC_GET) {
        const Nanasqlite__V1__GetReply *g = (const Nanasqlite__V1__GetReply *)pm;
        rc = g->found ? result_ok(r, g->value_json)
                      : result_server(r, "KeyError", "the key does not exist", NULL);
    } else if (kind == NC_SET) {
        rc = result_ok(r, "null");
    } else if (kind == NC_DELETE) {
        rc = result_ok(r, ((const Nanasqlite__V1__DeleteReply *)pm)->existed ? "true" : "false");
    } else {
        const Nanasqlite__V1__CallReply *c = (const Nanasqlite__V1__CallReply *)pm;
        if (c->outcome_case == NANASQLITE__V1__CALL_REPLY__OUTCOME_RESULT_JSON)
            rc = result_ok(r, c->result_json);
        else if (c->outcome_case == NANASQLITE__V1__CALL_REPLY__OUTCOME_ERROR && c->error)
            rc = result_server(r, c->error->type, c->error->message, c->error->code);
        else
            rc = nc_result_error(r, NANA_CLIENT_EPROTOCOL, "the server's Call reply is empty");
    }
    protobuf_c_message_free_unpacked(pm, NULL);
    return rc;
}

int ncg_parse(const nc_call *call, nana_result *r)
{
    int st = call->grpc_status;
    if (st < 0) {
        if (call->http_status == 200)
            return nc_result_error(r, NANA_CLIENT_EPROTOCOL, "the reply has no grpc-status");
        st = (int)nana_grpc_status_from_http(call->http_status);
    }
    if (st == NANA_GRPC_UNAUTHENTICATED)
        return nc_result_error(r, NANA_CLIENT_EAUTH, "%s",
                               call->grpc_msg[0] ? call->grpc_msg : "not logged in");
    if (st != NANA_GRPC_OK) {
        const char *name = nana_grpc_status_name(st);
        char buf[32];
        if (!name) {
            snprintf(buf, sizeof(buf), "grpc-status %d", st);
            name = buf;
        }
        return result_server(r, name, call->grpc_msg, NULL);
    }
    if (call->http_status != 200)
        return nc_result_error(r, NANA_CLIENT_EPROTOCOL, "HTTP status %d with grpc-status 0",
                               call->http_status);
    if (call->kind == NC_AQL_STREAM) return result_ok(r, "null"); /* its messages went on */
    const uint8_t *m;
    size_t n;
    if (one_message(&call->reply, &m, &n))
        return nc_result_error(r, NANA_CLIENT_EPROTOCOL,
                               "the reply is not one uncompressed gRPC message");
    return typed_result(call->kind, m, n, r);
}
