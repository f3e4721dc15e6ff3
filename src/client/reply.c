/*
 * reply.c - the client's side of the wire format, free of I/O: request
 * frames built from JSON text, reply frames read into nana_result, and
 * the authentication messages. Frames are a u32 big-endian length and one
 * msgpack value (see docs/PROTOCOL.md).
 */
#include "client_int.h"
#include "proto/nana_mp.h"
#include "util/nana_json.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Nesting accepted in arguments and results (the server's own limit). */
#define NC_MAX_DEPTH 256

uint64_t nc_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

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

/* Writes the u32 length in front of a frame built from offset 4. */
static void put_len(nana_buf *out)
{
    size_t n = out->len - 4;
    uint8_t *p = (uint8_t *)out->data;
    p[0] = (uint8_t)(n >> 24);
    p[1] = (uint8_t)(n >> 16);
    p[2] = (uint8_t)(n >> 8);
    p[3] = (uint8_t)n;
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
    if (!method || !*method)
        return nc_result_error(err, NANA_CLIENT_EINVALID, "a call needs a method name");
    const char *db = co ? co->db : NULL, *table = co ? co->table : NULL;
    static const uint8_t zero[4];
    int rc = nana_buf_append(out, zero, 4);
    if (!rc) rc = nana_mp_put_map(out, 3u + (db != NULL) + (table != NULL));
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
    if (!rc && table) rc = nana_mp_put_cstr(out, "table") || nana_mp_put_cstr(out, table);
    if (rc) return nc_result_error(err, NANA_CLIENT_ENOMEM, "out of memory");
    if (out->len - 4 > UINT32_MAX)
        return nc_result_error(err, NANA_CLIENT_EINVALID, "the request is too large");
    put_len(out);
    return NANA_CLIENT_OK;
}

int nc_build_string_frame(nana_buf *out, const char *s)
{
    static const uint8_t zero[4];
    if (nana_buf_append(out, zero, 4) || nana_mp_put_cstr(out, s)) return NANA_CLIENT_ENOMEM;
    put_len(out);
    return NANA_CLIENT_OK;
}

int nc_build_auth_response(nana_buf *out, const uint8_t sig[64], const char *account)
{
    static const uint8_t zero[4];
    int rc = nana_buf_append(out, zero, 4);
    if (!rc) rc = nana_mp_put_map(out, account ? 3 : 2);
    if (!rc) rc = nana_mp_put_cstr(out, "type") || nana_mp_put_cstr(out, "response");
    if (!rc) rc = nana_mp_put_cstr(out, "data") || nana_mp_put_bin(out, sig, 64);
    if (!rc && account) rc = nana_mp_put_cstr(out, "account") || nana_mp_put_cstr(out, account);
    if (rc) return NANA_CLIENT_ENOMEM;
    put_len(out);
    return NANA_CLIENT_OK;
}

/* Checks the u32 length and starts a reader on the body. */
static int open_frame(const uint8_t *p, size_t n, nana_mp_reader *r)
{
    if (n < 4) return -1;
    uint32_t len = ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
    if (len != n - 4) return -1;
    nana_mp_reader_init(r, p + 4, n - 4);
    return 0;
}

static bool str_is(const nana_mp_item *it, const char *s)
{
    size_t n = strlen(s);
    return it->type == NANA_MP_STR && it->v.s.n == n && !memcmp(it->v.s.p, s, n);
}

/* One string-keyed map entry: the key item and the value's reader position. */
typedef struct field {
    const char *name;
    nana_mp_item item; /* the value's header */
    nana_mp_reader at; /* the value, unread */
    bool found;
} field;

/* Walks a map of |count| entries filling the named |fields| (values of
 * other keys skipped). 0, or -1 for malformed msgpack or a non-string key. */
static int read_fields(nana_mp_reader *r, uint32_t count, field *fields, size_t nf)
{
    for (uint32_t i = 0; i < count; i++) {
        nana_mp_item k;
        if (nana_mp_read(r, &k) || k.type != NANA_MP_STR) return -1;
        field *hit = NULL;
        for (size_t j = 0; j < nf && !hit; j++)
            if (str_is(&k, fields[j].name)) hit = &fields[j];
        if (hit) {
            hit->at = *r;
            if (nana_mp_read(&hit->at, &hit->item)) return -1;
            hit->at = *r;
            hit->found = true;
        }
        if (nana_mp_skip(r, NC_MAX_DEPTH + 2)) return -1;
    }
    return nana_mp_left(r) ? -1 : 0;
}

/* A string field as a malloc'd C string, or NULL when absent / not a string. */
static char *field_str(const field *f)
{
    if (!f->found || f->item.type != NANA_MP_STR) return NULL;
    return dup_n(f->item.v.s.p, f->item.v.s.n);
}

int nc_parse_reply(const uint8_t *p, size_t n, nana_result *r)
{
    nana_mp_reader rd;
    nana_mp_item top;
    if (open_frame(p, n, &rd) || nana_mp_read(&rd, &top))
        return nc_result_error(r, NANA_CLIENT_EPROTOCOL, "the reply is not a well-formed frame");
    if (top.type == NANA_MP_STR) /* "Unauthorized"-style bare strings are not call replies */
        return nc_result_error(r, NANA_CLIENT_EPROTOCOL, "unexpected reply '%.*s'",
                               (int)(top.v.s.n > 64 ? 64 : top.v.s.n), (const char *)top.v.s.p);
    if (top.type != NANA_MP_MAP)
        return nc_result_error(r, NANA_CLIENT_EPROTOCOL, "the reply is not a map");
    field f[] = {{.name = "status"},
                 {.name = "result"},
                 {.name = "error_type"},
                 {.name = "message"},
                 {.name = "code"}};
    if (read_fields(&rd, top.v.count, f, sizeof(f) / sizeof(f[0])))
        return nc_result_error(r, NANA_CLIENT_EPROTOCOL, "the reply is malformed msgpack");
    uint64_t token = r->token;
    nana_result_free(r);
    r->token = token;
    if (f[0].found && str_is(&f[0].item, "success")) {
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
    if (f[0].found && str_is(&f[0].item, "error")) {
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

nc_auth_reply nc_parse_auth_reply(const uint8_t *p, size_t n, uint8_t challenge[32], char *msg,
                                  size_t msgcap)
{
    nana_mp_reader rd;
    nana_mp_item top;
    snprintf(msg, msgcap, "the server's authentication reply is malformed");
    if (open_frame(p, n, &rd) || nana_mp_read(&rd, &top)) return NC_AUTH_ERROR;
    if (top.type == NANA_MP_STR) {
        if (nana_mp_left(&rd)) return NC_AUTH_ERROR;
        if (str_is(&top, "AUTH_OK")) return NC_AUTH_OK;
        if (str_is(&top, "AUTH_FAILED")) return NC_AUTH_FAILED;
        if (str_is(&top, "AUTH_BANNED")) return NC_AUTH_BANNED;
        snprintf(msg, msgcap, "unexpected authentication reply '%.*s'",
                 (int)(top.v.s.n > 64 ? 64 : top.v.s.n), (const char *)top.v.s.p);
        return NC_AUTH_ERROR;
    }
    if (top.type != NANA_MP_MAP) return NC_AUTH_ERROR;
    field f[] = {{.name = "type"}, {.name = "data"}, {.name = "message"}};
    if (read_fields(&rd, top.v.count, f, 3)) return NC_AUTH_ERROR;
    if (f[0].found && str_is(&f[0].item, "challenge") && f[1].found &&
        f[1].item.type == NANA_MP_BIN && f[1].item.v.s.n == 32) {
        memcpy(challenge, f[1].item.v.s.p, 32);
        return NC_AUTH_CHALLENGE;
    }
    if (f[2].found && f[2].item.type == NANA_MP_STR)
        snprintf(msg, msgcap, "the server refused authentication: %.*s",
                 (int)(f[2].item.v.s.n > 200 ? 200 : f[2].item.v.s.n),
                 (const char *)f[2].item.v.s.p);
    return NC_AUTH_ERROR;
}
