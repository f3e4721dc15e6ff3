/*
 * io.c - each shard of an endpoint on its own event loop (src/loop): the
 * loop's thread owns the shard, its socket and its connections.
 *
 * What the loop runs for a shard, each iteration: the posts other threads
 * sent (nana_quic_post, a datagram forwarded from another shard, connect,
 * rebind, statistics), then the socket when it is readable (up to
 * NANA_Q_RX_ROUNDS batches of datagrams fed to the shard), then the tick
 * (nana_quic_ep_set_tick) when due, then the flush before it sleeps: the
 * shard's due timers and one write per touched connection into the send
 * queue (txq.c), which leaves in one sendmmsg, and the shard's next timer
 * armed on the loop. When the loop stops, its exit hook closes every
 * connection and sends the closes.
 *
 * Posts from other threads are the only way in. nana_quic_post allocates an
 * item per call (at most NANA_Q_MAX_POSTS wait per shard); the endpoint's
 * own requests embed their loop post and allocate nothing per shard.
 * Buffers are allocated once per shard; the packet path allocates nothing.
 */
#include "quic/io_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The io that embeds the loop object |ptr| as its field |member|. */
#define IO_OF(ptr, member) ((nana_quic_io *)(void *)((char *)(ptr)-offsetof(nana_quic_io, member)))

/* ------------------------------------------------------------------ */
/* The shard on its loop                                                */
/* ------------------------------------------------------------------ */

/* True if the socket is bound to a wildcard address (we must name the source). */
static bool bound_wildcard(const nana_quic_shard *sh)
{
    if (sh->local.sa.sa_family == AF_INET) return sh->local.in.sin_addr.s_addr == htonl(INADDR_ANY);
    return memcmp(&sh->local.in6.sin6_addr, &in6addr_any, sizeof(in6addr_any)) == 0;
}

/* The tx sink: queues the packets; tx_flush sends the round's queue. */
static void tx_send(nana_quic_tx *tx, const ngtcp2_path *path, const uint8_t *data, size_t len,
                    size_t seg)
{
    nana_quic_txq_add(&((nana_quic_io *)tx)->txq, path, data, len, seg);
}

static void tx_flush(nana_quic_tx *tx)
{
    nana_quic_txq_flush(&((nana_quic_io *)tx)->txq);
}

/* The socket is readable: read up to NANA_Q_RX_ROUNDS batches. */
static void on_readable(nana_loop *loop, nana_loop_fd *src, uint32_t events)
{
    (void)events;
    nana_quic_io *io = ((nana_quic_io_sock *)src)->io;
    uint64_t ts = nana_loop_now(loop);
    for (int r = 0; r < NANA_Q_RX_ROUNDS; r++)
        if (nana_quic_udp_read(io, ts) < NANA_Q_RX_BATCH) break;
}

/* The shard's timer: nothing to do here, the flush below runs it. */
static void on_timer(nana_loop *loop, nana_loop_timer *t)
{
    (void)loop;
    (void)t;
}

/* Before the loop sleeps: timers due, writes, the send queue; then the
 * shard's next timer is armed on the loop. */
static void on_flush(nana_loop *loop, nana_loop_hook *hook)
{
    nana_quic_io *io = IO_OF(hook, flush);
    nana_quic_shard *sh = io->sh;
    uint64_t ts = nana_loop_now(loop);
    nana_quic_shard_flush(sh, ts);
    uint64_t d = nana_quic_shard_next_timeout(sh, ts);
    if (d == UINT64_MAX)
        nana_loop_timer_stop(loop, &io->timer);
    else if (!nana_loop_timer_armed(&io->timer) || io->timer.when != ts + d)
        nana_loop_timer_start(loop, &io->timer, ts + d);
}

/* The loop stops: say goodbye to every peer. */
static void on_exit_hook(nana_loop *loop, nana_loop_hook *hook)
{
    nana_quic_io *io = IO_OF(hook, bye);
    uint64_t ts = nana_loop_now(loop);
    nana_quic_shard_close_all(io->sh, ts);
    nana_quic_shard_flush(io->sh, ts);
}

/* The tick is due: run it, arm the next. */
static void on_tick(nana_loop *loop, nana_loop_timer *t)
{
    nana_quic_io *io = IO_OF(t, tick);
    if (!io->tick_fn) return;
    uint64_t ts = nana_loop_now(loop);
    io->sh->now = ts;
    uint64_t next = io->tick_fn(io->tick_arg);
    nana_loop_timer_start(loop, t, ts + (next ? next : io->tick_ns));
}

/* Sets up one shard's socket and loop. On failure what was made is left
 * for nana_quic_io_teardown. */
static int io_setup(nana_quic_ep *ep, nana_quic_shard *sh, const ngtcp2_sockaddr_union *addr,
                    socklen_t alen)
{
    nana_quic_io *io = calloc(1, sizeof(*io));
    if (!io) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    sh->io = io;
    io->sh = sh;
    io->fd = -1;
    io->tx.send = tx_send;
    io->tx.flush = tx_flush;
    sh->tx = &io->tx;
    atomic_init(&io->nposts, 0);
    nana_loop_timer_init(&io->timer, on_timer);
    nana_loop_timer_init(&io->tick, on_tick);
    io->flush.fn = on_flush;
    io->bye.fn = on_exit_hook;
    io->sock[0].io = io->sock[1].io = io;
    io->bufs = malloc((size_t)NANA_Q_RX_BATCH * NANA_Q_RX_BUF);
    if (!io->bufs) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    bool server = ep->cfg.server != 0;
    int rc = nana_quic_udp_open(addr, alen, server && ep->nshards > 1, server, &io->fd);
    if (rc) return rc;
    socklen_t l = sizeof(sh->local);
    if (getsockname(io->fd, &sh->local.sa, &l) != 0)
        return nana_err_set(NANA_ERR_IO, "getsockname: %s", strerror(errno));
    sh->local_len = l;
    nana_quic_txq_init(&io->txq, io->fd, server && bound_wildcard(sh), &sh->st);
    char name[16];
    snprintf(name, sizeof(name), "nanaq-%c%u", server ? 's' : 'c', sh->index);
    if ((rc = nana_loop_new(name, &io->loop))) return rc;
    if ((rc = nana_loop_fd_add(io->loop, &io->sock[0].src, io->fd, EPOLLIN, on_readable)))
        return rc;
    nana_loop_hook_add(io->loop, &io->flush);
    nana_loop_exit_hook_add(io->loop, &io->bye);
    return NANA_OK;
}

void nana_quic_io_teardown(nana_quic_shard *sh)
{
    nana_quic_io *io = sh->io;
    if (!io) return;
    nana_loop_free(io->loop); /* stopped already: nana_quic_io_stop */
    if (io->fd >= 0) close(io->fd);
    free(io->bufs);
    free(io);
    sh->io = NULL;
    sh->tx = NULL;
}

int nana_quic_io_start(nana_quic_ep *ep)
{
    ngtcp2_sockaddr_union addr;
    socklen_t alen;
    const char *host = ep->cfg.host ? ep->cfg.host : (ep->cfg.server ? "127.0.0.1" : NULL);
    int rc = host ? nana_quic_udp_addr(host, ep->cfg.port, &addr, &alen)
                  : nana_quic_udp_addr("0.0.0.0", 0, &addr, &alen); /* client: any local port */
    if (rc) return rc;
    for (unsigned i = 0; i < ep->nshards; i++) {
        if ((rc = io_setup(ep, &ep->shards[i], &addr, alen))) return rc;
        if (i == 0) {
            /* Every other thread binds the port the first one got. */
            ep->port = ntohs(ep->shards[0].local.sa.sa_family == AF_INET
                                 ? ep->shards[0].local.in.sin_port
                                 : ep->shards[0].local.in6.sin6_port);
            if (addr.sa.sa_family == AF_INET)
                addr.in.sin_port = htons(ep->port);
            else
                addr.in6.sin6_port = htons(ep->port);
        }
    }
    for (unsigned i = 0; i < ep->nshards; i++)
        if ((rc = nana_loop_start(ep->shards[i].io->loop))) return rc;
    return NANA_OK;
}

void nana_quic_io_stop(nana_quic_ep *ep)
{
    /* First every loop refuses new posts, then each says goodbye and ends. */
    for (unsigned i = 0; i < ep->nshards; i++)
        if (ep->shards[i].io && ep->shards[i].io->loop) nana_loop_stop(ep->shards[i].io->loop);
    for (unsigned i = 0; i < ep->nshards; i++) {
        nana_quic_io *io = ep->shards[i].io;
        if (!io || !io->loop) continue;
        nana_loop_join(io->loop);
        /* The endpoint's own posts were all accepted before the stop, so
         * they ran; others' posts that came too late are cancelled now,
         * while the endpoint is still whole. */
        (void)nana_loop_drain(io->loop);
    }
}

/* ------------------------------------------------------------------ */
/* Reaching a shard from other threads                                  */
/* ------------------------------------------------------------------ */

/* The shard a handle names, or NULL. */
static nana_quic_shard *shard_of(nana_quic_ep *ep, nana_quic_handle h)
{
    unsigned idx = (unsigned)(h & 0xff);
    return idx < ep->nshards ? &ep->shards[idx] : NULL;
}

nana_quic_conn *nana_quic_conn_by_handle(nana_quic_ep *ep, nana_quic_handle h)
{
    nana_quic_shard *sh = shard_of(ep, h);
    if (!sh) return NULL;
    if (sh->io) {
        if (!nana_loop_on_thread(sh->io->loop)) return NULL;
        sh->now = nana_loop_now(sh->io->loop);
    }
    nana_quic_conn *c = nana_quic_shard_by_handle(sh, h);
    if (!c || c->dead || c->state == CONN_CLOSING || c->state == CONN_DRAINING) return NULL;
    nana_quic_shard_dirty(sh, c); /* what the caller queues leaves this round */
    return c;
}

nana_loop *nana_quic_ep_loop(nana_quic_ep *ep, unsigned i)
{
    return i < ep->nshards && ep->shards[i].io ? ep->shards[i].io->loop : NULL;
}

unsigned nana_quic_ep_nloops(const nana_quic_ep *ep)
{
    return ep->shards && ep->shards[0].io ? ep->nshards : 0;
}

nana_loop *nana_quic_handle_loop(nana_quic_ep *ep, nana_quic_handle h)
{
    nana_quic_shard *sh = shard_of(ep, h);
    return sh && sh->io ? sh->io->loop : NULL;
}

nana_loop *nana_quic_conn_loop(const nana_quic_conn *c)
{
    return c->shard->io ? c->shard->io->loop : NULL;
}

/* A nana_quic_post call on its way to the connection's thread. */
typedef struct post_item {
    struct nana_loop_post post; /* first: the item is the post */
    nana_quic_io *io;
    nana_quic_handle handle;
    void (*fn)(nana_quic_conn *c, void *arg);
    void *arg;
} post_item;

/* On the connection's thread: runs the posted function (with no
 * connection if the loop ended first, which nana_loop_post_open prevents). */
static void run_item(nana_loop *loop, struct nana_loop_post *p)
{
    post_item *it = (post_item *)p;
    atomic_fetch_sub_explicit(&it->io->nposts, 1, memory_order_relaxed);
    nana_quic_conn *c = loop ? nana_quic_conn_by_handle(it->io->sh->ep, it->handle) : NULL;
    it->fn(c, it->arg);
    free(it);
}

int nana_quic_post(nana_quic_ep *ep, nana_quic_handle h, void (*fn)(nana_quic_conn *c, void *arg),
                   void *arg)
{
    nana_quic_shard *sh = shard_of(ep, h);
    if (!sh) return nana_err_set(NANA_ERR_INVALID, "not a connection handle");
    nana_quic_io *io = sh->io;
    if (!io) return nana_err_set(NANA_ERR_CLOSED, "the endpoint has no I/O threads");
    if (atomic_fetch_add_explicit(&io->nposts, 1, memory_order_relaxed) >= NANA_Q_MAX_POSTS) {
        atomic_fetch_sub_explicit(&io->nposts, 1, memory_order_relaxed);
        return nana_err_set(NANA_ERR_BUSY, "the I/O thread has %d posts waiting", NANA_Q_MAX_POSTS);
    }
    post_item *it = malloc(sizeof(*it));
    if (!it) {
        atomic_fetch_sub_explicit(&io->nposts, 1, memory_order_relaxed);
        return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    }
    *it = (post_item){.post.run = run_item, .io = io, .handle = h, .fn = fn, .arg = arg};
    int rc = nana_loop_post_open(io->loop, &it->post);
    if (rc) {
        atomic_fetch_sub_explicit(&io->nposts, 1, memory_order_relaxed);
        free(it);
        return nana_err_set(NANA_ERR_CLOSED, "the endpoint is shutting down");
    }
    return NANA_OK;
}

/* A datagram of another shard's connection (after a migration), copied. */
typedef struct fwd_item {
    struct nana_loop_post post; /* first */
    nana_quic_shard *sh;
    ngtcp2_sockaddr_union local, remote;
    ngtcp2_socklen local_len, remote_len;
    size_t len;
    uint8_t pkt[];
} fwd_item;

/* On the owner's thread: feeds the forwarded datagram to its shard. */
static void run_fwd(nana_loop *loop, struct nana_loop_post *p)
{
    fwd_item *f = (fwd_item *)p;
    if (!loop) { /* cancelled */
        free(f);
        return;
    }
    ngtcp2_path path = {
        .local = {.addr = &f->local.sa, .addrlen = f->local_len},
        .remote = {.addr = &f->remote.sa, .addrlen = f->remote_len},
    };
    nana_quic_shard_recv(f->sh, &path, f->pkt, f->len, 0, nana_loop_now(loop));
    free(f);
}

void nana_quic_io_forward(nana_quic_shard *to, const ngtcp2_path *path, const uint8_t *pkt,
                          size_t len)
{
    if (!to->io) return; /* detached: nobody would read it */
    fwd_item *f = malloc(sizeof(*f) + len);
    if (!f) return; /* a lost datagram: QUIC resends */
    f->post.run = run_fwd;
    f->sh = to;
    memcpy(&f->local, path->local.addr, path->local.addrlen);
    memcpy(&f->remote, path->remote.addr, path->remote.addrlen);
    f->local_len = path->local.addrlen;
    f->remote_len = path->remote.addrlen;
    f->len = len;
    memcpy(f->pkt, pkt, len);
    if (nana_loop_post_open(to->io->loop, &f->post)) free(f); /* stopping */
}

/* ------------------------------------------------------------------ */
/* Client: connect and rebind                                           */
/* ------------------------------------------------------------------ */

/* A connect request travelling to the client's I/O thread. */
typedef struct connect_req {
    struct nana_loop_post post; /* first */
    nana_quic_shard *sh;
    ngtcp2_sockaddr_union remote;
    socklen_t remote_len;
    char server_name[256];
    uint8_t *ticket;
    size_t ticket_len;
    void *data;
    nana_quic_handle handle;
} connect_req;

static void do_connect(nana_loop *loop, struct nana_loop_post *p)
{
    connect_req *r = (connect_req *)p;
    nana_quic_shard *sh = r->sh;
    nana_quic_conn *c;
    if (loop) { /* never cancelled: posted with nana_loop_post_open */
        sh->now = nana_loop_now(loop);
        if (nana_quic_conn_connect(sh, &r->remote.sa, r->remote_len, r->server_name, r->ticket,
                                   r->ticket_len, r->data, r->handle, sh->now, &c) == 0)
            nana_quic_shard_dirty(sh, c);
    }
    free(r->ticket);
    free(r);
}

int nana_quic_connect(nana_quic_ep *ep, const char *host, uint16_t port, const char *server_name,
                      const uint8_t *ticket, size_t ticket_len, void *conn_data,
                      nana_quic_handle *out)
{
    if (ep->cfg.server) return nana_err_set(NANA_ERR_INVALID, "a server endpoint cannot connect");
    nana_quic_shard *sh = &ep->shards[0];
    if (!sh->io) return nana_err_set(NANA_ERR_CLOSED, "the endpoint has no I/O thread");
    connect_req *r = calloc(1, sizeof(*r));
    if (!r) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    int rc = nana_quic_udp_addr(host, port, &r->remote, &r->remote_len);
    if (rc) {
        free(r);
        return rc;
    }
    /* The client socket is IPv4 or IPv6; the peer must match. */
    if (r->remote.sa.sa_family != sh->local.sa.sa_family) {
        free(r);
        return nana_err_set(NANA_ERR_INVALID, "the client endpoint's socket is not of that family");
    }
    r->post.run = do_connect;
    r->sh = sh;
    snprintf(r->server_name, sizeof(r->server_name), "%s", server_name ? server_name : "");
    if (ticket && ticket_len) {
        r->ticket = malloc(ticket_len);
        if (!r->ticket) {
            free(r);
            return nana_err_set(NANA_ERR_NOMEM, "out of memory");
        }
        memcpy(r->ticket, ticket, ticket_len);
        r->ticket_len = ticket_len;
    }
    r->data = conn_data;
    r->handle = nana_quic_shard_new_handle(sh);
    *out = r->handle; /* before the post: the request is the I/O thread's after it */
    if (nana_loop_post_open(sh->io->loop, &r->post) != 0) {
        free(r->ticket);
        free(r);
        return nana_err_set(NANA_ERR_CLOSED, "the endpoint is shutting down");
    }
    return NANA_OK;
}

/* A rebind request: the new socket, the outcome, and a flag to wait on. */
typedef struct rebind_req {
    struct nana_loop_post post; /* first */
    nana_quic_shard *sh;
    int fd;
    int rc;
    char msg[NANA_ERRMSG_MAX];
    atomic_int done;
} rebind_req;

/* On the client's I/O thread: swaps the socket, migrates every connection. */
static void do_rebind(nana_loop *loop, struct nana_loop_post *p)
{
    rebind_req *r = (rebind_req *)p;
    if (!loop) { /* cancelled */
        r->rc = nana_err_set(NANA_ERR_CLOSED, "the endpoint is shutting down");
        snprintf(r->msg, sizeof(r->msg), "%s", nana_errmsg());
        atomic_store(&r->done, 1);
        return;
    }
    nana_quic_shard *sh = r->sh;
    nana_quic_io *io = sh->io;
    unsigned next = 1 - io->cur;
    r->rc = nana_loop_fd_add(loop, &io->sock[next].src, r->fd, EPOLLIN, on_readable);
    if (r->rc) {
        snprintf(r->msg, sizeof(r->msg), "%s", nana_errmsg());
        atomic_store(&r->done, 1); /* the old socket stays; the caller closes the new one */
        return;
    }
    nana_quic_txq_flush(&io->txq); /* what was queued leaves by the old socket */
    /* Closing the old socket takes it out of epoll whatever this says. */
    (void)nana_loop_fd_del(loop, &io->sock[io->cur].src);
    close(io->fd);
    io->cur = next;
    io->fd = r->fd;
    io->txq.fd = r->fd;
    socklen_t l = sizeof(sh->local);
    if (getsockname(io->fd, &sh->local.sa, &l) == 0) sh->local_len = l;
    nana_quic_shard_rebound(sh, nana_loop_now(loop));
    atomic_store(&r->done, 1);
}

int nana_quic_ep_rebind(nana_quic_ep *ep)
{
    if (ep->cfg.server) return nana_err_set(NANA_ERR_INVALID, "only a client endpoint rebinds");
    nana_quic_shard *sh = &ep->shards[0];
    if (!sh->io) return nana_err_set(NANA_ERR_CLOSED, "the endpoint has no I/O thread");
    ngtcp2_sockaddr_union any;
    socklen_t alen;
    int rc =
        nana_quic_udp_addr(sh->local.sa.sa_family == AF_INET ? "0.0.0.0" : "::", 0, &any, &alen);
    if (rc) return rc;
    rebind_req r = {.post.run = do_rebind, .sh = sh};
    atomic_init(&r.done, 0);
    if ((rc = nana_quic_udp_open(&any, alen, false, false, &r.fd))) return rc;
    if (nana_loop_post_open(sh->io->loop, &r.post) != 0) {
        close(r.fd);
        return nana_err_set(NANA_ERR_CLOSED, "the endpoint is shutting down");
    }
    while (!atomic_load(&r.done))
        usleep(200);
    if (r.rc) {
        close(r.fd);
        return nana_err_set_str(r.rc, r.msg);
    }
    return NANA_OK;
}

/* ------------------------------------------------------------------ */
/* The tick                                                             */
/* ------------------------------------------------------------------ */

typedef struct tick_req {
    struct nana_loop_post post; /* first */
    nana_quic_io *io;
    uint64_t ns;
    uint64_t (*fn)(void *arg);
    void *arg;
} tick_req;

/* On an I/O thread: installs (or removes) its tick. */
static void do_set_tick(nana_loop *loop, struct nana_loop_post *p)
{
    tick_req *r = (tick_req *)p;
    nana_quic_io *io = r->io;
    if (!loop) { /* cancelled */
        free(r);
        return;
    }
    io->tick_fn = r->ns ? r->fn : NULL;
    io->tick_arg = r->arg;
    io->tick_ns = r->ns;
    if (io->tick_fn)
        nana_loop_timer_start(loop, &io->tick, nana_loop_now(loop));
    else
        nana_loop_timer_stop(loop, &io->tick);
    free(r);
}

int nana_quic_ep_set_tick(nana_quic_ep *ep, uint64_t interval_ns, uint64_t (*fn)(void *arg),
                          void *arg)
{
    if (interval_ns && !fn) return nana_err_set(NANA_ERR_INVALID, "a tick needs a function");
    for (unsigned i = 0; i < ep->nshards; i++) {
        nana_quic_io *io = ep->shards[i].io;
        if (!io) return nana_err_set(NANA_ERR_CLOSED, "the endpoint has no I/O threads");
        tick_req *r = malloc(sizeof(*r));
        if (!r) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
        *r = (tick_req){.post.run = do_set_tick, .io = io, .ns = interval_ns, .fn = fn, .arg = arg};
        if (nana_loop_post_open(io->loop, &r->post)) {
            free(r);
            return nana_err_set(NANA_ERR_CLOSED, "the endpoint is shutting down");
        }
    }
    return NANA_OK;
}
