/*
 * timeout.c - grpc-timeout: up to 8 digits and a unit (H M S m u n), read
 * into nanoseconds and written back for clients.
 */
#include "grpc/nana_grpc.h"

#include <stdio.h>

#define MAX_DIGITS 8
#define MAX_VALUE  99999999LL

/* Nanoseconds per unit; 0 for a character that is not a unit. */
static int64_t unit_ns(char u)
{
    switch (u) {
    case 'H':
        return 3600LL * 1000000000LL;
    case 'M':
        return 60LL * 1000000000LL;
    case 'S':
        return 1000000000LL;
    case 'm':
        return 1000000LL;
    case 'u':
        return 1000LL;
    case 'n':
        return 1;
    default:
        return 0;
    }
}

int nana_grpc_timeout_parse(const char *v, size_t n, int64_t *ns)
{
    if (n < 2 || n > MAX_DIGITS + 1)
        return nana_err_set(NANA_ERR_INVALID,
                            "grpc-timeout must be 1 to 8 digits and a unit (H M S m u n)");
    int64_t mult = unit_ns(v[n - 1]);
    if (!mult) return nana_err_set(NANA_ERR_INVALID, "grpc-timeout has no unit (H M S m u n)");
    int64_t value = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return nana_err_set(NANA_ERR_INVALID, "grpc-timeout must be digits and a unit");
        value = value * 10 + (v[i] - '0');
    }
    *ns = value > INT64_MAX / mult ? INT64_MAX : value * mult;
    return 0;
}

size_t nana_grpc_timeout_format(int64_t ns, char *out)
{
    static const char units[] = "numSMH";
    if (ns <= 0) return (size_t)snprintf(out, 10, "0n");
    for (const char *u = units; *u; u++) {
        int64_t per = unit_ns(*u);
        int64_t count = ns / per + (ns % per != 0); /* rounded up */
        if (count <= MAX_VALUE) return (size_t)snprintf(out, 10, "%lld%c", (long long)count, *u);
    }
    return (size_t)snprintf(out, 10, "%lldH", MAX_VALUE); /* not reached for int64 */
}
