/*
 * aql_pred.c - the readable text form of an AQL predicate, parsed into a
 * serialized amaters.types.Predicate. Pure C, no I/O.
 *
 * Syntax (keywords in any case):
 *
 *   expr    := or
 *   or      := and ("or" and)*
 *   and     := unary ("and" unary)*
 *   unary   := "not" unary | "(" expr ")" | compare
 *   compare := path op value
 *   op      := "=" | "!=" | ">" | "<" | ">=" | "<="
 *   path    := name ("." name | "[" digits "]")*     name: [A-Za-z_][A-Za-z0-9_]*
 *   value   := a JSON number, string (JSON escapes), true, false or null
 *
 * "a != v" is NOT (a = v). A run of terms joined by one operator is built
 * as a balanced tree, so a long "a and b and c ..." nests only log2 deep.
 * The path goes to the server as written (ColumnRef.name, "address.city",
 * "tags[0]"); the value as its JSON text ("30", "\"Tokyo\"").
 *
 * Limits: NCQ_PRED_MAX_TEXT bytes of text, NCQ_PRED_MAX_TERMS
 * comparisons, NCQ_PRED_MAX_NEST levels of "not" and parentheses, and the
 * tree the server gets at most NCQ_PRED_MAX_DEPTH deep. Every error names
 * the 1-based column where the problem is.
 */
#include "aql_pred.h"

#include "amaters/types.pb-c.h"
#include "util/nana_err.h"
#include "util/nana_json.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* A parser's state: the text, where it is, and what it has used. */
typedef struct pp {
    const char *s;
    size_t n, i;
    unsigned terms, nest;
} pp;

typedef Amaters__Types__Predicate pred;

/* Frees a predicate tree made here (every part malloc'd). NULL-safe. */
static void pred_free(pred *p)
{
    if (p) protobuf_c_message_free_unpacked(&p->base, NULL);
}

static void skip_ws(pp *p)
{
    while (p->i < p->n &&
           (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r'))
        p->i++;
}

/* The error at byte |at| of the text: "column N: ..." */
#define perr(p, at, fmt, ...)                                                                      \
    nana_err_set(NANA_ERR_INVALID, "column %zu: " fmt, (size_t)(at) + 1, __VA_ARGS__)

static bool is_name_start(char c)
{
    return isalpha((unsigned char)c) || c == '_';
}

static bool is_name_char(char c)
{
    return isalnum((unsigned char)c) || c == '_';
}

/* 1 if keyword |kw| (any case) stands at the parser's position as a word. */
static bool at_keyword(const pp *p, const char *kw)
{
    size_t k = strlen(kw);
    if (p->n - p->i < k) return false;
    for (size_t j = 0; j < k; j++)
        if (tolower((unsigned char)p->s[p->i + j]) != kw[j]) return false;
    return p->i + k == p->n || !is_name_char(p->s[p->i + k]);
}

static bool is_reserved(const char *s, size_t n)
{
    static const char *const kws[] = {"and", "or", "not", "true", "false", "null"};
    for (size_t k = 0; k < sizeof(kws) / sizeof(kws[0]); k++) {
        size_t kl = strlen(kws[k]);
        if (kl != n) continue;
        size_t j = 0;
        while (j < n && tolower((unsigned char)s[j]) == kws[k][j])
            j++;
        if (j == n) return true;
    }
    return false;
}

/* A field path at the position: its text in start and len. */
static int parse_path(pp *p, size_t *start, size_t *len)
{
    size_t b = p->i;
    if (p->i >= p->n) return perr(p, p->i, "%s", "expected a field name, found the end");
    if (!is_name_start(p->s[p->i]))
        return perr(p, p->i, "expected a field name, found '%c'", p->s[p->i]);
    for (;;) {
        size_t nb = p->i;
        while (p->i < p->n && is_name_char(p->s[p->i]))
            p->i++;
        if (nb == b && is_reserved(p->s + nb, p->i - nb))
            return perr(p, nb, "'%.*s' is a keyword, not a field name", (int)(p->i - nb),
                        p->s + nb);
        while (p->i < p->n && p->s[p->i] == '[') {
            size_t ob = p->i++;
            size_t db = p->i;
            while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9')
                p->i++;
            if (p->i == db || p->i - db > 9)
                return perr(p, db, "%s", "expected an index of 1 to 9 digits after '['");
            if (p->i >= p->n || p->s[p->i] != ']')
                return perr(p, p->i, "expected ']' to close the '[' at column %zu", ob + 1);
            p->i++;
        }
        if (p->i < p->n && p->s[p->i] == '.') {
            p->i++;
            if (p->i >= p->n || !is_name_start(p->s[p->i]))
                return perr(p, p->i, "%s", "expected a field name after '.'");
            continue;
        }
        break;
    }
    *start = b;
    *len = p->i - b;
    if (*len > NCQ_PRED_MAX_PATH)
        return perr(p, b, "the field path is %zu bytes, the limit is %d", *len, NCQ_PRED_MAX_PATH);
    return 0;
}

/* The comparison operator at the position: a Predicate case, with *negate for "!=". */
static int parse_op(pp *p, int *which, bool *negate)
{
    *negate = false;
    const char *s = p->s + p->i;
    size_t left = p->n - p->i;
    if (left >= 2 && s[0] == '!' && s[1] == '=') {
        *which = AMATERS__TYPES__PREDICATE__PREDICATE_EQ;
        *negate = true;
        p->i += 2;
    } else if (left >= 2 && s[0] == '>' && s[1] == '=') {
        *which = AMATERS__TYPES__PREDICATE__PREDICATE_GTE;
        p->i += 2;
    } else if (left >= 2 && s[0] == '<' && s[1] == '=') {
        *which = AMATERS__TYPES__PREDICATE__PREDICATE_LTE;
        p->i += 2;
    } else if (left >= 2 && s[0] == '=' && s[1] == '=') {
        return perr(p, p->i, "%s", "'==' is not an operator: write '='");
    } else if (left >= 1 && s[0] == '=') {
        *which = AMATERS__TYPES__PREDICATE__PREDICATE_EQ;
        p->i++;
    } else if (left >= 1 && s[0] == '>') {
        *which = AMATERS__TYPES__PREDICATE__PREDICATE_GT;
        p->i++;
    } else if (left >= 1 && s[0] == '<') {
        *which = AMATERS__TYPES__PREDICATE__PREDICATE_LT;
        p->i++;
    } else if (!left) {
        return perr(p, p->i, "%s",
                    "expected a comparison operator (= != > < >= <=), found the end");
    } else {
        return perr(p, p->i, "expected a comparison operator (= != > < >= <=), found '%c'", s[0]);
    }
    return 0;
}

/* A JSON scalar at the position: its text in start and len. */
static int parse_value(pp *p, size_t *start, size_t *len)
{
    size_t b = p->i;
    if (p->i >= p->n) return perr(p, p->i, "%s", "expected a value, found the end");
    char c = p->s[p->i];
    if (c == '"') {
        p->i++;
        while (p->i < p->n && p->s[p->i] != '"') {
            if (p->s[p->i] == '\\' && p->i + 1 < p->n) p->i++;
            p->i++;
        }
        if (p->i >= p->n) return perr(p, b, "%s", "the string is not closed (a '\"' is missing)");
        p->i++;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
        while (p->i < p->n &&
               (isdigit((unsigned char)p->s[p->i]) || p->s[p->i] == '-' || p->s[p->i] == '+' ||
                p->s[p->i] == '.' || p->s[p->i] == 'e' || p->s[p->i] == 'E'))
            p->i++;
    } else if (is_name_start(c)) {
        while (p->i < p->n && is_name_char(p->s[p->i]))
            p->i++;
        size_t k = p->i - b;
        bool lit = (k == 4 && (!memcmp(p->s + b, "true", 4) || !memcmp(p->s + b, "null", 4))) ||
                   (k == 5 && !memcmp(p->s + b, "false", 5));
        if (!lit)
            return perr(p, b,
                        "expected a JSON value (number, \"string\", true, false, null), found "
                        "'%.*s' (strings need double quotes)",
                        (int)(k > 40 ? 40 : k), p->s + b);
    } else {
        return perr(p, b,
                    "expected a JSON value (number, \"string\", true, false, null), found '%c'", c);
    }
    if (nana_json_validate(p->s + b, p->i - b, 0, 0))
        return perr(p, b, "the value is not valid JSON: %s", nana_errmsg());
    *start = b;
    *len = p->i - b;
    return 0;
}

/* A malloc'd predicate of |which| case (a comparison) on |path| with |value|. */
static pred *new_compare(int which, const char *path, size_t plen, const char *val, size_t vlen)
{
    static const ProtobufCMessageDescriptor *const descs[] = {
        NULL,
        &amaters__types__eq_predicate__descriptor,
        &amaters__types__gt_predicate__descriptor,
        &amaters__types__lt_predicate__descriptor,
        &amaters__types__gte_predicate__descriptor,
        &amaters__types__lte_predicate__descriptor,
    };
    pred *p = malloc(sizeof(*p));
    /* The five comparison messages have one layout: column, value. */
    Amaters__Types__EqPredicate *cmp = malloc(sizeof(*cmp));
    Amaters__Types__ColumnRef *col = malloc(sizeof(*col));
    Amaters__Types__CipherBlob *blob = malloc(sizeof(*blob));
    char *name = malloc(plen + 1);
    uint8_t *data = malloc(vlen ? vlen : 1);
    if (!p || !cmp || !col || !blob || !name || !data) {
        free(p);
        free(cmp);
        free(col);
        free(blob);
        free(name);
        free(data);
        return NULL;
    }
    amaters__types__predicate__init(p);
    amaters__types__eq_predicate__init(cmp);
    cmp->base.descriptor = descs[which];
    amaters__types__column_ref__init(col);
    amaters__types__cipher_blob__init(blob);
    memcpy(name, path, plen);
    name[plen] = '\0';
    col->name = name;
    memcpy(data, val, vlen);
    blob->data.data = data;
    blob->data.len = vlen;
    cmp->column = col;
    cmp->value = blob;
    p->predicate_case = (Amaters__Types__Predicate__PredicateCase)which;
    p->eq = cmp; /* the union's members are all one pointer */
    return p;
}

/* A malloc'd NOT of |inner| (taken, also on failure). */
static pred *new_not(pred *inner)
{
    pred *p = malloc(sizeof(*p));
    Amaters__Types__NotPredicate *n = malloc(sizeof(*n));
    if (!p || !n) {
        free(p);
        free(n);
        pred_free(inner);
        return NULL;
    }
    amaters__types__predicate__init(p);
    amaters__types__not_predicate__init(n);
    n->predicate = inner;
    p->predicate_case = AMATERS__TYPES__PREDICATE__PREDICATE_NOT;
    p->not_ = n;
    return p;
}

/* A malloc'd AND (|is_and|) or OR of |l| and |r| (taken, also on failure). */
static pred *new_join(bool is_and, pred *l, pred *r)
{
    pred *p = malloc(sizeof(*p));
    /* And and Or have one layout: left, right. */
    Amaters__Types__AndPredicate *j = malloc(sizeof(*j));
    if (!p || !j) {
        free(p);
        free(j);
        pred_free(l);
        pred_free(r);
        return NULL;
    }
    amaters__types__predicate__init(p);
    amaters__types__and_predicate__init(j);
    if (!is_and) j->base.descriptor = &amaters__types__or_predicate__descriptor;
    j->left = l;
    j->right = r;
    p->predicate_case =
        is_and ? AMATERS__TYPES__PREDICATE__PREDICATE_AND : AMATERS__TYPES__PREDICATE__PREDICATE_OR;
    p->and_ = j;
    return p;
}

/* Joins terms[0..n) into a balanced tree (the terms are taken). */
static pred *join_balanced(bool is_and, pred **terms, size_t n)
{
    if (n == 1) return terms[0];
    size_t h = n / 2;
    pred *l = join_balanced(is_and, terms, h);
    pred *r = join_balanced(is_and, terms + h, n - h);
    if (!l || !r) {
        pred_free(l);
        pred_free(r);
        return NULL;
    }
    return new_join(is_and, l, r);
}

static int parse_or(pp *p, pred **out);

/* unary := "not" unary | "(" expr ")" | compare */
static int parse_unary(pp *p, pred **out)
{
    skip_ws(p);
    if (at_keyword(p, "not") || (p->i < p->n && p->s[p->i] == '(')) {
        if (++p->nest > NCQ_PRED_MAX_NEST)
            return perr(p, p->i, "more than %d levels of 'not' and parentheses", NCQ_PRED_MAX_NEST);
        int rc;
        if (p->s[p->i] == '(') {
            size_t open = p->i++;
            rc = parse_or(p, out);
            if (rc) return rc;
            skip_ws(p);
            if (p->i >= p->n || p->s[p->i] != ')') {
                pred_free(*out);
                *out = NULL;
                if (p->i >= p->n)
                    return perr(p, p->i,
                                "expected ')' to close the '(' at column %zu, found the end",
                                open + 1);
                return perr(p, p->i, "expected ')' to close the '(' at column %zu, found '%c'",
                            open + 1, p->s[p->i]);
            }
            p->i++;
        } else {
            p->i += 3;
            pred *inner = NULL;
            rc = parse_unary(p, &inner);
            if (rc) return rc;
            *out = new_not(inner);
            if (!*out) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
        }
        p->nest--;
        return 0;
    }
    size_t ps, pl, vs, vl;
    int which;
    bool negate;
    int rc = parse_path(p, &ps, &pl);
    if (rc) return rc;
    skip_ws(p);
    if ((rc = parse_op(p, &which, &negate))) return rc;
    skip_ws(p);
    if ((rc = parse_value(p, &vs, &vl))) return rc;
    if (++p->terms > NCQ_PRED_MAX_TERMS)
        return perr(p, ps, "more than %d comparisons", NCQ_PRED_MAX_TERMS);
    pred *c = new_compare(which, p->s + ps, pl, p->s + vs, vl);
    if (c && negate) c = new_not(c);
    if (!c) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    *out = c;
    return 0;
}

/* A run of |sub| joined by keyword |kw|, as one balanced tree. */
static int parse_run(pp *p, const char *kw, int (*sub)(pp *, pred **), pred **out)
{
    pred *one = NULL;
    int rc = sub(p, &one);
    if (rc) return rc;
    pred **terms = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        skip_ws(p);
        bool more = at_keyword(p, kw);
        if (!more && !n) break; /* a single term: no run */
        if (n == cap) {         /* room for |one|, the run's latest term */
            size_t nc = cap ? cap * 2 : 8;
            pred **t = realloc(terms, nc * sizeof(*t));
            if (!t) {
                rc = nana_err_set(NANA_ERR_NOMEM, "out of memory");
                break;
            }
            terms = t;
            cap = nc;
        }
        terms[n++] = one;
        one = NULL;
        if (!more) break;
        p->i += strlen(kw);
        if ((rc = sub(p, &one))) break;
    }
    if (!rc && n) {
        one = join_balanced(strcmp(kw, "and") == 0, terms, n);
        n = 0;
        if (!one) rc = nana_err_set(NANA_ERR_NOMEM, "out of memory");
    }
    if (rc) {
        for (size_t k = 0; k < n; k++)
            pred_free(terms[k]);
        pred_free(one);
        one = NULL;
    }
    free(terms);
    *out = one;
    return rc;
}

static int parse_and(pp *p, pred **out)
{
    return parse_run(p, "and", parse_unary, out);
}

static int parse_or(pp *p, pred **out)
{
    return parse_run(p, "or", parse_and, out);
}

/* The depth of a tree (a comparison is 1). */
static unsigned depth(const pred *p)
{
    switch (p->predicate_case) {
    case AMATERS__TYPES__PREDICATE__PREDICATE_AND:
    case AMATERS__TYPES__PREDICATE__PREDICATE_OR: {
        unsigned l = depth(p->and_->left), r = depth(p->and_->right);
        return 1 + (l > r ? l : r);
    }
    case AMATERS__TYPES__PREDICATE__PREDICATE_NOT:
        return 1 + depth(p->not_->predicate);
    default:
        return 1;
    }
}

int ncq_pred_parse(const char *text, size_t n, nana_buf *out)
{
    if (n > NCQ_PRED_MAX_TEXT)
        return nana_err_set(NANA_ERR_TOOBIG, "the predicate is %zu bytes, the limit is %d", n,
                            NCQ_PRED_MAX_TEXT);
    if (memchr(text, '\0', n))
        return perr(p, (size_t)((const char *)memchr(text, '\0', n) - text), "%s",
                    "a NUL byte in the predicate");
    pp p = {.s = text, .n = n};
    pred *root = NULL;
    int rc = parse_or(&p, &root);
    if (rc) return rc;
    skip_ws(&p);
    if (p.i < p.n) {
        pred_free(root);
        return perr(p, p.i, "expected 'and', 'or' or the end, found '%c'", p.s[p.i]);
    }
    if (depth(root) > NCQ_PRED_MAX_DEPTH) {
        pred_free(root);
        return nana_err_set(NANA_ERR_TOOBIG, "the predicate nests more than %d deep",
                            NCQ_PRED_MAX_DEPTH);
    }
    size_t len = protobuf_c_message_get_packed_size(&root->base);
    nana_buf_reset(out);
    rc = nana_buf_reserve(out, len ? len : 1);
    if (!rc) {
        protobuf_c_message_pack(&root->base, (uint8_t *)out->data);
        out->len = len;
    }
    pred_free(root);
    return rc;
}
