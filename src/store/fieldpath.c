/*
 * fieldpath.c - field paths of the queries over JSON fields ("a.b[2].c").
 *
 * A path is checked byte by byte here, before anything reaches SQLite,
 * and turned into the SQLite JSON path $."a"."b"[2]."c", which is only
 * ever bound as a parameter. Because a member name may not contain '"' or
 * '\', quoting it for SQLite's path syntax needs no escaping. The same
 * parsed steps let update_where walk a row's JSON tree in C.
 */
#include "store/store_int.h"

#include "util/nana_json.h"

#include <stdio.h>
#include <string.h>

const char *nana_quote_text(char *dst, size_t dstlen, const char *t, size_t n, size_t max)
{
    if (!t || !nana_utf8_valid(t, n)) {
        snprintf(dst, dstlen, "<not UTF-8>");
        return dst;
    }
    size_t cut = n;
    if (cut > max) {
        cut = max;
        while (cut > 0 && ((unsigned char)t[cut] & 0xc0) == 0x80)
            cut--;
    }
    size_t o = 0;
    for (size_t i = 0; i < cut && o + 1 < dstlen; i++) {
        unsigned char ch = (unsigned char)t[i];
        dst[o++] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
    }
    if (cut < n)
        for (int k = 0; k < 3 && o + 1 < dstlen; k++)
            dst[o++] = '.';
    dst[o] = '\0';
    return dst;
}

/* A byte a member name may not hold. */
static bool name_byte_refused(unsigned char ch)
{
    return ch < 0x20 || ch == 0x7f || ch == '.' || ch == '[' || ch == ']' || ch == '"' ||
           ch == '\\';
}

/* The refusal of a path: "<what> '<field>' <reason>". */
static int path_refused(const char *f, size_t n, const char *what, const char *reason)
{
    char shown[NANA_QUOTE_MAX];
    nana_quote_text(shown, sizeof(shown), f, n, 64);
    return nana_err_set(NANA_ERR_VALIDATION, "%s '%s' %s", what, shown, reason);
}

int nana_fpath_parse(const char *f, size_t n, const char *what, nana_fpath *out)
{
    nana_fpath scratch = {.n = 0};
    nana_fpath *p = out ? out : &scratch;
    p->n = 0;
    p->text = f;
    p->len = n;
    if (!f || n == 0) return nana_err_set(NANA_ERR_VALIDATION, "%s is empty", what);
    if (n > NANA_FIELD_MAX_BYTES) {
        char reason[64];
        snprintf(reason, sizeof(reason), "is %zu bytes, the limit is %d", n, NANA_FIELD_MAX_BYTES);
        return path_refused(f, n, what, reason);
    }
    if (!nana_utf8_valid(f, n)) return path_refused(f, n, what, "is not valid UTF-8");
    size_t i = 0;
    unsigned segments = 0;
    char reason[96];
    for (;;) {
        /* a member name */
        size_t start = i;
        while (i < n && !name_byte_refused((unsigned char)f[i]))
            i++;
        size_t nlen = i - start;
        if (nlen == 0) {
            snprintf(reason, sizeof(reason), "has an empty member name at byte %zu", start);
            if (i < n && f[i] != '.' && f[i] != '[')
                snprintf(reason, sizeof(reason),
                         "has a character not allowed in a name at byte %zu", i);
            return path_refused(f, n, what, reason);
        }
        if (nlen > NANA_FIELD_MAX_NAME) {
            snprintf(reason, sizeof(reason), "has a member name of %zu bytes, the limit is %d",
                     nlen, NANA_FIELD_MAX_NAME);
            return path_refused(f, n, what, reason);
        }
        if (++segments > NANA_FIELD_MAX_SEGMENTS) {
            snprintf(reason, sizeof(reason), "has more than %d segments", NANA_FIELD_MAX_SEGMENTS);
            return path_refused(f, n, what, reason);
        }
        if (p->n >= NANA_FPATH_MAX_STEPS) return path_refused(f, n, what, "has too many steps");
        p->step[p->n++] = (nana_fstep){.name = f + start, .nlen = (uint32_t)nlen};
        /* array indexes */
        while (i < n && f[i] == '[') {
            size_t d = ++i;
            uint64_t v = 0;
            while (i < n && f[i] >= '0' && f[i] <= '9' && v < (1ull << 31))
                v = v * 10 + (uint64_t)(f[i++] - '0');
            if (i == d || i >= n || f[i] != ']' || v >= (1ull << 31)) {
                snprintf(reason, sizeof(reason),
                         "has a bad array index at byte %zu (want [N], N decimal below 2^31)",
                         d - 1);
                return path_refused(f, n, what, reason);
            }
            i++;
            if (p->n >= NANA_FPATH_MAX_STEPS) return path_refused(f, n, what, "has too many steps");
            p->step[p->n++] = (nana_fstep){.name = NULL, .index = (uint32_t)v};
        }
        if (i == n) return NANA_OK;
        if (f[i] != '.') {
            snprintf(reason, sizeof(reason), "has a character not allowed in a name at byte %zu",
                     i);
            return path_refused(f, n, what, reason);
        }
        i++; /* the '.' */
        if (i == n) {
            snprintf(reason, sizeof(reason), "has an empty member name at byte %zu", i);
            return path_refused(f, n, what, reason);
        }
    }
}

int nana_fpath_sqlite(const nana_fpath *p, nana_buf *b)
{
    int rc = nana_buf_putc(b, '$');
    for (unsigned i = 0; !rc && i < p->n; i++) {
        const nana_fstep *s = &p->step[i];
        if (s->name) {
            rc = nana_buf_append(b, ".\"", 2);
            if (!rc) rc = nana_buf_append(b, s->name, s->nlen);
            if (!rc) rc = nana_buf_putc(b, '"');
        } else {
            rc = nana_buf_printf(b, "[%u]", s->index);
        }
    }
    return rc;
}
