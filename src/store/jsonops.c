/*
 * jsonops.c - operations that look inside a stored JSON value:
 * increment, patch and get_by_path.
 *
 * increment and patch are read-modify-write, so they run entirely on the
 * writer thread (read, compute, write in one op of the group): no other
 * write to the key can fall between the read and the write, which makes
 * them atomic without locks. The new value is computed with our own JSON
 * tree (numbers keep their text) and the result goes to the cache after
 * the commit, like any other write. get_by_path asks SQLite's
 * json_extract, wrapped in json_quote so the answer is always JSON text.
 */
#include "store/store_int.h"

#include "util/nana_json.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct rmw_op {
    nana_wop super;
    const char *key;
    size_t klen;
    /* increment */
    const char *amount;
    size_t alen;
    const char *field; /* NULL: the value itself */
    size_t flen;
    /* increment default / patch changes */
    const char *arg;
    size_t arglen;
    int create;
    nana_val *newval; /* the stored text after the op, for the cache */
} rmw_op;

/* Reads the current value of the op's key on the writer connection. */
static int rmw_read(nana_conn *c, rmw_op *o, nana_val **cur)
{
    *cur = NULL;
    int rc = nana_expire_key_if_dead(c, o->super.tbl, o->key, o->klen);
    if (rc) return rc;
    sqlite3_stmt *st = nana_conn_stmt(c, o->super.tbl->sql[SQL_GET], &rc);
    if (!st) return rc;
    rc = nana_bind_text(st, 1, o->key, o->klen);
    if (!rc) rc = nana_step(c, st, "read");
    if (rc == 1) {
        rc = nana_column_val(st, 0, cur);
    } else if (rc == 0) {
        rc = NANA_ERR_NOTFOUND;
    }
    nana_conn_stmt_done(st);
    return rc;
}

/* Serializes |root| and writes it as the key's new value. */
static int rmw_write(nana_conn *c, rmw_op *o, const nana_json *root)
{
    nana_store *s = o->super.tbl->store;
    nana_buf b;
    nana_buf_init(&b, s->opts.max_value_bytes);
    int rc = nana_json_write(&b, root);
    if (rc == NANA_ERR_TOOBIG)
        rc = nana_err_set(rc, "the new value would exceed the limit of %zu bytes",
                          s->opts.max_value_bytes);
    if (!rc) rc = nana_buf_to_val(&b, &o->newval);
    nana_buf_free(&b);
    if (rc) return rc;
    return nana_exec_set(c, o->super.tbl, o->key, o->klen, o->newval->data, o->newval->len);
}

/* Adds two JSON numbers into a new node *out: exact for int64, else double. */
static int add_numbers(nana_json_doc *d, const nana_json *a, const nana_json *b, nana_json **out)
{
    int64_t x, y;
    if (nana_json_number_is_integer(a) && nana_json_number_is_integer(b)) {
        if (nana_json_number_int64(a, &x) || nana_json_number_int64(b, &y))
            return nana_err_set(NANA_ERR_TOOBIG, "increment of an integer beyond 64 bits");
        int64_t r;
        if (__builtin_add_overflow(x, y, &r))
            return nana_err_set(NANA_ERR_TOOBIG, "increment overflows a 64-bit integer");
        *out = nana_json_new_int(d, r);
        return *out ? NANA_OK : NANA_ERR_NOMEM;
    }
    double p, q;
    if (nana_json_number_double(a, &p) || nana_json_number_double(b, &q))
        return nana_err_set(NANA_ERR_TYPE, "increment needs numbers");
    double r = p + q;
    if (!isfinite(r)) return nana_err_set(NANA_ERR_INVALID, "increment result is not finite");
    *out = nana_json_new_double(d, r);
    return *out ? NANA_OK : NANA_ERR_NOMEM;
}

static int increment_exec(nana_wop *op, nana_conn *c)
{
    rmw_op *o = (rmw_op *)op;
    nana_val_unref(o->newval);
    o->newval = NULL;
    nana_json_doc *d = NULL, *ad = NULL;
    nana_json *root = NULL, *amount = NULL;
    nana_val *cur = NULL;
    int rc = nana_json_parse(o->amount, o->alen, 0, 1, &ad, &amount);
    if (rc) goto out;
    rc = rmw_read(c, o, &cur);
    if (rc == NANA_OK && cur) {
        rc = nana_json_parse(cur->data, cur->len, NANA_JSON_ALLOW_NONFINITE,
                             o->super.tbl->store->opts.max_json_depth, &d, &root);
        if (rc) rc = nana_err_set(NANA_ERR_TYPE, "the stored value is not valid JSON");
    } else if (rc == NANA_ERR_NOTFOUND) {
        if (o->arg) {
            rc = nana_json_parse(o->arg, o->arglen, 0, o->super.tbl->store->opts.max_json_depth, &d,
                                 &root);
        } else {
            d = nana_json_doc_new();
            rc = d ? NANA_OK : nana_err_set(NANA_ERR_NOMEM, "out of memory");
            if (!rc) root = o->field ? nana_json_new_object(d) : nana_json_new_int(d, 0);
            if (!rc && !root) rc = NANA_ERR_NOMEM;
        }
    }
    if (rc) goto out;
    if (!root || !amount) {
        rc = nana_err_set(NANA_ERR_INTERNAL, "increment: no value");
        goto out;
    }

    nana_json *target = root;
    if (o->field) {
        if (root->type != NANA_JSON_OBJECT) {
            rc = nana_err_set(NANA_ERR_TYPE, "increment with a field needs an object value");
            goto out;
        }
        target = nana_json_object_get(root, o->field, o->flen);
        if (!target) target = nana_json_new_int(d, 0);
        if (!target) {
            rc = NANA_ERR_NOMEM;
            goto out;
        }
    }
    if (target->type != NANA_JSON_NUMBER) {
        rc = nana_err_set(NANA_ERR_TYPE, "cannot increment a value that is not a number");
        goto out;
    }
    nana_json *sum = NULL;
    rc = add_numbers(d, target, amount, &sum);
    if (rc) goto out;
    if (o->field) {
        rc = nana_json_object_set(d, root, o->field, o->flen, sum);
        if (rc) goto out;
    } else {
        root = sum;
    }
    /* The result first: nothing may fail after the row is written. */
    op->result = nana_val_new(sum->u.str, sum->n);
    if (!op->result) {
        rc = NANA_ERR_NOMEM;
        goto out;
    }
    rc = rmw_write(c, o, root);
out:
    nana_val_unref(cur);
    nana_json_doc_free(d);
    nana_json_doc_free(ad);
    return rc;
}

static void rmw_apply(nana_wop *op)
{
    rmw_op *o = (rmw_op *)op;
    if (o->newval)
        nana_cache_put(&op->tbl->cache, o->key, o->klen, o->newval, nana_store_now(op->tbl->store));
}

/* Queues a read-modify-write op, waits, and hands its result to *out (may be NULL). */
static int run_rmw(nana_store *s, rmw_op *o, nana_val **out)
{
    int rc = nana_writer_run(s, &o->super);
    nana_val_unref(o->newval);
    if (rc) return rc;
    if (out)
        *out = o->super.result;
    else
        nana_val_unref(o->super.result);
    return NANA_OK;
}

/* Checks that |json| is one JSON number (not a boolean or anything else). */
static int check_number(const char *json, size_t n, const char *what)
{
    nana_json_doc *d;
    nana_json *v;
    int rc = nana_json_parse(json, n, 0, 1, &d, &v);
    if (rc) return nana_err_set(NANA_ERR_TYPE, "%s must be a number", what);
    bool ok = v->type == NANA_JSON_NUMBER;
    nana_json_doc_free(d);
    if (!ok) return nana_err_set(NANA_ERR_TYPE, "%s must be a number, not another JSON type", what);
    return NANA_OK;
}

int nana_kv_increment(nana_table *t, const char *key, size_t klen, const char *amount, size_t alen,
                      const char *field, size_t flen, const char *def, size_t dlen, nana_val **out)
{
    if (t->store->cluster) return nana_cluster_unsupported("increment");
    nana_store *s = t->store;
    int rc = nana_check_key(s, key, klen);
    if (rc) return rc;
    if (!amount) amount = "1", alen = 1;
    if ((rc = check_number(amount, alen, "amount"))) return rc;
    if (field && !nana_utf8_valid(field, flen))
        return nana_err_set(NANA_ERR_INVALID, "field is not valid UTF-8 text");
    if (def && (rc = nana_check_value(s, def, dlen))) return rc;
    rmw_op o = {.super = {.exec = increment_exec, .apply = rmw_apply, .tbl = t},
                .key = key,
                .klen = klen,
                .amount = amount,
                .alen = alen,
                .field = field,
                .flen = flen,
                .arg = def,
                .arglen = dlen};
    return run_rmw(s, &o, out);
}

static int patch_exec(nana_wop *op, nana_conn *c)
{
    rmw_op *o = (rmw_op *)op;
    nana_val_unref(o->newval);
    o->newval = NULL;
    unsigned depth = o->super.tbl->store->opts.max_json_depth;
    nana_json_doc *d = NULL, *cd = NULL;
    nana_json *root = NULL, *changes = NULL;
    nana_val *cur = NULL;
    int rc = nana_json_parse(o->arg, o->arglen, 0, depth, &cd, &changes);
    if (rc) goto out;
    rc = rmw_read(c, o, &cur);
    if (rc == NANA_ERR_NOTFOUND) {
        if (!o->create) {
            rc = nana_key_missing(o->key, o->klen);
            goto out;
        }
        rc = rmw_write(c, o, changes);
        goto done;
    }
    if (rc || !cur) goto out;
    rc = nana_json_parse(cur->data, cur->len, NANA_JSON_ALLOW_NONFINITE, depth, &d, &root);
    if (rc) {
        rc = nana_err_set(NANA_ERR_TYPE, "the stored value is not valid JSON");
        goto out;
    }
    if (root->type != NANA_JSON_OBJECT) {
        rc = nana_err_set(NANA_ERR_TYPE, "patch needs a stored object");
        goto out;
    }
    for (uint32_t i = 0; i < changes->n; i++) {
        const nana_json_member *m = &changes->u.members[i];
        nana_json *v = nana_json_clone(d, m->val);
        if (!v || (rc = nana_json_object_set(d, root, m->key, m->keylen, v))) {
            rc = rc ? rc : NANA_ERR_NOMEM;
            goto out;
        }
    }
    rc = rmw_write(c, o, root);
done:
    if (!rc) op->result = nana_val_ref(o->newval);
out:
    nana_val_unref(cur);
    nana_json_doc_free(d);
    nana_json_doc_free(cd);
    return rc;
}

int nana_kv_patch(nana_table *t, const char *key, size_t klen, const char *changes, size_t clen,
                  int create, nana_val **out)
{
    if (t->store->cluster) return nana_cluster_unsupported("patch");
    nana_store *s = t->store;
    int rc = nana_check_key(s, key, klen);
    if (!rc) rc = nana_check_value(s, changes, clen);
    if (rc) return rc;
    /* Only an object can be merged: check before queueing. */
    size_t i = 0;
    while (i < clen &&
           (changes[i] == ' ' || changes[i] == '\t' || changes[i] == '\n' || changes[i] == '\r'))
        i++;
    if (i == clen || changes[i] != '{')
        return nana_err_set(NANA_ERR_TYPE, "changes must be an object");
    rmw_op o = {.super = {.exec = patch_exec, .apply = rmw_apply, .tbl = t},
                .key = key,
                .klen = klen,
                .arg = changes,
                .arglen = clen,
                .create = create};
    return run_rmw(s, &o, out);
}

typedef struct path_arg {
    nana_table *t;
    const char *key;
    size_t klen;
    const char *path;
    size_t plen;
    nana_val *val;
} path_arg;

static int read_path(nana_conn *c, void *arg)
{
    path_arg *a = arg;
    int rc;
    sqlite3_stmt *st = nana_conn_stmt(c, a->t->sql[SQL_GET_PATH], &rc);
    if (!st) return rc;
    if (!(rc = nana_bind_text(st, 1, a->path, a->plen)) &&
        !(rc = nana_bind_text(st, 2, a->key, a->klen)))
        rc = nana_step(c, st, "get_by_path");
    if (rc == 1) {
        rc = nana_column_val(st, 0, &a->val);
    } else if (rc == 0) {
        rc = nana_key_missing(a->key, a->klen);
    } else if (rc == NANA_ERR_DB && strstr(nana_errmsg(), "JSON path")) {
        rc = nana_err_set(NANA_ERR_VALIDATION, "invalid JSON path");
    } else if (rc == NANA_ERR_DB && strstr(nana_errmsg(), "malformed JSON")) {
        rc = nana_err_set(NANA_ERR_TYPE, "the stored value is not valid JSON");
    }
    nana_conn_stmt_done(st);
    return rc;
}

/*
 * Checks a JSON path the way SQLite's json_extract reads it, so a bad path
 * is refused whatever the stored value holds (SQLite only notices a bad
 * segment when it gets that far): "$" then any of .name, ."quoted name",
 * [N], [#], [#-N].
 */
static int check_path(const char *p, size_t n)
{
    if (n == 0 || p[0] != '$')
        return nana_err_set(NANA_ERR_VALIDATION, "a JSON path starts with '$'");
    if (n > 1024) return nana_err_set(NANA_ERR_TOOBIG, "JSON path longer than 1024 bytes");
    if (!nana_utf8_valid(p, n) || memchr(p, '\0', n))
        return nana_err_set(NANA_ERR_VALIDATION, "JSON path is not valid text");
    size_t i = 1;
    while (i < n) {
        if (p[i] == '.') {
            i++;
            if (i < n && p[i] == '"') {
                const char *q = memchr(p + i + 1, '"', n - i - 1);
                if (!q) break;
                i = (size_t)(q - p) + 1;
                continue;
            }
            size_t start = i;
            while (i < n && p[i] != '.' && p[i] != '[')
                i++;
            if (i == start) break;
        } else if (p[i] == '[') {
            i++;
            if (i < n && p[i] == '#') {
                i++;
                if (i < n && p[i] == '-') {
                    i++;
                    if (i >= n || p[i] < '0' || p[i] > '9') break;
                }
            } else if (i >= n || p[i] < '0' || p[i] > '9') {
                break;
            }
            while (i < n && p[i] >= '0' && p[i] <= '9')
                i++;
            if (i >= n || p[i] != ']') break;
            i++;
        } else {
            break;
        }
    }
    if (i < n || (n > 1 && (p[n - 1] == '.' || p[n - 1] == '[')))
        return nana_err_set(NANA_ERR_VALIDATION, "invalid JSON path near byte %zu", i);
    return NANA_OK;
}

int nana_kv_get_by_path(nana_table *t, const char *key, size_t klen, const char *path, size_t plen,
                        nana_val **out)
{
    if (t->store->cluster) return nana_cluster_unsupported("get_by_path");
    nana_store *s = t->store;
    int rc = nana_check_key(s, key, klen);
    if (!rc) rc = check_path(path, plen);
    if (rc) return rc;
    nana_val *v;
    uint64_t seq;
    int expired;
    if (nana_cache_get(&t->cache, key, klen, nana_store_now(s), &v, &seq, &expired))
        nana_val_unref(v);
    else if (expired)
        return nana_key_missing(key, klen);
    path_arg a = {.t = t, .key = key, .klen = klen, .path = path, .plen = plen};
    rc = nana_store_read(s, read_path, &a);
    if (rc) return rc;
    *out = a.val;
    return NANA_OK;
}
