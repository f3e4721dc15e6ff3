/*
 * nana_gdoor.h - the gRPC door: gRPC over HTTP/3 on the server's QUIC
 * endpoint (ALPN "h3") and over HTTP/2 on its TCP endpoints, in front of the same call core,
 * accounts, policy and limits as the NanaSQLite door.
 *
 * It also serves gRPC over HTTP/2 on TCP connections (TLS, or h2c where
 * configured): the same services, calls and logins.
 *
 * Services: grpc.health.v1.Health (Check, Watch),
 * grpc.reflection.v1alpha.ServerReflection, and nanasqlite.v1.NanaSQLite
 * (Call: any method of the method table with JSON arguments; Get, Set,
 * Delete, BatchGet, BatchSet typed). docs/PROTOCOL.md describes the wire.
 *
 * A client is known by its verified certificate (an account that logs in
 * by certificate alone), by a signature in its first call's metadata,
 * bound to the connection by a TLS exporter value, or by a bearer token
 * (HS256 JWT) signed with its account's secret; see auth.c.
 * Health and reflection need no account.
 *
 * Everything about a connection runs on its I/O thread; calls the store's
 * threads answer come back to it by a loop post.
 */
#ifndef NANA_GDOOR_H
#define NANA_GDOOR_H

#include "auth/nana_ban.h"
#include "auth/nana_proof.h"
#include "core/nana_core.h"
#include "grpc/nana_grpc.h"
#include "h2/nana_h2.h"
#include "quic/nana_quic.h"

#include <stddef.h>
#include <stdint.h>

/* The door's limits and settings (0 = default). */
typedef struct nana_gdoor_opts {
    nana_grpc_limits lim;        /* request headers and messages (nana_grpc_limits_default) */
    size_t max_conn_bytes;       /* request bytes a connection's calls hold, default 50 MiB */
    size_t max_buffered_bytes;   /* the same, whole door, default 512 MiB */
    unsigned auth_skew_s;        /* a signature's timestamp may be this far off, default 300 */
    unsigned request_idle_ms;    /* a request with no new bytes this long is refused, 10000 */
    unsigned request_timeout_ms; /* a request must be whole this soon, default 120000 */
    unsigned reply_stall_ms;     /* HTTP/2: answers waiting with none of their bytes taken
                                    this long close the connection, default 30000 */
    unsigned ban_seconds, ban_failures; /* for log lines; the ban table decides */
    int no_bans;                        /* 1: never ban (tests) */
    /* AQL */
    size_t aql_batch_bytes;    /* ExecuteStream: key and value bytes of one batch, 65536 */
    size_t aql_window_bytes;   /* a call's answer bytes not yet acknowledged before it
                                  stops starting work, default 1 MiB */
    unsigned aql_max_inflight; /* queries of one stream running at once, default 64 */
    /* server proofs (nana_proof.h): the key signing them, 64 bytes that stay the
     * caller's while the door lives (NULL: no proofs), and when to add one */
    const uint8_t *proof_sk;
    nana_proof_mode proof_mode;
    /* HTTP/2 connections (the door over TCP): settings and flood limits */
    nana_h2_limits h2;
} nana_gdoor_opts;

void nana_gdoor_opts_init(nana_gdoor_opts *o);

typedef struct nana_gdoor nana_gdoor;

/*
 * Makes the door: |core| runs its calls, connections live on endpoint
 * |ep|, |accounts| says who may call, |ban| (may be NULL with no_bans)
 * counts failed logins. Everything stays the caller's.
 */
int nana_gdoor_new(nana_core *core, const nana_gdoor_opts *o, nana_quic_ep *ep,
                   const nana_door_accounts *accounts, nana_ban *ban, nana_gdoor **out);
void nana_gdoor_free(nana_gdoor *d);

/*
 * A connection that negotiated "h3" opened (call from the endpoint's
 * conn_open): it becomes this door's, with callbacks of its own and HTTP/3
 * on it. 0, or an error (the connection is then closed).
 */
int nana_gdoor_conn_open(nana_gdoor *d, nana_quic_conn *qc);

/*
 * The callbacks of a TCP endpoint (src/tcp) whose connections speak
 * HTTP/2 to this door (TLS with ALPN "h2", or plaintext h2c): make the
 * endpoint with them and the door as their user.
 */
struct nana_tcp_callbacks;
extern const struct nana_tcp_callbacks nana_gdoor_tcp_callbacks;

/*
 * The server stops gracefully (any thread; call once the core drains, so
 * health already answers NOT_SERVING): each connection of the door gets
 * HTTP/3 GOAWAY (requests it has not yet seen are refused, those it has
 * run to their end), and each open health Watch sends NOT_SERVING and ends
 * with UNAVAILABLE. Returns at once; the work runs on the I/O threads.
 */
void nana_gdoor_drain(nana_gdoor *d);

/* Counters for logs and tests. */
typedef struct nana_gdoor_stats {
    uint64_t calls;          /* gRPC calls answered */
    uint64_t auth_ok;        /* connections that logged in (certificate or signature) */
    uint64_t auth_failed;    /* signatures refused */
    uint64_t refused;        /* calls refused before running (bad request, limits, auth) */
    uint64_t cancelled;      /* calls the client cancelled before they ran */
    uint64_t buffered_bytes; /* request bytes held now */
} nana_gdoor_stats;

void nana_gdoor_get_stats(nana_gdoor *d, nana_gdoor_stats *out);

/* A client logs in with a signature over nana_grpc_login_message
 * (src/grpc/nana_grpc.h; docs/GRPC.md, "Logging in"). */

#endif
