/*
 * pool.c - several connections to one server, or to the nodes of a
 * cluster, behind one call interface.
 *
 * Every call goes to the authenticated connection with the fewest calls
 * pending (with several nodes, the nodes of equally loaded ones take
 * turns, so they share the work); when all have max_calls_per_conn pending, another
 * connection is opened (up to max_conns) and the call waits for it. The
 * upkeep (on the runtime's maintenance thread, every health_interval_ms)
 * closes idle connections above min_conns, retires connections past their
 * lifetime once their calls are done, and opens connections back up to
 * min_conns. Health: QUIC keep-alive PINGs run on every connection; one
 * that stops answering is closed by its idle timeout and reconnects, and
 * is not chosen while it does.
 *
 * Nodes (nana_pool_opts.nodes). Each connection belongs to one node for
 * its whole life (it reconnects to it). A new connection goes to the node
 * with the fewest connections, in turn, among the nodes whose last
 * connection attempt did not fail within breaker_open_ms (all nodes when
 * every one did). A connection whose attempt failed, while another node
 * is available, is given up at the next upkeep (once its calls are done)
 * and so replaced on another node. A node that has fewer connections than
 * another by two or more gets one more (one move at a time), and once that
 * one is authenticated a connection of the most crowded node retires: so
 * connections come back to a node that returns, and a node that is still
 * down is tried once per breaker_open_ms.
 *
 * Circuit breaker: each node counts its connection attempts failing in a
 * row (a success resets it). When every node's latest attempt failed and
 * the counts add up to breaker_failures, the breaker opens: calls fail at
 * once with EBREAKER and no connection is attempted. After breaker_open_ms
 * it is half-open: one connection attempt (the probe) may run. Its success
 * closes the breaker; its failure opens it again. With one node this is
 * breaker_failures failures in a row. The breaker's state and the counts
 * are atomic so the connections can consult them without the pool's lock.
 */
#include "client_int.h"

#include <arpa/inet.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One node of the pool. The connections' hooks point here. */
typedef struct pool_node {
    nana_pool *pool;
    nc_node_addr at;
    atomic_uint streak;             /* connection attempts failed in a row */
    atomic_uint_fast64_t failed_ns; /* when the last attempt failed; 0: it succeeded, or none */
} pool_node;

/* Why a connection takes no new calls. */
typedef enum retire_why { LIVE = 0, OLD, FAILED, MOVED } retire_why;

typedef struct pool_conn {
    nana_client *c;
    unsigned node;
    retire_why retiring;
} pool_conn;

struct nana_pool {
    nc_rt *rt;
    nana_client_opts o;
    char *server_name, *account; /* owned copies behind o's pointers */
    nana_pool_opts po;           /* po.nodes not kept (NULL) */
    nc_key key;
    pool_node nodes[NANA_POOL_MAX_NODES];
    unsigned nnodes;
    unsigned turn_node; /* the node a new connection goes to when counts tie */
    unsigned turn_call; /* the node whose turn it is among equally loaded connections */
    pthread_mutex_t mu;
    pool_conn *conns;
    unsigned n, cap;
    nana_client *moving; /* opened to move a connection to its node, until it is ready */
    bool closing;
    bool opening;            /* nana_pool_open has not finished: no upkeep yet */
    pthread_mutex_t wait_mu; /* open waits on wait_cv for attempts' outcomes */
    pthread_cond_t wait_cv;
    atomic_int breaker; /* nana_breaker_state */
    atomic_uint_fast64_t open_until;
    atomic_bool probe_out; /* half-open: the probe attempt has started */
    /* stats (pool lock) */
    uint64_t opened, closed_idle, closed_lifetime, replaced, rebalanced;
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
    p->nodes = NULL;
}

/* ---- the breaker (called by connections, no locks held by them) ------------ */

static int may_connect(void *arg, nana_client *c)
{
    (void)c;
    nana_pool *p = ((pool_node *)arg)->pool;
    int b = atomic_load(&p->breaker);
    if (b == NANA_BREAKER_CLOSED) return 1;
    if (b == NANA_BREAKER_OPEN) return 0;
    bool expected = false; /* half-open: exactly one probe */
    return atomic_compare_exchange_strong(&p->probe_out, &expected, true) ? 1 : 0;
}

/* The failures in a row over all nodes, or 0 when some node's latest
 * attempt succeeded (or it has made none): the breaker's count. */
static unsigned failures_everywhere(nana_pool *p)
{
    unsigned sum = 0;
    for (unsigned i = 0; i < p->nnodes; i++) {
        unsigned s = atomic_load(&p->nodes[i].streak);
        if (!s) return 0;
        sum += s;
    }
    return sum;
}

static void attempt_done(void *arg, nana_client *c, int ok)
{
    (void)c;
    pool_node *nd = arg;
    nana_pool *p = nd->pool;
    if (ok) {
        atomic_store(&nd->streak, 0);
        atomic_store(&nd->failed_ns, 0);
        atomic_store(&p->breaker, NANA_BREAKER_CLOSED);
        atomic_store(&p->probe_out, false);
    } else {
        atomic_fetch_add(&p->connect_failures, 1);
        atomic_fetch_add(&nd->streak, 1);
        atomic_store(&nd->failed_ns, nana_now_ns() | 1); /* never 0 */
        int b = atomic_load(&p->breaker);
        if (b == NANA_BREAKER_HALF_OPEN ||
            (b == NANA_BREAKER_CLOSED && failures_everywhere(p) >= p->po.breaker_failures)) {
            atomic_store(&p->open_until,
                         nana_now_ns() + (uint64_t)p->po.breaker_open_ms * 1000000ull);
            atomic_store(&p->breaker, NANA_BREAKER_OPEN);
            atomic_store(&p->probe_out, false);
            if (b == NANA_BREAKER_CLOSED) atomic_fetch_add(&p->breaker_trips, 1);
        }
    }
    pthread_mutex_lock(&p->wait_mu); /* nana_pool_open may be waiting for this */
    pthread_cond_broadcast(&p->wait_cv);
    pthread_mutex_unlock(&p->wait_mu);
}

/* ---- nodes and connections -------------------------------------------------------- */

/* Whether node |i| may get a new connection: its last attempt did not fail
 * within breaker_open_ms. */
static bool node_available(nana_pool *p, unsigned i, uint64_t now)
{
    uint64_t f = atomic_load(&p->nodes[i].failed_ns);
    return !f || now - f >= (uint64_t)p->po.breaker_open_ms * 1000000ull;
}

/* The connections of each node that take calls (or will), in cnt[]. Pool
 * lock held. */
static void count_per_node(const nana_pool *p, unsigned cnt[NANA_POOL_MAX_NODES])
{
    memset(cnt, 0, NANA_POOL_MAX_NODES * sizeof(*cnt));
    for (unsigned i = 0; i < p->n; i++)
        if (!p->conns[i].retiring) cnt[p->conns[i].node]++;
}

/* The node for a new connection: of the available nodes (all when none is)
 * the one with the fewest connections, ties taken in turn. Pool lock held. */
static unsigned pick_node(nana_pool *p, uint64_t now)
{
    unsigned nn = p->nnodes;
    if (nn < 2) return 0;
    unsigned cnt[NANA_POOL_MAX_NODES];
    count_per_node(p, cnt);
    bool any_available = false;
    for (unsigned i = 0; i < nn && !any_available; i++)
        any_available = node_available(p, i, now);
    unsigned best = 0;
    bool found = false;
    for (unsigned k = 0; k < nn; k++) {
        unsigned i = (p->turn_node + k) % nn;
        if (any_available && !node_available(p, i, now)) continue;
        if (!found || cnt[i] < cnt[best]) best = i;
        found = true;
    }
    p->turn_node = (best + 1) % nn;
    return best;
}

/* Opens one more connection to node |node| (not waiting for it). Pool lock
 * held. NULL with |err| filled (or ENOMEM unfilled) on failure. */
static nana_client *add_conn(nana_pool *p, unsigned node, nana_result *err)
{
    if (p->n == p->cap) {
        unsigned cap = p->cap ? p->cap * 2 : 8;
        pool_conn *v = realloc(p->conns, cap * sizeof(*v));
        if (!v) return NULL;
        p->conns = v;
        p->cap = cap;
    }
    pool_node *nd = &p->nodes[node];
    nana_client_opts o = p->o;
    o.port = nd->at.port;
    nc_pool_hooks hooks = {.attempt = attempt_done, .may_connect = may_connect, .pool = nd};
    nana_client *c = NULL;
    if (nc_client_new(p->rt, &o, nd->at.addr, &p->key, &hooks, &c, err)) return NULL;
    p->conns[p->n++] = (pool_conn){.c = c, .node = node, .retiring = LIVE};
    p->opened++;
    return c;
}

/* Takes connection |i| out of the array (the caller frees it unlocked). */
static nana_client *take_conn(nana_pool *p, unsigned i)
{
    nana_client *c = p->conns[i].c;
    if (c == p->moving) p->moving = NULL;
    memmove(&p->conns[i], &p->conns[i + 1], (p->n - i - 1) * sizeof(*p->conns));
    p->n--;
    return c;
}

/* Whether a node other than |node| is available. */
static bool other_node_available(nana_pool *p, unsigned node, uint64_t now)
{
    for (unsigned i = 0; i < p->nnodes; i++)
        if (i != node && node_available(p, i, now)) return true;
    return false;
}

/*
 * Moving a connection to a node that has fewer (several nodes; pool lock
 * held): when the connection opened for it is authenticated, the most
 * crowded node's least busy connection retires; when it fails, the move is
 * over (the upkeep gives it up). Otherwise, when an available node has at
 * least two fewer connections than another, one is opened to it.
 */
static void rebalance(nana_pool *p, uint64_t now)
{
    unsigned cnt[NANA_POOL_MAX_NODES];
    count_per_node(p, cnt);
    if (p->moving) {
        unsigned m = 0;
        while (m < p->n && p->conns[m].c != p->moving)
            m++;
        if (m == p->n) { /* cannot be: dropping it ends the move */
            p->moving = NULL;
            return;
        }
        nc_client_info in;
        nc_client_info_get(p->moving, &in);
        if (in.failing_since_ns) p->moving = NULL;
        if (!in.ready) return;
        p->moving = NULL;
        unsigned to = p->conns[m].node, from = UINT32_MAX;
        for (unsigned i = 0; i < p->nnodes; i++)
            if (i != to && (from == UINT32_MAX || cnt[i] > cnt[from])) from = i;
        if (from == UINT32_MAX || cnt[from] < cnt[to] + 1) return; /* evened out meanwhile */
        unsigned pick = UINT32_MAX, least = UINT32_MAX;
        for (unsigned i = 0; i < p->n; i++) {
            if (p->conns[i].node != from || p->conns[i].retiring) continue;
            nc_client_info ci;
            nc_client_info_get(p->conns[i].c, &ci);
            if (ci.pending < least) {
                least = ci.pending;
                pick = i;
            }
        }
        if (pick != UINT32_MAX) {
            p->conns[pick].retiring = MOVED;
            p->rebalanced++;
        }
        return;
    }
    if (atomic_load(&p->breaker) != NANA_BREAKER_CLOSED || p->n >= p->po.max_conns) return;
    unsigned to = UINT32_MAX, from = UINT32_MAX;
    for (unsigned k = 0; k < p->nnodes; k++) {
        unsigned i = (p->turn_node + k) % p->nnodes;
        if (node_available(p, i, now) && (to == UINT32_MAX || cnt[i] < cnt[to])) to = i;
        if (from == UINT32_MAX || cnt[i] > cnt[from]) from = i;
    }
    if (to == UINT32_MAX || cnt[from] < cnt[to] + 2) return;
    nana_result err = {0};
    p->moving = add_conn(p, to, &err);
    nana_result_free(&err);
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
    int breaker = atomic_load(&p->breaker);
    if (breaker == NANA_BREAKER_OPEN && now >= atomic_load(&p->open_until)) {
        atomic_store(&p->probe_out, false);
        atomic_store(&p->breaker, NANA_BREAKER_HALF_OPEN);
        breaker = NANA_BREAKER_HALF_OPEN;
        for (unsigned i = 0; i < p->n; i++)
            nc_client_kick(p->conns[i].c); /* the first to try is the probe */
    }
    unsigned live = 0;
    for (unsigned i = 0; i < p->n && ndrop < 64;) {
        pool_conn *pc = &p->conns[i];
        nc_client_info in;
        nc_client_info_get(pc->c, &in);
        bool old =
            p->po.lifetime_ms && now - in.created_ns > (uint64_t)p->po.lifetime_ms * 1000000ull;
        if (old && !pc->retiring) pc->retiring = OLD;
        /* Its node failed and another is available: given up (and so
         * replaced on another node below). */
        if (!pc->retiring && in.failing_since_ns && other_node_available(p, pc->node, now)) {
            pc->retiring = FAILED;
            p->replaced++;
        }
        /* A connection in the middle of an attempt stays until it ends (it
         * may be the breaker's probe, whose outcome the breaker waits for),
         * unless it was given up and the breaker is closed (no probe). */
        bool given_up = pc->retiring == FAILED && in.pending == 0 && breaker == NANA_BREAKER_CLOSED;
        if (in.connecting && !given_up) {
            if (!pc->retiring) live++;
            i++;
            continue;
        }
        if (pc->retiring && in.pending == 0) {
            if (pc->retiring == OLD) p->closed_lifetime++;
            drop[ndrop++] = take_conn(p, i);
            continue;
        }
        bool idle = in.pending == 0 && now - in.last_used_ns > (uint64_t)p->po.idle_ms * 1000000ull;
        if (!pc->retiring && idle && p->n > p->po.min_conns && live >= p->po.min_conns &&
            pc->c != p->moving) {
            drop[ndrop++] = take_conn(p, i);
            p->closed_idle++;
            continue;
        }
        if (!pc->retiring) live++;
        i++;
    }
    /* Back up to min_conns (in half-open, the first new one is the probe). */
    while (live < p->po.min_conns && p->n < p->po.max_conns &&
           atomic_load(&p->breaker) != NANA_BREAKER_OPEN) {
        nana_result err = {0};
        bool ok = add_conn(p, pick_node(p, now), &err) != NULL;
        nana_result_free(&err);
        if (!ok) break;
        live++;
    }
    if (p->nnodes > 1) rebalance(p, now);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < ndrop; i++)
        nc_client_free(drop[i]);
}

/* Picks the connection for a new call. Pool lock held. The least-loaded
 * authenticated connection with room (with several nodes, the nodes of
 * equals take turns); when all are full, a new one (up to max_conns); while none is
 * authenticated (a reconnect), the call waits on an existing one rather
 * than opening more, preferring one whose node has not failed. A
 * connection whose attempt failed is never given a call while another is
 * authenticated. */
static nana_client *choose(nana_pool *p, nana_result *err)
{
    nana_client *best = NULL, *any = NULL, *failing = NULL;
    unsigned best_pending = UINT32_MAX, any_pending = UINT32_MAX, failing_pending = UINT32_MAX;
    /* Equally loaded connections: the node whose turn it is first, then the
     * next nodes; on one node the oldest connection (so that extra ones
     * fall idle and close). */
    unsigned turn = p->nnodes > 1 ? p->turn_call++ % p->nnodes : 0, best_rank = UINT32_MAX;
    for (unsigned i = 0; i < p->n; i++) {
        pool_conn *pc = &p->conns[i];
        if (pc->retiring) continue;
        nc_client_info in;
        nc_client_info_get(pc->c, &in);
        unsigned rank = p->nnodes > 1 ? (pc->node + p->nnodes - turn) % p->nnodes : 0;
        if (in.ready &&
            (in.pending < best_pending || (in.pending == best_pending && rank < best_rank))) {
            best = pc->c;
            best_pending = in.pending;
            best_rank = rank;
        }
        if (in.failing_since_ns) {
            if (in.pending < failing_pending) {
                failing = pc->c;
                failing_pending = in.pending;
            }
        } else if (in.pending < any_pending) {
            any = pc->c;
            any_pending = in.pending;
        }
    }
    if (best && best_pending < p->po.max_calls_per_conn) return best;
    bool closed = atomic_load(&p->breaker) == NANA_BREAKER_CLOSED;
    if ((best || (!any && !failing)) && p->n < p->po.max_conns && closed)
        return add_conn(p, pick_node(p, nana_now_ns()), err);
    if (any && any_pending < p->po.max_calls_per_conn) return any;
    if (!best && failing && failing_pending < p->po.max_calls_per_conn) return failing;
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
    if (atomic_load(&p->breaker) == NANA_BREAKER_OPEN) {
        if (p->nnodes > 1)
            return nc_result_error(err, NANA_CLIENT_EBREAKER,
                                   "the circuit breaker is open: connection attempts failed on "
                                   "all %u nodes",
                                   p->nnodes);
        return nc_result_error(err, NANA_CLIENT_EBREAKER,
                               "the circuit breaker is open after %u failed connection attempts",
                               atomic_load(&p->nodes[0].streak));
    }
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

/* The pool's nodes from po->nodes, or the one of o->host and o->port. */
static int load_nodes(nana_pool *p, const nana_client_opts *o, const char *list, int *family,
                      nana_result *err)
{
    nc_node_addr *v = calloc(NANA_POOL_MAX_NODES, sizeof(*v)); /* 4 KiB: not on the stack */
    if (!v) return nc_result_error(err, NANA_CLIENT_ENOMEM, "out of memory");
    unsigned n = 0;
    int rc;
    if (list && *list) {
        rc = nc_nodes_parse(list, v, &n, family, err);
    } else {
        const char *host = o->host ? o->host : "127.0.0.1";
        n = 1;
        v[0].port = o->port;
        snprintf(v[0].name, sizeof(v[0].name), strchr(host, ':') ? "[%.253s]:%u" : "%.253s:%u",
                 host, o->port);
        rc = nc_resolve(host, AF_UNSPEC, v[0].addr, family, err);
    }
    for (unsigned i = 0; !rc && i < n; i++)
        p->nodes[i] = (pool_node){.pool = p, .at = v[i]};
    if (!rc) p->nnodes = n;
    free(v);
    return rc;
}

/* A node that has no connection and whose attempts never failed, or
 * UINT32_MAX. Pool lock held. */
static unsigned untried_node(nana_pool *p)
{
    unsigned cnt[NANA_POOL_MAX_NODES];
    count_per_node(p, cnt);
    for (unsigned k = 0; k < p->nnodes; k++) {
        unsigned i = (p->turn_node + k) % p->nnodes;
        if (!cnt[i] && !atomic_load(&p->nodes[i].failed_ns)) return i;
    }
    return UINT32_MAX;
}

/* One look at the connections while the pool opens (wait_mu held): 0 when
 * one is authenticated; 1 while one is still trying; else -1 with the
 * first one's failure in |first|. A connection that failed makes way for
 * one to a node not tried yet (its client goes to |drop|, freed by the
 * caller with no lock held); *started says whether one was started. */
static int open_look(nana_pool *p, nana_result *first, nana_client **drop, unsigned *ndrop,
                     bool *started)
{
    int rc = -1;
    pthread_mutex_lock(&p->mu);
    for (unsigned i = 0; i < p->n && rc != 0;) {
        nana_result r = {0};
        int st = nc_client_outcome(p->conns[i].c, &r);
        if (st == NANA_CLIENT_OK) {
            rc = 0;
        } else if (st < 0) {
            rc = 1;
        } else {
            unsigned j = untried_node(p);
            if (j != UINT32_MAX && *ndrop < NANA_POOL_MAX_NODES) {
                drop[(*ndrop)++] = take_conn(p, i);
                nana_result tmp = {0};
                *started |= add_conn(p, j, &tmp) != NULL;
                nana_result_free(&tmp);
                nana_result_free(&r);
                continue; /* the new one is at the end: seen in this pass */
            }
            if (!first->status) {
                *first = r;
                r = (nana_result){0};
            }
        }
        nana_result_free(&r);
        i++;
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

/*
 * Waits until a connection (any node's) is authenticated: 0; or until every
 * one has failed an attempt and every node has been tried: the first
 * failure. Each connection started (the first ones, and one to a node not
 * tried yet in place of one that failed) has |ms| to succeed. The pool is
 * opening: no upkeep changes the connections.
 */
static int wait_first_ready(nana_pool *p, unsigned ms, nana_result *err)
{
    uint64_t deadline = nana_now_ns() + (uint64_t)ms * 1000000ull;
    nana_client *drop[NANA_POOL_MAX_NODES];
    int rc = 1;
    while (rc == 1) {
        unsigned ndrop = 0;
        bool started = false;
        nana_result first = {0};
        pthread_mutex_lock(&p->wait_mu);
        int look = open_look(p, &first, drop, &ndrop, &started);
        uint64_t now = nana_now_ns();
        if (started) deadline = now + (uint64_t)ms * 1000000ull;
        if (look == 0) {
            rc = NANA_CLIENT_OK;
        } else if (look < 0 && !started) {
            int st = first.status ? first.status : NANA_CLIENT_ECONNECT;
            const char *msg = first.message ? first.message : "";
            rc = p->nnodes > 1 ? nc_result_error(err, st,
                                                 "no connection to any of the %u nodes; the "
                                                 "first failure: %s",
                                                 p->nnodes, msg)
                               : nc_result_error(err, st, "%s", msg);
        } else if (now >= deadline) {
            rc = p->nnodes > 1 ? nc_result_error(err, NANA_CLIENT_ECONNECT,
                                                 "no authenticated connection to any of the %u "
                                                 "nodes within %u ms",
                                                 p->nnodes, ms)
                               : nc_result_error(err, NANA_CLIENT_ECONNECT,
                                                 "no authenticated connection to %s within %u ms",
                                                 p->nodes[0].at.name, ms);
        } else if (!ndrop) {
            /* An attempt's outcome wakes us; the cap is a safety net. */
            uint64_t until = now + 200000000ull < deadline ? now + 200000000ull : deadline;
            struct timespec ts = nana_timespec_at(until);
            pthread_cond_timedwait(&p->wait_cv, &p->wait_mu, &ts);
        }
        pthread_mutex_unlock(&p->wait_mu);
        nana_result_free(&first);
        for (unsigned i = 0; i < ndrop; i++) /* no lock held: its I/O may need them */
            nc_client_free(drop[i]);
    }
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
    pthread_mutex_init(&p->wait_mu, NULL);
    nana_cond_init_monotonic(&p->wait_cv);
    p->o = *o;
    p->po = *po;
    p->po.nodes = NULL;
    if (!p->po.breaker_failures) p->po.breaker_failures = 1;
    if (!p->po.health_interval_ms) p->po.health_interval_ms = 1000;
    p->server_name = o->server_name ? strdup(o->server_name) : NULL;
    p->account = o->account ? strdup(o->account) : NULL;
    p->o.server_name = p->server_name;
    p->o.account = p->account;
    /* Set before the maintenance thread starts (it reads it under the lock):
     * no upkeep until the first connections are made. */
    p->opening = true;
    int family = AF_INET;
    bool list = po->nodes && *po->nodes;
    int rc = (o->server_name && !p->server_name) || (o->account && !p->account)
                 ? nc_result_error(err, NANA_CLIENT_ENOMEM, "out of memory")
                 : NANA_CLIENT_OK;
    /* A node list is checked first; one server keeps the key-then-host order. */
    if (!rc && list) rc = load_nodes(p, o, po->nodes, &family, err);
    if (!rc) rc = nc_load_key(o, &p->key, err);
    if (!rc && !list) rc = load_nodes(p, o, NULL, &family, err);
    if (!rc) rc = nc_rt_new(o, family, pool_tick, p, p->po.health_interval_ms, &p->rt, err);
    if (!rc) {
        pthread_mutex_lock(&p->mu);
        p->turn_node = p->nnodes > 1 ? randombytes_uniform(p->nnodes) : 0;
        unsigned want = p->po.min_conns ? p->po.min_conns : 1;
        for (unsigned i = 0; i < want && !rc; i++)
            if (!add_conn(p, pick_node(p, nana_now_ns()), err))
                rc = err->status ? err->status : NANA_CLIENT_ENOMEM;
        pthread_mutex_unlock(&p->mu);
    }
    if (!rc) rc = wait_first_ready(p, nc_opt_ms(o->connect_timeout_ms, 10000) + 1000, err);
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
    pool_conn *conns = p->conns;
    unsigned n = p->n;
    p->conns = NULL;
    p->n = p->cap = 0;
    p->moving = NULL;
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < n; i++)
        nc_client_free(conns[i].c);
    free(conns);
    nc_rt_free(p->rt);
    free(p->server_name);
    free(p->account);
    sodium_memzero(&p->key, sizeof(p->key));
    pthread_cond_destroy(&p->wait_cv);
    pthread_mutex_destroy(&p->wait_mu);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

void nana_pool_stats_get(nana_pool *p, nana_pool_stats *out)
{
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&p->mu);
    for (unsigned i = 0; i < p->n; i++) {
        nc_client_info in;
        nc_client_info_get(p->conns[i].c, &in);
        out->conns += in.ready;
        out->in_flight += in.pending;
    }
    out->opened = p->opened;
    out->closed_idle = p->closed_idle;
    out->closed_lifetime = p->closed_lifetime;
    out->replaced = p->replaced;
    out->rebalanced = p->rebalanced;
    pthread_mutex_unlock(&p->mu);
    out->breaker = atomic_load(&p->breaker);
    out->connect_failures = atomic_load(&p->connect_failures);
    out->breaker_trips = atomic_load(&p->breaker_trips);
}
