/*
 * nana_log.h - one line per event on standard error, with a level.
 *
 * Lines look like "2026-11-22T10:00:00.123Z INFO  conn 7 open 127.0.0.1:5000".
 * Each line is written with one write(2), so lines from several threads
 * never interleave. Callers must never pass secrets (keys, signatures,
 * challenge bytes) to these functions: log facts about requests only.
 */
#ifndef NANA_LOG_H
#define NANA_LOG_H

#include <stdbool.h>

typedef enum nana_log_level {
    NANA_LOG_ERROR = 0,
    NANA_LOG_WARN = 1,
    NANA_LOG_INFO = 2,
    NANA_LOG_DEBUG = 3,
} nana_log_level;

/* Lines above |level| are dropped. The default is NANA_LOG_INFO. */
void nana_log_set_level(nana_log_level level);

/* Parses "error", "warn", "info" or "debug". Returns 0, or NANA_ERR_INVALID. */
int nana_log_parse_level(const char *name, nana_log_level *out);

/* True if a line at |level| would be written (to skip costly formatting). */
bool nana_log_enabled(nana_log_level level);

/* Writes one line at |level| (a newline is added). Longer than 1 KiB is cut. */
void nana_log(nana_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
