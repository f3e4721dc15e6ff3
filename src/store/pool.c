/*
 * pool.c - the pool of reader connections.
 *
 * WAL lets any number of readers run beside the one writer. A caller
 * borrows a connection for the length of one read and gives it back; when
 * all are busy it waits. Connections are opened read-only, so nothing run
 * on a reader can modify the file.
 */
#include "store/store_int.h"
#include "util/nana_time.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int nana_pool_open(nana_pool *p, const char *path, const nana_store_opts *o, nana_store *owner)
{
    memset(p, 0, sizeof(*p));
    p->conns = calloc(o->readers, sizeof(*p->conns));
    p->free_idx = calloc(o->readers, sizeof(*p->free_idx));
    if (!p->conns || !p->free_idx) {
        free(p->conns);
        free(p->free_idx);
        return nana_err_set(NANA_ERR_NOMEM, "out of memory for the reader pool");
    }
    pthread_mutex_init(&p->mu, NULL);
    nana_cond_init_monotonic(&p->cv);
    for (unsigned i = 0; i < o->readers; i++) {
        int rc = nana_conn_open(&p->conns[i], path, o, NANA_CONN_READER);
        if (rc) {
            p->n = i;
            nana_pool_close(p);
            return rc;
        }
        p->conns[i].store = owner;
        p->free_idx[i] = i;
    }
    p->n = o->readers;
    p->nfree = o->readers;
    return NANA_OK;
}

void nana_pool_close(nana_pool *p)
{
    if (!p->conns) return;
    for (unsigned i = 0; i < p->n; i++)
        nana_conn_close(&p->conns[i]);
    free(p->conns);
    free(p->free_idx);
    p->conns = NULL;
    p->free_idx = NULL;
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
}

nana_conn *nana_pool_acquire(nana_pool *p, unsigned wait_ms)
{
    pthread_mutex_lock(&p->mu);
    if (p->nfree == 0) {
        struct timespec ts = nana_timespec_at(nana_now_ns() + (uint64_t)wait_ms * 1000000ull);
        while (p->nfree == 0) {
            if (pthread_cond_timedwait(&p->cv, &p->mu, &ts) == ETIMEDOUT && p->nfree == 0) {
                pthread_mutex_unlock(&p->mu);
                (void)nana_err_set(NANA_ERR_BUSY, "all %u reader connections stayed busy for %u ms",
                                   p->n, wait_ms);
                return NULL;
            }
        }
    }
    nana_conn *c = &p->conns[p->free_idx[--p->nfree]];
    pthread_mutex_unlock(&p->mu);
    return c;
}

void nana_pool_release(nana_pool *p, nana_conn *c)
{
    pthread_mutex_lock(&p->mu);
    p->free_idx[p->nfree++] = (unsigned)(c - p->conns);
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}
