/*
 * nana_log.h - one line per event on standard error, with a level, and a
 * rate limit per kind of event.
 *
 * Lines look like "2026-11-22T10:00:00.123Z INFO  conn 7 open 127.0.0.1:5000".
 * Each line is written with one write(2), so lines from several threads
 * never interleave. Callers must never pass secrets (keys, signatures,
 * challenge bytes) to these functions: log facts about requests only.
 *
 * Rate limit: every call site's format string is a class of events with a
 * token bucket (NANA_LOG_BURST lines at once, NANA_LOG_RATE lines a second
 * after that). Lines over the limit are counted, not written; once the
 * class may write again, one line "suppressed N similar messages ..." says
 * how many were dropped, at the class's level, before its next line (or at
 * the next log call of any class once the bucket has refilled, or at
 * nana_log_flush). So no class, errors included, can flood the log, and
 * nothing is dropped without a trace. nana_log_always() bypasses the limit
 * for the few lines an operator must see every time (a damaged database).
 */
#ifndef NANA_LOG_H
#define NANA_LOG_H

#include <stdbool.h>
#include <stdint.h>

typedef enum nana_log_level {
    NANA_LOG_ERROR = 0,
    NANA_LOG_WARN = 1,
    NANA_LOG_INFO = 2,
    NANA_LOG_DEBUG = 3,
} nana_log_level;

/* The default rate limit of one class of lines. */
#define NANA_LOG_BURST 50   /* lines written at once before the limit applies */
#define NANA_LOG_RATE  10.0 /* lines a second after the burst */

/* Lines above |level| are dropped. The default is NANA_LOG_INFO. */
void nana_log_set_level(nana_log_level level);

/* Parses "error", "warn", "info" or "debug". Returns 0, or NANA_ERR_INVALID. */
int nana_log_parse_level(const char *name, nana_log_level *out);

/* True if a line at |level| would be written (to skip costly formatting). */
bool nana_log_enabled(nana_log_level level);

/* Writes one line at |level| (a newline is added), subject to the rate
 * limit of its format string. Longer than 1 KiB is cut. */
void nana_log(nana_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Like nana_log, never rate-limited: only for rare lines that must always
 * appear (a database found damaged). */
void nana_log_always(nana_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Sets the limit of every class: |burst| lines at once, then |per_sec| a
 * second. burst 0 turns the limit off. Call before logging starts. */
void nana_log_set_limit(unsigned burst, double per_sec);

/* Writes the "suppressed N" line of every class that dropped lines since
 * its last one (at stop, so a flood that ended is still reported). */
void nana_log_flush(void);

/* Tests: the clock of the rate limit (monotonic ns; NULL: the real one)
 * and the file descriptor lines go to (default standard error). */
void nana_log_set_clock(uint64_t (*now_ns)(void));
void nana_log_set_fd(int fd);

#endif
