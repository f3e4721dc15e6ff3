/*
 * bench_hist.h - the latency histogram both benchmarks use.
 *
 * Log-linear buckets over nanoseconds: values below 2*HIST_SUB are exact,
 * above that every power of two is split into HIST_SUB equal buckets, so a
 * reported percentile is within 1/HIST_SUB (about 3%) of the true value.
 * Recording a sample is a shift, a count and a compare: cheap enough for
 * every operation of a benchmark.
 */
#ifndef NANA_BENCH_HIST_H
#define NANA_BENCH_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS 5
#define HIST_SUB      ((uint64_t)1 << HIST_SUB_BITS)
#define HIST_BUCKETS  (2 * HIST_SUB + (64 - HIST_SUB_BITS - 1) * HIST_SUB)

typedef struct hist {
    uint64_t count;
    uint64_t max_ns;
    uint64_t bucket[HIST_BUCKETS];
} hist;

/* Bucket index of a latency of |ns| nanoseconds. */
static inline unsigned hist_index(uint64_t ns)
{
    if (ns < 2 * HIST_SUB) return (unsigned)ns;
    unsigned msb = 63u - (unsigned)__builtin_clzll(ns);
    unsigned shift = msb - HIST_SUB_BITS;
    unsigned sub = (unsigned)(ns >> shift); /* in [HIST_SUB, 2 * HIST_SUB) */
    return 2 * HIST_SUB + (msb - HIST_SUB_BITS - 1) * HIST_SUB + (sub - HIST_SUB);
}

/* The middle of bucket |idx|, in nanoseconds. */
static inline uint64_t hist_value(unsigned idx)
{
    if (idx < 2 * HIST_SUB) return idx;
    unsigned j = idx - 2 * HIST_SUB;
    unsigned msb = j / HIST_SUB + HIST_SUB_BITS + 1;
    unsigned shift = msb - HIST_SUB_BITS;
    uint64_t lower = (uint64_t)(j % HIST_SUB + HIST_SUB) << shift;
    return lower + ((1ull << shift) >> 1);
}

/* Records one sample of |ns| nanoseconds. */
static inline void hist_add(hist *h, uint64_t ns)
{
    h->bucket[hist_index(ns)]++;
    h->count++;
    if (ns > h->max_ns) h->max_ns = ns;
}

/* Adds the samples of |src| to |dst| (per-thread histograms into one). */
static inline void hist_merge(hist *dst, const hist *src)
{
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        dst->bucket[i] += src->bucket[i];
    dst->count += src->count;
    if (src->max_ns > dst->max_ns) dst->max_ns = src->max_ns;
}

/* The |p|-quantile (0 < p <= 1) in microseconds; 0 for an empty histogram. */
static inline double hist_quantile_us(const hist *h, double p)
{
    if (h->count == 0) return 0.0;
    uint64_t rank = (uint64_t)(p * (double)h->count);
    if ((double)rank < p * (double)h->count) rank++; /* ceil */
    if (rank == 0) rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->bucket[i];
        if (seen >= rank) {
            uint64_t v = hist_value(i);
            if (v > h->max_ns) v = h->max_ns;
            return (double)v / 1000.0;
        }
    }
    return (double)h->max_ns / 1000.0;
}

#endif
