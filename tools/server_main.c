/*
 * server_main.c - nanasqlite-server: the command line around nana_server.
 *
 * With no arguments it serves ./server_db.sqlite on 127.0.0.1:4433 with
 * ./cert.pem, ./key.pem and ./nana_public.pub. The options are the rows of
 * nana_server_options() (src/server/options.c), parsed by nana_opt and
 * read from a TOML file with --config (src/config, a layer under the
 * command line); their help, docs/CONFIG.md (--help-markdown) and the
 * example configuration file (--help-config) are printed from the same
 * rows. SIGINT or SIGTERM stops it gracefully (calls in flight are
 * answered, databases committed and closed) and it exits 0; a start-up
 * problem is one line on stderr and exit status 1; a bad command line or
 * configuration file is one line and exit status 2.
 */
#include "config/nana_toml.h"
#include "server/nana_server.h"
#include "util/nana_log.h"
#include "util/nana_opt.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char about[] =
    "Serves a NanaSQLite database over QUIC (the NanaSQLite wire protocol).\n";

static const char epilog[] =
    "SIGINT or SIGTERM stops the server gracefully: calls in flight are answered and the\n"
    "databases committed and closed. Exit status: 0 stopped, 1 could not start (or a\n"
    "database failed to close), 2 bad command line or configuration file.\n";

static const char doc[] =
    "# nanasqlite-server options\n"
    "\n"
    "Every setting of `nanasqlite-server`, with its configuration file key,\n"
    "type, allowed values and default. This page is generated from the\n"
    "server's option table (`src/server/options.c`) by `nanasqlite-server\n"
    "--help-markdown`; a test checks that it matches, so it is the same list\n"
    "`--help` prints and the configuration file reads.\n"
    "\n"
    "An option is given as `--name value` or `--name=value`; `--` ends the\n"
    "options. A number must be written in decimal digits and lie in the range\n"
    "shown. A bad command line is one line on standard error, such as\n"
    "`nanasqlite-server: --port: 70000 is out of range (0..65535)`, and exit\n"
    "status 2. Limits are described in [SECURITY.md](SECURITY.md).\n"
    "\n"
    "## Settings from a file\n"
    "\n"
    "`--config FILE` reads settings from a TOML file: each heading below is a\n"
    "`[section]` and each setting the key shown beside its flag, with the\n"
    "same type, range and messages. A flag given on the command line wins\n"
    "over the file, wherever it is written. Relative paths in the file are\n"
    "relative to the file's folder. `--help-config` prints a file with every\n"
    "key at its default: [nanasqlite-server.example.toml](nanasqlite-server.example.toml).\n"
    "\n"
    "```toml\n"
    "[network]\n"
    "bind_address = \"[::]:4433\"   # or \"0.0.0.0:4433\"\n"
    "max_connections = 2000\n"
    "\n"
    "[tls]\n"
    "cert_path = \"/etc/nanasqlite/cert.pem\"\n"
    "key_path = \"/etc/nanasqlite/key.pem\"\n"
    "```\n"
    "\n"
    "The file is a strict subset of TOML 1.0: comments, bare and quoted keys,\n"
    "dotted keys, `[table]` headers, basic and literal strings (one line),\n"
    "integers (decimal with `_` between digits, `0x`, `0o`, `0b`), floats,\n"
    "booleans and arrays. Inline tables, arrays of tables, multi-line\n"
    "strings, dates and times, `inf` and `nan` are refused as not supported.\n"
    "The file must be a regular file of at most 1 MiB that not every user may\n"
    "write; a string or key holds at most 65536 bytes, a table 1024 keys, an\n"
    "array 4096 values, and a key path or nesting of arrays at most 16 levels.\n"
    "Any error (a key or section that is not below, a value of the wrong\n"
    "type or out of range, a duplicate key, a table defined twice) stops the\n"
    "start with one line naming the file, line and column, such as\n"
    "`nanasqlite-server: server.toml: [network] max_connections at line 4,\n"
    "column 19: expected an integer, found a string`, and exit status 2.\n";

static const char config_doc[] =
    "# nanasqlite-server configuration: every setting, at its default.\n"
    "#\n"
    "# Written by `nanasqlite-server --help-config` from the server's option\n"
    "# table; docs/CONFIG.md describes each key beside its flag. Start the\n"
    "# server with `nanasqlite-server --config FILE`; a flag given on the\n"
    "# command line wins over the file. Relative paths are relative to this\n"
    "# file's folder. A line starting with '#' is a comment: remove the '#'\n"
    "# of a commented key to set it.\n";

/*
 * Checks before anything is created that the ready file can be written:
 * its folder exists and is writable, and it is not a folder itself.
 * Returns 0, or NANA_ERR_* with the message naming the path.
 */
static int check_ready_file(const char *path)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, sizeof(dir), ".");
    else if (slash == path)
        snprintf(dir, sizeof(dir), "/");
    else
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return nana_err_set(NANA_ERR_NOTFOUND, "--ready-file %s: the folder %s does not exist",
                            path, dir);
    if (access(dir, W_OK | X_OK) != 0)
        return nana_err_set(NANA_ERR_IO, "--ready-file %s: the folder %s is not writable: %s", path,
                            dir, strerror(errno));
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return nana_err_set(NANA_ERR_INVALID, "--ready-file %s: is a folder", path);
    return NANA_OK;
}

/*
 * Writes |port| and a newline to |path| at once (a temporary file renamed
 * over it), so a reader never sees it half written. Returns 0 or NANA_ERR_IO.
 */
static int write_ready_file(const char *path, unsigned port)
{
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) return nana_err_set(NANA_ERR_IO, "--ready-file %s: %s", tmp, strerror(errno));
    int bad = fprintf(f, "%u\n", port) < 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return nana_err_set(NANA_ERR_IO, "--ready-file %s: %s", path, strerror(e));
    }
    return NANA_OK;
}

/* Serves with the parsed options until SIGINT or SIGTERM; returns the exit status. */
static int serve(const nana_server_opts *o)
{
    nana_log_set_level(o->log_level);
    if (o->ready_file && check_ready_file(o->ready_file)) {
        fprintf(stderr, "nanasqlite-server: %s\n", nana_errmsg());
        return 1;
    }
    /* Every thread started from here on inherits the blocked signals; main waits for them. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    nana_server *s;
    if (nana_server_start(o, &s)) {
        fprintf(stderr, "nanasqlite-server: %s\n", nana_errmsg());
        return 1;
    }
    if (o->config_path) nana_log(NANA_LOG_INFO, "settings from %s", o->config_path);
    nana_log(NANA_LOG_INFO, "nanasqlite-server %s listening on %s port %u (database %s)",
             nana_opt_version(), o->host, nana_server_port(s), o->db_path);
    if (o->ready_file && write_ready_file(o->ready_file, nana_server_port(s))) {
        fprintf(stderr, "nanasqlite-server: %s\n", nana_errmsg());
        nana_server_stop(s);
        return 1;
    }
    int sig = 0;
    sigwait(&stop, &sig);
    nana_log(NANA_LOG_INFO, "received %s: stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
    int rc = nana_server_stop(s);
    if (o->ready_file && unlink(o->ready_file) != 0 && errno != ENOENT)
        nana_log(NANA_LOG_WARN, "cannot remove the ready file %s: %s", o->ready_file,
                 strerror(errno));
    nana_log(NANA_LOG_INFO, "stopped");
    return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
    nana_server_opts o;
    nana_server_opts_init(&o);
    size_t nrows;
    const nana_opt *rows = nana_server_options(&nrows);
    nana_opt_table table = {rows, nrows, &o};
    /* The configuration file: its strings stay in |config| until the end. */
    nana_toml_config config = {.path = &o.config_path};
    nana_opt_prog prog = {.name = "nanasqlite-server",
                          .about = about,
                          .epilog = epilog,
                          .doc = doc,
                          .tables = &table,
                          .ntables = 1,
                          .markdown = 1,
                          .layer = nana_toml_config_layer,
                          .layer_ctx = &config,
                          .config_doc = config_doc};
    int first;
    int rc = nana_opt_parse(&prog, argc, argv, &first);
    if (!rc) rc = nana_server_opts_check(&o);
    int status = nana_opt_report(&prog, rc);
    if (status < 0 && o.cluster_recover) {
        status = nana_server_cluster_recover(&o) ? 1 : 0;
        if (status) fprintf(stderr, "nanasqlite-server: %s\n", nana_errmsg());
    } else if (status < 0) {
        status = serve(&o);
    }
    nana_toml_config_free(&config);
    return status;
}
