/*
 * quic_vnet.h - the virtual network the QUIC core tests run on: a server
 * and a client endpoint built detached (no I/O thread, no socket), whose
 * shards send into an in-memory queue this header owns, and a clock the
 * test advances. Every run is deterministic and takes virtual seconds,
 * not real ones; loss, blocked directions and address changes are decided
 * packet by packet. Include after <cmocka.h> and quic_harness.h (its
 * certificates and echo server are the defaults vn_start builds; a tweak
 * function may replace the callbacks, as the HTTP/3 tests do).
 */
#ifndef NANA_QUIC_VNET_H
#define NANA_QUIC_VNET_H

#include "quic/quic_int.h"

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

static inline void vn_send(nana_quic_tx *tx, const ngtcp2_path *path, const uint8_t *data,
                           size_t len, size_t seg)
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

static inline void set_addr(ngtcp2_sockaddr_union *a, const char *ip, uint16_t port)
{
    memset(a, 0, sizeof(*a));
    a->in.sin_family = AF_INET;
    a->in.sin_port = htons(port);
    inet_pton(AF_INET, ip, &a->in.sin_addr);
}

/* Hands one datagram to the shard it is addressed to. */
static inline void vn_deliver_to(vnet *n, int to, const uint8_t *data, size_t len)
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

static inline void vn_flush(vnet *n)
{
    nana_quic_shard_flush(&n->srv->shards[0], n->now);
    nana_quic_shard_flush(&n->cli->shards[0], n->now);
}

/* Attaches an endpoint's single shard to the network. */
static inline void vn_attach(vnet *n, nana_quic_ep *ep, int to, const ngtcp2_sockaddr_union *local)
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
static inline bool vn_run(vnet *n, vn_cond cond, uint64_t max_ms)
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
static inline void vn_start(vnet *n, void (*srv_tweak)(nana_quic_config *),
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

static inline void vn_stop(vnet *n)
{
    nana_quic_ep_del(n->cli);
    nana_quic_ep_del(n->srv);
    pthread_mutex_destroy(&n->s.mu);
    pthread_mutex_destroy(&n->c.mu);
    pthread_cond_destroy(&n->c.cv);
    free(n->q);
}

/* Starts a client connection to the server; returns it. */
static inline nana_quic_conn *vn_connect(vnet *n)
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

static inline bool cli_opened(vnet *n)
{
    return n->c.opened;
}

static inline bool cli_closed(vnet *n)
{
    return n->c.closed;
}

static inline bool srv_empty(vnet *n)
{
    return atomic_load(&n->srv->conns) == 0;
}

static inline bool all_fins(vnet *n)
{
    for (size_t i = 0; i < n->c.nstreams; i++)
        if (!n->c.streams[i].fin) return false;
    return n->c.nstreams > 0;
}

/* Connects and runs until the client sees the connection open. */
static inline nana_quic_conn *vn_open(vnet *n)
{
    nana_quic_conn *c = vn_connect(n);
    assert_true(vn_run(n, cli_opened, 5000));
    return c;
}

/* Opens a stream and queues |len| pattern bytes and a FIN on it. */
static inline qt_stream *send_stream(vnet *n, nana_quic_conn *c, size_t len)
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
static inline nana_quic_conn *srv_conn(vnet *n)
{
    nana_quic_conn *c = n->srv->shards[0].conns;
    assert_non_null(c);
    return c;
}

#endif
