/*
 * nana_parse: strict text-to-number conversion for flags and config values.
 *
 * The whole string must be the number: no leading spaces, no sign on the
 * unsigned form, no trailing text, no overflow. A value outside [lo, hi] is
 * refused too, so each caller states its range once at the call site.
 */
#ifndef NANA_PARSE_H
#define NANA_PARSE_H

#include <stdint.h>

/* Parses a decimal unsigned integer in [lo, hi] into *out. Returns 0, or
 * NANA_ERR_INVALID (not a number) / NANA_ERR_TOOBIG (outside the range);
 * *out is untouched on error. Sets no thread error message. */
int nana_parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out);

/* Parses a finite decimal floating-point number in [lo, hi] into *out, with
 * the same contract as nana_parse_u64. */
int nana_parse_double(const char *s, double lo, double hi, double *out);

#endif
