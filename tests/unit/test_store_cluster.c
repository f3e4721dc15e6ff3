/*
 * test_store_cluster.c - the store's clustered backend against a real dqlite
 * node (Debian's libdqlite) in this process, on a loopback port.
 *
 * The key-value calls: set, get, contains, len, keys, values, items,
 * to_dict, delete, pop, clear, batch_update and batch_delete, and many
 * asynchronous sets queued at once (the writer joins them into multi-row
 * statements; a key set three times keeps its last value). Two stores on
 * one clustered database (two servers of one cluster) see each other's
 * writes at once: no cache. The calls a cluster does not serve fail with
 * NANA_ERR_UNAVAILABLE and a message; a key holding NUL is refused. With
 * the node stopped, reads and writes fail with NANA_ERR_NOLEADER after
 * cluster_wait_ms, and nothing hangs.
 *
 * The link to the leader cut at chosen points, through a relay between the
 * store and a node whose cluster address is the relay's: cut before COMMIT
 * (a write's EXEC never reaches the node), the group is run again on a new
 * link and the write is applied once; cut after COMMIT reached the node
 * (its answer lost), the write fails with NANA_ERR_OUTCOME and is, in fact,
 * applied; a read cut off is run again and answers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "dqlite/nana_dqlite.h"
#include "store/nana_store.h"
#include "util/nana_err.h"
#include "dqlite_test.h"
#include "util/nana_time.h"

#include <dqlite.h>

#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <ftw.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define OK(call)                                                                                   \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        if (rc_) fail_msg("%s: %s (%s)", #call, nana_strerror(rc_), nana_errmsg());                \
    } while (0)

/* The node and the two stores every test shares. */
static char g_dir[512], g_addr[64];
static nana_dql_node *g_node;

static int setup(void **state)
{
    (void)state;
    const char *tmp = getenv("NANA_TEST_TMP");
    if (!tmp || !tmp[0]) tmp = "/tmp";
    mkdir(tmp, 0755);
    snprintf(g_dir, sizeof(g_dir), "%s/store-cluster-XXXXXX", tmp);
    if (!mkdtemp(g_dir)) return -1;
    free_address(g_addr, sizeof(g_addr));
    return nana_dql_node_start(1, g_addr, g_dir, 0, 0, NULL, &g_node) ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    nana_dql_node_stop(g_node);
    nftw(g_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

/* Opens the clustered database |name| with calls waiting |wait_ms| for a leader. */
static nana_store *open_clustered(const char *name, unsigned wait_ms)
{
    nana_store_opts o;
    nana_store_opts_init(&o);
    o.cluster_nodes = g_addr;
    o.cluster_wait_ms = wait_ms;
    nana_store *s = NULL;
    OK(nana_store_open(name, &o, &s));
    return s;
}

/* The value of |key| as a C string (the test's own copy), or NULL if absent. */
static char *get_text(nana_table *t, const char *key)
{
    nana_val *v = NULL;
    int rc = nana_kv_get(t, key, strlen(key), &v);
    if (rc == NANA_ERR_NOTFOUND) return NULL;
    OK(rc);
    char *out = strndup(v->data, v->len);
    nana_val_unref(v);
    return out;
}

static void expect_stored(nana_table *t, const char *key, const char *want)
{
    char *got = get_text(t, key);
    if (!want) {
        bool absent = got == NULL;
        free(got);
        assert_true(absent);
        return;
    }
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

/* The JSON text a listing call returns, compared with |want|. */
static void expect_listing(int (*fn)(nana_table *, nana_val **), nana_table *t, const char *want)
{
    nana_val *v = NULL;
    OK(fn(t, &v));
    assert_int_equal(v->len, strlen(want));
    assert_memory_equal(v->data, want, strlen(want));
    nana_val_unref(v);
}

static void test_key_value_calls(void **state)
{
    (void)state;
    nana_store *s = open_clustered("kv.db", 10000);
    nana_table *t = nana_store_default_table(s);
    OK(nana_kv_set(t, "a", 1, "1", 1));
    OK(nana_kv_set(t, "b", 1, "{\"x\":[1,2]}", 11));
    OK(nana_kv_set(t, "c", 1, "null", 4));
    expect_stored(t, "a", "1");
    expect_stored(t, "b", "{\"x\":[1,2]}");
    expect_stored(t, "c", "null");
    expect_stored(t, "zz", NULL);
    assert_int_equal(nana_kv_contains(t, "a", 1), 1);
    assert_int_equal(nana_kv_contains(t, "zz", 2), 0);
    int64_t n = 0;
    OK(nana_kv_len(t, &n));
    assert_int_equal(n, 3);
    expect_listing(nana_kv_keys, t, "[\"a\",\"b\",\"c\"]");
    expect_listing(nana_kv_values, t, "[1,{\"x\":[1,2]},null]");
    expect_listing(nana_kv_items, t, "[[\"a\",1],[\"b\",{\"x\":[1,2]}],[\"c\",null]]");
    expect_listing(nana_kv_to_dict, t, "{\"a\":1,\"b\":{\"x\":[1,2]},\"c\":null}");

    /* Overwrite, delete, pop. */
    OK(nana_kv_set(t, "a", 1, "\"one\"", 5));
    expect_stored(t, "a", "\"one\"");
    OK(nana_kv_delete(t, "c", 1));
    assert_int_equal(nana_kv_delete(t, "c", 1), NANA_ERR_NOTFOUND);
    nana_val *v = NULL;
    OK(nana_kv_pop(t, "a", 1, NULL, 0, &v));
    assert_memory_equal(v->data, "\"one\"", 5);
    nana_val_unref(v);
    expect_stored(t, "a", NULL);

    /* Batches, in one transaction each. */
    nana_kv_pair pairs[3] = {{"p", 1, "1", 1}, {"q", 1, "2", 1}, {"p", 1, "3", 1}};
    OK(nana_kv_batch_update(t, pairs, 3));
    expect_stored(t, "p", "3");
    expect_stored(t, "q", "2");
    nana_key keys[3] = {{"p", 1}, {"q", 1}, {"none", 4}};
    int64_t deleted = -1;
    OK(nana_kv_batch_delete(t, keys, 3, &deleted));
    assert_int_equal(deleted, 2);

    /* Another table of the same database. */
    nana_table *t2 = NULL;
    OK(nana_store_table(s, "other", NULL, &t2));
    OK(nana_kv_set(t2, "b", 1, "7", 1));
    expect_stored(t2, "b", "7");
    expect_stored(t, "b", "{\"x\":[1,2]}");

    OK(nana_kv_clear(t));
    OK(nana_kv_len(t, &n));
    assert_int_equal(n, 0);
    OK(nana_store_close(s));
}

/* Counts completions of asynchronous sets. */
typedef struct done_count {
    atomic_int done, failed;
} done_count;

static void on_done(void *arg, int rc, const char *errmsg)
{
    done_count *d = arg;
    if (rc) {
        fprintf(stderr, "async set failed: %s\n", errmsg);
        atomic_fetch_add(&d->failed, 1);
    }
    atomic_fetch_add(&d->done, 1);
}

static void test_grouped_sets(void **state)
{
    (void)state;
    nana_store *s = open_clustered("group.db", 10000);
    nana_table *t = nana_store_default_table(s);
    /* 3 rounds over 100 keys: queued together, so the writer takes them in
     * large groups and sends them as multi-row upserts. */
    enum { KEYS = 100, ROUNDS = 3 };
    done_count d = {0, 0};
    for (int r = 0; r < ROUNDS; r++) {
        for (int k = 0; k < KEYS; k++) {
            char key[16], val[16];
            int kl = snprintf(key, sizeof(key), "k%03d", k);
            int vl = snprintf(val, sizeof(val), "%d", r * 1000 + k);
            OK(nana_kv_set_async(t, key, (size_t)kl, val, (size_t)vl, on_done, &d));
        }
    }
    for (int i = 0; i < 2000 && atomic_load(&d.done) < KEYS * ROUNDS; i++) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(atomic_load(&d.done), KEYS * ROUNDS);
    assert_int_equal(atomic_load(&d.failed), 0);
    for (int k = 0; k < KEYS; k++) {
        char key[16], val[16];
        snprintf(key, sizeof(key), "k%03d", k);
        snprintf(val, sizeof(val), "%d", (ROUNDS - 1) * 1000 + k);
        expect_stored(t, key, val);
    }
    int64_t n = 0;
    OK(nana_kv_len(t, &n));
    assert_int_equal(n, KEYS);
    nana_store_stats st;
    nana_store_get_stats(s, &st);
    assert_true(st.commits < (uint64_t)(KEYS * ROUNDS)); /* grouped, not one commit each */
    OK(nana_store_close(s));
}

static void test_two_servers_one_database(void **state)
{
    (void)state;
    nana_store *s1 = open_clustered("shared.db", 10000);
    nana_store *s2 = open_clustered("shared.db", 10000);
    nana_table *t1 = nana_store_default_table(s1), *t2 = nana_store_default_table(s2);
    OK(nana_kv_set(t1, "k", 1, "1", 1));
    expect_stored(t2, "k", "1");
    OK(nana_kv_set(t2, "k", 1, "2", 1));
    expect_stored(t1, "k", "2"); /* no stale cache on the first */
    OK(nana_kv_delete(t1, "k", 1));
    assert_int_equal(nana_kv_contains(t2, "k", 1), 0);
    OK(nana_store_close(s2));
    OK(nana_store_close(s1));
}

static void test_refused_calls(void **state)
{
    (void)state;
    nana_store *s = open_clustered("refused.db", 10000);
    nana_table *t = nana_store_default_table(s);
    assert_int_equal(nana_store_begin(s), NANA_ERR_UNAVAILABLE);
    assert_non_null(strstr(nana_errmsg(), "not available on a clustered database"));
    assert_int_equal(nana_store_vacuum(s), NANA_ERR_UNAVAILABLE);
    assert_int_equal(nana_store_backup(s, "x.db"), NANA_ERR_UNAVAILABLE);
    nana_query q;
    nana_query_init(&q);
    q.table = "data";
    nana_val *v = NULL;
    assert_int_equal(nana_sql_query(s, &q, &v), NANA_ERR_UNAVAILABLE);
    assert_int_equal(nana_kv_increment(t, "n", 1, "1", 1, NULL, 0, NULL, 0, &v),
                     NANA_ERR_UNAVAILABLE);
    nana_key keys[1] = {{"a", 1}};
    assert_int_equal(nana_kv_batch_get(t, keys, 1, &v), NANA_ERR_UNAVAILABLE);
    /* A key dqlite could not carry is refused before it is queued. */
    assert_int_equal(nana_kv_set(t, "a\0b", 3, "1", 1), NANA_ERR_INVALID);
    /* The store still serves. */
    OK(nana_kv_set(t, "a", 1, "1", 1));
    expect_stored(t, "a", "1");
    OK(nana_store_close(s));
}

static void test_no_leader(void **state)
{
    (void)state;
    nana_store *s = open_clustered("lost.db", 500);
    nana_table *t = nana_store_default_table(s);
    OK(nana_kv_set(t, "a", 1, "1", 1));
    nana_dql_node_stop(g_node); /* the whole cluster is gone */
    g_node = NULL;
    uint64_t t0 = nana_now_ns();
    nana_val *v = NULL;
    assert_int_equal(nana_kv_get(t, "a", 1, &v), NANA_ERR_NOLEADER);
    assert_non_null(strstr(nana_errmsg(), "leader"));
    assert_int_equal(nana_kv_set(t, "b", 1, "2", 1), NANA_ERR_NOLEADER);
    assert_non_null(strstr(nana_errmsg(), "not applied"));
    /* Bounded: each call gives up after about cluster_wait_ms. */
    assert_true(nana_now_ns() - t0 < 20ull * 1000000000ull);
    OK(nana_store_close(s));
    /* The node comes back on the same data: the first write is there. */
    OK(nana_dql_node_start(1, g_addr, g_dir, 0, 0, NULL, &g_node));
    s = open_clustered("lost.db", 10000);
    t = nana_store_default_table(s);
    expect_stored(t, "a", "1");
    expect_stored(t, "b", NULL);
    OK(nana_store_close(s));
}

/* ---- a relay that cuts the link at a chosen message ---- */

enum { CUT_NONE = 0, CUT_AT_EXEC = 1, CUT_AFTER_COMMIT = 2, CUT_AT_QUERY = 3 };

typedef struct relay {
    int lfd;
    char addr[64];   /* where it listens (the node's cluster address) */
    char target[64]; /* the node's real listener */
    atomic_int cut;  /* CUT_*: fires once, then back to CUT_NONE */
    atomic_int fired;
    atomic_bool stop;
    atomic_int live; /* hop threads still running (they read this struct) */
    pthread_t thread;
} relay;

/* Connects to "127.0.0.1:PORT". */
static int dial(const char *addr)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((uint16_t)strtoul(strchr(addr, ':') + 1, NULL, 10));
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* One relayed connection: |c| the store's side, |n| the node's. Messages
 * from the store are read whole (the 8-byte handshake word first, then
 * 8-byte headers and their bodies) so the cut falls between them. */
typedef struct hop {
    relay *r;
    int c, n;
} hop;

/* Reads exactly |len| bytes, or fails (0 on success). */
static int read_full(int fd, uint8_t *p, size_t len)
{
    while (len) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (poll(&pf, 1, 200) != 1) return -1;
        ssize_t k = recv(fd, p, len, 0);
        if (k <= 0) return -1;
        p += k;
        len -= (size_t)k;
    }
    return 0;
}

static void *hop_main(void *arg)
{
    hop *h = arg;
    relay *r = h->r;
    uint8_t *msg = malloc(1 << 20);
    uint8_t back[65536];
    bool shook = false;
    while (msg && !atomic_load(&r->stop)) {
        struct pollfd pf[2] = {{.fd = h->c, .events = POLLIN}, {.fd = h->n, .events = POLLIN}};
        if (poll(pf, 2, 100) < 0) break;
        if (pf[1].revents) { /* the node's answers go back as they come */
            ssize_t k = recv(h->n, back, sizeof(back), 0);
            if (k <= 0 || send(h->c, back, (size_t)k, MSG_NOSIGNAL) != k) break;
        }
        if (!pf[0].revents) continue;
        size_t len = 8;
        if (read_full(h->c, msg, 8)) break;
        if (shook) {
            uint32_t words = (uint32_t)msg[0] | (uint32_t)msg[1] << 8 | (uint32_t)msg[2] << 16 |
                             (uint32_t)msg[3] << 24;
            if ((size_t)words * 8 + 8 > (1 << 20) || read_full(h->c, msg + 8, (size_t)words * 8))
                break;
            len += (size_t)words * 8;
            int type = msg[4], cut = atomic_load(&r->cut);
            bool commit = type == 8 && memmem(msg + 8, len - 8, "COMMIT", 6);
            if ((cut == CUT_AT_EXEC && type == 5) || (cut == CUT_AT_QUERY && type == 6)) {
                atomic_store(&r->cut, CUT_NONE);
                atomic_fetch_add(&r->fired, 1);
                break; /* never reaches the node */
            }
            if (cut == CUT_AFTER_COMMIT && commit) {
                atomic_store(&r->cut, CUT_NONE);
                atomic_fetch_add(&r->fired, 1);
                if (send(h->n, msg, len, MSG_NOSIGNAL) != (ssize_t)len) break;
                struct pollfd pn = {.fd = h->n, .events = POLLIN};
                if (poll(&pn, 1, 5000) == 1) (void)!recv(h->n, back, sizeof(back), 0);
                break; /* the commit ran; its answer is lost */
            }
        }
        shook = true;
        if (send(h->n, msg, len, MSG_NOSIGNAL) != (ssize_t)len) break;
    }
    free(msg);
    close(h->c);
    close(h->n);
    free(h);
    atomic_fetch_sub(&r->live, 1); /* the last touch of |r| */
    return NULL;
}

static void *relay_main(void *arg)
{
    relay *r = arg;
    while (!atomic_load(&r->stop)) {
        struct pollfd pf = {.fd = r->lfd, .events = POLLIN};
        if (poll(&pf, 1, 100) != 1) continue;
        int c = accept(r->lfd, NULL, NULL);
        if (c < 0) continue;
        hop *h = malloc(sizeof(*h));
        int n = dial(r->target);
        if (!h || n < 0) {
            free(h);
            close(c);
            if (n >= 0) close(n);
            continue;
        }
        *h = (hop){r, c, n};
        pthread_t t;
        atomic_fetch_add(&r->live, 1);
        if (pthread_create(&t, NULL, hop_main, h) == 0)
            pthread_detach(t);
        else
            hop_main(h);
    }
    return NULL;
}

static void test_link_cut(void **state)
{
    (void)state;
    /* A node whose cluster address is the relay: the store finds the leader
     * there and every link goes through it. */
    relay r = {.cut = CUT_NONE};
    r.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(r.lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(r.lfd, 64), 0);
    socklen_t l = sizeof(sa);
    assert_int_equal(getsockname(r.lfd, (struct sockaddr *)&sa, &l), 0);
    snprintf(r.addr, sizeof(r.addr), "127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
    free_address(r.target, sizeof(r.target));
    char dir[600];
    snprintf(dir, sizeof(dir), "%s/relayed", g_dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    dqlite_node *dn = NULL;
    assert_int_equal(dqlite_node_create(1, r.addr, dir, &dn), 0);
    assert_int_equal(dqlite_node_set_bind_address(dn, r.target), 0);
    assert_int_equal(dqlite_node_start(dn), 0);
    assert_int_equal(pthread_create(&r.thread, NULL, relay_main, &r), 0);

    nana_store_opts o;
    nana_store_opts_init(&o);
    o.cluster_nodes = r.addr;
    o.cluster_wait_ms = 5000;
    nana_store *s = NULL;
    OK(nana_store_open("cut.db", &o, &s));
    nana_table *t = nana_store_default_table(s);
    OK(nana_kv_set(t, "warm", 4, "0", 1)); /* the writer's link is up */

    /* Cut before COMMIT: the group runs again on a new link, applied once. */
    atomic_store(&r.cut, CUT_AT_EXEC);
    OK(nana_kv_set(t, "a", 1, "1", 1));
    assert_int_equal(atomic_load(&r.fired), 1);
    expect_stored(t, "a", "1");

    /* Cut after COMMIT reached the node: the outcome is unknown to the
     * store, which says so; the write was in fact applied. */
    atomic_store(&r.cut, CUT_AFTER_COMMIT);
    assert_int_equal(nana_kv_set(t, "b", 1, "2", 1), NANA_ERR_OUTCOME);
    assert_non_null(strstr(nana_errmsg(), "may or may not have been applied"));
    assert_int_equal(atomic_load(&r.fired), 2);
    expect_stored(t, "b", "2");

    /* A read cut off runs again and answers. */
    atomic_store(&r.cut, CUT_AT_QUERY);
    expect_stored(t, "a", "1");
    assert_int_equal(atomic_load(&r.fired), 3);

    /* The store goes on: a set after all that. */
    OK(nana_kv_set(t, "c", 1, "3", 1));
    expect_stored(t, "c", "3");
    OK(nana_store_close(s));
    atomic_store(&r.stop, true);
    pthread_join(r.thread, NULL);
    close(r.lfd);
    dqlite_node_stop(dn);
    dqlite_node_destroy(dn);
    /* The hops see the close and stop reading |r| (on this stack) before
     * this function returns. */
    uint64_t deadline = nana_now_ns() + 5000000000ull;
    while (atomic_load(&r.live) > 0 && nana_now_ns() < deadline)
        usleep(10000);
    assert_int_equal(atomic_load(&r.live), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_value_calls),
        cmocka_unit_test(test_grouped_sets),
        cmocka_unit_test(test_two_servers_one_database),
        cmocka_unit_test(test_refused_calls),
        cmocka_unit_test(test_link_cut),
        cmocka_unit_test(test_no_leader),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
