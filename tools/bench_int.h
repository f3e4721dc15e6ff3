/*
 * bench_int.h - what nanasqlite-bench's files share: the options, the
 * shards (one QUIC endpoint and I/O thread each) and their connections,
 * and the hooks a protocol's calls report to. bench_main.c drives the runs
 * and speaks the NanaSQLite protocol; bench_grpc.c speaks gRPC over
 * HTTP/3 (--proto grpc) through the same hooks, so both measure alike.
 *
 * Everything about a shard's connections runs on its I/O thread (see
 * bench_main.c); the hooks below are for that thread only.
 */
#ifndef NANA_BENCH_INT_H
#define NANA_BENCH_INT_H

#include "bench_hist.h" /* bench/: the histogram every benchmark uses */
#include "nanasqlite_client.h"
#include "quic/nana_quic.h"
#include "util/nana_buf.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KEY_DIGITS     12
#define VALUE_DIGITS   12 /* a write's counter: the first digits of its value */
#define STR_(x)        #x
#define STR(x)         STR_(x)
#define MAX_PIPELINE   4096
#define MAX_CONNS      100000
#define MAX_THREADS    64
#define MAX_HANDSHAKES 128 /* connection attempts in progress per thread */

typedef enum { W_GET, W_SET, W_MIXED, W_BATCH, W_RANGE, W_FILTER } workload;

/* Keys per range call (--proto aql --workload range). */
#define AQL_RANGE_KEYS 100

/* --proto: which door the calls go through. */
typedef enum { P_NANA, P_GRPC, P_AQL } bench_proto;

/* ---- options -------------------------------------------------------------- */

/* --workload: what each call does. */
typedef struct workload_spec {
    workload kind;
    unsigned read_pct; /* mixed: reads per 100 calls */
    unsigned batch;    /* batch: keys per call */
    const char *name;  /* as given */
} workload_spec;

typedef struct options {
    nana_client_opts co;
    unsigned conns, pipeline, threads, value_size, keyspace;
    uint64_t total;    /* -n; 0 when --duration is used */
    double duration_s; /* --duration */
    double rate;       /* --rate: calls per second over all connections; 0 closed loop */
    workload_spec wl;
    const char *db, *table;
    uint64_t server_pid;
    bool json, csv, quiet, no_populate, realtime;
    bench_proto proto; /* --proto */
} options;

/* ---- state ------------------------------------------------------------------ */

typedef struct shard shard;

/* One call in flight on a connection. */
typedef struct slot {
    int64_t sid; /* -1: free */
    uint64_t start_ns;
    uint32_t got; /* reply bytes seen */
    uint8_t head[24];
    bool is_set;
} slot;

typedef enum { C_IDLE, C_CONNECTING, C_AUTH, C_READY, C_DEAD } cstate;

typedef struct bconn {
    shard *sh;
    nana_quic_handle h;
    nana_quic_conn *qc; /* while open: only the shard's I/O thread uses it */
    cstate state;
    int64_t auth_sid;
    int auth_step;
    nana_buf auth;
    unsigned inflight;
    bool has_room_queued; /* in the shard's room ring */
    bool blocked;         /* the server's stream limit: waits for streams_available */
    slot *slots;          /* pipeline of them */
    uint32_t *free_slots; /* a stack of free slot indexes */
    unsigned nfree;
    uint32_t *by_sid; /* slot index + 1 by (stream id / 4) & sid_mask; 0: none */
    unsigned sid_mask;
    struct bgconn *g; /* --proto grpc: the connection's gRPC state (bench_grpc.c) */
} bconn;

struct shard {
    unsigned id;
    nana_quic_ep *ep;
    bconn *conns;
    unsigned nconns, next_connect, handshaking, next_pick;
    uint64_t rng;
    nana_buf get_tpl, set_tpl;
    size_t get_key_at, set_key_at, set_value_at, *batch_key_at;
    unsigned value_digits; /* digits of the counter in a write's value (0: none fit) */
    uint64_t writes;       /* writes started: the counter */
    bool going;            /* the clock runs: calls may start (go_post) */
    hist hist;
    uint64_t errors;
    char first_error[256];
    /* open loop: calls due but not yet sent (their due times) */
    uint64_t *backlog;
    size_t bl_head, bl_len, bl_cap;
    uint64_t scheduled; /* calls scheduled so far */
    /* open loop: connections that may take another call (a ring, each once) */
    bconn **room;
    size_t room_head, room_len;
    atomic_uint_fast64_t started, done, dropped;
    atomic_uint ready, failed;
};

extern options opt;
extern uint8_t secret_key[64]; /* the account's Ed25519 key (libsodium's 64-byte form) */
extern atomic_bool stopping;

/* ---- shared by the protocols (bench_main.c) ------------------------------------- */

uint64_t next_rand(shard *sh);
/* Writes |v| as |n| decimal digits at |p| (its last n digits). */
void put_digits(char *p, uint64_t v, unsigned n);
/* Writes key number |k| as KEY_DIGITS digits at |p|. */
void put_key(char *p, uint64_t k);
/* The next write's value counter of |sh| (unique in the run, see bench_main.c). */
uint64_t next_write_counter(shard *sh);
/* Whether the next call of a mixed workload (or any set workload) writes. */
bool next_is_set(shard *sh);
void record_error(shard *sh, const char *what);
/* The connection finished logging in: it takes calls from now on. */
void bench_conn_ready(bconn *c);
/* The connection is gone (conn_close): counts what it had in flight. */
void bench_conn_closed(bconn *c);
/* A call of |c| finished (started at |start_ns|); |error| NULL when it
 * succeeded. Counts it; the caller frees its slot first. */
void bench_call_done(bconn *c, uint64_t start_ns, const char *error);
/* After a reply freed room on |c|: the next calls start (closed loop) or
 * the due ones are sent (open loop). */
void bench_call_room(bconn *c);
/* The server raised its stream limit on |c|. */
void bench_streams_available(bconn *c);
/* start_connects on the shard's I/O thread (after a connection opened,
 * logged in or failed). */
void start_next_connect(shard *sh);

/* ---- --proto grpc (bench_grpc.c) ---------------------------------------------- */

/* Sets up |sh| for gRPC: request templates, per-connection state, and the
 * endpoint's ALPN and callbacks in |qc|. 0 or -1 (message printed). */
int bench_grpc_setup(shard *sh, nana_quic_config *qc);
/* Starts one call on |c| (as send_call in bench_main.c: 0, NANA_ERR_BUSY
 * when it cannot start now, another error recorded). */
int bench_grpc_send(bconn *c, uint64_t due_ns);
/* Frees what bench_grpc_setup made for |sh| (after its endpoint is gone). */
void bench_grpc_free(shard *sh);

#endif
