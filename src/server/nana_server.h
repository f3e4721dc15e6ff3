/*
 * nana_server.h - the NanaSQLite server: the store behind the QUIC
 * endpoint, with accounts, policy, limits and bans. The module's whole
 * public face; nanasqlite-server is a thin command line around it.
 *
 * Threads: the QUIC I/O threads run sessions (frames, authentication,
 * policy, cache hits, queued writes); a pool of workers runs every other
 * call against the store; one deadline thread answers calls that outlive
 * their deadline; the accounts watcher reloads the accounts file.
 */
#ifndef NANA_SERVER_H
#define NANA_SERVER_H

#include "store/nana_store.h"
#include "util/nana_err.h"
#include "util/nana_log.h"
#include "util/nana_opt.h"

#include <stddef.h>
#include <stdint.h>

typedef struct nana_server nana_server;

/* Whether clients are asked for a certificate (mutual TLS); needs client_ca_path. */
typedef enum nana_client_certs {
    NANA_CLIENT_CERTS_DEFAULT = 0, /* request, when client_ca_path is set */
    NANA_CLIENT_CERTS_REQUEST = 1, /* ask; a certificate given must verify against the CA */
    NANA_CLIENT_CERTS_REQUIRE = 2, /* refuse a client without one at the handshake */
} nana_client_certs;

/* The longest address --bind (bind_address) takes. */
#define NANA_SERVER_HOST_MAX 256

typedef struct nana_server_opts {
    const char *host;            /* default "127.0.0.1"; may point at bind_host */
    uint16_t port;               /* default 4433; 0 picks a free port */
    unsigned threads;            /* QUIC I/O threads, default 1 */
    unsigned workers;            /* store worker threads, default 8 */
    const char *db_path;         /* the default database, default "server_db.sqlite" */
    const char *db_dir;          /* where "db" names live; default: the accounts file's
                                    db_dir, else the default database's directory */
    const char *accounts_path;   /* accounts JSON; NULL: one account from public_key_path */
    const char *public_key_path; /* default "nana_public.pub" (used without accounts) */
    const char *cert_path;       /* default "cert.pem" */
    const char *key_path;        /* default "key.pem" */
    nana_sync_mode sync;         /* default NANA_SYNC_NORMAL */
    /* mutual TLS */
    const char *client_ca_path;     /* PEM CAs of client certificates; NULL: none are asked for */
    nana_client_certs client_certs; /* with client_ca_path; default request */
    /* limits (0 = default) */
    size_t max_stream_bytes;      /* one request frame, default 10 MiB */
    size_t max_conn_bytes;        /* half-received requests of one connection, default 50 MiB */
    unsigned max_preauth_streams; /* half-received streams before authentication, default 50 */
    unsigned max_connections;     /* default 10000 */
    unsigned max_conns_per_addr;  /* connections from one address (IPv4, IPv6 /64), default 256 */
    unsigned max_unauthenticated; /* connections not logged in (handshakes too), default 1024 */
    unsigned auth_timeout_ms;     /* log in this soon after the first packet, default 5000 */
    size_t max_preauth_request_bytes; /* one request frame before login, default 4096 */
    size_t max_buffered_bytes;        /* unfinished request bytes, server-wide, default 512 MiB */
    unsigned request_idle_ms; /* an unfinished request idle this long is refused, default 10000 */
    unsigned request_timeout_ms;   /* a request must be whole this soon, default 120000 */
    size_t max_unread_reply_bytes; /* replies queued on a connection, unread, default 64 MiB */
    unsigned reply_stall_ms;       /* unread replies making no progress this long close it, 30000 */
    unsigned max_streams;          /* calls in flight per connection, default 128 */
    double calls_per_sec;          /* per account unless its own limit is set, default 1e6 */
    unsigned call_timeout_ms;      /* per call, default 15000 */
    unsigned queue_limit;          /* calls waiting for a worker, default 4096 */
    unsigned max_dbs;              /* databases open at once, default 64 */
    unsigned idle_timeout_ms;      /* QUIC idle timeout, default 30000 */
    unsigned keepalive_ms;         /* PING an idle connection this often; 0 (default): never */
    size_t stream_window;          /* QUIC flow-control window of a stream, default 1 MiB
                                      (at most max_stream_bytes) */
    unsigned challenge_ttl_ms;     /* default 30000 */
    unsigned ban_failures;         /* failed authentications that ban, default 3 */
    unsigned ban_seconds;          /* default 900 */
    int no_bans;                   /* 1: never ban (tests) */
    unsigned grace_ms;             /* graceful stop waits this long for calls, default 10000 */
    /* the gRPC door (HTTP/3, ALPN "h3") */
    int no_grpc;                     /* 1: the endpoint does not offer "h3" */
    size_t grpc_max_message_bytes;   /* one request message, default 4 MiB */
    unsigned grpc_max_header_bytes;  /* a request's header fields, default 8192 */
    unsigned grpc_max_header_fields; /* a request's header fields, count, default 64 */
    unsigned grpc_auth_skew_s;       /* a login signature's clock skew, default 300 */
    /* the gRPC door over HTTP/2 on TCP: TLS (ALPN "h2") on host and the QUIC port's number */
    int no_grpc_tcp;                     /* 1: no TCP listener */
    char h2c_host[NANA_SERVER_HOST_MAX]; /* plaintext h2c listener's address ("": none) */
    unsigned h2c_port;
    unsigned h2_rst_per_s;             /* client RST_STREAMs a second (burst 5x), default 200 */
    unsigned h2_ping_per_s;            /* client PINGs a second (burst 4x), default 50 */
    size_t tcp_send_buffer_bytes;      /* a TCP connection's unsent bytes before it stops reading,
                                          default 256 KiB */
    unsigned tls_handshake_timeout_ms; /* a TCP connection's TLS handshake, default 10000 */
    /* a dqlite cluster (CLUSTER.md); cluster_id 0: not clustered */
    unsigned cluster_wait_ms;      /* a call waits this long for a leader, default 10000 */
    unsigned cluster_start_ms;     /* the start waits this long for a leader, default 120000 */
    unsigned cluster_latency_ms;   /* one-way latency dqlite times Raft by; 0: dqlite's own */
    unsigned cluster_handshake_ms; /* a peer's TLS handshake on the cluster address, 5000 */
    unsigned cluster_conns_max;    /* peers' connections on the cluster address, default 256 */
    unsigned cluster_pending_max;  /* of which still in their handshake, default 32 */
    uint64_t cluster_id;           /* this node's id; 1 bootstraps a new cluster */
    const char *cluster_cert;      /* this node's certificate for the cluster's mutual TLS */
    const char *cluster_key;       /* its key (0600) */
    const char *cluster_ca;        /* the cluster's CA; all three or none (plaintext) */
    const char *cluster_bind;      /* HOST:PORT where this node's dqlite listens */
    const char *cluster_join;      /* comma-separated cluster addresses of other nodes */
    const char *cluster_dir;       /* Raft data; NULL: db_path + ".cluster" */
    const char *cluster_recover;   /* "ID=HOST:PORT,...": rewrite this node's Raft membership to
                                      these surviving voters and exit (CLUSTER.md) */
    /* the AQL services' server proofs */
    const char *proof_key_path; /* Ed25519 private key (PKCS#8 PEM); NULL: proof.key beside
                                   key_path, made on first start */
    int proof_mode;             /* nana_proof_mode: ask (default), always, never */
    unsigned aql_max_inflight;  /* queries of one AQL stream running at once, default 64 */
    size_t aql_batch_bytes;     /* ExecuteStream: bytes of one StreamBatch, default 65536 */
    size_t aql_window_bytes;    /* an AQL call's unacknowledged answer bytes, default 1 MiB */
    int worker_delay_ms;        /* tests only: each worker call first sleeps this long */
    /* databases */
    nana_open_check open_check; /* check of each database file at open, default quick */
    int allow_corrupt;          /* 1: serve damaged databases anyway (for recovery) */
    /* for the program around the server (nanasqlite-server), not nana_server_start */
    nana_log_level log_level; /* default NANA_LOG_INFO */
    const char *ready_file;   /* the port is written here once serving; NULL: none */
    const char *config_path;  /* the configuration file read (--config), or NULL */
    /* --bind ADDR:PORT: a copy of the address, which host then points at */
    char bind_host[NANA_SERVER_HOST_MAX];
} nana_server_opts;

/*
 * The server's options, one row each (src/server/options.c): name, type,
 * range, default, group, help and configuration key, with offsets into
 * nana_server_opts. The command line, its --help, docs/CONFIG.md, the
 * configuration file (--config) and its example all read these rows; a
 * new option is one new row (and its field above). Sets *n to the number
 * of rows.
 */
const nana_opt *nana_server_options(size_t *n);

/* Fills |o| with the defaults of the option rows (everything else zero). */
void nana_server_opts_init(nana_server_opts *o);

/*
 * Checks settings that are each in range but do not fit together (a
 * keep-alive that is not shorter than the idle timeout). Returns 0, or
 * NANA_ERR_INVALID naming both options.
 */
int nana_server_opts_check(const nana_server_opts *o);

/*
 * The recovery of a cluster that lost its majority (o->cluster_recover):
 * with every node stopped, rewrites this node's Raft membership (in its
 * cluster directory) to the surviving voters listed, then returns. 0, or
 * the error (bad list, this node not in it, dqlite's refusal).
 */
int nana_server_cluster_recover(const nana_server_opts *o);

/*
 * Loads keys, certificates and accounts, binds the port, then opens the
 * default database and starts every thread. Everything that can fail
 * without leaving anything behind comes first: a failed start creates no
 * file or directory. Connections are refused until the start finished.
 * *out owns the server (nana_server_stop). Errors name the file, address
 * or setting at fault (NANA_ERR_NOTFOUND for a missing file, NANA_ERR_BUSY
 * for a database another server holds, NANA_ERR_CORRUPT for a damaged
 * one, NANA_ERR_INVALID, NANA_ERR_IO, ...).
 */
int nana_server_start(const nana_server_opts *o, nana_server **out);

/* The UDP port the server listens on. */
uint16_t nana_server_port(const nana_server *s);

/*
 * Graceful stop: refuses new connections and calls, waits up to grace_ms
 * for calls in flight to be answered, closes the connections, stops the
 * threads, commits and closes the databases, and frees the server. Returns
 * 0, or the first error from closing a database. NULL-safe.
 */
int nana_server_stop(nana_server *s);

/* Counters for logs and tests. */
typedef struct nana_server_stats {
    uint64_t calls;         /* requests answered */
    uint64_t cache_answers; /* answered on an I/O thread from the cache */
    uint64_t auth_ok, auth_failed, bans;
    uint64_t timeouts, busy, rate_limited;
    uint64_t in_flight; /* calls received and not yet answered */
} nana_server_stats;

void nana_server_get_stats(nana_server *s, nana_server_stats *out);

#endif
