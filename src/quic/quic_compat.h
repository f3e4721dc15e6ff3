/*
 * quic_compat.h - every ngtcp2 0.12 spelling the transport uses that
 * changed in ngtcp2 1.x, in one place. Moving to 1.x means editing this
 * file (and the few call sites marked "compat"), nothing else.
 *
 *   0.12                                          1.x
 *   NGTCP2_CRYPTO_LEVEL_*                         NGTCP2_ENCRYPTION_LEVEL_*
 *   ngtcp2_connection_close_error(_set_*)         ngtcp2_ccerr(_set_*)
 *   ngtcp2_conn_get_connection_close_error        ngtcp2_conn_get_ccerr
 *   ngtcp2_conn_shutdown_stream(c, id, code)      ngtcp2_conn_shutdown_stream(c, flags, id, code)
 *   settings.token (ngtcp2_vec)                   settings.token + settings.tokenlen
 *   NGTCP2_STREAM_DATA_FLAG_EARLY                 NGTCP2_STREAM_DATA_FLAG_0RTT
 *   ngtcp2_conn_get_conn_stat                     ngtcp2_conn_get_conn_info
 *   params.original_dcid (always set)             + params.original_dcid_present
 *
 * Behaviour of 0.12 the transport works around or lives with:
 *   - A peer's STOP_SENDING reaches no callback (ngtcp2 answers it with
 *     RESET_STREAM itself); conn.c finds the frames in decrypted packets
 *     for endpoints that ask for them (the stop_sending callback).
 *   - A peer's one-way stream is never closed (its send side is never
 *     marked acknowledged), so stream_close never runs for it and its
 *     stream credit does not come back: max_streams_uni is a limit for the
 *     connection's life. 1.x closes them once read; credit.c then returns
 *     their credit like that of two-way streams.
 */
#ifndef NANA_QUIC_COMPAT_H
#define NANA_QUIC_COMPAT_H

#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>

typedef ngtcp2_connection_close_error nana_q_ccerr;

#define nana_q_ccerr_default         ngtcp2_connection_close_error_default
#define nana_q_ccerr_set_liberr      ngtcp2_connection_close_error_set_transport_error_liberr
#define nana_q_ccerr_set_tls_alert   ngtcp2_connection_close_error_set_transport_error_tls_alert
#define nana_q_ccerr_set_application ngtcp2_connection_close_error_set_application_error
#define nana_q_ccerr_set_transport   ngtcp2_connection_close_error_set_transport_error
#define nana_q_conn_get_ccerr        ngtcp2_conn_get_connection_close_error

#define NANA_Q_STREAM_DATA_EARLY NGTCP2_STREAM_DATA_FLAG_EARLY
#define NANA_Q_LEVEL_APPLICATION NGTCP2_CRYPTO_LEVEL_APPLICATION

/* Shuts a stream down both ways. */
static inline int nana_q_shutdown_stream(ngtcp2_conn *conn, int64_t sid, uint64_t code)
{
    return ngtcp2_conn_shutdown_stream(conn, sid, code);
}

/* Gives the server (a validated token) or client (a token to send) to ngtcp2. */
static inline void nana_q_settings_token(ngtcp2_settings *s, const uint8_t *tok, size_t len)
{
    s->token.base = (uint8_t *)(uintptr_t)tok; /* ngtcp2 copies it */
    s->token.len = len;
}

/* The server's original_dcid (0.12 has no _present flag). */
static inline void nana_q_params_original_dcid(ngtcp2_transport_params *p, const ngtcp2_cid *cid)
{
    p->original_dcid = *cid;
}

/* Copies |path| into path storage (1.x spells this ngtcp2_path_storage_init2). */
static inline void nana_q_path_storage_init(ngtcp2_path_storage *ps, const ngtcp2_path *path)
{
    ngtcp2_path_storage_init(ps, path->local.addr, path->local.addrlen, path->remote.addr,
                             path->remote.addrlen, NULL);
}

/* The smoothed RTT and PTO inputs of a connection. */
static inline ngtcp2_duration nana_q_smoothed_rtt(ngtcp2_conn *conn)
{
    ngtcp2_conn_stat st;
    ngtcp2_conn_get_conn_stat(conn, &st);
    return st.smoothed_rtt;
}

#endif
