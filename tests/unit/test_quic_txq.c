/*
 * test_quic_txq.c - the I/O thread's send queue (src/quic/txq.c) on real
 * loopback UDP sockets: every datagram queued arrives once, intact and at
 * its own destination; the queue sends itself when its message or byte
 * limit is reached and not before; GSO runs are cut at the kernel's limits;
 * a destination that refuses a datagram costs only that datagram.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "quic/quic_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#define NDEST 3

typedef struct rig {
    int tx_fd;
    int rx_fd[NDEST];
    ngtcp2_sockaddr_union local, dest[NDEST];
    socklen_t local_len, dest_len[NDEST];
    nana_quic_stats st;
    nana_quic_txq *q;
} rig;

/* Binds a UDP socket to 127.0.0.1 on a free port; |buf| sets SO_RCVBUF. */
static int bound_socket(ngtcp2_sockaddr_union *a, socklen_t *alen, int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    if (rcvbuf) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&in, sizeof(in)), 0);
    *alen = sizeof(*a);
    assert_int_equal(getsockname(fd, &a->sa, alen), 0);
    return fd;
}

static void rig_up(rig *r)
{
    memset(r, 0, sizeof(*r));
    r->tx_fd = bound_socket(&r->local, &r->local_len, 0);
    for (int i = 0; i < NDEST; i++)
        r->rx_fd[i] = bound_socket(&r->dest[i], &r->dest_len[i], 4 << 20);
    r->q = test_malloc(sizeof(*r->q));
    nana_quic_txq_init(r->q, r->tx_fd, false, &r->st);
}

static void rig_down(rig *r)
{
    close(r->tx_fd);
    for (int i = 0; i < NDEST; i++)
        close(r->rx_fd[i]);
    test_free(r->q);
}

static ngtcp2_path path_to(rig *r, int i)
{
    ngtcp2_path p = {
        .local = {.addr = &r->local.sa, .addrlen = r->local_len},
        .remote = {.addr = &r->dest[i].sa, .addrlen = r->dest_len[i]},
    };
    return p;
}

/* Fills |buf| with a pattern naming datagram |id|: byte k is id*31+k. */
static void pattern(uint8_t *buf, size_t len, unsigned id)
{
    for (size_t k = 0; k < len; k++)
        buf[k] = (uint8_t)(id * 31u + k);
}

/* Reads every datagram waiting on destination |i|; checks each against the
 * pattern of the next expected id and its length; returns how many. */
static size_t drain(rig *r, int i, unsigned *next_id, const size_t *lens)
{
    static uint8_t buf[65536];
    uint8_t want[2048];
    size_t got = 0;
    for (;;) {
        ssize_t n = recv(r->rx_fd[i], buf, sizeof(buf), MSG_DONTWAIT);
        if (n < 0) {
            assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
            return got;
        }
        unsigned id = (*next_id)++;
        assert_int_equal((size_t)n, lens[id]);
        pattern(want, lens[id], id);
        assert_memory_equal(buf, want, (size_t)n);
        got++;
    }
}

/* Datagrams of mixed sizes to three destinations, one flush: every one
 * arrives, in order per destination, in one system call. */
static void test_txq_many_destinations(void **state)
{
    (void)state;
    rig r;
    rig_up(&r);
    enum { PER = 20 };
    size_t lens[NDEST][PER];
    uint8_t data[2048];
    for (unsigned k = 0; k < PER; k++)
        for (int i = 0; i < NDEST; i++) {
            lens[i][k] = 1 + (k * 97 + (unsigned)i * 13) % NANA_Q_MAX_UDP;
            pattern(data, lens[i][k], k);
            ngtcp2_path p = path_to(&r, i);
            nana_quic_txq_add(r.q, &p, data, lens[i][k], 0);
        }
    assert_int_equal(r.q->n, NDEST * PER);
    assert_int_equal(r.st.sendmsg_calls, 0); /* nothing leaves before the flush */
    nana_quic_txq_flush(r.q);
    assert_int_equal(r.st.sendmsg_calls, 1);
    assert_int_equal(r.st.datagrams_out, NDEST * PER);
    assert_int_equal(r.q->n, 0);
    for (int i = 0; i < NDEST; i++) {
        unsigned next = 0;
        assert_int_equal(drain(&r, i, &next, lens[i]), PER);
    }
    rig_down(&r);
}

/* The message limit: one more datagram than a sendmmsg carries sends the
 * full queue first; nothing is lost. */
static void test_txq_message_limit(void **state)
{
    (void)state;
    rig r;
    rig_up(&r);
    enum { N = NANA_Q_TXQ_MSGS * 2 + 5 };
    static size_t lens[N];
    uint8_t data[64];
    ngtcp2_path p = path_to(&r, 0);
    for (unsigned k = 0; k < N; k++) {
        lens[k] = 10 + k % 50;
        pattern(data, lens[k], k);
        nana_quic_txq_add(r.q, &p, data, lens[k], 0);
        assert_true(r.q->n <= NANA_Q_TXQ_MSGS);
    }
    assert_int_equal(r.st.sendmsg_calls, 2); /* two full queues went out on their own */
    assert_int_equal(r.q->n, 5);
    nana_quic_txq_flush(r.q);
    assert_int_equal(r.st.sendmsg_calls, 3);
    unsigned next = 0;
    assert_int_equal(drain(&r, 0, &next, lens), N);
    rig_down(&r);
}

/* The byte limit: GSO runs of ~64 KB fill the buffer long before the
 * message limit; the queue never holds more than NANA_Q_TXQ_BYTES and sends
 * itself when the next run would not fit. */
static void test_txq_byte_limit(void **state)
{
    (void)state;
    rig r;
    rig_up(&r);
    if (!r.q->gso_ok) skip();
    size_t seg = NANA_Q_MAX_UDP, per = NANA_Q_GSO_BYTES / seg, run = per * seg;
    size_t runs_per_flush = NANA_Q_TXQ_BYTES / run;
    enum { RUNS = 9 };
    static size_t lens[RUNS * 64];
    static uint8_t data[64 * NANA_Q_MAX_UDP];
    ngtcp2_path p = path_to(&r, 1);
    unsigned next = 0, got = 0, id = 0;
    for (unsigned k = 0; k < RUNS; k++) {
        for (size_t j = 0; j < per; j++, id++) {
            lens[id] = seg;
            pattern(data + j * seg, seg, id);
        }
        nana_quic_txq_add(r.q, &p, data, run, seg);
        if (!r.q->gso_ok) skip(); /* not known until the first GSO send */
        assert_true(r.q->used <= NANA_Q_TXQ_BYTES);
        assert_true(r.q->n <= runs_per_flush);
        got += (unsigned)drain(&r, 1, &next, lens); /* keep the receive buffer empty */
    }
    nana_quic_txq_flush(r.q);
    got += (unsigned)drain(&r, 1, &next, lens);
    assert_int_equal(got, RUNS * per);
    assert_int_equal(r.st.sendmsg_calls, (RUNS + runs_per_flush - 1) / runs_per_flush);
    rig_down(&r);
}

/* A GSO run: one message per run of at most NANA_Q_TX_BURST datagrams and
 * NANA_Q_GSO_BYTES bytes; the receiver sees the datagrams one by one (GRO
 * is off on the receiving socket), whether or not this kernel has GSO. */
static void test_txq_gso_runs(void **state)
{
    (void)state;
    rig r;
    rig_up(&r);
    enum { N = 100 };
    static size_t lens[N];
    static uint8_t data[N * NANA_Q_MAX_UDP];
    size_t seg = NANA_Q_MAX_UDP, total = 0;
    for (unsigned k = 0; k < N; k++) {
        lens[k] = k == N - 1 ? 200 : seg; /* the last one is short */
        pattern(data + total, lens[k], k);
        total += lens[k];
    }
    ngtcp2_path p = path_to(&r, 2);
    nana_quic_txq_add(r.q, &p, data, total, seg);
    size_t per = NANA_Q_GSO_BYTES / seg;
    if (r.q->gso_ok) {
        assert_int_equal(r.q->n, (N + per - 1) / per);
        for (size_t i = 0; i < r.q->n; i++)
            assert_true(r.q->iov[i].iov_len <= NANA_Q_GSO_BYTES);
    }
    nana_quic_txq_flush(r.q);
    assert_int_equal(r.st.datagrams_out, N);
    unsigned next = 0, got = 0;
    struct pollfd pf = {.fd = r.rx_fd[2], .events = POLLIN};
    for (int tries = 0; got < N && tries < 100; tries++) {
        got += (unsigned)drain(&r, 2, &next, lens);
        if (got < N) poll(&pf, 1, 10);
    }
    assert_int_equal(got, N);
    rig_down(&r);
}

/* A destination the kernel refuses (port 0) loses its own datagram only;
 * the ones after it in the same queue still go. */
static void test_txq_refused_destination(void **state)
{
    (void)state;
    rig r;
    rig_up(&r);
    size_t lens[2] = {100, 120};
    uint8_t data[128];
    ngtcp2_sockaddr_union bad = r.dest[0];
    bad.in.sin_port = 0;
    ngtcp2_path pb = path_to(&r, 0);
    pb.remote.addr = &bad.sa;
    ngtcp2_path p0 = path_to(&r, 0);
    pattern(data, lens[0], 0);
    nana_quic_txq_add(r.q, &p0, data, lens[0], 0);
    nana_quic_txq_add(r.q, &pb, data, 50, 0);
    pattern(data, lens[1], 1);
    nana_quic_txq_add(r.q, &p0, data, lens[1], 0);
    nana_quic_txq_flush(r.q);
    assert_int_equal(r.st.datagrams_out, 2);
    assert_int_equal(r.st.datagrams_unsent, 1); /* counted, not silent */
    assert_int_equal(r.q->n, 0);
    unsigned next = 0;
    assert_int_equal(drain(&r, 0, &next, lens), 2);
    rig_down(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_txq_many_destinations),   cmocka_unit_test(test_txq_message_limit),
        cmocka_unit_test(test_txq_byte_limit),          cmocka_unit_test(test_txq_gso_runs),
        cmocka_unit_test(test_txq_refused_destination),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
