/*
 * bench_main.c - nanasqlite-bench: load for a NanaSQLite server, measured
 * the way redis-benchmark measures Redis (connections x calls in flight,
 * total or duration, value size, key space), with latency percentiles
 * from a log-linear histogram, open-loop runs at a fixed rate (latency
 * counted from when a call was due, so a stalled server cannot hide it:
 * no coordinated omission), and the server's CPU time per call read from
 * /proc when its pid is given (client and server share the machine).
 *
 * The load generator speaks the wire protocol directly on the QUIC layer,
 * lean on purpose: request frames are built once per kind and only the key
 * digits (and a write's value counter) are patched per call; replies are
 * judged by their first bytes. Every write carries a value that differs
 * from the one stored (a counter in its first digits): SQLite does not
 * rewrite a row whose new content is identical, so a constant value would
 * measure writes that reach no page and no WAL frame.
 * Connections are spread over --threads QUIC endpoints (one UDP socket and
 * one I/O thread each), so 10,000 connections need no thread per
 * connection. Keys are "key:%012u" over --keyspace; GET runs are preceded
 * by writing every key once (with the client library) so they hit data.
 *
 * Each shard's state belongs to its I/O thread: the main thread starts a
 * shard's first connection, and everything after that (further
 * connections, calls, counts) happens in the I/O thread's callbacks; the
 * main thread reads only atomics until the endpoints are deleted.
 */
#include "bench_int.h"
#include "bench_proc.h"
#include "conn_flags.h"
#include "nanasqlite_client.h"
#include "auth/nana_keys.h"
#include "proto/nana_frame.h"
#include "quic/nana_quic.h"
#include "util/nana_buf.h"
#include "util/nana_opt.h"
#include "util/nana_parse.h"
#include "util/nana_time.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define RT_PRIORITY 10             /* --realtime: SCHED_FIFO priority of the I/O threads */
#define STALL_NS    60000000000ull /* -n: no call finished this long: give up */

options opt;
static shard *shards;
uint8_t secret_key[64];
atomic_bool stopping;
static atomic_uint_fast64_t issued;     /* calls claimed (for -n), at most opt.total */
static atomic_uint_fast64_t t_start_ns; /* when the clock started (open loop pacing) */
static uint64_t value_base;             /* a write counter's random start (per run) */

uint64_t next_rand(shard *sh)
{
    uint64_t x = sh->rng; /* xorshift64 */
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    sh->rng = x;
    return x;
}

/* ---- request frames ----------------------------------------------------------- */

/* Writes |v| as |n| decimal digits at |p| (its last n digits). */
void put_digits(char *p, uint64_t v, unsigned n)
{
    for (unsigned i = n; i-- > 0;) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

/* Writes key number |k| as KEY_DIGITS digits at |p|. */
void put_key(char *p, uint64_t k)
{
    put_digits(p, k, KEY_DIGITS);
}

/*
 * Gives the next write of |sh| its value: the counter's digits at the
 * start of the template's value. Shards count in steps of --threads from
 * their own offset, so no two writes of a run carry the same value (as
 * far as value_digits reach), and the start is random per run, so a run
 * does not write what an earlier run left.
 */
uint64_t next_write_counter(shard *sh)
{
    return value_base + sh->writes++ * opt.threads + sh->id;
}

static void put_write_counter(shard *sh)
{
    if (!sh->value_digits) return;
    put_digits(sh->set_tpl.data + sh->set_value_at, next_write_counter(sh), sh->value_digits);
}

bool next_is_set(shard *sh)
{
    return opt.wl.kind == W_SET ||
           (opt.wl.kind == W_MIXED && next_rand(sh) % 100 >= (uint64_t)opt.wl.read_pct);
}

/* Builds a request template: {"method": m, "args": [keys..., value?],
 * "kwargs": {}, db?, table?}; |key_at| gets the offset of each key's digits
 * and |value_at| (with a value) the offset of the value's first byte. */
static int build_template(nana_buf *b, const char *method, unsigned nkeys, bool as_list,
                          bool with_value, size_t *key_at, size_t *value_at)
{
    char key[5 + KEY_DIGITS + 1];
    memcpy(key, "key:", 4);
    memset(key + 4, '0', KEY_DIGITS);
    key[4 + KEY_DIGITS] = '\0';
    size_t at;
    int rc = nana_frame_begin(b, &at);
    if (!rc) rc = nana_mp_put_map(b, 3u + (opt.db != NULL) + (opt.table != NULL));
    if (!rc) rc = nana_mp_put_cstr(b, "method") || nana_mp_put_cstr(b, method);
    if (!rc) rc = nana_mp_put_cstr(b, "args");
    if (!rc) rc = nana_mp_put_array(b, as_list ? 1 : nkeys + (with_value ? 1 : 0));
    if (!rc && as_list) rc = nana_mp_put_array(b, nkeys);
    for (unsigned i = 0; !rc && i < nkeys; i++) {
        rc = nana_mp_put_cstr(b, key);
        key_at[i] = b->len - KEY_DIGITS;
    }
    if (!rc && with_value) {
        /* The stored value is a JSON string of value_size bytes, quotes included. */
        size_t n = opt.value_size > 2 ? opt.value_size - 2 : 0;
        char *v = malloc(n + 1);
        if (!v) return -1;
        memset(v, 'x', n);
        v[n] = '\0';
        rc = nana_mp_put_str(b, v, n);
        free(v);
        *value_at = b->len - n;
    }
    if (!rc) rc = nana_mp_put_cstr(b, "kwargs") || nana_mp_put_map(b, 0);
    if (!rc && opt.db) rc = nana_mp_put_cstr(b, "db") || nana_mp_put_cstr(b, opt.db);
    if (!rc && opt.table) rc = nana_mp_put_cstr(b, "table") || nana_mp_put_cstr(b, opt.table);
    return rc ? rc : nana_frame_end(b, at);
}

/* ---- the I/O thread side ----------------------------------------------------------- */

void record_error(shard *sh, const char *what)
{
    sh->errors++;
    if (!sh->first_error[0]) snprintf(sh->first_error, sizeof(sh->first_error), "%s", what);
}

/*
 * The slot of stream |sid| on |c|, or NULL. Stream ids of one connection
 * are consecutive, so the index table almost always answers; a stream that
 * stayed in flight while 4 x pipeline newer ones opened lost its entry and
 * is found by a scan.
 */
static slot *slot_find(bconn *c, int64_t sid)
{
    uint32_t j = c->by_sid[((uint64_t)sid >> 2) & c->sid_mask];
    if (j && c->slots[j - 1].sid == sid) return &c->slots[j - 1];
    for (unsigned i = 0; i < opt.pipeline; i++)
        if (c->slots[i].sid == sid) return &c->slots[i];
    return NULL;
}

/* Gives slot |s| back (its call is over). */
static void slot_release(bconn *c, slot *s)
{
    uint32_t *e = &c->by_sid[((uint64_t)s->sid >> 2) & c->sid_mask];
    uint32_t idx = (uint32_t)(s - c->slots);
    if (*e == idx + 1) *e = 0;
    s->sid = -1;
    c->free_slots[c->nfree++] = idx;
    c->inflight--;
}

/*
 * Starts one call on |c|, due at |due_ns|. Returns 0 when it started;
 * NANA_ERR_BUSY when it could not start now (no free slot, or the server's
 * stream limit: streams_available follows); another error (recorded) when
 * the connection cannot take calls. Either way but a full pipeline the
 * connection is marked blocked and takes no call until streams_available.
 * A call that did not start is not counted anywhere.
 */
static int send_call(bconn *c, nana_quic_conn *qc, uint64_t due_ns)
{
    shard *sh = c->sh;
    if (opt.proto != P_NANA) return bench_grpc_send(c, due_ns);
    if (!c->nfree) return NANA_ERR_BUSY;
    int64_t sid;
    int rc = nana_quic_stream_open(qc, &sid);
    if (rc == NANA_ERR_BUSY) {
        c->blocked = true;
        return rc;
    }
    if (rc) {
        c->blocked = true;
        record_error(sh, "cannot open a stream for a request");
        return rc;
    }
    slot *s = &c->slots[c->free_slots[c->nfree - 1]];
    bool is_set = next_is_set(sh);
    nana_buf *tpl = is_set ? &sh->set_tpl : &sh->get_tpl;
    if (opt.wl.kind == W_BATCH) {
        for (unsigned i = 0; i < opt.wl.batch; i++)
            put_key(tpl->data + sh->batch_key_at[i], next_rand(sh) % opt.keyspace);
    } else {
        put_key(tpl->data + (is_set ? sh->set_key_at : sh->get_key_at),
                next_rand(sh) % opt.keyspace);
    }
    if (is_set) put_write_counter(sh);
    rc = nana_quic_stream_send(qc, sid, tpl->data, tpl->len, 1);
    if (rc) {
        c->blocked = true;
        record_error(sh, "cannot send a request");
        nana_quic_stream_reset(qc, sid, 0);
        return rc;
    }
    atomic_fetch_add_explicit(&sh->started, 1, memory_order_relaxed);
    c->nfree--;
    c->by_sid[((uint64_t)sid >> 2) & c->sid_mask] = (uint32_t)(s - c->slots) + 1;
    s->sid = sid;
    s->start_ns = due_ns;
    s->got = 0;
    s->is_set = is_set;
    c->inflight++;
    return 0;
}

/* Claims one call of the -n budget (or the clock's say-so): whether
 * another closed-loop call may start. A claim that does not become a call
 * is given back (unclaim), so -n always ends with exactly that many. */
static bool may_issue(void)
{
    if (atomic_load_explicit(&stopping, memory_order_relaxed)) return false;
    if (!opt.total) return true;
    uint_fast64_t n = atomic_load_explicit(&issued, memory_order_relaxed);
    do {
        if (n >= opt.total) return false;
    } while (!atomic_compare_exchange_weak_explicit(&issued, &n, n + 1, memory_order_relaxed,
                                                    memory_order_relaxed));
    return true;
}

static void unclaim(void)
{
    if (opt.total) atomic_fetch_sub_explicit(&issued, 1, memory_order_relaxed);
}

/* Keeps |c| busy: pipeline calls in flight (closed loop). A call the
 * server's stream limit refused goes back to the budget; this connection
 * takes it again at streams_available, or another one when a reply frees
 * its slot. */
static void fill(bconn *c, nana_quic_conn *qc)
{
    while (c->state == C_READY && !c->blocked && c->inflight < opt.pipeline && may_issue()) {
        if (send_call(c, qc, nana_now_ns())) {
            unclaim();
            break;
        }
    }
}

/* Notes that |c| may take another open-loop call. I/O thread. */
static void room_push(bconn *c)
{
    shard *sh = c->sh;
    if (c->has_room_queued || c->blocked || c->state != C_READY || c->inflight >= opt.pipeline)
        return;
    sh->room[(sh->room_head + sh->room_len) % sh->nconns] = c;
    sh->room_len++;
    c->has_room_queued = true;
}

/* Sends due open-loop calls, oldest first, on connections with room (no
 * scan: the room ring holds exactly those). A connection takes as many as
 * it has room for before the next one is used, so the calls due in one
 * tick share packets (one call per packet costs the server and this
 * process a datagram each way per call, several times a call's own work).
 * I/O thread. */
static void drain_backlog(shard *sh)
{
    while (sh->bl_len && sh->room_len) {
        bconn *c = sh->room[sh->room_head];
        sh->room_head = (sh->room_head + 1) % sh->nconns;
        sh->room_len--;
        c->has_room_queued = false;
        while (sh->bl_len && c->state == C_READY && c->inflight < opt.pipeline) {
            if (send_call(c, c->qc, sh->backlog[sh->bl_head]))
                break; /* blocked (streams_available pushes it again) or failing */
            sh->bl_head = (sh->bl_head + 1) % sh->bl_cap;
            sh->bl_len--;
        }
        room_push(c); /* not while blocked: the ring holds only connections that can send */
    }
}

static int on_open(nana_quic_conn *qc, void *user)
{
    (void)user;
    bconn *c = nana_quic_conn_get_data(qc);
    if (!c) return 0;
    c->qc = qc;
    c->state = C_AUTH;
    c->auth_step = 0;
    nana_buf f;
    nana_buf_init(&f, 0);
    int64_t sid = -1;
    if (nana_frame_string(&f, "AUTH_START") || nana_quic_stream_open(qc, &sid) ||
        nana_quic_stream_send(qc, sid, f.data, f.len, 1))
        nana_quic_conn_close(qc, 0, "");
    c->auth_sid = sid;
    nana_buf_free(&f);
    start_next_connect(c->sh); /* the first connection of the shard opens the way */
    return 0;
}

void bench_conn_closed(bconn *c)
{
    shard *sh = c->sh;
    if (c->state == C_CONNECTING || c->state == C_AUTH) {
        sh->handshaking--;
        atomic_fetch_add(&sh->failed, 1);
        record_error(sh, "a connection failed to open or authenticate");
        start_next_connect(sh);
    } else if (c->state == C_READY && !atomic_load(&stopping)) {
        record_error(sh, "a connection closed during the run");
    }
    if (!atomic_load(&stopping)) sh->errors += c->inflight; /* else: the run is over */
    atomic_fetch_add_explicit(&sh->done, c->inflight, memory_order_relaxed);
    c->inflight = 0;
    c->state = C_DEAD;
    c->qc = NULL;
}

static void on_close(nana_quic_conn *qc, void *user)
{
    (void)user;
    bconn *c = nana_quic_conn_get_data(qc);
    if (c) bench_conn_closed(c);
}

void bench_conn_ready(bconn *c)
{
    c->state = C_READY;
    if (opt.rate > 0) room_push(c);
    c->sh->handshaking--;
    atomic_fetch_add(&c->sh->ready, 1);
    start_next_connect(c->sh);
}

/* An authentication reply is complete. */
static void auth_reply(bconn *c, nana_quic_conn *qc)
{
    uint8_t challenge[32];
    char msg[256];
    nana_auth_reply a = nana_frame_auth_reply((const uint8_t *)c->auth.data, c->auth.len, challenge,
                                              msg, sizeof(msg));
    nana_buf_reset(&c->auth);
    if (a == NANA_AUTH_CHALLENGE && c->auth_step == 0) {
        uint8_t sig[64];
        crypto_sign_detached(sig, NULL, challenge, 32, secret_key);
        nana_buf f;
        nana_buf_init(&f, 0);
        int64_t sid = -1;
        if (nana_frame_auth_response(&f, sig, opt.co.account) || nana_quic_stream_open(qc, &sid) ||
            nana_quic_stream_send(qc, sid, f.data, f.len, 1))
            nana_quic_conn_close(qc, 0, "");
        nana_buf_free(&f);
        c->auth_sid = sid;
        c->auth_step = 1;
        return;
    }
    if (a == NANA_AUTH_OK && c->auth_step == 1) {
        bench_conn_ready(c);
        return;
    }
    record_error(c->sh, a == NANA_AUTH_FAILED   ? "authentication failed (key or account)"
                        : a == NANA_AUTH_BANNED ? "authentication refused: address banned"
                                                : msg);
    nana_quic_conn_close(qc, 0, "");
}

void bench_call_done(bconn *c, uint64_t start_ns, const char *error)
{
    shard *sh = c->sh;
    uint64_t t = nana_now_ns();
    hist_add(&sh->hist, t > start_ns ? t - start_ns : 0);
    if (error) record_error(sh, error);
    atomic_fetch_add_explicit(&sh->done, 1, memory_order_relaxed);
}

void bench_call_room(bconn *c)
{
    if (opt.rate > 0) {
        room_push(c); /* open loop: the freed slot takes the oldest due call */
        drain_backlog(c->sh);
    } else {
        fill(c, c->qc);
    }
}

/* A reply is complete: judge it by its first bytes. */
static void reply_done(bconn *c, slot *s)
{
    static const uint8_t ok[] = "\x82\xa6status\xa7success";
    const char *error = NULL;
    if (s->got < 4 + sizeof(ok) - 1 || memcmp(s->head + 4, ok, sizeof(ok) - 1) != 0)
        error = s->is_set ? "an error reply (a write call)" : "an error reply (a read call)";
    uint64_t start = s->start_ns;
    slot_release(c, s);
    bench_call_done(c, start, error);
}

static int on_data(nana_quic_conn *qc, int64_t sid, const uint8_t *data, size_t len, int fin,
                   int early, void *user)
{
    (void)early;
    (void)user;
    bconn *c = nana_quic_conn_get_data(qc);
    if (!c) return 0;
    if (c->state == C_AUTH) {
        if (sid != c->auth_sid) return 0;
        if (c->auth.len + len > 4096) {
            nana_quic_conn_close(qc, 0, "");
            return 0;
        }
        if (len) nana_buf_append(&c->auth, data, len);
        if (fin) auth_reply(c, qc);
        return 0;
    }
    slot *s = slot_find(c, sid);
    if (!s) return 0;
    if (s->got < sizeof(s->head)) {
        size_t take = sizeof(s->head) - s->got < len ? sizeof(s->head) - s->got : len;
        memcpy(s->head + s->got, data, take);
    }
    s->got += (uint32_t)len;
    if (!fin) return 0;
    reply_done(c, s);
    bench_call_room(c);
    return 0;
}

static void on_stream_close(nana_quic_conn *qc, int64_t sid, uint64_t app_error, void *user)
{
    (void)app_error;
    (void)user;
    bconn *c = nana_quic_conn_get_data(qc);
    if (!c || c->state != C_READY) return;
    slot *s = slot_find(c, sid);
    if (!s) return;
    if (!atomic_load(&stopping)) record_error(c->sh, "a call's stream was reset");
    slot_release(c, s); /* reset without a reply */
    atomic_fetch_add_explicit(&c->sh->done, 1, memory_order_relaxed);
}

/* The server raised its stream limit: calls that could not start go now. */
void bench_streams_available(bconn *c)
{
    c->blocked = false;
    if (!c->sh->going) return; /* go_post fills it */
    if (opt.rate > 0) {
        room_push(c);
        drain_backlog(c->sh);
    } else {
        fill(c, c->qc);
    }
}

static void on_streams_available(nana_quic_conn *qc, void *user)
{
    (void)user;
    bconn *c = nana_quic_conn_get_data(qc);
    if (c) bench_streams_available(c);
}

static const nana_quic_callbacks callbacks = {
    .conn_open = on_open,
    .conn_close = on_close,
    .stream_data = on_data,
    .stream_close = on_stream_close,
    .streams_available = on_streams_available,
};

/*
 * Starts connection attempts up to the handshake cap; with |first_only|,
 * stops after the first that started. The shard's I/O thread owns this
 * state once one of its connections started: the main thread starts only
 * the first (first_only), and the I/O thread the rest, from the
 * callbacks (conn_open, a login done, a connection closed).
 */
static void start_connects(shard *sh, bool first_only)
{
    while (sh->handshaking < MAX_HANDSHAKES && sh->next_connect < sh->nconns) {
        bconn *c = &sh->conns[sh->next_connect++];
        c->state = C_CONNECTING;
        sh->handshaking++;
        if (nana_quic_connect(sh->ep, opt.co.host, opt.co.port, opt.co.server_name, NULL, 0, c,
                              &c->h)) {
            c->state = C_DEAD;
            sh->handshaking--;
            atomic_fetch_add(&sh->failed, 1);
            record_error(sh, "cannot start a connection");
        } else if (first_only) {
            return; /* from here on the I/O thread may run this shard's callbacks */
        }
    }
}

/* start_connects on the shard's I/O thread. */
void start_next_connect(shard *sh)
{
    start_connects(sh, false);
}

/* Posted once per shard at the start: the clock runs, closed-loop calls begin. */
static void go_post(nana_quic_conn *unused, void *arg)
{
    (void)unused;
    shard *sh = arg;
    sh->going = true;
    if (opt.rate > 0) return;
    for (unsigned i = 0; i < sh->nconns; i++)
        if (sh->conns[i].state == C_READY) fill(&sh->conns[i], sh->conns[i].qc);
}

/* An open loop's I/O thread looks for due calls at most every PACE_MIN_NS
 * (the calls due meanwhile share a round and its packets; a call may be
 * sent up to that late, and the delay counts in its latency) and at least
 * every PACE_MAX_NS (so a stop is noticed). */
#define PACE_MIN_NS 50000ull
#define PACE_MAX_NS 1000000ull

/* The I/O thread's tick in open-loop runs (nana_quic_ep_set_tick): the
 * calls due by now join the backlog, which drains onto connections with
 * room, in the same round as the replies just read. */
static uint64_t pace_tick(void *arg)
{
    shard *sh = arg;
    double per_shard = opt.rate / opt.threads;
    /* Call k is due at k / rate: by now, floor(elapsed * rate) + 1 of them. */
    uint64_t t0 = atomic_load_explicit(&t_start_ns, memory_order_relaxed);
    uint64_t now = nana_now_ns();
    uint64_t due_total = (uint64_t)((double)(now - t0) / 1e9 * per_shard) + 1;
    uint64_t cap = opt.total ? (opt.total + opt.threads - 1) / opt.threads : UINT64_MAX;
    if (atomic_load(&stopping)) cap = sh->scheduled;
    if (due_total > cap) due_total = cap;
    while (sh->scheduled < due_total) {
        uint64_t due = t0 + (uint64_t)((double)sh->scheduled / per_shard * 1e9);
        sh->scheduled++;
        if (sh->bl_len == sh->bl_cap) { /* a backlog that large is a stalled server */
            record_error(sh, "open-loop backlog full (the server is not keeping up)");
            atomic_fetch_add_explicit(&sh->dropped, 1, memory_order_relaxed);
            continue;
        }
        sh->backlog[(sh->bl_head + sh->bl_len) % sh->bl_cap] = due;
        sh->bl_len++;
    }
    drain_backlog(sh);
    /* Look again when the next call falls due, but no sooner than
     * PACE_MIN_NS (a few calls then share a round and its packets at high
     * rates; a wake-up costs more than a call's own work here). */
    uint64_t next_due = t0 + (uint64_t)((double)sh->scheduled / per_shard * 1e9);
    uint64_t t = nana_now_ns();
    uint64_t wait = next_due > t ? next_due - t : 0;
    return wait < PACE_MIN_NS ? PACE_MIN_NS : wait > PACE_MAX_NS ? PACE_MAX_NS : wait;
}

/* ---- setup: keys on the server --------------------------------------------------- */

/* Writes every key of the key space once (batch_update, 1,000 per call) with
 * the client library, so GET runs read data. 0 or -1 (message printed). */
static int populate(void)
{
    nana_client *c = NULL;
    nana_result r = {0};
    if (nana_client_connect(&opt.co, &c, &r)) {
        fprintf(stderr, "nanasqlite-bench: %s: %s\n", r.error_type, r.message);
        nana_result_free(&r);
        return -1;
    }
    size_t n = opt.value_size > 2 ? opt.value_size - 2 : 0;
    char *value = malloc(n + 1);
    nana_buf b;
    nana_buf_init(&b, 0);
    int rc = value ? 0 : -1;
    if (value) {
        memset(value, 'x', n);
        value[n] = '\0';
    }
    nana_call_opts co = {.db = opt.db, .table = opt.table, .timeout_ms = 120000};
    for (unsigned k = 0; !rc && k < opt.keyspace; k += 1000) {
        nana_buf_reset(&b);
        rc = nana_buf_puts(&b, "[{");
        for (unsigned i = k; !rc && i < k + 1000 && i < opt.keyspace; i++)
            rc = opt.wl.kind == W_FILTER
                     ? nana_buf_printf(&b, "%s\"key:%0*u\":{\"id\":\"key:%0*u\",\"v\":\"%s\"}",
                                       i > k ? "," : "", KEY_DIGITS, i, KEY_DIGITS, i, value)
                     : nana_buf_printf(&b, "%s\"key:%0*u\":\"%s\"", i > k ? "," : "", KEY_DIGITS, i,
                                       value);
        if (!rc) rc = nana_buf_puts(&b, "}]");
        if (!rc && nana_client_call(c, "batch_update", b.data, NULL, &co, &r)) {
            fprintf(stderr, "nanasqlite-bench: writing the keys: %s: %s\n", r.error_type,
                    r.message);
            rc = -1;
        }
        nana_result_free(&r);
    }
    nana_buf_free(&b);
    free(value);
    nana_client_close(c);
    return rc;
}

/* ---- measuring ----------------------------------------------------------------------- */

static uint64_t self_cpu_ns(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (uint64_t)ru.ru_utime.tv_sec * 1000000000ull + (uint64_t)ru.ru_utime.tv_usec * 1000ull +
           (uint64_t)ru.ru_stime.tv_sec * 1000000000ull + (uint64_t)ru.ru_stime.tv_usec * 1000ull;
}

static uint64_t sum_of(size_t off)
{
    uint64_t t = 0;
    for (unsigned i = 0; i < opt.threads; i++)
        t += atomic_load((atomic_uint_fast64_t *)((char *)&shards[i] + off));
    return t;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/*
 * --realtime: puts the calling thread under SCHED_FIFO at RT_PRIORITY (on)
 * or back under SCHED_OTHER (off). 0, or -1 with a message printed.
 */
static int realtime_set(bool on)
{
    struct sched_param sp = {.sched_priority = on ? RT_PRIORITY : 0};
    int err = pthread_setschedparam(pthread_self(), on ? SCHED_FIFO : SCHED_OTHER, &sp);
    if (!err) return 0;
    if (err == EPERM)
        fprintf(stderr,
                "nanasqlite-bench: --realtime: SCHED_FIFO is not permitted (run as root, give "
                "the program CAP_SYS_NICE, or raise RLIMIT_RTPRIO to " STR(RT_PRIORITY) ")\n");
    else
        fprintf(stderr, "nanasqlite-bench: --realtime: %s\n", strerror(err));
    return -1;
}

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&stopping, true);
}

/* ---- command line ------------------------------------------------------------------- */

/* Reads --workload: get | set | mixed:R/W | batch:N. */
static int parse_workload(const nana_opt *row, const char *v, void *field)
{
    (void)row;
    workload_spec *wl = field;
    uint64_t r = 0, w = 0, n = 0;
    char part[32];
    const char *slash = strchr(v, '/');
    if (!strcmp(v, "get")) {
        *wl = (workload_spec){.kind = W_GET, .name = v};
    } else if (!strcmp(v, "set")) {
        *wl = (workload_spec){.kind = W_SET, .name = v};
    } else if (!strncmp(v, "mixed:", 6) && slash && (size_t)(slash - v - 6) < sizeof(part) &&
               (snprintf(part, sizeof(part), "%.*s", (int)(slash - v - 6), v + 6), 1) &&
               !nana_parse_u64(part, 0, 1000000, &r) &&
               !nana_parse_u64(slash + 1, 0, 1000000, &w) && r + w > 0) {
        *wl =
            (workload_spec){.kind = W_MIXED, .read_pct = (unsigned)(r * 100 / (r + w)), .name = v};
    } else if (!strcmp(v, "range")) {
        *wl = (workload_spec){.kind = W_RANGE, .name = v};
    } else if (!strcmp(v, "filter")) {
        *wl = (workload_spec){.kind = W_FILTER, .name = v};
    } else if (!strncmp(v, "batch:", 6) && !nana_parse_u64(v + 6, 1, 10000, &n)) {
        *wl = (workload_spec){.kind = W_BATCH, .batch = (unsigned)n, .name = v};
    } else {
        return nana_err_set(NANA_ERR_INVALID,
                            "\"%.64s\" is not get, set, mixed:R/W (reads/writes, 0..1000000), "
                            "batch:N (1..10000), range or filter",
                            v);
    }
    return 0;
}

#define DEFAULT_TOTAL 100000

#define AT(member) NANA_OPT_AT(options, member)

static const char G_LOAD[] = "load";
static const char G_OUT[] = "output";
static const char *const proto_words[] = {"nana", "grpc", "aql", NULL};

static const nana_opt rows[] = {
    {.name = "conns",
     .short_name = 'c',
     .kind = NANA_OPT_UINT,
     AT(conns),
     .min = 1,
     .max = MAX_CONNS,
     .def = "50",
     .group = G_LOAD,
     .help = "connections"},
    {.name = "pipeline",
     .short_name = 'P',
     .kind = NANA_OPT_UINT,
     AT(pipeline),
     .min = 1,
     .max = MAX_PIPELINE,
     .def = "1",
     .group = G_LOAD,
     .help = "calls in flight per connection"},
    {.name = "calls",
     .short_name = 'n',
     .kind = NANA_OPT_UINT,
     AT(total),
     .min = 1,
     .max = UINT64_MAX / 2,
     .def_doc = STR(DEFAULT_TOTAL) ", none with --duration",
     .group = G_LOAD,
     .help = "calls in all"},
    {.name = "duration",
     .kind = NANA_OPT_DOUBLE,
     AT(duration_s),
     .dmin = 0.001,
     .dmax = 86400,
     .group = G_LOAD,
     .arg = "SEC",
     .help = "run this long instead of -n"},
    {.name = "value-size",
     .short_name = 'd',
     .kind = NANA_OPT_UINT,
     AT(value_size),
     .min = 2,
     .max = 16u << 20,
     .def = "64",
     .group = G_LOAD,
     .help = "value size in bytes, as stored (JSON); each write's starts with a counter"},
    {.name = "keyspace",
     .short_name = 'r',
     .kind = NANA_OPT_UINT,
     AT(keyspace),
     .min = 1,
     .max = UINT32_MAX,
     .def = "100000",
     .group = G_LOAD,
     .help = "keys key:000000000000 .. N-1"},
    {.name = "workload",
     .kind = NANA_OPT_CUSTOM,
     AT(wl),
     .parse = parse_workload,
     .def = "get",
     .group = G_LOAD,
     .arg = "W",
     .help = "get | set | mixed:R/W (reads/writes, e.g. 9/1) | batch:N (batch_get of N keys) | "
             "range (--proto aql: " STR(
                 AQL_RANGE_KEYS) " keys per call) | filter (--proto aql: "
                                 "one value matched by a field, over the whole table)"},
    {.name = "rate",
     .kind = NANA_OPT_DOUBLE,
     AT(rate),
     .dmin = 1,
     .dmax = 1e8,
     .def_doc = "closed loop",
     .group = G_LOAD,
     .arg = "N",
     .help = "open loop: N calls per second in all, latency from when each was due"},
    {.name = "proto",
     .kind = NANA_OPT_ENUM,
     AT(proto),
     .words = proto_words,
     .def = "nana",
     .group = G_LOAD,
     .arg = "P",
     .help = "nana: the NanaSQLite door; grpc: the gRPC door (HTTP/3), typed Get, Set and "
             "BatchGet calls logging in by signature; aql: AQL queries (ExecuteQuery) on the "
             "gRPC door"},
    {.name = "threads",
     .kind = NANA_OPT_UINT,
     AT(threads),
     .min = 1,
     .max = MAX_THREADS,
     .def = "1",
     .group = G_LOAD,
     .help = "QUIC endpoints (UDP sockets, I/O threads)"},
    {.name = "realtime",
     .kind = NANA_OPT_FLAG,
     AT(realtime),
     .group = G_LOAD,
     .help = "I/O threads under SCHED_FIFO " STR(RT_PRIORITY) ", ahead of every ordinary thread "
                                                              "(root or CAP_SYS_NICE)"},
    {.name = "no-populate",
     .kind = NANA_OPT_FLAG,
     AT(no_populate),
     .group = G_LOAD,
     .help = "do not write the key space before a read workload"},
    {.name = "db",
     .kind = NANA_OPT_STRING,
     AT(db),
     .def_doc = "the server's default",
     .group = G_LOAD,
     .arg = "NAME",
     .help = "database the keys are written to (a scratch one: bench.sqlite)"},
    {.name = "table",
     .kind = NANA_OPT_STRING,
     AT(table),
     .def_doc = "data",
     .group = G_LOAD,
     .arg = "NAME",
     .help = "table the keys are written to"},
    {.name = "server-pid",
     .kind = NANA_OPT_UINT,
     AT(server_pid),
     .min = 1,
     .max = 4194304,
     .group = G_OUT,
     .arg = "PID",
     .help = "report the server's CPU time per call (from /proc)"},
    {.name = "json",
     .kind = NANA_OPT_FLAG,
     AT(json),
     .group = G_OUT,
     .help = "one JSON object on stdout"},
    {.name = "csv",
     .kind = NANA_OPT_FLAG,
     AT(csv),
     .group = G_OUT,
     .help = "a CSV header and row on stdout"},
    {.name = "quiet",
     .short_name = 'q',
     .kind = NANA_OPT_FLAG,
     AT(quiet),
     .group = G_OUT,
     .help = "no progress line"},
};

/* Reads the command line into |opt|; 0, 1 (help/version printed), -1 (bad, printed). */
static int parse_args(int argc, char **argv)
{
    nana_conn_flags cf;
    nana_opt_table tables[2] = {{rows, sizeof(rows) / sizeof(rows[0]), &opt},
                                nana_conn_flags_table(&cf)};
    nana_opt_prog prog = {
        .name = "nanasqlite-bench",
        .about = "Load for a NanaSQLite server over QUIC; prints calls per second and latency\n"
                 "percentiles (and the server's CPU time per call with --server-pid). Keys are\n"
                 "written to the database and table named: give a scratch one (--db).\n",
        .epilog = "exit status: 0 done, 1 the run failed (or stalled: no call finished for 60 s),\n"
                  "2 bad command line (or --realtime not permitted), 3 no connection.\n",
        .tables = tables,
        .ntables = 2};
    int first;
    int status = nana_opt_report(&prog, nana_opt_parse(&prog, argc, argv, &first));
    if (status >= 0) return status ? -1 : 1;
    bool aql_only = opt.wl.kind == W_RANGE || opt.wl.kind == W_FILTER;
    if (aql_only != (opt.proto == P_AQL && aql_only) ||
        (opt.proto == P_AQL && opt.wl.kind == W_BATCH)) {
        fprintf(stderr, "nanasqlite-bench: --workload %s %s\n", opt.wl.name,
                aql_only ? "needs --proto aql"
                         : "is not an AQL workload (get, set, mixed, range, filter)");
        return -1;
    }
    if (!opt.total) opt.total = opt.duration_s > 0 ? 0 : DEFAULT_TOTAL;
    if (opt.threads > opt.conns) opt.threads = opt.conns;
    nana_conn_flags_finish(&cf);
    opt.co = cf.o;
    /* The load speaks QUIC (its own HTTP/3 for --proto grpc and aql): an
     * HTTP/2 run would silently measure HTTP/3. */
    if (opt.co.transport == NANA_CLIENT_TRANSPORT_H2) {
        fprintf(stderr, "nanasqlite-bench: --transport h2: the load runs over QUIC only; load "
                        "the HTTP/2 door with h2load (bench/etcd_compare.py shows how)\n");
        return -1;
    }
    return 0;
}

/* ---- running -------------------------------------------------------------------------- */

/* Creates the shards: an endpoint each, their connections and templates. */
static int make_shards(void)
{
    shards = calloc(opt.threads, sizeof(*shards));
    if (!shards) return -1;
    for (unsigned t = 0; t < opt.threads; t++) {
        shard *sh = &shards[t];
        sh->id = t;
        sh->rng = 0x9e3779b97f4a7c15ull * (t + 1) ^ (uint64_t)nana_now_ns();
        sh->nconns = opt.conns / opt.threads + (t < opt.conns % opt.threads);
        sh->conns = calloc(sh->nconns, sizeof(*sh->conns));
        sh->batch_key_at = calloc(opt.wl.batch ? opt.wl.batch : 1, sizeof(size_t));
        sh->bl_cap = 1u << 20;
        sh->backlog = opt.rate > 0 ? calloc(sh->bl_cap, sizeof(uint64_t)) : NULL;
        sh->room = calloc(sh->nconns, sizeof(bconn *));
        if (!sh->conns || !sh->batch_key_at || !sh->room || (opt.rate > 0 && !sh->backlog))
            return -1;
        for (unsigned i = 0; i < sh->nconns; i++) {
            bconn *c = &sh->conns[i];
            c->sh = sh;
            nana_buf_init(&c->auth, 0);
            c->sid_mask = 1;
            while (c->sid_mask < 4 * opt.pipeline)
                c->sid_mask <<= 1;
            c->slots = calloc(opt.pipeline, sizeof(slot));
            c->free_slots = calloc(opt.pipeline, sizeof(uint32_t));
            c->by_sid = calloc(c->sid_mask, sizeof(uint32_t));
            c->sid_mask--;
            if (!c->slots || !c->free_slots || !c->by_sid) return -1;
            for (unsigned k = 0; k < opt.pipeline; k++) {
                c->slots[k].sid = -1;
                c->free_slots[c->nfree++] = opt.pipeline - 1 - k;
            }
        }
        nana_buf_init(&sh->get_tpl, 0);
        nana_buf_init(&sh->set_tpl, 0);
        int rc = opt.wl.kind == W_BATCH ? build_template(&sh->get_tpl, "batch_get", opt.wl.batch,
                                                         true, false, sh->batch_key_at, NULL)
                                        : build_template(&sh->get_tpl, "__getitem__", 1, false,
                                                         false, &sh->get_key_at, NULL);
        if (!rc)
            rc = build_template(&sh->set_tpl, "__setitem__", 1, false, true, &sh->set_key_at,
                                &sh->set_value_at);
        if (rc) return -1;
        unsigned room = opt.value_size - 2; /* the value's characters inside its quotes */
        sh->value_digits = room < VALUE_DIGITS ? room : VALUE_DIGITS;
        nana_quic_config qc;
        nana_quic_config_init(&qc);
        qc.host = strchr(opt.co.host, ':') ? "::" : NULL;
        qc.ca_file = opt.co.ca_file;
        qc.cert_file = opt.co.cert_file;
        qc.key_file = opt.co.cert_file
                          ? (opt.co.cert_key_file ? opt.co.cert_key_file : opt.co.cert_file)
                          : NULL;
        qc.cb = &callbacks;
        qc.max_connections = MAX_CONNS;
        qc.max_streams_bidi = 1;
        qc.idle_timeout_ms = 120000;
        qc.handshake_timeout_ms = 30000;
        if (opt.proto != P_NANA && bench_grpc_setup(sh, &qc)) return -1;
        if (nana_quic_ep_new(&qc, &sh->ep)) {
            fprintf(stderr, "nanasqlite-bench: %s\n", nana_errmsg());
            return -1;
        }
    }
    return 0;
}

/* Prints the results in the chosen form. */
static void report(double secs, uint64_t server_cpu, uint64_t client_cpu)
{
    static hist all;
    memset(&all, 0, sizeof(all));
    uint64_t errors = 0, dropped = 0;
    const char *first = "";
    unsigned ready = 0, failed = 0;
    for (unsigned i = 0; i < opt.threads; i++) {
        hist_merge(&all, &shards[i].hist);
        errors += shards[i].errors;
        dropped += atomic_load(&shards[i].dropped);
        ready += atomic_load(&shards[i].ready);
        failed += atomic_load(&shards[i].failed);
        if (!*first && shards[i].first_error[0]) first = shards[i].first_error;
    }
    uint64_t calls = all.count;
    double ops = secs > 0 ? (double)calls / secs : 0;
    double us[5] = {hist_quantile_us(&all, 0.5), hist_quantile_us(&all, 0.9),
                    hist_quantile_us(&all, 0.99), hist_quantile_us(&all, 0.999),
                    (double)all.max_ns / 1e3};
    double scpu = calls && server_cpu ? (double)server_cpu / 1e3 / (double)calls : 0;
    double ccpu = calls ? (double)client_cpu / 1e3 / (double)calls : 0;
    unsigned keys = opt.wl.kind == W_BATCH   ? opt.wl.batch
                    : opt.wl.kind == W_RANGE ? AQL_RANGE_KEYS
                                             : 1;
    if (opt.json) {
        printf("{\"proto\":\"%s\",\"workload\":\"%s\",\"connections\":%u,\"pipeline\":%u,"
               "\"threads\":%u,\"value_size\":%u,\"keyspace\":%u,\"rate\":%.0f,"
               "\"calls\":%llu,\"seconds\":%.3f,\"ops_per_sec\":%.1f,\"keys_per_sec\":%.1f,"
               "\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,\"max_us\":%.1f,"
               "\"errors\":%llu,\"dropped\":%llu,\"connections_failed\":%u,"
               "\"server_cpu_us_per_op\":%.3f,\"client_cpu_us_per_op\":%.3f}\n",
               opt.proto == P_GRPC  ? "grpc"
               : opt.proto == P_AQL ? "aql"
                                    : "nana",
               opt.wl.name, opt.conns, opt.pipeline, opt.threads, opt.value_size, opt.keyspace,
               opt.rate, (unsigned long long)calls, secs, ops, ops * keys, us[0], us[1], us[2],
               us[3], us[4], (unsigned long long)errors, (unsigned long long)dropped, failed, scpu,
               ccpu);
    } else if (opt.csv) {
        printf("workload,connections,pipeline,threads,value_size,rate,calls,seconds,ops_per_sec,"
               "p50_us,p90_us,p99_us,p999_us,max_us,errors,server_cpu_us_per_op,"
               "client_cpu_us_per_op\n");
        printf("%s,%u,%u,%u,%u,%.0f,%llu,%.3f,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,%llu,%.3f,%.3f\n",
               opt.wl.name, opt.conns, opt.pipeline, opt.threads, opt.value_size, opt.rate,
               (unsigned long long)calls, secs, ops, us[0], us[1], us[2], us[3], us[4],
               (unsigned long long)errors, scpu, ccpu);
    } else {
        printf("====== %s%s ======\n", opt.wl.name,
               opt.proto == P_GRPC  ? " (gRPC)"
               : opt.proto == P_AQL ? " (AQL)"
                                    : "");
        printf("  %llu calls in %.2f seconds\n", (unsigned long long)calls, secs);
        printf("  %u connections (%u failed), %u in flight each, %u threads, %u-byte values, "
               "%u keys\n",
               ready, failed, opt.pipeline, opt.threads, opt.value_size, opt.keyspace);
        if (opt.rate > 0) printf("  open loop at %.0f calls/s\n", opt.rate);
        printf("  latency (us): p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f\n", us[0], us[1],
               us[2], us[3], us[4]);
        printf("  %.1f calls per second%s\n", ops, opt.wl.kind == W_BATCH ? " (batches)" : "");
        if (server_cpu) printf("  server CPU: %.2f us per call\n", scpu);
        printf("  client CPU: %.2f us per call\n", ccpu);
    }
    if (errors || dropped)
        fprintf(stderr, "nanasqlite-bench: %llu errors, %llu dropped; first: %s\n",
                (unsigned long long)errors, (unsigned long long)dropped, first);
}

int main(int argc, char **argv)
{
    int rc = parse_args(argc, argv);
    if (rc) return rc > 0 ? 0 : 2;
    if (sodium_init() < 0 || nana_ed25519_read_private(opt.co.key_file, secret_key)) {
        fprintf(stderr, "nanasqlite-bench: cannot use the private key: %s\n", nana_errmsg());
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL); /* the open-loop pacer's naps are short */
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    if (!opt.no_populate && opt.wl.kind != W_SET && populate()) return 3;
    randombytes_buf(&value_base, sizeof(value_base));
    value_base %= 1000000000000ull; /* 10^VALUE_DIGITS: the counter never wraps in a run */
    /* --realtime: the I/O threads inherit the policy of the thread that
     * creates them (this one, which goes back to SCHED_OTHER after). */
    if (opt.realtime && realtime_set(true)) return 2;
    rc = make_shards();
    if (opt.realtime && realtime_set(false)) return 2;
    if (rc) {
        fprintf(stderr, "nanasqlite-bench: cannot set up the connections\n");
        return 3;
    }
    /* Connect everything first; measure only once every connection is ready. */
    for (unsigned t = 0; t < opt.threads; t++)
        start_connects(&shards[t], true);
    bool tty = isatty(2) && !opt.quiet && !opt.json && !opt.csv;
    for (uint64_t end = nana_now_ns() + 120000000000ull;
         nana_now_ns() < end && !atomic_load(&stopping);) {
        unsigned settled = 0;
        for (unsigned t = 0; t < opt.threads; t++)
            settled += atomic_load(&shards[t].ready) + atomic_load(&shards[t].failed);
        if (settled >= opt.conns) break;
        sleep_ms(10);
    }
    unsigned ready = 0;
    for (unsigned t = 0; t < opt.threads; t++)
        ready += atomic_load(&shards[t].ready);
    if (!ready) {
        for (unsigned t = 0; t < opt.threads; t++)
            nana_quic_ep_del(shards[t].ep); /* the I/O threads stop: first_error is final */
        fprintf(stderr, "nanasqlite-bench: no connection could be opened (%s)\n",
                shards[0].first_error[0] ? shards[0].first_error : "timed out");
        return 3;
    }
    uint64_t cpu0 = opt.server_pid ? bench_proc_cpu_ns((long)opt.server_pid) : 0,
             self0 = self_cpu_ns();
    uint64_t t0 = nana_now_ns();
    atomic_store(&t_start_ns, t0);
    for (unsigned t = 0; t < opt.threads; t++) {
        nana_quic_post(shards[t].ep, shards[t].conns[0].h, go_post, &shards[t]);
        if (opt.rate > 0 &&
            nana_quic_ep_set_tick(shards[t].ep, PACE_MIN_NS, pace_tick, &shards[t])) {
            fprintf(stderr, "nanasqlite-bench: cannot pace the open loop: %s\n", nana_errmsg());
            return 1;
        }
    }
    uint64_t last_print = t0, last_done = 0, last_progress = t0, progress_done = 0;
    bool stalled = false;
    const size_t done_off = offsetof(shard, done), started_off = offsetof(shard, started),
                 dropped_off = offsetof(shard, dropped);
    for (;;) {
        uint64_t now = nana_now_ns();
        double el = (double)(now - t0) / 1e9;
        if (opt.duration_s > 0 && el >= opt.duration_s) atomic_store(&stopping, true);
        uint64_t done = sum_of(done_off), dropped = sum_of(dropped_off);
        if (opt.total && done + dropped >= opt.total) break;
        if (done != progress_done) {
            progress_done = done;
            last_progress = now;
        } else if (now - last_progress > STALL_NS) { /* a lost call would hang -n forever */
            stalled = true;
            break;
        }
        if (atomic_load(&stopping) && done >= sum_of(started_off)) break;
        if (atomic_load(&stopping) && el > opt.duration_s + 10) break; /* replies never came */
        if (tty && now - last_print >= 1000000000ull) {
            fprintf(stderr, "\r%s: %.0f calls/s, %llu done   ", opt.wl.name,
                    (double)(done - last_done) * 1e9 / (double)(now - last_print),
                    (unsigned long long)done);
            last_print = now;
            last_done = done;
        }
        /* The I/O threads pace an open loop themselves: look every millisecond. */
        struct timespec nap = {0, 1000000L};
        nanosleep(&nap, NULL);
    }
    atomic_store(&stopping, true);
    double secs = (double)(nana_now_ns() - t0) / 1e9;
    uint64_t server_cpu = opt.server_pid ? bench_proc_cpu_ns((long)opt.server_pid) - cpu0 : 0;
    uint64_t client_cpu = self_cpu_ns() - self0;
    if (tty) fprintf(stderr, "\r%60s\r", "");
    for (unsigned t = 0; t < opt.threads; t++) {
        nana_quic_ep_del(shards[t].ep); /* the I/O threads stop: their stats are final */
        if (opt.proto != P_NANA) bench_grpc_free(&shards[t]);
    }
    report(secs, server_cpu, client_cpu);
    sodium_memzero(secret_key, sizeof(secret_key));
    if (stalled) {
        fprintf(stderr, "nanasqlite-bench: no call finished for %llu s; the run stopped\n",
                (unsigned long long)(STALL_NS / 1000000000ull));
        return 1;
    }
    return 0;
}
