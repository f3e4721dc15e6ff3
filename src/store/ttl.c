/*
 * ttl.c - deleting the rows of keys whose TTL passed, for tables opened
 * with a TTL cache and ttl_delete_rows (NanaSQLite's cache_persistence_ttl).
 *
 * The cache marks an expired key with a tombstone the moment it is seen
 * expired (by a read or by this sweep), so readers treat it as absent at
 * once. The writer thread then deletes the rows here, in one transaction
 * per table, and drops the tombstones. A key written again in between is
 * no longer a tombstone and is not deleted: writes and this sweep both run
 * on the writer thread, so they cannot interleave.
 */
#include "store/store_int.h"

#include <stdlib.h>

#define SWEEP_BATCH 512

/* Deletes the rows of expired keys of one table. Writer thread only. */
static void sweep_table(nana_store *s, nana_table *t, uint64_t now)
{
    nana_val *keys[SWEEP_BATCH];
    nana_conn *c = &s->writer.conn;
    for (;;) {
        size_t n = nana_cache_take_expired(&t->cache, now, keys, SWEEP_BATCH);
        if (n == 0) return;
        int rc = nana_conn_exec(c, "BEGIN IMMEDIATE");
        for (size_t i = 0; !rc && i < n; i++) {
            int r = nana_exec_del(c, t, keys[i]->data, keys[i]->len, NULL);
            if (r < 0) rc = r;
        }
        if (!rc) rc = nana_conn_exec(c, "COMMIT");
        if (rc && !nana_conn_autocommit(c)) nana_conn_exec(c, "ROLLBACK");
        /* On failure the tombstones are dropped too: the rows stay and are
         * read again (and expire again) later; nothing is lost silently. */
        for (size_t i = 0; i < n; i++) {
            nana_cache_del(&t->cache, keys[i]->data, keys[i]->len);
            nana_val_unref(keys[i]);
        }
        if (rc || n < SWEEP_BATCH) return;
    }
}

void nana_ttl_sweep(nana_store *s)
{
    if (nana_store_damaged(s) && !s->opts.allow_corrupt) return; /* never write into it */
    uint64_t now = nana_store_now(s);
    pthread_mutex_lock(&s->tables_mu);
    nana_table *t = s->tables;
    pthread_mutex_unlock(&s->tables_mu);
    /* Tables are only ever added at the head and freed at close, so the
     * list from |t| on is stable without holding the lock. */
    for (; t; t = t->next)
        if (t->cache.opts.kind == NANA_CACHE_TTL && t->cache.opts.ttl_delete_rows)
            sweep_table(s, t, now);
}

static int sweep_exec(nana_wop *op, nana_conn *c)
{
    (void)c;
    nana_ttl_sweep(op->tbl->store);
    return NANA_OK;
}

int nana_store_expire_now(nana_store *s)
{
    if (s->cluster) return nana_cluster_unsupported("expire_now");
    nana_wop op = {.exec = sweep_exec, .flags = WOP_ALONE, .tbl = s->default_table};
    return nana_writer_run(s, &op);
}
