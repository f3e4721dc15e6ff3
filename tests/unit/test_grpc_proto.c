/*
 * test_grpc_proto.c - our .proto files in C: every message packed (framed)
 * and unpacked on an arena and compared field by field, the exact bytes of
 * a few (they pin the field numbers wire compatibility depends on), the
 * embedded FileDescriptorProtos found by name and by symbol, and the
 * server reflection answers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "amaters/types.pb-c.h"
#include "grpc/grpc_int.h"
#include "grpc/health/v1/health.pb-c.h"
#include "grpc/nana_grpc.h"
#include "grpc/reflection/v1alpha/reflection.pb-c.h"
#include "nanasqlite/v1/nanasqlite.pb-c.h"
#include "util/nana_mem.h"

#include <stdio.h>
#include <string.h>

static nana_arena arena;

static int teardown(void **state)
{
    (void)state;
    nana_arena_free(&arena);
    nana_mem_fail_at(0, false);
    return 0;
}

/* A string literal as protobuf-c's non-const char * (only read by pack). */
static char *s(const char *x)
{
    return (char *)(uintptr_t)x;
}

/* Packs |m| framed, checks the prefix, unpacks it again as |desc|. */
static ProtobufCMessage *round_trip(const ProtobufCMessage *m)
{
    uint8_t *out;
    size_t len;
    assert_int_equal(nana_grpc_pb_pack_framed(&arena, m, &out, &len), 0);
    size_t body = protobuf_c_message_get_packed_size(m);
    assert_int_equal(len, body + 5);
    uint8_t prefix[5];
    nana_grpc_frame_prefix(prefix, false, (uint32_t)body);
    assert_memory_equal(out, prefix, 5);
    ProtobufCMessage *back;
    assert_int_equal(nana_grpc_pb_unpack(&arena, m->descriptor, out + 5, body, &back), 0);
    assert_ptr_equal(back->descriptor, m->descriptor);
    return back;
}

/* Packs |m| and compares the bytes with |want| (|n| bytes). */
static void bytes_are(const ProtobufCMessage *m, const char *want, size_t n)
{
    uint8_t buf[256];
    assert_int_equal(protobuf_c_message_get_packed_size(m), n);
    protobuf_c_message_pack(m, buf);
    assert_memory_equal(buf, want, n);
}

static void test_health_messages(void **state)
{
    (void)state;
    Grpc__Health__V1__HealthCheckRequest q;
    grpc__health__v1__health_check_request__init(&q);
    q.service = s("nanasqlite.v1.NanaSQLite");
    Grpc__Health__V1__HealthCheckRequest *q2 = (void *)round_trip(&q.base);
    assert_string_equal(q2->service, "nanasqlite.v1.NanaSQLite");
    q.service = s("x");
    bytes_are(&q.base, "\x0a\x01x", 3);

    Grpc__Health__V1__HealthCheckResponse r;
    grpc__health__v1__health_check_response__init(&r);
    for (int st = 0; st <= 3; st++) {
        r.status = (Grpc__Health__V1__HealthCheckResponse__ServingStatus)st;
        Grpc__Health__V1__HealthCheckResponse *r2 = (void *)round_trip(&r.base);
        assert_int_equal(r2->status, st);
    }
    r.status = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
    bytes_are(&r.base, "\x08\x01", 2);
    assert_int_equal(GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN, 3);
    assert_string_equal(grpc__health__v1__health__descriptor.name, "grpc.health.v1.Health");
    assert_int_equal(grpc__health__v1__health__descriptor.n_methods, 2);
}

static void test_reflection_messages(void **state)
{
    (void)state;
    Grpc__Reflection__V1alpha__ServerReflectionRequest q;
    grpc__reflection__v1alpha__server_reflection_request__init(&q);
    q.host = s("h");
    /* Each question, and its field number. */
    struct {
        int which;
        const char *bytes;
        size_t n;
    } cases[] = {
        {3,
         "\x0a\x01h\x1a\x01"
         "a",
         6},
        {4,
         "\x0a\x01h\x22\x01"
         "a",
         6},
        {6,
         "\x0a\x01h\x32\x01"
         "a",
         6},
        {7,
         "\x0a\x01h\x3a\x01"
         "a",
         6},
    };
    for (size_t i = 0; i < 4; i++) {
        q.message_request_case =
            (Grpc__Reflection__V1alpha__ServerReflectionRequest__MessageRequestCase)cases[i].which;
        q.file_by_filename = s("a"); /* the union's strings share the place */
        bytes_are(&q.base, cases[i].bytes, cases[i].n);
        Grpc__Reflection__V1alpha__ServerReflectionRequest *q2 = (void *)round_trip(&q.base);
        assert_int_equal(q2->message_request_case, cases[i].which);
        assert_string_equal(q2->host, "h");
        assert_string_equal(q2->file_by_filename, "a");
    }
    Grpc__Reflection__V1alpha__ExtensionRequest ext;
    grpc__reflection__v1alpha__extension_request__init(&ext);
    ext.containing_type = s("a.B");
    ext.extension_number = 9;
    q.message_request_case =
        GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION;
    q.file_containing_extension = &ext;
    Grpc__Reflection__V1alpha__ServerReflectionRequest *q2 = (void *)round_trip(&q.base);
    assert_string_equal(q2->file_containing_extension->containing_type, "a.B");
    assert_int_equal(q2->file_containing_extension->extension_number, 9);

    /* Each answer. */
    Grpc__Reflection__V1alpha__ServerReflectionResponse r;
    grpc__reflection__v1alpha__server_reflection_response__init(&r);
    r.valid_host = s("h");
    r.original_request = &q;
    Grpc__Reflection__V1alpha__FileDescriptorResponse fd;
    grpc__reflection__v1alpha__file_descriptor_response__init(&fd);
    ProtobufCBinaryData files[2] = {{3, (uint8_t *)s("abc")}, {0, NULL}};
    fd.n_file_descriptor_proto = 2;
    fd.file_descriptor_proto = files;
    r.message_response_case =
        GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE;
    r.file_descriptor_response = &fd;
    Grpc__Reflection__V1alpha__ServerReflectionResponse *r2 = (void *)round_trip(&r.base);
    assert_int_equal(r2->file_descriptor_response->n_file_descriptor_proto, 2);
    assert_memory_equal(r2->file_descriptor_response->file_descriptor_proto[0].data, "abc", 3);
    assert_int_equal(r2->file_descriptor_response->file_descriptor_proto[1].len, 0);
    assert_string_equal(r2->original_request->file_containing_extension->containing_type, "a.B");

    Grpc__Reflection__V1alpha__ExtensionNumberResponse en;
    grpc__reflection__v1alpha__extension_number_response__init(&en);
    int32_t nums[] = {100, 200};
    en.base_type_name = s("a.B");
    en.n_extension_number = 2;
    en.extension_number = nums;
    r.message_response_case =
        GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE;
    r.all_extension_numbers_response = &en;
    r2 = (void *)round_trip(&r.base);
    assert_int_equal(r2->all_extension_numbers_response->n_extension_number, 2);
    assert_int_equal(r2->all_extension_numbers_response->extension_number[1], 200);

    Grpc__Reflection__V1alpha__ServiceResponse sv;
    grpc__reflection__v1alpha__service_response__init(&sv);
    sv.name = s("a.S");
    Grpc__Reflection__V1alpha__ServiceResponse *svs[] = {&sv};
    Grpc__Reflection__V1alpha__ListServiceResponse ls;
    grpc__reflection__v1alpha__list_service_response__init(&ls);
    ls.n_service = 1;
    ls.service = svs;
    r.message_response_case =
        GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE;
    r.list_services_response = &ls;
    r2 = (void *)round_trip(&r.base);
    assert_string_equal(r2->list_services_response->service[0]->name, "a.S");

    Grpc__Reflection__V1alpha__ErrorResponse er;
    grpc__reflection__v1alpha__error_response__init(&er);
    er.error_code = 5;
    er.error_message = s("nope");
    r.message_response_case =
        GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
    r.error_response = &er;
    r.original_request = NULL;
    r.valid_host = s("");
    bytes_are(&r.base, "\x3a\x08\x08\x05\x12\x04nope", 10);
    r2 = (void *)round_trip(&r.base);
    assert_int_equal(r2->error_response->error_code, 5);
    assert_string_equal(r2->error_response->error_message, "nope");
}

static void test_nanasqlite_messages(void **state)
{
    (void)state;
    Nanasqlite__V1__CallRequest c;
    nanasqlite__v1__call_request__init(&c);
    c.method = s("get");
    c.args_json = s("[\"k\"]");
    c.kwargs_json = s("{}");
    c.db = s("app.db");
    c.table = s("users");
    Nanasqlite__V1__CallRequest *c2 = (void *)round_trip(&c.base);
    assert_string_equal(c2->method, "get");
    assert_string_equal(c2->args_json, "[\"k\"]");
    assert_string_equal(c2->kwargs_json, "{}");
    assert_string_equal(c2->db, "app.db");
    assert_string_equal(c2->table, "users");

    Nanasqlite__V1__CallReply cr;
    nanasqlite__v1__call_reply__init(&cr);
    cr.outcome_case = NANASQLITE__V1__CALL_REPLY__OUTCOME_RESULT_JSON;
    cr.result_json = s("null");
    Nanasqlite__V1__CallReply *cr2 = (void *)round_trip(&cr.base);
    assert_int_equal(cr2->outcome_case, NANASQLITE__V1__CALL_REPLY__OUTCOME_RESULT_JSON);
    assert_string_equal(cr2->result_json, "null");
    Nanasqlite__V1__CallError ce;
    nanasqlite__v1__call_error__init(&ce);
    ce.type = s("RuntimeError");
    ce.message = s("Server busy");
    ce.code = s("busy");
    cr.outcome_case = NANASQLITE__V1__CALL_REPLY__OUTCOME_ERROR;
    cr.error = &ce;
    cr2 = (void *)round_trip(&cr.base);
    assert_int_equal(cr2->outcome_case, NANASQLITE__V1__CALL_REPLY__OUTCOME_ERROR);
    assert_string_equal(cr2->error->type, "RuntimeError");
    assert_string_equal(cr2->error->message, "Server busy");
    assert_string_equal(cr2->error->code, "busy");

    Nanasqlite__V1__GetRequest g;
    nanasqlite__v1__get_request__init(&g);
    g.key = s("k");
    g.db = s("d");
    g.table = s("t");
    bytes_are(&g.base,
              "\x0a\x01k\x72\x01"
              "d\x7a\x01t",
              9); /* db 14, table 15 */
    Nanasqlite__V1__GetRequest *g2 = (void *)round_trip(&g.base);
    assert_string_equal(g2->key, "k");
    assert_string_equal(g2->db, "d");
    assert_string_equal(g2->table, "t");
    Nanasqlite__V1__GetReply gr;
    nanasqlite__v1__get_reply__init(&gr);
    gr.found = 1;
    gr.value_json = s("{\"a\":[1,2]}");
    Nanasqlite__V1__GetReply *gr2 = (void *)round_trip(&gr.base);
    assert_true(gr2->found);
    assert_string_equal(gr2->value_json, "{\"a\":[1,2]}");
    nanasqlite__v1__get_reply__init(&gr);
    gr2 = (void *)round_trip(&gr.base);
    assert_false(gr2->found);
    assert_string_equal(gr2->value_json, "");
    assert_int_equal(protobuf_c_message_get_packed_size(&gr.base), 0);

    Nanasqlite__V1__SetRequest st;
    nanasqlite__v1__set_request__init(&st);
    st.key = s("k\xc3\xa9");
    st.value_json = s("42");
    st.table = s("t");
    Nanasqlite__V1__SetRequest *st2 = (void *)round_trip(&st.base);
    assert_string_equal(st2->key, "k\xc3\xa9");
    assert_string_equal(st2->value_json, "42");
    assert_string_equal(st2->db, "");
    assert_string_equal(st2->table, "t");
    Nanasqlite__V1__SetReply sr;
    nanasqlite__v1__set_reply__init(&sr);
    round_trip(&sr.base);

    Nanasqlite__V1__DeleteRequest dl;
    nanasqlite__v1__delete_request__init(&dl);
    dl.key = s("gone");
    Nanasqlite__V1__DeleteRequest *dl2 = (void *)round_trip(&dl.base);
    assert_string_equal(dl2->key, "gone");
    Nanasqlite__V1__DeleteReply dr;
    nanasqlite__v1__delete_reply__init(&dr);
    dr.existed = 1;
    Nanasqlite__V1__DeleteReply *dr2 = (void *)round_trip(&dr.base);
    assert_true(dr2->existed);

    Nanasqlite__V1__BatchGetRequest bg;
    nanasqlite__v1__batch_get_request__init(&bg);
    char *keys[] = {s("a"), s("b"), s("a")};
    bg.n_keys = 3;
    bg.keys = keys;
    bg.db = s("x.db");
    Nanasqlite__V1__BatchGetRequest *bg2 = (void *)round_trip(&bg.base);
    assert_int_equal(bg2->n_keys, 3);
    assert_string_equal(bg2->keys[2], "a");
    assert_string_equal(bg2->db, "x.db");
    Nanasqlite__V1__BatchGetItem it[2];
    nanasqlite__v1__batch_get_item__init(&it[0]);
    nanasqlite__v1__batch_get_item__init(&it[1]);
    it[0].key = s("a");
    it[0].found = 1;
    it[0].value_json = s("1");
    it[1].key = s("b");
    Nanasqlite__V1__BatchGetItem *items[] = {&it[0], &it[1]};
    Nanasqlite__V1__BatchGetReply bgr;
    nanasqlite__v1__batch_get_reply__init(&bgr);
    bgr.n_items = 2;
    bgr.items = items;
    Nanasqlite__V1__BatchGetReply *bgr2 = (void *)round_trip(&bgr.base);
    assert_int_equal(bgr2->n_items, 2);
    assert_true(bgr2->items[0]->found);
    assert_string_equal(bgr2->items[0]->value_json, "1");
    assert_false(bgr2->items[1]->found);
    assert_string_equal(bgr2->items[1]->key, "b");

    Nanasqlite__V1__KeyValue kv[2];
    nanasqlite__v1__key_value__init(&kv[0]);
    nanasqlite__v1__key_value__init(&kv[1]);
    kv[0].key = s("a");
    kv[0].value_json = s("[]");
    kv[1].key = s("b");
    kv[1].value_json = s("\"s\"");
    Nanasqlite__V1__KeyValue *entries[] = {&kv[0], &kv[1]};
    Nanasqlite__V1__BatchSetRequest bs;
    nanasqlite__v1__batch_set_request__init(&bs);
    bs.n_entries = 2;
    bs.entries = entries;
    bs.table = s("t");
    Nanasqlite__V1__BatchSetRequest *bs2 = (void *)round_trip(&bs.base);
    assert_int_equal(bs2->n_entries, 2);
    assert_string_equal(bs2->entries[1]->value_json, "\"s\"");
    assert_string_equal(bs2->table, "t");
    Nanasqlite__V1__BatchSetReply bsr;
    nanasqlite__v1__batch_set_reply__init(&bsr);
    round_trip(&bsr.base);

    /* The service and its methods, as a gRPC path names them. */
    const ProtobufCServiceDescriptor *sd = &nanasqlite__v1__nana_sqlite__descriptor;
    assert_string_equal(sd->name, "nanasqlite.v1.NanaSQLite");
    const char *methods[] = {"Call", "Get", "Set", "Delete", "BatchGet", "BatchSet"};
    assert_int_equal(sd->n_methods, 6);
    for (size_t i = 0; i < 6; i++)
        assert_string_equal(sd->methods[i].name, methods[i]);
}

static void test_unpack_bad_bytes(void **state)
{
    (void)state;
    ProtobufCMessage *m;
    /* A length past the end, a bad wire type, a truncated varint. */
    const char *bad[] = {"\x0a\x05"
                         "ab",
                         "\x0f", "\x08\xff"};
    size_t lens[] = {4, 1, 2};
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(nana_grpc_pb_unpack(&arena, &nanasqlite__v1__get_request__descriptor,
                                             (const uint8_t *)bad[i], lens[i], &m),
                         NANA_ERR_INVALID);
    assert_non_null(strstr(nana_errmsg(), "nanasqlite.v1.GetRequest"));
    /* Field number 0, which protobuf-c takes as an unknown field when its
     * tag is a long varint, at the top and inside a repeated message: a
     * reflection answer would echo it in a form no reader takes. */
    assert_int_equal(nana_grpc_pb_unpack(&arena, &nanasqlite__v1__get_request__descriptor,
                                         (const uint8_t *)"\x80\x00\x25", 3, &m),
                     NANA_ERR_INVALID);
    assert_int_equal(nana_grpc_pb_unpack(
                         &arena, &grpc__reflection__v1alpha__server_reflection_request__descriptor,
                         (const uint8_t *)"\x80\x00\x25\x3a\x01*", 6, &m),
                     NANA_ERR_INVALID);
    assert_int_equal(nana_grpc_pb_unpack(&arena, &nanasqlite__v1__batch_set_request__descriptor,
                                         (const uint8_t *)"\x0a\x06\x0a\x01k\x80\x00\x01", 8, &m),
                     NANA_ERR_INVALID);
    assert_int_equal(nana_grpc_pb_unpack(&arena, &nanasqlite__v1__batch_set_request__descriptor,
                                         (const uint8_t *)"\x0a\x06\x0a\x01k\x12\x01\x31", 8, &m),
                     0);
    /* Nothing allocated by malloc when the arena has a block: */
    static char block[8192];
    nana_arena a;
    nana_arena_init(&a, block, sizeof(block));
    nana_mem_fail_at(1, true);
    assert_int_equal(nana_grpc_pb_unpack(&a, &nanasqlite__v1__get_request__descriptor,
                                         (const uint8_t *)"\x0a\x01k", 3, &m),
                     0);
    nana_mem_fail_at(0, false);
    assert_string_equal(((Nanasqlite__V1__GetRequest *)m)->key, "k");
    nana_arena_free(&a);
}

/* The string field 1 (name) of a FileDescriptorProto. */
static void file_name_is(const nana_grpc_file *f, const char *name)
{
    size_t n = strlen(name);
    assert_true(f->len > n + 2);
    assert_int_equal(f->proto[0], 0x0a);
    assert_int_equal(f->proto[1], n);
    assert_memory_equal(f->proto + 2, name, n);
}

/* A Predicate that is |levels| NOT nodes around an empty one, as the wire
 * writes it: Predicate {not = 8: NotPredicate {predicate = 1: ...}}. */
static uint8_t *deep_predicate(size_t levels, size_t *len)
{
    uint8_t *buf = test_malloc(levels * 8 + 8), *tmp = test_malloc(levels * 8 + 8);
    size_t n = 0;
    for (size_t i = 0; i < levels; i++) {
        /* inner = Predicate bytes so far; NotPredicate = 0x0a len inner;
         * Predicate = 0x42 len NotPredicate */
        size_t m = 0;
        uint8_t hdr[12];
        size_t h = 0, inner = n;
        hdr[h++] = 0x0a;
        for (size_t v = inner;; v >>= 7) {
            hdr[h++] = (uint8_t)((v & 127) | (v > 127 ? 128 : 0));
            if (v <= 127) break;
        }
        size_t notlen = h + inner;
        tmp[m++] = 0x42;
        for (size_t v = notlen;; v >>= 7) {
            tmp[m++] = (uint8_t)((v & 127) | (v > 127 ? 128 : 0));
            if (v <= 127) break;
        }
        memcpy(tmp + m, hdr, h);
        m += h;
        memcpy(tmp + m, buf, n);
        m += n;
        memcpy(buf, tmp, m);
        n = m;
    }
    test_free(tmp);
    *len = n;
    return buf;
}

static void test_unpack_depth(void **state)
{
    (void)state;
    ProtobufCMessage *m;
    size_t len;
    /* 49 NOT levels: 99 messages deep, the root included: taken. */
    uint8_t *ok = deep_predicate(49, &len);
    assert_int_equal(
        nana_grpc_pb_unpack(&arena, &amaters__types__predicate__descriptor, ok, len, &m), 0);
    test_free(ok);
    /* 50 levels: 101 deep, refused before protobuf-c recurses into it; so
     * is a million (which would have taken protobuf-c's stack). */
    uint8_t *deep = deep_predicate(50, &len);
    assert_int_equal(
        nana_grpc_pb_unpack(&arena, &amaters__types__predicate__descriptor, deep, len, &m),
        NANA_ERR_INVALID);
    assert_non_null(strstr(nana_errmsg(), "deeper"));
    test_free(deep);
    uint8_t *huge = deep_predicate(20000, &len);
    assert_int_equal(
        nana_grpc_pb_unpack(&arena, &amaters__types__predicate__descriptor, huge, len, &m),
        NANA_ERR_INVALID);
    test_free(huge);
}

static void test_descriptors(void **state)
{
    (void)state;
    size_t count;
    const nana_grpc_file *files = nana_grpc_files(&count);
    assert_int_equal(count, 8);
    const char *names[] = {"grpc/health/v1/health.proto",
                           "grpc/reflection/v1alpha/reflection.proto",
                           "nanasqlite/v1/nanasqlite.proto",
                           "amaters/types.proto",
                           "amaters/query.proto",
                           "amaters/errors.proto",
                           "amaters/aql.proto",
                           "amaters_service.proto"};
    for (size_t i = 0; i < 8; i++) {
        assert_string_equal(files[i].name, names[i]);
        file_name_is(&files[i], names[i]);
        assert_ptr_equal(nana_grpc_file_by_name(names[i], strlen(names[i])), &files[i]);
    }
    assert_null(nana_grpc_file_by_name("health.proto", 12));
    assert_null(nana_grpc_file_by_name("", 0));
    struct {
        const char *sym;
        int file; /* -1: none */
    } syms[] = {
        {"grpc.health.v1.Health", 0},
        {"grpc.health.v1.Health.Check", 0},
        {"grpc.health.v1.Health.Watch", 0},
        {"grpc.health.v1.HealthCheckRequest", 0},
        {"grpc.health.v1.HealthCheckResponse.ServingStatus", 0},
        {"grpc.reflection.v1alpha.ServerReflection", 1},
        {"grpc.reflection.v1alpha.ServerReflection.ServerReflectionInfo", 1},
        {"grpc.reflection.v1alpha.ErrorResponse", 1},
        {"nanasqlite.v1.NanaSQLite", 2},
        {"nanasqlite.v1.NanaSQLite.BatchGet", 2},
        {"nanasqlite.v1.KeyValue", 2},
        {"nanasqlite.v1.CallError", 2},
        {"grpc.health.v1.Nope", -1},
        {"grpc.health.v1", -1},
        {"grpc.health.v1.", -1},
        {"grpc.health.v1.Health.Nope", -1},
        {"grpc.health.v1.Health.Check.X", -1},
        {"grpc.health.v1.HealthCheckResponse.ServingStatus.SERVING", -1},
        {"nanasqlite.v1.NanaSQLite.Get.", -1},
        {"nanasqlite.v1.Nana", -1},
        {"nanasqlite.v1.NanaSQLiteX", -1},
        {"NanaSQLite", -1},
        {"nanasqlite.v1.NanaSQLiteXGet", -1},
        {"grpc.health.v1XHealth", -1},
        {"grpc.health.v1.HealthCheckResponseXServingStatus", -1},
        {"", -1},
    };
    for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++) {
        const nana_grpc_file *f = nana_grpc_file_by_symbol(syms[i].sym, strlen(syms[i].sym));
        const nana_grpc_file *want = syms[i].file < 0 ? NULL : &files[syms[i].file];
        if (f != want) fail_msg("symbol '%s' found in the wrong file", syms[i].sym);
    }
    const char **services;
    size_t n;
    assert_int_equal(nana_grpc_service_names(&arena, &services, &n), 0);
    assert_int_equal(n, 5);
    assert_string_equal(services[0], "grpc.health.v1.Health");
    assert_string_equal(services[1], "grpc.reflection.v1alpha.ServerReflection");
    assert_string_equal(services[2], "nanasqlite.v1.NanaSQLite");
    assert_string_equal(services[3], "amaters.aql.AqlService");
    assert_string_equal(services[4], "AmateRS");
    /* A symbol of a file without a package, and one of a file that only
     * other files import. */
    assert_ptr_equal(nana_grpc_file_by_symbol("AmateRS.Execute", 15), &files[7]);
    assert_ptr_equal(nana_grpc_file_by_symbol("amaters.types.Predicate", 23), &files[3]);
}

/* Appends a length-delimited field to |out|; returns the new end. */
static uint8_t *ld(uint8_t *out, int num, const void *p, size_t n)
{
    *out++ = (uint8_t)(num << 3 | 2);
    *out++ = (uint8_t)n; /* short fields only */
    memcpy(out, p, n);
    return out + n;
}

static void test_nested_symbols(void **state)
{
    (void)state;
    /* package a.b; message Outer { message Inner { enum Kind {} } enum E {} }
     * with a varint field (syntax-like) and a fixed one in between, built by
     * hand: our own files nest no message. */
    uint8_t kind[16], inner[64], outer[128], file[256], *e;
    e = ld(kind, 1, "Kind", 4);
    size_t kind_len = (size_t)(e - kind);
    e = ld(inner, 1, "Inner", 5);
    e = ld(e, 4, kind, kind_len);
    size_t inner_len = (size_t)(e - inner);
    e = ld(outer, 1, "Outer", 5);
    *e++ = 0x38; /* field 7, varint */
    *e++ = 0x96;
    *e++ = 0x01;
    e = ld(e, 3, inner, inner_len);
    e = ld(e, 4,
           "\x0a\x01"
           "E",
           3);
    size_t outer_len = (size_t)(e - outer);
    e = ld(file, 1, "x.proto", 7);
    e = ld(e, 2, "a.b", 3);
    *e++ = 0x45; /* field 8, fixed32 */
    memset(e, 0, 4);
    e += 4;
    e = ld(e, 4, outer, outer_len);
    nana_grpc_file f = {"x.proto", file, (size_t)(e - file)};
    const char *yes[] = {"a.b.Outer", "a.b.Outer.Inner", "a.b.Outer.Inner.Kind", "a.b.Outer.E"};
    for (size_t i = 0; i < 4; i++)
        if (!nana_grpc_file_declares(&f, yes[i], strlen(yes[i]))) fail_msg("%s not found", yes[i]);
    const char *no[] = {"a.b.Inner",
                        "a.b.Outer.Kind",
                        "a.b.Outer.Inner.E",
                        "a.b.OuterXInner",
                        "a.b.Outer.Inner.Kind.X",
                        "Outer",
                        "a.b",
                        "a.b.E"};
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        if (nana_grpc_file_declares(&f, no[i], strlen(no[i]))) fail_msg("%s found", no[i]);
    /* Truncated descriptors are read as far as they go, never past. */
    for (size_t cut = 0; cut < f.len; cut++) {
        nana_grpc_file t = {"x.proto", file, cut};
        (void)nana_grpc_file_declares(&t, "a.b.Outer.Inner.Kind", 20);
    }
}

/* Sends one reflection request, returns the unpacked answer. */
static Grpc__Reflection__V1alpha__ServerReflectionResponse *
reflect(Grpc__Reflection__V1alpha__ServerReflectionRequest *q)
{
    uint8_t req[512], *out;
    size_t n = grpc__reflection__v1alpha__server_reflection_request__pack(q, req), len;
    assert_int_equal(nana_grpc_reflect_answer(&arena, req, n, &out, &len), 0);
    ProtobufCMessage *m;
    assert_int_equal(nana_grpc_pb_unpack(
                         &arena, &grpc__reflection__v1alpha__server_reflection_response__descriptor,
                         out, len, &m),
                     0);
    return (Grpc__Reflection__V1alpha__ServerReflectionResponse *)m;
}

#define REQ(x)  GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_##x
#define RESP(x) GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_##x

static void error_is(const Grpc__Reflection__V1alpha__ServerReflectionResponse *r, int code,
                     const char *text)
{
    assert_int_equal(r->message_response_case, RESP(ERROR_RESPONSE));
    assert_int_equal(r->error_response->error_code, code);
    assert_non_null(strstr(r->error_response->error_message, text));
}

static void test_reflection_answers(void **state)
{
    (void)state;
    size_t count;
    const nana_grpc_file *files = nana_grpc_files(&count);
    Grpc__Reflection__V1alpha__ServerReflectionRequest q;
    grpc__reflection__v1alpha__server_reflection_request__init(&q);
    q.host = s("db.example");

    q.message_request_case = REQ(LIST_SERVICES);
    q.list_services = s("*");
    Grpc__Reflection__V1alpha__ServerReflectionResponse *r = reflect(&q);
    assert_int_equal(r->message_response_case, RESP(LIST_SERVICES_RESPONSE));
    assert_int_equal(r->list_services_response->n_service, 5);
    assert_string_equal(r->list_services_response->service[2]->name, "nanasqlite.v1.NanaSQLite");
    assert_string_equal(r->list_services_response->service[3]->name, "amaters.aql.AqlService");
    assert_string_equal(r->list_services_response->service[4]->name, "AmateRS");
    assert_string_equal(r->valid_host, "db.example");
    assert_int_equal(r->original_request->message_request_case, REQ(LIST_SERVICES));

    q.message_request_case = REQ(FILE_BY_FILENAME);
    q.file_by_filename = s("nanasqlite/v1/nanasqlite.proto");
    r = reflect(&q);
    assert_int_equal(r->message_response_case, RESP(FILE_DESCRIPTOR_RESPONSE));
    assert_int_equal(r->file_descriptor_response->n_file_descriptor_proto, 1);
    assert_int_equal(r->file_descriptor_response->file_descriptor_proto[0].len, files[2].len);
    assert_memory_equal(r->file_descriptor_response->file_descriptor_proto[0].data, files[2].proto,
                        files[2].len);
    assert_string_equal(r->original_request->file_by_filename, "nanasqlite/v1/nanasqlite.proto");

    q.file_by_filename = s("google/protobuf/empty.proto");
    error_is(reflect(&q), NANA_GRPC_NOT_FOUND, "no file named 'google/protobuf/empty.proto'");

    q.message_request_case = REQ(FILE_CONTAINING_SYMBOL);
    q.file_containing_symbol = s("grpc.health.v1.Health.Watch");
    r = reflect(&q);
    assert_int_equal(r->message_response_case, RESP(FILE_DESCRIPTOR_RESPONSE));
    assert_int_equal(r->file_descriptor_response->file_descriptor_proto[0].len, files[0].len);
    q.file_containing_symbol = s("nanasqlite.v1.Missing");
    error_is(reflect(&q), NANA_GRPC_NOT_FOUND, "no symbol named 'nanasqlite.v1.Missing'");

    Grpc__Reflection__V1alpha__ExtensionRequest ext;
    grpc__reflection__v1alpha__extension_request__init(&ext);
    ext.containing_type = s("nanasqlite.v1.GetRequest");
    ext.extension_number = 100;
    q.message_request_case = REQ(FILE_CONTAINING_EXTENSION);
    q.file_containing_extension = &ext;
    error_is(reflect(&q), NANA_GRPC_NOT_FOUND, "no extensions");

    q.message_request_case = REQ(ALL_EXTENSION_NUMBERS_OF_TYPE);
    q.all_extension_numbers_of_type = s("nanasqlite.v1.GetRequest");
    r = reflect(&q);
    assert_int_equal(r->message_response_case, RESP(ALL_EXTENSION_NUMBERS_RESPONSE));
    assert_string_equal(r->all_extension_numbers_response->base_type_name,
                        "nanasqlite.v1.GetRequest");
    assert_int_equal(r->all_extension_numbers_response->n_extension_number, 0);
    q.all_extension_numbers_of_type = s("x.Y");
    error_is(reflect(&q), NANA_GRPC_NOT_FOUND, "no type named 'x.Y'");

    q.message_request_case = 0;
    error_is(reflect(&q), NANA_GRPC_INVALID_ARGUMENT, "asks no question");

    /* Bytes that are not a request. */
    uint8_t *out;
    size_t len;
    assert_int_equal(nana_grpc_reflect_answer(&arena,
                                              (const uint8_t *)"\x0a\x09"
                                                               "ab",
                                              4, &out, &len),
                     NANA_ERR_INVALID);
}

static void test_out_of_memory(void **state)
{
    (void)state;
    /* Every allocation point of a reflection answer fails cleanly. */
    Grpc__Reflection__V1alpha__ServerReflectionRequest q;
    grpc__reflection__v1alpha__server_reflection_request__init(&q);
    q.message_request_case = REQ(LIST_SERVICES);
    q.list_services = s("");
    uint8_t req[64], *out;
    size_t n = grpc__reflection__v1alpha__server_reflection_request__pack(&q, req), len;
    for (unsigned long at = 1;; at++) {
        nana_arena a = NANA_ARENA_INIT;
        nana_mem_fail_at(at, true);
        int rc = nana_grpc_reflect_answer(&a, req, n, &out, &len);
        unsigned long failed = nana_mem_failures();
        nana_mem_fail_at(0, false);
        nana_arena_free(&a);
        if (!failed) {
            assert_int_equal(rc, 0);
            break;
        }
        assert_true(rc == NANA_ERR_NOMEM || rc == NANA_ERR_INVALID);
        assert_true(at < 100);
    }
    Nanasqlite__V1__GetReply gr;
    nanasqlite__v1__get_reply__init(&gr);
    gr.value_json = s("1");
    nana_arena a = NANA_ARENA_INIT;
    nana_mem_fail_at(1, true);
    assert_int_equal(nana_grpc_pb_pack_framed(&a, &gr.base, &out, &len), NANA_ERR_NOMEM);
    nana_mem_fail_at(0, false);
    nana_arena_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_health_messages, teardown),
        cmocka_unit_test_teardown(test_reflection_messages, teardown),
        cmocka_unit_test_teardown(test_nanasqlite_messages, teardown),
        cmocka_unit_test_teardown(test_unpack_bad_bytes, teardown),
        cmocka_unit_test_teardown(test_unpack_depth, teardown),
        cmocka_unit_test_teardown(test_descriptors, teardown),
        cmocka_unit_test_teardown(test_nested_symbols, teardown),
        cmocka_unit_test_teardown(test_reflection_answers, teardown),
        cmocka_unit_test_teardown(test_out_of_memory, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
