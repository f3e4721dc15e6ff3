/*
 * h2.c - the client's gRPC over HTTP/2 on TLS over TCP: the transport a
 * client falls back to when QUIC does not get through (UDP dropped), or
 * the one it is told to use.
 *
 * Big idea: a call over HTTP/2 is the same gRPC request as over HTTP/3
 * (grpc.c builds and parses it, client.c decides what goes when); this
 * file only carries it. One nch2_conn is one TCP connection of src/tcp
 * (TLS, ALPN "h2") on the runtime's loop, the QUIC endpoint's I/O thread,
 * with an nghttp2 client session on it: bytes in go to
 * nghttp2_session_mem_recv, frames out come from nghttp2_session_mem_send
 * and are copied into the TCP connection's send buffer while it has room
 * (the rest waits for the writable callback). Response bytes are given
 * back to the server as window only as client.c takes them (an AQL
 * stream's iterator paces its stream), as over HTTP/3.
 *
 * nghttp2 runs only between run_begin and run_end: they enter the client
 * (nc_h2_enter: its lock, and a list for the calls that finish), so
 * every nghttp2 callback that reaches client.c (nc_g_*) does so with the
 * lock held; a connection whose client let go (nch2_detach) runs with no
 * client and its callbacks reach nobody.
 *
 * A request body belongs to its stream (freed when nghttp2 closes it, or
 * with the connection), not to its call, as on HTTP/3. A connection
 * without input for a third of its idle time sends a PING; without input
 * for all of it, it closes.
 */
#include "client_int.h"

#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define H2_STREAM_WINDOW (1u << 20) /* each response's window */
#define H2_CONN_WINDOW   (16u << 20)
#define H2_MAX_HEADERS   65536u /* SETTINGS_MAX_HEADER_LIST_SIZE */
#define H2_MAX_NV        16     /* request header fields */

/* A request body nghttp2 copies out as flow control allows. */
typedef struct h2body {
    struct h2body *prev, *next;
    nana_buf b;
    size_t off;
} h2body;

struct nch2_conn {
    nc_rt *rt;
    nana_client *client; /* NULL once the client let go */
    nana_client *cur;    /* the client while entered (run_begin .. run_end), else NULL */
    nana_quic_handle handle;
    nana_tcp_conn *tc;
    nghttp2_session *ng;
    h2body bodies; /* sentinel */
    unsigned idle_ms;
    uint64_t last_in; /* the loop's clock when bytes last came in */
    bool closing;     /* closed (by us or an error): nothing more goes out */
    bool goaway;      /* the server sent GOAWAY: no new streams */
    char why[192];    /* why we closed it, for the client's message */
};

/* ---- running nghttp2 ----------------------------------------------------------- */

static void h2_close(nch2_conn *h, const char *why)
{
    if (!h->closing && why && !h->why[0]) snprintf(h->why, sizeof(h->why), "%s", why);
    h->closing = true;
    nana_tcp_conn_close(h->tc, 1);
}

/* Frames out into the TCP send buffer while it has room. */
static void pump(nch2_conn *h)
{
    if (!h->ng || h->closing) return;
    while (nana_tcp_send_room(h->tc) > 0) {
        const uint8_t *p;
        ssize_t n = nghttp2_session_mem_send(h->ng, &p);
        if (n < 0) {
            char why[96];
            snprintf(why, sizeof(why), "HTTP/2: %s", nghttp2_strerror((int)n));
            h2_close(h, why);
            return;
        }
        if (n == 0) break;
        if (nana_tcp_send(h->tc, p, (size_t)n)) {
            h2_close(h, "cannot queue bytes on the TCP connection");
            return;
        }
    }
    if (!nghttp2_session_want_read(h->ng) && !nghttp2_session_want_write(h->ng))
        h2_close(h, "the server ended the HTTP/2 session");
}

/* Enters the client (if any) before nghttp2 runs. */
static void run_begin(nch2_conn *h)
{
    h->cur = h->client ? nc_h2_enter(h->client, h) : NULL;
}

/* Sends the client's queued calls, writes, and leaves the client. */
static void run_end(nch2_conn *h)
{
    if (h->cur && !h->closing) nc_h2_flush(h->cur);
    pump(h);
    nana_client *c = h->cur;
    h->cur = NULL;
    if (c) nc_h2_leave(c);
}

/* ---- nghttp2's callbacks (inside run_begin .. run_end) -------------------------- */

static int on_header(nghttp2_session *ng, const nghttp2_frame *frame, const uint8_t *name,
                     size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags, void *user)
{
    (void)ng;
    (void)flags;
    nch2_conn *h = user;
    if (h->cur && frame->hd.type == NGHTTP2_HEADERS)
        nc_g_field(h->cur, frame->hd.stream_id, name, nlen, value, vlen);
    return 0;
}

/* Body bytes: credited as client.c takes them (all of them with no client). */
static int on_data(nghttp2_session *ng, uint8_t flags, int32_t sid, const uint8_t *data, size_t len,
                   void *user)
{
    (void)flags;
    nch2_conn *h = user;
    uint64_t credit = h->cur ? nc_g_data(h->cur, sid, data, len) : len;
    if (credit) (void)nghttp2_session_consume(ng, sid, (size_t)credit);
    return 0;
}

static int on_frame(nghttp2_session *ng, const nghttp2_frame *frame, void *user)
{
    (void)ng;
    nch2_conn *h = user;
    if (frame->hd.type == NGHTTP2_GOAWAY) h->goaway = true;
    bool end = (frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
               (frame->hd.flags & NGHTTP2_FLAG_END_STREAM);
    if (end && h->cur) nc_g_end(h->cur, frame->hd.stream_id);
    return 0;
}

static void body_free(h2body *b)
{
    b->prev->next = b->next;
    b->next->prev = b->prev;
    nana_buf_free(&b->b);
    free(b);
}

/* The stream is gone: its body is freed; a call without a response ends. */
static int on_stream_close(nghttp2_session *ng, int32_t sid, uint32_t code, void *user)
{
    (void)code;
    nch2_conn *h = user;
    h2body *b = nghttp2_session_get_stream_user_data(ng, sid);
    if (b) body_free(b);
    if (h->cur) nc_g_closed(h->cur, sid);
    return 0;
}

/* nghttp2 copies a request body out of its h2body as the window allows. */
static ssize_t read_body(nghttp2_session *ng, int32_t sid, uint8_t *buf, size_t len,
                         uint32_t *flags, nghttp2_data_source *src, void *user)
{
    (void)ng;
    (void)sid;
    (void)user;
    h2body *b = src->ptr;
    size_t n = b->b.len - b->off;
    if (n > len) n = len;
    if (n) memcpy(buf, (const uint8_t *)b->b.data + b->off, n);
    b->off += n;
    if (b->off == b->b.len) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

/* A client session with our settings and window; 0 or an nghttp2 error. */
static int session_new(nch2_conn *h)
{
    nghttp2_session_callbacks *cb = NULL;
    nghttp2_option *opt = NULL;
    int rv = nghttp2_session_callbacks_new(&cb);
    if (!rv) rv = nghttp2_option_new(&opt);
    if (!rv) {
        nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
        nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame);
        nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
        /* Response bytes are given back as window as client.c takes them. */
        nghttp2_option_set_no_auto_window_update(opt, 1);
        rv = nghttp2_session_client_new2(&h->ng, cb, h, opt);
    }
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cb);
    if (rv) return rv;
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2_STREAM_WINDOW},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, H2_MAX_HEADERS},
    };
    rv = nghttp2_submit_settings(h->ng, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0]));
    if (!rv)
        rv = nghttp2_session_set_local_window_size(h->ng, NGHTTP2_FLAG_NONE, 0, H2_CONN_WINDOW);
    return rv;
}

/* ---- the TCP connection's callbacks ---------------------------------------------- */

static void arm_timer(nch2_conn *h)
{
    if (h->idle_ms)
        nana_tcp_conn_set_timer(h->tc, nana_tcp_conn_now(h->tc) +
                                           (uint64_t)(h->idle_ms / 3 + 1) * 1000000ull);
}

/* TLS is up: HTTP/2 starts and the client logs in. */
static int tcp_open(nana_tcp_conn *tc, void *user)
{
    nch2_conn *h = user;
    h->tc = tc;
    nana_tcp_conn_set_user(tc, h);
    if (strcmp(nana_tcp_conn_alpn(tc), "h2") != 0) {
        h2_close(h, "the server did not agree to HTTP/2 (ALPN h2)");
        return 0;
    }
    int rv = session_new(h);
    if (rv) {
        char why[96];
        snprintf(why, sizeof(why), "cannot start HTTP/2: %s", nghttp2_strerror(rv));
        h2_close(h, why);
        return 0;
    }
    h->last_in = nana_tcp_conn_now(tc);
    arm_timer(h);
    run_begin(h);
    if (h->cur)
        nc_h2_opened(h->cur);
    else
        h2_close(h, NULL);
    run_end(h);
    return 0;
}

static int tcp_recv(nana_tcp_conn *tc, void *user, const uint8_t *p, size_t n)
{
    nch2_conn *h = user;
    if (!h->ng || h->closing) return 0;
    h->last_in = nana_tcp_conn_now(tc);
    run_begin(h);
    ssize_t rv = nghttp2_session_mem_recv(h->ng, p, n);
    if (rv < 0) {
        char why[96];
        snprintf(why, sizeof(why), "the server's HTTP/2 is broken: %s", nghttp2_strerror((int)rv));
        h2_close(h, why);
    }
    run_end(h);
    return 0;
}

static void tcp_writable(nana_tcp_conn *tc, void *user)
{
    (void)tc;
    nch2_conn *h = user;
    run_begin(h);
    run_end(h);
}

/* Keep-alive: a PING after a third of the idle time without input; closed
 * after all of it. */
static void tcp_timer(nana_tcp_conn *tc, void *user)
{
    nch2_conn *h = user;
    if (!h->ng || h->closing) return;
    uint64_t quiet = nana_tcp_conn_now(tc) - h->last_in;
    if (quiet >= (uint64_t)h->idle_ms * 1000000ull) {
        char why[96];
        snprintf(why, sizeof(why), "no bytes from the server for %u ms", h->idle_ms);
        h2_close(h, why);
        return;
    }
    run_begin(h);
    if (quiet >= (uint64_t)(h->idle_ms / 3) * 1000000ull)
        (void)nghttp2_submit_ping(h->ng, NGHTTP2_FLAG_NONE, NULL);
    run_end(h);
    arm_timer(h);
}

/* The connection is gone (or never came to be): the client learns why;
 * everything of the connection is freed. */
static void tcp_close(nana_tcp_conn *tc, void *user)
{
    nch2_conn *h = user;
    if (!h) return;
    char why[256];
    const char *tcp_why = nana_tcp_conn_error(tc);
    snprintf(why, sizeof(why), "%s", h->why[0] ? h->why : tcp_why ? tcp_why : "");
    if (h->client) nc_h2_closed(h->client, h, why);
    nc_rt_h2_del(h->rt, h->handle);
    nghttp2_session_del(h->ng); /* no callbacks */
    for (h2body *b = h->bodies.next, *nx; b != &h->bodies; b = nx) {
        nx = b->next;
        nana_buf_free(&b->b);
        free(b);
    }
    free(h);
}

static const nana_tcp_callbacks tcp_cb = {
    .conn_open = tcp_open,
    .recv = tcp_recv,
    .writable = tcp_writable,
    .timer = tcp_timer,
    .conn_close = tcp_close,
};

/* ---- what client.c asks ---------------------------------------------------------- */

int nch2_start(nc_rt *rt, nana_client *c, nana_quic_handle h, const char *addr, uint16_t port,
               const char *server_name, unsigned timeout_ms, unsigned idle_ms, nch2_conn **out)
{
    static const char *const alpn[] = {"h2"};
    nch2_conn *hc = calloc(1, sizeof(*hc));
    if (!hc) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    hc->rt = rt;
    hc->client = c;
    hc->handle = h;
    hc->idle_ms = idle_ms;
    hc->bodies.prev = hc->bodies.next = &hc->bodies;
    nana_tcp_client_config cfg;
    nc_rt_tcp_config(rt, &cfg);
    cfg.host = addr;
    cfg.port = port;
    cfg.server_name = server_name;
    cfg.alpn = alpn;
    cfg.nalpn = 1;
    cfg.connect_timeout_ms = timeout_ms ? timeout_ms : 1;
    if (nc_rt_h2_add(rt, h, hc)) {
        free(hc);
        return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    }
    int rc = nana_tcp_connect(nc_rt_loop(rt), &cfg, &tcp_cb, hc, &hc->tc);
    if (rc) {
        nc_rt_h2_del(rt, h);
        free(hc);
        return rc;
    }
    *out = hc;
    return 0;
}

int nch2_request(nch2_conn *h, const nc_hdr *hv, size_t n, nana_buf *body, int64_t *sid)
{
    if (h->closing || h->goaway || !h->ng)
        return nana_err_set(NANA_ERR_BUSY, "the HTTP/2 connection takes no new calls");
    if (n > H2_MAX_NV) return nana_err_set(NANA_ERR_INVALID, "too many header fields");
    nghttp2_nv nv[H2_MAX_NV];
    for (size_t i = 0; i < n; i++)
        nv[i] = (nghttp2_nv){(uint8_t *)(uintptr_t)hv[i].name, (uint8_t *)(uintptr_t)hv[i].value,
                             strlen(hv[i].name), strlen(hv[i].value), NGHTTP2_NV_FLAG_NONE};
    h2body *b = calloc(1, sizeof(*b));
    if (!b) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    nghttp2_data_provider prd = {.source.ptr = b, .read_callback = read_body};
    int32_t id = nghttp2_submit_request(h->ng, NULL, nv, n, &prd, b);
    if (id < 0) {
        free(b);
        if (id == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE)
            return nana_err_set(NANA_ERR_BUSY, "the HTTP/2 connection has no stream ids left");
        return nana_err_set(id == NGHTTP2_ERR_NOMEM ? NANA_ERR_NOMEM : NANA_ERR_INTERNAL,
                            "HTTP/2: %s", nghttp2_strerror(id));
    }
    b->b = *body;
    nana_buf_init(body, 0);
    b->next = h->bodies.next;
    b->prev = &h->bodies;
    h->bodies.next->prev = b;
    h->bodies.next = b;
    *sid = id;
    return 0;
}

void nch2_cancel(nch2_conn *h, int64_t sid)
{
    if (h->ng && !h->closing)
        (void)nghttp2_submit_rst_stream(h->ng, NGHTTP2_FLAG_NONE, (int32_t)sid, NGHTTP2_CANCEL);
}

void nch2_reset(nc_rt *rt, nana_quic_handle handle, const int64_t *sids, size_t n)
{
    nch2_conn *h = nc_rt_h2_get(rt, handle);
    if (!h || !h->ng) return;
    run_begin(h);
    for (size_t i = 0; i < n; i++)
        nch2_cancel(h, sids[i]);
    run_end(h);
}

void nch2_kick(nch2_conn *h)
{
    run_begin(h);
    run_end(h);
}

int nch2_exporter(nch2_conn *h, const char *label, uint8_t *out, size_t n)
{
    return nana_tcp_conn_exporter(h->tc, label, NULL, 0, out, n);
}

void nch2_close(nch2_conn *h)
{
    h2_close(h, NULL);
}

void nch2_detach(nch2_conn *h)
{
    h->client = NULL;
    h2_close(h, NULL);
}

void nch2_credit(nc_rt *rt, nana_quic_handle handle, int64_t sid, uint64_t n)
{
    nch2_conn *h = nc_rt_h2_get(rt, handle);
    if (!h || !h->ng || h->closing) return;
    run_begin(h);
    (void)nghttp2_session_consume(h->ng, (int32_t)sid, (size_t)n);
    run_end(h);
}
