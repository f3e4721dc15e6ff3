/*
 * dqlite_test.h - what the tests that run real dqlite nodes share: a free
 * loopback address for a node, and removing a node's scratch directory.
 * Included by one test file each, after <cmocka.h>.
 */
#ifndef NANA_DQLITE_TEST_H
#define NANA_DQLITE_TEST_H

#include <arpa/inet.h>
#include <ftw.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* A loopback address on a port free a moment ago ("127.0.0.1:PORT"). */
static inline void free_address(char *out, size_t outlen)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    socklen_t l = sizeof(sa);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &l), 0);
    snprintf(out, outlen, "127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
    close(fd);
}

/* nftw's callback for remove_tree. */
static inline int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* Removes |dir| and everything below it. */
static inline void remove_tree(const char *dir)
{
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
