/*
 * schema.c - tables with columns and indexes: create, drop, alter, and
 * the introspection helpers (table_exists, list_tables, get_table_schema,
 * list_indexes).
 *
 * DDL text is assembled only from checked identifiers and checked column
 * types, then run by the writer like any other write. Dropping or
 * altering a table that is also open as a NanaSQLite table empties that
 * table's cache, so no read can return a row that is gone.
 */
#include "store/store_int.h"

#include "util/nana_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A writer op running one fixed DDL statement. */
typedef struct ddl_op {
    nana_wop super;
    const char *sql;
    const char *table; /* table whose cache must be dropped, or NULL */
} ddl_op;

static int ddl_exec(nana_wop *op, nana_conn *c)
{
    return nana_conn_exec(c, ((ddl_op *)op)->sql);
}

static void ddl_apply(nana_wop *op)
{
    ddl_op *o = (ddl_op *)op;
    if (o->table) nana_store_table_changed(op->tbl->store, o->table);
}

static int run_ddl(nana_store *s, const char *sql, const char *table)
{
    ddl_op o = {.super = {.exec = ddl_exec, .apply = ddl_apply, .tbl = s->default_table},
                .sql = sql,
                .table = table};
    return nana_writer_run(s, &o.super);
}

void nana_store_table_changed(nana_store *s, const char *name)
{
    pthread_mutex_lock(&s->tables_mu);
    for (nana_table *t = s->tables; t; t = t->next)
        if (strcasecmp(t->name, name) == 0) nana_cache_clear(&t->cache);
    pthread_mutex_unlock(&s->tables_mu);
}

int nana_sql_create_table(nana_store *s, const char *table, const char *columns, int if_not_exists,
                          const char *primary_key)
{
    if (s->cluster) return nana_cluster_unsupported("create_table");
    int rc = nana_sql_check_identifier(table, "table");
    if (rc) return rc;
    if (primary_key && (rc = nana_sql_check_identifier(primary_key, "primary_key"))) return rc;
    nana_json_doc *d = NULL;
    nana_json *cols = NULL;
    nana_buf sql;
    nana_buf_init(&sql, 0);
    if ((rc = nana_parse_arg(columns, NANA_JSON_OBJECT, "columns", &d, &cols))) goto out;
    if (!cols || cols->n == 0) {
        rc = nana_err_set(NANA_ERR_INVALID, "columns must be a non-empty object");
        goto out;
    }
    rc = nana_buf_printf(&sql, "CREATE TABLE %s\"%s\" (", if_not_exists ? "IF NOT EXISTS " : "",
                         table);
    bool pk_inline = false;
    for (uint32_t i = 0; !rc && i < cols->n; i++) {
        const nana_json_member *m = &cols->u.members[i];
        if (strlen(m->key) != m->keylen || (rc = nana_sql_check_identifier(m->key, "column")))
            break;
        if (m->val->type != NANA_JSON_STRING || strlen(m->val->u.str) != m->val->n) {
            rc = nana_err_set(NANA_ERR_VALIDATION, "the type of column '%s' must be a string",
                              m->key);
            break;
        }
        if ((rc = nana_sql_check_type(m->val->u.str, false))) break;
        if (primary_key && strcasecmp(m->key, primary_key) == 0 &&
            strcasestr(m->val->u.str, "PRIMARY KEY"))
            pk_inline = true;
        rc = nana_buf_printf(&sql, "%s\"%s\" %s", i ? ", " : "", m->key, m->val->u.str);
    }
    if (!rc && primary_key && !pk_inline)
        rc = nana_buf_printf(&sql, ", PRIMARY KEY (\"%s\")", primary_key);
    if (!rc) rc = nana_buf_putc(&sql, ')');
    if (!rc) rc = run_ddl(s, sql.data, table);
out:
    nana_buf_free(&sql);
    nana_json_doc_free(d);
    return rc;
}

int nana_sql_create_index(nana_store *s, const char *index, const char *table, const char *columns,
                          int unique, int if_not_exists)
{
    if (s->cluster) return nana_cluster_unsupported("create_index");
    int rc = nana_sql_check_identifier(index, "index");
    if (!rc) rc = nana_sql_check_identifier(table, "table");
    if (rc) return rc;
    nana_json_doc *d = NULL;
    nana_json *cols = NULL;
    nana_buf sql;
    nana_buf_init(&sql, 0);
    if ((rc = nana_parse_arg(columns, NANA_JSON_ARRAY, "columns", &d, &cols))) goto out;
    if (!cols || cols->n == 0) {
        rc = nana_err_set(NANA_ERR_INVALID, "columns must be a non-empty array");
        goto out;
    }
    rc = nana_buf_printf(&sql, "CREATE %sINDEX %s\"%s\" ON \"%s\" (", unique ? "UNIQUE " : "",
                         if_not_exists ? "IF NOT EXISTS " : "", index, table);
    for (uint32_t i = 0; !rc && i < cols->n; i++) {
        const nana_json *c = cols->u.items[i];
        if (c->type != NANA_JSON_STRING || strlen(c->u.str) != c->n ||
            (rc = nana_sql_check_identifier(c->u.str, "column"))) {
            rc = rc ? rc : nana_err_set(NANA_ERR_VALIDATION, "index columns must be names");
            break;
        }
        rc = nana_buf_printf(&sql, "%s\"%s\"", i ? ", " : "", c->u.str);
    }
    if (!rc) rc = nana_buf_putc(&sql, ')');
    if (!rc) rc = run_ddl(s, sql.data, NULL);
out:
    nana_buf_free(&sql);
    nana_json_doc_free(d);
    return rc;
}

int nana_sql_drop_table(nana_store *s, const char *table, int if_exists)
{
    if (s->cluster) return nana_cluster_unsupported("drop_table");
    int rc = nana_sql_check_identifier(table, "table");
    if (rc) return rc;
    char sql[NANA_MAX_TABLE_NAME + 40];
    snprintf(sql, sizeof(sql), "DROP TABLE %s\"%s\"", if_exists ? "IF EXISTS " : "", table);
    return run_ddl(s, sql, table);
}

int nana_sql_drop_index(nana_store *s, const char *index, int if_exists)
{
    if (s->cluster) return nana_cluster_unsupported("drop_index");
    int rc = nana_sql_check_identifier(index, "index");
    if (rc) return rc;
    char sql[NANA_MAX_TABLE_NAME + 40];
    snprintf(sql, sizeof(sql), "DROP INDEX %s\"%s\"", if_exists ? "IF EXISTS " : "", index);
    return run_ddl(s, sql, NULL);
}

/* Appends a DEFAULT value from a JSON scalar. */
static int put_default(nana_buf *sql, const char *def)
{
    nana_json_doc *d = NULL;
    nana_json *v = NULL;
    int rc = nana_json_parse(def, strlen(def), 0, 1, &d, &v);
    if (rc) return nana_err_set(NANA_ERR_JSON, "default is not valid JSON");
    switch (v->type) {
    case NANA_JSON_NULL:
        rc = nana_buf_puts(sql, " DEFAULT NULL");
        break;
    case NANA_JSON_TRUE:
        rc = nana_buf_puts(sql, " DEFAULT 1");
        break;
    case NANA_JSON_FALSE:
        rc = nana_buf_puts(sql, " DEFAULT 0");
        break;
    case NANA_JSON_NUMBER:
        rc = nana_buf_printf(sql, " DEFAULT %s", v->u.str);
        break;
    case NANA_JSON_STRING:
        if (strlen(v->u.str) != v->n) {
            rc = nana_err_set(NANA_ERR_VALIDATION, "default contains a NUL character");
            break;
        }
        rc = nana_buf_puts(sql, " DEFAULT '");
        for (const char *p = v->u.str; !rc && *p; p++)
            rc = *p == '\'' ? nana_buf_puts(sql, "''") : nana_buf_putc(sql, *p);
        if (!rc) rc = nana_buf_putc(sql, '\'');
        break;
    default:
        rc = nana_err_set(NANA_ERR_TYPE, "default must be a string, number, boolean or null");
    }
    nana_json_doc_free(d);
    return rc;
}

int nana_sql_add_column(nana_store *s, const char *table, const char *column, const char *type,
                        const char *def)
{
    if (s->cluster) return nana_cluster_unsupported("add_column");
    int rc = nana_sql_check_identifier(table, "table");
    if (!rc) rc = nana_sql_check_identifier(column, "column");
    if (!rc) rc = nana_sql_check_type(type, true);
    if (rc) return rc;
    nana_buf sql;
    nana_buf_init(&sql, 0);
    rc = nana_buf_printf(&sql, "ALTER TABLE \"%s\" ADD COLUMN \"%s\" %s", table, column, type);
    if (!rc && def) rc = put_default(&sql, def);
    if (!rc) rc = run_ddl(s, sql.data, table);
    nana_buf_free(&sql);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Introspection                                                        */
/* ------------------------------------------------------------------ */

static const char sql_table_exists[] = "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?";
static const char sql_list_tables[] = "SELECT name FROM sqlite_master WHERE type='table' "
                                      "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name";
static const char sql_list_indexes[] =
    "SELECT name, tbl_name, sql FROM sqlite_master WHERE type='index' "
    "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND (?1 IS NULL OR tbl_name=?1) ORDER BY name";

typedef struct intro_arg {
    const char *sql;   /* constant text (cached statement) or NULL for sql_buf */
    char sql_buf[200]; /* PRAGMA table_info("t") */
    const char *param; /* bound to ?1, or NULL */
    int kind;          /* 0 exists, 1 names, 2 schema, 3 indexes */
    int64_t value;
    nana_buf out;
} intro_arg;

static int read_intro(nana_conn *c, void *arg)
{
    intro_arg *a = arg;
    int rc = 0;
    sqlite3_stmt *st = NULL;
    bool cached = a->sql != NULL;
    if (cached) {
        st = nana_conn_stmt(c, a->sql, &rc);
    } else {
        int r = sqlite3_prepare_v2(c->db, a->sql_buf, -1, &st, NULL);
        if (r != SQLITE_OK) rc = nana_conn_err(c, r, "schema");
    }
    if (!st) return rc;
    if (a->param) rc = nana_bind_text(st, 1, a->param, strlen(a->param));
    nana_buf *b = &a->out;
    nana_buf_reset(b);
    if (!rc && a->kind != 0) rc = nana_buf_putc(b, '[');
    bool first = true;
    while (!rc && (rc = nana_step(c, st, "schema")) == 1) {
        rc = 0;
        if (a->kind == 0) {
            a->value = 1;
            continue;
        }
        if (!first) rc = nana_buf_putc(b, ',');
        first = false;
        if (rc) break;
        if (a->kind == 1) {
            rc = nana_buf_put_key(b, st, 0);
        } else if (a->kind == 2) {
            /* cid, name, type, notnull, dflt_value, pk */
            const unsigned char *dv = sqlite3_column_text(st, 4);
            rc = nana_buf_printf(b, "{\"cid\":%d,\"name\":", sqlite3_column_int(st, 0));
            if (!rc) rc = nana_buf_put_key(b, st, 1);
            if (!rc) rc = nana_buf_puts(b, ",\"type\":");
            if (!rc) rc = nana_buf_put_key(b, st, 2);
            if (!rc)
                rc = nana_buf_printf(b, ",\"notnull\":%s,\"default_value\":",
                                     sqlite3_column_int(st, 3) ? "true" : "false");
            if (!rc) rc = dv ? nana_buf_put_key(b, st, 4) : nana_buf_puts(b, "null");
            if (!rc)
                rc =
                    nana_buf_printf(b, ",\"pk\":%s}", sqlite3_column_int(st, 5) ? "true" : "false");
        } else {
            rc = nana_buf_puts(b, "{\"name\":");
            if (!rc) rc = nana_buf_put_key(b, st, 0);
            if (!rc) rc = nana_buf_puts(b, ",\"table\":");
            if (!rc) rc = nana_buf_put_key(b, st, 1);
            if (!rc) rc = nana_buf_puts(b, ",\"sql\":");
            if (!rc)
                rc = sqlite3_column_type(st, 2) == SQLITE_NULL ? nana_buf_puts(b, "null")
                                                               : nana_buf_put_key(b, st, 2);
            if (!rc) rc = nana_buf_putc(b, '}');
        }
    }
    if (!rc && a->kind != 0) rc = nana_buf_putc(b, ']');
    if (cached)
        nana_conn_stmt_done(st);
    else
        sqlite3_finalize(st);
    return rc;
}

/* Runs an introspection read; *out (kinds 1-3) gets the JSON result. */
static int intro(nana_store *s, intro_arg *a, nana_val **out)
{
    nana_buf_init(&a->out, s->opts.max_result_bytes);
    int rc = nana_store_read(s, read_intro, a);
    if (!rc && out) return nana_buf_to_val(&a->out, out);
    nana_buf_free(&a->out);
    return rc;
}

int nana_sql_table_exists(nana_store *s, const char *table)
{
    if (s->cluster) return nana_cluster_unsupported("table_exists");
    if (!table) return nana_err_set(NANA_ERR_INVALID, "table name is NULL");
    if (nana_name_reserved(table)) return nana_sql_check_identifier(table, "table");
    intro_arg a = {.sql = sql_table_exists, .param = table, .kind = 0};
    int rc = intro(s, &a, NULL);
    return rc ? rc : (a.value ? 1 : 0);
}

int nana_sql_list_tables(nana_store *s, nana_val **out)
{
    if (s->cluster) return nana_cluster_unsupported("list_tables");
    intro_arg a = {.sql = sql_list_tables, .kind = 1};
    return intro(s, &a, out);
}

int nana_sql_table_schema(nana_store *s, const char *table, nana_val **out)
{
    if (s->cluster) return nana_cluster_unsupported("table_schema");
    table = table ? table : s->default_table_name;
    int rc = nana_sql_check_identifier(table, "table");
    if (rc) return rc;
    intro_arg a = {.kind = 2};
    snprintf(a.sql_buf, sizeof(a.sql_buf), "PRAGMA table_info(\"%s\")", table);
    return intro(s, &a, out);
}

int nana_sql_list_indexes(nana_store *s, const char *table, nana_val **out)
{
    if (s->cluster) return nana_cluster_unsupported("list_indexes");
    if (table && nana_name_reserved(table)) return nana_sql_check_identifier(table, "table");
    intro_arg a = {.sql = sql_list_indexes, .param = table, .kind = 3};
    return intro(s, &a, out);
}
