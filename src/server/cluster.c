/*
 * cluster.c - the server as a node of a dqlite cluster (--cluster-id).
 *
 * Every clustered server process runs a dqlite node on --cluster-bind,
 * keeping its Raft log and snapshots in --cluster-dir. Node 1, started on
 * an empty directory, makes a new cluster of itself; any other node joins
 * the cluster one of --join belongs to: the leader adds it (as a spare)
 * and makes it a voter. Joining is idempotent: a node that is already a
 * voter (a restart) changes nothing, one left as a spare or standby (a
 * join cut short) is made a voter.
 *
 * The databases then live in the cluster (the store's clustered backend):
 * this module hands the store the list of cluster addresses it finds the
 * leader through, this node's own first.
 *
 * With --cluster-cert, --cluster-key and --cluster-ca, all cluster traffic
 * is mutual TLS (src/dqlite/tls.c): the node listens privately behind a TLS
 * front on --cluster-bind, and every connection this process makes to a
 * node (the node's own, joining, the store's links) goes through TLS.
 * Without them it is plain TCP, and a warning says so at start.
 */
#include "server/server_int.h"

#include "dqlite/nana_dqlite.h"
#include "util/nana_log.h"
#include "util/nana_time.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

struct nana_server_cluster {
    nana_dql_tls *tls; /* NULL: plaintext */
    nana_dql_node *node;
    char *nodes;  /* "bind,join..." for the store */
    char **addrs; /* the same, cut at the commas (into |list|) */
    char *list;
    size_t naddrs;
};

/* Sleeps |ms| milliseconds. */
static void pause_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Splits c->nodes into c->addrs. */
static int split_nodes(nana_server_cluster *c)
{
    c->list = strdup(c->nodes);
    size_t n = 1;
    for (const char *p = c->nodes; *p; p++)
        n += *p == ',';
    c->addrs = calloc(n, sizeof(*c->addrs));
    if (!c->list || !c->addrs) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    for (char *save = NULL, *t = strtok_r(c->list, ",", &save); t; t = strtok_r(NULL, ",", &save))
        c->addrs[c->naddrs++] = t;
    return NANA_OK;
}

/*
 * One try at making node |id| (at |bind|) a voter, through the leader:
 * nothing when it is one already. 0, or the error of the step that failed.
 */
static int join_once(nana_server_cluster *c, uint64_t id, const char *bind, unsigned wait_ms)
{
    nana_dql_opts o;
    nana_dql_opts_default(&o);
    o.leader_timeout_ms = (int)wait_ms;
    nana_dql_conn *dq = NULL;
    int rc = nana_dql_connect_leader((const char *const *)c->addrs, c->naddrs, &o, &dq);
    if (rc) return rc;
    nana_dql_node_info *nodes = NULL;
    size_t n = 0;
    rc = nana_dql_cluster(dq, &nodes, &n);
    const nana_dql_node_info *me = NULL;
    for (size_t i = 0; !rc && i < n; i++)
        if (nodes[i].id == id) me = &nodes[i];
    if (!rc && me && strcmp(me->address, bind) != 0)
        rc = nana_err_set(NANA_ERR_INVALID,
                          "the cluster knows node %llu at %.64s, not at %.64s: remove it first "
                          "(nanasqlite-cli cluster remove) or give this node another id",
                          (unsigned long long)id, me->address, bind);
    if (!rc && !me) rc = nana_dql_add(dq, id, bind);
    if (!rc && (!me || me->role != NANA_DQL_VOTER)) rc = nana_dql_assign(dq, id, NANA_DQL_VOTER);
    if (!rc && !me)
        nana_log(NANA_LOG_INFO, "cluster: node %llu joined as a voter (leader %s)",
                 (unsigned long long)id, nana_dql_conn_address(dq));
    free(nodes);
    nana_dql_close(dq);
    return rc;
}

/* Joins (or re-checks) until it worked or |start_ms| passed. */
static int join(nana_server_cluster *c, const nana_server_opts *o)
{
    uint64_t deadline = nana_now_ns() + (uint64_t)o->cluster_start_ms * 1000000ull;
    uint64_t next_log = 0;
    for (;;) {
        int rc = join_once(c, o->cluster_id, o->cluster_bind, 2000);
        if (!rc || rc == NANA_ERR_INVALID) return rc;
        uint64_t now = nana_now_ns();
        if (now >= deadline) {
            char msg[NANA_ERRMSG_MAX];
            snprintf(msg, sizeof(msg), "%s", nana_errmsg());
            return nana_err_set(NANA_ERR_NOLEADER,
                                "cluster: node %llu could not join within %u ms (%s)",
                                (unsigned long long)o->cluster_id, o->cluster_start_ms, msg);
        }
        if (now >= next_log) {
            nana_log(NANA_LOG_INFO, "cluster: waiting for a leader to take node %llu in (%s)",
                     (unsigned long long)o->cluster_id, nana_errmsg());
            next_log = now + 5000000000ull;
        }
        pause_ms(200);
    }
}

/* Waits until the cluster has a leader that answers (a whole cluster
 * starting needs a majority of its voters up first). */
static int wait_leader(nana_server_cluster *c, unsigned ms)
{
    nana_dql_opts o;
    nana_dql_opts_default(&o);
    o.leader_timeout_ms = (int)ms;
    nana_dql_conn *dq = NULL;
    int rc = nana_dql_connect_leader((const char *const *)c->addrs, c->naddrs, &o, &dq);
    nana_dql_close(dq);
    if (rc) {
        char msg[NANA_ERRMSG_MAX];
        snprintf(msg, sizeof(msg), "%s", nana_errmsg());
        return nana_err_set(NANA_ERR_NOLEADER, "cluster: no leader within %u ms (%s)", ms, msg);
    }
    return NANA_OK;
}

/* Makes |dir| (0700) unless it exists as a directory. */
static int make_dir(const char *dir)
{
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode))
            return nana_err_set(NANA_ERR_INVALID, "cluster directory %s is not a directory", dir);
        return NANA_OK;
    }
    if (mkdir(dir, 0700) != 0)
        return nana_err_set(NANA_ERR_IO, "cluster directory %s: %s", dir, strerror(errno));
    return NANA_OK;
}

/* This node's cluster directory: --cluster-dir, else --db with ".cluster". */
static void cluster_dir(const nana_server_opts *o, char *dir, size_t cap)
{
    if (o->cluster_dir)
        snprintf(dir, cap, "%s", o->cluster_dir);
    else
        snprintf(dir, cap, "%s.cluster", o->db_path ? o->db_path : "server_db.sqlite");
}

int nana_server_cluster_recover(const nana_server_opts *o)
{
    enum { MAX_NODES = 64 };
    uint64_t ids[MAX_NODES];
    const char *addrs[MAX_NODES];
    size_t n = 0;
    bool me = false;
    char *list = strdup(o->cluster_recover);
    if (!list) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    int rc = NANA_OK;
    for (char *save = NULL, *t = strtok_r(list, ",", &save); t && !rc;
         t = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(t, '='), *end = NULL;
        unsigned long long id = eq ? strtoull(t, &end, 10) : 0;
        if (!eq || end != eq || id == 0 || !eq[1] || n == MAX_NODES) {
            rc = nana_err_set(NANA_ERR_INVALID,
                              "--cluster-recover: '%.64s' is not ID=HOST:PORT (at most %d nodes)",
                              t, MAX_NODES);
            break;
        }
        ids[n] = id;
        addrs[n++] = eq + 1;
        if (id == o->cluster_id) {
            me = true;
            if (!o->cluster_bind || strcmp(eq + 1, o->cluster_bind) != 0)
                rc = nana_err_set(NANA_ERR_INVALID,
                                  "--cluster-recover lists node %llu at %.64s, not at its "
                                  "--cluster-bind",
                                  id, eq + 1);
        }
    }
    if (!rc && !me)
        rc = nana_err_set(NANA_ERR_INVALID, "--cluster-recover must list this node (%llu) too",
                          (unsigned long long)o->cluster_id);
    char dir[4096];
    cluster_dir(o, dir, sizeof(dir));
    if (!rc) rc = nana_dql_node_recover(o->cluster_id, o->cluster_bind, dir, ids, addrs, n);
    if (!rc)
        nana_log(NANA_LOG_INFO,
                 "cluster: node %llu's membership is now the %zu nodes listed; copy %s to the "
                 "other survivors, then start them all",
                 (unsigned long long)o->cluster_id, n, dir);
    free(list);
    return rc;
}

/*
 * With the three TLS files: starts the cluster's TLS and makes this
 * process's dqlite connections use it. Without: a warning that the
 * traffic is neither encrypted nor authenticated.
 */
static int start_tls(nana_server_cluster *c, const nana_server_opts *o)
{
    if (!o->cluster_cert) {
        nana_log(NANA_LOG_WARN,
                 "cluster: traffic on %s is neither encrypted nor authenticated: anyone who "
                 "reaches it can read and change every database and the membership "
                 "(--cluster-cert, --cluster-key and --cluster-ca turn on mutual TLS)",
                 o->cluster_bind);
        return NANA_OK;
    }
    nana_dql_tls_opts to;
    nana_dql_tls_opts_default(&to);
    to.cert_file = o->cluster_cert;
    to.key_file = o->cluster_key;
    to.ca_file = o->cluster_ca;
    to.handshake_ms = (int)o->cluster_handshake_ms;
    to.conns_max = o->cluster_conns_max;
    to.pending_max = o->cluster_pending_max;
    int rc = nana_dql_tls_start(&to, &c->tls);
    if (!rc) nana_dql_tls_use(c->tls);
    return rc;
}

void nana_server_cluster_stop(nana_server_cluster *c)
{
    if (!c) return;
    nana_dql_node_stop(c->node);
    nana_dql_tls_stop(c->tls); /* after the node: its connections go through it */
    free(c->addrs);
    free(c->list);
    free(c->nodes);
    free(c);
}

int nana_server_cluster_start(const nana_server_opts *o, nana_server_cluster **out)
{
    *out = NULL;
    nana_server_cluster *c = calloc(1, sizeof(*c));
    if (!c) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    char dir[4096];
    cluster_dir(o, dir, sizeof(dir));
    size_t nlen = strlen(o->cluster_bind) + (o->cluster_join ? strlen(o->cluster_join) : 0) + 2;
    c->nodes = malloc(nlen);
    int rc = c->nodes ? NANA_OK : nana_err_set(NANA_ERR_NOMEM, "out of memory");
    if (!rc)
        snprintf(c->nodes, nlen, "%s%s%s", o->cluster_bind, o->cluster_join ? "," : "",
                 o->cluster_join ? o->cluster_join : "");
    if (!rc) rc = split_nodes(c);
    if (!rc) rc = make_dir(dir);
    if (!rc) rc = start_tls(c, o);
    if (!rc)
        rc = nana_dql_node_start(o->cluster_id, o->cluster_bind, dir, 0, o->cluster_latency_ms,
                                 c->tls, &c->node);
    if (!rc && o->cluster_join) rc = join(c, o);
    if (!rc) rc = wait_leader(c, o->cluster_start_ms);
    if (rc) {
        char msg[NANA_ERRMSG_MAX];
        snprintf(msg, sizeof(msg), "%s", nana_errmsg());
        nana_server_cluster_stop(c);
        return nana_err_set_str(rc, msg);
    }
    nana_log(NANA_LOG_INFO, "cluster: node %llu serving at %s (data in %s%s)",
             (unsigned long long)o->cluster_id, o->cluster_bind, dir, c->tls ? "; mutual TLS" : "");
    *out = c;
    return NANA_OK;
}

const char *nana_server_cluster_nodes(const nana_server_cluster *c)
{
    return c->nodes;
}
