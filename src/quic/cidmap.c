/*
 * cidmap.c - connection ID -> connection, for routing datagrams.
 *
 * Open addressing with linear probing and tombstones, keyed by SipHash of
 * the CID bytes with a random key (clients choose their initial DCIDs, so
 * they must not be able to aim at one bucket). Grows at 1/2 load,
 * rebuilds when tombstones pile up.
 */
#include "quic/quic_int.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

struct cid_entry {
    ngtcp2_cid cid;       /* datalen 0: empty */
    nana_quic_conn *conn; /* NULL with datalen > 0: tombstone */
};

static uint64_t cid_hash(const nana_quic_cidmap *m, const uint8_t *p, size_t n)
{
    uint64_t h;
    crypto_shorthash((unsigned char *)&h, p, n, m->key);
    return h;
}

int nana_quic_cidmap_init(nana_quic_cidmap *m)
{
    memset(m, 0, sizeof(*m));
    m->cap = 256;
    m->slots = calloc(m->cap, sizeof(*m->slots));
    if (!m->slots) return nana_err_set(NANA_ERR_NOMEM, "out of memory for the CID table");
    randombytes_buf(m->key, sizeof(m->key));
    return NANA_OK;
}

void nana_quic_cidmap_free(nana_quic_cidmap *m)
{
    free(m->slots);
    m->slots = NULL;
    m->cap = m->count = m->tombs = 0;
}

/* Reinserts every live entry into a table of |cap| slots. */
static int rehash(nana_quic_cidmap *m, size_t cap)
{
    struct cid_entry *old = m->slots;
    size_t oldcap = m->cap;
    struct cid_entry *slots = calloc(cap, sizeof(*slots));
    if (!slots) return nana_err_set(NANA_ERR_NOMEM, "out of memory for the CID table");
    for (size_t i = 0; i < oldcap; i++) {
        if (!old[i].cid.datalen || !old[i].conn) continue;
        size_t j = cid_hash(m, old[i].cid.data, old[i].cid.datalen) & (cap - 1);
        while (slots[j].cid.datalen)
            j = (j + 1) & (cap - 1);
        slots[j] = old[i];
    }
    free(old);
    m->slots = slots;
    m->cap = cap;
    m->tombs = 0;
    return NANA_OK;
}

int nana_quic_cidmap_put(nana_quic_cidmap *m, const ngtcp2_cid *cid, nana_quic_conn *c)
{
    if (!cid->datalen) return NANA_OK;
    if ((m->count + m->tombs + 1) * 2 > m->cap) {
        size_t cap = (m->count + 1) * 4 > m->cap ? m->cap * 2 : m->cap;
        int rc = rehash(m, cap);
        if (rc) return rc;
    }
    size_t i = cid_hash(m, cid->data, cid->datalen) & (m->cap - 1);
    size_t tomb = SIZE_MAX;
    while (m->slots[i].cid.datalen) {
        struct cid_entry *e = &m->slots[i];
        if (!e->conn) {
            if (tomb == SIZE_MAX) tomb = i;
        } else if (ngtcp2_cid_eq(&e->cid, cid)) {
            e->conn = c;
            return NANA_OK;
        }
        i = (i + 1) & (m->cap - 1);
    }
    if (tomb != SIZE_MAX) {
        i = tomb;
        m->tombs--;
    }
    m->slots[i].cid = *cid;
    m->slots[i].conn = c;
    m->count++;
    return NANA_OK;
}

nana_quic_conn *nana_quic_cidmap_get(nana_quic_cidmap *m, const uint8_t *cid, size_t len)
{
    if (!len || len > NGTCP2_MAX_CIDLEN) return NULL;
    size_t i = cid_hash(m, cid, len) & (m->cap - 1);
    while (m->slots[i].cid.datalen) {
        struct cid_entry *e = &m->slots[i];
        if (e->conn && e->cid.datalen == len && memcmp(e->cid.data, cid, len) == 0) return e->conn;
        i = (i + 1) & (m->cap - 1);
    }
    return NULL;
}

void nana_quic_cidmap_del(nana_quic_cidmap *m, const ngtcp2_cid *cid)
{
    if (!cid->datalen) return;
    size_t i = cid_hash(m, cid->data, cid->datalen) & (m->cap - 1);
    while (m->slots[i].cid.datalen) {
        struct cid_entry *e = &m->slots[i];
        if (e->conn && ngtcp2_cid_eq(&e->cid, cid)) {
            e->conn = NULL; /* tombstone */
            m->count--;
            m->tombs++;
            return;
        }
        i = (i + 1) & (m->cap - 1);
    }
}
