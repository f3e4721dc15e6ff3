/*
 * test_opt.c - nana_opt: option tables, the command line, the environment,
 * the exact error messages, the generated help and Markdown, table checks;
 * and the server's own table (every row sane, the documented defaults).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "server/nana_server.h"
#include "util/nana_err.h"
#include "util/nana_opt.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct args {
    uint8_t u8;
    uint16_t port;
    unsigned threads;
    uint64_t big;
    double rate;
    const char *host, *file, *note;
    int mode;
    bool quiet;
    int force;
    unsigned pair[2];
    unsigned npairs;
} args;

#define AT(m) NANA_OPT_AT(args, m)

static const char *const mode_words[] = {"normal", "full", NULL};
static const int mode_values[] = {7, 9};

/* A custom reader: "A/B", two numbers. */
static int parse_pair(const nana_opt *row, const char *text, void *field)
{
    (void)row;
    unsigned *p = field;
    unsigned a, b;
    char extra;
    if (sscanf(text, "%u/%u%c", &a, &b, &extra) != 2)
        return nana_err_set(NANA_ERR_INVALID, "\"%s\" is not A/B", text);
    p[0] = a;
    p[1] = b;
    return 0;
}

static const nana_opt rows[] = {
    {.name = "u8",
     .kind = NANA_OPT_UINT,
     AT(u8),
     .min = 0,
     .max = 255,
     .def = "200",
     .group = "n",
     .help = "a byte"},
    {.name = "port",
     .short_name = 'p',
     .kind = NANA_OPT_UINT,
     AT(port),
     .min = 0,
     .max = 65535,
     .def = "4433",
     .env = "TEST_OPT_PORT",
     .group = "n",
     .help = "a port"},
    {.name = "threads",
     .kind = NANA_OPT_UINT,
     AT(threads),
     .min = 1,
     .max = 64,
     .def = "1",
     .group = "n",
     .help = "threads"},
    {.name = "big",
     .kind = NANA_OPT_UINT,
     AT(big),
     .min = 0,
     .max = UINT64_MAX,
     .def = "18446744073709551615",
     .group = "n",
     .help = "64 bits"},
    {.name = "rate",
     .kind = NANA_OPT_DOUBLE,
     AT(rate),
     .dmin = 0.5,
     .dmax = 1e6,
     .def = "2.5",
     .group = "n",
     .help = "a double"},
    {.name = "host",
     .kind = NANA_OPT_STRING,
     AT(host),
     .def = "localhost",
     .group = "s",
     .help = "a string | with a pipe"},
    {.name = "file",
     .kind = NANA_OPT_PATH,
     AT(file),
     .def_doc = "none, said in words",
     .group = "s",
     .help = "a path"},
    {.name = "note",
     .kind = NANA_OPT_STRING,
     AT(note),
     .flags = NANA_OPT_EMPTY,
     .group = "s",
     .help = "may be empty"},
    {.name = "mode",
     .kind = NANA_OPT_ENUM,
     AT(mode),
     .words = mode_words,
     .values = mode_values,
     .def = "normal",
     .group = "s",
     .help = "an enum"},
    {.name = "quiet",
     .short_name = 'q',
     .kind = NANA_OPT_FLAG,
     AT(quiet),
     .group = "f",
     .help = "a bool flag"},
    {.name = "force",
     .kind = NANA_OPT_FLAG,
     AT(force),
     .env = "TEST_OPT_FORCE",
     .group = "f",
     .help = "an int flag"},
    {.name = "pair",
     .kind = NANA_OPT_CUSTOM,
     AT(pair),
     .parse = parse_pair,
     .arg = "A/B",
     .group = "f",
     .help = "custom"},
    {.name = "secret-hook",
     .kind = NANA_OPT_UINT,
     AT(npairs),
     .min = 0,
     .max = 9,
     .flags = NANA_OPT_HIDDEN},
};

static args a;
static nana_opt_table table = {rows, sizeof(rows) / sizeof(rows[0]), &a};

/* Parses a NULL-terminated argument list (after the program name). */
static int parse_v(int positional, int *first, const char *const *list)
{
    char *argv[32] = {"prog"};
    int argc = 1;
    for (; list[argc - 1] && argc < 31; argc++)
        argv[argc] = (char *)(uintptr_t)list[argc - 1];
    memset(&a, 0, sizeof(a));
    nana_opt_prog p = {.name = "prog", .tables = &table, .ntables = 1, .positional = positional};
    return nana_opt_parse(&p, argc, argv, first);
}

#define PARSE(...)     parse_v(0, &first, (const char *const[]){__VA_ARGS__, NULL})
#define PARSE_POS(...) parse_v(1, &first, (const char *const[]){__VA_ARGS__, NULL})

/* Expects a parse error with exactly |msg|. */
#define BAD(msg, ...)                                                                              \
    do {                                                                                           \
        assert_int_equal(PARSE(__VA_ARGS__), NANA_ERR_INVALID);                                    \
        assert_string_equal(nana_errmsg(), msg);                                                   \
    } while (0)

static void test_defaults_and_forms(void **state)
{
    (void)state;
    int first = -1;
    unsetenv("TEST_OPT_PORT");
    unsetenv("TEST_OPT_FORCE");
    assert_int_equal(PARSE("--threads", "3"), 0);
    assert_int_equal(first, 3);
    assert_int_equal(a.u8, 200);
    assert_int_equal(a.port, 4433);
    assert_int_equal(a.threads, 3);
    assert_true(a.big == UINT64_MAX);
    assert_true(a.rate == 2.5);
    assert_string_equal(a.host, "localhost");
    assert_null(a.file);
    assert_int_equal(a.mode, 7);
    assert_false(a.quiet);

    assert_int_equal(PARSE("--port=80", "-q", "--force", "--mode", "full", "--rate=1e3", "--host",
                           "h", "--file=f.txt", "--pair", "3/4", "--u8", "255"),
                     0);
    assert_int_equal(a.port, 80);
    assert_true(a.quiet);
    assert_int_equal(a.force, 1);
    assert_int_equal(a.mode, 9);
    assert_true(a.rate == 1000.0);
    assert_string_equal(a.host, "h");
    assert_string_equal(a.file, "f.txt");
    assert_int_equal(a.pair[0], 3);
    assert_int_equal(a.pair[1], 4);
    assert_int_equal(a.u8, 255);

    /* Short forms, the last of a repeated option, "--" and hidden rows. */
    assert_int_equal(PARSE("-p", "1", "-p2", "--port", "3", "--secret-hook", "5"), 0);
    assert_int_equal(a.port, 3);
    assert_int_equal(a.npairs, 5);
    assert_int_equal(PARSE("--note="), 0);
    assert_string_equal(a.note, "");

    /* Positional arguments: parsing stops at the first; "--" ends options. */
    assert_int_equal(PARSE_POS("-q", "get", "--port", "x"), 0);
    assert_int_equal(first, 2);
    assert_int_equal(a.port, 4433);
    assert_int_equal(PARSE_POS("--", "--port"), 0);
    assert_int_equal(first, 2);
    assert_int_equal(PARSE_POS("-q"), 0);
    assert_int_equal(first, 2);
    assert_int_equal(PARSE_POS("-", "x"), 0);
    assert_int_equal(first, 1);
}

static void test_errors(void **state)
{
    (void)state;
    int first;
    BAD("unknown option --bogus", "--bogus");
    BAD("unknown option --bogus", "--threads", "2", "--bogus");
    BAD("unknown option --bogus", "--bogus=4433");
    BAD("unknown option -x", "-x");
    BAD("--port needs a value", "--port");
    BAD("-p needs a value", "-p");
    BAD("--port: \"abc\" is not a number (0..65535)", "--port", "abc");
    BAD("--port: 70000 is out of range (0..65535)", "--port", "70000");
    BAD("--port: 70000 is out of range (0..65535)", "--port=70000");
    BAD("--threads: 0 is out of range (1..64)", "--threads", "0");
    BAD("--port: \"-1\" is not a number (0..65535)", "--port", "-1");
    BAD("--port: \" 1\" is not a number (0..65535)", "--port", " 1");
    BAD("--port: \"1 \" is not a number (0..65535)", "--port", "1 ");
    BAD("--port: \"0x10\" is not a number (0..65535)", "--port", "0x10");
    BAD("--big: 18446744073709551616 is out of range (0..18446744073709551615)", "--big",
        "18446744073709551616");
    BAD("--rate: 0.1 is out of range (0.5..1000000)", "--rate", "0.1");
    BAD("--rate: \"nan\" is not a number (0.5..1000000)", "--rate", "nan");
    BAD("--rate: inf is out of range (0.5..1000000)", "--rate", "inf");
    BAD("--mode: \"fast\" is not one of normal or full", "--mode", "fast");
    BAD("--host: the value is empty", "--host", "");
    BAD("--host: the value is empty", "--host=");
    BAD("--quiet takes no value", "--quiet=1");
    BAD("--pair: \"3-4\" is not A/B", "--pair", "3-4");
    BAD("unexpected argument \"get\" (options start with --)", "get");
    BAD("unexpected argument \"x\"", "--", "x");
    /* Nothing is left half-set by a bad value. */
    assert_int_equal(PARSE("--port", "99999"), NANA_ERR_INVALID);
    assert_int_equal(a.port, 4433);
}

static void test_environment(void **state)
{
    (void)state;
    int first;
    setenv("TEST_OPT_PORT", "5000", 1);
    setenv("TEST_OPT_FORCE", "yes", 1);
    assert_int_equal(PARSE("-q"), 0);
    assert_int_equal(a.port, 5000);
    assert_int_equal(a.force, 1);
    assert_int_equal(PARSE("--port", "6000"), 0); /* the flag wins */
    assert_int_equal(a.port, 6000);
    setenv("TEST_OPT_PORT", "44x", 1);
    BAD("TEST_OPT_PORT: \"44x\" is not a number (0..65535)", "-q");
    assert_int_equal(PARSE("--port", "1"), 0); /* not consulted when the flag is given */
    setenv("TEST_OPT_PORT", "99999", 1);
    BAD("TEST_OPT_PORT: 99999 is out of range (0..65535)", "-q");
    setenv("TEST_OPT_PORT", "", 1); /* empty: as if unset */
    setenv("TEST_OPT_FORCE", "maybe", 1);
    BAD("TEST_OPT_FORCE: \"maybe\" is not true or false", "-q");
    unsetenv("TEST_OPT_PORT");
    unsetenv("TEST_OPT_FORCE");
}

/* Runs the parser with |arg| and returns what it printed (malloc'd). */
static char *printed(const char *arg, int *rc)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *out = open_memstream(&buf, &n);
    assert_non_null(out);
    nana_opt_prog p = {.name = "prog",
                       .usage = "[options] CMD",
                       .about = "Does things.\n",
                       .epilog = "exit status: 2 bad usage\n",
                       .doc = "# prog\n",
                       .tables = &table,
                       .ntables = 1,
                       .positional = 1,
                       .markdown = 1,
                       .out = out};
    char *argv[] = {"prog", (char *)(uintptr_t)arg, NULL};
    int first;
    *rc = nana_opt_parse(&p, 2, argv, &first);
    fclose(out);
    return buf;
}

static void test_help_and_version(void **state)
{
    (void)state;
    int rc;
    char *h = printed("--help", &rc);
    assert_int_equal(rc, NANA_OPT_DONE);
    assert_non_null(strstr(h, "usage: prog [options] CMD\n\nDoes things.\n"));
    assert_non_null(strstr(h, "\nn:\n  --u8 N "));
    assert_non_null(strstr(h, "  -p, --port N "));
    assert_non_null(strstr(h, "(0..65535) [$TEST_OPT_PORT, else 4433]"));
    assert_non_null(strstr(h, "(1..64) [1]"));
    assert_non_null(strstr(h, "[none, said in words]"));
    assert_non_null(strstr(h, "(normal or full) [normal]"));
    assert_non_null(strstr(h, "  --pair A/B "));
    assert_non_null(strstr(h, "  -q, --quiet "));
    assert_null(strstr(h, "secret-hook"));
    assert_non_null(strstr(h, "--help-markdown"));
    assert_non_null(strstr(h, "exit status: 2 bad usage\n"));
    free(h);
    h = printed("-h", &rc);
    assert_int_equal(rc, NANA_OPT_DONE);
    assert_non_null(strstr(h, "usage: prog"));
    free(h);
    h = printed("--version", &rc);
    assert_int_equal(rc, NANA_OPT_DONE);
    char want[64];
    snprintf(want, sizeof(want), "prog %s\n", nana_opt_version());
    assert_string_equal(h, want);
    free(h);
    h = printed("--help-markdown", &rc);
    assert_int_equal(rc, NANA_OPT_DONE);
    assert_true(strncmp(h, "# prog\n\n## n\n\n| option | value | default |", 37) == 0);
    assert_non_null(strstr(h, "| `--port`, `-p` | 0..65535 | `4433` | `TEST_OPT_PORT` | a port |"));
    assert_non_null(strstr(h, "| `--host` | VALUE | `localhost` | a string \\| with a pipe |"));
    assert_non_null(strstr(h, "| `--file` | FILE | none, said in words | a path |"));
    assert_non_null(strstr(h, "| `--quiet`, `-q` | flag | off | | a bool flag |"));
    assert_null(strstr(h, "secret-hook"));
    free(h);
}

static void test_report(void **state)
{
    (void)state;
    nana_opt_prog p = {.name = "prog", .tables = &table, .ntables = 1};
    assert_int_equal(nana_opt_report(&p, 0), -1);
    assert_int_equal(nana_opt_report(&p, NANA_OPT_DONE), 0);
    (void)nana_err_set(NANA_ERR_INVALID, "unknown option --x");
    assert_int_equal(nana_opt_report(&p, NANA_ERR_INVALID), NANA_OPT_EXIT_USAGE);
}

/* nana_opt_check on a one-row table. */
static int check_row(nana_opt row)
{
    nana_opt_table t = {&row, 1, NULL};
    return nana_opt_check(&t);
}

static void test_check(void **state)
{
    (void)state;
    nana_opt_table t = table;
    assert_int_equal(nana_opt_check(&t), 0);
    nana_opt r = rows[2]; /* threads: 1..64 */
    r.def = "0";
    assert_int_equal(check_row(r), NANA_ERR_INVALID);
    assert_non_null(strstr(nana_errmsg(), "the default of --threads"));
    r = rows[0]; /* a byte cannot hold 256 */
    r.max = 256;
    assert_int_equal(check_row(r), NANA_ERR_INVALID);
    r = rows[2];
    r.min = 10;
    r.max = 5;
    r.def = NULL;
    assert_int_equal(check_row(r), NANA_ERR_INVALID);
    r = rows[8];
    r.words = NULL;
    assert_int_equal(check_row(r), NANA_ERR_INVALID);
    r = rows[11];
    r.parse = NULL;
    assert_int_equal(check_row(r), NANA_ERR_INVALID);
    r = rows[5];
    r.help = NULL;
    assert_int_equal(check_row(r), NANA_ERR_INVALID);
    r = rows[5];
    r.name = "--host";
    assert_int_equal(check_row(r), NANA_ERR_INVALID);
    nana_opt two[2] = {rows[1], rows[1]};
    two[1].short_name = 0;
    nana_opt_table dup = {two, 2, NULL};
    assert_int_equal(nana_opt_check(&dup), NANA_ERR_INVALID);
    assert_non_null(strstr(nana_errmsg(), "--port: listed twice"));

    /* A broken table fails the parse, so a tool's first test run finds it. */
    nana_opt_table broken = {two, 2, &a};
    nana_opt_prog p = {.name = "prog", .tables = &broken, .ntables = 1};
    char *argv[] = {"prog", NULL};
    int first;
    assert_int_equal(nana_opt_parse(&p, 1, argv, &first), NANA_ERR_INVALID);
    /* The same name in two tables is refused too. */
    nana_opt_table both[2] = {table, {&rows[1], 1, &a}};
    nana_opt_prog q = {.name = "prog", .tables = both, .ntables = 2};
    assert_int_equal(nana_opt_parse(&q, 1, argv, &first), NANA_ERR_INVALID);
    assert_non_null(strstr(nana_errmsg(), "--port is in two tables"));
}

static void test_server_table(void **state)
{
    (void)state;
    size_t n;
    const nana_opt *r = nana_server_options(&n);
    assert_true(n > 20);
    nana_server_opts o;
    nana_opt_table t = {r, n, &o};
    assert_int_equal(nana_opt_check(&t), 0);
    nana_server_opts_init(&o);
    assert_string_equal(o.host, "127.0.0.1");
    assert_int_equal(o.port, 4433);
    assert_int_equal(o.threads, 1);
    assert_int_equal(o.workers, 8);
    assert_string_equal(o.db_path, "server_db.sqlite");
    assert_null(o.db_dir);
    assert_null(o.accounts_path);
    assert_string_equal(o.public_key_path, "nana_public.pub");
    assert_string_equal(o.cert_path, "cert.pem");
    assert_string_equal(o.key_path, "key.pem");
    assert_null(o.client_ca_path);
    assert_int_equal(o.client_certs, NANA_CLIENT_CERTS_DEFAULT);
    assert_int_equal(o.sync, NANA_SYNC_NORMAL);
    assert_int_equal(o.max_stream_bytes, 10u << 20);
    assert_int_equal(o.max_conn_bytes, 50u << 20);
    assert_int_equal(o.max_preauth_streams, 50);
    assert_int_equal(o.max_connections, 10000);
    assert_int_equal(o.max_streams, 128);
    assert_true(o.calls_per_sec == 1e6);
    assert_int_equal(o.call_timeout_ms, 15000);
    assert_int_equal(o.queue_limit, 4096);
    assert_int_equal(o.max_dbs, 64);
    assert_int_equal(o.idle_timeout_ms, 30000);
    assert_int_equal(o.challenge_ttl_ms, 30000);
    assert_int_equal(o.ban_failures, 3);
    assert_int_equal(o.ban_seconds, 900);
    assert_int_equal(o.no_bans, 0);
    assert_int_equal(o.grace_ms, 10000);
    assert_int_equal(o.log_level, NANA_LOG_INFO);
    assert_int_equal(o.max_conns_per_addr, 256);
    assert_int_equal(o.max_unauthenticated, 1024);
    assert_int_equal(o.auth_timeout_ms, 5000);
    assert_int_equal(o.max_preauth_request_bytes, 4096);
    assert_int_equal(o.max_buffered_bytes, 512u << 20);
    assert_int_equal(o.request_idle_ms, 10000);
    assert_int_equal(o.request_timeout_ms, 120000);
    assert_int_equal(o.max_unread_reply_bytes, 64u << 20);
    assert_int_equal(o.reply_stall_ms, 30000);
    assert_int_equal(o.open_check, NANA_CHECK_QUICK);
    assert_int_equal(o.allow_corrupt, 0);
    assert_null(o.ready_file);
    /* Mutual TLS: the CA file and the two modes, nothing else. */
    const nana_opt *ca = nana_opt_find(&t, "client-ca"), *mode = nana_opt_find(&t, "client-certs");
    assert_non_null(ca);
    assert_non_null(mode);
    assert_int_equal(nana_opt_set(ca, &o, "clients.pem", "--client-ca"), 0);
    assert_string_equal(o.client_ca_path, "clients.pem");
    assert_int_equal(nana_opt_set(mode, &o, "require", "--client-certs"), 0);
    assert_int_equal(o.client_certs, NANA_CLIENT_CERTS_REQUIRE);
    assert_int_equal(nana_opt_set(mode, &o, "request", "--client-certs"), 0);
    assert_int_equal(o.client_certs, NANA_CLIENT_CERTS_REQUEST);
    assert_int_equal(nana_opt_set(mode, &o, "ignore", "--client-certs"), NANA_ERR_INVALID);
    assert_non_null(strstr(nana_errmsg(), "--client-certs"));
    assert_int_equal(o.client_certs, NANA_CLIENT_CERTS_REQUEST);
    /* Every visible row has a group, and each option is found by its name. */
    for (size_t i = 0; i < n; i++) {
        assert_ptr_equal(nana_opt_find(&t, r[i].name), &r[i]);
        if (!(r[i].flags & NANA_OPT_HIDDEN)) assert_non_null(r[i].group);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_and_forms),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_environment),
        cmocka_unit_test(test_help_and_version),
        cmocka_unit_test(test_report),
        cmocka_unit_test(test_check),
        cmocka_unit_test(test_server_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
