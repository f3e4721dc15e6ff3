/*
 * test_dqlite_tls.c - dqlite nodes in this process whose cluster traffic
 * goes over mutual TLS (src/dqlite/tls.c), on loopback ports.
 *
 * Three nodes, each with its own node certificate of one CA: the cluster
 * forms (joins, Raft replication and a leadership transfer all go through
 * the TLS fronts and connectors), a row written through the leader is read
 * back through another node's leader.
 *
 * One node, and peers that are not nodes: plaintext (dqlite's handshake word
 * and a LEADER request), a TLS client without a certificate, one with a
 * node certificate of another CA, one with a client-only certificate of the
 * cluster's CA, and a node of another CA dialling out: each gets no answer
 * and nothing reaches dqlite (the front relays none of them), while a
 * proper node certificate through the same raw client gets the answer. A
 * peer that never finishes its handshake is cut at the deadline; idle
 * unauthenticated connections past pending_max evict the oldest; past
 * conns_max established ones, a newcomer is refused; a session whose one
 * side ended while the other never does is closed after handshake_ms. Bad
 * credentials are refused at start. Every wait is bounded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "auth/nana_certgen.h"
#include "dqlite/nana_dqlite.h"
#include "util/nana_err.h"
#include "dqlite_test.h"
#include "util/nana_time.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <gnutls/gnutls.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define OK(x)                                                                                      \
    do {                                                                                           \
        int rc_ = (x);                                                                             \
        if (rc_) fail_msg("%s: %d %s", #x, rc_, nana_errmsg());                                    \
    } while (0)

static char g_root[512];
static char g_certs[600];

/* g_certs/NAME */
static const char *cpath(const char *name)
{
    static char buf[8][700];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, sizeof(buf[0]), "%s/%s", g_certs, name);
    return p;
}

/* Writes NAME.pem and NAME.key: a certificate of the CA |ca| (ca.pem or
 * other-ca.pem, with its .key) with the key purposes asked for. */
static void issue(const char *name, const char *ca, const char *ca_key, int server, int client)
{
    const char *ips[] = {"127.0.0.1"};
    nana_cert_spec spec = {.common_name = name,
                           .ip_addrs = ips,
                           .n_ip = 1,
                           .days = 30,
                           .algo = NANA_KEY_ECDSA_P256,
                           .server = server,
                           .client = client};
    char cert[700], key[700];
    snprintf(cert, sizeof(cert), "%s/%s.pem", g_certs, name);
    snprintf(key, sizeof(key), "%s/%s.key", g_certs, name);
    OK(nana_certgen_write(&spec, cpath(ca), cpath(ca_key), cert, key, 1));
}

/* Certificates for every test: the dev set (ca, client-only "alice", another
 * CA), node certificates of both CAs and a server-only one. */
static int setup(void **state)
{
    (void)state;
    const char *dir = getenv("NANA_TEST_TMP");
    if (!dir || !dir[0]) dir = "/tmp";
    mkdir(dir, 0755);
    snprintf(g_root, sizeof(g_root), "%s/dqltls-XXXXXX", dir);
    if (!mkdtemp(g_root)) return -1;
    snprintf(g_certs, sizeof(g_certs), "%s/certs", g_root);
    if (nana_certgen_dev_set(g_certs, "alice", 30, 1)) return -1;
    issue("node1", "ca.pem", "ca.key", 1, 1);
    issue("node2", "ca.pem", "ca.key", 1, 1);
    issue("node3", "ca.pem", "ca.key", 1, 1);
    issue("servonly", "ca.pem", "ca.key", 1, 0);
    issue("foreign", "other-ca.pem", "other-ca.key", 1, 1);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    nftw(g_root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

/* Starts a TLS of node certificate NAME (NAME.pem, NAME.key) under |ca|. */
static nana_dql_tls *tls_of(const char *name, const char *ca, int handshake_ms, size_t conns_max,
                            size_t pending_max)
{
    char cert[64], key[64];
    snprintf(cert, sizeof(cert), "%s.pem", name);
    snprintf(key, sizeof(key), "%s.key", name);
    nana_dql_tls_opts o;
    nana_dql_tls_opts_default(&o);
    o.cert_file = cpath(cert);
    o.key_file = cpath(key);
    o.ca_file = cpath(ca);
    if (handshake_ms) o.handshake_ms = handshake_ms;
    if (conns_max) o.conns_max = conns_max;
    if (pending_max) o.pending_max = pending_max;
    nana_dql_tls *t = NULL;
    OK(nana_dql_tls_start(&o, &t));
    return t;
}

/* A fresh node data directory under g_root. */
static void node_dir(char *out, size_t outlen, const char *name)
{
    snprintf(out, outlen, "%s/%s-XXXXXX", g_root, name);
    assert_non_null(mkdtemp(out));
}

/* A TCP connection to |addr| (127.0.0.1:PORT), blocking. */
static int tcp_to(const char *addr)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((uint16_t)strtoul(strrchr(addr, ':') + 1, NULL, 10));
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

/* dqlite's handshake word and a LEADER request. */
static void leader_request(nana_buf *b)
{
    nana_buf_init(b, 0);
    OK(nana_dql_enc_handshake(b));
    OK(nana_dql_enc_leader(b));
}

/* Reads from |fd| until end of stream or |ms|: the bytes read into |buf|
 * (at most |cap|); *eof 1 if the peer closed (or reset) within the time. */
static size_t read_until_close(int fd, uint8_t *buf, size_t cap, int ms, int *eof)
{
    size_t got = 0;
    uint64_t deadline = nana_now_ns() + (uint64_t)ms * 1000000u;
    *eof = 0;
    for (;;) {
        uint64_t now = nana_now_ns();
        if (now >= deadline) return got;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)((deadline - now) / 1000000u) + 1) <= 0) continue;
        uint8_t tmp[4096];
        ssize_t k = recv(fd, tmp, sizeof(tmp), 0);
        if (k <= 0) {
            *eof = 1;
            return got;
        }
        size_t n = (size_t)k < cap - got ? (size_t)k : cap - got;
        memcpy(buf + got, tmp, n);
        got += n;
    }
}

/*
 * A TLS client of our own on raw GnuTLS: trusts |ca|, shows |cert| (NULL:
 * none), sends dqlite's handshake word and LEADER, and reads a response
 * header. 1 if a SERVER response came back, 0 if the session failed or
 * closed first (within 5 s).
 */
static int raw_tls_leader(const char *addr, const char *cert, const char *key, const char *ca)
{
    gnutls_certificate_credentials_t cred;
    assert_int_equal(gnutls_certificate_allocate_credentials(&cred), 0);
    assert_true(gnutls_certificate_set_x509_trust_file(cred, ca, GNUTLS_X509_FMT_PEM) > 0);
    if (cert)
        assert_int_equal(gnutls_certificate_set_x509_key_file(cred, cert, key, GNUTLS_X509_FMT_PEM),
                         0);
    gnutls_session_t s;
    assert_int_equal(gnutls_init(&s, GNUTLS_CLIENT), 0);
    assert_int_equal(gnutls_priority_set_direct(s, "NORMAL:-VERS-ALL:+VERS-TLS1.3", NULL), 0);
    assert_int_equal(gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred), 0);
    int fd = tcp_to(addr);
    gnutls_transport_set_int(s, fd);
    gnutls_handshake_set_timeout(s, 5000);
    gnutls_record_set_timeout(s, 5000);
    int answered = 0;
    int g;
    do {
        g = gnutls_handshake(s);
    } while (g == GNUTLS_E_AGAIN || g == GNUTLS_E_INTERRUPTED);
    if (g == 0) {
        nana_buf b;
        leader_request(&b);
        ssize_t w = gnutls_record_send(s, b.data, b.len);
        nana_buf_free(&b);
        uint8_t hdr[8];
        size_t got = 0;
        while (w > 0 && got < sizeof(hdr)) {
            ssize_t k = gnutls_record_recv(s, hdr + got, sizeof(hdr) - got);
            if (k <= 0) break;
            got += (size_t)k;
        }
        answered = got == sizeof(hdr) && hdr[4] == NANA_DQL_RESP_SERVER;
    }
    gnutls_deinit(s);
    close(fd);
    gnutls_certificate_free_credentials(cred);
    return answered;
}

/* Waits (up to 5 s) until |t|'s stats satisfy |pred|. */
static int stats_wait(nana_dql_tls *t, int (*pred)(const nana_dql_tls_stats *, uint64_t),
                      uint64_t arg, nana_dql_tls_stats *s)
{
    uint64_t deadline = nana_now_ns() + 5000000000ull;
    for (;;) {
        nana_dql_tls_stats_get(t, s);
        if (pred(s, arg)) return 1;
        if (nana_now_ns() >= deadline) return 0;
        usleep(10000);
    }
}

static int failed_at_least(const nana_dql_tls_stats *s, uint64_t n)
{
    return s->failed >= n;
}
static int timed_out_at_least(const nana_dql_tls_stats *s, uint64_t n)
{
    return s->timed_out >= n;
}
static int pending_is(const nana_dql_tls_stats *s, uint64_t n)
{
    return s->pending == n;
}

/* ---- three nodes ---- */

static nana_dql_conn *leader_is(const char *from, uint64_t want)
{
    const char *one[1] = {from};
    uint64_t deadline = nana_now_ns() + 15000000000ull;
    while (nana_now_ns() < deadline) {
        nana_dql_conn *c;
        OK(nana_dql_connect_leader(one, 1, NULL, &c));
        uint64_t id;
        char addr[64];
        OK(nana_dql_leader(c, &id, addr, sizeof(addr)));
        if (id == want) return c;
        nana_dql_close(c);
        usleep(50000);
    }
    fail_msg("node %llu did not become the leader", (unsigned long long)want);
    return NULL;
}

static void test_three_nodes_over_tls(void **state)
{
    (void)state;
    const char *names[3] = {"node1", "node2", "node3"};
    nana_dql_tls *tls[3];
    nana_dql_node *nodes[3];
    char dirs[3][700], addrs[3][64];
    for (int i = 0; i < 3; i++) {
        tls[i] = tls_of(names[i], "ca.pem", 0, 0, 0);
        node_dir(dirs[i], sizeof(dirs[i]), names[i]);
        free_address(addrs[i], sizeof(addrs[i]));
        OK(nana_dql_node_start((uint64_t)i + 1, addrs[i], dirs[i], 0, 0, tls[i], &nodes[i]));
    }
    /* This process's client (the joins, the reads and writes) goes through
     * node 1's TLS. */
    nana_dql_tls_use(tls[0]);
    const char *first[1] = {addrs[0]};
    OK(nana_dql_node_join(first, 1, 2, addrs[1], NULL));
    OK(nana_dql_node_join(first, 1, 3, addrs[2], NULL));

    nana_dql_conn *c;
    OK(nana_dql_connect_leader(first, 1, NULL, &c));
    nana_dql_node_info *info;
    size_t n;
    OK(nana_dql_cluster(c, &info, &n));
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(info[i].address, addrs[i]);
        assert_int_equal(info[i].role, NANA_DQL_VOTER);
    }
    free(info);
    OK(nana_dql_open(c, "app.db"));
    OK(nana_dql_exec_sql(c, "CREATE TABLE kv (k TEXT PRIMARY KEY, v BLOB)", NULL, 0, NULL));
    nana_dql_value p[2] = {nana_dql_text("key", 3), nana_dql_blob("value", 5)};
    OK(nana_dql_exec(c, "INSERT INTO kv VALUES (?, ?)", p, 2, NULL));
    /* Leadership moves to node 2 (Raft over the TLS between nodes 1 and 2);
     * node 3 names it, and it has the row. */
    OK(nana_dql_transfer(c, 2));
    nana_dql_close(c);
    c = leader_is(addrs[2], 2);
    assert_string_equal(nana_dql_conn_address(c), addrs[1]);
    OK(nana_dql_open(c, "app.db"));
    nana_dql_rows rows;
    OK(nana_dql_query(c, "SELECT v FROM kv WHERE k = ?", p, 1, &rows));
    assert_int_equal(rows.nrows, 1);
    assert_memory_equal(nana_dql_rows_at(&rows, 0, 0)->p, "value", 5);
    nana_dql_rows_free(&rows);
    nana_dql_close(c);

    /* Every front relayed authenticated connections, and refused none. */
    for (int i = 0; i < 3; i++) {
        nana_dql_tls_stats s;
        nana_dql_tls_stats_get(tls[i], &s);
        assert_true(s.relayed > 0);
        assert_int_equal(s.failed, 0);
    }
    /* A plain TCP client (no TLS) cannot reach the cluster at all. */
    nana_dql_tls_use(NULL);
    nana_dql_opts o;
    nana_dql_opts_default(&o);
    o.io_timeout_ms = 2000;
    assert_int_not_equal(nana_dql_connect(addrs[1], &o, &c), 0);

    for (int i = 2; i >= 0; i--)
        nana_dql_node_stop(nodes[i]);
    for (int i = 0; i < 3; i++)
        nana_dql_tls_stop(tls[i]);
}

/* ---- one node, and peers that are not nodes ---- */

typedef struct one_node {
    nana_dql_tls *tls;
    nana_dql_node *node;
    char addr[64];
    char dir[700];
} one_node;

static void one_start(one_node *n, int handshake_ms, size_t conns_max, size_t pending_max)
{
    n->tls = tls_of("node1", "ca.pem", handshake_ms, conns_max, pending_max);
    node_dir(n->dir, sizeof(n->dir), "one");
    free_address(n->addr, sizeof(n->addr));
    OK(nana_dql_node_start(1, n->addr, n->dir, 0, 0, n->tls, &n->node));
}

static void one_stop(one_node *n)
{
    nana_dql_node_stop(n->node);
    nana_dql_tls_stop(n->tls);
}

static void test_strangers_refused(void **state)
{
    (void)state;
    one_node n;
    one_start(&n, 0, 0, 0);
    nana_dql_tls_stats s;

    /* The raw client works with a node certificate (so its refusals below
     * are the front's doing). */
    assert_true(raw_tls_leader(n.addr, cpath("node2.pem"), cpath("node2.key"), cpath("ca.pem")));
    nana_dql_tls_stats_get(n.tls, &s);
    assert_int_equal(s.relayed, 1);

    /* Plaintext: dqlite's handshake word and LEADER get no dqlite answer,
     * and the connection is closed. */
    int fd = tcp_to(n.addr);
    nana_buf b;
    leader_request(&b);
    assert_int_equal(send(fd, b.data, b.len, MSG_NOSIGNAL), (ssize_t)b.len);
    nana_buf_free(&b);
    uint8_t got[256];
    int eof;
    size_t k = read_until_close(fd, got, sizeof(got), 8000, &eof);
    close(fd);
    assert_true(eof);
    /* at most a TLS alert record (type 21), never a dqlite message */
    if (k) assert_int_equal(got[0], 21);
    assert_true(stats_wait(n.tls, failed_at_least, 1, &s));

    /* TLS without a client certificate. */
    assert_false(raw_tls_leader(n.addr, NULL, NULL, cpath("ca.pem")));
    assert_true(stats_wait(n.tls, failed_at_least, 2, &s));
    /* A node certificate of another CA. */
    assert_false(
        raw_tls_leader(n.addr, cpath("foreign.pem"), cpath("foreign.key"), cpath("ca.pem")));
    assert_true(stats_wait(n.tls, failed_at_least, 3, &s));
    /* The cluster CA's client-only certificate (a door's client): not a node. */
    assert_false(raw_tls_leader(n.addr, cpath("client.pem"), cpath("client.key"), cpath("ca.pem")));
    assert_true(stats_wait(n.tls, failed_at_least, 4, &s));
    /* A server-only certificate of the cluster CA: not a node either. */
    assert_false(
        raw_tls_leader(n.addr, cpath("servonly.pem"), cpath("servonly.key"), cpath("ca.pem")));
    assert_true(stats_wait(n.tls, failed_at_least, 5, &s));
    nana_dql_tls_stats_get(n.tls, &s);
    assert_int_equal(s.relayed, 1);

    /* Our own connector as a node of another CA: it refuses this node's
     * certificate itself (the handshake fails on its side). */
    nana_dql_tls *other = tls_of("foreign", "other-ca.pem", 0, 0, 0);
    int pfd = -1;
    assert_int_equal(nana_dql_tls_connect(other, n.addr, 3000, 0, &pfd), NANA_ERR_PERM);
    nana_dql_tls_stop(other);
    /* And as a node of this cluster it connects, and dqlite answers. */
    nana_dql_tls *good = tls_of("node3", "ca.pem", 0, 0, 0);
    OK(nana_dql_tls_connect(good, n.addr, 3000, 0, &pfd));
    leader_request(&b);
    assert_int_equal(send(pfd, b.data, b.len, MSG_NOSIGNAL), (ssize_t)b.len);
    nana_buf_free(&b);
    struct pollfd p = {.fd = pfd, .events = POLLIN};
    assert_int_equal(poll(&p, 1, 5000), 1);
    assert_int_equal(recv(pfd, got, 8, MSG_WAITALL), 8);
    assert_int_equal(got[4], NANA_DQL_RESP_SERVER);
    close(pfd);
    nana_dql_tls_stop(good);
    nana_dql_tls_stats_get(n.tls, &s);
    assert_int_equal(s.relayed, 2);
    one_stop(&n);
}

static void test_stalled_handshake_cut(void **state)
{
    (void)state;
    one_node n;
    one_start(&n, 300, 0, 0);
    uint64_t t0 = nana_now_ns();
    int fd = tcp_to(n.addr);
    uint8_t got[64];
    int eof;
    (void)read_until_close(fd, got, sizeof(got), 5000, &eof);
    close(fd);
    assert_true(eof);
    assert_true(nana_now_ns() - t0 >= 250000000ull); /* not before the deadline */
    nana_dql_tls_stats s;
    assert_true(stats_wait(n.tls, timed_out_at_least, 1, &s));
    assert_int_equal(s.relayed, 0);
    /* A half-sent ClientHello is cut the same way. */
    fd = tcp_to(n.addr);
    const uint8_t partial[] = {22, 3, 1, 0, 200, 1, 0};
    assert_int_equal(send(fd, partial, sizeof(partial), MSG_NOSIGNAL), (ssize_t)sizeof(partial));
    (void)read_until_close(fd, got, sizeof(got), 5000, &eof);
    close(fd);
    assert_true(eof);
    assert_true(stats_wait(n.tls, timed_out_at_least, 2, &s));
    one_stop(&n);
}

static void test_pending_cap(void **state)
{
    (void)state;
    enum { PENDING = 4, IDLE = 10 };
    one_node n;
    one_start(&n, 20000, 0, PENDING);
    int fds[IDLE];
    for (int i = 0; i < IDLE; i++) {
        fds[i] = tcp_to(n.addr);
        usleep(20000); /* accepted in this order */
    }
    nana_dql_tls_stats s;
    uint64_t deadline = nana_now_ns() + 5000000000ull;
    do {
        nana_dql_tls_stats_get(n.tls, &s);
        if (s.accepted == IDLE) break;
        usleep(10000);
    } while (nana_now_ns() < deadline);
    assert_int_equal(s.accepted, IDLE);
    assert_int_equal(s.pending, PENDING);
    assert_int_equal(s.evicted, IDLE - PENDING);
    /* The oldest were closed, the newest are still waiting. */
    uint8_t got[16];
    int eof;
    for (int i = 0; i < IDLE - PENDING; i++) {
        (void)read_until_close(fds[i], got, sizeof(got), 2000, &eof);
        assert_true(eof);
    }
    (void)read_until_close(fds[IDLE - 1], got, sizeof(got), 100, &eof);
    assert_false(eof);
    /* A node still gets in (it evicts one more idle one). */
    assert_true(raw_tls_leader(n.addr, cpath("node2.pem"), cpath("node2.key"), cpath("ca.pem")));
    for (int i = 0; i < IDLE; i++)
        close(fds[i]);
    assert_true(stats_wait(n.tls, pending_is, 0, &s));
    one_stop(&n);
}

static void test_conns_cap(void **state)
{
    (void)state;
    one_node n;
    one_start(&n, 0, 2, 0);
    nana_dql_tls *peer = tls_of("node2", "ca.pem", 0, 0, 0);
    int a = -1, b = -1, c = -1;
    OK(nana_dql_tls_connect(peer, n.addr, 3000, 0, &a));
    OK(nana_dql_tls_connect(peer, n.addr, 3000, 0, &b));
    nana_dql_tls_stats s;
    uint64_t deadline = nana_now_ns() + 5000000000ull;
    do {
        nana_dql_tls_stats_get(n.tls, &s);
        if (s.relayed == 2) break;
        usleep(10000);
    } while (nana_now_ns() < deadline);
    assert_int_equal(s.relayed, 2);
    /* A third is refused: the TCP connection is closed before any TLS. */
    assert_int_not_equal(nana_dql_tls_connect(peer, n.addr, 3000, 0, &c), 0);
    nana_dql_tls_stats_get(n.tls, &s);
    assert_int_equal(s.refused, 1);
    assert_int_equal(s.open, 2);
    close(a);
    close(b);
    /* Once they are gone, there is room again. */
    deadline = nana_now_ns() + 5000000000ull;
    do {
        nana_dql_tls_stats_get(n.tls, &s);
        if (s.open == 0) break;
        usleep(10000);
    } while (nana_now_ns() < deadline);
    assert_int_equal(s.open, 0);
    OK(nana_dql_tls_connect(peer, n.addr, 3000, 0, &c));
    close(c);
    nana_dql_tls_stop(peer);
    one_stop(&n);
}

/* A TLS peer of our own that takes one connection, completes the handshake
 * as a node (node2) and then neither reads nor closes until told to. */
typedef struct mute_peer {
    int lfd;
    int stop[2]; /* a pipe: written to let the peer go */
    int handshook;
} mute_peer;

static void *mute_peer_main(void *arg)
{
    mute_peer *m = arg;
    struct pollfd p = {.fd = m->lfd, .events = POLLIN};
    if (poll(&p, 1, 5000) != 1) return NULL;
    int fd = accept(m->lfd, NULL, NULL);
    if (fd < 0) return NULL;
    gnutls_certificate_credentials_t cred;
    gnutls_certificate_allocate_credentials(&cred);
    gnutls_certificate_set_x509_trust_file(cred, cpath("ca.pem"), GNUTLS_X509_FMT_PEM);
    gnutls_certificate_set_x509_key_file(cred, cpath("node2.pem"), cpath("node2.key"),
                                         GNUTLS_X509_FMT_PEM);
    gnutls_session_t s;
    gnutls_init(&s, GNUTLS_SERVER);
    gnutls_priority_set_direct(s, "NORMAL:-VERS-ALL:+VERS-TLS1.3", NULL);
    gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred);
    gnutls_certificate_server_set_request(s, GNUTLS_CERT_REQUIRE);
    gnutls_transport_set_int(s, fd);
    gnutls_handshake_set_timeout(s, 5000);
    int g;
    do {
        g = gnutls_handshake(s);
    } while (g == GNUTLS_E_AGAIN || g == GNUTLS_E_INTERRUPTED);
    m->handshook = g == 0;
    struct pollfd q = {.fd = m->stop[0], .events = POLLIN};
    (void)poll(&q, 1, 10000);
    gnutls_deinit(s);
    close(fd);
    gnutls_certificate_free_credentials(cred);
    return NULL;
}

static void test_half_closed_cut(void **state)
{
    (void)state;
    mute_peer m = {.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    assert_int_equal(pipe(m.stop), 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(m.lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(m.lfd, 4), 0);
    socklen_t l = sizeof(sa);
    assert_int_equal(getsockname(m.lfd, (struct sockaddr *)&sa, &l), 0);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, mute_peer_main, &m), 0);

    nana_dql_tls *t = tls_of("node1", "ca.pem", 300, 0, 0);
    int fd = -1;
    OK(nana_dql_tls_connect(t, addr, 3000, 0, &fd));
    nana_dql_tls_stats s;
    uint64_t deadline = nana_now_ns() + 5000000000ull;
    do { /* the relay thread takes the session over */
        nana_dql_tls_stats_get(t, &s);
        if (s.sessions == 1) break;
        usleep(10000);
    } while (nana_now_ns() < deadline);
    assert_int_equal(s.sessions, 1);
    /* Our side ends; the peer never does: the session goes after 300 ms,
     * not before. */
    uint64_t t0 = nana_now_ns();
    close(fd);
    deadline = t0 + 5000000000ull;
    do {
        nana_dql_tls_stats_get(t, &s);
        if (s.sessions == 0) break;
        usleep(10000);
    } while (nana_now_ns() < deadline);
    assert_int_equal(s.sessions, 0);
    assert_true(nana_now_ns() - t0 >= 250000000ull);
    ssize_t w = write(m.stop[1], "x", 1);
    assert_int_equal(w, 1);
    pthread_join(th, NULL);
    assert_true(m.handshook);
    close(m.lfd);
    close(m.stop[0]);
    close(m.stop[1]);
    nana_dql_tls_stop(t);
}

static void test_bad_credentials(void **state)
{
    (void)state;
    nana_dql_tls_opts o;
    nana_dql_tls_opts_default(&o);
    nana_dql_tls *t = NULL;
    /* A certificate that is not a node's. */
    o.cert_file = cpath("servonly.pem");
    o.key_file = cpath("servonly.key");
    o.ca_file = cpath("ca.pem");
    assert_int_equal(nana_dql_tls_start(&o, &t), NANA_ERR_INVALID);
    assert_non_null(strstr(nana_errmsg(), "not a node certificate"));
    /* A node certificate of another CA. */
    o.cert_file = cpath("foreign.pem");
    o.key_file = cpath("foreign.key");
    assert_int_equal(nana_dql_tls_start(&o, &t), NANA_ERR_INVALID);
    assert_non_null(strstr(nana_errmsg(), "not valid under"));
    /* A key others may read. */
    o.cert_file = cpath("node1.pem");
    o.key_file = cpath("node1.key");
    assert_int_equal(chmod(o.key_file, 0640), 0);
    assert_int_equal(nana_dql_tls_start(&o, &t), NANA_ERR_INVALID);
    assert_non_null(strstr(nana_errmsg(), "chmod 600"));
    assert_int_equal(chmod(o.key_file, 0600), 0);
    OK(nana_dql_tls_start(&o, &t));
    nana_dql_tls_stop(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_credentials),
        cmocka_unit_test(test_strangers_refused),
        cmocka_unit_test(test_stalled_handshake_cut),
        cmocka_unit_test(test_pending_cap),
        cmocka_unit_test(test_conns_cap),
        cmocka_unit_test(test_half_closed_cut),
        cmocka_unit_test(test_three_nodes_over_tls),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
