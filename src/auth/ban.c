/*
 * ban.c - the ban tables (see nana_ban.h): two fixed-size maps from an
 * address key to {count, time}, each an array of entries chained from a
 * hash index and threaded on a list in order of last touch, so that the
 * entry touched longest ago is the one dropped when a table is full.
 */
#include "auth/nana_ban.h"

#include <netinet/in.h>
#include <pthread.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define NONE UINT32_MAX
#define NS   1000000000ull

typedef struct entry {
    uint8_t key[16];
    uint32_t hnext;      /* hash chain */
    uint32_t prev, next; /* touch order: head is the oldest */
    uint32_t count;      /* failures (counting table) */
    uint64_t t;          /* last failure (counting) or ban end (bans) */
    bool used;
} entry;

typedef struct table {
    entry *e;
    uint32_t *heads; /* hash index */
    uint32_t nheads; /* power of two */
    uint32_t cap, used, free_head;
    uint32_t oldest, newest;
} table;

struct nana_ban {
    pthread_mutex_t mu;
    unsigned max_failures;
    uint64_t ban_ns;
    uint8_t hash_key[16];
    table counts, bans;
};

/* The key of an address: IPv4 as ::ffff:a.b.c.d, IPv6 by its /64. */
static bool addr_key(const struct sockaddr *a, uint8_t key[16])
{
    memset(key, 0, 16);
    if (a->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)a;
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &in->sin_addr, 4);
        return true;
    }
    if (a->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)a;
        const uint8_t *b = in6->sin6_addr.s6_addr;
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(b, mapped, 12) == 0)
            memcpy(key, b, 16); /* an IPv4 address seen through an IPv6 socket */
        else
            memcpy(key, b, 8);
        return true;
    }
    return false;
}

static uint32_t slot(const nana_ban *b, const table *t, const uint8_t key[16])
{
    uint64_t h;
    crypto_shorthash((unsigned char *)&h, key, 16, b->hash_key);
    return (uint32_t)h & (t->nheads - 1);
}

static int table_init(table *t, size_t cap)
{
    memset(t, 0, sizeof(*t));
    t->cap = (uint32_t)cap;
    t->nheads = 16;
    while (t->nheads < 2 * t->cap)
        t->nheads *= 2;
    t->e = calloc(cap, sizeof(*t->e));
    t->heads = malloc(t->nheads * sizeof(*t->heads));
    if (!t->e || !t->heads) return -1;
    for (uint32_t i = 0; i < t->nheads; i++)
        t->heads[i] = NONE;
    for (uint32_t i = 0; i < t->cap; i++)
        t->e[i].hnext = i + 1 < t->cap ? i + 1 : NONE; /* the free list, chained by hnext */
    t->free_head = 0;
    t->oldest = t->newest = NONE;
    return 0;
}

static void table_free(table *t)
{
    free(t->e);
    free(t->heads);
}

static uint32_t find(const nana_ban *b, const table *t, const uint8_t key[16])
{
    for (uint32_t i = t->heads[slot(b, t, key)]; i != NONE; i = t->e[i].hnext)
        if (memcmp(t->e[i].key, key, 16) == 0) return i;
    return NONE;
}

static void list_unlink(table *t, uint32_t i)
{
    entry *e = &t->e[i];
    if (e->prev != NONE)
        t->e[e->prev].next = e->next;
    else
        t->oldest = e->next;
    if (e->next != NONE)
        t->e[e->next].prev = e->prev;
    else
        t->newest = e->prev;
}

static void list_append(table *t, uint32_t i)
{
    entry *e = &t->e[i];
    e->prev = t->newest;
    e->next = NONE;
    if (t->newest != NONE)
        t->e[t->newest].next = i;
    else
        t->oldest = i;
    t->newest = i;
}

static void remove_entry(const nana_ban *b, table *t, uint32_t i)
{
    uint32_t *p = &t->heads[slot(b, t, t->e[i].key)];
    while (*p != i)
        p = &t->e[*p].hnext;
    *p = t->e[i].hnext;
    list_unlink(t, i);
    t->e[i].used = false;
    t->e[i].hnext = t->free_head;
    t->free_head = i;
    t->used--;
}

/* The entry for |key|, made (dropping the oldest when full) if missing;
 * moved to the newest end either way. */
static uint32_t touch(const nana_ban *b, table *t, const uint8_t key[16], bool *fresh)
{
    uint32_t i = find(b, t, key);
    *fresh = i == NONE;
    if (i != NONE) {
        list_unlink(t, i);
        list_append(t, i);
        return i;
    }
    if (t->free_head == NONE) remove_entry(b, t, t->oldest);
    i = t->free_head;
    t->free_head = t->e[i].hnext;
    entry *e = &t->e[i];
    memset(e, 0, sizeof(*e));
    memcpy(e->key, key, 16);
    e->used = true;
    uint32_t s = slot(b, t, key);
    e->hnext = t->heads[s];
    t->heads[s] = i;
    list_append(t, i);
    t->used++;
    return i;
}

nana_ban *nana_ban_new(const nana_ban_opts *opts)
{
    nana_ban *b = calloc(1, sizeof(*b));
    if (!b) return NULL;
    b->max_failures = opts && opts->max_failures ? opts->max_failures : 3;
    b->ban_ns = (uint64_t)(opts && opts->ban_seconds ? opts->ban_seconds : 900) * NS;
    size_t cap = opts && opts->capacity ? opts->capacity : 10000;
    if (cap > (1u << 24)) cap = 1u << 24;
    randombytes_buf(b->hash_key, sizeof(b->hash_key));
    pthread_mutex_init(&b->mu, NULL);
    if (table_init(&b->counts, cap) || table_init(&b->bans, cap)) {
        nana_ban_free(b);
        return NULL;
    }
    return b;
}

void nana_ban_free(nana_ban *b)
{
    if (!b) return;
    table_free(&b->counts);
    table_free(&b->bans);
    pthread_mutex_destroy(&b->mu);
    free(b);
}

int nana_ban_failure(nana_ban *b, const struct sockaddr *addr, uint64_t now)
{
    uint8_t key[16];
    if (!addr_key(addr, key)) return 0;
    int banned = 0;
    pthread_mutex_lock(&b->mu);
    bool fresh;
    uint32_t i = touch(b, &b->counts, key, &fresh);
    entry *e = &b->counts.e[i];
    if (!fresh && now - e->t >= b->ban_ns) e->count = 0; /* an old streak is forgotten */
    e->count++;
    e->t = now;
    if (e->count >= b->max_failures) {
        remove_entry(b, &b->counts, i);
        uint32_t j = touch(b, &b->bans, key, &fresh);
        b->bans.e[j].t = now + b->ban_ns;
        banned = 1;
    }
    pthread_mutex_unlock(&b->mu);
    return banned;
}

void nana_ban_success(nana_ban *b, const struct sockaddr *addr)
{
    uint8_t key[16];
    if (!addr_key(addr, key)) return;
    pthread_mutex_lock(&b->mu);
    uint32_t i = find(b, &b->counts, key);
    if (i != NONE) remove_entry(b, &b->counts, i);
    pthread_mutex_unlock(&b->mu);
}

int nana_ban_check(nana_ban *b, const struct sockaddr *addr, uint64_t now)
{
    uint8_t key[16];
    if (!addr_key(addr, key)) return 0;
    int banned = 0;
    pthread_mutex_lock(&b->mu);
    uint32_t i = find(b, &b->bans, key);
    if (i != NONE) {
        if (now < b->bans.e[i].t)
            banned = 1;
        else
            remove_entry(b, &b->bans, i); /* expired */
    }
    pthread_mutex_unlock(&b->mu);
    return banned;
}

void nana_ban_sizes(nana_ban *b, size_t *counting, size_t *banned)
{
    pthread_mutex_lock(&b->mu);
    *counting = b->counts.used;
    *banned = b->bans.used;
    pthread_mutex_unlock(&b->mu);
}
