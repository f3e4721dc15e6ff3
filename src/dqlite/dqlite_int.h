/*
 * dqlite_int.h - what the files of src/dqlite share and nobody else sees:
 * the bounded reader of message bodies (proto.c, rows.c) and the TCP
 * helpers (sock.c) the client and the node's connect function use.
 */
#ifndef NANA_DQLITE_INT_H
#define NANA_DQLITE_INT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "dqlite/nana_dqlite.h"

/* A cursor over a body that came from outside: every read checks |left|. */
typedef struct dql_rd {
    const uint8_t *p;
    size_t left;
} dql_rd;

/* |n| rounded up to a whole number of 8-byte words. */
static inline size_t dql_pad8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

/* Little-endian loads. */
static inline uint64_t dql_le64(const uint8_t *b)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | b[i];
    return v;
}
static inline uint32_t dql_le32(const uint8_t *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

/* Reads one word; NANA_ERR_INVALID naming |what| when fewer than 8 bytes remain. */
int dql_rd_u64(dql_rd *r, uint64_t *v, const char *what);

/* Reads two 32-bit fields of one word. */
int dql_rd_u32x2(dql_rd *r, uint32_t *a, uint32_t *b, const char *what);

/* Reads a text: NUL-terminated within the bytes left, padded to words.
 * *s points into the body. */
int dql_rd_text(dql_rd *r, const char **s, size_t *len, const char *what);

/* Reads a blob: its length word, then the bytes padded to words. */
int dql_rd_blob(dql_rd *r, const uint8_t **p, size_t *len, const char *what);

/* Reads one value of type |type| as a column of a row into |v|. */
int dql_rd_value(dql_rd *r, int type, nana_dql_value *v);

/* Parses numeric "IPv4:port" or "[IPv6]:port" into |sa|; NANA_ERR_INVALID
 * otherwise. */
int dql_parse_address(const char *address, struct sockaddr_storage *sa, socklen_t *salen);

/*
 * Splits "IPv4:port" or "[IPv6]:port" and connects a TCP socket to it within
 * |timeout_ms|, with TCP_NODELAY, close-on-exec. |nonblock| leaves the socket
 * non-blocking; else it is made blocking again. *fd is the caller's.
 */
int dql_tcp_connect(const char *address, int timeout_ms, int nonblock, int *fd);

/*
 * A connection to a node for the client: dql_tcp_connect, or through the
 * TLS a process chose with nana_dql_tls_use (tls.c), the same way.
 */
int dql_sock_connect(const char *address, int timeout_ms, int nonblock, int *fd);

#endif
