/*
 * services.c - the door's services and their methods.
 *
 *   grpc.health.v1.Health               Check, Watch (no account needed)
 *   grpc.reflection.v1alpha.ServerReflection  ServerReflectionInfo (likewise)
 *   nanasqlite.v1.NanaSQLite            Call, Get, Set, Delete, BatchGet, BatchSet
 *
 * A NanaSQLite method becomes a call of the core, the same as on the
 * NanaSQLite door: the method table's row (Get is __getitem__, Set
 * __setitem__, Delete __delitem__, BatchGet batch_get, BatchSet
 * batch_update, Call the row its request names), the connection's
 * account, the request's database and table, and the deadline its
 * grpc-timeout gives. The core answers a cached Get on the I/O thread in
 * this door's own wire form (the reply message's bytes, kept by the cache
 * beside the value); a Set goes to the store's writer; everything else to
 * a worker. The answer is encoded where it is made, into the call's body,
 * and sent from the connection's thread.
 *
 * Statuses: a typed method's failure is a gRPC status (NOT_FOUND is no
 * failure for Get and Delete: found / existed say so). Call answers every
 * error a method raises inside its reply (CallError, with the exception
 * name the NanaSQLite door gives), and ends with a status only when the
 * call was refused before it ran (rate, overload, deadline, shutdown) or
 * the server failed.
 */
#include "door_grpc/gdoor_int.h"

#include "bind/nana_bind.h"
#include "proto/nana_mp.h"
#include "util/nana_json.h"
#include "util/nana_log.h"
#include "util/nana_time.h"

#include "grpc/health/v1/health.pb-c.h"
#include "grpc/reflection/v1alpha/reflection.pb-c.h"
#include "amaters/aql.pb-c.h"
#include "amaters_service.pb-c.h"
#include "nanasqlite/v1/nanasqlite.pb-c.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define M(p, k, d, acct, stream)                                                                   \
    {                                                                                              \
        p, sizeof(p) - 1, &(d), k, acct, stream                                                    \
    }

static const gmethod methods[] = {
    M("/nanasqlite.v1.NanaSQLite/Get", G_GET, nanasqlite__v1__get_request__descriptor, true, false),
    M("/nanasqlite.v1.NanaSQLite/Set", G_SET, nanasqlite__v1__set_request__descriptor, true, false),
    M("/nanasqlite.v1.NanaSQLite/Call", G_CALL, nanasqlite__v1__call_request__descriptor, true,
      false),
    M("/nanasqlite.v1.NanaSQLite/Delete", G_DELETE, nanasqlite__v1__delete_request__descriptor,
      true, false),
    M("/nanasqlite.v1.NanaSQLite/BatchGet", G_BATCH_GET,
      nanasqlite__v1__batch_get_request__descriptor, true, false),
    M("/nanasqlite.v1.NanaSQLite/BatchSet", G_BATCH_SET,
      nanasqlite__v1__batch_set_request__descriptor, true, false),
    M("/grpc.health.v1.Health/Check", G_HEALTH_CHECK,
      grpc__health__v1__health_check_request__descriptor, false, false),
    M("/grpc.health.v1.Health/Watch", G_HEALTH_WATCH,
      grpc__health__v1__health_check_request__descriptor, false, false),
    M("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", G_REFLECT,
      grpc__reflection__v1alpha__server_reflection_request__descriptor, false, true),
    M("/amaters.aql.AqlService/ExecuteQuery", G_AQL_QUERY, amaters__aql__query_request__descriptor,
      true, false),
    M("/amaters.aql.AqlService/ExecuteBatch", G_AQL_BATCH, amaters__aql__batch_request__descriptor,
      true, false),
    M("/amaters.aql.AqlService/ExecuteStream", G_AQL_STREAM,
      amaters__aql__query_request__descriptor, true, false),
    M("/amaters.aql.AqlService/ExecuteInteractive", G_AQL_INTERACTIVE,
      amaters__aql__query_request__descriptor, true, true),
    M("/amaters.aql.AqlService/HealthCheck", G_AQL_HEALTH,
      amaters__aql__health_check_request__descriptor, false, false),
    M("/amaters.aql.AqlService/GetServerInfo", G_AQL_INFO,
      amaters__aql__server_info_request__descriptor, false, false),
    /* A request may carry its own signature (client_signature): aql.c checks who calls. */
    M("/AmateRS/Execute", G_AMATERS_EXECUTE, query_request__descriptor, false, false),
    M("/AmateRS/ExecuteStream", G_AMATERS_STREAM, query_request__descriptor, false, true),
};

#undef M

const gmethod *nana_gdoor_method(const char *path, size_t len)
{
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        if (methods[i].path_len == len && memcmp(methods[i].path, path, len) == 0)
            return &methods[i];
    return NULL;
}

/* The wire form tags of this door's cached values (the NanaSQLite door's is 1). */
enum { FORM_GET = 2, FORM_CALL = 3 };

/* ---- health ---------------------------------------------------------------------- */

/* The services Health answers for ("" is the server as a whole). */
static bool health_known(const char *service)
{
    static const char *const known[] = {"",
                                        "nanasqlite.v1.NanaSQLite",
                                        "grpc.health.v1.Health",
                                        "grpc.reflection.v1alpha.ServerReflection",
                                        "amaters.aql.AqlService",
                                        "AmateRS"};
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (strcmp(service, known[i]) == 0) return true;
    return false;
}

/* Appends |msg| framed to |c|'s streamed answer (in its arena): 0, or
 * NANA_ERR_NOMEM. */
static int chunk_add(gcall *c, const uint8_t *msg, size_t len)
{
    gchunk *k = nana_arena_alloc(&c->arena, sizeof(*k));
    uint8_t *framed = nana_arena_alloc(&c->arena, len + NANA_GRPC_PREFIX);
    if (!k || !framed) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    nana_grpc_frame_prefix(framed, false, (uint32_t)len);
    memcpy(framed + NANA_GRPC_PREFIX, msg, len);
    k->p = framed;
    k->len = len + NANA_GRPC_PREFIX;
    k->next = NULL;
    *c->ctail = k;
    c->ctail = &k->next;
    if (!c->csend) c->csend = k;
    return NANA_OK;
}

/* HealthCheckResponse {status}: SERVING = 1, NOT_SERVING = 2. */
enum { SERVING = 1, NOT_SERVING = 2 };

/* Ends a Watch whose last message said NOT_SERVING: UNAVAILABLE. */
static void watch_close(gcall *c)
{
    c->status = NANA_GRPC_UNAVAILABLE;
    snprintf(c->message, sizeof(c->message), "the server is shutting down");
    c->body_eof = true;
    nana_gdoor_resume(c);
}

static void health(gcall *c)
{
    const Grpc__Health__V1__HealthCheckRequest *r = (const void *)c->req;
    const char *svc = r->service ? r->service : "";
    if (!health_known(svc)) {
        nana_gcall_fail(c, NANA_GRPC_NOT_FOUND, "unknown service %.100s", svc);
        return;
    }
    uint8_t msg[2] = {0x08, nana_core_draining(c->d->core) ? NOT_SERVING : SERVING};
    c->status = NANA_GRPC_OK;
    if (c->gm->kind == G_HEALTH_WATCH) {
        /* The status now, and the stream stays open: it ends with the
         * connection, when the client cancels, or when the server stops
         * (nana_gdoor_watch_end). */
        if (chunk_add(c, msg, sizeof(msg))) {
            nana_gcall_fail(c, NANA_GRPC_RESOURCE_EXHAUSTED, "out of memory");
            return;
        }
        c->answered = true;
        atomic_fetch_add(&c->d->st_calls, 1);
        if (msg[1] == NOT_SERVING) {
            watch_close(c);
            return;
        }
        nana_gdoor_respond(c);
        return;
    }
    size_t at;
    int rc = nana_pbw_frame_begin(&c->body, &at);
    if (!rc) rc = nana_buf_append(&c->body, msg, sizeof(msg));
    if (rc) {
        nana_gcall_fail(c, NANA_GRPC_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    nana_pbw_frame_end(&c->body, at);
    c->answered = true;
    c->body_eof = true;
    atomic_fetch_add(&c->d->st_calls, 1);
    nana_gdoor_respond(c);
}

void nana_gdoor_watch_end(gcall *c)
{
    if (c->body_eof || !c->answered) return; /* ended, or not yet watching */
    static const uint8_t msg[2] = {0x08, NOT_SERVING};
    if (chunk_add(c, msg, sizeof(msg))) {
        c->status = NANA_GRPC_RESOURCE_EXHAUSTED;
        snprintf(c->message, sizeof(c->message), "out of memory");
        c->body_eof = true;
        nana_gdoor_resume(c);
        return;
    }
    watch_close(c);
}

/* ---- reflection ------------------------------------------------------------------ */

void nana_gdoor_stream_message(gcall *c, const uint8_t *msg, size_t len)
{
    uint8_t *out = NULL;
    size_t olen = 0;
    int rc = nana_grpc_reflect_answer(&c->arena, msg, len, &out, &olen);
    if (rc) {
        nana_gcall_fail(c, rc == NANA_ERR_NOMEM ? NANA_GRPC_RESOURCE_EXHAUSTED : NANA_GRPC_INTERNAL,
                        "%s",
                        rc == NANA_ERR_NOMEM ? "out of memory"
                                             : "the request is not a ServerReflectionRequest");
        return;
    }
    /* The answers stay in the call's arena until it ends: they count in the
     * budgets of bytes held, like requests. */
    if (!nana_gdoor_reserve(c, olen + NANA_GRPC_PREFIX)) {
        nana_gcall_fail(c, NANA_GRPC_RESOURCE_EXHAUSTED,
                        "too many bytes held by this connection's calls: open a new stream");
        return;
    }
    if (chunk_add(c, out, olen)) {
        nana_gcall_fail(c, NANA_GRPC_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    nana_gdoor_resume(c);
}

/* ---- NanaSQLite: requests into core calls ------------------------------------------ */

/* An empty string is "none" (the default database or table). */
static const char *opt(const char *s, uint32_t *len)
{
    size_t n = s ? strlen(s) : 0;
    *len = (uint32_t)n;
    return n ? s : NULL;
}

/* Checks that a request's text field is UTF-8 (protobuf-c does not). */
static bool text_ok(gcall *c, const char *what, const char *s)
{
    if (!s || nana_utf8_valid(s, strlen(s))) return true;
    nana_gcall_fail(c, NANA_GRPC_INVALID_ARGUMENT, "%s is not valid UTF-8", what);
    return false;
}

/* Makes the core call of |c| for method |name| of the table. False when
 * it was answered already. */
static bool core_call(gcall *c, const nana_door_ops *ops, const char *name, size_t nlen,
                      const char *db, const char *table)
{
    gconn *g = c->conn;
    nana_core_call *k = &c->core;
    if (!text_ok(c, "db", db) || !text_ok(c, "table", table)) return false;
    k->door = ops;
    k->m = nana_method_find(name, nlen);
    if (k->m && !nana_gdoor_login_allows(g, nana_method_flags(k->m))) {
        nana_gcall_fail(c, NANA_GRPC_PERMISSION_DENIED,
                        "the bearer token's roles do not allow '%s'", nana_method_name(k->m));
        return false;
    }
    k->method = name;
    k->mlen = (uint32_t)nlen;
    k->acct = g->auth.acct;
    k->db = opt(db, &k->dblen);
    k->table = opt(table, &k->tlen);
    k->deadline = c->head.timeout_ns >= 0
                      ? nana_now_ns() + (uint64_t)(c->head.timeout_ns > 0 ? c->head.timeout_ns : 1)
                      : 0;
    k->early = false;
    k->rate = &g->rate;
    k->res.kind = NANA_RES_NIL;
    k->res.v = NULL;
    return true;
}

/* The JSON text of a core result (for Call's result_json). */
static int result_json(const nana_core_result *r, nana_buf *out)
{
    char num[32];
    switch (r->kind) {
    case NANA_RES_NIL:
        return nana_buf_append(out, "null", 4);
    case NANA_RES_BOOL:
        return r->b ? nana_buf_append(out, "true", 4) : nana_buf_append(out, "false", 5);
    case NANA_RES_INT:
        snprintf(num, sizeof(num), "%" PRId64, r->i);
        return nana_buf_append(out, num, strlen(num));
    case NANA_RES_VAL:
        return nana_buf_append(out, r->v->data, r->v->len);
    case NANA_RES_ENCODED:
    case NANA_RES_ROWS:
        break;
    }
    return nana_err_set(NANA_ERR_INTERNAL, "a result that is not JSON where JSON was expected");
}

/*
 * Encodes the answer of |c| (the core's result or error) into its body or
 * its status: on whichever thread answered.
 */
static void encode_answer(gcall *c)
{
    nana_core_call *k = &c->core;
    nana_buf *b = &c->body;
    int code = k->err.code;
    gkind kind = c->gm->kind;
    bool not_found = code == NANA_ERR_NOTFOUND && (kind == G_GET || kind == G_DELETE);
    bool call_error = false;
    if (code && kind == G_CALL) {
        bool expected;
        const char *field;
        (void)nana_core_error_type(code, &field, &expected);
        /* Refused before it ran, or the server's fault: a status. */
        call_error = expected && code != NANA_ERR_TIMEOUT && code != NANA_ERR_OVERLOAD &&
                     code != NANA_ERR_RATE && code != NANA_ERR_SHUTDOWN &&
                     code != NANA_ERR_TOOEARLY && code != NANA_ERR_NOLEADER;
    }
    if (code && !not_found && !call_error) {
        nana_grpc_error ge;
        nana_grpc_error_from(&ge, &k->err, 0);
        if (!nana_grpc_err_is_public(code))
            nana_log(NANA_LOG_ERROR, "grpc call %s failed: %s: %s", c->head.path,
                     nana_strerror(code), k->err.msg);
        c->status = ge.status;
        /* No leader yet: gRPC's retry policy may send it again after this. */
        if (code == NANA_ERR_NOLEADER) c->pushback_ms = NANA_GDOOR_NOLEADER_PUSHBACK_MS;
        snprintf(c->message, sizeof(c->message), "%s", ge.message);
        b->len = 0;
        nana_core_result_clear(&k->res);
        return;
    }
    size_t at = 0;
    int rc = nana_pbw_frame_begin(b, &at);
    if (!rc) {
        switch (kind) {
        case G_GET: /* GetReply {found = 1, value_json = 2} */
            if (!not_found) {
                rc = nana_pbw_uint(b, 1, 1);
                if (!rc && k->res.kind == NANA_RES_VAL)
                    rc = nana_pbw_bytes(b, 2, k->res.v->data, k->res.v->len);
            }
            break;
        case G_DELETE: /* DeleteReply {existed = 1} */
            if (!not_found) rc = nana_pbw_uint(b, 1, 1);
            break;
        case G_SET:
        case G_BATCH_SET:
            break; /* empty replies */
        case G_CALL: {
            nana_buf t;
            nana_buf_init(&t, 0);
            if (call_error) { /* CallReply {error = 2: CallError {type, message, code}} */
                bool expected;
                const char *field;
                const char *type = nana_core_error_type(code, &field, &expected);
                rc = nana_pbw_bytes(&t, 1, type, strlen(type));
                if (!rc) rc = nana_pbw_bytes(&t, 2, k->err.msg, strlen(k->err.msg));
                if (!rc && field) rc = nana_pbw_bytes(&t, 3, field, strlen(field));
                if (!rc) rc = nana_pbw_bytes(b, 2, t.data, t.len);
            } else { /* CallReply {result_json = 1} */
                rc = result_json(&k->res, &t);
                if (!rc) rc = nana_pbw_bytes(b, 1, t.data, t.len);
            }
            nana_buf_free(&t);
            break;
        }
        case G_BATCH_GET: {
            /* BatchGetReply {items = 1: BatchGetItem {key, found, value_json}}, in
             * the order of the request's keys; batch_get answered a JSON object
             * of the keys it found. */
            const Nanasqlite__V1__BatchGetRequest *r = (const void *)c->req;
            nana_json_doc *doc = NULL;
            nana_json *obj = NULL;
            if (k->res.kind == NANA_RES_VAL)
                rc = nana_json_parse(k->res.v->data, k->res.v->len, 0, NANA_JSON_MAX_DEPTH_LIMIT,
                                     &doc, &obj);
            nana_buf item, val;
            nana_buf_init(&item, 0);
            nana_buf_init(&val, 0);
            for (size_t i = 0; !rc && i < r->n_keys; i++) {
                const char *key = r->keys[i];
                nana_json *v = obj && obj->type == NANA_JSON_OBJECT
                                   ? nana_json_object_get(obj, key, strlen(key))
                                   : NULL;
                item.len = 0;
                val.len = 0;
                rc = nana_pbw_bytes(&item, 1, key, strlen(key));
                if (!rc && v) rc = nana_pbw_uint(&item, 2, 1);
                if (!rc && v) rc = nana_json_write(&val, v);
                if (!rc && v) rc = nana_pbw_bytes(&item, 3, val.data, val.len);
                if (!rc) rc = nana_pbw_bytes(b, 1, item.data, item.len);
            }
            nana_buf_free(&item);
            nana_buf_free(&val);
            nana_json_doc_free(doc);
            break;
        }
        default:
            break;
        }
    }
    nana_core_result_clear(&k->res);
    if (rc) {
        b->len = 0;
        c->status = NANA_GRPC_RESOURCE_EXHAUSTED;
        snprintf(c->message, sizeof(c->message), "out of memory for the reply");
        return;
    }
    nana_pbw_frame_end(b, at);
    c->status = NANA_GRPC_OK;
    c->message[0] = 0;
}

/* ---- the core's ops ------------------------------------------------------------- */

/* Converts a JSON array or object text into msgpack in the arena. */
static int json_to_mp(nana_arena *arena, const char *json, const nana_mp_reader *empty,
                      nana_mp_reader *out, uint32_t *count, bool object, nana_error *err)
{
    if (!json || !*json) {
        *out = *empty;
        *count = 0;
        return NANA_OK;
    }
    nana_buf b;
    nana_buf_init(&b, 0);
    int rc = nana_mp_from_json_text(&b, json, strlen(json));
    nana_mp_item it;
    nana_mp_reader r;
    if (!rc) {
        nana_mp_reader_init(&r, (const uint8_t *)b.data, b.len);
        rc = nana_mp_read(&r, &it);
    }
    if (!rc && it.type != (object ? NANA_MP_MAP : NANA_MP_ARRAY))
        rc = nana_err_set(NANA_ERR_TYPE, "%s must be a JSON %s",
                          object ? "kwargs_json" : "args_json", object ? "object" : "array");
    if (rc) {
        nana_buf_free(&b);
        return nana_error_capture(err, rc == NANA_ERR_NOMEM ? rc : NANA_ERR_TYPE);
    }
    uint8_t *copy = nana_arena_alloc(arena, b.len);
    if (!copy) {
        nana_buf_free(&b);
        return nana_error_setf(err, NANA_ERR_NOMEM, "out of memory");
    }
    memcpy(copy, b.data, b.len);
    nana_mp_reader_init(out, copy, b.len);
    nana_mp_item skip;
    (void)nana_mp_read(out, &skip); /* past the array or map header */
    *count = skip.v.count;
    nana_buf_free(&b);
    return NANA_OK;
}

static int bind_call(const nana_core_call *k, const nana_bind_spec *spec, unsigned max_depth,
                     nana_arena *arena, nana_args *out, nana_error *err)
{
    const gcall *c = (const gcall *)(const void *)k;
    const Nanasqlite__V1__CallRequest *r = (const void *)c->req;
    static const uint8_t none[1] = {0x90};
    nana_mp_reader empty;
    nana_mp_reader_init(&empty, none, 1);
    nana_bind_src src;
    int rc = json_to_mp(arena, r->args_json, &empty, &src.args, &src.nargs, false, err);
    if (!rc) rc = json_to_mp(arena, r->kwargs_json, &empty, &src.kwargs, &src.nkwargs, true, err);
    if (rc) return rc;
    rc = nana_bind_call(&src, spec, max_depth, arena, out);
    return rc ? nana_error_capture(err, rc) : NANA_OK;
}

/* Binds a typed method's fields. */
static int bind_typed(const nana_core_call *k, const nana_bind_spec *spec, unsigned max_depth,
                      nana_arena *arena, nana_args *out, nana_error *err)
{
    (void)spec;
    (void)max_depth;
    const gcall *c = (const gcall *)(const void *)k;
    memset(out, 0, sizeof(*out));
    switch (c->gm->kind) {
    case G_GET: {
        const Nanasqlite__V1__GetRequest *r = (const void *)c->req;
        out->a[0] = (nana_arg){.s = r->key, .n = strlen(r->key), .set = true};
        break;
    }
    case G_DELETE: {
        const Nanasqlite__V1__DeleteRequest *r = (const void *)c->req;
        out->a[0] = (nana_arg){.s = r->key, .n = strlen(r->key), .set = true};
        break;
    }
    case G_SET: {
        const Nanasqlite__V1__SetRequest *r = (const void *)c->req;
        out->a[0] = (nana_arg){.s = r->key, .n = strlen(r->key), .set = true};
        out->a[1] = (nana_arg){.s = r->value_json, .n = strlen(r->value_json), .set = true};
        break;
    }
    case G_BATCH_GET: {
        const Nanasqlite__V1__BatchGetRequest *r = (const void *)c->req;
        nana_key *keys = nana_arena_alloc(arena, (r->n_keys ? r->n_keys : 1) * sizeof(*keys));
        if (!keys) return nana_error_setf(err, NANA_ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < r->n_keys; i++)
            keys[i] = (nana_key){r->keys[i], strlen(r->keys[i])};
        out->a[0] = (nana_arg){.keys = keys, .count = r->n_keys, .set = true};
        break;
    }
    case G_BATCH_SET: {
        const Nanasqlite__V1__BatchSetRequest *r = (const void *)c->req;
        nana_kv_pair *p = nana_arena_alloc(arena, (r->n_entries ? r->n_entries : 1) * sizeof(*p));
        if (!p) return nana_error_setf(err, NANA_ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < r->n_entries; i++) {
            const char *v = r->entries[i]->value_json;
            p[i] = (nana_kv_pair){r->entries[i]->key, strlen(r->entries[i]->key), v, strlen(v)};
        }
        out->a[0] = (nana_arg){.pairs = p, .count = r->n_entries, .set = true};
        break;
    }
    default:
        return nana_error_setf(err, NANA_ERR_INTERNAL, "no binding for this method");
    }
    return NANA_OK;
}

/* Get's key, for the cache's fast path. */
static bool only_key(const nana_core_call *k, const char **key, size_t *klen)
{
    const gcall *c = (const gcall *)(const void *)k;
    const Nanasqlite__V1__GetRequest *r = (const void *)c->req;
    *key = r->key;
    *klen = strlen(r->key);
    return true;
}

/* The core's answer (any thread): encoded here, sent from the connection's. */
static void answer(nana_core_call *k)
{
    gcall *c = (gcall *)(void *)k;
    encode_answer(c);
    c->answered = true;
    c->body_eof = true;
    atomic_fetch_add(&c->d->st_calls, 1);
    nana_gdoor_post_answer(c);
}

static void release(nana_core_call *k)
{
    nana_gcall_unref((gcall *)(void *)k);
}

/* A cached value in Get's reply form: GetReply {found: true, value_json}. */
static int encode_get(nana_buf *out, const char *json, size_t len)
{
    int rc = nana_pbw_uint(out, 1, 1);
    if (!rc) rc = nana_pbw_bytes(out, 2, json, len);
    return rc;
}

/* A cached value in Call's reply form: CallReply {result_json}. */
static int encode_call(nana_buf *out, const char *json, size_t len)
{
    return nana_pbw_bytes(out, 1, json, len);
}

const nana_door_ops nana_gdoor_ops_get = {
    .bind = bind_typed,
    .only_key = only_key,
    .answer = answer,
    .release = release,
    .encode = encode_get,
    .form = FORM_GET,
};

const nana_door_ops nana_gdoor_ops_call = {
    .bind = bind_call,
    .answer = answer,
    .release = release,
    .encode = encode_call,
    .form = FORM_CALL,
};

const nana_door_ops nana_gdoor_ops_other = {
    .bind = bind_typed,
    .answer = answer,
    .release = release,
    .encode = encode_call,
    .form = FORM_CALL,
};

/* ---- dispatch ------------------------------------------------------------------ */

/* Runs a NanaSQLite method: answered now (a refusal, a cached Get) or by
 * the store's threads. */
static void run(gcall *c)
{
    nana_core_call *k = &c->core;
    size_t at;
    nana_buf *b = &c->body;
    b->len = 0;
    bool cached =
        k->m && (nana_method_flags(k->m) & NANA_M_CACHED) && k->door == &nana_gdoor_ops_get;
    int rc = cached ? nana_pbw_frame_begin(b, &at) : NANA_OK;
    int done = nana_core_try(c->d->core, k, rc || !cached ? NULL : b);
    if (done == NANA_CORE_DONE) {
        if (cached && !k->err.code && k->res.kind == NANA_RES_ENCODED) {
            nana_pbw_frame_end(b, at);
            nana_core_result_clear(&k->res);
            c->status = NANA_GRPC_OK;
        } else {
            b->len = 0;
            encode_answer(c);
        }
        c->answered = true;
        c->body_eof = true;
        atomic_fetch_add(&c->d->st_calls, 1);
        nana_gdoor_respond(c);
        return;
    }
    b->len = 0;
    atomic_fetch_add(&c->refs, 1); /* the core's, until release */
    c->in_core = true;
    nana_core_start(c->d->core, k);
}

void nana_gdoor_dispatch(gcall *c)
{
    if (GKIND_AQL(c->gm->kind)) {
        nana_gdoor_aql_dispatch(c);
        return;
    }
    switch (c->gm->kind) {
    case G_HEALTH_CHECK:
    case G_HEALTH_WATCH:
        health(c);
        return;
    case G_REFLECT:
        return; /* answered message by message */
    case G_GET: {
        const Nanasqlite__V1__GetRequest *r = (const void *)c->req;
        if (!text_ok(c, "key", r->key)) return;
        if (!core_call(c, &nana_gdoor_ops_get, "__getitem__", 11, r->db, r->table)) return;
        break;
    }
    case G_SET: {
        const Nanasqlite__V1__SetRequest *r = (const void *)c->req;
        if (!text_ok(c, "key", r->key) || !text_ok(c, "value_json", r->value_json)) return;
        if (!core_call(c, &nana_gdoor_ops_other, "__setitem__", 11, r->db, r->table)) return;
        break;
    }
    case G_DELETE: {
        const Nanasqlite__V1__DeleteRequest *r = (const void *)c->req;
        if (!text_ok(c, "key", r->key)) return;
        if (!core_call(c, &nana_gdoor_ops_other, "__delitem__", 11, r->db, r->table)) return;
        break;
    }
    case G_BATCH_GET: {
        const Nanasqlite__V1__BatchGetRequest *r = (const void *)c->req;
        for (size_t i = 0; i < r->n_keys; i++)
            if (!text_ok(c, "a key", r->keys[i])) return;
        if (!core_call(c, &nana_gdoor_ops_other, "batch_get", 9, r->db, r->table)) return;
        break;
    }
    case G_BATCH_SET: {
        const Nanasqlite__V1__BatchSetRequest *r = (const void *)c->req;
        for (size_t i = 0; i < r->n_entries; i++)
            if (!text_ok(c, "a key", r->entries[i]->key) ||
                !text_ok(c, "a value_json", r->entries[i]->value_json))
                return;
        if (!core_call(c, &nana_gdoor_ops_other, "batch_update", 12, r->db, r->table)) return;
        break;
    }
    case G_CALL: {
        const Nanasqlite__V1__CallRequest *r = (const void *)c->req;
        if (!text_ok(c, "method", r->method) || !text_ok(c, "args_json", r->args_json) ||
            !text_ok(c, "kwargs_json", r->kwargs_json))
            return;
        if (!core_call(c, &nana_gdoor_ops_call, r->method, strlen(r->method), r->db, r->table))
            return;
        break;
    }
    default: /* AQL: above */
        return;
    }
    run(c);
}
