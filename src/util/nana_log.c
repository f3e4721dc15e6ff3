/*
 * nana_log.c - the line logger (see nana_log.h).
 *
 * The rate limit keeps a small open-addressed table of classes keyed by
 * the address of the format string (a string literal at each call site),
 * each with a token bucket and a count of lines dropped. The table is
 * guarded by one mutex taken only to decide; formatting and write(2)
 * happen outside it. A class that cannot find a slot in its probe window
 * takes the slot of the least recently used class there, whose pending
 * "suppressed" line is written first, so nothing is lost silently.
 */
#include "util/nana_log.h"

#include "util/nana_err.h"
#include "util/nana_time.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 1100
#define LOG_TEXT_MAX 1024
#define LOG_CLASSES  128 /* power of two */
#define LOG_PROBE    8
#define LOG_SCAN_NS  1000000000ull /* how often a log call looks for finished floods */
#define SUMMARY_MAX  8             /* "suppressed" lines written by one call at most */

static atomic_int log_level = NANA_LOG_INFO;
static int log_fd = STDERR_FILENO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};
static const char *const level_tags[] = {"ERROR", "WARN ", "INFO ", "DEBUG"};

typedef struct log_class {
    const char *fmt; /* NULL: free slot */
    nana_log_level level;
    double tokens;
    uint64_t last_ns;       /* last refill */
    uint64_t used_ns;       /* last line asked for (for eviction) */
    uint64_t suppressed;    /* lines dropped since the last one written */
    uint64_t first_drop_ns; /* when the first of them was dropped */
} log_class;

/* A "suppressed N" line waiting to be written outside the lock. */
typedef struct summary {
    const char *fmt;
    nana_log_level level;
    uint64_t count;
    uint64_t span_ns;
} summary;

static pthread_mutex_t limit_mu = PTHREAD_MUTEX_INITIALIZER;
static log_class classes[LOG_CLASSES];
static unsigned limit_burst = NANA_LOG_BURST;
static double limit_rate = NANA_LOG_RATE;
static uint64_t next_scan_ns;
static uint64_t (*log_clock)(void) = nana_now_ns;

void nana_log_set_level(nana_log_level level)
{
    atomic_store_explicit(&log_level, (int)level, memory_order_relaxed);
}

int nana_log_parse_level(const char *name, nana_log_level *out)
{
    for (int i = 0; i <= NANA_LOG_DEBUG; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (nana_log_level)i;
            return 0;
        }
    }
    return nana_err_set(NANA_ERR_INVALID, "unknown log level '%s' (error, warn, info, debug)",
                        name);
}

bool nana_log_enabled(nana_log_level level)
{
    return (int)level <= atomic_load_explicit(&log_level, memory_order_relaxed);
}

void nana_log_set_limit(unsigned burst, double per_sec)
{
    pthread_mutex_lock(&limit_mu);
    limit_burst = burst;
    limit_rate = per_sec > 0 ? per_sec : 0;
    memset(classes, 0, sizeof(classes));
    pthread_mutex_unlock(&limit_mu);
}

void nana_log_set_clock(uint64_t (*now_ns)(void))
{
    pthread_mutex_lock(&limit_mu);
    log_clock = now_ns ? now_ns : nana_now_ns;
    memset(classes, 0, sizeof(classes));
    next_scan_ns = 0;
    pthread_mutex_unlock(&limit_mu);
}

void nana_log_set_fd(int fd)
{
    log_fd = fd;
}

/* Writes one line: timestamp, level tag, |text| (|n| bytes), newline. */
static void write_line(nana_log_level level, const char *text, size_t n)
{
    char line[LOG_LINE_MAX];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t k = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    k += (size_t)snprintf(line + k, sizeof(line) - k, ".%03ldZ %s ", ts.tv_nsec / 1000000,
                          level_tags[level]);
    if (n > LOG_TEXT_MAX - 1) n = LOG_TEXT_MAX - 1;
    memcpy(line + k, text, n);
    k += n;
    line[k++] = '\n';
    ssize_t rc = write(log_fd, line, k);
    (void)rc;
}

/* Writes the pending "suppressed" lines. */
static void write_summaries(const summary *sm, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char text[LOG_TEXT_MAX];
        int w =
            snprintf(text, sizeof(text), "suppressed %llu similar messages in %.1f s: \"%.80s\"",
                     (unsigned long long)sm[i].count, (double)sm[i].span_ns * 1e-9, sm[i].fmt);
        write_line(sm[i].level, text, w > 0 ? (size_t)w : 0);
    }
}

/* Refills |c|'s bucket up to |now|; the caller holds limit_mu. */
static void refill(log_class *c, uint64_t now)
{
    double add = (double)(now - c->last_ns) * 1e-9 * limit_rate;
    c->tokens = c->tokens + add > (double)limit_burst ? (double)limit_burst : c->tokens + add;
    c->last_ns = now;
}

/* Moves |c|'s dropped count into a summary; the caller holds limit_mu. */
static void take_summary(log_class *c, uint64_t now, summary *sm, size_t *n)
{
    if (!c->suppressed || *n >= SUMMARY_MAX) return;
    sm[*n] = (summary){c->fmt, c->level, c->suppressed, now - c->first_drop_ns};
    (*n)++;
    c->suppressed = 0;
}

/* Once a second: the summaries of floods that ended (their bucket refilled). */
static void scan_finished(uint64_t now, summary *sm, size_t *n)
{
    if (now < next_scan_ns) return;
    next_scan_ns = now + LOG_SCAN_NS;
    /* Two summaries stay free: an evicted class's and the caller's own. */
    for (size_t i = 0; i < LOG_CLASSES && *n + 2 < SUMMARY_MAX; i++) {
        log_class *c = &classes[i];
        if (!c->fmt || !c->suppressed) continue;
        refill(c, now);
        if (c->tokens >= 1.0) take_summary(c, now, sm, n);
    }
}

/* The class of |fmt|, found or made; the caller holds limit_mu. */
static log_class *find_class(const char *fmt, nana_log_level level, uint64_t now, summary *sm,
                             size_t *n)
{
    uintptr_t h = (uintptr_t)fmt;
    h ^= h >> 15;
    h *= 0x9e3779b97f4a7c15ull;
    size_t start = (size_t)(h >> 24) & (LOG_CLASSES - 1);
    log_class *victim = NULL;
    for (size_t k = 0; k < LOG_PROBE; k++) {
        log_class *c = &classes[(start + k) & (LOG_CLASSES - 1)];
        if (c->fmt == fmt) return c;
        if (!c->fmt) {
            victim = c;
            break;
        }
        if (!victim || c->used_ns < victim->used_ns) victim = c;
    }
    take_summary(victim, now, sm, n);
    *victim = (log_class){.fmt = fmt, .level = level, .tokens = limit_burst, .last_ns = now};
    return victim;
}

/* Decides whether a line of class |fmt| may be written now, collecting the
 * summaries that must be written first. */
static bool limit_allows(const char *fmt, nana_log_level level, summary *sm, size_t *n)
{
    pthread_mutex_lock(&limit_mu);
    if (limit_burst == 0) {
        pthread_mutex_unlock(&limit_mu);
        return true;
    }
    uint64_t now = log_clock();
    scan_finished(now, sm, n);
    log_class *c = find_class(fmt, level, now, sm, n);
    c->used_ns = now;
    refill(c, now);
    bool ok = c->tokens >= 1.0;
    if (ok) {
        c->tokens -= 1.0;
        take_summary(c, now, sm, n);
    } else if (c->suppressed++ == 0) {
        c->first_drop_ns = now;
    }
    pthread_mutex_unlock(&limit_mu);
    return ok;
}

/* Formats and writes one line. */
static void log_v(nana_log_level level, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void log_v(nana_log_level level, const char *fmt, va_list ap)
{
    char text[LOG_TEXT_MAX];
    int w = vsnprintf(text, sizeof(text), fmt, ap);
    if (w < 0) w = 0;
    write_line(level, text, (size_t)w < sizeof(text) ? (size_t)w : sizeof(text) - 1);
}

void nana_log(nana_log_level level, const char *fmt, ...)
{
    if (!nana_log_enabled(level)) return;
    summary sm[SUMMARY_MAX] = {{0}};
    size_t n = 0;
    bool ok = limit_allows(fmt, level, sm, &n);
    write_summaries(sm, n);
    if (!ok) return;
    va_list ap;
    va_start(ap, fmt);
    log_v(level, fmt, ap);
    va_end(ap);
}

void nana_log_always(nana_log_level level, const char *fmt, ...)
{
    if (!nana_log_enabled(level)) return;
    va_list ap;
    va_start(ap, fmt);
    log_v(level, fmt, ap);
    va_end(ap);
}

void nana_log_flush(void)
{
    summary sm[SUMMARY_MAX] = {{0}};
    size_t next = 0;
    while (next < LOG_CLASSES) {
        size_t n = 0;
        pthread_mutex_lock(&limit_mu);
        uint64_t now = log_clock();
        for (; next < LOG_CLASSES && n < SUMMARY_MAX; next++)
            if (classes[next].fmt) take_summary(&classes[next], now, sm, &n);
        pthread_mutex_unlock(&limit_mu);
        write_summaries(sm, n);
    }
}
