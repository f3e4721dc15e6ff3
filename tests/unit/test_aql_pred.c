/*
 * test_aql_pred.c - the client's AQL pieces that need no server: the
 * predicate text parser (trees, precedence, values, every error with its
 * column, every limit), the query and request builders (decoded back with
 * protobuf-c), and answers turned into JSON.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "amaters/aql.pb-c.h"
#include "client/client_int.h"
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef Amaters__Types__Predicate pred;

/* Parses |text| (must succeed) into a tree the caller frees. */
static pred *parse_ok(const char *text)
{
    uint8_t *b = NULL;
    size_t n = 0;
    nana_result err = {0};
    int rc = nana_client_aql_parse_predicate(text, &b, &n, &err);
    if (rc) fail_msg("'%s': %s", text, err.message);
    pred *p = amaters__types__predicate__unpack(NULL, n, b);
    assert_non_null(p);
    nana_client_aql_free(b);
    return p;
}

/* Parses |text| (must fail) and returns the message (static buffer). */
static const char *parse_err(const char *text, int want_status)
{
    static char msg[512];
    uint8_t *b = NULL;
    size_t n = 0;
    nana_result err = {0};
    int rc = nana_client_aql_parse_predicate(text, &b, &n, &err);
    if (!rc) fail_msg("'%s' parsed", text);
    assert_int_equal(rc, want_status);
    assert_null(b);
    snprintf(msg, sizeof(msg), "%s", err.message);
    nana_result_free(&err);
    return msg;
}

/* A tree in a short prefix form: (and a>=30 (not b="x")) ... */
static void show(const pred *p, char *out, size_t cap)
{
    char l[1024], r[1024];
    static const char *const ops[] = {"", "=", ">", "<", ">=", "<="};
    switch (p->predicate_case) {
    case AMATERS__TYPES__PREDICATE__PREDICATE_AND:
    case AMATERS__TYPES__PREDICATE__PREDICATE_OR:
        show(p->and_->left, l, sizeof(l));
        show(p->and_->right, r, sizeof(r));
        snprintf(out, cap, "(%s %s %s)",
                 p->predicate_case == AMATERS__TYPES__PREDICATE__PREDICATE_AND ? "and" : "or", l,
                 r);
        return;
    case AMATERS__TYPES__PREDICATE__PREDICATE_NOT:
        show(p->not_->predicate, l, sizeof(l));
        snprintf(out, cap, "(not %s)", l);
        return;
    default: {
        const Amaters__Types__EqPredicate *c = p->eq;
        snprintf(out, cap, "%s%s%.*s", c->column->name, ops[p->predicate_case],
                 (int)c->value->data.len, (const char *)c->value->data.data);
        return;
    }
    }
}

static const char *tree(const char *text)
{
    static char out[4096];
    pred *p = parse_ok(text);
    show(p, out, sizeof(out));
    amaters__types__predicate__free_unpacked(p, NULL);
    return out;
}

static void test_comparisons(void **state)
{
    (void)state;
    assert_string_equal(tree("age >= 30"), "age>=30");
    assert_string_equal(tree("age>30"), "age>30");
    assert_string_equal(tree("age<30"), "age<30");
    assert_string_equal(tree("age<=-1.5e3"), "age<=-1.5e3");
    assert_string_equal(tree("city = \"Tokyo\""), "city=\"Tokyo\"");
    assert_string_equal(tree("a.b.c = true"), "a.b.c=true");
    assert_string_equal(tree("tags[0] = null"), "tags[0]=null");
    assert_string_equal(tree("m[1][22].x_2 = false"), "m[1][22].x_2=false");
    assert_string_equal(tree("s = \"a\\\"b\\u00e9\\n\""), "s=\"a\\\"b\\u00e9\\n\"");
    assert_string_equal(tree("x != 1"), "(not x=1)");
    assert_string_equal(tree("  \tx\n=\r1  "), "x=1");
}

static void test_precedence(void **state)
{
    (void)state;
    /* not > and > or */
    assert_string_equal(tree("a=1 or b=2 and c=3"), "(or a=1 (and b=2 c=3))");
    assert_string_equal(tree("a=1 and b=2 or c=3"), "(or (and a=1 b=2) c=3)");
    assert_string_equal(tree("not a=1 and b=2"), "(and (not a=1) b=2)");
    assert_string_equal(tree("not (a=1 and b=2)"), "(not (and a=1 b=2))");
    assert_string_equal(tree("(a=1 or b=2) and c=3"), "(and (or a=1 b=2) c=3)");
    assert_string_equal(tree("not not a=1"), "(not (not a=1))");
    assert_string_equal(tree("NOT (a.b < 2.5 OR tags[0] = \"x\")"),
                        "(not (or a.b<2.5 tags[0]=\"x\"))");
    assert_string_equal(tree("age >= 30 And city = \"Tokyo\""), "(and age>=30 city=\"Tokyo\")");
    /* a keyword needs a word boundary: "order" and "notes" are fields */
    assert_string_equal(tree("order=1 or notes=2"), "(or order=1 notes=2)");
}

static void test_runs_are_balanced(void **state)
{
    (void)state;
    assert_string_equal(tree("a=1 and b=2 and c=3 and d=4"), "(and (and a=1 b=2) (and c=3 d=4))");
    /* runs that fill the parser's list of terms exactly (8, 16) and one past */
    assert_string_equal(tree("a=1 or b=2 or c=3 or d=4 or e=5 or f=6 or g=7 or h=8"),
                        "(or (or (or a=1 b=2) (or c=3 d=4)) (or (or e=5 f=6) (or g=7 h=8)))");
    assert_string_equal(tree("a=1 or b=2 or c=3 or d=4 or e=5 or f=6 or g=7 or h=8 or i=9"),
                        "(or (or (or a=1 b=2) (or c=3 d=4)) (or (or e=5 f=6) (or g=7 (or h=8 "
                        "i=9))))");
    /* 1000 terms in one run nest about log2(1000) deep, not 1000 */
    char *big = malloc((size_t)1000 * 12);
    size_t n = 0;
    for (int i = 0; i < 1000; i++)
        n += (size_t)sprintf(big + n, "%sf%d=%d", i ? " or " : "", i, i);
    uint8_t *b = NULL;
    size_t blen = 0;
    nana_result err = {0};
    assert_int_equal(nana_client_aql_parse_predicate(big, &b, &blen, &err), 0);
    pred *p = amaters__types__predicate__unpack(NULL, blen, b);
    assert_non_null(p);
    unsigned d = 0;
    for (const pred *q = p; q->predicate_case == AMATERS__TYPES__PREDICATE__PREDICATE_OR;
         q = q->or_->left)
        d++;
    assert_true(d <= 10);
    amaters__types__predicate__free_unpacked(p, NULL);
    nana_client_aql_free(b);
    free(big);
}

static void assert_has(const char *msg, const char *want)
{
    if (!strstr(msg, want)) fail_msg("'%s' does not say '%s'", msg, want);
}

static void test_errors_name_the_column(void **state)
{
    (void)state;
    assert_has(parse_err("", NANA_CLIENT_EINVALID), "column 1: expected a field name");
    assert_has(parse_err("age", NANA_CLIENT_EINVALID), "column 4: expected a comparison operator");
    assert_has(parse_err("age >= ", NANA_CLIENT_EINVALID), "column 8: expected a value");
    assert_has(parse_err("age == 3", NANA_CLIENT_EINVALID), "column 5: '==' is not an operator");
    assert_has(parse_err("city = Tokyo", NANA_CLIENT_EINVALID), "column 8: expected a JSON value");
    assert_has(parse_err("city = Tokyo", NANA_CLIENT_EINVALID), "double quotes");
    assert_has(parse_err("s = \"abc", NANA_CLIENT_EINVALID), "column 5: the string is not closed");
    assert_has(parse_err("s = \"a\\q\"", NANA_CLIENT_EINVALID), "column 5: the value is not valid");
    assert_has(parse_err("n = 01", NANA_CLIENT_EINVALID), "column 5: the value is not valid JSON");
    assert_has(parse_err("n = 1.", NANA_CLIENT_EINVALID), "column 5");
    assert_has(parse_err("n = -", NANA_CLIENT_EINVALID), "column 5");
    assert_has(parse_err("(a = 1", NANA_CLIENT_EINVALID),
               "column 7: expected ')' to close the '(' at column 1");
    assert_has(parse_err("a = 1)", NANA_CLIENT_EINVALID), "column 6: expected 'and', 'or'");
    assert_has(parse_err("a = 1 b = 2", NANA_CLIENT_EINVALID), "column 7");
    assert_has(parse_err("a = 1 and", NANA_CLIENT_EINVALID), "column 10: expected a field name");
    assert_has(parse_err("and = 1", NANA_CLIENT_EINVALID), "column 1: 'and' is a keyword");
    assert_has(parse_err("a. = 1", NANA_CLIENT_EINVALID), "column 3: expected a field name after");
    assert_has(parse_err("a[] = 1", NANA_CLIENT_EINVALID), "column 3: expected an index");
    assert_has(parse_err("a[1 = 1", NANA_CLIENT_EINVALID), "column 4: expected ']'");
    assert_has(parse_err("a = [1]", NANA_CLIENT_EINVALID), "column 5: expected a JSON value");
    assert_has(parse_err("1a = 1", NANA_CLIENT_EINVALID), "column 1: expected a field name");
    assert_has(parse_err("a = 1 or or b = 2", NANA_CLIENT_EINVALID),
               "column 10: 'or' is a keyword");
    assert_has(parse_err("a = tru", NANA_CLIENT_EINVALID), "column 5");
    assert_has(parse_err("a = True", NANA_CLIENT_EINVALID), "column 5");
}

static void test_limits(void **state)
{
    (void)state;
    /* text size */
    size_t big = NCQ_PRED_MAX_TEXT + 1;
    char *t = malloc(big + 1);
    memset(t, ' ', big);
    memcpy(t, "a=1", 3);
    t[big] = '\0';
    assert_has(parse_err(t, NANA_CLIENT_EINVALID), "the limit is 65536");
    t[big - 1] = '\0'; /* exactly the limit: fine */
    amaters__types__predicate__free_unpacked(parse_ok(t), NULL);
    free(t);
    /* comparisons */
    char *many = malloc((size_t)(NCQ_PRED_MAX_TERMS + 1) * 12);
    size_t n = 0;
    for (int i = 0; i < NCQ_PRED_MAX_TERMS; i++)
        n += (size_t)sprintf(many + n, "%sa=%d", i ? " and " : "", i);
    amaters__types__predicate__free_unpacked(parse_ok(many), NULL);
    sprintf(many + n, " and b=1");
    assert_has(parse_err(many, NANA_CLIENT_EINVALID), "more than 1024 comparisons");
    free(many);
    /* nesting of not and parentheses */
    char nest[256];
    n = 0;
    for (int i = 0; i < NCQ_PRED_MAX_NEST; i++)
        nest[n++] = '(';
    n += (size_t)sprintf(nest + n, "a=1");
    for (int i = 0; i < NCQ_PRED_MAX_NEST; i++)
        nest[n++] = ')';
    nest[n] = '\0';
    amaters__types__predicate__free_unpacked(parse_ok(nest), NULL);
    char deeper[300];
    snprintf(deeper, sizeof(deeper), "not %s", nest);
    assert_has(parse_err(deeper, NANA_CLIENT_EINVALID), "column 36: more than 32 levels");
    /* a field path */
    char *path = malloc(NCQ_PRED_MAX_PATH + 16);
    memset(path, 'p', NCQ_PRED_MAX_PATH + 1);
    strcpy(path + NCQ_PRED_MAX_PATH + 1, "=1");
    assert_has(parse_err(path, NANA_CLIENT_EINVALID), "the limit is 1024");
    path[NCQ_PRED_MAX_PATH] = '=';
    path[NCQ_PRED_MAX_PATH + 1] = '1';
    path[NCQ_PRED_MAX_PATH + 2] = '\0';
    amaters__types__predicate__free_unpacked(parse_ok(path), NULL);
    free(path);
}

/* ---- builders ---------------------------------------------------------------- */

static Amaters__Query__Query *query_of(uint8_t *q, size_t n)
{
    Amaters__Query__Query *m = amaters__query__query__unpack(NULL, n, q);
    assert_non_null(m);
    nana_client_aql_free(q);
    return m;
}

static void test_builders(void **state)
{
    (void)state;
    uint8_t *q;
    size_t n;
    assert_int_equal(nana_client_aql_build_get("users", (const uint8_t *)"k1", 2, &q, &n, NULL), 0);
    Amaters__Query__Query *m = query_of(q, n);
    assert_int_equal(m->query_case, AMATERS__QUERY__QUERY__QUERY_GET);
    assert_string_equal(m->get->collection, "users");
    assert_memory_equal(m->get->key->data.data, "k1", 2);
    amaters__query__query__free_unpacked(m, NULL);

    const uint8_t val[] = {0xff, 0x00, 0x01};
    assert_int_equal(nana_client_aql_build_set(NULL, (const uint8_t *)"k", 1, val, 3, &q, &n, NULL),
                     0);
    m = query_of(q, n);
    assert_int_equal(m->query_case, AMATERS__QUERY__QUERY__QUERY_SET);
    assert_string_equal(m->set->collection, "");
    assert_int_equal(m->set->value->data.len, 3);
    assert_memory_equal(m->set->value->data.data, val, 3);
    amaters__query__query__free_unpacked(m, NULL);

    assert_int_equal(nana_client_aql_build_range("data", (const uint8_t *)"a", 1,
                                                 (const uint8_t *)"b", 1, 100, &q, &n, NULL),
                     0);
    m = query_of(q, n);
    assert_int_equal(m->range->_limit_case, AMATERS__QUERY__RANGE_QUERY___LIMIT_LIMIT);
    assert_int_equal(m->range->limit, 100);
    amaters__query__query__free_unpacked(m, NULL);
    assert_int_equal(nana_client_aql_build_range("data", NULL, 0, NULL, 0, -1, &q, &n, NULL), 0);
    m = query_of(q, n);
    assert_int_equal(m->range->_limit_case, AMATERS__QUERY__RANGE_QUERY___LIMIT__NOT_SET);
    amaters__query__query__free_unpacked(m, NULL);

    assert_int_equal(
        nana_client_aql_build_filter("data", "age >= 30", NULL, 0, 10, 5, &q, &n, NULL), 0);
    m = query_of(q, n);
    assert_int_equal(m->filter->limit, 10);
    assert_int_equal(m->filter->offset, 5);
    assert_int_equal(m->filter->predicate->predicate_case,
                     AMATERS__TYPES__PREDICATE__PREDICATE_GTE);
    assert_string_equal(m->filter->predicate->gte->column->name, "age");
    amaters__query__query__free_unpacked(m, NULL);

    /* a predicate as bytes, and bytes that are not one */
    uint8_t *pb;
    size_t pn;
    assert_int_equal(nana_client_aql_parse_predicate("x = 1", &pb, &pn, NULL), 0);
    assert_int_equal(nana_client_aql_build_filter("d", NULL, pb, pn, -1, -1, &q, &n, NULL), 0);
    m = query_of(q, n);
    assert_int_equal(m->filter->_limit_case, AMATERS__QUERY__FILTER_QUERY___LIMIT__NOT_SET);
    assert_string_equal(m->filter->predicate->eq->column->name, "x");
    amaters__query__query__free_unpacked(m, NULL);
    nana_client_aql_free(pb);
    nana_result err = {0};
    const uint8_t junk[] = {0x0a, 0x05, 0x01};
    assert_int_equal(nana_client_aql_build_filter("d", NULL, junk, 3, -1, -1, &q, &n, &err),
                     NANA_CLIENT_EINVALID);
    assert_has(err.message, "not a serialized amaters.types.Predicate");
    nana_result_free(&err);
    assert_int_equal(nana_client_aql_build_filter("d", "x =", NULL, 0, -1, -1, &q, &n, &err),
                     NANA_CLIENT_EINVALID);
    assert_has(err.message, "the predicate: column 4");
    nana_result_free(&err);

    nana_aql_update ups[] = {{NANA_AQL_UPDATE_SET, "status", "\"senior\""},
                             {NANA_AQL_UPDATE_ADD, "visits", "1"},
                             {NANA_AQL_UPDATE_MUL, "score", "1.5"}};
    assert_int_equal(
        nana_client_aql_build_update("data", "age >= 30", NULL, 0, ups, 3, &q, &n, NULL), 0);
    m = query_of(q, n);
    assert_int_equal(m->update->n_updates, 3);
    assert_int_equal(m->update->updates[0]->operation_case, AMATERS__TYPES__UPDATE__OPERATION_SET);
    assert_string_equal(m->update->updates[0]->set->column->name, "status");
    assert_int_equal(m->update->updates[1]->operation_case, AMATERS__TYPES__UPDATE__OPERATION_ADD);
    assert_memory_equal(m->update->updates[1]->add->value->data.data, "1", 1);
    assert_int_equal(m->update->updates[2]->operation_case, AMATERS__TYPES__UPDATE__OPERATION_MUL);
    amaters__query__query__free_unpacked(m, NULL);
    assert_int_equal(nana_client_aql_build_update("data", "a=1", NULL, 0, ups, 0, &q, &n, &err),
                     NANA_CLIENT_EINVALID);
    nana_result_free(&err);
    assert_int_equal(nana_client_aql_build_update("data", "a=1", NULL, 0, ups,
                                                  NANA_AQL_MAX_UPDATES + 1, &q, &n, &err),
                     NANA_CLIENT_EINVALID);
    assert_has(err.message, "the limit is 256");
    nana_result_free(&err);

    /* a QueryRequest around a query */
    assert_int_equal(nana_client_aql_build_get("", (const uint8_t *)"k", 1, &q, &n, NULL), 0);
    uint8_t *req;
    size_t rn;
    assert_int_equal(nana_client_aql_request(q, n, 1500, &req, &rn, NULL), 0);
    nana_client_aql_free(q);
    Amaters__Aql__QueryRequest *r = amaters__aql__query_request__unpack(NULL, rn, req);
    assert_non_null(r);
    assert_int_equal(r->query->query_case, AMATERS__QUERY__QUERY__QUERY_GET);
    assert_int_equal(r->timeout_ms, 1500);
    amaters__aql__query_request__free_unpacked(r, NULL);
    nana_client_aql_free(req);
    assert_int_equal(nana_client_aql_request(junk, 3, 0, &req, &rn, &err), NANA_CLIENT_EINVALID);
    nana_result_free(&err);
    assert_string_equal(nana_client_status_name(NANA_CLIENT_EQUERY), "QueryError");
}

/* ---- answers as JSON ------------------------------------------------------------ */

static char *answer(const ProtobufCMessage *m, int batch, int raw)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *b = malloc(n + 1);
    protobuf_c_message_pack(m, b);
    char *json = NULL;
    size_t jl = 0;
    assert_int_equal(nana_client_aql_answer_json(b, n, batch, raw, &json, &jl, NULL), 0);
    assert_int_equal(strlen(json), jl);
    free(b);
    return json;
}

static void test_answers_as_json(void **state)
{
    (void)state;
    Amaters__Types__CipherBlob v;
    amaters__types__cipher_blob__init(&v);
    Amaters__Query__SingleResult single;
    amaters__query__single_result__init(&single);
    Amaters__Query__QueryResult res;
    amaters__query__query_result__init(&res);
    res.result_case = AMATERS__QUERY__QUERY_RESULT__RESULT_SINGLE;
    res.single = &single;
    Amaters__Aql__QueryResponse qr;
    amaters__aql__query_response__init(&qr);
    qr.response_case = AMATERS__AQL__QUERY_RESPONSE__RESPONSE_RESULT;
    qr.result = &res;
    char *j = answer(&qr.base, 0, 0);
    assert_string_equal(j, "{\"value\":null,\"found\":false}");
    free(j);
    single._value_case = AMATERS__QUERY__SINGLE_RESULT___VALUE_VALUE;
    single.value = &v;
    v.data.data = (uint8_t *)"{\"a\":[1,2]}";
    v.data.len = 11;
    j = answer(&qr.base, 0, 0);
    assert_string_equal(j, "{\"value\":{\"a\":[1,2]}}");
    free(j);
    j = answer(&qr.base, 0, 1);
    assert_string_equal(j, "{\"value\":{\"$bytes\":\"eyJhIjpbMSwyXX0=\"}}");
    free(j);
    v.data.data = (uint8_t *)"\xff\x01";
    v.data.len = 2;
    j = answer(&qr.base, 0, 0);
    assert_string_equal(j, "{\"value\":{\"$bytes\":\"/wE=\"}}");
    free(j);
    /* JSON text that reads as the bytes form stays bytes */
    v.data.data = (uint8_t *)"{\"$bytes\":\"QQ==\"}";
    v.data.len = 17;
    j = answer(&qr.base, 0, 0);
    assert_string_equal(j, "{\"value\":{\"$bytes\":\"eyIkYnl0ZXMiOiJRUT09In0=\"}}");
    free(j);

    /* rows, with a key that is not UTF-8 */
    Amaters__Types__Key k1, k2;
    amaters__types__key__init(&k1);
    amaters__types__key__init(&k2);
    k1.data.data = (uint8_t *)"a\"1";
    k1.data.len = 3;
    k2.data.data = (uint8_t *)"\xc3";
    k2.data.len = 1;
    Amaters__Types__CipherBlob v1;
    amaters__types__cipher_blob__init(&v1);
    v1.data.data = (uint8_t *)"30";
    v1.data.len = 2;
    Amaters__Query__KeyValue kv1, kv2, *kvs[2] = {&kv1, &kv2};
    amaters__query__key_value__init(&kv1);
    amaters__query__key_value__init(&kv2);
    kv1.key = &k1;
    kv1.value = &v1;
    kv2.key = &k2;
    kv2.value = &v1;
    Amaters__Query__MultiResult multi;
    amaters__query__multi_result__init(&multi);
    multi.n_values = 2;
    multi.values = kvs;
    res.result_case = AMATERS__QUERY__QUERY_RESULT__RESULT_MULTI;
    res.multi = &multi;
    j = answer(&qr.base, 0, 0);
    assert_string_equal(j, "{\"rows\":[{\"key\":\"a\\\"1\",\"value\":30},{\"key\":{\"$bytes\":"
                           "\"ww==\"},\"value\":30}],\"count\":2}");
    free(j);

    /* an error, and a batch */
    Amaters__Errors__ErrorResponse e;
    amaters__errors__error_response__init(&e);
    e.code = AMATERS__ERRORS__ERROR_CODE__ERROR_VALIDATION_INVALID_KEY;
    e.message = (char *)"the key is not UTF-8";
    qr.response_case = AMATERS__AQL__QUERY_RESPONSE__RESPONSE_ERROR;
    qr.error = &e;
    j = answer(&qr.base, 0, 0);
    assert_string_equal(j, "{\"error\":{\"code\":\"ERROR_VALIDATION_INVALID_KEY\",\"number\":6000,"
                           "\"message\":\"the key is not UTF-8\"}}");
    free(j);
    Amaters__Query__SuccessResult ok;
    amaters__query__success_result__init(&ok);
    ok.affected_rows = 7;
    Amaters__Query__QueryResult r2, *rs[2] = {&res, &r2};
    amaters__query__query_result__init(&r2);
    r2.result_case = AMATERS__QUERY__QUERY_RESULT__RESULT_SUCCESS;
    r2.success = &ok;
    res.result_case = AMATERS__QUERY__QUERY_RESULT__RESULT_SINGLE;
    res.single = &single;
    Amaters__Aql__BatchResult br;
    amaters__aql__batch_result__init(&br);
    br.n_results = 2;
    br.results = rs;
    Amaters__Aql__BatchResponse bresp;
    amaters__aql__batch_response__init(&bresp);
    bresp.response_case = AMATERS__AQL__BATCH_RESPONSE__RESPONSE_RESULTS;
    bresp.results = &br;
    j = answer(&bresp.base, 1, 0);
    assert_string_equal(j, "{\"results\":[{\"value\":{\"$bytes\":\"eyIkYnl0ZXMiOiJRUT09In0=\"}},"
                           "{\"affected\":7}]}");
    free(j);
    /* not an answer */
    char *json = NULL;
    nana_result err = {0};
    assert_int_equal(
        nana_client_aql_answer_json((const uint8_t *)"\x0a\x09", 2, 0, 0, &json, NULL, &err),
        NANA_CLIENT_EINVALID);
    assert_null(json);
    nana_result_free(&err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_comparisons),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_runs_are_balanced),
        cmocka_unit_test(test_errors_name_the_column),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_builders),
        cmocka_unit_test(test_answers_as_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
