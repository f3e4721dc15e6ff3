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

static const char usage[] =
    "usage:\n"
    "  nanasqlite-quic-echo certs DIR\n"
    "      write a test CA, server and client certificates into DIR\n"
    "  nanasqlite-quic-echo server --listen HOST:PORT --cert F --key F [--ca F]\n"
    "      [--client-cert ignore|request|require] [--alpn NAME] [--require-alpn]\n"
    "      [--threads N] [--retry auto|always|never] [--0rtt] [--ready-file F]\n"
    "      [--max-seconds N] [--max-streams N]\n"
    "  nanasqlite-quic-echo client --connect HOST:PORT --ca F [--server-name N]\n"
    "      [--alpn NAME] [--cert F --key F] [--streams N] [--size BYTES] [--timeout S]\n";

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

/* Parses the numeric value |v| of |flag| in [lo, hi]; prints why and returns
 * -1 when it is not one. */
static int num_flag(const char *flag, const char *v, uint64_t lo, uint64_t hi, uint64_t *out)
{
    if (nana_parse_u64(v, lo, hi, out) == 0) return 0;
    fprintf(stderr, "%s must be a whole number in [%llu, %llu], got '%s'\n", flag,
            (unsigned long long)lo, (unsigned long long)hi, v);
    return -1;
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

static int cmd_server(int argc, char **argv)
{
    nana_quic_config cfg;
    nana_quic_config_init(&cfg);
    cfg.server = 1;
    cfg.allow_no_alpn = 1;
    char host[128] = "127.0.0.1";
    uint16_t port = 0;
    const char *alpn[1] = {"nanasqlite"};
    const char *ready = NULL;
    uint64_t max_seconds = 120, threads = 1, max_streams = 100;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--require-alpn")) {
            cfg.allow_no_alpn = 0;
            continue;
        }
        if (!strcmp(a, "--0rtt")) {
            cfg.enable_0rtt = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "%s needs a value\n%s", a, usage);
            return 2;
        }
        i++;
        if (!strcmp(a, "--listen")) {
            if (split_hostport(v, host, sizeof(host), &port))
                return fprintf(stderr, "bad --listen\n"), 2;
        } else if (!strcmp(a, "--cert")) {
            cfg.cert_file = v;
        } else if (!strcmp(a, "--key")) {
            cfg.key_file = v;
        } else if (!strcmp(a, "--ca")) {
            cfg.ca_file = v;
        } else if (!strcmp(a, "--client-cert")) {
            cfg.client_auth = !strcmp(v, "require")   ? NANA_QUIC_CLIENT_CERT_REQUIRE
                              : !strcmp(v, "request") ? NANA_QUIC_CLIENT_CERT_REQUEST
                                                      : NANA_QUIC_CLIENT_CERT_IGNORE;
        } else if (!strcmp(a, "--alpn")) {
            alpn[0] = v;
        } else if (!strcmp(a, "--threads")) {
            if (num_flag(a, v, 1, 64, &threads)) return 2;
            cfg.threads = (unsigned)threads;
        } else if (!strcmp(a, "--retry")) {
            cfg.retry = !strcmp(v, "always")  ? NANA_QUIC_RETRY_ALWAYS
                        : !strcmp(v, "never") ? NANA_QUIC_RETRY_NEVER
                                              : NANA_QUIC_RETRY_AUTO;
        } else if (!strcmp(a, "--ready-file")) {
            ready = v;
        } else if (!strcmp(a, "--max-seconds")) {
            if (num_flag(a, v, 1, 86400, &max_seconds)) return 2;
        } else if (!strcmp(a, "--max-streams")) {
            if (num_flag(a, v, 1, 1u << 20, &max_streams)) return 2;
            cfg.max_streams_bidi = (unsigned)max_streams;
        } else {
            fprintf(stderr, "unknown option %s\n%s", a, usage);
            return 2;
        }
    }
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

static int cmd_client(int argc, char **argv)
{
    nana_quic_config cfg;
    nana_quic_config_init(&cfg);
    char host[128] = "127.0.0.1";
    uint16_t port = 0;
    const char *server_name = "localhost", *alpn[1] = {"nanasqlite"};
    uint64_t nstreams = 1, size = 1000, timeout = 30;
    bool no_alpn = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--no-alpn")) {
            no_alpn = true;
            continue;
        }
        if (!v) {
            fprintf(stderr, "%s needs a value\n%s", a, usage);
            return 2;
        }
        i++;
        if (!strcmp(a, "--connect")) {
            if (split_hostport(v, host, sizeof(host), &port))
                return fprintf(stderr, "bad --connect\n"), 2;
        } else if (!strcmp(a, "--ca")) {
            cfg.ca_file = v;
        } else if (!strcmp(a, "--server-name")) {
            server_name = v;
        } else if (!strcmp(a, "--alpn")) {
            alpn[0] = v;
        } else if (!strcmp(a, "--cert")) {
            cfg.cert_file = v;
        } else if (!strcmp(a, "--key")) {
            cfg.key_file = v;
        } else if (!strcmp(a, "--streams")) {
            if (num_flag(a, v, 0, 1000000, &nstreams)) return 2;
        } else if (!strcmp(a, "--size")) {
            if (num_flag(a, v, 0, (uint64_t)1 << 34, &size)) return 2;
        } else if (!strcmp(a, "--timeout")) {
            if (num_flag(a, v, 1, 86400, &timeout)) return 2;
        } else {
            fprintf(stderr, "unknown option %s\n%s", a, usage);
            return 2;
        }
    }
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
    int status = 1;
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
    if (argc < 2 || !strcmp(argv[1], "--help")) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "certs") && argc == 3) return cmd_certs(argv[2]);
    if (!strcmp(argv[1], "server")) return cmd_server(argc - 2, argv + 2);
    if (!strcmp(argv[1], "client")) return cmd_client(argc - 2, argv + 2);
    fputs(usage, stderr);
    return 2;
}
