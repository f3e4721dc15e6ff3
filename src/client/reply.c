/*
 * reply.c - the client's side of the wire format, free of I/O: request
 * frames built from JSON text, reply frames read into nana_result, and
 * the authentication messages. Frames are a u32 big-endian length and one
 * msgpack value (see docs/PROTOCOL.md).
 */
#include "client_int.h"
#include "proto/nana_frame.h"
#include "util/nana_json.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Nesting accepted in arguments and results (the server's own limit). */
#define NC_MAX_DEPTH 256

const char *nana_client_version(void)
{
    return NANA_CLIENT_VERSION;
}

void nana_result_free(nana_result *r)
{
    if (!r) return;
    free(r->json);
    free(r->error_type);
    free(r->message);
    free(r->code);
    memset(r, 0, sizeof(*r));
}

const char *nana_client_status_name(int status)
{
    switch (status) {
    case NANA_CLIENT_OK:
        return "OK";
    case NANA_CLIENT_ESERVER:
        return "ServerError";
    case NANA_CLIENT_ETIMEOUT:
        return "TimeoutError";
    case NANA_CLIENT_EUNKNOWN:
        return "UnknownOutcomeError";
    case NANA_CLIENT_ECONNECT:
        return "NanaSQLiteConnectionError";
    case NANA_CLIENT_EAUTH:
        return "AuthenticationError";
    case NANA_CLIENT_ECLOSED:
        return "NanaSQLiteClosedError";
    case NANA_CLIENT_EBUSY:
        return "BusyError";
    case NANA_CLIENT_EBREAKER:
        return "CircuitOpenError";
    case NANA_CLIENT_EINVALID:
        return "ValueError";
    case NANA_CLIENT_EPROTOCOL:
        return "ProtocolError";
    case NANA_CLIENT_ENOMEM:
        return "MemoryError";
    case NANA_CLIENT_EQUERY:
        return "QueryError";
    default:
        return "NanaSQLiteError";
    }
}

/* A malloc'd copy of |n| bytes as a NUL-terminated string, or NULL. */
static char *dup_n(const void *p, size_t n)
{
    char *s = malloc(n + 1);
    if (!s) return NULL;
    if (n) memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

void nc_result_set(nana_result *r, int status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    uint64_t token = r->token;
    nana_result_free(r);
    r->token = token;
    r->status = status;
    const char *name = nana_client_status_name(status);
    r->error_type = dup_n(name, strlen(name));
    r->message = dup_n(msg, strlen(msg));
}

/* Appends JSON text |text| (or |fallback| when NULL) as msgpack, checking
 * it is of |want| type. */
static int put_json(nana_buf *out, const char *text, nana_json_type want, const char *what,
                    nana_result *err)
{
    nana_json_doc *doc = NULL;
    nana_json *root = NULL;
    if (nana_json_parse(text, strlen(text), 0, NC_MAX_DEPTH, &doc, &root))
        return nc_result_error(err, NANA_CLIENT_EINVALID, "%s is not valid JSON: %s", what,
                               nana_errmsg());
    int rc = NANA_CLIENT_OK;
    if (root->type != want)
        rc = nc_result_error(err, NANA_CLIENT_EINVALID, "%s must be a JSON %s", what,
                             want == NANA_JSON_ARRAY ? "array" : "object");
    else if (nana_mp_from_json(out, root))
        rc = nc_result_error(err, NANA_CLIENT_EINVALID, "%s: %s", what, nana_errmsg());
    nana_json_doc_free(doc);
    return rc;
}

int nc_build_call(nana_buf *out, const char *method, const char *args_json, const char *kwargs_json,
                  const nana_call_opts *co, nana_result *err)
{
    return nc_build_call_db(out, method, args_json, kwargs_json, co, false, err);
}

int nc_build_call_db(nana_buf *out, const char *method, const char *args_json,
                     const char *kwargs_json, const nana_call_opts *co, bool default_db,
                     nana_result *err)
{
    if (!method || !*method)
        return nc_result_error(err, NANA_CLIENT_EINVALID, "a call needs a method name");
    const char *db = co ? co->db : NULL, *table = co ? co->table : NULL;
    bool db_nil = !db && default_db;
    size_t at;
    int rc = nana_frame_begin(out, &at);
    if (!rc) rc = nana_mp_put_map(out, 3u + (db != NULL || db_nil) + (table != NULL));
    if (!rc) rc = nana_mp_put_cstr(out, "method");
    if (!rc) rc = nana_mp_put_cstr(out, method);
    if (!rc) rc = nana_mp_put_cstr(out, "args");
    if (rc) return nc_result_error(err, NANA_CLIENT_ENOMEM, "out of memory");
    rc = args_json ? put_json(out, args_json, NANA_JSON_ARRAY, "args", err)
                   : (nana_mp_put_array(out, 0) ? NANA_CLIENT_ENOMEM : 0);
    if (rc) return rc == NANA_CLIENT_ENOMEM ? nc_result_error(err, rc, "out of memory") : rc;
    if (nana_mp_put_cstr(out, "kwargs"))
        return nc_result_error(err, NANA_CLIENT_ENOMEM, "out of memory");
    rc = kwargs_json ? put_json(out, kwargs_json, NANA_JSON_OBJECT, "kwargs", err)
                     : (nana_mp_put_map(out, 0) ? NANA_CLIENT_ENOMEM : 0);
    if (rc) return rc == NANA_CLIENT_ENOMEM ? nc_result_error(err, rc, "out of memory") : rc;
    if (db) rc = nana_mp_put_cstr(out, "db") || nana_mp_put_cstr(out, db);
    if (db_nil) rc = nana_mp_put_cstr(out, "db") || nana_mp_put_nil(out);
    if (!rc && table) rc = nana_mp_put_cstr(out, "table") || nana_mp_put_cstr(out, table);
    if (rc) return nc_result_error(err, NANA_CLIENT_ENOMEM, "out of memory");
    if (nana_frame_end(out, at))
        return nc_result_error(err, NANA_CLIENT_EINVALID, "the request is too large");
    return NANA_CLIENT_OK;
}

/* A string field as a malloc'd C string, or NULL when absent / not a string. */
static char *field_str(const nana_mp_field *f)
{
    if (!f->found || f->item.type != NANA_MP_STR) return NULL;
    return dup_n(f->item.v.s.p, f->item.v.s.n);
}

int nc_parse_reply(const uint8_t *p, size_t n, nana_result *r)
{
    nana_mp_reader rd;
    nana_mp_item top;
    if (nana_frame_open(p, n, &rd) || nana_mp_read(&rd, &top))
        return nc_result_error(r, NANA_CLIENT_EPROTOCOL, "the reply is not a well-formed frame");
    if (top.type == NANA_MP_STR) /* "Unauthorized"-style bare strings are not call replies */
        return nc_result_error(r, NANA_CLIENT_EPROTOCOL, "unexpected reply '%.*s'",
                               (int)(top.v.s.n > 64 ? 64 : top.v.s.n), (const char *)top.v.s.p);
    if (top.type != NANA_MP_MAP)
        return nc_result_error(r, NANA_CLIENT_EPROTOCOL, "the reply is not a map");
    nana_mp_field f[] = {{.name = "status"},
                         {.name = "result"},
                         {.name = "error_type"},
                         {.name = "message"},
                         {.name = "code"}};
    if (nana_frame_fields(&rd, top.v.count, f, sizeof(f) / sizeof(f[0]), NC_MAX_DEPTH + 2))
        return nc_result_error(r, NANA_CLIENT_EPROTOCOL, "the reply is malformed msgpack");
    uint64_t token = r->token;
    nana_result_free(r);
    r->token = token;
    if (f[0].found && nana_mp_item_is(&f[0].item, "success")) {
        nana_buf json;
        nana_buf_init(&json, 0);
        nana_mp_reader v = f[1].at;
        if (!f[1].found) {
            if (nana_buf_puts(&json, "null")) return nc_result_error(r, NANA_CLIENT_ENOMEM, "oom");
        } else if (nana_mp_to_json(&v, &json, NC_MAX_DEPTH)) {
            nana_buf_free(&json);
            return nc_result_error(r, NANA_CLIENT_EPROTOCOL,
                                   "the result cannot be shown as JSON: %s", nana_errmsg());
        }
        r->json = nana_buf_detach(&json, &r->json_len);
        if (!r->json) return nc_result_error(r, NANA_CLIENT_ENOMEM, "out of memory");
        r->status = NANA_CLIENT_OK;
        return r->status;
    }
    if (f[0].found && nana_mp_item_is(&f[0].item, "error")) {
        r->status = NANA_CLIENT_ESERVER;
        r->error_type = field_str(&f[2]);
        if (!r->error_type) r->error_type = dup_n("NanaSQLiteError", 15);
        r->message = field_str(&f[3]);
        if (!r->message) r->message = dup_n("", 0);
        r->code = field_str(&f[4]);
        if (!r->error_type || !r->message)
            return nc_result_error(r, NANA_CLIENT_ENOMEM, "out of memory");
        return r->status;
    }
    return nc_result_error(r, NANA_CLIENT_EPROTOCOL, "the reply has no status");
}

nc_auth_step nc_auth_next(const uint8_t *p, size_t n, bool responded, bool have_key,
                          uint8_t challenge[32], int *status, char *msg, size_t msgcap)
{
    nana_auth_reply a = nana_frame_auth_reply(p, n, challenge, msg, msgcap);
    *status = NANA_CLIENT_EAUTH;
    switch (a) {
    case NANA_AUTH_OK:
        return NC_AUTH_DONE;
    case NANA_AUTH_CHALLENGE:
        if (responded) {
            *status = NANA_CLIENT_EPROTOCOL;
            snprintf(msg, msgcap, "the server sent a second challenge after the signed response");
            return NC_AUTH_FAIL;
        }
        if (have_key) return NC_AUTH_SIGN;
        snprintf(msg, msgcap,
                 "the server asks to sign a challenge (the account logs in with a key, or no "
                 "client certificate logged it in), but no private key was loaded");
        return NC_AUTH_FAIL;
    case NANA_AUTH_FAILED:
        snprintf(msg, msgcap,
                 "authentication failed (the server does not accept this key, certificate or "
                 "account)");
        return NC_AUTH_FAIL;
    case NANA_AUTH_BANNED:
        snprintf(msg, msgcap,
                 "authentication refused: this address is banned after repeated failures");
        return NC_AUTH_FAIL;
    default:
        return NC_AUTH_FAIL; /* |msg| says what was wrong with the reply */
    }
}

int nc_build_typed(nana_buf *out, const nc_call_args *a, bool default_db, nana_result *err)
{
    if (!a->key) return nc_result_error(err, NANA_CLIENT_EINVALID, "a typed call needs a key");
    if (a->kind == NC_SET && !a->value)
        return nc_result_error(err, NANA_CLIENT_EINVALID, "set needs a value");
    nana_buf args;
    nana_buf_init(&args, 0);
    int rc = nana_buf_putc(&args, '[') || nana_json_write_string(&args, a->key, strlen(a->key));
    if (!rc && a->kind == NC_SET) rc = nana_buf_putc(&args, ',') || nana_buf_puts(&args, a->value);
    if (!rc) rc = nana_buf_putc(&args, ']') || nana_buf_putc(&args, '\0');
    if (rc) {
        nana_buf_free(&args);
        return nc_result_error(err, NANA_CLIENT_ENOMEM, "out of memory");
    }
    const char *method = a->kind == NC_GET   ? "__getitem__"
                         : a->kind == NC_SET ? "__setitem__"
                                             : "__delitem__";
    rc = nc_build_call_db(out, method, args.data, NULL, a->co, default_db, err);
    nana_buf_free(&args);
    return rc;
}

void nc_typed_result(nc_kind kind, nana_result *r)
{
    const char *json = NULL;
    if (kind == NC_SET && r->status == NANA_CLIENT_OK)
        json = "null";
    else if (kind == NC_DELETE && r->status == NANA_CLIENT_OK)
        json = "true";
    else if (kind == NC_DELETE && r->status == NANA_CLIENT_ESERVER && r->error_type &&
             !strcmp(r->error_type, "KeyError"))
        json = "false";
    if (!json) return;
    uint64_t token = r->token;
    nana_result_free(r);
    r->token = token;
    r->json = dup_n(json, strlen(json));
    if (!r->json) {
        nc_result_set(r, NANA_CLIENT_ENOMEM, "out of memory");
        return;
    }
    r->json_len = strlen(json);
    r->status = NANA_CLIENT_OK;
}
