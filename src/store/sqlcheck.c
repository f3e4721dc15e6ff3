/*
 * sqlcheck.c - validation of caller-written SQL fragments (WHERE, ORDER
 * BY, GROUP BY clauses and column expressions) for the query helpers.
 *
 * NanaSQLite checks fragments with regular expressions; we tokenize them
 * instead, which gives the same rules with fewer false alarms and no way
 * around them through quoting:
 *   - characters outside string literals must come from NanaSQLite's set
 *     (ASCII letters, digits, whitespace and _ , . ( ) ' = < > ! + - * / " | ? : @ $);
 *   - `;`, `--` and `/ *` are refused anywhere outside a string literal;
 *   - statement keywords (DDL, DML, SELECT and friends) are refused, so
 *     there are no subqueries and no second statement;
 *   - a name followed by `(` is a function call and must be on the allow
 *     list (NanaSQLite's 18 plus a few read-only JSON and text helpers,
 *     adjustable per call), and not on the forbid list; a quoted name is
 *     checked the same way, so `"load_extension"(...)` is caught;
 *   - `IN` must be followed by a parenthesized list (`x IN tbl` would
 *     read another table);
 *   - quoted identifiers must be plain identifiers; parentheses must
 *     balance; the fragment is capped in length.
 * Values never belong in fragments: callers pass them as parameters,
 * which are always bound. On top of this the query statements run with
 * an SQLite authorizer (query.c) that permits only reading the one table
 * and calling allowed functions: two independent fences.
 */
#include "store/store_int.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

static const char *const default_functions[] = {
    /* NanaSQLite's defaults */
    "COUNT", "SUM", "AVG", "MIN", "MAX", "ABS", "UPPER", "LOWER", "LENGTH", "ROUND", "COALESCE",
    "IFNULL", "NULLIF", "STRFTIME", "DATE", "TIME", "DATETIME", "JULIANDAY",
    /* read-only helpers for JSON values and text */
    "JSON_EXTRACT", "JSON_TYPE", "JSON_ARRAY_LENGTH", "JSON_VALID", "SUBSTR", "TRIM", "TYPEOF",
    "INSTR",
    /* functions SQLite calls for operators: x LIKE y, x GLOB y, v -> '$.a', v ->> '$.a' */
    "LIKE", "GLOB", "->", "->>", NULL};

/* Words that start or join statements: never part of a fragment. */
static const char *const forbidden_words[] = {
    "DROP",      "DELETE",  "UPDATE",   "INSERT",    "TRUNCATE", "ALTER",   "CREATE",
    "REPLACE",   "ATTACH",  "DETACH",   "PRAGMA",    "VACUUM",   "REINDEX", "ANALYZE",
    "BEGIN",     "COMMIT",  "ROLLBACK", "SAVEPOINT", "RELEASE",  "SELECT",  "UNION",
    "INTERSECT", "EXCEPT",  "WITH",     "VALUES",    "INTO",     "FROM",    "JOIN",
    "RETURNING", "EXPLAIN", "TRIGGER",  "VIEW",      "TABLE",    "INDEX",   NULL};

/* Keywords that may be followed by '(' without being a function call. */
static const char *const paren_keywords[] = {"IN",   "AND",    "OR",   "NOT",  "IS",   "BETWEEN",
                                             "LIKE", "GLOB",   "WHEN", "THEN", "ELSE", "CASE",
                                             "ON",   "ESCAPE", "ASC",  "DESC", NULL};

static bool word_in(const char *w, size_t n, const char *const *list)
{
    for (; *list; list++)
        if (strlen(*list) == n && strncasecmp(*list, w, n) == 0) return true;
    return false;
}

static bool word_in_n(const char *w, size_t n, const char *const *list, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (list[i] && strlen(list[i]) == n && strncasecmp(list[i], w, n) == 0) return true;
    return false;
}

bool nana_sql_function_allowed(const char *name, size_t n, const nana_sql_policy *pol)
{
    if (pol && pol->forbid_all) return false;
    if (pol && word_in_n(name, n, pol->forbid, pol->n_forbid)) return false;
    if (!(pol && pol->override_defaults) && word_in(name, n, default_functions)) return true;
    return pol && word_in_n(name, n, pol->allow, pol->n_allow);
}

static const char *kind_label(nana_clause_kind kind)
{
    switch (kind) {
    case NANA_CLAUSE_WHERE:
        return "where clause";
    case NANA_CLAUSE_ORDER_BY:
        return "order_by clause";
    case NANA_CLAUSE_GROUP_BY:
        return "group_by clause";
    case NANA_CLAUSE_COLUMN:
        return "column name";
    }
    return "clause";
}

static bool is_ident_start(unsigned char c)
{
    return isalpha(c) || c == '_';
}

static bool is_ident_char(unsigned char c)
{
    return isalnum(c) || c == '_';
}

/* Characters NanaSQLite allows outside string literals (plus whitespace). */
static bool char_allowed(unsigned char c)
{
    if (isalnum(c)) return true;
    return strchr(" \t\r\n_,.()'=<>!+-*/\"|?:@$", c) != NULL && c != '\0';
}

/* Index of the next non-space byte at or after i. */
static size_t skip_space(const char *p, size_t n, size_t i)
{
    while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
        i++;
    return i;
}

int nana_sql_check_clause(const char *p, size_t n, nana_clause_kind kind,
                          const nana_sql_policy *pol, size_t max_len)
{
    const char *what = kind_label(kind);
    if (!p || n == 0) return NANA_OK;
    if (max_len && n > max_len)
        return nana_err_set(NANA_ERR_VALIDATION,
                            "SQL expression exceeds maximum length of %zu characters.", max_len);
    if (pol && pol->forbid_all)
        return nana_err_set(NANA_ERR_VALIDATION,
                            "All SQL functions are forbidden for this expression.");
    if (memchr(p, '\0', n))
        return nana_err_set(NANA_ERR_VALIDATION, "Invalid %s: contains a NUL byte", what);
    int depth = 0;
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)p[i];
        if (c == '\'') { /* string literal, '' escapes a quote */
            size_t j = i + 1;
            for (;;) {
                if (j >= n)
                    return nana_err_set(NANA_ERR_VALIDATION,
                                        "Invalid %s: unterminated string literal", what);
                if (p[j] == '\'') {
                    if (j + 1 < n && p[j + 1] == '\'') {
                        j += 2;
                        continue;
                    }
                    break;
                }
                j++;
            }
            if (!nana_utf8_valid(p + i, j - i))
                return nana_err_set(NANA_ERR_VALIDATION, "Invalid %s: not valid UTF-8", what);
            i = j + 1;
            continue;
        }
        if (!char_allowed(c))
            return nana_err_set(NANA_ERR_VALIDATION,
                                "Invalid %s: Potentially dangerous SQL pattern or invalid "
                                "characters detected.",
                                what);
        if ((c == '-' && i + 1 < n && p[i + 1] == '-') ||
            (c == '/' && i + 1 < n && p[i + 1] == '*'))
            return nana_err_set(NANA_ERR_VALIDATION,
                                "Invalid %s: Potentially dangerous SQL pattern (comment)", what);
        if (c == '"' || is_ident_start(c)) {
            size_t start, len, next;
            if (c == '"') {
                const char *q = memchr(p + i + 1, '"', n - i - 1);
                if (!q)
                    return nana_err_set(NANA_ERR_VALIDATION,
                                        "Invalid %s: unterminated quoted identifier", what);
                start = i + 1;
                len = (size_t)(q - p) - start;
                next = (size_t)(q - p) + 1;
                if (len == 0 || !is_ident_start((unsigned char)p[start]))
                    return nana_err_set(NANA_ERR_VALIDATION,
                                        "Invalid %s: quoted identifier is not a plain name", what);
                for (size_t k = start; k < start + len; k++)
                    if (!is_ident_char((unsigned char)p[k]))
                        return nana_err_set(NANA_ERR_VALIDATION,
                                            "Invalid %s: quoted identifier is not a plain name",
                                            what);
            } else {
                start = i;
                next = i + 1;
                while (next < n && is_ident_char((unsigned char)p[next]))
                    next++;
                len = next - start;
                if (word_in(p + start, len, forbidden_words))
                    return nana_err_set(NANA_ERR_VALIDATION,
                                        "Invalid %s: Potentially dangerous SQL pattern (keyword "
                                        "%.*s)",
                                        what, (int)(len > 32 ? 32 : len), p + start);
            }
            size_t after = skip_space(p, n, next);
            bool call = after < n && p[after] == '(';
            /* `x IN table` reads a whole other table: only IN (...) lists. */
            if (c != '"' && len == 2 && strncasecmp(p + start, "IN", 2) == 0 && !call)
                return nana_err_set(NANA_ERR_VALIDATION,
                                    "Invalid %s: IN must be followed by a parenthesized list",
                                    what);
            if (call && !(c != '"' && word_in(p + start, len, paren_keywords))) {
                char fname[64];
                size_t fl = len < sizeof(fname) - 1 ? len : sizeof(fname) - 1;
                for (size_t k = 0; k < fl; k++)
                    fname[k] = (char)toupper((unsigned char)p[start + k]);
                fname[fl] = '\0';
                if (pol && word_in_n(p + start, len, pol->forbid, pol->n_forbid))
                    return nana_err_set(NANA_ERR_VALIDATION,
                                        "SQL function '%s' is explicitly forbidden.", fname);
                if (!nana_sql_function_allowed(p + start, len, pol))
                    return nana_err_set(NANA_ERR_VALIDATION,
                                        "SQL function '%s' is not in the allowed list.", fname);
            }
            i = next;
            continue;
        }
        if (isdigit(c) || (c == '.' && i + 1 < n && isdigit((unsigned char)p[i + 1]))) {
            /* number: 12, 1.5, .5, 1e-3, 0x1F; a name glued to it is scanned next */
            if (c == '0' && i + 1 < n && (p[i + 1] == 'x' || p[i + 1] == 'X')) {
                i += 2;
                while (i < n && isxdigit((unsigned char)p[i]))
                    i++;
                continue;
            }
            while (i < n && (isdigit((unsigned char)p[i]) || p[i] == '.'))
                i++;
            if (i < n && (p[i] == 'e' || p[i] == 'E')) {
                size_t j = i + 1;
                if (j < n && (p[j] == '+' || p[j] == '-')) j++;
                if (j < n && isdigit((unsigned char)p[j])) {
                    i = j;
                    while (i < n && isdigit((unsigned char)p[i]))
                        i++;
                }
            }
            continue;
        }
        if (c == '(') {
            if (++depth > 64)
                return nana_err_set(NANA_ERR_VALIDATION, "Invalid %s: nested too deeply", what);
        } else if (c == ')') {
            if (--depth < 0)
                return nana_err_set(NANA_ERR_VALIDATION, "Invalid %s: unbalanced parentheses",
                                    what);
        } else if ((c == '?' || c == ':' || c == '@' || c == '$')) {
            /* parameter: ?, ?NNN, :name, @name, $name */
            i++;
            while (i < n && is_ident_char((unsigned char)p[i]))
                i++;
            continue;
        }
        i++;
    }
    if (depth != 0)
        return nana_err_set(NANA_ERR_VALIDATION, "Invalid %s: unbalanced parentheses", what);
    return NANA_OK;
}

int nana_sql_check_identifier(const char *name, const char *what)
{
    if (!name || !name[0])
        return nana_err_set(NANA_ERR_VALIDATION, "Identifier cannot be empty (%s)", what);
    if (!nana_identifier_valid(name))
        return nana_err_set(NANA_ERR_VALIDATION,
                            "Invalid identifier '%.64s' (%s): must start with a letter or "
                            "underscore and contain only ASCII letters, digits and underscores",
                            name, what);
    if (nana_name_reserved(name))
        return nana_err_set(NANA_ERR_VALIDATION,
                            "Invalid identifier '%.64s' (%s): names beginning with 'sqlite_' "
                            "belong to SQLite's internal tables",
                            name, what);
    return NANA_OK;
}

int nana_sql_check_type(const char *type, bool add_column)
{
    if (!type || !type[0]) return nana_err_set(NANA_ERR_VALIDATION, "column type is empty");
    size_t n = strlen(type);
    if (n > 200) return nana_err_set(NANA_ERR_VALIDATION, "column type is too long");
    if (add_column) {
        /* NAME [WORD ...] [(digits, ...)], e.g. VARCHAR(255), DOUBLE PRECISION */
        size_t i = 0;
        if (!isalpha((unsigned char)type[0])) goto bad;
        while (i < n && (is_ident_char((unsigned char)type[i]) || type[i] == ' '))
            i++;
        if (i < n) {
            if (type[i] != '(') goto bad;
            i++;
            while (i < n && (isdigit((unsigned char)type[i]) || type[i] == ',' || type[i] == ' '))
                i++;
            if (i + 1 != n || type[i] != ')') goto bad;
        }
        return NANA_OK;
    bad:
        return nana_err_set(NANA_ERR_VALIDATION, "Invalid or dangerous column type: %.64s", type);
    }
    /* create_table: NanaSQLite's character set for type strings, and no
     * statement keywords (no subselects, no generated-column tricks). */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)type[i];
        if (!(is_ident_char(c) || c == ' ' || c == '\t' || strchr("(),=<>!@#%.", c)) || c == 0)
            return nana_err_set(NANA_ERR_VALIDATION,
                                "Invalid or dangerous column type: contains unauthorized "
                                "characters. Quote characters and semicolons are not permitted.");
    }
    for (size_t i = 0; i < n;) {
        if (is_ident_start((unsigned char)type[i])) {
            size_t s = i;
            while (i < n && is_ident_char((unsigned char)type[i]))
                i++;
            if (word_in(type + s, i - s, forbidden_words) ||
                (i - s == 2 && strncasecmp(type + s, "AS", 2) == 0))
                return nana_err_set(NANA_ERR_VALIDATION,
                                    "Invalid or dangerous column type: keyword %.*s",
                                    (int)(i - s > 32 ? 32 : i - s), type + s);
        } else {
            i++;
        }
    }
    return NANA_OK;
}
