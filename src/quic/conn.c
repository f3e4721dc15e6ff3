/*
 * conn.c - one QUIC connection: ngtcp2's callbacks, reading datagrams,
 * writing packets (coalesced, GSO-batched) from the streams' queues or
 * from the connection's source, timers, closing and draining. The stream
 * functions of the public API are in stream_api.c.
 *
 * Life of a connection: created by the shard (accept or connect), fed
 * datagrams by nana_quic_conn_read, written once per I/O round by
 * nana_quic_conn_write, woken by its timer (nana_quic_conn_expire). When
 * it closes, the layer above is told at once (stream_close for each open
 * stream, then conn_close) and the shell stays for three PTOs in the
 * closing period (answering with its CONNECTION_CLOSE) or the draining
 * period (silent), so late packets are not mistaken for new connections.
 * Then nana_quic_conn_free releases everything, including the stream state
 * that ngtcp2_conn_del would not report.
 */
#include "quic/quic_int.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Helpers                                                              */
/* ------------------------------------------------------------------ */

/* Marks the connection for freeing at the end of the round. */
static void conn_kill(nana_quic_conn *c)
{
    if (c->dead) return;
    c->dead = true;
    nana_quic_shard_dead(c->shard, c);
}

static ngtcp2_conn *get_conn(ngtcp2_crypto_conn_ref *ref)
{
    return ((nana_quic_conn *)ref->user_data)->q;
}

/* The connection's callbacks: its own, or the endpoint's. */
static const nana_quic_callbacks *app(const nana_quic_conn *c)
{
    return c->cb ? c->cb : &c->shard->ep->cb;
}

static void *app_user(const nana_quic_conn *c)
{
    return c->cb ? c->cb_user : c->shard->ep->cfg.user;
}

/* Tells the layer above that the connection is usable (once). */
static int app_open(nana_quic_conn *c)
{
    if (c->app_opened || c->app_closed) return 0;
    c->app_opened = true;
    nana_quic_tls_peer_info(c);
    if (app(c)->conn_open) return app(c)->conn_open(c, app_user(c));
    return 0;
}

/* Tells the layer above that every stream and the connection are gone
 * (once); frees the streams. */
static void app_gone(nana_quic_conn *c)
{
    nana_quic_stream_table *t = &c->streams;
    const nana_quic_callbacks *cb = app(c);
    /* A client hears about its connection however it ends (it asked for
     * it); a server only about connections it was told were open. */
    if (c->app_opened || (c->is_client && !c->app_closed)) {
        for (size_t i = 0; i < t->nbuckets; i++)
            for (nana_quic_stream *s = t->buckets[i]; s; s = s->hnext)
                if (cb->stream_close && !s->closed) cb->stream_close(c, s->id, 0, app_user(c));
        if (cb->conn_close) cb->conn_close(c, app_user(c));
    }
    c->app_opened = false;
    c->app_closed = true;
    nana_quic_stream_table_free(t);
    c->send_head = c->send_tail = NULL;
}

/* ------------------------------------------------------------------ */
/* ngtcp2 callbacks                                                     */
/* ------------------------------------------------------------------ */

static int cb_recv_stream_data(ngtcp2_conn *q, uint32_t flags, int64_t sid, uint64_t offset,
                               const uint8_t *data, size_t len, void *ud, void *sud)
{
    (void)offset;
    (void)sud;
    nana_quic_conn *c = ud;
    if ((flags & NANA_Q_STREAM_DATA_EARLY) && !c->is_client && !c->early_accepted) {
        c->early_accepted = true;
        c->shard->st.early_accepted++;
    }
    if (app_open(c) < 0) return NGTCP2_ERR_CALLBACK_FAILURE;
    if (!nana_quic_stream_find(&c->streams, sid) && !nana_quic_stream_add(&c->streams, sid))
        return NGTCP2_ERR_CALLBACK_FAILURE;
    const nana_quic_callbacks *cb = app(c);
    if (cb->stream_data &&
        cb->stream_data(c, sid, data, len, (flags & NGTCP2_STREAM_DATA_FLAG_FIN) != 0,
                        (flags & NANA_Q_STREAM_DATA_EARLY) != 0, app_user(c)) < 0)
        return NGTCP2_ERR_CALLBACK_FAILURE;
    /* The layer above has the bytes: give the credit back (unless it
     * says itself when it consumed them). */
    if (!c->credit_by_app) {
        ngtcp2_conn_extend_max_stream_offset(q, sid, len);
        ngtcp2_conn_extend_max_offset(q, len);
    }
    return 0;
}

/* The peer opened stream |sid| (ngtcp2 calls this for remote streams only). */
static int cb_stream_open(ngtcp2_conn *q, int64_t sid, void *ud)
{
    (void)q;
    nana_quic_conn *c = ud;
    nana_quic_stream *s = nana_quic_stream_find(&c->streams, sid);
    if (!s && !(s = nana_quic_stream_add(&c->streams, sid))) return NGTCP2_ERR_CALLBACK_FAILURE;
    s->peer_opened = true;
    nana_quic_credit_opened(ngtcp2_is_bidi_stream(sid) ? &c->bidi_credit : &c->uni_credit, sid);
    return 0;
}

/* Runs stop_sending for a stream whose STOP_SENDING was seen. */
static int tell_stop(nana_quic_conn *c, nana_quic_stream *s)
{
    s->stop_pending = false;
    if (c->stops_pending) c->stops_pending--;
    if (s->stop_told || s->closed) return 0;
    s->stop_told = true;
    if (!c->app_opened || !app(c)->stop_sending) return 0;
    return app(c)->stop_sending(c, s->id, s->stop_code, app_user(c));
}

static int cb_stream_close(ngtcp2_conn *q, uint32_t flags, int64_t sid, uint64_t app_error,
                           void *ud, void *sud)
{
    (void)sud;
    nana_quic_conn *c = ud;
    nana_quic_stream *s = nana_quic_stream_find(&c->streams, sid);
    if (!(flags & NGTCP2_STREAM_CLOSE_FLAG_APP_ERROR_CODE_SET)) app_error = 0;
    if (!s) return 0;
    int rv = s->stop_pending ? tell_stop(c, s) : 0;
    s->closed = true;
    nana_quic_send_list_remove(c, s);
    if (c->app_opened && app(c)->stream_close) app(c)->stream_close(c, sid, app_error, app_user(c));
    /* Stream credit for the peer, in batches (credit.c). Streams ngtcp2
     * closed without stream_open it credits itself. */
    if (s->peer_opened) {
        bool bidi = ngtcp2_is_bidi_stream(sid);
        uint32_t n = nana_quic_credit_closed(bidi ? &c->bidi_credit : &c->uni_credit);
        if (n && bidi) ngtcp2_conn_extend_max_streams_bidi(q, n);
        if (n && !bidi) ngtcp2_conn_extend_max_streams_uni(q, n);
    }
    nana_quic_stream_remove(&c->streams, s);
    return rv < 0 ? NGTCP2_ERR_CALLBACK_FAILURE : 0;
}

static int cb_stream_reset(ngtcp2_conn *q, int64_t sid, uint64_t final_size, uint64_t app_error,
                           void *ud, void *sud)
{
    (void)final_size;
    (void)sud;
    nana_quic_conn *c = ud;
    if (c->app_opened && app(c)->stream_reset &&
        app(c)->stream_reset(c, sid, app_error, app_user(c)) < 0)
        return NGTCP2_ERR_CALLBACK_FAILURE;
    ngtcp2_conn_shutdown_stream_read(q, sid, app_error);
    return 0;
}

static int cb_acked(ngtcp2_conn *q, int64_t sid, uint64_t offset, uint64_t datalen, void *ud,
                    void *sud)
{
    (void)q;
    (void)sud;
    nana_quic_conn *c = ud;
    if (c->source)
        return c->source->acked(c, sid, offset, datalen) < 0 ? NGTCP2_ERR_CALLBACK_FAILURE : 0;
    nana_quic_stream *s = nana_quic_stream_find(&c->streams, sid);
    if (s) nana_quic_stream_acked(&c->streams, s, offset + datalen);
    return 0;
}

static int cb_extend_max_stream_data(ngtcp2_conn *q, int64_t sid, uint64_t max, void *ud, void *sud)
{
    (void)q;
    (void)max;
    (void)sud;
    nana_quic_conn *c = ud;
    nana_quic_stream *s = nana_quic_stream_find(&c->streams, sid);
    if (s && s->blocked) {
        s->blocked = false;
        if (c->source) return c->source->unblocked(c, sid) < 0 ? NGTCP2_ERR_CALLBACK_FAILURE : 0;
        if (nana_quic_stream_has_pending(s)) nana_quic_send_list_add(c, s);
    }
    return 0;
}

static void cb_rand(uint8_t *dest, size_t len, const ngtcp2_rand_ctx *ctx)
{
    nana_quic_shard_rand(ctx->native_handle, dest, len);
}

static int cb_new_cid(ngtcp2_conn *q, ngtcp2_cid *cid, uint8_t *token, size_t cidlen, void *ud)
{
    (void)q;
    nana_quic_conn *c = ud;
    if (cidlen != NANA_Q_CIDLEN) return NGTCP2_ERR_CALLBACK_FAILURE;
    nana_quic_shard_new_cid(c->shard, cid);
    if (ngtcp2_crypto_generate_stateless_reset_token(token, c->shard->ep->secret, NANA_Q_SECRETLEN,
                                                     cid) != 0)
        return NGTCP2_ERR_CALLBACK_FAILURE;
    if (nana_quic_cidmap_put(&c->shard->cids, cid, c)) return NGTCP2_ERR_CALLBACK_FAILURE;
    return 0;
}

static int cb_remove_cid(ngtcp2_conn *q, const ngtcp2_cid *cid, void *ud)
{
    (void)q;
    nana_quic_conn *c = ud;
    nana_quic_cidmap_del(&c->shard->cids, cid);
    return 0;
}

/* Forgets one reset token of the connection (index |i|). */
static void reset_key_drop(nana_quic_conn *c, unsigned i)
{
    nana_quic_cidmap *m = &c->shard->resets;
    ngtcp2_cid k;
    ngtcp2_cid_init(&k, c->reset_keys[i], NGTCP2_STATELESS_RESET_TOKENLEN);
    if (nana_quic_cidmap_get(m, k.data, k.datalen) == c) nana_quic_cidmap_del(m, &k);
    if (i != --c->nreset_keys)
        memcpy(c->reset_keys[i], c->reset_keys[c->nreset_keys], NGTCP2_STATELESS_RESET_TOKENLEN);
}

/* Client: the server CIDs in use change; keeps their stateless reset
 * tokens findable, so a reset from a restarted server ends the connection
 * at once instead of at the idle timeout. */
static int cb_dcid_status(ngtcp2_conn *q, int type, uint64_t seq, const ngtcp2_cid *cid,
                          const uint8_t *token, void *ud)
{
    (void)q;
    (void)seq;
    (void)cid;
    nana_quic_conn *c = ud;
    if (!token) return 0;
    for (unsigned i = 0; i < c->nreset_keys; i++) {
        if (memcmp(c->reset_keys[i], token, NGTCP2_STATELESS_RESET_TOKENLEN) == 0) {
            if (type == NGTCP2_CONNECTION_ID_STATUS_TYPE_DEACTIVATE) reset_key_drop(c, i);
            return 0;
        }
    }
    if (type != NGTCP2_CONNECTION_ID_STATUS_TYPE_ACTIVATE || c->nreset_keys == NANA_Q_RESET_KEYS)
        return 0;
    ngtcp2_cid k;
    ngtcp2_cid_init(&k, token, NGTCP2_STATELESS_RESET_TOKENLEN);
    if (nana_quic_cidmap_put(&c->shard->resets, &k, c)) return 0; /* only a lost shortcut */
    memcpy(c->reset_keys[c->nreset_keys++], token, NGTCP2_STATELESS_RESET_TOKENLEN);
    return 0;
}

static int cb_handshake_completed(ngtcp2_conn *q, void *ud)
{
    nana_quic_conn *c = ud;
    nana_quic_shard *sh = c->shard;
    if (c->state == CONN_HANDSHAKE) {
        c->state = CONN_OPEN;
        if (!c->is_client && sh->handshaking) sh->handshaking--;
    }
    sh->st.handshakes_done++;
    /* A client learns it from TLS; a server counted it when 0-RTT stream
     * data arrived (GnuTLS does not flag it without EndOfEarlyData). */
    if (c->is_client) {
        c->early_accepted = (gnutls_session_get_flags(c->tls) & GNUTLS_SFLAGS_EARLY_DATA) != 0;
        if (c->early_accepted) sh->st.early_accepted++;
    }
    if (!c->is_client) {
        /* Without trust_by_app a finished handshake is all the trust there is. */
        if (!sh->ep->cfg.trust_by_app && !c->trusted && c->admit)
            c->trusted = nana_admit_trust(&sh->ep->admit, c->admit);
        if (sh->ep->tls.enable_0rtt) gnutls_session_ticket_send(c->tls, 1, 0);
        /* NEW_TOKEN: the client may skip the Retry next time, from any port. */
        const ngtcp2_path *p = ngtcp2_conn_get_path(q);
        ngtcp2_sockaddr_union a;
        memcpy(&a, p->remote.addr, p->remote.addrlen);
        if (a.sa.sa_family == AF_INET) a.in.sin_port = 0;
        if (a.sa.sa_family == AF_INET6) a.in6.sin6_port = 0;
        uint8_t token[NGTCP2_CRYPTO_MAX_REGULAR_TOKENLEN];
        ngtcp2_ssize n = ngtcp2_crypto_generate_regular_token(
            token, sh->ep->secret, NANA_Q_SECRETLEN, &a.sa, p->remote.addrlen, sh->now);
        if (n > 0) ngtcp2_conn_submit_new_token(q, token, (size_t)n);
    }
    return app_open(c) < 0 ? NGTCP2_ERR_CALLBACK_FAILURE : 0;
}

static int cb_recv_new_token(ngtcp2_conn *q, const ngtcp2_vec *token, void *ud)
{
    (void)q;
    nana_quic_tls_new_token(ud, token->base, token->len);
    return 0;
}

static int cb_path_validation(ngtcp2_conn *q, uint32_t flags, const ngtcp2_path *path,
                              ngtcp2_path_validation_result res, void *ud)
{
    (void)q;
    (void)flags;
    (void)path;
    nana_quic_conn *c = ud;
    if (res == NGTCP2_PATH_VALIDATION_RESULT_SUCCESS) c->shard->st.migrations++;
    return 0;
}

/* The callbacks every connection uses; crypto ones from ngtcp2_crypto. */
/* The peer allows more streams of ours: a client waiting to open one can go on. */
static int cb_extend_max_local_streams_bidi(ngtcp2_conn *q, uint64_t max, void *ud)
{
    (void)q;
    (void)max;
    nana_quic_conn *c = ud;
    if (!c->app_opened || !app(c)->streams_available) return 0;
    app(c)->streams_available(c, app_user(c));
    return 0;
}

/* The peer allows more unidirectional streams of ours. */
static int cb_extend_max_local_streams_uni(ngtcp2_conn *q, uint64_t max, void *ud)
{
    (void)q;
    (void)max;
    nana_quic_conn *c = ud;
    if (c->app_opened && app(c)->uni_streams_available)
        app(c)->uni_streams_available(c, app_user(c));
    return 0;
}

/* The connection whose packet this thread is reading, when its endpoint
 * wants the peer's STOP_SENDING frames (see cb_decrypt); else NULL. */
static _Thread_local nana_quic_conn *stop_watch;

/* A STOP_SENDING frame in a packet of |arg| (a connection): marks the
 * stream, told to the layer above once ngtcp2 has read the packet. Streams
 * we do not know are left alone (no state for what a peer names). */
static void saw_stop(void *arg, int64_t sid, uint64_t code)
{
    nana_quic_conn *c = arg;
    nana_quic_stream *s = nana_quic_stream_find(&c->streams, sid);
    if (!s || s->stop_pending || s->stop_told) return;
    s->stop_pending = true;
    s->stop_code = code;
    c->stops_pending++;
}

/* ngtcp2's decryption; for a watched connection (stop_watch) the frames
 * of each 1-RTT packet are walked for STOP_SENDING, which ngtcp2 0.12
 * handles without telling anyone. */
static int cb_decrypt(uint8_t *dest, const ngtcp2_crypto_aead *aead,
                      const ngtcp2_crypto_aead_ctx *aead_ctx, const uint8_t *ciphertext,
                      size_t ciphertextlen, const uint8_t *nonce, size_t noncelen,
                      const uint8_t *aad, size_t aadlen)
{
    int rv = ngtcp2_crypto_decrypt_cb(dest, aead, aead_ctx, ciphertext, ciphertextlen, nonce,
                                      noncelen, aad, aadlen);
    if (rv == 0 && stop_watch && aadlen && !(aad[0] & 0x80) && ciphertextlen >= aead->max_overhead)
        (void)nana_quic_frames_scan(dest, ciphertextlen - aead->max_overhead, saw_stop, stop_watch);
    return rv;
}

/* Tells the layer above of the STOP_SENDING frames the last packets held. */
static int tell_stops(nana_quic_conn *c)
{
    nana_quic_stream_table *t = &c->streams;
    for (size_t i = 0; i < t->nbuckets && c->stops_pending; i++)
        for (nana_quic_stream *s = t->buckets[i]; s; s = s->hnext)
            if (s->stop_pending && tell_stop(c, s) < 0) return -1;
    c->stops_pending = 0;
    return 0;
}

static void fill_callbacks(ngtcp2_callbacks *cb, bool client)
{
    memset(cb, 0, sizeof(*cb));
    if (client) {
        cb->client_initial = ngtcp2_crypto_client_initial_cb;
        cb->recv_retry = ngtcp2_crypto_recv_retry_cb;
        cb->recv_new_token = cb_recv_new_token;
        cb->dcid_status = cb_dcid_status;
    } else {
        cb->recv_client_initial = ngtcp2_crypto_recv_client_initial_cb;
    }
    cb->recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb;
    cb->encrypt = ngtcp2_crypto_encrypt_cb;
    cb->decrypt = cb_decrypt;
    cb->hp_mask = ngtcp2_crypto_hp_mask_cb;
    cb->update_key = ngtcp2_crypto_update_key_cb;
    cb->delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb;
    cb->delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb;
    cb->get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb;
    cb->version_negotiation = ngtcp2_crypto_version_negotiation_cb;
    cb->recv_stream_data = cb_recv_stream_data;
    cb->stream_open = cb_stream_open;
    cb->stream_close = cb_stream_close;
    cb->stream_reset = cb_stream_reset;
    cb->acked_stream_data_offset = cb_acked;
    cb->extend_max_stream_data = cb_extend_max_stream_data;
    cb->extend_max_local_streams_bidi = cb_extend_max_local_streams_bidi;
    cb->extend_max_local_streams_uni = cb_extend_max_local_streams_uni;
    cb->rand = cb_rand;
    cb->get_new_connection_id = cb_new_cid;
    cb->remove_connection_id = cb_remove_cid;
    cb->handshake_completed = cb_handshake_completed;
    cb->path_validation = cb_path_validation;
}

/* ngtcp2's own trace, on stderr when NANA_QUIC_DEBUG is set (debugging only). */
static void debug_log(void *ud, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void debug_log(void *ud, const char *fmt, ...)
{
    (void)ud;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* Settings and transport parameters from the endpoint's configuration. */
static void fill_settings(nana_quic_conn *c, ngtcp2_settings *s, ngtcp2_transport_params *p,
                          uint64_t ts)
{
    const nana_quic_config *cfg = &c->shard->ep->cfg;
    ngtcp2_settings_default(s);
    s->initial_ts = ts;
    s->rand_ctx.native_handle = c->shard;
    s->max_tx_udp_payload_size = NANA_Q_MAX_UDP;
    s->handshake_timeout = (uint64_t)cfg->handshake_timeout_ms * 1000000ull;
    s->max_stream_window = cfg->stream_window * 4;
    s->max_window = cfg->conn_window * 4;
    if (c->shard->ep->debug) s->log_printf = debug_log;
    ngtcp2_transport_params_default(p);
    p->initial_max_stream_data_bidi_local = cfg->stream_window;
    p->initial_max_stream_data_bidi_remote = cfg->stream_window;
    p->initial_max_stream_data_uni = cfg->stream_window;
    p->initial_max_data = cfg->conn_window;
    p->initial_max_streams_bidi = c->is_client ? 0 : cfg->max_streams_bidi;
    p->initial_max_streams_uni = cfg->max_streams_uni ? cfg->max_streams_uni : NANA_Q_UNI_STREAMS;
    nana_quic_credit_init(&c->bidi_credit, (uint32_t)p->initial_max_streams_bidi);
    nana_quic_credit_init(&c->uni_credit, (uint32_t)p->initial_max_streams_uni);
    p->max_idle_timeout = (uint64_t)cfg->idle_timeout_ms * 1000000ull;
    p->active_connection_id_limit = 3; /* spare CIDs for migration, no more */
}

/* Allocates a connection shell of |sh|. */
static nana_quic_conn *conn_alloc(nana_quic_shard *sh, bool client)
{
    nana_quic_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        (void)nana_err_set(NANA_ERR_NOMEM, "out of memory for a connection");
        return NULL;
    }
    c->shard = sh;
    c->streams.objs = &sh->objs;
    c->is_client = client;
    c->state = CONN_HANDSHAKE;
    c->heap_idx = SIZE_MAX;
    c->trusted = client; /* admission is a server's business */
    c->trust_deadline = UINT64_MAX;
    c->app_timer = UINT64_MAX;
    c->conn_ref.get_conn = get_conn;
    c->conn_ref.user_data = c;
    return c;
}

/* Gives a new connection its TLS session and keep-alive. On failure frees
 * the connection (not yet linked anywhere) and returns the error. */
static int conn_setup_tls(nana_quic_conn *c, const char *server_name, const uint8_t *sess,
                          size_t sess_len)
{
    nana_quic_ep *ep = c->shard->ep;
    int rc = nana_quic_tls_session(&ep->tls, c, server_name, sess, sess_len);
    if (rc) {
        ngtcp2_conn_del(c->q);
        free(c);
        return rc;
    }
    if (ep->cfg.keepalive_ms)
        ngtcp2_conn_set_keep_alive_timeout(c->q, (uint64_t)ep->cfg.keepalive_ms * 1000000ull);
    return NANA_OK;
}

/* Routes a new connection's first SCID to it: without that no packet could
 * reach it. On failure frees the connection (not yet linked anywhere) and
 * returns the error. */
static int conn_route_scid(nana_quic_shard *sh, const ngtcp2_cid *scid, nana_quic_conn *c)
{
    int rc = nana_quic_cidmap_put(&sh->cids, scid, c);
    if (!rc) return NANA_OK;
    ngtcp2_conn_del(c->q);
    gnutls_deinit(c->tls);
    free(c);
    return rc;
}

int nana_quic_conn_accept(nana_quic_shard *sh, const ngtcp2_path *path, const ngtcp2_pkt_hd *hd,
                          const ngtcp2_cid *odcid, const ngtcp2_cid *retry_scid,
                          const uint8_t *token, size_t tokenlen, nana_quic_handle handle,
                          uint64_t ts, nana_quic_conn **out)
{
    nana_quic_conn *c = conn_alloc(sh, false);
    if (!c) return NANA_ERR_NOMEM;
    ngtcp2_callbacks cb;
    ngtcp2_settings s;
    ngtcp2_transport_params p;
    fill_callbacks(&cb, false);
    fill_settings(c, &s, &p, ts);
    if (token) nana_q_settings_token(&s, token, tokenlen);
    nana_q_params_original_dcid(&p, odcid);
    if (retry_scid) {
        p.retry_scid = *retry_scid;
        p.retry_scid_present = 1;
    }
    ngtcp2_cid scid;
    nana_quic_shard_new_cid(sh, &scid);
    p.stateless_reset_token_present = 1;
    ngtcp2_crypto_generate_stateless_reset_token(p.stateless_reset_token, sh->ep->secret,
                                                 NANA_Q_SECRETLEN, &scid);
    nana_q_path_storage_init(&c->ps, path);
    int rv = ngtcp2_conn_server_new(&c->q, &hd->scid, &scid, &c->ps.path, hd->version, &cb, &s, &p,
                                    NULL, c);
    if (rv) {
        free(c);
        return nana_err_set(NANA_ERR_INTERNAL, "ngtcp2_conn_server_new: %s", ngtcp2_strerror(rv));
    }
    int rc = conn_setup_tls(c, NULL, NULL, 0);
    if (rc) return rc;
    c->handle = handle;
    if ((rc = conn_route_scid(sh, &scid, c))) return rc;
    /* Route the client's chosen DCIDs here too. */
    c->odcid = *odcid;
    c->odcid_mapped = nana_quic_cidmap_put(&sh->cids, odcid, c) == 0;
    if (retry_scid) {
        c->rcid = hd->dcid;
        c->rcid_mapped = nana_quic_cidmap_put(&sh->cids, &hd->dcid, c) == 0;
    }
    nana_quic_shard_link(sh, c);
    sh->handshaking++;
    sh->st.conns_accepted++;
    atomic_fetch_add(&sh->ep->conns, 1);
    *out = c;
    return NANA_OK;
}

/* Reads a big-endian u32 of the ticket blob. */
static bool blob_part(const uint8_t **p, size_t *left, const uint8_t **part, size_t *len)
{
    if (*left < 4) return false;
    size_t n = ((size_t)(*p)[0] << 24) | ((size_t)(*p)[1] << 16) | ((size_t)(*p)[2] << 8) | (*p)[3];
    if (*left - 4 < n) return false;
    *part = *p + 4;
    *len = n;
    *p += 4 + n;
    *left -= 4 + n;
    return true;
}

int nana_quic_conn_connect(nana_quic_shard *sh, const struct sockaddr *remote, socklen_t remote_len,
                           const char *server_name, const uint8_t *ticket, size_t ticket_len,
                           void *data, nana_quic_handle handle, uint64_t ts, nana_quic_conn **out)
{
    const uint8_t *tls_sess = NULL, *tp = NULL, *token = NULL;
    size_t tls_len = 0, tp_len = 0, token_len = 0;
    if (ticket) {
        const uint8_t *p = ticket;
        size_t left = ticket_len;
        if (!blob_part(&p, &left, &tls_sess, &tls_len) || !blob_part(&p, &left, &tp, &tp_len) ||
            !blob_part(&p, &left, &token, &token_len))
            return nana_err_set(NANA_ERR_INVALID, "the session ticket is malformed");
    }
    nana_quic_conn *c = conn_alloc(sh, true);
    if (!c) return NANA_ERR_NOMEM;
    c->user = data;
    memcpy(&c->remote_store, remote, remote_len);
    memcpy(&c->local_store, &sh->local, sh->local_len);
    ngtcp2_path path = {
        .local = {.addr = &c->local_store.sa, .addrlen = sh->local_len},
        .remote = {.addr = &c->remote_store.sa, .addrlen = remote_len},
    };
    nana_q_path_storage_init(&c->ps, &path);
    ngtcp2_callbacks cb;
    ngtcp2_settings s;
    ngtcp2_transport_params p;
    fill_callbacks(&cb, true);
    fill_settings(c, &s, &p, ts);
    if (token_len) nana_q_settings_token(&s, token, token_len);
    ngtcp2_cid dcid, scid;
    dcid.datalen = NANA_Q_CIDLEN;
    nana_quic_shard_rand(sh, dcid.data, dcid.datalen);
    nana_quic_shard_new_cid(sh, &scid);
    int rv = ngtcp2_conn_client_new(&c->q, &dcid, &scid, &c->ps.path, NGTCP2_PROTO_VER_V1, &cb, &s,
                                    &p, NULL, c);
    if (rv) {
        free(c);
        return nana_err_set(NANA_ERR_INTERNAL, "ngtcp2_conn_client_new: %s", ngtcp2_strerror(rv));
    }
    if (tp_len) {
        ngtcp2_transport_params early;
        if (ngtcp2_decode_transport_params(
                &early, NGTCP2_TRANSPORT_PARAMS_TYPE_ENCRYPTED_EXTENSIONS, tp, tp_len) == 0)
            ngtcp2_conn_set_early_remote_transport_params(c->q, &early);
    }
    int rc = conn_setup_tls(c, server_name, tls_sess, tls_len);
    if (rc) return rc;
    c->handle = handle;
    if ((rc = conn_route_scid(sh, &scid, c))) return rc;
    nana_quic_shard_link(sh, c);
    atomic_fetch_add(&sh->ep->conns, 1);
    *out = c;
    return NANA_OK;
}

/* ------------------------------------------------------------------ */
/* Closing                                                              */
/* ------------------------------------------------------------------ */

/*
 * When the closing or draining period that starts at |ts| may end: three
 * PTOs, rounded up to a multiple of NANA_Q_CLOSE_SLACK so that connections
 * closing at about the same time are freed in one timer wake-up, not one
 * each (the exact end does not matter, only that it is not early).
 */
static uint64_t close_period_end(const nana_quic_conn *c, uint64_t ts)
{
    uint64_t end = ts + 3 * ngtcp2_conn_get_pto(c->q);
    return (end + NANA_Q_CLOSE_SLACK - 1) / NANA_Q_CLOSE_SLACK * NANA_Q_CLOSE_SLACK;
}

/* Enters the draining period (the peer closed): silent for 3 PTOs. */
static void start_draining(nana_quic_conn *c, uint64_t ts)
{
    if (c->state == CONN_CLOSING || c->state == CONN_DRAINING) return;
    if (c->state == CONN_HANDSHAKE && !c->is_client && c->shard->handshaking)
        c->shard->handshaking--;
    c->state = CONN_DRAINING;
    c->peer_closed = true;
    c->close_deadline = close_period_end(c, ts);
    app_gone(c);
    nana_quic_conn_update_timer(c);
}

/* Hands one datagram of this connection to the shard's sink. */
static void send_one(nana_quic_conn *c, const ngtcp2_path *path, const uint8_t *data, size_t len)
{
    nana_quic_shard *sh = c->shard;
    sh->tx->send(sh->tx, path, data, len, len);
}

void nana_quic_conn_start_close(nana_quic_conn *c, const nana_q_ccerr *ccerr, uint64_t ts)
{
    if (c->state == CONN_CLOSING || c->state == CONN_DRAINING) return;
    if (c->state == CONN_HANDSHAKE && !c->is_client && c->shard->handshaking)
        c->shard->handshaking--;
    uint8_t *buf = c->shard->txbuf;
    ngtcp2_path_storage ps;
    ngtcp2_path_storage_zero(&ps);
    ngtcp2_pkt_info pi;
    ngtcp2_ssize n =
        ngtcp2_conn_write_connection_close(c->q, &ps.path, &pi, buf, NANA_Q_MAX_UDP, ccerr, ts);
    c->state = CONN_CLOSING;
    c->close_deadline = close_period_end(c, ts);
    if (n > 0) {
        c->close_pkt = malloc((size_t)n);
        if (c->close_pkt) {
            memcpy(c->close_pkt, buf, (size_t)n);
            c->close_len = (size_t)n;
        }
        c->close_sent_at = ts;
        send_one(c, &ps.path, buf, (size_t)n);
    } else {
        conn_kill(c);
    }
    app_gone(c);
    nana_quic_conn_update_timer(c);
}

/* Closes after an ngtcp2 error |rv|. */
static void fail(nana_quic_conn *c, int rv, uint64_t ts)
{
    nana_q_ccerr e;
    switch (rv) {
    case NGTCP2_ERR_DRAINING:
        start_draining(c, ts);
        return;
    case NGTCP2_ERR_DROP_CONN:
    case NGTCP2_ERR_IDLE_CLOSE:
    case NGTCP2_ERR_HANDSHAKE_TIMEOUT:
        if (c->state == CONN_HANDSHAKE && !c->is_client && c->shard->handshaking)
            c->shard->handshaking--;
        c->state = CONN_DRAINING; /* not counted as open any more */
        app_gone(c);
        conn_kill(c);
        return;
    case NGTCP2_ERR_CRYPTO:
        c->tls_failed = true;
        c->verify_status = gnutls_session_get_verify_cert_status(c->tls);
        if (c->shard->ep->debug) {
            gnutls_datum_t st = {NULL, 0};
            gnutls_certificate_verification_status_print(
                gnutls_session_get_verify_cert_status(c->tls), GNUTLS_CRT_X509, &st, 0);
            fprintf(stderr, "TLS failure: alert %d, verify status: %s\n",
                    ngtcp2_conn_get_tls_alert(c->q), st.data ? (char *)st.data : "-");
            gnutls_free(st.data);
        }
        nana_q_ccerr_set_tls_alert(&e, ngtcp2_conn_get_tls_alert(c->q), NULL, 0);
        break;
    case NGTCP2_ERR_CALLBACK_FAILURE:
        /* The layer above failed a callback after asking to close with an
         * error of its own (an HTTP/3 error code): that error goes out, not
         * INTERNAL_ERROR. */
        if (c->close_pending) {
            e = c->pending_ccerr;
            break;
        }
        nana_q_ccerr_set_liberr(&e, rv, NULL, 0);
        break;
    default:
        nana_q_ccerr_set_liberr(&e, rv, NULL, 0);
        break;
    }
    nana_quic_conn_start_close(c, &e, ts);
}

/* ------------------------------------------------------------------ */
/* Reading, writing, timers                                             */
/* ------------------------------------------------------------------ */

/*
 * Server: the bytes of the Initial packets that open a datagram shorter
 * than 1200 bytes (0 if it does not open with one, or one cannot be read
 * whole). RFC 9000 14.1 has the server discard such an Initial packet, but
 * not the packets coalesced after it; ngtcp2 0.12 drops the whole datagram.
 * A client that sends an unpadded ACK-only Initial in front of its
 * Handshake Finished and first request (aioquic before 1.2) would then
 * wait for its PTO to resend the Finished.
 */
static size_t short_initial_prefix(nana_quic_conn *c, const uint8_t *pkt, size_t len)
{
    if (len >= NGTCP2_MAX_UDP_PAYLOAD_SIZE) return 0;
    uint32_t version = ngtcp2_conn_get_client_chosen_version(c->q);
    size_t off = 0;
    while (off < len && (pkt[off] & 0x80)) {
        ngtcp2_pkt_hd hd;
        ngtcp2_ssize n = ngtcp2_pkt_decode_hd_long(&hd, pkt + off, len - off);
        if (n < 0 || hd.type != NGTCP2_PKT_INITIAL || hd.version != version) break;
        if (hd.len > len - off - (size_t)n) break; /* claims more than the datagram holds */
        off += (size_t)n + hd.len;
    }
    return off;
}

void nana_quic_conn_read(nana_quic_conn *c, const ngtcp2_path *path, const uint8_t *pkt, size_t len,
                         uint32_t ecn, uint64_t ts)
{
    if (c->dead) return;
    if (c->state == CONN_DRAINING) return;
    if (c->state == CONN_CLOSING) {
        /* Answer with our CONNECTION_CLOSE, at most once per PTO/4. */
        if (c->close_pkt && ts - c->close_sent_at >= ngtcp2_conn_get_pto(c->q) / 4) {
            c->close_sent_at = ts;
            send_one(c, path, c->close_pkt, c->close_len);
        }
        return;
    }
    if (!c->is_client && len && (pkt[0] & 0x80)) {
        size_t skip = short_initial_prefix(c, pkt, len);
        if (skip == len) return;
        pkt += skip;
        len -= skip;
    }
    ngtcp2_pkt_info pi = {.ecn = (uint8_t)ecn};
    if (app(c)->stop_sending) stop_watch = c;
    int rv = ngtcp2_conn_read_pkt(c->q, path, &pi, pkt, len, ts);
    stop_watch = NULL;
    if (!rv && c->stops_pending && tell_stops(c) < 0) rv = NGTCP2_ERR_CALLBACK_FAILURE;
    if (rv) {
        fail(c, rv, ts);
        return;
    }
    nana_quic_shard_dirty(c->shard, c);
}

/* Sends the packets batched in the shard's buffer: |n| packets, |seg| bytes
 * each except maybe the last, |total| bytes. */
static void flush_batch(nana_quic_conn *c, const ngtcp2_path *path, size_t total, size_t seg)
{
    if (!total) return;
    nana_quic_shard *sh = c->shard;
    sh->tx->send(sh->tx, path, sh->txbuf, total, seg);
}

/* Advances a stream after ngtcp2 took |n| of its bytes. */
static void stream_advance(nana_quic_conn *c, nana_quic_stream *s, ngtcp2_ssize n, bool fin)
{
    if (n > 0) s->sent_off += (uint64_t)n;
    if (fin && s->sent_off == s->queued) s->fin_sent = true;
    if (!nana_quic_stream_has_pending(s)) nana_quic_send_list_remove(c, s);
}

/*
 * A source's stream that ngtcp2 would not write to (error |n| of
 * writev_stream): tells the source. Returns 1 when the write goes on, 0
 * when |n| is no stream error, -1 when the source failed.
 */
static int pull_refused(nana_quic_conn *c, int64_t sid, ngtcp2_ssize n, ngtcp2_ssize ndatalen)
{
    const nana_quic_source *src = c->source;
    nana_quic_stream *s;
    switch (n) {
    case NGTCP2_ERR_WRITE_MORE:
        return src->sent(c, sid, (size_t)ndatalen) < 0 ? -1 : 1;
    case NGTCP2_ERR_STREAM_DATA_BLOCKED:
        s = nana_quic_stream_find(&c->streams, sid);
        if (s) s->blocked = true; /* unblocked from cb_extend_max_stream_data */
        src->blocked(c, sid);
        return 1;
    case NGTCP2_ERR_STREAM_SHUT_WR:
    case NGTCP2_ERR_STREAM_NOT_FOUND:
        src->write_shut(c, sid);
        return 1;
    default:
        return 0;
    }
}

void nana_quic_conn_write(nana_quic_conn *c, uint64_t ts)
{
    if (c->dead || c->state == CONN_CLOSING || c->state == CONN_DRAINING) return;
    nana_quic_shard *sh = c->shard;
    uint8_t *buf = sh->txbuf;
    size_t total = 0, seg = 0, npkts = 0;
    bool drained = false; /* ngtcp2 had nothing more to write */
    size_t quantum = ngtcp2_conn_get_send_quantum(c->q);
    size_t max_pkts = quantum / NANA_Q_MAX_UDP;
    if (max_pkts < 1) max_pkts = 1;
    if (max_pkts > NANA_Q_TX_BURST) max_pkts = NANA_Q_TX_BURST;
    ngtcp2_path_storage ps, batch_ps;
    ngtcp2_path_storage_zero(&ps);
    ngtcp2_path_storage_zero(&batch_ps);
    ngtcp2_pkt_info pi;
    nana_quic_stream *s = c->source ? NULL : c->send_head;
    unsigned spins = 0; /* source answers that put nothing in a packet */
    while (npkts < max_pkts) {
        ngtcp2_vec vec[16];
        size_t nvec = 0;
        int64_t sid = -1;
        uint32_t flags = NGTCP2_WRITE_STREAM_FLAG_MORE;
        bool fin = false;
        if (c->source) {
            /* Pull-style: the source says what goes next (nghttp3_vec and
             * nana_quic_vec have ngtcp2_vec's layout). */
            int f = 0;
            long k = c->source->pull(c, &sid, &f, (nana_quic_vec *)(void *)vec, 16);
            if (k < 0 || k > 16) {
                flush_batch(c, &batch_ps.path, total, seg);
                fail(c, NGTCP2_ERR_CALLBACK_FAILURE, ts);
                return;
            }
            nvec = sid >= 0 ? (size_t)k : 0;
            if (sid >= 0 && f) flags |= NGTCP2_WRITE_STREAM_FLAG_FIN;
        } else if (s && (s->closed || s->blocked || !nana_quic_stream_has_pending(s))) {
            nana_quic_stream *next = s->snext;
            nana_quic_send_list_remove(c, s);
            s = next ? next : c->send_head;
            continue;
        }
        if (s) {
            sid = s->id;
            nvec = nana_quic_stream_unsent(s, vec, 16, NANA_Q_MAX_UDP);
            uint64_t avail = 0;
            for (size_t i = 0; i < nvec; i++)
                avail += vec[i].len;
            if (s->fin_queued && s->sent_off + avail == s->queued) {
                flags |= NGTCP2_WRITE_STREAM_FLAG_FIN;
                fin = true;
            }
        }
        ngtcp2_ssize ndatalen = -1;
        ngtcp2_ssize n = ngtcp2_conn_writev_stream(c->q, &ps.path, &pi, buf + total, NANA_Q_MAX_UDP,
                                                   &ndatalen, flags, sid, vec, nvec, ts);
        if (n < 0) {
            /* The stream errors only come back when a stream was given. */
            if (c->source && sid >= 0) {
                int r = pull_refused(c, sid, n, ndatalen);
                if (r > 0 && (n == NGTCP2_ERR_WRITE_MORE || ++spins < NANA_Q_PULL_SPINS)) continue;
                if (r > 0) break; /* a source that keeps offering what cannot go */
                if (r < 0) n = NGTCP2_ERR_CALLBACK_FAILURE;
            } else if (s && n == NGTCP2_ERR_WRITE_MORE) {
                stream_advance(c, s, ndatalen, fin);
                s = s->in_send_list ? s->snext : c->send_head;
                if (!s) s = c->send_head;
                continue;
            }
            if (s && n == NGTCP2_ERR_STREAM_DATA_BLOCKED) {
                s->blocked = true;
                nana_quic_stream *next = s->snext;
                nana_quic_send_list_remove(c, s);
                s = next ? next : c->send_head;
                continue;
            }
            if (s && (n == NGTCP2_ERR_STREAM_SHUT_WR || n == NGTCP2_ERR_STREAM_NOT_FOUND)) {
                nana_quic_stream *next = s->snext;
                s->fin_sent = true;
                s->sent_off = s->queued;
                nana_quic_send_list_remove(c, s);
                s = next ? next : c->send_head;
                continue;
            }
            flush_batch(c, &batch_ps.path, total, seg);
            fail(c, (int)n, ts);
            return;
        }
        if (c->source) {
            if (sid >= 0 && ndatalen >= 0 && c->source->sent(c, sid, (size_t)ndatalen) < 0) {
                flush_batch(c, &batch_ps.path, total, seg);
                fail(c, NGTCP2_ERR_CALLBACK_FAILURE, ts);
                return;
            }
        } else if (s && ndatalen >= 0) {
            nana_quic_stream *cur = s;
            stream_advance(c, cur, ndatalen, fin);
            s = cur->in_send_list ? (cur->snext ? cur->snext : c->send_head) : c->send_head;
        }
        if (n == 0) {
            drained = true;
            break;
        }
        /* Batch equal-sized packets to one path for one GSO send. */
        if (npkts && (!ngtcp2_path_eq(&batch_ps.path, &ps.path) || (size_t)n > seg)) {
            /* Send the batch, then move the new packet to the front. */
            flush_batch(c, &batch_ps.path, total, seg);
            memmove(buf, buf + total, (size_t)n);
            total = 0;
            npkts = 0;
        }
        if (!npkts) {
            ngtcp2_path_copy(&batch_ps.path, &ps.path);
            seg = (size_t)n;
        }
        total += (size_t)n;
        npkts++;
        if ((size_t)n < seg) { /* a short packet ends a GSO batch */
            flush_batch(c, &batch_ps.path, total, seg);
            total = 0;
            npkts = 0;
        }
        if (total + NANA_Q_MAX_UDP > (size_t)NANA_Q_TX_BURST * NANA_Q_MAX_UDP) {
            flush_batch(c, &batch_ps.path, total, seg);
            total = 0;
        }
    }
    flush_batch(c, &batch_ps.path, total, seg);
    if (c->close_pending) {
        /* Close after everything queued went out (a client's Finished, a
         * last reply), so the peer can read the CONNECTION_CLOSE. */
        nana_quic_conn_start_close(c, &c->pending_ccerr, ts);
        return;
    }
    /* Pacing only once the RTT is measured (0.12 pitfall: before the
     * handshake it paces on the 333 ms default and stalls new connections),
     * and only when the send quantum cut the burst short. After a write
     * that sent everything there is nothing to pace, and the pacing time
     * would be the connection's next expiry: a timer wake-up a little
     * later with nothing to do, for every reply (at 52K calls/s open loop:
     * server CPU per call ~15 -> ~10 us, p99 ~2.9 -> ~1.5 ms). */
    if (ngtcp2_conn_get_handshake_completed(c->q) && !drained)
        ngtcp2_conn_update_pkt_tx_time(c->q, ts);
    nana_quic_conn_update_timer(c);
}

/* The reason phrase of a connection closed at its untrusted deadline. */
static const char untrusted_reason[] = "not logged in in time";

void nana_quic_conn_expire(nana_quic_conn *c, uint64_t ts)
{
    if (c->dead) return;
    if (c->state == CONN_CLOSING || c->state == CONN_DRAINING) {
        if (ts >= c->close_deadline) conn_kill(c);
        return;
    }
    if (!c->trusted && ts >= c->trust_deadline) {
        c->shard->st.untrusted_timeouts++;
        nana_q_ccerr e;
        nana_q_ccerr_set_transport(&e, NGTCP2_CONNECTION_REFUSED, (const uint8_t *)untrusted_reason,
                                   sizeof(untrusted_reason) - 1);
        nana_quic_conn_start_close(c, &e, ts);
        return;
    }
    if (ts >= c->app_timer) {
        c->app_timer = UINT64_MAX;
        if (app(c)->timer && c->app_opened) app(c)->timer(c, app_user(c));
        if (c->dead || c->state == CONN_CLOSING || c->state == CONN_DRAINING) return;
    }
    if (ngtcp2_conn_get_expiry(c->q) <= ts) {
        int rv = ngtcp2_conn_handle_expiry(c->q, ts);
        if (rv) {
            fail(c, rv, ts);
            return;
        }
    }
    nana_quic_shard_dirty(c->shard, c);
}

void nana_quic_conn_update_timer(nana_quic_conn *c)
{
    if (c->dead) {
        c->expiry = 0;
    } else if (c->state == CONN_CLOSING || c->state == CONN_DRAINING) {
        c->expiry = c->close_deadline;
    } else {
        uint64_t e = ngtcp2_conn_get_expiry(c->q);
        if (c->app_timer < e) e = c->app_timer;
        if (!c->trusted && c->trust_deadline < e) e = c->trust_deadline;
        c->expiry = e;
    }
    nana_quic_heap_update(c->shard, c);
}

void nana_quic_conn_free(nana_quic_conn *c)
{
    nana_quic_shard *sh = c->shard;
    if (c->state == CONN_HANDSHAKE && !c->is_client && sh->handshaking) sh->handshaking--;
    app_gone(c);
    if (c->q) {
        size_t n = ngtcp2_conn_get_num_scid(c->q);
        ngtcp2_cid *scids = n ? calloc(n, sizeof(*scids)) : NULL;
        if (scids) {
            n = ngtcp2_conn_get_scid(c->q, scids);
            for (size_t i = 0; i < n; i++)
                if (nana_quic_cidmap_get(&sh->cids, scids[i].data, scids[i].datalen) == c)
                    nana_quic_cidmap_del(&sh->cids, &scids[i]);
            free(scids);
        }
    }
    if (c->odcid_mapped && nana_quic_cidmap_get(&sh->cids, c->odcid.data, c->odcid.datalen) == c)
        nana_quic_cidmap_del(&sh->cids, &c->odcid);
    if (c->rcid_mapped && nana_quic_cidmap_get(&sh->cids, c->rcid.data, c->rcid.datalen) == c)
        nana_quic_cidmap_del(&sh->cids, &c->rcid);
    while (c->nreset_keys)
        reset_key_drop(c, c->nreset_keys - 1);
    nana_quic_heap_remove(sh, c);
    nana_quic_shard_unlink(sh, c);
    if (c->q) ngtcp2_conn_del(c->q);
    if (c->tls) gnutls_deinit(c->tls);
    free(c->close_pkt);
    nana_admit_leave(&sh->ep->admit, c->admit);
    atomic_fetch_sub(&sh->ep->conns, 1);
    free(c);
}

/* ------------------------------------------------------------------ */
/* Public connection and stream functions (I/O thread)                 */
/* ------------------------------------------------------------------ */

nana_quic_handle nana_quic_conn_handle(const nana_quic_conn *c)
{
    return c->handle;
}

void nana_quic_conn_set_data(nana_quic_conn *c, void *data)
{
    c->user = data;
}

void *nana_quic_conn_get_data(const nana_quic_conn *c)
{
    return c->user;
}

void nana_quic_conn_set_callbacks(nana_quic_conn *c, const nana_quic_callbacks *cb, void *user)
{
    c->cb = cb;
    c->cb_user = user;
}

const nana_quic_identity *nana_quic_conn_identity(const nana_quic_conn *c)
{
    return &c->identity;
}

const char *nana_quic_conn_alpn(const nana_quic_conn *c)
{
    return c->alpn;
}

int nana_quic_conn_trust(nana_quic_conn *c)
{
    if (c->trusted) return NANA_OK;
    if (c->admit && !nana_admit_trust(&c->shard->ep->admit, c->admit))
        return nana_err_set(NANA_ERR_CLOSED, "the connection is being closed to make room");
    c->trusted = true;
    nana_quic_conn_update_timer(c);
    return NANA_OK;
}

void nana_quic_conn_engage(nana_quic_conn *c)
{
    if (!c->trusted && c->admit) nana_admit_engage(&c->shard->ep->admit, c->admit);
}

void nana_quic_conn_set_timer(nana_quic_conn *c, uint64_t when)
{
    if (c->app_timer == when) return;
    c->app_timer = when;
    if (!c->dead) nana_quic_conn_update_timer(c);
}

uint64_t nana_quic_conn_now(const nana_quic_conn *c)
{
    return c->shard->now;
}

void nana_quic_conn_peer_reason(const nana_quic_conn *c, char *out, size_t cap)
{
    if (!cap) return;
    out[0] = 0;
    if (!c->q || !c->peer_closed) return;
    nana_q_ccerr e;
    nana_q_conn_get_ccerr(c->q, &e);
    size_t n = 0;
    for (size_t i = 0; e.reason && i < e.reasonlen && n + 1 < cap; i++) {
        uint8_t ch = e.reason[i];
        out[n++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
    }
    out[n] = 0;
}

int nana_quic_conn_early_accepted(const nana_quic_conn *c)
{
    return c->early_accepted ? 1 : 0;
}

int nana_quic_conn_tls_failure(const nana_quic_conn *c, char *msg, size_t cap)
{
    if (!c->tls_failed) return 0;
    if (!c->verify_status) {
        snprintf(msg, cap, "the TLS handshake failed (alert %d)",
                 (int)ngtcp2_conn_get_tls_alert(c->q));
        return 1;
    }
    gnutls_datum_t st = {NULL, 0};
    gnutls_certificate_verification_status_print(c->verify_status, GNUTLS_CRT_X509, &st, 0);
    snprintf(msg, cap, "the peer's certificate does not verify: %s",
             st.data ? (const char *)st.data : "unknown reason");
    gnutls_free(st.data);
    return 1;
}

int nana_quic_conn_peer_error(const nana_quic_conn *c, uint64_t *code, int *is_app)
{
    nana_q_ccerr e;
    nana_q_conn_get_ccerr(c->q, &e);
    if (e.type == NGTCP2_CONNECTION_CLOSE_ERROR_CODE_TYPE_TRANSPORT && e.error_code == 0 &&
        !c->peer_closed)
        return 0;
    *code = e.error_code;
    *is_app = e.type == NGTCP2_CONNECTION_CLOSE_ERROR_CODE_TYPE_APPLICATION;
    return c->peer_closed ? 1 : 0;
}

void nana_quic_conn_peer(const nana_quic_conn *c, struct sockaddr_storage *addr, socklen_t *len)
{
    const ngtcp2_path *p = ngtcp2_conn_get_path(c->q);
    memcpy(addr, p->remote.addr, p->remote.addrlen);
    *len = (socklen_t)p->remote.addrlen;
}

void nana_quic_conn_close_transport(nana_quic_conn *c, uint64_t code, const char *reason)
{
    if (c->state == CONN_CLOSING || c->state == CONN_DRAINING || c->dead) return;
    if (!c->close_pending) {
        nana_q_ccerr_set_transport(&c->pending_ccerr, code, (const uint8_t *)reason,
                                   reason ? strlen(reason) : 0);
        c->close_pending = true;
    }
    nana_quic_shard_dirty(c->shard, c);
}

int nana_quic_conn_close(nana_quic_conn *c, uint64_t app_error, const char *reason)
{
    if (c->state == CONN_CLOSING || c->state == CONN_DRAINING || c->dead) return NANA_OK;
    /* Deferred to the write step: this may run inside an ngtcp2 callback,
     * where writing a packet is not allowed. The reason (printable ASCII,
     * cut at 63 bytes) is kept in the connection until then. */
    if (!c->close_pending) {
        size_t n = 0;
        for (; reason && reason[n] && n + 1 < sizeof(c->close_reason); n++)
            c->close_reason[n] = reason[n] >= 0x20 && reason[n] < 0x7f ? reason[n] : '?';
        c->close_reason[n] = 0;
        nana_q_ccerr_set_application(&c->pending_ccerr, app_error, (const uint8_t *)c->close_reason,
                                     n);
        c->close_pending = true;
    }
    nana_quic_shard_dirty(c->shard, c);
    return NANA_OK;
}
