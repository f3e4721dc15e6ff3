/*
 * nana_proof.h - server_proof: a receipt, signed by the server's proof
 * key, that it answered this query with this result at this time. Anyone
 * holding the server's public proof key can check it offline (for
 * instance `nanasqlite-cli verify-proof`).
 *
 * The proof's NANA_PROOF_BYTES bytes:
 *
 *   "NSP1" | u8 version = 1 | key_id[8] | u64be server_seq | i64be unix_ms |
 *   SHA-256(query)[32] | SHA-256(result)[32] | sig[64]
 *
 * key_id is the first 8 bytes of SHA-256 of the server's Ed25519 public
 * key (which key signed it, so a key rotation is visible); sig is Ed25519
 * over "nanasqlite-proof-v1" NUL followed by every byte before sig.
 * Pure functions: no clock (the time is a parameter), no I/O.
 *
 * Errors: 0 or a negative NANA_ERR_* with a reason in nana_errmsg().
 */
#ifndef NANA_PROOF_H
#define NANA_PROOF_H

#include <stddef.h>
#include <stdint.h>

#define NANA_PROOF_MAGIC   "NSP1"
#define NANA_PROOF_CONTEXT "nanasqlite-proof-v1"
#define NANA_PROOF_VERSION 1
#define NANA_PROOF_SIGNED  (4 + 1 + 8 + 8 + 8 + 32 + 32) /* bytes before sig */
#define NANA_PROOF_BYTES   (NANA_PROOF_SIGNED + 64)

/* When the server adds a proof to an answer (--proof-mode). */
typedef enum nana_proof_mode {
    NANA_PROOF_ASK = 0, /* when the call's metadata has "nana-proof: 1" (the default) */
    NANA_PROOF_ALWAYS = 1,
    NANA_PROOF_NEVER = 2,
} nana_proof_mode;

/* What a proof that verified says. */
typedef struct nana_proof_info {
    uint64_t seq;
    int64_t unix_ms;
    uint8_t key_id[8];
} nana_proof_info;

/* The key id of public key |pk|: the first 8 bytes of its SHA-256. */
void nana_proof_key_id(const uint8_t pk[32], uint8_t key_id[8]);

/*
 * Writes the proof that the holder of libsodium secret key |sk| (seed ||
 * public key) answered |query| with |result| as its |seq|-th proof at
 * |unix_ms|. 0 always (the sizes are fixed).
 */
int nana_proof_make(const uint8_t sk[64], uint64_t seq, int64_t unix_ms, const uint8_t *query,
                    size_t qlen, const uint8_t *result, size_t rlen, uint8_t out[NANA_PROOF_BYTES]);

/*
 * Checks |proof| (|plen| bytes) against public key |pk| and the query and
 * result bytes; on success fills |info| (may be NULL). Returns 0,
 * NANA_ERR_INVALID (not a version 1 proof of the right length) or
 * NANA_ERR_PERM (another key's, another query or result, or a signature
 * that does not verify); the reason says which.
 */
int nana_proof_verify(const uint8_t pk[32], const uint8_t *proof, size_t plen, const uint8_t *query,
                      size_t qlen, const uint8_t *result, size_t rlen, nana_proof_info *info);

#endif
