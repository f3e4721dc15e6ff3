/*
 * frame.c - gRPC's length-prefixed messages: a compressed flag (one byte),
 * a u32 big-endian length, the message.
 *
 * The deframer takes the request body in whatever pieces the transport
 * gives and hands out whole messages. A message that lies whole inside one
 * piece is handed out where it lies (no copy); one split across pieces is
 * gathered in the deframer's buffer, which is kept for the stream's next
 * messages. The buffer grows with the bytes that actually arrived, never
 * with the length a prefix announces, so a peer that announces 4 MiB and
 * sends one byte costs one small block, not 4 MiB.
 */
#include "grpc/nana_grpc.h"

#include "util/nana_mem.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* The first size of the reassembly buffer. */
#define BUF_MIN 1024

void nana_grpc_frame_prefix(uint8_t out[NANA_GRPC_PREFIX], bool compressed, uint32_t len)
{
    out[0] = compressed ? 1 : 0;
    out[1] = (uint8_t)(len >> 24);
    out[2] = (uint8_t)(len >> 16);
    out[3] = (uint8_t)(len >> 8);
    out[4] = (uint8_t)len;
}

void nana_grpc_deframer_init(nana_grpc_deframer *d, uint32_t max_message)
{
    memset(d, 0, sizeof(*d));
    d->max_message = max_message ? max_message : NANA_GRPC_DEFAULT_MAX_MESSAGE_BYTES;
}

void nana_grpc_deframer_reset(nana_grpc_deframer *d)
{
    uint8_t *buf = d->buf;
    size_t cap = d->cap;
    uint32_t max = d->max_message;
    nana_grpc_deframer_init(d, max);
    d->buf = buf;
    d->cap = cap;
}

void nana_grpc_deframer_free(nana_grpc_deframer *d)
{
    nana_free(d->buf);
    d->buf = NULL;
    d->cap = 0;
}

/* Fails the deframer for good with |status|; returns |code|. */
__attribute__((format(printf, 4, 5))) static int fail(nana_grpc_deframer *d, int code,
                                                      nana_grpc_status status, const char *fmt, ...)
{
    va_list ap;
    d->failed = true;
    d->fail_code = code;
    d->error.status = status;
    va_start(ap, fmt);
    vsnprintf(d->error.message, sizeof(d->error.message), fmt, ap);
    va_end(ap);
    nana_err_copy(d->error.message);
    return code;
}

/* Checks a complete prefix: the flag and the length. */
static int read_prefix(nana_grpc_deframer *d)
{
    uint8_t flag = d->hdr[0];
    d->len = (uint32_t)d->hdr[1] << 24 | (uint32_t)d->hdr[2] << 16 | (uint32_t)d->hdr[3] << 8 |
             d->hdr[4];
    if (flag > 1)
        return fail(d, NANA_ERR_INVALID, NANA_GRPC_INTERNAL,
                    "message compressed flag is %u (must be 0 or 1)", flag);
    if (flag == 1 && !d->compression_ok)
        return fail(d, NANA_ERR_INVALID, NANA_GRPC_INTERNAL,
                    "compressed message but no grpc-encoding was agreed");
    d->compressed = flag == 1;
    if (d->len > d->max_message)
        return fail(d, NANA_ERR_TOOBIG, NANA_GRPC_RESOURCE_EXHAUSTED,
                    "received a message of %u bytes, over the limit of %u", (unsigned)d->len,
                    (unsigned)d->max_message);
    return 0;
}

/* Makes room for |more| bytes of the current message in the buffer:
 * doubling, at least BUF_MIN, never past the message's length. */
static int grow(nana_grpc_deframer *d, size_t more)
{
    size_t need = d->have + more;
    if (need <= d->cap) return 0;
    size_t cap = d->cap ? d->cap : BUF_MIN;
    while (cap < need)
        cap *= 2;
    if (cap > d->len) cap = d->len;
    uint8_t *b = nana_realloc(d->buf, cap);
    if (!b)
        return fail(d, NANA_ERR_NOMEM, NANA_GRPC_RESOURCE_EXHAUSTED,
                    "the server is out of memory for a message");
    d->buf = b;
    d->cap = cap;
    return 0;
}

/* Hands out the current message and starts the next one. */
static int deliver(nana_grpc_deframer *d, const uint8_t *data, nana_grpc_msg *m)
{
    static const uint8_t empty[1];
    m->data = data ? data : empty;
    m->len = d->len;
    m->compressed = d->compressed;
    d->hdr_have = 0;
    d->have = 0;
    d->count++;
    return 1;
}

int nana_grpc_deframe(nana_grpc_deframer *d, const uint8_t **p, size_t *n, nana_grpc_msg *m)
{
    if (d->failed) {
        nana_err_copy(d->error.message);
        return d->fail_code;
    }
    while (d->hdr_have < NANA_GRPC_PREFIX) {
        if (*n == 0) return 0;
        d->hdr[d->hdr_have++] = **p;
        (*p)++;
        (*n)--;
        if (d->hdr_have == NANA_GRPC_PREFIX) {
            int rc = read_prefix(d);
            if (rc) return rc;
        }
    }
    size_t want = d->len - d->have;
    if (d->have == 0 && *n >= want) {
        /* The whole message is in this piece: hand it out where it lies. */
        const uint8_t *data = *p;
        *p += want;
        *n -= want;
        return deliver(d, d->len ? data : NULL, m);
    }
    size_t take = *n < want ? *n : want;
    if (take) {
        int rc = grow(d, take);
        if (rc) return rc;
        memcpy(d->buf + d->have, *p, take);
        d->have += take;
        *p += take;
        *n -= take;
    }
    if (d->have < d->len) return 0;
    return deliver(d, d->buf, m);
}

int nana_grpc_deframer_end(nana_grpc_deframer *d)
{
    if (d->failed) {
        nana_err_copy(d->error.message);
        return d->fail_code;
    }
    if (d->hdr_have == 0) return 0;
    if (d->hdr_have < NANA_GRPC_PREFIX)
        return fail(d, NANA_ERR_INVALID, NANA_GRPC_INTERNAL,
                    "the request ended inside a message prefix (%u of 5 bytes)",
                    (unsigned)d->hdr_have);
    return fail(d, NANA_ERR_INVALID, NANA_GRPC_INTERNAL,
                "the request ended inside a message (%zu of %u bytes)", d->have, (unsigned)d->len);
}
