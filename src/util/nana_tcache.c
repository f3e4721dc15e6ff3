/*
 * nana_tcache.c - see nana_tcache.h.
 *
 * Every block starts with a 16-byte header holding its class (CLASSES for
 * a block too large for any, which malloc serves alone); the caller gets
 * the bytes after it. A thread's cache is a list head and a count per
 * class in thread-local storage; the first block a thread keeps registers
 * the cache with a pthread key, whose destructor drains it when the
 * thread ends; the thread that calls exit() drains its own at exit.
 */
#include "util/nana_tcache.h"

#include "util/nana_mem.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#define NANA_TCACHE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NANA_TCACHE_ASAN 1
#endif
#endif

#ifdef NANA_TCACHE_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n)   ASAN_POISON_MEMORY_REGION(p, n)
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define POISON(p, n)   ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

enum { HEADER = 16, CLASSES = 7, SMALLEST = 64 }; /* 64, 128, ..., 4096 */

typedef struct tcache {
    void *head[CLASSES];
    unsigned n[CLASSES];
    bool registered;
} tcache;

static _Thread_local tcache tc;
static pthread_key_t drain_key;
static pthread_once_t drain_once = PTHREAD_ONCE_INIT;

static void drain_at_exit(void *arg)
{
    (void)arg;
    nana_tcache_drain();
    tc.registered = false; /* a later free (another key's destructor) registers again */
}

/* At exit(): the cache of the thread that exits the process (no key
 * destructor runs for it). */
static void drain_at_process_exit(void)
{
    nana_tcache_drain();
}

static void make_key(void)
{
    (void)pthread_key_create(&drain_key, drain_at_exit);
    (void)atexit(drain_at_process_exit);
}

/* The class of a block of |n| bytes after the header; CLASSES: none. */
static unsigned class_of(size_t n)
{
    if (n > SIZE_MAX - HEADER) return CLASSES; /* (and too large for malloc) */
    size_t want = n + HEADER;
    unsigned k = 0;
    for (size_t size = SMALLEST; k < CLASSES; k++, size <<= 1)
        if (want <= size) return k;
    return CLASSES;
}

static size_t class_size(unsigned k)
{
    return (size_t)SMALLEST << k;
}

void *nana_tcache_alloc(size_t n)
{
    unsigned k = class_of(n);
    uint8_t *b;
    if (k < CLASSES && tc.head[k]) {
        b = tc.head[k];
        UNPOISON(b, class_size(k));
        tc.head[k] = *(void **)(void *)(b + HEADER);
        tc.n[k]--;
    } else {
        if (n > SIZE_MAX - HEADER) return NULL;
        b = nana_malloc(k < CLASSES ? class_size(k) : n + HEADER);
        if (!b) return NULL;
    }
    b[0] = (uint8_t)k;
    return b + HEADER;
}

void *nana_tcache_calloc(size_t count, size_t size)
{
    if (size && count > SIZE_MAX / size) return NULL;
    void *p = nana_tcache_alloc(count * size);
    if (p) memset(p, 0, count * size);
    return p;
}

void nana_tcache_free(void *p)
{
    if (!p) return;
    uint8_t *b = (uint8_t *)p - HEADER;
    unsigned k = b[0];
    if (k >= CLASSES || tc.n[k] >= NANA_TCACHE_KEEP) {
        nana_free(b);
        return;
    }
    if (!tc.registered) {
        (void)pthread_once(&drain_once, make_key);
        (void)pthread_setspecific(drain_key, &tc);
        tc.registered = true;
    }
    *(void **)(void *)(b + HEADER) = tc.head[k];
    tc.head[k] = b;
    tc.n[k]++;
    POISON(b, class_size(k));
}

void *nana_tcache_realloc(void *p, size_t n)
{
    if (!p) return nana_tcache_alloc(n);
    uint8_t *b = (uint8_t *)p - HEADER;
    unsigned k = b[0];
    size_t have = k < CLASSES ? class_size(k) - HEADER : 0;
    if (k < CLASSES && n <= have) return p; /* it fits where it is */
    if (k == CLASSES) {                     /* too large for a class: malloc's */
        if (n > SIZE_MAX - HEADER) return NULL;
        uint8_t *nb = nana_realloc(b, n + HEADER);
        if (!nb) return NULL;
        return nb + HEADER; /* still malloc's alone, whatever its size now */
    }
    void *q = nana_tcache_alloc(n);
    if (!q) return NULL;
    memcpy(q, p, have);
    nana_tcache_free(p);
    return q;
}

size_t nana_tcache_kept(void)
{
    size_t n = 0;
    for (unsigned k = 0; k < CLASSES; k++)
        n += tc.n[k];
    return n;
}

void nana_tcache_drain(void)
{
    for (unsigned k = 0; k < CLASSES; k++) {
        while (tc.head[k]) {
            uint8_t *b = tc.head[k];
            UNPOISON(b, class_size(k));
            tc.head[k] = *(void **)(void *)(b + HEADER);
            nana_free(b);
        }
        tc.n[k] = 0;
    }
}
