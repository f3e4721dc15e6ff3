/*
 * sqlrun.c - running the SQL helpers: query / count / exists on reader
 * connections, sql_insert / sql_update / sql_delete / upsert / import on
 * the writer, with parameters bound from JSON and rows returned as JSON.
 *
 * Statement text is built on the caller's thread from validated pieces
 * (quoted identifiers, checked fragments); values are only ever bound.
 * Every statement is prepared under an authorizer that permits the one
 * table the call names and the allowed functions, nothing else.
 */
#include "store/store_int.h"

#include "util/nana_json.h"

#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ------------------------------------------------------------------ */
/* Authorizer                                                           */
/* ------------------------------------------------------------------ */

typedef struct auth_ctx {
    const char *table;          /* the only table the statement may touch */
    const nana_sql_policy *pol; /* function policy */
    bool write;                 /* INSERT / UPDATE / DELETE allowed on table */
} auth_ctx;

static int authorizer(void *arg, int action, const char *a1, const char *a2, const char *db,
                      const char *trigger)
{
    const auth_ctx *ctx = arg;
    (void)db;
    /* SQLite's own tables (the schema, sqlite_sequence, sqlite_stat*) are
     * never read or written by a caller's statement, trigger or not. */
    if (a1 && nana_name_reserved(a1) &&
        (action == SQLITE_READ || action == SQLITE_INSERT || action == SQLITE_UPDATE ||
         action == SQLITE_DELETE))
        return SQLITE_DENY;
    if (trigger) return SQLITE_OK; /* inside a trigger the schema's owner decided */
    switch (action) {
    case SQLITE_SELECT:
        return SQLITE_OK;
    case SQLITE_READ:
        return (a1 && strcasecmp(a1, ctx->table) == 0) ? SQLITE_OK : SQLITE_DENY;
    case SQLITE_FUNCTION:
        return (a2 && nana_sql_function_allowed(a2, strlen(a2), ctx->pol)) ? SQLITE_OK
                                                                           : SQLITE_DENY;
    case SQLITE_INSERT:
    case SQLITE_UPDATE:
    case SQLITE_DELETE:
        return (ctx->write && a1 && strcasecmp(a1, ctx->table) == 0) ? SQLITE_OK : SQLITE_DENY;
    default:
        return SQLITE_DENY;
    }
}

/* Prepares |sql| on |c| under the authorizer. Caller finalizes. */
static int prepare_guarded(nana_conn *c, const char *sql, auth_ctx *ctx, sqlite3_stmt **st)
{
    if (c->cluster) return nana_cluster_unsupported("SQL on a table");
    sqlite3_set_authorizer(c->db, authorizer, ctx);
    int rc = sqlite3_prepare_v2(c->db, sql, -1, st, NULL);
    sqlite3_set_authorizer(c->db, NULL, NULL);
    if (rc == SQLITE_AUTH)
        return nana_err_set(NANA_ERR_VALIDATION, "the statement reaches outside the table or "
                                                 "calls a function that is not allowed");
    if (rc != SQLITE_OK) return nana_conn_err(c, rc, "prepare");
    return NANA_OK;
}

/* ------------------------------------------------------------------ */
/* JSON <-> SQLite values                                               */
/* ------------------------------------------------------------------ */

/* Binds one JSON value: numbers, strings, null, booleans as 1/0, the
 * rest as JSON text. The bound text is copied (SQLITE_TRANSIENT). */
static int bind_json(sqlite3_stmt *st, int idx, const nana_json *v)
{
    int rc = SQLITE_OK;
    if (!v) return sqlite3_bind_null(st, idx) == SQLITE_OK ? NANA_OK : NANA_ERR_NOMEM;
    switch (v->type) {
    case NANA_JSON_NULL:
        rc = sqlite3_bind_null(st, idx);
        break;
    case NANA_JSON_TRUE:
        rc = sqlite3_bind_int(st, idx, 1);
        break;
    case NANA_JSON_FALSE:
        rc = sqlite3_bind_int(st, idx, 0);
        break;
    case NANA_JSON_NUMBER: {
        if (nana_json_number_is_integer(v)) {
            int64_t i;
            int r = nana_json_number_int64(v, &i);
            if (r)
                return nana_err_set(NANA_ERR_TOOBIG, "parameter %d: integer beyond 64 bits", idx);
            rc = sqlite3_bind_int64(st, idx, i);
        } else {
            double d;
            if (nana_json_number_double(v, &d) || !isfinite(d))
                return nana_err_set(NANA_ERR_INVALID, "parameter %d: not a finite number", idx);
            rc = sqlite3_bind_double(st, idx, d);
        }
        break;
    }
    case NANA_JSON_STRING:
        rc = sqlite3_bind_text64(st, idx, v->u.str, v->n, SQLITE_TRANSIENT, SQLITE_UTF8);
        break;
    case NANA_JSON_ARRAY:
    case NANA_JSON_OBJECT: {
        nana_buf b;
        nana_buf_init(&b, 0);
        int r = nana_json_write(&b, v);
        if (r) {
            nana_buf_free(&b);
            return r;
        }
        rc = sqlite3_bind_text64(st, idx, b.data, b.len, SQLITE_TRANSIENT, SQLITE_UTF8);
        nana_buf_free(&b);
        break;
    }
    }
    if (rc == SQLITE_RANGE) return nana_err_set(NANA_ERR_INVALID, "too many parameters");
    return rc == SQLITE_OK ? NANA_OK
                           : nana_err_set(NANA_ERR_NOMEM, "cannot bind parameter %d", idx);
}

/* Binds the items of a JSON array (or nothing for NULL) from index |first|. */
static int bind_array(sqlite3_stmt *st, int first, const nana_json *params)
{
    if (!params) return NANA_OK;
    int expected = sqlite3_bind_parameter_count(st) - first + 1;
    if ((int64_t)params->n != expected)
        return nana_err_set(NANA_ERR_INVALID, "the statement takes %d parameters, %u were given",
                            expected, params->n);
    for (uint32_t i = 0; i < params->n; i++) {
        int rc = bind_json(st, first + (int)i, params->u.items[i]);
        if (rc) return rc;
    }
    return NANA_OK;
}

/* Appends column |i| of the current row as a JSON value. */
static int put_column(nana_buf *b, sqlite3_stmt *st, int i)
{
    switch (sqlite3_column_type(st, i)) {
    case SQLITE_INTEGER:
        return nana_buf_printf(b, "%lld", (long long)sqlite3_column_int64(st, i));
    case SQLITE_FLOAT: {
        double d = sqlite3_column_double(st, i);
        if (!isfinite(d)) return nana_buf_append(b, "null", 4);
        return nana_json_write_double(b, d);
    }
    case SQLITE_TEXT: {
        const unsigned char *p = sqlite3_column_text(st, i);
        int n = sqlite3_column_bytes(st, i);
        return nana_json_write_string(b, p ? (const char *)p : "", (size_t)n);
    }
    case SQLITE_BLOB: {
        const void *p = sqlite3_column_blob(st, i);
        size_t n = (size_t)sqlite3_column_bytes(st, i);
        size_t enc = sodium_base64_encoded_len(n, sodium_base64_VARIANT_ORIGINAL);
        int rc = nana_buf_reserve(b, enc + 2);
        if (rc) return rc;
        b->data[b->len++] = '"';
        sodium_bin2base64(b->data + b->len, enc, p, n, sodium_base64_VARIANT_ORIGINAL);
        b->len += enc - 1;
        b->data[b->len++] = '"';
        b->data[b->len] = '\0';
        return NANA_OK;
    }
    default:
        return nana_buf_append(b, "null", 4);
    }
}

/* Appends the current row as a JSON object keyed by column name. */
static int put_row(nana_buf *b, sqlite3_stmt *st)
{
    int n = sqlite3_column_count(st);
    int rc = nana_buf_putc(b, '{');
    for (int i = 0; !rc && i < n; i++) {
        if (i) rc = nana_buf_putc(b, ',');
        const char *name = sqlite3_column_name(st, i);
        if (!rc) rc = nana_json_write_string(b, name ? name : "", name ? strlen(name) : 0);
        if (!rc) rc = nana_buf_putc(b, ':');
        if (!rc) rc = put_column(b, st, i);
    }
    if (!rc) rc = nana_buf_putc(b, '}');
    return rc;
}

/* Parses an optional JSON argument that must have |type| (or be absent/null). */
int nana_parse_arg(const char *json, nana_json_type type, const char *what, nana_json_doc **doc,
                   nana_json **out)
{
    *doc = NULL;
    *out = NULL;
    if (!json) return NANA_OK;
    int rc = nana_json_parse(json, strlen(json), 0, NANA_JSON_DEFAULT_MAX_DEPTH, doc, out);
    if (rc) return nana_err_set(NANA_ERR_JSON, "%s is not valid JSON", what);
    if ((*out)->type == NANA_JSON_NULL) {
        *out = NULL;
        return NANA_OK;
    }
    if ((*out)->type != type) {
        nana_json_doc_free(*doc);
        *doc = NULL;
        *out = NULL;
        return nana_err_set(NANA_ERR_TYPE, "%s must be a JSON %s", what,
                            type == NANA_JSON_ARRAY ? "array" : "object");
    }
    return NANA_OK;
}

/* ------------------------------------------------------------------ */
/* Reads: query, count, exists                                          */
/* ------------------------------------------------------------------ */

typedef struct select_arg {
    unsigned timeout_ms;
    const char *sql;
    const nana_json *params;
    auth_ctx auth;
    bool scalar; /* one int64 from the first column of the first row */
    int64_t value;
    nana_buf rows;
    size_t limit_bytes;
} select_arg;

static int read_select(nana_conn *c, void *arg)
{
    select_arg *a = arg;
    sqlite3_stmt *st = NULL;
    int rc = prepare_guarded(c, a->sql, &a->auth, &st);
    if (rc) return rc;
    nana_deadline dl;
    nana_deadline_arm(c, &dl, a->timeout_ms);
    rc = bind_array(st, 1, a->params);
    if (!rc && a->scalar) {
        rc = nana_step(c, st, "query");
        if (rc == 1) {
            a->value = sqlite3_column_int64(st, 0);
            rc = NANA_OK;
        }
    } else if (!rc) {
        nana_buf_reset(&a->rows);
        rc = nana_buf_putc(&a->rows, '[');
        bool first = true;
        while (!rc && (rc = nana_step(c, st, "query")) == 1) {
            rc = first ? NANA_OK : nana_buf_putc(&a->rows, ',');
            first = false;
            if (!rc) rc = put_row(&a->rows, st);
        }
        if (!rc) rc = nana_buf_putc(&a->rows, ']');
        if (rc == NANA_ERR_TOOBIG)
            rc = nana_err_set(rc, "result exceeds the limit of %zu bytes", a->limit_bytes);
    }
    rc = nana_deadline_disarm(c, &dl, rc, a->timeout_ms);
    sqlite3_finalize(st);
    return rc;
}

void nana_query_init(nana_query *q)
{
    memset(q, 0, sizeof(*q));
    q->limit = -1;
    q->offset = -1;
}

/* The table a helper works on: |table|, or the store's default. */
static const char *table_or_default(nana_store *s, const char *table)
{
    return table ? table : s->default_table_name;
}

/* Appends `"name"` for a checked identifier. */
static int put_ident(nana_buf *b, const char *name)
{
    int rc = nana_buf_putc(b, '"');
    if (!rc) rc = nana_buf_puts(b, name);
    if (!rc) rc = nana_buf_putc(b, '"');
    return rc;
}

/* Appends " KEYWORD fragment" after validating the fragment. */
static int put_clause(nana_store *s, nana_buf *b, const char *kw, const char *frag,
                      nana_clause_kind kind, const nana_sql_policy *pol)
{
    if (!frag || !frag[0]) return NANA_OK;
    int rc = nana_sql_check_clause(frag, strlen(frag), kind, pol, s->opts.max_clause_bytes);
    if (!rc) rc = nana_buf_printf(b, " %s %s", kw, frag);
    return rc;
}

/* Appends the select list from a JSON array of names/expressions. */
static int put_columns(nana_store *s, nana_buf *b, const nana_json *cols,
                       const nana_sql_policy *pol)
{
    if (!cols || cols->n == 0) return nana_buf_putc(b, '*');
    for (uint32_t i = 0; i < cols->n; i++) {
        const nana_json *c = cols->u.items[i];
        if (c->type != NANA_JSON_STRING || c->n == 0 || strlen(c->u.str) != c->n)
            return nana_err_set(NANA_ERR_VALIDATION, "Invalid column name: must be a string");
        int rc = i ? nana_buf_putc(b, ',') : NANA_OK;
        if (rc) return rc;
        if (nana_identifier_valid(c->u.str)) {
            rc = put_ident(b, c->u.str);
        } else {
            rc = nana_sql_check_clause(c->u.str, c->n, NANA_CLAUSE_COLUMN, pol,
                                       s->opts.max_clause_bytes);
            if (!rc) rc = nana_buf_append(b, c->u.str, c->n);
        }
        if (rc) return rc;
    }
    return NANA_OK;
}

int nana_sql_query(nana_store *s, const nana_query *q, nana_val **out)
{
    if (s->cluster) return nana_cluster_unsupported("query");
    const char *table = table_or_default(s, q->table);
    int rc = nana_sql_check_identifier(table, "table");
    if (rc) return rc;
    if ((q->limit < -1) || (q->offset < -1))
        return nana_err_set(NANA_ERR_INVALID, "limit and offset must be non-negative");
    nana_json_doc *cd = NULL, *pd = NULL;
    nana_json *cols = NULL, *params = NULL;
    select_arg a = {.auth = {.table = table, .pol = q->policy},
                    .timeout_ms = s->opts.query_timeout_ms};
    nana_buf sql;
    nana_buf_init(&sql, 0);
    nana_buf_init(&a.rows, s->opts.max_result_bytes);
    a.limit_bytes = s->opts.max_result_bytes;
    if ((rc = nana_parse_arg(q->columns, NANA_JSON_ARRAY, "columns", &cd, &cols)) ||
        (rc = nana_parse_arg(q->params, NANA_JSON_ARRAY, "parameters", &pd, &params)))
        goto out;
    if ((rc = nana_buf_puts(&sql, "SELECT ")) || (rc = put_columns(s, &sql, cols, q->policy)) ||
        (rc = nana_buf_puts(&sql, " FROM ")) || (rc = put_ident(&sql, table)) ||
        (rc = put_clause(s, &sql, "WHERE", q->where, NANA_CLAUSE_WHERE, q->policy)) ||
        (rc = put_clause(s, &sql, "GROUP BY", q->group_by, NANA_CLAUSE_GROUP_BY, q->policy)) ||
        (rc = put_clause(s, &sql, "ORDER BY", q->order_by, NANA_CLAUSE_ORDER_BY, q->policy)))
        goto out;
    if (q->limit >= 0 || q->offset >= 0)
        rc = nana_buf_printf(&sql, " LIMIT %lld", (long long)q->limit);
    if (!rc && q->offset >= 0) rc = nana_buf_printf(&sql, " OFFSET %lld", (long long)q->offset);
    if (rc) goto out;
    a.sql = sql.data;
    a.params = params;
    rc = nana_store_read(s, read_select, &a);
    if (!rc) rc = nana_buf_to_val(&a.rows, out);
out:
    nana_buf_free(&a.rows);
    nana_buf_free(&sql);
    nana_json_doc_free(cd);
    nana_json_doc_free(pd);
    return rc;
}

int nana_sql_export(nana_store *s, const char *table, nana_val **out)
{
    if (s->cluster) return nana_cluster_unsupported("export");
    nana_query q;
    nana_query_init(&q);
    q.table = table;
    return nana_sql_query(s, &q, out);
}

/* count / exists: one integer from a SELECT built around |where|. */
static int scalar_query(nana_store *s, const char *table, const char *where, const char *params,
                        const nana_sql_policy *pol, bool exists, int64_t *out)
{
    table = table_or_default(s, table);
    int rc = nana_sql_check_identifier(table, "table");
    if (rc) return rc;
    if (exists && (!where || !where[0]))
        return nana_err_set(NANA_ERR_VALIDATION, "exists() needs a where clause");
    nana_json_doc *pd = NULL;
    nana_json *p = NULL;
    nana_buf sql;
    nana_buf_init(&sql, 0);
    select_arg a = {.auth = {.table = table, .pol = pol},
                    .scalar = true,
                    .timeout_ms = s->opts.query_timeout_ms};
    nana_buf_init(&a.rows, 0);
    if ((rc = nana_parse_arg(params, NANA_JSON_ARRAY, "parameters", &pd, &p))) goto out;
    rc = nana_buf_puts(&sql, exists ? "SELECT EXISTS(SELECT 1 FROM " : "SELECT COUNT(*) FROM ");
    if (!rc) rc = put_ident(&sql, table);
    if (!rc) rc = put_clause(s, &sql, "WHERE", where, NANA_CLAUSE_WHERE, pol);
    if (!rc && exists) rc = nana_buf_putc(&sql, ')');
    if (rc) goto out;
    a.sql = sql.data;
    a.params = p;
    rc = nana_store_read(s, read_select, &a);
    if (!rc) *out = a.value;
out:
    nana_buf_free(&sql);
    nana_buf_free(&a.rows);
    nana_json_doc_free(pd);
    return rc;
}

int nana_sql_count(nana_store *s, const char *table, const char *where, const char *params,
                   const nana_sql_policy *pol, int64_t *out)
{
    if (s->cluster) return nana_cluster_unsupported("count");
    return scalar_query(s, table, where, params, pol, false, out);
}

int nana_sql_exists(nana_store *s, const char *table, const char *where, const char *params,
                    const nana_sql_policy *pol)
{
    if (s->cluster) return nana_cluster_unsupported("exists");
    int64_t v = 0;
    int rc = scalar_query(s, table, where, params, pol, true, &v);
    return rc ? rc : (v ? 1 : 0);
}

/* ------------------------------------------------------------------ */
/* Writes: insert, update, delete, upsert, import                       */
/* ------------------------------------------------------------------ */

/*
 * One DML statement run |nexec| times; run i binds binds[i*nbind ...]
 * (a NULL entry binds SQL NULL) followed by |tail| (the where parameters).
 */
typedef struct dml_op {
    nana_wop super;
    const char *sql;
    const char *sql_plain; /* the same without RETURNING (WITHOUT ROWID tables), or NULL */
    unsigned timeout_ms;
    auth_ctx auth;
    const nana_json **binds;
    size_t nbind, nexec;
    const nana_json *tail;
    bool want_rowid; /* result: last insert rowid, else changes */
} dml_op;

static int dml_exec(nana_wop *op, nana_conn *c)
{
    dml_op *o = (dml_op *)op;
    sqlite3_stmt *st = NULL;
    bool returning = o->sql_plain != NULL;
    int rc = prepare_guarded(c, o->sql, &o->auth, &st);
    if (rc && returning && strstr(nana_errmsg(), "rowid")) {
        /* A WITHOUT ROWID table has no rowid to return. */
        returning = false;
        rc = prepare_guarded(c, o->sql_plain, &o->auth, &st);
    }
    if (rc) return rc;
    nana_deadline dl;
    nana_deadline_arm(c, &dl, o->timeout_ms);
    int64_t changes = 0, rowid = 0;
    for (size_t r = 0; !rc && r < o->nexec; r++) {
        for (size_t i = 0; !rc && i < o->nbind; i++)
            rc = bind_json(st, (int)i + 1, o->binds[r * o->nbind + i]);
        if (!rc) rc = bind_array(st, (int)o->nbind + 1, o->tail);
        while (!rc && (rc = nana_step(c, st, "write")) == 1) {
            if (returning) rowid = sqlite3_column_int64(st, 0);
            rc = 0;
        }
        if (!rc) changes += sqlite3_changes64(c->db);
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
    rc = nana_deadline_disarm(c, &dl, rc, o->timeout_ms);
    sqlite3_finalize(st);
    if (rc) return rc;
    op->i64 = o->want_rowid ? rowid : changes;
    return NANA_OK;
}

static void dml_apply(nana_wop *op)
{
    dml_op *o = (dml_op *)op;
    nana_store_table_changed(op->tbl->store, o->auth.table);
}

/* The last rowid a thread inserted, and through which store. */
static _Thread_local struct {
    const nana_store *store;
    int64_t rowid;
} tls_rowid;

/*
 * Queues a DML statement and waits; *out gets changes, or with
 * |sql_plain| (the statement without its RETURNING rowid) the rowid.
 */
static int run_dml(nana_store *s, const char *table, const char *sql, const char *sql_plain,
                   const nana_json **binds, size_t nbind, size_t nexec, const nana_json *tail,
                   int64_t *out)
{
    bool want_rowid = sql_plain != NULL;
    dml_op o = {.super = {.exec = dml_exec,
                          .apply = dml_apply,
                          .flags = nexec > 1 ? WOP_SAVEPOINT : 0,
                          .tbl = s->default_table},
                .sql = sql,
                .sql_plain = sql_plain,
                .timeout_ms = s->opts.query_timeout_ms,
                .auth = {.table = table, .write = true},
                .binds = binds,
                .nbind = nbind,
                .nexec = nexec,
                .tail = tail,
                .want_rowid = want_rowid};
    int rc = nana_writer_run(s, &o.super);
    if (rc) return rc;
    if (want_rowid && o.super.i64) {
        tls_rowid.store = s;
        tls_rowid.rowid = o.super.i64;
    }
    if (out) *out = o.super.i64;
    return NANA_OK;
}

/* Checks that every key of a JSON object is an identifier. */
static int check_object_columns(const nana_json *obj, const char *what);

/* Parses a {column: value} argument; on success *obj is never NULL. */
static int parse_row(const char *json, const char *what, nana_json_doc **doc, nana_json **obj)
{
    int rc = nana_parse_arg(json, NANA_JSON_OBJECT, what, doc, obj);
    if (!rc) rc = check_object_columns(*obj, what);
    if (!rc && !*obj) rc = nana_err_set(NANA_ERR_INTERNAL, "%s missing", what);
    return rc;
}

static int check_object_columns(const nana_json *obj, const char *what)
{
    if (!obj || obj->n == 0)
        return nana_err_set(NANA_ERR_INVALID, "%s must be a non-empty object", what);
    for (uint32_t i = 0; i < obj->n; i++) {
        const nana_json_member *m = &obj->u.members[i];
        if (strlen(m->key) != m->keylen || !nana_identifier_valid(m->key))
            return nana_sql_check_identifier(m->keylen ? m->key : "", "column");
    }
    return NANA_OK;
}

/* True if |table| is open in this store as a NanaSQLite table. */
static bool is_kv_table(nana_store *s, const char *table)
{
    bool kv = false;
    pthread_mutex_lock(&s->tables_mu);
    for (nana_table *t = s->tables; t && !kv; t = t->next)
        kv = strcasecmp(t->name, table) == 0;
    pthread_mutex_unlock(&s->tables_mu);
    return kv;
}

/*
 * A NanaSQLite table's value column holds JSON text: a string written to
 * it through the SQL helpers must be valid JSON. (Numbers, booleans and
 * null become valid JSON text by themselves; arrays and objects are bound
 * as JSON text.)
 */
static int check_kv_values(nana_store *s, const char *table, const nana_json *row)
{
    const nana_json *v = nana_json_object_get(row, "value", 5);
    if (!v || v->type != NANA_JSON_STRING || !is_kv_table(s, table)) return NANA_OK;
    if (nana_check_value(s, v->u.str, v->n))
        return nana_err_set(NANA_ERR_JSON,
                            "the value column of NanaSQLite table '%s' holds JSON text; the string "
                            "given is not valid JSON",
                            table);
    return NANA_OK;
}

/* INSERT [OR REPLACE] INTO "t" ("a","b") VALUES (?,?) for an object's keys. */
static int build_insert(nana_buf *sql, const char *verb, const char *table, const nana_json *obj)
{
    int rc = nana_buf_printf(sql, "%s INTO ", verb);
    if (!rc) rc = put_ident(sql, table);
    if (!rc) rc = nana_buf_puts(sql, " (");
    for (uint32_t i = 0; !rc && i < obj->n; i++) {
        if (i) rc = nana_buf_putc(sql, ',');
        if (!rc) rc = put_ident(sql, obj->u.members[i].key);
    }
    if (!rc) rc = nana_buf_puts(sql, ") VALUES (");
    for (uint32_t i = 0; !rc && i < obj->n; i++)
        rc = nana_buf_puts(sql, i ? ",?" : "?");
    if (!rc) rc = nana_buf_putc(sql, ')');
    return rc;
}

/* The values of an object's members, in order, in a new array. */
static const nana_json **member_values(const nana_json *obj)
{
    const nana_json **v = calloc(obj->n ? obj->n : 1, sizeof(*v));
    if (!v) {
        (void)nana_err_set(NANA_ERR_NOMEM, "out of memory");
        return NULL;
    }
    for (uint32_t i = 0; i < obj->n; i++)
        v[i] = obj->u.members[i].val;
    return v;
}

/* Shared body of sql_insert and upsert. */
static int insert_like(nana_store *s, const char *table, const char *row,
                       const char *conflict_columns, bool upsert, int64_t *rowid)
{
    table = table_or_default(s, table);
    int rc = nana_sql_check_identifier(table, "table");
    if (rc) return rc;
    nana_json_doc *rd = NULL, *cd = NULL;
    nana_json *obj = NULL, *conf = NULL;
    const nana_json **vals = NULL;
    nana_buf sql;
    nana_buf_init(&sql, 0);
    if (!row) return nana_err_set(NANA_ERR_INVALID, "data is required");
    if ((rc = parse_row(row, "data", &rd, &obj)) ||
        (rc = nana_parse_arg(conflict_columns, NANA_JSON_ARRAY, "conflict_columns", &cd, &conf)))
        goto out;
    if (!obj) goto out;
    bool plain_replace = upsert && (!conf || conf->n == 0);
    rc = build_insert(&sql, plain_replace ? "INSERT OR REPLACE" : "INSERT", table, obj);
    if (!rc && upsert && conf && conf->n) {
        rc = nana_buf_puts(&sql, " ON CONFLICT(");
        for (uint32_t i = 0; !rc && i < conf->n; i++) {
            const nana_json *c = conf->u.items[i];
            if (c->type != NANA_JSON_STRING || !nana_identifier_valid(c->u.str)) {
                rc = nana_err_set(NANA_ERR_VALIDATION, "Invalid identifier in conflict_columns");
                break;
            }
            if (i) rc = nana_buf_putc(&sql, ',');
            if (!rc) rc = put_ident(&sql, c->u.str);
        }
        if (!rc) rc = nana_buf_puts(&sql, ") DO ");
        size_t nset = 0;
        for (uint32_t i = 0; !rc && i < obj->n; i++) {
            const char *col = obj->u.members[i].key;
            bool is_conf = false;
            for (uint32_t k = 0; k < conf->n; k++)
                if (strcasecmp(conf->u.items[k]->u.str, col) == 0) is_conf = true;
            if (is_conf) continue;
            rc = nana_buf_puts(&sql, nset++ ? "," : "UPDATE SET ");
            if (!rc) rc = put_ident(&sql, col);
            if (!rc) rc = nana_buf_puts(&sql, "=excluded.");
            if (!rc) rc = put_ident(&sql, col);
        }
        if (!rc && nset == 0) rc = nana_buf_puts(&sql, "NOTHING");
    }
    if (rc) goto out;
    if ((rc = check_kv_values(s, table, obj))) goto out;
    if (!(vals = member_values(obj))) {
        rc = NANA_ERR_NOMEM;
        goto out;
    }
    size_t plain_len = sql.len;
    if ((rc = nana_buf_puts(&sql, " RETURNING rowid"))) goto out;
    char *plain = strndup(sql.data, plain_len);
    if (!plain) {
        rc = nana_err_set(NANA_ERR_NOMEM, "out of memory");
        goto out;
    }
    rc = run_dml(s, table, sql.data, plain, vals, obj->n, 1, NULL, rowid);
    free(plain);
out:
    free(vals);
    nana_buf_free(&sql);
    nana_json_doc_free(rd);
    nana_json_doc_free(cd);
    return rc;
}

int nana_sql_insert(nana_store *s, const char *table, const char *row, int64_t *rowid)
{
    if (s->cluster) return nana_cluster_unsupported("insert");
    return insert_like(s, table, row, NULL, false, rowid);
}

int nana_sql_upsert(nana_store *s, const char *table, const char *row, const char *conflict_columns,
                    int64_t *rowid)
{
    if (s->cluster) return nana_cluster_unsupported("upsert");
    return insert_like(s, table, row, conflict_columns, true, rowid);
}

/* Shared body of sql_update and sql_delete. */
static int update_like(nana_store *s, const char *table, const char *set, const char *where,
                       const char *params, int64_t *changes)
{
    table = table_or_default(s, table);
    int rc = nana_sql_check_identifier(table, "table");
    if (rc) return rc;
    if (!where || !where[0]) return nana_err_set(NANA_ERR_VALIDATION, "a where clause is required");
    nana_json_doc *sd = NULL, *pd = NULL;
    nana_json *obj = NULL, *p = NULL;
    const nana_json **vals = NULL;
    nana_buf sql;
    nana_buf_init(&sql, 0);
    if ((rc = nana_parse_arg(params, NANA_JSON_ARRAY, "parameters", &pd, &p))) goto out;
    if (set) {
        rc = parse_row(set, "data", &sd, &obj);
        if (rc || !obj) goto out;
        rc = nana_buf_puts(&sql, "UPDATE ");
        if (!rc) rc = put_ident(&sql, table);
        for (uint32_t i = 0; !rc && i < obj->n; i++) {
            rc = nana_buf_puts(&sql, i ? "," : " SET ");
            if (!rc) rc = put_ident(&sql, obj->u.members[i].key);
            if (!rc) rc = nana_buf_puts(&sql, "=?");
        }
    } else {
        rc = nana_buf_puts(&sql, "DELETE FROM ");
        if (!rc) rc = put_ident(&sql, table);
    }
    if (!rc) rc = put_clause(s, &sql, "WHERE", where, NANA_CLAUSE_WHERE, NULL);
    if (rc) goto out;
    if (obj && (rc = check_kv_values(s, table, obj))) goto out;
    if (obj && !(vals = member_values(obj))) {
        rc = NANA_ERR_NOMEM;
        goto out;
    }
    rc = run_dml(s, table, sql.data, NULL, vals, obj ? obj->n : 0, 1, p, changes);
out:
    free(vals);
    nana_buf_free(&sql);
    nana_json_doc_free(sd);
    nana_json_doc_free(pd);
    return rc;
}

int nana_sql_update(nana_store *s, const char *table, const char *set, const char *where,
                    const char *params, int64_t *changes)
{
    if (s->cluster) return nana_cluster_unsupported("update");
    if (!set) return nana_err_set(NANA_ERR_INVALID, "data is required");
    return update_like(s, table, set, where, params, changes);
}

int nana_sql_delete(nana_store *s, const char *table, const char *where, const char *params,
                    int64_t *changes)
{
    if (s->cluster) return nana_cluster_unsupported("delete");
    return update_like(s, table, NULL, where, params, changes);
}

int nana_sql_import(nana_store *s, const char *table, const char *rows, int64_t *count)
{
    if (s->cluster) return nana_cluster_unsupported("import");
    table = table_or_default(s, table);
    int rc = nana_sql_check_identifier(table, "table");
    if (rc) return rc;
    if (count) *count = 0;
    nana_json_doc *d = NULL;
    nana_json *arr = NULL;
    const nana_json **vals = NULL;
    nana_buf sql;
    nana_buf_init(&sql, 0);
    if ((rc = nana_parse_arg(rows, NANA_JSON_ARRAY, "data_list", &d, &arr))) goto out;
    if (!arr || arr->n == 0) goto out;
    const nana_json *first = arr->u.items[0];
    if (first->type != NANA_JSON_OBJECT) {
        rc = nana_err_set(NANA_ERR_TYPE, "data_list must hold objects");
        goto out;
    }
    if ((rc = check_object_columns(first, "data_list[0]")) ||
        (rc = build_insert(&sql, "INSERT", table, first)))
        goto out;
    size_t ncol = first->n;
    vals = calloc(ncol * arr->n, sizeof(*vals));
    if (!vals) {
        rc = nana_err_set(NANA_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (uint32_t r = 0; r < arr->n; r++) {
        const nana_json *row = arr->u.items[r];
        if (row->type != NANA_JSON_OBJECT) {
            rc = nana_err_set(NANA_ERR_TYPE, "data_list[%u] is not an object", r);
            goto out;
        }
        if ((rc = check_kv_values(s, table, row))) goto out;
        for (size_t k = 0; k < ncol; k++) {
            const nana_json_member *m = &first->u.members[k];
            vals[r * ncol + k] = nana_json_object_get(row, m->key, m->keylen);
        }
    }
    rc = run_dml(s, table, sql.data, NULL, vals, ncol, arr->n, NULL, NULL);
    if (!rc && count) *count = arr->n;
out:
    free(vals);
    nana_buf_free(&sql);
    nana_json_doc_free(d);
    return rc;
}

int64_t nana_sql_last_insert_rowid(nana_store *s)
{
    return tls_rowid.store == s ? tls_rowid.rowid : 0;
}
