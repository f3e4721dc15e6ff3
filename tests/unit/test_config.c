/*
 * test_config.c - configuration files as option rows (src/config/toml_opts.c,
 * toml_file.c, nana_opt's layer): each key is the row that names it, with
 * the row's type, range and messages; the server's table read from files
 * (bind_address, every key, the generated example); the file under the
 * command line, whichever comes first; the reader's refusals.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "config/nana_toml.h"
#include "server/nana_server.h"
#include "util/nana_err.h"
#include "util/nana_opt.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- a small table of every kind ------------------------------------------------------------ */

typedef struct cfg {
    uint16_t port;
    unsigned threads;
    double rate;
    const char *name, *file;
    int mode;
    bool quiet;
    int force;
    const char *where;
    unsigned hidden;
} cfg;

#define AT(m) NANA_OPT_AT(cfg, m)

static const char *const mode_words[] = {"normal", "full", NULL};

static const nana_opt rows[] = {
    {.name = "port",
     .kind = NANA_OPT_UINT,
     AT(port),
     .min = 1,
     .max = 65535,
     .def = "4433",
     .env = "TEST_CONFIG_PORT",
     .help = "a port",
     .section = "net"},
    {.name = "threads",
     .kind = NANA_OPT_UINT,
     AT(threads),
     .min = 1,
     .max = 64,
     .def = "1",
     .help = "threads",
     .section = "net",
     .key = "io_threads"},
    {.name = "rate",
     .kind = NANA_OPT_DOUBLE,
     AT(rate),
     .dmin = 0.5,
     .dmax = 1e6,
     .def = "2.5",
     .help = "a double",
     .section = "limits"},
    {.name = "name",
     .kind = NANA_OPT_STRING,
     AT(name),
     .def = "x",
     .help = "a string",
     .section = "limits"},
    {.name = "file",
     .kind = NANA_OPT_PATH,
     AT(file),
     .help = "a path",
     .section = "files",
     .example = "f.txt"},
    {.name = "mode",
     .kind = NANA_OPT_ENUM,
     AT(mode),
     .words = mode_words,
     .def = "normal",
     .help = "an enum",
     .section = "files"},
    {.name = "quiet", .kind = NANA_OPT_FLAG, AT(quiet), .help = "a bool flag", .section = "log"},
    {.name = "force", .kind = NANA_OPT_FLAG, AT(force), .help = "an int flag", .section = "log"},
    {.name = "where", .kind = NANA_OPT_PATH, AT(where), .help = "command line only"},
    {.name = "test-hook", .kind = NANA_OPT_UINT, AT(hidden), .max = 9, .flags = NANA_OPT_HIDDEN},
};

static cfg c;
static nana_opt_table table = {rows, sizeof(rows) / sizeof(rows[0]), &c};

/* The scratch folder of the tests. */
static const char *tmp_dir(void)
{
    const char *d = getenv("NANA_TEST_TMP");
    if (!d || !*d) d = "/tmp";
    mkdir(d, 0755);
    return d;
}

/* Writes |text| to a fresh file "<tmp>/<name>-<pid>.toml" with |mode|; the path in |out|. */
static const char *write_file(char *out, size_t n, const char *name, const char *text, mode_t mode)
{
    snprintf(out, n, "%s/%s-%d.toml", tmp_dir(), name, (int)getpid());
    unlink(out);
    FILE *f = fopen(out, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(out, mode), 0);
    return out;
}

/* Parses |text| and applies it to |t| (defaults first); returns the result. The document and
 * strings are kept until the next call. */
static nana_toml_doc *doc_kept;
static nana_arena strings_kept;

static int apply_to(const nana_opt_table *t, const char *text, const char *dir)
{
    nana_toml_free(doc_kept);
    doc_kept = NULL;
    nana_arena_free(&strings_kept);
    assert_int_equal(nana_opt_defaults(t), 0);
    int rc = nana_toml_parse(text, strlen(text), NULL, &doc_kept);
    if (rc) return rc;
    return nana_toml_apply(doc_kept, dir, t, 1, &strings_kept);
}

static int apply(const char *text)
{
    memset(&c, 0, sizeof(c));
    return apply_to(&table, text, NULL);
}

/* Expects |text| refused with exactly |msg|. */
static void refused(const char *text, const char *msg)
{
    int rc = apply(text);
    if (rc != NANA_ERR_INVALID || strcmp(nana_errmsg(), msg) != 0)
        fprintf(stderr, "for [%s]\n  want \"%s\"\n  got  %d \"%s\"\n", text, msg, rc,
                nana_errmsg());
    assert_int_equal(rc, NANA_ERR_INVALID);
    assert_string_equal(nana_errmsg(), msg);
}

static void test_apply_kinds(void **state)
{
    (void)state;
    assert_int_equal(apply(""), 0);
    assert_int_equal(c.port, 4433);
    assert_string_equal(c.name, "x");
    assert_int_equal(apply("[net]\nport = 80\nio_threads = 0x10\n"
                           "[limits]\nrate = 7\nname = 'n'\n"
                           "[files]\nfile = \"a/b.txt\"\nmode = \"full\"\n"
                           "[log]\nquiet = true\nforce = false\n"),
                     0);
    assert_int_equal(c.port, 80);
    assert_int_equal(c.threads, 16);
    assert_true(c.rate == 7.0);
    assert_string_equal(c.name, "n");
    assert_string_equal(c.file, "a/b.txt");
    assert_int_equal(c.mode, 1);
    assert_true(c.quiet);
    assert_int_equal(c.force, 0);
    /* A float for a double, and a section written as dotted keys. */
    assert_int_equal(apply("limits.rate = 0.75\nlog.force = true\n"), 0);
    assert_true(c.rate == 0.75);
    assert_int_equal(c.force, 1);
    assert_int_equal(apply("[limits]\nrate = 1e6\n"), 0);
    assert_true(c.rate == 1e6);
}

static void test_apply_errors(void **state)
{
    (void)state;
    refused("[net]\nport = \"80\"",
            "[net] port at line 2, column 8: expected an integer, found a string");
    refused("[net]\nport = 80.0", "[net] port at line 2, column 8: expected an integer, found a "
                                  "float");
    refused("[net]\nport = [80]", "[net] port at line 2, column 8: expected an integer, found an "
                                  "array");
    refused("[net]\n  port   =   true",
            "[net] port at line 2, column 14: expected an integer, found a boolean");
    refused("[net]\nport = 0", "[net] port at line 2, column 8: 0 is out of range (1..65535)");
    refused("[net]\nport = 70000",
            "[net] port at line 2, column 8: 70000 is out of range (1..65535)");
    refused("[net]\nport = -1", "[net] port at line 2, column 8: -1 is out of range (1..65535)");
    refused("[net]\nio_threads = -9223372036854775808",
            "[net] io_threads at line 2, column 14: -9223372036854775808 is out of range (1..64)");
    refused("[limits]\nrate = 0.25",
            "[limits] rate at line 2, column 8: 0.25 is out of range (0.5..1000000)");
    refused("[limits]\nrate = \"2\"",
            "[limits] rate at line 2, column 8: expected a number, found a string");
    refused("[limits]\nname = \"\"", "[limits] name at line 2, column 8: the value is empty");
    refused("[limits]\nname = 5", "[limits] name at line 2, column 8: expected a string, found "
                                  "an integer");
    refused("[files]\nmode = \"fast\"",
            "[files] mode at line 2, column 8: \"fast\" is not one of normal or full");
    refused("[log]\nquiet = 1", "[log] quiet at line 2, column 9: expected true or false, found "
                                "an integer");
    refused("[log]\nquiet = \"yes\"",
            "[log] quiet at line 2, column 9: expected true or false, found a string");
    refused("[net]\nthreads = 2", "unknown key [net] threads at line 2, column 1");
    refused("[net]\nPort = 2", "unknown key [net] Port at line 2, column 1");
    refused("[limits]\nport = 2", "unknown key [limits] port at line 2, column 1");
    refused("[net]\nsub.port = 2", "unknown key [net] sub at line 2, column 1");
    refused("[net.sub]\nport = 2", "unknown key [net] sub at line 1, column 6");
    refused("\n[netw]\n", "unknown section [netw] at line 2, column 1");
    refused("port = 2", "unknown key port at line 1, column 1: every setting is in a [section]");
    refused("[log]\nwhere = \"x\"", "unknown key [log] where at line 2, column 1");
    refused("[log]\ntest_hook = 1", "unknown key [log] test_hook at line 2, column 1");
    /* The first error stops it; what came before is set. */
    refused("[net]\nport = 81\nio_threads = 65",
            "[net] io_threads at line 3, column 14: 65 is out of range (1..64)");
    assert_int_equal(c.port, 81);
    assert_int_equal(c.threads, 1);
}

static void test_relative_paths(void **state)
{
    (void)state;
    memset(&c, 0, sizeof(c));
    const char *text = "[files]\nfile = \"data/f.txt\"\n";
    assert_int_equal(apply_to(&table, text, "/etc/nana"), 0);
    assert_string_equal(c.file, "/etc/nana/data/f.txt");
    assert_int_equal(apply_to(&table, text, "/"), 0);
    assert_string_equal(c.file, "/data/f.txt");
    assert_int_equal(apply_to(&table, text, "conf/"), 0);
    assert_string_equal(c.file, "conf/data/f.txt");
    assert_int_equal(apply_to(&table, text, ""), 0);
    assert_string_equal(c.file, "data/f.txt");
    assert_int_equal(apply_to(&table, "[files]\nfile = \"/abs/f\"\n", "/etc/nana"), 0);
    assert_string_equal(c.file, "/abs/f");
    /* Only paths: a string is taken as written. */
    assert_int_equal(apply_to(&table, "[limits]\nname = \"rel\"\n", "/etc/nana"), 0);
    assert_string_equal(c.name, "rel");
}

/* ---- the layer: the file under the command line -----------------------------------------------
 */

static nana_toml_config layer_cfg;

/* Parses |list| (after the program name) with a layer reading the field |c.where|. */
static int parse_v(const char *const *list)
{
    char *argv[32] = {"prog"};
    int argc = 1;
    for (; list[argc - 1] && argc < 31; argc++)
        argv[argc] = (char *)(uintptr_t)list[argc - 1];
    memset(&c, 0, sizeof(c));
    nana_toml_config_free(&layer_cfg);
    memset(&layer_cfg, 0, sizeof(layer_cfg));
    layer_cfg.path = &c.where;
    nana_opt_prog p = {.name = "prog",
                       .tables = &table,
                       .ntables = 1,
                       .layer = nana_toml_config_layer,
                       .layer_ctx = &layer_cfg};
    int first;
    return nana_opt_parse(&p, argc, argv, &first);
}

#define PARSE(...) parse_v((const char *const[]){__VA_ARGS__, NULL})

static void test_layer(void **state)
{
    (void)state;
    char path[512];
    unsetenv("TEST_CONFIG_PORT");
    write_file(path, sizeof(path), "layer",
               "[net]\nport = 1000\nio_threads = 4\n[log]\nquiet = true\nforce = true\n"
               "[files]\nfile = \"in-the-folder.txt\"\n",
               0644);
    /* No file named: the layer sets nothing. */
    assert_int_equal(PARSE("--port", "5"), 0);
    assert_int_equal(c.port, 5);
    assert_null(layer_cfg.doc);
    /* The file's values, and the folder of the file for a relative path. */
    assert_int_equal(PARSE("--where", path), 0);
    assert_int_equal(c.port, 1000);
    assert_int_equal(c.threads, 4);
    assert_true(c.quiet);
    char want[600];
    snprintf(want, sizeof(want), "%s/in-the-folder.txt", tmp_dir());
    assert_string_equal(c.file, want);
    /* A flag wins over the file, before or after --where. */
    assert_int_equal(PARSE("--port", "7", "--where", path), 0);
    assert_int_equal(c.port, 7);
    assert_int_equal(c.threads, 4);
    assert_int_equal(PARSE("--where", path, "--port=8", "--file", "mine"), 0);
    assert_int_equal(c.port, 8);
    assert_string_equal(c.file, "mine");
    /* The environment stands between the two. */
    setenv("TEST_CONFIG_PORT", "9", 1);
    assert_int_equal(PARSE("--where", path), 0);
    assert_int_equal(c.port, 9);
    assert_int_equal(PARSE("--where", path, "--port", "10"), 0);
    assert_int_equal(c.port, 10);
    unsetenv("TEST_CONFIG_PORT");
    /* A flag that can only turn on stays on. */
    write_file(path, sizeof(path), "layer", "[log]\nquiet = false\n", 0644);
    assert_int_equal(PARSE("--quiet", "--where", path), 0);
    assert_true(c.quiet);
    /* Errors name the file; a bad flag is found before the file is read. */
    write_file(path, sizeof(path), "layer", "[net]\nport = 0\n", 0644);
    assert_int_equal(PARSE("--where", path), NANA_ERR_INVALID);
    char msg[700];
    snprintf(msg, sizeof(msg), "%s: [net] port at line 2, column 8: 0 is out of range (1..65535)",
             path);
    assert_string_equal(nana_errmsg(), msg);
    assert_int_equal(PARSE("--where", path, "--port", "x"), NANA_ERR_INVALID);
    assert_string_equal(nana_errmsg(), "--port: \"x\" is not a number (1..65535)");
    write_file(path, sizeof(path), "layer", "[net]\nport = \n", 0644);
    assert_int_equal(PARSE("--where", path), NANA_ERR_INVALID);
    snprintf(msg, sizeof(msg),
             "%s: line 2, column 8: expected a value (a string, number, true, false or an "
             "array), found the end of the line",
             path);
    assert_string_equal(nana_errmsg(), msg);
    /* --help is answered before the file is looked at. */
    assert_int_equal(PARSE("--where", "/no/such/file.toml", "--version"), NANA_OPT_DONE);
    assert_int_equal(PARSE("--where", "/no/such/file.toml"), NANA_ERR_NOTFOUND);
    assert_string_equal(nana_errmsg(),
                        "configuration file /no/such/file.toml: No such file or directory");
    unlink(path);
    nana_toml_config_free(&layer_cfg);
    nana_toml_config_free(&layer_cfg); /* twice is fine */
}

/* ---- the reader ----------------------------------------------------------------------------- */

static void test_reader(void **state)
{
    (void)state;
    char path[512], msg[700];
    nana_toml_doc *d = NULL;
    /* Group-writable is the owner's choice; writable by everyone is refused. */
    write_file(path, sizeof(path), "reader", "a = 1\n", 0664);
    assert_int_equal(nana_toml_load(path, NULL, &d), 0);
    assert_int_equal(nana_toml_table_get(nana_toml_root(d), "a")->u.i, 1);
    nana_toml_free(d);
    write_file(path, sizeof(path), "reader", "a = 1\n", 0666);
    assert_int_equal(nana_toml_load(path, NULL, &d), NANA_ERR_INVALID);
    snprintf(msg, sizeof(msg),
             "configuration file %s: writable by every user (mode 666); chmod o-w it", path);
    assert_string_equal(nana_errmsg(), msg);
    assert_null(d);
    /* An empty file is an empty configuration. */
    write_file(path, sizeof(path), "reader", "", 0600);
    assert_int_equal(nana_toml_load(path, NULL, &d), 0);
    assert_int_equal(nana_toml_table_size(nana_toml_root(d)), 0);
    nana_toml_free(d);
    /* The size limit: at it, and one byte past it. */
    nana_toml_limits lim;
    nana_toml_limits_init(&lim);
    lim.max_bytes = 6;
    write_file(path, sizeof(path), "reader", "a = 1\n", 0600);
    assert_int_equal(nana_toml_load(path, &lim, &d), 0);
    nana_toml_free(d);
    write_file(path, sizeof(path), "reader", "a = 12\n", 0600);
    assert_int_equal(nana_toml_load(path, &lim, &d), NANA_ERR_TOOBIG);
    snprintf(msg, sizeof(msg), "configuration file %s: 7 bytes, more than 6", path);
    assert_string_equal(nana_errmsg(), msg);
    /* Parse errors start with the path. */
    write_file(path, sizeof(path), "reader", "a = 1\nb\n", 0600);
    assert_int_equal(nana_toml_load(path, NULL, &d), NANA_ERR_INVALID);
    snprintf(msg, sizeof(msg),
             "%s: line 2, column 2: expected '=' after a key, found the end "
             "of the line",
             path);
    assert_string_equal(nana_errmsg(), msg);
    unlink(path);
    /* Not a regular file: a folder, a FIFO (without waiting for a writer). */
    assert_int_equal(nana_toml_load(tmp_dir(), NULL, &d), NANA_ERR_INVALID);
    snprintf(msg, sizeof(msg), "configuration file %s: not a regular file", tmp_dir());
    assert_string_equal(nana_errmsg(), msg);
    snprintf(path, sizeof(path), "%s/reader-fifo-%d", tmp_dir(), (int)getpid());
    unlink(path);
    assert_int_equal(mkfifo(path, 0600), 0);
    assert_int_equal(nana_toml_load(path, NULL, &d), NANA_ERR_INVALID);
    assert_non_null(strstr(nana_errmsg(), "not a regular file"));
    unlink(path);
    assert_int_equal(nana_toml_load("/no/such/dir/x.toml", NULL, &d), NANA_ERR_NOTFOUND);
}

/* A private key given as the configuration file: refused, and nothing of it in the message. */
static void test_secret_not_echoed(void **state)
{
    (void)state;
    static const char body[] = "MC4CAQAwBQYDK2VwBCIEIKz9sEcReT+ETsecretsecretXyZ";
    char text[256], path[512];
    snprintf(text, sizeof(text), "-----BEGIN PRIVATE KEY-----\n%s\n-----END PRIVATE KEY-----\n",
             body);
    const char *variants[] = {text, body, "key = \"MC4CAQAwBQYDK2Vw\" extra", "\"MC4CAQAw\n"};
    for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
        write_file(path, sizeof(path), "given", variants[i], 0600);
        nana_toml_doc *d = NULL;
        assert_true(nana_toml_load(path, NULL, &d) < 0);
        assert_null(strstr(nana_errmsg(), "MC4C"));
        assert_null(strstr(nana_errmsg(), "BEGIN"));
        assert_null(strstr(nana_errmsg(), "secret"));
    }
    unlink(path);
}

/* ---- the server's table ---------------------------------------------------------------------- */

static nana_server_opts so;

static int apply_server(const char *text)
{
    size_t n;
    const nana_opt *r = nana_server_options(&n);
    nana_opt_table t = {r, n, &so};
    memset(&so, 0, sizeof(so));
    return apply_to(&t, text, NULL);
}

static void server_refused(const char *text, const char *msg)
{
    int rc = apply_server(text);
    if (rc != NANA_ERR_INVALID || strcmp(nana_errmsg(), msg) != 0)
        fprintf(stderr, "for [%s]\n  want \"%s\"\n  got  %d \"%s\"\n", text, msg, rc,
                nana_errmsg());
    assert_int_equal(rc, NANA_ERR_INVALID);
    assert_string_equal(nana_errmsg(), msg);
}

static void test_server_keys(void **state)
{
    (void)state;
    assert_int_equal(apply_server("[network]\n"
                                  "bind_address = \"0.0.0.0:5000\"\n"
                                  "max_connections = 2\n"
                                  "idle_timeout_ms = 9000\n"
                                  "keep_alive_interval_ms = 3000\n"
                                  "[tls]\n"
                                  "cert_path = \"c.pem\"\n"
                                  "key_path = \"k.pem\"\n"
                                  "ca_path = \"ca.pem\"\n"
                                  "client_certs = \"require\"\n"
                                  "[quic]\n"
                                  "max_concurrent_streams = 16\n"
                                  "initial_window_size = 65536\n"
                                  "[storage]\nsynchronous = \"full\"\nallow_corrupt = true\n"
                                  "[auth]\nno_bans = true\n"
                                  "[doors]\nmax_request_bytes = 2048\n"
                                  "[limits]\nrate_limit = 20\nqueue_limit = 3\n"
                                  "[log]\nlevel = \"debug\"\n"),
                     0);
    assert_string_equal(so.host, "0.0.0.0");
    assert_ptr_equal(so.host, so.bind_host);
    assert_int_equal(so.port, 5000);
    assert_int_equal(so.max_connections, 2);
    assert_int_equal(so.idle_timeout_ms, 9000);
    assert_int_equal(so.keepalive_ms, 3000);
    assert_string_equal(so.cert_path, "c.pem");
    assert_string_equal(so.key_path, "k.pem");
    assert_string_equal(so.client_ca_path, "ca.pem");
    assert_int_equal(so.client_certs, NANA_CLIENT_CERTS_REQUIRE);
    assert_int_equal(so.max_streams, 16);
    assert_int_equal(so.stream_window, 65536);
    assert_int_equal(so.sync, NANA_SYNC_FULL);
    assert_int_equal(so.allow_corrupt, 1);
    assert_int_equal(so.no_bans, 1);
    assert_int_equal(so.max_stream_bytes, 2048);
    assert_true(so.calls_per_sec == 20.0);
    assert_int_equal(so.queue_limit, 3);
    assert_int_equal(so.log_level, NANA_LOG_DEBUG);
    assert_int_equal(nana_server_opts_check(&so), 0);
    /* The brief's own example message. */
    server_refused("[network]\n\n\nmax_connections = \"2\"",
                   "[network] max_connections at line 4, column 19: expected an integer, found a "
                   "string");
    server_refused("[quic]\ninitial_window_size = 1024",
                   "[quic] initial_window_size at line 2, column 23: 1024 is out of range "
                   "(4096..16777216)");
    server_refused("[network]\nport = 1", "unknown key [network] port at line 2, column 1");
    server_refused("[network]\nhost = \"::\"", "unknown key [network] host at line 2, column 1");
    server_refused("[server]\n", "unknown section [server] at line 1, column 1");
    server_refused("[log]\nconfig = \"other.toml\"", "unknown key [log] config at line 2, "
                                                     "column 1");
    server_refused("[limits]\ntest_worker_delay_ms = 1",
                   "unknown key [limits] test_worker_delay_ms at line 2, column 1");
}

static void test_bind_address(void **state)
{
    (void)state;
    struct {
        const char *text, *host;
        unsigned port;
    } good[] = {
        {"0.0.0.0:4433", "0.0.0.0", 4433},
        {"[::]:4433", "::", 4433},
        {"[::1]:0", "::1", 0},
        {"[fe80::1%lo]:65535", "fe80::1%lo", 65535},
        {"localhost:7878", "localhost", 7878},
        {"127.0.0.1:1", "127.0.0.1", 1},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        char text[128];
        snprintf(text, sizeof(text), "[network]\nbind_address = \"%s\"\n", good[i].text);
        assert_int_equal(apply_server(text), 0);
        assert_string_equal(so.host, good[i].host);
        assert_int_equal(so.port, good[i].port);
    }
    const char *pre = "[network] bind_address at line 1, column 24: ";
    struct {
        const char *text, *msg;
    } bad[] = {
        {"::1:4433", "\"::1:4433\": an IPv6 address goes in brackets, as [::1]:4433"},
        {"[::1]4433", "\"[::1]4433\" is not [ADDRESS]:PORT"},
        {"[::1", "\"[::1\" is not [ADDRESS]:PORT"},
        {"[]:80", "\"[]:80\": brackets hold an IPv6 address, as [::1]:4433"},
        {"[1.2.3.4]:80", "\"[1.2.3.4]:80\": brackets hold an IPv6 address, as [::1]:4433"},
        {"host", "\"host\" is not ADDRESS:PORT (IPv6: [::]:4433)"},
        {":80", "\":80\" has no address before the port"},
        {"h:70000", "the port \"70000\" is not a number in 0..65535"},
        {"h:", "the port \"\" is not a number in 0..65535"},
        {"h:-1", "the port \"-1\" is not a number in 0..65535"},
        {"h:8x", "the port \"8x\" is not a number in 0..65535"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[128], msg[256];
        snprintf(text, sizeof(text), "network.bind_address = \"%s\"\n", bad[i].text);
        snprintf(msg, sizeof(msg), "%s%s", pre, bad[i].msg);
        server_refused(text, msg);
        /* Nothing is changed by a refused address. */
        assert_string_equal(so.host, "127.0.0.1");
        assert_int_equal(so.port, 4433);
    }
    char text[600];
    char longhost[300];
    memset(longhost, 'h', 256);
    longhost[256] = '\0';
    snprintf(text, sizeof(text), "network.bind_address = \"%s:1\"\n", longhost);
    server_refused(text, "[network] bind_address at line 1, column 24: the address is longer "
                         "than 255 bytes");
    /* The command line's --bind is the same row. */
    size_t n;
    const nana_opt *r = nana_server_options(&n);
    nana_opt_table t = {r, n, &so};
    const nana_opt *bind = nana_opt_find(&t, "bind");
    assert_non_null(bind);
    assert_int_equal(nana_opt_set(bind, &so, "[::]:1", "--bind"), 0);
    assert_string_equal(so.host, "::");
    assert_int_equal(nana_opt_set(bind, &so, "::", "--bind"), NANA_ERR_INVALID);
    assert_string_equal(nana_errmsg(), "--bind: \"::\": an IPv6 address goes in brackets, as "
                                       "[::1]:4433");
}

/* Every key of the server's table is read from a file: its default, or its example. */
static void test_every_server_key(void **state)
{
    (void)state;
    size_t n;
    const nana_opt *r = nana_server_options(&n);
    size_t keys = 0;
    for (size_t i = 0; i < n; i++) {
        char key[96], text[512];
        if (!nana_opt_key(&r[i], key, sizeof(key))) {
            /* Not in files: the hidden test hooks, --config, and what bind_address sets. */
            assert_true((r[i].flags & NANA_OPT_HIDDEN) || strcmp(r[i].name, "config") == 0 ||
                        r[i].key_doc);
            continue;
        }
        const char *v = r[i].def ? r[i].def : r[i].example;
        if (r[i].kind == NANA_OPT_FLAG)
            snprintf(text, sizeof(text), "[%s]\n%s = true\n", r[i].section, key);
        else if (r[i].kind == NANA_OPT_UINT || r[i].kind == NANA_OPT_DOUBLE)
            snprintf(text, sizeof(text), "[%s]\n%s = %s\n", r[i].section, key, v);
        else
            snprintf(text, sizeof(text), "[%s]\n%s = \"%s\"\n", r[i].section, key, v);
        int rc = apply_server(text);
        if (rc) fprintf(stderr, "%s: %s\n", text, nana_errmsg());
        assert_int_equal(rc, 0);
        keys++;
    }
    assert_true(keys >= 40);
    /* The amaters-net design's keys are among them. */
    const char *named[] = {"[network] bind_address = \"[::]:7878\"",
                           "[network] max_connections = 1",
                           "[network] idle_timeout_ms = 1000",
                           "[network] keep_alive_interval_ms = 500",
                           "[tls] cert_path = \"c\"",
                           "[tls] key_path = \"k\"",
                           "[tls] ca_path = \"ca\"",
                           "[quic] max_concurrent_streams = 1",
                           "[quic] initial_window_size = 4096"};
    for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++) {
        char text[128];
        const char *sp = strchr(named[i], ' ');
        snprintf(text, sizeof(text), "%.*s\n%s\n", (int)(sp - named[i]), named[i], sp + 1);
        int rc = apply_server(text);
        if (rc) fprintf(stderr, "%s: %s\n", text, nana_errmsg());
        assert_int_equal(rc, 0);
    }
}

/* The file --help-config prints is read back as it is, and with every commented key set. */
static void test_server_example(void **state)
{
    (void)state;
    size_t n;
    const nana_opt *r = nana_server_options(&n);
    nana_opt_table t = {r, n, &so};
    nana_opt_prog p = {
        .name = "nanasqlite-server", .tables = &t, .ntables = 1, .config_doc = "# example\n"};
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    assert_non_null(out);
    nana_opt_config_example(&p, out);
    fclose(out);
    assert_true(strncmp(buf, "# example\n\n[network]\n", 21) == 0);
    assert_non_null(strstr(buf, "\nmax_connections = 10000\n"));
    assert_non_null(strstr(buf, "\n# bind_address = \"[::]:4433\"\n"));
    assert_non_null(strstr(buf, "\n[tls]\n"));
    assert_non_null(strstr(buf, "\nrate_limit = 1000000\n"));
    assert_non_null(strstr(buf, "\nallow_corrupt = false\n"));
    assert_null(strstr(buf, "test_worker"));
    assert_int_equal(apply_server(buf), 0);
    nana_server_opts d;
    nana_server_opts_init(&d);
    assert_int_equal(so.max_connections, d.max_connections);
    assert_int_equal(so.port, d.port);
    /* Uncomment every key. */
    char *all = malloc(len + 1);
    assert_non_null(all);
    size_t k = 0;
    for (const char *line = buf; *line;) {
        const char *nl = strchr(line, '\n');
        size_t ll = nl ? (size_t)(nl - line + 1) : strlen(line);
        /* "# key = value": a word of [a-z0-9_], then " = ". */
        size_t word = line[0] == '#' && line[1] == ' '
                          ? strspn(line + 2, "abcdefghijklmnopqrstuvwxyz0123456789_")
                          : 0;
        bool commented_key = word > 0 && strncmp(line + 2 + word, " = ", 3) == 0;
        if (commented_key) {
            memcpy(all + k, line + 2, ll - 2);
            k += ll - 2;
        } else {
            memcpy(all + k, line, ll);
            k += ll;
        }
        line += ll;
    }
    all[k] = '\0';
    assert_non_null(strstr(all, "\nbind_address = \"[::]:4433\"\n"));
    assert_non_null(strstr(all, "\naccounts = \"accounts.json\"\n"));
    int rc = apply_server(all);
    if (rc) fprintf(stderr, "%s\n", nana_errmsg());
    assert_int_equal(rc, 0);
    assert_string_equal(so.host, "::");
    assert_string_equal(so.accounts_path, "accounts.json");
    free(all);
    free(buf);
}

static void test_server_opts_check(void **state)
{
    (void)state;
    nana_server_opts o;
    nana_server_opts_init(&o);
    assert_int_equal(o.keepalive_ms, 0);
    assert_int_equal(o.stream_window, 1u << 20);
    assert_null(o.config_path);
    assert_int_equal(nana_server_opts_check(&o), 0);
    o.keepalive_ms = 29999;
    assert_int_equal(nana_server_opts_check(&o), 0);
    o.keepalive_ms = 30000;
    assert_int_equal(nana_server_opts_check(&o), NANA_ERR_INVALID);
    assert_string_equal(nana_errmsg(), "--keep-alive-ms 30000 is not shorter than "
                                       "--idle-timeout-ms 30000: the connection would time out "
                                       "before the PING");
}

/* ---- the table checks of configuration keys ------------------------------------------------- */

static int check_rows(const nana_opt *r, size_t n)
{
    cfg scratch;
    nana_opt_table t = {r, n, &scratch};
    return nana_opt_check(&t);
}

static void test_key_checks(void **state)
{
    (void)state;
    assert_int_equal(check_rows(rows, sizeof(rows) / sizeof(rows[0])), 0);
    nana_opt r[2] = {rows[0], rows[1]};
    r[1].key = "port";
    assert_int_equal(check_rows(r, 2), NANA_ERR_INVALID);
    assert_string_equal(nana_errmsg(), "[net] port: the key of --port and --threads");
    r[1] = rows[1];
    r[1].key = "Io-Threads";
    assert_int_equal(check_rows(r, 2), NANA_ERR_INVALID);
    assert_string_equal(nana_errmsg(), "--threads: [net] Io-Threads is not a plain key");
    r[1] = rows[1];
    r[1].section = "n et";
    assert_int_equal(check_rows(r, 2), NANA_ERR_INVALID);
    r[1] = rows[1];
    r[1].flags = NANA_OPT_HIDDEN;
    assert_int_equal(check_rows(r, 2), NANA_ERR_INVALID);
    assert_string_equal(nana_errmsg(), "--threads: a hidden option has no configuration key");
    r[1] = rows[4]; /* file: no default, so it needs an example */
    r[1].example = NULL;
    assert_int_equal(check_rows(r, 2), NANA_ERR_INVALID);
    assert_string_equal(nana_errmsg(), "--file: a configuration key needs a default or an example");
    r[1] = rows[5];
    r[1].def = NULL;
    r[1].example = "fast";
    assert_int_equal(check_rows(r, 2), NANA_ERR_INVALID);
    assert_string_equal(nana_errmsg(),
                        "the example of --mode: \"fast\" is not one of normal or full");
    r[1] = rows[8];
    r[1].key = "where";
    assert_int_equal(check_rows(r, 2), NANA_ERR_INVALID);
    assert_string_equal(nana_errmsg(), "--where: a key with no section");
    /* The same key in two tables of one program. */
    nana_opt other = rows[1];
    other.name = "other";
    other.key = "port";
    cfg c2;
    nana_opt_table both[2] = {table, {&other, 1, &c2}};
    nana_opt_prog p = {.name = "prog", .tables = both, .ntables = 2};
    char *argv[] = {"prog", NULL};
    int first;
    assert_int_equal(nana_opt_parse(&p, 1, argv, &first), NANA_ERR_INVALID);
    assert_string_equal(nana_errmsg(), "option table: [net] port is in two tables");
}

static void test_reference(void **state)
{
    (void)state;
    nana_opt_prog p = {.name = "prog",
                       .doc = "# prog\n",
                       .tables = &table,
                       .ntables = 1,
                       .markdown = 1,
                       .config_doc = "# top\n"};
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    nana_opt_markdown(&p, out);
    fclose(out);
    assert_non_null(strstr(buf, "| option | config file | value | default | environment |"));
    assert_non_null(strstr(
        buf, "| `--port` | `[net] port` (integer) | 1..65535 | `4433` | `TEST_CONFIG_PORT`"));
    assert_non_null(strstr(buf, "| `--threads` | `[net] io_threads` (integer) |"));
    assert_non_null(strstr(buf, "| `--rate` | `[limits] rate` (float) |"));
    assert_non_null(strstr(buf, "| `--quiet` | `[log] quiet` (boolean) | flag | off |"));
    assert_non_null(strstr(buf, "| `--file` | `[files] file` (string) | FILE | none |"));
    assert_non_null(strstr(buf, "| `--where` | command line only | FILE |"));
    assert_null(strstr(buf, "test-hook"));
    free(buf);
    buf = NULL;
    out = open_memstream(&buf, &len);
    nana_opt_config_example(&p, out);
    fclose(out);
    assert_string_equal(buf, "# top\n"
                             "\n[net]\n"
                             "\n# --port: a port (1..65535)\nport = 4433\n"
                             "\n# --threads: threads (1..64)\nio_threads = 1\n"
                             "\n[limits]\n"
                             "\n# --rate: a double (0.5..1000000)\nrate = 2.5\n"
                             "\n# --name: a string\nname = \"x\"\n"
                             "\n[files]\n"
                             "\n# --file: a path\n# file = \"f.txt\"\n"
                             "\n# --mode: an enum (normal or full)\nmode = \"normal\"\n"
                             "\n[log]\n"
                             "\n# --quiet: a bool flag\nquiet = false\n"
                             "\n# --force: an int flag\nforce = false\n");
    free(buf);
    /* --help-config is a built-in of a program with a config_doc. */
    buf = NULL;
    out = open_memstream(&buf, &len);
    p.out = out;
    char *argv[] = {"prog", "--help-config", NULL};
    int first;
    assert_int_equal(nana_opt_parse(&p, 2, argv, &first), NANA_OPT_DONE);
    fclose(out);
    assert_true(strncmp(buf, "# top\n\n[net]\n", 13) == 0);
    free(buf);
}

static int teardown(void **state)
{
    (void)state;
    nana_toml_free(doc_kept);
    doc_kept = NULL;
    nana_arena_free(&strings_kept);
    nana_toml_config_free(&layer_cfg);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_apply_kinds, teardown),
        cmocka_unit_test_teardown(test_apply_errors, teardown),
        cmocka_unit_test_teardown(test_relative_paths, teardown),
        cmocka_unit_test_teardown(test_layer, teardown),
        cmocka_unit_test_teardown(test_reader, teardown),
        cmocka_unit_test_teardown(test_secret_not_echoed, teardown),
        cmocka_unit_test_teardown(test_server_keys, teardown),
        cmocka_unit_test_teardown(test_bind_address, teardown),
        cmocka_unit_test_teardown(test_every_server_key, teardown),
        cmocka_unit_test_teardown(test_server_example, teardown),
        cmocka_unit_test_teardown(test_server_opts_check, teardown),
        cmocka_unit_test_teardown(test_key_checks, teardown),
        cmocka_unit_test_teardown(test_reference, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
