/*
 * request.c - reading a request: the frame's shape (nana_request_parse).
 * Nothing is copied while parsing: a nana_request points into the frame.
 * Its arguments are bound by the shared binder (bind/nana_bind.h).
 */
#include "door_nana/door_int.h"

#include <stdio.h>
#include <string.h>

/* ---- parsing ------------------------------------------------------------ */

void nana_request_rebase(nana_request *c, const uint8_t *from, const uint8_t *to)
{
#define MOVE(p) ((p) = (p) ? (const void *)(to + ((const uint8_t *)(p)-from)) : (p))
    MOVE(c->method);
    MOVE(c->db);
    MOVE(c->table);
    MOVE(c->args.p);
    MOVE(c->args.end);
    MOVE(c->kwargs.p);
    MOVE(c->kwargs.end);
#undef MOVE
}

bool nana_mp_is_str(const uint8_t *msg, size_t len, const char *s)
{
    nana_mp_reader r;
    nana_mp_item it;
    nana_mp_reader_init(&r, msg, len);
    if (nana_mp_read(&r, &it) || it.type != NANA_MP_STR || nana_mp_left(&r)) return false;
    size_t n = strlen(s);
    return it.v.s.n == n && memcmp(it.v.s.p, s, n) == 0;
}

/* Reads a string-valued request field. */
static int field_str(nana_mp_reader *r, const char *field, const char **p, uint32_t *n)
{
    nana_mp_item it;
    int rc = nana_mp_read(r, &it);
    if (rc) return rc;
    if (it.type != NANA_MP_STR)
        return nana_err_set(NANA_ERR_TYPE, "Invalid request: '%s' must be a string, not %s", field,
                            nana_mp_type_name(it.type));
    if (!nana_utf8_valid((const char *)it.v.s.p, it.v.s.n))
        return nana_err_set(NANA_ERR_INVALID, "Invalid request: '%s' is not valid UTF-8", field);
    if (memchr(it.v.s.p, 0, it.v.s.n))
        return nana_err_set(NANA_ERR_INVALID, "Invalid request: '%s' contains a NUL byte", field);
    *p = (const char *)it.v.s.p;
    *n = it.v.s.n;
    return NANA_OK;
}

/* Like field_str, but None leaves the field unset. */
static int field_opt_str(nana_mp_reader *r, const char *field, const char **p, uint32_t *n)
{
    nana_mp_reader peek = *r;
    nana_mp_item v;
    int rc = nana_mp_read(&peek, &v);
    if (rc) return rc;
    if (v.type != NANA_MP_NIL) return field_str(r, field, p, n);
    *r = peek;
    return NANA_OK;
}

/* The nesting a request may have; nana_mp_skip and the transcoder can walk it. */
#define CALL_DEPTH NANA_REQUEST_MAX_DEPTH
_Static_assert(NANA_REQUEST_MAX_DEPTH <= NANA_MP_MAX_DEPTH,
               "the request walk must reach every value");
_Static_assert(NANA_VALUE_MAX_DEPTH <= NANA_MP_MAX_DEPTH, "the transcoder must reach every value");

/* Checks that |msg| is one well-formed msgpack message, nested no deeper
 * than CALL_DEPTH, with nothing after it. */
static int check_whole(const uint8_t *msg, size_t len)
{
    nana_mp_reader whole;
    nana_mp_reader_init(&whole, msg, len);
    int rc = nana_mp_skip(&whole, CALL_DEPTH);
    if (rc == NANA_ERR_TOOBIG)
        return nana_err_set(NANA_ERR_TOOBIG,
                            "Invalid request: nested deeper than %d levels (a value may nest at "
                            "most %d)",
                            CALL_DEPTH, NANA_VALUE_MAX_DEPTH);
    if (rc) return nana_err_set(NANA_ERR_INVALID, "Invalid request: not a msgpack message");
    if (nana_mp_left(&whole))
        return nana_err_set(NANA_ERR_INVALID, "Invalid request: bytes after the message");
    return NANA_OK;
}

/* Reads the request map's fields into |out| (see nana_request_parse). Every
 * value is read or skipped, with depth limits counted from the top of the
 * message, so a message this accepts is also one check_whole accepts. */
static int parse_fields(const uint8_t *msg, size_t len, nana_request *out)
{
    nana_mp_reader r;
    nana_mp_item it;
    nana_mp_reader_init(&r, msg, len);
    int rc = nana_mp_read(&r, &it);
    if (rc) return rc;
    if (it.type != NANA_MP_MAP)
        return nana_err_set(NANA_ERR_INVALID,
                            "Invalid request: expected a map with 'method', got %s",
                            nana_mp_type_name(it.type));
    bool have_args = false, have_kwargs = false;
    for (uint32_t i = 0; i < it.v.count; i++) {
        nana_mp_item k;
        if ((rc = nana_mp_read(&r, &k))) return rc;
        if (k.type != NANA_MP_STR)
            return nana_err_set(NANA_ERR_TYPE, "Invalid request: map keys must be strings, not %s",
                                nana_mp_type_name(k.type));
        const char *kp = (const char *)k.v.s.p;
        uint32_t kn = k.v.s.n;
#define KEY_IS(lit) (kn == sizeof(lit) - 1 && memcmp(kp, lit, kn) == 0)
        if (KEY_IS("method")) {
            rc = field_str(&r, "method", &out->method, &out->mlen);
        } else if (KEY_IS("db")) {
            nana_mp_reader peek = r;
            nana_mp_item v;
            if (!nana_mp_read(&peek, &v) && v.type == NANA_MP_NIL) out->db_nil = true;
            rc = field_opt_str(&r, "db", &out->db, &out->dblen);
        } else if (KEY_IS("table")) {
            rc = field_opt_str(&r, "table", &out->table, &out->tlen);
        } else if (KEY_IS("args") || KEY_IS("kwargs")) {
            bool is_args = kn == 4;
            nana_mp_item v;
            if ((rc = nana_mp_read(&r, &v))) return rc;
            if (v.type == NANA_MP_NIL) continue;
            if (is_args && v.type != NANA_MP_ARRAY)
                return nana_err_set(NANA_ERR_TYPE, "Invalid request: 'args' must be a list, not %s",
                                    nana_mp_type_name(v.type));
            if (!is_args && v.type != NANA_MP_MAP)
                return nana_err_set(NANA_ERR_TYPE,
                                    "Invalid request: 'kwargs' must be a dict, not %s",
                                    nana_mp_type_name(v.type));
            if (is_args) {
                out->args = r;
                out->nargs = v.v.count;
                have_args = true;
            } else {
                out->kwargs = r;
                out->nkwargs = v.v.count;
                have_kwargs = true;
            }
            /* their elements sit two levels down: the map, then the list or dict */
            for (uint32_t j = 0; j < v.v.count * (is_args ? 1u : 2u) && !rc; j++)
                rc = nana_mp_skip(&r, CALL_DEPTH - 2);
        } else {
            /* unknown fields are ignored; their values sit one level down */
            rc = nana_mp_skip(&r, CALL_DEPTH - 1);
        }
#undef KEY_IS
        if (rc) return rc;
    }
    (void)have_args;
    (void)have_kwargs;
    if (nana_mp_left(&r))
        return nana_err_set(NANA_ERR_INVALID, "Invalid request: bytes after the message");
    if (!out->method) return nana_err_set(NANA_ERR_INVALID, "Invalid request: no 'method'");
    out->m = nana_method_find(out->method, out->mlen);
    return NANA_OK;
}

int nana_request_parse(const uint8_t *msg, size_t len, nana_request *out)
{
    memset(out, 0, sizeof(*out));
    /* One walk over a good message. A bad one is walked again as a whole
     * first, so the caller sees the same error as if the whole message had
     * been checked before any field: malformed or too deep beats a field
     * of the wrong type. */
    int rc = parse_fields(msg, len, out);
    if (rc == NANA_OK) return NANA_OK;
    char first[NANA_ERRMSG_MAX];
    snprintf(first, sizeof(first), "%s", nana_errmsg());
    int wrc = check_whole(msg, len);
    if (wrc) return wrc;
    return nana_err_set(rc, "%s", first);
}

int nana_request_bind(const nana_request *c, const nana_bind_spec *spec, unsigned max_depth,
                      nana_arena *arena, nana_args *out)
{
    nana_bind_src src = {c->args, c->nargs, c->kwargs, c->nkwargs};
    return nana_bind_call(&src, spec, max_depth, arena, out);
}
