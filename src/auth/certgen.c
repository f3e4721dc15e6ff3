/*
 * certgen.c - key pairs and X.509 certificates with GnuTLS.
 *
 * The big idea: do all the cryptography in memory first (load and check the
 * issuer, generate the key, fill in and sign the certificate, export both as
 * PEM), and only then touch the file system. Files are created so that the
 * private key is never readable by anyone but the owner: either O_EXCL with
 * mode 0600, or (when overwriting) a 0600 temporary file in the same
 * directory renamed over the old one. Every GnuTLS object lives in one
 * function with a single cleanup ladder at its end, so each path frees all of
 * them; PEM buffers holding a private key are wiped before they are freed.
 */
#include "auth/nana_certgen.h"

#include "util/nana_buf.h"
#include "util/nana_err.h"
#include "util/nana_file.h"

#include <gnutls/gnutls.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SERIAL_LEN    20         /* RFC 5280 maximum; 158 random bits */
#define KEY_ID_MAX    64         /* room for any key identifier we read */
#define PEM_FILE_MAX  (1u << 20) /* refuse PEM inputs larger than 1 MiB */
#define SECS_PER_DAY  86400
#define BACKDATE_SECS 3600 /* notBefore = now - 1 hour, for clock skew */

/* Turns a GnuTLS failure into |code| (or NANA_ERR_NOMEM when GnuTLS ran out
 * of memory) with a "what: gnutls message" detail. */
static int gtls_fail(int gerr, int code, const char *what)
{
    if (gerr == GNUTLS_E_MEMORY_ERROR) code = NANA_ERR_NOMEM;
    return nana_err_set(code, "%s: %s", what, gnutls_strerror(gerr));
}

/* Frees a buffer from read_file() after overwriting it (it may hold a key). */
static void wipe_free(gnutls_datum_t *d)
{
    if (d->data) {
        gnutls_memset(d->data, 0, d->size);
        free(d->data);
    }
    d->data = NULL;
    d->size = 0;
}

/* Frees a GnuTLS-allocated buffer after overwriting it. */
static void wipe_gnutls_free(gnutls_datum_t *d)
{
    if (d->data) {
        gnutls_memset(d->data, 0, d->size);
        gnutls_free(d->data);
    }
    d->size = 0;
}

/* Reads a whole PEM file of at most PEM_FILE_MAX bytes into |out| (a
 * malloc'd, NUL-terminated buffer; free with wipe_free()). */
static int read_file(const char *path, const char *what, gnutls_datum_t *out)
{
    char *buf;
    size_t len;
    out->data = NULL;
    out->size = 0;
    int rc = nana_file_read(path, what, PEM_FILE_MAX, &buf, &len);
    if (rc) return rc;
    out->data = (unsigned char *)buf;
    out->size = (unsigned)len;
    return NANA_OK;
}

/* Parses a textual IPv4 or IPv6 address into 4 or 16 bytes; returns the
 * length, or 0 if |text| is not an address. */
static unsigned parse_ip(const char *text, unsigned char out[16])
{
    if (!text) return 0;
    if (inet_pton(AF_INET, text, out) == 1) return 4;
    if (inet_pton(AF_INET6, text, out) == 1) return 16;
    return 0;
}

/* Checks the arguments of nana_certgen_write() before any work is done. */
static int check_args(const nana_cert_spec *spec, const char *issuer_cert, const char *issuer_key,
                      const char *cert_path, const char *key_path)
{
    if (!spec) return nana_err_set(NANA_ERR_INVALID, "certificate spec is NULL");
    if (!spec->common_name || !spec->common_name[0])
        return nana_err_set(NANA_ERR_INVALID, "common name is empty");
    if (spec->days < 1 || spec->days > NANA_CERT_MAX_DAYS)
        return nana_err_set(NANA_ERR_INVALID, "validity of %u days is outside 1..%u", spec->days,
                            NANA_CERT_MAX_DAYS);
    if (spec->algo != NANA_KEY_ECDSA_P256 && spec->algo != NANA_KEY_RSA_2048 &&
        spec->algo != NANA_KEY_ED25519)
        return nana_err_set(NANA_ERR_INVALID, "unknown key algorithm %d", (int)spec->algo);
    if (spec->n_dns > 0 && !spec->dns_names)
        return nana_err_set(NANA_ERR_INVALID, "%zu DNS names but no array", spec->n_dns);
    for (size_t i = 0; i < spec->n_dns; i++) {
        if (!spec->dns_names[i] || !spec->dns_names[i][0])
            return nana_err_set(NANA_ERR_INVALID, "DNS name %zu is empty", i);
    }
    if (spec->n_ip > 0 && !spec->ip_addrs)
        return nana_err_set(NANA_ERR_INVALID, "%zu IP addresses but no array", spec->n_ip);
    for (size_t i = 0; i < spec->n_ip; i++) {
        unsigned char ip[16];
        if (!parse_ip(spec->ip_addrs[i], ip))
            return nana_err_set(NANA_ERR_INVALID,
                                "IP address %zu '%.64s' is not an IPv4/IPv6 address", i,
                                spec->ip_addrs[i] ? spec->ip_addrs[i] : "(null)");
    }
    if (!issuer_cert != !issuer_key)
        return nana_err_set(NANA_ERR_INVALID, "issuer needs both a certificate and a key path");
    if (!cert_path || !cert_path[0] || !key_path || !key_path[0])
        return nana_err_set(NANA_ERR_INVALID, "certificate and key paths are required");
    if (strcmp(cert_path, key_path) == 0)
        return nana_err_set(NANA_ERR_INVALID, "certificate and key paths are the same");
    return 0;
}

/* The certificates of an issuer's PEM file: the issuer itself first, then
 * (for a chain file) the certificates above it. */
typedef struct {
    gnutls_x509_crt_t *crts; /* GnuTLS-allocated array; NULL when there is no issuer */
    unsigned n;
} issuer_chain;

/* Frees every certificate of |c| and the array. NULL-safe. */
static void issuer_chain_free(issuer_chain *c)
{
    for (unsigned i = 0; i < c->n; i++)
        gnutls_x509_crt_deinit(c->crts[i]);
    if (c->crts) gnutls_free(c->crts);
    c->crts = NULL;
    c->n = 0;
}

/*
 * Loads the issuer's certificates and key from PEM files into *chain and
 * *key (the caller frees both, also on failure) and checks that the first
 * certificate is a CA allowed to sign certificates and that the key belongs
 * to it. With |sorted| the file must hold at most NANA_CERT_MAX_CHAIN
 * certificates, each issued by the next (the order a chain is sent in).
 */
static int load_issuer(const char *cert_path, const char *key_path, int sorted, issuer_chain *chain,
                       gnutls_x509_privkey_t *key)
{
    gnutls_datum_t pem = {NULL, 0};
    int rc = read_file(cert_path, "issuer certificate", &pem);
    if (rc) return rc;
    unsigned flags = sorted ? GNUTLS_X509_CRT_LIST_FAIL_IF_UNSORTED : 0;
    int g = gnutls_x509_crt_list_import2(&chain->crts, &chain->n, &pem, GNUTLS_X509_FMT_PEM, flags);
    wipe_free(&pem);
    if (g == GNUTLS_E_CERTIFICATE_LIST_UNSORTED)
        return nana_err_set(NANA_ERR_INVALID,
                            "issuer certificate %s: each certificate must be followed by its "
                            "issuer's",
                            cert_path);
    if (g < 0) return gtls_fail(g, NANA_ERR_INVALID, "issuer certificate");
    if (chain->n == 0)
        return nana_err_set(NANA_ERR_INVALID, "issuer certificate %s holds no certificate",
                            cert_path);
    if (sorted && chain->n > NANA_CERT_MAX_CHAIN)
        return nana_err_set(NANA_ERR_INVALID,
                            "issuer certificate %s holds %u certificates, the limit is %u",
                            cert_path, chain->n, NANA_CERT_MAX_CHAIN);
    gnutls_x509_crt_t crt = chain->crts[0];

    rc = read_file(key_path, "issuer key", &pem);
    if (rc) return rc;
    g = gnutls_x509_privkey_init(key);
    if (g >= 0) g = gnutls_x509_privkey_import2(*key, &pem, GNUTLS_X509_FMT_PEM, NULL, 0);
    wipe_free(&pem);
    if (g < 0) return gtls_fail(g, NANA_ERR_INVALID, "issuer key (PEM, unencrypted)");

    unsigned critical = 0, is_ca = 0;
    int pathlen = -1;
    g = gnutls_x509_crt_get_basic_constraints(crt, &critical, &is_ca, &pathlen);
    if (g < 0 || !is_ca)
        return nana_err_set(NANA_ERR_INVALID, "issuer certificate %s is not a CA", cert_path);
    unsigned usage = 0;
    g = gnutls_x509_crt_get_key_usage(crt, &usage, &critical);
    if (g >= 0 && !(usage & GNUTLS_KEY_KEY_CERT_SIGN))
        return nana_err_set(NANA_ERR_INVALID, "issuer certificate %s may not sign certificates",
                            cert_path);

    unsigned char crt_id[KEY_ID_MAX], key_id[KEY_ID_MAX];
    size_t crt_len = sizeof(crt_id), key_len = sizeof(key_id);
    g = gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA256, crt_id, &crt_len);
    if (g < 0) return gtls_fail(g, NANA_ERR_INVALID, "issuer certificate key id");
    g = gnutls_x509_privkey_get_key_id(*key, GNUTLS_KEYID_USE_SHA256, key_id, &key_len);
    if (g < 0) return gtls_fail(g, NANA_ERR_INVALID, "issuer key id");
    if (crt_len != key_len || memcmp(crt_id, key_id, crt_len) != 0)
        return nana_err_set(NANA_ERR_INVALID, "issuer key %s does not match certificate %s",
                            key_path, cert_path);
    return 0;
}

/* Generates a fresh key of |algo| into *key (caller deinits it). */
static int generate_key(nana_key_algo algo, gnutls_x509_privkey_t *key)
{
    gnutls_pk_algorithm_t pk;
    unsigned bits;
    switch (algo) {
    case NANA_KEY_ECDSA_P256:
        pk = GNUTLS_PK_ECDSA;
        bits = GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1);
        break;
    case NANA_KEY_RSA_2048:
        pk = GNUTLS_PK_RSA;
        bits = 2048;
        break;
    case NANA_KEY_ED25519:
        pk = GNUTLS_PK_EDDSA_ED25519;
        bits = GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_ED25519);
        break;
    default:
        return nana_err_set(NANA_ERR_INVALID, "unknown key algorithm %d", (int)algo);
    }
    int g = gnutls_x509_privkey_init(key);
    if (g >= 0) g = gnutls_x509_privkey_generate2(*key, pk, bits, 0, NULL, 0);
    if (g < 0) return gtls_fail(g, NANA_ERR_INTERNAL, "key generation");
    return 0;
}

/* Sets a random positive SERIAL_LEN-byte serial. The top bit is cleared (the
 * INTEGER is positive) and the next one set, so the encoding is always
 * exactly SERIAL_LEN bytes with no leading zero octet to strip. */
static int set_random_serial(gnutls_x509_crt_t crt)
{
    unsigned char serial[SERIAL_LEN];
    int g = gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof(serial));
    if (g < 0) return gtls_fail(g, NANA_ERR_INTERNAL, "random serial");
    serial[0] = (unsigned char)((serial[0] & 0x7f) | 0x40);
    g = gnutls_x509_crt_set_serial(crt, serial, sizeof(serial));
    if (g < 0) return gtls_fail(g, NANA_ERR_INTERNAL, "set serial");
    return 0;
}

/* Adds the subjectAltName entries of |spec| (DNS names, then IP addresses,
 * which GnuTLS wants as 4 or 16 raw bytes, not text). */
static int set_alt_names(gnutls_x509_crt_t crt, const nana_cert_spec *spec)
{
    for (size_t i = 0; i < spec->n_dns; i++) {
        const char *name = spec->dns_names[i];
        int g = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, name,
                                                     (unsigned)strlen(name), GNUTLS_FSAN_APPEND);
        if (g < 0) {
            return nana_err_set(g == GNUTLS_E_MEMORY_ERROR ? NANA_ERR_NOMEM : NANA_ERR_INVALID,
                                "DNS name '%.64s': %s", name, gnutls_strerror(g));
        }
    }
    for (size_t i = 0; i < spec->n_ip; i++) {
        unsigned char ip[16];
        unsigned len = parse_ip(spec->ip_addrs[i], ip);
        int g = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, ip, len,
                                                     GNUTLS_FSAN_APPEND);
        if (g < 0) return gtls_fail(g, NANA_ERR_INTERNAL, "IP address alt name");
    }
    return 0;
}

/* Sets keyUsage, basicConstraints and extKeyUsage from |spec|. A CA that is
 * also a TLS server or client gets the leaf usages too, or TLS peers would
 * refuse its handshake signatures. */
static int set_usage(gnutls_x509_crt_t crt, const nana_cert_spec *spec)
{
    unsigned usage = 0;
    if (spec->is_ca) usage |= GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN;
    if (!spec->is_ca || spec->server || spec->client) {
        usage |= GNUTLS_KEY_DIGITAL_SIGNATURE;
        if (spec->algo == NANA_KEY_RSA_2048) usage |= GNUTLS_KEY_KEY_ENCIPHERMENT;
    }
    int g = gnutls_x509_crt_set_key_usage(crt, usage);
    if (g < 0) return gtls_fail(g, NANA_ERR_INTERNAL, "key usage");
    g = gnutls_x509_crt_set_basic_constraints(crt, spec->is_ca ? 1 : 0, -1);
    if (g < 0) return gtls_fail(g, NANA_ERR_INTERNAL, "basic constraints");
    if (spec->server) {
        g = gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0);
        if (g < 0) return gtls_fail(g, NANA_ERR_INTERNAL, "serverAuth key purpose");
    }
    if (spec->client) {
        g = gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_CLIENT, 0);
        if (g < 0) return gtls_fail(g, NANA_ERR_INTERNAL, "clientAuth key purpose");
    }
    return 0;
}

/*
 * Sets subjectKeyIdentifier (GnuTLS's SHA-1 key id of our SubjectPublicKeyInfo)
 * and authorityKeyIdentifier: the issuer's own subjectKeyIdentifier if it has
 * one, else its key id; our own id when |issuer| is NULL (self-signed).
 */
static int set_key_ids(gnutls_x509_crt_t crt, gnutls_x509_crt_t issuer)
{
    unsigned char ski[KEY_ID_MAX], aki[KEY_ID_MAX];
    size_t ski_len = sizeof(ski), aki_len = sizeof(aki);
    int g = gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA1, ski, &ski_len);
    if (g < 0) return gtls_fail(g, NANA_ERR_INTERNAL, "subject key id");
    g = gnutls_x509_crt_set_subject_key_id(crt, ski, ski_len);
    if (g < 0) return gtls_fail(g, NANA_ERR_INTERNAL, "set subject key id");
    if (issuer) {
        unsigned critical = 0;
        g = gnutls_x509_crt_get_subject_key_id(issuer, aki, &aki_len, &critical);
        if (g < 0) {
            aki_len = sizeof(aki);
            g = gnutls_x509_crt_get_key_id(issuer, GNUTLS_KEYID_USE_SHA1, aki, &aki_len);
        }
        if (g < 0) return gtls_fail(g, NANA_ERR_INVALID, "issuer key id");
    } else {
        memcpy(aki, ski, ski_len);
        aki_len = ski_len;
    }
    g = gnutls_x509_crt_set_authority_key_id(crt, aki, aki_len);
    if (g < 0) return gtls_fail(g, NANA_ERR_INTERNAL, "set authority key id");
    return 0;
}

/* Fills in everything but the signature: version, serial, subject, validity,
 * public key and extensions. |issuer| is NULL for a self-signed certificate. */
static int fill_cert(gnutls_x509_crt_t crt, const nana_cert_spec *spec, gnutls_x509_privkey_t key,
                     gnutls_x509_crt_t issuer)
{
    int g = gnutls_x509_crt_set_version(crt, 3);
    if (g < 0) return gtls_fail(g, NANA_ERR_INTERNAL, "set version");
    int rc = set_random_serial(crt);
    if (rc) return rc;
    const char *cn = spec->common_name;
    g = gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn,
                                      (unsigned)strlen(cn));
    if (g < 0) return gtls_fail(g, NANA_ERR_INVALID, "common name");
    time_t now = time(NULL);
    g = gnutls_x509_crt_set_activation_time(crt, now - BACKDATE_SECS);
    if (g >= 0)
        g = gnutls_x509_crt_set_expiration_time(crt, now + (time_t)spec->days * SECS_PER_DAY);
    if (g < 0) return gtls_fail(g, NANA_ERR_INTERNAL, "validity");
    g = gnutls_x509_crt_set_key(crt, key);
    if (g < 0) return gtls_fail(g, NANA_ERR_INTERNAL, "set public key");
    rc = set_alt_names(crt, spec);
    if (rc) return rc;
    rc = set_usage(crt, spec);
    if (rc) return rc;
    return set_key_ids(crt, issuer);
}

/* Signs |crt| with |signer_key| as |signer|: SHA-256 for RSA and ECDSA keys;
 * Ed25519 is pure EdDSA and takes no separate digest (see the header). */
static int sign_cert(gnutls_x509_crt_t crt, gnutls_x509_crt_t signer,
                     gnutls_x509_privkey_t signer_key)
{
    gnutls_digest_algorithm_t dig = GNUTLS_DIG_SHA256;
    if (gnutls_x509_privkey_get_pk_algorithm2(signer_key, NULL) == GNUTLS_PK_EDDSA_ED25519)
        dig = GNUTLS_DIG_UNKNOWN;
    int g = gnutls_x509_crt_sign2(crt, signer, signer_key, dig, 0);
    if (g < 0) return gtls_fail(g, NANA_ERR_INTERNAL, "signing the certificate");
    return 0;
}

/* Appends |crt| as one PEM block to |out|. */
static int append_pem(gnutls_x509_crt_t crt, nana_buf *out)
{
    gnutls_datum_t pem = {NULL, 0};
    int g = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &pem);
    if (g < 0) return gtls_fail(g, NANA_ERR_INTERNAL, "certificate export");
    int rc = nana_buf_append(out, pem.data, pem.size);
    gnutls_free(pem.data);
    return rc;
}

/* Builds the certificate file's text in |out| (the caller frees it with
 * nana_buf_free): |crt| as PEM, then, when |chain| is set, every issuer
 * certificate in the order of the issuer's file, each re-encoded from its
 * parsed form so nothing but certificates reaches the file. */
static int export_cert_file(gnutls_x509_crt_t crt, const issuer_chain *issuers, int chain,
                            nana_buf *out)
{
    int rc = append_pem(crt, out);
    for (unsigned i = 0; rc == 0 && chain && i < issuers->n; i++)
        rc = append_pem(issuers->crts[i], out);
    return rc;
}

int nana_certgen_write(const nana_cert_spec *spec, const char *issuer_cert_pem_path,
                       const char *issuer_key_pem_path, const char *cert_path, const char *key_path,
                       int overwrite)
{
    int rc = check_args(spec, issuer_cert_pem_path, issuer_key_pem_path, cert_path, key_path);
    if (rc) return rc;
    if (!overwrite) {
        /* Fail fast, before a possibly slow key generation. */
        rc = nana_file_refuse_existing(key_path, "key file");
        if (rc == 0) rc = nana_file_refuse_existing(cert_path, "certificate file");
        if (rc) return rc;
    }

    issuer_chain issuers = {NULL, 0};
    gnutls_x509_crt_t issuer_crt = NULL, crt = NULL; /* issuer_crt: issuers.crts[0] */
    gnutls_x509_privkey_t issuer_key = NULL, key = NULL;
    gnutls_datum_t key_pem = {NULL, 0};
    nana_buf cert_file;
    nana_buf_init(&cert_file, 0);
    int g;

    if (issuer_cert_pem_path) {
        rc = load_issuer(issuer_cert_pem_path, issuer_key_pem_path, spec->chain, &issuers,
                         &issuer_key);
        if (rc) goto out;
        issuer_crt = issuers.crts[0];
    }
    rc = generate_key(spec->algo, &key);
    if (rc) goto out;
    g = gnutls_x509_crt_init(&crt);
    if (g < 0) {
        rc = gtls_fail(g, NANA_ERR_INTERNAL, "certificate init");
        goto out;
    }
    rc = fill_cert(crt, spec, key, issuer_crt);
    if (rc) goto out;
    rc = issuer_crt ? sign_cert(crt, issuer_crt, issuer_key) : sign_cert(crt, crt, key);
    if (rc) goto out;
    rc = export_cert_file(crt, &issuers, spec->chain, &cert_file);
    if (rc) goto out;
    g = gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN,
                                          &key_pem);
    if (g < 0) {
        rc = gtls_fail(g, NANA_ERR_INTERNAL, "key export");
        goto out;
    }
    rc = nana_file_write_pair(key_path, key_pem.data, key_pem.size, "key file", cert_path,
                              cert_file.data, cert_file.len, "certificate file", overwrite);

out:
    wipe_gnutls_free(&key_pem);
    nana_buf_free(&cert_file);
    if (crt) gnutls_x509_crt_deinit(crt);
    if (key) gnutls_x509_privkey_deinit(key);
    issuer_chain_free(&issuers);
    if (issuer_key) gnutls_x509_privkey_deinit(issuer_key);
    return rc;
}

int nana_cert_fingerprints(const char *cert_pem_path, uint8_t cert_sha256[32],
                           uint8_t spki_sha256[32])
{
    if (!cert_pem_path || !cert_sha256 || !spki_sha256)
        return nana_err_set(NANA_ERR_INVALID, "certificate path and outputs are required");

    gnutls_datum_t pem = {NULL, 0}, spki = {NULL, 0};
    gnutls_x509_crt_t crt = NULL;
    gnutls_pubkey_t pub = NULL;
    uint8_t cert_fp[32], spki_fp[32];
    size_t fp_len = sizeof(cert_fp);

    int rc = read_file(cert_pem_path, "certificate", &pem);
    if (rc) return rc;
    int g = gnutls_x509_crt_init(&crt);
    if (g < 0) {
        rc = gtls_fail(g, NANA_ERR_INTERNAL, "certificate init");
        goto out;
    }
    g = gnutls_x509_crt_import(crt, &pem, GNUTLS_X509_FMT_PEM);
    if (g < 0) {
        rc = gtls_fail(g, NANA_ERR_INVALID, "certificate");
        goto out;
    }
    g = gnutls_x509_crt_get_fingerprint(crt, GNUTLS_DIG_SHA256, cert_fp, &fp_len);
    if (g < 0 || fp_len != sizeof(cert_fp)) {
        rc = gtls_fail(g < 0 ? g : GNUTLS_E_INTERNAL_ERROR, NANA_ERR_INTERNAL, "fingerprint");
        goto out;
    }
    g = gnutls_pubkey_init(&pub);
    if (g >= 0) g = gnutls_pubkey_import_x509(pub, crt, 0);
    if (g >= 0) g = gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, &spki);
    if (g >= 0) g = gnutls_hash_fast(GNUTLS_DIG_SHA256, spki.data, spki.size, spki_fp);
    if (g < 0) {
        rc = gtls_fail(g, NANA_ERR_INTERNAL, "public key hash");
        goto out;
    }
    memcpy(cert_sha256, cert_fp, sizeof(cert_fp));
    memcpy(spki_sha256, spki_fp, sizeof(spki_fp));

out:
    if (spki.data) gnutls_free(spki.data);
    if (pub) gnutls_pubkey_deinit(pub);
    if (crt) gnutls_x509_crt_deinit(crt);
    wipe_free(&pem);
    return rc;
}
