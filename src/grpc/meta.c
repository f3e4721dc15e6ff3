/*
 * meta.c - custom metadata: which names are metadata, how values are kept
 * (ASCII as sent, "-bin" decoded), and finding them by name for the door
 * (authorization, signature headers and the like).
 *
 * gRPC asks a reader not to fail on a value HTTP allows but gRPC does not
 * (bytes past printable ASCII): such a value is dropped, so nothing we keep
 * is unsafe to log or echo back.
 */
#include "grpc/grpc_int.h"

#include <string.h>

bool nana_grpc_meta_name_ok(const char *name, size_t n)
{
    if (n == 0) return false;
    if (n >= 5 && memcmp(name, "grpc-", 5) == 0) return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == '_' || c == '-' || c == '.'))
            return false;
    }
    return true;
}

/* Appends an entry, growing the array in the arena (the old one stays
 * there until the call ends: at most as much again). */
static int push(nana_grpc_head *h, const char *name, size_t name_len, const uint8_t *value,
                size_t value_len, bool binary)
{
    if (h->meta_count == h->meta_cap) {
        size_t cap = h->meta_cap ? h->meta_cap * 2 : 8;
        nana_grpc_meta *m = nana_arena_alloc(h->arena, cap * sizeof(*m));
        if (!m) return nana_err_set(NANA_ERR_NOMEM, "out of memory for request metadata");
        if (h->meta_count) memcpy(m, h->meta_buf, h->meta_count * sizeof(*m));
        h->meta_buf = m;
        h->meta_cap = cap;
        h->meta = m;
    }
    h->meta_buf[h->meta_count++] = (nana_grpc_meta){name, name_len, value, value_len, binary};
    return 0;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

/* Trims spaces and tabs around [*s, *s + *n). */
static void trim(const char **s, size_t *n)
{
    while (*n && is_space(**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n && is_space((*s)[*n - 1]))
        (*n)--;
}

int nana_grpc_meta_store(nana_grpc_head *h, const char *name, size_t name_len, const char *value,
                         size_t value_len)
{
    if (!nana_grpc_meta_name_ok(name, name_len)) return 0;
    bool binary = name_len > 4 && memcmp(name + name_len - 4, "-bin", 4) == 0;
    if (!binary) {
        trim(&value, &value_len);
        for (size_t i = 0; i < value_len; i++)
            if ((unsigned char)value[i] < 0x20 || (unsigned char)value[i] > 0x7e) return 0;
    }
    char *n = nana_arena_dup(h->arena, name, name_len);
    if (!n) return nana_err_set(NANA_ERR_NOMEM, "out of memory for request metadata");
    if (!binary) {
        char *v = nana_arena_dup(h->arena, value, value_len);
        if (!v) return nana_err_set(NANA_ERR_NOMEM, "out of memory for request metadata");
        return push(h, n, name_len, (const uint8_t *)v, value_len, false);
    }
    /* A "-bin" field may carry several values joined with ','. */
    const char *p = value, *end = value + value_len;
    for (;;) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *piece = p;
        size_t len = (size_t)((comma ? comma : end) - p);
        trim(&piece, &len);
        uint8_t *out = nana_arena_alloc(h->arena, len / 4 * 3 + 3);
        if (!out) return nana_err_set(NANA_ERR_NOMEM, "out of memory for request metadata");
        size_t out_len;
        if (nana_grpc_b64_decode(piece, len, out, &out_len))
            return nana_err_set(NANA_ERR_INVALID, "metadata '%.64s' is not base64", n);
        out[out_len] = 0;
        int rc = push(h, n, name_len, out, out_len, true);
        if (rc) return rc;
        if (!comma) return 0;
        p = comma + 1;
    }
}

const nana_grpc_meta *nana_grpc_head_meta(const nana_grpc_head *h, const char *name, size_t index)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < h->meta_count; i++) {
        const nana_grpc_meta *m = &h->meta[i];
        if (m->name_len == n && memcmp(m->name, name, n) == 0 && index-- == 0) return m;
    }
    return NULL;
}
