/*
 * pred.c - predicates over JSON fields: checking a caller's tree and
 * turning it into SQL.
 *
 * Big idea: the SQL text of a predicate is made only of fixed fragments
 * and ?NNN placeholders; every byte of a field or a value is bound. Each
 * comparison becomes a CASE that is 1 when the field exists, has the class
 * of the comparison's value (number, string, boolean, null, object, array)
 * and compares true, else 0 - never NULL - so AND, OR and NOT work on
 * plain booleans and NOT(age > 30) is true for a row without an age. The
 * whole tree sits inside a CASE that first asks json_valid(value), so a
 * stored text that is not JSON never reaches json_type/json_extract
 * (which would fail the statement with "malformed JSON") and never
 * matches. CASE evaluates its branches in order, which AND in a WHERE
 * clause does not promise.
 *
 * The tree is walked recursively; the walk stops at NANA_PRED_MAX_DEPTH
 * levels and NANA_PRED_MAX_NODES nodes, so a deep, huge or cyclic tree
 * costs at most that much.
 */
#include "store/store_int.h"

#include "util/nana_json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The class of a comparison's value, from its JSON text. */
typedef enum vclass { V_NUMBER, V_STRING, V_BOOL, V_NULL, V_OBJECT, V_ARRAY } vclass;

struct nana_pred_cmp {
    size_t poff, plen; /* its SQLite JSON path in plan->paths */
    vclass cls;
    bool bind_value;    /* the fragment uses the value parameter */
    nana_json_doc *doc; /* the parsed value (numbers, strings, booleans) */
    const nana_json *v; /* its root */
    const char *raw;    /* objects and arrays: the caller's text (SQLite's json() reads it) */
    size_t rawlen;
};

/* The walk's state: counters for messages and limits, the plan being built. */
typedef struct walk {
    unsigned nodes;       /* nodes seen so far (the current one's number) */
    unsigned cmps;        /* comparisons seen so far */
    nana_pred_plan *plan; /* NULL: check only */
    nana_pred_cmp *cmp;   /* room for NANA_PRED_MAX_NODES comparisons (plan only) */
} walk;

/* English ordinal suffix of |n| ("st", "nd", "rd", "th"). */
static const char *ordinal(unsigned n)
{
    if (n % 100 >= 11 && n % 100 <= 13) return "th";
    switch (n % 10) {
    case 1:
        return "st";
    case 2:
        return "nd";
    case 3:
        return "rd";
    default:
        return "th";
    }
}

static const char *op_name(nana_pred_op op)
{
    static const char *const names[] = {"EQ", "GT", "LT", "GTE", "LTE", "AND", "OR", "NOT"};
    return (unsigned)op < sizeof(names) / sizeof(names[0]) ? names[op] : "?";
}

/* The class of a valid JSON text, from its first significant byte. */
static vclass value_class(const char *v, size_t n)
{
    size_t i = 0;
    while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == '\n' || v[i] == '\r'))
        i++;
    switch (i < n ? v[i] : 'n') {
    case '{':
        return V_OBJECT;
    case '[':
        return V_ARRAY;
    case '"':
        return V_STRING;
    case 't':
    case 'f':
        return V_BOOL;
    case 'n':
        return V_NULL;
    default:
        return V_NUMBER;
    }
}

static const char *class_name(vclass c)
{
    static const char *const names[] = {"a number", "a string",  "a boolean",
                                        "null",     "an object", "an array"};
    return names[c];
}

/* Checks one comparison node (number |w->cmps|) and, when building, records it. */
static int visit_cmp(walk *w, const nana_pred *p)
{
    unsigned k = w->cmps;
    char what[64];
    snprintf(what, sizeof(what), "the %u%s comparison's field", k, ordinal(k));
    if (p->left || p->right)
        return nana_err_set(NANA_ERR_VALIDATION, "the %u%s comparison (%s) has operands", k,
                            ordinal(k), op_name(p->op));
    nana_fpath fp;
    int rc = nana_fpath_parse(p->field, p->flen, what, &fp);
    if (rc) return rc;
    if (!p->value || p->vlen == 0)
        return nana_err_set(NANA_ERR_VALIDATION, "the %u%s comparison has no value", k, ordinal(k));
    if (p->vlen > NANA_PRED_MAX_VALUE)
        return nana_err_set(NANA_ERR_TOOBIG,
                            "the %u%s comparison's value is %zu bytes, the limit is %d", k,
                            ordinal(k), p->vlen, NANA_PRED_MAX_VALUE);
    if (nana_json_validate(p->value, p->vlen, 0, NANA_DEFAULT_JSON_DEPTH)) {
        char why[NANA_ERRMSG_MAX];
        snprintf(why, sizeof(why), "%s", nana_errmsg());
        return nana_err_set(NANA_ERR_JSON, "the %u%s comparison's value: %s", k, ordinal(k), why);
    }
    vclass cls = value_class(p->value, p->vlen);
    if ((cls == V_OBJECT || cls == V_ARRAY) && p->op != NANA_PRED_EQ)
        return nana_err_set(
            NANA_ERR_VALIDATION,
            "the %u%s comparison (%s) compares %s: objects and arrays allow only EQ", k, ordinal(k),
            op_name(p->op), class_name(cls));
    if (!w->plan) return NANA_OK;

    nana_pred_plan *pl = w->plan;
    nana_pred_cmp *c = &w->cmp[pl->ncmp];
    memset(c, 0, sizeof(*c));
    c->cls = cls;
    c->poff = pl->paths.len;
    if ((rc = nana_fpath_sqlite(&fp, &pl->paths))) return rc;
    c->plen = pl->paths.len - c->poff;
    if (cls == V_OBJECT || cls == V_ARRAY) {
        c->raw = p->value;
        c->rawlen = p->vlen;
    } else {
        nana_json *root = NULL;
        if ((rc = nana_json_parse(p->value, p->vlen, 0, NANA_DEFAULT_JSON_DEPTH, &c->doc, &root)))
            return rc;
        c->v = root;
    }
    pl->ncmp++;

    int pp = pl->first_param + 2 * (int)(pl->ncmp - 1), vp = pp + 1;
    static const char *const cmpop[] = {"=", ">", "<", ">=", "<="};
    const char *op = cmpop[p->op];
    nana_buf *b = &pl->sql;
    c->bind_value = true;
    switch (cls) {
    case V_NUMBER:
        return nana_buf_printf(b,
                               "(CASE WHEN json_type(value,?%d) IN ('integer','real') "
                               "THEN json_extract(value,?%d)%s?%d ELSE 0 END)",
                               pp, pp, op, vp);
    case V_STRING:
        return nana_buf_printf(b,
                               "(CASE WHEN json_type(value,?%d)='text' "
                               "THEN json_extract(value,?%d)%s?%d ELSE 0 END)",
                               pp, pp, op, vp);
    case V_BOOL:
        return nana_buf_printf(b,
                               "(CASE WHEN json_type(value,?%d) IN ('true','false') "
                               "THEN (json_type(value,?%d)='true')%s?%d ELSE 0 END)",
                               pp, pp, op, vp);
    case V_NULL:
        c->bind_value = false;
        if (p->op != NANA_PRED_EQ) return nana_buf_printf(b, "(0 AND ?%d IS NULL)", pp);
        return nana_buf_printf(b, "(CASE WHEN json_type(value,?%d)='null' THEN 1 ELSE 0 END)", pp);
    case V_OBJECT:
    case V_ARRAY:
        return nana_buf_printf(b,
                               "(CASE WHEN json_type(value,?%d)='%s' "
                               "THEN json_extract(value,?%d)=json(?%d) ELSE 0 END)",
                               pp, cls == V_OBJECT ? "object" : "array", pp, vp);
    }
    return nana_err_set(NANA_ERR_INTERNAL, "unknown value class");
}

/* Checks (and builds) the subtree at |p|, |depth| levels below the root. */
static int visit(walk *w, const nana_pred *p, unsigned depth)
{
    if (depth > NANA_PRED_MAX_DEPTH)
        return nana_err_set(NANA_ERR_TOOBIG, "the predicate is deeper than %d levels",
                            NANA_PRED_MAX_DEPTH);
    if (++w->nodes > NANA_PRED_MAX_NODES)
        return nana_err_set(NANA_ERR_TOOBIG, "the predicate has more than %d nodes",
                            NANA_PRED_MAX_NODES);
    unsigned me = w->nodes;
    nana_buf *b = w->plan ? &w->plan->sql : NULL;
    int rc;
    switch (p->op) {
    case NANA_PRED_EQ:
    case NANA_PRED_GT:
    case NANA_PRED_LT:
    case NANA_PRED_GTE:
    case NANA_PRED_LTE:
        w->cmps++;
        return visit_cmp(w, p);
    case NANA_PRED_AND:
    case NANA_PRED_OR:
        if (!p->left || !p->right)
            return nana_err_set(NANA_ERR_VALIDATION,
                                "node %u (%s) needs a left and a right operand", me,
                                op_name(p->op));
        if (b && (rc = nana_buf_putc(b, '('))) return rc;
        if ((rc = visit(w, p->left, depth + 1))) return rc;
        if (b && (rc = nana_buf_puts(b, p->op == NANA_PRED_AND ? " AND " : " OR "))) return rc;
        if ((rc = visit(w, p->right, depth + 1))) return rc;
        return b ? nana_buf_putc(b, ')') : NANA_OK;
    case NANA_PRED_NOT:
        if (!p->left || p->right)
            return nana_err_set(NANA_ERR_VALIDATION,
                                "node %u (NOT) needs a left operand and no right one", me);
        if (b && (rc = nana_buf_puts(b, "(NOT "))) return rc;
        if ((rc = visit(w, p->left, depth + 1))) return rc;
        return b ? nana_buf_putc(b, ')') : NANA_OK;
    }
    return nana_err_set(NANA_ERR_VALIDATION, "node %u has an unknown operator %d", me, (int)p->op);
}

int nana_pred_check(const nana_pred *p)
{
    if (!p) return nana_err_set(NANA_ERR_VALIDATION, "the predicate is NULL");
    walk w = {0};
    return visit(&w, p, 1);
}

int nana_pred_plan_build(const nana_pred *p, int first_param, nana_pred_rows rows,
                         nana_pred_plan *out)
{
    memset(out, 0, sizeof(*out));
    nana_buf_init(&out->sql, 0);
    nana_buf_init(&out->paths, 0);
    out->first_param = first_param;
    /* Everything after json_valid is safe to evaluate; a BLOB or NULL value
     * never matches (json_valid would read a BLOB as text). */
    int rc = nana_buf_puts(&out->sql, "(CASE WHEN typeof(value)<>'text' THEN 0 "
                                      "WHEN NOT json_valid(value) THEN 0 ");
    if (!rc && rows == NANA_PRED_OBJECTS_ONLY)
        rc = nana_buf_puts(&out->sql, "WHEN json_type(value)<>'object' THEN 0 ");
    if (!rc) rc = nana_buf_puts(&out->sql, "ELSE ");
    if (rc) return rc;
    if (!p) return nana_buf_puts(&out->sql, "1 END)");
    /* The check first, so that a bad tree is refused before anything is built. */
    if ((rc = nana_pred_check(p))) return rc;
    out->cmp = calloc(NANA_PRED_MAX_NODES, sizeof(*out->cmp));
    if (!out->cmp) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    walk w = {.plan = out, .cmp = out->cmp};
    if ((rc = visit(&w, p, 1))) return rc;
    return nana_buf_puts(&out->sql, " END)");
}

/* Binds a comparison's value: the number, string or boolean it holds. */
static int bind_value(sqlite3_stmt *st, int idx, const nana_pred_cmp *c)
{
    int rc;
    switch (c->cls) {
    case V_NUMBER: {
        int64_t i;
        double d;
        if (nana_json_number_is_integer(c->v) && nana_json_number_int64(c->v, &i) == 0) {
            rc = sqlite3_bind_int64(st, idx, i);
        } else {
            if (nana_json_number_double(c->v, &d))
                return nana_err_set(NANA_ERR_INTERNAL, "a checked number does not convert");
            rc = sqlite3_bind_double(st, idx, d);
        }
        break;
    }
    case V_STRING:
        rc = sqlite3_bind_text64(st, idx, c->v->u.str, c->v->n, SQLITE_STATIC, SQLITE_UTF8);
        break;
    case V_BOOL:
        rc = sqlite3_bind_int(st, idx, c->v->type == NANA_JSON_TRUE);
        break;
    case V_OBJECT:
    case V_ARRAY:
        rc = sqlite3_bind_text64(st, idx, c->raw, c->rawlen, SQLITE_STATIC, SQLITE_UTF8);
        break;
    default:
        rc = SQLITE_OK;
        break;
    }
    return rc == SQLITE_OK ? NANA_OK : nana_err_set(NANA_ERR_NOMEM, "cannot bind a parameter");
}

int nana_pred_plan_bind(const nana_pred_plan *pl, sqlite3_stmt *st)
{
    for (size_t i = 0; i < pl->ncmp; i++) {
        const nana_pred_cmp *c = &pl->cmp[i];
        int pp = pl->first_param + 2 * (int)i;
        int rc = nana_bind_text(st, pp, pl->paths.data + c->poff, c->plen);
        if (!rc && c->bind_value) rc = bind_value(st, pp + 1, c);
        if (rc) return rc;
    }
    return NANA_OK;
}

void nana_pred_plan_free(nana_pred_plan *pl)
{
    for (size_t i = 0; pl->cmp && i < pl->ncmp; i++)
        nana_json_doc_free(pl->cmp[i].doc);
    free(pl->cmp);
    pl->cmp = NULL;
    pl->ncmp = 0;
    nana_buf_free(&pl->sql);
    nana_buf_free(&pl->paths);
}
