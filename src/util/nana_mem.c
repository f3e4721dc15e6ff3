/*
 * nana_mem.c - see nana_mem.h. The failure switch is a countdown shared by
 * all threads: an allocation takes one tick; the one that takes the last
 * tick fails (and, when sticky, every later one).
 */
#include "util/nana_mem.h"

#include <stdatomic.h>
#include <stdlib.h>

static atomic_long countdown; /* > 0: armed; ticks left before the failure */
static atomic_bool sticky_fail;
static atomic_bool failing; /* the sticky failure has happened */
static atomic_ulong failures;

/* True when this allocation must fail. */
static bool should_fail(void)
{
    if (atomic_load_explicit(&countdown, memory_order_relaxed) <= 0) {
        if (!atomic_load_explicit(&failing, memory_order_relaxed)) return false;
        atomic_fetch_add(&failures, 1);
        return true;
    }
    if (atomic_fetch_sub(&countdown, 1) != 1) return false;
    if (atomic_load(&sticky_fail)) atomic_store(&failing, true);
    atomic_fetch_add(&failures, 1);
    return true;
}

void *nana_malloc(size_t n)
{
    return should_fail() ? NULL : malloc(n);
}

void *nana_calloc(size_t count, size_t size)
{
    return should_fail() ? NULL : calloc(count, size);
}

void *nana_realloc(void *p, size_t n)
{
    return should_fail() ? NULL : realloc(p, n);
}

void nana_free(void *p)
{
    free(p);
}

void nana_mem_fail_at(unsigned long nth, bool sticky)
{
    atomic_store(&failing, false);
    atomic_store(&sticky_fail, sticky);
    atomic_store(&failures, 0);
    atomic_store(&countdown, (long)nth);
}

unsigned long nana_mem_failures(void)
{
    return atomic_load(&failures);
}
