/*
 * test_certgen.c - nana_certgen_write() and nana_cert_fingerprints().
 *
 * Each test gets a fresh scratch directory. Generated certificates are read
 * back and checked with GnuTLS itself: chains verify against the CA through a
 * trust list (with the key purpose and hostname), host names and IP addresses
 * match, the extensions say what the spec asked for, and the files have the
 * right modes and refuse to be overwritten without the flag.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "auth/nana_certgen.h"
#include "util/nana_err.h"

#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    char dir[512];
} scratch;

/* Path "<scratch dir>/<name>" in a static rotating buffer: only for
 * immediate use as an argument (8 calls later it is overwritten). Paths that
 * live longer are copied with sp_copy(). */
static const char *sp(const scratch *s, const char *name)
{
    static char bufs[8][1024];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, sizeof(bufs[0]), "%s/%s", s->dir, name);
    return b;
}

/* Copies the path "<scratch dir>/<name>" into the caller's |out|. */
static const char *sp_copy(const scratch *s, const char *name, char out[1024])
{
    snprintf(out, 1024, "%s", sp(s, name));
    return out;
}

static int setup(void **state)
{
    scratch *s = calloc(1, sizeof(*s));
    if (!s) return -1;
    const char *tmp = getenv("NANA_TEST_TMP");
    if (!tmp || !tmp[0]) tmp = "/tmp";
    mkdir(tmp, 0755);
    snprintf(s->dir, sizeof(s->dir), "%s/certgen-XXXXXX", tmp);
    if (!mkdtemp(s->dir)) {
        free(s);
        return -1;
    }
    *state = s;
    return 0;
}

/* Removes |path| and, when it is a directory, everything in it. */
static void remove_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (d) {
            struct dirent *e;
            while ((e = readdir(d)) != NULL) {
                if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
                char sub[1024];
                snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
                remove_tree(sub);
            }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

static int teardown(void **state)
{
    scratch *s = *state;
    remove_tree(s->dir);
    free(s);
    return 0;
}

/* Number of entries in directory |path| besides . and .. */
static int count_in(const char *path)
{
    int n = 0;
    DIR *d = opendir(path);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) n++;
    }
    closedir(d);
    return n;
}

/* Number of entries in the scratch directory besides . and .. */
static int count_files(const scratch *s)
{
    return count_in(s->dir);
}

static gnutls_x509_crt_t load_crt(const char *path)
{
    gnutls_datum_t d = {NULL, 0};
    assert_int_equal(gnutls_load_file(path, &d), 0);
    gnutls_x509_crt_t crt;
    assert_int_equal(gnutls_x509_crt_init(&crt), 0);
    assert_int_equal(gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM), 0);
    gnutls_free(d.data);
    return crt;
}

static gnutls_x509_privkey_t load_key(const char *path)
{
    gnutls_datum_t d = {NULL, 0};
    assert_int_equal(gnutls_load_file(path, &d), 0);
    assert_non_null(strstr((const char *)d.data, "-----BEGIN PRIVATE KEY-----"));
    gnutls_x509_privkey_t key;
    assert_int_equal(gnutls_x509_privkey_init(&key), 0);
    assert_int_equal(gnutls_x509_privkey_import2(key, &d, GNUTLS_X509_FMT_PEM, NULL, 0), 0);
    gnutls_free(d.data);
    return key;
}

static int file_mode(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (int)(st.st_mode & 07777);
}

/*
 * Verifies |leaf_path| against the single trust anchor |ca_path|, asking for
 * key purpose |purpose| (or none) and host name |host| (or none). Returns the
 * GnuTLS verification status: 0 means trusted.
 */
static unsigned verify_with(const char *ca_path, const char *leaf_path, const char *purpose,
                            const char *host)
{
    gnutls_x509_trust_list_t tl;
    assert_int_equal(gnutls_x509_trust_list_init(&tl, 0), 0);
    gnutls_x509_crt_t ca = load_crt(ca_path);
    assert_int_equal(gnutls_x509_trust_list_add_cas(tl, &ca, 1, 0), 1); /* list owns ca */
    gnutls_x509_crt_t leaf = load_crt(leaf_path);
    gnutls_typed_vdata_st vdata[2];
    unsigned n = 0;
    if (purpose) {
        vdata[n].type = GNUTLS_DT_KEY_PURPOSE_OID;
        vdata[n].data = (unsigned char *)(uintptr_t)purpose;
        vdata[n].size = 0;
        n++;
    }
    if (host) {
        vdata[n].type = GNUTLS_DT_DNS_HOSTNAME;
        vdata[n].data = (unsigned char *)(uintptr_t)host;
        vdata[n].size = 0;
        n++;
    }
    unsigned status = ~0u;
    assert_int_equal(
        gnutls_x509_trust_list_verify_crt2(tl, &leaf, 1, n ? vdata : NULL, n, 0, &status, NULL), 0);
    gnutls_x509_crt_deinit(leaf);
    gnutls_x509_trust_list_deinit(tl, 1);
    return status;
}

static const char *const k_dns[] = {"localhost"};
static const char *const k_ips[] = {"127.0.0.1", "::1"};

static nana_cert_spec ca_spec(nana_key_algo algo)
{
    nana_cert_spec s = {.common_name = "nanasqlite test CA", .days = 30, .algo = algo, .is_ca = 1};
    return s;
}

static nana_cert_spec server_spec(nana_key_algo algo)
{
    nana_cert_spec s = {.common_name = "localhost",
                        .dns_names = k_dns,
                        .n_dns = 1,
                        .ip_addrs = k_ips,
                        .n_ip = 2,
                        .days = 7,
                        .algo = algo,
                        .server = 1};
    return s;
}

static nana_cert_spec client_spec(nana_key_algo algo)
{
    nana_cert_spec s = {.common_name = "client-1", .days = 7, .algo = algo, .client = 1};
    return s;
}

/* Makes a CA and a server and client certificate signed by it, all with the
 * given algorithms, as ca/srv/cli .crt/.key in the scratch dir. */
static void make_pki(const scratch *s, nana_key_algo ca_algo, nana_key_algo leaf_algo)
{
    nana_cert_spec ca = ca_spec(ca_algo), srv = server_spec(leaf_algo),
                   cli = client_spec(leaf_algo);
    int rc = nana_certgen_write(&ca, NULL, NULL, sp(s, "ca.crt"), sp(s, "ca.key"), 0);
    assert_int_equal(rc, 0);
    rc = nana_certgen_write(&srv, sp(s, "ca.crt"), sp(s, "ca.key"), sp(s, "srv.crt"),
                            sp(s, "srv.key"), 0);
    if (rc) fprintf(stderr, "server: %s\n", nana_errmsg());
    assert_int_equal(rc, 0);
    rc = nana_certgen_write(&cli, sp(s, "ca.crt"), sp(s, "ca.key"), sp(s, "cli.crt"),
                            sp(s, "cli.key"), 0);
    assert_int_equal(rc, 0);
}

/* The key file holds the private half of the certificate's public key. */
static void assert_key_matches(const char *crt_path, const char *key_path)
{
    gnutls_x509_crt_t crt = load_crt(crt_path);
    gnutls_x509_privkey_t key = load_key(key_path);
    unsigned char a[64], b[64];
    size_t alen = sizeof(a), blen = sizeof(b);
    assert_int_equal(gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA256, a, &alen), 0);
    assert_int_equal(gnutls_x509_privkey_get_key_id(key, GNUTLS_KEYID_USE_SHA256, b, &blen), 0);
    assert_int_equal(alen, blen);
    assert_memory_equal(a, b, alen);
    gnutls_x509_privkey_deinit(key);
    gnutls_x509_crt_deinit(crt);
}

static void test_server_client_chain(void **state)
{
    scratch *s = *state;
    make_pki(s, NANA_KEY_ECDSA_P256, NANA_KEY_ECDSA_P256);

    assert_int_equal(verify_with(sp(s, "ca.crt"), sp(s, "srv.crt"), NULL, NULL), 0);
    assert_int_equal(verify_with(sp(s, "ca.crt"), sp(s, "cli.crt"), NULL, NULL), 0);
    assert_int_equal(
        verify_with(sp(s, "ca.crt"), sp(s, "srv.crt"), GNUTLS_KP_TLS_WWW_SERVER, "localhost"), 0);
    assert_int_equal(
        verify_with(sp(s, "ca.crt"), sp(s, "srv.crt"), GNUTLS_KP_TLS_WWW_SERVER, "127.0.0.1"), 0);
    assert_int_equal(verify_with(sp(s, "ca.crt"), sp(s, "cli.crt"), GNUTLS_KP_TLS_WWW_CLIENT, NULL),
                     0);
    /* Purpose and name are enforced: the server cert is not a client cert. */
    assert_int_not_equal(
        verify_with(sp(s, "ca.crt"), sp(s, "srv.crt"), GNUTLS_KP_TLS_WWW_CLIENT, NULL), 0);
    assert_int_not_equal(verify_with(sp(s, "ca.crt"), sp(s, "srv.crt"), NULL, "example.com"), 0);
    /* The CA verifies itself; the leaf is not a trust anchor for anything. */
    assert_int_equal(verify_with(sp(s, "ca.crt"), sp(s, "ca.crt"), NULL, NULL), 0);
    assert_int_not_equal(verify_with(sp(s, "srv.crt"), sp(s, "cli.crt"), NULL, NULL), 0);

    gnutls_x509_crt_t srv = load_crt(sp(s, "srv.crt"));
    assert_true(gnutls_x509_crt_check_hostname(srv, "localhost"));
    assert_true(gnutls_x509_crt_check_hostname(srv, "127.0.0.1"));
    assert_true(gnutls_x509_crt_check_hostname(srv, "::1"));
    assert_false(gnutls_x509_crt_check_hostname(srv, "example.com"));
    assert_false(gnutls_x509_crt_check_hostname(srv, "127.0.0.2"));
    unsigned char v4[4], v6[16];
    assert_int_equal(inet_pton(AF_INET, "127.0.0.1", v4), 1);
    assert_int_equal(inet_pton(AF_INET6, "::1", v6), 1);
    assert_true(gnutls_x509_crt_check_ip(srv, v4, sizeof(v4), 0));
    assert_true(gnutls_x509_crt_check_ip(srv, v6, sizeof(v6), 0));
    gnutls_x509_crt_deinit(srv);

    gnutls_x509_crt_t cli = load_crt(sp(s, "cli.crt"));
    assert_false(gnutls_x509_crt_check_hostname(cli, "localhost"));
    gnutls_x509_crt_deinit(cli);

    assert_key_matches(sp(s, "ca.crt"), sp(s, "ca.key"));
    assert_key_matches(sp(s, "srv.crt"), sp(s, "srv.key"));
    assert_key_matches(sp(s, "cli.crt"), sp(s, "cli.key"));
}

static void test_extensions(void **state)
{
    scratch *s = *state;
    make_pki(s, NANA_KEY_ECDSA_P256, NANA_KEY_RSA_2048);
    gnutls_x509_crt_t ca = load_crt(sp(s, "ca.crt"));
    gnutls_x509_crt_t srv = load_crt(sp(s, "srv.crt"));
    gnutls_x509_crt_t cli = load_crt(sp(s, "cli.crt"));

    assert_int_equal(gnutls_x509_crt_get_version(srv), 3);
    unsigned critical = 0, ca_flag = 0, usage = 0;
    int pathlen = 0;
    assert_int_equal(gnutls_x509_crt_get_basic_constraints(ca, &critical, &ca_flag, &pathlen), 1);
    assert_true(ca_flag);
    assert_int_equal(gnutls_x509_crt_get_basic_constraints(srv, &critical, &ca_flag, &pathlen), 0);
    assert_false(ca_flag);
    assert_int_equal(gnutls_x509_crt_get_key_usage(ca, &usage, &critical), 0);
    assert_int_equal(usage, GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN);
    assert_int_equal(gnutls_x509_crt_get_key_usage(srv, &usage, &critical), 0);
    assert_int_equal(usage, GNUTLS_KEY_DIGITAL_SIGNATURE | GNUTLS_KEY_KEY_ENCIPHERMENT); /* RSA */

    char oid[128];
    size_t oid_len = sizeof(oid);
    assert_int_equal(gnutls_x509_crt_get_key_purpose_oid(srv, 0, oid, &oid_len, NULL), 0);
    assert_string_equal(oid, GNUTLS_KP_TLS_WWW_SERVER);
    oid_len = sizeof(oid);
    assert_int_not_equal(gnutls_x509_crt_get_key_purpose_oid(srv, 1, oid, &oid_len, NULL), 0);
    oid_len = sizeof(oid);
    assert_int_equal(gnutls_x509_crt_get_key_purpose_oid(cli, 0, oid, &oid_len, NULL), 0);
    assert_string_equal(oid, GNUTLS_KP_TLS_WWW_CLIENT);

    /* A self-signed CA that is also a server also gets the leaf usage. */
    nana_cert_spec both = server_spec(NANA_KEY_ED25519);
    both.is_ca = 1;
    assert_int_equal(nana_certgen_write(&both, NULL, NULL, sp(s, "both.crt"), sp(s, "both.key"), 0),
                     0);
    gnutls_x509_crt_t bc = load_crt(sp(s, "both.crt"));
    assert_int_equal(gnutls_x509_crt_get_key_usage(bc, &usage, &critical), 0);
    assert_int_equal(usage,
                     GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN | GNUTLS_KEY_DIGITAL_SIGNATURE);
    gnutls_x509_crt_deinit(bc);
    assert_int_equal(
        verify_with(sp(s, "both.crt"), sp(s, "both.crt"), GNUTLS_KP_TLS_WWW_SERVER, "::1"), 0);

    /* Subject CN and issuer. */
    char dn[256];
    size_t dn_len = sizeof(dn);
    assert_int_equal(
        gnutls_x509_crt_get_dn_by_oid(srv, GNUTLS_OID_X520_COMMON_NAME, 0, 0, dn, &dn_len), 0);
    assert_string_equal(dn, "localhost");
    dn_len = sizeof(dn);
    assert_int_equal(
        gnutls_x509_crt_get_issuer_dn_by_oid(srv, GNUTLS_OID_X520_COMMON_NAME, 0, 0, dn, &dn_len),
        0);
    assert_string_equal(dn, "nanasqlite test CA");

    /* SKI everywhere; each leaf's AKI is the CA's SKI; the CA's AKI is its own. */
    unsigned char ca_ski[64], id[64];
    size_t ca_ski_len = sizeof(ca_ski), id_len = sizeof(id);
    assert_int_equal(gnutls_x509_crt_get_subject_key_id(ca, ca_ski, &ca_ski_len, &critical), 0);
    assert_int_equal(gnutls_x509_crt_get_authority_key_id(ca, id, &id_len, &critical), 0);
    assert_int_equal(id_len, ca_ski_len);
    assert_memory_equal(id, ca_ski, id_len);
    id_len = sizeof(id);
    assert_int_equal(gnutls_x509_crt_get_authority_key_id(srv, id, &id_len, &critical), 0);
    assert_int_equal(id_len, ca_ski_len);
    assert_memory_equal(id, ca_ski, id_len);
    id_len = sizeof(id);
    assert_int_equal(gnutls_x509_crt_get_subject_key_id(srv, id, &id_len, &critical), 0);
    assert_int_equal(id_len, 20);
    assert_memory_not_equal(id, ca_ski, id_len);

    /* Random positive 20-byte serials. */
    unsigned char s1[32], s2[32];
    size_t s1_len = sizeof(s1), s2_len = sizeof(s2);
    assert_int_equal(gnutls_x509_crt_get_serial(srv, s1, &s1_len), 0);
    assert_int_equal(gnutls_x509_crt_get_serial(cli, s2, &s2_len), 0);
    assert_int_equal(s1_len, 20);
    assert_int_equal(s2_len, 20);
    assert_int_equal(s1[0] & 0x80, 0);
    assert_int_equal(s2[0] & 0x80, 0);
    assert_memory_not_equal(s1, s2, 20);

    /* Validity: notBefore an hour back, notAfter |days| ahead. */
    time_t now = time(NULL);
    time_t nb = gnutls_x509_crt_get_activation_time(srv);
    time_t na = gnutls_x509_crt_get_expiration_time(srv);
    assert_true(nb >= now - 3600 - 60 && nb <= now - 3600 + 60);
    assert_true(na >= now + (time_t)7 * 86400 - 60 && na <= now + (time_t)7 * 86400 + 60);

    /* SHA-256 signatures from the ECDSA CA. */
    assert_int_equal(gnutls_x509_crt_get_signature_algorithm(srv), GNUTLS_SIGN_ECDSA_SHA256);
    assert_int_equal(gnutls_x509_crt_get_signature_algorithm(ca), GNUTLS_SIGN_ECDSA_SHA256);

    gnutls_x509_crt_deinit(cli);
    gnutls_x509_crt_deinit(srv);
    gnutls_x509_crt_deinit(ca);
}

static void test_file_modes(void **state)
{
    scratch *s = *state;
    mode_t old = umask(077); /* the certificate is 0644 even under a strict umask */
    make_pki(s, NANA_KEY_ECDSA_P256, NANA_KEY_ECDSA_P256);
    umask(old);
    assert_int_equal(file_mode(sp(s, "ca.key")), 0600);
    assert_int_equal(file_mode(sp(s, "srv.key")), 0600);
    assert_int_equal(file_mode(sp(s, "ca.crt")), 0644);
    assert_int_equal(file_mode(sp(s, "srv.crt")), 0644);
    assert_int_equal(count_files(s), 6);
}

static void test_overwrite(void **state)
{
    scratch *s = *state;
    nana_cert_spec spec = server_spec(NANA_KEY_ECDSA_P256);
    char crt_buf[1024], key_buf[1024], key_b[1024], crt_c[1024], key_c[1024];
    const char *crt = sp_copy(s, "a.crt", crt_buf), *key = sp_copy(s, "a.key", key_buf);
    assert_int_equal(nana_certgen_write(&spec, NULL, NULL, crt, key, 0), 0);
    uint8_t c1[32], k1[32], c2[32], k2[32];
    assert_int_equal(nana_cert_fingerprints(crt, c1, k1), 0);

    /* Refused without the flag; nothing changes. */
    assert_int_equal(nana_certgen_write(&spec, NULL, NULL, crt, key, 0), NANA_ERR_INVALID);
    assert_non_null(strstr(nana_errmsg(), "exists"));
    assert_int_equal(nana_cert_fingerprints(crt, c2, k2), 0);
    assert_memory_equal(c1, c2, 32);
    assert_int_equal(count_files(s), 2);

    /* Only the certificate exists: still refused, and no key is left behind. */
    sp_copy(s, "b.key", key_b);
    assert_int_equal(nana_certgen_write(&spec, NULL, NULL, crt, key_b, 0), NANA_ERR_INVALID);
    assert_non_null(strstr(nana_errmsg(), "exists"));
    assert_int_equal(access(key_b, F_OK), -1);
    /* Only the key exists (here as a dangling symlink): refused too. */
    sp_copy(s, "c.crt", crt_c);
    sp_copy(s, "c.key", key_c);
    assert_int_equal(symlink(sp(s, "nowhere"), key_c), 0);
    assert_int_equal(nana_certgen_write(&spec, NULL, NULL, crt_c, key_c, 0), NANA_ERR_INVALID);
    assert_int_equal(access(crt_c, F_OK), -1);
    unlink(key_c);
    assert_int_equal(count_files(s), 2);

    /* With the flag: replaced by a new key pair, key still 0600 even if the
     * old file was world-readable, and no temporary files remain. */
    assert_int_equal(chmod(key, 0644), 0);
    assert_int_equal(nana_certgen_write(&spec, NULL, NULL, crt, key, 1), 0);
    assert_int_equal(nana_cert_fingerprints(crt, c2, k2), 0);
    assert_memory_not_equal(c1, c2, 32);
    assert_memory_not_equal(k1, k2, 32);
    assert_int_equal(file_mode(key), 0600);
    assert_int_equal(file_mode(crt), 0644);
    assert_int_equal(count_files(s), 2);
    assert_key_matches(crt, key);

    /* Overwrite also works when the files do not exist yet. */
    assert_int_equal(nana_certgen_write(&spec, NULL, NULL, sp(s, "d.crt"), sp(s, "d.key"), 1), 0);
    assert_int_equal(file_mode(sp(s, "d.key")), 0600);
    assert_int_equal(count_files(s), 4);
}

static void test_algorithms(void **state)
{
    scratch *s = *state;
    static const struct {
        nana_key_algo algo;
        gnutls_pk_algorithm_t pk;
        gnutls_sign_algorithm_t sig;
    } algos[] = {
        {NANA_KEY_ECDSA_P256, GNUTLS_PK_ECDSA, GNUTLS_SIGN_ECDSA_SHA256},
        {NANA_KEY_RSA_2048, GNUTLS_PK_RSA, GNUTLS_SIGN_RSA_SHA256},
        {NANA_KEY_ED25519, GNUTLS_PK_EDDSA_ED25519, GNUTLS_SIGN_EDDSA_ED25519},
    };
    for (size_t i = 0; i < 3; i++) {
        /* CA of algorithm i signing leaves of algorithm (i + 1) % 3 and i. */
        nana_cert_spec ca = ca_spec(algos[i].algo);
        nana_cert_spec srv = server_spec(algos[(i + 1) % 3].algo);
        nana_cert_spec self = server_spec(algos[i].algo);
        char ca_crt[1024], ca_key[1024];
        sp_copy(s, "ca.crt", ca_crt);
        sp_copy(s, "ca.key", ca_key);
        assert_int_equal(nana_certgen_write(&ca, NULL, NULL, ca_crt, ca_key, 1), 0);
        int rc = nana_certgen_write(&srv, ca_crt, ca_key, sp(s, "srv.crt"), sp(s, "srv.key"), 1);
        if (rc) fprintf(stderr, "algo %zu: %s\n", i, nana_errmsg());
        assert_int_equal(rc, 0);
        assert_int_equal(
            nana_certgen_write(&self, NULL, NULL, sp(s, "self.crt"), sp(s, "self.key"), 1), 0);

        gnutls_x509_crt_t c = load_crt(ca_crt);
        assert_int_equal(gnutls_x509_crt_get_pk_algorithm(c, NULL), algos[i].pk);
        assert_int_equal(gnutls_x509_crt_get_signature_algorithm(c), algos[i].sig);
        gnutls_x509_crt_deinit(c);
        c = load_crt(sp(s, "srv.crt"));
        assert_int_equal(gnutls_x509_crt_get_pk_algorithm(c, NULL), algos[(i + 1) % 3].pk);
        assert_int_equal(gnutls_x509_crt_get_signature_algorithm(c), algos[i].sig);
        assert_true(gnutls_x509_crt_check_hostname(c, "localhost"));
        gnutls_x509_crt_deinit(c);

        assert_int_equal(
            verify_with(ca_crt, sp(s, "srv.crt"), GNUTLS_KP_TLS_WWW_SERVER, "localhost"), 0);
        /* A self-signed leaf verifies only against itself. */
        assert_int_equal(verify_with(sp(s, "self.crt"), sp(s, "self.crt"), NULL, "::1"), 0);
        assert_int_not_equal(verify_with(ca_crt, sp(s, "self.crt"), NULL, NULL), 0);
        assert_key_matches(sp(s, "srv.crt"), sp(s, "srv.key"));
        assert_key_matches(sp(s, "self.crt"), sp(s, "self.key"));
        assert_int_equal(file_mode(sp(s, "self.key")), 0600);
    }
}

static void test_fingerprints(void **state)
{
    scratch *s = *state;
    make_pki(s, NANA_KEY_ED25519, NANA_KEY_ECDSA_P256);
    uint8_t c1[32], k1[32], c2[32], k2[32], c3[32], k3[32];
    assert_int_equal(nana_cert_fingerprints(sp(s, "srv.crt"), c1, k1), 0);
    assert_int_equal(nana_cert_fingerprints(sp(s, "srv.crt"), c2, k2), 0);
    assert_memory_equal(c1, c2, 32);
    assert_memory_equal(k1, k2, 32);
    assert_memory_not_equal(c1, k1, 32);
    assert_int_equal(nana_cert_fingerprints(sp(s, "cli.crt"), c3, k3), 0);
    assert_memory_not_equal(c1, c3, 32);
    assert_memory_not_equal(k1, k3, 32);

    /* Cross-check: SHA-256 of the DER, and GnuTLS's SHA-256 key id (which
     * is computed over the SubjectPublicKeyInfo). */
    gnutls_x509_crt_t crt = load_crt(sp(s, "srv.crt"));
    gnutls_datum_t der = {NULL, 0};
    assert_int_equal(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, &der), 0);
    uint8_t h[32];
    assert_int_equal(gnutls_hash_fast(GNUTLS_DIG_SHA256, der.data, der.size, h), 0);
    assert_memory_equal(h, c1, 32);
    gnutls_free(der.data);
    unsigned char id[64];
    size_t id_len = sizeof(id);
    assert_int_equal(gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA256, id, &id_len), 0);
    assert_int_equal(id_len, 32);
    assert_memory_equal(id, k1, 32);
    gnutls_x509_crt_deinit(crt);

    /* Errors. */
    assert_int_equal(nana_cert_fingerprints(sp(s, "missing.crt"), c1, k1), NANA_ERR_NOTFOUND);
    assert_int_equal(nana_cert_fingerprints(sp(s, "srv.key"), c1, k1), NANA_ERR_INVALID);
    assert_int_equal(nana_cert_fingerprints(NULL, c1, k1), NANA_ERR_INVALID);
}

static void test_bad_input(void **state)
{
    scratch *s = *state;
    char crt[1024], key[1024];
    sp_copy(s, "x.crt", crt);
    sp_copy(s, "x.key", key);
    nana_cert_spec spec = server_spec(NANA_KEY_ECDSA_P256);
    assert_int_equal(nana_certgen_write(NULL, NULL, NULL, crt, key, 0), NANA_ERR_INVALID);

    spec.common_name = "";
    assert_int_equal(nana_certgen_write(&spec, NULL, NULL, crt, key, 0), NANA_ERR_INVALID);
    spec = server_spec(NANA_KEY_ECDSA_P256);
    spec.days = 0;
    assert_int_equal(nana_certgen_write(&spec, NULL, NULL, crt, key, 0), NANA_ERR_INVALID);
    spec.days = NANA_CERT_MAX_DAYS + 1;
    assert_int_equal(nana_certgen_write(&spec, NULL, NULL, crt, key, 0), NANA_ERR_INVALID);
    spec = server_spec((nana_key_algo)7);
    assert_int_equal(nana_certgen_write(&spec, NULL, NULL, crt, key, 0), NANA_ERR_INVALID);

    static const char *const bad_ips[] = {"127.0.0.1", "300.1.1.1"};
    spec = server_spec(NANA_KEY_ECDSA_P256);
    spec.ip_addrs = bad_ips;
    assert_int_equal(nana_certgen_write(&spec, NULL, NULL, crt, key, 0), NANA_ERR_INVALID);
    assert_non_null(strstr(nana_errmsg(), "300.1.1.1"));
    spec = server_spec(NANA_KEY_ECDSA_P256);
    spec.dns_names = NULL;
    assert_int_equal(nana_certgen_write(&spec, NULL, NULL, crt, key, 0), NANA_ERR_INVALID);

    spec = server_spec(NANA_KEY_ECDSA_P256);
    assert_int_equal(nana_certgen_write(&spec, NULL, NULL, crt, crt, 0), NANA_ERR_INVALID);
    assert_int_equal(nana_certgen_write(&spec, NULL, NULL, NULL, key, 0), NANA_ERR_INVALID);
    assert_int_equal(nana_certgen_write(&spec, crt, NULL, crt, key, 0), NANA_ERR_INVALID);
    assert_int_equal(count_files(s), 0);

    /* Issuer problems: missing files, a non-CA issuer, a key of another cert. */
    assert_int_equal(nana_certgen_write(&spec, sp(s, "no.crt"), sp(s, "no.key"), crt, key, 0),
                     NANA_ERR_NOTFOUND);
    make_pki(s, NANA_KEY_ECDSA_P256, NANA_KEY_ECDSA_P256);
    int n = count_files(s);
    assert_int_equal(nana_certgen_write(&spec, sp(s, "srv.crt"), sp(s, "srv.key"), crt, key, 0),
                     NANA_ERR_INVALID);
    assert_non_null(strstr(nana_errmsg(), "not a CA"));
    assert_int_equal(nana_certgen_write(&spec, sp(s, "ca.crt"), sp(s, "srv.key"), crt, key, 0),
                     NANA_ERR_INVALID);
    assert_non_null(strstr(nana_errmsg(), "does not match"));
    assert_int_equal(nana_certgen_write(&spec, sp(s, "ca.crt"), sp(s, "ca.crt"), crt, key, 0),
                     NANA_ERR_INVALID);
    assert_int_equal(nana_certgen_write(&spec, sp(s, "ca.key"), sp(s, "ca.key"), crt, key, 0),
                     NANA_ERR_INVALID);
    assert_int_equal(count_files(s), n);

    /* A directory that does not exist: nothing is created anywhere. */
    assert_int_equal(
        nana_certgen_write(&spec, NULL, NULL, sp(s, "nodir/x.crt"), sp(s, "nodir/x.key"), 0),
        NANA_ERR_NOTFOUND);
    assert_int_equal(
        nana_certgen_write(&spec, NULL, NULL, sp(s, "nodir/x.crt"), sp(s, "nodir/x.key"), 1),
        NANA_ERR_NOTFOUND);
    assert_int_equal(count_files(s), n);
}

/* Every certificate of a PEM file, in file order; *n gets the count. The
 * caller frees them with free_list(). */
static gnutls_x509_crt_t *load_list(const char *path, unsigned *n)
{
    gnutls_datum_t d = {NULL, 0};
    assert_int_equal(gnutls_load_file(path, &d), 0);
    gnutls_x509_crt_t *list = NULL;
    assert_int_equal(gnutls_x509_crt_list_import2(&list, n, &d, GNUTLS_X509_FMT_PEM, 0), 0);
    gnutls_free(d.data);
    return list;
}

static void free_list(gnutls_x509_crt_t *list, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        gnutls_x509_crt_deinit(list[i]);
    gnutls_free(list);
}

/* 1 if certificate |i| of file |a| and certificate |j| of file |b| are the
 * same certificate (DER-equal). */
static int same_cert(const char *a, unsigned i, const char *b, unsigned j)
{
    unsigned na = 0, nb = 0;
    gnutls_x509_crt_t *la = load_list(a, &na), *lb = load_list(b, &nb);
    assert_true(i < na && j < nb);
    int same = gnutls_x509_crt_equals(la[i], lb[j]) != 0;
    free_list(la, na);
    free_list(lb, nb);
    return same;
}

static unsigned cert_count(const char *path)
{
    unsigned n = 0;
    gnutls_x509_crt_t *list = load_list(path, &n);
    free_list(list, n);
    return n;
}

/*
 * Verifies the chain file |chain_path| (leaf first, as a server sends it)
 * against the trust anchors of |ca_path| with the serverAuth purpose and the
 * name |host|. Returns the GnuTLS status: 0 means trusted.
 */
static unsigned verify_chain(const char *ca_path, const char *chain_path, const char *host)
{
    gnutls_x509_trust_list_t tl;
    assert_int_equal(gnutls_x509_trust_list_init(&tl, 0), 0);
    assert_true(
        gnutls_x509_trust_list_add_trust_file(tl, ca_path, NULL, GNUTLS_X509_FMT_PEM, 0, 0) > 0);
    unsigned n = 0;
    gnutls_x509_crt_t *chain = load_list(chain_path, &n);
    gnutls_typed_vdata_st vdata[2] = {
        {GNUTLS_DT_KEY_PURPOSE_OID, (unsigned char *)(uintptr_t)GNUTLS_KP_TLS_WWW_SERVER, 0},
        {GNUTLS_DT_DNS_HOSTNAME, (unsigned char *)(uintptr_t)host, 0},
    };
    unsigned status = ~0u;
    assert_int_equal(gnutls_x509_trust_list_verify_crt2(tl, chain, n, vdata, 2, 0, &status, NULL),
                     0);
    free_list(chain, n);
    gnutls_x509_trust_list_deinit(tl, 1);
    return status;
}

/* nana_cert_spec.chain: the certificate file holds the new certificate, then
 * the issuer file's certificates; chains of intermediates; the order and the
 * NANA_CERT_MAX_CHAIN limit of the issuer file; no effect when self-signed. */
static void test_chain_file(void **state)
{
    scratch *s = *state;
    nana_cert_spec root = ca_spec(NANA_KEY_ECDSA_P256);
    assert_int_equal(nana_certgen_write(&root, NULL, NULL, sp(s, "root.pem"), sp(s, "root.key"), 0),
                     0);
    nana_cert_spec srv = server_spec(NANA_KEY_ECDSA_P256);
    srv.chain = 1;
    assert_int_equal(nana_certgen_write(&srv, sp(s, "root.pem"), sp(s, "root.key"),
                                        sp(s, "srv.pem"), sp(s, "srv.key"), 0),
                     0);
    assert_int_equal(cert_count(sp(s, "srv.pem")), 2);
    assert_true(same_cert(sp(s, "srv.pem"), 1, sp(s, "root.pem"), 0));
    assert_false(same_cert(sp(s, "srv.pem"), 0, sp(s, "root.pem"), 0));
    assert_key_matches(sp(s, "srv.pem"), sp(s, "srv.key")); /* the first is the new one */
    assert_int_equal(file_mode(sp(s, "srv.pem")), 0644);
    assert_int_equal(file_mode(sp(s, "srv.key")), 0600);
    assert_int_equal(verify_chain(sp(s, "root.pem"), sp(s, "srv.pem"), "localhost"), 0);
    /* The chain file is a trust file too (the CA in it is the anchor). */
    assert_int_equal(verify_chain(sp(s, "srv.pem"), sp(s, "srv.pem"), "localhost"), 0);
    assert_int_not_equal(verify_chain(sp(s, "root.pem"), sp(s, "srv.pem"), "example.com"), 0);

    /* An intermediate whose file is itself a chain: the leaf's file gets all three. */
    nana_cert_spec mid = ca_spec(NANA_KEY_ED25519);
    mid.common_name = "intermediate";
    mid.chain = 1;
    assert_int_equal(nana_certgen_write(&mid, sp(s, "root.pem"), sp(s, "root.key"),
                                        sp(s, "mid.pem"), sp(s, "mid.key"), 0),
                     0);
    assert_int_equal(cert_count(sp(s, "mid.pem")), 2);
    assert_int_equal(nana_certgen_write(&srv, sp(s, "mid.pem"), sp(s, "mid.key"), sp(s, "leaf.pem"),
                                        sp(s, "leaf.key"), 0),
                     0);
    assert_int_equal(cert_count(sp(s, "leaf.pem")), 3);
    assert_true(same_cert(sp(s, "leaf.pem"), 1, sp(s, "mid.pem"), 0));
    assert_true(same_cert(sp(s, "leaf.pem"), 2, sp(s, "root.pem"), 0));
    assert_int_equal(verify_chain(sp(s, "root.pem"), sp(s, "leaf.pem"), "localhost"), 0);

    /* Without the flag only the new certificate is written (as before). */
    nana_cert_spec plain = server_spec(NANA_KEY_ECDSA_P256);
    assert_int_equal(nana_certgen_write(&plain, sp(s, "mid.pem"), sp(s, "mid.key"),
                                        sp(s, "plain.pem"), sp(s, "plain.key"), 0),
                     0);
    assert_int_equal(cert_count(sp(s, "plain.pem")), 1);
    /* Self-signed: nothing to add. */
    assert_int_equal(nana_certgen_write(&srv, NULL, NULL, sp(s, "self.pem"), sp(s, "self.key"), 0),
                     0);
    assert_int_equal(cert_count(sp(s, "self.pem")), 1);

    /* An issuer file out of chain order is refused for a chain (nothing
     * written) but still usable for a lone certificate. */
    FILE *f = fopen(sp(s, "unsorted.pem"), "w");
    assert_non_null(f);
    gnutls_datum_t d = {NULL, 0};
    assert_int_equal(gnutls_load_file(sp(s, "root.pem"), &d), 0);
    fwrite(d.data, 1, d.size, f);
    gnutls_free(d.data);
    assert_int_equal(gnutls_load_file(sp(s, "leaf.pem"), &d), 0);
    fwrite(d.data, 1, d.size, f);
    gnutls_free(d.data);
    fclose(f);
    int n = count_files(s);
    assert_int_equal(nana_certgen_write(&srv, sp(s, "unsorted.pem"), sp(s, "root.key"),
                                        sp(s, "x.pem"), sp(s, "x.key"), 0),
                     NANA_ERR_INVALID);
    assert_non_null(strstr(nana_errmsg(), "followed by its issuer"));
    assert_int_equal(count_files(s), n);
    assert_int_equal(nana_certgen_write(&plain, sp(s, "unsorted.pem"), sp(s, "root.key"),
                                        sp(s, "x.pem"), sp(s, "x.key"), 0),
                     0);
    assert_int_equal(cert_count(sp(s, "x.pem")), 1);
}

/* The NANA_CERT_MAX_CHAIN limit: an issuer file of that many certificates is
 * copied, one more is refused (without the flag the file is still usable). */
static void test_chain_limit(void **state)
{
    scratch *s = *state;
    char prev_crt[1024], prev_key[1024], crt[1024], key[1024];
    nana_cert_spec ca = ca_spec(NANA_KEY_ECDSA_P256);
    sp_copy(s, "ca0.pem", prev_crt);
    sp_copy(s, "ca0.key", prev_key);
    assert_int_equal(nana_certgen_write(&ca, NULL, NULL, prev_crt, prev_key, 0), 0);
    ca.chain = 1;
    for (unsigned i = 1; i <= NANA_CERT_MAX_CHAIN; i++) {
        char name[32];
        snprintf(name, sizeof(name), "ca%u.pem", i);
        sp_copy(s, name, crt);
        snprintf(name, sizeof(name), "ca%u.key", i);
        sp_copy(s, name, key);
        /* The issuer file holds i certificates: at most the limit, accepted. */
        assert_int_equal(nana_certgen_write(&ca, prev_crt, prev_key, crt, key, 0), 0);
        assert_int_equal(cert_count(crt), i + 1);
        memcpy(prev_crt, crt, sizeof(crt));
        memcpy(prev_key, key, sizeof(key));
    }
    /* prev_crt now holds NANA_CERT_MAX_CHAIN + 1 certificates. */
    nana_cert_spec srv = server_spec(NANA_KEY_ECDSA_P256);
    srv.chain = 1;
    int n = count_files(s);
    assert_int_equal(
        nana_certgen_write(&srv, prev_crt, prev_key, sp(s, "srv.pem"), sp(s, "srv.key"), 0),
        NANA_ERR_INVALID);
    assert_non_null(strstr(nana_errmsg(), "the limit is"));
    assert_int_equal(count_files(s), n);
    srv.chain = 0;
    assert_int_equal(
        nana_certgen_write(&srv, prev_crt, prev_key, sp(s, "srv.pem"), sp(s, "srv.key"), 0), 0);
}

/* Makes directory "<scratch>/<name>" and copies its path into |out|. */
static const char *sub_dir(const scratch *s, const char *name, char out[1024])
{
    sp_copy(s, name, out);
    assert_int_equal(mkdir(out, 0700), 0);
    return out;
}

/* Path "<dir>/<name>" in a static rotating buffer, like sp(). */
static const char *in_dir(const char *dir, const char *name)
{
    static char bufs[8][2100]; /* room for a 1024-byte dir and a name */
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, sizeof(bufs[0]), "%s/%s", dir, name);
    return b;
}

/* nana_certgen_dev_server: a CA made on first use and reused after, never
 * replaced (not even with |overwrite|); cert.pem is the chain; keys 0600; a
 * second server certificate from an existing CA elsewhere; a half-present CA
 * refused; nothing left behind on failure. */
static void test_dev_server(void **state)
{
    scratch *s = *state;
    char a[1024], b[1024], c[1024];
    sub_dir(s, "a", a);
    nana_cert_spec srv = server_spec(NANA_KEY_ECDSA_P256);
    nana_dev_server_files f;
    memset(&f, 0, sizeof(f));
    assert_int_equal(nana_certgen_dev_server(a, &srv, NULL, NULL, 0, &f), 0);
    assert_int_equal(f.ca_made, 1);
    assert_string_equal(f.ca_cert, in_dir(a, "ca.pem"));
    assert_string_equal(f.ca_key, in_dir(a, "ca-key.pem"));
    assert_string_equal(f.cert, in_dir(a, "cert.pem"));
    assert_string_equal(f.key, in_dir(a, "key.pem"));
    assert_int_equal(count_in(a), 4);
    assert_int_equal(file_mode(f.ca_key), 0600);
    assert_int_equal(file_mode(f.key), 0600);
    assert_int_equal(file_mode(f.ca_cert), 0644);
    assert_int_equal(file_mode(f.cert), 0644);
    assert_int_equal(cert_count(f.cert), 2);
    assert_int_equal(cert_count(f.ca_cert), 1);
    assert_true(same_cert(f.cert, 1, f.ca_cert, 0));
    assert_key_matches(f.cert, f.key);
    assert_key_matches(f.ca_cert, f.ca_key);
    assert_int_equal(verify_chain(f.ca_cert, f.cert, "localhost"), 0);
    assert_int_equal(verify_chain(f.cert, f.cert, "127.0.0.1"), 0);

    /* The CA: a CA only (no leaf usage), a tagged name, ten years. */
    gnutls_x509_crt_t ca = load_crt(f.ca_cert);
    unsigned usage = 0, critical = 0, is_ca = 0;
    int pathlen = 0;
    assert_int_equal(gnutls_x509_crt_get_key_usage(ca, &usage, &critical), 0);
    assert_int_equal(usage, GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN);
    assert_int_equal(gnutls_x509_crt_get_basic_constraints(ca, &critical, &is_ca, &pathlen), 1);
    char dn[256];
    size_t dn_len = sizeof(dn);
    assert_int_equal(
        gnutls_x509_crt_get_dn_by_oid(ca, GNUTLS_OID_X520_COMMON_NAME, 0, 0, dn, &dn_len), 0);
    assert_int_equal(strncmp(dn, "nanasqlite development CA ", 26), 0);
    assert_int_equal(strlen(dn), 26 + 8);
    time_t na = gnutls_x509_crt_get_expiration_time(ca);
    assert_true(na >= time(NULL) + (time_t)NANA_DEV_CA_DAYS * 86400 - 60);
    gnutls_x509_crt_deinit(ca);
    /* The server certificate is a plain leaf. */
    gnutls_x509_crt_t leaf = load_crt(f.cert);
    assert_int_equal(gnutls_x509_crt_get_basic_constraints(leaf, &critical, &is_ca, &pathlen), 0);
    assert_false(is_ca);
    gnutls_x509_crt_deinit(leaf);

    /* Again without overwrite: refused, nothing changes. */
    uint8_t ca1[32], cert1[32], k[32], ca2[32], cert2[32];
    assert_int_equal(nana_cert_fingerprints(in_dir(a, "ca.pem"), ca1, k), 0);
    assert_int_equal(nana_cert_fingerprints(in_dir(a, "cert.pem"), cert1, k), 0);
    assert_int_equal(nana_certgen_dev_server(a, &srv, NULL, NULL, 0, &f), NANA_ERR_INVALID);
    assert_non_null(strstr(nana_errmsg(), "exists"));
    assert_int_equal(nana_cert_fingerprints(in_dir(a, "cert.pem"), cert2, k), 0);
    assert_memory_equal(cert1, cert2, 32);
    assert_int_equal(count_in(a), 4);

    /* With overwrite: a new server certificate from the same CA. */
    assert_int_equal(chmod(in_dir(a, "key.pem"), 0644), 0);
    assert_int_equal(nana_certgen_dev_server(a, &srv, NULL, NULL, 1, &f), 0);
    assert_int_equal(f.ca_made, 0);
    assert_int_equal(nana_cert_fingerprints(in_dir(a, "ca.pem"), ca2, k), 0);
    assert_memory_equal(ca1, ca2, 32);
    assert_int_equal(nana_cert_fingerprints(in_dir(a, "cert.pem"), cert2, k), 0);
    assert_memory_not_equal(cert1, cert2, 32);
    assert_int_equal(file_mode(in_dir(a, "key.pem")), 0600);
    assert_int_equal(count_in(a), 4);
    assert_int_equal(verify_chain(in_dir(a, "ca.pem"), in_dir(a, "cert.pem"), "localhost"), 0);

    /* A second server, elsewhere, from the first one's CA: only its own pair. */
    char ca_path[1024], ca_key[1024];
    snprintf(ca_path, sizeof(ca_path), "%s", in_dir(a, "ca.pem"));
    snprintf(ca_key, sizeof(ca_key), "%s", in_dir(a, "ca-key.pem"));
    sub_dir(s, "b", b);
    nana_cert_spec rsa = server_spec(NANA_KEY_RSA_2048);
    assert_int_equal(nana_certgen_dev_server(b, &rsa, ca_path, ca_key, 0, &f), 0);
    assert_int_equal(f.ca_made, 0);
    assert_string_equal(f.ca_cert, ca_path);
    assert_int_equal(count_in(b), 2);
    assert_true(same_cert(in_dir(b, "cert.pem"), 1, ca_path, 0));
    assert_int_equal(verify_chain(ca_path, in_dir(b, "cert.pem"), "localhost"), 0);
    assert_int_equal(file_mode(in_dir(b, "key.pem")), 0600);
    assert_int_equal(nana_cert_fingerprints(ca_path, ca2, k), 0);
    assert_memory_equal(ca1, ca2, 32);
    /* A new CA takes the server's key algorithm. */
    sub_dir(s, "r", c);
    assert_int_equal(nana_certgen_dev_server(c, &rsa, NULL, NULL, 0, &f), 0);
    ca = load_crt(f.ca_cert);
    assert_int_equal(gnutls_x509_crt_get_pk_algorithm(ca, NULL), GNUTLS_PK_RSA);
    gnutls_x509_crt_deinit(ca);
}

/* nana_certgen_dev_server's refusals: each leaves nothing new behind, a CA
 * it made for nothing included, and never touches an existing CA or pair. */
static void test_dev_server_refusals(void **state)
{
    scratch *s = *state;
    char a[1024], b[1024], c[1024], d[1024];
    nana_cert_spec srv = server_spec(NANA_KEY_ECDSA_P256);
    nana_dev_server_files f;

    /* An older self-signed pair without a CA: kept, and no CA made for it. */
    sub_dir(s, "old", a);
    assert_int_equal(
        nana_certgen_write(&srv, NULL, NULL, in_dir(a, "cert.pem"), in_dir(a, "key.pem"), 0), 0);
    assert_int_equal(nana_certgen_dev_server(a, &srv, NULL, NULL, 0, &f), NANA_ERR_INVALID);
    assert_non_null(strstr(nana_errmsg(), "exists"));
    assert_int_equal(count_in(a), 2);

    /* Half a CA: the certificate without its key, or the key alone. */
    sub_dir(s, "half", b);
    assert_int_equal(nana_certgen_dev_server(b, &srv, NULL, NULL, 0, &f), 0);
    assert_int_equal(unlink(in_dir(b, "ca-key.pem")), 0);
    assert_int_equal(unlink(in_dir(b, "cert.pem")), 0);
    assert_int_equal(unlink(in_dir(b, "key.pem")), 0);
    assert_int_equal(nana_certgen_dev_server(b, &srv, NULL, NULL, 1, &f), NANA_ERR_INVALID);
    assert_non_null(strstr(nana_errmsg(), "ca-key.pem does not"));
    assert_int_equal(count_in(b), 1);
    assert_int_equal(rename(in_dir(b, "ca.pem"), in_dir(b, "ca-key.pem")), 0);
    assert_int_equal(nana_certgen_dev_server(b, &srv, NULL, NULL, 1, &f), NANA_ERR_INVALID);
    assert_non_null(strstr(nana_errmsg(), "ca.pem does not"));
    assert_int_equal(count_in(b), 1);

    /* The server certificate cannot be written after the CA was made: the
     * new CA goes too. (cert.pem is a directory; with overwrite the early
     * existence check does not apply.) */
    sub_dir(s, "fail", c);
    assert_int_equal(mkdir(in_dir(c, "cert.pem"), 0700), 0);
    assert_int_not_equal(nana_certgen_dev_server(c, &srv, NULL, NULL, 1, &f), 0);
    assert_int_equal(count_in(c), 1);
    assert_int_equal(nana_certgen_dev_server(c, &srv, NULL, NULL, 0, &f), NANA_ERR_INVALID);
    assert_int_equal(count_in(c), 1);
    /* A bad server spec: refused, no CA left either. */
    sub_dir(s, "bad", d);
    nana_cert_spec bad = srv;
    bad.days = 0;
    assert_int_equal(nana_certgen_dev_server(d, &bad, NULL, NULL, 0, &f), NANA_ERR_INVALID);
    assert_int_equal(count_in(d), 0);

    /* Bad arguments. */
    bad = srv;
    bad.is_ca = 1;
    assert_int_equal(nana_certgen_dev_server(d, &bad, NULL, NULL, 0, &f), NANA_ERR_INVALID);
    assert_int_equal(nana_certgen_dev_server(NULL, &srv, NULL, NULL, 0, &f), NANA_ERR_INVALID);
    assert_int_equal(nana_certgen_dev_server("", &srv, NULL, NULL, 0, &f), NANA_ERR_INVALID);
    assert_int_equal(nana_certgen_dev_server(d, NULL, NULL, NULL, 0, &f), NANA_ERR_INVALID);
    assert_int_equal(nana_certgen_dev_server(d, &srv, in_dir(b, "ca-key.pem"), NULL, 0, &f),
                     NANA_ERR_INVALID);
    assert_int_equal(nana_certgen_dev_server(d, &srv, "", "", 0, &f), NANA_ERR_INVALID);
    /* A named CA that is not a CA (the older self-signed certificate). */
    assert_int_equal(
        nana_certgen_dev_server(d, &srv, in_dir(a, "cert.pem"), in_dir(a, "key.pem"), 0, &f),
        NANA_ERR_INVALID);
    assert_non_null(strstr(nana_errmsg(), "not a CA"));
    assert_int_equal(count_in(d), 0);
    char longdir[1100];
    memset(longdir, 'x', sizeof(longdir) - 1);
    longdir[sizeof(longdir) - 1] = '\0';
    assert_int_equal(nana_certgen_dev_server(longdir, &srv, NULL, NULL, 0, &f), NANA_ERR_INVALID);
    assert_int_equal(nana_certgen_dev_server(d, &srv, NULL, NULL, 0, NULL), 0); /* out optional */
    assert_int_equal(count_in(d), 4);
}

/* nana_certgen_dev_client: a client certificate from the server's development
 * CA (made when missing, never replaced), NAME.pem alone and NAME-key.pem
 * 0600, verifying for clientAuth and not serverAuth; names that would clash
 * with the server's files, hide or read as flags refused; a spec that is
 * not a client's refused; nothing left behind by a refusal. */
static void test_dev_client(void **state)
{
    scratch *s = *state;
    char a[1024], b[1024];
    sub_dir(s, "a", a);
    nana_cert_spec srv = server_spec(NANA_KEY_ECDSA_P256);
    nana_dev_server_files f;
    assert_int_equal(nana_certgen_dev_server(a, &srv, NULL, NULL, 0, &f), 0);
    uint8_t ca1[32], ca2[32], cert1[32], cert2[32], k1[32], k2[32];
    assert_int_equal(nana_cert_fingerprints(f.ca_cert, ca1, k1), 0);

    nana_cert_spec cli = client_spec(NANA_KEY_ECDSA_P256);
    cli.common_name = "alice@app.example";
    assert_int_equal(nana_certgen_dev_client(a, &cli, NULL, NULL, 0, &f), 0);
    assert_int_equal(f.ca_made, 0);
    assert_string_equal(f.cert, in_dir(a, "alice@app.example.pem"));
    assert_string_equal(f.key, in_dir(a, "alice@app.example-key.pem"));
    assert_int_equal(count_in(a), 6);
    assert_int_equal(file_mode(f.key), 0600);
    assert_int_equal(file_mode(f.cert), 0644);
    assert_int_equal(cert_count(f.cert), 1);
    assert_key_matches(f.cert, f.key);
    assert_int_equal(verify_with(f.ca_cert, f.cert, GNUTLS_KP_TLS_WWW_CLIENT, NULL), 0);
    assert_int_not_equal(verify_with(f.ca_cert, f.cert, GNUTLS_KP_TLS_WWW_SERVER, NULL), 0);
    assert_int_equal(nana_cert_fingerprints(f.ca_cert, ca2, k2), 0);
    assert_memory_equal(ca1, ca2, 32); /* the CA is reused */
    gnutls_x509_crt_t crt = load_crt(f.cert);
    char dn[128];
    size_t dn_len = sizeof(dn);
    assert_int_equal(
        gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, dn, &dn_len), 0);
    assert_string_equal(dn, "alice@app.example");
    gnutls_x509_crt_deinit(crt);

    /* Again: refused without overwrite, replaced with it (the CA stays). */
    assert_int_equal(nana_cert_fingerprints(f.cert, cert1, k1), 0);
    assert_int_equal(nana_certgen_dev_client(a, &cli, NULL, NULL, 0, &f), NANA_ERR_INVALID);
    assert_non_null(strstr(nana_errmsg(), "exists"));
    assert_int_equal(nana_certgen_dev_client(a, &cli, NULL, NULL, 1, &f), 0);
    assert_int_equal(nana_cert_fingerprints(f.cert, cert2, k2), 0);
    assert_memory_not_equal(cert1, cert2, 32);
    assert_memory_not_equal(k1, k2, 32);
    assert_int_equal(nana_cert_fingerprints(f.ca_cert, ca2, k2), 0);
    assert_memory_equal(ca1, ca2, 32);
    assert_int_equal(count_in(a), 6);

    /* In a directory without a CA: one is made. */
    sub_dir(s, "b", b);
    cli.common_name = "bob";
    assert_int_equal(nana_certgen_dev_client(b, &cli, NULL, NULL, 0, &f), 0);
    assert_int_equal(f.ca_made, 1);
    assert_int_equal(count_in(b), 4);
    assert_int_equal(verify_with(f.ca_cert, f.cert, GNUTLS_KP_TLS_WWW_CLIENT, NULL), 0);

    /* Names. */
    static const char *const bad_names[] = {
        "ca",  "ca-key", "cert",
        "key", "",       ".x",
        "-x",  "a/b",    "../x",
        "a b", "a\\b",   "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"};
    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
        assert_false(nana_certgen_client_name_valid(bad_names[i]));
        cli.common_name = bad_names[i];
        assert_int_equal(nana_certgen_dev_client(a, &cli, NULL, NULL, 1, &f), NANA_ERR_INVALID);
    }
    assert_false(nana_certgen_client_name_valid(NULL));
    assert_true(nana_certgen_client_name_valid("cas"));
    assert_true(nana_certgen_client_name_valid("a.b_c@d-e"));
    assert_int_equal(count_in(a), 6);
    /* Not a client's spec. */
    cli.common_name = "carol";
    nana_cert_spec bad = cli;
    bad.is_ca = 1;
    assert_int_equal(nana_certgen_dev_client(a, &bad, NULL, NULL, 0, &f), NANA_ERR_INVALID);
    bad = cli;
    bad.server = 1;
    assert_int_equal(nana_certgen_dev_client(a, &bad, NULL, NULL, 0, &f), NANA_ERR_INVALID);
    bad = cli;
    bad.client = 0;
    assert_int_equal(nana_certgen_dev_client(a, &bad, NULL, NULL, 0, &f), NANA_ERR_INVALID);
    assert_int_equal(nana_certgen_dev_client(NULL, &cli, NULL, NULL, 0, &f), NANA_ERR_INVALID);
    assert_int_equal(nana_certgen_dev_client(a, NULL, NULL, NULL, 0, &f), NANA_ERR_INVALID);
    assert_int_equal(count_in(a), 6);
}

/* The development set: every file, keys 0600, chains that verify, the
 * untrusted client not trusted by the dev CA; bad arguments refused. */
static void test_dev_set(void **state)
{
    scratch *s = *state;
    assert_int_equal(nana_certgen_dev_set(s->dir, "alice", 3, 0), 0);
    assert_int_equal(count_files(s), 6);
    assert_int_equal(nana_certgen_dev_set(s->dir, "alice", 3, 1), 0); /* overwrites, adds 4 */
    assert_int_equal(count_files(s), NANA_DEV_FILES);
    for (int i = 0; i < NANA_DEV_FILES; i++) {
        const char *name = nana_certgen_dev_names[i];
        int is_key = strstr(name, ".key") != NULL;
        assert_int_equal(file_mode(sp(s, name)), is_key ? 0600 : 0644);
    }
    char ca[1024], other[1024];
    sp_copy(s, nana_certgen_dev_names[NANA_DEV_CA], ca);
    sp_copy(s, nana_certgen_dev_names[NANA_DEV_OTHER_CA], other);
    assert_int_equal(verify_with(ca, sp(s, "server.pem"), GNUTLS_KP_TLS_WWW_SERVER, "localhost"),
                     0);
    assert_int_equal(verify_with(ca, sp(s, "client.pem"), GNUTLS_KP_TLS_WWW_CLIENT, NULL), 0);
    assert_int_not_equal(verify_with(ca, sp(s, "rogue.pem"), GNUTLS_KP_TLS_WWW_CLIENT, NULL), 0);
    assert_int_equal(verify_with(other, sp(s, "rogue.pem"), GNUTLS_KP_TLS_WWW_CLIENT, NULL), 0);
    assert_key_matches(sp(s, "server.pem"), sp(s, "server.key"));
    assert_int_equal(nana_certgen_dev_set(s->dir, "", 3, 0), NANA_ERR_INVALID);
    assert_int_equal(nana_certgen_dev_set(NULL, "alice", 3, 0), NANA_ERR_INVALID);
    assert_int_equal(nana_certgen_dev_set(s->dir, "alice", 0, 0), NANA_ERR_INVALID);
    assert_int_equal(nana_certgen_dev_set("/proc/no/such/dir", "alice", 3, 0), NANA_ERR_IO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_server_client_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_extensions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_modes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overwrite, setup, teardown),
        cmocka_unit_test_setup_teardown(test_algorithms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fingerprints, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dev_set, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chain_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chain_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dev_server, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dev_server_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dev_client, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
