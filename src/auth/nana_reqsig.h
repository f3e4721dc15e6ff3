/*
 * nana_reqsig.h - a request signed by its account (the client_signature
 * of an AmateRS QueryRequest): who asked this exact query, on this
 * connection, at this time, as the n-th request.
 *
 * The bytes a client sends:
 *
 *   u8 version = 1 | u8 account_len | account | u64be seq | i64be unix_ms | sig[64]
 *
 * and sig is Ed25519, by the account's key, over
 *
 *   "nanasqlite-aql-request-v1" NUL | exporter[32] | u8 account_len | account |
 *   u64be seq | i64be unix_ms | SHA-256(query)[32]
 *
 * where exporter is the connection's TLS exporter value (label
 * NANA_GRPC_LOGIN_EXPORTER_LABEL, no context, 32 bytes), as the gRPC
 * login uses: a signature taken from one connection is worthless on
 * another. Replays on the same connection are the door's to refuse (seq
 * strictly rising, unix_ms near its clock; docs/GRPC.md). Pure functions:
 * no clock, no I/O.
 *
 * Errors: 0 or a negative NANA_ERR_* with a reason in nana_errmsg().
 */
#ifndef NANA_REQSIG_H
#define NANA_REQSIG_H

#include <stddef.h>
#include <stdint.h>

#define NANA_REQSIG_CONTEXT     "nanasqlite-aql-request-v1"
#define NANA_REQSIG_VERSION     1
#define NANA_REQSIG_ACCOUNT_MAX 64
/* The longest client_signature and signed message. */
#define NANA_REQSIG_BYTES_MAX (2 + NANA_REQSIG_ACCOUNT_MAX + 8 + 8 + 64)
#define NANA_REQSIG_MESSAGE_MAX                                                                    \
    (sizeof(NANA_REQSIG_CONTEXT) + 32 + 1 + NANA_REQSIG_ACCOUNT_MAX + 8 + 8 + 32)

/* A parsed client_signature. */
typedef struct nana_reqsig {
    uint8_t version;
    uint8_t account_len;
    char account[NANA_REQSIG_ACCOUNT_MAX + 1]; /* NUL-terminated; an account name */
    uint64_t seq;
    int64_t unix_ms;
    uint8_t sig[64];
} nana_reqsig;

/*
 * Reads client_signature bytes p[0..n): version 1, an account of 1..64
 * bytes of a valid account name, and exactly the length that account
 * makes. 0 or NANA_ERR_INVALID.
 */
int nana_reqsig_parse(const uint8_t *p, size_t n, nana_reqsig *out);

/*
 * The signed message for |s| on the connection with |exporter| and the
 * query bytes, into |out|: its length, or 0 when |cap| is too small
 * (NANA_REQSIG_MESSAGE_MAX always suffices).
 */
size_t nana_reqsig_message(const uint8_t exporter[32], const nana_reqsig *s, const uint8_t *query,
                           size_t qlen, uint8_t *out, size_t cap);

/* 0 if |s|'s signature is the key |pk|'s over its message; else NANA_ERR_PERM. */
int nana_reqsig_verify(const nana_reqsig *s, const uint8_t pk[32], const uint8_t exporter[32],
                       const uint8_t *query, size_t qlen);

/*
 * Writes client_signature bytes for |account| (a valid account name),
 * signed with libsodium secret key |sk|, into |out|: their length, or
 * NANA_ERR_INVALID (the name) or NANA_ERR_TOOBIG (|cap| too small).
 */
int nana_reqsig_sign(const uint8_t sk[64], const char *account, uint64_t seq, int64_t unix_ms,
                     const uint8_t exporter[32], const uint8_t *query, size_t qlen, uint8_t *out,
                     size_t cap);

#endif
