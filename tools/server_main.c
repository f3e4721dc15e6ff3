/*
 * server_main.c - nanasqlite-server: the command line around nana_server.
 *
 * With no arguments it serves ./server_db.sqlite on 127.0.0.1:4433 with
 * ./cert.pem, ./key.pem and ./nana_public.pub. The options are the rows of
 * nana_server_options() (src/server/options.c), parsed by nana_opt; their
 * help and docs/CONFIG.md (--help-markdown) are printed from the same
 * rows. SIGINT or SIGTERM stops it gracefully (calls in flight are
 * answered, databases committed and closed) and it exits 0; a start-up
 * problem is one line on stderr and exit status 1; a bad command line is
 * one line and exit status 2.
 */
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
    "database failed to close), 2 bad command line.\n";

static const char doc[] =
    "# nanasqlite-server options\n"
    "\n"
    "Every setting of `nanasqlite-server`, with its type, allowed values and\n"
    "default. This page is generated from the server's option table\n"
    "(`src/server/options.c`) by `nanasqlite-server --help-markdown`; a test\n"
    "checks that it matches, so it is the same list `--help` prints.\n"
    "\n"
    "An option is given as `--name value` or `--name=value`; `--` ends the\n"
    "options. A number must be written in decimal digits and lie in the range\n"
    "shown. A bad command line is one line on standard error, such as\n"
    "`nanasqlite-server: --port: 70000 is out of range (0..65535)`, and exit\n"
    "status 2. Limits are described in [SECURITY.md](SECURITY.md).\n";

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

int main(int argc, char **argv)
{
    nana_server_opts o;
    nana_server_opts_init(&o);
    size_t nrows;
    const nana_opt *rows = nana_server_options(&nrows);
    nana_opt_table table = {rows, nrows, &o};
    nana_opt_prog prog = {.name = "nanasqlite-server",
                          .about = about,
                          .epilog = epilog,
                          .doc = doc,
                          .tables = &table,
                          .ntables = 1,
                          .markdown = 1};
    int first;
    int status = nana_opt_report(&prog, nana_opt_parse(&prog, argc, argv, &first));
    if (status >= 0) return status;
    nana_log_set_level(o.log_level);
    if (o.ready_file && check_ready_file(o.ready_file)) {
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
    if (nana_server_start(&o, &s)) {
        fprintf(stderr, "nanasqlite-server: %s\n", nana_errmsg());
        return 1;
    }
    nana_log(NANA_LOG_INFO, "nanasqlite-server %s listening on %s port %u (database %s)",
             nana_opt_version(), o.host, nana_server_port(s), o.db_path);
    if (o.ready_file && write_ready_file(o.ready_file, nana_server_port(s))) {
        fprintf(stderr, "nanasqlite-server: %s\n", nana_errmsg());
        nana_server_stop(s);
        return 1;
    }
    int sig = 0;
    sigwait(&stop, &sig);
    nana_log(NANA_LOG_INFO, "received %s: stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
    int rc = nana_server_stop(s);
    if (o.ready_file && unlink(o.ready_file) != 0 && errno != ENOENT)
        nana_log(NANA_LOG_WARN, "cannot remove the ready file %s: %s", o.ready_file,
                 strerror(errno));
    nana_log(NANA_LOG_INFO, "stopped");
    return rc ? 1 : 0;
}
