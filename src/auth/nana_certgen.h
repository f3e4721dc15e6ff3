/*
 * nana_certgen.h - X.509 keys and certificates for the server's TLS/QUIC
 * endpoints, made with GnuTLS.
 *
 * One call makes a fresh key pair and a certificate for it, signed either by
 * an existing CA (certificate + key in PEM files) or by the new key itself,
 * and writes both as PEM files (the certificate optionally followed by its
 * issuer's, the chain a server sends): the certificate world-readable (0644), the
 * private key as unencrypted PKCS#8 that is never readable by anyone but the
 * owner (0600 from the moment it exists). A second call computes the SHA-256
 * fingerprints used for pinning. Everything is done in memory before the
 * first file is created, so a failure never leaves half a key pair behind.
 *
 * Errors follow util/nana_err.h: 0 or a negative NANA_ERR_* code with a
 * detail message in nana_errmsg(). Thread-safe: no shared state.
 */
#ifndef NANA_CERTGEN_H
#define NANA_CERTGEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Key algorithm of the generated key pair. */
typedef enum {
    NANA_KEY_ECDSA_P256 = 0, /* ECDSA on NIST P-256, signs with SHA-256 */
    NANA_KEY_RSA_2048 = 1,   /* RSA 2048-bit, PKCS#1 v1.5 with SHA-256 */
    NANA_KEY_ED25519 = 2,    /* Ed25519 (RFC 8410), pure EdDSA: no separate hash */
} nana_key_algo;

/* What to put in the certificate, and whether its file also carries the
 * issuer's certificates. The caller owns every pointer; they are only read
 * during nana_certgen_write(). */
typedef struct nana_cert_spec {
    const char *common_name;      /* subject CN; required, non-empty */
    const char *const *dns_names; /* subjectAltName DNS entries (may be NULL if n_dns == 0) */
    size_t n_dns;
    const char *const *ip_addrs; /* subjectAltName IP entries, textual "127.0.0.1", "::1" */
    size_t n_ip;
    unsigned days;      /* validity: notBefore = now - 1 hour, notAfter = now + days; 1..36500 */
    nana_key_algo algo; /* algorithm of the new key */
    int is_ca;          /* basicConstraints CA:TRUE, keyUsage keyCertSign|cRLSign (plus the
                           leaf usage when server or client is also set) */
    int server;         /* extKeyUsage serverAuth */
    int client;         /* extKeyUsage clientAuth */
    int chain;          /* the certificate file gets the issuer file's certificates after the
                           new one (the chain a TLS server sends); no effect when self-signed */
} nana_cert_spec;

/* Upper bound on nana_cert_spec.days (about 100 years). */
#define NANA_CERT_MAX_DAYS 36500u

/* Most certificates an issuer file may hold when its chain is copied
 * (nana_cert_spec.chain): the issuer and the certificates above it. */
#define NANA_CERT_MAX_CHAIN 8u

/*
 * Generates a new key of spec->algo and an X.509 v3 certificate for it with
 * a random 20-byte serial, subject/authority key identifiers, and key usage
 * digitalSignature (+ keyEncipherment for RSA) for a leaf or keyCertSign |
 * cRLSign for a CA. The certificate is signed (SHA-256; pure EdDSA when the
 * signing key is Ed25519) by the issuer given as two PEM files (the issuer
 * must be a CA and the key must match its certificate), or self-signed when
 * both issuer paths are NULL. Writes cert_path (PEM, mode 0644; with
 * spec->chain and an issuer, the new certificate followed by every
 * certificate of the issuer file, which must then be in chain order, each
 * issued by the next, at most NANA_CERT_MAX_CHAIN of them) and key_path
 * (PKCS#8 PEM, unencrypted, mode 0600; the file is created with mode 0600 so
 * it is never readable by others, even briefly).
 *
 * Without |overwrite| both files are created with O_EXCL and an existing
 * file is refused with NANA_ERR_INVALID ("... exists"); with |overwrite| each
 * file is written to a temporary file in the same directory and renamed over
 * the old one (key first, then certificate). Other errors: NANA_ERR_INVALID
 * (bad spec, bad or mismatched issuer), NANA_ERR_NOTFOUND (issuer file or
 * output directory missing), NANA_ERR_PERM, NANA_ERR_IO, NANA_ERR_NOMEM,
 * NANA_ERR_INTERNAL (GnuTLS failure). On error no new file is left behind
 * (should the final certificate rename fail, the already renamed key is
 * removed as well). The caller owns all arguments; nothing is retained.
 */
int nana_certgen_write(const nana_cert_spec *spec, const char *issuer_cert_pem_path,
                       const char *issuer_key_pem_path, const char *cert_path, const char *key_path,
                       int overwrite);

/*
 * Reads the first certificate of a PEM file and stores the SHA-256 of its DER
 * encoding in cert_sha256 and the SHA-256 of its DER SubjectPublicKeyInfo
 * (the RFC 7469 "pin-sha256" value) in spki_sha256. Both output buffers are
 * owned by the caller and must hold 32 bytes; they are written only on
 * success. Returns 0, NANA_ERR_NOTFOUND / NANA_ERR_PERM / NANA_ERR_IO (reading
 * the file), NANA_ERR_INVALID (not a PEM certificate), NANA_ERR_NOMEM or
 * NANA_ERR_INTERNAL.
 */
int nana_cert_fingerprints(const char *cert_pem_path, uint8_t cert_sha256[32],
                           uint8_t spki_sha256[32]);

/*
 * A server's development credentials, as nanasqlite-cert-gen writes them
 * into a directory. A development CA signs the server certificate, so every
 * TLS stack accepts the result (BoringSSL, for one, refuses a self-signed
 * leaf as its own trust anchor):
 *   ca.pem, ca-key.pem   the CA (CN "nanasqlite development CA" and a
 *                        random tag), kept to issue more certificates
 *   cert.pem             the server certificate followed by the CA's: the
 *                        chain the server sends, and a file clients may
 *                        trust as well as ca.pem
 *   key.pem              the server certificate's key
 * Keys are 0600, certificates 0644.
 */
#define NANA_DEV_CA_FILE     "ca.pem"
#define NANA_DEV_CA_KEY_FILE "ca-key.pem"
#define NANA_DEV_CERT_FILE   "cert.pem"
#define NANA_DEV_KEY_FILE    "key.pem"

/* Validity of a development CA made by nana_certgen_dev_server (10 years;
 * longer when the server certificate asks for more). */
#define NANA_DEV_CA_DAYS 3650u

/* Longest path nana_certgen_dev_server builds, NUL included. */
#define NANA_DEV_PATH_MAX 1024

/* The files nana_certgen_dev_server (or nana_certgen_dev_client) used, for messages. */
typedef struct nana_dev_server_files {
    char ca_cert[NANA_DEV_PATH_MAX]; /* the CA that signed the server certificate */
    char ca_key[NANA_DEV_PATH_MAX];
    char cert[NANA_DEV_PATH_MAX]; /* <dir>/cert.pem, or a client's <dir>/<CN>.pem */
    char key[NANA_DEV_PATH_MAX];  /* <dir>/key.pem, or a client's <dir>/<CN>-key.pem */
    int ca_made;                  /* 1 when this call made the CA */
} nana_dev_server_files;

/*
 * Writes <dir>/cert.pem and <dir>/key.pem: a new key and a certificate of
 * |server| (which must not be a CA; its |chain| is ignored and always on)
 * signed by a CA, with cert.pem holding the certificate then the CA's.
 * The CA is |ca_cert| + |ca_key| when given (both or neither; the CA's
 * files are only read). Otherwise it is <dir>/ca.pem + <dir>/ca-key.pem:
 * used when both exist, made first (a key of |server->algo|, valid
 * NANA_DEV_CA_DAYS or |server->days| if longer) when neither does, and an
 * error when only one does. A CA is never replaced: |overwrite| replaces cert.pem and key.pem
 * only (without it they must not exist, checked before anything is made).
 * On error nothing new is left behind, a CA made by this call included.
 * |dir| must exist. Fills |out| (owned by the caller; may be NULL). Errors
 * as nana_certgen_write, NANA_ERR_INVALID for a too long path.
 */
int nana_certgen_dev_server(const char *dir, const nana_cert_spec *server, const char *ca_cert,
                            const char *ca_key, int overwrite, nana_dev_server_files *out);

/* Longest client name nana_certgen_dev_client takes (an account name's limit). */
#define NANA_DEV_CLIENT_NAME_MAX 64

/*
 * True if |name| may name a client certificate in a directory of
 * development credentials: 1..NANA_DEV_CLIENT_NAME_MAX bytes of
 * A-Z a-z 0-9 _ . @ -, not starting with '.' or '-' (no hidden files, no
 * names read as flags), and none of "ca", "ca-key", "cert", "key", whose
 * files are the CA's and the server's.
 */
bool nana_certgen_client_name_valid(const char *name);

/*
 * Writes <dir>/<CN>.pem and <dir>/<CN>-key.pem (0600): a new key and a
 * client certificate (extKeyUsage clientAuth) of |client|, whose
 * common_name must pass nana_certgen_client_name_valid and which must have
 * |client| set and neither |is_ca| nor |server|; the file holds the
 * certificate alone. The CA is chosen, made and never replaced exactly as
 * for nana_certgen_dev_server, so a server's development CA issues its
 * clients' certificates too. |overwrite| replaces the client's two files
 * only. Fills |out| (cert and key are the client's). Errors as
 * nana_certgen_dev_server.
 */
int nana_certgen_dev_client(const char *dir, const nana_cert_spec *client, const char *ca_cert,
                            const char *ca_key, int overwrite, nana_dev_server_files *out);

/*
 * Writes a development certificate set into |dir| (created 0700 when it
 * does not exist), overwriting earlier files of the same names:
 *   ca.pem, ca.key          a CA ("nanasqlite dev CA")
 *   server.pem, server.key  CN localhost, SAN localhost, 127.0.0.1, ::1; serverAuth
 *   client.pem, client.key  CN |client_cn| (e.g. "alice"); clientAuth
 * and, with |with_untrusted|, a second CA and a client certificate from it
 * (other-ca.pem/.key, rogue.pem/.key, CN "mallory"), for testing refusals.
 * All ECDSA P-256, valid |days| days; keys 0600. For tests, benchmarks and
 * a server's first start on localhost: never for production. Errors as
 * nana_certgen_write.
 */
int nana_certgen_dev_set(const char *dir, const char *client_cn, unsigned days, int with_untrusted);

/* The file names nana_certgen_dev_set writes, in a fixed order:
 * NANA_DEV_* index nana_certgen_dev_names[]. */
enum {
    NANA_DEV_CA,
    NANA_DEV_CA_KEY,
    NANA_DEV_SERVER,
    NANA_DEV_SERVER_KEY,
    NANA_DEV_CLIENT,
    NANA_DEV_CLIENT_KEY,
    NANA_DEV_OTHER_CA,
    NANA_DEV_OTHER_CA_KEY,
    NANA_DEV_ROGUE,
    NANA_DEV_ROGUE_KEY,
    NANA_DEV_FILES
};
extern const char *const nana_certgen_dev_names[NANA_DEV_FILES];

#endif
