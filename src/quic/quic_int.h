/*
 * quic_int.h - the transport's internal structures, shared by the files
 * of src/quic.
 *
 * Layout: an endpoint (nana_quic_ep) holds the configuration, the TLS
 * context and one shard per I/O thread. A shard is a sans-I/O core: it
 * takes datagrams in (nana_quic_shard_recv: bytes, path, timestamp), keeps
 * its connections in a CID table and a timer heap, and hands datagrams out
 * through a tx sink; it never touches a socket or a clock itself. Its I/O
 * side (io.c, udp.c: the socket, the event loop it runs on, see
 * src/loop/nana_loop.h) calls the shard.
 *
 * Connection IDs the server issues are NANA_Q_CIDLEN bytes whose first
 * byte is the shard's index, so a packet that reaches the wrong thread
 * (after the client's address changed) is forwarded to its owner.
 */
#ifndef NANA_QUIC_INT_H
#define NANA_QUIC_INT_H

#include "admit/nana_admit.h"
#include "quic/nana_quic.h"
#include "quic/quic_compat.h"

#include <gnutls/gnutls.h>
#include <pthread.h>
#include <stdatomic.h>
#include "util/nana_freelist.h"

#include <stdbool.h>
#include <sys/socket.h>
#include <sys/uio.h>

#define NANA_Q_CIDLEN     18
#define NANA_Q_MAX_UDP    1452 /* payload we send; fits 1500-byte paths, v4 and v6 */
#define NANA_Q_MAX_SHARDS 64
#define NANA_Q_TX_BURST   64 /* packets written per connection per round */
/* Stream bytes a client queues in a round that send the round's output
 * early, before the rest of the received datagrams are read (read_batch). */
#define NANA_Q_EARLY_FLUSH  ((size_t)2 * NANA_Q_MAX_UDP)
#define NANA_Q_SECRETLEN    32
#define NANA_Q_ALPN_MAX     32
#define NANA_Q_NS           1000000000ull
#define NANA_Q_MAX_POSTS    65536 /* nana_quic_post items waiting for one I/O thread; more: BUSY */
#define NANA_Q_CLOSE_SLACK  ((uint64_t)1 << 24) /* ~17 ms: closing periods end on these ticks */
#define NANA_Q_RESET_KEYS   8                   /* client: reset tokens remembered per connection */
#define NANA_Q_MIN_RESET_RX 21   /* smallest datagram taken as a stateless reset (RFC 9000 10.3) */
#define NANA_Q_MAX_UDP_RX   1500 /* a client's first datagram we keep for later (longer: dropped) */
#define NANA_Q_UNI_STREAMS  3    /* default max_streams_uni: HTTP/3's control and QPACK streams */
#define NANA_Q_PULL_SPINS   1024 /* source answers in one write that put nothing in a packet */

/* ------------------------------------------------------------------ */
/* TLS (tls.c)                                                          */
/* ------------------------------------------------------------------ */

/* The endpoint's TLS material, shared read-only by all shards. */
typedef struct nana_quic_tls {
    gnutls_certificate_credentials_t cred;
    gnutls_priority_t prio;
    gnutls_datum_t ticket_key; /* server: session ticket encryption key */
    gnutls_anti_replay_t anti_replay;
    gnutls_datum_t *alpn; /* protocols (server: accepted, client: offered) */
    size_t nalpn;
    bool server;
    bool allow_no_alpn;
    bool enable_0rtt;
    nana_quic_client_auth client_auth;
    bool have_ca;
    /* 0-RTT replay cache (server) */
    pthread_mutex_t replay_mu;
    uint64_t *replay_keys;
    uint64_t *replay_exp;
    size_t replay_cap;
    size_t replay_next;
    uint8_t replay_seed[16];
} nana_quic_tls;

int nana_quic_tls_init(nana_quic_tls *t, const nana_quic_config *cfg);
void nana_quic_tls_free(nana_quic_tls *t);

/* Creates the GnuTLS session of a connection (server or client side).
 * |server_name| (client) is verified against the server certificate and
 * sent as SNI; |ticket| (client) resumes a session. */
int nana_quic_tls_session(nana_quic_tls *t, nana_quic_conn *c, const char *server_name,
                          const uint8_t *tls_session, size_t tls_session_len);

/* After the handshake: fills the connection's identity and ALPN. */
void nana_quic_tls_peer_info(nana_quic_conn *c);

/* Client: a NEW_TOKEN arrived; refreshes the resumption blob. */
void nana_quic_tls_new_token(nana_quic_conn *c, const uint8_t *token, size_t len);

/* Parses a ClientHello body for an ALPN extension: 1 present, 0 absent,
 * -1 malformed. Exposed for tests. */
int nana_quic_tls_hello_has_alpn(const uint8_t *msg, size_t len);

/* ------------------------------------------------------------------ */
/* Streams (stream.c)                                                  */
/* ------------------------------------------------------------------ */

typedef struct nana_quic_chunk nana_quic_chunk;

typedef struct nana_quic_stream {
    int64_t id;
    struct nana_quic_stream *hnext; /* hash chain */
    struct nana_quic_stream *snext; /* send list */
    nana_quic_chunk *head, *tail;   /* queued bytes, oldest first */
    uint64_t base_off;              /* stream offset of head's first byte */
    nana_quic_chunk *cursor;        /* no chunk before it has unsent bytes (NULL: head) */
    uint64_t cursor_off;            /* stream offset of cursor's first byte */
    uint64_t sent_off;              /* bytes handed to ngtcp2 */
    uint64_t queued;                /* stream offset after the last queued byte */
    bool fin_queued;                /* FIN goes after the last byte */
    bool fin_sent;
    bool in_send_list;
    bool blocked;       /* flow control: wait for extend_max_stream_data */
    bool closed;        /* ngtcp2 closed it; freed after the callback */
    bool peer_opened;   /* the peer opened it (stream_open): its close returns stream credit */
    bool stop_pending;  /* the peer's STOP_SENDING was seen; stop_sending not yet run */
    bool stop_told;     /* stop_sending ran */
    uint64_t stop_code; /* the STOP_SENDING's code */
} nana_quic_stream;

/* The I/O thread's kept stream and chunk objects (one per shard): a call's
 * stream and its reply's chunk come from here, not from malloc. */
typedef struct nana_quic_objs {
    nana_freelist streams; /* nana_quic_stream */
    nana_freelist chunks;  /* nana_quic_chunk that reference the caller's bytes */
    nana_freelist small;   /* nana_quic_chunk with a copy of up to NANA_Q_SMALL_COPY bytes */
} nana_quic_objs;

#define NANA_Q_SMALL_COPY 224 /* bytes a kept copying chunk holds (a request, a short reply) */

#define NANA_Q_OBJS_KEPT 4096 /* objects of each kind a shard keeps */

typedef struct nana_quic_stream_table {
    nana_quic_stream **buckets;
    size_t nbuckets, count;
    nana_quic_objs *objs; /* the owning shard's */
    uint64_t held_bytes;  /* queued on every stream, not yet acknowledged */
    uint64_t acked_bytes; /* acknowledged so far, in all */
} nana_quic_stream_table;

nana_quic_stream *nana_quic_stream_find(nana_quic_stream_table *t, int64_t id);
nana_quic_stream *nana_quic_stream_add(nana_quic_stream_table *t, int64_t id);
void nana_quic_stream_remove(nana_quic_stream_table *t, nana_quic_stream *s);
void nana_quic_stream_table_free(nana_quic_stream_table *t);
/* Appends bytes to a stream's send queue: copied with |copy|, else
 * referenced until acknowledged, then release(ctx) (if not NULL). */
int nana_quic_stream_queue(nana_quic_stream_table *t, nana_quic_stream *s, const void *data,
                           size_t len, bool copy, void (*release)(void *ctx), void *ctx);
/* (With |copy|, |release| is still called when the copy is acknowledged.) */
/* Sets up a shard's kept objects; frees them. */
void nana_quic_objs_init(nana_quic_objs *o);
void nana_quic_objs_free(nana_quic_objs *o);
/* Frees queued bytes below |acked_to|. */
void nana_quic_stream_acked(nana_quic_stream_table *t, nana_quic_stream *s, uint64_t acked_to);
/* True if the stream has something left to send (bytes or a FIN). */
static inline bool nana_quic_stream_has_pending(const nana_quic_stream *s)
{
    return s->sent_off < s->queued || (s->fin_queued && !s->fin_sent);
}

/* Up to |max| vectors of unsent bytes from sent_off, stopping once they
 * hold |enough| bytes (what one packet can carry); returns the count. */
size_t nana_quic_stream_unsent(nana_quic_stream *s, ngtcp2_vec *v, size_t max, size_t enough);

/* ------------------------------------------------------------------ */
/* Connections (conn.c)                                                */
/* ------------------------------------------------------------------ */

typedef struct nana_quic_shard nana_quic_shard;

/* The streams of one kind the peer may open, and the credit we hold back
 * (stream credit goes back in batches, see credit.c). */
typedef struct nana_quic_credit {
    uint64_t granted; /* MAX_STREAMS we sent (initial limit included) */
    uint64_t opened;  /* streams the peer opened (highest stream number + 1) */
    uint32_t pending; /* closed since the last MAX_STREAMS: not yet returned */
    uint32_t window;  /* the configured limit */
} nana_quic_credit;

typedef enum {
    CONN_HANDSHAKE,
    CONN_OPEN,
    CONN_CLOSING,  /* we sent CONNECTION_CLOSE; answer with it for 3 PTO */
    CONN_DRAINING, /* the peer closed; stay silent for 3 PTO */
} nana_quic_conn_state;

struct nana_quic_conn {
    nana_quic_shard *shard;
    ngtcp2_conn *q;
    gnutls_session_t tls;
    ngtcp2_crypto_conn_ref conn_ref;
    ngtcp2_path_storage ps; /* current path */
    nana_quic_handle handle;
    nana_quic_conn_state state;
    bool is_client;
    bool app_opened; /* conn_open was called */
    bool app_closed; /* conn_close was called (or never will be) */
    bool dead;       /* to be freed at the end of the round */
    bool in_dirty;   /* on the shard's write list */
    bool early_accepted;
    bool close_pending;     /* nana_quic_conn_close asked; done at the next write */
    bool peer_closed;       /* the peer sent CONNECTION_CLOSE */
    bool tls_failed;        /* our side failed the TLS handshake (see verify_status) */
    bool trusted;           /* server: the layer above trusted it (nana_quic_conn_trust) */
    unsigned verify_status; /* gnutls verification status of the peer's certificate */
    nana_q_ccerr pending_ccerr;
    char close_reason[64]; /* the reason phrase pending_ccerr points at */
    struct nana_quic_conn *dirty_next;
    struct nana_quic_conn *dead_next;
    struct nana_quic_conn *next, *prev; /* shard's list */
    struct nana_quic_conn *hnext;       /* shard's handle table */
    size_t heap_idx;                    /* position in the timer heap */
    uint64_t expiry;                    /* when the timer fires (ns) */
    uint64_t close_deadline;            /* CLOSING/DRAINING: when to free */
    uint8_t *close_pkt;                 /* CLOSING: the CONNECTION_CLOSE datagram */
    size_t close_len;
    uint64_t close_sent_at;
    ngtcp2_cid odcid; /* server: client's first DCID (routed until the handshake ends) */
    bool odcid_mapped;
    ngtcp2_cid rcid; /* server after Retry: the client's second DCID */
    bool rcid_mapped;
    nana_quic_stream_table streams;
    nana_quic_stream *send_head, *send_tail; /* streams with bytes to send */
    const nana_quic_source *source;          /* pull-style sending (nana_quic_conn_set_source) */
    const nana_quic_callbacks *cb; /* its own callbacks (nana_quic_conn_set_callbacks), or NULL */
    void *cb_user;
    bool credit_by_app;                       /* windows open by nana_quic_stream_consumed */
    unsigned stops_pending;                   /* streams with stop_pending set */
    nana_quic_credit bidi_credit, uni_credit; /* peer-opened streams: MAX_STREAMS batching */
    nana_quic_identity identity;
    char alpn[NANA_Q_ALPN_MAX + 1];
    void *user; /* nana_quic_conn_set_data */
    /* server: admission (admit.c) */
    nana_admit_ent *admit;   /* its place in the counts */
    uint64_t trust_deadline; /* untrusted: closed at this time */
    uint64_t app_timer;      /* nana_quic_conn_set_timer; UINT64_MAX: none */
    /* client */
    char server_name[256]; /* GnuTLS keeps a pointer to it for the session's life */
    uint8_t *resume;       /* TLS session data for resumption (client) */
    size_t resume_len;
    /* the stateless reset tokens of the server CIDs in use, each also a key
     * of the shard's reset map */
    uint8_t reset_keys[NANA_Q_RESET_KEYS][NGTCP2_STATELESS_RESET_TOKENLEN];
    unsigned nreset_keys;
    ngtcp2_sockaddr_union remote_store, local_store;
};

/* A connection's list of streams with bytes to send (push-style). */
static inline void nana_quic_send_list_add(nana_quic_conn *c, nana_quic_stream *s)
{
    if (s->in_send_list || s->blocked) return;
    s->in_send_list = true;
    s->snext = NULL;
    if (c->send_tail)
        c->send_tail->snext = s;
    else
        c->send_head = s;
    c->send_tail = s;
}

static inline void nana_quic_send_list_remove(nana_quic_conn *c, nana_quic_stream *s)
{
    if (!s->in_send_list) return;
    nana_quic_stream **p = &c->send_head, *prev = NULL;
    while (*p && *p != s) {
        prev = *p;
        p = &(*p)->snext;
    }
    if (*p) *p = s->snext;
    if (c->send_tail == s) c->send_tail = prev;
    s->in_send_list = false;
    s->snext = NULL;
}

/* Stream credit (credit.c): |window| streams allowed at first. */
void nana_quic_credit_init(nana_quic_credit *k, uint32_t window);
/* The peer opened stream |sid| of this kind. */
void nana_quic_credit_opened(nana_quic_credit *k, int64_t sid);
/* One of the peer's streams closed: how many streams of credit to return
 * now (0: hold it back). */
uint32_t nana_quic_credit_closed(nana_quic_credit *k);

/* The frames of a decrypted 1-RTT packet payload (frames.c): calls
 * on_stop(arg, sid, code) for each STOP_SENDING frame. Returns 0, or -1
 * for a payload it cannot read whole (it stops there). */
int nana_quic_frames_scan(const uint8_t *p, size_t len,
                          void (*on_stop)(void *arg, int64_t sid, uint64_t code), void *arg);

/* Creates a server connection for an acceptable first Initial packet. */
int nana_quic_conn_accept(nana_quic_shard *sh, const ngtcp2_path *path, const ngtcp2_pkt_hd *hd,
                          const ngtcp2_cid *odcid, const ngtcp2_cid *retry_scid,
                          const uint8_t *token, size_t tokenlen, nana_quic_handle handle,
                          uint64_t ts, nana_quic_conn **out);

/* Closes a connection from the transport's side: CONNECTION_CLOSE with
 * transport error |code| and the static |reason|, at the next write. */
void nana_quic_conn_close_transport(nana_quic_conn *c, uint64_t code, const char *reason);

/* Creates a client connection to |remote| from the shard's socket. */
int nana_quic_conn_connect(nana_quic_shard *sh, const struct sockaddr *remote, socklen_t remote_len,
                           const char *server_name, const uint8_t *ticket, size_t ticket_len,
                           void *data, nana_quic_handle handle, uint64_t ts, nana_quic_conn **out);

/* Feeds one datagram to a connection. */
void nana_quic_conn_read(nana_quic_conn *c, const ngtcp2_path *path, const uint8_t *pkt, size_t len,
                         uint32_t ecn, uint64_t ts);

/* Writes what the connection has to send (packets, closes). */
void nana_quic_conn_write(nana_quic_conn *c, uint64_t ts);

/* Runs an expired timer. */
void nana_quic_conn_expire(nana_quic_conn *c, uint64_t ts);

/* Starts closing with |ccerr| (CONNECTION_CLOSE then the closing period). */
void nana_quic_conn_start_close(nana_quic_conn *c, const nana_q_ccerr *ccerr, uint64_t ts);

/* Frees a connection now: streams, CIDs, callbacks (conn_close). */
void nana_quic_conn_free(nana_quic_conn *c);

/* Recomputes the connection's timer after any change. */
void nana_quic_conn_update_timer(nana_quic_conn *c);

/* ------------------------------------------------------------------ */
/* CID table (cidmap.c)                                                 */
/* ------------------------------------------------------------------ */

typedef struct nana_quic_cidmap {
    struct cid_entry *slots;
    size_t cap, count, tombs;
    uint8_t key[16];
} nana_quic_cidmap;

int nana_quic_cidmap_init(nana_quic_cidmap *m);
void nana_quic_cidmap_free(nana_quic_cidmap *m);
int nana_quic_cidmap_put(nana_quic_cidmap *m, const ngtcp2_cid *cid, nana_quic_conn *c);
nana_quic_conn *nana_quic_cidmap_get(nana_quic_cidmap *m, const uint8_t *cid, size_t len);
void nana_quic_cidmap_del(nana_quic_cidmap *m, const ngtcp2_cid *cid);

/* ------------------------------------------------------------------ */
/* Shards (endpoint.c)                                                  */
/* ------------------------------------------------------------------ */

/* Where a shard's datagrams go: |n| packets of |len| bytes each (the last
 * may be shorter) laid out back to back, to one path. */
typedef struct nana_quic_tx {
    void (*send)(struct nana_quic_tx *tx, const ngtcp2_path *path, const uint8_t *data, size_t len,
                 size_t segment);
    /* Sends whatever send() queued; called at the end of every round.
     * NULL: send() sends at once. */
    void (*flush)(struct nana_quic_tx *tx);
} nana_quic_tx;

/* The send queue of one I/O thread (txq.c): the datagrams of a round, for
 * every connection, copied here and sent with as few sendmmsg calls as fit. */
#define NANA_Q_TXQ_MSGS  64                  /* messages (datagrams or GSO runs) per sendmmsg */
#define NANA_Q_TXQ_BYTES ((size_t)4 * 65536) /* bytes queued before a flush */
#define NANA_Q_TXQ_CTL   64    /* control bytes per message: source address + segment */
#define NANA_Q_GSO_BYTES 65000 /* bytes in one GSO message (a UDP send is < 64 KiB) */

typedef struct nana_quic_txq {
    int fd;
    bool name_source; /* wildcard-bound server: every message names its source address */
    bool gso_ok;      /* cleared for good when the kernel refuses UDP_SEGMENT */
    nana_quic_stats *st;
    size_t n, used; /* messages and bytes queued */
    struct mmsghdr mm[NANA_Q_TXQ_MSGS];
    struct iovec iov[NANA_Q_TXQ_MSGS];
    ngtcp2_sockaddr_union to[NANA_Q_TXQ_MSGS];
    _Alignas(struct cmsghdr) uint8_t ctl[NANA_Q_TXQ_MSGS][NANA_Q_TXQ_CTL];
    size_t ctl_base[NANA_Q_TXQ_MSGS]; /* control bytes before the segment control */
    uint16_t seg[NANA_Q_TXQ_MSGS];    /* GSO segment size, 0 for one datagram */
    uint8_t buf[NANA_Q_TXQ_BYTES];
} nana_quic_txq;

/* Sets up an empty queue sending on |fd|; counts into |st|. */
void nana_quic_txq_init(nana_quic_txq *q, int fd, bool name_source, nana_quic_stats *st);
/* Queues |len| bytes of packets to |path|, |seg| bytes each (the last may be
 * shorter; 0 or |len|: one packet). Sends the queue first if it is full. */
void nana_quic_txq_add(nana_quic_txq *q, const ngtcp2_path *path, const uint8_t *data, size_t len,
                       size_t seg);
/* Sends everything queued; what the kernel will not take is dropped. */
void nana_quic_txq_flush(nana_quic_txq *q);

/* A new client's first datagram, waiting for the end of the round (see
 * nana_quic_shard_recv): handshakes go after the packets of connections
 * that exist, so a flood of new clients cannot slow those down. */
#define NANA_Q_ACCEPT_QUEUE      256 /* datagrams waiting; more replace a random one */
#define NANA_Q_ACCEPTS_PER_ROUND 16  /* taken per round; the rest wait for the next */

typedef struct nana_quic_pending {
    ngtcp2_sockaddr_union local, remote;
    ngtcp2_socklen local_len, remote_len;
    uint32_t ecn;
    size_t len;
    uint8_t data[NANA_Q_MAX_UDP_RX];
} nana_quic_pending;

/* A timer heap slot: the key beside the connection, so sifting compares
 * within the array instead of reading a connection per comparison (10,000
 * connections: those reads were cache misses, sift_down ~7% of a run). */
typedef struct nana_quic_heap_ent {
    uint64_t expiry; /* the connection's expiry when it was last placed */
    nana_quic_conn *c;
} nana_quic_heap_ent;

struct nana_quic_shard {
    nana_quic_ep *ep;
    unsigned index;
    nana_quic_cidmap cids;
    nana_quic_cidmap resets;  /* client: stateless reset token -> connection */
    nana_quic_conn *conns;    /* list */
    nana_quic_conn **handles; /* handle -> conn (chained by hnext) */
    size_t nhandles;
    nana_quic_heap_ent *heap; /* timer min-heap on expiry */
    size_t heap_len, heap_cap;
    nana_quic_conn *dirty; /* connections to write at the end of the round */
    nana_quic_conn *dead;  /* connections to free at the end of the round */
    size_t unflushed;      /* stream bytes queued since the last flush */
    nana_quic_objs objs;   /* kept stream and chunk objects */
    nana_quic_tx *tx;
    uint8_t *txbuf; /* NANA_Q_TX_BURST * NANA_Q_MAX_UDP */
    unsigned handshaking;
    atomic_uint_fast64_t next_serial;
    uint64_t resets_window, resets_in_window; /* stateless reset rate limit */
    uint8_t rng_key[32]; /* per-shard ChaCha20 key: random bytes without a system call */
    uint64_t rng_ctr;
    uint64_t now; /* timestamp of the round */
    nana_quic_stats st;
    /* new clients' first datagrams (a ring), handshaken at the end of a round */
    nana_quic_pending *pending;
    size_t npending, pending_head;
    ngtcp2_sockaddr_union local; /* the socket's bound address */
    ngtcp2_socklen local_len;
    struct nana_quic_io *io; /* its I/O side (io_int.h); NULL when detached */
};

struct nana_quic_ep {
    nana_quic_config cfg;
    nana_quic_callbacks cb;
    nana_quic_tls tls;
    uint8_t secret[NANA_Q_SECRETLEN];
    nana_quic_shard *shards;
    unsigned nshards;
    atomic_uint conns; /* alive, all shards */
    nana_admit admit;  /* server: who may hold a connection */
    atomic_bool closing;
    uint16_t port;
    char **alpn_copy;
    bool debug; /* NANA_QUIC_DEBUG was set: ngtcp2 traces on stderr */
};

int nana_quic_shard_init(nana_quic_shard *sh, nana_quic_ep *ep, unsigned index);
void nana_quic_shard_free(nana_quic_shard *sh);

/* Feeds one received datagram to the shard (the sans-I/O entry point). */
void nana_quic_shard_recv(nana_quic_shard *sh, const ngtcp2_path *path, const uint8_t *pkt,
                          size_t len, uint32_t ecn, uint64_t ts);

/* Runs due timers and writes every dirty connection; frees the dead ones. */
void nana_quic_shard_flush(nana_quic_shard *sh, uint64_t ts);

/* Nanoseconds until the next timer (UINT64_MAX: none). */
uint64_t nana_quic_shard_next_timeout(nana_quic_shard *sh, uint64_t ts);

/* Marks a connection to be written at the end of the round. */
void nana_quic_shard_dirty(nana_quic_shard *sh, nana_quic_conn *c);

/* Queues a dead connection to be freed at the end of the round. */
void nana_quic_shard_dead(nana_quic_shard *sh, nana_quic_conn *c);

/* Registers / unregisters a connection's handle and list membership. */
void nana_quic_shard_link(nana_quic_shard *sh, nana_quic_conn *c);
void nana_quic_shard_unlink(nana_quic_shard *sh, nana_quic_conn *c);
nana_quic_conn *nana_quic_shard_by_handle(nana_quic_shard *sh, nana_quic_handle h);

/* Timer heap. */
void nana_quic_heap_update(nana_quic_shard *sh, nana_quic_conn *c);
void nana_quic_heap_remove(nana_quic_shard *sh, nana_quic_conn *c);

/* A new handle for a connection of this shard (shard index in the low byte). */
nana_quic_handle nana_quic_shard_new_handle(nana_quic_shard *sh);

/* Fills |buf| with |len| cryptographically random bytes (shard thread only). */
void nana_quic_shard_rand(nana_quic_shard *sh, uint8_t *buf, size_t len);

/* Fills |cid| with a fresh CID of this shard. */
void nana_quic_shard_new_cid(nana_quic_shard *sh, ngtcp2_cid *cid);

/* Client: the shard's socket changed (sh->local is its new address); every
 * live connection moves to it. */
void nana_quic_shard_rebound(nana_quic_shard *sh, uint64_t ts);

/* Closes every connection of the shard (endpoint shutdown). */
void nana_quic_shard_close_all(nana_quic_shard *sh, uint64_t ts);

/* Builds an endpoint with no socket and no thread: the caller drives its
 * shards itself (tx sink, local address, nana_quic_shard_recv/flush with
 * its own clock). For tests of the protocol core; free with
 * nana_quic_ep_del. */
int nana_quic_ep_new_detached(const nana_quic_config *cfg, nana_quic_ep **out);

/* The I/O side (io.c): sockets and event loops; stopping them; handing a
 * datagram of another shard's connection to that shard's thread (copied). */
int nana_quic_io_start(nana_quic_ep *ep);
void nana_quic_io_stop(nana_quic_ep *ep);
void nana_quic_io_teardown(nana_quic_shard *sh);
void nana_quic_io_forward(nana_quic_shard *to, const ngtcp2_path *path, const uint8_t *pkt,
                          size_t len);

#endif
