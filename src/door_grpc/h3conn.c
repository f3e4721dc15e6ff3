/*
 * h3conn.c - a connection of the gRPC door over QUIC: HTTP/3 on it
 * (src/h3), each request stream a call (call.c), and the answers going
 * out. What every connection shares is conn.c's.
 *
 * The connection gets transport callbacks of its own when it opens (the
 * door seam hands it over), so its packets never pass through the
 * NanaSQLite door. nghttp3 tells us a request's header fields, body and
 * end; a call's answer goes back as nghttp3's response: its header block,
 * the framed reply message (nghttp3 reads it from the call, which keeps it
 * until the stream is closed) and the trailers, or Trailers-Only when the
 * call fails before a body. A call answered before its request ended
 * stops reading it (STOP_SENDING with H3_NO_ERROR), as gRPC over HTTP/3
 * says.
 */
#include "door_grpc/gdoor_int.h"

#include "util/nana_addr.h"
#include "util/nana_log.h"
#include "util/nana_mem.h"

#include <stdio.h>
#include <string.h>

/* ---- nghttp3's request events ------------------------------------------------ */

static int on_begin_headers(nghttp3_conn *h3, int64_t sid, void *cu, void *su)
{
    (void)su;
    gconn *g = nana_h3_user(cu);
    gcall *c = nana_gcall_new(g, sid);
    if (!c) return NGHTTP3_ERR_CALLBACK_FAILURE; /* out of memory: the connection goes */
    if (nghttp3_conn_set_stream_user_data(h3, sid, c)) {
        nana_gcall_detach(c);
        return NGHTTP3_ERR_CALLBACK_FAILURE;
    }
    return 0;
}

static int on_recv_header(nghttp3_conn *h3, int64_t sid, int32_t token, nghttp3_rcbuf *name,
                          nghttp3_rcbuf *value, uint8_t flags, void *cu, void *su)
{
    (void)h3;
    (void)sid;
    (void)token;
    (void)flags;
    (void)cu;
    gcall *c = su;
    if (!c || c->head_done) return 0;
    nghttp3_vec n = nghttp3_rcbuf_get_buf(name), v = nghttp3_rcbuf_get_buf(value);
    return nana_gcall_header(c, n.base, n.len, v.base, v.len);
}

static int on_end_headers(nghttp3_conn *h3, int64_t sid, int fin, void *cu, void *su)
{
    (void)h3;
    (void)sid;
    (void)fin;
    (void)cu;
    gcall *c = su;
    if (c && !c->head_done) nana_gcall_end_headers(c);
    return 0;
}

static int on_recv_data(nghttp3_conn *h3, int64_t sid, const uint8_t *data, size_t len, void *cu,
                        void *su)
{
    (void)h3;
    (void)sid;
    (void)cu;
    gcall *c = su;
    bool kept = c && nana_gcall_keeps_credit(c);
    if (c) nana_gcall_data(c, data, len);
    /* Request bytes are counted in the door's budgets instead of holding
     * flow control, except a stream of AQL queries' (its answers do). */
    if (!kept && nana_h3_consume(cu, sid, len)) return NGHTTP3_ERR_CALLBACK_FAILURE;
    return 0;
}

/* The client acknowledged |n| more bytes of a call's answer. */
static int on_acked(nghttp3_conn *h3, int64_t sid, uint64_t n, void *cu, void *su)
{
    (void)h3;
    (void)sid;
    (void)cu;
    gcall *c = su;
    if (c && c->conn) nana_gdoor_aql_acked(c, n);
    return 0;
}

static int on_end_stream(nghttp3_conn *h3, int64_t sid, void *cu, void *su)
{
    (void)h3;
    (void)sid;
    (void)cu;
    gcall *c = su;
    if (c && !c->ended) nana_gcall_end_stream(c);
    return 0;
}

static int on_stream_close(nghttp3_conn *h3, int64_t sid, uint64_t code, void *cu, void *su)
{
    (void)h3;
    (void)sid;
    (void)code;
    (void)cu;
    gcall *c = su;
    if (c) nana_gcall_detach(c);
    return 0;
}

/* The call on stream |sid| of |g|, or NULL. */
static gcall *call_of(gconn *g, int64_t sid)
{
    for (gcall *c = g->calls; c; c = c->next)
        if (c->sid == sid) return c;
    return NULL;
}

/* The client will not read the answer, or gave up its request: the call
 * is cancelled (not run, if it has not started) and the stream abandoned. */
static void cancel_call(nana_h3_conn *hc, gcall *c)
{
    nana_gdoor_call_cancelled(c);
    (void)nana_h3_cancel(hc, c->sid, NANA_GRPC_H3_REQUEST_CANCELLED);
}

/* The client sent STOP_SENDING: it will not read the answer. */
static void on_stop_sending(nana_h3_conn *hc, int64_t sid, uint64_t code)
{
    (void)code;
    gcall *c = call_of(nana_h3_user(hc), sid);
    if (c) cancel_call(hc, c);
}

/*
 * The client reset its request (RESET_STREAM). That is no cancellation
 * when we asked for it (STOP_SENDING after an early answer: the client
 * resets, and RFC 9114 has it keep reading the complete answer), nor when
 * the whole request had arrived and the reset says H3_NO_ERROR; the
 * answer goes on. Otherwise the request is cut short: the call is
 * cancelled.
 */
static void on_stream_reset(nana_h3_conn *hc, int64_t sid, uint64_t code)
{
    gcall *c = call_of(nana_h3_user(hc), sid);
    if (!c || c->read_stopped || (c->ended && code == NANA_GRPC_H3_NO_ERROR)) return;
    cancel_call(hc, c);
}

/* ---- answers ------------------------------------------------------------------- */

/* nghttp3 asks for the body: the framed reply, or the streamed chunks. */
static nghttp3_ssize read_body(nghttp3_conn *h3, int64_t sid, nghttp3_vec *vec, size_t veccnt,
                               uint32_t *pflags, void *cu, void *su)
{
    (void)h3;
    (void)sid;
    (void)cu;
    gcall *c = su;
    size_t n = 0;
    if (!c) {
        *pflags |= NGHTTP3_DATA_FLAG_EOF;
        return 0;
    }
    if (c->chunks || c->streaming) {
        while (n < veccnt && c->csend) {
            vec[n].base = (uint8_t *)(uintptr_t)c->csend->p;
            vec[n].len = c->csend->len;
            n++;
            c->csend = c->csend->next;
        }
        /* More than |veccnt| chunks wait: nghttp3 asks again for the rest. */
        if (c->csend) return (nghttp3_ssize)n;
        if (!c->body_eof) return n ? (nghttp3_ssize)n : NGHTTP3_ERR_WOULDBLOCK;
    } else if (!c->sent_body && c->body.len && veccnt) {
        vec[0].base = (uint8_t *)c->body.data;
        vec[0].len = c->body.len;
        n = 1;
        c->sent_body = true;
    }
    /* The trailers end the stream. */
    *pflags |= NGHTTP3_DATA_FLAG_EOF | NGHTTP3_DATA_FLAG_NO_END_STREAM;
    return (nghttp3_ssize)n;
}

/* Copies |f| into nghttp3's form (the strings stay |f|'s). */
static size_t to_nv(const nana_grpc_fields *f, nghttp3_nv *nv, size_t cap)
{
    size_t n = f->n < cap ? f->n : cap;
    for (size_t i = 0; i < n; i++)
        nv[i] =
            (nghttp3_nv){(uint8_t *)(uintptr_t)f->v[i].name, (uint8_t *)(uintptr_t)f->v[i].value,
                         f->v[i].name_len, f->v[i].value_len, NGHTTP3_NV_FLAG_NONE};
    return n;
}

/* The answer is out before the request ended: the rest of it is not read. */
static void stop_reading(gcall *c)
{
    gconn *g = c->conn;
    if (c->ended || c->read_stopped || !g) return;
    c->read_stopped = true;
    (void)nghttp3_conn_shutdown_stream_read(nana_h3_nghttp3(g->hc), c->sid);
    (void)nana_quic_stream_shutdown_read(g->qc, c->sid, NANA_GRPC_H3_NO_ERROR);
}

static nana_grpc_ctype ctype_of(const gcall *c)
{
    return c->head.ctype_ok ? c->head.ctype : NANA_GRPC_CT_GRPC;
}

static void h3_respond(gcall *c)
{
    gconn *g = c->conn;
    if (!g || nana_h3_failed(g->hc)) return;
    nghttp3_conn *h3 = nana_h3_nghttp3(g->hc);
    nana_grpc_field fs[24];
    nana_grpc_fields f;
    nghttp3_nv nv[24];
    int rc = 0;
    nana_grpc_fields_init(&f, fs, 24, &c->arena);
    if (!c->responded) {
        c->responded = true;
        if (c->status != NANA_GRPC_OK && !c->body.len && !c->chunks) {
            /* Trailers-Only: the whole answer in one header block. */
            if (c->head.done && c->head.verdict.kind == NANA_GRPC_REFUSE)
                rc = nana_grpc_resp_verdict(&f, &c->head.verdict, ctype_of(c));
            else
                rc = nana_grpc_resp_trailers_only(&f, ctype_of(c), c->status, c->message);
            if (!rc) rc = nghttp3_conn_submit_response(h3, c->sid, nv, to_nv(&f, nv, 24), NULL);
            if (rc) (void)nana_h3_cancel(g->hc, c->sid, NANA_GRPC_H3_INTERNAL_ERROR);
            stop_reading(c);
            nana_quic_conn_source_ready(g->qc);
            return;
        }
        static const nghttp3_data_reader dr = {read_body};
        rc = nana_grpc_resp_headers(&f, ctype_of(c));
        if (!rc) rc = nghttp3_conn_submit_response(h3, c->sid, nv, to_nv(&f, nv, 24), &dr);
    }
    if (!rc && c->body_eof && !c->trailered) {
        c->trailered = true;
        nana_grpc_fields_init(&f, fs, 24, &c->arena);
        rc = nana_grpc_resp_trailers(&f, c->status, c->message);
        if (!rc && c->proof) rc = nana_grpc_resp_meta(&f, "nana-proof-bin", c->proof, c->proof_len);
        if (!rc && c->pushback_ms) rc = nana_grpc_resp_pushback(&f, c->pushback_ms);
        if (!rc) rc = nghttp3_conn_submit_trailers(h3, c->sid, nv, to_nv(&f, nv, 24));
    }
    if (!rc) rc = nghttp3_conn_resume_stream(h3, c->sid);
    if (rc) (void)nana_h3_cancel(g->hc, c->sid, NANA_GRPC_H3_INTERNAL_ERROR);
    if (c->body_eof) stop_reading(c);
    nana_quic_conn_source_ready(g->qc);
}

static void h3_resume(gcall *c)
{
    gconn *g = c->conn;
    if (!g || nana_h3_failed(g->hc)) return;
    (void)nghttp3_conn_resume_stream(nana_h3_nghttp3(g->hc), c->sid);
    nana_quic_conn_source_ready(g->qc);
}

static void h3_respond_http(gcall *c, int http_status)
{
    gconn *g = c->conn;
    if (!g || nana_h3_failed(g->hc)) return;
    nana_grpc_field fs[4];
    nana_grpc_fields f;
    nghttp3_nv nv[4];
    nana_grpc_fields_init(&f, fs, 4, &c->arena);
    c->responded = true;
    int rc = nana_grpc_resp_http_error(&f, http_status);
    if (!rc)
        rc = nghttp3_conn_submit_response(nana_h3_nghttp3(g->hc), c->sid, nv, to_nv(&f, nv, 4),
                                          NULL);
    if (rc) (void)nana_h3_cancel(g->hc, c->sid, NANA_GRPC_H3_INTERNAL_ERROR);
    stop_reading(c);
    nana_quic_conn_source_ready(g->qc);
}

static void h3_reset(gcall *c, uint64_t code)
{
    gconn *g = c->conn;
    if (!nana_h3_failed(g->hc)) (void)nana_h3_cancel(g->hc, c->sid, code);
}

static void h3_consume(gconn *g, int64_t sid, uint64_t n)
{
    /* Not once the connection's HTTP/3 is gone (its calls are detached
     * after that, at the connection's close): nothing to credit then. */
    nana_h3_conn *hc = nana_h3_of(g->qc);
    if (hc) (void)nana_h3_consume(hc, sid, n);
}

static uint64_t h3_now(const gconn *g)
{
    return nana_quic_conn_now(g->qc);
}

static void h3_set_timer(gconn *g, uint64_t when)
{
    nana_quic_conn_set_timer(g->qc, when);
}

static int h3_trust(gconn *g)
{
    return nana_quic_conn_trust(g->qc);
}

static int h3_exporter(const gconn *g, const char *label, uint8_t *out, size_t n)
{
    return nana_quic_conn_exporter(g->qc, label, NULL, 0, out, n);
}

/* ---- the connection ------------------------------------------------------------ */

/* Tells |g|'s client the server is going away: HTTP/3 GOAWAY (the last
 * request it will take is the last one it has seen), and its open health
 * watches end. */
static void h3_drain(gconn *g)
{
    if (nana_h3_failed(g->hc)) return;
    nghttp3_conn *h3 = nana_h3_nghttp3(g->hc);
    int rv = nghttp3_conn_submit_shutdown_notice(h3);
    if (!rv) rv = nghttp3_conn_shutdown(h3);
    if (rv) {
        (void)nana_h3_fail(g->hc, rv);
        return;
    }
    nana_gdoor_conn_end_watches(g);
    nana_quic_conn_source_ready(g->qc);
}

static const gtransport h3_transport = {
    .name = "h3",
    .respond = h3_respond,
    .resume = h3_resume,
    .respond_http = h3_respond_http,
    .reset = h3_reset,
    .consume = h3_consume,
    .now = h3_now,
    .set_timer = h3_set_timer,
    .trust = h3_trust,
    .exporter = h3_exporter,
    .drain = h3_drain,
};

/* The connection's timer: its unfinished requests are looked at (conn.c). */
static void conn_timer(nana_quic_conn *qc, void *user)
{
    (void)user;
    nana_h3_conn *hc = nana_h3_of(qc);
    gconn *g = hc ? nana_h3_user(hc) : NULL;
    if (g) nana_gdoor_conn_tick(g);
}

static void conn_close(nana_quic_conn *qc, void *user)
{
    (void)user;
    nana_h3_conn *hc = nana_h3_of(qc);
    gconn *g = hc ? nana_h3_user(hc) : NULL;
    nana_h3_close(qc);
    if (!g) return;
    nana_gdoor_conn_remove(g);
    nana_free(g);
}

void nana_gdoor_h3_app(nana_gdoor *d)
{
    /* The transport callbacks of its connections (the stream ones are src/h3's). */
    memset(&d->qcb, 0, sizeof(d->qcb));
    d->qcb.conn_close = conn_close;
    d->qcb.timer = conn_timer;
    nana_h3_quic_callbacks(&d->qcb);
    nghttp3_settings_default(&d->h3settings);
    /* nghttp3 refuses a header block over this (QPACK's view of the size,
     * as the gRPC layer counts it, with room for what it does not count). */
    d->h3settings.max_field_section_size = (uint64_t)d->o.lim.max_header_bytes + 1024;
    /* A QPACK dynamic table for the client's encoder: a client sends the
     * same few fields on every call, which then cost an index each instead
     * of Huffman-coded literals to decode. Its memory is bounded by the
     * capacity; a stream waiting for a table entry is held only up to
     * the blocked-streams bound (past it, a connection error). */
    d->h3settings.qpack_max_dtable_capacity = NANA_H3_QPACK_TABLE;
    d->h3settings.qpack_blocked_streams = NANA_H3_QPACK_BLOCKED;
    nana_h3_app *a = &d->h3app;
    memset(a, 0, sizeof(*a));
    a->cb.begin_headers = on_begin_headers;
    a->cb.recv_header = on_recv_header;
    a->cb.end_headers = on_end_headers;
    a->cb.recv_data = on_recv_data;
    a->cb.end_stream = on_end_stream;
    a->cb.stream_close = on_stream_close;
    a->cb.acked_stream_data = on_acked;
    a->server = true;
    a->auto_consume = false; /* on_recv_data gives the credit back */
    a->settings = &d->h3settings;
    a->on_stream_reset = on_stream_reset;
    a->on_stop_sending = on_stop_sending;
}

int nana_gdoor_conn_open(nana_gdoor *d, nana_quic_conn *qc)
{
    gconn *g = nana_calloc(1, sizeof(*g));
    if (!g) return nana_err_set(NANA_ERR_NOMEM, "out of memory for a gRPC connection");
    g->d = d;
    g->tp = &h3_transport;
    g->loop = nana_quic_conn_loop(qc);
    g->qc = qc;
    g->handle = nana_quic_conn_handle(qc);
    socklen_t alen;
    nana_quic_conn_peer(qc, &g->addr, &alen);
    nana_addr_text(&g->addr, g->peer, sizeof(g->peer));
    const nana_quic_identity *id = nana_quic_conn_identity(qc);
    if (id->verified) {
        g->id.verified = true;
        memcpy(g->id.cert_sha256, id->cert_sha256, sizeof(id->cert_sha256));
        memcpy(g->id.spki_sha256, id->spki_sha256, sizeof(id->spki_sha256));
        snprintf(g->id.subject, sizeof(g->id.subject), "%s", id->subject);
    }
    nana_quic_conn_set_callbacks(qc, &d->qcb, d);
    int rc = nana_h3_open(qc, &d->h3app, g, &g->hc);
    if (rc) {
        if (!nana_h3_of(qc)) nana_free(g); /* else conn_close frees it */
        return rc;
    }
    nana_gdoor_conn_add(g);
    return NANA_OK;
}
