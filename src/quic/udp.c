/*
 * udp.c - the UDP socket of a shard: opening it with the options the fast
 * path wants, and reading datagrams in batches.
 *
 * Options the socket cannot do its job without are errors: SO_REUSEPORT
 * when several threads share a port, IPV6_V6ONLY off when "::" must take
 * IPv4 too, and on a server the packet-info controls that say which local
 * address a datagram was sent to (replies must leave from it). Options that
 * only make it faster (UDP GRO, larger kernel buffers) are logged when
 * refused, and the socket works without them.
 *
 * A read is one recvmmsg of up to NANA_Q_RX_BATCH messages; with UDP GRO a
 * message can hold many datagrams of one sender, split here by the segment
 * size the kernel reports. System calls go through nana_loop_sys_calls so
 * tests can make them fail.
 */
#include "quic/io_int.h"

#include "util/nana_log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/udp.h>
#include <string.h>
#include <unistd.h>

#ifndef UDP_GRO
#define UDP_GRO 104
#endif

int nana_quic_udp_addr(const char *host, uint16_t port, ngtcp2_sockaddr_union *a, socklen_t *len)
{
    memset(a, 0, sizeof(*a));
    if (inet_pton(AF_INET, host, &a->in.sin_addr) == 1) {
        a->in.sin_family = AF_INET;
        a->in.sin_port = htons(port);
        *len = sizeof(a->in);
        return NANA_OK;
    }
    if (inet_pton(AF_INET6, host, &a->in6.sin6_addr) == 1) {
        a->in6.sin6_family = AF_INET6;
        a->in6.sin6_port = htons(port);
        *len = sizeof(a->in6);
        return NANA_OK;
    }
    return nana_err_set(NANA_ERR_INVALID, "'%.64s' is not a numeric IPv4 or IPv6 address", host);
}

/* Sets an int socket option; on failure records "setsockopt NAME: why". */
static int set_int(int fd, int level, int name, int val, const char *what)
{
    if (nana_loop_sys_calls.setsockopt(fd, level, name, &val, sizeof(val)) == 0) return NANA_OK;
    return nana_err_set(NANA_ERR_IO, "setsockopt %s: %s", what, strerror(errno));
}

/* Asks for |bytes| of kernel buffer (|force|: past the system's limit,
 * which needs CAP_NET_ADMIN; else the plain option). Logs a refusal. */
static void set_buffer(int fd, int force, int plain, const char *what)
{
    int bytes = 4 * 1024 * 1024;
    if (nana_loop_sys_calls.setsockopt(fd, SOL_SOCKET, force, &bytes, sizeof(bytes)) == 0) return;
    if (set_int(fd, SOL_SOCKET, plain, bytes, what) != 0)
        nana_log(NANA_LOG_WARN, "UDP socket keeps the default buffer size: %s", nana_errmsg());
}

/* The options of a new socket (see the top of the file). */
static int set_options(int fd, int family, bool reuseport, bool server)
{
    int rc;
    if (reuseport && (rc = set_int(fd, SOL_SOCKET, SO_REUSEPORT, 1, "SO_REUSEPORT"))) return rc;
    if (family == AF_INET6 && (rc = set_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, 0, "IPV6_V6ONLY")))
        return rc;
    if (server) {
        rc = family == AF_INET6 ? set_int(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1, "IPV6_RECVPKTINFO")
                                : set_int(fd, IPPROTO_IP, IP_PKTINFO, 1, "IP_PKTINFO");
        if (rc) return rc;
    }
    if (set_int(fd, SOL_UDP, UDP_GRO, 1, "UDP_GRO") != 0)
        nana_log(NANA_LOG_WARN, "UDP socket reads one datagram per message: %s", nana_errmsg());
    set_buffer(fd, SO_RCVBUFFORCE, SO_RCVBUF, "SO_RCVBUF");
    set_buffer(fd, SO_SNDBUFFORCE, SO_SNDBUF, "SO_SNDBUF");
    return NANA_OK;
}

int nana_quic_udp_open(const ngtcp2_sockaddr_union *addr, socklen_t alen, bool reuseport,
                       bool server, int *out)
{
    *out = -1;
    int fd = nana_loop_sys_calls.socket(addr->sa.sa_family,
                                        SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return nana_err_set(NANA_ERR_IO, "socket: %s", strerror(errno));
    int rc = set_options(fd, addr->sa.sa_family, reuseport, server);
    if (rc) {
        close(fd);
        return rc;
    }
    if (nana_loop_sys_calls.bind(fd, &addr->sa, alen) != 0) {
        int e = errno;
        close(fd);
        char host[INET6_ADDRSTRLEN] = "?";
        bool v6 = addr->sa.sa_family == AF_INET6;
        inet_ntop(addr->sa.sa_family,
                  v6 ? (const void *)&addr->in6.sin6_addr : (const void *)&addr->in.sin_addr, host,
                  sizeof(host));
        return nana_err_set(NANA_ERR_IO, "cannot bind %s port %u: %s", host,
                            (unsigned)ntohs(v6 ? addr->in6.sin6_port : addr->in.sin_port),
                            strerror(e));
    }
    *out = fd;
    return NANA_OK;
}

int nana_quic_udp_read(nana_quic_io *io, uint64_t ts)
{
    nana_quic_shard *sh = io->sh;
    for (int i = 0; i < NANA_Q_RX_BATCH; i++) {
        io->iov[i].iov_base = io->bufs + (size_t)i * NANA_Q_RX_BUF;
        io->iov[i].iov_len = NANA_Q_RX_BUF;
        struct msghdr *m = &io->msgs[i].msg_hdr;
        m->msg_name = &io->from[i];
        m->msg_namelen = sizeof(io->from[i]);
        m->msg_iov = &io->iov[i];
        m->msg_iovlen = 1;
        m->msg_control = io->ctl[i];
        m->msg_controllen = NANA_Q_RX_CMSG;
        m->msg_flags = 0;
    }
    int n = nana_loop_sys_calls.recvmmsg(io->fd, io->msgs, NANA_Q_RX_BATCH, MSG_DONTWAIT, NULL);
    if (n < 0) {
        /* What the socket holds stays there: the next round reads it. */
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            nana_log(NANA_LOG_WARN, "UDP receive failed: %s", strerror(errno));
        return 0;
    }
    bool is_server = sh->ep->cfg.server != 0;
    bool early = !is_server;
    for (int i = 0; i < n; i++) {
        struct msghdr *m = &io->msgs[i].msg_hdr;
        size_t len = io->msgs[i].msg_len;
        size_t seg = len;
        ngtcp2_sockaddr_union local = sh->local;
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(m); cm; cm = CMSG_NXTHDR(m, cm)) {
            if (cm->cmsg_level == SOL_UDP && cm->cmsg_type == UDP_GRO) {
                int g;
                memcpy(&g, CMSG_DATA(cm), sizeof(g));
                if (g > 0) seg = (size_t)g;
            } else if (!is_server) {
                continue; /* a client's paths use its socket's own address */
            } else if (cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_PKTINFO) {
                struct in_pktinfo pi;
                memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
                local.in.sin_addr = pi.ipi_addr;
            } else if (cm->cmsg_level == IPPROTO_IPV6 && cm->cmsg_type == IPV6_PKTINFO) {
                struct in6_pktinfo pi;
                memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
                local.in6.sin6_addr = pi.ipi6_addr;
            }
        }
        ngtcp2_path path = {
            .local = {.addr = &local.sa, .addrlen = sh->local_len},
            .remote = {.addr = &io->from[i].sa, .addrlen = m->msg_namelen},
        };
        const uint8_t *p = io->iov[i].iov_base;
        for (size_t off = 0; off < len; off += seg) {
            nana_quic_shard_recv(sh, &path, p + off, len - off < seg ? len - off : seg, 0, ts);
            /* A client with requests worth a couple of packets waiting
             * sends them now rather than after the whole batch: the server
             * then works on the first requests while this thread turns the
             * rest of a burst of replies (one GRO'd read) into new ones,
             * instead of the two sides taking turns (one connection, 256
             * calls in flight: ~340K -> ~600K calls/s). A server does not:
             * its many connections keep the clients busy, and sending
             * early there cost more system calls than it won (16 x 64:
             * ~670K without, ~460K with). */
            if (early && sh->unflushed >= NANA_Q_EARLY_FLUSH) nana_quic_shard_flush(sh, ts);
        }
    }
    return n;
}
