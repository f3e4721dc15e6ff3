/*
 * endpoint.c - the shard: the sans-I/O heart of an endpoint.
 *
 * nana_quic_shard_recv takes one datagram with its path and a timestamp
 * and decides its fate: a known connection ID goes to its connection; an
 * unsupported version gets Version Negotiation; a new client's Initial is
 * accepted, answered with a Retry (address validation), or refused with
 * CONNECTION_REFUSED when the endpoint is full; a short-header packet for
 * another thread's connection is forwarded there; anything else unknown
 * gets a Stateless Reset (rate-limited, always smaller than what came in,
 * so it can never amplify) or is dropped. nana_quic_shard_flush then runs
 * due timers, writes every connection touched this round and frees the
 * dead ones. No socket, no clock: both are the caller's (io.c), which
 * is what lets tests drive a shard with fake datagrams and fake time.
 */
#include "quic/quic_int.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define RETRY_TOKEN_TIMEOUT   (10 * NANA_Q_NS)
#define REGULAR_TOKEN_TIMEOUT (3600 * NANA_Q_NS)
#define MAX_RESETS_PER_SEC    1000
#define MIN_RESET_LEN         41 /* 1 + 24 random + 16 token: looks like a short-header packet */

/* ------------------------------------------------------------------ */
/* Shard setup                                                          */
/* ------------------------------------------------------------------ */

int nana_quic_shard_init(nana_quic_shard *sh, nana_quic_ep *ep, unsigned index)
{
    memset(sh, 0, sizeof(*sh));
    sh->ep = ep;
    sh->index = index;
    randombytes_buf(sh->rng_key, sizeof(sh->rng_key));
    int rc = nana_quic_cidmap_init(&sh->cids);
    if (!rc) rc = nana_quic_cidmap_init(&sh->resets);
    if (rc) return rc;
    sh->nhandles = 1024;
    sh->handles = calloc(sh->nhandles, sizeof(*sh->handles));
    nana_quic_objs_init(&sh->objs);
    sh->txbuf = malloc((size_t)NANA_Q_TX_BURST * NANA_Q_MAX_UDP);
    if (!sh->handles || !sh->txbuf) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    return NANA_OK;
}

void nana_quic_shard_free(nana_quic_shard *sh)
{
    while (sh->conns)
        nana_quic_conn_free(sh->conns);
    nana_quic_cidmap_free(&sh->cids);
    nana_quic_cidmap_free(&sh->resets);
    free(sh->handles);
    free(sh->heap);
    free(sh->txbuf);
    free(sh->pending);
    nana_quic_objs_free(&sh->objs);
}

nana_quic_handle nana_quic_shard_new_handle(nana_quic_shard *sh)
{
    uint64_t serial = atomic_fetch_add(&sh->next_serial, 1) + 1;
    return (serial << 8) | sh->index;
}

void nana_quic_shard_rand(nana_quic_shard *sh, uint8_t *buf, size_t len)
{
    /* ChaCha20 keystream under a per-shard random key, a fresh nonce per
     * call: a CSPRNG that costs no system call (libsodium 1.0.18's
     * randombytes_buf asks the kernel every time). */
    uint8_t nonce[crypto_stream_chacha20_NONCEBYTES];
    uint64_t ctr = ++sh->rng_ctr;
    memcpy(nonce, &ctr, sizeof(nonce) < sizeof(ctr) ? sizeof(nonce) : sizeof(ctr));
    crypto_stream_chacha20(buf, len, nonce, sh->rng_key);
}

void nana_quic_shard_new_cid(nana_quic_shard *sh, ngtcp2_cid *cid)
{
    cid->datalen = NANA_Q_CIDLEN;
    cid->data[0] = (uint8_t)sh->index;
    nana_quic_shard_rand(sh, cid->data + 1, NANA_Q_CIDLEN - 1);
}

/* ------------------------------------------------------------------ */
/* Connection bookkeeping: list, handles, dirty and dead lists          */
/* ------------------------------------------------------------------ */

static size_t handle_slot(const nana_quic_shard *sh, nana_quic_handle h)
{
    return (size_t)((h >> 8) * 0x9e3779b97f4a7c15ull >> 20) & (sh->nhandles - 1);
}

/* Doubles the handle table when it is fuller than one per slot. */
static void grow_handles(nana_quic_shard *sh, size_t count)
{
    if (count < sh->nhandles) return;
    size_t n = sh->nhandles * 2;
    nana_quic_conn **t = calloc(n, sizeof(*t));
    if (!t) return;
    size_t old = sh->nhandles;
    nana_quic_conn **ot = sh->handles;
    sh->handles = t;
    sh->nhandles = n;
    for (size_t i = 0; i < old; i++) {
        nana_quic_conn *c = ot[i];
        while (c) {
            nana_quic_conn *next = c->hnext;
            size_t j = handle_slot(sh, c->handle);
            c->hnext = t[j];
            t[j] = c;
            c = next;
        }
    }
    free(ot);
}

void nana_quic_shard_link(nana_quic_shard *sh, nana_quic_conn *c)
{
    c->next = sh->conns;
    c->prev = NULL;
    if (sh->conns) sh->conns->prev = c;
    sh->conns = c;
    sh->st.conns_open++;
    grow_handles(sh, (size_t)sh->st.conns_open);
    size_t j = handle_slot(sh, c->handle);
    c->hnext = sh->handles[j];
    sh->handles[j] = c;
}

void nana_quic_shard_unlink(nana_quic_shard *sh, nana_quic_conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else if (sh->conns == c)
        sh->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    c->next = c->prev = NULL;
    nana_quic_conn **p = &sh->handles[handle_slot(sh, c->handle)];
    while (*p && *p != c)
        p = &(*p)->hnext;
    if (*p) *p = c->hnext;
    if (sh->st.conns_open) sh->st.conns_open--;
    /* Drop it from the dirty list too. */
    if (c->in_dirty) {
        nana_quic_conn **d = &sh->dirty;
        while (*d && *d != c)
            d = &(*d)->dirty_next;
        if (*d) *d = c->dirty_next;
        c->in_dirty = false;
    }
}

nana_quic_conn *nana_quic_shard_by_handle(nana_quic_shard *sh, nana_quic_handle h)
{
    for (nana_quic_conn *c = sh->handles[handle_slot(sh, h)]; c; c = c->hnext)
        if (c->handle == h) return c;
    return NULL;
}

void nana_quic_shard_dirty(nana_quic_shard *sh, nana_quic_conn *c)
{
    if (c->in_dirty || c->dead) return;
    c->in_dirty = true;
    c->dirty_next = sh->dirty;
    sh->dirty = c;
}

void nana_quic_shard_dead(nana_quic_shard *sh, nana_quic_conn *c)
{
    c->dead_next = sh->dead;
    sh->dead = c;
    nana_quic_heap_remove(sh, c);
}

/* ------------------------------------------------------------------ */
/* Timer heap (min-heap on conn->expiry)                                */
/* ------------------------------------------------------------------ */

static void heap_swap(nana_quic_shard *sh, size_t a, size_t b)
{
    nana_quic_heap_ent t = sh->heap[a];
    sh->heap[a] = sh->heap[b];
    sh->heap[b] = t;
    sh->heap[a].c->heap_idx = a;
    sh->heap[b].c->heap_idx = b;
}

static void sift_up(nana_quic_shard *sh, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (sh->heap[p].expiry <= sh->heap[i].expiry) break;
        heap_swap(sh, p, i);
        i = p;
    }
}

static void sift_down(nana_quic_shard *sh, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < sh->heap_len && sh->heap[l].expiry < sh->heap[m].expiry) m = l;
        if (r < sh->heap_len && sh->heap[r].expiry < sh->heap[m].expiry) m = r;
        if (m == i) break;
        heap_swap(sh, m, i);
        i = m;
    }
}

void nana_quic_heap_remove(nana_quic_shard *sh, nana_quic_conn *c)
{
    size_t i = c->heap_idx;
    if (i == SIZE_MAX || i >= sh->heap_len || sh->heap[i].c != c) return;
    sh->heap_len--;
    if (i != sh->heap_len) {
        sh->heap[i] = sh->heap[sh->heap_len];
        sh->heap[i].c->heap_idx = i;
        sift_down(sh, i);
        sift_up(sh, i);
    }
    c->heap_idx = SIZE_MAX;
}

void nana_quic_heap_update(nana_quic_shard *sh, nana_quic_conn *c)
{
    if (c->dead || c->expiry == UINT64_MAX) {
        nana_quic_heap_remove(sh, c);
        return;
    }
    if (c->heap_idx == SIZE_MAX) {
        if (sh->heap_len == sh->heap_cap) {
            size_t cap = sh->heap_cap ? sh->heap_cap * 2 : 64;
            nana_quic_heap_ent *h = realloc(sh->heap, cap * sizeof(*h));
            if (!h) return; /* the connection still works; its timer is late */
            sh->heap = h;
            sh->heap_cap = cap;
        }
        c->heap_idx = sh->heap_len;
        sh->heap[sh->heap_len++] = (nana_quic_heap_ent){c->expiry, c};
        sift_up(sh, c->heap_idx);
        return;
    }
    nana_quic_heap_ent *e = &sh->heap[c->heap_idx];
    if (e->expiry == c->expiry) return; /* unchanged: nothing moves */
    bool earlier = c->expiry < e->expiry;
    e->expiry = c->expiry;
    if (earlier)
        sift_up(sh, c->heap_idx);
    else
        sift_down(sh, c->heap_idx);
}

uint64_t nana_quic_shard_next_timeout(nana_quic_shard *sh, uint64_t ts)
{
    if (sh->dirty || sh->dead || sh->npending) return 0;
    if (!sh->heap_len) return UINT64_MAX;
    uint64_t e = sh->heap[0].expiry;
    return e <= ts ? 0 : e - ts;
}

/* ------------------------------------------------------------------ */
/* Answers without a connection                                         */
/* ------------------------------------------------------------------ */

/* Sends one datagram built in the scratch buffer. */
static void reply(nana_quic_shard *sh, const ngtcp2_path *path, const uint8_t *p, size_t n)
{
    sh->tx->send(sh->tx, path, p, n, n);
}

static void send_version_negotiation(nana_quic_shard *sh, const ngtcp2_path *path,
                                     const ngtcp2_version_cid *vc)
{
    uint32_t versions[2] = {NGTCP2_PROTO_VER_V1, 0};
    /* A reserved version too, so clients keep version negotiation honest. */
    uint8_t r[2];
    nana_quic_shard_rand(sh, r, sizeof(r));
    versions[1] = 0x1a2a3a4au | ((uint32_t)(r[0] & 0x0f) << 4);
    uint8_t unused = r[1];
    ngtcp2_ssize n =
        ngtcp2_pkt_write_version_negotiation(sh->txbuf, NANA_Q_MAX_UDP, unused, vc->scid,
                                             vc->scidlen, vc->dcid, vc->dcidlen, versions, 2);
    if (n > 0) {
        reply(sh, path, sh->txbuf, (size_t)n);
        sh->st.vn_sent++;
    }
}

static void send_retry(nana_quic_shard *sh, const ngtcp2_path *path, const ngtcp2_pkt_hd *hd,
                       uint64_t ts)
{
    ngtcp2_cid scid;
    nana_quic_shard_new_cid(sh, &scid);
    uint8_t token[NGTCP2_CRYPTO_MAX_RETRY_TOKENLEN];
    ngtcp2_ssize tl = ngtcp2_crypto_generate_retry_token(
        token, sh->ep->secret, NANA_Q_SECRETLEN, hd->version, path->remote.addr,
        path->remote.addrlen, &scid, &hd->dcid, ts);
    if (tl < 0) return;
    ngtcp2_ssize n = ngtcp2_crypto_write_retry(sh->txbuf, NANA_Q_MAX_UDP, hd->version, &hd->scid,
                                               &scid, &hd->dcid, token, (size_t)tl);
    if (n > 0) {
        reply(sh, path, sh->txbuf, (size_t)n);
        sh->st.retries_sent++;
    }
}

const char *nana_quic_refuse_reason(int why)
{
    switch (why) {
    case NANA_QUIC_REFUSE_FULL:
        return "server full";
    case NANA_QUIC_REFUSE_STOPPING:
        return "shutting down";
    case NANA_QUIC_REFUSE_BANNED:
        return "banned";
    case NANA_QUIC_REFUSE_ADDR:
        return "too many connections from this address";
    case NANA_QUIC_REFUSE_STARTING:
        return "starting";
    default:
        return "refused";
    }
}

/* Closes a would-be connection in its Initial packet, keeping no state;
 * |reason| (may be NULL) is the phrase the client reads. */
static void send_refusal(nana_quic_shard *sh, const ngtcp2_path *path, const ngtcp2_pkt_hd *hd,
                         uint64_t code, const char *reason)
{
    ngtcp2_ssize n = ngtcp2_crypto_write_connection_close(
        sh->txbuf, NANA_Q_MAX_UDP, hd->version, &hd->scid, &hd->dcid, code, (const uint8_t *)reason,
        reason ? strlen(reason) : 0);
    if (n > 0) reply(sh, path, sh->txbuf, (size_t)n);
}

/* Refuses a new client with CONNECTION_REFUSED for NANA_QUIC_REFUSE_* |why|. */
static void refuse(nana_quic_shard *sh, const ngtcp2_path *path, const ngtcp2_pkt_hd *hd, int why)
{
    send_refusal(sh, path, hd, NGTCP2_CONNECTION_REFUSED, nana_quic_refuse_reason(why));
    sh->st.conns_refused++;
}

/* The reason phrase of a connection closed to make room for a new client. */
static const char evicted_reason[] = "closed to make room: too many connections not logged in";

/* On the victim's I/O thread: closes a connection evicted by another thread. */
static void evict_posted(nana_quic_conn *c, void *arg)
{
    (void)arg;
    if (c) nana_quic_conn_close_transport(c, NGTCP2_CONNECTION_REFUSED, evicted_reason);
}

/* Closes the untrusted connections admission chose to make room. */
static void evict_victims(nana_quic_shard *sh, const nana_admit_result *r)
{
    for (unsigned i = 0; i < r->nvictims; i++) {
        nana_quic_handle h = r->victims[i];
        sh->st.conns_evicted++;
        if ((h & 0xff) == sh->index) {
            nana_quic_conn *c = nana_quic_shard_by_handle(sh, h);
            if (c) nana_quic_conn_close_transport(c, NGTCP2_CONNECTION_REFUSED, evicted_reason);
        } else {
            (void)nana_quic_post(sh->ep, h, evict_posted, NULL); /* gone or stopping: fine */
        }
    }
}

static void send_stateless_reset(nana_quic_shard *sh, const ngtcp2_path *path,
                                 const ngtcp2_version_cid *vc, size_t pktlen, uint64_t ts)
{
    if (pktlen <= MIN_RESET_LEN || vc->dcidlen != NANA_Q_CIDLEN) return;
    if (ts - sh->resets_window >= NANA_Q_NS) {
        sh->resets_window = ts;
        sh->resets_in_window = 0;
    }
    if (sh->resets_in_window++ >= MAX_RESETS_PER_SEC) return;
    ngtcp2_cid cid;
    ngtcp2_cid_init(&cid, vc->dcid, vc->dcidlen);
    uint8_t token[NGTCP2_STATELESS_RESET_TOKENLEN];
    if (ngtcp2_crypto_generate_stateless_reset_token(token, sh->ep->secret, NANA_Q_SECRETLEN,
                                                     &cid) != 0)
        return;
    size_t total = pktlen - 1; /* always smaller than what arrived: no reset loops */
    if (total > NANA_Q_MAX_UDP) total = NANA_Q_MAX_UDP;
    uint8_t rnd[NANA_Q_MAX_UDP];
    size_t rndlen = total - 1 - NGTCP2_STATELESS_RESET_TOKENLEN;
    nana_quic_shard_rand(sh, rnd, rndlen);
    ngtcp2_ssize n =
        ngtcp2_pkt_write_stateless_reset(sh->txbuf, NANA_Q_MAX_UDP, token, rnd, rndlen);
    if (n > 0) {
        reply(sh, path, sh->txbuf, (size_t)n);
        sh->st.resets_sent++;
    }
}

/* True if a new client must prove its address with a Retry first. */
static bool need_retry(nana_quic_shard *sh)
{
    switch (sh->ep->cfg.retry) {
    case NANA_QUIC_RETRY_ALWAYS:
        return true;
    case NANA_QUIC_RETRY_NEVER:
        return false;
    default:
        return sh->handshaking >= sh->ep->cfg.retry_threshold;
    }
}

/* A datagram for no known connection that looks like a client's first. */
static void accept_new(nana_quic_shard *sh, const ngtcp2_path *path, const uint8_t *pkt, size_t len,
                       uint32_t ecn, uint64_t ts)
{
    ngtcp2_pkt_hd hd;
    if (ngtcp2_accept(&hd, pkt, len) != 0) {
        sh->st.packets_dropped++;
        return;
    }
    const nana_quic_callbacks *cb = &sh->ep->cb;
    if (atomic_load(&sh->ep->closing)) {
        refuse(sh, path, &hd, NANA_QUIC_REFUSE_STOPPING);
        return;
    }
    int why = cb->accept
                  ? cb->accept(path->remote.addr, (socklen_t)path->remote.addrlen, sh->ep->cfg.user)
                  : 0;
    if (why) {
        refuse(sh, path, &hd, why);
        return;
    }
    ngtcp2_cid odcid = hd.dcid;
    const ngtcp2_cid *retry_scid = NULL;
    const uint8_t *token = NULL;
    size_t tokenlen = 0;
    bool validated = false;
    if (hd.token.len) {
        if (hd.token.base[0] == NGTCP2_CRYPTO_TOKEN_MAGIC_RETRY) {
            if (ngtcp2_crypto_verify_retry_token(&odcid, hd.token.base, hd.token.len,
                                                 sh->ep->secret, NANA_Q_SECRETLEN, hd.version,
                                                 path->remote.addr, path->remote.addrlen, &hd.dcid,
                                                 RETRY_TOKEN_TIMEOUT, ts) != 0) {
                send_refusal(sh, path, &hd, NGTCP2_INVALID_TOKEN, NULL);
                sh->st.packets_dropped++;
                return;
            }
            retry_scid = &hd.dcid;
            validated = true;
        } else if (hd.token.base[0] == NGTCP2_CRYPTO_TOKEN_MAGIC_REGULAR) {
            ngtcp2_sockaddr_union a;
            memcpy(&a, path->remote.addr, path->remote.addrlen);
            if (a.sa.sa_family == AF_INET) a.in.sin_port = 0;
            if (a.sa.sa_family == AF_INET6) a.in6.sin6_port = 0;
            validated = ngtcp2_crypto_verify_regular_token(
                            hd.token.base, hd.token.len, sh->ep->secret, NANA_Q_SECRETLEN, &a.sa,
                            path->remote.addrlen, REGULAR_TOKEN_TIMEOUT, ts) == 0;
        }
        if (validated) {
            token = hd.token.base;
            tokenlen = hd.token.len;
        }
    }
    if (!validated && need_retry(sh)) {
        send_retry(sh, path, &hd, ts);
        return;
    }
    /* A place in the counts, maybe evicting untrusted connections for it. */
    nana_quic_handle h = nana_quic_shard_new_handle(sh);
    nana_admit_ent *ent;
    nana_admit_result ar;
    why = nana_admit_enter(&sh->ep->admit, path->remote.addr, h, &ent, &ar);
    if (why) {
        refuse(sh, path, &hd,
               why == NANA_ADMIT_REFUSE_ADDR ? NANA_QUIC_REFUSE_ADDR : NANA_QUIC_REFUSE_FULL);
        return;
    }
    evict_victims(sh, &ar);
    nana_quic_conn *c;
    if (nana_quic_conn_accept(sh, path, &hd, &odcid, retry_scid, token, tokenlen, h, ts, &c)) {
        nana_admit_leave(&sh->ep->admit, ent);
        sh->st.packets_dropped++;
        return;
    }
    c->admit = ent;
    c->trust_deadline = ts + (uint64_t)sh->ep->cfg.untrusted_timeout_ms * 1000000ull;
    nana_quic_conn_read(c, path, pkt, len, ecn, ts);
    if (!c->dead) nana_quic_conn_update_timer(c);
}

/*
 * Keeps a would-be new client's datagram for the end of the round, so the
 * packets of existing connections are read first and a flood of handshakes
 * (about 230 us of CPU each) never delays them. When the queue is full a
 * random waiting datagram makes room: every newcomer has the same chance,
 * whenever it comes, and a client whose Initial is lost sends it again.
 */
static void defer_accept(nana_quic_shard *sh, const ngtcp2_path *path, const uint8_t *pkt,
                         size_t len, uint32_t ecn)
{
    if (len > NANA_Q_MAX_UDP_RX) {
        sh->st.packets_dropped++;
        return;
    }
    if (!sh->pending && !(sh->pending = malloc(NANA_Q_ACCEPT_QUEUE * sizeof(*sh->pending)))) {
        sh->st.packets_dropped++;
        return;
    }
    nana_quic_pending *p;
    if (sh->npending < NANA_Q_ACCEPT_QUEUE) {
        p = &sh->pending[(sh->pending_head + sh->npending++) % NANA_Q_ACCEPT_QUEUE];
    } else {
        uint8_t r[2];
        nana_quic_shard_rand(sh, r, sizeof(r));
        p = &sh->pending[((size_t)r[0] << 8 | r[1]) % NANA_Q_ACCEPT_QUEUE];
        sh->st.packets_dropped++;
    }
    memcpy(&p->local, path->local.addr, path->local.addrlen);
    memcpy(&p->remote, path->remote.addr, path->remote.addrlen);
    p->local_len = path->local.addrlen;
    p->remote_len = path->remote.addrlen;
    p->ecn = ecn;
    p->len = len;
    memcpy(p->data, pkt, len);
}

/*
 * Handshakes with up to NANA_Q_ACCEPTS_PER_ROUND waiting new clients. A
 * datagram that meanwhile belongs to a connection (a client's second
 * Initial, after its first made the connection) goes to it.
 */
static void run_accepts(nana_quic_shard *sh, uint64_t ts)
{
    for (int n = 0; sh->npending && n < NANA_Q_ACCEPTS_PER_ROUND; n++) {
        nana_quic_pending *p = &sh->pending[sh->pending_head];
        sh->pending_head = (sh->pending_head + 1) % NANA_Q_ACCEPT_QUEUE;
        sh->npending--;
        ngtcp2_path path = {
            .local = {.addr = &p->local.sa, .addrlen = p->local_len},
            .remote = {.addr = &p->remote.sa, .addrlen = p->remote_len},
        };
        ngtcp2_version_cid vc;
        if (ngtcp2_pkt_decode_version_cid(&vc, p->data, p->len, NANA_Q_CIDLEN) != 0) continue;
        nana_quic_conn *c = nana_quic_cidmap_get(&sh->cids, vc.dcid, vc.dcidlen);
        if (c)
            nana_quic_conn_read(c, &path, p->data, p->len, p->ecn, ts);
        else
            accept_new(sh, &path, p->data, p->len, p->ecn, ts);
    }
}

void nana_quic_shard_recv(nana_quic_shard *sh, const ngtcp2_path *path, const uint8_t *pkt,
                          size_t len, uint32_t ecn, uint64_t ts)
{
    sh->now = ts;
    sh->st.datagrams_in++;
    ngtcp2_version_cid vc;
    int rv = ngtcp2_pkt_decode_version_cid(&vc, pkt, len, NANA_Q_CIDLEN);
    if (rv == NGTCP2_ERR_VERSION_NEGOTIATION) {
        /* Only for datagrams a client's Initial could be: no amplification. */
        if (sh->ep->cfg.server && len >= 1200)
            send_version_negotiation(sh, path, &vc);
        else
            sh->st.packets_dropped++;
        return;
    }
    if (rv != 0) {
        sh->st.packets_dropped++;
        return;
    }
    nana_quic_conn *c = nana_quic_cidmap_get(&sh->cids, vc.dcid, vc.dcidlen);
    if (c) {
        nana_quic_conn_read(c, path, pkt, len, ecn, ts);
        return;
    }
    if (!sh->ep->cfg.server) {
        /* A short header for no CID of ours may be the server's stateless
         * reset: its last bytes name the connection it ends. */
        if (!(pkt[0] & 0x80) && len >= NANA_Q_MIN_RESET_RX) {
            c = nana_quic_cidmap_get(&sh->resets, pkt + len - NGTCP2_STATELESS_RESET_TOKENLEN,
                                     NGTCP2_STATELESS_RESET_TOKENLEN);
            if (c) {
                nana_quic_conn_read(c, path, pkt, len, ecn, ts);
                return;
            }
        }
        sh->st.packets_dropped++;
        return;
    }
    if (!(pkt[0] & 0x80)) {
        /* Short header: a connection of another thread (after the client's
         * address changed), or one we do not know. */
        if (vc.dcidlen == NANA_Q_CIDLEN && vc.dcid[0] != sh->index &&
            vc.dcid[0] < sh->ep->nshards) {
            nana_quic_io_forward(&sh->ep->shards[vc.dcid[0]], path, pkt, len);
            return;
        }
        send_stateless_reset(sh, path, &vc, len, ts);
        return;
    }
    defer_accept(sh, path, pkt, len, ecn);
}

void nana_quic_shard_flush(nana_quic_shard *sh, uint64_t ts)
{
    sh->now = ts;
    sh->unflushed = 0;
    if (sh->npending) run_accepts(sh, ts);
    /* Due timers: take each off the heap first, so a timer that ngtcp2
     * leaves unchanged until the next write cannot spin here. */
    while (sh->heap_len && sh->heap[0].expiry <= ts) {
        nana_quic_conn *c = sh->heap[0].c;
        nana_quic_heap_remove(sh, c);
        nana_quic_conn_expire(c, ts);
        if (!c->dead && (c->state == CONN_CLOSING || c->state == CONN_DRAINING))
            nana_quic_heap_update(sh, c);
        else if (!c->dead)
            nana_quic_shard_dirty(sh, c);
    }
    while (sh->dirty) {
        nana_quic_conn *c = sh->dirty;
        sh->dirty = c->dirty_next;
        c->in_dirty = false;
        nana_quic_conn_write(c, ts);
    }
    if (sh->tx && sh->tx->flush) sh->tx->flush(sh->tx);
    while (sh->dead) {
        nana_quic_conn *c = sh->dead;
        sh->dead = c->dead_next;
        nana_quic_conn_free(c);
    }
}

void nana_quic_shard_close_all(nana_quic_shard *sh, uint64_t ts)
{
    for (nana_quic_conn *c = sh->conns; c; c = c->next) {
        if (c->state == CONN_CLOSING || c->state == CONN_DRAINING || c->dead) continue;
        nana_q_ccerr e;
        nana_q_ccerr_set_application(&e, 0, NULL, 0);
        nana_quic_conn_start_close(c, &e, ts);
    }
}

void nana_quic_shard_rebound(nana_quic_shard *sh, uint64_t ts)
{
    sh->now = ts;
    for (nana_quic_conn *c = sh->conns; c; c = c->next) {
        if (c->dead || c->state == CONN_CLOSING || c->state == CONN_DRAINING) continue;
        memcpy(&c->local_store, &sh->local, sh->local_len);
        ngtcp2_path path = *ngtcp2_conn_get_path(c->q);
        path.local.addr = &c->local_store.sa;
        path.local.addrlen = sh->local_len;
        path.user_data = NULL;
        /* ngtcp2 migrates only once the handshake is confirmed and while a
         * spare connection ID is left; otherwise the connection just takes
         * the new address, which the server sees as a NAT rebinding (and
         * validates), instead of keeping an address no packet comes to. */
        if (ngtcp2_conn_initiate_immediate_migration(c->q, &path, ts) != 0)
            ngtcp2_conn_set_local_addr(c->q, &path.local);
        nana_quic_shard_dirty(sh, c);
    }
}
