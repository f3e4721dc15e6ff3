/*
 * check.c - validation of what callers hand the store: keys, values,
 * identifiers. Every check runs before anything is queued or written, so
 * bad input costs nothing but the check and never reaches SQLite.
 */
#include "store/store_int.h"

#include "util/nana_json.h"

#include <string.h>

int nana_utf8_valid(const char *p, size_t n)
{
    const unsigned char *s = (const unsigned char *)p;
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        unsigned min;
        unsigned cp;
        if ((c & 0xe0) == 0xc0) {
            len = 2, min = 0x80, cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3, min = 0x800, cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4, min = 0x10000, cp = c & 0x07;
        } else {
            return 0;
        }
        if (n - i < len) return 0;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
        i += len;
    }
    return 1;
}

int nana_check_key(const nana_store *s, const char *key, size_t klen)
{
    if (!key && klen) return nana_err_set(NANA_ERR_INVALID, "key is NULL");
    if (klen > s->opts.max_key_bytes)
        return nana_err_set(NANA_ERR_TOOBIG, "key is %zu bytes, the limit is %zu", klen,
                            s->opts.max_key_bytes);
    if (!nana_utf8_valid(key, klen))
        return nana_err_set(NANA_ERR_INVALID, "key is not valid UTF-8 text");
    return NANA_OK;
}

int nana_check_value(const nana_store *s, const char *val, size_t vlen)
{
    if (!val) return nana_err_set(NANA_ERR_INVALID, "value is NULL");
    if (vlen > s->opts.max_value_bytes)
        return nana_err_set(NANA_ERR_TOOBIG, "value is %zu bytes, the limit is %zu", vlen,
                            s->opts.max_value_bytes);
    return nana_json_validate(val, vlen, 0, s->opts.max_json_depth);
}

int nana_identifier_valid(const char *name)
{
    if (!name || !name[0]) return 0;
    size_t n = strlen(name);
    if (n > NANA_MAX_TABLE_NAME) return 0;
    char c = name[0];
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_')) return 0;
    for (size_t i = 1; i < n; i++) {
        c = name[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return 0;
    }
    return 1;
}
