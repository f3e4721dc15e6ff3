/*
 * conn_flags.h - the connection flags every client tool takes
 * (nanasqlite-cli, nanasqlite-bench): where the server is, how to trust
 * it and how to log in.
 *
 * Each setting comes from, in order: its flag, its environment variable,
 * the tools' default (the CA is ./cert.pem when that file exists, as the
 * README's development set-up writes it there), the library's default
 * (nana_client_opts_init). A tool's argument loop offers every argument to
 * nana_conn_flag first; once the loop is done nana_conn_flags_fill turns
 * what was collected into a nana_client_opts. Nothing here prints or reads
 * a key: only file names are handled.
 */
#ifndef NANA_CONN_FLAGS_H
#define NANA_CONN_FLAGS_H

#include "nanasqlite_client.h"

#include <stddef.h>
#include <stdio.h>

/* The flags seen so far. Strings point into argv (or the environment). */
typedef struct nana_conn_flags {
    const char *host, *port, *ca, *key, *account, *cert, *cert_key, *server_name;
    const char *timeout_ms;
} nana_conn_flags;

/* Clears |f|: nothing given yet. */
void nana_conn_flags_init(nana_conn_flags *f);

/*
 * Looks at argv[i] (i < argc). If it is a connection flag ("--port 4433"
 * or "--port=4433"), records its value and returns how many entries it
 * used (1 or 2). Returns 0 if argv[i] is not a connection flag, and -1 if
 * it is one with a missing or bad value; then |err| (of |errlen| bytes)
 * says what is wrong, for the caller to print.
 */
int nana_conn_flag(nana_conn_flags *f, int argc, char **argv, int i, char *err, size_t errlen);

/* Writes the flags' help lines, environment variables included, to |out|. */
void nana_conn_flags_help(FILE *out);

/*
 * Fills |o| from the flags, then the environment, then the defaults.
 * Returns 0, or -1 with |err| saying which value is bad (a flag's value is
 * checked by nana_conn_flag already; this catches bad environment values).
 * The strings in |o| point into argv or the environment.
 */
int nana_conn_flags_fill(const nana_conn_flags *f, nana_client_opts *o, char *err, size_t errlen);

#endif
