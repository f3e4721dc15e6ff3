/*
 * txq.c - the send queue of one I/O thread: every datagram written in a
 * round, for every connection, leaves in as few sendmmsg calls as fit.
 *
 * A round writes each touched connection in turn; sending each one's
 * packets with its own system call made the unary load (50 clients, one
 * call each in flight) cost about 1.25 system calls per call, and on a
 * virtual machine a system call is the dearest thing on that path. So a
 * connection's packets are copied into the queue (a packet is at most
 * NANA_Q_MAX_UDP bytes; the copy is cheap next to a crossing into the
 * kernel), with the destination and control data of their message, and
 * the queue goes out when it is full or when the round ends
 * (nana_quic_txq_flush, called by the shard's flush through the tx sink).
 *
 * A run of equal-sized packets to one path is one message with a
 * UDP_SEGMENT control (GSO); a kernel that refuses GSO is remembered and
 * its messages are split into one datagram each. A datagram the kernel
 * will not take is dropped: QUIC's loss recovery sends it again.
 */
#include "quic/quic_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <string.h>
#include <sys/socket.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

/* Adds the source-address control for a wildcard-bound socket to |m|. */
static void put_pktinfo(struct msghdr *m, uint8_t *ctl, const ngtcp2_addr *local)
{
    struct cmsghdr *cm = (struct cmsghdr *)(ctl + m->msg_controllen);
    if (local->addr->sa_family == AF_INET) {
        struct in_pktinfo pi;
        memset(&pi, 0, sizeof(pi));
        pi.ipi_spec_dst = ((const struct sockaddr_in *)local->addr)->sin_addr;
        cm->cmsg_level = IPPROTO_IP;
        cm->cmsg_type = IP_PKTINFO;
        cm->cmsg_len = CMSG_LEN(sizeof(pi));
        memcpy(CMSG_DATA(cm), &pi, sizeof(pi));
        m->msg_controllen += CMSG_SPACE(sizeof(pi));
        return;
    }
    struct in6_pktinfo pi;
    memset(&pi, 0, sizeof(pi));
    pi.ipi6_addr = ((const struct sockaddr_in6 *)local->addr)->sin6_addr;
    cm->cmsg_level = IPPROTO_IPV6;
    cm->cmsg_type = IPV6_PKTINFO;
    cm->cmsg_len = CMSG_LEN(sizeof(pi));
    memcpy(CMSG_DATA(cm), &pi, sizeof(pi));
    m->msg_controllen += CMSG_SPACE(sizeof(pi));
}

/* Adds a UDP_SEGMENT control (GSO segment size) to |m|. */
static void put_segment(struct msghdr *m, uint8_t *ctl, size_t seg)
{
    struct cmsghdr *cm = (struct cmsghdr *)(ctl + m->msg_controllen);
    uint16_t s16 = (uint16_t)seg;
    cm->cmsg_level = SOL_UDP;
    cm->cmsg_type = UDP_SEGMENT;
    cm->cmsg_len = CMSG_LEN(sizeof(s16));
    memcpy(CMSG_DATA(cm), &s16, sizeof(s16));
    m->msg_controllen += CMSG_SPACE(sizeof(s16));
}

void nana_quic_txq_init(nana_quic_txq *q, int fd, bool name_source, nana_quic_stats *st)
{
    memset(q, 0, sizeof(*q));
    q->fd = fd;
    q->st = st;
    q->name_source = name_source;
    q->gso_ok = true;
}

/* Datagrams in message |i|: its bytes over its segment size. */
static size_t datagrams_of(const nana_quic_txq *q, size_t i)
{
    size_t len = q->iov[i].iov_len, seg = q->seg[i];
    return seg ? (len + seg - 1) / seg : 1;
}

/* Sends message |i| (a GSO batch the kernel refused) one datagram at a
 * time; returns the datagrams that left. */
static size_t send_split(nana_quic_txq *q, size_t i)
{
    struct mmsghdr mm[NANA_Q_TX_BURST];
    struct iovec iv[NANA_Q_TX_BURST];
    const struct msghdr *src = &q->mm[i].msg_hdr;
    const uint8_t *data = q->iov[i].iov_base;
    size_t len = q->iov[i].iov_len, seg = q->seg[i], n = 0;
    for (size_t off = 0; off < len && n < NANA_Q_TX_BURST; off += seg, n++) {
        iv[n].iov_base = (void *)(uintptr_t)(data + off);
        iv[n].iov_len = len - off < seg ? len - off : seg;
        mm[n].msg_hdr = *src;
        mm[n].msg_hdr.msg_iov = &iv[n];
        /* the segment control is the last one: leave it off */
        mm[n].msg_hdr.msg_controllen = q->ctl_base[i];
        if (!mm[n].msg_hdr.msg_controllen) mm[n].msg_hdr.msg_control = NULL;
        mm[n].msg_len = 0;
    }
    int r;
    do
        r = nana_loop_sys_calls.sendmmsg(q->fd, mm, (unsigned)n, MSG_DONTWAIT);
    while (r < 0 && errno == EINTR);
    q->st->sendmsg_calls++;
    return r > 0 ? (size_t)r : 0;
}

void nana_quic_txq_flush(nana_quic_txq *q)
{
    size_t i = 0;
    while (i < q->n) {
        int r = nana_loop_sys_calls.sendmmsg(q->fd, q->mm + i, (unsigned)(q->n - i), MSG_DONTWAIT);
        q->st->sendmsg_calls++;
        if (r > 0) {
            for (size_t k = i; k < i + (size_t)r; k++)
                q->st->datagrams_out += datagrams_of(q, k);
            i += (size_t)r;
            continue;
        }
        if (r < 0 && errno == EINTR) continue;
        /* Message i failed. */
        if (r < 0 && q->seg[i] && (errno == EIO || errno == EINVAL || errno == EOPNOTSUPP)) {
            q->gso_ok = false; /* no GSO on this kernel or device: split for good */
            size_t sent = send_split(q, i);
            q->st->datagrams_out += sent;
            q->st->datagrams_unsent += datagrams_of(q, i) - sent;
            i++;
            continue;
        }
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)) {
            /* the socket is full: drop the rest, loss recovery resends */
            for (; i < q->n; i++)
                q->st->datagrams_unsent += datagrams_of(q, i);
            break;
        }
        q->st->datagrams_unsent += datagrams_of(q, i); /* this destination refused it */
        i++;
    }
    q->n = 0;
    q->used = 0;
}

/* Queues one message: |len| bytes at |data| to |path|, as datagrams of
 * |seg| bytes when |seg| is not 0 (GSO). Flushes first if it does not fit. */
static void add_message(nana_quic_txq *q, const ngtcp2_path *path, const uint8_t *data, size_t len,
                        size_t seg)
{
    if (q->n == NANA_Q_TXQ_MSGS || q->used + len > NANA_Q_TXQ_BYTES) nana_quic_txq_flush(q);
    size_t i = q->n++;
    memcpy(q->buf + q->used, data, len);
    q->iov[i].iov_base = q->buf + q->used;
    q->iov[i].iov_len = len;
    q->used += len;
    socklen_t alen = path->remote.addrlen;
    if (alen > sizeof(q->to[i])) alen = sizeof(q->to[i]);
    memcpy(&q->to[i], path->remote.addr, alen);
    q->seg[i] = (uint16_t)seg;
    struct msghdr *m = &q->mm[i].msg_hdr;
    memset(m, 0, sizeof(*m));
    m->msg_name = &q->to[i];
    m->msg_namelen = alen;
    m->msg_iov = &q->iov[i];
    m->msg_iovlen = 1;
    m->msg_control = q->ctl[i];
    if (q->name_source) put_pktinfo(m, q->ctl[i], &path->local);
    q->ctl_base[i] = m->msg_controllen;
    if (seg) put_segment(m, q->ctl[i], seg);
    if (!m->msg_controllen) m->msg_control = NULL;
    q->mm[i].msg_len = 0;
}

void nana_quic_txq_add(nana_quic_txq *q, const ngtcp2_path *path, const uint8_t *data, size_t len,
                       size_t seg)
{
    if (!len) return;
    if (seg == 0 || seg > len) seg = len;
    size_t count = (len + seg - 1) / seg;
    /* A GSO message carries at most NANA_Q_TX_BURST datagrams and less
     * than 64 KiB (the kernel's limits for one UDP send). */
    size_t per = NANA_Q_GSO_BYTES / seg;
    if (per > NANA_Q_TX_BURST) per = NANA_Q_TX_BURST;
    if (per < 1) per = 1;
    if (count > per) {
        size_t chunk = per * seg;
        for (size_t off = 0; off < len; off += chunk)
            nana_quic_txq_add(q, path, data + off, len - off < chunk ? len - off : chunk, seg);
        return;
    }
    if (count > 1 && q->gso_ok) {
        add_message(q, path, data, len, seg);
        return;
    }
    for (size_t off = 0; off < len; off += seg)
        add_message(q, path, data + off, len - off < seg ? len - off : seg, 0);
}
