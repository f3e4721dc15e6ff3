/*
 * nana_tcp.h - TCP connections, TLS (GnuTLS) or plaintext, on the server's
 * event loops: the transport under the HTTP/2 gRPC door, and its client
 * side. This header is the module's whole public face.
 *
 * Big idea: the transport moves bytes and keeps the limits; the layer above
 * (HTTP/2) sees a connection as "bytes in" (recv) and "bytes out"
 * (nana_tcp_send, copied into the connection's send buffer and written,
 * encrypted, before the loop sleeps). A server endpoint listens on one
 * socket per loop (SO_REUSEPORT) on loops it is given (the QUIC endpoint's
 * I/O threads); it starts no thread. Each connection lives on one loop and
 * everything about it happens on that loop's thread.
 *
 * Limits: admission is the QUIC endpoint's (src/admit: total, per address,
 * untrusted with eviction); a handshake, an untrusted connection and an idle
 * one each have a deadline; the send buffer has a cap over which the
 * connection stops reading until it drains (a peer that never reads costs at
 * most the cap, then the idle deadline closes it); a read takes at most
 * NANA_TCP_READ_BUDGET bytes per connection per loop iteration.
 *
 * Errors: 0 or a negative NANA_ERR_* (util/nana_err.h) with a detail in
 * nana_errmsg().
 */
#ifndef NANA_TCP_H
#define NANA_TCP_H

#include "auth/nana_identity.h"
#include "loop/nana_loop.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct nana_tcp_ep nana_tcp_ep;
typedef struct nana_tcp_conn nana_tcp_conn;

#define NANA_TCP_READ_BUDGET ((size_t)256 * 1024) /* bytes read per connection per wakeup */
#define NANA_TCP_LINGER_MS   2000                 /* a graceful close's flush, at most */
#define NANA_TCP_ALPN_MAX    32                   /* bytes of an ALPN name */

/* What the layer above is told; all on the connection's loop thread. */
typedef struct nana_tcp_callbacks {
    /* TLS handshake done (plaintext: accepted), ALPN negotiated. The app
     * takes the connection (nana_tcp_conn_set_user). Return 0, or an error:
     * the connection closes (and conn_close is not called). |ep_user| is
     * the config's user (a client: nana_tcp_connect's). */
    int (*conn_open)(nana_tcp_conn *c, void *ep_user);
    /* Decrypted bytes arrived (valid only during the call). Return 0, or a
     * negative value: the connection closes (after flushing what the app
     * queued). */
    int (*recv)(nana_tcp_conn *c, void *user, const uint8_t *p, size_t n);
    /* The send buffer drained below its low-water mark (half the cap)
     * after being over the cap: produce more. May be NULL. */
    void (*writable)(nana_tcp_conn *c, void *user);
    /* The time nana_tcp_conn_set_timer asked for came. May be NULL. */
    void (*timer)(nana_tcp_conn *c, void *user);
    /* The connection is gone (peer closed, error, timeout, eviction,
     * nana_tcp_conn_close, endpoint deleted, loop stopped): the last
     * callback; the app frees what it holds. Not called for a server
     * connection whose conn_open was never called or returned an error
     * (a client connection: see nana_tcp_connect). */
    void (*conn_close)(nana_tcp_conn *c, void *user);
} nana_tcp_callbacks;

/* ---- the server endpoint ------------------------------------------------ */

typedef struct nana_tcp_config {
    const char *host;        /* numeric IPv4 or IPv6 ("::" takes IPv4 too); default "127.0.0.1" */
    uint16_t port;           /* 0 picks a free one */
    nana_loop *const *loops; /* one listening socket per loop (SO_REUSEPORT); 1 to 256 */
    unsigned nloops;
    int plaintext;                    /* 1: no TLS (h2c), for an explicit loopback listener */
    const char *cert_file, *key_file; /* PEM; required unless plaintext */
    const char *ca_file;              /* trust anchors for client certificates */
    int client_auth;                  /* 0 none, 1 request (verify if sent), 2 require */
    const char *const *alpn;          /* accepted ("h2"); a client offering none is refused */
    size_t nalpn;
    unsigned max_connections;      /* default 10000 */
    unsigned max_conns_per_addr;   /* default 256 (IPv4 address, IPv6 /64) */
    unsigned max_untrusted;        /* not yet trusted (handshakes included), default 1024 */
    unsigned untrusted_timeout_ms; /* an untrusted connection closes this long after accept,
                                      default 10000 */
    unsigned handshake_timeout_ms; /* the TLS handshake must finish, default 10000 */
    unsigned idle_timeout_ms;      /* no bytes either way this long: closed, default 30000 */
    size_t max_out_bytes;          /* send buffer per connection, default 256 KiB: over it the
                                      connection stops reading until it drains */
    const nana_tcp_callbacks *cb;
    void *user;
} nana_tcp_config;

/* The defaults above (everything else zero). */
void nana_tcp_config_init(nana_tcp_config *c);

/*
 * Loads the credentials, binds and listens on every loop. The loops must be
 * running (each adds its own socket and hooks through a post; this call
 * waits for all) and this is not called on one of their threads. *out is
 * the caller's (nana_tcp_ep_del). NANA_ERR_INVALID for a bad config,
 * NANA_ERR_IO (cannot load a file, bind, listen), NANA_ERR_CLOSED (a loop
 * has stopped), NANA_ERR_NOMEM.
 */
int nana_tcp_ep_new(const nana_tcp_config *cfg, nana_tcp_ep **out);

/* The port it listens on. */
uint16_t nana_tcp_ep_port(const nana_tcp_ep *ep);

/* Stops accepting (the listening sockets close); existing connections go
 * on (a graceful server stop). Any thread; returns at once. */
void nana_tcp_ep_stop_accepting(nana_tcp_ep *ep);

/*
 * Closes every connection (conn_close runs on each loop's thread) and
 * frees the endpoint. Not on one of its loops' threads. Each loop must be
 * running, or have stopped (a loop that stops closes the endpoint's
 * connections on it as it exits): call it before the loops are freed.
 * NULL-safe.
 */
void nana_tcp_ep_del(nana_tcp_ep *ep);

/* Counters for logs and tests (any thread). */
typedef struct nana_tcp_stats {
    uint64_t accepted;           /* connections admitted */
    uint64_t refused;            /* refused by admission (limits) or while stopping */
    uint64_t evicted;            /* untrusted connections closed to make room */
    uint64_t handshake_failures; /* TLS handshakes that failed (bad hello, ALPN, cert) */
    uint64_t handshake_timeouts; /* handshake_timeout_ms passed */
    uint64_t untrusted_timeouts; /* untrusted_timeout_ms passed */
    uint64_t idle_timeouts;      /* idle_timeout_ms passed */
    uint64_t accept_pauses;      /* accepting paused: out of descriptors or memory */
    uint64_t conns_open;         /* connections open now */
    uint64_t conns_untrusted;    /* of which not yet trusted */
} nana_tcp_stats;

void nana_tcp_ep_stats(nana_tcp_ep *ep, nana_tcp_stats *out);

/* ---- the client side ---------------------------------------------------- */

typedef struct nana_tcp_client_config {
    const char *host; /* numeric IPv4 or IPv6 address */
    uint16_t port;
    const char *server_name;          /* SNI and the name the certificate must carry;
                                         default "localhost" */
    int plaintext;                    /* 1: no TLS (h2c) */
    const char *ca_file;              /* trust anchors; NULL: the system's */
    const char *cert_file, *key_file; /* optional client certificate (PEM) */
    const char *const *alpn;          /* offered, in order of preference */
    size_t nalpn;
    unsigned connect_timeout_ms; /* connect + handshake, default 10000 */
    unsigned idle_timeout_ms;    /* default 0: none */
    size_t max_out_bytes;        /* default 256 KiB, as the server's */
} nana_tcp_client_config;

/* The defaults above (everything else zero). */
void nana_tcp_client_config_init(nana_tcp_client_config *c);

/*
 * Opens a connection to cfg->host:port on |loop| (on its thread, or before
 * it runs): a non-blocking connect, then the TLS handshake; conn_open(c,
 * |user|) once it is done, and everything as on a server connection after
 * that. The connection's user starts as |user|. Unlike a server
 * connection, a client one always ends with conn_close, also when it
 * failed before conn_open (refused, the connect deadline, a certificate
 * that does not verify): that is how its owner learns of the failure, and
 * nana_tcp_conn_error says why. *out (may be NULL) is the connection,
 * valid until conn_close. Errors here (NANA_ERR_INVALID, NANA_ERR_IO for a
 * file or the socket, NANA_ERR_NOMEM): no callback follows.
 */
int nana_tcp_connect(nana_loop *loop, const nana_tcp_client_config *cfg,
                     const nana_tcp_callbacks *cb, void *user, nana_tcp_conn **out);

/* ---- a connection: everything below on its loop's thread only ----------- */

void nana_tcp_conn_set_user(nana_tcp_conn *c, void *user);
void *nana_tcp_conn_user(const nana_tcp_conn *c);
/* Unique per endpoint, never reused (a client connection: per process). */
uint64_t nana_tcp_conn_handle(const nana_tcp_conn *c);
nana_loop *nana_tcp_conn_loop(const nana_tcp_conn *c);
/* The loop's clock, ns. */
uint64_t nana_tcp_conn_now(const nana_tcp_conn *c);

/* Queues |n| bytes (copied; always accepted unless out of memory:
 * NANA_ERR_NOMEM; NANA_ERR_CLOSED once the connection is closing). The app
 * keeps itself under the cap with nana_tcp_send_room. They go out
 * (encrypted) before the loop sleeps. */
int nana_tcp_send(nana_tcp_conn *c, const void *p, size_t n);
/* max_out_bytes - queued, 0 when over. */
size_t nana_tcp_send_room(const nana_tcp_conn *c);
/* Bytes queued and not yet written to the socket. */
size_t nana_tcp_send_queued(const nana_tcp_conn *c);

/* Calls the timer callback at |when_ns| (the loop's clock); 0 disarms. */
void nana_tcp_conn_set_timer(nana_tcp_conn *c, uint64_t when_ns);

/* The verified client certificate (a server connection; all zero when none). */
const nana_cert_identity *nana_tcp_conn_identity(const nana_tcp_conn *c);
/* RFC 5705/8446 keying material exporter; NANA_ERR_INVALID when plaintext or
 * before the handshake finished. */
int nana_tcp_conn_exporter(const nana_tcp_conn *c, const char *label, const uint8_t *ctx,
                           size_t ctxlen, uint8_t *out, size_t outlen);
/* The negotiated ALPN name, "" for none or plaintext. */
const char *nana_tcp_conn_alpn(const nana_tcp_conn *c);
/* The TLS version ("TLS1.3"), "" when plaintext. */
const char *nana_tcp_conn_tls_version(const nana_tcp_conn *c);
void nana_tcp_conn_peer(const nana_tcp_conn *c, struct sockaddr_storage *a, socklen_t *len);

/* The app vouches (client logged in): no longer untrusted, never evicted,
 * no untrusted deadline. NANA_ERR_CLOSED when it was evicted already (it
 * is closing). A client connection: no effect. */
int nana_tcp_conn_trust(nana_tcp_conn *c);
/* The client spoke the protocol: evicted only after those that did not. */
void nana_tcp_conn_engage(nana_tcp_conn *c);

/* Closes: |graceful| flushes what is queued first (at most
 * NANA_TCP_LINGER_MS), then TLS close_notify; conn_close follows from the
 * loop, never inside this call. Closing twice is harmless. */
void nana_tcp_conn_close(nana_tcp_conn *c, int graceful);

/* Why the connection closed, when it was an error or a timeout: a short
 * text ("" otherwise), for logs; valid during conn_close. */
const char *nana_tcp_conn_error(const nana_tcp_conn *c);

#endif
