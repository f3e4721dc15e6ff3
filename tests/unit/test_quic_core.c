/*
 * test_quic_core.c - the QUIC protocol core with no socket and no clock.
 *
 * A server and a client endpoint are built detached (no I/O thread); their
 * shards send into the in-memory network of quic_vnet.h, and time is a
 * number the test advances. Every run is deterministic and takes virtual
 * seconds, not real ones, so timer paths (idle timeout, closing period,
 * handshake timeout, keep-alive) are tested exactly, and loss, blocking
 * and address changes are decided packet by packet.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "quic/quic_int.h"
#include "quic_harness.h"
#include "quic_vnet.h"

/* ---- tests ------------------------------------------------------------ */

static void test_core_handshake_echo(void **state)
{
    (void)state;
    vnet n;
    vn_start(&n, NULL, NULL);
    nana_quic_conn *c = vn_open(&n);
    assert_string_equal(n.c.alpn, "nanasqlite");
    for (int i = 0; i < 40; i++)
        send_stream(&n, c, 3000 + (size_t)i * 17);
    vn_flush(&n);
    assert_true(vn_run(&n, all_fins, 5000));
    for (size_t i = 0; i < n.c.nstreams; i++) {
        assert_false(n.c.streams[i].mismatch);
        assert_int_equal(n.c.streams[i].received, 3000 + i * 17);
    }
    /* The server's handshake ends when the client's Finished arrives. */
    assert_string_equal(n.s.last_alpn, "nanasqlite");
    assert_int_equal(n.srv->shards[0].st.handshakes_done, 1);
    assert_int_equal(atomic_load(&n.s.opens), 1);
    vn_stop(&n);
}

static void test_core_loss(void **state)
{
    (void)state;
    vnet n;
    vn_start(&n, NULL, NULL);
    n.drop_every = 7; /* the handshake too */
    nana_quic_conn *c = vn_open(&n);
    qt_stream *s = send_stream(&n, c, 1 << 20);
    vn_flush(&n);
    assert_true(vn_run(&n, all_fins, 120000));
    assert_false(s->mismatch);
    assert_int_equal(s->received, 1 << 20);
    /* Acknowledged bytes were released on both sides. */
    assert_int_equal(nana_quic_stream_unacked(c, s->sid), 0);
    vn_stop(&n);
}

static void srv_require_cert(nana_quic_config *cfg)
{
    cfg->client_auth = NANA_QUIC_CLIENT_CERT_REQUIRE;
}

/* Never more than 3x what the client sent, while its address is unproven. */
static void test_core_amplification_limit(void **state)
{
    (void)state;
    vnet n;
    vn_start(&n, srv_require_cert, NULL); /* a larger server flight */
    vn_connect(&n);
    /* Deliver the client's first flight, then cut the client off. */
    assert_int_equal(n.qlen, 1);
    n.block[VN_TO_SRV] = true;
    size_t first = n.q[n.qhead].len;
    assert_true(first >= 1200);
    vn_run(&n, NULL, 60000); /* until both sides give up */
    assert_true(srv_empty(&n));
    assert_true(n.c.closed);
    uint64_t sent_by_server = n.delivered[VN_TO_CLI];
    assert_true(sent_by_server > 0);
    assert_true(sent_by_server <= 3 * n.delivered[VN_TO_SRV]);
    assert_int_equal(n.delivered[VN_TO_SRV], first);
    vn_stop(&n);
}

static void test_core_version_negotiation(void **state)
{
    (void)state;
    vnet n;
    vn_start(&n, NULL, NULL);
    uint8_t pkt[1200] = {0};
    pkt[0] = 0xc0;
    pkt[1] = 0x1a, pkt[2] = 0x1a, pkt[3] = 0x1a, pkt[4] = 0x1a; /* a version we do not speak */
    pkt[5] = 8;
    memset(pkt + 6, 0xd1, 8); /* DCID */
    pkt[14] = 8;
    memset(pkt + 15, 0x5c, 8); /* SCID */
    vn_deliver_to(&n, VN_TO_SRV, pkt, sizeof(pkt));
    vn_flush(&n);
    assert_int_equal(n.qlen, 1);
    const vdgram *d = &n.q[n.qhead];
    assert_true(d->data[0] & 0x80);
    static const uint8_t zero[4] = {0};
    assert_memory_equal(d->data + 1, zero, 4); /* version 0: Version Negotiation */
    assert_int_equal(d->data[5], 8);           /* its DCID is our SCID */
    assert_memory_equal(d->data + 6, pkt + 15, 8);
    bool has_v1 = false;
    for (size_t off = 6 + 8 + 1 + 8; off + 4 <= d->len; off += 4)
        if (d->data[off] == 0 && d->data[off + 1] == 0 && d->data[off + 2] == 0 &&
            d->data[off + 3] == 1)
            has_v1 = true;
    assert_true(has_v1);
    assert_int_equal(n.srv->shards[0].st.vn_sent, 1);
    /* Too short to be a client's Initial: no answer (no amplification). */
    n.qlen = 0;
    vn_deliver_to(&n, VN_TO_SRV, pkt, 1199);
    vn_flush(&n);
    assert_int_equal(n.qlen, 0);
    assert_int_equal(n.srv->shards[0].st.vn_sent, 1);
    vn_stop(&n);
}

static const uint8_t reset_secret[NANA_Q_SECRETLEN] = {1, 2, 3, 4, 5, 6, 7, 8, 9};

static void srv_static_secret(nana_quic_config *cfg)
{
    cfg->static_secret = reset_secret;
}

static void test_core_stateless_reset(void **state)
{
    (void)state;
    vnet n;
    vn_start(&n, srv_static_secret, NULL);
    uint8_t pkt[100];
    for (size_t i = 0; i < sizeof(pkt); i++)
        pkt[i] = (uint8_t)(i * 37 + 11);
    pkt[0] = 0x40; /* short header */
    pkt[1] = 0;    /* DCID of shard 0 ... */
    vn_deliver_to(&n, VN_TO_SRV, pkt, sizeof(pkt));
    vn_flush(&n);
    assert_int_equal(n.qlen, 1);
    const vdgram *d = &n.q[n.qhead];
    assert_true(d->len < sizeof(pkt)); /* smaller than what came: no loops */
    assert_true(d->len >= 41);
    assert_int_equal(d->data[0] & 0xc0, 0x40);
    ngtcp2_cid cid;
    ngtcp2_cid_init(&cid, pkt + 1, NANA_Q_CIDLEN);
    uint8_t token[NGTCP2_STATELESS_RESET_TOKENLEN];
    assert_int_equal(
        ngtcp2_crypto_generate_stateless_reset_token(token, reset_secret, NANA_Q_SECRETLEN, &cid),
        0);
    assert_memory_equal(d->data + d->len - sizeof(token), token, sizeof(token));
    /* Too short to answer without revealing a reset: nothing. */
    n.qlen = 0;
    vn_deliver_to(&n, VN_TO_SRV, pkt, 40);
    vn_flush(&n);
    assert_int_equal(n.qlen, 0);
    /* Rate limit: at most 1000 a second however many arrive. */
    for (int i = 0; i < 3000; i++)
        vn_deliver_to(&n, VN_TO_SRV, pkt, sizeof(pkt));
    assert_true(n.srv->shards[0].st.resets_sent <= 1000);
    assert_true(n.srv->shards[0].st.resets_sent >= 999);
    vn_stop(&n);
}

/* A server that restarts loses its connections; with the same secret its
 * stateless reset ends the client's connection at once, not at idle. */
static void test_core_reset_after_restart(void **state)
{
    (void)state;
    vnet n;
    vn_start(&n, srv_static_secret, NULL);
    nana_quic_conn *c = vn_open(&n);
    assert_true(vn_run(&n, NULL, 50)); /* let the handshake's last packets settle */
    nana_quic_ep_del(n.srv);
    nana_quic_config cfg;
    qt_server_config(&cfg, &n.s, &certs);
    cfg.static_secret = reset_secret;
    assert_int_equal(nana_quic_ep_new_detached(&cfg, &n.srv), 0);
    vn_attach(&n, n.srv, VN_TO_CLI, &n.srv_addr);
    uint64_t t0 = n.now;
    send_stream(&n, c, 100);
    vn_flush(&n);
    assert_true(vn_run(&n, cli_closed, 60000));
    assert_true(n.now - t0 < (uint64_t)NANA_Q_NS); /* well before the 30 s idle timeout */
    assert_int_equal(n.srv->shards[0].st.resets_sent, 1);
    /* Reported as the peer ending it, with no error code. */
    assert_int_equal(n.c.peer_error, 1);
    assert_int_equal(n.c.peer_code, 0);
    vn_stop(&n);
}

/* The side that closes keeps answering for three PTOs, then frees. */
static void test_core_closing_period(void **state)
{
    (void)state;
    vnet n;
    vn_start(&n, NULL, NULL);
    vn_open(&n);
    assert_true(vn_run(&n, NULL, 50));
    nana_quic_conn *sc = srv_conn(&n);
    uint64_t pto = ngtcp2_conn_get_pto(sc->q);
    uint64_t t0 = n.now;
    assert_int_equal(nana_quic_conn_close(sc, 7, "bye"), 0);
    vn_flush(&n);
    assert_true(vn_run(&n, cli_closed, 1000));
    assert_int_equal(n.c.peer_error, 1);
    assert_int_equal(n.c.peer_app, 1);
    assert_int_equal(n.c.peer_code, 7);
    assert_int_equal(atomic_load(&n.srv->conns), 1); /* still closing */
    assert_int_equal(sc->state, CONN_CLOSING);
    /* A late packet from the client gets the CONNECTION_CLOSE again; the
     * draining client answers nothing. */
    assert_int_equal(n.qlen, 0);
    vdgram late = n.last[VN_TO_SRV], close = n.last[VN_TO_CLI];
    n.now += pto / 2;
    vn_deliver_to(&n, VN_TO_SRV, late.data, late.len);
    vn_flush(&n);
    assert_int_equal(n.qlen, 1);
    assert_int_equal(n.q[n.qhead].len, close.len);
    n.qlen = 0;
    vn_deliver_to(&n, VN_TO_CLI, close.data, close.len);
    vn_flush(&n);
    assert_int_equal(n.qlen, 0);
    assert_true(vn_run(&n, srv_empty, 10000));
    assert_true(n.now - t0 >= 3 * pto);
    assert_true(n.now - t0 < 3 * pto + 1000000000ull);
    vn_stop(&n);
}

static void srv_idle_3s(nana_quic_config *cfg)
{
    cfg->idle_timeout_ms = 3000;
}

static void test_core_idle_timeout(void **state)
{
    (void)state;
    vnet n;
    vn_start(&n, srv_idle_3s, NULL);
    vn_open(&n);
    uint64_t t0 = n.now;
    assert_true(vn_run(&n, cli_closed, 60000));
    assert_true(vn_run(&n, srv_empty, 60000));
    uint64_t took = n.now - t0;
    assert_true(took >= 2900ull * 1000000);
    assert_true(took < 12000ull * 1000000);
    assert_int_equal(n.c.peer_error, 0); /* silent: nobody sent a close */
    vn_stop(&n);
}

static void cli_keepalive(nana_quic_config *cfg)
{
    cfg->keepalive_ms = 1000;
}

static void test_core_keepalive(void **state)
{
    (void)state;
    vnet n;
    vn_start(&n, srv_idle_3s, cli_keepalive);
    vn_open(&n);
    assert_false(vn_run(&n, cli_closed, 20000)); /* 20 virtual seconds, still open */
    assert_int_equal(atomic_load(&n.srv->conns), 1);
    vn_stop(&n);
}

static void cli_handshake_2s(nana_quic_config *cfg)
{
    cfg->handshake_timeout_ms = 2000;
}

static void test_core_handshake_timeout(void **state)
{
    (void)state;
    vnet n;
    vn_start(&n, NULL, cli_handshake_2s);
    n.block[VN_TO_SRV] = true;
    uint64_t t0 = n.now;
    vn_connect(&n);
    assert_true(vn_run(&n, cli_closed, 60000));
    assert_false(n.c.opened);
    assert_true(n.now - t0 >= 1900ull * 1000000);
    assert_true(n.now - t0 < 4000ull * 1000000);
    vn_stop(&n);
}

static void srv_retry_always(nana_quic_config *cfg)
{
    cfg->retry = NANA_QUIC_RETRY_ALWAYS;
}

static void test_core_retry(void **state)
{
    (void)state;
    vnet n;
    vn_start(&n, srv_retry_always, NULL);
    nana_quic_conn *c = vn_open(&n);
    assert_int_equal(n.srv->shards[0].st.retries_sent, 1);
    send_stream(&n, c, 5000);
    vn_flush(&n);
    assert_true(vn_run(&n, all_fins, 5000));
    assert_false(n.c.streams[0].mismatch);
    vn_stop(&n);
}

static void srv_one_conn(nana_quic_config *cfg)
{
    cfg->max_connections = 1;
}

static void test_core_max_connections(void **state)
{
    (void)state;
    vnet n;
    vn_start(&n, srv_one_conn, NULL);
    vn_open(&n);
    vn_connect(&n); /* a second connection from the same client */
    assert_true(vn_run(&n, cli_closed, 5000));
    assert_int_equal(n.c.peer_error, 1);
    assert_int_equal(n.c.peer_app, 0);
    assert_int_equal(n.c.peer_code, NGTCP2_CONNECTION_REFUSED);
    assert_int_equal(n.srv->shards[0].st.conns_refused, 1);
    assert_int_equal(atomic_load(&n.srv->conns), 1);
    vn_stop(&n);
}

static int refuse_all(const struct sockaddr *addr, socklen_t len, void *user)
{
    (void)addr;
    (void)len;
    (void)user;
    return 1;
}

static void srv_refuse(nana_quic_config *cfg)
{
    static nana_quic_callbacks cb;
    cb = *cfg->cb;
    cb.accept = refuse_all;
    cfg->cb = &cb;
}

/* The accept hook refuses a client before any state or TLS work. */
static void test_core_accept_hook(void **state)
{
    (void)state;
    vnet n;
    vn_start(&n, srv_refuse, NULL);
    vn_connect(&n);
    assert_true(vn_run(&n, cli_closed, 5000));
    assert_int_equal(n.c.peer_error, 1);
    assert_int_equal(n.c.peer_code, NGTCP2_CONNECTION_REFUSED);
    assert_int_equal(n.srv->shards[0].st.conns_accepted, 0);
    assert_int_equal(n.srv->shards[0].st.conns_refused, 1);
    vn_stop(&n);
}

/* A connection's own callbacks (nana_quic_conn_set_callbacks in conn_open)
 * get its streams and its close, with their own user pointer; the
 * endpoint's stream callbacks are not called for it. */
static atomic_int own_data_calls, own_closes, ep_data_calls, ep_closes;
static qt_server *own_srv;

static int own_data(nana_quic_conn *c, int64_t sid, const uint8_t *data, size_t len, int fin,
                    int early, void *user)
{
    assert_ptr_equal(user, &own_data_calls);
    atomic_fetch_add(&own_data_calls, 1);
    return qt_srv_data(c, sid, data, len, fin, early, own_srv);
}

static void own_close(nana_quic_conn *c, void *user)
{
    (void)c;
    assert_ptr_equal(user, &own_data_calls);
    atomic_fetch_add(&own_closes, 1);
}

static const nana_quic_callbacks own_cb = {.stream_data = own_data, .conn_close = own_close};

static int own_open(nana_quic_conn *c, void *user)
{
    own_srv = user;
    nana_quic_conn_set_callbacks(c, &own_cb, &own_data_calls);
    return qt_srv_open(c, user);
}

static int ep_data(nana_quic_conn *c, int64_t sid, const uint8_t *data, size_t len, int fin,
                   int early, void *user)
{
    atomic_fetch_add(&ep_data_calls, 1);
    return qt_srv_data(c, sid, data, len, fin, early, user);
}

static void ep_close(nana_quic_conn *c, void *user)
{
    (void)c;
    (void)user;
    atomic_fetch_add(&ep_closes, 1);
}

static void srv_own_callbacks(nana_quic_config *cfg)
{
    static nana_quic_callbacks cb;
    cb = *cfg->cb;
    cb.conn_open = own_open;
    cb.stream_data = ep_data;
    cb.conn_close = ep_close;
    cfg->cb = &cb;
}

static void test_core_conn_callbacks(void **state)
{
    (void)state;
    atomic_store(&own_data_calls, 0);
    atomic_store(&own_closes, 0);
    atomic_store(&ep_data_calls, 0);
    atomic_store(&ep_closes, 0);
    vnet n;
    vn_start(&n, srv_own_callbacks, NULL);
    nana_quic_conn *c = vn_open(&n);
    for (int i = 0; i < 4; i++)
        send_stream(&n, c, 2000);
    vn_flush(&n);
    assert_true(vn_run(&n, all_fins, 5000));
    for (size_t i = 0; i < n.c.nstreams; i++)
        assert_int_equal(n.c.streams[i].received, 2000);
    assert_true(atomic_load(&own_data_calls) >= 4);
    assert_int_equal(atomic_load(&ep_data_calls), 0);
    vn_stop(&n);
    assert_int_equal(atomic_load(&own_closes), 1);
    assert_int_equal(atomic_load(&ep_closes), 0);
}

/* The TLS exporter: both ends of a connection get the same secret for a
 * label and context, another label or context gives another. */
static void test_core_exporter(void **state)
{
    (void)state;
    vnet n;
    vn_start(&n, NULL, NULL);
    nana_quic_conn *c = vn_open(&n);
    vn_run(&n, NULL, 50);
    nana_quic_conn *s = srv_conn(&n);
    assert_non_null(s);
    uint8_t a[32], b[32], x[32], y[32];
    static const uint8_t ctx[] = {1, 2, 3};
    assert_int_equal(nana_quic_conn_exporter(c, "EXPORTER-test", ctx, 3, a, 32), 0);
    assert_int_equal(nana_quic_conn_exporter(s, "EXPORTER-test", ctx, 3, b, 32), 0);
    assert_memory_equal(a, b, 32);
    assert_int_equal(nana_quic_conn_exporter(c, "EXPORTER-other", ctx, 3, x, 32), 0);
    assert_memory_not_equal(a, x, 32);
    assert_int_equal(nana_quic_conn_exporter(c, "EXPORTER-test", ctx, 2, y, 32), 0);
    assert_memory_not_equal(a, y, 32);
    vn_stop(&n);
}

static void srv_four_streams(nana_quic_config *cfg)
{
    cfg->max_streams_bidi = 4;
}

static void test_core_stream_limit(void **state)
{
    (void)state;
    vnet n;
    vn_start(&n, srv_four_streams, NULL);
    nana_quic_conn *c = vn_open(&n);
    for (int i = 0; i < 4; i++)
        send_stream(&n, c, 100);
    int64_t sid;
    assert_int_equal(nana_quic_stream_open(c, &sid), NANA_ERR_BUSY);
    vn_flush(&n);
    assert_true(vn_run(&n, all_fins, 5000));
    assert_true(vn_run(&n, NULL, 200)); /* MAX_STREAMS arrives */
    send_stream(&n, c, 100);
    vn_flush(&n);
    assert_true(vn_run(&n, all_fins, 5000));
    vn_stop(&n);
}

static void cli_small_send_buffer(nana_quic_config *cfg)
{
    cfg->max_stream_send_buffer = 64 * 1024;
}

static void test_core_send_buffer_limit(void **state)
{
    (void)state;
    vnet n;
    vn_start(&n, NULL, cli_small_send_buffer);
    nana_quic_conn *c = vn_open(&n);
    int64_t sid;
    assert_int_equal(nana_quic_stream_open(c, &sid), 0);
    static uint8_t big[100 * 1024];
    assert_int_equal(nana_quic_stream_send(c, sid, big, sizeof(big), 0), NANA_ERR_TOOBIG);
    assert_int_equal(nana_quic_stream_send(c, sid, big, 60 * 1024, 0), 0);
    assert_int_equal(nana_quic_stream_send(c, sid, big, 8 * 1024, 0), NANA_ERR_TOOBIG);
    /* Once acknowledged, the room comes back. */
    vn_flush(&n);
    assert_true(vn_run(&n, NULL, 500));
    assert_int_equal(nana_quic_stream_unacked(c, sid), 0);
    assert_int_equal(nana_quic_stream_send(c, sid, big, 60 * 1024, 1), 0);
    vn_stop(&n);
}

static void count_release(void *ctx)
{
    (*(int *)ctx)++;
}

/* Bytes sent by reference are released once: after the acknowledgement,
 * or when the connection goes before it; at once when there are none. */
static void test_core_send_ref(void **state)
{
    (void)state;
    vnet n;
    vn_start(&n, NULL, NULL);
    nana_quic_conn *c = vn_open(&n);
    static uint8_t buf[3][20000];
    int released[3] = {0};
    int64_t sid;
    assert_int_equal(nana_quic_stream_open(c, &sid), 0);
    qt_stream *s = &n.c.streams[n.c.nstreams++];
    memset(s, 0, sizeof(*s));
    s->sid = sid;
    s->seed = 9;
    for (int i = 0; i < 3; i++) {
        qt_fill(buf[i], sizeof(buf[i]), (uint64_t)i * sizeof(buf[i]), s->seed);
        assert_int_equal(nana_quic_stream_send_ref(c, sid, buf[i], sizeof(buf[i]), 0, count_release,
                                                   &released[i]),
                         0);
    }
    assert_int_equal(released[0] + released[1] + released[2], 0);
    int zero = 0;
    assert_int_equal(nana_quic_stream_send_ref(c, sid, buf[0], 0, 1, count_release, &zero), 0);
    assert_int_equal(zero, 1);
    vn_flush(&n);
    assert_true(vn_run(&n, all_fins, 5000));
    assert_false(s->mismatch);
    assert_int_equal(s->received, sizeof(buf));
    assert_true(vn_run(&n, NULL, 200)); /* the last acknowledgements */
    for (int i = 0; i < 3; i++)
        assert_int_equal(released[i], 1);
    /* Never acknowledged: released when the connection is freed. */
    int pending = 0;
    assert_int_equal(nana_quic_stream_open(c, &sid), 0);
    n.block[VN_TO_SRV] = true;
    assert_int_equal(
        nana_quic_stream_send_ref(c, sid, buf[1], sizeof(buf[1]), 1, count_release, &pending), 0);
    vn_flush(&n);
    assert_int_equal(pending, 0);
    /* An error leaves the buffer with the caller. */
    assert_int_equal(nana_quic_stream_send_ref(c, sid, buf[1], 1, 0, count_release, &pending),
                     NANA_ERR_INVALID); /* after FIN */
    vn_stop(&n);
    assert_int_equal(pending, 1);
}

/* Bytes sent by copy with a release: the caller's buffer is free again at
 * once (overwritten here before anything is sent), short copies and long
 * ones arrive intact, and each release runs once: after the
 * acknowledgement, or when the connection goes before it. */
static void test_core_send_copy(void **state)
{
    (void)state;
    vnet n;
    vn_start(&n, NULL, NULL);
    nana_quic_conn *c = vn_open(&n);
    static uint8_t buf[20000];
    size_t sizes[4] = {1, 100, 224, 20000}; /* the last two: either side of a kept copy's size */
    int released[4] = {0};
    int64_t sid;
    assert_int_equal(nana_quic_stream_open(c, &sid), 0);
    qt_stream *s = &n.c.streams[n.c.nstreams++];
    memset(s, 0, sizeof(*s));
    s->sid = sid;
    s->seed = 11;
    uint64_t off = 0;
    for (int i = 0; i < 4; i++) {
        qt_fill(buf, sizes[i], off, s->seed);
        assert_int_equal(
            nana_quic_stream_send_copy(c, sid, buf, sizes[i], i == 3, count_release, &released[i]),
            0);
        memset(buf, 0xee, sizeof(buf)); /* the stream kept its own copy */
        off += sizes[i];
    }
    assert_int_equal(released[0] + released[1] + released[2] + released[3], 0);
    vn_flush(&n);
    assert_true(vn_run(&n, all_fins, 5000));
    assert_false(s->mismatch);
    assert_int_equal(s->received, off);
    assert_true(vn_run(&n, NULL, 200)); /* the last acknowledgements */
    for (int i = 0; i < 4; i++)
        assert_int_equal(released[i], 1);
    /* Never acknowledged: released when the connection is freed. */
    int pending = 0;
    assert_int_equal(nana_quic_stream_open(c, &sid), 0);
    n.block[VN_TO_SRV] = true;
    assert_int_equal(nana_quic_stream_send_copy(c, sid, buf, 50, 1, count_release, &pending), 0);
    vn_flush(&n);
    assert_int_equal(pending, 0);
    /* An error: not queued, so never released. */
    assert_int_equal(nana_quic_stream_send_copy(c, sid, buf, 1, 0, count_release, &pending),
                     NANA_ERR_INVALID); /* after FIN */
    vn_stop(&n);
    assert_int_equal(pending, 1);
}

/* NAT rebinding: the server sees a new client address and keeps going. */
static void test_core_nat_rebinding(void **state)
{
    (void)state;
    vnet n;
    vn_start(&n, NULL, NULL);
    nana_quic_conn *c = vn_open(&n);
    send_stream(&n, c, 2000);
    vn_flush(&n);
    assert_true(vn_run(&n, all_fins, 5000));
    set_addr(&n.cli_seen, "198.51.100.9", 61000);
    send_stream(&n, c, 50000);
    vn_flush(&n);
    assert_true(vn_run(&n, all_fins, 5000));
    assert_false(n.c.streams[1].mismatch);
    assert_true(vn_run(&n, NULL, 500));
    assert_int_equal(n.srv->shards[0].st.migrations, 1);
    struct sockaddr_storage peer;
    socklen_t plen;
    nana_quic_conn_peer(srv_conn(&n), &peer, &plen);
    assert_int_equal(ntohs(((struct sockaddr_in *)&peer)->sin_port), 61000);
    vn_stop(&n);
}

/* The client's socket changes (nana_quic_ep_rebind) before the server's
 * HANDSHAKE_DONE arrived, when ngtcp2 will not migrate yet: the connection
 * takes the new address all the same and carries on. */
static void test_core_rebind_unconfirmed(void **state)
{
    (void)state;
    vnet n;
    vn_start(&n, NULL, NULL);
    nana_quic_conn *c = vn_open(&n);
    /* The client's Finished reaches the server from the old address; the
     * server's HANDSHAKE_DONE goes to the old socket, which is gone. */
    n.block[VN_TO_CLI] = true;
    while (n.qlen) {
        vdgram *d = &n.q[n.qhead];
        n.qhead = (n.qhead + 1) % VN_QCAP;
        n.qlen--;
        if (d->to == VN_TO_SRV) vn_deliver_to(&n, d->to, d->data, d->len);
    }
    vn_flush(&n);
    n.block[VN_TO_CLI] = false;
    assert_int_equal(n.srv->shards[0].st.handshakes_done, 1);
    nana_quic_shard *sh = &n.cli->shards[0];
    set_addr(&n.cli_addr, "192.0.2.2", 50001);
    n.cli_seen = n.cli_addr;
    memcpy(&sh->local, &n.cli_addr, sizeof(struct sockaddr_in));
    nana_quic_shard_rebound(sh, n.now);
    const ngtcp2_path *p = ngtcp2_conn_get_path(c->q);
    assert_int_equal(ntohs(((const struct sockaddr_in *)p->local.addr)->sin_port), 50001);
    send_stream(&n, c, 3000);
    vn_flush(&n);
    assert_true(vn_run(&n, all_fins, 5000));
    assert_false(n.c.streams[0].mismatch);
    /* Confirmed now: a second change is a real migration. */
    set_addr(&n.cli_addr, "192.0.2.2", 50002);
    n.cli_seen = n.cli_addr;
    memcpy(&sh->local, &n.cli_addr, sizeof(struct sockaddr_in));
    nana_quic_shard_rebound(sh, n.now);
    send_stream(&n, c, 3000);
    vn_flush(&n);
    assert_true(vn_run(&n, all_fins, 5000));
    assert_false(n.c.streams[1].mismatch);
    assert_false(n.c.closed);
    vn_stop(&n);
}

/* Garbage of every shape reaches the server; its connection carries on. */
static void test_core_garbage(void **state)
{
    (void)state;
    vnet n;
    vn_start(&n, NULL, NULL);
    nana_quic_conn *c = vn_open(&n);
    assert_true(vn_run(&n, NULL, 50));
    nana_quic_conn *sc = srv_conn(&n);
    const ngtcp2_cid *scid = ngtcp2_conn_get_dcid(c->q); /* the server's CID */
    uint8_t pkt[1500];
    uint32_t x = 12345;
    uint64_t resets = n.srv->shards[0].st.resets_sent;
    for (int i = 0; i < 3000; i++) {
        size_t len = 1 + (size_t)(i * 7919) % sizeof(pkt);
        for (size_t j = 0; j < len; j++) {
            x = x * 1103515245u + 12345u;
            pkt[j] = (uint8_t)(x >> 16);
        }
        switch (i % 4) {
        case 0: /* short header for the live connection: fails decryption */
            pkt[0] = 0x40 | (pkt[0] & 0x1f);
            if (len > 1 + scid->datalen) memcpy(pkt + 1, scid->data, scid->datalen);
            break;
        case 1: /* long header, version 1, the live CID */
            pkt[0] = 0xc0 | (pkt[0] & 0x3f);
            if (len > 6 + scid->datalen) {
                pkt[1] = 0, pkt[2] = 0, pkt[3] = 0, pkt[4] = 1;
                pkt[5] = (uint8_t)scid->datalen;
                memcpy(pkt + 6, scid->data, scid->datalen);
            }
            break;
        default: /* anything */
            break;
        }
        vn_deliver_to(&n, VN_TO_SRV, pkt, len);
    }
    n.qlen = 0; /* what the server answered (resets, VN) is not for the client */
    vn_flush(&n);
    /* A real datagram cut short is refused too. */
    assert_int_equal(srv_conn(&n), sc);
    send_stream(&n, c, 4000);
    vn_flush(&n);
    assert_true(n.qlen >= 1);
    vdgram cut = n.q[n.qhead];
    vn_deliver_to(&n, VN_TO_SRV, cut.data, cut.len / 2);
    assert_true(vn_run(&n, all_fins, 5000));
    assert_false(n.c.streams[0].mismatch);
    assert_false(n.c.closed);
    assert_true(n.srv->shards[0].st.packets_dropped > 0);
    assert_true(n.srv->shards[0].st.resets_sent >= resets);
    vn_stop(&n);
}

/* ---- admission: connections not yet trusted ---------------------------- */

/* A server conn_open that trusts every connection at once (a logged-in client). */
static int trusting_open(nana_quic_conn *c, void *user)
{
    assert_int_equal(nana_quic_conn_trust(c), 0);
    return qt_srv_open(c, user);
}

static uint64_t timer_fired_at;

/* A server conn_open that asks for its timer 1.5 s after it opened. */
static int timer_open(nana_quic_conn *c, void *user)
{
    nana_quic_conn_set_timer(c, nana_quic_conn_now(c) + 1500000000ull);
    return qt_srv_open(c, user);
}

static void timer_cb(nana_quic_conn *c, void *user)
{
    (void)user;
    timer_fired_at = nana_quic_conn_now(c);
}

static nana_quic_callbacks admit_cb;

static void srv_trust_by_app(nana_quic_config *cfg)
{
    cfg->trust_by_app = 1;
    cfg->untrusted_timeout_ms = 2000;
    cfg->max_conns_per_addr = 2;
    cfg->idle_timeout_ms = 60000;
}

static void srv_trust_on_open(nana_quic_config *cfg)
{
    srv_trust_by_app(cfg);
    admit_cb = *cfg->cb;
    admit_cb.conn_open = trusting_open;
    cfg->cb = &admit_cb;
}

static void srv_with_timer(nana_quic_config *cfg)
{
    admit_cb = *cfg->cb;
    admit_cb.conn_open = timer_open;
    admit_cb.timer = timer_cb;
    cfg->cb = &admit_cb;
}

/* The reason phrase of the CONNECTION_CLOSE a client connection received. */
static void cli_reason(nana_quic_conn *c, char *out, size_t cap)
{
    nana_quic_conn_peer_reason(c, out, cap);
}

static void admit_counts(vnet *n, unsigned *total, unsigned *untrusted)
{
    uint64_t evicted, refused;
    nana_admit_counts(&n->srv->admit, total, untrusted, &evicted, &refused);
}

/* A connection the application never trusts is closed at its deadline;
 * one it trusts stays. */
static void test_core_untrusted_deadline(void **state)
{
    (void)state;
    vnet n;
    vn_start(&n, srv_trust_by_app, cli_keepalive);
    uint64_t t0 = n.now;
    nana_quic_conn *c = vn_open(&n);
    assert_true(vn_run(&n, cli_closed, 10000));
    assert_true(n.now - t0 >= 1900ull * 1000000);
    assert_true(n.now - t0 < 3000ull * 1000000);
    assert_int_equal(n.c.peer_error, 1);
    assert_int_equal(n.c.peer_app, 0);
    assert_int_equal(n.c.peer_code, NGTCP2_CONNECTION_REFUSED);
    char reason[128];
    cli_reason(c, reason, sizeof(reason));
    assert_string_equal(reason, "not logged in in time");
    assert_int_equal(n.srv->shards[0].st.untrusted_timeouts, 1);
    vn_stop(&n);

    vn_start(&n, srv_trust_on_open, cli_keepalive);
    vn_open(&n);
    assert_false(vn_run(&n, cli_closed, 20000)); /* trusted: open after 20 virtual seconds */
    unsigned total, untrusted;
    admit_counts(&n, &total, &untrusted);
    assert_int_equal(total, 1);
    assert_int_equal(untrusted, 0);
    vn_stop(&n);
}

static bool conn_closing(nana_quic_conn *c)
{
    return c->state == CONN_CLOSING || c->state == CONN_DRAINING || c->dead;
}

/* The client connection a test waits on (read before its draining period
 * ends and it is freed). */
static nana_quic_conn *watched;

static bool watched_closing(vnet *n)
{
    (void)n;
    return conn_closing(watched);
}

/* A new client past its address's limit closes an untrusted
 * connection of that address; when all are trusted it is refused. */
static void test_core_evicts_untrusted(void **state)
{
    (void)state;
    vnet n;
    vn_start(&n, srv_trust_by_app, NULL);
    nana_quic_conn *c1 = vn_open(&n);
    n.c.opened = 0;
    nana_quic_conn *c2 = vn_open(&n);
    n.c.opened = 0;
    watched = c1;
    nana_quic_conn *c3 = vn_open(&n); /* the third from one address */
    assert_true(vn_run(&n, watched_closing, 200));
    char reason[128];
    cli_reason(c1, reason, sizeof(reason));
    assert_string_equal(reason, "closed to make room: too many connections not logged in");
    assert_false(conn_closing(c2));
    assert_false(conn_closing(c3));
    assert_int_equal(n.srv->shards[0].st.conns_evicted, 1);
    unsigned total, untrusted;
    admit_counts(&n, &total, &untrusted);
    assert_int_equal(total, 2);
    assert_int_equal(untrusted, 2);
    /* Both logged in: the next one is refused, and says why. */
    for (nana_quic_conn *s = n.srv->shards[0].conns; s; s = s->next)
        if (!conn_closing(s)) assert_int_equal(nana_quic_conn_trust(s), 0);
    admit_counts(&n, &total, &untrusted);
    assert_int_equal(untrusted, 0);
    n.c.closed = 0;
    watched = vn_connect(&n);
    nana_quic_conn *c4 = watched;
    assert_true(vn_run(&n, watched_closing, 500));
    cli_reason(c4, reason, sizeof(reason));
    assert_string_equal(reason, "too many connections from this address");
    assert_false(conn_closing(c2));
    assert_false(conn_closing(c3));
    assert_int_equal(n.srv->shards[0].st.conns_refused, 1);
    vn_stop(&n);
}

static void srv_one_untrusted(nana_quic_config *cfg)
{
    cfg->trust_by_app = 1;
    cfg->max_untrusted = 1;
}

/* Past max_untrusted an untrusted connection makes room. */
static void test_core_untrusted_cap(void **state)
{
    (void)state;
    vnet n;
    vn_start(&n, srv_one_untrusted, NULL);
    watched = vn_open(&n);
    n.c.opened = 0;
    nana_quic_conn *c2 = vn_open(&n);
    assert_true(vn_run(&n, watched_closing, 200));
    assert_false(conn_closing(c2));
    unsigned total, untrusted;
    admit_counts(&n, &total, &untrusted);
    assert_int_equal(total, 1);
    assert_int_equal(untrusted, 1);
    vn_stop(&n);
}

/* The application's timer fires at the time asked for, on the fake clock. */
static void test_core_app_timer(void **state)
{
    (void)state;
    vnet n;
    timer_fired_at = 0;
    vn_start(&n, srv_with_timer, cli_keepalive);
    vn_open(&n);
    uint64_t opened = n.now;
    assert_true(vn_run(&n, NULL, 3000));
    assert_true(timer_fired_at >= opened + 1400000000ull);
    assert_true(timer_fired_at <= opened + 1600000000ull);
    vn_stop(&n);
}

/* What a connection holds for its peer goes down as the peer acknowledges it. */
static bool srv_got_all(vnet *n)
{
    return atomic_load(&n->s.bytes) >= 50000;
}

static void test_core_send_state(void **state)
{
    (void)state;
    vnet n;
    vn_start(&n, NULL, NULL);
    nana_quic_conn *c = vn_open(&n);
    send_stream(&n, c, 50000);
    vn_flush(&n);
    assert_true(vn_run(&n, srv_got_all, 2000));
    n.block[VN_TO_SRV] = true; /* the echo goes out; no ACK comes back */
    assert_true(vn_run(&n, NULL, 20));
    uint64_t held = 0, acked = 0;
    nana_quic_conn_send_state(srv_conn(&n), &held, &acked);
    assert_true(held > 0);
    assert_true(held + acked <= 50000);
    n.block[VN_TO_SRV] = false;
    assert_true(vn_run(&n, all_fins, 20000));
    assert_true(vn_run(&n, NULL, 500)); /* the last ACKs */
    nana_quic_conn_send_state(srv_conn(&n), &held, &acked);
    assert_int_equal(held, 0);
    assert_int_equal(acked, 50000);
    vn_stop(&n);
}

/* Client addresses are counted per IPv4 address and per IPv6 /64
 * (IPv4-mapped IPv6 counts as the IPv4 address). */
static void addr6(struct sockaddr_in6 *a, const char *ip)
{
    memset(a, 0, sizeof(*a));
    a->sin6_family = AF_INET6;
    assert_int_equal(inet_pton(AF_INET6, ip, &a->sin6_addr), 1);
}

static void test_admit_prefixes(void **state)
{
    (void)state;
    nana_admit a;
    assert_int_equal(nana_admit_init(&a, 100, 2, 100), 0);
    struct sockaddr_in6 x1, x2, x3, other;
    addr6(&x1, "2001:db8::1");
    addr6(&x2, "2001:db8::ffff:2");
    addr6(&x3, "2001:db8::3:0:0:3");
    addr6(&other, "2001:db8:0:1::1");
    nana_admit_ent *e[8];
    nana_admit_result r;
    assert_int_equal(nana_admit_enter(&a, (struct sockaddr *)&x1, 1, &e[0], &r), 0);
    assert_int_equal(nana_admit_enter(&a, (struct sockaddr *)&x2, 2, &e[1], &r), 0);
    assert_int_equal(r.nvictims, 0);
    assert_int_equal(nana_admit_enter(&a, (struct sockaddr *)&other, 3, &e[2], &r), 0);
    assert_int_equal(r.nvictims, 0); /* another /64 */
    assert_int_equal(nana_admit_enter(&a, (struct sockaddr *)&x3, 4, &e[3], &r), 0);
    assert_int_equal(r.nvictims, 1); /* same /64: with two, the older makes room */
    assert_int_equal(r.victims[0], 1);
    assert_true(nana_admit_trust(&a, e[1]));
    assert_true(nana_admit_trust(&a, e[3]));
    assert_false(nana_admit_trust(&a, e[0])); /* evicted */
    assert_int_equal(nana_admit_enter(&a, (struct sockaddr *)&x1, 5, &e[4], &r),
                     NANA_ADMIT_REFUSE_ADDR);
    /* IPv4 and IPv4-mapped IPv6 are one address. */
    struct sockaddr_in v4;
    memset(&v4, 0, sizeof(v4));
    v4.sin_family = AF_INET;
    inet_pton(AF_INET, "198.51.100.7", &v4.sin_addr);
    struct sockaddr_in6 mapped;
    addr6(&mapped, "::ffff:198.51.100.7");
    assert_int_equal(nana_admit_enter(&a, (struct sockaddr *)&v4, 6, &e[5], &r), 0);
    assert_int_equal(nana_admit_enter(&a, (struct sockaddr *)&mapped, 7, &e[6], &r), 0);
    assert_int_equal(nana_admit_enter(&a, (struct sockaddr *)&v4, 8, &e[7], &r), 0);
    assert_int_equal(r.nvictims, 1);
    assert_int_equal(r.victims[0], 6);
    unsigned total, untrusted;
    uint64_t evicted, refused;
    nana_admit_counts(&a, &total, &untrusted, &evicted, &refused);
    assert_int_equal(total, 5); /* x2, other, x3, mapped, v4 again */
    assert_int_equal(untrusted, 3);
    assert_int_equal(evicted, 2);
    assert_int_equal(refused, 1);
    for (int i = 0; i < 8; i++)
        if (i != 4) nana_admit_leave(&a, e[i]);
    nana_admit_counts(&a, &total, &untrusted, &evicted, &refused);
    assert_int_equal(total, 0);
    assert_int_equal(untrusted, 0);
    assert_int_equal(a.naddrs, 0);
    nana_admit_free(&a);
}

/* Connections whose clients asked to log in (engaged) are evicted only when
 * no connection in the way is not: 200 newcomers from one address with a
 * limit of 8 never push out the two engaged ones; once every one in the
 * way is engaged, the pick is among all again. */
static void test_admit_engaged(void **state)
{
    (void)state;
    nana_admit a;
    assert_int_equal(nana_admit_init(&a, 1000, 8, 1000), 0);
    struct sockaddr_in v4;
    memset(&v4, 0, sizeof(v4));
    v4.sin_family = AF_INET;
    inet_pton(AF_INET, "192.0.2.1", &v4.sin_addr);
    enum { N = 208 };
    nana_admit_ent *e[N + 8] = {0};
    bool gone[N + 8] = {0};
    nana_admit_result r;
    for (unsigned i = 0; i < 8; i++)
        assert_int_equal(nana_admit_enter(&a, (struct sockaddr *)&v4, i, &e[i], &r), 0);
    nana_admit_engage(&a, e[2]);
    nana_admit_engage(&a, e[5]);
    nana_admit_engage(&a, e[5]); /* twice: no change */
    for (unsigned i = 8; i < N; i++) {
        assert_int_equal(nana_admit_enter(&a, (struct sockaddr *)&v4, i, &e[i], &r), 0);
        assert_int_equal(r.nvictims, 1);
        assert_true(r.victims[0] != 2 && r.victims[0] != 5 && r.victims[0] != i);
        assert_false(gone[r.victims[0]]);
        gone[r.victims[0]] = true;
    }
    assert_true(nana_admit_trust(&a, e[2])); /* still counted */
    /* Every untrusted one in the way engaged: one of them goes. */
    unsigned engaged = 0;
    for (unsigned i = 0; i < N; i++)
        if (!gone[i] && i != 2) {
            nana_admit_engage(&a, e[i]);
            engaged++;
        }
    assert_int_equal(engaged, 7);
    assert_int_equal(nana_admit_enter(&a, (struct sockaddr *)&v4, N, &e[N], &r), 0);
    assert_int_equal(r.nvictims, 1);
    assert_true(r.victims[0] != 2 && r.victims[0] < N && !gone[r.victims[0]]);
    assert_false(nana_admit_trust(&a, e[r.victims[0]])); /* evicted */
    unsigned total, untrusted;
    uint64_t evicted, refused;
    nana_admit_counts(&a, &total, &untrusted, &evicted, &refused);
    assert_int_equal(total, 8);
    assert_int_equal(untrusted, 7);
    for (unsigned i = 0; i <= N; i++)
        nana_admit_leave(&a, e[i]);
    nana_admit_counts(&a, &total, &untrusted, &evicted, &refused);
    assert_int_equal(total, 0);
    assert_int_equal(untrusted, 0);
    nana_admit_free(&a);
}

/* The untrusted lists stay consistent through any mix of entering,
 * engaging, trusting and leaving: every entry knows its index, the entries
 * not engaged come first, and the counts add up. */
static void check_list(const nana_admit_list *l, bool global)
{
    for (unsigned i = 0; i < l->n; i++) {
        assert_int_equal(global ? l->v[i]->gidx : l->v[i]->aidx, i);
        assert_int_equal(l->v[i]->engaged, i >= l->nfresh);
        assert_true(l->v[i]->listed);
    }
}

static void test_admit_lists_random(void **state)
{
    (void)state;
    nana_admit a;
    assert_int_equal(nana_admit_init(&a, 40, 12, 30), 0);
    enum { SLOTS = 64 };
    nana_admit_ent *e[SLOTS] = {0};
    uint32_t seed = 12345;
    for (unsigned step = 0; step < 20000; step++) {
        seed = seed * 1103515245u + 12345u;
        unsigned k = (seed >> 8) % SLOTS, op = (seed >> 20) % 4;
        struct sockaddr_in v4;
        memset(&v4, 0, sizeof(v4));
        v4.sin_family = AF_INET;
        v4.sin_addr.s_addr = htonl(0xc0000200u + (seed >> 24) % 4);
        if (!e[k]) {
            nana_admit_result r;
            (void)nana_admit_enter(&a, (struct sockaddr *)&v4, k, &e[k], &r);
        } else if (op == 0) {
            nana_admit_engage(&a, e[k]);
        } else if (op == 1) {
            (void)nana_admit_trust(&a, e[k]);
        } else if (op == 2) {
            nana_admit_leave(&a, e[k]);
            e[k] = NULL;
        }
        check_list(&a.g, true);
        unsigned listed = 0, counted = 0;
        for (unsigned i = 0; i < SLOTS; i++) {
            if (!e[i]) continue;
            listed += e[i]->listed;
            counted += e[i]->counted;
            check_list(&e[i]->addr->u, false);
        }
        assert_int_equal(listed, a.g.n);
        assert_int_equal(listed, a.untrusted);
        assert_int_equal(counted, a.total);
        assert_true(a.total <= 40);
    }
    for (unsigned i = 0; i < SLOTS; i++)
        nana_admit_leave(&a, e[i]);
    assert_int_equal(a.naddrs, 0);
    nana_admit_free(&a);
}

/* Takes the first datagram in flight (which must go to the server). */
static vdgram take_first(vnet *n)
{
    assert_true(n->qlen > 0);
    vdgram d = n->q[n->qhead];
    assert_int_equal(d.to, VN_TO_SRV);
    n->qhead = (n->qhead + 1) % VN_QCAP;
    n->qlen--;
    return d;
}

/* Bytes of the long-header packet at |p| (header plus its Length field). */
static size_t long_pkt_len(const uint8_t *p, size_t len, int type)
{
    ngtcp2_pkt_hd hd;
    ngtcp2_ssize n = ngtcp2_pkt_decode_hd_long(&hd, p, len);
    assert_true(n > 0);
    assert_int_equal(hd.type, type);
    assert_true((size_t)n + hd.len <= len);
    return (size_t)n + hd.len;
}

/*
 * A client that sends its Finished behind an ACK-only Initial packet in a
 * datagram shorter than 1200 bytes, with its first request in a 1-RTT
 * packet after them (aioquic before 1.2): the server drops that Initial
 * packet (RFC 9000 14.1), not the rest, so the handshake completes and the
 * request is answered at once, not after the client's PTO resends the
 * Finished.
 */
static void test_core_short_initial_coalesced(void **state)
{
    (void)state;
    vnet n;
    vn_start(&n, NULL, NULL);
    nana_quic_conn *c = vn_connect(&n);
    /* The client's first flight, and the server's answer. */
    vdgram hello = take_first(&n);
    assert_int_equal(n.qlen, 0);
    vn_deliver_to(&n, VN_TO_SRV, hello.data, hello.len);
    vn_flush(&n);
    n.now += VN_HOP_NS;
    while (n.qlen) {
        vdgram *d = &n.q[n.qhead];
        assert_int_equal(d->to, VN_TO_CLI);
        n.qhead = (n.qhead + 1) % VN_QCAP;
        n.qlen--;
        vn_deliver_to(&n, VN_TO_CLI, d->data, d->len);
    }
    assert_true(n.c.opened); /* the client's side of the handshake is done */
    /* A first request queued now goes out with the Finished: Initial
     * (ACK) + Handshake (Finished) + 1-RTT (the request, padded to 1200
     * bytes). Keep its first two packets and hold its 1-RTT packet back,
     * with the path MTU probe and 1-RTT packets that follow. */
    send_stream(&n, c, 200);
    vn_flush(&n);
    vdgram fin = take_first(&n);
    size_t initial = long_pkt_len(fin.data, fin.len, NGTCP2_PKT_INITIAL);
    size_t handshake = long_pkt_len(fin.data + initial, fin.len - initial, NGTCP2_PKT_HANDSHAKE);
    vdgram later[8];
    size_t nlater = 0;
    size_t head = initial + handshake;
    assert_true(head < fin.len && !(fin.data[head] & 0x80));
    later[nlater].to = VN_TO_SRV;
    later[nlater].len = fin.len - head;
    memcpy(later[nlater++].data, fin.data + head, fin.len - head);
    while (n.qlen) {
        assert_true(nlater < 8);
        later[nlater++] = take_first(&n);
    }
    /* The second request, in a 1-RTT packet of its own. */
    qt_stream *s = send_stream(&n, c, 300);
    vn_flush(&n);
    vdgram req = take_first(&n);
    assert_int_equal(n.qlen, 0);
    assert_int_equal(req.data[0] & 0x80, 0);
    /* What aioquic sends: the three in one datagram under 1200 bytes. */
    vdgram crafted = {.to = VN_TO_SRV};
    memcpy(crafted.data, fin.data, head);
    memcpy(crafted.data + head, req.data, req.len);
    crafted.len = head + req.len;
    assert_true(crafted.len < 1200);
    /* The client's PTO in the Handshake space (RFC 9002 6.2.1: no ACK
     * delay there): when it would resend the Finished. */
    ngtcp2_conn_stat cs;
    ngtcp2_conn_get_conn_stat(c->q, &cs);
    uint64_t pto = cs.smoothed_rtt +
                   (4 * cs.rttvar > NGTCP2_MILLISECONDS ? 4 * cs.rttvar : NGTCP2_MILLISECONDS);
    /* An Initial packet whose Length runs past the datagram is left to
     * ngtcp2, which drops the datagram: nothing is read beyond its end. */
    vn_deliver_to(&n, VN_TO_SRV, crafted.data, initial - 1);
    vn_flush(&n);
    assert_int_equal(n.qlen, 0);
    uint64_t t0 = n.now;
    vn_deliver_to(&n, VN_TO_SRV, crafted.data, crafted.len);
    for (size_t i = 0; i < nlater; i++)
        n.q[(n.qhead + n.qlen++) % VN_QCAP] = later[i];
    vn_flush(&n);
    assert_true(vn_run(&n, all_fins, 1000));
    assert_false(s->mismatch);
    assert_int_equal(s->received, 300);
    /* One round trip (two hops), no timer: under the client's PTO. */
    assert_true(n.now - t0 < pto);
    assert_true(n.now - t0 <= 2 * VN_HOP_NS);
    assert_int_equal(n.srv->shards[0].st.handshakes_done, 1);
    vn_stop(&n);
}

/* ---- streams for HTTP/3: credit, one-way streams, resets -------------- */

/* What the custom callbacks of the tests below saw. */
typedef struct xrec {
    nana_quic_conn *conn; /* the server's connection */
    int credit_by_app;    /* conn_open: windows open only as consumed */
    uint64_t received;    /* stream bytes the server got */
    uint64_t consumed;    /* of which reported consumed */
    uint64_t uni_bytes;   /* bytes on one-way streams */
    int uni_fins;
    int64_t reset_sid, stop_sid;
    uint64_t reset_code, stop_code;
    int resets, stops;
    int uni_available; /* client: uni_streams_available ran */
    uint64_t cli_uni_bytes;
} xrec;

static xrec xr;

static int x_srv_open(nana_quic_conn *c, void *user)
{
    (void)user;
    xr.conn = c;
    if (xr.credit_by_app) nana_quic_conn_set_credit_by_app(c);
    return 0;
}

static int x_srv_data(nana_quic_conn *c, int64_t sid, const uint8_t *data, size_t len, int fin,
                      int early, void *user)
{
    (void)c;
    (void)data;
    (void)early;
    (void)user;
    xr.received += len;
    if (sid & 2) {
        xr.uni_bytes += len;
        xr.uni_fins += fin;
    }
    return 0;
}

static int x_srv_reset(nana_quic_conn *c, int64_t sid, uint64_t code, void *user)
{
    (void)c;
    (void)user;
    xr.resets++;
    xr.reset_sid = sid;
    xr.reset_code = code;
    return 0;
}

static int x_srv_stop(nana_quic_conn *c, int64_t sid, uint64_t code, void *user)
{
    (void)c;
    (void)user;
    xr.stops++;
    xr.stop_sid = sid;
    xr.stop_code = code;
    return 0;
}

static void srv_recorder(nana_quic_config *cfg)
{
    static const nana_quic_callbacks cb = {.conn_open = x_srv_open,
                                           .stream_data = x_srv_data,
                                           .stream_reset = x_srv_reset,
                                           .stop_sending = x_srv_stop};
    cfg->cb = &cb;
    cfg->stream_window = 64 * 1024;
    cfg->conn_window = 96 * 1024;
}

/* Opens a client stream and queues |len| pattern bytes, FIN with |fin|. */
static int64_t open_send(nana_quic_conn *c, size_t len, int fin)
{
    static uint8_t buf[256 * 1024];
    assert_true(len <= sizeof(buf));
    int64_t sid;
    assert_int_equal(nana_quic_stream_open(c, &sid), 0);
    qt_fill(buf, len, 0, 1);
    assert_int_equal(nana_quic_stream_send(c, sid, buf, len, fin), 0);
    return sid;
}

static bool srv_received_all(vnet *n)
{
    (void)n;
    return xr.received == 400 * 1024;
}

/* With credit returned by the layer above, the peer can send no more than
 * the windows hold until the bytes are reported consumed; then the rest
 * comes as they are. */
static void test_core_credit_by_app(void **state)
{
    (void)state;
    memset(&xr, 0, sizeof(xr));
    xr.credit_by_app = 1;
    vnet n;
    vn_start(&n, srv_recorder, NULL);
    nana_quic_conn *c = vn_open(&n);
    int64_t a = open_send(c, 200 * 1024, 1);
    int64_t b = open_send(c, 200 * 1024, 1);
    vn_flush(&n);
    assert_true(vn_run(&n, NULL, 2000));
    /* Nothing consumed: the connection window (96 KiB) holds it all. */
    assert_int_equal(xr.received, 96 * 1024);
    /* Consumed bytes let more in, never more than consumed + 4 windows
     * (ngtcp2 may widen a window up to 4x); none while nothing more is
     * consumed. */
    for (int i = 0; i < 2000 && xr.received < 400 * 1024; i++) {
        uint64_t fresh = xr.received - xr.consumed;
        assert_int_equal(nana_quic_stream_consumed(xr.conn, a, fresh / 2), 0);
        assert_int_equal(nana_quic_stream_consumed(xr.conn, b, fresh - fresh / 2), 0);
        xr.consumed = xr.received;
        vn_flush(&n);
        if (vn_run(&n, srv_received_all, 30)) break;
        assert_true(xr.received > xr.consumed);
        assert_true(xr.received <= xr.consumed + 4 * 96 * 1024);
        uint64_t got = xr.received;
        assert_true(vn_run(&n, NULL, 500)); /* nothing consumed: nothing more */
        assert_int_equal(xr.received, got);
    }
    assert_int_equal(xr.received, 400 * 1024);
    vn_stop(&n);
}

/* The peer's RESET_STREAM and STOP_SENDING each reach the layer above with
 * their own code; shutting one side leaves the other working. */
static void test_core_reset_and_stop_codes(void **state)
{
    (void)state;
    memset(&xr, 0, sizeof(xr));
    vnet n;
    vn_start(&n, srv_recorder, NULL);
    nana_quic_conn *c = vn_open(&n);
    /* STOP_SENDING alone: the client still sends, and the server reads it. */
    int64_t a = open_send(c, 1000, 0);
    vn_flush(&n);
    assert_true(vn_run(&n, NULL, 200));
    assert_int_equal(nana_quic_stream_shutdown_read(c, a, 0x11), 0);
    vn_flush(&n);
    assert_true(vn_run(&n, NULL, 200));
    assert_int_equal(xr.stops, 1);
    assert_int_equal(xr.stop_sid, a);
    assert_int_equal(xr.stop_code, 0x11);
    assert_int_equal(xr.resets, 0);
    assert_int_equal(nana_quic_stream_send(c, a, "more", 4, 1), 0);
    vn_flush(&n);
    assert_true(vn_run(&n, NULL, 200));
    assert_int_equal(xr.received, 1004);
    /* RESET_STREAM alone: the server may still send to the client. */
    int64_t b = open_send(c, 1000, 0);
    qt_stream *s = &n.c.streams[n.c.nstreams++];
    memset(s, 0, sizeof(*s));
    s->sid = b;
    s->seed = 5;
    vn_flush(&n);
    assert_true(vn_run(&n, NULL, 200));
    assert_int_equal(nana_quic_stream_shutdown_write(c, b, 0x22), 0);
    vn_flush(&n);
    assert_true(vn_run(&n, NULL, 200));
    assert_int_equal(xr.resets, 1);
    assert_int_equal(xr.reset_sid, b);
    assert_int_equal(xr.reset_code, 0x22);
    assert_int_equal(xr.stops, 1);
    uint8_t reply[300];
    qt_fill(reply, sizeof(reply), 0, 5);
    assert_int_equal(nana_quic_stream_send(xr.conn, b, reply, sizeof(reply), 1), 0);
    vn_flush(&n);
    assert_true(vn_run(&n, all_fins, 1000));
    assert_int_equal(s->received, sizeof(reply));
    assert_false(s->mismatch);
    /* Both ways at once (nana_quic_stream_reset): both codes arrive. */
    int64_t d = open_send(c, 10, 0);
    vn_flush(&n);
    assert_true(vn_run(&n, NULL, 200));
    assert_int_equal(nana_quic_stream_reset(c, d, 0x33), 0);
    vn_flush(&n);
    assert_true(vn_run(&n, NULL, 200));
    assert_int_equal(xr.resets, 2);
    assert_int_equal(xr.stops, 2);
    assert_int_equal(xr.reset_code, 0x33);
    assert_int_equal(xr.stop_code, 0x33);
    /* Wrong directions and unknown streams are refused. */
    int64_t u;
    assert_int_equal(nana_quic_stream_open_uni(c, &u), 0);
    assert_int_equal(nana_quic_stream_shutdown_read(c, u, 1), NANA_ERR_INVALID);
    assert_int_equal(nana_quic_stream_shutdown_write(c, 4000, 1), NANA_ERR_NOTFOUND);
    assert_int_equal(nana_quic_stream_shutdown_read(c, 4000, 1), NANA_ERR_NOTFOUND);
    vn_stop(&n);
}

static int x_cli_data(nana_quic_conn *c, int64_t sid, const uint8_t *data, size_t len, int fin,
                      int early, void *user)
{
    (void)c;
    (void)data;
    (void)fin;
    (void)early;
    (void)user;
    if (sid & 2) xr.cli_uni_bytes += len;
    return 0;
}

static void x_cli_uni_available(nana_quic_conn *c, void *user)
{
    (void)c;
    (void)user;
    xr.uni_available++;
}

static void cli_recorder(nana_quic_config *cfg)
{
    static const nana_quic_callbacks cb = {.conn_open = qt_cli_open,
                                           .conn_close = qt_cli_close,
                                           .stream_data = x_cli_data,
                                           .uni_streams_available = x_cli_uni_available};
    cfg->cb = &cb;
}

static bool srv_uni_fins(vnet *n)
{
    (void)n;
    return xr.uni_fins == 3;
}

/* One-way streams both ways: the peer's limit (3 by default) holds and
 * their stream data arrives like any other. */
static void test_core_uni_streams(void **state)
{
    (void)state;
    memset(&xr, 0, sizeof(xr));
    vnet n;
    vn_start(&n, srv_recorder, cli_recorder);
    nana_quic_conn *c = vn_open(&n);
    int64_t sid[3];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(nana_quic_stream_open_uni(c, &sid[i]), 0);
        assert_true(sid[i] & 2);
        assert_int_equal(nana_quic_stream_send(c, sid[i], "abcdefgh", 8, 1), 0);
    }
    int64_t more;
    assert_int_equal(nana_quic_stream_open_uni(c, &more), NANA_ERR_BUSY);
    vn_flush(&n);
    assert_true(vn_run(&n, srv_uni_fins, 1000));
    assert_int_equal(xr.uni_bytes, 24);
    /* The server cannot answer on them, but opens its own. */
    assert_int_equal(nana_quic_stream_send(xr.conn, sid[0], "x", 1, 0), NANA_ERR_INVALID);
    int64_t s;
    assert_int_equal(nana_quic_stream_open_uni(xr.conn, &s), 0);
    assert_int_equal(s & 3, 3);
    assert_int_equal(nana_quic_stream_send(xr.conn, s, "hello", 5, 1), 0);
    assert_true(vn_run(&n, NULL, 500));
    assert_int_equal(xr.cli_uni_bytes, 5);
    /* The closed streams' credit came back. */
    /* uni_streams_available ran when the server's limit first arrived.
     * (ngtcp2 0.12 never closes the peer's one-way streams, so their
     * credit does not come back: see quic_compat.h.) */
    assert_true(xr.uni_available > 0);
    vn_stop(&n);
}

/* Steady one call at a time (the 10,000-connection pattern): each call
 * costs its request, its reply and the client's ACK, not also a
 * MAX_STREAMS frame and its ACK (stream credit goes back in batches). */
static void test_core_datagrams_per_call(void **state)
{
    (void)state;
    vnet n;
    vn_start(&n, NULL, NULL);
    nana_quic_conn *c = vn_open(&n);
    for (int i = 0; i < 3; i++) { /* warm up: tickets, tokens, CIDs */
        send_stream(&n, c, 40);
        vn_flush(&n);
        assert_true(vn_run(&n, NULL, 1000));
    }
    uint64_t before = n.dgrams[0] + n.dgrams[1];
    const int calls = 40;
    for (int i = 0; i < calls; i++) {
        qt_stream *s = send_stream(&n, c, 40);
        vn_flush(&n);
        assert_true(vn_run(&n, NULL, 1000)); /* one call a second */
        assert_true(s->fin);
    }
    uint64_t per100 = (n.dgrams[0] + n.dgrams[1] - before) * 100 / calls;
    print_message("datagrams per call: %.2f\n", (double)per100 / 100);
    assert_true(per100 <= 310);
    vn_stop(&n);
}

static void srv_eight_streams(nana_quic_config *cfg)
{
    cfg->max_streams_bidi = 8;
}

static nana_quic_conn *credit_client;

static bool cli_can_open(vnet *n)
{
    (void)n;
    return ngtcp2_conn_get_streams_bidi_left(credit_client->q) > 0;
}

/* A client that keeps opening streams at the limit always gets credit
 * back as streams close, even while most of its streams stay open (long
 * calls): credit held back for a batch never leaves it stuck. */
static void test_core_stream_credit_never_stalls(void **state)
{
    (void)state;
    vnet n;
    vn_start(&n, srv_eight_streams, NULL);
    nana_quic_conn *c = vn_open(&n);
    credit_client = c;
    for (int i = 0; i < 6; i++) /* six long calls: echoed, never finished */
        open_send(c, 1, 0);
    size_t calls = 0;
    for (int round = 0; round < 60; round++) {
        /* Fill up to the limit, then wait for the calls to finish. */
        while (ngtcp2_conn_get_streams_bidi_left(c->q) > 0) {
            send_stream(&n, c, 100);
            calls++;
        }
        vn_flush(&n);
        assert_true(vn_run(&n, all_fins, 1000));
        /* Credit follows within a round trip and an ACK delay. */
        assert_true(vn_run(&n, cli_can_open, 100));
    }
    assert_true(calls >= 120);
    vn_stop(&n);
}

static void count_stop(void *arg, int64_t sid, uint64_t code)
{
    uint64_t *seen = arg;
    seen[0]++;
    seen[1] = (uint64_t)sid;
    seen[2] = code;
}

/* The walk over a decrypted packet's frames finds STOP_SENDING behind any
 * other frame, and stops, reporting nothing past it, at a frame cut short. */
static void test_core_frames_scan(void **state)
{
    (void)state;
    static const uint8_t pkt[] = {
        0x02, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00,                       /* ACK, one extra range */
        0x0f, 0x00, 0x00, 0x03, 'a',  'b',  'c',                        /* STREAM, OFF LEN FIN */
        0x04, 0x08, 0x01, 0x00,                                         /* RESET_STREAM */
        0x18, 0x01, 0x00, 0x02, 7,    7,    1,    2,  3, 4, 5, 6, 7, 8, /* NEW_CONNECTION_ID */
        9,    10,   11,   12,   13,   14,   15,   16,                   /* its token */
        0x1a, 1,    2,    3,    4,    5,    6,    7,  8,                /* PATH_CHALLENGE */
        0x05, 0x08, 0x41, 0x0c,                                         /* STOP_SENDING(8, 0x10c) */
        0x00, 0x00                                                      /* PADDING */
    };
    uint64_t seen[3] = {0};
    assert_int_equal(nana_quic_frames_scan(pkt, sizeof(pkt), count_stop, seen), 0);
    assert_int_equal(seen[0], 1);
    assert_int_equal(seen[1], 8);
    assert_int_equal(seen[2], 0x10c);
    /* Every shorter cut either ends between frames or is refused, and the
     * STOP_SENDING is reported only when it is there whole. */
    for (size_t len = 0; len < sizeof(pkt); len++) {
        memset(seen, 0, sizeof(seen));
        int rc = nana_quic_frames_scan(pkt, len, count_stop, seen);
        assert_true(rc == 0 || rc == -1);
        assert_int_equal(seen[0], len >= sizeof(pkt) - 2 ? 1 : 0);
    }
    /* An unknown frame type stops the walk. */
    static const uint8_t odd[] = {0x40, 0x20, 0x05, 0x00, 0x00};
    memset(seen, 0, sizeof(seen));
    assert_int_equal(nana_quic_frames_scan(odd, sizeof(odd), count_stop, seen), -1);
    assert_int_equal(seen[0], 0);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_core_handshake_echo),
        cmocka_unit_test(test_core_loss),
        cmocka_unit_test(test_core_amplification_limit),
        cmocka_unit_test(test_core_version_negotiation),
        cmocka_unit_test(test_core_stateless_reset),
        cmocka_unit_test(test_core_reset_after_restart),
        cmocka_unit_test(test_core_closing_period),
        cmocka_unit_test(test_core_idle_timeout),
        cmocka_unit_test(test_core_keepalive),
        cmocka_unit_test(test_core_handshake_timeout),
        cmocka_unit_test(test_core_retry),
        cmocka_unit_test(test_core_max_connections),
        cmocka_unit_test(test_core_accept_hook),
        cmocka_unit_test(test_core_stream_limit),
        cmocka_unit_test(test_core_send_buffer_limit),
        cmocka_unit_test(test_core_send_ref),
        cmocka_unit_test(test_core_send_copy),
        cmocka_unit_test(test_core_nat_rebinding),
        cmocka_unit_test(test_core_rebind_unconfirmed),
        cmocka_unit_test(test_core_garbage),
        cmocka_unit_test(test_core_untrusted_deadline),
        cmocka_unit_test(test_core_evicts_untrusted),
        cmocka_unit_test(test_core_untrusted_cap),
        cmocka_unit_test(test_core_app_timer),
        cmocka_unit_test(test_core_send_state),
        cmocka_unit_test(test_core_conn_callbacks),
        cmocka_unit_test(test_core_exporter),
        cmocka_unit_test(test_admit_prefixes),
        cmocka_unit_test(test_admit_engaged),
        cmocka_unit_test(test_admit_lists_random),
        cmocka_unit_test(test_core_short_initial_coalesced),
        cmocka_unit_test(test_core_credit_by_app),
        cmocka_unit_test(test_core_reset_and_stop_codes),
        cmocka_unit_test(test_core_uni_streams),
        cmocka_unit_test(test_core_datagrams_per_call),
        cmocka_unit_test(test_core_stream_credit_never_stalls),
        cmocka_unit_test(test_core_frames_scan),
    };
    if (argc > 1) cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, qt_group_setup, qt_group_teardown);
}
