/*
 * test_quic_fail.c - the QUIC transport when the system says no, tested
 * the way SQLite tests its failure paths: make the Nth call fail, for every
 * N along the way, and check what comes out.
 *
 * System calls go through nana_loop_sys_calls (src/loop/nana_loop.h); this
 * file puts counting wrappers there that fail the Nth call of one kind.
 * - Starting an endpoint (server with two threads, client), for every N of
 *   epoll_create1, epoll_ctl, eventfd, socket, bind and setsockopt: either
 *   a clean error (NANA_ERR_IO naming the call) with no descriptor left
 *   open, or, for an option the socket works without, a warning in the log
 *   and an endpoint that carries a connection.
 * - The first round trips, for every N of recvmmsg and sendmmsg: the
 *   connection still completes its echo (QUIC resends what was lost), the
 *   failure is reported (a log line, the unsent counter).
 * - A client's rebind, for every N of socket, setsockopt, bind and
 *   epoll_ctl: a clean error and the connection carries on over the old
 *   socket, or success over the new one.
 * ASan (the sanitizer build) reports any leak on these paths.
 *
 * Memory: the binary is linked with -Wl,--wrap=calloc, so the transport's
 * calloc calls come here too and can fail on demand; a CID table that
 * cannot grow must refuse the new connection, not keep it unreachable.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "quic/io_int.h"
#include "quic_harness.h"
#include "util/nana_log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <sys/eventfd.h>

/* ---- allocation failures ----------------------------------------------- */

void *__real_calloc(size_t n, size_t size);
void *__wrap_calloc(size_t n, size_t size);

/* calloc of this many members fails while set (0: none). Test thread only:
 * the detached endpoints below run on it. */
static size_t calloc_fail_nmemb;
static unsigned calloc_failures;

void *__wrap_calloc(size_t n, size_t size)
{
    if (calloc_fail_nmemb && n == calloc_fail_nmemb) {
        calloc_failures++;
        return NULL;
    }
    return __real_calloc(n, size);
}

/* ---- failing system calls --------------------------------------------- */

enum {
    SC_EPOLL_CREATE1,
    SC_EPOLL_CTL,
    SC_EVENTFD,
    SC_SOCKET,
    SC_BIND,
    SC_SETSOCKOPT,
    SC_RECVMMSG,
    SC_SENDMMSG,
    SC_KINDS
};

static const char *const sc_names[SC_KINDS] = {"epoll_create1", "epoll_ctl", "eventfd",
                                               "socket",        "bind",      "setsockopt",
                                               "recvmmsg",      "sendmmsg"};
static const int sc_errno[SC_KINDS] = {EMFILE,     ENOMEM,      EMFILE, EMFILE,
                                       EADDRINUSE, ENOPROTOOPT, ENOMEM, EPERM};

static nana_loop_sys real;
static atomic_int sc_calls[SC_KINDS];
static atomic_int sc_kind = -1;  /* the kind that fails, -1: none */
static atomic_int sc_at;         /* its call number that fails */
static atomic_int sc_failed;     /* it happened */
static atomic_int sc_failed_opt; /* setsockopt: the option that failed */

/* Counts a call of |kind|; true if this one must fail (errno is set). */
static bool sc_fail(int kind)
{
    int n = atomic_fetch_add(&sc_calls[kind], 1) + 1;
    if (atomic_load(&sc_kind) != kind || n != atomic_load(&sc_at)) return false;
    atomic_store(&sc_failed, 1);
    errno = sc_errno[kind];
    return true;
}

static int w_epoll_create1(int flags)
{
    return sc_fail(SC_EPOLL_CREATE1) ? -1 : real.epoll_create1(flags);
}

static int w_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    return sc_fail(SC_EPOLL_CTL) ? -1 : real.epoll_ctl(epfd, op, fd, ev);
}

static int w_eventfd(unsigned int v, int flags)
{
    return sc_fail(SC_EVENTFD) ? -1 : real.eventfd(v, flags);
}

static int w_socket(int domain, int type, int protocol)
{
    return sc_fail(SC_SOCKET) ? -1 : real.socket(domain, type, protocol);
}

static int w_bind(int fd, const struct sockaddr *addr, socklen_t len)
{
    return sc_fail(SC_BIND) ? -1 : real.bind(fd, addr, len);
}

static int w_setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
    if (!sc_fail(SC_SETSOCKOPT)) return real.setsockopt(fd, level, name, val, len);
    atomic_store(&sc_failed_opt, name);
    return -1;
}

static int w_recvmmsg(int fd, struct mmsghdr *m, unsigned int n, int flags, struct timespec *t)
{
    return sc_fail(SC_RECVMMSG) ? -1 : real.recvmmsg(fd, m, n, flags, t);
}

static int w_sendmmsg(int fd, struct mmsghdr *m, unsigned int n, int flags)
{
    return sc_fail(SC_SENDMMSG) ? -1 : real.sendmmsg(fd, m, n, flags);
}

/* Makes call |at| (1-based, counted from now) of |kind| fail; -1: none. */
static void sc_arm(int kind, int at)
{
    atomic_store(&sc_kind, -1);
    for (int i = 0; i < SC_KINDS; i++)
        atomic_store(&sc_calls[i], 0);
    atomic_store(&sc_failed, 0);
    atomic_store(&sc_at, at);
    atomic_store(&sc_kind, kind);
}

/* ---- the log ----------------------------------------------------------- */

static char log_path[512];
static int log_fd = -1;

/* Empties the captured log. */
static void log_clear(void)
{
    assert_int_equal(ftruncate(log_fd, 0), 0);
    lseek(log_fd, 0, SEEK_SET);
}

/* True if the captured log holds |needle|. */
static bool log_has(const char *needle)
{
    static char buf[65536];
    ssize_t n = pread(log_fd, buf, sizeof(buf) - 1, 0);
    if (n < 0) return false;
    buf[n] = 0;
    return strstr(buf, needle) != NULL;
}

/* Waits (at most 5 s) until the captured log holds |needle|: an I/O
 * thread writes its line just after the call failed. */
static bool log_wait(const char *needle)
{
    for (int i = 0; i < 5000; i++) {
        if (log_has(needle)) return true;
        usleep(1000);
    }
    return false;
}

/* Open file descriptors of this process (entries of /proc/self/fd). */
static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n - 1; /* the directory's own */
}

static int group_setup(void **state)
{
    real = nana_loop_sys_calls;
    nana_loop_sys_calls = (nana_loop_sys){.epoll_create1 = w_epoll_create1,
                                          .epoll_ctl = w_epoll_ctl,
                                          .eventfd = w_eventfd,
                                          .socket = w_socket,
                                          .bind = w_bind,
                                          .setsockopt = w_setsockopt,
                                          .recvmmsg = w_recvmmsg,
                                          .sendmmsg = w_sendmmsg};
    const char *tmp = getenv("NANA_TEST_TMP");
    snprintf(log_path, sizeof(log_path), "%s/quic-fail-log-%d", tmp && tmp[0] ? tmp : "/tmp",
             (int)getpid());
    log_fd = open(log_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (log_fd < 0) return -1;
    nana_log_set_fd(log_fd);
    nana_log_set_limit(0, 0); /* every line, however many */
    return qt_group_setup(state);
}

static int group_teardown(void **state)
{
    nana_loop_sys_calls = real;
    nana_log_set_fd(STDERR_FILENO);
    close(log_fd);
    unlink(log_path);
    return qt_group_teardown(state);
}

/* ---- starting endpoints ------------------------------------------------ */

/* A connection from a fresh client to |port| that carries an echo. */
static void check_echo(uint16_t port)
{
    qt_client cl;
    assert_int_equal(qt_dial(&cl, &certs, "nanasqlite", NULL, NULL, port, "localhost"), 0);
    assert_true(qt_wait_flag(&cl, &cl.opened, 10000));
    assert_int_equal(qt_echo(&cl, 2, 3000, 7), 0);
    qt_client_stop(&cl);
}

/* A connection from client endpoint |cl| to a fresh server that carries an
 * echo. */
static void check_client_echo(qt_client *cl)
{
    qt_server s = {0};
    nana_quic_config cfg;
    qt_server_config(&cfg, &s, &certs);
    assert_int_equal(qt_server_start(&s, &cfg), 0);
    assert_int_equal(qt_connect(cl, s.port, "localhost", NULL, 0), 0);
    assert_true(qt_wait_flag(cl, &cl->opened, 10000));
    assert_int_equal(qt_echo(cl, 2, 3000, 7), 0);
    qt_server_stop(&s);
}

/* Starts an endpoint (a server with two threads, or a client) with call N
 * of |kind| failing, for every N until a start makes fewer calls. */
static void start_failing(int kind, bool server)
{
    qt_server s = {0};
    qt_client cl;
    nana_quic_config cfg;
    int n;
    for (n = 1;; n++) {
        int fds = count_fds();
        log_clear();
        sc_arm(kind, n);
        nana_quic_ep *ep = NULL;
        int rc;
        if (server) {
            qt_server_config(&cfg, &s, &certs);
            cfg.threads = 2;
            pthread_mutex_init(&s.mu, NULL);
            rc = nana_quic_ep_new(&cfg, &ep);
        } else {
            qt_client_config(&cfg, &cl, &certs, "nanasqlite", NULL, NULL);
            rc = nana_quic_ep_new(&cfg, &ep);
            cl.ep = ep;
        }
        bool failed = atomic_load(&sc_failed);
        sc_arm(-1, 0);
        if (rc) {
            /* A clean error that names the call, nothing left open. */
            assert_true(failed);
            assert_null(ep);
            assert_int_equal(rc, NANA_ERR_IO);
            if (!strstr(nana_errmsg(), sc_names[kind]) &&
                !(kind == SC_BIND && strstr(nana_errmsg(), "cannot bind")))
                fail_msg("call %d of %s: the error does not name it: %s", n, sc_names[kind],
                         nana_errmsg());
        } else {
            assert_non_null(ep);
            if (failed) {
                /* Only an option the socket works without: logged (a
                 * buffer size past the system's limit, which needs
                 * privileges, falls back to the plain option quietly). */
                assert_int_equal(kind, SC_SETSOCKOPT);
                int opt = atomic_load(&sc_failed_opt);
                if (opt != SO_RCVBUFFORCE && opt != SO_SNDBUFFORCE && !log_has("setsockopt"))
                    fail_msg("setsockopt call %d failed and nobody said so", n);
                if (server)
                    check_echo(nana_quic_ep_port(ep));
                else
                    check_client_echo(&cl);
            }
        }
        nana_quic_ep_del(ep);
        if (server) {
            pthread_mutex_destroy(&s.mu);
        } else {
            pthread_mutex_destroy(&cl.mu);
            pthread_cond_destroy(&cl.cv);
        }
        if (count_fds() != fds)
            fail_msg("call %d of %s: %d descriptors before, %d after", n, sc_names[kind], fds,
                     count_fds());
        if (!failed) break; /* the start made fewer than n calls of this kind */
    }
    printf("%s %s: every one of %d calls failed once\n", server ? "server" : "client",
           sc_names[kind], n - 1);
    assert_true(n > 1);
}

static void test_server_start_failing(void **state)
{
    (void)state;
    for (int k = SC_EPOLL_CREATE1; k <= SC_SETSOCKOPT; k++)
        start_failing(k, true);
}

static void test_client_start_failing(void **state)
{
    (void)state;
    for (int k = SC_EPOLL_CREATE1; k <= SC_SETSOCKOPT; k++)
        start_failing(k, false);
}

/* ---- the first round trips -------------------------------------------- */

/* A server and a client; with call N of |kind| failing, a connection and
 * an echo, for every N the first round trips make. */
static void run_failing(int kind)
{
    int n, total = -1;
    for (n = 1;; n++) {
        int fds = count_fds();
        qt_server s = {0};
        nana_quic_config cfg;
        qt_server_config(&cfg, &s, &certs);
        assert_int_equal(qt_server_start(&s, &cfg), 0);
        qt_client cl;
        assert_int_equal(qt_client_start(&cl, &certs, "nanasqlite", NULL, NULL), 0);
        log_clear();
        sc_arm(kind, n);
        assert_int_equal(qt_connect(&cl, s.port, "localhost", NULL, 0), 0);
        assert_true(qt_wait_flag(&cl, &cl.opened, 15000));
        assert_int_equal(qt_echo(&cl, 2, 2000, (uint8_t)n), 0);
        bool failed = atomic_load(&sc_failed);
        if (n == 1) total = atomic_load(&sc_calls[kind]);
        sc_arm(-1, 0);
        if (failed && kind == SC_RECVMMSG) assert_true(log_wait("UDP receive failed"));
        if (failed && kind == SC_SENDMMSG) {
            nana_quic_stats a, b;
            assert_int_equal(nana_quic_ep_stats(s.ep, &a), 0);
            assert_int_equal(nana_quic_ep_stats(cl.ep, &b), 0);
            assert_true(a.datagrams_unsent + b.datagrams_unsent >= 1);
        }
        qt_client_stop(&cl);
        qt_server_stop(&s);
        assert_int_equal(count_fds(), fds);
        /* Every call of a clean run, and at least the first dozen. */
        if (n >= total && n >= 12) break;
    }
    printf("%s: each of the first %d calls failed once (a clean run makes %d), the echo went "
           "through\n",
           sc_names[kind], n, total);
}

static void test_recvmmsg_failing(void **state)
{
    (void)state;
    run_failing(SC_RECVMMSG);
}

static void test_sendmmsg_failing(void **state)
{
    (void)state;
    run_failing(SC_SENDMMSG);
}

/* ---- rebinding --------------------------------------------------------- */

/* A client rebinds with call N of |kind| failing, for every N: an error
 * leaves it on its old socket, success moves it; either way it echoes.
 * Each N gets a fresh connection whose handshake is confirmed (an echo
 * first): back-to-back migrations of one connection are not the point. */
static void rebind_failing(int kind)
{
    int n;
    for (n = 1;; n++) {
        qt_server s = {0};
        nana_quic_config cfg;
        qt_server_config(&cfg, &s, &certs);
        assert_int_equal(qt_server_start(&s, &cfg), 0);
        qt_client cl;
        assert_int_equal(qt_dial(&cl, &certs, "nanasqlite", NULL, NULL, s.port, "localhost"), 0);
        assert_true(qt_wait_flag(&cl, &cl.opened, 10000));
        assert_int_equal(qt_echo(&cl, 1, 1500, 1), 0);
        uint16_t old_port = ntohs(cl.ep->shards[0].local.in.sin_port);
        int fds = count_fds();
        log_clear();
        sc_arm(kind, n);
        int rc = nana_quic_ep_rebind(cl.ep);
        bool failed = atomic_load(&sc_failed);
        sc_arm(-1, 0);
        uint16_t port = ntohs(cl.ep->shards[0].local.in.sin_port);
        if (rc) {
            assert_true(failed);
            assert_int_equal(rc, NANA_ERR_IO);
            assert_int_equal(port, old_port);
            assert_int_equal(count_fds(), fds);
        } else {
            assert_true(port != old_port);
            /* A refused option is logged; a refused removal of the old
             * socket from epoll does not matter (closing it removes it). */
            int opt = atomic_load(&sc_failed_opt);
            if (failed && kind == SC_SETSOCKOPT && opt != SO_RCVBUFFORCE && opt != SO_SNDBUFFORCE)
                assert_true(log_has("setsockopt"));
            if (failed) assert_true(kind == SC_SETSOCKOPT || kind == SC_EPOLL_CTL);
            assert_int_equal(count_fds(), fds); /* the old socket went */
        }
        assert_int_equal(qt_echo(&cl, 1, 1500, (uint8_t)(n + 1)), 0);
        qt_client_stop(&cl);
        qt_server_stop(&s);
        if (!failed) break;
    }
    printf("rebind %s: every one of %d calls failed once\n", sc_names[kind], n - 1);
    assert_true(n > 1);
}

static void test_rebind_failing(void **state)
{
    (void)state;
    rebind_failing(SC_SOCKET);
    rebind_failing(SC_SETSOCKOPT);
    rebind_failing(SC_BIND);
    rebind_failing(SC_EPOLL_CTL);
}

/* ---- the CID table cannot grow ----------------------------------------- */

/* A detached endpoint's sink that keeps the datagrams it is given. */
typedef struct keep_tx {
    nana_quic_tx tx; /* first */
    uint8_t data[64][1500];
    size_t len[64];
    size_t n;
} keep_tx;

static void keep_send(nana_quic_tx *tx, const ngtcp2_path *path, const uint8_t *data, size_t len,
                      size_t seg)
{
    (void)path;
    keep_tx *k = (keep_tx *)tx;
    for (size_t off = 0; off < len && k->n < 64; off += seg, k->n++) {
        k->len[k->n] = len - off < seg ? len - off : seg;
        memcpy(k->data[k->n], data + off, k->len[k->n]);
    }
}

static void drop_send(nana_quic_tx *tx, const ngtcp2_path *path, const uint8_t *data, size_t len,
                      size_t seg)
{
    (void)tx;
    (void)path;
    (void)data;
    (void)len;
    (void)seg;
}

static void set_in(ngtcp2_sockaddr_union *a, uint32_t ip, uint16_t port)
{
    memset(a, 0, sizeof(*a));
    a->in.sin_family = AF_INET;
    a->in.sin_addr.s_addr = htonl(ip);
    a->in.sin_port = htons(port);
}

/* True if every SCID of every connection of |sh| routes to it. */
static bool all_routable(nana_quic_shard *sh, unsigned *count)
{
    *count = 0;
    for (nana_quic_conn *c = sh->conns; c; c = c->next, (*count)++) {
        ngtcp2_cid scids[8];
        size_t n = ngtcp2_conn_get_num_scid(c->q);
        assert_true(n <= 8);
        n = ngtcp2_conn_get_scid(c->q, scids);
        for (size_t i = 0; i < n; i++)
            if (nana_quic_cidmap_get(&sh->cids, scids[i].data, scids[i].datalen) != c) return false;
    }
    return true;
}

/* The CID table of a shard holds 256 slots and grows at half full. With
 * that growth failing, a new connection (server: accepted from a client's
 * Initial; client: connecting) is refused, and every connection kept is
 * reachable by its CIDs; once memory is back, new ones are taken again. */
static void test_cid_table_full(void **state)
{
    (void)state;
    enum { CLIENTS = 70, FIRST_REFUSED = 64 }; /* two CIDs each: the 65th passes half */
    qt_server s = {0};
    qt_client cl;
    nana_quic_config cfg;
    nana_quic_ep *srv, *cli;
    qt_server_config(&cfg, &s, &certs);
    cfg.retry = NANA_QUIC_RETRY_NEVER;
    pthread_mutex_init(&s.mu, NULL);
    assert_int_equal(nana_quic_ep_new_detached(&cfg, &srv), 0);
    qt_client_config(&cfg, &cl, &certs, "nanasqlite", NULL, NULL);
    assert_int_equal(nana_quic_ep_new_detached(&cfg, &cli), 0);
    static keep_tx out;
    nana_quic_tx drop = {.send = drop_send};
    out.tx.send = keep_send;
    ngtcp2_sockaddr_union srv_addr, cli_addr;
    set_in(&srv_addr, 0xC0000201, 4433);
    set_in(&cli_addr, 0xC0000202, 50000);
    nana_quic_shard *ss = &srv->shards[0], *cs = &cli->shards[0];
    ss->tx = &drop;
    cs->tx = &out.tx;
    memcpy(&ss->local, &srv_addr, sizeof(struct sockaddr_in));
    memcpy(&cs->local, &cli_addr, sizeof(struct sockaddr_in));
    ss->local_len = cs->local_len = sizeof(struct sockaddr_in);
    uint64_t now = (uint64_t)1000 * NANA_Q_NS;
    static uint8_t first[CLIENTS][1500];
    static size_t first_len[CLIENTS];
    /* Each client's first datagram (its Initial). */
    for (int i = 0; i < CLIENTS; i++) {
        nana_quic_conn *c;
        out.n = 0;
        assert_int_equal(nana_quic_conn_connect(cs, &srv_addr.sa, sizeof(struct sockaddr_in),
                                                "localhost", NULL, 0, NULL,
                                                nana_quic_shard_new_handle(cs), now, &c),
                         0);
        nana_quic_shard_dirty(cs, c);
        nana_quic_shard_flush(cs, now);
        assert_true(out.n >= 1);
        memcpy(first[i], out.data[0], out.len[0]);
        first_len[i] = out.len[0];
    }
    /* The server takes them from 70 addresses while its table cannot grow. */
    calloc_fail_nmemb = 512;
    calloc_failures = 0;
    for (int i = 0; i < CLIENTS; i++) {
        ngtcp2_sockaddr_union from;
        set_in(&from, 0x0A000001u + (uint32_t)i, (uint16_t)(40000 + i));
        ngtcp2_path path = {.local = {.addr = &srv_addr.sa, .addrlen = sizeof(struct sockaddr_in)},
                            .remote = {.addr = &from.sa, .addrlen = sizeof(struct sockaddr_in)}};
        nana_quic_shard_recv(ss, &path, first[i], first_len[i], 0, now);
        while (ss->npending)
            nana_quic_shard_flush(ss, now);
    }
    unsigned count;
    assert_true(calloc_failures > 0);
    assert_true(all_routable(ss, &count));
    assert_int_equal(count, FIRST_REFUSED);
    assert_int_equal(ss->st.conns_accepted, FIRST_REFUSED);
    /* The client side: 70 connections fill its table past half at the
     * 128th CID, so with growth failing the 129th connect is refused. */
    for (int i = CLIENTS; i < 130; i++) {
        nana_quic_conn *c = NULL;
        int rc = nana_quic_conn_connect(cs, &srv_addr.sa, sizeof(struct sockaddr_in), "localhost",
                                        NULL, 0, NULL, nana_quic_shard_new_handle(cs), now, &c);
        if (i < 128) {
            assert_int_equal(rc, 0);
        } else {
            assert_int_equal(rc, NANA_ERR_NOMEM);
            assert_null(c);
        }
    }
    assert_true(all_routable(cs, &count));
    assert_int_equal(count, 128);
    /* Memory is back: the refused clients' Initials (sent again) are taken. */
    calloc_fail_nmemb = 0;
    for (int i = FIRST_REFUSED; i < CLIENTS; i++) {
        ngtcp2_sockaddr_union from;
        set_in(&from, 0x0A000001u + (uint32_t)i, (uint16_t)(40000 + i));
        ngtcp2_path path = {.local = {.addr = &srv_addr.sa, .addrlen = sizeof(struct sockaddr_in)},
                            .remote = {.addr = &from.sa, .addrlen = sizeof(struct sockaddr_in)}};
        nana_quic_shard_recv(ss, &path, first[i], first_len[i], 0, now);
        while (ss->npending)
            nana_quic_shard_flush(ss, now);
    }
    assert_true(all_routable(ss, &count));
    assert_int_equal(count, CLIENTS);
    nana_quic_ep_del(cli);
    nana_quic_ep_del(srv);
    pthread_mutex_destroy(&s.mu);
    pthread_mutex_destroy(&cl.mu);
    pthread_cond_destroy(&cl.cv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cid_table_full),       cmocka_unit_test(test_server_start_failing),
        cmocka_unit_test(test_client_start_failing), cmocka_unit_test(test_recvmmsg_failing),
        cmocka_unit_test(test_sendmmsg_failing),     cmocka_unit_test(test_rebind_failing),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
