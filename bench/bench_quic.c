/*
 * bench_quic.c - nanasqlite-bench-quic: the QUIC transport alone, the
 * ceiling every layer above it is measured against.
 *
 * One process, two endpoints on loopback: an echo server (its own I/O
 * thread) and a client (its own I/O thread). Everything the client does
 * happens in its callbacks on its I/O thread, so the load generator costs
 * no extra thread switches:
 *   rpc:        64-byte request / response, one stream each, with N in
 *               flight per connection over C connections; a response's FIN
 *               starts the next request on the same connection;
 *   handshake:  connect, close as soon as it is open, connect again;
 *   bulk:       one stream, the client uploads as fast as it can to a
 *               server that discards, MB/s from the server's byte count.
 * Reported: ops/s, latency percentiles, and the server I/O thread's CPU
 * time per operation (client and server share the machine's cores, so
 * CPU per op is the fair measure of the server).
 *
 * With --port/--ca the client loads an external echo server instead (our
 * nanasqlite-quic-echo, or another QUIC stack's, see
 * bench/quic_peer_compare.sh); --server-pid then takes that process's CPU
 * time from /proc, all its threads.
 */
#include "auth/nana_certgen.h"
#include "bench_hist.h"
#include "bench_proc.h"
#include "quic/nana_quic.h"
#include "util/nana_opt.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define REQ_SIZE  64
#define MAX_CONNS 256

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- server ---------------------------------------------------------- */

static atomic_bool server_sink; /* bulk: discard instead of echo */
static atomic_llong server_bytes;

static int srv_data(nana_quic_conn *c, int64_t sid, const uint8_t *data, size_t len, int fin,
                    int early, void *user)
{
    (void)early;
    (void)user;
    atomic_fetch_add_explicit(&server_bytes, (long long)len, memory_order_relaxed);
    if (atomic_load_explicit(&server_sink, memory_order_relaxed)) {
        if (fin) nana_quic_stream_send(c, sid, "k", 1, 1);
        return 0;
    }
    if (!len && !fin) return 0;
    return nana_quic_stream_send(c, sid, data, len, fin) ? -1 : 0;
}

/* ---- client ---------------------------------------------------------- */

typedef enum { MODE_RPC, MODE_HANDSHAKE, MODE_BULK } bench_mode;

typedef struct bench {
    bench_mode mode;
    nana_quic_ep *client;
    uint16_t port;
    unsigned inflight;
    atomic_bool running;
    atomic_ullong ops;
    atomic_uint opened;
    atomic_uint closed;
    hist h; /* client I/O thread only */
    char ca[600];
} bench;

/* Sends one 64-byte request carrying its start time. */
static int start_rpc(nana_quic_conn *c)
{
    int64_t sid;
    if (nana_quic_stream_open(c, &sid)) return -1;
    uint8_t req[REQ_SIZE];
    memset(req, 'r', sizeof(req));
    uint64_t t = now_ns();
    memcpy(req + sizeof(req) - sizeof(t), &t, sizeof(t)); /* the last 8 bytes */
    return nana_quic_stream_send(c, sid, req, sizeof(req), 1);
}

static int cli_open(nana_quic_conn *c, void *user)
{
    bench *b = user;
    atomic_fetch_add(&b->opened, 1);
    if (b->mode == MODE_HANDSHAKE) {
        atomic_fetch_add(&b->ops, 1);
        nana_quic_conn_close(c, 0, NULL);
        return 0;
    }
    if (b->mode == MODE_RPC)
        for (unsigned i = 0; i < b->inflight; i++)
            start_rpc(c);
    return 0;
}

static void cli_close(nana_quic_conn *c, void *user)
{
    (void)c;
    bench *b = user;
    atomic_fetch_add(&b->closed, 1);
    if (b->mode == MODE_HANDSHAKE && atomic_load(&b->running)) {
        nana_quic_handle h;
        nana_quic_connect(b->client, "127.0.0.1", b->port, "localhost", NULL, 0, NULL, &h);
    }
}

static int cli_data(nana_quic_conn *c, int64_t sid, const uint8_t *data, size_t len, int fin,
                    int early, void *user)
{
    (void)sid;
    (void)early;
    bench *b = user;
    if (b->mode != MODE_RPC) return 0;
    /* The response's last 8 bytes are its start time: read them from the
     * chunk that ends the stream (a response may come in pieces). */
    if (fin && len >= sizeof(uint64_t)) {
        uint64_t t;
        memcpy(&t, data + len - sizeof(t), sizeof(t));
        hist_add(&b->h, now_ns() - t);
    }
    if (fin) {
        atomic_fetch_add_explicit(&b->ops, 1, memory_order_relaxed);
        if (atomic_load_explicit(&b->running, memory_order_relaxed)) start_rpc(c);
    }
    return 0;
}

/* ---- bulk pump (posted from the main thread) ------------------------- */

typedef struct pump {
    int64_t sid;
    bool opened;
    uint64_t sent, total, window;
    atomic_int done;
} pump;

static void pump_fn(nana_quic_conn *c, void *arg)
{
    pump *p = arg;
    static const uint8_t chunk[1 << 20]; /* never changes: sent by reference, not copied */
    if (c && !p->opened) {
        if (nana_quic_stream_open(c, &p->sid) == 0) p->opened = true;
    }
    while (c && p->opened && p->sent < p->total &&
           nana_quic_stream_unacked(c, p->sid) < p->window) {
        size_t n =
            p->total - p->sent < sizeof(chunk) ? (size_t)(p->total - p->sent) : sizeof(chunk);
        if (nana_quic_stream_send_ref(c, p->sid, chunk, n, p->sent + n == p->total, NULL, NULL))
            break;
        p->sent += n;
    }
    atomic_store(&p->done, 1);
}

/* ---- running a scenario ---------------------------------------------- */

static long g_server_pid; /* --server-pid: the external server's CPU is measured */

/* The server's CPU time so far (in-process endpoint or --server-pid). */
static uint64_t server_cpu_ns(nana_quic_ep *server)
{
    if (server) return nana_quic_ep_cpu_ns(server);
    return g_server_pid ? bench_proc_cpu_ns(g_server_pid) : 0;
}

typedef struct result {
    const char *name;
    unsigned conns, inflight;
    double secs, ops_per_sec, mb_per_sec;
    double p50, p99, p999;
    double server_cpu_us_per_op;
} result;

static nana_quic_ep *new_client(bench *b, const nana_quic_callbacks *cb)
{
    nana_quic_config cfg;
    nana_quic_config_init(&cfg);
    static const char *const alpn[] = {"nanasqlite"};
    cfg.ca_file = b->ca;
    cfg.alpn = alpn;
    cfg.nalpn = 1;
    cfg.cb = cb;
    cfg.user = b;
    nana_quic_ep *ep = NULL;
    if (nana_quic_ep_new(&cfg, &ep)) {
        fprintf(stderr, "client: %s\n", nana_errmsg());
        exit(1);
    }
    return ep;
}

static result run(nana_quic_ep *server, uint16_t port, const char *ca, bench_mode mode,
                  unsigned conns, unsigned inflight, double seconds)
{
    static const nana_quic_callbacks cb = {
        .conn_open = cli_open, .conn_close = cli_close, .stream_data = cli_data};
    bench *b = calloc(1, sizeof(*b));
    b->mode = mode;
    b->port = port;
    b->inflight = inflight;
    snprintf(b->ca, sizeof(b->ca), "%s", ca);
    atomic_store(&b->running, true);
    b->client = new_client(b, &cb);
    atomic_store(&server_sink, mode == MODE_BULK);
    atomic_store(&server_bytes, 0);
    nana_quic_handle hs[MAX_CONNS] = {0};
    for (unsigned i = 0; i < conns; i++) {
        if (nana_quic_connect(b->client, "127.0.0.1", port, "localhost", NULL, 0, NULL, &hs[i])) {
            fprintf(stderr, "connect: %s\n", nana_errmsg());
            exit(1);
        }
    }
    /* Wait for the connections (rpc, bulk) before the clock starts. */
    for (int i = 0; i < 5000 && mode != MODE_HANDSHAKE && atomic_load(&b->opened) < conns; i++)
        usleep(1000);
    uint64_t ops0 = atomic_load(&b->ops), cpu0 = server_cpu_ns(server);
    long long bytes0 = atomic_load(&server_bytes);
    uint64_t t0 = now_ns();
    pump p = {.total = UINT64_MAX / 2, .window = 32u << 20};
    while ((double)(now_ns() - t0) / 1e9 < seconds) {
        if (mode == MODE_BULK) {
            atomic_store(&p.done, 0);
            nana_quic_post(b->client, hs[0], pump_fn, &p);
            while (!atomic_load(&p.done))
                usleep(100);
            usleep(500);
        } else {
            usleep(10000);
        }
    }
    uint64_t t1 = now_ns();
    uint64_t ops = atomic_load(&b->ops) - ops0;
    uint64_t cpu = server_cpu_ns(server) - cpu0;
    long long bytes = atomic_load(&server_bytes) - bytes0;
    atomic_store(&b->running, false);
    if (getenv("NANA_BENCH_DEBUG")) {
        nana_quic_stats cs, ss;
        nana_quic_ep_stats(b->client, &cs);
        if (server) nana_quic_ep_stats(server, &ss);
        fprintf(stderr,
                "client: datagrams in %llu out %llu sends %llu; server: in %llu out %llu sends "
                "%llu\n",
                (unsigned long long)cs.datagrams_in, (unsigned long long)cs.datagrams_out,
                (unsigned long long)cs.sendmsg_calls,
                server ? (unsigned long long)ss.datagrams_in : 0,
                server ? (unsigned long long)ss.datagrams_out : 0,
                server ? (unsigned long long)ss.sendmsg_calls : 0);
    }
    nana_quic_ep_del(b->client);
    result r = {.conns = conns, .inflight = inflight};
    r.secs = (double)(t1 - t0) / 1e9;
    r.ops_per_sec = (double)ops / r.secs;
    r.mb_per_sec = (double)bytes / r.secs / 1e6;
    r.p50 = hist_quantile_us(&b->h, 0.50);
    r.p99 = hist_quantile_us(&b->h, 0.99);
    r.p999 = hist_quantile_us(&b->h, 0.999);
    double per = mode == MODE_BULK ? (double)bytes / (1 << 20) : (double)ops;
    r.server_cpu_us_per_op = per > 0 ? (double)cpu / 1000.0 / per : 0;
    free(b);
    return r;
}

static void print_result(const result *r, bool json)
{
    if (json) {
        printf("{\"scenario\":\"%s\",\"conns\":%u,\"inflight\":%u,\"seconds\":%.3f,"
               "\"ops_per_sec\":%.1f,\"mb_per_sec\":%.1f,\"p50_us\":%.1f,\"p99_us\":%.1f,"
               "\"p999_us\":%.1f,\"server_cpu_us_per_op\":%.2f}\n",
               r->name, r->conns, r->inflight, r->secs, r->ops_per_sec, r->mb_per_sec, r->p50,
               r->p99, r->p999, r->server_cpu_us_per_op);
    } else {
        printf("%-12s %5u %8u %12.0f %9.1f %9.1f %9.1f %10.1f %12.2f\n", r->name, r->conns,
               r->inflight, r->ops_per_sec, r->mb_per_sec, r->p50, r->p99, r->p999,
               r->server_cpu_us_per_op);
    }
    fflush(stdout);
}

/* The command line. */
typedef struct quic_args {
    double seconds;
    bool json;
    int scenario; /* index in scenario_words, -1: all */
    unsigned ext_port;
    const char *ext_ca;
    uint64_t server_pid;
} quic_args;

#define AT(m) NANA_OPT_AT(quic_args, m)

static const char *const scenario_words[] = {"rpc", "rpc16conns", "handshake", "bulk", NULL};

static const nana_opt rows[] = {
    {.name = "seconds",
     .kind = NANA_OPT_DOUBLE,
     AT(seconds),
     .dmin = 0.001,
     .dmax = 3600,
     .def = "3",
     .arg = "S",
     .help = "duration of each scenario"},
    {.name = "scenario",
     .kind = NANA_OPT_ENUM,
     AT(scenario),
     .words = scenario_words,
     .def_doc = "all",
     .help = "only this one"},
    {.name = "json", .kind = NANA_OPT_FLAG, AT(json), .help = "one JSON object per line"},
    {.name = "port",
     .kind = NANA_OPT_UINT,
     AT(ext_port),
     .min = 1,
     .max = 65535,
     .def_doc = "start one",
     .help = "load an external echo server on 127.0.0.1 (name localhost)"},
    {.name = "ca", .kind = NANA_OPT_PATH, AT(ext_ca), .help = "that server's CA (with --port)"},
    {.name = "server-pid",
     .kind = NANA_OPT_UINT,
     AT(server_pid),
     .min = 1,
     .max = 1u << 30,
     .arg = "PID",
     .def_doc = "the built-in server",
     .help = "whose CPU time is measured"},
};

int main(int argc, char **argv)
{
    quic_args a;
    memset(&a, 0, sizeof(a));
    a.scenario = -1;
    nana_opt_table table = {rows, sizeof(rows) / sizeof(rows[0]), &a};
    nana_opt_prog prog = {.name = "nanasqlite-bench-quic",
                          .about =
                              "The QUIC transport alone on loopback: echo RPCs, handshakes and "
                              "bulk transfer.\n",
                          .tables = &table,
                          .ntables = 1};
    int first;
    int status = nana_opt_report(&prog, nana_opt_parse(&prog, argc, argv, &first));
    if (status >= 0) return status;
    double seconds = a.seconds;
    bool json = a.json;
    const char *only = a.scenario >= 0 ? scenario_words[a.scenario] : NULL, *ext_ca = a.ext_ca,
               *trust = NULL;
    uint64_t ext_port = a.ext_port;
    if (a.server_pid) g_server_pid = (long)a.server_pid;
    /* Certificates in a scratch directory. */
    char dir[] = "/tmp/nanasqlite-bench-quic-XXXXXX";
    if (!mkdtemp(dir)) return 1;
    char files[NANA_DEV_CLIENT_KEY + 1][600];
    for (int i = 0; i <= NANA_DEV_CLIENT_KEY; i++)
        snprintf(files[i], sizeof(files[i]), "%s/%s", dir, nana_certgen_dev_names[i]);
    const char *ca = files[NANA_DEV_CA], *crt = files[NANA_DEV_SERVER],
               *key = files[NANA_DEV_SERVER_KEY];
    if (nana_certgen_dev_set(dir, "bench", 1, 0)) {
        fprintf(stderr, "certificates: %s\n", nana_errmsg());
        return 1;
    }
    static const nana_quic_callbacks scb = {.stream_data = srv_data};
    static const char *const alpn[] = {"nanasqlite"};
    nana_quic_config cfg;
    nana_quic_config_init(&cfg);
    cfg.server = 1;
    cfg.host = "127.0.0.1";
    cfg.cert_file = crt;
    cfg.key_file = key;
    cfg.alpn = alpn;
    cfg.nalpn = 1;
    cfg.max_streams_bidi = 1024;
    cfg.retry = NANA_QUIC_RETRY_NEVER;
    cfg.cb = &scb;
    nana_quic_ep *server = NULL;
    if (!ext_port && nana_quic_ep_new(&cfg, &server)) {
        fprintf(stderr, "server: %s\n", nana_errmsg());
        return 1;
    }
    uint16_t port = ext_port ? (uint16_t)ext_port : nana_quic_ep_port(server);
    trust = ext_ca ? ext_ca : ca;
    if (!json) {
        printf("QUIC transport echo benchmark: client and server on 127.0.0.1, one I/O thread "
               "each, %.0f s per row\n",
               seconds);
        printf("%-12s %5s %8s %12s %9s %9s %9s %10s %12s\n", "scenario", "conns", "inflight",
               "ops/s", "MB/s", "p50 us", "p99 us", "p99.9 us", "srv cpu us/op");
    }
    static const unsigned inflights[] = {1, 16, 64, 256};
    for (size_t i = 0; i < 4; i++) {
        if (only && strcmp(only, "rpc") != 0) break;
        result r = run(server, port, trust, MODE_RPC, 1, inflights[i], seconds);
        r.name = "rpc";
        print_result(&r, json);
    }
    if (!only || !strcmp(only, "rpc16conns")) {
        result r = run(server, port, trust, MODE_RPC, 16, 16, seconds);
        r.name = "rpc";
        print_result(&r, json);
    }
    if (!only || !strcmp(only, "handshake")) {
        result r = run(server, port, trust, MODE_HANDSHAKE, 1, 0, seconds);
        r.name = "handshake";
        print_result(&r, json);
        if (server && getenv("NANA_BENCH_DEBUG")) {
            nana_quic_stats st;
            usleep(500000);
            nana_quic_ep_stats(server, &st);
            fprintf(stderr, "server: accepted %llu open %llu done %llu\n",
                    (unsigned long long)st.conns_accepted, (unsigned long long)st.conns_open,
                    (unsigned long long)st.handshakes_done);
        }
    }
    if (ext_port && only && !strcmp(only, "bulk"))
        fprintf(stderr, "bulk needs the in-process server (an echo server would send it all "
                        "back)\n");
    if (!ext_port && (!only || !strcmp(only, "bulk"))) {
        result r = run(server, port, trust, MODE_BULK, 1, 0, seconds);
        r.name = "bulk";
        r.ops_per_sec = 0;
        print_result(&r, json);
    }
    nana_quic_ep_del(server);
    for (int i = 0; i <= NANA_DEV_CLIENT_KEY; i++)
        unlink(files[i]);
    rmdir(dir);
    return 0;
}
