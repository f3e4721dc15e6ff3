/*
 * pb.c - protobuf-c on a call's arena: messages are unpacked into it and
 * packed (with their 5-byte prefix) into it, so a call's messages cost no
 * allocation of their own and go when the call's arena is freed.
 */
#include "grpc/nana_grpc.h"

#include <stdbool.h>

static void *arena_alloc(void *data, size_t size)
{
    return nana_arena_alloc(data, size);
}

static void arena_free(void *data, void *p)
{
    (void)data;
    (void)p; /* the arena frees everything at the call's end */
}

void nana_grpc_pb_allocator(ProtobufCAllocator *out, nana_arena *a)
{
    out->alloc = arena_alloc;
    out->free = arena_free;
    out->allocator_data = a;
}

/*
 * Whether |m| and the messages inside it came without an unknown field of
 * number 0. Protobuf has no field 0, but protobuf-c takes one written as a
 * long varint (0x80 0x00) as an unknown field, and packs it back in a form
 * no reader takes (reflection echoes the request in its answer).
 */
static bool no_field_zero(const ProtobufCMessage *m)
{
    for (size_t i = 0; i < m->n_unknown_fields; i++)
        if (m->unknown_fields[i].tag == 0) return false;
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_MESSAGE) continue;
        const char *at = (const char *)m + f->offset;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(const void *)((const char *)m + f->quantifier_offset);
            ProtobufCMessage *const *v = *(ProtobufCMessage *const *const *)(const void *)at;
            for (size_t k = 0; k < n; k++)
                if (!no_field_zero(v[k])) return false;
            continue;
        }
        if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
            *(const uint32_t *)(const void *)((const char *)m + f->quantifier_offset) != f->id)
            continue; /* another member of the oneof is there */
        const ProtobufCMessage *sub = *(const ProtobufCMessage *const *)(const void *)at;
        if (sub && !no_field_zero(sub)) return false;
    }
    return true;
}

/* Reads a varint at *p (< end): false when it does not end in 10 bytes. */
static bool varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 70 && *p < end; shift += 7) {
        uint8_t b = *(*p)++;
        *v |= (uint64_t)(b & 127) << (shift < 64 ? shift : 63);
        if (b < 128) return true;
    }
    return false;
}

/*
 * Whether the messages inside [p, p + n) (a |d|) nest at most
 * NANA_GRPC_PB_MAX_DEPTH deep, read with the descriptors before protobuf-c
 * unpacks them: protobuf-c recurses once per level with no limit of its
 * own, and a message type that holds itself (a predicate tree) could
 * otherwise be sent a million levels deep. Bytes that are not protobuf
 * pass here: protobuf-c refuses them.
 */
static bool depth_ok(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n,
                     unsigned depth)
{
    if (depth > NANA_GRPC_PB_MAX_DEPTH) return false;
    if (!n) return true; /* (an empty message may come as NULL) */
    const uint8_t *end = p + n;
    while (p < end) {
        uint64_t tag, v;
        if (!varint(&p, end, &tag)) return true;
        switch (tag & 7) {
        case 0:
            if (!varint(&p, end, &v)) return true;
            break;
        case 1:
            if (end - p < 8) return true;
            p += 8;
            break;
        case 5:
            if (end - p < 4) return true;
            p += 4;
            break;
        case 2: {
            if (!varint(&p, end, &v) || v > (uint64_t)(end - p)) return true;
            const ProtobufCFieldDescriptor *f =
                tag >> 3 <= UINT32_MAX
                    ? protobuf_c_message_descriptor_get_field(d, (unsigned)(tag >> 3))
                    : NULL;
            if (f && f->type == PROTOBUF_C_TYPE_MESSAGE &&
                !depth_ok(f->descriptor, p, (size_t)v, depth + 1))
                return false;
            p += v;
            break;
        }
        default:
            return true;
        }
    }
    return true;
}

int nana_grpc_pb_unpack(nana_arena *a, const ProtobufCMessageDescriptor *desc, const uint8_t *data,
                        size_t len, ProtobufCMessage **out)
{
    if (!depth_ok(desc, data, len, 1))
        return nana_err_set(NANA_ERR_INVALID, "the message nests deeper than %d levels",
                            NANA_GRPC_PB_MAX_DEPTH);
    ProtobufCAllocator al;
    nana_grpc_pb_allocator(&al, a);
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, &al, len, data);
    if (!m || !no_field_zero(m))
        return nana_err_set(NANA_ERR_INVALID, "the message is not a valid %s", desc->name);
    *out = m;
    return 0;
}

int nana_grpc_pb_pack_framed(nana_arena *a, const ProtobufCMessage *m, uint8_t **out, size_t *len)
{
    size_t size = protobuf_c_message_get_packed_size(m);
    if (size > UINT32_MAX)
        return nana_err_set(NANA_ERR_TOOBIG, "a reply of %zu bytes does not fit a gRPC message",
                            size);
    uint8_t *buf = nana_arena_alloc(a, NANA_GRPC_PREFIX + size);
    if (!buf) return nana_err_set(NANA_ERR_NOMEM, "out of memory for a reply of %zu bytes", size);
    nana_grpc_frame_prefix(buf, false, (uint32_t)size);
    protobuf_c_message_pack(m, buf + NANA_GRPC_PREFIX);
    *out = buf;
    *len = NANA_GRPC_PREFIX + size;
    return 0;
}
