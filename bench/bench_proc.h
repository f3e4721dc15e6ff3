/*
 * bench_proc.h - the CPU time a process has used, read from /proc: how the
 * benchmarks measure a server they did not start (its CPU per operation
 * compares servers fairly when the load generator shares the machine).
 */
#ifndef NANA_BENCH_PROC_H
#define NANA_BENCH_PROC_H

#include "util/nana_parse.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* CPU time (user + system, ns) of process |pid| from /proc, 0 if unknown. */
static inline uint64_t bench_proc_cpu_ns(long pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* Fields 14 and 15 (utime, stime) count from the ")" that ends the
     * name (field 2): the 12th and 13th words after it. */
    char *p = strrchr(buf, ')'), *save = NULL;
    uint64_t ut = 0, st = 0;
    if (!p) return 0;
    int field = 2;
    for (char *w = strtok_r(p + 1, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
        field++;
        if (field == 14 && nana_parse_u64(w, 0, UINT64_MAX, &ut) != 0) return 0;
        if (field == 15) {
            if (nana_parse_u64(w, 0, UINT64_MAX, &st) != 0) return 0;
            break;
        }
    }
    if (field != 15) return 0;
    long hz = sysconf(_SC_CLK_TCK);
    return (ut + st) * (1000000000ull / (uint64_t)(hz > 0 ? hz : 100));
}

#endif
