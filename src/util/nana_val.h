/*
 * nana_val.h - an immutable, reference-counted byte string.
 *
 * Values (JSON text) travel from the store's cache to callers without a
 * copy: the cache holds one reference, every reader that gets the value
 * takes another, and the last nana_val_unref() frees it. The bytes are
 * NUL-terminated (not counted in len). Reference counting is atomic, so a
 * value may be shared between threads.
 */
#ifndef NANA_VAL_H
#define NANA_VAL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct nana_val {
    atomic_uint refs; /* owners; the value is freed when it drops to 0 */
    uint32_t len;     /* bytes in data, excluding the trailing NUL */
    char data[];      /* len bytes + NUL */
} nana_val;

/* Largest length a nana_val can carry. */
#define NANA_VAL_MAX_LEN ((size_t)UINT32_MAX - 64)

/*
 * Copies |len| bytes into a new value with one reference, owned by the
 * caller. Returns NULL (and sets NANA_ERR_NOMEM / NANA_ERR_TOOBIG detail)
 * on failure.
 */
nana_val *nana_val_new(const void *p, size_t len);

/* Takes one more reference; returns |v|. */
static inline nana_val *nana_val_ref(nana_val *v)
{
    atomic_fetch_add_explicit(&v->refs, 1, memory_order_relaxed);
    return v;
}

/* Drops one reference, freeing the value at zero. NULL-safe. */
void nana_val_unref(nana_val *v);

#endif
