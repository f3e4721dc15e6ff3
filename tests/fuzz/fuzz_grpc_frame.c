/*
 * fuzz_grpc_frame.c - libFuzzer harness for the gRPC deframer
 * (src/grpc/frame.c): a request body cut into pieces anywhere.
 *
 * The first byte chooses the message limit and whether compression was
 * agreed; the next two seed the sizes of the pieces; the rest is the body.
 * The deframer's messages and its verdict must be exactly those of a plain
 * reading of the whole body (a prefix, a length, the bytes; the flag
 * checked before the length), however the body is cut: the same messages
 * in order, byte for byte, none past the limit, each handed out from the
 * piece or from the deframer's own buffer and nowhere else; a failure is
 * the same code wherever the cut falls, and stays; the end of the stream
 * is clean only at a message boundary. Then the deframer is reset and
 * reused for the same body, which must give the same again.
 */
#include "fuzz_check.h"
#include "grpc/nana_grpc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What a plain reading of the whole body expects. */
typedef struct expect {
    size_t count;    /* messages */
    size_t offs[64]; /* where each message's bytes start (first 64) */
    size_t lens[64];
    int fail; /* 0, or the code the deframer must fail with */
    int end;  /* what nana_grpc_deframer_end must return */
} expect;

static void read_plainly(const uint8_t *p, size_t n, uint32_t limit, bool comp, expect *e)
{
    memset(e, 0, sizeof(*e));
    size_t at = 0;
    while (n - at >= 5) {
        uint8_t flag = p[at];
        uint32_t len = (uint32_t)p[at + 1] << 24 | (uint32_t)p[at + 2] << 16 |
                       (uint32_t)p[at + 3] << 8 | p[at + 4];
        if (flag > 1 || (flag == 1 && !comp)) {
            e->fail = e->end = NANA_ERR_INVALID;
            return;
        }
        if (len > limit) {
            e->fail = e->end = NANA_ERR_TOOBIG;
            return;
        }
        if (n - at - 5 < len) break;
        if (e->count < 64) {
            e->offs[e->count] = at + 5;
            e->lens[e->count] = len;
        }
        e->count++;
        at += 5 + len;
    }
    e->end = at == n ? 0 : NANA_ERR_INVALID;
}

/* A small deterministic generator for the piece sizes. */
static uint32_t next_rand(uint32_t *s)
{
    *s = *s * 1103515245u + 12345u;
    return *s >> 16;
}

static void run(nana_grpc_deframer *d, const uint8_t *body, size_t n, uint32_t seed,
                const expect *e)
{
    size_t at = 0, got = 0;
    int fail = 0;
    while (at < n) {
        size_t piece = next_rand(&seed) % 9;
        if (piece == 8) piece = next_rand(&seed) % 4096;
        if (piece > n - at) piece = n - at;
        const uint8_t *p = body + at;
        size_t left = piece;
        nana_grpc_msg m;
        int rc;
        while ((rc = nana_grpc_deframe(d, &p, &left, &m)) == 1) {
            CHECK(got < e->count);
            CHECK(m.len <= d->max_message);
            CHECK(m.compressed == false || d->compression_ok);
            bool in_piece = m.data >= body + at && m.data + m.len <= body + at + piece;
            bool in_buf = m.len == 0 || (d->buf && m.data == d->buf && m.len <= d->cap);
            CHECK(in_piece || in_buf);
            if (got < 64) {
                CHECK(m.len == e->lens[got]);
                CHECK(memcmp(m.data, body + e->offs[got], m.len) == 0);
            }
            got++;
        }
        CHECK(p == body + at + (piece - left));
        if (rc < 0) {
            CHECK(rc == e->fail);
            CHECK(d->failed && d->error.status != NANA_GRPC_OK);
            CHECK(memchr(d->error.message, 0, sizeof(d->error.message)) != NULL);
            fail = rc;
            /* It keeps failing. */
            left = n - at;
            p = body + at;
            CHECK(nana_grpc_deframe(d, &p, &left, &m) == rc);
            break;
        }
        CHECK(left == 0);
        at += piece;
    }
    CHECK(fail == e->fail);
    CHECK(got == e->count);
    CHECK(d->count == got);
    CHECK(nana_grpc_deframer_end(d) == e->end);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint32_t limits[8] = {0, 1, 5, 16, 100, 1000, 65536, 0xffffffffu};
    if (size < 3) return 0;
    uint32_t limit = limits[data[0] & 7];
    bool comp = (data[0] & 8) != 0;
    uint32_t seed = (uint32_t)data[1] << 8 | data[2];
    const uint8_t *body = data + 3;
    size_t n = size - 3;

    nana_grpc_deframer d;
    nana_grpc_deframer_init(&d, limit);
    d.compression_ok = comp;
    expect e;
    read_plainly(body, n, d.max_message, comp, &e);
    run(&d, body, n, seed, &e);
    nana_grpc_deframer_reset(&d);
    d.compression_ok = comp;
    CHECK(!d.failed && d.count == 0 && d.hdr_have == 0);
    run(&d, body, n, seed ^ 0x5a5a, &e);
    nana_grpc_deframer_free(&d);
    return 0;
}
