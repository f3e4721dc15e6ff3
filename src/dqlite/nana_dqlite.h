/*
 * nana_dqlite.h - a client of dqlite's wire protocol, and a dqlite node to
 * run beside it.
 *
 * dqlite (Debian's libdqlite 1.11) replicates SQLite over Raft. Every
 * server process embeds a node (nana_dql_node_*), and SQL goes to the
 * cluster's leader over dqlite's documented wire protocol: after a
 * handshake word (protocol version 1), each message is an 8-byte header
 * (body size in 8-byte words, type, schema) and a body of little-endian
 * words, texts NUL-terminated and padded to words, and tuples of typed
 * values.
 *
 * Three layers, one header:
 *   - the codec (proto.c): requests encoded into a nana_buf, responses
 *     decoded from bytes that came from outside, with bounds checks on every
 *     length, count and string and limits on sizes. No I/O.
 *   - the client (client.c): one blocking TCP connection, used by one thread
 *     at a time (each of the store's threads holds its own), with deadlines
 *     on every request, its prepared statements cached.
 *   - mutual TLS (tls.c): a front on a node's cluster address that relays
 *     authenticated peers to the node's private listener, and outgoing
 *     connections through TLS handed back as plain sockets.
 *   - the node (node.c): a dqlite node on a data directory and a loopback or
 *     LAN address; the node with id 1 bootstraps a new cluster, the others
 *     join through the leader (ADD, then ASSIGN as voter).
 *
 * Addresses are "IPv4:port" or "[IPv6]:port" (numeric; no name lookup).
 * Errors are negative NANA_ERR_* codes with their message in nana_errmsg().
 */
#ifndef NANA_DQLITE_H
#define NANA_DQLITE_H

#include <stddef.h>
#include <stdint.h>

#include "util/nana_buf.h"

/* The protocol version this client speaks (sent as the handshake word). */
#define NANA_DQL_PROTOCOL_VERSION 1

/* Request types. */
enum {
    NANA_DQL_REQ_LEADER = 0,
    NANA_DQL_REQ_CLIENT = 1,
    NANA_DQL_REQ_OPEN = 3,
    NANA_DQL_REQ_PREPARE = 4,
    NANA_DQL_REQ_EXEC = 5,
    NANA_DQL_REQ_QUERY = 6,
    NANA_DQL_REQ_FINALIZE = 7,
    NANA_DQL_REQ_EXEC_SQL = 8,
    NANA_DQL_REQ_QUERY_SQL = 9,
    NANA_DQL_REQ_INTERRUPT = 10,
    NANA_DQL_REQ_ADD = 12,
    NANA_DQL_REQ_ASSIGN = 13,
    NANA_DQL_REQ_REMOVE = 14,
    NANA_DQL_REQ_CLUSTER = 16,
    NANA_DQL_REQ_TRANSFER = 17,
};

/* Response types. */
enum {
    NANA_DQL_RESP_FAILURE = 0,
    NANA_DQL_RESP_SERVER = 1, /* the leader: id and address */
    NANA_DQL_RESP_WELCOME = 2,
    NANA_DQL_RESP_SERVERS = 3, /* the cluster: id, address and role of each node */
    NANA_DQL_RESP_DB = 4,
    NANA_DQL_RESP_STMT = 5,
    NANA_DQL_RESP_RESULT = 6,
    NANA_DQL_RESP_ROWS = 7,
    NANA_DQL_RESP_EMPTY = 8,
};

/* Value types (SQLite's codes, and dqlite's own for dates and booleans). */
enum {
    NANA_DQL_INTEGER = 1,
    NANA_DQL_FLOAT = 2,
    NANA_DQL_TEXT = 3,
    NANA_DQL_BLOB = 4,
    NANA_DQL_NULL = 5,
    NANA_DQL_UNIXTIME = 9, /* in rows only: an integer in a DATETIME column */
    NANA_DQL_ISO8601 = 10, /* text in a DATETIME column */
    NANA_DQL_BOOLEAN = 11, /* 0 or 1, in a BOOLEAN column */
};

/* Node roles. */
enum {
    NANA_DQL_VOTER = 0,
    NANA_DQL_STANDBY = 1,
    NANA_DQL_SPARE = 2,
};

/* End markers of a ROWS body: more rows follow in another message, or none. */
#define NANA_DQL_ROWS_PART 0xeeeeeeeeeeeeeeeeULL
#define NANA_DQL_ROWS_DONE 0xffffffffffffffffULL

/* dqlite's failure codes for a write sent to a node that is not the leader. */
#define NANA_DQL_CODE_NOT_LEADER      (10 | (40 << 8))
#define NANA_DQL_CODE_LEADERSHIP_LOST (10 | (41 << 8))

/* Most parameters one statement takes (the count is one byte on the wire). */
#define NANA_DQL_PARAMS_MAX 255

/* Defaults of nana_dql_limits. */
#define NANA_DQL_BODY_MAX_DEFAULT    ((size_t)64 << 20)  /* bytes in one message body */
#define NANA_DQL_COLUMNS_MAX_DEFAULT 2000                /* SQLite's own default */
#define NANA_DQL_RESULT_MAX_DEFAULT  ((size_t)256 << 20) /* bytes of one query's rows */

/* What a response may be: outside bytes are refused past these. */
typedef struct nana_dql_limits {
    size_t body_max;    /* largest message body accepted (bytes) */
    size_t columns_max; /* most columns in a ROWS response */
    size_t result_max;  /* most body bytes kept for one query's rows over its messages */
} nana_dql_limits;

/* Fills |l| with the defaults above. */
void nana_dql_limits_default(nana_dql_limits *l);

/*
 * One value: a statement parameter (pointers borrowed from the caller) or a
 * column of a row (pointers into the rows' kept message bodies).
 */
typedef struct nana_dql_value {
    int type;      /* NANA_DQL_INTEGER ... NANA_DQL_BOOLEAN */
    int64_t i;     /* INTEGER, UNIXTIME, BOOLEAN (0 or 1) */
    double f;      /* FLOAT */
    const char *p; /* TEXT and ISO8601: NUL-terminated; BLOB: the bytes */
    size_t len;    /* TEXT and ISO8601: strlen; BLOB: byte count */
} nana_dql_value;

static inline nana_dql_value nana_dql_int(int64_t v)
{
    nana_dql_value x = {NANA_DQL_INTEGER, v, 0.0, NULL, 0};
    return x;
}
static inline nana_dql_value nana_dql_float(double v)
{
    nana_dql_value x = {NANA_DQL_FLOAT, 0, v, NULL, 0};
    return x;
}
/* |s| must stay valid until the request is encoded; it may not contain a NUL. */
static inline nana_dql_value nana_dql_text(const char *s, size_t len)
{
    nana_dql_value x = {NANA_DQL_TEXT, 0, 0.0, s, len};
    return x;
}
static inline nana_dql_value nana_dql_blob(const void *p, size_t len)
{
    nana_dql_value x = {NANA_DQL_BLOB, 0, 0.0, (const char *)p, len};
    return x;
}
static inline nana_dql_value nana_dql_null(void)
{
    nana_dql_value x = {NANA_DQL_NULL, 0, 0.0, NULL, 0};
    return x;
}

/* ---- the codec: message headers ---- */

typedef struct nana_dql_header {
    uint32_t words; /* body size in 8-byte words */
    uint8_t type;
    uint8_t schema;
} nana_dql_header;

/* Reads a header from 8 bytes; NANA_ERR_TOOBIG past |lim|->body_max. */
int nana_dql_header_decode(const uint8_t b[8], const nana_dql_limits *lim, nana_dql_header *h);

/* ---- the codec: requests (each appends one whole message to |out|) ---- */

/* The handshake word: the protocol version, sent once after connecting. */
int nana_dql_enc_handshake(nana_buf *out);
int nana_dql_enc_leader(nana_buf *out);
int nana_dql_enc_client(nana_buf *out, uint64_t client_id);
int nana_dql_enc_open(nana_buf *out, const char *name);
int nana_dql_enc_prepare(nana_buf *out, uint32_t db, const char *sql);
/* EXEC and QUERY of a prepared statement with |n| parameters (at most 255). */
int nana_dql_enc_exec(nana_buf *out, uint32_t db, uint32_t stmt, const nana_dql_value *params,
                      size_t n);
int nana_dql_enc_query(nana_buf *out, uint32_t db, uint32_t stmt, const nana_dql_value *params,
                       size_t n);
int nana_dql_enc_finalize(nana_buf *out, uint32_t db, uint32_t stmt);
/* EXEC_SQL runs every statement of |sql|; QUERY_SQL yields the rows of its first. */
int nana_dql_enc_exec_sql(nana_buf *out, uint32_t db, const char *sql, const nana_dql_value *params,
                          size_t n);
int nana_dql_enc_query_sql(nana_buf *out, uint32_t db, const char *sql,
                           const nana_dql_value *params, size_t n);
int nana_dql_enc_interrupt(nana_buf *out, uint32_t db);
int nana_dql_enc_add(nana_buf *out, uint64_t id, const char *address);
int nana_dql_enc_assign(nana_buf *out, uint64_t id, uint64_t role);
int nana_dql_enc_remove(nana_buf *out, uint64_t id);
int nana_dql_enc_cluster(nana_buf *out);
int nana_dql_enc_transfer(nana_buf *out, uint64_t id);

/* ---- the codec: responses ---- */

/* One node of the cluster (SERVERS) or the leader (SERVER, role unset). */
typedef struct nana_dql_node_info {
    uint64_t id;
    const char *address;
    uint64_t role; /* NANA_DQL_VOTER, _STANDBY or _SPARE */
} nana_dql_node_info;

/*
 * A decoded response other than ROWS. Strings point into the body that was
 * decoded, which must outlive them; |nodes| is allocated (free it with
 * nana_dql_response_free).
 */
typedef struct nana_dql_response {
    uint8_t type;              /* NANA_DQL_RESP_* */
    uint64_t code;             /* FAILURE: dqlite's (SQLite's) error code */
    const char *message;       /* FAILURE: its text */
    nana_dql_node_info leader; /* SERVER: id 0 and "" when no leader is known */
    uint64_t heartbeat;        /* WELCOME: the server's heartbeat timeout */
    nana_dql_node_info *nodes; /* SERVERS */
    size_t nnodes;             /* SERVERS */
    uint32_t db;               /* DB, STMT: the database id */
    uint32_t stmt;             /* STMT: the statement id */
    uint64_t params;           /* STMT: how many parameters it takes */
    uint64_t last_insert_id;   /* RESULT */
    uint64_t rows_affected;    /* RESULT */
} nana_dql_response;

/*
 * Decodes the body of a response of |type| (any but ROWS) into |out|, which
 * it first clears. Every field must be there and nothing after them;
 * NANA_ERR_INVALID otherwise, with what was wrong.
 */
int nana_dql_response_decode(uint8_t type, const uint8_t *body, size_t len, nana_dql_response *out);

/* Frees what nana_dql_response_decode allocated. NULL-safe. */
void nana_dql_response_free(nana_dql_response *r);

/*
 * A query's rows, gathered over one or more ROWS messages. The caller owns
 * it: nana_dql_rows_init before use, nana_dql_rows_free after (it frees the
 * message bodies the names and values point into).
 */
typedef struct nana_dql_rows {
    size_t ncols;
    const char **names; /* ncols column names */
    size_t nrows;
    nana_dql_value *values; /* nrows * ncols, row after row */
    int done;               /* 1 once a message ended with the DONE marker */
    /* private */
    size_t values_cap;
    uint8_t **bodies;
    size_t nbodies;
    size_t bodies_cap;
    size_t kept; /* body bytes held */
} nana_dql_rows;

void nana_dql_rows_init(nana_dql_rows *r);
void nana_dql_rows_free(nana_dql_rows *r);

/*
 * Adds the rows of one ROWS body to |r|. Takes |body| (from malloc) whatever
 * it returns. Later messages must repeat the first one's columns. On error
 * |r| keeps only the rows of the messages before. NANA_ERR_INVALID for
 * malformed bytes, NANA_ERR_TOOBIG past |lim| (columns, result size).
 */
int nana_dql_rows_feed(nana_dql_rows *r, uint8_t *body, size_t len, const nana_dql_limits *lim);

/* The value at |row|, |col| (both in range). */
static inline const nana_dql_value *nana_dql_rows_at(const nana_dql_rows *r, size_t row, size_t col)
{
    return &r->values[row * r->ncols + col];
}

/* ---- the client: one blocking connection for one thread ---- */

typedef struct nana_dql_conn nana_dql_conn;

#define NANA_DQL_CONNECT_TIMEOUT_MS_DEFAULT 2000
#define NANA_DQL_IO_TIMEOUT_MS_DEFAULT      10000
#define NANA_DQL_LEADER_TIMEOUT_MS_DEFAULT  10000
#define NANA_DQL_STMT_CACHE_DEFAULT         64

typedef struct nana_dql_opts {
    int connect_timeout_ms; /* TCP connect (default 2000) */
    int io_timeout_ms;      /* one request and its whole response (default 10000) */
    int leader_timeout_ms;  /* finding a leader, retries included (default 10000) */
    size_t stmt_cache;      /* prepared statements kept per connection (default 64, 0: none) */
    uint64_t client_id;     /* sent with the CLIENT registration */
    nana_dql_limits limits;
} nana_dql_opts;

/* Fills |o| with the defaults. */
void nana_dql_opts_default(nana_dql_opts *o);

/* The result of a statement that yields no rows. */
typedef struct nana_dql_result {
    uint64_t last_insert_id;
    uint64_t rows_affected;
} nana_dql_result;

/*
 * Connects to the node at |address|: TCP (TCP_NODELAY), the handshake and the
 * CLIENT registration. |o| NULL means the defaults. On success *out is the
 * caller's, closed with nana_dql_close.
 */
int nana_dql_connect(const char *address, const nana_dql_opts *o, nana_dql_conn **out);

/*
 * Connects to the cluster's leader, asking the nodes at |addresses| in turn
 * (LEADER) and reconnecting to the leader they name, until one answers for
 * itself or leader_timeout_ms passes (NANA_ERR_TIMEOUT).
 */
int nana_dql_connect_leader(const char *const *addresses, size_t n, const nana_dql_opts *o,
                            nana_dql_conn **out);

/* Closes the connection and frees it. NULL-safe. */
void nana_dql_close(nana_dql_conn *c);

/* The address this connection went to (owned by the connection). */
const char *nana_dql_conn_address(const nana_dql_conn *c);

/* 1 once the connection broke (a failed read or write, a timeout, bytes
 * that made no sense): every later call fails, the caller opens a new one. */
int nana_dql_conn_broken(const nana_dql_conn *c);

/* The code of the last FAILURE response on this connection, 0 if none. */
uint64_t nana_dql_last_code(const nana_dql_conn *c);

/* Asks the connected node who leads: *id 0 and addr "" when nobody does. */
int nana_dql_leader(nana_dql_conn *c, uint64_t *id, char *addr, size_t addrlen);

/* Opens the database |name| for this connection (one per connection). */
int nana_dql_open(nana_dql_conn *c, const char *name);

/*
 * Runs one statement with bound parameters (prepared once per connection and
 * cached). FAILURE responses come back as NANA_ERR_DB (NANA_ERR_BUSY for a
 * busy database, NANA_ERR_UNAVAILABLE when the node is not the leader) with
 * the server's message; nana_dql_last_code has its code. |res| may be NULL.
 */
int nana_dql_exec(nana_dql_conn *c, const char *sql, const nana_dql_value *params, size_t n,
                  nana_dql_result *res);

/* Runs a statement yielding rows into |rows| (initialized here; the caller
 * frees it with nana_dql_rows_free, whatever this returns). */
int nana_dql_query(nana_dql_conn *c, const char *sql, const nana_dql_value *params, size_t n,
                   nana_dql_rows *rows);

/* Runs SQL text of one or more statements (BEGIN; ...; COMMIT), unprepared. */
int nana_dql_exec_sql(nana_dql_conn *c, const char *sql, const nana_dql_value *params, size_t n,
                      nana_dql_result *res);

/* Lists the cluster's nodes: *nodes (and the addresses) are one allocation,
 * the caller's, freed with free(). */
int nana_dql_cluster(nana_dql_conn *c, nana_dql_node_info **nodes, size_t *n);

/* Membership, sent to the leader: add a node (as a spare), give it a role,
 * remove it, hand leadership to it. */
int nana_dql_add(nana_dql_conn *c, uint64_t id, const char *address);
int nana_dql_assign(nana_dql_conn *c, uint64_t id, uint64_t role);
int nana_dql_remove(nana_dql_conn *c, uint64_t id);
int nana_dql_transfer(nana_dql_conn *c, uint64_t id);

/* ---- mutual TLS between nodes (and the tools that talk to them) ---- */

typedef struct nana_dql_tls nana_dql_tls;

#define NANA_DQL_TLS_HANDSHAKE_MS_DEFAULT 5000
#define NANA_DQL_TLS_CONNS_MAX_DEFAULT    256
#define NANA_DQL_TLS_PENDING_MAX_DEFAULT  32

typedef struct nana_dql_tls_opts {
    const char *cert_file; /* this node's certificate (PEM, its chain after it) */
    const char *key_file;  /* its private key (PEM; only its owner may read it) */
    const char *ca_file;   /* the cluster's CA: the only trust anchor */
    int handshake_ms;      /* an inbound handshake's deadline (default 5000) */
    size_t conns_max;      /* inbound connections open at once, per front set (default 256) */
    size_t pending_max;    /* of which still in their handshake (default 32) */
} nana_dql_tls_opts;

/* Fills |o| with the defaults and no files. */
void nana_dql_tls_opts_default(nana_dql_tls_opts *o);

/*
 * Loads the credentials of |o| and starts the relay thread. The key file
 * must be a regular file only its owner may read or write; the certificate
 * must chain to the CA and allow both TLS server and client authentication
 * (a node certificate): NANA_ERR_INVALID otherwise, saying which. A peer is
 * accepted, either way, when its certificate is such a node certificate of
 * the same CA; names and addresses in it are not checked. On success *out
 * is the caller's, stopped with nana_dql_tls_stop.
 */
int nana_dql_tls_start(const nana_dql_tls_opts *o, nana_dql_tls **out);

/* Stops the relay thread, closes every session and front, frees |t|.
 * Undoes nana_dql_tls_use(t). NULL-safe. */
void nana_dql_tls_stop(nana_dql_tls *t);

/*
 * Listens on |address| (numeric HOST:PORT): each connection that completes
 * the handshake with a node certificate within handshake_ms is relayed to
 * |target| ("@name", an abstract Unix socket, or HOST:PORT). *front names
 * it for nana_dql_tls_front_close. At most 8 fronts per |t|.
 */
int nana_dql_tls_front(nana_dql_tls *t, const char *address, const char *target, int *front);

/* Stops listening on a front (its sessions go on until they end). */
void nana_dql_tls_front_close(nana_dql_tls *t, int front);

/*
 * Connects to the node at |address| through TLS: TCP, the client side of
 * the handshake and the check of the node's certificate, all within
 * |timeout_ms|. *fd (the caller's) is a plain socket relayed through the
 * session, non-blocking if |nonblock|. NANA_ERR_PERM when the handshake
 * failed (a peer that is not a node of the cluster, or that refused us).
 */
int nana_dql_tls_connect(nana_dql_tls *t, const char *address, int timeout_ms, int nonblock,
                         int *fd);

/*
 * Makes every connection of this process's wire-protocol client (and of
 * nodes started without their own TLS) go through |t|; NULL: plain TCP
 * again. Call it before the connections are made; keep |t| until then.
 */
void nana_dql_tls_use(nana_dql_tls *t);

/* What the fronts of a nana_dql_tls saw, since it started. */
typedef struct nana_dql_tls_stats {
    uint64_t accepted;  /* inbound TCP connections taken */
    uint64_t relayed;   /* of which authenticated and relayed to a node */
    uint64_t refused;   /* closed at once: conns_max established ones open */
    uint64_t evicted;   /* closed in their handshake to make room for a newcomer */
    uint64_t failed;    /* handshakes that failed (no, or not a node, certificate; not TLS) */
    uint64_t timed_out; /* handshakes cut at handshake_ms */
    size_t open;        /* inbound connections open now */
    size_t pending;     /* of which in their handshake */
    size_t sessions;    /* sessions the relay thread holds now, inbound and outgoing */
} nana_dql_tls_stats;

void nana_dql_tls_stats_get(nana_dql_tls *t, nana_dql_tls_stats *s);

/* ---- the node ---- */

typedef struct nana_dql_node nana_dql_node;

/*
 * Creates and starts a dqlite node with |id| on |address| (where it listens
 * and where the cluster reaches it), keeping its data in the existing
 * directory |dir|. The node with id 1 bootstraps a new cluster when |dir|
 * is empty; any other waits to be joined (nana_dql_node_join). Its own
 * connections to other nodes set TCP_NODELAY and give up after
 * |connect_timeout_ms| (0: the default). |latency_ms| is the one-way network
 * latency dqlite derives its heartbeat and election timeouts from (0:
 * dqlite's default). With |tls|, the node listens on a private abstract
 * Unix socket, a front of |tls| on |address| lets in only peers with a node
 * certificate, and its own connections go through |tls| (which must outlive
 * the node); without, plain TCP on |address|. SIGPIPE is ignored from here
 * on if it was at its default. On success *out is the caller's.
 */
int nana_dql_node_start(uint64_t id, const char *address, const char *dir, int connect_timeout_ms,
                        unsigned latency_ms, nana_dql_tls *tls, nana_dql_node **out);

/*
 * Rewrites the Raft configuration in |dir| (node |id|'s data, the node not
 * running) to the |n| voters |ids| at |addrs|: dqlite_node_recover, for a
 * cluster that lost its majority. See CLUSTER.md for the whole procedure.
 */
int nana_dql_node_recover(uint64_t id, const char *address, const char *dir, const uint64_t *ids,
                          const char *const *addrs, size_t n);

/* Stops the node (the cluster sees it leave) and frees it. NULL-safe. */
void nana_dql_node_stop(nana_dql_node *n);

/*
 * Makes the node |id| at |address| (started, not bootstrapping) a voter of
 * the cluster one of |cluster| belongs to: ADD through the leader, then
 * ASSIGN it the voter role.
 */
int nana_dql_node_join(const char *const *cluster, size_t n, uint64_t id, const char *address,
                       const nana_dql_opts *o);

#endif
