/*
 * pool.c - several connections to one server behind one call interface.
 *
 * Every call goes to the authenticated connection with the fewest calls
 * pending; when all have max_calls_per_conn pending, another connection is
 * opened (up to max_conns) and the call waits for it. The upkeep (on the
 * runtime's maintenance thread, every health_interval_ms) closes idle
 * connections above min_conns, retires connections past their lifetime
 * once their calls are done, and opens connections back up to min_conns.
 * Health: QUIC keep-alive PINGs run on every connection; one that stops
 * answering is closed by its idle timeout and reconnects, and is not chosen
 * while it does.
 *
 * Circuit breaker: breaker_failures connection attempts failing in a row
 * open it: calls fail at once with EBREAKER and no connection is attempted.
 * After breaker_open_ms it is half-open: one connection attempt (the probe)
 * may run. Its success closes the breaker; its failure opens it again.
 * The breaker's state is atomic so the connections can consult it without
 * the pool's lock.
 */
#include "client_int.h"

#include <arpa/inet.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct nana_pool {
    nc_rt *rt;
    nana_client_opts o;
    char *server_name, *account; /* owned copies behind o's pointers */
    nana_pool_opts po;
    char addr[INET6_ADDRSTRLEN];
    nc_key key;
    nc_pool_hooks hooks;
    pthread_mutex_t mu;
    nana_client **conns;
    bool *retiring;
    unsigned n, cap;
    bool closing;
    bool opening;         /* nana_pool_open has not finished: no upkeep yet */
    atomic_int breaker;   /* nana_breaker_state */
    atomic_uint failures; /* connection attempts failed in a row */
    atomic_uint_fast64_t open_until;
    atomic_bool probe_out; /* half-open: the probe attempt has started */
    /* stats (pool lock) */
    uint64_t opened, closed_idle, closed_lifetime;
    atomic_uint_fast64_t connect_failures, breaker_trips;
};

void nana_pool_opts_init(nana_pool_opts *p)
{
    memset(p, 0, sizeof(*p));
    p->min_conns = 1;
    p->max_conns = 8;
    p->max_calls_per_conn = 128;
    p->idle_ms = 60000;
    p->lifetime_ms = 0;
    p->health_interval_ms = 1000;
    p->breaker_failures = 5;
    p->breaker_open_ms = 5000;
}

/* ---- the breaker (called by connections, no locks held by them) ------------ */

static int may_connect(void *arg, nana_client *c)
{
    (void)c;
    nana_pool *p = arg;
    int b = atomic_load(&p->breaker);
    if (b == NANA_BREAKER_CLOSED) return 1;
    if (b == NANA_BREAKER_OPEN) return 0;
    bool expected = false; /* half-open: exactly one probe */
    return atomic_compare_exchange_strong(&p->probe_out, &expected, true) ? 1 : 0;
}

static void attempt_done(void *arg, nana_client *c, int ok)
{
    (void)c;
    nana_pool *p = arg;
    if (ok) {
        atomic_store(&p->failures, 0);
        atomic_store(&p->breaker, NANA_BREAKER_CLOSED);
        atomic_store(&p->probe_out, false);
        return;
    }
    atomic_fetch_add(&p->connect_failures, 1);
    unsigned f = atomic_fetch_add(&p->failures, 1) + 1;
    int b = atomic_load(&p->breaker);
    if (b == NANA_BREAKER_HALF_OPEN || (b == NANA_BREAKER_CLOSED && f >= p->po.breaker_failures)) {
        atomic_store(&p->open_until, nana_now_ns() + (uint64_t)p->po.breaker_open_ms * 1000000ull);
        atomic_store(&p->breaker, NANA_BREAKER_OPEN);
        atomic_store(&p->probe_out, false);
        if (b == NANA_BREAKER_CLOSED) atomic_fetch_add(&p->breaker_trips, 1);
    }
}

/* ---- connections ----------------------------------------------------------------- */

/* Opens one more connection (not waiting for it). Pool lock held. */
static nana_client *add_conn(nana_pool *p, nana_result *err)
{
    if (p->n == p->cap) {
        unsigned cap = p->cap ? p->cap * 2 : 8;
        nana_client **v = realloc(p->conns, cap * sizeof(*v));
        if (!v) return NULL;
        p->conns = v;
        bool *r = realloc(p->retiring, cap * sizeof(*r));
        if (!r) return NULL;
        p->retiring = r;
        p->cap = cap;
    }
    nana_client *c = NULL;
    if (nc_client_new(p->rt, &p->o, p->addr, &p->key, &p->hooks, &c, err)) return NULL;
    p->conns[p->n] = c;
    p->retiring[p->n] = false;
    p->n++;
    p->opened++;
    return c;
}

/* Takes connection |i| out of the array (the caller frees it unlocked). */
static nana_client *take_conn(nana_pool *p, unsigned i)
{
    nana_client *c = p->conns[i];
    memmove(&p->conns[i], &p->conns[i + 1], (p->n - i - 1) * sizeof(*p->conns));
    memmove(&p->retiring[i], &p->retiring[i + 1], (p->n - i - 1) * sizeof(*p->retiring));
    p->n--;
    return c;
}

/* The upkeep, on the maintenance thread. */
static void pool_tick(void *arg)
{
    nana_pool *p = arg;
    uint64_t now = nana_now_ns();
    nana_client *drop[64];
    unsigned ndrop = 0;
    pthread_mutex_lock(&p->mu);
    if (p->closing || p->opening) {
        pthread_mutex_unlock(&p->mu);
        return;
    }
    if (atomic_load(&p->breaker) == NANA_BREAKER_OPEN && now >= atomic_load(&p->open_until)) {
        atomic_store(&p->probe_out, false);
        atomic_store(&p->breaker, NANA_BREAKER_HALF_OPEN);
        for (unsigned i = 0; i < p->n; i++)
            nc_client_kick(p->conns[i]); /* the first to try is the probe */
    }
    unsigned live = 0;
    for (unsigned i = 0; i < p->n && ndrop < 64;) {
        nc_client_info in;
        nc_client_info_get(p->conns[i], &in);
        bool old =
            p->po.lifetime_ms && now - in.created_ns > (uint64_t)p->po.lifetime_ms * 1000000ull;
        if (old) p->retiring[i] = true;
        /* A connection in the middle of an attempt stays until it ends (it
         * may be the breaker's probe, whose outcome the breaker waits for). */
        if (in.connecting) {
            if (!p->retiring[i]) live++;
            i++;
            continue;
        }
        if (p->retiring[i] && in.pending == 0) {
            drop[ndrop++] = take_conn(p, i);
            p->closed_lifetime++;
            continue;
        }
        bool idle = in.pending == 0 && now - in.last_used_ns > (uint64_t)p->po.idle_ms * 1000000ull;
        if (!p->retiring[i] && idle && p->n > p->po.min_conns && live >= p->po.min_conns) {
            drop[ndrop++] = take_conn(p, i);
            p->closed_idle++;
            continue;
        }
        if (!p->retiring[i]) live++;
        i++;
    }
    /* Back up to min_conns (in half-open, the first new one is the probe). */
    while (live < p->po.min_conns && p->n < p->po.max_conns &&
           atomic_load(&p->breaker) != NANA_BREAKER_OPEN) {
        nana_result err = {0};
        bool ok = add_conn(p, &err) != NULL;
        nana_result_free(&err);
        if (!ok) break;
        live++;
    }
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < ndrop; i++)
        nc_client_free(drop[i]);
}

/* Picks the connection for a new call. Pool lock held. The least-loaded
 * authenticated connection with room; when all are full, a new one (up to
 * max_conns); while none is authenticated (a reconnect), the call waits on
 * an existing one rather than opening more. */
static nana_client *choose(nana_pool *p, nana_result *err)
{
    nana_client *best = NULL, *any = NULL;
    unsigned best_pending = UINT32_MAX, any_pending = UINT32_MAX;
    for (unsigned i = 0; i < p->n; i++) {
        if (p->retiring[i]) continue;
        nc_client_info in;
        nc_client_info_get(p->conns[i], &in);
        if (in.ready && in.pending < best_pending) {
            best = p->conns[i];
            best_pending = in.pending;
        }
        if (in.pending < any_pending) {
            any = p->conns[i];
            any_pending = in.pending;
        }
    }
    if (best && best_pending < p->po.max_calls_per_conn) return best;
    bool closed = atomic_load(&p->breaker) == NANA_BREAKER_CLOSED;
    if ((best || !any) && p->n < p->po.max_conns && closed) return add_conn(p, err);
    if (any && any_pending < p->po.max_calls_per_conn) return any;
    if (!closed)
        nc_result_set(err, NANA_CLIENT_EBREAKER,
                      "the circuit breaker is half-open: its probe connection is being tried");
    else
        nc_result_set(err, NANA_CLIENT_EBUSY,
                      "the pool is exhausted: %u connections with %u calls pending each", p->n,
                      p->po.max_calls_per_conn);
    return NULL;
}

/* ---- the public face -------------------------------------------------------------- */

/* A submission on the pool (with the lock held so the chosen connection
 * cannot be retired under it). */
int nc_pool_submit(void *ctx, nana_client_done_fn done, void *ud, nana_result *err)
{
    nc_call_args *a = ctx;
    nana_pool *p = a->target;
    if (atomic_load(&p->breaker) == NANA_BREAKER_OPEN)
        return nc_result_error(err, NANA_CLIENT_EBREAKER,
                               "the circuit breaker is open after %u failed connection attempts",
                               atomic_load(&p->failures));
    pthread_mutex_lock(&p->mu);
    int rc;
    if (p->closing) {
        rc = nc_result_error(err, NANA_CLIENT_ECLOSED, "the pool is closed");
    } else {
        nana_client *c = choose(p, err);
        rc = c             ? nc_submit(c, a, done, ud, 0, err)
             : err->status ? err->status
                           : nc_result_error(err, NANA_CLIENT_ENOMEM, "out of memory");
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

int nana_pool_call(nana_pool *p, const char *method, const char *args_json, const char *kwargs_json,
                   const nana_call_opts *co, nana_result *out)
{
    nc_call_args a = {
        .target = p, .method = method, .args = args_json, .kwargs = kwargs_json, .co = co};
    return nc_blocking(nc_pool_submit, &a, out);
}

int nana_pool_get(nana_pool *p, const char *key, const nana_call_opts *co, nana_result *out)
{
    nc_call_args a = {.target = p, .kind = NC_GET, .key = key, .co = co};
    return nc_blocking(nc_pool_submit, &a, out);
}

int nana_pool_set(nana_pool *p, const char *key, const char *value_json, const nana_call_opts *co,
                  nana_result *out)
{
    nc_call_args a = {.target = p, .kind = NC_SET, .key = key, .value = value_json, .co = co};
    return nc_blocking(nc_pool_submit, &a, out);
}

int nana_pool_delete(nana_pool *p, const char *key, const nana_call_opts *co, nana_result *out)
{
    nc_call_args a = {.target = p, .kind = NC_DELETE, .key = key, .co = co};
    return nc_blocking(nc_pool_submit, &a, out);
}

int nana_pool_submit(nana_pool *p, const char *method, const char *args_json,
                     const char *kwargs_json, const nana_call_opts *co, nana_client_done_fn done,
                     void *ud)
{
    if (!done) return NANA_CLIENT_EINVALID;
    nc_call_args a = {
        .target = p, .method = method, .args = args_json, .kwargs = kwargs_json, .co = co};
    nana_result err = {0};
    int rc = nc_pool_submit(&a, done, ud, &err);
    nana_result_free(&err);
    return rc;
}

int nana_pool_open(const nana_client_opts *o, const nana_pool_opts *po, nana_pool **out,
                   nana_result *err)
{
    nana_result tmp = {0};
    if (!err) err = &tmp;
    memset(err, 0, sizeof(*err));
    *out = NULL;
    nana_client_opts d;
    nana_client_opts_init(&d);
    if (!o) o = &d;
    nana_pool_opts dp;
    nana_pool_opts_init(&dp);
    if (!po) po = &dp;
    if (po->max_conns == 0 || po->min_conns > po->max_conns || po->max_calls_per_conn == 0)
        return nc_result_error(err, NANA_CLIENT_EINVALID,
                               "pool options: need 0 < max_conns, min_conns <= max_conns and "
                               "max_calls_per_conn > 0");
    nana_pool *p = calloc(1, sizeof(*p));
    if (!p) return nc_result_error(err, NANA_CLIENT_ENOMEM, "out of memory");
    pthread_mutex_init(&p->mu, NULL);
    p->o = *o;
    p->po = *po;
    if (!p->po.breaker_failures) p->po.breaker_failures = 1;
    if (!p->po.health_interval_ms) p->po.health_interval_ms = 1000;
    p->server_name = o->server_name ? strdup(o->server_name) : NULL;
    p->account = o->account ? strdup(o->account) : NULL;
    p->o.server_name = p->server_name;
    p->o.account = p->account;
    p->hooks = (nc_pool_hooks){.attempt = attempt_done, .may_connect = may_connect, .pool = p};
    /* Set before the maintenance thread starts (it reads it under the lock):
     * no upkeep until the first connections are made. */
    p->opening = true;
    int family = AF_INET;
    int rc = (o->server_name && !p->server_name) || (o->account && !p->account)
                 ? nc_result_error(err, NANA_CLIENT_ENOMEM, "out of memory")
                 : nc_load_target(o, &p->key, p->addr, &family, err);
    if (!rc) rc = nc_rt_new(o, family, pool_tick, p, p->po.health_interval_ms, &p->rt, err);
    nana_client *first = NULL;
    if (!rc) {
        pthread_mutex_lock(&p->mu);
        unsigned want = p->po.min_conns ? p->po.min_conns : 1;
        for (unsigned i = 0; i < want && !rc; i++) {
            nana_client *c = add_conn(p, err);
            if (!c) rc = err->status ? err->status : NANA_CLIENT_ENOMEM;
            if (!first) first = c;
        }
        pthread_mutex_unlock(&p->mu);
    }
    if (!rc) rc = nc_client_wait_ready(first, nc_opt_ms(o->connect_timeout_ms, 10000) + 1000, err);
    pthread_mutex_lock(&p->mu);
    p->opening = false;
    pthread_mutex_unlock(&p->mu);
    if (rc) {
        nana_pool_close(p);
        nana_result_free(&tmp);
        return rc;
    }
    *out = p;
    return NANA_CLIENT_OK;
}

void nana_pool_close(nana_pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->closing = true;
    pthread_mutex_unlock(&p->mu);
    nc_rt_stop(p->rt); /* no upkeep runs from here on */
    pthread_mutex_lock(&p->mu);
    nana_client **conns = p->conns;
    unsigned n = p->n;
    p->conns = NULL;
    p->n = p->cap = 0;
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < n; i++)
        nc_client_free(conns[i]);
    free(conns);
    nc_rt_free(p->rt);
    free(p->retiring);
    free(p->server_name);
    free(p->account);
    sodium_memzero(&p->key, sizeof(p->key));
    pthread_mutex_destroy(&p->mu);
    free(p);
}

void nana_pool_stats_get(nana_pool *p, nana_pool_stats *out)
{
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&p->mu);
    for (unsigned i = 0; i < p->n; i++) {
        nc_client_info in;
        nc_client_info_get(p->conns[i], &in);
        out->conns += in.ready;
        out->in_flight += in.pending;
    }
    out->opened = p->opened;
    out->closed_idle = p->closed_idle;
    out->closed_lifetime = p->closed_lifetime;
    pthread_mutex_unlock(&p->mu);
    out->breaker = atomic_load(&p->breaker);
    out->connect_failures = atomic_load(&p->connect_failures);
    out->breaker_trips = atomic_load(&p->breaker_trips);
}
