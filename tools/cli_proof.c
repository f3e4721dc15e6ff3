/*
 * cli_proof.c - `nanasqlite-cli verify-proof`: checks a server proof
 * (src/auth/nana_proof.h) offline, against the server's public proof key
 * and the query and result bytes it is about. No server is contacted.
 *
 *   nanasqlite-cli verify-proof --public-key proof.pub --proof FILE | --proof-hex HEX
 *                               --query FILE --result FILE
 *
 * FILE "-" is standard input (for one of them). It prints one line of
 * JSON: {"valid":true,"seq":N,"time_ms":N,"key_id":"hex"} and exits 0, or
 * {"valid":false,"reason":"..."} and exits 1; a wrong command line is a
 * line on stderr and exit status 2.
 */
#include "cli_proof.h"

#include "auth/nana_keys.h"
#include "auth/nana_proof.h"
#include "util/nana_buf.h"
#include "util/nana_err.h"
#include "util/nana_json.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INPUT_MAX ((size_t)1 << 30) /* bytes of a query or result file */

/* Reads all of |path| ("-": stdin) into a malloc'd buffer (*out, owned by the caller). */
static int read_all(const char *path, uint8_t **out, size_t *len)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) return nana_err_set(NANA_ERR_NOTFOUND, "cannot open %s", path);
    size_t cap = 4096, n = 0;
    uint8_t *b = malloc(cap);
    while (b) {
        n += fread(b + n, 1, cap - n, f);
        if (n < cap || n >= INPUT_MAX) break;
        uint8_t *nb = realloc(b, cap * 2);
        if (!nb) free(b);
        b = nb;
        cap *= 2;
    }
    int bad = !b || ferror(f) || n >= INPUT_MAX;
    if (f != stdin) fclose(f);
    if (bad) {
        free(b);
        return nana_err_set(NANA_ERR_IO, "cannot read %s (or over 1 GiB)", path);
    }
    *out = b;
    *len = n;
    return NANA_OK;
}

/* Prints {"valid":false,"reason":...}; returns 1. */
static int invalid(const char *reason)
{
    nana_buf b;
    nana_buf_init(&b, 0);
    nana_buf_append(&b, "{\"valid\":false,\"reason\":", 24);
    nana_json_write_string(&b, reason, strlen(reason));
    printf("%.*s}\n", (int)b.len, b.data);
    nana_buf_free(&b);
    return 1;
}

static int usage(const char *why)
{
    fprintf(stderr,
            "nanasqlite-cli verify-proof: %s\nusage: nanasqlite-cli verify-proof --public-key "
            "FILE (--proof FILE | --proof-hex HEX) --query FILE --result FILE\n",
            why);
    return 2;
}

int nana_cli_verify_proof(int argc, char **argv)
{
    const char *pub = NULL, *proof = NULL, *proof_hex = NULL, *query = NULL, *result = NULL;
    for (int i = 1; i < argc; i++) {
        const char **slot = !strcmp(argv[i], "--public-key")  ? &pub
                            : !strcmp(argv[i], "--proof")     ? &proof
                            : !strcmp(argv[i], "--proof-hex") ? &proof_hex
                            : !strcmp(argv[i], "--query")     ? &query
                            : !strcmp(argv[i], "--result")    ? &result
                                                              : NULL;
        if (!slot) return usage("unknown argument");
        if (i + 1 >= argc) return usage("an option needs a value");
        *slot = argv[++i];
    }
    if (!pub || !query || !result || !proof == !proof_hex)
        return usage("--public-key, --query, --result and one of --proof, --proof-hex are needed");
    if (sodium_init() < 0) return invalid("libsodium failed to start");
    uint8_t pk[32];
    if (nana_ed25519_read_public(pub, pk)) return invalid(nana_errmsg());
    uint8_t *p = NULL, *q = NULL, *r = NULL;
    size_t pl = 0, ql = 0, rl = 0;
    int rc = 0;
    if (proof_hex) {
        size_t hl = strlen(proof_hex);
        p = malloc(hl / 2 + 1);
        if (!p || sodium_hex2bin(p, hl / 2 + 1, proof_hex, hl, NULL, &pl, NULL) != 0 ||
            hl != 2 * pl)
            rc = nana_err_set(NANA_ERR_INVALID, "--proof-hex is not hex");
    } else {
        rc = read_all(proof, &p, &pl);
    }
    if (!rc) rc = read_all(query, &q, &ql);
    if (!rc) rc = read_all(result, &r, &rl);
    nana_proof_info info;
    if (!rc) rc = nana_proof_verify(pk, p, pl, q, ql, r, rl, &info);
    free(p);
    free(q);
    free(r);
    if (rc) return invalid(nana_errmsg());
    char kid[17];
    sodium_bin2hex(kid, sizeof(kid), info.key_id, 8);
    printf("{\"valid\":true,\"seq\":%llu,\"time_ms\":%lld,\"key_id\":\"%s\"}\n",
           (unsigned long long)info.seq, (long long)info.unix_ms, kid);
    return 0;
}
