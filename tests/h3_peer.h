/*
 * h3_peer.h - HTTP/3 (nghttp3) on the QUIC transport, for tests: the glue
 * between a nana_quic connection and an nghttp3 connection, for either
 * side. The transport's callbacks (h3p_quic_callbacks, with the h3p_peer
 * as the endpoint's user pointer) create the HTTP/3 connection when the
 * QUIC one opens, feed it every stream's bytes, and hand its output to the
 * transport as a source (pull-style: nghttp3's vectors stay valid until
 * acknowledged). Flow-control credit goes back only as nghttp3 and the
 * application consume bytes: framing at once, body bytes when the
 * application says (h3p_consume), or at once with auto_consume.
 *
 * The application above (a test's server or client) gives nghttp3's own
 * callbacks in h3p_peer.cb (headers, body, end of stream, acknowledged
 * body, stream close); their conn_user_data is the h3p_conn. The ones that
 * talk to QUIC (deferred_consume, stop_sending, reset_stream) are the
 * glue's. Include after quic/nana_quic.h; link libnghttp3.
 */
#ifndef NANA_H3_PEER_H
#define NANA_H3_PEER_H

#include "quic/nana_quic.h"

#include <nghttp3/nghttp3.h>
#include <stdlib.h>
#include <string.h>

typedef struct h3p_conn h3p_conn;

/* One side's HTTP/3 application (the endpoint's user pointer). */
typedef struct h3p_peer {
    nghttp3_callbacks cb; /* the application's nghttp3 callbacks */
    int server;
    int auto_consume; /* body bytes are consumed as they arrive */
    void *app;        /* the application's */
    /* Optional: the HTTP/3 connection exists (control streams bound). */
    void (*on_open)(h3p_conn *hc);
    /* Optional: the peer's RESET_STREAM / STOP_SENDING on |sid|. */
    void (*on_stream_reset)(h3p_conn *hc, int64_t sid, uint64_t code);
    void (*on_stop_sending)(h3p_conn *hc, int64_t sid, uint64_t code);
    h3p_conn *last; /* the newest connection */
    int opens, closes;
} h3p_peer;

/* One connection: its QUIC and HTTP/3 halves. */
struct h3p_conn {
    h3p_peer *peer;
    nana_quic_conn *qc;
    nghttp3_conn *h3;
    int failed; /* an nghttp3 call failed: the connection is closed */
};

static inline h3p_conn *h3p_of(nana_quic_conn *qc)
{
    return nana_quic_conn_get_data(qc);
}

/* Closes the connection after an nghttp3 error |rv|. Returns -1. */
static inline int h3p_fail(h3p_conn *hc, int rv)
{
    hc->failed = 1;
    nana_quic_conn_close(hc->qc, nghttp3_err_infer_quic_app_error_code(rv), "h3 error");
    return -1;
}

/* The application consumed |n| body bytes of |sid|: the windows open. */
static inline int h3p_consume(h3p_conn *hc, int64_t sid, uint64_t n)
{
    return nana_quic_stream_consumed(hc->qc, sid, n);
}

/* Cancels request |sid| both ways with |code| (RESET_STREAM and
 * STOP_SENDING, and nghttp3 stops reading and writing it). */
static inline int h3p_cancel(h3p_conn *hc, int64_t sid, uint64_t code)
{
    nghttp3_conn_shutdown_stream_write(hc->h3, sid);
    int rv = nghttp3_conn_shutdown_stream_read(hc->h3, sid);
    if (rv) return h3p_fail(hc, rv);
    if (nana_quic_stream_shutdown_write(hc->qc, sid, code)) return -1;
    return nana_quic_stream_shutdown_read(hc->qc, sid, code);
}

/* ---- nghttp3 asks for QUIC things ------------------------------------- */

static inline int h3p_deferred_consume(nghttp3_conn *h3, int64_t sid, size_t n, void *cu, void *su)
{
    (void)h3;
    (void)su;
    return h3p_consume(cu, sid, n) ? NGHTTP3_ERR_CALLBACK_FAILURE : 0;
}

static inline int h3p_recv_data(nghttp3_conn *h3, int64_t sid, const uint8_t *data, size_t len,
                                void *cu, void *su)
{
    h3p_conn *hc = cu;
    if (hc->peer->cb.recv_data && hc->peer->cb.recv_data(h3, sid, data, len, cu, su))
        return NGHTTP3_ERR_CALLBACK_FAILURE;
    if (hc->peer->auto_consume && h3p_consume(hc, sid, len)) return NGHTTP3_ERR_CALLBACK_FAILURE;
    return 0;
}

/* nghttp3 wants STOP_SENDING (say, on a one-way stream of a type it does
 * not know) or RESET_STREAM sent; a stream already gone needs neither. */
static inline int h3p_stop_sending(nghttp3_conn *h3, int64_t sid, uint64_t code, void *cu, void *su)
{
    (void)h3;
    (void)su;
    int rc = nana_quic_stream_shutdown_read(((h3p_conn *)cu)->qc, sid, code);
    return rc && rc != NANA_ERR_NOTFOUND ? NGHTTP3_ERR_CALLBACK_FAILURE : 0;
}

static inline int h3p_reset_stream(nghttp3_conn *h3, int64_t sid, uint64_t code, void *cu, void *su)
{
    (void)h3;
    (void)su;
    int rc = nana_quic_stream_shutdown_write(((h3p_conn *)cu)->qc, sid, code);
    return rc && rc != NANA_ERR_NOTFOUND ? NGHTTP3_ERR_CALLBACK_FAILURE : 0;
}

/* ---- the transport's source: nghttp3's output ------------------------- */

static inline long h3p_pull(nana_quic_conn *qc, int64_t *sid, int *fin, nana_quic_vec *v,
                            size_t max)
{
    h3p_conn *hc = h3p_of(qc);
    nghttp3_ssize n = nghttp3_conn_writev_stream(hc->h3, sid, fin, (nghttp3_vec *)(void *)v, max);
    return n < 0 ? h3p_fail(hc, (int)n) : (long)n;
}

static inline int h3p_sent(nana_quic_conn *qc, int64_t sid, size_t n)
{
    h3p_conn *hc = h3p_of(qc);
    int rv = nghttp3_conn_add_write_offset(hc->h3, sid, n);
    return rv ? h3p_fail(hc, rv) : 0;
}

static inline int h3p_acked(nana_quic_conn *qc, int64_t sid, uint64_t off, uint64_t n)
{
    (void)off;
    h3p_conn *hc = h3p_of(qc);
    int rv = nghttp3_conn_add_ack_offset(hc->h3, sid, n);
    return rv ? h3p_fail(hc, rv) : 0;
}

static inline void h3p_blocked(nana_quic_conn *qc, int64_t sid)
{
    nghttp3_conn_block_stream(h3p_of(qc)->h3, sid);
}

static inline int h3p_unblocked(nana_quic_conn *qc, int64_t sid)
{
    h3p_conn *hc = h3p_of(qc);
    int rv = nghttp3_conn_unblock_stream(hc->h3, sid);
    return rv ? h3p_fail(hc, rv) : 0;
}

static inline void h3p_write_shut(nana_quic_conn *qc, int64_t sid)
{
    nghttp3_conn_shutdown_stream_write(h3p_of(qc)->h3, sid);
}

static const nana_quic_source h3p_source = {
    .pull = h3p_pull,
    .sent = h3p_sent,
    .acked = h3p_acked,
    .blocked = h3p_blocked,
    .unblocked = h3p_unblocked,
    .write_shut = h3p_write_shut,
};

/* ---- the transport's callbacks ----------------------------------------- */

/* Opens our three one-way streams and binds them (control, QPACK). */
static inline int h3p_bind(h3p_conn *hc)
{
    int64_t ctrl, enc, dec;
    if (nana_quic_stream_open_uni(hc->qc, &ctrl) || nana_quic_stream_open_uni(hc->qc, &enc) ||
        nana_quic_stream_open_uni(hc->qc, &dec))
        return -1;
    if (nghttp3_conn_bind_control_stream(hc->h3, ctrl) ||
        nghttp3_conn_bind_qpack_streams(hc->h3, enc, dec))
        return -1;
    return 0;
}

static inline int h3p_conn_open(nana_quic_conn *qc, void *user)
{
    h3p_peer *p = user;
    h3p_conn *hc = calloc(1, sizeof(*hc));
    if (!hc) return -1;
    hc->peer = p;
    hc->qc = qc;
    nana_quic_conn_set_data(qc, hc);
    nana_quic_conn_set_credit_by_app(qc);
    nana_quic_conn_set_source(qc, &h3p_source);
    nghttp3_callbacks cb = p->cb;
    cb.recv_data = h3p_recv_data;
    cb.deferred_consume = h3p_deferred_consume;
    cb.stop_sending = h3p_stop_sending;
    cb.reset_stream = h3p_reset_stream;
    nghttp3_settings st;
    nghttp3_settings_default(&st);
    int rv = p->server ? nghttp3_conn_server_new(&hc->h3, &cb, &st, NULL, hc)
                       : nghttp3_conn_client_new(&hc->h3, &cb, &st, NULL, hc);
    if (rv) return -1; /* conn_close frees hc */
    /* The transport enforces the stream limit; nghttp3 only checks the
     * stream IDs of PRIORITY_UPDATE and GOAWAY against this. */
    if (p->server) nghttp3_conn_set_max_client_streams_bidi(hc->h3, (uint64_t)1 << 60);
    if (h3p_bind(hc)) return -1;
    p->last = hc;
    p->opens++;
    if (p->on_open) p->on_open(hc);
    return 0;
}

static inline void h3p_conn_close(nana_quic_conn *qc, void *user)
{
    h3p_peer *p = user;
    h3p_conn *hc = h3p_of(qc);
    if (!hc) return;
    if (p->last == hc) p->last = NULL;
    p->closes++;
    nghttp3_conn_del(hc->h3);
    free(hc);
    nana_quic_conn_set_data(qc, NULL);
}

/* Stream bytes go to nghttp3; what it consumed of them (framing, headers,
 * control streams) is credited at once, body bytes when consumed. */
static inline int h3p_stream_data(nana_quic_conn *qc, int64_t sid, const uint8_t *data, size_t len,
                                  int fin, int early, void *user)
{
    (void)early;
    (void)user;
    h3p_conn *hc = h3p_of(qc);
    if (!hc || hc->failed) return 0;
    nghttp3_ssize n = nghttp3_conn_read_stream(hc->h3, sid, data, len, fin);
    if (n < 0) return h3p_fail(hc, (int)n);
    return h3p_consume(hc, sid, (uint64_t)n) ? -1 : 0;
}

static inline void h3p_stream_close(nana_quic_conn *qc, int64_t sid, uint64_t code, void *user)
{
    (void)user;
    h3p_conn *hc = h3p_of(qc);
    if (!hc || hc->failed) return;
    int rv = nghttp3_conn_close_stream(hc->h3, sid, code ? code : NGHTTP3_H3_NO_ERROR);
    if (rv && rv != NGHTTP3_ERR_STREAM_NOT_FOUND) (void)h3p_fail(hc, rv);
}

static inline int h3p_stream_reset(nana_quic_conn *qc, int64_t sid, uint64_t code, void *user)
{
    h3p_peer *p = user;
    h3p_conn *hc = h3p_of(qc);
    if (!hc || hc->failed) return 0;
    int rv = nghttp3_conn_shutdown_stream_read(hc->h3, sid);
    if (rv) return h3p_fail(hc, rv);
    if (p->on_stream_reset) p->on_stream_reset(hc, sid, code);
    return 0;
}

static inline int h3p_quic_stop_sending(nana_quic_conn *qc, int64_t sid, uint64_t code, void *user)
{
    h3p_peer *p = user;
    h3p_conn *hc = h3p_of(qc);
    if (!hc || hc->failed) return 0;
    nghttp3_conn_shutdown_stream_write(hc->h3, sid); /* produce nothing more for it */
    if (p->on_stop_sending) p->on_stop_sending(hc, sid, code);
    return 0;
}

/* The transport callbacks of an HTTP/3 endpoint (its user: an h3p_peer). */
static const nana_quic_callbacks h3p_quic_callbacks = {
    .conn_open = h3p_conn_open,
    .conn_close = h3p_conn_close,
    .stream_data = h3p_stream_data,
    .stream_close = h3p_stream_close,
    .stream_reset = h3p_stream_reset,
    .stop_sending = h3p_quic_stop_sending,
};

/* Makes |nv| a header field from two C strings. */
static inline nghttp3_nv h3p_nv(const char *name, const char *value)
{
    nghttp3_nv nv = {(uint8_t *)(uintptr_t)name, (uint8_t *)(uintptr_t)value, strlen(name),
                     strlen(value), NGHTTP3_NV_FLAG_NONE};
    return nv;
}

#endif
