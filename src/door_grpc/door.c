/*
 * door.c - the gRPC door as a whole: its options, the budget of request
 * bytes its calls hold, and its counters.
 */
#include "door_grpc/gdoor_int.h"

#include "util/nana_time.h"

#include "util/nana_mem.h"

#include <string.h>

void nana_gdoor_opts_init(nana_gdoor_opts *o)
{
    memset(o, 0, sizeof(*o));
    nana_grpc_limits_default(&o->lim);
    o->max_conn_bytes = (size_t)50 * 1024 * 1024;
    o->max_buffered_bytes = (size_t)512 * 1024 * 1024;
    o->auth_skew_s = 300;
    o->request_idle_ms = 10000;
    o->request_timeout_ms = 120000;
    o->reply_stall_ms = 30000;
    o->ban_seconds = 900;
    o->ban_failures = 3;
    o->aql_batch_bytes = 65536;
    o->aql_window_bytes = (size_t)1 << 20;
    o->aql_max_inflight = 64;
}

int nana_gdoor_new(nana_core *core, const nana_gdoor_opts *o, nana_quic_ep *ep,
                   const nana_door_accounts *accounts, nana_ban *ban, nana_gdoor **out)
{
    *out = NULL;
    nana_gdoor *d = nana_calloc(1, sizeof(*d));
    if (!d) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    nana_gdoor_opts def;
    nana_gdoor_opts_init(&def);
    d->o = *o;
    if (!d->o.lim.max_header_bytes) d->o.lim.max_header_bytes = def.lim.max_header_bytes;
    if (!d->o.lim.max_header_fields) d->o.lim.max_header_fields = def.lim.max_header_fields;
    if (!d->o.lim.max_message_bytes) d->o.lim.max_message_bytes = def.lim.max_message_bytes;
    if (!d->o.max_conn_bytes) d->o.max_conn_bytes = def.max_conn_bytes;
    if (!d->o.max_buffered_bytes) d->o.max_buffered_bytes = def.max_buffered_bytes;
    if (!d->o.auth_skew_s) d->o.auth_skew_s = def.auth_skew_s;
    if (!d->o.request_idle_ms) d->o.request_idle_ms = def.request_idle_ms;
    if (!d->o.request_timeout_ms) d->o.request_timeout_ms = def.request_timeout_ms;
    if (!d->o.reply_stall_ms) d->o.reply_stall_ms = def.reply_stall_ms;
    if (!d->o.aql_batch_bytes) d->o.aql_batch_bytes = def.aql_batch_bytes;
    if (!d->o.aql_window_bytes) d->o.aql_window_bytes = def.aql_window_bytes;
    if (!d->o.aql_max_inflight) d->o.aql_max_inflight = def.aql_max_inflight;
    d->started_ns = nana_now_ns();
    d->core = core;
    d->ep = ep;
    d->acc = *accounts;
    d->ban = ban;
    d->nloops = ep ? nana_quic_ep_nloops(ep) : 0;
    if (d->nloops) {
        d->loops = nana_calloc(d->nloops, sizeof(*d->loops));
        if (!d->loops) {
            nana_free(d);
            return nana_err_set(NANA_ERR_NOMEM, "out of memory");
        }
        for (unsigned i = 0; i < d->nloops; i++) {
            d->loops[i].d = d;
            d->loops[i].loop = nana_quic_ep_loop(ep, i);
        }
    }
    nana_gdoor_h3_app(d);
    d->h2lim = d->o.h2;
    int rc = nana_gdoor_h2_init(d);
    if (rc) {
        nana_free(d->loops);
        nana_free(d);
        return rc;
    }
    *out = d;
    return NANA_OK;
}

void nana_gdoor_free(nana_gdoor *d)
{
    if (!d) return;
    nana_gdoor_h2_free(d);
    nana_free(d->loops);
    nana_free(d);
}

/* On an I/O thread (|loop| NULL: the loop ended first, nothing to do). */
static void drain_run(nana_loop *loop, struct nana_loop_post *lp)
{
    gloop *gl = (gloop *)(void *)((char *)lp - offsetof(gloop, drain_post));
    if (loop) nana_gdoor_drain_loop(gl);
}

void nana_gdoor_drain(nana_gdoor *d)
{
    if (!d || atomic_exchange(&d->draining, true)) return;
    for (unsigned i = 0; i < d->nloops; i++) {
        d->loops[i].drain_post.run = drain_run;
        nana_loop_post(d->loops[i].loop, &d->loops[i].drain_post);
    }
}

void nana_gdoor_get_stats(nana_gdoor *d, nana_gdoor_stats *out)
{
    out->calls = atomic_load(&d->st_calls);
    out->auth_ok = atomic_load(&d->st_auth_ok);
    out->auth_failed = atomic_load(&d->st_auth_failed);
    out->refused = atomic_load(&d->st_refused);
    out->cancelled = atomic_load(&d->st_cancelled);
    out->buffered_bytes = atomic_load(&d->buffered);
}

bool nana_gdoor_reserve(gcall *c, size_t n)
{
    nana_gdoor *d = c->d;
    gconn *g = c->conn;
    if (!g || g->buffered + n > d->o.max_conn_bytes) return false;
    size_t before = atomic_fetch_add(&d->buffered, n);
    if (before + n > d->o.max_buffered_bytes) {
        atomic_fetch_sub(&d->buffered, n);
        return false;
    }
    g->buffered += n;
    c->reserved += n;
    return true;
}

void nana_gdoor_unreserve(gcall *c)
{
    if (!c->reserved) return;
    atomic_fetch_sub(&c->d->buffered, c->reserved);
    c->reserved = 0;
}
