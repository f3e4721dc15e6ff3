/*
 * server.c - starting and stopping the server: options, files, accounts (a
 * file watched for edits, or one public key), bans, the QUIC endpoint with
 * the door seam's callbacks (doors.c), the call core (databases, workers,
 * deadlines) and the NanaSQLite door, and the graceful stop.
 */
#include "server/server_int.h"

#include "auth/nana_keys.h"
#include "util/nana_file.h"
#include "util/nana_log.h"
#include "util/nana_time.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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
    DEF(stream_window);
    DEF(cluster_wait_ms);
    DEF(cluster_start_ms);
    DEF(cluster_handshake_ms);
    DEF(cluster_conns_max);
    DEF(cluster_pending_max);
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
    if (s->port_reserve >= 0) close(s->port_reserve);
    int rc = nana_core_stop(s->core);
    /* TCP connections close on the I/O threads, which the QUIC endpoint runs. */
    nana_tcp_ep_del(s->tcp_ep);
    nana_tcp_ep_del(s->h2c_ep);
    nana_quic_ep_del(s->ep);
    s->ep = NULL;
    nana_door_free(s->nana_door);
    nana_gdoor_free(s->grpc_door);
    nana_core_free(s->core);
    nana_server_cluster_stop(s->cluster); /* after the stores: they talk to it */
    nana_accounts_watch_stop(s->watch);
    nana_accounts_unref(s->fixed);
    nana_ban_free(s->ban);
    sodium_memzero(s->proof_sk, sizeof(s->proof_sk));
    free(s);
    return rc;
}

/* The accounts, as the doors see them. */
static nana_accounts *accounts_get(void *ctx, uint64_t *gen)
{
    return nana_server_accounts(ctx, gen);
}

static uint64_t accounts_gen(void *ctx)
{
    return nana_server_accounts_gen(ctx);
}

/*
 * With port 0 the QUIC endpoint picks a free UDP port, and the TLS
 * listener takes the same number on TCP, which may be taken there: the
 * number is first reserved on TCP (a bound socket that does not listen),
 * then offered to QUIC. Returns the socket (closed just before the TCP
 * listener binds the number) with the number in *port, or -1 (no
 * reservation: port 0 goes to QUIC as it is).
 */
static int reserve_tcp_port(const char *host, uint16_t *port)
{
    struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_PASSIVE, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    if (getaddrinfo(host, "0", &hints, &ai) || !ai) return -1;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_storage sa;
    memset(&sa, 0, sizeof(sa));
    socklen_t len = sizeof(sa);
    if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) ||
        getsockname(fd, (struct sockaddr *)&sa, &len)) {
        if (fd >= 0) close(fd);
        freeaddrinfo(ai);
        return -1;
    }
    freeaddrinfo(ai);
    uint16_t p;
    if (sa.ss_family == AF_INET6) {
        struct sockaddr_in6 a6;
        memcpy(&a6, &sa, sizeof(a6));
        p = a6.sin6_port;
    } else {
        struct sockaddr_in a4;
        memcpy(&a4, &sa, sizeof(a4));
        p = a4.sin_port;
    }
    *port = ntohs(p);
    return fd;
}

/* The gRPC door's TCP listeners: TLS with ALPN "h2" on the QUIC port's
 * address and number (unless no_grpc_tcp), and plaintext h2c where asked. */
static int start_tcp(nana_server *s)
{
    const nana_server_opts *o = &s->o;
    static const char *const alpn[] = {"h2"};
    unsigned nloops = nana_quic_ep_nloops(s->ep);
    nana_loop *loops[64];
    if (nloops > 64) nloops = 64;
    for (unsigned i = 0; i < nloops; i++)
        loops[i] = nana_quic_ep_loop(s->ep, i);
    nana_tcp_config tc;
    nana_tcp_config_init(&tc);
    tc.loops = loops;
    tc.nloops = nloops;
    tc.cert_file = o->cert_path;
    tc.key_file = o->key_path;
    if (o->client_ca_path) {
        tc.ca_file = o->client_ca_path;
        tc.client_auth = o->client_certs == NANA_CLIENT_CERTS_REQUIRE ? 2 : 1;
    }
    tc.alpn = alpn;
    tc.nalpn = 1;
    tc.max_connections = o->max_connections;
    tc.max_conns_per_addr = o->max_conns_per_addr;
    tc.max_untrusted = o->max_unauthenticated;
    tc.untrusted_timeout_ms = o->auth_timeout_ms;
    tc.handshake_timeout_ms = o->tls_handshake_timeout_ms;
    tc.idle_timeout_ms = o->idle_timeout_ms;
    tc.max_out_bytes = o->tcp_send_buffer_bytes;
    tc.cb = &nana_gdoor_tcp_callbacks;
    tc.user = s->grpc_door;
    int rc;
    if (!o->no_grpc_tcp) {
        tc.host = o->host;
        tc.port = nana_quic_ep_port(s->ep);
        if (s->port_reserve >= 0) close(s->port_reserve); /* the listener takes the number */
        s->port_reserve = -1;
        if ((rc = nana_tcp_ep_new(&tc, &s->tcp_ep)))
            return wrap(rc, "listen on TCP (gRPC over HTTP/2; --no-grpc-tcp turns it off)");
    }
    if (o->h2c_host[0]) {
        tc.host = o->h2c_host;
        tc.port = (uint16_t)o->h2c_port;
        tc.plaintext = 1;
        if ((rc = nana_tcp_ep_new(&tc, &s->h2c_ep))) return wrap(rc, "listen for h2c");
        nana_log(NANA_LOG_WARN, "gRPC over plaintext HTTP/2 (h2c) on %s:%u: no TLS there",
                 o->h2c_host, (unsigned)nana_tcp_ep_port(s->h2c_ep));
    }
    return NANA_OK;
}

int nana_server_start(const nana_server_opts *opts, nana_server **out)
{
    *out = NULL;
    nana_server *s = calloc(1, sizeof(*s));
    if (!s) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    s->o = *opts;
    if (opts->host == opts->bind_host) s->o.host = s->o.bind_host; /* --bind's copy */
    fill_defaults(&s->o);
    atomic_init(&s->ready, false);
    atomic_init(&s->draining, false);
    s->port_reserve = -1;
    const nana_server_opts *o = &s->o;
    /* First what fails without side effects: files, accounts, the port. */
    int rc = need_file(o->cert_path, "certificate");
    if (!rc) rc = need_file(o->key_path, "private key");
    if (!rc) rc = load_accounts(s);
    char proof_path[4096];
    bool proof_make = false, proofs = !o->no_grpc && o->proof_mode != NANA_PROOF_NEVER;
    if (!rc && proofs)
        rc = nana_server_proof_key_find(o, proof_path, sizeof(proof_path), &proof_make);
    if (!rc && proofs && !proof_make) rc = need_file(proof_path, "proof key");
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
    qc.alpn = nana_doors_alpn(!o->no_grpc, &qc.nalpn);
    qc.allow_no_alpn = 1;
    qc.max_connections = o->max_connections;
    qc.max_conns_per_addr = o->max_conns_per_addr;
    qc.max_untrusted = o->max_unauthenticated;
    qc.untrusted_timeout_ms = o->auth_timeout_ms;
    qc.trust_by_app = 1; /* a connection is trusted once its client logged in */
    qc.max_streams_bidi = o->max_streams;
    qc.idle_timeout_ms = o->idle_timeout_ms;
    qc.keepalive_ms = o->keepalive_ms;
    qc.stream_window =
        o->max_stream_bytes < o->stream_window ? o->max_stream_bytes : o->stream_window;
    qc.cb = &nana_doors_quic_callbacks;
    qc.user = s;
    uint8_t secret[32];
    if ((rc = static_secret_from_key(o->key_path, secret))) goto fail;
    qc.static_secret = secret;
    int reserved = -1;
    bool tcp_too = !o->no_grpc && !o->no_grpc_tcp;
    for (int attempt = 0; attempt < 16; attempt++) {
        if (tcp_too && o->port == 0) {
            uint16_t p = 0;
            reserved = reserve_tcp_port(o->host, &p);
            qc.port = reserved >= 0 ? p : 0;
        }
        rc = nana_quic_ep_new(&qc, &s->ep);
        if (!rc || reserved < 0) break;
        close(reserved); /* the number is taken on UDP: another */
        reserved = -1;
    }
    s->port_reserve = reserved;
    sodium_memzero(secret, sizeof(secret));
    if (rc) {
        rc = wrap(rc, "listen");
        goto fail;
    }
    /* Then what creates files: the databases (and backups/, the lock that says the
     * files are ours), the workers, then the proof key (never made by a start
     * that fails on a database another server holds). */
    if (o->cluster_id && (rc = nana_server_cluster_start(o, &s->cluster))) goto fail;
    nana_core_opts co;
    nana_core_opts_init(&co);
    if (s->cluster) {
        co.store.cluster_nodes = nana_server_cluster_nodes(s->cluster);
        co.store.cluster_wait_ms = o->cluster_wait_ms;
    }
    co.db_dir = s->db_dir;
    co.db_path = o->db_path;
    co.store.sync = o->sync;
    co.store.query_timeout_ms = o->call_timeout_ms;
    co.store.open_check = o->open_check;
    co.store.allow_corrupt = o->allow_corrupt;
    co.max_dbs = o->max_dbs;
    co.workers = o->workers;
    co.queue_limit = o->queue_limit;
    co.call_timeout_ms = o->call_timeout_ms;
    co.calls_per_sec = o->calls_per_sec;
    co.worker_delay_ms = o->worker_delay_ms;
    if ((rc = nana_core_new(&co, &s->core))) goto fail;
    if (proofs) {
        if ((rc = nana_server_proof_key_load(proof_path, proof_make, s->proof_sk))) goto fail;
        s->have_proof_key = true;
    }
    nana_door_opts dopt;
    nana_door_opts_init(&dopt);
    dopt.max_request_bytes = o->max_stream_bytes;
    dopt.max_conn_bytes = o->max_conn_bytes;
    dopt.max_preauth_request_bytes = o->max_preauth_request_bytes;
    dopt.max_preauth_streams = o->max_preauth_streams;
    dopt.max_buffered_bytes = o->max_buffered_bytes;
    dopt.request_idle_ms = o->request_idle_ms;
    dopt.request_timeout_ms = o->request_timeout_ms;
    dopt.max_unread_reply_bytes = o->max_unread_reply_bytes;
    dopt.reply_stall_ms = o->reply_stall_ms;
    dopt.challenge_ttl_ms = o->challenge_ttl_ms;
    dopt.call_timeout_ms = o->call_timeout_ms;
    dopt.ban_seconds = o->ban_seconds;
    dopt.ban_failures = o->ban_failures;
    dopt.no_bans = o->no_bans;
    nana_door_accounts acc = {accounts_get, accounts_gen, s};
    if ((rc = nana_door_new(s->core, &dopt, &nana_doors_quic_io, s->ep, &acc, s->ban,
                            &s->nana_door)))
        goto fail;
    if (!o->no_grpc) {
        nana_gdoor_opts gopt;
        nana_gdoor_opts_init(&gopt);
        gopt.lim.max_message_bytes = (uint32_t)o->grpc_max_message_bytes;
        gopt.lim.max_header_bytes = o->grpc_max_header_bytes;
        gopt.lim.max_header_fields = o->grpc_max_header_fields;
        gopt.max_conn_bytes = o->max_conn_bytes;
        gopt.max_buffered_bytes = o->max_buffered_bytes;
        gopt.auth_skew_s = o->grpc_auth_skew_s;
        gopt.request_idle_ms = o->request_idle_ms;
        gopt.request_timeout_ms = o->request_timeout_ms;
        gopt.reply_stall_ms = o->reply_stall_ms;
        gopt.ban_seconds = o->ban_seconds;
        gopt.ban_failures = o->ban_failures;
        gopt.no_bans = o->no_bans;
        gopt.proof_sk = s->have_proof_key ? s->proof_sk : NULL;
        gopt.proof_mode = (nana_proof_mode)o->proof_mode;
        gopt.aql_batch_bytes = o->aql_batch_bytes;
        gopt.aql_window_bytes = o->aql_window_bytes;
        gopt.aql_max_inflight = o->aql_max_inflight;
        gopt.h2.max_concurrent_streams = o->max_streams;
        gopt.h2.stream_window = (uint32_t)qc.stream_window;
        gopt.h2.max_header_list = o->grpc_max_header_bytes * 2 + 4096;
        gopt.h2.rst_per_s = o->h2_rst_per_s;
        gopt.h2.rst_burst = o->h2_rst_per_s * 5;
        gopt.h2.ping_per_s = o->h2_ping_per_s;
        gopt.h2.ping_burst = o->h2_ping_per_s * 4;
        if ((rc = nana_gdoor_new(s->core, &gopt, s->ep, &acc, s->ban, &s->grpc_door))) goto fail;
        if ((rc = start_tcp(s))) goto fail;
    }
    if (s->port_reserve >= 0) close(s->port_reserve);
    s->port_reserve = -1;
    /* Publishes ep, core and the doors to the I/O threads (acquire in the accept hook). */
    atomic_store_explicit(&s->ready, true, memory_order_release);
    *out = s;
    return NANA_OK;
fail : {
    nana_error e;
    nana_error_capture(&e, rc);
    server_free(s);
    return nana_err_set_str(rc, e.msg);
}
}

int nana_server_stop(nana_server *s)
{
    if (!s) return NANA_OK;
    atomic_store(&s->draining, true);
    if (s->tcp_ep) nana_tcp_ep_stop_accepting(s->tcp_ep);
    if (s->h2c_ep) nana_tcp_ep_stop_accepting(s->h2c_ep);
    nana_core_drain(s->core);
    nana_gdoor_drain(s->grpc_door); /* GOAWAY; health watches told NOT_SERVING */
    uint64_t until = nana_now_ns() + (uint64_t)s->o.grace_ms * 1000000ull;
    uint64_t left = nana_core_held(s->core);
    if (left) nana_log(NANA_LOG_INFO, "stopping: waiting for %llu calls", (unsigned long long)left);
    while ((left = nana_core_held(s->core)) > 0 && nana_now_ns() < until) {
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
    nana_core_stats cs;
    nana_core_get_stats(s->core, &cs);
    nana_door_stats ds;
    nana_door_get_stats(s->nana_door, &ds);
    out->calls = cs.calls;
    out->cache_answers = cs.cache_answers;
    out->auth_ok = ds.auth_ok;
    out->auth_failed = ds.auth_failed;
    out->bans = ds.bans;
    out->timeouts = cs.timeouts;
    out->busy = cs.busy + ds.busy;
    out->rate_limited = cs.rate_limited;
    out->in_flight = nana_core_held(s->core);
}
