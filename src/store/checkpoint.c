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
 *
 * The WAL only starts over from its beginning when a write transaction
 * finds every frame already copied back, and under a steady stream of
 * commits the checkpointer is always a few commits behind. So once it has
 * copied the bulk, the writer copies the tail itself after its next commit
 * (a few frames): the following transaction restarts the WAL. Without that
 * the WAL stayed past the threshold for good and every commit set off
 * another checkpoint, two fsyncs each (one a commit at a time: ~1.5
 * checkpoints per commit, the WAL growing to the hard bound). The hook
 * also starts the checkpointer only when it is idle, not again for every
 * commit that lands while it runs.
 */
#include "store/store_int.h"

#include <stdlib.h>
#include <string.h>

/* WAL pages beyond checkpoint_pages at which the writer checkpoints itself. */
#define CKPT_HARD_FACTOR 16
/* Frames left by a background checkpoint that the writer copies itself;
 * a longer tail gets another background run first. */
#define CKPT_TAIL_MAX 256

/* nana_ckpt.state: what the checkpointer is doing, for the writer's hook. */
/* Called by SQLite on the writer thread after each commit. */
static int wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
    nana_store *s = arg;
    nana_ckpt *k = &s->ckpt;
    int pages = (int)s->opts.checkpoint_pages;
    atomic_store_explicit(&k->last_frames, frames, memory_order_relaxed);
    int st = atomic_load_explicit(&k->state, memory_order_acquire);
    if (st == NANA_CK_TAIL &&
        frames - atomic_load_explicit(&k->copied, memory_order_relaxed) > CKPT_TAIL_MAX) {
        st = NANA_CK_IDLE; /* many commits landed while it ran: another run first */
        atomic_store_explicit(&k->state, NANA_CK_IDLE, memory_order_release);
    }
    if (frames >= CKPT_HARD_FACTOR * pages || st == NANA_CK_TAIL) {
        sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        if (st == NANA_CK_TAIL)
            atomic_store_explicit(&k->state, NANA_CK_IDLE, memory_order_release);
        atomic_fetch_add_explicit(st == NANA_CK_TAIL ? &k->tails : &k->forced, 1,
                                  memory_order_relaxed);
        return SQLITE_OK;
    }
    if (frames >= pages && st == NANA_CK_IDLE) {
        atomic_store_explicit(&k->state, NANA_CK_BUSY, memory_order_release);
        pthread_mutex_lock(&k->mu);
        k->pending = true;
        pthread_cond_signal(&k->cv);
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
        int log = 0;
        int rc =
            sqlite3_wal_checkpoint_v2(k->conn.db, "main", SQLITE_CHECKPOINT_PASSIVE, &log, NULL);
        /* Frames committed after it began are left (it saw the WAL as it
         * was then: |log| frames): the writer copies them if they are few,
         * which is next to free when there are none. */
        int prim = rc & 0xff;
        if (prim == SQLITE_CORRUPT || prim == SQLITE_NOTADB)
            nana_conn_err(&k->conn, rc, "checkpoint");
        atomic_store_explicit(&k->copied, rc == SQLITE_OK ? log : 0, memory_order_relaxed);
        /* Counted before the writer can see the run (and copy its tail). */
        if (rc == SQLITE_OK) atomic_fetch_add_explicit(&k->runs, 1, memory_order_relaxed);
        atomic_store_explicit(&k->state, rc == SQLITE_OK ? NANA_CK_TAIL : NANA_CK_IDLE,
                              memory_order_release);
        pthread_mutex_lock(&k->mu);
    }
    pthread_mutex_unlock(&k->mu);
    return NULL;
}

int nana_ckpt_start(nana_store *s)
{
    nana_ckpt *k = &s->ckpt;
    memset(k, 0, sizeof(*k));
    atomic_init(&k->state, NANA_CK_IDLE);
    atomic_init(&k->copied, 0);
    atomic_init(&k->runs, 0);
    atomic_init(&k->tails, 0);
    atomic_init(&k->forced, 0);
    atomic_init(&k->last_frames, 0);
    if (s->opts.read_only) return NANA_OK;
    int rc = nana_conn_open(&k->conn, s->path, &s->opts, NANA_CONN_CHECKPOINT);
    if (rc) return rc;
    k->conn.store = s;
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
