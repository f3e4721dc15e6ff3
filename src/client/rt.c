/*
 * rt.c - a client runtime: one QUIC client endpoint (one UDP socket, one
 * I/O thread) shared by every connection of a client or a pool, and one
 * maintenance thread that wakes when something is due: a call's timeout,
 * a reconnect after backoff, a stalled handshake, the pool's upkeep. It
 * sleeps on a condition variable until the earliest such time, so an idle
 * client costs no wake-ups. The endpoint's I/O loop also carries the
 * runtime's TCP connections (gRPC over HTTP/2, h2.c).
 */
#include "client_int.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct nc_rt {
    nana_quic_ep *ep;
    pthread_t thread;
    bool started, stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* wakes the maintenance thread */
    pthread_cond_t idle_cv; /* signalled when a client's tick ends */
    nana_client **clients;
    size_t n, cap;
    nana_client *ticking; /* the client being ticked now, if any */
    uint64_t wake_at;     /* when the thread will look next */
    void (*tick)(void *arg);
    void *tick_arg;
    unsigned tick_ms;
    /* gRPC: the HTTP/3 states that are connections' data now (I/O thread only) */
    void **h3s;
    size_t nh3, caph3;
    /* HTTP/2 on TCP: the TLS settings (strings copied) and the live
     * connections by handle (I/O thread only) */
    nana_tcp_client_config tcp;
    char *ca_file, *cert_file, *key_file;
    struct h2_entry {
        nana_quic_handle h;
        nch2_conn *conn;
    } * h2s;
    size_t nh2, caph2;
    /* AUTO: servers (by address and port) whose QUIC got no answer, and until
     * when new attempts to them go straight to HTTP/2 (a leaf lock) */
    pthread_mutex_t quiet_mu;
    struct quiet_entry {
        char addr[INET6_ADDRSTRLEN];
        uint16_t port;
        uint64_t until;
    } quiet[NANA_POOL_MAX_NODES];
};

nana_quic_ep *nc_rt_ep(nc_rt *rt)
{
    return rt->ep;
}

/* Waits on |cv| until |when| (monotonic ns). */
static void wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, uint64_t when)
{
    if (when == UINT64_MAX) {
        pthread_cond_wait(cv, mu);
        return;
    }
    struct timespec ts = nana_timespec_at(when);
    pthread_cond_timedwait(cv, mu, &ts);
}

/* The maintenance thread: runs due client ticks and the pool's upkeep. */
static void *rt_main(void *arg)
{
    nc_rt *rt = arg;
    uint64_t next_tick = rt->tick ? nana_now_ns() + (uint64_t)rt->tick_ms * 1000000ull : UINT64_MAX;
    pthread_mutex_lock(&rt->mu);
    while (!rt->stop) {
        uint64_t now = nana_now_ns();
        uint64_t next = next_tick;
        if (rt->tick && now >= next_tick) {
            pthread_mutex_unlock(&rt->mu);
            rt->tick(rt->tick_arg);
            pthread_mutex_lock(&rt->mu);
            now = nana_now_ns();
            next_tick = now + (uint64_t)rt->tick_ms * 1000000ull;
            next = next_tick;
        }
        for (size_t i = 0; i < rt->n && !rt->stop; i++) {
            nana_client *c = rt->clients[i];
            rt->ticking = c;
            pthread_mutex_unlock(&rt->mu);
            uint64_t want = nc_client_tick(c, now);
            pthread_mutex_lock(&rt->mu);
            rt->ticking = NULL;
            pthread_cond_broadcast(&rt->idle_cv);
            if (want < next) next = want;
        }
        /* A wake asked for while we ticked stands. */
        if (rt->wake_at && rt->wake_at < next) next = rt->wake_at;
        rt->wake_at = next;
        if (next > nana_now_ns() && !rt->stop) wait_until(&rt->cv, &rt->mu, next);
        rt->wake_at = 0;
    }
    pthread_mutex_unlock(&rt->mu);
    return NULL;
}

int nc_rt_new(const nana_client_opts *o, int family, void (*tick)(void *arg), void *tick_arg,
              unsigned tick_ms, nc_rt **out, nana_result *err)
{
    nc_rt *rt = calloc(1, sizeof(*rt));
    if (!rt) return nc_result_error(err, NANA_CLIENT_ENOMEM, "out of memory");
    pthread_mutex_init(&rt->mu, NULL);
    pthread_mutex_init(&rt->quiet_mu, NULL);
    nana_cond_init_monotonic(&rt->cv);
    pthread_cond_init(&rt->idle_cv, NULL);
    rt->tick = tick;
    rt->tick_arg = tick_arg;
    rt->tick_ms = tick_ms ? tick_ms : 1000;
    nana_quic_config qc;
    nana_quic_config_init(&qc);
    qc.host = family == AF_INET6 ? "::" : NULL;
    qc.ca_file = o->ca_file;
    qc.cert_file = o->cert_file;
    qc.key_file = o->cert_file ? (o->cert_key_file ? o->cert_key_file : o->cert_file) : NULL;
    static const char *const h3_alpn[] = {"h3"};
    qc.cb = &nc_client_callbacks;
    if (o->protocol == NANA_CLIENT_PROTO_GRPC) { /* the gRPC door: HTTP/3 */
        qc.cb = nc_grpc_callbacks();
        qc.user = rt;
        qc.alpn = h3_alpn;
        qc.nalpn = 1;
    }
    qc.idle_timeout_ms = nc_opt_ms(o->idle_timeout_ms, 30000);
    qc.keepalive_ms = qc.idle_timeout_ms / 3;
    qc.handshake_timeout_ms = nc_opt_ms(o->connect_timeout_ms, 10000);
    qc.max_streams_bidi = 1; /* the server opens none */
    nana_tcp_client_config_init(&rt->tcp);
    bool ok = (!o->ca_file || (rt->ca_file = strdup(o->ca_file))) &&
              (!qc.cert_file || (rt->cert_file = strdup(qc.cert_file))) &&
              (!qc.key_file || (rt->key_file = strdup(qc.key_file)));
    if (!ok) {
        nc_rt_free(rt);
        return nc_result_error(err, NANA_CLIENT_ENOMEM, "out of memory");
    }
    rt->tcp.ca_file = rt->ca_file;
    rt->tcp.cert_file = rt->cert_file;
    rt->tcp.key_file = rt->key_file;
    int rc = nana_quic_ep_new(&qc, &rt->ep);
    if (rc) {
        int status = rc == NANA_ERR_NOMEM ? NANA_CLIENT_ENOMEM : NANA_CLIENT_EINVALID;
        nc_result_set(err, status, "cannot start the QUIC client: %s", nana_errmsg());
        nc_rt_free(rt);
        return status;
    }
    *out = rt; /* before the thread starts: its first tick may use it */
    if (pthread_create(&rt->thread, NULL, rt_main, rt)) {
        *out = NULL;
        nc_rt_free(rt);
        return nc_result_error(err, NANA_CLIENT_ENOMEM, "cannot start a thread");
    }
    rt->started = true;
    return NANA_CLIENT_OK;
}

void nc_rt_stop(nc_rt *rt)
{
    if (!rt || !rt->started) return;
    pthread_mutex_lock(&rt->mu);
    rt->stop = true;
    pthread_cond_broadcast(&rt->cv);
    pthread_mutex_unlock(&rt->mu);
    pthread_join(rt->thread, NULL);
    rt->started = false;
}

void nc_rt_free(nc_rt *rt)
{
    if (!rt) return;
    nc_rt_stop(rt);
    nana_quic_ep_del(rt->ep);
    free(rt->clients);
    free(rt->h3s);
    free(rt->h2s);
    free(rt->ca_file);
    free(rt->cert_file);
    free(rt->key_file);
    pthread_mutex_destroy(&rt->mu);
    pthread_mutex_destroy(&rt->quiet_mu);
    pthread_cond_destroy(&rt->cv);
    pthread_cond_destroy(&rt->idle_cv);
    free(rt);
}

bool nc_rt_is_h3(const nc_rt *rt, const void *p)
{
    for (size_t i = 0; i < rt->nh3; i++)
        if (rt->h3s[i] == p) return true;
    return false;
}

int nc_rt_h3_add(nc_rt *rt, void *p)
{
    if (rt->nh3 == rt->caph3) {
        size_t cap = rt->caph3 ? rt->caph3 * 2 : 8;
        void **v = realloc(rt->h3s, cap * sizeof(*v));
        if (!v) return NANA_ERR_NOMEM;
        rt->h3s = v;
        rt->caph3 = cap;
    }
    rt->h3s[rt->nh3++] = p;
    return 0;
}

void nc_rt_h3_del(nc_rt *rt, const void *p)
{
    for (size_t i = 0; i < rt->nh3; i++)
        if (rt->h3s[i] == p) {
            rt->h3s[i] = rt->h3s[--rt->nh3];
            return;
        }
}

void nc_rt_tcp_config(const nc_rt *rt, nana_tcp_client_config *out)
{
    *out = rt->tcp;
}

nana_loop *nc_rt_loop(nc_rt *rt)
{
    return nana_quic_ep_loop(rt->ep, 0);
}

int nc_rt_h2_add(nc_rt *rt, nana_quic_handle h, nch2_conn *conn)
{
    if (rt->nh2 == rt->caph2) {
        size_t cap = rt->caph2 ? rt->caph2 * 2 : 8;
        struct h2_entry *v = realloc(rt->h2s, cap * sizeof(*v));
        if (!v) return NANA_ERR_NOMEM;
        rt->h2s = v;
        rt->caph2 = cap;
    }
    rt->h2s[rt->nh2++] = (struct h2_entry){h, conn};
    return 0;
}

void nc_rt_h2_del(nc_rt *rt, nana_quic_handle h)
{
    for (size_t i = 0; i < rt->nh2; i++)
        if (rt->h2s[i].h == h) {
            rt->h2s[i] = rt->h2s[--rt->nh2];
            return;
        }
}

nch2_conn *nc_rt_h2_get(const nc_rt *rt, nana_quic_handle h)
{
    for (size_t i = 0; i < rt->nh2; i++)
        if (rt->h2s[i].h == h) return rt->h2s[i].conn;
    return NULL;
}

void nc_rt_quic_silent(nc_rt *rt, const char *addr, uint16_t port, uint64_t now_ns)
{
    pthread_mutex_lock(&rt->quiet_mu);
    /* Its entry, else the one that ends first (an ended one is free). */
    struct quiet_entry *e = &rt->quiet[0];
    for (size_t i = 0; i < NANA_POOL_MAX_NODES; i++) {
        struct quiet_entry *q = &rt->quiet[i];
        if (q->port == port && !strcmp(q->addr, addr)) {
            e = q;
            break;
        }
        if (q->until < e->until) e = q;
    }
    snprintf(e->addr, sizeof(e->addr), "%s", addr);
    e->port = port;
    e->until = now_ns + NANA_CLIENT_QUIC_RETRY_MS * 1000000ull;
    pthread_mutex_unlock(&rt->quiet_mu);
}

uint64_t nc_rt_quic_quiet_until(nc_rt *rt, const char *addr, uint16_t port)
{
    uint64_t until = 0;
    pthread_mutex_lock(&rt->quiet_mu);
    for (size_t i = 0; i < NANA_POOL_MAX_NODES && !until; i++)
        if (rt->quiet[i].port == port && !strcmp(rt->quiet[i].addr, addr))
            until = rt->quiet[i].until;
    pthread_mutex_unlock(&rt->quiet_mu);
    return until;
}

int nc_rt_add(nc_rt *rt, nana_client *c)
{
    pthread_mutex_lock(&rt->mu);
    if (rt->n == rt->cap) {
        size_t cap = rt->cap ? rt->cap * 2 : 8;
        nana_client **v = realloc(rt->clients, cap * sizeof(*v));
        if (!v) {
            pthread_mutex_unlock(&rt->mu);
            return NANA_CLIENT_ENOMEM;
        }
        rt->clients = v;
        rt->cap = cap;
    }
    rt->clients[rt->n++] = c;
    pthread_cond_broadcast(&rt->cv);
    pthread_mutex_unlock(&rt->mu);
    return NANA_CLIENT_OK;
}

void nc_rt_remove(nc_rt *rt, nana_client *c)
{
    pthread_mutex_lock(&rt->mu);
    for (size_t i = 0; i < rt->n; i++) {
        if (rt->clients[i] != c) continue;
        memmove(&rt->clients[i], &rt->clients[i + 1], (rt->n - i - 1) * sizeof(*rt->clients));
        rt->n--;
        break;
    }
    /* Not while the maintenance thread is inside this client's tick. */
    while (rt->ticking == c && !pthread_equal(pthread_self(), rt->thread))
        pthread_cond_wait(&rt->idle_cv, &rt->mu);
    pthread_mutex_unlock(&rt->mu);
}

void nc_rt_wake(nc_rt *rt, uint64_t when_ns)
{
    pthread_mutex_lock(&rt->mu);
    if (rt->wake_at == 0 || when_ns < rt->wake_at) {
        rt->wake_at = when_ns;
        pthread_cond_signal(&rt->cv);
    }
    pthread_mutex_unlock(&rt->mu);
}

int nc_rt_post(nc_rt *rt, nana_quic_handle h, void (*fn)(nana_quic_conn *c, void *arg), void *arg)
{
    for (int tries = 0; tries < 10000; tries++) {
        int rc = nana_quic_post(rt->ep, h, fn, arg);
        if (rc == 0) return 0;
        if (rc != NANA_ERR_BUSY) return -1;
        struct timespec nap = {0, 1000000};
        nanosleep(&nap, NULL);
    }
    return -1;
}
