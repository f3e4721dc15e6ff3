/*
 * proofkey.c - the key that signs the AQL services' server proofs
 * (nana_proof.h): --proof-key, or by default proof.key beside the TLS key
 * (--key), made with proof.pub on a first start as the development
 * credentials are. Two steps, so that a start that fails early creates
 * nothing: nana_server_proof_key_find has no side effects; the key is made
 * and read by nana_server_proof_key_load, later. Only the public key and
 * its id are ever logged.
 */
#include "server/server_int.h"

#include "auth/nana_keys.h"
#include "util/nana_err.h"
#include "util/nana_log.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

int nana_server_proof_key_find(const nana_server_opts *o, char *path, size_t cap, bool *make)
{
    *make = false;
    if (o->proof_key_path) {
        snprintf(path, cap, "%s", o->proof_key_path);
        return NANA_OK;
    }
    const char *slash = strrchr(o->key_path, '/');
    int n = slash
                ? snprintf(path, cap, "%.*sproof.key", (int)(slash - o->key_path + 1), o->key_path)
                : snprintf(path, cap, "proof.key");
    if (n < 0 || (size_t)n >= cap) return nana_err_set(NANA_ERR_INVALID, "--key: path too long");
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno != ENOENT)
            return nana_err_set(NANA_ERR_IO, "proof key %s: %s", path, strerror(errno));
        *make = true;
    }
    return NANA_OK;
}

int nana_server_proof_key_load(const char *path, bool make, uint8_t sk[64])
{
    int rc;
    if (make) {
        char pub[4200];
        snprintf(pub, sizeof(pub), "%.*s.pub",
                 (int)(strlen(path) > 4 && !strcmp(path + strlen(path) - 4, ".key")
                           ? strlen(path) - 4
                           : strlen(path)),
                 path);
        if ((rc = nana_ed25519_generate_files(path, pub, "nanasqlite proof key", 0))) return rc;
        nana_log(NANA_LOG_INFO, "made the proof key %s and its public key %s", path, pub);
    }
    if ((rc = nana_ed25519_read_private(path, sk))) return rc;
    uint8_t kid[8];
    char pkhex[65], kidhex[17];
    nana_proof_key_id(sk + 32, kid);
    sodium_bin2hex(pkhex, sizeof(pkhex), sk + 32, 32);
    sodium_bin2hex(kidhex, sizeof(kidhex), kid, 8);
    nana_log(NANA_LOG_INFO, "proof key %s: public key %s, key id %s", path, pkhex, kidhex);
    return NANA_OK;
}
