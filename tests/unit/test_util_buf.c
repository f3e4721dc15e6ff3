/*
 * test_util_buf.c - nana_buf, nana_val, strict number parsing and the error module.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "util/nana_buf.h"
#include "util/nana_err.h"
#include "util/nana_freelist.h"
#include "util/nana_parse.h"
#include "util/nana_val.h"

#include <stdlib.h>
#include <string.h>

static void test_buf_append_and_detach(void **state)
{
    (void)state;
    nana_buf b;
    nana_buf_init(&b, 0);
    assert_int_equal(nana_buf_puts(&b, "hello"), 0);
    assert_int_equal(nana_buf_putc(&b, ' '), 0);
    assert_int_equal(nana_buf_printf(&b, "%d-%s", 42, "x"), 0);
    assert_string_equal(b.data, "hello 42-x");
    assert_int_equal(b.len, 10);
    for (int i = 0; i < 10000; i++)
        assert_int_equal(nana_buf_putc(&b, 'a'), 0);
    assert_int_equal(b.len, 10010);
    assert_int_equal(b.data[b.len], '\0');
    size_t n;
    char *p = nana_buf_detach(&b, &n);
    assert_int_equal(n, 10010);
    assert_null(b.data);
    free(p);
    p = nana_buf_detach(&b, &n);
    assert_non_null(p);
    assert_int_equal(n, 0);
    assert_string_equal(p, "");
    free(p);
}

static void test_buf_limit(void **state)
{
    (void)state;
    nana_buf b;
    nana_buf_init(&b, 8);
    assert_int_equal(nana_buf_puts(&b, "12345678"), 0);
    assert_int_equal(nana_buf_putc(&b, '9'), NANA_ERR_TOOBIG);
    assert_non_null(strstr(nana_errmsg(), "limit of 8"));
    assert_int_equal(nana_buf_printf(&b, "%s", "x"), NANA_ERR_TOOBIG);
    assert_int_equal(b.len, 8);
    nana_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_int_equal(nana_buf_append(&b, "abc", 3), 0);
    assert_string_equal(b.data, "abc");
    nana_buf_free(&b);
    nana_buf_free(NULL);
}

static void test_val_refcount(void **state)
{
    (void)state;
    nana_val *v = nana_val_new("{\"a\":1}", 7);
    assert_non_null(v);
    assert_int_equal(v->len, 7);
    assert_string_equal(v->data, "{\"a\":1}");
    assert_ptr_equal(nana_val_ref(v), v);
    nana_val_unref(v);
    assert_string_equal(v->data, "{\"a\":1}");
    nana_val_unref(v);
    nana_val_unref(NULL);
    nana_val *e = nana_val_new(NULL, 0);
    assert_non_null(e);
    assert_string_equal(e->data, "");
    nana_val_unref(e);
}

/* The other encoding: attached once, the first one wins, freed with the
 * value (ASan would report the loser or the winner leaking). */
static void test_val_alt(void **state)
{
    (void)state;
    nana_val *v = nana_val_new("\"x\"", 3);
    assert_null(nana_val_alt(v));
    nana_val *a = nana_val_new("\xa1x", 2);
    assert_ptr_equal(nana_val_set_alt(v, a), a);
    assert_ptr_equal(nana_val_alt(v), a);
    nana_val *b = nana_val_new("\xa1y", 2);
    assert_ptr_equal(nana_val_set_alt(v, b), a); /* |b| was dropped */
    nana_val_ref(v);
    nana_val_unref(v);
    assert_ptr_equal(nana_val_alt(v), a);
    nana_val_unref(v); /* frees |a| too */
}

static void test_err_messages(void **state)
{
    (void)state;
    assert_int_equal(nana_err_set(NANA_ERR_INVALID, "bad %s", "thing"), NANA_ERR_INVALID);
    assert_string_equal(nana_errmsg(), "bad thing");
    char big[1000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    nana_err_set_str(NANA_ERR_IO, big);
    assert_int_equal(strlen(nana_errmsg()), NANA_ERRMSG_MAX - 1);
    assert_string_equal(nana_strerror(NANA_ERR_NOTFOUND), "NANA_ERR_NOTFOUND");
    assert_string_equal(nana_strerror(12345), "NANA_ERR_UNKNOWN");
    for (int c = 0; c >= NANA_ERR_PERM; c--)
        assert_null(strstr(nana_strerror(c), "UNKNOWN"));
}

static void test_parse_numbers(void **state)
{
    (void)state;
    uint64_t u = 7;
    assert_int_equal(nana_parse_u64("42", 0, 100, &u), 0);
    assert_int_equal(u, 42);
    assert_int_equal(nana_parse_u64("18446744073709551615", 0, UINT64_MAX, &u), 0);
    assert_true(u == UINT64_MAX);
    u = 7;
    static const char *bad[] = {"", " 1", "-1", "+1", "1x", "0x10", "1 ", "abc", NULL};
    for (size_t i = 0; bad[i]; i++)
        assert_int_equal(nana_parse_u64(bad[i], 0, 100, &u), NANA_ERR_INVALID);
    assert_int_equal(nana_parse_u64(NULL, 0, 100, &u), NANA_ERR_INVALID);
    assert_int_equal(nana_parse_u64("101", 0, 100, &u), NANA_ERR_TOOBIG);
    assert_int_equal(nana_parse_u64("0", 1, 100, &u), NANA_ERR_TOOBIG);
    assert_int_equal(nana_parse_u64("18446744073709551616", 0, UINT64_MAX, &u), NANA_ERR_TOOBIG);
    assert_int_equal(u, 7);

    double d = 0;
    assert_int_equal(nana_parse_double("2.5", 0, 10, &d), 0);
    assert_true(d == 2.5);
    assert_int_equal(nana_parse_double("-1e-3", -1, 1, &d), 0);
    assert_true(d == -1e-3);
    static const char *badd[] = {"", " 1", "1.5s", "nan", "x", NULL};
    for (size_t i = 0; badd[i]; i++)
        assert_int_equal(nana_parse_double(badd[i], -10, 10, &d), NANA_ERR_INVALID);
    assert_int_equal(nana_parse_double("inf", 0, 10, &d), NANA_ERR_TOOBIG);
    assert_int_equal(nana_parse_double("1e999", 0, 10, &d), NANA_ERR_TOOBIG);
    assert_int_equal(nana_parse_double("10.5", 0, 10, &d), NANA_ERR_TOOBIG);
}

/* The free list hands back what it kept, last in first out, keeps no more
 * than its bound (the rest go back to malloc: ASan sees no leak), and
 * objects smaller than a pointer still hold its link. */
static void test_freelist(void **state)
{
    (void)state;
    nana_freelist f;
    nana_freelist_init(&f, 48, 3);
    void *p[5];
    for (int i = 0; i < 5; i++) {
        p[i] = nana_freelist_get(&f);
        assert_non_null(p[i]);
        memset(p[i], 0xab, 48); /* the whole object is the caller's */
    }
    assert_int_equal(f.n, 0);
    for (int i = 0; i < 5; i++)
        nana_freelist_put(&f, p[i]);
    assert_int_equal(f.n, 3); /* p[3] and p[4] were freed */
    assert_ptr_equal(nana_freelist_get(&f), p[2]);
    assert_ptr_equal(nana_freelist_get(&f), p[1]);
    nana_freelist_put(&f, NULL);
    assert_int_equal(f.n, 1);
    nana_freelist_put(&f, p[1]);
    nana_freelist_put(&f, p[2]);
    nana_freelist_drain(&f);
    assert_int_equal(f.n, 0);
    assert_null(f.head);
    void *q = nana_freelist_get(&f); /* usable after a drain */
    nana_freelist_put(&f, q);
    nana_freelist_drain(&f);

    nana_freelist tiny;
    nana_freelist_init(&tiny, 1, 10);
    assert_int_equal(tiny.size, sizeof(void *));
    void *a = nana_freelist_get(&tiny), *b = nana_freelist_get(&tiny);
    nana_freelist_put(&tiny, a);
    nana_freelist_put(&tiny, b);
    assert_ptr_equal(nana_freelist_get(&tiny), b);
    assert_ptr_equal(nana_freelist_get(&tiny), a);
    free(a);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_append_and_detach),
        cmocka_unit_test(test_buf_limit),
        cmocka_unit_test(test_val_refcount),
        cmocka_unit_test(test_val_alt),
        cmocka_unit_test(test_freelist),
        cmocka_unit_test(test_err_messages),
        cmocka_unit_test(test_parse_numbers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
