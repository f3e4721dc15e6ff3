/*
 * cert_gen.c - nanasqlite-cert-gen: writes a server certificate and its
 * key, cert.pem and key.pem (0600), in the current directory, valid for
 * localhost, 127.0.0.1, ::1 and every --host given, signed by a development
 * CA (ca.pem, ca-key.pem) that is made on first use and reused after, or by
 * the CA named with --ca and --ca-key. cert.pem holds the certificate then
 * the CA's. Clients trust ca.pem; cert.pem works as a trust file too (the
 * Python client loads it).
 *
 * --node makes the certificate a cluster node's: TLS client authentication
 * as well as server (nanasqlite-server --cluster-cert; see CLUSTER.md).
 *
 * --client NAME issues a client certificate from the same CA instead
 * (NAME.pem, NAME-key.pem), for mutual TLS, and prints its fingerprints as
 * an account in the accounts file names them; --fingerprint FILE prints
 * those of an existing certificate and writes nothing.
 */
#include "auth/nana_certgen.h"
#include "auth/nana_identity.h"
#include "util/nana_err.h"
#include "util/nana_opt.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define MAX_HOSTS 32

/* The names the certificate is for: localhost, 127.0.0.1, ::1 and each --host. */
typedef struct cert_names {
    const char *dns[MAX_HOSTS + 1], *ips[MAX_HOSTS + 2];
    size_t ndns, nip;
} cert_names;

/* The command line. */
typedef struct cert_args {
    cert_names names;
    unsigned days;
    bool rsa, force, node;
    const char *dir, *ca, *ca_key;
    const char *client;      /* --client NAME: a client certificate instead */
    const char *fingerprint; /* --fingerprint FILE: print, write nothing */
} cert_args;

/* True if |h| is a DNS name: dot-separated labels of letters, digits and
 * inner hyphens, 1 to 63 bytes each, 253 in all; "*." may lead. */
static bool is_dns_name(const char *h)
{
    size_t n = strlen(h);
    if (n == 0 || n > 253) return false;
    if (strncmp(h, "*.", 2) == 0 && n > 2) h += 2;
    for (const char *label = h;;) {
        size_t len = strcspn(label, ".");
        if (len == 0 || len > 63 || label[0] == '-' || label[len - 1] == '-') return false;
        for (size_t i = 0; i < len; i++) {
            char c = label[i];
            bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '-';
            if (!ok) return false;
        }
        if (!label[len]) return true;
        label += len + 1;
    }
}

/* Reads one --host into the names: an IPv4 or IPv6 address, or a DNS name. */
static int add_host(const nana_opt *row, const char *h, void *field)
{
    (void)row;
    cert_names *names = field;
    unsigned char tmp[16];
    bool ip = inet_pton(AF_INET, h, tmp) == 1 || inet_pton(AF_INET6, h, tmp) == 1;
    if (!ip && !is_dns_name(h))
        return nana_err_set(NANA_ERR_INVALID,
                            "\"%.64s\" is not a host name (letters, digits, hyphens, dots) or an "
                            "IP address",
                            h);
    if ((ip ? names->nip : names->ndns) >= MAX_HOSTS)
        return nana_err_set(NANA_ERR_INVALID, "at most %d names and %d addresses", MAX_HOSTS,
                            MAX_HOSTS);
    if (ip)
        names->ips[names->nip++] = h;
    else
        names->dns[names->ndns++] = h;
    return 0;
}

/* True if the last error says a file is in the way (nana_file: "... exists"). */
static bool error_is_exists(void)
{
    const char *m = nana_errmsg();
    size_t n = strlen(m);
    return n > 7 && strcmp(m + n - 7, " exists") == 0;
}

#define AT(member) NANA_OPT_AT(cert_args, member)

static const nana_opt rows[] = {
    {.name = "host",
     .kind = NANA_OPT_CUSTOM,
     AT(names),
     .parse = add_host,
     .def_doc = "localhost, 127.0.0.1 and ::1, always",
     .arg = "NAME-OR-IP",
     .help = "another name or address the certificate is for (repeatable)"},
    {.name = "days",
     .kind = NANA_OPT_UINT,
     AT(days),
     .min = 1,
     .max = NANA_CERT_MAX_DAYS,
     .def = "365",
     .help = "how long the certificate is valid"},
    {.name = "rsa",
     .kind = NANA_OPT_FLAG,
     AT(rsa),
     .help = "an RSA-2048 key instead of ECDSA P-256"},
    {.name = "out-dir",
     .kind = NANA_OPT_PATH,
     AT(dir),
     .def = ".",
     .arg = "DIR",
     .help = "where cert.pem and key.pem are written"},
    {.name = "ca",
     .kind = NANA_OPT_PATH,
     AT(ca),
     .def_doc = "ca.pem, made if neither it nor ca-key.pem exists",
     .help = "the CA that signs the certificate (with --ca-key)"},
    {.name = "ca-key",
     .kind = NANA_OPT_PATH,
     AT(ca_key),
     .def_doc = "ca-key.pem",
     .help = "that CA's private key"},
    {.name = "force",
     .kind = NANA_OPT_FLAG,
     AT(force),
     .help = "replace cert.pem and key.pem (a CA is never replaced)"},
    {.name = "node",
     .kind = NANA_OPT_FLAG,
     AT(node),
     .help = "a cluster node's certificate: for TLS client authentication too (--cluster-cert)"},
    {.name = "client",
     .kind = NANA_OPT_STRING,
     AT(client),
     .arg = "NAME",
     .help = "a client certificate NAME.pem, NAME-key.pem for mutual TLS instead"},
    {.name = "fingerprint",
     .kind = NANA_OPT_PATH,
     AT(fingerprint),
     .help = "print a certificate's fingerprints for the accounts file; write nothing"},
};

/*
 * Prints the fingerprints of the first certificate in |path| as the two
 * members an account of the accounts file names it with, indented by
 * |indent|. Returns 0, or 1 after printing the reason.
 */
static int print_fingerprints(const char *path, const char *indent)
{
    uint8_t cert[NANA_FINGERPRINT_BYTES], spki[NANA_FINGERPRINT_BYTES];
    if (nana_cert_fingerprints(path, cert, spki)) {
        fprintf(stderr, "nanasqlite-cert-gen: %s: %s\n", path, nana_errmsg());
        return 1;
    }
    char hex[NANA_FINGERPRINT_HEX_MAX], pin[NANA_FINGERPRINT_PIN_MAX];
    nana_fingerprint_hex(cert, hex);
    nana_fingerprint_pin(spki, pin);
    printf("%s\"client_cert_sha256\": [\"%s\"],\n", indent, hex);
    printf("%s\"client_spki_sha256\": [\"%s\"]\n", indent, pin);
    return 0;
}

/* Issues the client certificate of --client; returns the exit status. */
static int issue_client(const cert_args *a, nana_key_algo algo)
{
    nana_cert_spec spec = {.common_name = a->client, .days = a->days, .algo = algo, .client = 1};
    nana_dev_server_files f;
    if (nana_certgen_dev_client(a->dir, &spec, a->ca, a->ca_key, a->force, &f)) {
        fprintf(stderr, "nanasqlite-cert-gen: %s%s\n", nana_errmsg(),
                !a->force && error_is_exists() ? " (use --force to replace it)" : "");
        return 1;
    }
    if (f.ca_made)
        printf("wrote %s and %s: a new development CA (its key, keep it secret)\n", f.ca_cert,
               f.ca_key);
    else
        printf("using the CA %s\n", f.ca_cert);
    printf("wrote %s (a client certificate for %s) and %s (its private key, keep it secret)\n",
           f.cert, a->client, f.key);
    printf("the account it logs in as names it in the accounts file by either fingerprint:\n");
    if (print_fingerprints(f.cert, "  ")) return 1;
    printf("servers ask for it with --client-ca %s; clients show it with --cert %s --cert-key "
           "%s\n",
           f.ca_cert, f.cert, f.key);
    return 0;
}

int main(int argc, char **argv)
{
    cert_args a;
    memset(&a, 0, sizeof(a));
    a.names = (cert_names){.dns = {"localhost"}, .ips = {"127.0.0.1", "::1"}, .ndns = 1, .nip = 2};
    nana_opt_table table = {rows, sizeof(rows) / sizeof(rows[0]), &a};
    nana_opt_prog prog = {
        .name = "nanasqlite-cert-gen",
        .about = "Writes cert.pem and key.pem (0600): a server certificate for localhost,\n"
                 "127.0.0.1, ::1 and each --host, followed in cert.pem by its CA's certificate;\n"
                 "ECDSA P-256 unless --rsa (RSA-2048). The CA is --ca/--ca-key, else ca.pem and\n"
                 "ca-key.pem (0600) in the same directory, made when neither exists. Clients\n"
                 "trust ca.pem (or cert.pem). Existing files are kept unless --force.\n"
                 "\n"
                 "With --client NAME it writes a client certificate from the same CA instead,\n"
                 "NAME.pem and NAME-key.pem (0600), for a server started with --client-ca\n"
                 "ca.pem, and prints its fingerprints as the accounts file takes them.\n"
                 "--fingerprint FILE prints those of an existing certificate.\n"
                 "\n"
                 "With --node the certificate is a cluster node's (TLS client authentication\n"
                 "too), for nanasqlite-server --cluster-cert; give every node's the same CA.\n",
        .epilog = "exit status: 0 written, 1 not written (the reason on stderr), 2 bad command "
                  "line.\n",
        .tables = &table,
        .ntables = 1};
    int first;
    int status = nana_opt_report(&prog, nana_opt_parse(&prog, argc, argv, &first));
    if (status >= 0) return status;
    if (!a.ca != !a.ca_key) {
        fprintf(stderr, "nanasqlite-cert-gen: --ca and --ca-key go together\n");
        return 2;
    }
    bool hosts = a.names.ndns > 1 || a.names.nip > 2;
    if (a.fingerprint && (a.client || a.ca || hosts || a.force || a.rsa || a.node)) {
        fprintf(stderr, "nanasqlite-cert-gen: --fingerprint only reads a certificate; it takes "
                        "no other option\n");
        return 2;
    }
    if (a.fingerprint) return print_fingerprints(a.fingerprint, "");
    if (a.client && a.node) {
        fprintf(stderr, "nanasqlite-cert-gen: --node makes a node's certificate, --client a "
                        "client's: one or the other\n");
        return 2;
    }
    if (a.client && hosts) {
        fprintf(stderr, "nanasqlite-cert-gen: --host names a server; a --client certificate "
                        "names no host\n");
        return 2;
    }
    if (a.client && !nana_certgen_client_name_valid(a.client)) {
        fprintf(stderr,
                "nanasqlite-cert-gen: --client: \"%.64s\" cannot name a client: use 1..%d of "
                "A-Z a-z 0-9 _ . @ -, not starting with . or -, and not ca, ca-key, cert or key\n",
                a.client, NANA_DEV_CLIENT_NAME_MAX);
        return 2;
    }
    const char *const *dns = a.names.dns, *const *ips = a.names.ips;
    size_t ndns = a.names.ndns, nip = a.names.nip;
    uint64_t days = a.days;
    int force = a.force;
    const char *dir = a.dir, *ca = a.ca, *ca_key = a.ca_key;
    nana_key_algo algo = a.rsa ? NANA_KEY_RSA_2048 : NANA_KEY_ECDSA_P256;
    if (a.client) return issue_client(&a, algo);
    nana_cert_spec spec = {.common_name = "localhost",
                           .dns_names = dns,
                           .n_dns = ndns,
                           .ip_addrs = ips,
                           .n_ip = nip,
                           .days = (unsigned)days,
                           .algo = algo,
                           .server = 1,
                           .client = a.node};
    nana_dev_server_files f;
    if (nana_certgen_dev_server(dir, &spec, ca, ca_key, force, &f)) {
        fprintf(stderr, "nanasqlite-cert-gen: %s%s\n", nana_errmsg(),
                !force && error_is_exists() ? " (use --force to replace it)" : "");
        return 1;
    }
    if (f.ca_made)
        printf("wrote %s and %s: a new development CA (its key, keep it secret)\n", f.ca_cert,
               f.ca_key);
    else
        printf("using the CA %s\n", f.ca_cert);
    printf("wrote %s (the %s certificate, then the CA's) and %s (private key, keep it "
           "secret)\n",
           f.cert, a.node ? "node" : "server", f.key);
    if (a.node)
        printf("a node runs with --cluster-cert %s --cluster-key %s --cluster-ca %s\n", f.cert,
               f.key, f.ca_cert);
    else
        printf("clients trust %s (or %s)\n", f.ca_cert, f.cert);
    return 0;
}
