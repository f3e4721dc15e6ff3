/*
 * auth.c - who a gRPC connection's client is.
 *
 * Three ways in, each for the whole connection:
 *
 *   - its verified client certificate (mutual TLS) names an account whose
 *     "login" is "certificate": logged in when the connection opens;
 *   - a signature in a call's metadata: "nana-account" (the account's
 *     name), "nana-timestamp" (Unix seconds, within auth_skew_s of the
 *     server's clock) and "nana-signature-bin" (Ed25519 by the account's
 *     key over nana_grpc_login_message: the connection's TLS exporter
 *     value, the name and the timestamp). The exporter value is one this
 *     connection alone has, so a signature taken from one connection is
 *     worthless on another. An account whose login is "key+certificate"
 *     also needs a certificate it names;
 *   - a bearer token in "authorization: Bearer <JWT>" (nana_jwt.h): HS256
 *     by the secret of the account it names ("sub"), which must have a
 *     jwt_secret_file (whatever its "login" says). The login lasts until
 *     the token's "exp"; a later call may bring a fresh token for the same
 *     account, which moves the end and replaces the roles. A token with
 *     "roles" narrows what the account may do (nana_gdoor_login_allows).
 *
 * The first signature that verifies logs the connection in and it is
 * trusted by the transport (never closed to make room for others); later
 * calls may repeat the same metadata (checked by comparison, not
 * verified again), send a fresh signature of the same account (verified,
 * say with a later timestamp), or send none. A signed request (nana_gdoor_auth_reqsig)
 * logs a connection in the same way. Failed signatures count toward the
 * address's ban as failed NanaSQLite logins do. After an accounts reload
 * the account is looked up again; one removed or changed ends the login.
 */
#include "door_grpc/gdoor_int.h"

#include "auth/nana_jwt.h"
#include "auth/nana_reqsig.h"
#include "util/nana_log.h"
#include "util/nana_mem.h"
#include "util/nana_time.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* How a connection logged in, for the log line. */
static const char *const how_names[] = {" by signature", " by client certificate",
                                        " by bearer token", " by signed request"};
enum { BY_SIG, BY_CERT, BY_TOKEN, BY_REQSIG };

static void log_in(gconn *g, nana_accounts *snap, uint64_t gen, const nana_account *a, int how)
{
    gauth *au = &g->auth;
    bool by_cert = how == BY_CERT;
    nana_accounts_unref(au->snap);
    au->snap = snap;
    au->gen = gen;
    au->acct = a;
    memcpy(au->pk, a->public_key, 32);
    snprintf(au->name, sizeof(au->name), "%s", a->name);
    au->authed = true;
    au->by_cert = by_cert;
    au->by_token = how == BY_TOKEN;
    g->rate = (nana_rate_hint){0};
    atomic_fetch_add(&g->d->st_auth_ok, 1);
    nana_log(NANA_LOG_INFO, "grpc conn %llu auth ok: account '%s' from %s%s",
             (unsigned long long)g->handle, a->name, g->peer, how_names[how]);
}

/* Ends the login; the last signed request's seq stays (no replay after). */
static void log_out(gconn *g)
{
    gauth *au = &g->auth;
    uint64_t seq = au->reqsig_seq;
    nana_accounts_unref(au->snap);
    nana_free(au->tok);
    memset(au, 0, sizeof(*au));
    au->reqsig_seq = seq;
}

/* Keeps |tok| as the connection's last verified token (false: no memory;
 * then nothing is kept and the next call verifies it again). */
static bool keep_token(gauth *au, const char *tok, size_t n)
{
    if (n > au->tok_cap) {
        char *p = nana_realloc(au->tok, n);
        if (!p) {
            au->tok_len = 0;
            return false;
        }
        au->tok = p;
        au->tok_cap = n;
    }
    memcpy(au->tok, tok, n);
    au->tok_len = n;
    return true;
}

void nana_gdoor_auth_free(gconn *g)
{
    log_out(g);
}

void nana_gdoor_auth_open(gconn *g)
{
    nana_gdoor *d = g->d;
    if (!g->id.verified) return;
    uint64_t gen = 0;
    nana_accounts *snap = d->acc.get(d->acc.ctx, &gen);
    const nana_account *a = snap ? nana_accounts_find_by_identity(snap, &g->id) : NULL;
    if (!a || a->login != NANA_LOGIN_CERT ||
        !nana_account_ip_allowed(a, (const struct sockaddr *)&g->addr) || g->tp->trust(g)) {
        nana_accounts_unref(snap);
        return;
    }
    log_in(g, snap, gen, a, BY_CERT);
}

/* After an accounts reload: the account again, or false (the login ends). */
static bool refresh(gconn *g)
{
    nana_gdoor *d = g->d;
    gauth *au = &g->auth;
    uint64_t gen = d->acc.gen(d->acc.ctx);
    if (gen == au->gen) return true;
    nana_accounts *snap = d->acc.get(d->acc.ctx, &gen);
    const nana_account *a = snap ? nana_accounts_find(snap, au->name, strlen(au->name)) : NULL;
    bool ok;
    if (au->by_token) { /* the same secret, or the login ends */
        uint8_t h[32];
        if (a && a->jwt_secret) crypto_hash_sha256(h, a->jwt_secret, a->jwt_secret_len);
        ok = a && a->jwt_secret && sodium_memcmp(h, au->secret_sha, 32) == 0 &&
             nana_account_ip_allowed(a, (const struct sockaddr *)&g->addr);
    } else {
        ok = a && memcmp(a->public_key, au->pk, 32) == 0 &&
             nana_account_ip_allowed(a, (const struct sockaddr *)&g->addr) &&
             (au->by_cert ? a->login == NANA_LOGIN_CERT : (a->login & NANA_LOGIN_KEY) != 0) &&
             (!(a->login & NANA_LOGIN_CERT) || nana_account_names_identity(a, &g->id));
    }
    if (!ok) {
        nana_accounts_unref(snap);
        return false;
    }
    nana_accounts_unref(au->snap);
    au->snap = snap;
    au->gen = gen;
    au->acct = a;
    return true;
}

/* A metadata value as text (NULL when absent or empty). */
static const nana_grpc_meta *meta(const nana_grpc_head *h, const char *name)
{
    const nana_grpc_meta *m = nana_grpc_head_meta(h, name, 0);
    return m && m->value_len ? m : NULL;
}

/* Reads the decimal Unix time |m|; false when it is not one. */
static bool read_time(const nana_grpc_meta *m, int64_t *out)
{
    if (m->value_len > 19) return false;
    int64_t v = 0;
    for (size_t i = 0; i < m->value_len; i++) {
        if (m->value[i] < '0' || m->value[i] > '9') return false;
        v = v * 10 + (m->value[i] - '0');
    }
    *out = v;
    return true;
}

/*
 * Counts a failed login against the address and logs |why|; the client is
 * told |tell| (NULL: "authentication failed"), or that it is now banned.
 */
static nana_grpc_status refuse_tell(gconn *g, const char *why, const char *tell, char *msg,
                                    size_t cap)
{
    nana_gdoor *d = g->d;
    const struct sockaddr *sa = (const struct sockaddr *)&g->addr;
    atomic_fetch_add(&d->st_auth_failed, 1);
    bool banned = !d->o.no_bans && nana_ban_failure(d->ban, sa, nana_now_ns());
    nana_log(NANA_LOG_WARN, "grpc conn %llu auth failed from %s: %s", (unsigned long long)g->handle,
             g->peer, why);
    if (banned)
        nana_log(NANA_LOG_WARN, "%s banned for %u s after %u failed authentications", g->peer,
                 d->o.ban_seconds, d->o.ban_failures);
    snprintf(msg, cap, "%s",
             banned ? "too many failed logins from this address: banned for now"
                    : (tell ? tell : "authentication failed"));
    return NANA_GRPC_UNAUTHENTICATED;
}

/* refuse_tell, telling the client only "authentication failed". */
static nana_grpc_status refuse(gconn *g, const char *why, char *msg, size_t cap)
{
    return refuse_tell(g, why, NULL, msg, cap);
}

/* Verifies the signed metadata of |h|. */
static nana_grpc_status sign_in(gconn *g, const nana_grpc_head *h, const nana_grpc_meta *acct,
                                char *msg, size_t cap)
{
    nana_gdoor *d = g->d;
    const struct sockaddr *sa = (const struct sockaddr *)&g->addr;
    if (!d->o.no_bans && nana_ban_check(d->ban, sa, nana_now_ns())) {
        snprintf(msg, cap, "too many failed logins from this address: banned for now");
        return NANA_GRPC_UNAUTHENTICATED;
    }
    const nana_grpc_meta *ts = meta(h, "nana-timestamp");
    const nana_grpc_meta *sig = meta(h, "nana-signature-bin");
    if (!ts || !sig) return refuse(g, "nana-timestamp or nana-signature-bin missing", msg, cap);
    int64_t t;
    if (!read_time(ts, &t)) return refuse(g, "nana-timestamp is not Unix seconds", msg, cap);
    int64_t now = (int64_t)time(NULL);
    if (t > now + (int64_t)d->o.auth_skew_s || t < now - (int64_t)d->o.auth_skew_s)
        return refuse(g, "nana-timestamp too far from the server's clock", msg, cap);
    if (sig->value_len != 64) return refuse(g, "nana-signature-bin is not 64 bytes", msg, cap);
    uint8_t exporter[32];
    if (g->tp->exporter(g, NANA_GRPC_LOGIN_EXPORTER_LABEL, exporter, 32))
        return refuse(g,
                      "no TLS exporter value (a plaintext connection has none, or its handshake "
                      "has not finished)",
                      msg, cap);
    uint64_t gen = 0;
    nana_accounts *snap = d->acc.get(d->acc.ctx, &gen);
    const nana_account *a =
        snap ? nana_accounts_find(snap, (const char *)acct->value, acct->value_len) : NULL;
    uint8_t m[sizeof(NANA_GRPC_LOGIN_CONTEXT) + 32 + 80 + 24];
    size_t mlen = nana_grpc_login_message(exporter, (const char *)acct->value, acct->value_len,
                                          (const char *)ts->value, ts->value_len, m, sizeof(m));
    static const uint8_t zero[32];
    /* Verified even for an unknown name: the answer takes the same time. */
    bool sig_ok =
        mlen && crypto_sign_verify_detached(sig->value, m, mlen, a ? a->public_key : zero) == 0;
    const char *why = NULL;
    if (!a)
        why = "unknown account";
    else if (!sig_ok || sodium_is_zero(a->public_key, 32))
        why = "bad signature";
    else if (!nana_account_ip_allowed(a, sa))
        why = "address not allowed for the account";
    else if ((a->login & NANA_LOGIN_CERT) && !nana_account_names_identity(a, &g->id))
        why = "the account also needs its client certificate, and this one does not name it";
    else if (g->auth.authed && strcmp(g->auth.name, a->name) != 0)
        why = "the connection is logged in as another account";
    else if (!g->auth.authed && g->tp->trust(g))
        why = "the connection was closed to make room meanwhile";
    if (why) {
        nana_accounts_unref(snap);
        return refuse(g, why, msg, cap);
    }
    if (!d->o.no_bans) nana_ban_success(d->ban, sa);
    if (g->auth.authed) /* a fresh signature of the same account: the login stands */
        nana_accounts_unref(snap);
    else
        log_in(g, snap, gen, a, BY_SIG);
    memcpy(g->auth.sig, sig->value, 64);
    g->auth.have_sig = true;
    return NANA_GRPC_OK;
}

/* True if the address is banned now (the message says so). */
static bool banned(gconn *g, char *msg, size_t cap)
{
    nana_gdoor *d = g->d;
    if (d->o.no_bans || !nana_ban_check(d->ban, (const struct sockaddr *)&g->addr, nana_now_ns()))
        return false;
    snprintf(msg, cap, "too many failed logins from this address: banned for now");
    return true;
}

/* The token of an "authorization: Bearer <token>" value, or NULL (*n its length). */
static const char *bearer(const nana_grpc_meta *m, size_t *n)
{
    static const char scheme[] = "bearer ";
    size_t sl = sizeof(scheme) - 1;
    if (m->value_len <= sl || strncasecmp((const char *)m->value, scheme, sl) != 0) return NULL;
    *n = m->value_len - sl;
    return (const char *)m->value + sl;
}

/*
 * Verifies the bearer token of |auth| (the authorization metadata): a
 * connection not logged in is logged in as its subject; a logged-in one
 * must be its subject's, and takes the token's end and roles.
 */
static nana_grpc_status token_in(gconn *g, const nana_grpc_meta *auth, char *msg, size_t cap)
{
    nana_gdoor *d = g->d;
    gauth *au = &g->auth;
    const struct sockaddr *sa = (const struct sockaddr *)&g->addr;
    if (banned(g, msg, cap)) return NANA_GRPC_UNAUTHENTICATED;
    size_t n = 0;
    const char *tok = bearer(auth, &n);
    if (!tok) return refuse(g, "the authorization metadata is not \"Bearer <token>\"", msg, cap);
    /* The token this connection verified last, byte for byte, with the
     * accounts unchanged since (refresh ran) and before its exp: taken as
     * it is. A client sends the same token with every call; verifying it
     * (base64, JSON, HMAC) cost more than the call itself. */
    /* (memcmp: the bytes compared are this connection's own last token,
     * which its client sent; the time it takes tells that client nothing) */
    if (au->authed && au->by_token && au->tok_len == n && n && !memcmp(au->tok, tok, n) &&
        au->gen == d->acc.gen(d->acc.ctx) && (int64_t)time(NULL) < au->token_exp)
        return NANA_GRPC_OK;
    nana_jwt t;
    char why[NANA_ERRMSG_MAX];
    if (nana_jwt_parse(tok, n, &t)) { /* the token's form: the client may know what is wrong */
        snprintf(why, sizeof(why), "%s", nana_errmsg());
        char tell[NANA_ERRMSG_MAX + 32];
        snprintf(tell, sizeof(tell), "authentication failed: %s", why);
        return refuse_tell(g, why, tell, msg, cap);
    }
    uint64_t gen = 0;
    nana_accounts *snap = d->acc.get(d->acc.ctx, &gen);
    const nana_account *a = snap ? nana_accounts_find(snap, t.sub, t.sub_len) : NULL;
    bool secret = a && a->jwt_secret;
    static const uint8_t zero[32];
    /* Checked even for an unknown name or one without a secret: the same time. */
    int rc = nana_jwt_verify(&t, secret ? a->jwt_secret : zero,
                             secret ? a->jwt_secret_len : sizeof(zero), (int64_t)time(NULL));
    snprintf(why, sizeof(why), "%s", rc ? nana_errmsg() : "");
    const char *tell = NULL; /* told only once the signature verified */
    if (!a)
        snprintf(why, sizeof(why), "unknown account");
    else if (!secret)
        snprintf(why, sizeof(why), "the account has no jwt_secret_file: no tokens");
    else if (rc == NANA_ERR_TIMEOUT || rc == NANA_ERR_TOOEARLY)
        tell = rc == NANA_ERR_TIMEOUT ? "the token expired" : "the token is not valid yet";
    else if (rc) {
        /* why says it (a bad signature) */
    } else if (!nana_account_ip_allowed(a, sa))
        snprintf(why, sizeof(why), "address not allowed for the account");
    else if (au->authed && strcmp(au->name, a->name) != 0) {
        snprintf(why, sizeof(why), "the token names another account than the connection's");
        tell = "this connection is logged in as another account; open a new one";
    } else if (!au->authed && g->tp->trust(g))
        snprintf(why, sizeof(why), "the connection was closed to make room meanwhile");
    if (why[0] || !a) {
        nana_accounts_unref(snap);
        return refuse_tell(g, why, tell, msg, cap);
    }
    if (!d->o.no_bans) nana_ban_success(d->ban, sa);
    uint8_t sha[32];
    crypto_hash_sha256(sha, a->jwt_secret, a->jwt_secret_len);
    if (!au->authed)
        log_in(g, snap, gen, a, BY_TOKEN); /* |a| stays valid: the connection holds snap */
    else
        nana_accounts_unref(snap); /* the connection keeps its own snapshot */
    if (au->by_token) memcpy(au->secret_sha, sha, 32);
    au->token_exp = t.exp;
    au->token_roles = t.has_roles;
    au->token_grants = t.roles;
    if (au->by_token) (void)keep_token(au, tok, n);
    return NANA_GRPC_OK;
}

bool nana_gdoor_login_allows(const gconn *g, unsigned method_flags)
{
    const gauth *au = &g->auth;
    if (!au->token_roles) return true;
    if ((method_flags & (NANA_M_ADMIN | NANA_M_SQL)) && !(au->token_grants & NANA_JWT_ROLE_ADMIN))
        return false;
    if ((method_flags & NANA_M_WRITE) &&
        !(au->token_grants & (NANA_JWT_ROLE_WRITE | NANA_JWT_ROLE_ADMIN)))
        return false;
    return true;
}

bool nana_gdoor_call_may_write(const gcall *c)
{
    return c->conn && nana_gdoor_login_allows(c->conn, NANA_M_WRITE);
}

uint64_t nana_gdoor_proof_seq(nana_gdoor *d)
{
    return atomic_fetch_add(&d->proof_seq, 1) + 1;
}

nana_grpc_status nana_gdoor_auth_reqsig(gconn *g, const uint8_t *sig, size_t slen,
                                        const uint8_t *query, size_t qlen,
                                        const nana_account **acct, char *msg, size_t cap)
{
    nana_gdoor *d = g->d;
    gauth *au = &g->auth;
    const struct sockaddr *sa = (const struct sockaddr *)&g->addr;
    *acct = NULL;
    if (banned(g, msg, cap)) return NANA_GRPC_UNAUTHENTICATED;
    if (au->authed && !refresh(g)) log_out(g);
    nana_reqsig s;
    char why[NANA_ERRMSG_MAX];
    if (nana_reqsig_parse(sig, slen, &s)) {
        snprintf(why, sizeof(why), "%s", nana_errmsg());
        return refuse(g, why, msg, cap);
    }
    uint8_t exporter[32];
    if (g->tp->exporter(g, NANA_GRPC_LOGIN_EXPORTER_LABEL, exporter, 32))
        return refuse(g,
                      "no TLS exporter value (a plaintext connection has none, or its handshake "
                      "has not finished)",
                      msg, cap);
    uint64_t gen = 0;
    nana_accounts *snap = NULL;
    const nana_account *a;
    if (au->authed) {
        a = strcmp(au->name, s.account) == 0 ? au->acct : NULL;
        if (!a)
            return refuse(g,
                          "the request is signed by another account than the "
                          "connection's",
                          msg, cap);
    } else {
        snap = d->acc.get(d->acc.ctx, &gen);
        a = snap ? nana_accounts_find(snap, s.account, s.account_len) : NULL;
    }
    static const uint8_t zero[32];
    bool sig_ok = nana_reqsig_verify(&s, a ? a->public_key : zero, exporter, query, qlen) == 0;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t now_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    int64_t skew_ms = (int64_t)d->o.auth_skew_s * 1000;
    const char *w = NULL;
    if (!a)
        w = "unknown account";
    else if (!sig_ok || sodium_is_zero(a->public_key, 32))
        w = "bad request signature";
    else if (s.unix_ms > now_ms + skew_ms || s.unix_ms < now_ms - skew_ms)
        w = "the request signature's time is too far from the server's clock";
    else if (s.seq <= au->reqsig_seq)
        w = "the request signature's seq is not above the last one on this connection";
    else if (!nana_account_ip_allowed(a, sa))
        w = "address not allowed for the account";
    else if (!au->authed && (a->login & NANA_LOGIN_CERT) && !nana_account_names_identity(a, &g->id))
        w = "the account also needs its client certificate, and this one does not name it";
    else if (!au->authed && g->tp->trust(g))
        w = "the connection was closed to make room meanwhile";
    if (w) {
        nana_accounts_unref(snap);
        return refuse(g, w, msg, cap);
    }
    if (!d->o.no_bans) nana_ban_success(d->ban, sa);
    if (!au->authed) log_in(g, snap, gen, a, BY_REQSIG);
    au->reqsig_seq = s.seq;
    *acct = au->acct;
    return NANA_GRPC_OK;
}

nana_grpc_status nana_gdoor_auth_call(gconn *g, const nana_grpc_head *h, char *msg, size_t cap)
{
    gauth *au = &g->auth;
    if (au->authed && !refresh(g)) {
        nana_log(NANA_LOG_INFO, "grpc conn %llu: account '%s' was removed or changed; login ended",
                 (unsigned long long)g->handle, au->name);
        log_out(g);
    }
    const nana_grpc_meta *auth = meta(h, "authorization");
    if (auth) return token_in(g, auth, msg, cap);
    if (au->authed && au->by_token && (int64_t)time(NULL) >= au->token_exp) {
        snprintf(msg, cap, "the token expired");
        return NANA_GRPC_UNAUTHENTICATED;
    }
    const nana_grpc_meta *acct = meta(h, "nana-account");
    if (au->authed) {
        /* The same login again, or none: the connection's login stands. */
        if (!acct) return NANA_GRPC_OK;
        const nana_grpc_meta *sig = meta(h, "nana-signature-bin");
        bool same = strlen(au->name) == acct->value_len &&
                    memcmp(au->name, acct->value, acct->value_len) == 0;
        if (same && sig && sig->value_len == 64 && au->have_sig &&
            sodium_memcmp(au->sig, sig->value, 64) == 0)
            return NANA_GRPC_OK;
        if (same) /* a fresh signature (another second, say): verified like the first */
            return sign_in(g, h, acct, msg, cap);
        snprintf(msg, cap, "this connection is logged in as another account; open a new one");
        return NANA_GRPC_UNAUTHENTICATED;
    }
    if (!acct) {
        snprintf(msg, cap,
                 "authentication required: a client certificate that logs an account in, "
                 "the nana-account, nana-timestamp and nana-signature-bin metadata, "
                 "or authorization: Bearer <token>");
        return NANA_GRPC_UNAUTHENTICATED;
    }
    return sign_in(g, h, acct, msg, cap);
}
