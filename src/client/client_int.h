/*
 * client_int.h - what the parts of libnanasqlite-client share and nobody
 * else sees: the runtime (one QUIC client endpoint plus a maintenance
 * thread for timeouts, reconnects and pool upkeep), the call record, the
 * stream-id map, and the frame and reply codecs.
 *
 * Threads: the endpoint's I/O thread runs every QUIC callback and every
 * stream operation; the maintenance thread ("rt thread") fires timeouts,
 * starts reconnects and runs the pool's upkeep; callers' threads submit.
 * A client's mutex guards all of its state; the runtime's mutex guards its
 * list of clients. Lock order: pool, then runtime, then client.
 */
#ifndef NANA_CLIENT_INT_H
#define NANA_CLIENT_INT_H

#include "aql_pred.h"
#include "nanasqlite_client.h"
#include "quic/nana_quic.h"
#include "tcp/nana_tcp.h"
#include "util/nana_buf.h"
#include "util/nana_time.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- results and frames (reply.c; no I/O) -------------------------------- */

/* Sets |r| to a client-side error of |status| with a formatted message. */
void nc_result_set(nana_result *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* nc_result_set that evaluates to |status| (a macro, so that static
 * analysis sees which status comes back, as with nana_err_set). */
#define nc_result_error(r, status, ...) (nc_result_set((r), (status), __VA_ARGS__), (int)(status))

/*
 * Builds a request frame (u32 big-endian length + msgpack map) for
 * |method| with JSON |args_json| (an array; NULL: []) and |kwargs_json|
 * (an object; NULL: {}), db and table from |co|. 0, or EINVALID / ENOMEM
 * with |err| filled. |out| is the caller's.
 */
int nc_build_call(nana_buf *out, const char *method, const char *args_json, const char *kwargs_json,
                  const nana_call_opts *co, nana_result *err);

/*
 * nc_build_call that, with |default_db| and no db in |co|, says "db": nil:
 * the server's default database, not the one the connection named last
 * (a server keeps that for calls that name none, as the Python server
 * does).
 */
int nc_build_call_db(nana_buf *out, const char *method, const char *args_json,
                     const char *kwargs_json, const nana_call_opts *co, bool default_db,
                     nana_result *err);

/*
 * Reads a reply frame into |r|: success -> OK with the result as JSON,
 * error map -> ESERVER with the server's error_type, message and code;
 * anything else -> EPROTOCOL. Returns r->status.
 */
int nc_parse_reply(const uint8_t *p, size_t n, nana_result *r);

/* What to do after an authentication reply (nc_auth_next). */
typedef enum nc_auth_step {
    NC_AUTH_SIGN, /* a challenge: sign it and send the response */
    NC_AUTH_DONE, /* logged in */
    NC_AUTH_FAIL, /* the attempt failed: *status and |msg| say why */
} nc_auth_step;

/*
 * Reads the server's reply |p|/|n| to the client's last authentication
 * message and says what comes next. |responded|: false after AUTH_START,
 * true after the signed response. AUTH_OK logs in after either: a server
 * answers AUTH_START with AUTH_OK when the client's verified certificate
 * logs its account in (no challenge). A challenge after AUTH_START is
 * NC_AUTH_SIGN (|challenge| filled) when |have_key|, else a failure
 * saying that the account wants a key. Anything else fails with *status
 * EAUTH (refused), or EPROTOCOL (a second challenge); |msg| (|msgcap|
 * bytes) is filled on failure.
 */
nc_auth_step nc_auth_next(const uint8_t *p, size_t n, bool responded, bool have_key,
                          uint8_t challenge[32], int *status, char *msg, size_t msgcap);

/* ---- what a call asks ---------------------------------------------------- */

/* The kinds of call: a method by name (both protocols), or a typed one. */
typedef enum nc_kind {
    NC_CALL = 0,
    NC_GET,
    NC_SET,
    NC_DELETE,
    NC_HEALTH,
    NC_AQL_QUERY,  /* amaters.aql.AqlService/ExecuteQuery: body a QueryRequest */
    NC_AQL_BATCH,  /* ExecuteBatch: body a BatchRequest */
    NC_AQL_STREAM, /* ExecuteStream: body a QueryRequest; the answer goes to |stream| */
} nc_kind;

typedef struct nc_stream nc_stream;
typedef struct nc_rt nc_rt;
typedef struct nch2_conn nch2_conn; /* an HTTP/2 connection (h2.c) */

/* The arguments of one call, as the submit functions below get them. */
typedef struct nc_call_args {
    void *target; /* the client or the pool */
    nc_kind kind;
    const char *method, *args, *kwargs; /* NC_CALL */
    const char *key, *value;            /* the typed kinds (value: JSON, NC_SET; key: the
                                           service, NC_HEALTH) */
    const nana_call_opts *co;
    const uint8_t *body; /* the AQL kinds: the serialized request message */
    size_t body_len;
    nc_stream *stream; /* NC_AQL_STREAM: where the answer's messages go */
    bool json_checked; /* the JSON was already checked (ncg_build need not) */
} nc_call_args;

/*
 * NanaSQLite protocol: builds the request frame of a typed call (GET
 * __getitem__, SET __setitem__, DELETE __delitem__), as nc_build_call_db.
 */
int nc_build_typed(nana_buf *out, const nc_call_args *a, bool default_db, nana_result *err);

/*
 * NanaSQLite protocol: gives the result of a typed call the typed calls'
 * form: SET "null"; DELETE "true", or "false" when the key did not exist
 * (the server's KeyError).
 */
void nc_typed_result(nc_kind kind, nana_result *r);

/* ---- calls and the stream-id map (sidmap.c) ------------------------------ */

typedef struct nc_call nc_call;
struct nc_call {
    nc_call *prev, *next; /* in the client's queue (unsent) or sent list */
    nc_call *done_next;   /* in a list of finished calls being delivered */
    nana_buf frame;       /* the request; freed once sent */
    nana_buf gframe;      /* AUTO transport with the NanaSQLite protocol: the same call as
                             gRPC (frame is the NanaSQLite one), for a fallback connection */
    nana_buf reply;       /* reply bytes so far */
    int64_t sid;          /* -1 until sent */
    uint64_t queued_ns;   /* when it was submitted */
    uint64_t deadline_ns;
    uint64_t conn_deadline_ns; /* unsent while not connected: fails with ECONNECT at this time
                                  (one connect timeout after it began to wait); 0: none */
    unsigned timeout_ms;
    nana_client_done_fn done; /* NULL: queue the result (completion fd) */
    void *ud;
    uint64_t token;
    int status;      /* when finished: -1 reply to parse, else a client-side status */
    nana_result res; /* the client-side error, when status >= 0 */
    nc_kind kind;
    /* gRPC: what the response said besides its message */
    bool grpc;          /* sent as gRPC (over HTTP/3 or HTTP/2) */
    int http_status;    /* 0: none yet */
    int grpc_status;    /* -1: none yet */
    char grpc_msg[256]; /* grpc-message, decoded (cut to fit) */
    char *db;           /* the AQL kinds: the "nana-db" metadata (malloc'd), NULL: none */
    nc_stream *stream;  /* NC_AQL_STREAM: its iterator's state (a reference) */
};

/* ---- gRPC requests and replies (grpc.c; no I/O) --------------------------- */

/*
 * Builds the framed protobuf request of a call for the gRPC door
 * (nanasqlite.v1: Call, Get, Set or Delete). JSON arguments and values are
 * checked here (EINVALID), as the NanaSQLite protocol's are. 0, or
 * EINVALID / ENOMEM with |err| filled.
 */
int ncg_build(nana_buf *out, const nc_call_args *a, nana_result *err);

/* The request path of a kind ("/nanasqlite.v1.NanaSQLite/Get"). */
const char *ncg_path(nc_kind kind);

/*
 * The result of a finished gRPC call: its HTTP status, grpc-status,
 * grpc-message and message body (call->reply) into |r| (token kept).
 * Returns r->status.
 */
int ncg_parse(const nc_call *call, nana_result *r);

/*
 * AQL streams (aql.c): the state an ExecuteStream call shares with its
 * iterator. The call's side runs on the I/O thread with the client's lock
 * held (lock order: client, then stream).
 *
 * ncs_sent: the call went out on stream |sid| of connection |h| of |rt|
 * (where credit for its bytes is posted).
 * ncs_feed: response bytes arrived; returns how many bytes of the stream
 * the caller credits now (nana_h3_consume): the bytes the iterator needs
 * to complete its next message, or all once the iterator is closed; the
 * rest waits until the iterator takes a message. <0: out of memory or the
 * message is larger than |max_msg| (the call fails).
 * ncs_set_call: the client's call record while it lives (client lock).
 */
void ncs_sent(nc_stream *st, nc_rt *rt, nana_quic_handle h, int64_t sid);
long long ncs_feed(nc_stream *st, const uint8_t *data, size_t len, size_t max_msg);
void ncs_set_call(nc_stream *st, nana_client *c, nc_call *call, unsigned wait_ms);
nc_call *ncs_call(const nc_stream *st);

/*
 * client.c: cancels the stream call |call| of |c| if it is still pending
 * (its deadline becomes now: the maintenance thread finishes it and resets
 * its stream). Takes the client's lock; |st| tells whether the call lives.
 */
void nc_client_cancel_stream(nana_client *c, nc_stream *st);

/* The framed GetRequest a connection logs in with (key "", default
 * database), in |out|. 0 or ENOMEM. */
int ncg_login_request(nana_buf *out);

/* ---- gRPC over HTTP/2 on TCP (h2.c) --------------------------------------
 *
 * h2.c owns an HTTP/2 connection: its TCP (TLS, ALPN "h2") connection of
 * src/tcp on the runtime's loop and its nghttp2 client session. client.c
 * owns everything about calls and tells h2.c what to send; h2.c tells
 * client.c what arrived through the nc_g_* functions (the same ones the
 * HTTP/3 callbacks use), always between nc_h2_enter and nc_h2_leave, so
 * with the client's lock held and a list for the calls they finish. All on
 * the loop's thread.
 */

/* A request header field (name and value NUL-terminated, not copied). */
typedef struct nc_hdr {
    const char *name, *value;
} nc_hdr;

/*
 * Starts a connection for client |c| under handle |h| (a name no QUIC
 * connection has: NC_H2_HANDLE_BIT set) to addr:port, TLS checked for
 * |server_name|, within |timeout_ms|. Then nc_h2_opened (HTTP/2 is up) or
 * nc_h2_closed (it failed or ended) follows from the loop. |idle_ms|: a
 * PING after a third of it without input, closed after all of it. 0 with
 * *out, or NANA_ERR_* (then nothing follows).
 */
#define NC_H2_HANDLE_BIT (1ull << 63)
int nch2_start(nc_rt *rt, nana_client *c, nana_quic_handle h, const char *addr, uint16_t port,
               const char *server_name, unsigned timeout_ms, unsigned idle_ms, nch2_conn **out);

/*
 * Client lock held (entered): queues a request of header |hv| (pseudo
 * fields first) and body |body|, taken on success (freed when its stream
 * ends). 0 with *sid, NANA_ERR_BUSY when the connection takes no new
 * streams (a GOAWAY came), or another error.
 */
int nch2_request(nch2_conn *h, const nc_hdr *hv, size_t n, nana_buf *body, int64_t *sid);

/* Resets stream |sid| (CANCEL); lock held (entered). */
void nch2_cancel(nch2_conn *h, int64_t sid);

/* Resets streams |sids| of the HTTP/2 connection |handle| of |rt|, if it
 * still exists (timed-out calls). Not entered: enters the client itself. */
void nch2_reset(nc_rt *rt, nana_quic_handle handle, const int64_t *sids, size_t n);

/* Not entered: enters the client, which sends what it queued, and writes. */
void nch2_kick(nch2_conn *h);

/* The TLS exporter of the connection (the login's binding). */
int nch2_exporter(nch2_conn *h, const char *label, uint8_t *out, size_t n);

/* Closes the connection (nc_h2_closed follows from the loop). */
void nch2_close(nch2_conn *h);

/* The client lets go: no nc_* call for |h| any more; it closes. */
void nch2_detach(nch2_conn *h);

/* Gives the server |n| more bytes of window on stream |sid| of the HTTP/2
 * connection |h| of |rt|, if it still exists (an AQL stream's credit). */
void nch2_credit(nc_rt *rt, nana_quic_handle h, int64_t sid, uint64_t n);

/*
 * client.c's side. nc_h2_enter: if |h| is |c|'s current connection, locks
 * |c| and makes the nc_g_* calls collect finished calls; returns |c|, or
 * NULL (not locked). nc_h2_leave: unlocks and delivers what finished. nc_h2_opened (entered):
 * HTTP/2 is up, the login call goes. nc_h2_closed (not entered): the connection ended, |why| says
 * how ("" for a plain close).
 */
nana_client *nc_h2_enter(nana_client *c, const nch2_conn *h);
void nc_h2_flush(nana_client *c); /* entered: sends the calls that wait, if READY */
void nc_h2_leave(nana_client *c);
void nc_h2_opened(nana_client *c);
void nc_h2_closed(nana_client *c, const nch2_conn *h, const char *why);

/*
 * A response of stream |sid|, whatever carries it (entered): a header or
 * trailer field; body bytes (returns how many to credit to the server
 * now); its end; its stream gone.
 */
void nc_g_field(nana_client *c, int64_t sid, const uint8_t *name, size_t nlen, const uint8_t *value,
                size_t vlen);
uint64_t nc_g_data(nana_client *c, int64_t sid, const uint8_t *data, size_t len);
void nc_g_end(nana_client *c, int64_t sid);
void nc_g_closed(nana_client *c, int64_t sid);

/* An open-addressing map from stream id to call (I/O thread + client lock). */
typedef struct nc_sidmap {
    int64_t *keys; /* -1: empty */
    nc_call **vals;
    size_t cap, len; /* cap a power of two */
} nc_sidmap;

int nc_sidmap_put(nc_sidmap *m, int64_t sid, nc_call *c);
nc_call *nc_sidmap_get(const nc_sidmap *m, int64_t sid);
nc_call *nc_sidmap_del(nc_sidmap *m, int64_t sid);
void nc_sidmap_free(nc_sidmap *m);

/* ---- the runtime (rt.c) ------------------------------------------------- */

typedef struct nc_rt nc_rt;

/*
 * Starts an endpoint for servers of address family |family| (AF_INET or
 * AF_INET6) with the TLS and timeout options of |o|, and its maintenance
 * thread. |tick| (may be NULL) runs on that thread every |tick_ms| with
 * |tick_arg| (the pool's upkeep). 0 or a status with |err| filled.
 */
int nc_rt_new(const nana_client_opts *o, int family, void (*tick)(void *arg), void *tick_arg,
              unsigned tick_ms, nc_rt **out, nana_result *err);

/* Stops the maintenance thread (no tick runs after this returns). */
void nc_rt_stop(nc_rt *rt);

/* Stops the thread and the endpoint (every connection closes) and frees. */
void nc_rt_free(nc_rt *rt);

nana_quic_ep *nc_rt_ep(nc_rt *rt);

/* Adds / removes a client from the maintenance thread's watch. */
int nc_rt_add(nc_rt *rt, nana_client *c);
void nc_rt_remove(nc_rt *rt, nana_client *c);

/* Asks the maintenance thread to look again no later than |when_ns|. */
void nc_rt_wake(nc_rt *rt, uint64_t when_ns);

/* Runs fn(conn or NULL, arg) on the I/O thread, retrying while the post
 * queue is full. 0, or -1 when the endpoint is shutting down. */
int nc_rt_post(nc_rt *rt, nana_quic_handle h, void (*fn)(nana_quic_conn *c, void *arg), void *arg);

/*
 * The runtime's TCP side (gRPC over HTTP/2, h2.c): the TLS settings a TCP
 * connection of this runtime is made with (the options' CA and client
 * certificate; host, port and timeouts are the caller's to fill), the loop
 * its connections run on (the QUIC endpoint's I/O loop), and the HTTP/2
 * connections by handle (I/O thread only) so that a post can find one.
 */
void nc_rt_tcp_config(const nc_rt *rt, nana_tcp_client_config *out);
nana_loop *nc_rt_loop(nc_rt *rt);
int nc_rt_h2_add(nc_rt *rt, nana_quic_handle h, nch2_conn *conn);
void nc_rt_h2_del(nc_rt *rt, nana_quic_handle h);
nch2_conn *nc_rt_h2_get(const nc_rt *rt, nana_quic_handle h);

/*
 * AUTO transport: a QUIC attempt of a client of this runtime to the server
 * at |addr|:|port| got no answer (UDP seems blocked): until
 * nc_rt_quic_quiet_until's time, new attempts to that server go straight
 * to HTTP/2 (0: not so). Per server, so that one node of a pool that is
 * down does not send the others' connections over TCP. Remembers the
 * NANA_POOL_MAX_NODES servers most recently quiet. Any thread.
 */
void nc_rt_quic_silent(nc_rt *rt, const char *addr, uint16_t port, uint64_t now_ns);
uint64_t nc_rt_quic_quiet_until(nc_rt *rt, const char *addr, uint16_t port);

/* ---- clients, as the runtime and the pool see them (client.c) ------------ */

/* The pool's hooks into its clients. */
typedef struct nc_pool_hooks {
    /* A connection attempt finished: ok 1 (authenticated) or 0 (failed). */
    void (*attempt)(void *pool, nana_client *c, int ok);
    /* 1 if the client may start a connection attempt now (the breaker). */
    int (*may_connect)(void *pool, nana_client *c);
    void *pool;
} nc_pool_hooks;

/* The Ed25519 key a client signs challenges with, if it has one. */
typedef struct nc_key {
    uint8_t sk[64];
    bool have;     /* false: no key; only a certificate login can succeed */
    char why[256]; /* when !have: why the key file was not used, for the error */
} nc_key;

/*
 * Creates a client on |rt| and starts its first connection attempt without
 * waiting. |key| is copied. The caller owns the client (nc_client_free).
 */
int nc_client_new(nc_rt *rt, const nana_client_opts *o, const char *addr, const nc_key *key,
                  const nc_pool_hooks *hooks, nana_client **out, nana_result *err);

/* The QUIC callbacks every client connection uses (conn data: the client). */
extern const nana_quic_callbacks nc_client_callbacks;

/* The same for gRPC connections (endpoint user: the runtime; conn data:
 * the client until HTTP/3 runs on it, then its nana_h3_conn). */
const nana_quic_callbacks *nc_grpc_callbacks(void);

/*
 * gRPC: the HTTP/3 states that are connections' data (a connection's data
 * is its client until HTTP/3 runs on it): registered when it starts,
 * dropped when it ends, asked to tell the two apart. I/O thread only.
 */
int nc_rt_h3_add(nc_rt *rt, void *hc);
void nc_rt_h3_del(nc_rt *rt, const void *hc);
bool nc_rt_is_h3(const nc_rt *rt, const void *p);

/* Fails every pending call with ECLOSED, closes the connection, frees. */
void nc_client_free(nana_client *c);

/* The maintenance step: fires timeouts, starts due reconnects. Returns the
 * next time it wants to run (ns), UINT64_MAX for none. */
uint64_t nc_client_tick(nana_client *c, uint64_t now);

/* Waits (up to |ms|) until the client is authenticated or its attempt
 * failed; 0, or the attempt's error in |err|. */
int nc_client_wait_ready(nana_client *c, unsigned ms, nana_result *err);

/*
 * Non-blocking: NANA_CLIENT_OK once the client is authenticated, the
 * status of its first failed attempt (or ECLOSED) with |err| filled, or -1
 * while its first attempt runs.
 */
int nc_client_outcome(nana_client *c, nana_result *err);

/* State for the pool: authenticated now, calls pending, created and last
 * used times, and since when its attempts have been failing (the time of
 * the first failed attempt since it was last authenticated; 0: none). */
typedef struct nc_client_info {
    bool ready;
    bool connecting;
    unsigned pending;
    uint64_t created_ns, last_used_ns;
    uint64_t failing_since_ns;
} nc_client_info;

void nc_client_info_get(nana_client *c, nc_client_info *out);

/* Starts a connection attempt now if the client has none (a breaker probe). */
void nc_client_kick(nana_client *c);

/* nana_client_submit that reports why a call was not accepted in |err|. */
int nc_submit(nana_client *c, const nc_call_args *a, nana_client_done_fn done, void *ud,
              uint64_t token, nana_result *err);

/* Submits through |submit| (which fills |err| when it refuses) and waits for
 * the result in |out|; returns out->status. */
typedef int (*nc_submit_fn)(void *ctx, nana_client_done_fn done, void *ud, nana_result *err);
int nc_blocking(nc_submit_fn submit, void *ctx, nana_result *out);

/* pool.c: a submit function (nc_submit_fn) whose |ctx| is an nc_call_args
 * with the pool as its target: the call goes to the least-loaded
 * connection. */
int nc_pool_submit(void *ctx, nana_client_done_fn done, void *ud, nana_result *err);

/* The longest time option honoured (one day); longer ones are capped. */
#define NC_MAX_MS 86400000u

/* A time option: |def| when 0, capped at NC_MAX_MS. */
unsigned nc_opt_ms(unsigned v, unsigned def);

/*
 * Reads |o|'s Ed25519 key file into |key| and resolves its host to a
 * numeric address and family (ECONNECT). A key that cannot be used is
 * EINVALID, except that with a client certificate (cert_file) a key file
 * that does not exist leaves key->have false: the certificate may log the
 * account in alone. The caller wipes |key| after use.
 */
int nc_load_target(const nana_client_opts *o, nc_key *key, char addr[INET6_ADDRSTRLEN], int *family,
                   nana_result *err);

/* The key part of nc_load_target alone (the pool resolves its nodes itself). */
int nc_load_key(const nana_client_opts *o, nc_key *key, nana_result *err);

/*
 * Resolves |host| (a numeric address or a name) to its first address of
 * |family| (AF_UNSPEC: any) as numeric text in |addr|, its family in
 * *got. ECONNECT with |err| filled when it does not resolve.
 */
int nc_resolve(const char *host, int family, char addr[INET6_ADDRSTRLEN], int *got,
               nana_result *err);

/* ---- the pool's nodes (nodes.c) ------------------------------------------ */

/* The longest entry of a node list: a host name (253) in brackets, ':' and
 * a port. */
#define NC_NODE_ENTRY_MAX 262

/* One node: the entry as written (for messages), its address and port. */
typedef struct nc_node_addr {
    char name[NC_NODE_ENTRY_MAX + 1];
    char addr[INET6_ADDRSTRLEN];
    uint16_t port;
} nc_node_addr;

/*
 * Reads a node list ("HOST:PORT,[IPV6]:PORT,...", at most
 * NANA_POOL_MAX_NODES entries, blanks around an entry ignored) into
 * out[0..*n) and resolves every entry, all to one address family (*family):
 * numeric addresses decide it, names are resolved in it. EINVALID naming
 * the entry for a malformed list, one of two families, or a node listed
 * twice; ECONNECT for a name that does not resolve.
 */
int nc_nodes_parse(const char *list, nc_node_addr out[NANA_POOL_MAX_NODES], unsigned *n,
                   int *family, nana_result *err);

/*
 * aql.c's calls through a submit function (the client's or the pool's):
 * ExecuteQuery of serialized |body| (kind NC_AQL_QUERY), ExecuteBatch of
 * serialized queries, ExecuteStream opened as an iterator. As the public
 * nana_client_aql_execute, _batch and _stream_open.
 */
int ncq_run(nc_submit_fn submit, void *target, nc_kind kind, const uint8_t *body, size_t len,
            const nana_call_opts *co, uint8_t **resp, size_t *rlen, nana_result *out);
int ncq_run_batch(nc_submit_fn submit, void *target, const uint8_t *const *queries,
                  const size_t *lens, size_t n, const nana_call_opts *co, uint8_t **resp,
                  size_t *rlen, nana_result *out);
int ncq_stream_open(nc_submit_fn submit, void *target, const uint8_t *req, size_t len,
                    const nana_call_opts *co, nana_aql_stream **it, nana_result *out);

#endif
