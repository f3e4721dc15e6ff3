/*
 * h3.c - the glue between nghttp3 and a nana_quic connection (see
 * nana_h3.h for the big idea).
 */
#include "h3/nana_h3.h"

#include "util/nana_tcache.h"

#include "util/nana_err.h"
#include "util/nana_mem.h"

#include <string.h>

struct nana_h3_conn {
    const nana_h3_app *app;
    void *user;
    nana_quic_conn *qc;
    nghttp3_conn *h3;
    bool failed; /* an nghttp3 call failed: the connection is closing */
};

nana_h3_conn *nana_h3_of(nana_quic_conn *qc)
{
    return nana_quic_conn_get_data(qc);
}

void *nana_h3_user(const nana_h3_conn *hc)
{
    return hc->user;
}

nghttp3_conn *nana_h3_nghttp3(const nana_h3_conn *hc)
{
    return hc->h3;
}

nana_quic_conn *nana_h3_quic(const nana_h3_conn *hc)
{
    return hc->qc;
}

bool nana_h3_failed(const nana_h3_conn *hc)
{
    return hc->failed;
}

int nana_h3_fail(nana_h3_conn *hc, int rv)
{
    if (!hc->failed) {
        hc->failed = true;
        nana_quic_conn_close(hc->qc, nghttp3_err_infer_quic_app_error_code(rv),
                             nghttp3_strerror(rv));
    }
    return -1;
}

int nana_h3_consume(nana_h3_conn *hc, int64_t sid, uint64_t n)
{
    return n ? nana_quic_stream_consumed(hc->qc, sid, n) : NANA_OK;
}

int nana_h3_cancel(nana_h3_conn *hc, int64_t sid, uint64_t code)
{
    nghttp3_conn_shutdown_stream_write(hc->h3, sid);
    int rv = nghttp3_conn_shutdown_stream_read(hc->h3, sid);
    if (rv) return nana_h3_fail(hc, rv);
    int rc = nana_quic_stream_shutdown_write(hc->qc, sid, code);
    if (rc && rc != NANA_ERR_NOTFOUND) return rc;
    rc = nana_quic_stream_shutdown_read(hc->qc, sid, code);
    return rc == NANA_ERR_NOTFOUND ? NANA_OK : rc;
}

nghttp3_nv nana_h3_nv(const char *name, const char *value)
{
    nghttp3_nv nv = {(uint8_t *)(uintptr_t)name, (uint8_t *)(uintptr_t)value, strlen(name),
                     strlen(value), NGHTTP3_NV_FLAG_NONE};
    return nv;
}

/* ---- nghttp3 asks for transport things ---------------------------------- */

/* Bytes nghttp3 consumed later than read_stream returned (a blocked
 * QPACK stream it decoded meanwhile). */
static int on_deferred_consume(nghttp3_conn *h3, int64_t sid, size_t n, void *cu, void *su)
{
    (void)h3;
    (void)su;
    return nana_h3_consume(cu, sid, n) ? NGHTTP3_ERR_CALLBACK_FAILURE : 0;
}

/* Body bytes: the application's callback first, then the credit if the
 * application does not consume them itself. */
static int on_recv_data(nghttp3_conn *h3, int64_t sid, const uint8_t *data, size_t len, void *cu,
                        void *su)
{
    nana_h3_conn *hc = cu;
    if (hc->app->cb.recv_data && hc->app->cb.recv_data(h3, sid, data, len, cu, su))
        return NGHTTP3_ERR_CALLBACK_FAILURE;
    if (hc->app->auto_consume && nana_h3_consume(hc, sid, len)) return NGHTTP3_ERR_CALLBACK_FAILURE;
    return 0;
}

/* nghttp3 wants STOP_SENDING sent (a one-way stream of a type it does not
 * know, say); a stream already gone needs none. */
static int on_stop_sending(nghttp3_conn *h3, int64_t sid, uint64_t code, void *cu, void *su)
{
    (void)h3;
    (void)su;
    int rc = nana_quic_stream_shutdown_read(((nana_h3_conn *)cu)->qc, sid, code);
    return rc && rc != NANA_ERR_NOTFOUND ? NGHTTP3_ERR_CALLBACK_FAILURE : 0;
}

/* nghttp3 wants RESET_STREAM sent. */
static int on_reset_stream(nghttp3_conn *h3, int64_t sid, uint64_t code, void *cu, void *su)
{
    (void)h3;
    (void)su;
    int rc = nana_quic_stream_shutdown_write(((nana_h3_conn *)cu)->qc, sid, code);
    return rc && rc != NANA_ERR_NOTFOUND ? NGHTTP3_ERR_CALLBACK_FAILURE : 0;
}

/* ---- the transport's source: nghttp3's output ---------------------------- */

static long src_pull(nana_quic_conn *qc, int64_t *sid, int *fin, nana_quic_vec *v, size_t max)
{
    nana_h3_conn *hc = nana_h3_of(qc);
    if (!hc || hc->failed) { /* (closed, or failing: nothing more to send) */
        *sid = -1;
        return 0;
    }
    /* nana_quic_vec has nghttp3_vec's layout (checked below). */
    nghttp3_ssize n = nghttp3_conn_writev_stream(hc->h3, sid, fin, (nghttp3_vec *)(void *)v, max);
    return n < 0 ? nana_h3_fail(hc, (int)n) : (long)n;
}

static int src_sent(nana_quic_conn *qc, int64_t sid, size_t n)
{
    nana_h3_conn *hc = nana_h3_of(qc);
    if (!hc) return 0;
    int rv = nghttp3_conn_add_write_offset(hc->h3, sid, n);
    return rv ? nana_h3_fail(hc, rv) : 0;
}

static int src_acked(nana_quic_conn *qc, int64_t sid, uint64_t off, uint64_t n)
{
    (void)off;
    nana_h3_conn *hc = nana_h3_of(qc);
    if (!hc) return 0;
    int rv = nghttp3_conn_add_ack_offset(hc->h3, sid, n);
    return rv ? nana_h3_fail(hc, rv) : 0;
}

static void src_blocked(nana_quic_conn *qc, int64_t sid)
{
    nana_h3_conn *hc = nana_h3_of(qc);
    if (hc) nghttp3_conn_block_stream(hc->h3, sid);
}

static int src_unblocked(nana_quic_conn *qc, int64_t sid)
{
    nana_h3_conn *hc = nana_h3_of(qc);
    if (!hc) return 0;
    int rv = nghttp3_conn_unblock_stream(hc->h3, sid);
    return rv ? nana_h3_fail(hc, rv) : 0;
}

static void src_write_shut(nana_quic_conn *qc, int64_t sid)
{
    nghttp3_conn_shutdown_stream_write(nana_h3_of(qc)->h3, sid);
}

static const nana_quic_source h3_source = {
    .pull = src_pull,
    .sent = src_sent,
    .acked = src_acked,
    .blocked = src_blocked,
    .unblocked = src_unblocked,
    .write_shut = src_write_shut,
};

_Static_assert(sizeof(nana_quic_vec) == sizeof(nghttp3_vec) &&
                   offsetof(nana_quic_vec, base) == offsetof(nghttp3_vec, base) &&
                   offsetof(nana_quic_vec, len) == offsetof(nghttp3_vec, len),
               "nana_quic_vec must have nghttp3_vec's layout");

/* ---- opening and closing -------------------------------------------------- */

/* ---- nghttp3's memory: each request stream's state comes and goes with
 * the call, so it is served from the thread's cache of freed blocks
 * (nana_tcache) rather than malloc. ------------------------------------- */

static void *mem_malloc(size_t size, void *user)
{
    (void)user;
    return nana_tcache_alloc(size);
}

static void mem_free(void *p, void *user)
{
    (void)user;
    nana_tcache_free(p);
}

static void *mem_calloc(size_t n, size_t size, void *user)
{
    (void)user;
    return nana_tcache_calloc(n, size);
}

static void *mem_realloc(void *p, size_t size, void *user)
{
    (void)user;
    return nana_tcache_realloc(p, size);
}

static const nghttp3_mem h3_mem = {NULL, mem_malloc, mem_free, mem_calloc, mem_realloc};

/* Opens our three one-way streams and binds them (control, QPACK). */
static int bind_streams(nana_h3_conn *hc)
{
    int64_t ctrl, enc, dec;
    int rc = nana_quic_stream_open_uni(hc->qc, &ctrl);
    if (!rc) rc = nana_quic_stream_open_uni(hc->qc, &enc);
    if (!rc) rc = nana_quic_stream_open_uni(hc->qc, &dec);
    if (rc) return rc;
    if (nghttp3_conn_bind_control_stream(hc->h3, ctrl) ||
        nghttp3_conn_bind_qpack_streams(hc->h3, enc, dec))
        return nana_err_set(NANA_ERR_INTERNAL, "HTTP/3: binding the control streams failed");
    return NANA_OK;
}

int nana_h3_open(nana_quic_conn *qc, const nana_h3_app *app, void *user, nana_h3_conn **out)
{
    *out = NULL;
    nana_h3_conn *hc = nana_calloc(1, sizeof(*hc));
    if (!hc) return nana_err_set(NANA_ERR_NOMEM, "out of memory for an HTTP/3 connection");
    hc->app = app;
    hc->user = user;
    hc->qc = qc;
    nana_quic_conn_set_data(qc, hc);
    nana_quic_conn_set_credit_by_app(qc);
    nana_quic_conn_set_source(qc, &h3_source);
    nghttp3_callbacks cb = app->cb;
    cb.recv_data = on_recv_data;
    cb.deferred_consume = on_deferred_consume;
    cb.stop_sending = on_stop_sending;
    cb.reset_stream = on_reset_stream;
    nghttp3_settings st;
    if (app->settings) {
        st = *app->settings;
    } else {
        nghttp3_settings_default(&st);
        st.qpack_max_dtable_capacity = NANA_H3_QPACK_TABLE;
        st.qpack_blocked_streams = NANA_H3_QPACK_BLOCKED;
    }
    int rv = app->server ? nghttp3_conn_server_new(&hc->h3, &cb, &st, &h3_mem, hc)
                         : nghttp3_conn_client_new(&hc->h3, &cb, &st, &h3_mem, hc);
    if (rv) {
        hc->h3 = NULL;
        return nana_err_set(rv == NGHTTP3_ERR_NOMEM ? NANA_ERR_NOMEM : NANA_ERR_INTERNAL,
                            "HTTP/3 connection: %s", nghttp3_strerror(rv));
    }
    if (app->server)
        nghttp3_conn_set_max_client_streams_bidi(hc->h3, app->max_client_streams_bidi
                                                             ? app->max_client_streams_bidi
                                                             : (uint64_t)1 << 60);
    int rc = bind_streams(hc);
    if (rc) return rc;
    *out = hc;
    return NANA_OK;
}

void nana_h3_close(nana_quic_conn *qc)
{
    nana_h3_conn *hc = nana_h3_of(qc);
    if (!hc) return;
    nana_quic_conn_set_data(qc, NULL);
    nghttp3_conn_del(hc->h3);
    nana_free(hc);
}

/* ---- the transport's callbacks ------------------------------------------ */

/* Stream bytes go to nghttp3; what it consumed of them (framing, headers,
 * control streams) is credited at once, body bytes when consumed. */
static int q_stream_data(nana_quic_conn *qc, int64_t sid, const uint8_t *data, size_t len, int fin,
                         int early, void *user)
{
    (void)early;
    (void)user;
    nana_h3_conn *hc = nana_h3_of(qc);
    if (!hc || hc->failed) return 0;
    nghttp3_ssize n = nghttp3_conn_read_stream(hc->h3, sid, data, len, fin);
    if (n < 0) return nana_h3_fail(hc, (int)n);
    return nana_h3_consume(hc, sid, (uint64_t)n) ? -1 : 0;
}

static void q_stream_close(nana_quic_conn *qc, int64_t sid, uint64_t code, void *user)
{
    (void)user;
    nana_h3_conn *hc = nana_h3_of(qc);
    if (!hc || hc->failed) return;
    int rv = nghttp3_conn_close_stream(hc->h3, sid, code ? code : NGHTTP3_H3_NO_ERROR);
    if (rv && rv != NGHTTP3_ERR_STREAM_NOT_FOUND) (void)nana_h3_fail(hc, rv);
}

static int q_stream_reset(nana_quic_conn *qc, int64_t sid, uint64_t code, void *user)
{
    (void)user;
    nana_h3_conn *hc = nana_h3_of(qc);
    if (!hc || hc->failed) return 0;
    int rv = nghttp3_conn_shutdown_stream_read(hc->h3, sid);
    if (rv) return nana_h3_fail(hc, rv);
    if (hc->app->on_stream_reset) hc->app->on_stream_reset(hc, sid, code);
    return 0;
}

static int q_stop_sending(nana_quic_conn *qc, int64_t sid, uint64_t code, void *user)
{
    (void)user;
    nana_h3_conn *hc = nana_h3_of(qc);
    if (!hc || hc->failed) return 0;
    nghttp3_conn_shutdown_stream_write(hc->h3, sid); /* produce nothing more for it */
    if (hc->app->on_stop_sending) hc->app->on_stop_sending(hc, sid, code);
    return 0;
}

void nana_h3_quic_callbacks(nana_quic_callbacks *cb)
{
    cb->stream_data = q_stream_data;
    cb->stream_close = q_stream_close;
    cb->stream_reset = q_stream_reset;
    cb->stop_sending = q_stop_sending;
}
