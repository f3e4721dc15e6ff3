/*
 * nana_log.c - the line logger (see nana_log.h).
 */
#include "util/nana_log.h"

#include "util/nana_err.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_int log_level = NANA_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};
static const char *const level_tags[] = {"ERROR", "WARN ", "INFO ", "DEBUG"};

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

void nana_log(nana_log_level level, const char *fmt, ...)
{
    if (!nana_log_enabled(level)) return;
    char line[1100];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03ldZ %s ", ts.tv_nsec / 1000000,
                          level_tags[level]);
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(line + n, 1024, fmt, ap);
    va_end(ap);
    if (w < 0) w = 0;
    n += (size_t)w < 1024 ? (size_t)w : 1023;
    line[n++] = '\n';
    ssize_t rc = write(STDERR_FILENO, line, n);
    (void)rc;
}
