/*
 * conn_flags.h - the connection flags every client tool takes
 * (nanasqlite-cli, nanasqlite-bench): where the server is, how to trust
 * it and how to log in.
 *
 * They are nana_opt rows (src/util/nana_opt.h) writing into a
 * nana_conn_flags, so a tool lists them next to its own options and
 * parses both with one nana_opt_parse. Each setting comes from, in order:
 * its flag, its environment variable (NANASQLITE_HOST, ...), the tools'
 * default (the CA is ./cert.pem when that file exists, as the README's
 * development set-up writes it there), the library's default. Nothing here
 * prints or reads a key: only file names are handled.
 */
#ifndef NANA_CONN_FLAGS_H
#define NANA_CONN_FLAGS_H

#include "nanasqlite_client.h"
#include "util/nana_opt.h"

/* What the connection flags give. */
typedef struct nana_conn_flags {
    nana_client_opts o;  /* the client options (strings point into argv or the environment) */
    const char *ca;      /* --ca as given: a file, "system", or NULL */
    unsigned timeout_ms; /* --timeout-ms; 0: the library's defaults */
} nana_conn_flags;

/*
 * Starts |f| from the library's defaults and returns the table of the
 * connection flags writing into it, for the tool's nana_opt_prog.
 */
nana_opt_table nana_conn_flags_table(nana_conn_flags *f);

/* After parsing: settles the CA (--ca, else ./cert.pem if it exists, else
 * the system store) and the timeouts in f->o. */
void nana_conn_flags_finish(nana_conn_flags *f);

#endif
