/*
 * clink.c - a clustered store's connections: links to the cluster's leader.
 *
 * A clustered store keeps its database in dqlite, which runs SQL only on
 * the cluster's leader. Each of the store's connections (the writer's and
 * the reader pool's) is then a dqlite wire connection to whichever node
 * leads, made when first used and made again after it broke. A call that
 * finds the link broken, or the node no longer leading, drops the link,
 * sets c->lost and fails with NANA_ERR_NOLEADER: reads are retried by
 * nana_store_read, writes by the writer (only while their transaction has
 * not asked to commit; see writer.c).
 *
 * The store's prepared-statement API (nana_conn_stmt) is SQLite's own and
 * is not offered on these connections: the calls a clustered store serves
 * use nana_clink_exec / nana_clink_query, the others fail with
 * NANA_ERR_UNAVAILABLE (nana_cluster_unsupported).
 */
#include "store/store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void nana_clink_init(nana_conn *c, nana_store *s)
{
    memset(c, 0, sizeof(*c));
    c->cluster = true;
    c->store = s;
}

/* Forgets the link (its transaction, if any, dies with it on the leader). */
static void drop(nana_conn *c)
{
    nana_dql_close(c->dq);
    c->dq = NULL;
    c->dq_txn = false;
    c->lost = true;
}

void nana_clink_close(nana_conn *c)
{
    nana_dql_close(c->dq);
    c->dq = NULL;
    c->dq_txn = false;
}

int nana_cluster_unsupported(const char *what)
{
    return nana_err_set(NANA_ERR_UNAVAILABLE,
                        "%s is not available on a clustered database (see CLUSTER.md)", what);
}

/*
 * The addresses to ask for the leader: the configured ones, then the
 * members the leader listed last (copied into |buf|), without repeats.
 */
static size_t leader_candidates(nana_store *s, const char **out, size_t cap,
                                char (*buf)[NANA_CL_ADDR_MAX])
{
    size_t n = 0;
    for (size_t i = 0; i < s->cl_n && n < cap; i++)
        out[n++] = s->cl_nodes[i];
    pthread_mutex_lock(&s->cl_mu);
    size_t nb = 0;
    for (size_t i = 0; i < s->cl_nmembers && n < cap; i++) {
        bool seen = false;
        for (size_t k = 0; k < n && !seen; k++)
            seen = strcmp(out[k], s->cl_members[i]) == 0;
        if (seen) continue;
        memcpy(buf[nb], s->cl_members[i], NANA_CL_ADDR_MAX);
        out[n++] = buf[nb++];
    }
    pthread_mutex_unlock(&s->cl_mu);
    return n;
}

/* Remembers the members |dq|'s leader lists (failures leave the old list). */
static void learn_members(nana_store *s, nana_dql_conn *dq)
{
    nana_dql_node_info *nodes = NULL;
    size_t n = 0;
    if (nana_dql_cluster(dq, &nodes, &n)) return;
    pthread_mutex_lock(&s->cl_mu);
    s->cl_nmembers = 0;
    for (size_t i = 0; i < n && s->cl_nmembers < NANA_CL_MEMBERS_MAX; i++)
        if (strlen(nodes[i].address) < NANA_CL_ADDR_MAX)
            snprintf(s->cl_members[s->cl_nmembers++], NANA_CL_ADDR_MAX, "%s", nodes[i].address);
    pthread_mutex_unlock(&s->cl_mu);
    free(nodes);
}

/* Links to the leader and opens the store's database there, if not linked. */
static int ensure(nana_conn *c)
{
    if (c->dq) return NANA_OK;
    nana_store *s = c->store;
    const char *addrs[NANA_CL_MEMBERS_MAX * 2];
    char buf[NANA_CL_MEMBERS_MAX][NANA_CL_ADDR_MAX];
    size_t n = leader_candidates(s, addrs, sizeof(addrs) / sizeof(addrs[0]), buf);
    nana_dql_conn *dq = NULL;
    int rc = nana_dql_connect_leader(addrs, n, &s->cl_opts, &dq);
    if (!rc) learn_members(s, dq);
    if (!rc && nana_dql_conn_broken(dq))
        rc = nana_err_set(NANA_ERR_IO, "the leader's link broke as it listed its members");
    if (!rc) rc = nana_dql_open(dq, s->path);
    if (rc) {
        char msg[NANA_ERRMSG_MAX];
        snprintf(msg, sizeof(msg), "%s", nana_errmsg());
        nana_dql_close(dq);
        c->lost = true;
        return nana_err_set(NANA_ERR_NOLEADER, "the cluster has no leader that answers (%s)", msg);
    }
    c->dq = dq;
    return NANA_OK;
}

/*
 * Turns a failed dqlite call into the store's error: a broken link or a
 * node that stopped leading drops the link (NANA_ERR_NOLEADER); an answer
 * keeps it.
 */
static int fail(nana_conn *c, int rc, const char *what)
{
    if (rc == NANA_ERR_UNAVAILABLE || nana_dql_conn_broken(c->dq)) {
        char msg[NANA_ERRMSG_MAX];
        snprintf(msg, sizeof(msg), "%s", nana_errmsg());
        drop(c);
        return nana_err_set(NANA_ERR_NOLEADER, "%s: the cluster's leader was lost (%s)", what, msg);
    }
    if (rc == NANA_ERR_DB) {
        /* An SQLite error on the leader: keep the codes the store uses. */
        uint64_t code = nana_dql_last_code(c->dq) & 0xff;
        if (code == 13) return nana_err_set(NANA_ERR_FULL, "%s: database or disk is full", what);
        if (code == 9) return nana_err_set(NANA_ERR_TIMEOUT, "%s: interrupted", what);
    }
    return rc;
}

int nana_clink_exec(nana_conn *c, const char *sql, const nana_dql_value *p, size_t n,
                    uint64_t *changes)
{
    int rc = ensure(c);
    if (rc) return rc;
    nana_dql_result res = {0, 0};
    rc = nana_dql_exec(c->dq, sql, p, n, &res);
    if (rc) return fail(c, rc, "write");
    if (changes) *changes = res.rows_affected;
    return NANA_OK;
}

int nana_clink_query(nana_conn *c, const char *sql, const nana_dql_value *p, size_t n,
                     nana_dql_rows *rows)
{
    int rc = ensure(c);
    if (rc) {
        nana_dql_rows_init(rows);
        return rc;
    }
    rc = nana_dql_query(c->dq, sql, p, n, rows);
    return rc ? fail(c, rc, "read") : NANA_OK;
}

/* True if |sql| begins with |word| (ASCII, any case) followed by a space or its end. */
static bool starts_with(const char *sql, const char *word)
{
    size_t n = strlen(word);
    if (strncasecmp(sql, word, n) != 0) return false;
    return sql[n] == '\0' || sql[n] == ' ';
}

int nana_clink_exec_sql(nana_conn *c, const char *sql)
{
    int rc = ensure(c);
    if (rc) return rc;
    rc = nana_dql_exec_sql(c->dq, sql, NULL, 0, NULL);
    if (rc) {
        rc = fail(c, rc, sql);
        /* ROLLBACK of a transaction that is gone ends it all the same. */
        if (c->dq && starts_with(sql, "ROLLBACK") && !starts_with(sql, "ROLLBACK TO"))
            c->dq_txn = false;
        return rc;
    }
    if (starts_with(sql, "BEGIN"))
        c->dq_txn = true;
    else if (starts_with(sql, "COMMIT") || starts_with(sql, "END") ||
             (starts_with(sql, "ROLLBACK") && strncasecmp(sql, "ROLLBACK TO", 11) != 0))
        c->dq_txn = false;
    return NANA_OK;
}

int nana_clink_set_rows(nana_conn *c, nana_wop **ops, unsigned n)
{
    static const struct {
        unsigned rows;
        int sql;
    } sizes[] = {{64, SQL_SET_64}, {16, SQL_SET_16}, {4, SQL_SET_4}, {1, SQL_SET}};
    nana_dql_value p[128];
    nana_table *t = ops[0]->tbl;
    unsigned at = 0;
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        while (n - at >= sizes[k].rows) {
            for (size_t r = 0; r < sizes[k].rows; r++) {
                const nana_set_op *o = (const nana_set_op *)ops[at + r];
                p[2 * r] = nana_dql_text(o->key, o->klen);
                p[2 * r + 1] = nana_dql_text(o->val, o->vlen);
            }
            int rc = nana_clink_exec(c, t->sql[sizes[k].sql], p, (size_t)sizes[k].rows * 2, NULL);
            if (rc) return rc;
            at += sizes[k].rows;
        }
    }
    return NANA_OK;
}
