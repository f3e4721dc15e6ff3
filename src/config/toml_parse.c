/*
 * toml_parse.c - the strict TOML subset of nana_toml.h: text in, a
 * document out, no I/O.
 *
 * Two passes. The first checks the bytes alone: valid UTF-8, no NUL, no
 * control character but tab and line ends (a carriage return only before
 * a line feed), so the second never meets a byte it must think twice
 * about. The second is a recursive-descent reader of lines: a comment, a
 * [header], or key = value, then the end of the line. Everything a
 * document holds lives in one arena that goes with it, so an error
 * anywhere just drops the arena; a table's keys grow by copying into a
 * larger block (at most twice the memory, and the text's size bounds it).
 *
 * Tables remember how they were made, which is what TOML's rules about
 * defining a table twice are about: by a [header] (once), implicitly as
 * the parent of a header (a header may define it later), or by dotted
 * keys (more dotted keys may add to it and a header may give it a
 * sub-table, but no header defines it). Dotted keys start from the
 * current section's table, which is current only once, so they can only
 * reach dotted tables made in the same section.
 */
#include "config/nana_toml.h"

#include "util/nana_err.h"
#include "util/nana_mem.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How a table came to be (TOML's rules on defining tables). */
enum { T_ROOT, T_IMPLICIT, T_HEADER, T_DOTTED };

struct nana_toml_table {
    nana_toml_kv *kv;
    size_t n, cap;
    int how; /* T_* */
};

struct nana_toml_doc {
    nana_arena arena; /* everything below */
    nana_toml_table *root;
};

/* The longest number token read (digits, underscores, sign, exponent). */
#define MAX_NUMBER 128

/* One part of a key path, as decoded. */
typedef struct key_part {
    char *s;
    size_t len;
    unsigned line, col;
} key_part;

typedef struct parser {
    const char *p;
    size_t n, i;       /* the text, its length, where we are */
    unsigned line;     /* the line of |i|, from 1 */
    size_t line_start; /* the offset where that line starts */
    nana_toml_limits lim;
    nana_toml_doc *doc;
    nana_toml_table *cur; /* the table of the current section */
    unsigned cur_depth;   /* parts in the current section's header */
    key_part *parts;      /* max_depth parts of a key path */
} parser;

void nana_toml_limits_init(nana_toml_limits *l)
{
    l->max_bytes = NANA_TOML_MAX_BYTES;
    l->max_string = 65536;
    l->max_keys = 1024;
    l->max_items = 4096;
    l->max_depth = 16;
}

/* ---- errors -------------------------------------------------------------------------------- */

/* The column (in characters, from 1) of offset |at| on the line starting at |start|. */
static unsigned column_of(const char *p, size_t start, size_t at)
{
    unsigned col = 1;
    for (size_t k = start; k < at; k++)
        if (((unsigned char)p[k] & 0xC0) != 0x80) col++;
    return col;
}

/* Sets the calling thread's message to "line L, column C: <message>". */
static void message_at(unsigned line, unsigned col, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void message_at(unsigned line, unsigned col, const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    nana_err_format("line %u, column %u: %s", line, col, msg);
}

/* fail_at(code, line, col, fmt, ...): sets the message and evaluates to |code| (as
 * nana_err_set does, so that static analysis sees which code comes back). */
#define fail_at(code, line, col, ...) (message_at(line, col, __VA_ARGS__), (int)(code))

/* An error at the current position. */
#define FAIL(ps, code, ...)                                                                        \
    fail_at(code, (ps)->line, column_of((ps)->p, (ps)->line_start, (ps)->i), __VA_ARGS__)

/* What is at the current position, for "expected X, found Y", without quoting the text. */
static const char *found(const parser *ps)
{
    static const char *const punct[] = {"'!'", "'\"'", "'#'", "'$'", "'%'", "'&'", "'''", "'('",
                                        "')'", "'*'",  "'+'", "','", "'-'", "'.'", "'/'", "':'",
                                        "';'", "'<'",  "'='", "'>'", "'?'", "'@'", "'['", "'\\'",
                                        "']'", "'^'",  "'_'", "'`'", "'{'", "'|'", "'}'", "'~'"};
    static const char marks[] = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
    if (ps->i >= ps->n) return "the end of the file";
    char c = ps->p[ps->i];
    if (c == '\n' || c == '\r') return "the end of the line";
    if (c == ' ' || c == '\t') return "a space";
    const char *m = strchr(marks, c);
    if (c && m) return punct[m - marks];
    return "other text";
}

/* ---- the first pass: bytes ----------------------------------------------------------------- */

/* The length of the valid UTF-8 sequence at |s| (|n| bytes left), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned v, min;
    if (c < 0x80) return 1;
    if ((c & 0xE0) == 0xC0)
        len = 2, v = c & 0x1F, min = 0x80;
    else if ((c & 0xF0) == 0xE0)
        len = 3, v = c & 0x0F, min = 0x800;
    else if ((c & 0xF8) == 0xF0)
        len = 4, v = c & 0x07, min = 0x10000;
    else
        return 0;
    if (n < len) return 0;
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (s[k] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    return len;
}

/* Checks every byte from |from|: UTF-8, no NUL, no control character but tab and line ends. */
static int check_bytes(const char *p, size_t n, size_t from)
{
    unsigned line = 1;
    size_t start = from;
    for (size_t i = from; i < n;) {
        unsigned char c = (unsigned char)p[i];
        if (c == '\n') {
            line++;
            start = ++i;
            continue;
        }
        unsigned col = column_of(p, start, i);
        if (c == '\r') {
            if (i + 1 < n && p[i + 1] == '\n') {
                i++;
                continue;
            }
            return fail_at(NANA_ERR_INVALID, line, col,
                           "a carriage return that does not end a line");
        }
        if (c == 0) return fail_at(NANA_ERR_INVALID, line, col, "a NUL byte");
        if ((c < 0x20 && c != '\t') || c == 0x7F)
            return fail_at(NANA_ERR_INVALID, line, col,
                           "a control character (U+%04X); in a string write it as an escape", c);
        size_t k = utf8_len((const unsigned char *)p + i, n - i);
        if (!k) return fail_at(NANA_ERR_INVALID, line, col, "invalid UTF-8");
        i += k;
    }
    return NANA_OK;
}

/* ---- the document -------------------------------------------------------------------------- */

static nana_toml_table *table_new(parser *ps, int how)
{
    nana_toml_table *t = nana_arena_alloc(&ps->doc->arena, sizeof(*t));
    if (!t) return NULL;
    t->how = how;
    return t;
}

/* The entry of |key| in |t|, or NULL. */
static nana_toml_kv *table_find(const nana_toml_table *t, const char *key, size_t len)
{
    for (size_t k = 0; k < t->n; k++)
        if (t->kv[k].keylen == len && memcmp(t->kv[k].key, key, len) == 0) return &t->kv[k];
    return NULL;
}

/* Adds |part| to |t| with an empty value at *out. */
static int table_add(parser *ps, nana_toml_table *t, const key_part *part, nana_toml_kv **out)
{
    if (t->n >= ps->lim.max_keys)
        return fail_at(NANA_ERR_TOOBIG, part->line, part->col, "more than %zu keys in one table",
                       ps->lim.max_keys);
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 8;
        nana_toml_kv *kv = nana_arena_alloc(&ps->doc->arena, cap * sizeof(*kv));
        if (!kv) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
        if (t->n) memcpy(kv, t->kv, t->n * sizeof(*kv));
        t->kv = kv;
        t->cap = cap;
    }
    nana_toml_kv *e = &t->kv[t->n++];
    memset(e, 0, sizeof(*e));
    e->key = part->s;
    e->keylen = part->len;
    e->line = part->line;
    e->col = part->col;
    *out = e;
    return NANA_OK;
}

/* Adds |part| to |t| as a new table made |how|, whose value starts at |line|, |col|. */
static int table_add_table(parser *ps, nana_toml_table *t, const key_part *part, int how,
                           unsigned line, unsigned col, nana_toml_kv **out)
{
    int rc = table_add(ps, t, part, out);
    if (rc) return rc;
    nana_toml_kv *e = *out;
    if (!(e->val.u.table = table_new(ps, how)))
        return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    e->val.type = NANA_TOML_TABLE;
    e->val.line = line;
    e->val.col = col;
    return NANA_OK;
}

/* A key path for messages: "a.b.c" (at most 80 bytes). */
static const char *path_text(const key_part *parts, size_t n, char *buf, size_t cap)
{
    size_t at = 0;
    buf[0] = '\0';
    for (size_t k = 0; k < n && at < cap; k++) {
        int w = snprintf(buf + at, cap - at, "%s%.*s", k ? "." : "", (int)parts[k].len, parts[k].s);
        if (w < 0) break;
        at += (size_t)w;
    }
    return buf;
}

/* ---- characters ---------------------------------------------------------------------------- */

static int peek(const parser *ps)
{
    return ps->i < ps->n ? (unsigned char)ps->p[ps->i] : -1;
}

static int peek_at(const parser *ps, size_t ahead)
{
    return ps->i + ahead < ps->n ? (unsigned char)ps->p[ps->i + ahead] : -1;
}

static void skip_ws(parser *ps)
{
    while (ps->i < ps->n && (ps->p[ps->i] == ' ' || ps->p[ps->i] == '\t'))
        ps->i++;
}

/* True at a line end ("\n" or "\r\n"). */
static bool at_newline(const parser *ps)
{
    int c = peek(ps);
    return c == '\n' || (c == '\r' && peek_at(ps, 1) == '\n');
}

/* Steps over a line end. */
static void take_newline(parser *ps)
{
    if (peek(ps) == '\r') ps->i++;
    ps->i++;
    ps->line++;
    ps->line_start = ps->i;
}

/* Steps over a comment, up to (not over) the line end. */
static void skip_comment(parser *ps)
{
    while (ps->i < ps->n && !at_newline(ps))
        ps->i++;
}

/* Skips spaces, comments and line ends (inside an array). */
static void skip_blank(parser *ps)
{
    for (;;) {
        skip_ws(ps);
        if (peek(ps) == '#') skip_comment(ps);
        if (!at_newline(ps)) return;
        take_newline(ps);
    }
}

static bool is_bare(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

/* The value of hex digit |c|, or -1. */
static int hex_value(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Writes code point |v| as UTF-8 at |out|; returns its length. */
static size_t put_utf8(char *out, unsigned v)
{
    if (v < 0x80) {
        out[0] = (char)v;
        return 1;
    }
    if (v < 0x800) {
        out[0] = (char)(0xC0 | (v >> 6));
        out[1] = (char)(0x80 | (v & 0x3F));
        return 2;
    }
    if (v < 0x10000) {
        out[0] = (char)(0xE0 | (v >> 12));
        out[1] = (char)(0x80 | ((v >> 6) & 0x3F));
        out[2] = (char)(0x80 | (v & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (v >> 18));
    out[1] = (char)(0x80 | ((v >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((v >> 6) & 0x3F));
    out[3] = (char)(0x80 | (v & 0x3F));
    return 4;
}

/* ---- strings ------------------------------------------------------------------------------- */

/* Reads a \u or \U escape's |digits| hex digits after the letter into *cp. */
static int read_unicode_escape(parser *ps, int digits, unsigned *cp)
{
    unsigned v = 0;
    for (int k = 0; k < digits; k++) {
        int h = hex_value(peek(ps));
        if (h < 0)
            return FAIL(ps, NANA_ERR_INVALID, "expected a hex digit (\\u takes 4, \\U takes 8)");
        v = v * 16 + (unsigned)h;
        ps->i++;
    }
    *cp = v;
    return NANA_OK;
}

/*
 * Reads a string at the current position (a basic "..." or a literal
 * '...' one, on one line) into the arena: *out NUL-terminated, *len bytes.
 * Multi-line strings are refused as not supported.
 */
static int read_string(parser *ps, char **out, size_t *len)
{
    char quote = ps->p[ps->i];
    unsigned line = ps->line, col = column_of(ps->p, ps->line_start, ps->i);
    if (peek_at(ps, 1) == quote && peek_at(ps, 2) == quote)
        return FAIL(ps, NANA_ERR_INVALID, "multi-line strings are not supported");
    size_t start = ++ps->i, end = start;
    /* Find the closing quote first: the text bounds the decoded length. */
    while (end < ps->n && ps->p[end] != quote && ps->p[end] != '\n' && ps->p[end] != '\r') {
        if (quote == '"' && ps->p[end] == '\\' && end + 1 < ps->n && ps->p[end + 1] != '\n' &&
            ps->p[end + 1] != '\r')
            end++;
        end++;
    }
    if (end >= ps->n || ps->p[end] != quote) {
        ps->i = end;
        return FAIL(ps, NANA_ERR_INVALID, "expected %s to end the string, found %s",
                    quote == '"' ? "'\"'" : "'''", found(ps));
    }
    char *s = nana_arena_alloc(&ps->doc->arena, end - start + 1);
    if (!s) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    size_t n = 0;
    while (ps->i < end) {
        char c = ps->p[ps->i];
        if (quote == '\'' || c != '\\') {
            s[n++] = c;
            ps->i++;
            continue;
        }
        ps->i++; /* the backslash */
        int e = peek(ps);
        static const char from[] = "btnfr\"\\", to[] = "\b\t\n\f\r\"\\";
        const char *m = e > 0 ? strchr(from, e) : NULL;
        if (m && *m) {
            s[n++] = to[m - from];
            ps->i++;
            continue;
        }
        if (e != 'u' && e != 'U') {
            ps->i--;
            return FAIL(ps, NANA_ERR_INVALID,
                        "an unknown escape; the escapes are \\b \\t \\n \\f \\r \\\" \\\\ "
                        "\\uXXXX \\UXXXXXXXX");
        }
        size_t at = ps->i - 1;
        ps->i++;
        unsigned cp = 0;
        int rc = read_unicode_escape(ps, e == 'u' ? 4 : 8, &cp);
        if (rc) return rc;
        if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            ps->i = at;
            return FAIL(ps, NANA_ERR_INVALID, "%s",
                        cp == 0 ? "a NUL character (\\u0000) is not supported"
                                : "the escape is not a Unicode scalar value");
        }
        n += put_utf8(s + n, cp);
    }
    ps->i = end + 1;
    s[n] = '\0';
    if (n > ps->lim.max_string)
        return fail_at(NANA_ERR_TOOBIG, line, col, "a string longer than %zu bytes",
                       ps->lim.max_string);
    *out = s;
    *len = n;
    return NANA_OK;
}

/* ---- keys ---------------------------------------------------------------------------------- */

/* Reads one part of a key: bare, "basic" or 'literal'. */
static int read_key_part(parser *ps, key_part *part)
{
    part->line = ps->line;
    part->col = column_of(ps->p, ps->line_start, ps->i);
    int c = peek(ps);
    if (c == '"' || c == '\'') return read_string(ps, &part->s, &part->len);
    size_t start = ps->i;
    while (is_bare(peek(ps)))
        ps->i++;
    if (ps->i == start) return FAIL(ps, NANA_ERR_INVALID, "expected a key, found %s", found(ps));
    part->len = ps->i - start;
    if (part->len > ps->lim.max_string)
        return fail_at(NANA_ERR_TOOBIG, part->line, part->col, "a key longer than %zu bytes",
                       ps->lim.max_string);
    part->s = nana_arena_dup(&ps->doc->arena, ps->p + start, part->len);
    return part->s ? NANA_OK : nana_err_set(NANA_ERR_NOMEM, "out of memory");
}

/* Reads a dotted key (a.b."c") into ps->parts; *n parts. |used| parts are taken already. */
static int read_key(parser *ps, unsigned used, size_t *n)
{
    *n = 0;
    for (;;) {
        if (used + *n >= ps->lim.max_depth)
            return FAIL(ps, NANA_ERR_TOOBIG, "a key path of more than %u parts", ps->lim.max_depth);
        int rc = read_key_part(ps, &ps->parts[*n]);
        if (rc) return rc;
        ++*n;
        skip_ws(ps);
        if (peek(ps) != '.') return NANA_OK;
        ps->i++;
        skip_ws(ps);
    }
}

/* ---- numbers ------------------------------------------------------------------------------- */

/* True if |c| may be part of a number, date or time token. */
static bool in_number(int c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           c == '+' || c == '-' || c == '.' || c == ':';
}

/* The value of digit |c| in |base|, or -1. */
static int digit_value(int c, int base)
{
    int v = hex_value(c);
    return v >= 0 && v < base ? v : -1;
}

/*
 * Reads digits of |base| with single underscores between them, from
 * ps->i up to |end|, appending the digits to |buf| (if not NULL) at *at.
 */
static int read_digits(parser *ps, size_t end, int base, char *buf, size_t *at)
{
    if (ps->i >= end || digit_value(ps->p[ps->i], base) < 0)
        return FAIL(ps, NANA_ERR_INVALID, "expected a digit, found %s", found(ps));
    while (ps->i < end) {
        int c = (unsigned char)ps->p[ps->i];
        if (c == '_') {
            if (ps->i + 1 >= end || digit_value(ps->p[ps->i + 1], base) < 0)
                return FAIL(ps, NANA_ERR_INVALID, "an underscore must be between two digits");
            ps->i++;
            continue;
        }
        if (digit_value(c, base) < 0) break;
        if (buf) buf[(*at)++] = (char)c;
        ps->i++;
    }
    return NANA_OK;
}

/* Reads a 0x, 0o or 0b integer (no sign) up to |end|. */
static int read_prefixed(parser *ps, size_t end, nana_toml_value *v)
{
    int p = (unsigned char)ps->p[ps->i + 1];
    int base = p == 'x' ? 16 : p == 'o' ? 8 : 2;
    size_t start = ps->i;
    ps->i += 2;
    char digits[MAX_NUMBER + 1];
    size_t nd = 0;
    int rc = read_digits(ps, end, base, digits, &nd);
    if (rc) return rc;
    if (ps->i != end) return FAIL(ps, NANA_ERR_INVALID, "expected a base-%d digit", base);
    uint64_t x = 0;
    for (size_t k = 0; k < nd; k++) {
        uint64_t d = (uint64_t)digit_value(digits[k], base);
        if (x > ((uint64_t)INT64_MAX - d) / (uint64_t)base) {
            ps->i = start;
            return FAIL(ps, NANA_ERR_INVALID, "the integer does not fit in 64 bits");
        }
        x = x * (uint64_t)base + d;
    }
    v->type = NANA_TOML_INTEGER;
    v->u.i = (int64_t)x;
    return NANA_OK;
}

/* Makes the decimal integer of |digits| (with |neg|) into v, refusing overflow. */
static int decimal_integer(parser *ps, size_t start, const char *digits, size_t nd, bool neg,
                           nana_toml_value *v)
{
    uint64_t x = 0, max = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (size_t k = 0; k < nd; k++) {
        uint64_t d = (uint64_t)(digits[k] - '0');
        if (x > (max - d) / 10) {
            ps->i = start;
            return FAIL(ps, NANA_ERR_INVALID, "the integer does not fit in 64 bits");
        }
        x = x * 10 + d;
    }
    v->type = NANA_TOML_INTEGER;
    if (neg)
        v->u.i = x == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)x;
    else
        v->u.i = (int64_t)x;
    return NANA_OK;
}

/*
 * Reads a number at the current position: an integer (decimal, 0x, 0o,
 * 0b) or a float. Dates, times, inf and nan are refused as not supported.
 */
static int read_number(parser *ps, nana_toml_value *v)
{
    size_t start = ps->i, end = ps->i;
    while (end < ps->n && in_number((unsigned char)ps->p[end]))
        end++;
    if (end - start > MAX_NUMBER)
        return FAIL(ps, NANA_ERR_TOOBIG, "a number longer than %d characters", MAX_NUMBER);
    const char *t = ps->p + start;
    size_t len = end - start;
    /* 1979-05-27, 07:32:00: a date or a time. */
    size_t lead = 0;
    while (lead < len && t[lead] >= '0' && t[lead] <= '9')
        lead++;
    if ((lead == 4 && len > 4 && t[4] == '-') || (lead == 2 && len > 2 && t[2] == ':'))
        return FAIL(ps, NANA_ERR_INVALID, "dates and times are not supported");
    bool neg = t[0] == '-', sign = neg || t[0] == '+';
    const char *body = t + (sign ? 1 : 0);
    if (body < t + len && (body[0] == 'i' || body[0] == 'n'))
        return FAIL(ps, NANA_ERR_INVALID, "inf and nan are not supported");
    if (body + 1 < t + len && body[0] == '0' &&
        (body[1] == 'x' || body[1] == 'o' || body[1] == 'b')) {
        if (sign) return FAIL(ps, NANA_ERR_INVALID, "0x, 0o and 0b numbers take no sign");
        return read_prefixed(ps, end, v);
    }
    char buf[MAX_NUMBER + 2];
    size_t at = 0;
    if (neg) buf[at++] = '-';
    if (sign) ps->i++;
    size_t int_at = ps->i;
    int rc = read_digits(ps, end, 10, buf, &at);
    if (rc) return rc;
    if (ps->p[int_at] == '0' && ps->i - int_at > 1) {
        ps->i = int_at;
        return FAIL(ps, NANA_ERR_INVALID, "a number does not start with 0 (leading zeros)");
    }
    size_t int_digits = at;
    bool is_float = false;
    if (ps->i < end && ps->p[ps->i] == '.') {
        is_float = true;
        buf[at++] = ps->p[ps->i++];
        if ((rc = read_digits(ps, end, 10, buf, &at))) return rc;
    }
    if (ps->i < end && (ps->p[ps->i] == 'e' || ps->p[ps->i] == 'E')) {
        is_float = true;
        buf[at++] = 'e';
        ps->i++;
        if (ps->i < end && (ps->p[ps->i] == '+' || ps->p[ps->i] == '-')) buf[at++] = ps->p[ps->i++];
        if ((rc = read_digits(ps, end, 10, buf, &at))) return rc;
    }
    if (ps->i != end)
        return FAIL(ps, NANA_ERR_INVALID, "expected a digit, '.', 'e' or the end of the number");
    buf[at] = '\0';
    if (!is_float)
        return decimal_integer(ps, start, buf + (neg ? 1 : 0), int_digits - (neg ? 1 : 0), neg, v);
    errno = 0;
    char *stop;
    double d = strtod(buf, &stop);
    if (*stop || !isfinite(d)) {
        ps->i = start;
        return FAIL(ps, NANA_ERR_INVALID, "the float is out of range");
    }
    v->type = NANA_TOML_FLOAT;
    v->u.f = d;
    return NANA_OK;
}

/* ---- values -------------------------------------------------------------------------------- */

static int read_value(parser *ps, nana_toml_value *v, unsigned depth);

/* Reads an array: values separated by commas, over any number of lines. */
static int read_array(parser *ps, nana_toml_value *v, unsigned depth)
{
    if (depth >= ps->lim.max_depth)
        return FAIL(ps, NANA_ERR_TOOBIG, "arrays nested more than %u deep", ps->lim.max_depth);
    ps->i++; /* [ */
    nana_toml_value *items = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        skip_blank(ps);
        if (peek(ps) == ']') break;
        if (n >= ps->lim.max_items)
            return FAIL(ps, NANA_ERR_TOOBIG, "more than %zu values in one array",
                        ps->lim.max_items);
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            nana_toml_value *more = nana_arena_alloc(&ps->doc->arena, cap * sizeof(*more));
            if (!more) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
            if (n) memcpy(more, items, n * sizeof(*more));
            items = more;
        }
        int rc = read_value(ps, &items[n], depth + 1);
        if (rc) return rc;
        n++;
        skip_blank(ps);
        if (peek(ps) == ',') {
            ps->i++;
            continue;
        }
        if (peek(ps) == ']') break;
        return FAIL(ps, NANA_ERR_INVALID, "expected ',' or ']' in an array, found %s", found(ps));
    }
    ps->i++; /* ] */
    v->type = NANA_TOML_ARRAY;
    v->u.arr.items = items;
    v->u.arr.n = n;
    return NANA_OK;
}

/* True if the text at the current position is |word| followed by no more of a bare word. */
static bool at_word(const parser *ps, const char *word)
{
    size_t len = strlen(word);
    return ps->n - ps->i >= len && memcmp(ps->p + ps->i, word, len) == 0 &&
           !is_bare(ps->i + len < ps->n ? (unsigned char)ps->p[ps->i + len] : -1);
}

/* Reads one value; |depth| arrays enclose it. */
static int read_value(parser *ps, nana_toml_value *v, unsigned depth)
{
    v->line = ps->line;
    v->col = column_of(ps->p, ps->line_start, ps->i);
    int c = peek(ps);
    if (c == '"' || c == '\'') {
        v->type = NANA_TOML_STRING;
        return read_string(ps, &v->u.str.s, &v->u.str.len);
    }
    if (c == '[') return read_array(ps, v, depth);
    if (c == '{') return FAIL(ps, NANA_ERR_INVALID, "inline tables are not supported");
    if (at_word(ps, "true") || at_word(ps, "false")) {
        v->type = NANA_TOML_BOOL;
        v->u.b = c == 't';
        ps->i += v->u.b ? 4 : 5;
        return NANA_OK;
    }
    if ((c >= '0' && c <= '9') || c == '+' || c == '-' || at_word(ps, "inf") || at_word(ps, "nan"))
        return read_number(ps, v);
    return FAIL(ps, NANA_ERR_INVALID,
                "expected a value (a string, number, true, false or an array), found %s",
                found(ps));
}

/* ---- lines --------------------------------------------------------------------------------- */

/* Reads a [header] and makes its table the current one. */
static int read_header(parser *ps)
{
    unsigned line = ps->line, col = column_of(ps->p, ps->line_start, ps->i);
    ps->i++; /* [ */
    if (peek(ps) == '[') return FAIL(ps, NANA_ERR_INVALID, "arrays of tables are not supported");
    skip_ws(ps);
    size_t n;
    int rc = read_key(ps, 0, &n);
    if (rc) return rc;
    if (peek(ps) != ']')
        return FAIL(ps, NANA_ERR_INVALID, "expected ']' to end the table header, found %s",
                    found(ps));
    ps->i++;
    char name[96];
    nana_toml_table *t = ps->doc->root;
    for (size_t k = 0; k < n; k++) {
        const key_part *part = &ps->parts[k];
        nana_toml_kv *e = table_find(t, part->s, part->len);
        bool last = k + 1 == n;
        if (!e) {
            int rc2 = table_add_table(ps, t, part, last ? T_HEADER : T_IMPLICIT, line, col, &e);
            if (rc2) return rc2;
        } else if (e->val.type != NANA_TOML_TABLE) {
            return fail_at(NANA_ERR_INVALID, line, col, "%s is a value (line %u), not a table",
                           path_text(ps->parts, k + 1, name, sizeof(name)), e->line);
        } else if (last && e->val.u.table->how == T_IMPLICIT) {
            e->val.u.table->how = T_HEADER;
            e->val.line = line;
            e->val.col = col;
        } else if (last) {
            return fail_at(NANA_ERR_INVALID, line, col,
                           e->val.u.table->how == T_HEADER
                               ? "table [%s] is defined twice (first at line %u)"
                               : "table [%s] was already defined by dotted keys at line %u",
                           path_text(ps->parts, n, name, sizeof(name)), e->val.line);
        }
        t = e->val.u.table;
    }
    ps->cur = t;
    ps->cur_depth = (unsigned)n;
    return NANA_OK;
}

/* Reads key = value into the current section. */
static int read_keyval(parser *ps)
{
    size_t n;
    int rc = read_key(ps, ps->cur_depth, &n);
    if (rc) return rc;
    if (peek(ps) != '=')
        return FAIL(ps, NANA_ERR_INVALID, "expected '=' after a key, found %s", found(ps));
    ps->i++;
    skip_ws(ps);
    char name[96];
    nana_toml_table *t = ps->cur;
    for (size_t k = 0; k + 1 < n; k++) { /* the dotted parts: tables made here */
        const key_part *part = &ps->parts[k];
        nana_toml_kv *e = table_find(t, part->s, part->len);
        if (!e) {
            rc = table_add_table(ps, t, part, T_DOTTED, part->line, part->col, &e);
            if (rc) return rc;
        } else if (e->val.type != NANA_TOML_TABLE) {
            return fail_at(NANA_ERR_INVALID, part->line, part->col,
                           "%s is a value (line %u), not a table",
                           path_text(ps->parts, k + 1, name, sizeof(name)), e->line);
        } else if (e->val.u.table->how != T_DOTTED) {
            return fail_at(NANA_ERR_INVALID, part->line, part->col,
                           "table %s was defined at line %u; dotted keys cannot add to it",
                           path_text(ps->parts, k + 1, name, sizeof(name)), e->val.line);
        }
        t = e->val.u.table;
    }
    const key_part *last = &ps->parts[n - 1];
    nana_toml_kv *dup = table_find(t, last->s, last->len);
    if (dup)
        return fail_at(NANA_ERR_INVALID, last->line, last->col,
                       "%s is defined twice (first at line %u)",
                       path_text(ps->parts, n, name, sizeof(name)), dup->line);
    nana_toml_kv *e;
    if ((rc = table_add(ps, t, last, &e))) return rc;
    return read_value(ps, &e->val, 0);
}

/* After a header or a value: spaces, a comment, then the end of the line or file. */
static int end_of_line(parser *ps, const char *after)
{
    skip_ws(ps);
    if (peek(ps) == '#') skip_comment(ps);
    if (ps->i >= ps->n) return NANA_OK;
    if (at_newline(ps)) {
        take_newline(ps);
        return NANA_OK;
    }
    return FAIL(ps, NANA_ERR_INVALID, "expected the end of the line after %s, found %s", after,
                found(ps));
}

static int parse_lines(parser *ps)
{
    while (ps->i < ps->n) {
        skip_ws(ps);
        int c = peek(ps);
        int rc;
        if (c == '#' || c < 0 || at_newline(ps)) {
            rc = end_of_line(ps, "a comment");
        } else if (c == '[') {
            rc = read_header(ps);
            if (!rc) rc = end_of_line(ps, "a table header");
        } else {
            rc = read_keyval(ps);
            if (!rc) rc = end_of_line(ps, "a value");
        }
        if (rc) return rc;
    }
    return NANA_OK;
}

/* ---- the public face ----------------------------------------------------------------------- */

int nana_toml_parse(const char *text, size_t len, const nana_toml_limits *lim, nana_toml_doc **out)
{
    *out = NULL;
    parser ps;
    memset(&ps, 0, sizeof(ps));
    if (lim)
        ps.lim = *lim;
    else
        nana_toml_limits_init(&ps.lim);
    if (ps.lim.max_depth < 1) ps.lim.max_depth = 1;
    if (len > ps.lim.max_bytes)
        return nana_err_set(NANA_ERR_TOOBIG, "%zu bytes, more than the limit of %zu", len,
                            ps.lim.max_bytes);
    ps.p = text;
    ps.n = len;
    ps.line = 1;
    /* A byte order mark at the start is allowed and skipped. */
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) ps.i = ps.line_start = 3;
    int rc = check_bytes(text, len, ps.i);
    if (rc) return rc;
    nana_toml_doc *d = nana_calloc(1, sizeof(*d));
    if (!d) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    ps.doc = d;
    ps.parts = nana_arena_alloc(&d->arena, ps.lim.max_depth * sizeof(key_part));
    d->root = ps.parts ? table_new(&ps, T_ROOT) : NULL;
    if (!d->root) {
        nana_toml_free(d);
        return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    }
    ps.cur = d->root;
    rc = parse_lines(&ps);
    if (rc) {
        nana_toml_free(d);
        return rc;
    }
    *out = d;
    return NANA_OK;
}

void nana_toml_free(nana_toml_doc *d)
{
    if (!d) return;
    nana_arena_free(&d->arena);
    nana_free(d);
}

const nana_toml_table *nana_toml_root(const nana_toml_doc *d)
{
    return d->root;
}

size_t nana_toml_table_size(const nana_toml_table *t)
{
    return t->n;
}

const nana_toml_kv *nana_toml_table_at(const nana_toml_table *t, size_t i)
{
    return i < t->n ? &t->kv[i] : NULL;
}

const nana_toml_value *nana_toml_table_get(const nana_toml_table *t, const char *key)
{
    const nana_toml_kv *e = table_find(t, key, strlen(key));
    return e ? &e->val : NULL;
}

const char *nana_toml_type_name(nana_toml_type t)
{
    switch (t) {
    case NANA_TOML_STRING:
        return "a string";
    case NANA_TOML_INTEGER:
        return "an integer";
    case NANA_TOML_FLOAT:
        return "a float";
    case NANA_TOML_BOOL:
        return "a boolean";
    case NANA_TOML_ARRAY:
        return "an array";
    case NANA_TOML_TABLE:
        return "a table";
    }
    return "a value";
}
