/*
 * checkpoint.c - WAL checkpoints on a thread of their own.
 *
 * SQLite's automatic checkpoint runs inside the COMMIT that pushed the WAL
 * past 1000 pages: it copies the WAL back into the database file and, with
 * synchronous=NORMAL, fsyncs it, all while the writer (and so every
 * queued write) waits. Here the writer connection's automatic checkpoint is
 * off; a WAL hook notes the WAL's size after each commit and, past
 * checkpoint_pages (8192 by default: 32 MiB, so a page written often is
 * copied back once rather than many times), wakes this thread, which runs
 * PASSIVE checkpoints on its own connection. A PASSIVE
 * checkpoint never blocks the writer or the readers; WAL mode lets it copy
 * pages while new frames are appended. If the WAL still grows past a hard
 * bound (the checkpointer cannot keep up), the writer checkpoints inline,
 * as SQLite would have, so the WAL file stays bounded.
 */
#include "store/store_int.h"

#include <stdlib.h>
#include <string.h>

/* WAL pages beyond checkpoint_pages at which the writer checkpoints itself. */
#define CKPT_HARD_FACTOR 16

/* Called by SQLite on the writer thread after each commit. */
static int wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
    nana_store *s = arg;
    nana_ckpt *k = &s->ckpt;
    int pages = (int)s->opts.checkpoint_pages;
    if (frames >= CKPT_HARD_FACTOR * pages) {
        sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        return SQLITE_OK;
    }
    if (frames >= pages) {
        pthread_mutex_lock(&k->mu);
        if (!k->pending) {
            k->pending = true;
            pthread_cond_signal(&k->cv);
        }
        pthread_mutex_unlock(&k->mu);
    }
    return SQLITE_OK;
}

static void *ckpt_main(void *arg)
{
    nana_store *s = arg;
    nana_ckpt *k = &s->ckpt;
    pthread_mutex_lock(&k->mu);
    for (;;) {
        while (!k->pending && !k->stop)
            pthread_cond_wait(&k->cv, &k->mu);
        if (k->stop) break;
        k->pending = false;
        pthread_mutex_unlock(&k->mu);
        int log = 0, done = 0;
        int rc =
            sqlite3_wal_checkpoint_v2(k->conn.db, "main", SQLITE_CHECKPOINT_PASSIVE, &log, &done);
        pthread_mutex_lock(&k->mu);
        if (rc == SQLITE_OK) k->runs++;
    }
    pthread_mutex_unlock(&k->mu);
    return NULL;
}

int nana_ckpt_start(nana_store *s)
{
    nana_ckpt *k = &s->ckpt;
    memset(k, 0, sizeof(*k));
    if (s->opts.read_only) return NANA_OK;
    int rc = nana_conn_open(&k->conn, s->path, &s->opts, NANA_CONN_CHECKPOINT);
    if (rc) return rc;
    pthread_mutex_init(&k->mu, NULL);
    pthread_cond_init(&k->cv, NULL);
    if (pthread_create(&k->thread, NULL, ckpt_main, s) != 0) {
        nana_conn_close(&k->conn);
        pthread_mutex_destroy(&k->mu);
        pthread_cond_destroy(&k->cv);
        return nana_err_set(NANA_ERR_NOMEM, "cannot start the checkpoint thread");
    }
    k->started = true;
    sqlite3_wal_hook(s->writer.conn.db, wal_hook, s);
    return NANA_OK;
}

void nana_ckpt_stop(nana_store *s)
{
    nana_ckpt *k = &s->ckpt;
    if (!k->started) return;
    sqlite3_wal_hook(s->writer.conn.db, NULL, NULL);
    pthread_mutex_lock(&k->mu);
    k->stop = true;
    pthread_cond_signal(&k->cv);
    pthread_mutex_unlock(&k->mu);
    pthread_join(k->thread, NULL);
    nana_conn_close(&k->conn);
    pthread_mutex_destroy(&k->mu);
    pthread_cond_destroy(&k->cv);
    k->started = false;
}
