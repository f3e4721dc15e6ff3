/*
 * fuzz_grpc_msg.c - libFuzzer harness for the request messages the gRPC
 * door reads from clients: protobuf-c unpacking on a call's arena
 * (src/grpc/pb.c) for every request type of our services, and the server
 * reflection answer (src/grpc/reflect.c), which parses a request and
 * builds a response from it.
 *
 * The first byte chooses the message type (or reflection); the rest is the
 * message. An unpacked message must pack again, and what it packs to must
 * unpack to the same bytes once more (a stable round trip); every string
 * field protobuf-c hands out is NUL-terminated within the arena. A
 * reflection answer must itself parse as a ServerReflectionResponse. The
 * arena starts in a small block, as a call's does, so its growth is
 * exercised, and everything is freed with the arena.
 */
#include "fuzz_check.h"
#include "grpc/nana_grpc.h"
#include "util/nana_arena.h"

#include "grpc/health/v1/health.pb-c.h"
#include "grpc/reflection/v1alpha/reflection.pb-c.h"
#include "nanasqlite/v1/nanasqlite.pb-c.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const ProtobufCMessageDescriptor *const types[] = {
    &nanasqlite__v1__get_request__descriptor,
    &nanasqlite__v1__set_request__descriptor,
    &nanasqlite__v1__delete_request__descriptor,
    &nanasqlite__v1__call_request__descriptor,
    &nanasqlite__v1__batch_get_request__descriptor,
    &nanasqlite__v1__batch_set_request__descriptor,
    &grpc__health__v1__health_check_request__descriptor,
    &grpc__reflection__v1alpha__server_reflection_request__descriptor,
};
enum { NTYPES = sizeof(types) / sizeof(types[0]) };

/* Packs |m| into a fresh malloc'd buffer (the caller frees it). */
static uint8_t *pack(const ProtobufCMessage *m, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(*len ? *len : 1);
    CHECK(buf != NULL);
    CHECK(protobuf_c_message_pack(m, buf) == *len);
    return buf;
}

/*
 * Forgets the unknown fields of |m| and of the messages inside it:
 * protobuf-c keeps them as they came, including forms it does not read
 * back (a field number 0 in a long varint), and the server never packs a
 * request again; the round trip is about the fields it reads.
 */
static void drop_unknown(ProtobufCMessage *m)
{
    m->n_unknown_fields = 0;
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_MESSAGE) continue;
        char *at = (char *)m + f->offset;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(size_t *)(void *)((char *)m + f->quantifier_offset);
            ProtobufCMessage **v = *(ProtobufCMessage ***)(void *)at;
            for (size_t k = 0; k < n; k++)
                drop_unknown(v[k]);
        } else {
            ProtobufCMessage *sub = *(ProtobufCMessage **)(void *)at;
            /* A oneof member counts only when the case says it is there. */
            if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
                uint32_t which = *(uint32_t *)(void *)((char *)m + f->quantifier_offset);
                if (which != f->id) continue;
            }
            if (sub) drop_unknown(sub);
        }
    }
}

/* Unpacks, packs, unpacks and packs again: the two packings are equal. */
static void round_trip(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n)
{
    char block[256];
    nana_arena a;
    nana_arena_init(&a, block, sizeof(block));
    ProtobufCMessage *m = NULL;
    int rc = nana_grpc_pb_unpack(&a, d, p, n, &m);
    CHECK(rc == 0 || rc == NANA_ERR_INVALID || rc == NANA_ERR_NOMEM);
    if (rc == 0) {
        CHECK(m != NULL && m->descriptor == d);
        drop_unknown(m);
        size_t l1, l2;
        uint8_t *b1 = pack(m, &l1);
        ProtobufCMessage *m2 = NULL;
        CHECK(nana_grpc_pb_unpack(&a, d, b1, l1, &m2) == 0);
        drop_unknown(m2);
        uint8_t *b2 = pack(m2, &l2);
        CHECK(l1 == l2 && memcmp(b1, b2, l1) == 0);
        free(b1);
        free(b2);
    }
    nana_arena_free(&a);
}

/* Answers a reflection request; a good answer parses as a response. */
static void reflect(const uint8_t *p, size_t n)
{
    char block[512];
    nana_arena a;
    nana_arena_init(&a, block, sizeof(block));
    uint8_t *out = NULL;
    size_t olen = 0;
    int rc = nana_grpc_reflect_answer(&a, p, n, &out, &olen);
    CHECK(rc == 0 || rc == NANA_ERR_INVALID || rc == NANA_ERR_NOMEM);
    if (rc == 0) {
        ProtobufCMessage *resp = NULL;
        CHECK(nana_grpc_pb_unpack(
                  &a, &grpc__reflection__v1alpha__server_reflection_response__descriptor, out, olen,
                  &resp) == 0);
    }
    nana_arena_free(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    unsigned pick = data[0] % (NTYPES + 1);
    if (pick == NTYPES)
        reflect(data + 1, size - 1);
    else
        round_trip(types[pick], data + 1, size - 1);
    return 0;
}
