/*
 * fuzz_quic.c - libFuzzer harness for the QUIC datagram entry of a server
 * shard (nana_quic_shard_recv): every byte a client can put in a UDP
 * datagram reaches it first.
 *
 * Big idea: the server runs detached (no socket, no thread) with a sink and
 * a clock of our own, as tests/unit/test_quic_core.c drives it, and keeps
 * one live connection with a detached client, so a datagram can be aimed at
 * a known connection as well as at nothing. An input is a list of
 * datagrams, each "mode byte, 16-bit length, bytes". The mode can write the
 * live connection's ID into the datagram (short or long header), force a
 * version-1 long header or a short header, and move the clock forward, so
 * the fuzzer reaches connection reads (the short-Initial trim, decryption
 * failures), Initial acceptance, Version Negotiation, Retry checks,
 * stateless resets and timers without learning the random connection IDs.
 * ASan and UBSan watch every read; the sink checks that nothing larger than
 * a datagram leaves.
 */
#include "quic/quic_int.h"
#include "quic_harness.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FQ_MAX_DGRAM 2048
#define FQ_QCAP      256                        /* datagrams the setup's network holds */
#define FQ_REBUILD   ((uint64_t)20 * NANA_Q_NS) /* a fresh pair after this much virtual time */

enum {
    M_LIVE_CID = 1 << 0, /* write the live connection's ID as the DCID */
    M_LONG_V1 = 1 << 1,  /* long header, version 1 */
    M_SHORT = 1 << 2,    /* short header */
    M_TIME_SHIFT = 3,    /* the rest: milliseconds the clock moves first */
};

typedef struct fq_dgram {
    int to; /* 0: server, 1: client */
    size_t len;
    uint8_t data[NANA_Q_MAX_UDP];
} fq_dgram;

typedef struct fq_side {
    nana_quic_tx tx; /* first: the shard calls tx->send with this pointer */
    int to;
} fq_side;

/* Everything that lives across inputs (libFuzzer runs them in one process). */
static struct {
    bool ready;
    qt_certs certs;
    qt_server s;
    qt_client c;
    nana_quic_ep *srv, *cli;
    fq_side side[2];
    ngtcp2_sockaddr_union srv_addr, cli_addr;
    fq_dgram *q;
    size_t qlen;
    bool capture; /* setup: keep what is sent; fuzzing: drop it */
    uint64_t now, born;
} fq;

static void fq_send(nana_quic_tx *tx, const ngtcp2_path *path, const uint8_t *data, size_t len,
                    size_t seg)
{
    (void)path;
    fq_side *sd = (fq_side *)tx;
    for (size_t off = 0; off < len; off += seg) {
        size_t l = len - off < seg ? len - off : seg;
        if (l > NANA_Q_MAX_UDP) abort(); /* never a datagram larger than we promise */
        if (!fq.capture || fq.qlen == FQ_QCAP) continue;
        fq_dgram *d = &fq.q[fq.qlen++];
        d->to = sd->to;
        d->len = l;
        memcpy(d->data, data + off, l);
    }
}

static void fq_addr(ngtcp2_sockaddr_union *a, const char *ip, uint16_t port)
{
    memset(a, 0, sizeof(*a));
    a->in.sin_family = AF_INET;
    a->in.sin_port = htons(port);
    inet_pton(AF_INET, ip, &a->in.sin_addr);
}

/* Hands one datagram to the server (to == 0) or the client. */
static void fq_deliver(int to, const uint8_t *p, size_t len)
{
    ngtcp2_path path;
    path.local.addr = to == 0 ? &fq.srv_addr.sa : &fq.cli_addr.sa;
    path.remote.addr = to == 0 ? &fq.cli_addr.sa : &fq.srv_addr.sa;
    path.local.addrlen = path.remote.addrlen = sizeof(struct sockaddr_in);
    path.user_data = NULL;
    nana_quic_ep *ep = to == 0 ? fq.srv : fq.cli;
    nana_quic_shard_recv(&ep->shards[0], &path, p, len, 0, fq.now);
}

static void fq_attach(nana_quic_ep *ep, int to, const ngtcp2_sockaddr_union *local)
{
    nana_quic_shard *sh = &ep->shards[0];
    fq.side[to].tx.send = fq_send;
    fq.side[to].to = to;
    sh->tx = &fq.side[to].tx;
    memcpy(&sh->local, local, sizeof(struct sockaddr_in));
    sh->local_len = sizeof(struct sockaddr_in);
}

static void fq_flush(void)
{
    nana_quic_shard_flush(&fq.srv->shards[0], fq.now);
    nana_quic_shard_flush(&fq.cli->shards[0], fq.now);
}

static void fq_teardown(void)
{
    nana_quic_ep_del(fq.cli);
    nana_quic_ep_del(fq.srv);
    fq.cli = fq.srv = NULL;
    pthread_mutex_destroy(&fq.s.mu);
    pthread_mutex_destroy(&fq.c.mu);
    pthread_cond_destroy(&fq.c.cv);
}

/* A server and a client with one open connection between them. */
static void fq_build(void)
{
    static const uint8_t secret[NANA_Q_SECRETLEN] = {7, 7, 7};
    nana_quic_config cfg;
    memset(&fq.s, 0, sizeof(fq.s));
    qt_server_config(&cfg, &fq.s, &fq.certs);
    cfg.retry = NANA_QUIC_RETRY_NEVER;
    cfg.static_secret = secret;
    cfg.max_connections = 64;
    pthread_mutex_init(&fq.s.mu, NULL);
    if (nana_quic_ep_new_detached(&cfg, &fq.srv)) abort();
    qt_client_config(&cfg, &fq.c, &fq.certs, "nanasqlite", NULL, NULL);
    if (nana_quic_ep_new_detached(&cfg, &fq.cli)) abort();
    fq_attach(fq.srv, 1, &fq.srv_addr);
    fq_attach(fq.cli, 0, &fq.cli_addr);
    nana_quic_shard *sh = &fq.cli->shards[0];
    nana_quic_conn *c = NULL;
    if (nana_quic_conn_connect(sh, &fq.srv_addr.sa, sizeof(struct sockaddr_in), "localhost", NULL,
                               0, NULL, nana_quic_shard_new_handle(sh), fq.now, &c))
        abort();
    nana_quic_shard_dirty(sh, c);
    fq.capture = true;
    fq_flush();
    for (int round = 0; round < 64 && fq.qlen; round++) {
        static fq_dgram batch[FQ_QCAP];
        size_t n = fq.qlen;
        memcpy(batch, fq.q, n * sizeof(*batch));
        fq.qlen = 0;
        for (size_t i = 0; i < n; i++)
            fq_deliver(batch[i].to, batch[i].data, batch[i].len);
        fq.now += 50 * 1000;
        fq_flush();
    }
    fq.capture = false;
    fq.qlen = 0;
    if (!fq.c.opened) abort(); /* the setup itself must work */
    fq.born = fq.now;
}

static void fq_remove_certs(void)
{
    qt_remove_certs(&fq.certs);
}

static void fq_init(void)
{
    fq.q = calloc(FQ_QCAP, sizeof(*fq.q));
    if (!fq.q || qt_make_certs(&fq.certs)) abort();
    atexit(fq_remove_certs);
    fq_addr(&fq.srv_addr, "192.0.2.1", 4433);
    fq_addr(&fq.cli_addr, "192.0.2.2", 50000);
    fq.now = 1000 * NANA_Q_NS;
    fq_build();
    fq.ready = true;
}

/* The live connection's server-side ID as the client addresses it, or NULL. */
static const ngtcp2_cid *fq_live_cid(void)
{
    nana_quic_conn *c = fq.cli->shards[0].conns;
    if (!c || c->dead || c->state != CONN_OPEN) return NULL;
    return ngtcp2_conn_get_dcid(c->q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!fq.ready) fq_init();
    if (!fq_live_cid() || fq.now - fq.born > FQ_REBUILD) {
        fq_teardown();
        fq_build();
    }
    static uint8_t d[FQ_MAX_DGRAM];
    size_t off = 0;
    while (off + 3 <= size) {
        uint8_t mode = data[off];
        size_t len = ((size_t)data[off + 1] << 8) | data[off + 2];
        off += 3;
        if (len > size - off) len = size - off;
        if (len > sizeof(d)) len = sizeof(d);
        if (!len) continue;
        memcpy(d, data + off, len);
        off += len;
        if ((mode & M_LONG_V1) && len >= 5) {
            d[0] |= 0xc0;
            d[1] = 0, d[2] = 0, d[3] = 0, d[4] = 1;
        } else if (mode & M_SHORT) {
            d[0] = (uint8_t)(0x40 | (d[0] & 0x3f));
        }
        const ngtcp2_cid *cid = (mode & M_LIVE_CID) ? fq_live_cid() : NULL;
        if (cid && !(d[0] & 0x80) && len > 1 + cid->datalen) {
            memcpy(d + 1, cid->data, cid->datalen);
        } else if (cid && (d[0] & 0x80) && len > 6 + cid->datalen) {
            d[5] = (uint8_t)cid->datalen;
            memcpy(d + 6, cid->data, cid->datalen);
        }
        fq.now += (uint64_t)(mode >> M_TIME_SHIFT) * 1000000;
        /* The copy is exactly |len| bytes long: ASan sees any read past it. */
        uint8_t *exact = malloc(len);
        if (!exact) abort();
        memcpy(exact, d, len);
        fq_deliver(0, exact, len);
        free(exact);
        fq_flush();
    }
    return 0;
}
