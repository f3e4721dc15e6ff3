/*
 * call_int.h - what call.c, methods.c and reply.c share inside the
 * methods module: parameter specs, bound arguments, the per-call arena
 * and the frame helpers. Not part of the module's public face.
 */
#ifndef NANA_CALL_INT_H
#define NANA_CALL_INT_H

#include "proto/nana_frame.h"
#include "server/nana_methods.h"

/* How an argument is read from msgpack. */
typedef enum nana_ptype {
    P_KEY,    /* str, kept as sent (no copy) */
    P_STR,    /* str, copied with a NUL */
    P_BOOL,   /* bool (ints and None by Python truthiness) */
    P_INT,    /* int */
    P_VALUE,  /* any value JSON can hold, as JSON text */
    P_LIST,   /* array, as JSON text */
    P_OBJECT, /* map, as JSON text */
    P_KEYS,   /* array of str */
    P_PAIRS,  /* map of str -> value */
} nana_ptype;

/*
 * A parameter list reads like a Python signature: the positional-or-keyword
 * parameters first (optional ones last), then at most one P_VARARGS, then
 * the P_KWONLY ones.
 */
enum {
    P_OPT = 1u << 0,     /* may be left out (has a default) */
    P_NONE = 1u << 1,    /* None counts as left out */
    P_TABLE = 1u << 2,   /* names a table: checked against the account's table allow-list */
    P_VARARGS = 1u << 3, /* *args: takes the positional arguments past the named ones and
                            binds the first of them, if any; never named by keyword */
    P_KWONLY = 1u << 4,  /* keyword-only */
};

#define NANA_MAX_PARAMS 8

typedef struct nana_param {
    const char *name;
    uint8_t type;
    uint8_t flags;
} nana_param;

/* One bound argument. Text is NUL-terminated and lives in the call's arena. */
typedef struct nana_arg {
    const char *s;
    size_t n;
    int64_t i;
    nana_key *keys;
    nana_kv_pair *pairs;
    size_t count;
    bool set;
    bool b;
} nana_arg;

/* Memory for one call's arguments, freed at once at the end of the call. */
typedef struct nana_arena_blk nana_arena_blk;
typedef struct nana_arena {
    nana_arena_blk *head;
} nana_arena;

/* Copies |n| bytes and a NUL into the arena; NULL when out of memory. */
char *nana_arena_dup(nana_arena *a, const void *p, size_t n);
/* |n| zeroed bytes, aligned for any object; NULL when out of memory. */
void *nana_arena_alloc(nana_arena *a, size_t n);
void nana_arena_free(nana_arena *a);

/* The method spec the binder needs (the table lives in methods.c). */
typedef struct nana_bind_spec {
    const char *owner; /* the Python class that defines it, for messages; NULL: "NanaSQLite" */
    const char *name;
    const nana_param *params;
    unsigned nparams;
    bool var_kwargs; /* extra keyword arguments become key/value pairs (update) */
} nana_bind_spec;

/*
 * Binds the call's args and kwargs to |spec|'s parameters into |out|
 * (NANA_MAX_PARAMS entries), as CPython binds a call to a bound method
 * (self counts in the numbers), with its TypeErrors word for word and in
 * its order: a keyword that is not a string, unknown (unless var_kwargs)
 * or given twice; then too many positional arguments; then every missing
 * positional one; then every missing keyword-only one. Only a call that
 * binds has its values converted, so a value's own error (a key that is
 * not a str, a value JSON cannot hold) comes after the arity errors.
 * Extra keywords of a var_kwargs method go to extra and nextra.
 * Errors: NANA_ERR_TYPE for arity and type mistakes, the value
 * converter's errors for values.
 */
int nana_call_bind(const nana_call *c, const nana_bind_spec *spec, unsigned max_depth,
                   nana_arena *arena, nana_arg *out, nana_kv_pair **extra, size_t *nextra);

#endif
