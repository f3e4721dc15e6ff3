/*
 * certgen_devca.c - a server's development credentials: a development CA
 * kept in the server's directory and a server certificate it signs, written
 * with the CA's certificate after it (see nana_certgen_dev_server).
 *
 * The big idea: a self-signed leaf is its own trust anchor only for some TLS
 * stacks (OpenSSL and GnuTLS accept it, BoringSSL does not), while a leaf
 * issued by a CA is what every stack expects. The CA is made once and then
 * reused, never replaced, so clients that trust it keep working when the
 * server certificate is issued again, and more certificates (another
 * server's, a client's) can come from it later: a client certificate
 * issued from it (nana_certgen_dev_client) is what a server started with
 * --client-ca ca.pem accepts for mutual TLS.
 */
#include "auth/nana_certgen.h"

#include "util/nana_err.h"
#include "util/nana_file.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Writes "<dir>/<name>" into |out| (NANA_DEV_PATH_MAX bytes). */
static int dev_path(char *out, const char *dir, const char *name)
{
    int n = snprintf(out, NANA_DEV_PATH_MAX, "%s/%s", dir, name);
    if (n < 0 || n >= NANA_DEV_PATH_MAX)
        return nana_err_set(NANA_ERR_INVALID, "the directory name %.64s... is too long", dir);
    return 0;
}

/* 1 if |path| names anything (even a dangling symlink), else 0. */
static int path_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* Makes a new development CA as |cert| + |key| (never replacing a file),
 * with a key of |algo| valid |days| days. Its common name carries a random
 * tag so two development CAs in one trust store are told apart. */
static int make_ca(const char *cert, const char *key, nana_key_algo algo, unsigned days)
{
    unsigned char tag[4];
    int g = gnutls_rnd(GNUTLS_RND_NONCE, tag, sizeof(tag));
    if (g < 0) return nana_err_set(NANA_ERR_INTERNAL, "random CA tag: %s", gnutls_strerror(g));
    char cn[64];
    snprintf(cn, sizeof(cn), "nanasqlite development CA %02x%02x%02x%02x", tag[0], tag[1], tag[2],
             tag[3]);
    nana_cert_spec ca = {.common_name = cn, .days = days, .algo = algo, .is_ca = 1};
    return nana_certgen_write(&ca, NULL, NULL, cert, key, 0);
}

/* Picks the CA: the caller's files, or <dir>/ca.pem + <dir>/ca-key.pem,
 * made when neither exists (f->ca_made is then 1) with |leaf|'s algorithm
 * and at least its validity. Fills f->ca_cert and f->ca_key. */
static int choose_ca(const char *dir, const nana_cert_spec *leaf, const char *ca_cert,
                     const char *ca_key, nana_dev_server_files *f)
{
    f->ca_made = 0;
    if (ca_cert) {
        if (strlen(ca_cert) >= NANA_DEV_PATH_MAX || strlen(ca_key) >= NANA_DEV_PATH_MAX)
            return nana_err_set(NANA_ERR_INVALID, "the CA file name is too long");
        snprintf(f->ca_cert, sizeof(f->ca_cert), "%s", ca_cert);
        snprintf(f->ca_key, sizeof(f->ca_key), "%s", ca_key);
        return 0;
    }
    int rc = dev_path(f->ca_cert, dir, NANA_DEV_CA_FILE);
    if (rc == 0) rc = dev_path(f->ca_key, dir, NANA_DEV_CA_KEY_FILE);
    if (rc) return rc;
    int have_cert = path_exists(f->ca_cert), have_key = path_exists(f->ca_key);
    if (have_cert && have_key) return 0;
    if (have_cert || have_key)
        return nana_err_set(NANA_ERR_INVALID,
                            "%s exists but %s does not: restore it, or remove %s to start a new "
                            "development CA",
                            have_cert ? f->ca_cert : f->ca_key, have_cert ? f->ca_key : f->ca_cert,
                            have_cert ? f->ca_cert : f->ca_key);
    unsigned days = leaf->days > NANA_DEV_CA_DAYS ? leaf->days : NANA_DEV_CA_DAYS;
    rc = make_ca(f->ca_cert, f->ca_key, leaf->algo, days);
    if (rc == 0) f->ca_made = 1;
    return rc;
}

/*
 * Issues |leaf| from the CA that choose_ca picks, as <dir>/<cert_name> and
 * <dir>/<key_name>; |chain| appends the CA's certificate. Fills |out|.
 */
static int dev_issue(const char *dir, const nana_cert_spec *leaf_spec, const char *cert_name,
                     const char *key_name, int chain, const char *ca_cert, const char *ca_key,
                     int overwrite, nana_dev_server_files *out)
{
    if (!ca_cert != !ca_key || (ca_cert && (!*ca_cert || !*ca_key)))
        return nana_err_set(NANA_ERR_INVALID, "a CA needs both its certificate and its key");
    nana_dev_server_files f;
    memset(&f, 0, sizeof(f));
    int rc = dev_path(f.cert, dir, cert_name);
    if (rc == 0) rc = dev_path(f.key, dir, key_name);
    if (rc == 0 && !overwrite) {
        /* Refuse before a CA is made for a certificate that cannot be written. */
        rc = nana_file_refuse_existing(f.key, "key file");
        if (rc == 0) rc = nana_file_refuse_existing(f.cert, "certificate file");
    }
    if (rc == 0) rc = choose_ca(dir, leaf_spec, ca_cert, ca_key, &f);
    if (rc) return rc;

    nana_cert_spec leaf = *leaf_spec;
    leaf.chain = chain;
    rc = nana_certgen_write(&leaf, f.ca_cert, f.ca_key, f.cert, f.key, overwrite);
    if (rc && f.ca_made) {
        /* A new CA that signed nothing is useless: leave nothing behind. */
        unlink(f.ca_key);
        unlink(f.ca_cert);
        f.ca_made = 0;
    }
    if (rc == 0 && out) *out = f;
    return rc;
}

int nana_certgen_dev_server(const char *dir, const nana_cert_spec *server, const char *ca_cert,
                            const char *ca_key, int overwrite, nana_dev_server_files *out)
{
    if (!dir || !*dir || !server)
        return nana_err_set(NANA_ERR_INVALID, "a directory and a server certificate are needed");
    if (server->is_ca)
        return nana_err_set(NANA_ERR_INVALID, "the server certificate must not be a CA");
    return dev_issue(dir, server, NANA_DEV_CERT_FILE, NANA_DEV_KEY_FILE, 1, ca_cert, ca_key,
                     overwrite, out);
}

bool nana_certgen_client_name_valid(const char *name)
{
    static const char *const taken[] = {"ca", "ca-key", "cert", "key"};
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > NANA_DEV_CLIENT_NAME_MAX || name[0] == '.' || name[0] == '-') return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '.' || c == '@' || c == '-';
        if (!ok) return false;
    }
    for (size_t i = 0; i < sizeof(taken) / sizeof(taken[0]); i++)
        if (strcmp(name, taken[i]) == 0) return false;
    return true;
}

int nana_certgen_dev_client(const char *dir, const nana_cert_spec *client, const char *ca_cert,
                            const char *ca_key, int overwrite, nana_dev_server_files *out)
{
    if (!dir || !*dir || !client)
        return nana_err_set(NANA_ERR_INVALID, "a directory and a client certificate are needed");
    if (client->is_ca || client->server || !client->client)
        return nana_err_set(
            NANA_ERR_INVALID,
            "a client certificate is for TLS clients only (not a CA, not a server)");
    if (!nana_certgen_client_name_valid(client->common_name))
        return nana_err_set(NANA_ERR_INVALID,
                            "a client name is 1..%d of A-Z a-z 0-9 _ . @ -, not starting with . "
                            "or -, and not ca, ca-key, cert or key (the server's files)",
                            NANA_DEV_CLIENT_NAME_MAX);
    char cert_name[NANA_DEV_CLIENT_NAME_MAX + 8], key_name[NANA_DEV_CLIENT_NAME_MAX + 16];
    snprintf(cert_name, sizeof(cert_name), "%s.pem", client->common_name);
    snprintf(key_name, sizeof(key_name), "%s-key.pem", client->common_name);
    return dev_issue(dir, client, cert_name, key_name, 0, ca_cert, ca_key, overwrite, out);
}
