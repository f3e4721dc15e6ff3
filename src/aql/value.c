/*
 * value.c - how an AQL value's bytes are kept in a NanaSQLite table, and
 * the CRC-32 answers carry.
 *
 * A value that is one JSON text is kept as that text (the store keeps it
 * byte for byte); anything else is kept as {"$bytes":"<base64>"} (unpadded
 * standard base64), which the NanaSQLite door reads as an object and AQL
 * reads back as the original bytes. A JSON text that is itself exactly
 * such an object is wrapped too, so every value reads back as it was sent.
 */
#include "aql/nana_aql.h"

#include "grpc/nana_grpc.h"
#include "util/nana_json.h"

#include <string.h>

#define WRAP_PRE  "{\"$bytes\":\""
#define WRAP_POST "\"}"

/* True when |json| (valid JSON) is an object whose one member is "$bytes"
 * with a string: what reading it back would unwrap. */
static bool looks_wrapped(const char *json, size_t len)
{
    size_t i = 0;
    while (i < len && (json[i] == ' ' || json[i] == '\t' || json[i] == '\n' || json[i] == '\r'))
        i++;
    if (i == len || json[i] != '{' || !memmem(json, len, "$bytes", 6)) return false;
    nana_json_doc *doc = NULL;
    nana_json *v = NULL;
    if (nana_json_parse(json, len, 0, NANA_DEFAULT_JSON_DEPTH, &doc, &v)) return false;
    nana_json *b = nana_json_object_get(v, "$bytes", 6);
    bool wrapped = v->type == NANA_JSON_OBJECT && v->n == 1 && b && b->type == NANA_JSON_STRING;
    nana_json_doc_free(doc);
    return wrapped;
}

/* The stored JSON text of a value's bytes (in |arena| when wrapped). */
static int stored_json(nana_arena *arena, const uint8_t *data, size_t len, const char **json,
                       size_t *jlen)
{
    const char *p = (const char *)data;
    if (len && nana_json_validate(p, len, 0, NANA_DEFAULT_JSON_DEPTH) == 0 &&
        !looks_wrapped(p, len)) {
        *json = p;
        *jlen = len;
        return NANA_OK;
    }
    size_t b64 = nana_grpc_b64_encoded_len(len);
    size_t n = sizeof(WRAP_PRE) - 1 + b64 + sizeof(WRAP_POST) - 1;
    char *out = nana_arena_alloc(arena, n + 1);
    if (!out) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    memcpy(out, WRAP_PRE, sizeof(WRAP_PRE) - 1);
    nana_grpc_b64_encode(data, len, out + sizeof(WRAP_PRE) - 1);
    memcpy(out + sizeof(WRAP_PRE) - 1 + b64, WRAP_POST, sizeof(WRAP_POST)); /* and the NUL */
    *json = out;
    *jlen = n;
    return NANA_OK;
}

int nana_aql_value_bytes(nana_arena *arena, const char *json, size_t len, const uint8_t **out,
                         size_t *olen)
{
    *out = (const uint8_t *)json;
    *olen = len;
    if (!looks_wrapped(json, len)) return NANA_OK;
    nana_json_doc *doc = NULL;
    nana_json *v = NULL;
    if (nana_json_parse(json, len, 0, NANA_DEFAULT_JSON_DEPTH, &doc, &v)) return NANA_OK;
    nana_json *b = nana_json_object_get(v, "$bytes", 6);
    size_t slen = b->n;
    uint8_t *dec = nana_arena_alloc(arena, slen + 1);
    size_t dlen = 0;
    int rc = dec ? NANA_OK : nana_err_set(NANA_ERR_NOMEM, "out of memory");
    if (!rc && nana_grpc_b64_decode(b->u.str, slen, dec, &dlen) == 0) {
        *out = dec;
        *olen = dlen;
    }
    nana_json_doc_free(doc);
    return rc;
}

int nana_aql_stored_json(nana_arena *arena, const uint8_t *data, size_t len, const char **json,
                         size_t *jlen)
{
    return stored_json(arena, data, len, json, jlen);
}

uint32_t nana_aql_crc32(const void *p, size_t n)
{
    static uint32_t table[256];
    static _Atomic int ready;
    if (!ready) {
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++)
                c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
        ready = 1;
    }
    const uint8_t *b = p;
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++)
        c = table[(c ^ b[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}
