/*
 * test_quic_core.c - the QUIC protocol core with no socket and no clock.
 *
 * A server and a client endpoint are built detached (no I/O thread); their
 * shards send into an in-memory network that this file owns, and time is a
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

#include <arpa/inet.h>
#include <ngtcp2/ngtcp2_crypto.h>

/* ---- the virtual network ---------------------------------------------- */

#define VN_QCAP   16384 /* datagrams in flight; more are dropped like a full queue */
#define VN_DGRAM  1500
#define VN_TO_SRV 0
#define VN_TO_CLI 1
#define VN_START  ((uint64_t)1000 * NANA_Q_NS)
#define VN_HOP_NS ((uint64_t)50 * 1000) /* one delivery round: 50 us */
#define VN_ROUNDS 400000

typedef struct vnet vnet;

/* A shard's sink: remembers which way its datagrams go. */
typedef struct vside {
    nana_quic_tx tx; /* first: the shard calls tx->send with this pointer */
    vnet *net;
    int to;
} vside;

typedef struct vdgram {
    int to;
    size_t len;
    uint8_t data[VN_DGRAM];
} vdgram;

struct vnet {
    nana_quic_ep *srv, *cli;
    qt_server s;
    qt_client c;
    vside side[2];
    ngtcp2_sockaddr_union srv_addr;
    ngtcp2_sockaddr_union cli_addr; /* the client's own (bound) address */
    ngtcp2_sockaddr_union cli_seen; /* the client's address as the server sees it (NAT) */
    vdgram *q;
    size_t qhead, qlen;
    uint64_t now;
    unsigned drop_every; /* drop every Nth datagram, both ways (0: none) */
    uint64_t seq;
    bool block[2];         /* drop everything going this way */
    uint64_t delivered[2]; /* bytes delivered this way */
    uint64_t dgrams[2];    /* datagrams delivered this way */
    vdgram last[2];        /* the latest datagram sent each way */
};

static void vn_send(nana_quic_tx *tx, const ngtcp2_path *path, const uint8_t *data, size_t len,
                    size_t seg)
{
    (void)path;
    vside *sd = (vside *)tx;
    vnet *n = sd->net;
    for (size_t off = 0; off < len; off += seg) {
        size_t l = len - off < seg ? len - off : seg;
        assert_true(l <= NANA_Q_MAX_UDP);
        n->last[sd->to].to = sd->to;
        n->last[sd->to].len = l;
        memcpy(n->last[sd->to].data, data + off, l);
        n->seq++;
        if (n->block[sd->to] || (n->drop_every && n->seq % n->drop_every == 0)) continue;
        if (n->qlen == VN_QCAP) continue;
        vdgram *d = &n->q[(n->qhead + n->qlen++) % VN_QCAP];
        d->to = sd->to;
        d->len = l;
        memcpy(d->data, data + off, l);
    }
}

static void set_addr(ngtcp2_sockaddr_union *a, const char *ip, uint16_t port)
{
    memset(a, 0, sizeof(*a));
    a->in.sin_family = AF_INET;
    a->in.sin_port = htons(port);
    inet_pton(AF_INET, ip, &a->in.sin_addr);
}

/* Hands one datagram to the shard it is addressed to. */
static void vn_deliver_to(vnet *n, int to, const uint8_t *data, size_t len)
{
    ngtcp2_path path;
    if (to == VN_TO_SRV) {
        path.local.addr = &n->srv_addr.sa;
        path.remote.addr = &n->cli_seen.sa;
    } else {
        path.local.addr = &n->cli_addr.sa;
        path.remote.addr = &n->srv_addr.sa;
    }
    path.local.addrlen = path.remote.addrlen = sizeof(struct sockaddr_in);
    path.user_data = NULL;
    n->delivered[to] += len;
    n->dgrams[to]++;
    nana_quic_ep *ep = to == VN_TO_SRV ? n->srv : n->cli;
    nana_quic_shard_recv(&ep->shards[0], &path, data, len, 0, n->now);
}

static void vn_flush(vnet *n)
{
    nana_quic_shard_flush(&n->srv->shards[0], n->now);
    nana_quic_shard_flush(&n->cli->shards[0], n->now);
}

/* Attaches an endpoint's single shard to the network. */
static void vn_attach(vnet *n, nana_quic_ep *ep, int to, const ngtcp2_sockaddr_union *local)
{
    nana_quic_shard *sh = &ep->shards[0];
    n->side[to].tx.send = vn_send;
    n->side[to].net = n;
    n->side[to].to = to;
    sh->tx = &n->side[to].tx;
    memcpy(&sh->local, local, sizeof(struct sockaddr_in));
    sh->local_len = sizeof(struct sockaddr_in);
}

typedef bool (*vn_cond)(vnet *n);

/*
 * Runs the network: delivers what is in flight, one hop at a time, and
 * when nothing is, jumps the clock to the next timer. Stops when |cond|
 * holds (true), or after |max_ms| of virtual time or when nothing is left
 * to happen (false; |cond| NULL runs to that point and returns true).
 */
static bool vn_run(vnet *n, vn_cond cond, uint64_t max_ms)
{
    uint64_t end = n->now + max_ms * 1000000ull;
    for (int round = 0; round < VN_ROUNDS; round++) {
        if (cond && cond(n)) return true;
        if (n->qlen) {
            size_t batch = n->qlen;
            for (size_t i = 0; i < batch; i++) {
                vdgram *d = &n->q[n->qhead];
                n->qhead = (n->qhead + 1) % VN_QCAP;
                n->qlen--;
                vn_deliver_to(n, d->to, d->data, d->len);
            }
            n->now += VN_HOP_NS;
        } else {
            uint64_t a = nana_quic_shard_next_timeout(&n->srv->shards[0], n->now);
            uint64_t b = nana_quic_shard_next_timeout(&n->cli->shards[0], n->now);
            uint64_t wait = a < b ? a : b;
            if (wait == UINT64_MAX) return cond ? cond(n) : true;
            if (wait > end - n->now) {
                n->now = end; /* the clock never runs past the end */
                vn_flush(n);
                return cond ? cond(n) : true;
            }
            n->now += wait ? wait : 1;
        }
        vn_flush(n);
        if (n->now >= end) return cond ? cond(n) : true;
    }
    fail_msg("the virtual network did not settle in %d rounds", VN_ROUNDS);
    return false;
}

/* Builds a server (adjusted by |srv_tweak|) and a client on the network. */
static void vn_start(vnet *n, void (*srv_tweak)(nana_quic_config *),
                     void (*cli_tweak)(nana_quic_config *))
{
    memset(n, 0, sizeof(*n));
    n->q = calloc(VN_QCAP, sizeof(*n->q));
    assert_non_null(n->q);
    n->now = VN_START;
    set_addr(&n->srv_addr, "192.0.2.1", 4433);
    set_addr(&n->cli_addr, "192.0.2.2", 50000);
    n->cli_seen = n->cli_addr;
    nana_quic_config cfg;
    qt_server_config(&cfg, &n->s, &certs);
    cfg.retry = NANA_QUIC_RETRY_NEVER;
    if (srv_tweak) srv_tweak(&cfg);
    pthread_mutex_init(&n->s.mu, NULL);
    assert_int_equal(nana_quic_ep_new_detached(&cfg, &n->srv), 0);
    qt_client_config(&cfg, &n->c, &certs, "nanasqlite", NULL, NULL);
    if (cli_tweak) cli_tweak(&cfg);
    assert_int_equal(nana_quic_ep_new_detached(&cfg, &n->cli), 0);
    vn_attach(n, n->srv, VN_TO_CLI, &n->srv_addr);
    vn_attach(n, n->cli, VN_TO_SRV, &n->cli_addr);
}

static void vn_stop(vnet *n)
{
    nana_quic_ep_del(n->cli);
    nana_quic_ep_del(n->srv);
    pthread_mutex_destroy(&n->s.mu);
    pthread_mutex_destroy(&n->c.mu);
    pthread_cond_destroy(&n->c.cv);
    free(n->q);
}

/* Starts a client connection to the server; returns it. */
static nana_quic_conn *vn_connect(vnet *n)
{
    nana_quic_shard *sh = &n->cli->shards[0];
    nana_quic_conn *c = NULL;
    assert_int_equal(nana_quic_conn_connect(sh, &n->srv_addr.sa, sizeof(struct sockaddr_in),
                                            "localhost", NULL, 0, NULL,
                                            nana_quic_shard_new_handle(sh), n->now, &c),
                     0);
    nana_quic_shard_dirty(sh, c);
    vn_flush(n);
    n->c.h = c->handle;
    return c;
}

static bool cli_opened(vnet *n)
{
    return n->c.opened;
}

static bool cli_closed(vnet *n)
{
    return n->c.closed;
}

static bool srv_empty(vnet *n)
{
    return atomic_load(&n->srv->conns) == 0;
}

static bool all_fins(vnet *n)
{
    for (size_t i = 0; i < n->c.nstreams; i++)
        if (!n->c.streams[i].fin) return false;
    return n->c.nstreams > 0;
}

/* Connects and runs until the client sees the connection open. */
static nana_quic_conn *vn_open(vnet *n)
{
    nana_quic_conn *c = vn_connect(n);
    assert_true(vn_run(n, cli_opened, 5000));
    return c;
}

/* Opens a stream and queues |len| pattern bytes and a FIN on it. */
static qt_stream *send_stream(vnet *n, nana_quic_conn *c, size_t len)
{
    int64_t sid;
    assert_int_equal(nana_quic_stream_open(c, &sid), 0);
    assert_true(n->c.nstreams < QT_MAX_STREAMS);
    qt_stream *s = &n->c.streams[n->c.nstreams++];
    memset(s, 0, sizeof(*s));
    s->sid = sid;
    s->seed = (uint8_t)(sid * 7 + 3);
    uint8_t *buf = malloc(len ? len : 1);
    assert_non_null(buf);
    qt_fill(buf, len, 0, s->seed);
    assert_int_equal(nana_quic_stream_send(c, sid, buf, len, 1), 0);
    free(buf);
    return s;
}

/* The server's only connection. */
static nana_quic_conn *srv_conn(vnet *n)
{
    nana_quic_conn *c = n->srv->shards[0].conns;
    assert_non_null(c);
    return c;
}

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
    nana_quic_admit_counts(&n->srv->admit, total, untrusted, &evicted, &refused);
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
    nana_quic_admit a;
    assert_int_equal(nana_quic_admit_init(&a, 100, 2, 100), 0);
    struct sockaddr_in6 x1, x2, x3, other;
    addr6(&x1, "2001:db8::1");
    addr6(&x2, "2001:db8::ffff:2");
    addr6(&x3, "2001:db8::3:0:0:3");
    addr6(&other, "2001:db8:0:1::1");
    nana_quic_admit_ent *e[8];
    nana_quic_admit_result r;
    assert_int_equal(nana_quic_admit_enter(&a, (struct sockaddr *)&x1, 1, &e[0], &r), 0);
    assert_int_equal(nana_quic_admit_enter(&a, (struct sockaddr *)&x2, 2, &e[1], &r), 0);
    assert_int_equal(r.nvictims, 0);
    assert_int_equal(nana_quic_admit_enter(&a, (struct sockaddr *)&other, 3, &e[2], &r), 0);
    assert_int_equal(r.nvictims, 0); /* another /64 */
    assert_int_equal(nana_quic_admit_enter(&a, (struct sockaddr *)&x3, 4, &e[3], &r), 0);
    assert_int_equal(r.nvictims, 1); /* same /64: with two, the older makes room */
    assert_int_equal(r.victims[0], 1);
    assert_true(nana_quic_admit_trust(&a, e[1]));
    assert_true(nana_quic_admit_trust(&a, e[3]));
    assert_false(nana_quic_admit_trust(&a, e[0])); /* evicted */
    assert_int_equal(nana_quic_admit_enter(&a, (struct sockaddr *)&x1, 5, &e[4], &r),
                     NANA_QUIC_REFUSE_ADDR);
    /* IPv4 and IPv4-mapped IPv6 are one address. */
    struct sockaddr_in v4;
    memset(&v4, 0, sizeof(v4));
    v4.sin_family = AF_INET;
    inet_pton(AF_INET, "198.51.100.7", &v4.sin_addr);
    struct sockaddr_in6 mapped;
    addr6(&mapped, "::ffff:198.51.100.7");
    assert_int_equal(nana_quic_admit_enter(&a, (struct sockaddr *)&v4, 6, &e[5], &r), 0);
    assert_int_equal(nana_quic_admit_enter(&a, (struct sockaddr *)&mapped, 7, &e[6], &r), 0);
    assert_int_equal(nana_quic_admit_enter(&a, (struct sockaddr *)&v4, 8, &e[7], &r), 0);
    assert_int_equal(r.nvictims, 1);
    assert_int_equal(r.victims[0], 6);
    unsigned total, untrusted;
    uint64_t evicted, refused;
    nana_quic_admit_counts(&a, &total, &untrusted, &evicted, &refused);
    assert_int_equal(total, 5); /* x2, other, x3, mapped, v4 again */
    assert_int_equal(untrusted, 3);
    assert_int_equal(evicted, 2);
    assert_int_equal(refused, 1);
    for (int i = 0; i < 8; i++)
        if (i != 4) nana_quic_admit_leave(&a, e[i]);
    nana_quic_admit_counts(&a, &total, &untrusted, &evicted, &refused);
    assert_int_equal(total, 0);
    assert_int_equal(untrusted, 0);
    assert_int_equal(a.naddrs, 0);
    nana_quic_admit_free(&a);
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
        cmocka_unit_test(test_admit_prefixes),
        cmocka_unit_test(test_core_short_initial_coalesced),
    };
    if (argc > 1) cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, qt_group_setup, qt_group_teardown);
}
