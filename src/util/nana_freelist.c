/*
 * nana_freelist.c - see nana_freelist.h.
 */
#include "util/nana_freelist.h"

#include <stdlib.h>

void nana_freelist_init(nana_freelist *f, size_t size, size_t max)
{
    f->head = NULL;
    f->n = 0;
    f->max = max;
    f->size = size < sizeof(void *) ? sizeof(void *) : size;
}

void *nana_freelist_get(nana_freelist *f)
{
    void *p = f->head;
    if (!p) return malloc(f->size);
    f->head = *(void **)p;
    f->n--;
    return p;
}

void nana_freelist_put(nana_freelist *f, void *p)
{
    if (!p) return;
    if (f->n >= f->max) {
        free(p);
        return;
    }
    *(void **)p = f->head;
    f->head = p;
    f->n++;
}

void nana_freelist_drain(nana_freelist *f)
{
    while (f->head) {
        void *p = f->head;
        f->head = *(void **)p;
        free(p);
    }
    f->n = 0;
}
