/*
 * check.c - validation of what callers hand the store: keys, values,
 * identifiers. Every check runs before anything is queued or written, so
 * bad input costs nothing but the check and never reaches SQLite.
 */
#include "store/store_int.h"

#include "util/nana_json.h"

#include <string.h>
#include <strings.h>

int nana_check_key(const nana_store *s, const char *key, size_t klen)
{
    if (!key && klen) return nana_err_set(NANA_ERR_INVALID, "key is NULL");
    if (klen > s->opts.max_key_bytes)
        return nana_err_set(NANA_ERR_TOOBIG, "key is %zu bytes, the limit is %zu", klen,
                            s->opts.max_key_bytes);
    if (!nana_utf8_valid(key, klen))
        return nana_err_set(NANA_ERR_INVALID, "key is not valid UTF-8 text");
    if (s->cluster && klen && memchr(key, 0, klen))
        return nana_err_set(NANA_ERR_INVALID, "a clustered database's keys cannot hold NUL");
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

int nana_name_reserved(const char *name)
{
    return name && strncasecmp(name, "sqlite_", 7) == 0;
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
