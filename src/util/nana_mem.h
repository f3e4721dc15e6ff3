/*
 * nana_mem.h - the allocator of the call core and the doors, with a switch
 * for tests that makes allocations fail.
 *
 * Failure paths are tested the way SQLite tests them: a test arms the
 * allocator to fail the Nth allocation from now (or every one after it),
 * runs a call, and checks that the caller still got an answer and nothing
 * leaked; then does it again for the next N until a run sees no failure.
 * Armed or not, these are malloc/calloc/realloc/free with one atomic load
 * on the way in: cheap enough for every path.
 */
#ifndef NANA_MEM_H
#define NANA_MEM_H

#include <stdbool.h>
#include <stddef.h>

/* malloc, calloc, realloc and free, which a test can make fail (NULL). */
void *nana_malloc(size_t n);
void *nana_calloc(size_t count, size_t size);
void *nana_realloc(void *p, size_t n);
void nana_free(void *p);

/*
 * Tests only: the |nth| allocation from now (1 = the next one) fails, and
 * with |sticky| every allocation after it too; 0 disarms. Counts
 * allocations of every thread.
 */
void nana_mem_fail_at(unsigned long nth, bool sticky);

/* Tests only: how many allocations failed since the switch was last armed. */
unsigned long nana_mem_failures(void);

#endif
