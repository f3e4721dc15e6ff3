/*
 * nana_tcache.h - a per-thread cache of freed blocks by size class, for
 * what a hot path allocates and frees on every call: a gRPC call's own
 * block, and the state nghttp3 makes for each request stream.
 *
 * A block is allocated with nana_tcache_alloc and freed with
 * nana_tcache_free, on any thread: a freed block goes to the freeing
 * thread's cache (up to NANA_TCACHE_KEEP blocks per class), from which
 * that thread's next allocation of the class is served without malloc.
 * Classes are powers of two from 64 to 4096 bytes (a 16-byte header
 * included); larger blocks go straight to malloc and back. A thread's
 * cache is given back to malloc when the thread ends. Allocation goes
 * through nana_malloc, so the failing allocator of the tests reaches it.
 * Under AddressSanitizer a cached block is poisoned: a use after free
 * is still reported.
 */
#ifndef NANA_TCACHE_H
#define NANA_TCACHE_H

#include <stddef.h>

/* Blocks kept per class and thread (4096-byte class: 512 KiB at most). */
#define NANA_TCACHE_KEEP 128

/* |n| bytes (aligned for any type), or NULL when out of memory. The
 * caller owns the block until nana_tcache_free. */
void *nana_tcache_alloc(size_t n);

/* |count| * |size| zeroed bytes, or NULL (also on overflow). */
void *nana_tcache_calloc(size_t count, size_t size);

/* Resizes a block of nana_tcache_alloc (NULL: a new one); NULL when out of
 * memory, the old block then unchanged. */
void *nana_tcache_realloc(void *p, size_t n);

/* Frees a block of nana_tcache_alloc; NULL is ignored. Any thread. */
void nana_tcache_free(void *p);

/* Blocks the calling thread's cache keeps now (for tests). */
size_t nana_tcache_kept(void);

/* Gives the calling thread's cached blocks back to malloc. */
void nana_tcache_drain(void);

#endif
