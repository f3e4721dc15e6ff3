/*
 * h2conn.c - a connection of the gRPC door over TCP: HTTP/2 (nghttp2, made
 * by src/h2) on a TLS or h2c connection of src/tcp, each request stream a
 * call (call.c), and the answers going out.
 *
 * Bytes in: the TCP connection hands us what TLS decrypted and nghttp2
 * reads it (nghttp2_session_mem_recv), calling us back for each request's
 * header fields, body and end. Bytes out: nghttp2_session_mem_send makes
 * frames, copied into the TCP connection's send buffer while it has room
 * (pump); when the peer reads slowly the buffer fills, we stop making
 * frames, the TCP layer stops reading, and nothing grows. nghttp2 copies
 * a call's body out of the call (read_body) as flow control allows, so a
 * streamed answer's pieces are released once copied, as the HTTP/3 door
 * releases them once acknowledged: a zero-window reader holds at most an
 * AQL stream's window.
 *
 * What nghttp2 does not bound is bounded here: every frame the client
 * begins passes the flood guard (nana_h2.h; a flood ends the connection
 * with GOAWAY ENHANCE_YOUR_CALM), and a request's decoded header list
 * (an HPACK bomb) resets its stream past twice the door's header limit;
 * under that, the gRPC layer refuses the call as on HTTP/3.
 *
 * Everything here runs on the connection's I/O thread.
 */
#include "door_grpc/gdoor_int.h"

#include "tcp/nana_tcp.h"
#include "util/nana_addr.h"
#include "util/nana_log.h"
#include "util/nana_mem.h"
#include "util/nana_time.h"

#include <stdio.h>
#include <string.h>

typedef struct h2conn {
    gconn g; /* first: a gconn * is an h2conn * */
    nana_tcp_conn *tc;
    nghttp2_session *ng;
    nana_h2_guard guard;
    gcall *acks;       /* calls whose copied body bytes are not yet reported */
    bool pumping;      /* pump runs (a call it makes may ask for it again) */
    bool again;        /* ... and one did */
    bool in_cb;        /* a TCP callback runs: it pumps at its end */
    bool post_pending; /* pump_post is queued (the connection outlives it) */
    bool dead;         /* closed while pump_post was queued: the post frees it */
    struct nana_loop_post pump_post;
    bool closing;  /* GOAWAY for a flood or a fatal error: no more input */
    bool gone;     /* the TCP connection is closing: nothing more goes out */
    bool draining; /* the server stops: close once the last call ended */
    /* the one TCP timer, shared: the door's look at unfinished requests,
     * and the look at answers the client does not read (0: not wanted) */
    uint64_t watch_at, stall_at;
    uint64_t last_copy; /* when nghttp2 last took answer bytes */
    char alt_svc[32];
} h2conn;

static h2conn *h2_of(gconn *g)
{
    return (h2conn *)(void *)g;
}

/* Arms the TCP timer for the earlier of the two looks. */
static void rearm(h2conn *h)
{
    uint64_t when = h->watch_at;
    if (h->stall_at && (!when || h->stall_at < when)) when = h->stall_at;
    nana_tcp_conn_set_timer(h->tc, when);
}

/* An answer waits to go: the stall look is due reply_stall_ms on. */
static void watch_stall(h2conn *h)
{
    if (h->stall_at) return;
    uint64_t now = nana_tcp_conn_now(h->tc);
    if (!h->last_copy) h->last_copy = now;
    h->stall_at = now + (uint64_t)h->g.d->o.reply_stall_ms * 1000000ull;
    rearm(h);
}

/* ---- bytes out ------------------------------------------------------------------- */

/* Tells the calls whose body bytes nghttp2 copied out (AQL streams page
 * on this); they may queue more, which makes pump go round again. */
static void report_acks(h2conn *h)
{
    while (h->acks) {
        gcall *c = h->acks;
        h->acks = c->h2_ack_next;
        c->h2_ack_next = NULL;
        uint64_t n = c->h2_unacked;
        c->h2_unacked = 0;
        if (c->conn && n) nana_gdoor_aql_acked(c, n);
    }
}

/* Moves nghttp2's frames into the TCP connection's send buffer while it
 * has room; closes the connection when nghttp2 is done with it. */
static void pump(h2conn *h)
{
    if (h->gone) return;
    if (h->pumping) {
        h->again = true;
        return;
    }
    h->pumping = true;
    do {
        h->again = false;
        while (nana_tcp_send_room(h->tc) > 0) {
            const uint8_t *p = NULL;
            ssize_t n = nghttp2_session_mem_send(h->ng, &p);
            if (n < 0) {
                nana_log(NANA_LOG_INFO, "grpc conn %llu: HTTP/2 send failed: %s",
                         (unsigned long long)h->g.handle, nghttp2_strerror((int)n));
                h->pumping = false;
                h->gone = true;
                nana_tcp_conn_close(h->tc, 0);
                return;
            }
            if (n == 0) break;
            if (nana_tcp_send(h->tc, p, (size_t)n)) {
                h->pumping = false;
                h->gone = true;
                nana_tcp_conn_close(h->tc, 0);
                return;
            }
        }
        report_acks(h);
    } while (h->again);
    h->pumping = false;
    bool done = !nghttp2_session_want_read(h->ng) && !nghttp2_session_want_write(h->ng);
    if (h->closing && !nghttp2_session_want_write(h->ng)) done = true;
    if (h->draining && !h->g.calls && !nghttp2_session_want_write(h->ng)) done = true;
    if (done) {
        h->gone = true;
        nana_tcp_conn_close(h->tc, 1);
    }
}

/* The post that pumps for answers made outside a TCP callback. */
static void pump_run(nana_loop *loop, struct nana_loop_post *p)
{
    h2conn *h = (h2conn *)(void *)((char *)p - offsetof(h2conn, pump_post));
    h->post_pending = false;
    if (h->dead) {
        nana_free(h);
        return;
    }
    if (loop) pump(h);
}

/*
 * Frames are waiting: they go out at the end of the TCP callback that runs
 * (or of the pump that runs), else from a post to the connection's loop.
 * Never at once: sending can end a stream, whose call a caller up the
 * stack still holds.
 */
static void kick(h2conn *h)
{
    if (h->gone) return;
    if (h->pumping) {
        h->again = true;
        return;
    }
    if (h->in_cb || h->post_pending) return;
    h->post_pending = true;
    h->pump_post.run = pump_run;
    nana_loop_post(h->g.loop, &h->pump_post);
}

/* ---- nghttp2's request events ---------------------------------------------------- */

static gcall *call_of(nghttp2_session *ng, int32_t sid)
{
    return nghttp2_session_get_stream_user_data(ng, sid);
}

static int on_begin_frame(nghttp2_session *ng, const nghttp2_frame_hd *hd, void *user)
{
    (void)ng;
    h2conn *h = user;
    if (h->closing) return NGHTTP2_ERR_CALLBACK_FAILURE;
    nana_h2_verdict v = nana_h2_guard_frame(&h->guard, hd, nana_tcp_conn_now(h->tc));
    if (v == NANA_H2_OK) return 0;
    const char *why = nana_h2_verdict_text(v);
    nana_log(NANA_LOG_WARN, "grpc conn %llu from %s: %s: GOAWAY ENHANCE_YOUR_CALM",
             (unsigned long long)h->g.handle, h->g.peer, why);
    atomic_fetch_add(&h->g.d->st_refused, 1);
    (void)nghttp2_submit_goaway(h->ng, NGHTTP2_FLAG_NONE,
                                nghttp2_session_get_last_proc_stream_id(h->ng),
                                NGHTTP2_ENHANCE_YOUR_CALM, (const uint8_t *)why, strlen(why));
    h->closing = true;
    return NGHTTP2_ERR_CALLBACK_FAILURE; /* read nothing more of the flood */
}

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *user)
{
    h2conn *h = user;
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    gcall *c = nana_gcall_new(&h->g, f->hd.stream_id);
    if (!c) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* out of memory: the stream goes */
    if (nghttp2_session_set_stream_user_data(ng, f->hd.stream_id, c)) {
        nana_gcall_detach(c);
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    return 0;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name, size_t nlen,
                     const uint8_t *value, size_t vlen, uint8_t flags, void *user)
{
    (void)flags;
    h2conn *h = user;
    if (f->hd.type != NGHTTP2_HEADERS) return 0;
    gcall *c = call_of(ng, f->hd.stream_id);
    if (!c || c->head_done) return 0; /* a request's trailers: gRPC has none to read */
    /* The decoded size, as HPACK counts it. The gRPC layer refuses a call
     * past its header limit but reads on to the end of the block; a block
     * that decodes into far more (an HPACK bomb) ends the stream here. */
    c->h2_hdr_bytes += nlen + vlen + 32;
    if (c->h2_hdr_bytes > 2 * (size_t)h->g.d->o.lim.max_header_bytes + 4096)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    return nana_gcall_header(c, name, nlen, value, vlen);
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *user)
{
    (void)user;
    gcall *c = NULL;
    switch (f->hd.type) {
    case NGHTTP2_HEADERS:
        c = call_of(ng, f->hd.stream_id);
        if (!c) return 0;
        if (!c->head_done && f->headers.cat == NGHTTP2_HCAT_REQUEST) nana_gcall_end_headers(c);
        break;
    case NGHTTP2_DATA:
        c = call_of(ng, f->hd.stream_id);
        if (!c) return 0;
        break;
    default:
        return 0;
    }
    if ((f->hd.flags & NGHTTP2_FLAG_END_STREAM) && !c->ended) nana_gcall_end_stream(c);
    return 0;
}

static int on_data(nghttp2_session *ng, uint8_t flags, int32_t sid, const uint8_t *data, size_t len,
                   void *user)
{
    (void)flags;
    (void)user;
    gcall *c = call_of(ng, sid);
    bool kept = c && nana_gcall_keeps_credit(c);
    if (c) nana_gcall_data(c, data, len);
    /* Request bytes are counted in the door's budgets instead of holding
     * flow control, except a stream of AQL queries' (its answers do). */
    if (!kept && nghttp2_session_consume(ng, sid, len))
        (void)nghttp2_session_consume_connection(ng, len);
    return 0;
}

/* Takes |c| off the list of calls with unreported body bytes. */
static void unlist_acks(h2conn *h, gcall *c)
{
    for (gcall **p = &h->acks; *p; p = &(*p)->h2_ack_next)
        if (*p == c) {
            *p = c->h2_ack_next;
            c->h2_ack_next = NULL;
            return;
        }
}

static int on_stream_close(nghttp2_session *ng, int32_t sid, uint32_t code, void *user)
{
    h2conn *h = user;
    gcall *c = call_of(ng, sid);
    if (!c) return 0;
    (void)nghttp2_session_set_stream_user_data(ng, sid, NULL);
    unlist_acks(h, c);
    /* A reset before the answer ended: the client gave the call up. */
    if (code != NGHTTP2_NO_ERROR && !c->trailered) nana_gdoor_call_cancelled(c);
    nana_gcall_detach(c);
    return 0;
}

/* Our trailers (or Trailers-Only, or an HTTP error) ended our side while
 * the client still sends: it is told to stop (RST_STREAM NO_ERROR, as
 * RFC 9113 section 8.1 allows once the response is complete). */
static int on_frame_send(nghttp2_session *ng, const nghttp2_frame *f, void *user)
{
    h2conn *h = user;
    if (f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS)
        nana_h2_guard_answered(&h->guard);
    if (f->hd.type != NGHTTP2_HEADERS || !(f->hd.flags & NGHTTP2_FLAG_END_STREAM)) return 0;
    gcall *c = call_of(ng, f->hd.stream_id);
    if (c && !c->ended && !c->read_stopped) {
        c->read_stopped = true;
        (void)nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_NO_ERROR);
    }
    return 0;
}

/* ---- answers ------------------------------------------------------------------- */

/* Copies |f| into nghttp2's form (the strings stay |f|'s). */
static size_t to_nv(const nana_grpc_fields *f, nghttp2_nv *nv, size_t cap)
{
    size_t n = f->n < cap ? f->n : cap;
    for (size_t i = 0; i < n; i++)
        nv[i] =
            (nghttp2_nv){(uint8_t *)(uintptr_t)f->v[i].name, (uint8_t *)(uintptr_t)f->v[i].value,
                         f->v[i].name_len, f->v[i].value_len, NGHTTP2_NV_FLAG_NONE};
    return n;
}

/* Submits |c|'s trailers: its status and message, and its proof. */
static int submit_trailers(h2conn *h, gcall *c)
{
    nana_grpc_field fs[8];
    nana_grpc_fields f;
    nghttp2_nv nv[8];
    nana_grpc_fields_init(&f, fs, 8, &c->arena);
    int rc = nana_grpc_resp_trailers(&f, c->status, c->message);
    if (!rc && c->proof) rc = nana_grpc_resp_meta(&f, "nana-proof-bin", c->proof, c->proof_len);
    if (!rc && c->pushback_ms) rc = nana_grpc_resp_pushback(&f, c->pushback_ms);
    c->trailered = true;
    if (!rc) rc = nghttp2_submit_trailer(h->ng, (int32_t)c->sid, nv, to_nv(&f, nv, 8));
    return rc;
}

/* nghttp2 asks for up to |length| body bytes of |c|: the framed reply, or
 * the streamed chunks in order; at the end, the trailers. */
static ssize_t read_body(nghttp2_session *ng, int32_t sid, uint8_t *buf, size_t length,
                         uint32_t *flags, nghttp2_data_source *src, void *user)
{
    (void)ng;
    (void)sid;
    h2conn *h = user;
    gcall *c = src->ptr;
    size_t n = 0;
    h->last_copy = nana_tcp_conn_now(h->tc);
    if (c->chunks || c->streaming) {
        while (n < length && c->csend) {
            size_t take = c->csend->len - c->h2off;
            take = take < length - n ? take : length - n;
            memcpy(buf + n, c->csend->p + c->h2off, take);
            n += take;
            c->h2off += take;
            if (c->h2off == c->csend->len) {
                c->csend = c->csend->next;
                c->h2off = 0;
            }
        }
        if (n) {
            if (!c->h2_unacked) {
                c->h2_ack_next = h->acks;
                h->acks = c;
            }
            c->h2_unacked += n;
        }
        if (c->csend) return (ssize_t)n;
        if (!c->body_eof) {
            if (n) return (ssize_t)n;
            c->h2_deferred = true;
            return NGHTTP2_ERR_DEFERRED;
        }
    } else {
        size_t left = c->body.len - c->h2off;
        size_t take = left < length ? left : length;
        if (take) memcpy(buf, c->body.data + c->h2off, take);
        c->h2off += take;
        n = take;
        if (c->h2off < c->body.len) return (ssize_t)n;
    }
    *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
    if (submit_trailers(h, c)) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    return (ssize_t)n;
}

static nana_grpc_ctype ctype_of(const gcall *c)
{
    return c->head.ctype_ok ? c->head.ctype : NANA_GRPC_CT_GRPC;
}

static void h2_respond(gcall *c)
{
    h2conn *h = h2_of(c->conn);
    if (h->gone) return;
    int32_t sid = (int32_t)c->sid;
    int rc = 0;
    if (!c->responded) {
        nana_grpc_field fs[24];
        nana_grpc_fields f;
        nghttp2_nv nv[24];
        c->responded = true;
        nana_grpc_fields_init(&f, fs, 24, &c->arena);
        if (c->status != NANA_GRPC_OK && !c->body.len && !c->chunks) {
            /* Trailers-Only: the whole answer in one header block. */
            if (c->head.done && c->head.verdict.kind == NANA_GRPC_REFUSE)
                rc = nana_grpc_resp_verdict(&f, &c->head.verdict, ctype_of(c));
            else
                rc = nana_grpc_resp_trailers_only(&f, ctype_of(c), c->status, c->message);
            c->trailered = true;
            if (!rc) rc = nghttp2_submit_response(h->ng, sid, nv, to_nv(&f, nv, 24), NULL);
        } else {
            rc = nana_grpc_resp_headers(&f, ctype_of(c));
            if (!rc && h->alt_svc[0])
                rc = nana_grpc_resp_meta(&f, "alt-svc", h->alt_svc, strlen(h->alt_svc));
            nghttp2_data_provider dp = {.source.ptr = c, .read_callback = read_body};
            if (!rc) rc = nghttp2_submit_response(h->ng, sid, nv, to_nv(&f, nv, 24), &dp);
        }
    } else if (c->h2_deferred) {
        c->h2_deferred = false;
        rc = nghttp2_session_resume_data(h->ng, sid);
    }
    if (rc) (void)nghttp2_submit_rst_stream(h->ng, NGHTTP2_FLAG_NONE, sid, NGHTTP2_INTERNAL_ERROR);
    kick(h);
    if (!c->trailered) watch_stall(h);
}

static void h2_resume(gcall *c)
{
    h2conn *h = h2_of(c->conn);
    if (h->gone || !c->h2_deferred) return;
    c->h2_deferred = false;
    (void)nghttp2_session_resume_data(h->ng, (int32_t)c->sid);
    kick(h);
    watch_stall(h);
}

static void h2_respond_http(gcall *c, int http_status)
{
    h2conn *h = h2_of(c->conn);
    if (h->gone) return;
    nana_grpc_field fs[4];
    nana_grpc_fields f;
    nghttp2_nv nv[4];
    nana_grpc_fields_init(&f, fs, 4, &c->arena);
    c->responded = true;
    c->trailered = true;
    int rc = nana_grpc_resp_http_error(&f, http_status);
    if (!rc) rc = nghttp2_submit_response(h->ng, (int32_t)c->sid, nv, to_nv(&f, nv, 4), NULL);
    if (rc)
        (void)nghttp2_submit_rst_stream(h->ng, NGHTTP2_FLAG_NONE, (int32_t)c->sid,
                                        NGHTTP2_INTERNAL_ERROR);
    kick(h);
}

/* The HTTP/2 code for an HTTP/3 one (RFC 9114 section 8.1 and RFC 9113
 * section 7 name the same conditions). */
static uint32_t h2_code(uint64_t h3)
{
    switch (h3) {
    case NANA_GRPC_H3_NO_ERROR:
        return NGHTTP2_NO_ERROR;
    case NANA_GRPC_H3_REQUEST_CANCELLED:
        return NGHTTP2_CANCEL;
    case NANA_GRPC_H3_REQUEST_REJECTED:
        return NGHTTP2_REFUSED_STREAM;
    case NANA_GRPC_H3_EXCESSIVE_LOAD:
        return NGHTTP2_ENHANCE_YOUR_CALM;
    case NANA_GRPC_H3_MESSAGE_ERROR:
    case NANA_GRPC_H3_GENERAL_PROTOCOL_ERROR:
        return NGHTTP2_PROTOCOL_ERROR;
    default:
        return NGHTTP2_INTERNAL_ERROR;
    }
}

static void h2_reset(gcall *c, uint64_t h3_code)
{
    h2conn *h = h2_of(c->conn);
    if (h->gone) return;
    (void)nghttp2_submit_rst_stream(h->ng, NGHTTP2_FLAG_NONE, (int32_t)c->sid, h2_code(h3_code));
    kick(h);
}

static void h2_consume(gconn *g, int64_t sid, uint64_t n)
{
    h2conn *h = h2_of(g);
    if (h->gone) return;
    if (nghttp2_session_consume(h->ng, (int32_t)sid, (size_t)n))
        (void)nghttp2_session_consume_connection(h->ng, (size_t)n);
    kick(h);
}

static uint64_t h2_now(const gconn *g)
{
    return nana_tcp_conn_now(((const h2conn *)(const void *)g)->tc);
}

static void h2_set_timer(gconn *g, uint64_t when)
{
    h2conn *h = h2_of(g);
    h->watch_at = when;
    rearm(h);
}

static int h2_trust(gconn *g)
{
    return nana_tcp_conn_trust(h2_of(g)->tc);
}

static int h2_exporter(const gconn *g, const char *label, uint8_t *out, size_t n)
{
    const h2conn *h = (const h2conn *)(const void *)g;
    if (!nana_tcp_conn_alpn(h->tc)[0])
        return nana_err_set(NANA_ERR_INVALID, "a plaintext connection has no TLS exporter");
    return nana_tcp_conn_exporter(h->tc, label, NULL, 0, out, n);
}

/* The server stops: GOAWAY naming the last stream we took (those run to
 * their end, later ones are refused), open watches end, and the
 * connection closes once its last call did. */
static void h2_drain(gconn *g)
{
    h2conn *h = h2_of(g);
    if (h->gone || h->draining) return;
    h->draining = true;
    (void)nghttp2_submit_goaway(h->ng, NGHTTP2_FLAG_NONE,
                                nghttp2_session_get_last_proc_stream_id(h->ng), NGHTTP2_NO_ERROR,
                                NULL, 0);
    nana_gdoor_conn_end_watches(g);
    kick(h);
}

static const gtransport h2_transport = {
    .name = "h2",
    .respond = h2_respond,
    .resume = h2_resume,
    .respond_http = h2_respond_http,
    .reset = h2_reset,
    .consume = h2_consume,
    .now = h2_now,
    .set_timer = h2_set_timer,
    .trust = h2_trust,
    .exporter = h2_exporter,
    .drain = h2_drain,
};

/* ---- the TCP connection's events ------------------------------------------------ */

static int tcp_open(nana_tcp_conn *tc, void *ep_user)
{
    nana_gdoor *d = ep_user;
    h2conn *h = nana_calloc(1, sizeof(*h));
    if (!h) return nana_err_set(NANA_ERR_NOMEM, "out of memory for a gRPC connection");
    gconn *g = &h->g;
    h->tc = tc;
    g->d = d;
    g->tp = &h2_transport;
    g->loop = nana_tcp_conn_loop(tc);
    g->handle = nana_tcp_conn_handle(tc);
    socklen_t alen;
    nana_tcp_conn_peer(tc, &g->addr, &alen);
    nana_addr_text(&g->addr, g->peer, sizeof(g->peer));
    /* A banned address gets no HTTP/2 (as QUIC refuses it at the handshake). */
    if (!d->o.no_bans && d->ban &&
        nana_ban_check(d->ban, (const struct sockaddr *)&g->addr, nana_now_ns())) {
        nana_log(NANA_LOG_INFO, "grpc conn from %s refused: the address is banned", g->peer);
        nana_free(h);
        return nana_err_set(NANA_ERR_PERM, "the address is banned");
    }
    const nana_cert_identity *id = nana_tcp_conn_identity(tc);
    if (id && id->verified) g->id = *id;
    if (d->ep) snprintf(h->alt_svc, sizeof(h->alt_svc), "h3=\":%u\"", nana_quic_ep_port(d->ep));
    int rc = nana_h2_server_new(&d->h2lim, d->h2cbs, h, &h->ng);
    if (rc) {
        nana_free(h);
        return nana_err_set(NANA_ERR_NOMEM, "HTTP/2 session: %s", nghttp2_strerror(rc));
    }
    nana_h2_guard_init(&h->guard, &d->h2lim, nana_tcp_conn_now(tc));
    nana_tcp_conn_set_user(tc, h);
    nana_gdoor_conn_add(g);
    pump(h);
    return NANA_OK;
}

static int tcp_recv(nana_tcp_conn *tc, void *user, const uint8_t *p, size_t n)
{
    (void)tc;
    h2conn *h = user;
    if (h->closing || h->gone) return 0;
    h->in_cb = true;
    ssize_t rv = nghttp2_session_mem_recv(h->ng, p, n);
    if (rv < 0 && !h->closing) {
        nana_log(NANA_LOG_INFO, "grpc conn %llu from %s: HTTP/2: %s",
                 (unsigned long long)h->g.handle, h->g.peer, nghttp2_strerror((int)rv));
        h->closing = true;
        if (rv == NGHTTP2_ERR_BAD_CLIENT_MAGIC) {
            h->gone = true;
            h->in_cb = false;
            return -1;
        }
        (void)nghttp2_session_terminate_session(
            h->ng, rv == NGHTTP2_ERR_FLOODED ? NGHTTP2_ENHANCE_YOUR_CALM : NGHTTP2_PROTOCOL_ERROR);
    }
    h->in_cb = false;
    pump(h);
    return 0;
}

static void tcp_writable(nana_tcp_conn *tc, void *user)
{
    (void)tc;
    pump(user);
}

/* Whether |c| has answer bytes ready that nghttp2 has not taken (held
 * back by the client's flow control or a full send buffer). */
static bool answer_waits(const gcall *c)
{
    if (!c->responded || c->trailered || c->cancelled) return false;
    if (c->chunks || c->streaming) return c->csend != NULL;
    return c->h2off < c->body.len;
}

/*
 * The stall look: answers wait and the client has taken none of their
 * bytes for reply_stall_ms (its flow-control window stays shut, or it does
 * not read the socket): the connection ends with GOAWAY, and what its
 * calls hold goes. A client that reads, however slowly, is left alone.
 */
static void stall_look(h2conn *h, uint64_t now)
{
    h->stall_at = 0;
    bool waits = false;
    for (gcall *c = h->g.calls; c && !waits; c = c->next)
        waits = answer_waits(c);
    if (!waits) return;
    uint64_t limit = (uint64_t)h->g.d->o.reply_stall_ms * 1000000ull;
    if (now - h->last_copy < limit) {
        h->stall_at = h->last_copy + limit;
        return;
    }
    static const char why[] = "answers unread for too long";
    nana_log(NANA_LOG_INFO, "grpc conn %llu from %s: %s (%u ms): closed",
             (unsigned long long)h->g.handle, h->g.peer, why, h->g.d->o.reply_stall_ms);
    (void)nghttp2_submit_goaway(h->ng, NGHTTP2_FLAG_NONE,
                                nghttp2_session_get_last_proc_stream_id(h->ng),
                                NGHTTP2_ENHANCE_YOUR_CALM, (const uint8_t *)why, sizeof(why) - 1);
    h->closing = true;
    pump(h);
    if (!h->gone) {
        h->gone = true;
        nana_tcp_conn_close(h->tc, 1);
    }
}

static void tcp_timer(nana_tcp_conn *tc, void *user)
{
    h2conn *h = user;
    if (h->gone) return;
    uint64_t now = nana_tcp_conn_now(tc);
    h->in_cb = true;
    if (h->watch_at && now >= h->watch_at) {
        h->watch_at = 0;
        nana_gdoor_conn_tick(&h->g); /* may ask for the next look */
    }
    h->in_cb = false;
    pump(h);
    if (!h->gone && h->stall_at && now >= h->stall_at) stall_look(h, now);
    if (!h->gone) rearm(h);
}

static void tcp_close(nana_tcp_conn *tc, void *user)
{
    (void)tc;
    h2conn *h = user;
    h->gone = true;
    nana_gdoor_conn_remove(&h->g);
    h->acks = NULL;
    nghttp2_session_del(h->ng);
    h->ng = NULL;
    if (h->post_pending)
        h->dead = true; /* pump_run frees it */
    else
        nana_free(h);
}

const nana_tcp_callbacks nana_gdoor_tcp_callbacks = {
    .conn_open = tcp_open,
    .recv = tcp_recv,
    .writable = tcp_writable,
    .timer = tcp_timer,
    .conn_close = tcp_close,
};

int nana_gdoor_h2_init(nana_gdoor *d)
{
    nana_h2_limits_fill(&d->h2lim);
    nghttp2_session_callbacks *cb;
    if (nghttp2_session_callbacks_new(&cb))
        return nana_err_set(NANA_ERR_NOMEM, "out of memory for HTTP/2 callbacks");
    nghttp2_session_callbacks_set_on_begin_frame_callback(cb, on_begin_frame);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
    d->h2cbs = cb;
    return NANA_OK;
}

void nana_gdoor_h2_free(nana_gdoor *d)
{
    if (d->h2cbs) nghttp2_session_callbacks_del(d->h2cbs);
    d->h2cbs = NULL;
}
