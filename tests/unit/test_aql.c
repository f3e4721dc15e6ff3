/*
 * test_aql.c - the AQL layer without a server (src/aql): how values are
 * kept and read back, plans and their refusals, and the answers written by
 * hand, checked byte for byte against what protobuf-c makes of the same
 * message.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "aql/nana_aql.h"
#include "util/nana_val.h"

#include <string.h>

static char block[4096];

/* The stored JSON of |data|, then its bytes read back: equal to |data|. */
static void round_trip(const char *data, size_t len, const char *want_json)
{
    nana_arena a;
    nana_arena_init(&a, block, sizeof(block));
    const char *json;
    size_t jlen;
    assert_int_equal(nana_aql_stored_json(&a, (const uint8_t *)data, len, &json, &jlen), 0);
    if (want_json) {
        assert_int_equal(jlen, strlen(want_json));
        assert_memory_equal(json, want_json, jlen);
    }
    const uint8_t *back;
    size_t blen;
    assert_int_equal(nana_aql_value_bytes(&a, json, jlen, &back, &blen), 0);
    assert_int_equal(blen, len);
    if (len) assert_memory_equal(back, data, len);
    nana_arena_free(&a);
}

static void test_values(void **state)
{
    (void)state;
    round_trip("{\"a\": [1, 2]}", 13, "{\"a\": [1, 2]}"); /* JSON: kept as sent */
    round_trip("42", 2, "42");
    round_trip("\x01\x02x", 3, "{\"$bytes\":\"AQJ4\"}"); /* other bytes: wrapped */
    round_trip("", 0, "{\"$bytes\":\"\"}");
    round_trip("not json", 8, NULL);
    round_trip("\"\xff\"", 3, NULL); /* not UTF-8 */
    /* a JSON text that is itself a wrapper is wrapped again */
    const char *w = "{\"$bytes\":\"AQJ4\"}";
    round_trip(w, strlen(w), NULL);
    /* ... while other objects with that member are plain JSON */
    const char *two = "{\"$bytes\":\"AQJ4\",\"b\":1}";
    round_trip(two, strlen(two), two);
    assert_int_equal(nana_aql_crc32("123456789", 9), 0xCBF43926u);
}

/* Packs |r| with protobuf-c as a QueryResponse {result, request_id, time}. */
static void expected(Amaters__Query__QueryResult *r, const char *rid, uint64_t ms, nana_buf *out)
{
    Amaters__Aql__QueryResponse q;
    amaters__aql__query_response__init(&q);
    q.response_case = AMATERS__AQL__QUERY_RESPONSE__RESPONSE_RESULT;
    q.result = r;
    if (rid) {
        q._request_id_case = AMATERS__AQL__QUERY_RESPONSE___REQUEST_ID_REQUEST_ID;
        q.request_id = (char *)(uintptr_t)rid;
    }
    q.execution_time_ms = ms;
    assert_int_equal(nana_aql_pack(&q.base, out), 0);
}

/* Our answer of |kind| for |res| equals |want|. */
static void same(nana_aql_kind kind, const nana_core_result *res, bool not_found, const char *rid,
                 uint64_t ms, const nana_buf *want)
{
    nana_arena a;
    nana_arena_init(&a, block, sizeof(block));
    nana_aql_plan p;
    memset(&p, 0, sizeof(p));
    p.kind = kind;
    nana_buf got;
    nana_buf_init(&got, 0);
    assert_int_equal(nana_aql_response_of(&a, &p, res, not_found, rid, ms, &got), 0);
    assert_int_equal(got.len, want->len);
    assert_memory_equal(got.data, want->data, got.len);
    nana_buf_free(&got);
    nana_arena_free(&a);
}

static void test_small_answers(void **state)
{
    (void)state;
    const char *vals[] = {"{\"age\": 31}", "\x01\x02x", "", "{\"$bytes\":\"\"}"};
    for (size_t i = 0; i < 4; i++) {
        /* the stored form of the value, as the store would give it back */
        nana_arena a;
        nana_arena_init(&a, block, sizeof(block));
        const char *json;
        size_t jlen;
        assert_int_equal(
            nana_aql_stored_json(&a, (const uint8_t *)vals[i], strlen(vals[i]), &json, &jlen), 0);
        nana_val *v = nana_val_new(json, jlen);
        assert_non_null(v);
        nana_arena_free(&a);
        Amaters__Types__CipherMetadata m;
        amaters__types__cipher_metadata__init(&m);
        m.size = strlen(vals[i]);
        m.checksum = nana_aql_crc32(vals[i], strlen(vals[i]));
        Amaters__Types__CipherBlob b;
        amaters__types__cipher_blob__init(&b);
        b.data.data = (uint8_t *)(uintptr_t)vals[i];
        b.data.len = strlen(vals[i]);
        b.metadata = &m;
        Amaters__Query__SingleResult sr;
        amaters__query__single_result__init(&sr);
        sr._value_case = AMATERS__QUERY__SINGLE_RESULT___VALUE_VALUE;
        sr.value = &b;
        Amaters__Query__QueryResult r;
        amaters__query__query_result__init(&r);
        r.result_case = AMATERS__QUERY__QUERY_RESULT__RESULT_SINGLE;
        r.single = &sr;
        nana_buf want;
        nana_buf_init(&want, 0);
        expected(&r, i ? "rid" : NULL, i * 300, &want);
        nana_core_result res = {.kind = NANA_RES_VAL, .v = v};
        same(NANA_AQL_GET, &res, false, i ? "rid" : NULL, i * 300, &want);
        nana_buf_free(&want);
        nana_val_unref(v);
    }
    /* a get that found nothing: an empty SingleResult */
    Amaters__Query__SingleResult sr;
    amaters__query__single_result__init(&sr);
    Amaters__Query__QueryResult r;
    amaters__query__query_result__init(&r);
    r.result_case = AMATERS__QUERY__QUERY_RESULT__RESULT_SINGLE;
    r.single = &sr;
    nana_buf want;
    nana_buf_init(&want, 0);
    expected(&r, NULL, 0, &want);
    nana_core_result none = {0};
    same(NANA_AQL_GET, &none, true, NULL, 0, &want);
    /* writes: SuccessResult {affected_rows} */
    struct {
        nana_aql_kind kind;
        nana_core_result res;
        bool not_found;
        uint64_t rows;
    } w[] = {
        {NANA_AQL_SET, {0}, false, 1},
        {NANA_AQL_DELETE, {0}, false, 1},
        {NANA_AQL_DELETE, {0}, true, 0},
        {NANA_AQL_UPDATE, {.kind = NANA_RES_INT, .i = 300}, false, 300},
        {NANA_AQL_UPDATE, {.kind = NANA_RES_INT, .i = 0}, false, 0},
    };
    for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++) {
        Amaters__Query__SuccessResult ok;
        amaters__query__success_result__init(&ok);
        ok.affected_rows = w[i].rows;
        amaters__query__query_result__init(&r);
        r.result_case = AMATERS__QUERY__QUERY_RESULT__RESULT_SUCCESS;
        r.success = &ok;
        want.len = 0;
        expected(&r, "x", 7, &want);
        same(w[i].kind, &w[i].res, w[i].not_found, "x", 7, &want);
    }
    nana_buf_free(&want);
}

/* Plans: the refusals a client gets inside its answer. */
static void test_plans(void **state)
{
    (void)state;
    nana_arena a;
    nana_arena_init(&a, block, sizeof(block));
    nana_aql_plan p;
    nana_aql_err err;
    assert_int_equal(nana_aql_plan_query(&a, NULL, &p, &err), -1);
    assert_int_equal(err.code, AMATERS__ERRORS__ERROR_CODE__ERROR_PROTOCOL_MISSING_FIELD);
    Amaters__Types__Key k;
    amaters__types__key__init(&k);
    k.data.data = (uint8_t *)"\xff";
    k.data.len = 1;
    Amaters__Query__GetQuery g;
    amaters__query__get_query__init(&g);
    g.collection = (char *)"c";
    g.key = &k;
    Amaters__Query__Query q;
    amaters__query__query__init(&q);
    q.query_case = AMATERS__QUERY__QUERY__QUERY_GET;
    q.get = &g;
    assert_int_equal(nana_aql_plan_query(&a, &q, &p, &err), -1);
    assert_int_equal(err.code, AMATERS__ERRORS__ERROR_CODE__ERROR_VALIDATION_INVALID_KEY);
    assert_int_equal(err.category, AMATERS__ERRORS__ERROR_CATEGORY__CATEGORY_CLIENT_ERROR);
    k.data.data = (uint8_t *)"key";
    k.data.len = 3;
    g.collection = (char *)"sqlite_master";
    assert_int_equal(nana_aql_plan_query(&a, &q, &p, &err), -1);
    assert_int_equal(err.code, AMATERS__ERRORS__ERROR_CODE__ERROR_VALIDATION_INVALID_COLLECTION);
    g.collection = (char *)"x\"; DROP TABLE data; --";
    assert_int_equal(nana_aql_plan_query(&a, &q, &p, &err), -1);
    g.collection = (char *)"";
    assert_int_equal(nana_aql_plan_query(&a, &q, &p, &err), 0);
    assert_null(p.collection);
    assert_string_equal(p.method, "__getitem__");
    /* a comparison whose value is not JSON */
    Amaters__Types__ColumnRef col;
    amaters__types__column_ref__init(&col);
    col.name = (char *)"age";
    Amaters__Types__CipherBlob val;
    amaters__types__cipher_blob__init(&val);
    val.data.data = (uint8_t *)"Tokyo";
    val.data.len = 5;
    Amaters__Types__EqPredicate eq;
    amaters__types__eq_predicate__init(&eq);
    eq.column = &col;
    eq.value = &val;
    Amaters__Types__Predicate pr;
    amaters__types__predicate__init(&pr);
    pr.predicate_case = AMATERS__TYPES__PREDICATE__PREDICATE_EQ;
    pr.eq = &eq;
    Amaters__Query__FilterQuery f;
    amaters__query__filter_query__init(&f);
    f.collection = (char *)"c";
    f.predicate = &pr;
    q.query_case = AMATERS__QUERY__QUERY__QUERY_FILTER;
    q.filter = &f;
    assert_int_equal(nana_aql_plan_query(&a, &q, &p, &err), -1);
    assert_int_equal(err.code, AMATERS__ERRORS__ERROR_CODE__ERROR_VALIDATION_INVALID_VALUE);
    val.data.data = (uint8_t *)"\"Tokyo\"";
    val.data.len = 7;
    assert_int_equal(nana_aql_plan_query(&a, &q, &p, &err), 0);
    assert_string_equal(p.method, "aql_select");
    assert_non_null(p.sel.pred);
    assert_true(p.streams);
    /* the error mapping: a server fault never shows its detail */
    nana_error e;
    nana_error_setf(&e, NANA_ERR_IO, "disk /secret/path failed");
    nana_aql_err_from(&e, &err);
    assert_int_equal(err.code, AMATERS__ERRORS__ERROR_CODE__ERROR_STORAGE_IO);
    assert_null(strstr(err.message, "/secret/path"));
    nana_error_setf(&e, NANA_ERR_RATE, "slow down");
    nana_aql_err_from(&e, &err);
    assert_int_equal(err.code, AMATERS__ERRORS__ERROR_CODE__ERROR_SERVER_OVERLOADED);
    assert_int_equal(err.retry_after, 1);
    assert_int_equal(err.category, AMATERS__ERRORS__ERROR_CATEGORY__CATEGORY_RETRYABLE);
    nana_arena_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_small_answers),
        cmocka_unit_test(test_plans),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
