/*
 * call.c - one gRPC call of the door, from its first header field to the
 * end of its stream.
 *
 * A call lives in one allocation: its arena starts in a block inside it,
 * so a call whose head and request message fit there allocates nothing
 * else. The header fields go to the gRPC layer's head, which decides
 * whether the call is accepted; the body goes through the deframer; a
 * unary method's one request message is unpacked into the arena at once
 * (its bytes are nghttp3's and do not outlive the callback). At the end
 * of the request the service runs it (services.c).
 *
 * References: the stream holds one until the stream or its connection is
 * gone (nana_gcall_detach); the core holds one while it has the call; a
 * post on its way to the connection's thread holds one. The last frees
 * the call, on whichever thread drops it.
 */
#include "door_grpc/gdoor_int.h"

#include "util/nana_log.h"
#include "util/nana_mem.h"
#include "util/nana_tcache.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* Whether |c| takes a stream of AQL queries (they keep their own bytes). */
static bool aql_stream(const gcall *c)
{
    return c->gm && c->gm->stream_in && GKIND_AQL(c->gm->kind);
}

gcall *nana_gcall_new(gconn *g, int64_t sid)
{
    gcall *c = nana_tcache_alloc(sizeof(*c)); /* the thread keeps freed ones */
    if (!c) return NULL;
    memset(c, 0, offsetof(gcall, block)); /* the block needs no zeroing */
    c->d = g->d;
    c->conn = g;
    c->handle = g->handle;
    c->loop = g->loop;
    c->sid = sid;
    atomic_init(&c->refs, 1);
    nana_arena_init(&c->arena, c->block, sizeof(c->block));
    nana_grpc_head_init(&c->head, g->qc ? NANA_GRPC_HTTP3 : NANA_GRPC_HTTP2, &c->d->o.lim,
                        &c->arena);
    nana_grpc_deframer_init(&c->df, c->d->o.lim.max_message_bytes);
    nana_buf_init(&c->body, 0);
    nana_buf_init(&c->inbuf, 0);
    c->ctail = &c->chunks;
    c->t_start = c->t_last = g->tp->now(g);
    nana_gdoor_watch(g);
    c->next = g->calls;
    if (g->calls) g->calls->prev = c;
    g->calls = c;
    g->ncalls++;
    return c;
}

static void gcall_free(gcall *c)
{
    nana_gdoor_aql_free(c);
    nana_gdoor_unreserve(c);
    nana_grpc_deframer_free(&c->df);
    nana_buf_free(&c->body);
    nana_arena_free(&c->arena);
    nana_tcache_free(c);
}

void nana_gcall_unref(gcall *c)
{
    if (atomic_fetch_sub(&c->refs, 1) == 1) gcall_free(c);
}

void nana_gcall_detach(gcall *c)
{
    gconn *g = c->conn;
    if (!g) return;
    if (c->prev)
        c->prev->next = c->next;
    else
        g->calls = c->next;
    if (c->next) c->next->prev = c->prev;
    c->prev = c->next = NULL;
    c->t_start = 0;
    g->ncalls--;
    nana_gdoor_aql_detach(c);   /* gives back its credit while the connection is there */
    g->buffered -= c->reserved; /* the door's part goes when the call is freed */
    c->conn = NULL;
    /* Work not yet started is never started: the client will not read it. */
    if (c->in_core && nana_core_cancel(c->d->core, &c->core))
        atomic_fetch_add(&c->d->st_cancelled, 1);
    nana_gcall_unref(c); /* the stream's */
}

void nana_gcall_fail(gcall *c, nana_grpc_status status, const char *fmt, ...)
{
    if (c->answered) return;
    c->status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->message, sizeof(c->message), fmt, ap);
    va_end(ap);
    c->answered = true;
    c->body_eof = true;
    c->body.len = 0;
    atomic_fetch_add(&c->d->st_refused, 1);
    nana_gdoor_respond(c);
}

int nana_gcall_header(gcall *c, const uint8_t *name, size_t nlen, const uint8_t *value, size_t vlen)
{
    /* A refusal is remembered by the head; its verdict comes at the end. */
    (void)nana_grpc_head_add(&c->head, (const char *)name, nlen, (const char *)value, vlen);
    return 0;
}

void nana_gcall_end_headers(gcall *c)
{
    c->head_done = true;
    gconn *g = c->conn;
    nana_grpc_verdict_kind v = nana_grpc_head_finish(&c->head);
    switch (v) {
    case NANA_GRPC_RESET:
        atomic_fetch_add(&c->d->st_refused, 1);
        c->answered = true;
        nana_gdoor_reset(c, c->head.verdict.reset_h3);
        return;
    case NANA_GRPC_HTTP_ERROR:
        atomic_fetch_add(&c->d->st_refused, 1);
        c->answered = true;
        nana_gdoor_respond_http(c, c->head.verdict.http_status);
        return;
    case NANA_GRPC_REFUSE:
        nana_gcall_fail(c, c->head.verdict.error.status, "%s", c->head.verdict.error.message);
        return;
    case NANA_GRPC_ACCEPT:
        break;
    }
    c->gm = nana_gdoor_method(c->head.path, c->head.path_len);
    if (!c->gm) {
        nana_gcall_fail(c, NANA_GRPC_UNIMPLEMENTED, "unknown method %.*s",
                        (int)(c->head.path_len > 200 ? 200 : c->head.path_len), c->head.path);
        return;
    }
    if (c->gm->needs_account) {
        char msg[NANA_GRPC_MESSAGE_MAX];
        nana_grpc_status st = nana_gdoor_auth_call(g, &c->head, msg, sizeof(msg));
        if (st != NANA_GRPC_OK) {
            nana_gcall_fail(c, st, "%s", msg);
            return;
        }
    }
    c->streaming = c->gm->stream_in;
    if (GKIND_AQL(c->gm->kind)) nana_gdoor_aql_begin(c);
    if (aql_stream(c)) {
        /* Its queries run as they come: it is no longer an unfinished
         * request the connection's timer refuses. */
        c->t_start = 0;
        nana_gdoor_aql_dispatch(c);
    }
}

/* A whole request message. */
static void on_message(gcall *c, const nana_grpc_msg *m)
{
    if (c->streaming) {
        nana_gdoor_stream_message(c, m->data, m->len);
        return;
    }
    if (c->nmsgs++) {
        nana_gcall_fail(c, NANA_GRPC_UNIMPLEMENTED,
                        "%s takes one request message; a second one came", c->head.path);
        return;
    }
    if (c->want_proof &&
        (c->req_bytes = (const uint8_t *)nana_arena_dup(&c->arena, m->data, m->len)))
        c->req_len = m->len;
    if (nana_grpc_pb_unpack(&c->arena, c->gm->in, m->data, m->len, &c->req))
        nana_gcall_fail(c, NANA_GRPC_INTERNAL, "the request message: %s", nana_errmsg());
}

bool nana_gcall_keeps_credit(const gcall *c)
{
    return aql_stream(c);
}

void nana_gcall_data(gcall *c, const uint8_t *data, size_t len)
{
    if (aql_stream(c)) {
        if (c->conn) c->t_last = c->conn->tp->now(c->conn);
        nana_gdoor_aql_data(c, data, len);
        return;
    }
    if (c->answered || !c->gm) return; /* refused: the rest is read and dropped */
    if (c->conn) c->t_last = c->conn->tp->now(c->conn);
    if (!nana_gdoor_reserve(c, len)) {
        nana_gcall_fail(c, NANA_GRPC_RESOURCE_EXHAUSTED,
                        "server busy: too many request bytes held; try again later");
        return;
    }
    const uint8_t *p = data;
    size_t n = len;
    nana_grpc_msg m;
    int rc = 0;
    while (!c->answered && (rc = nana_grpc_deframe(&c->df, &p, &n, &m)) == 1)
        on_message(c, &m);
    if (!c->answered && rc < 0) nana_gcall_fail(c, c->df.error.status, "%s", c->df.error.message);
}

void nana_gcall_end_stream(gcall *c)
{
    c->ended = true;
    c->t_start = 0; /* whole: no longer watched (and may go to the core) */
    if (aql_stream(c)) {
        nana_gdoor_aql_end(c);
        return;
    }
    if (c->answered || !c->gm) return;
    if (nana_grpc_deframer_end(&c->df)) {
        nana_gcall_fail(c, c->df.error.status, "%s", c->df.error.message);
        return;
    }
    if (c->streaming) { /* the last of a stream of requests: the answer ends */
        c->answered = true;
        c->status = NANA_GRPC_OK;
        c->body_eof = true;
        nana_gdoor_respond(c);
        return;
    }
    if (!c->nmsgs) {
        nana_gcall_fail(c, NANA_GRPC_INTERNAL, "%s needs a request message; none came",
                        c->head.path);
        return;
    }
    nana_gdoor_dispatch(c);
}
