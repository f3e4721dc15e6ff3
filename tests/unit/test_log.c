/*
 * test_log.c - the logger's rate limit, on a fake clock: a burst passes,
 * the rest of a flood is counted and reported in one "suppressed N" line
 * when the class may write again (before its next line, at another
 * class's line once the bucket refilled, or at flush), classes are
 * independent, a full class table loses no count, and nana_log_always is
 * never limited.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "util/nana_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t fake_ns;

static uint64_t fake_clock(void)
{
    return fake_ns;
}

/* Lines go to a temporary file; read_log returns what was written since the last call. */
static FILE *out;
static long out_pos;

static int setup(void **state)
{
    (void)state;
    out = tmpfile();
    assert_non_null(out);
    out_pos = 0;
    fake_ns = 1000000000ull;
    nana_log_set_fd(fileno(out));
    nana_log_set_clock(fake_clock);
    nana_log_set_limit(5, 2.0);
    nana_log_set_level(NANA_LOG_DEBUG);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    nana_log_flush();
    nana_log_set_fd(STDERR_FILENO);
    nana_log_set_clock(NULL);
    nana_log_set_limit(NANA_LOG_BURST, NANA_LOG_RATE);
    nana_log_set_level(NANA_LOG_INFO);
    fclose(out);
    return 0;
}

/* What was written since the last call (static buffer). */
static const char *read_log(void)
{
    static char buf[1 << 20];
    fflush(out);
    long end = lseek(fileno(out), 0, SEEK_END);
    size_t n = (size_t)(end - out_pos);
    if (n >= sizeof(buf)) n = sizeof(buf) - 1;
    ssize_t r = pread(fileno(out), buf, n, out_pos);
    buf[r > 0 ? r : 0] = '\0';
    out_pos = end;
    return buf;
}

/* Occurrences of |needle| in |hay|. */
static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* The N of every "suppressed N similar messages" line in |log|, added up. */
static unsigned long suppressed_total(const char *log)
{
    unsigned long total = 0;
    for (const char *p = strstr(log, "suppressed "); p; p = strstr(p + 1, "suppressed "))
        total += strtoul(p + 11, NULL, 10);
    return total;
}

static void test_burst_then_summary_before_next_line(void **state)
{
    (void)state;
    for (int i = 0; i < 20; i++)
        nana_log(NANA_LOG_INFO, "flood line %d", i);
    const char *log = read_log();
    assert_int_equal(count(log, "flood line"), 5);
    assert_int_equal(count(log, "suppressed"), 0);
    fake_ns += 1000000000ull; /* two tokens back */
    nana_log(NANA_LOG_INFO, "flood line %d", 99);
    log = read_log();
    assert_non_null(strstr(log, "suppressed 15 similar messages in 1.0 s: \"flood line %d\""));
    assert_non_null(strstr(log, "flood line 99"));
    assert_true(strstr(log, "suppressed") < strstr(log, "flood line 99"));
    assert_non_null(strstr(log, "INFO  suppressed"));
}

static void test_classes_are_independent(void **state)
{
    (void)state;
    for (int i = 0; i < 10; i++)
        nana_log(NANA_LOG_WARN, "class a %d", i);
    for (int i = 0; i < 3; i++)
        nana_log(NANA_LOG_WARN, "class b %d", i);
    const char *log = read_log();
    assert_int_equal(count(log, "class a"), 5);
    assert_int_equal(count(log, "class b"), 3);
}

static void test_flood_that_ended_is_reported(void **state)
{
    (void)state;
    for (int i = 0; i < 30; i++)
        nana_log(NANA_LOG_ERROR, "ended flood %d", i);
    assert_int_equal(count(read_log(), "ended flood"), 5);
    /* The flood's class never logs again; another line, once its bucket
     * refilled and the once-a-second scan runs, brings its count out. */
    fake_ns += 2000000000ull;
    nana_log(NANA_LOG_INFO, "something else");
    const char *log = read_log();
    assert_non_null(strstr(log, "ERROR suppressed 25 similar messages"));
    assert_non_null(strstr(log, "something else"));
}

static void test_flush_reports_pending(void **state)
{
    (void)state;
    for (int i = 0; i < 12; i++)
        nana_log(NANA_LOG_WARN, "flushed %d", i);
    read_log();
    nana_log_flush();
    const char *log = read_log();
    assert_non_null(strstr(log, "suppressed 7 similar messages"));
    nana_log_flush(); /* nothing twice */
    assert_int_equal(count(read_log(), "suppressed"), 0);
}

static void test_always_is_never_limited(void **state)
{
    (void)state;
    for (int i = 0; i < 40; i++)
        nana_log_always(NANA_LOG_ERROR, "database %d is damaged", i);
    assert_int_equal(count(read_log(), "is damaged"), 40);
}

static void test_rate_refills(void **state)
{
    (void)state;
    int written = 0;
    /* 10 s at 4 lines a second: burst 5, then 2 a second. */
    for (int i = 0; i < 40; i++) {
        nana_log(NANA_LOG_INFO, "steady %d", i);
        fake_ns += 250000000ull;
    }
    const char *log = read_log();
    written = count(log, "INFO  steady");
    unsigned long dropped = suppressed_total(log);
    assert_true(written >= 22 && written <= 27);
    nana_log_flush();
    dropped += suppressed_total(read_log()); /* read_log reuses the buffer |log| points to */
    assert_int_equal((unsigned long)written + dropped, 40);
}

/* More classes than the table holds: evicted classes report their counts first. */
static void test_full_table_loses_no_count(void **state)
{
    (void)state;
    enum { CLASSES = 300, EACH = 8 };
    static char fmts[CLASSES][24];
    for (int c = 0; c < CLASSES; c++)
        snprintf(fmts[c], sizeof(fmts[c]), "many class %d %%d", c);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
#pragma GCC diagnostic ignored "-Wformat-security"
    for (int c = 0; c < CLASSES; c++)
        for (int i = 0; i < EACH; i++)
            nana_log(NANA_LOG_INFO, fmts[c], i);
#pragma GCC diagnostic pop
    const char *log = read_log();
    unsigned long written = (unsigned long)count(log, "INFO  many class");
    unsigned long dropped = suppressed_total(log);
    nana_log_flush();
    dropped += suppressed_total(read_log());
    assert_int_equal(written + dropped, CLASSES * EACH);
    assert_int_equal(written, CLASSES * 5);
}

static void test_limit_off(void **state)
{
    (void)state;
    nana_log_set_limit(0, 0);
    for (int i = 0; i < 100; i++)
        nana_log(NANA_LOG_DEBUG, "unlimited %d", i);
    assert_int_equal(count(read_log(), "unlimited"), 100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_burst_then_summary_before_next_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_classes_are_independent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flood_that_ended_is_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flush_reports_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_always_is_never_limited, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rate_refills, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_table_loses_no_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limit_off, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
