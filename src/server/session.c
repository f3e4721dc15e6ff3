/*
 * session.c - one client connection of the NanaSQLite door, on the QUIC
 * I/O thread that owns it.
 *
 * Each client-opened bidirectional stream carries one request frame (u32
 * big-endian length + msgpack) and gets one reply frame and FIN. A frame
 * that arrives whole in one piece (the common case) is handled straight
 * from the packet's bytes; only frames split across packets are buffered,
 * and those buffers are what the per-stream, per-connection and
 * before-authentication limits bound.
 *
 * Authentication comes first (AUTH_START, challenge, signed response).
 * After it, a call is checked against the method table and the account,
 * answered from the cache when it can be, queued to the store's writer
 * when it is a plain set, and otherwise handed to the worker pool with a
 * deadline. Replies are sent without a copy and counted until the peer
 * acknowledged them, which is what the graceful stop waits for.
 */
#include "server/server_int.h"

#include "auth/nana_challenge.h"
#include "util/nana_log.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * A response without an account name is checked against every key; past
 * this many accounts the client must name its account (each check costs
 * one Ed25519 verification on the I/O thread).
 */
#define MAX_UNNAMED_KEYS 64

/* The stream error code of a reply that could not be sent (too large, say). */
#define APP_REPLY_FAILED 0x102

/* The connection error code when replies waited unread too long (reply_stall_ms). */
#define APP_READER_STALLED 0x103

/* Frames up to this size are never refused by the server-wide budget of
 * unfinished request bytes (max_buffered_bytes): small calls go on. */
#define SMALL_FRAME ((size_t)64 * 1024)

/* The longest database name a connection remembers (as dbs.c allows). */
#define MAX_STICKY_DB 128

/* A stream whose frame came in pieces. */
typedef struct pstream {
    int64_t sid;
    nana_buf buf;
    bool done;         /* answered; waiting only for the peer's FIN */
    size_t reserved;   /* bytes held in the connection's and the server's budgets */
    uint64_t first_ns; /* when its first byte came */
    uint64_t last_ns;  /* when its last byte came */
    struct pstream *next;
} pstream;

typedef struct session {
    nana_server *srv;
    nana_quic_handle h;
    struct sockaddr_storage addr;
    socklen_t alen;
    char peer[INET6_ADDRSTRLEN + 8];
    bool authed;
    nana_challenge ch;
    nana_accounts *snap; /* the accounts the session authenticated against */
    uint64_t gen;
    const nana_account *acct; /* in snap */
    uint8_t pk[32];           /* the key that authenticated */
    char name[72];
    nana_rate *rate;
    pstream *partial;
    unsigned npartial;
    size_t buffered; /* bytes reserved by this connection's unfinished requests */
    uint64_t calls;
    nana_buf scratch;  /* where cached replies are built; kept between calls */
    uint64_t timer_at; /* when the connection's timer is set for (UINT64_MAX: not set) */
    /* replies nobody reads (reply_stall_ms): watched while any are held */
    bool stall_watch;
    uint64_t last_acked;  /* acknowledged bytes at the last look */
    uint64_t progress_ns; /* when they last moved */
    /* the database the last call named, used by calls that name none */
    char sticky_db[MAX_STICKY_DB + 1];
    uint32_t sticky_len;
} session;

/* A reply buffer: this header, then the frame. Freed when acknowledged. */
typedef struct reply_hdr {
    nana_server *srv;
    size_t len;
} reply_hdr;

/* A call handed to a worker or the store's writer. */
typedef struct srv_job {
    nana_job base; /* first: the pool sees only this */
    nana_server *srv;
    nana_quic_handle h;
    int64_t sid;
    uint8_t *msg; /* the request's msgpack (owned) */
    size_t len;
    nana_call call; /* points into msg */
    nana_accounts *snap;
    const nana_account *acct;
    nana_table *table; /* the async-set path */
    nana_buf reply;
    bool ok_set; /* the async set committed: the reply is set_ok_frame */
} srv_job;

/* The reply to a committed __setitem__: {"status": "success", "result": None}. */
static const uint8_t set_ok_frame[] = {0x00, 0x00, 0x00, 0x18, 0x82, 0xa6, 's', 't', 'a', 't',
                                       'u',  's',  0xa7, 's',  'u',  'c',  'c', 'e', 's', 's',
                                       0xa6, 'r',  'e',  's',  'u',  'l',  't', 0xc0};

static void addr_text(const struct sockaddr_storage *a, char *out, size_t n)
{
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)a;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        port = ntohs(in->sin_port);
        snprintf(out, n, "%s:%u", host, port);
    } else {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)a;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        port = ntohs(in6->sin6_port);
        snprintf(out, n, "[%s]:%u", host, port);
    }
}

/* ---- sending -------------------------------------------------------------- */

static void rearm(session *ss, nana_quic_conn *c);

/*
 * Whether a reply of |len| bytes must be held back: the connection already
 * holds replies its client has not read and this one would take them past
 * max_unread_reply_bytes (a reply alone may be larger). Then |msg| says so.
 */
static bool unread_over(nana_server *srv, nana_quic_conn *c, size_t len, char *msg, size_t cap)
{
    uint64_t held, acked;
    nana_quic_conn_send_state(c, &held, &acked);
    if (!held || held + len <= srv->o.max_unread_reply_bytes) return false;
    atomic_fetch_add(&srv->st_unread, 1);
    snprintf(msg, cap,
             "Reply of %zu bytes held back: %llu bytes of earlier replies on this connection are "
             "still unread (limit %zu); read them, then call again",
             len, (unsigned long long)held, srv->o.max_unread_reply_bytes);
    return true;
}

/* Starts watching the connection's unread replies once it holds some: a
 * client that stops reading is closed after reply_stall_ms (on_timer). */
static void watch_replies(session *ss, nana_quic_conn *c)
{
    if (ss->stall_watch) return;
    uint64_t held, acked;
    nana_quic_conn_send_state(c, &held, &acked);
    if (!held) return;
    ss->stall_watch = true;
    ss->last_acked = acked;
    ss->progress_ns = nana_quic_conn_now(c);
    rearm(ss, c);
}

static void reply_release(void *ctx)
{
    reply_hdr *r = ctx;
    atomic_fetch_sub(&r->srv->pending, 1);
    free(r);
}

/*
 * Sends the frame built in |b| (after a reply_hdr reserved at its start) on
 * |sid| with FIN, handing the buffer to the stream. The call was counted in
 * pending by the caller; this uncounts it when the peer has it (or never will).
 */
static void send_built(nana_server *srv, nana_quic_conn *c, int64_t sid, nana_buf *b)
{
    size_t len = 0;
    char *data = nana_buf_detach(b, &len);
    if (!data) {
        atomic_fetch_sub(&srv->pending, 1);
        return;
    }
    reply_hdr *r = (reply_hdr *)(void *)data;
    r->srv = srv;
    r->len = len - sizeof(reply_hdr);
    if (nana_quic_stream_send_ref(c, sid, data + sizeof(reply_hdr), r->len, 1, reply_release, r)) {
        reply_release(r);
        (void)nana_quic_stream_reset(c, sid, APP_REPLY_FAILED); /* never leave the caller waiting */
    }
}

/* Empties |b| (keeping its allocation) and reserves its reply header,
 * with room for a typical reply, so that building one costs at most one
 * allocation, not a malloc and then reallocs as it grows. */
static int reply_restart(nana_buf *b)
{
    nana_buf_reset(b);
    static const reply_hdr zero;
    int rc = nana_buf_reserve(b, 256);
    return rc ? rc : nana_buf_append(b, &zero, sizeof(zero));
}

/* Starts a new reply buffer (see reply_restart). */
static int reply_buf(nana_buf *b)
{
    nana_buf_init(b, 0);
    return reply_restart(b);
}

/* Releases one counted reply whose bytes the stream copied. */
static void copied_release(void *ctx)
{
    nana_server *srv = ctx;
    atomic_fetch_sub(&srv->pending, 1);
}

/* Replies up to this size are copied into the stream (kept objects of the
 * I/O thread) and the session's buffer is used again; larger ones hand the
 * buffer itself to the stream, as send_built does. */
#define REPLY_COPY_MAX 4096

/*
 * Sends the frame built in the session's scratch buffer (after a reply_hdr
 * reserved at its start, see reply_buf) on |sid| with FIN; the call was
 * counted in pending by the caller. A cached read on a warm server then
 * allocates nothing.
 */
static void send_scratch(session *ss, nana_quic_conn *c, int64_t sid)
{
    nana_buf *b = &ss->scratch;
    size_t flen = b->len - sizeof(reply_hdr);
    char why[256];
    if (unread_over(ss->srv, c, flen, why, sizeof(why))) {
        if (reply_restart(b) || nana_reply_error(b, "RuntimeError", why, "unread")) {
            copied_release(ss->srv);
            (void)nana_quic_stream_reset(c, sid, APP_REPLY_FAILED);
            return;
        }
        flen = b->len - sizeof(reply_hdr);
    }
    if (flen > REPLY_COPY_MAX) {
        send_built(ss->srv, c, sid, b); /* the buffer goes with the reply */
        nana_buf_init(b, 0);
        watch_replies(ss, c);
        return;
    }
    if (nana_quic_stream_send_copy(c, sid, b->data + sizeof(reply_hdr), flen, 1, copied_release,
                                   ss->srv)) {
        copied_release(ss->srv);
        (void)nana_quic_stream_reset(c, sid, APP_REPLY_FAILED); /* never leave the caller waiting */
        return;
    }
    if (!ss->stall_watch) watch_replies(ss, c);
}

/* Builds and sends one immediate reply with |build| and its arguments. */
#define REPLY(srv, c, sid, call)                                                                   \
    do {                                                                                           \
        nana_buf b_;                                                                               \
        atomic_fetch_add(&(srv)->pending, 1);                                                      \
        int rc_ = reply_buf(&b_);                                                                  \
        if (!rc_) rc_ = call;                                                                      \
        if (!rc_)                                                                                  \
            send_built((srv), (c), (sid), &b_);                                                    \
        else {                                                                                     \
            nana_buf_free(&b_);                                                                    \
            atomic_fetch_sub(&(srv)->pending, 1);                                                  \
        }                                                                                          \
    } while (0)

/* Answers a call error |rc| (detail in nana_errmsg) at once. */
static void reply_rc(nana_server *srv, nana_quic_conn *c, int64_t sid, int rc)
{
    char msg[NANA_ERRMSG_MAX];
    snprintf(msg, sizeof(msg), "%s", nana_errmsg());
    bool expected;
    (void)nana_error_type(rc, &expected);
    if (!expected) nana_log(NANA_LOG_ERROR, "unexpected error %s: %s", nana_strerror(rc), msg);
    REPLY(srv, c, sid, nana_reply_from_rc(&b_, rc, msg));
}

/* ---- jobs ------------------------------------------------------------------- */

static void job_free(srv_job *j)
{
    nana_buf_free(&j->reply);
    nana_accounts_unref(j->snap);
    free(j->msg);
    free(j);
}

/* Releases a job's reply once the peer has it (I/O thread). */
static void job_release(void *ctx)
{
    srv_job *j = ctx;
    atomic_fetch_sub(&j->srv->pending, 1);
    job_free(j);
}

/* On the connection's I/O thread: sends the job's reply. */
static void job_deliver(nana_quic_conn *c, void *arg)
{
    srv_job *j = arg;
    session *ss = c ? nana_quic_conn_get_data(c) : NULL;
    char why[256];
    if (ss && !j->ok_set && unread_over(j->srv, c, j->reply.len, why, sizeof(why))) {
        nana_buf_free(&j->reply); /* the large reply goes now, not when acknowledged */
        nana_buf_init(&j->reply, 0);
        if (nana_reply_error(&j->reply, "RuntimeError", why, "unread")) nana_buf_free(&j->reply);
    }
    const void *data = j->ok_set ? (const void *)set_ok_frame : (const void *)j->reply.data;
    size_t len = j->ok_set ? sizeof(set_ok_frame) : j->reply.len;
    if (c && !nana_quic_stream_send_ref(c, j->sid, data, len, 1, job_release, j)) {
        if (ss && !j->ok_set) watch_replies(ss, c);
        return;
    }
    if (c) (void)nana_quic_stream_reset(c, j->sid, APP_REPLY_FAILED); /* never leave it waiting */
    job_release(j);
}

/* Hands a finished job's reply to its I/O thread (any thread). */
static void job_post(srv_job *j)
{
    for (int tries = 0; tries < 1000; tries++) {
        int rc = nana_quic_post(j->srv->ep, j->h, job_deliver, j);
        if (rc == 0) return;
        if (rc != NANA_ERR_BUSY) break;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    job_release(j);
}

/* The reply is ready: send it, unless the deadline thread answered already. */
static void job_finished(srv_job *j)
{
    atomic_fetch_add(&j->srv->st_calls, 1);
    if (nana_work_finish(j->srv->work, &j->base))
        job_post(j);
    else
        job_release(j); /* the timeout reply went out; this one is dropped */
}

/* Deadline thread: answer with a timeout (and free the job if it never ran). */
static void job_expire(nana_job *base, bool cancelled)
{
    srv_job *j = (srv_job *)base;
    nana_server *srv = j->srv;
    atomic_fetch_add(&srv->st_timeouts, 1);
    /* The timeout reply is its own job-less reply; the job keeps its count. */
    srv_job *t = calloc(1, sizeof(*t));
    if (t) {
        t->srv = srv;
        t->h = j->h;
        t->sid = j->sid;
        nana_buf_init(&t->reply, 0);
        char msg[96];
        snprintf(msg, sizeof(msg), "Call timed out after %u ms", srv->o.call_timeout_ms);
        atomic_fetch_add(&srv->pending, 1);
        if (nana_reply_error(&t->reply, "RuntimeError", msg, "timeout"))
            job_release(t);
        else
            job_post(t);
    }
    if (cancelled) job_release(j);
}

/* Worker: runs the call against the store and builds its reply. */
static void job_run(nana_job *base)
{
    srv_job *j = (srv_job *)base;
    nana_server *srv = j->srv;
    if (srv->o.worker_delay_ms > 0) {
        struct timespec ts = {srv->o.worker_delay_ms / 1000,
                              (long)(srv->o.worker_delay_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    nana_store *st = NULL;
    nana_table *t = NULL;
    const char *dbname =
        j->call.db ? NULL : nana_dbs_default_name(srv->dbs); /* set below for named dbs */
    char dbn[136];
    if (j->call.db) {
        snprintf(dbn, sizeof(dbn), "%.*s", (int)(j->call.dblen > 128 ? 128 : j->call.dblen),
                 j->call.db);
        dbname = dbn;
    }
    int rc = nana_dbs_get(srv->dbs, j->call.db, j->call.dblen, &st);
    if (!rc && (nana_method_flags(j->call.m) & NANA_M_DICT)) {
        if (!j->call.table) {
            t = nana_store_default_table(st);
        } else {
            char tn[NANA_MAX_TABLE_NAME + 2];
            if (j->call.tlen > NANA_MAX_TABLE_NAME)
                rc = nana_err_set(NANA_ERR_VALIDATION, "Invalid table name: longer than %d",
                                  NANA_MAX_TABLE_NAME);
            else {
                snprintf(tn, sizeof(tn), "%.*s", (int)j->call.tlen, j->call.table);
                /* Refused tables and read-only callers never create a table. */
                if (j->acct && !nana_account_table_allowed(j->acct, dbname, tn))
                    rc = nana_err_set(NANA_ERR_PERM, "Table '%s' is not allowed for account '%s'",
                                      tn, j->acct->name);
                else if (!(t = nana_store_table_find(st, tn)) && j->acct && j->acct->read_only &&
                         nana_sql_table_exists(st, tn) != 1)
                    rc = nana_err_set(NANA_ERR_DB, "no such table: %s", tn);
                else if (!t)
                    rc = nana_store_table(st, tn, NULL, &t);
            }
        }
    }
    if (!rc) {
        nana_run_env env = {.store = st,
                            .table = t,
                            .acct = j->acct,
                            .dbname = dbname,
                            .backup_dir = nana_dbs_backup_dir(srv->dbs)};
        rc = nana_call_run(&j->call, &env, &j->reply);
        if (rc) {
            nana_log(NANA_LOG_ERROR, "call '%s' failed unexpectedly: %s: %s",
                     nana_method_name(j->call.m), nana_strerror(rc), nana_errmsg());
            nana_buf_free(&j->reply);
            rc = nana_reply_internal(&j->reply);
        }
    } else {
        char msg[NANA_ERRMSG_MAX];
        snprintf(msg, sizeof(msg), "%s", nana_errmsg());
        rc = nana_reply_from_rc(&j->reply, rc, msg);
    }
    if (rc) nana_buf_free(&j->reply); /* out of memory: an empty reply still ends the stream */
    job_finished(j);
}

/* Store writer thread: an asynchronous set committed or failed. */
static void job_set_done(void *arg, int rc, const char *errmsg)
{
    srv_job *j = arg;
    if (rc == 0) {
        j->ok_set = true; /* a constant frame: nothing to build on the writer's thread */
    } else if (nana_reply_from_rc(&j->reply, rc, errmsg ? errmsg : "")) {
        nana_buf_free(&j->reply);
    }
    job_finished(j);
}

/* Builds a job for the call in |msg| (NULL: a job that never runs on a
 * worker, like an async set, and needs no copy of its request); NULL when
 * out of memory. */
static srv_job *job_new(session *ss, int64_t sid, const uint8_t *msg, size_t len,
                        const nana_call *call)
{
    srv_job *j = calloc(1, sizeof(*j));
    if (!j) return NULL;
    if (msg) {
        /* A database name remembered by the connection (not in |msg|) is
         * copied after the request. */
        bool own_db =
            call->db && ((const uint8_t *)call->db < msg || (const uint8_t *)call->db >= msg + len);
        size_t extra = own_db ? call->dblen : 0;
        j->msg = malloc(len + extra + 1);
        if (!j->msg) {
            free(j);
            return NULL;
        }
        memcpy(j->msg, msg, len);
        j->len = len;
        j->call = *call;
        const char *db = call->db;
        j->call.db = NULL;
        nana_call_rebase(&j->call, msg, j->msg); /* point into the copy the job owns */
        if (own_db) {
            memcpy(j->msg + len, db, extra);
            j->call.db = (const char *)j->msg + len;
        } else if (db) {
            j->call.db = (const char *)j->msg + ((const uint8_t *)db - msg);
        }
    }
    j->srv = ss->srv;
    j->h = ss->h;
    j->sid = sid;
    j->snap = nana_accounts_ref(ss->snap);
    j->acct = ss->acct;
    j->base.run = job_run;
    j->base.expire = job_expire;
    j->base.deadline = nana_now_ns() + (uint64_t)ss->srv->o.call_timeout_ms * 1000000ull;
    nana_buf_init(&j->reply, 0);
    return j;
}

/* ---- authentication --------------------------------------------------------- */

static void auth_start(session *ss, nana_quic_conn *c, int64_t sid)
{
    nana_server *srv = ss->srv;
    uint64_t now = nana_now_ns();
    if (!srv->o.no_bans && nana_ban_check(srv->ban, (struct sockaddr *)&ss->addr, now)) {
        REPLY(srv, c, sid, nana_reply_str(&b_, "AUTH_BANNED"));
        return;
    }
    nana_challenge_issue(&ss->ch, now, (uint64_t)srv->o.challenge_ttl_ms * 1000000ull);
    REPLY(srv, c, sid, nana_reply_challenge(&b_, ss->ch.bytes, sizeof(ss->ch.bytes)));
}

/* A parsed answer to a challenge. */
typedef struct auth_resp {
    const uint8_t *sig;
    uint32_t siglen;
    const char *acct; /* NULL: no account name given */
    uint32_t acctlen;
} auth_resp;

enum { RESP_NONE, RESP_BAD, RESP_OK };

/*
 * Reads {"type": "response", "data": bin, "account": str?} in one pass:
 * RESP_NONE when |msg| is not a map whose "type" is "response" (the
 * Unauthorized reply), RESP_BAD for a response of the wrong shape (a failed
 * authentication), RESP_OK with the fields in *out.
 */
static int read_response(const uint8_t *msg, size_t len, auth_resp *out)
{
    nana_mp_reader r;
    nana_mp_item it, k, v;
    nana_mp_reader_init(&r, msg, len);
    memset(out, 0, sizeof(*out));
    bool is_response = false, bad = false;
    if (nana_mp_read(&r, &it) || it.type != NANA_MP_MAP || it.v.count > 8) return RESP_NONE;
    for (uint32_t i = 0; i < it.v.count && !bad; i++) {
        nana_mp_reader at;
        if (nana_mp_read(&r, &k) || k.type != NANA_MP_STR || (at = r, nana_mp_read(&r, &v))) {
            bad = true;
        } else if (k.v.s.n == 4 && !memcmp(k.v.s.p, "type", 4)) {
            is_response = v.type == NANA_MP_STR && v.v.s.n == 8 && !memcmp(v.v.s.p, "response", 8);
        } else if (k.v.s.n == 4 && !memcmp(k.v.s.p, "data", 4)) {
            bad = v.type != NANA_MP_BIN;
            out->sig = v.v.s.p;
            out->siglen = v.v.s.n;
        } else if (k.v.s.n == 7 && !memcmp(k.v.s.p, "account", 7)) {
            bad = v.type != NANA_MP_STR && v.type != NANA_MP_NIL;
            if (v.type == NANA_MP_STR) {
                out->acct = (const char *)v.v.s.p;
                out->acctlen = v.v.s.n;
            }
        } else {
            r = at;
            bad = nana_mp_skip(&r, 8) != 0;
        }
    }
    if (!is_response) return RESP_NONE;
    return bad || !out->sig || nana_mp_left(&r) ? RESP_BAD : RESP_OK;
}

/* Checks an answer to the challenge (|shape| from read_response) and replies. */
static void auth_response(session *ss, nana_quic_conn *c, int64_t sid, int shape,
                          const auth_resp *resp)
{
    nana_server *srv = ss->srv;
    const struct sockaddr *sa = (const struct sockaddr *)&ss->addr;
    uint64_t now = nana_now_ns();
    if (!srv->o.no_bans && nana_ban_check(srv->ban, sa, now)) {
        REPLY(srv, c, sid, nana_reply_str(&b_, "AUTH_BANNED"));
        return;
    }
    const uint8_t *sig = resp->sig;
    uint32_t siglen = resp->siglen;
    const char *why = NULL;
    uint64_t gen;
    nana_accounts *snap = nana_server_accounts(srv, &gen);
    const nana_account *a = NULL;
    if (!snap) {
        why = "no accounts";
    } else if (shape != RESP_OK) {
        static const uint8_t no_key[32];
        why = "malformed response";
        (void)nana_challenge_verify(&ss->ch, no_key, 0, no_key, now); /* consumes the challenge */
    } else if (resp->acct) {
        static const uint8_t no_key[32];
        a = nana_accounts_find(snap, resp->acct, resp->acctlen);
        if (!a) why = "unknown account";
        /* Verified (and the challenge consumed) even for an unknown name. */
        if (nana_challenge_verify(&ss->ch, sig, siglen, a ? a->public_key : no_key, now) && !why)
            why = "bad signature or no live challenge";
    } else if (nana_accounts_count(snap) > MAX_UNNAMED_KEYS) {
        static const uint8_t no_key[32];
        (void)nana_challenge_verify(&ss->ch, no_key, 0, no_key, now); /* consumes the challenge */
        why = "no account name given and too many accounts to try every key";
    } else {
        unsigned which = 0;
        size_t n = nana_accounts_count(snap);
        if (nana_challenge_verify_any(&ss->ch, sig, siglen, nana_accounts_keys(snap), (unsigned)n,
                                      &which, now))
            why = "bad signature or no live challenge";
        else
            a = nana_accounts_at(snap, which);
    }
    if (!why && !nana_account_ip_allowed(a, sa)) why = "address not allowed for the account";
    if (why) {
        atomic_fetch_add(&srv->st_auth_failed, 1);
        nana_accounts_unref(snap);
        bool banned = !srv->o.no_bans && nana_ban_failure(srv->ban, sa, now);
        nana_log(NANA_LOG_WARN, "conn %llu auth failed from %s: %s", (unsigned long long)ss->h,
                 ss->peer, why);
        if (banned) {
            atomic_fetch_add(&srv->st_bans, 1);
            nana_log(NANA_LOG_WARN, "%s banned for %u s after %u failed authentications", ss->peer,
                     srv->o.ban_seconds, srv->o.ban_failures);
        }
        REPLY(srv, c, sid, nana_reply_str(&b_, banned ? "AUTH_BANNED" : "AUTH_FAILED"));
        return;
    }
    if (!srv->o.no_bans) nana_ban_success(srv->ban, sa);
    nana_accounts_unref(ss->snap);
    ss->snap = snap;
    ss->gen = gen;
    ss->acct = a;
    memcpy(ss->pk, a->public_key, 32);
    snprintf(ss->name, sizeof(ss->name), "%s", a->name);
    ss->rate = nana_server_rate(srv, a->name);
    ss->authed = true;
    /* Logged in: no longer one of the connections that may be closed for others. */
    if (nana_quic_conn_trust(c)) {
        ss->authed = false;
        nana_accounts_unref(ss->snap);
        ss->snap = NULL;
        ss->acct = NULL;
        REPLY(srv, c, sid, nana_reply_str(&b_, "AUTH_FAILED"));
        return;
    }
    atomic_fetch_add(&srv->st_auth_ok, 1);
    nana_log(NANA_LOG_INFO, "conn %llu auth ok: account '%s' from %s", (unsigned long long)ss->h,
             a->name, ss->peer);
    REPLY(srv, c, sid, nana_reply_str(&b_, "AUTH_OK"));
}

/*
 * After an accounts reload: finds the session's account again. False when it
 * is gone, its key changed, or its address is no longer allowed.
 */
static bool refresh_account(session *ss)
{
    uint64_t gen = nana_server_accounts_gen(ss->srv);
    if (gen == ss->gen) return true;
    nana_accounts *snap = nana_server_accounts(ss->srv, &gen);
    const nana_account *a = snap ? nana_accounts_find(snap, ss->name, strlen(ss->name)) : NULL;
    if (!a || memcmp(a->public_key, ss->pk, 32) != 0 ||
        !nana_account_ip_allowed(a, (const struct sockaddr *)&ss->addr)) {
        nana_accounts_unref(snap);
        return false;
    }
    nana_accounts_unref(ss->snap);
    ss->snap = snap;
    ss->gen = gen;
    ss->acct = a;
    return true;
}

/* ---- calls -------------------------------------------------------------------- */

/*
 * The async-set path: __setitem__(key, value) on an open table is queued
 * to the store's writer from here, and answered when its group commits.
 * Returns true when it took the call.
 */
static bool try_async_set(session *ss, int64_t sid, const nana_call *call, nana_table *t)
{
    if (call->nargs != 2 || call->nkwargs) return false;
    nana_mp_reader r = call->args;
    nana_mp_item k;
    if (nana_mp_read(&r, &k) || k.type != NANA_MP_STR) return false;
    nana_buf val;
    nana_buf_init(&val, 0);
    if (nana_mp_to_json(&r, &val, NANA_VALUE_MAX_DEPTH)) {
        nana_buf_free(&val);
        return false; /* the worker reports the error in full */
    }
    srv_job *j = job_new(ss, sid, NULL, 0, NULL);
    if (!j) {
        nana_buf_free(&val);
        return false;
    }
    j->table = t;
    nana_work_track(ss->srv->work, &j->base);
    int rc = nana_kv_set_async(t, (const char *)k.v.s.p, k.v.s.n, val.data ? val.data : "", val.len,
                               job_set_done, j);
    nana_buf_free(&val);
    if (rc) {
        /* Not queued (busy, bad key...): answer through the same path. */
        char msg2[NANA_ERRMSG_MAX];
        snprintf(msg2, sizeof(msg2), "%s", nana_errmsg());
        job_set_done(j, rc, msg2);
    }
    return true;
}

static void handle_call(session *ss, nana_quic_conn *c, int64_t sid, const uint8_t *msg, size_t len)
{
    nana_server *srv = ss->srv;
    if (atomic_load(&srv->draining)) {
        REPLY(srv, c, sid,
              nana_reply_error(&b_, "RuntimeError", "Server is shutting down", "shutdown"));
        return;
    }
    if (!refresh_account(ss)) {
        nana_log(NANA_LOG_INFO, "conn %llu: account '%s' was removed or changed; session ended",
                 (unsigned long long)ss->h, ss->name);
        ss->authed = false;
        ss->acct = NULL;
        REPLY(srv, c, sid,
              nana_reply_error(&b_, "PermissionError",
                               "Account no longer valid: authenticate again", NULL));
        return;
    }
    nana_call call;
    int rc = nana_call_parse(msg, len, &call);
    if (rc) {
        reply_rc(srv, c, sid, rc);
        return;
    }
    /* A call that names no database uses the one the connection last named. */
    bool named_db = call.db != NULL;
    if (call.db_nil) ss->sticky_len = 0; /* "db": nil names the default database */
    if (!named_db && ss->sticky_len) {
        call.db = ss->sticky_db;
        call.dblen = ss->sticky_len;
    }
    char dbn[136];
    const char *dbname = nana_dbs_default_name(srv->dbs);
    if (call.db) {
        snprintf(dbn, sizeof(dbn), "%.*s", (int)(call.dblen > 128 ? 128 : call.dblen), call.db);
        dbname = dbn;
    }
    if ((rc = nana_call_allowed(&call, ss->acct, dbname))) {
        reply_rc(srv, c, sid, rc);
        return;
    }
    /* Remembered once it passed the policy and the name's form, as the
     * Python server remembers a name only after checking it. */
    if (named_db && call.dblen <= MAX_STICKY_DB && !nana_dbs_check_name(call.db, call.dblen)) {
        memcpy(ss->sticky_db, call.db, call.dblen);
        ss->sticky_db[call.dblen] = 0;
        ss->sticky_len = call.dblen;
    }
    double limit =
        ss->acct->max_calls_per_sec > 0 ? ss->acct->max_calls_per_sec : srv->o.calls_per_sec;
    if (ss->rate && !nana_rate_take(ss->rate, limit, nana_now_ns())) {
        atomic_fetch_add(&srv->st_rate, 1);
        char m[128];
        snprintf(m, sizeof(m), "Rate limit exceeded: %.0f calls/s for account '%s'", limit,
                 ss->name);
        REPLY(srv, c, sid, nana_reply_error(&b_, "RuntimeError", m, "rate_limited"));
        return;
    }
    ss->calls++;
    /* Fast paths need the store and table already open (never block here). */
    unsigned fl = nana_method_flags(call.m);
    nana_store *st = (fl & NANA_M_DICT) ? nana_dbs_peek(srv->dbs, call.db, call.dblen) : NULL;
    nana_table *t = NULL;
    if (st && !call.table)
        t = nana_store_default_table(st);
    else if (st && call.tlen <= NANA_MAX_TABLE_NAME) {
        char tn[NANA_MAX_TABLE_NAME + 1];
        snprintf(tn, sizeof(tn), "%.*s", (int)call.tlen, call.table);
        t = nana_store_table_find(st, tn);
    }
    if (t && !nana_account_table_allowed(ss->acct, dbname, nana_table_name(t))) t = NULL;
    if (t && (fl & NANA_M_CACHED)) {
        atomic_fetch_add(&srv->pending, 1);
        int hit = reply_restart(&ss->scratch) ? -1 : nana_call_try_cached(&call, t, &ss->scratch);
        if (hit == 1) {
            atomic_fetch_add(&srv->st_cache, 1);
            atomic_fetch_add(&srv->st_calls, 1);
            send_scratch(ss, c, sid);
            return;
        }
        atomic_fetch_sub(&srv->pending, 1);
    }
    atomic_fetch_add(&srv->pending, 1);
    if (t && !strcmp(nana_method_name(call.m), "__setitem__") && try_async_set(ss, sid, &call, t))
        return;
    srv_job *j = job_new(ss, sid, msg, len, &call);
    if (!j) {
        atomic_fetch_sub(&srv->pending, 1);
        reply_rc(srv, c, sid, nana_err_set(NANA_ERR_NOMEM, "out of memory"));
        return;
    }
    if ((rc = nana_work_submit(srv->work, &j->base))) {
        if (rc == NANA_ERR_BUSY) atomic_fetch_add(&srv->st_busy, 1);
        char m[NANA_ERRMSG_MAX];
        snprintf(m, sizeof(m), "%s", nana_errmsg());
        int wrc = nana_reply_error(&j->reply, "RuntimeError", m,
                                   rc == NANA_ERR_BUSY ? "busy" : "shutdown");
        if (wrc) nana_buf_free(&j->reply);
        job_deliver(c, j);
    }
}

/* One whole request frame's msgpack (I/O thread). */
static void handle_frame(session *ss, nana_quic_conn *c, int64_t sid, const uint8_t *msg,
                         size_t len)
{
    nana_server *srv = ss->srv;
    if (nana_mp_is_str(msg, len, "AUTH_START")) {
        if (ss->authed)
            REPLY(srv, c, sid, nana_reply_status_error(&b_, "Already authenticated"));
        else
            auth_start(ss, c, sid);
        return;
    }
    if (!ss->authed) {
        auth_resp resp;
        int shape = read_response(msg, len, &resp);
        if (shape != RESP_NONE)
            auth_response(ss, c, sid, shape, &resp);
        else
            REPLY(srv, c, sid,
                  nana_reply_status_error(&b_, "Unauthorized: Please start with AUTH_START"));
        return;
    }
    handle_call(ss, c, sid, msg, len);
}

/* ---- streams ------------------------------------------------------------------- */

static pstream *ps_find(session *ss, int64_t sid)
{
    for (pstream *p = ss->partial; p; p = p->next)
        if (p->sid == sid) return p;
    return NULL;
}

/* Gives back what |p| reserved in the connection's and the server's budgets. */
static void ps_unreserve(session *ss, pstream *p)
{
    if (!p->reserved) return;
    ss->buffered -= p->reserved;
    atomic_fetch_sub(&ss->srv->buffered, p->reserved);
    p->reserved = 0;
}

static void ps_free(session *ss, pstream *p)
{
    for (pstream **pp = &ss->partial; *pp; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    }
    if (!p->done) ss->npartial--;
    ps_unreserve(ss, p);
    nana_buf_free(&p->buf);
    free(p);
}

/*
 * Refuses a frame with an error reply of type |type|. The stream's record
 * (kept "done" by the caller) makes the rest of its bytes be dropped as
 * they arrive.
 */
static void refuse_frame_as(session *ss, nana_quic_conn *c, int64_t sid, const char *type,
                            const char *why, const char *code)
{
    REPLY(ss->srv, c, sid, nana_reply_error(&b_, type, why, code));
}

static void refuse_frame(session *ss, nana_quic_conn *c, int64_t sid, const char *why)
{
    refuse_frame_as(ss, c, sid, "ValueError", why, NULL);
}

static uint32_t be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* Marks a buffered stream answered: its bytes are dropped, the record waits for FIN. */
static void ps_done(session *ss, pstream *p)
{
    if (p->done) return;
    p->done = true;
    ss->npartial--;
    ps_unreserve(ss, p);
    nana_buf_free(&p->buf);
}

/* When an unfinished request |p| is refused: idle too long, or too slow in all. */
static uint64_t ps_deadline(const nana_server *srv, const pstream *p)
{
    uint64_t idle = p->last_ns + (uint64_t)srv->o.request_idle_ms * 1000000ull;
    uint64_t whole = p->first_ns + (uint64_t)srv->o.request_timeout_ms * 1000000ull;
    return idle < whole ? idle : whole;
}

/* Sets the connection's timer for its next deadline: the first unfinished
 * request's, and the next look at unread replies. */
static void rearm(session *ss, nana_quic_conn *c)
{
    uint64_t next = UINT64_MAX;
    for (pstream *p = ss->partial; p; p = p->next) {
        if (p->done) continue;
        uint64_t d = ps_deadline(ss->srv, p);
        if (d < next) next = d;
    }
    if (ss->stall_watch) {
        uint64_t d = ss->progress_ns + (uint64_t)ss->srv->o.reply_stall_ms * 1000000ull;
        if (d < next) next = d;
    }
    if (next != ss->timer_at) {
        ss->timer_at = next;
        nana_quic_conn_set_timer(c, next);
    }
}

/*
 * Reserves the whole frame's |need| bytes (its length prefix included) for
 * |p| once its length is known, in the connection's budget and, for a
 * large frame, the server's. Returns NULL, or why the frame is refused
 * (the error type in *type, the code in *code).
 */
static const char *ps_reserve(session *ss, pstream *p, size_t need, const char **type,
                              const char **code, char *msg, size_t cap)
{
    nana_server *srv = ss->srv;
    *type = "ValueError";
    *code = NULL;
    if (ss->buffered + need > srv->o.max_conn_bytes) {
        snprintf(msg, cap,
                 "Connection buffer limit reached: unfinished requests on this connection "
                 "would hold %zu bytes (limit %zu)",
                 ss->buffered + need, srv->o.max_conn_bytes);
        return msg;
    }
    size_t now = atomic_fetch_add(&srv->buffered, need) + need;
    if (need > SMALL_FRAME && now > srv->o.max_buffered_bytes) {
        atomic_fetch_sub(&srv->buffered, need);
        atomic_fetch_add(&srv->st_busy, 1);
        *type = "RuntimeError";
        *code = "busy";
        snprintf(msg, cap,
                 "Server busy: the request buffer budget (%zu bytes for unfinished requests) is "
                 "exhausted; a request of %zu bytes must wait, try again later",
                 srv->o.max_buffered_bytes, need);
        return msg;
    }
    p->reserved = need;
    ss->buffered += need;
    return NULL;
}

static int on_stream_data(nana_quic_conn *c, int64_t sid, const uint8_t *data, size_t len, int fin,
                          int early, void *user)
{
    (void)early;
    (void)user;
    session *ss = nana_quic_conn_get_data(c);
    if (!ss) return 0;
    nana_server *srv = ss->srv;
    /* Before login a frame is an AUTH_START or a signed answer: a few KiB at most. */
    size_t limit = srv->o.max_stream_bytes;
    if (!ss->authed && srv->o.max_preauth_request_bytes < limit)
        limit = srv->o.max_preauth_request_bytes;
    size_t max_frame = limit - 4;
    pstream *p = ps_find(ss, sid);
    if (p && p->done) {
        if (fin) ps_free(ss, p);
        return 0;
    }
    uint64_t now = nana_quic_conn_now(c);
    if (!p) {
        /* The common case: the whole frame in one piece. */
        if (len >= 4 && fin && (size_t)be32(data) + 4 == len && be32(data) <= max_frame) {
            handle_frame(ss, c, sid, data + 4, len - 4);
            return 0;
        }
        if (len == 0 && fin) {
            refuse_frame(ss, c, sid, "Invalid frame: empty stream");
            return 0;
        }
        bool over = !ss->authed && ss->npartial >= srv->o.max_preauth_streams;
        p = calloc(1, sizeof(*p));
        if (!p) return NANA_ERR_NOMEM;
        p->sid = sid;
        p->first_ns = p->last_ns = now;
        nana_buf_init(&p->buf, limit);
        p->next = ss->partial;
        ss->partial = p;
        ss->npartial++;
        if (over) {
            ps_done(ss, p);
            refuse_frame(ss, c, sid, "Too many unfinished requests before authentication");
            if (fin) ps_free(ss, p);
            return 0;
        }
        rearm(ss, c);
    }
    p->last_ns = now;
    /* How much of this piece the frame can still take. */
    size_t have = p->buf.len;
    if (have + len >= 4) {
        uint8_t hdr[4];
        for (size_t i = 0; i < 4; i++)
            hdr[i] = i < have ? (uint8_t)p->buf.data[i] : data[i - have];
        uint32_t flen = be32(hdr);
        if (flen > max_frame) {
            char m[160];
            snprintf(m, sizeof(m), "Frame of %u bytes exceeds the limit of %zu bytes%s", flen,
                     max_frame, ss->authed ? "" : " before authentication");
            ps_done(ss, p);
            refuse_frame(ss, c, sid, m);
            return 0;
        }
        if (have + len > (size_t)flen + 4) {
            ps_done(ss, p);
            refuse_frame(ss, c, sid, "Invalid frame: bytes after the frame");
            return 0;
        }
        if (!p->reserved) {
            const char *type, *code;
            char m[256];
            const char *why = ps_reserve(ss, p, (size_t)flen + 4, &type, &code, m, sizeof(m));
            if (why) {
                ps_done(ss, p);
                refuse_frame_as(ss, c, sid, type, why, code);
                return 0;
            }
        }
    }
    if (nana_buf_append(&p->buf, data, len)) {
        ps_done(ss, p);
        refuse_frame(ss, c, sid, "Request too large");
        return 0;
    }
    if (p->buf.len >= 4 && p->buf.len == (size_t)be32((const uint8_t *)p->buf.data) + 4) {
        /* Whole: answer now. The record stays until the peer's FIN. */
        handle_frame(ss, c, sid, (const uint8_t *)p->buf.data + 4, p->buf.len - 4);
        ps_done(ss, p);
        if (fin) ps_free(ss, p);
        return 0;
    }
    if (fin) {
        ps_done(ss, p);
        ps_free(ss, p);
        REPLY(srv, c, sid,
              nana_reply_error(&b_, "ValueError",
                               len + have < 4 ? "Invalid frame: shorter than its 4-byte length"
                                              : "Invalid frame: truncated",
                               NULL));
    }
    return 0;
}

static void on_stream_close(nana_quic_conn *c, int64_t sid, uint64_t app_error, void *user)
{
    session *ss = nana_quic_conn_get_data(c);
    if (!ss) return;
    pstream *p = ps_find(ss, sid);
    if (p) ps_free(ss, p);
}

/*
 * The connection's timer: refuses unfinished requests past their
 * deadlines, and closes a connection whose unread replies made no progress
 * for reply_stall_ms (the peer stopped reading; what it holds is freed).
 */
static void on_timer(nana_quic_conn *c, void *user)
{
    (void)user;
    session *ss = nana_quic_conn_get_data(c);
    if (!ss) return;
    nana_server *srv = ss->srv;
    ss->timer_at = UINT64_MAX;
    uint64_t now = nana_quic_conn_now(c);
    for (pstream *p = ss->partial, *next; p; p = next) {
        next = p->next;
        if (p->done || now < ps_deadline(srv, p)) continue;
        bool idle = now >= p->last_ns + (uint64_t)srv->o.request_idle_ms * 1000000ull;
        char m[160];
        if (idle)
            snprintf(m, sizeof(m), "Request timed out: no bytes of it for %u ms",
                     srv->o.request_idle_ms);
        else
            snprintf(m, sizeof(m), "Request timed out: not whole within %u ms",
                     srv->o.request_timeout_ms);
        atomic_fetch_add(&srv->st_request_timeouts, 1);
        ps_done(ss, p);
        refuse_frame(ss, c, p->sid, m);
    }
    if (ss->stall_watch) {
        uint64_t held, acked;
        nana_quic_conn_send_state(c, &held, &acked);
        if (!held) {
            ss->stall_watch = false;
        } else if (acked != ss->last_acked) {
            ss->last_acked = acked;
            ss->progress_ns = now;
        } else if (now - ss->progress_ns >= (uint64_t)srv->o.reply_stall_ms * 1000000ull) {
            atomic_fetch_add(&srv->st_stalled, 1);
            nana_log(NANA_LOG_WARN,
                     "conn %llu from %s: %llu bytes of replies unread for %u ms; closing it",
                     (unsigned long long)ss->h, ss->peer, (unsigned long long)held,
                     srv->o.reply_stall_ms);
            (void)nana_quic_conn_close(c, APP_READER_STALLED, "replies not read in time");
            return;
        }
    }
    rearm(ss, c);
}

static int on_conn_open(nana_quic_conn *c, void *user)
{
    nana_server *srv = user;
    session *ss = calloc(1, sizeof(*ss));
    if (!ss) return NANA_ERR_NOMEM;
    ss->srv = srv;
    ss->h = nana_quic_conn_handle(c);
    ss->timer_at = UINT64_MAX;
    nana_quic_conn_peer(c, &ss->addr, &ss->alen);
    addr_text(&ss->addr, ss->peer, sizeof(ss->peer));
    nana_quic_conn_set_data(c, ss);
    nana_log(NANA_LOG_INFO, "conn %llu open from %s", (unsigned long long)ss->h, ss->peer);
    return 0;
}

static void on_conn_close(nana_quic_conn *c, void *user)
{
    session *ss = nana_quic_conn_get_data(c);
    if (!ss) return;
    nana_log(NANA_LOG_INFO, "conn %llu closed from %s (%s%s%s, %llu calls)",
             (unsigned long long)ss->h, ss->peer, ss->authed ? "account '" : "not authenticated",
             ss->authed ? ss->name : "", ss->authed ? "'" : "", (unsigned long long)ss->calls);
    while (ss->partial)
        ps_free(ss, ss->partial);
    nana_buf_free(&ss->scratch);
    nana_accounts_unref(ss->snap);
    nana_quic_conn_set_data(c, NULL);
    free(ss);
}

int nana_session_accept(const struct sockaddr *addr, socklen_t len, void *user)
{
    nana_server *srv = user;
    if (atomic_load(&srv->draining)) return NANA_QUIC_REFUSE_STOPPING;
    if (srv->o.no_bans) return 0;
    return nana_ban_check(srv->ban, addr, nana_now_ns()) ? NANA_QUIC_REFUSE_BANNED : 0;
}

const nana_quic_callbacks nana_session_callbacks = {
    .conn_open = on_conn_open,
    .conn_close = on_conn_close,
    .stream_data = on_stream_data,
    .stream_close = on_stream_close,
    .accept = nana_session_accept,
    .timer = on_timer,
};
