/*
 * test_quic_h3.c - HTTP/3 (Debian's nghttp3) on the QUIC transport, both
 * sides, on the virtual network of quic_vnet.h: what the gRPC door will
 * stand on. The server and the client each run nghttp3 through the glue
 * of src/h3 (through h3_peer.h): one-way control streams, credit returned only as bytes are
 * consumed, the peer's RESET_STREAM and STOP_SENDING, and pull-style
 * sending (nghttp3 hands out its bytes as the connection has room).
 *
 * The server application answers by path: "/echo" with headers, a body
 * saying how many request body bytes came, and trailers; "/big" with a
 * large body made chunk by chunk as nghttp3 asks, each chunk freed once
 * acknowledged; "/later" with a body that is not ready until a timer
 * fires; "/hold" never.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "h3_peer.h"
#include "quic/quic_int.h"
#include "quic_harness.h"
#include "quic_vnet.h"

#define MAXS      16
#define BIG_BYTES ((uint64_t)10 << 20)
#define BIG_CHUNK ((size_t)16 * 1024)
#define CLI_WIN   ((uint64_t)256 * 1024) /* the client's connection window */

/* A response body chunk the server keeps until the client acknowledged it. */
typedef struct chunk {
    struct chunk *next;
    size_t len;
    uint8_t data[];
} chunk;

typedef struct sreq { /* the server's view of a request */
    int64_t sid;
    char path[32];
    uint64_t body;
    int body_calls;
    int ended, closed;
    int resets, stops;
    uint64_t reset_code, stop_code;
    uint64_t sent;       /* response body bytes handed to nghttp3 */
    chunk *head, *tail;  /* of them, not yet acknowledged */
    uint64_t head_acked; /* bytes of head already acknowledged */
    int ready;           /* "/later": the body may go now */
} sreq;

typedef struct creq { /* the client's view of a request */
    int used;
    int64_t sid;
    char status[8];
    char grpc_status[8];
    uint64_t body, consumed;
    int mismatch;
    int ended, closed;
    int post_chunks; /* request body chunks still to send */
    int pattern;     /* the body is the test pattern: check every byte */
} creq;

typedef struct happ {
    sreq s[MAXS];
    creq c[MAXS];
    uint64_t held, max_held; /* server: response bytes kept, most at once */
    h3p_conn *srv;
} happ;

static happ A;
static h3p_peer srv_peer, cli_peer;
static uint8_t post_buf[1000];

static sreq *sreq_of(int64_t sid, int make)
{
    for (int i = 0; i < MAXS; i++)
        if (A.s[i].sid == sid && (A.s[i].path[0] || A.s[i].ended || A.s[i].resets)) return &A.s[i];
    if (!make) return NULL;
    for (int i = 0; i < MAXS; i++)
        if (!A.s[i].path[0] && !A.s[i].ended && !A.s[i].resets) {
            A.s[i].sid = sid;
            return &A.s[i];
        }
    fail_msg("too many requests");
    return NULL;
}

static creq *creq_of(int64_t sid)
{
    for (int i = 0; i < MAXS; i++)
        if (A.c[i].used && A.c[i].sid == sid) return &A.c[i];
    return NULL;
}

/* Copies a header value into |out| (NUL-terminated, cut to fit). */
static void copy_value(char *out, size_t cap, nghttp3_rcbuf *v)
{
    nghttp3_vec b = nghttp3_rcbuf_get_buf(v);
    size_t n = b.len < cap - 1 ? b.len : cap - 1;
    memcpy(out, b.base, n);
    out[n] = 0;
}

static int name_is(nghttp3_rcbuf *name, const char *want)
{
    nghttp3_vec b = nghttp3_rcbuf_get_buf(name);
    return b.len == strlen(want) && memcmp(b.base, want, b.len) == 0;
}

/* ---- the server application ------------------------------------------- */

static int s_header(nghttp3_conn *h3, int64_t sid, int32_t token, nghttp3_rcbuf *name,
                    nghttp3_rcbuf *value, uint8_t flags, void *cu, void *su)
{
    (void)h3;
    (void)token;
    (void)flags;
    (void)cu;
    (void)su;
    sreq *r = sreq_of(sid, 1);
    if (name_is(name, ":path")) copy_value(r->path, sizeof(r->path), value);
    return 0;
}

static int s_data(nghttp3_conn *h3, int64_t sid, const uint8_t *data, size_t len, void *cu,
                  void *su)
{
    (void)h3;
    (void)data;
    (void)cu;
    (void)su;
    sreq *r = sreq_of(sid, 1);
    r->body += len;
    r->body_calls++;
    return 0;
}

/* The response body of "/echo" and "/later": "got N bytes", then trailers. */
static nghttp3_ssize s_read_small(nghttp3_conn *h3, int64_t sid, nghttp3_vec *vec, size_t veccnt,
                                  uint32_t *pflags, void *cu, void *su)
{
    (void)veccnt;
    (void)cu;
    (void)su;
    sreq *r = sreq_of(sid, 0);
    assert_non_null(r);
    if (strcmp(r->path, "/later") == 0 && !r->ready) return NGHTTP3_ERR_WOULDBLOCK;
    static char text[MAXS][32];
    int i = (int)(r - A.s);
    int n = snprintf(text[i], sizeof(text[i]), "got %llu bytes", (unsigned long long)r->body);
    vec[0].base = (uint8_t *)text[i];
    vec[0].len = (size_t)n;
    *pflags = NGHTTP3_DATA_FLAG_EOF | NGHTTP3_DATA_FLAG_NO_END_STREAM;
    nghttp3_nv trailers[] = {h3p_nv("grpc-status", "0"), h3p_nv("grpc-message", "ok")};
    assert_int_equal(nghttp3_conn_submit_trailers(h3, sid, trailers, 2), 0);
    return 1;
}

/* The body of "/big": made a chunk at a time, kept until acknowledged. */
static nghttp3_ssize s_read_big(nghttp3_conn *h3, int64_t sid, nghttp3_vec *vec, size_t veccnt,
                                uint32_t *pflags, void *cu, void *su)
{
    (void)h3;
    (void)veccnt;
    (void)cu;
    (void)su;
    sreq *r = sreq_of(sid, 0);
    assert_non_null(r);
    size_t n = BIG_BYTES - r->sent < BIG_CHUNK ? (size_t)(BIG_BYTES - r->sent) : BIG_CHUNK;
    chunk *k = malloc(sizeof(*k) + n);
    assert_non_null(k);
    k->next = NULL;
    k->len = n;
    qt_fill(k->data, n, r->sent, 7);
    if (r->tail)
        r->tail->next = k;
    else
        r->head = k;
    r->tail = k;
    r->sent += n;
    A.held += n;
    if (A.held > A.max_held) A.max_held = A.held;
    vec[0].base = k->data;
    vec[0].len = n;
    if (r->sent == BIG_BYTES) *pflags = NGHTTP3_DATA_FLAG_EOF;
    return 1;
}

/* Frees the chunks of |r| the client acknowledged. */
static int s_acked(nghttp3_conn *h3, int64_t sid, uint64_t n, void *cu, void *su)
{
    (void)h3;
    (void)cu;
    (void)su;
    sreq *r = sreq_of(sid, 0);
    if (!r) return 0;
    r->head_acked += n;
    while (r->head && r->head_acked >= r->head->len) {
        chunk *k = r->head;
        r->head_acked -= k->len;
        r->head = k->next;
        if (!r->head) r->tail = NULL;
        A.held -= k->len;
        free(k);
    }
    return 0;
}

static void free_chunks(void)
{
    for (int i = 0; i < MAXS; i++) {
        while (A.s[i].head) {
            chunk *k = A.s[i].head;
            A.s[i].head = k->next;
            free(k);
        }
    }
}

/* The request is complete: answer it by its path. */
static int s_end_stream(nghttp3_conn *h3, int64_t sid, void *cu, void *su)
{
    (void)su;
    h3p_conn *hc = h3p_from(cu);
    sreq *r = sreq_of(sid, 1);
    r->ended = 1;
    if (strcmp(r->path, "/hold") == 0) return 0;
    nghttp3_nv nva[] = {h3p_nv(":status", "200"), h3p_nv("content-type", "application/grpc")};
    nghttp3_data_reader dr = {strcmp(r->path, "/big") == 0 ? s_read_big : s_read_small};
    if (strcmp(r->path, "/later") == 0)
        nana_quic_conn_set_timer(hc->qc, nana_quic_conn_now(hc->qc) + 50 * 1000000ull);
    return nghttp3_conn_submit_response(h3, sid, nva, 2, &dr) ? NGHTTP3_ERR_CALLBACK_FAILURE : 0;
}

static int s_stream_close(nghttp3_conn *h3, int64_t sid, uint64_t code, void *cu, void *su)
{
    (void)h3;
    (void)code;
    (void)cu;
    (void)su;
    sreq *r = sreq_of(sid, 0);
    if (r) r->closed = 1;
    return 0;
}

static void s_on_reset(h3p_conn *hc, int64_t sid, uint64_t code)
{
    (void)hc;
    sreq *r = sreq_of(sid, 1);
    r->resets++;
    r->reset_code = code;
}

static void s_on_stop(h3p_conn *hc, int64_t sid, uint64_t code)
{
    (void)hc;
    sreq *r = sreq_of(sid, 1);
    r->stops++;
    r->stop_code = code;
}

/* "/later": the body is ready now; the source has bytes again. */
static void s_timer(nana_quic_conn *qc, void *user)
{
    (void)user;
    h3p_conn *hc = h3p_of(qc);
    for (int i = 0; i < MAXS; i++) {
        if (strcmp(A.s[i].path, "/later") == 0 && !A.s[i].ready) {
            A.s[i].ready = 1;
            assert_int_equal(nghttp3_conn_resume_stream(hc->h3, A.s[i].sid), 0);
        }
    }
    nana_quic_conn_source_ready(qc);
}

static void s_on_open(h3p_conn *hc)
{
    A.srv = hc;
}

static void srv_h3(nana_quic_config *cfg)
{
    static const char *const alpn[] = {"h3"};
    static nana_quic_callbacks cb;
    cb = h3p_callbacks();
    cb.timer = s_timer;
    memset(&srv_peer, 0, sizeof(srv_peer));
    srv_peer.server = 1;
    srv_peer.auto_consume = 1;
    srv_peer.cb.recv_header = s_header;
    srv_peer.cb.recv_data = s_data;
    srv_peer.cb.end_stream = s_end_stream;
    srv_peer.cb.acked_stream_data = s_acked;
    srv_peer.cb.stream_close = s_stream_close;
    srv_peer.on_stream_reset = s_on_reset;
    srv_peer.on_stop_sending = s_on_stop;
    srv_peer.on_open = s_on_open;
    cfg->cb = &cb;
    cfg->user = &srv_peer;
    cfg->alpn = alpn;
    cfg->nalpn = 1;
    cfg->allow_no_alpn = 0;
}

/* ---- the client application ------------------------------------------- */

static int c_header(nghttp3_conn *h3, int64_t sid, int32_t token, nghttp3_rcbuf *name,
                    nghttp3_rcbuf *value, uint8_t flags, void *cu, void *su)
{
    (void)h3;
    (void)token;
    (void)flags;
    (void)cu;
    (void)su;
    creq *r = creq_of(sid);
    if (!r) return 0;
    if (name_is(name, ":status")) copy_value(r->status, sizeof(r->status), value);
    if (name_is(name, "grpc-status")) copy_value(r->grpc_status, sizeof(r->grpc_status), value);
    return 0;
}

/* Body bytes are checked and counted; the test consumes them when it likes. */
static int c_data(nghttp3_conn *h3, int64_t sid, const uint8_t *data, size_t len, void *cu,
                  void *su)
{
    (void)h3;
    (void)cu;
    (void)su;
    creq *r = creq_of(sid);
    if (!r) return 0;
    for (size_t i = 0; r->pattern && i < len && !r->mismatch; i++)
        if (data[i] != qt_pattern(r->body + i, 7)) r->mismatch = 1;
    r->body += len;
    return 0;
}

static int c_end_stream(nghttp3_conn *h3, int64_t sid, void *cu, void *su)
{
    (void)h3;
    (void)cu;
    (void)su;
    creq *r = creq_of(sid);
    if (r) r->ended = 1;
    return 0;
}

static int c_stream_close(nghttp3_conn *h3, int64_t sid, uint64_t code, void *cu, void *su)
{
    (void)h3;
    (void)code;
    (void)cu;
    (void)su;
    creq *r = creq_of(sid);
    if (r) r->closed = 1;
    return 0;
}

/* A POST body: post_chunks pieces of 1000 bytes, one per call, so each
 * goes as its own DATA frame; then blocks forever if told to (-1). */
static nghttp3_ssize c_read_post(nghttp3_conn *h3, int64_t sid, nghttp3_vec *vec, size_t veccnt,
                                 uint32_t *pflags, void *cu, void *su)
{
    (void)h3;
    (void)veccnt;
    (void)cu;
    (void)su;
    creq *r = creq_of(sid);
    if (!r) return NGHTTP3_ERR_CALLBACK_FAILURE;
    if (r->post_chunks == -2) return NGHTTP3_ERR_WOULDBLOCK;
    if (r->post_chunks == 0) {
        *pflags = NGHTTP3_DATA_FLAG_EOF;
        return 0;
    }
    r->post_chunks = r->post_chunks == -1 ? -2 : r->post_chunks - 1;
    vec[0].base = post_buf;
    vec[0].len = sizeof(post_buf);
    return 1;
}

static void cli_h3(nana_quic_config *cfg)
{
    static const char *const alpn[] = {"h3"};
    memset(&cli_peer, 0, sizeof(cli_peer));
    cli_peer.cb.recv_header = c_header;
    cli_peer.cb.recv_trailer = c_header;
    cli_peer.cb.recv_data = c_data;
    cli_peer.cb.end_stream = c_end_stream;
    cli_peer.cb.stream_close = c_stream_close;
    static nana_quic_callbacks cb;
    cb = h3p_callbacks();
    cfg->cb = &cb;
    cfg->user = &cli_peer;
    cfg->alpn = alpn;
    cfg->nalpn = 1;
    cfg->stream_window = CLI_WIN / 2;
    cfg->conn_window = CLI_WIN;
}

static bool h3_opened(vnet *n)
{
    (void)n;
    return cli_peer.last != NULL && srv_peer.opens == 1;
}

/* Starts both sides and waits until both HTTP/3 connections exist. */
static h3p_conn *h3_start(vnet *n)
{
    memset(&A, 0, sizeof(A));
    vn_start(n, srv_h3, cli_h3);
    vn_connect(n);
    assert_true(vn_run(n, h3_opened, 5000));
    return cli_peer.last;
}

static void h3_stop(vnet *n)
{
    vn_stop(n);
    free_chunks();
}

/* Submits a request for |path|; |post_chunks| > 0 sends that many body
 * pieces, -1 one piece and then no end, 0 no body. */
static creq *request(h3p_conn *hc, const char *method, const char *path, int post_chunks)
{
    int64_t sid;
    assert_int_equal(nana_quic_stream_open(hc->qc, &sid), 0);
    int i = 0;
    while (i < MAXS - 1 && A.c[i].used)
        i++;
    creq *r = &A.c[i];
    assert_false(r->used);
    memset(r, 0, sizeof(*r));
    r->used = 1;
    r->sid = sid;
    r->post_chunks = post_chunks;
    nghttp3_nv nva[] = {h3p_nv(":method", method), h3p_nv(":scheme", "https"),
                        h3p_nv(":authority", "localhost"), h3p_nv(":path", path),
                        h3p_nv("content-type", "application/grpc")};
    nghttp3_data_reader dr = {c_read_post};
    assert_int_equal(
        nghttp3_conn_submit_request(hc->h3, sid, nva, 5, post_chunks ? &dr : NULL, NULL), 0);
    nana_quic_conn_source_ready(hc->qc);
    return r;
}

static creq *waiting; /* the request vn_run's conditions look at */

static bool req_ended(vnet *n)
{
    (void)n;
    return waiting->ended;
}

/* ---- tests ------------------------------------------------------------ */

/* A POST whose body goes in several DATA frames, answered with headers, a
 * body and trailers. */
static void test_h3_post_with_trailers(void **state)
{
    (void)state;
    vnet n;
    h3p_conn *hc = h3_start(&n);
    waiting = request(hc, "POST", "/echo", 5);
    vn_flush(&n);
    assert_true(vn_run(&n, req_ended, 2000));
    sreq *s = sreq_of(waiting->sid, 0);
    assert_non_null(s);
    assert_int_equal(s->body, 5000);
    assert_true(s->body_calls >= 5);
    assert_string_equal(waiting->status, "200");
    assert_string_equal(waiting->grpc_status, "0");
    assert_int_equal(waiting->body, strlen("got 5000 bytes"));
    assert_true(vn_run(&n, NULL, 200)); /* the last acknowledgements */
    assert_true(waiting->closed);
    assert_true(s->closed);
    /* A second request on the same connection, answered after a pause
     * (the source had nothing, then said it has). */
    waiting = request(hc, "GET", "/later", 0);
    vn_flush(&n);
    assert_true(vn_run(&n, req_ended, 2000));
    assert_string_equal(waiting->grpc_status, "0");
    assert_int_equal(waiting->body, strlen("got 0 bytes"));
    h3_stop(&n);
}

static bool srv_saw_cancel(vnet *n)
{
    (void)n;
    sreq *s = sreq_of(waiting->sid, 0);
    return s && s->resets && s->stops && s->closed;
}

/* A request the client cancels while its body is still coming: the server
 * gets the RESET_STREAM and the STOP_SENDING with the client's code, and
 * the stream ends on both sides. */
static void test_h3_cancel(void **state)
{
    (void)state;
    vnet n;
    h3p_conn *hc = h3_start(&n);
    waiting = request(hc, "POST", "/hold", -1);
    vn_flush(&n);
    assert_true(vn_run(&n, NULL, 100));
    sreq *s = sreq_of(waiting->sid, 0);
    assert_non_null(s);
    assert_false(s->ended);
    assert_int_equal(h3p_cancel(hc, waiting->sid, NGHTTP3_H3_REQUEST_CANCELLED), 0);
    vn_flush(&n);
    assert_true(vn_run(&n, srv_saw_cancel, 1000));
    assert_int_equal(s->resets, 1);
    assert_int_equal(s->stops, 1);
    assert_int_equal(s->reset_code, NGHTTP3_H3_REQUEST_CANCELLED);
    assert_int_equal(s->stop_code, NGHTTP3_H3_REQUEST_CANCELLED);
    assert_true(vn_run(&n, NULL, 200));
    assert_true(waiting->closed);
    /* The connection goes on. */
    waiting = request(hc, "POST", "/echo", 1);
    vn_flush(&n);
    assert_true(vn_run(&n, req_ended, 2000));
    assert_int_equal(waiting->body, strlen("got 1000 bytes"));
    h3_stop(&n);
}

/* A 10 MB response pulled as the window opens, to a client that reads
 * slowly: credit goes back only as the client consumes, nothing more
 * arrives while it does not, and the server never holds more than what
 * is in flight (it made the body chunk by chunk as nghttp3 asked, and
 * freed each chunk once acknowledged). One datagram in 50 is lost. */
static void test_h3_large_response(void **state)
{
    (void)state;
    vnet n;
    h3p_conn *hc = h3_start(&n);
    waiting = request(hc, "GET", "/big", 0);
    waiting->pattern = 1;
    vn_flush(&n);
    /* Nothing consumed: the stream window is all that comes. */
    assert_true(vn_run(&n, NULL, 300));
    assert_true(waiting->body > 0);
    assert_true(waiting->body <= CLI_WIN / 2);
    uint64_t got = waiting->body;
    assert_true(vn_run(&n, NULL, 300));
    assert_int_equal(waiting->body, got);
    /* Consumed 32 KiB at a time, every 2 ms of virtual time. */
    n.drop_every = 50;
    for (int i = 0; i < 100000 && !waiting->ended; i++) {
        uint64_t n_new = waiting->body - waiting->consumed;
        if (n_new > (uint64_t)32 * 1024) n_new = (uint64_t)32 * 1024;
        if (n_new) assert_int_equal(h3p_consume(hc, waiting->sid, n_new), 0);
        waiting->consumed += n_new;
        vn_flush(&n);
        (void)vn_run(&n, req_ended, 2);
        /* ngtcp2 may widen a window up to 4x, never past it. */
        assert_true(waiting->body <= waiting->consumed + 4 * CLI_WIN);
    }
    assert_true(waiting->ended);
    assert_int_equal(waiting->body, BIG_BYTES);
    assert_false(waiting->mismatch);
    assert_string_equal(waiting->status, "200");
    print_message("server held at most %llu bytes of the %llu-byte body\n",
                  (unsigned long long)A.max_held, (unsigned long long)BIG_BYTES);
    assert_true(A.max_held <= 4 * CLI_WIN + 2 * BIG_CHUNK);
    n.drop_every = 0;
    assert_true(vn_run(&n, NULL, 500));
    assert_int_equal(A.held, 0); /* every chunk acknowledged and freed */
    h3_stop(&n);
}

int main(int argc, char **argv)
{
    memset(post_buf, 'p', sizeof(post_buf));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_h3_post_with_trailers),
        cmocka_unit_test(test_h3_cancel),
        cmocka_unit_test(test_h3_large_response),
    };
    if (argc > 1) cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, qt_group_setup, qt_group_teardown);
}
