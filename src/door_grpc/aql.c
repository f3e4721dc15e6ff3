/*
 * aql.c - the AQL services of the door: amaters.aql.AqlService and the
 * design's AmateRS service.
 *
 *   /amaters.aql.AqlService/ExecuteQuery        one query
 *   /amaters.aql.AqlService/ExecuteBatch        queries in one transaction
 *   /amaters.aql.AqlService/ExecuteStream       a range or filter, in batches
 *   /amaters.aql.AqlService/ExecuteInteractive  queries one after another
 *   /amaters.aql.AqlService/HealthCheck, GetServerInfo
 *   /AmateRS/Execute, /AmateRS/ExecuteStream    the same, query_bytes and
 *                                               result_bytes around them
 *
 * Each query is a "sub-call" (gsub): its own core call, arena and answer,
 * made on the connection's thread from its request message and answered
 * by the core (the cache on this thread, the store's writer, a worker).
 * A call keeps its queries in arrival order and sends their answers in
 * that order as they are done, so a slow query holds back the answers
 * after it but never their work.
 *
 * Backpressure both ways: a call that takes a stream of queries keeps
 * their bytes and gives the client flow-control credit back only as each
 * query's answer is queued; it runs at most aql_max_inflight queries at
 * once and starts none while aql_window_bytes of its answers are not yet
 * acknowledged. ExecuteStream reads its result a page (one StreamBatch of
 * about aql_batch_bytes) at a time, the next only when the client has
 * taken enough of the last: a slow reader never makes the server hold the
 * whole result.
 *
 * Errors inside a query are ErrorResponse values in its answer; a call
 * ends with a gRPC status only when the call itself fails (a request that
 * is not the method's message, a stream that breaks the framing).
 */
#include "door_grpc/gdoor_int.h"

#include "aql/nana_aql.h"
#include "auth/nana_proof.h"
#include "util/nana_log.h"
#include "util/nana_mem.h"
#include "util/nana_tcache.h"
#include "util/nana_time.h"

#include "amaters_service.pb-c.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define E(name) AMATERS__ERRORS__ERROR_CODE__ERROR_##name

/* The protocol version this server speaks (amaters-net's). */
enum { AQL_MAJOR = 0, AQL_MINOR = 2, AQL_PATCH = 1 };

enum { GSUB_BLOCK = 1024 };

struct gsub {
    nana_core_call core; /* first: the core's call */
    struct nana_loop_post lp;
    gcall *c; /* holds a reference on its call */
    gsub *next;
    atomic_int refs; /* the call's queue, the core while it has it, a post on its way */
    nana_arena arena;
    nana_aql_plan plan;
    nana_aql_err err;
    bool failed;  /* err holds its answer (refused before it ran) */
    bool done;    /* its answer is in out (read on the connection's thread) */
    bool started; /* handed to the core (nana_core_start) */
    bool unlinked;
    bool page;    /* an ExecuteStream page */
    bool amaters; /* answer as the design's QueryResponse {result_bytes} */
    bool more;    /* a page: rows remain */
    bool ended;   /* a page: its answer is an error, which ends the stream */
    size_t nrows; /* a page: rows it holds */
    char *last;   /* a page: its last key (in the arena) */
    size_t llen;
    const char *request_id;
    const uint8_t *qbytes; /* AmateRS: its query_bytes (a proof covers them) */
    size_t qlen;
    uint64_t t0;       /* when it began, ns */
    uint64_t in_bytes; /* request bytes it stands for (credit once answered) */
    nana_buf out;      /* its framed answer */
    alignas(max_align_t) char block[GSUB_BLOCK];
};

/* ---- sub-calls --------------------------------------------------------------- */

static void sub_free(gsub *s)
{
    gcall *c = s->c;
    for (size_t i = 0; s->plan.kind == NANA_AQL_BATCH && i < s->plan.nops; i++) {
        nana_val_unref(s->plan.ops[i].v); /* the batch's results are ours */
        nana_rows_free(s->plan.ops[i].rows);
    }
    nana_core_result_clear(&s->core.res);
    nana_buf_free(&s->out);
    nana_arena_free(&s->arena);
    nana_tcache_free(s);
    nana_gcall_unref(c);
}

static void sub_unref(gsub *s)
{
    if (atomic_fetch_sub(&s->refs, 1) == 1) sub_free(s);
}

/* A new query of |c|, at the end of its queue. NULL when out of memory. */
static gsub *sub_new(gcall *c)
{
    gsub *s = nana_tcache_alloc(sizeof(*s));
    if (!s) return NULL;
    memset(s, 0, offsetof(gsub, block));
    nana_arena_init(&s->arena, s->block, sizeof(s->block));
    nana_buf_init(&s->out, 0);
    atomic_init(&s->refs, 1);
    atomic_fetch_add(&c->refs, 1);
    s->c = c;
    s->t0 = nana_now_ns();
    if (c->sq_tail)
        c->sq_tail->next = s;
    else
        c->sq_head = s;
    c->sq_tail = s;
    c->nsubs++;
    return s;
}

/* ---- answers ----------------------------------------------------------------- */

/* Milliseconds since the query began. */
static uint64_t exec_ms(const gsub *s)
{
    return (nana_now_ns() - s->t0) / 1000000ull;
}

/* The amaters.aql.QueryResponse of |s| (its result or its error) into |b|. */
static int query_response(gsub *s, nana_buf *b)
{
    nana_core_call *k = &s->core;
    nana_aql_err err;
    const nana_aql_err *e = NULL;
    bool not_found = false;
    if (s->failed) {
        e = &s->err;
    } else if (k->err.code) {
        not_found = k->err.code == NANA_ERR_NOTFOUND &&
                    (s->plan.kind == NANA_AQL_GET || s->plan.kind == NANA_AQL_DELETE);
        if (!not_found) {
            nana_aql_err_from(&k->err, &err);
            if (!nana_core_error_expected(k->err.code))
                nana_log(NANA_LOG_ERROR, "aql query failed: %s: %s", nana_strerror(k->err.code),
                         k->err.msg);
            e = &err;
        }
    }
    if (s->plan.kind == NANA_AQL_BATCH)
        return nana_aql_batch_response(&s->arena, &s->plan, e, s->request_id, exec_ms(s), b);
    if (e) return nana_aql_response(b, NULL, 0, e, s->request_id, exec_ms(s));
    return nana_aql_response_of(&s->arena, &s->plan, &k->res, not_found, s->request_id, exec_ms(s),
                                b);
}

/* A page of ExecuteStream: a StreamBatch, or the error that ends the stream. */
static int page_response(gsub *s, nana_buf *b)
{
    nana_core_call *k = &s->core;
    nana_aql_err err;
    if (s->failed || k->err.code) {
        if (!s->failed) nana_aql_err_from(&k->err, &err);
        s->more = false;
        s->ended = true;
        return nana_aql_stream_error(s->failed ? &s->err : &err, s->c->seq, b);
    }
    const nana_rows *rows = k->res.kind == NANA_RES_ROWS ? k->res.rows : NULL;
    s->nrows = rows ? rows->n : 0;
    s->more = rows && rows->more;
    if (s->nrows) {
        const nana_row *last = &rows->r[s->nrows - 1];
        s->last = nana_arena_alloc(&s->arena, last->klen + 1);
        if (!s->last) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
        memcpy(s->last, last->key, last->klen + 1);
        s->llen = last->klen;
    } else {
        s->more = false; /* nothing read: nothing follows */
    }
    return nana_aql_stream_batch(&s->arena, rows, s->more, s->c->seq, b);
}

/* Wall-clock milliseconds, for proofs. */
static int64_t unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A proof over |query| and |result| by the server's key (nana_proof.h). */
static void make_proof(nana_gdoor *d, const uint8_t *query, size_t qlen, const uint8_t *result,
                       size_t rlen, uint8_t out[NANA_PROOF_BYTES])
{
    (void)nana_proof_make(d->o.proof_sk, nana_gdoor_proof_seq(d), unix_ms(), query, qlen, result,
                          rlen, out);
}

/*
 * Encodes |s|'s answer into s->out as one framed message: on whichever
 * thread answered (the call's fields it reads are set before the query
 * started and not changed while it runs).
 */
static void encode(gsub *s)
{
    size_t at = 0;
    nana_buf *b = &s->out;
    b->len = 0;
    int rc = nana_pbw_frame_begin(b, &at);
    if (!rc) {
        if (s->page) {
            rc = page_response(s, b);
        } else if (s->amaters) {
            nana_buf inner;
            nana_buf_init(&inner, 0);
            rc = query_response(s, &inner);
            if (!rc) rc = nana_pbw_bytes(b, 1, inner.data, inner.len);
            if (!rc && s->c->want_proof) {
                uint8_t proof[NANA_PROOF_BYTES];
                make_proof(s->c->d, s->qbytes, s->qlen, (const uint8_t *)inner.data, inner.len,
                           proof);
                rc = nana_pbw_bytes(b, 2, proof, sizeof(proof));
            }
            nana_buf_free(&inner);
        } else {
            rc = query_response(s, b);
        }
    }
    nana_core_result_clear(&s->core.res);
    if (rc) { /* out of memory: an answer that says so, small enough to make */
        b->len = 0;
        nana_aql_err e;
        nana_aql_fail(&e, E(SERVER_INTERNAL), "out of memory for the answer");
        s->more = false;
        s->ended = true;
        if (!nana_pbw_frame_begin(b, &at)) {
            if (s->page)
                (void)nana_aql_stream_error(&e, s->c->seq, b);
            else
                (void)nana_aql_response(b, NULL, 0, &e, s->request_id, exec_ms(s));
        }
    }
    if (b->len) nana_pbw_frame_end(b, at);
}

static void flush(gcall *c);

/* On the connection's thread: a query's answer the store's threads made. */
static void deliver(nana_loop *loop, struct nana_loop_post *lp)
{
    gsub *s = (gsub *)(void *)((char *)lp - offsetof(gsub, lp));
    gcall *c = s->c;
    if (loop && c->conn && !s->unlinked) {
        s->done = true;
        flush(c);
    }
    sub_unref(s);
}

/* The core's answer (any thread): encoded here, sent from the connection's. */
static void sub_answer(nana_core_call *k)
{
    gsub *s = (gsub *)(void *)k;
    encode(s);
    atomic_fetch_add(&s->refs, 1);
    s->lp.run = deliver;
    nana_loop_post(s->c->loop, &s->lp);
}

static void sub_release(nana_core_call *k)
{
    sub_unref((gsub *)(void *)k);
}

static int sub_bind(const nana_core_call *k, const nana_bind_spec *spec, unsigned max_depth,
                    nana_arena *arena, nana_args *out, nana_error *err)
{
    (void)spec;
    (void)max_depth;
    (void)arena;
    (void)err;
    nana_aql_bind(&((const gsub *)(const void *)k)->plan, out);
    return NANA_OK;
}

/* A get's key, for the cache's fast path. */
static bool sub_only_key(const nana_core_call *k, const char **key, size_t *klen)
{
    const gsub *s = (const gsub *)(const void *)k;
    if (s->plan.kind != NANA_AQL_GET) return false;
    *key = s->plan.key;
    *klen = s->plan.klen;
    return true;
}

static const nana_door_ops sub_ops = {
    .bind = sub_bind,
    .only_key = sub_only_key,
    .answer = sub_answer,
    .release = sub_release,
};

/* ---- running a query ---------------------------------------------------------- */

/* The call's database, from its metadata (NULL: the default). */
static const char *db_of(const gcall *c, uint32_t *len)
{
    const nana_grpc_meta *m = nana_grpc_head_meta(&c->head, "nana-db", 0);
    *len = m ? (uint32_t)m->value_len : 0;
    return m && m->value_len ? (const char *)m->value : NULL;
}

/* The deadline: the earlier of grpc-timeout and the query's timeout_ms. */
static uint64_t deadline_of(const gcall *c, const Amaters__Aql__QueryRequest *r)
{
    uint64_t now = nana_now_ns(), dl = 0;
    if (c->head.timeout_ns >= 0)
        dl = now + (uint64_t)(c->head.timeout_ns > 0 ? c->head.timeout_ns : 1);
    if (r && r->_timeout_ms_case == AMATERS__AQL__QUERY_REQUEST___TIMEOUT_MS_TIMEOUT_MS) {
        uint64_t t = now + (uint64_t)(r->timeout_ms ? r->timeout_ms : 1) * 1000000ull;
        if (!dl || t < dl) dl = t;
    }
    return dl;
}

/* Answers |s| now, on the connection's thread (a refusal, a cached read). */
static void answer_now(gsub *s)
{
    encode(s);
    s->done = true;
}

/*
 * Starts query |s| (its plan made, or s->failed): answered now when it
 * can be, else by the core. Call flush() afterwards.
 */
static void sub_start(gsub *s, uint64_t deadline)
{
    gcall *c = s->c;
    if (s->failed) {
        answer_now(s);
        return;
    }
    nana_core_call *k = &s->core;
    gconn *g = c->conn;
    k->door = &sub_ops;
    k->m = nana_method_find_internal(s->plan.method);
    if (!k->m) k->m = nana_method_find(s->plan.method, strlen(s->plan.method));
    k->method = s->plan.method;
    k->mlen = (uint32_t)strlen(s->plan.method);
    if (k->m && !nana_gdoor_login_allows(g, nana_method_flags(k->m))) {
        nana_aql_fail(&s->err, E(AUTH_INSUFFICIENT_PERMISSIONS),
                      "the bearer token's roles do not allow this query");
        s->failed = true;
        answer_now(s);
        return;
    }
    k->acct = g->auth.acct;
    k->db = db_of(c, &k->dblen);
    k->table = s->plan.kind == NANA_AQL_BATCH ? NULL : s->plan.collection;
    k->tlen = (uint32_t)s->plan.clen;
    k->deadline = deadline;
    k->early = false;
    k->rate = &g->rate;
    k->res.kind = NANA_RES_NIL;
    k->res.v = NULL;
    k->res.rows = NULL;
    if (nana_core_try(c->d->core, k, NULL) == NANA_CORE_DONE) {
        answer_now(s);
        return;
    }
    atomic_fetch_add(&s->refs, 1); /* the core's, until release */
    s->started = true;
    nana_core_start(c->d->core, k);
}

/* Makes the plan of one amaters.aql.QueryRequest for |s|. */
static void sub_plan(gsub *s, const Amaters__Aql__QueryRequest *r)
{
    if (r->_request_id_case == AMATERS__AQL__QUERY_REQUEST___REQUEST_ID_REQUEST_ID)
        s->request_id = r->request_id;
    if (nana_aql_plan_query(&s->arena, r->query, &s->plan, &s->err)) s->failed = true;
}

/* Unpacks one QueryRequest of a stream into |s| (an error answer if it is not one). */
static const Amaters__Aql__QueryRequest *sub_unpack(gsub *s, const uint8_t *p, size_t n)
{
    ProtobufCMessage *m = NULL;
    if (nana_grpc_pb_unpack(&s->arena, &amaters__aql__query_request__descriptor, p, n, &m)) {
        nana_aql_fail(&s->err, E(PROTOCOL_MALFORMED_MESSAGE),
                      "the query is not a valid amaters.aql.QueryRequest");
        s->failed = true;
        return NULL;
    }
    return (const Amaters__Aql__QueryRequest *)m;
}

/*
 * Who sends an AmateRS request: its client_signature when it has one (it
 * may log the connection in), else the connection's login (certificate,
 * token or signature metadata). False when the call failed UNAUTHENTICATED.
 */
static bool amaters_auth(gcall *c, const QueryRequest *q)
{
    char msg[NANA_GRPC_MESSAGE_MAX];
    nana_grpc_status st;
    if (q->client_signature.len) {
        const nana_account *acct = NULL;
        st = nana_gdoor_auth_reqsig(c->conn, q->client_signature.data, q->client_signature.len,
                                    q->query_bytes.data, q->query_bytes.len, &acct, msg,
                                    sizeof(msg));
    } else {
        st = nana_gdoor_auth_call(c->conn, &c->head, msg, sizeof(msg));
    }
    if (st == NANA_GRPC_OK) return true;
    nana_gcall_fail(c, st, "%s", msg);
    return false;
}

/* One query of an AmateRS request: its query_bytes hold the QueryRequest. */
static const Amaters__Aql__QueryRequest *amaters_unpack(gsub *s, const QueryRequest *q)
{
    s->amaters = true;
    s->qbytes = q->query_bytes.data;
    s->qlen = q->query_bytes.len;
    return sub_unpack(s, q->query_bytes.data, q->query_bytes.len);
}

/* ---- the answers going out ------------------------------------------------------ */

/* Appends |len| framed bytes as an owned chunk of |c|'s streamed answer. */
static int chunk_own(gcall *c, const void *p, size_t len)
{
    gchunk *k = nana_malloc(sizeof(*k) + len);
    if (!k) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    memcpy(k + 1, p, len);
    k->p = (const uint8_t *)(k + 1);
    k->len = len;
    k->next = NULL;
    k->owned = k;
    *c->ctail = k;
    c->ctail = &k->next;
    if (!c->csend) c->csend = k;
    c->out_queued += len;
    return NANA_OK;
}

/* Whether the client has taken enough of |c|'s answer for more work. */
static bool room(const gcall *c)
{
    return c->out_queued - c->out_acked < c->d->o.aql_window_bytes;
}

/* Ends |c|'s answer: OK, trailers follow the messages. */
static void finish(gcall *c)
{
    c->answered = true;
    c->status = NANA_GRPC_OK;
    c->message[0] = 0;
    c->body_eof = true;
}

static void start_page(gcall *c);
static void pump(gcall *c);

/* Gives back the flow-control credit (and the budget) of |n| request bytes. */
static void give_credit(gcall *c, uint64_t n)
{
    if (!n) return;
    n = n > c->unconsumed ? c->unconsumed : n;
    c->unconsumed -= n;
    if (c->conn) {
        c->conn->tp->consume(c->conn, c->sid, n);
        c->conn->buffered -= n < c->reserved ? n : c->reserved;
    }
    size_t r = n < c->reserved ? (size_t)n : c->reserved;
    atomic_fetch_sub(&c->d->buffered, r);
    c->reserved -= r;
}

/* The done queries at the head of |c|'s queue send their answers, in order. */
static void take_done(gcall *c)
{
    bool unary = c->gm->kind == G_AQL_QUERY || c->gm->kind == G_AQL_BATCH ||
                 c->gm->kind == G_AMATERS_EXECUTE;
    while (c->sq_head && c->sq_head->done) {
        gsub *s = c->sq_head;
        c->sq_head = s->next;
        if (!c->sq_head) c->sq_tail = NULL;
        c->nsubs--;
        s->unlinked = true;
        give_credit(c, s->in_bytes);
        if (unary) {
            if (c->answered) { /* the call failed meanwhile */
                sub_unref(s);
                continue;
            }
            nana_buf t = c->body;
            c->body = s->out;
            s->out = t;
            if (c->want_proof && c->req_bytes && c->body.len >= NANA_GRPC_PREFIX &&
                (c->proof = nana_arena_alloc(&c->arena, NANA_PROOF_BYTES))) {
                make_proof(c->d, c->req_bytes, c->req_len,
                           (const uint8_t *)c->body.data + NANA_GRPC_PREFIX,
                           c->body.len - NANA_GRPC_PREFIX, c->proof);
                c->proof_len = NANA_PROOF_BYTES;
            }
            finish(c);
            atomic_fetch_add(&c->d->st_calls, 1);
        } else if (!c->cancelled && chunk_own(c, s->out.data, s->out.len)) {
            nana_gcall_fail(c, NANA_GRPC_RESOURCE_EXHAUSTED, "out of memory for the answer");
        } else if (s->page) {
            c->paging = false;
            c->seq++;
            c->total += s->nrows;
            c->more = s->more;
            c->stream_error = s->ended;
            if (s->llen || s->last) {
                char *a = nana_realloc(c->after, s->llen + 1);
                if (a) {
                    memcpy(a, s->last, s->llen + 1);
                    c->after = a;
                    c->alen = s->llen;
                } else {
                    c->more = false;
                }
            }
            atomic_fetch_add(&c->d->st_calls, 1);
        } else {
            atomic_fetch_add(&c->d->st_calls, 1);
        }
        sub_unref(s); /* the queue's */
    }
}

/* ExecuteStream: the next page when there is room, or the end. */
static void stream_next(gcall *c)
{
    if (c->gm->kind != G_AQL_STREAM || c->answered || c->paging) return;
    if (c->more) {
        if (room(c)) start_page(c);
        return;
    }
    if (c->stream_error) { /* its error was the last message */
        finish(c);
        return;
    }
    nana_buf t;
    nana_buf_init(&t, 0);
    size_t at;
    int rc = nana_pbw_frame_begin(&t, &at);
    if (!rc) rc = nana_aql_stream_end(c->total, c->seq, &t);
    if (!rc) nana_pbw_frame_end(&t, at);
    if (!rc) rc = chunk_own(c, t.data, t.len);
    nana_buf_free(&t);
    if (rc)
        nana_gcall_fail(c, NANA_GRPC_RESOURCE_EXHAUSTED, "out of memory for the answer");
    else
        finish(c);
}

/*
 * On the connection's thread: the answers that are done go out in order,
 * then more work starts if there is room; work answered at once (a cached
 * get, a refusal) goes out in the same round.
 */
static void flush(gcall *c)
{
    for (;;) {
        take_done(c);
        if (c->cancelled) return;
        stream_next(c);
        if (c->gm->stream_in && !c->answered) pump(c);
        if (c->answered || !c->sq_head || !c->sq_head->done) break;
    }
    if (c->responded || c->answered || c->chunks) nana_gdoor_resume(c);
}

/* ---- ExecuteStream -------------------------------------------------------------- */

/* Reads the next page of |c|'s range or filter. */
static void start_page(gcall *c)
{
    const Amaters__Aql__QueryRequest *r = (const void *)c->req;
    gsub *s = sub_new(c);
    if (!s) {
        nana_gcall_fail(c, NANA_GRPC_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    s->page = true;
    c->paging = true;
    sub_plan(s, r);
    if (!s->failed && !s->plan.streams) {
        nana_aql_fail(&s->err, E(PROTOCOL_INVALID_REQUEST),
                      "ExecuteStream takes a range or a filter query; use ExecuteQuery");
        s->failed = true;
    }
    if (!s->failed) {
        nana_select *sel = &s->plan.sel;
        if (sel->limit >= 0)
            sel->limit = sel->limit > (int64_t)c->total ? sel->limit - (int64_t)c->total : 0;
        if (c->after) {
            sel->after = c->after;
            sel->alen = c->alen;
            sel->has_after = true;
            sel->offset = 0; /* skipped on the first page */
        }
        sel->max_bytes = c->d->o.aql_batch_bytes;
    }
    sub_start(s, deadline_of(c, r));
}

/* ---- a stream of queries (ExecuteInteractive, AmateRS/ExecuteStream) ------------- */

/*
 * Starts the queries whose bytes have come, while there is room: fewer
 * than aql_max_inflight running and the answers' window not full. When
 * the request has ended and every query answered, the call ends.
 */
static void pump(gcall *c)
{
    while (!c->answered && c->nsubs < c->d->o.aql_max_inflight && room(c)) {
        const uint8_t *p = (const uint8_t *)c->inbuf.data + c->inoff;
        size_t n = c->inbuf.len - c->inoff, before = n;
        nana_grpc_msg m;
        int rc = n ? nana_grpc_deframe(&c->df, &p, &n, &m) : 0;
        c->inoff += before - n;
        if (rc < 0) {
            nana_gcall_fail(c, c->df.error.status, "%s", c->df.error.message);
            return;
        }
        if (rc == 0) break;
        gsub *s = sub_new(c);
        if (!s) {
            nana_gcall_fail(c, NANA_GRPC_RESOURCE_EXHAUSTED, "out of memory");
            return;
        }
        s->in_bytes = NANA_GRPC_PREFIX + m.len;
        const Amaters__Aql__QueryRequest *r;
        if (c->gm->kind == G_AMATERS_STREAM) {
            ProtobufCMessage *q = NULL;
            s->amaters = true;
            if (nana_grpc_pb_unpack(&s->arena, &query_request__descriptor, m.data, m.len, &q)) {
                nana_aql_fail(&s->err, E(PROTOCOL_MALFORMED_MESSAGE),
                              "the request is not a valid AmateRS QueryRequest");
                s->failed = true;
                r = NULL;
            } else if (!amaters_auth(c, (const QueryRequest *)q)) {
                return;
            } else {
                r = amaters_unpack(s, (const QueryRequest *)q);
            }
        } else {
            r = sub_unpack(s, m.data, m.len);
        }
        if (r) sub_plan(s, r);
        sub_start(s, deadline_of(c, r));
    }
    if (c->inoff && c->inoff == c->inbuf.len) {
        c->inbuf.len = 0;
        c->inoff = 0;
    } else if (c->inoff > 65536 && c->inoff > c->inbuf.len / 2) {
        memmove(c->inbuf.data, c->inbuf.data + c->inoff, c->inbuf.len - c->inoff);
        c->inbuf.len -= c->inoff;
        c->inoff = 0;
    }
    if (!c->answered && c->ended && !c->nsubs && c->inoff == c->inbuf.len) {
        if (nana_grpc_deframer_end(&c->df)) {
            nana_gcall_fail(c, c->df.error.status, "%s", c->df.error.message);
            return;
        }
        finish(c);
    }
}

void nana_gdoor_aql_data(gcall *c, const uint8_t *data, size_t len)
{
    c->unconsumed += len;
    if (c->answered) { /* refused: the rest is read and dropped */
        give_credit(c, len);
        return;
    }
    if (!nana_gdoor_reserve(c, len)) {
        give_credit(c, len);
        nana_gcall_fail(c, NANA_GRPC_RESOURCE_EXHAUSTED,
                        "server busy: too many request bytes held; try again later");
        return;
    }
    if (nana_buf_append(&c->inbuf, data, len)) {
        nana_gcall_fail(c, NANA_GRPC_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    flush(c);
}

void nana_gdoor_aql_end(gcall *c)
{
    if (c->answered) return;
    flush(c);
}

/* ---- the unary methods ----------------------------------------------------------- */

/* HealthCheck: SERVING, or NOT_SERVING while the server stops. */
static void health(gcall *c)
{
    const Amaters__Aql__HealthCheckRequest *r = (const void *)c->req;
    Amaters__Aql__HealthCheckResponse m;
    amaters__aql__health_check_response__init(&m);
    bool known = r->_service_case != AMATERS__AQL__HEALTH_CHECK_REQUEST___SERVICE_SERVICE ||
                 !r->service[0] || strcmp(r->service, "amaters.aql.AqlService") == 0 ||
                 strcmp(r->service, "AmateRS") == 0;
    m.status = !known ? AMATERS__AQL__HEALTH_STATUS__HEALTH_SERVICE_UNKNOWN
               : nana_core_draining(c->d->core) ? AMATERS__AQL__HEALTH_STATUS__HEALTH_NOT_SERVING
                                                : AMATERS__AQL__HEALTH_STATUS__HEALTH_SERVING;
    size_t at;
    int rc = nana_pbw_frame_begin(&c->body, &at);
    if (!rc) rc = nana_aql_pack(&m.base, &c->body);
    if (rc) {
        nana_gcall_fail(c, NANA_GRPC_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    nana_pbw_frame_end(&c->body, at);
    finish(c);
    atomic_fetch_add(&c->d->st_calls, 1);
    nana_gdoor_respond(c);
}

/* What this server serves, for GetServerInfo. */
static const char *const capabilities[] = {
    "get",    "set",        "delete",       "range",       "filter",
    "update", "batch",      "stream",       "interactive", "mtls",
    "jwt",    "signatures", "server_proof", "http3",       "json_values",
};

static void info(gcall *c)
{
    Amaters__Aql__ServerInfoResponse m;
    Amaters__Types__Version v;
    Amaters__Types__Version *sup[1] = {&v};
    amaters__aql__server_info_response__init(&m);
    amaters__types__version__init(&v);
    v.major = AQL_MAJOR;
    v.minor = AQL_MINOR;
    v.patch = AQL_PATCH;
    m.version = &v;
    m.n_supported_versions = 1;
    m.supported_versions = sup;
    m.n_capabilities = sizeof(capabilities) / sizeof(capabilities[0]);
    m.capabilities = (char **)(uintptr_t)capabilities;
    m.uptime_seconds = (nana_now_ns() - c->d->started_ns) / 1000000000ull;
    size_t at;
    int rc = nana_pbw_frame_begin(&c->body, &at);
    if (!rc) rc = nana_aql_pack(&m.base, &c->body);
    if (rc) {
        nana_gcall_fail(c, NANA_GRPC_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    nana_pbw_frame_end(&c->body, at);
    finish(c);
    atomic_fetch_add(&c->d->st_calls, 1);
    nana_gdoor_respond(c);
}

/* ExecuteQuery, ExecuteBatch, AmateRS/Execute: one query (or batch), one answer. */
static void unary(gcall *c)
{
    gsub *s = sub_new(c);
    if (!s) {
        nana_gcall_fail(c, NANA_GRPC_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    const Amaters__Aql__QueryRequest *r = NULL;
    switch (c->gm->kind) {
    case G_AQL_QUERY:
        r = (const void *)c->req;
        sub_plan(s, r);
        break;
    case G_AMATERS_EXECUTE:
        if (!amaters_auth(c, (const QueryRequest *)(const void *)c->req)) return;
        r = amaters_unpack(s, (const QueryRequest *)(const void *)c->req);
        if (r) sub_plan(s, r);
        break;
    case G_AQL_BATCH: {
        const Amaters__Aql__BatchRequest *b = (const void *)c->req;
        if (b->_request_id_case == AMATERS__AQL__BATCH_REQUEST___REQUEST_ID_REQUEST_ID)
            s->request_id = b->request_id;
        if (nana_aql_plan_batch(&s->arena, b->queries, b->n_queries, &s->plan, &s->err))
            s->failed = true;
        uint64_t dl = deadline_of(c, NULL);
        if (b->_timeout_ms_case == AMATERS__AQL__BATCH_REQUEST___TIMEOUT_MS_TIMEOUT_MS) {
            uint64_t t = nana_now_ns() + (uint64_t)(b->timeout_ms ? b->timeout_ms : 1) * 1000000ull;
            if (!dl || t < dl) dl = t;
        }
        sub_start(s, dl);
        flush(c);
        return;
    }
    default:
        break;
    }
    sub_start(s, deadline_of(c, r));
    flush(c);
}

void nana_gdoor_aql_begin(gcall *c)
{
    const nana_gdoor_opts *o = &c->d->o;
    const nana_grpc_meta *ask = nana_grpc_head_meta(&c->head, "nana-proof", 0);
    bool asked = ask && ask->value_len == 1 && ask->value[0] == '1';
    c->want_proof = o->proof_sk && (o->proof_mode == NANA_PROOF_ALWAYS ||
                                    (o->proof_mode == NANA_PROOF_ASK && asked));
}

void nana_gdoor_aql_dispatch(gcall *c)
{
    switch (c->gm->kind) {
    case G_AQL_HEALTH:
        health(c);
        return;
    case G_AQL_INFO:
        info(c);
        return;
    case G_AQL_STREAM:
        c->more = true;
        start_page(c);
        flush(c);
        return;
    case G_AQL_INTERACTIVE:
    case G_AMATERS_STREAM:
        return; /* the queries come as data */
    default:
        unary(c);
        return;
    }
}

/* ---- the call's end ------------------------------------------------------------- */

void nana_gdoor_aql_acked(gcall *c, uint64_t n)
{
    c->out_acked += n;
    c->acked_in_head += n;
    while (c->chunks && c->chunks != c->csend && c->acked_in_head >= c->chunks->len) {
        gchunk *k = c->chunks;
        c->acked_in_head -= k->len;
        c->chunks = k->next;
        if (!c->chunks) c->ctail = &c->chunks;
        nana_free(k->owned);
    }
    if (!c->answered && !c->cancelled && room(c) &&
        (c->gm->stream_in || (c->gm->kind == G_AQL_STREAM && c->more && !c->paging)))
        flush(c);
}

void nana_gdoor_aql_detach(gcall *c)
{
    for (gsub *s = c->sq_head, *next; s; s = next) {
        next = s->next;
        s->unlinked = true;
        if (s->started && !s->done && nana_core_cancel(c->d->core, &s->core))
            atomic_fetch_add(&c->d->st_cancelled, 1);
        sub_unref(s); /* the queue's */
    }
    c->sq_head = c->sq_tail = NULL;
    c->nsubs = 0;
    give_credit(c, c->unconsumed);
}

void nana_gdoor_aql_free(gcall *c)
{
    for (gchunk *k = c->chunks, *next; k; k = next) {
        next = k->next;
        nana_free(k->owned);
    }
    c->chunks = NULL;
    nana_buf_free(&c->inbuf);
    nana_free(c->after);
}
