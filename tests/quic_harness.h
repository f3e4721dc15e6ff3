/*
 * quic_harness.h - real QUIC endpoints on loopback for the transport tests:
 * test certificates (a CA, a server certificate, client certificates from
 * the CA and from another CA), an echo server, and a client that waits for
 * events on the test's thread. Include after <cmocka.h>.
 *
 * The echo server sends back every byte of every stream as it arrives and
 * FINs when the client does. The client's callbacks run on its I/O thread
 * and record what happened under a mutex; the test thread waits on a
 * condition variable with a deadline, so no test can hang.
 */
#ifndef NANA_QUIC_HARNESS_H
#define NANA_QUIC_HARNESS_H

#include "auth/nana_certgen.h"
#include "quic/nana_quic.h"
#include "test_util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- certificates ------------------------------------------------------ */

typedef struct qt_certs {
    char dir[400];
    char ca[512], ca_key[512];
    char server[512], server_key[512];
    char client[512], client_key[512];
    char other_ca[512], other_ca_key[512];
    char rogue[512], rogue_key[512]; /* a client certificate from other_ca */
} qt_certs;

static inline void qt_path(char *out, size_t n, const char *dir, const char *name)
{
    snprintf(out, n, "%s/%s", dir, name);
}

/* Makes every certificate the tests use in a fresh scratch directory. */
static inline int qt_make_certs(qt_certs *c)
{
    const char *tmp = getenv("NANA_TEST_TMP");
    snprintf(c->dir, sizeof(c->dir), "%s/quic-certs-%d", tmp && tmp[0] ? tmp : "/tmp",
             (int)getpid());
    char *const paths[NANA_DEV_FILES] = {c->ca,     c->ca_key,     c->server,   c->server_key,
                                         c->client, c->client_key, c->other_ca, c->other_ca_key,
                                         c->rogue,  c->rogue_key};
    for (int i = 0; i < NANA_DEV_FILES; i++)
        qt_path(paths[i], sizeof(c->ca), c->dir, nana_certgen_dev_names[i]);
    if (nana_certgen_dev_set(c->dir, "alice", 2, 1)) {
        fprintf(stderr, "certificates: %s\n", nana_errmsg());
        return -1;
    }
    return 0;
}

static inline void qt_remove_certs(qt_certs *c)
{
    const char *files[] = {c->ca,     c->ca_key,     c->server,   c->server_key,
                           c->client, c->client_key, c->other_ca, c->other_ca_key,
                           c->rogue,  c->rogue_key};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
        unlink(files[i]);
    rmdir(c->dir);
}

/* The certificates of a test program: made once for the whole group. */
static qt_certs certs;

static inline int qt_group_setup(void **state)
{
    (void)state;
    return qt_make_certs(&certs);
}

static inline int qt_group_teardown(void **state)
{
    (void)state;
    qt_remove_certs(&certs);
    return 0;
}

/* ---- the byte pattern streams carry ------------------------------------ */

static inline uint8_t qt_pattern(uint64_t i, uint8_t seed)
{
    return (uint8_t)(i * 131u + (i >> 9) * 7u + seed);
}

static inline void qt_fill(uint8_t *p, size_t n, uint64_t off, uint8_t seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = qt_pattern(off + i, seed);
}

/* ---- echo server ----------------------------------------------------- */

typedef struct qt_server {
    nana_quic_ep *ep;
    uint16_t port;
    pthread_mutex_t mu;
    nana_quic_identity last_id;
    char last_alpn[40];
    atomic_int opens, closes, early_chunks;
    atomic_llong bytes;
} qt_server;

static inline int qt_srv_open(nana_quic_conn *c, void *user)
{
    qt_server *s = user;
    pthread_mutex_lock(&s->mu);
    s->last_id = *nana_quic_conn_identity(c);
    snprintf(s->last_alpn, sizeof(s->last_alpn), "%s", nana_quic_conn_alpn(c));
    pthread_mutex_unlock(&s->mu);
    atomic_fetch_add(&s->opens, 1);
    return 0;
}

static inline void qt_srv_close(nana_quic_conn *c, void *user)
{
    (void)c;
    atomic_fetch_add(&((qt_server *)user)->closes, 1);
}

static inline int qt_srv_data(nana_quic_conn *c, int64_t sid, const uint8_t *data, size_t len,
                              int fin, int early, void *user)
{
    qt_server *s = user;
    if (early) atomic_fetch_add(&s->early_chunks, 1);
    atomic_fetch_add(&s->bytes, (long long)len);
    if (len || fin) return nana_quic_stream_send(c, sid, data, len, fin) ? -1 : 0;
    return 0;
}

/* Fills a server configuration with the test certificates and echo callbacks. */
static inline void qt_server_config(nana_quic_config *cfg, qt_server *s, const qt_certs *cs)
{
    static const nana_quic_callbacks cb = {
        .conn_open = qt_srv_open, .conn_close = qt_srv_close, .stream_data = qt_srv_data};
    static const char *const alpn[] = {"nanasqlite"};
    nana_quic_config_init(cfg);
    cfg->server = 1;
    cfg->host = "127.0.0.1";
    cfg->cert_file = cs->server;
    cfg->key_file = cs->server_key;
    cfg->ca_file = cs->ca;
    cfg->alpn = alpn;
    cfg->nalpn = 1;
    cfg->allow_no_alpn = 1;
    cfg->cb = &cb;
    cfg->user = s;
}

static inline int qt_server_start(qt_server *s, const nana_quic_config *cfg)
{
    pthread_mutex_init(&s->mu, NULL);
    if (nana_quic_ep_new(cfg, &s->ep)) {
        fprintf(stderr, "server: %s\n", nana_errmsg());
        return -1;
    }
    s->port = nana_quic_ep_port(s->ep);
    return 0;
}

static inline void qt_server_stop(qt_server *s)
{
    nana_quic_ep_del(s->ep);
    s->ep = NULL;
    pthread_mutex_destroy(&s->mu);
}

/* ---- client ------------------------------------------------------------ */

#define QT_MAX_STREAMS 1024

typedef struct qt_stream {
    int64_t sid;
    uint8_t seed;
    uint64_t received;
    bool mismatch;
    bool fin;
    bool closed;
} qt_stream;

typedef struct qt_client {
    nana_quic_ep *ep;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    nana_quic_handle h;
    int opened, closed;
    int peer_error;
    uint64_t peer_code;
    int peer_app;
    int early_accepted;
    char alpn[40];
    qt_stream streams[QT_MAX_STREAMS];
    size_t nstreams;
    uint8_t ticket[8192];
    size_t ticket_len;
    int tickets;
    const char *alpn_list[1]; /* what the configuration points at */
    const char *remote;       /* server address to dial; NULL: 127.0.0.1 */
} qt_client;

static inline void qt_signal(qt_client *cl)
{
    pthread_cond_broadcast(&cl->cv);
}

static inline int qt_cli_open(nana_quic_conn *c, void *user)
{
    qt_client *cl = user;
    pthread_mutex_lock(&cl->mu);
    cl->opened = 1;
    cl->early_accepted = nana_quic_conn_early_accepted(c);
    snprintf(cl->alpn, sizeof(cl->alpn), "%s", nana_quic_conn_alpn(c));
    qt_signal(cl);
    pthread_mutex_unlock(&cl->mu);
    return 0;
}

static inline void qt_cli_close(nana_quic_conn *c, void *user)
{
    qt_client *cl = user;
    pthread_mutex_lock(&cl->mu);
    cl->closed = 1;
    cl->peer_error = nana_quic_conn_peer_error(c, &cl->peer_code, &cl->peer_app);
    qt_signal(cl);
    pthread_mutex_unlock(&cl->mu);
}

static inline qt_stream *qt_find(qt_client *cl, int64_t sid)
{
    for (size_t i = 0; i < cl->nstreams; i++)
        if (cl->streams[i].sid == sid) return &cl->streams[i];
    return NULL;
}

static inline int qt_cli_data(nana_quic_conn *c, int64_t sid, const uint8_t *data, size_t len,
                              int fin, int early, void *user)
{
    (void)c;
    (void)early;
    qt_client *cl = user;
    pthread_mutex_lock(&cl->mu);
    qt_stream *s = qt_find(cl, sid);
    if (s) {
        for (size_t i = 0; i < len && !s->mismatch; i++)
            if (data[i] != qt_pattern(s->received + i, s->seed)) s->mismatch = true;
        s->received += len;
        if (fin) {
            s->fin = true;
            qt_signal(cl);
        }
    }
    pthread_mutex_unlock(&cl->mu);
    return 0;
}

static inline void qt_cli_stream_close(nana_quic_conn *c, int64_t sid, uint64_t err, void *user)
{
    (void)c;
    (void)err;
    qt_client *cl = user;
    pthread_mutex_lock(&cl->mu);
    qt_stream *s = qt_find(cl, sid);
    if (s) s->closed = true;
    qt_signal(cl);
    pthread_mutex_unlock(&cl->mu);
}

static inline void qt_cli_ticket(nana_quic_conn *c, const uint8_t *data, size_t len, void *user)
{
    (void)c;
    qt_client *cl = user;
    pthread_mutex_lock(&cl->mu);
    if (len <= sizeof(cl->ticket)) {
        memcpy(cl->ticket, data, len);
        cl->ticket_len = len;
        cl->tickets++;
    }
    qt_signal(cl);
    pthread_mutex_unlock(&cl->mu);
}

/* Resets |cl| and fills a client configuration trusting the test CA that
 * reports to |cl|; |cert|/|key| for mTLS. */
static inline void qt_client_config(nana_quic_config *cfg, qt_client *cl, const qt_certs *cs,
                                    const char *alpn, const char *cert, const char *key)
{
    static const nana_quic_callbacks cb = {.conn_open = qt_cli_open,
                                           .conn_close = qt_cli_close,
                                           .stream_data = qt_cli_data,
                                           .stream_close = qt_cli_stream_close,
                                           .session_ticket = qt_cli_ticket};
    memset(cl, 0, sizeof(*cl));
    pthread_mutex_init(&cl->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&cl->cv, &ca);
    pthread_condattr_destroy(&ca);
    nana_quic_config_init(cfg);
    cl->alpn_list[0] = alpn;
    cfg->ca_file = cs->ca;
    cfg->cert_file = cert;
    cfg->key_file = key;
    cfg->alpn = alpn ? cl->alpn_list : NULL;
    cfg->nalpn = alpn ? 1 : 0;
    cfg->cb = &cb;
    cfg->user = cl;
}

/* Starts a client endpoint trusting the test CA; |cert|/|key| for mTLS. */
static inline int qt_client_start(qt_client *cl, const qt_certs *cs, const char *alpn,
                                  const char *cert, const char *key)
{
    nana_quic_config cfg;
    qt_client_config(&cfg, cl, cs, alpn, cert, key);
    if (nana_quic_ep_new(&cfg, &cl->ep)) {
        fprintf(stderr, "client: %s\n", nana_errmsg());
        return -1;
    }
    return 0;
}

static inline void qt_client_stop(qt_client *cl)
{
    nana_quic_ep_del(cl->ep);
    cl->ep = NULL;
    pthread_mutex_destroy(&cl->mu);
    pthread_cond_destroy(&cl->cv);
}

/* Resets the per-connection record for another connection. */
static inline void qt_client_reset(qt_client *cl)
{
    pthread_mutex_lock(&cl->mu);
    cl->opened = cl->closed = cl->peer_error = 0;
    cl->peer_code = 0;
    cl->nstreams = 0;
    pthread_mutex_unlock(&cl->mu);
}

static inline int qt_connect(qt_client *cl, uint16_t port, const char *server_name,
                             const uint8_t *ticket, size_t ticket_len)
{
    qt_client_reset(cl);
    return nana_quic_connect(cl->ep, cl->remote ? cl->remote : "127.0.0.1", port, server_name,
                             ticket, ticket_len, NULL, &cl->h);
}

/* Starts a client (as qt_client_start) and connects it to the test server
 * on |port|, verifying the name |server_name|. */
static inline int qt_dial(qt_client *cl, const qt_certs *cs, const char *alpn, const char *cert,
                          const char *key, uint16_t port, const char *server_name)
{
    if (qt_client_start(cl, cs, alpn, cert, key)) return -1;
    return qt_connect(cl, port, server_name, NULL, 0);
}

/* Waits until *flag (read under the mutex) is nonzero, at most |ms|. */
static inline int qt_wait_flag(qt_client *cl, const int *flag, int ms)
{
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += ms / 1000;
    dl.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&cl->mu);
    int rc = 0;
    while (!*flag && rc == 0)
        rc = pthread_cond_timedwait(&cl->cv, &cl->mu, &dl);
    int v = *flag;
    pthread_mutex_unlock(&cl->mu);
    return v;
}

/* ---- running code on the client's I/O thread --------------------------- */

typedef struct qt_call {
    qt_client *cl;
    void (*fn)(struct qt_call *k, nana_quic_conn *c);
    atomic_int done;
    int rc;
    /* arguments / results */
    size_t nstreams, size;
    uint8_t seed;
    uint64_t sent;   /* pump: bytes queued so far */
    uint64_t window; /* pump: unacked bytes allowed */
    int64_t sid;
} qt_call;

static inline void qt_call_tramp(nana_quic_conn *c, void *arg)
{
    qt_call *k = arg;
    if (!c)
        k->rc = -1;
    else
        k->fn(k, c);
    atomic_store(&k->done, 1);
}

/* Runs k->fn on the connection's I/O thread and waits (at most 10 s). */
static inline int qt_call_run(qt_call *k)
{
    atomic_store(&k->done, 0);
    k->rc = 0;
    if (nana_quic_post(k->cl->ep, k->cl->h, qt_call_tramp, k)) return -1;
    for (int i = 0; i < 100000 && !atomic_load(&k->done); i++)
        usleep(100);
    return atomic_load(&k->done) ? k->rc : -1;
}

/* Opens up to k->nstreams streams (fewer when the peer's stream limit is
 * reached: k->nstreams is lowered to what was opened) and sends k->size
 * pattern bytes + FIN on each. */
static inline void qt_fn_send_streams(qt_call *k, nana_quic_conn *c)
{
    qt_client *cl = k->cl;
    uint8_t *buf = malloc(k->size ? k->size : 1);
    if (!buf) {
        k->rc = -1;
        return;
    }
    size_t opened = 0;
    for (; opened < k->nstreams; opened++) {
        int64_t sid;
        int rc = nana_quic_stream_open(c, &sid);
        if (rc == NANA_ERR_BUSY) break; /* wait for the peer's MAX_STREAMS */
        if (rc || cl->nstreams == QT_MAX_STREAMS) {
            k->rc = -1;
            break;
        }
        pthread_mutex_lock(&cl->mu);
        qt_stream *s = &cl->streams[cl->nstreams++];
        memset(s, 0, sizeof(*s));
        s->sid = sid;
        s->seed = (uint8_t)(k->seed + cl->nstreams);
        pthread_mutex_unlock(&cl->mu);
        qt_fill(buf, k->size, 0, s->seed);
        if (nana_quic_stream_send(c, sid, buf, k->size, 1)) {
            k->rc = -1;
            break;
        }
    }
    k->nstreams = opened;
    free(buf);
}

/* Pump for big transfers: queues pattern bytes on k->sid while fewer than
 * k->window are unacknowledged, FIN after k->size. */
static inline void qt_fn_pump(qt_call *k, nana_quic_conn *c)
{
    static uint8_t chunk[256 * 1024];
    while (k->sent < k->size && nana_quic_stream_unacked(c, k->sid) < k->window) {
        size_t n = k->size - k->sent < sizeof(chunk) ? (size_t)(k->size - k->sent) : sizeof(chunk);
        qt_fill(chunk, n, k->sent, k->seed);
        if (nana_quic_stream_send(c, k->sid, chunk, n, k->sent + n == k->size)) {
            k->rc = -1;
            return;
        }
        k->sent += n;
    }
}

static inline void qt_fn_open_one(qt_call *k, nana_quic_conn *c)
{
    qt_client *cl = k->cl;
    if (nana_quic_stream_open(c, &k->sid)) {
        k->rc = -1;
        return;
    }
    pthread_mutex_lock(&cl->mu);
    qt_stream *s = &cl->streams[cl->nstreams++];
    memset(s, 0, sizeof(*s));
    s->sid = k->sid;
    s->seed = k->seed;
    pthread_mutex_unlock(&cl->mu);
}

/* Waits until every stream got its FIN (or ms pass); returns how many did. */
static inline size_t qt_wait_fins(qt_client *cl, int ms)
{
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += ms / 1000;
    pthread_mutex_lock(&cl->mu);
    for (;;) {
        size_t fins = 0;
        for (size_t i = 0; i < cl->nstreams; i++)
            fins += cl->streams[i].fin;
        if (fins == cl->nstreams || cl->closed) {
            pthread_mutex_unlock(&cl->mu);
            return fins;
        }
        if (pthread_cond_timedwait(&cl->cv, &cl->mu, &dl) != 0) {
            pthread_mutex_unlock(&cl->mu);
            return fins;
        }
    }
}

/* Sends |nstreams| x |size| bytes and checks every echo byte. */
static inline int qt_echo(qt_client *cl, size_t nstreams, size_t size, uint8_t seed)
{
    size_t first = cl->nstreams, done = 0;
    for (int tries = 0; done < nstreams && tries < 5000; tries++) {
        qt_call k = {.cl = cl,
                     .fn = qt_fn_send_streams,
                     .nstreams = nstreams - done,
                     .size = size,
                     .seed = seed};
        if (qt_call_run(&k)) return -1;
        done += k.nstreams;
        if (done < nstreams) usleep(2000);
    }
    if (done < nstreams) return -4;
    if (qt_wait_fins(cl, 20000) != cl->nstreams) return -2;
    for (size_t i = first; i < cl->nstreams; i++)
        if (cl->streams[i].mismatch || cl->streams[i].received != size) return -3;
    return 0;
}

#endif
