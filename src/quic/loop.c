/*
 * loop.c - the I/O side of an endpoint: UDP sockets, one thread per shard,
 * epoll, the clock, cross-thread posts, and the public endpoint functions.
 *
 * Each I/O thread owns one UDP socket (servers bind one per thread with
 * SO_REUSEPORT, so the kernel spreads clients across threads) and an
 * eventfd for posts from other threads; the shard's next timer is the
 * epoll wait's timeout.
 * A round: read up to a few hundred datagrams with recvmmsg (UDP GRO can
 * fold many into one buffer; they are split by segment size), feed each to
 * the shard, run the posted functions, then flush: timers, then one write
 * per touched connection into the thread's send queue (txq.c), which
 * leaves in one sendmmsg for all of them: runs of equal-sized packets as
 * GSO messages, single datagrams where the kernel has no UDP_SEGMENT.
 * Buffers are allocated once per thread; the packet path allocates nothing.
 */
#include "quic/quic_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/udp.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef UDP_GRO
#define UDP_GRO 104
#endif

#define RX_BATCH       32
#define RX_BUF         65536 /* one GRO'd read can hold many datagrams */
#define RX_ROUNDS      8     /* recvmmsg calls per round before flushing */
#define CMSG_SPACE_ALL 256

typedef struct nana_quic_io {
    nana_quic_tx tx;
    nana_quic_shard *sh;
    bool pwait2; /* epoll_pwait2 works (nanosecond timeouts) */
    struct mmsghdr msgs[RX_BATCH];
    struct iovec iov[RX_BATCH];
    ngtcp2_sockaddr_union from[RX_BATCH];
    uint8_t *bufs; /* RX_BATCH * RX_BUF */
    uint8_t ctl[RX_BATCH][CMSG_SPACE_ALL];
    nana_quic_txq txq; /* the round's outgoing datagrams */
} nana_quic_io;

uint64_t nana_quic_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * NANA_Q_NS + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------------ */
/* Sending                                                              */
/* ------------------------------------------------------------------ */

/* True if the socket is bound to a wildcard address (we must name the source). */
static bool bound_wildcard(const nana_quic_shard *sh)
{
    if (sh->local.sa.sa_family == AF_INET) return sh->local.in.sin_addr.s_addr == htonl(INADDR_ANY);
    return memcmp(&sh->local.in6.sin6_addr, &in6addr_any, sizeof(in6addr_any)) == 0;
}

/* The tx sink: queues the packets; io_flush sends the round's queue. */
static void io_send(nana_quic_tx *tx, const ngtcp2_path *path, const uint8_t *data, size_t len,
                    size_t seg)
{
    nana_quic_txq_add(&((nana_quic_io *)tx)->txq, path, data, len, seg);
}

static void io_flush(nana_quic_tx *tx)
{
    nana_quic_txq_flush(&((nana_quic_io *)tx)->txq);
}

/* ------------------------------------------------------------------ */
/* Sockets                                                              */
/* ------------------------------------------------------------------ */

/* Parses host:port into |a| (numeric addresses only). */
static int make_addr(const char *host, uint16_t port, ngtcp2_sockaddr_union *a, socklen_t *len)
{
    memset(a, 0, sizeof(*a));
    if (inet_pton(AF_INET, host, &a->in.sin_addr) == 1) {
        a->in.sin_family = AF_INET;
        a->in.sin_port = htons(port);
        *len = sizeof(a->in);
        return NANA_OK;
    }
    if (inet_pton(AF_INET6, host, &a->in6.sin6_addr) == 1) {
        a->in6.sin6_family = AF_INET6;
        a->in6.sin6_port = htons(port);
        *len = sizeof(a->in6);
        return NANA_OK;
    }
    return nana_err_set(NANA_ERR_INVALID, "'%.64s' is not a numeric IPv4 or IPv6 address", host);
}

/* Opens and binds a UDP socket with the options the fast path wants. */
static int open_socket(const ngtcp2_sockaddr_union *addr, socklen_t alen, bool reuseport, int *out)
{
    int fd = socket(addr->sa.sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return nana_err_set(NANA_ERR_IO, "socket: %s", strerror(errno));
    int one = 1, zero = 0;
    if (reuseport) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (addr->sa.sa_family == AF_INET6) {
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
        setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one));
    } else {
        setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one));
    }
    setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof(one));
    int buf = 4 * 1024 * 1024;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof(buf)) != 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &buf, sizeof(buf)) != 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
    if (bind(fd, &addr->sa, alen) != 0) {
        int e = errno;
        close(fd);
        char host[INET6_ADDRSTRLEN] = "?";
        bool v6 = addr->sa.sa_family == AF_INET6;
        inet_ntop(addr->sa.sa_family,
                  v6 ? (const void *)&addr->in6.sin6_addr : (const void *)&addr->in.sin_addr, host,
                  sizeof(host));
        return nana_err_set(NANA_ERR_IO, "cannot bind %s port %u: %s", host,
                            (unsigned)ntohs(v6 ? addr->in6.sin6_port : addr->in.sin_port),
                            strerror(e));
    }
    *out = fd;
    return NANA_OK;
}

/* ------------------------------------------------------------------ */
/* Receiving                                                            */
/* ------------------------------------------------------------------ */

/* Reads one batch; feeds every datagram to the shard. Returns how many
 * messages were read (0 when the socket is empty). */
static int read_batch(nana_quic_io *io, uint64_t ts)
{
    nana_quic_shard *sh = io->sh;
    for (int i = 0; i < RX_BATCH; i++) {
        io->iov[i].iov_base = io->bufs + (size_t)i * RX_BUF;
        io->iov[i].iov_len = RX_BUF;
        struct msghdr *m = &io->msgs[i].msg_hdr;
        m->msg_name = &io->from[i];
        m->msg_namelen = sizeof(io->from[i]);
        m->msg_iov = &io->iov[i];
        m->msg_iovlen = 1;
        m->msg_control = io->ctl[i];
        m->msg_controllen = CMSG_SPACE_ALL;
        m->msg_flags = 0;
    }
    int n = recvmmsg(sh->fd, io->msgs, RX_BATCH, MSG_DONTWAIT, NULL);
    if (n <= 0) return 0;
    bool early = !sh->ep->cfg.server;
    for (int i = 0; i < n; i++) {
        struct msghdr *m = &io->msgs[i].msg_hdr;
        size_t len = io->msgs[i].msg_len;
        size_t seg = len;
        bool is_server = sh->ep->cfg.server != 0;
        ngtcp2_sockaddr_union local = sh->local;
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(m); cm; cm = CMSG_NXTHDR(m, cm)) {
            if (cm->cmsg_level == SOL_UDP && cm->cmsg_type == UDP_GRO) {
                int g;
                memcpy(&g, CMSG_DATA(cm), sizeof(g));
                if (g > 0) seg = (size_t)g;
            } else if (!is_server) {
                continue; /* a client's paths use its socket's own address */
            } else if (cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_PKTINFO) {
                struct in_pktinfo pi;
                memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
                local.in.sin_addr = pi.ipi_addr;
            } else if (cm->cmsg_level == IPPROTO_IPV6 && cm->cmsg_type == IPV6_PKTINFO) {
                struct in6_pktinfo pi;
                memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
                local.in6.sin6_addr = pi.ipi6_addr;
            }
        }
        ngtcp2_path path = {
            .local = {.addr = &local.sa, .addrlen = sh->local_len},
            .remote = {.addr = &io->from[i].sa, .addrlen = m->msg_namelen},
        };
        const uint8_t *p = io->iov[i].iov_base;
        for (size_t off = 0; off < len; off += seg) {
            nana_quic_shard_recv(sh, &path, p + off, len - off < seg ? len - off : seg, 0, ts);
            /* A client with requests worth a couple of packets waiting
             * sends them now rather than after the whole batch: the server
             * then works on the first requests while this thread turns the
             * rest of a burst of replies (one GRO'd read) into new ones,
             * instead of the two sides taking turns (one connection, 256
             * calls in flight: ~340K -> ~600K calls/s). A server does not:
             * its many connections keep the clients busy, and sending
             * early there cost more system calls than it won (16 x 64:
             * ~670K without, ~460K with). */
            if (early && sh->unflushed >= NANA_Q_EARLY_FLUSH) nana_quic_shard_flush(sh, ts);
        }
    }
    return n;
}

/* ------------------------------------------------------------------ */
/* Posts                                                                */
/* ------------------------------------------------------------------ */

int nana_quic_io_post(nana_quic_shard *sh, nana_quic_post_item *it)
{
    pthread_mutex_lock(&sh->post_mu);
    if (sh->stopping) {
        pthread_mutex_unlock(&sh->post_mu);
        return nana_err_set(NANA_ERR_CLOSED, "the endpoint is shutting down");
    }
    if (sh->nposts >= NANA_Q_MAX_POSTS) {
        pthread_mutex_unlock(&sh->post_mu);
        return nana_err_set(NANA_ERR_BUSY, "the I/O thread has %d posts waiting", NANA_Q_MAX_POSTS);
    }
    sh->nposts++;
    it->next = NULL;
    bool was_empty = sh->post_head == NULL;
    if (sh->post_tail)
        sh->post_tail->next = it;
    else
        sh->post_head = it;
    sh->post_tail = it;
    pthread_mutex_unlock(&sh->post_mu);
    if (was_empty) {
        uint64_t one = 1;
        ssize_t w = write(sh->efd, &one, sizeof(one));
        (void)w;
    }
    return NANA_OK;
}

/* Runs every posted item on this (the owning) thread. */
static void run_posts(nana_quic_shard *sh, uint64_t ts)
{
    pthread_mutex_lock(&sh->post_mu);
    nana_quic_post_item *it = sh->post_head;
    sh->post_head = sh->post_tail = NULL;
    sh->nposts = 0;
    pthread_mutex_unlock(&sh->post_mu);
    while (it) {
        nana_quic_post_item *next = it->next;
        if (it->pkt) {
            ngtcp2_path path = {
                .local = {.addr = &it->local.sa, .addrlen = it->local_len},
                .remote = {.addr = &it->remote.sa, .addrlen = it->remote_len},
            };
            nana_quic_shard_recv(sh, &path, it->pkt, it->pktlen, 0, ts);
            free(it->pkt);
        } else {
            nana_quic_conn *c = nana_quic_shard_by_handle(sh, it->handle);
            if (c && (c->dead || c->state == CONN_CLOSING || c->state == CONN_DRAINING)) c = NULL;
            sh->now = ts;
            it->fn(c, it->arg);
            if (c && !c->dead) nana_quic_shard_dirty(sh, c);
        }
        free(it);
        it = next;
    }
}

/* ------------------------------------------------------------------ */
/* The I/O thread                                                       */
/* ------------------------------------------------------------------ */

/*
 * Waits for the socket, a post, or the shard's next timer. epoll_pwait2
 * takes a nanosecond timeout, so pacing and loss timers need no timerfd
 * (one system call per wait instead of three); kernels without it fall
 * back to epoll_wait with the timeout rounded up to a millisecond.
 */
static int wait_events(nana_quic_io *io, struct epoll_event *ev, int max)
{
    nana_quic_shard *sh = io->sh;
    uint64_t now = nana_quic_now();
    uint64_t d = nana_quic_shard_next_timeout(sh, now);
    if (sh->tick_fn) {
        uint64_t t = sh->tick_next > now ? sh->tick_next - now : 0;
        if (t < d) d = t;
    }
    if (io->pwait2) {
        struct timespec to, *top = NULL;
        if (d != UINT64_MAX) {
            to.tv_sec = (time_t)(d / NANA_Q_NS);
            to.tv_nsec = (long)(d % NANA_Q_NS);
            top = &to;
        }
        int n = epoll_pwait2(sh->epfd, ev, max, top, NULL);
        if (n >= 0 || errno != ENOSYS) return n;
        io->pwait2 = false;
    }
    int ms = d == UINT64_MAX ? -1 : (int)((d + 999999) / 1000000);
    return epoll_wait(sh->epfd, ev, max, ms);
}

static void *io_main(void *arg)
{
    nana_quic_io *io = arg;
    nana_quic_shard *sh = io->sh;
    char name[16];
    snprintf(name, sizeof(name), "nanaq-%c%u", sh->ep->cfg.server ? 's' : 'c', sh->index);
    pthread_setname_np(pthread_self(), name);
    struct epoll_event ev[4];
    for (;;) {
        int n = wait_events(io, ev, 4);
        if (n < 0 && errno != EINTR) break;
        uint64_t ts = nana_quic_now();
        bool readable = false, posted = false;
        for (int i = 0; i < n; i++) {
            if (ev[i].data.fd == sh->efd) {
                uint64_t cnt;
                ssize_t r = read(sh->efd, &cnt, sizeof(cnt));
                (void)r;
                posted = true;
            } else {
                readable = true;
            }
        }
        if (posted) run_posts(sh, ts);
        for (int r = 0; readable && r < RX_ROUNDS; r++)
            if (read_batch(io, ts) < RX_BATCH) break;
        if (sh->tick_fn && ts >= sh->tick_next) {
            sh->now = ts;
            uint64_t next = sh->tick_fn(sh->tick_arg);
            sh->tick_next = ts + (next ? next : sh->tick_ns);
        }
        nana_quic_shard_flush(sh, ts);
        if (posted) {
            pthread_mutex_lock(&sh->post_mu);
            bool stop = sh->stopping;
            pthread_mutex_unlock(&sh->post_mu);
            if (stop) break;
        }
    }
    /* Shutdown: say goodbye to every peer, then run what is left. */
    uint64_t ts = nana_quic_now();
    run_posts(sh, ts);
    nana_quic_shard_close_all(sh, ts);
    nana_quic_shard_flush(sh, ts);
    return NULL;
}

/* Sets up one shard's socket, eventfd and epoll instance. */
static int io_setup(nana_quic_ep *ep, nana_quic_shard *sh, const ngtcp2_sockaddr_union *addr,
                    socklen_t alen)
{
    nana_quic_io *io = calloc(1, sizeof(*io));
    if (!io) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    sh->io = io;
    io->sh = sh;
    io->tx.send = io_send;
    io->tx.flush = io_flush;
    io->pwait2 = true;
    sh->tx = &io->tx;
    io->bufs = malloc((size_t)RX_BATCH * RX_BUF);
    if (!io->bufs) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    int rc = open_socket(addr, alen, ep->cfg.server && ep->nshards > 1, &sh->fd);
    if (rc) return rc;
    socklen_t l = sizeof(sh->local);
    getsockname(sh->fd, &sh->local.sa, &l);
    sh->local_len = l;
    nana_quic_txq_init(&io->txq, sh->fd, ep->cfg.server && bound_wildcard(sh), &sh->st);
    sh->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    sh->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (sh->efd < 0 || sh->epfd < 0)
        return nana_err_set(NANA_ERR_IO, "eventfd/epoll: %s", strerror(errno));
    int fds[2] = {sh->fd, sh->efd};
    for (int i = 0; i < 2; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fds[i]};
        if (epoll_ctl(sh->epfd, EPOLL_CTL_ADD, fds[i], &ev) != 0)
            return nana_err_set(NANA_ERR_IO, "epoll_ctl: %s", strerror(errno));
    }
    return NANA_OK;
}

static void io_teardown(nana_quic_shard *sh)
{
    nana_quic_io *io = sh->io;
    if (sh->fd >= 0) close(sh->fd);
    if (sh->efd >= 0) close(sh->efd);
    if (sh->epfd >= 0) close(sh->epfd);
    if (io) {
        free(io->bufs);
        free(io);
    }
    sh->io = NULL;
    sh->fd = sh->efd = sh->epfd = -1;
}

int nana_quic_io_start(nana_quic_ep *ep)
{
    ngtcp2_sockaddr_union addr;
    socklen_t alen;
    const char *host = ep->cfg.host ? ep->cfg.host : (ep->cfg.server ? "127.0.0.1" : NULL);
    int rc;
    if (host) {
        rc = make_addr(host, ep->cfg.port, &addr, &alen);
    } else {
        rc = make_addr("0.0.0.0", 0, &addr, &alen); /* client: any local port */
    }
    if (rc) return rc;
    for (unsigned i = 0; i < ep->nshards; i++) {
        rc = io_setup(ep, &ep->shards[i], &addr, alen);
        if (rc) return rc;
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
    for (unsigned i = 0; i < ep->nshards; i++) {
        if (pthread_create(&ep->shards[i].thread, NULL, io_main, ep->shards[i].io) != 0)
            return nana_err_set(NANA_ERR_NOMEM, "cannot start an I/O thread");
        ep->shards[i].started = true;
    }
    return NANA_OK;
}

void nana_quic_io_stop(nana_quic_ep *ep)
{
    for (unsigned i = 0; i < ep->nshards; i++) {
        nana_quic_shard *sh = &ep->shards[i];
        pthread_mutex_lock(&sh->post_mu);
        sh->stopping = true;
        pthread_mutex_unlock(&sh->post_mu);
        if (sh->efd >= 0) {
            uint64_t one = 1;
            ssize_t w = write(sh->efd, &one, sizeof(one));
            (void)w;
        }
    }
    for (unsigned i = 0; i < ep->nshards; i++) {
        if (ep->shards[i].started) pthread_join(ep->shards[i].thread, NULL);
        ep->shards[i].started = false;
    }
}

/* ------------------------------------------------------------------ */
/* Public endpoint functions                                            */
/* ------------------------------------------------------------------ */

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
            io_teardown(&ep->shards[i]);
        }
        free(ep->shards);
    }
    nana_quic_admit_free(&ep->admit);
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
    if ((rc = nana_quic_admit_init(&ep->admit, ep->cfg.max_connections, ep->cfg.max_conns_per_addr,
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

int nana_quic_post(nana_quic_ep *ep, nana_quic_handle h, void (*fn)(nana_quic_conn *c, void *arg),
                   void *arg)
{
    unsigned idx = (unsigned)(h & 0xff);
    if (idx >= ep->nshards) return nana_err_set(NANA_ERR_INVALID, "not a connection handle");
    nana_quic_post_item *it = calloc(1, sizeof(*it));
    if (!it) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    it->handle = h;
    it->fn = fn;
    it->arg = arg;
    int rc = nana_quic_io_post(&ep->shards[idx], it);
    if (rc) free(it);
    return rc;
}

/* A connect request travelling to the client's I/O thread. */
typedef struct connect_req {
    nana_quic_ep *ep;
    ngtcp2_sockaddr_union remote;
    socklen_t remote_len;
    char server_name[256];
    uint8_t *ticket;
    size_t ticket_len;
    void *data;
    nana_quic_handle handle;
} connect_req;

static void do_connect(nana_quic_conn *unused, void *arg)
{
    (void)unused;
    connect_req *r = arg;
    nana_quic_shard *sh = &r->ep->shards[0];
    nana_quic_conn *c;
    if (nana_quic_conn_connect(sh, &r->remote.sa, r->remote_len, r->server_name, r->ticket,
                               r->ticket_len, r->data, r->handle, sh->now, &c) == 0)
        nana_quic_shard_dirty(sh, c);
    free(r->ticket);
    free(r);
}

int nana_quic_connect(nana_quic_ep *ep, const char *host, uint16_t port, const char *server_name,
                      const uint8_t *ticket, size_t ticket_len, void *conn_data,
                      nana_quic_handle *out)
{
    if (ep->cfg.server) return nana_err_set(NANA_ERR_INVALID, "a server endpoint cannot connect");
    connect_req *r = calloc(1, sizeof(*r));
    if (!r) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    int rc = make_addr(host, port, &r->remote, &r->remote_len);
    if (rc) {
        free(r);
        return rc;
    }
    /* The client socket is IPv4 or IPv6; the peer must match. */
    if (r->remote.sa.sa_family != ep->shards[0].local.sa.sa_family) {
        free(r);
        return nana_err_set(NANA_ERR_INVALID, "the client endpoint's socket is not of that family");
    }
    r->ep = ep;
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
    r->handle = nana_quic_shard_new_handle(&ep->shards[0]);
    *out = r->handle;
    rc = nana_quic_post(ep, r->handle, do_connect, r);
    if (rc) {
        free(r->ticket);
        free(r);
    }
    return rc;
}

/* A rebind request: the new socket and a way to wait for it. */
typedef struct rebind_req {
    nana_quic_ep *ep;
    int fd;
    atomic_int done;
} rebind_req;

/* On the client's I/O thread: swaps the socket, migrates every connection. */
static void do_rebind(nana_quic_conn *unused, void *arg)
{
    (void)unused;
    rebind_req *r = arg;
    nana_quic_shard *sh = &r->ep->shards[0];
    int old = sh->fd;
    nana_quic_txq_flush(&sh->io->txq); /* what was queued leaves by the old socket */
    sh->io->txq.fd = r->fd;
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = r->fd};
    epoll_ctl(sh->epfd, EPOLL_CTL_DEL, old, NULL);
    epoll_ctl(sh->epfd, EPOLL_CTL_ADD, r->fd, &ev);
    sh->fd = r->fd;
    socklen_t l = sizeof(sh->local);
    getsockname(sh->fd, &sh->local.sa, &l);
    sh->local_len = l;
    close(old);
    for (nana_quic_conn *c = sh->conns; c; c = c->next) {
        if (c->dead || c->state == CONN_CLOSING || c->state == CONN_DRAINING) continue;
        memcpy(&c->local_store, &sh->local, sh->local_len);
        ngtcp2_path path = *ngtcp2_conn_get_path(c->q);
        path.local.addr = &c->local_store.sa;
        path.local.addrlen = sh->local_len;
        path.user_data = NULL;
        ngtcp2_conn_initiate_immediate_migration(c->q, &path, sh->now);
        nana_quic_shard_dirty(sh, c);
    }
    atomic_store(&r->done, 1);
}

int nana_quic_ep_rebind(nana_quic_ep *ep)
{
    if (ep->cfg.server) return nana_err_set(NANA_ERR_INVALID, "only a client endpoint rebinds");
    nana_quic_shard *sh = &ep->shards[0];
    ngtcp2_sockaddr_union any;
    socklen_t alen;
    int rc = make_addr(sh->local.sa.sa_family == AF_INET ? "0.0.0.0" : "::", 0, &any, &alen);
    if (rc) return rc;
    rebind_req r = {.ep = ep};
    atomic_init(&r.done, 0);
    if ((rc = open_socket(&any, alen, false, &r.fd))) return rc;
    nana_quic_post_item *it = calloc(1, sizeof(*it));
    if (!it) {
        close(r.fd);
        return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    }
    it->handle = (uint64_t)1 << 8; /* any handle of shard 0: the function needs no connection */
    it->fn = do_rebind;
    it->arg = &r;
    if ((rc = nana_quic_io_post(sh, it))) {
        free(it);
        close(r.fd);
        return rc;
    }
    while (!atomic_load(&r.done))
        usleep(200);
    return NANA_OK;
}

typedef struct tick_req {
    nana_quic_shard *sh;
    uint64_t ns;
    uint64_t (*fn)(void *arg);
    void *arg;
} tick_req;

/* On an I/O thread: installs (or removes) its tick. */
static void do_set_tick(nana_quic_conn *unused, void *arg)
{
    (void)unused;
    tick_req *r = arg;
    nana_quic_shard *sh = r->sh;
    sh->tick_fn = r->ns ? r->fn : NULL;
    sh->tick_arg = r->arg;
    sh->tick_ns = r->ns;
    sh->tick_next = nana_quic_now();
    free(r);
}

int nana_quic_ep_set_tick(nana_quic_ep *ep, uint64_t interval_ns, uint64_t (*fn)(void *arg),
                          void *arg)
{
    if (interval_ns && !fn) return nana_err_set(NANA_ERR_INVALID, "a tick needs a function");
    for (unsigned i = 0; i < ep->nshards; i++) {
        tick_req *r = malloc(sizeof(*r));
        if (!r) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
        *r = (tick_req){&ep->shards[i], interval_ns, fn, arg};
        /* any handle of shard i: the function needs no connection */
        int rc = nana_quic_post(ep, ((uint64_t)1 << 8) | i, do_set_tick, r);
        if (rc) {
            free(r);
            return rc;
        }
    }
    return NANA_OK;
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

/*
 * A request for the counters of every I/O thread. The counters are plain
 * fields that only their thread writes, so only that thread may read them
 * while it runs: each thread copies its own into its slot here. The caller
 * may stop waiting before every thread answered, so the last of the caller
 * and the threads to let go frees it.
 */
typedef struct stats_req {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned refs;    /* the caller + threads that still hold it */
    unsigned waiting; /* threads yet to answer */
    nana_quic_stats st[NANA_Q_MAX_SHARDS];
    bool answered[NANA_Q_MAX_SHARDS];
} stats_req;

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

/* A stats_req slot travelling to one I/O thread. */
typedef struct stats_ask {
    stats_req *r;
    nana_quic_shard *sh;
} stats_ask;

/* On an I/O thread: copies its counters into the request. */
static void do_stats(nana_quic_conn *unused, void *arg)
{
    (void)unused;
    stats_ask *a = arg;
    stats_req *r = a->r;
    pthread_mutex_lock(&r->mu);
    r->st[a->sh->index] = a->sh->st;
    r->answered[a->sh->index] = true;
    r->waiting--;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    free(a);
    stats_req_release(r);
}

/* True if the calling thread is |sh|'s running I/O thread. */
static bool on_io_thread(const nana_quic_shard *sh)
{
    return sh->started && pthread_equal(pthread_self(), sh->thread);
}

int nana_quic_ep_stats(nana_quic_ep *ep, nana_quic_stats *out)
{
    memset(out, 0, sizeof(*out));
    stats_req *r = calloc(1, sizeof(*r));
    if (!r) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&r->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cv, &ca);
    pthread_condattr_destroy(&ca);
    r->refs = 1;
    int rc = NANA_OK;
    for (unsigned i = 0; i < ep->nshards; i++) {
        nana_quic_shard *sh = &ep->shards[i];
        if (!sh->started || on_io_thread(sh)) {
            /* No thread (detached, or already stopped), or this is it. */
            r->st[i] = sh->st;
            r->answered[i] = true;
            continue;
        }
        stats_ask *a = malloc(sizeof(*a));
        nana_quic_post_item *it = calloc(1, sizeof(*it));
        if (!a || !it) {
            free(a);
            free(it);
            rc = nana_err_set(NANA_ERR_NOMEM, "out of memory");
            continue;
        }
        *a = (stats_ask){r, sh};
        it->handle = i; /* serial 0 of shard i: no connection has it */
        it->fn = do_stats;
        it->arg = a;
        pthread_mutex_lock(&r->mu);
        r->refs++;
        r->waiting++;
        pthread_mutex_unlock(&r->mu);
        int prc = nana_quic_io_post(sh, it);
        if (prc) {
            pthread_mutex_lock(&r->mu);
            r->refs--;
            r->waiting--;
            pthread_mutex_unlock(&r->mu);
            free(a);
            free(it);
            rc = prc;
        }
    }
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += NANA_QUIC_STATS_WAIT_MS / 1000;
    dl.tv_nsec += (long)(NANA_QUIC_STATS_WAIT_MS % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
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
    nana_quic_admit_counts(&ep->admit, &total, &untrusted, &evicted, &refused);
    out->conns_untrusted = untrusted;
    return rc;
}

uint64_t nana_quic_ep_cpu_ns(nana_quic_ep *ep)
{
    uint64_t total = 0;
    for (unsigned i = 0; i < ep->nshards; i++) {
        clockid_t cid;
        struct timespec ts;
        if (!ep->shards[i].started || pthread_getcpuclockid(ep->shards[i].thread, &cid) != 0 ||
            clock_gettime(cid, &ts) != 0)
            continue;
        total += (uint64_t)ts.tv_sec * NANA_Q_NS + (uint64_t)ts.tv_nsec;
    }
    return total;
}
