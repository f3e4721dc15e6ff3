/*
 * server.c - starting and stopping the server: options, files, the QUIC
 * endpoint with the session callbacks, the databases, the worker pool,
 * bans, accounts (a file watched for edits, or one public key), the
 * per-account rate buckets, and the graceful stop.
 */
#include "server/server_int.h"

#include "auth/nana_keys.h"
#include "util/nana_file.h"
#include "util/nana_log.h"

#include <errno.h>
#include <malloc.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_RATE_BUCKETS 100000

/* nana_server_opts_init (the defaults) is in options.c, with the option rows. */

/* Fills the zero fields of |o| from the defaults. */
static void fill_defaults(nana_server_opts *o)
{
    nana_server_opts d;
    nana_server_opts_init(&d);
#define DEF(f)                                                                                     \
    if (!o->f) o->f = d.f
    DEF(host);
    DEF(threads);
    DEF(workers);
    DEF(db_path);
    DEF(public_key_path);
    DEF(cert_path);
    DEF(key_path);
    DEF(max_stream_bytes);
    DEF(max_conn_bytes);
    DEF(max_preauth_streams);
    DEF(max_connections);
    DEF(max_conns_per_addr);
    DEF(max_unauthenticated);
    DEF(auth_timeout_ms);
    DEF(max_preauth_request_bytes);
    DEF(max_buffered_bytes);
    DEF(request_idle_ms);
    DEF(request_timeout_ms);
    DEF(max_unread_reply_bytes);
    DEF(reply_stall_ms);
    DEF(max_streams);
    DEF(call_timeout_ms);
    DEF(queue_limit);
    DEF(max_dbs);
    DEF(idle_timeout_ms);
    DEF(challenge_ttl_ms);
    DEF(ban_failures);
    DEF(ban_seconds);
    DEF(grace_ms);
#undef DEF
    if (o->calls_per_sec <= 0) o->calls_per_sec = d.calls_per_sec;
    if (o->max_stream_bytes < 16) o->max_stream_bytes = 16;
}

/* A readable regular file, or an error naming it and what it is for. */
static int need_file(const char *path, const char *what)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return nana_err_set(errno == ENOENT ? NANA_ERR_NOTFOUND : NANA_ERR_IO, "%s %s: %s", what,
                            path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return nana_err_set(NANA_ERR_INVALID, "%s %s: not a file", what, path);
    if (access(path, R_OK) != 0)
        return nana_err_set(NANA_ERR_IO, "%s %s: %s", what, path, strerror(errno));
    return NANA_OK;
}

/* Prefixes the current error detail with |what|. */
static int wrap(int rc, const char *what)
{
    char msg[NANA_ERRMSG_MAX];
    snprintf(msg, sizeof(msg), "%s", nana_errmsg());
    return nana_err_set(rc, "%s: %s", what, msg);
}

/* Loads the accounts: the file (watched), or the single public key. */
static int load_accounts(nana_server *s)
{
    const nana_server_opts *o = &s->o;
    int rc;
    if (o->accounts_path) {
        if ((rc = need_file(o->accounts_path, "accounts file"))) return rc;
        nana_accounts *a;
        if ((rc = nana_accounts_load(o->accounts_path, &a))) return wrap(rc, o->accounts_path);
        rc = nana_accounts_watch_start(o->accounts_path, a, &s->watch);
        const char *dir = nana_accounts_db_dir(a);
        if (!rc && dir && !o->db_dir) {
            /* A relative db_dir is relative to the accounts file. */
            if (dir[0] == '/')
                snprintf(s->db_dir, sizeof(s->db_dir), "%s", dir);
            else {
                const char *slash = strrchr(o->accounts_path, '/');
                int dn = slash ? (int)(slash - o->accounts_path) : 1;
                snprintf(s->db_dir, sizeof(s->db_dir), "%.*s/%s", dn,
                         slash ? o->accounts_path : ".", dir);
            }
        }
        nana_accounts_unref(a);
        return rc;
    }
    if ((rc = need_file(o->public_key_path, "public key"))) return rc;
    uint8_t pk[32];
    if ((rc = nana_ed25519_read_public(o->public_key_path, pk)))
        return wrap(rc, o->public_key_path);
    return nana_accounts_single(pk, "default", &s->fixed);
}

nana_accounts *nana_server_accounts(nana_server *s, uint64_t *gen)
{
    if (s->watch) {
        *gen = nana_accounts_watch_generation(s->watch);
        return nana_accounts_watch_current(s->watch);
    }
    *gen = 1;
    return nana_accounts_ref(s->fixed);
}

uint64_t nana_server_accounts_gen(nana_server *s)
{
    return s->watch ? nana_accounts_watch_generation(s->watch) : 1;
}

nana_rate *nana_server_rate(nana_server *s, const char *name)
{
    pthread_mutex_lock(&s->rate_mu);
    for (size_t i = 0; i < s->nrates; i++) {
        if (strcmp(s->rates[i]->name, name) == 0) {
            nana_rate *r = s->rates[i];
            pthread_mutex_unlock(&s->rate_mu);
            return r;
        }
    }
    nana_rate *r = NULL;
    if (s->nrates < MAX_RATE_BUCKETS && (r = calloc(1, sizeof(*r)))) {
        nana_rate **grown = realloc(s->rates, (s->nrates + 1) * sizeof(*grown));
        if (!grown) {
            free(r);
            r = NULL;
        } else {
            s->rates = grown;
            pthread_mutex_init(&r->mu, NULL);
            snprintf(r->name, sizeof(r->name), "%s", name);
            r->tokens = -1; /* full on first use */
            s->rates[s->nrates++] = r;
        }
    }
    pthread_mutex_unlock(&s->rate_mu);
    return r;
}

bool nana_rate_take(nana_rate *r, double rate, uint64_t now_ns)
{
    /* A bucket of one second's calls, refilled continuously. */
    double cap = rate < 1.0 ? 1.0 : rate; /* a rate below 1/s still allows one call */
    pthread_mutex_lock(&r->mu);
    if (r->tokens < 0) {
        r->tokens = cap;
    } else {
        double add = (double)(now_ns - r->last_ns) * 1e-9 * rate;
        r->tokens = r->tokens + add > cap ? cap : r->tokens + add;
    }
    r->last_ns = now_ns;
    bool ok = r->tokens >= 1.0;
    if (ok) r->tokens -= 1.0;
    pthread_mutex_unlock(&r->mu);
    return ok;
}

/*
 * Housekeeping on the deadline thread when no call is in flight: after
 * calls were served, freed memory goes back to the system (a burst of
 * large replies leaves the process at its earlier size, not its peak).
 */
static void server_idle(void *arg)
{
    nana_server *s = arg;
    uint64_t calls = atomic_load(&s->st_calls);
    if (calls == s->trimmed_at_calls || atomic_load(&s->pending) != 0) return;
    s->trimmed_at_calls = calls;
    malloc_trim(0);
}

uint16_t nana_server_port(const nana_server *s)
{
    return nana_quic_ep_port(s->ep);
}

/*
 * The QUIC endpoint's secret for address-validation tokens and stateless
 * resets, derived from the TLS private key (keyed BLAKE2b) so that it stays
 * the same across restarts: a client of a server that crashed and came
 * back on the same port hears a stateless reset it can verify and
 * reconnects at once, instead of waiting out its idle timeout. Only the
 * holder of the key can compute it.
 */
static int static_secret_from_key(const char *key_path, uint8_t out[32])
{
    static const char label[] = "nanasqlite-server quic static secret v1";
    char *pem = NULL;
    size_t n = 0;
    int rc = nana_file_read(key_path, "TLS private key", 1u << 20, &pem, &n);
    if (rc) return rc;
    rc = crypto_generichash(out, 32, (const unsigned char *)pem, n, (const unsigned char *)label,
                            sizeof(label) - 1)
             ? nana_err_set(NANA_ERR_INTERNAL, "cannot derive the QUIC secret")
             : NANA_OK;
    sodium_memzero(pem, n);
    free(pem);
    return rc;
}

/* Frees everything a (partly) started server holds; returns the db close result. */
static int server_free(nana_server *s)
{
    /*
     * Workers and stores stop first, while the endpoint still takes their
     * replies (cancelled calls, late results, async writes completing at
     * close); the endpoint goes last and runs what was posted to it.
     */
    if (s->work) nana_work_stop(s->work);
    int rc = nana_dbs_close(s->dbs);
    nana_quic_ep_del(s->ep);
    s->ep = NULL;
    nana_work_free(s->work);
    nana_accounts_watch_stop(s->watch);
    nana_accounts_unref(s->fixed);
    nana_ban_free(s->ban);
    for (size_t i = 0; i < s->nrates; i++) {
        pthread_mutex_destroy(&s->rates[i]->mu);
        free(s->rates[i]);
    }
    free(s->rates);
    pthread_mutex_destroy(&s->rate_mu);
    free(s);
    return rc;
}

/* The accept hook: nothing is accepted until the server is fully set up. */
static int server_accept(const struct sockaddr *addr, socklen_t len, void *user)
{
    nana_server *s = user;
    if (!atomic_load_explicit(&s->ready, memory_order_acquire)) return NANA_QUIC_REFUSE_STARTING;
    return nana_session_accept(addr, len, user);
}

int nana_server_start(const nana_server_opts *opts, nana_server **out)
{
    *out = NULL;
    nana_server *s = calloc(1, sizeof(*s));
    if (!s) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    s->o = *opts;
    fill_defaults(&s->o);
    pthread_mutex_init(&s->rate_mu, NULL);
    atomic_init(&s->ready, false);
    const nana_server_opts *o = &s->o;
    /* First what fails without side effects: files, accounts, the port. */
    int rc = need_file(o->cert_path, "certificate");
    if (!rc) rc = need_file(o->key_path, "private key");
    if (!rc) rc = load_accounts(s);
    if (rc) goto fail;
    if (o->db_dir) snprintf(s->db_dir, sizeof(s->db_dir), "%s", o->db_dir);
    if (!s->db_dir[0]) {
        const char *slash = strrchr(o->db_path, '/');
        if (slash)
            snprintf(s->db_dir, sizeof(s->db_dir), "%.*s", (int)(slash - o->db_path + 1),
                     o->db_path);
        else
            snprintf(s->db_dir, sizeof(s->db_dir), ".");
    }
    nana_ban_opts bo = {.max_failures = o->ban_failures, .ban_seconds = o->ban_seconds};
    if (!(s->ban = nana_ban_new(&bo))) {
        rc = nana_err_set(NANA_ERR_NOMEM, "out of memory");
        goto fail;
    }
    static const char *const alpn[] = {"nanasqlite"};
    s->cb = nana_session_callbacks;
    s->cb.accept = server_accept;
    nana_quic_config qc;
    nana_quic_config_init(&qc);
    qc.server = 1;
    qc.host = o->host;
    qc.port = o->port;
    qc.threads = o->threads;
    qc.cert_file = o->cert_path;
    qc.key_file = o->key_path;
    if (o->client_ca_path) { /* mutual TLS: the client's certificate must chain to these */
        if ((rc = need_file(o->client_ca_path, "client CA"))) goto fail;
        qc.ca_file = o->client_ca_path;
        qc.client_auth = o->client_certs == NANA_CLIENT_CERTS_REQUIRE
                             ? NANA_QUIC_CLIENT_CERT_REQUIRE
                             : NANA_QUIC_CLIENT_CERT_REQUEST;
    } else if (o->client_certs) {
        rc = nana_err_set(NANA_ERR_INVALID, "--client-certs needs --client-ca: the CA "
                                            "certificates that client certificates must chain to");
        goto fail;
    }
    qc.alpn = alpn;
    qc.nalpn = 1;
    qc.allow_no_alpn = 1;
    qc.max_connections = o->max_connections;
    qc.max_conns_per_addr = o->max_conns_per_addr;
    qc.max_untrusted = o->max_unauthenticated;
    qc.untrusted_timeout_ms = o->auth_timeout_ms;
    qc.trust_by_app = 1; /* a connection is trusted once its client logged in */
    qc.max_streams_bidi = o->max_streams;
    qc.idle_timeout_ms = o->idle_timeout_ms;
    qc.stream_window = o->max_stream_bytes < (1u << 20) ? o->max_stream_bytes : (1u << 20);
    qc.cb = &s->cb;
    qc.user = s;
    uint8_t secret[32];
    if ((rc = static_secret_from_key(o->key_path, secret))) goto fail;
    qc.static_secret = secret;
    rc = nana_quic_ep_new(&qc, &s->ep);
    sodium_memzero(secret, sizeof(secret));
    if (rc) {
        rc = wrap(rc, "listen");
        goto fail;
    }
    /* Then what creates files: the databases (and backups/), the workers. */
    nana_store_opts so;
    nana_store_opts_init(&so);
    so.sync = o->sync;
    so.query_timeout_ms = o->call_timeout_ms;
    so.open_check = o->open_check;
    so.allow_corrupt = o->allow_corrupt;
    if ((rc = nana_dbs_open(s->db_dir, o->db_path, &so, o->max_dbs, &s->dbs))) goto fail;
    if ((rc = nana_work_new(o->workers, o->queue_limit, &s->work))) goto fail;
    nana_work_set_idle(s->work, server_idle, s);
    /* Large buffers (replies, values) are mapped and unmapped on their own,
     * so freeing them returns the memory at once: a fixed threshold, not
     * glibc's adaptive one, which after the first large free keeps every
     * later large buffer in the heap. */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    /* Publishes ep, dbs and work to the I/O threads (acquire in server_accept). */
    atomic_store_explicit(&s->ready, true, memory_order_release);
    *out = s;
    return NANA_OK;
fail : {
    char msg[NANA_ERRMSG_MAX];
    snprintf(msg, sizeof(msg), "%s", nana_errmsg());
    server_free(s);
    return nana_err_set_str(rc, msg);
}
}

int nana_server_stop(nana_server *s)
{
    if (!s) return NANA_OK;
    atomic_store(&s->draining, true);
    uint64_t until = nana_now_ns() + (uint64_t)s->o.grace_ms * 1000000ull;
    uint64_t left = atomic_load(&s->pending);
    if (left) nana_log(NANA_LOG_INFO, "stopping: waiting for %llu calls", (unsigned long long)left);
    while ((left = atomic_load(&s->pending)) > 0 && nana_now_ns() < until) {
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    if (left)
        nana_log(NANA_LOG_WARN, "stopping: %llu calls still unanswered after the grace period",
                 (unsigned long long)left);
    int rc = server_free(s);
    if (rc) nana_log(NANA_LOG_ERROR, "closing a database failed: %s", nana_errmsg());
    nana_log_flush(); /* report floods that ended since their last line */
    return rc;
}

void nana_server_get_stats(nana_server *s, nana_server_stats *out)
{
    out->calls = atomic_load(&s->st_calls);
    out->cache_answers = atomic_load(&s->st_cache);
    out->auth_ok = atomic_load(&s->st_auth_ok);
    out->auth_failed = atomic_load(&s->st_auth_failed);
    out->bans = atomic_load(&s->st_bans);
    out->timeouts = atomic_load(&s->st_timeouts);
    out->busy = atomic_load(&s->st_busy);
    out->rate_limited = atomic_load(&s->st_rate);
    out->in_flight = atomic_load(&s->pending);
}
