/*
 * nana_door.h - the NanaSQLite door: the wire protocol of the Python
 * NanaSQLite-Server, byte for byte, in front of the call core.
 *
 * A session is one client connection. Each client-opened bidirectional
 * stream carries one request frame (u32 big-endian length + msgpack) and
 * gets one reply frame and FIN. Authentication comes first (AUTH_START, a
 * challenge, the signed answer); then each request becomes a call of the
 * core, and the core's answer becomes a reply frame. The door holds
 * framing, the login state machine and encoding, and the limits that are
 * about bytes on a connection (frames before login, unfinished requests,
 * replies nobody reads); everything about running a call is the core's.
 *
 * The door does no I/O and reads no clock: it runs on a connection the
 * server gives it through nana_door_io (send, reset, close, a timer, the
 * connection's clock), on that connection's thread, so it is tested on a
 * fake connection. Answers computed on other threads come back to the
 * connection's thread through nana_door_io's post().
 */
#ifndef NANA_DOOR_H
#define NANA_DOOR_H

#include "auth/nana_accounts.h"
#include "auth/nana_ban.h"
#include "core/nana_core.h"
#include "loop/nana_loop.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct nana_session nana_session;

/* A function to run on a connection's thread (nana_door_io's post); the
 * poster embeds it in its own object, so posting allocates nothing. */
typedef struct nana_door_post {
    struct nana_loop_post lp;          /* the transport's: how it reaches the thread */
    void (*fn)(void *conn, void *arg); /* conn is NULL when the connection is gone */
    void *arg;
    void *ep; /* the transport's: where |handle| lives */
    uint64_t handle;
} nana_door_post;

/*
 * What the door may do on a connection (implemented by the server over
 * its QUIC endpoint, by tests over a fake). |conn| is the connection as
 * the caller of the session functions gave it; valid on its thread only.
 */
typedef struct nana_door_io {
    /* Queues |len| bytes on stream |sid| (then FIN if |fin|), keeping a
     * reference: release(ctx) is called once the peer has them or never
     * will (not called when this fails). 0 or an error. */
    int (*send_ref)(void *conn, int64_t sid, const void *data, size_t len, int fin,
                    void (*release)(void *ctx), void *ctx);
    /* The same with a copy (|data| is the caller's again on return). */
    int (*send_copy)(void *conn, int64_t sid, const void *data, size_t len, int fin,
                     void (*release)(void *ctx), void *ctx);
    /* Abandons stream |sid| both ways with |code|. */
    int (*reset)(void *conn, int64_t sid, uint64_t code);
    /* Closes the connection with |code| and a reason phrase. */
    int (*close)(void *conn, uint64_t code, const char *reason);
    /* The client logged in: it keeps its place (see QUIC.md, admission). */
    int (*trust)(void *conn);
    /* The client asked to log in: of connections not logged in, it is the
     * last to be closed to make room. */
    void (*engage)(void *conn);
    /* Asks for nana_session_timer at |when| (the connection's clock);
     * UINT64_MAX cancels. */
    void (*set_timer)(void *conn, uint64_t when);
    /* The connection's clock, ns. */
    uint64_t (*now)(void *conn);
    /* Bytes queued for the peer and not yet acknowledged, and bytes
     * acknowledged so far. */
    void (*send_state)(void *conn, uint64_t *held, uint64_t *acked);
    /*
     * Any thread: runs p->fn(conn, p->arg) on connection |handle|'s thread,
     * with conn NULL when it is gone (or the endpoint stopped first). |p|
     * stays the poster's and must live until then; set fn and arg, the
     * rest is the transport's. Never fails, never allocates, never sleeps:
     * fn runs exactly once.
     */
    void (*post)(void *ep, uint64_t handle, nana_door_post *p);
    /* The session of |conn| (what the server keeps for it), NULL if none. */
    nana_session *(*session)(void *conn);
} nana_door_io;

/* The door's limits (0 = default). */
typedef struct nana_door_opts {
    size_t max_request_bytes;           /* one request frame, default 10 MiB */
    size_t max_conn_bytes;              /* unfinished requests of one connection, default 50 MiB */
    size_t max_preauth_request_bytes;   /* one frame before login, default 4096 */
    unsigned max_preauth_streams;       /* unfinished streams before login, default 50 */
    size_t max_buffered_bytes;          /* unfinished requests, whole door, default 512 MiB */
    unsigned request_idle_ms;           /* default 10000 */
    unsigned request_timeout_ms;        /* default 120000 */
    size_t max_unread_reply_bytes;      /* per connection, default 64 MiB */
    unsigned reply_stall_ms;            /* default 30000 */
    unsigned challenge_ttl_ms;          /* default 30000 */
    unsigned call_timeout_ms;           /* a call's deadline, default 15000 */
    unsigned ban_seconds, ban_failures; /* for the log lines; the ban table decides */
    int no_bans;                        /* 1: never ban (tests) */
} nana_door_opts;

void nana_door_opts_init(nana_door_opts *o);

typedef struct nana_door nana_door;

/*
 * Makes the door: |core| runs its calls, |io| reaches its connections on
 * endpoint |ep|, |accounts| says who may log in, |ban| (may be NULL with
 * no_bans) counts failed logins. Everything stays the caller's.
 */
int nana_door_new(nana_core *core, const nana_door_opts *o, const nana_door_io *io, void *ep,
                  const nana_door_accounts *accounts, nana_ban *ban, nana_door **out);
void nana_door_free(nana_door *d);

/* Counters for logs and tests. */
typedef struct nana_door_stats {
    uint64_t auth_ok, auth_failed, bans;
    uint64_t unread_held_back, stalled_closed, request_timeouts, busy;
} nana_door_stats;

void nana_door_get_stats(nana_door *d, nana_door_stats *out);

/* ---- sessions: on their connection's thread --------------------------------- */

/* What a new connection is. */
typedef struct nana_session_info {
    uint64_t handle; /* the connection's name for post() */
    struct sockaddr_storage addr;
    socklen_t alen;
    nana_cert_identity identity; /* the client's verified certificate, if any */
} nana_session_info;

/* A connection opened: its session (NULL when out of memory: close it). */
nana_session *nana_session_new(nana_door *d, const nana_session_info *info);

/*
 * The session's connection is usable (call once, after nana_session_new):
 * a verified client certificate that names an account logging in by
 * certificate alone logs it in now, and the connection is trusted.
 */
void nana_session_start(nana_session *s, void *conn);

/* Bytes of stream |sid| arrived (|fin|: its last). 0, or an error that
 * closes the connection. */
int nana_session_data(nana_session *s, void *conn, int64_t sid, const uint8_t *data, size_t len,
                      int fin, int early);

/* Stream |sid| is finished or reset. */
void nana_session_stream_closed(nana_session *s, void *conn, int64_t sid);

/* The time asked for with set_timer came. */
void nana_session_timer(nana_session *s, void *conn);

/* The connection is gone: frees the session (calls in flight still finish). */
void nana_session_free(nana_session *s);

#endif
