/*
 * fuzz_aql.c - libFuzzer harness for the AQL requests clients send to the
 * gRPC doors: the bytes are unpacked as an amaters.aql.QueryRequest, a
 * BatchRequest or the design's AmateRS QueryRequest (the first byte
 * chooses), with the depth check that runs before protobuf-c
 * (src/grpc/pb.c), then made into a plan for the call core
 * (src/aql/plan.c: keys, collections, values, predicate trees checked by
 * the store's rules, updates) and bound as the core would bind it. A plan
 * that was made must hold what the checks promise: keys UTF-8, a SET's
 * stored text valid JSON, and a stored value read back as the bytes sent.
 * Everything lives in one arena, freed at the end.
 */
#include "fuzz_check.h"
#include "aql/nana_aql.h"
#include "grpc/nana_grpc.h"
#include "util/nana_arena.h"
#include "util/nana_json.h"

#include "amaters_service.pb-c.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The checks a plan made from client bytes must pass. */
static void check_plan(nana_arena *a, const nana_aql_plan *p)
{
    nana_args args;
    nana_aql_bind(p, &args);
    if (p->key) CHECK(nana_utf8_valid(p->key, p->klen));
    if (p->kind == NANA_AQL_SET) {
        CHECK(nana_json_validate(p->json, p->jlen, 0, NANA_DEFAULT_JSON_DEPTH) == 0);
        const uint8_t *back;
        size_t blen;
        CHECK(nana_aql_value_bytes(a, p->json, p->jlen, &back, &blen) == 0);
    }
    if (p->sel.pred) CHECK(nana_pred_check(p->sel.pred) == 0);
    if (p->pred) CHECK(nana_pred_check(p->pred) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    static char block[2048];
    nana_arena a;
    nana_arena_init(&a, block, sizeof(block));
    ProtobufCMessage *m = NULL;
    nana_aql_plan plan;
    nana_aql_err err;
    switch (data[0] % 3) {
    case 0:
        if (nana_grpc_pb_unpack(&a, &amaters__aql__query_request__descriptor, data + 1, size - 1,
                                &m) == 0 &&
            nana_aql_plan_query(&a, ((Amaters__Aql__QueryRequest *)m)->query, &plan, &err) == 0)
            check_plan(&a, &plan);
        break;
    case 1:
        if (nana_grpc_pb_unpack(&a, &amaters__aql__batch_request__descriptor, data + 1, size - 1,
                                &m) == 0) {
            Amaters__Aql__BatchRequest *b = (Amaters__Aql__BatchRequest *)m;
            if (nana_aql_plan_batch(&a, b->queries, b->n_queries, &plan, &err) == 0) {
                nana_args args;
                nana_aql_bind(&plan, &args);
                for (size_t i = 0; i < plan.nops; i++)
                    if (plan.ops[i].key) CHECK(nana_utf8_valid(plan.ops[i].key, plan.ops[i].klen));
            }
        }
        break;
    default:
        if (nana_grpc_pb_unpack(&a, &query_request__descriptor, data + 1, size - 1, &m) == 0) {
            QueryRequest *q = (QueryRequest *)m;
            ProtobufCMessage *inner = NULL;
            if (nana_grpc_pb_unpack(&a, &amaters__aql__query_request__descriptor,
                                    q->query_bytes.data, q->query_bytes.len, &inner) == 0 &&
                nana_aql_plan_query(&a, ((Amaters__Aql__QueryRequest *)inner)->query, &plan,
                                    &err) == 0)
                check_plan(&a, &plan);
        }
        break;
    }
    nana_arena_free(&a);
    return 0;
}
