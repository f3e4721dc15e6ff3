/*
 * conn_flags.c - the connection flags of the client tools (conn_flags.h).
 *
 * One table lists every flag with its environment variable; recognising a
 * flag, the help text and filling the options all walk that table, so a
 * flag added there is parsed, documented and applied at once. Numbers are
 * parsed strictly: the whole value must be decimal digits in range.
 */
#include "conn_flags.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The tools' CA when none is named: the development set-up writes it in the cwd. */
#define DEV_CA "cert.pem"

enum { F_HOST, F_PORT, F_CA, F_SERVER_NAME, F_KEY, F_ACCOUNT, F_CERT, F_CERT_KEY, F_TIMEOUT };

enum { K_STR, K_PORT, K_MS };

static const struct flag {
    const char *name; /* "--port" */
    const char *env;  /* its environment variable, or NULL */
    const char *arg;  /* the value's name in the help text */
    const char *help;
    int id;
    int kind; /* K_STR, K_PORT, K_MS */
} flags[] = {
    {"--host", "NANASQLITE_HOST", "ADDR", "server address or host name", F_HOST, K_STR},
    {"--port", "NANASQLITE_PORT", "N", "server UDP port", F_PORT, K_PORT},
    {"--ca", "NANASQLITE_CA", "FILE",
     "CA certificates (PEM) to check the server with; \"system\": the OS store", F_CA, K_STR},
    {"--server-name", "NANASQLITE_SERVER_NAME", "NAME", "name the server certificate must carry",
     F_SERVER_NAME, K_STR},
    {"--key", "NANASQLITE_KEY", "FILE", "Ed25519 private key (PKCS#8 PEM) to log in with", F_KEY,
     K_STR},
    {"--account", "NANASQLITE_ACCOUNT", "NAME", "account to log in as", F_ACCOUNT, K_STR},
    {"--cert", "NANASQLITE_CERT", "FILE", "client certificate for mutual TLS", F_CERT, K_STR},
    {"--cert-key", "NANASQLITE_CERT_KEY", "FILE", "that certificate's key", F_CERT_KEY, K_STR},
    {"--timeout-ms", NULL, "N", "connect timeout, and each call's timeout", F_TIMEOUT, K_MS},
};

#define NFLAGS (sizeof(flags) / sizeof(flags[0]))

/* Where flag |id|'s value is kept in |f|. */
static const char **slot(nana_conn_flags *f, int id)
{
    switch (id) {
    case F_HOST:
        return &f->host;
    case F_PORT:
        return &f->port;
    case F_CA:
        return &f->ca;
    case F_SERVER_NAME:
        return &f->server_name;
    case F_KEY:
        return &f->key;
    case F_ACCOUNT:
        return &f->account;
    case F_CERT:
        return &f->cert;
    case F_CERT_KEY:
        return &f->cert_key;
    default:
        return &f->timeout_ms;
    }
}

void nana_conn_flags_init(nana_conn_flags *f)
{
    memset(f, 0, sizeof(*f));
}

/*
 * Parses |s| as a decimal number in [lo, hi]: digits only, no sign, no
 * spaces, no overflow. Returns 0 with *out set, or -1 with |err| naming
 * |what| (the flag or variable) and the value.
 */
static int parse_num(const char *what, const char *s, unsigned long lo, unsigned long hi,
                     unsigned long *out, char *err, size_t errlen)
{
    if (!*s || strspn(s, "0123456789") != strlen(s)) {
        snprintf(err, errlen, "%s: '%s' is not a number", what, s);
        return -1;
    }
    errno = 0;
    unsigned long v = strtoul(s, NULL, 10);
    if (errno == ERANGE || v < lo || v > hi) {
        snprintf(err, errlen, "%s: %s is out of range (%lu to %lu)", what, s, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

/* Checks value |v| of flag |fl| (named |what|). 0, or -1 with |err| set. */
static int check_value(const struct flag *fl, const char *what, const char *v, char *err,
                       size_t errlen)
{
    unsigned long n;
    if (!*v) {
        snprintf(err, errlen, "%s: the value is empty", what);
        return -1;
    }
    if (fl->kind == K_PORT) return parse_num(what, v, 1, 65535, &n, err, errlen);
    if (fl->kind == K_MS) return parse_num(what, v, 1, 86400000, &n, err, errlen);
    return 0;
}

int nana_conn_flag(nana_conn_flags *f, int argc, char **argv, int i, char *err, size_t errlen)
{
    const char *a = argv[i];
    for (size_t k = 0; k < NFLAGS; k++) {
        const struct flag *fl = &flags[k];
        size_t n = strlen(fl->name);
        if (strncmp(a, fl->name, n) != 0 || (a[n] != '\0' && a[n] != '=')) continue;
        const char *v;
        int used;
        if (a[n] == '=') {
            v = a + n + 1;
            used = 1;
        } else if (i + 1 < argc) {
            v = argv[i + 1];
            used = 2;
        } else {
            snprintf(err, errlen, "%s needs a value (%s)", fl->name, fl->arg);
            return -1;
        }
        if (check_value(fl, fl->name, v, err, errlen)) return -1;
        *slot(f, fl->id) = v;
        return used;
    }
    return 0;
}

void nana_conn_flags_help(FILE *out)
{
    nana_client_opts d;
    nana_client_opts_init(&d);
    fputs("\nconnection (a flag not given falls back on its environment variable, then on the\n"
          "default):\n",
          out);
    for (size_t k = 0; k < NFLAGS; k++) {
        const struct flag *fl = &flags[k];
        char left[64];
        snprintf(left, sizeof(left), "%s %s", fl->name, fl->arg);
        fprintf(out, "  %-22s %s\n", left, fl->help);
        char dflt[96];
        switch (fl->id) {
        case F_HOST:
            snprintf(dflt, sizeof(dflt), "%s", d.host ? d.host : "");
            break;
        case F_PORT:
            snprintf(dflt, sizeof(dflt), "%u", (unsigned)d.port);
            break;
        case F_CA:
            snprintf(dflt, sizeof(dflt), "./%s if it exists, else system", DEV_CA);
            break;
        case F_SERVER_NAME:
            snprintf(dflt, sizeof(dflt), "%s", d.server_name ? d.server_name : "");
            break;
        case F_KEY:
            snprintf(dflt, sizeof(dflt), "%s", d.key_file ? d.key_file : "");
            break;
        case F_CERT_KEY:
            snprintf(dflt, sizeof(dflt), "the --cert file");
            break;
        case F_TIMEOUT:
            snprintf(dflt, sizeof(dflt), "%u connect, %u per call", d.connect_timeout_ms,
                     d.call_timeout_ms);
            break;
        default:
            snprintf(dflt, sizeof(dflt), "none");
            break;
        }
        if (fl->env)
            fprintf(out, "  %-22s [$%s, else %s]\n", "", fl->env, dflt);
        else
            fprintf(out, "  %-22s [%s]\n", "", dflt);
    }
}

int nana_conn_flags_fill(const nana_conn_flags *f, nana_client_opts *o, char *err, size_t errlen)
{
    nana_client_opts_init(o);
    nana_conn_flags g = *f;
    /* Environment variables stand in for flags not given. */
    for (size_t k = 0; k < NFLAGS; k++) {
        const struct flag *fl = &flags[k];
        const char **v = slot(&g, fl->id);
        if (*v || !fl->env) continue;
        const char *e = getenv(fl->env);
        if (!e || !*e) continue;
        if (check_value(fl, fl->env, e, err, errlen)) return -1;
        *v = e;
    }
    unsigned long n;
    if (g.host) o->host = g.host;
    if (g.port) {
        if (parse_num("--port", g.port, 1, 65535, &n, err, errlen)) return -1;
        o->port = (uint16_t)n;
    }
    if (g.server_name) o->server_name = g.server_name;
    if (g.ca)
        o->ca_file = strcmp(g.ca, "system") == 0 ? NULL : g.ca;
    else if (access(DEV_CA, F_OK) == 0)
        o->ca_file = DEV_CA;
    if (g.key) o->key_file = g.key;
    if (g.account) o->account = g.account;
    if (g.cert) o->cert_file = g.cert;
    if (g.cert_key) o->cert_key_file = g.cert_key;
    if (g.timeout_ms) {
        if (parse_num("--timeout-ms", g.timeout_ms, 1, 86400000, &n, err, errlen)) return -1;
        o->connect_timeout_ms = (unsigned)n;
        o->call_timeout_ms = (unsigned)n;
    }
    return 0;
}
