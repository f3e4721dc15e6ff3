/*
 * nana_arena.c - see nana_arena.h.
 */
#include "util/nana_arena.h"

#include "util/nana_mem.h"

#include <stdalign.h>
#include <stdint.h>
#include <string.h>

struct nana_arena_blk {
    nana_arena_blk *next;
    size_t used, cap;
    _Alignas(max_align_t) char data[];
};

#define ARENA_BLOCK 4096
#define ALIGNED(n)  (((n) + alignof(max_align_t) - 1) & ~(size_t)(alignof(max_align_t) - 1))

void nana_arena_init(nana_arena *a, void *block, size_t cap)
{
    a->head = NULL;
    /* The owner's block is used from an aligned start. */
    uintptr_t p = (uintptr_t)block, q = ALIGNED(p);
    a->first = block && cap > q - p ? (char *)q : NULL;
    a->first_cap = a->first ? cap - (q - p) : 0;
    a->first_used = 0;
}

void *nana_arena_alloc(nana_arena *a, size_t n)
{
    n = ALIGNED(n ? n : 1);
    if (a->first && a->first_cap - a->first_used >= n) {
        void *p = a->first + a->first_used;
        a->first_used += n;
        memset(p, 0, n);
        return p;
    }
    nana_arena_blk *b = a->head;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > ARENA_BLOCK ? n : ARENA_BLOCK;
        b = nana_malloc(sizeof(*b) + cap);
        if (!b) return NULL;
        b->cap = cap;
        b->used = 0;
        b->next = a->head;
        a->head = b;
    }
    void *p = b->data + b->used;
    b->used += n;
    memset(p, 0, n);
    return p;
}

char *nana_arena_dup(nana_arena *a, const void *p, size_t n)
{
    char *d = nana_arena_alloc(a, n + 1);
    if (!d) return NULL;
    if (n) memcpy(d, p, n);
    d[n] = 0;
    return d;
}

void nana_arena_free(nana_arena *a)
{
    nana_arena_blk *b = a->head;
    while (b) {
        nana_arena_blk *next = b->next;
        nana_free(b);
        b = next;
    }
    a->head = NULL;
    a->first_used = 0;
}
