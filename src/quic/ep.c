/*
 * ep.c - the public endpoint functions: configuration and its defaults,
 * building and freeing an endpoint, its port, statistics and CPU time.
 *
 * An endpoint is its configuration, the TLS material and one shard per I/O
 * thread; io.c puts each shard on an event loop of its own. Statistics are
 * counters only a shard's thread writes, so each thread copies its own when
 * asked (a post) and the packet path pays nothing for them.
 */
#include "quic/io_int.h"

#include "util/nana_time.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void nana_quic_config_init(nana_quic_config *c)
{
    memset(c, 0, sizeof(*c));
    c->threads = 1;
    c->max_connections = 10000;
    c->max_conns_per_addr = 256;
    c->max_untrusted = 1024;
    c->untrusted_timeout_ms = 10000;
    c->max_streams_bidi = 100;
    c->stream_window = (uint64_t)1 << 20;
    c->conn_window = (uint64_t)16 << 20;
    c->idle_timeout_ms = 30000;
    c->handshake_timeout_ms = 10000;
    c->max_stream_send_buffer = (size_t)64 << 20;
    c->retry = NANA_QUIC_RETRY_AUTO;
    c->retry_threshold = 256;
}

/* Fills the zero fields of |c| with defaults and checks the rest. */
static int settle_config(nana_quic_config *c)
{
    nana_quic_config d;
    nana_quic_config_init(&d);
    if (!c->threads) c->threads = 1;
    if (!c->server) c->threads = 1;
    if (c->threads > NANA_Q_MAX_SHARDS)
        return nana_err_set(NANA_ERR_INVALID, "at most %d I/O threads", NANA_Q_MAX_SHARDS);
    if (!c->max_connections) c->max_connections = d.max_connections;
    if (!c->max_conns_per_addr) c->max_conns_per_addr = d.max_conns_per_addr;
    if (!c->max_untrusted) c->max_untrusted = d.max_untrusted;
    if (!c->untrusted_timeout_ms) c->untrusted_timeout_ms = d.untrusted_timeout_ms;
    if (!c->max_streams_bidi) c->max_streams_bidi = d.max_streams_bidi;
    if (!c->stream_window) c->stream_window = d.stream_window;
    if (!c->conn_window) c->conn_window = d.conn_window;
    if (!c->idle_timeout_ms) c->idle_timeout_ms = d.idle_timeout_ms;
    if (!c->handshake_timeout_ms) c->handshake_timeout_ms = d.handshake_timeout_ms;
    if (!c->max_stream_send_buffer) c->max_stream_send_buffer = d.max_stream_send_buffer;
    if (!c->retry_threshold) c->retry_threshold = d.retry_threshold;
    if (c->stream_window > c->conn_window)
        return nana_err_set(NANA_ERR_INVALID, "stream_window must not exceed conn_window");
    return NANA_OK;
}

void nana_quic_ep_del(nana_quic_ep *ep)
{
    if (!ep) return;
    atomic_store(&ep->closing, true);
    if (ep->shards) {
        nana_quic_io_stop(ep);
        for (unsigned i = 0; i < ep->nshards; i++) {
            nana_quic_shard_free(&ep->shards[i]);
            nana_quic_io_teardown(&ep->shards[i]);
        }
        free(ep->shards);
    }
    nana_admit_free(&ep->admit);
    nana_quic_tls_free(&ep->tls);
    sodium_memzero(ep->secret, sizeof(ep->secret));
    free(ep);
}

/* Builds an endpoint; with |start_io| also its sockets and I/O threads.
 * The caller owns *out (nana_quic_ep_del). */
static int ep_build(const nana_quic_config *cfg, bool start_io, nana_quic_ep **out)
{
    *out = NULL;
    if (sodium_init() < 0) return nana_err_set(NANA_ERR_INTERNAL, "libsodium failed to start");
    nana_quic_ep *ep = calloc(1, sizeof(*ep));
    if (!ep) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    ep->cfg = *cfg;
    ep->debug = getenv("NANA_QUIC_DEBUG") != NULL;
    int rc = settle_config(&ep->cfg);
    if (rc) goto fail;
    if (cfg->cb) ep->cb = *cfg->cb;
    ep->cfg.cb = &ep->cb;
    if (cfg->static_secret)
        memcpy(ep->secret, cfg->static_secret, NANA_Q_SECRETLEN);
    else
        randombytes_buf(ep->secret, NANA_Q_SECRETLEN);
    if ((rc = nana_quic_tls_init(&ep->tls, &ep->cfg))) goto fail;
    if ((rc = nana_admit_init(&ep->admit, ep->cfg.max_connections, ep->cfg.max_conns_per_addr,
                              ep->cfg.max_untrusted)))
        goto fail;
    ep->nshards = ep->cfg.threads;
    ep->shards = calloc(ep->nshards, sizeof(*ep->shards));
    if (!ep->shards) {
        rc = nana_err_set(NANA_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (unsigned i = 0; i < ep->nshards; i++)
        if ((rc = nana_quic_shard_init(&ep->shards[i], ep, i))) goto fail;
    if (start_io && (rc = nana_quic_io_start(ep))) goto fail;
    *out = ep;
    return NANA_OK;
fail : {
    char msg[NANA_ERRMSG_MAX];
    snprintf(msg, sizeof(msg), "%s", nana_errmsg());
    nana_quic_ep_del(ep);
    return nana_err_set_str(rc, msg);
}
}

int nana_quic_ep_new(const nana_quic_config *cfg, nana_quic_ep **out)
{
    return ep_build(cfg, true, out);
}

int nana_quic_ep_new_detached(const nana_quic_config *cfg, nana_quic_ep **out)
{
    return ep_build(cfg, false, out);
}

uint16_t nana_quic_ep_port(const nana_quic_ep *ep)
{
    return ep->port;
}

/* Adds one shard's counters to |out|. */
static void stats_add(nana_quic_stats *out, const nana_quic_stats *s)
{
    out->conns_accepted += s->conns_accepted;
    out->conns_open += s->conns_open;
    out->conns_refused += s->conns_refused;
    out->retries_sent += s->retries_sent;
    out->vn_sent += s->vn_sent;
    out->resets_sent += s->resets_sent;
    out->packets_dropped += s->packets_dropped;
    out->handshakes_done += s->handshakes_done;
    out->early_accepted += s->early_accepted;
    out->migrations += s->migrations;
    out->datagrams_in += s->datagrams_in;
    out->datagrams_out += s->datagrams_out;
    out->sendmsg_calls += s->sendmsg_calls;
    out->datagrams_unsent += s->datagrams_unsent;
    out->conns_evicted += s->conns_evicted;
    out->untrusted_timeouts += s->untrusted_timeouts;
}

typedef struct stats_req stats_req;

/* One I/O thread's part of a statistics request: the post it runs. */
typedef struct stats_ask {
    struct nana_loop_post post; /* first */
    stats_req *r;
    nana_quic_shard *sh;
} stats_ask;

/*
 * A request for the counters of every I/O thread. The counters are plain
 * fields that only their thread writes, so only that thread may read them
 * while it runs: each thread copies its own into its slot here. The caller
 * may stop waiting before every thread answered, so the last of the caller
 * and the threads to let go frees it.
 */
struct stats_req {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned refs;    /* the caller + threads that still hold it */
    unsigned waiting; /* threads yet to answer */
    nana_quic_stats st[NANA_Q_MAX_SHARDS];
    bool answered[NANA_Q_MAX_SHARDS];
    stats_ask ask[NANA_Q_MAX_SHARDS];
};

/* Lets go of a request; frees it if nobody else holds it. */
static void stats_req_release(stats_req *r)
{
    pthread_mutex_lock(&r->mu);
    bool last = --r->refs == 0;
    pthread_mutex_unlock(&r->mu);
    if (!last) return;
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
}

/* On an I/O thread: copies its counters into the request (cancelled: no
 * answer, the request is only let go). */
static void do_stats(nana_loop *loop, struct nana_loop_post *p)
{
    stats_ask *a = (stats_ask *)p;
    stats_req *r = a->r;
    pthread_mutex_lock(&r->mu);
    if (loop) {
        r->st[a->sh->index] = a->sh->st;
        r->answered[a->sh->index] = true;
    }
    r->waiting--;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    stats_req_release(r);
}

int nana_quic_ep_stats(nana_quic_ep *ep, nana_quic_stats *out)
{
    memset(out, 0, sizeof(*out));
    stats_req *r = calloc(1, sizeof(*r));
    if (!r) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&r->mu, NULL);
    nana_cond_init_monotonic(&r->cv);
    r->refs = 1;
    int rc = NANA_OK;
    for (unsigned i = 0; i < ep->nshards; i++) {
        nana_quic_shard *sh = &ep->shards[i];
        if (!sh->io || nana_loop_on_thread(sh->io->loop)) {
            /* No thread (detached), or this is it. */
            r->st[i] = sh->st;
            r->answered[i] = true;
            continue;
        }
        r->ask[i] = (stats_ask){.post.run = do_stats, .r = r, .sh = sh};
        pthread_mutex_lock(&r->mu);
        r->refs++;
        r->waiting++;
        pthread_mutex_unlock(&r->mu);
        if (nana_loop_post_open(sh->io->loop, &r->ask[i].post)) {
            pthread_mutex_lock(&r->mu);
            r->refs--;
            r->waiting--;
            pthread_mutex_unlock(&r->mu);
            rc = nana_err_set(NANA_ERR_CLOSED, "the endpoint is shutting down");
        }
    }
    struct timespec dl = nana_timespec_at(nana_loop_clock() + NANA_QUIC_STATS_WAIT_MS * 1000000ull);
    pthread_mutex_lock(&r->mu);
    while (r->waiting && pthread_cond_timedwait(&r->cv, &r->mu, &dl) == 0) {
    }
    if (r->waiting && !rc)
        rc = nana_err_set(NANA_ERR_BUSY, "%u I/O threads did not report within %d ms", r->waiting,
                          NANA_QUIC_STATS_WAIT_MS);
    for (unsigned i = 0; i < ep->nshards; i++)
        if (r->answered[i]) stats_add(out, &r->st[i]);
    pthread_mutex_unlock(&r->mu);
    stats_req_release(r);
    unsigned total, untrusted;
    uint64_t evicted, refused;
    nana_admit_counts(&ep->admit, &total, &untrusted, &evicted, &refused);
    out->conns_untrusted = untrusted;
    return rc;
}

uint64_t nana_quic_ep_cpu_ns(nana_quic_ep *ep)
{
    uint64_t total = 0;
    for (unsigned i = 0; i < ep->nshards; i++)
        if (ep->shards[i].io) total += nana_loop_cpu_ns(ep->shards[i].io->loop);
    return total;
}
