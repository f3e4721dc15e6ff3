/*
 * nodes.c - a pool's node list: "HOST:PORT,HOST:PORT,..." read strictly and
 * resolved.
 *
 * An entry is an IPv4 address, an IPv6 address in brackets or a host name,
 * then ':' and a port from 1 to 65535; blanks around an entry are ignored,
 * nothing else is. Every entry is checked before any is resolved, so a
 * typo is reported as such and not as a failed lookup. Resolution gives
 * all nodes one address family, because the pool's runtime has one UDP
 * socket and a socket has one family: numeric addresses decide the family
 * (two families among them is an error), and names are then resolved in
 * it (a name that has addresses only in the other family is an error that
 * says so). A node listed twice (the same address and port after
 * resolution) is refused too: it would only skew the spreading.
 */
#include "client_int.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

/* The longest host name (RFC 1035 text form). */
#define HOST_MAX 253

/* One entry split into its parts (hosts without brackets). */
typedef struct entry {
    char host[HOST_MAX + 1];
    bool numeric; /* an IPv4 address or a bracketed IPv6 address */
    int family;   /* of a numeric address */
} entry;

/* Whether |host| is an address of |family| in its strict text form
 * (dotted quad for IPv4: no "127.1"). */
static bool is_address(const char *host, int family)
{
    unsigned char buf[16];
    return inet_pton(family, host, buf) == 1;
}

/* The name of a family for messages. */
static const char *family_name(int f)
{
    return f == AF_INET6 ? "IPv6" : "IPv4";
}

/* Reads the port after the host: 1 to 65535, digits only. */
static int parse_port(const char *s, size_t len, uint16_t *out)
{
    if (len == 0 || len > 5) return -1;
    unsigned v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v == 0 || v > 65535) return -1;
    *out = (uint16_t)v;
    return 0;
}

/* Whether |c| may appear in a host name (letters, digits, '-', '.', '_'). */
static bool host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_';
}

/* Splits entry |name| (NUL-terminated, trimmed, not empty) into |e| and
 * *port. EINVALID naming the entry when it is malformed. */
static int split_entry(const char *name, entry *e, uint16_t *port, nana_result *err)
{
    size_t len = strlen(name);
    const char *host, *colon;
    size_t hlen;
    if (name[0] == '[') {
        const char *close = strchr(name, ']');
        if (!close)
            return nc_result_error(err, NANA_CLIENT_EINVALID,
                                   "node '%s': '[' without ']' (an IPv6 node is [ADDRESS]:PORT)",
                                   name);
        host = name + 1;
        hlen = (size_t)(close - host);
        colon = close + 1;
        if (*colon != ':')
            return nc_result_error(err, NANA_CLIENT_EINVALID,
                                   "node '%s': expected ':PORT' after ']' ([ADDRESS]:PORT)", name);
    } else {
        colon = strrchr(name, ':');
        if (!colon)
            return nc_result_error(err, NANA_CLIENT_EINVALID, "node '%s' has no port (HOST:PORT)",
                                   name);
        host = name;
        hlen = (size_t)(colon - name);
        if (memchr(host, ':', hlen))
            return nc_result_error(err, NANA_CLIENT_EINVALID,
                                   "node '%s': an IPv6 address is written in brackets, "
                                   "[ADDRESS]:PORT",
                                   name);
    }
    if (hlen == 0)
        return nc_result_error(err, NANA_CLIENT_EINVALID, "node '%s' has no host (HOST:PORT)",
                               name);
    if (hlen > HOST_MAX)
        return nc_result_error(err, NANA_CLIENT_EINVALID,
                               "node '%.40s...': the host is longer than %d characters", name,
                               HOST_MAX);
    if (parse_port(colon + 1, len - (size_t)(colon + 1 - name), port))
        return nc_result_error(err, NANA_CLIENT_EINVALID,
                               "node '%s': the port must be a number from 1 to 65535", name);
    memcpy(e->host, host, hlen);
    e->host[hlen] = '\0';
    if (name[0] == '[') {
        e->numeric = true;
        e->family = AF_INET6;
        if (!is_address(e->host, AF_INET6))
            return nc_result_error(err, NANA_CLIENT_EINVALID,
                                   "node '%s': '%s' in brackets is not an IPv6 address", name,
                                   e->host);
        return NANA_CLIENT_OK;
    }
    for (size_t i = 0; i < hlen; i++)
        if (!host_char(e->host[i]))
            return nc_result_error(err, NANA_CLIENT_EINVALID,
                                   "node '%s': '%c' cannot be part of a host name or address", name,
                                   e->host[i]);
    e->numeric = is_address(e->host, AF_INET);
    e->family = e->numeric ? AF_INET : 0;
    /* No top-level domain is all digits: such a host is meant as an
     * address, and the resolver would read "10.1" as one. */
    if (!e->numeric && strspn(e->host, "0123456789.") == hlen)
        return nc_result_error(err, NANA_CLIENT_EINVALID,
                               "node '%s': '%s' is not an IPv4 address (four numbers 0-255)", name,
                               e->host);
    return NANA_CLIENT_OK;
}

/* Copies the next entry of |*p| (up to ',' or the end) without its
 * surrounding blanks into |out|; advances *p past the comma. EINVALID for an
 * empty or over-long entry (|index| 1-based, for the message). */
static int next_entry(const char **p, unsigned index, char out[NC_NODE_ENTRY_MAX + 1],
                      nana_result *err)
{
    const char *s = *p, *end = strchr(s, ',');
    if (!end) end = s + strlen(s);
    *p = *end ? end + 1 : end;
    while (s < end && (*s == ' ' || *s == '\t'))
        s++;
    while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    size_t len = (size_t)(end - s);
    if (len == 0)
        return nc_result_error(err, NANA_CLIENT_EINVALID,
                               "node list: entry %u is empty (HOST:PORT,HOST:PORT,...)", index);
    if (len > NC_NODE_ENTRY_MAX)
        return nc_result_error(err, NANA_CLIENT_EINVALID,
                               "node list: entry %u ('%.40s...') is longer than %d characters",
                               index, s, NC_NODE_ENTRY_MAX);
    memcpy(out, s, len);
    out[len] = '\0';
    return NANA_CLIENT_OK;
}

int nc_nodes_parse(const char *list, nc_node_addr out[NANA_POOL_MAX_NODES], unsigned *n,
                   int *family, nana_result *err)
{
    entry e[NANA_POOL_MAX_NODES];
    unsigned count = 0;
    *n = 0;
    const char *p = list;
    int rc = NANA_CLIENT_OK;
    /* Every entry is read and checked before anything is resolved. */
    while (*p) {
        if (count == NANA_POOL_MAX_NODES)
            return nc_result_error(err, NANA_CLIENT_EINVALID,
                                   "node list: more than %d nodes (the limit)",
                                   NANA_POOL_MAX_NODES);
        if ((rc = next_entry(&p, count + 1, out[count].name, err))) return rc;
        bool last_comma = p > list && p[-1] == ',' && !*p;
        if ((rc = split_entry(out[count].name, &e[count], &out[count].port, err))) return rc;
        count++;
        if (last_comma)
            return nc_result_error(err, NANA_CLIENT_EINVALID,
                                   "node list: entry %u is empty (HOST:PORT,HOST:PORT,...)",
                                   count + 1);
    }
    if (count == 0)
        return nc_result_error(err, NANA_CLIENT_EINVALID, "node list: no node (HOST:PORT,...)");
    /* The family: the numeric addresses', which must agree. */
    int fam = 0;
    unsigned first = 0;
    for (unsigned i = 0; i < count; i++) {
        if (!e[i].numeric) continue;
        if (!fam) {
            fam = e[i].family;
            first = i;
        } else if (e[i].family != fam) {
            return nc_result_error(err, NANA_CLIENT_EINVALID,
                                   "node '%s' is %s but node '%s' is %s: all nodes must be of one "
                                   "address family (the client has one UDP socket, of one family)",
                                   out[i].name, family_name(e[i].family), out[first].name,
                                   family_name(fam));
        }
    }
    /* Resolve: names in that family (the first name decides it if no
     * address did). */
    for (unsigned i = 0; i < count; i++) {
        int got = 0;
        if (e[i].numeric) {
            rc = nc_resolve(e[i].host, e[i].family, out[i].addr, &got, err);
        } else {
            rc = nc_resolve(e[i].host, fam ? fam : AF_UNSPEC, out[i].addr, &got, err);
            if (rc && fam) { /* only the other family? say so */
                char other[INET6_ADDRSTRLEN];
                nana_result tmp = {0};
                int og = 0;
                if (!nc_resolve(e[i].host, AF_UNSPEC, other, &og, &tmp) && og != fam)
                    rc = nc_result_error(err, NANA_CLIENT_EINVALID,
                                         "node '%s' has only %s addresses but node '%s' is %s: all "
                                         "nodes must be of one address family (the client has "
                                         "one UDP socket, of one family)",
                                         out[i].name, family_name(og), out[first].name,
                                         family_name(fam));
                nana_result_free(&tmp);
            }
            if (!rc && !fam) {
                fam = got;
                first = i;
            }
        }
        if (rc) {
            if (rc == NANA_CLIENT_ECONNECT) {
                char why[256];
                snprintf(why, sizeof(why), "%s", err->message ? err->message : "");
                nc_result_set(err, rc, "node '%s': %s", out[i].name, why);
            }
            return rc;
        }
    }
    /* The same node twice. */
    for (unsigned i = 0; i < count; i++)
        for (unsigned j = 0; j < i; j++)
            if (out[i].port == out[j].port && !strcmp(out[i].addr, out[j].addr))
                return nc_result_error(err, NANA_CLIENT_EINVALID,
                                       "nodes '%s' and '%s' are the same node (%s port %u)",
                                       out[j].name, out[i].name, out[i].addr, out[i].port);
    *n = count;
    *family = fam ? fam : AF_INET;
    return NANA_CLIENT_OK;
}
