/*
 * gdoor_int.h - what the gRPC door's files share (not its public face).
 *
 *   door.c     the door: options, budgets, counters
 *   conn.c     what every connection shares, whatever carries it: its list,
 *              its unfinished requests' deadlines, answers coming back from
 *              the store's threads, the server's graceful stop
 *   h3conn.c   a connection over QUIC: HTTP/3 (nghttp3 through src/h3)
 *   h2conn.c   a connection over TCP (TLS, or h2c): HTTP/2 (nghttp2)
 *   call.c     a call's life: its head, its request message, its answer
 *   services.c the services and their methods (health, reflection, NanaSQLite)
 *   auth.c     who a connection's client is (certificate, signature, bearer
 *              token), signed requests, and what a token's roles allow
 *   pbw.c      writing our small reply messages without protobuf-c
 */
#ifndef NANA_GDOOR_INT_H
#define NANA_GDOOR_INT_H

#include "door_grpc/nana_gdoor.h"
#include "h3/nana_h3.h"
#include "h2/nana_h2.h"
#include "loop/nana_loop.h"
#include "util/nana_arena.h"
#include "util/nana_buf.h"

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/socket.h>

typedef struct gconn gconn;
typedef struct gcall gcall;
typedef struct gmethod gmethod;

/*
 * What carries a connection's calls: HTTP/3 on QUIC (h3conn.c) or HTTP/2
 * on TCP (h2conn.c). The calls and services above never see which; they
 * reach the transport only through these functions, each called on the
 * connection's thread with a connection that is still there.
 */
typedef struct gtransport {
    const char *name; /* "h3", "h2": for logs */
    /* Sends |c|'s answer: headers, the body and trailers, or Trailers-Only
     * when it failed before a body (nana_gdoor_respond). */
    void (*respond)(gcall *c);
    /* More streamed body is ready (the head and trailers already handled). */
    void (*resume)(gcall *c);
    /* Answers HTTP error |http_status| alone. */
    void (*respond_http)(gcall *c, int http_status);
    /* Resets |c|'s stream; |h3_code| is an HTTP/3 code, mapped for HTTP/2. */
    void (*reset)(gcall *c, uint64_t h3_code);
    /* Gives |n| request bytes of stream |sid| back as flow-control credit. */
    void (*consume)(gconn *g, int64_t sid, uint64_t n);
    /* The connection's clock (ns) and its one timer (conn.c's tick). */
    uint64_t (*now)(const gconn *g);
    void (*set_timer)(gconn *g, uint64_t when);
    /* The client logged in: the transport no longer counts it untrusted.
     * 0, or an error when the connection was already chosen to close. */
    int (*trust)(gconn *g);
    /* The TLS exporter value for |label| (empty context): 0, or an error
     * (a plaintext connection has none). */
    int (*exporter)(const gconn *g, const char *label, uint8_t *out, size_t n);
    /* The server stops: GOAWAY; open health watches end (conn.c's part). */
    void (*drain)(gconn *g);
} gtransport;

/* The door on one I/O thread of the endpoint: its connections there, and
 * the post that drains them. Touched only on that thread, once made. */
typedef struct gloop {
    struct nana_loop_post drain_post; /* nana_gdoor_drain's, one per loop */
    nana_gdoor *d;
    nana_loop *loop;
    gconn *conns; /* the door's connections on this thread */
    bool draining;
} gloop;

struct nana_gdoor {
    nana_core *core;
    nana_gdoor_opts o;
    nana_quic_ep *ep;
    nana_h2_limits h2lim;             /* HTTP/2 connections' settings and flood limits */
    nghttp2_session_callbacks *h2cbs; /* their nghttp2 callbacks (h2conn.c) */
    nana_door_accounts acc;
    nana_ban *ban;
    nana_h3_app h3app;
    nana_quic_callbacks qcb; /* its connections' transport callbacks */
    nghttp3_settings h3settings;
    atomic_size_t buffered; /* request bytes held by every connection's calls */
    atomic_uint_fast64_t st_calls, st_auth_ok, st_auth_failed, st_refused, st_cancelled;
    uint64_t started_ns;            /* when the door was made (GetServerInfo's uptime) */
    atomic_uint_fast64_t proof_seq; /* the last server_seq given a proof (nana_gdoor_proof_seq) */
    gloop *loops;                   /* one per I/O thread of the endpoint */
    unsigned nloops;
    atomic_bool draining;
};

/* Who a connection's client is (auth.c). */
typedef struct gauth {
    bool authed;
    bool by_cert;        /* logged in by its certificate alone */
    nana_accounts *snap; /* the accounts it logged in against */
    uint64_t gen;
    const nana_account *acct; /* in snap */
    uint8_t pk[32];           /* the key that logged in (zero for a certificate login) */
    char name[72];
    uint8_t sig[64]; /* the signature that logged it in (later calls may repeat it) */
    bool have_sig;
    /* bearer tokens: the last one that verified on this connection */
    bool by_token;          /* logged in by a token: the login ends at token_exp */
    int64_t token_exp;      /* Unix seconds */
    bool token_roles;       /* it had "roles": only what token_grants grants */
    unsigned token_grants;  /* NANA_JWT_ROLE_* */
    uint8_t secret_sha[32]; /* SHA-256 of the secret it verified with (a reload compares) */
    char *tok;              /* that token's bytes (nana_malloc): the same token on a later
                               call of the connection is taken without verifying it again */
    size_t tok_len, tok_cap;
    /* signed requests: the last seq accepted on this connection (kept across logins) */
    uint64_t reqsig_seq;
} gauth;

/* One connection of the door (the nana_h3_conn's user pointer over QUIC;
 * the first member of h2conn.c's connection over TCP). */
struct gconn {
    nana_gdoor *d;
    const gtransport *tp;
    nana_loop *loop;    /* its I/O thread's */
    nana_quic_conn *qc; /* HTTP/3 only */
    nana_h3_conn *hc;   /* HTTP/3 only */
    uint64_t handle;
    struct sockaddr_storage addr;
    char peer[64];
    nana_cert_identity id; /* its verified client certificate, if any */
    gauth auth;
    nana_rate_hint rate;
    size_t buffered; /* request bytes its calls hold */
    gcall *calls;    /* its live calls (attached to a stream) */
    uint64_t ncalls;
    bool timer_armed;     /* the look at unfinished requests is due (conn.c) */
    gloop *gl;            /* its I/O thread's part of the door (NULL: none) */
    gconn *lprev, *lnext; /* in gl->conns */
};

/* What a call is, from its path. */
typedef enum gkind {
    G_HEALTH_CHECK,
    G_HEALTH_WATCH,
    G_REFLECT,
    G_CALL,
    G_GET,
    G_SET,
    G_DELETE,
    G_BATCH_GET,
    G_BATCH_SET,
    /* amaters.aql.AqlService and the design's AmateRS service (aql.c) */
    G_AQL_QUERY,
    G_AQL_BATCH,
    G_AQL_STREAM,
    G_AQL_INTERACTIVE,
    G_AQL_HEALTH,
    G_AQL_INFO,
    G_AMATERS_EXECUTE,
    G_AMATERS_STREAM,
} gkind;

/* Whether a call of |k| is served by aql.c. */
#define GKIND_AQL(k) ((k) >= G_AQL_QUERY)

struct gmethod {
    const char *path; /* "/package.Service/Method" */
    size_t path_len;
    const ProtobufCMessageDescriptor *in; /* its request message */
    gkind kind;
    bool needs_account; /* false: health and reflection */
    bool stream_in;     /* the client sends a stream of messages */
};

/* A piece of a streamed response: framed bytes in the call's arena
 * (reflection, health watches) or, when |owned|, its own allocation that
 * goes once the client acknowledged it (AQL's streams). */
typedef struct gchunk {
    const uint8_t *p;
    size_t len;
    struct gchunk *next;
    void *owned; /* freed (nana_free) with the chunk once acknowledged */
} gchunk;

typedef struct gsub gsub;

enum { GCALL_BLOCK = 2048 };

/* One call: one request stream. */
struct gcall {
    nana_core_call core;      /* first: the core's call, when the call runs a method */
    struct nana_loop_post lp; /* takes the answer to the connection's thread */
    nana_gdoor *d;
    gconn *conn;        /* NULL once the stream or the connection is gone (the conn's thread) */
    nana_loop *loop;    /* its connection's thread, where answers are taken */
    gcall *prev, *next; /* in conn->calls */
    uint64_t handle;
    int64_t sid;
    atomic_int refs; /* the stream's, and the core's while it has the call */
    const gmethod *gm;
    nana_arena arena; /* its head, its request message, what it binds */
    nana_grpc_head head;
    nana_grpc_deframer df;
    ProtobufCMessage *req; /* the (first) request message */
    unsigned nmsgs;
    size_t reserved; /* request bytes counted in the budgets */
    /* When its request began (0 once it ended: no longer watched) and last
     * brought bytes, in ns; the connection's thread alone reads and writes
     * them, so its timer never touches what the store's threads write. */
    uint64_t t_start, t_last;
    bool head_done, in_core, answered, responded, ended, streaming, sent_body;
    bool cancelled;    /* the client cancelled it: its stream is reset, nothing more goes out */
    bool read_stopped; /* we sent STOP_SENDING: the client's reset of its side is expected */
    /* the answer */
    nana_grpc_status status;
    char message[NANA_GRPC_MESSAGE_MAX];
    nana_buf body;           /* framed reply message (unary) */
    gchunk *chunks, **ctail; /* streamed reply messages, sent in order */
    gchunk *csend;           /* the next chunk to hand nghttp3 */
    /* AQL (aql.c) */
    gsub *sq_head, *sq_tail; /* its queries, in arrival order (answers go out in it) */
    uint64_t out_queued;     /* streamed body bytes handed to the chunks */
    uint64_t out_acked;      /* ... of which the client acknowledged */
    uint64_t acked_in_head;  /* acknowledged bytes of the first chunk */
    nana_buf inbuf;          /* a stream of requests: bytes not yet taken */
    size_t inoff;            /* taken so far from inbuf */
    uint64_t unconsumed;     /* request bytes not yet given back as flow-control credit */
    uint64_t seq, total;     /* ExecuteStream: the next sequence number, rows sent */
    char *after;             /* ExecuteStream: the last key sent (nana_malloc) */
    size_t alen;
    const uint8_t *req_bytes; /* its request message as it came (for a proof), in the arena */
    size_t req_len;
    uint8_t *proof; /* a proof for the trailers (nana-proof-bin), in the arena */
    size_t proof_len;
    unsigned pushback_ms; /* > 0: grpc-retry-pushback-ms in the trailers (try again after) */
    unsigned nsubs;       /* queries in sq_head's queue */
    bool more;            /* ExecuteStream: rows remain after |after| */
    bool paging;          /* ExecuteStream: a page is being read */
    bool stream_error;    /* ExecuteStream: an error ended it (no StreamEnd follows) */
    bool want_proof;      /* proofs go with its answers (asked, or always) */
    bool body_eof;        /* no more body: trailers follow */
    bool trailered;       /* the trailers were submitted */
    /* HTTP/2 (h2conn.c): nghttp2 copies the body out of the call */
    size_t h2off;        /* bytes of the body, or of csend's chunk, already copied */
    size_t h2_hdr_bytes; /* its request's header list, decoded */
    uint64_t h2_unacked; /* streamed bytes copied but not yet reported (nana_gdoor_aql_acked) */
    gcall *h2_ack_next;  /* in the connection's list of calls with h2_unacked */
    bool h2_deferred;    /* nghttp2 waits for more body (NGHTTP2_ERR_DEFERRED) */
    alignas(max_align_t) char block[GCALL_BLOCK];
};

/* ---- door.c ---- */

/* Counts |n| more request bytes for |c|'s connection and the door: false
 * (nothing counted) past a budget. */
bool nana_gdoor_reserve(gcall *c, size_t n);
/* Gives back what |c| counted in the door's budget (its connection's part
 * goes back when the call leaves the connection, nana_gcall_detach). */
void nana_gdoor_unreserve(gcall *c);

/* ---- conn.c: every connection, whatever carries it ---- */

/* Sends |c|'s answer on its stream (the connection's thread): headers, the
 * body and trailers, or Trailers-Only when it failed before a body.
 * Nothing once the connection is gone. */
void nana_gdoor_respond(gcall *c);
/* More streamed body is ready (reflection, watches, AQL streams). */
void nana_gdoor_resume(gcall *c);
/* Sends HTTP error |http_status| alone (no gRPC status). */
void nana_gdoor_respond_http(gcall *c, int http_status);
/* Resets |c|'s stream both ways with HTTP/3 error |code| (mapped for HTTP/2). */
void nana_gdoor_reset(gcall *c, uint64_t code);

/* A request of |g| is unfinished: its deadlines will be looked at (the
 * connection's timer, armed once for all of its calls). */
void nana_gdoor_watch(gconn *g);
/* The connection's timer fired (the transport calls it): unfinished
 * requests past their limits are refused; re-armed while some remain. */
void nana_gdoor_conn_tick(gconn *g);

/* Takes |c|'s answer (made on another thread) to its connection's thread,
 * holding a reference until it is there. Any thread. */
void nana_gdoor_post_answer(gcall *c);
/* The server stops (|gl|'s thread): GOAWAY on each connection, open health
 * watches told NOT_SERVING and ended. */
void nana_gdoor_drain_loop(gloop *gl);
/* Open health watches of |g| send NOT_SERVING and end (a transport's drain). */
void nana_gdoor_conn_end_watches(gconn *g);
/* The client gave up |c| (reset its request, or will not read the
 * answer): not run if it has not started, nothing more goes out. The
 * transport resets the stream itself. */
void nana_gdoor_call_cancelled(gcall *c);
/* A new connection |g| (d, tp, loop, handle, addr and id set) joins its
 * thread's list and logs in by certificate when it can; a draining door
 * tells it at once. */
void nana_gdoor_conn_add(gconn *g);
/* |g| is closing: its calls are detached, it leaves its thread's list, its
 * login is freed. The transport frees |g| itself afterwards. */
void nana_gdoor_conn_remove(gconn *g);

/* ---- h3conn.c ---- */

/* The door's HTTP/3 application (for nana_gdoor_new). */
void nana_gdoor_h3_app(nana_gdoor *d);

/* ---- h2conn.c ---- */

/* The door's HTTP/2 settings and callbacks (nana_gdoor_new), and their end. */
int nana_gdoor_h2_init(nana_gdoor *d);
void nana_gdoor_h2_free(nana_gdoor *d);

/* ---- call.c ---- */

gcall *nana_gcall_new(gconn *g, int64_t sid);
/* Drops a reference; the last frees the call. Any thread. */
void nana_gcall_unref(gcall *c);
/* The stream or the connection is gone (the connection's thread). */
void nana_gcall_detach(gcall *c);
/* Fails |c| with |status| and answers it now (the connection's thread). */
/* How long a client is told to wait before retrying a call that found no
 * leader of the cluster (grpc-retry-pushback-ms). */
#define NANA_GDOOR_NOLEADER_PUSHBACK_MS 500

void nana_gcall_fail(gcall *c, nana_grpc_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The stream's events (the connection's thread). */
int nana_gcall_header(gcall *c, const uint8_t *name, size_t nlen, const uint8_t *value,
                      size_t vlen);
void nana_gcall_end_headers(gcall *c);
void nana_gcall_data(gcall *c, const uint8_t *data, size_t len);
/* Whether |c| gives its request bytes' flow-control credit back itself
 * (a stream of AQL queries); the connection credits everything else. */
bool nana_gcall_keeps_credit(const gcall *c);
void nana_gcall_end_stream(gcall *c);

/* ---- services.c ---- */

/* The method at |path|, or NULL. */
const gmethod *nana_gdoor_method(const char *path, size_t len);
/* Runs |c| (its request message read): answers now, or later through the core. */
void nana_gdoor_dispatch(gcall *c);
/* The server is stopping: an open Watch sends NOT_SERVING and ends. */
void nana_gdoor_watch_end(gcall *c);
/* A streamed request's next message (reflection). */
void nana_gdoor_stream_message(gcall *c, const uint8_t *msg, size_t len);

/* ---- aql.c ---------------------------------------------------------------- */

/* An AQL call's header has ended and was accepted: what it asked of its
 * answers (proofs). */
void nana_gdoor_aql_begin(gcall *c);
/* Runs an AQL call whose request (or first request) has come. */
void nana_gdoor_aql_dispatch(gcall *c);
/* Request bytes of a call that takes a stream of AQL queries: kept, and
 * run as the answers leave room (flow-control credit follows). */
void nana_gdoor_aql_data(gcall *c, const uint8_t *data, size_t len);
/* The request stream of such a call ended. */
void nana_gdoor_aql_end(gcall *c);
/* The client acknowledged |n| more bytes of |c|'s answer. */
void nana_gdoor_aql_acked(gcall *c, uint64_t n);
/* The call is going (its stream or connection ended): its queries are
 * cancelled where they have not started; its credit is given back. */
void nana_gdoor_aql_detach(gcall *c);
/* Frees what an AQL call holds of its own (at the call's end). */
void nana_gdoor_aql_free(gcall *c);
/* The core's ops of the NanaSQLite methods. */
extern const nana_door_ops nana_gdoor_ops_get, nana_gdoor_ops_call, nana_gdoor_ops_other;

/* ---- auth.c ---- */

/* At connection open: a certificate that logs its account in. */
void nana_gdoor_auth_open(gconn *g);
/* Before a call that needs an account: 0 with g->auth current, or the
 * status to fail the call with (message in |msg|). */
nana_grpc_status nana_gdoor_auth_call(gconn *g, const nana_grpc_head *h, char *msg, size_t cap);
void nana_gdoor_auth_free(gconn *g);
/*
 * Whether the connection's login lets a method of |method_flags|
 * (nana_method_flags) run: always, unless the last bearer token had
 * "roles"; then NANA_M_WRITE needs "write" or "admin", and NANA_M_ADMIN
 * or NANA_M_SQL needs "admin". A refused call fails PERMISSION_DENIED.
 */
bool nana_gdoor_login_allows(const gconn *g, unsigned method_flags);
/* False when |c|'s connection is gone or its token's roles make it read-only. */
bool nana_gdoor_call_may_write(const gcall *c);
/*
 * Checks a signed request (an AmateRS QueryRequest's client_signature,
 * nana_reqsig.h) for the query bytes: the account exists and has a key,
 * the signature is the key's over this connection's TLS exporter value,
 * unix_ms is within auth_skew_s of the clock, seq is above the last one
 * accepted on the connection, and a logged-in connection's account is the
 * one signing. A connection not logged in is logged in as that account
 * (as a signature login). On success *acct is the account (owned by the
 * connection's snapshot, g->auth.snap) and the seq is remembered; else
 * UNAUTHENTICATED with a reason in |msg| (counted toward the ban).
 */
nana_grpc_status nana_gdoor_auth_reqsig(gconn *g, const uint8_t *sig, size_t slen,
                                        const uint8_t *query, size_t qlen,
                                        const nana_account **acct, char *msg, size_t cap);
/* The next server_seq for a proof (1, 2, ...; atomic, any thread). */
uint64_t nana_gdoor_proof_seq(nana_gdoor *d);

/* ---- pbw.c: protobuf wire writing ---- */

int nana_pbw_varint(nana_buf *b, uint64_t v);
/* Field |num| of wire type 2 (bytes, string, message). */
int nana_pbw_bytes(nana_buf *b, uint32_t num, const void *p, size_t n);
/* Field |num| of wire type 0. */
int nana_pbw_uint(nana_buf *b, uint32_t num, uint64_t v);
/* The size of a length-delimited field |num| of |n| bytes. */
size_t nana_pbw_bytes_size(uint32_t num, size_t n);
/* Reserves the 5-byte gRPC prefix at the end of |b| (its offset in *at)... */
int nana_pbw_frame_begin(nana_buf *b, size_t *at);
/* ...and writes it for what followed. */
void nana_pbw_frame_end(nana_buf *b, size_t at);

#endif
