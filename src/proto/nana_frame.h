/*
 * nana_frame.h - the NanaSQLite wire frame, both sides: a u32 big-endian
 * length and one msgpack value, and the client's authentication messages
 * (AUTH_START, the signed response, and reading the server's answers).
 * Used by the server's replies, the client library and the benchmark, so
 * the framing is written once. No I/O.
 */
#ifndef NANA_FRAME_H
#define NANA_FRAME_H

#include "proto/nana_mp.h"
#include "util/nana_buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Reserves the length prefix at the end of |out|; *at is the frame's start. */
int nana_frame_begin(nana_buf *out, size_t *at);

/* Patches the length of the frame started at |at| (NANA_ERR_TOOBIG past 4 GiB). */
int nana_frame_end(nana_buf *out, size_t at);

/* Checks that |p|/|n| is exactly one frame (prefix = bytes after it) and
 * starts |r| on its body. 0 or NANA_ERR_INVALID. */
int nana_frame_open(const uint8_t *p, size_t n, nana_mp_reader *r);

/* Appends a frame holding one msgpack string (AUTH_START, AUTH_OK, ...). */
int nana_frame_string(nana_buf *out, const char *s);

/* Appends the client's auth response: {"type": "response", "data": sig,
 * "account": name (only when |account| is not NULL)}. */
int nana_frame_auth_response(nana_buf *out, const uint8_t sig[64], const char *account);

/* 1 if |it| is the msgpack string |s|. */
bool nana_mp_item_is(const nana_mp_item *it, const char *s);

/* One named entry of a msgpack map, filled by nana_frame_fields. */
typedef struct nana_mp_field {
    const char *name;  /* the key looked for */
    nana_mp_item item; /* the value's header (strings point into the frame) */
    nana_mp_reader at; /* the value, unread (for nana_mp_to_json and such) */
    bool found;
} nana_mp_field;

/*
 * Reads the |count| entries of a map (the reader just past the map's
 * header) filling the |nf| named fields; other keys' values are skipped
 * (nested at most |max_depth|). The map must end the frame. 0, or -1 for
 * malformed msgpack, a key that is not a string, or trailing bytes.
 */
int nana_frame_fields(nana_mp_reader *r, uint32_t count, nana_mp_field *fields, size_t nf,
                      unsigned max_depth);

/* What a server's answer during authentication says. */
typedef enum nana_auth_reply {
    NANA_AUTH_CHALLENGE, /* {"type":"challenge","data":<32 bytes>}: |challenge| filled */
    NANA_AUTH_OK,        /* "AUTH_OK" */
    NANA_AUTH_FAILED,    /* "AUTH_FAILED" */
    NANA_AUTH_BANNED,    /* "AUTH_BANNED" */
    NANA_AUTH_ERROR,     /* an error map or anything else: |msg| says what */
} nana_auth_reply;

nana_auth_reply nana_frame_auth_reply(const uint8_t *p, size_t n, uint8_t challenge[32], char *msg,
                                      size_t msgcap);

#endif
