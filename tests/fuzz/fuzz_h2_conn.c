/*
 * fuzz_h2_conn.c - libFuzzer harness for the gRPC door's HTTP/2
 * connection (src/door_grpc/h2conn.c) fed raw bytes as they come out of
 * TLS: nghttp2 frames them, and every callback of ours (the flood guard,
 * request heads, bodies, ends, resets, closes) gets whatever nghttp2 hands
 * it, with the real door, call core and store behind.
 *
 * The TCP connection is faked here (the nana_tcp_* functions the door
 * calls): it takes what the door sends, with a send buffer that fills
 * (so the door's backpressure path runs), a clock the input advances, and
 * one timer. Everything runs on one loop thread, as on the server: each
 * input is a post to it; answers of the core's workers come back to it.
 *
 * Input: byte 0 picks how the rest is cut into pieces (and how small the
 * send buffer is); the rest follows the client preface and an empty
 * SETTINGS frame the harness sends first.
 *
 * Whatever the bytes: no crash, no leak, no sanitizer report; the door
 * holds no request bytes once the connection is gone.
 */
#include "door_grpc/nana_gdoor.h"
#include "tcp/nana_tcp.h"
#include "util/nana_log.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct nana_tcp_conn {
    void *user;
    nana_loop *loop;
    uint64_t now, timer;
    size_t queued, cap;
    bool closed;
    nana_cert_identity id;
};

void nana_tcp_conn_set_user(nana_tcp_conn *c, void *user)
{
    c->user = user;
}
uint64_t nana_tcp_conn_handle(const nana_tcp_conn *c)
{
    (void)c;
    return 1;
}
nana_loop *nana_tcp_conn_loop(const nana_tcp_conn *c)
{
    return c->loop;
}
uint64_t nana_tcp_conn_now(const nana_tcp_conn *c)
{
    return c->now;
}
int nana_tcp_send(nana_tcp_conn *c, const void *p, size_t n)
{
    (void)p;
    c->queued += n;
    return 0;
}
size_t nana_tcp_send_room(const nana_tcp_conn *c)
{
    return c->queued < c->cap ? c->cap - c->queued : 0;
}
void nana_tcp_conn_set_timer(nana_tcp_conn *c, uint64_t when_ns)
{
    c->timer = when_ns;
}
const nana_cert_identity *nana_tcp_conn_identity(const nana_tcp_conn *c)
{
    return &c->id;
}
int nana_tcp_conn_exporter(const nana_tcp_conn *c, const char *label, const uint8_t *ctx,
                           size_t ctxlen, uint8_t *out, size_t outlen)
{
    (void)c;
    (void)label;
    (void)ctx;
    (void)ctxlen;
    memset(out, 7, outlen);
    return 0;
}
const char *nana_tcp_conn_alpn(const nana_tcp_conn *c)
{
    (void)c;
    return "h2";
}
void nana_tcp_conn_peer(const nana_tcp_conn *c, struct sockaddr_storage *a, socklen_t *len)
{
    (void)c;
    memset(a, 0, sizeof(*a));
    struct sockaddr_in *in = (struct sockaddr_in *)a;
    in->sin_family = AF_INET;
    in->sin_addr.s_addr = htonl(0x7f000001);
    *len = sizeof(*in);
}
int nana_tcp_conn_trust(nana_tcp_conn *c)
{
    (void)c;
    return 0;
}
void nana_tcp_conn_engage(nana_tcp_conn *c)
{
    (void)c;
}
void nana_tcp_conn_close(nana_tcp_conn *c, int graceful)
{
    (void)graceful;
    c->closed = true;
}

/* ---- the door, made once ---------------------------------------------------------- */

static nana_core *g_core;
static nana_gdoor *g_door;
static nana_loop *g_loop;
static nana_accounts *g_accounts;

static nana_accounts *acc_get(void *ctx, uint64_t *gen)
{
    (void)ctx;
    *gen = 1;
    return nana_accounts_ref(g_accounts);
}

static uint64_t acc_gen(void *ctx)
{
    (void)ctx;
    return 1;
}

static void setup(void)
{
    nana_log_set_level(NANA_LOG_ERROR);
    if (sodium_init() < 0) abort();
    char dir[] = "/tmp/fuzz-h2-XXXXXX";
    if (!mkdtemp(dir)) abort();
    static char dbdir[64], db[96];
    snprintf(dbdir, sizeof(dbdir), "%s", dir);
    snprintf(db, sizeof(db), "%s/main.sqlite", dir);
    nana_core_opts co;
    nana_core_opts_init(&co);
    co.db_dir = dbdir;
    co.db_path = db;
    co.workers = 1;
    if (nana_core_new(&co, &g_core)) abort();
    uint8_t pk[32], sk[64];
    crypto_sign_keypair(pk, sk);
    if (nana_accounts_single(pk, "default", &g_accounts)) abort();
    nana_gdoor_opts o;
    nana_gdoor_opts_init(&o);
    o.no_bans = 1;
    nana_door_accounts acc = {acc_get, acc_gen, NULL};
    if (nana_gdoor_new(g_core, &o, NULL, &acc, NULL, &g_door)) abort();
    if (nana_loop_new("fuzz-h2", &g_loop) || nana_loop_start(g_loop)) abort();
}

/* ---- one input, on the loop's thread ------------------------------------------------- */

typedef struct job {
    struct nana_loop_post post; /* first */
    const uint8_t *data;
    size_t size;
    sem_t done;
} job;

static const uint8_t preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
                                 "\x00\x00\x00\x04\x00\x00\x00\x00\x00";

static void run_job(nana_loop *loop, struct nana_loop_post *p)
{
    job *j = (job *)(void *)p;
    if (!loop) {
        sem_post(&j->done);
        return;
    }
    const nana_tcp_callbacks *cb = &nana_gdoor_tcp_callbacks;
    nana_tcp_conn c;
    memset(&c, 0, sizeof(c));
    c.loop = loop;
    c.now = 1000000000ull;
    uint8_t mode = j->size ? j->data[0] : 0;
    c.cap = (mode & 0x80) ? 4096 : 1u << 20;
    if (cb->conn_open(&c, g_door) == 0) {
        if (!c.closed) (void)cb->recv(&c, c.user, preface, sizeof(preface) - 1);
        size_t piece = (size_t)(mode & 0x0f) * 7 + 1;
        for (size_t off = 1; off < j->size && !c.closed;) {
            size_t n = j->size - off < piece ? j->size - off : piece;
            if (cb->recv(&c, c.user, j->data + off, n)) break;
            off += n;
            c.now += 1000000ull * (mode & 0x70);
            if (c.queued >= c.cap) { /* the peer reads: the buffer drains */
                c.queued = 0;
                cb->writable(&c, c.user);
            }
        }
        if (c.timer && !c.closed) {
            c.now = c.timer + 600ull * 1000000000ull;
            cb->timer(&c, c.user);
        }
        cb->conn_close(&c, c.user);
    }
    sem_post(&j->done);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, setup);
    job j = {.data = data, .size = size};
    j.post.run = run_job;
    sem_init(&j.done, 0, 0);
    nana_loop_post(g_loop, &j.post);
    while (sem_wait(&j.done) != 0 && errno == EINTR) /* libFuzzer's alarms interrupt */
        ;
    sem_destroy(&j.done);
    /* Answers the workers made after the connection went are released on
     * the loop: wait for them so the next input starts clean. */
    nana_gdoor_stats st;
    for (int i = 0; i < 2000; i++) {
        nana_gdoor_get_stats(g_door, &st);
        if (!st.buffered_bytes) break;
        usleep(1000);
    }
    nana_gdoor_get_stats(g_door, &st);
    if (st.buffered_bytes) {
        fprintf(stderr, "request bytes still held after the connection closed: %llu\n",
                (unsigned long long)st.buffered_bytes);
        abort();
    }
    return 0;
}
