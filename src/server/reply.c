/*
 * reply.c - reply frames of the NanaSQLite door and the mapping from our
 * error codes to the Python exception names its clients raise.
 *
 * A frame is written in place: four bytes are reserved for the length,
 * the msgpack map follows, and the length is patched at the end, so a
 * reply costs one buffer and no copy.
 */
#include "server/call_int.h"

#include <string.h>

int nana_reply_str(nana_buf *out, const char *s)
{
    size_t at;
    int rc = nana_frame_begin(out, &at);
    if (!rc) rc = nana_mp_put_cstr(out, s);
    if (!rc) rc = nana_frame_end(out, at);
    return rc;
}

int nana_reply_challenge(nana_buf *out, const uint8_t *bytes, size_t n)
{
    size_t at;
    int rc = nana_frame_begin(out, &at);
    if (!rc) rc = nana_mp_put_map(out, 2);
    if (!rc) rc = nana_mp_put_cstr(out, "type");
    if (!rc) rc = nana_mp_put_cstr(out, "challenge");
    if (!rc) rc = nana_mp_put_cstr(out, "data");
    if (!rc) rc = nana_mp_put_bin(out, bytes, n);
    if (!rc) rc = nana_frame_end(out, at);
    return rc;
}

int nana_reply_status_error(nana_buf *out, const char *msg)
{
    size_t at;
    int rc = nana_frame_begin(out, &at);
    if (!rc) rc = nana_mp_put_map(out, 2);
    if (!rc) rc = nana_mp_put_cstr(out, "status");
    if (!rc) rc = nana_mp_put_cstr(out, "error");
    if (!rc) rc = nana_mp_put_cstr(out, "message");
    if (!rc) rc = nana_mp_put_cstr(out, msg);
    if (!rc) rc = nana_frame_end(out, at);
    return rc;
}

int nana_reply_error(nana_buf *out, const char *type, const char *msg, const char *code)
{
    size_t at;
    int rc = nana_frame_begin(out, &at);
    if (!rc) rc = nana_mp_put_map(out, code ? 4 : 3);
    if (!rc) rc = nana_mp_put_cstr(out, "status");
    if (!rc) rc = nana_mp_put_cstr(out, "error");
    if (!rc) rc = nana_mp_put_cstr(out, "error_type");
    if (!rc) rc = nana_mp_put_cstr(out, type);
    if (!rc) rc = nana_mp_put_cstr(out, "message");
    if (!rc) rc = nana_mp_put_cstr(out, msg);
    if (!rc && code) rc = nana_mp_put_cstr(out, "code");
    if (!rc && code) rc = nana_mp_put_cstr(out, code);
    if (!rc) rc = nana_frame_end(out, at);
    return rc;
}

int nana_reply_internal(nana_buf *out)
{
    return nana_reply_error(out, "InternalServerError", "An unexpected error occurred", NULL);
}

const char *nana_error_type(int rc, bool *expected)
{
    *expected = true;
    switch (rc) {
    case NANA_ERR_NOTFOUND:
        return "KeyError";
    case NANA_ERR_INVALID:
    case NANA_ERR_TOOBIG:
        return "ValueError";
    case NANA_ERR_TYPE:
    case NANA_ERR_JSON:
        return "TypeError";
    case NANA_ERR_VALIDATION:
        return "NanaSQLiteValidationError";
    case NANA_ERR_TXN:
        return "NanaSQLiteTransactionError";
    case NANA_ERR_BUSY:
        return "NanaSQLiteLockError";
    case NANA_ERR_DB:
    case NANA_ERR_CORRUPT:
    case NANA_ERR_READONLY:
    case NANA_ERR_FULL:
        return "NanaSQLiteDatabaseError";
    case NANA_ERR_CLOSED:
        return "NanaSQLiteClosedError";
    case NANA_ERR_TIMEOUT:
        return "RuntimeError";
    case NANA_ERR_PERM:
        return "PermissionError";
    default:
        *expected = false;
        return "InternalServerError";
    }
}

int nana_reply_from_rc(nana_buf *out, int rc, const char *msg)
{
    bool expected;
    const char *type = nana_error_type(rc, &expected);
    if (!expected) return nana_reply_internal(out);
    const char *code = rc == NANA_ERR_TIMEOUT ? "timeout" : rc == NANA_ERR_BUSY ? "busy" : NULL;
    return nana_reply_error(out, type, msg, code);
}

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
