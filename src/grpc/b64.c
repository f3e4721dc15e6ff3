/*
 * b64.c - base64 (RFC 4648 section 4, the standard alphabet) for "-bin"
 * metadata: we send it unpadded and read it padded or not, as gRPC asks.
 */
#include "grpc/nana_grpc.h"

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t nana_grpc_b64_encoded_len(size_t n)
{
    return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
}

size_t nana_grpc_b64_encode(const void *p, size_t n, char *out)
{
    const uint8_t *s = p;
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        out[o++] = alphabet[v >> 18];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = alphabet[(v >> 6) & 63];
        out[o++] = alphabet[v & 63];
    }
    if (n - i == 1) {
        out[o++] = alphabet[s[i] >> 2];
        out[o++] = alphabet[(s[i] & 3) << 4];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)s[i] << 8 | s[i + 1];
        out[o++] = alphabet[v >> 10];
        out[o++] = alphabet[(v >> 4) & 63];
        out[o++] = alphabet[(v & 15) << 2];
    }
    out[o] = 0;
    return o;
}

/* The 6-bit value of a base64 character, or -1. */
static int b64val(char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

int nana_grpc_b64_decode(const char *s, size_t n, uint8_t *out, size_t *out_len)
{
    /* Padding: only as the last one or two characters of a length that is
     * a multiple of 4. */
    if (n && s[n - 1] == '=') {
        if (n % 4) return nana_err_set(NANA_ERR_INVALID, "base64 padding on a bad length");
        n--;
        if (s[n - 1] == '=') n--;
    }
    if (n % 4 == 1) return nana_err_set(NANA_ERR_INVALID, "base64 of a length no encoding has");
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64val(s[i]);
        if (v < 0) return nana_err_set(NANA_ERR_INVALID, "a character outside base64");
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    *out_len = o;
    return 0;
}
