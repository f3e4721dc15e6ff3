/*
 * nanasqlite_client.h - libnanasqlite-client: reach a NanaSQLite server
 * (this project's nanasqlite-server, or the Python NanaSQLite-Server) over
 * QUIC, or over HTTP/2 on TCP where UDP does not get through. This header is the library's whole
 * public face.
 *
 * A nana_client is one logical connection: it connects, authenticates with
 * an Ed25519 key (challenge-response), and carries many calls at once, each
 * on its own QUIC stream, with each reply matched to its call by stream.
 * When the connection drops it reconnects by itself (with backoff) and
 * authenticates again. A call that was already sent when the connection
 * was lost is never sent again: it completes with NANA_CLIENT_EUNKNOWN
 * ("may or may not have run"), so a write is never repeated silently.
 * Calls not yet sent wait for the new connection (within their timeout);
 * when a whole connection attempt fails while they wait, or when they have
 * waited connect_timeout_ms for a connection, they fail with ECONNECT.
 *
 * A nana_pool spreads calls over several connections to one server, or
 * to every node of a cluster (least-loaded first), opens and closes them
 * between min and max, retires idle and old ones, moves connections off a
 * node that fails, and has a circuit breaker that fails calls at once
 * after repeated connection failures (on every node) and probes before
 * letting them through again.
 *
 * Values cross this API as JSON text (the NanaSQLite data model is JSON);
 * on the wire they travel as msgpack.
 *
 * With protocol NANA_CLIENT_PROTO_GRPC a client speaks gRPC over HTTP/3 to
 * the server's gRPC door instead (same port): nana_client_call runs
 * nanasqlite.v1 Call (a method's raised error comes back as ESERVER with
 * its error_type, message and code, as over the NanaSQLite protocol), the
 * typed calls run Get, Set and Delete, and a call the server refuses with
 * a gRPC status (rate, permission, bad argument, deadline, ...) is ESERVER
 * with error_type the status's name ("RESOURCE_EXHAUSTED") and its
 * grpc-message. Timeouts, reconnects, the pool and its breaker work alike.
 * A connection logs in with a first call carrying the signed metadata (or
 * by its client certificate); a refused login is EAUTH.
 *
 * Transports (nana_client_opts.transport). The server serves its gRPC door
 * also over HTTP/2 on TLS over TCP, on the same port number as its QUIC
 * endpoint. With TRANSPORT_AUTO (the default) each connection attempt
 * tries QUIC first; when no QUIC connection is up within fallback_ms
 * (default 1500: UDP is dropped on the way, say), or the QUIC attempt ends
 * without any answer from the server, the same attempt goes on over
 * HTTP/2 (gRPC) on TCP to the same host and port. A server that answers
 * over QUIC (a refusal, a TLS failure, a refused login) is not retried
 * over TCP. After a QUIC attempt got no answer, new connections of the
 * same client or pool to the same server go straight to HTTP/2 for
 * NANA_CLIENT_QUIC_RETRY_MS;
 * after that a reconnect tries QUIC first again (a network may heal). A
 * connection stays on the transport it was made on until it is lost.
 * connect_timeout_ms bounds the whole attempt, fallback included.
 * TRANSPORT_QUIC never uses TCP; TRANSPORT_H2 never uses QUIC.
 * Over HTTP/2 a client always speaks gRPC: with protocol NANASQLITE its
 * calls become nanasqlite.v1 Call, Get, Set and Delete exactly as with
 * protocol GRPC, and their results are the same (values, ESERVER with the
 * same error_type for a method's error, "false" for deleting an absent
 * key). Health checks and AQL calls need protocol GRPC whatever the
 * transport. Alt-Svc headers are not followed.
 *
 * Three ways to call, all thread-safe:
 *   - blocking: nana_client_call / nana_pool_call;
 *   - callback: nana_client_submit with a function, run on one of the
 *     library's threads (or on the thread closing the client, for calls
 *     the close cancels); it must not block and must not make blocking
 *     calls;
 *   - completion fd: nana_client_submit without a function; the result is
 *     queued, nana_client_completion_fd() becomes readable, and
 *     nana_client_next_done() takes results off the queue (for a caller's
 *     event loop: epoll, asyncio's add_reader, ...).
 *
 * Memory: every nana_result filled by the library owns its strings; free
 * them with nana_result_free. Strings passed in are copied before the
 * function returns.
 */
#ifndef NANASQLITE_CLIENT_H
#define NANASQLITE_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NANA_CLIENT_VERSION "0.1.0"

/* The version of the library actually loaded ("0.1.0"); static string. */
const char *nana_client_version(void);

/* What happened to a call (nana_result.status; also what functions return). */
typedef enum nana_client_status {
    NANA_CLIENT_OK = 0,
    NANA_CLIENT_ESERVER = 1,  /* the server answered with an error: see error_type, message */
    NANA_CLIENT_ETIMEOUT = 2, /* no reply in time (a sent call may still run on the server) */
    NANA_CLIENT_EUNKNOWN =
        3, /* connection lost after the call was sent: it may or may not have run */
    NANA_CLIENT_ECONNECT = 4,   /* cannot connect (refused, unreachable, TLS failure) */
    NANA_CLIENT_EAUTH = 5,      /* authentication refused (AUTH_FAILED or AUTH_BANNED) */
    NANA_CLIENT_ECLOSED = 6,    /* the client or pool is closed */
    NANA_CLIENT_EBUSY = 7,      /* too many calls queued, or the pool is exhausted */
    NANA_CLIENT_EBREAKER = 8,   /* the pool's circuit breaker is open: failing fast */
    NANA_CLIENT_EINVALID = 9,   /* bad argument (not JSON, bad option, unreadable key file) */
    NANA_CLIENT_EPROTOCOL = 10, /* the server's reply is not a well-formed NanaSQLite reply */
    NANA_CLIENT_ENOMEM = 11,
    /* an AQL query failed: the answer's ErrorResponse, error_type its code's
     * name ("ERROR_VALIDATION_INVALID_KEY"), message its message, code its
     * number ("6000") */
    NANA_CLIENT_EQUERY = 12,
} nana_client_status;

/*
 * The outcome of one call. status NANA_CLIENT_OK: |json| holds the result as
 * JSON text. Otherwise |error_type| names the error and |message| says what
 * happened: for ESERVER the server's own error_type (KeyError,
 * PermissionError, NanaSQLiteDatabaseError, ...) and message, and |code|
 * its optional machine-readable reason ("busy", "timeout", "rate_limited",
 * "shutdown"); for the client's own errors a fixed name per status (see
 * nana_client_status_name). All strings are NUL-terminated, owned by the
 * result, NULL when absent.
 */
typedef struct nana_result {
    int status; /* nana_client_status */
    char *json;
    size_t json_len;
    char *error_type;
    char *message;
    char *code;
    uint64_t token; /* the token given to nana_client_submit (completion fd) */
} nana_result;

/* Frees the strings of |r| and zeroes it. NULL-safe. */
void nana_result_free(nana_result *r);

/* The error_type the library uses for one of its own statuses:
 * ETIMEOUT "TimeoutError", EUNKNOWN "UnknownOutcomeError", ECONNECT
 * "NanaSQLiteConnectionError", EAUTH "AuthenticationError", ECLOSED
 * "NanaSQLiteClosedError", EBUSY "BusyError", EBREAKER "CircuitOpenError",
 * EINVALID "ValueError", EPROTOCOL "ProtocolError", ENOMEM "MemoryError",
 * EQUERY "QueryError".
 * Static string. */
const char *nana_client_status_name(int status);

/* ---- connection options ------------------------------------------------ */

/* Which of the server's doors a client speaks to (nana_client_opts.protocol). */
typedef enum nana_client_protocol {
    NANA_CLIENT_PROTO_NANASQLITE = 0, /* the NanaSQLite protocol (ALPN "nanasqlite"), default */
    /* gRPC over HTTP/3 (ALPN "h3") on the same port: nanasqlite.v1 calls,
     * logging in with a signature by the key (or by the client certificate) */
    NANA_CLIENT_PROTO_GRPC = 1,
} nana_client_protocol;

/* How a client reaches the server (nana_client_opts.transport); see the top
 * of this header. */
typedef enum nana_client_transport {
    NANA_CLIENT_TRANSPORT_AUTO = 0, /* QUIC, falling back to HTTP/2 on TCP; default */
    NANA_CLIENT_TRANSPORT_QUIC = 1, /* QUIC only */
    NANA_CLIENT_TRANSPORT_H2 = 2,   /* gRPC over HTTP/2 on TLS over TCP only */
} nana_client_transport;

/* After a QUIC attempt got no answer (AUTO), new connections to that server
 * go straight to HTTP/2 for this long. */
#define NANA_CLIENT_QUIC_RETRY_MS 60000u

/* Every option left 0 (or NULL) takes its default; times are capped at one day. */
typedef struct nana_client_opts {
    const char *host;            /* numeric address or host name; default "127.0.0.1" */
    uint16_t port;               /* default 4433 */
    const char *server_name;     /* name the server certificate must match; default "localhost" */
    const char *ca_file;         /* PEM trust anchors; NULL: the system's trust store */
    const char *key_file;        /* Ed25519 private key (PKCS#8 PEM); default "nana_private.pem" */
    const char *account;         /* account name sent with the auth response; NULL: none */
    const char *cert_file;       /* client certificate for mutual TLS (PEM); NULL: none */
    const char *cert_key_file;   /* its private key; default cert_file's own file */
    unsigned connect_timeout_ms; /* handshake + authentication; default 10000 */
    unsigned call_timeout_ms;    /* default per-call timeout; default 30000 */
    unsigned reconnect_min_ms;   /* first backoff after a lost connection; default 100 */
    unsigned reconnect_max_ms;   /* backoff cap (doubling with jitter); default 5000 */
    unsigned max_queued;         /* calls waiting or in flight per client; default 65536 */
    unsigned max_reply_bytes;    /* largest reply accepted; default 64 MiB */
    unsigned idle_timeout_ms;    /* QUIC idle timeout; default 30000 (keep-alive PINGs at 1/3) */
    int protocol;                /* nana_client_protocol; default NANASQLITE */
    int transport;               /* nana_client_transport; default AUTO */
    unsigned fallback_ms;        /* AUTO: QUIC's time before HTTP/2 is tried; default 1500 */
} nana_client_opts;

/* Fills |o| with the defaults above. */
void nana_client_opts_init(nana_client_opts *o);

/* ---- one call ------------------------------------------------------------ */

typedef struct nana_call_opts {
    const char *db;      /* database file name on the server; NULL: its default */
    const char *table;   /* NanaSQLite table; NULL: "data" (this server's extension) */
    unsigned timeout_ms; /* 0: the client's call_timeout_ms */
} nana_call_opts;

/* ---- a client (one connection, reconnecting) -------------------------- */

typedef struct nana_client nana_client;

/*
 * Connects and authenticates, waiting up to connect_timeout_ms. On success
 * *out is the caller's (nana_client_close). On failure returns the status
 * (ECONNECT, EAUTH, EINVALID, ENOMEM) and, if |err| is not NULL, fills it
 * with the error (caller frees it with nana_result_free).
 */
int nana_client_connect(const nana_client_opts *o, nana_client **out, nana_result *err);

/*
 * Closes the client: calls still pending complete with ECLOSED (their
 * callbacks run; results still in the completion queue are dropped), the
 * connection is closed and everything is freed. The caller must make sure
 * no other thread is using, or about to use, this client (as with free());
 * it must not be called from a callback. NULL-safe.
 */
void nana_client_close(nana_client *c);

/*
 * Calls |method| with |args_json| (a JSON array, NULL for []) and
 * |kwargs_json| (a JSON object, NULL for {}), waiting for the reply.
 * Fills |out| (caller frees with nana_result_free) and returns out->status.
 * |co| may be NULL.
 */
int nana_client_call(nana_client *c, const char *method, const char *args_json,
                     const char *kwargs_json, const nana_call_opts *co, nana_result *out);

/*
 * Typed calls on one key, the same over both protocols (blocking, like
 * nana_client_call; |co| may be NULL; fill |out| and return out->status):
 *   get: OK with the value as JSON; a missing key is ESERVER with
 *        error_type "KeyError";
 *   set: stores |value_json| (one JSON value); OK with "null";
 *   delete: removes the key; OK with "true", or "false" when it did not
 *        exist (not an error).
 * Over gRPC they are nanasqlite.v1 Get, Set and Delete; over the
 * NanaSQLite protocol __getitem__, __setitem__ and __delitem__.
 */
int nana_client_get(nana_client *c, const char *key, const nana_call_opts *co, nana_result *out);
int nana_client_set(nana_client *c, const char *key, const char *value_json,
                    const nana_call_opts *co, nana_result *out);
int nana_client_delete(nana_client *c, const char *key, const nana_call_opts *co, nana_result *out);

/*
 * gRPC only: grpc.health.v1.Health/Check of |service| ("" or NULL: the
 * server as a whole). OK with the answer as a JSON string: "SERVING",
 * "NOT_SERVING" (the server is stopping), ...; an unknown service is
 * ESERVER NOT_FOUND. EINVALID over the NanaSQLite protocol.
 */
int nana_client_health(nana_client *c, const char *service, const nana_call_opts *co,
                       nana_result *out);

/* Called once per submitted call with its result, on one of the library's
 * threads (see the top of this header).
 * The result is the callee's: free it with nana_result_free. */
typedef void (*nana_client_done_fn)(void *ud, nana_result *r);

/*
 * Starts a call and returns at once. With |done| set, done(ud, result)
 * follows once. With |done| NULL the result is queued for
 * nana_client_next_done with result.token = |token|. Returns NANA_CLIENT_OK
 * when the call was accepted (the outcome follows), or an error status
 * when it was not (nothing follows): EINVALID, EBUSY (max_queued), ECLOSED,
 * ENOMEM.
 */
int nana_client_submit(nana_client *c, const char *method, const char *args_json,
                       const char *kwargs_json, const nana_call_opts *co, nana_client_done_fn done,
                       void *ud, uint64_t token);

/*
 * A file descriptor that is readable while completed results wait in the
 * queue (an eventfd). Owned by the client; do not close it.
 */
int nana_client_completion_fd(nana_client *c);

/*
 * Takes one completed result off the queue into |out| (caller frees).
 * Returns 1 if it did, 0 if the queue is empty. Never blocks.
 */
int nana_client_next_done(nana_client *c, nana_result *out);

/* Calls accepted and not yet completed. */
unsigned nana_client_pending(nana_client *c);

/* 1 while the client has an authenticated connection. */
int nana_client_connected(nana_client *c);

/* Reconnections made so far (after the first connection). */
uint64_t nana_client_reconnects(nana_client *c);

/* ---- a connection pool ----------------------------------------------------- */

typedef struct nana_pool_opts {
    unsigned min_conns; /* kept open; default 1 */
    unsigned max_conns; /* never more; default 8 */
    unsigned
        max_calls_per_conn; /* in flight on one connection before another is used; default 128 */
    unsigned idle_ms;       /* close a connection above min_conns unused this long; default 60000 */
    unsigned lifetime_ms; /* retire a connection this old (after its calls); 0 = never (default) */
    unsigned health_interval_ms; /* how often connections are checked and min_conns restored;
                                    default 1000 */
    /* consecutive connection failures that open the breaker; default 5 (with
     * several nodes: every node's latest attempt failed and their failures in
     * a row add up to this) */
    unsigned breaker_failures;
    unsigned breaker_open_ms; /* how long it stays open before one probe; default 5000 */
    /* The servers of a cluster, "HOST:PORT,HOST:PORT,..." (IPv4 "10.0.0.1:4433",
     * IPv6 "[fd00::1]:4433" or a name "db1.example:4433"; at most
     * NANA_POOL_MAX_NODES, all of one address family): connections are spread
     * over them, and the rest of nana_client_opts (server_name, key, account,
     * transport, ...) applies to each. NULL or "": the one server of
     * nana_client_opts.host and .port (default). */
    const char *nodes;
} nana_pool_opts;

/* The most nodes a pool's list may name. */
#define NANA_POOL_MAX_NODES 16

void nana_pool_opts_init(nana_pool_opts *p);

typedef struct nana_pool nana_pool;

/* Opens the pool and its first min_conns connections, spread over the
 * nodes (waiting until one of them, on any node, is authenticated, or every
 * one has failed). Errors as nana_client_connect; a bad node list is
 * EINVALID naming the entry. */
int nana_pool_open(const nana_client_opts *o, const nana_pool_opts *p, nana_pool **out,
                   nana_result *err);

/* Closes every connection (pending calls complete with ECLOSED) and frees
 * the pool. As with nana_client_close, no other thread may be using the
 * pool, and it must not be called from a callback. NULL-safe. */
void nana_pool_close(nana_pool *p);

/* A blocking call on the least-loaded connection. EBUSY when every
 * connection is at max_calls_per_conn and no more may be opened;
 * EBREAKER while the breaker is open (and, while it is half-open, when
 * the probe's connection has no room). Calls queued on a connection that
 * cannot reconnect because the breaker opened fail with EBREAKER. */
int nana_pool_call(nana_pool *p, const char *method, const char *args_json, const char *kwargs_json,
                   const nana_call_opts *co, nana_result *out);

/* The typed calls of nana_client_get / _set / _delete on the least-loaded
 * connection. */
int nana_pool_get(nana_pool *p, const char *key, const nana_call_opts *co, nana_result *out);
int nana_pool_set(nana_pool *p, const char *key, const char *value_json, const nana_call_opts *co,
                  nana_result *out);
int nana_pool_delete(nana_pool *p, const char *key, const nana_call_opts *co, nana_result *out);

/* nana_client_submit on the least-loaded connection (|done| required). */
int nana_pool_submit(nana_pool *p, const char *method, const char *args_json,
                     const char *kwargs_json, const nana_call_opts *co, nana_client_done_fn done,
                     void *ud);

typedef enum nana_breaker_state {
    NANA_BREAKER_CLOSED = 0,    /* calls flow */
    NANA_BREAKER_OPEN = 1,      /* calls fail fast with EBREAKER */
    NANA_BREAKER_HALF_OPEN = 2, /* one probe connection is being tried */
} nana_breaker_state;

typedef struct nana_pool_stats {
    unsigned conns;     /* connections open (authenticated) */
    unsigned in_flight; /* calls pending over all connections */
    int breaker;        /* nana_breaker_state */
    uint64_t opened, closed_idle, closed_lifetime, connect_failures, breaker_trips;
    /* With several nodes: connections given up on because their node failed
     * while another node was available (each replaced on another node), and
     * connections closed to move one to a node that had fewer. */
    uint64_t replaced, rebalanced;
} nana_pool_stats;

void nana_pool_stats_get(nana_pool *p, nana_pool_stats *out);

/* ---- AQL: the amaters.aql query service (gRPC clients and pools) --------
 *
 * The server's gRPC door also answers amaters.aql.AqlService. These
 * functions speak it on a client or pool made with protocol
 * NANA_CLIENT_PROTO_GRPC (others get EINVALID), on the same connections,
 * with the same timeouts, reconnects and breaker as every other call.
 * nana_call_opts.db is sent as the "nana-db" metadata (NULL: the server's
 * default database); .table is not used: a query names its collection
 * (a table; NULL or "": "data").
 *
 * Messages cross this API serialized (protobuf, the amaters .proto files in proto/):
 * a Query (amaters.query.Query), a QueryRequest, a Predicate, and the
 * answers QueryResponse / BatchResponse. Buffers the library returns are
 * malloc'd and the caller's: free them with nana_client_aql_free.
 *
 * Keys are bytes that the server wants as UTF-8 text. Values are bytes:
 * a value that is one JSON text is stored as that JSON (and the
 * NanaSQLite calls see it), any other bytes are kept as bytes.
 *
 * A query the server refuses inside its answer (an ErrorResponse: a key
 * that is not UTF-8, a bad predicate, ...) is NANA_CLIENT_EQUERY with the
 * error's code name, message and number; a refusal of the call itself is
 * ESERVER with the gRPC status, as for the other calls.
 */

/* Frees a buffer the AQL functions returned. NULL-safe. */
void nana_client_aql_free(void *p);

/* What one update does to a field (nana_aql_update.op). */
typedef enum nana_aql_update_op {
    NANA_AQL_UPDATE_SET = 1, /* field = value */
    NANA_AQL_UPDATE_ADD = 2, /* field += value (numbers; a missing field counts as 0) */
    NANA_AQL_UPDATE_MUL = 3, /* field *= value (numbers; a missing field counts as 0) */
} nana_aql_update_op;

/* One change of an update: a field path ("visits", "address.city",
 * "tags[0]") and a JSON value ("1", "\"senior\""). */
typedef struct nana_aql_update {
    int op; /* nana_aql_update_op */
    const char *field;
    const char *value_json;
} nana_aql_update;

/* The most changes in one update, and queries in one batch. */
#define NANA_AQL_MAX_UPDATES 256
#define NANA_AQL_MAX_BATCH   1000

/*
 * Query builders: each makes one serialized amaters.query.Query in *q
 * (*qlen bytes; the caller's). 0, or EINVALID / ENOMEM with |err| filled
 * (err may be NULL). limit and offset < 0: none. A predicate is given as
 * text |where| (see nana_client_aql_parse_predicate) or, with |where|
 * NULL, as a serialized Predicate |pred|/|plen|.
 */
int nana_client_aql_build_get(const char *collection, const uint8_t *key, size_t klen, uint8_t **q,
                              size_t *qlen, nana_result *err);
int nana_client_aql_build_set(const char *collection, const uint8_t *key, size_t klen,
                              const uint8_t *value, size_t vlen, uint8_t **q, size_t *qlen,
                              nana_result *err);
int nana_client_aql_build_delete(const char *collection, const uint8_t *key, size_t klen,
                                 uint8_t **q, size_t *qlen, nana_result *err);
/* Keys from |start| up to |end| (end excluded, as the server orders keys). */
int nana_client_aql_build_range(const char *collection, const uint8_t *start, size_t slen,
                                const uint8_t *end, size_t elen, int64_t limit, uint8_t **q,
                                size_t *qlen, nana_result *err);
int nana_client_aql_build_filter(const char *collection, const char *where, const uint8_t *pred,
                                 size_t plen, int64_t limit, int64_t offset, uint8_t **q,
                                 size_t *qlen, nana_result *err);
int nana_client_aql_build_update(const char *collection, const char *where, const uint8_t *pred,
                                 size_t plen, const nana_aql_update *ups, size_t nups, uint8_t **q,
                                 size_t *qlen, nana_result *err);

/* A serialized QueryRequest around the serialized Query |query|, with
 * |timeout_ms| (0: none) as its own deadline. */
int nana_client_aql_request(const uint8_t *query, size_t qlen, uint32_t timeout_ms, uint8_t **req,
                            size_t *rlen, nana_result *err);

/*
 * Parses predicate text into a serialized amaters.types.Predicate (*pred,
 * the caller's). The syntax: comparisons `path op value` joined by
 * `and`, `or`, `not` (that precedence: not, then and, then or) and
 * parentheses; op is = != > < >= <= (a != v is not (a = v)); a path is
 * names joined by '.' with [N] indexes ("address.city", "tags[0]"); a
 * value is a JSON number, "string" (JSON escapes), true, false or null.
 * Example: `age >= 30 and not (city = "Tokyo" or tags[0] = "x")`.
 * Errors are EINVALID with the 1-based column of the problem; the limits:
 * 64 KiB of text, 1024 comparisons, 32 levels of not and parentheses.
 */
int nana_client_aql_parse_predicate(const char *text, uint8_t **pred, size_t *plen,
                                    nana_result *err);

/*
 * ExecuteQuery: |req| a serialized QueryRequest; on OK *resp is the
 * serialized QueryResponse (the caller's; resp may be NULL when only the
 * outcome matters). An answer carrying an ErrorResponse is EQUERY, with
 * *resp filled too. Fills |out| (may be NULL) and returns its status.
 */
int nana_client_aql_execute(nana_client *c, const uint8_t *req, size_t len,
                            const nana_call_opts *co, uint8_t **resp, size_t *rlen,
                            nana_result *out);
int nana_pool_aql_execute(nana_pool *p, const uint8_t *req, size_t len, const nana_call_opts *co,
                          uint8_t **resp, size_t *rlen, nana_result *out);

/* ExecuteBatch of |n| serialized Query messages (at most
 * NANA_AQL_MAX_BATCH): *resp the serialized BatchResponse. A batch the
 * server refused (nothing of it applied) is EQUERY. */
int nana_client_aql_batch(nana_client *c, const uint8_t *const *queries, const size_t *lens,
                          size_t n, const nana_call_opts *co, uint8_t **resp, size_t *rlen,
                          nana_result *out);
int nana_pool_aql_batch(nana_pool *p, const uint8_t *const *queries, const size_t *lens, size_t n,
                        const nana_call_opts *co, uint8_t **resp, size_t *rlen, nana_result *out);

/* Rows of a range or filter answer; every buffer the rows' own. */
typedef struct nana_aql_row {
    uint8_t *key;
    size_t key_len;
    uint8_t *value;
    size_t value_len;
} nana_aql_row;

typedef struct nana_aql_rows {
    nana_aql_row *rows;
    size_t count;
} nana_aql_rows;

/* Frees the rows and zeroes |r|. NULL-safe. */
void nana_client_aql_rows_free(nana_aql_rows *r);

/*
 * Typed queries (blocking; fill |out|, may be NULL, and return its status):
 *   get: OK with *value (the caller's) or, for a key that does not
 *        exist, *value NULL;
 *   set: stores |value|;
 *   delete: *deleted (may be NULL) 1, or 0 when the key did not exist;
 *   range / filter: *rows (free with nana_client_aql_rows_free);
 *   update: changes every matching value; *affected how many.
 */
int nana_client_aql_get(nana_client *c, const char *collection, const uint8_t *key, size_t klen,
                        const nana_call_opts *co, uint8_t **value, size_t *vlen, nana_result *out);
int nana_client_aql_set(nana_client *c, const char *collection, const uint8_t *key, size_t klen,
                        const uint8_t *value, size_t vlen, const nana_call_opts *co,
                        nana_result *out);
int nana_client_aql_delete(nana_client *c, const char *collection, const uint8_t *key, size_t klen,
                           const nana_call_opts *co, uint64_t *deleted, nana_result *out);
int nana_client_aql_range(nana_client *c, const char *collection, const uint8_t *start, size_t slen,
                          const uint8_t *end, size_t elen, int64_t limit, const nana_call_opts *co,
                          nana_aql_rows *rows, nana_result *out);
int nana_client_aql_filter(nana_client *c, const char *collection, const char *where,
                           const uint8_t *pred, size_t plen, int64_t limit, int64_t offset,
                           const nana_call_opts *co, nana_aql_rows *rows, nana_result *out);
int nana_client_aql_update(nana_client *c, const char *collection, const char *where,
                           const uint8_t *pred, size_t plen, const nana_aql_update *ups,
                           size_t nups, const nana_call_opts *co, uint64_t *affected,
                           nana_result *out);

/*
 * ExecuteStream as an iterator. Open with a serialized QueryRequest of a
 * range or filter query; then each nana_client_aql_stream_next gives one
 * pair: 1 with key and value pointing into the iterator (valid until the
 * next call or the close), 0 at the end, -1 on failure (|err| filled:
 * EQUERY, ESERVER, ETIMEOUT, EUNKNOWN, ...). The iterator holds one
 * batch of the answer at a time: the server sends more only as the
 * caller reads (flow control), so any size of answer streams in bounded
 * memory. Every wait for the next batch has the call's timeout (co's
 * timeout_ms, else the client's call_timeout_ms). Close every iterator
 * (it cancels the stream if it has not ended) before closing its client
 * or pool; one iterator is used by one thread at a time.
 */
typedef struct nana_aql_stream nana_aql_stream;
int nana_client_aql_stream_open(nana_client *c, const uint8_t *req, size_t len,
                                const nana_call_opts *co, nana_aql_stream **it, nana_result *out);
int nana_pool_aql_stream_open(nana_pool *p, const uint8_t *req, size_t len,
                              const nana_call_opts *co, nana_aql_stream **it, nana_result *out);
int nana_client_aql_stream_next(nana_aql_stream *it, const uint8_t **key, size_t *klen,
                                const uint8_t **value, size_t *vlen, nana_result *err);
/* The StreamEnd's total_count, once next returned 0. */
uint64_t nana_client_aql_stream_total(const nana_aql_stream *it);
void nana_client_aql_stream_close(nana_aql_stream *it);

/*
 * An answer as one JSON document, for tools and bindings: |msg| a
 * serialized QueryResponse (|batch| 0) or BatchResponse (|batch| 1).
 *   {"value": V} or {"value": null, "found": false}   a get
 *   {"rows": [{"key": K, "value": V}, ...], "count": N}  range, filter
 *   {"affected": N}                                   set, delete, update
 *   {"results": [one of the above, ...]}              a batch
 *   {"error": {"code": "ERROR_X", "number": N, "message": "..."}}
 * A value V is the JSON text itself when it is one JSON text (and not an
 * object whose only member is "$bytes"), else {"$bytes": "<base64>"};
 * with |raw_values| every value is {"$bytes": B64}. A key K is a JSON
 * string when it is UTF-8, else {"$bytes": B64}. *json is NUL-terminated
 * and the caller's (nana_client_aql_free).
 */
int nana_client_aql_answer_json(const uint8_t *msg, size_t len, int batch, int raw_values,
                                char **json, size_t *jlen, nana_result *err);

/* One pair (a stream's) as {"key": K, "value": V}, written as above. */
int nana_client_aql_row_json(const uint8_t *key, size_t klen, const uint8_t *value, size_t vlen,
                             int raw_values, char **json, size_t *jlen, nana_result *err);

#ifdef __cplusplus
}
#endif
#endif
