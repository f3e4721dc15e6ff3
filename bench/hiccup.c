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
 * usage: nanasqlite-bench-hiccup [--seconds S] [--sleep-us U] [--busy N] [--json] (--help)
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
#include "util/nana_opt.h"
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

/* The command line. */
typedef struct hiccup_args {
    double seconds, sleep_us;
    unsigned busy;
    bool json;
} hiccup_args;

#define AT(m) NANA_OPT_AT(hiccup_args, m)

static const nana_opt rows[] = {
    {.name = "seconds",
     .kind = NANA_OPT_DOUBLE,
     AT(seconds),
     .dmin = 0.01,
     .dmax = 3600,
     .def = "10",
     .arg = "S",
     .help = "how long to measure"},
    {.name = "sleep-us",
     .kind = NANA_OPT_DOUBLE,
     AT(sleep_us),
     .dmin = 1,
     .dmax = 1e6,
     .def = "500",
     .arg = "U",
     .help = "each sleep asks for this many microseconds"},
    {.name = "busy",
     .kind = NANA_OPT_UINT,
     AT(busy),
     .min = 0,
     .max = 64,
     .def = "0",
     .help = "threads spinning meanwhile"},
    {.name = "json", .kind = NANA_OPT_FLAG, AT(json), .help = "one JSON object on stdout"},
};

int main(int argc, char **argv)
{
    hiccup_args a;
    memset(&a, 0, sizeof(a));
    nana_opt_table table = {rows, sizeof(rows) / sizeof(rows[0]), &a};
    nana_opt_prog prog = {.name = "nanasqlite-bench-hiccup",
                          .about = "How late this machine wakes a sleeping thread.\n",
                          .tables = &table,
                          .ntables = 1};
    int first;
    int status = nana_opt_report(&prog, nana_opt_parse(&prog, argc, argv, &first));
    if (status >= 0) return status;
    double seconds = a.seconds, sleep_us = a.sleep_us;
    unsigned busy = a.busy;
    int json = a.json;
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
