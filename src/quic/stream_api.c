/*
 * stream_api.c - the stream functions of the public API: opening streams
 * both ways and one way, queueing bytes (push-style: copied or referenced,
 * kept until acknowledged), a connection's source (pull-style: the layer
 * above hands its bytes out as the connection has room; see conn.c's
 * write), flow-control credit the layer above returns itself, and
 * abandoning either side of a stream (RESET_STREAM, STOP_SENDING).
 *
 * All run on the connection's I/O thread. Anything that gives ngtcp2
 * something to send marks the connection for the round's write.
 */
#include "quic/quic_int.h"

/* True once the connection is closing, draining or gone. */
static bool closing(const nana_quic_conn *c)
{
    return c->state == CONN_CLOSING || c->state == CONN_DRAINING || c->dead;
}

/* Whether we may send on |sid| (|write|) or read it: not on the other
 * side's one-way streams (RFC 9000 2.1: bit 1 marks a one-way stream, bit
 * 0 one the server opened). */
static bool stream_goes(const nana_quic_conn *c, int64_t sid, bool write)
{
    if (!(sid & 2)) return true;
    bool ours = (sid & 1) == (c->is_client ? 0 : 1);
    return ours == write;
}

/* Queues bytes on a stream, copied or referenced (see the two callers). */
static int stream_send(nana_quic_conn *c, int64_t sid, const void *data, size_t len, int fin,
                       bool copy, void (*release)(void *ctx), void *ctx)
{
    if (closing(c)) return nana_err_set(NANA_ERR_CLOSED, "the connection is closed");
    nana_quic_stream *s = nana_quic_stream_find(&c->streams, sid);
    if (!s || s->closed)
        return nana_err_set(NANA_ERR_NOTFOUND, "no open stream %lld", (long long)sid);
    if (c->source) return nana_err_set(NANA_ERR_INVALID, "the connection sends from its source");
    if (!stream_goes(c, sid, true))
        return nana_err_set(NANA_ERR_INVALID, "stream %lld is the peer's one-way stream",
                            (long long)sid);
    if (s->fin_queued)
        return nana_err_set(NANA_ERR_INVALID, "stream %lld is finished", (long long)sid);
    size_t limit = c->shard->ep->cfg.max_stream_send_buffer;
    if ((uint64_t)len + (s->queued - s->base_off) > limit)
        return nana_err_set(NANA_ERR_TOOBIG, "stream send buffer would pass %zu bytes", limit);
    if (len) {
        int rc = nana_quic_stream_queue(&c->streams, s, data, len, copy, release, ctx);
        if (rc) return rc;
    } else if (release) {
        release(ctx); /* nothing to keep */
    }
    if (fin) s->fin_queued = true;
    c->shard->unflushed += len;
    nana_quic_send_list_add(c, s);
    nana_quic_shard_dirty(c->shard, c);
    return NANA_OK;
}

int nana_quic_stream_send(nana_quic_conn *c, int64_t sid, const void *data, size_t len, int fin)
{
    return stream_send(c, sid, data, len, fin, true, NULL, NULL);
}

int nana_quic_stream_send_ref(nana_quic_conn *c, int64_t sid, const void *data, size_t len, int fin,
                              void (*release)(void *ctx), void *ctx)
{
    return stream_send(c, sid, data, len, fin, false, release, ctx);
}

int nana_quic_stream_send_copy(nana_quic_conn *c, int64_t sid, const void *data, size_t len,
                               int fin, void (*release)(void *ctx), void *ctx)
{
    return stream_send(c, sid, data, len, fin, true, release, ctx);
}

void nana_quic_conn_send_state(const nana_quic_conn *c, uint64_t *held, uint64_t *acked)
{
    *held = c->streams.held_bytes;
    *acked = c->streams.acked_bytes;
}

size_t nana_quic_stream_unacked(nana_quic_conn *c, int64_t sid)
{
    nana_quic_stream *s = nana_quic_stream_find(&c->streams, sid);
    return s ? (size_t)(s->queued - s->base_off) : 0;
}

int nana_quic_stream_reset(nana_quic_conn *c, int64_t sid, uint64_t app_error)
{
    if (closing(c)) return nana_err_set(NANA_ERR_CLOSED, "the connection is closed");
    nana_quic_stream *s = nana_quic_stream_find(&c->streams, sid);
    if (!s) return nana_err_set(NANA_ERR_NOTFOUND, "no open stream %lld", (long long)sid);
    nana_quic_send_list_remove(c, s);
    int rv = nana_q_shutdown_stream(c->q, sid, app_error);
    if (rv) return nana_err_set(NANA_ERR_NOTFOUND, "stream reset: %s", ngtcp2_strerror(rv));
    nana_quic_shard_dirty(c->shard, c);
    return NANA_OK;
}

/* Opens a stream of ours, both ways (|bidi|) or one way. */
static int stream_open(nana_quic_conn *c, int64_t *sid, bool bidi)
{
    if (closing(c)) return nana_err_set(NANA_ERR_CLOSED, "the connection is closed");
    int rv = bidi ? ngtcp2_conn_open_bidi_stream(c->q, sid, NULL)
                  : ngtcp2_conn_open_uni_stream(c->q, sid, NULL);
    if (rv == NGTCP2_ERR_STREAM_ID_BLOCKED)
        return nana_err_set(NANA_ERR_BUSY, "the peer allows no more streams now");
    if (rv) return nana_err_set(NANA_ERR_INTERNAL, "open stream: %s", ngtcp2_strerror(rv));
    if (!nana_quic_stream_add(&c->streams, *sid)) return NANA_ERR_NOMEM;
    return NANA_OK;
}

int nana_quic_stream_open(nana_quic_conn *c, int64_t *sid)
{
    return stream_open(c, sid, true);
}

int nana_quic_stream_open_uni(nana_quic_conn *c, int64_t *sid)
{
    return stream_open(c, sid, false);
}

int nana_quic_stream_shutdown_write(nana_quic_conn *c, int64_t sid, uint64_t app_error)
{
    if (closing(c)) return nana_err_set(NANA_ERR_CLOSED, "the connection is closed");
    nana_quic_stream *s = nana_quic_stream_find(&c->streams, sid);
    if (!s) return nana_err_set(NANA_ERR_NOTFOUND, "no open stream %lld", (long long)sid);
    if (!stream_goes(c, sid, true))
        return nana_err_set(NANA_ERR_INVALID, "stream %lld is the peer's one-way stream",
                            (long long)sid);
    nana_quic_send_list_remove(c, s);
    s->fin_sent = true; /* nothing more goes out */
    s->sent_off = s->queued;
    int rv = ngtcp2_conn_shutdown_stream_write(c->q, sid, app_error);
    if (rv) return nana_err_set(NANA_ERR_INTERNAL, "stream reset: %s", ngtcp2_strerror(rv));
    nana_quic_shard_dirty(c->shard, c);
    return NANA_OK;
}

int nana_quic_stream_shutdown_read(nana_quic_conn *c, int64_t sid, uint64_t app_error)
{
    if (closing(c)) return nana_err_set(NANA_ERR_CLOSED, "the connection is closed");
    if (!nana_quic_stream_find(&c->streams, sid))
        return nana_err_set(NANA_ERR_NOTFOUND, "no open stream %lld", (long long)sid);
    if (!stream_goes(c, sid, false))
        return nana_err_set(NANA_ERR_INVALID, "stream %lld is our one-way stream", (long long)sid);
    int rv = ngtcp2_conn_shutdown_stream_read(c->q, sid, app_error);
    if (rv) return nana_err_set(NANA_ERR_INTERNAL, "stop sending: %s", ngtcp2_strerror(rv));
    nana_quic_shard_dirty(c->shard, c);
    return NANA_OK;
}

void nana_quic_conn_set_credit_by_app(nana_quic_conn *c)
{
    c->credit_by_app = true;
}

int nana_quic_stream_consumed(nana_quic_conn *c, int64_t sid, uint64_t n)
{
    if (closing(c)) return nana_err_set(NANA_ERR_CLOSED, "the connection is closed");
    if (!n) return NANA_OK;
    /* A stream ngtcp2 no longer knows is ignored there (returns 0). */
    int rv = ngtcp2_conn_extend_max_stream_offset(c->q, sid, n);
    if (rv) return nana_err_set(NANA_ERR_NOMEM, "stream window: %s", ngtcp2_strerror(rv));
    ngtcp2_conn_extend_max_offset(c->q, n);
    nana_quic_shard_dirty(c->shard, c);
    return NANA_OK;
}

void nana_quic_conn_set_source(nana_quic_conn *c, const nana_quic_source *src)
{
    c->source = src;
    nana_quic_shard_dirty(c->shard, c);
}

void nana_quic_conn_source_ready(nana_quic_conn *c)
{
    if (!closing(c)) nana_quic_shard_dirty(c->shard, c);
}
