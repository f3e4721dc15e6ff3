/*
 * fuzz_aql_pred.c - libFuzzer harness for the AQL predicate text parser
 * (src/client/aql_pred.c).
 *
 * Big idea: a round trip. Whatever the parser accepts must be a
 * Predicate protobuf-c reads back, no deeper than the limit, whose
 * comparisons have a field path and a value that is one JSON text. The
 * tree is then written back as text by an independent writer here (every
 * AND and OR in parentheses, NOT as "not (...)") and parsed again: the
 * bytes must be the same, unless the rewrite itself passes a limit (its
 * extra parentheses may), which must then be the refusal. A refusal
 * must name a column or a limit.
 */
#include "amaters/types.pb-c.h"
#include "client/aql_pred.h"
#include "fuzz_check.h"
#include "util/nana_err.h"
#include "util/nana_json.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef Amaters__Types__Predicate pred;

/* The depth of a tree; checks each comparison on the way. */
static unsigned check_tree(const pred *p)
{
    switch (p->predicate_case) {
    case AMATERS__TYPES__PREDICATE__PREDICATE_AND:
    case AMATERS__TYPES__PREDICATE__PREDICATE_OR: {
        CHECK(p->and_ && p->and_->left && p->and_->right);
        unsigned l = check_tree(p->and_->left), r = check_tree(p->and_->right);
        return 1 + (l > r ? l : r);
    }
    case AMATERS__TYPES__PREDICATE__PREDICATE_NOT:
        CHECK(p->not_ && p->not_->predicate);
        return 1 + check_tree(p->not_->predicate);
    case AMATERS__TYPES__PREDICATE__PREDICATE_EQ:
    case AMATERS__TYPES__PREDICATE__PREDICATE_GT:
    case AMATERS__TYPES__PREDICATE__PREDICATE_LT:
    case AMATERS__TYPES__PREDICATE__PREDICATE_GTE:
    case AMATERS__TYPES__PREDICATE__PREDICATE_LTE: {
        const Amaters__Types__EqPredicate *c = p->eq;
        CHECK(c && c->column && c->column->name && c->column->name[0]);
        CHECK(c->value && c->value->data.len);
        CHECK(nana_json_validate((const char *)c->value->data.data, c->value->data.len, 0, 0) == 0);
        return 1;
    }
    default:
        CHECK(!"a predicate with no case");
        return 0;
    }
}

/* Writes |p| as text into |b|. */
static void write_tree(nana_buf *b, const pred *p)
{
    static const char *const ops[] = {"", " = ", " > ", " < ", " >= ", " <= "};
    switch (p->predicate_case) {
    case AMATERS__TYPES__PREDICATE__PREDICATE_AND:
    case AMATERS__TYPES__PREDICATE__PREDICATE_OR:
        CHECK(nana_buf_putc(b, '(') == 0);
        write_tree(b, p->and_->left);
        CHECK(nana_buf_puts(b, p->predicate_case == AMATERS__TYPES__PREDICATE__PREDICATE_AND
                                   ? " AND "
                                   : " or ") == 0);
        write_tree(b, p->and_->right);
        CHECK(nana_buf_putc(b, ')') == 0);
        return;
    case AMATERS__TYPES__PREDICATE__PREDICATE_NOT:
        CHECK(nana_buf_puts(b, "not (") == 0);
        write_tree(b, p->not_->predicate);
        CHECK(nana_buf_putc(b, ')') == 0);
        return;
    default:
        CHECK(nana_buf_puts(b, p->eq->column->name) == 0);
        CHECK(nana_buf_puts(b, ops[p->predicate_case]) == 0);
        CHECK(nana_buf_append(b, p->eq->value->data.data, p->eq->value->data.len) == 0);
        return;
    }
}

static void check_refusal(int rc)
{
    const char *m = nana_errmsg();
    CHECK(rc == NANA_ERR_INVALID || rc == NANA_ERR_TOOBIG);
    CHECK(strncmp(m, "column ", 7) == 0 || strstr(m, "limit") || strstr(m, "more than"));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    nana_buf out;
    nana_buf_init(&out, 0);
    int rc = ncq_pred_parse((const char *)data, size, &out);
    if (rc) {
        check_refusal(rc);
        nana_buf_free(&out);
        return 0;
    }
    pred *p = amaters__types__predicate__unpack(NULL, out.len, (const uint8_t *)out.data);
    CHECK(p != NULL);
    CHECK(check_tree(p) <= NCQ_PRED_MAX_DEPTH);
    /* only the trees a rewrite keeps one-to-one: a run of one operator
     * written in parentheses keeps its shape */
    nana_buf text, again;
    nana_buf_init(&text, 0);
    nana_buf_init(&again, 0);
    write_tree(&text, p);
    rc = ncq_pred_parse(text.data, text.len, &again);
    if (rc) {
        check_refusal(rc);
    } else {
        CHECK(again.len == out.len && memcmp(again.data, out.data, out.len) == 0);
    }
    amaters__types__predicate__free_unpacked(p, NULL);
    nana_buf_free(&text);
    nana_buf_free(&again);
    nana_buf_free(&out);
    return 0;
}
