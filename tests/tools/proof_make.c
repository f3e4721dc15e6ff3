/*
 * proof_make.c - makes a server proof for the end-to-end tests of
 * `nanasqlite-cli verify-proof`: proof_make KEY SEQ UNIX_MS QUERY RESULT OUT
 * signs with the Ed25519 private key file KEY (PKCS#8 PEM) the proof of the
 * bytes of files QUERY and RESULT, and writes its 157 bytes to OUT.
 */
#include "auth/nana_keys.h"
#include "auth/nana_proof.h"
#include "util/nana_err.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>

/* The bytes of |path| (at most 1 MiB) into buf; their count, or -1. */
static long slurp(const char *path, uint8_t *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    return (long)n;
}

int main(int argc, char **argv)
{
    static uint8_t q[1 << 20], r[1 << 20];
    uint8_t sk[64], proof[NANA_PROOF_BYTES];
    if (argc != 7 || sodium_init() < 0) {
        fprintf(stderr, "usage: proof_make KEY SEQ UNIX_MS QUERY RESULT OUT\n");
        return 2;
    }
    long ql = slurp(argv[4], q, sizeof(q)), rl = slurp(argv[5], r, sizeof(r));
    if (nana_ed25519_read_private(argv[1], sk) || ql < 0 || rl < 0) {
        fprintf(stderr, "proof_make: %s\n", nana_errmsg());
        return 1;
    }
    nana_proof_make(sk, strtoull(argv[2], NULL, 10), strtoll(argv[3], NULL, 10), q, (size_t)ql, r,
                    (size_t)rl, proof);
    FILE *f = fopen(argv[6], "wb");
    if (!f || fwrite(proof, 1, sizeof(proof), f) != sizeof(proof) || fclose(f) != 0) return 1;
    return 0;
}
