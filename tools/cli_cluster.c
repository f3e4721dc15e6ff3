/*
 * cli_cluster.c - `nanasqlite-cli cluster`: a dqlite cluster's membership,
 * read and changed over dqlite's own wire protocol at a node's cluster
 * address (--cluster-bind of a server), not through a server's doors.
 *
 *   cluster list --at HOST:PORT[,...] [--json]      members, roles, leader
 *   cluster remove ID --at ...                      take a node out
 *   cluster assign ID voter|standby|spare --at ...  change a node's role
 *   cluster transfer ID --at ...                    hand leadership over
 *
 * The cluster address takes no login. A cluster with mutual TLS lets in
 * only holders of a node certificate of its CA: --cert, --cert-key and
 * --ca name one (a node's own files will do). Without TLS whoever reaches
 * the address can do all of this, which is why it then belongs on a
 * private network (CLUSTER.md).
 */
#include "cli_cluster.h"

#include "dqlite/nana_dqlite.h"
#include "util/nana_err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { EXIT_SERVER = 1, EXIT_USAGE = 2, EXIT_CONNECT = 3 };

static const char usage_text[] =
    "usage: nanasqlite-cli cluster SUBCOMMAND [ARGS] --at HOST:PORT[,HOST:PORT...]\n"
    "           [--cert FILE --cert-key FILE --ca FILE]\n"
    "\n"
    "A dqlite cluster's membership, at a node's cluster address (the servers'\n"
    "--cluster-bind). Changes go to the leader, found through the nodes given.\n"
    "A cluster with mutual TLS (the servers' --cluster-cert) needs a node\n"
    "certificate of its CA: --cert, its key --cert-key and the CA --ca.\n"
    "\n"
    "  list [--json]                  every node: id, address, role; the leader marked\n"
    "  remove ID                      take node ID out of the cluster\n"
    "  assign ID voter|standby|spare  give node ID a role\n"
    "  transfer ID                    make node ID the leader\n";

/* Prints |msg| as the CLI prints errors and returns |status|. */
static int fail(int status, const char *what, const char *msg)
{
    fprintf(stderr, "error: %s: %s\n", what, msg);
    return status;
}

static const char *role_name(uint64_t role)
{
    switch (role) {
    case NANA_DQL_VOTER:
        return "voter";
    case NANA_DQL_STANDBY:
        return "standby";
    case NANA_DQL_SPARE:
        return "spare";
    default:
        return "unknown";
    }
}

/* The node id in |s| (a positive decimal number), or 0. */
static uint64_t parse_id(const char *s)
{
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    return (s[0] >= '0' && s[0] <= '9' && end && !*end) ? v : 0;
}

/* Prints the members, one line each (or a JSON array). */
static int list(nana_dql_conn *dq, int json)
{
    nana_dql_node_info *nodes = NULL;
    size_t n = 0;
    if (nana_dql_cluster(dq, &nodes, &n)) return fail(EXIT_SERVER, "ClusterError", nana_errmsg());
    uint64_t leader = 0;
    char laddr[256];
    if (nana_dql_leader(dq, &leader, laddr, sizeof(laddr))) leader = 0;
    if (json) printf("[");
    for (size_t i = 0; i < n; i++) {
        if (json)
            printf("%s{\"id\": %llu, \"address\": \"%s\", \"role\": \"%s\", \"leader\": %s}",
                   i ? ", " : "", (unsigned long long)nodes[i].id, nodes[i].address,
                   role_name(nodes[i].role), nodes[i].id == leader ? "true" : "false");
        else
            printf("%llu %s %s%s\n", (unsigned long long)nodes[i].id, nodes[i].address,
                   role_name(nodes[i].role), nodes[i].id == leader ? " leader" : "");
    }
    if (json) printf("]\n");
    free(nodes);
    return 0;
}

/* Splits the --at list (in place) into |addrs|; the count, 0 if bad. */
static size_t split_at(char *at, const char **addrs, size_t cap)
{
    size_t n = 0;
    for (char *save = NULL, *t = strtok_r(at, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (n == cap) return 0;
        addrs[n++] = t;
    }
    return n;
}

int nana_cli_cluster(int argc, char **argv)
{
    const char *sub = NULL, *args[2] = {NULL, NULL};
    const char *cert = NULL, *cert_key = NULL, *ca = NULL;
    char *at = NULL;
    int json = 0, nargs = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage_text, stdout);
            return 0;
        } else if (!strcmp(argv[i], "--at") && i + 1 < argc) {
            at = argv[++i];
        } else if (!strcmp(argv[i], "--cert") && i + 1 < argc) {
            cert = argv[++i];
        } else if (!strcmp(argv[i], "--cert-key") && i + 1 < argc) {
            cert_key = argv[++i];
        } else if (!strcmp(argv[i], "--ca") && i + 1 < argc) {
            ca = argv[++i];
        } else if (!strcmp(argv[i], "--json")) {
            json = 1;
        } else if (argv[i][0] == '-') {
            return fail(EXIT_USAGE, "UsageError", "unknown option (see cluster --help)");
        } else if (!sub) {
            sub = argv[i];
        } else if (nargs < 2) {
            args[nargs++] = argv[i];
        } else {
            return fail(EXIT_USAGE, "UsageError", "too many arguments (see cluster --help)");
        }
    }
    if (!sub || !at)
        return fail(EXIT_USAGE, "UsageError", "usage: cluster SUBCOMMAND --at HOST:PORT");
    int want = !strcmp(sub, "list") ? 0 : !strcmp(sub, "assign") ? 2 : 1;
    if (strcmp(sub, "list") != 0 && strcmp(sub, "remove") != 0 && strcmp(sub, "assign") != 0 &&
        strcmp(sub, "transfer") != 0)
        return fail(EXIT_USAGE, "UsageError",
                    "unknown subcommand (list, remove, assign, transfer)");
    if (nargs != want)
        return fail(EXIT_USAGE, "UsageError", "wrong arguments (see cluster --help)");
    uint64_t id = want ? parse_id(args[0]) : 0;
    if (want && !id) return fail(EXIT_USAGE, "UsageError", "ID is a node id: a positive number");
    uint64_t role = NANA_DQL_VOTER;
    if (want == 2) {
        if (!strcmp(args[1], "voter"))
            role = NANA_DQL_VOTER;
        else if (!strcmp(args[1], "standby"))
            role = NANA_DQL_STANDBY;
        else if (!strcmp(args[1], "spare"))
            role = NANA_DQL_SPARE;
        else
            return fail(EXIT_USAGE, "UsageError", "the role is voter, standby or spare");
    }
    if ((cert || cert_key || ca) && !(cert && cert_key && ca))
        return fail(EXIT_USAGE, "UsageError", "--cert, --cert-key and --ca go together");
    const char *addrs[16];
    size_t n = split_at(at, addrs, 16);
    if (!n) return fail(EXIT_USAGE, "UsageError", "--at takes 1 to 16 HOST:PORT addresses");
    nana_dql_tls *tls = NULL;
    if (cert) {
        nana_dql_tls_opts to;
        nana_dql_tls_opts_default(&to);
        to.cert_file = cert;
        to.key_file = cert_key;
        to.ca_file = ca;
        if (nana_dql_tls_start(&to, &tls)) return fail(EXIT_USAGE, "TLSError", nana_errmsg());
        nana_dql_tls_use(tls);
    }
    nana_dql_conn *dq = NULL;
    if (nana_dql_connect_leader(addrs, n, NULL, &dq)) {
        int st = fail(EXIT_CONNECT, "ConnectionError", nana_errmsg());
        nana_dql_tls_stop(tls);
        return st;
    }
    int rc = 0;
    if (!strcmp(sub, "list")) {
        rc = list(dq, json);
    } else {
        int r = !strcmp(sub, "remove")   ? nana_dql_remove(dq, id)
                : !strcmp(sub, "assign") ? nana_dql_assign(dq, id, role)
                                         : nana_dql_transfer(dq, id);
        if (r)
            rc = fail(EXIT_SERVER, "ClusterError", nana_errmsg());
        else
            printf("null\n");
    }
    nana_dql_close(dq);
    nana_dql_tls_stop(tls);
    return rc;
}
