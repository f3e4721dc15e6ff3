/*
 * descriptors.c - our .proto files as serialized FileDescriptorProtos
 * (embedded at build time), found by file name or by a symbol they declare,
 * for server reflection.
 *
 * Symbols are found by walking the descriptor's protobuf encoding with a
 * small reader of our own (the few fields of descriptor.proto that name
 * things: package 2, message_type 4, enum_type 5, service 6; in a message
 * name 1, nested_type 3, enum_type 4; in a service name 1, method 2), so
 * nothing has to be kept in sync by hand with the .proto files.
 */
#include "grpc/grpc_int.h"

#include <string.h>

/* A protobuf reader over [p, end). */
typedef struct rd {
    const uint8_t *p, *end;
} rd;

/* One field: its number and, for a length-delimited one, its bytes. */
typedef struct fld {
    uint32_t num;
    int wire;
    const uint8_t *data;
    size_t len;
} fld;

static bool read_varint(rd *r, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 64 && r->p < r->end; shift += 7) {
        uint8_t b = *r->p++;
        *v |= (uint64_t)(b & 127) << shift;
        if (b < 128) return true;
    }
    return false;
}

/* The next field; false at the end or on bytes that are not protobuf. */
static bool next_field(rd *r, fld *f)
{
    uint64_t tag, v;
    if (r->p >= r->end || !read_varint(r, &tag)) return false;
    f->num = (uint32_t)(tag >> 3);
    f->wire = (int)(tag & 7);
    f->data = NULL;
    f->len = 0;
    switch (f->wire) {
    case 0:
        return read_varint(r, &v);
    case 1:
        if (r->end - r->p < 8) return false;
        r->p += 8;
        return true;
    case 2:
        if (!read_varint(r, &v) || v > (uint64_t)(r->end - r->p)) return false;
        f->data = r->p;
        f->len = (size_t)v;
        r->p += v;
        return true;
    case 5:
        if (r->end - r->p < 4) return false;
        r->p += 4;
        return true;
    default:
        return false;
    }
}

/* The string field |num| of the message [p, p + n), or an empty one. */
static void string_field(const uint8_t *p, size_t n, uint32_t num, const uint8_t **s, size_t *len)
{
    rd r = {p, p + n};
    fld f;
    *s = (const uint8_t *)"";
    *len = 0;
    while (next_field(&r, &f))
        if (f.num == num && f.wire == 2) {
            *s = f.data;
            *len = f.len;
        }
}

/* Whether |sym| is "|name|" (rest NULL) or starts with "|name|." (*rest set
 * to what follows the dot). */
static bool take_name(const char *sym, size_t n, const uint8_t *name, size_t name_len,
                      const char **rest, size_t *rest_len)
{
    if (name_len == 0 || n < name_len || memcmp(sym, name, name_len) != 0) return false;
    if (n == name_len) {
        *rest = NULL;
        *rest_len = 0;
        return true;
    }
    if (sym[name_len] != '.') return false;
    *rest = sym + name_len + 1;
    *rest_len = n - name_len - 1;
    return true;
}

/* Whether the enum descriptor [p, p + n) is named exactly |sym|. */
static bool enum_is(const uint8_t *p, size_t n, const char *sym, size_t len)
{
    const uint8_t *name;
    size_t name_len;
    string_field(p, n, 1, &name, &name_len);
    return name_len == len && memcmp(name, sym, len) == 0;
}

/* Whether the message descriptor [p, p + n) declares |sym| (relative to
 * the message's scope: the message itself, or what it nests). */
static bool message_declares(const uint8_t *p, size_t n, const char *sym, size_t len, int depth)
{
    const uint8_t *name;
    size_t name_len;
    const char *rest;
    size_t rest_len;
    string_field(p, n, 1, &name, &name_len);
    if (!take_name(sym, len, name, name_len, &rest, &rest_len)) return false;
    if (!rest) return true;
    if (depth > 32) return false;
    rd r = {p, p + n};
    fld f;
    while (next_field(&r, &f)) {
        if (f.wire != 2) continue;
        if (f.num == 3 && message_declares(f.data, f.len, rest, rest_len, depth + 1)) return true;
        if (f.num == 4 && enum_is(f.data, f.len, rest, rest_len)) return true;
    }
    return false;
}

/* Whether the service descriptor [p, p + n) is |sym| or has the method
 * "Service.Method" |sym| names. */
static bool service_declares(const uint8_t *p, size_t n, const char *sym, size_t len)
{
    const uint8_t *name;
    size_t name_len;
    const char *rest;
    size_t rest_len;
    string_field(p, n, 1, &name, &name_len);
    if (!take_name(sym, len, name, name_len, &rest, &rest_len)) return false;
    if (!rest) return true;
    rd r = {p, p + n};
    fld f;
    while (next_field(&r, &f))
        if (f.num == 2 && f.wire == 2 && enum_is(f.data, f.len, rest, rest_len)) return true;
    return false;
}

bool nana_grpc_file_declares(const nana_grpc_file *file, const char *sym, size_t len)
{
    const uint8_t *pkg;
    size_t pkg_len;
    string_field(file->proto, file->len, 2, &pkg, &pkg_len);
    const char *rest = sym;
    size_t rest_len = len;
    if (pkg_len && (!take_name(sym, len, pkg, pkg_len, &rest, &rest_len) || !rest)) return false;
    rd r = {file->proto, file->proto + file->len};
    fld f;
    while (next_field(&r, &f)) {
        if (f.wire != 2) continue;
        if (f.num == 4 && message_declares(f.data, f.len, rest, rest_len, 0)) return true;
        if (f.num == 5 && enum_is(f.data, f.len, rest, rest_len)) return true;
        if (f.num == 6 && service_declares(f.data, f.len, rest, rest_len)) return true;
    }
    return false;
}

const nana_grpc_file *nana_grpc_files(size_t *count)
{
    *count = nana_grpc_embedded_count;
    return nana_grpc_embedded_files;
}

const nana_grpc_file *nana_grpc_file_by_name(const char *name, size_t n)
{
    for (size_t i = 0; i < nana_grpc_embedded_count; i++) {
        const nana_grpc_file *f = &nana_grpc_embedded_files[i];
        if (strlen(f->name) == n && memcmp(f->name, name, n) == 0) return f;
    }
    return NULL;
}

const nana_grpc_file *nana_grpc_file_by_symbol(const char *symbol, size_t n)
{
    for (size_t i = 0; i < nana_grpc_embedded_count; i++)
        if (nana_grpc_file_declares(&nana_grpc_embedded_files[i], symbol, n))
            return &nana_grpc_embedded_files[i];
    return NULL;
}

size_t nana_grpc_file_deps(const nana_grpc_file *f, const nana_grpc_file **out, size_t max)
{
    size_t count = 0;
    rd r = {f->proto, f->proto + f->len};
    fld fl;
    while (next_field(&r, &fl) && count < max) {
        if (fl.num != 3 || fl.wire != 2) continue;
        const nana_grpc_file *dep = nana_grpc_file_by_name((const char *)fl.data, fl.len);
        if (dep) out[count++] = dep;
    }
    return count;
}

int nana_grpc_service_names(nana_arena *a, const char ***names, size_t *count)
{
    size_t total = 0;
    for (int pass = 0; pass < 2; pass++) {
        size_t at = 0;
        for (size_t i = 0; i < nana_grpc_embedded_count; i++) {
            const nana_grpc_file *file = &nana_grpc_embedded_files[i];
            const uint8_t *pkg;
            size_t pkg_len;
            string_field(file->proto, file->len, 2, &pkg, &pkg_len);
            rd r = {file->proto, file->proto + file->len};
            fld f;
            while (next_field(&r, &f)) {
                if (f.num != 6 || f.wire != 2) continue;
                if (pass == 0) {
                    total++;
                    continue;
                }
                const uint8_t *name;
                size_t name_len;
                string_field(f.data, f.len, 1, &name, &name_len);
                char *full = nana_arena_alloc(a, pkg_len + name_len + 2);
                if (!full) return nana_err_set(NANA_ERR_NOMEM, "out of memory for service names");
                memcpy(full, pkg, pkg_len);
                size_t o = pkg_len;
                if (pkg_len) full[o++] = '.';
                memcpy(full + o, name, name_len);
                full[o + name_len] = 0;
                (*names)[at++] = full;
            }
        }
        if (pass == 0) {
            *names = nana_arena_alloc(a, (total ? total : 1) * sizeof(**names));
            if (!*names) return nana_err_set(NANA_ERR_NOMEM, "out of memory for service names");
        }
    }
    *count = total;
    return 0;
}
