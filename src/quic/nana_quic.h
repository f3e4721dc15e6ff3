/*
 * nana_quic.h - the QUIC transport both front doors stand on: server and
 * client endpoints over UDP on ngtcp2 0.12 with GnuTLS. This header is the
 * module's whole public face.
 *
 * An endpoint owns its UDP socket(s) and I/O thread(s). Everything about a
 * connection happens on the one I/O thread that owns it: the callbacks run
 * there, and the stream and connection functions below may only be called
 * from there (inside a callback, or in a function given to nana_quic_post,
 * which is how other threads reach a connection).
 *
 * Streams carry bytes: the layer above gets them in order with
 * stream_data (and whether they came as 0-RTT "early" data, which may be
 * replayed by an attacker), answers with nana_quic_stream_send (the bytes
 * are copied and kept until the peer acknowledged them), and learns when
 * a stream or connection is gone. Flow control credit is returned as soon
 * as stream_data returns.
 *
 * A layer that runs its own protocol library on top (HTTP/3 with
 * nghttp3) can instead, per connection: return flow-control credit
 * itself as it consumes bytes (nana_quic_conn_set_credit_by_app), and
 * hand its bytes out as the connection has room (a source, see
 * nana_quic_conn_set_source), with both stream directions, the peer's
 * RESET_STREAM and STOP_SENDING, and unidirectional streams.
 *
 * Errors: 0 or a negative NANA_ERR_* (util/nana_err.h) with a detail in
 * nana_errmsg().
 */
#ifndef NANA_QUIC_H
#define NANA_QUIC_H

#include "loop/nana_loop.h"
#include "util/nana_err.h"

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct nana_quic_ep nana_quic_ep;
typedef struct nana_quic_conn nana_quic_conn;

/* A connection's stable name, usable from any thread (see nana_quic_post). */
typedef uint64_t nana_quic_handle;

/* Whether the server asks clients for a certificate (mutual TLS). */
typedef enum nana_quic_client_auth {
    NANA_QUIC_CLIENT_CERT_IGNORE = 0,  /* never ask */
    NANA_QUIC_CLIENT_CERT_REQUEST = 1, /* ask; a certificate given must verify */
    NANA_QUIC_CLIENT_CERT_REQUIRE = 2, /* refuse clients without a verified certificate */
} nana_quic_client_auth;

/* When the server answers a new client with a Retry (address validation). */
typedef enum nana_quic_retry {
    NANA_QUIC_RETRY_AUTO = 0,   /* when retry_threshold handshakes are already in progress */
    NANA_QUIC_RETRY_ALWAYS = 1, /* for every client without a valid token */
    NANA_QUIC_RETRY_NEVER = 2,
} nana_quic_retry;

/* What a verified client certificate says (mutual TLS). */
typedef struct nana_quic_identity {
    int verified;            /* 1 if the peer presented a certificate that verified */
    char subject[256];       /* its subject DN (RFC 4514), NUL-terminated */
    uint8_t cert_sha256[32]; /* SHA-256 of the certificate (DER) */
    uint8_t spki_sha256[32]; /* SHA-256 of its SubjectPublicKeyInfo (DER) */
} nana_quic_identity;

/*
 * What the layer above is told. All run on the connection's I/O thread.
 * |user| is nana_quic_config.user; per-connection state goes in
 * nana_quic_conn_set_data. Callbacks other than conn_close may return a
 * negative value to close the connection (as an internal error).
 */
typedef struct nana_quic_callbacks {
    /*
     * The connection is usable: the handshake finished (or, on a server,
     * 0-RTT data arrived before it did). Identity and ALPN are known.
     */
    int (*conn_open)(nana_quic_conn *c, void *user);
    /* The connection is gone (closed, timed out, reset). Free its state. */
    void (*conn_close)(nana_quic_conn *c, void *user);
    /*
     * In-order bytes of stream |sid|; |fin| marks its last bytes (|len|
     * may then be 0). |early|: received as 0-RTT data (may be a replay).
     */
    int (*stream_data)(nana_quic_conn *c, int64_t sid, const uint8_t *data, size_t len, int fin,
                       int early, void *user);
    /* Stream |sid| is finished or reset (|app_error| set by a reset). */
    void (*stream_close)(nana_quic_conn *c, int64_t sid, uint64_t app_error, void *user);
    /*
     * Client only: the server sent a resumption ticket (TLS session and
     * transport parameters). Keep a copy to pass to nana_quic_connect for
     * a resumed, 0-RTT connection later. |data| is valid during the call.
     */
    void (*session_ticket)(nana_quic_conn *c, const uint8_t *data, size_t len, void *user);
    /*
     * Server only, optional: a new client at |addr| wants a connection.
     * Return 0 to go on, or a NANA_QUIC_REFUSE_* reason to refuse it with
     * CONNECTION_REFUSED (and that reason's phrase, which the client can
     * read with nana_quic_conn_peer_reason) before any state is kept or any
     * TLS work is done. Runs on the I/O thread for every first Initial:
     * keep it cheap.
     */
    int (*accept)(const struct sockaddr *addr, socklen_t addrlen, void *user);
    /*
     * Optional: the peer raised its limit on our bidirectional streams, so
     * nana_quic_stream_open may succeed again after NANA_ERR_BUSY. Runs
     * only on connections conn_open was called for.
     */
    void (*streams_available)(nana_quic_conn *c, void *user);
    /* Optional: the time set with nana_quic_conn_set_timer has come. */
    void (*timer)(nana_quic_conn *c, void *user);
    /*
     * Optional: the peer reset its sending side of stream |sid|
     * (RESET_STREAM with |app_error|): no more bytes come on it. Runs
     * before the stream's stream_close.
     */
    int (*stream_reset)(nana_quic_conn *c, int64_t sid, uint64_t app_error, void *user);
    /*
     * Optional: the peer asked us to stop sending on stream |sid|
     * (STOP_SENDING with |app_error|): it reads nothing more of it. The
     * transport has already answered with RESET_STREAM carrying the same
     * code; sends on the stream are dropped from now on. Runs at most once
     * per stream, for streams the transport knows (opened by us, or by the
     * peer with data before). With this callback set, every 1-RTT packet of
     * the endpoint's connections is scanned for the frame (ngtcp2 0.12
     * reports it to no callback), a cost only an endpoint that sets it pays.
     */
    int (*stop_sending)(nana_quic_conn *c, int64_t sid, uint64_t app_error, void *user);
    /*
     * Optional: the peer raised its limit on our unidirectional streams,
     * so nana_quic_stream_open_uni may succeed again after NANA_ERR_BUSY.
     */
    void (*uni_streams_available)(nana_quic_conn *c, void *user);
} nana_quic_callbacks;

/*
 * Why a server refuses a new client (the accept callback's answer; the
 * transport itself refuses with FULL and ADDR). Each is sent as the reason
 * phrase of the CONNECTION_REFUSED close (see nana_quic_refuse_reason).
 */
enum {
    NANA_QUIC_REFUSE_FULL = 1,     /* "server full" */
    NANA_QUIC_REFUSE_STOPPING = 2, /* "shutting down" */
    NANA_QUIC_REFUSE_BANNED = 3,   /* "banned" */
    NANA_QUIC_REFUSE_ADDR = 4,     /* "too many connections from this address" */
    NANA_QUIC_REFUSE_STARTING = 5, /* "starting" */
};

/* The reason phrase sent for a NANA_QUIC_REFUSE_* code ("refused" for others). */
const char *nana_quic_refuse_reason(int why);

typedef struct nana_quic_config {
    int server;       /* 1: server endpoint; 0: client endpoint */
    const char *host; /* address to bind: "127.0.0.1", "::1", "::" ...; client: NULL */
    uint16_t port;    /* 0: pick a free port (see nana_quic_ep_port) */
    unsigned threads; /* server I/O threads (SO_REUSEPORT), default 1; client: 1 */
    /* TLS */
    const char *cert_file; /* PEM certificate chain (server; client for mTLS) */
    const char *key_file;  /* PEM private key for cert_file */
    const char *ca_file;   /* PEM trust anchors for verifying the peer; client: NULL
                              uses the system's trust store */
    nana_quic_client_auth client_auth;
    const char *const *alpn; /* server: protocols accepted; client: offered (first wins) */
    size_t nalpn;
    int allow_no_alpn; /* server: also accept clients that offer no ALPN */
    int enable_0rtt;   /* server: session tickets with early data; default off */
    /* limits (0 = default) */
    unsigned max_connections; /* default 10000; more are refused with CONNECTION_REFUSED */
    /* server: connections from one client address (IPv4, or an IPv6 /64), default 256 */
    unsigned max_conns_per_addr;
    /* server: connections not yet trusted (nana_quic_conn_trust), handshakes
     * included, default 1024. When a new client would pass this, or
     * max_connections, or its address's limit, an untrusted connection in
     * the way is closed to make room (the older of two picked at random, so
     * never the newest); only when all in the way are trusted is the client
     * refused. */
    unsigned max_untrusted;
    /* server: an untrusted connection is closed this long after its first
     * packet, default 10000 */
    unsigned untrusted_timeout_ms;
    /* server: 1: a connection stays untrusted until the layer above calls
     * nana_quic_conn_trust (its client logged in); 0: it is trusted once its
     * handshake completes */
    int trust_by_app;
    unsigned max_streams_bidi; /* concurrent peer-opened streams per connection, default 100 */
    /* concurrent peer-opened unidirectional streams per connection, default
     * 3 (what HTTP/3 needs: control, QPACK encoder and decoder) */
    unsigned max_streams_uni;
    uint64_t stream_window;        /* per-stream flow-control window, default 1 MiB */
    uint64_t conn_window;          /* per-connection window, default 16 MiB */
    unsigned idle_timeout_ms;      /* default 30000 */
    unsigned keepalive_ms;         /* PING interval when idle; default 0 = none */
    unsigned handshake_timeout_ms; /* default 10000 */
    size_t max_stream_send_buffer; /* bytes queued unacknowledged per stream, default 64 MiB */
    nana_quic_retry retry;
    unsigned retry_threshold; /* RETRY_AUTO: handshakes in progress, default 256 */
    /* 32 bytes keying tokens and stateless resets; NULL = random per endpoint */
    const uint8_t *static_secret;
    const nana_quic_callbacks *cb;
    void *user;
} nana_quic_config;

/* Fills |c| with the defaults (a client endpoint with no callbacks). */
void nana_quic_config_init(nana_quic_config *c);

/*
 * Creates the endpoint: loads the TLS material, binds the socket(s) and
 * starts the I/O thread(s). *out is owned by the caller (nana_quic_ep_del).
 * Errors: NANA_ERR_INVALID (bad config), NANA_ERR_IO (bind, load files),
 * NANA_ERR_NOMEM.
 */
int nana_quic_ep_new(const nana_quic_config *cfg, nana_quic_ep **out);

/*
 * Closes every connection (CONNECTION_CLOSE, no error), stops the I/O
 * threads and frees the endpoint. conn_close runs for each connection.
 * Must not be called from an I/O thread. NULL-safe.
 */
void nana_quic_ep_del(nana_quic_ep *ep);

/*
 * Runs fn(arg) on each of the endpoint's I/O threads, between reading
 * datagrams and writing: what it queues on streams leaves in the same
 * round. fn returns how long until it wants to run again, in ns (0: after
 * |interval_ns|). The wait for datagrams ends in time for it, so no other
 * thread has to wake this one to make it happen (a load generator's
 * pacing). |interval_ns| 0 stops it. Applied by the I/O threads
 * themselves, shortly after the call; fn must stay valid until stopped.
 */
int nana_quic_ep_set_tick(nana_quic_ep *ep, uint64_t interval_ns, uint64_t (*fn)(void *arg),
                          void *arg);

/* The UDP port the endpoint is bound to. */
uint16_t nana_quic_ep_port(const nana_quic_ep *ep);

/*
 * Runs fn(c, arg) on the I/O thread that owns connection |h|, with c NULL
 * when that connection no longer exists. Returns at once; fn is not called
 * when it fails: NANA_ERR_CLOSED when the endpoint is shutting down,
 * NANA_ERR_BUSY when 65,536 posts already wait for that thread (back off
 * and retry). Safe from any thread, including I/O threads.
 */
int nana_quic_post(nana_quic_ep *ep, nana_quic_handle h, void (*fn)(nana_quic_conn *c, void *arg),
                   void *arg);

/*
 * The event loops the endpoint runs on, one per I/O thread (loop/nana_loop.h):
 * another transport can watch its own descriptors on them, and a post to a
 * connection's loop runs on the thread that owns the connection. The loops
 * are the endpoint's: they live until nana_quic_ep_del. NULL (and 0 loops)
 * for an endpoint without threads.
 */
unsigned nana_quic_ep_nloops(const nana_quic_ep *ep);
nana_loop *nana_quic_ep_loop(nana_quic_ep *ep, unsigned i);
/* The loop whose thread owns connection |h| (any thread). */
nana_loop *nana_quic_handle_loop(nana_quic_ep *ep, nana_quic_handle h);
/* The loop whose thread owns |c|. */
nana_loop *nana_quic_conn_loop(const nana_quic_conn *c);

/*
 * On the thread of the loop that owns |h| (a post's run function, say): the
 * connection, or NULL when it is gone or closing, or when called from any
 * other thread. What the caller queues on it is sent this iteration.
 */
nana_quic_conn *nana_quic_conn_by_handle(nana_quic_ep *ep, nana_quic_handle h);

/*
 * Client: starts a connection to host:port (numeric address) verifying the
 * server's certificate for |server_name| against ca_file. |ticket| (may be
 * NULL) is a session_ticket from an earlier connection to resume it; with
 * it, streams opened before conn_open carry 0-RTT data. Returns at once
 * with the connection's handle; conn_open (or conn_close on failure)
 * follows on the I/O thread. Safe from any thread.
 */
int nana_quic_connect(nana_quic_ep *ep, const char *host, uint16_t port, const char *server_name,
                      const uint8_t *ticket, size_t ticket_len, void *conn_data,
                      nana_quic_handle *out);

/*
 * Client: moves every connection to a new UDP socket (a new local port), as
 * a NAT rebinding or a network change would; the connections carry on.
 * Safe from any thread; returns when done.
 */
int nana_quic_ep_rebind(nana_quic_ep *ep);

/* ---- connection and stream functions: I/O thread only ---------------- */

nana_quic_handle nana_quic_conn_handle(const nana_quic_conn *c);
void nana_quic_conn_set_data(nana_quic_conn *c, void *data);
void *nana_quic_conn_get_data(const nana_quic_conn *c);

/*
 * Gives the connection callbacks of its own (|cb| must outlive it; NULL
 * goes back to the endpoint's), called with |user|. Meant for conn_open:
 * a server with several protocols on one endpoint picks them by the ALPN
 * there. The endpoint's conn_open has run by then; every later callback
 * (conn_close included) is the connection's, and only a connection whose
 * callbacks include stop_sending pays for watching for that frame.
 */
void nana_quic_conn_set_callbacks(nana_quic_conn *c, const nana_quic_callbacks *cb, void *user);

/* The verified client identity (all zero when none). */
const nana_quic_identity *nana_quic_conn_identity(const nana_quic_conn *c);

/*
 * Fills |out| with |out_len| bytes of the TLS exporter (RFC 8446 section
 * 7.5, RFC 5705) for |label| and |context|: a secret both ends of this
 * connection alone can compute, to bind a signature to the connection.
 * NANA_ERR_INVALID before the handshake finished.
 */
int nana_quic_conn_exporter(const nana_quic_conn *c, const char *label, const uint8_t *context,
                            size_t context_len, uint8_t *out, size_t out_len);

/* The negotiated ALPN protocol, "" when none. */
const char *nana_quic_conn_alpn(const nana_quic_conn *c);

/*
 * Server: the layer above vouches for the connection (its client logged
 * in; see trust_by_app): it no longer counts against max_untrusted, is never closed to make
 * room for others, and has no untrusted deadline. Returns 0, or
 * NANA_ERR_CLOSED when the connection was already chosen to be closed.
 */
int nana_quic_conn_trust(nana_quic_conn *c);

/*
 * Server: the layer above saw the client speak its protocol (it asked to
 * log in) but does not trust it yet. While it stays untrusted such a
 * connection is closed to make room only when no connection in the way
 * has not been engaged.
 */
void nana_quic_conn_engage(nana_quic_conn *c);

/*
 * Asks for the timer callback at |when| (the endpoint's clock, see
 * nana_quic_conn_now); UINT64_MAX cancels. One timer per connection: a
 * new time replaces the old.
 */
void nana_quic_conn_set_timer(nana_quic_conn *c, uint64_t when);

/* The endpoint's clock in ns as of this I/O round (monotonic). */
uint64_t nana_quic_conn_now(const nana_quic_conn *c);

/*
 * The reason phrase of the CONNECTION_CLOSE the peer sent (printable ASCII,
 * NUL-terminated, at most |cap| - 1 bytes); "" when none. Useful inside
 * conn_close, with nana_quic_conn_peer_error.
 */
void nana_quic_conn_peer_reason(const nana_quic_conn *c, char *out, size_t cap);

/* 1 if the handshake resumed a session and 0-RTT data was accepted. */
int nana_quic_conn_early_accepted(const nana_quic_conn *c);

/*
 * Why the connection ended, once it has: the CONNECTION_CLOSE the peer sent
 * (its error code; *is_app 1 for an application code, 0 for a transport
 * code such as 0x2 CONNECTION_REFUSED or 0x100+alert for TLS). Returns 1 if
 * the peer sent one, 0 otherwise (timeout, or closed by us). A stateless
 * reset from the peer (a server that lost the connection, say after a
 * restart) reads as 1 with transport code 0. Useful inside conn_close.
 */
int nana_quic_conn_peer_error(const nana_quic_conn *c, uint64_t *code, int *is_app);

/*
 * 1 if our side failed the TLS handshake (a certificate that does not
 * verify, say), with a readable reason in |msg|; 0 otherwise. Useful
 * inside conn_close.
 */
int nana_quic_conn_tls_failure(const nana_quic_conn *c, char *msg, size_t cap);

/* The peer's current address. */
void nana_quic_conn_peer(const nana_quic_conn *c, struct sockaddr_storage *addr, socklen_t *len);

/*
 * Queues |len| bytes on stream |sid| (copied; kept until acknowledged),
 * then FIN if |fin|. NANA_ERR_NOTFOUND for an unknown or closed stream,
 * NANA_ERR_INVALID after FIN or on the peer's one-way stream (or a connection
 * with a source), NANA_ERR_TOOBIG past max_stream_send_buffer.
 */
int nana_quic_stream_send(nana_quic_conn *c, int64_t sid, const void *data, size_t len, int fin);

/*
 * nana_quic_stream_send without the copy: the stream keeps a reference to
 * |data|, which must stay valid and unchanged until release(ctx) is called
 * (on this I/O thread) once the peer acknowledged the bytes or the stream
 * or connection is gone. |release| may be NULL for data that lives
 * forever. After a successful call release is called exactly once (at once
 * when |len| is 0); after an error it is not called and the caller still
 * owns |data|. Same errors as nana_quic_stream_send.
 */
int nana_quic_stream_send_ref(nana_quic_conn *c, int64_t sid, const void *data, size_t len, int fin,
                              void (*release)(void *ctx), void *ctx);

/*
 * nana_quic_stream_send (a copy: |data| is the caller's again on return)
 * that also calls release(ctx), like nana_quic_stream_send_ref, once the
 * peer acknowledged the bytes or the stream or connection is gone: for a
 * caller that counts what is still in flight. Copies of short messages
 * live in kept objects of the I/O thread, so this allocates nothing once
 * warm. Same errors and release rules as nana_quic_stream_send_ref.
 */
int nana_quic_stream_send_copy(nana_quic_conn *c, int64_t sid, const void *data, size_t len,
                               int fin, void (*release)(void *ctx), void *ctx);

/*
 * What the connection holds for the peer: *held, bytes queued on all its
 * streams and not yet acknowledged; *acked, bytes acknowledged so far in
 * all (a reader that makes progress moves it).
 */
void nana_quic_conn_send_state(const nana_quic_conn *c, uint64_t *held, uint64_t *acked);

/* Bytes queued on |sid| and not yet acknowledged (backpressure). */
size_t nana_quic_stream_unacked(nana_quic_conn *c, int64_t sid);

/* Abandons stream |sid| both ways (RESET_STREAM + STOP_SENDING). */
int nana_quic_stream_reset(nana_quic_conn *c, int64_t sid, uint64_t app_error);

/* Opens a bidirectional stream. NANA_ERR_BUSY when the peer's limit is reached. */
int nana_quic_stream_open(nana_quic_conn *c, int64_t *sid);

/*
 * Opens a unidirectional stream (we send, the peer reads). NANA_ERR_BUSY
 * when the peer's limit is reached (uni_streams_available says when it
 * rose).
 */
int nana_quic_stream_open_uni(nana_quic_conn *c, int64_t *sid);

/*
 * Abandons only the sending side of |sid|: RESET_STREAM with |app_error|;
 * whatever was queued and not yet acknowledged is dropped. The peer may go
 * on sending. NANA_ERR_NOTFOUND for an unknown stream, NANA_ERR_INVALID for
 * a stream we cannot send on (the peer's unidirectional stream).
 */
int nana_quic_stream_shutdown_write(nana_quic_conn *c, int64_t sid, uint64_t app_error);

/*
 * Abandons only the receiving side of |sid|: STOP_SENDING with
 * |app_error|; no more stream_data for it. Bytes that still arrive count
 * against no window. We may go on sending. NANA_ERR_NOTFOUND for an
 * unknown stream, NANA_ERR_INVALID for a stream we cannot read (our own
 * unidirectional stream).
 */
int nana_quic_stream_shutdown_read(nana_quic_conn *c, int64_t sid, uint64_t app_error);

/* ---- flow control returned by the layer above ------------------------- */

/*
 * From now on the connection's receive windows open only as the layer
 * above says it consumed bytes (nana_quic_stream_consumed), not when
 * stream_data returns. Meant for conn_open (before any stream_data), by a
 * layer that keeps bytes for later or parses them with a library that
 * reports what it consumed. Every byte stream_data delivered must be
 * reported consumed sooner or later (even on a stream that was reset or
 * closed since), or the connection's window shrinks for good.
 */
void nana_quic_conn_set_credit_by_app(nana_quic_conn *c);

/*
 * The layer above consumed |n| more bytes of stream |sid|: its window and
 * the connection's grow by |n| (a stream that is gone grows only the
 * connection's). NANA_ERR_CLOSED when the connection is closing.
 */
int nana_quic_stream_consumed(nana_quic_conn *c, int64_t sid, uint64_t n);

/* ---- pull-style sending ------------------------------------------------ */

/* Bytes to send; the layout of ngtcp2_vec and nghttp3_vec. */
typedef struct nana_quic_vec {
    uint8_t *base; /* only read */
    size_t len;
} nana_quic_vec;

/*
 * A connection's source: instead of queueing bytes on streams, the layer
 * above hands them out when the connection can send (HTTP/3: nghttp3's
 * writev / add_write_offset / add_ack_offset / block / unblock /
 * shutdown_stream_write map one to one). The bytes stay the source's:
 * they must stay valid and unchanged until acked says the peer has them
 * (the transport resends lost bytes from them). All run on the I/O
 * thread; the int ones may return a negative value to close the
 * connection (internal error). Per-connection state: nana_quic_conn_get_data.
 */
typedef struct nana_quic_source {
    /*
     * The next bytes to send, of one stream: fills up to |max| vectors
     * and sets *sid (-1: nothing to send now) and *fin (the stream ends
     * after these bytes; with no vectors: a FIN alone). Returns the number
     * of vectors filled.
     */
    long (*pull)(nana_quic_conn *c, int64_t *sid, int *fin, nana_quic_vec *v, size_t max);
    /* The first |n| bytes pulled (and the FIN, when *fin was set and all
     * were taken; |n| may then be 0) went into a packet: pull the rest
     * from there next time. */
    int (*sent)(nana_quic_conn *c, int64_t sid, size_t n);
    /* The peer acknowledged |n| more bytes of |sid| (offsets |off| to
     * |off| + |n|, in order): they may be freed. */
    int (*acked)(nana_quic_conn *c, int64_t sid, uint64_t off, uint64_t n);
    /* Flow control stops |sid| (pull nothing more of it until unblocked). */
    void (*blocked)(nana_quic_conn *c, int64_t sid);
    /* The peer opened |sid|'s window again after blocked. */
    int (*unblocked)(nana_quic_conn *c, int64_t sid);
    /* Nothing more can be sent on |sid| (reset by either side, or gone):
     * pull nothing more of it. */
    void (*write_shut)(nana_quic_conn *c, int64_t sid);
} nana_quic_source;

/*
 * Makes the connection send only what |src| hands out (|src| must outlive
 * the connection; NULL goes back to queued sending). The stream_send
 * functions are refused on such a connection (NANA_ERR_INVALID). Meant for
 * conn_open.
 */
void nana_quic_conn_set_source(nana_quic_conn *c, const nana_quic_source *src);

/*
 * The source has bytes again after it had none (it is asked at every
 * write of the connection anyway, which follows every packet received;
 * call this after new bytes came from elsewhere: a post, a timer).
 */
void nana_quic_conn_source_ready(nana_quic_conn *c);

/* Closes the connection with an application error code and a reason phrase
 * (may be NULL; printable ASCII, at most 63 bytes are sent). */
int nana_quic_conn_close(nana_quic_conn *c, uint64_t app_error, const char *reason);

/* ---- statistics -------------------------------------------------------- */

typedef struct nana_quic_stats {
    uint64_t conns_accepted;  /* handshakes started by the server */
    uint64_t conns_open;      /* connections alive now */
    uint64_t conns_refused;   /* CONNECTION_REFUSED answers (max_connections) */
    uint64_t retries_sent;    /* Retry packets */
    uint64_t vn_sent;         /* Version Negotiation packets */
    uint64_t resets_sent;     /* Stateless Reset packets */
    uint64_t packets_dropped; /* datagrams ignored as garbage or unroutable */
    uint64_t handshakes_done; /* handshakes completed */
    uint64_t early_accepted;  /* handshakes that accepted 0-RTT */
    uint64_t migrations;      /* connections whose peer address changed */
    uint64_t datagrams_in, datagrams_out, sendmsg_calls;
    uint64_t
        datagrams_unsent; /* the kernel would not take them (full socket, refused): QUIC resends */
    uint64_t conns_evicted;      /* untrusted connections closed to make room for new clients */
    uint64_t untrusted_timeouts; /* untrusted connections closed at their deadline */
    uint64_t conns_untrusted;    /* connections not yet trusted now */
} nana_quic_stats;

/* Totals over all I/O threads. Each thread copies its own counters when
 * asked (a post), so the packet path pays nothing for them; the call waits
 * up to NANA_QUIC_STATS_WAIT_MS for each thread. On the endpoint's own I/O
 * thread, or on an endpoint with no threads, the counters are read
 * directly. NANA_ERR_BUSY if a thread did not answer in time or its post
 * queue is full, NANA_ERR_CLOSED while the endpoint shuts down; *out then
 * holds what the other threads reported. */
#define NANA_QUIC_STATS_WAIT_MS 5000
int nana_quic_ep_stats(nana_quic_ep *ep, nana_quic_stats *out);

/* CPU time the endpoint's I/O threads have used, in nanoseconds (for
 * benchmarks: CPU per operation compares fairly when peers share cores). */
uint64_t nana_quic_ep_cpu_ns(nana_quic_ep *ep);

#endif
