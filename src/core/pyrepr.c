/*
 * pyrepr.c - Python's repr() of a str, for the KeyError messages
 * NanaSQLite's clients expect ('key', with Python's escapes and quotes).
 */
#include "core/core_int.h"

#include <string.h>

/* Decodes one UTF-8 sequence at |p| (valid UTF-8 assumed); returns its length. */
static size_t utf8_next(const unsigned char *p, size_t left, uint32_t *cp)
{
    if (p[0] < 0x80 || left < 2) {
        *cp = p[0];
        return 1;
    }
    if ((p[0] & 0xE0) == 0xC0) {
        *cp = ((uint32_t)(p[0] & 0x1F) << 6) | (p[1] & 0x3F);
        return 2;
    }
    if ((p[0] & 0xF0) == 0xE0 && left >= 3) {
        *cp = ((uint32_t)(p[0] & 0x0F) << 12) | ((uint32_t)(p[1] & 0x3F) << 6) | (p[2] & 0x3F);
        return 3;
    }
    if (left >= 4) {
        *cp = ((uint32_t)(p[0] & 0x07) << 18) | ((uint32_t)(p[1] & 0x3F) << 12) |
              ((uint32_t)(p[2] & 0x3F) << 6) | (p[3] & 0x3F);
        return 4;
    }
    *cp = p[0];
    return 1;
}

/*
 * Python's str.isprintable() for the code points that matter in keys:
 * controls (C0, DEL, C1), the no-break and soft-hyphen spaces, line and
 * paragraph separators and the surrogate/private-use areas are not.
 */
static bool py_printable(uint32_t cp)
{
    if (cp < 0x20 || (cp >= 0x7F && cp <= 0xA0) || cp == 0xAD) return false;
    if (cp == 0x2028 || cp == 0x2029 || (cp >= 0x200B && cp <= 0x200F)) return false;
    if (cp >= 0xD800 && cp <= 0xF8FF) return false;
    if (cp == 0xFEFF || (cp >= 0xFFF0 && cp <= 0xFFFF)) return false;
    return true;
}

int nana_py_repr_str(nana_buf *out, const char *s, size_t n)
{
    bool has_single = memchr(s, '\'', n) != NULL, has_double = memchr(s, '"', n) != NULL;
    char q = has_single && !has_double ? '"' : '\'';
    int rc = nana_buf_putc(out, q);
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (!rc && i < n) {
        uint32_t cp;
        size_t k = utf8_next(p + i, n - i, &cp);
        if (cp == (uint32_t)q || cp == '\\')
            rc = nana_buf_printf(out, "\\%c", (char)cp);
        else if (cp == '\n')
            rc = nana_buf_puts(out, "\\n");
        else if (cp == '\r')
            rc = nana_buf_puts(out, "\\r");
        else if (cp == '\t')
            rc = nana_buf_puts(out, "\\t");
        else if (py_printable(cp))
            rc = nana_buf_append(out, p + i, k);
        else if (cp <= 0xFF)
            rc = nana_buf_printf(out, "\\x%02x", cp);
        else if (cp <= 0xFFFF)
            rc = nana_buf_printf(out, "\\u%04x", cp);
        else
            rc = nana_buf_printf(out, "\\U%08x", cp);
        i += k;
    }
    if (!rc) rc = nana_buf_putc(out, q);
    return rc;
}
