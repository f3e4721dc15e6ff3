/*
 * nana_toml.h - configuration files: a strict subset of TOML 1.0, read into
 * a document, and that document applied to option tables (nana_opt.h).
 *
 * The subset is what a server's configuration needs and nothing it could
 * misread: comments, bare and quoted keys, dotted keys, [table] headers
 * ([a.b] too), basic strings with the escapes \b \t \n \f \r \" \\ \uXXXX
 * \UXXXXXXXX, literal strings, integers (decimal with an optional sign and
 * underscores between digits; 0x, 0o and 0b), finite floats, booleans,
 * and arrays of those (over several lines, with a trailing comma). Inline
 * tables, arrays of tables, multi-line strings, dates and times, inf and
 * nan are refused as not supported; anything else that is not TOML is
 * refused too: every error names the line and column (counted in
 * characters, from 1) and what was expected there. An error never quotes
 * the file's text, so a file given by mistake (a private key) is not
 * echoed. Every resource has a limit (nana_toml_limits).
 *
 * Three parts: the parser (toml_parse.c: text in, document out, no I/O),
 * the reader (toml_file.c: one regular file, not writable by everyone,
 * of bounded size) and the applier (toml_opts.c: each [section] key is
 * the option row whose .section and key it names, set with nana_opt_set,
 * so a setting has the same type, range and messages as its flag).
 */
#ifndef NANA_TOML_H
#define NANA_TOML_H

#include "util/nana_arena.h"
#include "util/nana_opt.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- limits ------------------------------------------------------------------------------ */

typedef struct nana_toml_limits {
    size_t max_bytes;   /* the whole text, default NANA_TOML_MAX_BYTES */
    size_t max_string;  /* one string or key, in bytes after escapes, default 65536 */
    size_t max_keys;    /* keys in one table, default 1024 */
    size_t max_items;   /* values in one array, default 4096 */
    unsigned max_depth; /* parts of a key path ([a.b] c.d: 4), and arrays in arrays, default 16 */
} nana_toml_limits;

#define NANA_TOML_MAX_BYTES ((size_t)1 << 20)

/* Fills |l| with the defaults. */
void nana_toml_limits_init(nana_toml_limits *l);

/* ---- the document ------------------------------------------------------------------------ */

typedef enum nana_toml_type {
    NANA_TOML_STRING = 1,
    NANA_TOML_INTEGER,
    NANA_TOML_FLOAT,
    NANA_TOML_BOOL,
    NANA_TOML_ARRAY,
    NANA_TOML_TABLE,
} nana_toml_type;

typedef struct nana_toml_value nana_toml_value;
typedef struct nana_toml_table nana_toml_table;
typedef struct nana_toml_doc nana_toml_doc;

struct nana_toml_value {
    nana_toml_type type;
    unsigned line, col; /* where it starts; a table: its [header], or its first dotted key */
    union {
        struct {
            char *s; /* NUL-terminated valid UTF-8 with no NUL inside */
            size_t len;
        } str;
        int64_t i;
        double f; /* finite */
        bool b;
        struct {
            nana_toml_value *items;
            size_t n;
        } arr;
        nana_toml_table *table;
    } u;
};

/* One key of a table and its value, in the order the file gives them. */
typedef struct nana_toml_kv {
    char *key; /* NUL-terminated valid UTF-8 with no NUL inside */
    size_t keylen;
    unsigned line, col; /* where the key is written (of a [header]: its last part) */
    nana_toml_value val;
} nana_toml_kv;

/* The top-level table. */
const nana_toml_table *nana_toml_root(const nana_toml_doc *d);

/* How many keys |t| has, and the |i|th (0-based, in the file's order). */
size_t nana_toml_table_size(const nana_toml_table *t);
const nana_toml_kv *nana_toml_table_at(const nana_toml_table *t, size_t i);

/* The value of |key| in |t|, or NULL. */
const nana_toml_value *nana_toml_table_get(const nana_toml_table *t, const char *key);

/* "a string", "an integer", "a float", "a boolean", "an array", "a table". */
const char *nana_toml_type_name(nana_toml_type t);

/*
 * Parses |len| bytes of |text| (need not be NUL-terminated) under |lim|
 * (NULL: the defaults). On success *out owns the document (nana_toml_free).
 * Errors: NANA_ERR_INVALID (not TOML, or not the subset: "line 3, column 7:
 * expected '=' after a key"), NANA_ERR_TOOBIG (a limit: "line 9, column 1:
 * more than 1024 keys in one table"), NANA_ERR_NOMEM. *out is NULL then.
 */
int nana_toml_parse(const char *text, size_t len, const nana_toml_limits *lim, nana_toml_doc **out);

/* Frees a document and everything in it. NULL-safe. */
void nana_toml_free(nana_toml_doc *d);

/* ---- the reader -------------------------------------------------------------------------- */

/*
 * Reads and parses the file |path|: it must be a regular file (not a
 * folder, FIFO or device), not writable by every user, and at most
 * lim->max_bytes long. Errors start with the path ("server.toml: line 3,
 * column 7: ..."): NANA_ERR_NOTFOUND, NANA_ERR_PERM, NANA_ERR_IO,
 * NANA_ERR_INVALID (not a regular file, writable by everyone, not TOML),
 * NANA_ERR_TOOBIG, NANA_ERR_NOMEM. *out as nana_toml_parse.
 */
int nana_toml_load(const char *path, const nana_toml_limits *lim, nana_toml_doc **out);

/* ---- applying a document to option tables ----------------------------------------------- */

/*
 * Sets options from |doc|: each table at the top is a section, and each of
 * its keys must be the key of a row in |tables| with that .section
 * (nana_opt_key). A value must have the row's type (a boolean for a flag,
 * an integer for a number, an integer or a float for a double, a string
 * for the rest) and passes through nana_opt_set, so the range checks and
 * messages are the flag's. A relative path (NANA_OPT_PATH) is taken
 * relative to |dir| (NULL or "": as written); joined paths are allocated
 * in |strings|. String fields point into |doc| or |strings|: both must
 * outlive the options. Returns 0, or NANA_ERR_INVALID naming the section,
 * key, line and column: "[limits] queue_limit at line 4, column 15:
 * expected an integer, found a string", "unknown key [network] port at
 * line 3, column 1", "unknown section [netwrok] at line 2, column 1".
 * Stops at the first error; rows set before it stay set.
 */
int nana_toml_apply(const nana_toml_doc *doc, const char *dir, const nana_opt_table *tables,
                    size_t ntables, nana_arena *strings);

/*
 * A configuration file as a layer of nana_opt_parse (nana_opt_prog.layer,
 * with a pointer to this as .layer_ctx): once the command line is read,
 * if the field |*path| names a file, it is loaded and applied to the
 * program's tables, and the command line is read again over it, so a flag
 * wins over the file wherever it is written. Errors start with the file's
 * name. Free with nana_toml_config_free once the options are no longer
 * used (their strings point into it).
 */
typedef struct nana_toml_config {
    const char *const *path; /* the field that holds the file's name (NULL: none given) */
    nana_toml_limits limits; /* zeroed: the defaults */
    nana_toml_doc *doc;      /* the file, once loaded */
    nana_arena strings;      /* relative paths joined to the file's folder */
} nana_toml_config;

int nana_toml_config_layer(const nana_opt_prog *p, void *config);

/* Frees what a layer loaded. NULL-safe; the struct can be used again. */
void nana_toml_config_free(nana_toml_config *c);

#endif
