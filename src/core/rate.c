/*
 * rate.c - the call rate of each account: a token bucket per account name,
 * shared by every connection and door of that account in this process.
 *
 * A bucket holds one second's worth of calls (the rate), starts full and
 * refills continuously. Buckets are made on first use and kept for the
 * life of the process; at most 100,000 (a table that cannot grow lets the
 * call through rather than refusing everyone).
 */
#include "core/core_int.h"

#include "util/nana_mem.h"

#include <stdio.h>
#include <string.h>

#define MAX_RATE_BUCKETS 100000

typedef struct nana_rate {
    pthread_mutex_t mu;
    double tokens; /* < 0: not used yet (full on first use) */
    uint64_t last_ns;
    struct nana_rate *next; /* hash chain */
    char name[72];
} nana_rate;

/* Buckets in a hash table on the account name (chains; doubled when full). */
struct nana_rates {
    pthread_mutex_t mu;
    nana_rate **tab;
    size_t cap, n;
};

/* FNV-1a of |name|: account names come from the accounts file, not from clients. */
static size_t name_hash(const char *name)
{
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    return (size_t)h;
}

int nana_rates_new(nana_rates **out)
{
    nana_rates *r = nana_calloc(1, sizeof(*r));
    if (!r) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&r->mu, NULL);
    *out = r;
    return NANA_OK;
}

void nana_rates_free(nana_rates *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->cap; i++) {
        nana_rate *b = r->tab[i];
        while (b) {
            nana_rate *next = b->next;
            pthread_mutex_destroy(&b->mu);
            nana_free(b);
            b = next;
        }
    }
    nana_free(r->tab);
    pthread_mutex_destroy(&r->mu);
    nana_free(r);
}

/* Doubles the table (lock held); false when out of memory (the chains grow). */
static void grow(nana_rates *rs)
{
    size_t cap = rs->cap ? rs->cap * 2 : 64;
    nana_rate **t = nana_calloc(cap, sizeof(*t));
    if (!t) return;
    for (size_t i = 0; i < rs->cap; i++) {
        nana_rate *b = rs->tab[i];
        while (b) {
            nana_rate *next = b->next;
            size_t j = name_hash(b->name) & (cap - 1);
            b->next = t[j];
            t[j] = b;
            b = next;
        }
    }
    nana_free(rs->tab);
    rs->tab = t;
    rs->cap = cap;
}

/* The bucket of account |name|, made on first use; NULL when none can be had. */
static nana_rate *bucket(nana_rates *rs, const char *name)
{
    size_t h = name_hash(name);
    pthread_mutex_lock(&rs->mu);
    if (rs->cap)
        for (nana_rate *b = rs->tab[h & (rs->cap - 1)]; b; b = b->next)
            if (strcmp(b->name, name) == 0) {
                pthread_mutex_unlock(&rs->mu);
                return b;
            }
    nana_rate *r = NULL;
    if (rs->n >= rs->cap) grow(rs);
    if (rs->cap && rs->n < MAX_RATE_BUCKETS && (r = nana_calloc(1, sizeof(*r)))) {
        pthread_mutex_init(&r->mu, NULL);
        snprintf(r->name, sizeof(r->name), "%s", name);
        r->tokens = -1;
        size_t j = h & (rs->cap - 1);
        r->next = rs->tab[j];
        rs->tab[j] = r;
        rs->n++;
    }
    pthread_mutex_unlock(&rs->mu);
    return r;
}

bool nana_rates_take(nana_rates *rs, const char *name, nana_rate **hint, double rate,
                     uint64_t now_ns)
{
    nana_rate *r = hint && *hint && strcmp((*hint)->name, name) == 0 ? *hint : bucket(rs, name);
    if (hint) *hint = r;
    if (!r) return true;
    double cap = rate < 1.0 ? 1.0 : rate; /* a rate below 1/s still allows one call */
    pthread_mutex_lock(&r->mu);
    if (r->tokens < 0) {
        r->tokens = cap;
    } else {
        double add = (double)(now_ns - r->last_ns) * 1e-9 * rate;
        r->tokens = r->tokens + add > cap ? cap : r->tokens + add;
    }
    r->last_ns = now_ns;
    bool ok = r->tokens >= 1.0;
    if (ok) r->tokens -= 1.0;
    pthread_mutex_unlock(&r->mu);
    return ok;
}
