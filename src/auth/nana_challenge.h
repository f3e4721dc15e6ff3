/*
 * nana_challenge.h - the Ed25519 challenge of the NanaSQLite door.
 *
 * AUTH_START gives a connection 32 fresh random bytes to sign. Unlike the
 * Python server's, a challenge is single-use and short-lived: the first
 * response consumes it whatever its outcome, and one older than its
 * lifetime is refused. One challenge per connection, owned by the caller;
 * no locking (a connection lives on one thread).
 */
#ifndef NANA_CHALLENGE_H
#define NANA_CHALLENGE_H

#include <stdbool.h>
#include <stdint.h>

#define NANA_CHALLENGE_BYTES 32

typedef struct nana_challenge {
    uint8_t bytes[NANA_CHALLENGE_BYTES];
    uint64_t expires; /* monotonic ns */
    bool live;
} nana_challenge;

/* Issues fresh bytes, valid until now + lifetime_ns (replacing any earlier). */
void nana_challenge_issue(nana_challenge *c, uint64_t now, uint64_t lifetime_ns);

/*
 * Checks a response: 0 if |sig| (64 bytes) is a valid Ed25519 signature of
 * the live, unexpired challenge by |pk|; a |pk| of 32 zero bytes is no key
 * and verifies nothing. The challenge is consumed either way. NANA_ERR_PERM: bad signature;
 * NANA_ERR_TIMEOUT: expired; NANA_ERR_INVALID: no challenge was issued (or it was used).
 */
int nana_challenge_verify(nana_challenge *c, const uint8_t *sig, uint64_t siglen,
                          const uint8_t pk[32], uint64_t now);

/* Like nana_challenge_verify for |npk| candidate keys stored back to back
 * in |pks| (an unnamed account): *which gets the index of the key that
 * verified. */
int nana_challenge_verify_any(nana_challenge *c, const uint8_t *sig, uint64_t siglen,
                              const uint8_t *pks, unsigned npk, unsigned *which, uint64_t now);

#endif
