/*
 * quic_echo.c - nanasqlite-quic-echo: the QUIC transport alone, as an echo
 * server and client, for interop tests against independent QUIC stacks and
 * for trying the transport by hand.
 *
 *   nanasqlite-quic-echo certs DIR
 *   nanasqlite-quic-echo server --listen HOST:PORT --cert F --key F [options]
 *   nanasqlite-quic-echo client --connect HOST:PORT --ca F [options]
 *
 * The server sends back every stream's bytes and FINs when the client does.
 * The client opens --streams streams, sends --size bytes of a fixed pattern
 * on each, checks the echo byte for byte and prints "ok streams=N bytes=T".
 */
#include "auth/nana_certgen.h"
#include "quic/nana_quic.h"
#include "util/nana_opt.h"
#include "util/nana_parse.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char about[] =
    "The QUIC transport alone, as an echo server and client:\n"
    "  nanasqlite-quic-echo certs DIR       write a test CA, server and client certificates\n"
    "  nanasqlite-quic-echo server [options] echo every stream back (server --help)\n"
    "  nanasqlite-quic-echo client [options] send streams and check the echo (client --help)\n";

static uint8_t pattern(uint64_t i, uint8_t seed)
{
    return (uint8_t)(i * 131u + (i >> 9) * 7u + seed);
}

/* Splits HOST:PORT (IPv6 as [addr]:port) into |host| and *port. */
static int split_hostport(const char *s, char *host, size_t n, uint16_t *port)
{
    const char *colon = strrchr(s, ':');
    if (!colon) return -1;
    const char *h = s;
    size_t hl = (size_t)(colon - s);
    if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    if (hl >= n) return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    uint64_t p;
    if (nana_parse_u64(colon + 1, 0, 65535, &p) != 0) return -1;
    *port = (uint16_t)p;
    return 0;
}

/* Where --listen or --connect points. */
typedef struct endpoint_addr {
    char host[128];
    uint16_t port;
} endpoint_addr;

/* Reads HOST:PORT (IPv6 as [addr]:port) into an endpoint_addr. */
static int parse_hostport(const nana_opt *row, const char *v, void *field)
{
    (void)row;
    endpoint_addr *a = field;
    if (split_hostport(v, a->host, sizeof(a->host), &a->port))
        return nana_err_set(NANA_ERR_INVALID,
                            "\"%.64s\" is not HOST:PORT (port 0..65535, [IPv6]:PORT)", v);
    return 0;
}

static int die(const char *what)
{
    fprintf(stderr, "error: %s: %s\n", what, nana_errmsg());
    return 1;
}

/* ---- certs --------------------------------------------------------------- */

static int cmd_certs(const char *dir)
{
    if (nana_certgen_dev_set(dir, "echo-client", 7, 1)) return die("certificates");
    return 0;
}

/* ---- server -------------------------------------------------------------- */

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
    (void)sig;
    stop_signal = 1;
}

static int srv_data(nana_quic_conn *c, int64_t sid, const uint8_t *data, size_t len, int fin,
                    int early, void *user)
{
    (void)early;
    (void)user;
    if (!len && !fin) return 0;
    return nana_quic_stream_send(c, sid, data, len, fin) ? -1 : 0;
}

/* The server's command line. */
typedef struct srv_args {
    nana_quic_config cfg;
    endpoint_addr listen;
    const char *alpn, *ready;
    unsigned max_seconds;
    bool require_alpn;
} srv_args;

#define SAT(member) NANA_OPT_AT(srv_args, member)

static const char *const client_cert_words[] = {"ignore", "request", "require", NULL};
static const int client_cert_values[] = {
    NANA_QUIC_CLIENT_CERT_IGNORE, NANA_QUIC_CLIENT_CERT_REQUEST, NANA_QUIC_CLIENT_CERT_REQUIRE};
static const char *const retry_words[] = {"auto", "always", "never", NULL};
static const int retry_values[] = {NANA_QUIC_RETRY_AUTO, NANA_QUIC_RETRY_ALWAYS,
                                   NANA_QUIC_RETRY_NEVER};

static const nana_opt srv_rows[] = {
    {.name = "listen",
     .kind = NANA_OPT_CUSTOM,
     SAT(listen),
     .parse = parse_hostport,
     .def = "127.0.0.1:0",
     .arg = "HOST:PORT",
     .help = "address and UDP port (0: a free one)"},
    {.name = "cert", .kind = NANA_OPT_PATH, SAT(cfg.cert_file), .help = "certificate chain (PEM)"},
    {.name = "key", .kind = NANA_OPT_PATH, SAT(cfg.key_file), .help = "its private key (PEM)"},
    {.name = "ca", .kind = NANA_OPT_PATH, SAT(cfg.ca_file), .help = "CA for client certificates"},
    {.name = "client-cert",
     .kind = NANA_OPT_ENUM,
     SAT(cfg.client_auth),
     .words = client_cert_words,
     .values = client_cert_values,
     .def = "ignore",
     .help = "ask clients for a certificate"},
    {.name = "alpn",
     .kind = NANA_OPT_STRING,
     SAT(alpn),
     .def = "nanasqlite",
     .arg = "NAME",
     .help = "protocol accepted"},
    {.name = "require-alpn",
     .kind = NANA_OPT_FLAG,
     SAT(require_alpn),
     .help = "refuse clients that offer no ALPN"},
    {.name = "threads",
     .kind = NANA_OPT_UINT,
     SAT(cfg.threads),
     .min = 1,
     .max = 64,
     .def = "1",
     .help = "I/O threads"},
    {.name = "retry",
     .kind = NANA_OPT_ENUM,
     SAT(cfg.retry),
     .words = retry_words,
     .values = retry_values,
     .def = "auto",
     .help = "when to send a Retry"},
    {.name = "0rtt",
     .kind = NANA_OPT_FLAG,
     SAT(cfg.enable_0rtt),
     .help = "session tickets with early data"},
    {.name = "ready-file",
     .kind = NANA_OPT_PATH,
     SAT(ready),
     .help = "the port is written here once listening"},
    {.name = "max-seconds",
     .kind = NANA_OPT_UINT,
     SAT(max_seconds),
     .min = 1,
     .max = 86400,
     .def = "120",
     .help = "stop after this long"},
    {.name = "max-streams",
     .kind = NANA_OPT_UINT,
     SAT(cfg.max_streams_bidi),
     .min = 1,
     .max = 1u << 20,
     .def = "100",
     .help = "streams in flight per connection"},
};

static int cmd_server(int argc, char **argv)
{
    srv_args a;
    memset(&a, 0, sizeof(a));
    nana_quic_config_init(&a.cfg);
    nana_opt_table table = {srv_rows, sizeof(srv_rows) / sizeof(srv_rows[0]), &a};
    nana_opt_prog prog = {.name = "nanasqlite-quic-echo server",
                          .about = "Echoes every stream back and FINs when the client does.\n",
                          .tables = &table,
                          .ntables = 1};
    int first;
    int status = nana_opt_report(&prog, nana_opt_parse(&prog, argc, argv, &first));
    if (status >= 0) return status;
    nana_quic_config cfg = a.cfg;
    cfg.server = 1;
    cfg.allow_no_alpn = !a.require_alpn;
    const char *alpn[1] = {a.alpn};
    const char *host = a.listen.host, *ready = a.ready;
    uint16_t port = a.listen.port;
    uint64_t max_seconds = a.max_seconds;
    static const nana_quic_callbacks cb = {.stream_data = srv_data};
    cfg.host = host;
    cfg.port = port;
    cfg.alpn = alpn;
    cfg.nalpn = 1;
    cfg.cb = &cb;
    nana_quic_ep *ep;
    if (nana_quic_ep_new(&cfg, &ep)) return die("server");
    printf("listening on %s:%u\n", host, nana_quic_ep_port(ep));
    fflush(stdout);
    if (ready) {
        char tmp[1100];
        snprintf(tmp, sizeof(tmp), "%s.tmp", ready);
        FILE *f = fopen(tmp, "w");
        if (f) {
            fprintf(f, "%u\n", nana_quic_ep_port(ep));
            fclose(f);
            rename(tmp, ready);
        }
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    for (uint64_t t = 0; !stop_signal && t < max_seconds * 10; t++)
        usleep(100000);
    nana_quic_ep_del(ep);
    return 0;
}

/* ---- client -------------------------------------------------------------- */

typedef struct cli_stream {
    int64_t sid;
    uint64_t got;
    bool fin, bad;
} cli_stream;

typedef struct cli {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool opened, closed;
    uint64_t code;
    int has_code, is_app;
    cli_stream *streams;
    size_t nstreams, opened_streams, fins;
    size_t size;
} cli;

static int cli_open(nana_quic_conn *c, void *user)
{
    (void)c;
    cli *k = user;
    pthread_mutex_lock(&k->mu);
    k->opened = true;
    pthread_cond_broadcast(&k->cv);
    pthread_mutex_unlock(&k->mu);
    return 0;
}

static void cli_close(nana_quic_conn *c, void *user)
{
    cli *k = user;
    pthread_mutex_lock(&k->mu);
    k->closed = true;
    k->has_code = nana_quic_conn_peer_error(c, &k->code, &k->is_app);
    pthread_cond_broadcast(&k->cv);
    pthread_mutex_unlock(&k->mu);
}

static int cli_data(nana_quic_conn *c, int64_t sid, const uint8_t *data, size_t len, int fin,
                    int early, void *user)
{
    (void)c;
    (void)early;
    cli *k = user;
    pthread_mutex_lock(&k->mu);
    for (size_t i = 0; i < k->opened_streams; i++) {
        cli_stream *s = &k->streams[i];
        if (s->sid != sid) continue;
        for (size_t j = 0; j < len && !s->bad; j++)
            if (data[j] != pattern(s->got + j, (uint8_t)i)) s->bad = true;
        s->got += len;
        if (fin && !s->fin) {
            s->fin = true;
            k->fins++;
            pthread_cond_broadcast(&k->cv);
        }
    }
    pthread_mutex_unlock(&k->mu);
    return 0;
}

/* On the I/O thread: opens every stream it can and sends its bytes. */
static void cli_send(nana_quic_conn *c, void *arg)
{
    cli *k = arg;
    if (!c) return;
    uint8_t *buf = malloc(k->size ? k->size : 1);
    if (!buf) return;
    pthread_mutex_lock(&k->mu);
    while (k->opened_streams < k->nstreams) {
        int64_t sid;
        if (nana_quic_stream_open(c, &sid)) break; /* stream limit: try again later */
        size_t i = k->opened_streams++;
        k->streams[i].sid = sid;
        for (size_t j = 0; j < k->size; j++)
            buf[j] = pattern(j, (uint8_t)i);
        nana_quic_stream_send(c, sid, buf, k->size, 1);
    }
    pthread_mutex_unlock(&k->mu);
    free(buf);
}

/* The client's command line. */
typedef struct cli_args {
    nana_quic_config cfg;
    endpoint_addr connect;
    const char *server_name, *alpn;
    uint64_t nstreams, size;
    unsigned timeout;
    bool no_alpn;
} cli_args;

#define CAT(member) NANA_OPT_AT(cli_args, member)

static const nana_opt cli_rows[] = {
    {.name = "connect",
     .kind = NANA_OPT_CUSTOM,
     CAT(connect),
     .parse = parse_hostport,
     .def = "127.0.0.1:4433",
     .arg = "HOST:PORT",
     .help = "the server"},
    {.name = "ca",
     .kind = NANA_OPT_PATH,
     CAT(cfg.ca_file),
     .def_doc = "the system store",
     .help = "CA to check the server with"},
    {.name = "server-name",
     .kind = NANA_OPT_STRING,
     CAT(server_name),
     .def = "localhost",
     .arg = "NAME",
     .help = "name the server certificate must carry"},
    {.name = "alpn",
     .kind = NANA_OPT_STRING,
     CAT(alpn),
     .def = "nanasqlite",
     .arg = "NAME",
     .help = "protocol offered"},
    {.name = "no-alpn", .kind = NANA_OPT_FLAG, CAT(no_alpn), .help = "offer no ALPN"},
    {.name = "cert", .kind = NANA_OPT_PATH, CAT(cfg.cert_file), .help = "client certificate"},
    {.name = "key", .kind = NANA_OPT_PATH, CAT(cfg.key_file), .help = "its private key"},
    {.name = "streams",
     .kind = NANA_OPT_UINT,
     CAT(nstreams),
     .min = 0,
     .max = 1000000,
     .def = "1",
     .help = "streams to open"},
    {.name = "size",
     .kind = NANA_OPT_UINT,
     CAT(size),
     .min = 0,
     .max = (uint64_t)1 << 34,
     .def = "1000",
     .arg = "BYTES",
     .help = "bytes sent on each stream"},
    {.name = "timeout",
     .kind = NANA_OPT_UINT,
     CAT(timeout),
     .min = 1,
     .max = 86400,
     .def = "30",
     .arg = "SEC",
     .help = "give up after this long"},
};

static int cmd_client(int argc, char **argv)
{
    cli_args a;
    memset(&a, 0, sizeof(a));
    nana_quic_config_init(&a.cfg);
    nana_opt_table table = {cli_rows, sizeof(cli_rows) / sizeof(cli_rows[0]), &a};
    nana_opt_prog prog = {
        .name = "nanasqlite-quic-echo client",
        .about = "Opens --streams streams, sends --size bytes on each, checks the echo byte for\n"
                 "byte and prints \"ok streams=N bytes=T\".\n",
        .tables = &table,
        .ntables = 1};
    int first;
    int status = nana_opt_report(&prog, nana_opt_parse(&prog, argc, argv, &first));
    if (status >= 0) return status;
    nana_quic_config cfg = a.cfg;
    const char *host = a.connect.host, *server_name = a.server_name, *alpn[1] = {a.alpn};
    uint16_t port = a.connect.port;
    uint64_t nstreams = a.nstreams, size = a.size, timeout = a.timeout;
    bool no_alpn = a.no_alpn;
    cli k;
    memset(&k, 0, sizeof(k));
    pthread_mutex_init(&k.mu, NULL);
    pthread_cond_init(&k.cv, NULL);
    k.nstreams = (size_t)nstreams;
    k.size = (size_t)size;
    k.streams = calloc(k.nstreams ? k.nstreams : 1, sizeof(*k.streams));
    static const nana_quic_callbacks cb = {
        .conn_open = cli_open, .conn_close = cli_close, .stream_data = cli_data};
    cfg.cb = &cb;
    cfg.user = &k;
    cfg.alpn = no_alpn ? NULL : alpn;
    cfg.nalpn = no_alpn ? 0 : 1;
    nana_quic_ep *ep;
    if (nana_quic_ep_new(&cfg, &ep)) return die("client");
    nana_quic_handle h;
    if (nana_quic_connect(ep, host, port, server_name, NULL, 0, NULL, &h)) {
        nana_quic_ep_del(ep);
        return die("connect");
    }
    time_t deadline = time(NULL) + (time_t)timeout;
    status = 1;
    pthread_mutex_lock(&k.mu);
    while (!k.opened && !k.closed && time(NULL) < deadline) {
        struct timespec ts = {time(NULL) + 1, 0};
        pthread_cond_timedwait(&k.cv, &k.mu, &ts);
    }
    while (k.opened && !k.closed && k.fins < k.nstreams && time(NULL) < deadline) {
        pthread_mutex_unlock(&k.mu);
        nana_quic_post(ep, h, cli_send, &k);
        usleep(2000);
        pthread_mutex_lock(&k.mu);
    }
    size_t bad = 0;
    uint64_t total = 0;
    for (size_t i = 0; i < k.opened_streams; i++) {
        bad += k.streams[i].bad || k.streams[i].got != size;
        total += k.streams[i].got;
    }
    if (k.fins == k.nstreams && !bad) {
        printf("ok streams=%zu bytes=%llu\n", k.nstreams, (unsigned long long)total);
        status = 0;
    } else if (k.closed) {
        fprintf(stderr, "error: connection closed (peer error %s0x%llx)\n",
                k.has_code ? (k.is_app ? "app " : "") : "none, ", (unsigned long long)k.code);
    } else {
        fprintf(stderr, "error: %s after %llus (%zu/%zu streams echoed, %zu bad)\n",
                k.opened ? "timeout" : "no handshake", (unsigned long long)timeout, k.fins,
                k.nstreams, bad);
    }
    pthread_mutex_unlock(&k.mu);
    nana_quic_ep_del(ep);
    free(k.streams);
    return status;
}

int main(int argc, char **argv)
{
    nana_opt_prog prog = {.name = "nanasqlite-quic-echo",
                          .usage = "certs DIR | server [options] | client [options]",
                          .about = about,
                          .positional = 1};
    int first;
    int status = nana_opt_report(&prog, nana_opt_parse(&prog, argc, argv, &first));
    if (status >= 0) return status;
    const char *cmd = first < argc ? argv[first] : "";
    if (!strcmp(cmd, "certs") && argc - first == 2) return cmd_certs(argv[first + 1]);
    if (!strcmp(cmd, "server")) return cmd_server(argc - first, argv + first);
    if (!strcmp(cmd, "client")) return cmd_client(argc - first, argv + first);
    fprintf(stderr, "nanasqlite-quic-echo: %s (see --help)\n",
            *cmd ? "unknown command or wrong arguments" : "a command is needed");
    return 2;
}
