/*
 * fuzz_h3_request.c - libFuzzer harness for an HTTP/3 request as the gRPC
 * door reads it: the bytes of a client's request stream (and of its QPACK
 * encoder stream) go through nghttp3, the way src/h3 feeds them, and the
 * header fields and body nghttp3 hands out go to the gRPC layer's request
 * head and deframer (src/grpc), the way the door's callbacks do.
 *
 * Input: one byte of settings (bits 0-2: how the stream is cut into
 * pieces; bit 3: small limits), a two-byte length of the QPACK encoder
 * stream's bytes, those bytes, then the request stream's bytes (HEADERS,
 * DATA, unknown frames, trailers...).
 *
 * Whatever the bytes: nghttp3 either takes them or fails the stream or the
 * connection, and the harness stops feeding there; header fields arrive
 * only between begin and end of a header block; the head's verdict is
 * one of the four and stays the same when asked again; once accepted, the
 * deframer sees every DATA byte and its messages are within the limit;
 * the end of the stream ends the deframer once. Everything is freed.
 */
#include "fuzz_check.h"
#include "grpc/nana_grpc.h"
#include "util/nana_arena.h"

#include <nghttp3/nghttp3.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What the callbacks see of the one request (stream 0). */
typedef struct req {
    nana_grpc_head head;
    nana_grpc_deframer df;
    nana_grpc_limits lim;
    nana_arena arena;
    char block[1024];
    bool in_headers, head_done, accepted, ended, failed;
    nana_grpc_verdict_kind verdict;
    size_t data_bytes;
} req;

static int begin_headers(nghttp3_conn *c, int64_t sid, void *cu, void *su)
{
    (void)c;
    (void)su;
    req *r = cu;
    CHECK(sid == 0);
    CHECK(!r->in_headers);
    r->in_headers = true;
    return 0;
}

static int recv_header(nghttp3_conn *c, int64_t sid, int32_t token, nghttp3_rcbuf *name,
                       nghttp3_rcbuf *value, uint8_t flags, void *cu, void *su)
{
    (void)c;
    (void)sid;
    (void)token;
    (void)flags;
    (void)su;
    req *r = cu;
    CHECK(r->in_headers);
    if (r->head_done) return 0; /* trailers: the door ignores them */
    nghttp3_vec n = nghttp3_rcbuf_get_buf(name), v = nghttp3_rcbuf_get_buf(value);
    int rc = nana_grpc_head_add(&r->head, (const char *)n.base, n.len, (const char *)v.base, v.len);
    CHECK(rc == 0 || rc == NANA_ERR_INVALID || rc == NANA_ERR_TOOBIG || rc == NANA_ERR_NOMEM);
    return 0;
}

static int end_headers(nghttp3_conn *c, int64_t sid, int fin, void *cu, void *su)
{
    (void)c;
    (void)sid;
    (void)fin;
    (void)su;
    req *r = cu;
    CHECK(r->in_headers);
    r->in_headers = false;
    if (r->head_done) return 0;
    r->head_done = true;
    r->verdict = nana_grpc_head_finish(&r->head);
    CHECK(r->verdict == NANA_GRPC_ACCEPT || r->verdict == NANA_GRPC_REFUSE ||
          r->verdict == NANA_GRPC_HTTP_ERROR || r->verdict == NANA_GRPC_RESET);
    CHECK(nana_grpc_head_finish(&r->head) == r->verdict);
    r->accepted = r->verdict == NANA_GRPC_ACCEPT;
    return 0;
}

static int recv_data(nghttp3_conn *c, int64_t sid, const uint8_t *data, size_t len, void *cu,
                     void *su)
{
    (void)c;
    (void)sid;
    (void)su;
    req *r = cu;
    CHECK(r->head_done && !r->in_headers);
    r->data_bytes += len;
    /* nghttp3 leaves flow control to the application: give it all back. */
    nghttp3_conn_add_ack_offset(c, sid, len);
    if (!r->accepted || r->failed) return 0;
    nana_grpc_msg m;
    int rc;
    while ((rc = nana_grpc_deframe(&r->df, &data, &len, &m)) == 1)
        CHECK(m.len <= r->lim.max_message_bytes);
    if (rc < 0) r->failed = true;
    CHECK(rc <= 0);
    return 0;
}

static int end_stream(nghttp3_conn *c, int64_t sid, void *cu, void *su)
{
    (void)c;
    (void)sid;
    (void)su;
    req *r = cu;
    CHECK(!r->ended);
    r->ended = true;
    if (r->accepted && !r->failed) (void)nana_grpc_deframer_end(&r->df);
    return 0;
}

/* Feeds |n| bytes of stream |sid| in pieces cut by |cut|; false once
 * nghttp3 refused them (the stream or the connection failed). */
static bool feed(nghttp3_conn *c, int64_t sid, const uint8_t *p, size_t n, unsigned cut, bool fin)
{
    static const size_t sizes[8] = {1, 2, 3, 7, 16, 100, 1000, SIZE_MAX};
    size_t step = sizes[cut & 7];
    size_t at = 0;
    do {
        size_t k = n - at < step ? n - at : step;
        bool last = at + k == n;
        nghttp3_ssize rc = nghttp3_conn_read_stream(c, sid, p + at, k, fin && last);
        if (rc < 0) return false;
        at += k;
    } while (at < n);
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3) return 0;
    unsigned settings = data[0];
    size_t enc_len = (size_t)data[1] << 8 | data[2];
    data += 3;
    size -= 3;
    if (enc_len > size) enc_len = size;

    req *r = calloc(1, sizeof(*r));
    CHECK(r != NULL);
    nana_grpc_limits_default(&r->lim);
    if (settings & 8) {
        r->lim.max_header_fields = 8;
        r->lim.max_header_bytes = 256;
        r->lim.max_message_bytes = 64;
    }
    nana_arena_init(&r->arena, r->block, sizeof(r->block));
    nana_grpc_head_init(&r->head, NANA_GRPC_HTTP3, &r->lim, &r->arena);
    nana_grpc_deframer_init(&r->df, r->lim.max_message_bytes);

    nghttp3_callbacks cb;
    memset(&cb, 0, sizeof(cb));
    cb.begin_headers = begin_headers;
    cb.recv_header = recv_header;
    cb.end_headers = end_headers;
    cb.recv_data = recv_data;
    cb.end_stream = end_stream;
    nghttp3_settings st;
    nghttp3_settings_default(&st);
    st.max_field_section_size = (uint64_t)r->lim.max_header_bytes + 1024;
    st.qpack_max_dtable_capacity = 4096;
    st.qpack_blocked_streams = 16;
    nghttp3_conn *c = NULL;
    CHECK(nghttp3_conn_server_new(&c, &cb, &st, NULL, r) == 0);
    /* The client's QPACK encoder stream (id 2: type 0x02, then its bytes). */
    static const uint8_t enc_type = 0x02;
    if (enc_len && feed(c, 2, &enc_type, 1, 7, false))
        (void)feed(c, 2, data, enc_len, settings, false);
    (void)feed(c, 0, data + enc_len, size - enc_len, settings, true);

    nghttp3_conn_del(c);
    nana_grpc_deframer_free(&r->df);
    nana_arena_free(&r->arena);
    free(r);
    return 0;
}
