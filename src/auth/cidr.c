/*
 * cidr.c - address rules of the accounts file (see nana_accounts.h). A rule
 * is kept with its host bits cleared, so matching is a compare of whole
 * bytes and one masked byte. IPv4 seen through an IPv6 socket
 * (::ffff:a.b.c.d) is IPv4 on both sides: mapped rules are stored as IPv4
 * rules and mapped addresses are matched as IPv4 addresses.
 */
#include "auth/nana_accounts.h"

#include "util/nana_err.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

static const uint8_t V4_MAPPED[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* Clears every bit of |addr| after the first |bits|. */
static void clear_host_bits(uint8_t addr[16], unsigned bits, unsigned total)
{
    for (unsigned i = 0; i < total / 8; i++) {
        unsigned keep = bits >= 8 * (i + 1) ? 8 : bits > 8 * i ? bits - 8 * i : 0;
        addr[i] &= (uint8_t)(0xff00u >> keep);
    }
}

/* Parses a prefix length: 1 to 3 decimal digits, no leading zero, at most |max|. */
static int parse_bits(const char *s, size_t n, unsigned max, unsigned *out)
{
    if (n == 0 || n > 3 || (n > 1 && s[0] == '0')) return -1;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > max) return -1;
    *out = v;
    return 0;
}

int nana_cidr_parse(const char *text, size_t len, nana_cidr *out)
{
    char buf[INET6_ADDRSTRLEN + 8];
    memset(out, 0, sizeof(*out));
    if (len == 0 || len >= sizeof(buf) || memchr(text, '\0', len)) goto bad;
    memcpy(buf, text, len);
    buf[len] = '\0';
    char *slash = strchr(buf, '/');
    if (slash) *slash = '\0';
    size_t bits_len = slash ? len - (size_t)(slash + 1 - buf) : 0;
    unsigned bits;
    if (inet_pton(AF_INET, buf, out->addr) == 1) {
        out->family = AF_INET;
        bits = 32;
        if (slash && parse_bits(slash + 1, bits_len, 32, &bits) != 0) goto bad;
    } else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
        out->family = AF_INET6;
        bits = 128;
        if (slash && parse_bits(slash + 1, bits_len, 128, &bits) != 0) goto bad;
        if (bits >= 96 && memcmp(out->addr, V4_MAPPED, sizeof(V4_MAPPED)) == 0) {
            memmove(out->addr, out->addr + 12, 4);
            memset(out->addr + 4, 0, 12);
            out->family = AF_INET;
            bits -= 96;
        }
    } else {
        goto bad;
    }
    out->bits = (uint8_t)bits;
    clear_host_bits(out->addr, bits, out->family == AF_INET ? 32 : 128);
    return NANA_OK;
bad:
    memset(out, 0, sizeof(*out));
    return nana_err_set(NANA_ERR_INVALID, "not an IPv4 or IPv6 address with an optional /prefix");
}

bool nana_cidr_match(const nana_cidr *c, const struct sockaddr *addr)
{
    if (!c || !addr) return false;
    const uint8_t *a;
    uint8_t family;
    if (addr->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)addr;
        a = (const uint8_t *)&in->sin_addr;
        family = AF_INET;
    } else if (addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)addr;
        a = in6->sin6_addr.s6_addr;
        family = AF_INET6;
        if (memcmp(a, V4_MAPPED, sizeof(V4_MAPPED)) == 0) {
            a += 12;
            family = AF_INET;
        }
    } else {
        return false;
    }
    if (family != c->family) return false;
    unsigned whole = c->bits / 8u, rest = c->bits % 8u;
    if (memcmp(a, c->addr, whole) != 0) return false;
    if (rest == 0) return true;
    uint8_t mask = (uint8_t)(0xff00u >> rest);
    return (a[whole] & mask) == c->addr[whole];
}
