/*
 * nana_val.c - reference-counted immutable byte strings.
 */
#include "util/nana_val.h"

#include "util/nana_err.h"

#include <stdlib.h>
#include <string.h>

nana_val *nana_val_new(const void *p, size_t len)
{
    if (len > NANA_VAL_MAX_LEN) {
        (void)nana_err_set(NANA_ERR_TOOBIG, "value of %zu bytes is too large", len);
        return NULL;
    }
    nana_val *v = malloc(sizeof(*v) + len + 1);
    if (!v) {
        (void)nana_err_set(NANA_ERR_NOMEM, "out of memory for a %zu-byte value", len);
        return NULL;
    }
    atomic_init(&v->refs, 1);
    atomic_init(&v->alt, NULL);
    v->len = (uint32_t)len;
    if (len) memcpy(v->data, p, len);
    v->data[len] = '\0';
    return v;
}

nana_val *nana_val_set_alt(nana_val *v, nana_val *alt)
{
    nana_val *none = NULL;
    if (atomic_compare_exchange_strong_explicit(&v->alt, &none, alt, memory_order_acq_rel,
                                                memory_order_acquire))
        return alt;
    nana_val_unref(alt); /* another thread was first: |none| holds its encoding */
    return none;
}

void nana_val_unref(nana_val *v)
{
    if (!v) return;
    if (atomic_fetch_sub_explicit(&v->refs, 1, memory_order_acq_rel) == 1) {
        nana_val_unref(atomic_load_explicit(&v->alt, memory_order_relaxed));
        free(v);
    }
}
