/*
 * fuzz_toml.c - libFuzzer harness for the strict TOML subset
 * (src/config/toml_parse.c).
 *
 * Big idea: a round trip. Whatever the parser accepts is checked for what
 * the document promises (strings of their stated length, valid UTF-8
 * with no NUL; positions inside the text; counts and depths within the
 * limits), then written back as TOML by an independent writer here (every
 * key quoted, every table under its full [header], floats to 17 digits)
 * and parsed again: the second document must hold exactly the same
 * tables, keys and values. A refusal must come with a message that names
 * a line and column (or the size limit). Any disagreement aborts.
 */
#include "config/nana_toml.h"
#include "fuzz_check.h"
#include "util/nana_err.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- checks on a parsed document --------------------------------------------------------------
 */

/* True if |s| (|n| bytes) is valid UTF-8 (a plain decoder, written separately from the parser). */
static int utf8_ok(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i], need, v, min;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF)
            need = 1, v = c & 0x1F, min = 0x80;
        else if (c >= 0xE0 && c <= 0xEF)
            need = 2, v = c & 0x0F, min = 0x800;
        else if (c >= 0xF0 && c <= 0xF4)
            need = 3, v = c & 0x07, min = 0x10000;
        else
            return 0;
        if (n - i <= need) return 0;
        for (unsigned k = 1; k <= need; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            v = (v << 6) | (s[i + k] & 0x3F);
        }
        if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
        i += need + 1;
    }
    return 1;
}

typedef struct ctx {
    nana_toml_limits lim;
    unsigned lines; /* lines in the text */
} ctx;

static void check_string(const ctx *c, const char *s, size_t len)
{
    CHECK(s != NULL);
    CHECK(strlen(s) == len);
    CHECK(len <= c->lim.max_string);
    CHECK(utf8_ok((const unsigned char *)s, len));
}

static void check_value(const ctx *c, const nana_toml_value *v, unsigned depth);

static void check_table(const ctx *c, const nana_toml_table *t, unsigned depth)
{
    CHECK(depth <= c->lim.max_depth);
    size_t n = nana_toml_table_size(t);
    CHECK(n <= c->lim.max_keys);
    CHECK(nana_toml_table_at(t, n) == NULL);
    for (size_t i = 0; i < n; i++) {
        const nana_toml_kv *e = nana_toml_table_at(t, i);
        check_string(c, e->key, e->keylen);
        CHECK(e->line >= 1 && e->line <= c->lines && e->col >= 1);
        CHECK(nana_toml_table_get(t, e->key) == &e->val);
        CHECK(depth + 1 <= c->lim.max_depth);
        check_value(c, &e->val, depth + 1);
    }
}

/* |depth|: key parts above a table's keys, or arrays around a value. */
static void check_value(const ctx *c, const nana_toml_value *v, unsigned depth)
{
    CHECK(v->line >= 1 && v->line <= c->lines && v->col >= 1);
    switch (v->type) {
    case NANA_TOML_STRING:
        check_string(c, v->u.str.s, v->u.str.len);
        break;
    case NANA_TOML_FLOAT:
        CHECK(v->u.f - v->u.f == 0); /* finite */
        break;
    case NANA_TOML_INTEGER:
    case NANA_TOML_BOOL:
        break;
    case NANA_TOML_ARRAY:
        CHECK(v->u.arr.n <= c->lim.max_items);
        for (size_t i = 0; i < v->u.arr.n; i++) {
            CHECK(v->u.arr.items[i].type != NANA_TOML_TABLE);
            check_value(c, &v->u.arr.items[i], 0);
        }
        break;
    case NANA_TOML_TABLE:
        check_table(c, v->u.table, depth);
        break;
    default:
        CHECK(0);
    }
}

/* ---- an independent writer ------------------------------------------------------------------- */

typedef struct out {
    char *p;
    size_t n, cap;
} out;

static void put(out *o, const char *s, size_t n)
{
    if (o->n + n + 1 > o->cap) {
        o->cap = (o->n + n + 1) * 2;
        o->p = realloc(o->p, o->cap);
        CHECK(o->p != NULL);
    }
    memcpy(o->p + o->n, s, n);
    o->n += n;
    o->p[o->n] = '\0';
}

static void puts_(out *o, const char *s)
{
    put(o, s, strlen(s));
}

static void put_string(out *o, const char *s, size_t n)
{
    puts_(o, "\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        char esc[8];
        if (ch == '"' || ch == '\\') {
            esc[0] = '\\';
            esc[1] = (char)ch;
            put(o, esc, 2);
        } else if (ch < 0x20 || ch == 0x7F) {
            snprintf(esc, sizeof(esc), "\\u%04X", ch);
            puts_(o, esc);
        } else {
            put(o, s + i, 1);
        }
    }
    puts_(o, "\"");
}

static void put_value(out *o, const nana_toml_value *v)
{
    char num[64];
    switch (v->type) {
    case NANA_TOML_STRING:
        put_string(o, v->u.str.s, v->u.str.len);
        break;
    case NANA_TOML_INTEGER:
        snprintf(num, sizeof(num), "%lld", (long long)v->u.i);
        puts_(o, num);
        break;
    case NANA_TOML_FLOAT:
        snprintf(num, sizeof(num), "%.17g", v->u.f);
        puts_(o, num);
        if (!strpbrk(num, ".e")) puts_(o, ".0");
        break;
    case NANA_TOML_BOOL:
        puts_(o, v->u.b ? "true" : "false");
        break;
    case NANA_TOML_ARRAY:
        puts_(o, "[");
        for (size_t i = 0; i < v->u.arr.n; i++) {
            put_value(o, &v->u.arr.items[i]);
            puts_(o, i + 1 < v->u.arr.n ? ", " : "");
        }
        puts_(o, "]");
        break;
    default:
        CHECK(0);
    }
}

/* Writes |t|'s values, then each sub-table under its full header (|path| of |depth| keys). */
static void put_table(out *o, const nana_toml_table *t, const nana_toml_kv **path, unsigned depth)
{
    size_t n = nana_toml_table_size(t);
    for (size_t i = 0; i < n; i++) {
        const nana_toml_kv *e = nana_toml_table_at(t, i);
        if (e->val.type == NANA_TOML_TABLE) continue;
        put_string(o, e->key, e->keylen);
        puts_(o, " = ");
        put_value(o, &e->val);
        puts_(o, "\n");
    }
    for (size_t i = 0; i < n; i++) {
        const nana_toml_kv *e = nana_toml_table_at(t, i);
        if (e->val.type != NANA_TOML_TABLE) continue;
        path[depth] = e;
        puts_(o, "[");
        for (unsigned k = 0; k <= depth; k++) {
            if (k) puts_(o, ".");
            put_string(o, path[k]->key, path[k]->keylen);
        }
        puts_(o, "]\n");
        put_table(o, e->val.u.table, path, depth + 1);
    }
}

/* ---- comparing two documents ------------------------------------------------------------------
 */

static int same_value(const nana_toml_value *a, const nana_toml_value *b);

static int same_table(const nana_toml_table *a, const nana_toml_table *b)
{
    size_t n = nana_toml_table_size(a);
    if (n != nana_toml_table_size(b)) return 0;
    for (size_t i = 0; i < n; i++) {
        const nana_toml_kv *e = nana_toml_table_at(a, i);
        const nana_toml_value *w = nana_toml_table_get(b, e->key);
        if (!w || !same_value(&e->val, w)) return 0;
    }
    return 1;
}

static int same_value(const nana_toml_value *a, const nana_toml_value *b)
{
    if (a->type != b->type) return 0;
    switch (a->type) {
    case NANA_TOML_STRING:
        return a->u.str.len == b->u.str.len && memcmp(a->u.str.s, b->u.str.s, a->u.str.len) == 0;
    case NANA_TOML_INTEGER:
        return a->u.i == b->u.i;
    case NANA_TOML_FLOAT:
        return memcmp(&a->u.f, &b->u.f, sizeof(double)) == 0;
    case NANA_TOML_BOOL:
        return a->u.b == b->u.b;
    case NANA_TOML_ARRAY:
        if (a->u.arr.n != b->u.arr.n) return 0;
        for (size_t i = 0; i < a->u.arr.n; i++)
            if (!same_value(&a->u.arr.items[i], &b->u.arr.items[i])) return 0;
        return 1;
    case NANA_TOML_TABLE:
        return same_table(a->u.table, b->u.table);
    }
    return 0;
}

/* ---- the harness ----------------------------------------------------------------------------- */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ctx c;
    nana_toml_limits_init(&c.lim);
    c.lim.max_bytes = 1 << 16;
    c.lines = 1;
    for (size_t i = 0; i < size; i++)
        c.lines += data[i] == '\n';
    nana_toml_doc *doc = NULL;
    int rc = nana_toml_parse((const char *)data, size, &c.lim, &doc);
    if (rc) {
        CHECK(doc == NULL);
        CHECK(rc == NANA_ERR_INVALID || rc == NANA_ERR_TOOBIG);
        const char *m = nana_errmsg();
        CHECK(strncmp(m, "line ", 5) == 0 || strstr(m, "bytes, more than the limit") != NULL);
        return 0;
    }
    CHECK(doc != NULL);
    const nana_toml_table *root = nana_toml_root(doc);
    check_table(&c, root, 0);

    out o = {NULL, 0, 0};
    const nana_toml_kv *path[64];
    CHECK(c.lim.max_depth <= 64);
    put_table(&o, root, path, 0);
    nana_toml_limits again = c.lim;
    again.max_bytes = o.n + 1;
    nana_toml_doc *doc2 = NULL;
    rc = nana_toml_parse(o.p ? o.p : "", o.n, &again, &doc2);
    if (rc) fprintf(stderr, "the written document was refused: %s\n%s\n", nana_errmsg(), o.p);
    CHECK(rc == 0);
    CHECK(same_table(root, nana_toml_root(doc2)));
    CHECK(same_table(nana_toml_root(doc2), root));
    nana_toml_free(doc2);
    nana_toml_free(doc);
    free(o.p);
    return 0;
}
