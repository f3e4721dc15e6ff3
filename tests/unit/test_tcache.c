/*
 * test_tcache.c - the per-thread cache of freed blocks (nana_tcache): a
 * freed block serves the next allocation of its class on the same thread,
 * a class keeps at most NANA_TCACHE_KEEP, large blocks bypass it, realloc
 * keeps the bytes across classes, calloc zeroes and refuses overflow, a
 * failing allocator is seen, and a thread's cache is given back when the
 * thread ends (LeakSanitizer in the sanitizer build checks that too).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "util/nana_mem.h"
#include "util/nana_tcache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static void test_reuse_by_class(void **state)
{
    (void)state;
    nana_tcache_drain();
    void *a = nana_tcache_alloc(100); /* the 128-byte class */
    assert_non_null(a);
    assert_int_equal((uintptr_t)a % 16, 0);
    memset(a, 0xab, 100);
    nana_tcache_free(a);
    assert_int_equal(nana_tcache_kept(), 1);
    void *b = nana_tcache_alloc(90); /* same class: the same block */
    assert_ptr_equal(a, b);
    assert_int_equal(nana_tcache_kept(), 0);
    void *c = nana_tcache_alloc(200); /* another class: a new one */
    assert_ptr_not_equal(b, c);
    nana_tcache_free(b);
    nana_tcache_free(c);
    assert_int_equal(nana_tcache_kept(), 2);
    nana_tcache_free(NULL);
    nana_tcache_drain();
    assert_int_equal(nana_tcache_kept(), 0);
}

static void test_bounded_and_large(void **state)
{
    (void)state;
    nana_tcache_drain();
    enum { N = NANA_TCACHE_KEEP + 20 };
    void *p[N];
    for (int i = 0; i < N; i++)
        assert_non_null(p[i] = nana_tcache_alloc(1000));
    for (int i = 0; i < N; i++)
        nana_tcache_free(p[i]);
    assert_int_equal(nana_tcache_kept(), NANA_TCACHE_KEEP); /* the rest went back */
    void *big = nana_tcache_alloc(100000);                  /* no class: malloc's */
    assert_non_null(big);
    memset(big, 1, 100000);
    nana_tcache_free(big);
    assert_int_equal(nana_tcache_kept(), NANA_TCACHE_KEEP);
    nana_tcache_drain();
}

static void test_realloc_calloc(void **state)
{
    (void)state;
    char *p = nana_tcache_realloc(NULL, 10);
    assert_non_null(p);
    memcpy(p, "0123456789", 10);
    char *q = nana_tcache_realloc(p, 40); /* still fits its class */
    assert_ptr_equal(p, q);
    q = nana_tcache_realloc(q, 3000); /* another class */
    assert_non_null(q);
    assert_memory_equal(q, "0123456789", 10);
    q = nana_tcache_realloc(q, 50000); /* past every class */
    assert_non_null(q);
    assert_memory_equal(q, "0123456789", 10);
    q = nana_tcache_realloc(q, 20); /* malloc's block, smaller */
    assert_non_null(q);
    assert_memory_equal(q, "0123456789", 10);
    nana_tcache_free(q);
    unsigned char *z = nana_tcache_alloc(300);
    memset(z, 0xff, 300);
    nana_tcache_free(z);
    z = nana_tcache_calloc(30, 10); /* the dirty block again: zeroed */
    assert_non_null(z);
    for (int i = 0; i < 300; i++)
        assert_int_equal(z[i], 0);
    nana_tcache_free(z);
    assert_null(nana_tcache_calloc(SIZE_MAX / 2, 4));
    assert_null(nana_tcache_alloc(SIZE_MAX - 4));
    nana_tcache_drain();
}

static void test_failing_allocator(void **state)
{
    (void)state;
    nana_tcache_drain();
    nana_mem_fail_at(1, true);
    assert_null(nana_tcache_alloc(100));
    char *p = nana_tcache_realloc(NULL, 10);
    assert_null(p);
    nana_mem_fail_at(0, false);
    p = nana_tcache_alloc(10);
    assert_non_null(p);
    nana_mem_fail_at(1, true);
    assert_null(nana_tcache_realloc(p, 5000)); /* the old block stays */
    nana_mem_fail_at(0, false);
    p[0] = 'x';
    nana_tcache_free(p);
    nana_tcache_drain();
}

static void *thread_main(void *arg)
{
    size_t *kept = arg;
    for (int i = 0; i < 10; i++)
        nana_tcache_free(nana_tcache_alloc((size_t)(64 << (i % 6))));
    *kept = nana_tcache_kept();
    return NULL;
}

static void test_thread_end_gives_back(void **state)
{
    (void)state;
    size_t kept = 0;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, thread_main, &kept), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_true(kept > 0);                   /* its cache held blocks; its end gave them back */
    assert_int_equal(nana_tcache_kept(), 0); /* and this thread's is its own */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reuse_by_class),        cmocka_unit_test(test_bounded_and_large),
        cmocka_unit_test(test_realloc_calloc),        cmocka_unit_test(test_failing_allocator),
        cmocka_unit_test(test_thread_end_gives_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
