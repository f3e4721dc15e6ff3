/*
 * test_util.h - small helpers shared by the C tests: scratch paths under
 * the build's test-tmp directory, and removing a database with its WAL.
 */
#ifndef NANA_TEST_UTIL_H
#define NANA_TEST_UTIL_H

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Writes a fresh scratch path "<tmp>/<name>-<pid>.db" into |out|, removing
 * any leftover database files with that name. */
static inline const char *test_db_path(char *out, size_t outlen, const char *name)
{
    const char *dir = getenv("NANA_TEST_TMP");
    if (!dir || !dir[0]) dir = "/tmp";
    mkdir(dir, 0755);
    snprintf(out, outlen, "%s/%s-%d.db", dir, name, (int)getpid());
    char p[1024];
    unlink(out);
    snprintf(p, sizeof(p), "%s-wal", out);
    unlink(p);
    snprintf(p, sizeof(p), "%s-shm", out);
    unlink(p);
    return out;
}

/* Removes a database file and its -wal/-shm companions. */
static inline void test_db_remove(const char *path)
{
    char p[1024];
    unlink(path);
    snprintf(p, sizeof(p), "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof(p), "%s-shm", path);
    unlink(p);
}

/* Lower-case hex of |n| bytes into a static buffer (frame comparisons). */
static inline const char *test_hex(const void *p, size_t n)
{
    static char out[8192];
    const unsigned char *b = (const unsigned char *)p;
    size_t i = 0;
    for (; i < n && i < sizeof(out) / 2 - 1; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
    out[2 * i] = 0;
    return out;
}

/* Bytes from hex text; returns how many. */
static inline size_t test_unhex(const char *h, unsigned char *out)
{
    size_t n = 0;
    for (; h[0] && h[1]; h += 2) {
        unsigned v;
        if (sscanf(h, "%2x", &v) != 1) break;
        out[n++] = (unsigned char)v;
    }
    return n;
}

/* "<dir>/<name>", in one of four rotating buffers (several may be in use
 * in one expression). */
static inline const char *test_path(const char *dir, const char *name)
{
    static char bufs[4][512];
    static int k;
    char *b = bufs[k++ % 4];
    snprintf(b, sizeof(bufs[0]), "%s/%s", dir, name);
    return b;
}

/* An IPv4 or IPv6 socket address (port 4433) for address-based tests. */
static inline struct sockaddr_storage test_addr(int family, const char *ip)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    int ok;
    if (family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        in->sin_family = AF_INET;
        in->sin_port = htons(4433);
        ok = inet_pton(AF_INET, ip, &in->sin_addr);
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(4433);
        ok = inet_pton(AF_INET6, ip, &in6->sin6_addr);
    }
    if (ok != 1) abort(); /* a typo in a test's address */
    return ss;
}

#endif
