/*
 * identity.c - reading and writing certificate fingerprints (see
 * nana_identity.h). Hex is read by hand so that colons are accepted only
 * between pairs; base64 goes through libsodium, which refuses missing
 * padding and stray bits.
 */
#include "auth/nana_identity.h"

#include "util/nana_err.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define FP     ((size_t)NANA_FINGERPRINT_BYTES)
#define PIN    "sha256/"
#define PINLEN (sizeof(PIN) - 1)
#define B64LEN 44 /* standard base64 of 32 bytes, with one '=' */

/* The value of hex digit |c|, or -1. */
static int hex_value(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Reads 64 hex digits, or 32 pairs joined by single colons. */
static int parse_hex(const char *s, size_t n, uint8_t out[FP])
{
    bool colons = n == FP * 3 - 1;
    if (n != FP * 2 && !colons)
        return nana_err_set(NANA_ERR_INVALID,
                            "a SHA-256 fingerprint is 64 hex digits (or 32 pairs joined by "
                            "colons) or sha256/ and 44 characters of base64; this is %zu "
                            "characters",
                            n);
    size_t step = colons ? 3 : 2;
    for (size_t i = 0; i < FP; i++) {
        const char *p = s + i * step;
        int hi = hex_value(p[0]), lo = hex_value(p[1]);
        if (hi < 0 || lo < 0)
            return nana_err_set(NANA_ERR_INVALID,
                                "character %zu of the fingerprint is not a hex digit",
                                i * step + (hi < 0 ? 1 : 2));
        if (colons && i + 1 < FP && p[2] != ':')
            return nana_err_set(NANA_ERR_INVALID,
                                "character %zu of the fingerprint should be a colon between "
                                "two pairs of hex digits",
                                i * step + 3);
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return NANA_OK;
}

/* Reads the base64 after "sha256/". */
static int parse_pin(const char *s, size_t n, uint8_t out[FP])
{
    size_t got = 0;
    const char *end = NULL;
    if (n != B64LEN ||
        sodium_base642bin(out, FP, s, n, NULL, &got, &end, sodium_base64_VARIANT_ORIGINAL) != 0 ||
        got != FP || end != s + n)
        return nana_err_set(NANA_ERR_INVALID,
                            "after sha256/ a fingerprint is the standard base64 of 32 bytes: "
                            "44 characters ending in '='");
    return NANA_OK;
}

int nana_fingerprint_parse(const char *text, size_t len, uint8_t out[NANA_FINGERPRINT_BYTES])
{
    uint8_t fp[FP];
    int rc = len >= PINLEN && memcmp(text, PIN, PINLEN) == 0
                 ? parse_pin(text + PINLEN, len - PINLEN, fp)
                 : parse_hex(text, len, fp);
    if (rc) return rc;
    if (nana_fingerprint_is_zero(fp))
        return nana_err_set(NANA_ERR_INVALID,
                            "the fingerprint is all zero bytes, which names no certificate");
    memcpy(out, fp, FP);
    return NANA_OK;
}

void nana_fingerprint_hex(const uint8_t fp[NANA_FINGERPRINT_BYTES],
                          char out[NANA_FINGERPRINT_HEX_MAX])
{
    static const char digits[] = "0123456789abcdef";
    char *o = out;
    for (size_t i = 0; i < FP; i++) {
        if (i) *o++ = ':';
        *o++ = digits[fp[i] >> 4];
        *o++ = digits[fp[i] & 15];
    }
    *o = '\0';
}

void nana_fingerprint_pin(const uint8_t fp[NANA_FINGERPRINT_BYTES],
                          char out[NANA_FINGERPRINT_PIN_MAX])
{
    memcpy(out, PIN, PINLEN);
    sodium_bin2base64(out + PINLEN, NANA_FINGERPRINT_PIN_MAX - PINLEN, fp, FP,
                      sodium_base64_VARIANT_ORIGINAL);
}

bool nana_fingerprint_is_zero(const uint8_t fp[NANA_FINGERPRINT_BYTES])
{
    uint8_t any = 0;
    for (size_t i = 0; i < FP; i++)
        any |= fp[i];
    return any == 0;
}
