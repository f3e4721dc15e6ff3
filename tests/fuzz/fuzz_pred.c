/*
 * fuzz_pred.c - libFuzzer harness for predicates over JSON fields.
 *
 * Big idea: the input bytes build a predicate tree (comparisons with
 * fields and values from the input or from a small dictionary that hits
 * the stored rows, AND / OR / NOT, missing operands, shared subtrees, a
 * NOT that points at itself, trees past the node and depth limits). Each
 * tree goes to nana_pred_check and to nana_kv_select on a store of rows
 * of every kind (objects, arrays, scalars, text that is not JSON, NULL).
 * Checks: a tree the check refuses is refused by select with the same
 * code; a tree it accepts never makes select fail (no "malformed JSON",
 * no bad path reaching SQLite); and p and NOT p split the rows holding
 * JSON text exactly. The store lives for the whole run; ASan finds leaks.
 */
#include "fuzz_check.h"
#include "store/nana_store.h"

#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_BUILD 300 /* past NANA_PRED_MAX_NODES, to reach the limit */

static nana_store *store;
static nana_table *table;
static int64_t json_rows; /* rows whose value is JSON text */

static const char *const fields[] = {
    "age", "name",   "ok",      "nil",      "obj",
    "arr", "a.b[1]", "tags[0]", "a.b[2].c", "x'); DROP TABLE data; --"};
static const char *const values[] = {"30",    "41.5",  "\"ann\"", "\"b\"",
                                     "true",  "false", "null",    "{\"x\":1}",
                                     "[1,2]", "1e400", "-0",      "\"\\u00e9\""};

/* Opens the store once, with rows of every kind. */
static void open_store(void)
{
    const char *dir = getenv("NANA_TEST_TMP");
    char path[512];
    snprintf(path, sizeof(path), "%s/fuzz_pred-%d.db", dir && dir[0] ? dir : "/tmp", (int)getpid());
    unlink(path);
    nana_store_opts o;
    nana_store_opts_init(&o);
    o.sync = NANA_SYNC_OFF;
    CHECK(nana_store_open(path, &o, &store) == 0);
    table = nana_store_default_table(store);
    static const char *const rows[][2] = {
        {"a", "{\"age\":30,\"name\":\"ann\",\"ok\":true,\"nil\":null,\"obj\":{\"x\":1},"
              "\"arr\":[1,2],\"a\":{\"b\":[0,1,{\"c\":7}]},\"tags\":[\"t\"]}"},
        {"b", "{\"age\":41.5,\"name\":\"b\",\"ok\":false}"},
        {"c", "{\"age\":\"30\",\"name\":\"\xc3\xa9\"}"},
        {"d", "[1,2,3]"},
        {"e", "5"},
        {"f", "\"text\""},
        {"g", "{\"age\":null,\"a\":{\"b\":{\"1\":1}}}"},
        {"h", "{}"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        CHECK(nana_kv_set(table, rows[i][0], strlen(rows[i][0]), rows[i][1], strlen(rows[i][1])) ==
              0);
    json_rows = (int64_t)(sizeof(rows) / sizeof(rows[0]));
    /* What another program may have written: not JSON, NULL. */
    sqlite3 *db;
    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    CHECK(sqlite3_exec(db,
                       "INSERT INTO data(key,value) VALUES ('x1','{bad'),('x2',NULL),"
                       "('x3','{\"age\":30')",
                       NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(db);
}

typedef struct builder {
    const uint8_t *p;
    size_t n, pos;
    nana_pred nodes[MAX_BUILD];
    size_t used;
} builder;

static uint8_t next_byte(builder *b)
{
    return b->pos < b->n ? b->p[b->pos++] : 0;
}

/* Takes |len| bytes of input as text (fewer at the end of the input). */
static const char *take(builder *b, size_t len, size_t *got)
{
    const char *s = (const char *)b->p + b->pos;
    if (len > b->n - b->pos) len = b->n - b->pos;
    b->pos += len;
    *got = len;
    return s;
}

/* Builds one node (and its subtree) from the input. */
static const nana_pred *build(builder *b)
{
    if (b->used == MAX_BUILD) return &b->nodes[0];
    nana_pred *p = &b->nodes[b->used++];
    memset(p, 0, sizeof(*p));
    uint8_t op = next_byte(b);
    if (op == 0xff) { /* a NOT that is its own operand */
        p->op = NANA_PRED_NOT;
        p->left = p;
        return p;
    }
    p->op = (nana_pred_op)(op & 7);
    if (op & 0x20 && b->used > 1) return &b->nodes[op % (b->used - 1)]; /* a shared subtree */
    if (p->op <= NANA_PRED_LTE) {
        uint8_t f = next_byte(b), v = next_byte(b);
        if (f & 0x80) {
            p->field = take(b, f & 0x3f, &p->flen);
        } else {
            p->field = fields[f % (sizeof(fields) / sizeof(fields[0]))];
            p->flen = strlen(p->field);
        }
        if (v & 0x80) {
            p->value = take(b, v & 0x3f, &p->vlen);
        } else {
            p->value = values[v % (sizeof(values) / sizeof(values[0]))];
            p->vlen = strlen(p->value);
        }
        if ((op & 0xc0) == 0xc0) p->left = p; /* operands where none belong */
        return p;
    }
    if (p->op == NANA_PRED_NOT) {
        p->left = build(b);
        if ((op & 0xc0) == 0xc0) p->right = p->left;
        return p;
    }
    if (p->op == NANA_PRED_AND || p->op == NANA_PRED_OR) {
        p->left = build(b);
        if ((op & 0xc0) != 0xc0) p->right = build(b);
        return p;
    }
    return p; /* an unknown operator */
}

/* Rows select finds for |p|; a negative error code if it fails. */
static int64_t count(const nana_pred *p)
{
    nana_select q = {.pred = p, .limit = -1};
    nana_rows *r = NULL;
    int rc = nana_kv_select(table, &q, &r);
    if (rc) {
        CHECK(r == NULL);
        return rc;
    }
    int64_t n = (int64_t)r->n;
    CHECK(!r->more);
    nana_rows_free(r);
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!store) open_store();
    if (size > 4096) return 0;
    static builder b;
    b.p = data;
    b.n = size;
    b.pos = 0;
    b.used = 0;
    if (size == 0) b.p = (const uint8_t *)"";
    /* b.p must be valid even when size is 0: take() reads from it. */
    const nana_pred *root = build(&b);
    int rc = nana_pred_check(root);
    int64_t n = count(root);
    if (rc) {
        CHECK(n == rc);
        return 0;
    }
    CHECK(n >= 0);
    nana_pred neg = {.op = NANA_PRED_NOT, .left = root};
    if (nana_pred_check(&neg) != 0) return 0; /* the NOT passed a limit */
    int64_t m = count(&neg);
    CHECK(m >= 0);
    CHECK(n + m == json_rows);
    return 0;
}
