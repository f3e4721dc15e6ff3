/*
 * conn_flags.c - the connection flags of the client tools (conn_flags.h),
 * as rows of a nana_opt table: the parser applies their defaults, reads
 * the flags and then the environment variables of the flags not given,
 * and prints their help; nana_conn_flags_finish settles the two values
 * that need more than a field (the CA, the timeouts).
 */
#include "conn_flags.h"

#include <string.h>
#include <unistd.h>

/* The tools' CA when none is named: the development set-up writes it in the cwd. */
#define DEV_CA "cert.pem"

#define AT(member) NANA_OPT_AT(nana_conn_flags, member)

static const char G_CONN[] = "connection";

static const char *const transport_words[] = {"auto", "quic", "h2", NULL};
static const int transport_values[] = {NANA_CLIENT_TRANSPORT_AUTO, NANA_CLIENT_TRANSPORT_QUIC,
                                       NANA_CLIENT_TRANSPORT_H2};

/* The defaults are nana_client_opts_init's; test_opt checks that they agree. */
static const nana_opt rows[] = {
    {.name = "host",
     .kind = NANA_OPT_STRING,
     AT(o.host),
     .def = "127.0.0.1",
     .env = "NANASQLITE_HOST",
     .group = G_CONN,
     .arg = "ADDR",
     .help = "server address or host name"},
    {.name = "port",
     .kind = NANA_OPT_UINT,
     AT(o.port),
     .min = 1,
     .max = 65535,
     .def = "4433",
     .env = "NANASQLITE_PORT",
     .group = G_CONN,
     .help = "server port (UDP for QUIC, TCP for HTTP/2)"},
    {.name = "ca",
     .kind = NANA_OPT_PATH,
     AT(ca),
     .def_doc = "./" DEV_CA " if it exists, else system",
     .env = "NANASQLITE_CA",
     .group = G_CONN,
     .help = "CA certificates (PEM) to check the server with; system: the OS store"},
    {.name = "server-name",
     .kind = NANA_OPT_STRING,
     AT(o.server_name),
     .def = "localhost",
     .env = "NANASQLITE_SERVER_NAME",
     .group = G_CONN,
     .arg = "NAME",
     .help = "name the server certificate must carry"},
    {.name = "key",
     .kind = NANA_OPT_PATH,
     AT(o.key_file),
     .def = "nana_private.pem",
     .env = "NANASQLITE_KEY",
     .group = G_CONN,
     .help = "Ed25519 private key (PKCS#8 PEM) to log in with"},
    {.name = "account",
     .kind = NANA_OPT_STRING,
     AT(o.account),
     .env = "NANASQLITE_ACCOUNT",
     .group = G_CONN,
     .arg = "NAME",
     .help = "account to log in as"},
    {.name = "cert",
     .kind = NANA_OPT_PATH,
     AT(o.cert_file),
     .env = "NANASQLITE_CERT",
     .group = G_CONN,
     .help = "client certificate to show a server that asks for one"},
    {.name = "cert-key",
     .kind = NANA_OPT_PATH,
     AT(o.cert_key_file),
     .def_doc = "the --cert file",
     .env = "NANASQLITE_CERT_KEY",
     .group = G_CONN,
     .help = "that certificate's key"},
    {.name = "transport",
     .kind = NANA_OPT_ENUM,
     AT(o.transport),
     .words = transport_words,
     .values = transport_values,
     .def = "auto",
     .env = "NANASQLITE_TRANSPORT",
     .group = G_CONN,
     .help = "auto: QUIC, or gRPC over HTTP/2 on TCP (same port) when QUIC gets no answer within "
             "--fallback-ms; quic: QUIC only; h2: HTTP/2 only"},
    {.name = "fallback-ms",
     .kind = NANA_OPT_UINT,
     AT(o.fallback_ms),
     .min = 1,
     .max = 86400000,
     .def = "1500",
     .env = "NANASQLITE_FALLBACK_MS",
     .group = G_CONN,
     .help = "with --transport auto: how long QUIC may take to connect before HTTP/2 is tried"},
    {.name = "timeout-ms",
     .kind = NANA_OPT_UINT,
     AT(timeout_ms),
     .min = 1,
     .max = 86400000,
     .def_doc = "10000 to connect, 30000 per call",
     .group = G_CONN,
     .help = "connect timeout, and each call's timeout"},
};

nana_opt_table nana_conn_flags_table(nana_conn_flags *f)
{
    memset(f, 0, sizeof(*f));
    nana_client_opts_init(&f->o);
    return (nana_opt_table){rows, sizeof(rows) / sizeof(rows[0]), f};
}

void nana_conn_flags_finish(nana_conn_flags *f)
{
    if (f->ca)
        f->o.ca_file = strcmp(f->ca, "system") == 0 ? NULL : f->ca;
    else if (access(DEV_CA, F_OK) == 0)
        f->o.ca_file = DEV_CA;
    if (f->timeout_ms) {
        f->o.connect_timeout_ms = f->timeout_ms;
        f->o.call_timeout_ms = f->timeout_ms;
    }
}
