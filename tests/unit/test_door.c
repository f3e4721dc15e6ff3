/*
 * test_door.c - the NanaSQLite door on a fake connection: no socket, no
 * QUIC, a clock the test moves. The fake records what the door sends on
 * each stream, resets and closes, and runs the door's posted replies when
 * the test says (as the connection's thread would). Behind the door runs
 * the real call core on a scratch database.
 *
 * Login, calls answered at once and later, the limits that are the door's
 * own (frames before login, request deadlines, replies nobody reads), and
 * the failure paths the way SQLite tests them: every allocation along a
 * call's path made to fail in turn, and each time the client still gets
 * an answer on its stream (a reply or a reset), nothing leaks (ASan), and
 * the session goes on serving.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "door_nana/door_int.h"
#include "test_util.h"
#include "util/nana_mem.h"
#include "util/nana_time.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- the fake connection ----------------------------------------------------- */

#define MAX_SIDS 64

typedef struct fstream {
    nana_buf out; /* what the door sent */
    bool fin, reset;
    uint64_t reset_code;
} fstream;

typedef struct fconn {
    nana_session *s;
    fstream st[MAX_SIDS];
    uint64_t now;
    uint64_t timer;
    bool trusted, engaged, closed;
    uint64_t close_code;
    uint64_t held, acked; /* what send_state says */
    /* posted replies, waiting for the "connection's thread" (the test) */
    pthread_mutex_t mu;
    nana_door_post *posts[4096];
    size_t nposts;
    /* releases the door asked for, run when the test says the peer has the bytes */
    void (*rel[4096])(void *);
    void *relctx[4096];
    size_t nrel;
} fconn;

static fstream *fs(fconn *c, int64_t sid)
{
    assert_true(sid >= 0 && sid / 4 < MAX_SIDS);
    return &c->st[sid / 4];
}

static int f_send(void *conn, int64_t sid, const void *data, size_t len, int fin,
                  void (*release)(void *), void *ctx)
{
    fconn *c = conn;
    fstream *s = fs(c, sid);
    if (s->fin || s->reset) return nana_err_set(NANA_ERR_INVALID, "stream finished");
    int rc = nana_buf_append(&s->out, data, len);
    if (rc) return rc;
    s->fin = fin != 0;
    c->held += len;
    if (release) {
        assert_true(c->nrel < 4096);
        c->rel[c->nrel] = release;
        c->relctx[c->nrel++] = ctx;
    }
    return NANA_OK;
}

static int f_reset(void *conn, int64_t sid, uint64_t code)
{
    fstream *s = fs(conn, sid);
    s->reset = true;
    s->reset_code = code;
    return NANA_OK;
}

static int f_close(void *conn, uint64_t code, const char *reason)
{
    (void)reason;
    fconn *c = conn;
    c->closed = true;
    c->close_code = code;
    return NANA_OK;
}

static int f_trust(void *conn)
{
    ((fconn *)conn)->trusted = true;
    return NANA_OK;
}

static void f_engage(void *conn)
{
    ((fconn *)conn)->engaged = true;
}

static void f_set_timer(void *conn, uint64_t when)
{
    ((fconn *)conn)->timer = when;
}

static uint64_t f_now(void *conn)
{
    return ((fconn *)conn)->now;
}

static void f_send_state(void *conn, uint64_t *held, uint64_t *acked)
{
    fconn *c = conn;
    *held = c->held;
    *acked = c->acked;
}

static fconn *the_conn; /* one connection per test */

static void f_post(void *ep, uint64_t handle, nana_door_post *p)
{
    (void)ep;
    (void)handle;
    fconn *c = the_conn;
    pthread_mutex_lock(&c->mu);
    assert_true(c->nposts < 4096);
    c->posts[c->nposts++] = p;
    pthread_mutex_unlock(&c->mu);
}

static nana_session *f_session(void *conn)
{
    return ((fconn *)conn)->s;
}

static const nana_door_io fake_io = {
    .send_ref = f_send,
    .send_copy = f_send,
    .reset = f_reset,
    .close = f_close,
    .trust = f_trust,
    .engage = f_engage,
    .set_timer = f_set_timer,
    .now = f_now,
    .send_state = f_send_state,
    .post = f_post,
    .session = f_session,
};

/* Runs the posted replies (the connection's thread's turn). Returns how many. */
static size_t run_posts(fconn *c)
{
    pthread_mutex_lock(&c->mu);
    size_t n = c->nposts;
    nana_door_post *p[4096];
    memcpy(p, c->posts, n * sizeof(*p));
    c->nposts = 0;
    pthread_mutex_unlock(&c->mu);
    for (size_t i = 0; i < n; i++)
        p[i]->fn(c, p[i]->arg);
    return n;
}

/* The peer acknowledged everything: the door's buffers go back. */
static void ack_all(fconn *c)
{
    for (size_t i = 0; i < c->nrel; i++)
        c->rel[i](c->relctx[i]);
    c->nrel = 0;
    c->acked += c->held;
    c->held = 0;
}

/* ---- a door and a session ------------------------------------------------------ */

typedef struct env {
    char dir[512], db[600];
    nana_core *core;
    nana_accounts *accounts;
    nana_door *door;
    uint8_t pk[32], sk[64];
    fconn conn;
} env;

static nana_accounts *acc_get(void *ctx, uint64_t *gen)
{
    *gen = 1;
    return nana_accounts_ref(((env *)ctx)->accounts);
}

static uint64_t acc_gen(void *ctx)
{
    (void)ctx;
    return 1;
}

static void env_up(env *e, const char *name, void (*tweak)(nana_door_opts *))
{
    memset(e, 0, sizeof(*e));
    const char *tmp = getenv("NANA_TEST_TMP");
    snprintf(e->dir, sizeof(e->dir), "%s/door-%s-%d", tmp && *tmp ? tmp : "/tmp", name,
             (int)getpid());
    char cmd[1300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s' && mkdir -p '%s'", e->dir, e->dir);
    assert_int_equal(system(cmd), 0);
    snprintf(e->db, sizeof(e->db), "%s/main.sqlite", e->dir);
    nana_core_opts co;
    nana_core_opts_init(&co);
    co.db_dir = e->dir;
    co.db_path = e->db;
    co.workers = 2;
    assert_int_equal(nana_core_new(&co, &e->core), 0);
    crypto_sign_keypair(e->pk, e->sk);
    assert_int_equal(nana_accounts_single(e->pk, "default", &e->accounts), 0);
    nana_door_opts o;
    nana_door_opts_init(&o);
    o.no_bans = 1;
    if (tweak) tweak(&o);
    nana_door_accounts acc = {acc_get, acc_gen, e};
    assert_int_equal(nana_door_new(e->core, &o, &fake_io, NULL, &acc, NULL, &e->door), 0);
    pthread_mutex_init(&e->conn.mu, NULL);
    e->conn.now = 1000000000ull;
    the_conn = &e->conn;
    nana_session_info info = {.handle = 7, .alen = sizeof(struct sockaddr_in)};
    struct sockaddr_in *in = (struct sockaddr_in *)&info.addr;
    in->sin_family = AF_INET;
    inet_pton(AF_INET, "192.0.2.9", &in->sin_addr);
    e->conn.s = nana_session_new(e->door, &info);
    assert_non_null(e->conn.s);
}

static void env_down(env *e)
{
    fconn *c = &e->conn;
    run_posts(c);
    ack_all(c);
    nana_session_free(c->s);
    assert_int_equal(nana_core_stop(e->core), 0);
    run_posts(c); /* answers of calls the stop cancelled */
    ack_all(c);
    assert_int_equal(nana_core_held(e->core), 0);
    nana_door_free(e->door);
    nana_core_free(e->core);
    nana_accounts_unref(e->accounts);
    for (int i = 0; i < MAX_SIDS; i++)
        nana_buf_free(&c->st[i].out);
    pthread_mutex_destroy(&c->mu);
    char cmd[1300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->dir);
    assert_int_equal(system(cmd), 0);
}

/* Frames |json| (a msgpack map from JSON text) into |out|; returns its length. */
static size_t frame_json(uint8_t *out, size_t cap, const char *json)
{
    nana_buf b;
    nana_buf_init(&b, 0);
    assert_int_equal(nana_mp_from_json_text(&b, json, strlen(json)), 0);
    assert_true(b.len + 4 <= cap);
    out[0] = (uint8_t)(b.len >> 24);
    out[1] = (uint8_t)(b.len >> 16);
    out[2] = (uint8_t)(b.len >> 8);
    out[3] = (uint8_t)b.len;
    memcpy(out + 4, b.data, b.len);
    size_t n = b.len + 4;
    nana_buf_free(&b);
    return n;
}

/* The reply frame on stream |sid| as JSON text ("" when none yet). */
static const char *reply_json(env *e, int64_t sid)
{
    static char out[2048];
    fstream *s = fs(&e->conn, sid);
    out[0] = 0;
    if (s->out.len < 4) return out;
    nana_buf j;
    nana_buf_init(&j, 0);
    nana_mp_reader r;
    nana_mp_reader_init(&r, s->out.data + 4, s->out.len - 4);
    if (nana_mp_to_json(&r, &j, 64) == 0) snprintf(out, sizeof(out), "%s", j.data);
    nana_buf_free(&j);
    return out;
}

/* Waits (bounded) until stream |sid| has its whole reply or a reset. */
static void wait_reply(env *e, int64_t sid)
{
    fstream *s = fs(&e->conn, sid);
    for (int i = 0; i < 5000 && !s->fin && !s->reset; i++) {
        if (!run_posts(&e->conn)) {
            struct timespec ts = {0, 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    assert_true(s->fin || s->reset);
}

/* Sends |json| as one whole frame on |sid| and waits for its answer. */
static const char *call(env *e, int64_t sid, const char *json)
{
    uint8_t f[4096];
    size_t n = frame_json(f, sizeof(f), json);
    assert_int_equal(nana_session_data(e->conn.s, &e->conn, sid, f, n, 1, 0), 0);
    wait_reply(e, sid);
    return reply_json(e, sid);
}

/* Answers a challenge on streams 0 and 4; returns the answer (JSON). */
static const char *try_login(env *e)
{
    uint8_t f[256];
    static const uint8_t start[] = {0,   0,   0,   11,  0xaa, 'A', 'U', 'T',
                                    'H', '_', 'S', 'T', 'A',  'R', 'T'};
    assert_int_equal(nana_session_data(e->conn.s, &e->conn, 0, start, sizeof(start), 1, 0), 0);
    fstream *s0 = fs(&e->conn, 0);
    assert_true(s0->fin);
    /* {"type": "challenge", "data": <32 bytes>}: the bytes are the frame's last 32 */
    const uint8_t *ch = (const uint8_t *)s0->out.data + s0->out.len - 32;
    uint8_t sig[64];
    crypto_sign_detached(sig, NULL, ch, 32, e->sk);
    size_t n = 4;
    f[n++] = 0x82;
    f[n++] = 0xa4;
    memcpy(f + n, "type", 4);
    n += 4;
    f[n++] = 0xa8;
    memcpy(f + n, "response", 8);
    n += 8;
    f[n++] = 0xa4;
    memcpy(f + n, "data", 4);
    n += 4;
    f[n++] = 0xc4;
    f[n++] = 64;
    memcpy(f + n, sig, 64);
    n += 64;
    uint32_t body = (uint32_t)(n - 4);
    f[0] = 0;
    f[1] = 0;
    f[2] = (uint8_t)(body >> 8);
    f[3] = (uint8_t)body;
    assert_int_equal(nana_session_data(e->conn.s, &e->conn, 4, f, n, 1, 0), 0);
    return reply_json(e, 4);
}

/* Logs in on streams 0 and 4. */
static void login(env *e)
{
    assert_string_equal(try_login(e), "\"AUTH_OK\"");
    assert_true(e->conn.trusted);
}

/* A new session on the env's connection, showing |id| (NULL: no certificate). */
static void reopen(env *e, const nana_cert_identity *id)
{
    nana_session_free(e->conn.s);
    for (int i = 0; i < MAX_SIDS; i++) {
        nana_buf_free(&e->conn.st[i].out);
        memset(&e->conn.st[i], 0, sizeof(e->conn.st[i]));
    }
    e->conn.trusted = e->conn.engaged = false;
    nana_session_info info = {.handle = 7, .alen = sizeof(struct sockaddr_in)};
    struct sockaddr_in *in = (struct sockaddr_in *)&info.addr;
    in->sin_family = AF_INET;
    inet_pton(AF_INET, "192.0.2.9", &in->sin_addr);
    if (id) info.identity = *id;
    e->conn.s = nana_session_new(e->door, &info);
    assert_non_null(e->conn.s);
    nana_session_start(e->conn.s, &e->conn);
}

/* Client certificates: an account that logs in by certificate alone is
 * logged in when the connection starts (trusted at once, a call served
 * with no AUTH_START, AUTH_START answered AUTH_OK); another certificate, or
 * one naming a key+certificate account, logs nobody in; the key alone
 * cannot log in a key+certificate account. */
static void test_certificate_login(void **state)
{
    (void)state;
    env e;
    env_up(&e, "cert", NULL);
    nana_accounts_unref(e.accounts);
    /* bob's key as an OpenSSH line: "ssh-ed25519 " + base64(string type, string key) */
    uint8_t blob[4 + 11 + 4 + 32] = {0,   0,   0,   11,  's', 's', 'h', '-', 'e', 'd',
                                     '2', '5', '5', '1', '9', 0,   0,   0,   32};
    memcpy(blob + 19, e.pk, 32);
    char b64[128], pkhex[160], json[1024];
    sodium_bin2base64(b64, sizeof(b64), blob, sizeof(blob), sodium_base64_VARIANT_ORIGINAL);
    snprintf(pkhex, sizeof(pkhex), "ssh-ed25519 %s", b64);
    snprintf(json, sizeof(json),
             "{\"accounts\": [{\"name\": \"alice\", \"login\": \"certificate\", "
             "\"client_cert_sha256\": [\"%s\"]}, "
             "{\"name\": \"bob\", \"login\": \"key+certificate\", \"public_key\": \"%s\", "
             "\"client_cert_sha256\": [\"%s\"]}]}",
             "1111111111111111111111111111111111111111111111111111111111111111", pkhex,
             "2222222222222222222222222222222222222222222222222222222222222222");
    int rc = nana_accounts_parse(json, strlen(json), &e.accounts);
    if (rc) fail_msg("accounts: %s", nana_errmsg());
    nana_cert_identity alice = {.verified = true}, bob = {.verified = true};
    memset(alice.cert_sha256, 0x11, 32);
    memset(bob.cert_sha256, 0x22, 32);
    reopen(&e, &alice);
    assert_true(e.conn.trusted);
    assert_string_equal(call(&e, 8, "{\"method\":\"__len__\",\"args\":[],\"kwargs\":{}}"),
                        "{\"status\":\"success\",\"result\":0}");
    uint8_t start[] = {0, 0, 0, 11, 0xaa, 'A', 'U', 'T', 'H', '_', 'S', 'T', 'A', 'R', 'T'};
    assert_int_equal(nana_session_data(e.conn.s, &e.conn, 12, start, sizeof(start), 1, 0), 0);
    assert_string_equal(reply_json(&e, 12), "\"AUTH_OK\"");
    /* bob's certificate: bob signs as well, so nothing happens at start. */
    reopen(&e, &bob);
    assert_false(e.conn.trusted);
    login(&e);
    /* bob's key without his certificate, or with alice's: refused. */
    reopen(&e, NULL);
    assert_string_equal(try_login(&e), "\"AUTH_FAILED\"");
    assert_false(e.conn.trusted);
    nana_cert_identity other = {.verified = true};
    memset(other.cert_sha256, 0x33, 32);
    reopen(&e, &other); /* names no account */
    assert_false(e.conn.trusted);
    assert_string_equal(try_login(&e), "\"AUTH_FAILED\"");
    env_down(&e);
}

/* ---- tests ---------------------------------------------------------------------- */

static void test_login_and_calls(void **state)
{
    (void)state;
    env e;
    env_up(&e, "calls", NULL);
    /* Before login: only the login messages. */
    assert_string_equal(call(&e, 40, "{\"method\":\"keys\",\"args\":[],\"kwargs\":{}}"),
                        "{\"status\":\"error\",\"message\":\"Unauthorized: Please start with "
                        "AUTH_START\"}");
    assert_false(e.conn.trusted);
    assert_false(e.conn.engaged);
    login(&e);
    assert_true(e.conn.engaged); /* at its AUTH_START */
    assert_string_equal(
        call(&e, 8, "{\"method\":\"__setitem__\",\"args\":[\"k\",{\"a\":1}],\"kwargs\":{}}"),
        "{\"status\":\"success\",\"result\":null}");
    assert_string_equal(call(&e, 12, "{\"method\":\"__getitem__\",\"args\":[\"k\"],\"kwargs\":{}}"),
                        "{\"status\":\"success\",\"result\":{\"a\":1}}");
    /* the second read comes from the cache's kept msgpack form */
    assert_string_equal(call(&e, 16, "{\"method\":\"__getitem__\",\"args\":[\"k\"],\"kwargs\":{}}"),
                        "{\"status\":\"success\",\"result\":{\"a\":1}}");
    assert_string_equal(call(&e, 20, "{\"method\":\"get\",\"args\":[\"zz\",7],\"kwargs\":{}}"),
                        "{\"status\":\"success\",\"result\":7}");
    assert_string_equal(
        call(&e, 24, "{\"method\":\"__getitem__\",\"args\":[\"zz\"],\"kwargs\":{}}"),
        "{\"status\":\"error\",\"error_type\":\"KeyError\",\"message\":\"'zz'\"}");
    assert_string_equal(call(&e, 28, "{\"method\":\"vacuum\",\"args\":[],\"kwargs\":{}}"),
                        "{\"status\":\"error\",\"error_type\":\"PermissionError\",\"message\":"
                        "\"Method 'vacuum' is forbidden or invalid\"}");
    assert_string_equal(call(&e, 32, "{\"method\":\"get\",\"args\":[],\"kwargs\":{}}"),
                        "{\"status\":\"error\",\"error_type\":\"TypeError\",\"message\":"
                        "\"NanaSQLite.get() missing 1 required positional argument: 'key'\"}");
    /* Every reply counted until the peer has it. */
    assert_true(nana_core_held(e.core) > 0);
    ack_all(&e.conn);
    assert_int_equal(nana_core_held(e.core), 0);
    env_down(&e);
}

static void short_deadlines(nana_door_opts *o)
{
    o->request_idle_ms = 500;
    o->request_timeout_ms = 2000;
    o->reply_stall_ms = 1000;
    o->max_unread_reply_bytes = 65536;
}

/* The door's own limits, on the fake clock: frames before login, an
 * unfinished request's deadlines, replies nobody reads. */
static void test_limits_on_the_fake_clock(void **state)
{
    (void)state;
    env e;
    env_up(&e, "limits", short_deadlines);
    static const uint8_t big[] = {0, 0, 0x20, 0, 0x81}; /* 8 KiB announced before login */
    assert_int_equal(nana_session_data(e.conn.s, &e.conn, 40, big, sizeof(big), 0, 0), 0);
    assert_non_null(strstr(reply_json(&e, 40), "before authentication"));
    login(&e);
    /* A length, then silence: refused at the idle deadline, not before. */
    static const uint8_t part[] = {0, 0, 0x10, 0, 0x83};
    assert_int_equal(nana_session_data(e.conn.s, &e.conn, 44, part, sizeof(part), 0, 0), 0);
    assert_int_equal(e.conn.timer, e.conn.now + 500000000ull);
    e.conn.now += 400000000ull;
    nana_session_timer(e.conn.s, &e.conn);
    assert_false(fs(&e.conn, 44)->fin);
    e.conn.now += 100000000ull;
    nana_session_timer(e.conn.s, &e.conn);
    assert_non_null(strstr(reply_json(&e, 44), "no bytes of it for 500 ms"));
    ack_all(&e.conn);
    /* Replies nobody reads: past the budget an error takes the reply's place;
     * no progress for reply_stall_ms closes the connection. */
    e.conn.held = 60000; /* unread bytes of earlier replies */
    const char *r = call(&e, 48,
                         "{\"method\":\"__setitem__\",\"args\":[\"big\",\""
                         "0123456789012345678901234567890123456789\"],\"kwargs\":{}}");
    assert_non_null(strstr(r, "success"));
    char json[200];
    snprintf(json, sizeof(json), "{\"method\":\"get\",\"args\":[\"big\"],\"kwargs\":{}}");
    e.conn.held = 65530;
    r = call(&e, 52, json);
    assert_non_null(strstr(r, "\"code\":\"unread\""));
    /* The reader makes no progress: closed within one or two periods. */
    uint64_t t0 = e.conn.now;
    for (int i = 0; i < 4 && !e.conn.closed; i++) {
        assert_true(e.conn.timer != UINT64_MAX);
        e.conn.now = e.conn.timer;
        nana_session_timer(e.conn.s, &e.conn);
    }
    assert_true(e.conn.closed);
    assert_true(e.conn.now - t0 <= 2000000000ull);
    assert_int_equal(e.conn.close_code, 0x103);
    env_down(&e);
}

/* Every allocation on a call's path fails in turn (then every one after
 * it): each time the stream gets an answer (a reply or a reset), nothing
 * leaks, and with memory back the session serves again. */
static void test_failing_allocations(void **state)
{
    (void)state;
    env e;
    env_up(&e, "nomem", NULL);
    login(&e);
    assert_non_null(strstr(call(&e, 8,
                                "{\"method\":\"__setitem__\",\"args\":[\"k\",[1,2]],"
                                "\"kwargs\":{}}"),
                           "success"));
    static const char *const calls[] = {
        "{\"method\":\"__getitem__\",\"args\":[\"k\"],\"kwargs\":{}}",
        "{\"method\":\"keys\",\"args\":[],\"kwargs\":{}}",
        "{\"method\":\"__setitem__\",\"args\":[\"k2\",{\"x\":[1,{\"y\":2}]}],\"kwargs\":{}}",
        "{\"method\":\"batch_get\",\"args\":[[\"k\",\"k2\",\"nope\"]],\"kwargs\":{}}",
        "{\"method\":\"get\",\"args\":[\"missing\",{\"d\":1}],\"kwargs\":{}}",
        "{\"method\":\"vacuum\",\"args\":[],\"kwargs\":{}}",
    };
    int64_t sid = 12;
    for (size_t k = 0; k < sizeof(calls) / sizeof(calls[0]); k++) {
        for (int sticky = 0; sticky <= 1; sticky++) {
            for (unsigned long nth = 1;; nth++) {
                assert_true(sid / 4 < MAX_SIDS);
                fstream *s = fs(&e.conn, sid);
                nana_buf_free(&s->out);
                memset(s, 0, sizeof(*s));
                uint8_t f[512];
                size_t n = frame_json(f, sizeof(f), calls[k]);
                nana_mem_fail_at(nth, sticky);
                int rc = nana_session_data(e.conn.s, &e.conn, sid, f, n, 1, 0);
                /* the store's threads may need memory too: let the call finish */
                for (int i = 0; i < 5000 && !s->fin && !s->reset; i++) {
                    if (!run_posts(&e.conn)) {
                        struct timespec ts = {0, 1000000L};
                        nanosleep(&ts, NULL);
                    }
                }
                unsigned long failed = nana_mem_failures();
                nana_mem_fail_at(0, false);
                if (rc) /* the transport closes the connection: fine, if nothing leaks */
                    assert_int_equal(rc, NANA_ERR_NOMEM);
                else if (!s->fin && !s->reset)
                    fail_msg("call %zu, allocation %lu%s failing: stream %lld unanswered", k, nth,
                             sticky ? " and on" : "", (long long)sid);
                ack_all(&e.conn);
                sid = sid + 4 >= MAX_SIDS * 4 ? 12 : sid + 4;
                if (!failed) break; /* the call ran through without a failure */
            }
        }
        /* With memory back, the session serves. */
        fstream *s = fs(&e.conn, sid);
        nana_buf_free(&s->out);
        memset(s, 0, sizeof(*s));
        assert_non_null(
            strstr(call(&e, sid, "{\"method\":\"__len__\",\"args\":[],\"kwargs\":{}}"), "success"));
        ack_all(&e.conn);
        sid = sid + 4 >= MAX_SIDS * 4 ? 12 : sid + 4;
    }
    env_down(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_login_and_calls),
        cmocka_unit_test(test_certificate_login),
        cmocka_unit_test(test_limits_on_the_fake_clock),
        cmocka_unit_test(test_failing_allocations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
