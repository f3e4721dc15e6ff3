/*
 * hiccup.c - how late this machine wakes a sleeping thread
 * (nanasqlite-bench-hiccup).
 *
 * A thread sleeps for a fixed interval again and again and records how
 * much later than asked it woke. That lateness is a floor under every
 * latency tail a server on the machine can show: a reply cannot leave
 * before the thread that sends it runs. With --busy N, N other threads
 * spin meanwhile, as a load generator and a server do when they share the
 * machine's cores.
 *
 * usage: nanasqlite-bench-hiccup [--seconds S] [--sleep-us U] [--busy N] [--json]
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_hist.h"
#include "util/nana_parse.h"
#include "util/nana_time.h"

static atomic_bool stop_spinning;

/* A thread that keeps a core busy until told to stop. */
static void *spin_main(void *arg)
{
    (void)arg;
    volatile uint64_t x = 0;
    while (!atomic_load_explicit(&stop_spinning, memory_order_relaxed))
        x++;
    return NULL;
}

/* Parses |s| as a number in [lo, hi] for |flag|; exits 2 when it is not one. */
static double number(const char *flag, const char *s, double lo, double hi)
{
    double v = 0;
    if (!s || nana_parse_double(s, lo, hi, &v)) {
        fprintf(stderr, "nanasqlite-bench-hiccup: %s needs a number from %g to %g\n", flag, lo, hi);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    double seconds = 10, sleep_us = 500;
    unsigned busy = 0;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seconds")) {
            seconds = number(argv[i], argv[i + 1], 0.01, 3600);
            i++;
        } else if (!strcmp(argv[i], "--sleep-us")) {
            sleep_us = number(argv[i], argv[i + 1], 1, 1e6);
            i++;
        } else if (!strcmp(argv[i], "--busy")) {
            busy = (unsigned)number(argv[i], argv[i + 1], 0, 64);
            i++;
        } else if (!strcmp(argv[i], "--json")) {
            json = 1;
        } else {
            fprintf(stderr, "usage: nanasqlite-bench-hiccup [--seconds S] [--sleep-us U] "
                            "[--busy N] [--json]\n");
            return 2;
        }
    }
    pthread_t spinners[64];
    unsigned started = 0;
    for (; started < busy; started++)
        if (pthread_create(&spinners[started], NULL, spin_main, NULL)) break;

    static hist h;
    struct timespec nap = {(time_t)(sleep_us / 1e6),
                           (long)((uint64_t)(sleep_us * 1000) % 1000000000ull)};
    uint64_t interval = (uint64_t)(sleep_us * 1000),
             end = nana_now_ns() + (uint64_t)(seconds * 1e9);
    uint64_t over_1ms = 0, over_10ms = 0, n = 0;
    for (uint64_t t0 = nana_now_ns(); t0 < end; t0 = nana_now_ns()) {
        nanosleep(&nap, NULL);
        uint64_t late = nana_now_ns() - t0;
        late = late > interval ? late - interval : 0;
        hist_add(&h, late);
        over_1ms += late > 1000000ull;
        over_10ms += late > 10000000ull;
        n++;
    }
    atomic_store(&stop_spinning, true);
    for (unsigned i = 0; i < started; i++)
        pthread_join(spinners[i], NULL);

    double p50 = hist_quantile_us(&h, 0.50), p99 = hist_quantile_us(&h, 0.99),
           p999 = hist_quantile_us(&h, 0.999), max = (double)h.max_ns / 1e3;
    if (json)
        printf("{\"sleep_us\":%.0f,\"busy\":%u,\"wakeups\":%llu,\"late_p50_us\":%.1f,"
               "\"late_p99_us\":%.1f,\"late_p999_us\":%.1f,\"late_max_us\":%.1f,"
               "\"over_1ms\":%llu,\"over_10ms\":%llu}\n",
               sleep_us, started, (unsigned long long)n, p50, p99, p999, max,
               (unsigned long long)over_1ms, (unsigned long long)over_10ms);
    else
        printf("sleep %.0f us, %u busy threads, %llu wake-ups: late by p50 %.1f us, p99 %.1f us, "
               "p99.9 %.1f us, max %.1f us; %llu over 1 ms, %llu over 10 ms\n",
               sleep_us, started, (unsigned long long)n, p50, p99, p999, max,
               (unsigned long long)over_1ms, (unsigned long long)over_10ms);
    return 0;
}
