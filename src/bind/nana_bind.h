/*
 * nana_bind.h - a call's arguments bound to a method's parameters, with
 * CPython's rules: what every door uses to turn the arguments a client
 * sent (msgpack: the NanaSQLite door's frames, the gRPC door's JSON
 * arguments once converted) into the values the call core runs a method
 * with (core/nana_args.h).
 */
#ifndef NANA_BIND_H
#define NANA_BIND_H

#include "core/nana_args.h"
#include "proto/nana_mp.h"
#include "util/nana_arena.h"

#include <stdint.h>

/* Where a call's arguments are: readers at the first element of the
 * positional array and at the first key of the keyword map. */
typedef struct nana_bind_src {
    nana_mp_reader args;
    uint32_t nargs;
    nana_mp_reader kwargs;
    uint32_t nkwargs;
} nana_bind_src;

/*
 * Binds |src|'s arguments to |spec|'s parameters into |out|, as CPython
 * binds a call to a bound method (self counts in the numbers), with its
 * TypeErrors word for word and in its order: a keyword that is not a
 * string, unknown (unless var_kwargs) or given twice; then too many
 * positional arguments; then every missing positional one; then every
 * missing keyword-only one. Only a call that binds has its values
 * converted, so a value's own error (a key that is not a str, a value JSON
 * cannot hold) comes after the arity errors. Values are copied into
 * |arena| as JSON text (nested at most |max_depth|); keys point into the
 * caller's bytes. Errors: NANA_ERR_TYPE for arity and type mistakes, the
 * value converter's errors for values; the detail as the thread's message.
 */
int nana_bind_call(const nana_bind_src *src, const nana_bind_spec *spec, unsigned max_depth,
                   nana_arena *arena, nana_args *out);

#endif
