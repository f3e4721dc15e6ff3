/*
 * auth.c - who a gRPC connection's client is.
 *
 * Two ways in, both for the whole connection:
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
 *     also needs a certificate it names.
 *
 * The first signature that verifies logs the connection in and it is
 * trusted by the transport (never closed to make room for others); later
 * calls may repeat the same metadata (checked by comparison, not
 * verified again) or send none. Failed signatures count toward the
 * address's ban as failed NanaSQLite logins do. After an accounts reload
 * the account is looked up again; one removed or changed ends the login.
 */
#include "door_grpc/gdoor_int.h"

#include "util/nana_log.h"
#include "util/nana_time.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void log_in(gconn *g, nana_accounts *snap, uint64_t gen, const nana_account *a, bool by_cert)
{
    gauth *au = &g->auth;
    nana_accounts_unref(au->snap);
    au->snap = snap;
    au->gen = gen;
    au->acct = a;
    memcpy(au->pk, a->public_key, 32);
    snprintf(au->name, sizeof(au->name), "%s", a->name);
    au->authed = true;
    au->by_cert = by_cert;
    g->rate = (nana_rate_hint){0};
    atomic_fetch_add(&g->d->st_auth_ok, 1);
    nana_log(NANA_LOG_INFO, "grpc conn %llu auth ok: account '%s' from %s%s",
             (unsigned long long)g->handle, a->name, g->peer,
             by_cert ? " by client certificate" : " by signature");
}

static void log_out(gconn *g)
{
    gauth *au = &g->auth;
    nana_accounts_unref(au->snap);
    memset(au, 0, sizeof(*au));
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
        !nana_account_ip_allowed(a, (const struct sockaddr *)&g->addr) ||
        nana_quic_conn_trust(g->qc)) {
        nana_accounts_unref(snap);
        return;
    }
    log_in(g, snap, gen, a, true);
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
    bool ok = a && memcmp(a->public_key, au->pk, 32) == 0 &&
              nana_account_ip_allowed(a, (const struct sockaddr *)&g->addr) &&
              (au->by_cert ? a->login == NANA_LOGIN_CERT : (a->login & NANA_LOGIN_KEY) != 0) &&
              (!(a->login & NANA_LOGIN_CERT) || nana_account_names_identity(a, &g->id));
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

/* Counts a failed signature against the address; the answer says whether
 * it is now banned. */
static nana_grpc_status refuse(gconn *g, const char *why, char *msg, size_t cap)
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
                    : "authentication failed");
    return NANA_GRPC_UNAUTHENTICATED;
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
    if (nana_quic_conn_exporter(g->qc, NANA_GRPC_LOGIN_EXPORTER_LABEL, NULL, 0, exporter, 32))
        return refuse(g, "no TLS exporter value (handshake not finished)", msg, cap);
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
    else if (nana_quic_conn_trust(g->qc))
        why = "the connection was closed to make room meanwhile";
    if (why) {
        nana_accounts_unref(snap);
        return refuse(g, why, msg, cap);
    }
    if (!d->o.no_bans) nana_ban_success(d->ban, sa);
    log_in(g, snap, gen, a, false);
    memcpy(g->auth.sig, sig->value, 64);
    g->auth.have_sig = true;
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
    const nana_grpc_meta *acct = meta(h, "nana-account");
    if (au->authed) {
        /* The same login again, or none: the connection's login stands. */
        if (!acct) return NANA_GRPC_OK;
        const nana_grpc_meta *sig = meta(h, "nana-signature-bin");
        if (strlen(au->name) == acct->value_len &&
            memcmp(au->name, acct->value, acct->value_len) == 0 && sig && sig->value_len == 64 &&
            au->have_sig && sodium_memcmp(au->sig, sig->value, 64) == 0)
            return NANA_GRPC_OK;
        snprintf(msg, cap, "this connection is logged in as another account; open a new one");
        return NANA_GRPC_UNAUTHENTICATED;
    }
    if (!acct) {
        snprintf(msg, cap,
                 "authentication required: a client certificate that logs an account in, "
                 "or the nana-account, nana-timestamp and nana-signature-bin metadata");
        return NANA_GRPC_UNAUTHENTICATED;
    }
    return sign_in(g, h, acct, msg, cap);
}
