/*
 * wire_driver.c - a scriptable NanaSQLite wire client for the end-to-end
 * tests: it reads one JSON command per line on stdin and answers one JSON
 * line on stdout, so a Python test can drive real QUIC connections to the
 * real server binary, send well-formed calls and hostile bytes alike, and
 * read every reply.
 *
 * Commands (all take "id", a connection name; every wait is bounded):
 *   {"op":"connect","port":N,"ca":PATH[,"host":"127.0.0.1","name":"localhost"]}
 *   {"op":"auth","key":PATH[,"account":NAME,"corrupt":true,"no_start":true,"delay_ms":N]}
 *   {"op":"call","method":M[,"args":[...],"kwargs":{...},"db":D,"table":T]}  (db null: nil)
 *   {"op":"calls","n":N,"method":M,...,"window":W}  N calls, W in flight; counts
 *   {"op":"raw","hex":H[,"fin":true,"wait":true]}    bytes on a new stream
 *   {"op":"more","sid":S,"hex":H[,"fin":true,"wait":true]}
 *   {"op":"wait","sid":S}
 *   {"op":"close"}
 * Replies: {"ok":true,...} or {"ok":false,"error":text}. A reply frame is
 * shown as JSON with bin values as {"$bin":"hex"}.
 *
 * Usage: wire_driver [CA [CERT KEY]]: the server is checked against CA
 * (default cert.pem); with CERT and KEY every connection shows that client
 * certificate to a server that asks for one (mutual TLS).
 */
#include "auth/nana_keys.h"
#include "proto/nana_frame.h"
#include "quic/nana_quic.h"
#include "util/nana_json.h"

#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WAIT_MS 10000

typedef struct rstream {
    int64_t sid;
    nana_buf buf;
    bool fin, reset;
    uint64_t code;
    struct rstream *next;
} rstream;

typedef struct dconn {
    char id[32];
    nana_quic_handle h;
    bool open, closed;
    uint64_t close_code;
    char close_reason[128]; /* the reason phrase of the peer's CONNECTION_CLOSE */
    rstream *streams;
    struct dconn *next;
} dconn;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static nana_quic_ep *ep;
static dconn *conns;

/* ---- I/O thread side ------------------------------------------------------ */

static rstream *rs_get(dconn *d, int64_t sid, bool create)
{
    for (rstream *r = d->streams; r; r = r->next)
        if (r->sid == sid) return r;
    if (!create) return NULL;
    rstream *r = calloc(1, sizeof(*r));
    if (!r) abort();
    r->sid = sid;
    nana_buf_init(&r->buf, 0);
    r->next = d->streams;
    d->streams = r;
    return r;
}

static int on_open(nana_quic_conn *c, void *user)
{
    pthread_mutex_lock(&mu);
    dconn *d = nana_quic_conn_get_data(c);
    if (d) d->open = true;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    return 0;
}

static void on_close(nana_quic_conn *c, void *user)
{
    pthread_mutex_lock(&mu);
    dconn *d = nana_quic_conn_get_data(c);
    if (d) {
        d->closed = true;
        uint64_t code = 0;
        int app = 0;
        if (nana_quic_conn_peer_error(c, &code, &app)) d->close_code = code;
        nana_quic_conn_peer_reason(c, d->close_reason, sizeof(d->close_reason));
    }
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static int on_data(nana_quic_conn *c, int64_t sid, const uint8_t *data, size_t len, int fin,
                   int early, void *user)
{
    pthread_mutex_lock(&mu);
    dconn *d = nana_quic_conn_get_data(c);
    if (d) {
        rstream *r = rs_get(d, sid, true);
        if (len) nana_buf_append(&r->buf, data, len);
        if (fin) r->fin = true;
    }
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    return 0;
}

static void on_stream_close(nana_quic_conn *c, int64_t sid, uint64_t app_error, void *user)
{
    pthread_mutex_lock(&mu);
    dconn *d = nana_quic_conn_get_data(c);
    rstream *r = d ? rs_get(d, sid, true) : NULL;
    if (r && !r->fin) {
        r->reset = true;
        r->code = app_error;
    }
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

/* A send, run on the I/O thread. */
typedef struct send_op {
    dconn *d;
    int64_t sid; /* -1: open a new stream */
    const uint8_t *data;
    size_t len;
    bool fin;
    bool done;
    int rc;
} send_op;

static void do_send(nana_quic_conn *c, void *arg)
{
    send_op *op = arg;
    int rc = c ? 0 : -1;
    if (!rc && op->sid < 0) {
        rc = nana_quic_stream_open(c, &op->sid);
        if (!rc) {
            pthread_mutex_lock(&mu);
            rs_get(op->d, op->sid, true);
            pthread_mutex_unlock(&mu);
        }
    }
    if (!rc) rc = nana_quic_stream_send(c, op->sid, op->data, op->len, op->fin);
    pthread_mutex_lock(&mu);
    op->rc = rc;
    op->done = true;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

/* ---- main thread side ------------------------------------------------------- */

static void deadline(struct timespec *ts, unsigned ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Sends bytes (on a new stream when sid < 0); returns the stream id or -1. */
static int64_t send_bytes(dconn *d, int64_t sid, const uint8_t *p, size_t n, bool fin)
{
    for (int attempt = 0; attempt < 2000; attempt++) {
        send_op op = {.d = d, .sid = sid, .data = p, .len = n, .fin = fin};
        if (nana_quic_post(ep, d->h, do_send, &op)) return -1;
        struct timespec ts;
        deadline(&ts, WAIT_MS);
        pthread_mutex_lock(&mu);
        while (!op.done)
            if (pthread_cond_timedwait(&cv, &mu, &ts)) break;
        bool done = op.done;
        pthread_mutex_unlock(&mu);
        if (!done) return -1;
        if (op.rc == NANA_ERR_BUSY && sid < 0) { /* the peer's stream limit: wait a little */
            struct timespec nap = {0, 5000000};
            nanosleep(&nap, NULL);
            continue;
        }
        return op.rc ? -1 : op.sid;
    }
    return -1;
}

/* Waits for stream |sid| to finish or be reset; the caller holds no lock. */
static rstream *wait_stream(dconn *d, int64_t sid, unsigned ms)
{
    struct timespec ts;
    deadline(&ts, ms);
    pthread_mutex_lock(&mu);
    rstream *r = rs_get(d, sid, true);
    while (!r->fin && !r->reset && !d->closed)
        if (pthread_cond_timedwait(&cv, &mu, &ts)) break;
    pthread_mutex_unlock(&mu);
    return r;
}

/* Writes msgpack as JSON (bin as {"$bin":"hex"}). */
static int mp_show(nana_mp_reader *r, nana_buf *out, int depth)
{
    nana_mp_item it;
    if (depth > 300 || nana_mp_read(r, &it)) return -1;
    switch (it.type) {
    case NANA_MP_NIL:
        return nana_buf_puts(out, "null");
    case NANA_MP_BOOL:
        return nana_buf_puts(out, it.v.b ? "true" : "false");
    case NANA_MP_INT:
        return nana_buf_printf(out, "%lld", (long long)it.v.i);
    case NANA_MP_UINT:
        return nana_buf_printf(out, "%llu", (unsigned long long)it.v.u);
    case NANA_MP_FLOAT:
        return nana_json_write_double(out, it.v.f);
    case NANA_MP_STR:
        return nana_json_write_string(out, (const char *)it.v.s.p, it.v.s.n);
    case NANA_MP_BIN:
    case NANA_MP_EXT: {
        int rc = nana_buf_puts(out, "{\"$bin\":\"");
        for (uint32_t i = 0; !rc && i < it.v.s.n; i++)
            rc = nana_buf_printf(out, "%02x", it.v.s.p[i]);
        return rc ? rc : nana_buf_puts(out, "\"}");
    }
    case NANA_MP_ARRAY:
    case NANA_MP_MAP: {
        bool map = it.type == NANA_MP_MAP;
        int rc = nana_buf_putc(out, map ? '{' : '[');
        for (uint32_t i = 0; !rc && i < it.v.count; i++) {
            if (i) rc = nana_buf_putc(out, ',');
            if (!rc && map) {
                nana_buf k;
                nana_buf_init(&k, 0);
                rc = mp_show(r, &k, depth + 1);
                /* keys that are not strings are shown as strings of their JSON */
                if (!rc && k.len && k.data[0] != '"')
                    rc = nana_json_write_string(out, k.data, k.len);
                else if (!rc)
                    rc = nana_buf_append(out, k.data, k.len);
                nana_buf_free(&k);
                if (!rc) rc = nana_buf_putc(out, ':');
            }
            if (!rc) rc = mp_show(r, out, depth + 1);
        }
        return rc ? rc : nana_buf_putc(out, map ? '}' : ']');
    }
    }
    return -1;
}

/* Appends the stream's reply as "reply":..., "reset":code, "raw":hex fields. */
static void show_stream(nana_buf *out, rstream *r, dconn *d)
{
    pthread_mutex_lock(&mu);
    if (r->fin && r->buf.len >= 4) {
        const uint8_t *p = (const uint8_t *)r->buf.data;
        uint32_t n = ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
        nana_buf_puts(out, ",\"reply\":");
        nana_mp_reader rd;
        nana_mp_reader_init(&rd, p + 4, r->buf.len - 4);
        size_t at = out->len;
        if (n != r->buf.len - 4 || mp_show(&rd, out, 0)) {
            out->len = at;
            nana_buf_puts(out, "\"<malformed reply>\"");
        }
    } else {
        nana_buf_puts(out, ",\"reply\":null");
    }
    if (r->reset) nana_buf_printf(out, ",\"reset\":%llu", (unsigned long long)r->code);
    if (d->closed) nana_buf_printf(out, ",\"closed\":%llu", (unsigned long long)d->close_code);
    nana_buf_printf(out, ",\"sid\":%lld", (long long)r->sid);
    pthread_mutex_unlock(&mu);
}

static dconn *find_conn(const char *id)
{
    for (dconn *d = conns; d; d = d->next)
        if (!strcmp(d->id, id)) return d;
    return NULL;
}

/* A JSON string member of |o|, or |def|. */
static const char *jstr(const nana_json *o, const char *k, const char *def)
{
    const nana_json *v = nana_json_object_get(o, k, strlen(k));
    return v && v->type == NANA_JSON_STRING ? v->u.str : def;
}

static bool jbool(const nana_json *o, const char *k, bool def)
{
    const nana_json *v = nana_json_object_get(o, k, strlen(k));
    if (!v) return def;
    return v->type == NANA_JSON_TRUE;
}

static int64_t jint(const nana_json *o, const char *k, int64_t def)
{
    const nana_json *v = nana_json_object_get(o, k, strlen(k));
    int64_t x;
    return v && v->type == NANA_JSON_NUMBER && !nana_json_number_int64(v, &x) ? x : def;
}

/* Builds a call frame from a command's method/args/kwargs/db/table. */
static int call_frame(const nana_json *cmd, nana_buf *f)
{
    size_t at;
    if (nana_frame_begin(f, &at)) return -1;
    nana_buf *b = f; /* the body goes straight after the length */
    const nana_json *args = nana_json_object_get(cmd, "args", 4);
    const nana_json *kwargs = nana_json_object_get(cmd, "kwargs", 6);
    const char *db = jstr(cmd, "db", NULL), *table = jstr(cmd, "table", NULL);
    /* "db": null is sent as nil: the default database, not the connection's last. */
    const nana_json *dbv = nana_json_object_get(cmd, "db", 2);
    bool db_nil = dbv && dbv->type == NANA_JSON_NULL;
    unsigned n = 3 + (db != NULL || db_nil) + (table != NULL);
    int rc = nana_mp_put_map(b, n);
    if (!rc) rc = nana_mp_put_cstr(b, "method");
    if (!rc) rc = nana_mp_put_cstr(b, jstr(cmd, "method", ""));
    if (!rc) rc = nana_mp_put_cstr(b, "args");
    if (!rc) rc = args ? nana_mp_from_json(b, args) : nana_mp_put_array(b, 0);
    if (!rc) rc = nana_mp_put_cstr(b, "kwargs");
    if (!rc) rc = kwargs ? nana_mp_from_json(b, kwargs) : nana_mp_put_map(b, 0);
    if (!rc && db) rc = nana_mp_put_cstr(b, "db");
    if (!rc && db) rc = nana_mp_put_cstr(b, db);
    if (!rc && db_nil) rc = nana_mp_put_cstr(b, "db") || nana_mp_put_nil(b);
    if (!rc && table) rc = nana_mp_put_cstr(b, "table");
    if (!rc && table) rc = nana_mp_put_cstr(b, table);
    if (!rc) rc = nana_frame_end(f, at);
    return rc;
}

/* Sends one frame and waits for its reply; appends the reply fields. */
static int roundtrip(dconn *d, const nana_buf *f, bool fin, bool wait, nana_buf *out)
{
    int64_t sid = send_bytes(d, -1, (const uint8_t *)f->data, f->len, fin);
    if (sid < 0) return -1;
    if (!wait) {
        nana_buf_printf(out, ",\"sid\":%lld", (long long)sid);
        return 0;
    }
    show_stream(out, wait_stream(d, sid, WAIT_MS), d);
    return 0;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static void unhex(const char *h, nana_buf *out)
{
    for (size_t i = 0; h[i] && h[i + 1]; i += 2) {
        uint8_t b = (uint8_t)(hexval(h[i]) * 16 + hexval(h[i + 1]));
        nana_buf_append(out, &b, 1);
    }
}

/* Runs the authentication: AUTH_START, sign, respond. */
static int do_auth(dconn *d, const nana_json *cmd, nana_buf *out)
{
    uint8_t sk[64], challenge[32] = {0};
    if (nana_ed25519_read_private(jstr(cmd, "key", "nana_private.pem"), sk)) return -1;
    nana_buf f;
    nana_buf_init(&f, 0);
    if (!jbool(cmd, "no_start", false)) {
        nana_frame_string(&f, "AUTH_START");
        int64_t sid = send_bytes(d, -1, (const uint8_t *)f.data, f.len, true);
        rstream *r = sid >= 0 ? wait_stream(d, sid, WAIT_MS) : NULL;
        char msg[256];
        pthread_mutex_lock(&mu);
        bool got = r && r->fin &&
                   nana_frame_auth_reply((const uint8_t *)r->buf.data, r->buf.len, challenge, msg,
                                         sizeof(msg)) == NANA_AUTH_CHALLENGE;
        pthread_mutex_unlock(&mu);
        if (!got) {
            nana_buf_puts(out, ",\"challenge\":false");
            if (r) show_stream(out, r, d);
            nana_buf_free(&f);
            sodium_memzero(sk, sizeof(sk));
            return 0;
        }
    }
    int64_t delay = jint(cmd, "delay_ms", 0);
    if (delay > 0) {
        struct timespec nap = {delay / 1000, (long)(delay % 1000) * 1000000L};
        nanosleep(&nap, NULL);
    }
    uint8_t sig[64];
    crypto_sign_detached(sig, NULL, challenge, 32, sk);
    sodium_memzero(sk, sizeof(sk));
    if (jbool(cmd, "corrupt", false)) sig[5] ^= 0x40;
    nana_buf_reset(&f);
    nana_frame_auth_response(&f, sig, jstr(cmd, "account", NULL));
    int rc = roundtrip(d, &f, true, true, out);
    nana_buf_free(&f);
    return rc;
}

/* N calls with W in flight; counts the outcomes. */
static int do_calls(dconn *d, const nana_json *cmd, nana_buf *out)
{
    int64_t n = jint(cmd, "n", 1), window = jint(cmd, "window", 16);
    if (n < 1 || n > 1000000 || window < 1 || window > 4096) return -1;
    nana_buf f;
    nana_buf_init(&f, 0);
    if (call_frame(cmd, &f)) return -1;
    int64_t *sids = calloc((size_t)window, sizeof(int64_t));
    int64_t success = 0, failed = 0, lost = 0;
    char last_error[512] = "";
    for (int64_t done = 0; done < n;) {
        int64_t batch = n - done < window ? n - done : window;
        for (int64_t i = 0; i < batch; i++)
            sids[i] = send_bytes(d, -1, (const uint8_t *)f.data, f.len, true);
        for (int64_t i = 0; i < batch; i++) {
            if (sids[i] < 0) {
                lost++;
                continue;
            }
            rstream *r = wait_stream(d, sids[i], WAIT_MS);
            nana_buf one;
            nana_buf_init(&one, 0);
            show_stream(&one, r, d);
            if (one.data && strstr(one.data, "\"status\":\"success\""))
                success++;
            else if (one.data && strstr(one.data, "\"status\":\"error\"")) {
                failed++;
                snprintf(last_error, sizeof(last_error), "%s", one.data);
            } else
                lost++;
            nana_buf_free(&one);
        }
        done += batch;
    }
    nana_buf_printf(out, ",\"success\":%lld,\"errors\":%lld,\"lost\":%lld", (long long)success,
                    (long long)failed, (long long)lost);
    if (last_error[0]) {
        nana_buf_puts(out, ",\"last_error\":");
        nana_json_write_string(out, last_error, strlen(last_error));
    }
    free(sids);
    nana_buf_free(&f);
    return 0;
}

static int do_connect(const nana_json *cmd, const char *id, nana_buf *out)
{
    dconn *d = calloc(1, sizeof(*d));
    if (!d) return -1;
    snprintf(d->id, sizeof(d->id), "%s", id);
    d->next = conns;
    conns = d;
    /* The connection's state is attached by passing it as conn_data. */
    if (nana_quic_connect(ep, jstr(cmd, "host", "127.0.0.1"), (uint16_t)jint(cmd, "port", 4433),
                          jstr(cmd, "name", "localhost"), NULL, 0, d, &d->h))
        return -1;
    struct timespec ts;
    deadline(&ts, WAIT_MS);
    pthread_mutex_lock(&mu);
    while (!d->open && !d->closed)
        if (pthread_cond_timedwait(&cv, &mu, &ts)) break;
    bool open = d->open && !d->closed;
    uint64_t code = d->close_code;
    char reason[sizeof(d->close_reason)];
    memcpy(reason, d->close_reason, sizeof(reason));
    pthread_mutex_unlock(&mu);
    nana_buf_printf(out, ",\"open\":%s,\"close_code\":%llu,\"close_reason\":\"%s\"",
                    open ? "true" : "false", (unsigned long long)code, reason);
    return 0;
}

/* Runs one command line; writes the answer line. */
static void run_line(const char *line, size_t len)
{
    nana_buf out;
    nana_buf_init(&out, 0);
    nana_json_doc *doc = NULL;
    nana_json *cmd = NULL;
    int rc = -1;
    if (nana_json_parse(line, len, 0, 512, &doc, &cmd) || cmd->type != NANA_JSON_OBJECT) {
        printf("{\"ok\":false,\"error\":\"bad command\"}\n");
        fflush(stdout);
        nana_json_doc_free(doc);
        return;
    }
    const char *op = jstr(cmd, "op", ""), *id = jstr(cmd, "id", "a");
    dconn *d = find_conn(id);
    if (!strcmp(op, "connect"))
        rc = do_connect(cmd, id, &out);
    else if (!d)
        rc = -1;
    else if (!strcmp(op, "auth"))
        rc = do_auth(d, cmd, &out);
    else if (!strcmp(op, "calls"))
        rc = do_calls(d, cmd, &out);
    else if (!strcmp(op, "call")) {
        nana_buf f;
        nana_buf_init(&f, 0);
        rc = call_frame(cmd, &f);
        if (!rc) rc = roundtrip(d, &f, true, jbool(cmd, "wait", true), &out);
        nana_buf_free(&f);
    } else if (!strcmp(op, "raw") || !strcmp(op, "more")) {
        nana_buf f;
        nana_buf_init(&f, 0);
        unhex(jstr(cmd, "hex", ""), &f);
        bool fin = jbool(cmd, "fin", true), wait = jbool(cmd, "wait", true);
        int64_t sid = !strcmp(op, "raw") ? -1 : jint(cmd, "sid", -1);
        sid = send_bytes(d, sid, (const uint8_t *)f.data, f.len, fin);
        rc = sid < 0 ? -1 : 0;
        if (!rc && wait)
            show_stream(&out, wait_stream(d, sid, WAIT_MS), d);
        else if (!rc)
            nana_buf_printf(&out, ",\"sid\":%lld", (long long)sid);
        nana_buf_free(&f);
    } else if (!strcmp(op, "wait")) {
        show_stream(&out, wait_stream(d, jint(cmd, "sid", 0), (unsigned)jint(cmd, "ms", WAIT_MS)),
                    d);
        rc = 0;
    } else if (!strcmp(op, "close")) {
        pthread_mutex_lock(&mu);
        bool closed = d->closed;
        pthread_mutex_unlock(&mu);
        nana_buf_printf(&out, ",\"closed\":%s", closed ? "true" : "false");
        rc = 0;
    }
    if (rc)
        printf("{\"ok\":false,\"error\":\"%s failed\"}\n", op);
    else
        printf("{\"ok\":true%s}\n", out.data ? out.data : "");
    fflush(stdout);
    nana_buf_free(&out);
    nana_json_doc_free(doc);
}

int main(int argc, char **argv)
{
    if (sodium_init() < 0) return 1;
    const char *ca = argc > 1 ? argv[1] : "cert.pem";
    static const nana_quic_callbacks cb = {.conn_open = on_open,
                                           .conn_close = on_close,
                                           .stream_data = on_data,
                                           .stream_close = on_stream_close};
    nana_quic_config qc;
    nana_quic_config_init(&qc);
    qc.ca_file = ca;
    if (argc > 3) {
        qc.cert_file = argv[2];
        qc.key_file = argv[3];
    }
    qc.cb = &cb;
    qc.max_streams_bidi = 16;
    qc.idle_timeout_ms = 60000;
    if (nana_quic_ep_new(&qc, &ep)) {
        fprintf(stderr, "wire_driver: %s\n", nana_errmsg());
        return 1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, stdin)) > 0)
        run_line(line, (size_t)n);
    free(line);
    nana_quic_ep_del(ep);
    return 0;
}
