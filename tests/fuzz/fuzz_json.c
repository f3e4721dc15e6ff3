/*
 * fuzz_json.c - libFuzzer harness for the strict JSON module.
 *
 * Big idea: differential and round-trip checking. The first input byte picks
 * the flags and the depth limit; the rest is the document. A deliberately
 * simple recursive-descent reference validator (written independently, slow
 * but obvious) must agree with nana_json_validate(), which must agree with
 * nana_json_parse(). Every accepted document must survive
 * write -> validate -> parse -> equal, writing must be idempotent, and a
 * clone must be equal. nana_json_write_string() on the raw bytes must succeed
 * exactly when a reference UTF-8 decoder accepts them, and read back intact.
 * Any disagreement aborts, which libFuzzer reports as a crash.
 */
#include "fuzz_check.h"
#include "util/nana_err.h"
#include "util/nana_json.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- reference UTF-8: decode a code point, then judge it ---------------- */

/* Decodes one code point at s (n bytes left) into *cp; returns its length or 0 if invalid. */
static size_t ref_utf8(const unsigned char *s, size_t n, unsigned long *cp)
{
    size_t len;
    unsigned long v, min;
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    } else if ((s[0] & 0xE0) == 0xC0) {
        len = 2, v = s[0] & 0x1F, min = 0x80;
    } else if ((s[0] & 0xF0) == 0xE0) {
        len = 3, v = s[0] & 0x0F, min = 0x800;
    } else if ((s[0] & 0xF8) == 0xF0) {
        len = 4, v = s[0] & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return len;
}

static int ref_utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    unsigned long cp;
    while (i < n) {
        size_t k = ref_utf8(s + i, n - i, &cp);
        if (!k) return 0;
        i += k;
    }
    return 1;
}

/* ---- reference validator: plain recursive descent ------------------------ */

struct ref {
    const unsigned char *p;
    size_t n, i;
    unsigned flags, max_depth;
};

static int ref_peek(const struct ref *r)
{
    return r->i < r->n ? r->p[r->i] : -1;
}

static void ref_ws(struct ref *r)
{
    while (r->i < r->n && strchr(" \t\r\n", r->p[r->i]) && r->p[r->i])
        r->i++;
}

static int ref_lit(struct ref *r, const char *w)
{
    size_t l = strlen(w);
    if (r->n - r->i < l || memcmp(r->p + r->i, w, l) != 0) return 0;
    r->i += l;
    return 1;
}

static int ref_digits(struct ref *r)
{
    size_t s = r->i;
    while (r->i < r->n && r->p[r->i] >= '0' && r->p[r->i] <= '9')
        r->i++;
    return r->i > s;
}

static int ref_hex4(struct ref *r, unsigned *out)
{
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        int c = ref_peek(r);
        int h = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (h < 0) return 0;
        v = v * 16 + (unsigned)h;
        r->i++;
    }
    *out = v;
    return 1;
}

static int ref_string(struct ref *r)
{
    if (ref_peek(r) != '"') return 0;
    r->i++;
    for (;;) {
        int c = ref_peek(r);
        if (c < 0 || c < 0x20) return 0;
        if (c == '"') {
            r->i++;
            return 1;
        }
        if (c == '\\') {
            r->i++;
            c = ref_peek(r);
            if (c < 0) return 0;
            if (c == 'u') {
                r->i++;
                unsigned u;
                if (!ref_hex4(r, &u)) return 0;
                if (u >= 0xDC00 && u <= 0xDFFF) return 0;
                if (u >= 0xD800 && u <= 0xDBFF) {
                    unsigned lo;
                    if (!ref_lit(r, "\\u") || !ref_hex4(r, &lo)) return 0;
                    if (lo < 0xDC00 || lo > 0xDFFF) return 0;
                }
            } else if (c && strchr("\"\\/bfnrt", c)) {
                r->i++;
            } else {
                return 0;
            }
            continue;
        }
        unsigned long cp;
        size_t k = ref_utf8(r->p + r->i, r->n - r->i, &cp);
        if (!k) return 0;
        r->i += k;
    }
}

static int ref_number(struct ref *r)
{
    if (r->flags & NANA_JSON_ALLOW_NONFINITE) {
        if (ref_lit(r, "NaN") || ref_lit(r, "Infinity") || ref_lit(r, "-Infinity")) return 1;
    }
    if (ref_peek(r) == '-') r->i++;
    if (ref_peek(r) == '0') {
        r->i++;
    } else if (ref_peek(r) >= '1' && ref_peek(r) <= '9') {
        ref_digits(r);
    } else {
        return 0;
    }
    if (ref_peek(r) == '.') {
        r->i++;
        if (!ref_digits(r)) return 0;
    }
    if (ref_peek(r) == 'e' || ref_peek(r) == 'E') {
        r->i++;
        if (ref_peek(r) == '+' || ref_peek(r) == '-') r->i++;
        if (!ref_digits(r)) return 0;
    }
    return 1;
}

static int ref_value(struct ref *r, unsigned depth)
{
    ref_ws(r);
    int c = ref_peek(r);
    if (c == '{' || c == '[') {
        if (depth + 1 > r->max_depth) return 0;
        int close = c == '{' ? '}' : ']';
        r->i++;
        ref_ws(r);
        if (ref_peek(r) == close) {
            r->i++;
            return 1;
        }
        for (;;) {
            if (c == '{') {
                ref_ws(r);
                if (!ref_string(r)) return 0;
                ref_ws(r);
                if (ref_peek(r) != ':') return 0;
                r->i++;
            }
            if (!ref_value(r, depth + 1)) return 0;
            ref_ws(r);
            if (ref_peek(r) == ',') {
                r->i++;
                continue;
            }
            if (ref_peek(r) != close) return 0;
            r->i++;
            return 1;
        }
    }
    if (c == '"') return ref_string(r);
    if (ref_lit(r, "true") || ref_lit(r, "false") || ref_lit(r, "null")) return 1;
    return ref_number(r);
}

static int ref_validate(const unsigned char *p, size_t n, unsigned flags, unsigned max_depth)
{
    struct ref r = {p, n, 0, flags, max_depth};
    if (!ref_value(&r, 0)) return 0;
    ref_ws(&r);
    return r.i == n;
}

/* ---- the harness --------------------------------------------------------- */

static char *write_all(const nana_json *v, size_t *len)
{
    nana_buf b;
    nana_buf_init(&b, 0);
    CHECK(nana_json_write(&b, v) == 0);
    char *s = nana_buf_detach(&b, len);
    CHECK(s != NULL);
    return s;
}

static void check_numbers(const nana_json *v)
{
    /* Exercise the number accessors on every number of a shallow tree level. */
    if (v->type == NANA_JSON_NUMBER) {
        int64_t i;
        double d;
        int rc = nana_json_number_int64(v, &i);
        CHECK(rc == 0 || rc == NANA_ERR_TYPE || rc == NANA_ERR_TOOBIG);
        CHECK((rc == NANA_ERR_TYPE) == !nana_json_number_is_integer(v));
        CHECK(nana_json_number_double(v, &d) == 0);
    } else if (v->type == NANA_JSON_ARRAY) {
        for (uint32_t k = 0; k < v->n; k++)
            if (v->u.items[k]->type == NANA_JSON_NUMBER) check_numbers(v->u.items[k]);
    } else if (v->type == NANA_JSON_OBJECT) {
        for (uint32_t k = 0; k < v->n; k++) {
            const nana_json_member *m = &v->u.members[k];
            CHECK(nana_json_object_get(v, m->key, m->keylen) == m->val);
            if (m->val->type == NANA_JSON_NUMBER) check_numbers(m->val);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    unsigned flags = data[0] & 1u ? NANA_JSON_ALLOW_NONFINITE : 0;
    unsigned d = data[0] >> 1;
    unsigned max_depth = d < 100 ? d : NANA_JSON_DEFAULT_MAX_DEPTH + d;
    const char *p = (const char *)data + 1;
    size_t n = size - 1;

    int v = nana_json_validate(p, n, flags, max_depth);
    CHECK(v == 0 || v == NANA_ERR_JSON);
    CHECK((v == 0) == ref_validate(data + 1, n, flags, max_depth));
    nana_json_doc *doc;
    nana_json *root;
    int rc = nana_json_parse(p, n, flags, max_depth, &doc, &root);
    CHECK(rc == v);

    if (rc == 0) {
        check_numbers(root);
        size_t l1, l2;
        char *t1 = write_all(root, &l1);
        CHECK(nana_json_validate(t1, l1, flags, max_depth) == 0);
        nana_json_doc *doc2;
        nana_json *root2;
        CHECK(nana_json_parse(t1, l1, flags, max_depth, &doc2, &root2) == 0);
        CHECK(nana_json_equal(root, root2));
        CHECK(nana_json_equal(root2, root));
        char *t2 = write_all(root2, &l2);
        CHECK(l1 == l2 && memcmp(t1, t2, l1) == 0);
        nana_json *c = nana_json_clone(doc2, root);
        CHECK(c != NULL);
        CHECK(nana_json_equal(c, root));
        free(t1);
        free(t2);
        nana_json_doc_free(doc2);
        nana_json_doc_free(doc);
    }

    /* The raw bytes as a string value. */
    nana_buf b;
    nana_buf_init(&b, 0);
    int w = nana_json_write_string(&b, p, n);
    CHECK((w == 0) == ref_utf8_valid(data + 1, n));
    if (w == 0) {
        CHECK(nana_json_parse(b.data, b.len, 0, 0, &doc, &root) == 0);
        CHECK(root->type == NANA_JSON_STRING && root->n == n && memcmp(root->u.str, p, n) == 0);
        nana_json_doc_free(doc);
    }
    nana_buf_free(&b);
    return 0;
}
