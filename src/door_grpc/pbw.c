/*
 * pbw.c - writing the door's reply messages straight in protobuf's wire
 * format: they are a few fields each (a bool, a string, a repeated
 * message), and writing them by hand into the call's buffer costs no
 * allocation and no protobuf-c message to fill. Requests are read with
 * protobuf-c (nana_grpc_pb_unpack), which checks them.
 */
#include "door_grpc/gdoor_int.h"

int nana_pbw_varint(nana_buf *b, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    do {
        uint8_t byte = (uint8_t)(v & 0x7f);
        v >>= 7;
        tmp[n++] = v ? (uint8_t)(byte | 0x80) : byte;
    } while (v);
    return nana_buf_append(b, tmp, n);
}

static size_t varint_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

int nana_pbw_bytes(nana_buf *b, uint32_t num, const void *p, size_t n)
{
    int rc = nana_pbw_varint(b, ((uint64_t)num << 3) | 2);
    if (!rc) rc = nana_pbw_varint(b, n);
    if (!rc && n) rc = nana_buf_append(b, p, n);
    return rc;
}

int nana_pbw_uint(nana_buf *b, uint32_t num, uint64_t v)
{
    int rc = nana_pbw_varint(b, (uint64_t)num << 3);
    if (!rc) rc = nana_pbw_varint(b, v);
    return rc;
}

size_t nana_pbw_bytes_size(uint32_t num, size_t n)
{
    return varint_size((uint64_t)num << 3) + varint_size(n) + n;
}

int nana_pbw_frame_begin(nana_buf *b, size_t *at)
{
    static const uint8_t zero[NANA_GRPC_PREFIX];
    *at = b->len;
    return nana_buf_append(b, zero, sizeof(zero));
}

void nana_pbw_frame_end(nana_buf *b, size_t at)
{
    nana_grpc_frame_prefix((uint8_t *)b->data + at, false,
                           (uint32_t)(b->len - at - NANA_GRPC_PREFIX));
}
