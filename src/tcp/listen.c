/*
 * listen.c - the server endpoint: its settings, one listening socket per
 * loop, accepting (admission, eviction), and the posts that reach its
 * shards from other threads (setup, stop accepting, evictions, delete).
 *
 * The sockets are made and bound on the caller's thread, so a bind error
 * is the caller's; each loop then adds its own socket and hooks through a
 * post, and nana_tcp_ep_new waits for all. Deleting is the same in reverse:
 * a post per loop closes its connections, and the caller waits for all; a
 * loop that stops first does it in its exit hook instead.
 *
 * Admission is shared by the loops (src/admit). When a newcomer evicts a
 * connection of another loop, the handle goes into that shard's mailbox
 * and one post (made when the mailbox was empty) closes all waiting there.
 * A shard that ended refuses mail; the delete waits for a post already
 * made, so no post ever runs on a freed shard.
 *
 * Accepting: up to NANA_TCP_ACCEPT_MAX per readiness. Out of descriptors or
 * memory (EMFILE, ENFILE, ENOBUFS, ENOMEM), the listener leaves the loop
 * for NANA_TCP_PAUSE_MS rather than spin on a connection it cannot take.
 */
#include "tcp/tcp_int.h"

#include "util/nana_log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BACKLOG 1024

void nana_tcp_config_init(nana_tcp_config *c)
{
    memset(c, 0, sizeof(*c));
    c->max_connections = 10000;
    c->max_conns_per_addr = 256;
    c->max_untrusted = 1024;
    c->untrusted_timeout_ms = 10000;
    c->handshake_timeout_ms = 10000;
    c->idle_timeout_ms = 30000;
    c->max_out_bytes = (size_t)256 * 1024;
}

/* Zero limits take their defaults; checks what cannot work. */
static int settle(nana_tcp_config *c)
{
    nana_tcp_config d;
    nana_tcp_config_init(&d);
    if (!c->max_connections) c->max_connections = d.max_connections;
    if (!c->max_conns_per_addr) c->max_conns_per_addr = d.max_conns_per_addr;
    if (!c->max_untrusted) c->max_untrusted = d.max_untrusted;
    if (!c->untrusted_timeout_ms) c->untrusted_timeout_ms = d.untrusted_timeout_ms;
    if (!c->handshake_timeout_ms) c->handshake_timeout_ms = d.handshake_timeout_ms;
    if (!c->idle_timeout_ms) c->idle_timeout_ms = d.idle_timeout_ms;
    if (!c->max_out_bytes) c->max_out_bytes = d.max_out_bytes;
    if (!c->loops || c->nloops == 0 || c->nloops > NANA_TCP_MAX_LOOPS)
        return nana_err_set(NANA_ERR_INVALID, "a TCP endpoint needs 1 to %d loops",
                            NANA_TCP_MAX_LOOPS);
    for (unsigned i = 0; i < c->nloops; i++)
        if (!c->loops[i]) return nana_err_set(NANA_ERR_INVALID, "loop %u is NULL", i);
    if (!c->cb || !c->cb->conn_open || !c->cb->recv || !c->cb->conn_close)
        return nana_err_set(NANA_ERR_INVALID,
                            "a TCP endpoint needs conn_open, recv and conn_close callbacks");
    return NANA_OK;
}

/* The address to bind: numeric IPv4 or IPv6. */
static int parse_addr(const char *host, uint16_t port, struct sockaddr_storage *a, socklen_t *len)
{
    memset(a, 0, sizeof(*a));
    struct sockaddr_in *in = (struct sockaddr_in *)(void *)a;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)(void *)a;
    if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        *len = sizeof(*in);
        return NANA_OK;
    }
    if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        *len = sizeof(*in6);
        return NANA_OK;
    }
    return nana_err_set(NANA_ERR_INVALID, "'%.64s' is not a numeric IPv4 or IPv6 address", host);
}

/* Sets an int socket option; on failure records "setsockopt NAME: why". */
static int set_int(int fd, int level, int name, int val, const char *what)
{
    if (nana_loop_sys_calls.setsockopt(fd, level, name, &val, sizeof(val)) == 0) return NANA_OK;
    return nana_err_set(NANA_ERR_IO, "setsockopt %s: %s", what, strerror(errno));
}

/* A listening socket bound to |a|; *fd is -1 or the socket (the caller's). */
static int open_listener(const struct sockaddr_storage *a, socklen_t alen, bool reuseport, int *fd)
{
    *fd = nana_loop_sys_calls.socket(a->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (*fd < 0) return nana_err_set(NANA_ERR_IO, "TCP socket: %s", strerror(errno));
    int rc;
    if ((rc = set_int(*fd, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR"))) return rc;
    if (reuseport && (rc = set_int(*fd, SOL_SOCKET, SO_REUSEPORT, 1, "SO_REUSEPORT"))) return rc;
    if (a->ss_family == AF_INET6 &&
        (rc = set_int(*fd, IPPROTO_IPV6, IPV6_V6ONLY, 0, "IPV6_V6ONLY")))
        return rc;
    if (nana_loop_sys_calls.bind(*fd, (const struct sockaddr *)a, alen) != 0)
        return nana_err_set(NANA_ERR_IO, "TCP bind: %s", strerror(errno));
    if (nana_loop_sys_calls.listen(*fd, BACKLOG) != 0)
        return nana_err_set(NANA_ERR_IO, "TCP listen: %s", strerror(errno));
    return NANA_OK;
}

/* ---- accepting ----------------------------------------------------------- */

/* Hands victim |h| (another shard's) to its shard's mailbox. */
static void mail_victim(nana_tcp_ep *ep, uint64_t h)
{
    nana_tcp_shard *to = &ep->shards[h & 0xff];
    bool post = false;
    pthread_mutex_lock(&to->mu);
    if (!to->closed) {
        if (to->nvictims == to->capvictims) {
            size_t n = to->capvictims ? to->capvictims * 2 : 16;
            uint64_t *v = realloc(to->victims, n * sizeof(*v));
            if (v) {
                to->victims = v;
                to->capvictims = n;
            }
        }
        /* Without memory the victim lives on to its untrusted deadline. */
        if (to->nvictims < to->capvictims) to->victims[to->nvictims++] = h;
        if (!to->evict_posted) post = to->evict_posted = true;
    }
    pthread_mutex_unlock(&to->mu);
    if (post && nana_loop_post_open(to->loop, &to->evict_post) != 0) {
        pthread_mutex_lock(&to->mu);
        to->evict_posted = false; /* the loop stops: its exit hook closes everything */
        pthread_mutex_unlock(&to->mu);
    }
}

static const char evicted_why[] = "closed to make room: too many connections not trusted";

/* Closes the connections admission evicted. */
static void evict(nana_tcp_shard *sh, const nana_admit_result *r)
{
    for (unsigned i = 0; i < r->nvictims; i++) {
        uint64_t h = r->victims[i];
        atomic_fetch_add(&sh->ep->n_evicted, 1);
        if ((h & 0xff) != sh->index) {
            mail_victim(sh->ep, h);
            continue;
        }
        nana_tcp_conn *c = nana_tcp_shard_find(sh, h);
        if (c) nana_tcp_conn_kill(c, evicted_why);
    }
}

/* One accepted socket: admitted and made a connection, or closed. */
static void take(nana_tcp_shard *sh, int fd, const struct sockaddr_storage *ss, socklen_t len)
{
    nana_tcp_ep *ep = sh->ep;
    if (!atomic_load(&ep->accepting)) {
        close(fd);
        atomic_fetch_add(&ep->n_refused, 1);
        return;
    }
    uint64_t h = ((uint64_t)atomic_fetch_add(&ep->next_handle, 1) + 1) << 8 | sh->index;
    nana_admit_ent *ent;
    nana_admit_result r;
    if (nana_admit_enter(&ep->admit, (const struct sockaddr *)ss, h, &ent, &r) != 0) {
        close(fd);
        atomic_fetch_add(&ep->n_refused, 1);
        return;
    }
    evict(sh, &r);
    nana_tcp_conn *c;
    int rc = nana_tcp_conn_new(sh, fd, h, &c);
    if (rc) {
        nana_log(NANA_LOG_WARN, "TCP connection dropped: %s", nana_errmsg());
        nana_admit_leave(&ep->admit, ent);
        close(fd);
        return;
    }
    atomic_fetch_add(&ep->n_accepted, 1);
    c->admit = ent;
    c->peer = *ss;
    c->peerlen = len;
    uint64_t now = nana_loop_now(sh->loop);
    c->trust_deadline = now + (uint64_t)ep->cfg.untrusted_timeout_ms * NANA_TCP_MS;
    if (ep->cfg.plaintext) {
        c->state = NANA_TCP_OPEN;
        nana_tcp_conn_opened(c);
        return;
    }
    c->hs_deadline = now + (uint64_t)ep->cfg.handshake_timeout_ms * NANA_TCP_MS;
    nana_tcp_conn_arm(c);
}

void nana_tcp_on_listen(nana_loop *loop, nana_loop_fd *src, uint32_t events)
{
    (void)events;
    nana_tcp_shard *sh = NANA_TCP_OF(src, nana_tcp_shard, lsrc);
    for (int i = 0; i < NANA_TCP_ACCEPT_MAX && sh->lfd >= 0; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int fd = nana_loop_sys_calls.accept4(sh->lfd, (struct sockaddr *)&ss, &len,
                                             SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            take(sh, fd, &ss, len);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            nana_log(NANA_LOG_WARN, "TCP accept paused for %d ms: %s", NANA_TCP_PAUSE_MS,
                     strerror(errno));
            atomic_fetch_add(&sh->ep->n_pauses, 1);
            if (sh->lwatched) (void)nana_loop_fd_del(loop, &sh->lsrc);
            sh->lwatched = false;
            nana_loop_timer_start(loop, &sh->pause,
                                  nana_loop_now(loop) + NANA_TCP_PAUSE_MS * NANA_TCP_MS);
            return;
        }
        nana_log(NANA_LOG_WARN, "TCP accept: %s", strerror(errno));
        return;
    }
}

/* ---- posts ----------------------------------------------------------------- */

/* Tells the waiting caller one shard finished its part. */
static void shard_done(nana_tcp_shard *sh)
{
    nana_tcp_ep *ep = sh->ep;
    pthread_mutex_lock(&ep->mu);
    sh->done = true;
    pthread_cond_broadcast(&ep->cv);
    pthread_mutex_unlock(&ep->mu);
}

/* On the loop: the shard's hooks and listener join it. */
static void run_setup(nana_loop *loop, struct nana_loop_post *p)
{
    nana_tcp_shard *sh = NANA_TCP_OF(p, nana_tcp_shard, setup_post);
    nana_tcp_ep *ep = sh->ep;
    int rc = 0;
    char msg[NANA_ERRMSG_MAX] = "";
    if (loop) {
        nana_tcp_shard_attach(sh);
        pthread_mutex_lock(&ep->mu);
        sh->joined = true;
        pthread_mutex_unlock(&ep->mu);
        rc = nana_loop_fd_add(loop, &sh->lsrc, sh->lfd, EPOLLIN, nana_tcp_on_listen);
        if (rc == 0)
            sh->lwatched = true;
        else
            snprintf(msg, sizeof(msg), "%s", nana_errmsg());
    }
    pthread_mutex_lock(&ep->mu);
    if (rc && !ep->setup_rc) {
        ep->setup_rc = nana_err_set_str(rc, msg);
    }
    ep->waiting--;
    pthread_cond_broadcast(&ep->cv);
    pthread_mutex_unlock(&ep->mu);
}

/* On the loop: stop accepting here. */
static void run_stop(nana_loop *loop, struct nana_loop_post *p)
{
    if (!loop) return;
    nana_tcp_shard_unlisten(NANA_TCP_OF(p, nana_tcp_shard, stop_post));
}

/* On the loop: close what other shards' newcomers evicted. */
static void run_evict(nana_loop *loop, struct nana_loop_post *p)
{
    nana_tcp_shard *sh = NANA_TCP_OF(p, nana_tcp_shard, evict_post);
    uint64_t buf[64];
    for (;;) {
        pthread_mutex_lock(&sh->mu);
        bool closed = sh->closed;
        size_t n = sh->nvictims < 64 ? sh->nvictims : 64;
        memcpy(buf, sh->victims + sh->nvictims - n, n * sizeof(*buf));
        sh->nvictims -= n;
        if (closed || n == 0) sh->evict_posted = false;
        pthread_mutex_unlock(&sh->mu);
        if (closed) {
            shard_done(sh); /* the delete waited for this post */
            return;
        }
        if (n == 0 || !loop) return;
        for (size_t i = 0; i < n; i++) {
            nana_tcp_conn *c = nana_tcp_shard_find(sh, buf[i]);
            if (c) nana_tcp_conn_kill(c, evicted_why);
        }
    }
}

/* On the loop: the endpoint is being deleted; this shard closes. */
static void run_del(nana_loop *loop, struct nana_loop_post *p)
{
    nana_tcp_shard *sh = NANA_TCP_OF(p, nana_tcp_shard, del_post);
    if (loop) nana_tcp_shard_close_all(sh);
    pthread_mutex_lock(&sh->mu);
    sh->closed = true;
    bool pending = sh->evict_posted;
    pthread_mutex_unlock(&sh->mu);
    if (!pending) shard_done(sh);
}

/* ---- the endpoint ------------------------------------------------------------ */

void nana_tcp_ep_release(nana_tcp_ep *ep)
{
    for (unsigned i = 0; ep->shards && i < ep->nshards; i++)
        nana_tcp_shard_free(&ep->shards[i]);
    free(ep->shards);
    if (ep->tls_ready) nana_tcp_tls_free(&ep->tls);
    if (ep->admit_ready) nana_admit_free(&ep->admit);
    pthread_mutex_destroy(&ep->mu);
    pthread_cond_destroy(&ep->cv);
    free(ep);
}

/* Allocates an endpoint with its lock and counters; the caller's
 * (nana_tcp_ep_release). */
static nana_tcp_ep *ep_alloc(void)
{
    nana_tcp_ep *ep = calloc(1, sizeof(*ep));
    if (!ep) return NULL;
    pthread_mutex_init(&ep->mu, NULL);
    pthread_cond_init(&ep->cv, NULL);
    atomic_init(&ep->accepting, true);
    atomic_init(&ep->stop_posted, false);
    atomic_init(&ep->next_handle, 0);
    return ep;
}

nana_tcp_ep *nana_tcp_ep_alloc(void)
{
    return ep_alloc();
}

/* Makes the shards and their listening sockets (caller's thread). */
static int make_shards(nana_tcp_ep *ep)
{
    struct sockaddr_storage a;
    socklen_t alen;
    int rc = parse_addr(ep->cfg.host ? ep->cfg.host : "127.0.0.1", ep->cfg.port, &a, &alen);
    if (rc) return rc;
    ep->shards = calloc(ep->cfg.nloops, sizeof(*ep->shards));
    if (!ep->shards) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    ep->nshards = ep->cfg.nloops;
    for (unsigned i = 0; i < ep->nshards; i++)
        if ((rc = nana_tcp_shard_init(&ep->shards[i], ep, ep->cfg.loops[i], i))) return rc;
    for (unsigned i = 0; i < ep->nshards; i++) {
        if ((rc = open_listener(&a, alen, ep->nshards > 1, &ep->shards[i].lfd))) return rc;
        if (i) continue;
        struct sockaddr_storage got;
        memset(&got, 0, sizeof(got));
        socklen_t glen = sizeof(got);
        if (getsockname(ep->shards[0].lfd, (struct sockaddr *)&got, &glen) != 0)
            return nana_err_set(NANA_ERR_IO, "getsockname: %s", strerror(errno));
        ep->port =
            ntohs(got.ss_family == AF_INET ? ((struct sockaddr_in *)(void *)&got)->sin_port
                                           : ((struct sockaddr_in6 *)(void *)&got)->sin6_port);
        if (a.ss_family == AF_INET)
            ((struct sockaddr_in *)(void *)&a)->sin_port = htons(ep->port);
        else
            ((struct sockaddr_in6 *)(void *)&a)->sin6_port = htons(ep->port);
    }
    for (unsigned i = 0; i < ep->nshards; i++) {
        nana_tcp_shard *sh = &ep->shards[i];
        sh->setup_post.run = run_setup;
        sh->stop_post.run = run_stop;
        sh->evict_post.run = run_evict;
        sh->del_post.run = run_del;
    }
    return NANA_OK;
}

/* Posts each shard's setup and waits for all; the first error wins. */
static int attach_all(nana_tcp_ep *ep)
{
    int rc = 0;
    pthread_mutex_lock(&ep->mu);
    for (unsigned i = 0; i < ep->nshards; i++) {
        ep->waiting++;
        pthread_mutex_unlock(&ep->mu);
        int prc = nana_loop_post_open(ep->shards[i].loop, &ep->shards[i].setup_post);
        pthread_mutex_lock(&ep->mu);
        if (prc) {
            ep->waiting--;
            if (!rc) rc = nana_err_set(NANA_ERR_CLOSED, "TCP endpoint: loop %u has stopped", i);
        }
    }
    while (ep->waiting)
        pthread_cond_wait(&ep->cv, &ep->mu);
    if (!rc) rc = ep->setup_rc;
    pthread_mutex_unlock(&ep->mu);
    return rc;
}

int nana_tcp_ep_new(const nana_tcp_config *cfg, nana_tcp_ep **out)
{
    *out = NULL;
    nana_tcp_ep *ep = ep_alloc();
    if (!ep) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    ep->server = true;
    ep->cfg = *cfg;
    int rc = settle(&ep->cfg);
    if (rc) goto fail;
    ep->cb = *cfg->cb;
    ep->cfg.cb = &ep->cb;
    ep->cfg.alpn = NULL; /* the TLS settings keep what they need */
    if (!cfg->plaintext) {
        ep->tls_ready = true;
        if ((rc = nana_tcp_tls_init_server(&ep->tls, cfg))) goto fail;
    }
    if ((rc = nana_admit_init(&ep->admit, ep->cfg.max_connections, ep->cfg.max_conns_per_addr,
                              ep->cfg.max_untrusted)))
        goto fail;
    ep->admit_ready = true;
    rc = make_shards(ep);
    ep->cfg.loops = NULL; /* the caller's array */
    ep->cfg.host = NULL;
    if (rc) goto fail;
    if ((rc = attach_all(ep))) goto fail_attached;
    *out = ep;
    return NANA_OK;
fail_attached : {
    char msg[NANA_ERRMSG_MAX];
    snprintf(msg, sizeof(msg), "%s", nana_errmsg());
    nana_tcp_ep_del(ep);
    return nana_err_set_str(rc, msg);
}
fail:
    nana_tcp_ep_release(ep);
    return rc;
}

uint16_t nana_tcp_ep_port(const nana_tcp_ep *ep)
{
    return ep->port;
}

void nana_tcp_ep_stop_accepting(nana_tcp_ep *ep)
{
    atomic_store(&ep->accepting, false);
    if (atomic_exchange(&ep->stop_posted, true)) return;
    for (unsigned i = 0; i < ep->nshards; i++)
        if (ep->shards[i].joined)
            (void)nana_loop_post_open(ep->shards[i].loop, &ep->shards[i].stop_post);
}

void nana_tcp_ep_del(nana_tcp_ep *ep)
{
    if (!ep) return;
    atomic_store(&ep->accepting, false);
    for (unsigned i = 0; i < ep->nshards; i++) {
        nana_tcp_shard *sh = &ep->shards[i];
        pthread_mutex_lock(&ep->mu);
        bool skip = sh->done || !sh->joined;
        if (!sh->joined) sh->done = true;
        pthread_mutex_unlock(&ep->mu);
        /* A loop that stopped closes the shard in its exit hook. */
        if (!skip) (void)nana_loop_post_open(sh->loop, &sh->del_post);
    }
    pthread_mutex_lock(&ep->mu);
    for (unsigned i = 0; i < ep->nshards; i++)
        while (!ep->shards[i].done)
            pthread_cond_wait(&ep->cv, &ep->mu);
    pthread_mutex_unlock(&ep->mu);
    nana_tcp_ep_release(ep);
}

void nana_tcp_ep_stats(nana_tcp_ep *ep, nana_tcp_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->accepted = atomic_load(&ep->n_accepted);
    out->refused = atomic_load(&ep->n_refused);
    out->evicted = atomic_load(&ep->n_evicted);
    out->handshake_failures = atomic_load(&ep->n_hs_fail);
    out->handshake_timeouts = atomic_load(&ep->n_hs_timeout);
    out->untrusted_timeouts = atomic_load(&ep->n_trust_timeout);
    out->idle_timeouts = atomic_load(&ep->n_idle_timeout);
    out->accept_pauses = atomic_load(&ep->n_pauses);
    out->conns_open = atomic_load(&ep->n_open);
    if (ep->admit_ready) {
        unsigned total, untrusted;
        uint64_t evicted, refused;
        nana_admit_counts(&ep->admit, &total, &untrusted, &evicted, &refused);
        out->conns_untrusted = untrusted;
    }
}
