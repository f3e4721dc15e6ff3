/*
 * nana_h2.h - HTTP/2 server sessions without I/O: nghttp2 made with our
 * settings and options, and a guard against frame floods.
 *
 * Big idea: nghttp2 is the protocol core (bytes in through
 * nghttp2_session_mem_recv, bytes out through nghttp2_session_mem_send);
 * whoever owns the socket moves the bytes. What nghttp2 does not bound by
 * itself is bounded here:
 *   - frames that cost the server work and bring nothing: RST_STREAM
 *     (rapid reset), PING, SETTINGS, empty DATA and PRIORITY, each counted in a token bucket that
 * refills with time; an empty bucket ends the connection with GOAWAY ENHANCE_YOUR_CALM;
 *   - a header block split into more CONTINUATION frames than a client
 *     needs;
 *   - the header list's decoded size (an HPACK bomb decodes a few bytes
 *     into a large list): the session is made with nghttp2's own cap on
 *     what it accepts, and the caller counts decoded bytes per stream.
 * The guard reads no clock: the caller passes the time with each frame,
 * so a test drives it with a fake one.
 */
#ifndef NANA_H2_H
#define NANA_H2_H

#include <nghttp2/nghttp2.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A server connection's settings and flood limits (0 = default). */
typedef struct nana_h2_limits {
    uint32_t max_concurrent_streams; /* SETTINGS_MAX_CONCURRENT_STREAMS, default 100 */
    uint32_t stream_window;          /* SETTINGS_INITIAL_WINDOW_SIZE, default 1 MiB */
    uint32_t conn_window;            /* the connection's receive window, default 16 MiB */
    uint32_t max_frame_size;         /* SETTINGS_MAX_FRAME_SIZE, default 16384 */
    uint32_t max_header_list;        /* SETTINGS_MAX_HEADER_LIST_SIZE, default 65536 */
    /* token buckets: each holds |burst| frames and refills |per_s| a second */
    uint32_t rst_burst, rst_per_s;           /* RST_STREAM: default 1000, 200 */
    uint32_t ping_burst, ping_per_s;         /* PING: default 200, 50 */
    uint32_t settings_burst, settings_per_s; /* SETTINGS: default 50, 5 */
    uint32_t empty_burst, empty_per_s;       /* empty DATA and PRIORITY: 1000, 200 */
    uint32_t max_continuations;              /* CONTINUATION frames of one header block, 6 */
} nana_h2_limits;

/* Fills the zero fields of |l| with the defaults. */
void nana_h2_limits_fill(nana_h2_limits *l);

/* What the guard decided about a frame. */
typedef enum nana_h2_verdict {
    NANA_H2_OK = 0,
    NANA_H2_FLOOD_RST,
    NANA_H2_FLOOD_PING,
    NANA_H2_FLOOD_SETTINGS,
    NANA_H2_FLOOD_EMPTY,
    NANA_H2_FLOOD_CONTINUATION,
} nana_h2_verdict;

/* The reason text of |v| for logs and the GOAWAY's debug data. */
const char *nana_h2_verdict_text(nana_h2_verdict v);

typedef struct nana_h2_bucket {
    uint64_t level_milli; /* tokens x 1000 */
    uint64_t at_ns;       /* when it was last refilled */
} nana_h2_bucket;

/* One connection's counts (embed it; no allocation). */
typedef struct nana_h2_guard {
    const nana_h2_limits *lim;
    nana_h2_bucket rst, ping, settings, empty;
    uint32_t continuations;  /* of the header block being read */
    nana_h2_verdict tripped; /* sticky once a limit was passed */
} nana_h2_guard;

/* Starts |g| full at time |now_ns|; |lim| (filled) stays the caller's. */
void nana_h2_guard_init(nana_h2_guard *g, const nana_h2_limits *lim, uint64_t now_ns);

/*
 * Counts a frame the client began to send (nghttp2's on_begin_frame:
 * its header alone) at |now_ns|. Returns NANA_H2_OK, or the flood it
 * completes (sticky: every later frame gets the same answer).
 */
nana_h2_verdict nana_h2_guard_frame(nana_h2_guard *g, const nghttp2_frame_hd *hd, uint64_t now_ns);

/*
 * The server sent an answer's frame (HEADERS or DATA): one PING more is
 * allowed (up to the burst). Clients that measure the connection's
 * bandwidth (grpc-go, grpc-core) ping once per round trip while answers
 * flow; an idle connection's pings still meet the rate.
 */
void nana_h2_guard_answered(nana_h2_guard *g);

/*
 * Makes a server session with |cb| and |user| (nghttp2's), our options
 * (window updates given by the caller, nghttp2_session_consume; the
 * header list cap; a bound on queued PING and SETTINGS acknowledgements)
 * and queues the SETTINGS frame of |lim| (filled) with the connection
 * window. 0 with *out the caller's (nghttp2_session_del), or an nghttp2
 * error code.
 */
int nana_h2_server_new(const nana_h2_limits *lim, const nghttp2_session_callbacks *cb, void *user,
                       nghttp2_session **out);

#endif
