/*
 * credit.c - when stream credit goes back to the peer (MAX_STREAMS).
 *
 * The peer may open as many streams of a kind as we allowed (the initial
 * limit plus every MAX_STREAMS). Returning one stream of credit per closed
 * stream costs a MAX_STREAMS frame per call and, since ngtcp2 0.12 sends
 * it at once, a datagram and its acknowledgement: 5 datagrams per call
 * where 3 do (request, reply, ACK). So closed streams are counted and
 * their credit goes back in one batch once half the window has closed, or
 * at once when the peer is close to the limit: when it could open at most
 * a quarter of the window more. A peer at the limit therefore gets credit
 * with the first stream that closes, and one that keeps long-lived streams
 * open never waits for others to close.
 */
#include "quic/quic_int.h"

void nana_quic_credit_init(nana_quic_credit *k, uint32_t window)
{
    k->granted = window;
    k->opened = 0;
    k->pending = 0;
    k->window = window;
}

void nana_quic_credit_opened(nana_quic_credit *k, int64_t sid)
{
    uint64_t n = ((uint64_t)sid >> 2) + 1; /* streams of this kind up to |sid| */
    if (n > k->opened) k->opened = n;
}

uint32_t nana_quic_credit_closed(nana_quic_credit *k)
{
    k->pending++;
    uint32_t batch = k->window / 2 ? k->window / 2 : 1;
    uint64_t left = k->granted > k->opened ? k->granted - k->opened : 0;
    if (k->pending < batch && left > k->window / 4) return 0;
    uint32_t n = k->pending;
    k->pending = 0;
    k->granted += n;
    return n;
}
