/*
 * server_int.h - what the server module's files share: the server object
 * (server.c) and the door seam (doors.c). Not part of the module's public
 * face (nana_server.h).
 */
#ifndef NANA_SERVER_INT_H
#define NANA_SERVER_INT_H

#include "auth/nana_accounts.h"
#include "auth/nana_ban.h"
#include "core/nana_core.h"
#include "door_grpc/nana_gdoor.h"
#include "tcp/nana_tcp.h"
#include "door_nana/nana_door.h"
#include "quic/nana_quic.h"
#include "server/nana_server.h"

#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>

/*
 * The server as a node of a dqlite cluster (cluster.c): start runs this
 * process's node on o->cluster_bind, joins it to the cluster of
 * o->cluster_join as a voter (node 1 on an empty directory starts a new
 * cluster instead) and waits for a leader, up to o->cluster_start_ms.
 * nodes: the cluster addresses for the store ("bind,join..."), owned.
 */
typedef struct nana_server_cluster nana_server_cluster;
int nana_server_cluster_start(const nana_server_opts *o, nana_server_cluster **out);
void nana_server_cluster_stop(nana_server_cluster *c); /* NULL-safe */
const char *nana_server_cluster_nodes(const nana_server_cluster *c);

struct nana_server {
    nana_server_opts o;
    nana_server_cluster *cluster; /* NULL: not clustered */
    char db_dir[PATH_MAX];
    nana_quic_ep *ep;
    nana_core *core;
    nana_door *nana_door;  /* the NanaSQLite door */
    nana_gdoor *grpc_door; /* the gRPC door (NULL with no_grpc) */
    nana_tcp_ep *tcp_ep;   /* its TLS listener on TCP (NULL: none) */
    nana_tcp_ep *h2c_ep;   /* its plaintext listener (NULL: none) */
    int port_reserve;      /* the TCP port number held while starting (-1: none) */
    nana_ban *ban;
    nana_accounts_watch *watch; /* with an accounts file */
    nana_accounts *fixed;       /* without one: the public key's single account */
    uint8_t proof_sk[64];       /* the proof key (wiped at free), when have_proof_key */
    bool have_proof_key;
    atomic_bool ready;    /* set up: connections are accepted */
    atomic_bool draining; /* stopping: new connections are refused */
};

/* The current accounts (a new reference) and their generation. */
nana_accounts *nana_server_accounts(nana_server *s, uint64_t *gen);
uint64_t nana_server_accounts_gen(nana_server *s);

/*
 * The door seam (doors.c): the QUIC endpoint's callbacks. Each connection,
 * when it opens, gets the door its negotiated ALPN names ("nanasqlite" or
 * none: the NanaSQLite door); the transport already refused any other.
 */
extern const nana_quic_callbacks nana_doors_quic_callbacks;

/* The ALPN protocols the endpoint offers (for the QUIC configuration):
 * "nanasqlite" first, then "h3" unless |grpc| is false; sets *n. */
const char *const *nana_doors_alpn(bool grpc, size_t *n);

/*
 * The proof key (proofkey.c). find: its path (--proof-key, else proof.key
 * beside --key) and whether it must be made; no side effects. load: makes
 * it (0600, with its .pub) when |make|, reads it into |sk| and logs its
 * public key and key id. 0 or the file's error.
 */
int nana_server_proof_key_find(const nana_server_opts *o, char *path, size_t cap, bool *make);
int nana_server_proof_key_load(const char *path, bool make, uint8_t sk[64]);

/* How the NanaSQLite door reaches a QUIC connection. */
extern const nana_door_io nana_doors_quic_io;

#endif
