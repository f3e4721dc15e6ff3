/*
 * proto.c - dqlite's wire protocol without I/O: message headers, every
 * request the client sends, and the responses other than ROWS (rows.c).
 *
 * A message is a header word (body size in words, little-endian 32 bits;
 * type; schema; two unused bytes) and a body of 8-byte words. Requests are
 * appended whole to a nana_buf: a placeholder header, the body, then the
 * header filled in with the body's size; a failure half way takes the
 * partial message back out, so the buffer holds only whole messages.
 *
 * Responses come from outside. Each field is read through a cursor that
 * checks the bytes left (dql_rd_*); a text must find its NUL before the
 * body ends; counts are checked against the bytes that could hold them
 * before anything is allocated; and a body must end exactly where its last
 * field does.
 */
#include "dqlite/nana_dqlite.h"
#include "dqlite/dqlite_int.h"
#include "util/nana_err.h"

#include <stdlib.h>
#include <string.h>

static const uint8_t zeros[8];

void nana_dql_limits_default(nana_dql_limits *l)
{
    l->body_max = NANA_DQL_BODY_MAX_DEFAULT;
    l->columns_max = NANA_DQL_COLUMNS_MAX_DEFAULT;
    l->result_max = NANA_DQL_RESULT_MAX_DEFAULT;
}

int nana_dql_header_decode(const uint8_t b[8], const nana_dql_limits *lim, nana_dql_header *h)
{
    h->words = dql_le32(b);
    h->type = b[4];
    h->schema = b[5];
    size_t bytes = (size_t)h->words * 8;
    if (bytes > lim->body_max)
        return nana_err_set(NANA_ERR_TOOBIG,
                            "dqlite: a message of %zu bytes (type %u), the limit is %zu", bytes,
                            (unsigned)h->type, lim->body_max);
    return 0;
}

/* ---- readers ---- */

int dql_rd_u64(dql_rd *r, uint64_t *v, const char *what)
{
    if (r->left < 8)
        return nana_err_set(NANA_ERR_INVALID, "dqlite: the message ends inside %s", what);
    *v = dql_le64(r->p);
    r->p += 8;
    r->left -= 8;
    return 0;
}

int dql_rd_u32x2(dql_rd *r, uint32_t *a, uint32_t *b, const char *what)
{
    if (r->left < 8)
        return nana_err_set(NANA_ERR_INVALID, "dqlite: the message ends inside %s", what);
    *a = dql_le32(r->p);
    *b = dql_le32(r->p + 4);
    r->p += 8;
    r->left -= 8;
    return 0;
}

int dql_rd_text(dql_rd *r, const char **s, size_t *len, const char *what)
{
    if (r->left == 0)
        return nana_err_set(NANA_ERR_INVALID, "dqlite: the message ends before %s", what);
    const uint8_t *z = memchr(r->p, 0, r->left);
    if (!z) return nana_err_set(NANA_ERR_INVALID, "dqlite: %s has no end in the message", what);
    size_t n = (size_t)(z - r->p);
    size_t size = dql_pad8(n + 1); /* n < left: no overflow */
    if (size > r->left)
        return nana_err_set(NANA_ERR_INVALID, "dqlite: the message ends inside the padding of %s",
                            what);
    *s = (const char *)r->p;
    if (len) *len = n;
    r->p += size;
    r->left -= size;
    return 0;
}

int dql_rd_blob(dql_rd *r, const uint8_t **p, size_t *len, const char *what)
{
    uint64_t n;
    int rc = dql_rd_u64(r, &n, what);
    if (rc) return rc;
    if (n > r->left || dql_pad8((size_t)n) > r->left)
        return nana_err_set(NANA_ERR_INVALID,
                            "dqlite: %s of %llu bytes, but only %zu bytes are left", what,
                            (unsigned long long)n, r->left);
    *p = r->p;
    *len = (size_t)n;
    r->p += dql_pad8((size_t)n);
    r->left -= dql_pad8((size_t)n);
    return 0;
}

int dql_rd_value(dql_rd *r, int type, nana_dql_value *v)
{
    uint64_t w = 0;
    int rc;
    memset(v, 0, sizeof(*v));
    v->type = type;
    switch (type) {
    case NANA_DQL_INTEGER:
    case NANA_DQL_UNIXTIME:
        rc = dql_rd_u64(r, &w, "an integer value");
        v->i = (int64_t)w;
        return rc;
    case NANA_DQL_BOOLEAN:
        rc = dql_rd_u64(r, &w, "a boolean value");
        if (!rc && w > 1)
            return nana_err_set(NANA_ERR_INVALID, "dqlite: a boolean value of %llu",
                                (unsigned long long)w);
        v->i = (int64_t)w;
        return rc;
    case NANA_DQL_FLOAT:
        rc = dql_rd_u64(r, &w, "a float value");
        memcpy(&v->f, &w, sizeof(v->f));
        return rc;
    case NANA_DQL_NULL:
        return dql_rd_u64(r, &w, "a null value");
    case NANA_DQL_TEXT:
    case NANA_DQL_ISO8601:
        return dql_rd_text(r, &v->p, &v->len, "a text value");
    case NANA_DQL_BLOB: {
        const uint8_t *p = NULL;
        rc = dql_rd_blob(r, &p, &v->len, "a blob value");
        v->p = (const char *)p;
        return rc;
    }
    default:
        return nana_err_set(NANA_ERR_INVALID, "dqlite: unknown value type %d", type);
    }
}

/* ---- writers ---- */

static void put_le64(uint8_t *b, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        b[i] = (uint8_t)v;
        v >>= 8;
    }
}

static int put_u64(nana_buf *b, uint64_t v)
{
    uint8_t w[8];
    put_le64(w, v);
    return nana_buf_append(b, w, 8);
}

static int put_u32x2(nana_buf *b, uint32_t x, uint32_t y)
{
    uint8_t w[8];
    for (int i = 0; i < 4; i++) {
        w[i] = (uint8_t)(x >> (8 * i));
        w[4 + i] = (uint8_t)(y >> (8 * i));
    }
    return nana_buf_append(b, w, 8);
}

/* |n| bytes, then zeros to the next word boundary. */
static int put_padded(nana_buf *b, const void *p, size_t n)
{
    int rc = n ? nana_buf_append(b, p, n) : 0;
    if (!rc && dql_pad8(n) > n) rc = nana_buf_append(b, zeros, dql_pad8(n) - n);
    return rc;
}

/* A text: the bytes, a NUL, zeros to the word. */
static int put_text(nana_buf *b, const char *s, size_t n, const char *what)
{
    if (n && memchr(s, 0, n))
        return nana_err_set(NANA_ERR_INVALID, "dqlite: %s contains a NUL byte", what);
    int rc = n ? nana_buf_append(b, s, n) : 0;
    if (!rc) rc = nana_buf_append(b, zeros, dql_pad8(n + 1) - n); /* the NUL and padding */
    return rc;
}

static int put_cstr(nana_buf *b, const char *s, const char *what)
{
    if (!s) return nana_err_set(NANA_ERR_INVALID, "dqlite: %s is missing", what);
    return put_text(b, s, strlen(s), what);
}

/* Starts a message: a placeholder header word. */
static int msg_begin(nana_buf *b, size_t *start)
{
    *start = b->len;
    return nana_buf_append(b, zeros, 8);
}

/* Ends a message begun at |start|: fills its header, or on |rc| takes it back out. */
static int msg_end(nana_buf *b, size_t start, int rc, uint8_t type, uint8_t schema)
{
    if (!rc) {
        size_t body = b->len - start - 8;
        if (body / 8 > UINT32_MAX)
            rc = nana_err_set(NANA_ERR_TOOBIG, "dqlite: a request of %zu bytes", body);
        else {
            uint8_t *h = (uint8_t *)b->data + start;
            uint32_t words = (uint32_t)(body / 8);
            for (int i = 0; i < 4; i++)
                h[i] = (uint8_t)(words >> (8 * i));
            h[4] = type;
            h[5] = schema;
            h[6] = h[7] = 0;
        }
    }
    if (rc && b->len > start) b->len = start;
    return rc;
}

/* The parameters tuple: a count byte, a type byte each, zeros to the word,
 * then the values. Nothing at all for no parameters. */
static int put_params(nana_buf *b, const nana_dql_value *v, size_t n)
{
    if (n == 0) return 0;
    if (n > NANA_DQL_PARAMS_MAX)
        return nana_err_set(NANA_ERR_TOOBIG, "dqlite: %zu parameters, the limit is %d", n,
                            NANA_DQL_PARAMS_MAX);
    if (!v) return nana_err_set(NANA_ERR_INVALID, "dqlite: parameters are missing");
    uint8_t head[1 + NANA_DQL_PARAMS_MAX];
    head[0] = (uint8_t)n;
    for (size_t i = 0; i < n; i++) {
        switch (v[i].type) {
        case NANA_DQL_INTEGER:
        case NANA_DQL_FLOAT:
        case NANA_DQL_TEXT:
        case NANA_DQL_BLOB:
        case NANA_DQL_NULL:
        case NANA_DQL_ISO8601:
        case NANA_DQL_BOOLEAN:
            break;
        default:
            return nana_err_set(NANA_ERR_INVALID,
                                "dqlite: parameter %zu has type %d, which cannot be sent", i + 1,
                                v[i].type);
        }
        if ((v[i].type == NANA_DQL_TEXT || v[i].type == NANA_DQL_ISO8601 ||
             v[i].type == NANA_DQL_BLOB) &&
            !v[i].p && v[i].len)
            return nana_err_set(NANA_ERR_INVALID, "dqlite: parameter %zu has no bytes", i + 1);
        head[1 + i] = (uint8_t)v[i].type;
    }
    int rc = put_padded(b, head, 1 + n);
    for (size_t i = 0; i < n && !rc; i++) {
        switch (v[i].type) {
        case NANA_DQL_INTEGER:
            rc = put_u64(b, (uint64_t)v[i].i);
            break;
        case NANA_DQL_BOOLEAN:
            rc = put_u64(b, v[i].i ? 1 : 0);
            break;
        case NANA_DQL_FLOAT: {
            uint64_t w;
            memcpy(&w, &v[i].f, sizeof(w));
            rc = put_u64(b, w);
            break;
        }
        case NANA_DQL_NULL:
            rc = put_u64(b, 0);
            break;
        case NANA_DQL_TEXT:
        case NANA_DQL_ISO8601:
            rc = put_text(b, v[i].p ? v[i].p : "", v[i].len, "a text parameter");
            break;
        default: /* NANA_DQL_BLOB */
            rc = put_u64(b, v[i].len);
            if (!rc) rc = put_padded(b, v[i].p, v[i].len);
            break;
        }
    }
    return rc;
}

/* ---- requests ---- */

int nana_dql_enc_handshake(nana_buf *out)
{
    return put_u64(out, NANA_DQL_PROTOCOL_VERSION);
}

/* A request whose body is one word. */
static int enc_word(nana_buf *out, uint8_t type, uint64_t v)
{
    size_t s;
    int rc = msg_begin(out, &s);
    if (!rc) rc = put_u64(out, v);
    return msg_end(out, s, rc, type, 0);
}

int nana_dql_enc_leader(nana_buf *out)
{
    return enc_word(out, NANA_DQL_REQ_LEADER, 0);
}

int nana_dql_enc_client(nana_buf *out, uint64_t client_id)
{
    return enc_word(out, NANA_DQL_REQ_CLIENT, client_id);
}

int nana_dql_enc_open(nana_buf *out, const char *name)
{
    size_t s;
    int rc = msg_begin(out, &s);
    if (!rc) rc = put_cstr(out, name, "the database name");
    if (!rc) rc = put_u64(out, 0);                   /* flags: unused */
    if (!rc) rc = put_cstr(out, "", "the VFS name"); /* unused */
    return msg_end(out, s, rc, NANA_DQL_REQ_OPEN, 0);
}

int nana_dql_enc_prepare(nana_buf *out, uint32_t db, const char *sql)
{
    size_t s;
    int rc = msg_begin(out, &s);
    if (!rc) rc = put_u64(out, db);
    if (!rc) rc = put_cstr(out, sql, "the SQL text");
    return msg_end(out, s, rc, NANA_DQL_REQ_PREPARE, 0);
}

/* EXEC and QUERY: the database and statement ids, then the parameters. */
static int enc_stmt(nana_buf *out, uint8_t type, uint32_t db, uint32_t stmt,
                    const nana_dql_value *params, size_t n)
{
    size_t s;
    int rc = msg_begin(out, &s);
    if (!rc) rc = put_u32x2(out, db, stmt);
    if (!rc) rc = put_params(out, params, n);
    return msg_end(out, s, rc, type, 0);
}

int nana_dql_enc_exec(nana_buf *out, uint32_t db, uint32_t stmt, const nana_dql_value *params,
                      size_t n)
{
    return enc_stmt(out, NANA_DQL_REQ_EXEC, db, stmt, params, n);
}

int nana_dql_enc_query(nana_buf *out, uint32_t db, uint32_t stmt, const nana_dql_value *params,
                       size_t n)
{
    return enc_stmt(out, NANA_DQL_REQ_QUERY, db, stmt, params, n);
}

int nana_dql_enc_finalize(nana_buf *out, uint32_t db, uint32_t stmt)
{
    return enc_stmt(out, NANA_DQL_REQ_FINALIZE, db, stmt, NULL, 0);
}

/* EXEC_SQL and QUERY_SQL: the database id, the text, the parameters. */
static int enc_sql(nana_buf *out, uint8_t type, uint32_t db, const char *sql,
                   const nana_dql_value *params, size_t n)
{
    size_t s;
    int rc = msg_begin(out, &s);
    if (!rc) rc = put_u64(out, db);
    if (!rc) rc = put_cstr(out, sql, "the SQL text");
    if (!rc) rc = put_params(out, params, n);
    return msg_end(out, s, rc, type, 0);
}

int nana_dql_enc_exec_sql(nana_buf *out, uint32_t db, const char *sql, const nana_dql_value *params,
                          size_t n)
{
    return enc_sql(out, NANA_DQL_REQ_EXEC_SQL, db, sql, params, n);
}

int nana_dql_enc_query_sql(nana_buf *out, uint32_t db, const char *sql,
                           const nana_dql_value *params, size_t n)
{
    return enc_sql(out, NANA_DQL_REQ_QUERY_SQL, db, sql, params, n);
}

int nana_dql_enc_interrupt(nana_buf *out, uint32_t db)
{
    return enc_word(out, NANA_DQL_REQ_INTERRUPT, db);
}

int nana_dql_enc_add(nana_buf *out, uint64_t id, const char *address)
{
    size_t s;
    int rc = msg_begin(out, &s);
    if (!rc) rc = put_u64(out, id);
    if (!rc) rc = put_cstr(out, address, "the node address");
    return msg_end(out, s, rc, NANA_DQL_REQ_ADD, 0);
}

int nana_dql_enc_assign(nana_buf *out, uint64_t id, uint64_t role)
{
    size_t s;
    int rc = msg_begin(out, &s);
    if (!rc) rc = put_u64(out, id);
    if (!rc) rc = put_u64(out, role);
    return msg_end(out, s, rc, NANA_DQL_REQ_ASSIGN, 0);
}

int nana_dql_enc_remove(nana_buf *out, uint64_t id)
{
    return enc_word(out, NANA_DQL_REQ_REMOVE, id);
}

int nana_dql_enc_cluster(nana_buf *out)
{
    return enc_word(out, NANA_DQL_REQ_CLUSTER, 1); /* format 1: with roles */
}

int nana_dql_enc_transfer(nana_buf *out, uint64_t id)
{
    return enc_word(out, NANA_DQL_REQ_TRANSFER, id);
}

/* ---- responses other than ROWS ---- */

void nana_dql_response_free(nana_dql_response *r)
{
    if (!r) return;
    free(r->nodes);
    r->nodes = NULL;
    r->nnodes = 0;
}

/* SERVERS: a count, then id, address and role of each node. */
static int dec_servers(dql_rd *r, nana_dql_response *out)
{
    uint64_t n;
    int rc = dql_rd_u64(r, &n, "the node count");
    if (rc) return rc;
    /* Each node takes at least three words: check before allocating. */
    if (n > r->left / 24)
        return nana_err_set(NANA_ERR_INVALID, "dqlite: %llu nodes in a message of %zu bytes",
                            (unsigned long long)n, r->left);
    out->nodes = calloc(n ? (size_t)n : 1, sizeof(*out->nodes));
    if (!out->nodes) return nana_err_set(NANA_ERR_NOMEM, "dqlite: out of memory for nodes");
    for (size_t i = 0; i < (size_t)n; i++) {
        nana_dql_node_info *ni = &out->nodes[i];
        rc = dql_rd_u64(r, &ni->id, "a node id");
        if (!rc) rc = dql_rd_text(r, &ni->address, NULL, "a node address");
        if (!rc) rc = dql_rd_u64(r, &ni->role, "a node role");
        if (!rc && ni->role > NANA_DQL_SPARE)
            rc = nana_err_set(NANA_ERR_INVALID, "dqlite: node role %llu",
                              (unsigned long long)ni->role);
        if (rc) return rc;
    }
    out->nnodes = (size_t)n;
    return 0;
}

int nana_dql_response_decode(uint8_t type, const uint8_t *body, size_t len, nana_dql_response *out)
{
    memset(out, 0, sizeof(*out));
    out->type = type;
    out->leader.address = "";
    out->message = "";
    dql_rd r = {body, len};
    uint64_t w = 0;
    int rc;
    if (len % 8)
        return nana_err_set(NANA_ERR_INVALID, "dqlite: a body of %zu bytes, not whole words", len);
    switch (type) {
    case NANA_DQL_RESP_FAILURE:
        rc = dql_rd_u64(&r, &out->code, "the failure code");
        if (!rc) rc = dql_rd_text(&r, &out->message, NULL, "the failure message");
        break;
    case NANA_DQL_RESP_SERVER:
        rc = dql_rd_u64(&r, &out->leader.id, "the leader id");
        if (!rc) rc = dql_rd_text(&r, &out->leader.address, NULL, "the leader address");
        break;
    case NANA_DQL_RESP_WELCOME:
        rc = dql_rd_u64(&r, &out->heartbeat, "the welcome");
        break;
    case NANA_DQL_RESP_SERVERS:
        rc = dec_servers(&r, out);
        break;
    case NANA_DQL_RESP_DB: {
        uint32_t unused;
        rc = dql_rd_u32x2(&r, &out->db, &unused, "the database id");
        break;
    }
    case NANA_DQL_RESP_STMT:
        rc = dql_rd_u32x2(&r, &out->db, &out->stmt, "the statement id");
        if (!rc) rc = dql_rd_u64(&r, &out->params, "the parameter count");
        break;
    case NANA_DQL_RESP_RESULT:
        rc = dql_rd_u64(&r, &out->last_insert_id, "the last insert id");
        if (!rc) rc = dql_rd_u64(&r, &out->rows_affected, "the rows affected");
        break;
    case NANA_DQL_RESP_EMPTY:
        rc = dql_rd_u64(&r, &w, "the acknowledgement");
        break;
    case NANA_DQL_RESP_ROWS:
        return nana_err_set(NANA_ERR_INTERNAL, "dqlite: rows are decoded by nana_dql_rows_feed");
    default:
        return nana_err_set(NANA_ERR_INVALID, "dqlite: unknown response type %u", (unsigned)type);
    }
    if (!rc && r.left)
        rc = nana_err_set(NANA_ERR_INVALID, "dqlite: %zu bytes after the end of response type %u",
                          r.left, (unsigned)type);
    if (rc) nana_dql_response_free(out);
    return rc;
}
