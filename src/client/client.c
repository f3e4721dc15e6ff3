/*
 * client.c - one logical connection to a NanaSQLite server: connect,
 * authenticate, carry many calls at once, reconnect when the connection
 * is lost.
 *
 * States: CONNECTING (QUIC handshake) -> AUTH (AUTH_START, challenge,
 * signed response; or AUTH_START answered AUTH_OK at once when the client
 * certificate logs the account in) -> READY (calls flow) -> BACKOFF (waiting to try again)
 * -> CONNECTING ... and CLOSED at the end. There is at most one live QUIC
 * connection per client; callbacks of an older one (matched by handle)
 * are ignored.
 *
 * A call is built into a request frame on the caller's thread, queued, and
 * sent by the I/O thread on a new stream once the client is READY and the
 * server allows another stream. Its reply is matched by stream id. When a
 * connection ends, calls already sent complete with EUNKNOWN (they may or
 * may not have run, so they are never sent again); calls still queued wait
 * for the next connection, unless a connection attempt fails, which fails
 * them too (fast errors while the server is down). A call waits for a
 * connection at most connect_timeout_ms, wherever in an attempt (or a
 * back-off) it arrived. Timeouts are fired by the runtime's maintenance
 * thread through nc_client_tick.
 *
 * Results are delivered outside the client's lock: to the call's function,
 * or to the completion queue whose eventfd a caller's event loop watches.
 */
#include "auth/nana_keys.h"
#include "client_int.h"
#include "grpc/nana_grpc.h"
#include "h3/nana_h3.h"
#include "proto/nana_frame.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

typedef enum cstate { ST_CONNECTING, ST_AUTH, ST_READY, ST_BACKOFF, ST_CLOSED } cstate;

/* The largest authentication reply read (a challenge is about 60 bytes). */
#define AUTH_REPLY_MAX 4096

/* Calls finished under the lock, delivered after it (see finish). */
typedef struct done_list {
    nc_call *head, *tail;
} done_list;

/* A result waiting in the completion queue. */
typedef struct done_node {
    nana_result r;
    struct done_node *next;
} done_node;

struct nana_client {
    nc_rt *rt;
    atomic_bool named_db; /* a call named a database: later ones without say "db": nil */
    nc_pool_hooks hooks;
    char *server_name, *account; /* options (copied) */
    pthread_mutex_t mu;
    pthread_cond_t cv; /* attempt finished (connect waiters) */
    nana_quic_handle h;
    nana_quic_handle abandon_h; /* the attempt an abandon_post was posted for */
    uint64_t attempt_deadline, next_attempt;
    uint64_t attempt_start; /* when the current attempt began */
    uint64_t attempts_ok, attempts_failed, reconnects;
    uint64_t failing_since; /* the first attempt that failed since it was last READY; 0: none */
    int64_t auth_sid;
    nana_buf auth_buf;
    /* calls */
    nc_call queue; /* sentinel: unsent calls, oldest first */
    nc_call sent;  /* sentinel: calls on a stream */
    nc_sidmap map;
    uint64_t next_ns; /* the earliest time the maintenance thread was asked for */
    uint64_t created_ns, last_used_ns;
    done_node *done_head, *done_tail; /* the completion queue */
    unsigned connect_timeout_ms, call_timeout_ms, reconnect_min_ms, reconnect_max_ms;
    unsigned idle_timeout_ms; /* HTTP/2: PING after a third of it without input */
    unsigned max_queued, max_reply_bytes;
    unsigned backoff_ms;
    unsigned pending;
    cstate state;
    bool responded;  /* in AUTH: the signed response was sent (else only AUTH_START) */
    int fail_status; /* why the current attempt failed, once known */
    int efd;         /* the completion eventfd */
    uint16_t port;
    bool own_rt, has_hooks;
    bool closing_attempt; /* asked the I/O thread to abandon a stalled attempt */
    bool flush_posted;
    char addr[INET6_ADDRSTRLEN];
    nc_key key;
    char fail_msg[384];
    char last_fail_msg[384]; /* why the last failed attempt failed, and its status */
    int last_fail_status;
    /* transports (the options, then the current attempt's) */
    bool proto_grpc; /* protocol NANA_CLIENT_PROTO_GRPC */
    bool grpc_only;  /* every connection speaks gRPC: calls are built as gRPC only */
    bool dual;       /* AUTO with the NanaSQLite protocol: calls may be built both ways */
    /* READY on a NanaSQLite connection over QUIC: calls submitted now are
     * built for it alone (no gRPC twin); set with the state (set_state) */
    atomic_bool nana_ready;
    int transport;        /* nana_client_transport */
    unsigned fallback_ms; /* AUTO: QUIC's time before HTTP/2 */
    uint64_t fallback_at; /* this QUIC attempt gives way to HTTP/2 then (0: it does not) */
    char quic_why[160];   /* why QUIC gave way, for the attempt's error message */
    /* the current connection: I/O thread, lock held */
    bool grpc;           /* it speaks gRPC (over HTTP/3 or HTTP/2) */
    bool on_h2;          /* it is HTTP/2 on TCP (h2.c), not QUIC */
    nch2_conn *h2;       /* that HTTP/2 connection, once started */
    done_list h2_done;   /* calls finished while h2.c is entered */
    bool h2_auth;        /* the client was in AUTH when h2.c entered */
    nana_h3_conn *hc;    /* the current connection's HTTP/3 state, once open */
    done_list *g_done;   /* where nghttp3's callbacks put finished calls */
    int login_http;      /* the login call's answer: HTTP status, */
    int login_grpc;      /* grpc-status (-1: none), */
    char login_msg[256]; /* and grpc-message */
};

/* Moves |c| to |st| (lock held), keeping nana_ready in step. */
static void set_state(nana_client *c, cstate st)
{
    c->state = st;
    atomic_store(&c->nana_ready, st == ST_READY && !c->grpc);
}

/* ---- lists ---------------------------------------------------------------- */

static void list_init(nc_call *s)
{
    s->prev = s->next = s;
}

static bool list_empty(const nc_call *s)
{
    return s->next == s;
}

static void list_add_tail(nc_call *s, nc_call *c)
{
    c->prev = s->prev;
    c->next = s;
    s->prev->next = c;
    s->prev = c;
}

static void list_del(nc_call *c)
{
    c->prev->next = c->next;
    c->next->prev = c->prev;
    c->prev = c->next = c;
}

/* ---- completing calls -------------------------------------------------------- */

/*
 * Marks |call| finished with a client-side error (res set) or, with status
 * -1, with its reply bytes still to be parsed; moves it to |done| (a plain
 * list the caller delivers after unlocking). Lock held.
 */
static void finish(nana_client *c, nc_call *call, done_list *done, int status, const char *msg)
{
    list_del(call);
    if (call->sid >= 0) nc_sidmap_del(&c->map, call->sid);
    if (call->stream) ncs_set_call(call->stream, NULL, NULL, 0);
    c->pending--;
    c->last_used_ns = nana_now_ns();
    call->status = status;
    if (status >= 0) nc_result_set(&call->res, status, "%s", msg);
    call->done_next = NULL;
    if (done->tail)
        done->tail->done_next = call;
    else
        done->head = call;
    done->tail = call;
}

/* Pushes a result onto the completion queue and signals the eventfd. */
static void push_done(nana_client *c, nana_result *r)
{
    done_node *n = malloc(sizeof(*n));
    if (!n) {
        nana_result_free(r); /* nothing to tell it with */
        return;
    }
    n->r = *r;
    n->next = NULL;
    pthread_mutex_lock(&c->mu);
    if (c->done_tail)
        c->done_tail->next = n;
    else
        c->done_head = n;
    c->done_tail = n;
    uint64_t one = 1;
    ssize_t w = write(c->efd, &one, sizeof(one));
    (void)w;
    pthread_mutex_unlock(&c->mu);
}

/* Delivers finished calls (no lock held): parses replies, runs functions or
 * queues results, frees the calls. */
static void deliver(nana_client *c, done_list *done)
{
    for (nc_call *call = done->head, *next; call; call = next) {
        next = call->done_next;
        nana_result r = call->res;
        r.token = call->token;
        if (call->status < 0 && call->grpc) {
            ncg_parse(call, &r);
        } else if (call->status < 0) {
            nc_parse_reply((const uint8_t *)call->reply.data, call->reply.len, &r);
            if (call->kind != NC_CALL) nc_typed_result(call->kind, &r);
        }
        nana_buf_free(&call->frame);
        nana_buf_free(&call->gframe);
        nana_buf_free(&call->reply);
        free(call->db);
        if (call->done)
            call->done(call->ud, &r);
        else
            push_done(c, &r);
        free(call);
    }
    done->head = done->tail = NULL;
}

/* Fails every call of list |s| with |status|. Lock held. */
static void fail_list(nana_client *c, nc_call *s, done_list *done, int status, const char *msg)
{
    for (nc_call *call = s->next, *nx; call != s; call = nx) {
        nx = call->next;
        finish(c, call, done, status, msg);
    }
}

/* ---- the I/O thread side ------------------------------------------------------ */

static int g_send_call(nana_client *c, nana_quic_conn *qc, nc_call *call, int64_t *sid);

/* Sends queued calls while the server allows streams (|qc| NULL over
 * HTTP/2). I/O thread, lock held. */
static void flush(nana_client *c, nana_quic_conn *qc, done_list *done)
{
    while (c->state == ST_READY && !list_empty(&c->queue)) {
        nc_call *call = c->queue.next;
        int64_t sid;
        if (c->grpc) {
            int rc = g_send_call(c, qc, call, &sid);
            if (rc == NANA_ERR_BUSY) return; /* streams_available resumes */
            if (rc == NANA_ERR_CLOSED) {
                finish(c, call, done, NANA_CLIENT_ECONNECT,
                       "the call was made for a QUIC connection that was lost; the client "
                       "now speaks gRPC over HTTP/2: call again");
                continue;
            }
            if (rc) {
                finish(c, call, done,
                       rc == NANA_ERR_NOMEM ? NANA_CLIENT_ENOMEM : NANA_CLIENT_EINVALID,
                       "the request could not be sent");
                continue;
            }
        } else {
            if (nana_quic_stream_open(qc, &sid)) return; /* BUSY: streams_available resumes */
            if (nana_quic_stream_send(qc, sid, call->frame.data, call->frame.len, 1)) {
                nana_quic_stream_reset(qc, sid, 0);
                finish(c, call, done, NANA_CLIENT_EINVALID,
                       "the request could not be sent (too large)");
                continue;
            }
        }
        if (nc_sidmap_put(&c->map, sid, call)) {
            if (c->on_h2)
                nch2_cancel(c->h2, sid);
            else
                nana_quic_stream_reset(qc, sid, c->grpc ? NANA_GRPC_H3_REQUEST_CANCELLED : 0);
            finish(c, call, done, NANA_CLIENT_ENOMEM, "out of memory");
            continue;
        }
        call->sid = sid;
        call->grpc = c->grpc;
        if (call->stream) ncs_sent(call->stream, c->rt, c->h, sid);
        list_del(call);
        list_add_tail(&c->sent, call);
        nana_buf_free(&call->frame);
        nana_buf_free(&call->gframe);
    }
}

typedef struct gconn gconn;
static nana_client *gconn_client(const gconn *g);

/* The client of a connection: its data, or (gRPC, |user| the runtime)
 * the client of its HTTP/3 state. NULL once the client let it go. */
static nana_client *client_of(nana_quic_conn *qc, void *user)
{
    void *d = nana_quic_conn_get_data(qc);
    if (!d || !user || !nc_rt_is_h3(user, d)) return d;
    return gconn_client(nana_h3_user(d));
}

/* The client of a QUIC connection, if that connection is its current one. */
static nana_client *current(nana_quic_conn *qc, void *user)
{
    nana_client *c = client_of(qc, user);
    if (!c) return NULL;
    pthread_mutex_lock(&c->mu);
    if (c->h != nana_quic_conn_handle(qc) || c->state == ST_CLOSED) {
        pthread_mutex_unlock(&c->mu);
        return NULL;
    }
    return c; /* locked */
}

/* Sends one frame on a new stream; returns its id or -1. Lock held. */
static int64_t send_frame(nana_quic_conn *qc, const nana_buf *f)
{
    int64_t sid;
    if (nana_quic_stream_open(qc, &sid)) return -1;
    if (nana_quic_stream_send(qc, sid, f->data, f->len, 1)) return -1;
    return sid;
}

/* Gives up the current attempt with |status| (the connection, |qc| or the
 * HTTP/2 one, is closed; the failure is acted on when it has closed). Lock
 * held. */
static void abandon(nana_client *c, nana_quic_conn *qc, int status, const char *msg)
{
    c->fail_status = status;
    snprintf(c->fail_msg, sizeof(c->fail_msg), "%s", msg);
    if (c->on_h2) {
        if (c->h2) nch2_close(c->h2); /* nc_h2_closed follows */
    } else if (qc) {
        nana_quic_conn_close(qc, 0, "");
    }
}

static int on_open(nana_quic_conn *qc, void *user)
{
    nana_client *c = current(qc, user);
    if (!c) return 0;
    if (c->state == ST_CONNECTING) {
        nana_buf f;
        nana_buf_init(&f, 0);
        set_state(c, ST_AUTH);
        c->responded = false;
        nana_buf_reset(&c->auth_buf);
        c->auth_sid = nana_frame_string(&f, "AUTH_START") ? -1 : send_frame(qc, &f);
        if (c->auth_sid < 0) abandon(c, qc, NANA_CLIENT_ECONNECT, "cannot start authentication");
        nana_buf_free(&f);
    }
    pthread_mutex_unlock(&c->mu);
    return 0;
}

/* The connection logged in: calls flow. Lock held. */
static void became_ready(nana_client *c)
{
    set_state(c, ST_READY);
    if (c->attempts_ok++) c->reconnects++;
    c->backoff_ms = c->reconnect_min_ms;
    c->fail_status = 0;
    c->failing_since = 0;
    pthread_cond_broadcast(&c->cv);
}

/* An authentication reply is complete. Lock held; returns 1 when the
 * client just became READY. */
static int auth_reply(nana_client *c, nana_quic_conn *qc)
{
    uint8_t challenge[32];
    char msg[256];
    int status = 0;
    nc_auth_step next =
        nc_auth_next((const uint8_t *)c->auth_buf.data, c->auth_buf.len, c->responded, c->key.have,
                     challenge, &status, msg, sizeof(msg));
    nana_buf_reset(&c->auth_buf);
    if (next == NC_AUTH_SIGN) {
        uint8_t sig[64];
        crypto_sign_detached(sig, NULL, challenge, sizeof(challenge), c->key.sk);
        nana_buf f;
        nana_buf_init(&f, 0);
        c->auth_sid = nana_frame_auth_response(&f, sig, c->account) ? -1 : send_frame(qc, &f);
        nana_buf_free(&f);
        c->responded = true;
        if (c->auth_sid < 0) abandon(c, qc, NANA_CLIENT_ECONNECT, "cannot send the auth response");
        return 0;
    }
    if (next == NC_AUTH_DONE) {
        became_ready(c);
        return 1;
    }
    if (!c->responded && !c->key.have && status == NANA_CLIENT_EAUTH && c->key.why[0]) {
        char full[sizeof(c->fail_msg)];
        snprintf(full, sizeof(full), "%.200s (%.170s)", msg, c->key.why);
        abandon(c, qc, status, full);
    } else {
        abandon(c, qc, status, msg);
    }
    return 0;
}

static int on_data(nana_quic_conn *qc, int64_t sid, const uint8_t *data, size_t len, int fin,
                   int early, void *user)
{
    (void)early;
    nana_client *c = current(qc, user);
    if (!c) return 0;
    done_list done = {0};
    bool ready_now = false;
    if (c->state == ST_AUTH && sid == c->auth_sid) {
        if (c->auth_buf.len + len > AUTH_REPLY_MAX)
            abandon(c, qc, NANA_CLIENT_EPROTOCOL, "the authentication reply is too large");
        else if (len && nana_buf_append(&c->auth_buf, data, len))
            abandon(c, qc, NANA_CLIENT_ENOMEM, "out of memory");
        else if (fin)
            ready_now = auth_reply(c, qc);
    } else {
        nc_call *call = nc_sidmap_get(&c->map, sid);
        if (call) {
            if (call->reply.len + len > c->max_reply_bytes) {
                nana_quic_stream_reset(qc, sid, 0);
                finish(c, call, &done, NANA_CLIENT_EPROTOCOL,
                       "the reply is larger than max_reply_bytes");
            } else if (len && nana_buf_append(&call->reply, data, len)) {
                nana_quic_stream_reset(qc, sid, 0);
                finish(c, call, &done, NANA_CLIENT_ENOMEM, "out of memory");
            } else if (fin) {
                finish(c, call, &done, -1, NULL);
            }
        }
    }
    if (c->state == ST_READY) flush(c, qc, &done);
    pthread_mutex_unlock(&c->mu);
    if (ready_now && c->has_hooks) c->hooks.attempt(c->hooks.pool, c, 1);
    deliver(c, &done);
    return 0;
}

static void on_stream_close(nana_quic_conn *qc, int64_t sid, uint64_t app_error, void *user)
{
    (void)app_error;
    nana_client *c = current(qc, user);
    if (!c) return;
    done_list done = {0};
    nc_call *call = nc_sidmap_get(&c->map, sid);
    if (call)
        finish(c, call, &done, NANA_CLIENT_EUNKNOWN,
               "the call's stream ended without a reply (connection lost or stream reset): it "
               "may or may not have run");
    if (c->state == ST_READY) flush(c, qc, &done);
    pthread_mutex_unlock(&c->mu);
    deliver(c, &done);
}

static void on_streams_available(nana_quic_conn *qc, void *user)
{
    nana_client *c = current(qc, user);
    if (!c) return;
    done_list done = {0};
    flush(c, qc, &done);
    pthread_mutex_unlock(&c->mu);
    deliver(c, &done);
}

/* Schedules the next attempt after a backoff with jitter. Lock held. */
static void schedule_retry(nana_client *c)
{
    unsigned b = c->backoff_ms ? c->backoff_ms : 1;
    unsigned jitter = randombytes_uniform(b / 2 + 1); /* 75% .. 125% */
    c->next_attempt = nana_now_ns() + (uint64_t)(b - b / 4 + jitter) * 1000000ull;
    uint64_t nb = (uint64_t)b * 2;
    c->backoff_ms = nb > c->reconnect_max_ms ? c->reconnect_max_ms : (unsigned)nb;
    set_state(c, ST_BACKOFF);
}

/* The current attempt or connection ended. Lock held; |done| collects the
 * calls it fails. Returns 1 if a connection attempt failed. */
static int connection_ended(nana_client *c, const char *why, done_list *done)
{
    bool attempt = c->state == ST_CONNECTING || c->state == ST_AUTH;
    c->closing_attempt = false;
    fail_list(c, &c->sent, done, NANA_CLIENT_EUNKNOWN,
              "the connection was lost after the call was sent: it may or may not have run");
    if (!attempt) { /* a connection was lost: the queued calls wait for the next one */
        uint64_t until = nana_now_ns() + (uint64_t)c->connect_timeout_ms * 1000000ull;
        for (nc_call *call = c->queue.next; call != &c->queue; call = call->next)
            call->conn_deadline_ns = until;
    }
    if (attempt) {
        if (!c->fail_status) {
            c->fail_status = NANA_CLIENT_ECONNECT;
            snprintf(c->fail_msg, sizeof(c->fail_msg), "%s", why);
        }
        snprintf(c->last_fail_msg, sizeof(c->last_fail_msg), "%s", c->fail_msg);
        c->last_fail_status = c->fail_status;
        c->attempts_failed++;
        if (!c->failing_since) c->failing_since = nana_now_ns();
        /* Calls that waited through a whole failed attempt fail now, not at
         * their timeout; calls that came during it wait for the next one. */
        for (nc_call *call = c->queue.next, *nx; call != &c->queue; call = nx) {
            nx = call->next;
            if (call->queued_ns <= c->attempt_start)
                finish(c, call, done, c->fail_status, c->fail_msg);
        }
    }
    schedule_retry(c);
    pthread_cond_broadcast(&c->cv);
    return attempt;
}

static void closed(nana_client *c, nana_quic_conn *qc);
static int fall_back(nana_client *c, const char *quic_why, done_list *done);
static void end_unlock(nana_client *c, int failed, done_list *done);

static void on_close(nana_quic_conn *qc, void *user)
{
    nana_client *c = current(qc, user);
    if (c) closed(c, qc);
}

/* The current connection of |c| ended: says why, fails or keeps its calls
 * and schedules the next attempt. Lock held; released here. */
static void closed(nana_client *c, nana_quic_conn *qc)
{
    char why[384];
    uint64_t code = 0;
    int is_app = 0;
    bool no_answer = false;
    char tls[256];
    if (nana_quic_conn_tls_failure(qc, tls, sizeof(tls)))
        snprintf(why, sizeof(why), "cannot connect to %s:%u: %s", c->addr, c->port, tls);
    else if (nana_quic_conn_peer_error(qc, &code, &is_app) && !is_app && code == 0x2) {
        /* CONNECTION_REFUSED: the server's reason phrase tells a ban from a full server. */
        char reason[128];
        nana_quic_conn_peer_reason(qc, reason, sizeof(reason));
        if (!strcmp(reason, "banned")) {
            snprintf(why, sizeof(why),
                     "%s:%u refused the connection: this address is banned after repeated "
                     "failed logins (try again later)",
                     c->addr, c->port);
            if (!c->fail_status) {
                c->fail_status = NANA_CLIENT_EAUTH;
                snprintf(c->fail_msg, sizeof(c->fail_msg), "%s", why);
            }
        } else {
            snprintf(why, sizeof(why), "%s:%u refused the connection (%s)", c->addr, c->port,
                     reason[0] ? reason : "server full or shutting down");
        }
    } else if (nana_quic_conn_peer_error(qc, &code, &is_app) && !is_app && code > 0x100 &&
               code < 0x200)
        snprintf(why, sizeof(why), "TLS handshake with %s:%u failed (alert %llu)", c->addr, c->port,
                 (unsigned long long)(code - 0x100));
    else if (nana_quic_conn_peer_error(qc, &code, &is_app))
        snprintf(why, sizeof(why), "%s:%u closed the connection (%s code 0x%llx)", c->addr, c->port,
                 is_app ? "application" : "transport", (unsigned long long)code);
    else
        no_answer = true;
    done_list done = {0};
    if (no_answer && c->transport == NANA_CLIENT_TRANSPORT_AUTO && c->state == ST_CONNECTING &&
        !c->closing_attempt) { /* AUTO: UDP may not get through; TCP may */
        snprintf(why, sizeof(why), "no QUIC answer from %s:%u", c->addr, c->port);
        end_unlock(c, fall_back(c, why, &done), &done);
        return;
    }
    if (no_answer)
        snprintf(why, sizeof(why), "no answer from %s:%u (is the server running?)", c->addr,
                 c->port);
    int failed = connection_ended(c, why, &done);
    uint64_t next = c->next_attempt;
    pthread_mutex_unlock(&c->mu);
    if (failed && c->has_hooks) c->hooks.attempt(c->hooks.pool, c, 0);
    nc_rt_wake(c->rt, next);
    deliver(c, &done);
}

const nana_quic_callbacks nc_client_callbacks = {
    .conn_open = on_open,
    .conn_close = on_close,
    .stream_data = on_data,
    .stream_close = on_stream_close,
    .streams_available = on_streams_available,
};

/* ---- gRPC connections ------------------------------------------------------------
 *
 * A gRPC client runs HTTP/3 (src/h3, nghttp3) on its connection: the
 * transport's stream callbacks are the glue's, wrapped so that they run
 * under the client's lock with a list for the calls they finish; nghttp3's
 * callbacks (below) fill a call's HTTP status, grpc-status, grpc-message
 * and body, and finish it when its response ends. A request body belongs
 * to its stream (a gbody), not to its call: nghttp3 sends from it in place
 * until the stream is gone, which may be after the call timed out.
 *
 * The first call of a connection logs it in (a Get carrying the signed
 * metadata, or none when the client certificate logs the account in);
 * any answer but UNAUTHENTICATED means the connection is logged in.
 */

/* A request body nghttp3 reads in place until its stream is gone. */
typedef struct gbody {
    struct gbody *prev, *next;
    nana_buf b;
    bool given;
} gbody;

/* A gRPC connection's own state (its HTTP/3 user pointer): lives as long
 * as the QUIC connection, also after its client let it go. */
struct gconn {
    nana_client *c; /* NULL once the client let go of the connection */
    gbody bodies;   /* sentinel */
};

static nana_client *gconn_client(const gconn *g)
{
    return g ? g->c : NULL;
}

static void gbody_free(gbody *b)
{
    b->prev->next = b->next;
    b->next->prev = b->prev;
    nana_buf_free(&b->b);
    free(b);
}

static void gconn_free(gconn *g)
{
    for (gbody *b = g->bodies.next, *nx; b != &g->bodies; b = nx) {
        nx = b->next;
        nana_buf_free(&b->b);
        free(b);
    }
    free(g);
}

/* The client lets go of |qc| (closing): its callbacks ignore it from now
 * on; its HTTP/3 state goes at conn_close. I/O thread. */
static void gconn_detach(nana_quic_conn *qc, nc_rt *rt)
{
    void *d = nana_quic_conn_get_data(qc);
    if (d && nc_rt_is_h3(rt, d))
        ((gconn *)nana_h3_user(d))->c = NULL;
    else
        nana_quic_conn_set_data(qc, NULL); /* HTTP/3 never started */
}

static nghttp3_ssize g_read_body(nghttp3_conn *h3, int64_t sid, nghttp3_vec *vec, size_t veccnt,
                                 uint32_t *pflags, void *cu, void *su)
{
    (void)h3;
    (void)sid;
    (void)cu;
    gbody *b = su;
    nghttp3_ssize n = 0;
    if (b && !b->given && b->b.len && veccnt) {
        vec[0].base = (uint8_t *)b->b.data;
        vec[0].len = b->b.len;
        b->given = true;
        n = 1;
    }
    *pflags = NGHTTP3_DATA_FLAG_EOF;
    return n;
}

static const nghttp3_data_reader g_reader = {g_read_body};

/*
 * Sends a request for |path| on a new stream of the current connection
 * (|qc|, or the HTTP/2 one): the header (with grpc-timeout when
 * |timeout_ms|, and |extra| fields), then |body|, whose buffer is taken on
 * success. 0 with *sid_out, NANA_ERR_BUSY at the server's stream limit, or
 * another error. Lock held.
 */
static int g_request(nana_client *c, nana_quic_conn *qc, const char *path, unsigned timeout_ms,
                     const nc_hdr *extra, size_t nextra, nana_buf *body, int64_t *sid_out)
{
    char tmo[16];
    nc_hdr hv[12];
    size_t n = 0;
    hv[n++] = (nc_hdr){":method", "POST"};
    hv[n++] = (nc_hdr){":scheme", "https"};
    hv[n++] = (nc_hdr){":authority", c->server_name};
    hv[n++] = (nc_hdr){":path", path};
    hv[n++] = (nc_hdr){"content-type", "application/grpc"};
    hv[n++] = (nc_hdr){"te", "trailers"};
    hv[n++] = (nc_hdr){"user-agent", "nanasqlite-client/" NANA_CLIENT_VERSION};
    if (timeout_ms) {
        nana_grpc_timeout_format((int64_t)timeout_ms * 1000000, tmo);
        hv[n++] = (nc_hdr){"grpc-timeout", tmo};
    }
    for (size_t i = 0; i < nextra && n < sizeof(hv) / sizeof(hv[0]); i++)
        hv[n++] = extra[i];
    if (c->on_h2) {
        if (!c->h2) return nana_err_set(NANA_ERR_BUSY, "no HTTP/2 connection");
        return nch2_request(c->h2, hv, n, body, sid_out);
    }
    gconn *g = nana_h3_user(c->hc);
    int64_t sid;
    int rc = nana_quic_stream_open(qc, &sid);
    if (rc) return rc;
    gbody *b = calloc(1, sizeof(*b));
    if (!b) {
        nana_quic_stream_reset(qc, sid, NANA_GRPC_H3_REQUEST_CANCELLED);
        return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    }
    nghttp3_nv nv[12];
    for (size_t i = 0; i < n; i++)
        nv[i] = nana_h3_nv(hv[i].name, hv[i].value);
    int rv = nghttp3_conn_submit_request(nana_h3_nghttp3(c->hc), sid, nv, n, &g_reader, b);
    if (rv) {
        free(b);
        nana_quic_stream_reset(qc, sid, NANA_GRPC_H3_REQUEST_CANCELLED);
        return nana_err_set(NANA_ERR_INTERNAL, "HTTP/3: %s", nghttp3_strerror(rv));
    }
    b->b = *body;
    nana_buf_init(body, 0);
    b->next = g->bodies.next;
    b->prev = &g->bodies;
    g->bodies.next->prev = b;
    g->bodies.next = b;
    nana_quic_conn_source_ready(qc);
    *sid_out = sid;
    return 0;
}

/* Sends |call| (flush's gRPC half): its remaining time is its deadline.
 * With the NanaSQLite protocol in AUTO the body is its gRPC twin. */
static int g_send_call(nana_client *c, nana_quic_conn *qc, nc_call *call, int64_t *sid)
{
    uint64_t now = nana_now_ns();
    uint64_t left = call->deadline_ns > now ? call->deadline_ns - now : 0;
    unsigned ms = (unsigned)(left / 1000000u) + 1;
    if (call->stream) ms = 0; /* a stream's timeout is each wait for its next message */
    nc_hdr extra[1];
    size_t nextra = 0;
    if (call->db) extra[nextra++] = (nc_hdr){"nana-db", call->db};
    if (c->dual && !call->gframe.len) return NANA_ERR_CLOSED; /* built for QUIC alone */
    return g_request(c, qc, ncg_path(call->kind), ms, extra, nextra,
                     c->dual ? &call->gframe : &call->frame, sid);
}

/* The current QUIC connection of a gRPC client (NULL over HTTP/2). */
static nana_quic_conn *g_qc(const nana_client *c)
{
    return c->on_h2 || !c->hc ? NULL : nana_h3_quic(c->hc);
}

/* Sends the login call of a new connection (|qc| NULL over HTTP/2). Lock
 * held. */
static void g_login(nana_client *c, nana_quic_conn *qc)
{
    nc_hdr meta[3];
    size_t nmeta = 0;
    char ts[24], sig64[96];
    const char *account = c->account ? c->account : "default";
    if (c->key.have) {
        uint8_t exporter[NANA_GRPC_LOGIN_EXPORTER_LEN];
        int erc = c->on_h2 ? nch2_exporter(c->h2, NANA_GRPC_LOGIN_EXPORTER_LABEL, exporter,
                                           sizeof(exporter))
                           : nana_quic_conn_exporter(qc, NANA_GRPC_LOGIN_EXPORTER_LABEL, NULL, 0,
                                                     exporter, sizeof(exporter));
        if (erc) {
            abandon(c, qc, NANA_CLIENT_ECONNECT, "cannot read the connection's TLS exporter");
            return;
        }
        int tlen = snprintf(ts, sizeof(ts), "%lld", (long long)time(NULL));
        uint8_t m[sizeof(NANA_GRPC_LOGIN_CONTEXT) + NANA_GRPC_LOGIN_EXPORTER_LEN + 512];
        size_t mlen = nana_grpc_login_message(exporter, account, strlen(account), ts, (size_t)tlen,
                                              m, sizeof(m));
        if (!mlen) {
            abandon(c, qc, NANA_CLIENT_EINVALID, "the account name is too long");
            return;
        }
        uint8_t sig[crypto_sign_BYTES];
        crypto_sign_detached(sig, NULL, m, mlen, c->key.sk);
        nana_grpc_b64_encode(sig, sizeof(sig), sig64);
        meta[nmeta++] = (nc_hdr){"nana-account", account};
        meta[nmeta++] = (nc_hdr){"nana-timestamp", ts};
        meta[nmeta++] = (nc_hdr){"nana-signature-bin", sig64};
    }
    c->login_http = 0;
    c->login_grpc = -1;
    c->login_msg[0] = '\0';
    nana_buf body;
    nana_buf_init(&body, 0);
    int rc = ncg_login_request(&body);
    if (!rc)
        rc = g_request(c, qc, ncg_path(NC_GET), c->connect_timeout_ms, meta, nmeta, &body,
                       &c->auth_sid);
    nana_buf_free(&body);
    if (rc) abandon(c, qc, NANA_CLIENT_ECONNECT, "cannot send the login call");
}

/* The login call's response ended: logged in, or refused. Lock held. */
static void g_login_done(nana_client *c, nana_quic_conn *qc)
{
    int st = c->login_grpc;
    if (c->login_http == 200 && st >= 0 && st != NANA_GRPC_UNAUTHENTICATED) {
        became_ready(c);
        return;
    }
    char msg[sizeof(c->fail_msg)];
    if (st == NANA_GRPC_UNAUTHENTICATED) {
        snprintf(msg, sizeof(msg), "the server refused the login: %.200s%s%.150s%s",
                 c->login_msg[0] ? c->login_msg : "unauthenticated", c->key.have ? "" : " (",
                 c->key.have ? "" : c->key.why, c->key.have ? "" : ")");
        abandon(c, qc, NANA_CLIENT_EAUTH, msg);
    } else {
        snprintf(msg, sizeof(msg), "the login call got HTTP status %d, grpc-status %d: %.200s",
                 c->login_http, st, c->login_msg);
        abandon(c, qc, NANA_CLIENT_EPROTOCOL, msg);
    }
}

/* The client of nghttp3's conn_user_data (the lock is held by the
 * wrappers below whenever nghttp3 calls back). */
static nana_client *g_cb_client(void *cu)
{
    return gconn_client(nana_h3_user(cu));
}

static bool bytes_are(const uint8_t *p, size_t n, const char *s)
{
    return n == strlen(s) && memcmp(p, s, n) == 0;
}

void nc_g_field(nana_client *c, int64_t sid, const uint8_t *name, size_t nlen, const uint8_t *value,
                size_t vlen)
{
    int *http, *grpc;
    char *msg;
    size_t cap;
    if (c->state == ST_AUTH && sid == c->auth_sid) {
        http = &c->login_http;
        grpc = &c->login_grpc;
        msg = c->login_msg;
        cap = sizeof(c->login_msg);
    } else {
        nc_call *call = nc_sidmap_get(&c->map, sid);
        if (!call) return;
        http = &call->http_status;
        grpc = &call->grpc_status;
        msg = call->grpc_msg;
        cap = sizeof(call->grpc_msg);
    }
    bool is_status = bytes_are(name, nlen, ":status");
    if (is_status || bytes_are(name, nlen, "grpc-status")) {
        int n = 0;
        for (size_t i = 0; i < vlen && n < 100000; i++)
            n = value[i] >= '0' && value[i] <= '9' ? n * 10 + (value[i] - '0') : 100000;
        if (!vlen) n = 100000; /* not a number: no status we know */
        if (is_status)
            *http = n;
        else
            *grpc = n > NANA_GRPC_STATUS_COUNT ? NANA_GRPC_UNKNOWN : n;
    } else if (bytes_are(name, nlen, "grpc-message")) {
        char raw[256];
        size_t n = vlen < sizeof(raw) - 1 ? vlen : sizeof(raw) - 1;
        if (n > cap - 1) n = cap - 1;
        memcpy(raw, value, n);
        raw[n] = '\0';
        nana_grpc_pct_decode(raw, n, msg);
    }
}

/* A response header or trailer field of stream |sid|. */
static int g_on_field(nghttp3_conn *h3, int64_t sid, int32_t token, nghttp3_rcbuf *name,
                      nghttp3_rcbuf *value, uint8_t flags, void *cu, void *su)
{
    (void)h3;
    (void)token;
    (void)flags;
    (void)su;
    nana_client *c = g_cb_client(cu);
    if (!c) return 0;
    nghttp3_vec n = nghttp3_rcbuf_get_buf(name), v = nghttp3_rcbuf_get_buf(value);
    nc_g_field(c, sid, n.base, n.len, v.base, v.len);
    return 0;
}

/* Resets stream |sid| of the current connection (a call it gives up). */
static void g_cancel(nana_client *c, int64_t sid)
{
    if (c->on_h2) {
        if (c->h2) nch2_cancel(c->h2, sid);
    } else if (c->hc) {
        nana_h3_cancel(c->hc, sid, NANA_GRPC_H3_REQUEST_CANCELLED);
    }
}

/* Response body bytes: kept with the call, up to max_reply_bytes, and
 * credited to the server at once; an AQL stream's go to its iterator,
 * which credits them as it takes them (ncs_feed). */
uint64_t nc_g_data(nana_client *c, int64_t sid, const uint8_t *data, size_t len)
{
    nc_call *call = c->g_done ? nc_sidmap_get(&c->map, sid) : NULL;
    if (!call) return len;
    if (call->stream) {
        long long now = ncs_feed(call->stream, data, len, c->max_reply_bytes);
        if (now < 0) {
            finish(c, call, c->g_done, now == -2 ? NANA_CLIENT_EPROTOCOL : NANA_CLIENT_ENOMEM,
                   now == -2 ? "a stream message is larger than max_reply_bytes" : "out of memory");
            g_cancel(c, sid);
            now = (long long)len;
        }
        return (uint64_t)now;
    }
    if (call->reply.len + len > c->max_reply_bytes) /* the rest is read and dropped */
        finish(c, call, c->g_done, NANA_CLIENT_EPROTOCOL,
               "the reply is larger than max_reply_bytes");
    else if (nana_buf_append(&call->reply, data, len))
        finish(c, call, c->g_done, NANA_CLIENT_ENOMEM, "out of memory");
    return len;
}

static int g_on_data(nghttp3_conn *h3, int64_t sid, const uint8_t *data, size_t len, void *cu,
                     void *su)
{
    (void)h3;
    (void)su;
    nana_client *c = g_cb_client(cu);
    uint64_t credit = c ? nc_g_data(c, sid, data, len) : len;
    if (nana_h3_consume(cu, sid, credit)) return NGHTTP3_ERR_CALLBACK_FAILURE;
    return 0;
}

void nc_g_end(nana_client *c, int64_t sid)
{
    if (!c->g_done) return;
    if (c->state == ST_AUTH && sid == c->auth_sid) {
        if (!c->fail_status) g_login_done(c, g_qc(c));
        return;
    }
    nc_call *call = nc_sidmap_get(&c->map, sid);
    if (call) finish(c, call, c->g_done, -1, NULL);
}

static int g_on_end_stream(nghttp3_conn *h3, int64_t sid, void *cu, void *su)
{
    (void)h3;
    (void)su;
    nana_client *c = g_cb_client(cu);
    if (c) nc_g_end(c, sid);
    return 0;
}

void nc_g_closed(nana_client *c, int64_t sid)
{
    if (!c->g_done) return;
    if (c->state == ST_AUTH && sid == c->auth_sid) {
        if (!c->fail_status) /* else the answer already decided (a refusal) */
            abandon(c, g_qc(c), NANA_CLIENT_ECONNECT,
                    "the login call's stream ended without an answer");
        return;
    }
    nc_call *call = nc_sidmap_get(&c->map, sid);
    if (call)
        finish(c, call, c->g_done, NANA_CLIENT_EUNKNOWN,
               "the call's stream ended without a reply (connection lost or stream reset): it "
               "may or may not have run");
}

/* The stream is gone: its body is freed; a call without a response ends. */
static int g_on_stream_close(nghttp3_conn *h3, int64_t sid, uint64_t code, void *cu, void *su)
{
    (void)h3;
    (void)code;
    if (su) gbody_free(su);
    nana_client *c = g_cb_client(cu);
    if (c) nc_g_closed(c, sid);
    return 0;
}

static const nana_h3_app g_app = {
    .cb =
        {
            .recv_header = g_on_field,
            .recv_trailer = g_on_field,
            .recv_data = g_on_data,
            .end_stream = g_on_end_stream,
            .stream_close = g_on_stream_close,
        },
    .server = false,
    .auto_consume = false, /* g_on_data credits what it takes */
};

static nana_quic_callbacks g_glue; /* src/h3's stream callbacks, wrapped below */

static int g_on_open(nana_quic_conn *qc, void *user)
{
    nana_client *c = current(qc, user);
    if (!c) return 0;
    if (c->state == ST_CONNECTING) {
        set_state(c, ST_AUTH);
        gconn *g = calloc(1, sizeof(*g));
        nana_h3_conn *hc = NULL;
        if (g) {
            g->c = c;
            g->bodies.prev = g->bodies.next = &g->bodies;
            nana_quic_conn_set_data(qc, NULL);
            int rc = nana_h3_open(qc, &g_app, g, &hc);
            if (nana_h3_of(qc) && nc_rt_h3_add(user, nana_h3_of(qc)) == 0) {
                c->hc = nana_h3_of(qc); /* g_on_close frees it, and g */
                if (rc) hc = NULL;
            } else { /* HTTP/3 never started: the data is the client again */
                nana_h3_close(qc);
                free(g);
                nana_quic_conn_set_data(qc, c);
                hc = NULL;
            }
        }
        if (!hc)
            abandon(c, qc, NANA_CLIENT_ENOMEM, "cannot start HTTP/3 on the connection");
        else
            g_login(c, qc);
    }
    pthread_mutex_unlock(&c->mu);
    return 0;
}

/* Runs |fn| (a glue callback) for a connection's current client with its
 * lock held and a list for the calls it finishes; then sends what waits
 * and delivers what finished. */
#define G_WRAP(c, qc, user, expr)                                                                  \
    do {                                                                                           \
        done_list done_ = {0};                                                                     \
        bool auth_ = (c)->state == ST_AUTH;                                                        \
        (c)->g_done = &done_;                                                                      \
        expr;                                                                                      \
        (c)->g_done = NULL;                                                                        \
        bool ready_ = auth_ && (c)->state == ST_READY;                                             \
        if ((c)->state == ST_READY) flush((c), (qc), &done_);                                      \
        pthread_mutex_unlock(&(c)->mu);                                                            \
        if (ready_ && (c)->has_hooks) (c)->hooks.attempt((c)->hooks.pool, (c), 1);                 \
        deliver((c), &done_);                                                                      \
    } while (0)

static int g_stream_data(nana_quic_conn *qc, int64_t sid, const uint8_t *data, size_t len, int fin,
                         int early, void *user)
{
    nana_client *c = current(qc, user);
    if (!c) return 0;
    int rv = 0;
    G_WRAP(c, qc, user, rv = g_glue.stream_data(qc, sid, data, len, fin, early, user));
    return rv;
}

static void g_stream_close(nana_quic_conn *qc, int64_t sid, uint64_t code, void *user)
{
    nana_client *c = current(qc, user);
    if (!c) return;
    G_WRAP(c, qc, user, g_glue.stream_close(qc, sid, code, user));
}

static int g_stream_reset(nana_quic_conn *qc, int64_t sid, uint64_t code, void *user)
{
    nana_client *c = current(qc, user);
    if (!c) return 0;
    int rv = 0;
    G_WRAP(c, qc, user, rv = g_glue.stream_reset(qc, sid, code, user));
    return rv;
}

static void g_streams_available(nana_quic_conn *qc, void *user)
{
    nana_client *c = current(qc, user);
    if (!c) return;
    G_WRAP(c, qc, user, (void)0);
}

static void g_on_close(nana_quic_conn *qc, void *user)
{
    void *d = nana_quic_conn_get_data(qc);
    gconn *g = d && nc_rt_is_h3(user, d) ? nana_h3_user(d) : NULL;
    nana_client *c = current(qc, user); /* locked */
    if (g) {
        nc_rt_h3_del(user, d);
        nana_h3_close(qc);
        gconn_free(g);
        if (c) c->hc = NULL;
    }
    if (c) closed(c, qc);
}

static nana_quic_callbacks g_callbacks;

/* The glue's stream callbacks, and ours around them. STOP_SENDING is not
 * watched (that costs a scan of every packet): a request's body goes
 * whole at once, so a server's STOP_SENDING changes nothing here. */
static void g_callbacks_init(void)
{
    nana_h3_quic_callbacks(&g_glue);
    g_callbacks = (nana_quic_callbacks){
        .conn_open = g_on_open,
        .conn_close = g_on_close,
        .stream_data = g_stream_data,
        .stream_close = g_stream_close,
        .stream_reset = g_stream_reset,
        .streams_available = g_streams_available,
    };
}

const nana_quic_callbacks *nc_grpc_callbacks(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, g_callbacks_init);
    return &g_callbacks;
}

/* Posted by a submit: sends what is queued. */
static void flush_post(nana_quic_conn *qc, void *arg)
{
    nana_client *c = arg;
    done_list done = {0};
    pthread_mutex_lock(&c->mu);
    c->flush_posted = false;
    nch2_conn *h2 = c->on_h2 && c->state == ST_READY ? c->h2 : NULL;
    if (qc && c->h == nana_quic_conn_handle(qc) && c->state == ST_READY) flush(c, qc, &done);
    pthread_mutex_unlock(&c->mu);
    deliver(c, &done);
    if (h2) nch2_kick(h2); /* h2.c enters the client, which sends what waits */
}

/* Posted by the maintenance thread: abandons a stalled attempt. */
static void abandon_post(nana_quic_conn *qc, void *arg)
{
    nana_client *c = arg;
    pthread_mutex_lock(&c->mu);
    /* Only for the attempt it was posted for (a later one has another handle). */
    bool stalled = (c->state == ST_CONNECTING || c->state == ST_AUTH) && c->closing_attempt &&
                   c->abandon_h == c->h;
    if (!stalled) {
        pthread_mutex_unlock(&c->mu);
        return;
    }
    if ((c->on_h2 && c->h2) || (qc && c->h == nana_quic_conn_handle(qc))) {
        abandon(c, qc, NANA_CLIENT_ECONNECT, "");
        snprintf(c->fail_msg, sizeof(c->fail_msg),
                 "no authenticated connection to %s:%u within %u ms", c->addr, c->port,
                 c->connect_timeout_ms);
        pthread_mutex_unlock(&c->mu);
        return; /* on_close (or nc_h2_closed) follows */
    }
    /* The connection never came to be: the attempt failed here. */
    done_list done = {0};
    connection_ended(c, "the connection could not be started", &done);
    uint64_t next = c->next_attempt;
    pthread_mutex_unlock(&c->mu);
    if (c->has_hooks) c->hooks.attempt(c->hooks.pool, c, 0);
    nc_rt_wake(c->rt, next);
    deliver(c, &done);
}

/* Posted by close: the connection forgets the client and closes. */
typedef struct detach_req {
    sem_t sem;
    bool grpc;
    nc_rt *rt;
    nana_client *c;
} detach_req;

static void gconn_detach(nana_quic_conn *qc, nc_rt *rt);

static void detach_post(nana_quic_conn *qc, void *arg)
{
    detach_req *d = arg;
    pthread_mutex_lock(&d->c->mu);
    nch2_conn *h2 = d->c->h2;
    d->c->h2 = NULL;
    pthread_mutex_unlock(&d->c->mu);
    if (h2) nch2_detach(h2); /* it closes without telling the client */
    if (qc) {
        if (d->grpc)
            gconn_detach(qc, d->rt); /* its HTTP/3 state goes at conn_close */
        else
            nana_quic_conn_set_data(qc, NULL);
        nana_quic_conn_close(qc, 0, "");
    }
    sem_post(&d->sem);
}

/* ---- attempts and the maintenance tick ----------------------------------------- */

/* The current attempt becomes one over HTTP/2 (under a new handle no QUIC
 * connection has). Lock held. */
static void h2_attempt(nana_client *c)
{
    static _Atomic uint64_t next_h2;
    c->on_h2 = true;
    c->grpc = true;
    c->h2 = NULL;
    c->h = NC_H2_HANDLE_BIT | (atomic_fetch_add(&next_h2, 1) + 1) << 8; /* shard 0 */
}

/* Ends a lock-held step that may have failed an attempt: unlocks, tells the
 * pool, wakes the maintenance thread for the next attempt, delivers. */
static void end_unlock(nana_client *c, int failed, done_list *done)
{
    bool wake = c->state == ST_BACKOFF;
    uint64_t next = c->next_attempt;
    pthread_mutex_unlock(&c->mu);
    if (failed && c->has_hooks) c->hooks.attempt(c->hooks.pool, c, 0);
    if (wake) nc_rt_wake(c->rt, next);
    deliver(c, done);
}

/*
 * On the I/O thread: starts the HTTP/2 connection of the current attempt
 * (h2_attempt). Lock held. Returns 1 when it could not start: the attempt
 * failed (connection_ended ran, collecting calls in |done|).
 */
static int h2_begin(nana_client *c, done_list *done)
{
    uint64_t now = nana_now_ns();
    unsigned left =
        c->attempt_deadline > now ? (unsigned)((c->attempt_deadline - now) / 1000000u) + 1 : 1;
    unsigned idle = c->idle_timeout_ms;
    int rc = nch2_start(c->rt, c, c->h, c->addr, c->port, c->server_name, left, idle, &c->h2);
    if (!rc) return 0;
    char why[384];
    snprintf(why, sizeof(why), "%.150s%scannot start a TCP connection to %s:%u: %.100s",
             c->quic_why, c->quic_why[0] ? "; " : "", c->addr, c->port, nana_errmsg());
    c->h2 = NULL;
    return connection_ended(c, why, done);
}

/* Posted by start_attempt: the HTTP/2 attempt's connection starts here. */
static void h2_connect_post(nana_quic_conn *qc, void *arg)
{
    (void)qc;
    nana_client *c = arg;
    done_list done = {0};
    pthread_mutex_lock(&c->mu);
    int failed = 0;
    if (c->state == ST_CONNECTING && c->on_h2 && !c->h2 && !c->closing_attempt)
        failed = h2_begin(c, &done);
    end_unlock(c, failed, &done);
}

/*
 * AUTO: the QUIC attempt gives way to HTTP/2 (no QUIC connection within
 * fallback_ms, or it ended without an answer): QUIC is quiet for a while
 * for this runtime, and the same attempt goes on over TCP. I/O thread,
 * lock held; returns as h2_begin.
 */
static int fall_back(nana_client *c, const char *quic_why, done_list *done)
{
    snprintf(c->quic_why, sizeof(c->quic_why), "%s", quic_why);
    nc_rt_quic_silent(c->rt, c->addr, c->port, nana_now_ns());
    c->fallback_at = 0;
    h2_attempt(c);
    return h2_begin(c, done);
}

/* Posted by the tick at fallback_at: the QUIC attempt still has no
 * connection; it is dropped (its callbacks will not see the client) and
 * HTTP/2 takes over. */
static void fallback_post(nana_quic_conn *qc, void *arg)
{
    nana_client *c = arg;
    done_list done = {0};
    pthread_mutex_lock(&c->mu);
    int failed = 0;
    if (qc && c->h == nana_quic_conn_handle(qc) && c->state == ST_CONNECTING && !c->on_h2 &&
        !c->closing_attempt) {
        nana_quic_conn_set_data(qc, NULL);
        nana_quic_conn_close(qc, 0, "");
        char why[160];
        snprintf(why, sizeof(why), "no QUIC connection to %s:%u within %u ms", c->addr, c->port,
                 c->fallback_ms);
        failed = fall_back(c, why, &done);
    }
    end_unlock(c, failed, &done);
}

/* ---- HTTP/2 connections: h2.c's way in (client_int.h) ------------------------------ */

nana_client *nc_h2_enter(nana_client *c, const nch2_conn *h)
{
    pthread_mutex_lock(&c->mu);
    if (c->h2 != h || c->state == ST_CLOSED) {
        pthread_mutex_unlock(&c->mu);
        return NULL;
    }
    c->h2_auth = c->state == ST_AUTH;
    c->g_done = &c->h2_done;
    return c;
}

void nc_h2_flush(nana_client *c)
{
    if (c->state == ST_READY) flush(c, NULL, c->g_done);
}

void nc_h2_leave(nana_client *c)
{
    done_list done = c->h2_done;
    c->h2_done = (done_list){0};
    c->g_done = NULL;
    bool ready = c->h2_auth && c->state == ST_READY;
    pthread_mutex_unlock(&c->mu);
    if (ready && c->has_hooks) c->hooks.attempt(c->hooks.pool, c, 1);
    deliver(c, &done);
}

void nc_h2_opened(nana_client *c)
{
    if (c->state != ST_CONNECTING) return;
    set_state(c, ST_AUTH);
    c->fallback_at = 0;
    g_login(c, NULL);
}

void nc_h2_closed(nana_client *c, const nch2_conn *h, const char *why)
{
    pthread_mutex_lock(&c->mu);
    if (c->h2 != h || c->state == ST_CLOSED) {
        pthread_mutex_unlock(&c->mu);
        return;
    }
    c->h2 = NULL;
    char msg[512];
    if (c->state == ST_CONNECTING || c->state == ST_AUTH)
        snprintf(msg, sizeof(msg), "%.150s%scannot connect to %s:%u over TCP (HTTP/2): %.150s",
                 c->quic_why, c->quic_why[0] ? "; " : "", c->addr, c->port,
                 why[0] ? why : "the connection closed");
    else
        snprintf(msg, sizeof(msg), "the TCP connection to %s:%u closed%s%.200s", c->addr, c->port,
                 why[0] ? ": " : "", why);
    done_list done = {0};
    end_unlock(c, connection_ended(c, msg, &done), &done);
}

/* Starts a connection attempt. Lock held. Returns 0, or -1 when the pool's
 * circuit breaker refuses one (the client waits in BACKOFF). */
static int start_attempt(nana_client *c, uint64_t now)
{
    if (c->has_hooks && !c->hooks.may_connect(c->hooks.pool, c)) {
        set_state(c, ST_BACKOFF);
        c->next_attempt = now + (uint64_t)c->reconnect_min_ms * 1000000ull;
        return -1;
    }
    set_state(c, ST_CONNECTING);
    c->fail_status = 0;
    c->fail_msg[0] = '\0';
    c->closing_attempt = false;
    c->attempt_deadline = now + (uint64_t)c->connect_timeout_ms * 1000000ull;
    c->attempt_start = now;
    c->fallback_at = 0;
    c->quic_why[0] = '\0';
    if (c->transport == NANA_CLIENT_TRANSPORT_H2 ||
        (c->transport == NANA_CLIENT_TRANSPORT_AUTO &&
         now < nc_rt_quic_quiet_until(c->rt, c->addr, c->port))) {
        h2_attempt(c);
        if (nc_rt_post(c->rt, c->h, h2_connect_post, c)) {
            c->closing_attempt = true; /* the tick fails it at once */
            c->attempt_deadline = now;
            snprintf(c->fail_msg, sizeof(c->fail_msg), "cannot start a connection: %s",
                     "the client is shutting down");
            c->fail_status = NANA_CLIENT_ECONNECT;
            c->h = 0;
        }
        return 0;
    }
    c->on_h2 = false;
    c->grpc = c->proto_grpc;
    if (c->transport == NANA_CLIENT_TRANSPORT_AUTO)
        c->fallback_at = now + (uint64_t)c->fallback_ms * 1000000ull;
    nana_quic_handle h;
    if (nana_quic_connect(nc_rt_ep(c->rt), c->addr, c->port, c->server_name, NULL, 0, c, &h)) {
        /* Treated like a stalled attempt: the tick fails it at once. */
        c->closing_attempt = true;
        c->attempt_deadline = now;
        snprintf(c->fail_msg, sizeof(c->fail_msg), "cannot start a connection: %s", nana_errmsg());
        c->fail_status = NANA_CLIENT_ECONNECT;
        c->h = 0;
        return 0;
    }
    c->h = h;
    return 0;
}

/* The streams of timed-out calls, to reset so the server can drop them. */
typedef struct reset_req {
    nc_rt *rt;
    nana_quic_handle h;
    bool grpc; /* H3_REQUEST_CANCELLED (nghttp3 learns it from the transport) */
    size_t n;
    int64_t sids[];
} reset_req;

/* Posted by the tick: resets the streams (of a QUIC connection, or of an
 * HTTP/2 one when the handle says so); |arg| freed here. */
static void reset_post(nana_quic_conn *qc, void *arg)
{
    reset_req *r = arg;
    if (r->h & NC_H2_HANDLE_BIT) nch2_reset(r->rt, r->h, r->sids, r->n);
    for (size_t i = 0; qc && i < r->n; i++)
        nana_quic_stream_reset(qc, r->sids[i], r->grpc ? NANA_GRPC_H3_REQUEST_CANCELLED : 0);
    free(r);
}

uint64_t nc_client_tick(nana_client *c, uint64_t now)
{
    done_list done = {0};
    int64_t resets[64];
    size_t nresets = 0;
    bool post_abandon = false, post_fallback = false;
    pthread_mutex_lock(&c->mu);
    if (c->state == ST_CLOSED) {
        pthread_mutex_unlock(&c->mu);
        return UINT64_MAX;
    }
    uint64_t next = UINT64_MAX;
    /* Unsent calls that waited a whole connect timeout for a connection. */
    for (nc_call *call = c->queue.next, *nx; c->state != ST_READY && call != &c->queue; call = nx) {
        nx = call->next;
        if (!call->conn_deadline_ns) continue;
        if (call->conn_deadline_ns > now) {
            if (call->conn_deadline_ns < next) next = call->conn_deadline_ns;
            continue;
        }
        char msg[sizeof(c->last_fail_msg)];
        int st = NANA_CLIENT_ECONNECT;
        if (c->last_fail_msg[0]) {
            snprintf(msg, sizeof(msg), "%s", c->last_fail_msg);
            st = c->last_fail_status ? c->last_fail_status : st;
        } else {
            snprintf(msg, sizeof(msg), "no connection to %s:%u within %u ms", c->addr, c->port,
                     c->connect_timeout_ms);
        }
        finish(c, call, &done, st, msg);
    }
    /* Timeouts, sent and queued. */
    nc_call *lists[2] = {&c->sent, &c->queue};
    for (int l = 0; l < 2; l++) {
        for (nc_call *call = lists[l]->next, *nx; call != lists[l]; call = nx) {
            nx = call->next;
            if (call->deadline_ns > now) {
                if (call->deadline_ns < next) next = call->deadline_ns;
                continue;
            }
            if (call->sid >= 0 && nresets < sizeof(resets) / sizeof(resets[0]))
                resets[nresets++] = call->sid;
            char msg[128];
            snprintf(msg, sizeof(msg), "no reply within %u ms%s", call->timeout_ms,
                     call->sid >= 0 ? " (the call may still run on the server)" : "");
            finish(c, call, &done, NANA_CLIENT_ETIMEOUT, msg);
        }
    }
    if (c->state == ST_BACKOFF && now >= c->next_attempt && start_attempt(c, now))
        fail_list(c, &c->queue, &done, NANA_CLIENT_EBREAKER,
                  "the circuit breaker is open: no connection is attempted");
    if (c->state == ST_BACKOFF && c->next_attempt < next) next = c->next_attempt;
    if ((c->state == ST_CONNECTING || c->state == ST_AUTH) && now >= c->attempt_deadline &&
        !c->closing_attempt) {
        c->closing_attempt = true;
        post_abandon = true;
    } else if (c->closing_attempt && c->h == 0) {
        post_abandon = true; /* nana_quic_connect itself failed */
    }
    if (post_abandon) c->abandon_h = c->h;
    /* AUTO: no QUIC connection within fallback_ms: HTTP/2 takes over. */
    bool quic_wait = c->state == ST_CONNECTING && !c->on_h2 && c->fallback_at && !post_abandon &&
                     !c->closing_attempt;
    if (quic_wait && now >= c->fallback_at) {
        c->fallback_at = 0;
        post_fallback = true;
    } else if (quic_wait && c->fallback_at < next) {
        next = c->fallback_at;
    }
    if ((c->state == ST_CONNECTING || c->state == ST_AUTH) && c->attempt_deadline < next)
        next = c->attempt_deadline > now ? c->attempt_deadline : now + 1000000ull;
    c->next_ns = next;
    nana_quic_handle h = c->h;
    bool grpc = c->grpc;
    pthread_mutex_unlock(&c->mu);
    if (post_abandon && nc_rt_post(c->rt, h, abandon_post, c)) {
        pthread_mutex_lock(&c->mu);
        c->closing_attempt = c->h == 0; /* not posted: the next tick tries again */
        pthread_mutex_unlock(&c->mu);
    }
    if (nresets) {
        reset_req *r = malloc(sizeof(*r) + nresets * sizeof(int64_t));
        if (r) {
            *r = (reset_req){.rt = c->rt, .h = h, .grpc = grpc, .n = nresets};
            memcpy(r->sids, resets, nresets * sizeof(int64_t));
            if (nc_rt_post(c->rt, h, reset_post, r)) free(r);
        }
    }
    if (post_fallback && nc_rt_post(c->rt, h, fallback_post, c)) {
        pthread_mutex_lock(&c->mu);
        if (c->h == h && c->state == ST_CONNECTING) c->fallback_at = now; /* try again */
        pthread_mutex_unlock(&c->mu);
    }
    deliver(c, &done);
    return next;
}

/* ---- creation and teardown ----------------------------------------------------- */

/*
 * Reads the Ed25519 key at |path| into |key|. With |optional| a file that
 * does not exist is no error: key->have stays false and key->why says so.
 */
static int load_key(const char *path, bool optional, nc_key *key, nana_result *err)
{
    memset(key, 0, sizeof(*key));
    if (sodium_init() < 0) return nc_result_error(err, NANA_CLIENT_ENOMEM, "libsodium failed");
    int rc = nana_ed25519_read_private(path, key->sk);
    if (rc == NANA_ERR_NOTFOUND && optional) {
        snprintf(key->why, sizeof(key->why), "%s", nana_errmsg());
        return NANA_CLIENT_OK;
    }
    if (rc)
        return nc_result_error(err, NANA_CLIENT_EINVALID, "cannot use the private key: %s",
                               nana_errmsg());
    key->have = true;
    return NANA_CLIENT_OK;
}

int nc_resolve(const char *host, int family, char addr[INET6_ADDRSTRLEN], int *got,
               nana_result *err)
{
    struct addrinfo hints = {.ai_family = family, .ai_socktype = SOCK_DGRAM}, *res = NULL;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc || !res)
        return nc_result_error(err, NANA_CLIENT_ECONNECT, "cannot resolve '%s': %s", host,
                               gai_strerror(rc));
    const void *a = res->ai_family == AF_INET6
                        ? (const void *)&((const struct sockaddr_in6 *)res->ai_addr)->sin6_addr
                        : (const void *)&((const struct sockaddr_in *)res->ai_addr)->sin_addr;
    *got = res->ai_family;
    bool ok = inet_ntop(res->ai_family, a, addr, INET6_ADDRSTRLEN) != NULL;
    freeaddrinfo(res);
    if (!ok) return nc_result_error(err, NANA_CLIENT_ECONNECT, "cannot resolve '%s'", host);
    return NANA_CLIENT_OK;
}

unsigned nc_opt_ms(unsigned v, unsigned def)
{
    if (!v) return def;
    return v > NC_MAX_MS ? NC_MAX_MS : v;
}

int nc_load_key(const nana_client_opts *o, nc_key *key, nana_result *err)
{
    return load_key(o->key_file ? o->key_file : "nana_private.pem", o->cert_file != NULL, key, err);
}

int nc_load_target(const nana_client_opts *o, nc_key *key, char addr[INET6_ADDRSTRLEN], int *family,
                   nana_result *err)
{
    int rc = nc_load_key(o, key, err);
    if (!rc) rc = nc_resolve(o->host ? o->host : "127.0.0.1", AF_UNSPEC, addr, family, err);
    return rc;
}

void nana_client_opts_init(nana_client_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->host = "127.0.0.1";
    o->port = 4433;
    o->server_name = "localhost";
    o->key_file = "nana_private.pem";
    o->connect_timeout_ms = 10000;
    o->call_timeout_ms = 30000;
    o->reconnect_min_ms = 100;
    o->reconnect_max_ms = 5000;
    o->max_queued = 65536;
    o->max_reply_bytes = 64u << 20;
    o->idle_timeout_ms = 30000;
    o->transport = NANA_CLIENT_TRANSPORT_AUTO;
    o->fallback_ms = 1500;
}

/* A malloc'd copy of |s| (NULL stays NULL); *ok cleared on failure. */
static char *dup_opt(const char *s, bool *ok)
{
    if (!s) return NULL;
    char *d = strdup(s);
    if (!d) *ok = false;
    return d;
}

int nc_client_new(nc_rt *rt, const nana_client_opts *o, const char *addr, const nc_key *key,
                  const nc_pool_hooks *hooks, nana_client **out, nana_result *err)
{
    if (o->transport < NANA_CLIENT_TRANSPORT_AUTO || o->transport > NANA_CLIENT_TRANSPORT_H2)
        return nc_result_error(err, NANA_CLIENT_EINVALID,
                               "transport %d is not AUTO (0), QUIC (1) or H2 (2)", o->transport);
    nana_client *c = calloc(1, sizeof(*c));
    if (!c) return nc_result_error(err, NANA_CLIENT_ENOMEM, "out of memory");
    bool ok = true;
    c->rt = rt;
    if (hooks) {
        c->hooks = *hooks;
        c->has_hooks = true;
    }
    snprintf(c->addr, sizeof(c->addr), "%s", addr);
    c->port = o->port;
    c->server_name = dup_opt(o->server_name ? o->server_name : "localhost", &ok);
    c->account = dup_opt(o->account, &ok);
    c->proto_grpc = o->protocol == NANA_CLIENT_PROTO_GRPC;
    c->grpc = c->proto_grpc;
    c->transport = o->transport;
    c->grpc_only = c->proto_grpc || o->transport == NANA_CLIENT_TRANSPORT_H2;
    c->dual = !c->grpc_only && o->transport == NANA_CLIENT_TRANSPORT_AUTO;
    nana_client_opts d;
    nana_client_opts_init(&d);
    c->fallback_ms = nc_opt_ms(o->fallback_ms, d.fallback_ms);
    c->idle_timeout_ms = nc_opt_ms(o->idle_timeout_ms, d.idle_timeout_ms);
    c->connect_timeout_ms = nc_opt_ms(o->connect_timeout_ms, d.connect_timeout_ms);
    c->call_timeout_ms = nc_opt_ms(o->call_timeout_ms, d.call_timeout_ms);
    c->reconnect_min_ms = nc_opt_ms(o->reconnect_min_ms, d.reconnect_min_ms);
    c->reconnect_max_ms = nc_opt_ms(o->reconnect_max_ms, d.reconnect_max_ms);
    if (c->reconnect_max_ms < c->reconnect_min_ms) c->reconnect_max_ms = c->reconnect_min_ms;
    c->max_queued = o->max_queued ? o->max_queued : d.max_queued;
    c->max_reply_bytes = o->max_reply_bytes ? o->max_reply_bytes : d.max_reply_bytes;
    c->backoff_ms = c->reconnect_min_ms;
    c->key = *key;
    pthread_mutex_init(&c->mu, NULL);
    nana_cond_init_monotonic(&c->cv);
    list_init(&c->queue);
    list_init(&c->sent);
    nana_buf_init(&c->auth_buf, 0);
    c->created_ns = c->last_used_ns = nana_now_ns();
    c->next_ns = UINT64_MAX;
    c->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (!ok || c->efd < 0) {
        set_state(c, ST_CLOSED);
        nc_client_free(c);
        return nc_result_error(err, NANA_CLIENT_ENOMEM, "out of memory or file descriptors");
    }
    pthread_mutex_lock(&c->mu);
    start_attempt(c, nana_now_ns());
    pthread_mutex_unlock(&c->mu);
    if (nc_rt_add(rt, c)) {
        nc_client_free(c);
        return nc_result_error(err, NANA_CLIENT_ENOMEM, "out of memory");
    }
    nc_rt_wake(rt, c->attempt_deadline);
    *out = c;
    return NANA_CLIENT_OK;
}

void nc_client_free(nana_client *c)
{
    if (!c) return;
    done_list done = {0};
    pthread_mutex_lock(&c->mu);
    bool was_open = c->state != ST_CLOSED;
    set_state(c, ST_CLOSED);
    fail_list(c, &c->sent, &done, NANA_CLIENT_ECLOSED, "the client was closed");
    fail_list(c, &c->queue, &done, NANA_CLIENT_ECLOSED, "the client was closed");
    nana_quic_handle h = c->h;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    if (was_open) {
        nc_rt_remove(c->rt, c);
        /* Once this runs on the I/O thread, no callback will see |c| again. */
        detach_req d = {.grpc = c->proto_grpc, .rt = c->rt, .c = c};
        sem_init(&d.sem, 0, 0);
        if (nc_rt_post(c->rt, h, detach_post, &d) == 0) {
            while (sem_wait(&d.sem) && errno == EINTR) {
            }
        }
        sem_destroy(&d.sem);
    }
    deliver(c, &done);
    for (done_node *n = c->done_head, *nx; n; n = nx) {
        nx = n->next;
        nana_result_free(&n->r);
        free(n);
    }
    nc_sidmap_free(&c->map);
    nana_buf_free(&c->auth_buf);
    sodium_memzero(&c->key, sizeof(c->key));
    if (c->efd >= 0) close(c->efd);
    free(c->server_name);
    free(c->account);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c);
}

/* The outcome of the attempts so far (lock held): OK when READY, the first
 * failed attempt's error or ECLOSED in |err|, or -1 while none has ended. */
static int outcome_locked(nana_client *c, nana_result *err)
{
    if (c->state == ST_READY) return NANA_CLIENT_OK;
    if (c->attempts_failed)
        return nc_result_error(err, c->fail_status ? c->fail_status : NANA_CLIENT_ECONNECT, "%s",
                               c->fail_msg);
    if (c->state == ST_CLOSED)
        return nc_result_error(err, NANA_CLIENT_ECLOSED, "the client was closed");
    return -1;
}

int nc_client_wait_ready(nana_client *c, unsigned ms, nana_result *err)
{
    struct timespec ts = nana_timespec_at(nana_now_ns() + (uint64_t)ms * 1000000ull);
    pthread_mutex_lock(&c->mu);
    while (c->state != ST_READY && !c->attempts_failed && c->state != ST_CLOSED)
        if (pthread_cond_timedwait(&c->cv, &c->mu, &ts)) break;
    int rc = outcome_locked(c, err);
    if (rc < 0)
        rc = nc_result_error(err, NANA_CLIENT_ECONNECT,
                             "no authenticated connection to %s:%u within %u ms", c->addr, c->port,
                             ms);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int nc_client_outcome(nana_client *c, nana_result *err)
{
    pthread_mutex_lock(&c->mu);
    int rc = outcome_locked(c, err);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

void nc_client_info_get(nana_client *c, nc_client_info *out)
{
    pthread_mutex_lock(&c->mu);
    out->ready = c->state == ST_READY;
    out->connecting = c->state == ST_CONNECTING || c->state == ST_AUTH;
    out->pending = c->pending;
    out->created_ns = c->created_ns;
    out->last_used_ns = c->last_used_ns;
    out->failing_since_ns = c->state == ST_READY ? 0 : c->failing_since;
    pthread_mutex_unlock(&c->mu);
}

void nc_client_kick(nana_client *c)
{
    pthread_mutex_lock(&c->mu);
    if (c->state == ST_BACKOFF) c->next_attempt = 0;
    pthread_mutex_unlock(&c->mu);
    nc_rt_wake(c->rt, nana_now_ns());
}

/* ---- the public face ------------------------------------------------------------- */

int nana_client_connect(const nana_client_opts *o, nana_client **out, nana_result *err)
{
    nana_result tmp = {0};
    if (!err) err = &tmp;
    memset(err, 0, sizeof(*err));
    *out = NULL;
    nana_client_opts d;
    nana_client_opts_init(&d);
    if (!o) o = &d;
    nc_key key;
    char addr[INET6_ADDRSTRLEN];
    int family = AF_INET;
    nc_rt *rt = NULL;
    nana_client *c = NULL;
    int rc = nc_load_target(o, &key, addr, &family, err);
    if (!rc) rc = nc_rt_new(o, family, NULL, NULL, 0, &rt, err);
    if (!rc) rc = nc_client_new(rt, o, addr, &key, NULL, &c, err);
    sodium_memzero(&key, sizeof(key));
    if (!rc) rc = nc_client_wait_ready(c, c->connect_timeout_ms + 1000, err);
    if (rc) {
        nc_client_free(c);
        nc_rt_free(rt);
        nana_result_free(&tmp);
        return rc;
    }
    c->own_rt = true;
    *out = c;
    return NANA_CLIENT_OK;
}

void nana_client_close(nana_client *c)
{
    if (!c) return;
    nc_rt *rt = c->own_rt ? c->rt : NULL;
    nc_client_free(c);
    nc_rt_free(rt);
}

int nc_submit(nana_client *c, const nc_call_args *a, nana_client_done_fn done, void *ud,
              uint64_t token, nana_result *err)
{
    const nana_call_opts *co = a->co;
    nc_call *call = calloc(1, sizeof(*call));
    if (!call) return nc_result_error(err, NANA_CLIENT_ENOMEM, "out of memory");
    nana_buf_init(&call->frame, 0);
    nana_buf_init(&call->reply, 0);
    call->sid = -1;
    call->done = done;
    call->ud = ud;
    call->token = token;
    call->prev = call->next = call;
    call->kind = a->kind;
    call->grpc_status = -1;
    nana_buf_init(&call->gframe, 0);
    bool aql = a->kind == NC_AQL_QUERY || a->kind == NC_AQL_BATCH || a->kind == NC_AQL_STREAM;
    if (aql && !c->proto_grpc) {
        free(call);
        return nc_result_error(err, NANA_CLIENT_EINVALID,
                               "AQL calls are gRPC calls (protocol NANA_CLIENT_PROTO_GRPC)");
    }
    if (aql && co && co->db && *co->db && !(call->db = strdup(co->db))) {
        free(call);
        return nc_result_error(err, NANA_CLIENT_ENOMEM, "out of memory");
    }
    /* Once this client named a database, a call naming none says so: the
     * server would otherwise use the database its connection named last.
     * (A gRPC call always names its own: empty is the default.) */
    bool named = co && co->db;
    if (named) atomic_store(&c->named_db, true);
    bool default_db = !named && atomic_load(&c->named_db);
    int rc = c->grpc_only         ? ncg_build(&call->frame, a, err)
             : a->kind == NC_CALL ? nc_build_call_db(&call->frame, a->method, a->args, a->kwargs,
                                                     co, default_db, err)
                                  : nc_build_typed(&call->frame, a, default_db, err);
    /* Its twin for a fallback connection (JSON checked above), unless a
     * NanaSQLite connection over QUIC is up: the call goes there (were it
     * lost with the call still queued and the next connection HTTP/2, the
     * call fails with ECONNECT instead of costing every call a second
     * build). */
    if (!rc && c->dual && !atomic_load(&c->nana_ready)) {
        nc_call_args g = *a;
        g.json_checked = true;
        rc = ncg_build(&call->gframe, &g, err);
    }
    if (rc) {
        nana_buf_free(&call->frame);
        nana_buf_free(&call->gframe);
        free(call->db);
        free(call);
        return rc;
    }
    call->timeout_ms = co && co->timeout_ms ? co->timeout_ms : c->call_timeout_ms;
    uint64_t now = nana_now_ns();
    call->queued_ns = now;
    call->deadline_ns = now + (uint64_t)call->timeout_ms * 1000000ull;
    if (a->stream) { /* ends when its iterator closes it; its waits have the timeout */
        call->stream = a->stream;
        call->deadline_ns = UINT64_MAX;
    }
    pthread_mutex_lock(&c->mu);
    if (c->state == ST_CLOSED)
        rc = nc_result_error(err, NANA_CLIENT_ECLOSED, "the client is closed");
    else if (c->pending >= c->max_queued)
        rc = nc_result_error(err, NANA_CLIENT_EBUSY, "%u calls already pending (max_queued)",
                             c->pending);
    if (rc) {
        pthread_mutex_unlock(&c->mu);
        nana_buf_free(&call->frame);
        nana_buf_free(&call->gframe);
        free(call->db);
        free(call);
        return rc;
    }
    if (call->stream) ncs_set_call(call->stream, c, call, call->timeout_ms);
    list_add_tail(&c->queue, call);
    c->pending++;
    c->last_used_ns = now;
    if (c->state != ST_READY)
        call->conn_deadline_ns = now + (uint64_t)c->connect_timeout_ms * 1000000ull;
    uint64_t first = call->conn_deadline_ns && call->conn_deadline_ns < call->deadline_ns
                         ? call->conn_deadline_ns
                         : call->deadline_ns;
    bool wake = first < c->next_ns;
    if (wake) c->next_ns = first;
    bool post = c->state == ST_READY && !c->flush_posted;
    if (post) c->flush_posted = true;
    nana_quic_handle h = c->h;
    pthread_mutex_unlock(&c->mu);
    if (wake) nc_rt_wake(c->rt, first);
    if (post && nc_rt_post(c->rt, h, flush_post, c)) {
        pthread_mutex_lock(&c->mu);
        c->flush_posted = false;
        pthread_mutex_unlock(&c->mu);
    }
    return NANA_CLIENT_OK;
}

int nana_client_submit(nana_client *c, const char *method, const char *args_json,
                       const char *kwargs_json, const nana_call_opts *co, nana_client_done_fn done,
                       void *ud, uint64_t token)
{
    nana_result err = {0};
    nc_call_args a = {
        .target = c, .method = method, .args = args_json, .kwargs = kwargs_json, .co = co};
    int rc = nc_submit(c, &a, done, ud, token, &err);
    nana_result_free(&err);
    return rc;
}

/* A blocking call's rendezvous. */
typedef struct waiter {
    sem_t sem;
    nana_result *out;
} waiter;

static void wake_waiter(void *ud, nana_result *r)
{
    waiter *w = ud;
    *w->out = *r;
    sem_post(&w->sem);
}

int nc_blocking(nc_submit_fn submit, void *ctx, nana_result *out)
{
    memset(out, 0, sizeof(*out));
    waiter w = {.out = out};
    sem_init(&w.sem, 0, 0);
    if (submit(ctx, wake_waiter, &w, out) == NANA_CLIENT_OK) {
        while (sem_wait(&w.sem) && errno == EINTR) {
        }
    }
    sem_destroy(&w.sem);
    return out->status;
}

static int submit_client(void *ctx, nana_client_done_fn done, void *ud, nana_result *err)
{
    nc_call_args *a = ctx;
    return nc_submit(a->target, a, done, ud, 0, err);
}

int nana_client_call(nana_client *c, const char *method, const char *args_json,
                     const char *kwargs_json, const nana_call_opts *co, nana_result *out)
{
    nc_call_args a = {
        .target = c, .method = method, .args = args_json, .kwargs = kwargs_json, .co = co};
    return nc_blocking(submit_client, &a, out);
}

int nana_client_get(nana_client *c, const char *key, const nana_call_opts *co, nana_result *out)
{
    nc_call_args a = {.target = c, .kind = NC_GET, .key = key, .co = co};
    return nc_blocking(submit_client, &a, out);
}

int nana_client_set(nana_client *c, const char *key, const char *value_json,
                    const nana_call_opts *co, nana_result *out)
{
    nc_call_args a = {.target = c, .kind = NC_SET, .key = key, .value = value_json, .co = co};
    return nc_blocking(submit_client, &a, out);
}

int nana_client_delete(nana_client *c, const char *key, const nana_call_opts *co, nana_result *out)
{
    nc_call_args a = {.target = c, .kind = NC_DELETE, .key = key, .co = co};
    return nc_blocking(submit_client, &a, out);
}

int nana_client_health(nana_client *c, const char *service, const nana_call_opts *co,
                       nana_result *out)
{
    if (!c->proto_grpc) {
        memset(out, 0, sizeof(*out));
        return nc_result_error(out, NANA_CLIENT_EINVALID,
                               "health checks are a gRPC call (protocol NANA_CLIENT_PROTO_GRPC)");
    }
    nc_call_args a = {.target = c, .kind = NC_HEALTH, .key = service ? service : "", .co = co};
    return nc_blocking(submit_client, &a, out);
}

void nc_client_cancel_stream(nana_client *c, nc_stream *st)
{
    pthread_mutex_lock(&c->mu);
    nc_call *call = ncs_call(st);
    if (call) call->deadline_ns = 0;
    pthread_mutex_unlock(&c->mu);
    if (call) nc_rt_wake(c->rt, nana_now_ns());
}

int nana_client_completion_fd(nana_client *c)
{
    return c->efd;
}

int nana_client_next_done(nana_client *c, nana_result *out)
{
    pthread_mutex_lock(&c->mu);
    done_node *n = c->done_head;
    if (n) {
        c->done_head = n->next;
        if (!c->done_head) {
            c->done_tail = NULL;
            uint64_t v;
            ssize_t r = read(c->efd, &v, sizeof(v)); /* empty: not readable any more */
            (void)r;
        }
    }
    pthread_mutex_unlock(&c->mu);
    if (!n) return 0;
    *out = n->r;
    free(n);
    return 1;
}

unsigned nana_client_pending(nana_client *c)
{
    pthread_mutex_lock(&c->mu);
    unsigned n = c->pending;
    pthread_mutex_unlock(&c->mu);
    return n;
}

int nana_client_connected(nana_client *c)
{
    pthread_mutex_lock(&c->mu);
    int r = c->state == ST_READY;
    pthread_mutex_unlock(&c->mu);
    return r;
}

uint64_t nana_client_reconnects(nana_client *c)
{
    pthread_mutex_lock(&c->mu);
    uint64_t n = c->reconnects;
    pthread_mutex_unlock(&c->mu);
    return n;
}
