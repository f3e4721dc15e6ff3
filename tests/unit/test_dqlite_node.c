/*
 * test_dqlite_node.c - the wire-protocol client against real dqlite nodes
 * (Debian's libdqlite) in this process, on loopback ports, in a scratch
 * directory.
 *
 * One node: the handshake, the leader, a database, a table written with
 * parameters of every type and read back, BEGIN/COMMIT of 1,000 rows, a
 * result the server splits over several messages, a FAILURE for bad SQL
 * (the connection stays usable), a result past the client's limit (the
 * query is interrupted, the connection stays usable), a small statement
 * cache that has to evict.
 *
 * Three nodes: the first bootstraps, the others join (ADD, ASSIGN voter);
 * CLUSTER lists three voters; a write through the leader is read back
 * through another node's leader after leadership moved; a write sent to a
 * follower is refused as "not leader". Every wait is bounded by the
 * client's deadlines.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "dqlite/nana_dqlite.h"
#include "util/nana_err.h"
#include "dqlite_test.h"
#include "util/nana_time.h"

#include <arpa/inet.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* A fresh scratch directory under the build's test-tmp. */
static void scratch_dir(char *out, size_t outlen, const char *name)
{
    const char *dir = getenv("NANA_TEST_TMP");
    if (!dir || !dir[0]) dir = "/tmp";
    mkdir(dir, 0755);
    snprintf(out, outlen, "%s/%s-XXXXXX", dir, name);
    assert_non_null(mkdtemp(out));
}

/* Fails the test with the client's message. */
#define OK(call)                                                                                   \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        if (rc_) fail_msg("%s: %s (%s)", #call, nana_strerror(rc_), nana_errmsg());                \
    } while (0)

static int64_t query_count(nana_dql_conn *c, const char *sql)
{
    nana_dql_rows rows;
    OK(nana_dql_query(c, sql, NULL, 0, &rows));
    assert_int_equal(rows.nrows, 1);
    assert_int_equal(nana_dql_rows_at(&rows, 0, 0)->type, NANA_DQL_INTEGER);
    int64_t n = nana_dql_rows_at(&rows, 0, 0)->i;
    nana_dql_rows_free(&rows);
    return n;
}

/* Values of every type in, and back out as the server types them. */
static void check_every_type(nana_dql_conn *c)
{
    OK(nana_dql_exec_sql(c,
                         "CREATE TABLE t (i INTEGER, f REAL, s TEXT, b BLOB, n TEXT, "
                         "d DATETIME, ok BOOLEAN)",
                         NULL, 0, NULL));
    const uint8_t blob[5] = {0, 1, 0xff, 0, 7};
    nana_dql_value p[7] = {nana_dql_int(-42),
                           nana_dql_float(3.25),
                           nana_dql_text("héllo wörld", strlen("héllo wörld")),
                           nana_dql_blob(blob, sizeof(blob)),
                           nana_dql_null(),
                           nana_dql_text("2026-12-07 08:00:00", 19),
                           nana_dql_int(1)};
    nana_dql_result res;
    OK(nana_dql_exec(c, "INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?)", p, 7, &res));
    assert_int_equal(res.rows_affected, 1);
    assert_int_equal(res.last_insert_id, 1);
    OK(nana_dql_exec(c, "INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?)", p, 7, &res));
    assert_int_equal(res.last_insert_id, 2);

    nana_dql_rows rows;
    nana_dql_value one = nana_dql_int(1);
    OK(nana_dql_query(c, "SELECT i, f, s, b, n, d, ok FROM t WHERE rowid = ?", &one, 1, &rows));
    assert_true(rows.done);
    assert_int_equal(rows.ncols, 7);
    assert_int_equal(rows.nrows, 1);
    assert_string_equal(rows.names[0], "i");
    assert_string_equal(rows.names[6], "ok");
    const nana_dql_value *v = rows.values;
    assert_int_equal(v[0].type, NANA_DQL_INTEGER);
    assert_int_equal(v[0].i, -42);
    assert_int_equal(v[1].type, NANA_DQL_FLOAT);
    assert_true(v[1].f == 3.25);
    assert_int_equal(v[2].type, NANA_DQL_TEXT);
    assert_string_equal(v[2].p, "héllo wörld");
    assert_int_equal(v[3].type, NANA_DQL_BLOB);
    assert_int_equal(v[3].len, sizeof(blob));
    assert_memory_equal(v[3].p, blob, sizeof(blob));
    assert_int_equal(v[4].type, NANA_DQL_NULL);
    /* dqlite types a DATETIME column's text as ISO-8601 and a BOOLEAN's
     * integer as a boolean. */
    assert_int_equal(v[5].type, NANA_DQL_ISO8601);
    assert_non_null(strstr(v[5].p, "2026-12-07"));
    assert_int_equal(v[6].type, NANA_DQL_BOOLEAN);
    assert_int_equal(v[6].i, 1);
    nana_dql_rows_free(&rows);
}

/* BEGIN, 1,000 inserts, COMMIT: as one text, and as prepared statements. */
static void check_transaction(nana_dql_conn *c)
{
    OK(nana_dql_exec_sql(c, "CREATE TABLE k (id INTEGER PRIMARY KEY, v TEXT)", NULL, 0, NULL));
    nana_buf sql;
    nana_buf_init(&sql, 0);
    OK(nana_buf_puts(&sql, "BEGIN;"));
    for (int i = 0; i < 1000; i++)
        OK(nana_buf_printf(&sql, "INSERT INTO k (v) VALUES ('text row %d');", i));
    OK(nana_buf_puts(&sql, "COMMIT;"));
    OK(nana_dql_exec_sql(c, sql.data, NULL, 0, NULL));
    nana_buf_free(&sql);
    assert_int_equal(query_count(c, "SELECT count(*) FROM k"), 1000);

    OK(nana_dql_exec_sql(c, "BEGIN", NULL, 0, NULL));
    for (int i = 0; i < 1000; i++) {
        char text[64];
        int len = snprintf(text, sizeof(text), "prepared row %d, padded to be longer", i);
        nana_dql_value p = nana_dql_text(text, (size_t)len);
        OK(nana_dql_exec(c, "INSERT INTO k (v) VALUES (?)", &p, 1, NULL));
    }
    OK(nana_dql_exec_sql(c, "COMMIT", NULL, 0, NULL));
    assert_int_equal(query_count(c, "SELECT count(*) FROM k"), 2000);

    /* 2,000 rows of text are more than one message of rows. */
    nana_dql_rows rows;
    OK(nana_dql_query(c, "SELECT id, v FROM k ORDER BY id", NULL, 0, &rows));
    assert_int_equal(rows.nrows, 2000);
    assert_true(rows.done);
    assert_true(rows.nbodies > 1);
    assert_int_equal(nana_dql_rows_at(&rows, 1999, 0)->i, 2000);
    assert_string_equal(nana_dql_rows_at(&rows, 1000, 1)->p, "prepared row 0, padded to be longer");
    nana_dql_rows_free(&rows);
}

/* Bad SQL is a FAILURE with SQLite's message; the connection goes on. */
static void check_failure(nana_dql_conn *c)
{
    nana_dql_result res;
    int rc = nana_dql_exec(c, "SELEC nonsense", NULL, 0, &res);
    assert_int_equal(rc, NANA_ERR_DB);
    assert_non_null(strstr(nana_errmsg(), "syntax error"));
    assert_int_equal(nana_dql_last_code(c), 1); /* SQLITE_ERROR */
    rc = nana_dql_exec_sql(c, "INSERT INTO missing VALUES (1)", NULL, 0, &res);
    assert_int_equal(rc, NANA_ERR_DB);
    assert_non_null(strstr(nana_errmsg(), "no such table"));
    nana_dql_value p = nana_dql_int(1);
    rc = nana_dql_exec(c, "INSERT INTO k (id, v) VALUES (?, 'dup')", &p, 1, &res);
    assert_int_equal(rc, NANA_ERR_DB);
    assert_int_equal(nana_dql_last_code(c) & 0xff, 19); /* SQLITE_CONSTRAINT */
    assert_int_equal(query_count(c, "SELECT count(*) FROM k"), 2000);
    assert_int_equal(nana_dql_last_code(c), 0);
}

/* A result past the client's limit: refused, the query interrupted, the
 * connection still in step with the server. */
static void check_result_limit(const char *addr)
{
    nana_dql_opts o;
    nana_dql_opts_default(&o);
    o.limits.result_max = (size_t)16 * 1024;
    nana_dql_conn *c;
    OK(nana_dql_connect(addr, &o, &c));
    OK(nana_dql_open(c, "test.db"));
    nana_dql_rows rows;
    int rc = nana_dql_query(c, "SELECT id, v FROM k ORDER BY id", NULL, 0, &rows);
    assert_int_equal(rc, NANA_ERR_TOOBIG);
    assert_true(rows.nrows < 2000);
    nana_dql_rows_free(&rows);
    assert_int_equal(query_count(c, "SELECT count(*) FROM k"), 2000);
    /* Again, to see nothing of the first is left in the stream. */
    rc = nana_dql_query(c, "SELECT id, v FROM k ORDER BY id", NULL, 0, &rows);
    assert_int_equal(rc, NANA_ERR_TOOBIG);
    nana_dql_rows_free(&rows);
    assert_int_equal(query_count(c, "SELECT max(id) FROM k"), 2000);
    nana_dql_close(c);
}

/* A cache of two statements used by four: evictions finalize on the
 * server and the answers stay right. */
static void check_stmt_cache(const char *addr)
{
    nana_dql_opts o;
    nana_dql_opts_default(&o);
    o.stmt_cache = 2;
    nana_dql_conn *c;
    OK(nana_dql_connect(addr, &o, &c));
    OK(nana_dql_open(c, "test.db"));
    for (int round = 0; round < 5; round++) {
        for (int64_t k = 1; k <= 4; k++) {
            char sql[64];
            snprintf(sql, sizeof(sql), "SELECT id + %d FROM k WHERE id = ?", (int)k);
            nana_dql_value p = nana_dql_int(k);
            nana_dql_rows rows;
            OK(nana_dql_query(c, sql, &p, 1, &rows));
            assert_int_equal(rows.nrows, 1);
            assert_int_equal(nana_dql_rows_at(&rows, 0, 0)->i, 2 * k);
            nana_dql_rows_free(&rows);
        }
    }
    nana_dql_close(c);
    /* No cache at all: each statement finalized after use. */
    o.stmt_cache = 0;
    OK(nana_dql_connect(addr, &o, &c));
    OK(nana_dql_open(c, "test.db"));
    assert_int_equal(query_count(c, "SELECT count(*) FROM k"), 2000);
    assert_int_equal(query_count(c, "SELECT count(*) FROM k"), 2000);
    nana_dql_close(c);
}

static void test_one_node(void **state)
{
    (void)state;
    char dir[512], addr[64];
    scratch_dir(dir, sizeof(dir), "dqlite1");
    free_address(addr, sizeof(addr));
    nana_dql_node *node;
    OK(nana_dql_node_start(1, addr, dir, 0, 0, NULL, &node));

    const char *cluster[1] = {addr};
    nana_dql_conn *c;
    OK(nana_dql_connect_leader(cluster, 1, NULL, &c));
    uint64_t id;
    char leader[64];
    OK(nana_dql_leader(c, &id, leader, sizeof(leader)));
    assert_int_equal(id, 1);
    assert_string_equal(leader, addr);
    assert_string_equal(nana_dql_conn_address(c), addr);

    /* Before OPEN there is no database to run SQL on. */
    assert_int_equal(nana_dql_exec_sql(c, "SELECT 1", NULL, 0, NULL), NANA_ERR_INVALID);
    OK(nana_dql_open(c, "test.db"));
    assert_int_equal(nana_dql_open(c, "other.db"), NANA_ERR_INVALID);

    check_every_type(c);
    check_transaction(c);
    check_failure(c);
    check_result_limit(addr);
    check_stmt_cache(addr);

    nana_dql_node_info *nodes;
    size_t n;
    OK(nana_dql_cluster(c, &nodes, &n));
    assert_int_equal(n, 1);
    assert_int_equal(nodes[0].id, 1);
    assert_string_equal(nodes[0].address, addr);
    assert_int_equal(nodes[0].role, NANA_DQL_VOTER);
    free(nodes);

    nana_dql_close(c);
    nana_dql_node_stop(node);

    /* With the node gone: a clean error within the connect timeout. */
    nana_dql_opts o;
    nana_dql_opts_default(&o);
    o.leader_timeout_ms = 300;
    uint64_t t0 = nana_now_ns();
    assert_int_equal(nana_dql_connect_leader(cluster, 1, &o, &c), NANA_ERR_TIMEOUT);
    assert_null(c);
    assert_true(nana_now_ns() - t0 < 5000000000ull);
    remove_tree(dir);
}

/* Asks |from| who leads until it names node |want| (bounded). */
static nana_dql_conn *leader_is(const char *from, uint64_t want)
{
    const char *one[1] = {from};
    uint64_t deadline = nana_now_ns() + 15000000000ull;
    while (nana_now_ns() < deadline) {
        nana_dql_conn *c;
        OK(nana_dql_connect_leader(one, 1, NULL, &c));
        uint64_t id;
        char addr[64];
        OK(nana_dql_leader(c, &id, addr, sizeof(addr)));
        if (id == want) return c;
        nana_dql_close(c);
        usleep(50000);
    }
    fail_msg("node %llu did not become the leader", (unsigned long long)want);
    return NULL;
}

/* Figures, not assertions (printed for the record): single-row commits
 * per second, and 1,000 rows in one transaction, prepared or as one text. */
static void measure(nana_dql_conn *c)
{
    OK(nana_dql_exec_sql(c, "CREATE TABLE m (id INTEGER PRIMARY KEY, v TEXT)", NULL, 0, NULL));
    const char *ins = "INSERT INTO m (v) VALUES (?)";
    nana_dql_value p = nana_dql_text("a value of some thirty bytes..", 30);
    uint64_t t0 = nana_now_ns(), t;
    unsigned n = 0;
    do {
        OK(nana_dql_exec(c, ins, &p, 1, NULL));
        n++;
        t = nana_now_ns();
    } while (t - t0 < 1000000000ull);
    double commits = n / ((double)(t - t0) / 1e9);
    double best_prep = 1e9, best_text = 1e9;
    nana_buf sql;
    nana_buf_init(&sql, 0);
    OK(nana_buf_puts(&sql, "BEGIN;"));
    for (int i = 0; i < 1000; i++)
        OK(nana_buf_puts(&sql, "INSERT INTO m (v) VALUES ('a value of some thirty bytes..');"));
    OK(nana_buf_puts(&sql, "COMMIT;"));
    for (int round = 0; round < 5; round++) {
        t0 = nana_now_ns();
        OK(nana_dql_exec_sql(c, "BEGIN", NULL, 0, NULL));
        for (int i = 0; i < 1000; i++)
            OK(nana_dql_exec(c, ins, &p, 1, NULL));
        OK(nana_dql_exec_sql(c, "COMMIT", NULL, 0, NULL));
        t = nana_now_ns();
        if ((double)(t - t0) / 1e6 < best_prep) best_prep = (double)(t - t0) / 1e6;
        t0 = nana_now_ns();
        OK(nana_dql_exec_sql(c, sql.data, NULL, 0, NULL));
        t = nana_now_ns();
        if ((double)(t - t0) / 1e6 < best_text) best_text = (double)(t - t0) / 1e6;
    }
    nana_buf_free(&sql);
    print_message("dqlite, 3 nodes on loopback: %.0f single-row commits/s; 1,000 rows in one "
                  "transaction: %.1f ms prepared, %.1f ms as one text (best of 5)\n",
                  commits, best_prep, best_text);
}

static void test_three_nodes(void **state)
{
    (void)state;
    char root[512], dirs[3][600], addrs[3][64];
    scratch_dir(root, sizeof(root), "dqlite3");
    nana_dql_node *nodes[3];
    for (int i = 0; i < 3; i++) {
        snprintf(dirs[i], sizeof(dirs[i]), "%s/n%d", root, i + 1);
        assert_int_equal(mkdir(dirs[i], 0700), 0);
        free_address(addrs[i], sizeof(addrs[i]));
        OK(nana_dql_node_start((uint64_t)i + 1, addrs[i], dirs[i], 0, 0, NULL, &nodes[i]));
    }
    const char *first[1] = {addrs[0]};
    OK(nana_dql_node_join(first, 1, 2, addrs[1], NULL));
    OK(nana_dql_node_join(first, 1, 3, addrs[2], NULL));

    nana_dql_conn *c;
    OK(nana_dql_connect_leader(first, 1, NULL, &c));
    nana_dql_node_info *info;
    size_t n;
    OK(nana_dql_cluster(c, &info, &n));
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(info[i].id, i + 1);
        assert_string_equal(info[i].address, addrs[i]);
        assert_int_equal(info[i].role, NANA_DQL_VOTER);
    }
    free(info);
    /* Adding a node that is there already is the leader's refusal. */
    assert_int_equal(nana_dql_add(c, 2, addrs[1]), NANA_ERR_DB);

    OK(nana_dql_open(c, "app.db"));
    OK(nana_dql_exec_sql(c, "CREATE TABLE kv (k TEXT PRIMARY KEY, v BLOB)", NULL, 0, NULL));
    nana_dql_value p[2] = {nana_dql_text("key", 3), nana_dql_blob("value", 5)};
    OK(nana_dql_exec(c, "INSERT INTO kv VALUES (?, ?)", p, 2, NULL));
    measure(c);

    /* Leadership moves to node 2; node 3 names it, and it has the row. */
    OK(nana_dql_transfer(c, 2));
    nana_dql_close(c);
    c = leader_is(addrs[2], 2);
    assert_string_equal(nana_dql_conn_address(c), addrs[1]);
    OK(nana_dql_open(c, "app.db"));
    nana_dql_rows rows;
    OK(nana_dql_query(c, "SELECT v FROM kv WHERE k = ?", p, 1, &rows));
    assert_int_equal(rows.nrows, 1);
    assert_int_equal(nana_dql_rows_at(&rows, 0, 0)->len, 5);
    assert_memory_equal(nana_dql_rows_at(&rows, 0, 0)->p, "value", 5);
    nana_dql_rows_free(&rows);
    nana_dql_close(c);

    /* A follower refuses writes as "not leader". */
    nana_dql_conn *f;
    OK(nana_dql_connect(addrs[2], NULL, &f));
    OK(nana_dql_open(f, "app.db"));
    int rc = nana_dql_exec(f, "INSERT INTO kv VALUES ('x', 'y')", NULL, 0, NULL);
    assert_int_equal(rc, NANA_ERR_UNAVAILABLE);
    assert_int_equal(nana_dql_last_code(f), NANA_DQL_CODE_NOT_LEADER);
    nana_dql_close(f);

    /* Node 3 leaves: the cluster lists two. */
    c = leader_is(addrs[0], 2);
    OK(nana_dql_remove(c, 3));
    OK(nana_dql_cluster(c, &info, &n));
    assert_int_equal(n, 2);
    free(info);
    nana_dql_close(c);

    for (int i = 2; i >= 0; i--)
        nana_dql_node_stop(nodes[i]);
    remove_tree(root);
}

/* ---- servers that misbehave ---- */

/* A listening socket on loopback with |backlog|; its address in |addr|. */
static int listen_loopback(int backlog, char *addr, size_t addrlen)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, backlog), 0);
    socklen_t l = sizeof(sa);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &l), 0);
    snprintf(addr, addrlen, "127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
    return fd;
}

/* A server of one connection: reads the handshake and CLIENT request, sends
 * |reply| (maybe nothing), then waits for the client to go (each wait
 * bounded by 5 s). */
typedef struct fake_server {
    int lfd;
    const uint8_t *reply;
    size_t len;
    pthread_t thread;
} fake_server;

static void *fake_main(void *arg)
{
    fake_server *f = arg;
    struct pollfd p = {.fd = f->lfd, .events = POLLIN};
    if (poll(&p, 1, 5000) != 1) return NULL;
    int fd = accept(f->lfd, NULL, NULL);
    if (fd < 0) return NULL;
    uint8_t in[24];
    size_t got = 0;
    while (got < sizeof(in)) {
        p.fd = fd;
        if (poll(&p, 1, 5000) != 1) break;
        ssize_t k = recv(fd, in + got, sizeof(in) - got, 0);
        if (k <= 0) break;
        got += (size_t)k;
    }
    if (f->len) (void)!send(fd, f->reply, f->len, MSG_NOSIGNAL);
    if (f->len % 8 == 0) { /* keep the connection until the client closes it */
        p.fd = fd;
        while (poll(&p, 1, 5000) == 1 && recv(fd, in, sizeof(in), 0) > 0) {
        }
    }
    close(fd);
    return NULL;
}

/* Connects to a fake server answering |reply|; returns what connect did. */
static int connect_fake(const uint8_t *reply, size_t len, int io_timeout_ms)
{
    fake_server f = {.reply = reply, .len = len};
    char addr[64];
    f.lfd = listen_loopback(4, addr, sizeof(addr));
    assert_int_equal(pthread_create(&f.thread, NULL, fake_main, &f), 0);
    nana_dql_opts o;
    nana_dql_opts_default(&o);
    o.io_timeout_ms = io_timeout_ms;
    nana_dql_conn *c = NULL;
    int rc = nana_dql_connect(addr, &o, &c);
    if (!rc) nana_dql_close(c);
    pthread_join(f.thread, NULL);
    close(f.lfd);
    return rc;
}

static void test_bad_servers(void **state)
{
    (void)state;
    /* Silence: the request's deadline, not a hang. */
    uint64_t t0 = nana_now_ns();
    assert_int_equal(connect_fake(NULL, 0, 200), NANA_ERR_TIMEOUT);
    assert_true(nana_now_ns() - t0 < 3000000000ull);

    /* A body past the limit announced in the header. */
    const uint8_t huge[8] = {0xff, 0xff, 0xff, 0xff, NANA_DQL_RESP_WELCOME, 0, 0, 0};
    assert_int_equal(connect_fake(huge, sizeof(huge), 2000), NANA_ERR_TOOBIG);

    /* Another response than WELCOME. */
    const uint8_t db[16] = {1, 0, 0, 0, NANA_DQL_RESP_DB, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0};
    assert_int_equal(connect_fake(db, sizeof(db), 2000), NANA_ERR_INVALID);
    assert_non_null(strstr(nana_errmsg(), "type 4"));

    /* A FAILURE: the server's message comes through. */
    uint8_t fail[24] = {2, 0, 0, 0, NANA_DQL_RESP_FAILURE, 0, 0, 0, 1};
    memcpy(fail + 16, "go away", 8);
    assert_int_equal(connect_fake(fail, sizeof(fail), 2000), NANA_ERR_DB);
    assert_non_null(strstr(nana_errmsg(), "go away"));

    /* A message cut short by the end of the connection. */
    const uint8_t cut[12] = {2, 0, 0, 0, NANA_DQL_RESP_WELCOME, 0, 0, 0, 1, 2, 3, 4};
    assert_int_equal(connect_fake(cut, sizeof(cut), 2000), NANA_ERR_IO);
    assert_non_null(strstr(nana_errmsg(), "closed"));

    /* A text that never ends. */
    uint8_t noend[24] = {2, 0, 0, 0, NANA_DQL_RESP_FAILURE, 0, 0, 0, 1};
    memset(noend + 16, 'x', 8);
    assert_int_equal(connect_fake(noend, sizeof(noend), 2000), NANA_ERR_INVALID);

    /* Not even TCP: a listener whose accept queue is full drops the SYN,
     * and connect_timeout_ms ends the wait. */
    char addr[64];
    int lfd = listen_loopback(0, addr, sizeof(addr));
    nana_dql_opts o;
    nana_dql_opts_default(&o);
    o.connect_timeout_ms = 200;
    o.io_timeout_ms = 100; /* while the queue has room, connects get through */
    int fillers[4];
    int nfill = 0;
    int rc = 0;
    nana_dql_conn *c = NULL;
    t0 = nana_now_ns();
    /* Fill the queue with connections nobody accepts, until one times out. */
    while (nfill < 4) {
        rc = nana_dql_connect(addr, &o, &c);
        if (rc == NANA_ERR_TIMEOUT && strstr(nana_errmsg(), "no answer")) break;
        struct sockaddr_in sa;
        memset(&sa, 0, sizeof(sa));
        sa.sin_family = AF_INET;
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        sa.sin_port = htons((uint16_t)strtoul(strrchr(addr, ':') + 1, NULL, 10));
        fillers[nfill] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        (void)!connect(fillers[nfill], (struct sockaddr *)&sa, sizeof(sa));
        nfill++;
        usleep(20000);
    }
    assert_int_equal(rc, NANA_ERR_TIMEOUT);
    assert_non_null(strstr(nana_errmsg(), "no answer in 200 ms"));
    assert_true(nana_now_ns() - t0 < 10000000000ull);
    for (int i = 0; i < nfill; i++)
        close(fillers[i]);
    close(lfd);

    /* Addresses that are not numeric host:port. */
    const char *bad[] = {
        "localhost:9001", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536", "[::1]9001",
        "127.0.0.1:9x",   ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(nana_dql_connect(bad[i], NULL, &c), NANA_ERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_servers),
        cmocka_unit_test(test_one_node),
        cmocka_unit_test(test_three_nodes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
