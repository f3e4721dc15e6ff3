/*
 * methods.c - the one method table and the methods themselves.
 *
 * Each row names a NanaSQLite method, says what it is (read, write,
 * admin, caller-written SQL, not available over the network, and which
 * fast path may answer it), lists its parameters as Python declares them,
 * and points at a small handler that calls the store and returns its
 * answer as a value. Policy and fast paths read only the row, so adding a
 * method is adding a row; no door encodes anything here.
 */
#include "core/core_int.h"

#include <stdio.h>
#include <string.h>

typedef struct exec {
    const nana_run_env *env;
    const nana_arg *a;
    const nana_kv_pair *extra;
    size_t nextra;
    nana_core_result *res;
    nana_arena *arena;
} exec;

typedef int (*handler_fn)(exec *x);

struct nana_method {
    const char *owner; /* the Python class defining it, for TypeErrors; NULL: NanaSQLite */
    const char *name;
    unsigned char nlen; /* strlen(name) */
    unsigned flags;
    handler_fn run;
    nana_param params[NANA_MAX_PARAMS];
    unsigned nparams;
    bool var_kwargs;
};

/* ---- result helpers ----------------------------------------------------- */

/* The stored JSON value |v| (a reference the result takes) as the answer. */
static int put_val(exec *x, nana_val *v)
{
    x->res->kind = NANA_RES_VAL;
    x->res->v = v;
    return NANA_OK;
}

static int put_nil_rc(exec *x, int rc)
{
    (void)x;
    return rc;
}

static int put_int_rc(exec *x, int rc, int64_t v)
{
    if (rc) return rc;
    x->res->kind = NANA_RES_INT;
    x->res->i = v;
    return NANA_OK;
}

/* rc is 1/0 (true/false) or a negative error. */
static int put_bool_rc(exec *x, int rc)
{
    if (rc < 0) return rc;
    x->res->kind = NANA_RES_BOOL;
    x->res->b = rc != 0;
    return NANA_OK;
}

static int put_val_rc(exec *x, int rc, nana_val *v)
{
    if (rc) return rc;
    return put_val(x, v);
}

#define T    (x->env->table)
#define S    (x->env->store)
#define A(i) (x->a[i])
/* The text of optional argument i, or NULL when it was left out (or None). */
#define OPT(i) (x->a[i].set ? x->a[i].s : NULL)

/* ---- dict methods --------------------------------------------------------- */

static int h_getitem(exec *x)
{
    nana_val *v = NULL;
    int rc = nana_kv_get(T, A(0).s, A(0).n, &v);
    return put_val_rc(x, rc, v);
}

static int h_setitem(exec *x)
{
    return put_nil_rc(x, nana_kv_set(T, A(0).s, A(0).n, A(1).s, A(1).n));
}

static int h_delitem(exec *x)
{
    return put_nil_rc(x, nana_kv_delete(T, A(0).s, A(0).n));
}

static int h_contains(exec *x)
{
    return put_bool_rc(x, nana_kv_contains(T, A(0).s, A(0).n));
}

static int h_len(exec *x)
{
    int64_t n = 0;
    int rc = nana_kv_len(T, &n);
    return put_int_rc(x, rc, n);
}

static int h_get(exec *x)
{
    nana_val *v = NULL;
    int rc = nana_kv_get_default(T, A(0).s, A(0).n, OPT(1), A(1).n, &v);
    return put_val_rc(x, rc, v);
}

/* keys/values/items/to_dict share one shape: a table-wide JSON result. */
static int table_result(exec *x, int (*fn)(nana_table *, nana_val **))
{
    nana_val *v = NULL;
    int rc = fn(T, &v);
    return put_val_rc(x, rc, v);
}

static int h_keys(exec *x)
{
    return table_result(x, nana_kv_keys);
}

static int h_values(exec *x)
{
    return table_result(x, nana_kv_values);
}

static int h_items(exec *x)
{
    return table_result(x, nana_kv_items);
}

static int h_to_dict(exec *x)
{
    return table_result(x, nana_kv_to_dict);
}

static int h_popitem(exec *x)
{
    return table_result(x, nana_kv_popitem);
}

/* get_fresh(key, default=None): get, but read from SQLite past the cache. */
static int h_get_fresh(exec *x)
{
    nana_val *v = NULL;
    int rc = nana_kv_get_fresh(T, A(0).s, A(0).n, OPT(1), A(1).n, &v);
    return put_val_rc(x, rc, v);
}

static int h_is_cached(exec *x)
{
    return put_bool_rc(x, nana_kv_is_cached(T, A(0).s, A(0).n));
}

static int h_clear_cache(exec *x)
{
    nana_kv_clear_cache(T);
    return NANA_OK;
}

/* pop(key, *args): args[0], when given, is the default. */
static int h_pop(exec *x)
{
    nana_val *v = NULL;
    int rc = nana_kv_pop(T, A(0).s, A(0).n, OPT(1), A(1).n, &v);
    return put_val_rc(x, rc, v);
}

static int h_setdefault(exec *x)
{
    nana_val *v = NULL;
    const char *def = A(1).set ? A(1).s : "null";
    int rc = nana_kv_setdefault(T, A(0).s, A(0).n, def, A(1).set ? A(1).n : 4, &v);
    return put_val_rc(x, rc, v);
}

static int h_clear(exec *x)
{
    return put_nil_rc(x, nana_kv_clear(T));
}

/* update(mapping=None, **kwargs): both sets of pairs in one transaction. */
static int h_update(exec *x)
{
    size_t n = A(0).count + x->nextra;
    if (n == 0) return NANA_OK;
    nana_kv_pair *all = nana_arena_alloc(x->arena, n * sizeof(*all));
    if (!all) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    if (A(0).count) memcpy(all, A(0).pairs, A(0).count * sizeof(*all));
    if (x->nextra) memcpy(all + A(0).count, x->extra, x->nextra * sizeof(*all));
    return put_nil_rc(x, nana_kv_batch_update(T, all, n));
}

static int h_batch_update(exec *x)
{
    return put_nil_rc(x, nana_kv_batch_update(T, A(0).pairs, A(0).count));
}

static int h_batch_delete(exec *x)
{
    return put_nil_rc(x, nana_kv_batch_delete(T, A(0).keys, A(0).count, NULL));
}

static int h_batch_get(exec *x)
{
    nana_val *v = NULL;
    int rc = nana_kv_batch_get(T, A(0).keys, A(0).count, &v);
    return put_val_rc(x, rc, v);
}

/* ---- AQL queries (internal: a door's own calls) ---------------------------- */

/* A range or filter: rows in key order (a[0]: the door's nana_select). */
static int h_aql_select(exec *x)
{
    nana_rows *rows = NULL;
    int rc = nana_kv_select(T, A(0).p, &rows);
    if (rc) return rc;
    x->res->kind = NANA_RES_ROWS;
    x->res->rows = rows;
    return NANA_OK;
}

/* An update of the values matching a predicate (a[0]: the nana_pred or
 * NULL; a[1]: the nana_update array, count). */
static int h_aql_update(exec *x)
{
    int64_t changed = 0;
    int rc = nana_kv_update_where(T, A(0).p, A(1).p, A(1).count, &changed);
    return put_int_rc(x, rc, changed);
}

/*
 * A batch: a[0] is the door's nana_mop array (count ops), a[1] the
 * collection (table) name of each, in a[1].keys. Each table is checked
 * against the account's allow-list and opened here; the ops run in one
 * transaction and write their results into the door's array.
 */
static int h_aql_batch(exec *x)
{
    nana_mop *ops = (nana_mop *)(uintptr_t)A(0).p;
    size_t n = A(0).count;
    const nana_key *names = A(1).keys;
    for (size_t i = 0; i < n; i++) {
        const char *name = names[i].klen ? names[i].key : NULL;
        nana_table *t = NULL;
        int rc = NANA_OK;
        /* A table already open is found without the writer (opening one runs
         * CREATE TABLE IF NOT EXISTS there: a round trip per query). */
        if (!name)
            t = nana_store_default_table(S);
        else if (i && names[i - 1].klen == names[i].klen &&
                 memcmp(names[i - 1].key, name, names[i].klen) == 0)
            t = ops[i - 1].t;
        else if (!(t = nana_store_table_find(S, name)))
            rc = nana_store_table(S, name, NULL, &t);
        if (rc) {
            char msg[NANA_ERRMSG_MAX];
            memcpy(msg, nana_errmsg(), sizeof(msg));
            return nana_err_set(rc, "query %zu: %s", i, msg);
        }
        if (x->env->acct &&
            !nana_account_table_allowed(x->env->acct, x->env->dbname, nana_table_name(t)))
            return nana_err_set(NANA_ERR_PERM,
                                "query %zu: Table '%s' is not allowed for account '%s'", i,
                                nana_table_name(t), x->env->acct->name);
        ops[i].t = t;
    }
    return nana_store_multi(S, ops, n, NULL);
}

static int h_batch_update_partial(exec *x)
{
    nana_val *v = NULL;
    int rc = nana_kv_batch_update_partial(T, A(0).pairs, A(0).count, &v);
    return put_val_rc(x, rc, v);
}

static int h_increment(exec *x)
{
    nana_val *v = NULL;
    const char *amount = A(1).set ? A(1).s : "1";
    int rc = nana_kv_increment(T, A(0).s, A(0).n, amount, A(1).set ? A(1).n : 1, OPT(2), A(2).n,
                               OPT(3), A(3).n, &v);
    return put_val_rc(x, rc, v);
}

static int h_patch(exec *x)
{
    nana_val *v = NULL;
    int rc = nana_kv_patch(T, A(0).s, A(0).n, A(1).s, A(1).n, A(2).set && A(2).b, &v);
    return put_val_rc(x, rc, v);
}

static int h_get_by_path(exec *x)
{
    nana_val *v = NULL;
    int rc = nana_kv_get_by_path(T, A(0).s, A(0).n, A(1).s, A(1).n, &v);
    return put_val_rc(x, rc, v);
}

/* ---- schema and query helpers --------------------------------------------- */

static int h_table_exists(exec *x)
{
    return put_bool_rc(x, nana_sql_table_exists(S, A(0).s));
}

static int h_list_tables(exec *x)
{
    nana_val *v = NULL;
    int rc = nana_sql_list_tables(S, &v);
    return put_val_rc(x, rc, v);
}

static int h_table_schema(exec *x)
{
    nana_val *v = NULL;
    int rc = nana_sql_table_schema(S, A(0).s, &v);
    return put_val_rc(x, rc, v);
}

static int h_list_indexes(exec *x)
{
    nana_val *v = NULL;
    int rc = nana_sql_list_indexes(S, OPT(0), &v);
    return put_val_rc(x, rc, v);
}

static int h_db_size(exec *x)
{
    int64_t n = 0;
    int rc = nana_store_db_size(S, &n);
    return put_int_rc(x, rc, n);
}

static int h_in_transaction(exec *x)
{
    return put_bool_rc(x, nana_store_in_transaction(S));
}

static int h_export(exec *x)
{
    nana_val *v = NULL;
    int rc = nana_sql_export(S, A(0).s, &v);
    return put_val_rc(x, rc, v);
}

/* query(table_name, columns, where, parameters, order_by, limit, offset, group_by) */
static int h_query(exec *x)
{
    nana_query q;
    nana_query_init(&q);
    q.table = OPT(0);
    q.columns = OPT(1);
    q.where = OPT(2);
    q.params = OPT(3);
    q.order_by = OPT(4);
    if (A(5).set) q.limit = A(5).i;
    if (A(6).set) q.offset = A(6).i;
    q.group_by = OPT(7);
    if ((A(5).set && A(5).i < 0) || (A(6).set && A(6).i < 0))
        return nana_err_set(NANA_ERR_INVALID, "limit and offset must not be negative");
    nana_val *v = NULL;
    int rc = nana_sql_query(S, &q, &v);
    return put_val_rc(x, rc, v);
}

static int h_count(exec *x)
{
    int64_t n = 0;
    int rc = nana_sql_count(S, OPT(0), OPT(1), OPT(2), NULL, &n);
    return put_int_rc(x, rc, n);
}

static int h_exists(exec *x)
{
    return put_bool_rc(x, nana_sql_exists(S, OPT(0), OPT(1), OPT(2), NULL));
}

static int h_sql_insert(exec *x)
{
    int64_t rowid = 0;
    int rc = nana_sql_insert(S, A(0).s, A(1).s, &rowid);
    return put_int_rc(x, rc, rowid);
}

static int h_sql_update(exec *x)
{
    int64_t n = 0;
    int rc = nana_sql_update(S, A(0).s, A(1).s, A(2).s, OPT(3), &n);
    return put_int_rc(x, rc, n);
}

static int h_sql_delete(exec *x)
{
    int64_t n = 0;
    int rc = nana_sql_delete(S, A(0).s, A(1).s, OPT(2), &n);
    return put_int_rc(x, rc, n);
}

static int h_upsert(exec *x)
{
    int64_t rowid = 0;
    int rc = nana_sql_upsert(S, A(0).s, A(1).s, OPT(2), &rowid);
    return put_int_rc(x, rc, rowid);
}

static int h_import(exec *x)
{
    int64_t n = 0;
    int rc = nana_sql_import(S, A(0).s, A(1).s, &n);
    return put_int_rc(x, rc, n);
}

/* Boolean arguments with a default of True. */
#define FLAG_TRUE(i) (!A(i).set || A(i).b)

static int h_create_table(exec *x)
{
    return put_nil_rc(x, nana_sql_create_table(S, A(0).s, A(1).s, FLAG_TRUE(2), OPT(3)));
}

static int h_create_index(exec *x)
{
    return put_nil_rc(
        x, nana_sql_create_index(S, A(0).s, A(1).s, A(2).s, A(3).set && A(3).b, FLAG_TRUE(4)));
}

static int h_drop_table(exec *x)
{
    return put_nil_rc(x, nana_sql_drop_table(S, A(0).s, FLAG_TRUE(1)));
}

static int h_drop_index(exec *x)
{
    return put_nil_rc(x, nana_sql_drop_index(S, A(0).s, FLAG_TRUE(1)));
}

static int h_add_column(exec *x)
{
    return put_nil_rc(x, nana_sql_add_column(S, A(0).s, A(1).s, A(2).s, OPT(3)));
}

static int h_vacuum(exec *x)
{
    return put_nil_rc(x, nana_store_vacuum(S));
}

static int h_pragma(exec *x)
{
    nana_val *v = NULL;
    int rc = nana_store_pragma(S, A(0).s, OPT(1), &v);
    return put_val_rc(x, rc, v);
}

/* A backup/restore path: relative paths are taken inside the backup directory. */
static const char *backup_path(exec *x, const char *p)
{
    if (p[0] == '/' || !x->env->backup_dir) return p;
    size_t n = strlen(x->env->backup_dir) + strlen(p) + 2;
    char *full = nana_arena_alloc(x->arena, n);
    if (full) snprintf(full, n, "%s/%s", x->env->backup_dir, p);
    return full;
}

static int h_backup(exec *x)
{
    const char *p = backup_path(x, A(0).s);
    if (!p) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    return put_nil_rc(x, nana_store_backup(S, p));
}

static int h_restore(exec *x)
{
    const char *p = backup_path(x, A(0).s);
    if (!p) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    return put_nil_rc(x, nana_store_restore(S, p));
}

/* ---- the table -------------------------------------------------------------- */

/* Reads change no data: a replay of one (0-RTT) does no harm. */
#define RD    (NANA_M_READ | NANA_M_REPLAY_SAFE)
#define WR    NANA_M_WRITE
#define ADMIN NANA_M_ADMIN
#define SQL   NANA_M_SQL
#define DICT  NANA_M_DICT
#define LOCAL (NANA_M_LOCAL | NANA_M_ADMIN)

#define KEY(n)                                                                                     \
    {                                                                                              \
        n, P_KEY, 0                                                                                \
    }
#define VAL(n)                                                                                     \
    {                                                                                              \
        n, P_VALUE, 0                                                                              \
    }
#define OVAL(n)                                                                                    \
    {                                                                                              \
        n, P_VALUE, P_OPT                                                                          \
    }
/* *args whose first element is a value (pop's default) */
#define VARG(n)                                                                                    \
    {                                                                                              \
        n, P_VALUE, P_OPT | P_VARARGS                                                              \
    }
/* an optional value where None means "no value" */
#define NVAL(n)                                                                                    \
    {                                                                                              \
        n, P_VALUE, P_OPT | P_NONE                                                                 \
    }
#define STR(n)                                                                                     \
    {                                                                                              \
        n, P_STR, 0                                                                                \
    }
#define OSTR(n)                                                                                    \
    {                                                                                              \
        n, P_STR, P_OPT | P_NONE                                                                   \
    }
#define TBL(n)                                                                                     \
    {                                                                                              \
        n, P_STR, P_TABLE                                                                          \
    }
#define OTBL(n)                                                                                    \
    {                                                                                              \
        n, P_STR, P_OPT | P_NONE | P_TABLE                                                         \
    }
#define OBOOL(n)                                                                                   \
    {                                                                                              \
        n, P_BOOL, P_OPT                                                                           \
    }
#define OINT(n)                                                                                    \
    {                                                                                              \
        n, P_INT, P_OPT | P_NONE                                                                   \
    }
#define LIST(n)                                                                                    \
    {                                                                                              \
        n, P_LIST, 0                                                                               \
    }
#define OLIST(n)                                                                                   \
    {                                                                                              \
        n, P_LIST, P_OPT | P_NONE                                                                  \
    }
#define OBJ(n)                                                                                     \
    {                                                                                              \
        n, P_OBJECT, 0                                                                             \
    }
#define KEYS(n)                                                                                    \
    {                                                                                              \
        n, P_KEYS, 0                                                                               \
    }
#define PAIRS(n)                                                                                   \
    {                                                                                              \
        n, P_PAIRS, 0                                                                              \
    }

#define M(nm, fl, fn, ...)                                                                         \
    {                                                                                              \
        .name = (nm), .nlen = sizeof(nm) - 1, .flags = (fl), .run = (fn), .params = {__VA_ARGS__}, \
        .nparams = sizeof((nana_param[]){__VA_ARGS__}) / sizeof(nana_param)                        \
    }
#define M0(nm, fl, fn)                                                                             \
    {                                                                                              \
        .name = (nm), .nlen = sizeof(nm) - 1, .flags = (fl), .run = (fn), .nparams = 0             \
    }

static const nana_method methods[] = {
    /* dict methods on the request's table */
    M("__getitem__", RD | DICT | NANA_M_CACHED | NANA_M_DUNDER, h_getitem, KEY("key")),
    M("__setitem__", WR | DICT | NANA_M_ASYNC | NANA_M_DUNDER, h_setitem, KEY("key"), VAL("value")),
    M("__delitem__", WR | DICT | NANA_M_DUNDER, h_delitem, KEY("key")),
    M("__contains__", RD | DICT | NANA_M_CACHED | NANA_M_EXISTS | NANA_M_DUNDER, h_contains,
      KEY("key")),
    M0("__len__", RD | DICT | NANA_M_DUNDER, h_len),
    M("get", RD | DICT | NANA_M_CACHED, h_get, KEY("key"), OVAL("default")),
    M("get_fresh", RD | DICT, h_get_fresh, KEY("key"), OVAL("default")),
    M("is_cached", RD | DICT, h_is_cached, KEY("key")),
    M0("clear_cache", RD | DICT, h_clear_cache),
    M0("keys", RD | DICT, h_keys),
    M0("values", RD | DICT, h_values),
    M0("items", RD | DICT, h_items),
    M0("to_dict", RD | DICT, h_to_dict),
    M0("copy", RD | DICT, h_to_dict),
    M("pop", WR | DICT, h_pop, KEY("key"), VARG("args")),
    /* NanaSQLite inherits popitem from collections.abc.MutableMapping */
    {.owner = "MutableMapping", .name = "popitem", .nlen = 7, .flags = WR | DICT, .run = h_popitem},
    M("setdefault", WR | DICT, h_setdefault, KEY("key"), OVAL("default")),
    {.name = "update",
     .nlen = 6,
     .flags = WR | DICT,
     .run = h_update,
     .params = {{"mapping", P_PAIRS, P_OPT | P_NONE}},
     .nparams = 1,
     .var_kwargs = true},
    M0("clear", WR | DICT, h_clear),
    M("batch_update", WR | DICT, h_batch_update, PAIRS("mapping")),
    M("batch_update_partial", WR | DICT, h_batch_update_partial, PAIRS("mapping")),
    M("batch_delete", WR | DICT, h_batch_delete, KEYS("keys")),
    M("batch_get", RD | DICT, h_batch_get, KEYS("keys")),
    M("increment", WR | DICT, h_increment, KEY("key"), OVAL("amount"), OSTR("field"),
      NVAL("default")),
    M("patch", WR | DICT, h_patch, KEY("key"), OBJ("changes"), OBOOL("create")),
    M("get_by_path", RD | DICT, h_get_by_path, KEY("key"), STR("path")),
    /* schema information */
    M("table_exists", RD, h_table_exists, TBL("table_name")),
    M0("list_tables", RD, h_list_tables),
    M("get_table_schema", RD, h_table_schema, TBL("table_name")),
    M("list_indexes", RD, h_list_indexes, OTBL("table_name")),
    M0("get_db_size", RD, h_db_size),
    M0("in_transaction", RD, h_in_transaction),
    M("export_table_to_dict", RD, h_export, TBL("table_name")),
    /* structured writes to any table (no SQL text from the caller) */
    M("upsert", WR, h_upsert, TBL("table_name"), OBJ("data"), OLIST("conflict_columns")),
    M("import_from_dict_list", WR, h_import, TBL("table_name"), LIST("data_list")),
    /* caller-written SQL fragments (validated, but only for accounts that list them) */
    M("query", RD | SQL, h_query, OTBL("table_name"), OLIST("columns"), OSTR("where"),
      OLIST("parameters"), OSTR("order_by"), OINT("limit"), OINT("offset"), OSTR("group_by")),
    M("query_with_pagination", RD | SQL, h_query, OTBL("table_name"), OLIST("columns"),
      OSTR("where"), OLIST("parameters"), OSTR("order_by"), OINT("limit"), OINT("offset"),
      OSTR("group_by")),
    M("count", RD | SQL, h_count, OTBL("table_name"), OSTR("where"), OLIST("parameters")),
    M("exists", RD | SQL, h_exists, OTBL("table_name"), OSTR("where"), OLIST("parameters")),
    M("sql_insert", WR | SQL, h_sql_insert, TBL("table_name"), OBJ("data")),
    M("sql_update", WR | SQL, h_sql_update, TBL("table_name"), OBJ("data"), STR("where"),
      OLIST("parameters")),
    M("sql_delete", WR | SQL, h_sql_delete, TBL("table_name"), STR("where"), OLIST("parameters")),
    /* administration */
    M("create_table", WR | ADMIN, h_create_table, TBL("table_name"), OBJ("columns"),
      OBOOL("if_not_exists"), OSTR("primary_key")),
    M("create_index", WR | ADMIN, h_create_index, STR("index_name"), TBL("table_name"),
      LIST("columns"), OBOOL("unique"), OBOOL("if_not_exists")),
    M("drop_table", WR | ADMIN, h_drop_table, TBL("table_name"), OBOOL("if_exists")),
    M("drop_index", WR | ADMIN, h_drop_index, STR("index_name"), OBOOL("if_exists")),
    M("alter_table_add_column", WR | ADMIN, h_add_column, TBL("table_name"), STR("column_name"),
      STR("column_type"), NVAL("default")),
    M0("vacuum", WR | ADMIN, h_vacuum),
    M("pragma", WR | ADMIN, h_pragma, STR("pragma_name"), NVAL("value")),
    M("backup", WR | ADMIN, h_backup, STR("dest_path")),
    M("restore", WR | ADMIN, h_restore, STR("src_path")),
    /* NanaSQLite has these, but they need one caller's connection or raw SQL */
    M0("execute", LOCAL | WR, NULL),
    M0("execute_many", LOCAL | WR, NULL),
    M0("fetch_one", LOCAL | RD, NULL),
    M0("fetch_all", LOCAL | RD, NULL),
    M0("begin_transaction", LOCAL | WR, NULL),
    M0("commit", LOCAL | WR, NULL),
    M0("rollback", LOCAL | WR, NULL),
    M0("transaction", LOCAL | WR, NULL),
    M0("get_last_insert_rowid", LOCAL | RD, NULL),
    M0("close", LOCAL, NULL),
    M0("open", LOCAL, NULL),
    M0("connect", LOCAL, NULL),
    M0("__init__", LOCAL, NULL),
    M0("table", LOCAL, NULL),
    M0("get_model", LOCAL, NULL),
    M0("set_model", LOCAL | WR, NULL),
    M0("load_all", LOCAL, NULL),
    M0("refresh", LOCAL, NULL),
    /* AQL queries: a door calls these for a client's range, filter, update and batch */
    M("aql_select", RD | DICT | NANA_M_INTERNAL, h_aql_select, {"query", P_PTR, 0}),
    M("aql_update", WR | DICT | NANA_M_INTERNAL, h_aql_update, {"predicate", P_PTR, 0},
      {"updates", P_PTR, 0}),
    M("aql_batch", WR | NANA_M_INTERNAL, h_aql_batch, {"queries", P_PTR, 0},
      {"collections", P_KEYS, 0}),
    /* a batch of reads only: what a read-only account may run */
    M("aql_batch_read", RD | NANA_M_INTERNAL, h_aql_batch, {"queries", P_PTR, 0},
      {"collections", P_KEYS, 0}),
};

#define NMETHODS (sizeof(methods) / sizeof(methods[0]))

const nana_method *nana_method_find(const char *name, size_t len)
{
    for (size_t i = 0; i < NMETHODS; i++) {
        if (methods[i].nlen == len && memcmp(methods[i].name, name, len) == 0)
            return (methods[i].flags & NANA_M_INTERNAL) ? NULL : &methods[i];
    }
    return NULL;
}

const nana_method *nana_method_find_internal(const char *name)
{
    size_t len = strlen(name);
    for (size_t i = 0; i < NMETHODS; i++) {
        if ((methods[i].flags & NANA_M_INTERNAL) && methods[i].nlen == len &&
            memcmp(methods[i].name, name, len) == 0)
            return &methods[i];
    }
    return NULL;
}

const char *nana_method_name(const nana_method *m)
{
    return m->name;
}

unsigned nana_method_flags(const nana_method *m)
{
    return m->flags;
}

nana_bind_spec nana_method_spec(const nana_method *m)
{
    return (nana_bind_spec){m->owner, m->name, m->params, m->nparams, m->var_kwargs};
}

size_t nana_method_count(void)
{
    return NMETHODS;
}

const nana_method *nana_method_at(size_t i)
{
    return i < NMETHODS ? &methods[i] : NULL;
}

/* ---- policy ------------------------------------------------------------------ */

static int forbidden(const nana_core_call *c, nana_error *err)
{
    int shown = c->mlen > 64 ? 64 : (int)c->mlen;
    return nana_error_setf(err, NANA_ERR_PERM, "Method '%.*s' is forbidden or invalid", shown,
                           c->method ? c->method : "");
}

int nana_core_allowed(const nana_core_call *c, const char *dbname, nana_error *err)
{
    if (!c->m) return forbidden(c, err);
    unsigned fl = c->m->flags;
    /* Of the names that start with "_", only the listed dunders are callable. */
    if (c->method[0] == '_' && !(fl & NANA_M_DUNDER)) return forbidden(c, err);
    const nana_account *a = c->acct;
    bool listed = false, refused = false;
    if (a) listed = nana_account_method_listed(a, c->m->name, &refused);
    if (refused) return forbidden(c, err);
    if (a && !a->default_methods) {
        if (!listed) return forbidden(c, err);
    } else if (fl & (NANA_M_ADMIN | NANA_M_SQL)) {
        return forbidden(c, err);
    }
    if (a && a->read_only && (fl & NANA_M_WRITE))
        return nana_error_setf(err, NANA_ERR_PERM, "Account '%s' is read-only: '%s' writes",
                               a->name, c->m->name);
    if (a && !nana_account_db_allowed(a, dbname))
        return nana_error_setf(err, NANA_ERR_PERM,
                               "Database '%.64s' is not allowed for account '%s'", dbname, a->name);
    if (c->early && !(fl & NANA_M_REPLAY_SAFE))
        return nana_error_setf(err, NANA_ERR_TOOEARLY,
                               "Method '%s' may not run from early (0-RTT) data: send it again "
                               "once the handshake is done",
                               c->m->name);
    return NANA_OK;
}

/* The account's table allow-list, for the tables the bound call touches. */
static int tables_allowed(const nana_method *m, const nana_arg *a, const nana_run_env *env,
                          nana_error *err)
{
    if (!env->acct) return NANA_OK;
    const char *deflt = nana_table_name(nana_store_default_table(env->store));
    if ((m->flags & NANA_M_DICT) && env->table) {
        const char *t = nana_table_name(env->table);
        if (!nana_account_table_allowed(env->acct, env->dbname, t))
            return nana_error_setf(err, NANA_ERR_PERM, "Table '%s' is not allowed for account '%s'",
                                   t, env->acct->name);
    }
    for (unsigned i = 0; i < m->nparams; i++) {
        if (!(m->params[i].flags & P_TABLE)) continue;
        const char *t = a[i].set ? a[i].s : deflt;
        if (!nana_account_table_allowed(env->acct, env->dbname, t))
            return nana_error_setf(err, NANA_ERR_PERM,
                                   "Table '%.128s' is not allowed for account '%s'", t,
                                   env->acct->name);
    }
    return NANA_OK;
}

/* ---- running ------------------------------------------------------------------- */

/*
 * The error of a failed method, from the store's detail message: a missing
 * key's KeyError carries Python's repr() of the key (cut after 200 bytes,
 * never inside a character), as NanaSQLite's does.
 */
static int method_error(const nana_method *m, const nana_arg *a, int rc, nana_error *err)
{
    nana_error_capture(err, rc);
    if (rc == NANA_ERR_NOTFOUND && m->nparams && m->params[0].type == P_KEY && a[0].set) {
        nana_buf r;
        nana_buf_init(&r, 0);
        size_t shown = a[0].n > 200 ? 200 : a[0].n;
        while (shown > 0 && shown < a[0].n && ((unsigned char)a[0].s[shown] & 0xC0) == 0x80)
            shown--;
        if (!nana_py_repr_str(&r, a[0].s, shown))
            snprintf(err->msg, sizeof(err->msg), "%s%s", r.data, shown < a[0].n ? "..." : "");
        nana_buf_free(&r);
    }
    return rc;
}

int nana_method_run(const nana_method *m, const nana_run_env *env, const nana_args *args,
                    nana_arena *arena, nana_core_result *res, nana_error *err)
{
    nana_core_result_clear(res);
    if (m->flags & NANA_M_LOCAL)
        return nana_error_setf(err, NANA_ERR_UNAVAILABLE,
                               "Method '%s' is not available over the network (it needs a "
                               "caller's own connection or raw SQL)",
                               m->name);
    int rc = tables_allowed(m, args->a, env, err);
    if (rc) return rc;
    if ((m->flags & NANA_M_DICT) && !env->table)
        return nana_error_setf(err, NANA_ERR_INTERNAL, "no table for a dict method");
    exec x = {env, args->a, args->extra, args->nextra, res, arena};
    rc = m->run(&x);
    if (rc) {
        nana_core_result_clear(res);
        return method_error(m, args->a, rc, err);
    }
    return NANA_OK;
}

/*
 * Appends cached value |v| (JSON text) of |key| in the door's wire form,
 * and keeps that form so the next read of a hot key copies bytes instead
 * of converting on the calling thread: with the cache entry (one
 * allocation to touch per read) when it is small, else with the value
 * (nana_val_alt, when no other door's form is there already).
 */
static int put_cached_value(nana_buf *out, nana_table *t, const char *key, size_t klen, nana_val *v,
                            const nana_door_ops *door)
{
    nana_val *alt = nana_val_alt(v);
    if (alt && alt->form == door->form) return nana_buf_append(out, alt->data, alt->len);
    size_t start = out->len;
    int rc = door->encode(out, v->data, v->len);
    if (rc) return rc;
    const char *enc = out->data + start;
    size_t elen = out->len - start;
    if (nana_kv_keep_encoded(t, key, klen, v, door->form, enc, elen) || alt) return NANA_OK;
    nana_val *made = nana_val_new(enc, elen);
    if (made) {
        made->form = door->form;
        nana_val_set_alt(v, made); /* without it the next read converts again */
    }
    return NANA_OK;
}

int nana_method_try_cached(const nana_method *m, nana_table *t, const char *key, size_t klen,
                           const nana_door_ops *door, nana_buf *enc, nana_core_result *res)
{
    nana_val *v = NULL;
    int hit;
    if ((m->flags & NANA_M_EXISTS) || !enc) {
        hit = nana_kv_get_cached(t, key, klen, &v);
        if (hit <= 0) return hit;
        if (m->flags & NANA_M_EXISTS) {
            nana_val_unref(v);
            res->kind = NANA_RES_BOOL;
            res->b = true;
            return 1;
        }
        res->kind = NANA_RES_VAL;
        res->v = v;
        return 1;
    }
    size_t start = enc->len;
    hit = nana_kv_get_cached_encoded(t, key, klen, door->form, enc, &v);
    int rc = NANA_OK;
    if (hit == NANA_CACHED_VALUE) rc = put_cached_value(enc, t, key, klen, v, door);
    nana_val_unref(v);
    if (hit <= 0) return hit;
    if (rc) { /* out of memory: the store's threads answer instead */
        enc->len = start;
        if (enc->data) enc->data[start] = 0;
        return 0;
    }
    res->kind = NANA_RES_ENCODED;
    return 1;
}
