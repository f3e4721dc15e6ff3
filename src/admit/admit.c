/*
 * admit.c - who may hold a server connection (nana_admit.h), for the QUIC
 * and TCP endpoints alike.
 *
 * A client that never logs in must not be able to take the places of
 * clients that do. The endpoint counts its live connections three ways,
 * under one lock shared by its I/O threads: all of them (max_connections),
 * those from one client address (max_conns_per_addr; an IPv4 address, or
 * the /64 of an IPv6 one, since one host holds a whole /64), and those the
 * layer above has not trusted yet (max_untrusted: still in the handshake,
 * or open but not logged in).
 *
 * When a new client would pass a limit, an untrusted connection that
 * stands in its way is evicted (closed) to make room: for the per-address
 * limit one of that address, for the others one from anywhere. Only when
 * every connection in the way is trusted is the newcomer refused. So a
 * flood of connections that never log in cannot keep anyone out, and once
 * trusted a connection is never evicted. Untrusted connections also have a
 * deadline (the transport's).
 *
 * Which untrusted connection goes: of two different ones picked at random,
 * the older (so never the youngest). A
 * pure oldest-first rule lets a flood from the address of a real client
 * evict that client whenever the flood opens as many connections as the
 * limit while the client is logging in, however slowly the client's
 * address was flooded before; a random pick gives every connection the
 * same small chance per newcomer, and taking the older of two makes the
 * chance of the youngest (the one still logging in) smaller still: about
 * k^2/n^2 after k newcomers among n, against k/n for one random pick.
 * Untrusted connections are kept in arrays (per address and in all) so a
 * random pick costs nothing.
 *
 * A connection whose client has spoken the protocol above (asked to log
 * in: nana_admit_engage) is evicted only when no connection in the way
 * has not: a flood that completes handshakes and then idles cannot push
 * out a client in the middle of its login, however long the login takes.
 * A flood that also asks to log in is back to the random pick above, and
 * pays a request and a challenge per connection. Each array keeps the
 * connections not engaged in front, so the pick still costs nothing.
 *
 * An evicted connection leaves the counts at once; its own entry is
 * released with the connection later.
 */
#include "admit/nana_admit.h"

#include "util/nana_err.h"

#include <netinet/in.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

/* Builds the prefix key of |sa|: IPv4 (also IPv4-mapped IPv6) or an IPv6 /64. */
static void addr_key(const struct sockaddr *sa, uint8_t key[9])
{
    memset(key, 0, 9);
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        key[0] = 4;
        memcpy(key + 1, &in->sin_addr, 4);
        return;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        const uint8_t *b = in6->sin6_addr.s6_addr;
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(b, mapped, 12) == 0) {
            key[0] = 4;
            memcpy(key + 1, b + 12, 4);
        } else {
            key[0] = 6;
            memcpy(key + 1, b, 8);
        }
    }
}

int nana_admit_init(nana_admit *a, unsigned max_total, unsigned max_per_addr,
                    unsigned max_untrusted)
{
    memset(a, 0, sizeof(*a));
    pthread_mutex_init(&a->mu, NULL);
    a->max_total = max_total;
    a->max_per_addr = max_per_addr;
    a->max_untrusted = max_untrusted;
    a->nbuckets = 256;
    a->buckets = calloc(a->nbuckets, sizeof(*a->buckets));
    randombytes_buf(a->hash_key, sizeof(a->hash_key));
    randombytes_buf(&a->rng, sizeof(a->rng));
    a->rng |= 1;
    if (!a->buckets) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    return NANA_OK;
}

void nana_admit_free(nana_admit *a)
{
    if (!a->buckets) return;
    for (size_t i = 0; i < a->nbuckets; i++) {
        nana_admit_addr *x = a->buckets[i];
        while (x) {
            nana_admit_addr *n = x->hnext;
            free(x->u.v);
            free(x);
            x = n;
        }
    }
    free(a->buckets);
    free(a->g.v);
    a->buckets = NULL;
    pthread_mutex_destroy(&a->mu);
}

/* A random number below |n| (n > 0); the lock is held. Not secret: it only
 * has to be unknown to clients when they connect (xorshift64*, seeded from
 * the system's random source). */
static unsigned rand_below(nana_admit *a, unsigned n)
{
    uint64_t x = a->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    a->rng = x;
    return (unsigned)(((x * 0x2545F4914F6CDD1Dull) >> 32) % n);
}

/* The bucket of |key| (SipHash: client addresses are chosen by clients). */
static size_t bucket_of(const nana_admit *a, const uint8_t key[9], size_t nbuckets)
{
    uint8_t h[crypto_shorthash_BYTES];
    crypto_shorthash(h, key, 9, a->hash_key);
    uint64_t v;
    memcpy(&v, h, sizeof(v));
    return (size_t)(v & (nbuckets - 1));
}

/* Doubles the table when it holds more prefixes than buckets (lock held). */
static void grow(nana_admit *a)
{
    if (a->naddrs < a->nbuckets) return;
    size_t n = a->nbuckets * 2;
    nana_admit_addr **t = calloc(n, sizeof(*t));
    if (!t) return; /* longer chains, still correct */
    for (size_t i = 0; i < a->nbuckets; i++) {
        nana_admit_addr *x = a->buckets[i];
        while (x) {
            nana_admit_addr *next = x->hnext;
            size_t j = bucket_of(a, x->key, n);
            x->hnext = t[j];
            t[j] = x;
            x = next;
        }
    }
    free(a->buckets);
    a->buckets = t;
    a->nbuckets = n;
}

/* The record of prefix |key|, made if |create| (lock held); NULL if absent or no memory. */
static nana_admit_addr *find_addr(nana_admit *a, const uint8_t key[9], bool create)
{
    size_t j = bucket_of(a, key, a->nbuckets);
    for (nana_admit_addr *x = a->buckets[j]; x; x = x->hnext)
        if (memcmp(x->key, key, 9) == 0) return x;
    if (!create) return NULL;
    nana_admit_addr *x = calloc(1, sizeof(*x));
    if (!x) return NULL;
    memcpy(x->key, key, 9);
    x->hnext = a->buckets[j];
    a->buckets[j] = x;
    a->naddrs++;
    grow(a);
    return x;
}

/* Drops the record of a prefix no entry points to any more (lock held). */
static void drop_addr_if_empty(nana_admit *a, nana_admit_addr *x)
{
    if (x->refs) return;
    nana_admit_addr **p = &a->buckets[bucket_of(a, x->key, a->nbuckets)];
    while (*p && *p != x)
        p = &(*p)->hnext;
    if (*p) *p = x->hnext;
    a->naddrs--;
    free(x->u.v);
    free(x);
}

/* Makes room for one more in |l|; false if out of memory. */
static bool reserve(nana_admit_list *l)
{
    if (l->n < l->cap) return true;
    unsigned c = l->cap ? l->cap * 2 : 8;
    nana_admit_ent **t = realloc(l->v, c * sizeof(*t));
    if (!t) return false;
    l->v = t;
    l->cap = c;
    return true;
}

/* Where |e| stands in the endpoint's list (|global|) or its address's. */
static unsigned *slot(nana_admit_ent *e, bool global)
{
    return global ? &e->gidx : &e->aidx;
}

/* Puts |e| at index |i| of |l|. */
static void place(nana_admit_list *l, unsigned i, nana_admit_ent *e, bool global)
{
    l->v[i] = e;
    *slot(e, global) = i;
}

/* Swaps the entries at |i| and |j| of |l|. */
static void swap(nana_admit_list *l, unsigned i, unsigned j, bool global)
{
    nana_admit_ent *t = l->v[i];
    place(l, i, l->v[j], global);
    place(l, j, t, global);
}

/* Adds not-engaged |e| to |l| (room reserved). */
static void list_add(nana_admit_list *l, nana_admit_ent *e, bool global)
{
    place(l, l->n++, e, global);
    swap(l, l->nfresh++, l->n - 1, global);
}

/* Moves |e| of |l| to the engaged part. */
static void list_engage(nana_admit_list *l, nana_admit_ent *e, bool global)
{
    unsigned i = *slot(e, global);
    if (i >= l->nfresh) return;
    swap(l, i, --l->nfresh, global);
}

/* Takes |e| out of |l|: the last entry takes its slot. */
static void list_remove(nana_admit_list *l, nana_admit_ent *e, bool global)
{
    list_engage(l, e, global);
    place(l, *slot(e, global), l->v[--l->n], global);
}

/* Takes |e| off both untrusted lists (lock held). */
static void unlist(nana_admit *a, nana_admit_ent *e)
{
    if (!e->listed) return;
    list_remove(&e->addr->u, e, false);
    list_remove(&a->g, e, true);
    e->listed = false;
    a->untrusted--;
}

/* Takes |e| out of every count (lock held): it no longer holds a place. */
static void uncount(nana_admit *a, nana_admit_ent *e)
{
    if (!e->counted) return;
    unlist(a, e);
    e->counted = false;
    e->addr->count--;
    a->total--;
}

/* Whom of |l| (not empty) to evict: of two different entries picked at
 * random among those not engaged (among all when every one is), the older;
 * so the youngest is never the one. */
static nana_admit_ent *pick(nana_admit *a, const nana_admit_list *l)
{
    unsigned n = l->nfresh ? l->nfresh : l->n;
    if (n == 1) return l->v[0];
    unsigned i = rand_below(a, n), j = rand_below(a, n - 1);
    if (j >= i) j++;
    return l->v[i]->seq < l->v[j]->seq ? l->v[i] : l->v[j];
}

/* Evicts |e| to make room: records its handle for the caller to close. */
static void evict(nana_admit *a, nana_admit_ent *e, nana_admit_result *r)
{
    r->victims[r->nvictims++] = e->handle;
    uncount(a, e);
    a->evicted++;
}

int nana_admit_enter(nana_admit *a, const struct sockaddr *addr, uint64_t h, nana_admit_ent **out,
                     nana_admit_result *r)
{
    *out = NULL;
    memset(r, 0, sizeof(*r));
    uint8_t key[9];
    addr_key(addr, key);
    nana_admit_ent *e = calloc(1, sizeof(*e));
    if (!e) return NANA_ADMIT_REFUSE_FULL;
    pthread_mutex_lock(&a->mu);
    nana_admit_addr *x = find_addr(a, key, true);
    int refuse = 0;
    if (!x || !reserve(&x->u) || !reserve(&a->g)) {
        refuse = NANA_ADMIT_REFUSE_FULL;
    } else if (x->count >= a->max_per_addr) {
        if (x->u.n)
            evict(a, pick(a, &x->u), r);
        else
            refuse = NANA_ADMIT_REFUSE_ADDR;
    }
    if (!refuse && a->total >= a->max_total) {
        if (a->g.n)
            evict(a, pick(a, &a->g), r);
        else
            refuse = NANA_ADMIT_REFUSE_FULL;
    }
    if (!refuse && a->untrusted >= a->max_untrusted && a->g.n) evict(a, pick(a, &a->g), r);
    if (refuse) {
        if (x) drop_addr_if_empty(a, x);
        a->refused++;
        pthread_mutex_unlock(&a->mu);
        free(e);
        return refuse;
    }
    e->addr = x;
    x->refs++;
    e->handle = h;
    e->seq = ++a->seq;
    e->counted = true;
    e->listed = true;
    x->count++;
    a->total++;
    a->untrusted++;
    list_add(&x->u, e, false);
    list_add(&a->g, e, true);
    pthread_mutex_unlock(&a->mu);
    *out = e;
    return 0;
}

bool nana_admit_trust(nana_admit *a, nana_admit_ent *e)
{
    pthread_mutex_lock(&a->mu);
    bool ok = e->counted;
    unlist(a, e);
    pthread_mutex_unlock(&a->mu);
    return ok;
}

void nana_admit_engage(nana_admit *a, nana_admit_ent *e)
{
    pthread_mutex_lock(&a->mu);
    if (e->listed && !e->engaged) {
        e->engaged = true;
        list_engage(&e->addr->u, e, false);
        list_engage(&a->g, e, true);
    }
    pthread_mutex_unlock(&a->mu);
}

void nana_admit_leave(nana_admit *a, nana_admit_ent *e)
{
    if (!e) return;
    pthread_mutex_lock(&a->mu);
    uncount(a, e);
    e->addr->refs--;
    drop_addr_if_empty(a, e->addr);
    pthread_mutex_unlock(&a->mu);
    free(e);
}

void nana_admit_counts(nana_admit *a, unsigned *total, unsigned *untrusted, uint64_t *evicted,
                       uint64_t *refused)
{
    pthread_mutex_lock(&a->mu);
    *total = a->total;
    *untrusted = a->untrusted;
    *evicted = a->evicted;
    *refused = a->refused;
    pthread_mutex_unlock(&a->mu);
}
