/*
 * cli_proof.h - nanasqlite-cli's verify-proof command (cli_proof.c).
 */
#ifndef NANA_CLI_PROOF_H
#define NANA_CLI_PROOF_H

/* Runs `verify-proof ARGS...` (argv[0] is "verify-proof"); the exit status. */
int nana_cli_verify_proof(int argc, char **argv);

#endif
