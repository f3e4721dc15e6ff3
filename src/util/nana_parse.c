/*
 * nana_parse: strict number parsing on top of strtoull/strtod, which on their
 * own accept leading blanks, signs on unsigned values and trailing garbage.
 */
#include "nana_parse.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "nana_err.h"

int nana_parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    if (!s || *s < '0' || *s > '9') return NANA_ERR_INVALID;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end) return NANA_ERR_INVALID;
    if (errno == ERANGE || v < lo || v > hi) return NANA_ERR_TOOBIG;
    *out = (uint64_t)v;
    return 0;
}

int nana_parse_double(const char *s, double lo, double hi, double *out)
{
    if (!s || !*s || *s == ' ' || *s == '\t') return NANA_ERR_INVALID;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*end || end == s || isnan(v)) return NANA_ERR_INVALID;
    if (errno == ERANGE || isinf(v) || v < lo || v > hi) return NANA_ERR_TOOBIG;
    *out = v;
    return 0;
}
