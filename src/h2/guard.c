/*
 * guard.c - the flood guard: token buckets over the frames a client sends
 * that make the server work without asking for anything (nana_h2.h).
 *
 * Each bucket holds |burst| tokens and gains |per_s| a second, counted in
 * thousandths so a slow rate still refills between frames. A frame takes
 * one token; a frame that finds its bucket empty trips the guard, and the
 * connection ends with GOAWAY. Each answer frame the server sends gives
 * a PING token back (bandwidth probes follow the data). WINDOW_UPDATE is not counted: a client
 * reading many small answers sends one per answer, and nghttp2 refuses
 * the only useless kind (an increment of 0). An honest client stays far below: a gRPC
 * client cancels calls one by one, pings for keepalive or bandwidth
 * probes a few times a second, and sends SETTINGS once or twice.
 */
#include "h2/nana_h2.h"

void nana_h2_limits_fill(nana_h2_limits *l)
{
    if (!l->max_concurrent_streams) l->max_concurrent_streams = 100;
    if (!l->stream_window) l->stream_window = 1u << 20;
    if (!l->conn_window) l->conn_window = 16u << 20;
    if (!l->max_frame_size) l->max_frame_size = 16384;
    if (!l->max_header_list) l->max_header_list = 65536;
    if (!l->rst_burst) l->rst_burst = 1000;
    if (!l->rst_per_s) l->rst_per_s = 200;
    if (!l->ping_burst) l->ping_burst = 200;
    if (!l->ping_per_s) l->ping_per_s = 50;
    if (!l->settings_burst) l->settings_burst = 50;
    if (!l->settings_per_s) l->settings_per_s = 5;
    if (!l->empty_burst) l->empty_burst = 1000;
    if (!l->empty_per_s) l->empty_per_s = 200;
    if (!l->max_continuations) l->max_continuations = 6;
}

const char *nana_h2_verdict_text(nana_h2_verdict v)
{
    switch (v) {
    case NANA_H2_OK:
        return "ok";
    case NANA_H2_FLOOD_RST:
        return "too many stream resets";
    case NANA_H2_FLOOD_PING:
        return "too many PING frames";
    case NANA_H2_FLOOD_SETTINGS:
        return "too many SETTINGS frames";
    case NANA_H2_FLOOD_EMPTY:
        return "too many frames that carry nothing";
    case NANA_H2_FLOOD_CONTINUATION:
        return "a header block in too many CONTINUATION frames";
    }
    return "flood";
}

static void bucket_init(nana_h2_bucket *b, uint32_t burst, uint64_t now)
{
    b->level_milli = (uint64_t)burst * 1000u;
    b->at_ns = now;
}

/* Refills |b| for the time since its last frame, then takes a token:
 * false when none was left. */
static bool bucket_take(nana_h2_bucket *b, uint32_t burst, uint32_t per_s, uint64_t now)
{
    if (now > b->at_ns) {
        /* tokens x 1000 gained = elapsed ns x per_s / 1e6; capped before
         * multiplying so a long pause cannot overflow */
        uint64_t el = now - b->at_ns;
        if (el > 3600ull * 1000000000ull) el = 3600ull * 1000000000ull;
        uint64_t gain = el / 1000u * per_s / 1000u;
        uint64_t cap = (uint64_t)burst * 1000u;
        b->level_milli = b->level_milli + gain > cap ? cap : b->level_milli + gain;
        b->at_ns = now;
    }
    if (b->level_milli < 1000u) return false;
    b->level_milli -= 1000u;
    return true;
}

void nana_h2_guard_init(nana_h2_guard *g, const nana_h2_limits *lim, uint64_t now_ns)
{
    g->lim = lim;
    bucket_init(&g->rst, lim->rst_burst, now_ns);
    bucket_init(&g->ping, lim->ping_burst, now_ns);
    bucket_init(&g->settings, lim->settings_burst, now_ns);
    bucket_init(&g->empty, lim->empty_burst, now_ns);
    g->continuations = 0;
    g->tripped = NANA_H2_OK;
}

nana_h2_verdict nana_h2_guard_frame(nana_h2_guard *g, const nghttp2_frame_hd *hd, uint64_t now_ns)
{
    if (g->tripped) return g->tripped;
    const nana_h2_limits *l = g->lim;
    nana_h2_verdict v = NANA_H2_OK;
    switch (hd->type) {
    case NGHTTP2_RST_STREAM:
        if (!bucket_take(&g->rst, l->rst_burst, l->rst_per_s, now_ns)) v = NANA_H2_FLOOD_RST;
        break;
    case NGHTTP2_PING:
        if (!bucket_take(&g->ping, l->ping_burst, l->ping_per_s, now_ns)) v = NANA_H2_FLOOD_PING;
        break;
    case NGHTTP2_SETTINGS:
        if (!(hd->flags & NGHTTP2_FLAG_ACK) &&
            !bucket_take(&g->settings, l->settings_burst, l->settings_per_s, now_ns))
            v = NANA_H2_FLOOD_SETTINGS;
        break;
    case NGHTTP2_DATA:
        if (hd->length == 0 && !(hd->flags & NGHTTP2_FLAG_END_STREAM) &&
            !bucket_take(&g->empty, l->empty_burst, l->empty_per_s, now_ns))
            v = NANA_H2_FLOOD_EMPTY;
        break;
    case NGHTTP2_PRIORITY:
        if (!bucket_take(&g->empty, l->empty_burst, l->empty_per_s, now_ns))
            v = NANA_H2_FLOOD_EMPTY;
        break;
    case NGHTTP2_HEADERS:
    case NGHTTP2_PUSH_PROMISE:
        g->continuations = 0;
        break;
    case NGHTTP2_CONTINUATION:
        if (++g->continuations > l->max_continuations) v = NANA_H2_FLOOD_CONTINUATION;
        break;
    default:
        break;
    }
    g->tripped = v;
    return v;
}

void nana_h2_guard_answered(nana_h2_guard *g)
{
    uint64_t cap = (uint64_t)g->lim->ping_burst * 1000u;
    g->ping.level_milli = g->ping.level_milli + 1000u > cap ? cap : g->ping.level_milli + 1000u;
}
