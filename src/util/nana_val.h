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
    uint8_t form;     /* for an alt: which encoding it is (the maker's tag); 0 otherwise */
    /* The same value in another encoding, made once by whoever needs it
     * (the NanaSQLite door keeps its msgpack form here, so a cached read
     * is a copy, not a parse); freed with the value. */
    _Atomic(struct nana_val *) alt;
    char data[]; /* len bytes + NUL */
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

/* The other encoding attached to |v|, or NULL (borrowed: valid while |v| is). */
static inline nana_val *nana_val_alt(nana_val *v)
{
    return atomic_load_explicit(&v->alt, memory_order_acquire);
}

/*
 * Attaches |alt| (taking the caller's reference) as |v|'s other encoding,
 * unless another thread attached one first; then |alt| is dropped. Returns
 * the encoding now attached (borrowed, like nana_val_alt).
 */
nana_val *nana_val_set_alt(nana_val *v, nana_val *alt);

/* Drops one reference, freeing the value at zero. NULL-safe. */
void nana_val_unref(nana_val *v);

#endif
