/*
 * head.c - a gRPC request's header, field by field, and the verdict at its
 * end: accept the call, or the exact answer the protocols give.
 *
 * The big idea: every field is checked as it arrives and any problem is
 * only remembered, with a rank; the verdict is the worst problem. The
 * ranks follow who may be talking: a request HTTP itself calls malformed
 * is reset (RFC 9113 / RFC 9114); a well-formed request that is not gRPC
 * gets a plain HTTP status (405 for another method, 400 for another
 * scheme, 415 for another content-type), so that no HTTP client reads a
 * gRPC error's 200 as success; a gRPC request we refuse gets Trailers-Only
 * with a status. Nothing is stored past the header limits, but fields are
 * still checked, so a request both malformed and too big is reset.
 *
 * te: HTTP/2 requires te: trailers (gRPC over HTTP/2 lists it in every
 * request, to find proxies that would drop trailers). HTTP/3 does not:
 * RFC 9114 makes te optional (and any value but "trailers" malformed), an
 * HTTP/3 peer always carries trailers, and the gRPC over HTTP/3 proposal
 * adds no rule; so under HTTP/3 a missing te is accepted.
 */
#include "grpc/grpc_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

enum {
    SEEN_METHOD = 1 << 0,
    SEEN_SCHEME = 1 << 1,
    SEEN_PATH = 1 << 2,
    SEEN_AUTHORITY = 1 << 3,
    SEEN_REGULAR = 1 << 4,
    SEEN_CTYPE = 1 << 5,
    SEEN_TE = 1 << 6,
    SEEN_TIMEOUT = 1 << 7,
    SEEN_ENCODING = 1 << 8,
    SEEN_HOST = 1 << 9,
};

/* How bad a problem is: the verdict is the worst one seen (the first of
 * equals). */
enum {
    RANK_RESET = 100,
    RANK_405 = 90,
    RANK_400 = 85,
    RANK_415 = 80,
    RANK_NOMEM = 75,
    RANK_LIMIT = 70,
    RANK_TE = 60,
    RANK_PATH = 50,
    RANK_ENCODING = 40,
    RANK_TWICE = 35,
    RANK_TIMEOUT = 30,
    RANK_META = 20,
};

void nana_grpc_limits_default(nana_grpc_limits *l)
{
    l->max_header_bytes = NANA_GRPC_DEFAULT_MAX_HEADER_BYTES;
    l->max_header_fields = NANA_GRPC_DEFAULT_MAX_HEADER_FIELDS;
    l->max_message_bytes = NANA_GRPC_DEFAULT_MAX_MESSAGE_BYTES;
}

void nana_grpc_head_init(nana_grpc_head *h, nana_grpc_http http, const nana_grpc_limits *lim,
                         nana_arena *arena)
{
    memset(h, 0, sizeof(*h));
    h->http = http;
    if (lim)
        h->lim = *lim;
    else
        nana_grpc_limits_default(&h->lim);
    h->arena = arena;
    h->timeout_ns = -1;
    h->encoding_ok = true;
    h->verdict.kind = NANA_GRPC_ACCEPT;
}

/* Remembers a problem if it is worse than any so far. */
__attribute__((format(printf, 6, 7))) static void problem(nana_grpc_head *h, int rank,
                                                          nana_grpc_verdict_kind kind, int http,
                                                          nana_grpc_status status, const char *fmt,
                                                          ...)
{
    if (rank <= h->problem_rank) return;
    h->problem_rank = rank;
    nana_grpc_verdict *v = &h->verdict;
    v->kind = kind;
    v->http_status = http;
    v->accept_encoding = false;
    v->reset_h3 = NANA_GRPC_H3_MESSAGE_ERROR;
    v->reset_h2 = NANA_GRPC_H2_PROTOCOL_ERROR;
    v->error.status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->error.message, sizeof(v->error.message), fmt, ap);
    va_end(ap);
}

#define MALFORMED(h, ...)                                                                          \
    problem(h, RANK_RESET, NANA_GRPC_RESET, 0, NANA_GRPC_INTERNAL, __VA_ARGS__)
#define REFUSE(h, rank, status, ...) problem(h, rank, NANA_GRPC_REFUSE, 0, status, __VA_ARGS__)

static bool eq(const char *s, size_t n, const char *lit)
{
    return n == strlen(lit) && memcmp(s, lit, n) == 0;
}

/* Equal ignoring ASCII case (|lit| is lower case). */
static bool ieq(const char *s, size_t n, const char *lit)
{
    if (n != strlen(lit)) return false;
    if (memcmp(s, lit, n) == 0) return true; /* as clients send it */
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        if (c != lit[i]) return false;
    }
    return true;
}

/* Bytes by class, for the loops below (one lookup per byte). */
enum {
    B_NAME = 1, /* may be in a field name: '!'..'~' but upper case and ':' */
    B_BADV = 2, /* may not be in a field value: NUL, CR, LF */
    B_WORD = 4, /* a letter, a digit or '_' (a service's or method's name) */
};

/* A byte's classes, computed by the compiler for each of the 256. */
#define CLASS_OF(c)                                                                                \
    (uint8_t)(                                                                                     \
        ((c) > 0x20 && (c) < 0x7f && !((c) >= 'A' && (c) <= 'Z') && (c) != ':' ? B_NAME : 0) |     \
        ((c) == 0 || (c) == '\r' || (c) == '\n' ? B_BADV : 0) |                                    \
        (((c) >= '0' && (c) <= '9') || ((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z') || \
                 (c) == '_'                                                                        \
             ? B_WORD                                                                              \
             : 0))
#define CLASS_4(c)  CLASS_OF(c), CLASS_OF((c) + 1), CLASS_OF((c) + 2), CLASS_OF((c) + 3)
#define CLASS_16(c) CLASS_4(c), CLASS_4((c) + 4), CLASS_4((c) + 8), CLASS_4((c) + 12)
#define CLASS_64(c) CLASS_16(c), CLASS_16((c) + 16), CLASS_16((c) + 32), CLASS_16((c) + 48)

static const uint8_t byte_classes[256] = {CLASS_64(0), CLASS_64(64), CLASS_64(128), CLASS_64(192)};

/* A field name as HTTP/2 and HTTP/3 allow it: no controls, space, upper
 * case, DEL, bytes past ASCII, or ':' past a pseudo-header's first one. */
static bool name_ok(const char *name, size_t n)
{
    if (n == 0 || (name[0] == ':' && n == 1)) return false;
    const uint8_t *t = byte_classes;
    for (size_t i = name[0] == ':' ? 1 : 0; i < n; i++)
        if (!(t[(unsigned char)name[i]] & B_NAME)) return false;
    return true;
}

/* A field value has no NUL, CR or LF. */
static bool value_ok(const char *v, size_t n)
{
    const uint8_t *t = byte_classes;
    for (size_t i = 0; i < n; i++)
        if (t[(unsigned char)v[i]] & B_BADV) return false;
    return true;
}

/* The fields that HTTP/2 and HTTP/3 forbid (connection-specific ones). */
static bool connection_specific(const char *name, size_t n)
{
    return eq(name, n, "connection") || eq(name, n, "keep-alive") ||
           eq(name, n, "proxy-connection") || eq(name, n, "transfer-encoding") ||
           eq(name, n, "upgrade");
}

/* Printable text of at most 32 bytes of a value, for a message. */
static int shown(const char *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)v[i] < 0x20 || (unsigned char)v[i] > 0x7e) return 0;
    return n > 32 ? 32 : (int)n;
}

/* Copies a value into the arena unless the header is past a limit. */
static const char *keep(nana_grpc_head *h, const char *v, size_t n)
{
    if (h->over_limit) return NULL;
    char *c = nana_arena_dup(h->arena, v, n);
    if (!c)
        REFUSE(h, RANK_NOMEM, NANA_GRPC_RESOURCE_EXHAUSTED,
               "the server is out of memory for the request header");
    return c;
}

static void add_pseudo(nana_grpc_head *h, const char *name, size_t nlen, const char *v, size_t n)
{
    unsigned bit;
    if (eq(name, nlen, ":method"))
        bit = SEEN_METHOD;
    else if (eq(name, nlen, ":scheme"))
        bit = SEEN_SCHEME;
    else if (eq(name, nlen, ":path"))
        bit = SEEN_PATH;
    else if (eq(name, nlen, ":authority"))
        bit = SEEN_AUTHORITY;
    else {
        MALFORMED(h, "pseudo-header '%.*s' is not one of a request's", shown(name, nlen), name);
        return;
    }
    if (h->seen & SEEN_REGULAR) {
        MALFORMED(h, "pseudo-header '%.*s' after a regular field", shown(name, nlen), name);
        return;
    }
    if (h->seen & bit) {
        MALFORMED(h, "pseudo-header '%.*s' given twice", shown(name, nlen), name);
        return;
    }
    h->seen |= bit;
    switch (bit) {
    case SEEN_METHOD:
        h->method_post = eq(v, n, "POST");
        h->method_connect = eq(v, n, "CONNECT");
        break;
    case SEEN_SCHEME:
        h->https = eq(v, n, "https");
        h->scheme_ok = h->https || eq(v, n, "http");
        break;
    case SEEN_PATH:
        if (n == 0) {
            MALFORMED(h, "empty :path");
            return;
        }
        h->path = keep(h, v, n);
        h->path_len = h->path ? n : 0;
        break;
    default: /* SEEN_AUTHORITY */
        if (n == 0) {
            MALFORMED(h, "empty :authority");
            return;
        }
        h->authority = keep(h, v, n);
        break;
    }
}

static void add_timeout(nana_grpc_head *h, const char *v, size_t n)
{
    if (h->seen & SEEN_TIMEOUT) {
        REFUSE(h, RANK_TWICE, NANA_GRPC_INTERNAL, "grpc-timeout given twice");
        return;
    }
    h->seen |= SEEN_TIMEOUT;
    if (nana_grpc_timeout_parse(v, n, &h->timeout_ns)) {
        h->timeout_ns = -1;
        REFUSE(h, RANK_TIMEOUT, NANA_GRPC_INTERNAL, "malformed grpc-timeout: %s", nana_errmsg());
    }
}

static void add_encoding(nana_grpc_head *h, const char *v, size_t n)
{
    if (h->seen & SEEN_ENCODING) {
        REFUSE(h, RANK_TWICE, NANA_GRPC_INTERNAL, "grpc-encoding given twice");
        return;
    }
    h->seen |= SEEN_ENCODING;
    if (eq(v, n, "identity")) return;
    h->encoding_ok = false;
    REFUSE(h, RANK_ENCODING, NANA_GRPC_UNIMPLEMENTED,
           "grpc-encoding '%.*s' is not supported: this server accepts identity only", shown(v, n),
           v);
    if (h->problem_rank == RANK_ENCODING) h->verdict.accept_encoding = true;
}

/* content-type: application/grpc or application/grpc+proto, any case,
 * parameters after ';' ignored. */
static void add_ctype(nana_grpc_head *h, const char *v, size_t n)
{
    if (h->seen & SEEN_CTYPE) {
        h->ctype_ok = false; /* two content types are none */
        return;
    }
    h->seen |= SEEN_CTYPE;
    const char *semi = memchr(v, ';', n);
    if (semi) n = (size_t)(semi - v);
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    h->ctype_ok = true;
    if (ieq(v, n, "application/grpc"))
        h->ctype = NANA_GRPC_CT_GRPC;
    else if (ieq(v, n, "application/grpc+proto"))
        h->ctype = NANA_GRPC_CT_GRPC_PROTO;
    else
        h->ctype_ok = false;
}

static void add_regular(nana_grpc_head *h, const char *name, size_t nlen, const char *v, size_t n)
{
    h->seen |= SEEN_REGULAR;
    if (connection_specific(name, nlen)) {
        MALFORMED(h, "connection-specific field '%.*s' in an HTTP/%d request", shown(name, nlen),
                  name, (int)h->http);
        return;
    }
    if (eq(name, nlen, "te")) {
        if (!ieq(v, n, "trailers")) {
            MALFORMED(h, "te is not 'trailers'");
            return;
        }
        h->seen |= SEEN_TE;
    } else if (eq(name, nlen, "host")) {
        if (n == 0) {
            MALFORMED(h, "empty host");
            return;
        }
        if (h->seen & SEEN_HOST) {
            MALFORMED(h, "host given twice");
            return;
        }
        h->seen |= SEEN_HOST;
        h->host = keep(h, v, n);
    } else if (eq(name, nlen, "content-type")) {
        add_ctype(h, v, n);
    } else if (eq(name, nlen, "user-agent")) {
        if (!h->user_agent) h->user_agent = keep(h, v, n);
    } else if (eq(name, nlen, "grpc-timeout")) {
        add_timeout(h, v, n);
    } else if (eq(name, nlen, "grpc-encoding")) {
        add_encoding(h, v, n);
    } else if (eq(name, nlen, "grpc-accept-encoding")) {
        if (!h->accept_encoding) h->accept_encoding = keep(h, v, n);
    } else if ((nlen >= 5 && memcmp(name, "grpc-", 5) == 0) || eq(name, nlen, "content-length")) {
        /* Reserved for gRPC (grpc-message-type included), or HTTP framing
         * that the HTTP library checks: not metadata. */
    } else if (!h->over_limit) {
        int rc = nana_grpc_meta_store(h, name, nlen, v, n);
        if (rc == NANA_ERR_NOMEM)
            REFUSE(h, RANK_NOMEM, NANA_GRPC_RESOURCE_EXHAUSTED,
                   "the server is out of memory for the request header");
        else if (rc)
            REFUSE(h, RANK_META, NANA_GRPC_INTERNAL, "%s", nana_errmsg());
    }
}

/* The code nana_grpc_head_add returns once a problem is known. */
static int add_result(const nana_grpc_head *h)
{
    switch (h->problem_rank) {
    case 0:
        return 0;
    case RANK_NOMEM:
        return NANA_ERR_NOMEM;
    case RANK_LIMIT:
        return NANA_ERR_TOOBIG;
    default:
        return NANA_ERR_INVALID;
    }
}

int nana_grpc_head_add(nana_grpc_head *h, const char *name, size_t name_len, const char *value,
                       size_t value_len)
{
    if (h->done) return add_result(h);
    h->fields++;
    h->bytes += (uint64_t)name_len + value_len + 32;
    if (!h->over_limit && h->fields > h->lim.max_header_fields) {
        h->over_limit = true;
        REFUSE(h, RANK_LIMIT, NANA_GRPC_RESOURCE_EXHAUSTED,
               "the request header has more than %u fields (the limit)",
               (unsigned)h->lim.max_header_fields);
    } else if (!h->over_limit && h->bytes > h->lim.max_header_bytes) {
        h->over_limit = true;
        REFUSE(h, RANK_LIMIT, NANA_GRPC_RESOURCE_EXHAUSTED,
               "the request header is over %u bytes (the limit; each field counts its name, its "
               "value and 32)",
               (unsigned)h->lim.max_header_bytes);
    }
    if (!name_ok(name, name_len))
        MALFORMED(h, "a field name that HTTP/%d does not allow", (int)h->http);
    else if (!value_ok(value, value_len))
        MALFORMED(h, "field '%.*s' has NUL, CR or LF in its value", shown(name, name_len), name);
    else if (name[0] == ':')
        add_pseudo(h, name, name_len, value, value_len);
    else
        add_regular(h, name, name_len, value, value_len);
    return add_result(h);
}

/* Splits "/package.Service/Method" into service and method; false when
 * the path is not of that form (letters, digits, '_' and, in the service,
 * '.'). */
static bool split_path(nana_grpc_head *h)
{
    const char *p = h->path;
    size_t n = h->path_len;
    if (!p || n < 4 || p[0] != '/') return false;
    const char *slash = memchr(p + 1, '/', n - 1);
    if (!slash || slash == p + 1 || slash == p + n - 1) return false;
    const uint8_t *t = byte_classes;
    for (const char *c = p + 1; c < p + n; c++) {
        bool word = (t[(unsigned char)*c] & B_WORD) != 0;
        if (!word && !(*c == '.' && c < slash) && c != slash) return false;
    }
    size_t svc_len = (size_t)(slash - p - 1);
    char *svc = nana_arena_dup(h->arena, p + 1, svc_len);
    if (!svc) {
        REFUSE(h, RANK_NOMEM, NANA_GRPC_RESOURCE_EXHAUSTED,
               "the server is out of memory for the request header");
        return true;
    }
    h->service = svc;
    h->service_len = svc_len;
    h->method = slash + 1;
    h->method_len = (size_t)(p + n - slash - 1);
    return true;
}

nana_grpc_verdict_kind nana_grpc_head_finish(nana_grpc_head *h)
{
    if (h->done) return h->verdict.kind;
    h->done = true;
    if (!(h->seen & SEEN_METHOD)) MALFORMED(h, "no :method");
    if (!h->method_connect && !(h->seen & SEEN_SCHEME)) MALFORMED(h, "no :scheme");
    if (!h->method_connect && !(h->seen & SEEN_PATH)) MALFORMED(h, "no :path");
    /* RFC 9114: under HTTP/3, http and https need :authority or host.
     * Both versions: the two must agree (RFC 9113 asks a server to treat a
     * host that differs as malformed too; two names for one request is a
     * way to confuse routing). */
    if (h->http == NANA_GRPC_HTTP3 && h->scheme_ok && !(h->seen & (SEEN_AUTHORITY | SEEN_HOST)))
        MALFORMED(h, "neither :authority nor host");
    if (h->authority && h->host && strcmp(h->authority, h->host) != 0)
        MALFORMED(h, ":authority and host differ");
    if (!h->authority && h->host) h->authority = h->host;
    if (!h->method_post)
        problem(h, RANK_405, NANA_GRPC_HTTP_ERROR, 405, NANA_GRPC_UNIMPLEMENTED,
                "method is not POST");
    if (!h->scheme_ok)
        problem(h, RANK_400, NANA_GRPC_HTTP_ERROR, 400, NANA_GRPC_INTERNAL,
                ":scheme is neither http nor https");
    if (!h->ctype_ok)
        problem(h, RANK_415, NANA_GRPC_HTTP_ERROR, 415, NANA_GRPC_INTERNAL,
                "content-type is not application/grpc or application/grpc+proto");
    if (h->http == NANA_GRPC_HTTP2 && !(h->seen & SEEN_TE))
        REFUSE(h, RANK_TE, NANA_GRPC_INTERNAL,
               "te: trailers is missing (gRPC over HTTP/2 requires it)");
    if (h->problem_rank < RANK_PATH && !split_path(h))
        REFUSE(h, RANK_PATH, NANA_GRPC_UNIMPLEMENTED,
               "malformed method path: expected /package.Service/Method");
    return h->verdict.kind;
}
