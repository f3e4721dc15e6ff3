/*
 * test_quic.c - the QUIC transport over real UDP sockets on loopback: our
 * client against our server, every case of the transport issue.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "quic_harness.h"

#include <arpa/inet.h>
#include <poll.h>
#include <sodium.h>
#include <sys/socket.h>

static qt_certs certs;

static int group_setup(void **state)
{
    (void)state;
    return qt_make_certs(&certs);
}

static int group_teardown(void **state)
{
    (void)state;
    qt_remove_certs(&certs);
    return 0;
}

/* Starts a default echo server, a client, and connects it. */
static void start_pair(qt_server *s, qt_client *cl, nana_quic_config *cfg)
{
    assert_int_equal(qt_server_start(s, cfg), 0);
    assert_int_equal(qt_client_start(cl, &certs, "nanasqlite", NULL, NULL), 0);
    assert_int_equal(qt_connect(cl, s->port, "localhost", NULL, 0), 0);
    assert_true(qt_wait_flag(cl, &cl->opened, 5000));
}

static void test_echo_many_streams(void **state)
{
    (void)state;
    qt_server s = {0};
    qt_client cl;
    nana_quic_config cfg;
    qt_server_config(&cfg, &s, &certs);
    cfg.max_streams_bidi = 64;
    start_pair(&s, &cl, &cfg);
    assert_string_equal(cl.alpn, "nanasqlite");
    /* 300 streams: more than the peer's limit of 64 at once, so stream
     * credit must come back as streams close. */
    int rc = 0;
    for (int round = 0; round < 5 && !rc; round++)
        rc = qt_echo(&cl, 60, 3000 + (size_t)round * 1000, (uint8_t)round);
    assert_int_equal(rc, 0);
    assert_int_equal(qt_echo(&cl, 1, 0, 9), 0); /* an empty stream: just FIN */
    nana_quic_stats st;
    nana_quic_ep_stats(s.ep, &st);
    assert_int_equal(st.handshakes_done, 1);
    assert_int_equal(st.conns_open, 1);
    qt_client_stop(&cl);
    qt_server_stop(&s);
    assert_int_equal(atomic_load(&s.closes), 1);
}

static void test_100mb_one_stream(void **state)
{
    (void)state;
    qt_server s = {0};
    qt_client cl;
    nana_quic_config cfg;
    qt_server_config(&cfg, &s, &certs);
    start_pair(&s, &cl, &cfg);
    qt_call k = {.cl = &cl, .fn = qt_fn_open_one, .seed = 77};
    assert_int_equal(qt_call_run(&k), 0);
    k.fn = qt_fn_pump;
    k.size = 100u * 1024 * 1024;
    k.window = 8u * 1024 * 1024;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < 200000 && k.sent < k.size; i++) {
        assert_int_equal(qt_call_run(&k), 0);
        if (k.sent < k.size) usleep(1000);
    }
    assert_int_equal(k.sent, k.size);
    assert_int_equal(qt_wait_fins(&cl, 60000), 1);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("100 MiB echoed in %.2f s\n", secs);
    assert_false(cl.streams[0].mismatch);
    assert_int_equal(cl.streams[0].received, k.size);
    qt_client_stop(&cl);
    qt_server_stop(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_echo_many_streams),
        cmocka_unit_test(test_100mb_one_stream),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
