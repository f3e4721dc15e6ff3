/*
 * frames.c - a walk over the frames of a decrypted QUIC packet payload
 * (RFC 9000 section 19, and DATAGRAM of RFC 9221), to find the peer's
 * STOP_SENDING frames: ngtcp2 0.12 answers them itself (RESET_STREAM) and
 * tells no callback, so the layer above would never learn the peer's
 * error code. The walk only reads: lengths are checked against the end of
 * the payload before anything is skipped, and a frame it does not know, or
 * one that runs past the end, stops it (ngtcp2 then refuses the packet).
 */
#include "quic/quic_int.h"

/* Reads a variable-length integer at *p; false when it runs past |end|. */
static bool varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    if (*p >= end) return false;
    size_t n = (size_t)1 << (**p >> 6);
    if ((size_t)(end - *p) < n) return false;
    uint64_t x = **p & 0x3f;
    for (size_t i = 1; i < n; i++)
        x = (x << 8) | (*p)[i];
    *p += n;
    *v = x;
    return true;
}

/* Reads |k| variable-length integers, keeping none. */
static bool skip_varints(const uint8_t **p, const uint8_t *end, unsigned k)
{
    uint64_t v;
    for (unsigned i = 0; i < k; i++)
        if (!varint(p, end, &v)) return false;
    return true;
}

/* Skips |n| bytes. */
static bool skip_bytes(const uint8_t **p, const uint8_t *end, uint64_t n)
{
    if ((uint64_t)(end - *p) < n) return false;
    *p += n;
    return true;
}

/* Reads a length and skips that many bytes. */
static bool skip_counted(const uint8_t **p, const uint8_t *end)
{
    uint64_t n;
    return varint(p, end, &n) && skip_bytes(p, end, n);
}

/* Skips the body of an ACK frame (type 0x02, or 0x03 with ECN counts). */
static bool skip_ack(const uint8_t **p, const uint8_t *end, uint64_t type)
{
    uint64_t ranges;
    if (!skip_varints(p, end, 2) || !varint(p, end, &ranges) || !skip_varints(p, end, 1))
        return false;
    for (uint64_t i = 0; i < ranges; i++) /* every range is at least 2 bytes */
        if (!skip_varints(p, end, 2)) return false;
    return type == 0x02 || skip_varints(p, end, 3);
}

/* Skips the body of a STREAM frame (types 0x08-0x0f: OFF, LEN, FIN bits). */
static bool skip_stream(const uint8_t **p, const uint8_t *end, uint64_t type)
{
    if (!skip_varints(p, end, (type & 0x04) ? 2 : 1)) return false;
    if (!(type & 0x02)) {
        *p = end; /* no length: the data runs to the end of the packet */
        return true;
    }
    return skip_counted(p, end);
}

int nana_quic_frames_scan(const uint8_t *p, size_t len,
                          void (*on_stop)(void *arg, int64_t sid, uint64_t code), void *arg)
{
    const uint8_t *end = p + len;
    while (p < end) {
        uint64_t type, sid, code;
        if (!varint(&p, end, &type)) return -1;
        bool ok;
        switch (type) {
        case 0x00: /* PADDING */
        case 0x01: /* PING */
        case 0x1e: /* HANDSHAKE_DONE */
            ok = true;
            break;
        case 0x02:
        case 0x03:
            ok = skip_ack(&p, end, type);
            break;
        case 0x04: /* RESET_STREAM: id, code, final size */
            ok = skip_varints(&p, end, 3);
            break;
        case 0x05: /* STOP_SENDING: id, code */
            ok = varint(&p, end, &sid) && varint(&p, end, &code);
            if (ok) on_stop(arg, (int64_t)sid, code); /* a varint is < 2^62 */
            break;
        case 0x06: /* CRYPTO: offset, data */
            ok = skip_varints(&p, end, 1) && skip_counted(&p, end);
            break;
        case 0x07: /* NEW_TOKEN */
            ok = skip_counted(&p, end);
            break;
        case 0x10: /* MAX_DATA */
        case 0x12: /* MAX_STREAMS */
        case 0x13:
        case 0x14: /* DATA_BLOCKED */
        case 0x16: /* STREAMS_BLOCKED */
        case 0x17:
        case 0x19: /* RETIRE_CONNECTION_ID */
            ok = skip_varints(&p, end, 1);
            break;
        case 0x11: /* MAX_STREAM_DATA */
        case 0x15: /* STREAM_DATA_BLOCKED */
            ok = skip_varints(&p, end, 2);
            break;
        case 0x18: /* NEW_CONNECTION_ID: seq, retire, cid (1-byte length), token */
            ok = skip_varints(&p, end, 2) && p < end && skip_bytes(&p, end, 1 + (uint64_t)*p) &&
                 skip_bytes(&p, end, 16);
            break;
        case 0x1a: /* PATH_CHALLENGE */
        case 0x1b: /* PATH_RESPONSE */
            ok = skip_bytes(&p, end, 8);
            break;
        case 0x1c: /* CONNECTION_CLOSE (transport): code, frame type, reason */
            ok = skip_varints(&p, end, 2) && skip_counted(&p, end);
            break;
        case 0x1d: /* CONNECTION_CLOSE (application): code, reason */
            ok = skip_varints(&p, end, 1) && skip_counted(&p, end);
            break;
        case 0x30: /* DATAGRAM without a length: to the end */
            p = end;
            ok = true;
            break;
        case 0x31: /* DATAGRAM */
            ok = skip_counted(&p, end);
            break;
        default:
            ok = type >= 0x08 && type <= 0x0f && skip_stream(&p, end, type);
            break;
        }
        if (!ok) return -1;
    }
    return 0;
}
