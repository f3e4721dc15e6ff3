/*
 * tls.c - GnuTLS for TCP connections: an endpoint's credentials, priority
 * and ALPN list, one non-blocking session per connection reading and
 * writing the socket through our own functions.
 *
 * TLS 1.3 and 1.2; for 1.2 only ephemeral ECDH key exchange and AEAD
 * ciphers, as HTTP/2 requires (RFC 9113 section 9.2). No session tickets,
 * no renegotiation (GnuTLS refuses a TLS 1.2 renegotiation unless asked;
 * HTTP/2 forbids it).
 *
 * ALPN: a server lists what it accepts and refuses in the ClientHello a
 * client whose offer matched nothing or that offered nothing
 * (no_application_protocol), like the QUIC endpoint.
 *
 * Our push and pull functions (rather than GnuTLS's on a descriptor) note
 * when bytes last moved (the idle deadline), never raise SIGPIPE and never
 * block: a pull timeout is answered by poll with no wait.
 */
#include "auth/nana_tlspeer.h"
#include "tcp/tcp_int.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

/* TLS 1.3 and 1.2; ECDHE with AEAD only; AES-128-GCM first; X25519 first. */
#define PRIORITY                                                                                   \
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:+AES-128-GCM:+CHACHA20-POLY1305:"      \
    "+AES-256-GCM:-KX-ALL:+ECDHE-RSA:+ECDHE-ECDSA:-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:"      \
    "+GROUP-SECP384R1"

/* Loads the certificate and key pair of |cert| and |key| into |t|. */
static int load_pair(nana_tcp_tls *t, const char *cert, const char *key)
{
    int rc = gnutls_certificate_set_x509_key_file(t->cred, cert, key, GNUTLS_X509_FMT_PEM);
    if (rc < 0)
        return nana_err_set(NANA_ERR_IO, "cannot load the certificate %s or its key: %s", cert,
                            gnutls_strerror(rc));
    return NANA_OK;
}

/* What server and client share: credentials, priority, ALPN names. */
static int init_common(nana_tcp_tls *t, const char *ca_file, const char *const *alpn, size_t nalpn)
{
    int rc = gnutls_certificate_allocate_credentials(&t->cred);
    if (rc < 0) return nana_err_set(NANA_ERR_NOMEM, "TLS credentials: %s", gnutls_strerror(rc));
    if (ca_file) {
        rc = gnutls_certificate_set_x509_trust_file(t->cred, ca_file, GNUTLS_X509_FMT_PEM);
        if (rc <= 0)
            return nana_err_set(NANA_ERR_IO, "cannot load trust anchors from %s: %s", ca_file,
                                rc < 0 ? gnutls_strerror(rc) : "no certificates");
    }
    rc = gnutls_priority_init(&t->prio, PRIORITY, NULL);
    if (rc < 0) return nana_err_set(NANA_ERR_INTERNAL, "TLS priority: %s", gnutls_strerror(rc));
    if (nalpn) {
        t->alpn = calloc(nalpn, sizeof(*t->alpn));
        if (!t->alpn) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < nalpn; i++) {
            size_t n = alpn[i] ? strlen(alpn[i]) : 0;
            if (n == 0 || n > NANA_TCP_ALPN_MAX)
                return nana_err_set(NANA_ERR_INVALID, "ALPN names are 1 to %d bytes",
                                    NANA_TCP_ALPN_MAX);
            t->alpn[i].data = (unsigned char *)(uintptr_t)alpn[i];
            t->alpn[i].size = (unsigned)n;
        }
        t->nalpn = nalpn;
    }
    return NANA_OK;
}

int nana_tcp_tls_init_server(nana_tcp_tls *t, const nana_tcp_config *cfg)
{
    memset(t, 0, sizeof(*t));
    t->server = true;
    t->client_auth = cfg->client_auth;
    if (!cfg->cert_file || !cfg->key_file)
        return nana_err_set(NANA_ERR_INVALID, "a TLS listener needs cert_file and key_file");
    if (cfg->client_auth < 0 || cfg->client_auth > 2)
        return nana_err_set(NANA_ERR_INVALID, "client_auth is 0, 1 or 2, not %d", cfg->client_auth);
    if (cfg->client_auth && !cfg->ca_file)
        return nana_err_set(NANA_ERR_INVALID, "client certificates need ca_file");
    int rc = init_common(t, cfg->ca_file, cfg->alpn, cfg->nalpn);
    if (rc) return rc;
    return load_pair(t, cfg->cert_file, cfg->key_file);
}

int nana_tcp_tls_init_client(nana_tcp_tls *t, const nana_tcp_client_config *cfg)
{
    memset(t, 0, sizeof(*t));
    const char *name = cfg->server_name && cfg->server_name[0] ? cfg->server_name : "localhost";
    if (strlen(name) >= sizeof(t->server_name))
        return nana_err_set(NANA_ERR_INVALID, "the server name is longer than %zu bytes",
                            sizeof(t->server_name) - 1);
    strcpy(t->server_name, name);
    int rc = init_common(t, cfg->ca_file, cfg->alpn, cfg->nalpn);
    if (rc) return rc;
    if (!cfg->ca_file) {
        rc = gnutls_certificate_set_x509_system_trust(t->cred);
        if (rc <= 0)
            return nana_err_set(NANA_ERR_IO, "no ca_file given and the system trust store is %s",
                                rc < 0 ? gnutls_strerror(rc) : "empty");
    }
    if (cfg->cert_file || cfg->key_file) {
        if (!cfg->cert_file || !cfg->key_file)
            return nana_err_set(NANA_ERR_INVALID,
                                "a client certificate needs both cert_file and key_file");
        return load_pair(t, cfg->cert_file, cfg->key_file);
    }
    return NANA_OK;
}

void nana_tcp_tls_free(nana_tcp_tls *t)
{
    if (t->cred) gnutls_certificate_free_credentials(t->cred);
    if (t->prio) gnutls_priority_deinit(t->prio);
    free(t->alpn);
    memset(t, 0, sizeof(*t));
}

/* GnuTLS reads the socket: bytes, 0 at the peer's end, or -1 with errno. */
static ssize_t pull(gnutls_transport_ptr_t p, void *buf, size_t n)
{
    nana_tcp_conn *c = p;
    ssize_t r = recv(c->fd, buf, n, 0);
    if (r < 0)
        gnutls_transport_set_errno(c->tls, errno);
    else if (r > 0)
        c->last_io = nana_loop_now(c->sh->loop);
    return r;
}

/* GnuTLS asks whether bytes wait: answered without waiting (the loop must
 * never block). */
static int pull_timeout(gnutls_transport_ptr_t p, unsigned ms)
{
    (void)ms;
    nana_tcp_conn *c = p;
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
    return poll(&pfd, 1, 0);
}

/* GnuTLS writes records: gathered in one sendmsg, never SIGPIPE. */
static ssize_t push(gnutls_transport_ptr_t p, const giovec_t *iov, int iovcnt)
{
    nana_tcp_conn *c = p;
    union {
        const giovec_t *in;
        struct iovec *out;
    } v = {.in = iov};
    struct msghdr m = {.msg_iov = v.out, .msg_iovlen = (size_t)iovcnt};
    ssize_t r = sendmsg(c->fd, &m, MSG_NOSIGNAL);
    if (r < 0)
        gnutls_transport_set_errno(c->tls, errno);
    else if (r > 0)
        c->last_io = nana_loop_now(c->sh->loop);
    return r;
}

/* Server: after the ClientHello, refuse a client whose ALPN offer matched
 * none of ours, or that offered none. */
static int hello_hook(gnutls_session_t s, unsigned htype, unsigned when, unsigned incoming,
                      const gnutls_datum_t *msg)
{
    (void)htype;
    (void)when;
    (void)incoming;
    (void)msg;
    gnutls_datum_t sel;
    if (gnutls_alpn_get_selected_protocol(s, &sel) == 0) return 0;
    return GNUTLS_E_NO_APPLICATION_PROTOCOL;
}

int nana_tcp_tls_session(nana_tcp_tls *t, nana_tcp_conn *c)
{
    unsigned flags = GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL | GNUTLS_NO_TICKETS;
    flags |= t->server ? GNUTLS_SERVER : GNUTLS_CLIENT;
    int rc = gnutls_init(&c->tls, flags);
    if (rc < 0) {
        c->tls = NULL;
        return nana_err_set(NANA_ERR_NOMEM, "TLS session: %s", gnutls_strerror(rc));
    }
    if ((rc = gnutls_priority_set(c->tls, t->prio)) < 0) goto fail;
    if ((rc = gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE, t->cred)) < 0) goto fail;
    if (t->nalpn) {
        unsigned af = t->server ? GNUTLS_ALPN_MANDATORY | GNUTLS_ALPN_SERVER_PRECEDENCE : 0;
        if ((rc = gnutls_alpn_set_protocols(c->tls, t->alpn, (unsigned)t->nalpn, af)) < 0)
            goto fail;
    }
    if (t->server) {
        if (t->nalpn)
            gnutls_handshake_set_hook_function(c->tls, GNUTLS_HANDSHAKE_CLIENT_HELLO,
                                               GNUTLS_HOOK_POST, hello_hook);
        if (t->client_auth) nana_tlspeer_request(c->tls, t->client_auth == 2);
    } else {
        if ((rc = gnutls_server_name_set(c->tls, GNUTLS_NAME_DNS, t->server_name,
                                         strlen(t->server_name))) < 0)
            goto fail;
        gnutls_session_set_verify_cert(c->tls, t->server_name, 0);
    }
    gnutls_transport_set_ptr(c->tls, c);
    gnutls_transport_set_pull_function(c->tls, pull);
    gnutls_transport_set_pull_timeout_function(c->tls, pull_timeout);
    gnutls_transport_set_vec_push_function(c->tls, push);
    return NANA_OK;
fail:
    gnutls_deinit(c->tls);
    c->tls = NULL;
    return nana_err_set(NANA_ERR_INTERNAL, "TLS session setup: %s", gnutls_strerror(rc));
}

void nana_tcp_tls_peer_info(nana_tcp_conn *c)
{
    gnutls_datum_t sel;
    if (gnutls_alpn_get_selected_protocol(c->tls, &sel) == 0 && sel.size <= NANA_TCP_ALPN_MAX) {
        memcpy(c->alpn, sel.data, sel.size);
        c->alpn[sel.size] = '\0';
    }
    if (c->sh->ep->server) nana_tlspeer_identity(c->tls, &c->id);
}

int nana_tcp_conn_exporter(const nana_tcp_conn *c, const char *label, const uint8_t *ctx,
                           size_t ctxlen, uint8_t *out, size_t outlen)
{
    if (!c->tls || c->state < NANA_TCP_OPEN)
        return nana_err_set(NANA_ERR_INVALID,
                            "TLS exporter: no TLS, or the handshake has not finished");
    int rc = gnutls_prf_rfc5705(c->tls, strlen(label), label, ctxlen, (const char *)ctx, outlen,
                                (char *)out);
    if (rc < 0) return nana_err_set(NANA_ERR_INTERNAL, "TLS exporter: %s", gnutls_strerror(rc));
    return NANA_OK;
}

const char *nana_tcp_conn_tls_version(const nana_tcp_conn *c)
{
    if (!c->tls || c->state < NANA_TCP_OPEN) return "";
    const char *v = gnutls_protocol_get_name(gnutls_protocol_get_version(c->tls));
    return v ? v : "";
}
