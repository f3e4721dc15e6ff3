/*
 * bench_grpc.c - nanasqlite-bench --proto grpc: the same load as the
 * NanaSQLite mode, through the server's gRPC door (gRPC over HTTP/3 on
 * the same QUIC port, ALPN "h3", nghttp3 through src/h3).
 *
 * Each connection is one HTTP/3 connection; each call is a request stream
 * carrying a typed nanasqlite.v1 Get, Set or BatchGet. The request
 * messages are encoded once (protobuf, framed) into templates; a call
 * copies only the template's head (everything up to the last byte it
 * patches) into its slot and patches the key digits and, for a Set, the
 * value counter; the rest of a long value is the template's own bytes,
 * shared by every call (nghttp3 sends from them in place, so they never
 * change). The header fields are built once too. Nothing is allocated per
 * call here; nghttp3 allocates its own stream state.
 *
 * A connection logs in before it counts as ready: its first call is a Get
 * carrying the signature metadata (Ed25519 over the connection's TLS
 * exporter value, docs/GRPC.md), and only when that answers OK does the
 * connection take measured calls (which carry no metadata: the login
 * holds for the connection). A refused login closes the connection and
 * is reported like a failed NanaSQLite login.
 *
 * A reply counts as a success when it has HTTP status 200, a message of
 * the expected form (a Get's says found, a Set's is empty, a BatchGet's is
 * not empty) and grpc-status 0 in its trailers; anything else is an error
 * (the first one's status and message are reported).
 *
 * A slot is held from the call's start until nghttp3 closes its stream
 * (the request's bytes may be resent until the server acknowledged them),
 * which may be a little after the reply ended: a connection has twice its
 * pipeline of slots, and a call in flight is counted from start to reply.
 */
#include "bench_int.h"

#include "grpc/nana_grpc.h"
#include "h3/nana_h3.h"
#include "amaters/aql.pb-c.h"
#include "nanasqlite/v1/nanasqlite.pb-c.h"
#include "util/nana_time.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PATH_PREFIX "/nanasqlite.v1.NanaSQLite/"
#define HEAD_SEEN   8 /* first message bytes kept per reply: prefix + 3 */

/* A request kind: its framed message and where calls patch it. */
typedef struct gtpl {
    uint8_t *data; /* the framed message (5-byte prefix + protobuf) */
    size_t len;
    size_t head_len; /* bytes copied per call: up to the last patched byte */
    size_t *key_at;  /* each key's digits */
    unsigned nkeys;
    size_t value_at; /* a Set: the counter's digits */
    nghttp3_nv nv[8];
    size_t nvlen;
    const char *what; /* "Get", for messages */
} gtpl;

typedef enum { K_GET, K_SET, K_BATCH, K_RANGE, K_FILTER, K_COUNT } gkind;

/* One request stream of a connection. */
typedef struct gslot {
    bconn *c;
    uint64_t start_ns;
    uint32_t got;    /* response body bytes seen */
    int grpc_status; /* -1: none yet */
    bool http_ok;    /* :status 200 */
    bool replied;    /* the response ended (or the call was counted as failed) */
    bool login;      /* the connection's login call */
    bool body_done;  /* the request body was handed to nghttp3 whole */
    gkind kind;      /* what the call is */
    int loaded;      /* the kind whose template head is in buf (-1: none) */
    uint8_t head[HEAD_SEEN];
    char message[96]; /* grpc-message of a failed call, decoded and cut */
    uint8_t *buf;     /* the request's head: a copy of the template's, patched */
} gslot;

/* A connection's gRPC state. */
struct bgconn {
    nana_h3_conn *hc;
    nghttp3_conn *h3;
    gslot *slots;
    uint32_t *free; /* a stack of free slot indexes */
    unsigned nslots, nfree;
    bool starved; /* a call found no free slot: free ones give the room back */
    uint8_t *bufs;
};

static gtpl tpl[K_COUNT];
static bool tpl_made;
static size_t head_cap; /* bytes of buf per slot */

/* ---- templates -------------------------------------------------------------------- */

/* Packs |m| after a 5-byte gRPC prefix into t->data. 0 or -1. */
static int pack_framed(gtpl *t, const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    t->data = malloc(n + 5);
    if (!t->data) return -1;
    t->data[0] = 0;
    t->data[1] = (uint8_t)(n >> 24);
    t->data[2] = (uint8_t)(n >> 16);
    t->data[3] = (uint8_t)(n >> 8);
    t->data[4] = (uint8_t)n;
    protobuf_c_message_pack(m, t->data + 5);
    t->len = n + 5;
    return 0;
}

/* Finds the digits of each key in the packed template (in field order). */
static int find_keys(gtpl *t, const char *key)
{
    size_t from = 5, klen = strlen(key);
    for (unsigned i = 0; i < t->nkeys; i++) {
        const uint8_t *p = memmem(t->data + from, t->len - from, key, klen);
        if (!p) return -1;
        t->key_at[i] = (size_t)(p - t->data) + klen - KEY_DIGITS;
        from = (size_t)(p - t->data) + klen;
    }
    t->head_len = from;
    return 0;
}

/* The header fields of kind |t|'s calls. */
static void make_nv(gtpl *t, const char *path)
{
    const char *authority = opt.co.server_name ? opt.co.server_name : "localhost";
    t->nv[0] = nana_h3_nv(":method", "POST");
    t->nv[1] = nana_h3_nv(":scheme", "https");
    t->nv[2] = nana_h3_nv(":authority", authority);
    t->nv[3] = nana_h3_nv(":path", path);
    t->nv[4] = nana_h3_nv("content-type", "application/grpc");
    t->nv[5] = nana_h3_nv("te", "trailers");
    t->nvlen = 6;
    if (opt.proto == P_AQL && opt.db) t->nv[t->nvlen++] = nana_h3_nv("nana-db", opt.db);
}

/* Packs AQL query |q| in a QueryRequest into |t| (ExecuteQuery), with the
 * key digits found after |key|. 0 or -1. */
static int aql_template(gtpl *t, Amaters__Query__Query *q, const char *key, const char *what)
{
    static size_t at[K_COUNT];
    Amaters__Aql__QueryRequest r;
    amaters__aql__query_request__init(&r);
    r.query = q;
    t->key_at = &at[t - tpl];
    t->nkeys = 1;
    t->what = what;
    if (pack_framed(t, &r.base) || find_keys(t, key)) return -1;
    make_nv(t, "/amaters.aql.AqlService/ExecuteQuery");
    return 0;
}

/*
 * The AQL templates (--proto aql): ExecuteQuery of a get, a set (the same
 * value as the Set mode's), a range from a random key with a limit of
 * AQL_RANGE_KEYS, and a filter `id = "key:N"` matching one value of the
 * populated table (whose values carry their key as "id"). 0 or -1.
 */
static int make_aql_templates(char *key, char *value, size_t n)
{
    static char empty[1];
    char *coll = opt.table ? (char *)(uintptr_t)opt.table : empty;
    Amaters__Types__Key k, end;
    amaters__types__key__init(&k);
    amaters__types__key__init(&end);
    k.data.data = (uint8_t *)key;
    k.data.len = strlen(key);
    end.data.data = (uint8_t *)"key:~";
    end.data.len = 5;
    Amaters__Query__Query q;
    amaters__query__query__init(&q);

    Amaters__Query__GetQuery g;
    amaters__query__get_query__init(&g);
    g.collection = coll;
    g.key = &k;
    q.query_case = AMATERS__QUERY__QUERY__QUERY_GET;
    q.get = &g;
    if (aql_template(&tpl[K_GET], &q, key, "get")) return -1;

    Amaters__Types__CipherBlob v;
    amaters__types__cipher_blob__init(&v);
    v.data.data = (uint8_t *)value;
    v.data.len = strlen(value);
    Amaters__Query__SetQuery s;
    amaters__query__set_query__init(&s);
    s.collection = coll;
    s.key = &k;
    s.value = &v;
    q.query_case = AMATERS__QUERY__QUERY__QUERY_SET;
    q.set = &s;
    gtpl *t = &tpl[K_SET];
    if (aql_template(t, &q, key, "set")) return -1;
    const uint8_t *quote = memchr(t->data + t->head_len, '"', t->len - t->head_len);
    if (!quote) return -1;
    t->value_at = (size_t)(quote - t->data) + 1;
    t->head_len = t->value_at + (n < VALUE_DIGITS ? n : VALUE_DIGITS);

    Amaters__Query__RangeQuery r;
    amaters__query__range_query__init(&r);
    r.collection = coll;
    r.start = &k;
    r.end = &end;
    r._limit_case = AMATERS__QUERY__RANGE_QUERY___LIMIT_LIMIT;
    r.limit = AQL_RANGE_KEYS;
    q.query_case = AMATERS__QUERY__QUERY__QUERY_RANGE;
    q.range = &r;
    if (aql_template(&tpl[K_RANGE], &q, key, "range")) return -1;

    char json[8 + sizeof("key:") + KEY_DIGITS];
    snprintf(json, sizeof(json), "\"%s\"", key);
    Amaters__Types__ColumnRef col;
    amaters__types__column_ref__init(&col);
    col.name = (char *)(uintptr_t) "id";
    Amaters__Types__CipherBlob val;
    amaters__types__cipher_blob__init(&val);
    val.data.data = (uint8_t *)json;
    val.data.len = strlen(json);
    Amaters__Types__EqPredicate eq;
    amaters__types__eq_predicate__init(&eq);
    eq.column = &col;
    eq.value = &val;
    Amaters__Types__Predicate p;
    amaters__types__predicate__init(&p);
    p.predicate_case = AMATERS__TYPES__PREDICATE__PREDICATE_EQ;
    p.eq = &eq;
    Amaters__Query__FilterQuery f;
    amaters__query__filter_query__init(&f);
    f.collection = coll;
    f.predicate = &p;
    q.query_case = AMATERS__QUERY__QUERY__QUERY_FILTER;
    q.filter = &f;
    return aql_template(&tpl[K_FILTER], &q, key, "filter");
}

/*
 * Builds the three request templates (once for all shards: they are
 * only read after this). The stored value is value_size bytes of JSON, a
 * string whose first digits are the write counter, as in the NanaSQLite
 * mode. 0 or -1.
 */
static int make_templates(void)
{
    char key[4 + KEY_DIGITS + 1];
    memcpy(key, "key:", 4);
    memset(key + 4, '0', KEY_DIGITS);
    key[4 + KEY_DIGITS] = '\0';
    static char empty[1];
    char *db = opt.db ? (char *)(uintptr_t)opt.db : empty;
    char *table = opt.table ? (char *)(uintptr_t)opt.table : empty;

    size_t n = opt.value_size - 2; /* the string's characters inside its quotes */
    char *value = malloc(opt.value_size + 1);
    if (!value) return -1;
    value[0] = '"';
    memset(value + 1, 'x', n);
    value[n + 1] = '"';
    value[n + 2] = '\0';
    if (opt.proto == P_AQL) {
        int rc = make_aql_templates(key, value, n);
        free(value);
        for (int k = 0; !rc && k < K_COUNT; k++)
            if (tpl[k].head_len > head_cap) head_cap = tpl[k].head_len;
        return rc;
    }

    Nanasqlite__V1__GetRequest g;
    nanasqlite__v1__get_request__init(&g);
    g.key = key;
    g.db = db;
    g.table = table;
    gtpl *t = &tpl[K_GET];
    static size_t get_at[1], set_at[1];
    t->key_at = get_at;
    t->nkeys = 1;
    t->what = "Get";
    if (pack_framed(t, &g.base) || find_keys(t, key)) {
        free(value);
        return -1;
    }
    make_nv(t, PATH_PREFIX "Get");

    Nanasqlite__V1__SetRequest s;
    nanasqlite__v1__set_request__init(&s);
    s.key = key;
    s.value_json = value;
    s.db = db;
    s.table = table;
    t = &tpl[K_SET];
    t->key_at = set_at;
    t->nkeys = 1;
    t->what = "Set";
    int rc = pack_framed(t, &s.base) || find_keys(t, key) ? -1 : 0;
    free(value);
    if (rc) return -1;
    /* The value's bytes follow the key's: its counter digits come after the quote. */
    const uint8_t *q = memchr(t->data + t->head_len, '"', t->len - t->head_len);
    if (!q) return -1;
    t->value_at = (size_t)(q - t->data) + 1;
    t->head_len = t->value_at + (n < VALUE_DIGITS ? n : VALUE_DIGITS);
    make_nv(t, PATH_PREFIX "Set");

    if (opt.wl.kind == W_BATCH) {
        char **keys = calloc(opt.wl.batch, sizeof(char *));
        t = &tpl[K_BATCH];
        t->key_at = calloc(opt.wl.batch, sizeof(size_t));
        if (!keys || !t->key_at) {
            free(keys);
            return -1;
        }
        for (unsigned i = 0; i < opt.wl.batch; i++)
            keys[i] = key;
        Nanasqlite__V1__BatchGetRequest b;
        nanasqlite__v1__batch_get_request__init(&b);
        b.n_keys = opt.wl.batch;
        b.keys = keys;
        b.db = db;
        b.table = table;
        t->nkeys = opt.wl.batch;
        t->what = "BatchGet";
        rc = pack_framed(t, &b.base) || find_keys(t, key) ? -1 : 0;
        free(keys);
        if (rc) return -1;
        make_nv(t, PATH_PREFIX "BatchGet");
    }
    for (int k = 0; k < K_COUNT; k++)
        if (tpl[k].head_len > head_cap) head_cap = tpl[k].head_len;
    return 0;
}

/* ---- calls ------------------------------------------------------------------------ */

static bconn *conn_of(nghttp3_conn *h3, void *conn_user_data)
{
    (void)h3;
    return nana_h3_user(conn_user_data);
}

/* The request body of slot |su|: its patched head, then the template's
 * shared rest. */
static nghttp3_ssize read_body(nghttp3_conn *h3, int64_t sid, nghttp3_vec *vec, size_t veccnt,
                               uint32_t *pflags, void *cu, void *su)
{
    (void)h3;
    (void)sid;
    (void)cu;
    gslot *s = su;
    const gtpl *t = &tpl[s->kind];
    size_t n = 0;
    if (!s->body_done && veccnt >= 2) {
        vec[n++] = (nghttp3_vec){s->buf, t->head_len};
        if (t->len > t->head_len)
            vec[n++] = (nghttp3_vec){t->data + t->head_len, t->len - t->head_len};
        s->body_done = true;
    }
    *pflags = NGHTTP3_DATA_FLAG_EOF;
    return (nghttp3_ssize)n;
}

static const nghttp3_data_reader body_reader = {read_body};

/* Gives slot |s| back to its connection; a connection that ran out of
 * slots takes calls again. */
static void slot_free(bconn *c, gslot *s)
{
    struct bgconn *g = c->g;
    s->c = NULL;
    g->free[g->nfree++] = (uint32_t)(s - g->slots);
    if (g->starved && c->state == C_READY) {
        g->starved = false;
        bench_streams_available(c);
    }
}

/*
 * Starts a request of kind |k| on |c| in a free slot, with the login
 * metadata |login| (|nlogin| fields) added to the kind's header. 0,
 * NANA_ERR_BUSY (no slot, or the server's stream limit: the connection is
 * marked blocked until room comes back), or another error (recorded).
 */
static int start_request(bconn *c, gkind k, const nghttp3_nv *login, size_t nlogin, uint64_t due_ns)
{
    struct bgconn *g = c->g;
    shard *sh = c->sh;
    if (!g->nfree) {
        c->blocked = true;
        g->starved = true;
        return NANA_ERR_BUSY;
    }
    int64_t sid;
    int rc = nana_quic_stream_open(c->qc, &sid);
    if (rc) {
        c->blocked = true;
        if (rc != NANA_ERR_BUSY) record_error(sh, "cannot open a stream for a request");
        return rc;
    }
    gslot *s = &g->slots[g->free[g->nfree - 1]];
    const gtpl *t = &tpl[k];
    if (s->loaded != (int)k) {
        memcpy(s->buf, t->data, t->head_len);
        s->loaded = (int)k;
    }
    for (unsigned i = 0; i < t->nkeys; i++)
        put_key((char *)s->buf + t->key_at[i], next_rand(sh) % opt.keyspace);
    if (k == K_SET && t->head_len > t->value_at)
        put_digits((char *)s->buf + t->value_at, next_write_counter(sh),
                   (unsigned)(t->head_len - t->value_at));
    s->c = c;
    s->start_ns = due_ns;
    s->got = 0;
    s->grpc_status = -1;
    s->http_ok = false;
    s->replied = false;
    s->login = nlogin > 0;
    s->body_done = false;
    s->kind = k;
    s->message[0] = '\0';
    int rv;
    if (nlogin) {
        nghttp3_nv nv[10];
        memcpy(nv, t->nv, t->nvlen * sizeof(nv[0]));
        memcpy(nv + t->nvlen, login, nlogin * sizeof(nv[0]));
        rv = nghttp3_conn_submit_request(g->h3, sid, nv, t->nvlen + nlogin, &body_reader, s);
    } else {
        rv = nghttp3_conn_submit_request(g->h3, sid, t->nv, t->nvlen, &body_reader, s);
    }
    if (rv) {
        c->blocked = true;
        s->c = NULL;
        record_error(sh, "cannot submit a request to HTTP/3");
        nana_quic_stream_reset(c->qc, sid, NANA_GRPC_H3_REQUEST_CANCELLED);
        return NANA_ERR_INTERNAL;
    }
    g->nfree--;
    nana_quic_conn_source_ready(c->qc);
    return 0;
}

int bench_grpc_send(bconn *c, uint64_t due_ns)
{
    gkind k = opt.wl.kind == W_BATCH    ? K_BATCH
              : opt.wl.kind == W_RANGE  ? K_RANGE
              : opt.wl.kind == W_FILTER ? K_FILTER
              : next_is_set(c->sh)      ? K_SET
                                        : K_GET;
    int rc = start_request(c, k, NULL, 0, due_ns);
    if (rc) return rc;
    atomic_fetch_add_explicit(&c->sh->started, 1, memory_order_relaxed);
    c->inflight++;
    return 0;
}

/* Sends the login call of |c|: a Get with the signature metadata. 0 or
 * -1 (recorded). */
static int send_login(bconn *c)
{
    uint8_t exporter[NANA_GRPC_LOGIN_EXPORTER_LEN];
    if (nana_quic_conn_exporter(c->qc, NANA_GRPC_LOGIN_EXPORTER_LABEL, NULL, 0, exporter,
                                sizeof(exporter))) {
        record_error(c->sh, "cannot read the connection's TLS exporter");
        return -1;
    }
    char ts[24];
    int tlen = snprintf(ts, sizeof(ts), "%lld", (long long)time(NULL));
    /* Without --account: "default", the one account of a server that
     * knows a single key (--public-key). */
    const char *account = opt.co.account ? opt.co.account : "default";
    uint8_t m[sizeof(NANA_GRPC_LOGIN_CONTEXT) + NANA_GRPC_LOGIN_EXPORTER_LEN + 256 + 24];
    size_t mlen =
        nana_grpc_login_message(exporter, account, strlen(account), ts, (size_t)tlen, m, sizeof(m));
    if (!mlen) {
        record_error(c->sh, "the account name is too long to log in with");
        return -1;
    }
    uint8_t sig[crypto_sign_BYTES];
    crypto_sign_detached(sig, NULL, m, mlen, secret_key);
    char sig64[96];
    nana_grpc_b64_encode(sig, sizeof(sig), sig64);
    nghttp3_nv login[3] = {nana_h3_nv("nana-account", account), nana_h3_nv("nana-timestamp", ts),
                           nana_h3_nv("nana-signature-bin", sig64)};
    if (start_request(c, K_GET, login, 3, nana_now_ns())) {
        record_error(c->sh, "cannot send the login call");
        return -1;
    }
    return 0;
}

/* What is wrong with the finished reply of |s| (NULL: nothing), written
 * into |buf|. */
static const char *judge(const gslot *s, char *buf, size_t cap)
{
    const char *what = tpl[s->kind].what;
    if (!s->http_ok) {
        snprintf(buf, cap, "a %s reply without HTTP status 200", what);
        return buf;
    }
    if (s->grpc_status != 0) {
        const char *name = nana_grpc_status_name(s->grpc_status);
        snprintf(buf, cap, "a %s call ended with grpc-status %d (%s)%s%s", what, s->grpc_status,
                 s->grpc_status < 0 ? "none"
                 : name             ? name
                                    : "?",
                 s->message[0] ? ": " : "", s->message);
        return buf;
    }
    uint32_t len = s->got >= 5 ? (uint32_t)s->head[1] << 24 | (uint32_t)s->head[2] << 16 |
                                     (uint32_t)s->head[3] << 8 | s->head[4]
                               : 0;
    bool ok = s->got >= 5 && s->head[0] == 0 && len == s->got - 5;
    if (ok && opt.proto == P_AQL) { /* a QueryResponse with a result (field 1), no error */
        if (len >= 1 && s->head[5] == 0x0a) return NULL;
        snprintf(buf, cap, "an AQL %s answered %s", what,
                 len >= 1 && s->head[5] == 0x12 ? "with an ErrorResponse" : "without a result");
        return buf;
    }
    if (ok && s->kind == K_SET) ok = len == 0;
    if (ok && s->kind == K_BATCH) ok = len > 0;
    if (ok && s->kind == K_GET && !s->login) ok = len >= 2 && s->head[5] == 0x08 && s->head[6] == 1;
    if (ok) return NULL;
    snprintf(buf, cap,
             s->kind == K_GET && s->got >= 5 ? "a Get answered found: false (or a malformed reply)"
                                             : "a malformed %s reply message",
             what);
    return buf;
}

/* The response of |s| ended: the call is judged and counted. */
static void reply_end(bconn *c, gslot *s)
{
    char buf[256];
    const char *error = judge(s, buf, sizeof(buf));
    s->replied = true;
    if (s->login) {
        if (!error) {
            bench_conn_ready(c);
            return;
        }
        char why[320];
        snprintf(why, sizeof(why), "the gRPC login failed (key or account): %s", error);
        record_error(c->sh, why);
        nana_quic_conn_close(c->qc, 0, "");
        return;
    }
    c->inflight--;
    bench_call_done(c, s->start_ns, error);
    bench_call_room(c);
}

/* ---- nghttp3's callbacks ---------------------------------------------------------- */

static bool rcbuf_is(nghttp3_rcbuf *b, const char *s, size_t n)
{
    nghttp3_vec v = nghttp3_rcbuf_get_buf(b);
    return v.len == n && memcmp(v.base, s, n) == 0;
}

/* Response header and trailer fields: the HTTP status, grpc-status and
 * grpc-message are all a bench looks at. */
static int on_field(nghttp3_conn *h3, int64_t sid, int32_t token, nghttp3_rcbuf *name,
                    nghttp3_rcbuf *value, uint8_t flags, void *cu, void *su)
{
    (void)h3;
    (void)sid;
    (void)token;
    (void)flags;
    (void)cu;
    gslot *s = su;
    if (!s) return 0;
    nghttp3_vec v = nghttp3_rcbuf_get_buf(value);
    if (rcbuf_is(name, ":status", 7)) {
        s->http_ok = v.len == 3 && memcmp(v.base, "200", 3) == 0;
    } else if (rcbuf_is(name, "grpc-status", 11)) {
        int st = 0;
        for (size_t i = 0; i < v.len && st < 1000; i++)
            st = v.base[i] >= '0' && v.base[i] <= '9' ? st * 10 + (v.base[i] - '0') : 1000;
        s->grpc_status = v.len ? st : 1000;
    } else if (rcbuf_is(name, "grpc-message", 12)) {
        char raw[sizeof(s->message)];
        size_t n = v.len < sizeof(raw) - 1 ? v.len : sizeof(raw) - 1;
        memcpy(raw, v.base, n);
        raw[n] = '\0';
        nana_grpc_pct_decode(raw, n, s->message);
    }
    return 0;
}

static int on_body(nghttp3_conn *h3, int64_t sid, const uint8_t *data, size_t len, void *cu,
                   void *su)
{
    (void)h3;
    (void)sid;
    (void)cu;
    gslot *s = su;
    if (!s) return 0;
    if (s->got < HEAD_SEEN) {
        size_t take = HEAD_SEEN - s->got < len ? HEAD_SEEN - s->got : len;
        memcpy(s->head + s->got, data, take);
    }
    s->got += (uint32_t)len;
    return 0;
}

static int on_end_stream(nghttp3_conn *h3, int64_t sid, void *cu, void *su)
{
    (void)sid;
    gslot *s = su;
    if (s && s->c && !s->replied) reply_end(conn_of(h3, cu), s);
    return 0;
}

/* The stream is gone: its slot is free. A call that had no reply ends as
 * an error (its stream was reset). */
static int on_stream_close(nghttp3_conn *h3, int64_t sid, uint64_t code, void *cu, void *su)
{
    (void)sid;
    gslot *s = su;
    if (!s || !s->c) return 0;
    bconn *c = conn_of(h3, cu);
    if (!s->replied) {
        s->replied = true;
        if (s->login) {
            record_error(c->sh, "the gRPC login call's stream was reset");
            nana_quic_conn_close(c->qc, 0, "");
        } else {
            c->inflight--;
            char what[96];
            snprintf(what, sizeof(what), "a call's stream was reset (HTTP/3 code 0x%llx)",
                     (unsigned long long)code);
            bench_call_done(c, s->start_ns, atomic_load(&stopping) ? NULL : what);
            bench_call_room(c);
        }
    }
    slot_free(c, s);
    return 0;
}

static nana_h3_app h3app;

/* ---- the transport's callbacks ----------------------------------------------------- */

/* Whether |p|, a connection's data, is one of |sh|'s bconns (before its
 * HTTP/3 connection exists) rather than its nana_h3_conn. */
static bool is_bconn(const shard *sh, const void *p)
{
    const bconn *c = p;
    return c >= sh->conns && c < sh->conns + sh->nconns;
}

static int g_open(nana_quic_conn *qc, void *user)
{
    shard *sh = user;
    bconn *c = nana_quic_conn_get_data(qc);
    if (!is_bconn(sh, c)) return -1;
    c->qc = qc;
    c->state = C_AUTH;
    start_next_connect(sh); /* the first connection of the shard opens the way */
    nana_quic_conn_set_data(qc, NULL);
    nana_h3_conn *hc = NULL;
    if (nana_h3_open(qc, &h3app, c, &hc)) {
        char what[160];
        snprintf(what, sizeof(what), "cannot start HTTP/3: %s", nana_errmsg());
        record_error(sh, what);
        nana_h3_close(qc);
        nana_quic_conn_set_data(qc, c);
        return -1;
    }
    c->g->hc = hc;
    c->g->h3 = nana_h3_nghttp3(hc);
    return send_login(c) ? -1 : 0;
}

static void g_close(nana_quic_conn *qc, void *user)
{
    shard *sh = user;
    void *d = nana_quic_conn_get_data(qc);
    if (!d) return;
    bconn *c = d;
    if (!is_bconn(sh, d)) {
        c = nana_h3_user(d);
        nana_h3_close(qc);
    }
    struct bgconn *g = c->g;
    g->hc = NULL;
    g->h3 = NULL;
    g->nfree = 0; /* every stream is gone with the connection */
    for (unsigned i = 0; i < g->nslots; i++) {
        g->slots[i].c = NULL;
        g->free[g->nfree++] = i;
    }
    bench_conn_closed(c);
}

static void g_streams_available(nana_quic_conn *qc, void *user)
{
    shard *sh = user;
    void *d = nana_quic_conn_get_data(qc);
    if (d && !is_bconn(sh, d)) bench_streams_available(nana_h3_user(d));
}

static nana_quic_callbacks gcb;

/* ---- setup -------------------------------------------------------------------------- */

int bench_grpc_setup(shard *sh, nana_quic_config *qc)
{
    static const char *const alpn[] = {"h3"};
    if (!tpl_made) {
        if (make_templates()) {
            fprintf(stderr, "nanasqlite-bench: cannot build the gRPC requests\n");
            return -1;
        }
        h3app.cb.recv_header = on_field;
        h3app.cb.recv_trailer = on_field;
        h3app.cb.recv_data = on_body;
        h3app.cb.end_stream = on_end_stream;
        h3app.cb.stream_close = on_stream_close;
        h3app.server = false;
        h3app.auto_consume = true;
        gcb.conn_open = g_open;
        gcb.conn_close = g_close;
        gcb.streams_available = g_streams_available;
        nana_h3_quic_callbacks(&gcb);
        /* STOP_SENDING needs every packet scanned: our requests are whole
         * in their first packet, so one never matters here. */
        gcb.stop_sending = NULL;
        tpl_made = true;
    }
    for (unsigned i = 0; i < sh->nconns; i++) {
        bconn *c = &sh->conns[i];
        struct bgconn *g = calloc(1, sizeof(*g));
        if (!g) return -1;
        c->g = g;
        g->nslots = 2 * opt.pipeline + 2;
        g->slots = calloc(g->nslots, sizeof(gslot));
        g->free = calloc(g->nslots, sizeof(uint32_t));
        g->bufs = malloc(g->nslots * head_cap);
        if (!g->slots || !g->free || !g->bufs) {
            fprintf(stderr, "nanasqlite-bench: out of memory for the gRPC calls\n");
            return -1;
        }
        for (unsigned k = 0; k < g->nslots; k++) {
            g->slots[k].buf = g->bufs + (size_t)k * head_cap;
            g->slots[k].loaded = -1;
            g->free[g->nfree++] = g->nslots - 1 - k;
        }
    }
    qc->alpn = alpn;
    qc->nalpn = 1;
    qc->cb = &gcb;
    qc->user = sh;
    return 0;
}

void bench_grpc_free(shard *sh)
{
    for (unsigned i = 0; i < sh->nconns; i++) {
        struct bgconn *g = sh->conns[i].g;
        if (!g) continue;
        free(g->slots);
        free(g->free);
        free(g->bufs);
        free(g);
        sh->conns[i].g = NULL;
    }
}
