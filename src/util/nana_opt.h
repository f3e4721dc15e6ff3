/*
 * nana_opt.h - options described once, in a table, and read from argv.
 *
 * Each tool lists its options as rows (nana_opt): the long name, an
 * optional short alias, the kind of value (a flag, an unsigned number or a
 * double with its range, a string, a path, one word of a list, or a value
 * a custom function reads), the field it is stored in (offsetof into the
 * caller's struct), its default as text, an environment variable that
 * stands in for an absent flag, a group heading and one line of help.
 * Everything else walks those rows: applying the defaults, parsing
 * `--name value`, `--name=value`, `-c value` and `--`, the generated
 * --help and --version, a Markdown reference, and the exact error for a
 * bad command line. A configuration file reads the same rows: a row with
 * a .section is the key [section] key (its name with '_' for '-', unless
 * .key says otherwise), set through nana_opt_set, so a setting has one
 * type, one range, one default and one help line wherever it is given; a
 * layer (nana_opt_prog.layer) puts the file between the defaults and the
 * command line, and --help-config prints a file with every key.
 *
 * Errors are values: a parse fails with NANA_ERR_INVALID and a message in
 * nana_errmsg() such as `--port: 70000 is out of range (0..65535)`; the
 * tool prints it and exits with status 2 (nana_opt_report does both).
 */
#ifndef NANA_OPT_H
#define NANA_OPT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum nana_opt_kind {
    NANA_OPT_FLAG,   /* no value on the command line; stores 1 in a bool or int field.
                        As text (environment, config file): true/false, yes/no, on/off, 1/0 */
    NANA_OPT_UINT,   /* a decimal unsigned number in [min, max], in a 1, 2, 4 or 8 byte field */
    NANA_OPT_DOUBLE, /* a finite decimal number in [dmin, dmax], in a double */
    NANA_OPT_STRING, /* text; the field (const char *) points at it (argv, environment, row) */
    NANA_OPT_PATH,   /* a file or directory name; stored like a string */
    NANA_OPT_ENUM,   /* one of |words|; the field (an int or enum) gets the matching |values| */
    NANA_OPT_CUSTOM, /* |parse| reads the text into the field */
} nana_opt_kind;

/* Row flags. */
enum {
    NANA_OPT_HIDDEN = 1, /* not in --help nor in the reference (test hooks) */
    NANA_OPT_EMPTY = 2,  /* an empty string is a valid value (default: refused) */
};

typedef struct nana_opt nana_opt;

/*
 * A custom value reader: stores |text| in |field| (the row's field in the
 * caller's struct). Returns 0, or a negative NANA_ERR_* with nana_err_set
 * saying what is wrong with the value, without the option's name (the
 * caller prefixes it): "must be get, set, mixed:R/W or batch:N".
 */
typedef int (*nana_opt_parse_fn)(const nana_opt *row, const char *text, void *field);

struct nana_opt {
    const char *name;         /* long name without "--" ("port"); a config file's key too */
    char short_name;          /* 'c' for -c; 0: none */
    nana_opt_kind kind;       /* what the value is */
    size_t offset, size;      /* the field: write NANA_OPT_AT(type, member) */
    uint64_t min, max;        /* NANA_OPT_UINT: the range */
    double dmin, dmax;        /* NANA_OPT_DOUBLE: the range */
    const char *const *words; /* NANA_OPT_ENUM: the allowed words, NULL-terminated */
    const int *values;        /* NANA_OPT_ENUM: the value stored per word; NULL: its index */
    nana_opt_parse_fn parse;  /* NANA_OPT_CUSTOM */
    const char *def;          /* the default as text, applied by nana_opt_defaults; NULL: none */
    const char *def_doc;      /* the default as help shows it when |def| cannot say it */
    const char *env;          /* environment variable used when the option is not given; or NULL */
    const char *group;        /* heading the option is listed under */
    const char *arg;          /* the value's name in help ("N", "FILE"); NULL: from the kind */
    const char *help;         /* one line: what it is for */
    unsigned flags;           /* NANA_OPT_HIDDEN, NANA_OPT_EMPTY */
    /* In a configuration file: the key |key| (NULL: the name with '_' for '-') of the table
     * [|section|]; a row without a section is not read from files. */
    const char *section, *key;
    const char *key_doc; /* the reference's text for a row without a section that a file still
                            sets another way ("`[network] bind_address`, the port") */
    const char *example; /* a value for --help-config when there is no default */
};

/* Where a row's value goes: .offset and .size of |member| in struct |type|. */
#define NANA_OPT_AT(type, member)                                                                  \
    .offset = offsetof(type, member), .size = sizeof(((type *)0)->member)

/* A table of rows and the struct their offsets point into. */
typedef struct nana_opt_table {
    const nana_opt *rows;
    size_t n;
    void *base;
} nana_opt_table;

typedef struct nana_opt_prog nana_opt_prog;

/*
 * A layer of settings between the defaults and the command line (a
 * configuration file, nana_toml_config_layer). nana_opt_parse calls it once
 * the command line was read (so a field may name the file); it returns 0
 * when it set nothing, 1 when it set options (the command line is then
 * read again, so a flag wins over the layer wherever it is written), or a
 * negative NANA_ERR_* with the message set.
 */
typedef int (*nana_opt_layer_fn)(const nana_opt_prog *p, void *ctx);

/* A program: its name, texts, and the tables its options come from. */
struct nana_opt_prog {
    const char *name;    /* "nanasqlite-server": the usage line, --version, error lines */
    const char *version; /* what --version prints after the name; NULL: the project's version */
    const char *usage;   /* after the name on the usage line: "[options] [COMMAND [ARGS...]]" */
    const char *about;   /* a paragraph under the usage line */
    const char *epilog;  /* text after the options (commands, environment, exit statuses) */
    const char *doc;     /* Markdown before the reference's tables (title, how to give values) */
    const nana_opt_table *tables;
    size_t ntables;
    int positional; /* 1: parsing stops at the first argument that is not an option, which is
                       the caller's; 0: such an argument is an error */
    int markdown;   /* 1: --help-markdown prints the Markdown reference */
    FILE *out;      /* where help and version go; NULL: stdout */
    /* A configuration file: the layer that reads it, its context, and the comment at the top
     * of the file --help-config prints (NULL: no --help-config). */
    nana_opt_layer_fn layer;
    void *layer_ctx;
    const char *config_doc;
};

/* nana_opt_parse's result when --help, --version or --help-markdown was printed. */
#define NANA_OPT_DONE 1

/* Exit status for a bad command line. */
#define NANA_OPT_EXIT_USAGE 2

/* The project's version ("0.1.0"). */
const char *nana_opt_version(void);

/*
 * Applies every row's default (rows without one are left alone). Returns
 * 0, or NANA_ERR_INVALID if a default does not parse (a bug in the table).
 */
int nana_opt_defaults(const nana_opt_table *t);

/*
 * Reads |text| as the value of |row| into its field in |base|. |who| names
 * the setting in the message ("--port", "NANASQLITE_PORT", "port at line
 * 3"). Returns 0, or NANA_ERR_INVALID with nana_errmsg() saying what is
 * wrong and what is allowed: `--port: "abc" is not a number (0..65535)`.
 * The field is untouched on error. A string field keeps |text| itself.
 */
int nana_opt_set(const nana_opt *row, void *base, const char *text, const char *who);

/*
 * A row's key in a configuration file into |buf| (|n| bytes): .key, or the
 * name with '_' for '-'. Returns |buf|, or NULL for a row without a
 * section.
 */
const char *nana_opt_key(const nana_opt *row, char *buf, size_t n);

/* The row called |name| (without "--"), or NULL. */
const nana_opt *nana_opt_find(const nana_opt_table *t, const char *name);

/*
 * Parses argv[1..argc-1]: first every table's defaults, then the options
 * in order (the last of a repeated option wins, except for custom rows
 * that collect), then the layer if the program has one (and the options
 * again over it: custom rows of such a program must not collect), then
 * each environment variable whose option was not given. Returns 0 with
 * *first the index of the first argument that is the caller's (argc when
 * none); NANA_OPT_DONE after printing --help, --version, --help-markdown
 * or --help-config; NANA_ERR_INVALID with the reason in nana_errmsg()
 * (without the program's name), or the layer's error.
 */
int nana_opt_parse(const nana_opt_prog *p, int argc, char **argv, int *first);

/*
 * For a tool's main after nana_opt_parse: NANA_OPT_DONE gives exit status
 * 0; an error is printed as "NAME: message" on stderr and gives
 * NANA_OPT_EXIT_USAGE. |rc| 0 gives -1 (go on).
 */
int nana_opt_report(const nana_opt_prog *p, int rc);

/* Writes the --help text. */
void nana_opt_help(const nana_opt_prog *p, FILE *out);

/* Writes the options as a Markdown reference: a table per group. */
void nana_opt_markdown(const nana_opt_prog *p, FILE *out);

/*
 * Writes a configuration file with every key: p->config_doc, then each
 * section with its keys, each under its help as a comment, set to its
 * default (or commented out, set to the row's example, when it has none).
 */
void nana_opt_config_example(const nana_opt_prog *p, FILE *out);

/*
 * Checks a table for mistakes a test should catch: names unique and
 * non-empty, every default parses, ranges in order and fitting their
 * fields, enums with words, custom rows with a function, help present,
 * configuration keys plain, unique per section, on visible rows only, and
 * with a default or an example.
 * Returns 0, or NANA_ERR_INVALID naming the row and the problem.
 */
int nana_opt_check(const nana_opt_table *t);

#endif
