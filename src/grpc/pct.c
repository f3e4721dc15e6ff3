/*
 * pct.c - the percent-encoding of grpc-message: printable ASCII except '%'
 * stays, every other byte is %XX. Decoding never fails: a broken escape is
 * kept as it came, as the protocol asks of a reader.
 */
#include "grpc/nana_grpc.h"

static bool stays(unsigned char c)
{
    return c >= 0x20 && c <= 0x7e && c != '%';
}

size_t nana_grpc_pct_encoded_len(const void *s, size_t n)
{
    const unsigned char *p = s;
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += stays(p[i]) ? 1 : 3;
    return len;
}

size_t nana_grpc_pct_encode(const void *s, size_t n, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *p = s;
    size_t len = 0;
    bool full = cap == 0;
    for (size_t i = 0; i < n; i++) {
        size_t w = stays(p[i]) ? 1 : 3;
        if (!full && len + w < cap) {
            if (w == 1) {
                out[len] = (char)p[i];
            } else {
                out[len] = '%';
                out[len + 1] = hex[p[i] >> 4];
                out[len + 2] = hex[p[i] & 15];
            }
        } else if (!full) {
            out[len] = 0;
            full = true;
        }
        len += w;
    }
    if (!full) out[len] = 0;
    return len;
}

/* The value of a hex digit (either case), or -1. */
static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

size_t nana_grpc_pct_decode(const char *s, size_t n, char *out)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < n && (hi = hexval(s[i + 1])) >= 0 &&
            (lo = hexval(s[i + 2])) >= 0) {
            out[len++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            out[len++] = s[i];
        }
    }
    out[len] = 0;
    return len;
}
