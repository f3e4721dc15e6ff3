/*
 * server_main.c - nanasqlite-server: the command line around nana_server.
 *
 * With no arguments it serves ./server_db.sqlite on 127.0.0.1:4433 with
 * ./cert.pem, ./key.pem and ./nana_public.pub. SIGINT or SIGTERM stops it
 * gracefully (calls in flight are answered, databases committed and
 * closed) and it exits 0; a start-up problem is one line on stderr and
 * exit status 1; a bad flag is exit status 2.
 */
#include "server/nana_server.h"
#include "util/nana_log.h"
#include "util/nana_parse.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef NANA_VERSION
#define NANA_VERSION "0.0.0"
#endif

static const char usage[] =
    "usage: nanasqlite-server [options]\n"
    "\n"
    "Serves a NanaSQLite database over QUIC (the NanaSQLite wire protocol).\n"
    "\n"
    "  --host ADDR            address to listen on (default 127.0.0.1; :: for all)\n"
    "  --port N               UDP port (default 4433; 0 picks a free one)\n"
    "  --db FILE              the default database (default server_db.sqlite)\n"
    "  --db-dir DIR           where requests' \"db\" names live (default: the accounts\n"
    "                         file's db_dir, else the default database's directory)\n"
    "  --accounts FILE        accounts JSON (reloaded when edited); without it the one\n"
    "                         key in --public-key may do everything the defaults allow\n"
    "  --public-key FILE      OpenSSH ed25519 public key (default nana_public.pub)\n"
    "  --cert FILE            TLS certificate chain (default cert.pem)\n"
    "  --key FILE             its private key (default key.pem)\n"
    "  --threads N            QUIC I/O threads (default 1)\n"
    "  --workers N            store worker threads (default 8)\n"
    "  --synchronous MODE     normal (default) or full (an acknowledged write\n"
    "                         survives power loss)\n"
    "  --check-at-open MODE   check each database file before serving it: quick\n"
    "                         (default), full (also every index) or none\n"
    "  --allow-corrupt        serve a damaged database anyway, for recovery\n"
    "  --log-level LEVEL      error, warn, info (default) or debug\n"
    "  --ready-file FILE      write the port number here once serving\n"
    "  --version, --help\n"
    "\n"
    "limits (defaults in brackets):\n"
    "  --max-connections N    connections at once [10000]\n"
    "  --max-streams N        calls in flight per connection [128]\n"
    "  --max-request-bytes N  one request frame, per stream [10485760]\n"
    "  --max-conn-bytes N     unfinished request bytes per connection [52428800]\n"
    "  --max-preauth-streams N  unfinished requests before authentication [50]\n"
    "  --max-conns-per-addr N connections from one address (IPv4, IPv6 /64) [256]\n"
    "  --max-unauthenticated N  connections not logged in yet [1024]\n"
    "  --auth-timeout-ms N    a connection must log in this soon [5000]\n"
    "  --max-preauth-request-bytes N  one request before login [4096]\n"
    "  --max-buffered-bytes N unfinished request bytes, server-wide [536870912]\n"
    "  --request-idle-ms N    an unfinished request idle this long is refused [10000]\n"
    "  --request-timeout-ms N a request must be whole this soon [120000]\n"
    "  --max-unread-reply-bytes N  replies queued unread per connection [67108864]\n"
    "  --reply-stall-ms N     a connection not reading its replies this long closes [30000]\n"
    "  --rate-limit N         calls per second per account [1000000]\n"
    "  --call-timeout-ms N    deadline of one call [15000]\n"
    "  --queue-limit N        calls waiting for a worker before 'busy' [4096]\n"
    "  --max-dbs N            databases open at once [64]\n"
    "  --idle-timeout-ms N    idle connections close [30000]\n"
    "  --challenge-ttl-ms N   an authentication challenge expires [30000]\n"
    "  --ban-failures N       failed authentications that ban an address [3]\n"
    "  --ban-seconds N        how long a ban lasts [900]\n"
    "  --no-bans              never ban (for tests)\n"
    "  --grace-ms N           a stop waits this long for calls in flight [10000]\n";

/* Parses a numeric flag value or exits with status 2. */
static uint64_t num(const char *flag, const char *v, uint64_t lo, uint64_t hi)
{
    uint64_t x = 0;
    if (nana_parse_u64(v, lo, hi, &x)) {
        fprintf(stderr, "nanasqlite-server: %s: %s\n", flag, nana_errmsg());
        exit(2);
    }
    return x;
}

int main(int argc, char **argv)
{
    nana_server_opts o;
    nana_server_opts_init(&o);
    const char *ready_file = NULL;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
            fputs(usage, stdout);
            return 0;
        }
        if (!strcmp(f, "--version")) {
            printf("nanasqlite-server %s\n", NANA_VERSION);
            return 0;
        }
        if (!strcmp(f, "--no-bans")) {
            o.no_bans = 1;
            continue;
        }
        if (!strcmp(f, "--allow-corrupt")) {
            o.allow_corrupt = 1;
            continue;
        }
        if (i + 1 >= argc || strncmp(f, "--", 2) != 0) {
            fprintf(stderr, "nanasqlite-server: %s %s\n%s", f,
                    strncmp(f, "--", 2) ? "is not an option" : "needs a value", usage);
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(f, "--host"))
            o.host = v;
        else if (!strcmp(f, "--port"))
            o.port = (uint16_t)num(f, v, 0, 65535);
        else if (!strcmp(f, "--db"))
            o.db_path = v;
        else if (!strcmp(f, "--db-dir"))
            o.db_dir = v;
        else if (!strcmp(f, "--accounts"))
            o.accounts_path = v;
        else if (!strcmp(f, "--public-key"))
            o.public_key_path = v;
        else if (!strcmp(f, "--cert"))
            o.cert_path = v;
        else if (!strcmp(f, "--key"))
            o.key_path = v;
        else if (!strcmp(f, "--threads"))
            o.threads = (unsigned)num(f, v, 1, 64);
        else if (!strcmp(f, "--workers"))
            o.workers = (unsigned)num(f, v, 1, 256);
        else if (!strcmp(f, "--ready-file"))
            ready_file = v;
        else if (!strcmp(f, "--synchronous")) {
            if (!strcmp(v, "normal"))
                o.sync = NANA_SYNC_NORMAL;
            else if (!strcmp(v, "full"))
                o.sync = NANA_SYNC_FULL;
            else {
                fprintf(stderr, "nanasqlite-server: --synchronous must be normal or full\n");
                return 2;
            }
        } else if (!strcmp(f, "--check-at-open")) {
            if (!strcmp(v, "quick"))
                o.open_check = NANA_CHECK_QUICK;
            else if (!strcmp(v, "full"))
                o.open_check = NANA_CHECK_FULL;
            else if (!strcmp(v, "none"))
                o.open_check = NANA_CHECK_NONE;
            else {
                fprintf(stderr, "nanasqlite-server: --check-at-open must be quick, full or none\n");
                return 2;
            }
        } else if (!strcmp(f, "--log-level")) {
            nana_log_level l;
            if (nana_log_parse_level(v, &l)) {
                fprintf(stderr, "nanasqlite-server: %s\n", nana_errmsg());
                return 2;
            }
            nana_log_set_level(l);
        } else if (!strcmp(f, "--max-connections"))
            o.max_connections = (unsigned)num(f, v, 1, 1000000);
        else if (!strcmp(f, "--max-streams"))
            o.max_streams = (unsigned)num(f, v, 1, 65536);
        else if (!strcmp(f, "--max-request-bytes"))
            o.max_stream_bytes = num(f, v, 64, (uint64_t)1 << 31);
        else if (!strcmp(f, "--max-conn-bytes"))
            o.max_conn_bytes = num(f, v, 64, (uint64_t)1 << 40);
        else if (!strcmp(f, "--max-conns-per-addr"))
            o.max_conns_per_addr = (unsigned)num(f, v, 1, 1000000);
        else if (!strcmp(f, "--max-unauthenticated"))
            o.max_unauthenticated = (unsigned)num(f, v, 1, 1000000);
        else if (!strcmp(f, "--auth-timeout-ms"))
            o.auth_timeout_ms = (unsigned)num(f, v, 100, 600000);
        else if (!strcmp(f, "--max-preauth-request-bytes"))
            o.max_preauth_request_bytes = num(f, v, 256, 1048576);
        else if (!strcmp(f, "--max-buffered-bytes"))
            o.max_buffered_bytes = num(f, v, 65536, (uint64_t)1 << 40);
        else if (!strcmp(f, "--request-idle-ms"))
            o.request_idle_ms = (unsigned)num(f, v, 100, 3600000);
        else if (!strcmp(f, "--request-timeout-ms"))
            o.request_timeout_ms = (unsigned)num(f, v, 100, 3600000);
        else if (!strcmp(f, "--max-unread-reply-bytes"))
            o.max_unread_reply_bytes = num(f, v, 65536, (uint64_t)1 << 40);
        else if (!strcmp(f, "--reply-stall-ms"))
            o.reply_stall_ms = (unsigned)num(f, v, 100, 3600000);
        else if (!strcmp(f, "--max-preauth-streams"))
            o.max_preauth_streams = (unsigned)num(f, v, 1, 65536);
        else if (!strcmp(f, "--rate-limit"))
            o.calls_per_sec = (double)num(f, v, 1, 1000000000);
        else if (!strcmp(f, "--call-timeout-ms"))
            o.call_timeout_ms = (unsigned)num(f, v, 1, 3600000);
        else if (!strcmp(f, "--queue-limit"))
            o.queue_limit = (unsigned)num(f, v, 1, 10000000);
        else if (!strcmp(f, "--max-dbs"))
            o.max_dbs = (unsigned)num(f, v, 1, 100000);
        else if (!strcmp(f, "--idle-timeout-ms"))
            o.idle_timeout_ms = (unsigned)num(f, v, 100, 86400000);
        else if (!strcmp(f, "--challenge-ttl-ms"))
            o.challenge_ttl_ms = (unsigned)num(f, v, 1, 3600000);
        else if (!strcmp(f, "--ban-failures"))
            o.ban_failures = (unsigned)num(f, v, 1, 1000000);
        else if (!strcmp(f, "--ban-seconds"))
            o.ban_seconds = (unsigned)num(f, v, 1, 31536000);
        else if (!strcmp(f, "--grace-ms"))
            o.grace_ms = (unsigned)num(f, v, 1, 3600000);
        else if (!strcmp(f, "--test-worker-delay-ms"))
            o.worker_delay_ms = (int)num(f, v, 0, 600000);
        else {
            fprintf(stderr, "nanasqlite-server: unknown option %s\n%s", f, usage);
            return 2;
        }
    }
    /* Every thread started from here on inherits the blocked signals; main waits for them. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    nana_server *s;
    if (nana_server_start(&o, &s)) {
        fprintf(stderr, "nanasqlite-server: %s\n", nana_errmsg());
        return 1;
    }
    nana_log(NANA_LOG_INFO, "nanasqlite-server %s listening on %s port %u (database %s)",
             NANA_VERSION, o.host, nana_server_port(s), o.db_path);
    if (ready_file) {
        FILE *f = fopen(ready_file, "w");
        if (f) {
            fprintf(f, "%u\n", nana_server_port(s));
            fclose(f);
        }
    }
    int sig = 0;
    sigwait(&stop, &sig);
    nana_log(NANA_LOG_INFO, "received %s: stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
    int rc = nana_server_stop(s);
    nana_log(NANA_LOG_INFO, "stopped");
    return rc ? 1 : 0;
}
