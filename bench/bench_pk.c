/*
 * bench_pk.c - nanasqlite-bench-pk: what GnuTLS's public-key operations
 * cost on this machine, the floor under a QUIC handshake's server CPU
 * (docs/BENCHMARKS.md): an ECDSA P-256 signature (the server's
 * CertificateVerify) and an X25519 key pair (its key share). Prints the
 * median of five rounds of N operations each.
 */
#include "util/nana_opt.h"

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ROUNDS 5

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Microseconds per ECDSA P-256 signature of a SHA-256 digest. */
static double ecdsa_sign_us(gnutls_privkey_t key, unsigned n)
{
    static const unsigned char msg[32] = {1, 2, 3};
    gnutls_datum_t d = {(unsigned char *)(uintptr_t)msg, sizeof(msg)}, sig;
    double t0 = now_s();
    for (unsigned i = 0; i < n; i++) {
        if (gnutls_privkey_sign_data(key, GNUTLS_DIG_SHA256, 0, &d, &sig) < 0) exit(1);
        gnutls_free(sig.data);
    }
    return (now_s() - t0) / n * 1e6;
}

/* Microseconds per X25519 key pair. */
static double x25519_keygen_us(unsigned n)
{
    double t0 = now_s();
    for (unsigned i = 0; i < n; i++) {
        gnutls_privkey_t k;
        if (gnutls_privkey_init(&k) < 0 ||
            gnutls_privkey_generate(k, GNUTLS_PK_ECDH_X25519, 255, 0) < 0)
            exit(1);
        gnutls_privkey_deinit(k);
    }
    return (now_s() - t0) / n * 1e6;
}

int main(int argc, char **argv)
{
    unsigned n = 0;
    static const nana_opt rows[] = {{.name = "ops",
                                     .kind = NANA_OPT_UINT,
                                     .offset = 0,
                                     .size = sizeof(unsigned),
                                     .min = 1,
                                     .max = 1000000,
                                     .def = "2000",
                                     .help = "operations per round"}};
    nana_opt_table table = {rows, 1, &n};
    nana_opt_prog prog = {.name = "nanasqlite-bench-pk",
                          .about = "What an ECDSA P-256 signature and an X25519 key pair cost with "
                                   "GnuTLS here\n(median of five rounds).\n",
                          .tables = &table,
                          .ntables = 1};
    int first;
    int status = nana_opt_report(&prog, nana_opt_parse(&prog, argc, argv, &first));
    if (status >= 0) return status;
    gnutls_privkey_t key;
    if (gnutls_privkey_init(&key) < 0 ||
        gnutls_privkey_generate(key, GNUTLS_PK_ECDSA,
                                GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0) < 0)
        return 1;
    double sign[ROUNDS], kx[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        sign[r] = ecdsa_sign_us(key, (unsigned)n);
        kx[r] = x25519_keygen_us((unsigned)n);
    }
    qsort(sign, ROUNDS, sizeof(double), cmp_double);
    qsort(kx, ROUNDS, sizeof(double), cmp_double);
    printf("GnuTLS %s, median of %d rounds of %llu\n", gnutls_check_version(NULL), ROUNDS,
           (unsigned long long)n);
    printf("ECDSA P-256 sign:  %6.1f us\n", sign[ROUNDS / 2]);
    printf("X25519 key pair:   %6.1f us\n", kx[ROUNDS / 2]);
    gnutls_privkey_deinit(key);
    return 0;
}
