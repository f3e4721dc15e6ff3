/*
 * nana_mp.c - the strict msgpack reader and writer (see nana_mp.h), and
 * transcoding to and from the JSON text the store keeps.
 */
#include "proto/nana_mp.h"

#include "util/nana_err.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- reading ------------------------------------------------------------ */

static uint64_t be(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/* The |bytes|-byte two's complement value |n| as a signed integer. */
static int64_t sign_extend(uint64_t n, unsigned bytes)
{
    if (bytes == 0 || bytes >= 8) return (int64_t)n;
    uint64_t sign = (uint64_t)1 << (8 * bytes - 1);
    return n & sign ? (int64_t)(n - 2 * sign) : (int64_t)n;
}

static int truncated(void)
{
    return nana_err_set(NANA_ERR_INVALID, "msgpack: truncated value");
}

/* Fills it->v.s with |n| bytes after a |hdr|-byte header. */
static int take_bytes(const nana_mp_reader *r, size_t hdr, uint64_t n, nana_mp_item *it,
                      size_t *used)
{
    if (n > nana_mp_left(r) - hdr) return truncated();
    it->v.s.p = r->p + hdr;
    it->v.s.n = (uint32_t)n;
    *used = hdr + (size_t)n;
    return NANA_OK;
}

/* A container of |n| elements (|per| items each) after |hdr| header bytes:
 * refused if the bytes left cannot hold that many. */
static int take_count(const nana_mp_reader *r, size_t hdr, uint64_t n, unsigned per,
                      nana_mp_item *it, size_t *used)
{
    if (n * per > nana_mp_left(r) - hdr)
        return nana_err_set(NANA_ERR_INVALID,
                            "msgpack: a container claims %llu elements in %zu bytes",
                            (unsigned long long)n, nana_mp_left(r) - hdr);
    it->v.count = (uint32_t)n;
    *used = hdr;
    return NANA_OK;
}

int nana_mp_read(nana_mp_reader *r, nana_mp_item *it)
{
    size_t left = nana_mp_left(r);
    if (!left) return truncated();
    const uint8_t *p = r->p;
    uint8_t c = p[0];
    size_t used = 1;
    int rc = NANA_OK;
    memset(it, 0, sizeof(*it));
    if (c <= 0x7f) {
        it->type = NANA_MP_INT;
        it->v.i = c;
    } else if (c >= 0xe0) {
        it->type = NANA_MP_INT;
        it->v.i = (int64_t)c - 0x100; /* negative fixint: -32..-1 */
    } else if (c <= 0x8f) {
        it->type = NANA_MP_MAP;
        rc = take_count(r, 1, c & 0x0f, 2, it, &used);
    } else if (c <= 0x9f) {
        it->type = NANA_MP_ARRAY;
        rc = take_count(r, 1, c & 0x0f, 1, it, &used);
    } else if (c <= 0xbf) {
        it->type = NANA_MP_STR;
        rc = take_bytes(r, 1, c & 0x1f, it, &used);
    } else {
        /* Fixed-size headers: how many length/value bytes follow the tag. */
        static const uint8_t extra[32] = {
            0, 0, 0, 0, 1, 2, 4, 1, 2, 4, 4, 8, 1, 2, 4, 8, /* c0..cf */
            1, 2, 4, 8, 1, 1, 1, 1, 1, 1, 2, 4, 2, 4, 2, 4, /* d0..df */
        };
        unsigned x = extra[c - 0xc0];
        if (left < 1 + (size_t)x) return truncated();
        uint64_t n = be(p + 1, x);
        switch (c) {
        case 0xc0:
            it->type = NANA_MP_NIL;
            break;
        case 0xc1:
            return nana_err_set(NANA_ERR_INVALID, "msgpack: reserved byte 0xc1");
        case 0xc2:
        case 0xc3:
            it->type = NANA_MP_BOOL;
            it->v.b = c == 0xc3;
            break;
        case 0xc4:
        case 0xc5:
        case 0xc6:
            it->type = NANA_MP_BIN;
            rc = take_bytes(r, 1 + x, n, it, &used);
            break;
        case 0xc7:
        case 0xc8:
        case 0xc9:
            /* ext: length, then a type byte, then the data */
            if (left < 2 + (size_t)x) return truncated();
            it->type = NANA_MP_EXT;
            it->ext_type = (int8_t)p[1 + x];
            rc = take_bytes(r, 2 + x, n, it, &used);
            break;
        case 0xca: {
            uint32_t u32 = (uint32_t)n;
            float f;
            memcpy(&f, &u32, sizeof(f));
            it->type = NANA_MP_FLOAT;
            it->v.f = (double)f;
            used = 5;
            break;
        }
        case 0xcb:
            it->type = NANA_MP_FLOAT;
            memcpy(&it->v.f, &n, sizeof(it->v.f));
            used = 9;
            break;
        case 0xcc:
        case 0xcd:
        case 0xce:
        case 0xcf:
            if (n > INT64_MAX) {
                it->type = NANA_MP_UINT;
                it->v.u = n;
            } else {
                it->type = NANA_MP_INT;
                it->v.i = (int64_t)n;
            }
            used = 1 + x;
            break;
        case 0xd0:
        case 0xd1:
        case 0xd2:
        case 0xd3:
            it->type = NANA_MP_INT;
            it->v.i = sign_extend(n, x);
            used = 1 + x;
            break;
        case 0xd4:
        case 0xd5:
        case 0xd6:
        case 0xd7:
        case 0xd8:
            /* fixext 1, 2, 4, 8, 16: a type byte, then the data */
            it->type = NANA_MP_EXT;
            it->ext_type = (int8_t)p[1];
            rc = take_bytes(r, 2, 1u << (c - 0xd4), it, &used);
            break;
        case 0xd9:
        case 0xda:
        case 0xdb:
            it->type = NANA_MP_STR;
            rc = take_bytes(r, 1 + x, n, it, &used);
            break;
        case 0xdc:
        case 0xdd:
            it->type = NANA_MP_ARRAY;
            rc = take_count(r, 1 + x, n, 1, it, &used);
            break;
        default: /* 0xde, 0xdf */
            it->type = NANA_MP_MAP;
            rc = take_count(r, 1 + x, n, 2, it, &used);
            break;
        }
    }
    if (rc) return rc;
    r->p += used;
    return NANA_OK;
}

int nana_mp_skip(nana_mp_reader *r, unsigned max_depth)
{
    /* Items still to skip at each open level: iterative, no recursion. */
    uint64_t pending = 1;
    uint64_t stack[NANA_MP_MAX_DEPTH]; /* written before read: never cleared */
    unsigned depth = 0;
    if (max_depth > NANA_MP_MAX_DEPTH) max_depth = NANA_MP_MAX_DEPTH;
    while (pending || depth) {
        if (!pending) {
            /* depth > 0 here: stack[depth - 1] was pushed below */
            // cppcheck-suppress uninitvar
            pending = stack[--depth];
            continue;
        }
        nana_mp_item it;
        int rc = nana_mp_read(r, &it);
        if (rc) return rc;
        pending--;
        if (it.type == NANA_MP_ARRAY || it.type == NANA_MP_MAP) {
            /* This container is level depth + 1, empty or not. */
            if (depth >= max_depth)
                return nana_err_set(NANA_ERR_TOOBIG, "msgpack: nested deeper than %u", max_depth);
            uint64_t n = (uint64_t)it.v.count * (it.type == NANA_MP_MAP ? 2 : 1);
            if (!n) continue;
            stack[depth++] = pending;
            pending = n;
        }
    }
    return NANA_OK;
}

/* ---- writing ------------------------------------------------------------ */

/* Appends tag |c| and |n| big-endian bytes of |v|. */
static int put_tagged(nana_buf *b, uint8_t c, uint64_t v, unsigned n)
{
    uint8_t tmp[9];
    tmp[0] = c;
    for (unsigned i = 0; i < n; i++)
        tmp[1 + i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    return nana_buf_append(b, tmp, 1 + n);
}

int nana_mp_put_nil(nana_buf *b)
{
    return put_tagged(b, 0xc0, 0, 0);
}

int nana_mp_put_bool(nana_buf *b, bool v)
{
    return put_tagged(b, v ? 0xc3 : 0xc2, 0, 0);
}

int nana_mp_put_uint(nana_buf *b, uint64_t v)
{
    if (v <= 0x7f) return put_tagged(b, (uint8_t)v, 0, 0);
    if (v <= 0xff) return put_tagged(b, 0xcc, v, 1);
    if (v <= 0xffff) return put_tagged(b, 0xcd, v, 2);
    if (v <= 0xffffffffu) return put_tagged(b, 0xce, v, 4);
    return put_tagged(b, 0xcf, v, 8);
}

int nana_mp_put_int(nana_buf *b, int64_t v)
{
    if (v >= 0) return nana_mp_put_uint(b, (uint64_t)v);
    if (v >= -32) return put_tagged(b, (uint8_t)(int8_t)v, 0, 0);
    if (v >= INT8_MIN) return put_tagged(b, 0xd0, (uint64_t)v, 1);
    if (v >= INT16_MIN) return put_tagged(b, 0xd1, (uint64_t)v, 2);
    if (v >= INT32_MIN) return put_tagged(b, 0xd2, (uint64_t)v, 4);
    return put_tagged(b, 0xd3, (uint64_t)v, 8);
}

int nana_mp_put_double(nana_buf *b, double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof(u));
    return put_tagged(b, 0xcb, u, 8);
}

/* A length header: fixed form below |fix_max| (tag |fix| | n), else 8/16/32-bit forms. */
static int put_len(nana_buf *b, uint64_t n, uint8_t fix, uint64_t fix_max, uint8_t t8, uint8_t t16,
                   uint8_t t32)
{
    if (n <= fix_max) return put_tagged(b, (uint8_t)(fix | n), 0, 0);
    if (t8 && n <= 0xff) return put_tagged(b, t8, n, 1);
    if (n <= 0xffff) return put_tagged(b, t16, n, 2);
    if (n <= 0xffffffffu) return put_tagged(b, t32, n, 4);
    return nana_err_set(NANA_ERR_TOOBIG, "msgpack: %llu is too long", (unsigned long long)n);
}

int nana_mp_put_str(nana_buf *b, const char *s, size_t n)
{
    int rc = put_len(b, n, 0xa0, 31, 0xd9, 0xda, 0xdb);
    return rc ? rc : nana_buf_append(b, s, n);
}

int nana_mp_put_cstr(nana_buf *b, const char *s)
{
    return nana_mp_put_str(b, s, strlen(s));
}

int nana_mp_put_bin(nana_buf *b, const void *p, size_t n)
{
    int rc;
    if (n <= 0xff)
        rc = put_tagged(b, 0xc4, n, 1);
    else if (n <= 0xffff)
        rc = put_tagged(b, 0xc5, n, 2);
    else if (n <= 0xffffffffu)
        rc = put_tagged(b, 0xc6, n, 4);
    else
        rc = nana_err_set(NANA_ERR_TOOBIG, "msgpack: %zu bytes is too long", n);
    return rc ? rc : nana_buf_append(b, p, n);
}

int nana_mp_put_array(nana_buf *b, uint32_t n)
{
    return put_len(b, n, 0x90, 15, 0, 0xdc, 0xdd);
}

int nana_mp_put_map(nana_buf *b, uint32_t n)
{
    return put_len(b, n, 0x80, 15, 0, 0xde, 0xdf);
}

/* ---- msgpack -> JSON ------------------------------------------------------ */

const char *nana_mp_type_name(nana_mp_type t)
{
    switch (t) {
    case NANA_MP_NIL:
        return "NoneType";
    case NANA_MP_BOOL:
        return "bool";
    case NANA_MP_INT:
    case NANA_MP_UINT:
        return "int";
    case NANA_MP_FLOAT:
        return "float";
    case NANA_MP_STR:
        return "str";
    case NANA_MP_BIN:
        return "bytes";
    case NANA_MP_ARRAY:
        return "list";
    case NANA_MP_MAP:
        return "dict";
    default:
        return "ExtType";
    }
}

/* Writes one scalar (not a container) as JSON. */
static int scalar_to_json(const nana_mp_item *it, nana_buf *out)
{
    switch (it->type) {
    case NANA_MP_NIL:
        return nana_buf_puts(out, "null");
    case NANA_MP_BOOL:
        return nana_buf_puts(out, it->v.b ? "true" : "false");
    case NANA_MP_INT:
        return nana_buf_printf(out, "%lld", (long long)it->v.i);
    case NANA_MP_UINT:
        return nana_buf_printf(out, "%llu", (unsigned long long)it->v.u);
    case NANA_MP_FLOAT:
        if (!isfinite(it->v.f))
            return nana_err_set(NANA_ERR_INVALID,
                                "Out of range float values are not JSON compliant");
        return nana_json_write_double(out, it->v.f);
    case NANA_MP_STR:
        if (!nana_utf8_valid((const char *)it->v.s.p, it->v.s.n))
            return nana_err_set(NANA_ERR_INVALID, "a string is not valid UTF-8");
        return nana_json_write_string(out, (const char *)it->v.s.p, it->v.s.n);
    default:
        return nana_err_set(NANA_ERR_TYPE, "Object of type %s is not JSON serializable",
                            nana_mp_type_name(it->type));
    }
}

/* Where one map key's JSON text is in the output. */
typedef struct span {
    size_t off, len;
} span;

/* The keys of every open map, innermost map's last: one stack for the
 * whole value, on the C stack until it outgrows it (at most one key per
 * two input bytes), so a request's maps cost no allocation. */
typedef struct keystack {
    span *v;
    size_t n, cap;
    span inl[32];
} keystack;

/* One open container on the transcoding stack. */
typedef struct level {
    uint32_t left; /* elements (arrays) or pairs (maps) not finished yet */
    bool map;
    size_t base; /* maps: where its keys start on the keystack */
} level;

static int keys_push(keystack *k, span s)
{
    if (k->n == k->cap) {
        size_t cap = k->cap * 2;
        span *v = k->v == k->inl ? malloc(cap * sizeof(*v)) : realloc(k->v, cap * sizeof(*v));
        if (!v) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
        if (k->v == k->inl) memcpy(v, k->inl, sizeof(k->inl));
        k->v = v;
        k->cap = cap;
    }
    k->v[k->n++] = s;
    return NANA_OK;
}

static int span_cmp(const void *a, const void *b, void *text)
{
    const span *x = a, *y = b;
    const char *t = text;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(t + x->off, t + y->off, n);
    if (c) return c;
    return x->len < y->len ? -1 : x->len > y->len;
}

/* At a map's end: refuses a key given twice (a Python dict cannot hold
 * both, and which one a reader keeps would be a guess); pops its keys. */
static int check_unique(const nana_buf *out, keystack *k, size_t base)
{
    int rc = NANA_OK;
    span *v = k->v + base;
    size_t n = k->n - base;
    if (n > 1) {
        qsort_r(v, n, sizeof(*v), span_cmp, out->data);
        for (size_t i = 1; i < n && !rc; i++)
            if (span_cmp(&v[i - 1], &v[i], out->data) == 0)
                rc = nana_err_set(NANA_ERR_INVALID, "a map has the key %.*s twice",
                                  (int)(v[i].len > 64 ? 64 : v[i].len), out->data + v[i].off);
    }
    k->n = base;
    return rc;
}

/* Reads a map key (it must be a string) and writes it with its ':'. */
static int key_to_json(nana_mp_reader *r, nana_buf *out, keystack *k)
{
    nana_mp_item key;
    int rc = nana_mp_read(r, &key);
    if (rc) return rc;
    if (key.type != NANA_MP_STR)
        return nana_err_set(NANA_ERR_TYPE, "keys must be str, not %s", nana_mp_type_name(key.type));
    size_t off = out->len;
    if ((rc = scalar_to_json(&key, out))) return rc;
    if ((rc = keys_push(k, (span){off, out->len - off}))) return rc;
    return nana_buf_putc(out, ':');
}

int nana_mp_to_json(nana_mp_reader *r, nana_buf *out, unsigned max_depth)
{
    level stack[NANA_MP_MAX_DEPTH];
    unsigned depth = 0;
    keystack keys;
    keys.v = keys.inl;
    keys.n = 0;
    keys.cap = sizeof(keys.inl) / sizeof(keys.inl[0]);
    int rc = NANA_OK;
    if (max_depth > NANA_MP_MAX_DEPTH) max_depth = NANA_MP_MAX_DEPTH;
    for (;;) {
        nana_mp_item it;
        if ((rc = nana_mp_read(r, &it))) break;
        if ((it.type == NANA_MP_ARRAY || it.type == NANA_MP_MAP) && depth >= max_depth) {
            /* this container, empty or not, would be level depth + 1 */
            rc = nana_err_set(NANA_ERR_TOOBIG, "nested deeper than %u levels", max_depth);
            break;
        }
        if ((it.type == NANA_MP_ARRAY || it.type == NANA_MP_MAP) && it.v.count) {
            bool map = it.type == NANA_MP_MAP;
            stack[depth++] = (level){.left = it.v.count, .map = map, .base = keys.n};
            if ((rc = nana_buf_putc(out, map ? '{' : '['))) break;
            if (map && (rc = key_to_json(r, out, &keys))) break;
            continue; /* its first value comes next */
        }
        if (it.type == NANA_MP_ARRAY || it.type == NANA_MP_MAP)
            rc = nana_buf_puts(out, it.type == NANA_MP_MAP ? "{}" : "[]");
        else
            rc = scalar_to_json(&it, out);
        if (rc) break;
        /* A value is complete: close what it completes, or move to the
         * next element of the innermost open container. */
        bool more = false;
        while (depth && !more && !rc) {
            level *l = &stack[depth - 1];
            if (--l->left) {
                if (!(rc = nana_buf_putc(out, ',')) && l->map) rc = key_to_json(r, out, &keys);
                more = true;
            } else {
                if (l->map) rc = check_unique(out, &keys, l->base);
                if (!rc) rc = nana_buf_putc(out, l->map ? '}' : ']');
                depth--;
            }
        }
        if (rc || !more) break;
    }
    if (keys.v != keys.inl) free(keys.v);
    return rc;
}

/* ---- JSON -> msgpack ------------------------------------------------------ */

/* Packs a JSON number: int64, uint64, or float64. */
static int number_to_mp(nana_buf *out, const nana_json *v)
{
    if (nana_json_number_is_integer(v)) {
        int64_t i;
        int rc = nana_json_number_int64(v, &i);
        if (rc == NANA_OK) return nana_mp_put_int(out, i);
        /* Above INT64_MAX but within uint64? */
        const char *t = v->u.str;
        if (t[0] != '-' && v->n <= 20) {
            uint64_t u = 0;
            bool ok = true;
            for (uint32_t k = 0; k < v->n && ok; k++) {
                unsigned d = (unsigned)(t[k] - '0');
                if (u > (UINT64_MAX - d) / 10) ok = false;
                u = u * 10 + d;
            }
            if (ok) return nana_mp_put_uint(out, u);
        }
        return nana_err_set(NANA_ERR_TOOBIG, "integer %.40s does not fit in 64 bits", t);
    }
    double d;
    int rc = nana_json_number_double(v, &d);
    return rc ? rc : nana_mp_put_double(out, d);
}

int nana_mp_from_json(nana_buf *out, const nana_json *v)
{
    int rc;
    switch (v->type) {
    case NANA_JSON_NULL:
        return nana_mp_put_nil(out);
    case NANA_JSON_FALSE:
        return nana_mp_put_bool(out, false);
    case NANA_JSON_TRUE:
        return nana_mp_put_bool(out, true);
    case NANA_JSON_NUMBER:
        return number_to_mp(out, v);
    case NANA_JSON_STRING:
        return nana_mp_put_str(out, v->u.str, v->n);
    case NANA_JSON_ARRAY:
        if ((rc = nana_mp_put_array(out, v->n))) return rc;
        for (uint32_t i = 0; i < v->n; i++)
            if ((rc = nana_mp_from_json(out, v->u.items[i]))) return rc;
        return NANA_OK;
    default:
        if ((rc = nana_mp_put_map(out, v->n))) return rc;
        for (uint32_t i = 0; i < v->n; i++) {
            const nana_json_member *m = &v->u.members[i];
            if ((rc = nana_mp_put_str(out, m->key, m->keylen)) ||
                (rc = nana_mp_from_json(out, m->val)))
                return rc;
        }
        return NANA_OK;
    }
}

int nana_mp_from_json_text(nana_buf *out, const char *text, size_t n)
{
    nana_json_doc *doc;
    nana_json *root;
    int rc = nana_json_parse(text, n, NANA_JSON_ALLOW_NONFINITE, NANA_JSON_DEFAULT_MAX_DEPTH, &doc,
                             &root);
    if (rc) return rc;
    rc = nana_mp_from_json(out, root);
    nana_json_doc_free(doc);
    return rc;
}
