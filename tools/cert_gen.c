/*
 * cert_gen.c - nanasqlite-cert-gen: writes a server certificate and its
 * key, cert.pem and key.pem (0600), in the current directory, valid for
 * localhost, 127.0.0.1, ::1 and every --host given, signed by a development
 * CA (ca.pem, ca-key.pem) that is made on first use and reused after, or by
 * the CA named with --ca and --ca-key. cert.pem holds the certificate then
 * the CA's. Clients trust ca.pem; cert.pem works as a trust file too (the
 * Python client loads it).
 */
#include "auth/nana_certgen.h"
#include "util/nana_err.h"
#include "util/nana_parse.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static const char usage[] =
    "usage: nanasqlite-cert-gen [--host NAME-OR-IP]... [--days N] [--rsa] [--out-dir DIR] "
    "[--force]\n"
    "                           [--ca FILE --ca-key FILE]\n"
    "  writes cert.pem and key.pem (0600): a server certificate for localhost,\n"
    "  127.0.0.1, ::1 and each --host, followed in cert.pem by its CA's certificate;\n"
    "  ECDSA P-256 unless --rsa (RSA-2048); valid --days days (default 365).\n"
    "  The CA is --ca/--ca-key, else ca.pem and ca-key.pem (0600) in the same\n"
    "  directory, made when neither exists. Clients trust ca.pem (or cert.pem).\n"
    "  --force replaces cert.pem and key.pem; a CA is never replaced.\n";

#define MAX_HOSTS 32

int main(int argc, char **argv)
{
    const char *dns[MAX_HOSTS + 1] = {"localhost"}, *ips[MAX_HOSTS + 2] = {"127.0.0.1", "::1"};
    size_t ndns = 1, nip = 2;
    uint64_t days = 365;
    int force = 0;
    const char *dir = ".", *ca = NULL, *ca_key = NULL;
    nana_key_algo algo = NANA_KEY_ECDSA_P256;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--force")) {
            force = 1;
        } else if (!strcmp(a, "--rsa")) {
            algo = NANA_KEY_RSA_2048;
        } else if (!strcmp(a, "--host") && i + 1 < argc) {
            const char *h = argv[++i];
            unsigned char tmp[16];
            bool ip = inet_pton(AF_INET, h, tmp) == 1 || inet_pton(AF_INET6, h, tmp) == 1;
            if ((ip ? nip : ndns) >= MAX_HOSTS) {
                fprintf(stderr, "nanasqlite-cert-gen: at most %d --host names\n", MAX_HOSTS);
                return 2;
            }
            if (ip)
                ips[nip++] = h;
            else
                dns[ndns++] = h;
        } else if (!strcmp(a, "--days") && i + 1 < argc) {
            if (nana_parse_u64(argv[++i], 1, NANA_CERT_MAX_DAYS, &days)) {
                fprintf(stderr, "nanasqlite-cert-gen: --days must be 1 to %u\n",
                        NANA_CERT_MAX_DAYS);
                return 2;
            }
        } else if (!strcmp(a, "--out-dir") && i + 1 < argc) {
            dir = argv[++i];
        } else if (!strcmp(a, "--ca") && i + 1 < argc) {
            ca = argv[++i];
        } else if (!strcmp(a, "--ca-key") && i + 1 < argc) {
            ca_key = argv[++i];
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage, stdout);
            return 0;
        } else {
            fprintf(stderr, "nanasqlite-cert-gen: unknown option %s\n%s", a, usage);
            return 2;
        }
    }
    if (!ca != !ca_key) {
        fprintf(stderr, "nanasqlite-cert-gen: --ca and --ca-key go together\n%s", usage);
        return 2;
    }
    nana_cert_spec spec = {.common_name = "localhost",
                           .dns_names = dns,
                           .n_dns = ndns,
                           .ip_addrs = ips,
                           .n_ip = nip,
                           .days = (unsigned)days,
                           .algo = algo,
                           .server = 1};
    nana_dev_server_files f;
    if (nana_certgen_dev_server(dir, &spec, ca, ca_key, force, &f)) {
        fprintf(stderr, "nanasqlite-cert-gen: %s%s\n", nana_errmsg(),
                force ? "" : " (use --force to replace it)");
        return 1;
    }
    if (f.ca_made)
        printf("wrote %s and %s: a new development CA (its key, keep it secret)\n", f.ca_cert,
               f.ca_key);
    else
        printf("using the CA %s\n", f.ca_cert);
    printf("wrote %s (the server certificate, then the CA's) and %s (private key, keep it "
           "secret)\n",
           f.cert, f.key);
    printf("clients trust %s (or %s)\n", f.ca_cert, f.cert);
    return 0;
}
