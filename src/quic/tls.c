/*
 * tls.c - GnuTLS for the transport: credentials, one session per
 * connection, ALPN policy, mutual TLS identity, session tickets and the
 * 0-RTT replay cache.
 *
 * ngtcp2's GnuTLS helper (ngtcp2_crypto_gnutls_configure_*_session) wires
 * a session's secrets and handshake bytes to its ngtcp2 connection through
 * the session pointer, which must be the connection's ngtcp2_crypto_conn_ref.
 * TLS 1.3 only, without middlebox compatibility mode (QUIC forbids it).
 *
 * ALPN: the server lists what it accepts without GNUTLS_ALPN_MANDATORY,
 * which would refuse the NanaSQLite clients that offer no ALPN at all; a
 * ClientHello hook refuses instead a client whose offer matched nothing
 * (or that offered none when allow_no_alpn is off).
 */
#include "auth/nana_tlspeer.h"
#include "quic/quic_int.h"
#include "util/nana_parse.h"

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* TLS 1.3 only; AES-128-GCM first (SHA-256 transcripts are cheaper than
 * AES-256's SHA-384), X25519 first; no middlebox compatibility mode. */
#define PRIORITY                                                                                   \
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:+CHACHA20-POLY1305:+AES-256-GCM:"      \
    "-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:+GROUP-SECP384R1:%DISABLE_TLS13_COMPAT_MODE"
#define REPLAY_CAP   65536 /* remembered 0-RTT ClientHellos */
#define REPLAY_PROBE 32

/* Finds the connection of a GnuTLS session. */
static nana_quic_conn *session_conn(gnutls_session_t s)
{
    ngtcp2_crypto_conn_ref *ref = gnutls_session_get_ptr(s);
    return ref ? ref->user_data : NULL;
}

/*
 * The anti-replay database of 0-RTT: GnuTLS asks whether a ClientHello
 * was seen within its window. A fixed-size open-addressed set of keyed
 * hashes with expiry; when the probe window is full the hello is treated
 * as seen (the client falls back to a full handshake: safe, never wrong).
 */
static int replay_add(void *ptr, time_t exp, const gnutls_datum_t *key, const gnutls_datum_t *data)
{
    (void)data;
    nana_quic_tls *t = ptr;
    uint64_t h;
    crypto_shorthash((unsigned char *)&h, key->data, key->size, t->replay_seed);
    if (h == 0) h = 1;
    uint64_t now = (uint64_t)time(NULL);
    int rc = GNUTLS_E_DB_ENTRY_EXISTS;
    pthread_mutex_lock(&t->replay_mu);
    size_t free_slot = SIZE_MAX;
    for (size_t i = 0; i < REPLAY_PROBE; i++) {
        size_t j = (size_t)(h + i) & (t->replay_cap - 1);
        if (t->replay_keys[j] == h && t->replay_exp[j] >= now) {
            free_slot = SIZE_MAX;
            break;
        }
        if ((t->replay_keys[j] == 0 || t->replay_exp[j] < now) && free_slot == SIZE_MAX)
            free_slot = j;
    }
    if (free_slot != SIZE_MAX) {
        t->replay_keys[free_slot] = h;
        t->replay_exp[free_slot] = exp > 0 ? (uint64_t)exp : now + 10;
        rc = 0;
    }
    pthread_mutex_unlock(&t->replay_mu);
    return rc;
}

/* GnuTLS's own trace, on stderr when NANA_GNUTLS_DEBUG is a level (debugging only). */
static void gnutls_debug(int level, const char *msg)
{
    fprintf(stderr, "gnutls[%d]: %s", level, msg);
}

int nana_quic_tls_init(nana_quic_tls *t, const nana_quic_config *cfg)
{
    const char *dbg = getenv("NANA_GNUTLS_DEBUG");
    if (dbg) {
        gnutls_global_set_log_function(gnutls_debug);
        uint64_t level = 0;
        if (nana_parse_u64(dbg, 0, 99, &level) != 0) level = 5;
        gnutls_global_set_log_level((int)level);
    }
    memset(t, 0, sizeof(*t));
    t->server = cfg->server != 0;
    t->allow_no_alpn = cfg->allow_no_alpn != 0;
    t->enable_0rtt = cfg->enable_0rtt != 0;
    t->client_auth = cfg->client_auth;
    pthread_mutex_init(&t->replay_mu, NULL);
    int rc = gnutls_certificate_allocate_credentials(&t->cred);
    if (rc < 0) return nana_err_set(NANA_ERR_NOMEM, "TLS credentials: %s", gnutls_strerror(rc));
    if (cfg->cert_file || cfg->key_file) {
        if (!cfg->cert_file || !cfg->key_file)
            return nana_err_set(NANA_ERR_INVALID,
                                "a certificate needs both cert_file and key_file");
        rc = gnutls_certificate_set_x509_key_file(t->cred, cfg->cert_file, cfg->key_file,
                                                  GNUTLS_X509_FMT_PEM);
        if (rc < 0)
            return nana_err_set(NANA_ERR_IO, "cannot load the certificate %s or its key: %s",
                                cfg->cert_file, gnutls_strerror(rc));
    } else if (t->server) {
        return nana_err_set(NANA_ERR_INVALID, "a server needs cert_file and key_file");
    }
    if (cfg->ca_file) {
        rc = gnutls_certificate_set_x509_trust_file(t->cred, cfg->ca_file, GNUTLS_X509_FMT_PEM);
        if (rc <= 0)
            return nana_err_set(NANA_ERR_IO, "cannot load trust anchors from %s: %s", cfg->ca_file,
                                rc < 0 ? gnutls_strerror(rc) : "no certificates");
        t->have_ca = true;
    }
    if (t->server && cfg->client_auth != NANA_QUIC_CLIENT_CERT_IGNORE && !t->have_ca)
        return nana_err_set(NANA_ERR_INVALID, "client certificates need ca_file");
    if (!t->server && !t->have_ca) {
        rc = gnutls_certificate_set_x509_system_trust(t->cred);
        if (rc <= 0)
            return nana_err_set(NANA_ERR_IO, "no ca_file given and the system trust store is %s",
                                rc < 0 ? gnutls_strerror(rc) : "empty");
        t->have_ca = true;
    }
    rc = gnutls_priority_init(&t->prio, PRIORITY, NULL);
    if (rc < 0) return nana_err_set(NANA_ERR_INTERNAL, "TLS priority: %s", gnutls_strerror(rc));
    if (cfg->nalpn) {
        t->alpn = calloc(cfg->nalpn, sizeof(*t->alpn));
        if (!t->alpn) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < cfg->nalpn; i++) {
            size_t n = strlen(cfg->alpn[i]);
            if (n == 0 || n > NANA_Q_ALPN_MAX)
                return nana_err_set(NANA_ERR_INVALID, "ALPN names are 1 to %d bytes",
                                    NANA_Q_ALPN_MAX);
            t->alpn[i].data = (unsigned char *)(uintptr_t)cfg->alpn[i];
            t->alpn[i].size = (unsigned)n;
        }
        t->nalpn = cfg->nalpn;
    }
    if (t->server && t->enable_0rtt) {
        rc = gnutls_session_ticket_key_generate(&t->ticket_key);
        if (rc < 0) return nana_err_set(NANA_ERR_INTERNAL, "ticket key: %s", gnutls_strerror(rc));
        rc = gnutls_anti_replay_init(&t->anti_replay);
        if (rc < 0) return nana_err_set(NANA_ERR_INTERNAL, "anti-replay: %s", gnutls_strerror(rc));
        gnutls_anti_replay_set_add_function(t->anti_replay, replay_add);
        gnutls_anti_replay_set_ptr(t->anti_replay, t);
        t->replay_cap = REPLAY_CAP;
        t->replay_keys = calloc(t->replay_cap, sizeof(*t->replay_keys));
        t->replay_exp = calloc(t->replay_cap, sizeof(*t->replay_exp));
        if (!t->replay_keys || !t->replay_exp)
            return nana_err_set(NANA_ERR_NOMEM, "out of memory for the replay cache");
        randombytes_buf(t->replay_seed, sizeof(t->replay_seed));
    }
    return NANA_OK;
}

void nana_quic_tls_free(nana_quic_tls *t)
{
    if (t->cred) gnutls_certificate_free_credentials(t->cred);
    if (t->prio) gnutls_priority_deinit(t->prio);
    if (t->ticket_key.data) {
        sodium_memzero(t->ticket_key.data, t->ticket_key.size);
        gnutls_free(t->ticket_key.data);
    }
    if (t->anti_replay) gnutls_anti_replay_deinit(t->anti_replay);
    free(t->alpn);
    free(t->replay_keys);
    free(t->replay_exp);
    pthread_mutex_destroy(&t->replay_mu);
    memset(t, 0, sizeof(*t));
}

/* Reads a big-endian length of |n| bytes at p[*i]; -1 when short. */
static long read_len(const uint8_t *p, size_t len, size_t *i, size_t n)
{
    if (*i + n > len) return -1;
    long v = 0;
    for (size_t k = 0; k < n; k++)
        v = (v << 8) | p[*i + k];
    *i += n;
    return v;
}

int nana_quic_tls_hello_has_alpn(const uint8_t *msg, size_t len)
{
    size_t i = 0;
    /* Tolerate the 4-byte handshake header in front of the body. */
    if (len >= 4 && msg[0] == 1 &&
        (((size_t)msg[1] << 16) | ((size_t)msg[2] << 8) | msg[3]) == len - 4)
        i = 4;
    i += 2 + 32; /* legacy_version, random */
    long n;
    if ((n = read_len(msg, len, &i, 1)) < 0 || i + (size_t)n > len) return -1; /* session id */
    i += (size_t)n;
    if ((n = read_len(msg, len, &i, 2)) < 0 || i + (size_t)n > len) return -1; /* suites */
    i += (size_t)n;
    if ((n = read_len(msg, len, &i, 1)) < 0 || i + (size_t)n > len) return -1; /* compression */
    i += (size_t)n;
    if (i == len) return 0; /* no extensions */
    if ((n = read_len(msg, len, &i, 2)) < 0 || i + (size_t)n > len) return -1;
    size_t end = i + (size_t)n;
    while (i + 4 <= end) {
        long type = read_len(msg, end, &i, 2);
        long elen = read_len(msg, end, &i, 2);
        if (type < 0 || elen < 0 || i + (size_t)elen > end) return -1;
        if (type == 16) return 1; /* application_layer_protocol_negotiation */
        i += (size_t)elen;
    }
    return i == end ? 0 : -1;
}

/* Server: after the ClientHello, refuse ALPN offers we cannot serve. */
static int hello_hook(gnutls_session_t s, unsigned htype, unsigned when, unsigned incoming,
                      const gnutls_datum_t *msg)
{
    (void)htype;
    (void)when;
    (void)incoming;
    nana_quic_conn *c = session_conn(s);
    if (!c) return GNUTLS_E_INTERNAL_ERROR;
    const nana_quic_tls *t = &c->shard->ep->tls;
    gnutls_datum_t sel;
    if (gnutls_alpn_get_selected_protocol(s, &sel) == 0) return 0;
    int offered = nana_quic_tls_hello_has_alpn(msg->data, msg->size);
    if (offered == 0 && (t->allow_no_alpn || t->nalpn == 0)) return 0;
    return GNUTLS_E_NO_APPLICATION_PROTOCOL;
}

/* Client: the blob handed to the application for resumption:
 * u32 TLS-session length, session, u32 transport-parameters length, params,
 * u32 token length, token (NEW_TOKEN, may be 0). */
static void emit_ticket(nana_quic_conn *c, const uint8_t *token, size_t tokenlen)
{
    const nana_quic_callbacks *cb = &c->shard->ep->cb;
    if (!cb->session_ticket) return;
    gnutls_datum_t sess = {NULL, 0};
    if (gnutls_session_get_data2(c->tls, &sess) < 0) return;
    const ngtcp2_transport_params *params = ngtcp2_conn_get_remote_transport_params(c->q);
    if (!params) {
        gnutls_free(sess.data);
        return;
    }
    uint8_t tp[256];
    ngtcp2_ssize tplen = ngtcp2_encode_transport_params(
        tp, sizeof(tp), NGTCP2_TRANSPORT_PARAMS_TYPE_ENCRYPTED_EXTENSIONS, params);
    if (tplen < 0) {
        gnutls_free(sess.data);
        return;
    }
    size_t total = 12 + sess.size + (size_t)tplen + tokenlen;
    uint8_t *blob = malloc(total);
    if (blob) {
        uint8_t *p = blob;
        uint32_t lens[3] = {sess.size, (uint32_t)tplen, (uint32_t)tokenlen};
        const uint8_t *parts[3] = {sess.data, tp, token};
        for (int k = 0; k < 3; k++) {
            p[0] = (uint8_t)(lens[k] >> 24);
            p[1] = (uint8_t)(lens[k] >> 16);
            p[2] = (uint8_t)(lens[k] >> 8);
            p[3] = (uint8_t)lens[k];
            p += 4;
            if (lens[k]) memcpy(p, parts[k], lens[k]);
            p += lens[k];
        }
        cb->session_ticket(c, blob, total, c->shard->ep->cfg.user);
        free(blob);
    }
    gnutls_free(sess.data);
}

/* Client: a NewSessionTicket arrived. */
static int ticket_hook(gnutls_session_t s, unsigned htype, unsigned when, unsigned incoming,
                       const gnutls_datum_t *msg)
{
    (void)when;
    (void)incoming;
    (void)msg;
    if (htype != GNUTLS_HANDSHAKE_NEW_SESSION_TICKET) return 0;
    nana_quic_conn *c = session_conn(s);
    if (c) emit_ticket(c, NULL, 0);
    return 0;
}

void nana_quic_tls_new_token(nana_quic_conn *c, const uint8_t *token, size_t len)
{
    emit_ticket(c, token, len);
}

int nana_quic_tls_session(nana_quic_tls *t, nana_quic_conn *c, const char *server_name,
                          const uint8_t *tls_session, size_t tls_session_len)
{
    unsigned flags = GNUTLS_NO_END_OF_EARLY_DATA;
    if (t->server) {
        flags |= GNUTLS_SERVER | GNUTLS_NO_AUTO_SEND_TICKET;
        if (t->enable_0rtt) flags |= GNUTLS_ENABLE_EARLY_DATA;
    } else {
        flags |= GNUTLS_CLIENT | GNUTLS_ENABLE_EARLY_DATA;
    }
    int rc = gnutls_init(&c->tls, flags);
    if (rc < 0) return nana_err_set(NANA_ERR_NOMEM, "TLS session: %s", gnutls_strerror(rc));
    if ((rc = gnutls_priority_set(c->tls, t->prio)) < 0) goto fail;
    if (t->server) {
        if (t->enable_0rtt) {
            if ((rc = gnutls_session_ticket_enable_server(c->tls, &t->ticket_key)) < 0) goto fail;
            gnutls_anti_replay_enable(c->tls, t->anti_replay);
            gnutls_record_set_max_early_data_size(c->tls, 0xffffffffu);
        }
        gnutls_handshake_set_hook_function(c->tls, GNUTLS_HANDSHAKE_CLIENT_HELLO, GNUTLS_HOOK_POST,
                                           hello_hook);
        if (ngtcp2_crypto_gnutls_configure_server_session(c->tls) != 0) {
            rc = GNUTLS_E_INTERNAL_ERROR;
            goto fail;
        }
    } else {
        gnutls_handshake_set_hook_function(c->tls, GNUTLS_HANDSHAKE_NEW_SESSION_TICKET,
                                           GNUTLS_HOOK_POST, ticket_hook);
        if (ngtcp2_crypto_gnutls_configure_client_session(c->tls) != 0) {
            rc = GNUTLS_E_INTERNAL_ERROR;
            goto fail;
        }
        if (tls_session && tls_session_len &&
            gnutls_session_set_data(c->tls, tls_session, tls_session_len) < 0) {
            /* A stale ticket only costs the resumption. */
        }
    }
    gnutls_session_set_ptr(c->tls, &c->conn_ref);
    if ((rc = gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE, t->cred)) < 0) goto fail;
    if (t->nalpn &&
        (rc = gnutls_alpn_set_protocols(c->tls, t->alpn, (unsigned)t->nalpn,
                                        t->server ? GNUTLS_ALPN_SERVER_PRECEDENCE : 0)) < 0)
        goto fail;
    if (t->server) {
        if (t->client_auth != NANA_QUIC_CLIENT_CERT_IGNORE)
            nana_tlspeer_request(c->tls, t->client_auth == NANA_QUIC_CLIENT_CERT_REQUIRE);
    } else {
        /* GnuTLS keeps the name's pointer: it lives in the connection. */
        snprintf(c->server_name, sizeof(c->server_name), "%s",
                 server_name && server_name[0] ? server_name : "localhost");
        if ((rc = gnutls_server_name_set(c->tls, GNUTLS_NAME_DNS, c->server_name,
                                         strlen(c->server_name))) < 0)
            goto fail;
        gnutls_session_set_verify_cert(c->tls, c->server_name, 0);
    }
    ngtcp2_conn_set_tls_native_handle(c->q, c->tls);
    return NANA_OK;
fail:
    gnutls_deinit(c->tls);
    c->tls = NULL;
    return nana_err_set(NANA_ERR_INTERNAL, "TLS session setup: %s", gnutls_strerror(rc));
}

int nana_quic_conn_exporter(const nana_quic_conn *c, const char *label, const uint8_t *context,
                            size_t context_len, uint8_t *out, size_t out_len)
{
    if (!c->tls || !ngtcp2_conn_get_handshake_completed(c->q))
        return nana_err_set(NANA_ERR_INVALID, "TLS exporter: the handshake has not finished");
    int rc = gnutls_prf_rfc5705(c->tls, strlen(label), label, context_len, (const char *)context,
                                out_len, (char *)out);
    if (rc < 0) return nana_err_set(NANA_ERR_INTERNAL, "TLS exporter: %s", gnutls_strerror(rc));
    return NANA_OK;
}

void nana_quic_tls_peer_info(nana_quic_conn *c)
{
    gnutls_datum_t sel;
    if (gnutls_alpn_get_selected_protocol(c->tls, &sel) == 0 && sel.size <= NANA_Q_ALPN_MAX) {
        memcpy(c->alpn, sel.data, sel.size);
        c->alpn[sel.size] = '\0';
    }
    if (c->is_client || c->identity.verified) return;
    _Static_assert(sizeof(c->identity.subject) == sizeof(((nana_cert_identity *)0)->subject),
                   "the QUIC identity keeps as much of a subject as the shared one");
    nana_cert_identity id;
    nana_tlspeer_identity(c->tls, &id);
    if (!id.verified) return;
    memcpy(c->identity.subject, id.subject, sizeof(c->identity.subject));
    memcpy(c->identity.cert_sha256, id.cert_sha256, sizeof(c->identity.cert_sha256));
    memcpy(c->identity.spki_sha256, id.spki_sha256, sizeof(c->identity.spki_sha256));
    c->identity.verified = 1;
}
