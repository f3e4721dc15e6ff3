/*
 * test_accounts.c - the accounts file: a file with every field read back;
 * each way a file can be wrong refused with a message naming the place;
 * CIDR rules for IPv4, IPv6 and IPv4 seen through IPv6; the questions the
 * server asks of an account; the single-key snapshot; and the watcher
 * picking up edits in place and by rename while keeping the last good
 * accounts over broken and deleted files; client certificate fingerprints
 * in every written form, the login modes, lookups by certificate, their
 * refusals and their reload. Every wait is bounded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_util.h"

#include "auth/nana_accounts.h"
#include "auth/nana_keys.h"
#include "util/nana_err.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char dir[256];
static char key_line[3][NANA_OPENSSH_LINE_MAX];
static uint8_t key_pk[3][32];

#define path(name) test_path(dir, name)

static void write_file(const char *p, const char *text, size_t len)
{
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/*
 * Expands a template: "$0".."$2" become the test key lines. The result is
 * malloc'd, owned by the caller.
 */
static char *expand(const char *tpl)
{
    size_t cap = strlen(tpl) + (size_t)3 * 8 * NANA_OPENSSH_LINE_MAX + 1, n = 0;
    char *out = malloc(cap);
    assert_non_null(out);
    for (const char *p = tpl; *p; p++) {
        if (p[0] == '$' && p[1] >= '0' && p[1] <= '2') {
            const char *k = key_line[p[1] - '0'];
            size_t kl = strlen(k);
            assert_true(n + kl < cap);
            memcpy(out + n, k, kl);
            n += kl;
            p++;
        } else {
            assert_true(n + 1 < cap);
            out[n++] = *p;
        }
    }
    out[n] = '\0';
    return out;
}

/* Parses an expanded template; returns the code (the snapshot, if any, is dropped). */
static int parse_tpl(const char *tpl)
{
    char *json = expand(tpl);
    nana_accounts *a = NULL;
    int rc = nana_accounts_parse(json, strlen(json), &a);
    free(json);
    if (rc) assert_null(a);
    nana_accounts_unref(a);
    return rc;
}

#define v4(ip) test_addr(AF_INET, ip)
#define v6(ip) test_addr(AF_INET6, ip)
#define SA(x)  ((const struct sockaddr *)&(x))

static int setup(void **state)
{
    (void)state;
    if (sodium_init() < 0) return -1;
    for (int i = 0; i < 3; i++) {
        uint8_t sk[64];
        char comment[32];
        crypto_sign_keypair(key_pk[i], sk);
        sodium_memzero(sk, sizeof(sk));
        snprintf(comment, sizeof(comment), "user%d@test", i);
        if (nana_ed25519_format_openssh(key_pk[i], comment, key_line[i], sizeof(key_line[i])))
            return -1;
    }
    const char *tmp = getenv("NANA_TEST_TMP");
    snprintf(dir, sizeof(dir), "%s/accounts-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    static const char *names[] = {"a.json",  "a.json.tmp", "big.json", "other.json",
                                  "log.txt", "s.key",      NULL};
    for (int i = 0; names[i]; i++)
        unlink(path(names[i]));
    rmdir(dir);
    return 0;
}

static const char FULL[] =
    "{\"db_dir\": \"/srv/dbs\",\n"
    " \"accounts\": [\n"
    "  {\"name\": \"admin\", \"public_key\": \"$0\"},\n"
    "  {\"name\": \"app.reader@x-1\", \"public_key\": \"  $1  \",\n"
    "   \"allowed_methods\": [\"get\", \"keys\", \"get\", \"batch_get\"],\n"
    "   \"forbidden_methods\": [\"clear\", \"vacuum\"],\n"
    "   \"allowed_dbs\": {\"a.db\": [\"data\", \"users\", \"_t9\"], \"b.db\": null},\n"
    "   \"read_only\": true,\n"
    "   \"allowed_ips\": [\"10.0.0.0/8\", \"::1\", \"192.168.1.7\"],\n"
    "   \"blocked_ips\": [\"10.0.0.5/32\"],\n"
    "   \"max_calls_per_sec\": 1000},\n"
    "  {\"name\": \"ops\", \"public_key\": \"$2\", \"allowed_methods\": null,\n"
    "   \"forbidden_methods\": [], \"allowed_dbs\": [\"z.db\", \"a.db\"], \"read_only\": false,\n"
    "   \"allowed_ips\": [], \"blocked_ips\": [], \"max_calls_per_sec\": 0.5}\n"
    " ]}\n";

static void test_full_file(void **state)
{
    (void)state;
    char *json = expand(FULL);
    nana_accounts *a = NULL;
    assert_int_equal(nana_accounts_parse(json, strlen(json), &a), 0);
    free(json);
    assert_non_null(a);
    assert_int_equal(nana_accounts_count(a), 3);
    assert_string_equal(nana_accounts_db_dir(a), "/srv/dbs");
    for (int i = 0; i < 3; i++) {
        assert_memory_equal(nana_accounts_keys(a) + (size_t)32 * (size_t)i, key_pk[i], 32);
        assert_memory_equal(nana_accounts_at(a, (size_t)i)->public_key, key_pk[i], 32);
    }
    assert_null(nana_accounts_at(a, 3));

    const nana_account *admin = nana_accounts_at(a, 0);
    assert_string_equal(admin->name, "admin");
    assert_true(admin->default_methods);
    assert_true(admin->all_dbs);
    assert_false(admin->read_only);
    assert_int_equal(admin->n_forbidden, 0);
    assert_int_equal(admin->n_allowed_ips + admin->n_blocked_ips, 0);
    assert_true(admin->max_calls_per_sec == 0.0);

    const nana_account *r = nana_accounts_find(a, "app.reader@x-1", 14);
    assert_ptr_equal(r, nana_accounts_at(a, 1));
    assert_false(r->default_methods);
    assert_int_equal(r->n_allowed, 3); /* sorted, the repeat dropped */
    assert_string_equal(r->allowed_methods[0], "batch_get");
    assert_string_equal(r->allowed_methods[1], "get");
    assert_string_equal(r->allowed_methods[2], "keys");
    assert_int_equal(r->n_forbidden, 2);
    assert_false(r->all_dbs);
    assert_int_equal(r->ndbs, 2);
    assert_string_equal(r->dbs[0].name, "a.db");
    assert_false(r->dbs[0].all_tables);
    assert_int_equal(r->dbs[0].ntables, 3);
    assert_string_equal(r->dbs[1].name, "b.db");
    assert_true(r->dbs[1].all_tables);
    assert_true(r->read_only);
    assert_int_equal(r->n_allowed_ips, 3);
    assert_int_equal(r->n_blocked_ips, 1);
    assert_true(r->max_calls_per_sec == 1000.0);

    const nana_account *ops = nana_accounts_find(a, "ops", 3);
    assert_non_null(ops);
    assert_true(ops->default_methods);
    assert_false(ops->all_dbs);
    assert_int_equal(ops->ndbs, 2);
    assert_true(ops->dbs[0].all_tables);
    assert_string_equal(ops->dbs[0].name, "a.db");
    assert_true(ops->max_calls_per_sec == 0.5);

    /* Lookup by a counted name: prefixes and extensions are other names. */
    assert_null(nana_accounts_find(a, "op", 2));
    assert_null(nana_accounts_find(a, "opsx", 4));
    assert_non_null(nana_accounts_find(a, "opsx", 3));
    assert_null(nana_accounts_find(a, "", 0));
    nana_accounts_unref(a);

    /* Without db_dir. */
    char *small = expand("{\"accounts\": [{\"name\": \"a\", \"public_key\": \"$0\"}]}");
    assert_int_equal(nana_accounts_parse(small, strlen(small), &a), 0);
    free(small);
    assert_null(nana_accounts_db_dir(a));
    nana_accounts_unref(a);
}

/* One refused file: its template and a piece of the message it must give. */
typedef struct bad_case {
    const char *tpl;
    const char *msg;
} bad_case;

#define ONE(fields) "{\"accounts\": [{\"name\": \"a\", \"public_key\": \"$0\"" fields "}]}"

static const bad_case BAD[] = {
    {"not json", "invalid JSON"},
    {"{\"accounts\": [", "invalid JSON"},
    {"[]", "must hold a JSON object"},
    {"\"x\"", "must hold a JSON object"},
    {"{}", "top level: \"accounts\" is missing"},
    {"{\"accounts\": {}}", "accounts: must be a list of accounts"},
    {"{\"accounts\": null}", "accounts: must be a list of accounts"},
    {"{\"accounts\": []}", "accounts: the list is empty"},
    {"{\"accounts\": [1]}", "accounts[0]: must be an object"},
    {"{\"accounts\": [{\"name\": \"a\", \"public_key\": \"$0\"}], \"extra\": 1}",
     "top level: unknown key \"extra\""},
    {"{\"db_dir\": 1, \"accounts\": [{\"name\": \"a\", \"public_key\": \"$0\"}]}",
     "db_dir: must be a directory path"},
    {"{\"db_dir\": \"\", \"accounts\": [{\"name\": \"a\", \"public_key\": \"$0\"}]}",
     "db_dir: must be a directory path"},
    {"{\"accounts\": [{\"name\": \"a\", \"public_key\": \"$0\"},"
     " {\"name\": \"b\", \"public_key\": \"$1\", \"alowed_ips\": []}]}",
     "accounts[1]: unknown key \"alowed_ips\""},
    {"{\"accounts\": [{\"public_key\": \"$0\"}]}", "accounts[0]: \"name\" is missing"},
    {"{\"accounts\": [{\"name\": \"a\"}]}", "accounts[0]: \"public_key\" is missing"},
    {"{\"accounts\": [{\"name\": \"a b\", \"public_key\": \"$0\"}]}",
     "accounts[0].name: \"a b\" is not 1..64 bytes"},
    {"{\"accounts\": [{\"name\": \"\", \"public_key\": \"$0\"}]}",
     "accounts[0].name: \"\" is not 1..64 bytes"},
    {"{\"accounts\": [{\"name\": \"a\\u0000\", \"public_key\": \"$0\"}]}",
     "accounts[0].name: \"a?\" is not"},
    {"{\"accounts\": [{\"name\": "
     "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\", "
     "\"public_key\": \"$0\"}]}",
     "accounts[0].name: \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...\" is not 1..64"},
    {"{\"accounts\": [{\"name\": 7, \"public_key\": \"$0\"}]}",
     "accounts[0].name: must be a string"},
    {"{\"accounts\": [{\"name\": \"a\", \"public_key\": \"$0\"},"
     " {\"name\": \"b\", \"public_key\": \"$1\"}, {\"name\": \"a\", \"public_key\": \"$2\"}]}",
     "accounts[2].name: \"a\" is also the name of accounts[0]"},
    {"{\"accounts\": [{\"name\": \"a\", \"public_key\": \"$0\"},"
     " {\"name\": \"b\", \"public_key\": \"$1\"}, {\"name\": \"c\", \"public_key\": \"$1 "
     "other\"}]}",
     "accounts[2].public_key: the same key as accounts[1]"},
    {"{\"accounts\": [{\"name\": \"a\", \"public_key\": \"ssh-rsa AAAAB3NzaC1yc2E\"}]}",
     "accounts[0].public_key: not an ssh-ed25519 public key"},
    {"{\"accounts\": [{\"name\": \"a\", \"public_key\": \"ssh-ed25519 AAAA\"}]}",
     "accounts[0].public_key: the ssh-ed25519 key is not valid"},
    {"{\"accounts\": [{\"name\": \"a\", \"public_key\": null}]}",
     "accounts[0].public_key: must be a string"},
    {ONE(", \"allowed_methods\": 5"),
     "accounts[0].allowed_methods: must be a list of method names"},
    {ONE(", \"allowed_methods\": \"get\""), "accounts[0].allowed_methods: must be a list"},
    {ONE(", \"allowed_methods\": [\"get\", 1]"),
     "accounts[0].allowed_methods[1]: must be a method name"},
    {ONE(", \"allowed_methods\": [\"\"]"), "accounts[0].allowed_methods[0]: \"\" is not a method"},
    {ONE(", \"forbidden_methods\": null"), "accounts[0].forbidden_methods: must be a list"},
    {ONE(", \"forbidden_methods\": "
         "[\"x123456789x123456789x123456789x123456789x123456789x123456789xxxxx\"]"),
     "accounts[0].forbidden_methods[0]: \"x123456789"},
    {ONE(", \"allowed_dbs\": 5"), "accounts[0].allowed_dbs: must be null, a list of database"},
    {ONE(", \"allowed_dbs\": true"), "accounts[0].allowed_dbs: must be null"},
    {ONE(", \"allowed_dbs\": [\"a.db\", \"\"]"),
     "accounts[0].allowed_dbs[1]: \"\" is not a database name"},
    {ONE(", \"allowed_dbs\": [null]"), "accounts[0].allowed_dbs[0]: must be a database name"},
    {ONE(", \"allowed_dbs\": {\"a.db\": 5}"),
     "accounts[0].allowed_dbs[\"a.db\"]: must be null (every table) or a list of table names"},
    {ONE(", \"allowed_dbs\": {\"a.db\": [\"data\", \"1bad\"]}"),
     "accounts[0].allowed_dbs[\"a.db\"][1]: \"1bad\" is not a table name"},
    {ONE(", \"allowed_dbs\": {\"a.db\": [\"bad-name\"]}"),
     "accounts[0].allowed_dbs[\"a.db\"][0]: \"bad-name\" is not a table name"},
    {ONE(", \"allowed_dbs\": {\"\": null}"), "accounts[0].allowed_dbs[\"\"]: not a database name"},
    {ONE(", \"read_only\": \"yes\""), "accounts[0].read_only: must be true or false"},
    {ONE(", \"read_only\": null"), "accounts[0].read_only: must be true or false"},
    {ONE(", \"allowed_ips\": \"10.0.0.0/8\""), "accounts[0].allowed_ips: must be a list of addr"},
    {ONE(", \"allowed_ips\": [5]"), "accounts[0].allowed_ips[0]: must be a string"},
    {ONE(", \"allowed_ips\": [\"10.0.0.0/33\"]"),
     "accounts[0].allowed_ips[0]: \"10.0.0.0/33\" is not an IPv4 or IPv6 address with an "
     "optional /prefix"},
    {ONE(", \"allowed_ips\": [\"::1\", \"::/129\"]"), "accounts[0].allowed_ips[1]: \"::/129\""},
    {ONE(", \"blocked_ips\": [\"1.2.3\"]"), "accounts[0].blocked_ips[0]: \"1.2.3\" is not"},
    {ONE(", \"blocked_ips\": [\"::g\"]"), "accounts[0].blocked_ips[0]: \"::g\" is not"},
    {ONE(", \"blocked_ips\": [\"10.0.0.0/\"]"), "accounts[0].blocked_ips[0]: \"10.0.0.0/\""},
    {ONE(", \"blocked_ips\": null"), "accounts[0].blocked_ips: must be a list"},
    {ONE(", \"max_calls_per_sec\": -1"), "accounts[0].max_calls_per_sec: must be a number >= 0"},
    {ONE(", \"max_calls_per_sec\": \"5\""), "accounts[0].max_calls_per_sec: must be a number"},
    {ONE(", \"max_calls_per_sec\": 1e999"), "accounts[0].max_calls_per_sec: must be a number"},
    {ONE(", \"max_calls_per_sec\": null"), "accounts[0].max_calls_per_sec: must be a number"},
    {"{\"accounts\": [[[[[[[[[[1]]]]]]]]]]}", "invalid JSON"},
    {NULL, NULL},
};

static void test_refusals(void **state)
{
    (void)state;
    for (int i = 0; BAD[i].tpl; i++) {
        int rc = parse_tpl(BAD[i].tpl);
        if (rc != NANA_ERR_INVALID || !strstr(nana_errmsg(), BAD[i].msg))
            fail_msg("case %d: rc %d, message '%s', wanted '%s'", i, rc, nana_errmsg(), BAD[i].msg);
        /* Never the key material itself. */
        assert_null(strstr(nana_errmsg(), "AAAAC3"));
    }
    /* The exact form of a message. */
    assert_int_equal(parse_tpl(ONE(", \"allowed_ips\": [\"10.0.0.0/8\", \"10.0.0.0/33\"]")),
                     NANA_ERR_INVALID);
    assert_string_equal(nana_errmsg(), "accounts[0].allowed_ips[1]: \"10.0.0.0/33\" is not an "
                                       "IPv4 or IPv6 address with an optional /prefix");
}

/* A JSON text with |n| copies of |item| joined by commas inside |head| ... |tail|. */
static char *repeat(const char *head, const char *item, size_t n, const char *tail)
{
    size_t il = strlen(item), cap = strlen(head) + n * (il + 1) + strlen(tail) + 1;
    char *s = malloc(cap);
    assert_non_null(s);
    size_t k = (size_t)snprintf(s, cap, "%s", head);
    for (size_t i = 0; i < n; i++)
        k += (size_t)snprintf(s + k, cap - k, "%s%s", i ? "," : "", item);
    snprintf(s + k, cap - k, "%s", tail);
    return s;
}

static void test_limits(void **state)
{
    (void)state;
    nana_accounts *a = NULL;
    /* 10,001 accounts: refused on the count, before any account is read. */
    char *many = repeat("{\"accounts\": [", "{}", NANA_ACCOUNTS_MAX + 1, "]}");
    assert_int_equal(nana_accounts_parse(many, strlen(many), &a), NANA_ERR_INVALID);
    assert_non_null(strstr(nana_errmsg(), "accounts: 10001 accounts, the limit is 10000"));
    free(many);
    /* 1,001 list entries. */
    char *head = expand("{\"accounts\": [{\"name\": \"a\", \"public_key\": \"$0\", "
                        "\"blocked_ips\": [");
    char *list = repeat(head, "\"::1\"", NANA_ACCOUNTS_LIST_MAX + 1, "]}]}");
    assert_int_equal(nana_accounts_parse(list, strlen(list), &a), NANA_ERR_INVALID);
    assert_non_null(strstr(nana_errmsg(), "accounts[0].blocked_ips: 1001 entries, the limit is"));
    free(list);
    list = repeat(head, "\"::1\"", NANA_ACCOUNTS_LIST_MAX, "]}]}");
    assert_int_equal(nana_accounts_parse(list, strlen(list), &a), 0);
    assert_int_equal(nana_accounts_at(a, 0)->n_blocked_ips, NANA_ACCOUNTS_LIST_MAX);
    nana_accounts_unref(a);
    free(list);
    free(head);

    /* Files: one byte over 1 MiB; missing; a parse error names the path. */
    size_t big_len = NANA_ACCOUNTS_FILE_MAX + 1;
    char *big = malloc(big_len);
    assert_non_null(big);
    memset(big, ' ', big_len);
    write_file(path("big.json"), big, big_len);
    free(big);
    assert_int_equal(nana_accounts_load(path("big.json"), &a), NANA_ERR_INVALID);
    assert_null(a);
    assert_non_null(strstr(nana_errmsg(), "big.json"));
    assert_int_equal(nana_accounts_load(path("missing.json"), &a), NANA_ERR_NOTFOUND);
    assert_non_null(strstr(nana_errmsg(), "missing.json"));
    write_file(path("other.json"), "{\"accounts\": []}", 16);
    assert_int_equal(nana_accounts_load(path("other.json"), &a), NANA_ERR_INVALID);
    assert_non_null(strstr(nana_errmsg(), "accounts file "));
    assert_non_null(strstr(nana_errmsg(), "other.json: accounts: the list is empty"));
    char *good = expand(FULL);
    write_file(path("other.json"), good, strlen(good));
    free(good);
    assert_int_equal(nana_accounts_load(path("other.json"), &a), 0);
    assert_int_equal(nana_accounts_count(a), 3);
    nana_accounts_unref(a);
}

/* Parses |text| as a rule, which must succeed. */
static nana_cidr rule(const char *text)
{
    nana_cidr c;
    if (nana_cidr_parse(text, strlen(text), &c) != 0) fail_msg("rule %s refused", text);
    return c;
}

static void test_cidr(void **state)
{
    (void)state;
    nana_cidr c = rule("10.1.2.3/8"); /* host bits are cleared */
    assert_int_equal(c.family, AF_INET);
    assert_int_equal(c.bits, 8);
    assert_memory_equal(c.addr, "\x0a\0\0\0", 4);
    struct sockaddr_storage in = v4("10.200.0.1"), out = v4("11.0.0.1");
    assert_true(nana_cidr_match(&c, SA(in)));
    assert_false(nana_cidr_match(&c, SA(out)));
    /* An IPv4 address seen through an IPv6 socket matches as IPv4. */
    struct sockaddr_storage mapped = v6("::ffff:10.9.9.9"), mapped_out = v6("::ffff:11.0.0.1");
    assert_true(nana_cidr_match(&c, SA(mapped)));
    assert_false(nana_cidr_match(&c, SA(mapped_out)));
    /* A mapped rule is an IPv4 rule. */
    c = rule("::ffff:10.0.0.0/104");
    assert_int_equal(c.family, AF_INET);
    assert_int_equal(c.bits, 8);
    assert_true(nana_cidr_match(&c, SA(in)));
    assert_true(nana_cidr_match(&c, SA(mapped)));
    /* A plain address is the whole width. */
    c = rule("192.168.1.7");
    assert_int_equal(c.bits, 32);
    struct sockaddr_storage h7 = v4("192.168.1.7"), h8 = v4("192.168.1.8");
    assert_true(nana_cidr_match(&c, SA(h7)));
    assert_false(nana_cidr_match(&c, SA(h8)));
    /* Odd prefix lengths. */
    c = rule("192.168.1.0/25");
    struct sockaddr_storage h127 = v4("192.168.1.127"), h128 = v4("192.168.1.128");
    assert_true(nana_cidr_match(&c, SA(h127)));
    assert_false(nana_cidr_match(&c, SA(h128)));
    c = rule("2001:db8:abcd::1/35");
    assert_int_equal(c.family, AF_INET6);
    struct sockaddr_storage i6 = v6("2001:db8:bfff::9"), o6 = v6("2001:db8:c000::1");
    assert_true(nana_cidr_match(&c, SA(i6)));
    assert_false(nana_cidr_match(&c, SA(o6)));
    assert_false(nana_cidr_match(&c, SA(in))); /* families differ */
    /* /0 is everything of its family. */
    c = rule("0.0.0.0/0");
    assert_true(nana_cidr_match(&c, SA(in)));
    assert_true(nana_cidr_match(&c, SA(mapped)));
    assert_false(nana_cidr_match(&c, SA(i6)));
    c = rule("::/0");
    assert_true(nana_cidr_match(&c, SA(i6)));
    assert_false(nana_cidr_match(&c, SA(in)));
    assert_false(nana_cidr_match(&c, SA(mapped))); /* mapped addresses are IPv4 */
    c = rule("::1");
    struct sockaddr_storage lo6 = v6("::1");
    assert_true(nana_cidr_match(&c, SA(lo6)));
    c = rule("::1/128");
    assert_true(nana_cidr_match(&c, SA(lo6)));
    /* Not an IP address. */
    struct sockaddr_storage unix_addr;
    memset(&unix_addr, 0, sizeof(unix_addr));
    unix_addr.ss_family = AF_UNIX;
    assert_false(nana_cidr_match(&c, SA(unix_addr)));
    assert_false(nana_cidr_match(&c, NULL));
    /* Refused forms. */
    static const char *bad[] = {"",           "1.2.3",      "1.2.3.4/33",  "1.2.3.4/",
                                "1.2.3.4/-1", "1.2.3.4/08", "1.2.3.4/8/8", "::/129",
                                "::g",        "1.2.3.4 ",   " 1.2.3.4",    "01.2.3.4",
                                "[::1]",      "fe80::1%lo", "1.2.3.4/ 8",  "localhost",
                                "1.2.3.256",  "::1/1280",   NULL};
    for (int i = 0; bad[i]; i++) {
        if (nana_cidr_parse(bad[i], strlen(bad[i]), &c) != NANA_ERR_INVALID)
            fail_msg("rule '%s' accepted", bad[i]);
    }
    /* An embedded NUL, and text that is not NUL-terminated. */
    assert_int_equal(nana_cidr_parse("1.2.3.4\0/8", 10, &c), NANA_ERR_INVALID);
    assert_int_equal(nana_cidr_parse("10.0.0.0/8xyz", 10, &c), 0);
    assert_int_equal(c.bits, 8);
}

static void test_account_questions(void **state)
{
    (void)state;
    char *json = expand(FULL);
    nana_accounts *a = NULL;
    assert_int_equal(nana_accounts_parse(json, strlen(json), &a), 0);
    free(json);
    const nana_account *admin = nana_accounts_at(a, 0), *r = nana_accounts_at(a, 1),
                       *ops = nana_accounts_at(a, 2);

    /* Addresses: block wins over allow; no allow list means anywhere. */
    struct sockaddr_storage in = v4("10.1.1.1"), blocked = v4("10.0.0.5"),
                            blocked_m = v6("::ffff:10.0.0.5"), host = v4("192.168.1.7"),
                            other = v4("192.168.1.8"), lo6 = v6("::1"), x6 = v6("2001:db8::1");
    assert_true(nana_account_ip_allowed(r, SA(in)));
    assert_false(nana_account_ip_allowed(r, SA(blocked)));
    assert_false(nana_account_ip_allowed(r, SA(blocked_m)));
    assert_true(nana_account_ip_allowed(r, SA(host)));
    assert_false(nana_account_ip_allowed(r, SA(other)));
    assert_true(nana_account_ip_allowed(r, SA(lo6)));
    assert_false(nana_account_ip_allowed(r, SA(x6)));
    assert_true(nana_account_ip_allowed(admin, SA(other)));
    assert_true(nana_account_ip_allowed(ops, SA(x6)));

    /* Methods. */
    bool forbidden = true;
    assert_true(nana_account_method_listed(r, "get", &forbidden));
    assert_false(forbidden);
    assert_false(nana_account_method_listed(r, "clear", &forbidden));
    assert_true(forbidden);
    assert_false(nana_account_method_listed(r, "set", &forbidden));
    assert_false(forbidden);
    assert_true(nana_account_method_listed(r, "batch_get", NULL));
    assert_false(nana_account_method_listed(admin, "get", &forbidden)); /* default policy */
    assert_false(forbidden);
    assert_false(nana_account_method_listed(r, NULL, &forbidden));

    /* Databases and tables: null, list and map forms. */
    assert_true(nana_account_db_allowed(admin, "anything.db"));
    assert_true(nana_account_table_allowed(admin, "anything.db", "t"));
    assert_true(nana_account_db_allowed(ops, "a.db"));
    assert_true(nana_account_db_allowed(ops, "z.db"));
    assert_false(nana_account_db_allowed(ops, "b.db"));
    assert_true(nana_account_table_allowed(ops, "z.db", "whatever"));
    assert_false(nana_account_table_allowed(ops, "b.db", "data"));
    assert_true(nana_account_db_allowed(r, "a.db"));
    assert_true(nana_account_db_allowed(r, "b.db"));
    assert_false(nana_account_db_allowed(r, "c.db"));
    assert_false(nana_account_db_allowed(r, NULL));
    assert_true(nana_account_table_allowed(r, "a.db", "data"));
    assert_true(nana_account_table_allowed(r, "a.db", "users"));
    assert_true(nana_account_table_allowed(r, "a.db", "_t9"));
    assert_false(nana_account_table_allowed(r, "a.db", "secrets"));
    assert_false(nana_account_table_allowed(r, "a.db", NULL));
    assert_true(nana_account_table_allowed(r, "b.db", "secrets"));
    assert_false(nana_account_table_allowed(r, "c.db", "data"));
    nana_accounts_unref(a);

    /* An empty map and an empty list: no database at all. */
    assert_int_equal(parse_tpl(ONE(", \"allowed_dbs\": {}")), 0);
    char *none = expand(ONE(", \"allowed_dbs\": [], \"allowed_methods\": []"));
    assert_int_equal(nana_accounts_parse(none, strlen(none), &a), 0);
    free(none);
    assert_false(nana_account_db_allowed(nana_accounts_at(a, 0), "a.db"));
    assert_false(nana_account_method_listed(nana_accounts_at(a, 0), "get", NULL));
    assert_false(nana_accounts_at(a, 0)->default_methods);
    nana_accounts_unref(a);
}

static void test_single_and_refs(void **state)
{
    (void)state;
    nana_accounts *a = NULL;
    assert_int_equal(nana_accounts_single(key_pk[0], NULL, &a), 0);
    assert_int_equal(nana_accounts_count(a), 1);
    const nana_account *acc = nana_accounts_at(a, 0);
    assert_string_equal(acc->name, "default");
    assert_memory_equal(nana_accounts_keys(a), key_pk[0], 32);
    assert_true(acc->default_methods);
    assert_true(acc->all_dbs);
    assert_false(acc->read_only);
    struct sockaddr_storage any = v4("203.0.113.9");
    assert_true(nana_account_ip_allowed(acc, SA(any)));
    assert_true(nana_account_table_allowed(acc, "x.db", "data"));
    assert_ptr_equal(nana_accounts_find(a, "default", 7), acc);
    assert_null(nana_accounts_db_dir(a));

    /* References: every ref needs its unref; the last one frees (ASan checks). */
    nana_accounts *b = nana_accounts_ref(a);
    assert_ptr_equal(a, b);
    nana_accounts_unref(a);
    assert_string_equal(nana_accounts_at(b, 0)->name, "default"); /* still alive */
    nana_accounts_unref(b);
    assert_null(nana_accounts_ref(NULL));
    nana_accounts_unref(NULL);

    assert_int_equal(nana_accounts_single(key_pk[1], "svc@host", &a), 0);
    assert_non_null(nana_accounts_find(a, "svc@host", 8));
    nana_accounts_unref(a);
    assert_int_equal(nana_accounts_single(key_pk[1], "bad name", &a), NANA_ERR_INVALID);
    assert_null(a);
    assert_int_equal(nana_accounts_single(key_pk[1], "", &a), NANA_ERR_INVALID);
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/*
 * Waits (at most 5 s) until the generation passes |gen| and the current
 * snapshot has an account named |name|; returns the generation seen.
 */
static uint64_t wait_for(nana_accounts_watch *w, uint64_t gen, const char *name)
{
    for (int i = 0; i < 500; i++) {
        uint64_t g = nana_accounts_watch_generation(w);
        nana_accounts *cur = nana_accounts_watch_current(w);
        bool found = nana_accounts_find(cur, name, strlen(name)) != NULL;
        nana_accounts_unref(cur);
        if (g > gen && found) return g;
        sleep_ms(10);
    }
    fail_msg("the watcher did not pick up account %s within 5 s", name);
    return 0;
}

/* Waits long enough for a debounced reload to have happened, then checks that
 * the generation is still |gen| and |name| is still there. */
static void check_kept(nana_accounts_watch *w, uint64_t gen, const char *name)
{
    sleep_ms(400);
    assert_int_equal(nana_accounts_watch_generation(w), gen);
    nana_accounts *cur = nana_accounts_watch_current(w);
    assert_non_null(nana_accounts_find(cur, name, strlen(name)));
    nana_accounts_unref(cur);
}

/* Writes an accounts file with accounts |n1| (key 0) and, if not NULL, |n2| (key 1). */
static void write_accounts(const char *p, const char *n1, const char *n2)
{
    char text[1024];
    int n;
    if (n2)
        n = snprintf(text, sizeof(text),
                     "{\"accounts\": [{\"name\": \"%s\", \"public_key\": \"%s\"},"
                     " {\"name\": \"%s\", \"public_key\": \"%s\"}]}\n",
                     n1, key_line[0], n2, key_line[1]);
    else
        n = snprintf(text, sizeof(text),
                     "{\"accounts\": [{\"name\": \"%s\", \"public_key\": \"%s\"}]}\n", n1,
                     key_line[0]);
    assert_true(n > 0 && (size_t)n < sizeof(text));
    write_file(p, text, (size_t)n);
}

static void test_watch(void **state)
{
    (void)state;
    char file[512];
    snprintf(file, sizeof(file), "%s", path("a.json"));
    write_accounts(file, "first", NULL);
    nana_accounts_watch *w = NULL;
    assert_int_equal(nana_accounts_watch_start(file, NULL, &w), 0);
    assert_int_equal(nana_accounts_watch_generation(w), 1);
    nana_accounts *held = nana_accounts_watch_current(w);
    assert_non_null(nana_accounts_find(held, "first", 5));

    /* Rewritten in place. */
    write_accounts(file, "first", "second");
    (void)wait_for(w, 1, "second");
    /* The old snapshot stays usable by whoever holds it. */
    assert_int_equal(nana_accounts_count(held), 1);
    nana_accounts_unref(held);

    /* Replaced by rename, as editors do. */
    sleep_ms(100);
    uint64_t g = nana_accounts_watch_generation(w);
    write_accounts(path("a.json.tmp"), "third", NULL);
    assert_int_equal(rename(path("a.json.tmp"), file), 0);
    (void)wait_for(w, g, "third");

    /* Broken JSON: the last good accounts stay, the generation too. */
    sleep_ms(100);
    g = nana_accounts_watch_generation(w);
    write_file(file, "{\"accounts\": [", 14);
    check_kept(w, g, "third");
    /* A valid file that is refused (duplicate name) is kept out too. */
    write_accounts(file, "dup", "dup");
    check_kept(w, g, "third");

    /* Deleted: kept. */
    assert_int_equal(unlink(file), 0);
    check_kept(w, g, "third");
    assert_int_equal(nana_accounts_watch_reload(w), NANA_ERR_NOTFOUND);
    assert_int_equal(nana_accounts_watch_generation(w), g);

    /* Back again: picked up, and the watcher still runs. */
    write_accounts(file, "fourth", NULL);
    g = wait_for(w, g, "fourth");

    /* Other files in the directory are not the accounts file. */
    write_file(path("other.json"), "junk", 4);
    check_kept(w, g, "fourth");

    /* A synchronous reload counts like the thread's. */
    sleep_ms(100);
    g = nana_accounts_watch_generation(w);
    assert_int_equal(nana_accounts_watch_reload(w), 0);
    assert_int_equal(nana_accounts_watch_generation(w), g + 1);
    nana_accounts_watch_stop(w);
    nana_accounts_watch_stop(NULL);
}

static void test_watch_start(void **state)
{
    (void)state;
    char file[512];
    snprintf(file, sizeof(file), "%s", path("a.json"));
    write_accounts(file, "x", NULL);
    /* With a snapshot of the caller's: the watcher takes its own reference. */
    nana_accounts *mine = NULL;
    assert_int_equal(nana_accounts_single(key_pk[2], "mine", &mine), 0);
    nana_accounts_watch *w = NULL;
    assert_int_equal(nana_accounts_watch_start(file, mine, &w), 0);
    nana_accounts_unref(mine);
    nana_accounts *cur = nana_accounts_watch_current(w);
    assert_non_null(nana_accounts_find(cur, "mine", 4));
    nana_accounts_unref(cur);
    nana_accounts_watch_stop(w);

    /* Refusals: a file that does not load; a directory that does not exist; no file name. */
    write_file(file, "[]", 2);
    assert_int_equal(nana_accounts_watch_start(file, NULL, &w), NANA_ERR_INVALID);
    assert_null(w);
    assert_int_equal(nana_accounts_single(key_pk[2], "mine", &mine), 0);
    assert_int_equal(nana_accounts_watch_start(path("nodir/a.json"), mine, &w), NANA_ERR_NOTFOUND);
    assert_int_equal(nana_accounts_watch_start(path(""), mine, &w), NANA_ERR_INVALID);
    nana_accounts_unref(mine);
}

/* The log lines of a reload, captured from standard error. */
static void test_watch_logs(void **state)
{
    (void)state;
    char file[512];
    snprintf(file, sizeof(file), "%s", path("a.json"));
    write_accounts(file, "one", "two");
    nana_accounts_watch *w = NULL;
    assert_int_equal(nana_accounts_watch_start(file, NULL, &w), 0);
    char logp[512];
    snprintf(logp, sizeof(logp), "%s", path("log.txt"));
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    int fd = open(logp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int ok = saved >= 0 && fd >= 0 && dup2(fd, STDERR_FILENO) == STDERR_FILENO;
    int rc_good = nana_accounts_watch_reload(w);
    write_file(file, "{\"accounts\": {}}", 16);
    int rc_bad = nana_accounts_watch_reload(w);
    if (saved >= 0) {
        dup2(saved, STDERR_FILENO);
        close(saved);
    }
    if (fd >= 0) close(fd);
    nana_accounts_watch_stop(w);
    assert_true(ok);
    assert_int_equal(rc_good, 0);
    assert_int_equal(rc_bad, NANA_ERR_INVALID);
    char text[2048] = {0};
    FILE *f = fopen(logp, "r");
    assert_non_null(f);
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    unlink(logp);
    text[n] = '\0';
    char want[700];
    snprintf(want, sizeof(want), "accounts file %s reloaded: 2 accounts", file);
    assert_non_null(strstr(text, want));
    snprintf(want, sizeof(want),
             "accounts file %s not reloaded, keeping the last good accounts: accounts: must be "
             "a list of accounts",
             file);
    assert_non_null(strstr(text, want));
}

/* ---- client certificates ---- */

/* Fingerprints in each written form. A is 01 02 .. 20, B is a0 a1 .. bf. */
#define A_HEX "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20"
#define A_COLONS                                                                                   \
    "01:02:03:04:05:06:07:08:09:0A:0B:0C:0D:0E:0F:10:11:12:13:14:15:16:17:18:19:1A:1B:1C:1D:1E:"   \
    "1F:20"
#define A_PIN "sha256/AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="
#define B_HEX "A0A1A2A3A4A5A6A7A8A9AAABACADAEAFB0B1B2B3B4B5B6B7B8B9BABBBCBDBEBF"
#define B_PIN "sha256/oKGio6SlpqeoqaqrrK2ur7CxsrO0tba3uLm6u7y9vr8="
#define C_PIN "sha256///////////////////////////////////////////8="
#define D_COLONS                                                                                   \
    "5a:5a:5a:5a:5a:5a:5a:5a:5a:5a:5a:5a:5a:5a:5a:5a:5a:5a:5a:5a:5a:5a:5a:5a:5a:5a:5a:5a:5a:5a:"   \
    "5a:01"

static void fp_fill(uint8_t fp[32], int which)
{
    for (int i = 0; i < 32; i++)
        fp[i] = which == 'A'   ? (uint8_t)(i + 1)
                : which == 'B' ? (uint8_t)(0xa0 + i)
                : which == 'C' ? 0xff
                               : (uint8_t)(i == 31 ? 0x01 : 0x5a);
}

/* A verified identity with certificate fingerprint |cert| and key fingerprint |spki|
 * (letters as fp_fill; 0: a fingerprint no account names). */
static nana_cert_identity ident(int cert, int spki)
{
    nana_cert_identity id;
    memset(&id, 0, sizeof(id));
    id.verified = true;
    if (cert)
        fp_fill(id.cert_sha256, cert);
    else
        memset(id.cert_sha256, 0x33, 32);
    if (spki)
        fp_fill(id.spki_sha256, spki);
    else
        memset(id.spki_sha256, 0x44, 32);
    snprintf(id.subject, sizeof(id.subject), "CN=test");
    return id;
}

static void test_fingerprints(void **state)
{
    (void)state;
    uint8_t want[32], got[32];
    fp_fill(want, 'A');
    static const char *const forms[] = {
        A_HEX, A_COLONS, A_PIN,
        /* upper and lower case mixed */
        "0102030405060708090A0b0C0d0E0f101112131415161718191a1B1c1D1e1F20"};
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        memset(got, 0, sizeof(got));
        if (nana_fingerprint_parse(forms[i], strlen(forms[i]), got) != 0)
            fail_msg("form %zu refused: %s", i, nana_errmsg());
        assert_memory_equal(got, want, 32);
    }
    /* Not NUL-terminated: only |len| bytes are read. */
    char longer[80];
    snprintf(longer, sizeof(longer), "%sXYZ", A_HEX);
    assert_int_equal(nana_fingerprint_parse(longer, 64, got), 0);
    assert_memory_equal(got, want, 32);
    /* The writers, and back. */
    char hex[NANA_FINGERPRINT_HEX_MAX], pin[NANA_FINGERPRINT_PIN_MAX];
    nana_fingerprint_hex(want, hex);
    assert_string_equal(hex, "01:02:03:04:05:06:07:08:09:0a:0b:0c:0d:0e:0f:10:11:12:13:14:15:16:"
                             "17:18:19:1a:1b:1c:1d:1e:1f:20");
    nana_fingerprint_pin(want, pin);
    assert_string_equal(pin, A_PIN);
    fp_fill(want, 'C');
    nana_fingerprint_pin(want, pin);
    assert_string_equal(pin, C_PIN);
    assert_int_equal(nana_fingerprint_parse(pin, strlen(pin), got), 0);
    assert_memory_equal(got, want, 32);
    assert_false(nana_fingerprint_is_zero(want));

    /* Refusals: each with a piece of its message. */
    static const struct {
        const char *text, *msg;
    } bad[] = {
        {"", "this is 0 characters"},
        {"0102", "this is 4 characters"},
        {A_HEX "00", "this is 66 characters"}, /* 33 bytes */
        {"0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f2", "63 characters"},
        {"0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1fg0",
         "character 63 of the fingerprint is not a hex digit"},
        {"x102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20",
         "character 1 of the fingerprint is not a hex digit"},
        {" 102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20", "not a hex digit"},
        {"01-02:03:04:05:06:07:08:09:0A:0B:0C:0D:0E:0F:10:11:12:13:14:15:16:17:18:19:1A:1B:1C:1D:"
         "1E:1F:20",
         "character 3 of the fingerprint should be a colon"},
        {"0:102:03:04:05:06:07:08:09:0A:0B:0C:0D:0E:0F:10:11:12:13:14:15:16:17:18:19:1A:1B:1C:1D:"
         "1E:1F:20",
         "not a hex digit"},
        {"01:02:03:04:05:06:07:08:09:0A:0B:0C:0D:0E:0F:10:11:12:13:14:15:16:17:18:19:1A:1B:1C:1D:"
         "1E:1F:20:",
         "96 characters"},
        {"0000000000000000000000000000000000000000000000000000000000000000", "all zero bytes"},
        {"sha256/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "all zero bytes"},
        {"sha256/AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA", "44 characters ending in '='"},
        {"sha256/AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA==", "44 characters"},
        {"sha256/AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyB=", "44 characters"}, /* stray bits */
        {"sha256/AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eH*A=", "44 characters"},
        {"sha256/AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAA", "44 characters"},
        {"sha256/", "44 characters"},
        {"SHA256/AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=", "51 characters"},
        {"sha256:" A_HEX, "71 characters"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(got, 0x77, sizeof(got));
        int rc = nana_fingerprint_parse(bad[i].text, strlen(bad[i].text), got);
        if (rc != NANA_ERR_INVALID || !strstr(nana_errmsg(), bad[i].msg))
            fail_msg("case %zu: rc %d, message '%s', wanted '%s'", i, rc, nana_errmsg(),
                     bad[i].msg);
        for (int k = 0; k < 32; k++)
            assert_int_equal(got[k], 0x77); /* untouched on error */
    }
}

static const char CERTS[] =
    "{\"accounts\": [\n"
    "  {\"name\": \"plain\", \"public_key\": \"$0\"},\n"
    "  {\"name\": \"alice\", \"login\": \"certificate\",\n"
    "   \"client_cert_sha256\": [\"" A_HEX "\"], \"client_spki_sha256\": [\"" D_COLONS "\"]},\n"
    "  {\"name\": \"bob\", \"public_key\": \"$1\", \"login\": \"key+certificate\",\n"
    "   \"client_spki_sha256\": [\"" B_PIN "\"]},\n"
    "  {\"name\": \"carol\", \"public_key\": \"$2\", \"login\": \"key\",\n"
    "   \"client_cert_sha256\": [\"" C_PIN "\"]},\n"
    "  {\"name\": \"dave\", \"login\": \"certificate\",\n"
    "   \"client_cert_sha256\": [\"" B_HEX "\"]}\n"
    " ]}\n";

static void test_certificate_accounts(void **state)
{
    (void)state;
    char *json = expand(CERTS);
    nana_accounts *a = NULL;
    if (nana_accounts_parse(json, strlen(json), &a)) fail_msg("refused: %s", nana_errmsg());
    free(json);
    assert_int_equal(nana_accounts_count(a), 5);
    const nana_account *plain = nana_accounts_at(a, 0), *alice = nana_accounts_at(a, 1),
                       *bob = nana_accounts_at(a, 2), *carol = nana_accounts_at(a, 3),
                       *dave = nana_accounts_at(a, 4);
    assert_int_equal(plain->login, NANA_LOGIN_KEY);
    assert_int_equal(plain->n_cert_sha256 + plain->n_spki_sha256, 0);
    assert_int_equal(alice->login, NANA_LOGIN_CERT);
    assert_int_equal(bob->login, NANA_LOGIN_KEY_CERT);
    assert_int_equal(carol->login, NANA_LOGIN_KEY);
    assert_string_equal(nana_login_name(alice->login), "certificate");
    assert_string_equal(nana_login_name(bob->login), "key+certificate");
    assert_string_equal(nana_login_name(carol->login), "key");
    uint8_t fp[32], zero[32] = {0};
    assert_int_equal(alice->n_cert_sha256, 1);
    fp_fill(fp, 'A');
    assert_memory_equal(alice->cert_sha256[0], fp, 32);
    assert_int_equal(alice->n_spki_sha256, 1);
    fp_fill(fp, 'D');
    assert_memory_equal(alice->spki_sha256[0], fp, 32);
    /* Accounts without a key have 32 zero bytes in the key array, which never
     * verify; the others keep theirs, in account order. */
    assert_memory_equal(nana_accounts_keys(a) + 32, zero, 32);
    assert_memory_equal(nana_accounts_keys(a) + 4 * 32, zero, 32);
    assert_memory_equal(nana_accounts_keys(a) + 2 * 32, key_pk[1], 32);
    assert_memory_equal(bob->public_key, key_pk[1], 32);

    /* Lookups by either fingerprint, in any account's login mode. */
    nana_cert_identity id = ident('A', 0);
    assert_ptr_equal(nana_accounts_find_by_identity(a, &id), alice);
    id = ident(0, 'D');
    assert_ptr_equal(nana_accounts_find_by_identity(a, &id), alice);
    id = ident('A', 'D'); /* both name alice: fine */
    assert_ptr_equal(nana_accounts_find_by_identity(a, &id), alice);
    id = ident(0, 'B');
    assert_ptr_equal(nana_accounts_find_by_identity(a, &id), bob);
    id = ident('C', 0);
    assert_ptr_equal(nana_accounts_find_by_identity(a, &id), carol);
    id = ident('B', 0); /* B is dave's certificate and bob's key: kinds do not mix */
    assert_ptr_equal(nana_accounts_find_by_identity(a, &id), dave);
    /* Nobody's. */
    id = ident(0, 0);
    assert_null(nana_accounts_find_by_identity(a, &id));
    id = ident(0, 'A'); /* A is a certificate fingerprint, not a key's */
    assert_null(nana_accounts_find_by_identity(a, &id));
    /* Not verified, or no identity at all. */
    id = ident('A', 'D');
    id.verified = false;
    assert_null(nana_accounts_find_by_identity(a, &id));
    assert_null(nana_accounts_find_by_identity(a, NULL));
    memset(&id, 0, sizeof(id));
    id.verified = true; /* a verified identity with zero hashes matches nothing */
    assert_null(nana_accounts_find_by_identity(a, &id));
    /* The certificate names one account, its key another: refused, both named. */
    id = ident('A', 'B');
    assert_null(nana_accounts_find_by_identity(a, &id));
    assert_non_null(strstr(nana_errmsg(), "names account alice and its public key account bob"));

    /* Does an account name this certificate? */
    id = ident(0, 'B');
    assert_true(nana_account_names_identity(bob, &id));
    assert_false(nana_account_names_identity(alice, &id));
    assert_false(nana_account_names_identity(plain, &id));
    id.verified = false;
    assert_false(nana_account_names_identity(bob, &id));
    assert_false(nana_account_names_identity(bob, NULL));
    id = ident('A', 0);
    assert_true(nana_account_names_identity(alice, &id));
    nana_accounts_unref(a);

    /* A snapshot without certificates, and the single-key one: no match, login by key. */
    assert_int_equal(nana_accounts_single(key_pk[0], NULL, &a), 0);
    assert_int_equal(nana_accounts_at(a, 0)->login, NANA_LOGIN_KEY);
    id = ident('A', 'D');
    assert_null(nana_accounts_find_by_identity(a, &id));
    nana_accounts_unref(a);
}

#define CERT1(fields)    "{\"accounts\": [{\"name\": \"a\", \"public_key\": \"$0\"" fields "}]}"
#define CERTONLY(fields) "{\"accounts\": [{\"name\": \"a\", \"login\": \"certificate\"" fields "}]}"

static const bad_case BAD_CERTS[] = {
    {CERT1(", \"client_cert_sha256\": \"" A_HEX "\""),
     "accounts[0].client_cert_sha256: must be a list of SHA-256 fingerprints"},
    {CERT1(", \"client_spki_sha256\": null"),
     "accounts[0].client_spki_sha256: must be a list of SHA-256 fingerprints"},
    {CERT1(", \"client_cert_sha256\": [1]"),
     "accounts[0].client_cert_sha256[0]: must be a string: 64 hex digits"},
    {CERT1(", \"client_cert_sha256\": [\"" A_HEX "\", \"abc\"]"),
     "accounts[0].client_cert_sha256[1]: a SHA-256 fingerprint is 64 hex digits"},
    {CERT1(", \"client_spki_sha256\": [\"" A_HEX "0\"]"),
     "accounts[0].client_spki_sha256[0]: a SHA-256 fingerprint is 64 hex digits (or 32 pairs "
     "joined by colons) or sha256/ and 44 characters of base64; this is 65 characters"},
    {CERT1(", \"client_spki_sha256\": [\"zz02030405060708090a0b0c0d0e0f101112131415161718191a1b1c"
           "1d1e1f20\"]"),
     "accounts[0].client_spki_sha256[0]: character 1 of the fingerprint is not a hex digit"},
    {CERT1(", \"client_spki_sha256\": [\"sha256/AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHy==\"]"),
     "accounts[0].client_spki_sha256[0]: after sha256/ a fingerprint is the standard base64"},
    {CERT1(", \"client_cert_sha256\": [\"sha256/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"]"),
     "accounts[0].client_cert_sha256[0]: the fingerprint is all zero bytes"},
    {CERT1(", \"login\": \"cert\""),
     "accounts[0].login: must be \"key\", \"certificate\" or \"key+certificate\""},
    {CERT1(", \"login\": null"), "accounts[0].login: must be"},
    {CERT1(", \"login\": \"Key\""), "accounts[0].login: must be"},
    {CERT1(", \"login\": \"key+certificate\""),
     "accounts[0]: \"login\": \"key+certificate\" needs a certificate: \"client_cert_sha256\" or "
     "\"client_spki_sha256\""},
    {CERT1(", \"login\": \"key+certificate\", \"client_cert_sha256\": []"),
     "accounts[0]: \"login\": \"key+certificate\" needs a certificate"},
    {CERTONLY(""), "accounts[0]: \"login\": \"certificate\" needs a certificate"},
    {CERTONLY(", \"client_cert_sha256\": [\"" A_HEX "\"], \"public_key\": \"$0\""),
     "accounts[0]: \"public_key\" is given but the account logs in by certificate alone"},
    {"{\"accounts\": [{\"name\": \"a\", \"client_cert_sha256\": [\"" A_HEX "\"]}]}",
     "accounts[0]: \"public_key\" is missing"},
    {"{\"accounts\": [{\"name\": \"a\", \"login\": \"key+certificate\", \"client_cert_sha256\": "
     "[\"" A_HEX "\"]}]}",
     "accounts[0]: \"public_key\" is missing"},
    /* Each fingerprint names one account: repeats refused in any written form. */
    {"{\"accounts\": [{\"name\": \"a\", \"public_key\": \"$0\", \"client_cert_sha256\": [\"" A_HEX
     "\"]}, {\"name\": \"b\", \"login\": \"certificate\", \"client_cert_sha256\": [\"" B_HEX
     "\", \"" A_PIN "\"]}]}",
     "accounts[1].client_cert_sha256[1]: the same fingerprint as "
     "accounts[0].client_cert_sha256[0]"},
    {"{\"accounts\": [{\"name\": \"a\", \"login\": \"certificate\", \"client_spki_sha256\": "
     "[\"" B_PIN
     "\"]}, {\"name\": \"b\", \"login\": \"certificate\", \"client_spki_sha256\": [\"" B_HEX
     "\"]}]}",
     "accounts[1].client_spki_sha256[0]: the same fingerprint as "
     "accounts[0].client_spki_sha256[0]"},
    {CERT1(", \"client_cert_sha256\": [\"" A_COLONS "\", \"" B_HEX "\", \"" A_HEX "\"]"),
     "accounts[0].client_cert_sha256[2]: the same fingerprint as "
     "accounts[0].client_cert_sha256[0]"},
    {NULL, NULL},
};

static void test_certificate_refusals(void **state)
{
    (void)state;
    for (int i = 0; BAD_CERTS[i].tpl; i++) {
        int rc = parse_tpl(BAD_CERTS[i].tpl);
        if (rc != NANA_ERR_INVALID || !strstr(nana_errmsg(), BAD_CERTS[i].msg))
            fail_msg("case %d: rc %d, message '%s', wanted '%s'", i, rc, nana_errmsg(),
                     BAD_CERTS[i].msg);
    }
    /* Allowed: two accounts without keys (their zero keys are not a repeat); one
     * certificate named by its own hash in one account and by its key's in
     * another (kinds differ; a client showing it is refused at lookup). */
    assert_int_equal(parse_tpl("{\"accounts\": [{\"name\": \"a\", \"login\": \"certificate\", "
                               "\"client_cert_sha256\": [\"" A_HEX "\"]}, {\"name\": \"b\", "
                               "\"login\": \"certificate\", \"client_spki_sha256\": [\"" A_HEX
                               "\"]}]}"),
                     0);
    /* The fingerprint list limit is the list limit. */
    char *head = expand("{\"accounts\": [{\"name\": \"a\", \"public_key\": \"$0\", "
                        "\"client_cert_sha256\": [");
    char *list = repeat(head, "\"" A_HEX "\"", NANA_ACCOUNTS_LIST_MAX + 1, "]}]}");
    nana_accounts *a = NULL;
    assert_int_equal(nana_accounts_parse(list, strlen(list), &a), NANA_ERR_INVALID);
    assert_non_null(strstr(nana_errmsg(), "accounts[0].client_cert_sha256: 1001 entries, the "
                                          "limit is 1000"));
    free(head);
    free(list);
}

/* Writes an accounts file with one account |name| that logs in by the
 * certificate of fingerprint |fp| (as written in the file). */
static void write_cert_account(const char *p, const char *name, const char *fp)
{
    char text[512];
    int n = snprintf(text, sizeof(text),
                     "{\"accounts\": [{\"name\": \"%s\", \"login\": \"certificate\", "
                     "\"client_cert_sha256\": [\"%s\"]}]}\n",
                     name, fp);
    assert_true(n > 0 && (size_t)n < sizeof(text));
    write_file(p, text, (size_t)n);
}

/* The accounts watcher with certificate accounts: a new fingerprint is
 * picked up; a file with a repeated fingerprint is kept out. */
static void test_certificate_reload(void **state)
{
    (void)state;
    char file[512];
    snprintf(file, sizeof(file), "%s", path("a.json"));
    write_cert_account(file, "first", A_HEX);
    nana_accounts_watch *w = NULL;
    assert_int_equal(nana_accounts_watch_start(file, NULL, &w), 0);
    nana_accounts *held = nana_accounts_watch_current(w);
    nana_cert_identity id_a = ident('A', 0), id_b = ident('B', 0);
    assert_string_equal(nana_accounts_find_by_identity(held, &id_a)->name, "first");

    /* The certificate changes: the old one no longer logs in, the new one does. */
    write_cert_account(file, "second", B_PIN);
    uint64_t g = wait_for(w, 1, "second");
    nana_accounts *cur = nana_accounts_watch_current(w);
    assert_null(nana_accounts_find_by_identity(cur, &id_a));
    assert_string_equal(nana_accounts_find_by_identity(cur, &id_b)->name, "second");
    nana_accounts_unref(cur);
    /* Whoever holds the old snapshot still sees it as it was. */
    assert_string_equal(nana_accounts_find_by_identity(held, &id_a)->name, "first");
    nana_accounts_unref(held);

    /* A repeated fingerprint: refused, the last good accounts stay. */
    sleep_ms(100);
    g = nana_accounts_watch_generation(w);
    char text[512];
    int n = snprintf(text, sizeof(text),
                     "{\"accounts\": [{\"name\": \"x\", \"login\": \"certificate\", "
                     "\"client_cert_sha256\": [\"%s\"]}, {\"name\": \"y\", \"login\": "
                     "\"certificate\", \"client_cert_sha256\": [\"%s\"]}]}\n",
                     A_HEX, A_COLONS);
    write_file(file, text, (size_t)n);
    check_kept(w, g, "second");
    assert_int_equal(nana_accounts_watch_reload(w), NANA_ERR_INVALID);
    assert_non_null(strstr(nana_errmsg(), "the same fingerprint"));
    cur = nana_accounts_watch_current(w);
    assert_string_equal(nana_accounts_find_by_identity(cur, &id_b)->name, "second");
    nana_accounts_unref(cur);
    nana_accounts_watch_stop(w);
}

/* Writes the secret file |name| in the test folder with |mode|. */
static void write_secret(const char *name, const char *text, size_t len, mode_t mode)
{
    write_file(path(name), text, len);
    assert_int_equal(chmod(path(name), mode), 0);
}

/* Loads an accounts file naming secret file |file| (relative to the folder). */
static int load_with_secret(const char *file, nana_accounts **out)
{
    char *json = expand("{\"accounts\": [{\"name\": \"t\", \"public_key\": \"$0\", "
                        "\"jwt_secret_file\": \"SECRET\"}]}");
    char text[4096];
    char *at = strstr(json, "SECRET");
    snprintf(text, sizeof(text), "%.*s%s%s", (int)(at - json), json, file, at + 6);
    free(json);
    write_file(path("a.json"), text, strlen(text));
    return nana_accounts_load(path("a.json"), out);
}

/* jwt_secret_file: read at load, beside the accounts file, 0600 only, 32..1024 bytes. */
static void test_jwt_secret_file(void **state)
{
    (void)state;
    static const char S32[] = "0123456789abcdef0123456789ABCDEF";
    nana_accounts *a = NULL;
    /* 32 bytes and a newline, relative to the accounts file's folder. */
    write_secret("s.key", "0123456789abcdef0123456789ABCDEF\n", 33, 0600);
    assert_int_equal(load_with_secret("s.key", &a), 0);
    const nana_account *acc = nana_accounts_find(a, "t", 1);
    assert_int_equal(acc->jwt_secret_len, 32);
    assert_memory_equal(acc->jwt_secret, S32, 32);
    nana_accounts_unref(a);
    /* CRLF dropped too; an absolute path. */
    write_secret("s.key", "0123456789abcdef0123456789ABCDEF\r\n", 34, 0400);
    assert_int_equal(load_with_secret(path("s.key"), &a), 0);
    assert_int_equal(nana_accounts_find(a, "t", 1)->jwt_secret_len, 32);
    nana_accounts_unref(a);
    /* Without the key, no secret. */
    assert_int_equal(parse_tpl("{\"accounts\": [{\"name\": \"t\", \"public_key\": \"$0\"}]}"), 0);
    /* Readable or writable by group or others: refused, naming the mode, never the bytes. */
    static const mode_t open_modes[] = {0644, 0640, 0604, 0620, 0602};
    for (size_t i = 0; i < sizeof(open_modes) / sizeof(open_modes[0]); i++) {
        write_secret("s.key", S32, 32, open_modes[i]);
        assert_int_equal(load_with_secret("s.key", &a), NANA_ERR_INVALID);
        assert_null(a);
        assert_non_null(strstr(nana_errmsg(), "accounts[0].jwt_secret_file"));
        assert_non_null(strstr(nana_errmsg(), "chmod 600"));
        assert_null(strstr(nana_errmsg(), "0123456789"));
    }
    /* 31 bytes, 1025 bytes, empty, a folder, missing: refused. */
    write_secret("s.key", S32, 31, 0600);
    assert_int_equal(load_with_secret("s.key", &a), NANA_ERR_INVALID);
    assert_non_null(strstr(nana_errmsg(), "32..1024 bytes"));
    char big[1026];
    memset(big, 'x', sizeof(big));
    write_secret("s.key", big, 1025, 0600);
    assert_int_equal(load_with_secret("s.key", &a), NANA_ERR_INVALID);
    write_secret("s.key", big, 1024, 0600);
    assert_int_equal(load_with_secret("s.key", &a), 0);
    assert_int_equal(nana_accounts_find(a, "t", 1)->jwt_secret_len, 1024);
    nana_accounts_unref(a);
    write_secret("s.key", "\n", 1, 0600);
    assert_int_equal(load_with_secret("s.key", &a), NANA_ERR_INVALID);
    unlink(path("s.key"));
    assert_int_equal(load_with_secret("s.key", &a), NANA_ERR_INVALID);
    assert_non_null(strstr(nana_errmsg(), "cannot open"));
    assert_int_equal(load_with_secret(".", &a), NANA_ERR_INVALID);
    assert_int_equal(parse_tpl("{\"accounts\": [{\"name\": \"t\", \"public_key\": \"$0\", "
                               "\"jwt_secret_file\": 7}]}"),
                     NANA_ERR_INVALID);
    assert_int_equal(parse_tpl("{\"accounts\": [{\"name\": \"t\", \"public_key\": \"$0\", "
                               "\"jwt_secret_file\": \"\"}]}"),
                     NANA_ERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fingerprints),
        cmocka_unit_test(test_certificate_accounts),
        cmocka_unit_test(test_certificate_refusals),
        cmocka_unit_test(test_certificate_reload),
        cmocka_unit_test(test_full_file),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_cidr),
        cmocka_unit_test(test_account_questions),
        cmocka_unit_test(test_single_and_refs),
        cmocka_unit_test(test_watch),
        cmocka_unit_test(test_watch_start),
        cmocka_unit_test(test_watch_logs),
        cmocka_unit_test(test_jwt_secret_file),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
