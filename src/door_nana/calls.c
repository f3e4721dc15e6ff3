/*
 * calls.c - the NanaSQLite door's calls that the store's threads answer.
 *
 * When the core cannot answer a call on the connection's thread, the door
 * keeps a door_call for it: the core's call, a copy of the request (the
 * arguments are bound on the worker that runs it), and later the encoded
 * reply. The core answers it once (door_answer: the reply frame is built
 * on the answering thread, off the connection's thread, then posted to
 * it) and releases it once; the connection's stream releases the reply
 * once the client has it. The last of the two frees the call.
 */
#include "door_nana/door_int.h"

#include "util/nana_log.h"
#include "util/nana_mem.h"

#include <stdio.h>
#include <string.h>

/* The stream error code of a reply that could not be sent (too large, say). */
#define APP_REPLY_FAILED 0x102

typedef struct door_call {
    nana_door_req q; /* first: the core's call and the request it binds from */
    nana_door *door;
    uint64_t handle;
    int64_t sid;
    uint8_t *msg; /* the request's copy (NULL when it was bound before queueing ended) */
    nana_accounts *snap;
    nana_buf reply;       /* the encoded answer */
    nana_door_post post;  /* takes it to the connection's thread */
    const uint8_t *fixed; /* the answer is this constant frame (set_ok, internal) */
    size_t fixed_len;
    atomic_int refs; /* the core's, and the reply's */
} door_call;

static void call_unref(door_call *dc)
{
    if (atomic_fetch_sub(&dc->refs, 1) != 1) return;
    nana_buf_free(&dc->reply);
    nana_accounts_unref(dc->snap);
    nana_free(dc->msg);
    nana_free(dc);
}

/* The reply is gone (the client has it, or never will). */
static void reply_release(void *ctx)
{
    door_call *dc = ctx;
    nana_core_unhold(dc->door->core);
    call_unref(dc);
}

/*
 * Whether a reply of |len| bytes must be held back: the connection already
 * holds replies its client has not read and this one would take them past
 * max_unread_reply_bytes (a reply alone may be larger). Then |msg| says so.
 */
bool nana_door_unread_over(nana_door *d, void *conn, size_t len, char *msg, size_t cap)
{
    uint64_t held, acked;
    d->io->send_state(conn, &held, &acked);
    if (!held || held + len <= d->o.max_unread_reply_bytes) return false;
    atomic_fetch_add(&d->st_unread, 1);
    snprintf(msg, cap,
             "Reply of %zu bytes held back: %llu bytes of earlier replies on this connection are "
             "still unread (limit %zu); read them, then call again",
             len, (unsigned long long)held, d->o.max_unread_reply_bytes);
    return true;
}

/* On the connection's thread: sends the call's reply. */
static void deliver(void *conn, void *arg)
{
    door_call *dc = arg;
    nana_door *d = dc->door;
    if (!conn) {
        reply_release(dc);
        return;
    }
    const void *data = dc->fixed ? (const void *)dc->fixed : (const void *)dc->reply.data;
    size_t len = dc->fixed ? dc->fixed_len : dc->reply.len;
    char why[256];
    if (!dc->fixed && nana_door_unread_over(d, conn, len, why, sizeof(why))) {
        nana_buf_free(&dc->reply); /* the large reply goes now, not when acknowledged */
        nana_buf_init(&dc->reply, 0);
        if (nana_reply_error(&dc->reply, "RuntimeError", why, "unread")) {
            nana_buf_free(&dc->reply);
            dc->fixed = nana_reply_internal_frame;
            dc->fixed_len = sizeof(nana_reply_internal_frame);
        }
        data = dc->fixed ? (const void *)dc->fixed : (const void *)dc->reply.data;
        len = dc->fixed ? dc->fixed_len : dc->reply.len;
    }
    if (!d->io->send_ref(conn, dc->sid, data, len, 1, reply_release, dc)) {
        nana_session *s = d->io->session(conn);
        if (s && !dc->fixed) nana_session_watch(s, conn);
        return;
    }
    (void)d->io->reset(conn, dc->sid, APP_REPLY_FAILED); /* never leave the caller waiting */
    reply_release(dc);
}

/* The core's answer: encoded here (a worker, the writer or the deadline
 * thread), sent from the connection's thread. */
static void door_answer(nana_core_call *c)
{
    door_call *dc = (door_call *)(void *)c;
    nana_door *d = dc->door;
    if (!c->err.code && c->res.kind == NANA_RES_NIL && (nana_method_flags(c->m) & NANA_M_ASYNC)) {
        dc->fixed = nana_reply_set_ok; /* a constant frame: nothing to build */
        dc->fixed_len = sizeof(nana_reply_set_ok);
    } else {
        nana_buf_reset(&dc->reply);
        if (nana_reply_answer(&dc->reply, &c->res, &c->err)) { /* no memory for it */
            nana_buf_free(&dc->reply);
            dc->fixed = nana_reply_internal_frame;
            dc->fixed_len = sizeof(nana_reply_internal_frame);
        }
    }
    nana_core_result_clear(&c->res);
    dc->post.fn = deliver;
    dc->post.arg = dc;
    d->io->post(d->ep, dc->handle, &dc->post);
}

static void door_release(nana_core_call *c)
{
    call_unref((door_call *)(void *)c);
}

static int door_bind(const nana_core_call *c, const nana_bind_spec *spec, unsigned max_depth,
                     nana_arena *arena, nana_args *out, nana_error *err)
{
    const nana_door_req *q = (const nana_door_req *)(const void *)c;
    int rc = nana_request_bind(&q->r, spec, max_depth, arena, out);
    return rc ? nana_error_capture(err, rc) : NANA_OK;
}

/* The key of a call whose arguments are one positional str and nothing
 * else (the cache's fast path needs no binding then). */
static bool door_only_key(const nana_core_call *c, const char **key, size_t *klen)
{
    const nana_door_req *q = (const nana_door_req *)(const void *)c;
    if (q->r.nargs != 1 || q->r.nkwargs) return false;
    nana_mp_reader r = q->r.args;
    nana_mp_item it;
    if (nana_mp_read(&r, &it) || it.type != NANA_MP_STR) return false;
    *key = (const char *)it.v.s.p;
    *klen = it.v.s.n;
    return true;
}

const nana_door_ops nana_door_core_ops = {
    .bind = door_bind,
    .only_key = door_only_key,
    .answer = door_answer,
    .release = door_release,
    .encode = nana_reply_encode_value,
    .form = NANA_DOOR_FORM_MSGPACK,
};

int nana_door_queue(nana_door *d, const nana_door_req *q, uint64_t handle, int64_t sid,
                    const uint8_t *msg, size_t len, nana_accounts *snap)
{
    door_call *dc = nana_malloc(sizeof(*dc)); /* every field set below (no memset: hot path) */
    if (!dc) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    dc->q = *q;
    dc->msg = NULL;
    dc->post = (nana_door_post){0};
    dc->fixed = NULL;
    dc->fixed_len = 0;
    /* The request's bytes, unless the core binds them before start returns
     * (then nothing reads them later); a database name the connection
     * remembered (not in the frame) is copied after them. */
    if (!nana_core_binds_now(&q->call)) {
        const nana_core_call *c = &q->call;
        bool own_db =
            c->db && ((const uint8_t *)c->db < msg || (const uint8_t *)c->db >= msg + len);
        size_t extra = own_db ? c->dblen : 0;
        dc->msg = nana_malloc(len + extra + 1);
        if (!dc->msg) {
            nana_free(dc);
            return nana_err_set(NANA_ERR_NOMEM, "out of memory");
        }
        memcpy(dc->msg, msg, len);
        nana_request_rebase(&dc->q.r, msg, dc->msg);
        const uint8_t *to = dc->msg;
#define MOVE(p) ((p) = (p) ? (const void *)(to + ((const uint8_t *)(p)-msg)) : (p))
        MOVE(dc->q.call.method);
        MOVE(dc->q.call.table);
        if (own_db) {
            memcpy(dc->msg + len, c->db, extra);
            dc->q.call.db = (const char *)dc->msg + len;
        } else {
            MOVE(dc->q.call.db);
        }
#undef MOVE
    }
    dc->door = d;
    dc->handle = handle;
    dc->sid = sid;
    dc->snap = nana_accounts_ref(snap);
    nana_buf_init(&dc->reply, 0);
    atomic_init(&dc->refs, 2);
    dc->q.call.door = &nana_door_core_ops;
    dc->q.call.rate = NULL; /* the rate was taken in nana_core_try */
    nana_core_hold(d->core);
    nana_core_start(d->core, &dc->q.call);
    return NANA_OK;
}
