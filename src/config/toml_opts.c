/*
 * toml_opts.c - a configuration file's settings applied to option tables
 * (nana_toml_apply), and the file as a layer of the command line
 * (nana_toml_config_layer); see nana_toml.h.
 *
 * There is no list of keys here: a key is whatever row of the program's
 * tables names it (.section and nana_opt_key), and its value is turned
 * into the text the flag would take and given to nana_opt_set, so a
 * setting has one type, one range and one set of messages whether it
 * comes from the command line or a file. The file only adds what a flag
 * has no need for: the value's TOML type must be the row's, and its line
 * and column are named in every message.
 */
#include "config/nana_toml.h"

#include "util/nana_err.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* The longest key or section named in a message. */
#define NAME_MAX_SHOWN 64

/* The row of [section] key in |tables|, with its table in *table; or NULL. */
static const nana_opt *find_row(const nana_opt_table *tables, size_t ntables, const char *section,
                                const char *key, const nana_opt_table **table)
{
    char k[96];
    for (size_t t = 0; t < ntables; t++)
        for (size_t i = 0; i < tables[t].n; i++) {
            const nana_opt *row = &tables[t].rows[i];
            if (!(row->flags & NANA_OPT_HIDDEN) && nana_opt_key(row, k, sizeof(k)) &&
                strcmp(row->section, section) == 0 && strcmp(k, key) == 0) {
                *table = &tables[t];
                return row;
            }
        }
    return NULL;
}

/* True if some row of |tables| is in [section]. */
static bool known_section(const nana_opt_table *tables, size_t ntables, const char *section)
{
    for (size_t t = 0; t < ntables; t++)
        for (size_t i = 0; i < tables[t].n; i++) {
            const nana_opt *row = &tables[t].rows[i];
            if (!(row->flags & NANA_OPT_HIDDEN) && row->section &&
                strcmp(row->section, section) == 0)
                return true;
        }
    return false;
}

/* What a row takes, for "expected ...". */
static const char *expected(const nana_opt *row)
{
    switch (row->kind) {
    case NANA_OPT_FLAG:
        return "true or false";
    case NANA_OPT_UINT:
        return "an integer";
    case NANA_OPT_DOUBLE:
        return "a number";
    default:
        return "a string";
    }
}

/*
 * The text of a string value for |row|: a relative path joined to |dir|
 * (in |strings|), anything else as it is (it lives in the document).
 */
static int string_text(const nana_opt *row, const nana_toml_value *v, const char *dir,
                       nana_arena *strings, const char **text)
{
    *text = v->u.str.s;
    if (row->kind != NANA_OPT_PATH || !dir || !*dir || v->u.str.s[0] == '/' || !v->u.str.s[0])
        return NANA_OK;
    size_t dl = strlen(dir);
    bool slash = dir[dl - 1] == '/';
    char *joined = nana_arena_alloc(strings, dl + 1 + v->u.str.len + 1);
    if (!joined) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    snprintf(joined, dl + 1 + v->u.str.len + 1, "%s%s%s", dir, slash ? "" : "/", v->u.str.s);
    *text = joined;
    return NANA_OK;
}

/* Sets |row| (in |table|) from value |v| of [section] key; |who| names it in messages. */
static int apply_value(const nana_opt_table *table, const nana_opt *row, const nana_toml_value *v,
                       const char *who, const char *dir, nana_arena *strings)
{
    char num[64];
    const char *text = NULL;
    bool ok;
    switch (row->kind) {
    case NANA_OPT_FLAG:
        ok = v->type == NANA_TOML_BOOL;
        text = ok && v->u.b ? "true" : "false";
        break;
    case NANA_OPT_UINT:
        ok = v->type == NANA_TOML_INTEGER;
        if (ok && v->u.i < 0)
            return nana_err_set(NANA_ERR_INVALID, "%s: %" PRId64 " is out of range (%llu..%llu)",
                                who, v->u.i, (unsigned long long)row->min,
                                (unsigned long long)row->max);
        snprintf(num, sizeof(num), "%" PRId64, ok ? v->u.i : 0);
        text = num;
        break;
    case NANA_OPT_DOUBLE:
        ok = v->type == NANA_TOML_INTEGER || v->type == NANA_TOML_FLOAT;
        if (v->type == NANA_TOML_FLOAT)
            snprintf(num, sizeof(num), "%.17g", v->u.f);
        else
            snprintf(num, sizeof(num), "%" PRId64, ok ? v->u.i : 0);
        text = num;
        break;
    default:
        ok = v->type == NANA_TOML_STRING;
        if (ok) {
            int rc = string_text(row, v, dir, strings, &text);
            if (rc) return rc;
        }
        break;
    }
    if (!ok)
        return nana_err_set(NANA_ERR_INVALID, "%s: expected %s, found %s", who, expected(row),
                            nana_toml_type_name(v->type));
    return nana_opt_set(row, table->base, text, who);
}

/* Applies the keys of one [section]. */
static int apply_section(const nana_toml_kv *sec, const char *dir, const nana_opt_table *tables,
                         size_t ntables, nana_arena *strings)
{
    const nana_toml_table *t = sec->val.u.table;
    for (size_t i = 0; i < nana_toml_table_size(t); i++) {
        const nana_toml_kv *e = nana_toml_table_at(t, i);
        const nana_opt_table *table = NULL;
        const nana_opt *row = find_row(tables, ntables, sec->key, e->key, &table);
        if (!row)
            return nana_err_set(NANA_ERR_INVALID, "unknown key [%.*s] %.*s at line %u, column %u",
                                NAME_MAX_SHOWN, sec->key, NAME_MAX_SHOWN, e->key, e->line, e->col);
        char who[192];
        snprintf(who, sizeof(who), "[%s] %s at line %u, column %u", sec->key, e->key, e->val.line,
                 e->val.col);
        int rc = apply_value(table, row, &e->val, who, dir, strings);
        if (rc) return rc;
    }
    return NANA_OK;
}

int nana_toml_apply(const nana_toml_doc *doc, const char *dir, const nana_opt_table *tables,
                    size_t ntables, nana_arena *strings)
{
    const nana_toml_table *root = nana_toml_root(doc);
    for (size_t i = 0; i < nana_toml_table_size(root); i++) {
        const nana_toml_kv *e = nana_toml_table_at(root, i);
        if (e->val.type != NANA_TOML_TABLE)
            return nana_err_set(NANA_ERR_INVALID,
                                "unknown key %.*s at line %u, column %u: every setting is in a "
                                "[section]",
                                NAME_MAX_SHOWN, e->key, e->line, e->col);
        if (!known_section(tables, ntables, e->key))
            return nana_err_set(NANA_ERR_INVALID, "unknown section [%.*s] at line %u, column %u",
                                NAME_MAX_SHOWN, e->key, e->val.line, e->val.col);
        int rc = apply_section(e, dir, tables, ntables, strings);
        if (rc) return rc;
    }
    return NANA_OK;
}

/* ---- the layer ----------------------------------------------------------------------------- */

/* Prefixes the current message with "<path>: ". */
static int with_path(int rc, const char *path)
{
    char msg[NANA_ERRMSG_MAX];
    snprintf(msg, sizeof(msg), "%s", nana_errmsg());
    return nana_err_set(rc, "%s: %s", path, msg);
}

int nana_toml_config_layer(const nana_opt_prog *p, void *config)
{
    nana_toml_config *c = config;
    const char *path = c->path ? *c->path : NULL;
    if (!path) return 0;
    nana_toml_config_free(c);
    nana_toml_limits lim = c->limits;
    if (!lim.max_bytes) nana_toml_limits_init(&lim);
    int rc = nana_toml_load(path, &lim, &c->doc);
    if (rc) return rc;
    /* Relative paths in the file are relative to the file's folder. */
    const char *slash = strrchr(path, '/');
    char *dir = NULL;
    if (slash) {
        dir = nana_arena_dup(&c->strings, path, slash == path ? 1 : (size_t)(slash - path));
        if (!dir) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    }
    rc = nana_toml_apply(c->doc, dir, p->tables, p->ntables, &c->strings);
    return rc ? with_path(rc, path) : 1;
}

void nana_toml_config_free(nana_toml_config *c)
{
    if (!c) return;
    nana_toml_free(c->doc);
    c->doc = NULL;
    nana_arena_free(&c->strings);
}
