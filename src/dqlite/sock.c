/*
 * sock.c - TCP connections to dqlite nodes, for the client and for the
 * node's own connections to its peers: numeric addresses only ("IPv4:port",
 * "[IPv6]:port"), a non-blocking connect bounded by a timeout, TCP_NODELAY
 * (without it small requests wait for delayed ACKs, tens of milliseconds
 * each), close-on-exec. dql_sock_connect (tls.c) goes through TLS instead
 * once a process chose it (nana_dql_tls_use).
 */
#include "dqlite/dqlite_int.h"
#include "util/nana_err.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int dql_parse_address(const char *address, struct sockaddr_storage *sa, socklen_t *salen)
{
    char host[64];
    const char *port;
    size_t hl;
    if (!address) return nana_err_set(NANA_ERR_INVALID, "dqlite: no address");
    if (address[0] == '[') {
        const char *end = strchr(address, ']');
        if (!end || end[1] != ':')
            return nana_err_set(NANA_ERR_INVALID, "dqlite: address \"%.64s\" is not [IPv6]:port",
                                address);
        hl = (size_t)(end - address - 1);
        if (hl >= sizeof(host))
            return nana_err_set(NANA_ERR_INVALID, "dqlite: address \"%.64s\" is too long", address);
        memcpy(host, address + 1, hl);
        port = end + 2;
    } else {
        const char *colon = strrchr(address, ':');
        if (!colon)
            return nana_err_set(NANA_ERR_INVALID, "dqlite: address \"%.64s\" has no port", address);
        hl = (size_t)(colon - address);
        if (hl >= sizeof(host))
            return nana_err_set(NANA_ERR_INVALID, "dqlite: address \"%.64s\" is too long", address);
        memcpy(host, address, hl);
        port = colon + 1;
    }
    host[hl] = 0;
    char *end;
    errno = 0;
    long p = strtol(port, &end, 10);
    if (!port[0] || *end || errno || p < 1 || p > 65535)
        return nana_err_set(NANA_ERR_INVALID, "dqlite: address \"%.64s\" has a bad port", address);
    memset(sa, 0, sizeof(*sa));
    struct sockaddr_in *v4 = (struct sockaddr_in *)sa;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)sa;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)p);
        *salen = sizeof(*v4);
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)p);
        *salen = sizeof(*v6);
    } else {
        return nana_err_set(NANA_ERR_INVALID, "dqlite: address \"%.64s\" is not a numeric IP",
                            address);
    }
    return 0;
}

int dql_tcp_connect(const char *address, int timeout_ms, int nonblock, int *fd_out)
{
    struct sockaddr_storage sa;
    socklen_t salen = 0;
    int rc = dql_parse_address(address, &sa, &salen);
    if (rc) return rc;
    int fd = socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return nana_err_set(NANA_ERR_IO, "dqlite: socket: %s", strerror(errno));
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0) {
        rc = nana_err_set(NANA_ERR_IO, "dqlite: TCP_NODELAY: %s", strerror(errno));
        goto fail;
    }
    if (connect(fd, (struct sockaddr *)&sa, salen) != 0) {
        if (errno != EINPROGRESS) {
            rc =
                nana_err_set(NANA_ERR_IO, "dqlite: connect to %.64s: %s", address, strerror(errno));
            goto fail;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        int n;
        do {
            n = poll(&pfd, 1, timeout_ms);
        } while (n < 0 && errno == EINTR); /* a signal restarts the whole wait: bounded enough */
        if (n == 0) {
            rc = nana_err_set(NANA_ERR_TIMEOUT, "dqlite: connect to %.64s: no answer in %d ms",
                              address, timeout_ms);
            goto fail;
        }
        int err = 0;
        socklen_t el = sizeof(err);
        if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0) err = errno;
        if (err) {
            rc = nana_err_set(NANA_ERR_IO, "dqlite: connect to %.64s: %s", address, strerror(err));
            goto fail;
        }
    }
    if (!nonblock) {
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
            rc = nana_err_set(NANA_ERR_IO, "dqlite: fcntl: %s", strerror(errno));
            goto fail;
        }
    }
    *fd_out = fd;
    return 0;
fail:
    close(fd);
    return rc;
}
