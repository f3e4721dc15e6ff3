/*
 * fuzz_check.h - CHECK(cond) for the fuzz harnesses: print what failed and
 * abort, which libFuzzer reports as a crash with the input that caused it.
 */
#ifndef FUZZ_CHECK_H
#define FUZZ_CHECK_H

#include "util/nana_err.h"

#include <stdio.h>
#include <stdlib.h>

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "check failed at %s:%d: %s (%s)\n", __FILE__, __LINE__, #c,            \
                    nana_errmsg());                                                                \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
