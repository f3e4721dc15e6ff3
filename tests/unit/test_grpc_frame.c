/*
 * test_grpc_frame.c - gRPC's length-prefixed messages: the prefix writer,
 * and the deframer fed whole, byte by byte and in random splits; zero copy
 * when a message is whole in a piece; the buffer kept per stream and grown
 * only with what arrived; the size limit, the compressed flag, a stream
 * that ends inside a message, and running out of memory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "grpc/nana_grpc.h"
#include "util/nana_mem.h"

#include <stdlib.h>
#include <string.h>

/* Appends one framed message of |len| bytes, each byte (seed + i). */
static size_t put_msg(uint8_t *out, uint32_t len, uint8_t seed, bool compressed)
{
    nana_grpc_frame_prefix(out, compressed, len);
    for (uint32_t i = 0; i < len; i++)
        out[NANA_GRPC_PREFIX + i] = (uint8_t)(seed + i);
    return NANA_GRPC_PREFIX + len;
}

static void check_msg(const nana_grpc_msg *m, uint32_t len, uint8_t seed)
{
    assert_int_equal(m->len, len);
    assert_non_null(m->data);
    for (uint32_t i = 0; i < len; i++)
        if (m->data[i] != (uint8_t)(seed + i)) fail_msg("byte %u of %u differs", i, len);
}

static void test_prefix(void **state)
{
    (void)state;
    uint8_t p[5];
    nana_grpc_frame_prefix(p, false, 0x01020304);
    assert_memory_equal(p, "\x00\x01\x02\x03\x04", 5);
    nana_grpc_frame_prefix(p, true, 0xffffffffu);
    assert_memory_equal(p, "\x01\xff\xff\xff\xff", 5);
    nana_grpc_frame_prefix(p, false, 5);
    assert_memory_equal(p, "\x00\x00\x00\x00\x05", 5);
}

static void test_whole_pieces_zero_copy(void **state)
{
    (void)state;
    uint8_t in[600];
    size_t n = put_msg(in, 300, 1, false);
    n += put_msg(in + n, 0, 0, false);
    n += put_msg(in + n, 200, 7, false);
    nana_grpc_deframer d;
    nana_grpc_deframer_init(&d, 0);
    assert_int_equal(d.max_message, 4u << 20);
    const uint8_t *p = in;
    size_t left = n;
    nana_grpc_msg m;
    assert_int_equal(nana_grpc_deframe(&d, &p, &left, &m), 1);
    check_msg(&m, 300, 1);
    assert_ptr_equal(m.data, in + 5); /* where it lay: no copy */
    assert_false(m.compressed);
    assert_int_equal(nana_grpc_deframe(&d, &p, &left, &m), 1);
    assert_int_equal(m.len, 0);
    assert_non_null(m.data);
    assert_int_equal(nana_grpc_deframe(&d, &p, &left, &m), 1);
    check_msg(&m, 200, 7);
    assert_ptr_equal(m.data, in + 5 + 300 + 5 + 5);
    assert_int_equal(left, 0);
    assert_int_equal(nana_grpc_deframe(&d, &p, &left, &m), 0);
    assert_int_equal(d.count, 3);
    assert_null(d.buf); /* never needed */
    assert_int_equal(nana_grpc_deframer_end(&d), 0);
    nana_grpc_deframer_free(&d);
}

static void test_byte_by_byte(void **state)
{
    (void)state;
    uint8_t in[3000];
    size_t n = put_msg(in, 2000, 3, false);
    n += put_msg(in + n, 1, 9, false);
    n += put_msg(in + n, 0, 0, false);
    nana_grpc_deframer d;
    nana_grpc_deframer_init(&d, 0);
    size_t ends[3] = {2004, 2010, 2015}; /* the byte that completes each */
    int got = 0;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = in + i;
        size_t left = 1;
        nana_grpc_msg m;
        int rc = nana_grpc_deframe(&d, &p, &left, &m);
        assert_int_equal(left, 0);
        if (rc == 0) continue;
        assert_int_equal(rc, 1);
        assert_int_equal(i, got < 3 ? ends[got] : SIZE_MAX);
        if (got == 0) {
            check_msg(&m, 2000, 3);
            assert_ptr_equal(m.data, d.buf); /* gathered in the buffer */
        } else if (got == 1) {
            check_msg(&m, 1, 9);
        } else {
            assert_int_equal(m.len, 0);
        }
        got++;
        assert_int_equal(nana_grpc_deframe(&d, &p, &left, &m), 0);
    }
    assert_int_equal(got, 3);
    assert_int_equal(nana_grpc_deframer_end(&d), 0);
    nana_grpc_deframer_free(&d);
}

/* Feeds |in| to a deframer in pieces whose sizes come from rand(), and
 * checks the messages against |lens| / |seeds|. */
static void feed_random(const uint8_t *in, size_t n, const uint32_t *lens, const uint8_t *seeds,
                        size_t count, size_t max_piece)
{
    nana_grpc_deframer d;
    nana_grpc_deframer_init(&d, 0);
    size_t at = 0, got = 0, zero_copy = 0;
    while (at < n) {
        size_t piece = (size_t)rand() % (max_piece + 1);
        if (piece > n - at) piece = n - at;
        const uint8_t *p = in + at;
        size_t left = piece;
        nana_grpc_msg m;
        int rc;
        while ((rc = nana_grpc_deframe(&d, &p, &left, &m)) == 1) {
            assert_true(got < count);
            check_msg(&m, lens[got], seeds[got]);
            if (m.len && m.data >= in && m.data < in + n) zero_copy++;
            got++;
        }
        assert_int_equal(rc, 0);
        assert_int_equal(left, 0);
        at += piece;
    }
    assert_int_equal(got, count);
    assert_int_equal(nana_grpc_deframer_end(&d), 0);
    assert_int_equal(d.count, count);
    if (max_piece > 20000) assert_true(zero_copy > 0);
    nana_grpc_deframer_free(&d);
}

static void test_random_splits(void **state)
{
    (void)state;
    enum { COUNT = 60 };
    static uint8_t in[COUNT * (5 + 5000)];
    uint32_t lens[COUNT];
    uint8_t seeds[COUNT];
    srand(1234);
    size_t n = 0;
    for (int i = 0; i < COUNT; i++) {
        lens[i] = (uint32_t)(i % 7 == 0 ? 0 : rand() % 5000);
        seeds[i] = (uint8_t)rand();
        n += put_msg(in + n, lens[i], seeds[i], false);
    }
    size_t pieces[] = {1, 2, 3, 5, 7, 64, 1000, 4096, 65536};
    for (int round = 0; round < 20; round++)
        for (size_t j = 0; j < sizeof(pieces) / sizeof(pieces[0]); j++)
            feed_random(in, n, lens, seeds, COUNT, pieces[j]);
}

static void test_oversize(void **state)
{
    (void)state;
    uint8_t in[300];
    nana_grpc_deframer d;
    nana_grpc_deframer_init(&d, 100);
    size_t n = put_msg(in, 100, 1, false); /* at the limit: fine */
    const uint8_t *p = in;
    nana_grpc_msg m;
    assert_int_equal(nana_grpc_deframe(&d, &p, &n, &m), 1);
    n = put_msg(in, 101, 1, false);
    p = in;
    size_t left = 5; /* the prefix alone is enough to refuse */
    assert_int_equal(nana_grpc_deframe(&d, &p, &left, &m), NANA_ERR_TOOBIG);
    assert_true(d.failed);
    assert_int_equal(d.error.status, NANA_GRPC_RESOURCE_EXHAUSTED);
    assert_string_equal(d.error.message, "received a message of 101 bytes, over the limit of 100");
    assert_string_equal(nana_errmsg(), d.error.message);
    assert_null(d.buf); /* nothing allocated for it */
    /* It keeps failing, whatever comes. */
    p = in + 5;
    left = n - 5;
    assert_int_equal(nana_grpc_deframe(&d, &p, &left, &m), NANA_ERR_TOOBIG);
    assert_int_equal(nana_grpc_deframer_end(&d), NANA_ERR_TOOBIG);
    /* The default limit is gRPC's 4 MiB. */
    nana_grpc_deframer_init(&d, 0);
    nana_grpc_frame_prefix(in, false, (4u << 20) + 1);
    p = in;
    left = 5;
    assert_int_equal(nana_grpc_deframe(&d, &p, &left, &m), NANA_ERR_TOOBIG);
    nana_grpc_deframer_init(&d, 0);
    nana_grpc_frame_prefix(in, false, 4u << 20);
    p = in;
    left = 5;
    assert_int_equal(nana_grpc_deframe(&d, &p, &left, &m), 0);
    nana_grpc_deframer_free(&d);
}

static void test_buffer_grows_with_arrivals(void **state)
{
    (void)state;
    uint8_t in[64];
    nana_grpc_deframer d;
    nana_grpc_deframer_init(&d, 0);
    /* Announce 4 MiB, send 10 bytes: the buffer is one small block. */
    nana_grpc_frame_prefix(in, false, 4u << 20);
    memset(in + 5, 'x', 10);
    const uint8_t *p = in;
    size_t left = 15;
    nana_grpc_msg m;
    assert_int_equal(nana_grpc_deframe(&d, &p, &left, &m), 0);
    assert_true(d.cap <= 1024);
    assert_int_equal(d.have, 10);
    assert_int_equal(nana_grpc_deframer_end(&d), NANA_ERR_INVALID);
    /* A split message's buffer is kept for the stream's next ones and the
     * next stream's (reset). */
    nana_grpc_deframer_reset(&d);
    assert_false(d.failed);
    uint8_t big[3000];
    size_t n = put_msg(big, 2500, 5, false);
    p = big;
    left = 100;
    assert_int_equal(nana_grpc_deframe(&d, &p, &left, &m), 0);
    left = n - 100;
    assert_int_equal(nana_grpc_deframe(&d, &p, &left, &m), 1);
    check_msg(&m, 2500, 5);
    uint8_t *buf = d.buf;
    size_t cap = d.cap;
    assert_true(cap >= 2500 && cap <= 4096);
    nana_grpc_deframer_reset(&d);
    assert_ptr_equal(d.buf, buf);
    assert_int_equal(d.cap, cap);
    assert_int_equal(d.count, 0);
    p = big;
    left = 7;
    assert_int_equal(nana_grpc_deframe(&d, &p, &left, &m), 0);
    left = n - 7;
    assert_int_equal(nana_grpc_deframe(&d, &p, &left, &m), 1);
    assert_ptr_equal(d.buf, buf); /* reused, not reallocated */
    check_msg(&m, 2500, 5);
    nana_grpc_deframer_free(&d);
    assert_null(d.buf);
}

static void test_compressed_flag(void **state)
{
    (void)state;
    uint8_t in[64];
    nana_grpc_deframer d;
    nana_grpc_msg m;
    /* Without an agreed encoding, a compressed message is INTERNAL. */
    nana_grpc_deframer_init(&d, 0);
    size_t n = put_msg(in, 4, 1, true);
    const uint8_t *p = in;
    assert_int_equal(nana_grpc_deframe(&d, &p, &n, &m), NANA_ERR_INVALID);
    assert_int_equal(d.error.status, NANA_GRPC_INTERNAL);
    assert_non_null(strstr(d.error.message, "compressed"));
    /* A flag that is neither 0 nor 1. */
    nana_grpc_deframer_init(&d, 0);
    n = put_msg(in, 4, 1, false);
    in[0] = 2;
    p = in;
    assert_int_equal(nana_grpc_deframe(&d, &p, &n, &m), NANA_ERR_INVALID);
    assert_int_equal(d.error.status, NANA_GRPC_INTERNAL);
    assert_non_null(strstr(d.error.message, "flag is 2"));
    /* With one agreed, it is handed out marked. */
    nana_grpc_deframer_init(&d, 0);
    d.compression_ok = true;
    n = put_msg(in, 4, 1, true);
    p = in;
    assert_int_equal(nana_grpc_deframe(&d, &p, &n, &m), 1);
    assert_true(m.compressed);
    check_msg(&m, 4, 1);
}

static void test_end_inside_message(void **state)
{
    (void)state;
    uint8_t in[64];
    size_t n = put_msg(in, 20, 1, false);
    for (size_t cut = 1; cut < n; cut++) {
        nana_grpc_deframer d;
        nana_grpc_deframer_init(&d, 0);
        const uint8_t *p = in;
        size_t left = cut;
        nana_grpc_msg m;
        assert_int_equal(nana_grpc_deframe(&d, &p, &left, &m), 0);
        assert_int_equal(nana_grpc_deframer_end(&d), NANA_ERR_INVALID);
        assert_int_equal(d.error.status, NANA_GRPC_INTERNAL);
        assert_non_null(strstr(d.error.message, cut < 5 ? "message prefix" : "inside a message"));
        nana_grpc_deframer_free(&d);
    }
}

static void test_out_of_memory(void **state)
{
    (void)state;
    uint8_t in[64];
    size_t n = put_msg(in, 40, 1, false);
    nana_grpc_deframer d;
    nana_grpc_deframer_init(&d, 0);
    const uint8_t *p = in;
    size_t left = 10;
    nana_grpc_msg m;
    nana_mem_fail_at(1, false);
    assert_int_equal(nana_grpc_deframe(&d, &p, &left, &m), NANA_ERR_NOMEM);
    nana_mem_fail_at(0, false);
    assert_int_equal(d.error.status, NANA_GRPC_RESOURCE_EXHAUSTED);
    left = n - 10;
    assert_int_equal(nana_grpc_deframe(&d, &p, &left, &m), NANA_ERR_NOMEM);
    nana_grpc_deframer_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prefix),          cmocka_unit_test(test_whole_pieces_zero_copy),
        cmocka_unit_test(test_byte_by_byte),    cmocka_unit_test(test_random_splits),
        cmocka_unit_test(test_oversize),        cmocka_unit_test(test_buffer_grows_with_arrivals),
        cmocka_unit_test(test_compressed_flag), cmocka_unit_test(test_end_inside_message),
        cmocka_unit_test(test_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
