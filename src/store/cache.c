/*
 * cache.c - the per-table value cache: unbounded, LRU, or TTL.
 *
 * A chained hash table (SipHash with a random key per cache, so keys
 * chosen by a network client cannot force collisions) plus one doubly
 * linked list. The list is the recency order for LRU and the age order for
 * TTL (every entry of a table lives equally long, so the oldest store is
 * the first to expire and expiry scans start from the tail).
 *
 * Coherence with SQLite: the writer thread calls nana_cache_put/del after
 * each commit and bumps write_seq. A reader that missed notes write_seq
 * before reading SQLite and fills the cache only if it is unchanged, so a
 * read that raced a commit can never put an older value over a newer one.
 *
 * An entry can also keep its value's encoded (wire) form right after its
 * key, once a network thread made it (nana_cache_keep_encoded): a cached
 * read then touches the bucket and this one allocation and copies bytes,
 * instead of following the entry to the value and the value to its
 * encoding, three allocations on three pages, each a cache and TLB miss
 * with a key space larger than the caches.
 *
 * A TTL cache that deletes expired rows keeps a tombstone (val == NULL)
 * for an expired key until the writer has deleted its row: reads see the
 * key as absent at once, and a fill cannot bring the old row back.
 */
#include "store/store_int.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

struct nana_cache_entry {
    nana_cache_entry *hnext; /* hash chain */
    nana_cache_entry *prev;  /* toward the head (more recent) */
    nana_cache_entry *next;  /* toward the tail (older) */
    uint64_t hash;
    uint64_t stored_ms; /* when the value was stored (TTL) */
    nana_val *val;      /* NULL: tombstone of an expired key awaiting its delete */
    uint32_t klen;
    uint32_t elen; /* bytes of |val|'s encoded (wire) form kept after the key; 0: none */
    uint8_t eform; /* which wire form (the caller's tag) */
    char key[];    /* klen bytes, then elen bytes of the encoded form */
};

static uint64_t cache_hash(const nana_cache *c, const char *key, size_t klen)
{
    uint64_t h;
    crypto_shorthash((unsigned char *)&h, (const unsigned char *)key, klen, c->hash_key);
    return h;
}

int nana_cache_init(nana_cache *c, const nana_cache_opts *opts)
{
    memset(c, 0, sizeof(*c));
    c->opts = *opts;
    if (opts->kind == NANA_CACHE_TTL) {
        double ms = opts->ttl_seconds * 1000.0;
        c->ttl_ms = ms < 1.0 ? 1 : ms >= 9.0e18 ? UINT64_MAX : (uint64_t)ms;
    }
    randombytes_buf(c->hash_key, sizeof(c->hash_key));
    pthread_mutex_init(&c->mu, NULL);
    if (opts->kind == NANA_CACHE_NONE) return NANA_OK;
    c->nbuckets = 64;
    c->buckets = calloc(c->nbuckets, sizeof(*c->buckets));
    if (!c->buckets) {
        pthread_mutex_destroy(&c->mu);
        return nana_err_set(NANA_ERR_NOMEM, "out of memory for a cache");
    }
    return NANA_OK;
}

static void entry_free(nana_cache_entry *e)
{
    nana_val_unref(e->val);
    free(e);
}

static void remove_entry(nana_cache *c, nana_cache_entry *e);

/* Turns an expired entry into a tombstone: absent until its row is deleted. */
static void make_tombstone(nana_cache_entry *e)
{
    nana_val_unref(e->val);
    e->val = NULL;
    e->elen = 0;
}

/* Frees every entry but the tombstones (their rows still have to be
 * deleted, or an expired key would come back). Lock held. */
static void clear_locked(nana_cache *c)
{
    nana_cache_entry *e = c->lru_head;
    while (e) {
        nana_cache_entry *n = e->next;
        if (e->val) remove_entry(c, e);
        e = n;
    }
}

/* Frees every entry; leaves an empty table of the same size. Lock held. */
static void free_all_locked(nana_cache *c)
{
    nana_cache_entry *e = c->lru_head;
    while (e) {
        nana_cache_entry *n = e->next;
        entry_free(e);
        e = n;
    }
    if (c->buckets) memset(c->buckets, 0, c->nbuckets * sizeof(*c->buckets));
    c->lru_head = c->lru_tail = NULL;
    c->count = 0;
}

void nana_cache_free(nana_cache *c)
{
    /* Taken so the entries an I/O thread wrote last (a reader's cached
     * answer, under the lock) are seen whole before they are freed. */
    pthread_mutex_lock(&c->mu);
    free_all_locked(c);
    pthread_mutex_unlock(&c->mu);
    free(c->buckets);
    c->buckets = NULL;
    pthread_mutex_destroy(&c->mu);
}

bool nana_cache_enabled(const nana_cache *c)
{
    return c->opts.kind != NANA_CACHE_NONE;
}

static void list_unlink(nana_cache *c, nana_cache_entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        c->lru_head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        c->lru_tail = e->prev;
    e->prev = e->next = NULL;
}

static void list_push_head(nana_cache *c, nana_cache_entry *e)
{
    e->prev = NULL;
    e->next = c->lru_head;
    if (c->lru_head) c->lru_head->prev = e;
    c->lru_head = e;
    if (!c->lru_tail) c->lru_tail = e;
}

/* Finds the entry for a key; *link receives the chain slot pointing at it. */
static nana_cache_entry *find(nana_cache *c, const char *key, size_t klen, uint64_t h,
                              nana_cache_entry ***link)
{
    nana_cache_entry **p = &c->buckets[h & (c->nbuckets - 1)];
    while (*p) {
        nana_cache_entry *e = *p;
        if (e->hash == h && e->klen == klen && memcmp(e->key, key, klen) == 0) {
            if (link) *link = p;
            return e;
        }
        p = &e->hnext;
    }
    return NULL;
}

/* Removes an entry from the hash chain and the list and frees it. */
static void remove_entry(nana_cache *c, nana_cache_entry *e)
{
    nana_cache_entry **p = &c->buckets[e->hash & (c->nbuckets - 1)];
    while (*p != e)
        p = &(*p)->hnext;
    *p = e->hnext;
    list_unlink(c, e);
    c->count--;
    entry_free(e);
}

/* Doubles the bucket array when the load passes one entry per bucket. */
static void maybe_grow(nana_cache *c)
{
    if (c->count < c->nbuckets) return;
    size_t nb = c->nbuckets * 2;
    nana_cache_entry **b = calloc(nb, sizeof(*b));
    if (!b) return; /* keep working with longer chains */
    for (size_t i = 0; i < c->nbuckets; i++) {
        nana_cache_entry *e = c->buckets[i];
        while (e) {
            nana_cache_entry *n = e->hnext;
            size_t j = e->hash & (nb - 1);
            e->hnext = b[j];
            b[j] = e;
            e = n;
        }
    }
    free(c->buckets);
    c->buckets = b;
    c->nbuckets = nb;
}

/* True if a TTL entry's lifetime passed. A caller's clock reading may be
 * older than the entry (it read the clock before a write stored it): that
 * entry is young, not expired. */
static bool expired(const nana_cache *c, const nana_cache_entry *e, uint64_t now_ms)
{
    return c->opts.kind == NANA_CACHE_TTL && now_ms > e->stored_ms &&
           now_ms - e->stored_ms >= c->ttl_ms;
}

/* Evicts from the tail until the entry limit holds. Lock held. */
static void enforce_limit(nana_cache *c)
{
    size_t limit = c->opts.size;
    if (c->opts.kind == NANA_CACHE_UNBOUNDED || limit == 0) return;
    while (c->count > limit && c->lru_tail) {
        nana_cache_entry *e = c->lru_tail;
        /* Never evict a tombstone: its row still has to be deleted. */
        if (!e->val) {
            while (e && !e->val)
                e = e->prev;
            if (!e) break;
        }
        remove_entry(c, e);
    }
}

/* Stores |v| (new reference taken) under |key|; lock held. */
static void store_locked(nana_cache *c, const char *key, size_t klen, uint64_t h, nana_val *v,
                         uint64_t now_ms)
{
    nana_cache_entry *e = find(c, key, klen, h, NULL);
    if (e) {
        nana_val_unref(e->val);
        e->val = nana_val_ref(v);
        e->elen = 0; /* the encoded form was the old value's */
        e->stored_ms = now_ms;
        list_unlink(c, e);
        list_push_head(c, e);
        return;
    }
    e = malloc(sizeof(*e) + klen);
    if (!e) return; /* a cache that cannot grow is still correct */
    e->hash = h;
    e->klen = (uint32_t)klen;
    e->elen = 0;
    memcpy(e->key, key, klen);
    e->val = nana_val_ref(v);
    e->stored_ms = now_ms;
    size_t b = h & (c->nbuckets - 1);
    e->hnext = c->buckets[b];
    c->buckets[b] = e;
    list_push_head(c, e);
    c->count++;
    enforce_limit(c);
    maybe_grow(c);
}

/* Finds the live entry for |key| (lock held): expires it if its TTL
 * passed, moves it to the head of an LRU list. NULL for a miss, a
 * tombstone or an entry that just expired (*was_expired set for those two). */
static nana_cache_entry *lookup_locked(nana_cache *c, const char *key, size_t klen, uint64_t h,
                                       uint64_t now_ms, int *was_expired)
{
    nana_cache_entry *e = find(c, key, klen, h, NULL);
    if (e && !e->val) {
        /* Tombstone: expired, row delete pending. Reads as absent. */
        *was_expired = 1;
        return NULL;
    }
    if (e && expired(c, e, now_ms)) {
        if (c->opts.ttl_delete_rows) {
            make_tombstone(e);
            *was_expired = 1;
        } else {
            remove_entry(c, e);
        }
        return NULL;
    }
    if (e && c->opts.kind == NANA_CACHE_LRU && c->lru_head != e) {
        list_unlink(c, e);
        list_push_head(c, e);
    }
    return e;
}

int nana_cache_get(nana_cache *c, const char *key, size_t klen, uint64_t now_ms, nana_val **out,
                   uint64_t *seq, int *was_expired)
{
    *was_expired = 0;
    if (c->opts.kind == NANA_CACHE_NONE) {
        *seq = 0;
        return 0;
    }
    uint64_t h = cache_hash(c, key, klen);
    pthread_mutex_lock(&c->mu);
    nana_cache_entry *e = lookup_locked(c, key, klen, h, now_ms, was_expired);
    if (!e) {
        *seq = c->write_seq;
        pthread_mutex_unlock(&c->mu);
        return 0;
    }
    *out = nana_val_ref(e->val);
    pthread_mutex_unlock(&c->mu);
    return 1;
}

int nana_cache_get_encoded(nana_cache *c, const char *key, size_t klen, uint64_t now_ms,
                           uint8_t form, nana_buf *out, nana_val **v)
{
    if (c->opts.kind == NANA_CACHE_NONE) return NANA_CACHED_MISS;
    uint64_t h = cache_hash(c, key, klen);
    int was_expired = 0;
    pthread_mutex_lock(&c->mu);
    nana_cache_entry *e = lookup_locked(c, key, klen, h, now_ms, &was_expired);
    int rc = NANA_CACHED_MISS;
    if (e && e->elen && e->eform == form) {
        if (nana_buf_append(out, e->key + e->klen, e->elen) == NANA_OK) rc = NANA_CACHED_ENCODED;
    } else if (e) {
        *v = nana_val_ref(e->val);
        rc = NANA_CACHED_VALUE;
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

bool nana_cache_keep_encoded(nana_cache *c, const char *key, size_t klen, const nana_val *v,
                             uint8_t form, const void *enc, size_t elen)
{
    if (elen == 0 || elen > NANA_KV_ENCODED_MAX) return false;
    if (c->opts.kind == NANA_CACHE_NONE) return true;
    uint64_t h = cache_hash(c, key, klen);
    pthread_mutex_lock(&c->mu);
    nana_cache_entry **link = NULL;
    nana_cache_entry *e = find(c, key, klen, h, &link);
    /* Only for the value it was made from, and once. */
    if (!e || e->val != v || e->elen) {
        pthread_mutex_unlock(&c->mu);
        return true;
    }
    nana_cache_entry *n = malloc(sizeof(*n) + klen + elen);
    if (!n) { /* the entry stays as it was: still correct */
        pthread_mutex_unlock(&c->mu);
        return true;
    }
    memcpy(n, e, sizeof(*e) + klen);
    memcpy(n->key + klen, enc, elen);
    n->elen = (uint32_t)elen;
    n->eform = form;
    /* Put the new entry where the old one was: its chain slot and its
     * neighbours on the list. */
    *link = n;
    if (n->prev)
        n->prev->next = n;
    else
        c->lru_head = n;
    if (n->next)
        n->next->prev = n;
    else
        c->lru_tail = n;
    free(e);
    pthread_mutex_unlock(&c->mu);
    return true;
}

int nana_cache_peek(nana_cache *c, const char *key, size_t klen, uint64_t now_ms, uint64_t *seq,
                    int *dead)
{
    *dead = 0;
    if (c->opts.kind == NANA_CACHE_NONE) {
        *seq = 0;
        return 0;
    }
    uint64_t h = cache_hash(c, key, klen);
    pthread_mutex_lock(&c->mu);
    *seq = c->write_seq;
    nana_cache_entry *e = find(c, key, klen, h, NULL);
    int live = e && e->val && !expired(c, e, now_ms);
    if (e && !live && c->opts.kind == NANA_CACHE_TTL && c->opts.ttl_delete_rows) *dead = 1;
    pthread_mutex_unlock(&c->mu);
    return live;
}

void nana_cache_fill(nana_cache *c, const char *key, size_t klen, nana_val *v, uint64_t now_ms,
                     uint64_t seq)
{
    if (c->opts.kind == NANA_CACHE_NONE) return;
    uint64_t h = cache_hash(c, key, klen);
    pthread_mutex_lock(&c->mu);
    if (c->write_seq == seq && !find(c, key, klen, h, NULL))
        store_locked(c, key, klen, h, v, now_ms);
    pthread_mutex_unlock(&c->mu);
}

void nana_cache_refresh(nana_cache *c, const char *key, size_t klen, nana_val *v, uint64_t now_ms,
                        uint64_t seq)
{
    if (c->opts.kind == NANA_CACHE_NONE) return;
    uint64_t h = cache_hash(c, key, klen);
    pthread_mutex_lock(&c->mu);
    nana_cache_entry *e = find(c, key, klen, h, NULL);
    if (c->write_seq == seq && !(e && !e->val)) {
        if (v)
            store_locked(c, key, klen, h, v, now_ms);
        else if (e)
            remove_entry(c, e);
    }
    pthread_mutex_unlock(&c->mu);
}

void nana_cache_put(nana_cache *c, const char *key, size_t klen, nana_val *v, uint64_t now_ms)
{
    pthread_mutex_lock(&c->mu);
    c->write_seq++;
    if (c->opts.kind != NANA_CACHE_NONE)
        store_locked(c, key, klen, cache_hash(c, key, klen), v, now_ms);
    pthread_mutex_unlock(&c->mu);
}

void nana_cache_del(nana_cache *c, const char *key, size_t klen)
{
    pthread_mutex_lock(&c->mu);
    c->write_seq++;
    if (c->opts.kind != NANA_CACHE_NONE) {
        nana_cache_entry *e = find(c, key, klen, cache_hash(c, key, klen), NULL);
        if (e) remove_entry(c, e);
    }
    pthread_mutex_unlock(&c->mu);
}

void nana_cache_clear(nana_cache *c)
{
    pthread_mutex_lock(&c->mu);
    c->write_seq++;
    clear_locked(c);
    pthread_mutex_unlock(&c->mu);
}

size_t nana_cache_take_expired(nana_cache *c, uint64_t now_ms, nana_val **keys, size_t max)
{
    if (c->opts.kind != NANA_CACHE_TTL || !c->opts.ttl_delete_rows) return 0;
    size_t n = 0;
    pthread_mutex_lock(&c->mu);
    for (nana_cache_entry *e = c->lru_tail; e && n < max; e = e->prev) {
        if (e->val && !expired(c, e, now_ms)) break; /* the rest are younger */
        nana_val *k = nana_val_new(e->key, e->klen);
        if (!k) break;
        keys[n++] = k;
        if (e->val) make_tombstone(e); /* until the row is gone */
    }
    pthread_mutex_unlock(&c->mu);
    return n;
}

int nana_cache_is_dead(nana_cache *c, const char *key, size_t klen, uint64_t now_ms)
{
    if (c->opts.kind != NANA_CACHE_TTL || !c->opts.ttl_delete_rows) return 0;
    pthread_mutex_lock(&c->mu);
    nana_cache_entry *e = find(c, key, klen, cache_hash(c, key, klen), NULL);
    int dead = 0;
    if (e && e->val && expired(c, e, now_ms)) make_tombstone(e);
    if (e && !e->val) dead = 1;
    pthread_mutex_unlock(&c->mu);
    return dead;
}

size_t nana_cache_count(nana_cache *c)
{
    pthread_mutex_lock(&c->mu);
    size_t n = c->count;
    pthread_mutex_unlock(&c->mu);
    return n;
}
