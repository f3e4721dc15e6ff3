/*
 * tcp_int.h - what the files of src/tcp share; nothing outside the module
 * includes it except its tests.
 *
 * An endpoint (nana_tcp_ep) is the settings, TLS credentials, admission
 * and counters its connections share, and one shard per loop. A server
 * endpoint has a shard on each of its loops (the listening socket, the
 * connections on that loop, their lists); a client connection gets an
 * endpoint of its own with one shard (nana_tcp_connect).
 *
 * A shard runs everything on its loop's thread. Work gathered during an
 * iteration is done in its before-sleep hook: connections with bytes to
 * write (the dirty list) are flushed and closed ones (the dead list) are
 * freed, so a connection is never freed inside one of its own callbacks.
 * Work that must not wait for the next event (more to read than one
 * iteration's budget, work queued after the hook ran) arms the shard's kick
 * timer for now, so the loop does not sleep.
 */
#ifndef NANA_TCP_INT_H
#define NANA_TCP_INT_H

#include "admit/nana_admit.h"
#include "tcp/nana_tcp.h"

#include <gnutls/gnutls.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#define NANA_TCP_RXBUF      ((size_t)64 * 1024) /* a shard's read buffer */
#define NANA_TCP_RECORD     16384u              /* plaintext bytes per TLS record */
#define NANA_TCP_ACCEPT_MAX 64                  /* connections accepted per wakeup */
#define NANA_TCP_PAUSE_MS   100                 /* accepting paused after EMFILE and the like */
#define NANA_TCP_KEEP_BUF                                                                          \
    ((size_t)64 * 1024) /* a drained send buffer larger than this is freed                         \
                         */
#define NANA_TCP_MAX_LOOPS 256
#define NANA_TCP_MS        1000000ull

/* An intrusive doubly linked list (circular, with a head node). */
typedef struct nana_tcp_link {
    struct nana_tcp_link *prev, *next;
} nana_tcp_link;

/* A connection's state, in the order a connection goes through them. */
enum {
    NANA_TCP_CONNECTING, /* client: non-blocking connect under way */
    NANA_TCP_HANDSHAKE,  /* TLS handshake under way */
    NANA_TCP_OPEN,       /* conn_open returned 0 (or is being called) */
    NANA_TCP_FLUSHING,   /* graceful close: writing what is queued */
    NANA_TCP_BYE,        /* graceful close: sending close_notify */
    NANA_TCP_LINGER,     /* graceful close: written and shut; reading to the peer's end */
    NANA_TCP_DEAD        /* on the dead list: freed by the hook */
};

/* TLS settings of an endpoint (tls.c). */
typedef struct nana_tcp_tls {
    gnutls_certificate_credentials_t cred;
    gnutls_priority_t prio;
    gnutls_datum_t *alpn;
    size_t nalpn;
    int client_auth;
    bool server;
    char server_name[256]; /* client: SNI and the name verified */
} nana_tcp_tls;

typedef struct nana_tcp_shard nana_tcp_shard;

struct nana_tcp_conn {
    nana_loop_fd src;
    nana_tcp_shard *sh;
    int fd;
    int state;
    uint64_t handle;
    void *user;
    gnutls_session_t tls; /* NULL when plaintext */
    bool opened;          /* conn_open returned 0: conn_close is owed */
    bool trusted;
    bool read_paused;    /* the send buffer is over the cap */
    bool over;           /* went over the cap: writable is owed once under the low mark */
    bool want_out;       /* waiting for EPOLLOUT */
    bool read_wants_out; /* TLS must write before it can read on */
    bool record_pending; /* a record_send returned AGAIN: repeat it */
    uint32_t events;     /* what the loop watches now */
    nana_admit_ent *admit;
    /* The send buffer: out[off, len) is queued. */
    uint8_t *out;
    size_t off, len, cap;
    size_t pending; /* the size of the record_send to repeat */
    /* Deadlines, loop clock ns, 0 for none. */
    uint64_t hs_deadline, trust_deadline, linger_deadline, app_timer;
    uint64_t last_io; /* bytes last moved either way */
    nana_loop_timer timer;
    nana_tcp_link all;   /* the shard's connections */
    nana_tcp_link dirty; /* the shard's connections to flush */
    nana_tcp_link dead;  /* the shard's connections to free */
    nana_tcp_link more;  /* the shard's connections with more to read */
    nana_tcp_conn *hnext;
    struct sockaddr_storage peer;
    socklen_t peerlen;
    nana_cert_identity id;
    char alpn[NANA_TCP_ALPN_MAX + 1];
    char error[96];
};

struct nana_tcp_shard {
    nana_tcp_ep *ep;
    nana_loop *loop;
    unsigned index;
    bool attached; /* hooks added on the loop (loop thread) */
    bool joined;   /* its setup ran (under ep->mu; never cleared) */
    int lfd;       /* listening socket, -1 when none */
    nana_loop_fd lsrc;
    bool lwatched;         /* lsrc added to the loop */
    nana_loop_timer pause; /* accepting resumes */
    nana_loop_timer kick;  /* work that must not wait: see the top */
    nana_loop_hook hook, bye;
    nana_tcp_link all, dirty, dead, more;
    nana_tcp_conn **buckets; /* handle -> connection */
    size_t nbuckets, nconns;
    uint8_t *rx;
    /* Evictions posted by other shards: handles to close. */
    pthread_mutex_t mu;
    uint64_t *victims;
    size_t nvictims, capvictims;
    bool evict_posted, closed; /* closed: the shard ended, posts refused */
    bool done;                 /* the endpoint may be freed as far as this shard goes */
    struct nana_loop_post setup_post, stop_post, del_post, evict_post;
};

struct nana_tcp_ep {
    bool server;
    nana_tcp_config cfg; /* settled copy (cb points at cb below) */
    nana_tcp_callbacks cb;
    nana_tcp_tls tls;
    bool tls_ready;
    nana_admit admit;
    bool admit_ready;
    uint16_t port;
    nana_tcp_shard *shards;
    unsigned nshards;
    atomic_bool accepting;
    atomic_bool stop_posted;
    atomic_uint_fast64_t next_handle;
    /* Counters (nana_tcp_stats). */
    atomic_uint_fast64_t n_accepted, n_refused, n_evicted, n_hs_fail, n_hs_timeout, n_trust_timeout,
        n_idle_timeout, n_pauses, n_open;
    /* Shard setup and teardown wait here. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned waiting;
    int setup_rc;
};

/* ---- lists (conn.c) ---- */
void nana_tcp_list_init(nana_tcp_link *h);
bool nana_tcp_list_empty(const nana_tcp_link *h);
bool nana_tcp_linked(const nana_tcp_link *l);
void nana_tcp_list_add(nana_tcp_link *h, nana_tcp_link *l);
void nana_tcp_list_del(nana_tcp_link *l);

#define NANA_TCP_OF(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* ---- TLS (tls.c) ---- */
/* Loads what a server (|server|) or a client needs; on failure what was
 * made is left for nana_tcp_tls_free. */
int nana_tcp_tls_init_server(nana_tcp_tls *t, const nana_tcp_config *cfg);
int nana_tcp_tls_init_client(nana_tcp_tls *t, const nana_tcp_client_config *cfg);
void nana_tcp_tls_free(nana_tcp_tls *t);
/* Makes c->tls, reading and writing c->fd. */
int nana_tcp_tls_session(nana_tcp_tls *t, nana_tcp_conn *c);
/* After the handshake: ALPN and (server) the client's identity into |c|. */
void nana_tcp_tls_peer_info(nana_tcp_conn *c);

/* ---- connections (conn.c) ---- */
/* A connection on |sh| for socket |fd| (state HANDSHAKE or, plaintext,
 * about to open); watched by the loop. The caller sets peer and admission. */
int nana_tcp_conn_new(nana_tcp_shard *sh, int fd, uint64_t handle, nana_tcp_conn **out);
/* Plaintext or after the handshake: calls conn_open. */
void nana_tcp_conn_opened(nana_tcp_conn *c);
/* Drives the handshake as far as it goes now. */
void nana_tcp_conn_handshake(nana_tcp_conn *c);
/* Closes at once (no flush), recording |why| for nana_tcp_conn_error. */
void nana_tcp_conn_kill(nana_tcp_conn *c, const char *why);
/* Recomputes and arms the connection's timer. */
void nana_tcp_conn_arm(nana_tcp_conn *c);
/* Watches the socket for what the connection waits for now. */
void nana_tcp_conn_watch(nana_tcp_conn *c);
/* The kick timer found |c| with more to read: reads on. */
void nana_tcp_conn_read_more(nana_tcp_conn *c);
/* The hook found |c| on the dirty list: writes. */
void nana_tcp_conn_flush(nana_tcp_conn *c);
/* Frees a dead connection: its socket, session, place, memory; conn_close
 * first when it opened (or always, for a client's: see nana_tcp_connect). */
void nana_tcp_conn_free(nana_tcp_conn *c);
/* The connection of |handle| on |sh|, or NULL. */
nana_tcp_conn *nana_tcp_shard_find(nana_tcp_shard *sh, uint64_t handle);

/* ---- shards (shard.c) ---- */
/* Prepares |sh| (no loop calls). */
int nana_tcp_shard_init(nana_tcp_shard *sh, nana_tcp_ep *ep, nana_loop *loop, unsigned index);
/* On the loop's thread: adds the hooks. */
void nana_tcp_shard_attach(nana_tcp_shard *sh);
/* On the loop's thread: closes the listener and every connection (their
 * conn_close run) and removes the hooks. Returns true when the shard's
 * endpoint was a client's and is freed now. */
bool nana_tcp_shard_close_all(nana_tcp_shard *sh);
/* Frees what nana_tcp_shard_init made. */
void nana_tcp_shard_free(nana_tcp_shard *sh);
/* Arms the kick timer for now. */
void nana_tcp_shard_kick(nana_tcp_shard *sh);
/* Closes the listener (loop thread). */
void nana_tcp_shard_unlisten(nana_tcp_shard *sh);
/* Accepting: the listener's readiness (listen.c). */
void nana_tcp_on_listen(nana_loop *loop, nana_loop_fd *src, uint32_t events);
/* Frees a client's endpoint once its one connection is gone (connect.c). */
void nana_tcp_client_ep_free(nana_tcp_ep *ep);
/* A zeroed endpoint with its lock and counters, and its release (listen.c). */
nana_tcp_ep *nana_tcp_ep_alloc(void);
void nana_tcp_ep_release(nana_tcp_ep *ep);

#endif
