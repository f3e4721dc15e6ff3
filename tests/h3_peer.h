/*
 * h3_peer.h - an HTTP/3 application for tests, either side, on the
 * server's own glue (src/h3/nana_h3.h): the transport callbacks
 * (h3p_quic_callbacks, with the h3p_peer as the endpoint's user pointer)
 * open the HTTP/3 connection when the QUIC one opens and count the
 * connections. The test's nghttp3 callbacks go in h3p_peer.cb; their
 * conn_user_data is the nana_h3_conn (h3p_from gives the h3p_conn). Include
 * after quic/nana_quic.h; link nana_h3.
 */
#ifndef NANA_H3_PEER_H
#define NANA_H3_PEER_H

#include "h3/nana_h3.h"
#include "quic/nana_quic.h"

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
    nana_h3_app h3app; /* made from the fields above at each open */
} h3p_peer;

/* One connection: its QUIC and HTTP/3 halves. */
struct h3p_conn {
    h3p_peer *peer;
    nana_quic_conn *qc;
    nghttp3_conn *h3;
    nana_h3_conn *hc;
};

/* The h3p_conn of an nghttp3 callback's conn_user_data. */
static inline h3p_conn *h3p_from(void *conn_user_data)
{
    return nana_h3_user(conn_user_data);
}

static inline h3p_conn *h3p_of(nana_quic_conn *qc)
{
    nana_h3_conn *hc = nana_h3_of(qc);
    return hc ? nana_h3_user(hc) : NULL;
}

static inline int h3p_consume(h3p_conn *hc, int64_t sid, uint64_t n)
{
    return nana_h3_consume(hc->hc, sid, n);
}

static inline int h3p_cancel(h3p_conn *hc, int64_t sid, uint64_t code)
{
    return nana_h3_cancel(hc->hc, sid, code);
}

static inline void h3p_reset_cb(nana_h3_conn *hc, int64_t sid, uint64_t code)
{
    h3p_conn *pc = nana_h3_user(hc);
    if (pc->peer->on_stream_reset) pc->peer->on_stream_reset(pc, sid, code);
}

static inline void h3p_stop_cb(nana_h3_conn *hc, int64_t sid, uint64_t code)
{
    h3p_conn *pc = nana_h3_user(hc);
    if (pc->peer->on_stop_sending) pc->peer->on_stop_sending(pc, sid, code);
}

static inline int h3p_conn_open(nana_quic_conn *qc, void *user)
{
    h3p_peer *p = user;
    h3p_conn *pc = calloc(1, sizeof(*pc));
    if (!pc) return -1;
    pc->peer = p;
    pc->qc = qc;
    p->h3app.cb = p->cb;
    p->h3app.server = p->server != 0;
    p->h3app.auto_consume = p->auto_consume != 0;
    p->h3app.on_stream_reset = h3p_reset_cb;
    p->h3app.on_stop_sending = h3p_stop_cb;
    int rc = nana_h3_open(qc, &p->h3app, pc, &pc->hc);
    if (rc) {
        if (!nana_h3_of(qc)) free(pc); /* else conn_close frees it */
        return -1;
    }
    pc->h3 = nana_h3_nghttp3(pc->hc);
    p->last = pc;
    p->opens++;
    if (p->on_open) p->on_open(pc);
    return 0;
}

static inline void h3p_conn_close(nana_quic_conn *qc, void *user)
{
    h3p_peer *p = user;
    h3p_conn *pc = h3p_of(qc);
    nana_h3_close(qc);
    if (!pc) return;
    if (p->last == pc) p->last = NULL;
    p->closes++;
    free(pc);
}

/* The transport callbacks of an HTTP/3 test endpoint (its user: an h3p_peer). */
static inline nana_quic_callbacks h3p_callbacks(void)
{
    nana_quic_callbacks cb = {.conn_open = h3p_conn_open, .conn_close = h3p_conn_close};
    nana_h3_quic_callbacks(&cb);
    return cb;
}

static inline nghttp3_nv h3p_nv(const char *name, const char *value)
{
    return nana_h3_nv(name, value);
}

#endif
