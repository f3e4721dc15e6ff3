/*
 * nana_opt.c - the option tables' parser, help and reference (nana_opt.h).
 *
 * One function turns a value's text into a field (nana_opt_set); the
 * defaults, the command line, the environment and a configuration file
 * all go through it, so a value means the same wherever it is written and
 * a bad one gets the same message. The help and the Markdown reference are
 * printed from the same rows, so they cannot drift from what is parsed.
 */
#include "nana_opt.h"

#include "nana_err.h"
#include "nana_parse.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#ifndef NANA_VERSION
#define NANA_VERSION "0.0.0"
#endif

/* The longest value echoed in an error message. */
#define ECHO_MAX 64

/* The most rows a table may have (a bitmap of the ones given). */
#define MAX_ROWS 256

const char *nana_opt_version(void)
{
    return NANA_VERSION;
}

/* ---- values --------------------------------------------------------------- */

/* Stores |v| in an unsigned field of |size| bytes. */
static void store_uint(void *field, size_t size, uint64_t v)
{
    if (size == 1) {
        uint8_t x = (uint8_t)v;
        memcpy(field, &x, 1);
    } else if (size == 2) {
        uint16_t x = (uint16_t)v;
        memcpy(field, &x, 2);
    } else if (size == 4) {
        uint32_t x = (uint32_t)v;
        memcpy(field, &x, 4);
    } else {
        memcpy(field, &v, 8);
    }
}

/* The largest value a field of |size| bytes holds. */
static uint64_t size_max(size_t size)
{
    return size >= 8 ? UINT64_MAX : (((uint64_t)1 << (size * 8)) - 1);
}

/* Reads a flag's text: 1 true, 0 false, -1 neither. */
static int flag_word(const char *s)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcmp(s, yes[i]) == 0) return 1;
        if (strcmp(s, no[i]) == 0) return 0;
    }
    return -1;
}

/* Writes the allowed words of an enum row into |buf|: "a, b or c". */
static void enum_words(const nana_opt *row, char *buf, size_t n)
{
    size_t at = 0;
    buf[0] = '\0';
    for (size_t i = 0; row->words && row->words[i] && at < n; i++) {
        const char *sep = i == 0 ? "" : row->words[i + 1] ? ", " : " or ";
        int w = snprintf(buf + at, n - at, "%s%s", sep, row->words[i]);
        if (w < 0) break;
        at += (size_t)w;
    }
}

/* Writes a UINT or DOUBLE row's range as "lo..hi" into |buf|. */
static void range_text(const nana_opt *row, char *buf, size_t n)
{
    if (row->kind == NANA_OPT_UINT)
        snprintf(buf, n, "%llu..%llu", (unsigned long long)row->min, (unsigned long long)row->max);
    else
        snprintf(buf, n, "%.15g..%.15g", row->dmin, row->dmax);
}

/* Stores a flag's value in its field (a bool or an int). */
static void store_flag(void *field, size_t size, int on)
{
    store_uint(field, size, on ? 1 : 0);
}

int nana_opt_set(const nana_opt *row, void *base, const char *text, const char *who)
{
    void *field = (char *)base + row->offset;
    char range[96];
    if (!text) return nana_err_set(NANA_ERR_INVALID, "%s needs a value", who);
    if (!*text && row->kind != NANA_OPT_CUSTOM && !(row->flags & NANA_OPT_EMPTY))
        return nana_err_set(NANA_ERR_INVALID, "%s: the value is empty", who);
    switch (row->kind) {
    case NANA_OPT_FLAG: {
        int on = flag_word(text);
        if (on < 0)
            return nana_err_set(NANA_ERR_INVALID, "%s: \"%.*s\" is not true or false", who,
                                ECHO_MAX, text);
        store_flag(field, row->size, on);
        return NANA_OK;
    }
    case NANA_OPT_UINT: {
        uint64_t v = 0;
        int rc = nana_parse_u64(text, row->min, row->max, &v);
        range_text(row, range, sizeof(range));
        if (rc == NANA_ERR_TOOBIG)
            return nana_err_set(NANA_ERR_INVALID, "%s: %.*s is out of range (%s)", who, ECHO_MAX,
                                text, range);
        if (rc)
            return nana_err_set(NANA_ERR_INVALID, "%s: \"%.*s\" is not a number (%s)", who,
                                ECHO_MAX, text, range);
        store_uint(field, row->size, v);
        return NANA_OK;
    }
    case NANA_OPT_DOUBLE: {
        double v = 0;
        int rc = nana_parse_double(text, row->dmin, row->dmax, &v);
        range_text(row, range, sizeof(range));
        if (rc == NANA_ERR_TOOBIG)
            return nana_err_set(NANA_ERR_INVALID, "%s: %.*s is out of range (%s)", who, ECHO_MAX,
                                text, range);
        if (rc)
            return nana_err_set(NANA_ERR_INVALID, "%s: \"%.*s\" is not a number (%s)", who,
                                ECHO_MAX, text, range);
        memcpy(field, &v, sizeof(v));
        return NANA_OK;
    }
    case NANA_OPT_STRING:
    case NANA_OPT_PATH:
        memcpy(field, &text, sizeof(text));
        return NANA_OK;
    case NANA_OPT_ENUM:
        for (size_t i = 0; row->words && row->words[i]; i++) {
            if (strcmp(text, row->words[i]) != 0) continue;
            int v = row->values ? row->values[i] : (int)i;
            memcpy(field, &v, sizeof(v));
            return NANA_OK;
        }
        enum_words(row, range, sizeof(range));
        return nana_err_set(NANA_ERR_INVALID, "%s: \"%.*s\" is not one of %s", who, ECHO_MAX, text,
                            range);
    case NANA_OPT_CUSTOM: {
        int rc = row->parse ? row->parse(row, text, field)
                            : nana_err_set(NANA_ERR_INVALID, "no reader for this option");
        if (rc) {
            char msg[NANA_ERRMSG_MAX];
            snprintf(msg, sizeof(msg), "%s", nana_errmsg());
            return nana_err_set(NANA_ERR_INVALID, "%s: %s", who, msg);
        }
        return NANA_OK;
    }
    }
    return nana_err_set(NANA_ERR_INVALID, "%s: unknown kind of option", who);
}

int nana_opt_defaults(const nana_opt_table *t)
{
    for (size_t i = 0; i < t->n; i++) {
        const nana_opt *row = &t->rows[i];
        if (!row->def) continue;
        char who[96];
        snprintf(who, sizeof(who), "the default of --%s", row->name);
        int rc = nana_opt_set(row, t->base, row->def, who);
        if (rc) return rc;
    }
    return NANA_OK;
}

const char *nana_opt_key(const nana_opt *row, char *buf, size_t n)
{
    if (!row->section || !n) return NULL;
    snprintf(buf, n, "%s", row->key ? row->key : row->name);
    if (!row->key)
        for (char *c = buf; *c; c++)
            if (*c == '-') *c = '_';
    return buf;
}

const nana_opt *nana_opt_find(const nana_opt_table *t, const char *name)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->rows[i].name, name) == 0) return &t->rows[i];
    return NULL;
}

/* ---- the command line ----------------------------------------------------- */

/* A row found on the command line: which table and which row. */
typedef struct found {
    size_t table, row;
} found;

/* Looks a long name (|len| bytes of |name|) or a short one (len 0) up in every table. */
static bool lookup(const nana_opt_prog *p, const char *name, size_t len, char short_name,
                   found *out)
{
    for (size_t t = 0; t < p->ntables; t++) {
        const nana_opt_table *tb = &p->tables[t];
        for (size_t i = 0; i < tb->n; i++) {
            const nana_opt *row = &tb->rows[i];
            bool hit = len ? strlen(row->name) == len && strncmp(row->name, name, len) == 0
                           : row->short_name && row->short_name == short_name;
            if (hit) {
                *out = (found){t, i};
                return true;
            }
        }
    }
    return false;
}

/* True if some row uses short name |c| (so the built-in -h gives way). */
static bool short_taken(const nana_opt_prog *p, char c)
{
    found f;
    return lookup(p, NULL, 0, c, &f);
}

/* Prints the version line. */
static void print_version(const nana_opt_prog *p, FILE *out)
{
    fprintf(out, "%s %s\n", p->name, p->version ? p->version : nana_opt_version());
}

/*
 * Handles the built-ins. Returns NANA_OPT_DONE if |a| was one (and its
 * text is printed), 0 if not.
 */
static int builtin(const nana_opt_prog *p, const char *a)
{
    FILE *out = p->out ? p->out : stdout;
    if (strcmp(a, "--help") == 0 || (strcmp(a, "-h") == 0 && !short_taken(p, 'h'))) {
        nana_opt_help(p, out);
        return NANA_OPT_DONE;
    }
    if (strcmp(a, "--version") == 0) {
        print_version(p, out);
        return NANA_OPT_DONE;
    }
    if (p->markdown && strcmp(a, "--help-markdown") == 0) {
        nana_opt_markdown(p, out);
        return NANA_OPT_DONE;
    }
    if (p->config_doc && strcmp(a, "--help-config") == 0) {
        nana_opt_config_example(p, out);
        return NANA_OPT_DONE;
    }
    return 0;
}

/*
 * Takes one option at argv[*i] (it starts with '-'). Advances *i past its
 * value when the value is the next argument. Marks the row in |seen|.
 */
static int take_option(const nana_opt_prog *p, int argc, char **argv, int *i,
                       unsigned char (*seen)[MAX_ROWS])
{
    const char *a = argv[*i];
    found f;
    const char *value = NULL;
    bool has_value = false;
    char who[80];
    if (a[1] == '-') { /* --name, --name=value */
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        if (!len || !lookup(p, name, len, 0, &f))
            return nana_err_set(NANA_ERR_INVALID, "unknown option --%.*s", (int)(len ? len : 1),
                                len ? name : "");
        snprintf(who, sizeof(who), "--%.*s", (int)len, name);
        if (eq) {
            value = eq + 1;
            has_value = true;
        }
    } else { /* -c, -cVALUE */
        if (!lookup(p, NULL, 0, a[1], &f))
            return nana_err_set(NANA_ERR_INVALID, "unknown option -%c", a[1]);
        snprintf(who, sizeof(who), "-%c", a[1]);
        if (a[2]) {
            value = a + 2;
            has_value = true;
        }
    }
    const nana_opt_table *tb = &p->tables[f.table];
    const nana_opt *row = &tb->rows[f.row];
    seen[f.table][f.row] = 1;
    if (row->kind == NANA_OPT_FLAG) {
        if (has_value) return nana_err_set(NANA_ERR_INVALID, "%s takes no value", who);
        store_flag((char *)tb->base + row->offset, row->size, 1);
        return NANA_OK;
    }
    if (!has_value) {
        if (*i + 1 >= argc) return nana_err_set(NANA_ERR_INVALID, "%s needs a value", who);
        value = argv[++*i];
    }
    return nana_opt_set(row, tb->base, value, who);
}

/*
 * Checks every table (nana_opt_check) and that no name is in two tables,
 * so a mistake in a tool's table fails its first run, in the tests,
 * rather than misparsing. Returns 0 or NANA_ERR_INVALID.
 */
static int check_prog(const nana_opt_prog *p)
{
    for (size_t t = 0; t < p->ntables; t++) {
        const nana_opt_table *tb = &p->tables[t];
        if (tb->n > MAX_ROWS)
            return nana_err_set(NANA_ERR_INVALID, "option table: more than %d rows", MAX_ROWS);
        int rc = nana_opt_check(tb);
        if (rc) {
            char msg[NANA_ERRMSG_MAX];
            snprintf(msg, sizeof(msg), "%s", nana_errmsg());
            return nana_err_set(NANA_ERR_INVALID, "option table: %s", msg);
        }
        for (size_t i = 0; i < tb->n; i++) {
            found f;
            const nana_opt *row = &tb->rows[i];
            bool dup = lookup(p, row->name, strlen(row->name), 0, &f) && f.table != t;
            dup |= row->short_name && lookup(p, NULL, 0, row->short_name, &f) && f.table != t;
            if (dup)
                return nana_err_set(NANA_ERR_INVALID, "option table: --%s is in two tables",
                                    row->name);
            char key[96], other[96];
            for (size_t u = 0; u < t && nana_opt_key(row, key, sizeof(key)); u++)
                for (size_t j = 0; j < p->tables[u].n; j++) {
                    const nana_opt *r = &p->tables[u].rows[j];
                    if (nana_opt_key(r, other, sizeof(other)) &&
                        strcmp(r->section, row->section) == 0 && strcmp(other, key) == 0)
                        return nana_err_set(NANA_ERR_INVALID,
                                            "option table: [%s] %s is in two tables", row->section,
                                            key);
                }
        }
    }
    return NANA_OK;
}

/*
 * Reads the options of argv[1..argc-1] into their fields, marking each row
 * given in |seen|. Sets *at to the index of the first argument that is the
 * caller's. Returns 0, NANA_OPT_DONE after a built-in, or NANA_ERR_INVALID.
 */
static int take_args(const nana_opt_prog *p, int argc, char **argv, unsigned char (*seen)[MAX_ROWS],
                     int *at)
{
    int rc = NANA_OK;
    int i = 1;
    for (; !rc && i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (a[0] != '-' || a[1] == '\0') { /* the caller's, or a stray word */
            if (p->positional) break;
            rc = nana_err_set(NANA_ERR_INVALID,
                              "unexpected argument \"%.*s\" (options start with --)", ECHO_MAX, a);
            break;
        }
        rc = builtin(p, a);
        if (!rc) rc = take_option(p, argc, argv, &i, seen);
    }
    if (!rc && i < argc && !p->positional)
        rc = nana_err_set(NANA_ERR_INVALID, "unexpected argument \"%.*s\"", ECHO_MAX, argv[i]);
    *at = i;
    return rc;
}

int nana_opt_parse(const nana_opt_prog *p, int argc, char **argv, int *first)
{
    *first = argc;
    unsigned char(*seen)[MAX_ROWS] = calloc(p->ntables ? p->ntables : 1, sizeof(*seen));
    if (!seen) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    int rc = check_prog(p);
    for (size_t t = 0; !rc && t < p->ntables; t++)
        rc = nana_opt_defaults(&p->tables[t]);
    int i = 1;
    if (!rc) rc = take_args(p, argc, argv, seen, &i);
    /* The layer (a configuration file), and the command line again over it. */
    if (!rc && p->layer) {
        rc = p->layer(p, p->layer_ctx);
        if (rc > 0) rc = take_args(p, argc, argv, seen, &i);
    }
    /* The environment stands in for options not given. */
    for (size_t t = 0; !rc && t < p->ntables; t++) {
        const nana_opt_table *tb = &p->tables[t];
        for (size_t k = 0; !rc && k < tb->n; k++) {
            const nana_opt *row = &tb->rows[k];
            const char *e = row->env && !seen[t][k] ? getenv(row->env) : NULL;
            if (e && *e) rc = nana_opt_set(row, tb->base, e, row->env);
        }
    }
    free(seen);
    if (!rc) *first = i;
    return rc;
}

int nana_opt_report(const nana_opt_prog *p, int rc)
{
    if (rc == 0) return -1;
    if (rc == NANA_OPT_DONE) return 0;
    fprintf(stderr, "%s: %s\n", p->name, nana_errmsg());
    return NANA_OPT_EXIT_USAGE;
}

/* ---- help and reference ---------------------------------------------------- */

/* The value's name shown after the option ("N", "FILE"); "" for a flag. */
static const char *arg_name(const nana_opt *row)
{
    if (row->arg) return row->arg;
    switch (row->kind) {
    case NANA_OPT_FLAG:
        return "";
    case NANA_OPT_UINT:
        return "N";
    case NANA_OPT_DOUBLE:
        return "X";
    case NANA_OPT_PATH:
        return "FILE";
    case NANA_OPT_ENUM:
        return "WORD";
    default:
        return "VALUE";
    }
}

/* The default as shown: def_doc, else def, else "" (none). */
static const char *default_text(const nana_opt *row)
{
    if (row->def_doc) return row->def_doc;
    if (row->kind == NANA_OPT_FLAG) return row->def && flag_word(row->def) == 1 ? "on" : "";
    return row->def ? row->def : "";
}

/* The allowed values as shown: a range, the words, or "". */
static void allowed_text(const nana_opt *row, char *buf, size_t n)
{
    buf[0] = '\0';
    if (row->kind == NANA_OPT_UINT || row->kind == NANA_OPT_DOUBLE)
        range_text(row, buf, n);
    else if (row->kind == NANA_OPT_ENUM)
        enum_words(row, buf, n);
}

/* The heading |row| is listed under. */
static const char *group_of(const nana_opt *row)
{
    return row->group ? row->group : "options";
}

/* True if |row| is listed under |group|. */
static bool in_group(const nana_opt *row, const char *group)
{
    return !(row->flags & NANA_OPT_HIDDEN) && strcmp(group_of(row), group) == 0;
}

/*
 * Calls fn(group) once per heading that has a visible row, in the order
 * the headings first appear.
 */
static void each_group(const nana_opt_prog *p,
                       void (*fn)(const nana_opt_prog *, const char *, void *), void *ctx)
{
    for (size_t t = 0; t < p->ntables; t++) {
        for (size_t i = 0; i < p->tables[t].n; i++) {
            const nana_opt *row = &p->tables[t].rows[i];
            if (row->flags & NANA_OPT_HIDDEN) continue;
            bool earlier = false;
            for (size_t u = 0; u <= t && !earlier; u++)
                for (size_t j = 0; j < (u == t ? i : p->tables[u].n) && !earlier; j++)
                    earlier = in_group(&p->tables[u].rows[j], group_of(row));
            if (!earlier) fn(p, group_of(row), ctx);
        }
    }
}

/* One help line (wrapped once when long): "  -c, --conns N   help (1..100) [50]". */
static void help_line(FILE *out, const char *left, const char *help, const char *tail)
{
    if (strlen(left) > 24) {
        fprintf(out, "  %s\n  %-24s %s%s\n", left, "", help, tail);
    } else if (27 + strlen(help) + strlen(tail) > 80 && *tail) {
        fprintf(out, "  %-24s %s\n  %-24s %s\n", left, help, "", tail + 1);
    } else {
        fprintf(out, "  %-24s %s%s\n", left, help, tail);
    }
}

static void help_group(const nana_opt_prog *p, const char *group, void *ctx)
{
    FILE *out = ctx;
    fprintf(out, "\n%s:\n", group);
    for (size_t t = 0; t < p->ntables; t++) {
        for (size_t i = 0; i < p->tables[t].n; i++) {
            const nana_opt *row = &p->tables[t].rows[i];
            if (!in_group(row, group)) continue;
            char left[96], allowed[160], tail[288];
            const char *arg = arg_name(row);
            if (row->short_name)
                snprintf(left, sizeof(left), "-%c, --%s%s%s", row->short_name, row->name,
                         *arg ? " " : "", arg);
            else
                snprintf(left, sizeof(left), "--%s%s%s", row->name, *arg ? " " : "", arg);
            allowed_text(row, allowed, sizeof(allowed));
            const char *def = default_text(row);
            int at = 0;
            tail[0] = '\0';
            if (*allowed) at = snprintf(tail, sizeof(tail), " (%s)", allowed);
            if (at < 0) at = 0;
            if ((size_t)at < sizeof(tail) && row->env)
                snprintf(tail + at, sizeof(tail) - (size_t)at, " [$%s, else %s]", row->env,
                         *def ? def : "none");
            else if ((size_t)at < sizeof(tail) && *def)
                snprintf(tail + at, sizeof(tail) - (size_t)at, " [%s]", def);
            help_line(out, left, row->help ? row->help : "", tail);
        }
    }
}

void nana_opt_help(const nana_opt_prog *p, FILE *out)
{
    fprintf(out, "usage: %s %s\n", p->name, p->usage ? p->usage : "[options]");
    if (p->about) fprintf(out, "\n%s", p->about);
    each_group(p, help_group, out);
    fputs("\nhelp:\n", out);
    help_line(out, "-h, --help", "this help", "");
    help_line(out, "--version", "the version", "");
    if (p->markdown) help_line(out, "--help-markdown", "the options as a Markdown reference", "");
    if (p->config_doc)
        help_line(out, "--help-config", "a configuration file with every setting", "");
    if (p->epilog) fprintf(out, "\n%s", p->epilog);
}

/* Writes |s| for a Markdown table cell ('|' escaped). */
static void md_cell(FILE *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '|') fputc('\\', out);
        fputc(*s, out);
    }
}

/* True if any visible row of |group| has an environment variable. */
static bool group_has_env(const nana_opt_prog *p, const char *group)
{
    for (size_t t = 0; t < p->ntables; t++)
        for (size_t i = 0; i < p->tables[t].n; i++)
            if (in_group(&p->tables[t].rows[i], group) && p->tables[t].rows[i].env) return true;
    return false;
}

/* True if any visible row of the program is read from configuration files. */
static bool prog_has_keys(const nana_opt_prog *p)
{
    for (size_t t = 0; t < p->ntables; t++)
        for (size_t i = 0; i < p->tables[t].n; i++)
            if (!(p->tables[t].rows[i].flags & NANA_OPT_HIDDEN) && p->tables[t].rows[i].section)
                return true;
    return false;
}

/* The TOML type of a row's value in a configuration file. */
static const char *toml_type(const nana_opt *row)
{
    switch (row->kind) {
    case NANA_OPT_FLAG:
        return "boolean";
    case NANA_OPT_UINT:
        return "integer";
    case NANA_OPT_DOUBLE:
        return "float";
    default:
        return "string";
    }
}

/* The reference's cell for a row's configuration key. */
static void md_key(FILE *out, const nana_opt *row)
{
    char key[96];
    if (nana_opt_key(row, key, sizeof(key))) {
        fprintf(out, " `[%s] ", row->section);
        md_cell(out, key);
        fprintf(out, "` (%s) |", toml_type(row));
    } else {
        fputs(" ", out);
        md_cell(out, row->key_doc ? row->key_doc : "command line only");
        fputs(" |", out);
    }
}

static void md_group(const nana_opt_prog *p, const char *group, void *ctx)
{
    FILE *out = ctx;
    bool env = group_has_env(p, group), keys = prog_has_keys(p);
    fprintf(out,
            "\n## %s\n\n| option |%s value | default |%s description |\n|---|%s---|---|%s---|\n",
            group, keys ? " config file |" : "", env ? " environment |" : "", keys ? "---|" : "",
            env ? "---|" : "");
    for (size_t t = 0; t < p->ntables; t++) {
        for (size_t i = 0; i < p->tables[t].n; i++) {
            const nana_opt *row = &p->tables[t].rows[i];
            if (!in_group(row, group)) continue;
            char allowed[160];
            allowed_text(row, allowed, sizeof(allowed));
            fputs("| `--", out);
            md_cell(out, row->name);
            fputs("`", out);
            if (row->short_name) fprintf(out, ", `-%c`", row->short_name);
            fputs(" |", out);
            if (keys) md_key(out, row);
            fputs(" ", out);
            md_cell(out, *allowed ? allowed : row->kind == NANA_OPT_FLAG ? "flag" : arg_name(row));
            fputs(" | ", out);
            const char *def = default_text(row);
            if (*def && !row->def_doc) {
                fputs("`", out);
                md_cell(out, def);
                fputs("`", out);
            } else {
                md_cell(out, *def ? def : row->kind == NANA_OPT_FLAG ? "off" : "none");
            }
            fputs(" |", out);
            if (env && row->env)
                fprintf(out, " `%s` |", row->env);
            else if (env)
                fputs(" |", out);
            fputs(" ", out);
            md_cell(out, row->help ? row->help : "");
            fputs(" |\n", out);
        }
    }
}

void nana_opt_markdown(const nana_opt_prog *p, FILE *out)
{
    if (p->doc) fputs(p->doc, out);
    each_group(p, md_group, out);
}

/* ---- a configuration file with every key ----------------------------------------------------- */

/* Writes |s| as a TOML basic string. */
static void toml_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c < 0x20 || c == 0x7F)
            fprintf(out, "\\u%04X", c);
        else
            fputc(c, out);
    }
    fputc('"', out);
}

/* Writes |text| as the TOML value of |row|. */
static void toml_value(FILE *out, const nana_opt *row, const char *text)
{
    if (row->kind == NANA_OPT_FLAG)
        fputs(text && flag_word(text) == 1 ? "true" : "false", out);
    else if (row->kind == NANA_OPT_UINT || row->kind == NANA_OPT_DOUBLE)
        fputs(text, out);
    else
        toml_string(out, text);
}

/* Writes |text| as comment lines of at most 78 characters, broken at spaces. */
static void comment_wrapped(FILE *out, const char *text)
{
    while (*text) {
        size_t len = strlen(text), cut = len;
        if (len > 76) {
            cut = 76;
            while (cut > 0 && text[cut] != ' ')
                cut--;
            if (!cut) cut = strcspn(text, " ");
        }
        fprintf(out, "# %.*s\n", (int)cut, text);
        text += cut;
        while (*text == ' ')
            text++;
    }
}

/* One key: its flag and help as a comment, then "key = default" or "# key = example". */
static void example_row(FILE *out, const nana_opt *row)
{
    char key[96], allowed[160], text[512];
    nana_opt_key(row, key, sizeof(key));
    allowed_text(row, allowed, sizeof(allowed));
    int at = snprintf(text, sizeof(text), "--%s: %s", row->name, row->help ? row->help : "");
    if (at > 0 && (size_t)at < sizeof(text) && *allowed)
        at += snprintf(text + at, sizeof(text) - (size_t)at, " (%s)", allowed);
    if (at > 0 && (size_t)at < sizeof(text) && row->def_doc)
        snprintf(text + at, sizeof(text) - (size_t)at, "; default: %s", row->def_doc);
    fputc('\n', out);
    comment_wrapped(out, text);
    if (row->def || row->kind == NANA_OPT_FLAG) {
        fprintf(out, "%s = ", key);
        toml_value(out, row, row->def);
    } else {
        fprintf(out, "# %s = ", key);
        toml_value(out, row, row->example ? row->example : "");
    }
    fputc('\n', out);
}

/* True if a visible row before table |t|, row |i| has section |section|. */
static bool section_seen(const nana_opt_prog *p, size_t t, size_t i, const char *section)
{
    for (size_t u = 0; u <= t; u++)
        for (size_t j = 0; j < (u == t ? i : p->tables[u].n); j++) {
            const nana_opt *r = &p->tables[u].rows[j];
            if (!(r->flags & NANA_OPT_HIDDEN) && r->section && strcmp(r->section, section) == 0)
                return true;
        }
    return false;
}

void nana_opt_config_example(const nana_opt_prog *p, FILE *out)
{
    if (p->config_doc) fputs(p->config_doc, out);
    for (size_t t = 0; t < p->ntables; t++) {
        for (size_t i = 0; i < p->tables[t].n; i++) {
            const nana_opt *first = &p->tables[t].rows[i];
            if ((first->flags & NANA_OPT_HIDDEN) || !first->section ||
                section_seen(p, t, i, first->section))
                continue;
            fprintf(out, "\n[%s]\n", first->section);
            for (size_t u = t; u < p->ntables; u++)
                for (size_t j = u == t ? i : 0; j < p->tables[u].n; j++) {
                    const nana_opt *row = &p->tables[u].rows[j];
                    if (!(row->flags & NANA_OPT_HIDDEN) && row->section &&
                        strcmp(row->section, first->section) == 0)
                        example_row(out, row);
                }
        }
    }
}

/* ---- checking a table ------------------------------------------------------ */

/* True if |s| is a plain configuration word: [a-z0-9_]+. */
static bool plain_word(const char *s)
{
    if (!s || !*s) return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_')) return false;
    return true;
}

/*
 * Checks row |i|'s configuration key: on a visible row, a plain word in a
 * plain section, not used by an earlier row, with a default or an example
 * (which must parse, into |scratch|).
 */
static int check_key(const nana_opt_table *t, size_t i, void *scratch)
{
    const nana_opt *row = &t->rows[i];
    char key[96], other[96];
    if (!row->section) {
        if (row->key)
            return nana_err_set(NANA_ERR_INVALID, "--%s: a key with no section", row->name);
        return NANA_OK;
    }
    if (row->flags & NANA_OPT_HIDDEN)
        return nana_err_set(NANA_ERR_INVALID, "--%s: a hidden option has no configuration key",
                            row->name);
    nana_opt_key(row, key, sizeof(key));
    if (!plain_word(row->section) || !plain_word(key))
        return nana_err_set(NANA_ERR_INVALID, "--%s: [%s] %s is not a plain key", row->name,
                            row->section, key);
    for (size_t j = 0; j < i; j++) {
        const nana_opt *r = &t->rows[j];
        if (nana_opt_key(r, other, sizeof(other)) && strcmp(r->section, row->section) == 0 &&
            strcmp(other, key) == 0)
            return nana_err_set(NANA_ERR_INVALID, "[%s] %s: the key of --%s and --%s", row->section,
                                key, r->name, row->name);
    }
    if (!row->def && row->kind != NANA_OPT_FLAG && !row->example)
        return nana_err_set(NANA_ERR_INVALID,
                            "--%s: a configuration key needs a default or an "
                            "example",
                            row->name);
    if (row->example) {
        char who[96];
        snprintf(who, sizeof(who), "the example of --%s", row->name);
        return nana_opt_set(row, scratch, row->example, who);
    }
    return NANA_OK;
}

int nana_opt_check(const nana_opt_table *t)
{
    size_t span = 0;
    for (size_t i = 0; i < t->n; i++) {
        const nana_opt *row = &t->rows[i];
        if (row->offset + row->size > span) span = row->offset + row->size;
    }
    void *scratch = calloc(1, span ? span : 1);
    if (!scratch) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    int rc = NANA_OK;
    for (size_t i = 0; !rc && i < t->n; i++) {
        const nana_opt *row = &t->rows[i];
        const char *name = row->name ? row->name : "";
        if (!*name || name[0] == '-' || strchr(name, '=') || strchr(name, ' '))
            rc = nana_err_set(NANA_ERR_INVALID, "row %zu: bad name \"%s\"", i, name);
        for (size_t j = 0; !rc && j < i; j++) {
            if (strcmp(t->rows[j].name, name) == 0)
                rc = nana_err_set(NANA_ERR_INVALID, "--%s: listed twice", name);
            if (row->short_name && t->rows[j].short_name == row->short_name)
                rc = nana_err_set(NANA_ERR_INVALID, "-%c: listed twice", row->short_name);
        }
        if (!rc && !(row->flags & NANA_OPT_HIDDEN) && (!row->help || !*row->help))
            rc = nana_err_set(NANA_ERR_INVALID, "--%s: no help", name);
        if (rc) break;
        switch (row->kind) {
        case NANA_OPT_FLAG:
            if (row->size != 1 && row->size != sizeof(int))
                rc = nana_err_set(NANA_ERR_INVALID, "--%s: a flag's field is a bool or an int",
                                  name);
            break;
        case NANA_OPT_UINT:
            if (row->size != 1 && row->size != 2 && row->size != 4 && row->size != 8)
                rc = nana_err_set(NANA_ERR_INVALID, "--%s: field of %zu bytes", name, row->size);
            else if (row->min > row->max || row->max > size_max(row->size))
                rc = nana_err_set(NANA_ERR_INVALID, "--%s: range %llu..%llu does not fit", name,
                                  (unsigned long long)row->min, (unsigned long long)row->max);
            break;
        case NANA_OPT_DOUBLE:
            if (row->size != sizeof(double) || !(row->dmin <= row->dmax))
                rc = nana_err_set(NANA_ERR_INVALID, "--%s: bad double field or range", name);
            break;
        case NANA_OPT_STRING:
        case NANA_OPT_PATH:
            if (row->size != sizeof(const char *))
                rc = nana_err_set(NANA_ERR_INVALID, "--%s: a string's field is a pointer", name);
            break;
        case NANA_OPT_ENUM:
            if (!row->words || !row->words[0] || row->size != sizeof(int))
                rc = nana_err_set(NANA_ERR_INVALID, "--%s: an enum needs words and an int field",
                                  name);
            break;
        case NANA_OPT_CUSTOM:
            if (!row->parse) rc = nana_err_set(NANA_ERR_INVALID, "--%s: no parse function", name);
            break;
        default:
            rc = nana_err_set(NANA_ERR_INVALID, "--%s: unknown kind", name);
        }
        if (!rc && row->def) {
            char who[96];
            snprintf(who, sizeof(who), "the default of --%s", name);
            rc = nana_opt_set(row, scratch, row->def, who);
        }
        if (!rc) rc = check_key(t, i, scratch);
    }
    free(scratch);
    return rc;
}
