/*
 * nana_identity.h - who a client certificate says the peer is, in terms
 * every door shares, and the fingerprints that name a certificate.
 *
 * Big idea: the transport verifies a client certificate during the TLS
 * handshake (mutual TLS) and keeps what it learnt; a door copies that into
 * a nana_cert_identity, which is all the accounts need to pick an account
 * (nana_accounts_find_by_identity). auth/ never sees the transport's own
 * types, so the QUIC door and the TCP doors select accounts the same way.
 *
 * A certificate is named by one of two SHA-256 fingerprints:
 *   - of the certificate itself (its DER encoding): names exactly this
 *     certificate; a renewed certificate has another fingerprint;
 *   - of its SubjectPublicKeyInfo (DER), the RFC 7469 pin: names the key,
 *     so a certificate renewed for the same key keeps it.
 * Either is written as 64 hex digits (any case, optionally with a colon
 * between each pair: "AB:CD:...") or as "sha256/" followed by the 44
 * characters of standard base64 (with its "=" padding), the pin form.
 */
#ifndef NANA_IDENTITY_H
#define NANA_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NANA_FINGERPRINT_BYTES    32  /* SHA-256 */
#define NANA_IDENTITY_SUBJECT_MAX 256 /* bytes of a subject DN kept, NUL included */

/* "AB:CD:...:EF" (95) and "sha256/" + base64 (51), NUL included. */
#define NANA_FINGERPRINT_HEX_MAX 96
#define NANA_FINGERPRINT_PIN_MAX 52

/* What a verified client certificate says. All zero: no certificate. */
typedef struct nana_cert_identity {
    bool verified;                               /* a certificate was presented and verified */
    uint8_t cert_sha256[NANA_FINGERPRINT_BYTES]; /* SHA-256 of the certificate (DER) */
    uint8_t spki_sha256[NANA_FINGERPRINT_BYTES]; /* SHA-256 of its SubjectPublicKeyInfo (DER) */
    char subject[NANA_IDENTITY_SUBJECT_MAX];     /* its subject DN (RFC 4514), for logs */
} nana_cert_identity;

/*
 * Reads a fingerprint written as hex (64 digits, or 32 pairs joined by
 * colons) or as "sha256/BASE64" into |out|. |text| need not be
 * NUL-terminated. Returns 0, or NANA_ERR_INVALID with a detail saying
 * what is wrong (never repeating the text): a wrong length, a character
 * that is not a hex digit, misplaced colons, bad base64, or 32 zero bytes
 * (no certificate hashes to that; refusing it keeps an unset fingerprint
 * from ever matching).
 */
int nana_fingerprint_parse(const char *text, size_t len, uint8_t out[NANA_FINGERPRINT_BYTES]);

/* Writes |fp| as lowercase hex pairs joined by colons into |out|
 * (NANA_FINGERPRINT_HEX_MAX bytes). */
void nana_fingerprint_hex(const uint8_t fp[NANA_FINGERPRINT_BYTES],
                          char out[NANA_FINGERPRINT_HEX_MAX]);

/* Writes |fp| as "sha256/" + standard base64 into |out|
 * (NANA_FINGERPRINT_PIN_MAX bytes). */
void nana_fingerprint_pin(const uint8_t fp[NANA_FINGERPRINT_BYTES],
                          char out[NANA_FINGERPRINT_PIN_MAX]);

/* True if all NANA_FINGERPRINT_BYTES bytes of |fp| are zero (an unset fingerprint). */
bool nana_fingerprint_is_zero(const uint8_t fp[NANA_FINGERPRINT_BYTES]);

#endif
