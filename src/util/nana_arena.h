/*
 * nana_arena.h - memory for one call: many small allocations freed at
 * once at the end.
 *
 * An arena may start in a block its owner keeps (a connection's, reused
 * call after call), so a call whose arguments fit there allocates nothing;
 * beyond it, blocks come from nana_malloc (and a test can make them fail).
 */
#ifndef NANA_ARENA_H
#define NANA_ARENA_H

#include <stddef.h>

typedef struct nana_arena_blk nana_arena_blk;

typedef struct nana_arena {
    nana_arena_blk *head; /* blocks from nana_malloc, newest first */
    char *first;          /* the owner's block, used first (may be NULL) */
    size_t first_cap, first_used;
} nana_arena;

/* An empty arena with no block of its own. */
#define NANA_ARENA_INIT                                                                            \
    {                                                                                              \
        NULL, NULL, 0, 0                                                                           \
    }

/* An empty arena that uses |block| (|cap| bytes, kept by the caller) first. */
void nana_arena_init(nana_arena *a, void *block, size_t cap);

/* |n| zeroed bytes, aligned for any object; NULL when out of memory. */
void *nana_arena_alloc(nana_arena *a, size_t n);

/* Copies |n| bytes and a NUL; NULL when out of memory. */
char *nana_arena_dup(nana_arena *a, const void *p, size_t n);

/* Frees what the arena allocated; the owner's block is the owner's. The
 * arena is then empty and ready for the next call. */
void nana_arena_free(nana_arena *a);

#endif
