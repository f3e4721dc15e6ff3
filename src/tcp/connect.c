/*
 * connect.c - the client side: one connection to a server on a loop the
 * caller gives, through a non-blocking connect and a TLS handshake.
 *
 * A client connection gets an endpoint of its own (its settings, TLS
 * credentials and one shard on the loop), freed with the connection, so
 * everything after the handshake is the server connection's code. No
 * admission: the connection is trusted from the start. Its deadline until
 * conn_open is connect_timeout_ms (the handshake timeout's place).
 *
 * Unlike a server connection, a client one always gets conn_close, also
 * when it never opened: that is how its owner learns the connect failed
 * (nana_tcp_conn_error says why).
 */
#include "tcp/tcp_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static atomic_uint_fast64_t client_handles;

void nana_tcp_client_config_init(nana_tcp_client_config *c)
{
    memset(c, 0, sizeof(*c));
    c->connect_timeout_ms = 10000;
    c->max_out_bytes = (size_t)256 * 1024;
}

void nana_tcp_client_ep_free(nana_tcp_ep *ep)
{
    nana_tcp_ep_release(ep);
}

/* The server's address: numeric IPv4 or IPv6. */
static int server_addr(const char *host, uint16_t port, struct sockaddr_storage *a, socklen_t *len)
{
    memset(a, 0, sizeof(*a));
    struct sockaddr_in *in = (struct sockaddr_in *)(void *)a;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)(void *)a;
    if (host && inet_pton(AF_INET, host, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        *len = sizeof(*in);
        return NANA_OK;
    }
    if (host && inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        *len = sizeof(*in6);
        return NANA_OK;
    }
    return nana_err_set(NANA_ERR_INVALID, "'%.64s' is not a numeric IPv4 or IPv6 address",
                        host ? host : "");
}

/* The endpoint of one client connection: settings and credentials. */
static int client_ep(const nana_tcp_client_config *cfg, const nana_tcp_callbacks *cb, void *user,
                     nana_loop *loop, nana_tcp_ep **out)
{
    nana_tcp_ep *ep = nana_tcp_ep_alloc();
    if (!ep) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    *out = ep;
    ep->cb = *cb;
    ep->cfg.cb = &ep->cb;
    ep->cfg.user = user;
    ep->cfg.plaintext = cfg->plaintext;
    ep->cfg.idle_timeout_ms = cfg->idle_timeout_ms;
    ep->cfg.handshake_timeout_ms = cfg->connect_timeout_ms ? cfg->connect_timeout_ms : 10000;
    ep->cfg.max_out_bytes = cfg->max_out_bytes ? cfg->max_out_bytes : (size_t)256 * 1024;
    int rc;
    if (!cfg->plaintext) {
        ep->tls_ready = true;
        if ((rc = nana_tcp_tls_init_client(&ep->tls, cfg))) return rc;
    }
    ep->shards = calloc(1, sizeof(*ep->shards));
    if (!ep->shards) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    ep->nshards = 1;
    return nana_tcp_shard_init(&ep->shards[0], ep, loop, 0);
}

int nana_tcp_connect(nana_loop *loop, const nana_tcp_client_config *cfg,
                     const nana_tcp_callbacks *cb, void *user, nana_tcp_conn **out)
{
    if (out) *out = NULL;
    if (!loop || !cfg || !cb || !cb->conn_open || !cb->recv || !cb->conn_close)
        return nana_err_set(NANA_ERR_INVALID,
                            "a TCP connection needs a loop and conn_open, recv and conn_close");
    struct sockaddr_storage a;
    socklen_t alen;
    int rc = server_addr(cfg->host, cfg->port, &a, &alen);
    if (rc) return rc;
    nana_tcp_ep *ep = NULL;
    int fd = -1;
    if ((rc = client_ep(cfg, cb, user, loop, &ep))) goto fail;
    fd = nana_loop_sys_calls.socket(a.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        rc = nana_err_set(NANA_ERR_IO, "TCP socket: %s", strerror(errno));
        goto fail;
    }
    if (nana_loop_sys_calls.connect(fd, (struct sockaddr *)&a, alen) != 0 && errno != EINPROGRESS) {
        rc = nana_err_set(NANA_ERR_IO, "TCP connect: %s", strerror(errno));
        goto fail;
    }
    nana_tcp_shard *sh = &ep->shards[0];
    nana_tcp_conn *c;
    uint64_t h = (uint64_t)atomic_fetch_add(&client_handles, 1) + 1;
    if ((rc = nana_tcp_conn_new(sh, fd, h, &c))) goto fail;
    /* From here nothing fails: the connection owns the socket and the endpoint. */
    nana_tcp_shard_attach(sh);
    c->user = user;
    c->trusted = true;
    c->peer = a;
    c->peerlen = alen;
    c->state = NANA_TCP_CONNECTING;
    /* The loop may not run yet: its iteration's clock would be stale. */
    c->last_io = nana_loop_clock();
    c->hs_deadline = c->last_io + (uint64_t)ep->cfg.handshake_timeout_ms * NANA_TCP_MS;
    nana_tcp_conn_watch(c);
    nana_tcp_conn_arm(c);
    if (out) *out = c;
    return NANA_OK;
fail:
    if (fd >= 0) close(fd);
    if (ep) nana_tcp_ep_release(ep);
    return rc;
}
