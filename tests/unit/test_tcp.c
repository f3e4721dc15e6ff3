/*
 * test_tcp.c - TCP (+TLS) connections on event loops (src/tcp): a server
 * endpoint on two running loops with an echo application, talked to by a
 * real GnuTLS client on the test's thread (blocking, with socket timeouts so
 * every wait is bounded) and by our own client (nana_tcp_connect).
 *
 * The echo application sends back what it receives, and takes a few
 * commands, each sent as one TLS record at the start of a message:
 *   !trust   the connection is vouched for (nana_tcp_conn_trust), "ok"
 *   !flood   the server sends without end, as fast as the buffer allows
 *   !bye     the server sends 1 MiB and closes gracefully
 *   !quit    recv returns an error after queueing "bye"
 *   !timer   the connection's timer in 50 ms sends "tick"
 * Its callbacks record what they saw under a mutex; the test thread polls
 * with a deadline.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "auth/nana_certgen.h"
#include "tcp/nana_tcp.h"
#include "test_util.h"

#include <errno.h>
#include <gnutls/gnutls.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WAIT_MS    8000
#define LABEL      "EXPORTER-nanasqlite-test"
#define BYE_BYTES  (1u << 20)
#define FLOOD_STEP 16384u

/* ---- certificates --------------------------------------------------------- */

static struct {
    char dir[400];
    char f[NANA_DEV_FILES][512];
} certs;

#define CA         certs.f[NANA_DEV_CA]
#define SERVER     certs.f[NANA_DEV_SERVER]
#define SERVER_KEY certs.f[NANA_DEV_SERVER_KEY]
#define CLIENT     certs.f[NANA_DEV_CLIENT]
#define CLIENT_KEY certs.f[NANA_DEV_CLIENT_KEY]
#define ROGUE      certs.f[NANA_DEV_ROGUE]
#define ROGUE_KEY  certs.f[NANA_DEV_ROGUE_KEY]

static int group_setup(void **state)
{
    (void)state;
    const char *tmp = getenv("NANA_TEST_TMP");
    snprintf(certs.dir, sizeof(certs.dir), "%s/tcp-certs-%d", tmp && tmp[0] ? tmp : "/tmp",
             (int)getpid());
    for (int i = 0; i < NANA_DEV_FILES; i++)
        snprintf(certs.f[i], sizeof(certs.f[i]), "%s/%s", certs.dir, nana_certgen_dev_names[i]);
    if (nana_certgen_dev_set(certs.dir, "alice", 2, 1)) {
        fprintf(stderr, "certificates: %s\n", nana_errmsg());
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    for (int i = 0; i < NANA_DEV_FILES; i++)
        unlink(certs.f[i]);
    rmdir(certs.dir);
    return 0;
}

/* ---- time ------------------------------------------------------------------ */

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- the echo application ------------------------------------------------- */

typedef struct app_conn {
    bool flood;
} app_conn;

/* What the application saw (under mu); the test asserts on a copy (snap),
 * never holding the lock, so a failed assertion cannot leave it held. */
typedef struct seen {
    unsigned opens, closes;
    uint64_t recv_bytes;
    size_t max_queued;
    unsigned writables;
    char alpn[40], version[16];
    nana_cert_identity id;
    uint8_t exporter[32];
    int exporter_rc;
    bool refuse_open;
    char last_error[96];
} seen;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static seen S;

static seen snap(void)
{
    pthread_mutex_lock(&mu);
    seen v = S;
    pthread_mutex_unlock(&mu);
    return v;
}

static void s_reset(void)
{
    pthread_mutex_lock(&mu);
    S.opens = S.closes = 0;
    S.recv_bytes = 0;
    S.max_queued = 0;
    S.writables = 0;
    S.alpn[0] = S.version[0] = S.last_error[0] = '\0';
    memset(&S.id, 0, sizeof(S.id));
    memset(S.exporter, 0, sizeof(S.exporter));
    S.exporter_rc = 1;
    S.refuse_open = false;
    pthread_mutex_unlock(&mu);
}

static int app_open(nana_tcp_conn *c, void *ep_user)
{
    (void)ep_user;
    pthread_mutex_lock(&mu);
    bool refuse = S.refuse_open;
    S.opens++;
    snprintf(S.alpn, sizeof(S.alpn), "%s", nana_tcp_conn_alpn(c));
    snprintf(S.version, sizeof(S.version), "%s", nana_tcp_conn_tls_version(c));
    S.id = *nana_tcp_conn_identity(c);
    S.exporter_rc = nana_tcp_conn_exporter(c, LABEL, NULL, 0, S.exporter, sizeof(S.exporter));
    pthread_mutex_unlock(&mu);
    if (refuse) return NANA_ERR_PERM;
    app_conn *a = calloc(1, sizeof(*a));
    if (!a) return NANA_ERR_NOMEM;
    nana_tcp_conn_set_user(c, a);
    return 0;
}

/* Fills the send buffer up to the cap, a step at a time. */
static void flood(nana_tcp_conn *c)
{
    static const uint8_t zeros[FLOOD_STEP];
    size_t room;
    while ((room = nana_tcp_send_room(c)) > 0)
        if (nana_tcp_send(c, zeros, room < FLOOD_STEP ? room : FLOOD_STEP) != 0) break;
    size_t q = nana_tcp_send_queued(c);
    pthread_mutex_lock(&mu);
    if (q > S.max_queued) S.max_queued = q;
    pthread_mutex_unlock(&mu);
}

static bool is_cmd(const uint8_t *p, size_t n, const char *cmd)
{
    size_t k = strlen(cmd);
    return n >= k && memcmp(p, cmd, k) == 0;
}

static int app_recv(nana_tcp_conn *c, void *user, const uint8_t *p, size_t n)
{
    app_conn *a = user;
    pthread_mutex_lock(&mu);
    S.recv_bytes += n;
    pthread_mutex_unlock(&mu);
    if (is_cmd(p, n, "!trust")) {
        if (nana_tcp_conn_trust(c) != 0) return -1;
        return nana_tcp_send(c, "ok", 2);
    }
    if (is_cmd(p, n, "!flood")) {
        a->flood = true;
        flood(c);
        return 0;
    }
    if (is_cmd(p, n, "!bye")) {
        uint8_t *big = malloc(BYE_BYTES);
        if (!big) return -1;
        for (size_t i = 0; i < BYE_BYTES; i++)
            big[i] = (uint8_t)(i * 7);
        int rc = nana_tcp_send(c, big, BYE_BYTES);
        free(big);
        nana_tcp_conn_close(c, 1);
        nana_tcp_conn_close(c, 1); /* twice: harmless */
        return rc;
    }
    if (is_cmd(p, n, "!timer")) {
        nana_tcp_conn_set_timer(c, nana_tcp_conn_now(c) + 50 * 1000000ull);
        return 0;
    }
    if (is_cmd(p, n, "!quit")) {
        (void)nana_tcp_send(c, "bye", 3);
        return -1;
    }
    if (a->flood) return 0;
    return nana_tcp_send(c, p, n);
}

static void app_writable(nana_tcp_conn *c, void *user)
{
    app_conn *a = user;
    pthread_mutex_lock(&mu);
    S.writables++;
    pthread_mutex_unlock(&mu);
    if (a->flood) flood(c);
}

static void app_close(nana_tcp_conn *c, void *user)
{
    pthread_mutex_lock(&mu);
    S.closes++;
    snprintf(S.last_error, sizeof(S.last_error), "%s", nana_tcp_conn_error(c));
    pthread_mutex_unlock(&mu);
    free(user);
}

/* The application's timer: says so. */
static void app_timer(nana_tcp_conn *c, void *user)
{
    (void)user;
    (void)nana_tcp_send(c, "tick", 4);
}

static const nana_tcp_callbacks echo_cb = {
    .conn_open = app_open,
    .recv = app_recv,
    .writable = app_writable,
    .timer = app_timer,
    .conn_close = app_close,
};

static unsigned s_get(const unsigned *field)
{
    pthread_mutex_lock(&mu);
    unsigned v = *field;
    pthread_mutex_unlock(&mu);
    return v;
}

/* Waits until *field reaches |want|; false after WAIT_MS. */
static bool s_wait(const unsigned *field, unsigned want)
{
    uint64_t end = now_ms() + WAIT_MS;
    while (s_get(field) < want) {
        if (now_ms() > end) return false;
        sleep_ms(5);
    }
    return true;
}

/* ---- the server ------------------------------------------------------------- */

static const char *const h2[] = {"h2"};

typedef struct tsrv {
    nana_loop *loops[2];
    nana_tcp_ep *ep;
    uint16_t port;
} tsrv;

static void cfg_default(nana_tcp_config *cfg)
{
    nana_tcp_config_init(cfg);
    cfg->host = "127.0.0.1";
    cfg->cert_file = SERVER;
    cfg->key_file = SERVER_KEY;
    cfg->ca_file = CA;
    cfg->alpn = h2;
    cfg->nalpn = 1;
    cfg->cb = &echo_cb;
}

static void srv_start(tsrv *s, nana_tcp_config *cfg)
{
    s_reset();
    memset(s, 0, sizeof(*s));
    for (int i = 0; i < 2; i++) {
        assert_int_equal(nana_loop_new("tcp-test", &s->loops[i]), 0);
        assert_int_equal(nana_loop_start(s->loops[i]), 0);
    }
    cfg->loops = s->loops;
    cfg->nloops = 2;
    int rc = nana_tcp_ep_new(cfg, &s->ep);
    if (rc) fprintf(stderr, "nana_tcp_ep_new: %s\n", nana_errmsg());
    assert_int_equal(rc, 0);
    s->port = nana_tcp_ep_port(s->ep);
    assert_true(s->port != 0);
}

static void srv_stop(tsrv *s)
{
    nana_tcp_ep_del(s->ep);
    for (int i = 0; i < 2; i++)
        nana_loop_free(s->loops[i]);
    pthread_mutex_lock(&mu);
    unsigned opens = S.opens, closes = S.closes;
    bool refused = S.refuse_open;
    pthread_mutex_unlock(&mu);
    /* Every connection that opened was told it closed. */
    if (!refused) assert_int_equal(opens, closes);
}

static nana_tcp_stats stats(tsrv *s)
{
    nana_tcp_stats st;
    nana_tcp_ep_stats(s->ep, &st);
    return st;
}

/* The server's counters as last read (STATS_WAIT). */
static nana_tcp_stats st;

/* Waits until the server's counters pass |cond| (about st). */
#define STATS_WAIT(s, cond)                                                                        \
    do {                                                                                           \
        uint64_t end_ = now_ms() + WAIT_MS;                                                        \
        for (;;) {                                                                                 \
            st = stats(s);                                                                         \
            if (cond) break;                                                                       \
            assert_true(now_ms() < end_);                                                          \
            sleep_ms(5);                                                                           \
        }                                                                                          \
    } while (0)

/* ---- a blocking GnuTLS client ------------------------------------------------ */

typedef struct tcli {
    int fd;
    gnutls_session_t s;
    gnutls_certificate_credentials_t cred;
} tcli;

/* A TCP socket connected to the server, with 5 s timeouts either way. */
static int raw_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Connects and handshakes: 0, or the handshake's GnuTLS error. |alpn| NULL
 * offers none. */
static int tc_open(tcli *t, uint16_t port, const char *prio, const char *alpn, const char *cert,
                   const char *key)
{
    memset(t, 0, sizeof(*t));
    t->fd = raw_connect(port);
    if (t->fd < 0) return GNUTLS_E_PUSH_ERROR;
    assert_int_equal(gnutls_certificate_allocate_credentials(&t->cred), 0);
    assert_true(gnutls_certificate_set_x509_trust_file(t->cred, CA, GNUTLS_X509_FMT_PEM) > 0);
    if (cert)
        assert_int_equal(
            gnutls_certificate_set_x509_key_file(t->cred, cert, key, GNUTLS_X509_FMT_PEM), 0);
    assert_int_equal(gnutls_init(&t->s, GNUTLS_CLIENT), 0);
    assert_int_equal(gnutls_priority_set_direct(t->s, prio ? prio : "NORMAL", NULL), 0);
    assert_int_equal(gnutls_credentials_set(t->s, GNUTLS_CRD_CERTIFICATE, t->cred), 0);
    gnutls_server_name_set(t->s, GNUTLS_NAME_DNS, "localhost", 9);
    gnutls_session_set_verify_cert(t->s, "localhost", 0);
    if (alpn) {
        gnutls_datum_t d = {(unsigned char *)(uintptr_t)alpn, (unsigned)strlen(alpn)};
        assert_int_equal(gnutls_alpn_set_protocols(t->s, &d, 1, 0), 0);
    }
    gnutls_transport_set_int(t->s, t->fd);
    gnutls_handshake_set_timeout(t->s, 5000);
    int rc;
    do {
        rc = gnutls_handshake(t->s);
    } while (rc < 0 && !gnutls_error_is_fatal(rc));
    return rc;
}

static void tc_close(tcli *t)
{
    if (t->s) gnutls_deinit(t->s);
    if (t->cred) gnutls_certificate_free_credentials(t->cred);
    if (t->fd >= 0) close(t->fd);
    memset(t, 0, sizeof(*t));
    t->fd = -1;
}

static int tc_send(tcli *t, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n) {
        ssize_t r = gnutls_record_send(t->s, b, n);
        if (r == GNUTLS_E_INTERRUPTED) continue;
        if (r < 0) return (int)r;
        b += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Reads exactly |n| bytes: 0, or the error (GNUTLS_E_PREMATURE_TERMINATION
 * style), or 1 at a clean end before |n|. */
static int tc_recv(tcli *t, void *p, size_t n)
{
    uint8_t *b = p;
    while (n) {
        ssize_t r = gnutls_record_recv(t->s, b, n);
        if (r == GNUTLS_E_INTERRUPTED) continue;
        if (r == 0) return 1;
        if (r < 0) return (int)r;
        b += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Echoes |n| bytes of a pattern through the server. */
static void tc_echo(tcli *t, size_t n, uint8_t seed)
{
    uint8_t *out = malloc(n), *in = malloc(n);
    assert_non_null(out);
    assert_non_null(in);
    for (size_t i = 0; i < n; i++)
        out[i] = (uint8_t)(i * 31 + seed + (i >> 8));
    out[0] = 'x'; /* never a command */
    assert_int_equal(tc_send(t, out, n), 0);
    assert_int_equal(tc_recv(t, in, n), 0);
    assert_memory_equal(out, in, n);
    free(out);
    free(in);
}

/* True when the server ended the connection (EOF, reset or an alert) within
 * the socket timeout. */
static bool tc_ended(tcli *t)
{
    uint8_t b[256];
    for (int i = 0; i < 1000; i++) {
        ssize_t r = gnutls_record_recv(t->s, b, sizeof(b));
        if (r == GNUTLS_E_INTERRUPTED || r > 0) continue;
        return r != GNUTLS_E_AGAIN; /* AGAIN: the timeout passed with the connection up */
    }
    return false;
}

/* True when a plain socket reaches its end (EOF or reset) within its timeout. */
static bool raw_ended(int fd)
{
    uint8_t b[256];
    for (;;) {
        ssize_t r = recv(fd, b, sizeof(b), 0);
        if (r > 0) continue;
        if (r == 0) return true;
        return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
    }
}

#define TLS13 "NORMAL:-VERS-ALL:+VERS-TLS1.3"
#define TLS12 "NORMAL:-VERS-ALL:+VERS-TLS1.2"

/* ---- tests --------------------------------------------------------------------- */

/* Echo over TLS 1.3 and 1.2; ALPN h2 taken; the exporter agrees. */
static void echo_version(const char *prio, const char *want)
{
    tsrv s;
    nana_tcp_config cfg;
    cfg_default(&cfg);
    srv_start(&s, &cfg);
    tcli t;
    assert_int_equal(tc_open(&t, s.port, prio, "h2", NULL, NULL), 0);
    tc_echo(&t, 10, 1);
    tc_echo(&t, 200000, 2); /* more than a record, more than the read buffer */
    assert_true(s_wait(&S.opens, 1));
    seen v = snap();
    assert_string_equal(v.alpn, "h2");
    assert_string_equal(v.version, want);
    assert_int_equal(v.exporter_rc, 0);
    uint8_t mine[32];
    assert_int_equal(gnutls_prf_rfc5705(t.s, strlen(LABEL), LABEL, 0, NULL, 32, (char *)mine), 0);
    assert_memory_equal(mine, v.exporter, 32);
    assert_false(v.id.verified);
    st = stats(&s);
    assert_int_equal(st.accepted, 1);
    assert_int_equal(st.conns_open, 1);
    tc_close(&t);
    assert_true(s_wait(&S.closes, 1));
    srv_stop(&s);
}

static void test_echo_tls13(void **state)
{
    (void)state;
    echo_version(TLS13, "TLS1.3");
}

static void test_echo_tls12(void **state)
{
    (void)state;
    echo_version(TLS12, "TLS1.2");
}

/* A client offering only http/1.1, or no ALPN at all, or TLS 1.2 without
 * an AEAD suite, fails the handshake; the server goes on serving. */
static void test_alpn_and_suites_refused(void **state)
{
    (void)state;
    tsrv s;
    nana_tcp_config cfg;
    cfg_default(&cfg);
    srv_start(&s, &cfg);
    tcli t;
    assert_true(tc_open(&t, s.port, NULL, "http/1.1", NULL, NULL) < 0);
    tc_close(&t);
    assert_true(tc_open(&t, s.port, NULL, NULL, NULL, NULL) < 0);
    tc_close(&t);
    assert_true(tc_open(&t, s.port, TLS12 ":-CIPHER-ALL:+AES-128-CBC:-MAC-ALL:+SHA1:+SHA256", "h2",
                        NULL, NULL) < 0);
    tc_close(&t);
    assert_true(tc_open(&t, s.port, TLS12 ":-KX-ALL:+RSA", "h2", NULL, NULL) < 0);
    tc_close(&t);
    STATS_WAIT(&s, st.handshake_failures == 4 && st.conns_open == 0);
    assert_int_equal(s_get(&S.opens), 0);
    assert_int_equal(tc_open(&t, s.port, NULL, "h2", NULL, NULL), 0);
    tc_echo(&t, 100, 3);
    tc_close(&t);
    srv_stop(&s);
}

/* Client certificates: required and verified into the identity; none, or
 * one from another CA, refused. */
static void test_mtls(void **state)
{
    (void)state;
    tsrv s;
    nana_tcp_config cfg;
    cfg_default(&cfg);
    cfg.client_auth = 2;
    srv_start(&s, &cfg);
    tcli t;
    assert_int_equal(tc_open(&t, s.port, NULL, "h2", CLIENT, CLIENT_KEY), 0);
    tc_echo(&t, 1000, 4);
    uint8_t cert_fp[32], spki_fp[32];
    assert_int_equal(nana_cert_fingerprints(CLIENT, cert_fp, spki_fp), 0);
    seen v = snap();
    assert_true(v.id.verified);
    assert_non_null(strstr(v.id.subject, "CN=alice"));
    assert_memory_equal(v.id.cert_sha256, cert_fp, 32);
    assert_memory_equal(v.id.spki_sha256, spki_fp, 32);
    tc_close(&t);
    /* TLS 1.3 checks the client's certificate after the client's side of the
     * handshake ended: the refusal shows on the first read. */
    int rc = tc_open(&t, s.port, NULL, "h2", NULL, NULL);
    assert_true(rc < 0 || tc_ended(&t));
    tc_close(&t);
    rc = tc_open(&t, s.port, NULL, "h2", ROGUE, ROGUE_KEY);
    assert_true(rc < 0 || tc_ended(&t));
    tc_close(&t);
    STATS_WAIT(&s, st.handshake_failures == 2 && st.conns_open == 0);
    assert_int_equal(s_get(&S.opens), 1);
    /* Request mode: no certificate is fine, a bad one is not. */
    srv_stop(&s);
    cfg_default(&cfg);
    cfg.client_auth = 1;
    srv_start(&s, &cfg);
    assert_int_equal(tc_open(&t, s.port, NULL, "h2", NULL, NULL), 0);
    tc_echo(&t, 10, 5);
    assert_false(snap().id.verified);
    tc_close(&t);
    rc = tc_open(&t, s.port, NULL, "h2", ROGUE, ROGUE_KEY);
    assert_true(rc < 0 || tc_ended(&t));
    tc_close(&t);
    srv_stop(&s);
}

/* Opens a TLS connection and has the application trust it. */
static void open_trusted(tcli *t, uint16_t port)
{
    assert_int_equal(tc_open(t, port, NULL, "h2", NULL, NULL), 0);
    assert_int_equal(tc_send(t, "!trust", 6), 0);
    char ok[2];
    assert_int_equal(tc_recv(t, ok, 2), 0);
    assert_memory_equal(ok, "ok", 2);
}

/* max_connections and max_conns_per_addr: with every connection trusted,
 * the next one is refused (closed at once). */
static void limit_case(unsigned total, unsigned per_addr)
{
    tsrv s;
    nana_tcp_config cfg;
    cfg_default(&cfg);
    cfg.max_connections = total;
    cfg.max_conns_per_addr = per_addr;
    srv_start(&s, &cfg);
    tcli t[3];
    open_trusted(&t[0], s.port);
    open_trusted(&t[1], s.port);
    assert_true(tc_open(&t[2], s.port, NULL, "h2", NULL, NULL) < 0);
    tc_close(&t[2]);
    st = stats(&s);
    assert_int_equal(st.refused, 1);
    assert_int_equal(st.accepted, 2);
    assert_int_equal(st.conns_untrusted, 0);
    /* One leaves: room again. */
    tc_close(&t[1]);
    STATS_WAIT(&s, st.conns_open == 1);
    open_trusted(&t[1], s.port);
    tc_echo(&t[0], 100, 6);
    tc_close(&t[0]);
    tc_close(&t[1]);
    srv_stop(&s);
}

static void test_max_connections(void **state)
{
    (void)state;
    limit_case(2, 100);
}

static void test_max_per_addr(void **state)
{
    (void)state;
    limit_case(100, 2);
}

/* max_untrusted: each newcomer past it evicts an untrusted connection
 * (across loops too); trusted ones are never evicted. */
static void test_untrusted_eviction(void **state)
{
    (void)state;
    tsrv s;
    nana_tcp_config cfg;
    cfg_default(&cfg);
    cfg.max_untrusted = 3;
    srv_start(&s, &cfg);
    enum { N = 12 };
    tcli trusted, t[N];
    open_trusted(&trusted, s.port);
    for (int i = 0; i < N; i++)
        assert_int_equal(tc_open(&t[i], s.port, NULL, "h2", NULL, NULL), 0);
    STATS_WAIT(&s, st.evicted == N - 3 && st.conns_open == 4);
    assert_int_equal(st.conns_untrusted, 3);
    assert_int_equal(st.refused, 0);
    unsigned ended = 0;
    for (int i = 0; i < N; i++) {
        /* The survivors echo; the evicted have ended. */
        uint8_t b[1];
        struct timeval tv = {0, 300000};
        setsockopt(t[i].fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        ssize_t r = gnutls_record_recv(t[i].s, b, 1);
        if (r != GNUTLS_E_AGAIN) ended++;
        tc_close(&t[i]);
    }
    assert_int_equal(ended, N - 3);
    tc_echo(&trusted, 100, 7);
    tc_close(&trusted);
    srv_stop(&s);
}

/* A client that connects and sends nothing is closed at the handshake
 * deadline. */
static void test_handshake_timeout(void **state)
{
    (void)state;
    tsrv s;
    nana_tcp_config cfg;
    cfg_default(&cfg);
    cfg.handshake_timeout_ms = 200;
    srv_start(&s, &cfg);
    int fd = raw_connect(s.port);
    assert_true(fd >= 0);
    uint64_t t0 = now_ms();
    assert_true(raw_ended(fd));
    assert_true(now_ms() - t0 >= 150);
    close(fd);
    STATS_WAIT(&s, st.handshake_timeouts == 1 && st.conns_open == 0);
    srv_stop(&s);
}

/* Not trusted in time: closed, counted; the application hears of it. */
static void test_untrusted_timeout(void **state)
{
    (void)state;
    tsrv s;
    nana_tcp_config cfg;
    cfg_default(&cfg);
    cfg.untrusted_timeout_ms = 300;
    srv_start(&s, &cfg);
    tcli t, ok;
    assert_int_equal(tc_open(&t, s.port, NULL, "h2", NULL, NULL), 0);
    open_trusted(&ok, s.port);
    tc_echo(&t, 10, 8);
    assert_true(tc_ended(&t));
    tc_close(&t);
    STATS_WAIT(&s, st.untrusted_timeouts == 1 && st.conns_open == 1);
    assert_true(s_wait(&S.closes, 1));
    sleep_ms(400);
    tc_echo(&ok, 10, 9); /* trusted: no deadline */
    tc_close(&ok);
    srv_stop(&s);
}

/* No bytes either way for idle_timeout_ms: closed; bytes keep it open. */
static void test_idle_timeout(void **state)
{
    (void)state;
    tsrv s;
    nana_tcp_config cfg;
    cfg_default(&cfg);
    cfg.idle_timeout_ms = 400;
    srv_start(&s, &cfg);
    tcli t;
    assert_int_equal(tc_open(&t, s.port, NULL, "h2", NULL, NULL), 0);
    for (int i = 0; i < 6; i++) {
        sleep_ms(150);
        tc_echo(&t, 10, (uint8_t)i); /* 900 ms in all, never 400 idle */
    }
    uint64_t t0 = now_ms();
    assert_true(tc_ended(&t));
    assert_true(now_ms() - t0 >= 300);
    tc_close(&t);
    STATS_WAIT(&s, st.idle_timeouts == 1 && st.conns_open == 0);
    assert_string_equal(snap().last_error, "idle timeout");
    srv_stop(&s);
}

/* A peer that never reads while the server keeps sending: the send buffer
 * stays at the cap, the server stops reading what the peer sends, and the
 * idle deadline ends it. */
static void test_peer_never_reads(void **state)
{
    (void)state;
    tsrv s;
    nana_tcp_config cfg;
    cfg_default(&cfg);
    cfg.max_out_bytes = (size_t)64 * 1024;
    cfg.idle_timeout_ms = 1000;
    srv_start(&s, &cfg);
    tcli t;
    assert_int_equal(tc_open(&t, s.port, NULL, "h2", NULL, NULL), 0);
    struct timeval tv = {1, 0};
    setsockopt(t.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    assert_int_equal(tc_send(&t, "!flood", 6), 0);
    /* Send until the kernel's buffers are full: the server reads nothing
     * while its send buffer is over the cap. */
    static uint8_t chunk[16384];
    memset(chunk, 'x', sizeof(chunk));
    size_t sent = 0;
    while (sent < (256u << 20)) {
        ssize_t r = gnutls_record_send(t.s, chunk, sizeof(chunk));
        if (r == GNUTLS_E_INTERRUPTED) continue;
        if (r < 0) break;
        sent += (size_t)r;
    }
    assert_true(sent < (256u << 20));
    seen v = snap();
    uint64_t got = v.recv_bytes, maxq = v.max_queued;
    printf("client sent %zu bytes, the server took %llu; its send buffer peaked at %llu\n", sent,
           (unsigned long long)got, (unsigned long long)maxq);
    assert_true(got < (uint64_t)1024 * 1024);
    assert_true(got < sent);
    assert_int_equal(maxq, (uint64_t)64 * 1024);
    STATS_WAIT(&s, st.idle_timeouts == 1 && st.conns_open == 0);
    tc_close(&t);
    srv_stop(&s);
}

/* Plaintext: no TLS, no ALPN, the same echo. */
static void test_plaintext(void **state)
{
    (void)state;
    tsrv s;
    nana_tcp_config cfg;
    cfg_default(&cfg);
    cfg.plaintext = 1;
    cfg.cert_file = cfg.key_file = cfg.ca_file = NULL;
    srv_start(&s, &cfg);
    int fd = raw_connect(s.port);
    assert_true(fd >= 0);
    static uint8_t out[300000], in[300000];
    for (size_t i = 0; i < sizeof(out); i++)
        out[i] = (uint8_t)(i * 13 + 1);
    out[0] = 'x';
    assert_int_equal(send(fd, out, sizeof(out), 0), (ssize_t)sizeof(out));
    size_t got = 0;
    while (got < sizeof(in)) {
        ssize_t r = recv(fd, in + got, sizeof(in) - got, 0);
        assert_true(r > 0);
        got += (size_t)r;
    }
    assert_memory_equal(out, in, sizeof(in));
    seen v = snap();
    assert_string_equal(v.alpn, "");
    assert_string_equal(v.version, "");
    assert_true(v.exporter_rc < 0);
    close(fd);
    assert_true(s_wait(&S.closes, 1));
    srv_stop(&s);
}

/* A graceful close writes everything queued, then close_notify. */
static void test_graceful_close_flushes(void **state)
{
    (void)state;
    tsrv s;
    nana_tcp_config cfg;
    cfg_default(&cfg);
    cfg.max_out_bytes = (size_t)2 * BYE_BYTES;
    srv_start(&s, &cfg);
    tcli t;
    assert_int_equal(tc_open(&t, s.port, NULL, "h2", NULL, NULL), 0);
    assert_int_equal(tc_send(&t, "!bye", 4), 0);
    sleep_ms(100); /* the server closes while the bytes sit in the buffers */
    uint8_t *in = malloc(BYE_BYTES);
    assert_non_null(in);
    assert_int_equal(tc_recv(&t, in, BYE_BYTES), 0);
    for (size_t i = 0; i < BYE_BYTES; i++)
        if (in[i] != (uint8_t)(i * 7)) fail_msg("byte %zu differs", i);
    free(in);
    uint8_t b;
    assert_int_equal(gnutls_record_recv(t.s, &b, 1), 0); /* close_notify */
    tc_close(&t);
    assert_true(s_wait(&S.closes, 1));
    /* recv returning an error: what was queued goes first. */
    assert_int_equal(tc_open(&t, s.port, NULL, "h2", NULL, NULL), 0);
    assert_int_equal(tc_send(&t, "!quit", 5), 0);
    char bye[3];
    assert_int_equal(tc_recv(&t, bye, 3), 0);
    assert_memory_equal(bye, "bye", 3);
    assert_int_equal(gnutls_record_recv(t.s, &b, 1), 0);
    tc_close(&t);
    assert_true(s_wait(&S.closes, 2));
    srv_stop(&s);
}

/* Garbage instead of a ClientHello closes the connection; the endpoint
 * goes on serving. */
static void test_garbage_hello(void **state)
{
    (void)state;
    tsrv s;
    nana_tcp_config cfg;
    cfg_default(&cfg);
    srv_start(&s, &cfg);
    uint8_t junk[4096];
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (uint8_t)(i * 151 + 7);
    /* Random bytes, an HTTP/1.1 request, a record header claiming a huge
     * handshake message. */
    const uint8_t huge[] = {0x16, 0x03, 0x01, 0xff, 0xff, 0x01, 0xff, 0xff, 0xff};
    const char *http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    struct {
        const void *p;
        size_t n;
    } cases[] = {{junk, sizeof(junk)}, {http, strlen(http)}, {huge, sizeof(huge)}};
    for (size_t k = 0; k < 3; k++) {
        int fd = raw_connect(s.port);
        assert_true(fd >= 0);
        assert_int_equal(send(fd, cases[k].p, cases[k].n, MSG_NOSIGNAL), (ssize_t)cases[k].n);
        if (k == 2) shutdown(fd, SHUT_WR); /* the rest of the message never comes */
        assert_true(raw_ended(fd));
        close(fd);
    }
    STATS_WAIT(&s, st.handshake_failures == 3 && st.conns_open == 0);
    tcli t;
    assert_int_equal(tc_open(&t, s.port, NULL, "h2", NULL, NULL), 0);
    tc_echo(&t, 1000, 10);
    tc_close(&t);
    srv_stop(&s);
}

/* conn_open refusing: the connection closes, conn_close is not called. */
static void test_open_refused(void **state)
{
    (void)state;
    tsrv s;
    nana_tcp_config cfg;
    cfg_default(&cfg);
    srv_start(&s, &cfg);
    pthread_mutex_lock(&mu);
    S.refuse_open = true;
    pthread_mutex_unlock(&mu);
    tcli t;
    int rc = tc_open(&t, s.port, NULL, "h2", NULL, NULL);
    assert_true(rc < 0 || tc_ended(&t));
    tc_close(&t);
    STATS_WAIT(&s, st.conns_open == 0);
    assert_int_equal(s_get(&S.opens), 1);
    assert_int_equal(s_get(&S.closes), 0);
    srv_stop(&s);
}

/* Deleting the endpoint closes every connection; conn_close runs for each. */
static void test_del_closes_all(void **state)
{
    (void)state;
    tsrv s;
    nana_tcp_config cfg;
    cfg_default(&cfg);
    srv_start(&s, &cfg);
    tcli t[6];
    for (int i = 0; i < 6; i++) {
        assert_int_equal(tc_open(&t[i], s.port, NULL, "h2", NULL, NULL), 0);
        tc_echo(&t[i], 10, (uint8_t)i);
    }
    assert_true(s_wait(&S.opens, 6));
    srv_stop(&s); /* asserts opens == closes */
    assert_int_equal(s_get(&S.closes), 6);
    for (int i = 0; i < 6; i++) {
        assert_true(tc_ended(&t[i]));
        tc_close(&t[i]);
    }
}

/* Stopping accepting: new clients are refused, open ones go on. */
static void test_stop_accepting(void **state)
{
    (void)state;
    tsrv s;
    nana_tcp_config cfg;
    cfg_default(&cfg);
    srv_start(&s, &cfg);
    tcli t;
    assert_int_equal(tc_open(&t, s.port, NULL, "h2", NULL, NULL), 0);
    nana_tcp_ep_stop_accepting(s.ep);
    nana_tcp_ep_stop_accepting(s.ep); /* twice: harmless */
    uint64_t end = now_ms() + WAIT_MS;
    int fd;
    while ((fd = raw_connect(s.port)) >= 0) { /* the listeners close in their loops */
        close(fd);
        assert_true(now_ms() < end);
        sleep_ms(10);
    }
    tc_echo(&t, 1000, 11);
    tc_close(&t);
    srv_stop(&s);
}

/* accept4 fails with EMFILE: accepting pauses (no spinning), then the
 * waiting client is taken. (socket() failing: test_client_failures.) */
static atomic_int accept_failures;
static int (*real_accept4)(int, struct sockaddr *, socklen_t *, int);

static int failing_accept4(int fd, struct sockaddr *a, socklen_t *len, int flags)
{
    if (atomic_load(&accept_failures) > 0) {
        atomic_fetch_sub(&accept_failures, 1);
        errno = EMFILE;
        return -1;
    }
    return real_accept4(fd, a, len, flags);
}

static atomic_int socket_failures;
static int (*real_socket)(int, int, int);

static int failing_socket(int domain, int type, int protocol)
{
    if (atomic_load(&socket_failures) > 0) {
        atomic_fetch_sub(&socket_failures, 1);
        errno = EMFILE;
        return -1;
    }
    return real_socket(domain, type, protocol);
}

static void test_accept_emfile(void **state)
{
    (void)state;
    tsrv s;
    nana_tcp_config cfg;
    cfg_default(&cfg);
    srv_start(&s, &cfg);
    atomic_store(&accept_failures, 1);
    tcli t;
    uint64_t t0 = now_ms();
    assert_int_equal(tc_open(&t, s.port, NULL, "h2", NULL, NULL), 0);
    assert_true(now_ms() - t0 >= 80); /* waited out the pause */
    tc_echo(&t, 100, 12);
    st = stats(&s);
    assert_int_equal(st.accept_pauses, 1);
    assert_int_equal(atomic_load(&accept_failures), 0);
    tc_close(&t);
    srv_stop(&s);
}

/* Bad configurations are refused with a reason. */
static void test_bad_config(void **state)
{
    (void)state;
    nana_loop *loop;
    assert_int_equal(nana_loop_new("tcp-cfg", &loop), 0);
    assert_int_equal(nana_loop_start(loop), 0);
    nana_tcp_config cfg;
    nana_tcp_ep *ep = NULL;
    cfg_default(&cfg);
    cfg.loops = &loop;
    cfg.nloops = 1;
    cfg.key_file = NULL;
    assert_int_equal(nana_tcp_ep_new(&cfg, &ep), NANA_ERR_INVALID);
    cfg_default(&cfg);
    cfg.loops = &loop;
    cfg.nloops = 1;
    cfg.ca_file = NULL;
    cfg.client_auth = 2;
    assert_int_equal(nana_tcp_ep_new(&cfg, &ep), NANA_ERR_INVALID);
    cfg_default(&cfg);
    cfg.nloops = 0;
    assert_int_equal(nana_tcp_ep_new(&cfg, &ep), NANA_ERR_INVALID);
    cfg_default(&cfg);
    cfg.loops = &loop;
    cfg.nloops = 1;
    cfg.host = "localhost"; /* not numeric */
    assert_int_equal(nana_tcp_ep_new(&cfg, &ep), NANA_ERR_INVALID);
    cfg_default(&cfg);
    cfg.loops = &loop;
    cfg.nloops = 1;
    cfg.cert_file = "/nonexistent/cert.pem";
    assert_int_equal(nana_tcp_ep_new(&cfg, &ep), NANA_ERR_IO);
    /* A port in use (no SO_REUSEPORT with one loop). */
    cfg_default(&cfg);
    cfg.loops = &loop;
    cfg.nloops = 1;
    assert_int_equal(nana_tcp_ep_new(&cfg, &ep), 0);
    nana_tcp_ep *ep2 = NULL;
    cfg.port = nana_tcp_ep_port(ep);
    assert_int_equal(nana_tcp_ep_new(&cfg, &ep2), NANA_ERR_IO);
    assert_non_null(strstr(nana_errmsg(), "bind"));
    nana_tcp_ep_del(ep);
    nana_loop_free(loop);
}

/* The application's timer fires once, on the loop. */
static void test_app_timer(void **state)
{
    (void)state;
    tsrv s;
    nana_tcp_config cfg;
    cfg_default(&cfg);
    srv_start(&s, &cfg);
    tcli t;
    assert_int_equal(tc_open(&t, s.port, NULL, "h2", NULL, NULL), 0);
    uint64_t t0 = now_ms();
    assert_int_equal(tc_send(&t, "!timer", 6), 0);
    char tick[4];
    assert_int_equal(tc_recv(&t, tick, 4), 0);
    assert_memory_equal(tick, "tick", 4);
    assert_true(now_ms() - t0 >= 40);
    tc_echo(&t, 10, 13);
    tc_close(&t);
    srv_stop(&s);
}

/* ---- our client (nana_tcp_connect) ------------------------------------------ */

/* What the client's callbacks saw (under cmu); asserted on a copy. */
typedef struct cseen {
    bool opened, closed;
    char alpn[40], version[16], error[96];
    uint8_t exporter[32];
    size_t got;
} cseen;

static pthread_mutex_t cmu = PTHREAD_MUTEX_INITIALIZER;
static cseen C;
static uint8_t cbuf[1 << 20];

static cseen csnap(void)
{
    pthread_mutex_lock(&cmu);
    cseen v = C;
    pthread_mutex_unlock(&cmu);
    return v;
}

static int c_open(nana_tcp_conn *c, void *user)
{
    (void)user;
    pthread_mutex_lock(&cmu);
    C.opened = true;
    snprintf(C.alpn, sizeof(C.alpn), "%s", nana_tcp_conn_alpn(c));
    snprintf(C.version, sizeof(C.version), "%s", nana_tcp_conn_tls_version(c));
    (void)nana_tcp_conn_exporter(c, LABEL, NULL, 0, C.exporter, sizeof(C.exporter));
    pthread_mutex_unlock(&cmu);
    return 0;
}

static int c_recv(nana_tcp_conn *c, void *user, const uint8_t *p, size_t n)
{
    (void)c;
    (void)user;
    pthread_mutex_lock(&cmu);
    size_t k = n < sizeof(cbuf) - C.got ? n : sizeof(cbuf) - C.got;
    memcpy(cbuf + C.got, p, k);
    C.got += k;
    pthread_mutex_unlock(&cmu);
    return 0;
}

static void c_close(nana_tcp_conn *c, void *user)
{
    (void)user;
    pthread_mutex_lock(&cmu);
    C.closed = true;
    snprintf(C.error, sizeof(C.error), "%s", nana_tcp_conn_error(c));
    pthread_mutex_unlock(&cmu);
}

static const nana_tcp_callbacks client_cb = {
    .conn_open = c_open,
    .recv = c_recv,
    .conn_close = c_close,
};

/* Work run on the client's loop, the test thread waiting (bounded). */
typedef struct on_loop {
    struct nana_loop_post post;
    void (*fn)(struct on_loop *w);
    nana_loop *loop;
    const nana_tcp_client_config *cfg;
    nana_tcp_conn *conn;
    const void *data;
    size_t n;
    int rc;
    atomic_bool done;
} on_loop;

static void on_loop_run(nana_loop *loop, struct nana_loop_post *p)
{
    on_loop *w = (on_loop *)(void *)p;
    w->loop = loop;
    if (loop) w->fn(w);
    atomic_store(&w->done, true);
}

static void run_on(nana_loop *loop, on_loop *w)
{
    w->post.run = on_loop_run;
    atomic_store(&w->done, false);
    nana_loop_post(loop, &w->post);
    uint64_t end = now_ms() + WAIT_MS;
    while (!atomic_load(&w->done)) {
        assert_true(now_ms() < end);
        sleep_ms(1);
    }
}

static void do_connect(on_loop *w)
{
    w->rc = nana_tcp_connect(w->loop, w->cfg, &client_cb, NULL, &w->conn);
}

static void do_send(on_loop *w)
{
    w->rc = nana_tcp_send(w->conn, w->data, w->n);
}

static void do_close(on_loop *w)
{
    nana_tcp_conn_close(w->conn, 1);
}

/* Connects on |loop| with |cfg| and waits until it opened or closed. */
static nana_tcp_conn *client_connect(nana_loop *loop, const nana_tcp_client_config *cfg)
{
    pthread_mutex_lock(&cmu);
    memset(&C, 0, sizeof(C));
    pthread_mutex_unlock(&cmu);
    on_loop w = {.fn = do_connect, .cfg = cfg};
    run_on(loop, &w);
    assert_int_equal(w.rc, 0);
    uint64_t end = now_ms() + WAIT_MS;
    for (cseen v = csnap(); !v.opened && !v.closed; v = csnap()) {
        assert_true(now_ms() < end);
        sleep_ms(2);
    }
    return w.conn;
}

/* Sends |n| bytes through our client and waits for their echo. */
static void client_echo(nana_loop *loop, nana_tcp_conn *c, size_t n, uint8_t seed)
{
    uint8_t *out = malloc(n);
    assert_non_null(out);
    for (size_t i = 0; i < n; i++)
        out[i] = (uint8_t)(i * 17 + seed);
    out[0] = 'x';
    pthread_mutex_lock(&cmu);
    C.got = 0;
    pthread_mutex_unlock(&cmu);
    on_loop w = {.fn = do_send, .conn = c, .data = out, .n = n};
    run_on(loop, &w);
    assert_int_equal(w.rc, 0);
    uint64_t end = now_ms() + WAIT_MS;
    while (csnap().got < n) {
        assert_true(now_ms() < end);
        sleep_ms(2);
    }
    pthread_mutex_lock(&cmu);
    int same = memcmp(cbuf, out, n);
    pthread_mutex_unlock(&cmu);
    assert_int_equal(same, 0);
    free(out);
}

static void client_wait_closed(void)
{
    uint64_t end = now_ms() + WAIT_MS;
    while (!csnap().closed) {
        assert_true(now_ms() < end);
        sleep_ms(2);
    }
}

static void client_cfg(nana_tcp_client_config *cc, uint16_t port)
{
    nana_tcp_client_config_init(cc);
    cc->host = "127.0.0.1";
    cc->port = port;
    cc->server_name = "localhost";
    cc->ca_file = CA;
    cc->alpn = h2;
    cc->nalpn = 1;
}

/* Our client against our server: TLS 1.3, ALPN h2, a client certificate
 * the server verifies, equal exporters; a graceful close ends both. */
static void test_client_echo(void **state)
{
    (void)state;
    tsrv s;
    nana_tcp_config cfg;
    cfg_default(&cfg);
    cfg.client_auth = 2;
    srv_start(&s, &cfg);
    nana_loop *cl;
    assert_int_equal(nana_loop_new("tcp-client", &cl), 0);
    assert_int_equal(nana_loop_start(cl), 0);
    nana_tcp_client_config cc;
    client_cfg(&cc, s.port);
    cc.cert_file = CLIENT;
    cc.key_file = CLIENT_KEY;
    nana_tcp_conn *c = client_connect(cl, &cc);
    cseen v = csnap();
    assert_true(v.opened);
    assert_string_equal(v.alpn, "h2");
    assert_string_equal(v.version, "TLS1.3");
    client_echo(cl, c, 10, 1);
    client_echo(cl, c, sizeof(cbuf), 2);
    seen sv = snap();
    assert_true(sv.id.verified);
    assert_memory_equal(sv.exporter, csnap().exporter, 32);
    on_loop w = {.fn = do_close, .conn = c};
    run_on(cl, &w);
    client_wait_closed();
    assert_true(s_wait(&S.closes, 1));
    nana_loop_free(cl);
    srv_stop(&s);
}

/* Plaintext both ways. */
static void test_client_plaintext(void **state)
{
    (void)state;
    tsrv s;
    nana_tcp_config cfg;
    cfg_default(&cfg);
    cfg.plaintext = 1;
    srv_start(&s, &cfg);
    nana_loop *cl;
    assert_int_equal(nana_loop_new("tcp-client", &cl), 0);
    assert_int_equal(nana_loop_start(cl), 0);
    nana_tcp_client_config cc;
    client_cfg(&cc, s.port);
    cc.plaintext = 1;
    nana_tcp_conn *c = client_connect(cl, &cc);
    assert_true(csnap().opened);
    assert_string_equal(csnap().alpn, "");
    client_echo(cl, c, 100000, 3);
    /* The loop stopping closes the connection: conn_close on the loop. */
    nana_loop_free(cl);
    assert_true(csnap().closed);
    assert_true(s_wait(&S.closes, 1));
    srv_stop(&s);
}

/* Failures before conn_open reach conn_close with a reason: nothing
 * listening, a server name the certificate does not carry, a server that
 * never answers the handshake (the connect deadline). */
static void test_client_failures(void **state)
{
    (void)state;
    nana_loop *cl;
    assert_int_equal(nana_loop_new("tcp-client", &cl), 0);
    assert_int_equal(nana_loop_start(cl), 0);
    /* A port with a socket bound but not listening: refused. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t alen = sizeof(a);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    nana_tcp_client_config cc;
    client_cfg(&cc, ntohs(a.sin_port));
    client_connect(cl, &cc);
    cseen v = csnap();
    assert_false(v.opened);
    assert_true(v.closed);
    assert_non_null(strstr(v.error, "connect"));
    /* Listening but never accepting: the TLS handshake gets no answer. */
    assert_int_equal(listen(fd, 4), 0);
    cc.connect_timeout_ms = 200;
    uint64_t t0 = now_ms();
    client_connect(cl, &cc);
    v = csnap();
    assert_true(v.closed && !v.opened);
    assert_string_equal(v.error, "connect timeout");
    assert_true(now_ms() - t0 >= 150);
    close(fd);
    /* The wrong name: the server's certificate does not verify. */
    tsrv s;
    nana_tcp_config cfg;
    cfg_default(&cfg);
    srv_start(&s, &cfg);
    client_cfg(&cc, s.port);
    cc.server_name = "wrong.example";
    client_connect(cl, &cc);
    v = csnap();
    assert_true(v.closed && !v.opened);
    assert_non_null(strstr(v.error, "TLS handshake"));
    /* The socket cannot be made: an error at once, no callback. */
    client_cfg(&cc, s.port);
    atomic_store(&socket_failures, 1);
    on_loop w0 = {.fn = do_connect, .cfg = &cc};
    run_on(cl, &w0);
    assert_int_equal(w0.rc, NANA_ERR_IO);
    assert_false(csnap().opened);
    /* Not a numeric address: refused at once, no callback. */
    client_cfg(&cc, s.port);
    cc.host = "localhost";
    on_loop w = {.fn = do_connect, .cfg = &cc};
    run_on(cl, &w);
    assert_int_equal(w.rc, NANA_ERR_INVALID);
    nana_loop_free(cl);
    srv_stop(&s);
}

int main(void)
{
    /* Before any loop or socket exists (see nana_loop_sys). */
    real_accept4 = nana_loop_sys_calls.accept4;
    nana_loop_sys_calls.accept4 = failing_accept4;
    real_socket = nana_loop_sys_calls.socket;
    nana_loop_sys_calls.socket = failing_socket;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_echo_tls13),
        cmocka_unit_test(test_echo_tls12),
        cmocka_unit_test(test_alpn_and_suites_refused),
        cmocka_unit_test(test_mtls),
        cmocka_unit_test(test_max_connections),
        cmocka_unit_test(test_max_per_addr),
        cmocka_unit_test(test_untrusted_eviction),
        cmocka_unit_test(test_handshake_timeout),
        cmocka_unit_test(test_untrusted_timeout),
        cmocka_unit_test(test_idle_timeout),
        cmocka_unit_test(test_peer_never_reads),
        cmocka_unit_test(test_plaintext),
        cmocka_unit_test(test_graceful_close_flushes),
        cmocka_unit_test(test_garbage_hello),
        cmocka_unit_test(test_open_refused),
        cmocka_unit_test(test_del_closes_all),
        cmocka_unit_test(test_stop_accepting),
        cmocka_unit_test(test_accept_emfile),
        cmocka_unit_test(test_bad_config),
        cmocka_unit_test(test_app_timer),
        cmocka_unit_test(test_client_echo),
        cmocka_unit_test(test_client_plaintext),
        cmocka_unit_test(test_client_failures),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
