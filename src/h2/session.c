/*
 * session.c - making a server's nghttp2 session with our options and
 * announcing our settings (nana_h2.h).
 */
#include "h2/nana_h2.h"

int nana_h2_server_new(const nana_h2_limits *lim, const nghttp2_session_callbacks *cb, void *user,
                       nghttp2_session **out)
{
    *out = NULL;
    nghttp2_option *opt = NULL;
    int rv = nghttp2_option_new(&opt);
    if (rv) return rv;
    /* The caller gives request bytes back (nghttp2_session_consume) once
     * it has counted them in its own budgets, or once a stream of queries
     * made room for more. */
    nghttp2_option_set_no_auto_window_update(opt, 1);
    /* A SETTINGS frame of more entries than this ends the session. */
    nghttp2_option_set_max_settings(opt, 32);
    /* A client that sends PINGs or SETTINGS and never reads the answers
     * would queue acknowledgements without end: past this many, nghttp2
     * ends the session. Above the guard's PING and SETTINGS bursts, so a
     * flood read in one piece meets the guard first. */
    nghttp2_option_set_max_outbound_ack(opt, 1000);
    /* The HPACK table the server's encoder keeps for its answers. */
    nghttp2_option_set_max_deflate_dynamic_table_size(opt, 4096);
    rv = nghttp2_session_server_new2(out, cb, user, opt);
    nghttp2_option_del(opt);
    if (rv) return rv;
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, lim->max_concurrent_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, lim->stream_window},
        {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, lim->max_frame_size},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, lim->max_header_list},
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
    };
    rv = nghttp2_submit_settings(*out, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0]));
    if (!rv)
        rv = nghttp2_session_set_local_window_size(*out, NGHTTP2_FLAG_NONE, 0,
                                                   (int32_t)lim->conn_window);
    if (rv) {
        nghttp2_session_del(*out);
        *out = NULL;
    }
    return rv;
}
