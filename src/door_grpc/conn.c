/*
 * conn.c - what every connection of the gRPC door shares, whatever carries
 * it (HTTP/3 on QUIC in h3conn.c, HTTP/2 on TCP in h2conn.c): the list of
 * connections on each I/O thread, the deadlines of unfinished requests,
 * answers coming back from the store's threads, a cancelled call, and the
 * server's graceful stop. The transport is reached through g->tp only.
 */
#include "door_grpc/gdoor_int.h"

#include "util/nana_log.h"

#include <stddef.h>

/* ---- answers ------------------------------------------------------------------- */

void nana_gdoor_respond(gcall *c)
{
    if (c->conn) c->conn->tp->respond(c);
}

void nana_gdoor_resume(gcall *c)
{
    if (!c->responded || c->body_eof) { /* the head, or the trailers, go too */
        nana_gdoor_respond(c);
        return;
    }
    if (c->conn) c->conn->tp->resume(c);
}

void nana_gdoor_respond_http(gcall *c, int http_status)
{
    if (c->conn) c->conn->tp->respond_http(c, http_status);
}

void nana_gdoor_reset(gcall *c, uint64_t code)
{
    if (c->conn) c->conn->tp->reset(c, code);
}

void nana_gdoor_call_cancelled(gcall *c)
{
    if (c->in_core && nana_core_cancel(c->d->core, &c->core)) {
        c->in_core = false;
        atomic_fetch_add(&c->d->st_cancelled, 1);
    }
    /* A call the core is running is answered by one of its threads, which
     * writes the answer's fields: leave them to it (its answer, delivered
     * here, finds the call cancelled and sends nothing). */
    if (!c->in_core) c->answered = true;
    c->cancelled = true;
}

/* On the connection's loop: the answer the store's threads made goes out
 * (|loop| NULL: the loop ended first; the call is only released). */
static void deliver(nana_loop *loop, struct nana_loop_post *lp)
{
    gcall *c = (gcall *)(void *)((char *)lp - offsetof(gcall, lp));
    if (loop && c->conn) {
        c->in_core = false;
        if (!c->cancelled) nana_gdoor_respond(c); /* else its stream was reset */
    }
    nana_gcall_unref(c);
}

void nana_gdoor_post_answer(gcall *c)
{
    atomic_fetch_add(&c->refs, 1);
    c->lp.run = deliver;
    nana_loop_post(c->loop, &c->lp);
}

/* ---- the connections of a thread ------------------------------------------------- */

void nana_gdoor_conn_end_watches(gconn *g)
{
    for (gcall *c = g->calls, *next; c; c = next) {
        next = c->next;
        if (c->gm && c->gm->kind == G_HEALTH_WATCH) nana_gdoor_watch_end(c);
    }
}

void nana_gdoor_drain_loop(gloop *gl)
{
    gl->draining = true;
    for (gconn *g = gl->conns; g; g = g->lnext)
        g->tp->drain(g);
}

/* |loop|'s part of the door (NULL for an endpoint without threads). */
static gloop *gloop_of(nana_gdoor *d, const nana_loop *loop)
{
    for (unsigned i = 0; i < d->nloops; i++)
        if (d->loops[i].loop == loop) return &d->loops[i];
    return NULL;
}

void nana_gdoor_conn_add(gconn *g)
{
    g->gl = gloop_of(g->d, g->loop);
    if (g->gl) {
        g->lnext = g->gl->conns;
        if (g->lnext) g->lnext->lprev = g;
        g->gl->conns = g;
    }
    nana_log(NANA_LOG_INFO, "grpc conn %llu open from %s (%s)", (unsigned long long)g->handle,
             g->peer, g->tp->name);
    nana_gdoor_auth_open(g);
    if (g->gl && g->gl->draining) g->tp->drain(g);
}

void nana_gdoor_conn_remove(gconn *g)
{
    if (g->gl) {
        if (g->lprev)
            g->lprev->lnext = g->lnext;
        else
            g->gl->conns = g->lnext;
        if (g->lnext) g->lnext->lprev = g->lprev;
        g->gl = NULL;
    }
    while (g->calls)
        nana_gcall_detach(g->calls);
    nana_log(NANA_LOG_INFO, "grpc conn %llu closed from %s (%s%s%s)", (unsigned long long)g->handle,
             g->peer, g->auth.authed ? "account '" : "not authenticated",
             g->auth.authed ? g->auth.name : "", g->auth.authed ? "'" : "");
    nana_gdoor_auth_free(g);
}

/* ---- unfinished requests ---------------------------------------------------------- */

/* How often a connection with unfinished requests looks at them: half the
 * shorter limit, at most every 500 ms (a request is refused at most that
 * late), at least every 10 ms. */
static uint64_t watch_period_ns(const nana_gdoor *d)
{
    unsigned ms = d->o.request_idle_ms < d->o.request_timeout_ms ? d->o.request_idle_ms
                                                                 : d->o.request_timeout_ms;
    ms = ms > 1000 ? 1000 : ms;
    ms = ms / 2 < 10 ? 10 : ms / 2;
    return (uint64_t)ms * 1000000ull;
}

void nana_gdoor_watch(gconn *g)
{
    if (g->timer_armed) return;
    g->timer_armed = true;
    g->tp->set_timer(g, g->tp->now(g) + watch_period_ns(g->d));
}

/*
 * A request that has not ended within request_timeout_ms of its first
 * header field, or brought no bytes for request_idle_ms, is refused
 * (DEADLINE_EXCEEDED, Trailers-Only; the rest of it is not read). Its
 * call never ran: calls run when their request ends.
 */
void nana_gdoor_conn_tick(gconn *g)
{
    g->timer_armed = false;
    uint64_t now = g->tp->now(g);
    uint64_t idle = (uint64_t)g->d->o.request_idle_ms * 1000000ull;
    uint64_t whole = (uint64_t)g->d->o.request_timeout_ms * 1000000ull;
    bool pending = false;
    for (gcall *c = g->calls, *next; c; c = next) {
        next = c->next;            /* failing a call may end its stream */
        if (!c->t_start) continue; /* its request ended (it may be in the core) */
        if (c->answered) {         /* refused early: answered on this thread */
            c->t_start = 0;
            continue;
        }
        if (now - c->t_start >= whole)
            nana_gcall_fail(c, NANA_GRPC_DEADLINE_EXCEEDED,
                            "the request was not whole within %u ms (the server's limit)",
                            g->d->o.request_timeout_ms);
        else if (now - c->t_last >= idle)
            nana_gcall_fail(c, NANA_GRPC_DEADLINE_EXCEEDED,
                            "no bytes of the request for %u ms (the server's limit)",
                            g->d->o.request_idle_ms);
        else
            pending = true;
    }
    if (pending) nana_gdoor_watch(g);
}
