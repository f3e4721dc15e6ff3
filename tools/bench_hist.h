/*
 * bench_hist.h - a log-linear latency histogram for nanasqlite-bench:
 * 64 buckets per power of two (at most 1.6% error), nanoseconds up to
 * about 18 minutes, fixed size, no allocation when recording. One
 * histogram per I/O thread; they are merged at the end.
 */
#ifndef NANA_BENCH_HIST_H
#define NANA_BENCH_HIST_H

#include <stdint.h>

#define NANA_HIST_SUB     64
#define NANA_HIST_BUCKETS (NANA_HIST_SUB * 36)

typedef struct nana_hist {
    uint64_t count;
    uint64_t max_ns;
    uint64_t buckets[NANA_HIST_BUCKETS];
} nana_hist;

/* Records one value (ns); values past the range land in the last bucket. */
void nana_hist_add(nana_hist *h, uint64_t ns);

/* Adds |from| into |into|. */
void nana_hist_merge(nana_hist *into, const nana_hist *from);

/* The value at quantile |q| (0..1): the upper edge of its bucket, capped
 * at the largest value recorded; 0 when empty. */
uint64_t nana_hist_quantile(const nana_hist *h, double q);

#endif
