/*
 * nana_ban.h - bans for addresses that keep failing authentication.
 *
 * Each failed authentication from an address counts; at max_failures the
 * address is banned for ban_seconds and its connections are refused at the
 * handshake. A success clears the count. Counting stops mattering after
 * ban_seconds without a failure. IPv4 addresses count one by one; IPv6
 * addresses count by their /64, the block one host usually owns (otherwise
 * one host could rotate through its addresses forever).
 *
 * Both tables (counts, bans) have a fixed capacity set at creation; when one
 * is full the entry touched longest ago is dropped. Nothing is allocated
 * after creation. Thread-safe: one mutex. Time is a caller-supplied
 * monotonic nanosecond clock, so tests need not sleep.
 */
#ifndef NANA_BAN_H
#define NANA_BAN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct nana_ban nana_ban;

typedef struct nana_ban_opts {
    unsigned max_failures; /* failures that ban; default 3; 0 in the struct means default */
    unsigned ban_seconds;  /* how long a ban lasts; default 900 */
    size_t capacity;       /* entries per table; default 10,000 */
} nana_ban_opts;

/* Creates a ban table (caller frees with nana_ban_free); NULL on OOM. */
nana_ban *nana_ban_new(const nana_ban_opts *opts);
void nana_ban_free(nana_ban *b);

/* Records a failed authentication from |addr| at |now|; returns 1 if the
 * address is banned from now on, 0 if not (yet). */
int nana_ban_failure(nana_ban *b, const struct sockaddr *addr, uint64_t now);

/* A successful authentication from |addr|: forgets its failures. */
void nana_ban_success(nana_ban *b, const struct sockaddr *addr);

/* 1 if |addr| is banned at |now|, else 0. */
int nana_ban_check(nana_ban *b, const struct sockaddr *addr, uint64_t now);

/* Entries in use: counting and banned (for tests and statistics). */
void nana_ban_sizes(nana_ban *b, size_t *counting, size_t *banned);

#endif
