/*
 * nana_h3.h - HTTP/3 (nghttp3) on a nana_quic connection, for either side.
 *
 * Big idea: nghttp3 is a protocol core without I/O, like ngtcp2; this
 * module is the glue between it and our transport, so the gRPC door (a
 * server) and its clients and tests share one way of running HTTP/3:
 *
 *   - the connection's three one-way streams (control, QPACK encoder and
 *     decoder) are opened and bound when the connection opens;
 *   - every stream's bytes go to nghttp3 (nana_h3_stream_data); what it
 *     consumed itself (framing, headers, control streams) is credited to
 *     the peer at once, body bytes only when the application says
 *     (nana_h3_consume), unless it asked for auto_consume: a slow reader's
 *     peer waits on flow control instead of filling our memory;
 *   - nghttp3's output is the transport's source (pull-style): its vectors
 *     stay valid until acknowledged, so nothing is copied;
 *   - the peer's RESET_STREAM and STOP_SENDING reach nghttp3 and then the
 *     application; nghttp3's own requests to send them reach the transport.
 *
 * The application gives nghttp3's callbacks (headers, body, end of stream,
 * acknowledged body, stream close) in nana_h3_app.cb; their conn_user_data
 * is the nana_h3_conn (nana_h3_user gives the application's pointer). The
 * callbacks that talk to the transport (recv_data's consumption,
 * deferred_consume, stop_sending, reset_stream) are this module's; an
 * application recv_data is called first.
 *
 * A connection running HTTP/3 has its nana_quic_conn data set to its
 * nana_h3_conn. Everything runs on the connection's I/O thread.
 */
#ifndef NANA_H3_H
#define NANA_H3_H

#include "quic/nana_quic.h"

#include <nghttp3/nghttp3.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct nana_h3_conn nana_h3_conn;

/* The QPACK dynamic table a peer's encoder may use by default, and the
 * streams that may wait for its entries. */
#define NANA_H3_QPACK_TABLE   4096
#define NANA_H3_QPACK_BLOCKED 16

/* The application above HTTP/3 (kept by pointer: it must outlive its
 * connections). */
typedef struct nana_h3_app {
    nghttp3_callbacks cb; /* the application's nghttp3 callbacks */
    bool server;
    bool auto_consume; /* body bytes are consumed as they arrive */
    /* nghttp3's settings (NULL: nghttp3_settings_default, and a QPACK
     * dynamic table of NANA_H3_QPACK_TABLE bytes with up to
     * NANA_H3_QPACK_BLOCKED streams waiting for it, for the peer's encoder:
     * the fields every call repeats then cost an index) */
    const nghttp3_settings *settings;
    /* Server: the highest client stream ID nghttp3 accepts in GOAWAY and
     * PRIORITY_UPDATE (0: any; the transport enforces the stream limit). */
    uint64_t max_client_streams_bidi;
    /* Optional: the peer reset its side of request stream |sid|, or asked
     * us to stop sending on it; nghttp3 has been told. */
    void (*on_stream_reset)(nana_h3_conn *hc, int64_t sid, uint64_t code);
    void (*on_stop_sending)(nana_h3_conn *hc, int64_t sid, uint64_t code);
} nana_h3_app;

/*
 * Makes |qc| an HTTP/3 connection for |app| (call in conn_open): sets its
 * data to the new nana_h3_conn, makes flow-control credit the
 * application's, makes nghttp3 its source and opens and binds our one-way
 * streams. |user| is the application's, for nana_h3_user. 0 and *out, or
 * an error (then close the connection; nana_h3_close frees what was
 * made).
 */
int nana_h3_open(nana_quic_conn *qc, const nana_h3_app *app, void *user, nana_h3_conn **out);

/* Frees |qc|'s HTTP/3 state (call in conn_close). NULL-safe. */
void nana_h3_close(nana_quic_conn *qc);

/* The HTTP/3 state of |qc| (NULL when none). */
nana_h3_conn *nana_h3_of(nana_quic_conn *qc);

void *nana_h3_user(const nana_h3_conn *hc);
nghttp3_conn *nana_h3_nghttp3(const nana_h3_conn *hc);
nana_quic_conn *nana_h3_quic(const nana_h3_conn *hc);

/* True once an nghttp3 call failed and the connection is being closed. */
bool nana_h3_failed(const nana_h3_conn *hc);

/* The application consumed |n| body bytes of |sid|: the windows open. */
int nana_h3_consume(nana_h3_conn *hc, int64_t sid, uint64_t n);

/*
 * Cancels request stream |sid| both ways with |code| (RESET_STREAM and
 * STOP_SENDING; nghttp3 stops reading and writing it).
 */
int nana_h3_cancel(nana_h3_conn *hc, int64_t sid, uint64_t code);

/*
 * Closes the connection after nghttp3 error |rv| (with the HTTP/3 error
 * code nghttp3 infers from it). Returns -1, for callbacks to return.
 */
int nana_h3_fail(nana_h3_conn *hc, int rv);

/*
 * Fills the stream callbacks of |cb| (stream_data, stream_close,
 * stream_reset, stop_sending) with this module's; conn_open and
 * conn_close stay the caller's (they call nana_h3_open and nana_h3_close).
 */
void nana_h3_quic_callbacks(nana_quic_callbacks *cb);

/* A header field from two C strings (kept by pointer). */
nghttp3_nv nana_h3_nv(const char *name, const char *value);

#endif
