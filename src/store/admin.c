/*
 * admin.c - utilities on the whole database file: vacuum, size, pragma,
 * online backup and restore.
 *
 * backup copies a consistent snapshot from a reader connection, so
 * writers keep going meanwhile. restore is the reverse: the writer copies
 * the source database over ours with the online backup API (in place, so
 * every connection sees the new content at its next read), re-creates
 * our NanaSQLite tables if the source lacks them, and empties the caches.
 */
#include "store/store_int.h"

#include "util/nana_json.h"

#include <ctype.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* ------------------------------------------------------------------ */
/* vacuum, size                                                         */
/* ------------------------------------------------------------------ */

static int vacuum_exec(nana_wop *op, nana_conn *c)
{
    (void)op;
    return nana_conn_exec(c, "VACUUM");
}

int nana_store_vacuum(nana_store *s)
{
    if (s->cluster) return nana_cluster_unsupported("vacuum");
    nana_wop op = {.exec = vacuum_exec, .flags = WOP_ALONE, .tbl = s->default_table};
    return nana_writer_run(s, &op);
}

int nana_store_db_size(nana_store *s, int64_t *bytes)
{
    if (s->cluster) return nana_cluster_unsupported("db_size");
    struct stat st;
    if (stat(s->path, &st) != 0)
        return nana_err_set(NANA_ERR_IO, "cannot read the size of the database file");
    *bytes = (int64_t)st.st_size;
    return NANA_OK;
}

/* ------------------------------------------------------------------ */
/* pragma                                                               */
/* ------------------------------------------------------------------ */

/* NanaSQLite's allow-list; 'ro' ones may be read but not set here. */
static const struct {
    const char *name;
    bool ro;
    bool takes_name; /* value is a table/index name; returns all rows */
} pragmas[] = {
    {"foreign_keys", false, false},
    {"journal_mode", true, false},
    {"synchronous", true, false},
    {"cache_size", false, false},
    {"temp_store", false, false},
    {"locking_mode", true, false},
    {"auto_vacuum", false, false},
    {"page_size", true, false},
    {"encoding", true, false},
    {"user_version", false, false},
    {"schema_version", true, false},
    {"wal_autocheckpoint", true, false},
    {"busy_timeout", false, false},
    {"query_only", true, false},
    {"recursive_triggers", false, false},
    {"secure_delete", false, false},
    {"table_info", false, true},
    {"index_list", false, true},
    {"index_info", false, true},
    {"database_list", true, false},
};

typedef struct pragma_op {
    nana_wop super;
    char sql[200];
    bool all_rows; /* return every row as objects (table_info ...) */
    bool set;
} pragma_op;

/* Appends a column value of a pragma result as JSON. */
static int put_pragma_value(nana_buf *b, sqlite3_stmt *st, int i)
{
    switch (sqlite3_column_type(st, i)) {
    case SQLITE_INTEGER:
        return nana_buf_printf(b, "%lld", (long long)sqlite3_column_int64(st, i));
    case SQLITE_FLOAT:
        return nana_json_write_double(b, sqlite3_column_double(st, i));
    case SQLITE_NULL:
        return nana_buf_puts(b, "null");
    default:
        return nana_buf_put_key(b, st, i);
    }
}

static int pragma_exec(nana_wop *op, nana_conn *c)
{
    pragma_op *o = (pragma_op *)op;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(c->db, o->sql, -1, &st, NULL);
    if (rc != SQLITE_OK) return nana_conn_err(c, rc, "pragma");
    nana_buf b;
    nana_buf_init(&b, 0);
    rc = 0;
    if (o->all_rows) rc = nana_buf_putc(&b, '[');
    bool first = true, any = false;
    while (!rc && (rc = nana_step(c, st, "pragma")) == 1) {
        rc = 0;
        any = true;
        if (o->set) continue;
        if (!o->all_rows) {
            if (first) rc = put_pragma_value(&b, st, 0);
            first = false;
            continue;
        }
        if (!first) rc = nana_buf_putc(&b, ',');
        first = false;
        if (!rc) rc = nana_buf_putc(&b, '{');
        for (int i = 0; !rc && i < sqlite3_column_count(st); i++) {
            const char *name = sqlite3_column_name(st, i);
            if (i) rc = nana_buf_putc(&b, ',');
            if (!rc) rc = nana_json_write_string(&b, name, strlen(name));
            if (!rc) rc = nana_buf_putc(&b, ':');
            if (!rc) rc = put_pragma_value(&b, st, i);
        }
        if (!rc) rc = nana_buf_putc(&b, '}');
    }
    sqlite3_finalize(st);
    if (!rc && o->all_rows) rc = nana_buf_putc(&b, ']');
    if (!rc && (o->set || (!o->all_rows && !any))) rc = nana_buf_puts(&b, "null");
    if (!rc) rc = nana_buf_to_val(&b, &op->result);
    nana_buf_free(&b);
    return rc;
}

/* Renders a pragma value from JSON: a number, a boolean, or a simple word. */
static int pragma_value(const char *json, char *out, size_t outlen)
{
    nana_json_doc *d = NULL;
    nana_json *v = NULL;
    int rc = nana_json_parse(json, strlen(json), 0, 1, &d, &v);
    if (rc) return nana_err_set(NANA_ERR_JSON, "PRAGMA value is not valid JSON");
    rc = NANA_OK;
    if (v->type == NANA_JSON_NUMBER && v->n < outlen) {
        snprintf(out, outlen, "%s", v->u.str);
    } else if (v->type == NANA_JSON_TRUE || v->type == NANA_JSON_FALSE) {
        snprintf(out, outlen, "%d", v->type == NANA_JSON_TRUE);
    } else if (v->type == NANA_JSON_STRING && v->n > 0 && v->n < outlen - 2) {
        for (uint32_t i = 0; i < v->n; i++) {
            unsigned char ch = (unsigned char)v->u.str[i];
            if (!(isalnum(ch) || ch == '_' || ch == '-' || ch == '.'))
                rc = nana_err_set(NANA_ERR_VALIDATION,
                                  "PRAGMA string value must contain only alphanumeric, "
                                  "underscore, dash, or dot characters");
        }
        if (!rc) snprintf(out, outlen, "'%s'", v->u.str);
    } else {
        rc = nana_err_set(NANA_ERR_VALIDATION, "PRAGMA value must be a number, boolean or word");
    }
    nana_json_doc_free(d);
    return rc;
}

int nana_store_pragma(nana_store *s, const char *name, const char *value, nana_val **out)
{
    if (s->cluster) return nana_cluster_unsupported("pragma");
    size_t idx = sizeof(pragmas) / sizeof(pragmas[0]);
    for (size_t i = 0; name && i < sizeof(pragmas) / sizeof(pragmas[0]); i++)
        if (strcmp(pragmas[i].name, name) == 0) idx = i;
    if (idx == sizeof(pragmas) / sizeof(pragmas[0]))
        return nana_err_set(NANA_ERR_VALIDATION, "PRAGMA '%.64s' is not allowed", name ? name : "");
    pragma_op o = {.super = {.exec = pragma_exec, .flags = WOP_READ, .tbl = s->default_table}};
    if (pragmas[idx].takes_name) {
        /* table_info("name"): the value names a table or index. */
        if (!value) {
            *out = nana_val_new("null", 4);
            return *out ? NANA_OK : NANA_ERR_NOMEM;
        }
        nana_json_doc *d = NULL;
        nana_json *v = NULL;
        int rc = nana_json_parse(value, strlen(value), 0, 1, &d, &v);
        if (!rc && (v->type != NANA_JSON_STRING || !nana_identifier_valid(v->u.str)))
            rc = nana_err_set(NANA_ERR_VALIDATION, "PRAGMA %s needs a table or index name", name);
        if (!rc) snprintf(o.sql, sizeof(o.sql), "PRAGMA %s(\"%s\")", name, v->u.str);
        nana_json_doc_free(d);
        if (rc)
            return rc == NANA_ERR_JSON ? nana_err_set(rc, "PRAGMA value is not valid JSON") : rc;
        o.all_rows = true;
    } else if (value) {
        if (pragmas[idx].ro)
            return nana_err_set(NANA_ERR_VALIDATION,
                                "PRAGMA %s can be read but not set through pragma()", name);
        char v[64];
        int rc = pragma_value(value, v, sizeof(v));
        if (rc) return rc;
        snprintf(o.sql, sizeof(o.sql), "PRAGMA %s=%s", name, v);
        o.set = true;
        o.super.flags = WOP_ALONE;
    } else {
        snprintf(o.sql, sizeof(o.sql), "PRAGMA %s", name);
    }
    /* Settings go to the writer, so WOP_READ must not bypass a read-only store. */
    if (o.set && s->opts.read_only)
        return nana_err_set(NANA_ERR_READONLY, "the store was opened read-only");
    int rc = nana_writer_run(s, &o.super);
    if (rc) return rc;
    *out = o.super.result;
    return NANA_OK;
}

/* ------------------------------------------------------------------ */
/* backup, restore                                                      */
/* ------------------------------------------------------------------ */

/*
 * The canonical absolute form of |path|: its directory resolved with
 * realpath() (so "..", "." and linked directories are gone) plus its last
 * component, which must not itself be a symbolic link. Caller frees.
 */
static int canonical_path(const char *path, const char *what, char **out)
{
    *out = NULL;
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    if (!base[0] || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
        return nana_err_set(NANA_ERR_VALIDATION, "%s must name a file", what);
    char *dir = slash ? strndup(path, (size_t)(slash - path) + (slash == path)) : strdup(".");
    if (!dir) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    char *real = realpath(dir, NULL);
    free(dir);
    if (!real) return nana_err_set(NANA_ERR_VALIDATION, "the directory of %s does not exist", what);
    size_t n = strlen(real) + strlen(base) + 2;
    char *full = malloc(n);
    if (!full) {
        free(real);
        return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    }
    snprintf(full, n, "%s%s%s", real, strcmp(real, "/") == 0 ? "" : "/", base);
    free(real);
    struct stat st;
    if (lstat(full, &st) == 0 && S_ISLNK(st.st_mode)) {
        free(full);
        return nana_err_set(NANA_ERR_VALIDATION, "%s must not be a symbolic link", what);
    }
    *out = full;
    return NANA_OK;
}

/* True if the path component at |p| (up to '/' or the end) begins with a
 * URI scheme: a letter, then letters, digits, '+', '-' or '.', then ':'. */
static bool component_has_scheme(const char *p)
{
    if (!isalpha((unsigned char)*p)) return false;
    for (p++; *p && *p != '/'; p++) {
        if (*p == ':') return true;
        if (!isalnum((unsigned char)*p) && *p != '+' && *p != '-' && *p != '.') return false;
    }
    return false;
}

/*
 * The form of a backup or restore path, before anything is resolved: at
 * most PATH_MAX - 1 bytes, a file name (last component) of at most
 * NANA_MAX_BACKUP_NAME bytes, ":memory:" refused, and no component that
 * begins with a URI scheme ("file:", "http:"...), whatever SQLite would
 * make of it.
 */
static int check_path_form(const char *path, const char *what)
{
    size_t n = strlen(path);
    if (strcmp(path, ":memory:") == 0)
        return nana_err_set(NANA_ERR_VALIDATION,
                            "%s must be a file path, not an in-memory or URI database", what);
    for (const char *p = path; p;) {
        if (component_has_scheme(p))
            return nana_err_set(NANA_ERR_VALIDATION,
                                "%s must be a file path, not an in-memory or URI database "
                                "(no part of it may begin with a scheme such as 'file:')",
                                what);
        const char *slash = strchr(p, '/');
        p = slash ? slash + 1 : NULL;
    }
    if (n >= PATH_MAX)
        return nana_err_set(NANA_ERR_VALIDATION, "%s is %zu bytes; the limit is %d", what, n,
                            PATH_MAX - 1);
    const char *slash = strrchr(path, '/');
    size_t base = n - (slash ? (size_t)(slash + 1 - path) : 0);
    if (base > NANA_MAX_BACKUP_NAME)
        return nana_err_set(NANA_ERR_VALIDATION,
                            "the file name of %s is %zu bytes; the limit is %d", what, base,
                            NANA_MAX_BACKUP_NAME);
    return NANA_OK;
}

/*
 * Checks a backup destination or restore source: a file path (no
 * in-memory or URI name), none of the database's own files (the main
 * file, -wal, -shm, -journal), and inside backup_dir when one is set.
 */
static int check_other_file(nana_store *s, const char *path, const char *what)
{
    if (!path || !path[0]) return nana_err_set(NANA_ERR_VALIDATION, "%s is empty", what);
    int rc = check_path_form(path, what);
    if (rc) return rc;
    char *full;
    if ((rc = canonical_path(path, what, &full))) return rc;
    size_t n = strlen(s->canon_path);
    if (strncmp(full, s->canon_path, n) == 0 &&
        (full[n] == '\0' || strcmp(full + n, "-wal") == 0 || strcmp(full + n, "-shm") == 0 ||
         strcmp(full + n, "-journal") == 0))
        rc =
            nana_err_set(NANA_ERR_VALIDATION,
                         "%s must not be the current database file or one of its companions", what);
    struct stat a, b;
    if (!rc && stat(full, &a) == 0 && stat(s->canon_path, &b) == 0 && a.st_dev == b.st_dev &&
        a.st_ino == b.st_ino)
        rc = nana_err_set(NANA_ERR_VALIDATION,
                          "%s must not be the same as the current database file", what);
    if (!rc && s->backup_dir) {
        size_t d = strlen(s->backup_dir);
        if (strncmp(full, s->backup_dir, d) != 0 || full[d] != '/')
            rc = nana_err_set(NANA_ERR_PERM, "%s must be inside the backup directory", what);
    }
    free(full);
    return rc;
}

/* Copies all of |src| into |dst| with the online backup API. */
static int copy_db(sqlite3 *dst, sqlite3 *src, const char *what)
{
    sqlite3_backup *bk = sqlite3_backup_init(dst, "main", src, "main");
    if (!bk) return nana_sqlite_err(dst, sqlite3_errcode(dst), what);
    int rc = sqlite3_backup_step(bk, -1);
    int frc = sqlite3_backup_finish(bk);
    if (rc == SQLITE_DONE) rc = frc;
    if (rc == SQLITE_READONLY && sqlite3_errcode(dst) != SQLITE_READONLY)
        return nana_err_set(NANA_ERR_VALIDATION,
                            "%s: the page sizes differ; VACUUM the source with the same page_size",
                            what);
    if (rc != SQLITE_OK) return nana_sqlite_err(dst, rc, what);
    return NANA_OK;
}

typedef struct backup_arg {
    const char *dest;
} backup_arg;

static int read_backup(nana_conn *c, void *arg)
{
    backup_arg *a = arg;
    sqlite3 *dst = NULL;
    int rc = sqlite3_open_v2(a->dest, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        rc = nana_sqlite_err(dst, rc, "backup");
        sqlite3_close(dst);
        return rc;
    }
    rc = copy_db(dst, c->db, "backup");
    sqlite3_close(dst);
    return rc;
}

int nana_store_backup(nana_store *s, const char *dest)
{
    if (s->cluster) return nana_cluster_unsupported("backup");
    int rc = check_other_file(s, dest, "dest_path");
    if (rc) return rc;
    backup_arg a = {.dest = dest};
    /* Outside a transaction this reads a committed snapshot on a reader;
     * inside one the writer runs it (and sees the open transaction). */
    return nana_store_read(s, read_backup, &a);
}

typedef struct restore_op {
    nana_wop super;
    const char *src;
} restore_op;

static int restore_exec(nana_wop *op, nana_conn *c)
{
    restore_op *o = (restore_op *)op;
    nana_store *s = op->tbl->store;
    sqlite3 *src = NULL;
    int rc = sqlite3_open_v2(o->src, &src, SQLITE_OPEN_READONLY, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_stmt *st = NULL;
        rc = sqlite3_prepare_v2(src, "PRAGMA schema_version", -1, &st, NULL);
        if (rc == SQLITE_OK) rc = sqlite3_step(st) == SQLITE_ROW ? SQLITE_OK : sqlite3_errcode(src);
        sqlite3_finalize(st);
    }
    if (rc != SQLITE_OK) {
        rc = nana_sqlite_err(src, rc, "restore");
        sqlite3_close(src);
        return rc;
    }
    rc = copy_db(c->db, src, "restore");
    sqlite3_close(src);
    if (rc) return rc;
    /* The file holds new content now, whatever happens next. */
    nana_store_clear_caches(s);
    /* Our NanaSQLite tables must exist whatever the source held. */
    pthread_mutex_lock(&s->tables_mu);
    nana_table *t = s->tables;
    pthread_mutex_unlock(&s->tables_mu);
    for (; t && !rc; t = t->next)
        rc = nana_conn_exec(c, t->sql[SQL_CREATE]);
    return rc;
}

static void restore_apply(nana_wop *op)
{
    nana_store *s = op->tbl->store;
    nana_store_clear_caches(s);
}

int nana_store_restore(nana_store *s, const char *src)
{
    if (s->cluster) return nana_cluster_unsupported("restore");
    int rc = check_other_file(s, src, "src_path");
    if (rc) return rc;
    struct stat st;
    if (stat(src, &st) != 0 || !S_ISREG(st.st_mode))
        return nana_err_set(NANA_ERR_NOTFOUND, "restore source is not a readable file");
    restore_op o = {.super = {.exec = restore_exec,
                              .apply = restore_apply,
                              .flags = WOP_ALONE,
                              .tbl = s->default_table},
                    .src = src};
    return nana_writer_run(s, &o.super);
}
