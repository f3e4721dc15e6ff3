/*
 * cli_cluster.h - nanasqlite-cli's cluster command (cli_cluster.c).
 */
#ifndef NANA_CLI_CLUSTER_H
#define NANA_CLI_CLUSTER_H

/* Runs `cluster SUBCOMMAND ...` (argv[0] is "cluster"); the exit status. */
int nana_cli_cluster(int argc, char **argv);

#endif
