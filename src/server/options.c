/*
 * options.c - every setting of the server, once: its name, type, range,
 * default, group and one line of help (nana_server.h, nana_opt.h).
 *
 * nanasqlite-server parses its command line against these rows, prints
 * --help, docs/CONFIG.md and the example configuration file from them,
 * reads its configuration file (--config) through them, and
 * nana_server_opts_init takes its defaults from them. Each row's group is
 * its section in the configuration file ([network], [tls], [quic],
 * [storage], [auth], [doors], [grpc], [aql], [limits], [cluster], [log]); its key there is its name
 * with '_' for '-' unless the row says otherwise (the keys amaters-net's
 * design names: bind_address, keep_alive_interval_ms, cert_path,
 * key_path, ca_path, max_concurrent_streams, initial_window_size). To add
 * an option: add its field to nana_server_opts and one row here, in the
 * section it belongs to.
 */
#include "server/nana_server.h"

#include "auth/nana_proof.h"
#include "util/nana_parse.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#define AT(member) NANA_OPT_AT(nana_server_opts, member)

/* Sections of the configuration file; each is also the group the row is listed under. */
static const char S_NETWORK[] = "network";
static const char S_TLS[] = "tls";
static const char S_QUIC[] = "quic";
static const char S_STORAGE[] = "storage";
static const char S_AUTH[] = "auth";
static const char S_DOORS[] = "doors";
static const char S_GRPC[] = "grpc";
static const char S_AQL[] = "aql";
static const char S_LIMITS[] = "limits";
static const char S_LOG[] = "log";
static const char S_CLUSTER[] = "cluster";
static const char G_CONFIG[] = "configuration file";

static const char *const sync_words[] = {"normal", "full", NULL};
static const int sync_values[] = {NANA_SYNC_NORMAL, NANA_SYNC_FULL};

static const char *const check_words[] = {"quick", "full", "none", NULL};
static const int check_values[] = {NANA_CHECK_QUICK, NANA_CHECK_FULL, NANA_CHECK_NONE};

static const char *const client_cert_words[] = {"request", "require", NULL};
static const int client_cert_values[] = {NANA_CLIENT_CERTS_REQUEST, NANA_CLIENT_CERTS_REQUIRE};

static const char *const proof_words[] = {"ask", "always", "never", NULL};
static const int proof_values[] = {NANA_PROOF_ASK, NANA_PROOF_ALWAYS, NANA_PROOF_NEVER};

static const char *const level_words[] = {"error", "warn", "info", "debug", NULL};
static const int level_values[] = {NANA_LOG_ERROR, NANA_LOG_WARN, NANA_LOG_INFO, NANA_LOG_DEBUG};

/*
 * --bind ADDR:PORT (bind_address): the address and the port in one, as
 * amaters-net writes them: "0.0.0.0:4433", "localhost:4433", or an IPv6
 * address in brackets, "[::]:4433". The address is copied into the
 * options' bind_host, which host then points at. Nothing is changed when
 * the text is refused.
 */
static int parse_bind(const nana_opt *row, const char *text, void *field)
{
    (void)row;
    nana_server_opts *o =
        (nana_server_opts *)(void *)((char *)field - offsetof(nana_server_opts, bind_host));
    const char *host = text, *colon;
    size_t hlen;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (!close || close[1] != ':')
            return nana_err_set(NANA_ERR_INVALID, "\"%.64s\" is not [ADDRESS]:PORT", text);
        host = text + 1;
        hlen = (size_t)(close - host);
        colon = close + 1;
        if (!hlen || !memchr(host, ':', hlen))
            return nana_err_set(NANA_ERR_INVALID,
                                "\"%.64s\": brackets hold an IPv6 address, as [::1]:4433", text);
    } else {
        colon = strrchr(text, ':');
        if (!colon)
            return nana_err_set(NANA_ERR_INVALID, "\"%.64s\" is not ADDRESS:PORT (IPv6: [::]:4433)",
                                text);
        hlen = (size_t)(colon - text);
        if (memchr(text, ':', hlen))
            return nana_err_set(NANA_ERR_INVALID,
                                "\"%.64s\": an IPv6 address goes in brackets, as [::1]:4433", text);
        if (!hlen)
            return nana_err_set(NANA_ERR_INVALID, "\"%.64s\" has no address before the port", text);
    }
    if (hlen >= sizeof(o->bind_host))
        return nana_err_set(NANA_ERR_INVALID, "the address is longer than %zu bytes",
                            sizeof(o->bind_host) - 1);
    uint64_t port;
    if (nana_parse_u64(colon + 1, 0, 65535, &port))
        return nana_err_set(NANA_ERR_INVALID, "the port \"%.16s\" is not a number in 0..65535",
                            colon + 1);
    memcpy(o->bind_host, host, hlen);
    o->bind_host[hlen] = '\0';
    o->host = o->bind_host;
    o->port = (uint16_t)port;
    return NANA_OK;
}

/* --h2c [ADDR:]PORT: the plaintext HTTP/2 listener; a port alone is on
 * loopback. */
static int parse_h2c(const nana_opt *row, const char *text, void *field)
{
    (void)row;
    (void)field;
    nana_server_opts *o =
        (nana_server_opts *)((char *)field - offsetof(nana_server_opts, h2c_host));
    const char *colon = strrchr(text, ':');
    const char *host = "127.0.0.1", *port_text = text;
    size_t hlen = strlen(host);
    if (colon) {
        host = text;
        hlen = (size_t)(colon - text);
        port_text = colon + 1;
        if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']') {
            host++;
            hlen -= 2;
        } else if (memchr(host, ':', hlen)) {
            return nana_err_set(NANA_ERR_INVALID,
                                "\"%.64s\": an IPv6 address goes in brackets, as [::1]:8080", text);
        }
        if (!hlen)
            return nana_err_set(NANA_ERR_INVALID, "\"%.64s\" has no address before the port", text);
    }
    if (hlen >= sizeof(o->h2c_host))
        return nana_err_set(NANA_ERR_INVALID, "the address is longer than %zu bytes",
                            sizeof(o->h2c_host) - 1);
    uint64_t port;
    if (nana_parse_u64(port_text, 1, 65535, &port))
        return nana_err_set(NANA_ERR_INVALID, "the port \"%.16s\" is not a number in 1..65535",
                            port_text);
    memcpy(o->h2c_host, host, hlen);
    o->h2c_host[hlen] = '\0';
    o->h2c_port = (unsigned)port;
    return NANA_OK;
}

static const nana_opt rows[] = {
    /* the configuration file itself */
    {.name = "config",
     .kind = NANA_OPT_PATH,
     AT(config_path),
     .def_doc = "none",
     .group = G_CONFIG,
     .help = "read settings from this TOML file (a flag wins over it)"},
    /* [network] */
    {.name = "bind",
     .kind = NANA_OPT_CUSTOM,
     AT(bind_host),
     .parse = parse_bind,
     .def_doc = "--host and --port",
     .group = S_NETWORK,
     .arg = "ADDR:PORT",
     .help = "address and port in one, as 0.0.0.0:4433 or [::]:4433",
     .section = S_NETWORK,
     .key = "bind_address",
     .example = "[::]:4433"},
    {.name = "host",
     .kind = NANA_OPT_STRING,
     AT(host),
     .def = "127.0.0.1",
     .group = S_NETWORK,
     .arg = "ADDR",
     .help = "address to listen on (:: for every address)",
     .key_doc = "`[network] bind_address`, its address"},
    {.name = "port",
     .kind = NANA_OPT_UINT,
     AT(port),
     .min = 0,
     .max = 65535,
     .def = "4433",
     .group = S_NETWORK,
     .help = "UDP port; 0 picks a free one",
     .key_doc = "`[network] bind_address`, its port"},
    {.name = "max-connections",
     .kind = NANA_OPT_UINT,
     AT(max_connections),
     .min = 1,
     .max = 1000000,
     .def = "10000",
     .group = S_NETWORK,
     .help = "connections at once",
     .section = S_NETWORK},
    {.name = "max-conns-per-addr",
     .kind = NANA_OPT_UINT,
     AT(max_conns_per_addr),
     .min = 1,
     .max = 1000000,
     .def = "256",
     .group = S_NETWORK,
     .help = "connections from one address (IPv4, IPv6 /64)",
     .section = S_NETWORK},
    {.name = "idle-timeout-ms",
     .kind = NANA_OPT_UINT,
     AT(idle_timeout_ms),
     .min = 100,
     .max = 86400000,
     .def = "30000",
     .group = S_NETWORK,
     .help = "an idle connection closes after this long",
     .section = S_NETWORK},
    {.name = "keep-alive-ms",
     .kind = NANA_OPT_UINT,
     AT(keepalive_ms),
     .min = 0,
     .max = 86400000,
     .def = "0",
     .group = S_NETWORK,
     .help = "PING a connection idle this long (0: never; under --idle-timeout-ms)",
     .section = S_NETWORK,
     .key = "keep_alive_interval_ms"},
    /* [tls] */
    {.name = "cert",
     .kind = NANA_OPT_PATH,
     AT(cert_path),
     .def = "cert.pem",
     .group = S_TLS,
     .help = "TLS certificate chain (PEM)",
     .section = S_TLS,
     .key = "cert_path"},
    {.name = "key",
     .kind = NANA_OPT_PATH,
     AT(key_path),
     .def = "key.pem",
     .group = S_TLS,
     .help = "the certificate's private key (PEM)",
     .section = S_TLS,
     .key = "key_path"},
    {.name = "client-ca",
     .kind = NANA_OPT_PATH,
     AT(client_ca_path),
     .def_doc = "none: no client certificates are asked for",
     .group = S_TLS,
     .help = "CA certificates (PEM) that issue client certificates (mutual TLS)",
     .section = S_TLS,
     .key = "ca_path",
     .example = "client-ca.pem"},
    {.name = "client-certs",
     .kind = NANA_OPT_ENUM,
     AT(client_certs),
     .words = client_cert_words,
     .values = client_cert_values,
     .def_doc = "request (with --client-ca)",
     .group = S_TLS,
     .arg = "MODE",
     .help = "require: refuse clients without a certificate at the handshake",
     .section = S_TLS,
     .example = "require"},
    /* [quic] */
    {.name = "threads",
     .kind = NANA_OPT_UINT,
     AT(threads),
     .min = 1,
     .max = 64,
     .def = "1",
     .group = S_QUIC,
     .help = "QUIC I/O threads",
     .section = S_QUIC},
    {.name = "max-streams",
     .kind = NANA_OPT_UINT,
     AT(max_streams),
     .min = 1,
     .max = 65536,
     .def = "128",
     .group = S_QUIC,
     .help = "calls in flight per connection",
     .section = S_QUIC,
     .key = "max_concurrent_streams"},
    {.name = "stream-window",
     .kind = NANA_OPT_UINT,
     AT(stream_window),
     .min = 4096,
     .max = 16777216,
     .def = "1048576",
     .group = S_QUIC,
     .help = "QUIC flow-control window of a stream (at most --max-request-bytes)",
     .section = S_QUIC,
     .key = "initial_window_size"},
    /* [storage] */
    {.name = "db",
     .kind = NANA_OPT_PATH,
     AT(db_path),
     .def = "server_db.sqlite",
     .group = S_STORAGE,
     .help = "the default database",
     .section = S_STORAGE},
    {.name = "db-dir",
     .kind = NANA_OPT_PATH,
     AT(db_dir),
     .def_doc = "the accounts file's db_dir, else the default database's directory",
     .group = S_STORAGE,
     .arg = "DIR",
     .help = "where the databases that requests name live",
     .section = S_STORAGE,
     .example = "databases"},
    {.name = "synchronous",
     .kind = NANA_OPT_ENUM,
     AT(sync),
     .words = sync_words,
     .values = sync_values,
     .def = "normal",
     .group = S_STORAGE,
     .arg = "MODE",
     .help = "full: an acknowledged write survives power loss",
     .section = S_STORAGE},
    {.name = "check-at-open",
     .kind = NANA_OPT_ENUM,
     AT(open_check),
     .words = check_words,
     .values = check_values,
     .def = "quick",
     .group = S_STORAGE,
     .arg = "MODE",
     .help = "check each database file before serving it (full: every index too)",
     .section = S_STORAGE},
    {.name = "allow-corrupt",
     .kind = NANA_OPT_FLAG,
     AT(allow_corrupt),
     .group = S_STORAGE,
     .help = "serve a damaged database anyway, for recovery",
     .section = S_STORAGE},
    {.name = "workers",
     .kind = NANA_OPT_UINT,
     AT(workers),
     .min = 1,
     .max = 256,
     .def = "8",
     .group = S_STORAGE,
     .help = "store worker threads",
     .section = S_STORAGE},
    {.name = "max-dbs",
     .kind = NANA_OPT_UINT,
     AT(max_dbs),
     .min = 1,
     .max = 100000,
     .def = "64",
     .group = S_STORAGE,
     .help = "databases open at once",
     .section = S_STORAGE},
    /* [auth] */
    {.name = "accounts",
     .kind = NANA_OPT_PATH,
     AT(accounts_path),
     .def_doc = "none: the key in --public-key is the one account",
     .group = S_AUTH,
     .help = "accounts JSON, reloaded when edited",
     .section = S_AUTH,
     .example = "accounts.json"},
    {.name = "public-key",
     .kind = NANA_OPT_PATH,
     AT(public_key_path),
     .def = "nana_public.pub",
     .group = S_AUTH,
     .help = "OpenSSH ed25519 public key of the one account (no --accounts)",
     .section = S_AUTH},
    {.name = "auth-timeout-ms",
     .kind = NANA_OPT_UINT,
     AT(auth_timeout_ms),
     .min = 100,
     .max = 600000,
     .def = "5000",
     .group = S_AUTH,
     .help = "a connection must log in this soon",
     .section = S_AUTH},
    {.name = "challenge-ttl-ms",
     .kind = NANA_OPT_UINT,
     AT(challenge_ttl_ms),
     .min = 1,
     .max = 3600000,
     .def = "30000",
     .group = S_AUTH,
     .help = "an authentication challenge expires after this long",
     .section = S_AUTH},
    {.name = "max-unauthenticated",
     .kind = NANA_OPT_UINT,
     AT(max_unauthenticated),
     .min = 1,
     .max = 1000000,
     .def = "1024",
     .group = S_AUTH,
     .help = "connections not logged in yet",
     .section = S_AUTH},
    {.name = "max-preauth-streams",
     .kind = NANA_OPT_UINT,
     AT(max_preauth_streams),
     .min = 1,
     .max = 65536,
     .def = "50",
     .group = S_AUTH,
     .help = "unfinished requests before authentication",
     .section = S_AUTH},
    {.name = "max-preauth-request-bytes",
     .kind = NANA_OPT_UINT,
     AT(max_preauth_request_bytes),
     .min = 256,
     .max = 1048576,
     .def = "4096",
     .group = S_AUTH,
     .help = "one request before login",
     .section = S_AUTH},
    {.name = "ban-failures",
     .kind = NANA_OPT_UINT,
     AT(ban_failures),
     .min = 1,
     .max = 1000000,
     .def = "3",
     .group = S_AUTH,
     .help = "failed authentications that ban an address",
     .section = S_AUTH},
    {.name = "ban-seconds",
     .kind = NANA_OPT_UINT,
     AT(ban_seconds),
     .min = 1,
     .max = 31536000,
     .def = "900",
     .group = S_AUTH,
     .help = "how long a ban lasts",
     .section = S_AUTH},
    {.name = "no-bans",
     .kind = NANA_OPT_FLAG,
     AT(no_bans),
     .group = S_AUTH,
     .help = "never ban (for tests)",
     .section = S_AUTH},
    /* [doors]: what the NanaSQLite door holds for a connection's requests and replies */
    {.name = "max-request-bytes",
     .kind = NANA_OPT_UINT,
     AT(max_stream_bytes),
     .min = 64,
     .max = (uint64_t)1 << 31,
     .def = "10485760",
     .group = S_DOORS,
     .help = "one request frame, per stream",
     .section = S_DOORS},
    {.name = "max-conn-bytes",
     .kind = NANA_OPT_UINT,
     AT(max_conn_bytes),
     .min = 64,
     .max = (uint64_t)1 << 40,
     .def = "52428800",
     .group = S_DOORS,
     .help = "unfinished request bytes per connection",
     .section = S_DOORS},
    {.name = "max-buffered-bytes",
     .kind = NANA_OPT_UINT,
     AT(max_buffered_bytes),
     .min = 65536,
     .max = (uint64_t)1 << 40,
     .def = "536870912",
     .group = S_DOORS,
     .help = "unfinished request bytes, server-wide",
     .section = S_DOORS},
    {.name = "request-idle-ms",
     .kind = NANA_OPT_UINT,
     AT(request_idle_ms),
     .min = 100,
     .max = 3600000,
     .def = "10000",
     .group = S_DOORS,
     .help = "an unfinished request idle this long is refused",
     .section = S_DOORS},
    {.name = "request-timeout-ms",
     .kind = NANA_OPT_UINT,
     AT(request_timeout_ms),
     .min = 100,
     .max = 3600000,
     .def = "120000",
     .group = S_DOORS,
     .help = "a request must be whole this soon",
     .section = S_DOORS},
    {.name = "max-unread-reply-bytes",
     .kind = NANA_OPT_UINT,
     AT(max_unread_reply_bytes),
     .min = 65536,
     .max = (uint64_t)1 << 40,
     .def = "67108864",
     .group = S_DOORS,
     .help = "replies queued unread per connection",
     .section = S_DOORS},
    {.name = "reply-stall-ms",
     .kind = NANA_OPT_UINT,
     AT(reply_stall_ms),
     .min = 100,
     .max = 3600000,
     .def = "30000",
     .group = S_DOORS,
     .help = "a connection not reading its replies this long closes",
     .section = S_DOORS},
    /* [grpc]: the gRPC door: HTTP/3 on the QUIC port (ALPN "h3"), HTTP/2 + TLS on TCP */
    {.name = "no-grpc",
     .kind = NANA_OPT_FLAG,
     AT(no_grpc),
     .group = S_GRPC,
     .help = "do not serve gRPC (neither HTTP/3 on the QUIC port nor HTTP/2 on TCP)",
     .section = S_GRPC,
     .key = "disabled"},
    {.name = "no-grpc-tcp",
     .kind = NANA_OPT_FLAG,
     AT(no_grpc_tcp),
     .group = S_GRPC,
     .help = "do not serve gRPC over HTTP/2 + TLS on TCP (same address and port number)",
     .section = S_GRPC,
     .key = "tcp_disabled"},
    {.name = "h2c",
     .kind = NANA_OPT_CUSTOM,
     AT(h2c_host),
     .parse = parse_h2c,
     .def_doc = "none",
     .group = S_GRPC,
     .arg = "[ADDR:]PORT",
     .help = "also serve gRPC over plaintext HTTP/2 here (no TLS: for development; "
             "a port alone is on 127.0.0.1)",
     .section = S_GRPC,
     .key = "h2c",
     .example = "127.0.0.1:50051"},
    {.name = "h2-rst-per-s",
     .kind = NANA_OPT_UINT,
     AT(h2_rst_per_s),
     .min = 1,
     .max = 1000000,
     .def = "200",
     .group = S_GRPC,
     .help = "HTTP/2: stream resets a client may send a second (bursts of 5x); more: GOAWAY",
     .section = S_GRPC,
     .key = "h2_rst_per_s"},
    {.name = "h2-ping-per-s",
     .kind = NANA_OPT_UINT,
     AT(h2_ping_per_s),
     .min = 1,
     .max = 1000000,
     .def = "50",
     .group = S_GRPC,
     .help = "HTTP/2: PINGs a client may send a second (bursts of 4x); more: GOAWAY",
     .section = S_GRPC,
     .key = "h2_ping_per_s"},
    {.name = "tcp-send-buffer-bytes",
     .kind = NANA_OPT_UINT,
     AT(tcp_send_buffer_bytes),
     .min = 16384,
     .max = (uint64_t)1 << 30,
     .def = "262144",
     .group = S_GRPC,
     .help = "a TCP connection's unsent answer bytes; past them it stops reading requests",
     .section = S_GRPC,
     .key = "tcp_send_buffer_bytes"},
    {.name = "tls-handshake-timeout-ms",
     .kind = NANA_OPT_UINT,
     AT(tls_handshake_timeout_ms),
     .min = 100,
     .max = 600000,
     .def = "10000",
     .group = S_GRPC,
     .help = "a TCP connection's TLS handshake must end this soon",
     .section = S_GRPC,
     .key = "tls_handshake_timeout_ms"},
    {.name = "grpc-max-message-bytes",
     .kind = NANA_OPT_UINT,
     AT(grpc_max_message_bytes),
     .min = 64,
     .max = (uint64_t)1 << 30,
     .def = "4194304",
     .group = S_GRPC,
     .help = "one gRPC request message (larger: RESOURCE_EXHAUSTED)",
     .section = S_GRPC,
     .key = "max_message_bytes"},
    {.name = "grpc-max-header-bytes",
     .kind = NANA_OPT_UINT,
     AT(grpc_max_header_bytes),
     .min = 512,
     .max = 1048576,
     .def = "8192",
     .group = S_GRPC,
     .help = "a gRPC request's header fields, bytes (names, values, 32 each)",
     .section = S_GRPC,
     .key = "max_header_bytes"},
    {.name = "grpc-max-header-fields",
     .kind = NANA_OPT_UINT,
     AT(grpc_max_header_fields),
     .min = 8,
     .max = 10000,
     .def = "64",
     .group = S_GRPC,
     .help = "a gRPC request's header fields, count (pseudo-headers too)",
     .section = S_GRPC,
     .key = "max_header_fields"},
    {.name = "grpc-auth-skew-s",
     .kind = NANA_OPT_UINT,
     AT(grpc_auth_skew_s),
     .min = 1,
     .max = 86400,
     .def = "300",
     .group = S_GRPC,
     .help = "a gRPC login signature's timestamp may be this far from the server's clock",
     .section = S_GRPC,
     .key = "auth_skew_s"},
    /* [aql]: the AQL services' server proofs (signed receipts of query and result) */
    {.name = "proof-key",
     .kind = NANA_OPT_PATH,
     AT(proof_key_path),
     .def_doc = "proof.key beside --key, made (0600, with proof.pub) on first start",
     .group = S_AQL,
     .help = "Ed25519 private key (PKCS#8 PEM, as nanasqlite-key-gen writes) signing proofs",
     .section = S_AQL,
     .key = "proof_key",
     .example = "proof.key"},
    {.name = "proof-mode",
     .kind = NANA_OPT_ENUM,
     AT(proof_mode),
     .words = proof_words,
     .values = proof_values,
     .def = "ask",
     .group = S_AQL,
     .arg = "MODE",
     .help = "ask: a proof when the call's metadata has nana-proof: 1; always; never",
     .section = S_AQL,
     .key = "proof_mode"},
    {.name = "aql-batch-bytes",
     .kind = NANA_OPT_UINT,
     AT(aql_batch_bytes),
     .min = 1024,
     .max = (uint64_t)64 << 20,
     .def = "65536",
     .group = S_AQL,
     .help = "ExecuteStream: key and value bytes of one StreamBatch (a page read at a time)",
     .section = S_AQL,
     .key = "batch_bytes"},
    {.name = "aql-window-bytes",
     .kind = NANA_OPT_UINT,
     AT(aql_window_bytes),
     .min = 4096,
     .max = (uint64_t)1 << 30,
     .def = "1048576",
     .group = S_AQL,
     .help = "an AQL call's answer bytes the client has not acknowledged before no more "
             "of its work starts",
     .section = S_AQL,
     .key = "window_bytes"},
    {.name = "aql-max-inflight",
     .kind = NANA_OPT_UINT,
     AT(aql_max_inflight),
     .min = 1,
     .max = 4096,
     .def = "64",
     .group = S_AQL,
     .help = "queries of one ExecuteInteractive or AmateRS/ExecuteStream running at once "
             "(the rest wait, and so does the client's flow control)",
     .section = S_AQL,
     .key = "max_inflight"},
    /* [limits]: calls */
    {.name = "rate-limit",
     .kind = NANA_OPT_DOUBLE,
     AT(calls_per_sec),
     .dmin = 1,
     .dmax = 1e9,
     .def = "1000000",
     .group = S_LIMITS,
     .arg = "N",
     .help = "calls per second per account (an account's own limit wins)",
     .section = S_LIMITS},
    {.name = "call-timeout-ms",
     .kind = NANA_OPT_UINT,
     AT(call_timeout_ms),
     .min = 1,
     .max = 3600000,
     .def = "15000",
     .group = S_LIMITS,
     .help = "deadline of one call",
     .section = S_LIMITS},
    {.name = "queue-limit",
     .kind = NANA_OPT_UINT,
     AT(queue_limit),
     .min = 1,
     .max = 10000000,
     .def = "4096",
     .group = S_LIMITS,
     .help = "calls waiting for a worker before 'busy'",
     .section = S_LIMITS},
    {.name = "grace-ms",
     .kind = NANA_OPT_UINT,
     AT(grace_ms),
     .min = 1,
     .max = 3600000,
     .def = "10000",
     .group = S_LIMITS,
     .help = "a stop waits this long for calls in flight",
     .section = S_LIMITS},
    /* [cluster] */
    {.name = "cluster-id",
     .kind = NANA_OPT_UINT,
     AT(cluster_id),
     .min = 1,
     .max = 9223372036854775807ull,
     .def_doc = "none: not clustered",
     .group = S_CLUSTER,
     .help = "run as node N of a dqlite cluster (node 1 starts a new cluster; see CLUSTER.md)",
     .section = S_CLUSTER,
     .key = "id",
     .example = "1"},
    {.name = "cluster-bind",
     .kind = NANA_OPT_STRING,
     AT(cluster_bind),
     .group = S_CLUSTER,
     .arg = "HOST:PORT",
     .help = "this node's cluster address: its peers and its own server reach it there "
             "(numeric; mutual TLS with --cluster-cert, else a private network)",
     .section = S_CLUSTER,
     .key = "bind",
     .example = "10.0.0.1:9001"},
    {.name = "join",
     .kind = NANA_OPT_STRING,
     AT(cluster_join),
     .group = S_CLUSTER,
     .arg = "HOST:PORT[,...]",
     .help = "cluster addresses of other nodes: a new node joins through them, every node finds "
             "the leader through them",
     .section = S_CLUSTER,
     .key = "join",
     .example = "10.0.0.2:9001,10.0.0.3:9001"},
    {.name = "cluster-dir",
     .kind = NANA_OPT_PATH,
     AT(cluster_dir),
     .def_doc = "--db with .cluster added",
     .group = S_CLUSTER,
     .arg = "DIR",
     .help = "where this node keeps its Raft log and snapshots (made 0700)",
     .section = S_CLUSTER,
     .key = "dir",
     .example = "server_db.cluster"},
    {.name = "cluster-wait-ms",
     .kind = NANA_OPT_UINT,
     AT(cluster_wait_ms),
     .min = 100,
     .max = 3600000,
     .def = "10000",
     .group = S_CLUSTER,
     .help = "a call waits this long for a leader before failing (no_leader); nothing it "
             "carried was applied",
     .section = S_CLUSTER},
    {.name = "cluster-start-ms",
     .kind = NANA_OPT_UINT,
     AT(cluster_start_ms),
     .min = 100,
     .max = 86400000,
     .def = "120000",
     .group = S_CLUSTER,
     .help = "at start, wait this long for the cluster to have a leader (a whole cluster "
             "starting needs a majority of its nodes up)",
     .section = S_CLUSTER},
    {.name = "cluster-latency-ms",
     .kind = NANA_OPT_UINT,
     AT(cluster_latency_ms),
     .min = 1,
     .max = 10000,
     .def_doc = "dqlite's own",
     .group = S_CLUSTER,
     .example = "5",
     .help = "one-way network latency between nodes; Raft's heartbeats and elections are timed "
             "from it (smaller: faster failover, more elections under load)",
     .section = S_CLUSTER},
    {.name = "cluster-cert",
     .kind = NANA_OPT_PATH,
     AT(cluster_cert),
     .def_doc = "none: cluster traffic in the clear",
     .group = S_CLUSTER,
     .arg = "FILE",
     .help = "this node's certificate (PEM, from the cluster CA, for TLS server and client "
             "authentication: nanasqlite-cert-gen --node); with --cluster-key and --cluster-ca, "
             "all cluster traffic is mutual TLS",
     .section = S_CLUSTER,
     .key = "cert",
     .example = "/etc/nanasqlite/node.pem"},
    {.name = "cluster-key",
     .kind = NANA_OPT_PATH,
     AT(cluster_key),
     .group = S_CLUSTER,
     .arg = "FILE",
     .help = "the private key of --cluster-cert (PEM; only its owner may read it: 0600)",
     .section = S_CLUSTER,
     .key = "key",
     .example = "/etc/nanasqlite/node-key.pem"},
    {.name = "cluster-ca",
     .kind = NANA_OPT_PATH,
     AT(cluster_ca),
     .group = S_CLUSTER,
     .arg = "FILE",
     .help = "the cluster's CA (PEM): a peer is a node when its certificate is a node "
             "certificate of this CA; use a CA that issues nothing else",
     .section = S_CLUSTER,
     .key = "ca",
     .example = "/etc/nanasqlite/cluster-ca.pem"},
    {.name = "cluster-handshake-ms",
     .kind = NANA_OPT_UINT,
     AT(cluster_handshake_ms),
     .min = 100,
     .max = 600000,
     .def = "5000",
     .group = S_CLUSTER,
     .help = "with cluster TLS: a peer's handshake on the cluster address must end this soon",
     .section = S_CLUSTER,
     .key = "handshake_ms"},
    {.name = "cluster-conns-max",
     .kind = NANA_OPT_UINT,
     AT(cluster_conns_max),
     .min = 1,
     .max = 65536,
     .def = "256",
     .group = S_CLUSTER,
     .help = "with cluster TLS: peers' connections open at once on the cluster address (past "
             "it a newcomer closes one still in its handshake, or is refused)",
     .section = S_CLUSTER,
     .key = "conns_max"},
    {.name = "cluster-pending-max",
     .kind = NANA_OPT_UINT,
     AT(cluster_pending_max),
     .min = 1,
     .max = 65536,
     .def = "32",
     .group = S_CLUSTER,
     .help = "with cluster TLS: of those, how many may be in their handshake (past it a "
             "newcomer closes the oldest)",
     .section = S_CLUSTER,
     .key = "pending_max"},
    {.name = "cluster-recover",
     .kind = NANA_OPT_STRING,
     AT(cluster_recover),
     .group = S_CLUSTER,
     .arg = "ID=HOST:PORT,...",
     .help = "with every node stopped: make these surviving nodes this node's whole cluster, then "
             "exit (recovery after losing a majority; see CLUSTER.md)",
     .section = S_CLUSTER,
     .key = "recover",
     .example = "1=10.0.0.1:9001,2=10.0.0.2:9001"},
    /* [log] */
    {.name = "log-level",
     .kind = NANA_OPT_ENUM,
     AT(log_level),
     .words = level_words,
     .values = level_values,
     .def = "info",
     .group = S_LOG,
     .arg = "LEVEL",
     .help = "the least important lines logged",
     .section = S_LOG,
     .key = "level"},
    {.name = "ready-file",
     .kind = NANA_OPT_PATH,
     AT(ready_file),
     .group = S_LOG,
     .help = "the port number is written here once serving (removed at stop)",
     .section = S_LOG,
     .example = "nanasqlite-server.port"},
    /* test hooks */
    {.name = "test-worker-delay-ms",
     .kind = NANA_OPT_UINT,
     AT(worker_delay_ms),
     .min = 0,
     .max = 600000,
     .flags = NANA_OPT_HIDDEN,
     .help = "each worker call first sleeps this long"},
};

const nana_opt *nana_server_options(size_t *n)
{
    *n = sizeof(rows) / sizeof(rows[0]);
    return rows;
}

void nana_server_opts_init(nana_server_opts *o)
{
    memset(o, 0, sizeof(*o));
    nana_opt_table t = {rows, sizeof(rows) / sizeof(rows[0]), o};
    (void)nana_opt_defaults(&t); /* the defaults are checked by test_options */
}

int nana_server_opts_check(const nana_server_opts *o)
{
    if (o->keepalive_ms && o->keepalive_ms >= o->idle_timeout_ms)
        return nana_err_set(NANA_ERR_INVALID,
                            "--keep-alive-ms %u is not shorter than --idle-timeout-ms %u: the "
                            "connection would time out before the PING",
                            o->keepalive_ms, o->idle_timeout_ms);
    if (!o->cluster_id && (o->cluster_bind || o->cluster_join || o->cluster_dir))
        return nana_err_set(NANA_ERR_INVALID, "--cluster-bind, --join and --cluster-dir need "
                                              "--cluster-id: this node's number in the cluster");
    if (o->cluster_id && !o->cluster_bind)
        return nana_err_set(NANA_ERR_INVALID,
                            "--cluster-id needs --cluster-bind HOST:PORT: where this node's "
                            "peers reach it");
    if (o->cluster_recover && (!o->cluster_id || !o->cluster_bind))
        return nana_err_set(NANA_ERR_INVALID, "--cluster-recover needs this node's --cluster-id "
                                              "and --cluster-bind");
    int tls = !!o->cluster_cert + !!o->cluster_key + !!o->cluster_ca;
    if (tls && !o->cluster_id)
        return nana_err_set(NANA_ERR_INVALID, "--cluster-cert, --cluster-key and --cluster-ca need "
                                              "--cluster-id: this node's number in the cluster");
    if (tls && tls < 3)
        return nana_err_set(NANA_ERR_INVALID,
                            "cluster TLS needs all three of --cluster-cert, --cluster-key and "
                            "--cluster-ca (%s is missing); with none, cluster traffic is in the "
                            "clear",
                            !o->cluster_cert  ? "--cluster-cert"
                            : !o->cluster_key ? "--cluster-key"
                                              : "--cluster-ca");
    if (o->cluster_id > 1 && !o->cluster_join && !o->cluster_recover)
        return nana_err_set(NANA_ERR_INVALID,
                            "--cluster-id %llu needs --join HOST:PORT[,...]: node 1 starts a "
                            "cluster, every other node joins one",
                            (unsigned long long)o->cluster_id);
    return NANA_OK;
}
