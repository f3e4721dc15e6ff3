/*
 * nana_time.h - the one clock for deadlines and intervals (CLOCK_MONOTONIC,
 * nanoseconds) and its conversion to the absolute timespec that
 * pthread_cond_timedwait takes (for condition variables whose clock
 * attribute is CLOCK_MONOTONIC: see nana_cond_init_monotonic).
 */
#ifndef NANA_TIME_H
#define NANA_TIME_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

/* Monotonic nanoseconds (not wall-clock time). */
uint64_t nana_now_ns(void);

/* The monotonic instant |at_ns| (a nana_now_ns() value) as a timespec. */
struct timespec nana_timespec_at(uint64_t at_ns);

/* Initializes |cv| to measure timeouts on the monotonic clock. */
void nana_cond_init_monotonic(pthread_cond_t *cv);

#endif
