/*
 * cli_aql.h - nanasqlite-cli's "aql" command (cli_aql.c): AQL queries on
 * the server's gRPC door, one JSON document per command.
 */
#ifndef NANA_CLI_AQL_H
#define NANA_CLI_AQL_H

#include "nanasqlite_client.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* What the aql command uses of the CLI: its client (connected on demand
 * by |connect|, in gRPC mode), the call options (--db) and its JSON
 * printers (|print| one document and a newline, |print_inline| a part of
 * one); each returns 0 or the exit status with the error printed. */
typedef struct cli_aql_ctx {
    nana_client *client;
    nana_call_opts co;
    bool compact;
    int (*connect)(struct cli_aql_ctx *x);
    int (*print)(bool compact, const char *json, size_t n);
    int (*print_inline)(bool compact, const char *json, size_t n);
    void *cli; /* the CLI's own state, for connect */
} cli_aql_ctx;

/* Runs `aql SUBCOMMAND ...` (argv[0] the subcommand). Returns 0 or the
 * exit status (1 server, 2 usage, 3 connection). */
int cli_aql_run(cli_aql_ctx *x, int argc, char **argv);

/* Prints the aql command's help (subcommands and their options). */
void cli_aql_help(FILE *out);

#endif
