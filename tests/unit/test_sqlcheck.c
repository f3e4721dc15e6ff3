/*
 * test_sqlcheck.c - the validator of caller-written SQL fragments, alone:
 * a table of accepted and refused clauses, column types and identifiers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "store/store_int.h"

#include <string.h>

static int check(const char *clause, nana_clause_kind kind, const nana_sql_policy *pol)
{
    return nana_sql_check_clause(clause, strlen(clause), kind, pol, 1000);
}

static void test_accepted_clauses(void **state)
{
    (void)state;
    const char *ok[] = {
        "age > 30",
        "age >= ? AND name = ?",
        "name = 'drop table users'", /* keywords inside a literal are data */
        "name = 'it''s'",
        "name = 'José'",
        "x IN (?, ?, ?)",
        "NOT (a = 1) OR b <> 2",
        "COUNT(*) > 1",
        "json_extract(value, '$.age') > 30",
        "LOWER(name) LIKE ?",
        "a BETWEEN 1 AND 10",
        "price * 1.5e3 < :limit",
        "t.col = @p AND $q != 1",
        "\"quoted_col\" = 1",
        "CASE WHEN a > 1 THEN 'x' ELSE 'y' END = 'x'",
        "abs ( x ) = 1",
        "a = .5 OR b = 0x1F",
        "a IS NULL",
        "a || b = 'ab'",
        "a\n AND\tb",
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        int rc = check(ok[i], NANA_CLAUSE_WHERE, NULL);
        if (rc) fail_msg("refused \"%s\": %s", ok[i], nana_errmsg());
    }
    assert_int_equal(check("name DESC, id ASC", NANA_CLAUSE_ORDER_BY, NULL), 0);
    assert_int_equal(check("COUNT(*) AS n", NANA_CLAUSE_COLUMN, NULL), 0);
    assert_int_equal(check("", NANA_CLAUSE_WHERE, NULL), 0);
}

static void test_refused_clauses(void **state)
{
    (void)state;
    const char *bad[] = {
        "1=1; DROP TABLE data",
        "1=1 -- comment",
        "1=1 /* comment */",
        "id = 1 UNION SELECT key FROM data",
        "id IN (SELECT id FROM other)",
        "EXISTS (SELECT 1)",
        "(SELECT MAX(y) FROM t) > 1",
        "a = 1 OR DELETE",
        "load_extension('x')",
        "\"load_extension\"('x')",
        "random() > 0",
        "sqlite_version() = 1",
        "a = 'unterminated",
        "a = \"unterminated",
        "\"bad name\" = 1",
        "((a = 1)",
        "a = 1)",
        "a % 2 = 0", /* outside NanaSQLite's character set */
        "a = [x]",
        "a = `x`",
        "a = 1 & 2",
        "pragma_table_info('data')",
        "a = 1 ATTACH",
        "name = ? ; ",
        "x = char(65)",
        "a = 1 AND insert",
        "key IN sqlite_schema", /* reads another table without SELECT */
        "key IN other_table",
        "key NOT IN secret",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = check(bad[i], NANA_CLAUSE_WHERE, NULL);
        if (rc != NANA_ERR_VALIDATION) fail_msg("accepted \"%s\"", bad[i]);
    }
    /* A NUL inside is refused. */
    assert_int_equal(nana_sql_check_clause("a = 1\0 OR 1", 11, NANA_CLAUSE_WHERE, NULL, 1000),
                     NANA_ERR_VALIDATION);
    /* Length cap. */
    char big[1200];
    memset(big, ' ', sizeof(big));
    memcpy(big, "a = 1", 5);
    assert_int_equal(nana_sql_check_clause(big, sizeof(big), NANA_CLAUSE_WHERE, NULL, 1000),
                     NANA_ERR_VALIDATION);
    assert_non_null(strstr(nana_errmsg(), "maximum length of 1000"));
    /* Deep nesting. */
    char deep[300];
    memset(deep, '(', 100);
    deep[100] = '1';
    memset(deep + 101, ')', 100);
    deep[201] = 0;
    assert_int_equal(check(deep, NANA_CLAUSE_WHERE, NULL), NANA_ERR_VALIDATION);
}

static void test_policies(void **state)
{
    (void)state;
    const char *extra[] = {"RANDOM"};
    const char *forbid[] = {"count"};
    nana_sql_policy allow = {.allow = extra, .n_allow = 1};
    nana_sql_policy deny = {.forbid = forbid, .n_forbid = 1};
    nana_sql_policy only = {.allow = extra, .n_allow = 1, .override_defaults = 1};
    nana_sql_policy none = {.forbid_all = 1};
    assert_int_equal(check("random() > 0", NANA_CLAUSE_WHERE, &allow), 0);
    assert_int_equal(check("COUNT(*) > 0", NANA_CLAUSE_WHERE, &deny), NANA_ERR_VALIDATION);
    assert_non_null(strstr(nana_errmsg(), "explicitly forbidden"));
    assert_int_equal(check("ABS(a) > 0", NANA_CLAUSE_WHERE, &only), NANA_ERR_VALIDATION);
    assert_int_equal(check("random() > 0", NANA_CLAUSE_WHERE, &only), 0);
    assert_int_equal(check("a = 1", NANA_CLAUSE_WHERE, &none), NANA_ERR_VALIDATION);
    assert_true(nana_sql_function_allowed("json_extract", 12, NULL));
    assert_false(nana_sql_function_allowed("load_extension", 14, NULL));
}

static void test_types_and_identifiers(void **state)
{
    (void)state;
    const char *ok_types[] = {"TEXT",
                              "INTEGER PRIMARY KEY",
                              "TEXT NOT NULL DEFAULT 0",
                              "REAL CHECK(x > 0)",
                              "INTEGER REFERENCES users(id)",
                              "VARCHAR(255)"};
    for (size_t i = 0; i < sizeof(ok_types) / sizeof(ok_types[0]); i++)
        assert_int_equal(nana_sql_check_type(ok_types[i], false), 0);
    const char *bad_types[] = {"TEXT; DROP TABLE x",
                               "TEXT DEFAULT 'x'",
                               "TEXT -- x",
                               "INTEGER AS (load_extension(1))",
                               "TEXT DEFAULT (SELECT 1)",
                               "TEXT\"",
                               ""};
    for (size_t i = 0; i < sizeof(bad_types) / sizeof(bad_types[0]); i++)
        assert_int_equal(nana_sql_check_type(bad_types[i], false), NANA_ERR_VALIDATION);
    const char *ok_add[] = {"TEXT", "VARCHAR(255)", "DOUBLE PRECISION", "DECIMAL(10,2)"};
    for (size_t i = 0; i < sizeof(ok_add) / sizeof(ok_add[0]); i++)
        assert_int_equal(nana_sql_check_type(ok_add[i], true), 0);
    const char *bad_add[] = {"TEXT DEFAULT 1; DROP", "INT(x)", "1INT", "TEXT)", "TEXT(1"};
    for (size_t i = 0; i < sizeof(bad_add) / sizeof(bad_add[0]); i++)
        assert_int_equal(nana_sql_check_type(bad_add[i], true), NANA_ERR_VALIDATION);
    assert_int_equal(nana_sql_check_identifier("users_2", "table"), 0);
    assert_int_equal(nana_sql_check_identifier("2users", "table"), NANA_ERR_VALIDATION);
    assert_int_equal(nana_sql_check_identifier("", "table"), NANA_ERR_VALIDATION);
    assert_int_equal(nana_sql_check_identifier("a\"b", "table"), NANA_ERR_VALIDATION);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepted_clauses),
        cmocka_unit_test(test_refused_clauses),
        cmocka_unit_test(test_policies),
        cmocka_unit_test(test_types_and_identifiers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
