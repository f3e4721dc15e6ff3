/*
 * test_toml.c - the strict TOML subset (src/config/toml_parse.c): every
 * form it accepts and what it reads, every refusal with its exact message
 * (line and column), every limit, and every allocation failing in turn.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "config/nana_toml.h"
#include "util/nana_err.h"
#include "util/nana_mem.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parses |text| (NUL-terminated) and expects success. */
static nana_toml_doc *ok_doc(const char *text)
{
    nana_toml_doc *d = NULL;
    int rc = nana_toml_parse(text, strlen(text), NULL, &d);
    if (rc) fprintf(stderr, "unexpected refusal of [%s]: %s\n", text, nana_errmsg());
    assert_int_equal(rc, 0);
    assert_non_null(d);
    return d;
}

/* Parses |len| bytes and expects |code| with exactly |msg|. */
static void bad_n(const char *text, size_t len, int code, const char *msg)
{
    nana_toml_doc *d = (nana_toml_doc *)1;
    int rc = nana_toml_parse(text, len, NULL, &d);
    if (rc != code || strcmp(nana_errmsg(), msg) != 0)
        fprintf(stderr, "for [%.*s]\n  want %d \"%s\"\n  got  %d \"%s\"\n", (int)len, text, code,
                msg, rc, rc ? nana_errmsg() : "");
    assert_int_equal(rc, code);
    assert_string_equal(nana_errmsg(), msg);
    assert_null(d);
}

#define BAD(text, msg) bad_n(text, strlen(text), NANA_ERR_INVALID, msg)

/* The value at a dotted path of tables ("a.b.c"), or NULL. */
static const nana_toml_value *at(const nana_toml_doc *d, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", path);
    const nana_toml_table *t = nana_toml_root(d);
    const nana_toml_value *v = NULL;
    for (char *part = strtok(buf, "."); part; part = strtok(NULL, ".")) {
        if (v) {
            if (v->type != NANA_TOML_TABLE) return NULL;
            t = v->u.table;
        }
        v = nana_toml_table_get(t, part);
        if (!v) return NULL;
    }
    return v;
}

static int64_t int_at(const nana_toml_doc *d, const char *path)
{
    const nana_toml_value *v = at(d, path);
    assert_non_null(v);
    assert_int_equal(v->type, NANA_TOML_INTEGER);
    return v->u.i;
}

static double float_at(const nana_toml_doc *d, const char *path)
{
    const nana_toml_value *v = at(d, path);
    assert_non_null(v);
    assert_int_equal(v->type, NANA_TOML_FLOAT);
    return v->u.f;
}

static const char *str_at(const nana_toml_doc *d, const char *path)
{
    const nana_toml_value *v = at(d, path);
    assert_non_null(v);
    assert_int_equal(v->type, NANA_TOML_STRING);
    assert_int_equal(strlen(v->u.str.s), v->u.str.len);
    return v->u.str.s;
}

static void test_empty_and_comments(void **state)
{
    (void)state;
    const char *texts[] = {"",
                           "\n",
                           "# only a comment",
                           "  # indented\n\n\t\n",
                           "# a\r\n\r\n# b\r\n",
                           "\xEF\xBB\xBF# after a byte order mark\n",
                           "# tab\tand é ü in a comment\n"};
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        nana_toml_doc *d = ok_doc(texts[i]);
        assert_int_equal(nana_toml_table_size(nana_toml_root(d)), 0);
        nana_toml_free(d);
    }
    nana_toml_free(NULL);
}

static void test_keys(void **state)
{
    (void)state;
    nana_toml_doc *d = ok_doc("bare_Key-09 = 1\n"
                              "\"quoted key\" = 2\n"
                              "'literal \\ key' = 3\n"
                              "\"\" = 4\n"
                              "a . b.\"c.d\" = 5  # dotted, with spaces\n"
                              "a.x = 6\n"
                              "\"\\u00e9t\\u00e9\" = 7\n"
                              "1234 = 8\n");
    assert_int_equal(int_at(d, "bare_Key-09"), 1);
    assert_int_equal(int_at(d, "quoted key"), 2);
    assert_int_equal(int_at(d, "literal \\ key"), 3);
    assert_int_equal(nana_toml_table_get(nana_toml_root(d), "")->u.i, 4);
    const nana_toml_value *a = at(d, "a");
    assert_int_equal(a->type, NANA_TOML_TABLE);
    const nana_toml_value *b = nana_toml_table_get(a->u.table, "b");
    assert_int_equal(nana_toml_table_get(b->u.table, "c.d")->u.i, 5);
    assert_int_equal(int_at(d, "a.x"), 6);
    assert_int_equal(int_at(d, "\xC3\xA9t\xC3\xA9"), 7);
    assert_int_equal(int_at(d, "1234"), 8);
    /* Keys in the file's order, with where they were written. */
    const nana_toml_table *root = nana_toml_root(d);
    assert_int_equal(nana_toml_table_size(root), 7);
    assert_string_equal(nana_toml_table_at(root, 0)->key, "bare_Key-09");
    assert_string_equal(nana_toml_table_at(root, 4)->key, "a");
    assert_int_equal(nana_toml_table_at(root, 4)->line, 5);
    assert_int_equal(nana_toml_table_at(root, 4)->col, 1);
    assert_null(nana_toml_table_at(root, 7));
    assert_null(nana_toml_table_get(root, "missing"));
    nana_toml_free(d);
}

static void test_tables(void **state)
{
    (void)state;
    nana_toml_doc *d = ok_doc("top = 0\n"
                              "[network]\n"
                              "port = 1\n"
                              "[ a . \"b\" ]  # spaces in a header\n"
                              "c = 2\n"
                              "[x.y.z]\n"
                              "w = 3\n"
                              "[x]  # implicit before, defined now\n"
                              "v = 4\n"
                              "[fruit]\n"
                              "apple.color = \"red\"\n"
                              "apple.taste.sweet = true\n"
                              "[fruit.apple.texture]  # a sub-table of a dotted one\n"
                              "smooth = true\n"
                              "[empty]\n");
    assert_int_equal(int_at(d, "top"), 0);
    assert_int_equal(int_at(d, "network.port"), 1);
    assert_int_equal(int_at(d, "a.b.c"), 2);
    assert_int_equal(int_at(d, "x.y.z.w"), 3);
    assert_int_equal(int_at(d, "x.v"), 4);
    assert_string_equal(str_at(d, "fruit.apple.color"), "red");
    assert_true(at(d, "fruit.apple.taste.sweet")->u.b);
    assert_true(at(d, "fruit.apple.texture.smooth")->u.b);
    const nana_toml_value *e = at(d, "empty");
    assert_int_equal(e->type, NANA_TOML_TABLE);
    assert_int_equal(nana_toml_table_size(e->u.table), 0);
    assert_int_equal(e->line, 15);
    assert_int_equal(e->col, 1);
    /* A table's position: its header (x was implicit until line 8). */
    assert_int_equal(at(d, "x")->line, 8);
    assert_int_equal(at(d, "network")->line, 2);
    nana_toml_free(d);
}

static void test_strings(void **state)
{
    (void)state;
    nana_toml_doc *d =
        ok_doc("esc = \"b\\b t\\t n\\n f\\f r\\r q\\\" s\\\\ u\\u00E9 U\\U0001F600\"\n"
               "lit = 'C:\\path\\to \"x\"'\n"
               "raw = \"tab\there é 日本\"\n"
               "empty = \"\"\n"
               "lempty = ''\n"
               "ctl = \"\\u0001\\u001f\\u007f\"\n"
               "max = \"\\U0010FFFF\"\n");
    assert_string_equal(str_at(d, "esc"),
                        "b\b t\t n\n f\f r\r q\" s\\ u\xC3\xA9 U\xF0\x9F\x98\x80");
    assert_string_equal(str_at(d, "lit"), "C:\\path\\to \"x\"");
    assert_string_equal(str_at(d, "raw"), "tab\there \xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC");
    assert_string_equal(str_at(d, "empty"), "");
    assert_string_equal(str_at(d, "lempty"), "");
    assert_string_equal(str_at(d, "ctl"), "\x01\x1f\x7f");
    assert_string_equal(str_at(d, "max"), "\xF4\x8F\xBF\xBF");
    nana_toml_free(d);
}

static void test_integers(void **state)
{
    (void)state;
    nana_toml_doc *d = ok_doc("a = 0\nb = +17\nc = -17\nd = 1_000_000\ne = 0xDEAD_beef\n"
                              "f = 0o755\ng = 0b1010_1010\nh = 9223372036854775807\n"
                              "i = -9223372036854775808\nj = -0\nk = +0\n"
                              "l = 0x7FFFFFFFFFFFFFFF\nm = 0x00ff\n");
    assert_int_equal(int_at(d, "a"), 0);
    assert_int_equal(int_at(d, "b"), 17);
    assert_int_equal(int_at(d, "c"), -17);
    assert_int_equal(int_at(d, "d"), 1000000);
    assert_int_equal(int_at(d, "e"), 0xDEADBEEF);
    assert_int_equal(int_at(d, "f"), 0755);
    assert_int_equal(int_at(d, "g"), 0xAA);
    assert_true(int_at(d, "h") == INT64_MAX);
    assert_true(int_at(d, "i") == INT64_MIN);
    assert_int_equal(int_at(d, "j"), 0);
    assert_int_equal(int_at(d, "k"), 0);
    assert_true(int_at(d, "l") == INT64_MAX);
    assert_int_equal(int_at(d, "m"), 255);
    nana_toml_free(d);
}

static void test_floats_and_booleans(void **state)
{
    (void)state;
    nana_toml_doc *d = ok_doc("a = 1.5\nb = -0.25\nc = 1e10\nd = 1E-2\ne = 6.626e-34\n"
                              "f = 1_000.5_5\ng = 0.0\nh = -0.0\ni = 5e+22\nj = 1e0_1\n"
                              "k = 0e5\nl = +2.5\nt = true\nu = false\n");
    assert_true(float_at(d, "a") == 1.5);
    assert_true(float_at(d, "b") == -0.25);
    assert_true(float_at(d, "c") == 1e10);
    assert_true(float_at(d, "d") == 1e-2);
    assert_true(float_at(d, "e") == 6.626e-34);
    assert_true(float_at(d, "f") == 1000.55);
    assert_true(float_at(d, "g") == 0.0);
    assert_true(float_at(d, "h") == 0.0 && signbit(float_at(d, "h")));
    assert_true(float_at(d, "i") == 5e22);
    assert_true(float_at(d, "j") == 10.0);
    assert_true(float_at(d, "k") == 0.0);
    assert_true(float_at(d, "l") == 2.5);
    assert_int_equal(at(d, "t")->type, NANA_TOML_BOOL);
    assert_true(at(d, "t")->u.b);
    assert_false(at(d, "u")->u.b);
    nana_toml_free(d);
}

static void test_arrays(void **state)
{
    (void)state;
    nana_toml_doc *d = ok_doc("empty = []\n"
                              "nums = [1, 2, 3]\n"
                              "trailing = [ \"a\", 'b', ]\n"
                              "lines = [\n"
                              "  1,  # one\n"
                              "  # a comment line\n"
                              "\n"
                              "  2.5,\r\n"
                              "  true\n"
                              "]\n"
                              "nested = [[1, 2], [\"x\"], []]\n"
                              "after = 9\n");
    const nana_toml_value *v = at(d, "empty");
    assert_int_equal(v->type, NANA_TOML_ARRAY);
    assert_int_equal(v->u.arr.n, 0);
    v = at(d, "nums");
    assert_int_equal(v->u.arr.n, 3);
    assert_int_equal(v->u.arr.items[2].u.i, 3);
    assert_int_equal(v->u.arr.items[2].col, 15);
    v = at(d, "trailing");
    assert_int_equal(v->u.arr.n, 2);
    assert_string_equal(v->u.arr.items[1].u.str.s, "b");
    v = at(d, "lines");
    assert_int_equal(v->u.arr.n, 3);
    assert_int_equal(v->u.arr.items[0].type, NANA_TOML_INTEGER);
    assert_int_equal(v->u.arr.items[1].type, NANA_TOML_FLOAT);
    assert_int_equal(v->u.arr.items[1].line, 8);
    assert_int_equal(v->u.arr.items[2].type, NANA_TOML_BOOL);
    v = at(d, "nested");
    assert_int_equal(v->u.arr.n, 3);
    assert_int_equal(v->u.arr.items[0].u.arr.n, 2);
    assert_string_equal(v->u.arr.items[1].u.arr.items[0].u.str.s, "x");
    assert_int_equal(v->u.arr.items[2].u.arr.n, 0);
    /* Lines are counted through the array. */
    assert_int_equal(int_at(d, "after"), 9);
    const nana_toml_kv *after = nana_toml_table_at(nana_toml_root(d), 5);
    assert_int_equal(after->line, 12);
    nana_toml_free(d);
}

static void test_positions(void **state)
{
    (void)state;
    /* Columns count characters, not bytes. */
    nana_toml_doc *d = ok_doc("\"\xC3\xA9\xE6\x97\xA5\" = 1\n"
                              "[s]\n"
                              "\tkey =   \"v\"\n");
    const nana_toml_kv *k = nana_toml_table_at(nana_toml_root(d), 0);
    assert_int_equal(k->line, 1);
    assert_int_equal(k->col, 1);
    assert_int_equal(k->val.col, 8);
    const nana_toml_value *s = at(d, "s");
    const nana_toml_kv *kv = nana_toml_table_at(s->u.table, 0);
    assert_int_equal(kv->line, 3);
    assert_int_equal(kv->col, 2);
    assert_int_equal(kv->val.line, 3);
    assert_int_equal(kv->val.col, 10);
    nana_toml_free(d);
    assert_string_equal(nana_toml_type_name(NANA_TOML_STRING), "a string");
    assert_string_equal(nana_toml_type_name(NANA_TOML_INTEGER), "an integer");
    assert_string_equal(nana_toml_type_name(NANA_TOML_FLOAT), "a float");
    assert_string_equal(nana_toml_type_name(NANA_TOML_BOOL), "a boolean");
    assert_string_equal(nana_toml_type_name(NANA_TOML_ARRAY), "an array");
    assert_string_equal(nana_toml_type_name(NANA_TOML_TABLE), "a table");
}

static void test_syntax_errors(void **state)
{
    (void)state;
    BAD("a = ", "line 1, column 5: expected a value (a string, number, true, false or an array), "
                "found the end of the file");
    BAD("a =\n", "line 1, column 4: expected a value (a string, number, true, false or an "
                 "array), found the end of the line");
    BAD("a 1", "line 1, column 3: expected '=' after a key, found other text");
    BAD("abc", "line 1, column 4: expected '=' after a key, found the end of the file");
    BAD("= 1", "line 1, column 1: expected a key, found '='");
    BAD("a. = 1", "line 1, column 4: expected a key, found '='");
    BAD("a = 1 b = 2", "line 1, column 7: expected the end of the line after a value, found "
                       "other text");
    BAD("a = 1,", "line 1, column 6: expected the end of the line after a value, found ','");
    BAD("a = true1", "line 1, column 5: expected a value (a string, number, true, false or an "
                     "array), found other text");
    BAD("a = yes", "line 1, column 5: expected a value (a string, number, true, false or an "
                   "array), found other text");
    BAD("[a] x = 1", "line 1, column 5: expected the end of the line after a table header, "
                     "found other text");
    BAD("[a", "line 1, column 3: expected ']' to end the table header, found the end of the "
              "file");
    BAD("[]", "line 1, column 2: expected a key, found ']'");
    BAD("[a.]", "line 1, column 4: expected a key, found ']'");
    BAD("a = [1 2]", "line 1, column 8: expected ',' or ']' in an array, found other text");
    BAD("a = [1,", "line 1, column 8: expected a value (a string, number, true, false or an "
                   "array), found the end of the file");
    BAD("a = [,]", "line 1, column 6: expected a value (a string, number, true, false or an "
                   "array), found ','");
    BAD("a = [\n1,\n2\n", "line 4, column 1: expected ',' or ']' in an array, found the end of "
                          "the file");
    BAD("ok = 1\n\n  bad", "line 3, column 6: expected '=' after a key, found the end of the "
                           "file");
}

static void test_string_errors(void **state)
{
    (void)state;
    BAD("a = \"abc", "line 1, column 9: expected '\"' to end the string, found the end of the "
                     "file");
    BAD("a = \"ab\ncd\"", "line 1, column 8: expected '\"' to end the string, found the end of "
                          "the line");
    BAD("a = 'ab", "line 1, column 8: expected ''' to end the string, found the end of the file");
    BAD("a = \"x\\\"", "line 1, column 9: expected '\"' to end the string, found the end of "
                       "the file");
    BAD("a = \"x\\q\"", "line 1, column 7: an unknown escape; the escapes are \\b \\t \\n \\f "
                        "\\r \\\" \\\\ \\uXXXX \\UXXXXXXXX");
    BAD("a = \"\\e\"", "line 1, column 6: an unknown escape; the escapes are \\b \\t \\n \\f "
                       "\\r \\\" \\\\ \\uXXXX \\UXXXXXXXX");
    BAD("a = \"\\x41\"", "line 1, column 6: an unknown escape; the escapes are \\b \\t \\n \\f "
                         "\\r \\\" \\\\ \\uXXXX \\UXXXXXXXX");
    BAD("a = \"\\u12\"", "line 1, column 10: expected a hex digit (\\u takes 4, \\U takes 8)");
    BAD("a = \"\\U0001F60\"", "line 1, column 15: expected a hex digit (\\u takes 4, \\U takes 8)");
    BAD("a = \"\\u0000\"", "line 1, column 6: a NUL character (\\u0000) is not supported");
    BAD("a = \"\\uD800\"", "line 1, column 6: the escape is not a Unicode scalar value");
    BAD("a = \"\\uDFFF\"", "line 1, column 6: the escape is not a Unicode scalar value");
    BAD("a = \"\\U00110000\"", "line 1, column 6: the escape is not a Unicode scalar value");
    BAD("a = \"\"\"x\"\"\"", "line 1, column 5: multi-line strings are not supported");
    BAD("a = '''x'''", "line 1, column 5: multi-line strings are not supported");
    BAD("\"k\\q\" = 1", "line 1, column 3: an unknown escape; the escapes are \\b \\t \\n \\f "
                        "\\r \\\" \\\\ \\uXXXX \\UXXXXXXXX");
}

static void test_number_errors(void **state)
{
    (void)state;
    BAD("a = 9223372036854775808", "line 1, column 5: the integer does not fit in 64 bits");
    BAD("a = -9223372036854775809", "line 1, column 5: the integer does not fit in 64 bits");
    BAD("a = 99999999999999999999999", "line 1, column 5: the integer does not fit in 64 bits");
    BAD("a = 0x8000000000000000", "line 1, column 5: the integer does not fit in 64 bits");
    BAD("a = 01", "line 1, column 5: a number does not start with 0 (leading zeros)");
    BAD("a = -01", "line 1, column 6: a number does not start with 0 (leading zeros)");
    BAD("a = 00.5", "line 1, column 5: a number does not start with 0 (leading zeros)");
    BAD("a = 1__0", "line 1, column 6: an underscore must be between two digits");
    BAD("a = 1_", "line 1, column 6: an underscore must be between two digits");
    BAD("a = 1_.5", "line 1, column 6: an underscore must be between two digits");
    BAD("a = _1", "line 1, column 5: expected a value (a string, number, true, false or an "
                  "array), found '_'");
    BAD("a = 0x_1", "line 1, column 7: expected a digit, found '_'");
    BAD("a = 0x", "line 1, column 7: expected a digit, found the end of the file");
    BAD("a = 0b102", "line 1, column 9: expected a base-2 digit");
    BAD("a = 0o8", "line 1, column 7: expected a digit, found other text");
    BAD("a = +0x1", "line 1, column 5: 0x, 0o and 0b numbers take no sign");
    BAD("a = -0b1", "line 1, column 5: 0x, 0o and 0b numbers take no sign");
    BAD("a = 0X1", "line 1, column 6: expected a digit, '.', 'e' or the end of the number");
    BAD("a = 1.", "line 1, column 7: expected a digit, found the end of the file");
    BAD("a = 1.e5", "line 1, column 7: expected a digit, found other text");
    BAD("a = .5", "line 1, column 5: expected a value (a string, number, true, false or an "
                  "array), found '.'");
    BAD("a = 1e", "line 1, column 7: expected a digit, found the end of the file");
    BAD("a = 1e+", "line 1, column 8: expected a digit, found the end of the file");
    BAD("a = 1.2.3", "line 1, column 8: expected a digit, '.', 'e' or the end of the number");
    BAD("a = 12abc", "line 1, column 7: expected a digit, '.', 'e' or the end of the number");
    BAD("a = -", "line 1, column 6: expected a digit, found the end of the file");
    BAD("a = 1e400", "line 1, column 5: the float is out of range");
    BAD("a = -1e400", "line 1, column 5: the float is out of range");
    BAD("a = inf", "line 1, column 5: inf and nan are not supported");
    BAD("a = +inf", "line 1, column 5: inf and nan are not supported");
    BAD("a = -nan", "line 1, column 5: inf and nan are not supported");
    BAD("a = nan", "line 1, column 5: inf and nan are not supported");
    BAD("a = 1979-05-27", "line 1, column 5: dates and times are not supported");
    BAD("a = 1979-05-27T07:32:00Z", "line 1, column 5: dates and times are not supported");
    BAD("a = 07:32:00", "line 1, column 5: dates and times are not supported");
    /* A float with a negative exponent is not a date. */
    nana_toml_doc *d = ok_doc("a = 123e-4\nb = 1234e-1\n");
    assert_true(float_at(d, "a") == 123e-4);
    assert_true(float_at(d, "b") == 1234e-1);
    nana_toml_free(d);
}

static void test_structure_errors(void **state)
{
    (void)state;
    BAD("a = 1\na = 2", "line 2, column 1: a is defined twice (first at line 1)");
    BAD("a = 1\n\"a\" = 2", "line 2, column 1: a is defined twice (first at line 1)");
    BAD("[t]\nx.y = 1\nx.y = 2", "line 3, column 3: x.y is defined twice (first at line 2)");
    BAD("[a]\n[a]", "line 2, column 1: table [a] is defined twice (first at line 1)");
    BAD("[a.b]\n[x]\n[a.b]", "line 3, column 1: table [a.b] is defined twice (first at line 1)");
    BAD("a.b = 1\n[a]", "line 2, column 1: table [a] was already defined by dotted keys at line 1");
    BAD("[x]\na.b = 1\n[x.a]",
        "line 3, column 1: table [x.a] was already defined by dotted keys at line 2");
    BAD("a = 1\n[a]", "line 2, column 1: a is a value (line 1), not a table");
    BAD("a = 1\n[a.b]", "line 2, column 1: a is a value (line 1), not a table");
    BAD("a = 1\na.b = 2", "line 2, column 1: a is a value (line 1), not a table");
    BAD("a = [1]\n[a]", "line 2, column 1: a is a value (line 1), not a table");
    /* Dotted keys add only to tables they made in the same section. */
    BAD("[a.b]\nc = 1\n[a]\nb.d = 2",
        "line 4, column 1: table b was defined at line 1; dotted keys cannot add to it");
    BAD("[a.b.c]\n[a]\nb.x = 1",
        "line 3, column 1: table b was defined at line 1; dotted keys cannot add to it");
    BAD("[a]\nb.c = 1\n[d]\n[a]", "line 4, column 1: table [a] is defined twice (first at "
                                  "line 1)");
    BAD("a = {x = 1}", "line 1, column 5: inline tables are not supported");
    BAD("a = [{x = 1}]", "line 1, column 6: inline tables are not supported");
    BAD("[[a]]", "line 1, column 2: arrays of tables are not supported");
}

static void test_byte_errors(void **state)
{
    (void)state;
    bad_n("a = \"x\0y\"", 9, NANA_ERR_INVALID, "line 1, column 7: a NUL byte");
    bad_n("\0", 1, NANA_ERR_INVALID, "line 1, column 1: a NUL byte");
    BAD("a = \"\x01\"",
        "line 1, column 6: a control character (U+0001); in a string write it as an escape");
    BAD("# comment \x1b\n",
        "line 1, column 11: a control character (U+001B); in a string write it as an escape");
    BAD("a = 1\n\x7f", "line 2, column 1: a control character (U+007F); in a string write it "
                       "as an escape");
    BAD("a = 1\rb = 2", "line 1, column 6: a carriage return that does not end a line");
    BAD("a = 1\r", "line 1, column 6: a carriage return that does not end a line");
    BAD("\xff", "line 1, column 1: invalid UTF-8");
    BAD("a = \"\xc3\"", "line 1, column 6: invalid UTF-8");
    BAD("a = 'é\xc0\xaf'", "line 1, column 7: invalid UTF-8");    /* overlong */
    BAD("# \xed\xa0\x80", "line 1, column 3: invalid UTF-8");     /* a surrogate */
    BAD("# \xf4\x90\x80\x80", "line 1, column 3: invalid UTF-8"); /* past U+10FFFF */
    BAD("# ok\n# \xe6\x97", "line 2, column 3: invalid UTF-8");   /* cut short */
    BAD("\xEF\xBB\xBF\xEF\xBB\xBF", "line 1, column 1: expected a key, found other text");
}

/* Parses |text| under |lim| and expects |code| with |msg|. */
static void bad_lim(const char *text, const nana_toml_limits *lim, int code, const char *msg)
{
    nana_toml_doc *d = NULL;
    int rc = nana_toml_parse(text, strlen(text), lim, &d);
    if (rc != code || strcmp(nana_errmsg(), msg) != 0)
        fprintf(stderr, "want %d \"%s\"\ngot  %d \"%s\"\n", code, msg, rc, nana_errmsg());
    assert_int_equal(rc, code);
    assert_string_equal(nana_errmsg(), msg);
    assert_null(d);
}

/* Parses |text| under |lim| and expects success. */
static void ok_lim(const char *text, const nana_toml_limits *lim)
{
    nana_toml_doc *d = NULL;
    int rc = nana_toml_parse(text, strlen(text), lim, &d);
    if (rc) fprintf(stderr, "unexpected refusal of [%s]: %s\n", text, nana_errmsg());
    assert_int_equal(rc, 0);
    nana_toml_free(d);
}

static void test_limits(void **state)
{
    (void)state;
    nana_toml_limits lim;
    nana_toml_limits_init(&lim);
    assert_int_equal(lim.max_bytes, 1u << 20);
    assert_int_equal(lim.max_string, 65536);
    assert_int_equal(lim.max_keys, 1024);
    assert_int_equal(lim.max_items, 4096);
    assert_int_equal(lim.max_depth, 16);

    lim.max_bytes = 10;
    ok_lim("a = 12345\n", &lim);
    bad_lim("a = 123456\n", &lim, NANA_ERR_TOOBIG, "11 bytes, more than the limit of 10");

    nana_toml_limits_init(&lim);
    lim.max_string = 4;
    ok_lim("abcd = \"wxyz\"\n'efgh' = 'wxyz'\n", &lim);
    ok_lim("a = \"\\u00e9\\u00e9\"\n", &lim); /* 4 bytes after the escapes */
    bad_lim("a = \"wxyz1\"", &lim, NANA_ERR_TOOBIG,
            "line 1, column 5: a string longer than 4 bytes");
    bad_lim("a = 'wxyz1'", &lim, NANA_ERR_TOOBIG, "line 1, column 5: a string longer than 4 bytes");
    bad_lim("abcde = 1", &lim, NANA_ERR_TOOBIG, "line 1, column 1: a key longer than 4 bytes");
    bad_lim("x.\"abcde\" = 1", &lim, NANA_ERR_TOOBIG,
            "line 1, column 3: a string longer than 4 bytes");

    nana_toml_limits_init(&lim);
    lim.max_keys = 3;
    ok_lim("a = 1\nb = 2\n[t]\nx = 1\ny = 2\nz = 3\n", &lim);
    bad_lim("a = 1\nb = 2\nc = 3\nd = 4\n", &lim, NANA_ERR_TOOBIG,
            "line 4, column 1: more than 3 keys in one table");
    bad_lim("a = 1\nb = 2\nc = 3\n[d]\n", &lim, NANA_ERR_TOOBIG,
            "line 4, column 2: more than 3 keys in one table");
    bad_lim("a = 1\nb = 2\nc = 3\nd.e = 4\n", &lim, NANA_ERR_TOOBIG,
            "line 4, column 1: more than 3 keys in one table");

    nana_toml_limits_init(&lim);
    lim.max_items = 3;
    ok_lim("a = [1, 2, 3]\nb = [[1, 2, 3], [4, 5, 6]]\n", &lim);
    bad_lim("a = [1, 2, 3, 4]", &lim, NANA_ERR_TOOBIG,
            "line 1, column 15: more than 3 values in one array");

    nana_toml_limits_init(&lim);
    lim.max_depth = 3;
    ok_lim("a.b.c = 1\n[x.y]\nz = 1\n[p.q]\nv = [[[1]]]\n", &lim);
    bad_lim("a.b.c.d = 1", &lim, NANA_ERR_TOOBIG,
            "line 1, column 7: a key path of more than 3 "
            "parts");
    bad_lim("[a.b.c.d]", &lim, NANA_ERR_TOOBIG,
            "line 1, column 8: a key path of more than 3 "
            "parts");
    bad_lim("[a.b]\nc.d = 1", &lim, NANA_ERR_TOOBIG,
            "line 2, column 3: a key path of more than "
            "3 parts");
    bad_lim("v = [[[[1]]]]", &lim, NANA_ERR_TOOBIG,
            "line 1, column 8: arrays nested more than 3 "
            "deep");

    /* A number token longer than 128 characters. */
    char text[256] = "a = 1";
    for (int k = 0; k < 130; k++)
        strcat(text, "0");
    bad_n(text, strlen(text), NANA_ERR_TOOBIG,
          "line 1, column 5: a number longer than 128 characters");
    /* The default depth: 16 levels of arrays are fine, 17 are not. */
    char deep[128] = "a = ";
    for (int k = 0; k < 16; k++)
        strcat(deep, "[");
    for (int k = 0; k < 16; k++)
        strcat(deep, "]");
    ok_lim(deep, NULL);
    snprintf(deep, sizeof(deep), "a = [[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]");
    bad_n(deep, strlen(deep), NANA_ERR_TOOBIG,
          "line 1, column 21: arrays nested more than 16 "
          "deep");
}

/* A document that uses every feature, for the allocation failures. */
static const char everything[] = "top = 1\n"
                                 "[network]\n"
                                 "bind_address = \"[::]:4433\"\n"
                                 "max_connections = 10_000\n"
                                 "ratio = 2.5\n"
                                 "on = true\n"
                                 "list = [1, 'two', [3.0, \"\\u00e9\"], ]\n"
                                 "a.b.c = \"dotted\"\n"
                                 "[x.y.z]\n"
                                 "[x]\n"
                                 "k1 = 1\nk2 = 2\nk3 = 3\nk4 = 4\nk5 = 5\nk6 = 6\nk7 = 7\n"
                                 "k8 = 8\nk9 = 9\n";

static void test_out_of_memory(void **state)
{
    (void)state;
    unsigned long failures = 0;
    for (unsigned long n = 1;; n++) {
        nana_toml_doc *d = NULL;
        nana_mem_fail_at(n, false);
        int rc = nana_toml_parse(everything, strlen(everything), NULL, &d);
        bool failed = nana_mem_failures() > 0;
        nana_mem_fail_at(0, false);
        if (!failed) {
            assert_int_equal(rc, 0);
            assert_int_equal(int_at(d, "network.max_connections"), 10000);
            nana_toml_free(d);
            break;
        }
        failures++;
        assert_int_equal(rc, NANA_ERR_NOMEM);
        assert_string_equal(nana_errmsg(), "out of memory");
        assert_null(d);
        assert_true(n < 1000);
    }
    assert_true(failures >= 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_and_comments),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_tables),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_integers),
        cmocka_unit_test(test_floats_and_booleans),
        cmocka_unit_test(test_arrays),
        cmocka_unit_test(test_positions),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_string_errors),
        cmocka_unit_test(test_number_errors),
        cmocka_unit_test(test_structure_errors),
        cmocka_unit_test(test_byte_errors),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
