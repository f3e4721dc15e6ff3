/*
 * fuzz_sqlcheck.c - libFuzzer harness for the SQL fragment validator.
 *
 * Big idea: the validator must be a fence on its own, without the SQLite
 * authorizer the store also installs. For every fragment it accepts, this
 * harness prepares `SELECT * FROM "t" WHERE <fragment>` (and the ORDER BY
 * form) on an in-memory database that also holds a table "secret", under
 * an authorizer that only *records* what the statement would do. Reading
 * any table but "t", calling a function that is not allowed, or any action
 * other than SELECT/READ/FUNCTION is a validator bypass and aborts. A
 * fragment SQLite rejects as a syntax error is fine: nothing ran.
 */
#include "store/store_int.h"

#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static sqlite3 *db;
static const char *violation;

static int recorder(void *arg, int action, const char *a1, const char *a2, const char *dbn,
                    const char *trigger)
{
    (void)arg;
    (void)dbn;
    (void)trigger;
    switch (action) {
    case SQLITE_SELECT:
        break;
    case SQLITE_READ:
        if (!a1 || strcasecmp(a1, "t") != 0) violation = "read another table";
        break;
    case SQLITE_FUNCTION:
        if (!a2 || !nana_sql_function_allowed(a2, strlen(a2), NULL))
            violation = "called a function that is not allowed";
        break;
    default:
        violation = "an action other than reading";
        break;
    }
    return SQLITE_OK;
}

static void try_statement(const char *prefix, const uint8_t *frag, size_t n)
{
    size_t plen = strlen(prefix);
    char *sql = malloc(plen + n + 1);
    if (!sql) return;
    memcpy(sql, prefix, plen);
    memcpy(sql + plen, frag, n);
    sql[plen + n] = '\0';
    violation = NULL;
    sqlite3_stmt *st = NULL;
    const char *tail = NULL;
    int rc = sqlite3_prepare_v2(db, sql, (int)(plen + n), &st, &tail);
    if (rc == SQLITE_OK && tail && *tail) {
        fprintf(stderr, "second statement after an accepted fragment: %s\n", sql);
        abort();
    }
    if (violation) {
        fprintf(stderr, "validator bypass (%s): %s\n", violation, sql);
        abort();
    }
    sqlite3_finalize(st);
    free(sql);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!db) {
        sqlite3_open(":memory:", &db);
        sqlite3_exec(db,
                     "CREATE TABLE t (key TEXT PRIMARY KEY, value TEXT, age INTEGER);"
                     "CREATE TABLE secret (s TEXT);",
                     NULL, NULL, NULL);
        sqlite3_set_authorizer(db, recorder, NULL);
    }
    if (size > 2000) return 0;
    const char *p = (const char *)data;
    if (nana_sql_check_clause(p, size, NANA_CLAUSE_WHERE, NULL, 1000) == 0)
        try_statement("SELECT * FROM \"t\" WHERE ", data, size);
    if (nana_sql_check_clause(p, size, NANA_CLAUSE_ORDER_BY, NULL, 1000) == 0)
        try_statement("SELECT * FROM \"t\" ORDER BY ", data, size);
    if (nana_sql_check_clause(p, size, NANA_CLAUSE_COLUMN, NULL, 1000) == 0) {
        /* a column expression sits between SELECT and FROM */
        char *frag = malloc(size + 16);
        if (!frag) return 0;
        memcpy(frag, data, size);
        memcpy(frag + size, " FROM \"t\"", 9);
        try_statement("SELECT ", (const uint8_t *)frag, size + 9);
        free(frag);
    }
    return 0;
}
