/*
 * io_int.h - the I/O side of a shard, shared by io.c (the shard on its
 * event loop, posts, the endpoint's threads), udp.c (the socket: options,
 * receiving) and ep.c (the public endpoint functions).
 *
 * Each shard of a running endpoint has one of these: its UDP socket, the
 * event loop (src/loop) whose thread owns the shard, the loop objects that
 * tie the shard to it (the socket as a source, the shard's next timer, the
 * tick, the flush before sleep, the goodbye at exit), and the buffers of
 * receiving and sending, allocated once.
 */
#ifndef NANA_QUIC_IO_INT_H
#define NANA_QUIC_IO_INT_H

#include "loop/nana_loop.h"
#include "quic/quic_int.h"

#define NANA_Q_RX_BATCH  32    /* datagrams (or GRO'd runs) per recvmmsg */
#define NANA_Q_RX_BUF    65536 /* one GRO'd read can hold many datagrams */
#define NANA_Q_RX_ROUNDS 8     /* recvmmsg calls per round before flushing */
#define NANA_Q_RX_CMSG   256   /* control bytes per received message */

typedef struct nana_quic_io nana_quic_io;

/* The socket as a loop source (two of them: rebinding adds the new socket
 * before it lets go of the old one). */
typedef struct nana_quic_io_sock {
    nana_loop_fd src;
    nana_quic_io *io;
} nana_quic_io_sock;

struct nana_quic_io {
    nana_quic_tx tx; /* the shard's sink: queues into txq */
    nana_quic_shard *sh;
    nana_loop *loop; /* owned: its thread owns the shard */
    int fd;          /* the UDP socket, -1 when none */
    nana_quic_io_sock sock[2];
    unsigned cur;          /* sock[cur] watches fd */
    nana_loop_timer timer; /* the shard's next timer */
    nana_loop_hook flush;  /* before sleep: timers due, writes, the send queue */
    nana_loop_hook bye;    /* at exit: close every connection, send the closes */
    /* nana_quic_ep_set_tick: fn(arg) every tick_ns between rounds */
    nana_loop_timer tick;
    uint64_t (*tick_fn)(void *arg);
    void *tick_arg;
    uint64_t tick_ns;
    atomic_size_t nposts; /* nana_quic_post items waiting (NANA_Q_MAX_POSTS) */
    /* receiving */
    struct mmsghdr msgs[NANA_Q_RX_BATCH];
    struct iovec iov[NANA_Q_RX_BATCH];
    ngtcp2_sockaddr_union from[NANA_Q_RX_BATCH];
    uint8_t *bufs; /* NANA_Q_RX_BATCH * NANA_Q_RX_BUF */
    uint8_t ctl[NANA_Q_RX_BATCH][NANA_Q_RX_CMSG];
    nana_quic_txq txq; /* the round's outgoing datagrams */
};

/* Parses a numeric IPv4 or IPv6 |host| and |port| into |a| (udp.c). */
int nana_quic_udp_addr(const char *host, uint16_t port, ngtcp2_sockaddr_union *a, socklen_t *len);

/*
 * Opens a UDP socket bound to |addr| with the options the fast path needs
 * (udp.c): |reuseport| for a server's threads sharing a port, |server| for
 * the destination address of every datagram (IP_PKTINFO). An option the
 * socket cannot work without failing is an error; one it only goes faster
 * with is logged. *out is the caller's to close. NANA_ERR_IO.
 */
int nana_quic_udp_open(const ngtcp2_sockaddr_union *addr, socklen_t alen, bool reuseport,
                       bool server, int *out);

/* Reads one batch of datagrams at time |ts| and feeds them to the shard
 * (udp.c). Returns how many messages were read (0: none, or an error,
 * which is logged). */
int nana_quic_udp_read(nana_quic_io *io, uint64_t ts);

#endif
