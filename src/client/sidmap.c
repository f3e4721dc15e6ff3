/*
 * sidmap.c - stream id -> call, so a reply is matched to its call by the
 * stream it arrives on, never by arrival order. Open addressing with
 * linear probing and backward-shift deletion; client stream ids are
 * multiples of 4, so they are hashed before use.
 */
#include "client_int.h"

#include <stdlib.h>

static size_t slot_of(int64_t sid, size_t cap)
{
    uint64_t x = (uint64_t)sid * 0x9e3779b97f4a7c15ull;
    return (size_t)(x >> 17) & (cap - 1);
}

/* Doubles the table (or makes the first one); 0 or -1. */
static int grow(nc_sidmap *m)
{
    size_t cap = m->cap ? m->cap * 2 : 64;
    int64_t *keys = malloc(cap * sizeof(*keys));
    nc_call **vals = malloc(cap * sizeof(*vals));
    if (!keys || !vals) {
        free(keys);
        free(vals);
        return -1;
    }
    for (size_t i = 0; i < cap; i++)
        keys[i] = -1;
    for (size_t i = 0; i < m->cap; i++) {
        if (m->keys[i] < 0) continue;
        size_t j = slot_of(m->keys[i], cap);
        while (keys[j] >= 0)
            j = (j + 1) & (cap - 1);
        keys[j] = m->keys[i];
        vals[j] = m->vals[i];
    }
    free(m->keys);
    free(m->vals);
    m->keys = keys;
    m->vals = vals;
    m->cap = cap;
    return 0;
}

int nc_sidmap_put(nc_sidmap *m, int64_t sid, nc_call *c)
{
    if ((m->len + 1) * 2 > m->cap && grow(m)) return -1;
    size_t i = slot_of(sid, m->cap);
    while (m->keys[i] >= 0 && m->keys[i] != sid)
        i = (i + 1) & (m->cap - 1);
    if (m->keys[i] < 0) m->len++;
    m->keys[i] = sid;
    m->vals[i] = c;
    return 0;
}

/* The slot holding |sid|, or cap when absent. */
static size_t find(const nc_sidmap *m, int64_t sid)
{
    if (!m->cap) return 0;
    for (size_t i = slot_of(sid, m->cap);; i = (i + 1) & (m->cap - 1)) {
        if (m->keys[i] == sid) return i;
        if (m->keys[i] < 0) return m->cap;
    }
}

nc_call *nc_sidmap_get(const nc_sidmap *m, int64_t sid)
{
    size_t i = find(m, sid);
    return i < m->cap ? m->vals[i] : NULL;
}

nc_call *nc_sidmap_del(nc_sidmap *m, int64_t sid)
{
    size_t i = find(m, sid);
    if (i >= m->cap) return NULL;
    nc_call *c = m->vals[i];
    m->keys[i] = -1;
    m->len--;
    /* Shift back the entries of the probe run that follows. */
    for (size_t j = (i + 1) & (m->cap - 1); m->keys[j] >= 0; j = (j + 1) & (m->cap - 1)) {
        size_t home = slot_of(m->keys[j], m->cap);
        /* Entry j may move to the hole i if its home is not in (i, j]. */
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (stays) continue;
        m->keys[i] = m->keys[j];
        m->vals[i] = m->vals[j];
        m->keys[j] = -1;
        i = j;
    }
    return c;
}

void nc_sidmap_free(nc_sidmap *m)
{
    free(m->keys);
    free(m->vals);
    m->keys = NULL;
    m->vals = NULL;
    m->cap = m->len = 0;
}
