/*
 * nana_admit.h - who may hold a server connection: the connection counts a
 * server endpoint keeps for every transport (QUIC, TCP), under one lock its
 * I/O threads share. This header is the module's whole public face.
 *
 * Three limits: all connections (max_total), those from one client address
 * (max_per_addr: an IPv4 address, or the /64 of an IPv6 one) and those the
 * layer above has not trusted yet (max_untrusted). A newcomer that would
 * pass a limit evicts an untrusted connection in its way (the caller closes
 * it); only when every connection in the way is trusted is it refused. The
 * rules and the reasons for them are at the top of admit.c.
 *
 * Connections are named by a caller's 64-bit handle, which admission only
 * hands back (as a victim to close).
 */
#ifndef NANA_ADMIT_H
#define NANA_ADMIT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Why a newcomer is refused (nana_admit_enter). */
enum {
    NANA_ADMIT_REFUSE_FULL = 1, /* max_total reached by trusted connections, or no memory */
    NANA_ADMIT_REFUSE_ADDR = 2, /* max_per_addr reached by trusted connections */
};

typedef struct nana_admit_addr nana_admit_addr;

/* One connection's place in the counts (owned by the connection). */
typedef struct nana_admit_ent {
    nana_admit_addr *addr;
    uint64_t handle;
    uint64_t seq;  /* admission order: lower is older */
    bool counted;  /* holds a place (false once evicted or gone) */
    bool listed;   /* in the untrusted lists */
    bool engaged;  /* its client spoke the protocol (nana_admit_engage) */
    unsigned aidx; /* its index in its address's untrusted list */
    unsigned gidx; /* its index in the endpoint's untrusted list */
} nana_admit_ent;

/* Untrusted entries in no order, those not engaged first: v[0, nfresh)
 * are not engaged, v[nfresh, n) are. */
typedef struct nana_admit_list {
    nana_admit_ent **v;
    unsigned n, nfresh, cap;
} nana_admit_list;

/* Connections from one address prefix. */
struct nana_admit_addr {
    uint8_t key[9];    /* family byte + 4 (IPv4) or 8 (IPv6 /64) bytes, zero-padded */
    unsigned count;    /* counted connections */
    unsigned refs;     /* entries pointing here, counted or evicted */
    nana_admit_list u; /* its untrusted connections */
    struct nana_admit_addr *hnext;
};

/* The counts of one endpoint (embedded in it). */
typedef struct nana_admit {
    pthread_mutex_t mu;
    unsigned max_total, max_per_addr, max_untrusted;
    unsigned total, untrusted;
    uint64_t evicted, refused;
    uint64_t seq;      /* admissions so far */
    uint64_t rng;      /* for picking whom to evict */
    nana_admit_list g; /* every untrusted connection */
    nana_admit_addr **buckets;
    size_t nbuckets, naddrs;
    uint8_t hash_key[16];
} nana_admit;

/* What admitting a client needs done: untrusted connections to close. */
typedef struct nana_admit_result {
    uint64_t victims[3];
    unsigned nvictims;
} nana_admit_result;

/* Prepares |a| with its limits. NANA_ERR_NOMEM (then nana_admit_free). */
int nana_admit_init(nana_admit *a, unsigned max_total, unsigned max_per_addr,
                    unsigned max_untrusted);
/* Frees what |a| holds (every entry must have left). Safe after a failed init. */
void nana_admit_free(nana_admit *a);
/*
 * Gives a new connection from |addr| (to be handle |h|) a place: 0 with *out
 * its entry (untrusted; the caller owns it until nana_admit_leave) and in
 * |r| the connections evicted to make room, which the caller closes; or a
 * NANA_ADMIT_REFUSE_* reason.
 */
int nana_admit_enter(nana_admit *a, const struct sockaddr *addr, uint64_t h, nana_admit_ent **out,
                     nana_admit_result *r);
/* Marks |e| trusted: never evicted. False if it was evicted already. */
bool nana_admit_trust(nana_admit *a, nana_admit_ent *e);
/* Marks untrusted |e| engaged: evicted only when no entry in the way is
 * not. No effect on a trusted or evicted entry. */
void nana_admit_engage(nana_admit *a, nana_admit_ent *e);
/* Gives up |e|'s place and frees it. NULL-safe. */
void nana_admit_leave(nana_admit *a, nana_admit_ent *e);
/* Current counts (for statistics and tests). */
void nana_admit_counts(nana_admit *a, unsigned *total, unsigned *untrusted, uint64_t *evicted,
                       uint64_t *refused);

#endif
