/*
 * test_client.c - libnanasqlite-client against the real nanasqlite-server
 * binary on a loopback port: calls and errors, 1,000 calls in flight on
 * one connection (each reply checked against its own call), the
 * completion fd, timeouts, reconnect after a server restart, a server
 * that vanishes mid-call, authentication and connection failures, and the
 * pool (least-loaded spreading, exhaustion, idle and lifetime retirement,
 * the circuit breaker opening, probing and closing), a pool over three
 * servers as the nodes of a cluster (spreading, a node killed, replaced
 * and back, the breaker only when all are down; bad node lists refused),
 * the transports (gRPC over HTTP/2 on TCP; AUTO falling back to it through
 * a TCP-only forwarder whose UDP port is silent, as where UDP is dropped).
 *
 * usage: test_client BIN_DIR TMP_DIR [TEST...] (TEST: a name from main's
 * table; none: all). Every wait is bounded. Ends with
 * "N passed, M failed"; exit 1 on any failure.
 */
#include "nanasqlite_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int passed, failed;
static const char *bin_dir;
static char dir[PATH_MAX + 64];

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (cond) {                                                                                \
            passed++;                                                                              \
        } else {                                                                                   \
            failed++;                                                                              \
            printf("  FAIL %s:%d: ", __FILE__, __LINE__);                                          \
            printf(__VA_ARGS__);                                                                   \
            printf("\n");                                                                          \
        }                                                                                          \
    } while (0)

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) && errno == EINTR) {
    }
}

/* ---- the server ------------------------------------------------------------ */

typedef struct server {
    pid_t pid;
    unsigned port;
} server;

/* Runs a tool from bin_dir in the test directory; 0 on success. */
static int run_tool(const char *tool, const char *arg1, const char *arg2)
{
    pid_t pid = fork();
    if (pid == 0) {
        if (chdir(dir)) _exit(127);
        char path[1024];
        snprintf(path, sizeof(path), "%s/%s", bin_dir, tool);
        if (!freopen("/dev/null", "w", stdout)) _exit(127);
        execl(path, tool, arg1, arg2, (char *)NULL);
        _exit(127);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

/* Starts the server on |port| (0: any) with extra flags; waits for it. */
/* Set by a test that wants bans (server_start passes --no-bans otherwise). */
static bool with_bans;

static int server_start(server *s, unsigned port, const char *const *extra)
{
    char ready[sizeof(dir) + 16], portstr[16];
    snprintf(ready, sizeof(ready), "%s/port.txt", dir);
    unlink(ready);
    snprintf(portstr, sizeof(portstr), "%u", port);
    const char *argv[32] = {"nanasqlite-server", "--port",    portstr,       "--ready-file",
                            "port.txt",          "--no-bans", "--log-level", "debug"};
    int n = 8;
    if (with_bans) { /* drop --no-bans */
        argv[5] = "--log-level";
        argv[6] = "debug";
        n = 7;
    }
    for (int i = 0; extra && extra[i] && n < 30; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    s->pid = fork();
    if (s->pid == 0) {
        if (chdir(dir)) _exit(127);
        if (!freopen("server.log", "a", stdout) || !freopen("server.log", "a", stderr)) _exit(127);
        char path[1024];
        snprintf(path, sizeof(path), "%s/nanasqlite-server", bin_dir);
        execv(path, (char *const *)(uintptr_t)argv);
        _exit(127);
    }
    for (uint64_t end = now_ms() + 20000; now_ms() < end; sleep_ms(20)) {
        FILE *f = fopen(ready, "r");
        if (f) {
            int got = fscanf(f, "%u", &s->port);
            fclose(f);
            if (got == 1 && s->port) return 0;
        }
        if (waitpid(s->pid, NULL, WNOHANG) == s->pid) break;
    }
    printf("  server did not start (see %s/server.log)\n", dir);
    return -1;
}

/* Stops the server with |sig|; returns its exit status (or -1). */
static int server_stop(server *s, int sig)
{
    if (s->pid <= 0) return -1;
    kill(s->pid, sig);
    int st = 0;
    for (uint64_t end = now_ms() + 30000; now_ms() < end; sleep_ms(10))
        if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
            s->pid = 0;
            return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, &st, 0);
    s->pid = 0;
    return -1;
}

static void opts_for(nana_client_opts *o, unsigned port)
{
    static char ca[sizeof(dir) + 32], key[sizeof(dir) + 32];
    snprintf(ca, sizeof(ca), "%s/cert.pem", dir);
    snprintf(key, sizeof(key), "%s/nana_private.pem", dir);
    nana_client_opts_init(o);
    o->port = (uint16_t)port;
    o->ca_file = ca;
    o->key_file = key;
    o->connect_timeout_ms = 3000;
    o->call_timeout_ms = 10000;
}

/* Starts a server with |flags| and connects a client with |o| (its port set
 * to the server's). NULL, counted as a failure, when either fails. */
static nana_client *start_connected(server *s, const char *const *flags, nana_client_opts *o)
{
    if (server_start(s, 0, flags)) {
        failed++;
        return NULL;
    }
    o->port = (uint16_t)s->port;
    nana_client *c = NULL;
    nana_result r = {0};
    if (nana_client_connect(o, &c, &r)) {
        CHECK(0, "connect: %s", r.message);
        nana_result_free(&r);
        server_stop(s, SIGTERM);
        return NULL;
    }
    return c;
}

/* One blocking call; returns the status and leaves the result in |r|. */
static int call(nana_client *c, const char *m, const char *args, nana_result *r)
{
    nana_result_free(r);
    return nana_client_call(c, m, args, NULL, NULL, r);
}

/* ---- calls and errors --------------------------------------------------------- */

static void test_calls(void)
{
    printf("test_calls\n");
    server s;
    nana_client_opts o;
    opts_for(&o, 0);
    nana_client *c = start_connected(&s, NULL, &o);
    if (!c) return;
    nana_result r = {0};
    CHECK(nana_client_connected(c) == 1, "connected");
    CHECK(call(c, "__setitem__", "[\"k\", {\"a\": [1, 2.5, \"x\"], \"b\": null}]", &r) == 0,
          "set: %s", r.message);
    CHECK(call(c, "__getitem__", "[\"k\"]", &r) == 0 && r.json &&
              !strcmp(r.json, "{\"a\":[1,2.5,\"x\"],\"b\":null}"),
          "get: %s", r.json);
    CHECK(call(c, "__getitem__", "[\"missing\"]", &r) == NANA_CLIENT_ESERVER &&
              !strcmp(r.error_type, "KeyError") && !strcmp(r.message, "'missing'"),
          "KeyError: %s %s", r.error_type, r.message);
    CHECK(call(c, "vacuum", NULL, &r) == NANA_CLIENT_ESERVER &&
              !strcmp(r.error_type, "PermissionError"),
          "vacuum forbidden: %s", r.error_type);
    CHECK(call(c, "no_such_method", NULL, &r) == NANA_CLIENT_ESERVER, "unknown method");
    CHECK(call(c, "__getitem__", "[\"k\"", &r) == NANA_CLIENT_EINVALID &&
              !strcmp(r.error_type, "ValueError") && strstr(r.message, "not valid JSON"),
          "bad JSON refused locally: %s", r.message);
    CHECK(call(c, "__getitem__", "{\"k\": 1}", &r) == NANA_CLIENT_EINVALID, "args not an array");
    nana_result_free(&r);
    CHECK(nana_client_call(c, "get", "[\"k\"]", "[1]", NULL, &r) == NANA_CLIENT_EINVALID,
          "kwargs not an object");
    CHECK(call(c, "", NULL, &r) == NANA_CLIENT_EINVALID, "empty method");
    /* kwargs, db and table */
    nana_result_free(&r);
    CHECK(nana_client_call(c, "get", "[\"missing\"]", "{\"default\": 7}", NULL, &r) == 0 &&
              !strcmp(r.json, "7"),
          "kwargs default: %s", r.json);
    nana_call_opts co = {.db = "other.db", .table = "t2"};
    nana_result_free(&r);
    CHECK(nana_client_call(c, "__setitem__", "[\"k\", 1]", NULL, &co, &r) == 0, "set in db/table");
    nana_result_free(&r);
    CHECK(nana_client_call(c, "__getitem__", "[\"k\"]", NULL, &co, &r) == 0 && !strcmp(r.json, "1"),
          "get in db/table: %s", r.json);
    CHECK(call(c, "__len__", NULL, &r) == 0 && !strcmp(r.json, "1"), "default table untouched");
    co = (nana_call_opts){.db = "../escape.db"};
    nana_result_free(&r);
    CHECK(nana_client_call(c, "__len__", NULL, NULL, &co, &r) == NANA_CLIENT_ESERVER,
          "db outside the directory refused: %s", r.message);
    CHECK(!strcmp(nana_client_status_name(NANA_CLIENT_EUNKNOWN), "UnknownOutcomeError"),
          "status names");
    nana_result_free(&r);
    nana_client_close(c);
    CHECK(server_stop(&s, SIGTERM) == 0, "server exits 0");
}

/* ---- 1,000 calls in flight -------------------------------------------------- */

typedef struct many {
    atomic_int done, ok, mismatched;
} many;

typedef struct one_call {
    many *m;
    int i;
} one_call;

static void on_get(void *ud, nana_result *r)
{
    one_call *oc = ud;
    char want[32];
    snprintf(want, sizeof(want), "%d", oc->i * 7);
    if (r->status == NANA_CLIENT_OK && r->json && !strcmp(r->json, want))
        atomic_fetch_add(&oc->m->ok, 1);
    else
        atomic_fetch_add(&oc->m->mismatched, 1);
    nana_result_free(r);
    atomic_fetch_add(&oc->m->done, 1);
}

static void test_concurrency(void)
{
    printf("test_concurrency\n");
    server s;
    nana_client_opts o;
    opts_for(&o, 0);
    nana_client *c = start_connected(&s, NULL, &o);
    if (!c) return;
    nana_result r = {0};
    /* Distinct values per key, written in one batch. */
    char *batch = malloc(64 * 1024);
    size_t at = (size_t)snprintf(batch, 64, "[{");
    for (int i = 0; i < 1000; i++)
        at += (size_t)snprintf(batch + at, 64, "%s\"k%d\": %d", i ? "," : "", i, i * 7);
    snprintf(batch + at, 8, "}]");
    CHECK(call(c, "batch_update", batch, &r) == 0, "batch_update: %s", r.message);
    free(batch);
    /* 1,000 gets submitted at once: replies arrive in any order and each must
     * reach its own call. */
    many m = {0};
    one_call *oc = calloc(1000, sizeof(*oc));
    int accepted = 0;
    for (int i = 0; i < 1000; i++) {
        char args[32];
        snprintf(args, sizeof(args), "[\"k%d\"]", i);
        oc[i] = (one_call){&m, i};
        accepted += nana_client_submit(c, "__getitem__", args, NULL, NULL, on_get, &oc[i], 0) == 0;
    }
    CHECK(accepted == 1000, "1000 accepted (%d)", accepted);
    for (uint64_t end = now_ms() + 30000; atomic_load(&m.done) < accepted && now_ms() < end;)
        sleep_ms(5);
    CHECK(atomic_load(&m.ok) == 1000 && atomic_load(&m.mismatched) == 0,
          "1000 replies, each to its call (ok %d, wrong %d)", atomic_load(&m.ok),
          atomic_load(&m.mismatched));
    CHECK(nana_client_pending(c) == 0, "nothing pending");
    free(oc);

    /* The completion fd: 200 calls with tokens, drained by an event loop. */
    int fd = nana_client_completion_fd(c);
    for (int i = 0; i < 200; i++) {
        char args[32];
        snprintf(args, sizeof(args), "[\"k%d\"]", i);
        nana_client_submit(c, "__getitem__", args, NULL, NULL, NULL, NULL, (uint64_t)i + 1000);
    }
    int got = 0, right = 0;
    uint64_t seen[4] = {0};
    for (uint64_t end = now_ms() + 20000; got < 200 && now_ms() < end;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0) continue;
        nana_result d;
        while (nana_client_next_done(c, &d)) {
            got++;
            uint64_t i = d.token - 1000;
            char want[32];
            snprintf(want, sizeof(want), "%d", (int)i * 7);
            if (i < 200 && !(seen[i / 64] & (1ull << (i % 64))) && d.json && !strcmp(d.json, want))
                right++;
            if (i < 200) seen[i / 64] |= 1ull << (i % 64);
            nana_result_free(&d);
        }
    }
    CHECK(got == 200 && right == 200, "completion fd delivered 200 (%d, %d right)", got, right);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    CHECK(poll(&p, 1, 0) == 0, "fd not readable once drained");
    nana_result_free(&r);
    nana_client_close(c);
    server_stop(&s, SIGTERM);
}

/* ---- timeouts, restarts, vanishing servers ------------------------------------ */

static void test_timeouts_and_restart(void)
{
    printf("test_timeouts_and_restart\n");
    server s;
    const char *slow[] = {"--test-worker-delay-ms", "600", NULL};
    nana_client_opts o;
    opts_for(&o, 0);
    o.reconnect_max_ms = 300;
    nana_client *c = start_connected(&s, slow, &o);
    if (!c) return;
    unsigned port = s.port;
    nana_result r = {0};
    nana_call_opts quick = {.timeout_ms = 100};
    uint64_t t0 = now_ms();
    CHECK(nana_client_call(c, "keys", NULL, NULL, &quick, &r) == NANA_CLIENT_ETIMEOUT &&
              !strcmp(r.error_type, "TimeoutError"),
          "timeout: %d %s", r.status, r.message);
    uint64_t took = now_ms() - t0;
    CHECK(took >= 90 && took < 2000, "timed out after about 100 ms (%llu)",
          (unsigned long long)took);
    CHECK(call(c, "keys", NULL, &r) == 0, "a later call works: %s", r.message);

    /* Restart on the same port: the client reconnects by itself. */
    CHECK(server_stop(&s, SIGTERM) == 0, "stop");
    const char *fast[] = {NULL};
    CHECK(server_start(&s, port, fast) == 0, "restart on port %u", port);
    int ok = 0;
    for (uint64_t end = now_ms() + 15000; !ok && now_ms() < end; sleep_ms(50))
        ok = call(c, "__len__", NULL, &r) == 0;
    CHECK(ok, "calls work after the restart: %s", r.message);
    CHECK(nana_client_reconnects(c) >= 1, "reconnected (%llu)",
          (unsigned long long)nana_client_reconnects(c));

    /* The server goes away: calls fail with a connection error, fast. */
    CHECK(server_stop(&s, SIGTERM) == 0, "stop again");
    t0 = now_ms();
    int st = 0;
    for (uint64_t end = now_ms() + 15000; now_ms() < end; sleep_ms(50)) {
        st = call(c, "__len__", NULL, &r);
        if (st == NANA_CLIENT_ECONNECT) break;
    }
    CHECK(st == NANA_CLIENT_ECONNECT && !strcmp(r.error_type, "NanaSQLiteConnectionError"),
          "server down: ECONNECT (%d %s)", st, r.message);
    CHECK(now_ms() - t0 < 12000, "reported within the connect timeout");
    nana_result_free(&r);
    nana_client_close(c);
}

/*
 * While the server is down the client keeps trying to connect. A call made
 * at any point of that, even in the middle of an attempt, fails within the
 * connect timeout: it never waits out the rest of one attempt and then the
 * whole next one too.
 */
static void test_down_call_waits_one_connect_timeout(void)
{
    printf("test_down_call_waits_one_connect_timeout\n");
    server s;
    nana_client_opts o;
    opts_for(&o, 0);
    o.connect_timeout_ms = 1500;
    o.call_timeout_ms = 20000;
    o.reconnect_min_ms = 20;
    o.reconnect_max_ms = 50; /* attempts back to back: a call nearly always lands mid-attempt */
    const char *fast[] = {NULL};
    nana_client *c = start_connected(&s, fast, &o);
    if (!c) return;
    CHECK(server_stop(&s, SIGTERM) == 0, "stop");
    for (uint64_t end = now_ms() + 5000; nana_client_connected(c) && now_ms() < end;)
        sleep_ms(10);
    nana_result r = {0};
    uint64_t worst = 0;
    int all_econnect = 1;
    for (int i = 0; i < 4; i++) {
        sleep_ms(350u * (unsigned)i); /* land at different points of the attempts */
        uint64_t t0 = now_ms();
        int st = call(c, "__len__", NULL, &r);
        uint64_t took = now_ms() - t0;
        all_econnect &= st == NANA_CLIENT_ECONNECT;
        if (took > worst) worst = took;
    }
    CHECK(all_econnect, "every call: ECONNECT (%d %s)", r.status, r.message);
    CHECK(worst <= 1500 + 400, "each call failed within the connect timeout (worst %llu ms)",
          (unsigned long long)worst);
    nana_result_free(&r);
    nana_client_close(c);
}

static atomic_int vanish_status = -1;

static void on_vanish(void *ud, nana_result *r)
{
    (void)ud;
    atomic_store(&vanish_status, r->status);
    nana_result_free(r);
}

static void test_server_vanishes(void)
{
    printf("test_server_vanishes\n");
    server s;
    const char *slow[] = {"--test-worker-delay-ms", "3000", NULL};
    nana_client_opts o;
    opts_for(&o, 0);
    o.idle_timeout_ms = 1500; /* a killed server says nothing: the idle timeout notices */
    nana_client *c = start_connected(&s, slow, &o);
    if (!c) return;
    nana_result r = {0};
    nana_client_submit(c, "batch_update", "[{\"w\": 1}]", NULL, NULL, on_vanish, NULL, 0);
    sleep_ms(300); /* the write is on its way / running */
    server_stop(&s, SIGKILL);
    uint64_t t0 = now_ms();
    while (atomic_load(&vanish_status) < 0 && now_ms() - t0 < 8000)
        sleep_ms(20);
    CHECK(atomic_load(&vanish_status) == NANA_CLIENT_EUNKNOWN,
          "a write in flight when the server vanished is reported unknown (%d)",
          atomic_load(&vanish_status));
    CHECK(nana_client_pending(c) == 0, "nothing left pending");
    nana_client_close(c);

    /* Killed and restarted on the same port: the new server's stateless
     * reset (same secret, derived from its key) ends the old connection at
     * once, long before the 30 s idle timeout. */
    const char *fast[] = {NULL};
    opts_for(&o, 0);
    if (!(c = start_connected(&s, fast, &o))) return;
    unsigned port = s.port;
    server_stop(&s, SIGKILL);
    CHECK(server_start(&s, port, fast) == 0, "restart after kill -9");
    uint64_t t1 = now_ms();
    int ok = 0;
    for (uint64_t end = now_ms() + 20000; !ok && now_ms() < end; sleep_ms(20))
        ok = call(c, "__len__", NULL, &r) == 0;
    CHECK(ok && now_ms() - t1 < 10000, "reconnected after kill -9 in %llu ms (%s)",
          (unsigned long long)(now_ms() - t1), r.message);
    nana_result_free(&r);
    nana_client_close(c);
    server_stop(&s, SIGTERM);
}

static void test_connect_failures(void)
{
    printf("test_connect_failures\n");
    nana_client_opts o;
    nana_client *c = NULL;
    nana_result r = {0};
    /* Nobody listening. */
    opts_for(&o, 9); /* discard port: nothing answers QUIC there */
    o.connect_timeout_ms = 500;
    uint64_t t0 = now_ms();
    CHECK(nana_client_connect(&o, &c, &r) == NANA_CLIENT_ECONNECT && !c, "no server: ECONNECT (%s)",
          r.message);
    CHECK(now_ms() - t0 < 5000, "within the connect timeout");
    nana_result_free(&r);
    /* A key file that is not there. */
    opts_for(&o, 9);
    o.key_file = "/nonexistent/key.pem";
    CHECK(nana_client_connect(&o, &c, &r) == NANA_CLIENT_EINVALID && strstr(r.message, "key"),
          "missing key: %s", r.message);
    nana_result_free(&r);
    /* The wrong key: AUTH_FAILED. */
    server s;
    if (server_start(&s, 0, NULL)) {
        failed++;
        return;
    }
    opts_for(&o, s.port);
    char other[sizeof(dir) + 32];
    snprintf(other, sizeof(other), "%s/other_private.pem", dir);
    o.key_file = other;
    CHECK(nana_client_connect(&o, &c, &r) == NANA_CLIENT_EAUTH &&
              !strcmp(r.error_type, "AuthenticationError"),
          "wrong key: EAUTH (%s)", r.message);
    nana_result_free(&r);
    /* A CA that did not sign the server's certificate. */
    opts_for(&o, s.port);
    char badca[sizeof(dir) + 32];
    snprintf(badca, sizeof(badca), "%s/other/cert.pem", dir);
    o.ca_file = badca;
    CHECK(nana_client_connect(&o, &c, &r) == NANA_CLIENT_ECONNECT &&
              strstr(r.message, "certificate does not verify"),
          "untrusted certificate: %s", r.message);
    nana_result_free(&r);
    /* A name the certificate is not for. */
    opts_for(&o, s.port);
    o.server_name = "not-this-server.example";
    CHECK(nana_client_connect(&o, &c, &r) == NANA_CLIENT_ECONNECT &&
              strstr(r.message, "certificate does not verify"),
          "wrong server name: %s", r.message);
    nana_result_free(&r);
    server_stop(&s, SIGTERM);
    /* A banned address is told so at the handshake: an authentication
     * error that names the ban, not "server full". */
    with_bans = true;
    const char *const one_failure[] = {"--ban-failures", "1", NULL};
    int started = server_start(&s, 0, one_failure);
    with_bans = false;
    if (started) {
        failed++;
        return;
    }
    opts_for(&o, s.port);
    o.key_file = other;
    CHECK(nana_client_connect(&o, &c, &r) == NANA_CLIENT_EAUTH, "wrong key: EAUTH (%s)", r.message);
    nana_result_free(&r);
    opts_for(&o, s.port);
    CHECK(nana_client_connect(&o, &c, &r) == NANA_CLIENT_EAUTH && strstr(r.message, "banned"),
          "banned at the handshake: EAUTH naming the ban (%s)", r.message);
    nana_result_free(&r);
    server_stop(&s, SIGTERM);
}

/* ---- the pool ------------------------------------------------------------------- */

static atomic_int pool_done, pool_ok;

static void on_pool(void *ud, nana_result *r)
{
    (void)ud;
    if (r->status == NANA_CLIENT_OK) atomic_fetch_add(&pool_ok, 1);
    atomic_fetch_add(&pool_done, 1);
    nana_result_free(r);
}

static void test_pool(void)
{
    printf("test_pool\n");
    server s;
    const char *slow[] = {"--test-worker-delay-ms", "300", NULL};
    if (server_start(&s, 0, slow)) {
        failed++;
        return;
    }
    unsigned port = s.port;
    nana_client_opts o;
    opts_for(&o, port);
    o.reconnect_min_ms = 50;
    o.reconnect_max_ms = 200;
    o.connect_timeout_ms = 1000;
    nana_pool_opts po;
    nana_pool_opts_init(&po);
    po.min_conns = 1;
    po.max_conns = 3;
    po.max_calls_per_conn = 2;
    po.idle_ms = 300;
    po.health_interval_ms = 50;
    po.breaker_failures = 3;
    po.breaker_open_ms = 500;
    nana_pool *p = NULL;
    nana_result r = {0};
    if (nana_pool_open(&o, &po, &p, &r)) {
        CHECK(0, "pool open: %s", r.message);
        server_stop(&s, SIGTERM);
        return;
    }
    CHECK(nana_pool_call(p, "__setitem__", "[\"a\", 1]", NULL, NULL, &r) == 0, "pool call: %s",
          r.message);
    nana_result_free(&r);
    /* Six slow calls: two per connection on three connections; a seventh
     * finds the pool exhausted. */
    atomic_store(&pool_done, 0);
    atomic_store(&pool_ok, 0);
    int accepted = 0;
    for (int i = 0; i < 6; i++)
        accepted += nana_pool_submit(p, "keys", NULL, NULL, NULL, on_pool, NULL) == 0;
    CHECK(accepted == 6, "six accepted (%d)", accepted);
    CHECK(nana_pool_call(p, "keys", NULL, NULL, NULL, &r) == NANA_CLIENT_EBUSY &&
              !strcmp(r.error_type, "BusyError"),
          "seventh: pool exhausted (%d %s)", r.status, r.message);
    nana_result_free(&r);
    nana_pool_stats st;
    nana_pool_stats_get(p, &st);
    CHECK(st.opened == 3, "three connections opened (%llu)", (unsigned long long)st.opened);
    for (uint64_t end = now_ms() + 10000; atomic_load(&pool_done) < 6 && now_ms() < end;)
        sleep_ms(10);
    CHECK(atomic_load(&pool_ok) == 6, "all six answered (%d)", atomic_load(&pool_ok));
    /* Idle connections above min_conns close. */
    for (uint64_t end = now_ms() + 5000; now_ms() < end; sleep_ms(50)) {
        nana_pool_stats_get(p, &st);
        if (st.conns == 1) break;
    }
    CHECK(st.conns == 1 && st.closed_idle == 2, "idle connections closed (conns %u, idle %llu)",
          st.conns, (unsigned long long)st.closed_idle);

    /* The breaker: the server goes; connection failures open it. */
    CHECK(server_stop(&s, SIGTERM) == 0, "stop");
    uint64_t t0 = now_ms();
    int last = 0;
    for (uint64_t end = now_ms() + 20000; now_ms() < end; sleep_ms(20)) {
        last = nana_pool_call(p, "__len__", NULL, NULL, NULL, &r);
        nana_result_free(&r);
        if (last == NANA_CLIENT_EBREAKER) break;
    }
    nana_pool_stats_get(p, &st);
    CHECK(last == NANA_CLIENT_EBREAKER && st.breaker == NANA_BREAKER_OPEN && st.breaker_trips == 1,
          "breaker open after failures (%d, state %d, trips %llu)", last, st.breaker,
          (unsigned long long)st.breaker_trips);
    t0 = now_ms();
    CHECK(nana_pool_call(p, "__len__", NULL, NULL, NULL, &r) == NANA_CLIENT_EBREAKER &&
              now_ms() - t0 < 50,
          "open breaker fails fast");
    nana_result_free(&r);
    /* Half-open with the server still away: the probe fails, open again.
     * A probe refused at once leaves the breaker half-open for well under
     * a millisecond, so the probe is seen by its failure too: while the
     * breaker is open no attempt starts but the half-open one's. */
    int saw_half = 0;
    uint64_t failures_open = st.connect_failures;
    for (uint64_t end = now_ms() + 5000; now_ms() < end && !saw_half; sleep_ms(5)) {
        nana_pool_stats_get(p, &st);
        saw_half = st.breaker == NANA_BREAKER_HALF_OPEN || st.connect_failures > failures_open;
    }
    CHECK(saw_half, "breaker goes half-open (a probe is tried)");
    for (uint64_t end = now_ms() + 5000; now_ms() < end; sleep_ms(20)) {
        nana_pool_stats_get(p, &st);
        if (st.breaker == NANA_BREAKER_OPEN) break;
    }
    CHECK(st.breaker == NANA_BREAKER_OPEN && st.breaker_trips == 1,
          "failed probe opens it again (state %d)", st.breaker);
    /* The server comes back: the next probe closes the breaker. Calls made
     * meanwhile fail fast (EBREAKER) or wait for the probe; none fails for
     * a connection that was never tried. */
    CHECK(server_start(&s, port, NULL) == 0, "restart");
    int ok = 0, phantom = 0;
    for (uint64_t end = now_ms() + 15000; !ok && now_ms() < end; sleep_ms(5)) {
        ok = nana_pool_call(p, "__getitem__", "[\"a\"]", NULL, NULL, &r) == 0;
        phantom += r.message && strstr(r.message, "could not be started") != NULL;
        nana_result_free(&r);
    }
    CHECK(phantom == 0, "no call failed on an untried connection (%d)", phantom);
    nana_pool_stats_get(p, &st);
    CHECK(ok && st.breaker == NANA_BREAKER_CLOSED, "breaker closed after a good probe (state %d)",
          st.breaker);
    nana_pool_close(p);

    /* One connection, server restarted: calls wait for the reconnect instead
     * of finding the pool "exhausted". A call waits at most the connect
     * timeout, so one made while an attempt begun before the restart runs
     * out may fail with ECONNECT; the next one gets the new connection. */
    po.max_conns = 1;
    po.min_conns = 1;
    CHECK(nana_pool_open(&o, &po, &p, &r) == 0, "pool of one: %s", r.message);
    nana_result_free(&r);
    if (p) {
        CHECK(server_stop(&s, SIGTERM) == 0, "stop");
        CHECK(server_start(&s, port, NULL) == 0, "restart");
        int cst = -1, exhausted = 0;
        for (uint64_t end = now_ms() + 10000; cst != 0 && now_ms() < end;) {
            nana_result_free(&r);
            cst = nana_pool_call(p, "__getitem__", "[\"a\"]", NULL, NULL, &r);
            exhausted += cst == NANA_CLIENT_EBUSY;
        }
        CHECK(cst == 0 && exhausted == 0,
              "calls during the reconnect wait for it, never 'exhausted' (%d %s)", r.status,
              r.message);
        nana_result_free(&r);
        nana_pool_close(p);
    }
    po.max_conns = 3;

    /* Upkeep cannot retire the first connection before open returns. */
    po.lifetime_ms = 1;
    po.health_interval_ms = 1;
    for (int i = 0; i < 5; i++) {
        CHECK(nana_pool_open(&o, &po, &p, &r) == 0, "open with a 1 ms lifetime: %s", r.message);
        nana_result_free(&r);
        nana_pool_close(p);
    }
    po.health_interval_ms = 50;

    /* Lifetime: connections are retired and replaced. */
    po.lifetime_ms = 200;
    po.idle_ms = 60000;
    CHECK(nana_pool_open(&o, &po, &p, &r) == 0, "pool open: %s", r.message);
    nana_result_free(&r);
    if (p) {
        for (uint64_t end = now_ms() + 5000; now_ms() < end; sleep_ms(50)) {
            nana_pool_stats_get(p, &st);
            if (st.closed_lifetime >= 2) break;
        }
        CHECK(st.closed_lifetime >= 2 && st.opened >= 3, "retired by age (%llu, opened %llu)",
              (unsigned long long)st.closed_lifetime, (unsigned long long)st.opened);
        ok = 0;
        for (uint64_t end = now_ms() + 5000; !ok && now_ms() < end; sleep_ms(20)) {
            ok = nana_pool_call(p, "__getitem__", "[\"a\"]", NULL, NULL, &r) == 0;
            nana_result_free(&r);
        }
        CHECK(ok, "calls still work");
        nana_pool_close(p);
    }
    CHECK(server_stop(&s, SIGTERM) == 0, "server exits 0");
}

/* ---- the pool over several nodes (nana_pool_opts.nodes) --------------------------- */

/* Opens a pool with node list |nodes| (no server needed: it must be refused
 * before any connection) and checks the status and that the message names
 * |needle|. */
static void expect_nodes_refused(const char *nodes, int status, const char *needle)
{
    nana_client_opts o;
    opts_for(&o, 4433);
    nana_pool_opts po;
    nana_pool_opts_init(&po);
    po.nodes = nodes;
    nana_pool *p = NULL;
    nana_result r = {0};
    int st = nana_pool_open(&o, &po, &p, &r);
    CHECK(st == status && !p && r.message && strstr(r.message, needle),
          "nodes \"%.80s\": want %d naming '%s', got %d (%s)", nodes, status, needle, st,
          r.message ? r.message : "");
    nana_result_free(&r);
    nana_pool_close(p);
}

static void test_pool_nodes_invalid(void)
{
    printf("test_pool_nodes_invalid\n");
    expect_nodes_refused("127.0.0.1", NANA_CLIENT_EINVALID, "'127.0.0.1' has no port");
    expect_nodes_refused("127.0.0.1:0", NANA_CLIENT_EINVALID, "from 1 to 65535");
    expect_nodes_refused("127.0.0.1:65536", NANA_CLIENT_EINVALID, "'127.0.0.1:65536'");
    expect_nodes_refused("127.0.0.1:44x", NANA_CLIENT_EINVALID, "'127.0.0.1:44x': the port");
    expect_nodes_refused("127.0.0.1:", NANA_CLIENT_EINVALID, "'127.0.0.1:': the port");
    expect_nodes_refused(":4433", NANA_CLIENT_EINVALID, "':4433' has no host");
    expect_nodes_refused("::1:4433", NANA_CLIENT_EINVALID, "in brackets");
    expect_nodes_refused("[::1:4433", NANA_CLIENT_EINVALID, "'[::1:4433': '[' without ']'");
    expect_nodes_refused("[::1]4433", NANA_CLIENT_EINVALID, "'[::1]4433'");
    expect_nodes_refused("[127.0.0.1]:4433", NANA_CLIENT_EINVALID, "is not an IPv6 address");
    expect_nodes_refused("10.1:4433", NANA_CLIENT_EINVALID, "'10.1' is not an IPv4 address");
    expect_nodes_refused("a b:4433", NANA_CLIENT_EINVALID, "' ' cannot be part of a host name");
    expect_nodes_refused("127.0.0.1:1,,127.0.0.1:2", NANA_CLIENT_EINVALID, "entry 2 is empty");
    expect_nodes_refused("127.0.0.1:1,", NANA_CLIENT_EINVALID, "entry 2 is empty");
    expect_nodes_refused(" , 127.0.0.1:1", NANA_CLIENT_EINVALID, "entry 1 is empty");
    expect_nodes_refused("127.0.0.1:1, 127.0.0.1:1", NANA_CLIENT_EINVALID,
                         "'127.0.0.1:1' and '127.0.0.1:1' are the same node");
    expect_nodes_refused("127.0.0.1:1,[::1]:2", NANA_CLIENT_EINVALID,
                         "node '[::1]:2' is IPv6 but node '127.0.0.1:1' is IPv4: all nodes must be "
                         "of one address family");
    char seventeen[1024] = "";
    for (int i = 1; i <= NANA_POOL_MAX_NODES + 1; i++)
        snprintf(seventeen + strlen(seventeen), sizeof(seventeen) - strlen(seventeen),
                 "%s127.0.0.1:%d", i > 1 ? "," : "", i);
    expect_nodes_refused(seventeen, NANA_CLIENT_EINVALID, "more than 16 nodes");
    char longname[400];
    memset(longname, 'a', 300);
    snprintf(longname + 300, sizeof(longname) - 300, ":1");
    expect_nodes_refused(longname, NANA_CLIENT_EINVALID, "longer than");
}

/* |n| loopback ports nobody listens on (bound for a moment, then closed). */
static void dead_ports(unsigned *out, int n)
{
    int fds[NANA_POOL_MAX_NODES];
    for (int i = 0; i < n; i++) {
        fds[i] = socket(AF_INET, SOCK_DGRAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof(a);
        out[i] = 0;
        if (fds[i] >= 0 && !bind(fds[i], (struct sockaddr *)&a, sizeof(a)) &&
            !getsockname(fds[i], (struct sockaddr *)&a, &len))
            out[i] = ntohs(a.sin_port);
    }
    for (int i = 0; i < n; i++)
        if (fds[i] >= 0) close(fds[i]);
}

/* The number of keys of the default table of the server on |port| (through
 * a client of its own), or -1. */
static long server_len(unsigned port)
{
    nana_client_opts o;
    opts_for(&o, port);
    nana_client *c = NULL;
    nana_result r = {0};
    long n = -1;
    if (!nana_client_connect(&o, &c, &r) && !call(c, "__len__", NULL, &r))
        n = strtol(r.json, NULL, 10);
    nana_result_free(&r);
    nana_client_close(c);
    return n;
}

/* The servers' shared log: its size now, and how many of its lines from
 * |from| on contain |needle|. */
static long log_size(void)
{
    char path[sizeof(dir) + 16];
    snprintf(path, sizeof(path), "%s/server.log", dir);
    struct stat sb;
    return stat(path, &sb) ? 0 : (long)sb.st_size;
}

static int log_count(long from, const char *needle)
{
    char path[sizeof(dir) + 16], line[1024];
    snprintf(path, sizeof(path), "%s/server.log", dir);
    FILE *f = fopen(path, "r");
    int n = 0;
    if (f && !fseek(f, from, SEEK_SET))
        while (fgets(line, sizeof(line), f))
            n += strstr(line, needle) != NULL;
    if (f) fclose(f);
    return n;
}

/* One set through the pool; its time in *ms. */
static int pool_set(nana_pool *p, const char *prefix, int i, uint64_t *ms, nana_result *r)
{
    char key[64];
    snprintf(key, sizeof(key), "%s%d", prefix, i);
    nana_result_free(r);
    uint64_t t0 = now_ms();
    int st = nana_pool_set(p, key, "1", NULL, r);
    if (ms) *ms = now_ms() - t0;
    return st;
}

/* Waits (up to |ms|) until the pool has |conns| authenticated connections
 * and |replaced| / |rebalanced| at least as given; fills |st|. */
static bool pool_wait(nana_pool *p, unsigned conns, uint64_t replaced, uint64_t rebalanced,
                      unsigned ms, nana_pool_stats *st)
{
    for (uint64_t end = now_ms() + ms;; sleep_ms(20)) {
        nana_pool_stats_get(p, st);
        if (st->conns == conns && st->replaced >= replaced && st->rebalanced >= rebalanced)
            return true;
        if (now_ms() >= end) return false;
    }
}

/*
 * Three separate servers (each its own database) as the nodes of one pool
 * with min_conns 3: calls are spread over all three; one killed without a
 * word (SIGKILL), no call waits past 2 s, at most the one call already sent
 * to it fails (EUNKNOWN: noticed by the 1.5 s idle timeout, never resent),
 * its connection is replaced on a live node and every call after succeeds;
 * restarted on its port, a connection moves back to it and calls reach it.
 * Two nodes down: the breaker stays closed however often they fail; all
 * three down: it opens. Also a list of 16 (the limit) whose one live node
 * is last, and a list whose first node is dead, open.
 */
static void test_pool_nodes(void)
{
    printf("test_pool_nodes\n");
    server s[3];
    const char *flags[3][3] = {{"--db", "node0.sqlite", NULL},
                               {"--db", "node1.sqlite", NULL},
                               {"--db", "node2.sqlite", NULL}};
    for (int i = 0; i < 3; i++) {
        if (server_start(&s[i], 0, flags[i])) {
            failed++;
            for (int j = 0; j < i; j++)
                server_stop(&s[j], SIGTERM);
            return;
        }
    }
    nana_client_opts o;
    opts_for(&o, 0);
    o.idle_timeout_ms = 1500; /* a killed node says nothing: the idle timeout notices */
    o.reconnect_min_ms = 50;
    o.reconnect_max_ms = 200;
    o.call_timeout_ms = 5000;
    nana_pool_opts po;
    nana_pool_opts_init(&po);
    nana_pool *p = NULL;
    nana_result r = {0};
    nana_pool_stats st;

    /* 16 nodes, the live one last; and a dead node first. */
    unsigned dead[NANA_POOL_MAX_NODES];
    dead_ports(dead, NANA_POOL_MAX_NODES - 1);
    char list[1024] = "";
    for (int i = 0; i < NANA_POOL_MAX_NODES - 1; i++)
        snprintf(list + strlen(list), sizeof(list) - strlen(list), "127.0.0.1:%u,", dead[i]);
    snprintf(list + strlen(list), sizeof(list) - strlen(list), "127.0.0.1:%u", s[0].port);
    po.nodes = list;
    po.min_conns = po.max_conns = NANA_POOL_MAX_NODES;
    CHECK(nana_pool_open(&o, &po, &p, &r) == 0, "16 nodes, only the last alive: %s", r.message);
    CHECK(p && pool_set(p, "x", 0, NULL, &r) == 0, "a call on it: %s", r.message);
    nana_result_free(&r);
    nana_pool_close(p);
    p = NULL;
    snprintf(list, sizeof(list), "127.0.0.1:%u,127.0.0.1:%u", dead[0], s[0].port);
    po.min_conns = 1;
    po.max_conns = 6;
    for (int i = 0; i < 3; i++) { /* the one connection may go to either first */
        CHECK(nana_pool_open(&o, &po, &p, &r) == 0, "the first node dead: %s", r.message);
        nana_result_free(&r);
        nana_pool_close(p);
        p = NULL;
    }

    snprintf(list, sizeof(list), "127.0.0.1:%u, 127.0.0.1:%u, 127.0.0.1:%u", s[0].port, s[1].port,
             s[2].port);
    po.min_conns = 3;
    po.max_calls_per_conn = 16;
    po.health_interval_ms = 100;
    po.breaker_failures = 2;
    po.breaker_open_ms = 1000;
    if (nana_pool_open(&o, &po, &p, &r)) {
        CHECK(0, "pool over three nodes: %s", r.message);
        nana_result_free(&r);
        for (int i = 0; i < 3; i++)
            server_stop(&s[i], SIGTERM);
        return;
    }
    CHECK(pool_wait(p, 3, 0, 0, 10000, &st), "three connections (%u)", st.conns);

    /* Spread: one call after another still reaches every node. */
    long before[3], after[3];
    for (int i = 0; i < 3; i++)
        before[i] = server_len(s[i].port);
    int ok = 0;
    for (int i = 0; i < 30; i++)
        ok += pool_set(p, "a", i, NULL, &r) == 0;
    CHECK(ok == 30, "30 calls (%d ok; %s)", ok, r.message ? r.message : "");
    for (int i = 0; i < 3; i++)
        after[i] = server_len(s[i].port);
    CHECK(after[0] > before[0] && after[1] > before[1] && after[2] > before[2] &&
              after[0] + after[1] + after[2] - before[0] - before[1] - before[2] == 30,
          "spread over the three nodes (%ld %ld %ld)", after[0] - before[0], after[1] - before[1],
          after[2] - before[2]);

    /* Node 2 killed. */
    long log_at = log_size();
    server_stop(&s[2], SIGKILL);
    uint64_t worst = 0, took = 0;
    int fails = 0, other = 0, calls = 0;
    bool noticed = false;
    for (uint64_t end = now_ms() + 15000; !noticed && now_ms() < end; calls++) {
        int rc = pool_set(p, "b", calls, &took, &r);
        if (took > worst) worst = took;
        fails += rc != 0;
        other += rc != 0 && rc != NANA_CLIENT_EUNKNOWN;
        nana_pool_stats_get(p, &st);
        noticed = st.replaced >= 1 && st.conns == 3;
        sleep_ms(20);
    }
    printf("  after the kill: %d calls, %d failed, worst %llu ms\n", calls, fails,
           (unsigned long long)worst);
    CHECK(noticed, "the dead node's connection replaced (replaced %llu, conns %u)",
          (unsigned long long)st.replaced, st.conns);
    /* Its reconnect fell back to HTTP/2 (no QUIC answer) and failed; the
     * replacement on a live node still speaks QUIC: only the dead node is
     * taken for one whose UDP is blocked. */
    CHECK(log_count(log_at, "open from") >= 1 && log_count(log_at, "(h2)") == 0,
          "the replacement is a QUIC connection (%d opened, %d over HTTP/2)",
          log_count(log_at, "open from"), log_count(log_at, "(h2)"));
    CHECK(worst <= 2000, "no call waited past 2 s after the kill (worst %llu ms)",
          (unsigned long long)worst);
    CHECK(fails <= 1 && other == 0,
          "of %d calls, at most the one sent to the dead node failed, EUNKNOWN (%d failed, %d "
          "otherwise)",
          calls, fails, other);
    ok = 0;
    worst = 0;
    for (int i = 0; i < 30; i++) {
        ok += pool_set(p, "b2-", i, &took, &r) == 0;
        if (took > worst) worst = took;
    }
    CHECK(ok == 30 && worst <= 2000, "then every call succeeds (%d of 30, worst %llu ms)", ok,
          (unsigned long long)worst);

    /* Node 2 back on its port: a connection moves back to it. */
    unsigned port2 = s[2].port;
    CHECK(server_start(&s[2], port2, flags[2]) == 0, "node 2 restarted");
    CHECK(pool_wait(p, 3, 1, 1, 20000, &st), "a connection moved back (rebalanced %llu, conns %u)",
          (unsigned long long)st.rebalanced, st.conns);
    before[2] = server_len(port2);
    ok = 0;
    for (int i = 0; i < 30; i++)
        ok += pool_set(p, "c", i, NULL, &r) == 0;
    after[2] = server_len(port2);
    CHECK(ok == 30 && before[2] >= 0 && after[2] > before[2],
          "calls reach the restarted node (%d ok, %ld new there)", ok, after[2] - before[2]);

    /* Two nodes down: however often they fail, the breaker stays closed. */
    server_stop(&s[1], SIGTERM);
    server_stop(&s[2], SIGTERM);
    nana_pool_stats_get(p, &st);
    uint64_t f0 = st.connect_failures;
    int last_ok = 0, max_state = 0;
    calls = 0;
    for (uint64_t end = now_ms() + 30000; now_ms() < end; calls++) {
        int rc = pool_set(p, "d", calls, NULL, &r);
        last_ok = rc == 0 ? last_ok + 1 : 0;
        nana_pool_stats_get(p, &st);
        if (st.breaker > max_state) max_state = st.breaker;
        if (st.connect_failures >= f0 + 4ull * po.breaker_failures && last_ok >= 10) break;
        sleep_ms(20);
    }
    CHECK(st.connect_failures >= f0 + 4ull * po.breaker_failures && last_ok >= 10,
          "the live node serves while the others fail (%llu failures, %d ok in a row: %s)",
          (unsigned long long)(st.connect_failures - f0), last_ok, r.message ? r.message : "");
    CHECK(max_state == NANA_BREAKER_CLOSED && st.breaker_trips == 0,
          "the breaker stays closed with one node up (state %d, trips %llu)", max_state,
          (unsigned long long)st.breaker_trips);

    /* All three down: it opens. */
    server_stop(&s[0], SIGTERM);
    int rc = 0;
    for (uint64_t end = now_ms() + 20000; now_ms() < end && rc != NANA_CLIENT_EBREAKER;
         sleep_ms(20))
        rc = pool_set(p, "e", 0, NULL, &r);
    nana_pool_stats_get(p, &st);
    CHECK(rc == NANA_CLIENT_EBREAKER && st.breaker_trips == 1,
          "all nodes down: the breaker opens (%d %s, trips %llu)", rc, r.message,
          (unsigned long long)st.breaker_trips);
    nana_result_free(&r);
    nana_pool_close(p);
}

/* ---- the gRPC door (protocol NANA_CLIENT_PROTO_GRPC) ------------------------------- */

static atomic_int grpc_done, grpc_ok;

/* A concurrent gRPC get: its value must be its own key's number. */
static void on_grpc_get(void *ud, nana_result *r)
{
    char want[16];
    snprintf(want, sizeof(want), "%d", (int)(intptr_t)ud);
    if (r->status == NANA_CLIENT_OK && r->json && !strcmp(r->json, want))
        atomic_fetch_add(&grpc_ok, 1);
    atomic_fetch_add(&grpc_done, 1);
    nana_result_free(r);
}

/*
 * The same calls through the gRPC door: typed get / set / delete (and the
 * same answers through the NanaSQLite protocol), Call with results,
 * raised errors and refusals, db and table, many calls in flight, a
 * timeout (the server's deadline too), a reconnect after a restart, a
 * wrong key (EAUTH), a server without the gRPC door (ECONNECT), and a
 * pool whose breaker opens while the server is down.
 */
static void test_grpc(void)
{
    printf("test_grpc\n");
    server s;
    nana_client_opts o;
    opts_for(&o, 0);
    o.protocol = NANA_CLIENT_PROTO_GRPC;
    o.reconnect_max_ms = 300;
    const char *slow[] = {"--test-worker-delay-ms", "0", NULL};
    nana_client *c = start_connected(&s, slow, &o);
    if (!c) return;
    unsigned port = s.port;
    nana_result r = {0};
    CHECK(nana_client_connected(c) == 1, "grpc: connected (logged in)");
    CHECK(nana_client_health(c, NULL, NULL, &r) == 0 && r.json && !strcmp(r.json, "\"SERVING\""),
          "grpc health: %s", r.json);
    nana_result_free(&r);
    CHECK(nana_client_health(c, "nope", NULL, &r) == NANA_CLIENT_ESERVER &&
              !strcmp(r.error_type, "NOT_FOUND"),
          "grpc health of an unknown service: %s", r.error_type);
    nana_result_free(&r);
    CHECK(nana_client_set(c, "k", "{\"a\":[1,2.5,\"x\"]}", NULL, &r) == 0 && r.json &&
              !strcmp(r.json, "null"),
          "grpc set: %d %s", r.status, r.message);
    nana_result_free(&r);
    CHECK(nana_client_get(c, "k", NULL, &r) == 0 && r.json &&
              !strcmp(r.json, "{\"a\":[1,2.5,\"x\"]}"),
          "grpc get: %s", r.json);
    nana_result_free(&r);
    CHECK(nana_client_get(c, "missing", NULL, &r) == NANA_CLIENT_ESERVER &&
              !strcmp(r.error_type, "KeyError"),
          "grpc get of a missing key: KeyError (%s)", r.error_type);
    nana_result_free(&r);
    CHECK(nana_client_delete(c, "k", NULL, &r) == 0 && !strcmp(r.json, "true"), "grpc delete: %s",
          r.json);
    nana_result_free(&r);
    CHECK(nana_client_delete(c, "k", NULL, &r) == 0 && !strcmp(r.json, "false"),
          "grpc delete of a missing key: false (%s)", r.json);
    nana_result_free(&r);
    CHECK(nana_client_set(c, "k", "{bad", NULL, &r) == NANA_CLIENT_EINVALID,
          "grpc set of bad JSON refused locally");
    nana_result_free(&r);
    /* Call: results, raised errors (in the reply), kwargs, db and table. */
    CHECK(call(c, "__setitem__", "[\"n\", 5]", &r) == 0, "grpc Call set: %s", r.message);
    CHECK(call(c, "__getitem__", "[\"n\"]", &r) == 0 && !strcmp(r.json, "5"), "grpc Call get: %s",
          r.json);
    CHECK(call(c, "__getitem__", "[\"missing\"]", &r) == NANA_CLIENT_ESERVER &&
              !strcmp(r.error_type, "KeyError") && !strcmp(r.message, "'missing'"),
          "grpc Call KeyError: %s %s", r.error_type, r.message);
    CHECK(call(c, "vacuum", NULL, &r) == NANA_CLIENT_ESERVER &&
              !strcmp(r.error_type, "PermissionError"),
          "grpc Call vacuum forbidden: %s", r.error_type);
    CHECK(call(c, "__getitem__", "{\"k\": 1}", &r) == NANA_CLIENT_EINVALID,
          "grpc args not an array");
    nana_result_free(&r);
    CHECK(nana_client_call(c, "get", "[\"missing\"]", "{\"default\": 7}", NULL, &r) == 0 &&
              !strcmp(r.json, "7"),
          "grpc kwargs: %s", r.json);
    nana_call_opts co = {.db = "other.db", .table = "t2"};
    nana_result_free(&r);
    CHECK(nana_client_set(c, "k", "1", &co, &r) == 0, "grpc set in db/table: %s", r.message);
    nana_result_free(&r);
    CHECK(nana_client_call(c, "__len__", NULL, NULL, &co, &r) == 0 && !strcmp(r.json, "1"),
          "grpc Call in db/table: %s", r.json);
    co = (nana_call_opts){.db = "../escape.db"};
    nana_result_free(&r);
    CHECK(nana_client_get(c, "k", &co, &r) == NANA_CLIENT_ESERVER &&
              !strcmp(r.error_type, "PERMISSION_DENIED") && strstr(r.message, "database name"),
          "grpc: a refused typed call is its status (%s: %s)", r.error_type, r.message);
    nana_result_free(&r);
    /* What the gRPC door stored, the NanaSQLite door reads, typed alike. */
    nana_client_opts on;
    opts_for(&on, port);
    nana_client *cn = NULL;
    CHECK(nana_client_connect(&on, &cn, &r) == 0, "nanasqlite client: %s", r.message);
    nana_result_free(&r);
    if (cn) {
        CHECK(nana_client_health(cn, NULL, NULL, &r) == NANA_CLIENT_EINVALID,
              "health over the NanaSQLite protocol: EINVALID");
        nana_result_free(&r);
        CHECK(nana_client_get(cn, "n", NULL, &r) == 0 && !strcmp(r.json, "5"),
              "nanasqlite typed get of a gRPC write: %s", r.json);
        nana_result_free(&r);
        CHECK(nana_client_set(cn, "m", "[1]", NULL, &r) == 0 && !strcmp(r.json, "null"),
              "nanasqlite typed set");
        nana_result_free(&r);
        CHECK(nana_client_delete(cn, "m", NULL, &r) == 0 && !strcmp(r.json, "true"),
              "nanasqlite typed delete: %s", r.json);
        nana_result_free(&r);
        CHECK(nana_client_delete(cn, "m", NULL, &r) == 0 && !strcmp(r.json, "false"),
              "nanasqlite typed delete of a missing key: %s", r.json);
        nana_result_free(&r);
        CHECK(nana_client_get(cn, "m", NULL, &r) == NANA_CLIENT_ESERVER &&
                  !strcmp(r.error_type, "KeyError"),
              "nanasqlite typed get of a missing key");
        nana_result_free(&r);
        nana_client_close(cn);
    }
    /* Many calls in flight on one connection, each answer its own. */
    for (int i = 0; i < 50; i++) {
        char k[16], v[16];
        snprintf(k, sizeof(k), "g%d", i);
        snprintf(v, sizeof(v), "%d", i);
        nana_client_set(c, k, v, NULL, &r);
        nana_result_free(&r);
    }
    atomic_store(&grpc_done, 0);
    atomic_store(&grpc_ok, 0);
    int n = 500;
    for (int i = 0; i < n; i++) {
        char args[32];
        snprintf(args, sizeof(args), "[\"g%d\"]", i % 50);
        if (nana_client_submit(c, "__getitem__", args, NULL, NULL, on_grpc_get,
                               (void *)(intptr_t)(i % 50), 0))
            atomic_fetch_add(&grpc_done, 1);
    }
    for (uint64_t end = now_ms() + 20000; atomic_load(&grpc_done) < n && now_ms() < end;)
        sleep_ms(10);
    CHECK(atomic_load(&grpc_ok) == n, "grpc: %d calls in flight, each its own answer (%d ok)", n,
          atomic_load(&grpc_ok));
    nana_client_close(c);
    CHECK(server_stop(&s, SIGTERM) == 0, "stop");

    /* Timeouts: the client's, and the server's deadline (grpc-timeout). */
    const char *delay[] = {"--test-worker-delay-ms", "600", NULL};
    CHECK(server_start(&s, port, delay) == 0, "restart slow");
    opts_for(&o, port);
    o.protocol = NANA_CLIENT_PROTO_GRPC;
    o.reconnect_max_ms = 300;
    c = NULL;
    CHECK(nana_client_connect(&o, &c, &r) == 0, "grpc connect: %s", r.message);
    nana_result_free(&r);
    if (c) {
        nana_call_opts quick = {.timeout_ms = 100};
        uint64_t t0 = now_ms();
        int st = nana_client_call(c, "keys", NULL, NULL, &quick, &r);
        CHECK((st == NANA_CLIENT_ETIMEOUT ||
               (st == NANA_CLIENT_ESERVER && !strcmp(r.error_type, "DEADLINE_EXCEEDED"))) &&
                  now_ms() - t0 < 2000,
              "grpc timeout: %d %s %s", st, r.error_type, r.message);
        nana_result_free(&r);
        CHECK(call(c, "keys", NULL, &r) == 0, "a later call works: %s", r.message);
        /* Restart: the client reconnects and logs in again by itself. */
        CHECK(server_stop(&s, SIGTERM) == 0, "stop");
        CHECK(server_start(&s, port, NULL) == 0, "restart");
        int ok = 0;
        for (uint64_t end = now_ms() + 15000; !ok && now_ms() < end; sleep_ms(50))
            ok = call(c, "__len__", NULL, &r) == 0;
        CHECK(ok && nana_client_reconnects(c) >= 1, "grpc calls work after the restart: %s",
              r.message);
        nana_result_free(&r);
        nana_client_close(c);
    }
    /* The wrong key: the login is refused. */
    char other[sizeof(dir) + 32];
    snprintf(other, sizeof(other), "%s/other_private.pem", dir);
    o.key_file = other;
    c = NULL;
    CHECK(nana_client_connect(&o, &c, &r) == NANA_CLIENT_EAUTH && !c &&
              strstr(r.message, "refused the login"),
          "grpc wrong key: EAUTH (%d %s)", r.status, r.message);
    nana_result_free(&r);
    /* A pool over gRPC; its breaker opens while the server is down. */
    opts_for(&o, port);
    o.protocol = NANA_CLIENT_PROTO_GRPC;
    o.connect_timeout_ms = 500;
    o.reconnect_max_ms = 100;
    nana_pool_opts po;
    nana_pool_opts_init(&po);
    po.min_conns = 1;
    po.max_conns = 2;
    po.breaker_failures = 2;
    po.breaker_open_ms = 60000;
    po.health_interval_ms = 50;
    nana_pool *p = NULL;
    CHECK(nana_pool_open(&o, &po, &p, &r) == 0, "grpc pool: %s", r.message);
    nana_result_free(&r);
    if (p) {
        CHECK(nana_pool_set(p, "pk", "\"v\"", NULL, &r) == 0, "grpc pool set: %s", r.message);
        nana_result_free(&r);
        CHECK(nana_pool_get(p, "pk", NULL, &r) == 0 && !strcmp(r.json, "\"v\""),
              "grpc pool get: %s", r.json);
        nana_result_free(&r);
        CHECK(nana_pool_delete(p, "pk", NULL, &r) == 0 && !strcmp(r.json, "true"),
              "grpc pool delete: %s", r.json);
        nana_result_free(&r);
        server_stop(&s, SIGTERM);
        nana_pool_stats st = {0};
        for (uint64_t end = now_ms() + 15000; now_ms() < end; sleep_ms(20)) {
            nana_pool_call(p, "__len__", NULL, NULL, NULL, &r);
            nana_result_free(&r);
            nana_pool_stats_get(p, &st);
            if (st.breaker == NANA_BREAKER_OPEN) break;
        }
        CHECK(st.breaker == NANA_BREAKER_OPEN, "grpc pool: the breaker opens (state %d)",
              st.breaker);
        CHECK(nana_pool_get(p, "pk", NULL, &r) == NANA_CLIENT_EBREAKER, "grpc pool fails fast");
        nana_result_free(&r);
        nana_pool_close(p);
    }
    /* A server without the gRPC door: no connection. */
    const char *no_grpc[] = {"--no-grpc", NULL};
    CHECK(server_start(&s, port, no_grpc) == 0, "restart without gRPC");
    opts_for(&o, port);
    o.protocol = NANA_CLIENT_PROTO_GRPC;
    o.connect_timeout_ms = 2000;
    c = NULL;
    CHECK(nana_client_connect(&o, &c, &r) == NANA_CLIENT_ECONNECT && !c,
          "grpc against --no-grpc: ECONNECT (%s)", r.message);
    nana_result_free(&r);
    CHECK(server_stop(&s, SIGTERM) == 0, "server exits 0");
}

/* ---- AQL on the gRPC door ------------------------------------------------------------ */

/* A QueryRequest of a range over the whole "rows" collection (the caller frees). */
static uint8_t *range_request(size_t *len)
{
    uint8_t *q = NULL, *req = NULL;
    size_t qlen = 0;
    *len = 0;
    if (nana_client_aql_build_range("rows", (const uint8_t *)"r", 1, (const uint8_t *)"r~", 2, -1,
                                    &q, &qlen, NULL) == 0)
        nana_client_aql_request(q, qlen, 0, &req, len, NULL);
    nana_client_aql_free(q);
    return req;
}

/* ---- transports: HTTP/2 on TCP, and AUTO's fallback --------------------------- */

/*
 * A TCP forwarder on a loopback port P to the server's port, with a UDP
 * socket bound on P that never reads: QUIC to P gets no answer (as where
 * UDP is dropped), TCP to P reaches the server. One thread; every wait
 * bounded by its 50 ms poll.
 */
#define FWD_MAX 16
typedef struct fwd {
    pthread_t thread;
    int lfd, ufd;
    unsigned port, to_port;
    atomic_bool stop, cut; /* cut: close every forwarded connection now */
    atomic_uint accepted;
    int a[FWD_MAX], b[FWD_MAX]; /* pairs: accepted, upstream (-1: free) */
} fwd;

static int fwd_upstream(unsigned port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) return fd;
    if (fd >= 0) close(fd);
    return -1;
}

static void fwd_drop(fwd *f, int i)
{
    close(f->a[i]);
    close(f->b[i]);
    f->a[i] = f->b[i] = -1;
}

static void *fwd_main(void *arg)
{
    fwd *f = arg;
    while (!atomic_load(&f->stop)) {
        if (atomic_exchange(&f->cut, false))
            for (int i = 0; i < FWD_MAX; i++)
                if (f->a[i] >= 0) fwd_drop(f, i);
        struct pollfd p[1 + 2 * FWD_MAX];
        int n = 0;
        p[n++] = (struct pollfd){.fd = f->lfd, .events = POLLIN};
        for (int i = 0; i < FWD_MAX; i++) {
            p[n++] = (struct pollfd){.fd = f->a[i], .events = POLLIN};
            p[n++] = (struct pollfd){.fd = f->b[i], .events = POLLIN};
        }
        if (poll(p, (nfds_t)n, 50) <= 0) continue;
        if (p[0].revents & POLLIN) {
            int c = accept(f->lfd, NULL, NULL);
            int u = c >= 0 ? fwd_upstream(f->to_port) : -1;
            int slot = -1;
            for (int i = 0; i < FWD_MAX && slot < 0; i++)
                if (f->a[i] < 0) slot = i;
            if (c >= 0 && u >= 0 && slot >= 0) {
                f->a[slot] = c;
                f->b[slot] = u;
                atomic_fetch_add(&f->accepted, 1);
            } else {
                if (c >= 0) close(c);
                if (u >= 0) close(u);
            }
        }
        for (int i = 0; i < FWD_MAX; i++) {
            for (int side = 0; side < 2 && f->a[i] >= 0; side++) {
                short ev = p[1 + 2 * i + side].revents;
                if (!ev) continue;
                int from = side ? f->b[i] : f->a[i], to = side ? f->a[i] : f->b[i];
                char buf[65536];
                ssize_t got = read(from, buf, sizeof(buf));
                bool ok = got > 0;
                for (ssize_t off = 0; ok && off < got;) {
                    ssize_t w = write(to, buf + off, (size_t)(got - off));
                    ok = w > 0;
                    off += ok ? w : 0;
                }
                if (!ok) fwd_drop(f, i);
            }
        }
    }
    for (int i = 0; i < FWD_MAX; i++)
        if (f->a[i] >= 0) fwd_drop(f, i);
    return NULL;
}

/* Starts a forwarder to |to_port|; 0, or -1 (nothing to stop). */
static int fwd_start(fwd *f, unsigned to_port)
{
    memset(f, 0, sizeof(*f));
    for (int i = 0; i < FWD_MAX; i++)
        f->a[i] = f->b[i] = -1;
    f->to_port = to_port;
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(sa);
    f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    f->ufd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (f->lfd < 0 || f->ufd < 0 || bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)) ||
        listen(f->lfd, 16) || getsockname(f->lfd, (struct sockaddr *)&sa, &len) ||
        bind(f->ufd, (struct sockaddr *)&sa, sizeof(sa)) ||
        pthread_create(&f->thread, NULL, fwd_main, f)) {
        if (f->lfd >= 0) close(f->lfd);
        if (f->ufd >= 0) close(f->ufd);
        return -1;
    }
    f->port = ntohs(sa.sin_port);
    return 0;
}

static void fwd_stop(fwd *f)
{
    atomic_store(&f->stop, true);
    pthread_join(f->thread, NULL);
    close(f->lfd);
    close(f->ufd);
}

/* The transport tests' own database (other tests leave keys in the default one). */
static const nana_call_opts tco = {.db = "transport.db"};

/* One blocking call in that database. */
static int tcall(nana_client *c, const char *m, const char *args, nana_result *r)
{
    nana_result_free(r);
    return nana_client_call(c, m, args, NULL, &tco, r);
}

/* The typed calls and Call on |c|, with the results the NanaSQLite
 * protocol gives over QUIC; |what| names the case in messages. */
static void transport_calls(nana_client *c, const char *what)
{
    nana_result r = {0};
    CHECK(nana_client_set(c, "t", "{\"a\":[1,2.5,\"x\"]}", &tco, &r) == 0 && r.json &&
              !strcmp(r.json, "null"),
          "%s: set (%d %s)", what, r.status, r.message);
    nana_result_free(&r);
    CHECK(nana_client_get(c, "t", &tco, &r) == 0 && r.json &&
              !strcmp(r.json, "{\"a\":[1,2.5,\"x\"]}"),
          "%s: get (%s)", what, r.json);
    nana_result_free(&r);
    CHECK(nana_client_get(c, "none", &tco, &r) == NANA_CLIENT_ESERVER &&
              !strcmp(r.error_type, "KeyError"),
          "%s: get of a missing key is KeyError (%s)", what, r.error_type);
    nana_result_free(&r);
    CHECK(tcall(c, "__len__", NULL, &r) == 0 && r.json && !strcmp(r.json, "1"), "%s: Call (%s)",
          what, r.json);
    CHECK(tcall(c, "__getitem__", "[\"none\"]", &r) == NANA_CLIENT_ESERVER &&
              !strcmp(r.error_type, "KeyError") && !strcmp(r.message, "'none'"),
          "%s: a method's error (%s %s)", what, r.error_type, r.message);
    CHECK(tcall(c, "__len__", "{bad", &r) == NANA_CLIENT_EINVALID, "%s: bad JSON refused locally",
          what);
    nana_result_free(&r);
    CHECK(nana_client_delete(c, "t", &tco, &r) == 0 && r.json && !strcmp(r.json, "true"),
          "%s: delete (%s)", what, r.json);
    nana_result_free(&r);
    CHECK(nana_client_delete(c, "t", &tco, &r) == 0 && r.json && !strcmp(r.json, "false"),
          "%s: delete of a missing key (%s)", what, r.json);
    nana_result_free(&r);
}

static void test_transport(void)
{
    printf("test_transport\n");
    server s;
    if (server_start(&s, 0, NULL)) {
        failed++;
        return;
    }
    nana_client_opts o;
    nana_result r = {0};
    nana_client *c = NULL;
    /* HTTP/2 straight to the server, both protocols. */
    const int protos[] = {NANA_CLIENT_PROTO_NANASQLITE, NANA_CLIENT_PROTO_GRPC};
    for (int i = 0; i < 2; i++) {
        opts_for(&o, s.port);
        o.transport = NANA_CLIENT_TRANSPORT_H2;
        o.protocol = protos[i];
        c = NULL;
        CHECK(nana_client_connect(&o, &c, &r) == 0, "h2 connect: %s", r.message);
        nana_result_free(&r);
        if (!c) continue;
        transport_calls(c, i ? "h2 grpc" : "h2");
        int hs = nana_client_health(c, NULL, NULL, &r);
        if (i)
            CHECK(hs == 0 && r.json && !strcmp(r.json, "\"SERVING\""), "h2 grpc health: %s",
                  r.json);
        else
            CHECK(hs == NANA_CLIENT_EINVALID, "h2 health with the NanaSQLite protocol: EINVALID");
        nana_result_free(&r);
        nana_client_close(c);
    }
    opts_for(&o, s.port);
    o.transport = 7;
    c = NULL;
    CHECK(nana_client_connect(&o, &c, &r) == NANA_CLIENT_EINVALID && !c,
          "a transport out of range: EINVALID (%s)", r.message);
    nana_result_free(&r);
    fwd f;
    if (fwd_start(&f, s.port)) {
        CHECK(0, "forwarder");
        server_stop(&s, SIGTERM);
        return;
    }
    /* AUTO through the forwarder: QUIC gets no answer, HTTP/2 takes over
     * after fallback_ms, the same calls give the same results. */
    opts_for(&o, f.port);
    o.fallback_ms = 400;
    o.connect_timeout_ms = 5000;
    o.reconnect_max_ms = 200;
    uint64_t t0 = now_ms();
    c = NULL;
    int rc = nana_client_connect(&o, &c, &r);
    uint64_t took = now_ms() - t0;
    CHECK(rc == 0, "auto falls back to HTTP/2: %s", r.message);
    nana_result_free(&r);
    CHECK(took >= 400 && atomic_load(&f.accepted) == 1,
          "QUIC was tried first (%llu ms), then one TCP connection (%u)", (unsigned long long)took,
          atomic_load(&f.accepted));
    if (c) {
        transport_calls(c, "auto over h2");
        /* The TCP connection is cut: the client reconnects (over HTTP/2:
         * QUIC had no answer) and calls flow again. */
        atomic_store(&f.cut, true);
        for (uint64_t end = now_ms() + 5000; now_ms() < end && nana_client_reconnects(c) == 0;) {
            (void)call(c, "__len__", NULL, &r); /* fails until the new connection is up */
            if (nana_client_reconnects(c) == 0) sleep_ms(20);
        }
        CHECK(nana_client_reconnects(c) >= 1 && atomic_load(&f.accepted) >= 2,
              "reconnected over TCP after the cut (%llu, %u)",
              (unsigned long long)nana_client_reconnects(c), atomic_load(&f.accepted));
        CHECK(tcall(c, "__len__", NULL, &r) == 0 && r.json && !strcmp(r.json, "0"),
              "a call after the reconnect: %s %s", r.json, r.message);
        nana_result_free(&r);
        nana_client_close(c);
    }
    /* A pool in AUTO through the forwarder. */
    nana_pool_opts po;
    nana_pool_opts_init(&po);
    po.min_conns = 2;
    po.max_conns = 2;
    nana_pool *p = NULL;
    CHECK(nana_pool_open(&o, &po, &p, &r) == 0, "auto pool through the forwarder: %s", r.message);
    nana_result_free(&r);
    if (p) {
        int good = 0;
        for (int i = 0; i < 20; i++) {
            good += nana_pool_set(p, "pk", "1", NULL, &r) == 0;
            nana_result_free(&r);
        }
        CHECK(good == 20, "auto pool calls over HTTP/2: %d of 20", good);
        nana_pool_close(p);
    }
    /* QUIC only through the forwarder: ECONNECT within the connect timeout. */
    opts_for(&o, f.port);
    o.transport = NANA_CLIENT_TRANSPORT_QUIC;
    o.connect_timeout_ms = 1500;
    unsigned before = atomic_load(&f.accepted);
    t0 = now_ms();
    c = NULL;
    rc = nana_client_connect(&o, &c, &r);
    took = now_ms() - t0;
    CHECK(rc == NANA_CLIENT_ECONNECT && !c, "quic only where UDP gets no answer: ECONNECT (%d %s)",
          rc, r.message);
    CHECK(took < 1500 + 5000, "... in bounded time (%llu ms)", (unsigned long long)took);
    CHECK(atomic_load(&f.accepted) == before, "... and no TCP connection");
    nana_result_free(&r);
    nana_client_close(c);
    fwd_stop(&f);
    /* AUTO when nothing answers at all: the error names both tries. */
    opts_for(&o, f.port);
    o.fallback_ms = 200;
    o.connect_timeout_ms = 2000;
    c = NULL;
    rc = nana_client_connect(&o, &c, &r);
    CHECK(rc == NANA_CLIENT_ECONNECT && r.message && strstr(r.message, "QUIC") &&
              strstr(r.message, "TCP"),
          "auto with nothing on the port: ECONNECT naming QUIC and TCP (%s)", r.message);
    nana_result_free(&r);
    nana_client_close(c);
    CHECK(server_stop(&s, SIGTERM) == 0, "stop");
}

/* AQL calls and streams over |transport| (QUIC or HTTP/2). */
static void test_aql(int transport)
{
    printf("test_aql (%s)\n", transport == NANA_CLIENT_TRANSPORT_H2 ? "h2" : "auto");
    server s;
    nana_client_opts o;
    opts_for(&o, 0);
    o.protocol = NANA_CLIENT_PROTO_GRPC;
    o.transport = transport;
    nana_client *c = start_connected(&s, NULL, &o);
    if (!c) return;
    nana_result r = {0};
    const uint8_t *k1 = (const uint8_t *)"u1";
    const char *v1 = "{\"age\":31,\"city\":\"Tokyo\"}";
    CHECK(nana_client_aql_set(c, "people", k1, 2, (const uint8_t *)v1, strlen(v1), NULL, &r) == 0,
          "aql set: %s", r.message);
    nana_result_free(&r);
    uint8_t *val = NULL;
    size_t vlen = 0;
    CHECK(nana_client_aql_get(c, "people", k1, 2, NULL, &val, &vlen, &r) == 0 && val &&
              vlen == strlen(v1) && !memcmp(val, v1, vlen),
          "aql get: the bytes stored (%s)", r.message);
    nana_client_aql_free(val);
    CHECK(nana_client_aql_get(c, "people", (const uint8_t *)"no", 2, NULL, &val, &vlen, &r) == 0 &&
              !val,
          "aql get of a missing key: no value");
    nana_aql_rows rows = {0};
    CHECK(nana_client_aql_filter(c, "people", "age >= 30 and city = \"Tokyo\"", NULL, 0, -1, -1,
                                 NULL, &rows, &r) == 0 &&
              rows.count == 1 && rows.rows[0].key_len == 2,
          "aql filter: %zu rows (%s)", rows.count, r.message);
    nana_client_aql_rows_free(&rows);
    nana_aql_update ups[] = {{NANA_AQL_UPDATE_ADD, "age", "1"}};
    uint64_t n = 0;
    CHECK(nana_client_aql_update(c, "people", "age = 31", NULL, 0, ups, 1, NULL, &n, &r) == 0 &&
              n == 1,
          "aql update: %llu (%s)", (unsigned long long)n, r.message);
    CHECK(nana_client_aql_delete(c, "people", k1, 2, NULL, &n, &r) == 0 && n == 1,
          "aql delete: existed");
    CHECK(nana_client_aql_delete(c, "people", k1, 2, NULL, &n, &r) == 0 && n == 0,
          "aql delete again: did not exist");
    /* The answer's ErrorResponse: EQUERY with its code. */
    CHECK(nana_client_aql_set(c, "people", (const uint8_t *)"\xff", 1, (const uint8_t *)"1", 1,
                              NULL, &r) == NANA_CLIENT_EQUERY &&
              !strcmp(r.error_type, "ERROR_VALIDATION_INVALID_KEY") && !strcmp(r.code, "6000"),
          "aql: a key that is not UTF-8 is EQUERY (%s %s)", r.error_type, r.code);
    nana_result_free(&r);
    /* A batch of 1000 sets, three times: the rows streamed below. */
    uint8_t *qs[1000];
    size_t lens[1000];
    int built = 1;
    for (int b = 0; b < 3 && built; b++) {
        for (int i = 0; i < 1000; i++) {
            char key[16], value[64];
            snprintf(key, sizeof(key), "r%05d", b * 1000 + i);
            snprintf(value, sizeof(value), "{\"i\":%d,\"pad\":\"%040d\"}", b * 1000 + i, 0);
            built &= nana_client_aql_build_set("rows", (const uint8_t *)key, strlen(key),
                                               (const uint8_t *)value, strlen(value), &qs[i],
                                               &lens[i], NULL) == 0;
        }
        uint8_t *resp = NULL;
        size_t rlen = 0;
        if (built)
            CHECK(nana_client_aql_batch(c, (const uint8_t *const *)qs, lens, 1000, NULL, &resp,
                                        &rlen, &r) == 0,
                  "aql batch of 1000: %s", r.message);
        nana_result_free(&r);
        nana_client_aql_free(resp);
        for (int i = 0; i < 1000; i++)
            nana_client_aql_free(qs[i]);
    }
    /* A stream through a pool, read whole; one closed early. */
    nana_pool_opts po;
    nana_pool_opts_init(&po);
    po.max_conns = 2;
    nana_pool *p = NULL;
    CHECK(nana_pool_open(&o, &po, &p, &r) == 0, "aql pool: %s", r.message);
    nana_result_free(&r);
    size_t len = 0;
    uint8_t *req = range_request(&len);
    nana_aql_stream *it = NULL;
    if (p && req && nana_pool_aql_stream_open(p, req, len, NULL, &it, &r) == 0) {
        const uint8_t *k, *v;
        size_t kl, vl, count = 0;
        int got;
        int ordered = 1;
        while ((got = nana_client_aql_stream_next(it, &k, &kl, &v, &vl, &r)) == 1) {
            char want[16];
            snprintf(want, sizeof(want), "r%05zu", count++);
            ordered &= kl == strlen(want) && !memcmp(k, want, kl);
        }
        CHECK(got == 0 && count == 3000 && ordered && nana_client_aql_stream_total(it) == 3000,
              "aql stream through a pool: %zu rows in order (%d %s)", count, got, r.message);
        nana_client_aql_stream_close(it);
        it = NULL;
        CHECK(nana_pool_aql_stream_open(p, req, len, NULL, &it, &r) == 0 &&
                  nana_client_aql_stream_next(it, &k, &kl, &v, &vl, &r) == 1,
              "aql stream: a first row");
        nana_client_aql_stream_close(it);
        uint8_t *q = NULL, *gr = NULL, *resp = NULL;
        size_t qlen = 0, grlen = 0, rlen = 0;
        nana_client_aql_build_get("rows", (const uint8_t *)"r00001", 6, &q, &qlen, NULL);
        nana_client_aql_request(q, qlen, 0, &gr, &grlen, NULL);
        CHECK(nana_pool_aql_execute(p, gr, grlen, NULL, &resp, &rlen, &r) == 0 && rlen > 0,
              "aql execute on the pool after a closed stream: %s", r.message);
        nana_client_aql_free(q);
        nana_client_aql_free(gr);
        nana_client_aql_free(resp);
    } else {
        CHECK(0, "aql stream open: %s", r.message);
    }
    nana_result_free(&r);
    nana_client_aql_free(req);
    nana_pool_close(p);
    nana_client_close(c);
    /* Not a gRPC client: refused before anything is sent. */
    opts_for(&o, s.port);
    c = NULL;
    if (nana_client_connect(&o, &c, &r) == 0) {
        nana_result_free(&r);
        CHECK(nana_client_aql_get(c, "", k1, 2, NULL, &val, &vlen, &r) == NANA_CLIENT_EINVALID,
              "aql on a NanaSQLite-protocol client: EINVALID (%s)", r.message);
        nana_client_close(c);
    }
    nana_result_free(&r);
    CHECK(server_stop(&s, SIGTERM) == 0, "stop");
}

static void test_aql_quic(void)
{
    test_aql(NANA_CLIENT_TRANSPORT_AUTO);
}

static void test_aql_h2(void)
{
    test_aql(NANA_CLIENT_TRANSPORT_H2);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: test_client BIN_DIR TMP_DIR [TEST...]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IONBF, 0); /* forked children must not repeat buffered output */
    static char bin_abs[PATH_MAX], tmp_abs[PATH_MAX];
    mkdir(argv[2], 0755);
    if (!realpath(argv[1], bin_abs) || !realpath(argv[2], tmp_abs)) {
        fprintf(stderr, "test_client: %s or %s does not exist\n", argv[1], argv[2]);
        return 2;
    }
    bin_dir = bin_abs;
    snprintf(dir, sizeof(dir), "%s/client-%d", tmp_abs, (int)getpid());
    mkdir(dir, 0755);
    char other[sizeof(dir) + 32];
    snprintf(other, sizeof(other), "%s/other", dir);
    mkdir(other, 0755);
    if (run_tool("nanasqlite-cert-gen", NULL, NULL) || run_tool("nanasqlite-key-gen", NULL, NULL) ||
        run_tool("nanasqlite-key-gen", "--prefix", "other") ||
        run_tool("nanasqlite-cert-gen", "--out-dir", "other")) {
        printf("cannot make certificates and keys in %s\n", dir);
        return 1;
    }
    static const struct {
        const char *name;
        void (*fn)(void);
    } tests[] = {
        {"calls", test_calls},
        {"concurrency", test_concurrency},
        {"timeouts_and_restart", test_timeouts_and_restart},
        {"server_vanishes", test_server_vanishes},
        {"down_call_waits_one_connect_timeout", test_down_call_waits_one_connect_timeout},
        {"connect_failures", test_connect_failures},
        {"pool", test_pool},
        {"pool_nodes_invalid", test_pool_nodes_invalid},
        {"pool_nodes", test_pool_nodes},
        {"grpc", test_grpc},
        {"aql", test_aql_quic},
        {"aql_h2", test_aql_h2},
        {"transport", test_transport},
    };
    for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
        bool named = argc <= 3;
        for (int a = 3; a < argc; a++)
            named |= !strcmp(argv[a], tests[i].name);
        if (named) tests[i].fn();
    }
    /* Any sanitizer report from the server (an instrumented build) fails the run. */
    char log[sizeof(dir) + 16];
    snprintf(log, sizeof(log), "%s/server.log", dir);
    FILE *f = fopen(log, "r");
    char line[4096];
    int reports = 0;
    while (f && fgets(line, sizeof(line), f))
        reports += strstr(line, "Sanitizer") != NULL || strstr(line, "runtime error:") != NULL;
    if (f) fclose(f);
    CHECK(f && reports == 0, "no sanitizer report in %s (%d)", log, reports);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
