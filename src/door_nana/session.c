/*
 * session.c - one client connection of the NanaSQLite door: framing, the
 * login state machine and the connection's own limits. Runs on the
 * connection's thread, on the nana_door_io the server gives it, with no
 * I/O and no clock of its own.
 *
 * Each client-opened bidirectional stream carries one request frame (u32
 * big-endian length + msgpack) and gets one reply frame and FIN. A frame
 * that arrives whole in one piece (the common case) is handled straight
 * from the packet's bytes; only frames split across packets are buffered.
 * Once a split frame's length is read its whole length is reserved in the
 * connection's and (for large frames) the door's budgets, and the
 * connection's timer watches its idle and total deadlines. Before login a
 * frame is a few KiB at most.
 *
 * Login comes first (AUTH_START, challenge, signed answer), unless the
 * client's verified certificate names an account that logs in by
 * certificate: then the session is logged in from the start, and an
 * AUTH_START is answered AUTH_OK. An account that logs in by key and
 * certificate needs both the signature and the certificate. After login, a
 * request is parsed and handed to the call core (nana_core_try): a refusal
 * or a cache hit is answered at once from the session's kept buffer (no
 * allocation); anything else becomes a queued call (calls.c) answered
 * later. Every reply is counted (nana_core_hold) until the client has it,
 * which is what the graceful stop waits for; replies the client does not
 * read are bounded per connection, and a client that stops reading
 * altogether is closed.
 */
#include "door_nana/door_int.h"

#include "auth/nana_challenge.h"
#include "util/nana_addr.h"
#include "util/nana_log.h"
#include "util/nana_mem.h"

#include <arpa/inet.h>
#include <stdio.h>
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

/* Frames up to this size are never refused by the door-wide budget of
 * unfinished request bytes (max_buffered_bytes): small calls go on. */
#define SMALL_FRAME ((size_t)64 * 1024)

/* The longest database name a connection remembers (as the core allows). */
#define MAX_STICKY_DB 128

/* Replies up to this size are copied into the stream (kept objects of the
 * connection's thread) and the session's buffer is used again; larger ones
 * hand the buffer itself to the stream. */
#define REPLY_COPY_MAX 4096

/* A stream whose frame came in pieces. */
typedef struct pstream {
    int64_t sid;
    nana_buf buf;
    bool done;         /* answered; waiting only for the peer's FIN */
    size_t reserved;   /* bytes held in the connection's and the door's budgets */
    uint64_t first_ns; /* when its first byte came */
    uint64_t last_ns;  /* when its last byte came */
    struct pstream *next;
} pstream;

struct nana_session {
    nana_door *d;
    uint64_t h; /* the connection's handle */
    struct sockaddr_storage addr;
    socklen_t alen;
    char peer[INET6_ADDRSTRLEN + 8];
    bool authed;
    bool by_cert;          /* logged in by its client certificate alone */
    nana_cert_identity id; /* its verified client certificate, if any */
    nana_challenge ch;
    nana_accounts *snap; /* the accounts the session logged in against */
    uint64_t gen;
    const nana_account *acct; /* in snap */
    uint8_t pk[32];           /* the key that logged in */
    char name[72];
    nana_rate_hint rate; /* the account's rate bucket, as the core found it */
    pstream *partial;
    unsigned npartial;
    size_t buffered; /* bytes reserved by this connection's unfinished requests */
    uint64_t calls;
    nana_buf scratch;  /* where immediate replies are built; kept between calls */
    uint64_t timer_at; /* when the connection's timer is set for (UINT64_MAX: not set) */
    /* replies nobody reads (reply_stall_ms): watched while any are held */
    bool stall_watch;
    uint64_t last_acked;  /* acknowledged bytes at the last look */
    uint64_t progress_ns; /* when they last moved */
    /* the database the last call named, used by calls that name none */
    char sticky_db[MAX_STICKY_DB + 1];
    uint32_t sticky_len;
};

/* A reply buffer: this header, then the frame. */
typedef struct reply_hdr {
    nana_door *d;
    size_t len;
} reply_hdr;

/* ---- sending immediate replies ------------------------------------------------ */

static void rearm(nana_session *s, void *conn);

void nana_session_watch(nana_session *s, void *conn)
{
    if (s->stall_watch) return;
    uint64_t held, acked;
    s->d->io->send_state(conn, &held, &acked);
    if (!held) return;
    s->stall_watch = true;
    s->last_acked = acked;
    s->progress_ns = s->d->io->now(conn);
    rearm(s, conn);
}

/* A reply handed over as its buffer is gone. */
static void built_release(void *ctx)
{
    reply_hdr *r = ctx;
    nana_core_unhold(r->d->core);
    nana_free(r);
}

/* A reply the stream copied is gone. */
static void copied_release(void *ctx)
{
    nana_door *d = ctx;
    nana_core_unhold(d->core);
}

/* Empties |b| (keeping its allocation) and reserves its reply header, with
 * room for a typical reply, so building one costs at most one allocation. */
static int reply_restart(nana_buf *b)
{
    nana_buf_reset(b);
    static const reply_hdr zero;
    int rc = nana_buf_reserve(b, 256);
    return rc ? rc : nana_buf_append(b, &zero, sizeof(zero));
}

/*
 * Sends the frame built in the session's scratch buffer (after a reply_hdr
 * reserved at its start) on |sid| with FIN, counted until the client has
 * it. A short reply is copied into the stream (kept objects: a cached read
 * on a warm server allocates nothing); a longer one takes the buffer.
 */
static void send_scratch(nana_session *s, void *conn, int64_t sid)
{
    nana_door *d = s->d;
    nana_buf *b = &s->scratch;
    size_t flen = b->len - sizeof(reply_hdr);
    char why[256];
    if (nana_door_unread_over(d, conn, flen, why, sizeof(why))) {
        if (reply_restart(b) || nana_reply_error(b, "RuntimeError", why, "unread")) {
            (void)d->io->reset(conn, sid, APP_REPLY_FAILED);
            return;
        }
        flen = b->len - sizeof(reply_hdr);
    }
    nana_core_hold(d->core);
    int rc;
    if (flen > REPLY_COPY_MAX) {
        size_t len = 0;
        char *data = nana_buf_detach(b, &len);
        nana_buf_init(b, 0);
        if (!data) {
            nana_core_unhold(d->core);
            (void)d->io->reset(conn, sid, APP_REPLY_FAILED);
            return;
        }
        reply_hdr *r = (reply_hdr *)(void *)data;
        r->d = d;
        r->len = flen;
        rc = d->io->send_ref(conn, sid, data + sizeof(reply_hdr), flen, 1, built_release, r);
        if (rc) built_release(r);
    } else {
        rc = d->io->send_copy(conn, sid, b->data + sizeof(reply_hdr), flen, 1, copied_release, d);
        if (rc) copied_release(d);
    }
    if (rc) {
        (void)d->io->reset(conn, sid, APP_REPLY_FAILED); /* never leave the caller waiting */
        return;
    }
    if (!s->stall_watch) nana_session_watch(s, conn);
}

/* Answers InternalServerError from a frame built in advance: what a client
 * gets when no reply can be built (out of memory); a reset if even that
 * cannot be queued. */
static void send_internal(nana_session *s, void *conn, int64_t sid)
{
    nana_door *d = s->d;
    nana_core_hold(d->core);
    if (d->io->send_ref(conn, sid, nana_reply_internal_frame, sizeof(nana_reply_internal_frame), 1,
                        copied_release, d)) {
        copied_release(d);
        (void)d->io->reset(conn, sid, APP_REPLY_FAILED);
    }
}

/* Builds one immediate reply with |call| (writing to b_) and sends it; one
 * that cannot be built (no memory) is answered InternalServerError. */
#define REPLY(s, conn, sid, call)                                                                  \
    do {                                                                                           \
        nana_buf *b_ = &(s)->scratch;                                                              \
        int rc_ = reply_restart(b_);                                                               \
        if (!rc_) rc_ = (call);                                                                    \
        if (!rc_)                                                                                  \
            send_scratch((s), (conn), (sid));                                                      \
        else                                                                                       \
            send_internal((s), (conn), (sid));                                                     \
    } while (0)

/* Answers error |e| at once; an unexpected one is logged, its detail kept
 * from the client. */
static void reply_error(nana_session *s, void *conn, int64_t sid, const nana_error *e)
{
    if (!nana_core_error_expected(e->code))
        nana_log(NANA_LOG_ERROR, "unexpected error %s: %s", nana_strerror(e->code), e->msg);
    REPLY(s, conn, sid, nana_reply_from_error(b_, e));
}

/* Answers a call at once with its result or its error (the core's answer
 * on this thread). */
static void reply_answer(nana_session *s, void *conn, int64_t sid, nana_core_call *c)
{
    if (c->err.code && !nana_core_error_expected(c->err.code))
        nana_log(NANA_LOG_ERROR, "unexpected error %s: %s", nana_strerror(c->err.code), c->err.msg);
    REPLY(s, conn, sid, nana_reply_answer(b_, &c->res, &c->err));
    nana_core_result_clear(&c->res);
}

/* ---- login ---------------------------------------------------------------------- */

/* Logs |s| in as account |a| of |snap| (its reference passes to |s|). */
static void log_in(nana_session *s, nana_accounts *snap, uint64_t gen, const nana_account *a,
                   bool by_cert)
{
    nana_door *d = s->d;
    nana_accounts_unref(s->snap);
    s->snap = snap;
    s->gen = gen;
    s->acct = a;
    memcpy(s->pk, a->public_key, 32);
    snprintf(s->name, sizeof(s->name), "%s", a->name);
    s->authed = true;
    s->by_cert = by_cert;
    atomic_fetch_add(&d->st_auth_ok, 1);
    nana_log(NANA_LOG_INFO, "conn %llu auth ok: account '%s' from %s%s", (unsigned long long)s->h,
             a->name, s->peer, by_cert ? " by client certificate" : "");
}

/*
 * The certificate login: true (and |s| logged in, the connection trusted)
 * when the client's verified certificate names an account that logs in by
 * certificate alone and may from this address.
 */
static bool cert_login(nana_session *s, void *conn)
{
    nana_door *d = s->d;
    if (!s->id.verified) return false;
    uint64_t gen = 0;
    nana_accounts *snap = d->accounts.get(d->accounts.ctx, &gen);
    nana_err_copy(""); /* a refusal's reason comes back here */
    const nana_account *a = snap ? nana_accounts_find_by_identity(snap, &s->id) : NULL;
    const char *why = NULL;
    if (!a)
        why = nana_errmsg()[0] ? nana_errmsg() : NULL;
    else if (a->login != NANA_LOGIN_CERT)
        a = NULL; /* it logs in with its key (and certificate) */
    else if (!nana_account_ip_allowed(a, (const struct sockaddr *)&s->addr))
        why = "address not allowed for the account";
    else if (d->io->trust(conn))
        why = "the connection was closed to make room meanwhile";
    if (!a || why) {
        if (why)
            nana_log(NANA_LOG_WARN, "conn %llu certificate login refused from %s: %s",
                     (unsigned long long)s->h, s->peer, why);
        nana_accounts_unref(snap);
        return false;
    }
    log_in(s, snap, gen, a, true);
    return true;
}

void nana_session_start(nana_session *s, void *conn)
{
    if (s->id.verified && !s->authed) (void)cert_login(s, conn);
}

static void auth_start(nana_session *s, void *conn, int64_t sid)
{
    nana_door *d = s->d;
    uint64_t now = d->io->now(conn);
    if (!d->o.no_bans && nana_ban_check(d->ban, (struct sockaddr *)&s->addr, now)) {
        REPLY(s, conn, sid, nana_reply_str(b_, "AUTH_BANNED"));
        return;
    }
    if (cert_login(s, conn)) {
        REPLY(s, conn, sid, nana_reply_str(b_, "AUTH_OK"));
        return;
    }
    d->io->engage(conn);
    nana_challenge_issue(&s->ch, now, (uint64_t)d->o.challenge_ttl_ms * 1000000ull);
    REPLY(s, conn, sid, nana_reply_challenge(b_, s->ch.bytes, sizeof(s->ch.bytes)));
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
 * login), RESP_OK with the fields in *out.
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
static void auth_response(nana_session *s, void *conn, int64_t sid, int shape,
                          const auth_resp *resp)
{
    nana_door *d = s->d;
    const struct sockaddr *sa = (const struct sockaddr *)&s->addr;
    uint64_t now = d->io->now(conn);
    if (!d->o.no_bans && nana_ban_check(d->ban, sa, now)) {
        REPLY(s, conn, sid, nana_reply_str(b_, "AUTH_BANNED"));
        return;
    }
    const uint8_t *sig = resp->sig;
    uint32_t siglen = resp->siglen;
    const char *why = NULL;
    uint64_t gen = 0;
    nana_accounts *snap = d->accounts.get(d->accounts.ctx, &gen);
    const nana_account *a = NULL;
    static const uint8_t no_key[32];
    if (!snap) {
        why = "no accounts";
    } else if (shape != RESP_OK) {
        why = "malformed response";
        (void)nana_challenge_verify(&s->ch, no_key, 0, no_key, now); /* consumes the challenge */
    } else if (resp->acct) {
        a = nana_accounts_find(snap, resp->acct, resp->acctlen);
        if (!a) why = "unknown account";
        /* Verified (and the challenge consumed) even for an unknown name. */
        if (nana_challenge_verify(&s->ch, sig, siglen, a ? a->public_key : no_key, now) && !why)
            why = "bad signature or no live challenge";
    } else if (nana_accounts_count(snap) > MAX_UNNAMED_KEYS) {
        (void)nana_challenge_verify(&s->ch, no_key, 0, no_key, now); /* consumes the challenge */
        why = "no account name given and too many accounts to try every key";
    } else {
        unsigned which = 0;
        size_t n = nana_accounts_count(snap);
        if (nana_challenge_verify_any(&s->ch, sig, siglen, nana_accounts_keys(snap), (unsigned)n,
                                      &which, now))
            why = "bad signature or no live challenge";
        else
            a = nana_accounts_at(snap, which);
    }
    if (!why && !nana_account_ip_allowed(a, sa)) why = "address not allowed for the account";
    if (!why && (a->login & NANA_LOGIN_CERT) && !nana_account_names_identity(a, &s->id))
        why = "the account also needs its client certificate, and this one does not name it";
    /* Logged in: the connection keeps its place (it is no longer one that
     * may be closed to make room for others). */
    if (!why && d->io->trust(conn)) why = "the connection was closed to make room meanwhile";
    if (why) {
        atomic_fetch_add(&d->st_auth_failed, 1);
        nana_accounts_unref(snap);
        bool banned = !d->o.no_bans && nana_ban_failure(d->ban, sa, now);
        nana_log(NANA_LOG_WARN, "conn %llu auth failed from %s: %s", (unsigned long long)s->h,
                 s->peer, why);
        if (banned) {
            atomic_fetch_add(&d->st_bans, 1);
            nana_log(NANA_LOG_WARN, "%s banned for %u s after %u failed authentications", s->peer,
                     d->o.ban_seconds, d->o.ban_failures);
        }
        REPLY(s, conn, sid, nana_reply_str(b_, banned ? "AUTH_BANNED" : "AUTH_FAILED"));
        return;
    }
    if (!d->o.no_bans) nana_ban_success(d->ban, sa);
    log_in(s, snap, gen, a, false);
    REPLY(s, conn, sid, nana_reply_str(b_, "AUTH_OK"));
}

/*
 * After an accounts reload: finds the session's account again. False when it
 * is gone, its key changed, its address is no longer allowed, or it no
 * longer logs in the way the session did (by certificate alone, or with a
 * certificate it still names).
 */
static bool refresh_account(nana_session *s)
{
    nana_door *d = s->d;
    uint64_t gen = d->accounts.gen(d->accounts.ctx);
    if (gen == s->gen) return true;
    nana_accounts *snap = d->accounts.get(d->accounts.ctx, &gen);
    const nana_account *a = snap ? nana_accounts_find(snap, s->name, strlen(s->name)) : NULL;
    bool same_login =
        a && (s->by_cert ? a->login == NANA_LOGIN_CERT : (a->login & NANA_LOGIN_KEY) != 0) &&
        (!(a->login & NANA_LOGIN_CERT) || nana_account_names_identity(a, &s->id));
    if (!same_login || memcmp(a->public_key, s->pk, 32) != 0 ||
        !nana_account_ip_allowed(a, (const struct sockaddr *)&s->addr)) {
        nana_accounts_unref(snap);
        return false;
    }
    nana_accounts_unref(s->snap);
    s->snap = snap;
    s->gen = gen;
    s->acct = a;
    return true;
}

/* ---- calls -------------------------------------------------------------------------- */

static void handle_call(nana_session *s, void *conn, int64_t sid, const uint8_t *msg, size_t len,
                        bool early)
{
    nana_door *d = s->d;
    if (!refresh_account(s)) {
        nana_log(NANA_LOG_INFO, "conn %llu: account '%s' was removed or changed; session ended",
                 (unsigned long long)s->h, s->name);
        s->authed = false;
        s->by_cert = false;
        s->acct = NULL;
        REPLY(s, conn, sid,
              nana_reply_error(b_, "PermissionError", "Account no longer valid: authenticate again",
                               NULL));
        return;
    }
    nana_door_req q; /* the fields the core reads are all set below (no memset: hot path) */
    int rc = nana_request_parse(msg, len, &q.r);
    if (rc) {
        nana_error e;
        nana_error_capture(&e, rc);
        reply_error(s, conn, sid, &e);
        return;
    }
    /* A call that names no database uses the one the connection last named. */
    bool named_db = q.r.db != NULL;
    if (q.r.db_nil) s->sticky_len = 0; /* "db": nil names the default database */
    nana_core_call *c = &q.call;
    c->door = &nana_door_core_ops;
    c->m = q.r.m;
    c->method = q.r.method;
    c->mlen = q.r.mlen;
    c->acct = s->acct;
    c->db = named_db ? q.r.db : s->sticky_len ? s->sticky_db : NULL;
    c->dblen = named_db ? q.r.dblen : s->sticky_len;
    c->table = q.r.table;
    c->tlen = q.r.tlen;
    c->deadline = 0;
    c->early = early;
    c->rate = &s->rate;
    c->res.kind = NANA_RES_NIL;
    c->res.v = NULL;
    s->calls++;
    nana_buf *b = &s->scratch;
    size_t at = 0;
    bool cached = c->m && (nana_method_flags(c->m) & NANA_M_CACHED);
    /* A cached read's reply may be its value's kept wire form: its frame
     * starts here first. */
    rc = reply_restart(b);
    if (!rc && cached) rc = nana_reply_success_begin(b, &at);
    int done = nana_core_try(d->core, c, rc ? NULL : b);
    /* Remembered once it passed the policy and the name's form, as the
     * Python server remembers a name only after checking it. */
    nana_error name_err;
    if (named_db && q.r.dblen <= MAX_STICKY_DB && c->err.code != NANA_ERR_PERM &&
        !nana_core_check_db_name(q.r.db, q.r.dblen, &name_err)) {
        memcpy(s->sticky_db, q.r.db, q.r.dblen);
        s->sticky_db[q.r.dblen] = 0;
        s->sticky_len = q.r.dblen;
    }
    if (done == NANA_CORE_DONE) {
        if (!c->err.code && c->res.kind == NANA_RES_ENCODED && !nana_frame_end(b, at)) {
            send_scratch(s, conn, sid);
            return;
        }
        reply_answer(s, conn, sid, c);
        return;
    }
    rc = nana_door_queue(d, &q, s->h, sid, msg, len, s->snap);
    if (rc) {
        nana_error e;
        nana_error_capture(&e, rc);
        reply_error(s, conn, sid, &e);
    }
}

/* One whole request frame's msgpack (the connection's thread). */
static void handle_frame(nana_session *s, void *conn, int64_t sid, const uint8_t *msg, size_t len,
                         bool early)
{
    if (nana_mp_is_str(msg, len, "AUTH_START")) {
        if (s->authed && s->by_cert)
            REPLY(s, conn, sid, nana_reply_str(b_, "AUTH_OK"));
        else if (s->authed)
            REPLY(s, conn, sid, nana_reply_status_error(b_, "Already authenticated"));
        else
            auth_start(s, conn, sid);
        return;
    }
    if (!s->authed) {
        auth_resp resp;
        int shape = read_response(msg, len, &resp);
        if (shape != RESP_NONE)
            auth_response(s, conn, sid, shape, &resp);
        else
            REPLY(s, conn, sid,
                  nana_reply_status_error(b_, "Unauthorized: Please start with AUTH_START"));
        return;
    }
    handle_call(s, conn, sid, msg, len, early);
}

/* ---- streams ------------------------------------------------------------------- */

static pstream *ps_find(nana_session *s, int64_t sid)
{
    for (pstream *p = s->partial; p; p = p->next)
        if (p->sid == sid) return p;
    return NULL;
}

/* Gives back what |p| reserved in the connection's and the door's budgets. */
static void ps_unreserve(nana_session *s, pstream *p)
{
    if (!p->reserved) return;
    s->buffered -= p->reserved;
    atomic_fetch_sub(&s->d->buffered, p->reserved);
    p->reserved = 0;
}

static void ps_free(nana_session *s, pstream *p)
{
    for (pstream **pp = &s->partial; *pp; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    }
    if (!p->done) s->npartial--;
    ps_unreserve(s, p);
    nana_buf_free(&p->buf);
    nana_free(p);
}

/*
 * Refuses a frame with an error reply of type |type|. The stream's record
 * (kept "done" by the caller) makes the rest of its bytes be dropped as
 * they arrive.
 */
static void refuse_frame_as(nana_session *s, void *conn, int64_t sid, const char *type,
                            const char *why, const char *code)
{
    REPLY(s, conn, sid, nana_reply_error(b_, type, why, code));
}

static void refuse_frame(nana_session *s, void *conn, int64_t sid, const char *why)
{
    refuse_frame_as(s, conn, sid, "ValueError", why, NULL);
}

static uint32_t be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* Marks a buffered stream answered: its bytes are dropped, the record waits for FIN. */
static void ps_done(nana_session *s, pstream *p)
{
    if (p->done) return;
    p->done = true;
    s->npartial--;
    ps_unreserve(s, p);
    nana_buf_free(&p->buf);
}

/* When an unfinished request |p| is refused: idle too long, or too slow in all. */
static uint64_t ps_deadline(const nana_door *d, const pstream *p)
{
    uint64_t idle = p->last_ns + (uint64_t)d->o.request_idle_ms * 1000000ull;
    uint64_t whole = p->first_ns + (uint64_t)d->o.request_timeout_ms * 1000000ull;
    return idle < whole ? idle : whole;
}

/* Sets the connection's timer for its next deadline: the first unfinished
 * request's, and the next look at unread replies. */
static void rearm(nana_session *s, void *conn)
{
    uint64_t next = UINT64_MAX;
    for (pstream *p = s->partial; p; p = p->next) {
        if (p->done) continue;
        uint64_t dl = ps_deadline(s->d, p);
        if (dl < next) next = dl;
    }
    if (s->stall_watch) {
        uint64_t dl = s->progress_ns + (uint64_t)s->d->o.reply_stall_ms * 1000000ull;
        if (dl < next) next = dl;
    }
    if (next != s->timer_at) {
        s->timer_at = next;
        s->d->io->set_timer(conn, next);
    }
}

/*
 * Reserves the whole frame's |need| bytes (its length prefix included) for
 * |p| once its length is known, in the connection's budget and, for a
 * large frame, the door's. Returns NULL, or why the frame is refused (the
 * error type in *type, the code in *code).
 */
static const char *ps_reserve(nana_session *s, pstream *p, size_t need, const char **type,
                              const char **code, char *msg, size_t cap)
{
    nana_door *d = s->d;
    *type = "ValueError";
    *code = NULL;
    if (s->buffered + need > d->o.max_conn_bytes) {
        snprintf(msg, cap,
                 "Connection buffer limit reached: unfinished requests on this connection "
                 "would hold %zu bytes (limit %zu)",
                 s->buffered + need, d->o.max_conn_bytes);
        return msg;
    }
    size_t now = atomic_fetch_add(&d->buffered, need) + need;
    if (need > SMALL_FRAME && now > d->o.max_buffered_bytes) {
        atomic_fetch_sub(&d->buffered, need);
        atomic_fetch_add(&d->st_busy, 1);
        *type = "RuntimeError";
        *code = "busy";
        snprintf(msg, cap,
                 "Server busy: the request buffer budget (%zu bytes for unfinished requests) is "
                 "exhausted; a request of %zu bytes must wait, try again later",
                 d->o.max_buffered_bytes, need);
        return msg;
    }
    p->reserved = need;
    s->buffered += need;
    return NULL;
}

int nana_session_data(nana_session *s, void *conn, int64_t sid, const uint8_t *data, size_t len,
                      int fin, int early)
{
    nana_door *d = s->d;
    /* Before login a frame is an AUTH_START or a signed answer: a few KiB at most. */
    size_t limit = d->o.max_request_bytes;
    if (!s->authed && d->o.max_preauth_request_bytes < limit)
        limit = d->o.max_preauth_request_bytes;
    size_t max_frame = limit - 4;
    pstream *p = ps_find(s, sid);
    if (p && p->done) {
        if (fin) ps_free(s, p);
        return 0;
    }
    uint64_t now = d->io->now(conn);
    if (!p) {
        /* The common case: the whole frame in one piece. */
        if (len >= 4 && fin && (size_t)be32(data) + 4 == len && be32(data) <= max_frame) {
            handle_frame(s, conn, sid, data + 4, len - 4, early);
            return 0;
        }
        if (len == 0 && fin) {
            refuse_frame(s, conn, sid, "Invalid frame: empty stream");
            return 0;
        }
        bool over = !s->authed && s->npartial >= d->o.max_preauth_streams;
        p = nana_calloc(1, sizeof(*p));
        if (!p) return NANA_ERR_NOMEM;
        p->sid = sid;
        p->first_ns = p->last_ns = now;
        nana_buf_init(&p->buf, limit);
        p->next = s->partial;
        s->partial = p;
        s->npartial++;
        if (over) {
            ps_done(s, p);
            refuse_frame(s, conn, sid, "Too many unfinished requests before authentication");
            if (fin) ps_free(s, p);
            return 0;
        }
        rearm(s, conn);
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
                     max_frame, s->authed ? "" : " before authentication");
            ps_done(s, p);
            refuse_frame(s, conn, sid, m);
            return 0;
        }
        if (have + len > (size_t)flen + 4) {
            ps_done(s, p);
            refuse_frame(s, conn, sid, "Invalid frame: bytes after the frame");
            return 0;
        }
        if (!p->reserved) {
            const char *type, *code;
            char m[256];
            const char *why = ps_reserve(s, p, (size_t)flen + 4, &type, &code, m, sizeof(m));
            if (why) {
                ps_done(s, p);
                refuse_frame_as(s, conn, sid, type, why, code);
                return 0;
            }
        }
    }
    if (nana_buf_append(&p->buf, data, len)) {
        ps_done(s, p);
        refuse_frame(s, conn, sid, "Request too large");
        return 0;
    }
    if (p->buf.len >= 4 && p->buf.len == (size_t)be32((const uint8_t *)p->buf.data) + 4) {
        /* Whole: answer now. The record stays until the peer's FIN. */
        handle_frame(s, conn, sid, (const uint8_t *)p->buf.data + 4, p->buf.len - 4, early);
        ps_done(s, p);
        if (fin) ps_free(s, p);
        return 0;
    }
    if (fin) {
        ps_done(s, p);
        ps_free(s, p);
        refuse_frame(s, conn, sid,
                     len + have < 4 ? "Invalid frame: shorter than its 4-byte length"
                                    : "Invalid frame: truncated");
    }
    return 0;
}

void nana_session_stream_closed(nana_session *s, void *conn, int64_t sid)
{
    (void)conn;
    pstream *p = ps_find(s, sid);
    if (p) ps_free(s, p);
}

void nana_session_timer(nana_session *s, void *conn)
{
    nana_door *d = s->d;
    s->timer_at = UINT64_MAX;
    uint64_t now = d->io->now(conn);
    for (pstream *p = s->partial, *next; p; p = next) {
        next = p->next;
        if (p->done || now < ps_deadline(d, p)) continue;
        bool idle = now >= p->last_ns + (uint64_t)d->o.request_idle_ms * 1000000ull;
        char m[160];
        if (idle)
            snprintf(m, sizeof(m), "Request timed out: no bytes of it for %u ms",
                     d->o.request_idle_ms);
        else
            snprintf(m, sizeof(m), "Request timed out: not whole within %u ms",
                     d->o.request_timeout_ms);
        atomic_fetch_add(&d->st_request_timeouts, 1);
        ps_done(s, p);
        refuse_frame(s, conn, p->sid, m);
    }
    if (s->stall_watch) {
        uint64_t held, acked;
        d->io->send_state(conn, &held, &acked);
        if (!held) {
            s->stall_watch = false;
        } else if (acked != s->last_acked) {
            s->last_acked = acked;
            s->progress_ns = now;
        } else if (now - s->progress_ns >= (uint64_t)d->o.reply_stall_ms * 1000000ull) {
            atomic_fetch_add(&d->st_stalled, 1);
            nana_log(NANA_LOG_WARN,
                     "conn %llu from %s: %llu bytes of replies unread for %u ms; closing it",
                     (unsigned long long)s->h, s->peer, (unsigned long long)held,
                     d->o.reply_stall_ms);
            (void)d->io->close(conn, APP_READER_STALLED, "replies not read in time");
            return;
        }
    }
    rearm(s, conn);
}

nana_session *nana_session_new(nana_door *d, const nana_session_info *info)
{
    nana_session *s = nana_calloc(1, sizeof(*s));
    if (!s) return NULL;
    s->d = d;
    s->h = info->handle;
    s->timer_at = UINT64_MAX;
    memcpy(&s->addr, &info->addr, sizeof(s->addr));
    s->alen = info->alen;
    s->id = info->identity;
    nana_addr_text(&s->addr, s->peer, sizeof(s->peer));
    nana_buf_init(&s->scratch, 0);
    nana_log(NANA_LOG_INFO, "conn %llu open from %s", (unsigned long long)s->h, s->peer);
    return s;
}

void nana_session_free(nana_session *s)
{
    if (!s) return;
    nana_log(NANA_LOG_INFO, "conn %llu closed from %s (%s%s%s, %llu calls)",
             (unsigned long long)s->h, s->peer, s->authed ? "account '" : "not authenticated",
             s->authed ? s->name : "", s->authed ? "'" : "", (unsigned long long)s->calls);
    while (s->partial)
        ps_free(s, s->partial);
    nana_buf_free(&s->scratch);
    nana_accounts_unref(s->snap);
    nana_free(s);
}

/* ---- the door --------------------------------------------------------------- */

void nana_door_opts_init(nana_door_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->max_request_bytes = (size_t)10 * 1024 * 1024;
    o->max_conn_bytes = (size_t)50 * 1024 * 1024;
    o->max_preauth_request_bytes = 4096;
    o->max_preauth_streams = 50;
    o->max_buffered_bytes = (size_t)512 * 1024 * 1024;
    o->request_idle_ms = 10000;
    o->request_timeout_ms = 120000;
    o->max_unread_reply_bytes = (size_t)64 * 1024 * 1024;
    o->reply_stall_ms = 30000;
    o->challenge_ttl_ms = 30000;
    o->call_timeout_ms = 15000;
    o->ban_seconds = 900;
    o->ban_failures = 3;
}

int nana_door_new(nana_core *core, const nana_door_opts *o, const nana_door_io *io, void *ep,
                  const nana_door_accounts *accounts, nana_ban *ban, nana_door **out)
{
    *out = NULL;
    nana_door *d = nana_calloc(1, sizeof(*d));
    if (!d) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    nana_door_opts def;
    nana_door_opts_init(&def);
    d->o = *o;
#define DEF(f)                                                                                     \
    if (!d->o.f) d->o.f = def.f
    DEF(max_request_bytes);
    DEF(max_conn_bytes);
    DEF(max_preauth_request_bytes);
    DEF(max_preauth_streams);
    DEF(max_buffered_bytes);
    DEF(request_idle_ms);
    DEF(request_timeout_ms);
    DEF(max_unread_reply_bytes);
    DEF(reply_stall_ms);
    DEF(challenge_ttl_ms);
    DEF(call_timeout_ms);
#undef DEF
    if (d->o.max_request_bytes < 16) d->o.max_request_bytes = 16;
    if (d->o.max_preauth_request_bytes < 16) d->o.max_preauth_request_bytes = 16;
    d->core = core;
    d->io = io;
    d->ep = ep;
    d->accounts = *accounts;
    d->ban = ban;
    *out = d;
    return NANA_OK;
}

void nana_door_free(nana_door *d)
{
    nana_free(d);
}

void nana_door_get_stats(nana_door *d, nana_door_stats *out)
{
    out->auth_ok = atomic_load(&d->st_auth_ok);
    out->auth_failed = atomic_load(&d->st_auth_failed);
    out->bans = atomic_load(&d->st_bans);
    out->unread_held_back = atomic_load(&d->st_unread);
    out->stalled_closed = atomic_load(&d->st_stalled);
    out->request_timeouts = atomic_load(&d->st_request_timeouts);
    out->busy = atomic_load(&d->st_busy);
}
