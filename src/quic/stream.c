/*
 * stream.c - per-connection stream table and send queues.
 *
 * A stream's outgoing bytes sit in a list of chunks until the peer
 * acknowledges them: ngtcp2 retransmits lost data straight from these
 * buffers, so they must stay put. ngtcp2 reports acknowledgements in
 * order per stream, which lets us free chunks from the head. A chunk holds
 * a copy of the caller's bytes, or (nana_quic_stream_send_ref) points at
 * the caller's buffer and calls its release function when done with it.
 *
 * Streams and referencing chunks come from the shard's free lists
 * (nana_quic_objs), so a call costs no malloc here once the lists are warm.
 */
#include "quic/quic_int.h"

#include <stdlib.h>
#include <string.h>

enum { CHUNK_MALLOC = 0, CHUNK_REF = 1, CHUNK_SMALL = 2 }; /* where a chunk came from */

struct nana_quic_chunk {
    nana_quic_chunk *next;
    uint8_t kept; /* CHUNK_*: the shard's list it goes back to */
    size_t len;
    const uint8_t *bytes;       /* data, or the caller's buffer */
    void (*release)(void *ctx); /* for the caller's buffer; may be NULL */
    void *ctx;
    uint8_t data[];
};

void nana_quic_objs_init(nana_quic_objs *o)
{
    nana_freelist_init(&o->streams, sizeof(nana_quic_stream), NANA_Q_OBJS_KEPT);
    nana_freelist_init(&o->chunks, sizeof(nana_quic_chunk), NANA_Q_OBJS_KEPT);
    nana_freelist_init(&o->small, sizeof(nana_quic_chunk) + NANA_Q_SMALL_COPY, NANA_Q_OBJS_KEPT);
}

void nana_quic_objs_free(nana_quic_objs *o)
{
    nana_freelist_drain(&o->streams);
    nana_freelist_drain(&o->chunks);
    nana_freelist_drain(&o->small);
}

/* Frees a chunk, giving a referenced buffer back to its owner. */
static void chunk_free(nana_quic_stream_table *t, nana_quic_chunk *c)
{
    void (*release)(void *ctx) = c->release;
    void *ctx = c->ctx;
    t->held_bytes -= c->len;
    if (c->kept == CHUNK_REF && t->objs)
        nana_freelist_put(&t->objs->chunks, c);
    else if (c->kept == CHUNK_SMALL && t->objs)
        nana_freelist_put(&t->objs->small, c);
    else
        free(c);
    if (release) release(ctx);
}

static size_t bucket(const nana_quic_stream_table *t, int64_t id)
{
    uint64_t h = (uint64_t)id * 0x9e3779b97f4a7c15ull;
    return (size_t)(h >> 32) & (t->nbuckets - 1);
}

nana_quic_stream *nana_quic_stream_find(nana_quic_stream_table *t, int64_t id)
{
    if (!t->nbuckets) return NULL;
    for (nana_quic_stream *s = t->buckets[bucket(t, id)]; s; s = s->hnext)
        if (s->id == id) return s;
    return NULL;
}

/* Doubles the bucket array. */
static int grow(nana_quic_stream_table *t)
{
    size_t nb = t->nbuckets ? t->nbuckets * 2 : 16;
    nana_quic_stream **b = calloc(nb, sizeof(*b));
    if (!b) return nana_err_set(NANA_ERR_NOMEM, "out of memory for streams");
    for (size_t i = 0; i < t->nbuckets; i++) {
        nana_quic_stream *s = t->buckets[i];
        while (s) {
            nana_quic_stream *n = s->hnext;
            size_t j = (size_t)(((uint64_t)s->id * 0x9e3779b97f4a7c15ull) >> 32) & (nb - 1);
            s->hnext = b[j];
            b[j] = s;
            s = n;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->nbuckets = nb;
    return NANA_OK;
}

nana_quic_stream *nana_quic_stream_add(nana_quic_stream_table *t, int64_t id)
{
    if (t->count >= t->nbuckets && grow(t)) return NULL;
    nana_quic_stream *s = t->objs ? nana_freelist_get(&t->objs->streams) : malloc(sizeof(*s));
    if (!s) {
        (void)nana_err_set(NANA_ERR_NOMEM, "out of memory for a stream");
        return NULL;
    }
    memset(s, 0, sizeof(*s));
    s->id = id;
    size_t b = bucket(t, id);
    s->hnext = t->buckets[b];
    t->buckets[b] = s;
    t->count++;
    return s;
}

static void stream_free(nana_quic_stream_table *t, nana_quic_stream *s)
{
    nana_quic_chunk *c = s->head;
    while (c) {
        nana_quic_chunk *n = c->next;
        chunk_free(t, c);
        c = n;
    }
    if (t->objs)
        nana_freelist_put(&t->objs->streams, s);
    else
        free(s);
}

void nana_quic_stream_remove(nana_quic_stream_table *t, nana_quic_stream *s)
{
    nana_quic_stream **p = &t->buckets[bucket(t, s->id)];
    while (*p && *p != s)
        p = &(*p)->hnext;
    if (*p) {
        *p = s->hnext;
        t->count--;
    }
    stream_free(t, s);
}

void nana_quic_stream_table_free(nana_quic_stream_table *t)
{
    for (size_t i = 0; i < t->nbuckets; i++) {
        nana_quic_stream *s = t->buckets[i];
        while (s) {
            nana_quic_stream *n = s->hnext;
            stream_free(t, s);
            s = n;
        }
    }
    free(t->buckets);
    t->buckets = NULL;
    t->nbuckets = t->count = 0;
}

int nana_quic_stream_queue(nana_quic_stream_table *t, nana_quic_stream *s, const void *data,
                           size_t len, bool copy, void (*release)(void *ctx), void *ctx)
{
    uint8_t kept = !t->objs                   ? CHUNK_MALLOC
                   : !copy                    ? CHUNK_REF
                   : len <= NANA_Q_SMALL_COPY ? CHUNK_SMALL
                                              : CHUNK_MALLOC;
    nana_quic_chunk *c = kept == CHUNK_REF     ? nana_freelist_get(&t->objs->chunks)
                         : kept == CHUNK_SMALL ? nana_freelist_get(&t->objs->small)
                                               : malloc(sizeof(*c) + (copy ? len : 0));
    if (!c) return nana_err_set(NANA_ERR_NOMEM, "out of memory for %zu bytes of stream data", len);
    c->next = NULL;
    c->kept = kept;
    c->len = len;
    if (copy) {
        memcpy(c->data, data, len);
        c->bytes = c->data;
        c->release = release;
        c->ctx = ctx;
    } else {
        c->bytes = data;
        c->release = release;
        c->ctx = ctx;
    }
    if (s->tail)
        s->tail->next = c;
    else
        s->head = c;
    s->tail = c;
    if (!s->cursor && s->head != c && s->sent_off == s->queued) {
        s->cursor = c; /* all before it went out: start the next scan here */
        s->cursor_off = s->queued;
    }
    s->queued += len;
    t->held_bytes += len;
    return NANA_OK;
}

void nana_quic_stream_acked(nana_quic_stream_table *t, nana_quic_stream *s, uint64_t acked_to)
{
    while (s->head && s->base_off + s->head->len <= acked_to) {
        nana_quic_chunk *c = s->head;
        if (s->cursor == c) {
            s->cursor = c->next;
            s->cursor_off += c->len;
        }
        s->base_off += c->len;
        s->head = c->next;
        if (!s->head) s->tail = NULL;
        t->acked_bytes += c->len;
        chunk_free(t, c);
    }
}

size_t nana_quic_stream_unsent(nana_quic_stream *s, ngtcp2_vec *v, size_t max, size_t enough)
{
    /* Skip the chunks sent in full: the scan starts at the cursor, which
     * only moves forward, so a long queue is not walked for each packet. */
    if (!s->cursor) {
        s->cursor = s->head;
        s->cursor_off = s->base_off;
    }
    while (s->cursor && s->cursor_off + s->cursor->len <= s->sent_off) {
        s->cursor_off += s->cursor->len;
        s->cursor = s->cursor->next;
    }
    size_t n = 0, bytes = 0;
    uint64_t off = s->cursor_off;
    for (nana_quic_chunk *c = s->cursor; c && n < max && bytes < enough; c = c->next) {
        uint64_t end = off + c->len;
        if (end > s->sent_off) {
            size_t skip = s->sent_off > off ? (size_t)(s->sent_off - off) : 0;
            v[n].base = (uint8_t *)(uintptr_t)(c->bytes + skip); /* ngtcp2 only reads it */
            v[n].len = c->len - skip;
            bytes += v[n].len;
            n++;
        }
        off = end;
    }
    return n;
}
