/*
 * test_quic.c - the QUIC transport over real UDP sockets on loopback: our
 * client against our server, every case of the transport issue.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "quic_harness.h"

#include <arpa/inet.h>
#include <poll.h>
#include <sodium.h>
#include <sys/socket.h>

/* Starts a default echo server, a client, and connects it. */
static void start_pair(qt_server *s, qt_client *cl, nana_quic_config *cfg)
{
    assert_int_equal(qt_server_start(s, cfg), 0);
    assert_int_equal(qt_dial(cl, &certs, "nanasqlite", NULL, NULL, s->port, "localhost"), 0);
    assert_true(qt_wait_flag(cl, &cl->opened, 5000));
}

static void test_echo_many_streams(void **state)
{
    (void)state;
    qt_server s = {0};
    qt_client cl;
    nana_quic_config cfg;
    qt_server_config(&cfg, &s, &certs);
    cfg.max_streams_bidi = 64;
    start_pair(&s, &cl, &cfg);
    assert_string_equal(cl.alpn, "nanasqlite");
    /* 300 streams: more than the peer's limit of 64 at once, so stream
     * credit must come back as streams close. */
    int rc = 0;
    for (int round = 0; round < 5 && !rc; round++)
        rc = qt_echo(&cl, 60, 3000 + (size_t)round * 1000, (uint8_t)round);
    assert_int_equal(rc, 0);
    assert_int_equal(qt_echo(&cl, 1, 0, 9), 0); /* an empty stream: just FIN */
    nana_quic_stats st;
    nana_quic_ep_stats(s.ep, &st);
    assert_int_equal(st.handshakes_done, 1);
    assert_int_equal(st.conns_open, 1);
    qt_client_stop(&cl);
    qt_server_stop(&s);
    assert_int_equal(atomic_load(&s.closes), 1);
}

static void test_100mb_one_stream(void **state)
{
    (void)state;
    qt_server s = {0};
    qt_client cl;
    nana_quic_config cfg;
    qt_server_config(&cfg, &s, &certs);
    /* The echo server has no backpressure of its own: it queues what it
     * receives. When the client's thread is starved (a loaded machine, a
     * sanitizer build) the echo falls behind and, at the default 64 MiB
     * cap, the server closed the connection mid-transfer. The cap here
     * holds the whole transfer: this test is about one stream carrying
     * 100 MiB intact, not about the cap (test_quic_core tests that). */
    cfg.max_stream_send_buffer = 128u << 20;
    start_pair(&s, &cl, &cfg);
    qt_call k = {.cl = &cl, .fn = qt_fn_open_one, .seed = 77};
    assert_int_equal(qt_call_run(&k), 0);
    k.fn = qt_fn_pump;
    k.size = 100u * 1024 * 1024;
    k.window = 8u * 1024 * 1024;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < 200000 && k.sent < k.size; i++) {
        assert_int_equal(qt_call_run(&k), 0);
        if (k.sent < k.size) usleep(1000);
    }
    assert_int_equal(k.sent, k.size);
    assert_int_equal(qt_wait_fins(&cl, 60000), 1);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("100 MiB echoed in %.2f s\n", secs);
    assert_false(cl.streams[0].mismatch);
    assert_int_equal(cl.streams[0].received, k.size);
    qt_client_stop(&cl);
    qt_server_stop(&s);
}

/* The client waits for the outcome of a handshake that should fail:
 * returns the peer's error code (0 if the connection never closed). */
static uint64_t refused_code(qt_client *cl)
{
    assert_true(qt_wait_flag(cl, &cl->closed, 8000));
    return cl->peer_error ? cl->peer_code : 0;
}

static void test_mtls(void **state)
{
    (void)state;
    qt_server s = {0};
    nana_quic_config cfg;
    qt_server_config(&cfg, &s, &certs);
    cfg.client_auth = NANA_QUIC_CLIENT_CERT_REQUIRE;
    assert_int_equal(qt_server_start(&s, &cfg), 0);

    /* A certificate from the trusted CA: accepted, identity known. */
    qt_client cl;
    assert_int_equal(
        qt_dial(&cl, &certs, "nanasqlite", certs.client, certs.client_key, s.port, "localhost"), 0);
    assert_true(qt_wait_flag(&cl, &cl.opened, 5000));
    assert_int_equal(qt_echo(&cl, 2, 100, 1), 0);
    pthread_mutex_lock(&s.mu);
    assert_int_equal(s.last_id.verified, 1);
    assert_non_null(strstr(s.last_id.subject, "CN=alice"));
    nana_quic_identity id = s.last_id;
    pthread_mutex_unlock(&s.mu);
    uint8_t cert_fp[32], spki_fp[32];
    assert_int_equal(nana_cert_fingerprints(certs.client, cert_fp, spki_fp), 0);
    assert_memory_equal(id.cert_sha256, cert_fp, 32);
    assert_memory_equal(id.spki_sha256, spki_fp, 32);
    qt_client_stop(&cl);

    /* No certificate: refused with certificate_required (0x100 + 116). */
    assert_int_equal(qt_dial(&cl, &certs, "nanasqlite", NULL, NULL, s.port, "localhost"), 0);
    assert_int_equal(refused_code(&cl), 0x100 + 116);
    qt_client_stop(&cl);

    /* A certificate from another CA: refused (unknown_ca 48 or bad_certificate 42). */
    assert_int_equal(
        qt_dial(&cl, &certs, "nanasqlite", certs.rogue, certs.rogue_key, s.port, "localhost"), 0);
    uint64_t code = refused_code(&cl);
    if (code != 0x100 + 48 && code != 0x100 + 42)
        fail_msg("refused with 0x%llx", (unsigned long long)code);
    qt_client_stop(&cl);
    assert_int_equal(atomic_load(&s.opens), 1);

    /* The client refuses a server whose certificate does not name it. */
    assert_int_equal(qt_dial(&cl, &certs, "nanasqlite", certs.client, certs.client_key, s.port,
                             "db.example.com"),
                     0);
    assert_true(qt_wait_flag(&cl, &cl.closed, 8000));
    assert_int_equal(cl.opened, 0);
    qt_client_stop(&cl);
    qt_server_stop(&s);
}

static void test_alpn(void **state)
{
    (void)state;
    qt_server s = {0};
    nana_quic_config cfg;
    qt_server_config(&cfg, &s, &certs);
    assert_int_equal(qt_server_start(&s, &cfg), 0);
    qt_client cl;
    /* A protocol the server does not speak: no_application_protocol (120). */
    assert_int_equal(qt_dial(&cl, &certs, "h9", NULL, NULL, s.port, "localhost"), 0);
    assert_int_equal(refused_code(&cl), 0x100 + 120);
    qt_client_stop(&cl);
    /* No ALPN at all (how NanaSQLite clients connect): accepted. */
    assert_int_equal(qt_dial(&cl, &certs, NULL, NULL, NULL, s.port, "localhost"), 0);
    assert_true(qt_wait_flag(&cl, &cl.opened, 5000));
    assert_string_equal(cl.alpn, "");
    assert_int_equal(qt_echo(&cl, 1, 10, 3), 0);
    qt_client_stop(&cl);
    qt_server_stop(&s);
    /* ... unless the server demands one. */
    qt_server_config(&cfg, &s, &certs);
    cfg.allow_no_alpn = 0;
    assert_int_equal(qt_server_start(&s, &cfg), 0);
    assert_int_equal(qt_dial(&cl, &certs, NULL, NULL, NULL, s.port, "localhost"), 0);
    assert_int_equal(refused_code(&cl), 0x100 + 120);
    qt_client_stop(&cl);
    qt_server_stop(&s);
}

static void test_max_connections(void **state)
{
    (void)state;
    qt_server s = {0};
    nana_quic_config cfg;
    qt_server_config(&cfg, &s, &certs);
    cfg.max_connections = 2;
    assert_int_equal(qt_server_start(&s, &cfg), 0);
    qt_client a, b, c;
    assert_int_equal(qt_client_start(&a, &certs, "nanasqlite", NULL, NULL), 0);
    assert_int_equal(qt_client_start(&b, &certs, "nanasqlite", NULL, NULL), 0);
    assert_int_equal(qt_client_start(&c, &certs, "nanasqlite", NULL, NULL), 0);
    assert_int_equal(qt_connect(&a, s.port, "localhost", NULL, 0), 0);
    assert_true(qt_wait_flag(&a, &a.opened, 5000));
    assert_int_equal(qt_connect(&b, s.port, "localhost", NULL, 0), 0);
    assert_true(qt_wait_flag(&b, &b.opened, 5000));
    /* A client's handshake ends before the server's (which needs the
     * client's Finished), and until then the server may close the
     * connection to make room: wait until the server opened both. */
    for (int i = 0; i < 1000 && atomic_load(&s.opens) < 2; i++)
        usleep(5000);
    assert_int_equal(atomic_load(&s.opens), 2);
    /* The third is told CONNECTION_REFUSED, not left to time out. */
    assert_int_equal(qt_connect(&c, s.port, "localhost", NULL, 0), 0);
    assert_int_equal(refused_code(&c), 0x2);
    nana_quic_stats st;
    nana_quic_ep_stats(s.ep, &st);
    assert_int_equal(st.conns_refused, 1);
    /* When one leaves, a new one gets in. */
    qt_client_stop(&a);
    for (int i = 0; i < 400 && atomic_load(&s.closes) < 1; i++)
        usleep(5000);
    for (int i = 0; i < 400; i++) {
        nana_quic_ep_stats(s.ep, &st);
        if (st.conns_open < 2) break;
        usleep(5000); /* the closing period of a ends */
    }
    assert_int_equal(qt_connect(&c, s.port, "localhost", NULL, 0), 0);
    assert_true(qt_wait_flag(&c, &c.opened, 5000));
    assert_int_equal(qt_echo(&c, 1, 10, 5), 0);
    qt_client_stop(&b);
    qt_client_stop(&c);
    qt_server_stop(&s);
}

static void test_idle_timeout(void **state)
{
    (void)state;
    qt_server s = {0};
    nana_quic_config cfg;
    qt_server_config(&cfg, &s, &certs);
    cfg.idle_timeout_ms = 300;
    qt_client cl;
    start_pair(&s, &cl, &cfg);
    assert_int_equal(qt_echo(&cl, 1, 10, 1), 0);
    /* Silent for longer than the idle timeout: both sides let go. */
    assert_true(qt_wait_flag(&cl, &cl.closed, 5000));
    assert_int_equal(cl.peer_error, 0); /* a timeout, not a close from the peer */
    for (int i = 0; i < 400 && atomic_load(&s.closes) < 1; i++)
        usleep(5000);
    assert_int_equal(atomic_load(&s.closes), 1);
    qt_client_stop(&cl);
    qt_server_stop(&s);
}

static void test_retry(void **state)
{
    (void)state;
    qt_server s = {0};
    nana_quic_config cfg;
    qt_server_config(&cfg, &s, &certs);
    cfg.retry = NANA_QUIC_RETRY_ALWAYS;
    qt_client cl;
    start_pair(&s, &cl, &cfg);
    assert_int_equal(qt_echo(&cl, 3, 1000, 2), 0);
    nana_quic_stats st;
    nana_quic_ep_stats(s.ep, &st);
    assert_int_equal(st.retries_sent, 1);
    assert_int_equal(st.handshakes_done, 1);
    qt_client_stop(&cl);
    qt_server_stop(&s);
}

/* Opens a stream and sends as soon as the connection exists (0-RTT). */
static void fn_early(qt_call *k, nana_quic_conn *c)
{
    qt_fn_send_streams(k, c);
}

/* The server's accept hook holds a new client's first Initial while
 * |accept_hold| is set, until |accept_release| is (at most 5 s): the
 * client cannot finish its handshake before the test released it. */
static atomic_int accept_hold, accept_release, accept_held;

static int accept_when_released(const struct sockaddr *addr, socklen_t len, void *user)
{
    (void)addr;
    (void)len;
    (void)user;
    if (!atomic_load(&accept_hold)) return 0;
    atomic_store(&accept_held, 1);
    for (int i = 0; i < 5000 && !atomic_load(&accept_release); i++)
        usleep(1000);
    return 0;
}

/*
 * A ticket from the first connection lets the second send its request as
 * 0-RTT data. The server answers nothing until the request is queued (its
 * accept hook waits for the test), so the request leaves before the
 * handshake can finish and reaches the server as early data however the
 * threads are scheduled.
 */
static void test_resumption_0rtt(void **state)
{
    (void)state;
    qt_server s = {0};
    nana_quic_config cfg;
    qt_server_config(&cfg, &s, &certs);
    cfg.enable_0rtt = 1;
    nana_quic_callbacks cb = *cfg.cb;
    cb.accept = accept_when_released;
    cfg.cb = &cb;
    atomic_store(&accept_hold, 0);
    atomic_store(&accept_release, 0);
    atomic_store(&accept_held, 0);
    qt_client cl;
    start_pair(&s, &cl, &cfg);
    assert_int_equal(qt_echo(&cl, 1, 100, 1), 0);
    assert_true(qt_wait_flag(&cl, &cl.tickets, 5000));
    uint8_t ticket[8192];
    pthread_mutex_lock(&cl.mu);
    size_t tlen = cl.ticket_len;
    memcpy(ticket, cl.ticket, tlen);
    int first_early = cl.early_accepted;
    pthread_mutex_unlock(&cl.mu);
    assert_int_equal(first_early, 0);
    /* A second connection with the ticket: its request is queued while
     * the server holds the first Initial, then the server goes on. */
    atomic_store(&accept_hold, 1);
    qt_client c2;
    assert_int_equal(qt_client_start(&c2, &certs, "nanasqlite", NULL, NULL), 0);
    assert_int_equal(qt_connect(&c2, s.port, "localhost", ticket, tlen), 0);
    qt_call k = {.cl = &c2, .fn = fn_early, .nstreams = 1, .size = 500, .seed = 4};
    assert_int_equal(qt_call_run(&k), 0);
    assert_int_equal(k.nstreams, 1);
    atomic_store(&accept_release, 1);
    assert_int_equal(qt_wait_fins(&c2, 5000), 1);
    assert_int_equal(atomic_load(&accept_held), 1);
    assert_false(c2.streams[0].mismatch);
    assert_true(qt_wait_flag(&c2, &c2.opened, 5000));
    pthread_mutex_lock(&c2.mu);
    int second_early = c2.early_accepted;
    pthread_mutex_unlock(&c2.mu);
    assert_int_equal(second_early, 1);
    assert_true(atomic_load(&s.early_chunks) >= 1);
    nana_quic_stats st;
    assert_int_equal(nana_quic_ep_stats(s.ep, &st), 0);
    assert_int_equal(st.early_accepted, 1);
    qt_client_stop(&c2);
    qt_client_stop(&cl);
    qt_server_stop(&s);
}

static void test_migration(void **state)
{
    (void)state;
    qt_server s = {0};
    nana_quic_config cfg;
    qt_server_config(&cfg, &s, &certs);
    qt_client cl;
    start_pair(&s, &cl, &cfg);
    assert_int_equal(qt_echo(&cl, 2, 2000, 1), 0);
    /* A new socket (new port) mid-connection: the connection carries on. */
    assert_int_equal(nana_quic_ep_rebind(cl.ep), 0);
    assert_int_equal(qt_echo(&cl, 2, 2000, 2), 0);
    assert_int_equal(cl.closed, 0);
    nana_quic_stats st;
    for (int i = 0; i < 200; i++) {
        nana_quic_ep_stats(s.ep, &st);
        if (st.migrations) break;
        usleep(5000);
    }
    assert_true(st.migrations >= 1);
    assert_int_equal(st.handshakes_done, 1);
    qt_client_stop(&cl);
    qt_server_stop(&s);
}

/* Sends raw datagrams to the server and returns how many bytes came back
 * within |ms| (0 if nothing). */
static size_t raw_exchange(uint16_t port, const uint8_t *pkt, size_t len, uint8_t *reply,
                           size_t cap, int ms)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    sendto(fd, pkt, len, 0, (struct sockaddr *)&a, sizeof(a));
    struct pollfd p = {.fd = fd, .events = POLLIN};
    size_t got = 0;
    if (poll(&p, 1, ms) == 1) {
        ssize_t r = recv(fd, reply, cap, 0);
        if (r > 0) got = (size_t)r;
    }
    close(fd);
    return got;
}

static void test_bad_datagrams(void **state)
{
    (void)state;
    qt_server s = {0};
    nana_quic_config cfg;
    qt_server_config(&cfg, &s, &certs);
    qt_client cl;
    start_pair(&s, &cl, &cfg);
    uint8_t pkt[1300], reply[1500];
    /* Garbage of every size, a truncated Initial, a long header that lies
     * about its length: all ignored. */
    for (size_t n = 0; n < 1300; n += 37) {
        randombytes_buf(pkt, n);
        if (n) pkt[0] |= 0x40;
        raw_exchange(s.port, pkt, n, reply, sizeof(reply), 0);
    }
    memset(pkt, 0, sizeof(pkt));
    pkt[0] = 0xc0; /* Initial, version 1, then nothing sensible */
    pkt[4] = 1;
    pkt[5] = 20;
    for (size_t n = 1; n < 60; n++)
        raw_exchange(s.port, pkt, n, reply, sizeof(reply), 0);
    /* An unknown version in a full-size Initial: Version Negotiation. */
    memset(pkt, 0, 1200);
    pkt[0] = 0xc0;
    memcpy(pkt + 1, "\x0a\x0b\x0c\x0d", 4);
    pkt[5] = 8;
    randombytes_buf(pkt + 6, 8);
    pkt[14] = 8;
    randombytes_buf(pkt + 15, 8);
    size_t n = raw_exchange(s.port, pkt, 1200, reply, sizeof(reply), 1000);
    assert_true(n > 7);
    assert_int_equal(reply[0] & 0x80, 0x80);
    assert_memory_equal(reply + 1, "\0\0\0\0", 4); /* version 0 = Version Negotiation */
    /* A short-header packet for no connection: a Stateless Reset, smaller. */
    pkt[0] = 0x40;
    randombytes_buf(pkt + 1, 100);
    n = raw_exchange(s.port, pkt, 100, reply, sizeof(reply), 1000);
    assert_true(n > 20 && n < 100);
    /* The real client is unharmed. */
    assert_int_equal(qt_echo(&cl, 2, 5000, 7), 0);
    nana_quic_stats st;
    nana_quic_ep_stats(s.ep, &st);
    assert_true(st.packets_dropped > 30);
    assert_true(st.vn_sent >= 1);     /* random long headers of 1200+ bytes get one too */
    assert_true(st.resets_sent >= 1); /* random short headers may get one too */
    assert_int_equal(st.handshakes_done, 1);
    qt_client_stop(&cl);
    qt_server_stop(&s);
}

/* True if the kernel has the IPv6 loopback address (containers may not). */
static bool have_ipv6_loopback(void)
{
    FILE *f = fopen("/proc/net/if_inet6", "r");
    if (!f) return false;
    char line[256];
    bool found = false;
    while (!found && fgets(line, sizeof(line), f))
        found = strncmp(line, "00000000000000000000000000000001", 32) == 0;
    fclose(f);
    return found;
}

/* IPv6: a server on ::1 and a client with an IPv6 socket; a client with an
 * IPv4 socket is told it cannot reach an IPv6 address. */
static void test_ipv6(void **state)
{
    (void)state;
    if (!have_ipv6_loopback()) {
        fprintf(stderr, "no ::1 on this machine: IPv6 test skipped\n");
        skip();
    }
    qt_server s = {0};
    nana_quic_config cfg;
    qt_server_config(&cfg, &s, &certs);
    cfg.host = "::1";
    assert_int_equal(qt_server_start(&s, &cfg), 0);
    qt_client cl;
    nana_quic_config ccfg;
    qt_client_config(&ccfg, &cl, &certs, "nanasqlite", NULL, NULL);
    ccfg.host = "::1";
    assert_int_equal(nana_quic_ep_new(&ccfg, &cl.ep), 0);
    cl.remote = "::1";
    assert_int_equal(qt_connect(&cl, s.port, "localhost", NULL, 0), 0);
    assert_true(qt_wait_flag(&cl, &cl.opened, 5000));
    assert_int_equal(qt_echo(&cl, 3, 5000, 4), 0);
    qt_client_stop(&cl);
    qt_client v4;
    assert_int_equal(qt_client_start(&v4, &certs, "nanasqlite", NULL, NULL), 0);
    nana_quic_handle h;
    assert_int_equal(nana_quic_connect(v4.ep, "::1", s.port, "localhost", NULL, 0, NULL, &h),
                     NANA_ERR_INVALID);
    assert_int_equal(
        nana_quic_connect(v4.ep, "not-an-address", s.port, "localhost", NULL, 0, NULL, &h),
        NANA_ERR_INVALID);
    qt_client_stop(&v4);
    qt_server_stop(&s);
}

static atomic_int post_gate, posts_run;

/* Holds the client's I/O thread until the test opens the gate (10 s at most). */
static void hold_thread(nana_quic_conn *c, void *arg)
{
    (void)c;
    (void)arg;
    atomic_store(&post_gate, 1);
    for (int i = 0; i < 10000 && atomic_load(&post_gate) == 1; i++)
        usleep(1000);
}

static void count_post(nana_quic_conn *c, void *arg)
{
    (void)c;
    (void)arg;
    atomic_fetch_add(&posts_run, 1);
}

/* The post queue of an I/O thread is bounded: the 65,537th waiting post is
 * refused with NANA_ERR_BUSY, and posting works again once it drains. */
static void test_post_queue_limit(void **state)
{
    (void)state;
    qt_server s = {0};
    qt_client cl;
    nana_quic_config cfg;
    qt_server_config(&cfg, &s, &certs);
    start_pair(&s, &cl, &cfg);
    atomic_store(&post_gate, 0);
    atomic_store(&posts_run, 0);
    assert_int_equal(nana_quic_post(cl.ep, cl.h, hold_thread, NULL), 0);
    for (int i = 0; i < 5000 && atomic_load(&post_gate) == 0; i++)
        usleep(1000);
    assert_int_equal(atomic_load(&post_gate), 1);
    enum { LIMIT = 65536 };
    for (int i = 0; i < LIMIT; i++)
        assert_int_equal(nana_quic_post(cl.ep, cl.h, count_post, NULL), 0);
    assert_int_equal(nana_quic_post(cl.ep, cl.h, count_post, NULL), NANA_ERR_BUSY);
    atomic_store(&post_gate, 2);
    for (int i = 0; i < 10000 && atomic_load(&posts_run) < LIMIT; i++)
        usleep(1000);
    assert_int_equal(atomic_load(&posts_run), LIMIT);
    assert_int_equal(nana_quic_post(cl.ep, cl.h, count_post, NULL), 0);
    assert_int_equal(qt_echo(&cl, 1, 100, 5), 0); /* the connection is fine */
    qt_client_stop(&cl);
    qt_server_stop(&s);
}

static void test_threads(void **state)
{
    (void)state;
    qt_server s = {0};
    nana_quic_config cfg;
    qt_server_config(&cfg, &s, &certs);
    cfg.threads = 2;
    assert_int_equal(qt_server_start(&s, &cfg), 0);
    enum { N = 6 };
    qt_client cl[N];
    for (int i = 0; i < N; i++) {
        assert_int_equal(qt_dial(&cl[i], &certs, "nanasqlite", NULL, NULL, s.port, "localhost"), 0);
    }
    for (int i = 0; i < N; i++) {
        assert_true(qt_wait_flag(&cl[i], &cl[i].opened, 5000));
        assert_int_equal(qt_echo(&cl[i], 4, 1000, (uint8_t)i), 0);
    }
    /* Migration with two threads: a packet may reach the other thread and
     * must be forwarded to its connection's owner. */
    for (int i = 0; i < N; i++) {
        assert_int_equal(nana_quic_ep_rebind(cl[i].ep), 0);
        assert_int_equal(qt_echo(&cl[i], 2, 1000, (uint8_t)(i + 50)), 0);
    }
    for (int i = 0; i < N; i++)
        qt_client_stop(&cl[i]);
    qt_server_stop(&s);
    assert_int_equal(atomic_load(&s.closes), N);
}

/* Reads a server's statistics over and over until told to stop. */
typedef struct stats_reader {
    nana_quic_ep *ep;
    atomic_int stop;
    int reads, failures;
} stats_reader;

static void *read_stats(void *arg)
{
    stats_reader *r = arg;
    while (!atomic_load(&r->stop)) {
        nana_quic_stats st;
        if (nana_quic_ep_stats(r->ep, &st)) r->failures++;
        r->reads++;
    }
    return NULL;
}

/* A client's own statistics, read on its I/O thread. */
static void fn_own_stats(qt_call *k, nana_quic_conn *c)
{
    (void)c;
    nana_quic_stats st;
    k->rc = nana_quic_ep_stats(k->cl->ep, &st);
    if (!k->rc && st.handshakes_done != 1) k->rc = -1;
}

/* Statistics read while two I/O threads carry traffic: each thread copies
 * its own counters when asked (ThreadSanitizer sees no race), the totals
 * add up, and an I/O thread may read its own endpoint's. */
static void test_stats(void **state)
{
    (void)state;
    qt_server s = {0};
    nana_quic_config cfg;
    qt_server_config(&cfg, &s, &certs);
    cfg.threads = 2;
    assert_int_equal(qt_server_start(&s, &cfg), 0);
    stats_reader r = {.ep = s.ep};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, read_stats, &r), 0);
    enum { N = 4 };
    qt_client cl[N];
    for (int i = 0; i < N; i++) {
        assert_int_equal(qt_dial(&cl[i], &certs, "nanasqlite", NULL, NULL, s.port, "localhost"), 0);
        assert_true(qt_wait_flag(&cl[i], &cl[i].opened, 5000));
        assert_int_equal(qt_echo(&cl[i], 8, 2000, (uint8_t)i), 0);
    }
    atomic_store(&r.stop, 1);
    pthread_join(t, NULL);
    assert_true(r.reads > 0);
    assert_int_equal(r.failures, 0);
    nana_quic_stats st;
    assert_int_equal(nana_quic_ep_stats(s.ep, &st), 0);
    assert_int_equal(st.handshakes_done, N);
    assert_int_equal(st.conns_open, N);
    assert_true(st.datagrams_in >= (uint64_t)N * 8);
    assert_true(st.datagrams_out >= (uint64_t)N * 8);
    qt_call k = {.cl = &cl[0], .fn = fn_own_stats};
    assert_int_equal(qt_call_run(&k), 0);
    for (int i = 0; i < N; i++)
        qt_client_stop(&cl[i]);
    qt_server_stop(&s);
}

int main(int argc, char **argv)
{
    if (argc > 1) cmocka_set_test_filter(argv[1]); /* run one test by name */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_echo_many_streams),
        cmocka_unit_test(test_100mb_one_stream),
        cmocka_unit_test(test_mtls),
        cmocka_unit_test(test_alpn),
        cmocka_unit_test(test_max_connections),
        cmocka_unit_test(test_idle_timeout),
        cmocka_unit_test(test_retry),
        cmocka_unit_test(test_resumption_0rtt),
        cmocka_unit_test(test_migration),
        cmocka_unit_test(test_bad_datagrams),
        cmocka_unit_test(test_ipv6),
        cmocka_unit_test(test_post_queue_limit),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_stats),
    };
    return cmocka_run_group_tests(tests, qt_group_setup, qt_group_teardown);
}
