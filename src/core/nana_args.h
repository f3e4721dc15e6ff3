/*
 * nana_args.h - a method's parameters and a call's bound arguments: what
 * the call core's methods take, whatever door and wire format a call came
 * by.
 *
 * A door turns its wire's arguments into nana_arg values (strings, ints,
 * bools, JSON text, key lists, key/value pairs) bound to a method's
 * parameters, with Python's binding rules where its clients expect them;
 * the core runs the method on those values. Text lives in the call's
 * arena (or in the request the door keeps for the call's life).
 */
#ifndef NANA_ARGS_H
#define NANA_ARGS_H

#include "store/nana_store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a parameter takes. */
typedef enum nana_ptype {
    P_KEY,    /* a str, kept as sent (no copy) */
    P_STR,    /* a str, copied with a NUL, no NUL inside */
    P_BOOL,   /* a bool (Python truthiness for ints and None) */
    P_INT,    /* an int */
    P_VALUE,  /* any value JSON can hold, as JSON text */
    P_LIST,   /* an array, as JSON text */
    P_OBJECT, /* a map, as JSON text */
    P_KEYS,   /* an array of str */
    P_PAIRS,  /* a map of str -> value */
    P_PTR,    /* a structure the door built (internal methods only: never from a client) */
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
    uint8_t type;  /* nana_ptype */
    uint8_t flags; /* P_* */
} nana_param;

/* One bound argument. .set is false for one left out (or None where that
 * means left out). */
typedef struct nana_arg {
    const char *s; /* P_KEY, P_STR and JSON text */
    size_t n;
    int64_t i;
    nana_key *keys;      /* P_KEYS */
    nana_kv_pair *pairs; /* P_PAIRS */
    const void *p;       /* P_PTR */
    size_t count;
    bool set;
    bool b;
} nana_arg;

/* What binding a method's call needs to know (the method table's row). */
typedef struct nana_bind_spec {
    const char *owner; /* the Python class that defines it, for messages; NULL: "NanaSQLite" */
    const char *name;
    const nana_param *params;
    unsigned nparams;
    bool var_kwargs; /* extra keyword arguments become key/value pairs (update) */
} nana_bind_spec;

/* A call's bound arguments: one per parameter, and the extra keywords of a
 * var_kwargs method. */
typedef struct nana_args {
    nana_arg a[NANA_MAX_PARAMS];
    nana_kv_pair *extra;
    size_t nextra;
} nana_args;

#endif
