/*
 * tls.c - mutual TLS for a dqlite cluster's traffic, which dqlite 1.11
 * itself sends in the clear.
 *
 * dqlite and our wire-protocol client keep working on plain sockets; this
 * module puts TLS 1.3 (GnuTLS) between the machines:
 *
 *   - A front (nana_dql_tls_front) listens on a node's public cluster
 *     address. Each connection must finish a TLS handshake within
 *     handshake_ms and show a node certificate (below); only then is a
 *     connection opened to the node's private listener (an abstract Unix
 *     socket of this process), and bytes are relayed both ways. Nothing a
 *     peer sends before that reaches dqlite.
 *   - An outgoing connection (nana_dql_tls_connect) is TCP to the peer and
 *     the client side of the handshake, blocking in the caller's thread
 *     within its timeout; the caller gets one end of a socketpair whose
 *     other end is relayed through the TLS session.
 *
 * One relay thread per nana_dql_tls runs every session of it in one poll
 * loop: inbound handshakes (non-blocking) and the relaying of established
 * sessions in both directions. Each session has two fixed buffers of
 * RELAY_BUF bytes, one per direction: a side is read only while its
 * buffer has room (backpressure), so a slow reader slows its writer and
 * memory stays at two buffers a session. An end of stream is passed on
 * (close_notify and a TCP half-close one way, a half-close of the plain
 * socket the other way); once one direction has ended, the other has
 * handshake_ms to end too before the session is closed.
 *
 * A node certificate: it chains to the cluster's CA (the only trust
 * anchor: the system's CAs are not used) and its extended key usage names
 * both TLS server and TLS client authentication, since every node is both.
 * Both sides check that of the other during the handshake. Names and
 * addresses in the certificate are not checked: cluster addresses are
 * numeric and any holder of a node certificate of the cluster's CA is a
 * node, which is why that CA must issue nothing else.
 *
 * Limits on the front: conns_max inbound connections open at once (a
 * newcomer past it closes the oldest still in its handshake, or is closed
 * itself when every one is established) and pending_max of them in their
 * handshake (a newcomer past it closes the oldest such).
 */
#include "dqlite/nana_dqlite.h"
#include "dqlite/dqlite_int.h"
#include "util/nana_err.h"
#include "util/nana_time.h"

#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define PRIORITY   "NORMAL:-VERS-ALL:+VERS-TLS1.3"
#define RELAY_BUF  16384 /* bytes per direction per session: one TLS record */
#define FRONTS_MAX 8     /* listeners one relay thread serves */
#define KEY_MAX    65536u

enum { ST_HANDSHAKE, ST_OPEN };

/* One session: a TLS connection and the plain socket it is relayed to. */
typedef struct relay {
    struct relay *next;
    int net;   /* the TCP socket carrying TLS */
    int plain; /* the socketpair end or the node's private connection; -1 before */
    gnutls_session_t s;
    int state;
    int inbound;
    char target[112]; /* inbound: its front's private listener */
    uint64_t born;
    uint64_t deadline; /* handshake, or closing once one direction ended; 0: none */
    int net_eof, plain_eof, net_shut, plain_shut, dead;
    size_t up_off, up_len, up_inflight; /* plain -> TLS */
    size_t dn_off, dn_len;              /* TLS -> plain */
    uint8_t up[RELAY_BUF];
    uint8_t dn[RELAY_BUF];
} relay;

typedef struct tls_front {
    int fd; /* -1: free slot */
    int closing;
    char target[112]; /* the node's private listener */
} tls_front;

struct nana_dql_tls {
    gnutls_certificate_credentials_t cred;
    gnutls_priority_t prio;
    nana_dql_tls_opts o;
    int wake; /* eventfd */
    pthread_t thread;
    int thread_up;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;                     /* under mu */
    relay *handed;                /* under mu: outgoing sessions for the relay thread */
    tls_front fronts[FRONTS_MAX]; /* under mu; fds read by the relay thread */
    /* the relay thread's own */
    relay *list;
    size_t open_in, pending_in;
    /* counters, read by any thread */
    _Atomic uint64_t accepted, relayed, refused, evicted, failed, timed_out;
    _Atomic size_t open_now, pending_now, sessions;
};

static _Atomic(nana_dql_tls *) g_use;

void nana_dql_tls_opts_default(nana_dql_tls_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->handshake_ms = NANA_DQL_TLS_HANDSHAKE_MS_DEFAULT;
    o->conns_max = NANA_DQL_TLS_CONNS_MAX_DEFAULT;
    o->pending_max = NANA_DQL_TLS_PENDING_MAX_DEFAULT;
}

/* ---- credentials ---- */

/* True if |crt|'s extended key usage names both TLS server and client. */
static int node_purposes(gnutls_x509_crt_t crt)
{
    int server = 0, client = 0;
    for (unsigned i = 0; i < 64; i++) {
        char oid[128];
        size_t len = sizeof(oid);
        int rc = gnutls_x509_crt_get_key_purpose_oid(crt, i, oid, &len, NULL);
        if (rc < 0) break;
        if (!strcmp(oid, GNUTLS_KP_TLS_WWW_SERVER)) server = 1;
        if (!strcmp(oid, GNUTLS_KP_TLS_WWW_CLIENT)) client = 1;
    }
    return server && client;
}

/*
 * GnuTLS's check of the peer's certificate, on either side, during the
 * handshake: it must chain to the cluster's CA and be a node certificate.
 * Nonzero fails the handshake.
 */
static int verify_peer(gnutls_session_t s)
{
    unsigned status = 0;
    if (gnutls_certificate_verify_peers2(s, &status) < 0 || status != 0) return -1;
    unsigned n = 0;
    const gnutls_datum_t *certs = gnutls_certificate_get_peers(s, &n);
    if (!certs || n == 0) return -1;
    gnutls_x509_crt_t crt;
    if (gnutls_x509_crt_init(&crt) < 0) return -1;
    int ok = gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) >= 0 && node_purposes(crt);
    gnutls_x509_crt_deinit(crt);
    return ok ? 0 : -1;
}

/* Reads the private key |path| into |d| (gnutls_free it) after checking that
 * only its owner may read or write it. */
static int read_key(const char *path, gnutls_datum_t *d)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) return nana_err_set(NANA_ERR_IO, "cluster TLS key %s: %s", path, strerror(errno));
    struct stat st;
    int rc = NANA_OK;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        rc = nana_err_set(NANA_ERR_INVALID, "cluster TLS key %s is not a regular file", path);
    else if (st.st_mode & (S_IRWXG | S_IRWXO))
        rc = nana_err_set(NANA_ERR_INVALID,
                          "cluster TLS key %s may be read or written by group or others (mode "
                          "%04o); chmod 600 it",
                          path, (unsigned)(st.st_mode & 07777));
    else if (st.st_size <= 0 || (unsigned long long)st.st_size > KEY_MAX)
        rc = nana_err_set(NANA_ERR_INVALID, "cluster TLS key %s: empty or larger than %u bytes",
                          path, KEY_MAX);
    if (!rc) {
        d->data = gnutls_malloc((size_t)st.st_size);
        d->size = 0;
        if (!d->data) rc = nana_err_set(NANA_ERR_NOMEM, "out of memory");
        while (!rc && d->size < (size_t)st.st_size) {
            ssize_t k = read(fd, d->data + d->size, (size_t)st.st_size - d->size);
            if (k > 0)
                d->size += (unsigned)k;
            else if (k == 0 || errno != EINTR)
                rc = nana_err_set(NANA_ERR_IO, "cluster TLS key %s: cannot read it", path);
        }
    }
    close(fd);
    return rc;
}

/* Checks that this node's own certificate is a node certificate of the CA,
 * so that a mistake shows at start rather than as refused peers. */
static int check_own(const nana_dql_tls_opts *o)
{
    gnutls_x509_crt_t *crts = NULL;
    unsigned ncrt = 0;
    gnutls_datum_t pem = {NULL, 0};
    gnutls_x509_trust_list_t tl = NULL;
    int rc = gnutls_load_file(o->cert_file, &pem);
    if (rc < 0)
        return nana_err_set(NANA_ERR_IO, "cluster certificate %s: %s", o->cert_file,
                            gnutls_strerror(rc));
    rc = gnutls_x509_crt_list_import2(&crts, &ncrt, &pem, GNUTLS_X509_FMT_PEM, 0);
    gnutls_free(pem.data);
    if (rc < 0 || ncrt == 0)
        return nana_err_set(NANA_ERR_INVALID, "cluster certificate %s: no PEM certificate in it",
                            o->cert_file);
    unsigned status = 0;
    int err = NANA_OK;
    if (gnutls_x509_trust_list_init(&tl, 0) < 0 ||
        gnutls_x509_trust_list_add_trust_file(tl, o->ca_file, NULL, GNUTLS_X509_FMT_PEM, 0, 0) <= 0)
        err = nana_err_set(NANA_ERR_INVALID, "cluster CA %s: no PEM certificate in it", o->ca_file);
    else if (gnutls_x509_trust_list_verify_crt(tl, crts, ncrt, 0, &status, NULL) < 0 || status)
        err = nana_err_set(NANA_ERR_INVALID,
                           "cluster certificate %s is not valid under the cluster CA %s",
                           o->cert_file, o->ca_file);
    else if (!node_purposes(crts[0]))
        err = nana_err_set(NANA_ERR_INVALID,
                           "cluster certificate %s is not a node certificate: it must allow both "
                           "TLS server and client authentication (nanasqlite-cert-gen --node)",
                           o->cert_file);
    if (tl) gnutls_x509_trust_list_deinit(tl, 1);
    for (unsigned i = 0; i < ncrt; i++)
        gnutls_x509_crt_deinit(crts[i]);
    gnutls_free(crts);
    return err;
}

/* Loads the credentials of |o| into |t|. */
static int load_credentials(nana_dql_tls *t, const nana_dql_tls_opts *o)
{
    int rc = check_own(o);
    if (rc) return rc;
    if (gnutls_certificate_allocate_credentials(&t->cred) < 0)
        return nana_err_set(NANA_ERR_NOMEM, "cluster TLS: out of memory");
    int g = gnutls_certificate_set_x509_trust_file(t->cred, o->ca_file, GNUTLS_X509_FMT_PEM);
    if (g <= 0)
        return nana_err_set(NANA_ERR_INVALID, "cluster CA %s: %s", o->ca_file,
                            g < 0 ? gnutls_strerror(g) : "no certificate in it");
    gnutls_datum_t key = {NULL, 0}, cert = {NULL, 0};
    rc = read_key(o->key_file, &key);
    if (!rc && (g = gnutls_load_file(o->cert_file, &cert)) < 0)
        rc = nana_err_set(NANA_ERR_IO, "cluster certificate %s: %s", o->cert_file,
                          gnutls_strerror(g));
    if (!rc &&
        (g = gnutls_certificate_set_x509_key_mem(t->cred, &cert, &key, GNUTLS_X509_FMT_PEM)) < 0)
        rc = nana_err_set(NANA_ERR_INVALID, "cluster certificate %s with key %s: %s", o->cert_file,
                          o->key_file, gnutls_strerror(g));
    if (key.data) {
        memset(key.data, 0, key.size);
        gnutls_free(key.data);
    }
    gnutls_free(cert.data);
    if (rc) return rc;
    gnutls_certificate_set_verify_function(t->cred, verify_peer);
    if ((g = gnutls_priority_init(&t->prio, PRIORITY, NULL)) < 0)
        return nana_err_set(NANA_ERR_INTERNAL, "cluster TLS priority: %s", gnutls_strerror(g));
    return NANA_OK;
}

/* A new non-blocking session on |fd| as |flags| (GNUTLS_SERVER or _CLIENT). */
static int new_session(nana_dql_tls *t, int fd, unsigned flags, gnutls_session_t *out)
{
    gnutls_session_t s;
    if (gnutls_init(&s, flags | GNUTLS_NONBLOCK | GNUTLS_NO_TICKETS | GNUTLS_NO_SIGNAL) < 0)
        return nana_err_set(NANA_ERR_NOMEM, "cluster TLS: out of memory for a session");
    if (gnutls_priority_set(s, t->prio) < 0 ||
        gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, t->cred) < 0) {
        gnutls_deinit(s);
        return nana_err_set(NANA_ERR_INTERNAL, "cluster TLS: cannot set up a session");
    }
    if (flags & GNUTLS_SERVER) gnutls_certificate_server_set_request(s, GNUTLS_CERT_REQUIRE);
    gnutls_transport_set_int(s, fd);
    *out = s;
    return NANA_OK;
}

/* ---- sessions on the relay thread ---- */

static void relay_free(relay *r)
{
    if (r->s) gnutls_deinit(r->s);
    if (r->net >= 0) close(r->net);
    if (r->plain >= 0) close(r->plain);
    free(r);
}

/* Marks |r| for closing (the loop frees it) and counts it out. */
static void relay_kill(nana_dql_tls *t, relay *r)
{
    if (r->dead) return;
    r->dead = 1;
    if (r->inbound) {
        t->open_in--;
        if (r->state == ST_HANDSHAKE) t->pending_in--;
        atomic_store(&t->open_now, t->open_in);
        atomic_store(&t->pending_now, t->pending_in);
    }
}

/* Connects a non-blocking socket to the node's private listener |target|
 * ("@name": an abstract Unix socket; else numeric HOST:PORT). */
static int connect_private(const char *target)
{
    if (target[0] != '@') {
        int fd = -1;
        return dql_tcp_connect(target, 0, 1, &fd) ? -1 : fd;
    }
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    size_t n = strlen(target + 1);
    if (n + 1 > sizeof(sa.sun_path)) return -1;
    memcpy(sa.sun_path + 1, target + 1, n);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (connect(fd, (struct sockaddr *)&sa,
                (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Drives an inbound handshake; on success opens the private connection. */
static void relay_handshake(nana_dql_tls *t, relay *r)
{
    int g = gnutls_handshake(r->s);
    if (g == GNUTLS_E_AGAIN || g == GNUTLS_E_INTERRUPTED) return;
    if (g < 0) {
        atomic_fetch_add(&t->failed, 1);
        relay_kill(t, r);
        return;
    }
    r->plain = connect_private(r->target);
    if (r->plain < 0) {
        relay_kill(t, r);
        return;
    }
    r->state = ST_OPEN;
    r->deadline = 0;
    t->pending_in--;
    atomic_store(&t->pending_now, t->pending_in);
    atomic_fetch_add(&t->relayed, 1);
}

/* Moves bytes both ways until nothing moves; passes ends of stream on. */
static void relay_pump(nana_dql_tls *t, relay *r)
{
    for (int moved = 1; moved && !r->dead;) {
        moved = 0;
        /* TLS -> plain */
        if (!r->net_eof && r->dn_off + r->dn_len < RELAY_BUF) {
            ssize_t k = gnutls_record_recv(r->s, r->dn + r->dn_off + r->dn_len,
                                           RELAY_BUF - r->dn_off - r->dn_len);
            if (k > 0) {
                r->dn_len += (size_t)k;
                moved = 1;
            } else if (k == 0) {
                r->net_eof = 1;
                moved = 1;
            } else if (k != GNUTLS_E_AGAIN && k != GNUTLS_E_INTERRUPTED &&
                       gnutls_error_is_fatal((int)k)) {
                relay_kill(t, r);
                return;
            }
        }
        if (r->dn_len) {
            ssize_t k = send(r->plain, r->dn + r->dn_off, r->dn_len, MSG_NOSIGNAL);
            if (k > 0) {
                r->dn_off += (size_t)k;
                r->dn_len -= (size_t)k;
                if (!r->dn_len) r->dn_off = 0;
                moved = 1;
            } else if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                relay_kill(t, r);
                return;
            }
        }
        if (r->net_eof && !r->dn_len && !r->plain_shut) {
            shutdown(r->plain, SHUT_WR);
            r->plain_shut = 1;
        }
        /* plain -> TLS */
        if (!r->plain_eof && r->up_off + r->up_len < RELAY_BUF) {
            ssize_t k =
                recv(r->plain, r->up + r->up_off + r->up_len, RELAY_BUF - r->up_off - r->up_len, 0);
            if (k > 0) {
                r->up_len += (size_t)k;
                moved = 1;
            } else if (k == 0) {
                r->plain_eof = 1;
                moved = 1;
            } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                relay_kill(t, r);
                return;
            }
        }
        if (r->up_len) {
            /* after GNUTLS_E_AGAIN the same bytes must be offered again */
            size_t n = r->up_inflight ? r->up_inflight : r->up_len;
            ssize_t k = gnutls_record_send(r->s, r->up + r->up_off, n);
            if (k > 0) {
                r->up_inflight = 0;
                r->up_off += (size_t)k;
                r->up_len -= (size_t)k;
                if (!r->up_len) r->up_off = 0;
                moved = 1;
            } else if (k == GNUTLS_E_AGAIN || k == GNUTLS_E_INTERRUPTED) {
                r->up_inflight = n;
            } else {
                relay_kill(t, r);
                return;
            }
        }
        if (r->plain_eof && !r->up_len && !r->net_shut) {
            int g = gnutls_bye(r->s, GNUTLS_SHUT_WR);
            if (g == GNUTLS_E_AGAIN || g == GNUTLS_E_INTERRUPTED) break;
            shutdown(r->net, SHUT_WR);
            r->net_shut = 1;
        }
    }
    if ((r->net_eof || r->plain_eof) && !r->deadline)
        r->deadline = nana_now_ns() + (uint64_t)t->o.handshake_ms * 1000000u;
    if (r->net_shut && r->plain_shut) relay_kill(t, r);
}

/* The poll events |r| waits for on its TLS socket and its plain one. */
static void relay_events(const relay *r, short *net, short *plain)
{
    *net = *plain = 0;
    if (r->state == ST_HANDSHAKE) {
        *net = gnutls_record_get_direction(r->s) ? POLLOUT : POLLIN;
        return;
    }
    if (!r->net_eof && r->dn_off + r->dn_len < RELAY_BUF) *net |= POLLIN;
    if (r->up_len || (r->plain_eof && !r->net_shut)) *net |= POLLOUT;
    if (!r->plain_eof && r->up_off + r->up_len < RELAY_BUF) *plain |= POLLIN;
    if (r->dn_len) *plain |= POLLOUT;
}

/* Closes the oldest inbound session still in its handshake; 1 if there was one. */
static int evict_oldest_pending(nana_dql_tls *t)
{
    relay *old = NULL;
    for (relay *r = t->list; r; r = r->next)
        if (r->inbound && r->state == ST_HANDSHAKE && !r->dead && (!old || r->born < old->born))
            old = r;
    if (!old) return 0;
    relay_kill(t, old);
    atomic_fetch_add(&t->evicted, 1);
    return 1;
}

/* Frees the dead sessions and keeps the counts. */
static void reap(nana_dql_tls *t)
{
    for (relay **pp = &t->list; *pp;) {
        relay *r = *pp;
        if (!r->dead) {
            pp = &r->next;
            continue;
        }
        *pp = r->next;
        relay_free(r);
        atomic_fetch_sub(&t->sessions, 1);
    }
}

/* Takes the connections waiting on front |i|'s listener. */
static void accept_all(nana_dql_tls *t, int i, int lfd)
{
    char target[sizeof(t->fronts[0].target)];
    pthread_mutex_lock(&t->mu);
    memcpy(target, t->fronts[i].target, sizeof(target));
    pthread_mutex_unlock(&t->mu);
    for (int k = 0; k < 64; k++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;
        atomic_fetch_add(&t->accepted, 1);
        if ((t->pending_in >= t->o.pending_max || t->open_in >= t->o.conns_max) &&
            !evict_oldest_pending(t)) {
            atomic_fetch_add(&t->refused, 1);
            close(fd);
            continue;
        }
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        relay *r = calloc(1, sizeof(*r));
        if (!r || new_session(t, fd, GNUTLS_SERVER, &r->s)) {
            free(r);
            close(fd);
            continue;
        }
        r->net = fd;
        r->plain = -1;
        r->inbound = 1;
        memcpy(r->target, target, sizeof(r->target));
        r->state = ST_HANDSHAKE;
        r->born = nana_now_ns();
        r->deadline = r->born + (uint64_t)t->o.handshake_ms * 1000000u;
        r->next = t->list;
        t->list = r;
        atomic_fetch_add(&t->sessions, 1);
        t->open_in++;
        t->pending_in++;
        atomic_store(&t->open_now, t->open_in);
        atomic_store(&t->pending_now, t->pending_in);
    }
}

/* The relay thread: one poll loop over the fronts and every session. */
static void *relay_main(void *arg)
{
    nana_dql_tls *t = arg;
    struct pollfd *pf = NULL;
    relay **who = NULL;
    size_t cap = 0;
    for (;;) {
        pthread_mutex_lock(&t->mu);
        int stop = t->stop;
        relay *in = t->handed;
        t->handed = NULL;
        int fronts[FRONTS_MAX];
        for (int i = 0; i < FRONTS_MAX; i++) {
            if (t->fronts[i].fd >= 0 && t->fronts[i].closing) {
                close(t->fronts[i].fd);
                t->fronts[i].fd = -1;
                t->fronts[i].closing = 0;
                pthread_cond_broadcast(&t->cv);
            }
            fronts[i] = t->fronts[i].fd;
        }
        pthread_mutex_unlock(&t->mu);
        while (in) {
            relay *r = in;
            in = r->next;
            r->next = t->list;
            t->list = r;
            atomic_fetch_add(&t->sessions, 1);
        }
        if (stop) break;
        reap(t);
        size_t n = 1 + FRONTS_MAX;
        for (relay *r = t->list; r; r = r->next)
            n += 2;
        if (n > cap) {
            size_t nc = n * 2;
            struct pollfd *npf = realloc(pf, nc * sizeof(*pf));
            if (npf) pf = npf;
            relay **nw = npf ? realloc(who, nc * sizeof(*who)) : NULL;
            if (nw) who = nw;
            if (!npf || !nw) { /* out of memory: try again shortly */
                usleep(10000);
                continue;
            }
            cap = nc;
        }
        uint64_t now = nana_now_ns(), next = now + 1000000000ull;
        int timeout = -1;
        size_t k = 0;
        pf[k++] = (struct pollfd){.fd = t->wake, .events = POLLIN};
        for (int i = 0; i < FRONTS_MAX; i++)
            pf[k++] = (struct pollfd){.fd = fronts[i], .events = POLLIN};
        for (relay *r = t->list; r; r = r->next) {
            short ne, pe;
            relay_events(r, &ne, &pe);
            who[k] = r;
            pf[k++] = (struct pollfd){.fd = r->net, .events = ne};
            who[k] = r;
            pf[k++] = (struct pollfd){.fd = r->state == ST_OPEN ? r->plain : -1, .events = pe};
            if (r->deadline && r->deadline < next) next = r->deadline;
            if (r->state == ST_OPEN && !r->net_eof && gnutls_record_check_pending(r->s) &&
                r->dn_off + r->dn_len < RELAY_BUF)
                timeout = 0;
        }
        if (timeout < 0) timeout = next > now ? (int)((next - now + 999999) / 1000000) : 0;
        int got = poll(pf, k, timeout);
        if (got < 0 && errno != EINTR) {
            usleep(10000);
            continue;
        }
        if (pf[0].revents & POLLIN) {
            uint64_t v;
            ssize_t rd = read(t->wake, &v, sizeof(v));
            (void)rd;
        }
        for (int i = 0; i < FRONTS_MAX; i++)
            if (pf[1 + i].fd >= 0 && (pf[1 + i].revents & POLLIN)) accept_all(t, i, pf[1 + i].fd);
        now = nana_now_ns();
        for (size_t j = 1 + FRONTS_MAX; j < k; j += 2) {
            relay *r = who[j];
            if (r->dead) continue;
            int ready = (pf[j].revents | pf[j + 1].revents) != 0;
            if (r->state == ST_HANDSHAKE) {
                if (ready) relay_handshake(t, r);
            } else if (ready || gnutls_record_check_pending(r->s)) {
                relay_pump(t, r);
            }
            if (!r->dead && r->deadline && now >= r->deadline) {
                if (r->state == ST_HANDSHAKE) atomic_fetch_add(&t->timed_out, 1);
                relay_kill(t, r);
            }
        }
    }
    for (relay *r = t->list; r; r = r->next)
        relay_kill(t, r);
    reap(t);
    free(pf);
    free(who);
    return NULL;
}

/* ---- the public face ---- */

int nana_dql_tls_start(const nana_dql_tls_opts *o, nana_dql_tls **out)
{
    *out = NULL;
    if (!o || !o->cert_file || !o->key_file || !o->ca_file)
        return nana_err_set(NANA_ERR_INVALID,
                            "cluster TLS needs a certificate, its key and the cluster's CA");
    if (o->handshake_ms <= 0 || o->conns_max == 0 || o->pending_max == 0)
        return nana_err_set(NANA_ERR_INVALID, "cluster TLS: limits must be positive");
    nana_dql_tls *t = calloc(1, sizeof(*t));
    if (!t) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    t->o = *o;
    t->wake = -1;
    for (int i = 0; i < FRONTS_MAX; i++)
        t->fronts[i].fd = -1;
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    int rc = load_credentials(t, o);
    if (!rc) {
        t->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (t->wake < 0) rc = nana_err_set(NANA_ERR_IO, "eventfd: %s", strerror(errno));
    }
    if (!rc && pthread_create(&t->thread, NULL, relay_main, t) != 0)
        rc = nana_err_set(NANA_ERR_IO, "cluster TLS: cannot start its thread");
    if (rc) {
        nana_dql_tls_stop(t);
        return rc;
    }
    t->thread_up = 1;
    *out = t;
    return NANA_OK;
}

/* Wakes the relay thread. */
static void wake(nana_dql_tls *t)
{
    uint64_t one = 1;
    ssize_t w = write(t->wake, &one, sizeof(one));
    (void)w;
}

void nana_dql_tls_stop(nana_dql_tls *t)
{
    if (!t) return;
    nana_dql_tls *self = t;
    atomic_compare_exchange_strong(&g_use, &self, NULL);
    if (t->thread_up) {
        pthread_mutex_lock(&t->mu);
        t->stop = 1;
        pthread_mutex_unlock(&t->mu);
        wake(t);
        pthread_join(t->thread, NULL);
    }
    while (t->handed) {
        relay *r = t->handed;
        t->handed = r->next;
        relay_free(r);
    }
    for (int i = 0; i < FRONTS_MAX; i++)
        if (t->fronts[i].fd >= 0) close(t->fronts[i].fd);
    if (t->wake >= 0) close(t->wake);
    if (t->prio) gnutls_priority_deinit(t->prio);
    if (t->cred) gnutls_certificate_free_credentials(t->cred);
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

/* A listening TCP socket on |address| (numeric HOST:PORT). */
static int listen_on(const char *address, int *out)
{
    struct sockaddr_storage sa;
    socklen_t salen;
    int rc = dql_parse_address(address, &sa, &salen);
    if (rc) return rc;
    int fd = socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return nana_err_set(NANA_ERR_IO, "cluster TLS: socket: %s", strerror(errno));
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&sa, salen) != 0 || listen(fd, 128) != 0) {
        rc = nana_err_set(NANA_ERR_IO, "cluster TLS: listening on %.64s: %s", address,
                          strerror(errno));
        close(fd);
        return rc;
    }
    *out = fd;
    return NANA_OK;
}

int nana_dql_tls_front(nana_dql_tls *t, const char *address, const char *target, int *front)
{
    if (!target || strlen(target) >= sizeof(t->fronts[0].target))
        return nana_err_set(NANA_ERR_INVALID, "cluster TLS: the node's private address is too "
                                              "long");
    int fd;
    int rc = listen_on(address, &fd);
    if (rc) return rc;
    pthread_mutex_lock(&t->mu);
    int slot = -1;
    for (int i = 0; i < FRONTS_MAX && slot < 0; i++)
        if (t->fronts[i].fd < 0 && !t->fronts[i].closing) slot = i;
    if (slot >= 0) {
        t->fronts[slot].fd = fd;
        snprintf(t->fronts[slot].target, sizeof(t->fronts[slot].target), "%s", target);
    }
    pthread_mutex_unlock(&t->mu);
    if (slot < 0) {
        close(fd);
        return nana_err_set(NANA_ERR_TOOBIG, "cluster TLS: at most %d fronts", FRONTS_MAX);
    }
    wake(t);
    *front = slot;
    return NANA_OK;
}

void nana_dql_tls_front_close(nana_dql_tls *t, int front)
{
    if (!t || front < 0 || front >= FRONTS_MAX) return;
    pthread_mutex_lock(&t->mu);
    if (t->fronts[front].fd >= 0) {
        t->fronts[front].closing = 1;
        wake(t);
        while (t->fronts[front].closing && !t->stop)
            pthread_cond_wait(&t->cv, &t->mu);
    }
    pthread_mutex_unlock(&t->mu);
}

/* Waits for |fd| to be ready for |events| until |deadline|. */
static int wait_fd(int fd, short events, uint64_t deadline, const char *address)
{
    for (;;) {
        uint64_t now = nana_now_ns();
        if (now >= deadline)
            return nana_err_set(NANA_ERR_TIMEOUT,
                                "cluster TLS: handshake with %.64s: no answer "
                                "in time",
                                address);
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, (int)((deadline - now + 999999) / 1000000));
        if (n > 0) return 0;
        if (n < 0 && errno != EINTR)
            return nana_err_set(NANA_ERR_IO, "cluster TLS: poll: %s", strerror(errno));
    }
}

int nana_dql_tls_connect(nana_dql_tls *t, const char *address, int timeout_ms, int nonblock,
                         int *fd_out)
{
    uint64_t deadline = nana_now_ns() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 1) * 1000000u;
    int net = -1;
    int rc = dql_tcp_connect(address, timeout_ms, 1, &net);
    if (rc) return rc;
    relay *r = calloc(1, sizeof(*r));
    if (!r) {
        close(net);
        return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    }
    r->net = net;
    r->plain = -1;
    rc = new_session(t, net, GNUTLS_CLIENT, &r->s);
    while (!rc) {
        int g = gnutls_handshake(r->s);
        if (g == 0) break;
        if (g == GNUTLS_E_AGAIN || g == GNUTLS_E_INTERRUPTED)
            rc = wait_fd(net, gnutls_record_get_direction(r->s) ? POLLOUT : POLLIN, deadline,
                         address);
        else
            rc = nana_err_set(NANA_ERR_PERM, "cluster TLS: handshake with %.64s failed: %s",
                              address, gnutls_strerror(g));
    }
    int pair[2] = {-1, -1};
    if (!rc && socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair) != 0)
        rc = nana_err_set(NANA_ERR_IO, "socketpair: %s", strerror(errno));
    if (!rc && !nonblock) {
        int fl = fcntl(pair[0], F_GETFL);
        if (fl < 0 || fcntl(pair[0], F_SETFL, fl & ~O_NONBLOCK) != 0)
            rc = nana_err_set(NANA_ERR_IO, "fcntl: %s", strerror(errno));
    }
    if (rc) {
        if (pair[0] >= 0) close(pair[0]);
        if (pair[1] >= 0) close(pair[1]);
        relay_free(r);
        return rc;
    }
    r->plain = pair[1];
    r->state = ST_OPEN;
    r->born = nana_now_ns();
    pthread_mutex_lock(&t->mu);
    int stopping = t->stop;
    if (!stopping) {
        r->next = t->handed;
        t->handed = r;
    }
    pthread_mutex_unlock(&t->mu);
    if (stopping) {
        relay_free(r);
        close(pair[0]);
        return nana_err_set(NANA_ERR_SHUTDOWN, "cluster TLS: stopping");
    }
    wake(t);
    *fd_out = pair[0];
    return NANA_OK;
}

void nana_dql_tls_stats_get(nana_dql_tls *t, nana_dql_tls_stats *s)
{
    s->accepted = atomic_load(&t->accepted);
    s->relayed = atomic_load(&t->relayed);
    s->refused = atomic_load(&t->refused);
    s->evicted = atomic_load(&t->evicted);
    s->failed = atomic_load(&t->failed);
    s->timed_out = atomic_load(&t->timed_out);
    s->open = atomic_load(&t->open_now);
    s->pending = atomic_load(&t->pending_now);
    s->sessions = atomic_load(&t->sessions);
}

void nana_dql_tls_use(nana_dql_tls *t)
{
    atomic_store(&g_use, t);
}

int dql_sock_connect(const char *address, int timeout_ms, int nonblock, int *fd)
{
    nana_dql_tls *t = atomic_load(&g_use);
    if (t) return nana_dql_tls_connect(t, address, timeout_ms, nonblock, fd);
    return dql_tcp_connect(address, timeout_ms, nonblock, fd);
}
