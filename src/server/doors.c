/*
 * doors.c - the seam between the transport and the doors: the one place
 * that owns the QUIC endpoint's callbacks and picks, for each connection
 * as it opens, the door its negotiated ALPN names. "nanasqlite", or no
 * ALPN at all (the Python client offers none), is the NanaSQLite door;
 * "h3" is the gRPC door (gRPC over HTTP/3). The TLS handshake has already
 * refused any protocol the endpoint does not offer. Each connection then gets its door's own
 * transport callbacks (nana_quic_conn_set_callbacks), so nothing is dispatched per packet. A door
 * sees its connection only through the io it is given here.
 */
#include "server/server_int.h"

#include "util/nana_log.h"
#include "util/nana_time.h"

#include <stdio.h>
#include <string.h>

const char *const *nana_doors_alpn(bool grpc, size_t *n)
{
    static const char *const alpn[] = {"nanasqlite", "h3"};
    *n = grpc ? 2 : 1;
    return alpn;
}

/* ---- the NanaSQLite door's io over a QUIC connection ----------------------------- */

static int q_send_ref(void *conn, int64_t sid, const void *data, size_t len, int fin,
                      void (*release)(void *ctx), void *ctx)
{
    return nana_quic_stream_send_ref(conn, sid, data, len, fin, release, ctx);
}

static int q_send_copy(void *conn, int64_t sid, const void *data, size_t len, int fin,
                       void (*release)(void *ctx), void *ctx)
{
    return nana_quic_stream_send_copy(conn, sid, data, len, fin, release, ctx);
}

static int q_reset(void *conn, int64_t sid, uint64_t code)
{
    return nana_quic_stream_reset(conn, sid, code);
}

static int q_close(void *conn, uint64_t code, const char *reason)
{
    return nana_quic_conn_close(conn, code, reason);
}

static int q_trust(void *conn)
{
    return nana_quic_conn_trust(conn);
}

static void q_engage(void *conn)
{
    nana_quic_conn_engage(conn);
}

static void q_set_timer(void *conn, uint64_t when)
{
    nana_quic_conn_set_timer(conn, when);
}

static uint64_t q_now(void *conn)
{
    return nana_quic_conn_now(conn);
}

static void q_send_state(void *conn, uint64_t *held, uint64_t *acked)
{
    nana_quic_conn_send_state(conn, held, acked);
}

/* On the loop of the post's connection (|loop| NULL: the loop ended first). */
static void q_post_run(nana_loop *loop, struct nana_loop_post *lp)
{
    nana_door_post *p = (nana_door_post *)(void *)lp;
    p->fn(loop ? nana_quic_conn_by_handle(p->ep, p->handle) : NULL, p->arg);
}

static void q_post(void *ep, uint64_t handle, nana_door_post *p)
{
    p->ep = ep;
    p->handle = handle;
    p->lp.run = q_post_run;
    nana_loop_post(nana_quic_handle_loop(ep, handle), &p->lp);
}

static nana_session *q_session(void *conn)
{
    return nana_quic_conn_get_data(conn);
}

const nana_door_io nana_doors_quic_io = {
    .send_ref = q_send_ref,
    .send_copy = q_send_copy,
    .reset = q_reset,
    .close = q_close,
    .trust = q_trust,
    .engage = q_engage,
    .set_timer = q_set_timer,
    .now = q_now,
    .send_state = q_send_state,
    .post = q_post,
    .session = q_session,
};

/* ---- the endpoint's callbacks ------------------------------------------------------ */

/* The accept hook: nothing is accepted until the server is fully set up,
 * nor while it stops, nor from a banned address. */
static int on_accept(const struct sockaddr *addr, socklen_t len, void *user)
{
    (void)len;
    nana_server *s = user;
    if (!atomic_load_explicit(&s->ready, memory_order_acquire)) return NANA_QUIC_REFUSE_STARTING;
    if (atomic_load(&s->draining)) return NANA_QUIC_REFUSE_STOPPING;
    if (s->o.no_bans) return 0;
    return nana_ban_check(s->ban, addr, nana_now_ns()) ? NANA_QUIC_REFUSE_BANNED : 0;
}

static const nana_quic_callbacks nana_conn_callbacks;

static int on_conn_open(nana_quic_conn *c, void *user)
{
    nana_server *s = user;
    const char *alpn = nana_quic_conn_alpn(c);
    if (!strcmp(alpn, "h3") && s->grpc_door) return nana_gdoor_conn_open(s->grpc_door, c);
    if (alpn[0] && strcmp(alpn, "nanasqlite") != 0) return NANA_ERR_INVALID; /* no door */
    nana_session_info info = {.handle = nana_quic_conn_handle(c)};
    nana_quic_conn_peer(c, &info.addr, &info.alen);
    const nana_quic_identity *id = nana_quic_conn_identity(c);
    if (id->verified) {
        info.identity.verified = true;
        memcpy(info.identity.cert_sha256, id->cert_sha256, sizeof(id->cert_sha256));
        memcpy(info.identity.spki_sha256, id->spki_sha256, sizeof(id->spki_sha256));
        snprintf(info.identity.subject, sizeof(info.identity.subject), "%s", id->subject);
    }
    nana_session *ss = nana_session_new(s->nana_door, &info);
    if (!ss) return NANA_ERR_NOMEM;
    nana_quic_conn_set_data(c, ss);
    nana_quic_conn_set_callbacks(c, &nana_conn_callbacks, s);
    nana_session_start(ss, c);
    return 0;
}

static void on_conn_close(nana_quic_conn *c, void *user)
{
    (void)user;
    nana_session *ss = nana_quic_conn_get_data(c);
    nana_quic_conn_set_data(c, NULL);
    nana_session_free(ss);
}

static int on_stream_data(nana_quic_conn *c, int64_t sid, const uint8_t *data, size_t len, int fin,
                          int early, void *user)
{
    (void)user;
    return nana_session_data(nana_quic_conn_get_data(c), c, sid, data, len, fin, early);
}

static void on_stream_close(nana_quic_conn *c, int64_t sid, uint64_t app_error, void *user)
{
    (void)app_error;
    (void)user;
    nana_session_stream_closed(nana_quic_conn_get_data(c), c, sid);
}

static void on_timer(nana_quic_conn *c, void *user)
{
    (void)user;
    nana_session_timer(nana_quic_conn_get_data(c), c);
}

/* A NanaSQLite door connection's own callbacks (set when it opens). */
static const nana_quic_callbacks nana_conn_callbacks = {
    .conn_close = on_conn_close,
    .stream_data = on_stream_data,
    .stream_close = on_stream_close,
    .timer = on_timer,
};

/* The endpoint's: who may connect, and which door a connection opens. */
const nana_quic_callbacks nana_doors_quic_callbacks = {
    .conn_open = on_conn_open,
    .accept = on_accept,
};
