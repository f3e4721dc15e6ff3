/*
 * bench_hist.c - see bench_hist.h. Bucket i < 64 holds the value i;
 * above, bucket e*64 + m (e >= 1) holds [(64+m) << (e-1), (65+m) << (e-1)).
 */
#include "bench_hist.h"

/* The bucket of |v|. */
static unsigned bucket_of(uint64_t v)
{
    if (v < NANA_HIST_SUB) return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned e = msb - 5u; /* v in [2^msb, 2^(msb+1)): e >= 1 */
    unsigned idx = e * NANA_HIST_SUB + (unsigned)((v >> (msb - 6u)) & (NANA_HIST_SUB - 1));
    return idx < NANA_HIST_BUCKETS ? idx : NANA_HIST_BUCKETS - 1;
}

/* The largest value bucket |i| holds. */
static uint64_t upper_of(unsigned i)
{
    if (i < NANA_HIST_SUB) return i;
    unsigned e = i / NANA_HIST_SUB, m = i % NANA_HIST_SUB;
    return (((uint64_t)NANA_HIST_SUB + m + 1) << (e - 1)) - 1;
}

void nana_hist_add(nana_hist *h, uint64_t ns)
{
    h->buckets[bucket_of(ns)]++;
    h->count++;
    if (ns > h->max_ns) h->max_ns = ns;
}

void nana_hist_merge(nana_hist *into, const nana_hist *from)
{
    for (unsigned i = 0; i < NANA_HIST_BUCKETS; i++)
        into->buckets[i] += from->buckets[i];
    into->count += from->count;
    if (from->max_ns > into->max_ns) into->max_ns = from->max_ns;
}

uint64_t nana_hist_quantile(const nana_hist *h, double q)
{
    if (!h->count) return 0;
    if (q < 0) q = 0;
    if (q > 1) q = 1;
    uint64_t rank = (uint64_t)(q * (double)h->count + 0.999999);
    if (rank < 1) rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < NANA_HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t u = upper_of(i);
            return u < h->max_ns ? u : h->max_ns;
        }
    }
    return h->max_ns;
}
