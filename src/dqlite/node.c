/*
 * node.c - a dqlite node in this process (libdqlite's dqlite_node_*), and
 * joining one to a cluster through the wire-protocol client.
 *
 * dqlite runs each node on a thread of its own (a libuv loop with Raft on
 * it), listening on the node's address for clients and for its peers. The
 * node's connections to its peers go through our connect function, which
 * sets TCP_NODELAY: dqlite's default does not, and small Raft messages then
 * wait for delayed ACKs. dqlite and libuv write to sockets without
 * MSG_NOSIGNAL, so a peer that goes away would raise SIGPIPE: starting a
 * node ignores SIGPIPE when it was at its default.
 *
 * With TLS (tls.c), the node keeps its cluster address as its identity
 * (what the Raft configuration and its peers name) but binds an abstract
 * Unix socket that dqlite picks ("@"), which only this process can reach;
 * a front of the TLS on the cluster address relays authenticated peers to
 * it, and the connect function goes through the TLS too.
 *
 * A new cluster is bootstrapped by the node with id 1 (dqlite's rule: a
 * node with that id and an empty data directory makes itself the only
 * voter). Any other node starts empty and waits: nana_dql_node_join asks
 * the leader to ADD it (as a spare) and then ASSIGN it the voter role.
 */
#include "dqlite/nana_dqlite.h"
#include "dqlite/dqlite_int.h"
#include "util/nana_err.h"

#include <dqlite.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct nana_dql_node {
    dqlite_node *dn;
    nana_dql_tls *tls;
    int front; /* the TLS front on the cluster address, -1 if none */
    int connect_timeout_ms;
    int running;
};

/* dqlite's connect function: a connection to a peer, TCP or through the
 * node's TLS, blocking (dqlite writes its handshake on it before handing it
 * to libuv), 0 on success. */
static int node_connect(void *arg, const char *address, int *fd)
{
    const nana_dql_node *n = arg;
    if (n->tls) return nana_dql_tls_connect(n->tls, address, n->connect_timeout_ms, 0, fd) ? 1 : 0;
    return dql_tcp_connect(address, n->connect_timeout_ms, 0, fd) ? 1 : 0;
}

/* dqlite's message for a failed call on |n|, or "" when there is none. */
static const char *node_errmsg(nana_dql_node *n)
{
    const char *m = n->dn ? dqlite_node_errmsg(n->dn) : NULL;
    return m ? m : "";
}

/* Ignores SIGPIPE unless the program chose what to do with it. */
static void ignore_sigpipe(void)
{
    struct sigaction old;
    if (sigaction(SIGPIPE, NULL, &old) == 0 && !(old.sa_flags & SA_SIGINFO) &&
        old.sa_handler == SIG_DFL) {
        struct sigaction ign;
        memset(&ign, 0, sizeof(ign));
        ign.sa_handler = SIG_IGN;
        sigemptyset(&ign.sa_mask);
        sigaction(SIGPIPE, &ign, NULL);
    }
}

int nana_dql_node_start(uint64_t id, const char *address, const char *dir, int connect_timeout_ms,
                        unsigned latency_ms, nana_dql_tls *tls, nana_dql_node **out)
{
    *out = NULL;
    if (id == 0 || !address || !dir)
        return nana_err_set(NANA_ERR_INVALID, "dqlite: a node needs an id (not 0), an address "
                                              "and a data directory");
    ignore_sigpipe();
    nana_dql_node *n = calloc(1, sizeof(*n));
    if (!n) return nana_err_set(NANA_ERR_NOMEM, "dqlite: out of memory for a node");
    n->tls = tls;
    n->front = -1;
    n->connect_timeout_ms =
        connect_timeout_ms > 0 ? connect_timeout_ms : NANA_DQL_CONNECT_TIMEOUT_MS_DEFAULT;
    const char *step = "create";
    int rv = dqlite_node_create(id, address, dir, &n->dn);
    if (rv == 0) {
        step = "set the bind address";
        rv = dqlite_node_set_bind_address(n->dn, tls ? "@" : address);
    }
    if (rv == 0) {
        step = "set the connect function";
        rv = dqlite_node_set_connect_func(n->dn, node_connect, n);
    }
    if (rv == 0 && latency_ms) {
        step = "set the network latency";
        rv = dqlite_node_set_network_latency_ms(n->dn, latency_ms);
    }
    if (rv == 0) {
        step = "start";
        rv = dqlite_node_start(n->dn);
    }
    if (rv != 0) {
        int rc = nana_err_set(NANA_ERR_IO, "dqlite: node %llu at %.64s: %s: error %d %.100s",
                              (unsigned long long)id, address, step, rv, node_errmsg(n));
        if (n->dn) dqlite_node_destroy(n->dn);
        free(n);
        return rc;
    }
    n->running = 1;
    if (tls) {
        const char *priv = dqlite_node_get_bind_address(n->dn);
        int rc =
            priv && priv[0] == '@'
                ? nana_dql_tls_front(tls, address, priv, &n->front)
                : nana_err_set(NANA_ERR_INTERNAL, "dqlite: node %llu did not bind a private socket",
                               (unsigned long long)id);
        if (rc) {
            char msg[NANA_ERRMSG_MAX];
            snprintf(msg, sizeof(msg), "%s", nana_errmsg());
            nana_dql_node_stop(n);
            return nana_err_set_str(rc, msg);
        }
    }
    *out = n;
    return 0;
}

int nana_dql_node_recover(uint64_t id, const char *address, const char *dir, const uint64_t *ids,
                          const char *const *addrs, size_t n)
{
    if (id == 0 || !address || !dir || n == 0 || n > 64)
        return nana_err_set(NANA_ERR_INVALID, "dqlite: recovery needs this node's id, address, "
                                              "data directory and 1 to 64 surviving nodes");
    dqlite_node_info infos[64];
    for (size_t i = 0; i < n; i++) {
        infos[i].id = ids[i];
        infos[i].address = addrs[i];
    }
    dqlite_node *dn = NULL;
    int rv = dqlite_node_create(id, address, dir, &dn);
    if (rv == 0) rv = dqlite_node_recover(dn, infos, (int)n);
    int rc = 0;
    if (rv != 0)
        rc = nana_err_set(NANA_ERR_IO, "dqlite: recovering node %llu in %.200s: error %d %.100s",
                          (unsigned long long)id, dir, rv,
                          dn && dqlite_node_errmsg(dn) ? dqlite_node_errmsg(dn) : "");
    if (dn) dqlite_node_destroy(dn);
    return rc;
}

void nana_dql_node_stop(nana_dql_node *n)
{
    if (!n) return;
    if (n->front >= 0) nana_dql_tls_front_close(n->tls, n->front);
    if (n->running) dqlite_node_stop(n->dn);
    dqlite_node_destroy(n->dn);
    free(n);
}

int nana_dql_node_join(const char *const *cluster, size_t n, uint64_t id, const char *address,
                       const nana_dql_opts *o)
{
    nana_dql_conn *c;
    int rc = nana_dql_connect_leader(cluster, n, o, &c);
    if (rc) return rc;
    rc = nana_dql_add(c, id, address);
    if (!rc) rc = nana_dql_assign(c, id, NANA_DQL_VOTER);
    nana_dql_close(c);
    return rc;
}
