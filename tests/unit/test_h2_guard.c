/*
 * test_h2_guard.c - the HTTP/2 flood guard (src/h2) on a fake clock: each
 * bucket takes its burst, refuses the next frame, refills with time at its
 * rate and never past its burst; a trip is sticky; SETTINGS
 * acknowledgements, empty DATA that ends a stream and frames that carry
 * work are never counted; CONTINUATION frames are counted per header block.
 * And the session made by nana_h2_server_new announces our settings.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "h2/nana_h2.h"

#include <stdbool.h>
#include <string.h>

#define MS 1000000ull
#define S  1000000000ull

static nghttp2_frame_hd hd(uint8_t type, uint8_t flags, size_t len)
{
    nghttp2_frame_hd h;
    memset(&h, 0, sizeof(h));
    h.type = type;
    h.flags = flags;
    h.length = len;
    h.stream_id = 1;
    return h;
}

static nana_h2_limits small(void)
{
    nana_h2_limits l;
    memset(&l, 0, sizeof(l));
    l.rst_burst = 10;
    l.rst_per_s = 5;
    l.ping_burst = 4;
    l.ping_per_s = 2;
    l.settings_burst = 3;
    l.settings_per_s = 1;
    l.empty_burst = 6;
    l.empty_per_s = 3;
    l.max_continuations = 2;
    nana_h2_limits_fill(&l);
    return l;
}

static void test_defaults(void **state)
{
    (void)state;
    nana_h2_limits l;
    memset(&l, 0, sizeof(l));
    nana_h2_limits_fill(&l);
    assert_int_equal(l.max_concurrent_streams, 100);
    assert_int_equal(l.stream_window, 1u << 20);
    assert_int_equal(l.max_frame_size, 16384);
    assert_int_equal(l.rst_burst, 1000);
    assert_int_equal(l.rst_per_s, 200);
    assert_int_equal(l.max_continuations, 6);
    l.rst_per_s = 7; /* set fields stay */
    nana_h2_limits_fill(&l);
    assert_int_equal(l.rst_per_s, 7);
}

/* The burst passes, the next frame trips, and the trip stays. */
static void test_rapid_reset(void **state)
{
    (void)state;
    nana_h2_limits l = small();
    nana_h2_guard g;
    nana_h2_guard_init(&g, &l, 1000 * S);
    nghttp2_frame_hd rst = hd(NGHTTP2_RST_STREAM, 0, 4);
    for (int i = 0; i < 10; i++)
        assert_int_equal(nana_h2_guard_frame(&g, &rst, 1000 * S), NANA_H2_OK);
    assert_int_equal(nana_h2_guard_frame(&g, &rst, 1000 * S), NANA_H2_FLOOD_RST);
    /* sticky: even a harmless frame, even much later */
    nghttp2_frame_hd h = hd(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS, 10);
    assert_int_equal(nana_h2_guard_frame(&g, &h, 2000 * S), NANA_H2_FLOOD_RST);
    assert_string_equal(nana_h2_verdict_text(NANA_H2_FLOOD_RST), "too many stream resets");
}

/* A client at the allowed rate goes on for ever; a little faster trips. */
static void test_refill(void **state)
{
    (void)state;
    nana_h2_limits l = small();
    nana_h2_guard g;
    uint64_t t = 5 * S;
    nana_h2_guard_init(&g, &l, t);
    nghttp2_frame_hd ping = hd(NGHTTP2_PING, 0, 8);
    /* 2 a second, for 100 seconds: fine */
    for (int i = 0; i < 200; i++) {
        t += 500 * MS;
        assert_int_equal(nana_h2_guard_frame(&g, &ping, t), NANA_H2_OK);
    }
    /* 3 a second: the burst (4) drains by one a second, then trips */
    int n = 0;
    nana_h2_verdict v = NANA_H2_OK;
    while (v == NANA_H2_OK && n < 1000) {
        t += 333 * MS;
        v = nana_h2_guard_frame(&g, &ping, t);
        n++;
    }
    assert_int_equal(v, NANA_H2_FLOOD_PING);
    assert_in_range(n, 8, 20);
}

/* Answers sent give PINGs back: a client probing bandwidth once per
 * answer goes on for ever; without answers the rate holds. */
static void test_pings_follow_answers(void **state)
{
    (void)state;
    nana_h2_limits l = small();
    nana_h2_guard g;
    nana_h2_guard_init(&g, &l, 0);
    nghttp2_frame_hd ping = hd(NGHTTP2_PING, 0, 8);
    for (int i = 0; i < 100000; i++) {
        nana_h2_guard_answered(&g);
        assert_int_equal(nana_h2_guard_frame(&g, &ping, 0), NANA_H2_OK);
    }
    for (int i = 0; i < 10; i++) /* never past the burst */
        nana_h2_guard_answered(&g);
    for (int i = 0; i < 4; i++)
        assert_int_equal(nana_h2_guard_frame(&g, &ping, 0), NANA_H2_OK);
    assert_int_equal(nana_h2_guard_frame(&g, &ping, 0), NANA_H2_FLOOD_PING);
}

/* A long pause refills to the burst, not beyond. */
static void test_refill_capped(void **state)
{
    (void)state;
    nana_h2_limits l = small();
    nana_h2_guard g;
    nana_h2_guard_init(&g, &l, 0);
    nghttp2_frame_hd s = hd(NGHTTP2_SETTINGS, 0, 6);
    uint64_t t = 100000 * S; /* more than a day later */
    for (int i = 0; i < 3; i++)
        assert_int_equal(nana_h2_guard_frame(&g, &s, t), NANA_H2_OK);
    assert_int_equal(nana_h2_guard_frame(&g, &s, t), NANA_H2_FLOOD_SETTINGS);
}

/* What is never counted: SETTINGS ACK, DATA that carries bytes or ends a
 * stream, HEADERS. */
static void test_not_counted(void **state)
{
    (void)state;
    nana_h2_limits l = small();
    nana_h2_guard g;
    nana_h2_guard_init(&g, &l, 0);
    nghttp2_frame_hd ack = hd(NGHTTP2_SETTINGS, NGHTTP2_FLAG_ACK, 0);
    nghttp2_frame_hd data = hd(NGHTTP2_DATA, 0, 100);
    nghttp2_frame_hd end = hd(NGHTTP2_DATA, NGHTTP2_FLAG_END_STREAM, 0);
    nghttp2_frame_hd h = hd(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS, 10);
    for (int i = 0; i < 10000; i++) {
        assert_int_equal(nana_h2_guard_frame(&g, &ack, 0), NANA_H2_OK);
        assert_int_equal(nana_h2_guard_frame(&g, &data, 0), NANA_H2_OK);
        assert_int_equal(nana_h2_guard_frame(&g, &end, 0), NANA_H2_OK);
        assert_int_equal(nana_h2_guard_frame(&g, &h, 0), NANA_H2_OK);
    }
}

/* Empty DATA and PRIORITY share a bucket; WINDOW_UPDATE (one per answer
 * from a client reading many) is never counted. */
static void test_empty_frames(void **state)
{
    (void)state;
    nana_h2_limits l = small();
    nana_h2_guard g;
    nana_h2_guard_init(&g, &l, 0);
    nghttp2_frame_hd e = hd(NGHTTP2_DATA, 0, 0);
    nghttp2_frame_hd p = hd(NGHTTP2_PRIORITY, 0, 5);
    nghttp2_frame_hd w = hd(NGHTTP2_WINDOW_UPDATE, 0, 4);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(nana_h2_guard_frame(&g, &e, 0), NANA_H2_OK);
        assert_int_equal(nana_h2_guard_frame(&g, &p, 0), NANA_H2_OK);
        for (int k = 0; k < 1000; k++)
            assert_int_equal(nana_h2_guard_frame(&g, &w, 0), NANA_H2_OK);
    }
    assert_int_equal(nana_h2_guard_frame(&g, &e, 0), NANA_H2_FLOOD_EMPTY);
}

/* CONTINUATION frames are counted from each HEADERS: two per block pass,
 * a third trips. */
static void test_continuation(void **state)
{
    (void)state;
    nana_h2_limits l = small();
    nana_h2_guard g;
    nana_h2_guard_init(&g, &l, 0);
    nghttp2_frame_hd h = hd(NGHTTP2_HEADERS, 0, 10);
    nghttp2_frame_hd c = hd(NGHTTP2_CONTINUATION, 0, 10);
    for (int block = 0; block < 50; block++) {
        assert_int_equal(nana_h2_guard_frame(&g, &h, 0), NANA_H2_OK);
        assert_int_equal(nana_h2_guard_frame(&g, &c, 0), NANA_H2_OK);
        assert_int_equal(nana_h2_guard_frame(&g, &c, 0), NANA_H2_OK);
    }
    assert_int_equal(nana_h2_guard_frame(&g, &c, 0), NANA_H2_FLOOD_CONTINUATION);
}

/* The session's first bytes: the SETTINGS frame with our values, then the
 * connection's WINDOW_UPDATE. */
static void test_session_settings(void **state)
{
    (void)state;
    nana_h2_limits l;
    memset(&l, 0, sizeof(l));
    l.max_concurrent_streams = 7;
    nana_h2_limits_fill(&l);
    nghttp2_session_callbacks *cb;
    assert_int_equal(nghttp2_session_callbacks_new(&cb), 0);
    nghttp2_session *s = NULL;
    assert_int_equal(nana_h2_server_new(&l, cb, NULL, &s), 0);
    uint8_t out[256];
    size_t n = 0;
    for (;;) { /* a frame at a time */
        const uint8_t *p;
        ssize_t k = nghttp2_session_mem_send(s, &p);
        assert_true(k >= 0);
        if (!k) break;
        assert_true(n + (size_t)k <= sizeof(out));
        memcpy(out + n, p, (size_t)k);
        n += (size_t)k;
    }
    assert_int_equal(n, 9 + 5 * 6 + 13);
    assert_int_equal(out[3], NGHTTP2_SETTINGS);
    size_t len = ((size_t)out[0] << 16) | ((size_t)out[1] << 8) | out[2];
    assert_int_equal(len, 5 * 6);
    bool seen_streams = false, seen_push = false;
    for (size_t i = 0; i < len; i += 6) {
        const uint8_t *e = out + 9 + i;
        unsigned id = ((unsigned)e[0] << 8) | e[1];
        uint32_t v = ((uint32_t)e[2] << 24) | ((uint32_t)e[3] << 16) | ((uint32_t)e[4] << 8) | e[5];
        if (id == NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS) {
            assert_int_equal(v, 7);
            seen_streams = true;
        }
        if (id == NGHTTP2_SETTINGS_ENABLE_PUSH) {
            assert_int_equal(v, 0);
            seen_push = true;
        }
    }
    assert_true(seen_streams && seen_push);
    const uint8_t *wu = out + 9 + len;
    assert_int_equal(wu[3], NGHTTP2_WINDOW_UPDATE);
    uint32_t inc =
        ((uint32_t)wu[9] << 24) | ((uint32_t)wu[10] << 16) | ((uint32_t)wu[11] << 8) | wu[12];
    assert_int_equal(inc, l.conn_window - 65535);
    nghttp2_session_del(s);
    nghttp2_session_callbacks_del(cb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_rapid_reset),
        cmocka_unit_test(test_refill),
        cmocka_unit_test(test_refill_capped),
        cmocka_unit_test(test_not_counted),
        cmocka_unit_test(test_empty_frames),
        cmocka_unit_test(test_continuation),
        cmocka_unit_test(test_session_settings),
        cmocka_unit_test(test_pings_follow_answers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
