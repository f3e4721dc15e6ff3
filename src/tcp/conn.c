/*
 * conn.c - one TCP connection on its loop: the handshake, reading into the
 * layer above, the send buffer and its writing, the deadlines, and the
 * three ways to close.
 *
 * Reading: each readiness reads at most NANA_TCP_READ_BUDGET bytes (the
 * shard's one read buffer, so nothing is allocated per read) and hands
 * each piece to recv; more than the budget waits for the next iteration
 * (the kick timer, since TLS may hold decrypted bytes the socket no longer
 * signals). While the send buffer is over the cap the connection stops
 * reading (backpressure), so a peer that sends without reading the answers
 * costs at most the cap; once the buffer drains to half the cap reading
 * resumes and writable tells the layer above.
 *
 * Writing: nana_tcp_send copies into the send buffer and puts the
 * connection on the shard's dirty list; the shard's before-sleep hook
 * writes it out, a TLS record (16 KiB) at a time. A record the socket
 * would not take (GNUTLS_E_AGAIN) is repeated with the same bytes when
 * EPOLLOUT says there is room; the buffer is only appended to meanwhile.
 *
 * Deadlines: one loop timer per connection, armed for the earliest of the
 * handshake, untrusted, idle, linger and application deadlines. Bytes
 * moving do not re-arm it: when it fires at an idle deadline that moved,
 * it is armed again for the new one.
 *
 * Closing: kill (errors, timeouts, eviction, nana_tcp_conn_close not
 * graceful) puts the connection on the dead list at once; a graceful close
 * writes what is queued, sends close_notify, shuts the socket for writing
 * and reads (discarding) until the peer's end, all bounded by
 * NANA_TCP_LINGER_MS, so the peer reads everything before the socket
 * closes (closing with unread input would reset the connection and could
 * destroy answers the peer had not read yet). The hook frees dead
 * connections; conn_close is their last callback.
 */
#include "tcp/tcp_int.h"

#include "util/nana_log.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- lists ------------------------------------------------------------- */

void nana_tcp_list_init(nana_tcp_link *h)
{
    h->prev = h->next = h;
}

bool nana_tcp_list_empty(const nana_tcp_link *h)
{
    return h->next == h;
}

bool nana_tcp_linked(const nana_tcp_link *l)
{
    return l->next != NULL;
}

void nana_tcp_list_add(nana_tcp_link *h, nana_tcp_link *l)
{
    l->prev = h->prev;
    l->next = h;
    h->prev->next = l;
    h->prev = l;
}

void nana_tcp_list_del(nana_tcp_link *l)
{
    if (!l->next) return;
    l->prev->next = l->next;
    l->next->prev = l->prev;
    l->prev = l->next = NULL;
}

/* ---- handles ------------------------------------------------------------ */

/* The bucket of |h| in a table of |n| (a power of two) buckets. */
static size_t bucket(uint64_t h, size_t n)
{
    return (size_t)((h * 0x9E3779B97F4A7C15ull) >> 32) & (n - 1);
}

/* Doubles the handle table when it holds more connections than buckets;
 * without memory the chains just grow longer. */
static void grow(nana_tcp_shard *sh)
{
    if (sh->nconns < sh->nbuckets) return;
    size_t n = sh->nbuckets * 2;
    nana_tcp_conn **t = calloc(n, sizeof(*t));
    if (!t) return;
    for (size_t i = 0; i < sh->nbuckets; i++)
        for (nana_tcp_conn *c = sh->buckets[i], *next; c; c = next) {
            next = c->hnext;
            size_t j = bucket(c->handle, n);
            c->hnext = t[j];
            t[j] = c;
        }
    free(sh->buckets);
    sh->buckets = t;
    sh->nbuckets = n;
}

nana_tcp_conn *nana_tcp_shard_find(nana_tcp_shard *sh, uint64_t handle)
{
    for (nana_tcp_conn *c = sh->buckets[bucket(handle, sh->nbuckets)]; c; c = c->hnext)
        if (c->handle == handle) return c;
    return NULL;
}

/* Takes |c| out of the handle table. */
static void unhash(nana_tcp_conn *c)
{
    nana_tcp_shard *sh = c->sh;
    nana_tcp_conn **p = &sh->buckets[bucket(c->handle, sh->nbuckets)];
    while (*p && *p != c)
        p = &(*p)->hnext;
    if (*p) *p = c->hnext;
    sh->nconns--;
}

/* ---- events and the timer ----------------------------------------------- */

/* Watches for what the connection waits for now. */
static void update_events(nana_tcp_conn *c)
{
    if (c->state == NANA_TCP_DEAD) return;
    uint32_t ev = c->want_out || c->state == NANA_TCP_CONNECTING ? EPOLLOUT : 0;
    if (!c->read_paused && c->state != NANA_TCP_CONNECTING) ev |= EPOLLIN;
    if (ev == c->events) return;
    if (nana_loop_fd_mod(c->sh->loop, &c->src, ev) != 0) {
        nana_tcp_conn_kill(c, "the event loop refused the socket");
        return;
    }
    c->events = ev;
}

/* The earliest deadline of |c|, 0 for none. */
static uint64_t next_deadline(const nana_tcp_conn *c)
{
    const nana_tcp_config *cfg = &c->sh->ep->cfg;
    uint64_t d = 0;
#define EARLIER(t)                                                                                 \
    do {                                                                                           \
        uint64_t t_ = (t);                                                                         \
        if (t_ && (!d || t_ < d)) d = t_;                                                          \
    } while (0)
    if (c->state <= NANA_TCP_HANDSHAKE) EARLIER(c->hs_deadline);
    if (!c->trusted) EARLIER(c->trust_deadline);
    if (c->state >= NANA_TCP_FLUSHING) EARLIER(c->linger_deadline);
    if (c->state == NANA_TCP_OPEN) EARLIER(c->app_timer);
    if (cfg->idle_timeout_ms && c->state >= NANA_TCP_HANDSHAKE)
        EARLIER(c->last_io + (uint64_t)cfg->idle_timeout_ms * NANA_TCP_MS);
#undef EARLIER
    return d;
}

void nana_tcp_conn_arm(nana_tcp_conn *c)
{
    if (c->state == NANA_TCP_DEAD) return;
    uint64_t d = next_deadline(c);
    if (!d) return; /* an armed timer finds nothing and stays off */
    if (!nana_loop_timer_armed(&c->timer) || c->timer.when > d)
        nana_loop_timer_start(c->sh->loop, &c->timer, d);
}

/* The timer: whichever deadline came. */
static void on_timer(nana_loop *loop, nana_loop_timer *t)
{
    nana_tcp_conn *c = NANA_TCP_OF(t, nana_tcp_conn, timer);
    nana_tcp_ep *ep = c->sh->ep;
    uint64_t now = nana_loop_now(loop);
    if (c->state == NANA_TCP_DEAD) return;
    if (c->state <= NANA_TCP_HANDSHAKE && c->hs_deadline && c->hs_deadline <= now) {
        atomic_fetch_add(&ep->n_hs_timeout, 1);
        nana_tcp_conn_kill(c, ep->server ? "handshake timeout" : "connect timeout");
        return;
    }
    if (!c->trusted && c->trust_deadline && c->trust_deadline <= now) {
        atomic_fetch_add(&ep->n_trust_timeout, 1);
        nana_tcp_conn_kill(c, "not trusted in time");
        return;
    }
    if (c->state >= NANA_TCP_FLUSHING && c->linger_deadline <= now) {
        nana_tcp_conn_kill(c, "graceful close took too long");
        return;
    }
    uint64_t idle = (uint64_t)ep->cfg.idle_timeout_ms * NANA_TCP_MS;
    if (idle && c->last_io + idle <= now) {
        atomic_fetch_add(&ep->n_idle_timeout, 1);
        nana_tcp_conn_kill(c, "idle timeout");
        return;
    }
    if (c->state == NANA_TCP_OPEN && c->app_timer && c->app_timer <= now) {
        c->app_timer = 0;
        if (ep->cb.timer) ep->cb.timer(c, c->user);
    }
    nana_tcp_conn_arm(c);
}

/* ---- closing ------------------------------------------------------------ */

void nana_tcp_conn_kill(nana_tcp_conn *c, const char *why)
{
    if (c->state == NANA_TCP_DEAD) return;
    if (why && !c->error[0]) snprintf(c->error, sizeof(c->error), "%s", why);
    c->state = NANA_TCP_DEAD;
    nana_tcp_list_del(&c->dirty);
    nana_tcp_list_del(&c->more);
    nana_tcp_list_add(&c->sh->dead, &c->dead);
    nana_tcp_shard_kick(c->sh);
}

/* Records an error of the connection's own (a detail for its log line). */
static void fail(nana_tcp_conn *c, const char *what, const char *detail)
{
    if (!c->error[0]) snprintf(c->error, sizeof(c->error), "%s: %s", what, detail);
    nana_tcp_conn_kill(c, NULL);
}

/* Graceful close, last steps: close_notify, then shut for writing and read
 * to the peer's end. */
static void say_bye(nana_tcp_conn *c)
{
    c->state = NANA_TCP_BYE;
    if (c->tls) {
        int rc = gnutls_bye(c->tls, GNUTLS_SHUT_WR);
        if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED) {
            c->want_out = true;
            c->read_paused = true; /* only EPOLLOUT matters now */
            update_events(c);
            return;
        }
        if (rc < 0) {
            nana_tcp_conn_kill(c, NULL);
            return;
        }
    }
    c->want_out = false;
    c->state = NANA_TCP_LINGER;
    if (shutdown(c->fd, SHUT_WR) != 0) {
        nana_tcp_conn_kill(c, NULL);
        return;
    }
    c->read_paused = false;
    update_events(c);
}

void nana_tcp_conn_close(nana_tcp_conn *c, int graceful)
{
    if (c->state == NANA_TCP_DEAD) return;
    if (!graceful || c->state < NANA_TCP_OPEN) {
        nana_tcp_conn_kill(c, NULL);
        return;
    }
    if (c->state >= NANA_TCP_FLUSHING) return;
    c->state = NANA_TCP_FLUSHING;
    c->linger_deadline = nana_loop_now(c->sh->loop) + (uint64_t)NANA_TCP_LINGER_MS * NANA_TCP_MS;
    nana_tcp_conn_arm(c);
    if (!nana_tcp_linked(&c->dirty)) nana_tcp_list_add(&c->sh->dirty, &c->dirty);
    nana_tcp_shard_kick(c->sh);
}

/* ---- writing ------------------------------------------------------------ */

/* The send buffer is empty: start over at its front; a large one goes. */
static void drained(nana_tcp_conn *c)
{
    c->off = c->len = 0;
    if (c->cap > NANA_TCP_KEEP_BUF) {
        free(c->out);
        c->out = NULL;
        c->cap = 0;
    }
}

/* Writes as much of the send buffer as the socket takes. */
static void flush(nana_tcp_conn *c)
{
    while (c->len > c->off) {
        ssize_t n;
        if (c->tls) {
            size_t want = c->record_pending ? c->pending : c->len - c->off;
            if (want > NANA_TCP_RECORD) want = NANA_TCP_RECORD;
            n = gnutls_record_send(c->tls, c->out + c->off, want);
            if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
                c->record_pending = true;
                c->pending = want;
                break;
            }
            if (n < 0) {
                fail(c, "TLS send", gnutls_strerror((int)n));
                return;
            }
            c->record_pending = false;
        } else {
            n = send(c->fd, c->out + c->off, c->len - c->off, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) break;
                fail(c, "send", strerror(errno));
                return;
            }
            if (n > 0) c->last_io = nana_loop_now(c->sh->loop);
        }
        c->off += (size_t)n;
    }
    bool empty = c->len == c->off;
    if (empty) drained(c);
    if (c->want_out != !empty) {
        c->want_out = !empty;
        update_events(c);
    }
}

/* Writes, then does what the buffer's new level asks: resume reading and
 * tell the layer above, or go on with a graceful close. */
static void write_out(nana_tcp_conn *c)
{
    if (c->state != NANA_TCP_OPEN && c->state != NANA_TCP_FLUSHING) return;
    flush(c);
    if (c->state == NANA_TCP_DEAD) return;
    if (c->state == NANA_TCP_FLUSHING) {
        if (c->len == c->off) say_bye(c);
        return;
    }
    size_t cap = c->sh->ep->cfg.max_out_bytes;
    if (c->over && c->len - c->off <= cap / 2) {
        c->over = false;
        if (c->read_paused) {
            c->read_paused = false;
            update_events(c);
            /* TLS may hold bytes already read: look again soon. */
            if (!nana_tcp_linked(&c->more)) nana_tcp_list_add(&c->sh->more, &c->more);
            nana_tcp_shard_kick(c->sh);
        }
        if (c->sh->ep->cb.writable) c->sh->ep->cb.writable(c, c->user);
    }
}

int nana_tcp_send(nana_tcp_conn *c, const void *p, size_t n)
{
    if (c->state != NANA_TCP_OPEN)
        return nana_err_set(NANA_ERR_CLOSED, "the connection is closing");
    if (n == 0) return NANA_OK;
    if (c->cap - c->len < n) {
        /* Compact when that makes room (never under a record to repeat,
         * whose bytes GnuTLS may still point at); else grow. */
        if (c->off && !c->record_pending && c->cap - (c->len - c->off) >= n) {
            memmove(c->out, c->out + c->off, c->len - c->off);
            c->len -= c->off;
            c->off = 0;
        } else {
            size_t want = c->len + n, cap = c->cap ? c->cap : 4096;
            while (cap < want)
                cap *= 2;
            uint8_t *t = realloc(c->out, cap);
            if (!t) return nana_err_set(NANA_ERR_NOMEM, "out of memory for %zu bytes to send", n);
            c->out = t;
            c->cap = cap;
        }
    }
    memcpy(c->out + c->len, p, n);
    c->len += n;
    if (c->len - c->off >= c->sh->ep->cfg.max_out_bytes && !c->over) {
        c->over = true;
        c->read_paused = true;
        update_events(c);
    }
    if (!nana_tcp_linked(&c->dirty)) {
        nana_tcp_list_add(&c->sh->dirty, &c->dirty);
        nana_tcp_shard_kick(c->sh);
    }
    return NANA_OK;
}

size_t nana_tcp_send_room(const nana_tcp_conn *c)
{
    size_t q = c->len - c->off, cap = c->sh->ep->cfg.max_out_bytes;
    return q >= cap ? 0 : cap - q;
}

size_t nana_tcp_send_queued(const nana_tcp_conn *c)
{
    return c->len - c->off;
}

/* ---- reading ------------------------------------------------------------ */

/* Reads once into the shard's buffer: bytes, 0 at the peer's end, -1 when
 * nothing more now, -2 on an error (recorded). */
static ssize_t read_some(nana_tcp_conn *c)
{
    uint8_t *buf = c->sh->rx;
    for (;;) {
        if (c->tls) {
            ssize_t n = gnutls_record_recv(c->tls, buf, NANA_TCP_RXBUF);
            if (n >= 0) return n;
            if (n == GNUTLS_E_INTERRUPTED) continue;
            if (n == GNUTLS_E_AGAIN) {
                c->read_wants_out = gnutls_record_get_direction(c->tls) == 1;
                return -1;
            }
            if (n == GNUTLS_E_PREMATURE_TERMINATION) return 0; /* no close_notify */
            if (!gnutls_error_is_fatal((int)n) && n != GNUTLS_E_REHANDSHAKE) continue;
            fail(c, "TLS receive", gnutls_strerror((int)n));
            return -2;
        }
        ssize_t n = recv(c->fd, buf, NANA_TCP_RXBUF, 0);
        if (n > 0) c->last_io = nana_loop_now(c->sh->loop);
        if (n >= 0) return n;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return -1;
        fail(c, "receive", strerror(errno));
        return -2;
    }
}

/* Reads up to the budget and hands the bytes to recv (or drops them while
 * closing gracefully). */
static void do_read(nana_tcp_conn *c)
{
    c->read_wants_out = false;
    size_t budget = NANA_TCP_READ_BUDGET;
    while (c->state >= NANA_TCP_OPEN && c->state < NANA_TCP_DEAD && !c->read_paused) {
        if (budget == 0) {
            if (!nana_tcp_linked(&c->more)) nana_tcp_list_add(&c->sh->more, &c->more);
            nana_tcp_shard_kick(c->sh);
            return;
        }
        ssize_t n = read_some(c);
        if (n == -1 || n == -2) break;
        if (n == 0) {
            /* The peer's end: nothing more to say to it either. */
            nana_tcp_conn_kill(c, c->state == NANA_TCP_OPEN ? "closed by the peer" : NULL);
            return;
        }
        budget = (size_t)n >= budget ? 0 : budget - (size_t)n;
        if (c->state != NANA_TCP_OPEN) continue; /* closing: dropped */
        int rc = c->sh->ep->cb.recv(c, c->user, c->sh->rx, (size_t)n);
        if (rc < 0) nana_tcp_conn_close(c, 1);
    }
    if (c->read_wants_out && !c->want_out && c->state != NANA_TCP_DEAD) {
        c->want_out = true;
        update_events(c);
    }
}

/* ---- the handshake ------------------------------------------------------ */

void nana_tcp_conn_opened(nana_tcp_conn *c)
{
    nana_tcp_ep *ep = c->sh->ep;
    c->state = NANA_TCP_OPEN;
    c->hs_deadline = 0;
    int rc = ep->cb.conn_open(c, ep->cfg.user);
    if (rc != 0) {
        nana_tcp_conn_kill(c, "refused by the application");
        return;
    }
    c->opened = true;
    if (c->state == NANA_TCP_DEAD) return;
    nana_tcp_conn_arm(c);
    /* Bytes may have come with the last handshake flight. */
    if (c->tls && gnutls_record_check_pending(c->tls) > 0) {
        if (!nana_tcp_linked(&c->more)) nana_tcp_list_add(&c->sh->more, &c->more);
        nana_tcp_shard_kick(c->sh);
    }
}

void nana_tcp_conn_handshake(nana_tcp_conn *c)
{
    int rc;
    do {
        rc = gnutls_handshake(c->tls);
    } while (rc == GNUTLS_E_INTERRUPTED ||
             (rc < 0 && rc != GNUTLS_E_AGAIN && !gnutls_error_is_fatal(rc)));
    if (rc == GNUTLS_E_AGAIN) {
        bool out = gnutls_record_get_direction(c->tls) == 1;
        if (out != c->want_out) {
            c->want_out = out;
            update_events(c);
        }
        return;
    }
    if (rc < 0) {
        atomic_fetch_add(&c->sh->ep->n_hs_fail, 1);
        /* Tell the peer why when we can (no_application_protocol, ...). */
        (void)gnutls_alert_send_appropriate(c->tls, rc);
        fail(c, "TLS handshake", gnutls_strerror(rc));
        return;
    }
    c->want_out = false;
    update_events(c);
    nana_tcp_tls_peer_info(c);
    nana_tcp_conn_opened(c);
}

/* ---- the socket's readiness --------------------------------------------- */

/* A non-blocking connect ended (connect.c's state before the handshake). */
static void connected(nana_tcp_conn *c)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err) {
        fail(c, "connect", strerror(err));
        return;
    }
    c->last_io = nana_loop_now(c->sh->loop);
    if (!c->tls) {
        c->state = NANA_TCP_OPEN;
        update_events(c);
        nana_tcp_conn_opened(c);
        return;
    }
    c->state = NANA_TCP_HANDSHAKE;
    update_events(c);
    nana_tcp_conn_handshake(c);
}

/* The loop says the socket is ready. */
static void on_io(nana_loop *loop, nana_loop_fd *src, uint32_t events)
{
    (void)loop;
    nana_tcp_conn *c = NANA_TCP_OF(src, nana_tcp_conn, src);
    switch (c->state) {
    case NANA_TCP_CONNECTING:
        connected(c);
        return;
    case NANA_TCP_HANDSHAKE:
        nana_tcp_conn_handshake(c);
        break;
    case NANA_TCP_BYE:
        say_bye(c);
        break;
    case NANA_TCP_DEAD:
        return;
    default:
        if (events & EPOLLOUT) {
            if (c->read_wants_out) do_read(c);
            write_out(c);
        }
        if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) do_read(c);
    }
    /* Hung up or failed, and nothing above noticed (reading paused): gone. */
    if ((events & (EPOLLHUP | EPOLLERR)) && c->state != NANA_TCP_DEAD &&
        (c->read_paused || c->state == NANA_TCP_HANDSHAKE || c->state == NANA_TCP_BYE))
        nana_tcp_conn_kill(c, "connection reset");
}

void nana_tcp_conn_watch(nana_tcp_conn *c)
{
    update_events(c);
}

void nana_tcp_conn_read_more(nana_tcp_conn *c)
{
    do_read(c);
}

void nana_tcp_conn_flush(nana_tcp_conn *c)
{
    write_out(c);
}

int nana_tcp_conn_new(nana_tcp_shard *sh, int fd, uint64_t handle, nana_tcp_conn **out)
{
    nana_tcp_ep *ep = sh->ep;
    nana_tcp_conn *c = calloc(1, sizeof(*c));
    if (!c) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    c->sh = sh;
    c->fd = fd;
    c->handle = handle;
    c->state = NANA_TCP_HANDSHAKE;
    c->last_io = nana_loop_now(sh->loop);
    nana_loop_timer_init(&c->timer, on_timer);
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    int rc = ep->cfg.plaintext ? 0 : nana_tcp_tls_session(&ep->tls, c);
    if (rc) {
        free(c);
        return rc;
    }
    c->events = EPOLLIN;
    if ((rc = nana_loop_fd_add(sh->loop, &c->src, fd, EPOLLIN, on_io))) {
        if (c->tls) gnutls_deinit(c->tls);
        free(c);
        return rc;
    }
    nana_tcp_list_add(&sh->all, &c->all);
    size_t j = bucket(handle, sh->nbuckets);
    c->hnext = sh->buckets[j];
    sh->buckets[j] = c;
    sh->nconns++;
    grow(sh);
    atomic_fetch_add(&ep->n_open, 1);
    *out = c;
    return NANA_OK;
}

void nana_tcp_conn_free(nana_tcp_conn *c)
{
    nana_tcp_shard *sh = c->sh;
    nana_tcp_ep *ep = sh->ep;
    nana_loop_timer_stop(sh->loop, &c->timer);
    (void)nana_loop_fd_del(sh->loop, &c->src);
    nana_tcp_list_del(&c->all);
    nana_tcp_list_del(&c->dirty);
    nana_tcp_list_del(&c->dead);
    nana_tcp_list_del(&c->more);
    unhash(c);
    if (c->opened || !ep->server) ep->cb.conn_close(c, c->user);
    if (c->tls) gnutls_deinit(c->tls);
    close(c->fd);
    if (ep->admit_ready) nana_admit_leave(&ep->admit, c->admit);
    atomic_fetch_sub(&ep->n_open, 1);
    free(c->out);
    free(c);
}

/* ---- the rest of the public face ---------------------------------------- */

void nana_tcp_conn_set_user(nana_tcp_conn *c, void *user)
{
    c->user = user;
}

void *nana_tcp_conn_user(const nana_tcp_conn *c)
{
    return c->user;
}

uint64_t nana_tcp_conn_handle(const nana_tcp_conn *c)
{
    return c->handle;
}

nana_loop *nana_tcp_conn_loop(const nana_tcp_conn *c)
{
    return c->sh->loop;
}

uint64_t nana_tcp_conn_now(const nana_tcp_conn *c)
{
    return nana_loop_now(c->sh->loop);
}

void nana_tcp_conn_set_timer(nana_tcp_conn *c, uint64_t when_ns)
{
    c->app_timer = when_ns;
    if (when_ns) nana_tcp_conn_arm(c);
}

const nana_cert_identity *nana_tcp_conn_identity(const nana_tcp_conn *c)
{
    return &c->id;
}

const char *nana_tcp_conn_alpn(const nana_tcp_conn *c)
{
    return c->alpn;
}

void nana_tcp_conn_peer(const nana_tcp_conn *c, struct sockaddr_storage *a, socklen_t *len)
{
    *a = c->peer;
    *len = c->peerlen;
}

int nana_tcp_conn_trust(nana_tcp_conn *c)
{
    if (c->trusted) return NANA_OK;
    nana_tcp_ep *ep = c->sh->ep;
    if (c->admit && !nana_admit_trust(&ep->admit, c->admit))
        return nana_err_set(NANA_ERR_CLOSED, "the connection was closed to make room");
    c->trusted = true;
    c->trust_deadline = 0;
    return NANA_OK;
}

void nana_tcp_conn_engage(nana_tcp_conn *c)
{
    if (!c->trusted && c->admit) nana_admit_engage(&c->sh->ep->admit, c->admit);
}

const char *nana_tcp_conn_error(const nana_tcp_conn *c)
{
    return c->error;
}
