/*
 * shard.c - an endpoint's presence on one loop: its lists of connections,
 * the before-sleep hook that writes and frees them, the kick timer, and
 * its end (the endpoint deleted, or the loop stopping: the exit hook).
 *
 * The hook works its lists until they are empty (bounded rounds): writing
 * can make the layer above queue more (writable), freeing can make it close
 * others (conn_close). What another hook queues after ours ran is caught
 * by the kick timer, armed for now, so the loop does not sleep on it.
 */
#include "tcp/tcp_int.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HOOK_ROUNDS 16

/* Stops the loop's calls into |sh|: hooks and timers (loop thread). */
static void detach(nana_tcp_shard *sh)
{
    if (!sh->attached) return;
    nana_loop_hook_del(sh->loop, &sh->hook);
    nana_loop_exit_hook_del(sh->loop, &sh->bye);
    nana_loop_timer_stop(sh->loop, &sh->kick);
    nana_loop_timer_stop(sh->loop, &sh->pause);
    sh->attached = false;
}

/* Frees dead |c|; true when that freed a client's endpoint (and |sh|). */
static bool reap(nana_tcp_shard *sh, nana_tcp_conn *c)
{
    nana_tcp_conn_free(c);
    if (sh->ep->server) return false;
    detach(sh);
    nana_tcp_client_ep_free(sh->ep);
    return true;
}

/* Before the loop sleeps: write what was queued, free what closed. */
static void on_hook(nana_loop *loop, nana_loop_hook *hook)
{
    (void)loop;
    nana_tcp_shard *sh = NANA_TCP_OF(hook, nana_tcp_shard, hook);
    for (int round = 0; round < HOOK_ROUNDS; round++) {
        bool any = false;
        while (!nana_tcp_list_empty(&sh->dirty)) {
            nana_tcp_conn *c = NANA_TCP_OF(sh->dirty.next, nana_tcp_conn, dirty);
            nana_tcp_list_del(&c->dirty);
            nana_tcp_conn_flush(c);
            any = true;
        }
        while (!nana_tcp_list_empty(&sh->dead)) {
            nana_tcp_conn *c = NANA_TCP_OF(sh->dead.next, nana_tcp_conn, dead);
            if (reap(sh, c)) return;
            any = true;
        }
        if (!any) break;
    }
    if (nana_tcp_list_empty(&sh->dirty) && nana_tcp_list_empty(&sh->dead) &&
        nana_tcp_list_empty(&sh->more))
        nana_loop_timer_stop(sh->loop, &sh->kick);
    else
        nana_tcp_shard_kick(sh);
}

/* The kick: connections with more to read get their next budget (the
 * hook that follows does the rest). */
static void on_kick(nana_loop *loop, nana_loop_timer *t)
{
    (void)loop;
    nana_tcp_shard *sh = NANA_TCP_OF(t, nana_tcp_shard, kick);
    if (nana_tcp_list_empty(&sh->more)) return;
    /* Take the list as it is: a connection that uses its budget again is
     * put back for the next kick. */
    nana_tcp_link todo = {sh->more.prev, sh->more.next};
    todo.next->prev = &todo;
    todo.prev->next = &todo;
    nana_tcp_list_init(&sh->more);
    while (!nana_tcp_list_empty(&todo)) {
        nana_tcp_conn *c = NANA_TCP_OF(todo.next, nana_tcp_conn, more);
        nana_tcp_list_del(&c->more);
        nana_tcp_conn_read_more(c);
    }
}

/* Accepting resumes after a pause (out of descriptors). */
static void on_pause_end(nana_loop *loop, nana_loop_timer *t)
{
    nana_tcp_shard *sh = NANA_TCP_OF(t, nana_tcp_shard, pause);
    if (sh->lfd < 0 || sh->lwatched || !atomic_load(&sh->ep->accepting)) return;
    if (nana_loop_fd_add(loop, &sh->lsrc, sh->lfd, EPOLLIN, nana_tcp_on_listen) == 0)
        sh->lwatched = true;
    else
        nana_loop_timer_start(loop, &sh->pause,
                              nana_loop_now(loop) + NANA_TCP_PAUSE_MS * NANA_TCP_MS);
}

/* The loop stops: every connection on it closes now. */
static void on_exit_hook(nana_loop *loop, nana_loop_hook *hook)
{
    (void)loop;
    nana_tcp_shard *sh = NANA_TCP_OF(hook, nana_tcp_shard, bye);
    nana_tcp_ep *ep = sh->ep;
    if (nana_tcp_shard_close_all(sh)) return;
    pthread_mutex_lock(&sh->mu);
    sh->closed = true;
    pthread_mutex_unlock(&sh->mu);
    pthread_mutex_lock(&ep->mu);
    sh->done = true;
    pthread_cond_broadcast(&ep->cv);
    pthread_mutex_unlock(&ep->mu);
}

int nana_tcp_shard_init(nana_tcp_shard *sh, nana_tcp_ep *ep, nana_loop *loop, unsigned index)
{
    memset(sh, 0, sizeof(*sh));
    sh->ep = ep;
    sh->loop = loop;
    sh->index = index;
    sh->lfd = -1;
    pthread_mutex_init(&sh->mu, NULL);
    nana_loop_timer_init(&sh->kick, on_kick);
    nana_loop_timer_init(&sh->pause, on_pause_end);
    sh->hook.fn = on_hook;
    sh->bye.fn = on_exit_hook;
    nana_tcp_list_init(&sh->all);
    nana_tcp_list_init(&sh->dirty);
    nana_tcp_list_init(&sh->dead);
    nana_tcp_list_init(&sh->more);
    sh->nbuckets = 64;
    sh->buckets = calloc(sh->nbuckets, sizeof(*sh->buckets));
    sh->rx = malloc(NANA_TCP_RXBUF);
    if (!sh->buckets || !sh->rx) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    return NANA_OK;
}

void nana_tcp_shard_attach(nana_tcp_shard *sh)
{
    nana_loop_hook_add(sh->loop, &sh->hook);
    nana_loop_exit_hook_add(sh->loop, &sh->bye);
    sh->attached = true;
}

void nana_tcp_shard_kick(nana_tcp_shard *sh)
{
    if (!sh->attached || nana_loop_timer_armed(&sh->kick)) return;
    nana_loop_timer_start(sh->loop, &sh->kick, nana_loop_now(sh->loop));
}

void nana_tcp_shard_unlisten(nana_tcp_shard *sh)
{
    if (sh->lwatched) (void)nana_loop_fd_del(sh->loop, &sh->lsrc);
    sh->lwatched = false;
    nana_loop_timer_stop(sh->loop, &sh->pause);
    if (sh->lfd >= 0) close(sh->lfd);
    sh->lfd = -1;
}

bool nana_tcp_shard_close_all(nana_tcp_shard *sh)
{
    nana_tcp_shard_unlisten(sh);
    for (nana_tcp_link *l = sh->all.next; l != &sh->all; l = l->next)
        nana_tcp_conn_kill(NANA_TCP_OF(l, nana_tcp_conn, all), "the endpoint closed");
    while (!nana_tcp_list_empty(&sh->dead)) {
        nana_tcp_conn *c = NANA_TCP_OF(sh->dead.next, nana_tcp_conn, dead);
        if (reap(sh, c)) return true;
    }
    detach(sh);
    return false;
}

void nana_tcp_shard_free(nana_tcp_shard *sh)
{
    if (sh->lfd >= 0) close(sh->lfd);
    sh->lfd = -1;
    free(sh->buckets);
    free(sh->rx);
    free(sh->victims);
    sh->buckets = NULL;
    sh->rx = NULL;
    sh->victims = NULL;
    pthread_mutex_destroy(&sh->mu);
}
