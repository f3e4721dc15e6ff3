/*
 * nana_freelist.h - a bounded free list of same-sized objects, for one
 * thread's hot path.
 *
 * A call on the I/O thread allocates a few small objects (its stream, the
 * chunk that references its reply) and frees them when the reply is
 * acknowledged. With hundreds of calls in flight those frees overflow
 * malloc's per-thread cache and every allocation goes to the arena. A
 * free list keeps up to |max| freed objects for the next calls; more are
 * given back to malloc. Not thread-safe: one owner thread (or no threads
 * at all) per list.
 */
#ifndef NANA_FREELIST_H
#define NANA_FREELIST_H

#include <stddef.h>

typedef struct nana_freelist {
    void *head;  /* freed objects, linked through their first bytes */
    size_t n;    /* objects on the list */
    size_t max;  /* objects kept at most */
    size_t size; /* bytes per object (at least a pointer) */
} nana_freelist;

/* An empty list of |size|-byte objects keeping up to |max|. */
void nana_freelist_init(nana_freelist *f, size_t size, size_t max);

/* An object of f->size bytes, contents undefined (a kept one, else a new
 * malloc); NULL when out of memory. The caller owns it until it gives it
 * back with nana_freelist_put. */
void *nana_freelist_get(nana_freelist *f);

/* Takes |p| (from nana_freelist_get on this list; NULL is ignored) back. */
void nana_freelist_put(nana_freelist *f, void *p);

/* Frees every kept object. The list stays usable. */
void nana_freelist_drain(nana_freelist *f);

#endif
